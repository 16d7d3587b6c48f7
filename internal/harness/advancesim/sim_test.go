package advancesim

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/harness/fakeclock"
)

const (
	testAccessKey = "ak-test"
	testSecretKey = "sk-test"

	pathToken  = "/openapi/auth/ticket/v1/generate-token"
	pathFace   = "/intl/openapi/identity-risk/idvs-h5/ekyc/v1/face-search"
	pathResult = "/intl/openapi/identity-risk/idvs-h5/ekyc/v1/get-result"
)

// seedSuccess is the SUCCESS example of the vendor's face-search page, verbatim.
const seedSuccess = `{
"code": "SUCCESS",
"message": "OK",
"data": {
"signatureId": "ed8b21c0c87ad617",
"simliarFaceUserIds":["2fe2cff789245240","406d5049c4db9723"]
},
"extra": null,
"transactionId": "ed8b21c0c87ad617",
"pricingStrategy": "FREE"
}`

// seedErrors are the error examples of the same page, verbatim.
var seedErrors = []string{
	`{
"code":"PARAMETER_ERROR",
"message":"Parameter error,please check you input.",
"data":null,
"extra":null,
"transactionId":"ba134d6112c57a4c",
"pricingStrategy":"FREE"
}`,
	`{
"code":"PARAMETER_ERROR",
"message":"Parameter should not be empty",
"data":null,
"extra":null,
"transactionId":"dfcdc346a81f404f",
"pricingStrategy":"FREE"
}`,
	`{
"code":"ERROR",
"message":"Server error",
"data":null,
"extra":null,
"transactionId":"1deae5a13ef2bd5e",
"pricingStrategy":"FREE"
}`,
}

var txIDPattern = regexp.MustCompile(`"transactionId":"([0-9a-f]{16})"`)

// testBundle is what setup returns.
type testBundle struct {
	sim   *Sim
	srv   *httptest.Server
	clock *fakeclock.Clock
}

// setup starts a simulator on a fake clock. mutate adjusts the config.
func setup(t *testing.T, mutate func(*Config)) *testBundle {
	t.Helper()
	clock := fakeclock.New(time.Now())
	cfg := Config{AccessKey: testAccessKey, SecretKey: testSecretKey, Seed: 1, Now: clock.Now}
	if mutate != nil {
		mutate(&cfg)
	}
	require.NoError(t, cfg.Validate())
	sim := New(cfg)
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	return &testBundle{sim: sim, srv: srv, clock: clock}
}

// answer is a decoded response.
type answer struct {
	status int
	header http.Header
	raw    []byte
	env    struct {
		Code            string          `json:"code"`
		Message         string          `json:"message"`
		Data            json.RawMessage `json:"data"`
		Extra           json.RawMessage `json:"extra"`
		TransactionID   string          `json:"transactionId"`
		PricingStrategy string          `json:"pricingStrategy"`
	}
}

// post sends body to path with the token (if any) and decodes the envelope when there is one.
func (b *testBundle) post(t *testing.T, path, tok, body string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.srv.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if tok != "" {
		req.Header.Set("X-ACCESS-TOKEN", tok)
	}
	resp, err := b.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, header: resp.Header}
	a.raw, err = io.ReadAll(resp.Body)
	require.NoError(t, err)
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		require.NoError(t, json.Unmarshal(a.raw, &a.env), string(a.raw))
	}
	return a
}

// tokenBody returns a signed generate-token body for the moment ms.
func tokenBody(accessKey, secretKey string, ms int64, extra string) string {
	ts := strconv.FormatInt(ms, 10)
	sum := sha256.Sum256([]byte(accessKey + secretKey + ts))
	return `{"accessKey":"` + accessKey + `","timestamp":` + ts + `,"signature":"` + hex.EncodeToString(sum[:]) + `"` + extra + `}`
}

// token gets a valid token.
func (b *testBundle) token(t *testing.T) string {
	t.Helper()
	a := b.post(t, pathToken, "", tokenBody(testAccessKey, testSecretKey, b.clock.Now().UnixMilli(), ""))
	require.Equal(t, "SUCCESS", a.env.Code, string(a.raw))
	var d struct {
		Token string `json:"token"`
	}
	require.NoError(t, json.Unmarshal(a.env.Data, &d))
	return d.Token
}

// seed adds sessions and returns their signatureIds.
func (b *testBundle) seed(t *testing.T, xs ...Session) []string {
	t.Helper()
	ids, err := b.sim.AddSessions(xs)
	require.NoError(t, err)
	return ids
}

func sigBody(sig string) string { return `{"signatureId":"` + sig + `"}` }

func TestGenerateToken(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	now := b.clock.Now().UnixMilli()
	good := tokenBody(testAccessKey, testSecretKey, now, "")
	tests := []struct {
		name     string
		body     string
		wantCode string
		wantMsg  string
		status   int
	}{
		{"valid, number timestamp", good, "SUCCESS", "OK", 200},
		{"valid, string timestamp and period", strings.Replace(tokenBody(testAccessKey, testSecretKey, now, `,"periodSecond":"60"`), `"timestamp":`+strconv.FormatInt(now, 10), `"timestamp":"`+strconv.FormatInt(now, 10)+`"`, 1), "SUCCESS", "OK", 200},
		{"valid, max period", tokenBody(testAccessKey, testSecretKey, now, `,"periodSecond":86400`), "SUCCESS", "OK", 200},
		{"bad signature", tokenBody(testAccessKey, "wrong-secret", now, ""), "PARAMETER_ERROR", "Signature error", 200},
		{"uppercase signature", upperSignature(good), "PARAMETER_ERROR", "Signature error", 200},
		{"old timestamp", tokenBody(testAccessKey, testSecretKey, now-301_000, ""), "PARAMETER_ERROR", "Timestamp error", 200},
		{"future timestamp", tokenBody(testAccessKey, testSecretKey, now+301_000, ""), "PARAMETER_ERROR", "Timestamp error", 200},
		{"timestamp in seconds", tokenBody(testAccessKey, testSecretKey, now/1000, ""), "PARAMETER_ERROR", "Timestamp error", 200},
		{"timestamp not digits", `{"accessKey":"ak-test","timestamp":"soon","signature":"x"}`, "PARAMETER_ERROR", "Timestamp error", 200},
		{"period too short", tokenBody(testAccessKey, testSecretKey, now, `,"periodSecond":59`), "PARAMETER_ERROR", "Parameter error,please check you input.", 200},
		{"period too long", tokenBody(testAccessKey, testSecretKey, now, `,"periodSecond":86401`), "PARAMETER_ERROR", "Parameter error,please check you input.", 200},
		{"period not a number", tokenBody(testAccessKey, testSecretKey, now, `,"periodSecond":"hour"`), "PARAMETER_ERROR", "Parameter error,please check you input.", 200},
		{"missing signature", `{"accessKey":"ak-test","timestamp":` + strconv.FormatInt(now, 10) + `}`, "PARAMETER_ERROR", "Parameter should not be empty", 200},
		{"empty access key", `{"accessKey":"","timestamp":1,"signature":"x"}`, "PARAMETER_ERROR", "Parameter should not be empty", 200},
		{"unknown access key", tokenBody("someone-else", testSecretKey, now, ""), "ACCOUNT_DISABLED", "Account Disabled", 200},
		{"not JSON", `accessKey=ak`, "CLIENT_ERROR", "HTTP 400 - Bad Request", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := b.post(t, pathToken, "", tt.body)
			require.Equal(t, tt.status, a.status)
			require.Equal(t, tt.wantCode, a.env.Code, string(a.raw))
			require.Equal(t, tt.wantMsg, a.env.Message)
			require.Equal(t, "FREE", a.env.PricingStrategy)
			if tt.wantCode != "SUCCESS" {
				require.Equal(t, "null", string(a.env.Data))
			}
		})
	}
}

// upperSignature returns body with its signature in upper case: the vendor asks for lowercase hex.
func upperSignature(body string) string {
	i := strings.Index(body, `"signature":"`) + len(`"signature":"`)
	return body[:i] + strings.ToUpper(body[i:i+64]) + body[i+64:]
}

func TestTokenExpiry(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	sig := b.seed(t, Session{UserID: "u1", Face: "f", OverallResult: ResultPass})[0]
	start := b.clock.Now()
	a := b.post(t, pathToken, "", tokenBody(testAccessKey, testSecretKey, start.UnixMilli(), `,"periodSecond":60`))
	var d struct {
		Token       string `json:"token"`
		ExpiredTime int64  `json:"expiredTime"`
	}
	require.NoError(t, json.Unmarshal(a.env.Data, &d))
	require.Equal(t, start.Add(60*time.Second).UnixMilli(), d.ExpiredTime)
	require.Equal(t, `{"token":"`+d.Token+`","expiredTime":`+strconv.FormatInt(d.ExpiredTime, 10)+`}`, string(a.env.Data))

	require.Equal(t, "SUCCESS", b.post(t, pathFace, d.Token, sigBody(sig)).env.Code)
	b.clock.Add(61 * time.Second)
	require.Equal(t, "IAM_FAILED", b.post(t, pathFace, d.Token, sigBody(sig)).env.Code)
	require.Equal(t, "IAM_FAILED", b.post(t, pathResult, d.Token, sigBody(sig)).env.Code)
}

func TestIAMFailed(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	sig := b.seed(t, Session{UserID: "u1", Face: "f", OverallResult: ResultPass})[0]
	for _, path := range []string{pathFace, pathResult} {
		require.Equal(t, "IAM_FAILED", b.post(t, path, "", sigBody(sig)).env.Code, "no token")
		require.Equal(t, "IAM_FAILED", b.post(t, path, "made-up", sigBody(sig)).env.Code, "unknown token")
	}
	tok := b.token(t)
	require.Equal(t, "SUCCESS", b.post(t, pathResult, tok, sigBody(sig)).env.Code)

	// Revocation over HTTP invalidates every token issued so far.
	a := b.post(t, "/sim/tokens/revoke", "", "")
	require.Equal(t, http.StatusOK, a.status)
	require.JSONEq(t, `{"revoked":1}`, string(a.raw))
	require.Equal(t, "IAM_FAILED", b.post(t, pathResult, tok, sigBody(sig)).env.Code)
	require.Equal(t, "SUCCESS", b.post(t, pathResult, b.token(t), sigBody(sig)).env.Code)
}

func TestFaceSearch(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ids := b.seed(t,
		Session{UserID: "alice", Face: "ring", OverallResult: ResultPass},       // 0
		Session{UserID: "bob", Face: "ring", OverallResult: ResultPass},         // 1
		Session{UserID: "carol", Face: "ring", OverallResult: ResultFail},       // 2: not searchable
		Session{UserID: "dave", Face: "ring", OverallResult: ResultPass},        // 3
		Session{UserID: "bob", Face: "ring", OverallResult: ResultPass},         // 4: bob again
		Session{UserID: "erin", Face: "alone", OverallResult: ResultPass},       // 5
		Session{UserID: "frank", Face: "x", OverallResult: ResultIncomplete},    // 6
		Session{UserID: "alice", Face: "other-face", OverallResult: ResultPass}, // 7
	)
	tok := b.token(t)
	tests := []struct {
		name     string
		body     string
		wantCode string
		wantMsg  string
		wantIDs  []string
	}{
		// Each session sees only the sessions that completed before it did, in that order.
		{"ring, first member sees nobody", sigBody(ids[0]), "SUCCESS", "OK", []string{}},
		{"ring, second member", sigBody(ids[1]), "SUCCESS", "OK", []string{"alice"}},
		{"ring, third member", sigBody(ids[3]), "SUCCESS", "OK", []string{"alice", "bob"}},
		{"ring, user with two sessions sees itself", sigBody(ids[4]), "SUCCESS", "OK", []string{"alice", "bob", "dave"}},
		{"alone", sigBody(ids[5]), "SUCCESS", "OK", []string{}},
		{"same user, other face", sigBody(ids[7]), "SUCCESS", "OK", []string{}},
		{"FAIL session", sigBody(ids[2]), "PARAMETER_ERROR", "Transaction is not pass", nil},
		{"INCOMPLETE session", sigBody(ids[6]), "PARAMETER_ERROR", "Transaction is not pass", nil},
		{"unknown", sigBody("0000000000000000"), "PARAMETER_ERROR", "Parameter error,please check you input.", nil},
		{"empty", sigBody(""), "PARAMETER_ERROR", "Parameter should not be empty", nil},
		{"missing", `{}`, "PARAMETER_ERROR", "Parameter should not be empty", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := b.post(t, pathFace, tok, tt.body)
			require.Equal(t, http.StatusOK, a.status)
			require.Equal(t, tt.wantCode, a.env.Code, string(a.raw))
			require.Equal(t, tt.wantMsg, a.env.Message)
			if tt.wantIDs == nil {
				require.Equal(t, "null", string(a.env.Data))
				return
			}
			var d map[string]json.RawMessage
			require.NoError(t, json.Unmarshal(a.env.Data, &d))
			var got []string
			require.NoError(t, json.Unmarshal(d["simliarFaceUserIds"], &got))
			require.Equal(t, tt.wantIDs, got)
			require.NotContains(t, d, "similarFaceUserIds")
		})
	}
}

// TestFaceDatabaseIsTimeAware follows sessions that complete after registration: until then
// get-result says INCOMPLETE and face search refuses them as the vendor does; afterwards each face
// search sees only the sessions that completed PASS before the searched one.
func TestFaceDatabaseIsTimeAware(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ids := b.seed(t,
		Session{UserID: "alice", Face: "ring", OverallResult: ResultPass},
		Session{UserID: "bob", Face: "ring", OverallResult: ResultIncomplete},
		Session{UserID: "carol", Face: "ring", OverallResult: ResultIncomplete},
		Session{UserID: "mallory", Face: "ring", OverallResult: ResultIncomplete},
		Session{UserID: "nofaceuser", OverallResult: ResultIncomplete},
	)
	alice, bob, carol, mallory, noFace := ids[0], ids[1], ids[2], ids[3], ids[4]
	tok := b.token(t)
	result := func(sig string) string {
		t.Helper()
		a := b.post(t, pathResult, tok, sigBody(sig))
		require.Equal(t, "SUCCESS", a.env.Code)
		var d struct {
			OverallResult       string `json:"overallResult"`
			SubmissionCompleted bool   `json:"submissionCompleted"`
		}
		require.NoError(t, json.Unmarshal(a.env.Data, &d))
		return d.OverallResult + "/" + strconv.FormatBool(d.SubmissionCompleted)
	}
	search := func(sig string) (code, message string, users []string) {
		t.Helper()
		a := b.post(t, pathFace, tok, sigBody(sig))
		if a.env.Code != "SUCCESS" {
			require.Equal(t, "null", string(a.env.Data))
			return a.env.Code, a.env.Message, nil
		}
		var d struct {
			IDs []string `json:"simliarFaceUserIds"`
		}
		require.NoError(t, json.Unmarshal(a.env.Data, &d))
		return a.env.Code, a.env.Message, d.IDs
	}

	require.Equal(t, "INCOMPLETE/false", result(bob))
	code, msg, _ := search(bob)
	require.Equal(t, "PARAMETER_ERROR", code)
	require.Equal(t, "Transaction is not pass", msg)
	_, _, users := search(alice)
	require.Empty(t, users, "sessions not completed are not in the face database")

	// carol completes before bob: over HTTP, then through the Control client.
	a := b.post(t, "/sim/sessions/"+carol+"/complete", "", `{"overallResult":"PASS"}`)
	require.Equal(t, http.StatusOK, a.status, string(a.raw))
	require.JSONEq(t, `{"signatureId":"`+carol+`","overallResult":"PASS"}`, string(a.raw))
	ctx := context.Background()
	c := NewControl(b.srv.URL)
	require.NoError(t, c.Complete(ctx, bob, ResultPass))
	require.NoError(t, c.Complete(ctx, mallory, ResultFail))

	require.Equal(t, "PASS/true", result(bob))
	require.Equal(t, "FAIL/true", result(mallory))
	_, _, users = search(alice)
	require.Empty(t, users, "later completions are not returned to an earlier session")
	_, _, users = search(carol)
	require.Equal(t, []string{"alice"}, users)
	_, _, users = search(bob)
	require.Equal(t, []string{"alice", "carol"}, users, "in order of completion, without the FAIL session")
	code, msg, _ = search(mallory)
	require.Equal(t, "PARAMETER_ERROR", code)
	require.Equal(t, "Transaction is not pass", msg)

	later := b.seed(t, Session{UserID: "dave", Face: "ring", OverallResult: ResultPass})[0]
	_, _, users = search(later)
	require.Equal(t, []string{"alice", "carol", "bob"}, users)

	for _, tt := range []struct {
		name, sig, body string
		status          int
	}{
		{"already completed", bob, `{"overallResult":"FAIL"}`, http.StatusConflict},
		{"registered PASS", alice, `{"overallResult":"PASS"}`, http.StatusConflict},
		{"unknown", "0000000000000000", `{"overallResult":"PASS"}`, http.StatusNotFound},
		{"not a verdict", noFace, `{"overallResult":"INCOMPLETE"}`, http.StatusBadRequest},
		{"no verdict", noFace, `{}`, http.StatusBadRequest},
		{"PASS without a face", noFace, `{"overallResult":"PASS"}`, http.StatusBadRequest},
		{"misspelt field", noFace, `{"overalResult":"PASS"}`, http.StatusBadRequest},
		{"not JSON", noFace, `{`, http.StatusBadRequest},
	} {
		a := b.post(t, "/sim/sessions/"+tt.sig+"/complete", "", tt.body)
		require.Equal(t, tt.status, a.status, tt.name)
		require.Contains(t, string(a.raw), `"error"`, tt.name)
	}
	require.Equal(t, "INCOMPLETE/false", result(noFace), "a refused completion changes nothing")
	require.ErrorContains(t, c.Complete(ctx, bob, ResultPass), "409")
}

func TestFaceSearchNewSpelling(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) { c.NewSpelling = true })
	ids := b.seed(t,
		Session{UserID: "a", Face: "f", OverallResult: ResultPass},
		Session{UserID: "b", Face: "f", OverallResult: ResultPass},
	)
	a := b.post(t, pathFace, b.token(t), sigBody(ids[1]))
	require.Equal(t, `{"signatureId":"`+ids[1]+`","similarFaceUserIds":["a"]}`, string(a.env.Data))
}

func TestEnvelopeMatchesSeedPage(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.seed(t,
		Session{UserID: "2fe2cff789245240", Face: "f", OverallResult: ResultPass},
		Session{UserID: "406d5049c4db9723", Face: "f", OverallResult: ResultPass},
		Session{UserID: "the-caller", Face: "f", OverallResult: ResultPass, SignatureID: "ed8b21c0c87ad617"},
		Session{UserID: "someone", Face: "g", OverallResult: ResultFail, SignatureID: "fa11ed0000000000"},
	)
	tok := b.token(t)
	tests := []struct {
		name string
		body string
		want string
	}{
		{"SUCCESS", sigBody("ed8b21c0c87ad617"), seedSuccess},
		{"PARAMETER_ERROR unknown", sigBody("nope"), seedErrors[0]},
		{"PARAMETER_ERROR empty", sigBody(""), seedErrors[1]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := b.post(t, pathFace, tok, tt.body)
			require.Equal(t, "application/json", a.header.Get("Content-Type"))
			requireSameBytes(t, tt.want, a.raw)
		})
	}
	t.Run("ERROR", func(t *testing.T) {
		require.NoError(t, b.sim.SetFaults(Faults{ErrorRate: 1}))
		requireSameBytes(t, seedErrors[2], b.post(t, pathFace, tok, sigBody("ed8b21c0c87ad617")).raw)
	})
	t.Run("not pass", func(t *testing.T) {
		require.NoError(t, b.sim.SetFaults(Faults{}))
		a := b.post(t, pathFace, tok, sigBody("fa11ed0000000000"))
		require.Regexp(t, `^\{"code":"PARAMETER_ERROR","message":"Transaction is not pass","data":null,"extra":null,"transactionId":"[0-9a-f]{16}","pricingStrategy":"FREE"\}$`, string(a.raw))
	})
}

// requireSameBytes compares an answer with a seed-page example byte for byte, once the
// example's layout whitespace is removed and its transactionId replaced by the answer's.
func requireSameBytes(t *testing.T, example string, got []byte) {
	t.Helper()
	var want bytes.Buffer
	require.NoError(t, json.Compact(&want, []byte(example)))
	m := txIDPattern.FindSubmatch(got)
	require.NotNil(t, m, "a 16-hex-character transactionId in %s", got)
	expected := txIDPattern.ReplaceAll(want.Bytes(), []byte(`"transactionId":"`+string(m[1])+`"`))
	require.Equal(t, string(expected), string(got))
}

func TestTransactionIDsAreFresh(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	tok := b.token(t)
	seen := map[string]bool{}
	for range 200 {
		a := b.post(t, pathFace, tok, sigBody("unknown"))
		require.Regexp(t, `^[0-9a-f]{16}$`, a.env.TransactionID)
		require.False(t, seen[a.env.TransactionID])
		seen[a.env.TransactionID] = true
	}
}

func TestGetResult(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ids := b.seed(t,
		Session{UserID: "u-pass", Face: "f", OverallResult: ResultPass},
		Session{UserID: "u-fail", OverallResult: ResultFail},
		Session{UserID: "u-inc", OverallResult: ResultIncomplete},
	)
	tok := b.token(t)
	tests := []struct {
		name     string
		body     string
		wantCode string
		wantData string
	}{
		{"pass", `{"signatureId":"` + ids[0] + `","returnImageType":"URL"}`, "SUCCESS",
			`{"overallResult":"PASS","submissionCompleted":true,"errorCode":null,"inputParameters":{"userId":"u-pass"},"signatureId":"` + ids[0] + `"}`},
		{"fail", sigBody(ids[1]), "SUCCESS",
			`{"overallResult":"FAIL","submissionCompleted":true,"errorCode":null,"inputParameters":{"userId":"u-fail"},"signatureId":"` + ids[1] + `"}`},
		{"incomplete", `{"signatureId":"` + ids[2] + `","returnImageType":"BASE64"}`, "SUCCESS",
			`{"overallResult":"INCOMPLETE","submissionCompleted":false,"errorCode":null,"inputParameters":{"userId":"u-inc"},"signatureId":"` + ids[2] + `"}`},
		{"unknown", sigBody("nope"), "SIGNATURE_NOT_EXIST", "null"},
		{"empty", sigBody(""), "PARAMETER_ERROR", "null"},
		{"bad image type", `{"signatureId":"` + ids[0] + `","returnImageType":"PNG"}`, "PARAMETER_ERROR", "null"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := b.post(t, pathResult, tok, tt.body)
			require.Equal(t, tt.wantCode, a.env.Code)
			if tt.wantData == "null" {
				require.Equal(t, "null", string(a.env.Data))
				return
			}
			// The fields the pipeline reads come first; the evidence follows (TestGetResultEvidence).
			require.True(t, strings.HasPrefix(string(a.env.Data), strings.TrimSuffix(tt.wantData, "}")+`,"faceDetail":`), string(a.env.Data))
		})
	}
}

func TestMalformedRequest(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	a := b.post(t, pathFace, b.token(t), `{"signatureId":`)
	require.Equal(t, http.StatusBadRequest, a.status)
	require.Equal(t, "CLIENT_ERROR", a.env.Code)

	resp, err := b.srv.Client().Get(b.srv.URL + pathFace)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
}

func TestErrorRateIsDeterministic(t *testing.T) {
	t.Parallel()
	run := func() []string {
		b := setup(t, func(c *Config) { c.ErrorRate = 0.3; c.Seed = 42 })
		sig := b.seed(t, Session{UserID: "u", Face: "f", OverallResult: ResultPass})[0]
		tok := b.token(t)
		var codes []string
		for range 200 {
			codes = append(codes, b.post(t, pathFace, tok, sigBody(sig)).env.Code)
		}
		return codes
	}
	first, second := run(), run()
	require.Equal(t, first, second)
	errs := 0
	for _, c := range first {
		if c == "ERROR" {
			errs++
		}
	}
	require.InDelta(t, 60, errs, 25, "about 30%% of 200 calls")
}

func TestQPSLimit(t *testing.T) {
	t.Parallel()
	for _, as429 := range []bool{false, true} {
		t.Run("as429="+strconv.FormatBool(as429), func(t *testing.T) {
			t.Parallel()
			b := setup(t, func(c *Config) { c.QPS = 5; c.BusyAsHTTP429 = as429 })
			sig := b.seed(t, Session{UserID: "u", Face: "f", OverallResult: ResultPass})[0]
			tok := b.token(t)
			busy := 0
			for range 30 {
				a := b.post(t, pathResult, tok, sigBody(sig))
				if a.env.Code != "SERVICE_BUSY" {
					require.Equal(t, "SUCCESS", a.env.Code)
					continue
				}
				busy++
				require.Equal(t, "1s", a.header.Get("Retry-After"))
				if as429 {
					require.Equal(t, http.StatusTooManyRequests, a.status)
				} else {
					require.Equal(t, http.StatusOK, a.status)
				}
			}
			require.GreaterOrEqual(t, busy, 20, "a burst of 30 against 5 qps is mostly refused")
			require.EqualValues(t, busy, b.sim.Stats().Answers["SERVICE_BUSY"])
		})
	}
}

func TestFaultsControl(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) { c.Latency = 20 * time.Millisecond })
	sig := b.seed(t, Session{UserID: "u", Face: "f", OverallResult: ResultPass})[0]
	tok := b.token(t)

	get := func() string {
		resp, err := b.srv.Client().Get(b.srv.URL + "/sim/faults")
		require.NoError(t, err)
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return string(raw)
	}
	put := func(body string) (int, string) {
		req, _ := http.NewRequest(http.MethodPut, b.srv.URL+"/sim/faults", strings.NewReader(body))
		resp, err := b.srv.Client().Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(raw)
	}
	require.JSONEq(t, `{"latencyMs":20,"errorRate":0,"qps":0,"forceCode":"","http5xxRate":0,"busyAsHTTP429":false}`, get())

	status, body := put(`{"forceCode":"INSUFFICIENT_BALANCE"}`)
	require.Equal(t, http.StatusOK, status)
	require.JSONEq(t, `{"latencyMs":20,"errorRate":0,"qps":0,"forceCode":"INSUFFICIENT_BALANCE","http5xxRate":0,"busyAsHTTP429":false}`, body)
	a := b.post(t, pathFace, tok, sigBody(sig))
	require.Equal(t, "INSUFFICIENT_BALANCE", a.env.Code)
	require.Equal(t, "Insufficient balance", a.env.Message)

	status, _ = put(`{"forceCode":"SERVICE_BUSY","busyAsHTTP429":true}`)
	require.Equal(t, http.StatusOK, status)
	a = b.post(t, pathFace, tok, sigBody(sig))
	require.Equal(t, http.StatusTooManyRequests, a.status)
	require.Equal(t, "1s", a.header.Get("Retry-After"))

	status, _ = put(`{"forceCode":"","http5xxRate":1}`)
	require.Equal(t, http.StatusOK, status)
	a = b.post(t, pathFace, tok, sigBody(sig))
	require.Equal(t, http.StatusServiceUnavailable, a.status)
	require.NotContains(t, string(a.raw), "code")

	for _, bad := range []string{`{"errorRate":2}`, `{"qps":-1}`, `{"latencyMs":-5}`, `{"forceCode":"SUCCESS"}`, `{"forceCode":"bad code"}`, `{"errorRat":0.5}`, `nope`} {
		status, body = put(bad)
		require.Equal(t, http.StatusBadRequest, status, bad)
		require.Contains(t, body, `"error"`)
	}
	require.JSONEq(t, `{"latencyMs":20,"errorRate":0,"qps":0,"forceCode":"","http5xxRate":1,"busyAsHTTP429":true}`, get(), "rejected patches change nothing")

	status, _ = put(`{"http5xxRate":0,"latencyMs":0}`)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "SUCCESS", b.post(t, pathFace, tok, sigBody(sig)).env.Code)
}

func TestLatencyHonoursCancellation(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) { c.Latency = 10 * time.Second })
	sig := b.seed(t, Session{UserID: "u", Face: "f", OverallResult: ResultPass})[0]
	tok := b.token(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, b.srv.URL+pathFace, strings.NewReader(sigBody(sig)))
	req.Header.Set("X-ACCESS-TOKEN", tok)
	start := time.Now()
	_, err := b.srv.Client().Do(req)
	require.Error(t, err)
	require.Less(t, time.Since(start), 5*time.Second)
	require.Eventually(t, func() bool { return b.sim.Stats().Calls["face-search"] == 1 }, 5*time.Second, 10*time.Millisecond)
	require.Empty(t, b.sim.Stats().FaceSearchBySignature, "an abandoned call is not billed")
}

func TestStats(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ids := b.seed(t,
		Session{UserID: "a", Face: "f", OverallResult: ResultPass},
		Session{UserID: "b", Face: "f", OverallResult: ResultPass},
		Session{UserID: "c", OverallResult: ResultFail},
	)
	tok := b.token(t)
	b.post(t, pathFace, tok, sigBody(ids[0]))
	b.post(t, pathFace, tok, sigBody(ids[0]))
	b.post(t, pathFace, tok, sigBody(ids[1]))
	b.post(t, pathFace, tok, sigBody(ids[2])) // not pass: not billed
	b.post(t, pathResult, tok, sigBody(ids[2]))
	b.post(t, pathResult, "", sigBody(ids[2]))

	resp, err := b.srv.Client().Get(b.srv.URL + "/sim/stats")
	require.NoError(t, err)
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.JSONEq(t, `{
		"calls": {"generate-token": 1, "face-search": 4, "get-result": 2, "face-search-enroll": 0, "clear-data": 0},
		"faceSearchBySignature": {"`+ids[0]+`": 2, "`+ids[1]+`": 1},
		"answers": {"SUCCESS": 5, "PARAMETER_ERROR": 1, "IAM_FAILED": 1},
		"enrollBySignature": {}
	}`, string(raw))

	a := b.post(t, "/sim/reset-stats", "", "")
	require.Equal(t, http.StatusNoContent, a.status)
	require.Equal(t, Stats{
		Calls:                 map[string]int64{"generate-token": 0, "face-search": 0, "get-result": 0, "face-search-enroll": 0, "clear-data": 0},
		FaceSearchBySignature: map[string]int64{},
		Answers:               map[string]int64{},
		EnrollBySignature:     map[string]int64{},
	}, b.sim.Stats())
}

func TestSeedingOverHTTP(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	a := b.post(t, "/sim/sessions", "", `{"userId":"u1","face":"f1","overallResult":"PASS"}`)
	require.Equal(t, http.StatusOK, a.status)
	var one struct {
		SignatureID string `json:"signatureId"`
	}
	require.NoError(t, json.Unmarshal(a.raw, &one))
	require.Regexp(t, `^[0-9a-f]{16}$`, one.SignatureID)

	var batch strings.Builder
	batch.WriteString("[")
	for i := range 1000 {
		if i > 0 {
			batch.WriteString(",")
		}
		batch.WriteString(`{"userId":"user-` + strconv.Itoa(i) + `","face":"face-` + strconv.Itoa(i%10) + `","overallResult":"PASS"}`)
	}
	batch.WriteString(`,{"userId":"fixed","face":"f1","overallResult":"PASS","signatureId":"my-own-id"}]`)
	a = b.post(t, "/sim/sessions/batch", "", batch.String())
	require.Equal(t, http.StatusOK, a.status)
	var many struct {
		SignatureIDs []string `json:"signatureIds"`
	}
	require.NoError(t, json.Unmarshal(a.raw, &many))
	require.Len(t, many.SignatureIDs, 1001)
	require.Equal(t, "my-own-id", many.SignatureIDs[1000])
	unique := map[string]bool{one.SignatureID: true}
	for _, id := range many.SignatureIDs {
		unique[id] = true
	}
	require.Len(t, unique, 1002)

	// In order: a batch completes in its order, so the last user of face-0 (shared with every
	// tenth user) sees the 99 before it, the first one nobody.
	tok := b.token(t)
	res := b.post(t, pathFace, tok, sigBody(many.SignatureIDs[990]))
	var d struct {
		IDs []string `json:"simliarFaceUserIds"`
	}
	require.NoError(t, json.Unmarshal(res.env.Data, &d))
	require.Len(t, d.IDs, 99)
	require.Equal(t, "user-0", d.IDs[0])
	require.Equal(t, "user-980", d.IDs[98])
	res = b.post(t, pathFace, tok, sigBody(many.SignatureIDs[0]))
	require.Equal(t, `{"signatureId":"`+many.SignatureIDs[0]+`","simliarFaceUserIds":[]}`, string(res.env.Data))

	tests := []struct {
		name, path, body string
		status           int
	}{
		{"no user", "/sim/sessions", `{"face":"f","overallResult":"PASS"}`, http.StatusBadRequest},
		{"bad result", "/sim/sessions", `{"userId":"u","face":"f","overallResult":"MAYBE"}`, http.StatusBadRequest},
		{"PASS without face", "/sim/sessions", `{"userId":"u","overallResult":"PASS"}`, http.StatusBadRequest},
		{"not JSON", "/sim/sessions", `{`, http.StatusBadRequest},
		{"taken id", "/sim/sessions", `{"userId":"u","face":"f","overallResult":"PASS","signatureId":"my-own-id"}`, http.StatusConflict},
		{"batch with a bad item", "/sim/sessions/batch", `[{"userId":"ok","face":"f","overallResult":"PASS"},{"userId":""}]`, http.StatusBadRequest},
		{"batch with a repeated id", "/sim/sessions/batch", `[{"userId":"a","face":"f","overallResult":"PASS","signatureId":"dup"},{"userId":"b","face":"f","overallResult":"PASS","signatureId":"dup"}]`, http.StatusConflict},
	}
	before := len(b.sim.sessions)
	for _, tt := range tests {
		a := b.post(t, tt.path, "", tt.body)
		require.Equal(t, tt.status, a.status, tt.name)
		require.Contains(t, string(a.raw), `"error"`, tt.name)
	}
	require.Len(t, b.sim.sessions, before, "a rejected batch adds nothing")
}

func TestLoadSessions(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	n, err := b.sim.LoadSessions(strings.NewReader(`[
		{"userId":"a","face":"f","overallResult":"PASS","signatureId":"s-a"},
		{"userId":"b","face":"f","overallResult":"PASS","signatureId":"s-b"}
	]`))
	require.NoError(t, err)
	require.Equal(t, 2, n)
	a := b.post(t, pathFace, b.token(t), sigBody("s-b"))
	require.Equal(t, `{"signatureId":"s-b","simliarFaceUserIds":["a"]}`, string(a.env.Data))

	_, err = b.sim.LoadSessions(strings.NewReader(`{"not":"an array"}`))
	require.Error(t, err)
}

func TestJSONEscaping(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	weird := "quote\" back\\ nl\n tab\t ctl\x01 uni é ✓ </script>"
	ids := b.seed(t,
		Session{UserID: weird, Face: "f", OverallResult: ResultPass},
		Session{UserID: "me", Face: "f", OverallResult: ResultPass},
	)
	a := b.post(t, pathFace, b.token(t), sigBody(ids[1]))
	var d struct {
		IDs []string `json:"simliarFaceUserIds"`
	}
	require.NoError(t, json.Unmarshal(a.env.Data, &d))
	require.Equal(t, []string{weird}, d.IDs)
}

func TestHealthz(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	resp, err := b.srv.Client().Get(b.srv.URL + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	good := Config{AccessKey: "a", SecretKey: "s"}
	require.NoError(t, good.Validate())
	for name, mutate := range map[string]func(*Config){
		"no access key":    func(c *Config) { c.AccessKey = "" },
		"no secret key":    func(c *Config) { c.SecretKey = "" },
		"error rate > 1":   func(c *Config) { c.ErrorRate = 1.5 },
		"negative qps":     func(c *Config) { c.QPS = -1 },
		"negative latency": func(c *Config) { c.Latency = -time.Second },
	} {
		cfg := good
		mutate(&cfg)
		require.Error(t, cfg.Validate(), name)
	}
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) { c.ErrorRate = 0.1 })
	ids := b.seed(t,
		Session{UserID: "a", Face: "f", OverallResult: ResultPass},
		Session{UserID: "b", Face: "f", OverallResult: ResultPass},
	)
	tok := b.token(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 50 {
				switch (i + j) % 4 {
				case 0:
					b.post(t, pathFace, tok, sigBody(ids[j%2]))
				case 1:
					b.post(t, pathResult, tok, sigBody(ids[j%2]))
				case 2:
					_, _ = b.sim.AddSession(Session{UserID: "n" + strconv.Itoa(i*100+j), Face: "f", OverallResult: ResultPass})
				case 3:
					_ = b.sim.Stats()
					_, _ = b.sim.patchFaults(FaultsPatch{})
				}
			}
		})
	}
	wg.Wait()
	st := b.sim.Stats()
	var answered int64
	for _, n := range st.Answers {
		answered += n
	}
	require.Equal(t, st.Calls["face-search"]+st.Calls["get-result"]+st.Calls["generate-token"], answered)
}

func BenchmarkFaceSearch(b *testing.B) {
	sim := New(Config{AccessKey: testAccessKey, SecretKey: testSecretKey})
	var xs []Session
	for i := range 10_000 {
		xs = append(xs, Session{UserID: "user-" + strconv.Itoa(i), Face: "face-" + strconv.Itoa(i/5), OverallResult: ResultPass})
	}
	ids, err := sim.AddSessions(xs)
	if err != nil {
		b.Fatal(err)
	}
	h := sim.Handler()
	rec := httptest.NewRecorder()
	tokReq := httptest.NewRequest(http.MethodPost, pathToken, strings.NewReader(tokenBody(testAccessKey, testSecretKey, time.Now().UnixMilli(), "")))
	h.ServeHTTP(rec, tokReq)
	var env struct {
		Data struct {
			Token string `json:"token"`
		} `json:"data"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil || env.Data.Token == "" {
		b.Fatalf("no token: %s", rec.Body)
	}
	bodies := make([]string, len(ids))
	for i, id := range ids {
		bodies[i] = sigBody(id)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			req := httptest.NewRequest(http.MethodPost, pathFace, strings.NewReader(bodies[i%len(bodies)]))
			req.Header.Set("X-ACCESS-TOKEN", env.Data.Token)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				b.Fatalf("status %d", w.Code)
			}
			i++
		}
	})
}

func TestEnrollMakesAFailedSessionSearchable(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ids := b.seed(t,
		Session{UserID: "fraudster", Face: "deepfake", OverallResult: ResultFail},
		Session{UserID: "alice", Face: "alice", OverallResult: ResultPass},
		Session{UserID: "pending", Face: "deepfake", OverallResult: ResultIncomplete},
		Session{UserID: "faceless", OverallResult: ResultFail},
		Session{UserID: "before", Face: "deepfake", OverallResult: ResultIncomplete},
		Session{UserID: "later", Face: "deepfake", OverallResult: ResultIncomplete},
	)
	failed, pass, incomplete, faceless, before, later := ids[0], ids[1], ids[2], ids[3], ids[4], ids[5]
	tok := b.token(t)
	const pathEnroll = "/intl/openapi/identity-risk/idvs-h5/ekyc/v1/face-search-enroll"
	search := func(sig string) []string {
		t.Helper()
		a := b.post(t, pathFace, tok, sigBody(sig))
		require.Equal(t, "SUCCESS", a.env.Code, string(a.raw))
		var d struct {
			IDs []string `json:"simliarFaceUserIds"`
		}
		require.NoError(t, json.Unmarshal(a.env.Data, &d))
		return d.IDs
	}

	// A PASS, an unknown, an unfinished or a faceless session cannot be enrolled.
	for _, sig := range []string{pass, "no-such-signature", incomplete, faceless} {
		a := b.post(t, pathEnroll, tok, sigBody(sig))
		require.Equal(t, "PARAMETER_ERROR", a.env.Code, sig)
	}

	// Without enrolment a failed face is invisible to face search.
	require.NoError(t, b.sim.Complete(before, ResultPass))
	require.Empty(t, search(before))

	a := b.post(t, pathEnroll, tok, sigBody(failed))
	require.Equal(t, "SUCCESS", a.env.Code, string(a.raw))
	require.JSONEq(t, `{"signatureId":"`+failed+`"}`, string(a.env.Data))
	require.Equal(t, "SUCCESS", b.post(t, pathEnroll, tok, sigBody(failed)).env.Code, "enrolling again changes nothing")

	// Enrolment is a moment in the face database: sessions completed after it find the face.
	require.NoError(t, b.sim.Complete(later, ResultPass))
	require.Equal(t, []string{"before", "fraudster"}, search(later), "in the order they entered the face database")
	require.Empty(t, search(before), "a search made before the enrolment does not change")

	st := b.sim.Stats()
	require.Equal(t, map[string]int64{failed: 2}, st.EnrollBySignature)
	require.EqualValues(t, 6, st.Calls["face-search-enroll"])
}
