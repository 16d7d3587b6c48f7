package consumer

import "github.com/segmentio/kafka-go"

// recordBatchOverhead is the size of a v2 record batch without its records: the 12-byte log
// entry header (base offset, length) and the 49-byte batch header. The broker's
// max.message.bytes limits this plus the records (after compression, which the dead-letter
// writer does not use).
const recordBatchOverhead = 61

// RecordBatchSize returns the bytes the broker counts against max.message.bytes for msg written
// alone in its record batch, as kafka-go encodes it (the timestamp and offset deltas are 0, a nil
// key is length -1). Dead letters are fitted with it; tests use it to build a message exactly at
// a topic's limit.
func RecordBatchSize(msg kafka.Message) int {
	body := 1 + 1 + 1 // attributes, timestamp delta, offset delta
	body += bytesSize(msg.Key) + bytesSize(msg.Value)
	body += varintSize(int64(len(msg.Headers)))
	for _, h := range msg.Headers {
		body += varintSize(int64(len(h.Key))) + len(h.Key) + bytesSize(h.Value)
	}
	return recordBatchOverhead + varintSize(int64(body)) + body
}

// bytesSize is the size of a length-prefixed byte string in a v2 record (-1 for nil).
func bytesSize(b []byte) int {
	if b == nil {
		return varintSize(-1)
	}
	return varintSize(int64(len(b))) + len(b)
}

// varintSize is the size of n as a zig-zag varint.
func varintSize(n int64) int {
	u := uint64((n << 1) ^ (n >> 63))
	size := 1
	for u >= 0x80 {
		u >>= 7
		size++
	}
	return size
}
