package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
)

// ---------------------------------------------------------------- (g) face farm

// farmResult is (g): the same number of events drained with one face behind K accounts, for each K.
type farmResult struct {
	Events int       `json:"events"`
	Runs   []farmRun `json:"runs"`
	// Erasure is (h): one member of the largest farm erased through the API after its drain.
	Erasure *farmErasure `json:"erasure,omitempty"`
}

// farmRun is one drain of (g).
type farmRun struct {
	RingSize int `json:"ringSize"`
	// Links is how many links the run stored: the farm's first duplicate.MaxPairsPerCheck
	// accounts of each answer (K(K-1)/2 up to a farm of 101), plus the rest's.
	Links int64             `json:"links"`
	Drain *throughputResult `json:"drain"`
	// Slowdown is the drain time over the no-ring run's (0 when there is none).
	Slowdown float64 `json:"slowdown"`
}

// newFarmPopulation makes n verifications of which k (at random places in the event order) share
// one face, the rest a face each: a face farm, one deepfake or printed photo behind k accounts.
func newFarmPopulation(n, k int, prefix string, seed uint64) population {
	rng := rand.New(rand.NewPCG(seed, uint64(k)))
	pop := population{people: make([]person, n)}
	for i := range pop.people {
		pop.people[i] = person{UserID: fmt.Sprintf("%s-u%07d", prefix, i), Face: fmt.Sprintf("%s-f%07d", prefix, i), ring: -1}
	}
	if k > 1 {
		pop.rings = [][]int{nil}
		for _, i := range rng.Perm(n)[:min(k, n)] {
			pop.people[i].Face, pop.people[i].ring = prefix+"-farm", 0
		}
		for i, p := range pop.people {
			if p.ring == 0 {
				pop.rings[0] = append(pop.rings[0], i)
			}
		}
	}
	return pop
}

// scenarioG drains a fresh backlog of farmEvents events once per ring size, each run with its own
// population, topics, database and doppel, on the zero-latency simulator.
func (b *bench) scenarioG(ctx context.Context, sim *simulator) (*farmResult, error) {
	res := &farmResult{Events: b.opts.farmEvents}
	var baseline float64
	for _, k := range b.opts.farmSizes {
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		name := fmt.Sprintf("g%d", k)
		b.startScenario(ctx, "(g) face farm of "+fmt.Sprint(k))
		n := max(b.opts.farmEvents, k)
		pop := newFarmPopulation(n, k, name, b.opts.seed+3)
		if err := sim.seed(ctx, &pop); err != nil {
			return res, err
		}
		topics := b.topicsFor(name)
		if err := createTopics(ctx, b.brokers, b.opts.partitions, topics.events); err != nil {
			return res, err
		}
		if _, err := produceBacklog(ctx, b.brokers, topics.events, pop.people); err != nil {
			return res, err
		}
		// Every run is configured for erasure (the tombstones' checks are on the write path, as in
		// production); the largest farm's run erases one member once drained.
		erasures := name + "-erasures"
		if err := createTopics(ctx, b.brokers, b.opts.partitions, erasures); err != nil {
			return res, err
		}
		b.created = append(b.created, erasures)
		lr, err := b.beginWith(ctx, name, topics, sim, 0, b.opts.workersA, erasureEnv(erasures))
		if err != nil {
			return res, err
		}
		run := farmRun{RingSize: k}
		eraseHere := k >= farmErasureMinSize && k == slices.Max(b.opts.farmSizes)
		// Counted while the run's connection is still open, and doppel still runs.
		lr.beforeFinish = func() {
			_ = lr.conn.QueryRow(ctx, `SELECT count(*) FROM duplicate_links`).Scan(&run.Links)
			if eraseHere && len(pop.rings) > 0 {
				member := pop.people[pop.rings[0][len(pop.rings[0])/2]].UserID
				res.Erasure = b.eraseThroughAPI(ctx, lr, k, member)
			}
		}
		drained, err := b.drain(ctx, lr, n, b.opts.workersA, b.opts.farmTimeout)
		run.Drain = drained
		if k == 0 && drained != nil && drained.Complete {
			baseline = drained.Seconds
		}
		if baseline > 0 && drained != nil {
			run.Slowdown = drained.Seconds / baseline
		}
		res.Runs = append(res.Runs, run)
		if drained != nil {
			b.logf("(g) ring of %d in %d events: %d links, drained in %.2fs (%.0f events/s, %.1fx the no-ring run), doppel+postgres %.0f us CPU per event",
				k, n, run.Links, drained.Seconds, drained.EventsPerSec, run.Slowdown,
				drained.CPUMicrosPerEvent["doppel"]+drained.CPUMicrosPerEvent["postgres"])
		}
		if err != nil {
			return res, err
		}
	}
	return res, nil
}
