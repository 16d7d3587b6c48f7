package advance

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
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

func TestSignature(t *testing.T) {
	t.Parallel()
	// The vendor's published test vector.
	require.Equal(t, "02209bbeaf0d0a3dd587f6a1ba22f84c98d142e3b545e77db7e4906ca56349f5",
		Signature("sampleaccesskey", "samplesecretkey", "1665993522952"))
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	good := Config{BaseURL: "http://127.0.0.1:8090", AccessKey: testAccessKey, SecretKey: testSecretKey}
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr string
	}{
		{"valid", func(*Config) {}, ""},
		{"no base URL", func(c *Config) { c.BaseURL = "" }, "BaseURL is empty"},
		{"relative base URL", func(c *Config) { c.BaseURL = "sg-api/x" }, "absolute http(s) URL"},
		{"user info in base URL", func(c *Config) { c.BaseURL = "https://u:" + testSecretKey + "@host" }, "user info"},
		{"no access key", func(c *Config) { c.AccessKey = "" }, "AccessKey is empty"},
		{"no secret key", func(c *Config) { c.SecretKey = "" }, "SecretKey is empty"},
		{"negative timeout", func(c *Config) { c.Timeout = -time.Second }, "Timeout is negative"},
		{"period too short", func(c *Config) { c.TokenPeriod = 30 * time.Second }, "TokenPeriod 30s is out of range"},
		{"period too long", func(c *Config) { c.TokenPeriod = 25 * time.Hour }, "out of range"},
		{"period not whole seconds", func(c *Config) { c.TokenPeriod = 90*time.Second + time.Millisecond }, "whole seconds"},
		{"negative margin", func(c *Config) { c.TokenRefreshMargin = -time.Second }, "TokenRefreshMargin is negative"},
		{"margin over half period", func(c *Config) {
			c.TokenPeriod = 2 * time.Minute
			c.TokenRefreshMargin = 61 * time.Second
		}, "more than half"},
		{"margin over half default period", func(c *Config) { c.TokenRefreshMargin = 31 * time.Minute }, "more than half"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := good
			tt.mutate(&cfg)
			err := cfg.Validate()
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
			require.NotContains(t, err.Error(), testSecretKey)
			require.NotContains(t, err.Error(), testAccessKey)
			_, err = New(cfg)
			require.Error(t, err)
		})
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	c, err := New(Config{BaseURL: "http://127.0.0.1:1/", AccessKey: "a", SecretKey: "s", TokenPeriod: 2 * time.Minute})
	require.NoError(t, err)
	require.Equal(t, DefaultTimeout, c.cfg.Timeout)
	require.Equal(t, time.Minute, c.cfg.TokenRefreshMargin, "the default margin is capped at half the period")
	require.Equal(t, "http://127.0.0.1:1", c.cfg.BaseURL)
	tr, ok := c.cfg.HTTPClient.Transport.(*http.Transport)
	require.True(t, ok)
	require.Equal(t, 256, tr.MaxIdleConnsPerHost)

	c, err = New(Config{BaseURL: "http://127.0.0.1:1", AccessKey: "a", SecretKey: "s"})
	require.NoError(t, err)
	require.Equal(t, DefaultTokenPeriod, c.cfg.TokenPeriod)
	require.Equal(t, DefaultTokenRefreshMargin, c.cfg.TokenRefreshMargin)
}

func TestFaceSearchSpellings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		body    string
		wantSig string
		wantIDs []string
	}{
		{"seed page example", seedSuccess, "ed8b21c0c87ad617", []string{"2fe2cff789245240", "406d5049c4db9723"}},
		{"new spelling", `{"code":"SUCCESS","message":"OK","data":{"signatureId":"s1","similarFaceUserIds":["a","b"]},"extra":null,"transactionId":"t","pricingStrategy":"FREE"}`, "s1", []string{"a", "b"}},
		{"both spellings merged", `{"code":"SUCCESS","data":{"signatureId":"s1","simliarFaceUserIds":["a","b"],"similarFaceUserIds":["b","c","a"]}}`, "s1", []string{"a", "b", "c"}},
		{"duplicates in one list", `{"code":"SUCCESS","data":{"signatureId":"s1","simliarFaceUserIds":["a","a"]}}`, "s1", []string{"a"}},
		{"missing list", `{"code":"SUCCESS","data":{"signatureId":"s1"}}`, "s1", []string{}},
		{"null list", `{"code":"SUCCESS","data":{"signatureId":"s1","simliarFaceUserIds":null}}`, "s1", []string{}},
		{"null element", `{"code":"SUCCESS","data":{"signatureId":"s1","similarFaceUserIds":[null,"a"]}}`, "s1", []string{"a"}},
		{"null data", `{"code":"SUCCESS","data":null}`, "asked", []string{}},
		{"unknown fields", `{"code":"SUCCESS","data":{"signatureId":"s1","score":0.9,"simliarFaceUserIds":["a"]},"new":1}`, "s1", []string{"a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			b.vendor.set(&b.vendor.face, func(w http.ResponseWriter, _ *http.Request, _ int64) {
				_, _ = io.WriteString(w, tt.body)
			})
			res, err := b.client.FaceSearch(context.Background(), "asked")
			require.NoError(t, err)
			require.Equal(t, tt.wantSig, res.SignatureID)
			require.Equal(t, tt.wantIDs, res.SimilarFaceUserIDs)
			require.NotNil(t, res.SimilarFaceUserIDs)
		})
	}
}

func TestFaceSearchRequest(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.vendor.set(&b.vendor.face, func(w http.ResponseWriter, r *http.Request, _ int64) {
		raw, _ := io.ReadAll(r.Body)
		if r.Header.Get("X-ACCESS-TOKEN") != "tok-1" || string(raw) != `{"signatureId":"sig-9"}` ||
			r.Header.Get("Content-Type") != "application/json" {
			writeEnvelope(w, http.StatusOK, "PARAMETER_ERROR", "unexpected request "+string(raw), nil)
			return
		}
		_, _ = io.WriteString(w, seedSuccess)
	})
	res, err := b.client.FaceSearch(context.Background(), "sig-9")
	require.NoError(t, err)
	require.Equal(t, "ed8b21c0c87ad617", res.TransactionID)

	_, err = b.client.FaceSearch(context.Background(), "")
	e := requireError(t, err)
	require.True(t, e.Permanent())
	require.EqualValues(t, 1, b.vendor.faceCalls.Load(), "an empty signatureId is not sent")
}

func TestGetResult(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body string
		want Result
	}{
		{
			name: "pass",
			body: `{"code":"SUCCESS","message":"OK","data":{"overallResult":"PASS","submissionCompleted":true,"errorCode":null,"inputParameters":{"userId":"u-1","bizId":"b"},"signatureId":"s1","images":{"a":"http://x"}},"extra":null,"transactionId":"tx1","pricingStrategy":"FREE"}`,
			want: Result{SignatureID: "s1", OverallResult: "PASS", SubmissionCompleted: true, UserID: "u-1", TransactionID: "tx1"},
		},
		{
			name: "fail with error code",
			body: `{"code":"SUCCESS","data":{"overallResult":"FAIL","submissionCompleted":true,"errorCode":"LIVENESS_FAIL","inputParameters":{"userId":"u-2"}}}`,
			want: Result{SignatureID: "asked", OverallResult: "FAIL", SubmissionCompleted: true, ErrorCode: "LIVENESS_FAIL", UserID: "u-2"},
		},
		{
			name: "incomplete, optional fields missing",
			body: `{"code":"SUCCESS","data":{"overallResult":"INCOMPLETE"}}`,
			want: Result{SignatureID: "asked", OverallResult: "INCOMPLETE"},
		},
		{
			name: "inputParameters as a JSON string, numeric userId",
			body: `{"code":"SUCCESS","data":{"overallResult":"PASS","submissionCompleted":true,"inputParameters":"{\"userId\":42}"}}`,
			want: Result{SignatureID: "asked", OverallResult: "PASS", SubmissionCompleted: true, UserID: "42"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			b.vendor.set(&b.vendor.getResult, func(w http.ResponseWriter, r *http.Request, _ int64) {
				var req map[string]string
				if json.NewDecoder(r.Body).Decode(&req) != nil || req["signatureId"] != "asked" || req["returnImageType"] != "URL" {
					writeEnvelope(w, http.StatusOK, "PARAMETER_ERROR", "bad request", nil)
					return
				}
				_, _ = io.WriteString(w, tt.body)
			})
			res, err := b.client.GetResult(context.Background(), "asked")
			require.NoError(t, err)
			require.Equal(t, tt.want, *res)
		})
	}
}

func TestVendorCodes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code string
		kind Kind
	}{
		{"PARAMETER_ERROR", KindPermanent},
		{"EMPTY_PARAMETER_ERROR", KindPermanent},
		{"SIGNATURE_NOT_EXIST", KindPermanent},
		{"CLIENT_ERROR", KindPermanent},
		{"ERROR", KindTransient},
		{"RETRY_LATER", KindTransient},
		{"SERVICE_BUSY", KindRateLimited},
		{"IAM_FAILED", KindAccount},
		{"INSUFFICIENT_BALANCE", KindAccount},
		{"OVER_QUERY_LIMIT", KindAccount},
		{"ACCOUNT_DISABLED", KindAccount},
		{"SERVICE_DISABLED", KindAccount},
		{"ACCESS_DENIED", KindAccount},
		{"SOMETHING_NEW", KindTransient},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.kind, Classify(tt.code))

			b := setup(t, nil)
			b.vendor.set(&b.vendor.face, func(w http.ResponseWriter, _ *http.Request, _ int64) {
				writeEnvelope(w, http.StatusOK, tt.code, "some message", nil)
			})
			_, err := b.client.FaceSearch(context.Background(), "sig")
			e := requireError(t, err)
			require.Equal(t, EndpointFaceSearch, e.Op)
			require.Equal(t, tt.code, e.Code)
			require.Equal(t, tt.kind, e.Kind)
			require.Equal(t, "0123456789abcdef", e.TransactionID)
			require.Equal(t, http.StatusOK, e.HTTPStatus)
			require.Equal(t, tt.kind == KindTransient || tt.kind == KindRateLimited, e.Transient())
			require.Equal(t, tt.kind == KindRateLimited, e.RateLimited())
			require.Equal(t, tt.kind == KindPermanent, e.Permanent())
			require.Equal(t, tt.kind == KindAccount, e.AccountLevel())
		})
	}
}

func TestHTTPFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		status     int
		retryAfter string
		body       string
		wantCode   string
		wantKind   Kind
		wantRetry  time.Duration
	}{
		{"busy as 200 with Retry-After", 200, "10s", `{"code":"SERVICE_BUSY","message":"busy","data":null}`, "SERVICE_BUSY", KindRateLimited, 10 * time.Second},
		{"busy as 429 with envelope", 429, "1.5s", `{"code":"SERVICE_BUSY","message":"busy","data":null}`, "SERVICE_BUSY", KindRateLimited, 1500 * time.Millisecond},
		{"429 without envelope, seconds", 429, "7", `Too Many Requests`, "HTTP_429", KindRateLimited, 7 * time.Second},
		{"429 with another code", 429, "", `{"code":"ERROR","message":"x"}`, "ERROR", KindRateLimited, 0},
		{"500 text", 500, "", `Internal Server Error`, "HTTP_500", KindTransient, 0},
		{"503 with Retry-After", 503, "2", `<html>unavailable</html>`, "HTTP_503", KindTransient, 2 * time.Second},
		{"502 empty", 502, "", ``, "HTTP_502", KindTransient, 0},
		{"500 with ERROR envelope", 500, "", `{"code":"ERROR","message":"Server error"}`, "ERROR", KindTransient, 0},
		{"400 with CLIENT_ERROR envelope", 400, "", `{"code":"CLIENT_ERROR","message":"HTTP 400 - Bad Request"}`, "CLIENT_ERROR", KindPermanent, 0},
		{"404 text (wrong base URL: a configuration fault)", 404, "", `not found`, "HTTP_404", KindAccount, 0},
		{"400 text", 400, "", `bad request`, "HTTP_400", KindPermanent, 0},
		{"400 text", 400, "", `bad`, "HTTP_400", KindPermanent, 0},
		{"401 text", 401, "", `unauthorized`, "HTTP_401", KindAccount, 0},
		{"403 text", 403, "", `forbidden`, "HTTP_403", KindAccount, 0},
		{"200 non-JSON", 200, "", `<html>proxy login</html>`, "BAD_RESPONSE", KindTransient, 0},
		{"200 JSON without code", 200, "", `{"data":{}}`, "BAD_RESPONSE", KindTransient, 0},
		{"200 SUCCESS with bad data", 200, "", `{"code":"SUCCESS","data":{"simliarFaceUserIds":"a,b"}}`, "BAD_RESPONSE", KindTransient, 0},
		{"500 SUCCESS envelope", 500, "", `{"code":"SUCCESS","data":null}`, "HTTP_500", KindTransient, 0},
		{"200 oversized", 200, "", `{"code":"SUCCESS","message":"` + strings.Repeat("x", maxBodyBytes) + `"}`, "BAD_RESPONSE", KindTransient, 0},
		{"Retry-After capped", 429, "86400", ``, "HTTP_429", KindRateLimited, maxRetryAfter},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			b.vendor.set(&b.vendor.face, func(w http.ResponseWriter, _ *http.Request, _ int64) {
				if tt.retryAfter != "" {
					w.Header().Set("Retry-After", tt.retryAfter)
				}
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			})
			_, err := b.client.FaceSearch(context.Background(), "sig")
			e := requireError(t, err)
			require.Equal(t, tt.wantCode, e.Code)
			require.Equal(t, tt.wantKind, e.Kind)
			require.Equal(t, tt.status, e.HTTPStatus)
			require.Equal(t, tt.wantRetry, e.RetryAfter)
			require.Less(t, len(e.Error()), 1024, "the error text stays short")
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"10s", 10 * time.Second},
		{"10", 10 * time.Second},
		{"1.5s", 1500 * time.Millisecond},
		{"1.5", 1500 * time.Millisecond},
		{" 3 ", 3 * time.Second},
		{"250ms", 250 * time.Millisecond},
		{"0", 0},
		{"-5", 0},
		{"-5s", 0},
		{"NaN", 0},
		{"soon", 0},
		{"600", maxRetryAfter},
		{"1h", maxRetryAfter},
		{"+Inf", maxRetryAfter},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second},
		{now.Add(-30 * time.Second).Format(http.TimeFormat), 0},
		{now.Add(time.Hour).Format(http.TimeFormat), maxRetryAfter},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, parseRetryAfter(tt.in, now), "Retry-After %q", tt.in)
	}
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) { c.Timeout = 100 * time.Millisecond })
	b.vendor.set(&b.vendor.face, func(w http.ResponseWriter, r *http.Request, _ int64) {
		hang(r)
	})
	start := time.Now()
	_, err := b.client.FaceSearch(context.Background(), "sig")
	e := requireError(t, err)
	require.Equal(t, CodeTimeout, e.Code)
	require.True(t, e.Transient())
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(start), 3*time.Second)
}

func TestCallerCancellation(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	b.vendor.set(&b.vendor.face, func(w http.ResponseWriter, r *http.Request, _ int64) {
		cancel()
		hang(r)
	})
	_, err := b.client.FaceSearch(ctx, "sig")
	e := requireError(t, err)
	require.Equal(t, CodeCanceled, e.Code)
	require.ErrorIs(t, err, context.Canceled)
}

func TestNetworkError(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there any more: connection refused
	c, err := New(Config{BaseURL: url, AccessKey: testAccessKey, SecretKey: testSecretKey})
	require.NoError(t, err)
	_, err = c.FaceSearch(context.Background(), "sig")
	e := requireError(t, err)
	require.Equal(t, CodeNetwork, e.Code)
	require.Equal(t, EndpointGenerateToken, e.Op)
	require.True(t, e.Transient())
	require.NotContains(t, err.Error(), testSecretKey)
}

func TestConnectionDroppedMidAnswer(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.vendor.set(&b.vendor.face, func(w http.ResponseWriter, _ *http.Request, _ int64) {
		w.Header().Set("Content-Length", "1000")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, `{"code":"SUC`)
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	})
	_, err := b.client.FaceSearch(context.Background(), "sig")
	e := requireError(t, err)
	require.Equal(t, CodeNetwork, e.Code)
	require.True(t, e.Transient())
}

func TestTokenRequest(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) { c.TokenPeriod = 2 * time.Hour })
	var got map[string]any
	var gotHeader string
	b.vendor.set(&b.vendor.token, func(w http.ResponseWriter, r *http.Request, _ int64) {
		gotHeader = r.Header.Get("X-ACCESS-TOKEN")
		dec := json.NewDecoder(r.Body)
		dec.UseNumber()
		_ = dec.Decode(&got)
		writeEnvelope(w, http.StatusOK, "SUCCESS", "OK", map[string]any{"token": "t", "expiredTime": b.clock.Now().Add(2 * time.Hour).UnixMilli()})
	})
	_, err := b.client.FaceSearch(context.Background(), "sig")
	require.NoError(t, err)

	ts := b.clock.Now().UnixMilli()
	require.Empty(t, gotHeader)
	require.Equal(t, map[string]any{
		"accessKey":    testAccessKey,
		"timestamp":    json.Number(jsonInt(ts)),
		"signature":    Signature(testAccessKey, testSecretKey, jsonInt(ts)),
		"periodSecond": json.Number("7200"),
	}, got)
	require.Len(t, jsonInt(ts), 13)
}

func jsonInt(n int64) string {
	raw, _ := json.Marshal(n)
	return string(raw)
}

func TestTokenCaching(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) {
		c.TokenPeriod = time.Hour
		c.TokenRefreshMargin = 5 * time.Minute
	})
	var mu sync.Mutex
	seen := map[string]int{}
	last := ""
	b.vendor.set(&b.vendor.face, func(w http.ResponseWriter, r *http.Request, _ int64) {
		mu.Lock()
		last = r.Header.Get("X-ACCESS-TOKEN")
		seen[last]++
		mu.Unlock()
		_, _ = io.WriteString(w, seedSuccess)
	})
	lastToken := func() string {
		mu.Lock()
		defer mu.Unlock()
		return last
	}
	ctx := context.Background()
	for range 20 {
		_, err := b.client.FaceSearch(ctx, "sig")
		require.NoError(t, err)
	}
	require.EqualValues(t, 1, b.vendor.tokenCalls.Load())
	require.Equal(t, map[string]int{"tok-1": 20}, seen)

	// Just before the refresh point the token is still used.
	b.clock.Add(54 * time.Minute)
	_, err := b.client.FaceSearch(ctx, "sig")
	require.NoError(t, err)
	require.EqualValues(t, 1, b.vendor.tokenCalls.Load())

	// Within the margin before expiredTime the still-valid token keeps serving calls while one
	// new token is fetched in the background; calls then move to it.
	b.clock.Add(2 * time.Minute)
	require.Eventually(t, func() bool {
		_, err := b.client.FaceSearch(ctx, "sig")
		return err == nil && lastToken() == "tok-2"
	}, 5*time.Second, time.Millisecond)
	for range 5 {
		_, err = b.client.FaceSearch(ctx, "sig")
		require.NoError(t, err)
		require.Equal(t, "tok-2", lastToken())
	}
	require.EqualValues(t, 2, b.vendor.tokenCalls.Load())
}

func TestTokenRefreshDoesNotBlockCalls(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	_, err := b.client.FaceSearch(context.Background(), "sig")
	require.NoError(t, err)

	release := make(chan struct{})
	defer close(release)
	b.vendor.set(&b.vendor.token, func(w http.ResponseWriter, _ *http.Request, _ int64) {
		<-release // a token endpoint that hangs
	})
	b.clock.Add(57 * time.Minute) // due for refresh, not expired
	start := time.Now()
	for range 10 {
		_, err = b.client.FaceSearch(context.Background(), "sig")
		require.NoError(t, err)
	}
	require.Less(t, time.Since(start), time.Second, "calls with a valid token do not wait for the refresh")
	require.Eventually(t, func() bool { return b.vendor.tokenCalls.Load() == 2 }, 5*time.Second, time.Millisecond)
}

func TestTokenExpiryFromVendorWins(t *testing.T) {
	t.Parallel()
	b := setup(t, nil) // asks for an hour
	b.vendor.set(&b.vendor.token, func(w http.ResponseWriter, _ *http.Request, n int64) {
		// The vendor grants only two minutes.
		writeEnvelope(w, http.StatusOK, "SUCCESS", "OK", map[string]any{"token": "short", "expiredTime": b.clock.Now().Add(2 * time.Minute).UnixMilli()})
	})
	_, err := b.client.FaceSearch(context.Background(), "sig")
	require.NoError(t, err)
	b.clock.Add(59 * time.Second) // before half the granted lifetime, the margin's cap
	_, err = b.client.FaceSearch(context.Background(), "sig")
	require.NoError(t, err)
	require.EqualValues(t, 1, b.vendor.tokenCalls.Load())
	b.clock.Add(2 * time.Second) // past it
	_, err = b.client.FaceSearch(context.Background(), "sig")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return b.vendor.tokenCalls.Load() == 2 }, 5*time.Second, time.Millisecond)
}

func TestTokenConcurrentCallersShareOneFetch(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.vendor.set(&b.vendor.token, func(w http.ResponseWriter, _ *http.Request, n int64) {
		time.Sleep(100 * time.Millisecond) // long enough for every caller to be waiting
		writeEnvelope(w, http.StatusOK, "SUCCESS", "OK", map[string]any{"token": "shared", "expiredTime": b.clock.Now().Add(time.Hour).UnixMilli()})
	})
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for range 100 {
		wg.Go(func() {
			_, err := b.client.FaceSearch(context.Background(), "sig")
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.EqualValues(t, 1, b.vendor.tokenCalls.Load())
	require.EqualValues(t, 100, b.vendor.faceCalls.Load())
}

func TestTokenWaiterCancellation(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	release := make(chan struct{})
	b.vendor.set(&b.vendor.token, func(w http.ResponseWriter, _ *http.Request, n int64) {
		<-release
		writeEnvelope(w, http.StatusOK, "SUCCESS", "OK", map[string]any{"token": "late", "expiredTime": b.clock.Now().Add(time.Hour).UnixMilli()})
	})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := b.client.FaceSearch(ctx, "sig")
	e := requireError(t, err)
	require.Equal(t, CodeTimeout, e.Code)

	// The fetch went on without the caller who gave up, and later callers get its token.
	close(release)
	_, err = b.client.FaceSearch(context.Background(), "sig")
	require.NoError(t, err)
	require.EqualValues(t, 1, b.vendor.tokenCalls.Load())
}

func TestTokenRefreshFailureKeepsValidToken(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	_, err := b.client.FaceSearch(context.Background(), "sig")
	require.NoError(t, err)

	b.vendor.set(&b.vendor.token, func(w http.ResponseWriter, _ *http.Request, _ int64) {
		w.WriteHeader(http.StatusBadGateway)
	})
	b.clock.Add(57 * time.Minute) // due for refresh, not expired
	_, err = b.client.FaceSearch(context.Background(), "sig")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		b.client.tokens.mu.Lock()
		defer b.client.tokens.mu.Unlock()
		return b.client.tokens.flight == nil && !b.client.tokens.retryAt.IsZero()
	}, 5*time.Second, time.Millisecond, "the refresh failed")
	for range 3 {
		_, err = b.client.FaceSearch(context.Background(), "sig")
		require.NoError(t, err)
	}
	require.EqualValues(t, 2, b.vendor.tokenCalls.Load(), "one failed refresh, then a pause before the next")
	b.clock.Add(refreshRetryDelay)
	_, err = b.client.FaceSearch(context.Background(), "sig")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return b.vendor.tokenCalls.Load() == 3 }, 5*time.Second, time.Millisecond, "after the pause, another try")

	b.clock.Add(3 * time.Minute) // now expired: the failure surfaces
	_, err = b.client.FaceSearch(context.Background(), "sig")
	e := requireError(t, err)
	require.Equal(t, EndpointGenerateToken, e.Op)
	require.Equal(t, "HTTP_502", e.Code)
	require.True(t, e.Transient())
}

func TestTokenEndpointErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		status   int
		body     string
		wantCode string
		wantKind Kind
	}{
		{"signature error", 200, `{"code":"PARAMETER_ERROR","message":"Signature error"}`, "PARAMETER_ERROR", KindAccount},
		{"timestamp error", 200, `{"code":"PARAMETER_ERROR","message":"Timestamp error"}`, "PARAMETER_ERROR", KindAccount},
		{"account disabled", 200, `{"code":"ACCOUNT_DISABLED","message":"Account Disabled"}`, "ACCOUNT_DISABLED", KindAccount},
		{"client error", 400, `{"code":"CLIENT_ERROR","message":"HTTP 400 - Bad Request"}`, "CLIENT_ERROR", KindAccount},
		{"server error", 200, `{"code":"ERROR","message":"Server error"}`, "ERROR", KindTransient},
		{"no token in data", 200, `{"code":"SUCCESS","data":{"expiredTime":1}}`, "BAD_RESPONSE", KindTransient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			b.vendor.set(&b.vendor.token, func(w http.ResponseWriter, _ *http.Request, _ int64) {
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			})
			_, err := b.client.GetResult(context.Background(), "sig")
			e := requireError(t, err)
			require.Equal(t, EndpointGenerateToken, e.Op)
			require.Equal(t, tt.wantCode, e.Code)
			require.Equal(t, tt.wantKind, e.Kind)
			require.Zero(t, b.vendor.resultCalls.Load())
		})
	}
}

func TestIAMFailedRetriesOnceWithNewToken(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.vendor.set(&b.vendor.face, func(w http.ResponseWriter, r *http.Request, _ int64) {
		if r.Header.Get("X-ACCESS-TOKEN") == "tok-1" {
			writeEnvelope(w, http.StatusOK, "IAM_FAILED", "token expired", nil)
			return
		}
		_, _ = io.WriteString(w, seedSuccess)
	})
	res, err := b.client.FaceSearch(context.Background(), "sig")
	require.NoError(t, err)
	require.Len(t, res.SimilarFaceUserIDs, 2)
	require.EqualValues(t, 2, b.vendor.tokenCalls.Load())
	require.EqualValues(t, 2, b.vendor.faceCalls.Load())

	// The new token is cached.
	_, err = b.client.FaceSearch(context.Background(), "sig")
	require.NoError(t, err)
	require.EqualValues(t, 2, b.vendor.tokenCalls.Load())
}

func TestIAMFailedTwiceIsAccountLevel(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.vendor.set(&b.vendor.getResult, func(w http.ResponseWriter, _ *http.Request, _ int64) {
		writeEnvelope(w, http.StatusOK, "IAM_FAILED", "not authorised", nil)
	})
	_, err := b.client.GetResult(context.Background(), "sig")
	e := requireError(t, err)
	require.Equal(t, CodeIAMFailed, e.Code)
	require.True(t, e.AccountLevel())
	require.EqualValues(t, 2, b.vendor.tokenCalls.Load(), "exactly one new token")
	require.EqualValues(t, 2, b.vendor.resultCalls.Load(), "exactly one retry")
}

func TestIAMFailedConcurrentCallersFetchOneToken(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	_, err := b.client.FaceSearch(context.Background(), "sig") // caches tok-1
	require.NoError(t, err)
	b.vendor.set(&b.vendor.face, func(w http.ResponseWriter, r *http.Request, _ int64) {
		if r.Header.Get("X-ACCESS-TOKEN") == "tok-1" {
			writeEnvelope(w, http.StatusOK, "IAM_FAILED", "revoked", nil)
			return
		}
		_, _ = io.WriteString(w, seedSuccess)
	})
	b.vendor.set(&b.vendor.token, func(w http.ResponseWriter, _ *http.Request, n int64) {
		time.Sleep(50 * time.Millisecond)
		writeEnvelope(w, http.StatusOK, "SUCCESS", "OK", map[string]any{"token": "tok-" + jsonInt(n), "expiredTime": b.clock.Now().Add(time.Hour).UnixMilli()})
	})
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			_, err := b.client.FaceSearch(context.Background(), "sig")
			require.NoError(t, err)
		})
	}
	wg.Wait()
	require.EqualValues(t, 2, b.vendor.tokenCalls.Load())
}

func TestErrorsNeverHoldSecrets(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) { c.Timeout = 100 * time.Millisecond })
	// The vendor echoes whichever token the request carried: on a loaded machine a token request
	// can time out and the client then holds tok-2, not tok-1, so the test cannot assume which.
	const tokPlaceholder = "{token}"
	var mu sync.Mutex
	tokens := map[string]bool{"tok-1": true}
	echo := func(r *http.Request, msg string) string {
		tok := r.Header.Get("X-ACCESS-TOKEN")
		mu.Lock()
		tokens[tok] = true
		mu.Unlock()
		return strings.ReplaceAll(msg, tokPlaceholder, tok)
	}
	echoes := []string{
		"bad key " + testAccessKey,
		"secret " + testSecretKey + " rejected",
		"token " + tokPlaceholder + " expired",
		`{"X-ACCESS-TOKEN":"` + tokPlaceholder + `"}`,
	}
	var errs []error
	for _, msg := range echoes {
		b.vendor.set(&b.vendor.face, func(w http.ResponseWriter, r *http.Request, _ int64) {
			writeEnvelope(w, http.StatusOK, "PARAMETER_ERROR", echo(r, msg), nil)
		})
		_, err := b.client.FaceSearch(context.Background(), "sig")
		errs = append(errs, err)
	}
	b.vendor.set(&b.vendor.face, func(w http.ResponseWriter, r *http.Request, _ int64) {
		hang(r)
	})
	_, err := b.client.FaceSearch(context.Background(), "sig")
	errs = append(errs, err)
	b.vendor.set(&b.vendor.face, func(w http.ResponseWriter, r *http.Request, _ int64) {
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, echo(r, "token "+tokPlaceholder))
	})
	_, err = b.client.FaceSearch(context.Background(), "sig")
	errs = append(errs, err)
	b.vendor.set(&b.vendor.token, func(w http.ResponseWriter, _ *http.Request, _ int64) {
		writeEnvelope(w, http.StatusOK, "PARAMETER_ERROR", "Signature error for "+testSecretKey, nil)
	})
	b.clock.Add(2 * time.Hour)
	_, err = b.client.GetResult(context.Background(), "sig")
	errs = append(errs, err)

	secrets := []string{testSecretKey, testAccessKey}
	for tok := range tokens {
		if tok != "" {
			secrets = append(secrets, tok)
		}
	}
	for _, err := range errs {
		require.Error(t, err)
		text := err.Error()
		for _, secret := range secrets {
			require.NotContains(t, text, secret)
		}
		e := requireError(t, err)
		for _, secret := range secrets {
			require.NotContains(t, e.Message, secret)
			require.NotContains(t, e.TransactionID, secret)
		}
	}
}

func TestOnCall(t *testing.T) {
	t.Parallel()
	type call struct{ endpoint, code string }
	var mu sync.Mutex
	var calls []call
	b := setup(t, func(c *Config) {
		c.OnCall = func(endpoint, code string, d time.Duration) {
			mu.Lock()
			defer mu.Unlock()
			calls = append(calls, call{endpoint, code})
		}
	})
	b.vendor.set(&b.vendor.face, func(w http.ResponseWriter, r *http.Request, n int64) {
		if n == 1 {
			writeEnvelope(w, http.StatusOK, "IAM_FAILED", "x", nil)
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	_, err := b.client.FaceSearch(context.Background(), "sig")
	require.Error(t, err)
	_, err = b.client.GetResult(context.Background(), "sig")
	require.Error(t, err)
	require.Equal(t, []call{
		{"generate-token", "SUCCESS"},
		{"face-search", "IAM_FAILED"},
		{"generate-token", "SUCCESS"},
		{"face-search", "HTTP_503"},
		{"get-result", "SIGNATURE_NOT_EXIST"},
	}, calls)
}

func TestErrorText(t *testing.T) {
	t.Parallel()
	e := &Error{Op: "face-search", Code: "SERVICE_BUSY", Message: "busy", TransactionID: "tx", HTTPStatus: 429, RetryAfter: time.Second, Kind: KindRateLimited}
	require.Equal(t, "advance face-search: SERVICE_BUSY: busy (transaction tx, http 429, retry after 1s)", e.Error())
	cause := errors.New("dial tcp: connection refused")
	e = &Error{Op: "get-result", Code: "NETWORK", Err: cause}
	require.Equal(t, "advance get-result: NETWORK: dial tcp: connection refused", e.Error())
	require.ErrorIs(t, e, cause)
	require.Equal(t, "rate_limited", KindRateLimited.String())
}
