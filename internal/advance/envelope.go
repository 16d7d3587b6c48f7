package advance

import (
	"bytes"
	"net/http"
	"strconv"
	"time"

	"github.com/segmentio/encoding/json"

	"github.com/doppelhq/doppel/internal/clip"
)

// maxBodyBytes bounds what is read of a response: the vendor's answers are a few hundred bytes,
// so anything near this is not a real answer and must not exhaust memory.
const maxBodyBytes = 1 << 20

// maxMessageBytes bounds the vendor text copied into an Error, which ends up in logs.
const maxMessageBytes = 256

// maxTransactionIDBytes is the documented maximum length of a transactionId.
const maxTransactionIDBytes = 64

// envelope is the wrapper every vendor answer comes in. extra and pricingStrategy are not used.
type envelope struct {
	Code          string          `json:"code"`
	Message       string          `json:"message"`
	Data          json.RawMessage `json:"data"`
	TransactionID string          `json:"transactionId"`
}

// decodeEnvelope turns one HTTP answer into a SUCCESS envelope, or an *Error that explains why
// there is none. It branches on code and HTTP status only, never on message.
func decodeEnvelope(op string, status int, header http.Header, body []byte, now time.Time) (envelope, *Error) {
	var env envelope
	err := json.Unmarshal(body, &env)
	if err != nil {
		// A body that does not parse is no envelope: nothing the decoder filled before it stopped
		// (a transactionId of invalid UTF-8, each byte grown to three as U+FFFD) is kept.
		env = envelope{}
	}
	parsed := err == nil && env.Code != ""
	retryAfter := parseRetryAfter(header.Get("Retry-After"), now)
	ok2xx := status >= 200 && status < 300

	if parsed && env.Code == CodeSuccess && ok2xx {
		env.TransactionID = clip.Bytes(env.TransactionID, maxTransactionIDBytes)
		return env, nil
	}
	if parsed && env.Code != CodeSuccess {
		kind := Classify(env.Code)
		if status == http.StatusTooManyRequests {
			// The vendor says SERVICE_BUSY may move to HTTP 429; the status alone is enough.
			kind = KindRateLimited
		}
		return envelope{}, &Error{
			Op:            op,
			Code:          clip.Bytes(env.Code, maxMessageBytes),
			Message:       clip.Bytes(env.Message, maxMessageBytes),
			TransactionID: clip.Bytes(env.TransactionID, maxTransactionIDBytes),
			HTTPStatus:    status,
			RetryAfter:    retryAfter,
			Kind:          kind,
		}
	}
	code, kind := classifyHTTP(status)
	msg := "response is not a vendor envelope"
	if parsed {
		msg = "SUCCESS envelope with HTTP status " + strconv.Itoa(status)
		env.TransactionID = clip.Bytes(env.TransactionID, maxTransactionIDBytes)
	}
	return envelope{}, &Error{
		Op:            op,
		Code:          code,
		Message:       msg,
		TransactionID: env.TransactionID,
		HTTPStatus:    status,
		RetryAfter:    retryAfter,
		Kind:          kind,
	}
}

// badData reports a SUCCESS envelope whose data does not have the documented shape.
func badData(op string, env envelope, status int, what string) *Error {
	return &Error{
		Op:            op,
		Code:          CodeBadResponse,
		Message:       "SUCCESS with unexpected data: " + what,
		TransactionID: env.TransactionID,
		HTTPStatus:    status,
		Kind:          KindTransient,
	}
}

// isNull reports whether raw JSON is absent or the literal null.
func isNull(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || bytes.Equal(raw, []byte("null"))
}

// faceSearchData is data of a face-search answer, in both of the vendor's spellings.
type faceSearchData struct {
	SignatureID string   `json:"signatureId"`
	Misspelled  []string `json:"simliarFaceUserIds"` // the seed page's spelling
	Spelled     []string `json:"similarFaceUserIds"` // the newer documentation's spelling
}

// decodeFaceSearch reads a face-search answer. A missing or null list is an empty list; when
// both spellings are present their ids are merged, first-seen order, without duplicates.
func decodeFaceSearch(status int, header http.Header, body []byte, signatureID string, now time.Time) (*FaceSearchResult, *Error) {
	env, e := decodeEnvelope(EndpointFaceSearch, status, header, body, now)
	if e != nil {
		return nil, e
	}
	var d faceSearchData
	if !isNull(env.Data) {
		if err := json.Unmarshal(env.Data, &d); err != nil {
			return nil, badData(EndpointFaceSearch, env, status, "face-search data")
		}
	}
	res := &FaceSearchResult{
		SignatureID:        d.SignatureID,
		SimilarFaceUserIDs: make([]string, 0, len(d.Misspelled)+len(d.Spelled)),
		TransactionID:      env.TransactionID,
	}
	if res.SignatureID == "" {
		res.SignatureID = signatureID
	}
	seen := make(map[string]struct{}, cap(res.SimilarFaceUserIDs))
	for _, list := range [][]string{d.Misspelled, d.Spelled} {
		for _, id := range list {
			if id == "" {
				continue // a null element: nothing to report
			}
			if _, dup := seen[id]; dup {
				continue
			}
			seen[id] = struct{}{}
			res.SimilarFaceUserIDs = append(res.SimilarFaceUserIDs, id)
		}
	}
	return res, nil
}

// resultData is data of a get-result answer; fields the client does not need are ignored.
type resultData struct {
	SignatureID         string          `json:"signatureId"`
	OverallResult       string          `json:"overallResult"`
	SubmissionCompleted bool            `json:"submissionCompleted"`
	ErrorCode           json.RawMessage `json:"errorCode"`
	InputParameters     json.RawMessage `json:"inputParameters"`
}

// decodeResult reads a get-result answer.
func decodeResult(status int, header http.Header, body []byte, signatureID string, now time.Time) (*Result, *Error) {
	env, e := decodeEnvelope(EndpointGetResult, status, header, body, now)
	if e != nil {
		return nil, e
	}
	if isNull(env.Data) {
		return nil, badData(EndpointGetResult, env, status, "no data")
	}
	var d resultData
	if err := json.Unmarshal(env.Data, &d); err != nil {
		return nil, badData(EndpointGetResult, env, status, "get-result data")
	}
	res := &Result{
		SignatureID:         d.SignatureID,
		OverallResult:       d.OverallResult,
		SubmissionCompleted: d.SubmissionCompleted,
		ErrorCode:           scalarString(d.ErrorCode),
		UserID:              inputUserID(d.InputParameters),
		TransactionID:       env.TransactionID,
	}
	if res.SignatureID == "" {
		res.SignatureID = signatureID
	}
	return res, nil
}

// scalarString reads a JSON string or number as text; null and anything else give "".
func scalarString(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	return ""
}

// inputUserID reads userId from inputParameters, which is an object, or (tolerated, some vendor
// APIs do this) a string holding a JSON object. Anything else gives "".
func inputUserID(raw json.RawMessage) string {
	var p struct {
		UserID json.RawMessage `json:"userId"`
	}
	if json.Unmarshal(raw, &p) == nil {
		return scalarString(p.UserID)
	}
	var s string
	if json.Unmarshal(raw, &s) == nil && json.Unmarshal([]byte(s), &p) == nil {
		return scalarString(p.UserID)
	}
	return ""
}

// token is an access token and the vendor's expiry for it.
type token struct {
	value     string
	expiresAt time.Time // zero when the vendor did not say
}

// decodeToken reads a generate-token answer.
func decodeToken(status int, header http.Header, body []byte, now time.Time) (token, *Error) {
	env, e := decodeEnvelope(EndpointGenerateToken, status, header, body, now)
	if e != nil {
		return token{}, e
	}
	var d struct {
		Token       string          `json:"token"`
		ExpiredTime json.RawMessage `json:"expiredTime"`
	}
	if isNull(env.Data) || json.Unmarshal(env.Data, &d) != nil || d.Token == "" {
		return token{}, badData(EndpointGenerateToken, env, status, "no token")
	}
	t := token{value: d.Token}
	// expiredTime is epoch milliseconds; accept a number or a numeric string.
	if ms, err := strconv.ParseInt(scalarString(d.ExpiredTime), 10, 64); err == nil && ms > 0 {
		t.expiresAt = time.UnixMilli(ms)
	}
	return t, nil
}
