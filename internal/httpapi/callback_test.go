package httpapi_test

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/harness/testinfra"
	"github.com/doppelhq/doppel/internal/httpapi"
	"github.com/doppelhq/doppel/internal/topic"
)

const vendorBody = `{"signatureId":"730baa5ab2e34e53","type":"COMPLETED"}`

func (f *fixture) callback(query, body string, header map[string]string) response {
	f.t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/v1/callbacks/advance"+query, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	f.handler.ServeHTTP(rec, req)
	return response{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
}

func TestCallbackWithTheTokenIsPublishedKeyedBySignature(t *testing.T) {
	t.Parallel()
	f := setup(t)
	res := f.callback("?token="+callbackToken, vendorBody, nil)
	require.Equal(t, http.StatusOK, res.status, string(res.body))
	require.JSONEq(t, `{"status":"accepted","signatureId":"730baa5ab2e34e53"}`, string(res.body))

	// The same callback again is accepted again: the pipeline stores one outcome per signatureId.
	require.Equal(t, http.StatusOK, f.callback("?token="+callbackToken, vendorBody, nil).status)
	msgs := f.events.published()
	require.Len(t, msgs, 2)
	require.Equal(t, "730baa5ab2e34e53", msgs[0][0])
	ev, err := duplicate.DecodeEvent([]byte(msgs[0][1]), duplicate.DecodeOptions{})
	require.NoError(t, err)
	require.Equal(t, duplicate.Event{SignatureID: "730baa5ab2e34e53", Type: "COMPLETED"}, ev)

	// Optional fields may be null, as some producers send them.
	res = f.callback("?token="+callbackToken, `{"signatureId":"s2","type":"COMPLETED","userId":null,"eventId":null,"occurredAt":null}`, nil)
	require.Equal(t, http.StatusOK, res.status, string(res.body))
}

func TestCallbackAuthentication(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.callback("", vendorBody, nil).apiError(t, http.StatusUnauthorized, "unauthorized")
	f.callback("?token=wrong", vendorBody, nil).apiError(t, http.StatusUnauthorized, "unauthorized")
	f.callback("?token="+callbackToken+"x", vendorBody, nil).apiError(t, http.StatusUnauthorized, "unauthorized")
	f.callback("?token=", vendorBody, nil).apiError(t, http.StatusUnauthorized, "unauthorized")
	// An API key is not a callback credential.
	f.callback("", vendorBody, map[string]string{"Authorization": "Bearer " + reviewKey}).
		apiError(t, http.StatusUnauthorized, "unauthorized")

	// Internal producers may sign the timestamp and the raw body instead.
	now := strconv.FormatInt(time.Now().Unix(), 10)
	signed := func(sig string) map[string]string {
		return map[string]string{httpapi.SignatureHeader: sig, httpapi.TimestampHeader: now}
	}
	sig := httpapi.Sign(hmacSecret, now, []byte(vendorBody))
	require.Equal(t, http.StatusOK, f.callback("", vendorBody, signed(sig)).status)
	require.Equal(t, http.StatusOK, f.callback("", vendorBody, signed(strings.TrimPrefix(sig, "sha256="))).status)
	f.callback("", vendorBody+" ", signed(sig)).apiError(t, http.StatusUnauthorized, "unauthorized")
	f.callback("", vendorBody, signed(httpapi.Sign("other-secret-0123456789", now, []byte(vendorBody)))).
		apiError(t, http.StatusUnauthorized, "unauthorized")
	f.callback("", vendorBody, signed("sha256=zz")).apiError(t, http.StatusUnauthorized, "unauthorized")
	require.Len(t, f.events.published(), 2)

	// Nothing configured: the endpoint says what to set.
	off := setup(t, func(c *httpapi.Config) { c.CallbackToken, c.CallbackHMACSecret = "", "" })
	e := off.callback("?token=", vendorBody, nil).apiError(t, http.StatusServiceUnavailable, "not_configured")
	require.Contains(t, e.Message, "DOPPEL_CALLBACK_TOKEN")
}

func TestCallbackRejectsBadBodiesNamingTheField(t *testing.T) {
	t.Parallel()
	f := setup(t)
	for _, bad := range []struct{ body, field string }{
		{`{"type":"COMPLETED"}`, "signatureId"},
		{`{"signatureId":"  ","type":"COMPLETED"}`, "signatureId"},
		{`{"signatureId":"a\u0000b","type":"COMPLETED"}`, "signatureId"},
		{`{"signatureId":"` + strings.Repeat("a", 200) + `","type":"COMPLETED"}`, "signatureId"},
		{`{"signatureId":42,"type":"COMPLETED"}`, "signatureId"},
		{`{"signatureId":"s1"}`, "type"},
		{`{"signatureId":"s1","type":["COMPLETED"]}`, "type"},
		{`{"signatureId":"s1","type":"COMPLETED\u0000"}`, "type"},
		{"{\"signatureId\":\"a\xffb\",\"type\":\"COMPLETED\"}", "signatureId"},
		{`{"signatureId":"a\ud800b","type":"COMPLETED"}`, "signatureId"},
		{`{"signatureId":"s1","type":"COMPLETED"`, ""},
		{`not json`, ""},
		{``, ""},
	} {
		e := f.callback("?token="+callbackToken, bad.body, nil).apiError(t, http.StatusBadRequest, "invalid_input")
		require.Equal(t, bad.field, e.Field, bad.body)
	}
	big := `{"signatureId":"s1","type":"COMPLETED","pad":"` + strings.Repeat("x", 2000) + `"}`
	f.callback("?token="+callbackToken, big, nil).apiError(t, http.StatusRequestEntityTooLarge, "payload_too_large")
	require.Empty(t, f.events.published(), "nothing invalid reaches the topic")
}

func TestCallbackAnswers503WhenThePublishFails(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.events.err = errors.New("kafka: leader not available")
	e := f.callback("?token="+callbackToken, vendorBody, nil).apiError(t, http.StatusServiceUnavailable, "publish_failed")
	require.NotContains(t, e.Message, "leader", "internal details are not returned")
}

// The real broker: a 200 means the event is on the topic, keyed by signatureId.
func TestCallbackIsOnTheTopicWhenAnswered200(t *testing.T) {
	t.Parallel()
	topicName := testinfra.Topics(t, 3, "idv.completed")[0]
	pub := topic.NewPublisher(testinfra.Brokers(t), topicName, "callback")
	t.Cleanup(func() { _ = pub.Close() })
	f := setup(t, func(c *httpapi.Config) { c.Events = pub })

	sigs := []string{"sig-a", "sig-b", "sig-c"}
	for _, s := range sigs {
		body, _ := json.Marshal(map[string]string{"signatureId": s, "type": "COMPLETED"})
		res := f.callback("?token="+callbackToken, string(body), nil)
		require.Equal(t, http.StatusOK, res.status, string(res.body))
	}
	// Acknowledged before the answer: the messages are readable at once.
	msgs := testinfra.ReadAll(t, topicName, len(sigs), 30*time.Second)
	require.Len(t, msgs, len(sigs))
	for _, m := range msgs {
		var ev duplicate.Event
		require.NoError(t, json.Unmarshal(m.Value, &ev))
		require.Equal(t, ev.SignatureID, string(m.Key))
		require.Contains(t, sigs, ev.SignatureID)
	}
}

func TestCallbackAnswers5xxWhenTheBrokerCannotBeReached(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := ln.Addr().String()
	require.NoError(t, ln.Close())
	pub := topic.NewPublisher([]string{closed}, "idv.completed", "callback")
	t.Cleanup(func() { _ = pub.Close() })
	f := setup(t, func(c *httpapi.Config) { c.Events = pub; c.CallbackTimeout = 2 * time.Second })

	start := time.Now()
	res := f.callback("?token="+callbackToken, vendorBody, nil)
	res.apiError(t, http.StatusServiceUnavailable, "publish_failed")
	require.Less(t, time.Since(start), 10*time.Second, "bounded by the callback timeout")
}

// A callback body's region, which only signed producers send, is a string of at most 32 visible
// characters whatever authenticates the request, as the OpenAPI description says (schemathesis
// found a number accepted beside the token).
func TestACallbackBodysRegionMustBeAShortString(t *testing.T) {
	t.Parallel()
	f := setup(t)
	for body, field := range map[string]string{
		`{"signatureId":"s1","type":"COMPLETED","region":7}`:                                 "region",
		`{"signatureId":"s1","type":"COMPLETED","region":"` + strings.Repeat("r", 33) + `"}`: "region",
		`{"signatureId":"s1","type":"COMPLETED","region":"p\u202eh"}`:                        "region",
		`{"signatureId":"s1","type":"COMPLETED","region":null}`:                              "region",
	} {
		e := f.callback("?token="+callbackToken, body, nil).apiError(t, http.StatusBadRequest, "invalid_input")
		require.Equal(t, field, e.Field, body)
	}
	require.Empty(t, f.events.published())
}
