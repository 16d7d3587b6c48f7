package main

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/doppelhq/doppel/internal/harness/childproc"
	"github.com/doppelhq/doppel/internal/harness/launch"
)

// process is a child process of the soak, its output appended to a log shared by its restarts.
type process struct {
	*childproc.Process
	// expected is set before the soak stops or kills the process on purpose.
	expected bool
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
	s.starts++
	d, err := launch.StartDoppel(fmt.Sprintf("doppel serve #%d", s.starts), s.bin,
		launch.Log{Path: s.logPath, AppendTag: "doppel-soak"}, s.env)
	if err != nil {
		return nil, err
	}
	p := &process{Process: d.Proc}
	s.cur, s.httpAddr = p, d.HTTPAddr
	go s.watch(p)
	return p, nil
}

// watch restarts doppel when it exits without the soak having asked.
func (s *supervisor) watch(p *process) {
	<-p.Done()
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.expected || s.stopping || s.cur != p {
		return
	}
	s.unexpected = append(s.unexpected, exitRecord{At: time.Now().UTC(), Pid: p.Pid(), Status: childproc.ExitText(p.Err())})
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
	if p == nil || p.Exited() {
		s.mu.Unlock()
		return 0, fmt.Errorf("doppel is not running")
	}
	p.expected = true
	s.mu.Unlock()
	if err := p.Kill(30 * time.Second); errors.Is(err, childproc.ErrNotReaped) {
		return 0, fmt.Errorf("doppel pid %d not reaped 30s after SIGKILL", p.Pid())
	} else if err != nil {
		return 0, err
	}
	return p.Pid(), nil
}

// restart starts doppel after a kill.
func (s *supervisor) restart() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return nil
	}
	if s.cur != nil && !s.cur.Exited() {
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
	if p == nil || p.Exited() {
		s.mu.Unlock()
		return 0, nil, false
	}
	p.expected = true
	s.mu.Unlock()
	took, err := p.Stop(grace)
	return took, err, true
}

func (s *supervisor) report() (starts int, unexpected []exitRecord) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.starts, append([]exitRecord(nil), s.unexpected...)
}
