package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/doppelhq/doppel/internal/harness/produce"
)

// bench is one run of the benchmark.
type bench struct {
	opts     options
	root     string
	baseDB   string
	brokers  []string
	runID    string
	logDir   string
	progress io.Writer
	infra    infraProcesses
	// created are the topics made in this run, deleted at its end.
	created []string
	// scenario is the one running, and scenarioInfra the infrastructure's pids when it started.
	scenario      string
	scenarioInfra infraProcesses
	// disturbances says which scenarios saw the broker or the database restart under them.
	disturbances []string
}

// startScenario ends the previous scenario (noting whether the broker or the database was
// restarted during it, as another program's fault test would) and waits for a quiet machine.
func (b *bench) startScenario(ctx context.Context, label string) {
	b.endScenario()
	b.waitQuiet(ctx, label)
	b.scenario, b.scenarioInfra = label, b.infra
}

func (b *bench) endScenario() {
	if b.scenario == "" {
		return
	}
	now := findInfraProcesses(b.root)
	if now.kafka != b.scenarioInfra.kafka {
		b.disturbances = append(b.disturbances, fmt.Sprintf("%s: the Kafka broker restarted (pid %d -> %d)", b.scenario, b.scenarioInfra.kafka, now.kafka))
	}
	if now.postmaster != b.scenarioInfra.postmaster {
		b.disturbances = append(b.disturbances, fmt.Sprintf("%s: PostgreSQL restarted (pid %d -> %d)", b.scenario, b.scenarioInfra.postmaster, now.postmaster))
	}
	b.infra, b.scenario = now, ""
}

func selfPid() int { return os.Getpid() }

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.progress, "[bench %s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// runAll runs the scenarios in an order where each has the machine to itself: the ceilings and the
// naive baseline never overlap a doppel run.
func (b *bench) runAll(ctx context.Context) (*report, error) {
	rep := &report{StartedAt: time.Now(), Machine: readMachine(), Options: b.opts.describe()}
	rep.Machine.PostgreSQL, rep.Machine.Kafka = b.versions(ctx)
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := produce.DeleteTopics(dctx, b.brokers, b.created...); err != nil {
			b.logf("could not delete the benchmark topics: %v", err)
		}
	}()
	fail := func(scenario string, err error) {
		b.logf("%s failed: %v", scenario, err)
		rep.Errors = append(rep.Errors, fmt.Sprintf("%s: %v", scenario, err))
	}

	// Everything at zero vendor latency shares one simulator and the (a) population.
	needPopA := b.opts.want("a") || b.opts.want("c") || b.opts.want("e") || b.opts.want("f")
	var fast *simulator
	var popA population
	var topicsA scenarioTopics
	if needPopA || b.opts.want("g") || b.opts.want("r") {
		var err error
		fast, err = b.startSim(ctx, "zero-latency", 0, 0)
		if err != nil {
			return nil, err
		}
		defer fast.stop()
	}
	if needPopA {
		popA = newPopulation(b.opts.events, "a", b.opts.ringFraction, b.opts.seed)
		if err := fast.seed(ctx, &popA); err != nil {
			return nil, err
		}
		topicsA = b.topicsFor("a")
		if err := createTopics(ctx, b.brokers, b.opts.partitions, topicsA.events); err != nil {
			return nil, err
		}
		d, err := produceBacklog(ctx, b.brokers, topicsA.events, popA.people)
		if err != nil {
			return nil, err
		}
		rep.Population = describePopulation(popA)
		b.logf("backlog: %d events (%d users in %d rings) produced to %s in %s (%.0f events/s)",
			len(popA.people), popA.inRings(), len(popA.rings), topicsA.events, d.Round(time.Millisecond),
			float64(len(popA.people))/d.Seconds())
	}

	if b.opts.warmupEvents > 0 && (needPopA || b.opts.want("g")) {
		b.startScenario(ctx, "warm-up")
		if err := b.warmUp(ctx, fast); err != nil {
			fail("warm-up", err)
		}
	}
	if b.opts.want("e") {
		b.startScenario(ctx, "(e) Kafka ceiling")
		b.logf("(e) Kafka ceiling: kafka-go reading the %d-event backlog, no processing", b.opts.events)
		r, err := b.kafkaCeiling(ctx, topicsA.events, b.opts.events)
		if err != nil {
			fail("(e) kafka ceiling", err)
		}
		rep.KafkaCeiling = r
	}
	if b.opts.want("a") {
		b.startScenario(ctx, "(a)")
		b.logf("(a) throughput: doppel draining the backlog, zero vendor latency, %d workers", b.opts.workersA)
		r, err := b.scenarioA(ctx, fast, topicsA, len(popA.people))
		if err != nil {
			fail("(a)", err)
		}
		rep.A = r
	}
	if b.opts.want("e") {
		b.startScenario(ctx, "(e) PostgreSQL ceiling")
		b.logf("(e) PostgreSQL ceiling: COPY of the same rows")
		r, err := b.pgCeiling(ctx, popA, topicsA.events)
		if err != nil {
			fail("(e) postgres ceiling", err)
		}
		rep.PGCeiling = r
	}
	if b.opts.want("f") {
		b.startScenario(ctx, "(f) naive, zero latency")
		b.logf("(f) naive baseline at zero vendor latency for %s", b.opts.naiveFast)
		r, err := b.naive(ctx, "naive_fast", topicsA.events, fast, b.opts.naiveFast)
		if err != nil {
			fail("(f) naive, zero latency", err)
		}
		rep.NaiveFast = r
	}
	if b.opts.want("g") {
		r, err := b.scenarioG(ctx, fast)
		if err != nil {
			fail("(g)", err)
		}
		rep.G = r
	}
	if b.opts.want("r") {
		r, err := b.scenarioR(ctx, fast)
		if err != nil {
			fail("(r)", err)
		}
		rep.R = r
	}
	if b.opts.want("c") && b.opts.cFixedRate > 0 {
		b.startScenario(ctx, "(c) at a fixed rate")
		b.logf("(c) latency: %.0f events/s for %s, zero vendor latency", b.opts.cFixedRate, b.opts.cDuration)
		r, err := b.scenarioC(ctx, fast, "c-fixed", b.opts.cFixedRate)
		if err != nil {
			fail("(c) fixed", err)
		}
		rep.CFixed = r
	}
	if b.opts.want("c") {
		rate := b.opts.cRate
		if rate == 0 && rep.A != nil && rep.A.EventsPerSec > 0 {
			rate = rep.A.EventsPerSec / 2
		}
		if rate == 0 {
			fail("(c)", errors.New("no rate: (a) did not run or measured nothing; pass -c-rate"))
		} else {
			b.startScenario(ctx, "(c)")
			b.logf("(c) latency: %.0f events/s for %s, zero vendor latency", rate, b.opts.cDuration)
			r, err := b.scenarioC(ctx, fast, "c", rate)
			if err != nil {
				fail("(c)", err)
			}
			rep.C = r
		}
	}
	if b.opts.want("b") || b.opts.want("f") {
		slow, err := b.startSim(ctx, "slow", b.opts.bLatency, b.opts.bQPS)
		if err != nil {
			return nil, err
		}
		defer slow.stop()
		steadyEvents := int(b.opts.bQPS * (b.opts.bWarmup + b.opts.bSteady + 20*time.Second).Seconds())
		popB := newPopulation(steadyEvents, "b", b.opts.ringFraction, b.opts.seed+1)
		if err := slow.seed(ctx, &popB); err != nil {
			return nil, err
		}
		topicsB := b.topicsFor("b")
		if err := createTopics(ctx, b.brokers, b.opts.partitions, topicsB.events); err != nil {
			return nil, err
		}
		if _, err := produceBacklog(ctx, b.brokers, topicsB.events, popB.people); err != nil {
			return nil, err
		}
		if b.opts.want("b") {
			b.startScenario(ctx, "(b)")
			b.logf("(b) vendor limit: %s latency, %g QPS limit, %d workers, %s warm-up + %s steady",
				b.opts.bLatency, b.opts.bQPS, b.opts.workersB, b.opts.bWarmup, b.opts.bSteady)
			r, err := b.scenarioB(ctx, slow, topicsB, len(popB.people))
			if err != nil {
				fail("(b)", err)
			}
			rep.B = r
		}
		if b.opts.want("f") {
			b.startScenario(ctx, "(f) naive, slow vendor")
			b.logf("(f) naive baseline at %s vendor latency for %s", b.opts.bLatency, b.opts.naiveSlow)
			r, err := b.naive(ctx, "naive_slow", topicsB.events, slow, b.opts.naiveSlow)
			if err != nil {
				fail("(f) naive, slow vendor", err)
			}
			rep.NaiveSlow = r
		}
	}
	b.endScenario()
	rep.Disturbances = b.disturbances
	for _, d := range b.disturbances {
		b.logf("DISTURBED: %s; its figures are not trustworthy", d)
	}
	rep.FinishedAt = time.Now()
	if err := ctx.Err(); err != nil {
		rep.Errors = append(rep.Errors, fmt.Sprintf("run: stopped early: %v (-max-duration %s)", err, b.opts.maxDuration))
		return rep, fmt.Errorf("stopped early (-max-duration %s or a signal): %w", b.opts.maxDuration, err)
	}
	return rep, nil
}

func (b *bench) versions(ctx context.Context) (pg, kafkaVersion string) {
	kafkaVersion = "4.1.2 (scripts/infra.sh)"
	if conn, err := pgxConnect(ctx, b.baseDB); err == nil {
		_ = conn.QueryRow(ctx, "SHOW server_version").Scan(&pg)
		conn.Close(context.WithoutCancel(ctx))
	}
	return pg, kafkaVersion
}

// ---------------------------------------------------------------- (a)

// throughputResult is (a): doppel draining a pre-produced backlog.
type throughputResult struct {
	Events   int  `json:"events"`
	Workers  int  `json:"workers"`
	Complete bool `json:"complete"`
	// Stored is the events with a stored outcome when the measurement ended.
	Stored        int64            `json:"stored"`
	Outcomes      map[string]int64 `json:"outcomes"`
	AlertRows     int64            `json:"alertRows"`
	AlertsOnTopic int64            `json:"alertsOnTopic"`
	DeadLetters   int64            `json:"deadLetters"`
	// StartupSeconds is from starting the process to the first stored outcome (migrations,
	// readiness, consumer group join).
	StartupSeconds float64 `json:"startupSeconds"`
	// Seconds is from the first stored outcome to the last outcome or alert on the topic,
	// whichever is later.
	Seconds      float64 `json:"seconds"`
	EventsPerSec float64 `json:"eventsPerSec"`
	// EventsPerSecWithStartup counts the start-up too.
	EventsPerSecWithStartup float64            `json:"eventsPerSecWithStartup"`
	PeakRSSMB               float64            `json:"peakRssMB"`
	CPUCores                map[string]float64 `json:"cpuCores"`
	// CPUMicrosPerEvent is each process's CPU time from the first stored outcome to the end, per
	// event stored (start-up left out).
	CPUMicrosPerEvent map[string]float64 `json:"cpuMicrosPerEvent"`
	PG                *pgActivity        `json:"postgres,omitempty"`
	// PGActive is what PostgreSQL was running for doppel, sampled every 250 ms.
	PGActive  []activeStatement `json:"postgresActive,omitempty"`
	StopError string            `json:"stopError,omitempty"`
	Samples   []sample          `json:"samples"`
}

// warmUp has doppel drain a backlog of its own before anything is measured. The broker is a JVM
// started minutes before: on a cold broker (a) measured Kafka at 97 µs of CPU per event against
// 16–28 µs warm, CPU taken from doppel and PostgreSQL on a 2-core machine.
func (b *bench) warmUp(ctx context.Context, sim *simulator) error {
	pop := newPopulation(b.opts.warmupEvents, "warm", b.opts.ringFraction, b.opts.seed+3)
	if err := sim.seed(ctx, &pop); err != nil {
		return err
	}
	topics := b.topicsFor("warm")
	if err := createTopics(ctx, b.brokers, b.opts.partitions, topics.events); err != nil {
		return err
	}
	if _, err := produceBacklog(ctx, b.brokers, topics.events, pop.people); err != nil {
		return err
	}
	b.logf("warm-up: doppel drains %d events, not measured", len(pop.people))
	lr, err := b.begin(ctx, "warm", topics, sim, 0, b.opts.workersA)
	if err != nil {
		return err
	}
	_, err = b.drain(ctx, lr, len(pop.people), b.opts.workersA, b.opts.aTimeout)
	return err
}

func (b *bench) scenarioA(ctx context.Context, sim *simulator, topics scenarioTopics, events int) (*throughputResult, error) {
	lr, err := b.begin(ctx, "a", topics, sim, 0, b.opts.workersA)
	if err != nil {
		return nil, err
	}
	res, err := b.drain(ctx, lr, events, b.opts.workersA, b.opts.aTimeout)
	b.logf("(a) %d events in %.2fs after the first outcome: %.0f events/s (start-up %.1fs, peak RSS %.0f MB)",
		res.Stored, res.Seconds, res.EventsPerSec, res.StartupSeconds, res.PeakRSSMB)
	return res, err
}

// drain waits until doppel has stored every one of the backlog's events and published every alert
// (or timeout passes), then stops it and summarises the run.
func (b *bench) drain(ctx context.Context, lr *liveRun, events, workers int, timeout time.Duration) (*throughputResult, error) {
	res := &throughputResult{Events: events, Workers: workers}
	deadline := time.Now().Add(timeout)
	var runErr error
	var cpuFirst *cpuSnapshot // at the first stored outcome: start-up is not an event's cost
	every(ctx, func() bool {
		c := lr.sample(ctx)
		if cpuFirst == nil && c.stored > 0 {
			snap := lr.roles.snapshot(b.infra.postmaster)
			cpuFirst = &snap
		}
		if c.stored >= int64(events) && c.unpublished == 0 && lr.alerts.count.Load() >= c.alertRows {
			res.Complete = true
			return false
		}
		if lr.doppel.proc.Exited() {
			runErr = fmt.Errorf("doppel exited during the run (see %s)", lr.doppel.proc.LogPath)
			return false
		}
		return time.Now().Before(deadline)
	})
	b.summariseDrain(ctx, lr, res)
	end := lr.finish(ctx)
	res.PeakRSSMB, res.CPUCores, res.DeadLetters, res.PG, res.PGActive = end.peakRSSMB, end.cpu, end.deadLetters, end.pg, end.active
	if cpuFirst != nil {
		res.CPUMicrosPerEvent = perEvent(cpuSeconds(*cpuFirst, end.cpuSnapshot), res.Stored)
	}
	if end.stopErr != nil {
		res.StopError = end.stopErr.Error()
	}
	res.Samples = lr.samples
	if !res.Complete && runErr == nil {
		b.logf("%s did not drain the backlog within %s: reporting the rate reached", lr.name, timeout)
	}
	return res, runErr
}

// summariseDrain reads the first and last outcome times and the outcome counts of a drain.
func (b *bench) summariseDrain(ctx context.Context, lr *liveRun, res *throughputResult) {
	var first, last *time.Time
	_ = lr.conn.QueryRow(ctx, `SELECT min(checked_at), max(checked_at), count(*) FROM idv_checks`).Scan(&first, &last, &res.Stored)
	_ = lr.conn.QueryRow(ctx, `SELECT count(*) FROM alerts`).Scan(&res.AlertRows)
	res.Outcomes = map[string]int64{}
	if rows, err := lr.conn.Query(ctx, `SELECT outcome, count(*) FROM idv_checks GROUP BY 1`); err == nil {
		for rows.Next() {
			var o string
			var n int64
			if rows.Scan(&o, &n) == nil {
				res.Outcomes[o] = n
			}
		}
		rows.Close()
	}
	lr.ownQueries += 3
	alerts := lr.alerts.all()
	res.AlertsOnTopic = int64(len(alerts))
	if first == nil || last == nil {
		return
	}
	endAt := *last
	if !res.Complete {
		endAt = time.Now() // the rate reached so far, over the time it had
	}
	for _, a := range alerts {
		if a.kafkaTime.After(endAt) {
			endAt = a.kafkaTime
		}
	}
	res.StartupSeconds = first.Sub(lr.doppel.started).Seconds()
	res.Seconds = endAt.Sub(*first).Seconds()
	if res.Seconds > 0 {
		res.EventsPerSec = float64(res.Stored) / res.Seconds
	}
	if total := endAt.Sub(lr.doppel.started).Seconds(); total > 0 {
		res.EventsPerSecWithStartup = float64(res.Stored) / total
	}
}

// ---------------------------------------------------------------- (b)

// vendorResult is (b): doppel against a slow, rate-limited vendor.
type vendorResult struct {
	LimitQPS  float64 `json:"limitQps"`
	LatencyMs float64 `json:"latencyMs"`
	Workers   int     `json:"workers"`
	Backlog   int     `json:"backlog"`
	// WarmupSeconds after the first outcome are not measured; WindowSeconds are.
	WarmupSeconds float64 `json:"warmupSeconds"`
	WindowSeconds float64 `json:"windowSeconds"`
	// BilledPerSec is face searches answered SUCCESS per second in the window (from the
	// simulator's per-signature billing counters); PercentOfLimit is it over LimitQPS.
	BilledPerSec   float64 `json:"billedPerSec"`
	PercentOfLimit float64 `json:"percentOfLimit"`
	// CallsPerSec counts every face-search request, SERVICE_BUSY answers included.
	CallsPerSec float64 `json:"callsPerSec"`
	// ServiceBusyInWindow and ServiceBusyTotal count SERVICE_BUSY answers.
	ServiceBusyInWindow int64 `json:"serviceBusyInWindow"`
	ServiceBusyTotal    int64 `json:"serviceBusyTotal"`
	// WindowBilledPerSec is BilledPerSec per 5-second slice of the window, for steadiness.
	WindowBilledPerSec []float64 `json:"windowBilledPerSec"`
	MinWindowPercent   float64   `json:"minWindowPercent"`
	MaxWindowPercent   float64   `json:"maxWindowPercent"`
	// EventsPerSec is stored outcomes per second in the window.
	EventsPerSec float64            `json:"eventsPerSec"`
	RSSStartMB   float64            `json:"rssWindowStartMB"`
	RSSEndMB     float64            `json:"rssWindowEndMB"`
	RSSMaxMB     float64            `json:"rssWindowMaxMB"`
	PeakRSSMB    float64            `json:"peakRssMB"`
	Stored       int64              `json:"stored"`
	DeadLetters  int64              `json:"deadLetters"`
	CPUCores     map[string]float64 `json:"cpuCores"`
	// CPUMicrosPerEvent is each process's CPU time over the run per event stored.
	CPUMicrosPerEvent map[string]float64 `json:"cpuMicrosPerEvent"`
	PG                *pgActivity        `json:"postgres,omitempty"`
	PGActive          []activeStatement  `json:"postgresActive,omitempty"`
	// InFlight is BilledPerSec x the vendor latency: the calls doppel had in flight on average.
	InFlight float64 `json:"inFlight"`
	// ReportedInFlight is the mean of doppel's doppel_consumer_in_flight_messages gauge at the
	// slice boundaries (messages fetched and not yet in a finished prefix, so it also counts
	// finished messages waiting behind an unfinished one); 0 if not exported.
	ReportedInFlight float64  `json:"reportedInFlight"`
	StopError        string   `json:"stopError,omitempty"`
	Samples          []sample `json:"samples"`
}

// Metrics of doppel's /metrics the benchmark reads, when doppel exports them.
const (
	vendorSum   = "doppel_vendor_call_duration_seconds_sum"
	vendorCount = "doppel_vendor_call_duration_seconds_count"
	inFlight    = "doppel_consumer_in_flight_messages"
)

// bSlice is the length of the slices of (b)'s window used to judge steadiness.
const bSlice = 5 * time.Second

func (b *bench) scenarioB(ctx context.Context, sim *simulator, topics scenarioTopics, backlog int) (*vendorResult, error) {
	lr, err := b.begin(ctx, "b", topics, sim, b.opts.bQPS, b.opts.workersB)
	if err != nil {
		return nil, err
	}
	res := &vendorResult{LimitQPS: b.opts.bQPS, LatencyMs: float64(b.opts.bLatency.Milliseconds()), Workers: b.opts.workersB,
		Backlog: backlog, WarmupSeconds: b.opts.bWarmup.Seconds()}
	var (
		firstAt    time.Time
		statsAt    []simStats
		storedAt   []int64
		rssAt      []float64
		inFlightAt []float64
		nextStats  time.Time
		windowEnd  time.Time
		runErr     error
		giveUpWait = time.Now().Add(90 * time.Second)
		total      simStats
	)
	every(ctx, func() bool {
		c := lr.sample(ctx)
		now := time.Now()
		if lr.doppel.proc.Exited() {
			runErr = fmt.Errorf("doppel exited during the run (see %s)", lr.doppel.proc.LogPath)
			return false
		}
		if firstAt.IsZero() {
			if c.stored == 0 {
				if now.After(giveUpWait) {
					runErr = errors.New("no outcome stored within 90s of starting doppel")
					return false
				}
				return true
			}
			firstAt = now
			nextStats = firstAt.Add(b.opts.bWarmup)
			windowEnd = nextStats.Add(b.opts.bSteady)
		}
		if !now.Before(nextStats) {
			st, err := sim.stats(ctx)
			if err != nil {
				runErr = fmt.Errorf("read simulator stats: %w", err)
				return false
			}
			statsAt = append(statsAt, st)
			if v, ok := lr.doppel.metrics(ctx)[inFlight]; ok {
				inFlightAt = append(inFlightAt, v)
			}
			storedAt = append(storedAt, c.stored)
			rssAt = append(rssAt, lr.samples[len(lr.samples)-1].RSSMB)
			nextStats = nextStats.Add(bSlice)
			if !st.at.Before(windowEnd.Add(-sampleEvery)) {
				return false
			}
		}
		if c.stored >= int64(backlog) {
			return false // the backlog ran out early: measure what there was
		}
		return true
	})
	if t, err := sim.stats(ctx); err == nil {
		total = t
	}
	end := lr.finish(ctx)
	res.PeakRSSMB, res.CPUCores, res.DeadLetters, res.Samples, res.PG = end.peakRSSMB, end.cpu, end.deadLetters, lr.samples, end.pg
	if len(lr.samples) > 0 {
		res.CPUMicrosPerEvent = perEvent(end.cpuSeconds, lr.samples[len(lr.samples)-1].Stored)
	}
	res.PGActive = end.active
	if end.stopErr != nil {
		res.StopError = end.stopErr.Error()
	}
	res.ServiceBusyTotal = total.serviceBusy
	if n := len(lr.samples); n > 0 {
		res.Stored = lr.samples[n-1].Stored
	}
	if len(statsAt) < 2 {
		if runErr == nil {
			runErr = errors.New("the steady window never started: doppel stored too little")
		}
		return res, runErr
	}
	first, last := statsAt[0], statsAt[len(statsAt)-1]
	window := last.at.Sub(first.at).Seconds()
	res.WindowSeconds = window
	res.BilledPerSec = float64(last.billed-first.billed) / window
	res.CallsPerSec = float64(last.faceSearch-first.faceSearch) / window
	res.PercentOfLimit = 100 * res.BilledPerSec / res.LimitQPS
	res.InFlight = res.BilledPerSec * b.opts.bLatency.Seconds()
	for _, v := range inFlightAt {
		res.ReportedInFlight += v / float64(len(inFlightAt))
	}
	res.ServiceBusyInWindow = last.serviceBusy - first.serviceBusy
	res.EventsPerSec = float64(storedAt[len(storedAt)-1]-storedAt[0]) / window
	res.MinWindowPercent, res.MaxWindowPercent = math.Inf(1), 0
	for i := 1; i < len(statsAt); i++ {
		r := float64(statsAt[i].billed-statsAt[i-1].billed) / statsAt[i].at.Sub(statsAt[i-1].at).Seconds()
		res.WindowBilledPerSec = append(res.WindowBilledPerSec, r)
		res.MinWindowPercent = min(res.MinWindowPercent, 100*r/res.LimitQPS)
		res.MaxWindowPercent = max(res.MaxWindowPercent, 100*r/res.LimitQPS)
	}
	res.RSSStartMB, res.RSSEndMB = rssAt[0], rssAt[len(rssAt)-1]
	for _, s := range lr.samples {
		if t := lr.doppel.started.Add(time.Duration(s.T * float64(time.Second))); !t.Before(first.at) && !t.After(last.at) {
			res.RSSMaxMB = max(res.RSSMaxMB, s.RSSMB)
		}
	}
	b.logf("(b) %.1f billed face searches/s over %.1fs = %.1f%% of %g QPS (slices %.1f..%.1f%%), %d SERVICE_BUSY in window, peak RSS %.0f MB",
		res.BilledPerSec, window, res.PercentOfLimit, res.LimitQPS, res.MinWindowPercent, res.MaxWindowPercent,
		res.ServiceBusyInWindow, res.PeakRSSMB)
	return res, runErr
}

// ---------------------------------------------------------------- (c)

// latencyDist is a latency distribution in milliseconds.
type latencyDist struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50Ms"`
	P90 float64 `json:"p90Ms"`
	P99 float64 `json:"p99Ms"`
	Max float64 `json:"maxMs"`
}

func distOf(ds []time.Duration) latencyDist {
	if len(ds) == 0 {
		return latencyDist{}
	}
	slices.Sort(ds)
	q := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(ds)))) - 1
		return float64(ds[max(0, i)]) / float64(time.Millisecond)
	}
	return latencyDist{N: len(ds), P50: q(0.50), P90: q(0.90), P99: q(0.99), Max: q(1)}
}

// latencyResult is (c): the latency Doppel adds at a fixed event rate.
type latencyResult struct {
	RateTarget   float64 `json:"rateTarget"`
	RateAchieved float64 `json:"rateAchieved"`
	Produced     int     `json:"produced"`
	Stored       int64   `json:"stored"`
	Complete     bool    `json:"complete"`
	// VendorLatencySubtractedMs is the simulator's configured latency, subtracted from every
	// figure (zero here: the vendor's loopback round trip stays in the figures).
	VendorLatencySubtractedMs float64 `json:"vendorLatencySubtractedMs"`
	// ToAlertOnTopic: event produced -> alert read back from the alert topic, for the events that
	// raised an alert. The headline figure.
	ToAlertOnTopic latencyDist `json:"toAlertOnTopic"`
	// ToAlertSent: event produced -> the alert's Kafka CreateTime (the relay's send).
	ToAlertSent latencyDist `json:"toAlertSent"`
	// VendorCallMeanMs is the mean vendor call as doppel itself timed it (its
	// doppel_vendor_call_duration_seconds histogram), over the measured events; 0 if not exported.
	VendorCallMeanMs float64 `json:"vendorCallMeanMs"`
	// ToOutcome: event produced -> checked_at of its stored outcome, for every event.
	ToOutcome latencyDist `json:"toOutcome"`
	// BySecond splits the figures by the second (since the first measured event) in which the
	// event was produced, to show whether the tail is spread out or a few stalls.
	BySecond    []latencySecond    `json:"bySecond"`
	PeakRSSMB   float64            `json:"peakRssMB"`
	DeadLetters int64              `json:"deadLetters"`
	CPUCores    map[string]float64 `json:"cpuCores"`
	// CPUMicrosPerEvent is each process's CPU time from the first fixed-rate event to the last
	// alert, per event produced at the fixed rate: the steady-state cost, warm-up left out.
	CPUMicrosPerEvent map[string]float64 `json:"cpuMicrosPerEvent"`
	// SteadyAfterSeconds of the fixed-rate production are left out of the latency figures.
	SteadyAfterSeconds float64           `json:"steadyAfterSeconds"`
	PG                 *pgActivity       `json:"postgres,omitempty"`
	PGActive           []activeStatement `json:"postgresActive,omitempty"`
	StopError          string            `json:"stopError,omitempty"`
	Samples            []sample          `json:"samples"`
}

// latencySecond is (c)'s latencies for the events produced in one second.
type latencySecond struct {
	Second         int         `json:"second"`
	ToOutcome      latencyDist `json:"toOutcome"`
	ToAlertOnTopic latencyDist `json:"toAlertOnTopic"`
}

// cWarmup is the number of events sent, and waited for, before (c) measures: they make sure the
// consumer group has joined and every connection is open.
const cWarmup = 200

func (b *bench) scenarioC(ctx context.Context, sim *simulator, name string, rate float64) (*latencyResult, error) {
	n := int(math.Ceil(rate * b.opts.cDuration.Seconds()))
	pop := newPopulation(n+cWarmup, name, b.opts.ringFraction, b.opts.seed+2)
	if err := sim.seed(ctx, &pop); err != nil {
		return nil, err
	}
	topics := b.topicsFor(name)
	if err := createTopics(ctx, b.brokers, b.opts.partitions, topics.events); err != nil {
		return nil, err
	}
	lr, err := b.begin(ctx, name, topics, sim, 0, b.opts.workersA)
	if err != nil {
		return nil, err
	}
	return b.fixedRate(ctx, lr, pop.people, rate, nil)
}

// fixedRate measures the latency doppel adds at a fixed rate: it produces people's first cWarmup
// events to lr's events topic and waits for them, then the rest at rate (all of them, or until
// stop, checked every few milliseconds, says to stop), waits for the tail and reads the figures.
// It finishes lr.
func (b *bench) fixedRate(ctx context.Context, lr *liveRun, people []person, rate float64, stop func() bool) (*latencyResult, error) {
	topics := lr.topics
	res := &latencyResult{RateTarget: rate}
	abort := func(err error) (*latencyResult, error) {
		end := lr.finish(ctx)
		res.Samples = lr.samples
		if end.stopErr != nil {
			res.StopError = end.stopErr.Error()
		}
		return res, err
	}

	w := newWriter(b.brokers, topics.events)
	w.BatchTimeout = time.Millisecond
	w.BatchSize = 100
	var produceErrs atomic.Int64
	var firstProduceErr atomic.Value
	w.Async = true
	w.Completion = func(_ []kafka.Message, err error) {
		if err != nil {
			produceErrs.Add(1)
			firstProduceErr.CompareAndSwap(nil, err.Error())
		}
	}
	defer w.Close()

	warm := make([]kafka.Message, 0, cWarmup)
	for _, p := range people[:cWarmup] {
		warm = append(warm, eventMessage(p))
	}
	if err := w.WriteMessages(ctx, warm...); err != nil {
		return abort(err)
	}
	warmDeadline := time.Now().Add(60 * time.Second)
	warmed := false
	every(ctx, func() bool {
		c := lr.sample(ctx)
		warmed = c.stored >= cWarmup && c.unpublished == 0
		return !warmed && time.Now().Before(warmDeadline) && !lr.doppel.proc.Exited()
	})
	if !warmed {
		return abort(fmt.Errorf("the %d warm-up events were not stored within 60s (see %s)", cWarmup, lr.doppel.proc.LogPath))
	}

	m0 := lr.doppel.metrics(ctx)
	// Produce at the fixed rate, sampling progress on the side.
	measured := people[cWarmup:]
	produced := make(map[string]time.Time, len(measured))
	var sampling sync.WaitGroup
	sctx, stopSampling := context.WithCancel(ctx)
	sampling.Add(1)
	go func() { // the only user of lr while the loop below produces
		defer sampling.Done()
		every(sctx, func() bool {
			// ctx, not sctx: pgx closes a connection whose query is cancelled.
			lr.sample(ctx)
			return true
		})
	}()
	start := time.Now()
	cpuStart := lr.roles.snapshot(b.infra.postmaster)
	sent := 0
	tick := time.NewTicker(2 * time.Millisecond)
	for sent < len(measured) && ctx.Err() == nil && (stop == nil || !stop()) {
		<-tick.C
		due := min(len(measured), int(rate*time.Since(start).Seconds()))
		if due <= sent {
			continue
		}
		batch := make([]kafka.Message, 0, due-sent)
		now := time.Now()
		for _, p := range measured[sent:due] {
			m := eventMessage(p)
			m.Time = now
			produced[p.sig] = now
			batch = append(batch, m)
		}
		if err := w.WriteMessages(ctx, batch...); err != nil {
			tick.Stop()
			stopSampling()
			sampling.Wait()
			return abort(err)
		}
		sent = due
	}
	tick.Stop()
	res.Produced = sent
	res.RateAchieved = float64(sent) / time.Since(start).Seconds()
	stopSampling()
	sampling.Wait()

	// Wait for the tail: every outcome stored and every alert on the topic.
	total := int64(cWarmup + sent)
	tailDeadline := time.Now().Add(60 * time.Second)
	every(ctx, func() bool {
		c := lr.sample(ctx)
		res.Complete = c.stored >= total && c.unpublished == 0 && lr.alerts.count.Load() >= c.alertRows
		return !res.Complete && time.Now().Before(tailDeadline) && !lr.doppel.proc.Exited()
	})
	res.CPUMicrosPerEvent = perEvent(cpuSeconds(cpuStart, lr.roles.snapshot(b.infra.postmaster)), int64(sent))
	// Steady state: events produced in the first seconds of the fixed rate (connections warming,
	// the first batches sizing up) are left out of the latency figures.
	res.SteadyAfterSeconds = b.opts.cSteadyAfter.Seconds()
	steadyFrom := start.Add(b.opts.cSteadyAfter)

	if m1 := lr.doppel.metrics(ctx); m1[vendorCount] > m0[vendorCount] {
		res.VendorCallMeanMs = 1000 * (m1[vendorSum] - m0[vendorSum]) / (m1[vendorCount] - m0[vendorCount])
	}
	var toOutcome []time.Duration
	seconds := int(float64(sent)/rate) + 1
	outcomeBySec, alertBySec := make([][]time.Duration, seconds), make([][]time.Duration, seconds)
	second := func(t time.Time) int { return min(seconds-1, max(0, int(t.Sub(start).Seconds()))) }
	if lr.conn.IsClosed() {
		if conn, err := pgxConnect(ctx, lr.dbURL); err == nil {
			lr.conn = conn
		}
	}
	lr.ownQueries++
	// Only this run's outcomes (the database may hold a year of older checks).
	rows, err := lr.conn.Query(ctx, `SELECT signature_id, checked_at FROM idv_checks WHERE checked_at >= $1`, start.Add(-time.Minute))
	if err != nil {
		return abort(fmt.Errorf("read outcomes: %w", err))
	}
	for rows.Next() {
		var sig string
		var at time.Time
		if rows.Scan(&sig, &at) == nil {
			if t, ok := produced[sig]; ok && !t.Before(steadyFrom) {
				toOutcome = append(toOutcome, at.Sub(t))
				outcomeBySec[second(t)] = append(outcomeBySec[second(t)], at.Sub(t))
			}
		}
	}
	rows.Close()
	res.Stored = int64(len(toOutcome))
	var toTopic, toSent []time.Duration
	for _, a := range lr.alerts.all() {
		if t, ok := produced[a.signatureID]; ok && !t.Before(steadyFrom) {
			toTopic = append(toTopic, a.recvTime.Sub(t))
			toSent = append(toSent, a.kafkaTime.Sub(t))
			alertBySec[second(t)] = append(alertBySec[second(t)], a.recvTime.Sub(t))
		}
	}
	res.ToOutcome, res.ToAlertOnTopic, res.ToAlertSent = distOf(toOutcome), distOf(toTopic), distOf(toSent)
	for i := range seconds {
		if len(outcomeBySec[i]) > 0 {
			res.BySecond = append(res.BySecond, latencySecond{Second: i, ToOutcome: distOf(outcomeBySec[i]), ToAlertOnTopic: distOf(alertBySec[i])})
		}
	}
	end := lr.finish(ctx)
	res.PeakRSSMB, res.CPUCores, res.DeadLetters, res.Samples, res.PG = end.peakRSSMB, end.cpu, end.deadLetters, lr.samples, end.pg
	res.PGActive = end.active
	if end.stopErr != nil {
		res.StopError = end.stopErr.Error()
	}
	if n := produceErrs.Load(); n > 0 {
		return res, fmt.Errorf("%d produce batches failed, first: %v", n, firstProduceErr.Load())
	}
	b.logf("(%s) %d events at %.0f/s: produced -> alert on topic p50 %.1f ms, p99 %.1f ms (%d alerts); -> outcome stored p50 %.1f ms, p99 %.1f ms",
		lr.name, sent, res.RateAchieved, res.ToAlertOnTopic.P50, res.ToAlertOnTopic.P99, res.ToAlertOnTopic.N,
		res.ToOutcome.P50, res.ToOutcome.P99)
	return res, nil
}
