package pipeline

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/consumer"
	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/metrics"
	"github.com/doppelhq/doppel/internal/region"
)

func TestRouteDecodesOnceAndHandsTheEventToHandle(t *testing.T) {
	t.Parallel()
	regions, err := region.NewRegistry(duplicate.DefaultRegion, region.New(duplicate.DefaultRegion, nil, nil))
	require.NoError(t, err)
	h := New(Config{EventOptions: duplicate.DecodeOptions{MaxBytes: 1024}, Regions: regions, Metrics: metrics.New(metrics.Series{})})

	// A key that is not the signatureId is not trusted: two copies of one verification under two
	// keys would run at once and both be billed.
	keyed := kafka.Message{Topic: "t", Partition: 0, Offset: 1, Key: []byte("k"), Value: []byte(`{"signatureId":"s1","type":"COMPLETED"}`)}
	key, routed := h.Route(keyed)
	require.Equal(t, []byte("s1"), key, "the decoded signatureId, not the producer's key")
	d, ok := routed.(*Delivery)
	require.True(t, ok, "the decoded event travels with the message")
	require.NoError(t, d.Err)
	require.Equal(t, "s1", d.Event.SignatureID)
	require.Equal(t, duplicate.DefaultRegion, d.Region.Name, "the region resolved once, at the edge")

	unkeyed := kafka.Message{Topic: "t", Partition: 0, Offset: 2, Value: []byte(`{"signatureId":"s2","type":"COMPLETED"}`)}
	key, _ = h.Route(unkeyed)
	require.Equal(t, []byte("s2"), key)

	bad := kafka.Message{Topic: "t", Partition: 0, Offset: 3, Value: []byte(`{"signatureId":"s3","type":"COMPLETED","userId":7}`)}
	key, routed = h.Route(bad)
	require.Equal(t, []byte("s3"), key, "a bad event is still serialised by its signatureId")
	err = routed.(*Delivery).Err
	require.Equal(t, consumer.DeadLetter, Classify(err).Action)
	require.Equal(t, duplicate.ReasonWrongFieldType, Classify(err).Reason)
}

// An event is counted as consumed once: when a parking topic's handler takes it again, it is not
// counted a second time.
func TestAParkedEventIsCountedAsConsumedOnce(t *testing.T) {
	t.Parallel()
	regions, err := region.NewRegistry(duplicate.DefaultRegion, region.New(duplicate.DefaultRegion, nil, nil))
	require.NoError(t, err)
	m := metrics.New(metrics.Series{})
	bounds := duplicate.DecodeOptions{MaxBytes: 1024}
	main := New(Config{EventOptions: bounds, Regions: regions, Metrics: m})
	parked := New(Config{EventOptions: bounds, Regions: regions, Metrics: m, FromParking: true})

	// Undecodable and without a signatureId: each handler stops before the detector.
	msg := kafka.Message{Topic: "t", Value: []byte(`{"type":"COMPLETED"}`)}
	require.Error(t, main.Handle(context.Background(), consumer.Message{Message: msg}))
	require.Error(t, parked.Handle(context.Background(), consumer.Message{Message: msg}))

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Contains(t, rec.Body.String(), "\ndoppel_events_consumed_total 1\n")
}
