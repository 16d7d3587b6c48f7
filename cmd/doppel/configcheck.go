package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/doppelhq/doppel/internal/advance"
	"github.com/doppelhq/doppel/internal/config"
	"github.com/doppelhq/doppel/internal/postgres"
)

// connectTimeout bounds each of `config check --connect`'s tries.
const connectTimeout = 10 * time.Second

func (a *app) configCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Inspect the configuration",
		Args:  cobra.NoArgs,
	}
	var connect bool
	check := &cobra.Command{
		Use:   "check",
		Short: "Print every setting with its source (default, file, environment), secrets masked, and validate them",
		Long: `Prints every setting as VARIABLE=value with where the value came from (default, file or
environment), secrets masked; warns about DOPPEL_* variables that are no setting, naming the nearest
one; and validates the whole configuration. With --connect it also tries the database, the Kafka
brokers and the vendor's token endpoint (a token costs nothing).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := config.LoadEnv(a.configPath, a.environ)
			if a.configPath != "" {
				fmt.Fprintf(a.stdout, "# configuration file: %s\n", a.configPath)
			}
			if l.Sources != nil { // nil when the file could not be read: nothing to show
				if derr := l.Describe(a.stdout); derr != nil {
					return derr
				}
			}
			for _, u := range l.Unknown {
				fmt.Fprintln(a.stdout, "# warning:", u)
			}
			if err != nil {
				return invalid(err)
			}
			fmt.Fprintln(a.stdout, "# configuration is valid")
			if !connect {
				return nil
			}
			return a.tryConnections(cmd.Context(), l.Config)
		},
	}
	check.Flags().BoolVar(&connect, "connect", false, "also connect to the database, the brokers and the vendor")
	cmd.AddCommand(check)
	return cmd
}

// tryConnections tries each dependency in turn and reports every failure, not only the first.
func (a *app) tryConnections(ctx context.Context, cfg config.Config) error {
	tries := []struct {
		name string
		try  func(context.Context) error
	}{
		{"database", func(ctx context.Context) error {
			pool, err := postgres.Connect(ctx, cfg.DatabaseURL, 1)
			if err != nil {
				return err
			}
			defer pool.Close()
			return pool.Ping(ctx)
		}},
		{"kafka", func(ctx context.Context) error { return probeBrokers(ctx, cfg.KafkaBrokers) }},
		{"vendor", func(ctx context.Context) error {
			client, err := advance.New(advance.Config{BaseURL: cfg.AdvanceBaseURL, AccessKey: cfg.AdvanceAccessKey,
				SecretKey: cfg.AdvanceSecretKey, Timeout: cfg.AdvanceTimeout})
			if err != nil {
				return err
			}
			return client.CheckCredentials(ctx)
		}},
	}
	var failed []error
	for _, t := range tries {
		ctx, cancel := context.WithTimeout(ctx, connectTimeout)
		err := t.try(ctx)
		cancel()
		if err != nil {
			fmt.Fprintf(a.stdout, "# %s: FAILED: %v\n", t.name, err)
			failed = append(failed, fmt.Errorf("%s: %w", t.name, err))
			continue
		}
		fmt.Fprintf(a.stdout, "# %s: ok\n", t.name)
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d connections failed:\n  %w", len(failed), len(tries), errors.Join(failed...))
	}
	return nil
}
