// Command doppel-scale is the scale scenario of `make bench-scale` (issue 23): it fills a fresh
// database with a year of production-shaped data through the store's own write path
// (internal/harness/scale), starts `bin/doppel serve` on it, times every read route of the API and
// every console page (p50, p95, max, warm cache), reads the size of every table, drains a backlog of
// events through doppel serve and advance-sim on a fresh database and on the filled one (the hot
// path), and writes the tables between the scale markers of docs/performance.md.
//
// DOPPEL_DATABASE_URL and DOPPEL_KAFKA_BROKERS (from .local/env, which scripts/with-infra.sh
// exports) say where PostgreSQL and Kafka are. Run `doppel-scale -h` for the knobs.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/doppelhq/doppel/internal/apikey"
	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/harness/launch"
	"github.com/doppelhq/doppel/internal/harness/runenv"
	"github.com/doppelhq/doppel/internal/harness/scale"
	"github.com/doppelhq/doppel/internal/postgres"
	"github.com/doppelhq/doppel/internal/pseudonym"
	"github.com/doppelhq/doppel/internal/topic"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "doppel-scale:", err)
		os.Exit(1)
	}
}

type options struct {
	size     int
	requests int
	budget   time.Duration
	batch    int
	database string
	docs     string
	binDir   string
	logDir   string
	reuse    bool
	hot      int
}

// apiKey is the run's own key: doppel runs on loopback for this run only, so it is no secret.
const apiKey = "doppel-scale-read-key"

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var o options
	fs := flag.NewFlagSet("doppel-scale", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.size, "size", 200_000, "checks to generate (issue 23's target is 10000000)")
	fs.IntVar(&o.requests, "requests", 20, "timed requests per read (after 2 unmeasured ones)")
	fs.DurationVar(&o.budget, "budget", 45*time.Second, "a read still running after this long stops at the requests done (at least 3)")
	fs.IntVar(&o.batch, "batch", 2000, "checks per transaction of the fill (the group commit's batch)")
	fs.StringVar(&o.database, "database", "doppel_scale", "database to fill, next to DOPPEL_DATABASE_URL's (dropped and created again)")
	fs.StringVar(&o.docs, "docs", "docs/performance.md", "markdown file whose scale block is replaced (empty: none)")
	fs.StringVar(&o.binDir, "bin", "bin", "folder holding the doppel binary")
	fs.StringVar(&o.logDir, "out", "bench-results", "folder for doppel's log")
	fs.BoolVar(&o.reuse, "reuse", false, "measure the database as the last run of this size left it, without filling it again")
	fs.IntVar(&o.hot, "hot-events", 30_000, "events of the hot-path drain on a fresh database and on the filled one, after the reads (0: none)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	baseURL, brokers, err := runenv.Servers(getenv, "doppel-scale", "scripts/bench-scale.sh (make bench-scale)")
	if err != nil {
		return err
	}
	if err := runenv.CheckBinaries(o.binDir, "scripts/bench-scale.sh", "doppel", "advance-sim"); err != nil {
		return err
	}
	logf := func(format string, a ...any) {
		fmt.Fprintf(stderr, "%s "+format+"\n", append([]any{time.Now().UTC().Format("15:04:05")}, a...)...)
	}
	began, built := time.Now(), commit() // the tree as the binary was built, before any edit during the run
	shape := scale.DefaultShape(o.size, time.Now().UTC().Truncate(24*time.Hour))
	pop := scale.NewPopulation(shape)

	dbURL, err := database(ctx, baseURL, o.database, o.reuse)
	if err != nil {
		return err
	}
	// The group commit's pool settings: the fill runs the pipeline's statements as it does.
	pool, err := postgres.Connect(ctx, dbURL, 4, postgres.KeyLookUpPlans)
	if err != nil {
		return err
	}
	defer pool.Close()
	store := postgres.NewStore(pool, postgres.WithAlertPolicy(duplicate.AlertPolicy{HighSeverityRingSize: 5}))

	var filled scale.Filled
	if !o.reuse {
		logf("filling %s with %d checks (%d users, farms %v)", o.database, o.size, pop.Users(), pop.FarmSizes)
		next := 0
		filled, err = scale.Fill(ctx, store, pop, o.batch, func(done int) {
			if done >= next {
				logf("  %d checks stored (%.0f s)", done, time.Since(began).Seconds())
				next += max(o.size/10, 1)
			}
		})
		if err != nil {
			return err
		}
		logf("filled: checks in %s, %d reviews in %s", filled.ChecksTook.Round(time.Second), filled.Reviews,
			filled.ReviewsTook.Round(time.Second))
	}
	sizes, err := scale.Sizes(ctx, pool)
	if err != nil {
		return err
	}
	counts := map[string]int64{}
	for _, s := range sizes {
		counts[s.Table] = s.Rows
	}
	if o.reuse {
		filled = scale.Filled{Checks: int(counts["idv_checks"]), Reviews: int(counts["link_reviews"])}
	}

	measureStart := time.Now()
	timings, err := measure(ctx, o, dbURL, brokers, pool, pop, logf)
	if err != nil {
		return err
	}
	measureTook := time.Since(measureStart)
	var hot []scale.HotPath
	if o.hot > 0 {
		if hot, err = hotPath(ctx, o, baseURL, dbURL, brokers, pool, logf); err != nil {
			return err
		}
	}
	// Last, as it changes the data: erasing one member of the largest face farm (issue 24's ≤ 2 s),
	// by the store's own erasure transaction (the job's removal; the vendor and Kafka are left out).
	erase, err := eraseFarmMember(ctx, pool, pop, logf)
	if err != nil {
		return err
	}
	if erase > 0 {
		logf("  erasing a member of the face farm of %d: %s", pop.FarmSizes[len(pop.FarmSizes)-1], erase.Round(time.Millisecond))
	}
	rep := scale.Report{Shape: shape, Population: pop, Filled: filled, MeasureTook: measureTook, Counts: counts,
		Timings: timings, Sizes: sizes, Requests: o.requests, Budget: o.budget, At: time.Now(), Commit: built, HotPath: hot,
		FarmErasure: erase}
	md := rep.Markdown()
	fmt.Fprint(stdout, md)
	if o.docs != "" {
		if err := scale.WriteBlock(o.docs, md); err != nil {
			return err
		}
		logf("wrote the scale block of %s", o.docs)
	}
	logf("done in %s", time.Since(began).Round(time.Second))
	return nil
}

// database returns the URL of the scale database: created empty and migrated, or as it is (reuse).
func database(ctx context.Context, baseURL, name string, reuse bool) (string, error) {
	if reuse {
		u, err := url.Parse(baseURL)
		if err != nil {
			return "", err
		}
		u.Path = "/" + name
		return u.String(), nil
	}
	dbURL, err := runenv.FreshDatabase(ctx, baseURL, name)
	if err != nil {
		return "", err
	}
	if err := postgres.MigrateUp(dbURL); err != nil {
		return "", fmt.Errorf("migrate %s: %w", name, err)
	}
	return dbURL, nil
}

// measure starts doppel serve on the database and times every target.
func measure(ctx context.Context, o options, dbURL string, brokers []string, pool *pgxpool.Pool, pop *scale.Population, logf func(string, ...any)) ([]scale.Timing, error) {
	name := fmt.Sprintf("scale-%d", time.Now().Unix())
	settings := launch.DoppelSettings{DatabaseURL: dbURL, Brokers: brokers, Group: name, Events: name + "-events",
		Alerts: name + "-alerts", DLQ: name + "-dlq", Partitions: 1, SimulatorURL: "http://127.0.0.1:9", Workers: 8}
	specs := []topic.Spec{{Name: settings.Events, Partitions: 1, ReplicationFactor: 1},
		{Name: settings.Alerts, Partitions: 1, ReplicationFactor: 1}, {Name: settings.DLQ, Partitions: 1, ReplicationFactor: 1}}
	if _, err := topic.Ensure(ctx, brokers, specs...); err != nil {
		return nil, fmt.Errorf("create topics: %w", err)
	}
	sum := sha256.Sum256([]byte(apiKey))
	if err := os.MkdirAll(o.logDir, 0o755); err != nil {
		return nil, err
	}
	d, err := launch.StartDoppel("doppel serve (scale)", filepath.Join(o.binDir, "doppel"),
		launch.Log{Path: filepath.Join(o.logDir, "doppel-scale.log")},
		// No vendor answers here (SimulatorURL is a closed port) and the generated checks have no
		// sessions: the pages are timed without the vendor's evidence, as before it existed.
		settings.Env("DOPPEL_API_KEYS=scale:"+apikey.ScopeRead+":"+hex.EncodeToString(sum[:]), "DOPPEL_EVIDENCE=false"))
	if err != nil {
		return nil, err
	}
	defer func() { _, _ = d.Proc.Stop(15 * time.Second) }()
	if err := d.WaitReady(ctx, 60*time.Second); err != nil {
		return nil, fmt.Errorf("doppel serve did not become ready (log: %s): %w", filepath.Join(o.logDir, "doppel-scale.log"), err)
	}
	client, err := scale.NewClient(ctx, "http://"+d.HTTPAddr, apiKey, 3*time.Minute)
	if err != nil {
		return nil, err
	}
	targets, err := scale.Targets(ctx, pool, pop)
	if err != nil {
		return nil, err
	}
	var out []scale.Timing
	for _, t := range targets {
		tm, err := client.Time(ctx, t, 2, o.requests, o.budget)
		if err != nil {
			return out, err
		}
		logf("  %-45s n=%-3d p50 %8.1f ms  p95 %8.1f ms  max %8.1f ms", t.Name, tm.N,
			float64(tm.P50.Microseconds())/1000, float64(tm.P95.Microseconds())/1000, float64(tm.Max.Microseconds())/1000)
		out = append(out, tm)
	}
	// The analysts' queries of docs/api.md, as written there, on the read pool's settings.
	doc, err := os.ReadFile("docs/api.md")
	if err != nil {
		return out, err
	}
	alice := pop.SmallRingUser()
	var bob string
	if err := pool.QueryRow(ctx, `SELECT coalesce((SELECT o.user_id FROM ring_members m JOIN ring_members o USING (ring_key)
	        WHERE m.user_id = $1 AND o.user_id <> $1 ORDER BY o.user_id LIMIT 1), '')`, alice).Scan(&bob); err != nil {
		return out, fmt.Errorf("another member of %s's ring: %w", alice, err)
	}
	queries, err := scale.AnalystQueries(string(doc), alice, bob)
	if err != nil {
		return out, err
	}
	readPool, err := postgres.Connect(ctx, pool.Config().ConnString(), 1, postgres.ReadPlans)
	if err != nil {
		return out, err
	}
	defer readPool.Close()
	for _, t := range queries {
		tm, err := scale.TimeSQL(ctx, readPool, t, 2, o.requests, o.budget)
		if err != nil {
			return out, err
		}
		logf("  %-45.45s n=%-3d p50 %8.1f ms  p95 %8.1f ms  max %8.1f ms", t.Name, tm.N,
			float64(tm.P50.Microseconds())/1000, float64(tm.P95.Microseconds())/1000, float64(tm.Max.Microseconds())/1000)
		out = append(out, tm)
	}
	return out, nil
}

// hotPath drains the same size of backlog on a fresh database, then on the filled one.
func hotPath(ctx context.Context, o options, baseURL, dbURL string, brokers []string, pool *pgxpool.Pool,
	logf func(string, ...any)) ([]scale.HotPath, error) {
	cfg := scale.HotPathConfig{DoppelBin: filepath.Join(o.binDir, "doppel"), SimulatorBin: filepath.Join(o.binDir, "advance-sim"),
		LogDir: o.logDir, Brokers: brokers, Events: o.hot, Workers: 512, Timeout: 5 * time.Minute,
		// PostgreSQL's CPU per event, when it is the one scripts/infra.sh started from this checkout.
		Postmaster: runenv.LivePid(runenv.PostmasterPidFile("."))}
	freshURL, err := database(ctx, baseURL, o.database+"_fresh", false)
	if err != nil {
		return nil, err
	}
	defer func() { _ = runenv.DropDatabase(context.WithoutCancel(ctx), baseURL, o.database+"_fresh") }()
	freshPool, err := postgres.Connect(ctx, freshURL, 2)
	if err != nil {
		return nil, err
	}
	defer freshPool.Close()
	stamp := time.Now().Unix()
	var out []scale.HotPath
	for _, run := range []struct {
		name string
		url  string
		pool *pgxpool.Pool
	}{{fmt.Sprintf("hot-fresh-%d", stamp), freshURL, freshPool}, {fmt.Sprintf("hot-scale-%d", stamp), dbURL, pool}} {
		h, err := scale.DrainBacklog(ctx, cfg, run.url, run.pool, run.name)
		if err != nil {
			return nil, err
		}
		logf("  hot path %s: %d events in %s, %.0f events/s, PostgreSQL %d µs CPU per event", run.name, h.Events, h.Took.Round(10*time.Millisecond), h.EventsPerSec, h.PostgresCPUPerEvent.Microseconds())
		out = append(out, h)
	}
	return out, nil
}

// commit is the short commit of the working tree, with "+dirty" when it has changes.
func commit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		c += "+dirty"
	}
	return c
}

// eraseFarmMember erases a member of the largest face farm through the store's erasure (request,
// then the removal transaction) and returns how long the removal took; it logs each step's time.
func eraseFarmMember(ctx context.Context, pool *pgxpool.Pool, pop *scale.Population, logf func(string, ...any)) (time.Duration, error) {
	store := postgres.NewStore(pool, postgres.WithTombstones(pseudonym.NewKey([]byte("doppel-scale-pseudonym-key-0123456789abcdef"))))
	// A member of the largest ring other than the farm member the reads use, so that a later run
	// on this database (-reuse) still finds that one; each run erases another.
	var member string
	if err := pool.QueryRow(ctx, `SELECT coalesce((SELECT m.user_id FROM ring_members m
    WHERE m.ring_key = (SELECT ring_key FROM rings ORDER BY size DESC, ring_key LIMIT 1) AND m.user_id <> $1
    ORDER BY m.user_id LIMIT 1), '')`, pop.FarmUser()).Scan(&member); err != nil {
		return 0, fmt.Errorf("a member of the largest ring: %w", err)
	}
	if member == "" {
		return 0, nil
	}
	e, created, err := store.RequestErasure(ctx, duplicate.ErasureRequest{UserID: member, Reason: "bench-scale",
		RequestedBy: "doppel-scale", Override: duplicate.OverrideLegalHold})
	if err != nil {
		return 0, fmt.Errorf("request the erasure of a farm member: %w", err)
	}
	if !created {
		return 0, nil // erased by an earlier run on this database (-reuse): not measured again
	}
	began := time.Now()
	last, steps := began, ""
	stepTimes := func(step string) error {
		steps += fmt.Sprintf(" %s %s", step, time.Since(last).Round(time.Millisecond))
		last = time.Now()
		return nil
	}
	if err := store.RemoveSubject(ctx, e.ID, stepTimes); err != nil {
		return 0, fmt.Errorf("erase a farm member: %w", err)
	}
	took := time.Since(began)
	logf("  the erasure's steps:%s", steps)
	return took, nil
}
