package httpapi

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/doppelhq/doppel/internal/clip"
	"github.com/doppelhq/doppel/internal/duplicate"
)

// Bounds of one replay request besides Config.ReplayMaxChecks: it runs while the caller waits.
const (
	defaultReplayLimit = 100
	replayWorkers      = 4
)

type replayRequest struct {
	SignatureIDs []string `json:"signatureIds"`
	From         *string  `json:"from"`
	To           *string  `json:"to"`
	Limit        *int     `json:"limit"`
	// DryRun answers which checks would be re-run, without re-running (or billing) any.
	DryRun bool `json:"dryRun"`
}

// replayBodyBound fits maxChecks signatureIds of the longest kind, each character written as a
// JSON \u escape pair at worst.
func replayBodyBound(maxChecks int) int {
	return max(maxJSONBody, maxChecks*(12*duplicate.MaxSignatureIDLen+3)+1024)
}

func parseTime(field string, s *string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, *s)
	if err != nil {
		return time.Time{}, invalid(field, "%s must be an RFC 3339 time, e.g. 2026-11-25T00:00:00Z", field)
	}
	return t, nil
}

// handleReplay re-runs face search for stored checks, chosen by signatureIds or by the window
// [from, to) of when they were first stored, and answers what changed. Each re-run is billed, so
// one call re-runs at most Config.ReplayMaxChecks, and a dry run says what would be re-run.
func (s *Server) handleReplay(c echo.Context) error {
	var req replayRequest
	maxChecks := s.cfg.ReplayMaxChecks
	if err := decodeJSON(c.Request(), &req, replayBodyBound(maxChecks)); err != nil {
		return err
	}
	byList := req.SignatureIDs != nil
	byWindow := req.From != nil || req.To != nil
	switch {
	case byList && byWindow:
		return invalid("signatureIds", "give signatureIds or from and to, not both")
	case !byList && !byWindow:
		return invalid("signatureIds", "give signatureIds, or from and to (RFC 3339 times)")
	case byList && len(req.SignatureIDs) == 0:
		return invalid("signatureIds", "signatureIds must hold 1 to %d signatureIds", maxChecks)
	case byList && len(req.SignatureIDs) > maxChecks:
		return invalid("signatureIds", "at most %d signatureIds per call (DOPPEL_REPLAY_MAX_CHECKS); split the list", maxChecks)
	case byList && req.Limit != nil:
		return invalid("limit", "limit applies to a time window only")
	case byWindow && req.From == nil:
		return invalid("from", "from is required with to")
	case byWindow && req.To == nil:
		return invalid("to", "to is required with from")
	}
	var from, to time.Time
	if byWindow {
		var err error
		if from, err = parseTime("from", req.From); err != nil {
			return err
		}
		if to, err = parseTime("to", req.To); err != nil {
			return err
		}
		if !from.Before(to) {
			return invalid("to", "to must be after from")
		}
	}
	limit := min(defaultReplayLimit, maxChecks)
	if req.Limit != nil {
		if *req.Limit < 1 || *req.Limit > maxChecks {
			return invalid("limit", "limit must be from 1 to %d (DOPPEL_REPLAY_MAX_CHECKS)", maxChecks)
		}
		limit = *req.Limit
	}
	var sigs []string
	seen := map[string]bool{}
	for _, sig := range req.SignatureIDs {
		if !duplicate.ValidSignatureID(sig) {
			return invalidID("signatureIds", sig, duplicate.MaxSignatureIDLen)
		}
		if !seen[sig] {
			seen[sig] = true
			sigs = append(sigs, sig)
		}
	}
	st, err := s.store()
	if err != nil {
		return err
	}
	if s.cfg.Replayer == nil {
		return newError(http.StatusServiceUnavailable, codeNotConfigured, "re-runs are not configured")
	}
	ctx := c.Request().Context()
	if byList {
		// Every signatureId must exist before any (billed) search starts.
		missing, err := st.MissingChecks(ctx, sigs)
		if err != nil {
			return err
		}
		if len(missing) > 0 {
			shown := missing[:min(len(missing), 5)]
			return &duplicate.Error{Code: duplicate.ENOTFOUND, Field: "signatureIds",
				Message: "no check is stored for signatureId " + quoteAll(shown)}
		}
	} else {
		sigs, err = st.ReplayCandidates(ctx, from, to, limit)
		if err != nil {
			return err
		}
	}
	if req.DryRun {
		s.log.Info("replay dry run", "requested_by", keyName(c), "requested", len(sigs))
		return c.JSON(http.StatusOK, replayPlanJSON{DryRun: true, Requested: len(sigs), SignatureIDs: nonNil(sigs)})
	}
	if limit := s.cfg.ReplayDailyLimit; limit > 0 && len(sigs) > 0 {
		used, ok, err := st.ReserveReplays(ctx, keyName(c), len(sigs), limit)
		if err != nil {
			return err
		}
		if !ok {
			return newError(http.StatusTooManyRequests, codeQuotaExceeded,
				"this key's daily quota of billed re-runs is spent: %d of %d used today (UTC), %d asked for (DOPPEL_REPLAY_DAILY_LIMIT); ask for fewer or wait until tomorrow",
				used, limit, len(sigs))
		}
	}
	var summary duplicate.ReplaySummary
	var results []duplicate.ReplayResult
	if len(sigs) > 0 {
		summary, results = s.cfg.Replayer.ReplayAll(ctx, sigs, replayWorkers, nil)
	}
	if s.cfg.ReplayDailyLimit > 0 {
		// Skipped re-runs and those never started were not billed; failed ones may have been.
		unbilled := len(sigs) - summary.Replayed - summary.Failed
		if err := st.ReleaseReplays(context.WithoutCancel(ctx), keyName(c), unbilled); err != nil {
			s.log.Warn("replay quota not released", "key", keyName(c), "error", err)
		}
	}
	if summary.Alerts > 0 && s.cfg.OnAlerts != nil {
		s.cfg.OnAlerts()
	}
	s.log.Info("replay", "requested_by", keyName(c), "requested", summary.Requested, "replayed", summary.Replayed,
		"changed", summary.Changed, "new_links", summary.NewLinks, "failed", summary.Failed)
	return c.JSON(http.StatusOK, toReplay(summary, results))
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = `"` + clip.Ellipsis(s, 64) + `"`
	}
	return strings.Join(q, ", ")
}
