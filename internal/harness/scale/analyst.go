package scale

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// AnalystSection is the heading of docs/api.md whose SQL block lists the analysts' queries on the
// views: the scale run times each of them as written there, so the documented queries are the
// measured ones.
const AnalystSection = "### 7. Analyst queries (PostgreSQL views)"

var (
	sqlBlock    = regexp.MustCompile("(?s)```sql\n(.*?)```")
	sqlComment  = regexp.MustCompile(`(?m)^\s*--\s*(.*)$`)
	quotedUsers = []string{"'alice'", "'bob'"}
)

// AnalystQueries reads the SQL block under AnalystSection of doc (docs/api.md) and returns one
// target per statement, named by the comment above it, with the example userIds 'alice' and 'bob'
// replaced by real ones (a ring member and another account of its ring).
func AnalystQueries(doc, alice, bob string) ([]Target, error) {
	start := strings.Index(doc, AnalystSection)
	if start < 0 {
		return nil, fmt.Errorf("docs/api.md has no section %q", AnalystSection)
	}
	m := sqlBlock.FindStringSubmatch(doc[start:])
	if m == nil {
		return nil, fmt.Errorf("docs/api.md's section %q has no sql block", AnalystSection)
	}
	var out []Target
	name := ""
	for _, stmt := range strings.Split(m[1], ";") {
		for _, c := range sqlComment.FindAllStringSubmatch(stmt, -1) {
			name = c[1]
		}
		sql := strings.TrimSpace(sqlComment.ReplaceAllString(stmt, ""))
		if sql == "" {
			continue
		}
		sql = strings.ReplaceAll(sql, quotedUsers[0], "'"+strings.ReplaceAll(alice, "'", "''")+"'")
		sql = strings.ReplaceAll(sql, quotedUsers[1], "'"+strings.ReplaceAll(bob, "'", "''")+"'")
		label := "SQL: " + name
		for n := 2; slices.ContainsFunc(out, func(t Target) bool { return t.Name == label }); n++ {
			label = fmt.Sprintf("SQL: %s (%d)", name, n)
		}
		out = append(out, Target{Name: label, SQL: sql})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("docs/api.md's section %q lists no query", AnalystSection)
	}
	return out, nil
}

// TimeSQL runs t.SQL as Time runs a page: n times after warm warm-ups, one at a time on pool
// (with the read pool's settings: no JIT, no parallel workers), reading every row, stopping once
// budget has passed and at least 3 were timed.
func TimeSQL(ctx context.Context, pool *pgxpool.Pool, t Target, warm, n int, budget time.Duration) (Timing, error) {
	res := Timing{Target: t, Status: 200}
	var took []time.Duration
	start := time.Now()
	for i := 0; i < warm+n; i++ {
		if i >= warm && i-warm >= 3 && time.Since(start) > budget {
			res.Cut = true
			break
		}
		t0 := time.Now()
		rows, err := pool.Query(ctx, t.SQL)
		if err == nil {
			for rows.Next() {
			}
			rows.Close()
			err = rows.Err()
		}
		d := time.Since(t0)
		if err != nil {
			return res, fmt.Errorf("%s: %w", t.Name, err)
		}
		if i >= warm {
			took = append(took, d)
		} else if d > budget {
			i = warm - 1
		}
	}
	slices.Sort(took)
	res.N = len(took)
	res.P50, res.P95, res.Max = quantile(took, 0.50), quantile(took, 0.95), took[len(took)-1]
	return res, nil
}
