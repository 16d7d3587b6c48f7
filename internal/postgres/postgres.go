// Package postgres stores Doppel's checks, duplicate-account links and alert outbox in PostgreSQL
// with pgx, and applies the embedded migrations with golang-migrate.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-migrate/migrate/v4"
	_ "github.com/golang-migrate/migrate/v4/database/pgx/v5" // registers the pgx5:// driver
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/doppelhq/doppel/internal/redact"
	"github.com/doppelhq/doppel/migrations"
)

// PoolOption configures the pool Connect opens.
type PoolOption func(*pgxpool.Config)

// KeyLookUpPlans prices sequential scans out on the pool's connections (enable_seqscan=off, unless
// the URL sets it): the pool of the group commit and the relay, whose statements all find rows by
// key (signatureIds, user pairs, ring keys, alert ids).
//
// PostgreSQL runs a prepared statement with a generic plan from its sixth call. Made while a table
// was small, that plan is a sequential scan, kept until the next ANALYZE: the benchmark saw a
// look-up slow from 1 ms to 15 ms as idv_checks grew. Planning every call for its own arguments
// avoided that, but planning was then a quarter to a third of PostgreSQL's CPU per event. With
// sequential scans priced out the generic plan is the index plan at any size, made once per
// connection (TestTheHotPathsPlansUseIndexesOnAnEmptyDatabase). The setting prices scans, it does
// not forbid them: a statement with no index to use still scans. It is not for the main pool: the
// console's and analysts' queries that read whole tables took 2-12 times longer with it.
//
// It is set on each new connection, not sent as a startup parameter: poolers such as PgBouncer
// refuse startup parameters they do not know, and the pool would not connect at all.
func KeyLookUpPlans(cfg *pgxpool.Config) {
	if _, set := cfg.ConnConfig.RuntimeParams["enable_seqscan"]; set {
		return
	}
	after := cfg.AfterConnect
	cfg.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
		if after != nil {
			if err := after(ctx, conn); err != nil {
				return err
			}
		}
		if _, err := conn.Exec(ctx, "SET enable_seqscan = off"); err != nil {
			return fmt.Errorf("price out sequential scans: %w", err)
		}
		return nil
	}
}

// ReadPlans turns JIT compilation and parallel workers off on the pool's connections (unless the
// URL sets jit): the pool of the API, the console and the analysts' reads. Their statements are
// index scans that answer in milliseconds; JIT compiled the old whole-table plans for 0.2-0.56 s
// before running them, and a plan that the cost model still prices above jit_above_cost here is
// one to fix, not to compile. Set per connection, like KeyLookUpPlans, so that poolers accept it.
func ReadPlans(cfg *pgxpool.Config) {
	if _, set := cfg.ConnConfig.RuntimeParams["jit"]; set {
		return
	}
	after := cfg.AfterConnect
	cfg.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
		if after != nil {
			if err := after(ctx, conn); err != nil {
				return err
			}
		}
		// Parallel workers cost their start-up on every query that plans them (a face farm
		// member's 5,000 links: 26 ms with two workers, 17 ms without) and these reads are small.
		if _, err := conn.Exec(ctx, "SET jit = off; SET max_parallel_workers_per_gather = 0"); err != nil {
			return fmt.Errorf("turn JIT and parallel workers off: %w", err)
		}
		return nil
	}
}

// Connect opens a pool and pings the database, so start-up fails fast with a clear error when the
// database does not answer.
func Connect(ctx context.Context, databaseURL string, maxConns int32, opts ...PoolOption) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("parse DOPPEL_DATABASE_URL: %s", redactParseError(err))
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	for _, opt := range opts {
		opt(cfg)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("ping database at %s: %w", redact.DatabaseURL(databaseURL), err)
	}
	return pool, nil
}

// redactParseError keeps pgx's message but never the URL, which may hold a password.
func redactParseError(err error) string {
	msg := err.Error()
	if strings.Contains(msg, "://") {
		return "invalid connection string"
	}
	return msg
}

// Migrator applies the embedded migrations. Close it when done.
type Migrator struct {
	m *migrate.Migrate
}

// NewMigrator returns a Migrator for the database at databaseURL (postgres:// or postgresql://).
func NewMigrator(databaseURL string) (*Migrator, error) {
	src, err := iofs.New(migrations.FS, ".")
	if err != nil {
		return nil, fmt.Errorf("load embedded migrations: %w", err)
	}
	m, err := migrate.NewWithSourceInstance("iofs", src, migrateURL(databaseURL))
	if err != nil {
		return nil, fmt.Errorf("connect migrator to %s: %w", redact.DatabaseURL(databaseURL), err)
	}
	return &Migrator{m: m}, nil
}

// migrateURL switches the scheme to golang-migrate's pgx v5 driver.
func migrateURL(databaseURL string) string {
	for _, prefix := range []string{"postgresql://", "postgres://"} {
		if rest, ok := strings.CutPrefix(databaseURL, prefix); ok {
			return "pgx5://" + rest
		}
	}
	return databaseURL
}

// Up applies every migration not yet applied. No change is not an error.
func (m *Migrator) Up() error {
	if err := m.m.Up(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return fmt.Errorf("migrate up: %w", err)
	}
	return nil
}

// Down reverts the latest applied migration.
func (m *Migrator) Down() error {
	if err := m.m.Steps(-1); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return fmt.Errorf("migrate down: %w", err)
	}
	return nil
}

// Version returns the current schema version, whether the last migration failed half-way, and
// ok=false when no migration was ever applied.
func (m *Migrator) Version() (version uint, dirty bool, ok bool, err error) {
	v, dirty, err := m.m.Version()
	if errors.Is(err, migrate.ErrNilVersion) {
		return 0, false, false, nil
	}
	if err != nil {
		return 0, false, false, fmt.Errorf("read schema version: %w", err)
	}
	return v, dirty, true, nil
}

// Close releases the migrator's connection.
func (m *Migrator) Close() error {
	srcErr, dbErr := m.m.Close()
	return errors.Join(srcErr, dbErr)
}

// MigrateUp is a shortcut for NewMigrator + Up + Close.
func MigrateUp(databaseURL string) error {
	m, err := NewMigrator(databaseURL)
	if err != nil {
		return err
	}
	return errors.Join(m.Up(), m.Close())
}

// inTx runs fn in a transaction, committing when it returns nil.
func inTx(ctx context.Context, pool *pgxpool.Pool, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, pool, fn)
}
