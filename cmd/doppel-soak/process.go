package main

import (
	"context"
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
)

// process is a child process whose output is appended to a log file.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	waitErr error
	// expected is set before the soak stops or kills the process on purpose.
	expected bool
}

func startProcess(name, logPath, bin string, args, env []string) (*process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(logFile, "=== doppel-soak: starting %s at %s\n", name, time.Now().UTC().Format(time.RFC3339Nano))
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		fmt.Fprintf(logFile, "=== doppel-soak: %s (pid %d) exited at %s: %v\n", name, cmd.Process.Pid,
			time.Now().UTC().Format(time.RFC3339Nano), exitText(p.waitErr))
		logFile.Close()
		close(p.done)
	}()
	return p, nil
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits up to grace, then kills. It returns how long the stop took and
// the exit error.
func (p *process) stop(grace time.Duration) (time.Duration, error) {
	start := time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return time.Since(start), p.waitErr
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
		return time.Since(start), fmt.Errorf("%s did not stop within %s of SIGTERM and was killed", p.name, grace)
	}
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// waitHTTP polls u until it answers 200, the process exits, or timeout passes.
func waitHTTP(ctx context.Context, u string, timeout time.Duration, p *process) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: 2 * time.Second}
	var last error
	for time.Now().Before(deadline) {
		if p != nil && p.exited() {
			return fmt.Errorf("%s exited (see %s): %v", p.name, p.logPath, p.waitErr)
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
		if !sleepCtx(ctx, 100*time.Millisecond) {
			return ctx.Err()
		}
	}
	return fmt.Errorf("not ready within %s: %w", timeout, last)
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// loopback reports whether host:port names this machine.
func loopback(hostport string) bool {
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

func loopbackURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return false
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "5432")
	}
	return loopback(host)
}

// ---------------------------------------------------------------- doppel under supervision

// exitRecord is an exit of doppel that the soak did not cause.
type exitRecord struct {
	At     time.Time `json:"at"`
	Pid    int       `json:"pid"`
	Status string    `json:"status"`
}

// supervisor keeps one `doppel serve` running: the soak kills and restarts it on purpose, and an
// exit it did not cause is recorded (a finding) and followed by a restart, a bounded number of times.
type supervisor struct {
	bin     string
	env     []string
	logPath string

	mu         sync.Mutex
	cur        *process
	httpAddr   string
	starts     int
	unexpected []exitRecord
	stopping   bool
}

// maxUnexpectedRestarts bounds the restarts after exits the soak did not cause.
const maxUnexpectedRestarts = 30

// start runs a new doppel process (the previous one must have exited).
func (s *supervisor) start() (*process, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.startLocked()
}

func (s *supervisor) startLocked() (*process, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	s.starts++
	env := append(append([]string(nil), s.env...), "DOPPEL_HTTP_ADDR="+addr)
	p, err := startProcess(fmt.Sprintf("doppel serve #%d", s.starts), s.logPath, s.bin, []string{"serve"}, env)
	if err != nil {
		return nil, err
	}
	s.cur, s.httpAddr = p, addr
	go s.watch(p)
	return p, nil
}

// watch restarts doppel when it exits without the soak having asked.
func (s *supervisor) watch(p *process) {
	<-p.done
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.expected || s.stopping || s.cur != p {
		return
	}
	s.unexpected = append(s.unexpected, exitRecord{At: time.Now().UTC(), Pid: p.cmd.Process.Pid, Status: exitText(p.waitErr)})
	if len(s.unexpected) > maxUnexpectedRestarts {
		return
	}
	// A start while PostgreSQL or Kafka is down fails fast: try again shortly.
	go func() {
		time.Sleep(2 * time.Second)
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.stopping || s.cur != p {
			return
		}
		_, _ = s.startLocked()
	}()
}

// current returns the running process and its HTTP address.
func (s *supervisor) current() (*process, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur, s.httpAddr
}

// kill9 sends SIGKILL to the running doppel and waits for it to be reaped; it returns the pid.
func (s *supervisor) kill9() (int, error) {
	s.mu.Lock()
	p := s.cur
	if p == nil || p.exited() {
		s.mu.Unlock()
		return 0, fmt.Errorf("doppel is not running")
	}
	p.expected = true
	s.mu.Unlock()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return 0, err
	}
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		return 0, fmt.Errorf("doppel pid %d not reaped 30s after SIGKILL", p.cmd.Process.Pid)
	}
	return p.cmd.Process.Pid, nil
}

// restart starts doppel after a kill.
func (s *supervisor) restart() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return nil
	}
	if s.cur != nil && !s.cur.exited() {
		return nil // already restarted
	}
	_, err := s.startLocked()
	return err
}

// stop stops doppel with SIGTERM for good and returns how long it took and its exit error.
func (s *supervisor) stop(grace time.Duration) (time.Duration, error, bool) {
	s.mu.Lock()
	s.stopping = true
	p := s.cur
	if p == nil || p.exited() {
		s.mu.Unlock()
		return 0, nil, false
	}
	p.expected = true
	s.mu.Unlock()
	took, err := p.stop(grace)
	return took, err, true
}

func (s *supervisor) report() (starts int, unexpected []exitRecord) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.starts, append([]exitRecord(nil), s.unexpected...)
}
