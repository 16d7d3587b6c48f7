// Command doppel is the duplicate-account detector: `doppel serve` runs the pipeline and the HTTP
// API; `doppel migrate` manages the schema; `doppel config check` validates the configuration.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/doppelhq/doppel/internal/config"
	"github.com/doppelhq/doppel/internal/postgres"
	"github.com/doppelhq/doppel/internal/service"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "doppel:", err)
		}
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

const usage = `usage: doppel [--config FILE] COMMAND

commands:
  serve                 run the pipeline and the HTTP API
  migrate up|down|version
                        apply, revert one, or show the schema migrations
  config check          print the effective configuration (secrets masked) and validate it
  replay [--yes] [--from T --to T | signatureId ...]
                        re-run face search for stored checks (billed again) and count what changed
  dlq replay [--reason R] [--since T] [--dry-run]
                        re-publish dead letters to the events topic after a fix

Configuration comes from the YAML file (--config or DOPPEL_CONFIG), overridden by DOPPEL_*
environment variables; see configs/doppel.example.yaml.
`

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("doppel", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	configPath := fs.String("config", getenv("DOPPEL_CONFIG"), "YAML configuration file")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fs.Usage()
		return errUsage
	}
	switch rest[0] {
	case "serve":
		cfg, err := loadConfig(*configPath, getenv)
		if err != nil {
			return err
		}
		log, err := newLogger(cfg, stderr)
		if err != nil {
			return err
		}
		// The parts shut down within their own bounds; this is the backstop that keeps a stuck
		// connection from holding a SIGTERM past DOPPEL_SHUTDOWN_TIMEOUT. Abandoned work is
		// uncommitted, so exiting here loses nothing.
		context.AfterFunc(ctx, func() {
			time.AfterFunc(cfg.ShutdownTimeout, func() {
				log.Error("graceful shutdown exceeded DOPPEL_SHUTDOWN_TIMEOUT, exiting", "timeout", cfg.ShutdownTimeout)
				os.Exit(2)
			})
		})
		return service.Run(ctx, cfg, log)
	case "migrate":
		return runMigrate(rest[1:], *configPath, getenv, stdout, stderr)
	case "dlq":
		return runDLQ(ctx, rest[1:], getenv, stdout, stderr)
	case "config":
		if len(rest) < 2 || rest[1] != "check" {
			fmt.Fprint(stderr, usage)
			return errUsage
		}
		return runConfigCheck(*configPath, getenv, stdout)
	case "replay":
		return runReplay(ctx, rest[1:], *configPath, getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprintf(stderr, "doppel: unknown command %q\n\n%s", rest[0], usage)
		return errUsage
	}
}

func loadConfig(path string, getenv func(string) string) (config.Config, error) {
	cfg, err := config.Load(path, getenv)
	if err != nil {
		return config.Config{}, fmt.Errorf("invalid configuration:\n  %s",
			strings.ReplaceAll(err.Error(), "\n", "\n  "))
	}
	return cfg, nil
}

func runConfigCheck(path string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := loadConfig(path, getenv)
	if err != nil {
		return err
	}
	if err := cfg.Describe(stdout); err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, "# configuration is valid")
	return err
}

func runMigrate(args []string, configPath string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) != 1 {
		fmt.Fprint(stderr, "usage: doppel migrate up|down|version\n")
		return errUsage
	}
	// Only the database URL matters here, so migrations run without vendor keys or brokers.
	dbURL := getenv("DOPPEL_DATABASE_URL")
	if dbURL == "" && configPath != "" {
		cfg, err := config.Load(configPath, getenv)
		if err != nil {
			return err
		}
		dbURL = cfg.DatabaseURL
	}
	if dbURL == "" {
		return errors.New("DOPPEL_DATABASE_URL is not set: set it to a PostgreSQL URL, e.g. postgres://doppel@127.0.0.1:5432/doppel?sslmode=disable")
	}
	m, err := postgres.NewMigrator(dbURL)
	if err != nil {
		return err
	}
	defer m.Close()
	switch args[0] {
	case "up":
		if err := m.Up(); err != nil {
			return err
		}
	case "down":
		if err := m.Down(); err != nil {
			return err
		}
	case "version":
	default:
		fmt.Fprint(stderr, "usage: doppel migrate up|down|version\n")
		return errUsage
	}
	v, dirty, ok, err := m.Version()
	if err != nil {
		return err
	}
	if !ok {
		_, err = fmt.Fprintln(stdout, "schema version: none (no migration applied)")
		return err
	}
	_, err = fmt.Fprintf(stdout, "schema version: %d (dirty: %t)\n", v, dirty)
	return err
}

func newLogger(cfg config.Config, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return nil, fmt.Errorf("DOPPEL_LOG_LEVEL: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return slog.New(slog.NewJSONHandler(w, opts)), nil
}
