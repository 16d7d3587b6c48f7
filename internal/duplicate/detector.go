package duplicate

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"
)

// The vendor's final verdicts (overallResult); anything else, INCOMPLETE above all, is not final.
const (
	VerdictPass = "PASS"
	VerdictFail = "FAIL"
)

// SearchResult is the part of the vendor's face-search answer Doppel uses.
type SearchResult struct {
	SimilarUserIDs []string
	TransactionID  string
}

// Verification is the part of the vendor's get-result answer Doppel uses.
type Verification struct {
	UserID        string
	OverallResult string
	TransactionID string
}

// Vendor is what the detector needs from the identity vendor. Every FaceSearch call is billed.
type Vendor interface {
	FaceSearch(ctx context.Context, signatureID string) (SearchResult, error)
	Verification(ctx context.Context, signatureID string) (Verification, error)
}

// Accounts finds the vendor account of a region: face databases, keys and bills are per region.
// It is what a stored check's region becomes when a person re-runs its search (the replay edge);
// the pipeline resolves a new event's region itself, once, and hands the detector the account.
// region.Registry implements it; OneAccount is a single account for every region.
type Accounts interface {
	// ForRegion returns region's account ("" names the default region), or an error when the
	// region is not configured.
	ForRegion(region string) (Vendor, error)
}

// OneAccount is Accounts for one vendor account that serves every region.
type OneAccount struct{ Vendor }

// ForRegion returns the one account, whatever the region.
func (o OneAccount) ForRegion(string) (Vendor, error) { return o.Vendor, nil }

// Saved is what storing a check changed.
type Saved struct {
	// Stored is false when a final outcome already existed for the signatureId, so nothing changed;
	// a non-final one (see Outcome.Final) is replaced.
	Stored bool
	// NewLinks are the matched userIds whose link to the user did not exist before.
	NewLinks []string
	// Alert is the alert written to the outbox, if the check raised one.
	Alert *Alert
}

// Store keeps checks, links and the alert outbox. SaveCheck must store the check, its links and the
// alert NewAlert returns in one transaction.
type Store interface {
	// FinalOutcome returns the stored outcome of signatureID and true when it is final.
	FinalOutcome(ctx context.Context, signatureID string) (Outcome, bool, error)
	SaveCheck(ctx context.Context, check Check) (Saved, error)
}

// Result is what Handle did with one event.
type Result struct {
	Outcome Outcome
	// AlreadyStored is true when the signatureId had a final outcome and nothing was done.
	AlreadyStored bool
	Saved         Saved
	// VendorTransactionID is the vendor's id of the last call made, for tracing.
	VendorTransactionID string
	// UnusableUserIDs are the ids face search returned that are not valid userIds (SplitUserIDs):
	// neither stored nor linked.
	UnusableUserIDs []string
}

// Detector applies Doppel's rules to one event: skip what needs no search, find the user's own id
// and verdict when the event lacks them, search once, and store the outcome with its links.
type Detector struct {
	store Store
	now   func() time.Time
	// failed tells which matched users are known only by an enrolled failed attempt; nil: none.
	failed FailedAttempts

	// unsaved keeps vendor answers whose check could not be stored yet (the database was down), so
	// the retry stores them instead of paying for the same search again.
	mu      sync.Mutex
	unsaved map[string]vendorAnswers
}

type vendorAnswers struct {
	verification *Verification
	search       *SearchResult
}

// maxUnsaved bounds the answers kept for retries; past it they are dropped (and, at worst, paid
// for again) rather than grow without limit during a long database outage.
const maxUnsaved = 10000

// NewDetector returns a Detector. now may be nil (time.Now).
func NewDetector(store Store, now func() time.Time) *Detector {
	if now == nil {
		now = time.Now
	}
	return &Detector{store: store, now: now, unsaved: make(map[string]vendorAnswers)}
}

// Handle processes one event of ev.Region, whose vendor account is vendor: the caller resolved the
// region once, at its edge (the pipeline, from the event's field or header). A nil error means an
// outcome is stored (or already was). A *PermanentFailure means the check was recorded as failed
// and the event belongs in the dead-letter topic; any other error is to be classified with KindOf
// and retried as it says.
func (d *Detector) Handle(ctx context.Context, ev Event, vendor Vendor, src Source) (Result, error) {
	outcome, final, err := d.store.FinalOutcome(ctx, ev.SignatureID)
	if err != nil {
		return Result{}, fmt.Errorf("%w: look up check %s: %w", ErrStore, ev.SignatureID, err)
	}
	if final {
		// Each face search is billed: a final outcome is never searched again. A non-final one
		// (a notice, a verdict not final yet, a failure) does not stop this event.
		return Result{Outcome: outcome, AlreadyStored: true}, nil
	}

	check := Check{
		SignatureID: ev.SignatureID,
		Region:      ev.Region,
		UserID:      ev.UserID,
		EventType:   ev.Type,
		EventID:     ev.EventID,
		OccurredAt:  ev.OccurredAt,
		Source:      src,
	}
	if ev.Type != EventTypeCompleted {
		check.Outcome = OutcomeSkipped
		return d.save(ctx, check)
	}

	kept := d.takeUnsaved(ev.SignatureID)
	if check.UserID == "" {
		v, err := d.verification(ctx, vendor, ev.SignatureID, kept.verification)
		if err != nil {
			return d.vendorFailure(ctx, check, "get-result", err)
		}
		check.UserID = v.UserID
		check.OverallResult = v.OverallResult
		check.VendorTransactionID = v.TransactionID
		if check.UserID != "" && !ValidUserID(check.UserID) {
			bad := check.UserID
			check.UserID = "" // it cannot be stored either
			return d.permanentFailure(ctx, check, ReasonInvalidUserID,
				fmt.Errorf("get-result's inputParameters userId %s is not a valid userId", quoteClipped(bad)))
		}
		// Face search only works on PASS transactions; asking would be refused anyway. Only FAIL
		// is final: a verdict still to come is recorded, and is asked for again by the next event
		// (get-result is free, so a non-final answer is never kept for reuse).
		switch v.OverallResult {
		case VerdictPass:
			kept.verification = &v
		case VerdictFail:
			check.Outcome = OutcomeNotPassed
			return d.save(ctx, check)
		default:
			check.Outcome = OutcomeIncomplete
			return d.save(ctx, check)
		}
		if check.UserID == "" {
			return d.permanentFailure(ctx, check, ReasonMissingUserID,
				errors.New("neither the event nor get-result's inputParameters carry a userId"))
		}
	}

	found, err := d.faceSearch(ctx, vendor, ev.SignatureID, kept.search)
	endVendorPhase(ctx)
	if err != nil {
		return d.vendorFailure(ctx, check, "face-search", err)
	}
	kept.search = &found
	var unusable []string
	check.SimilarUserIDs, unusable = SplitUserIDs(found.SimilarUserIDs)
	check.VendorTransactionID = found.TransactionID
	check.MatchedUserIDs = MatchedUsers(check.UserID, check.SimilarUserIDs)
	if check.MatchedFailedUserIDs, err = d.failedAttempts(ctx, check.MatchedUserIDs); err != nil {
		return Result{}, err
	}
	check.Outcome = OutcomeNoDuplicates
	if len(check.MatchedUserIDs) > 0 {
		check.Outcome = OutcomeDuplicatesFound
	}
	res, err := d.saveKeeping(ctx, check, kept)
	res.UnusableUserIDs = unusable
	return res, err
}

// quoteClipped quotes an id that broke the userId rule for a message: escaped (a NUL or an invalid
// byte would make the message itself unstorable) and cut to the longest valid userId.
func quoteClipped(id string) string {
	if len(id) > maxUserIDLen {
		id = id[:maxUserIDLen] + "..."
	}
	return strconv.Quote(id)
}

func (d *Detector) verification(ctx context.Context, vendor Vendor, sig string, kept *Verification) (Verification, error) {
	if kept != nil {
		return *kept, nil
	}
	return vendor.Verification(ctx, sig)
}

func (d *Detector) faceSearch(ctx context.Context, vendor Vendor, sig string, kept *SearchResult) (SearchResult, error) {
	if kept != nil {
		return *kept, nil
	}
	return vendor.FaceSearch(ctx, sig)
}

func (d *Detector) takeUnsaved(sig string) vendorAnswers {
	d.mu.Lock()
	defer d.mu.Unlock()
	a := d.unsaved[sig]
	delete(d.unsaved, sig)
	return a
}

// saveKeeping stores the check; if storing fails it keeps the vendor's answers for the retry.
func (d *Detector) saveKeeping(ctx context.Context, check Check, answers vendorAnswers) (Result, error) {
	res, err := d.save(ctx, check)
	if err != nil {
		d.mu.Lock()
		if len(d.unsaved) >= maxUnsaved {
			clear(d.unsaved)
		}
		d.unsaved[check.SignatureID] = answers
		d.mu.Unlock()
	}
	return res, err
}

// RecordFailure stores a failed check for an event that could not be processed, so that the
// failure is visible next to the verification; it does not block a later replay. When the database
// refuses even the failure record for good (ErrCheckRefused) it returns a *PermanentFailure
// (ReasonCheckRefused), so the event is dead-lettered: wrapped in ErrStore it would read as "the
// database is down" and its partition would wait for ever behind it.
func (d *Detector) RecordFailure(ctx context.Context, signatureID, region, reason string, src Source) error {
	check := Check{SignatureID: signatureID, Region: region, EventType: "", Outcome: OutcomeFailed, FailureReason: reason,
		Source: src, CheckedAt: d.now()}
	if _, err := d.store.SaveCheck(ctx, check); err != nil {
		return StoreFailure("record failed check "+signatureID, err)
	}
	return nil
}

func (d *Detector) save(ctx context.Context, check Check) (Result, error) {
	endVendorPhase(ctx)
	check.CheckedAt = d.now()
	saved, err := d.store.SaveCheck(ctx, check)
	if errors.Is(err, ErrCheckRefused) {
		return d.refused(ctx, check, err)
	}
	if err != nil {
		return Result{}, fmt.Errorf("%w: save check %s: %w", ErrStore, check.SignatureID, err)
	}
	return Result{Outcome: check.Outcome, AlreadyStored: !saved.Stored, Saved: saved,
		VendorTransactionID: check.VendorTransactionID}, nil
}

// refused handles a check the database refused for good: it records the failure with nothing
// of the refused data (the signatureId is the decoder's, valid) and makes the event a dead letter.
func (d *Detector) refused(ctx context.Context, check Check, cause error) (Result, error) {
	err := d.RecordFailure(ctx, check.SignatureID, check.Region, ReasonCheckRefused+": "+cause.Error(), check.Source)
	if err != nil && !errors.Is(err, ErrCheckRefused) { // a refused record is this same dead letter
		return Result{}, err
	}
	return Result{Outcome: OutcomeFailed}, &PermanentFailure{Reason: ReasonCheckRefused, Err: cause}
}

func (d *Detector) vendorFailure(ctx context.Context, check Check, op string, err error) (Result, error) {
	endVendorPhase(ctx)
	if KindOf(err) != FailurePermanent {
		return Result{}, fmt.Errorf("vendor %s for %s: %w", op, check.SignatureID, err)
	}
	return d.permanentFailure(ctx, check, ReasonVendorRejected, fmt.Errorf("vendor %s: %w", op, err))
}

func (d *Detector) permanentFailure(ctx context.Context, check Check, reason string, cause error) (Result, error) {
	check.Outcome = OutcomeFailed
	check.FailureReason = reason + ": " + cause.Error()
	if _, err := d.save(ctx, check); err != nil {
		return Result{}, err
	}
	return Result{Outcome: OutcomeFailed}, &PermanentFailure{Reason: reason, Err: cause}
}

type vendorPhaseKey struct{}

// WithVendorPhaseEnd returns ctx carrying end, which Handle calls as soon as the event's calls to
// the vendor are over, before it stores the check (and again on a later step: end must be
// idempotent). A caller that bounds how many events are at one region's vendor (the parking share)
// stops counting an event there, so an event waiting for the database does not count as one at the
// vendor.
func WithVendorPhaseEnd(ctx context.Context, end func()) context.Context {
	return context.WithValue(ctx, vendorPhaseKey{}, end)
}

func endVendorPhase(ctx context.Context) {
	if end, ok := ctx.Value(vendorPhaseKey{}).(func()); ok {
		end()
	}
}
