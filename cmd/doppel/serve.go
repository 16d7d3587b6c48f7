package main

import (
	"context"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/doppelhq/doppel/internal/config"
	"github.com/doppelhq/doppel/internal/service"
)

func (a *app) serveCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the pipeline (consumer, outbox relay) and the HTTP API until SIGTERM",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// The logger's own settings come first, so that every later problem is logged as
			// configured; the full validation follows.
			cfg, err := a.load(func(config.Unknown) {}, "DOPPEL_LOG_LEVEL", "DOPPEL_LOG_FORMAT")
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
			ctx := cmd.Context()
			if err := probeBrokers(ctx, cfg.KafkaBrokers); err != nil {
				return err
			}
			startPprof(ctx, cfg.PprofAddr, log)
			var begun atomic.Int64
			context.AfterFunc(ctx, func() {
				begun.Store(time.Now().UnixNano())
				log.Info("shutdown begun", "timeout", cfg.ShutdownTimeout)
				// The parts shut down within their own bounds; this is the backstop that keeps a
				// stuck connection from holding a SIGTERM past DOPPEL_SHUTDOWN_TIMEOUT. Abandoned
				// work is uncommitted, so exiting here loses nothing.
				time.AfterFunc(cfg.ShutdownTimeout, func() {
					log.Error("graceful shutdown exceeded DOPPEL_SHUTDOWN_TIMEOUT, exiting", "timeout", cfg.ShutdownTimeout)
					os.Exit(2)
				})
			})
			err = explainKafka(service.Run(ctx, cfg, log), cfg.KafkaBrokers)
			if t := begun.Load(); t != 0 {
				log.Info("shutdown done", "took", time.Since(time.Unix(0, t)).Round(time.Millisecond).String())
			}
			return err
		},
	}
}
