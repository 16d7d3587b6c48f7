// Command doppel-bench measures Doppel end to end on this machine, against the real Kafka broker,
// the real PostgreSQL and advance-sim, all running here. `make bench` runs it through
// scripts/bench.sh, which builds the binaries and brings the infrastructure up.
//
// It starts advance-sim and `bin/doppel serve` as child processes, each scenario with a fresh
// database, fresh topics and a fresh consumer group, and measures:
//
//	(a) events/s end to end (event produced -> outcome stored -> alert on the topic), draining a
//	    pre-produced backlog with a zero-latency simulator;
//	(b) with 200 ms vendor latency and a 500 QPS vendor limit, the face searches per second the
//	    vendor answered, as a percentage of the limit, over a steady window after a warm-up;
//	(c) the latency Doppel adds, p50 and p99, from event produced to alert readable on the alert
//	    topic, at half of (a)'s rate, with a zero-latency simulator (the vendor's configured
//	    latency, zero, is subtracted; its real loopback round trip stays in the figure);
//	(d) the peak RSS (VmHWM) of the doppel process in (a) and (b);
//	(e) the ceilings of this machine in the same run: kafka-go reading the same backlog with no
//	    processing, and COPY of the same rows into the same PostgreSQL schema; (a) as a fraction
//	    of the lower one;
//	(f) a naive baseline, in this process: fetch -> face search -> insert in its own transaction
//	    -> commit the offset, one event at a time, at zero and at 200 ms vendor latency, and the
//	    ratios of (a) and (b) to it;
//	(g) a face farm: -farm-events events of which K share one face, for each K of -farm-sizes
//	    (0 is the baseline), the drain time, its ratio to the baseline and the CPU per event;
//	(h) after the largest farm's drain, one member erased through the API: request to done;
//	(r) the retention sweep of -retention-checks expired checks while events flow at a fixed rate:
//	    the flow's latency with the sweep against the same flow without it.
//
// It prints one table (scenario, figure, target, met?) and writes bench-results/bench.json,
// bench-results/events_per_second.png (events/s over time, one line per scenario) and
// docs/benchmarks.md. A missed target is reported, never hidden: the exit status is non-zero only
// when the harness itself fails. Every loop is bounded in count and time and every address is on
// the loopback interface.
//
// DOPPEL_DATABASE_URL and DOPPEL_KAFKA_BROKERS (from .local/env, which scripts/with-infra.sh
// exports) say where PostgreSQL and Kafka are. Run `doppel-bench -h` for the knobs.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/doppelhq/doppel/internal/harness/runenv"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "doppel-bench:", err)
		os.Exit(1)
	}
}

// options are the knobs of one run.
type options struct {
	events       int
	warmupEvents int
	partitions   int
	workersA     int
	workersB     int
	ringFraction float64
	seed         uint64

	aTimeout time.Duration

	bLatency time.Duration
	bQPS     float64
	bWarmup  time.Duration
	bSteady  time.Duration

	cRate        float64
	cFixedRate   float64
	cDuration    time.Duration
	cSteadyAfter time.Duration

	farmEvents  int
	farmSizes   []int
	farmTimeout time.Duration
	// (r): expired checks, the flow's rate, how long each run (without and with the sweep) lasts.
	retentionChecks int
	retentionRate   float64
	retentionWindow time.Duration
	retentionPairs  int

	naiveFast time.Duration
	naiveSlow time.Duration

	only        string
	outDir      string
	docsPath    string
	binDir      string
	maxDuration time.Duration
	quietWait   time.Duration
	buildLabel  string
	pgLogSlow   time.Duration
	doppelEnv   []string
	rerender    string
}

func parseOptions(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("doppel-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.events, "events", 50000, "events in the backlog of (a), the Kafka ceiling and the PostgreSQL ceiling")
	fs.IntVar(&o.warmupEvents, "warmup-events", 40000, "events doppel drains, unmeasured, before the first scenario, so that Kafka's JIT, PostgreSQL's caches and the simulator are warm (0: none)")
	fs.IntVar(&o.partitions, "partitions", 6, "partitions of every benchmark topic (doppel's default is 6)")
	fs.IntVar(&o.workersA, "workers-a", 512, "DOPPEL_WORKERS for (a), (c) and (g) (doppel's default is 512)")
	fs.IntVar(&o.workersB, "workers-b", 160, "DOPPEL_WORKERS for (b): the vendor limit x latency (500 x 0.2 s = 100) must be in flight")
	fs.Float64Var(&o.ringFraction, "ring-fraction", 0.3, "fraction of users who share a face with 1 to 3 others (rings of 2 to 4)")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the generated population")
	fs.DurationVar(&o.aTimeout, "a-timeout", 150*time.Second, "give up draining (a)'s backlog after this long and report the rate reached")
	fs.DurationVar(&o.bLatency, "b-latency", 200*time.Millisecond, "vendor latency of (b) and of the slow naive baseline")
	fs.Float64Var(&o.bQPS, "b-qps", 500, "vendor QPS limit of (b), set on the simulator and as DOPPEL_ADVANCE_QPS")
	fs.DurationVar(&o.bWarmup, "b-warmup", 10*time.Second, "time after (b)'s first outcome that is not measured")
	fs.DurationVar(&o.bSteady, "b-steady", 30*time.Second, "length of (b)'s measured steady window")
	fs.Float64Var(&o.cRate, "c-rate", 0, "events/s produced in (c); 0 = half of (a)'s measured rate")
	fs.Float64Var(&o.cFixedRate, "c-fixed-rate", 1000, "events/s of (c)'s second run, at a fixed rate whatever (a) measured (0: none)")
	fs.DurationVar(&o.cDuration, "c-duration", 20*time.Second, "how long (c) produces at its fixed rate")
	fs.DurationVar(&o.cSteadyAfter, "c-steady-after", 3*time.Second, "the first part of (c)'s fixed-rate production left out of its latency figures (warm-up)")
	fs.IntVar(&o.farmEvents, "farm-events", 5000, "events of each face-farm run of (g)")
	farmSizes := fs.String("farm-sizes", "0,100,1000,5000", "ring sizes of (g): how many of the events share one face (0: the no-ring baseline)")
	fs.DurationVar(&o.farmTimeout, "farm-timeout", 150*time.Second, "give up draining one face-farm run after this long and report the rate reached")
	fs.DurationVar(&o.naiveFast, "naive-duration", 12*time.Second, "how long the naive baseline runs at zero vendor latency")
	fs.DurationVar(&o.naiveSlow, "naive-slow-duration", 10*time.Second, "how long the naive baseline runs at (b)'s vendor latency")
	fs.IntVar(&o.retentionChecks, "retention-checks", 1_000_000, "(r): checks older than the retention in the database the sweep runs on")
	fs.Float64Var(&o.retentionRate, "retention-rate", 1000, "(r): events/s flowing while the sweep runs, and in the run without it")
	fs.DurationVar(&o.retentionWindow, "retention-window", 40*time.Second, "(r): how long each run of the flow lasts, without the sweep and with it")
	fs.IntVar(&o.retentionPairs, "retention-pairs", 3, "(r): how many times the pair of runs (without the sweep, then with it) alternates")
	fs.StringVar(&o.only, "only", "a,b,c,e,f,g,r", "comma-separated scenarios to run (a,b,c,e,f,g,r; d comes with a and b, h with g)")
	fs.StringVar(&o.outDir, "out", "bench-results", "folder for bench.json, the PNG chart and the child processes' logs")
	fs.StringVar(&o.docsPath, "docs", "docs/benchmarks.md", "markdown file the table is written to (empty: none)")
	fs.StringVar(&o.binDir, "bin", "bin", "folder holding the doppel and advance-sim binaries")
	fs.DurationVar(&o.maxDuration, "max-duration", 15*time.Minute, "hard bound on the whole run")
	fs.StringVar(&o.buildLabel, "build-label", "", "what doppel build is measured, for the report (default: the git commit of the working tree)")
	fs.StringVar(&o.rerender, "rerender", "", "write the table, the markdown and the chart again from this bench.json, without running anything")
	doppelEnv := fs.String("doppel-env", "", "tuning: comma-separated NAME=value settings added to every doppel run, e.g. DOPPEL_STORE_FLUSHERS=2")
	fs.DurationVar(&o.pgLogSlow, "pg-log-slow", 0, "diagnosis: log the plan of every doppel statement slower than this to PostgreSQL's log (auto_explain; 0 = off)")
	fs.DurationVar(&o.quietWait, "quiet-wait", 30*time.Second, "before each scenario, wait up to this long for other programs to stop using the CPU")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	var errs []error
	for _, kv := range strings.Split(*doppelEnv, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		if k, _, ok := strings.Cut(kv, "="); !ok || !strings.HasPrefix(k, "DOPPEL_") {
			errs = append(errs, fmt.Errorf("-doppel-env: %q is not a DOPPEL_NAME=value setting", kv))
			continue
		}
		o.doppelEnv = append(o.doppelEnv, kv)
	}
	for _, f := range strings.Split(*farmSizes, ",") {
		k, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || k < 0 || k == 1 || k > 100_000 {
			errs = append(errs, fmt.Errorf("-farm-sizes: %q is not a ring size (0, or 2 to 100000)", f))
			continue
		}
		o.farmSizes = append(o.farmSizes, k)
	}
	if o.farmEvents < 100 || o.farmEvents > 200_000 {
		errs = append(errs, fmt.Errorf("-farm-events must be between 100 and 200000, got %d", o.farmEvents))
	}
	if o.cFixedRate < 0 || o.cSteadyAfter < 0 || o.cSteadyAfter >= o.cDuration {
		errs = append(errs, errors.New("-c-fixed-rate must not be negative and -c-steady-after must be shorter than -c-duration"))
	}
	if o.warmupEvents < 0 || o.warmupEvents > 1_000_000 {
		errs = append(errs, fmt.Errorf("-warmup-events must be between 0 and 1000000, got %d", o.warmupEvents))
	}
	if o.events < 100 || o.events > 1_000_000 {
		errs = append(errs, fmt.Errorf("-events must be between 100 and 1000000, got %d", o.events))
	}
	if o.partitions < 1 || o.partitions > 64 {
		errs = append(errs, fmt.Errorf("-partitions must be between 1 and 64, got %d", o.partitions))
	}
	if o.workersA < 1 || o.workersA > 4096 || o.workersB < 1 || o.workersB > 4096 {
		errs = append(errs, errors.New("-workers-a and -workers-b must be between 1 and 4096"))
	}
	if !(o.ringFraction >= 0 && o.ringFraction <= 1) {
		errs = append(errs, errors.New("-ring-fraction must be between 0 and 1"))
	}
	if o.bQPS <= 0 || o.bLatency < 0 || o.bSteady < 5*time.Second || o.bWarmup < 0 {
		errs = append(errs, errors.New("-b-qps must be positive, -b-latency not negative, -b-steady at least 5s"))
	}
	if o.retentionChecks < 1 || o.retentionRate <= 0 || o.retentionWindow <= o.cSteadyAfter || o.retentionPairs < 1 {
		errs = append(errs, errors.New("-retention-checks, -retention-rate and -retention-pairs must be positive, -retention-window longer than -c-steady-after"))
	}
	if o.cRate < 0 || o.cDuration < time.Second {
		errs = append(errs, errors.New("-c-rate must not be negative and -c-duration must be at least 1s"))
	}
	for _, s := range strings.Split(o.only, ",") {
		switch strings.TrimSpace(s) {
		case "a", "b", "c", "e", "f", "g", "r":
		default:
			errs = append(errs, fmt.Errorf("-only: unknown scenario %q (want a, b, c, e, f, g, r)", s))
		}
	}
	return o, errors.Join(errs...)
}

// want reports whether scenario s is to run.
func (o options) want(s string) bool {
	for _, x := range strings.Split(o.only, ",") {
		if strings.TrimSpace(x) == s {
			return true
		}
	}
	return false
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	opts, err := parseOptions(args, stderr)
	if err != nil {
		return err
	}
	if opts.rerender != "" {
		return rerender(opts, stdout)
	}
	baseDB, brokers, err := runenv.Servers(getenv, "the benchmark", "scripts/bench.sh (make bench)")
	if err != nil {
		return err
	}
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	if err := runenv.CheckBinaries(opts.binDir, "scripts/bench.sh", "doppel", "advance-sim"); err != nil {
		return err
	}
	logDir := filepath.Join(opts.outDir, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return err
	}

	ctx, cancel := context.WithTimeout(ctx, opts.maxDuration)
	defer cancel()
	b := &bench{
		opts:     opts,
		root:     root,
		baseDB:   baseDB,
		brokers:  brokers,
		runID:    fmt.Sprintf("%x", time.Now().Unix()),
		logDir:   logDir,
		progress: stderr,
		infra:    findInfraProcesses(root),
	}
	if b.opts.buildLabel == "" {
		b.opts.buildLabel = runenv.GitLabel(ctx)
	}
	rep, runErr := b.runAll(ctx)
	if rep == nil {
		return runErr
	}
	table := rep.table()
	fmt.Fprintln(stdout)
	fmt.Fprint(stdout, table.text())
	if err := rep.write(opts.outDir, opts.docsPath, table); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nwrote %s, %s", filepath.Join(opts.outDir, "bench.json"), filepath.Join(opts.outDir, "events_per_second.png"))
	if opts.docsPath != "" {
		fmt.Fprintf(stdout, " and %s", opts.docsPath)
	}
	fmt.Fprintf(stdout, " (child logs in %s)\n", logDir)
	return runErr
}

// rerender writes the report of an earlier run again (after a change to how it is presented).
func rerender(opts options, stdout io.Writer) error {
	raw, err := os.ReadFile(opts.rerender)
	if err != nil {
		return err
	}
	var rep report
	if err := json.Unmarshal(raw, &rep); err != nil {
		return fmt.Errorf("read %s: %w", opts.rerender, err)
	}
	if err := os.MkdirAll(opts.outDir, 0o755); err != nil {
		return err
	}
	table := rep.table()
	fmt.Fprint(stdout, table.text())
	return rep.write(opts.outDir, opts.docsPath, table)
}
