// Package advance is a client for ADVANCE.AI's identity verification (IDVS H5) APIs: token
// authentication, get-result, face search and face-search enrolment. It knows nothing about the service that uses it,
// the way a third-party SDK would not, and classifies every failure as transient, rate-limited,
// permanent or account-level so that callers can decide between retry, dead letter and alert.
package advance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/segmentio/encoding/json"
)

// API paths, relative to Config.BaseURL. The token call has no /intl prefix.
const (
	pathGenerateToken = "/openapi/auth/ticket/v1/generate-token"
	pathFaceSearch    = "/intl/openapi/identity-risk/idvs-h5/ekyc/v1/face-search"
	pathGetResult     = "/intl/openapi/identity-risk/idvs-h5/ekyc/v1/get-result"
	pathEnroll        = "/intl/openapi/identity-risk/idvs-h5/ekyc/v1/face-search-enroll"
)

// Defaults and limits for Config.
const (
	DefaultTimeout            = 10 * time.Second
	DefaultTokenPeriod        = time.Hour
	DefaultTokenRefreshMargin = 5 * time.Minute
	MinTokenPeriod            = 60 * time.Second
	MaxTokenPeriod            = 24 * time.Hour
)

// Config configures a Client. Zero values take the documented defaults.
type Config struct {
	// BaseURL is the regional host, for example "https://sg-api.<vendor domain>", or a simulator.
	BaseURL string
	// AccessKey and SecretKey are the account's credentials; they are never logged.
	AccessKey string
	SecretKey string
	// Timeout bounds each HTTP call (default 10s).
	Timeout time.Duration
	// TokenPeriod is the token lifetime asked for (default 1h, between 60s and 24h).
	TokenPeriod time.Duration
	// TokenRefreshMargin is how long before expiry a new token is fetched (default 5m, capped at
	// half of TokenPeriod when defaulted; at most half of TokenPeriod when set).
	TokenRefreshMargin time.Duration
	// HTTPClient is optional; the default one is tuned for many concurrent calls to one host.
	HTTPClient *http.Client
	// Now is optional, for tests; it defaults to time.Now.
	Now func() time.Time
	// OnCall is optional; it is called after every HTTP call with the endpoint
	// (EndpointGenerateToken, EndpointFaceSearch, EndpointGetResult), the vendor code or
	// "HTTP_<status>"/"TIMEOUT"/"NETWORK"/"CANCELED"/"BAD_RESPONSE", and the call's duration.
	OnCall func(endpoint string, code string, d time.Duration)
	// ClearDataPath is the path of the account's data-clearing call, where the account offers one
	// (ClearData); empty: none.
	ClearDataPath string
}

// Validate reports the first problem with the configuration, saying what to set. It never
// quotes a credential.
func (c Config) Validate() error {
	if c.BaseURL == "" {
		return errors.New("advance config: BaseURL is empty: set it to the vendor's regional host or the simulator's URL")
	}
	u, err := url.Parse(c.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("advance config: BaseURL must be an absolute http(s) URL such as http://127.0.0.1:8090")
	}
	if u.User != nil {
		return errors.New("advance config: BaseURL must not carry user info: set AccessKey and SecretKey instead")
	}
	if c.AccessKey == "" {
		return errors.New("advance config: AccessKey is empty: set it to the account's access key")
	}
	if c.SecretKey == "" {
		return errors.New("advance config: SecretKey is empty: set it to the account's secret key")
	}
	if c.Timeout < 0 {
		return errors.New("advance config: Timeout is negative: set a positive duration, or 0 for the 10s default")
	}
	if c.TokenPeriod != 0 && (c.TokenPeriod < MinTokenPeriod || c.TokenPeriod > MaxTokenPeriod) {
		return fmt.Errorf("advance config: TokenPeriod %s is out of range: set it between %s and %s, or 0 for 1h", c.TokenPeriod, MinTokenPeriod, MaxTokenPeriod)
	}
	if c.TokenPeriod%time.Second != 0 {
		return errors.New("advance config: TokenPeriod must be whole seconds (the vendor takes periodSecond)")
	}
	if c.TokenRefreshMargin < 0 {
		return errors.New("advance config: TokenRefreshMargin is negative: set a positive duration, or 0 for the default")
	}
	period := c.TokenPeriod
	if period == 0 {
		period = DefaultTokenPeriod
	}
	if c.TokenRefreshMargin > period/2 {
		return fmt.Errorf("advance config: TokenRefreshMargin %s is more than half of the token period %s: lower it", c.TokenRefreshMargin, period)
	}
	return nil
}

// withDefaults fills in the zero values.
func (c Config) withDefaults() Config {
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.TokenPeriod == 0 {
		c.TokenPeriod = DefaultTokenPeriod
	}
	if c.TokenRefreshMargin == 0 {
		c.TokenRefreshMargin = min(DefaultTokenRefreshMargin, c.TokenPeriod/2)
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Transport: newTransport()}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	return c
}

// newTransport returns a transport that keeps enough idle connections to one host for a few
// hundred concurrent calls, instead of the default two that would make every burst redial.
func newTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 512
	t.MaxIdleConnsPerHost = 256
	t.IdleConnTimeout = 90 * time.Second
	return t
}

// Client calls the vendor. It is safe for concurrent use.
type Client struct {
	cfg    Config
	tokens *tokenCache
}

// New returns a Client for the configuration, or the Validate error.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	c := &Client{cfg: cfg}
	c.tokens = &tokenCache{
		fetch:  c.fetchToken,
		now:    cfg.Now,
		period: cfg.TokenPeriod,
		margin: cfg.TokenRefreshMargin,
	}
	return c, nil
}

// FaceSearchResult is the answer of a face search.
type FaceSearchResult struct {
	// SignatureID is the verification searched for.
	SignatureID string
	// SimilarFaceUserIDs are the userIds of earlier verifications with a similar face, in the
	// vendor's order, without duplicates. It may hold the user's own id (the same person
	// verifying again). Never nil.
	SimilarFaceUserIDs []string
	// TransactionID is the vendor's request id.
	TransactionID string
}

// Result is the answer of get-result.
type Result struct {
	// SignatureID is the verification asked about.
	SignatureID string
	// OverallResult is "PASS", "FAIL" or "INCOMPLETE".
	OverallResult string
	// SubmissionCompleted reports whether the user finished the submission.
	SubmissionCompleted bool
	// ErrorCode is the vendor's reason for a failed verification; empty until final.
	ErrorCode string
	// UserID is the userId the verification was created for (data.inputParameters.userId).
	UserID string
	// TransactionID is the vendor's request id.
	TransactionID string
}

// FaceSearch asks which earlier verifications have a face similar to this one. The vendor bills
// every call, and only PASS verifications can be searched.
func (c *Client) FaceSearch(ctx context.Context, signatureID string) (*FaceSearchResult, error) {
	if signatureID == "" {
		return nil, emptySignatureID(EndpointFaceSearch)
	}
	body, _ := json.Marshal(struct {
		SignatureID string `json:"signatureId"`
	}{signatureID})
	var res *FaceSearchResult
	err := c.authorized(ctx, EndpointFaceSearch, pathFaceSearch, body, maxBodyBytes, func(status int, h http.Header, b []byte) *Error {
		var e *Error
		res, e = decodeFaceSearch(status, h, b, signatureID, c.cfg.Now())
		return e
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// GetResult fetches the outcome of a verification, including the userId it was created for.
func (c *Client) GetResult(ctx context.Context, signatureID string) (*Result, error) {
	if signatureID == "" {
		return nil, emptySignatureID(EndpointGetResult)
	}
	body, _ := json.Marshal(struct {
		SignatureID     string `json:"signatureId"`
		ReturnImageType string `json:"returnImageType"`
	}{signatureID, "URL"})
	var res *Result
	err := c.authorized(ctx, EndpointGetResult, pathGetResult, body, maxBodyBytes, func(status int, h http.Header, b []byte) *Error {
		var e *Error
		res, e = decodeResult(status, h, b, signatureID, c.cfg.Now())
		return e
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// EnrollResult is the answer of face-search-enroll.
type EnrollResult struct {
	// SignatureID is the verification enrolled.
	SignatureID string
	// TransactionID is the vendor's request id.
	TransactionID string
}

// Enroll adds the face of a FAIL verification to the searchable set, so that later face searches
// can return its user. The vendor refuses a PASS or unknown signatureId with PARAMETER_ERROR.
func (c *Client) Enroll(ctx context.Context, signatureID string) (*EnrollResult, error) {
	if signatureID == "" {
		return nil, emptySignatureID(EndpointEnroll)
	}
	body, _ := json.Marshal(struct {
		SignatureID string `json:"signatureId"`
	}{signatureID})
	var res *EnrollResult
	err := c.authorized(ctx, EndpointEnroll, pathEnroll, body, maxBodyBytes, func(status int, h http.Header, b []byte) *Error {
		env, e := decodeEnvelope(EndpointEnroll, status, h, b, c.cfg.Now())
		if e != nil {
			return e
		}
		res = &EnrollResult{SignatureID: signatureID, TransactionID: env.TransactionID}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// ClearData asks the vendor to clear one verification's data: its face leaves the account's face
// database, so later face searches no longer return its user. Only accounts that offer the call
// have it (Config.ClearDataPath); without it ClearData is a permanent error.
func (c *Client) ClearData(ctx context.Context, signatureID string) error {
	if signatureID == "" {
		return emptySignatureID(EndpointClearData)
	}
	if c.cfg.ClearDataPath == "" {
		return &Error{Op: EndpointClearData, Code: CodeParameterError, Message: "the account has no data-clearing call (ClearDataPath is empty)", Kind: KindPermanent}
	}
	body, _ := json.Marshal(struct {
		SignatureID string `json:"signatureId"`
	}{signatureID})
	return c.authorized(ctx, EndpointClearData, c.cfg.ClearDataPath, body, maxBodyBytes, func(status int, h http.Header, b []byte) *Error {
		_, e := decodeEnvelope(EndpointClearData, status, h, b, c.cfg.Now())
		return e
	})
}

// emptySignatureID rejects a call the vendor would reject, without paying for the round trip.
func emptySignatureID(op string) *Error {
	return &Error{Op: op, Code: CodeParameterError, Message: "signatureId is empty (rejected by the client)", Kind: KindPermanent}
}

// authorized makes a call that needs a token. On IAM_FAILED it drops the token, fetches one new
// token and retries once; a second IAM_FAILED is returned as an account-level error.
// limit bounds the answer's size.
func (c *Client) authorized(ctx context.Context, op, path string, body []byte, limit int, decode func(int, http.Header, []byte) *Error) error {
	for attempt := 0; ; attempt++ {
		tok, err := c.tokens.get(ctx)
		if err != nil {
			return err
		}
		e := c.post(ctx, op, path, tok, body, limit, decode)
		if e == nil {
			return nil
		}
		if e.Code == CodeIAMFailed && attempt == 0 {
			c.tokens.invalidate(tok)
			continue
		}
		return e
	}
}

// fetchToken asks the vendor for a new token.
func (c *Client) fetchToken(ctx context.Context) (token, error) {
	body, _ := json.Marshal(newTokenRequest(c.cfg.AccessKey, c.cfg.SecretKey, c.cfg.Now(), c.cfg.TokenPeriod))
	var t token
	e := c.post(ctx, EndpointGenerateToken, pathGenerateToken, "", body, maxBodyBytes, func(status int, h http.Header, b []byte) *Error {
		var e *Error
		t, e = decodeToken(status, h, b, c.cfg.Now())
		return e
	})
	if e != nil {
		if e.Kind == KindPermanent {
			// A rejected token request (bad signature, timestamp, parameters) is the
			// configuration's fault, never the event's: report it as account-level so callers
			// stop and alert instead of dead-lettering every event.
			e.Kind = KindAccount
		}
		return token{}, e
	}
	return t, nil
}

// post sends one request, reads the answer (at most limit bytes) and hands it to decode. Every
// outcome is reported to OnCall.
func (c *Client) post(ctx context.Context, op, path, tok string, body []byte, limit int, decode func(int, http.Header, []byte) *Error) *Error {
	start := time.Now()
	e := c.roundTrip(ctx, op, path, tok, body, limit, decode)
	if c.cfg.OnCall != nil {
		code := CodeSuccess
		if e != nil {
			code = e.Code
		}
		c.cfg.OnCall(op, code, time.Since(start))
	}
	if e != nil {
		e.Message = c.redact(e.Message, tok)
		e.TransactionID = c.redact(e.TransactionID, tok)
	}
	return e
}

// roundTrip does the HTTP work of post.
func (c *Client) roundTrip(ctx context.Context, op, path, tok string, body []byte, limit int, decode func(int, http.Header, []byte) *Error) *Error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.BaseURL+path, bytes.NewReader(body))
	if err != nil {
		// Only a malformed BaseURL gets here, and Validate rules that out.
		return &Error{Op: op, Code: CodeNetwork, Message: "cannot build request", Kind: KindAccount, Err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if tok != "" {
		req.Header.Set("X-ACCESS-TOKEN", tok)
	}
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return transportError(ctx, op, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, int64(limit)+1))
	if err != nil {
		e := transportError(ctx, op, err)
		e.HTTPStatus = resp.StatusCode
		return e
	}
	if len(b) > limit {
		code, kind := classifyHTTP(resp.StatusCode)
		if resp.StatusCode < 300 {
			code, kind = CodeBadResponse, KindTransient
		}
		return &Error{Op: op, Code: code, Message: fmt.Sprintf("response larger than %d KiB", limit>>10), HTTPStatus: resp.StatusCode, Kind: kind}
	}
	return decode(resp.StatusCode, resp.Header, b)
}

// transportError classifies a failure to get an answer at all. ctx is the call's own context,
// whose error says whether time ran out or the caller gave up.
func transportError(ctx context.Context, op string, err error) *Error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxError(op, ctxErr)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return &Error{Op: op, Code: CodeTimeout, Kind: KindTransient, Err: err}
	}
	return &Error{Op: op, Code: CodeNetwork, Kind: KindTransient, Err: err}
}

// ctxError reports a context that ended before the answer: a deadline is a timeout, anything
// else a cancellation. Both are transient: the call itself may well succeed later.
func ctxError(op string, err error) *Error {
	if errors.Is(err, context.DeadlineExceeded) {
		return &Error{Op: op, Code: CodeTimeout, Kind: KindTransient, Err: err}
	}
	return &Error{Op: op, Code: CodeCanceled, Kind: KindTransient, Err: err}
}

// redact removes the credentials and the token from vendor text before it reaches an Error.
func (c *Client) redact(s, tok string) string {
	for _, secret := range []string{c.cfg.SecretKey, c.cfg.AccessKey, tok} {
		if secret != "" && strings.Contains(s, secret) {
			s = strings.ReplaceAll(s, secret, "[redacted]")
		}
	}
	return s
}
