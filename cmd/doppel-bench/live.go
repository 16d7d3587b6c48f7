package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/segmentio/kafka-go"

	"github.com/doppelhq/doppel/internal/harness/childproc"
	"github.com/doppelhq/doppel/internal/harness/launch"
	"github.com/doppelhq/doppel/internal/harness/runenv"
	"github.com/doppelhq/doppel/internal/pause"
	"github.com/doppelhq/doppel/internal/topic"
)

// sampleEvery is the period of the progress samples behind the time series.
const sampleEvery = 250 * time.Millisecond

// scenarioTopics are the fresh topics of one scenario.
type scenarioTopics struct {
	events, alerts, dlq string
}

func (b *bench) topicsFor(name string) scenarioTopics {
	prefix := fmt.Sprintf("bench-%s-%s", b.runID, name)
	t := scenarioTopics{events: prefix + "-events", alerts: prefix + "-alerts", dlq: prefix + "-dlq"}
	b.created = append(b.created, t.events, t.alerts, t.dlq)
	return t
}

// ---------------------------------------------------------------- doppel serve

// doppelSpec is how one scenario runs `doppel serve`.
type doppelSpec struct {
	name    string
	dbURL   string
	topics  scenarioTopics
	sim     *simulator
	qps     float64
	workers int
	// env is added to the run's settings (after -doppel-env).
	env []string
}

// doppelProc is a running `doppel serve`.
type doppelProc struct {
	proc      *childproc.Process
	httpAddr  string
	adminAddr string
	started   time.Time
}

// metrics scrapes doppel's /metrics (on its admin listener), summing each metric's series over their labels. It is
// best-effort: a metric doppel does not (or no longer) export is simply absent.
func (d *doppelProc) metrics(ctx context.Context) map[string]float64 {
	out := map[string]float64{}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+d.adminAddr+"/metrics", nil)
	if err != nil {
		return out
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return out
	}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 4<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		nameEnd := strings.IndexAny(line, "{ ")
		valStart := strings.LastIndexByte(line, ' ')
		if nameEnd <= 0 || valStart < nameEnd {
			continue
		}
		v, err := strconv.ParseFloat(line[valStart+1:], 64)
		if err != nil {
			continue
		}
		out[line[:nameEnd]] += v
	}
	return out
}

func (b *bench) startDoppel(ctx context.Context, s doppelSpec) (*doppelProc, error) {
	env := launch.DoppelSettings{
		DatabaseURL:  s.dbURL,
		Brokers:      b.brokers,
		Group:        fmt.Sprintf("bench-%s-%s", b.runID, s.name),
		Events:       s.topics.events,
		Alerts:       s.topics.alerts,
		DLQ:          s.topics.dlq,
		Partitions:   b.opts.partitions,
		SimulatorURL: s.sim.URL,
		QPS:          s.qps,
		Workers:      s.workers,
	}.Env(append(slices.Clone(b.opts.doppelEnv), s.env...)...)
	d, err := launch.StartDoppel("doppel ("+s.name+")", filepath.Join(b.opts.binDir, "doppel"),
		launch.Log{Path: filepath.Join(b.logDir, "doppel-"+s.name+".log")}, env)
	if err != nil {
		return nil, err
	}
	if err := d.WaitReady(ctx, 60*time.Second); err != nil {
		_, _ = d.Proc.Stop(10 * time.Second)
		return nil, fmt.Errorf("doppel serve (%s) did not become ready: %w", s.name, err)
	}
	return &doppelProc{proc: d.Proc, httpAddr: d.HTTPAddr, adminAddr: d.AdminAddr, started: d.Started}, nil
}

// ---------------------------------------------------------------- alerts read back

// alertSeen is one alert read from the alert topic.
type alertSeen struct {
	signatureID string
	// kafkaTime is the message's CreateTime, stamped by doppel's relay writer when it sent the
	// produce request (millisecond resolution).
	kafkaTime time.Time
	// recvTime is when the benchmark read it: the alert was then on the topic, visible to
	// subscribers.
	recvTime time.Time
}

// alertCollector reads an alert topic from the start with one partition reader per partition
// (no consumer group, so no join delay), as a subscriber would.
type alertCollector struct {
	mu     sync.Mutex
	seen   map[string]alertSeen // by alertId
	count  atomic.Int64
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func startAlertCollector(ctx context.Context, brokers []string, topic string, partitions int) *alertCollector {
	ctx, cancel := context.WithCancel(ctx)
	c := &alertCollector{seen: map[string]alertSeen{}, cancel: cancel}
	for p := range partitions {
		r := kafka.NewReader(kafka.ReaderConfig{
			Brokers:         brokers,
			Topic:           topic,
			Partition:       p,
			MinBytes:        1,
			MaxBytes:        10 << 20,
			MaxWait:         100 * time.Millisecond,
			ReadLagInterval: -1,
			MaxAttempts:     10,
		})
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			defer r.Close()
			for {
				m, err := r.ReadMessage(ctx)
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					if !pause.For(ctx, 100*time.Millisecond) {
						return
					}
					continue
				}
				now := time.Now()
				var a struct {
					AlertID     string `json:"alertId"`
					SignatureID string `json:"signatureId"`
				}
				_ = json.Unmarshal(m.Value, &a)
				if a.AlertID == "" {
					a.AlertID = fmt.Sprintf("p%d-o%d", m.Partition, m.Offset)
				}
				c.mu.Lock()
				if _, dup := c.seen[a.AlertID]; !dup {
					c.seen[a.AlertID] = alertSeen{signatureID: a.SignatureID, kafkaTime: m.Time, recvTime: now}
					c.count.Add(1)
				}
				c.mu.Unlock()
			}
		}()
	}
	return c
}

func (c *alertCollector) stop() {
	c.cancel()
	c.wg.Wait()
}

// all returns a copy of what was read.
func (c *alertCollector) all() []alertSeen {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]alertSeen, 0, len(c.seen))
	for _, a := range c.seen {
		out = append(out, a)
	}
	return out
}

// ---------------------------------------------------------------- one doppel scenario

// sample is one progress observation.
type sample struct {
	// T is seconds since the doppel process was started.
	T float64 `json:"t"`
	// Stored is the rows in idv_checks: events with a stored outcome.
	Stored int64 `json:"stored"`
	// AlertsOnTopic is the distinct alerts read back from the alert topic.
	AlertsOnTopic int64 `json:"alertsOnTopic"`
	// RSSMB is the doppel process's resident memory.
	RSSMB float64 `json:"rssMB"`
}

// counts is what one progress query returned.
type counts struct {
	stored, alertRows, unpublished int64
}

// liveRun is a doppel process under observation, with its database connection, the alert reader
// and the CPU snapshot taken when it started.
type liveRun struct {
	b       *bench
	name    string
	doppel  *doppelProc
	sim     *simulator
	conn    *pgx.Conn
	dbURL   string
	alerts  *alertCollector
	roles   cpuRoles
	cpu0    cpuSnapshot
	samples []sample
	topics  scenarioTopics
	// walSyncs0 and walBytes0 are pg_stat_wal when the scenario started; ownQueries counts the
	// harness's queries on the scenario's database other than the progress samples.
	walSyncs0, walBytes0 int64
	ownQueries           int64
	// pgActive counts statements seen running, over activitySamples samples.
	pgActive        map[string]int
	activitySamples int
	// beforeFinish, when set, runs at the start of finish, while doppel and the connection are up.
	beforeFinish func()
	// countFrom, when set, makes the progress samples count only the checks and alerts stored
	// since then (index ranges): the run's database held older ones (r).
	countFrom time.Time
}

// begin creates the scenario's database and the alert and dead-letter topics (the events topic is
// the caller's), starts the alert reader and doppel, and takes the first CPU snapshot.
func (b *bench) begin(ctx context.Context, name string, topics scenarioTopics, sim *simulator, qps float64, workers int) (*liveRun, error) {
	return b.beginWith(ctx, name, topics, sim, qps, workers, nil)
}

// beginWith is begin with settings added to doppel's environment.
func (b *bench) beginWith(ctx context.Context, name string, topics scenarioTopics, sim *simulator, qps float64, workers int, env []string) (*liveRun, error) {
	dbURL, err := b.freshDatabase(ctx, "bench_"+name)
	if err != nil {
		return nil, err
	}
	return b.beginOn(ctx, name, dbURL, topics, sim, qps, workers, env)
}

// freshDatabase creates the database name (dropping an older one), with -pg-log-slow's settings.
func (b *bench) freshDatabase(ctx context.Context, name string) (string, error) {
	dbURL, err := runenv.FreshDatabase(ctx, b.baseDB, name)
	if err != nil {
		return "", err
	}
	if b.opts.pgLogSlow > 0 {
		if err := b.explainSlow(ctx, name); err != nil {
			return "", err
		}
	}
	return dbURL, nil
}

// beginOn is beginWith on an existing database.
func (b *bench) beginOn(ctx context.Context, name, dbURL string, topics scenarioTopics, sim *simulator, qps float64, workers int, env []string) (*liveRun, error) {
	if err := createTopics(ctx, b.brokers, b.opts.partitions, topics.alerts, topics.dlq); err != nil {
		return nil, err
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	lr := &liveRun{b: b, name: name, sim: sim, conn: conn, dbURL: dbURL, topics: topics}
	lr.walSyncs0, lr.walBytes0, _ = walStats(ctx, conn)
	var backend int
	_ = conn.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&backend)
	lr.ownQueries = 2
	lr.alerts = startAlertCollector(ctx, b.brokers, topics.alerts, b.opts.partitions)
	lr.doppel, err = b.startDoppel(ctx, doppelSpec{name: name, dbURL: dbURL, topics: topics, sim: sim, qps: qps, workers: workers, env: env})
	if err != nil {
		lr.alerts.stop()
		conn.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	lr.roles = cpuRoles{"doppel": lr.doppel.proc.Pid(), "advance-sim": sim.Proc.Pid(), "kafka": b.infra.kafka,
		"bench": selfPid(), benchBackendRole: backend}
	lr.cpu0 = lr.roles.snapshot(b.infra.postmaster)
	return lr, nil
}

// sample records one progress observation. Before doppel has migrated its schema the counts are
// zero.
func (lr *liveRun) sample(ctx context.Context) counts {
	var c counts
	if lr.conn.IsClosed() { // a timed-out query closes the connection
		if conn, err := pgxConnect(ctx, lr.dbURL); err == nil {
			lr.conn = conn
		}
	}
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var err error
	if lr.countFrom.IsZero() {
		err = lr.conn.QueryRow(qctx, `SELECT (SELECT count(*) FROM idv_checks), (SELECT count(*) FROM alerts),
		(SELECT count(*) FROM alerts WHERE published_at IS NULL)`).Scan(&c.stored, &c.alertRows, &c.unpublished)
	} else {
		err = lr.conn.QueryRow(qctx, `SELECT (SELECT count(*) FROM idv_checks WHERE checked_at >= $1),
		(SELECT count(*) FROM alerts WHERE detected_at >= $1),
		(SELECT count(*) FROM alerts WHERE published_at IS NULL)`, lr.countFrom).Scan(&c.stored, &c.alertRows, &c.unpublished)
	}
	if err != nil {
		c = counts{}
	}
	lr.sampleActivity(qctx)
	lr.samples = append(lr.samples, sample{
		T:             time.Since(lr.doppel.started).Seconds(),
		Stored:        c.stored,
		AlertsOnTopic: lr.alerts.count.Load(),
		RSSMB:         float64(memKB(lr.doppel.proc.Pid(), "VmRSS")) / 1024,
	})
	return c
}

// explainSlow makes every new session of database name log the plan of its statements slower than
// -pg-log-slow (auto_explain, loaded per session), for diagnosing where PostgreSQL spends its time.
func (b *bench) explainSlow(ctx context.Context, name string) error {
	conn, err := pgxConnect(ctx, b.baseDB)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	db := pgx.Identifier{name}.Sanitize()
	for _, stmt := range []string{
		"ALTER DATABASE " + db + " SET session_preload_libraries = 'auto_explain'",
		fmt.Sprintf("ALTER DATABASE %s SET auto_explain.log_min_duration = %d", db, b.opts.pgLogSlow.Milliseconds()),
		"ALTER DATABASE " + db + " SET auto_explain.log_analyze = on",
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("-pg-log-slow: %w", err)
		}
	}
	b.logf("plans of statements slower than %s in %s go to PostgreSQL's log", b.opts.pgLogSlow, name)
	return nil
}

// sampleActivity counts the statements PostgreSQL is running for doppel right now, by the start of
// their text and what they wait on: sampled often enough, it shows where the database's time goes.
func (lr *liveRun) sampleActivity(ctx context.Context) {
	rows, err := lr.conn.Query(ctx, `SELECT left(regexp_replace(query, '\s+', ' ', 'g'), 72),
		coalesce(wait_event_type || ':' || wait_event, 'CPU')
		FROM pg_stat_activity
		WHERE datname = current_database() AND state = 'active' AND pid <> pg_backend_pid()`)
	lr.ownQueries++
	if err != nil {
		return
	}
	defer rows.Close()
	if lr.pgActive == nil {
		lr.pgActive = map[string]int{}
	}
	lr.activitySamples++
	for rows.Next() {
		var q, wait string
		if rows.Scan(&q, &wait) == nil {
			lr.pgActive[strings.TrimSpace(q)+" ["+wait+"]"]++
		}
	}
}

// activeStatement is how often a statement was seen running in PostgreSQL.
type activeStatement struct {
	Statement string `json:"statement"`
	// Share is the fraction of samples in which it was running (summed over backends, so the shares
	// add up to the average number of busy backends).
	Share float64 `json:"share"`
}

// topActivity returns the most often seen statements.
func (lr *liveRun) topActivity(n int) []activeStatement {
	var out []activeStatement
	for q, c := range lr.pgActive {
		out = append(out, activeStatement{Statement: q, Share: float64(c) / float64(max(1, lr.activitySamples))})
	}
	slices.SortFunc(out, func(a, b activeStatement) int { return cmp.Compare(b.Share, a.Share) })
	return out[:min(n, len(out))]
}

// liveEnd is what finishing a liveRun measured.
type liveEnd struct {
	cpu         map[string]float64
	cpuSeconds  map[string]float64
	cpuSnapshot cpuSnapshot
	peakRSSMB   float64
	deadLetters int64
	stopErr     error
	pg          *pgActivity
	active      []activeStatement
}

// pgActivity is the PostgreSQL work of a scenario, per event stored, from the server's statistics:
// transactions in the scenario's database (the harness's own progress queries subtracted) and, from
// the cluster-wide pg_stat_wal, WAL flushes and bytes (nothing else writes while a scenario runs).
type pgActivity struct {
	Events               int64   `json:"events"`
	Transactions         int64   `json:"transactions"`
	WALSyncs             int64   `json:"walSyncs"`
	WALBytes             int64   `json:"walBytes"`
	TransactionsPerEvent float64 `json:"transactionsPerEvent"`
	WALSyncsPerEvent     float64 `json:"walSyncsPerEvent"`
	WALBytesPerEvent     float64 `json:"walBytesPerEvent"`
}

// walStats reads the cluster's WAL flush count and bytes.
func walStats(ctx context.Context, conn *pgx.Conn) (syncs, bytes int64, err error) {
	var b float64 // wal_bytes is numeric
	err = conn.QueryRow(ctx, `SELECT wal_sync, wal_bytes::float8 FROM pg_stat_wal`).Scan(&syncs, &b)
	return syncs, int64(b), err
}

// pgWork reads the statistics once doppel has stopped (its backends flush them on exit).
func (lr *liveRun) pgWork(ctx context.Context) *pgActivity {
	if lr.conn.IsClosed() {
		conn, err := pgxConnect(ctx, lr.dbURL)
		if err != nil {
			return nil
		}
		lr.conn = conn
	}
	pause.For(ctx, 500*time.Millisecond)
	var a pgActivity
	if err := lr.conn.QueryRow(ctx, `SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()`).Scan(&a.Transactions); err != nil {
		return nil
	}
	if err := lr.conn.QueryRow(ctx, `SELECT count(*) FROM idv_checks`).Scan(&a.Events); err != nil || a.Events == 0 {
		return nil
	}
	syncs, bytes, err := walStats(ctx, lr.conn)
	if err != nil || lr.walBytes0 == 0 {
		return nil
	}
	a.Transactions = max(0, a.Transactions-int64(len(lr.samples))-lr.ownQueries)
	a.WALSyncs, a.WALBytes = syncs-lr.walSyncs0, bytes-lr.walBytes0
	n := float64(a.Events)
	a.TransactionsPerEvent, a.WALSyncsPerEvent, a.WALBytesPerEvent = float64(a.Transactions)/n, float64(a.WALSyncs)/n, float64(a.WALBytes)/n
	return &a
}

// finish takes the last CPU snapshot and the peak RSS while doppel still runs, then stops doppel
// and the alert reader.
func (lr *liveRun) finish(ctx context.Context) liveEnd {
	var e liveEnd
	snap := lr.roles.snapshot(lr.b.infra.postmaster)
	if lr.beforeFinish != nil {
		lr.beforeFinish()
		lr.ownQueries++
	}
	e.cpu, e.cpuSeconds, e.cpuSnapshot = cpuUse(lr.cpu0, snap), cpuSeconds(lr.cpu0, snap), snap
	e.peakRSSMB = float64(memKB(lr.doppel.proc.Pid(), "VmHWM")) / 1024
	e.active = lr.topActivity(8)
	_, e.stopErr = lr.doppel.proc.Stop(40 * time.Second)
	lr.alerts.stop()
	if n, err := topic.Messages(ctx, lr.b.brokers, lr.topics.dlq); err == nil {
		e.deadLetters = n
	}
	e.pg = lr.pgWork(ctx)
	lr.conn.Close(context.WithoutCancel(ctx))
	return e
}

// every calls f every sampleEvery until f returns false or ctx ends.
func every(ctx context.Context, f func() bool) {
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if !f() {
				return
			}
		}
	}
}
