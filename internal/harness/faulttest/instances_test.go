//go:build faults

package faulttest

import (
	"context"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/harness/testinfra"
)

// assignment returns, per group member, the partitions of topic it owns.
func assignment(t *testing.T, group, topic string) map[string][]int {
	client := &kafka.Client{Addr: kafka.TCP(testinfra.Brokers(t)...), Timeout: 5 * time.Second, Transport: &kafka.Transport{}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := client.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
	if err != nil || len(resp.Groups) != 1 || resp.Groups[0].GroupState != "Stable" {
		return nil
	}
	out := map[string][]int{}
	for _, m := range resp.Groups[0].Members {
		for _, tp := range m.MemberAssignments.Topics {
			if tp.Topic == topic {
				parts := append([]int(nil), tp.Partitions...)
				sort.Ints(parts)
				out[m.MemberID] = parts
			}
		}
	}
	return out
}

func covered(a map[string][]int) []int {
	var all []int
	for _, ps := range a {
		all = append(all, ps...)
	}
	sort.Ints(all)
	return all
}

func TestThreeInstancesShareSixPartitionsAndSurviveTheLossOfOne(t *testing.T) {
	f := setupWithPartitions(t, 6)
	group := envValue(f.env, "DOPPEL_KAFKA_GROUP_ID")
	sigs, msgs := f.population(t, "multi", 900)

	procs := []*proc{f.start(t), f.start(t), f.start(t)}
	testinfra.Eventually(t, 60*time.Second, func() bool {
		a := assignment(t, group, f.events)
		if len(a) != 3 {
			return false
		}
		for _, ps := range a {
			if len(ps) != 2 {
				return false
			}
		}
		return len(covered(a)) == 6
	}, "three members with two partitions each")

	testinfra.Produce(t, f.events, msgs...)
	waitFor(t, 60*time.Second, func() bool { return f.checks(t) >= 200 }, "first events stored")
	procs[1].kill9(t)
	require.Less(t, f.checks(t), len(sigs), "killed mid-stream")

	// After the session timeout the two survivors take over the dead member's partitions.
	testinfra.Eventually(t, 60*time.Second, func() bool {
		a := assignment(t, group, f.events)
		return len(a) == 2 && len(covered(a)) == 6
	}, "two members own all six partitions")
	waitFor(t, 120*time.Second, func() bool { return f.checks(t) >= len(sigs) }, "all stored by the survivors")
	billedTwice := f.verify(t, sigs)
	require.LessOrEqual(t, billedTwice, 8, "only the killed instance's in-flight searches may repeat")
	procs[0].alive(t)
	procs[2].alive(t)
}

func envValue(env []string, key string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v
		}
	}
	return ""
}
