//go:build faults

package faulttest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/harness/testinfra"
	"github.com/doppelhq/doppel/internal/topic"
)

// cluster is a three-node Kafka of the test's own (scripts/infra.sh with DOPPEL_INFRA_BROKERS=3
// and DOPPEL_INFRA_DIR), beside the shared single broker the other tests use: killing its nodes
// disturbs nobody else.
type cluster struct {
	dir     string
	brokers []string
}

// startCluster starts the cluster and stops it, and removes its folder, when the test ends. A
// watchdog does the same if the test binary dies first (a panic on -timeout runs no Cleanup), so a
// failed run leaves no JVMs behind.
func startCluster(t *testing.T) *cluster {
	t.Helper()
	dir, err := os.MkdirTemp("", "doppel-cluster-")
	require.NoError(t, err)
	c := &cluster{dir: dir}
	script := filepath.Join(testinfra.RepoRoot(), "scripts", "infra.sh")
	watchdog := exec.Command("bash", "-c", `while kill -0 "$1" 2>/dev/null; do sleep 1; done
		if [[ -d "$2" ]]; then DOPPEL_INFRA_DIR="$2" bash "$3" down >/dev/null 2>&1; rm -rf "$2"; fi`,
		"watchdog", strconv.Itoa(os.Getpid()), dir, script)
	watchdog.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	require.NoError(t, watchdog.Start())
	_ = watchdog.Process.Release()
	t.Cleanup(func() {
		if t.Failed() {
			for n := 1; n <= 3; n++ {
				if b, err := os.ReadFile(filepath.Join(dir, "kafka", fmt.Sprintf("node-%d", n), "kafka.log")); err == nil {
					t.Logf("kafka node %d log (last 1500 bytes):\n%s", n, tail(b, 1500))
				}
			}
		}
		c.infraOK(t, "down")
		os.RemoveAll(dir)
	})

	start := time.Now()
	c.infra(t, "up-kafka")
	env, err := os.ReadFile(filepath.Join(dir, "env"))
	require.NoError(t, err)
	sc := bufio.NewScanner(strings.NewReader(string(env)))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "DOPPEL_KAFKA_BROKERS="); ok {
			c.brokers = strings.Split(v, ",")
		}
	}
	require.Len(t, c.brokers, 3, "the cluster's env lists its three brokers")
	t.Logf("three-node cluster up in %s: %v", time.Since(start).Round(100*time.Millisecond), c.brokers)
	return c
}

// infra runs scripts/infra.sh against the cluster's folder and returns its standard output.
func (c *cluster) infra(t *testing.T, args ...string) string {
	t.Helper()
	out, err := c.run(args...)
	require.NoError(t, err, "infra.sh %v", args)
	return out
}

// infraOK is infra for cleanups: a failure is logged, not fatal.
func (c *cluster) infraOK(t *testing.T, args ...string) {
	if _, err := c.run(args...); err != nil {
		t.Logf("infra.sh %v: %v", args, err)
	}
}

func (c *cluster) run(args ...string) (string, error) {
	cmd := exec.Command("bash", append([]string{filepath.Join(testinfra.RepoRoot(), "scripts", "infra.sh")}, args...)...)
	cmd.Env = append(os.Environ(), "DOPPEL_INFRA_DIR="+c.dir, "DOPPEL_INFRA_BROKERS=3")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%w: %s%s", err, stdout.String(), stderr.String())
	}
	return strings.TrimSpace(stdout.String()), nil
}

// controller returns the node id of the active controller, as infra.sh reads it from the quorum.
func (c *cluster) controller(t *testing.T) int {
	t.Helper()
	n, err := strconv.Atoi(c.infra(t, "kafka-controller"))
	require.NoError(t, err)
	return n
}

// metadata returns the cluster's view of the topics, from a client of its own (no cached metadata).
func (c *cluster) metadata(topics ...string) (*kafka.MetadataResponse, error) {
	client, closeIdle := topic.NewClient(c.brokers, 5*time.Second)
	defer closeIdle()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
}

// leaderOf returns the node leading partition of name.
func (c *cluster) leaderOf(t *testing.T, name string, partition int) int {
	t.Helper()
	meta, err := c.metadata(name)
	require.NoError(t, err)
	for _, tp := range meta.Topics {
		for _, p := range tp.Partitions {
			if tp.Name == name && p.ID == partition {
				return p.Leader.ID
			}
		}
	}
	t.Fatalf("no partition %d of %s in the metadata", partition, name)
	return 0
}

// fullyReplicated reports whether every partition of the topics has all three nodes in sync.
func (c *cluster) fullyReplicated(topics ...string) bool {
	meta, err := c.metadata(topics...)
	if err != nil || len(meta.Topics) != len(topics) {
		return false
	}
	for _, tp := range meta.Topics {
		if tp.Error != nil || len(tp.Partitions) == 0 {
			return false // not created yet
		}
		for _, p := range tp.Partitions {
			if p.Error != nil || len(p.Isr) != 3 {
				return false
			}
		}
	}
	return true
}

// progress returns, per partition of the events topic, the group's committed offset and the end
// offset; ok is false while the cluster cannot answer (a node just died).
func (f *fixture) progress(group string) (committed, end map[int]int64, ok bool) {
	client, closeIdle := topic.NewClient(f.brokers, 3*time.Second)
	defer closeIdle()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	bounds, err := topic.Offsets(ctx, client, f.events)
	if err != nil {
		return nil, nil, false
	}
	parts := make([]int, 0, len(bounds))
	end = map[int]int64{}
	for p, b := range bounds {
		parts = append(parts, p)
		end[p] = b.LastOffset
	}
	resp, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{f.events: parts}})
	if err != nil || resp.Error != nil {
		return nil, nil, false
	}
	committed = map[int]int64{}
	for _, p := range resp.Topics[f.events] {
		if p.Error != nil {
			return nil, nil, false
		}
		committed[p.Partition] = p.CommittedOffset
	}
	return committed, end, true
}

// streamer produces events at a steady rate while the cluster loses nodes. A batch the cluster does
// not acknowledge is written again until it is (at least once: doppel stores an event once however
// often it arrives).
type streamer struct {
	produced atomic.Int64
	retries  atomic.Int64
	done     chan error
}

func (f *fixture) stream(t *testing.T, msgs []kafka.Message, batch int, every time.Duration) *streamer {
	s := &streamer{done: make(chan error, 1)}
	w := topic.NewWriter(f.brokers, f.events, topic.WriterConfig{BatchTimeout: 2 * time.Millisecond,
		BatchSize: batch, WriteTimeout: 5 * time.Second, MaxAttempts: 3, WriteBackoffMax: 500 * time.Millisecond})
	go func() {
		defer w.Close()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for i := 0; i < len(msgs); i += batch {
			<-tick.C
			chunk := msgs[i:min(i+batch, len(msgs))]
			deadline := time.Now().Add(60 * time.Second)
			for {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err := w.WriteMessages(ctx, chunk...)
				cancel()
				if err == nil {
					break
				}
				s.retries.Add(1)
				if time.Now().After(deadline) {
					s.done <- fmt.Errorf("batch at %d not acknowledged within 60 s: %w", i, err)
					return
				}
				time.Sleep(200 * time.Millisecond)
			}
			s.produced.Add(int64(len(chunk)))
		}
		s.done <- nil
	}()
	return s
}

// killAndWatch kills node with SIGKILL, waits until the consumer has committed, on every partition,
// past where that partition ended at the kill (events written after the kill were read from the
// partitions' new leaders and committed through the group's coordinator, wherever it moved), and
// returns how long that took. Then it starts the node again and waits until it is back in sync.
func (c *cluster) killAndWatch(t *testing.T, f *fixture, group string, node int, what string) time.Duration {
	t.Helper()
	_, endAtKill, ok := f.progress(group)
	require.True(t, ok, "read offsets before the kill")
	killed := time.Now()
	c.infra(t, "kill-kafka-node", strconv.Itoa(node))
	var took time.Duration
	var last string
	defer func() {
		if t.Failed() {
			t.Logf("offsets at the kill %v; last seen: %s", endAtKill, last)
		}
	}()
	testinfra.Eventually(t, 30*time.Second, func() bool {
		committed, end, ok := f.progress(group)
		if !ok {
			return false
		}
		last = fmt.Sprintf("committed %v, end %v, %s after the kill", committed, end, time.Since(killed).Round(100*time.Millisecond))
		for p, e := range endAtKill {
			if committed[p] <= e {
				return false
			}
		}
		took = time.Since(killed)
		return true
	}, "the consumer commits past the kill of %s (node %d) on every partition within 30 s", what, node)
	t.Logf("kill -9 of %s (node %d): consumer committing past the kill on every partition after %s",
		what, node, took.Round(100*time.Millisecond))

	restarted := time.Now()
	c.infra(t, "start-kafka-node", strconv.Itoa(node))
	testinfra.Eventually(t, 60*time.Second, func() bool { return c.fullyReplicated(f.events, f.alerts) },
		"node %d back in sync on every partition", node)
	t.Logf("node %d restarted and back in sync after %s", node, time.Since(restarted).Round(100*time.Millisecond))
	return took
}

// On a three-node cluster doppel creates its topics with three copies and min.insync.replicas=2,
// and goes on through the kill -9 of a partition leader and then of the active controller: nothing
// lost, nothing doubled, each alert once.
func TestClusterSurvivesTheLossOfALeaderAndOfTheController(t *testing.T) {
	c := startCluster(t)
	names := []string{testinfra.UniqueName("idv.completed"), testinfra.UniqueName("doppel.alerts"), testinfra.UniqueName("idv.completed.dlq")}
	// A dead-letter topic created beforehand with one copy: doppel leaves it as it is, and says so.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err := topic.Ensure(ctx, c.brokers, topic.Spec{Name: names[2], Partitions: 1, ReplicationFactor: 1})
	require.NoError(t, err)

	f := newFixture(t, c.brokers, names)
	f.env = append(f.env, "DOPPEL_TOPIC_PARTITIONS=3", "DOPPEL_TOPIC_STARTED="+testinfra.UniqueName("idv.started"))
	group := envValue(f.env, "DOPPEL_KAFKA_GROUP_ID")
	const workers = 8
	sigs, msgs := f.population(t, "cl", 1200)

	p := f.start(t)
	waitFor(t, 60*time.Second, func() bool { return c.fullyReplicated(f.events, f.alerts) }, "doppel created its topics")

	// The topics doppel created: three copies, two of which must acknowledge a write.
	rep, err := topic.Describe(ctx, c.brokers, f.events, f.alerts, f.dlq)
	require.NoError(t, err)
	require.Equal(t, 3, rep.Brokers)
	factors := map[string]int{}
	for _, s := range rep.Topics {
		factors[s.Name] = s.ReplicationFactor
	}
	require.Equal(t, map[string]int{f.events: 3, f.alerts: 3, f.dlq: 1}, factors)
	for _, name := range []string{f.events, f.alerts} {
		require.Equal(t, "2", topicConfig(t, c.brokers, name, "min.insync.replicas"), "min.insync.replicas of %s", name)
	}
	waitFor(t, 10*time.Second, func() bool {
		return f.logHasAll("topic has a single copy", `"topic":"`+f.dlq+`"`, `"replication_factor":1`, `"brokers":3`)
	}, "doppel warns about the single-copy dead-letter topic it did not create, naming its factor and the cluster's size")

	// 1,200 events at 20 a second: a minute of stream, the first kill about 8 s into it, the second
	// once the first node is back in sync, with events still to come after each.
	s := f.stream(t, msgs, 5, 250*time.Millisecond)
	waitFor(t, 60*time.Second, func() bool { return s.produced.Load() >= 150 }, "150 produced")
	leader := c.leaderOf(t, f.events, 0)
	c.killAndWatch(t, f, group, leader, "the leader of partition 0")

	waitFor(t, 60*time.Second, func() bool { return s.produced.Load() >= 700 }, "700 produced")
	require.Less(t, s.produced.Load(), int64(len(msgs)-150), "the stream goes on after the second kill")
	ctrl := c.controller(t)
	c.killAndWatch(t, f, group, ctrl, "the active controller")
	if ctrl == leader {
		t.Logf("the active controller was the node killed first (node %d)", ctrl)
	}

	select {
	case err := <-s.done:
		require.NoError(t, err)
	case <-time.After(90 * time.Second):
		t.Fatal("the stream did not finish")
	}
	t.Logf("stream done: %d events, %d write attempts retried", s.produced.Load(), s.retries.Load())
	waitFor(t, 60*time.Second, func() bool { return f.checks(t) >= len(sigs) }, "all stored after both kills")
	billedTwice := f.verify(t, sigs)
	// doppel itself never died: a search can repeat only if an event came again after its outcome
	// was stored but before its offset was committed, which a kill can cause for what was in
	// flight, at most one per worker per kill.
	require.LessOrEqual(t, billedTwice, 2*workers)

	alertsOnTopic := map[string]int{}
	for _, m := range testinfra.ReadAllFrom(t, f.brokers, f.alerts, 1<<30, 5*time.Second) {
		var a duplicate.Alert
		require.NoError(t, json.Unmarshal(m.Value, &a))
		alertsOnTopic[a.AlertID]++
	}
	for id, n := range alertsOnTopic {
		require.Equal(t, 1, n, "alert %s is on the topic %d times", id, n)
	}
	t.Logf("%d events stored once, %d searched twice, %d alerts each once on the topic", len(sigs), billedTwice, len(alertsOnTopic))

	p.alive(t)
}

// topicConfig returns a topic's effective setting.
func topicConfig(t *testing.T, brokers []string, name, key string) string {
	t.Helper()
	client, closeIdle := topic.NewClient(brokers, 10*time.Second)
	defer closeIdle()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := client.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: name, ConfigNames: []string{key}}}})
	require.NoError(t, err)
	for _, r := range resp.Resources {
		require.NoError(t, r.Error)
		for _, e := range r.ConfigEntries {
			if e.ConfigName == key {
				return e.ConfigValue
			}
		}
	}
	t.Fatalf("topic %s: no %s", name, key)
	return ""
}

// logHasAll reports whether one line of doppel's log holds every one of parts.
func (f *fixture) logHasAll(parts ...string) bool {
	b, err := os.ReadFile(f.logPath)
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return true
		}
	}
	return false
}
