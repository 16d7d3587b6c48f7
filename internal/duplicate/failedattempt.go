package duplicate

import (
	"context"
	"fmt"
)

// FailedAttempts tells which users Doppel knows only by a failed verification that was enrolled in
// the vendor's face search (a face that failed liveness or the document check). Face search returns
// such a user only through that failed attempt, so a link to them reaches a failed attempt.
type FailedAttempts interface {
	FailedAttemptUsers(ctx context.Context, userIDs []string) ([]string, error)
}

// MarkFailedAttempts makes the detector look up, for every check with matches, which matched users
// are known only by an enrolled failed attempt (Check.MatchedFailedUserIDs, the links' marker and
// the alert's matchedFailedUserIds). Without it, nothing is marked. Call it before Handle.
func (d *Detector) MarkFailedAttempts(f FailedAttempts) { d.failed = f }

func (d *Detector) failedAttempts(ctx context.Context, matched []string) ([]string, error) {
	if d.failed == nil || len(matched) == 0 {
		return nil, nil
	}
	users, err := d.failed.FailedAttemptUsers(ctx, matched)
	if err != nil {
		return nil, fmt.Errorf("%w: look up failed attempts: %w", ErrStore, err)
	}
	failed := make(map[string]bool, len(users))
	for _, u := range users {
		failed[u] = true
	}
	var out []string // in the vendor's order, as MatchedUserIDs
	for _, m := range matched {
		if failed[m] {
			out = append(out, m)
		}
	}
	return out, nil
}
