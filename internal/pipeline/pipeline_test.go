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

func TestRouteKeyDecodesOnceAndHandsTheEventToHandle(t *testing.T) {
	t.Parallel()
	regions, err := region.NewRegistry(duplicate.DefaultRegion, region.New(duplicate.DefaultRegion, nil, nil))
	require.NoError(t, err)
	h := New(Config{EventOptions: duplicate.DecodeOptions{MaxBytes: 1024}, Regions: regions, Metrics: metrics.New(metrics.Series{})})

	// A key that is not the signatureId is not trusted: two copies of one verification under two
	// keys would run at once and both be billed.
	keyed := kafka.Message{Topic: "t", Partition: 0, Offset: 1, Key: []byte("k"), Value: []byte(`{"signatureId":"s1","type":"COMPLETED"}`)}
	require.Equal(t, []byte("s1"), h.RouteKey(keyed), "the decoded signatureId, not the producer's key")
	_, kept := h.pending.Load(position{"t", 0, 1})
	require.True(t, kept, "decoded once, kept for Handle")

	unkeyed := kafka.Message{Topic: "t", Partition: 0, Offset: 2, Value: []byte(`{"signatureId":"s2","type":"COMPLETED"}`)}
	require.Equal(t, []byte("s2"), h.RouteKey(unkeyed))
	ev, _, err := h.decoded(unkeyed)
	require.NoError(t, err)
	require.Equal(t, "s2", ev.SignatureID)
	_, kept = h.pending.Load(position{"t", 0, 2})
	require.False(t, kept, "Handle takes the decoded event: nothing stays behind")

	bad := kafka.Message{Topic: "t", Partition: 0, Offset: 3, Value: []byte(`{"signatureId":"s3","type":"COMPLETED","userId":7}`)}
	require.Equal(t, []byte("s3"), h.RouteKey(bad), "a bad event is still serialised by its signatureId")
	_, _, err = h.decoded(bad)
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
	require.Error(t, main.Handle(context.Background(), msg))
	require.Error(t, parked.Handle(context.Background(), msg))

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Contains(t, rec.Body.String(), "\ndoppel_events_consumed_total 1\n")
}
