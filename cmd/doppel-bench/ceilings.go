package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/segmentio/kafka-go"

	"github.com/doppelhq/doppel/internal/advance"
	"github.com/doppelhq/doppel/internal/harness/childproc"
	"github.com/doppelhq/doppel/internal/harness/launch"
	"github.com/doppelhq/doppel/internal/harness/runenv"
)

func pgxConnect(ctx context.Context, dbURL string) (*pgx.Conn, error) {
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	return pgx.Connect(cctx, dbURL)
}

// migratedDatabase makes a fresh database with doppel's schema, applied by `doppel migrate up`.
func (b *bench) migratedDatabase(ctx context.Context, name string) (string, error) {
	dbURL, err := runenv.FreshDatabase(ctx, b.baseDB, name)
	if err != nil {
		return "", err
	}
	mctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(mctx, filepath.Join(b.opts.binDir, "doppel"), "migrate", "up")
	cmd.Env = childproc.Env("DOPPEL_DATABASE_URL=" + dbURL)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("doppel migrate up on %s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	return dbURL, nil
}

// ---------------------------------------------------------------- (e) Kafka

// kafkaCeilingResult is how fast kafka-go reads the backlog with nothing else to do.
type kafkaCeilingResult struct {
	Messages int `json:"messages"`
	// MsgsPerSec is the median of the passes; each pass reads the whole backlog in a fresh group.
	MsgsPerSec float64 `json:"msgsPerSec"`
	// PassMsgsPerSec and PassSeconds are per pass, from the first message to the last (the group
	// join, JoinSeconds, is not counted).
	PassMsgsPerSec []float64          `json:"passMsgsPerSec"`
	PassSeconds    []float64          `json:"passSeconds"`
	JoinSeconds    []float64          `json:"joinSeconds"`
	CPUCores       map[string]float64 `json:"cpuCores"`
}

// kafkaCeilingPasses is how many times the backlog is read; a pass takes well under a second.
const kafkaCeilingPasses = 3

// kafkaCeiling reads the n messages of topic, with the reader settings doppel's consumer uses and
// no processing, in a fresh consumer group per pass.
func (b *bench) kafkaCeiling(ctx context.Context, topic string, n int) (*kafkaCeilingResult, error) {
	res := &kafkaCeilingResult{Messages: n}
	roles := cpuRoles{"kafka": b.infra.kafka, "bench": selfPid()}
	cpu0 := roles.snapshot(0)
	for pass := range kafkaCeilingPasses {
		secs, join, err := b.readAll(ctx, fmt.Sprintf("bench-%s-kafka-ceiling-%d", b.runID, pass), topic, n)
		if err != nil {
			return nil, err
		}
		res.PassSeconds = append(res.PassSeconds, secs)
		res.JoinSeconds = append(res.JoinSeconds, join)
		res.PassMsgsPerSec = append(res.PassMsgsPerSec, float64(n-1)/secs)
	}
	res.CPUCores = cpuUse(cpu0, roles.snapshot(0))
	sorted := slices.Clone(res.PassMsgsPerSec)
	slices.Sort(sorted)
	res.MsgsPerSec = sorted[len(sorted)/2]
	b.logf("(e) kafka-go read %d messages: %.0f msgs/s (median of %d passes: %s s; group joins not counted)",
		n, res.MsgsPerSec, kafkaCeilingPasses, formatFloats(res.PassSeconds, 3))
	return res, nil
}

// readAll reads n messages in group and returns the seconds from the first message to the last,
// and the seconds before the first (the group join).
func (b *bench) readAll(ctx context.Context, group, topic string, n int) (secs, join float64, err error) {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:           b.brokers,
		GroupID:           group,
		Topic:             topic,
		MinBytes:          1,
		MaxBytes:          10 << 20,
		MaxWait:           250 * time.Millisecond,
		StartOffset:       kafka.FirstOffset,
		HeartbeatInterval: time.Second,
		SessionTimeout:    10 * time.Second,
		RebalanceTimeout:  10 * time.Second,
		JoinGroupBackoff:  500 * time.Millisecond,
		QueueCapacity:     256,
	})
	defer r.Close()
	rctx, cancel := context.WithTimeout(ctx, 120*time.Second)
	defer cancel()
	created := time.Now()
	var first time.Time
	for read := range n {
		if _, err := r.FetchMessage(rctx); err != nil {
			return 0, 0, fmt.Errorf("read %s: message %d of %d: %w", topic, read+1, n, err)
		}
		if read == 0 {
			first = time.Now()
		}
	}
	return time.Since(first).Seconds(), first.Sub(created).Seconds(), nil
}

func formatFloats(xs []float64, prec int) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = strconv.FormatFloat(x, 'f', prec, 64)
	}
	return strings.Join(parts, ", ")
}

// ---------------------------------------------------------------- (e) PostgreSQL

// pgCeilingResult is how fast the rows (a) stores can be written with COPY.
type pgCeilingResult struct {
	Checks       int                `json:"checks"`
	Links        int                `json:"links"`
	Alerts       int                `json:"alerts"`
	Conns        int                `json:"conns"`
	BatchChecks  int                `json:"batchChecks"`
	Seconds      float64            `json:"seconds"`
	ChecksPerSec float64            `json:"checksPerSec"`
	RowsPerSec   float64            `json:"rowsPerSec"`
	CPUCores     map[string]float64 `json:"cpuCores"`
}

// pgCeilingConns and pgCeilingBatch: two COPY streams (one per core), each committing every
// batch of checks with their links and alerts.
const (
	pgCeilingConns = 2
	pgCeilingBatch = 5000
)

// copyBatch is one transaction of the PostgreSQL ceiling.
type copyBatch struct {
	checks, links, alerts [][]any
}

// pgCeiling COPYs into doppel's schema the rows (a) stores for the population: one idv_checks row
// per event, one duplicate_links row per pair of ring members (written with the check of the
// member seen first), and one alerts row per ring member but the last (what a sequential run
// raises). The rows are built before the clock starts.
func (b *bench) pgCeiling(ctx context.Context, pop population, topic string) (*pgCeilingResult, error) {
	dbURL, err := b.migratedDatabase(ctx, "bench_pg_ceiling")
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	var batches []copyBatch
	res := &pgCeilingResult{Conns: pgCeilingConns, BatchChecks: pgCeilingBatch}
	for start := 0; start < len(pop.people); start += pgCeilingBatch {
		var cb copyBatch
		for i := start; i < min(start+pgCeilingBatch, len(pop.people)); i++ {
			p := pop.people[i]
			matched := pop.matched(i)
			if matched == nil {
				matched = []string{} // text[] NOT NULL
			}
			outcome := "no_duplicates"
			if len(matched) > 0 {
				outcome = "duplicates_found"
			}
			cb.checks = append(cb.checks, []any{p.sig, p.UserID, "COMPLETED", outcome, matched, matched,
				"bench-tx", topic, int32(0), int64(i), now})
			if len(matched) == 0 {
				continue
			}
			// Face search only returns earlier verifications, so each pair is seen once, by its
			// later member, and is new then.
			for _, other := range matched {
				lo, hi := min(p.UserID, other), max(p.UserID, other)
				cb.links = append(cb.links, []any{lo, hi, now, now, int32(1), p.sig, p.sig})
			}
			var id [16]byte
			_, _ = rand.Read(id[:])
			id[6], id[8] = (id[6]&0x0f)|0x40, (id[8]&0x3f)|0x80
			cb.alerts = append(cb.alerts, []any{id, p.sig, p.UserID, matched, matched, "bench-tx", now})
		}
		res.Checks += len(cb.checks)
		res.Links += len(cb.links)
		res.Alerts += len(cb.alerts)
		batches = append(batches, cb)
	}

	conns := make([]*pgx.Conn, pgCeilingConns)
	for i := range conns {
		if conns[i], err = pgxConnect(ctx, dbURL); err != nil {
			return nil, err
		}
		defer conns[i].Close(context.WithoutCancel(ctx))
	}
	roles := cpuRoles{"bench": selfPid()}
	cpu0 := roles.snapshot(b.infra.postmaster)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, len(conns))
	for c, conn := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := c; i < len(batches); i += len(conns) {
				if err := copyOne(ctx, conn, batches[i]); err != nil {
					errs[c] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	res.CPUCores = cpuUse(cpu0, roles.snapshot(b.infra.postmaster))
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	res.ChecksPerSec = float64(res.Checks) / res.Seconds
	res.RowsPerSec = float64(res.Checks+res.Links+res.Alerts) / res.Seconds
	b.logf("(e) COPY of %d checks, %d links, %d alerts in %.2fs: %.0f checks/s (%d connections)",
		res.Checks, res.Links, res.Alerts, res.Seconds, res.ChecksPerSec, len(conns))
	_ = runenv.DropDatabase(ctx, b.baseDB, "bench_pg_ceiling")
	return res, nil
}

func copyOne(ctx context.Context, conn *pgx.Conn, cb copyBatch) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"idv_checks"}, []string{"signature_id", "user_id", "event_type",
		"outcome", "similar_user_ids", "matched_user_ids", "vendor_transaction_id", "source_topic",
		"source_partition", "source_offset", "checked_at"}, pgx.CopyFromRows(cb.checks)); err != nil {
		return fmt.Errorf("copy idv_checks: %w", err)
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"duplicate_links"}, []string{"user_id_low", "user_id_high",
		"first_seen_at", "last_seen_at", "seen_count", "first_signature_id", "last_signature_id"},
		pgx.CopyFromRows(cb.links)); err != nil {
		return fmt.Errorf("copy duplicate_links: %w", err)
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"alerts"}, []string{"alert_id", "signature_id", "user_id",
		"matched_user_ids", "new_matched_user_ids", "vendor_transaction_id", "detected_at"},
		pgx.CopyFromRows(cb.alerts)); err != nil {
		return fmt.Errorf("copy alerts: %w", err)
	}
	return tx.Commit(ctx)
}

// ---------------------------------------------------------------- (f) naive baseline

// naiveResult is the one-at-a-time baseline.
type naiveResult struct {
	VendorLatencyMs float64 `json:"vendorLatencyMs"`
	Events          int     `json:"events"`
	Seconds         float64 `json:"seconds"`
	EventsPerSec    float64 `json:"eventsPerSec"`
	VendorErrors    int     `json:"vendorErrors"`
	// VendorCall is the face-search round trip as the naive loop saw it.
	VendorCall latencyDist `json:"vendorCall"`
	// Step times per event, in milliseconds (p50), to show where a naive loop spends its time.
	FetchP50Ms  float64  `json:"fetchP50Ms"`
	InsertP50Ms float64  `json:"insertP50Ms"`
	CommitP50Ms float64  `json:"commitP50Ms"`
	Samples     []sample `json:"samples"`
}

// naive runs the baseline for d: FetchMessage -> face search -> INSERT the check and its links in
// one transaction -> CommitMessages (synchronous), one event at a time. The clock starts at the
// first message (the group join is not counted).
func (b *bench) naive(ctx context.Context, name, topic string, sim *simulator, d time.Duration) (*naiveResult, error) {
	dbURL, err := b.migratedDatabase(ctx, "bench_"+name)
	if err != nil {
		return nil, err
	}
	conn, err := pgxConnect(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	client, err := advance.New(advance.Config{BaseURL: sim.URL, AccessKey: launch.AccessKey, SecretKey: launch.SecretKey})
	if err != nil {
		return nil, err
	}
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:     b.brokers,
		GroupID:     fmt.Sprintf("bench-%s-%s", b.runID, name),
		Topic:       topic,
		MinBytes:    1,
		MaxBytes:    10 << 20,
		MaxWait:     250 * time.Millisecond,
		StartOffset: kafka.FirstOffset,
	})
	defer r.Close()

	res := &naiveResult{VendorLatencyMs: float64(sim.latency.Milliseconds())}
	var done atomic.Int64
	created := time.Now()
	sctx, stopSampling := context.WithCancel(ctx)
	var sampling sync.WaitGroup
	sampling.Add(1)
	go func() {
		defer sampling.Done()
		every(sctx, func() bool {
			res.Samples = append(res.Samples, sample{T: time.Since(created).Seconds(), Stored: done.Load()})
			return true
		})
	}()
	defer func() { stopSampling(); sampling.Wait() }()

	var fetchT, callT, insertT, commitT []time.Duration
	var start, deadline time.Time
	joinCtx, cancelJoin := context.WithTimeout(ctx, 60*time.Second)
	defer cancelJoin()
	for i := 0; i < 10_000_000; i++ {
		fctx := joinCtx
		var cancel context.CancelFunc = func() {}
		if !start.IsZero() {
			if !time.Now().Before(deadline) {
				break
			}
			fctx, cancel = context.WithDeadline(ctx, deadline)
		}
		t0 := time.Now()
		msg, err := r.FetchMessage(fctx)
		cancel()
		if err != nil {
			if start.IsZero() {
				return nil, fmt.Errorf("naive: first fetch from %s: %w", topic, err)
			}
			break // the deadline passed while fetching
		}
		if start.IsZero() {
			start, deadline = time.Now(), time.Now().Add(d)
		} else {
			fetchT = append(fetchT, time.Since(t0))
		}
		var ev eventValue
		if err := json.Unmarshal(msg.Value, &ev); err != nil {
			return nil, fmt.Errorf("naive: decode event: %w", err)
		}
		t1 := time.Now()
		found, err := client.FaceSearch(ctx, ev.SignatureID)
		callT = append(callT, time.Since(t1))
		t2 := time.Now()
		if err != nil {
			res.VendorErrors++
			if err := naiveInsert(ctx, conn, ev, msg, "failed", nil); err != nil {
				return nil, err
			}
		} else {
			matched := othersThan(ev.UserID, found.SimilarFaceUserIDs)
			outcome := "no_duplicates"
			if len(matched) > 0 {
				outcome = "duplicates_found"
			}
			if err := naiveInsert(ctx, conn, ev, msg, outcome, matched); err != nil {
				return nil, err
			}
		}
		insertT = append(insertT, time.Since(t2))
		t3 := time.Now()
		if err := r.CommitMessages(ctx, msg); err != nil {
			return nil, fmt.Errorf("naive: commit offset: %w", err)
		}
		commitT = append(commitT, time.Since(t3))
		done.Add(1)
	}
	res.Events = int(done.Load())
	res.Seconds = time.Since(start).Seconds()
	res.EventsPerSec = float64(res.Events) / res.Seconds
	res.VendorCall = distOf(callT)
	res.FetchP50Ms, res.InsertP50Ms, res.CommitP50Ms = distOf(fetchT).P50, distOf(insertT).P50, distOf(commitT).P50
	b.logf("(f) naive (%s vendor latency): %d events in %.1fs = %.1f events/s (p50 per event: fetch %.2f ms, vendor %.2f ms, insert %.2f ms, commit %.2f ms)",
		sim.latency, res.Events, res.Seconds, res.EventsPerSec, res.FetchP50Ms, res.VendorCall.P50, res.InsertP50Ms, res.CommitP50Ms)
	return res, nil
}

func othersThan(userID string, similar []string) []string {
	out := []string{}
	seen := map[string]bool{}
	for _, u := range similar {
		if u != "" && u != userID && !seen[u] {
			seen[u] = true
			out = append(out, u)
		}
	}
	return out
}

func naiveInsert(ctx context.Context, conn *pgx.Conn, ev eventValue, msg kafka.Message, outcome string, matched []string) error {
	if matched == nil {
		matched = []string{}
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("naive: begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	now := time.Now()
	if _, err := tx.Exec(ctx, `INSERT INTO idv_checks (signature_id, user_id, event_type, outcome, similar_user_ids,
    matched_user_ids, source_topic, source_partition, source_offset, checked_at)
VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $8, $9) ON CONFLICT (signature_id) DO NOTHING`,
		ev.SignatureID, ev.UserID, ev.Type, outcome, matched, msg.Topic, msg.Partition, msg.Offset, now); err != nil {
		return fmt.Errorf("naive: insert check: %w", err)
	}
	for _, m := range matched {
		if _, err := tx.Exec(ctx, `INSERT INTO duplicate_links (user_id_low, user_id_high, first_seen_at, last_seen_at,
    seen_count, first_signature_id, last_signature_id)
VALUES (least($1::text COLLATE "C", $2::text), greatest($1::text COLLATE "C", $2::text), $3, $3, 1, $4, $4)
ON CONFLICT (user_id_low, user_id_high) DO UPDATE SET seen_count = duplicate_links.seen_count + 1,
    last_seen_at = EXCLUDED.last_seen_at, last_signature_id = EXCLUDED.last_signature_id`,
			ev.UserID, m, now, ev.SignatureID); err != nil {
			return fmt.Errorf("naive: upsert link: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("naive: commit: %w", err)
	}
	return nil
}
