package httpapi_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/harness/testinfra"
	"github.com/doppelhq/doppel/internal/httpapi"
	"github.com/doppelhq/doppel/internal/topic"
)

// Standard Webhooks secrets of the test servers: the specification's example secret, and a second
// one as during a rotation.
var (
	signingSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	rotatedSecret = "whsec_" + base64.StdEncoding.EncodeToString([]byte("doppel-rotated-signing-key-01234"))
	unknownSecret = "whsec_" + base64.StdEncoding.EncodeToString([]byte("a-signing-key-nobody-configured!"))
)

// withWebhooks configures Standard Webhooks signing and replay protection in the test's own schema.
func withWebhooks(secrets ...string) func(*httpapi.Config) {
	if len(secrets) == 0 {
		secrets = []string{signingSecret}
	}
	return func(c *httpapi.Config) {
		c.CallbackSigningSecrets = secrets
		c.Deliveries = c.Store.(httpapi.Deliveries)
	}
}

// librarySign signs as a producer would, with the specification's own Go library.
func librarySign(t *testing.T, secret, id string, at time.Time, body string) string {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	require.NoError(t, err)
	sig, err := wh.Sign(id, at, []byte(body))
	require.NoError(t, err)
	return sig
}

// handSign follows the specification's text with crypto/hmac alone, independently of the library
// the server verifies with.
func handSign(secret, id, timestamp, body string) string {
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + timestamp + "." + body))
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// webhook returns the three headers of a delivery signed at at under secret.
func webhook(t *testing.T, secret, id string, at time.Time, body string) map[string]string {
	return map[string]string{httpapi.WebhookIDHeader: id, httpapi.WebhookTimestampHeader: strconv.FormatInt(at.Unix(), 10),
		httpapi.WebhookSignatureHeader: librarySign(t, secret, id, at, body)}
}

func TestOurSigningFollowsTheSpecificationsTestVector(t *testing.T) {
	t.Parallel()
	// The vector the specification's libraries are tested against.
	const want = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	id, body := "msg_p5jXN8AQM9LWM0D4loKWxJek", `{"test": 2432232314}`
	require.Equal(t, want, handSign(signingSecret, id, "1614265330", body))
	require.Equal(t, want, librarySign(t, signingSecret, id, time.Unix(1614265330, 0), body))
}

func TestAStandardWebhookIsPublishedOnceOnTheTopic(t *testing.T) {
	t.Parallel()
	topicName := testinfra.Topics(t, 3, "idv.completed")[0]
	pub := topic.NewPublisher(testinfra.Brokers(t), topicName, "callback")
	t.Cleanup(func() { _ = pub.Close() })
	var mu sync.Mutex
	counted := map[[2]string]int{}
	f := setup(t, withWebhooks(), func(c *httpapi.Config) {
		c.Events = pub
		c.OnCallback = func(auth, outcome string) { mu.Lock(); counted[[2]string{auth, outcome}]++; mu.Unlock() }
	})

	header := webhook(t, signingSecret, "msg_2bUO1SfV0Q7pUqSkmzMB6pVqaDa", time.Now(), vendorBody)
	res := f.callback("", vendorBody, header)
	require.Equal(t, http.StatusOK, res.status, string(res.body))
	require.JSONEq(t, `{"status":"accepted","signatureId":"730baa5ab2e34e53"}`, string(res.body))

	// The producer's retry (or a replay) of the same delivery: answered 200, so the producer stops,
	// and not published again.
	res = f.callback("", vendorBody, header)
	require.Equal(t, http.StatusOK, res.status, string(res.body))
	require.JSONEq(t, `{"status":"duplicate"}`, string(res.body))
	// Signed again at another time, the same id is still the same delivery.
	res = f.callback("", vendorBody, webhook(t, signingSecret, "msg_2bUO1SfV0Q7pUqSkmzMB6pVqaDa", time.Now().Add(-time.Minute), vendorBody))
	require.JSONEq(t, `{"status":"duplicate"}`, string(res.body))

	msgs := testinfra.ReadAll(t, topicName, 1, 30*time.Second)
	require.Len(t, msgs, 1)
	require.Equal(t, "730baa5ab2e34e53", string(msgs[0].Key))
	// Acknowledged before each answer: the topic's count is final.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := topic.Messages(ctx, testinfra.Brokers(t), topicName)
	require.NoError(t, err)
	require.EqualValues(t, 1, n, "the duplicates published nothing")
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, map[[2]string]int{{"standard_webhooks", "accepted"}: 1, {"standard_webhooks", "duplicate"}: 2}, counted)
}

func TestEitherSigningSecretIsAcceptedWhileOneIsRotated(t *testing.T) {
	t.Parallel()
	logs := &failureLog{}
	f := setup(t, withWebhooks(signingSecret, rotatedSecret),
		func(c *httpapi.Config) { c.Logger = slog.New(slog.NewJSONHandler(logs, nil)) })
	now := time.Now()
	require.Equal(t, http.StatusOK, f.callback("", vendorBody, webhook(t, signingSecret, "msg_old", now, vendorBody)).status)
	require.Equal(t, http.StatusOK, f.callback("", vendorBody, webhook(t, rotatedSecret, "msg_new", now, vendorBody)).status)
	// A producer part-way through the rotation sends both signatures; an unknown one beside a good one
	// does no harm.
	both := webhook(t, unknownSecret, "msg_both", now, vendorBody)
	both[httpapi.WebhookSignatureHeader] += " " + librarySign(t, rotatedSecret, "msg_both", now, vendorBody)
	require.Equal(t, http.StatusOK, f.callback("", vendorBody, both).status)

	e := f.callback("", vendorBody, webhook(t, unknownSecret, "msg_unknown", now, vendorBody)).
		apiError(t, http.StatusUnauthorized, "unauthorized")
	require.Contains(t, e.Message, "webhook-signature")
	require.Len(t, f.events.published(), 3)
	for _, secret := range []string{signingSecret, rotatedSecret, unknownSecret} {
		key := strings.TrimPrefix(secret, "whsec_")
		require.NotContains(t, e.Message, key)
		require.NotContains(t, logs.String(), key)
	}
}

func TestABadStandardWebhookSignatureIs401(t *testing.T) {
	t.Parallel()
	f := setup(t, withWebhooks())
	now := time.Now()
	ts := strconv.FormatInt(now.Unix(), 10)
	good := func() map[string]string { return webhook(t, signingSecret, "msg_good", now, vendorBody) }
	edit := func(k, v string) map[string]string { h := good(); h[k] = v; return h }
	for name, tc := range map[string]struct {
		body   string
		header map[string]string
		says   string
	}{
		"another body":       {vendorBody + " ", good(), "webhook-signature"},
		"another id":         {vendorBody, edit(httpapi.WebhookIDHeader, "msg_other"), "webhook-signature"},
		"another timestamp":  {vendorBody, edit(httpapi.WebhookTimestampHeader, strconv.FormatInt(now.Unix()-1, 10)), "webhook-signature"},
		"not base64":         {vendorBody, edit(httpapi.WebhookSignatureHeader, "v1,zz"), "webhook-signature"},
		"another version":    {vendorBody, edit(httpapi.WebhookSignatureHeader, "v2"+strings.TrimPrefix(good()[httpapi.WebhookSignatureHeader], "v1")), "webhook-signature"},
		"hex, not base64":    {vendorBody, edit(httpapi.WebhookSignatureHeader, "v1,"+hex.EncodeToString([]byte("x"))), "webhook-signature"},
		"no webhook-id":      {vendorBody, edit(httpapi.WebhookIDHeader, ""), "webhook-id"},
		"no timestamp":       {vendorBody, edit(httpapi.WebhookTimestampHeader, ""), "webhook-timestamp"},
		"a timestamp in ms":  {vendorBody, edit(httpapi.WebhookTimestampHeader, ts+"000"), "webhook-timestamp"},
		"a signed timestamp": {vendorBody, edit(httpapi.WebhookTimestampHeader, "+"+ts), "webhook-timestamp"},
		"an id with a space": {vendorBody, map[string]string{httpapi.WebhookIDHeader: "msg 1", httpapi.WebhookTimestampHeader: ts, httpapi.WebhookSignatureHeader: handSign(signingSecret, "msg 1", ts, vendorBody)}, "webhook-id"},
		"an id of 257 bytes": {vendorBody, webhook(t, signingSecret, strings.Repeat("m", 257), now, vendorBody), "webhook-id"},
	} {
		e := f.callback("", tc.body, tc.header).apiError(t, http.StatusUnauthorized, "unauthorized")
		require.Contains(t, e.Message, tc.says, name)
	}
	require.Empty(t, f.events.published())
	// A hand-made signature of the specification's content is accepted: no library is needed.
	res := f.callback("", vendorBody, map[string]string{httpapi.WebhookIDHeader: "msg_by_hand",
		httpapi.WebhookTimestampHeader: ts, httpapi.WebhookSignatureHeader: handSign(signingSecret, "msg_by_hand", ts, vendorBody)})
	require.Equal(t, http.StatusOK, res.status, string(res.body))
}

func TestAStaleOrFutureWebhookTimestampIsRefused(t *testing.T) {
	t.Parallel()
	f := setup(t, withWebhooks())
	require.Equal(t, http.StatusOK, f.callback("", vendorBody, webhook(t, signingSecret, "msg_4m_old", time.Now().Add(-4*time.Minute), vendorBody)).status)
	require.Equal(t, http.StatusOK, f.callback("", vendorBody, webhook(t, signingSecret, "msg_4m_ahead", time.Now().Add(4*time.Minute), vendorBody)).status)
	for name, at := range map[string]time.Time{"six minutes old": time.Now().Add(-6 * time.Minute),
		"six minutes ahead": time.Now().Add(6 * time.Minute), "a day old": time.Now().Add(-24 * time.Hour)} {
		e := f.callback("", vendorBody, webhook(t, signingSecret, "msg_"+strings.ReplaceAll(name, " ", "_"), at, vendorBody)).
			apiError(t, http.StatusUnauthorized, "unauthorized")
		require.Contains(t, e.Message, "webhook-timestamp is more than 5 minutes away", name)
	}
	require.Len(t, f.events.published(), 2)
}

func TestASignatureForOneRegionIsRefusedOnAnothersPath(t *testing.T) {
	t.Parallel()
	f := setup(t, withWebhooks(), func(c *httpapi.Config) { c.Regions = []string{"sg", "th"} })
	sgBody := `{"signatureId":"sig-sg","type":"COMPLETED","region":"sg"}`
	header := webhook(t, signingSecret, "msg_for_sg", time.Now(), sgBody)

	// Captured on its way to Singapore and sent to Thailand's path first: refused, and the id is
	// not taken from the genuine delivery.
	e := f.callback("/th", sgBody, header).apiError(t, http.StatusUnauthorized, "unauthorized")
	require.Contains(t, e.Message, `names region "sg", not "th"`)
	e = f.callback("", sgBody, header).apiError(t, http.StatusUnauthorized, "unauthorized")
	require.Contains(t, e.Message, "/v1/callbacks/advance/sg")
	res := f.callback("/sg", sgBody, header)
	require.Equal(t, http.StatusOK, res.status, string(res.body))
	require.JSONEq(t, `{"status":"accepted","signatureId":"sig-sg"}`, string(res.body))
	msgs := f.events.published()
	require.Len(t, msgs, 1)
	ev, err := duplicate.DecodeEvent([]byte(msgs[0][1]), duplicate.DecodeOptions{})
	require.NoError(t, err)
	require.Equal(t, "sg", ev.Region)

	// A signed body without a region cannot go to a regional path: its signature would be good on
	// every one of them.
	bare := webhook(t, signingSecret, "msg_bare", time.Now(), vendorBody)
	e = f.callback("/th", vendorBody, bare).apiError(t, http.StatusUnauthorized, "unauthorized")
	require.Contains(t, e.Message, `must carry "region":"th"`)
	require.Equal(t, http.StatusOK, f.callback("", vendorBody, bare).status, "the path without a region takes it")
	// Case and surrounding blanks do not matter, as in the path.
	upper := `{"signatureId":"sig-th","type":"COMPLETED","region":" TH "}`
	require.Equal(t, http.StatusOK, f.callback("/th", upper, webhook(t, signingSecret, "msg_upper", time.Now(), upper)).status)
	notAString := `{"signatureId":"sig-th","type":"COMPLETED","region":7}`
	f.callback("/th", notAString, webhook(t, signingSecret, "msg_7", time.Now(), notAString)).
		apiError(t, http.StatusBadRequest, "invalid_input")

	// The deprecated signature is bound the same way when its body names a region; one that names
	// none is accepted on a regional path as its producers send it today (it is deprecated for that:
	// its replay protection, keyed on the MAC, then makes a second path's copy a duplicate).
	now := strconv.FormatInt(time.Now().Unix(), 10)
	f.callback("/th", sgBody, map[string]string{httpapi.TimestampHeader: now, httpapi.SignatureHeader: httpapi.Sign(hmacSecret, now, []byte(sgBody))}).
		apiError(t, http.StatusUnauthorized, "unauthorized")
	require.Len(t, f.events.published(), 3)
	legacyBare := map[string]string{httpapi.TimestampHeader: now, httpapi.SignatureHeader: httpapi.Sign(hmacSecret, now, []byte(vendorBody))}
	require.Equal(t, http.StatusOK, f.callback("/th", vendorBody, legacyBare).status)
	res = f.callback("/sg", vendorBody, legacyBare)
	require.Equal(t, http.StatusOK, res.status)
	require.JSONEq(t, `{"status":"duplicate"}`, string(res.body), "the same MAC on another path")
	require.Len(t, f.events.published(), 4)
	// The vendor's own callback (the token) carries no region and needs none.
	require.Equal(t, http.StatusOK, f.callback("/th?token="+callbackToken, vendorBody, nil).status)
}

func TestADeprecatedSignatureReplayedIsADuplicate(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	counted := map[[2]string]int{}
	f := setup(t, withWebhooks(), func(c *httpapi.Config) {
		c.OnCallback = func(auth, outcome string) { mu.Lock(); counted[[2]string{auth, outcome}]++; mu.Unlock() }
	})
	now := strconv.FormatInt(time.Now().Unix(), 10)
	sig := httpapi.Sign(hmacSecret, now, []byte(vendorBody))
	signed := func(sig string) map[string]string {
		return map[string]string{httpapi.SignatureHeader: sig, httpapi.TimestampHeader: now}
	}
	res := f.callback("", vendorBody, signed(sig))
	require.JSONEq(t, `{"status":"accepted","signatureId":"730baa5ab2e34e53"}`, string(res.body))
	// The same MAC however it is written is the same delivery.
	for _, again := range []string{sig, strings.TrimPrefix(sig, "sha256="), "sha256=" + strings.ToUpper(strings.TrimPrefix(sig, "sha256="))} {
		res := f.callback("", vendorBody, signed(again))
		require.Equal(t, http.StatusOK, res.status, string(res.body))
		require.JSONEq(t, `{"status":"duplicate"}`, string(res.body))
	}
	require.Len(t, f.events.published(), 1)
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, map[[2]string]int{{"x_doppel_signature", "accepted"}: 1, {"x_doppel_signature", "duplicate"}: 3}, counted,
		"the deprecated form is counted apart, to see who still uses it")
}

func TestTheTokenInTheQueryCanBeRefused(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *httpapi.Config) { c.CallbackTokenHeaderOnly = true })
	for _, query := range []string{"?token=" + callbackToken, "?token=wrong", "?token="} {
		e := f.callback(query, vendorBody, nil).apiError(t, http.StatusUnauthorized, "unauthorized")
		require.Contains(t, e.Message, httpapi.CallbackTokenHeader, query)
		require.Contains(t, e.Message, "DOPPEL_CALLBACK_TOKEN_IN_QUERY=false")
		require.NotContains(t, e.Message, callbackToken)
	}
	// Even beside the header: the URL still put the token in access logs.
	f.callback("?token="+callbackToken, vendorBody, map[string]string{httpapi.CallbackTokenHeader: callbackToken}).
		apiError(t, http.StatusUnauthorized, "unauthorized")
	res := f.callback("", vendorBody, map[string]string{httpapi.CallbackTokenHeader: callbackToken})
	require.Equal(t, http.StatusOK, res.status, string(res.body))
	require.Len(t, f.events.published(), 1)
	// The help of a request with no credentials no longer offers the query form.
	e := f.callback("", vendorBody, nil).apiError(t, http.StatusUnauthorized, "unauthorized")
	require.NotContains(t, e.Message, "?token=")
}

func TestAFailedPublishLetsTheSameDeliveryBeRetried(t *testing.T) {
	t.Parallel()
	f := setup(t, withWebhooks())
	header := webhook(t, signingSecret, "msg_retry", time.Now(), vendorBody)
	f.events.mu.Lock()
	f.events.err = fmt.Errorf("kafka: leader not available")
	f.events.mu.Unlock()
	f.callback("", vendorBody, header).apiError(t, http.StatusServiceUnavailable, "publish_failed")

	f.events.mu.Lock()
	f.events.err = nil
	f.events.mu.Unlock()
	res := f.callback("", vendorBody, header)
	require.JSONEq(t, `{"status":"accepted","signatureId":"730baa5ab2e34e53"}`, string(res.body), "the id was released")
	require.JSONEq(t, `{"status":"duplicate"}`, string(f.callback("", vendorBody, header).body))
	require.Len(t, f.events.published(), 1)
}

// gatedPublisher holds every publish until release is closed, so that a test can send a second
// delivery while the first is being published.
type gatedPublisher struct {
	recordingPublisher
	started chan struct{}
	release chan struct{}
}

func (p *gatedPublisher) Publish(ctx context.Context, key, value []byte) error {
	p.started <- struct{}{}
	<-p.release
	return p.recordingPublisher.Publish(ctx, key, value)
}

func TestTwoConcurrentDeliveriesOfOneIDPublishOnce(t *testing.T) {
	t.Parallel()
	gate := &gatedPublisher{started: make(chan struct{}, 10), release: make(chan struct{})}
	f := setup(t, withWebhooks(), func(c *httpapi.Config) { c.Events = gate })
	header := webhook(t, signingSecret, "msg_twice", time.Now(), vendorBody)

	first := make(chan response, 1)
	go func() { first <- f.callback("", vendorBody, header) }()
	<-gate.started // the first holds the id and is publishing

	// The second, from another instance as much as from this one (the claim is in PostgreSQL): told
	// to retry, since the first may yet fail.
	second := f.callback("", vendorBody, header)
	second.apiError(t, http.StatusConflict, "delivery_in_flight")
	require.NotEmpty(t, second.header.Get("Retry-After"))

	close(gate.release)
	res := <-first
	require.Equal(t, http.StatusOK, res.status, string(res.body))
	require.JSONEq(t, `{"status":"duplicate"}`, string(f.callback("", vendorBody, header).body), "the retry")
	require.Len(t, gate.published(), 1)

	// Many at once: exactly one publishes, whatever the order.
	header = webhook(t, signingSecret, "msg_many", time.Now(), vendorBody)
	var wg sync.WaitGroup
	answers := make(chan response, 8)
	for range 8 {
		wg.Go(func() { answers <- f.callback("", vendorBody, header) })
	}
	wg.Wait()
	close(answers)
	accepted := 0
	for a := range answers {
		var body map[string]string
		if a.status == http.StatusOK {
			require.NoError(t, json.Unmarshal(a.body, &body))
			if body["status"] == "accepted" {
				accepted++
			}
			continue
		}
		a.apiError(t, http.StatusConflict, "delivery_in_flight")
	}
	require.Equal(t, 1, accepted)
	require.Len(t, gate.published(), 2)
}

func TestExpiredDeliveryIDsAreSweptInTheBackground(t *testing.T) {
	t.Parallel()
	f := setup(t, withWebhooks())
	require.Equal(t, http.StatusOK, f.callback("", vendorBody, webhook(t, signingSecret, "msg_expired", time.Now(), vendorBody)).status)
	require.Equal(t, http.StatusOK, f.callback("", vendorBody, webhook(t, signingSecret, "msg_live", time.Now(), vendorBody)).status)
	// One id's window has passed (its timestamp would be refused now).
	_, err := f.pool.Exec(context.Background(), `UPDATE callback_deliveries
SET expires_at = now() - interval '1 second', claimed_until = now() - interval '1 second' WHERE delivery_id = 'msg_expired'`)
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.server.SweepDeliveries(ctx, 20*time.Millisecond) }()
	testinfra.Eventually(t, 10*time.Second, func() bool {
		var n int
		require.NoError(t, f.pool.QueryRow(context.Background(), `SELECT count(*) FROM callback_deliveries`).Scan(&n))
		return n == 1
	}, "the expired id is deleted, the live one kept")
	cancel()
	require.NoError(t, <-done)
	require.JSONEq(t, `{"status":"duplicate"}`,
		string(f.callback("", vendorBody, webhook(t, signingSecret, "msg_live", time.Now(), vendorBody)).body))
}

// A request that carries signing headers says it is signed: malformed ones are refused even beside
// a valid token (schemathesis found `webhook-timestamp: {}` with the token accepted, against the
// header's documented format).
func TestMalformedSigningHeadersAreRefusedEvenWithTheToken(t *testing.T) {
	t.Parallel()
	f := setup(t, withWebhooks())
	for _, header := range []map[string]string{
		{httpapi.WebhookTimestampHeader: "{}"},
		{httpapi.TimestampHeader: "yesterday"},
		{httpapi.WebhookIDHeader: strings.Repeat("m", 257)},
	} {
		f.callback("?token="+callbackToken, vendorBody, header).apiError(t, http.StatusUnauthorized, "unauthorized")
	}
	require.Empty(t, f.events.published(), "nothing published")
	require.Equal(t, http.StatusOK, f.callback("?token="+callbackToken, vendorBody, nil).status, "the token alone still works")
}
