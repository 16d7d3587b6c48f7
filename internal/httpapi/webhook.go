package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/doppelhq/doppel/internal/clip"
	"github.com/doppelhq/doppel/internal/duplicate"
)

// Headers of a callback signed by the Standard Webhooks specification (standardwebhooks.com), as
// its libraries write them.
const (
	// WebhookIDHeader is the delivery's unique id: a retry of one message keeps it, so a second
	// delivery of an id already accepted is answered duplicate.
	WebhookIDHeader = "webhook-id"
	// WebhookTimestampHeader is the Unix time in seconds the delivery was signed at.
	WebhookTimestampHeader = "webhook-timestamp"
	// WebhookSignatureHeader holds space-separated "v1,<base64 HMAC-SHA256>" signatures of
	// webhook-id + "." + webhook-timestamp + "." + the raw body.
	WebhookSignatureHeader = "webhook-signature"
)

// SigningSecretPrefix starts every Standard Webhooks secret: whsec_ then the key in base64.
const SigningSecretPrefix = "whsec_"

// How a callback authenticated: the auth label of the callbacks metric and of the log line.
const (
	callbackAuthToken            = "token"
	callbackAuthStandardWebhooks = "standard_webhooks"
	// callbackAuthDoppelSignature is the deprecated X-Doppel-Signature form.
	callbackAuthDoppelSignature = "x_doppel_signature"
)

// What became of an authenticated callback: the outcome label of the callbacks metric.
const (
	callbackAccepted  = "accepted"
	callbackDuplicate = "duplicate"
)

// Namespaces of the delivery ids kept against replays (callback_deliveries.scheme): a webhook-id
// is the producer's choice and a deprecated signature is hex, so the two are kept apart.
const (
	deliveryWebhookID       = "webhook-id"
	deliveryDoppelSignature = "x-doppel-signature"
)

// maxWebhookIDLen bounds webhook-id: libraries write ids such as msg_<27 characters>.
const maxWebhookIDLen = 256

// deliveryRetention is kept beyond the tolerance window before an accepted id is forgotten: the
// instances' clocks may differ by that much, and a replay one of them still accepts must still
// find the id.
const deliveryRetention = maxSignatureAge + time.Minute

// callbackAuth is how a callback authenticated. deliveryID is empty for the token: the vendor's
// unsigned callback has no id, and a second one is harmless (one outcome per signatureId).
type callbackAuth struct {
	method         string
	deliveryScheme string
	deliveryID     string
	// signedAt is the signed timestamp: the delivery id is kept until the window around it ends.
	signedAt time.Time
	// signed says the body must name the path's region (see checkSignedRegion).
	signed bool
	// legacy is the deprecated X-Doppel-Signature, whose producers predate the rule: a body that
	// names no region is still accepted on a regional path (see checkSignedRegion).
	legacy bool
}

// signers holds one Standard Webhooks verifier per configured secret: several at once while a
// secret is rotated, a signature made with any of them accepted.
type signers []*standardwebhooks.Webhook

// newSigners parses DOPPEL_CALLBACK_SIGNING_SECRETS values, which config.Validate has checked
// (prefix, base64, key length). A secret that does not parse is left out and named by its position
// only: nothing about a secret belongs in a log.
func newSigners(secrets []string) (signers, []error) {
	var out signers
	var errs []error
	for i, secret := range secrets {
		// The library trims the prefix if it is there; a secret without it is a mistake (the raw
		// base64 of some other key), not a whsec_ secret.
		wh, err := standardwebhooks.NewWebhook(secret)
		if !strings.HasPrefix(secret, SigningSecretPrefix) || err != nil {
			errs = append(errs, fmt.Errorf("signing secret %d of %d is not %s<base64>", i+1, len(secrets), SigningSecretPrefix))
			continue
		}
		out = append(out, wh)
	}
	return out, errs
}

// verifyStandardWebhook checks a Standard Webhooks signature with the specification's own Go
// library, under each configured secret, and returns the failure's reason and message, or "" when
// one of the secrets signed it.
func (s *Server) verifyStandardWebhook(req *http.Request, body func() ([]byte, error)) (auth callbackAuth, reason, message string, err error) {
	id := req.Header.Get(WebhookIDHeader)
	ts := strings.TrimSpace(req.Header.Get(WebhookTimestampHeader))
	if id == "" || ts == "" {
		return auth, authMissingCredentials, "a Standard Webhooks callback needs " + WebhookIDHeader + ", " +
			WebhookTimestampHeader + " and " + WebhookSignatureHeader, nil
	}
	if !validWebhookID(id) {
		return auth, authInvalidWebhookID, fmt.Sprintf("%s must be 1 to %d visible ASCII characters", WebhookIDHeader, maxWebhookIDLen), nil
	}
	signedAt, reason, message := checkTimestamp(WebhookTimestampHeader, ts)
	if reason != "" {
		return auth, reason, message, nil
	}
	raw, err := body()
	if err != nil {
		return auth, "", "", err
	}
	for _, wh := range s.signers {
		verr := wh.Verify(raw, req.Header)
		if verr == nil {
			return callbackAuth{method: callbackAuthStandardWebhooks, deliveryScheme: deliveryWebhookID, deliveryID: id,
				signedAt: signedAt, signed: true}, "", "", nil
		}
		// The library checks the window again; at its edge the clock may have moved on since ours.
		if errors.Is(verr, standardwebhooks.ErrMessageTooOld) || errors.Is(verr, standardwebhooks.ErrMessageTooNew) {
			return auth, authStaleTimestamp, staleMessage(WebhookTimestampHeader), nil
		}
	}
	return auth, authInvalidSignature, WebhookSignatureHeader + ` holds no v1 signature of webhook-id + "." + webhook-timestamp + "." + the body` +
		" under the configured signing secrets (DOPPEL_CALLBACK_SIGNING_SECRETS)", nil
}

// validWebhookID accepts what the libraries write (msg_..., UUIDs, ULIDs) and anything else
// printable, within a bound: the id is stored and logged, so no control characters.
func validWebhookID(id string) bool {
	if len(id) == 0 || len(id) > maxWebhookIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return false
		}
	}
	return true
}

// checkTimestamp parses a signed timestamp header (Unix seconds, digits only) and checks it is
// within maxSignatureAge of the server's clock, either way.
func checkTimestamp(header, ts string) (time.Time, string, string) {
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || strings.HasPrefix(ts, "+") || strings.HasPrefix(ts, "-") {
		return time.Time{}, authInvalidTimestamp, "a signed callback needs " + header + ": the Unix time in seconds it was signed at"
	}
	signedAt := time.Unix(sec, 0)
	if age := time.Since(signedAt); age > maxSignatureAge || age < -maxSignatureAge {
		return time.Time{}, authStaleTimestamp, staleMessage(header)
	}
	return signedAt, "", ""
}

func staleMessage(header string) string {
	return header + " is more than 5 minutes away from the server's clock: sign the callback when sending it"
}

// checkSignedRegion binds a signed callback to the path's region. The route takes the region from
// the path, which no signature covers (the Standard Webhooks content is id.timestamp.body, and a
// producer signs with an off-the-shelf library that knows nothing of our URLs), so a body signed
// for one region could otherwise be replayed to another region's path within the window, before
// the genuine delivery claims its id. The region therefore has to be in the signed body: a signed
// callback to /v1/callbacks/advance/{region} must carry "region" equal to {region}, and one to the
// path without a region must carry none (it means the default region). Returns the failure's
// reason and message, or "" when the body and path agree.
//
// The deprecated X-Doppel-Signature (legacy) stays accepted as its producers send it today: on a
// regional path a body that names no region passes; one that names a region must name the path's.
// Its replay protection is keyed on the MAC, whatever the path, so the same signed request sent to
// a second region's path after the first is a duplicate; what remains is a copy that reaches
// another region's path before the genuine one, which is why the form is deprecated.
func checkSignedRegion(body []byte, pathRegion string, legacy bool) (reason, message string, err error) {
	var b struct {
		Region *string `json:"region"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return "", "", invalid("region", "region must be a string, the region of the callback path")
	}
	named := ""
	if b.Region != nil {
		named = duplicate.NormalizeRegion(*b.Region)
	}
	switch {
	case named == pathRegion, legacy && b.Region == nil:
		return "", "", nil
	case pathRegion == "":
		return authRegionMismatch, fmt.Sprintf(`the signed body names region %q: send it to /v1/callbacks/advance/%s`,
			clip.Ellipsis(strings.ToValidUTF8(named, ""), duplicate.MaxRegionLen),
			clip.Ellipsis(strings.ToValidUTF8(named, ""), duplicate.MaxRegionLen)), nil
	case b.Region == nil:
		return authRegionMismatch, fmt.Sprintf(`a signed callback to /v1/callbacks/advance/%s must carry "region":%q in its signed body, so that its signature cannot be replayed to another region's path`,
			pathRegion, pathRegion), nil
	default:
		return authRegionMismatch, fmt.Sprintf(`the signed body names region %q, not %q: a callback signed for one region is refused on another region's path`,
			clip.Ellipsis(strings.ToValidUTF8(named, ""), duplicate.MaxRegionLen), pathRegion), nil
	}
}
