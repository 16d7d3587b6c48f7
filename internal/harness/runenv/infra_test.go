package runenv_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/harness/runenv"
)

func TestServersRefusesWhatIsNotOnLoopback(t *testing.T) {
	t.Parallel()
	env := func(db, brokers string) func(string) string {
		return func(k string) string {
			return map[string]string{"DOPPEL_DATABASE_URL": db, "DOPPEL_KAFKA_BROKERS": brokers}[k]
		}
	}
	db, brokers, err := runenv.Servers(env("postgres://u@127.0.0.1:5432/d", "127.0.0.1:9092,localhost:9093"), "the soak", "scripts/soak.sh (make soak)")
	require.NoError(t, err)
	require.Equal(t, "postgres://u@127.0.0.1:5432/d", db)
	require.Equal(t, []string{"127.0.0.1:9092", "localhost:9093"}, brokers)

	_, _, err = runenv.Servers(env("", "127.0.0.1:9092"), "the soak", "scripts/soak.sh (make soak)")
	require.ErrorContains(t, err, "run through scripts/soak.sh (make soak)")
	_, _, err = runenv.Servers(env("postgres://u@127.0.0.1/d", "10.1.2.3:9092"), "the benchmark", "x")
	require.EqualError(t, err, `DOPPEL_KAFKA_BROKERS entry "10.1.2.3:9092" is not a loopback address: the benchmark only talks to this machine`)
	_, _, err = runenv.Servers(env("postgres://u@10.1.2.3:5432/d", "127.0.0.1:9092"), "the benchmark", "x")
	require.EqualError(t, err, "DOPPEL_DATABASE_URL does not point at a loopback address: the benchmark only talks to this machine")
}

func TestCheckBinariesNamesTheMissingOne(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "doppel"), nil, 0o755))
	require.NoError(t, runenv.CheckBinaries(dir, "scripts/bench.sh", "doppel"))
	require.EqualError(t, runenv.CheckBinaries(dir, "scripts/bench.sh", "doppel", "advance-sim"),
		dir+"/advance-sim is missing: run `make build` (or scripts/bench.sh) first")
}

func TestPidFilesAreReadAsInfraShWritesThem(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(root, ".local", "pg", "data"), 0o755))
	// postmaster.pid holds the pid on its first line, then more.
	require.NoError(t, os.WriteFile(runenv.PostmasterPidFile(root), []byte(strconv.Itoa(os.Getpid())+"\n/data\n"), 0o644))
	require.Equal(t, os.Getpid(), runenv.LivePid(runenv.PostmasterPidFile(root)))
	line, err := runenv.PidFileLine(runenv.PostmasterPidFile(root))
	require.NoError(t, err)
	require.Equal(t, strconv.Itoa(os.Getpid()), line)

	require.Zero(t, runenv.LivePid(runenv.KafkaPidFile(root)), "no file")
	require.Empty(t, runenv.KafkaNodePidFiles(root))
	for _, n := range []string{"node-1", "node-2"} {
		require.NoError(t, os.MkdirAll(filepath.Join(root, ".local", "kafka", n), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(root, ".local", "kafka", n, "kafka.pid"), []byte("1\n"), 0o644))
	}
	require.Len(t, runenv.KafkaNodePidFiles(root), 2)
}

// TreeTicks counts a process's direct children: a child that burns CPU shows in its parent's tree.
func TestTreeTicksCountsTheChildren(t *testing.T) {
	cmd := exec.Command("sh", "-c", "i=0; while [ $i -lt 2000000 ]; do i=$((i+1)); done; sleep 5")
	require.NoError(t, cmd.Start())
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	require.Eventually(t, func() bool {
		tree := runenv.TreeTicks(os.Getpid())
		own, err := runenv.ReadProcStat(os.Getpid())
		require.NoError(t, err)
		return tree-(own.Self+own.Reaped) >= 50 // the child's first half second of CPU
	}, 10*time.Second, 50*time.Millisecond)
	require.Zero(t, runenv.TreeTicks(1<<30), "no such process")
}
