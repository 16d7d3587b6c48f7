// Package reconcile finds the verifications whose completion callback never came. Every started
// verification (an event on the started topic) is stored; one that no COMPLETED event settles in
// time is polled with get-result, at most once per interval across every instance (the store's
// lease), with its own share of the vendor rate and never while the vendor's circuit is open. A
// final PASS found by polling is processed exactly as its COMPLETED event would have been; a final
// FAIL is recorded; INCOMPLETE is polled again later; after the give-up time the verification is
// recorded as expired. When too large a share of the last hour's verifications had to be recovered
// by polling, a callbacks_missing alert says the customer's callback wiring is broken. With
// enrolment on, every final FAIL is enrolled in the vendor's face search once.
package reconcile

import (
	"time"

	"github.com/doppelhq/doppel/internal/duplicate"
)

// Status is where a started verification stands.
type Status string

// Statuses, as stored in started_verifications.status.
const (
	// StatusPending means no final outcome is known yet: it is, or will be, polled.
	StatusPending Status = "pending"
	// StatusCompleted means its COMPLETED event settled it.
	StatusCompleted Status = "completed"
	// StatusRecovered means polling found its final verdict: its callback was lost.
	StatusRecovered Status = "recovered"
	// StatusExpired means no final verdict came within the give-up time.
	StatusExpired Status = "expired"
)

// Due is a started verification claimed for one poll.
type Due struct {
	SignatureID string
	UserID      string
	Region      string
	StartedAt   time.Time
	// Polls counts the polls so far, this one included.
	Polls int
}

// Counts is how many started verifications are in each state, and how many settled in the
// recent window (the basis of the callbacks_missing ratio).
type Counts struct {
	Pending   int64 `json:"pending"`
	Completed int64 `json:"completed"`
	Recovered int64 `json:"recovered"`
	Expired   int64 `json:"expired"`
	// RecoveredRecent and SettledRecent count the verifications recovered by polling, and those
	// settled at all (by a COMPLETED event or by polling), within the alert window.
	RecoveredRecent int64 `json:"recoveredLastHour"`
	SettledRecent   int64 `json:"settledLastHour"`
}

// RecoveredShare returns the share of recently settled verifications that polling had to recover;
// 0 when none settled.
func (c Counts) RecoveredShare() float64 {
	if c.SettledRecent == 0 {
		return 0
	}
	return float64(c.RecoveredRecent) / float64(c.SettledRecent)
}

// AlertTypeCallbacksMissing is the alert type published when the share recovered by polling crosses
// the threshold.
const AlertTypeCallbacksMissing = "callbacks_missing"

// AlertWindow is the window the callbacks_missing ratio is computed over, and the least time
// between two such alerts.
const AlertWindow = time.Hour

// CallbacksMissing is the alert saying that callbacks are being lost: its JSON form is what the
// alert topic carries, next to duplicate_face alerts (tell them apart by type or the alert-type
// header). AlertID is stable across republishing.
type CallbacksMissing struct {
	AlertID string `json:"alertId"`
	Type    string `json:"type"`
	Version int    `json:"version"`
	// RecoveredByPolling and Settled count the verifications of the last Window.
	RecoveredByPolling int64     `json:"recoveredByPolling"`
	Settled            int64     `json:"settled"`
	Ratio              float64   `json:"ratio"`
	Threshold          float64   `json:"threshold"`
	Window             string    `json:"window"`
	DetectedAt         time.Time `json:"detectedAt"`
}

// NewCallbacksMissing returns the alert to raise for counts, or nil when the share recovered by
// polling is not above threshold.
func NewCallbacksMissing(alertID string, c Counts, threshold float64, now time.Time) *CallbacksMissing {
	share := c.RecoveredShare()
	if share <= threshold {
		return nil
	}
	return &CallbacksMissing{AlertID: alertID, Type: AlertTypeCallbacksMissing, Version: duplicate.AlertVersion,
		RecoveredByPolling: c.RecoveredRecent, Settled: c.SettledRecent, Ratio: share, Threshold: threshold,
		Window: AlertWindow.String(), DetectedAt: now.UTC()}
}

// SettlingOutcomes returns the check outcomes that settle a started verification: the final ones
// (a notice or a verdict not final yet leaves it to be polled).
func SettlingOutcomes() []string {
	var out []string
	for _, o := range []duplicate.Outcome{duplicate.OutcomeDuplicatesFound, duplicate.OutcomeNoDuplicates,
		duplicate.OutcomeNotPassed, duplicate.OutcomeSkipped, duplicate.OutcomeIncomplete, duplicate.OutcomeFailed} {
		if o.Final() {
			out = append(out, string(o))
		}
	}
	return out
}
