package scale

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/segmentio/kafka-go"

	"github.com/doppelhq/doppel/internal/harness/advancesim"
	"github.com/doppelhq/doppel/internal/harness/faces"
	"github.com/doppelhq/doppel/internal/harness/launch"
	"github.com/doppelhq/doppel/internal/harness/produce"
	"github.com/doppelhq/doppel/internal/harness/runenv"
	"github.com/doppelhq/doppel/internal/topic"
)

// HotPathConfig is how to drain a backlog of events through `doppel serve`.
type HotPathConfig struct {
	DoppelBin, SimulatorBin, LogDir string
	Brokers                         []string
	// Events is the size of the backlog; Workers is DOPPEL_WORKERS (doppel's default is 512).
	Events, Workers int
	Timeout         time.Duration
	// Postmaster is PostgreSQL's pid, to measure its CPU per event (0: not measured).
	Postmaster int
}

// HotPath is one drain: how many events were stored in how long, from the first stored check to
// the last (doppel's start-up is left out).
type HotPath struct {
	Label        string
	Events       int
	Took         time.Duration
	EventsPerSec float64
	// PostgresCPUPerEvent is PostgreSQL's CPU time (all its processes) per check stored, from the
	// first check stored to the last; 0 when not measured.
	PostgresCPUPerEvent time.Duration
}

// DrainBacklog produces a backlog of cfg.Events COMPLETED events of new users (10 % in rings, as
// in the fill) to topics of their own, starts advance-sim (zero latency) and `doppel serve` on
// dbURL, and times how fast the checks are stored. pool is on the same database; only checks stored
// after the call began are counted, through idv_checks_checked_at_idx, so the count stays cheap on
// a database of millions of checks. name keeps topics, users and logs apart.
func DrainBacklog(ctx context.Context, cfg HotPathConfig, dbURL string, pool *pgxpool.Pool, name string) (HotPath, error) {
	res := HotPath{Label: name, Events: cfg.Events}
	began := time.Now()
	sim, err := launch.StartSimulator(ctx, launch.SimulatorConfig{Name: "advance-sim (" + name + ")", Bin: cfg.SimulatorBin,
		Log: launch.Log{Path: filepath.Join(cfg.LogDir, "advance-sim-"+name+".log")}})
	if err != nil {
		return res, err
	}
	defer func() { _ = sim.Stop(10 * time.Second) }()

	rng := rand.New(rand.NewPCG(uint64(len(name)), 0x4075))
	var sessions []advancesim.Session
	for face, size := range faces.GroupSizes(rng, cfg.Events, 0.10) {
		for range size {
			sessions = append(sessions, advancesim.Session{UserID: fmt.Sprintf("%s-u%07d", name, len(sessions)),
				Face: fmt.Sprintf("%s-f%07d", name, face), OverallResult: advancesim.ResultPass})
		}
	}
	rng.Shuffle(len(sessions), func(i, j int) { sessions[i], sessions[j] = sessions[j], sessions[i] })
	sigs, err := sim.Ctl.AddSessions(ctx, sessions)
	if err != nil {
		return res, err
	}

	settings := launch.DoppelSettings{DatabaseURL: dbURL, Brokers: cfg.Brokers, Group: name, Events: name + "-events",
		Alerts: name + "-alerts", DLQ: name + "-dlq", Partitions: 6, SimulatorURL: sim.URL, Workers: cfg.Workers}
	var specs []topic.Spec
	for _, t := range []string{settings.Events, settings.Alerts, settings.DLQ} {
		specs = append(specs, topic.Spec{Name: t, Partitions: 6, ReplicationFactor: 1})
	}
	if _, err := topic.Ensure(ctx, cfg.Brokers, specs...); err != nil {
		return res, fmt.Errorf("create topics: %w", err)
	}
	w := topic.NewWriter(cfg.Brokers, settings.Events, topic.WriterConfig{BatchSize: 1000, BatchBytes: 4 << 20,
		BatchTimeout: 3 * time.Millisecond, WriteTimeout: 30 * time.Second})
	_, err = produce.Backlog(ctx, w, len(sessions), func(i int) kafka.Message {
		v, _ := json.Marshal(map[string]string{"signatureId": sigs[i], "type": "COMPLETED", "userId": sessions[i].UserID})
		return kafka.Message{Key: []byte(sigs[i]), Value: v}
	})
	_ = w.Close()
	if err != nil {
		return res, err
	}

	d, err := launch.StartDoppel("doppel serve ("+name+")", cfg.DoppelBin,
		launch.Log{Path: filepath.Join(cfg.LogDir, "doppel-"+name+".log")}, settings.Env())
	if err != nil {
		return res, err
	}
	defer func() { _, _ = d.Proc.Stop(15 * time.Second) }()

	var first time.Time
	var firstTicks int64
	firstStored := 0
	deadline := time.Now().Add(cfg.Timeout)
	for {
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM idv_checks WHERE checked_at >= $1`, began).Scan(&n); err != nil {
			return res, fmt.Errorf("count stored checks: %w", err)
		}
		now := time.Now()
		if n > 0 && first.IsZero() {
			first, firstStored = now, n
			if cfg.Postmaster > 0 {
				firstTicks = runenv.TreeTicks(cfg.Postmaster)
			}
		}
		if n >= len(sessions) {
			res.Took = now.Sub(first)
			res.EventsPerSec = float64(n) / max(res.Took.Seconds(), 0.001)
			if cfg.Postmaster > 0 && n > firstStored {
				ticks := runenv.TreeTicks(cfg.Postmaster) - firstTicks
				res.PostgresCPUPerEvent = time.Duration(ticks) * (time.Second / runenv.ClockTicksPerSecond) / time.Duration(n-firstStored)
			}
			return res, nil
		}
		if now.After(deadline) {
			return res, fmt.Errorf("%s: %d of %d events stored after %s", name, n, len(sessions), cfg.Timeout)
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
