package duplicate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// ReplayStore is what a re-run needs from storage.
type ReplayStore interface {
	// Check returns the stored check of signatureID, or an ENOTFOUND *Error.
	Check(ctx context.Context, signatureID string) (Check, error)
	// ReplaceCheck stores a re-run's answer over the stored check whatever its outcome, upserts its
	// links and writes the alert for links that are new, in one transaction. It returns the
	// matched userIds stored before, so the caller can tell what changed.
	ReplaceCheck(ctx context.Context, check Check) (Saved, []string, error)
}

// Replayer re-runs face search for stored checks when a person asks for it: after the vendor's
// face index changed, or to re-examine a window. Unlike the pipeline it does not stop at "already
// stored": every re-run is billed again, by design.
type Replayer struct {
	accounts Accounts
	store    ReplayStore
	now      func() time.Time
}

// NewReplayer returns a Replayer that searches each stored check in its region's account. now may
// be nil (time.Now).
func NewReplayer(accounts Accounts, store ReplayStore, now func() time.Time) *Replayer {
	if now == nil {
		now = time.Now
	}
	return &Replayer{accounts: accounts, store: store, now: now}
}

// Replay statuses.
const (
	ReplayStatusReplayed = "replayed"
	ReplayStatusSkipped  = "skipped"
	ReplayStatusFailed   = "failed"
)

// ReplayResult is what one re-run did.
type ReplayResult struct {
	SignatureID string
	// Status is replayed, skipped (the check's outcome had no face search to re-run) or failed.
	Status string
	// Reason says why a check was skipped or failed.
	Reason          string
	PreviousOutcome Outcome
	Outcome         Outcome
	// Added and Removed are the matched userIds the re-run gained and lost against the stored check.
	Added   []string
	Removed []string
	// NewLinks are the links that did not exist before the re-run.
	NewLinks []string
	Alert    *Alert
}

// Changed reports whether the re-run's matches differ from the stored ones.
func (r ReplayResult) Changed() bool { return len(r.Added)+len(r.Removed) > 0 }

// Replayable reports whether a check with outcome o can be re-run: only outcomes that came from a
// face search. not_passed, skipped, incomplete and failed checks never had one (the verification's
// next COMPLETED event searches a skipped or incomplete one; a failed event is replayed from its
// dead letter).
func Replayable(o Outcome) bool { return o == OutcomeDuplicatesFound || o == OutcomeNoDuplicates }

// Replay re-runs face search for one stored check and stores the answer. An unknown signatureId is
// an ENOTFOUND *Error; a vendor or store failure is returned as is (classify it with KindOf) and
// leaves the stored check untouched.
func (r *Replayer) Replay(ctx context.Context, signatureID string) (ReplayResult, error) {
	res := ReplayResult{SignatureID: signatureID}
	check, err := r.store.Check(ctx, signatureID)
	if err != nil {
		return res, err
	}
	res.PreviousOutcome, res.Outcome = check.Outcome, check.Outcome
	if !Replayable(check.Outcome) || check.UserID == "" {
		res.Status = ReplayStatusSkipped
		res.Reason = fmt.Sprintf("outcome %s had no face search to re-run", check.Outcome)
		if !check.Outcome.Final() {
			res.Reason += " (not final: the verification's next COMPLETED event checks it)"
		}
		return res, nil
	}
	vendor, err := r.accounts.ForRegion(check.Region)
	if err != nil {
		return res, err
	}
	found, err := vendor.FaceSearch(ctx, signatureID)
	if err != nil {
		return res, fmt.Errorf("vendor face-search for %s: %w", signatureID, err)
	}
	check.SimilarUserIDs, _ = SplitUserIDs(found.SimilarUserIDs)
	check.MatchedUserIDs = MatchedUsers(check.UserID, check.SimilarUserIDs)
	if found.TransactionID != "" {
		check.VendorTransactionID = found.TransactionID
	}
	check.Outcome = OutcomeNoDuplicates
	if len(check.MatchedUserIDs) > 0 {
		check.Outcome = OutcomeDuplicatesFound
	}
	now := r.now()
	check.ReplayedAt = &now
	saved, previous, err := r.store.ReplaceCheck(ctx, check)
	if err != nil {
		return res, fmt.Errorf("%w: replace check %s: %w", ErrStore, signatureID, err)
	}
	res.Status = ReplayStatusReplayed
	res.Outcome = check.Outcome
	res.Added = difference(check.MatchedUserIDs, previous)
	res.Removed = difference(previous, check.MatchedUserIDs)
	res.NewLinks = saved.NewLinks
	res.Alert = saved.Alert
	return res, nil
}

// difference returns the elements of a not in b, in a's order.
func difference(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// ReplaySummary counts what a batch of re-runs changed.
type ReplaySummary struct {
	Requested int
	Replayed  int
	Skipped   int
	Failed    int
	// Changed counts re-run checks whose matches changed.
	Changed  int
	NewLinks int
	Alerts   int
}

// Add counts one result.
func (s *ReplaySummary) Add(r ReplayResult) {
	switch r.Status {
	case ReplayStatusReplayed:
		s.Replayed++
	case ReplayStatusSkipped:
		s.Skipped++
	default:
		s.Failed++
	}
	if r.Changed() {
		s.Changed++
	}
	s.NewLinks += len(r.NewLinks)
	if r.Alert != nil {
		s.Alerts++
	}
}

// replayAttempts bounds retries of one re-run on transient or rate-limited vendor answers.
const replayAttempts = 3

// ReplayAll re-runs every signatureId with at most workers at once, retrying transient and
// rate-limited failures a few times, and calls onResult (serially) after each one. A signatureId
// that still fails is reported with Status failed; ReplayAll stops early only when ctx ends.
func (r *Replayer) ReplayAll(ctx context.Context, signatureIDs []string, workers int,
	onResult func(ReplayResult)) (ReplaySummary, []ReplayResult) {
	workers = max(1, min(workers, len(signatureIDs)))
	results := make([]ReplayResult, len(signatureIDs))
	summary := ReplaySummary{Requested: len(signatureIDs)}
	var mu sync.Mutex
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				res := r.replayRetrying(ctx, signatureIDs[i])
				mu.Lock()
				results[i] = res
				summary.Add(res)
				if onResult != nil {
					onResult(res)
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for i := range signatureIDs {
		select {
		case jobs <- i:
		case <-ctx.Done():
			for j := i; j < len(signatureIDs); j++ {
				mu.Lock()
				results[j] = ReplayResult{SignatureID: signatureIDs[j], Status: ReplayStatusFailed, Reason: ctx.Err().Error()}
				summary.Add(results[j])
				mu.Unlock()
			}
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	return summary, results
}

func (r *Replayer) replayRetrying(ctx context.Context, sig string) ReplayResult {
	var res ReplayResult
	var err error
	for attempt := range replayAttempts {
		res, err = r.Replay(ctx, sig)
		if err == nil {
			return res
		}
		kind := KindOf(err)
		if ErrorCode(err) != "" || (kind != FailureTransient && kind != FailureRateLimited) || attempt == replayAttempts-1 {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(200*(attempt+1)*(attempt+1)) * time.Millisecond):
		}
		if ctx.Err() != nil {
			break
		}
	}
	res.SignatureID = sig
	res.Status = ReplayStatusFailed
	res.Reason = err.Error()
	var de *Error
	if errors.As(err, &de) {
		res.Reason = de.Message
	}
	return res
}
