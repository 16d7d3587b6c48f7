// Package erasure carries out erasure requests (issue 24): the job a request records is finished
// here, by a Runner that the serving process starts and that resumes, after a restart, whatever
// was left unfinished. One job goes through three steps, each safe to repeat:
//
//  1. the removal, one database transaction (postgres.Store.RemoveSubject): nothing of it is
//     visible until it commits, and a crash before that leaves the job pending, to be run again;
//  2. the vendor's clear-data call for each of the person's verifications, where the region's
//     account offers one (DOPPEL_ADVANCE_CLEAR_DATA_PATH); each success is recorded;
//  3. the subject_erased event on the erasures topic (acks from every in-sync replica), after
//     which the job is done and its record keeps only the pseudonym. A crash between the publish
//     and the mark publishes the event again (at least once: erasing twice is harmless).
package erasure

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/doppelhq/doppel/internal/duplicate"
)

// Store is what the Runner needs of the database; postgres.Store implements it (the hook is
// postgres.ErasureHook's signature, for tests that stop a removal half-way).
type Store interface {
	Erasure(ctx context.Context, erasureID string) (duplicate.Erasure, error)
	UnfinishedErasures(ctx context.Context) ([]string, error)
	RemoveSubjectStep(ctx context.Context, erasureID string, hook func(step string) error) error
	MarkVendorCleared(ctx context.Context, erasureID, signatureID string) error
	RecordErasureError(ctx context.Context, erasureID, message string) error
	FinishErasure(ctx context.Context, erasureID string) error
}

// Clearer asks a region's vendor account to clear one verification's data (its face leaves the
// face database). advance.Client implements it.
type Clearer interface {
	ClearData(ctx context.Context, signatureID string) error
}

// Publisher writes one message to the erasures topic and returns once the broker acknowledged it.
type Publisher interface {
	Publish(ctx context.Context, key, value []byte) error
}

// Event is the message published once an erasure is done, keyed by userId, so that every
// subscriber of the alert topic can delete its own copies.
type Event struct {
	Type      string    `json:"type"`
	ErasureID string    `json:"erasureId"`
	UserID    string    `json:"userId"`
	Region    *string   `json:"region"`
	ErasedAt  time.Time `json:"erasedAt"`
}

// EventType is Event.Type.
const EventType = "subject_erased"

// Config configures a Runner.
type Config struct {
	Store     Store
	Publisher Publisher
	// Clearers are the regions' vendor accounts that offer clear-data, by region; a region not in
	// it lists its signatureIds for the operator instead (vendorSignatureIds).
	Clearers map[string]Clearer
	// Interval is how often unfinished erasures are looked for (default 30 s); Wake starts a look at once.
	Interval time.Duration
	Logger   *slog.Logger
	// Hook, for tests, is called inside the removal's transaction after each step.
	Hook func(step string) error
	// OnDone counts finished erasures (the metric); may be nil.
	OnDone func()
}

// Runner finishes erasure jobs. Create it with New and start Run.
type Runner struct {
	cfg  Config
	wake chan struct{}
}

// New returns a Runner.
func New(cfg Config) *Runner {
	if cfg.Interval <= 0 {
		cfg.Interval = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Runner{cfg: cfg, wake: make(chan struct{}, 1)}
}

// Wake asks Run to look for work at once (after a request was recorded).
func (r *Runner) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run finishes unfinished erasures at start, on Wake and every Interval, until ctx ends.
func (r *Runner) Run(ctx context.Context) {
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	for {
		r.FinishAll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
		case <-t.C:
		}
	}
}

// FinishAll finishes every unfinished erasure it can; one that fails is logged and left for the next run.
func (r *Runner) FinishAll(ctx context.Context) {
	ids, err := r.cfg.Store.UnfinishedErasures(ctx)
	if err != nil {
		if ctx.Err() == nil {
			r.cfg.Logger.Warn("erasures: cannot read the unfinished ones", "error", err)
		}
		return
	}
	for _, id := range ids {
		if err := r.Finish(ctx, id); err != nil && ctx.Err() == nil {
			r.cfg.Logger.Warn("erasure not finished yet; retried later", "erasure_id", id, "error", err)
			_ = r.cfg.Store.RecordErasureError(ctx, id, err.Error())
		}
	}
}

// Finish carries erasure erasureID through whatever steps it has left.
func (r *Runner) Finish(ctx context.Context, erasureID string) error {
	e, err := r.cfg.Store.Erasure(ctx, erasureID)
	if err != nil {
		return err
	}
	if e.Status == duplicate.ErasureStatusPending {
		if err := r.cfg.Store.RemoveSubjectStep(ctx, erasureID, r.cfg.Hook); err != nil {
			return fmt.Errorf("remove: %w", err)
		}
		if e, err = r.cfg.Store.Erasure(ctx, erasureID); err != nil {
			return err
		}
		r.cfg.Logger.Info("erasure removed the person's rows", "erasure_id", erasureID, "pseudonym", e.Pseudonym[:min(len(e.Pseudonym), 31)],
			"requested_by", e.RequestedBy, "removed", e.Removed, "pseudonymised", e.Pseudonymised)
	}
	if e.Status != duplicate.ErasureStatusRemoved {
		return nil
	}
	var clearErrs []error
	for _, v := range e.VendorSignatures {
		if slices.Contains(e.VendorCleared, v.SignatureID) || (e.Region != "" && v.Region != e.Region) {
			continue
		}
		c, ok := r.cfg.Clearers[v.Region]
		if !ok {
			continue
		}
		if err := c.ClearData(ctx, v.SignatureID); err != nil {
			clearErrs = append(clearErrs, fmt.Errorf("vendor clear-data in region %s: %w", v.Region, err))
			continue
		}
		if err := r.cfg.Store.MarkVendorCleared(ctx, erasureID, v.SignatureID); err != nil {
			return err
		}
	}
	if err := errors.Join(clearErrs...); err != nil {
		return err
	}
	if e.UserID == "" {
		return errors.New("the erasure lost its userId before its event was published")
	}
	ev := Event{Type: EventType, ErasureID: e.ID, UserID: e.UserID, ErasedAt: e.RemovedAt.UTC()}
	if e.Region != "" {
		ev.Region = &e.Region
	}
	value, _ := json.Marshal(ev)
	if r.cfg.Publisher == nil {
		return errors.New("no erasures topic to publish to")
	}
	if err := r.cfg.Publisher.Publish(ctx, []byte(e.UserID), value); err != nil {
		return fmt.Errorf("publish subject_erased: %w", err)
	}
	if err := r.cfg.Store.FinishErasure(ctx, erasureID); err != nil {
		return err
	}
	r.cfg.Logger.Info("erasure done", "erasure_id", erasureID, "requested_by", e.RequestedBy)
	if r.cfg.OnDone != nil {
		r.cfg.OnDone()
	}
	return nil
}
