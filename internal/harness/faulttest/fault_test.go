//go:build faults

package faulttest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/harness/advancesim"
	"github.com/doppelhq/doppel/internal/harness/testinfra"
	"github.com/doppelhq/doppel/internal/topic"
)

var doppelBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "doppel-faults")
	if err != nil {
		panic(err)
	}
	doppelBin = filepath.Join(dir, "doppel")
	build := exec.Command("go", "build", "-o", doppelBin, "./cmd/doppel")
	build.Dir = testinfra.RepoRoot()
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		panic(fmt.Sprintf("build doppel: %v", err))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// infra runs scripts/infra.sh with a sub-command, as an operator would.
func infra(t *testing.T, command string) {
	t.Helper()
	cmd := exec.Command("bash", filepath.Join(testinfra.RepoRoot(), "scripts", "infra.sh"), command)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "infra.sh %s: %s", command, out)
}

type fixture struct {
	brokers []string
	env     []string
	pool    *pgxpool.Pool
	sim     *advancesim.Sim
	simURL  string
	events  string
	alerts  string
	dlq     string
	http    string
	admin   string
	logPath string
}

func setup(t *testing.T) *fixture {
	t.Helper()
	return setupWithPartitions(t, 3)
}

func setupWithPartitions(t *testing.T, partitions int) *fixture {
	t.Helper()
	topics := testinfra.Topics(t, partitions, "idv.completed", "doppel.alerts", "idv.completed.dlq")
	return newFixture(t, testinfra.Brokers(t), topics)
}

// newFixture prepares doppel's environment against brokers and the topics named (events, alerts,
// dead letters), with a schema of its own on the shared PostgreSQL and an in-process simulator.
func newFixture(t *testing.T, brokers, topics []string) *fixture {
	t.Helper()
	dbURL, pool := testinfra.Database(t)
	sim, simURL := testinfra.Sim(t, advancesim.Config{Latency: 3 * time.Millisecond})
	f := &fixture{brokers: brokers, pool: pool, sim: sim, simURL: simURL, events: topics[0], alerts: topics[1], dlq: topics[2],
		logPath: filepath.Join(t.TempDir(), "doppel.log")}
	f.env = append(os.Environ(),
		"DOPPEL_DATABASE_URL="+dbURL,
		"DOPPEL_KAFKA_BROKERS="+strings.Join(brokers, ","),
		"DOPPEL_KAFKA_GROUP_ID="+testinfra.UniqueName("doppel"),
		"DOPPEL_TOPIC_EVENTS="+f.events, "DOPPEL_TOPIC_ALERTS="+f.alerts, "DOPPEL_TOPIC_DLQ="+f.dlq,
		"DOPPEL_ADVANCE_BASE_URL="+simURL,
		"DOPPEL_ADVANCE_ACCESS_KEY="+testinfra.SimAccessKey, "DOPPEL_ADVANCE_SECRET_KEY="+testinfra.SimSecretKey,
		"DOPPEL_ADVANCE_QPS=0", "DOPPEL_WORKERS=8",
		"DOPPEL_COMMIT_INTERVAL=50ms", "DOPPEL_RELAY_INTERVAL=100ms", "DOPPEL_SHUTDOWN_TIMEOUT=10s",
		"DOPPEL_LOG_LEVEL=info")
	t.Cleanup(func() {
		if t.Failed() {
			if b, err := os.ReadFile(f.logPath); err == nil {
				t.Logf("doppel log (last 4000 bytes):\n%s", tail(b, 4000))
			}
		}
	})
	return f
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

type proc struct {
	cmd *exec.Cmd
	// exited is closed when the process has been waited for; err is its exit error then.
	exited chan struct{}
	err    error
}

// start runs `doppel serve` as a child process, appending to the fixture's log.
func (f *fixture) start(t *testing.T) *proc {
	t.Helper()
	logFile, err := os.OpenFile(f.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	require.NoError(t, err)
	cmd := exec.Command(doppelBin, "serve")
	// Each process gets its own HTTP and admin ports (several may run at once); f.http and f.admin
	// are the newest ones.
	f.http, f.admin = testinfra.FreeAddr(t), testinfra.FreeAddr(t)
	cmd.Env = append(append([]string(nil), f.env...), "DOPPEL_HTTP_ADDR="+f.http, "DOPPEL_ADMIN_ADDR="+f.admin)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// A test binary that dies (a -timeout panic runs no Cleanup) takes its doppel with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start())
	p := &proc{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logFile.Close()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.exited
	})
	return p
}

func (p *proc) kill9(t *testing.T) {
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGKILL))
	<-p.exited
}

// alive fails the test if the process has exited.
func (p *proc) alive(t *testing.T) {
	select {
	case <-p.exited:
		t.Fatalf("doppel exited: %v", p.err)
	default:
	}
}

func (f *fixture) count(t *testing.T, query string) int {
	var n int
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.pool.QueryRow(ctx, query).Scan(&n); err != nil {
		return -1 // the database may be down on purpose
	}
	return n
}

func (f *fixture) checks(t *testing.T) int { return f.count(t, `SELECT count(*) FROM idv_checks`) }

// population registers n users in rings of three and returns their events.
func (f *fixture) population(t *testing.T, prefix string, n int) ([]string, []kafka.Message) {
	sigs := make([]string, n)
	msgs := make([]kafka.Message, n)
	for i := range n {
		user := fmt.Sprintf("%s-%04d", prefix, i)
		sigs[i] = testinfra.AddSession(t, f.sim, user, fmt.Sprintf("%s-face-%d", prefix, i/3), "PASS")
		body, _ := json.Marshal(duplicate.Event{SignatureID: sigs[i], Type: duplicate.EventTypeCompleted, UserID: user})
		msgs[i] = kafka.Message{Key: []byte(sigs[i]), Value: body}
	}
	return sigs, msgs
}

// verify checks the ledger: every event stored once, links consistent with the checks, every alert
// published once with its alertId, and returns how many signatures were searched more than once.
func (f *fixture) verify(t *testing.T, sigs []string) (billedTwice int) {
	t.Helper()
	require.Equal(t, len(sigs), f.checks(t), "every event has exactly one stored outcome")
	stats := f.sim.Stats()
	for _, s := range sigs {
		n := stats.FaceSearchBySignature[s]
		require.GreaterOrEqual(t, n, int64(1), "signature %s never searched", s)
		if n > 1 {
			billedTwice++
		}
	}
	// Each link's seen_count must equal the number of stored checks that matched the pair: a link
	// applied twice for one check would show here.
	require.Zero(t, f.count(t, `
		SELECT count(*) FROM duplicate_links l
		WHERE l.seen_count <> (SELECT count(*) FROM idv_checks c
			WHERE (c.user_id = l.user_id_low AND l.user_id_high = ANY(c.matched_user_ids))
			   OR (c.user_id = l.user_id_high AND l.user_id_low = ANY(c.matched_user_ids)))`))
	wantLinks := len(sigs) / 3 * 3 // rings of three have three links each
	if len(sigs)%3 == 2 {
		wantLinks++ // a last ring of two
	}
	require.Equal(t, wantLinks, f.count(t, `SELECT count(*) FROM duplicate_links`))

	testinfra.Eventually(t, 30*time.Second, func() bool {
		return f.count(t, `SELECT count(*) FROM alerts WHERE published_at IS NULL`) == 0
	}, "outbox drained")
	rows, err := f.pool.Query(context.Background(), `SELECT alert_id::text FROM alerts`)
	require.NoError(t, err)
	stored, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	published := map[string]int{}
	for _, m := range testinfra.ReadAllFrom(t, f.brokers, f.alerts, len(stored)*2, 5*time.Second) {
		var a duplicate.Alert
		require.NoError(t, json.Unmarshal(m.Value, &a))
		published[a.AlertID]++
	}
	for _, id := range stored {
		require.NotZero(t, published[id], "alert %s stored but never published", id)
	}
	require.Len(t, published, len(stored), "no alert published under an id the outbox does not hold")
	// Each alert once, even across a kill -9 between publishing and marking (the relay reads the
	// topic back before publishing what the outbox holds unmarked), a broker or a database restart.
	repeated := 0
	for _, n := range published {
		if n > 1 {
			repeated++
		}
	}
	require.Zero(t, repeated, "alertIds published more than once, of %d", len(stored))
	return billedTwice
}

func waitFor(t *testing.T, timeout time.Duration, cond func() bool, msg string) {
	t.Helper()
	testinfra.Eventually(t, timeout, cond, "%s", msg)
}

func readyz(addr string) (int, string) {
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestKillNineMidStreamLosesNothingAndDoublesNothing(t *testing.T) {
	f := setup(t)
	sigs, msgs := f.population(t, "k9", 600)
	testinfra.Produce(t, f.events, msgs...)

	p := f.start(t)
	for _, at := range []int{100, 240} { // the second at 40%, as in issue 21
		waitFor(t, 60*time.Second, func() bool { return f.checks(t) >= at }, fmt.Sprintf("%d stored", at))
		p.kill9(t)
		require.Less(t, f.checks(t), len(sigs), "killed mid-stream")
		p = f.start(t)
	}
	waitFor(t, 90*time.Second, func() bool { return f.checks(t) >= len(sigs) }, "all stored after two kill -9")
	billedTwice := f.verify(t, sigs)
	// Only a search in flight at the moment of a kill can be repeated (its outcome was not stored):
	// at most one per worker per kill.
	require.LessOrEqual(t, billedTwice, 2*8)
	t.Logf("searched twice after two kill -9 with 8 workers: %d of %d", billedTwice, len(sigs))
}

// The crash window of issue 21, aimed at: doppel is killed at a moment when the alert topic holds
// more alerts than the outbox has marked, that is, between the broker's acknowledgement of some
// alerts and their mark. The next process publishes none of them again.
func TestKillNineBetweenPublishingAndMarkingPublishesNoAlertTwice(t *testing.T) {
	f := setup(t)
	sigs, msgs := f.population(t, "pm", 1500)
	testinfra.Produce(t, f.events, msgs...)
	client, closeIdle := topic.NewClient(testinfra.Brokers(t), 5*time.Second)
	defer closeIdle()
	onTopic := func() int64 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		bounds, err := topic.Offsets(ctx, client, f.alerts)
		require.NoError(t, err)
		var n int64
		for _, b := range bounds {
			n += b.LastOffset - b.FirstOffset
		}
		return n
	}
	marked := func() int64 { return int64(f.count(t, `SELECT count(*) FROM alerts WHERE published_at IS NOT NULL`)) }

	p := f.start(t)
	caught := int64(0) // alerts on the topic and unmarked when a kill landed
	// At 40% of the events, as in issue 21; again later if that kill missed the window.
	for kill, percent := range []int{40, 55, 70, 85} {
		if caught > 0 {
			break
		}
		waitFor(t, 60*time.Second, func() bool { return f.checks(t) >= len(sigs)*percent/100 }, fmt.Sprintf("%d%% stored", percent))
		// Read the outbox first: an alert is marked only after it is on the topic, so a topic
		// ahead of the outbox read after it means alerts published and not yet marked.
		waitFor(t, 30*time.Second, func() bool { m := marked(); return onTopic() > m }, "the topic ahead of the outbox")
		p.kill9(t)
		caught = onTopic() - marked()
		t.Logf("kill -9 #%d at %d of %d stored: %d alerts on the topic and unmarked", kill+1, f.checks(t), len(sigs), caught)
		require.Less(t, f.checks(t), len(sigs), "killed mid-stream")
		p = f.start(t)
	}
	require.Positive(t, caught, "no kill landed between publishing and marking")
	waitFor(t, 120*time.Second, func() bool { return f.checks(t) >= len(sigs) }, "all stored after the kill")
	f.verify(t, sigs) // each alert once
}

func TestDatabaseRestartPausesProcessingAndLosesNothing(t *testing.T) {
	f := setup(t)
	sigs, msgs := f.population(t, "pg", 300)
	p := f.start(t)
	testinfra.Produce(t, f.events, msgs[:150]...)
	waitFor(t, 60*time.Second, func() bool { return f.checks(t) >= 50 }, "first events stored")

	infra(t, "stop-postgres")
	testinfra.Produce(t, f.events, msgs[150:]...)
	waitFor(t, 20*time.Second, func() bool {
		status, body := readyz(f.admin) // the reasons are on the admin listener
		return status == http.StatusServiceUnavailable && strings.Contains(body, "database")
	}, "readyz names the database while it is down")
	time.Sleep(2 * time.Second) // the pipeline keeps retrying against a dead database
	infra(t, "start-postgres")

	waitFor(t, 90*time.Second, func() bool { return f.checks(t) >= len(sigs) }, "all stored after the restart")
	require.Zero(t, f.verify(t, sigs), "a database outage never causes a second search")
	waitFor(t, 15*time.Second, func() bool {
		status, _ := readyz(f.http)
		return status == http.StatusOK
	}, "ready again at the next readiness round")
	p.alive(t)
}

func TestBrokerRestartIsSurvived(t *testing.T) {
	f := setup(t)
	sigs, msgs := f.population(t, "kb", 300)
	p := f.start(t)
	testinfra.Produce(t, f.events, msgs[:150]...)
	waitFor(t, 60*time.Second, func() bool { return f.checks(t) >= 150 }, "first half stored")

	infra(t, "stop-kafka")
	time.Sleep(2 * time.Second)
	infra(t, "start-kafka")
	testinfra.Produce(t, f.events, msgs[150:]...)

	waitFor(t, 120*time.Second, func() bool { return f.checks(t) >= len(sigs) }, "second half stored after the broker restart")
	f.verify(t, sigs)
	p.alive(t)
}

func TestSigtermShutsDownWithinTheBoundAndCommitsWhatFinished(t *testing.T) {
	f := setup(t)
	sigs, msgs := f.population(t, "term", 200)
	testinfra.Produce(t, f.events, msgs...)
	p := f.start(t)
	waitFor(t, 60*time.Second, func() bool { return f.checks(t) >= 50 }, "some stored")

	start := time.Now()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-p.exited:
		require.NoError(t, p.err, "a graceful stop exits 0")
	case <-time.After(15 * time.Second):
		t.Fatal("doppel did not exit within DOPPEL_SHUTDOWN_TIMEOUT (10s) + margin")
	}
	t.Logf("SIGTERM to exit: %s", time.Since(start).Round(time.Millisecond))

	stored := f.checks(t)
	p = f.start(t)
	waitFor(t, 60*time.Second, func() bool { return f.checks(t) >= len(sigs) }, "rest stored after restart")
	// A graceful stop finishes or abandons in-flight work and commits what finished, so nothing
	// stored before the stop is searched again.
	require.Zero(t, f.verify(t, sigs), "stored %d before SIGTERM; none searched twice", stored)
}
