package launch_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/harness/launch"
)

func TestDoppelEnvPointsDoppelAtTheRunAndLetsExtrasWin(t *testing.T) {
	t.Parallel()
	env := launch.DoppelSettings{DatabaseURL: "postgres://127.0.0.1/x", Brokers: []string{"127.0.0.1:1", "127.0.0.1:2"},
		Group: "g", Events: "e", Alerts: "a", DLQ: "d", Partitions: 6, SimulatorURL: "http://127.0.0.1:3", QPS: 0, Workers: 64,
	}.Env("DOPPEL_LOG_LEVEL=debug")
	for _, want := range []string{"DOPPEL_KAFKA_BROKERS=127.0.0.1:1,127.0.0.1:2", "DOPPEL_TOPIC_PARTITIONS=6",
		"DOPPEL_ADVANCE_QPS=0", "DOPPEL_WORKERS=64", "DOPPEL_ADVANCE_ACCESS_KEY=" + launch.AccessKey} {
		require.Contains(t, env, want)
	}
	require.True(t, strings.HasPrefix(env[0], "PATH="), "the child gets PATH and HOME, nothing else of ours")
	// os/exec keeps the last of two settings of one name: the extra one.
	require.Greater(t, slices.Index(env, "DOPPEL_LOG_LEVEL=debug"), slices.Index(env, "DOPPEL_LOG_LEVEL=warn"))
}
