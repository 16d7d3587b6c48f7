package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/doppelhq/doppel/internal/harness/scale"
	"github.com/doppelhq/doppel/internal/postgres"
	"github.com/doppelhq/doppel/internal/pseudonym"
)

// ---------------------------------------------------------------- (r) retention sweep under flow

// retentionAge is (r)'s DOPPEL_RETENTION; the filled checks end twice as long ago, so all expire.
const retentionAge = 90 * 24 * time.Hour

// targetSweepP99Percent is issue 24's bound: the flow's p99 with the sweep at most 10 % above
// the p99 without it.
const targetSweepP99Percent = 10

// retentionResult is (r): one database filled with a year of checks all older than the retention,
// and -retention-pairs pairs of runs of the same fixed-rate flow on it (the same shape of
// population, so the same share of events raising alerts, for the same time), alternating a doppel
// without retention and one whose sweep starts with it and runs through the whole window. One p99
// of a minute moves by tens of percent from run to run here; alternating and taking the median of
// each side keeps the machine's drift out of the comparison.
type retentionResult struct {
	ExpiredChecks int     `json:"expiredChecks"`
	FillSeconds   float64 `json:"fillSeconds"`
	Retention     string  `json:"retention"`
	// Without and With are the flow's figures of each run without the sweep and while it ran.
	Without []*latencyResult `json:"without"`
	With    []*latencyResult `json:"with"`
	// RowsDeleted is what the sweeps deleted during the runs with one (doppel_retention_deleted_total,
	// every table); SweepFinished is whether one finished before its run did (then that run's
	// figures cover some time without a sweep).
	RowsDeleted   float64 `json:"rowsDeleted"`
	SweepFinished bool    `json:"sweepFinished"`
}

// medianP99 is the median over runs of their p99 from event to stored outcome.
func medianP99(runs []*latencyResult) float64 {
	var p []float64
	for _, r := range runs {
		p = append(p, r.ToOutcome.P99)
	}
	if len(p) == 0 {
		return 0
	}
	slices.Sort(p)
	return p[len(p)/2]
}

func (b *bench) scenarioR(ctx context.Context, sim *simulator) (*retentionResult, error) {
	res := &retentionResult{ExpiredChecks: b.opts.retentionChecks, Retention: retentionAge.String()}
	b.startScenario(ctx, "(r) fill")
	dbURL, err := b.freshDatabase(ctx, "bench_r")
	if err != nil {
		return res, err
	}
	if err := postgres.MigrateUp(dbURL); err != nil {
		return res, fmt.Errorf("migrate: %w", err)
	}
	// A year of checks of issue 23's shape (rings, face farms, reviews), ending twice the retention ago.
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return res, err
	}
	store := postgres.NewStore(pool, postgres.WithTombstones(pseudonym.NewKey([]byte(benchPseudonymKey))))
	fillStart := time.Now()
	_, err = scale.Fill(ctx, store, scale.NewPopulation(scale.DefaultShape(b.opts.retentionChecks, time.Now().Add(-2*retentionAge))), 2000, nil)
	pool.Close()
	if err != nil {
		return res, fmt.Errorf("fill: %w", err)
	}
	res.FillSeconds = time.Since(fillStart).Seconds()
	b.logf("(r) filled with %d checks older than %s in %.0fs", b.opts.retentionChecks, retentionAge, res.FillSeconds)

	rate := b.opts.retentionRate
	events := cWarmup + int(rate*b.opts.retentionWindow.Seconds())
	run := func(name string, env []string) (*latencyResult, error) {
		// The same seed for every run: the same rings at the same places in the flow.
		pop := newPopulation(events, name, b.opts.ringFraction, b.opts.seed+4)
		if err := sim.seed(ctx, &pop); err != nil {
			return nil, err
		}
		topics := b.topicsFor(name)
		if err := createTopics(ctx, b.brokers, b.opts.partitions, topics.events, name+"-erasures"); err != nil {
			return nil, err
		}
		b.created = append(b.created, name+"-erasures")
		from := time.Now()
		lr, err := b.beginOn(ctx, name, dbURL, topics, sim, 0, b.opts.workersA, append(erasureEnv(name+"-erasures"), env...))
		if err != nil {
			return nil, err
		}
		lr.countFrom = from
		lr.beforeFinish = func() {
			m := lr.doppel.metrics(ctx)
			res.RowsDeleted += m["doppel_retention_deleted_total"]
			res.SweepFinished = res.SweepFinished || m["doppel_retention_sweeps_total"] >= 1
		}
		return b.fixedRate(ctx, lr, pop.people, rate, nil)
	}

	for i := range b.opts.retentionPairs {
		b.startScenario(ctx, fmt.Sprintf("(r) without the sweep, %d", i+1))
		b.logf("(r) %.0f events/s for %s, no retention (%d of %d)", rate, b.opts.retentionWindow, i+1, b.opts.retentionPairs)
		without, err := run(fmt.Sprintf("r-keep-%d", i+1), nil)
		if err != nil {
			return res, err
		}
		res.Without = append(res.Without, without)
		b.startScenario(ctx, fmt.Sprintf("(r) with the sweep, %d", i+1))
		b.logf("(r) %.0f events/s for %s while the sweep runs (DOPPEL_RETENTION=%s)", rate, b.opts.retentionWindow, retentionAge)
		with, err := run(fmt.Sprintf("r-sweep-%d", i+1), []string{"DOPPEL_RETENTION=" + retentionAge.String()})
		if err != nil {
			return res, err
		}
		res.With = append(res.With, with)
	}
	b.logf("(r) the sweeps deleted %.0f rows during the runs (one finished: %v); flow p99 to outcome, median of the runs: %.1f ms without, %.1f ms with",
		res.RowsDeleted, res.SweepFinished, medianP99(res.Without), medianP99(res.With))
	return res, nil
}
