package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/service"
)

const eraseLong = `Erase a person's data, as POST /v1/erasures does, and wait until it is done: their checks, links,
ring membership, alerts and started verifications are removed in one transaction (the others' rings
recomputed), reviews keep their decision with the userId replaced by a pseudonym, a tombstone keeps
the vendor's memory of them from being linked again, the vendor is asked to clear their faces where
the region's account offers it (DOPPEL_ADVANCE_CLEAR_DATA_PATH), and subject_erased is published to
DOPPEL_TOPIC_ERASURES. Erasing the same person again answers the erasure already done.

A person on legal hold (a confirmed_fraud review of a pair of theirs, or an open alert in their
ring) is refused unless --override-legal-hold is given; the override is recorded with the reason.
--dry-run says whether the person is held and what would be removed, and changes nothing.
Needs the database, DOPPEL_PSEUDONYM_KEY, Kafka and the vendor settings. See docs/privacy.md.`

// eraseSettings are what doppel erase validates.
var eraseSettings = append(append([]string{"DOPPEL_PSEUDONYM_KEY", "DOPPEL_KAFKA_BROKERS", "DOPPEL_TOPIC_ERASURES",
	"DOPPEL_ADVANCE_CLEAR_DATA_PATH"}, databaseSettings...), vendorSettings...)

func (a *app) eraseCommand() *cobra.Command {
	var user, reason, region, by string
	var dryRun, override bool
	cmd := &cobra.Command{
		Use:   "erase --user U --reason TEXT [--region R] [--dry-run]",
		Short: "Erase a person's data for good (the right to erasure) and wait until it is done",
		Long:  eraseLong,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case user == "":
				return errors.New("--user is required: the userId to erase")
			case !duplicate.ValidUserID(user):
				return fmt.Errorf("--user: %s", duplicate.IDProblem(user, duplicate.MaxUserIDLen))
			case strings.TrimSpace(reason) == "":
				return errors.New("--reason is required: why the person's data is erased (kept in the erasure's record)")
			}
			if by == "" {
				by = "cli:" + a.environ["USER"]
			}
			req := duplicate.ErasureRequest{UserID: user, Reason: reason, Region: duplicate.NormalizeRegion(region), RequestedBy: by}
			if override {
				req.Override = duplicate.OverrideLegalHold
			}
			return a.erase(cmd.Context(), req, dryRun)
		},
	}
	f := cmd.Flags()
	f.StringVar(&user, "user", "", "the userId to erase")
	f.StringVar(&reason, "reason", "", "why (kept in the erasure's record, the userId replaced by its pseudonym)")
	f.StringVar(&region, "region", "", "only this region's vendor account is asked to clear the faces (default: all regions)")
	f.StringVar(&by, "by", "", "who asks, recorded with the erasure (default cli:$USER)")
	f.BoolVar(&dryRun, "dry-run", false, "say whether the person is held and what would be removed; change nothing")
	f.BoolVar(&override, "override-legal-hold", false, "erase a person on legal hold (recorded with the reason)")
	return cmd
}

func (a *app) erase(ctx context.Context, req duplicate.ErasureRequest, dryRun bool) error {
	cfg, err := a.load(a.warnStderr, eraseSettings...)
	if err != nil {
		return err
	}
	if cfg.PseudonymKey == "" {
		return errors.New("DOPPEL_PSEUDONYM_KEY is not set: erasure keeps tombstones under that key, which every instance must share; set it")
	}
	if req.Region != "" && !slices.Contains(cfg.RegionNames(), req.Region) {
		return fmt.Errorf("--region %q is not configured; configured regions: %s", req.Region, strings.Join(cfg.RegionNames(), ","))
	}
	pool, store, err := service.OpenStore(ctx, cfg, 4)
	if err != nil {
		return err
	}
	defer pool.Close()
	hold, err := store.LegalHold(ctx, req.UserID)
	if err != nil {
		return err
	}
	if dryRun {
		counts, err := store.ErasureCounts(ctx, req.UserID)
		if err != nil {
			return err
		}
		if hold.Held {
			fmt.Fprintf(a.stdout, "on legal hold: %s (--override-legal-hold to erase anyway)\n", describeHold(hold))
		}
		_, err = fmt.Fprintf(a.stdout, "would remove: %s; nothing was changed\n", describeCounts(counts))
		return err
	}
	e, created, err := store.RequestErasure(ctx, req)
	var held *duplicate.ErrLegalHold
	if errors.As(err, &held) {
		return fmt.Errorf("the person is on legal hold: %s; nothing was erased (--override-legal-hold to erase anyway)", describeHold(held.Hold))
	}
	if err != nil {
		return err
	}
	if !created && e.Status == duplicate.ErasureStatusDone {
		_, err := fmt.Fprintf(a.stdout, "already erased: erasure %s, done at %s\n", e.ID, e.DoneAt.UTC().Format("2006-01-02T15:04:05Z"))
		return err
	}
	runner, pub, err := service.NewErasureRunner(cfg, store, slog.New(slog.NewTextHandler(a.stderr, nil)), nil)
	if err != nil {
		return err
	}
	defer pub.Close()
	if err := runner.Finish(ctx, e.ID); err != nil {
		return fmt.Errorf("erasure %s is recorded but not finished (a running doppel serve, or this command again, finishes it): %w", e.ID, err)
	}
	if e, err = store.Erasure(ctx, e.ID); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "erasure %s done: removed %s\n", e.ID, describeCounts(e.Removed))
	var left []string
	for _, v := range e.VendorSignatures {
		if !slices.Contains(e.VendorCleared, v.SignatureID) {
			left = append(left, v.SignatureID)
		}
	}
	if len(e.VendorCleared) > 0 {
		fmt.Fprintf(a.stdout, "the vendor cleared %d verifications\n", len(e.VendorCleared))
	}
	if len(left) > 0 {
		fmt.Fprintf(a.stdout, "ask the vendor to clear these signatureIds (no data-clearing call is configured for their region): %s\n",
			strings.Join(left, ", "))
	}
	return nil
}

func describeHold(h duplicate.LegalHold) string {
	var parts []string
	if h.RingID != "" {
		parts = append(parts, "ring "+h.RingID)
	}
	for _, r := range h.Reasons {
		if r.Kind == duplicate.HoldConfirmedFraud {
			parts = append(parts, "confirmed_fraud with "+r.DuplicateUserID)
		} else {
			parts = append(parts, "open alert "+r.AlertID)
		}
	}
	return strings.Join(parts, ", ")
}

func describeCounts(counts map[string]int64) string {
	tables := make([]string, 0, len(counts))
	for t := range counts {
		tables = append(tables, t)
	}
	sort.Strings(tables)
	parts := make([]string, len(tables))
	for i, t := range tables {
		parts[i] = fmt.Sprintf("%s %d", t, counts[t])
	}
	return strings.Join(parts, ", ")
}
