package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/doppelhq/doppel/internal/duplicate"
)

// Erasures is what the console asks about a person's erasure: whether they are on legal hold and
// why, and to record an erasure request (postgres.Store implements it). The erasure itself runs
// in the service's erasure runner, as one asked over the API does.
type Erasures interface {
	LegalHold(ctx context.Context, userID string) (duplicate.LegalHold, error)
	RequestErasure(ctx context.Context, req duplicate.ErasureRequest) (duplicate.Erasure, bool, error)
}

// erasureForm is what a user's page offers a session with the erase scope.
type erasureForm struct {
	Hold *duplicate.LegalHold
	// CanErase: the session may erase (scope erase: an admin, or a key that has it).
	CanErase bool
}

// holdOf reads userID's legal hold for their page, nil when erasure is not configured.
func (c *Console) holdOf(r *http.Request, userID string) (*duplicate.LegalHold, error) {
	if c.cfg.Erasures == nil {
		return nil, nil
	}
	h, err := c.cfg.Erasures.LegalHold(r.Context(), userID)
	if err != nil {
		return nil, err
	}
	return &h, nil
}

// handleErase records an erasure asked from a user's page. The form repeats the userId typed by
// the person as the confirmation step: an erasure removes a person's data for good, so a click is
// not enough. A person on legal hold is refused unless the form overrides the hold, which is
// recorded with the reason, as over the API.
func (c *Console) handleErase(w http.ResponseWriter, r *http.Request) {
	if c.cfg.Erasures == nil {
		c.fail(w, r, http.StatusServiceUnavailable, "Erasure is off: DOPPEL_PSEUDONYM_KEY is not set.")
		return
	}
	userID := r.PostFormValue("userId")
	if !duplicate.ValidUserID(userID) {
		c.fail(w, r, http.StatusBadRequest, "The form names no userId.")
		return
	}
	back := "/console/users?" + url.Values{"userId": {userID}}.Encode()
	s := sessionOf(r.Context())
	if r.PostFormValue("confirm") != userID {
		c.setFlash(r, s, "Not erased: type the userId exactly, as the confirmation asks.")
		http.Redirect(w, r, back, http.StatusSeeOther)
		return
	}
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	if reason == "" || len([]rune(reason)) > duplicate.MaxNoteLen {
		c.setFlash(r, s, fmt.Sprintf("Not erased: give the reason (the request's reference), at most %d characters.", duplicate.MaxNoteLen))
		http.Redirect(w, r, back, http.StatusSeeOther)
		return
	}
	req := duplicate.ErasureRequest{UserID: userID, Reason: reason, RequestedBy: s.name}
	if r.PostFormValue("override") == duplicate.OverrideLegalHold {
		req.Override = duplicate.OverrideLegalHold
	}
	e, created, err := c.cfg.Erasures.RequestErasure(r.Context(), req)
	var held *duplicate.ErrLegalHold
	if errors.As(err, &held) {
		c.setFlash(r, s, "Not erased: the person is on legal hold ("+holdText(held.Hold)+"). Tick the override to erase anyway; it is recorded with the reason.")
		http.Redirect(w, r, back, http.StatusSeeOther)
		return
	}
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	if created && c.cfg.OnErasure != nil {
		c.cfg.OnErasure()
	}
	c.log.Info("console: erasure requested", "erasure_id", e.ID, "requested_by", s.name, "created", created)
	c.setFlash(r, s, fmt.Sprintf("Erasure %s is %s: the person's data leaves every table, the vendor is asked to clear their faces, and subscribers are told.", e.ID, e.Status))
	http.Redirect(w, r, "/console/users", http.StatusSeeOther)
}

// holdText says why a person is held, briefly.
func holdText(h duplicate.LegalHold) string {
	var parts []string
	for _, r := range h.Reasons {
		switch r.Kind {
		case duplicate.HoldConfirmedFraud:
			parts = append(parts, "confirmed fraud with "+visibleID(r.DuplicateUserID))
		case duplicate.HoldOpenAlert:
			parts = append(parts, "open alert "+r.AlertID)
		}
	}
	if h.RingID != "" {
		parts = append(parts, "ring "+h.RingID)
	}
	return strings.Join(parts, "; ")
}
