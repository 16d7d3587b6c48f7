package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
)

// StalledPartition is a partition that has had uncommitted messages for longer than the stall
// bound without its committed offset moving.
type StalledPartition struct {
	Topic     string
	Partition int
	// Offset is where it is stuck: its oldest unfinished message, or the last finished one when
	// only the commit is missing.
	Offset int64
	// Since is when the partition last made progress.
	Since time.Time
	For   time.Duration
	// Reason is why its work last had to wait (a Wait or Retry decision's reason, or a failing
	// dead-letter write), if one was seen.
	Reason string
}

func (s StalledPartition) String() string {
	msg := fmt.Sprintf("partition %d of %s has made no progress for %s, at offset %d",
		s.Partition, s.Topic, s.For.Round(time.Second), s.Offset)
	if s.Reason != "" {
		msg += ": " + s.Reason
	}
	return msg
}

// stalled returns the partitions stuck for at least after, in partition order.
func stalled(topic string, after time.Duration, progress []partitionProgress) []StalledPartition {
	var out []StalledPartition
	for _, p := range progress {
		if p.stuckFor >= after && p.stuckFor > 0 {
			out = append(out, StalledPartition{Topic: topic, Partition: p.partition, Offset: p.offset,
				Since: p.since, For: p.stuckFor, Reason: p.blocker})
		}
	}
	slices.SortFunc(out, func(a, b StalledPartition) int { return a.Partition - b.Partition })
	return out
}

// Stalled returns the partitions of this consumer that have not made progress for longer than
// Config.StallAfter while having messages to commit.
func (c *Consumer) Stalled() []StalledPartition {
	return stalled(c.cfg.Topic, c.cfg.StallAfter, c.tracker.progress())
}

// CheckProgress returns an error naming every stalled partition and why, or nil; its signature
// is a readiness check's.
func (c *Consumer) CheckProgress(context.Context) error {
	s := c.Stalled()
	if len(s) == 0 {
		return nil
	}
	msgs := make([]string, len(s))
	for i, p := range s {
		msgs[i] = p.String()
	}
	return errors.New(strings.Join(msgs, "; "))
}

// stallMonitor reports partitions' progress to the observer on every check, and logs once when a
// partition stalls and once when it resumes.
type stallMonitor struct {
	topic   string
	after   time.Duration
	tracker *offsetTracker
	obs     Observer
	log     *slog.Logger
	stalled map[int]time.Time // stalled partitions, with when they last made progress
}

func newStallMonitor(topic string, after time.Duration, tracker *offsetTracker, obs Observer, log *slog.Logger) *stallMonitor {
	return &stallMonitor{topic: topic, after: after, tracker: tracker, obs: obs, log: log, stalled: map[int]time.Time{}}
}

// checkEvery is how often the monitor looks: often enough that a stall is reported soon after the
// bound, rarely enough to cost nothing.
func (m *stallMonitor) checkEvery() time.Duration {
	return min(max(m.after/4, 10*time.Millisecond), 5*time.Second)
}

func (m *stallMonitor) run(ctx context.Context) {
	t := time.NewTicker(m.checkEvery())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.check()
		}
	}
}

func (m *stallMonitor) check() {
	progress := m.tracker.progress()
	now := m.tracker.now()
	stuck := map[int]StalledPartition{}
	for _, s := range stalled(m.topic, m.after, progress) {
		stuck[s.Partition] = s
	}
	for _, p := range progress {
		s, isStuck := stuck[p.partition]
		m.obs.PartitionProgress(p.partition, p.stuckFor, isStuck)
		since, was := m.stalled[p.partition]
		switch {
		case isStuck && !was:
			m.stalled[p.partition] = s.Since
			m.log.Error("partition stalled", "partition", s.Partition, "offset", s.Offset,
				"no_progress_for", s.For.Round(time.Millisecond).String(), "reason", s.Reason, "stall_after", m.after.String())
		case !isStuck && was:
			delete(m.stalled, p.partition)
			m.log.Info("partition resumed", "partition", p.partition,
				"stalled_for", now.Sub(since).Round(time.Millisecond).String())
		}
	}
}

// repeatLogEvery is how often a log line that would repeat on every retry is let through.
const repeatLogEvery = 30 * time.Second

// logLimiter lets the first of a kind of log line through and then one per interval, counting the
// ones it held back, so a wait that every worker retries every few seconds logs a few lines a
// minute, not hundreds.
type logLimiter struct {
	now      func() time.Time
	interval time.Duration
	mu       sync.Mutex
	kinds    map[string]*limitedKind
}

type limitedKind struct {
	last       time.Time
	suppressed int
}

func newLogLimiter(now func() time.Time, interval time.Duration) *logLimiter {
	return &logLimiter{now: now, interval: interval, kinds: map[string]*limitedKind{}}
}

// allow reports whether a line of kind may be logged now and, if so, how many were held back
// since the last one.
func (l *logLimiter) allow(kind string) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	k := l.kinds[kind]
	if k == nil {
		l.kinds[kind] = &limitedKind{last: now}
		return true, 0
	}
	if now.Sub(k.last) < l.interval {
		k.suppressed++
		return false, 0
	}
	suppressed, k.suppressed, k.last = k.suppressed, 0, now
	return true, suppressed
}
