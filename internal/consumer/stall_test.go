package consumer

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/harness/fakeclock"
)

type progressReport struct {
	stuckFor time.Duration
	stalled  bool
}

type progressObserver struct {
	nopObserver
	last map[int]progressReport
}

func (o *progressObserver) PartitionProgress(partition int, stuckFor time.Duration, stalled bool) {
	o.last[partition] = progressReport{stuckFor, stalled}
}

// logLines counts the lines logged with message msg.
func logLines(buf *bytes.Buffer, msg string) int {
	return strings.Count(buf.String(), `"msg":"`+msg+`"`)
}

func TestStallMonitorReportsAStuckPartitionOnceAndItsRecoveryOnce(t *testing.T) {
	t.Parallel()
	clock := fakeclock.New(time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC))
	tr := newOffsetTracker(clock.Now)
	obs := &progressObserver{last: map[int]progressReport{}}
	var logs bytes.Buffer
	m := newStallMonitor("idv.completed", 2*time.Minute, tr, obs, slog.New(slog.NewJSONHandler(&logs, nil)))
	c := &Consumer{cfg: Config{Topic: "idv.completed", StallAfter: 2 * time.Minute}, tracker: tr}

	// Partition 0 was idle for an hour: idle is not stuck, so its clock starts with the message.
	clock.Add(time.Hour)
	tr.add(0, 10)
	tr.add(0, 11)
	tr.add(1, 5)
	tr.block(0, "database_unavailable: connection refused")
	clock.Add(time.Minute)
	m.check()
	require.Equal(t, progressReport{time.Minute, false}, obs.last[0])
	require.Empty(t, c.Stalled())
	require.NoError(t, c.CheckProgress(context.Background()))

	// Partition 1 keeps committing; partition 0 does not.
	tr.finish(1, 5)
	tr.markCommitted(1, 5)
	clock.Add(61 * time.Second)
	m.check()
	require.Equal(t, progressReport{121 * time.Second, true}, obs.last[0])
	require.Equal(t, progressReport{0, false}, obs.last[1], "a partition with nothing uncommitted is not stuck")
	require.Equal(t, []StalledPartition{{Topic: "idv.completed", Partition: 0, Offset: 10,
		Since: clock.Now().Add(-121 * time.Second), For: 121 * time.Second,
		Reason: "database_unavailable: connection refused"}}, c.Stalled())
	err := c.CheckProgress(context.Background())
	require.EqualError(t, err, "partition 0 of idv.completed has made no progress for 2m1s, at offset 10: database_unavailable: connection refused")
	require.Equal(t, 1, logLines(&logs, "partition stalled"))

	for range 20 { // every later check while it stays stuck: the gauge moves, the log does not repeat
		clock.Add(5 * time.Second)
		m.check()
	}
	require.Equal(t, 1, logLines(&logs, "partition stalled"))
	require.Equal(t, progressReport{221 * time.Second, true}, obs.last[0])

	// 10 finishes and is committed: progress, so it resumes, even though 11 is still pending.
	tr.finish(0, 10)
	tr.markCommitted(0, 10)
	m.check()
	require.Equal(t, progressReport{0, false}, obs.last[0])
	require.Equal(t, 1, logLines(&logs, "partition resumed"))
	require.Contains(t, logs.String(), `"stalled_for":"3m41s"`)
	require.Empty(t, c.Stalled())
	m.check()
	require.Equal(t, 1, logLines(&logs, "partition resumed"))

	// Finished but never committed (the broker refuses commits) is stuck too.
	tr.finish(0, 11)
	clock.Add(3 * time.Minute)
	m.check()
	require.Equal(t, 2, logLines(&logs, "partition stalled"))
	require.Equal(t, int64(11), c.Stalled()[0].Offset)
	require.Empty(t, c.Stalled()[0].Reason, "progress cleared the old reason")
}

func TestLogLimiterLetsOneLinePerIntervalThroughAndCountsTheRest(t *testing.T) {
	t.Parallel()
	clock := fakeclock.New(time.Unix(0, 0))
	l := newLogLimiter(clock.Now, 30*time.Second)
	ok, n := l.allow("wait:database_unavailable")
	require.True(t, ok)
	require.Zero(t, n)
	for range 100 {
		clock.Add(100 * time.Millisecond)
		ok, _ = l.allow("wait:database_unavailable")
		require.False(t, ok)
	}
	ok, _ = l.allow("wait:vendor_rate_limited")
	require.True(t, ok, "each kind has its own allowance")
	clock.Add(20 * time.Second)
	ok, n = l.allow("wait:database_unavailable")
	require.True(t, ok)
	require.Equal(t, 100, n)
}
