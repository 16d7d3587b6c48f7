package duplicate

import (
	"errors"
	"fmt"
)

// FailureKind says what the pipeline should do with an error from handling an event.
type FailureKind int

// Failure kinds, from the vendor's code table and from what the infrastructure can do.
const (
	// FailureTransient is worth a bounded number of retries with backoff (vendor ERROR, RETRY_LATER,
	// 5xx, timeouts); when they run out the event is dead-lettered as retries_exhausted.
	FailureTransient FailureKind = iota
	// FailureRateLimited means the vendor asked us to slow down (SERVICE_BUSY, 429): wait as told,
	// slow every worker, never dead-letter for it.
	FailureRateLimited
	// FailureAccount means the vendor account cannot be used (balance, disabled, IAM after a new
	// token, an open circuit): stop calling, keep the event, resume when it clears.
	FailureAccount
	// FailurePermanent means retrying cannot help (PARAMETER_ERROR, unknown signatureId): record the
	// check as failed and dead-letter the event.
	FailurePermanent
	// FailureStore means our own database failed: wait and retry without limit, commit nothing.
	FailureStore
)

func (k FailureKind) String() string {
	switch k {
	case FailureTransient:
		return "transient"
	case FailureRateLimited:
		return "rate_limited"
	case FailureAccount:
		return "account"
	case FailurePermanent:
		return "permanent"
	case FailureStore:
		return "store"
	default:
		return "unknown"
	}
}

// Failure reasons that are not the decoder's or the detector's own (those are ReasonTooLarge and its
// kin). They travel to logs, the retry metric and the
// dead-letter header, so they are stable snake_case words.
const (
	// ReasonMissingUserID: the vendor's result names no user (the detector's permanent failure).
	ReasonMissingUserID = "missing_user_id"
	// ReasonInvalidUserID: the vendor's result names a userId that breaks the userId rule
	// (ValidUserID): it could not be stored or looked up (the detector's permanent failure).
	ReasonInvalidUserID = "invalid_user_id"
	// ReasonCheckRefused: the database refused the check's data for good (ErrCheckRefused).
	ReasonCheckRefused = "check_refused"
	// ReasonVendorRejected: the vendor refused this signatureId for good (the detector's).
	ReasonVendorRejected        = "vendor_rejected"
	ReasonTransientFailure      = "transient_failure"
	ReasonPermanentFailure      = "permanent_failure"
	ReasonVendorRateLimited     = "vendor_rate_limited"
	ReasonVendorAccountUnusable = "vendor_account_unusable"
	ReasonVendorCircuitOpen     = "vendor_circuit_open"
	ReasonRegionBudgetSpent     = "region_budget_spent"
	ReasonDatabaseUnavailable   = "database_unavailable"
)

// Failure is an error that knows what kind of failure it is. The kind is set where it is known (the
// vendor adapter, the store's wrapper ErrStore, the decoder, the detector) and travels with the
// error; KindOf and ReasonOf read it, and nothing else inspects an error to classify it.
type Failure interface {
	error
	FailureKind() FailureKind
	// FailureReason is the stable snake_case word for logs, metrics and the dead-letter header.
	FailureReason() string
}

// Fail returns err marked with kind and reason. Its message is err's.
func Fail(kind FailureKind, reason string, err error) error {
	return &failure{kind: kind, reason: reason, err: err}
}

type failure struct {
	kind   FailureKind
	reason string
	err    error
}

func (f *failure) Error() string            { return f.err.Error() }
func (f *failure) Unwrap() error            { return f.err }
func (f *failure) FailureKind() FailureKind { return f.kind }
func (f *failure) FailureReason() string    { return f.reason }

// ErrCheckRefused marks a Store error that says the database refused the check's data for good
// (Store.SaveCheck wraps it): retrying would fail the same way for ever, so the event is a dead
// letter (ReasonCheckRefused) instead of a partition that waits.
var ErrCheckRefused = errors.New("the database refused the check's data")

// ErrStore wraps every error from the Store, so the pipeline can tell "our database is down" from a
// vendor failure.
var ErrStore = Fail(FailureStore, ReasonDatabaseUnavailable, errors.New("store"))

// StoreFailure classifies an error of a Store write: data the database refused for good
// (ErrCheckRefused) is a *PermanentFailure with ReasonCheckRefused, so the message that carried it
// is dead-lettered; anything else is wrapped in ErrStore, the database being down, which waits.
// op names the write for the message ("record failed check s1").
func StoreFailure(op string, err error) error {
	if errors.Is(err, ErrCheckRefused) {
		return &PermanentFailure{Reason: ReasonCheckRefused, Err: fmt.Errorf("%s: %w", op, err)}
	}
	return fmt.Errorf("%w: %s: %w", ErrStore, op, err)
}

// KindOf returns the kind err carries. An error nobody classified is transient: retrying a bounded
// number of times and then dead-lettering loses nothing, while calling it permanent would.
func KindOf(err error) FailureKind {
	var f Failure
	if errors.As(err, &f) {
		return f.FailureKind()
	}
	return FailureTransient
}

// ReasonOf returns the reason err carries, ReasonTransientFailure for an error nobody classified.
func ReasonOf(err error) string {
	var f Failure
	if errors.As(err, &f) {
		return f.FailureReason()
	}
	return ReasonTransientFailure
}

// PermanentFailure is returned by Handle when the vendor rejected the verification for good; the
// check has already been recorded as failed and the event should go to the dead-letter topic.
type PermanentFailure struct {
	Reason string
	Err    error
}

func (e *PermanentFailure) Error() string { return e.Reason + ": " + e.Err.Error() }
func (e *PermanentFailure) Unwrap() error { return e.Err }

// FailureKind is FailurePermanent: a permanent failure is never retried.
func (e *PermanentFailure) FailureKind() FailureKind { return FailurePermanent }

// FailureReason is the detector's reason, for the dead-letter header.
func (e *PermanentFailure) FailureReason() string { return e.Reason }
