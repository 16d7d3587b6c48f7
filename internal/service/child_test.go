package service_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/config"
	"github.com/doppelhq/doppel/internal/harness/advancesim"
	"github.com/doppelhq/doppel/internal/harness/childproc"
	"github.com/doppelhq/doppel/internal/harness/testinfra"
	"github.com/doppelhq/doppel/internal/service"
)

// childServeVar makes the test binary run `doppel serve` (service.Run on the environment's
// configuration) instead of the tests: a real child process to kill -9, without building cmd/doppel.
const childServeVar = "DOPPEL_TEST_CHILD_SERVE"

func TestMain(m *testing.M) {
	if os.Getenv(childServeVar) == "1" {
		os.Exit(serveChild())
	}
	os.Exit(m.Run())
}

func serveChild() int {
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg, err := config.Load("", os.Getenv)
	if err != nil {
		log.Error("invalid configuration", "error", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := service.Run(ctx, cfg, log); err != nil {
		log.Error("serve", "error", err)
		return 1
	}
	return 0
}

// startChild runs the fixture's configuration as a child process and waits for /healthz.
func (f *fixture) startChild(t *testing.T, name string) *childproc.Process {
	t.Helper()
	c := f.cfg
	env := append(os.Environ(), childServeVar+"=1",
		"DOPPEL_DATABASE_URL="+c.DatabaseURL,
		"DOPPEL_KAFKA_BROKERS="+strings.Join(c.KafkaBrokers, ","),
		"DOPPEL_KAFKA_GROUP_ID="+c.KafkaGroupID,
		"DOPPEL_TOPIC_EVENTS="+c.TopicEvents, "DOPPEL_TOPIC_ALERTS="+c.TopicAlerts,
		"DOPPEL_TOPIC_DLQ="+c.TopicDLQ, "DOPPEL_TOPIC_STARTED="+c.TopicStarted,
		"DOPPEL_ADVANCE_BASE_URL="+c.AdvanceBaseURL,
		"DOPPEL_ADVANCE_ACCESS_KEY="+c.AdvanceAccessKey, "DOPPEL_ADVANCE_SECRET_KEY="+c.AdvanceSecretKey,
		fmt.Sprintf("DOPPEL_ADVANCE_QPS=%g", c.AdvanceQPS),
		"DOPPEL_HTTP_ADDR="+c.HTTPAddr, "DOPPEL_ADMIN_ADDR="+c.AdminAddr,
		"DOPPEL_COMMIT_INTERVAL="+c.CommitInterval.String(), "DOPPEL_RELAY_INTERVAL="+c.RelayInterval.String(),
		"DOPPEL_SHUTDOWN_TIMEOUT="+c.ShutdownTimeout.String(),
		"DOPPEL_RECONCILE_AFTER="+c.ReconcileAfter.String(), "DOPPEL_RECONCILE_INTERVAL="+c.ReconcileInterval.String(),
		"DOPPEL_RECONCILE_GIVE_UP="+c.ReconcileGiveUp.String(), "DOPPEL_LOG_LEVEL="+c.LogLevel)
	logPath := filepath.Join(t.TempDir(), name+".log")
	p, err := childproc.Start(name, logPath, os.Args[0], []string{"-test.run=^$"}, env)
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = p.Stop(10 * time.Second)
		if t.Failed() {
			if out, err := os.ReadFile(logPath); err == nil {
				t.Logf("%s log (last 3000 bytes):\n%s", name, out[max(0, len(out)-3000):])
			}
		}
	})
	require.NoError(t, childproc.WaitHTTP(context.Background(), "http://"+f.cfg.HTTPAddr+"/healthz", 60*time.Second, p))
	return p
}

// kill -9 while verifications are being polled: none that was pending is lost, and a restarted
// instance finishes them.
func TestKillDuringPollingLosesNoPendingVerification(t *testing.T) {
	t.Parallel()
	f := setup(t, advancesim.Config{Latency: 300 * time.Millisecond})
	f.cfg.HTTPAddr = testinfra.FreeAddr(t)
	f.cfg.ReconcileAfter, f.cfg.ReconcileInterval, f.cfg.ReconcileGiveUp = time.Second, 3*time.Second, time.Hour
	f.cfg.LogLevel = "info"
	require.NoError(t, f.cfg.Validate())

	const n = 60
	sigs := make([]string, n)
	for i := range sigs {
		sigs[i] = testinfra.AddSession(t, f.sim, fmt.Sprintf("user-%03d", i), fmt.Sprintf("face-%03d", i), "PASS")
	}
	var started []kafka.Message
	for _, sig := range sigs {
		started = append(started, startedEvent(sig, "", nil))
	}
	testinfra.Produce(t, f.cfg.TopicStarted, started...)

	first := f.startChild(t, "doppel-1")
	testinfra.Eventually(t, 60*time.Second, func() bool { return countOf(f.statuses(t), "recovered") >= 5 },
		"polling under way")
	require.NoError(t, first.Kill(10*time.Second))

	st := f.statuses(t)
	require.Len(t, st, n, "every started verification is still stored")
	recoveredAtKill := countOf(st, "recovered")
	require.Less(t, recoveredAtKill, n, "killed during polling, not after it")
	require.Equal(t, n, recoveredAtKill+countOf(st, "pending"))

	f.cfg.HTTPAddr = testinfra.FreeAddr(t)
	f.startChild(t, "doppel-2")
	testinfra.Eventually(t, 60*time.Second, func() bool { return countOf(f.statuses(t), "recovered") == n },
		"the restarted instance recovers the rest")
	outcomes := f.outcomes(t)
	require.Len(t, outcomes, n)
	for _, sig := range sigs {
		require.Equal(t, "no_duplicates", outcomes[sig])
	}
	// Only a search in flight at the kill (at most one per polling worker) can be billed twice.
	twice := 0
	for _, c := range f.sim.Stats().FaceSearchBySignature {
		require.LessOrEqual(t, c, int64(2))
		twice += int(c - 1)
	}
	require.LessOrEqual(t, twice, 8)
}
