package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/segmentio/kafka-go"

	"github.com/doppelhq/doppel/internal/consumer"
	"github.com/doppelhq/doppel/internal/harness/advancesim"
	"github.com/doppelhq/doppel/internal/harness/childproc"
	"github.com/doppelhq/doppel/internal/harness/launch"
	"github.com/doppelhq/doppel/internal/harness/produce"
	"github.com/doppelhq/doppel/internal/harness/runenv"
	"github.com/doppelhq/doppel/internal/pause"
)

// soak is one run: its infrastructure names, its children and what it observed.
type soak struct {
	opts    options
	baseDB  string
	brokers []string
	stdout  io.Writer
	stderr  io.Writer
	rng     *rand.Rand

	runID                               string
	dbName, dbURL                       string
	topicEvents, topicAlerts, topicDLQ  string
	group                               string
	logDir                              string
	started, prodStart, prodEnd, settle time.Time

	pop    *population
	sim    *simulator
	doppel *supervisor
	pool   *pgxpool.Pool

	mu              sync.Mutex
	ackedMsgs       int
	ackedKeys       map[string]int
	produceAttempts int // failed write attempts, retried
	produceErr      error
	faults          []faultRecord
	busyBursts      int
	snapshots       []billingSnapshot
	res             *resolution

	// The broker's and the postmaster's pids as the soak left them, to notice restarts it did not
	// make; restarting is set while it makes one.
	expKafka, expPG string
	restarting      bool
	foreignInfra    []string
	othersSeen      map[string]bool
}

// faultRecord is one fault the soak caused, in seconds since production started.
type faultRecord struct {
	Name   string  `json:"name"`
	Start  float64 `json:"startSeconds"`
	End    float64 `json:"endSeconds"`
	Detail string  `json:"detail,omitempty"`
	Error  string  `json:"error,omitempty"`
}

// billingSnapshot is the simulator's billing counters at one moment, to date second searches.
type billingSnapshot struct {
	label  string
	counts map[string]int64
}

func newSoak(opts options, getenv func(string) string, stdout, stderr io.Writer) (*soak, error) {
	baseDB, brokers, err := runenv.Servers(getenv, "the soak", "scripts/soak.sh (make soak)")
	if err != nil {
		return nil, err
	}
	if err := runenv.CheckBinaries(opts.binDir, "scripts/soak.sh", "doppel", "advance-sim"); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(opts.root, "scripts", "infra.sh")); err != nil {
		return nil, errors.New("scripts/infra.sh not found: run the soak from the repository root")
	}
	runID := time.Now().UTC().Format("20060102_150405")
	return &soak{
		opts: opts, baseDB: baseDB, brokers: brokers, stdout: stdout, stderr: stderr,
		rng:         rand.New(rand.NewPCG(opts.seed, 0x50a4c4a05)),
		runID:       runID,
		dbName:      "soak_" + runID,
		topicEvents: "soak." + runID + ".idv.completed",
		topicAlerts: "soak." + runID + ".doppel.alerts",
		topicDLQ:    "soak." + runID + ".idv.completed.dlq",
		group:       "doppel-soak-" + runID,
		logDir:      filepath.Join(opts.outDir, "logs"),
		ackedKeys:   map[string]int{},
	}, nil
}

func (s *soak) logf(format string, args ...any) {
	el := time.Since(s.started).Round(time.Second)
	fmt.Fprintf(s.stderr, "[soak %6s] %s\n", el, fmt.Sprintf(format, args...))
}

// since returns seconds since production started.
func (s *soak) since(t time.Time) float64 {
	if s.prodStart.IsZero() {
		return 0
	}
	return math.Round(t.Sub(s.prodStart).Seconds()*10) / 10
}

func (s *soak) run(ctx context.Context) (int, error) {
	s.started = time.Now()
	if err := os.MkdirAll(s.logDir, 0o755); err != nil {
		return 2, err
	}
	if err := s.waitForOthers(ctx); err != nil {
		return 2, err
	}
	s.started = time.Now() // the wall time counts from here, not from the wait
	s.expKafka, s.expPG = infraPids(s.opts.root)
	s.logf("run %s, seed %d: %d messages over %s, %d workers, %d kill -9, vendor errors %.0f%% + %.0f%% HTTP 503",
		s.runID, s.opts.seed, s.opts.events, s.opts.duration, s.opts.workers, s.opts.kills,
		100*s.opts.errorRate, 100*s.opts.http5xxRate)
	if err := s.prepare(ctx); err != nil {
		s.cleanup()
		return 2, err
	}
	defer s.cleanup()

	if err := s.produceWithFaults(ctx); err != nil {
		return 2, err
	}
	settled := s.waitSettled(ctx)
	stopTook, stopErr, stopped := s.doppel.stop(30 * time.Second)
	s.logf("doppel stopped with SIGTERM in %s: %s", stopTook.Round(time.Millisecond), childproc.ExitText(stopErr))
	s.watchInfra()

	// An interrupted run still gets its ledger (of what it reached), but does not replace docs/soak.md.
	interrupted := ctx.Err() != nil
	docsPath := s.opts.docsPath
	if interrupted {
		docsPath = ""
	}
	l, err := s.account(ctx, settled)
	if err != nil {
		return 2, fmt.Errorf("compute the ledger: %w", err)
	}
	l.Faults.GracefulStop = gracefulStop{Seconds: math.Round(stopTook.Seconds()*100) / 100, Status: childproc.ExitText(stopErr), Ran: stopped}
	if interrupted {
		l.Verdict.Failures = append(l.Verdict.Failures, fmt.Sprintf("the soak was interrupted or ran out of time (-max-duration %s)", s.opts.maxDuration))
	}
	l.judge()
	fmt.Fprintln(s.stdout)
	fmt.Fprint(s.stdout, l.text())
	if err := l.write(s.opts.outDir, docsPath); err != nil {
		return 2, err
	}
	fmt.Fprintf(s.stdout, "\nwrote %s", filepath.Join(s.opts.outDir, "ledger.json"))
	if docsPath != "" {
		fmt.Fprintf(s.stdout, " and %s", docsPath)
	}
	fmt.Fprintf(s.stdout, " (logs in %s; database %s kept until the next soak)\n", s.logDir, s.dbName)
	if !l.Verdict.Pass {
		return 1, nil
	}
	return 0, nil
}

// prepare makes the database, the topics, the population, and starts the simulator and doppel.
func (s *soak) prepare(ctx context.Context) error {
	if err := s.forgetEarlierSoaks(ctx); err != nil {
		s.logf("could not remove an earlier soak's database or topics (going on): %v", err)
	}
	var err error
	s.dbURL, err = runenv.FreshDatabase(ctx, s.baseDB, s.dbName)
	if err != nil {
		return err
	}
	if err := createTopics(ctx, s.brokers, s.topicEvents, s.topicAlerts, s.topicDLQ, 6); err != nil {
		return err
	}
	poolCfg, err := pgxpool.ParseConfig(s.dbURL)
	if err != nil {
		return err
	}
	poolCfg.MaxConns = 4
	s.pool, err = pgxpool.NewWithConfig(ctx, poolCfg)
	if err != nil {
		return err
	}

	s.pop = newPopulation(s.opts.events, s.opts.ringFraction, s.opts.seed)
	sim, err := launch.StartSimulator(ctx, launch.SimulatorConfig{
		Name:     "advance-sim",
		Bin:      filepath.Join(s.opts.binDir, "advance-sim"),
		Log:      launch.Log{Path: filepath.Join(s.logDir, "advance-sim.log"), AppendTag: "doppel-soak"},
		Latency:  s.opts.simLatency,
		Settings: []string{fmt.Sprintf("ADVANCE_SIM_SEED=%d", s.opts.seed%math.MaxInt32)},
	})
	if err != nil {
		return err
	}
	s.sim = &simulator{Simulator: sim}
	if err := s.pop.seed(ctx, s.sim, s.rng); err != nil {
		return err
	}
	s.logf("seeded advance-sim (%s) with %d verifications; %d distinct events (%d users in %d rings), %d messages with resends",
		s.sim.URL, s.pop.seededCount(), len(s.pop.events), s.pop.inRing, s.pop.rings, len(s.pop.sequence))

	doppelLog := filepath.Join(s.logDir, "doppel.log")
	_ = os.Remove(doppelLog)
	s.doppel = &supervisor{bin: filepath.Join(s.opts.binDir, "doppel"), logPath: doppelLog, env: launch.DoppelSettings{
		DatabaseURL:  s.dbURL,
		Brokers:      s.brokers,
		Group:        s.group,
		Events:       s.topicEvents,
		Alerts:       s.topicAlerts,
		DLQ:          s.topicDLQ,
		Partitions:   6,
		SimulatorURL: s.sim.URL,
		QPS:          0,
		Workers:      s.opts.workers,
	}.Env(
		// About 20% of calls fail at random: 12 tries make running out (0.2^12) practically
		// impossible, and 50 failures in a row are needed before the breaker calls the vendor down.
		"DOPPEL_RETRY_MAX_ATTEMPTS=12", "DOPPEL_RETRY_INITIAL_INTERVAL=100ms", "DOPPEL_RETRY_MAX_INTERVAL=5s",
		"DOPPEL_RETRY_MAX_ELAPSED=3m",
		"DOPPEL_BREAKER_FAILURES=50", "DOPPEL_BREAKER_OPEN_FOR=2s",
		"DOPPEL_SHUTDOWN_TIMEOUT=20s")}
	p, err := s.doppel.start()
	if err != nil {
		return err
	}
	_, addr := s.doppel.current()
	if err := childproc.WaitHTTP(ctx, "http://"+addr+"/readyz", 90*time.Second, p.Process); err != nil {
		return fmt.Errorf("doppel serve did not become ready (see %s): %w", doppelLog, err)
	}
	s.logf("doppel ready on http://%s (pid %d); database %s, topics %s*, group %s", addr, p.Pid(),
		s.dbName, strings.TrimSuffix(s.topicEvents, "idv.completed"), s.group)
	return nil
}

// forgetEarlierSoaks drops the databases and topics earlier soaks left for inspection.
func (s *soak) forgetEarlierSoaks(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.baseDB)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, `SELECT datname FROM pg_database WHERE datname LIKE 'soak\_%' ORDER BY 1 LIMIT 100`)
	if err != nil {
		return err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, n := range names {
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{n}.Sanitize()+" WITH (FORCE)"); err != nil {
			return err
		}
	}
	old, err := produce.TopicsWithPrefix(ctx, s.brokers, "soak.", 300)
	if err != nil {
		return err
	}
	if err := produce.DeleteTopics(ctx, s.brokers, old...); err != nil {
		return err
	}
	if len(names)+len(old) > 0 {
		s.logf("removed %d databases and %d topics of earlier soaks", len(names), len(old))
	}
	return nil
}

func (s *soak) cleanup() {
	if s.doppel != nil {
		_, _, _ = s.doppel.stop(30 * time.Second)
	}
	if s.sim != nil {
		_ = s.sim.Stop(10 * time.Second)
	}
	if s.pool != nil {
		s.pool.Close()
	}
}

// ---------------------------------------------------------------- the production window

// produceWithFaults produces every event in waves while the faults happen, and returns when both are
// done.
func (s *soak) produceWithFaults(ctx context.Context) error {
	if err := s.sim.setFaults(ctx, advancesim.FaultsPatch{ErrorRate: ptr(s.opts.errorRate), HTTP5xxRate: ptr(s.opts.http5xxRate)}); err != nil {
		return fmt.Errorf("set vendor faults: %w", err)
	}
	s.prodStart = time.Now()
	s.snapshot(ctx, "production start")
	plan := s.planFaults()
	for _, a := range plan {
		s.logf("planned: %-22s at %5.1fs", a.name, a.at.Seconds())
	}

	var wg sync.WaitGroup
	prodCtx, stopAux := context.WithCancel(ctx)
	defer stopAux()
	wg.Add(3)
	go func() { defer wg.Done(); s.runFaults(ctx, plan) }()
	go func() { defer wg.Done(); s.busyBurstsLoop(prodCtx) }()
	go func() { defer wg.Done(); s.progressLoop(prodCtx) }()
	produceErr := s.produce(ctx)
	s.prodEnd = time.Now()
	s.logf("production done: %d messages acknowledged (%d write attempts failed and were retried)", s.ackedMsgs, s.produceAttempts)
	// The fault plan ends inside the window; wait for its last step to finish.
	faultsDone := make(chan struct{})
	go func() { wg.Wait(); close(faultsDone) }()
	stopAux()
	select {
	case <-faultsDone:
	case <-time.After(5 * time.Minute):
		return errors.New("the fault schedule did not finish within 5 minutes of the production window")
	}
	if produceErr != nil {
		s.produceErr = produceErr
		s.logf("producing failed: %v (the ledger counts only what was acknowledged)", produceErr)
	}
	if err := s.sim.setFaults(context.WithoutCancel(ctx), advancesim.FaultsPatch{ErrorRate: ptr(0.0), HTTP5xxRate: ptr(0.0), QPS: ptr(0.0)}); err != nil {
		return fmt.Errorf("clear vendor faults: %w", err)
	}
	s.snapshot(ctx, "production end")
	return nil
}

// waveRate is the production rate's multiplier at t: waves of 40 s between 0.2x and 1.8x.
func waveRate(t time.Duration) float64 {
	return 1 + 0.8*math.Sin(2*math.Pi*t.Seconds()/40)
}

// produce writes the sequence in waves over the production window; it never drops a message: one
// the broker did not acknowledge (it is down) is written again until it is.
func (s *soak) produce(ctx context.Context) error {
	w := newEventWriter(s.brokers, s.topicEvents)
	defer w.Close()
	seq := s.pop.sequence
	base := float64(len(seq)) / s.opts.duration.Seconds()
	const tick = 250 * time.Millisecond
	const maxChunk = 2000
	credit := 0.0
	next := 0
	last := time.Now()
	for next < len(seq) {
		if !pause.For(ctx, tick) {
			return ctx.Err()
		}
		now := time.Now()
		el := now.Sub(s.prodStart)
		credit += base * waveRate(el) * now.Sub(last).Seconds()
		last = now
		n := int(credit)
		if el >= s.opts.duration {
			n = len(seq) - next // the window is over: the rest now
		}
		n = min(n, len(seq)-next, maxChunk)
		if n <= 0 {
			continue
		}
		credit -= float64(n)
		chunk := seq[next : next+n]
		msgs := make([]kafka.Message, n)
		for i, ev := range chunk {
			msgs[i] = ev.message()
		}
		failed, err := produce.Acknowledged(ctx, w, msgs, 3*time.Minute, func(i int) {
			s.mu.Lock()
			s.ackedMsgs++
			s.ackedKeys[chunk[i].Key]++
			s.mu.Unlock()
		})
		s.mu.Lock()
		s.produceAttempts += failed
		s.mu.Unlock()
		next += n
		if err != nil {
			return err
		}
	}
	return nil
}

// planned is one step of the fault plan.
type planned struct {
	at   time.Duration
	name string
	kind string // kill, postgres, kafka
}

// planFaults places the PostgreSQL restart at about a third of the window, the broker restart at
// about two thirds, on a three-node Kafka the kill of a partition leader at about a sixth and of
// the active controller at about five sixths, and the kills of doppel at random moments at least
// 15 s away from those and each other.
func (s *soak) planFaults() []planned {
	d := s.opts.duration
	jitter := func(frac float64) time.Duration {
		return time.Duration((frac + 0.06*(s.rng.Float64()-0.5)) * float64(d))
	}
	var plan []planned
	if s.opts.infraRestarts {
		plan = append(plan, planned{at: jitter(0.35), name: "PostgreSQL stop/start", kind: "postgres"},
			planned{at: jitter(0.65), name: "Kafka stop/start", kind: "kafka"})
		if s.opts.nodeKills && len(s.brokers) >= 3 {
			plan = append(plan, planned{at: jitter(0.17), name: nodeKillPrefix + " (partition leader)", kind: "leader"},
				planned{at: jitter(0.83), name: nodeKillPrefix + " (active controller)", kind: "controller"})
		}
	}
	const sep = 15 * time.Second
	far := func(at time.Duration) bool {
		for _, p := range plan {
			if (at - p.at).Abs() < sep {
				return false
			}
		}
		return true
	}
	for range s.opts.kills {
		// In a window too short for the spacing, the last draw is kept: the kills crowd together.
		at := time.Duration((0.05 + 0.9*s.rng.Float64()) * float64(d))
		for try := 0; try < 2000 && !far(at); try++ {
			at = time.Duration((0.05 + 0.9*s.rng.Float64()) * float64(d))
		}
		plan = append(plan, planned{at: at, kind: "kill"})
	}
	sort.Slice(plan, func(i, j int) bool { return plan[i].at < plan[j].at })
	n := 0
	for i := range plan {
		if plan[i].kind == "kill" {
			n++
			plan[i].name = fmt.Sprintf("kill -9 doppel #%d", n)
		}
	}
	return plan
}

// runFaults carries out the plan, one step after another.
func (s *soak) runFaults(ctx context.Context, plan []planned) {
	for _, a := range plan {
		if wait := time.Until(s.prodStart.Add(a.at)); wait > 0 && !pause.For(ctx, wait) {
			return
		}
		s.snapshot(ctx, "before "+a.name)
		rec := faultRecord{Name: a.name, Start: s.since(time.Now())}
		var err error
		switch a.kind {
		case "kill":
			rec.Detail, err = s.killDoppel(ctx)
		case "postgres":
			rec.Detail, err = s.infraRestart(ctx, "postgres", s.opts.pgDown)
		case "kafka":
			rec.Detail, err = s.infraRestart(ctx, "kafka", s.opts.kafkaDown)
		case "leader", "controller":
			rec.Detail, err = s.killNode(ctx, a.kind)
		}
		rec.End = s.since(time.Now())
		if err != nil {
			rec.Error = err.Error()
			s.logf("%s FAILED: %v", a.name, err)
		} else {
			s.logf("%s: %s", a.name, rec.Detail)
		}
		s.mu.Lock()
		s.faults = append(s.faults, rec)
		s.mu.Unlock()
		s.snapshot(ctx, "after "+a.name)
	}
}

func (s *soak) killDoppel(ctx context.Context) (string, error) {
	pid, err := s.doppel.kill9()
	if err != nil {
		return "", err
	}
	down := time.Duration(500+s.rng.IntN(2500)) * time.Millisecond
	pause.For(ctx, down)
	if err := s.doppel.restart(); err != nil {
		return "", fmt.Errorf("restart doppel: %w", err)
	}
	p, addr := s.doppel.current()
	if err := childproc.WaitHTTP(ctx, "http://"+addr+"/healthz", 60*time.Second, p.Process); err != nil {
		return "", fmt.Errorf("doppel did not come back after the kill: %w", err)
	}
	return fmt.Sprintf("SIGKILL to pid %d, started again %.1fs later as pid %d", pid, down.Seconds(), p.Pid()), nil
}

// nodeKillPrefix begins the name of every kill of a Kafka node, so the ledger can count them.
const nodeKillPrefix = "Kafka node kill -9"

// killNode kills, with scripts/infra.sh, the node leading partition 0 of the events topic (which)
// "leader") or the active controller ("controller"), keeps it down for -kafka-down, and starts it.
func (s *soak) killNode(ctx context.Context, which string) (string, error) {
	var node int
	switch which {
	case "leader":
		n, err := produce.Leader(ctx, s.brokers, s.topicEvents, 0)
		if err != nil {
			return "", err
		}
		node = n
	default:
		out, err := s.infraOut(ctx, "kafka-controller")
		if err != nil {
			return "", err
		}
		if node, err = strconv.Atoi(out); err != nil {
			return "", fmt.Errorf("scripts/infra.sh kafka-controller printed %q, not a node id", out)
		}
	}
	n := strconv.Itoa(node)
	detail, err := s.restartWith(ctx, "kill-kafka-node "+n, "start-kafka-node "+n, s.opts.kafkaDown)
	return fmt.Sprintf("node %d: %s", node, detail), err
}

// infraRestart stops PostgreSQL or the broker with scripts/infra.sh, keeps it down, and starts it.
func (s *soak) infraRestart(ctx context.Context, what string, down time.Duration) (string, error) {
	return s.restartWith(ctx, "stop-"+what, "start-"+what, down)
}

// restartWith runs the scripts/infra.sh command stop, waits down, and runs start; the pids of the
// servers are taken again after, so that watchInfra does not report the soak's own restarts.
func (s *soak) restartWith(ctx context.Context, stop, start string, down time.Duration) (string, error) {
	s.watchInfra()
	s.mu.Lock()
	s.restarting = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.restarting = false
		s.expKafka, s.expPG = infraPids(s.opts.root)
		s.mu.Unlock()
	}()
	t0 := time.Now()
	// Once begun, the restart is carried through even if the soak is interrupted: a server must
	// never be left stopped.
	if err := s.infra(context.WithoutCancel(ctx), strings.Fields(stop)...); err != nil {
		return "", err
	}
	stopped := time.Now()
	pause.For(ctx, down)
	if err := s.infra(context.WithoutCancel(ctx), strings.Fields(start)...); err != nil {
		return "", err
	}
	return fmt.Sprintf("stop took %.1fs, down %.1fs, start took %.1fs", stopped.Sub(t0).Seconds(),
		down.Seconds(), time.Since(stopped.Add(down)).Seconds()), nil
}

func (s *soak) infra(ctx context.Context, args ...string) error {
	_, err := s.infraOut(ctx, args...)
	return err
}

// infraOut runs scripts/infra.sh with args and returns what it printed on its standard output.
func (s *soak) infraOut(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{filepath.Join(s.opts.root, "scripts", "infra.sh")}, args...)...)
	cmd.Dir = s.opts.root
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("scripts/infra.sh %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stdout.String()+stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// busyBurstsLoop drops the simulator's QPS limit for a few seconds at intervals, alternating
// SERVICE_BUSY answered with HTTP 200 and with HTTP 429.
func (s *soak) busyBurstsLoop(ctx context.Context) {
	if s.opts.busyEvery == 0 {
		return
	}
	for n := 0; n < 10000; n++ {
		at := s.prodStart.Add(s.opts.busyEvery/2 + time.Duration(n)*s.opts.busyEvery)
		if at.Add(s.opts.busyFor).After(s.prodStart.Add(s.opts.duration)) {
			return
		}
		if !pause.For(ctx, time.Until(at)) {
			return
		}
		as429 := n%2 == 1
		if err := s.sim.setFaults(ctx, advancesim.FaultsPatch{QPS: ptr(s.opts.busyQPS), BusyAsHTTP429: ptr(as429)}); err != nil {
			s.logf("SERVICE_BUSY burst: %v", err)
			continue
		}
		pause.For(ctx, s.opts.busyFor)
		// Cleared even when ctx ended, so the settle phase never runs with a QPS limit.
		if err := s.sim.setFaults(context.WithoutCancel(ctx), advancesim.FaultsPatch{QPS: ptr(0.0)}); err != nil {
			s.logf("end of SERVICE_BUSY burst: %v", err)
		}
		s.mu.Lock()
		s.busyBursts++
		s.mu.Unlock()
	}
}

// progressLoop prints where the run is every 15 s.
func (s *soak) progressLoop(ctx context.Context) {
	for n := 0; n < 100000; n++ {
		if !pause.For(ctx, 15*time.Second) {
			return
		}
		s.logf("%s", s.progressLine(ctx))
		s.watchInfra()
	}
}

// waitForOthers waits, bounded by -wait-others, until no other program uses this checkout's servers.
func (s *soak) waitForOthers(ctx context.Context) error {
	deadline := time.Now().Add(s.opts.waitOthers)
	for i := 0; ; i++ {
		others := otherUsers(s.opts.root)
		if len(others) == 0 {
			return nil
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("other programs still use this checkout's PostgreSQL and Kafka after %s, and the soak "+
				"stops and starts them: run it alone (or raise -wait-others):\n  %s", s.opts.waitOthers, strings.Join(others, "\n  "))
		}
		if i%6 == 0 {
			s.logf("waiting up to %s for other programs using this checkout's servers to finish: %s",
				time.Until(deadline).Round(time.Second), strings.Join(others, "; "))
		}
		if !pause.For(ctx, 5*time.Second) {
			return ctx.Err()
		}
	}
}

// watchInfra notes restarts of the servers the soak did not make, and other programs using them.
func (s *soak) watchInfra() {
	others := otherUsers(s.opts.root)
	kafkaPid, pgPid := infraPids(s.opts.root)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.othersSeen == nil {
		s.othersSeen = map[string]bool{}
	}
	for _, o := range others {
		s.othersSeen[o] = true
	}
	if s.restarting {
		return
	}
	at := s.since(time.Now())
	if kafkaPid != s.expKafka {
		s.foreignInfra = append(s.foreignInfra, fmt.Sprintf("the broker's pid changed from %s to %s by %.0fs, not by the soak", s.expKafka, kafkaPid, at))
		s.expKafka = kafkaPid
	}
	if pgPid != s.expPG {
		s.foreignInfra = append(s.foreignInfra, fmt.Sprintf("the postmaster's pid changed from %s to %s by %.0fs, not by the soak", s.expPG, pgPid, at))
		s.expPG = pgPid
	}
}

func (s *soak) progressLine(ctx context.Context) string {
	s.mu.Lock()
	acked := s.ackedMsgs
	s.mu.Unlock()
	qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var checks, backlog int
	db := "database down"
	if err := s.pool.QueryRow(qctx, `SELECT (SELECT count(*) FROM idv_checks),
		(SELECT count(*) FROM alerts WHERE published_at IS NULL)`).Scan(&checks, &backlog); err == nil {
		db = fmt.Sprintf("%d outcomes stored, outbox backlog %d", checks, backlog)
	}
	p, _ := s.doppel.current()
	proc := "doppel down"
	if p != nil && !p.Exited() {
		proc = fmt.Sprintf("doppel pid %d", p.Pid())
	}
	return fmt.Sprintf("produced %d/%d, %s, %s", acked, len(s.pop.sequence), db, proc)
}

// snapshot records the simulator's billing counters, to tell when a second search happened.
func (s *soak) snapshot(ctx context.Context, label string) {
	st, err := s.sim.stats(ctx)
	if err != nil {
		s.logf("billing snapshot %q: %v", label, err)
		return
	}
	s.mu.Lock()
	s.snapshots = append(s.snapshots, billingSnapshot{label: label, counts: st.FaceSearchBySignature})
	s.mu.Unlock()
}

// ---------------------------------------------------------------- settling

// resolution is what the soak has seen of the events' ends so far.
type resolution struct {
	outcomes map[string]string      // signatureId -> outcome
	dlq      map[string][]string    // key -> reasons, one per dead letter
	dlqAt    map[string][]time.Time // key -> when each was written (the broker's timestamp)
	dlqMsgs  int
	dlqRead  *produce.Reader
}

// waitSettled waits until every acknowledged event has an outcome or a dead letter, the group has
// committed every offset and the outbox is empty, or -settle passes.
func (s *soak) waitSettled(ctx context.Context) bool {
	s.settle = time.Now()
	res := s.resolution()
	deadline := time.Now().Add(s.opts.settle)
	lastLog := time.Time{}
	for i := 0; time.Now().Before(deadline); i++ {
		unresolved, unpublished, lag, err := s.pending(ctx, res)
		settled := err == nil && unresolved == 0 && unpublished == 0 && lag == 0
		if settled || time.Since(lastLog) >= 15*time.Second {
			state := fmt.Sprintf("%d events without an outcome or dead letter, %d alerts unpublished, consumer lag %d", unresolved, unpublished, lag)
			if err != nil {
				state = "cannot tell yet: " + err.Error()
			}
			s.logf("settling: %s", state)
			lastLog = time.Now()
			s.watchInfra()
		}
		if settled {
			s.snapshot(ctx, "settled")
			return true
		}
		if p, _ := s.doppel.current(); p == nil || p.Exited() {
			if _, unexpected := s.doppel.report(); len(unexpected) > maxUnexpectedRestarts {
				s.logf("doppel keeps exiting; giving up the wait")
				return false
			}
		}
		if !pause.For(ctx, 2*time.Second) {
			return false
		}
	}
	s.logf("not settled within %s: the ledger reports the state reached", s.opts.settle)
	s.snapshot(ctx, "settle timeout")
	return false
}

func (s *soak) resolution() *resolution {
	if s.res == nil {
		s.res = &resolution{dlq: map[string][]string{}, dlqAt: map[string][]time.Time{}, dlqRead: produce.NewReader(s.brokers, s.topicDLQ)}
	}
	return s.res
}

// readDLQ reads the dead letters written since the last call.
func (s *soak) readDLQ(ctx context.Context, res *resolution) error {
	return res.dlqRead.ReadNew(ctx, 2*time.Minute, func(m kafka.Message) {
		reason := ""
		for _, h := range m.Headers {
			if h.Key == consumer.HeaderReason {
				reason = string(h.Value)
			}
		}
		res.dlq[string(m.Key)] = append(res.dlq[string(m.Key)], reason)
		res.dlqAt[string(m.Key)] = append(res.dlqAt[string(m.Key)], m.Time)
		res.dlqMsgs++
	})
}

func (s *soak) readOutcomes(ctx context.Context, res *resolution) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT signature_id, outcome FROM idv_checks`)
	if err != nil {
		return err
	}
	out := map[string]string{}
	var sig, outcome string
	if _, err := pgx.ForEachRow(rows, []any{&sig, &outcome}, func() error {
		out[sig] = outcome
		return nil
	}); err != nil {
		return err
	}
	res.outcomes = out
	return nil
}

func (s *soak) pending(ctx context.Context, res *resolution) (unresolved, unpublished int, lag int64, err error) {
	if err := s.readDLQ(ctx, res); err != nil {
		return 0, 0, 0, fmt.Errorf("read dead letters: %w", err)
	}
	if err := s.readOutcomes(ctx, res); err != nil {
		return 0, 0, 0, fmt.Errorf("read outcomes: %w", err)
	}
	s.mu.Lock()
	for key := range s.ackedKeys {
		ev := s.pop.byKey[key]
		if _, ok := res.outcomes[ev.Sig]; (ev.Sig == "" || !ok) && len(res.dlq[key]) == 0 {
			unresolved++
		}
	}
	s.mu.Unlock()
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.pool.QueryRow(qctx, `SELECT count(*) FROM alerts WHERE published_at IS NULL`).Scan(&unpublished); err != nil {
		return 0, 0, 0, err
	}
	lags, err := consumer.Lag(qctx, s.brokers, s.group, s.topicEvents)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("consumer lag: %w", err)
	}
	for _, n := range lags {
		lag += n
	}
	return unresolved, unpublished, lag, nil
}
