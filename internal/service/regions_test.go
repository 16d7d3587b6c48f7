package service_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/config"
	"github.com/doppelhq/doppel/internal/consumer"
	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/harness/advancesim"
	"github.com/doppelhq/doppel/internal/harness/testinfra"
)

// regionSim is one region's vendor account: its own simulator (face database, bill) and keys.
type regionSim struct {
	name string
	sim  *advancesim.Sim
	url  string
	keys [2]string
}

func newRegionSim(t *testing.T, name string) *regionSim {
	t.Helper()
	keys := [2]string{"access-" + name + "-for-the-region-test", "secret-" + name + "-for-the-region-test"}
	sim := advancesim.New(advancesim.Config{AccessKey: keys[0], SecretKey: keys[1]})
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	return &regionSim{name: name, sim: sim, url: srv.URL, keys: keys}
}

func (r *regionSim) pass(t *testing.T, user, face string) string {
	return testinfra.AddSession(t, r.sim, user, face, "PASS")
}

// setupRegions is setup with two regions, ph (the default) and th, each on its own simulator.
func setupRegions(t *testing.T) (*fixture, *regionSim, *regionSim) {
	t.Helper()
	f := setup(t, advancesim.Config{})
	ph, th := newRegionSim(t, "ph"), newRegionSim(t, "th")
	f.cfg.AdvanceBaseURL, f.cfg.AdvanceAccessKey, f.cfg.AdvanceSecretKey = "", "", ""
	f.cfg.AdvanceRegions = []string{"ph", "th"}
	f.cfg.AdvanceDefaultRegion = "ph"
	f.cfg.Advance.Regions = map[string]config.RegionSettings{}
	for _, r := range []*regionSim{ph, th} {
		f.cfg.Advance.Regions[r.name] = config.RegionSettings{BaseURL: r.url, AccessKey: r.keys[0], SecretKey: r.keys[1]}
	}
	f.cfg.HTTPAddr, f.cfg.AdminAddr = testinfra.FreeAddr(t), testinfra.FreeAddr(t)
	f.cfg.BreakerOpenFor = 2 * time.Second
	require.NoError(t, f.cfg.Validate())
	return f, ph, th
}

func regionEvent(sig, userID, regionField, regionHeader string) kafka.Message {
	body := map[string]string{"signatureId": sig, "type": "COMPLETED", "userId": userID}
	if regionField != "" {
		body["region"] = regionField
	}
	b, _ := json.Marshal(body)
	m := kafka.Message{Key: []byte(sig), Value: b}
	if regionHeader != "" {
		m.Headers = []kafka.Header{{Key: "region", Value: []byte(regionHeader)}}
	}
	return m
}

func (f *fixture) regions(t *testing.T) map[string]string {
	return f.bySignature(t, `SELECT signature_id, region FROM idv_checks`)
}

func (f *fixture) linkRegions(t *testing.T) map[string][]string {
	rows, err := f.pool.Query(context.Background(), `SELECT user_id_low || '~' || user_id_high, regions FROM duplicate_links`)
	require.NoError(t, err)
	out := map[string][]string{}
	var pair string
	var regions []string
	_, err = pgx.ForEachRow(rows, []any{&pair, &regions}, func() error { out[pair] = slices.Clone(regions); return nil })
	require.NoError(t, err)
	return out
}

// topicEnd returns how many messages topic holds, over all partitions.
func topicEnd(t *testing.T, topicName string) int64 {
	t.Helper()
	conn, err := kafka.Dial("tcp", testinfra.Brokers(t)[0])
	require.NoError(t, err)
	parts, err := conn.ReadPartitions(topicName)
	conn.Close()
	require.NoError(t, err)
	var n int64
	for _, p := range parts {
		c, err := kafka.DialLeader(context.Background(), "tcp", testinfra.Brokers(t)[0], topicName, p.ID)
		require.NoError(t, err)
		end, err := c.ReadLastOffset()
		c.Close()
		require.NoError(t, err)
		n += end
	}
	return n
}

func requireBilledOnce(t *testing.T, r *regionSim, sigs ...string) {
	t.Helper()
	billed := r.sim.Stats().FaceSearchBySignature
	for _, sig := range sigs {
		require.EqualValues(t, 1, billed[sig], "region %s billed %s %d times", r.name, sig, billed[sig])
	}
	require.Len(t, billed, len(sigs), "region %s billed only its own verifications", r.name)
}

func TestEachEventIsSearchedAndBilledInItsOwnRegion(t *testing.T) {
	t.Parallel()
	f, ph, th := setupRegions(t)
	f.cfg.CallbackToken = callbackToken
	f.cfg.APIKeys = "analyst:read:" + hexSHA256(analystKey)
	// The same face F in both regions' databases, but each region only knows its own verifications:
	// alice and bob verified in PH, carol and dave in TH, and dave also shares face G with erin in TH.
	alice, bob := ph.pass(t, "alice", "F"), ph.pass(t, "bob", "F")
	carol, dave := th.pass(t, "carol", "F"), th.pass(t, "dave", "F")
	erin := th.pass(t, "erin", "F")
	base := "http://" + f.cfg.HTTPAddr
	f.start(t)

	testinfra.Produce(t, f.cfg.TopicEvents,
		regionEvent(alice, "alice", "", ""),       // no region: the default, ph
		regionEvent(bob, "bob", "PH", ""),         // the field, case-insensitive
		regionEvent(carol, "carol", "", "TH"),     // the header, case-insensitive
		regionEvent(dave, "dave", "th", "ph"),     // the field wins over the header
		regionEvent("nowhere-1", "zed", "xx", ""), // not configured
	)
	testinfra.Eventually(t, 30*time.Second, func() bool {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	}, "/healthz answers")
	// The vendor's TH callback URL; an unconfigured region is a 404 naming it.
	status, body := call(t, http.MethodPost, base+"/v1/callbacks/advance/th?token="+callbackToken, "",
		map[string]string{"signatureId": erin, "type": "COMPLETED"})
	require.Equal(t, http.StatusOK, status, string(body))
	status, body = call(t, http.MethodPost, base+"/v1/callbacks/advance/vn?token="+callbackToken, "",
		map[string]string{"signatureId": erin, "type": "COMPLETED"})
	require.Equal(t, http.StatusNotFound, status)
	require.Contains(t, string(body), `region \"vn\" is not configured`)

	f.waitForChecks(t, 6, 60*time.Second)
	require.Equal(t, map[string]string{alice: "ph", bob: "ph", carol: "th", dave: "th", erin: "th", "nowhere-1": "xx"},
		f.regions(t))
	require.Equal(t, "failed", f.outcome(t, "nowhere-1"))
	dead := testinfra.ReadAll(t, f.cfg.TopicDLQ, 1, 30*time.Second)
	require.Len(t, dead, 1)
	require.Equal(t, duplicate.ReasonUnknownRegion, header(dead[0], consumer.HeaderReason))

	// Each face search went to its own region's account, once; a link found in one region is not
	// reported by the other (carol shares alice's face, but only in TH's database).
	requireBilledOnce(t, ph, alice, bob)
	requireBilledOnce(t, th, carol, dave, erin)
	require.Equal(t, map[string][]string{
		"alice~bob": {"ph"}, "carol~dave": {"th"}, "carol~erin": {"th"}, "dave~erin": {"th"},
	}, f.linkRegions(t))

	// Alerts carry their region, on the topic and in the API, which filters by region.
	var stored int
	require.NoError(t, f.pool.QueryRow(context.Background(), `SELECT count(*) FROM alerts`).Scan(&stored))
	byRegion := map[string][]string{}
	for _, m := range testinfra.ReadAll(t, f.cfg.TopicAlerts, stored, 30*time.Second) {
		var al duplicate.Alert
		require.NoError(t, json.Unmarshal(m.Value, &al))
		byRegion[al.Region] = append(byRegion[al.Region], al.UserID)
	}
	for _, users := range byRegion {
		sort.Strings(users)
	}
	require.Equal(t, map[string][]string{"ph": {"bob"}, "th": {"dave", "erin"}}, byRegion)

	status, body = call(t, http.MethodGet, base+"/v1/alerts?region=TH", analystKey, nil)
	require.Equal(t, http.StatusOK, status, string(body))
	var page struct {
		Alerts []duplicate.Alert `json:"alerts"`
	}
	require.NoError(t, json.Unmarshal(body, &page))
	require.Len(t, page.Alerts, 2)
	for _, a := range page.Alerts {
		require.Equal(t, "th", a.Region)
	}
	status, body = call(t, http.MethodGet, base+"/v1/alerts?region=vn", analystKey, nil)
	require.Equal(t, http.StatusBadRequest, status)
	require.Contains(t, string(body), `"field":"region"`)
	status, body = call(t, http.MethodGet, base+"/v1/users/dave/duplicates?region=ph", analystKey, nil)
	require.Equal(t, http.StatusOK, status, string(body))
	require.Contains(t, string(body), `"duplicates":[]`, "dave's links were all found in TH")
	status, body = call(t, http.MethodGet, base+"/v1/checks/"+carol, analystKey, nil)
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, string(body), `"region":"th"`)

	// A ring's links say which region found each, in /cluster and in /v1/rings/{ringId}.
	var cluster struct {
		RingID string `json:"ringId"`
		Links  []struct {
			UserID          string   `json:"userId"`
			DuplicateUserID string   `json:"duplicateUserId"`
			Regions         []string `json:"regions"`
		} `json:"links"`
	}
	linkRegions := func() map[string][]string {
		out := map[string][]string{}
		for _, l := range cluster.Links {
			out[l.UserID+"~"+l.DuplicateUserID] = l.Regions
		}
		return out
	}
	status, body = call(t, http.MethodGet, base+"/v1/users/erin/cluster", analystKey, nil)
	require.Equal(t, http.StatusOK, status, string(body))
	require.NoError(t, json.Unmarshal(body, &cluster))
	require.Equal(t, map[string][]string{"carol~dave": {"th"}, "carol~erin": {"th"}, "dave~erin": {"th"}}, linkRegions())
	status, body = call(t, http.MethodGet, base+"/v1/rings/"+cluster.RingID, analystKey, nil)
	require.Equal(t, http.StatusOK, status, string(body))
	cluster.Links = nil
	require.NoError(t, json.Unmarshal(body, &cluster))
	require.Equal(t, map[string][]string{"carol~dave": {"th"}, "carol~erin": {"th"}, "dave~erin": {"th"}}, linkRegions())
	status, body = call(t, http.MethodGet, base+"/v1/users/bob/cluster", analystKey, nil)
	require.Equal(t, http.StatusOK, status, string(body))
	require.NoError(t, json.Unmarshal(body, &cluster))
	require.Equal(t, map[string][]string{"alice~bob": {"ph"}}, linkRegions())

	// Analysts see the region in their views.
	var openTH int
	require.NoError(t, f.pool.QueryRow(context.Background(), `SELECT count(*) FROM open_alerts WHERE region = 'th'`).Scan(&openTH))
	require.Equal(t, 2, openTH)
	var regions []string
	require.NoError(t, f.pool.QueryRow(context.Background(),
		`SELECT regions FROM duplicate_accounts WHERE user_id = 'bob' AND duplicate_user_id = 'alice'`).Scan(&regions))
	require.Equal(t, []string{"ph"}, regions)

	// bob verifies in TH as well: TH's face search finds carol, dave and erin, and one ring now
	// spans both regions. ?region= on /cluster answers the part each region found, as the
	// region_fraud_rings view does.
	bobInTH := th.pass(t, "bob", "F")
	testinfra.Produce(t, f.cfg.TopicEvents, regionEvent(bobInTH, "bob", "th", ""))
	f.waitForChecks(t, 7, 60*time.Second)
	var ring struct {
		RingID  string   `json:"ringId"`
		Size    int      `json:"size"`
		Members []string `json:"members"`
		Links   []struct {
			Regions []string `json:"regions"`
		} `json:"links"`
	}
	clusterOf := func(user, query string) {
		t.Helper()
		ring.Links = nil
		status, body := call(t, http.MethodGet, base+"/v1/users/"+user+"/cluster"+query, analystKey, nil)
		require.Equal(t, http.StatusOK, status, string(body))
		require.NoError(t, json.Unmarshal(body, &ring))
	}
	clusterOf("bob", "")
	require.Equal(t, []string{"alice", "bob", "carol", "dave", "erin"}, ring.Members)
	for _, want := range []struct {
		region, user string
		members      []string
		links        int
	}{
		{"ph", "bob", []string{"alice", "bob"}, 1},
		{"th", "bob", []string{"bob", "carol", "dave", "erin"}, 6},
		{"ph", "erin", []string{"erin"}, 0},
	} {
		clusterOf(want.user, "?region="+strings.ToUpper(want.region))
		require.Equal(t, want.members, ring.Members, "%s's ring in %s", want.user, want.region)
		require.Equal(t, len(want.members), ring.Size)
		require.Equal(t, duplicate.RingID(want.members[0]), ring.RingID)
		require.Len(t, ring.Links, want.links)
		for _, l := range ring.Links {
			require.Contains(t, l.Regions, want.region)
		}
		if len(want.members) > 1 {
			var viewMembers []string
			require.NoError(t, f.pool.QueryRow(context.Background(),
				`SELECT members FROM region_fraud_rings WHERE region = $1 AND ring_id = $2`, want.region, ring.RingID).Scan(&viewMembers))
			require.Equal(t, want.members, viewMembers, "the API and the view agree on %s's ring", want.region)
		}
	}
	status, body = call(t, http.MethodGet, base+"/v1/users/bob/cluster?region=vn", analystKey, nil)
	require.Equal(t, http.StatusBadRequest, status)
	require.Contains(t, string(body), `"field":"region"`)

	// Readiness reports each region (on the admin listener).
	testinfra.Eventually(t, 10*time.Second, func() bool {
		code, ready := readyz(t, f.cfg.AdminAddr)
		checks, _ := ready["checks"].(map[string]any)
		return code == http.StatusOK && checks["vendor:ph"] == "ok" && checks["vendor:th"] == "ok"
	}, "both regions ready")
}

// delays returns, per signatureId, how long after it was produced its check was stored.
func (f *fixture) delays(t *testing.T, produced map[string]time.Time) []time.Duration {
	t.Helper()
	sigs := make([]string, 0, len(produced))
	for sig := range produced {
		sigs = append(sigs, sig)
	}
	rows, err := f.pool.Query(context.Background(), `SELECT signature_id, checked_at FROM idv_checks WHERE signature_id = ANY($1)`, sigs)
	require.NoError(t, err)
	var out []time.Duration
	var sig string
	var at time.Time
	_, err = pgx.ForEachRow(rows, []any{&sig, &at}, func() error { out = append(out, at.Sub(produced[sig])); return nil })
	require.NoError(t, err)
	require.Len(t, out, len(produced))
	slices.Sort(out)
	return out
}

func p95(d []time.Duration) time.Duration { return d[len(d)*95/100] }

// produceSteadily produces one event every interval for each source until n per source are sent,
// and returns when each was produced.
func produceSteadily(t *testing.T, topicName string, interval time.Duration, sources ...[]kafka.Message) map[string]time.Time {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(testinfra.Brokers(t)...), Topic: topicName, Balancer: &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond, Transport: &kafka.Transport{}}
	defer w.Close()
	produced := map[string]time.Time{}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for i := 0; ; i++ {
		more := false
		for _, src := range sources {
			if i < len(src) {
				more = true
				at := time.Now()
				require.NoError(t, w.WriteMessages(context.Background(), src[i]))
				produced[string(src[i].Key)] = at
			}
		}
		if !more {
			return produced
		}
		<-tick.C
	}
}

// The fault test: TH's vendor answers HTTP 503 to everything for 60 s while PH's events flow at a
// steady rate. PH's events are stored no later than while TH was healthy; once TH recovers every
// TH event is stored, each billed once, and nothing is dead-lettered.
func TestARegionsOutageDoesNotSlowTheOthersAndLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("takes about 80 s")
	}
	t.Parallel()
	f, ph, th := setupRegions(t)
	const rate = 100 * time.Millisecond // 10 events per second per region
	events := func(r *regionSim, prefix string, n int) ([]kafka.Message, []string) {
		var msgs []kafka.Message
		var sigs []string
		for i := range n {
			user := fmt.Sprintf("%s-%s-%d", r.name, prefix, i)
			sig := r.pass(t, user, user) // a face of its own: the search runs, finds nobody
			msgs = append(msgs, regionEvent(sig, user, r.name, ""))
			sigs = append(sigs, sig)
		}
		return msgs, sigs
	}
	phHealthy, phHealthySigs := events(ph, "healthy", 50)
	thHealthy, thHealthySigs := events(th, "healthy", 50)
	phDuring, phDuringSigs := events(ph, "during", 600)
	thDuring, thDuringSigs := events(th, "during", 600)
	f.start(t)

	// Both healthy: the reference delay.
	healthy := produceSteadily(t, f.cfg.TopicEvents, rate, phHealthy, thHealthy)
	f.waitForChecks(t, 100, 60*time.Second)
	healthyDelays := f.delays(t, pick(healthy, phHealthySigs))
	// Measured before the outage: what PH parks from here on, it parks because of TH.
	phParkedBefore, phFailedBefore := parkedEvents(t, f, "ph"), failedVendorCalls(t, f, "ph")
	t.Logf("before TH's outage PH parked %d events; %d of its vendor calls failed", phParkedBefore, phFailedBefore)

	// TH down for 60 s, every call answered 503, while both regions' events keep coming.
	require.NoError(t, th.sim.SetFaults(advancesim.Faults{HTTP5xxRate: 1}))
	down := time.Now()
	during := map[string]time.Time{}
	go func() {
		time.Sleep(60 * time.Second)
		_ = th.sim.SetFaults(advancesim.Faults{})
	}()
	for sig, at := range produceSteadily(t, f.cfg.TopicEvents, rate, phDuring, thDuring) {
		during[sig] = at
	}
	t.Logf("produced for %s while TH was down", time.Since(down).Round(time.Second))

	f.waitForChecks(t, 1300, 90*time.Second)
	phDelays := f.delays(t, pick(during, phDuringSigs))
	t.Logf("PH delay p95: %s while TH healthy, %s while TH down (max %s)", p95(healthyDelays), p95(phDelays), phDelays[len(phDelays)-1])
	// Held up behind TH, PH's events would wait for the outage (up to 60 s); the slack only absorbs
	// a loaded machine's noise.
	require.LessOrEqual(t, p95(phDelays), p95(healthyDelays)+2*time.Second,
		"PH's events are not held up by TH's outage")

	requireBilledOnce(t, th, append(thHealthySigs, thDuringSigs...)...)
	requireBilledOnce(t, ph, append(phHealthySigs, phDuringSigs...)...)
	require.Zero(t, topicEnd(t, f.cfg.TopicDLQ), "nothing dead-lettered")
	require.Equal(t, 650, countWhere(t, f, `region = 'th' AND outcome = 'no_duplicates'`))
	page := metricsPage(t, f.cfg.AdminAddr)
	require.Regexp(t, `doppel_region_parked_events_total\{region="th"\} [1-9]`, page, "TH's events waited in its parking topic")
	// PH parks for trouble of its own (a call timing out on a loaded machine), never for TH's.
	if failed := failedVendorCalls(t, f, "ph") - phFailedBefore; failed == 0 {
		require.Equal(t, phParkedBefore, parkedEvents(t, f, "ph"), "PH's never did during TH's outage")
	} else {
		t.Logf("PH's own vendor calls failed %d times during TH's outage: its parking is not TH's doing", failed)
	}
	require.Positive(t, th.sim.Stats().Answers["HTTP_503"], "TH really was down")
}

func pick(at map[string]time.Time, sigs []string) map[string]time.Time {
	out := make(map[string]time.Time, len(sigs))
	for _, s := range sigs {
		if t, ok := at[s]; ok {
			out[s] = t
		}
	}
	return out
}

func countWhere(t *testing.T, f *fixture, where string) int {
	var n int
	require.NoError(t, f.pool.QueryRow(context.Background(), `SELECT count(*) FROM idv_checks WHERE `+where).Scan(&n))
	return n
}

// parkedEvents reads doppel_region_parked_events_total of region from the admin listener.
func parkedEvents(t *testing.T, f *fixture, region string) int {
	t.Helper()
	m := regexp.MustCompile(`doppel_region_parked_events_total\{region="` + region + `"\} (\d+)`).FindStringSubmatch(metricsPage(t, f.cfg.AdminAddr))
	require.NotNil(t, m, "doppel_region_parked_events_total of %s on the metrics page", region)
	n, err := strconv.Atoi(m[1])
	require.NoError(t, err)
	return n
}

// failedVendorCalls sums doppel_vendor_calls_total of region over every answer but SUCCESS.
func failedVendorCalls(t *testing.T, f *fixture, region string) int {
	t.Helper()
	n := 0
	calls := regexp.MustCompile(`doppel_vendor_calls_total\{code="([^"]*)",endpoint="[^"]*",region="`+region+`"\} (\d+)`).
		FindAllStringSubmatch(metricsPage(t, f.cfg.AdminAddr), -1)
	require.NotEmpty(t, calls, "doppel_vendor_calls_total of %s on the metrics page", region)
	for _, m := range calls {
		if m[1] != "SUCCESS" {
			v, err := strconv.Atoi(m[2])
			require.NoError(t, err)
			n += v
		}
	}
	return n
}

func metricsPage(t *testing.T, addr string) string {
	resp, err := http.Get("http://" + addr + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

// A budget of N pauses the region after N face searches, across restarts (the spend is counted from
// stored checks), and it resumes when the budget is raised; the other region goes on meanwhile.
func TestARegionsMonthlyBudgetPausesItUntilRaised(t *testing.T) {
	t.Parallel()
	f, ph, th := setupRegions(t)
	setBudget := func(n int64) {
		s := f.cfg.Advance.Regions["ph"]
		s.MonthlyBudget = n
		f.cfg.Advance.Regions["ph"] = s
	}
	var phSigs, thSigs []string
	var msgs []kafka.Message
	for i := range 5 {
		user := fmt.Sprintf("ph-user-%d", i)
		sig := ph.pass(t, user, user)
		phSigs = append(phSigs, sig)
		msgs = append(msgs, regionEvent(sig, user, "ph", ""))
	}
	for i := range 2 {
		user := fmt.Sprintf("th-user-%d", i)
		sig := th.pass(t, user, user)
		thSigs = append(thSigs, sig)
		msgs = append(msgs, regionEvent(sig, user, "th", ""))
	}
	phStored := func() int { return countWhere(t, f, `region = 'ph'`) }

	setBudget(3)
	stop := f.start(t)
	testinfra.Produce(t, f.cfg.TopicEvents, msgs...)
	testinfra.Eventually(t, 60*time.Second, func() bool { return phStored() == 3 && countWhere(t, f, `region = 'th'`) == 2 },
		"3 PH checks (its budget) and both TH checks stored")
	time.Sleep(3 * time.Second)
	require.Equal(t, 3, phStored(), "PH pauses at its budget")
	testinfra.Eventually(t, 10*time.Second, func() bool {
		code, ready := readyz(t, f.cfg.AdminAddr)
		checks, _ := ready["checks"].(map[string]any)
		ph, _ := checks["vendor:ph"].(string)
		return code == http.StatusOK && strings.Contains(ph, "spent its monthly budget of 3")
	}, "the admin /readyz says PH spent its budget; TH can take events, so the instance is ready")
	require.Contains(t, metricsPage(t, f.cfg.AdminAddr), `doppel_region_budget_warning{region="ph"} 2`)
	stop()

	// A restart does not reset the spend: with a budget of 4, one more search.
	setBudget(4)
	stop = f.start(t)
	testinfra.Eventually(t, 60*time.Second, func() bool { return phStored() == 4 }, "one more PH check")
	time.Sleep(3 * time.Second)
	require.Equal(t, 4, phStored(), "the spend was read back from the stored checks")
	stop()

	setBudget(100)
	f.start(t)
	testinfra.Eventually(t, 60*time.Second, func() bool { return phStored() == 5 }, "PH resumes when its budget is raised")
	requireBilledOnce(t, ph, phSigs...)
	requireBilledOnce(t, th, thSigs...)
	require.Zero(t, topicEnd(t, f.cfg.TopicDLQ), "nothing dead-lettered")
	page := metricsPage(t, f.cfg.AdminAddr)
	require.Contains(t, page, `doppel_region_budget_spent{region="ph"} 5`)
	require.True(t, strings.Contains(page, `doppel_region_budget_warning{region="ph"} 0`))
}

// ACCOUNT_DISABLED in one region opens that region's circuit only: its events are parked (not
// dead-lettered, not billed), /readyz names the code for that region while the instance stays
// ready, and once the account works again they are stored, each billed once.
func TestAnAccountFailureInOneRegionParksOnlyItsEvents(t *testing.T) {
	t.Parallel()
	f, ph, th := setupRegions(t)
	require.NoError(t, th.sim.SetFaults(advancesim.Faults{ForceCode: "ACCOUNT_DISABLED"}))
	var msgs []kafka.Message
	var phSigs, thSigs []string
	for i := range 10 {
		pu, tu := fmt.Sprintf("ph-acct-%d", i), fmt.Sprintf("th-acct-%d", i)
		ps, ts := ph.pass(t, pu, pu), th.pass(t, tu, tu)
		phSigs, thSigs = append(phSigs, ps), append(thSigs, ts)
		msgs = append(msgs, regionEvent(ps, pu, "ph", ""), regionEvent(ts, tu, "", "th"))
	}
	f.start(t)
	testinfra.Produce(t, f.cfg.TopicEvents, msgs...)
	testinfra.Eventually(t, 60*time.Second, func() bool { return countWhere(t, f, `region = 'ph'`) == 10 }, "PH's events stored")
	require.Zero(t, countWhere(t, f, `region = 'th'`), "TH's wait")
	testinfra.Eventually(t, 10*time.Second, func() bool {
		code, ready := readyz(t, f.cfg.AdminAddr)
		checks, _ := ready["checks"].(map[string]any)
		th, _ := checks["vendor:th"].(string)
		return code == http.StatusOK && strings.Contains(th, "ACCOUNT_DISABLED") && checks["vendor:ph"] == "ok"
	}, "the admin /readyz names TH's code, PH is ok, and the instance is ready")

	require.NoError(t, th.sim.SetFaults(advancesim.Faults{}))
	testinfra.Eventually(t, 60*time.Second, func() bool { return countWhere(t, f, `region = 'th'`) == 10 },
		"TH's events stored once its account works again")
	requireBilledOnce(t, ph, phSigs...)
	requireBilledOnce(t, th, thSigs...)
	require.Zero(t, topicEnd(t, f.cfg.TopicDLQ), "nothing dead-lettered")
	testinfra.Eventually(t, 10*time.Second, func() bool {
		return strings.Contains(metricsPage(t, f.cfg.AdminAddr), `doppel_region_parking{region="th"} 0`)
	}, "TH leaves parking once its parking topic is drained")
}

// A region whose vendor answers slowly holds at most half of the workers: the other region's events
// are handled at once, and the slow region's overflow is parked and handled by its own workers.
func TestASlowRegionCannotTakeEveryWorker(t *testing.T) {
	t.Parallel()
	f, ph, th := setupRegions(t)
	f.cfg.Workers = 8
	require.NoError(t, th.sim.SetFaults(advancesim.Faults{LatencyMs: 5000}))
	var thMsgs []kafka.Message
	var thSigs []string
	for i := range 16 {
		u := fmt.Sprintf("th-slow-%d", i)
		sig := th.pass(t, u, u)
		thSigs = append(thSigs, sig)
		thMsgs = append(thMsgs, regionEvent(sig, u, "th", ""))
	}
	var phMsgs []kafka.Message
	var phSigs []string
	for i := range 8 {
		u := fmt.Sprintf("ph-fast-%d", i)
		sig := ph.pass(t, u, u)
		phSigs = append(phSigs, sig)
		phMsgs = append(phMsgs, regionEvent(sig, u, "ph", ""))
	}
	f.start(t)
	testinfra.Eventually(t, 30*time.Second, func() bool {
		page, err := http.Get("http://" + f.cfg.AdminAddr + "/metrics")
		if err != nil {
			return false
		}
		defer page.Body.Close()
		body, _ := io.ReadAll(page.Body)
		return strings.Contains(string(body), `doppel_region_parking{region="th"} 0`)
	}, "TH's (empty) parking topic measured: its events go to its vendor")
	testinfra.Produce(t, f.cfg.TopicEvents, thMsgs...)
	time.Sleep(500 * time.Millisecond) // TH's events are at its vendor
	testinfra.Produce(t, f.cfg.TopicEvents, phMsgs...)
	produced := time.Now()
	testinfra.Eventually(t, 30*time.Second, func() bool { return countWhere(t, f, `region = 'ph'`) == 8 }, "PH's events stored")
	// With every worker held by TH, PH's would wait for TH's 5 s calls to end.
	var latest time.Time
	require.NoError(t, f.pool.QueryRow(context.Background(), `SELECT max(checked_at) FROM idv_checks WHERE region = 'ph'`).Scan(&latest))
	t.Logf("PH stored %s after it was produced while TH answered in 5 s", latest.Sub(produced).Round(time.Millisecond))
	require.Less(t, latest.Sub(produced), 2*time.Second)

	testinfra.Eventually(t, 60*time.Second, func() bool { return countWhere(t, f, `region = 'th'`) == 16 }, "TH's events stored")
	requireBilledOnce(t, th, thSigs...)
	requireBilledOnce(t, ph, phSigs...)
	require.Zero(t, topicEnd(t, f.cfg.TopicDLQ))
}
