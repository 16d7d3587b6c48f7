// Package testinfra gives tests the real PostgreSQL and Kafka broker that `make infra-up` starts
// (addresses from the environment or .local/env): a freshly migrated schema per test, topics with
// unique names, and an in-process advance-sim. Integration tests never fall back to fakes: without
// the infrastructure they fail and say how to start it.
package testinfra

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/clip"
	"github.com/doppelhq/doppel/internal/harness/advancesim"
	"github.com/doppelhq/doppel/internal/harness/childproc"
	"github.com/doppelhq/doppel/internal/postgres"
	"github.com/doppelhq/doppel/internal/topic"
)

// Simulator credentials used by every test.
const (
	SimAccessKey = "test-access-key"
	SimSecretKey = "test-secret-key"
)

var (
	envOnce sync.Once
	envVals map[string]string
)

// Env returns an infrastructure setting: the process environment wins over .local/env.
func Env(t testing.TB, key string) string {
	t.Helper()
	if v := os.Getenv(key); v != "" {
		return v
	}
	envOnce.Do(func() { envVals = readEnvFile() })
	v := envVals[key]
	if v == "" {
		t.Fatalf("%s is not set and .local/env does not define it: start the infrastructure with `make infra-up`", key)
	}
	return v
}

// RepoRoot returns the repository root (the folder holding go.mod).
func RepoRoot() string {
	dir, _ := os.Getwd()
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

func readEnvFile() map[string]string {
	vals := map[string]string{}
	f, err := os.Open(filepath.Join(RepoRoot(), ".local", "env"))
	if err != nil {
		return vals
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			vals[k] = v
		}
	}
	return vals
}

// FreeAddr returns a loopback host:port for a server under test, never the same one twice in this
// process (see childproc.FreeAddr).
func FreeAddr(t testing.TB) string {
	t.Helper()
	addr, err := childproc.FreeAddr()
	require.NoError(t, err)
	return addr
}

// UniqueName returns prefix plus a random suffix, safe for topics, groups and schemas.
func UniqueName(prefix string) string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return prefix + "_" + hex.EncodeToString(b)
}

var unsafeChars = regexp.MustCompile(`[^a-z0-9_]+`)

// Database creates a schema of its own for the test, migrates it, and returns a URL whose
// search_path points at it, plus a pool on it. The schema is dropped when the test ends.
func Database(t testing.TB) (string, *pgxpool.Pool) {
	t.Helper()
	name := UniqueName("t_" + clip.Bytes(unsafeChars.ReplaceAllString(strings.ToLower(t.Name()), "_"), 30))
	base := createForTest(t, "CREATE SCHEMA "+name, "DROP SCHEMA IF EXISTS "+name+" CASCADE",
		"create test schema (is PostgreSQL up? `make infra-up`)")
	q := base.Query()
	q.Set("search_path", name)
	base.RawQuery = q.Encode()
	return migratedPool(t, base.String())
}

// DatabaseWithLocale creates a database of its own for the test whose default collation is the
// ICU locale (for example "en-US", where 'a' sorts before 'B'), migrates it, and returns its URL and a
// pool on it; the database is dropped when the test ends. Production databases are rarely in the C
// locale that `make infra-up` uses: this is how a test sees what their collation does.
func DatabaseWithLocale(t testing.TB, icuLocale string) (string, *pgxpool.Pool) {
	t.Helper()
	name := UniqueName("t_locale")
	base := createForTest(t,
		fmt.Sprintf("CREATE DATABASE %s TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE '%s'", name, strings.ReplaceAll(icuLocale, "'", "''")),
		"DROP DATABASE IF EXISTS "+name+" WITH (FORCE)",
		fmt.Sprintf("create a database with the ICU locale %q (is PostgreSQL built with ICU?)", icuLocale))
	base.Path = "/" + name
	return migratedPool(t, base.String())
}

// createForTest runs create on the infrastructure's database, and drop when the test ends; it
// returns that database's URL.
func createForTest(t testing.TB, create, drop, what string) *url.URL {
	t.Helper()
	base := Env(t, "DOPPEL_DATABASE_URL")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgxpool.New(ctx, base)
	require.NoError(t, err)
	defer admin.Close()
	_, err = admin.Exec(ctx, create)
	require.NoError(t, err, what)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if admin, err := pgxpool.New(ctx, base); err == nil {
			_, _ = admin.Exec(ctx, drop)
			admin.Close()
		}
	})
	u, err := url.Parse(base)
	require.NoError(t, err)
	return u
}

// migratedPool migrates dbURL and returns a pool on it, closed when the test ends.
func migratedPool(t testing.TB, dbURL string) (string, *pgxpool.Pool) {
	t.Helper()
	require.NoError(t, postgres.MigrateUp(dbURL))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := postgres.Connect(ctx, dbURL, 10)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return dbURL, pool
}

// Brokers returns the broker addresses.
func Brokers(t testing.TB) []string {
	t.Helper()
	return strings.Split(Env(t, "DOPPEL_KAFKA_BROKERS"), ",")
}

// Topics creates topics with unique names (prefix_<random>) and the given partitions, and returns
// their names in order.
func Topics(t testing.TB, partitions int, prefixes ...string) []string {
	t.Helper()
	names := make([]string, len(prefixes))
	specs := make([]topic.Spec, len(prefixes))
	for i, p := range prefixes {
		names[i] = UniqueName(p)
		specs[i] = topic.Spec{Name: names[i], Partitions: partitions, ReplicationFactor: 1}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err := topic.Ensure(ctx, Brokers(t), specs...)
	require.NoError(t, err, "create topics (is Kafka up? `make infra-up`)")
	return names
}

// Produce writes messages to a topic and waits for the broker's acknowledgement.
func Produce(t testing.TB, topicName string, msgs ...kafka.Message) {
	t.Helper()
	ProduceTo(t, Brokers(t), topicName, msgs...)
}

// ProduceTo is Produce on the given brokers (a cluster of a test's own).
func ProduceTo(t testing.TB, brokers []string, topicName string, msgs ...kafka.Message) {
	t.Helper()
	w := topic.NewWriter(brokers, topicName, topic.WriterConfig{BatchTimeout: 2 * time.Millisecond, BatchSize: 1000})
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	require.NoError(t, w.WriteMessages(ctx, msgs...))
}

// ReadAll reads a topic from its beginning (all partitions, no consumer group) until want messages
// have arrived or timeout passes, and returns what it read.
func ReadAll(t testing.TB, topicName string, want int, timeout time.Duration) []kafka.Message {
	t.Helper()
	return ReadAllFrom(t, Brokers(t), topicName, want, timeout)
}

// ReadAllFrom is ReadAll on the given brokers (a cluster of a test's own).
func ReadAllFrom(t testing.TB, brokers []string, topicName string, want int, timeout time.Duration) []kafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	client, closeIdle := topic.NewClient(brokers, 10*time.Second)
	defer closeIdle()
	parts, err := topic.Partitions(ctx, client, topicName)
	require.NoError(t, err)

	var (
		mu  sync.Mutex
		out []kafka.Message
		wg  sync.WaitGroup
	)
	readCtx, stop := context.WithCancel(ctx)
	defer stop()
	for _, p := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topicName, Partition: p,
				MinBytes: 1, MaxBytes: 10 << 20, MaxWait: 100 * time.Millisecond})
			defer r.Close()
			for {
				m, err := r.ReadMessage(readCtx)
				if err != nil {
					return
				}
				mu.Lock()
				out = append(out, m)
				if len(out) >= want {
					stop()
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out
}

// Sim starts an in-process advance-sim with the test credentials and returns it with its base URL.
func Sim(t testing.TB, cfg advancesim.Config) (*advancesim.Sim, string) {
	t.Helper()
	cfg.AccessKey, cfg.SecretKey = SimAccessKey, SimSecretKey
	sim := advancesim.New(cfg)
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	return sim, srv.URL
}

// AddSession registers a verification in the simulator and returns its signatureId.
func AddSession(t testing.TB, sim *advancesim.Sim, userID, face, overallResult string) string {
	t.Helper()
	sig, err := sim.AddSession(advancesim.Session{UserID: userID, Face: face, OverallResult: overallResult})
	require.NoError(t, err)
	return sig
}

// Eventually polls cond every 50 ms until it returns true or timeout passes, then fails with msg.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, msg string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out after %s: %s", timeout, fmt.Sprintf(msg, args...))
}

// Mentions scans every text, text[], json and jsonb column of every table of the pool's schema
// for s and returns "table.column (n rows)" for each column where some row contains it: what a
// scan for an erased userId must find nowhere. It reads only (no lock beyond a plain SELECT's), so
// it sees what any reader sees, whatever another transaction holds.
func Mentions(t testing.TB, pool *pgxpool.Pool, s string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := pool.Query(ctx, `
SELECT c.table_name, c.column_name FROM information_schema.columns c
JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
  AND (c.data_type IN ('text', 'jsonb', 'json', 'character varying') OR (c.data_type = 'ARRAY' AND c.udt_name = '_text'))
ORDER BY 1, 2`)
	require.NoError(t, err)
	cols, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([2]string, error) {
		var c [2]string
		return c, r.Scan(&c[0], &c[1])
	})
	require.NoError(t, err)
	require.Greater(t, len(cols), 40, "the scan reads every text column")
	var found []string
	for _, c := range cols {
		var n int
		require.NoError(t, pool.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) FROM %s WHERE strpos(%s::text, $1) > 0`,
			pgx.Identifier{c[0]}.Sanitize(), pgx.Identifier{c[1]}.Sanitize()), s).Scan(&n))
		if n > 0 {
			found = append(found, fmt.Sprintf("%s.%s (%d rows)", c[0], c[1], n))
		}
	}
	return found
}
