package advancesim

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/doppelhq/doppel/internal/pause"
)

// Vendor codes the simulator answers with.
const (
	codeSuccess           = "SUCCESS"
	codeParameterError    = "PARAMETER_ERROR"
	codeSignatureNotExist = "SIGNATURE_NOT_EXIST"
	codeClientError       = "CLIENT_ERROR"
	codeError             = "ERROR"
	codeServiceBusy       = "SERVICE_BUSY"
	codeIAMFailed         = "IAM_FAILED"
	codeAccountDisabled   = "ACCOUNT_DISABLED"
)

// Messages, verbatim from the vendor's pages where they give one.
const (
	msgOK             = "OK"
	msgParameterError = "Parameter error,please check you input."
	msgEmptyParameter = "Parameter should not be empty"
	msgServerError    = "Server error"
	msgNotPass        = "Transaction is not pass"
	msgNotFail        = "Transaction is not fail"
	msgTimestampError = "Timestamp error"
	msgSignatureError = "Signature error"
	msgAccountDisable = "Account Disabled"
	msgClientError    = "HTTP 400 - Bad Request"
)

// codeMessages gives the message for codes the vendor documents without one, and for forced codes.
var codeMessages = map[string]string{
	codeError:              msgServerError,
	codeParameterError:     msgParameterError,
	codeSignatureNotExist:  "Signature does not exist",
	codeServiceBusy:        "Service busy, please retry later",
	codeIAMFailed:          "IAM failed",
	codeAccountDisabled:    msgAccountDisable,
	codeClientError:        msgClientError,
	"RETRY_LATER":          "Please retry later",
	"INSUFFICIENT_BALANCE": "Insufficient balance",
	"OVER_QUERY_LIMIT":     "Over query limit",
	"SERVICE_DISABLED":     "Service disabled",
	"ACCESS_DENIED":        "Access denied",
}

// Token rules from the vendor's token page.
const (
	timestampWindowMs   = 300_000
	defaultPeriodSecond = 3600
	minPeriodSecond     = 60
	maxPeriodSecond     = 86400
	maxRequestBytes     = 64 << 10
	retryAfterBusy      = "1s"
)

// endpoint indexes the per-endpoint call counters.
type endpoint int

const (
	epGenerateToken endpoint = iota
	epFaceSearch
	epGetResult
	epEnroll
	epClearData
	endpointCount
)

// endpointNames are the keys of Stats.Calls.
var endpointNames = [endpointCount]string{"generate-token", "face-search", "get-result", "face-search-enroll", "clear-data"}

// Header values shared by every answer: assigning a shared slice avoids an allocation per call,
// and nothing downstream modifies it.
var (
	headerJSON      = []string{"application/json"}
	headerBusyRetry = []string{retryAfterBusy}
)

// handleGenerateToken implements POST /openapi/auth/ticket/v1/generate-token.
func (s *Sim) handleGenerateToken(w http.ResponseWriter, r *http.Request) {
	s.calls[epGenerateToken].Add(1)
	bp, ok := s.readBody(w, r)
	if !ok {
		return
	}
	defer s.bufs.Put(bp)
	var req struct {
		AccessKey    string          `json:"accessKey"`
		Timestamp    json.RawMessage `json:"timestamp"`
		Signature    string          `json:"signature"`
		PeriodSecond json.RawMessage `json:"periodSecond"`
	}
	if json.Unmarshal(*bp, &req) != nil {
		s.reply(w, http.StatusBadRequest, codeClientError, msgClientError, nil)
		return
	}
	// The vendor's table types timestamp and periodSecond as strings and its sample sends
	// numbers, so both are accepted.
	ts, tsOK := integerText(req.Timestamp)
	if req.AccessKey == "" || req.Signature == "" || ts == "" {
		s.reply(w, http.StatusOK, codeParameterError, msgEmptyParameter, nil)
		return
	}
	now := s.now()
	if !tsOK || len(ts) != 13 {
		s.reply(w, http.StatusOK, codeParameterError, msgTimestampError, nil)
		return
	}
	ms, _ := strconv.ParseInt(ts, 10, 64)
	if d := ms - now.UnixMilli(); d > timestampWindowMs || d < -timestampWindowMs {
		s.reply(w, http.StatusOK, codeParameterError, msgTimestampError, nil)
		return
	}
	// The token page lists ACCOUNT_DISABLED, not IAM_FAILED, among its codes, so an access key the
	// vendor does not know is answered that way.
	if subtle.ConstantTimeCompare([]byte(req.AccessKey), []byte(s.accessKey)) != 1 {
		s.reply(w, http.StatusOK, codeAccountDisabled, msgAccountDisable, nil)
		return
	}
	sum := sha256.Sum256([]byte(s.accessKey + s.secretKey + ts))
	want := hex.EncodeToString(sum[:])
	if subtle.ConstantTimeCompare([]byte(req.Signature), []byte(want)) != 1 {
		s.reply(w, http.StatusOK, codeParameterError, msgSignatureError, nil)
		return
	}
	period := int64(defaultPeriodSecond)
	p, pOK := integerText(req.PeriodSecond)
	if p != "" && pOK {
		n, err := strconv.ParseInt(p, 10, 64)
		if err != nil || n < minPeriodSecond || n > maxPeriodSecond {
			pOK = false
		}
		period = n
	}
	if !pOK {
		s.reply(w, http.StatusOK, codeParameterError, msgParameterError, nil)
		return
	}
	tok := newToken()
	exp := now.Add(time.Duration(period) * time.Second).UnixMilli()
	s.storeToken(tok, exp, now.UnixMilli())

	data := make([]byte, 0, 96)
	data = append(data, `{"token":`...)
	data = appendString(data, tok)
	data = append(data, `,"expiredTime":`...)
	data = strconv.AppendInt(data, exp, 10)
	data = append(data, '}')
	s.reply(w, http.StatusOK, codeSuccess, msgOK, data)
}

// integerText returns the digits of a JSON integer or of a JSON string. text is "" for absent,
// null or ""; ok is false when the value is present but not all digits.
func integerText(raw json.RawMessage) (text string, ok bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return "", true
	}
	t := string(raw)
	if raw[0] == '"' {
		if json.Unmarshal(raw, &t) != nil {
			return "", false
		}
		if t == "" {
			return "", true
		}
	}
	for i := 0; i < len(t); i++ {
		if t[i] < '0' || t[i] > '9' {
			return t, false
		}
	}
	return t, true
}

// newToken returns an unguessable token.
func newToken() string {
	var b [24]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return "sim-" + hex.EncodeToString(b[:])
}

// storeToken remembers a token, sweeping expired ones now and then so the map stays small.
func (s *Sim) storeToken(tok string, exp, nowMs int64) {
	s.tokMu.Lock()
	defer s.tokMu.Unlock()
	if len(s.tokens) >= 1024 {
		for t, e := range s.tokens {
			if e <= nowMs {
				delete(s.tokens, t)
			}
		}
	}
	s.tokens[tok] = exp
}

// authorized reports whether the request carries a known, unexpired token.
func (s *Sim) authorized(r *http.Request) bool {
	tok := r.Header.Get("X-ACCESS-TOKEN")
	if tok == "" {
		return false
	}
	s.tokMu.RLock()
	exp, ok := s.tokens[tok]
	s.tokMu.RUnlock()
	return ok && s.now().UnixMilli() < exp
}

// RevokeTokens invalidates every token issued so far, so the next call gets IAM_FAILED.
func (s *Sim) RevokeTokens() int {
	s.tokMu.Lock()
	defer s.tokMu.Unlock()
	n := len(s.tokens)
	clear(s.tokens)
	return n
}

// signatureRequest is the body of face-search and get-result.
type signatureRequest struct {
	SignatureID     string  `json:"signatureId"`
	ReturnImageType *string `json:"returnImageType"`
}

// begin does what face-search and get-result share: count the call, check the token, read the
// body, apply the faults and parse the body. It reports false when it has already answered (or
// the caller left).
func (s *Sim) begin(w http.ResponseWriter, r *http.Request, ep endpoint, req *signatureRequest) bool {
	s.calls[ep].Add(1)
	if !s.authorized(r) {
		s.reply(w, http.StatusOK, codeIAMFailed, codeMessages[codeIAMFailed], nil)
		return false
	}
	// The body is read before any latency: the server notices a caller that hung up only once
	// the body is consumed, and the sleep must end when the caller gives up.
	bp, ok := s.readBody(w, r)
	if !ok {
		return false
	}
	defer s.bufs.Put(bp)

	f := s.faults.Load()
	if f.limiter != nil && !f.limiter.Allow() {
		s.busy(w, f.BusyAsHTTP429)
		return false
	}
	if f.latency > 0 && !pause.For(r.Context(), f.latency) {
		return false // the caller gave up: nobody to answer, nothing billed
	}
	if s.draw(f.HTTP5xxRate) {
		s.count("HTTP_503")
		w.Header()["Content-Type"] = []string{"text/plain; charset=utf-8"}
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "503 Service Temporarily Unavailable\n")
		return false
	}
	if f.ForceCode != "" {
		if f.ForceCode == codeServiceBusy {
			s.busy(w, f.BusyAsHTTP429)
		} else {
			s.reply(w, http.StatusOK, f.ForceCode, messageFor(f.ForceCode), nil)
		}
		return false
	}
	if s.draw(f.ErrorRate) {
		s.reply(w, http.StatusOK, codeError, msgServerError, nil)
		return false
	}
	if json.Unmarshal(*bp, req) != nil {
		s.reply(w, http.StatusBadRequest, codeClientError, msgClientError, nil)
		return false
	}
	if req.SignatureID == "" {
		s.reply(w, http.StatusOK, codeParameterError, msgEmptyParameter, nil)
		return false
	}
	return true
}

// messageFor returns the message that goes with a code.
func messageFor(code string) string {
	if m, ok := codeMessages[code]; ok {
		return m
	}
	return code
}

// busy answers SERVICE_BUSY with the Retry-After the vendor says to wait for.
func (s *Sim) busy(w http.ResponseWriter, as429 bool) {
	w.Header()["Retry-After"] = headerBusyRetry
	status := http.StatusOK
	if as429 {
		status = http.StatusTooManyRequests
	}
	s.reply(w, status, codeServiceBusy, codeMessages[codeServiceBusy], nil)
}

// handleFaceSearch implements POST .../idvs-h5/ekyc/v1/face-search.
func (s *Sim) handleFaceSearch(w http.ResponseWriter, r *http.Request) {
	var req signatureRequest
	if !s.begin(w, r, epFaceSearch, &req) {
		return
	}
	bp := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(bp)
	data := (*bp)[:0]

	s.mu.RLock()
	sess := s.sessions[req.SignatureID]
	switch {
	case sess == nil:
		s.mu.RUnlock()
		s.reply(w, http.StatusOK, codeParameterError, msgParameterError, nil)
		return
	case sess.result != ResultPass:
		s.mu.RUnlock()
		s.reply(w, http.StatusOK, codeParameterError, msgNotPass, nil)
		return
	}
	data = append(data, `{"signatureId":`...)
	data = appendString(data, sess.signatureID)
	if s.newSpelling {
		data = append(data, `,"similarFaceUserIds":[`...)
	} else {
		data = append(data, `,"simliarFaceUserIds":[`...)
	}
	for i, u := range s.faces[sess.face].before(sess.completed) {
		if i > 0 {
			data = append(data, ',')
		}
		data = appendString(data, u)
	}
	s.mu.RUnlock()
	data = append(data, "]}"...)
	sess.billed.Add(1)
	*bp = data
	s.reply(w, http.StatusOK, codeSuccess, msgOK, data)
}

// handleEnroll implements POST .../idvs-h5/ekyc/v1/face-search-enroll: the face of a FAIL session
// joins the face database from this moment, so face searches of sessions that complete later can
// return its user. Anything but a completed FAIL session with a face is a PARAMETER_ERROR. Enrolling
// one session again answers SUCCESS and changes nothing; every SUCCESS is counted, since the vendor
// may bill each.
func (s *Sim) handleEnroll(w http.ResponseWriter, r *http.Request) {
	var req signatureRequest
	if !s.begin(w, r, epEnroll, &req) {
		return
	}
	s.mu.Lock()
	sess := s.sessions[req.SignatureID]
	switch {
	case sess == nil:
		s.mu.Unlock()
		s.reply(w, http.StatusOK, codeParameterError, msgParameterError, nil)
		return
	case sess.result != ResultFail:
		s.mu.Unlock()
		s.reply(w, http.StatusOK, codeParameterError, msgNotFail, nil)
		return
	case sess.face == "":
		s.mu.Unlock()
		s.reply(w, http.StatusOK, codeParameterError, msgParameterError, nil)
		return
	}
	if sess.enrolled.Load() == 0 {
		s.completions++
		s.faceGroupLocked(sess.face).add(sess.userID, s.completions)
	}
	sess.enrolled.Add(1)
	s.mu.Unlock()
	bp := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(bp)
	data := append((*bp)[:0], `{"signatureId":`...)
	data = appendString(data, sess.signatureID)
	data = append(data, '}')
	*bp = data
	s.reply(w, http.StatusOK, codeSuccess, msgOK, data)
}

// ClearDataPath is the path of the simulator's data-clearing call (DOPPEL_ADVANCE_CLEAR_DATA_PATH
// when Doppel runs against it). The vendor's contract names no such call; some accounts have one.
const ClearDataPath = "/intl/openapi/identity-risk/idvs-h5/ekyc/v1/clear-data"

// handleClearData implements POST ClearDataPath: the session's face leaves the face database, so
// later face searches no longer return its user through it (they still do through another session
// of the user's with that face that was not cleared). An unknown signatureId is a PARAMETER_ERROR;
// clearing twice answers SUCCESS and changes nothing.
func (s *Sim) handleClearData(w http.ResponseWriter, r *http.Request) {
	var req signatureRequest
	if !s.begin(w, r, epClearData, &req) {
		return
	}
	s.mu.Lock()
	sess := s.sessions[req.SignatureID]
	if sess == nil {
		s.mu.Unlock()
		s.reply(w, http.StatusOK, codeParameterError, msgParameterError, nil)
		return
	}
	if !sess.cleared {
		sess.cleared = true
		if g := s.faces[sess.face]; g != nil && !s.userStillHasFaceLocked(sess.userID, sess.face) {
			g.remove(sess.userID)
		}
	}
	s.mu.Unlock()
	bp := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(bp)
	data := append((*bp)[:0], `{"signatureId":`...)
	data = appendString(data, sess.signatureID)
	data = append(data, '}')
	*bp = data
	s.reply(w, http.StatusOK, codeSuccess, msgOK, data)
}

// userStillHasFaceLocked reports whether another searchable session of user (completed PASS, or
// an enrolled FAIL) with face was not cleared. The caller holds s.mu.
func (s *Sim) userStillHasFaceLocked(user, face string) bool {
	for _, o := range s.sessions {
		if o.userID == user && o.face == face && !o.cleared &&
			((o.result == ResultPass && o.completed > 0) || o.enrolled.Load() > 0) {
			return true
		}
	}
	return false
}

// handleGetResult implements POST .../idvs-h5/ekyc/v1/get-result.
func (s *Sim) handleGetResult(w http.ResponseWriter, r *http.Request) {
	var req signatureRequest
	if !s.begin(w, r, epGetResult, &req) {
		return
	}
	if t := req.ReturnImageType; t != nil && *t != "URL" && *t != "BASE64" {
		s.reply(w, http.StatusOK, codeParameterError, msgParameterError, nil)
		return
	}
	s.mu.RLock()
	sess := s.sessions[req.SignatureID]
	var result string
	if sess != nil {
		result = sess.result
	}
	s.mu.RUnlock()
	if sess == nil {
		s.reply(w, http.StatusOK, codeSignatureNotExist, codeMessages[codeSignatureNotExist], nil)
		return
	}
	bp := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(bp)
	data := (*bp)[:0]
	data = append(data, `{"overallResult":`...)
	data = appendString(data, result)
	data = append(data, `,"submissionCompleted":`...)
	data = strconv.AppendBool(data, result != ResultIncomplete)
	data = append(data, `,"errorCode":null,"inputParameters":{"userId":`...)
	data = appendString(data, sess.userID)
	data = append(data, `},"signatureId":`...)
	data = appendString(data, sess.signatureID)
	imageType := "URL" // the vendor's default
	if req.ReturnImageType != nil {
		imageType = *req.ReturnImageType
	}
	data = appendEvidence(data, sess, result, imageType, requestBase(r), s.now())
	data = append(data, '}')
	*bp = data
	s.reply(w, http.StatusOK, codeSuccess, msgOK, data)
}

// readBody reads a bounded request body into a pooled buffer, answering CLIENT_ERROR itself
// when it cannot. The caller returns the buffer to s.bufs.
func (s *Sim) readBody(w http.ResponseWriter, r *http.Request) (*[]byte, bool) {
	bp := s.bufs.Get().(*[]byte)
	buf := bytes.NewBuffer((*bp)[:0])
	_, err := buf.ReadFrom(io.LimitReader(r.Body, maxRequestBytes+1))
	*bp = buf.Bytes()
	if err != nil || len(*bp) > maxRequestBytes {
		s.bufs.Put(bp)
		s.reply(w, http.StatusBadRequest, codeClientError, msgClientError, nil)
		return nil, false
	}
	return bp, true
}

// reply writes a vendor envelope with the keys in the vendor's order: code, message, data,
// extra, transactionId, pricingStrategy. data is raw JSON; nil writes null.
func (s *Sim) reply(w http.ResponseWriter, status int, code, message string, data []byte) {
	s.count(code)
	bp := s.bufs.Get().(*[]byte)
	b := (*bp)[:0]
	b = append(b, `{"code":`...)
	b = appendString(b, code)
	b = append(b, `,"message":`...)
	b = appendString(b, message)
	b = append(b, `,"data":`...)
	if data == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, data...)
	}
	b = append(b, `,"extra":null,"transactionId":"`...)
	b = s.txIDs.appendNext(b)
	b = append(b, `","pricingStrategy":"FREE"}`...)
	w.Header()["Content-Type"] = headerJSON
	w.WriteHeader(status)
	_, _ = w.Write(b)
	*bp = b
	s.bufs.Put(bp)
}

// appendString appends s as a JSON string. Input strings come from decoded JSON or from the
// simulator itself, so they are valid UTF-8 and only control characters, quote and backslash
// need escaping.
func appendString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
