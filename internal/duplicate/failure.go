package duplicate

import (
	"errors"
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
	// token): stop calling, keep the event, resume when it clears.
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

// ErrStore wraps every error from the Store, so the pipeline can tell "our database is down" from a
// vendor failure.
var ErrStore = errors.New("store")

// The vendor adapter's errors describe themselves through these methods; the domain depends on the
// behaviour, not on the vendor client's types.
type (
	permanentError   interface{ Permanent() bool }
	accountError     interface{ AccountLevel() bool }
	rateLimitedError interface{ RateLimited() bool }
)

// KindOf classifies an error from Detector.Handle. Unknown errors are transient: retrying a bounded
// number of times and then dead-lettering loses nothing, while calling them permanent would.
func KindOf(err error) FailureKind {
	if errors.Is(err, ErrStore) {
		return FailureStore
	}
	var decodeErr *DecodeError
	if errors.As(err, &decodeErr) {
		return FailurePermanent
	}
	var perm permanentError
	if errors.As(err, &perm) && perm.Permanent() {
		return FailurePermanent
	}
	var acct accountError
	if errors.As(err, &acct) && acct.AccountLevel() {
		return FailureAccount
	}
	var rl rateLimitedError
	if errors.As(err, &rl) && rl.RateLimited() {
		return FailureRateLimited
	}
	return FailureTransient
}

// PermanentFailure is returned by Handle when the vendor rejected the verification for good; the
// check has already been recorded as failed and the event should go to the dead-letter topic.
type PermanentFailure struct {
	Reason string
	Err    error
}

func (e *PermanentFailure) Error() string { return e.Reason + ": " + e.Err.Error() }
func (e *PermanentFailure) Unwrap() error { return e.Err }

// Permanent reports true: a permanent failure is never retried.
func (e *PermanentFailure) Permanent() bool { return true }
