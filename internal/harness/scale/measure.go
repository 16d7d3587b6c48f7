package scale

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Target is one read to time: an API route (with the API key) or a console page (with a session).
type Target struct {
	// Name says what is read ("GET /v1/rings", "console: ring of the farm").
	Name string
	// Path is the path and query on doppel's HTTP address.
	Path    string
	Console bool
	// SQL, when set, is an analyst's query timed on the database instead of a page (TimeSQL).
	SQL string
}

// Timing is the latency of one target over its requests, warm cache.
type Timing struct {
	Target
	Status        int
	N             int
	P50, P95, Max time.Duration
	// Cut reports that the time budget ended the run before the requests asked for.
	Cut bool
	// TimedOut reports that a request ran past the client's timeout: the read was stopped there,
	// and Max is that timeout (a lower bound).
	TimedOut bool
}

// Targets are every read route of the API and every console page, with ids taken from the
// generated database: a small ring's member and the largest farm's, their rings, a check, an alert.
func Targets(ctx context.Context, pool *pgxpool.Pool, p *Population) ([]Target, error) {
	small, farm := p.SmallRingUser(), p.FarmUser()
	var smallRing, farmRing, alertID string
	q := `SELECT coalesce((SELECT doppel_ring_id(r.smallest_user_id) FROM ring_members m JOIN rings r USING (ring_key)
	        WHERE m.user_id = $1), '')`
	if err := pool.QueryRow(ctx, q, small).Scan(&smallRing); err != nil {
		return nil, fmt.Errorf("ring of %s: %w", small, err)
	}
	if err := pool.QueryRow(ctx, q, farm).Scan(&farmRing); err != nil {
		return nil, fmt.Errorf("ring of %s: %w", farm, err)
	}
	if err := pool.QueryRow(ctx, `SELECT coalesce((SELECT alert_id::text FROM alerts ORDER BY detected_at, alert_id
	        OFFSET (SELECT count(*) / 2 FROM alerts) LIMIT 1), '')`).Scan(&alertID); err != nil {
		return nil, fmt.Errorf("an alert: %w", err)
	}
	sig := SignatureID(len(p.order) / 2)
	t := []Target{
		{Name: "GET /v1/alerts", Path: "/v1/alerts"},
		{Name: "GET /v1/alerts?status=open", Path: "/v1/alerts?status=open"},
		{Name: "GET /v1/alerts?severity=high", Path: "/v1/alerts?severity=high"},
		{Name: "GET /v1/alerts?userId= (ring member)", Path: "/v1/alerts?userId=" + url.QueryEscape(small)},
		{Name: "GET /v1/alerts/{alertId}", Path: "/v1/alerts/" + alertID},
		{Name: "GET /v1/users/{id}/duplicates (ring member)", Path: "/v1/users/" + small + "/duplicates"},
		{Name: "GET /v1/users/{id}/duplicates (farm member)", Path: "/v1/users/" + farm + "/duplicates"},
		{Name: "GET /v1/users/{id}/cluster (ring member)", Path: "/v1/users/" + small + "/cluster"},
		{Name: "GET /v1/users/{id}/cluster (farm member)", Path: "/v1/users/" + farm + "/cluster"},
		{Name: "GET /v1/rings", Path: "/v1/rings"},
		{Name: "GET /v1/rings/{ringId} (small ring)", Path: "/v1/rings/" + smallRing},
		{Name: "GET /v1/rings/{ringId} (farm)", Path: "/v1/rings/" + farmRing},
		{Name: "GET /v1/reviews", Path: "/v1/reviews"},
		{Name: "GET /v1/checks/{signatureId}", Path: "/v1/checks/" + sig},
		{Name: "GET /v1/reconciliation", Path: "/v1/reconciliation"},
		{Name: "GET /v1/cases", Path: "/v1/cases"},
		{Name: "console: overview", Path: "/console/", Console: true},
		{Name: "console: queue (cases)", Path: "/console/queue", Console: true},
		{Name: "console: alerts", Path: "/console/alerts", Console: true},
		{Name: "console: ring (small ring)", Path: "/console/rings/" + smallRing, Console: true},
		{Name: "console: ring (farm)", Path: "/console/rings/" + farmRing, Console: true},
		{Name: "console: users (ring member)", Path: "/console/users?userId=" + url.QueryEscape(small), Console: true},
		{Name: "console: audit", Path: "/console/audit", Console: true},
	}
	return t, nil
}

// Client reads doppel's API with an API key and its console with a session signed in with it.
type Client struct {
	base    string
	apiKey  string
	api     *http.Client
	console *http.Client
}

var csrfInput = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// NewClient signs in to the console at base (http://host:port) with apiKey, as a person does: the
// sign-in form's CSRF token, then the key.
func NewClient(ctx context.Context, base, apiKey string, timeout time.Duration) (*Client, error) {
	jar, err := cookiejar.New(nil)
	if err != nil {
		return nil, err
	}
	c := &Client{base: base, apiKey: apiKey, api: &http.Client{Timeout: timeout},
		console: &http.Client{Timeout: timeout, Jar: jar}}
	form, err := c.get(ctx, c.console, base+"/console/login", false)
	if err != nil {
		return nil, fmt.Errorf("console sign-in form: %w", err)
	}
	m := csrfInput.FindStringSubmatch(form.body)
	if m == nil {
		return nil, fmt.Errorf("console sign-in form has no CSRF token (status %d)", form.status)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/console/login",
		strings.NewReader(url.Values{"csrf": {m[1]}, "apiKey": {apiKey}}.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.console.Do(req)
	if err != nil {
		return nil, fmt.Errorf("console sign-in: %w", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/console/" {
		return nil, fmt.Errorf("console sign-in answered %d at %s", resp.StatusCode, resp.Request.URL.Path)
	}
	return c, nil
}

type answer struct {
	status int
	body   string
}

func (c *Client) get(ctx context.Context, hc *http.Client, u string, withKey bool) (answer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return answer{}, err
	}
	if withKey {
		req.Header.Set("Authorization", "Bearer "+c.apiKey)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, body: string(b)}, err
}

// Time requests t n times after warm warm-up requests, one at a time, and stops early (Cut) once
// budget has passed and at least 3 were timed: a read that takes 40 s must not hold the run for a
// quarter of an hour, and three of them already say it is slow. For the same reason a warm-up that
// took longer than the budget is the only one. A request that runs past the client's timeout ends
// the target (TimedOut) without failing the run: at ten million checks one read may take minutes,
// and the others still need measuring. Any other failed request, or a status other than 200, fails
// the target, so a broken route is never timed as a fast one.
func (c *Client) Time(ctx context.Context, t Target, warm, n int, budget time.Duration) (Timing, error) {
	hc, withKey := c.api, true
	if t.Console {
		hc, withKey = c.console, false
	}
	res := Timing{Target: t}
	var took []time.Duration
	start := time.Now()
	for i := 0; i < warm+n; i++ {
		if i >= warm && i-warm >= 3 && time.Since(start) > budget {
			res.Cut = true
			break
		}
		t0 := time.Now()
		a, err := c.get(ctx, hc, c.base+t.Path, withKey)
		d := time.Since(t0)
		var nerr net.Error
		if errors.As(err, &nerr) && nerr.Timeout() && ctx.Err() == nil {
			res.TimedOut = true
			took = append(took, hc.Timeout)
			break
		}
		if err != nil {
			return res, fmt.Errorf("%s: %w", t.Name, err)
		}
		res.Status = a.status
		if a.status != http.StatusOK {
			return res, fmt.Errorf("%s: GET %s answered %d: %.300s", t.Name, t.Path, a.status, a.body)
		}
		if i >= warm {
			took = append(took, d)
		} else if d > budget {
			i = warm - 1 // the cache is as warm as it gets
		}
	}
	slices.Sort(took)
	res.N = len(took)
	res.P50, res.P95, res.Max = quantile(took, 0.50), quantile(took, 0.95), took[len(took)-1]
	return res, nil
}

// quantile is the nearest-rank quantile of sorted durations.
func quantile(sorted []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// Size is one table's size, its indexes included.
type Size struct {
	Table        string
	Rows         int64
	TableBytes   int64 // heap and TOAST
	IndexBytes   int64
	TotalBytes   int64 // pg_total_relation_size
	IndexesNamed []string
}

// Sizes reads the size of every table of the schema on pool's search path, largest first, after
// VACUUM ANALYZE (the row counts are exact: counted).
func Sizes(ctx context.Context, pool *pgxpool.Pool) ([]Size, error) {
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE`); err != nil {
		return nil, fmt.Errorf("vacuum analyze: %w", err)
	}
	rows, err := pool.Query(ctx, `
SELECT c.relname, pg_table_size(c.oid), pg_indexes_size(c.oid), pg_total_relation_size(c.oid)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname = current_schema() AND c.relname <> 'schema_migrations'
ORDER BY pg_total_relation_size(c.oid) DESC, c.relname`)
	if err != nil {
		return nil, fmt.Errorf("table sizes: %w", err)
	}
	var out []Size
	for rows.Next() {
		var s Size
		if err := rows.Scan(&s.Table, &s.TableBytes, &s.IndexBytes, &s.TotalBytes); err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, s)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range out {
		// The table names come from the catalogue, not from input.
		if err := pool.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) FROM %q`, out[i].Table)).Scan(&out[i].Rows); err != nil {
			return nil, fmt.Errorf("count %s: %w", out[i].Table, err)
		}
	}
	return out, nil
}
