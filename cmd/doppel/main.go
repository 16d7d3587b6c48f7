// Command doppel is the duplicate-account detector: `doppel serve` runs the pipeline and the HTTP
// API; `doppel migrate` manages the schema; `doppel config check` validates the configuration;
// `doppel replay` and `doppel dlq replay` re-run work after a fix; `doppel analyst` manages the
// review console's accounts. `doppel help` lists it all.
//
// The command tree is built with cobra: help on every command (which never loads the
// configuration), shell completion and flag parsing come with it, and it is what kubectl, gh and
// most Go operators' tools use, so its conventions are the ones operators already know.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/caarlos0/env/v11"
	"github.com/spf13/cobra"

	"github.com/doppelhq/doppel/internal/buildinfo"
	"github.com/doppelhq/doppel/internal/config"
	"github.com/doppelhq/doppel/internal/pseudonym"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], env.ToMap(os.Environ()), os.Stdin, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "doppel:", err)
		}
		os.Exit(1)
	}
}

// errUsage is returned after the usage has been printed, so nothing more needs saying.
var errUsage = errors.New("usage")

// app is what every command shares: the streams, the environment and the --config flag.
type app struct {
	environ    map[string]string
	stdin      io.Reader
	stdout     io.Writer
	stderr     io.Writer
	configPath string
}

func run(ctx context.Context, args []string, environ map[string]string, stdin io.Reader, stdout, stderr io.Writer) error {
	a := &app{environ: environ, stdin: stdin, stdout: stdout, stderr: stderr}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	return root.ExecuteContext(ctx)
}

func (a *app) rootCommand() *cobra.Command {
	info := buildinfo.Get()
	root := &cobra.Command{
		Use:   "doppel",
		Short: "Finds duplicate accounts by face: H5 IDV events in, duplicate links and alerts out",
		Long: `Doppel consumes "H5 IDV completed" events from Kafka, asks the vendor's Face Search which earlier
accounts share the face, stores the links in PostgreSQL and publishes alerts to Kafka.

Configuration comes from the YAML file (--config or DOPPEL_CONFIG), overridden by DOPPEL_*
environment variables; see configs/doppel.example.yaml and ` + "`doppel config check`" + `.`,
		Version:       info.Version,
		SilenceUsage:  true, // a failed run is not a usage mistake: print the error, not the help
		SilenceErrors: true, // main prints it once
	}
	root.SetVersionTemplate(versionLine(info) + "\n")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%w (see %s --help)", err, c.CommandPath())
	})
	root.PersistentFlags().StringVar(&a.configPath, "config", a.environ["DOPPEL_CONFIG"],
		"YAML configuration file (default $DOPPEL_CONFIG); DOPPEL_* variables override it")
	root.AddCommand(a.serveCommand(), a.migrateCommand(), a.configCommand(), a.replayCommand(),
		a.dlqCommand(), a.analystCommand(), a.eraseCommand(), versionCommand(info))
	return root
}

func versionCommand(info buildinfo.Info) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, the commit it was built from and the Go version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), versionLine(info))
			return err
		},
	}
}

func versionLine(i buildinfo.Info) string {
	commit := i.Commit
	if i.Modified {
		commit += " (modified)"
	}
	return fmt.Sprintf("doppel %s (commit %s, %s)", i.Version, commit, i.GoVersion)
}

// The settings each command uses, so that it validates those and no others: `migrate` must run
// without vendor keys, `dlq replay` without a database.
var (
	databaseSettings = []string{"DOPPEL_DATABASE_URL"}
	dlqSettings      = []string{"DOPPEL_KAFKA_BROKERS", "DOPPEL_TOPIC_EVENTS", "DOPPEL_TOPIC_DLQ", "DOPPEL_TOPIC_STARTED"}
	vendorSettings   = []string{"DOPPEL_ADVANCE_REGIONS", "DOPPEL_ADVANCE_DEFAULT_REGION", "DOPPEL_ADVANCE_BASE_URL", "DOPPEL_ADVANCE_ACCESS_KEY", "DOPPEL_ADVANCE_SECRET_KEY",
		"DOPPEL_ADVANCE_TIMEOUT", "DOPPEL_ADVANCE_QPS", "DOPPEL_BREAKER_FAILURES", "DOPPEL_BREAKER_OPEN_FOR"}
	replaySettings = append(append([]string{"DOPPEL_RING_HIGH_SEVERITY_SIZE", "DOPPEL_REPLAY_MAX_CHECKS"}, databaseSettings...), vendorSettings...)
)

// load reads the configuration every command shares (defaults, --config file, environment) and
// validates the settings named, or all of them when none are. Unknown DOPPEL_* variables are
// warned about, not fatal: warn is called for each.
func (a *app) load(warn func(config.Unknown), settings ...string) (config.Config, error) {
	l, err := config.LoadEnv(a.configPath, a.environ, settings...)
	if err != nil {
		return config.Config{}, invalid(err)
	}
	for _, u := range l.Unknown {
		warn(u)
	}
	return l.Config, nil
}

// warnStderr is the warn of the commands that have no logger.
func (a *app) warnStderr(u config.Unknown) { fmt.Fprintln(a.stderr, "doppel: warning:", u) }

func invalid(err error) error {
	return fmt.Errorf("invalid configuration:\n  %s", strings.ReplaceAll(err.Error(), "\n", "\n  "))
}

func newLogger(cfg config.Config, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return nil, fmt.Errorf("DOPPEL_LOG_LEVEL: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogPseudonymize {
		key := pseudonym.RandomKey()
		if cfg.PseudonymKey != "" {
			key = pseudonym.NewKey([]byte(cfg.PseudonymKey))
		}
		opts.ReplaceAttr = key.ReplaceAttr
	}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return slog.New(slog.NewJSONHandler(w, opts)), nil
}
