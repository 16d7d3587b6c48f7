package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/doppelhq/doppel/internal/harness/advancesim"
	"github.com/doppelhq/doppel/internal/harness/faces"
	"github.com/doppelhq/doppel/internal/harness/launch"
	"github.com/doppelhq/doppel/internal/harness/produce"
	"github.com/doppelhq/doppel/internal/topic"
)

// person is one verification of the generated population, in event order.
type person struct {
	UserID string
	Face   string
	sig    string
	// ring is the index of the face group in population.rings, or -1 for a face of one's own.
	ring int
}

// population is a set of verifications where some users share a face with others.
type population struct {
	people []person
	// rings holds, per shared face, the indexes into people of its members, in event order.
	rings [][]int
}

// newPopulation makes n verifications, each of a different user. About ringFraction of the users
// are in rings of 2 to 4 users sharing one face, so their face searches match each other and the
// alert path is exercised; the rest have a face of their own. Events come in random order.
func newPopulation(n int, prefix string, ringFraction float64, seed uint64) population {
	rng := rand.New(rand.NewPCG(seed, 0xd0bbe1))
	var groups [][]string // users per face
	users := 0
	for _, size := range faces.GroupSizes(rng, n, ringFraction) {
		g := make([]string, size)
		for i := range g {
			g[i] = fmt.Sprintf("%s-u%07d", prefix, users)
			users++
		}
		groups = append(groups, g)
	}
	pop := population{people: make([]person, 0, n)}
	for gi, g := range groups {
		ring := -1
		if len(g) > 1 {
			ring = len(pop.rings)
			pop.rings = append(pop.rings, nil)
		}
		for _, u := range g {
			pop.people = append(pop.people, person{UserID: u, Face: fmt.Sprintf("%s-f%07d", prefix, gi), ring: ring})
		}
	}
	rng.Shuffle(len(pop.people), func(i, j int) { pop.people[i], pop.people[j] = pop.people[j], pop.people[i] })
	for i, pp := range pop.people {
		if pp.ring >= 0 {
			pop.rings[pp.ring] = append(pop.rings[pp.ring], i)
		}
	}
	return pop
}

// inRings counts the users who share a face.
func (p population) inRings() int {
	n := 0
	for _, r := range p.rings {
		n += len(r)
	}
	return n
}

// matched returns what face search answers for person i: the users sharing i's face who
// completed before i. The simulator is seeded in people order, so they are i's ring members of
// lower index, in ring order.
func (p population) matched(i int) []string {
	r := p.people[i].ring
	if r < 0 {
		return nil
	}
	var out []string
	for _, j := range p.rings[r] {
		if j >= i {
			break
		}
		out = append(out, p.people[j].UserID)
	}
	return out
}

// ---------------------------------------------------------------- advance-sim

// simulator is a running advance-sim with the settings the report describes.
type simulator struct {
	*launch.Simulator
	latency time.Duration
	qps     float64
}

func (b *bench) startSim(ctx context.Context, name string, latency time.Duration, qps float64) (*simulator, error) {
	s, err := launch.StartSimulator(ctx, launch.SimulatorConfig{
		Name:     "advance-sim (" + name + ")",
		Bin:      filepath.Join(b.opts.binDir, "advance-sim"),
		Log:      launch.Log{Path: filepath.Join(b.logDir, "advance-sim-"+name+".log")},
		Latency:  latency,
		Settings: []string{fmt.Sprintf("ADVANCE_SIM_QPS=%g", qps)},
	})
	if err != nil {
		return nil, err
	}
	return &simulator{Simulator: s, latency: latency, qps: qps}, nil
}

func (s *simulator) stop() error {
	if s == nil {
		return nil
	}
	return s.Stop(15 * time.Second)
}

// seed adds the population's verifications (all PASS) and records their signatureIds.
func (s *simulator) seed(ctx context.Context, pop *population) error {
	sessions := make([]advancesim.Session, len(pop.people))
	for i, p := range pop.people {
		sessions[i] = advancesim.Session{UserID: p.UserID, Face: p.Face, OverallResult: advancesim.ResultPass}
	}
	sigs, err := s.Ctl.AddSessions(ctx, sessions)
	if err != nil {
		return err
	}
	for i := range pop.people {
		pop.people[i].sig = sigs[i]
	}
	return nil
}

// simStats is GET /sim/stats, reduced to what the benchmark uses.
type simStats struct {
	at          time.Time
	faceSearch  int64 // face-search requests, whatever the answer
	billed      int64 // face searches answered SUCCESS
	serviceBusy int64 // SERVICE_BUSY answers
	answers     map[string]int64
}

func (s *simulator) stats(ctx context.Context) (simStats, error) {
	raw, err := s.Ctl.Stats(ctx)
	if err != nil {
		return simStats{}, err
	}
	st := simStats{at: time.Now(), faceSearch: raw.Calls["face-search"], serviceBusy: raw.Answers["SERVICE_BUSY"],
		answers: raw.Answers}
	for _, n := range raw.FaceSearchBySignature {
		st.billed += n
	}
	return st, nil
}

// ---------------------------------------------------------------- producing events

// eventValue is the "H5 IDV completed" event as producers enrich it: with the userId, so Doppel
// needs one vendor call (face search) per event and no get-result.
type eventValue struct {
	SignatureID string `json:"signatureId"`
	Type        string `json:"type"`
	UserID      string `json:"userId"`
}

func eventMessage(p person) kafka.Message {
	value, _ := json.Marshal(eventValue{SignatureID: p.sig, Type: "COMPLETED", UserID: p.UserID})
	return kafka.Message{Key: []byte(p.sig), Value: value}
}

func newWriter(brokers []string, name string) *kafka.Writer {
	return topic.NewWriter(brokers, name, topic.WriterConfig{
		BatchSize: 1000, BatchBytes: 4 << 20, BatchTimeout: 3 * time.Millisecond, WriteTimeout: 30 * time.Second})
}

// produceBacklog writes every person's event to topic and returns how long it took.
func produceBacklog(ctx context.Context, brokers []string, topic string, people []person) (time.Duration, error) {
	w := newWriter(brokers, topic)
	defer w.Close()
	return produce.Backlog(ctx, w, len(people), func(i int) kafka.Message { return eventMessage(people[i]) })
}
