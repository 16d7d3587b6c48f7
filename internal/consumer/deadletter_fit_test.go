package consumer

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"testing"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"
)

func testLetter(key, value []byte, headers ...kafka.Header) letter {
	return newLetter(kafka.Message{Topic: "idv.completed", Partition: 2, Offset: 41, Key: key, Value: value, Headers: headers},
		kafka.Header{Key: HeaderReason, Value: []byte("too_large")},
		kafka.Header{Key: HeaderSourceOffset, Value: []byte("41")})
}

func headerNames(m kafka.Message) []string {
	names := make([]string, len(m.Headers))
	for i, h := range m.Headers {
		names[i] = h.Key
	}
	return names
}

func TestALetterThatFitsIsWholeAndCarriesTheOriginalsSizeAndHash(t *testing.T) {
	t.Parallel()
	value := []byte(`{"signatureId":"s1","type":"COMPLETED"}`)
	m := testLetter([]byte("s1"), value, kafka.Header{Key: "trace-id", Value: []byte("abc")}).fit(DefaultMaxMessageBytes)
	require.Equal(t, value, m.Value)
	require.Equal(t, []byte("s1"), m.Key)
	require.Equal(t, []string{"trace-id", HeaderReason, HeaderSourceOffset, HeaderOriginalSize, HeaderOriginalSHA256}, headerNames(m))
	sum := sha256.Sum256(value)
	require.Equal(t, hex.EncodeToString(sum[:]), header(m, HeaderOriginalSHA256))
	require.Equal(t, strconv.Itoa(len(value)), header(m, HeaderOriginalSize))
	require.Empty(t, header(m, HeaderTruncated))
}

func TestEarlierDeadLetterAnnotationsAreNotCarriedTwice(t *testing.T) {
	t.Parallel()
	m := testLetter([]byte("s1"), []byte("{}"),
		kafka.Header{Key: HeaderReason, Value: []byte("old_reason")},
		kafka.Header{Key: HeaderOriginalSize, Value: []byte("999")}).fit(DefaultMaxMessageBytes)
	require.Equal(t, []string{HeaderReason, HeaderSourceOffset, HeaderOriginalSize, HeaderOriginalSHA256}, headerNames(m))
	require.Equal(t, "too_large", header(m, HeaderReason))
	require.Equal(t, "2", header(m, HeaderOriginalSize))
}

func TestFitCutsTheValueThenTheProducersHeadersThenTheKey(t *testing.T) {
	t.Parallel()
	const limit = 4096
	big := bytes.Repeat([]byte("v"), 10_000)
	bigHeader := kafka.Header{Key: "blob", Value: bytes.Repeat([]byte("h"), 5_000)}

	m := testLetter([]byte("s1"), big, kafka.Header{Key: "trace-id", Value: []byte("abc")}).fit(limit)
	require.Equal(t, limit, RecordBatchSize(m), "the value is cut exactly to the limit")
	require.Equal(t, big[:len(m.Value)], m.Value)
	require.Equal(t, "value", header(m, HeaderTruncated))
	require.Equal(t, "abc", header(m, "trace-id"), "the producer's headers stay while there is room")
	require.Equal(t, "10000", header(m, HeaderOriginalSize))

	m = testLetter([]byte("s1"), big, bigHeader).fit(limit)
	require.LessOrEqual(t, RecordBatchSize(m), limit)
	require.Empty(t, m.Value)
	require.NotContains(t, headerNames(m), "blob")
	require.Equal(t, "value,headers", header(m, HeaderTruncated))
	require.Equal(t, "too_large", header(m, HeaderReason), "the annotations always stay")

	key := bytes.Repeat([]byte("k"), 8_000)
	m = testLetter(key, big, bigHeader).fit(limit)
	require.Equal(t, limit, RecordBatchSize(m))
	require.Equal(t, key[:len(m.Key)], m.Key)
	require.Equal(t, "value,headers,key", header(m, HeaderTruncated))

	m = testLetter([]byte("s1"), big).withoutValue().fit(limit)
	require.Nil(t, m.Value)
	require.Equal(t, "value", header(m, HeaderTruncated))
	require.Equal(t, "10000", header(m, HeaderOriginalSize), "size and hash still describe the original")
}

func TestFitNeverExceedsTheLimitAndKeepsAPrefix(t *testing.T) {
	t.Parallel()
	value := bytes.Repeat([]byte("0123456789"), 3_000)
	for limit := 400; limit <= 40_000; limit += 97 {
		for _, n := range []int{0, 1, 127, 128, 16_383, 16_384, len(value)} {
			m := testLetter([]byte("s1"), value[:n]).fit(limit)
			require.LessOrEqual(t, RecordBatchSize(m), limit, "limit %d, value %d", limit, n)
			require.True(t, bytes.HasPrefix(value[:n], m.Value))
			if len(m.Value) < n && len(m.Value) > 0 {
				require.GreaterOrEqual(t, RecordBatchSize(m), limit-1, "a cut value uses the room: limit %d, value %d", limit, n)
			}
		}
	}
}
