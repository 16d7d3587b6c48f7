package httpapi

import (
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/doppelhq/doppel/internal/duplicate"
)

type reviewRequest struct {
	UserID          *string `json:"userId"`
	DuplicateUserID *string `json:"duplicateUserId"`
	Decision        *string `json:"decision"`
	Note            *string `json:"note"`
}

// handleReview appends a review of a pair to its history, recorded with the API key's name as the
// reviewer. A pair whose latest decision is false_positive or same_person raises no new alert.
func (s *Server) handleReview(c echo.Context) error {
	var req reviewRequest
	if err := decodeJSON(c.Request(), &req, maxJSONBody); err != nil {
		return err
	}
	r := duplicate.Review{ReviewedBy: keyName(c)}
	for _, f := range []struct {
		name string
		val  *string
		dst  *string
	}{{"userId", req.UserID, &r.UserID}, {"duplicateUserId", req.DuplicateUserID, &r.DuplicateUserID}} {
		if f.val == nil {
			return invalid(f.name, "%s is required", f.name)
		}
		if !duplicate.ValidUserID(*f.val) {
			return invalidID(f.name, *f.val, duplicate.MaxUserIDLen)
		}
		*f.dst = *f.val
	}
	if r.UserID == r.DuplicateUserID {
		return invalid("duplicateUserId", "duplicateUserId must differ from userId")
	}
	if req.Decision == nil {
		return invalid("decision", "decision is required: confirmed_fraud, false_positive or same_person")
	}
	r.Decision = duplicate.Decision(*req.Decision)
	if !r.Decision.Valid() {
		return invalid("decision", "decision must be confirmed_fraud, false_positive or same_person")
	}
	if req.Note != nil {
		r.Note = *req.Note
		if !utf8.ValidString(r.Note) || strings.ContainsRune(r.Note, 0) || utf8.RuneCountInString(r.Note) > duplicate.MaxNoteLen {
			return invalid("note", "note must be text of at most %d characters without NUL", duplicate.MaxNoteLen)
		}
	}
	st, err := s.store()
	if err != nil {
		return err
	}
	stored, err := st.AddReview(c.Request().Context(), r)
	if err != nil {
		return err
	}
	s.log.Info("review recorded", "review_id", stored.ID, "decision", stored.Decision, "reviewed_by", stored.ReviewedBy)
	return c.JSON(http.StatusCreated, toReview(stored))
}
