// Package childproc runs programs as real child processes for the harnesses: doppel-bench,
// doppel-soak and doppel-demo start `doppel serve`, advance-sim and the like as separate processes,
// not in-process, so that what they measure and break (signals, restarts, exits, CPU and memory of
// a process) is what production sees. It holds the pieces those harnesses share: starting a child
// with its output in a log file, stopping or killing it, and waiting for it to answer over HTTP.
package childproc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/doppelhq/doppel/internal/pause"
)

// ErrNotReaped is returned by Kill when the process has not been reaped within the bound given.
var ErrNotReaped = errors.New("not reaped after SIGKILL")

// Process is a child process whose stdout and stderr go to a log file.
type Process struct {
	// Name names the process in errors ("advance-sim", "doppel serve #2").
	Name string
	// LogPath is the file its output goes to; errors point at it.
	LogPath string

	cmd  *exec.Cmd
	done chan struct{}
	err  error // written before done is closed, so it is read only after
}

// Start runs bin with args and exactly the environment env, its output in logPath, which is
// created or truncated.
func Start(name, logPath, bin string, args, env []string) (*Process, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	return start(name, logPath, "", logFile, bin, args, env)
}

// StartAppend is Start for a log that several runs share (the soak restarts doppel into one log):
// it appends to logPath and writes a line tagged with tag before the start and after the exit, so
// the runs can be told apart and an exit is on record next to the output that led to it.
func StartAppend(tag, name, logPath, bin string, args, env []string) (*Process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(logFile, "=== %s: starting %s at %s\n", tag, name, time.Now().UTC().Format(time.RFC3339Nano))
	return start(name, logPath, tag, logFile, bin, args, env)
}

func start(name, logPath, tag string, logFile *os.File, bin string, args, env []string) (*Process, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &Process{Name: name, LogPath: logPath, cmd: cmd, done: make(chan struct{})}
	// One goroutine waits, so that Done, Exited and Err can be used from anywhere, any number of times.
	go func() {
		p.err = cmd.Wait()
		if tag != "" {
			fmt.Fprintf(logFile, "=== %s: %s (pid %d) exited at %s: %v\n", tag, name, cmd.Process.Pid,
				time.Now().UTC().Format(time.RFC3339Nano), ExitText(p.err))
		}
		logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// ExitText describes how a process ended, given its wait error: "exit status 0" for a clean exit.
func ExitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// Pid returns the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done returns a channel that is closed once the process has exited and been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err returns the process's wait error (nil for exit status 0). It is valid only after Done is
// closed.
func (p *Process) Err() error { return p.err }

// Stop asks for a graceful shutdown (SIGTERM) and waits up to grace, then kills the process. It
// returns how long the stop took and the exit error, or an error saying the process was killed.
// A nil Process is already stopped, so that cleanup paths need not check.
func (p *Process) Stop(grace time.Duration) (took time.Duration, err error) {
	if p == nil {
		return 0, nil
	}
	start := time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return time.Since(start), p.err
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
		return time.Since(start), fmt.Errorf("%s did not stop within %s of SIGTERM and was killed", p.Name, grace)
	}
}

// Kill sends SIGKILL and waits up to bound for the process to be reaped; past it the error wraps
// ErrNotReaped. The bound keeps a harness from hanging on a process the kernel cannot reap.
func (p *Process) Kill(bound time.Duration) error {
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(bound):
		return fmt.Errorf("%s (pid %d) %w within %s", p.Name, p.Pid(), ErrNotReaped, bound)
	}
}

// handedOut holds every port FreeAddr has returned in this process.
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// FreeAddr returns a loopback host:port that was free a moment ago, for a child (or a service in
// a test) to listen on. It never returns the same port twice in one process: the kernel picks a
// free port at random, so two calls in a row can be given the same one once the first listener
// is closed, and a test that asked for an HTTP and an admin address got the same one for both.
func FreeAddr() (string, error) {
	handedOut.Lock()
	defer handedOut.Unlock()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		addr := l.Addr().(*net.TCPAddr)
		l.Close()
		if !handedOut.ports[addr.Port] {
			handedOut.ports[addr.Port] = true
			return addr.String(), nil
		}
	}
	return "", errors.New("no loopback port left that was not handed out before")
}

// WaitHTTP polls u until it answers 200, ctx ends, or timeout passes. If p is not nil and exits
// first, it fails at once, naming p's log: waiting out the timeout for a dead process only hides
// why it died.
func WaitHTTP(ctx context.Context, u string, timeout time.Duration, p *Process) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: 2 * time.Second}
	var last error
	for time.Now().Before(deadline) {
		if p != nil && p.Exited() {
			return fmt.Errorf("%s exited (see %s): %v", p.Name, p.LogPath, p.err)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Errorf("%s answered %d: %s", u, resp.StatusCode, strings.TrimSpace(string(body)))
		} else {
			last = err
		}
		if !pause.For(ctx, 100*time.Millisecond) {
			return ctx.Err()
		}
	}
	return fmt.Errorf("not ready within %s: %w", timeout, last)
}

// Loopback reports whether host:port names this machine. The harnesses refuse other addresses:
// they drop databases and delete topics, which must never happen to a shared server.
func Loopback(hostport string) bool {
	host, _, err := net.SplitHostPort(strings.TrimSpace(hostport))
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// LoopbackURL reports whether a URL (a PostgreSQL URL, say) names this machine; without a port,
// PostgreSQL's 5432 is assumed.
func LoopbackURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return false
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "5432")
	}
	return Loopback(host)
}

// Env is the environment of a harness's child: only what a Go binary needs (PATH, HOME) plus the
// settings given, so that nothing from the caller's environment (a DOPPEL_CONFIG, say) changes
// what is measured or broken. A later setting of the same name wins, as os/exec keeps the last.
func Env(settings ...string) []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	return append(env, settings...)
}
