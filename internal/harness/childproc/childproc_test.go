package childproc_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/harness/childproc"
)

// env is the children's whole environment: Start passes exactly what it is given.
var env = []string{"PATH=" + os.Getenv("PATH")}

// start runs sh -c script with its output in a fresh log, and kills it at the end of the test
// if it is still running, so that no test leaves a process behind.
func start(t *testing.T, name, script string) *childproc.Process {
	t.Helper()
	p, err := childproc.Start(name, filepath.Join(t.TempDir(), name+".log"), "sh", []string{"-c", script}, env)
	require.NoError(t, err)
	t.Cleanup(func() {
		if !p.Exited() {
			_ = p.Kill(10 * time.Second)
		}
	})
	return p
}

// waitDone waits for p to exit, failing the test after a generous bound.
func waitDone(t *testing.T, p *childproc.Process) {
	t.Helper()
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not exit within 10s", p.Name)
	}
}

// waitLog waits until p's log contains want: a child's output is the only sign it got that far.
func waitLog(t *testing.T, p *childproc.Process, want string) {
	t.Helper()
	require.Eventually(t, func() bool {
		b, _ := os.ReadFile(p.LogPath)
		return strings.Contains(string(b), want)
	}, 10*time.Second, 10*time.Millisecond, "%s never wrote %q", p.Name, want)
}

func TestStopGraceful(t *testing.T) {
	t.Parallel()
	p := start(t, "sleeper", "exec sleep 30")
	require.Positive(t, p.Pid())
	require.False(t, p.Exited())

	took, err := p.Stop(10 * time.Second)
	require.True(t, p.Exited())
	require.Less(t, took, 10*time.Second)
	// sleep does not handle SIGTERM, so it dies of it: the wait error says so.
	var exitErr *exec.ExitError
	require.ErrorAs(t, err, &exitErr)
	require.Contains(t, err.Error(), "terminated")
	require.Equal(t, err, p.Err())
}

func TestStopKillsAfterGraceWhenSIGTERMIsIgnored(t *testing.T) {
	t.Parallel()
	// The trap must be in place before the SIGTERM, hence the "ready" the test waits for; exec keeps
	// one process, so the SIGKILL leaves nothing behind (an ignored signal stays ignored across exec).
	p := start(t, "stubborn", `trap "" TERM; echo ready; exec sleep 30`)
	waitLog(t, p, "ready")

	const grace = 300 * time.Millisecond
	took, err := p.Stop(grace)
	require.EqualError(t, err, "stubborn did not stop within 300ms of SIGTERM and was killed")
	require.GreaterOrEqual(t, took, grace)
	require.Less(t, took, 10*time.Second)
	require.True(t, p.Exited())
	require.ErrorContains(t, p.Err(), "killed")
}

func TestStopNilIsANoOp(t *testing.T) {
	t.Parallel()
	var p *childproc.Process
	took, err := p.Stop(time.Second)
	require.NoError(t, err)
	require.Zero(t, took)
}

func TestExitedAndErrAfterNonZeroExit(t *testing.T) {
	t.Parallel()
	p := start(t, "failing", "echo boom; exit 3")
	waitDone(t, p)

	require.True(t, p.Exited())
	var exitErr *exec.ExitError
	require.ErrorAs(t, p.Err(), &exitErr)
	require.Equal(t, 3, exitErr.ExitCode())
	require.Equal(t, "exit status 3", childproc.ExitText(p.Err()))
	require.Equal(t, "exit status 0", childproc.ExitText(nil))

	b, err := os.ReadFile(p.LogPath)
	require.NoError(t, err)
	require.Equal(t, "boom\n", string(b))
}

func TestKill(t *testing.T) {
	t.Parallel()
	p := start(t, "victim", "exec sleep 30")
	require.NoError(t, p.Kill(10*time.Second))
	require.True(t, p.Exited())
	require.ErrorContains(t, p.Err(), "killed")

	// A second kill finds nothing to signal; it must not report ErrNotReaped.
	err := p.Kill(time.Second)
	require.Error(t, err)
	require.NotErrorIs(t, err, childproc.ErrNotReaped)
}

func TestStartTruncatesTheLog(t *testing.T) {
	t.Parallel()
	logPath := filepath.Join(t.TempDir(), "child.log")
	require.NoError(t, os.WriteFile(logPath, []byte("from an earlier run\n"), 0o644))

	p, err := childproc.Start("child", logPath, "sh", []string{"-c", "echo out; echo err >&2"}, env)
	require.NoError(t, err)
	waitDone(t, p)
	require.NoError(t, p.Err())

	b, err := os.ReadFile(logPath)
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"out", "err"}, strings.Fields(string(b)))
}

func TestStartAppendMarksEveryRun(t *testing.T) {
	t.Parallel()
	logPath := filepath.Join(t.TempDir(), "shared.log")
	var pids []int
	for i := 1; i <= 2; i++ {
		p, err := childproc.StartAppend("test-harness", fmt.Sprintf("run #%d", i), logPath, "sh",
			[]string{"-c", fmt.Sprintf("echo output %d; exit %d", i, i-1)}, env)
		require.NoError(t, err)
		waitDone(t, p)
		pids = append(pids, p.Pid())
	}

	b, err := os.ReadFile(logPath)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	require.Len(t, lines, 6, string(b))
	require.True(t, strings.HasPrefix(lines[0], "=== test-harness: starting run #1 at "), lines[0])
	require.Equal(t, "output 1", lines[1])
	require.Contains(t, lines[2], fmt.Sprintf("=== test-harness: run #1 (pid %d) exited at ", pids[0]))
	require.True(t, strings.HasSuffix(lines[2], ": exit status 0"), lines[2])
	require.True(t, strings.HasPrefix(lines[3], "=== test-harness: starting run #2 at "), lines[3])
	require.Equal(t, "output 2", lines[4])
	require.True(t, strings.HasSuffix(lines[5], ": exit status 1"), lines[5])
}

func TestStartFailsForAMissingProgram(t *testing.T) {
	t.Parallel()
	_, err := childproc.Start("ghost", filepath.Join(t.TempDir(), "ghost.log"), "/nonexistent/ghost", nil, env)
	require.ErrorContains(t, err, "start /nonexistent/ghost")
}

func TestWaitHTTPWaitsFor200(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if calls.Add(1) <= 2 {
			http.Error(w, "warming up", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)

	require.NoError(t, childproc.WaitHTTP(context.Background(), srv.URL+"/readyz", 10*time.Second, nil))
	require.EqualValues(t, 3, calls.Load())
}

func TestWaitHTTPTimesOutWithTheLastAnswer(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "still warming up", http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)

	err := childproc.WaitHTTP(context.Background(), srv.URL, 300*time.Millisecond, nil)
	require.ErrorContains(t, err, "not ready within 300ms")
	require.ErrorContains(t, err, "answered 503: still warming up")
}

func TestWaitHTTPStopsWhenTheContextEnds(t *testing.T) {
	t.Parallel()
	addr, err := childproc.FreeAddr()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()

	err = childproc.WaitHTTP(ctx, "http://"+addr, time.Minute, nil)
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestWaitHTTPFailsFastWhenTheProcessExits(t *testing.T) {
	t.Parallel()
	addr, err := childproc.FreeAddr() // nothing listens there: only the exit can end the wait early
	require.NoError(t, err)
	p := start(t, "crasher", "echo cannot start; exit 1")

	began := time.Now()
	err = childproc.WaitHTTP(context.Background(), "http://"+addr+"/readyz", time.Minute, p)
	require.Less(t, time.Since(began), 10*time.Second)
	require.EqualError(t, err, fmt.Sprintf("crasher exited (see %s): exit status 1", p.LogPath))
}

func TestFreeAddrIsListenable(t *testing.T) {
	t.Parallel()
	addr, err := childproc.FreeAddr()
	require.NoError(t, err)
	require.True(t, childproc.Loopback(addr), addr)
	l, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	require.NoError(t, l.Close())
}

func TestLoopback(t *testing.T) {
	t.Parallel()
	for hostport, want := range map[string]bool{
		"127.0.0.1:9092":      true,
		"127.0.0.2:9092":      true,
		"localhost:9092":      true,
		" localhost:9092 ":    true,
		"[::1]:5432":          true,
		"10.0.0.5:9092":       false,
		"kafka.internal:9092": false,
		"0.0.0.0:9092":        false,
		"127.0.0.1":           false, // no port
		"":                    false,
	} {
		require.Equal(t, want, childproc.Loopback(hostport), hostport)
	}
}

func TestLoopbackURL(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]bool{
		"postgres://doppel:secret@127.0.0.1:5432/doppel?sslmode=disable": true,
		"postgres://doppel@localhost/doppel":                             true,
		"postgres://[::1]:5433/doppel":                                   true,
		"postgres://db.example.com:5432/doppel":                          false,
		"postgres://10.1.2.3/doppel":                                     false,
		"host=127.0.0.1 dbname=doppel":                                   false, // not a URL
		"":                                                               false,
	} {
		require.Equal(t, want, childproc.LoopbackURL(raw), raw)
	}
}

// Regression: a test asked for an HTTP and an admin address and was given the same port for both
// (its config then refused to start). Drawn often enough, the kernel's random free ports repeat.
func TestFreeAddrNeverHandsOutAPortTwice(t *testing.T) {
	seen := map[string]bool{}
	for range 3000 {
		addr, err := childproc.FreeAddr()
		require.NoError(t, err)
		require.False(t, seen[addr], "%s handed out twice", addr)
		seen[addr] = true
		host, _, err := net.SplitHostPort(addr)
		require.NoError(t, err)
		require.Equal(t, "127.0.0.1", host)
	}
}

func TestEnvHoldsOnlyPathHomeAndTheSettings(t *testing.T) {
	t.Setenv("DOPPEL_CONFIG", "/somewhere/doppel.yaml")
	env := childproc.Env("A=1", "B=2")
	require.Equal(t, []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "A=1", "B=2"}, env)
}
