package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/doppelhq/doppel/internal/config"
	"github.com/doppelhq/doppel/internal/deadletter"
)

const dlqUsage = `usage: doppel dlq replay [--reason R1,R2] [--since RFC3339] [--dry-run]

Re-publishes dead letters from DOPPEL_TOPIC_DLQ to DOPPEL_TOPIC_EVENTS, with their original key,
value and headers, once what made them fail is fixed. Replaying is harmless for letters whose
signatureId has been stored since: it is not searched (nor billed) again.
`

// runDLQ needs only the Kafka settings, so it runs without database or vendor credentials.
func runDLQ(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "replay" {
		fmt.Fprint(stderr, dlqUsage)
		return errUsage
	}
	fs := flag.NewFlagSet("dlq replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	reasons := fs.String("reason", "", "replay only these comma-separated reasons (e.g. retries_exhausted)")
	since := fs.String("since", "", "replay only letters dead-lettered at or after this RFC 3339 time")
	dryRun := fs.Bool("dry-run", false, "count what would be replayed, publish nothing")
	if err := fs.Parse(args[1:]); err != nil {
		return errUsage
	}
	cfg := config.Default()
	if b := getenv("DOPPEL_KAFKA_BROKERS"); b != "" {
		cfg.KafkaBrokers = strings.Split(b, ",")
	}
	if v := getenv("DOPPEL_TOPIC_EVENTS"); v != "" {
		cfg.TopicEvents = v
	}
	if v := getenv("DOPPEL_TOPIC_DLQ"); v != "" {
		cfg.TopicDLQ = v
	}
	if v := getenv("DOPPEL_TOPIC_STARTED"); v != "" {
		cfg.TopicStarted = v
	}
	if len(cfg.KafkaBrokers) == 0 {
		return fmt.Errorf("DOPPEL_KAFKA_BROKERS is not set: set it to a comma-separated list of host:port")
	}
	opts := deadletter.Options{Brokers: cfg.KafkaBrokers, DLQTopic: cfg.TopicDLQ, TargetTopic: cfg.TopicEvents,
		SourceRoutes: map[string]string{cfg.TopicStarted: cfg.TopicStarted}, DryRun: *dryRun}
	if *reasons != "" {
		opts.Reasons = strings.Split(*reasons, ",")
	}
	if *since != "" {
		t, err := time.Parse(time.RFC3339, *since)
		if err != nil {
			return fmt.Errorf("--since must be an RFC 3339 time such as 2026-11-25T10:00:00Z, got %q", *since)
		}
		opts.Since = t
	}
	rep, err := deadletter.Replay(ctx, opts)
	if err != nil {
		return err
	}
	out, _ := json.MarshalIndent(rep, "", "  ")
	verb := "replayed"
	if *dryRun {
		verb = "would replay (dry run)"
	}
	_, err = fmt.Fprintf(stdout, "%s %d of %d dead letters from %s to %s\n%s\n", verb, rep.Matched, rep.Scanned,
		cfg.TopicDLQ, cfg.TopicEvents, out)
	return err
}
