// Command doppel-soak is Doppel's long fault soak: `make soak` runs it through scripts/soak.sh, which
// builds the binaries and brings PostgreSQL and Kafka up.
//
// It starts advance-sim and `bin/doppel serve` as child processes against a fresh database, fresh
// topics (6 partitions) and a fresh consumer group, seeds the simulator with a population (about 30%
// of the users in rings of 2 to 4 sharing a face, failed and incomplete verifications, events with
// and without a userId, SUBMIT_COMPLETED and unknown types, unknown signatureIds, malformed messages
// of every kind, and events sent twice), and produces tens of thousands of events in waves while:
//
//   - the vendor answers about 20% of calls with ERROR or HTTP 503;
//   - SERVICE_BUSY bursts come at intervals (the simulator's QPS limit drops for a few seconds);
//   - doppel is killed with SIGKILL several times at random moments and started again;
//   - PostgreSQL is stopped and started once, and so is the Kafka broker (scripts/infra.sh);
//   - on a three-node Kafka (`DOPPEL_INFRA_BROKERS=3 make soak`), the node leading partition 0 of
//     the events topic is killed with SIGKILL early in the window, and the active controller late in
//     it, each started again after -kafka-down (-node-kills).
//
// Then the faults stop and it waits, for a bounded time, until every produced event has a stored
// outcome or a dead letter, the group has committed everything and the outbox is drained. It stops
// doppel with SIGTERM, reads the database, the simulator's billing counters and the alert and
// dead-letter topics in full, and prints a ledger: events produced, outcomes stored, dead letters by
// reason, lost events, doubled links, face searches billed twice, alerts stored, published and
// distinct, and the wall time. The ledger is also written to soak-results/ledger.json and
// docs/soak.md. The exit status is 1 when an event was lost, a link was doubled, an alert was stored
// but never published or published twice, more searches were billed twice than the kills can explain, the run did not
// settle, or another check of the ledger failed (each is named); 2 when the harness itself failed.
//
// The soak stops and starts this checkout's PostgreSQL and Kafka, so it first waits (bounded) until
// no benchmark, demo, test binary or other `doppel serve` uses them, and notes any that start later.
//
// Every loop is bounded in count and time, and every address is on the loopback interface.
// DOPPEL_DATABASE_URL and DOPPEL_KAFKA_BROKERS (from .local/env, exported by scripts/with-infra.sh)
// say where PostgreSQL and Kafka are. Run `doppel-soak -h` for the knobs.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code, err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "doppel-soak:", err)
		}
		os.Exit(2)
	}
	os.Exit(code)
}

// options are the knobs of one soak.
type options struct {
	events       int
	duration     time.Duration
	workers      int
	kills        int
	seed         uint64
	ringFraction float64

	simLatency  time.Duration
	errorRate   float64
	http5xxRate float64
	busyEvery   time.Duration
	busyFor     time.Duration
	busyQPS     float64
	pgDown      time.Duration
	// infraRestarts turns the PostgreSQL and Kafka restarts on; without them the soak disturbs no
	// other user of the servers (for trying the harness out, not for the ledger of record).
	infraRestarts bool
	kafkaDown     time.Duration
	// nodeKills kills Kafka nodes (a partition leader, then the active controller) when the cluster
	// has three; a single broker has no node to spare.
	nodeKills bool

	settle      time.Duration
	maxDuration time.Duration
	waitOthers  time.Duration

	outDir   string
	docsPath string
	binDir   string
	root     string
}

func parseOptions(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("doppel-soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.events, "events", 50000, "messages to produce, events sent twice and malformed ones included")
	fs.DurationVar(&o.duration, "duration", 5*time.Minute, "how long events are produced (in waves) while the faults happen")
	fs.IntVar(&o.workers, "workers", 64, "DOPPEL_WORKERS")
	fs.IntVar(&o.kills, "kills", 5, "how many times doppel is killed with SIGKILL during the production window")
	fs.Uint64Var(&o.seed, "seed", 0, "seed of the population and of the fault schedule (0: from the clock; the ledger says which)")
	fs.Float64Var(&o.ringFraction, "ring-fraction", 0.3, "fraction of the users who share a face with 1 to 3 others")
	fs.DurationVar(&o.simLatency, "sim-latency", 20*time.Millisecond, "vendor latency of every face-search and get-result call")
	fs.Float64Var(&o.errorRate, "error-rate", 0.18, "fraction of vendor calls answered ERROR during the production window")
	fs.Float64Var(&o.http5xxRate, "http5xx-rate", 0.02, "fraction of vendor calls answered HTTP 503 during the production window")
	fs.DurationVar(&o.busyEvery, "busy-every", 30*time.Second, "interval between SERVICE_BUSY bursts (0: none)")
	fs.DurationVar(&o.busyFor, "busy-for", 4*time.Second, "length of a SERVICE_BUSY burst")
	fs.Float64Var(&o.busyQPS, "busy-qps", 20, "the simulator's QPS limit during a burst")
	fs.BoolVar(&o.infraRestarts, "infra-restarts", true, "restart PostgreSQL and Kafka once each (false: only kills and vendor faults, for trying the harness out)")
	fs.DurationVar(&o.pgDown, "pg-down", 5*time.Second, "how long PostgreSQL stays stopped")
	fs.DurationVar(&o.kafkaDown, "kafka-down", 2*time.Second, "how long the Kafka broker (or a killed node) stays stopped")
	fs.BoolVar(&o.nodeKills, "node-kills", true, "on a Kafka of three nodes (DOPPEL_INFRA_BROKERS=3), kill -9 the leader of an events partition and later the active controller, and start each again (with -infra-restarts)")
	fs.DurationVar(&o.settle, "settle", 5*time.Minute, "after the faults stop, wait at most this long for every event to be resolved")
	fs.DurationVar(&o.maxDuration, "max-duration", 25*time.Minute, "hard bound on the whole run")
	fs.DurationVar(&o.waitOthers, "wait-others", 5*time.Minute, "wait at most this long for other programs using this checkout's PostgreSQL and Kafka (a benchmark, tests, a demo) to finish")
	fs.StringVar(&o.outDir, "out", "soak-results", "folder for ledger.json and the child processes' logs")
	fs.StringVar(&o.docsPath, "docs", "docs/soak.md", "markdown file the ledger is written to (empty: none)")
	fs.StringVar(&o.binDir, "bin", "bin", "folder holding the doppel and advance-sim binaries")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(o.events >= 2000 && o.events <= 500_000, "-events must be between 2000 and 500000, got %d", o.events)
	check(o.duration >= 30*time.Second && o.duration <= time.Hour, "-duration must be between 30s and 1h, got %s", o.duration)
	check(o.workers >= 1 && o.workers <= 4096, "-workers must be between 1 and 4096, got %d", o.workers)
	check(o.kills >= 0 && o.kills <= 50, "-kills must be between 0 and 50, got %d", o.kills)
	check(o.ringFraction >= 0 && o.ringFraction <= 1, "-ring-fraction must be between 0 and 1")
	check(o.simLatency >= 0 && o.simLatency <= 5*time.Second, "-sim-latency must be between 0 and 5s")
	check(o.errorRate >= 0 && o.http5xxRate >= 0 && o.errorRate+o.http5xxRate <= 0.9,
		"-error-rate and -http5xx-rate must not be negative and must add up to at most 0.9")
	check(o.busyEvery == 0 || (o.busyEvery >= 5*time.Second && o.busyFor > 0 && o.busyFor < o.busyEvery && o.busyQPS > 0),
		"-busy-every must be 0 or at least 5s, with 0 < -busy-for < -busy-every and a positive -busy-qps")
	check(o.pgDown >= 0 && o.pgDown <= time.Minute, "-pg-down must be between 0 and 1m")
	check(o.kafkaDown >= 0 && o.kafkaDown <= time.Minute, "-kafka-down must be between 0 and 1m")
	check(o.settle >= 10*time.Second && o.settle <= time.Hour, "-settle must be between 10s and 1h")
	check(o.waitOthers >= 0 && o.waitOthers <= time.Hour, "-wait-others must be between 0 and 1h")
	check(o.maxDuration > o.duration+o.settle, "-max-duration must be longer than -duration plus -settle")
	return o, errors.Join(errs...)
}

// run returns the exit code the ledger calls for, or an error when the harness itself failed.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) (int, error) {
	opts, err := parseOptions(args, stderr)
	if err != nil {
		return 2, err
	}
	if opts.seed == 0 {
		opts.seed = uint64(time.Now().UnixNano())
	}
	opts.root, err = os.Getwd()
	if err != nil {
		return 2, err
	}
	s, err := newSoak(opts, getenv, stdout, stderr)
	if err != nil {
		return 2, err
	}
	ctx, cancel := context.WithTimeout(ctx, opts.maxDuration)
	defer cancel()
	return s.run(ctx)
}
