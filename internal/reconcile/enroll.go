package reconcile

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/doppelhq/doppel/internal/duplicate"
)

// EnrollStore keeps which failed verifications were enrolled.
type EnrollStore interface {
	// EnrollFailed claims up to limit checks with a final FAIL verdict that were never enrolled
	// (skipping those another instance holds), calls enroll for each while holding it, and records
	// the answer on the check: enrolled, or refused with the reason enroll returned. An error from
	// enroll stops the batch; that check and the rest stay queued.
	EnrollFailed(ctx context.Context, limit int, enroll func(ctx context.Context, signatureID string) (refused string, err error)) (int, error)
}

// EnrollVendor is the vendor's face-search-enroll.
type EnrollVendor interface {
	Enroll(ctx context.Context, signatureID string) (transactionID string, err error)
	// State is the shared circuit breaker's state: "closed", "open" or "half_open".
	State() string
}

// Enroller enrols every verification whose final verdict is FAIL in the vendor's face search, once,
// so that a later verification with the same face finds the failed attempt.
type Enroller struct {
	store  EnrollStore
	vendor EnrollVendor
	log    *slog.Logger
	// OnEnrolled is told of every enrolment ("enrolled", "refused"); may be nil.
	onEnrolled func(result string)
}

// NewEnroller returns an Enroller. onEnrolled may be nil.
func NewEnroller(store EnrollStore, vendor EnrollVendor, log *slog.Logger, onEnrolled func(string)) *Enroller {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Enroller{store: store, vendor: vendor, log: log, onEnrolled: onEnrolled}
}

// enrollBatch is how many failed verifications one round enrols at most: they are held in one
// transaction while the vendor answers.
const enrollBatch = 20

// Round enrols what is queued, a batch at a time, until the queue is empty or a call fails.
func (e *Enroller) Round(ctx context.Context) error {
	for ctx.Err() == nil {
		if e.vendor.State() == "open" {
			return nil // the vendor is unusable: what is queued waits
		}
		n, err := e.store.EnrollFailed(ctx, enrollBatch, e.enroll)
		if err != nil {
			return fmt.Errorf("enrol failed verifications: %w", err)
		}
		if n < enrollBatch {
			return nil
		}
	}
	return nil
}

func (e *Enroller) enroll(ctx context.Context, sig string) (string, error) {
	tx, err := e.vendor.Enroll(ctx, sig)
	if err != nil {
		if duplicate.KindOf(err) == duplicate.FailurePermanent {
			// The vendor will never take it (no face, say): record why and do not ask again.
			e.log.Warn("vendor refused to enrol a failed verification", "signature_id", sig, "error", err)
			e.observe("refused")
			return err.Error(), nil
		}
		return "", err
	}
	e.log.Info("failed verification enrolled in face search", "signature_id", sig, "vendor_transaction_id", tx)
	e.observe("enrolled")
	return "", nil
}

func (e *Enroller) observe(result string) {
	if e.onEnrolled != nil {
		e.onEnrolled(result)
	}
}
