package main

import (
	"context"
	"log/slog"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/doppelhq/doppel/internal/config"
	"github.com/doppelhq/doppel/internal/service"
)

// serveGCPercent is the garbage collector's target while serving, unless GOGC is set. Go's default
// of 100 spent 13–15 % of doppel's CPU in the collector during the benchmark's backlog drain; at
// 200 doppel used 3–12 % less CPU per event for a peak RSS of 80–84 MB instead of 64–65 MB, still
// under the 100 MB the service is held to.
const serveGCPercent = 200

func (a *app) serveCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the pipeline (consumer, outbox relay) and the HTTP API until SIGTERM",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// The logger's own settings come first, so that every later problem is logged as
			// configured; the full validation follows.
			cfg, err := a.load(func(config.Unknown) {}, "DOPPEL_LOG_LEVEL", "DOPPEL_LOG_FORMAT",
				"DOPPEL_LOG_PSEUDONYMIZE", "DOPPEL_PSEUDONYM_KEY")
			if err != nil {
				return err
			}
			log, err := newLogger(cfg, a.stderr)
			if err != nil {
				return err
			}
			slog.SetDefault(log) // for the parts that log without being handed a logger (facesearch)
			if cfg, err = a.load(func(u config.Unknown) {
				log.Warn("unknown variable", "variable", u.Name, "did_you_mean", u.Nearest, "problem", u.String())
			}); err != nil {
				return err
			}
			if cfg.LogPseudonymize && cfg.PseudonymKey == "" {
				log.Warn("DOPPEL_PSEUDONYM_KEY is not set: userIds in log lines are pseudonymized under a key drawn at random " +
					"for this process, so their pseudonyms differ between instances and restarts; set it, e.g. to `openssl rand -hex 32`")
			}
			if _, set := a.environ["GOGC"]; !set {
				debug.SetGCPercent(serveGCPercent)
			}
			ctx := cmd.Context()
			if err := probeBrokers(ctx, cfg.KafkaBrokers); err != nil {
				return err
			}
			watch := watchShutdown(ctx, log, cfg.ShutdownTimeout)
			err = explainKafka(service.Run(ctx, cfg, log), cfg.KafkaBrokers)
			watch.done()
			return err
		},
	}
}

// shutdownWatch logs a shutdown's beginning and end, and bounds it.
type shutdownWatch struct {
	log      *slog.Logger
	mu       sync.Mutex
	begun    time.Time
	finished bool
	backstop *time.Timer
	stop     func() bool
}

// watchShutdown starts watching for ctx's end: then it logs "shutdown begun" and arms the
// backstop that keeps a stuck connection from holding a SIGTERM past timeout (DOPPEL_SHUTDOWN_TIMEOUT).
// Abandoned work is uncommitted, so exiting there loses nothing.
func watchShutdown(ctx context.Context, log *slog.Logger, timeout time.Duration) *shutdownWatch {
	w := &shutdownWatch{log: log}
	w.stop = context.AfterFunc(ctx, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.finished {
			return
		}
		w.begun = time.Now()
		log.Info("shutdown begun", "timeout", timeout.String())
		w.backstop = time.AfterFunc(timeout, func() {
			log.Error("graceful shutdown exceeded DOPPEL_SHUTDOWN_TIMEOUT, exiting", "timeout", timeout.String())
			os.Exit(2)
		})
	})
	return w
}

// done records that the service returned: "shutdown done" if a shutdown had begun, and no backstop.
func (w *shutdownWatch) done() {
	w.stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.finished = true
	if w.backstop != nil {
		w.backstop.Stop()
	}
	if !w.begun.IsZero() {
		w.log.Info("shutdown done", "took", time.Since(w.begun).Round(time.Millisecond).String())
	}
}
