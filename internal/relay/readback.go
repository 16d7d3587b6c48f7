package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"

	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/topic"
)

// Before a poll publishes what it claimed from the outbox, it reads the alert topic back: an alert
// left unmarked may be on the topic already, published by a process that died before marking it
// (this one's predecessor, or another instance), or by a write of this process that failed on one
// partition after succeeding on another. A handed-over alert never comes this way while it is in
// flight, so the normal path reads nothing.
//
// The read starts, in each partition, at the first message stamped ReadBackMargin before the
// oldest claimed alert was detected (a message is stamped when it is published, always after the
// detection; the margin absorbs clocks that disagree between hosts), and ends at the partitions'
// end offsets taken after the claim. Whoever published a claimed alert before dying did so before
// its poll's transaction or its process ended, so before this claim: the read sees it (the package
// doc names the exceptions). What it covered is
// remembered (coverage), and the next read starts where this one ended unless the alerts it is
// for are older, so while polls keep finding work each message is read back once.

// coverage is what the relay has read of the alert topic: each partition from the first message
// stamped at or after from up to next[p]. Every duplicate_face alertId found there was either
// claimed by the poll that read it, marked published (Outbox.MarkFoundPublished), or is in held.
// A zero coverage (nil next) covers nothing.
type coverage struct {
	from time.Time
	next map[int]int64
}

// readBackFetchBytes bounds one fetch of the read-back; the broker returns at least one record
// batch whatever its size, so a larger message only makes a larger answer.
const readBackFetchBytes = 4 << 20

// readBackTimeout bounds one read-back: it runs while the poll's claim holds its rows, and a
// leader being elected makes topic.Offsets ask again until its context ends.
const readBackTimeout = 30 * time.Second

// readBack returns the alertIds of the duplicate_face alerts on the topic that alerts detected at
// or after since can have reached, and how many messages it read.
func (r *Relay) readBack(ctx context.Context, since time.Time) (map[string]struct{}, int, error) {
	ctx, cancel := context.WithTimeout(ctx, readBackTimeout)
	defer cancel()
	from := since.Add(-r.cfg.ReadBackMargin)
	bounds, err := topic.Offsets(ctx, r.client, r.cfg.Topic)
	if err != nil {
		return nil, 0, err
	}
	partitions := make([]int, 0, len(bounds))
	for p := range bounds {
		partitions = append(partitions, p)
	}
	starts, err := topic.OffsetsAt(ctx, r.client, r.cfg.Topic, partitions, from)
	if err != nil {
		return nil, 0, err
	}
	// Already read: from the previous read's start time on, the previous read ended at next[p].
	covered := r.read.next != nil && !from.Before(r.read.from)
	found := map[string]struct{}{}
	next := make(map[int]int64, len(bounds))
	read := 0
	for p, b := range bounds {
		start, ok := starts[p]
		if !ok {
			start = b.LastOffset
		}
		if n, ok := r.read.next[p]; covered && ok && n > start && n <= b.LastOffset {
			start = n
		}
		n, err := r.readPartition(ctx, p, max(start, b.FirstOffset), b.LastOffset, found)
		read += n
		if err != nil {
			return nil, read, err
		}
		next[p] = b.LastOffset
	}
	r.read = coverage{from: from, next: next}
	if r.cfg.OnReadBack != nil {
		r.cfg.OnReadBack(read)
	}
	return found, read, nil
}

// readPartition adds the duplicate_face alertIds of partition's messages [from, end) to found and
// returns how many messages it read.
func (r *Relay) readPartition(ctx context.Context, partition int, from, end int64, found map[string]struct{}) (int, error) {
	read := 0
	for offset := from; offset < end; {
		res, err := r.client.Fetch(ctx, &kafka.FetchRequest{Topic: r.cfg.Topic, Partition: partition, Offset: offset,
			MinBytes: 1, MaxBytes: readBackFetchBytes, MaxWait: 500 * time.Millisecond})
		if err == nil {
			err = res.Error
		}
		if err != nil {
			return read, fmt.Errorf("read %s/%d back at offset %d (end %d): %w", r.cfg.Topic, partition, offset, end, err)
		}
		before := offset
		for {
			rec, err := res.Records.ReadRecord()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return read, fmt.Errorf("read %s/%d back at offset %d: %w", r.cfg.Topic, partition, offset, err)
			}
			closeRecord(rec)
			// A fetch answers from the start of the record batch holding offset, and may run past end.
			if rec.Offset < offset || rec.Offset >= end {
				continue
			}
			offset = rec.Offset + 1
			read++
			if id, ok := duplicateFaceAlertID(rec.Headers); ok {
				found[id] = struct{}{}
			}
		}
		if offset == before {
			// Below the end offset there is always a message to return; an empty answer is a
			// broker that is not ready: fail the poll, which is tried again.
			return read, fmt.Errorf("read %s/%d back: no message at offset %d below the end %d", r.cfg.Topic, partition, offset, end)
		}
	}
	return read, nil
}

// closeRecord gives a fetched record's buffers back; only its headers are read.
func closeRecord(rec *kafka.Record) {
	if rec.Key != nil {
		rec.Key.Close()
	}
	if rec.Value != nil {
		rec.Value.Close()
	}
}

// duplicateFaceAlertID returns the alertId of a duplicate_face alert message, from its headers
// (see Message). Messages of other types share the topic and are skipped, as is an id that is not
// a UUID, which no outbox row can have.
func duplicateFaceAlertID(headers []kafka.Header) (string, bool) {
	var id, typ string
	for _, h := range headers {
		switch h.Key {
		case headerAlertID:
			id = string(h.Value)
		case headerAlertType:
			typ = string(h.Value)
		}
	}
	if typ != duplicate.AlertType {
		return "", false
	}
	if _, err := uuid.Parse(id); err != nil {
		return "", false
	}
	return id, true
}
