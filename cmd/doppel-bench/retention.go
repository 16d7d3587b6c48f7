package main

import (
	"context"
	"fmt"
	"sync/atomic"
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
// the same fixed-rate flow run on it twice, by a doppel without retention and then by one whose
// sweep (at start) deletes them.
type retentionResult struct {
	ExpiredChecks int     `json:"expiredChecks"`
	FillSeconds   float64 `json:"fillSeconds"`
	Retention     string  `json:"retention"`
	// Without and With are the flow's figures without the sweep and while it ran.
	Without *latencyResult `json:"without"`
	With    *latencyResult `json:"with"`
	// SweepSeconds is from the sweeping doppel's start to its first finished sweep
	// (doppel_retention_sweeps_total); SweepDone says whether it finished within the bound.
	SweepSeconds float64 `json:"sweepSeconds"`
	SweepDone    bool    `json:"sweepDone"`
	// ChecksLeft and LinksLeft are the expired rows the sweep kept: people on legal hold.
	ChecksDeleted, ChecksLeft, LinksLeft int64
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
	without := cWarmup + int(rate*b.opts.retentionWithout.Seconds())
	with := cWarmup + int(rate*b.opts.retentionTimeout.Seconds())
	pop := newPopulation(without+with, "r", b.opts.ringFraction, b.opts.seed+4)
	if err := sim.seed(ctx, &pop); err != nil {
		return res, err
	}
	run := func(name string, people []person, env []string, stop func(lr *liveRun) func() bool) (*latencyResult, *liveRun, error) {
		topics := b.topicsFor(name)
		if err := createTopics(ctx, b.brokers, b.opts.partitions, topics.events, name+"-erasures"); err != nil {
			return nil, nil, err
		}
		b.created = append(b.created, name+"-erasures")
		from := time.Now()
		lr, err := b.beginOn(ctx, name, dbURL, topics, sim, 0, b.opts.workersA, append(erasureEnv(name+"-erasures"), env...))
		if err != nil {
			return nil, nil, err
		}
		lr.countFrom = from
		r, err := b.fixedRate(ctx, lr, people, rate, stop(lr))
		return r, lr, err
	}

	b.startScenario(ctx, "(r) without the sweep")
	b.logf("(r) %.0f events/s for %s, no retention", rate, b.opts.retentionWithout)
	res.Without, _, err = run("r-keep", pop.people[:without], nil, func(*liveRun) func() bool { return nil })
	if err != nil {
		return res, err
	}

	b.startScenario(ctx, "(r) with the sweep")
	b.logf("(r) %.0f events/s while the sweep runs (DOPPEL_RETENTION=%s), at most %s", rate, retentionAge, b.opts.retentionTimeout)
	var swept atomic.Bool
	res.With, _, err = run("r-sweep", pop.people[without:], []string{"DOPPEL_RETENTION=" + retentionAge.String()},
		func(lr *liveRun) func() bool {
			go func() { // the sweep starts with doppel; watch for its end
				for !swept.Load() && ctx.Err() == nil && !lr.doppel.proc.Exited() {
					if lr.doppel.metrics(ctx)["doppel_retention_sweeps_total"] >= 1 {
						res.SweepSeconds = time.Since(lr.doppel.started).Seconds()
						swept.Store(true)
						return
					}
					time.Sleep(200 * time.Millisecond)
				}
			}()
			return swept.Load
		})
	res.SweepDone = swept.Load()
	if err != nil {
		return res, err
	}
	conn, err := pgxConnect(ctx, dbURL)
	if err != nil {
		return res, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	cutoff := time.Now().Add(-retentionAge)
	if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM idv_checks WHERE checked_at < $1),
    (SELECT count(*) FROM duplicate_links WHERE last_seen_at < $1)`, cutoff).Scan(&res.ChecksLeft, &res.LinksLeft); err != nil {
		return res, fmt.Errorf("count what the sweep kept: %w", err)
	}
	res.ChecksDeleted = int64(res.ExpiredChecks) - res.ChecksLeft
	b.logf("(r) the sweep deleted %d checks in %.1fs (done: %v); kept %d checks and %d links of people on legal hold; flow p99 to outcome %.1f ms without, %.1f ms with",
		res.ChecksDeleted, res.SweepSeconds, res.SweepDone, res.ChecksLeft, res.LinksLeft, res.Without.ToOutcome.P99, res.With.ToOutcome.P99)
	return res, nil
}
