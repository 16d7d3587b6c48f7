package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/doppelhq/doppel/internal/clip"
	"github.com/doppelhq/doppel/internal/duplicate"
)

type callbackAccepted struct {
	Status      string `json:"status"`
	SignatureID string `json:"signatureId"`
}

// handleCallback accepts the vendor's callback body ({"signatureId", "type"}) and writes it to the
// events topic. It answers 200 only once the broker has acknowledged the event (so a 200 means it
// will be processed) and 5xx when it could not, so the vendor retries. A callback sent twice is
// harmless: the pipeline stores one outcome per signatureId. Nothing but signatureId and type is
// taken from the body (see duplicate.DecodeCallback).
//
// /v1/callbacks/advance/{region} is the callback of one vendor region: the event carries the region,
// and an unknown region is a 404 naming it. The path without a region means the default region.
func (s *Server) handleCallback(c echo.Context) error {
	region, err := s.pathRegion(c)
	if err != nil {
		return err
	}
	if s.cfg.CallbackToken == "" && s.cfg.CallbackHMACSecret == "" {
		return newError(http.StatusServiceUnavailable, codeNotConfigured,
			"callbacks are not configured: set DOPPEL_CALLBACK_TOKEN (or DOPPEL_CALLBACK_HMAC_SECRET)")
	}
	if err := s.authFail.throttled(c); err != nil {
		return err
	}
	req := c.Request()
	var body []byte
	read := func() ([]byte, error) {
		if body != nil {
			return body, nil
		}
		b, err := readBody(req, s.cfg.EventOptions.MaxBytes)
		body = b
		return b, err
	}
	reason, message, err := s.callbackCredentials(c, read)
	if err != nil {
		return err
	}
	if reason != "" {
		s.authFail.fail(c, reason)
		return newError(http.StatusUnauthorized, codeUnauthorized, "%s", message)
	}
	if err := requireJSON(req); err != nil {
		return err
	}
	if _, err := read(); err != nil {
		return err
	}
	ev, err := duplicate.DecodeCallback(body, s.cfg.EventOptions)
	if err != nil {
		return decodeErrorAnswer(err)
	}
	ev.Region = region
	if s.cfg.Events == nil {
		return newError(http.StatusServiceUnavailable, codeNotConfigured, "no event topic is configured")
	}
	value, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(req.Context(), s.cfg.CallbackTimeout)
	defer cancel()
	if err := s.cfg.Events.Publish(ctx, []byte(ev.SignatureID), value); err != nil {
		s.log.Warn("callback not published", "signature_id", ev.SignatureID, "error", err)
		return newError(http.StatusServiceUnavailable, codePublishFailed,
			"the event could not be written to the event topic; retry later")
	}
	s.log.Info("callback accepted", "signature_id", ev.SignatureID, "type", ev.Type, "region", ev.Region)
	return c.JSON(http.StatusOK, callbackAccepted{Status: "accepted", SignatureID: ev.SignatureID})
}

// readBody reads the whole body, at most maxBytes: more is a 413.
func readBody(req *http.Request, maxBytes int) ([]byte, error) {
	if req.ContentLength > int64(maxBytes) {
		return nil, tooLarge(maxBytes)
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, int64(maxBytes)+1))
	if err != nil {
		return nil, invalid("", "could not read the request body")
	}
	if len(body) > maxBytes {
		return nil, tooLarge(maxBytes)
	}
	return body, nil
}

func tooLarge(maxBytes int) *apiError {
	return newError(http.StatusRequestEntityTooLarge, codeTooLarge, "the body is larger than %d bytes", maxBytes)
}

// decodeErrorAnswer turns the event decoder's error into a 400 naming the field at fault.
func decodeErrorAnswer(err error) error {
	var de *duplicate.DecodeError
	if !errors.As(err, &de) {
		return err
	}
	if de.Reason == duplicate.ReasonInvalidJSON {
		return invalid("", "the body is not a JSON object (%s)", de.Detail)
	}
	return invalid(de.Field, "%s", de.Detail)
}

// pathRegion returns the {region} of a regional callback URL ("" on the path without one), or a 404
// naming a region that is not configured.
func (s *Server) pathRegion(c echo.Context) (string, error) {
	raw, err := pathParam(c, "region")
	if err != nil || raw == "" {
		return "", err
	}
	region := duplicate.NormalizeRegion(raw)
	if !s.knownRegion(region) {
		return "", newError(http.StatusNotFound, codeNotFound, "region %q is not configured (DOPPEL_ADVANCE_REGIONS: %s)",
			clip.Ellipsis(strings.ToValidUTF8(raw, ""), duplicate.MaxRegionLen), strings.Join(s.cfg.Regions, ","))
	}
	return region, nil
}

// knownRegion reports whether region is configured (any region is, when none are listed).
func (s *Server) knownRegion(region string) bool {
	return len(s.cfg.Regions) == 0 || slices.Contains(s.cfg.Regions, region)
}

// regionQuery returns the ?region= filter, "" when absent, or a 400 naming a region that is not
// configured.
func (s *Server) regionQuery(c echo.Context) (string, error) {
	values, given := c.QueryParams()["region"]
	if !given {
		return "", nil
	}
	if len(values) != 1 || values[0] == "" {
		return "", invalid("region", "region must be given once and not be empty")
	}
	region := duplicate.NormalizeRegion(values[0])
	if !s.knownRegion(region) || len(region) > duplicate.MaxRegionLen {
		return "", invalid("region", "region %q is not configured; configured regions: %s",
			clip.Ellipsis(strings.ToValidUTF8(values[0], ""), duplicate.MaxRegionLen), strings.Join(s.cfg.Regions, ","))
	}
	return region, nil
}
