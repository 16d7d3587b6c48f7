package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/doppelhq/doppel/internal/duplicate"
)

// ErasureStore records and reads erasure requests; postgres.Store implements it.
type ErasureStore interface {
	RequestErasure(ctx context.Context, req duplicate.ErasureRequest) (duplicate.Erasure, bool, error)
	Erasure(ctx context.Context, erasureID string) (duplicate.Erasure, error)
}

// LegalHolds tells whether a person is on legal hold, and why; postgres.Store implements it.
type LegalHolds interface {
	LegalHold(ctx context.Context, userID string) (duplicate.LegalHold, error)
}

// codeLegalHold is the 409 of an erasure refused because the person is on legal hold.
const codeLegalHold = "legal_hold"

// maxReasonLen bounds an erasure's reason (kept in its record).
const maxReasonLen = 2000

type erasureRequest struct {
	UserID   *string `json:"userId"`
	Reason   *string `json:"reason"`
	Region   *string `json:"region"`
	Override *string `json:"override"`
}

type erasureAccepted struct {
	ErasureID string `json:"erasureId"`
	Status    string `json:"status"`
}

type erasureJSON struct {
	ErasureID          string           `json:"erasureId"`
	Status             string           `json:"status"`
	RequestedAt        time.Time        `json:"requestedAt"`
	DoneAt             *time.Time       `json:"doneAt"`
	Removed            map[string]int64 `json:"removed"`
	Pseudonymised      map[string]int64 `json:"pseudonymised"`
	VendorSignatureIDs []string         `json:"vendorSignatureIds"`
	VendorCleared      []string         `json:"vendorCleared"`
	Region             *string          `json:"region"`
	RequestedBy        string           `json:"requestedBy"`
	Reason             string           `json:"reason"`
	LegalHoldOverride  *string          `json:"legalHoldOverride"`
	LastError          *string          `json:"lastError"`
}

type holdReasonJSON struct {
	Kind            string `json:"kind"`
	DuplicateUserID string `json:"duplicateUserId,omitempty"`
	AlertID         string `json:"alertId,omitempty"`
}

type legalHoldJSON struct {
	UserID  string           `json:"userId"`
	Held    bool             `json:"held"`
	RingID  *string          `json:"ringId"`
	Reasons []holdReasonJSON `json:"reasons"`
}

func (s *Server) erasures() (ErasureStore, error) {
	if s.cfg.Erasures == nil {
		return nil, newError(http.StatusServiceUnavailable, codeNotConfigured,
			"erasure is not available: it needs a database and DOPPEL_PSEUDONYM_KEY (the key of the tombstones)")
	}
	return s.cfg.Erasures, nil
}

// handleErasure records an erasure request and answers 202 at once; the erasure runs in the
// background (and after a restart). The same userId again answers the erasure done or under way.
func (s *Server) handleErasure(c echo.Context) error {
	var req erasureRequest
	if err := decodeJSON(c.Request(), &req, maxJSONBody); err != nil {
		return err
	}
	if req.UserID == nil {
		return invalid("userId", "userId is required")
	}
	if !duplicate.ValidUserID(*req.UserID) {
		return invalidID("userId", *req.UserID, duplicate.MaxUserIDLen)
	}
	if req.Reason == nil || strings.TrimSpace(*req.Reason) == "" {
		return invalid("reason", "reason is required: why the person's data is erased (kept in the erasure's record)")
	}
	if !utf8.ValidString(*req.Reason) || strings.ContainsRune(*req.Reason, 0) || utf8.RuneCountInString(*req.Reason) > maxReasonLen {
		return invalid("reason", "reason must be text of at most %d characters without NUL", maxReasonLen)
	}
	r := duplicate.ErasureRequest{UserID: *req.UserID, Reason: *req.Reason, RequestedBy: keyName(c)}
	if req.Region != nil {
		r.Region = duplicate.NormalizeRegion(*req.Region)
		if r.Region == "" || !s.knownRegion(r.Region) || len(r.Region) > duplicate.MaxRegionLen {
			return invalid("region", "region must be one of the configured regions: %s (leave it out for all)", strings.Join(s.cfg.Regions, ","))
		}
	}
	if req.Override != nil {
		if *req.Override != duplicate.OverrideLegalHold {
			return invalid("override", `override must be "legal_hold" (or left out)`)
		}
		r.Override = duplicate.OverrideLegalHold
	}
	st, err := s.erasures()
	if err != nil {
		return err
	}
	e, created, err := st.RequestErasure(c.Request().Context(), r)
	var held *duplicate.ErrLegalHold
	if errors.As(err, &held) {
		msg := "the person is on legal hold: " + holdWhy(held.Hold)
		return newError(http.StatusConflict, codeLegalHold, "%s; send \"override\": \"legal_hold\" to erase anyway (recorded with the reason)", msg)
	}
	if err != nil {
		return err
	}
	if created && s.cfg.OnErasure != nil {
		s.cfg.OnErasure()
	}
	status := duplicate.ErasureStatusPending
	if e.Status == duplicate.ErasureStatusDone {
		status = duplicate.ErasureStatusDone
	}
	return c.JSON(http.StatusAccepted, erasureAccepted{ErasureID: e.ID, Status: status})
}

// holdWhy says why a person is held, naming the ring and the first reasons.
func holdWhy(h duplicate.LegalHold) string {
	var parts []string
	if h.RingID != "" {
		parts = append(parts, "ring "+h.RingID)
	}
	for i, r := range h.Reasons {
		if i == 3 {
			parts = append(parts, "...")
			break
		}
		if r.Kind == duplicate.HoldConfirmedFraud {
			parts = append(parts, "confirmed_fraud review of the pair with "+r.DuplicateUserID)
		} else {
			parts = append(parts, "open alert "+r.AlertID)
		}
	}
	return strings.Join(parts, ", ")
}

// handleGetErasure answers an erasure's progress and what it removed.
func (s *Server) handleGetErasure(c echo.Context) error {
	id, err := pathParam(c, "erasureId")
	if err != nil {
		return err
	}
	st, err := s.erasures()
	if err != nil {
		return err
	}
	e, err := st.Erasure(c.Request().Context(), id)
	if err != nil {
		return err
	}
	out := erasureJSON{ErasureID: e.ID, Status: e.Status, RequestedAt: e.RequestedAt, DoneAt: e.DoneAt,
		Removed: nonNilMap(e.Removed), Pseudonymised: nonNilMap(e.Pseudonymised), VendorSignatureIDs: []string{},
		VendorCleared: nonNil(e.VendorCleared), RequestedBy: e.RequestedBy, Reason: e.Reason,
		Region: optional(e.Region), LegalHoldOverride: optional(e.LegalHoldOverride), LastError: optional(e.LastError)}
	if out.DoneAt != nil {
		t := out.DoneAt.UTC()
		out.DoneAt = &t
	}
	for _, v := range e.VendorSignatures {
		out.VendorSignatureIDs = append(out.VendorSignatureIDs, v.SignatureID)
	}
	return c.JSON(http.StatusOK, out)
}

// handleLegalHold answers whether a person is on legal hold, and why.
func (s *Server) handleLegalHold(c echo.Context) error {
	userID, err := userIDParam(c)
	if err != nil {
		return err
	}
	if s.cfg.LegalHolds == nil {
		return newError(http.StatusServiceUnavailable, codeNotConfigured, "no database is configured")
	}
	h, err := s.cfg.LegalHolds.LegalHold(c.Request().Context(), userID)
	if err != nil {
		return err
	}
	out := legalHoldJSON{UserID: userID, Held: h.Held, RingID: optional(h.RingID), Reasons: []holdReasonJSON{}}
	for _, r := range h.Reasons {
		out.Reasons = append(out.Reasons, holdReasonJSON{Kind: r.Kind, DuplicateUserID: r.DuplicateUserID, AlertID: r.AlertID})
	}
	return c.JSON(http.StatusOK, out)
}

func nonNilMap(m map[string]int64) map[string]int64 {
	if m == nil {
		return map[string]int64{}
	}
	return m
}
