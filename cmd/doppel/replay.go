package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/postgres"
	"github.com/doppelhq/doppel/internal/service"
)

const replayUsage = `usage: doppel replay [flags] [signatureId ...]

Re-run face search for stored checks and store what it finds: new links, and alerts for links that
are new (the running service's relay publishes them). Each re-run is billed by the vendor: without
--yes, replay only says what it would re-run.

Choose the checks by signatureId (arguments, or --file with one per line, "-" for stdin) or by the
window of when they were first stored (--from and --to, RFC 3339 times).

flags:
`

// runReplay implements `doppel replay`.
func runReplay(ctx context.Context, args []string, configPath string, getenv func(string) string,
	stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("doppel replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, replayUsage)
		fs.PrintDefaults()
	}
	from := fs.String("from", "", "re-run checks first stored at or after this RFC 3339 time")
	to := fs.String("to", "", "... and before this RFC 3339 time (default: now)")
	limit := fs.Int("limit", 10000, "at most this many checks from the window")
	file := fs.String("file", "", `read signatureIds from this file, one per line ("-": stdin)`)
	workers := fs.Int("workers", 4, "re-runs at once (the vendor rate limit DOPPEL_ADVANCE_QPS still applies)")
	yes := fs.Bool("yes", false, "really re-run (each re-run is a billed face search)")
	noProgress := fs.Bool("no-progress", false, "do not draw the progress bar")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	sigs, err := replaySignatures(fs.Args(), *file)
	if err != nil {
		return err
	}
	byWindow := *from != "" || *to != ""
	switch {
	case byWindow && len(sigs) > 0:
		return errors.New("give signatureIds or --from/--to, not both")
	case !byWindow && len(sigs) == 0:
		fs.Usage()
		return errUsage
	case *workers < 1 || *workers > 64:
		return errors.New("--workers must be from 1 to 64")
	case *limit < 1:
		return errors.New("--limit must be at least 1")
	}

	cfg, err := loadConfig(configPath, getenv)
	if err != nil {
		return err
	}
	pool, err := postgres.Connect(ctx, cfg.DatabaseURL, int32(*workers+2))
	if err != nil {
		return err
	}
	defer pool.Close()
	store := service.NewStore(pool, cfg)

	if byWindow {
		start, end, err := replayWindow(*from, *to)
		if err != nil {
			return err
		}
		if sigs, err = store.ReplayCandidates(ctx, start, end, *limit); err != nil {
			return err
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
	if !*yes {
		_, err := fmt.Fprintf(stdout, "would re-run face search for %d checks (%d billed searches); add --yes to run them\n",
			len(sigs), len(sigs))
		return err
	}

	vendor, err := service.NewRegions(ctx, cfg, nil, store, slog.New(slog.NewTextHandler(stderr, nil)))
	if err != nil {
		return err
	}
	replayer := duplicate.NewReplayer(vendor, store, nil)
	bar := progressbar.NewOptions(len(sigs),
		progressbar.OptionSetWriter(stderr),
		progressbar.OptionSetDescription("re-running face search"),
		progressbar.OptionShowCount(),
		progressbar.OptionSetVisibility(!*noProgress),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(stderr) }),
	)
	summary, results := replayer.ReplayAll(ctx, sigs, *workers, func(duplicate.ReplayResult) { _ = bar.Add(1) })
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
func replaySignatures(args []string, file string) ([]string, error) {
	all := append([]string(nil), args...)
	if file != "" {
		var r io.Reader = os.Stdin
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
