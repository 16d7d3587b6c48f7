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

type callbackAnswer struct {
	Status      string `json:"status"`
	SignatureID string `json:"signatureId,omitempty"`
}

// handleCallback accepts the vendor's callback body ({"signatureId", "type"}) and writes it to the
// events topic. It answers 200 only once the broker has acknowledged the event (so a 200 means it
// will be processed) and 5xx when it could not, so the vendor retries. A callback sent twice is
// harmless: the pipeline stores one outcome per signatureId. Nothing but signatureId and type is
// taken from the body (see duplicate.DecodeCallback).
//
// /v1/callbacks/advance/{region} is the callback of one vendor region: the event carries the region,
// and an unknown region is a 404 naming it. The path without a region means the default region.
//
// A signed callback (Standard Webhooks, or the deprecated X-Doppel-Signature) must name the path's
// region in its signed body (checkSignedRegion), and is published once per delivery id: a second
// delivery of an id already accepted answers 200 {"status":"duplicate"} and publishes nothing.
func (s *Server) handleCallback(c echo.Context) error {
	region, err := s.pathRegion(c)
	if err != nil {
		return err
	}
	if s.cfg.CallbackToken == "" && s.cfg.CallbackHMACSecret == "" && len(s.signers) == 0 {
		return newError(http.StatusServiceUnavailable, codeNotConfigured,
			"callbacks are not configured: set DOPPEL_CALLBACK_TOKEN (or DOPPEL_CALLBACK_SIGNING_SECRETS)")
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
	auth, reason, message, err := s.callbackCredentials(c, read)
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
	if auth.signed {
		// Before the claim: a misdirected copy must not take the id from the genuine delivery.
		reason, message, err := checkSignedRegion(body, region, auth.legacy)
		if err != nil {
			return err
		}
		if reason != "" {
			s.authFail.fail(c, reason)
			return newError(http.StatusUnauthorized, codeUnauthorized, "%s", message)
		}
	}
	if s.cfg.Events == nil {
		return newError(http.StatusServiceUnavailable, codeNotConfigured, "no event topic is configured")
	}
	value, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	claim, duplicateAnswer, err := s.claimDelivery(c, auth)
	if err != nil || duplicateAnswer {
		return err
	}
	ctx, cancel := context.WithTimeout(req.Context(), s.cfg.CallbackTimeout)
	defer cancel()
	if err := s.cfg.Events.Publish(ctx, []byte(ev.SignatureID), value); err != nil {
		if claim != "" {
			s.releaseDelivery(req.Context(), auth, claim)
		}
		s.log.Warn("callback not published", "signature_id", ev.SignatureID, "error", err)
		return newError(http.StatusServiceUnavailable, codePublishFailed,
			"the event could not be written to the event topic; retry later")
	}
	if claim != "" {
		s.acceptDelivery(req.Context(), auth, claim)
	}
	s.cfg.OnCallback(auth.method, callbackAccepted)
	s.log.Info("callback accepted", "signature_id", ev.SignatureID, "type", ev.Type, "region", ev.Region,
		"auth", auth.method, "webhook_id", webhookIDOf(auth))
	return c.JSON(http.StatusOK, callbackAnswer{Status: "accepted", SignatureID: ev.SignatureID})
}

// claimDelivery claims a signed callback's delivery id before its event is published (see
// Deliveries). It returns the claim to accept or release ("" when the callback has no id or no
// Deliveries are configured), or answers itself: 200 duplicate for an id already accepted, 409
// while another delivery of the id is publishing (the producer retries and then sees duplicate, or
// publishes if that delivery failed), 503 when the store cannot say.
func (s *Server) claimDelivery(c echo.Context, auth callbackAuth) (claim string, answered bool, err error) {
	if auth.deliveryID == "" || s.cfg.Deliveries == nil {
		return "", false, nil
	}
	claim, accepted, err := s.cfg.Deliveries.ClaimDelivery(c.Request().Context(), auth.deliveryScheme, auth.deliveryID,
		s.claimLease(), auth.signedAt.Add(deliveryRetention))
	switch {
	case err != nil:
		s.log.Warn("callback delivery not claimed", "delivery_scheme", auth.deliveryScheme, "error", err)
		e := newError(http.StatusServiceUnavailable, codeUnavailable,
			"whether this delivery was already accepted cannot be checked now; retry later")
		e.header = map[string]string{"Retry-After": "5"}
		return "", true, e
	case claim != "":
		return claim, false, nil
	case accepted:
		s.cfg.OnCallback(auth.method, callbackDuplicate)
		s.log.Info("callback duplicate: already accepted, not published again", "auth", auth.method,
			"webhook_id", webhookIDOf(auth))
		return "", true, c.JSON(http.StatusOK, callbackAnswer{Status: "duplicate"})
	default:
		e := newError(http.StatusConflict, codeDeliveryInFlight,
			"another delivery of this callback is being published; retry in a few seconds")
		e.header = map[string]string{"Retry-After": "2"}
		return "", true, e
	}
}

// webhookIDOf is the id to log: a webhook-id is the producer's label and is logged; the deprecated
// form's id is its MAC, which is not.
func webhookIDOf(auth callbackAuth) string {
	if auth.deliveryScheme == deliveryWebhookID {
		return auth.deliveryID
	}
	return ""
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
