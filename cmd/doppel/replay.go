package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/service"
)

const replayLong = `Re-run face search for stored checks and store what it finds: new links, and alerts for links that
are new (the running service's relay publishes them). Each re-run is billed by the vendor: without
--yes, replay only says what it would re-run.

Choose the checks by signatureId (arguments, or --file with one per line, "-" for stdin) or by the
window of when they were first stored (--from and --to, RFC 3339 times). Needs the database and the
vendor settings, not Kafka's.`

func (a *app) replayCommand() *cobra.Command {
	var (
		from, to, file  string
		limit, workers  int
		yes, noProgress bool
	)
	cmd := &cobra.Command{
		Use:   "replay [flags] [signatureId ...]",
		Short: "Re-run face search for stored checks (billed again) and count what changed",
		Long:  replayLong,
		RunE: func(cmd *cobra.Command, args []string) error {
			sigs, err := replaySignatures(args, file, a.stdin)
			if err != nil {
				return err
			}
			byWindow := from != "" || to != ""
			switch {
			case byWindow && len(sigs) > 0:
				return errors.New("give signatureIds or --from/--to, not both")
			case !byWindow && len(sigs) == 0:
				_ = cmd.Usage()
				return errUsage
			case workers < 1 || workers > 64:
				return errors.New("--workers must be from 1 to 64")
			case limit < 0:
				return errors.New("--limit must be at least 1 (0: DOPPEL_REPLAY_MAX_CHECKS)")
			}
			return a.replay(cmd.Context(), sigs, from, to, limit, workers, yes, noProgress)
		},
	}
	f := cmd.Flags()
	f.StringVar(&from, "from", "", "re-run checks first stored at or after this RFC 3339 time")
	f.StringVar(&to, "to", "", "... and before this RFC 3339 time (default: now)")
	f.IntVar(&limit, "limit", 0, "at most this many checks from the window (0: DOPPEL_REPLAY_MAX_CHECKS, which bounds it)")
	f.StringVar(&file, "file", "", `read signatureIds from this file, one per line ("-": stdin)`)
	f.IntVar(&workers, "workers", 4, "re-runs at once (the vendor rate limit DOPPEL_ADVANCE_QPS still applies)")
	f.BoolVar(&yes, "yes", false, "really re-run (each re-run is a billed face search)")
	f.BoolVar(&noProgress, "no-progress", false, "do not draw the progress bar (never drawn when stderr is not a terminal)")
	return cmd
}

func (a *app) replay(ctx context.Context, sigs []string, from, to string, limit, workers int, yes, noProgress bool) error {
	stdout, stderr := a.stdout, a.stderr
	cfg, err := a.load(a.warnStderr, replaySettings...)
	if err != nil {
		return err
	}
	// The same bound as the HTTP replay: every re-run is a billed search, and a mistaken window or
	// list must not re-bill the month. A larger run raises the setting for itself.
	if limit == 0 {
		limit = cfg.ReplayMaxChecks
	}
	if n := max(limit, len(sigs)); n > cfg.ReplayMaxChecks {
		return fmt.Errorf("%d checks is above DOPPEL_REPLAY_MAX_CHECKS (%d): set DOPPEL_REPLAY_MAX_CHECKS=%d for this run, or re-run fewer; nothing was re-run",
			n, cfg.ReplayMaxChecks, n)
	}
	pool, store, err := service.OpenStore(ctx, cfg, workers+2)
	if err != nil {
		return err
	}
	defer pool.Close()

	if from != "" || to != "" {
		start, end, err := replayWindow(from, to)
		if err != nil {
			return err
		}
		if sigs, err = store.ReplayCandidates(ctx, start, end, limit); err != nil {
			return err
		}
		if len(sigs) == limit {
			fmt.Fprintf(stdout, "the window may hold more than %d checks: these are the first %d; go on with --from the last one's time\n", limit, limit)
		}
	} else {
		missing, err := store.MissingChecks(ctx, sigs)
		if err != nil {
			return err
		}
		if len(missing) > 0 {
			return fmt.Errorf("no check is stored for %d signatureId(s): %s; nothing was re-run",
				len(missing), strings.Join(missing[:min(len(missing), 10)], ", "))
		}
	}
	if len(sigs) == 0 {
		_, err := fmt.Fprintln(stdout, "no stored check to re-run")
		return err
	}
	if !yes {
		_, err := fmt.Fprintf(stdout, "would re-run face search for %d checks (%d billed searches); add --yes to run them\n",
			len(sigs), len(sigs))
		return err
	}

	vendor, err := service.NewRegions(ctx, cfg, nil, store, slog.New(slog.NewTextHandler(stderr, nil)))
	if err != nil {
		return err
	}
	replayer := duplicate.NewReplayer(vendor, store, nil)
	bar := newProgressBar(stderr, len(sigs), "re-running face search", noProgress)
	summary, results := replayer.ReplayAll(ctx, sigs, workers, func(duplicate.ReplayResult) { _ = bar.Add(1) })
	_ = bar.Finish()
	for _, r := range results {
		switch {
		case r.Status == duplicate.ReplayStatusFailed:
			fmt.Fprintf(stderr, "%s: failed: %s\n", r.SignatureID, r.Reason)
		case r.Status == duplicate.ReplayStatusSkipped:
			fmt.Fprintf(stdout, "%s: skipped: %s\n", r.SignatureID, r.Reason)
		case r.Changed():
			fmt.Fprintf(stdout, "%s: %s -> %s, added %v, removed %v, new links %v\n", r.SignatureID,
				r.PreviousOutcome, r.Outcome, r.Added, r.Removed, r.NewLinks)
		}
	}
	fmt.Fprintf(stdout, "re-ran %d of %d checks: %d with changed matches, %d new links, %d alerts; %d skipped, %d failed\n",
		summary.Replayed, summary.Requested, summary.Changed, summary.NewLinks, summary.Alerts, summary.Skipped, summary.Failed)
	if summary.Alerts > 0 {
		fmt.Fprintln(stdout, "the alerts are in the outbox: the running doppel serve publishes them")
	}
	if summary.Failed > 0 {
		return fmt.Errorf("%d re-runs failed (see above); run them again later", summary.Failed)
	}
	return ctx.Err()
}

// replaySignatures gathers signatureIds from the arguments and the file, dropping blanks and
// repeats and checking each.
func replaySignatures(args []string, file string, stdin io.Reader) ([]string, error) {
	all := append([]string(nil), args...)
	if file != "" {
		r := stdin
		if file != "-" {
			f, err := os.Open(file)
			if err != nil {
				return nil, fmt.Errorf("--file: %w", err)
			}
			defer f.Close()
			r = f
		}
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			all = append(all, sc.Text())
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("--file: %w", err)
		}
	}
	var out []string
	seen := map[string]bool{}
	for _, s := range all {
		s = strings.TrimSpace(s)
		if s == "" || seen[s] {
			continue
		}
		if !duplicate.ValidSignatureID(s) {
			return nil, fmt.Errorf("%q is not a signatureId (1 to %d characters without control characters)", s, duplicate.MaxSignatureIDLen)
		}
		seen[s] = true
		out = append(out, s)
	}
	return out, nil
}

func replayWindow(from, to string) (time.Time, time.Time, error) {
	if from == "" {
		return time.Time{}, time.Time{}, errors.New("--from is required with --to")
	}
	start, err := time.Parse(time.RFC3339Nano, from)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("--from must be an RFC 3339 time such as 2026-11-25T00:00:00Z, got %q", from)
	}
	end := time.Now()
	if to != "" {
		if end, err = time.Parse(time.RFC3339Nano, to); err != nil {
			return time.Time{}, time.Time{}, fmt.Errorf("--to must be an RFC 3339 time such as 2026-11-26T00:00:00Z, got %q", to)
		}
	}
	if !start.Before(end) {
		return time.Time{}, time.Time{}, errors.New("--to must be after --from")
	}
	return start, end, nil
}
