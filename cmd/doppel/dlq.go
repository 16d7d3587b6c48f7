package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/doppelhq/doppel/internal/deadletter"
	"github.com/doppelhq/doppel/internal/service"
)

func (a *app) dlqCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "Work with the dead-letter topic",
		Args:  cobra.NoArgs,
	}
	var (
		reasons    []string
		since      string
		dryRun     bool
		noProgress bool
	)
	replay := &cobra.Command{
		Use:   "replay",
		Short: "Re-publish dead letters to the events topic once what made them fail is fixed",
		Long: `Re-publishes dead letters from DOPPEL_TOPIC_DLQ to DOPPEL_TOPIC_EVENTS, with their original key,
value and headers, once what made them fail is fixed. Replaying is harmless for letters whose
signatureId has been stored since: it is not searched (nor billed) again. Needs only the Kafka
settings: no database, no vendor keys.

Known reasons (replayable: can succeed unchanged once what is outside the letter is fixed):
` + reasonsHelp(),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, r := range reasons {
				if !slices.Contains(deadletter.Reasons, r) {
					return fmt.Errorf("unknown --reason %q: the known reasons are %s", r, strings.Join(deadletter.Reasons, ", "))
				}
			}
			cfg, err := a.load(a.warnStderr, dlqSettings...)
			if err != nil {
				return err
			}
			opts := service.DeadLetterReplay(cfg)
			opts.DryRun, opts.Reasons = dryRun, reasons
			if since != "" {
				t, err := time.Parse(time.RFC3339, since)
				if err != nil {
					return fmt.Errorf("--since must be an RFC 3339 time such as 2026-11-25T10:00:00Z, got %q", since)
				}
				opts.Since = t
			}
			bar := newProgressBar(a.stderr, -1, "reading dead letters", noProgress)
			opts.Progress = func(r deadletter.Report) { _ = bar.Set(r.Scanned) }
			var letters *tabwriter.Writer
			if dryRun {
				letters = tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(letters, "DEAD-LETTERED AT\tREASON\tKEY\tPARTITION/OFFSET")
				opts.OnMatch = func(l deadletter.Letter) {
					note := ""
					if l.Truncated {
						note = "\t(value cut: not replayed)"
					}
					fmt.Fprintf(letters, "%s\t%s\t%q\t%d/%d%s\n", l.Time.UTC().Format(time.RFC3339), l.Reason, l.Key,
						l.Partition, l.Offset, note)
				}
			}
			rep, err := deadletter.Replay(cmd.Context(), opts)
			_ = bar.Finish()
			if letters != nil {
				_ = letters.Flush()
			}
			if err != nil {
				return err
			}
			out, _ := json.MarshalIndent(rep, "", "  ")
			verb := "replayed"
			if dryRun {
				verb = "would replay (dry run)"
			}
			_, err = fmt.Fprintf(a.stdout, "%s %d of %d dead letters from %s to %s\n%s\n", verb, rep.Matched, rep.Scanned,
				cfg.TopicDLQ, cfg.TopicEvents, out)
			return err
		},
	}
	replay.Flags().StringSliceVar(&reasons, "reason", nil, "replay only letters with these reasons (comma-separated or repeated)")
	replay.Flags().StringVar(&since, "since", "", "replay only letters dead-lettered at or after this RFC 3339 time")
	replay.Flags().BoolVar(&dryRun, "dry-run", false, "list the letters that would be replayed (time, reason, key), publish nothing")
	replay.Flags().BoolVar(&noProgress, "no-progress", false, "do not draw the progress bar (never drawn when stderr is not a terminal)")
	_ = replay.RegisterFlagCompletionFunc("reason", cobra.FixedCompletions(deadletter.Reasons, cobra.ShellCompDirectiveNoFileComp))
	cmd.AddCommand(replay)
	return cmd
}

// reasonsHelp lists deadletter.Table for --help: one reason a line, with its meaning.
func reasonsHelp() string {
	var b strings.Builder
	for _, r := range deadletter.Table {
		replay := "not replayable"
		if r.Replayable {
			replay = "replayable"
		}
		fmt.Fprintf(&b, "  %-22s %s (%s)\n", r.Name, r.Meaning, replay)
	}
	return b.String()
}
