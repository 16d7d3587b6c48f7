// Package launch starts the two programs a harness run is made of, as child processes wired to
// each other: advance-sim, the vendor on loopback with the run's credentials, and `doppel serve`
// with the settings that point it at the run's database, topics and simulator. doppel-bench and
// doppel-soak used to each build the same environments by hand; a setting added to one was easy to
// miss in the other. What a command adds of its own (the soak's retry and breaker settings, the
// benchmark's -doppel-env) it passes as extra settings, which come last and so win.
package launch

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/doppelhq/doppel/internal/harness/advancesim"
	"github.com/doppelhq/doppel/internal/harness/childproc"
)

// The simulator's credentials: it runs on loopback for one run only, so they are no secret.
const (
	AccessKey = "harness-access-key"
	SecretKey = "harness-secret-key"
)

// Log says where a child's output goes.
type Log struct {
	// Path is the log file.
	Path string
	// AppendTag, when set, makes the log shared by several runs of the child (the soak restarts
	// doppel into one log): it is appended to, with start and exit lines tagged with it. Empty: the
	// file is created or truncated.
	AppendTag string
}

func (l Log) start(name, bin string, args, env []string) (*childproc.Process, error) {
	if l.AppendTag != "" {
		return childproc.StartAppend(l.AppendTag, name, l.Path, bin, args, env)
	}
	return childproc.Start(name, l.Path, bin, args, env)
}

// Simulator is a running advance-sim.
type Simulator struct {
	Proc *childproc.Process
	// URL is its base URL, for doppel and for the control client.
	URL string
	// Ctl seeds it, sets its faults and reads its counters.
	Ctl *advancesim.Control
}

// SimulatorConfig is how to run advance-sim.
type SimulatorConfig struct {
	// Name names the process in errors and logs ("advance-sim (slow)").
	Name string
	// Bin is the advance-sim binary.
	Bin string
	Log Log
	// Latency is the vendor latency of every call.
	Latency time.Duration
	// Settings are further ADVANCE_SIM_ settings (NAME=value), e.g. its QPS limit or seed.
	Settings []string
}

// StartSimulator starts advance-sim on a free loopback port and waits (up to 15 s) until it answers
// /healthz; when it does not, it is stopped.
func StartSimulator(ctx context.Context, c SimulatorConfig) (*Simulator, error) {
	addr, err := childproc.FreeAddr()
	if err != nil {
		return nil, err
	}
	env := childproc.Env(append([]string{"ADVANCE_SIM_ADDR=" + addr, "ADVANCE_SIM_ACCESS_KEY=" + AccessKey,
		"ADVANCE_SIM_SECRET_KEY=" + SecretKey, "ADVANCE_SIM_LATENCY=" + c.Latency.String()}, c.Settings...)...)
	p, err := c.Log.start(c.Name, c.Bin, nil, env)
	if err != nil {
		return nil, err
	}
	s := &Simulator{Proc: p, URL: "http://" + addr, Ctl: advancesim.NewControl("http://" + addr)}
	if err := childproc.WaitHTTP(ctx, s.URL+"/healthz", 15*time.Second, p); err != nil {
		_, _ = p.Stop(5 * time.Second)
		return nil, fmt.Errorf("advance-sim did not start: %w", err)
	}
	return s, nil
}

// Stop stops the simulator with SIGTERM, and SIGKILL after grace; a nil Simulator is stopped.
func (s *Simulator) Stop(grace time.Duration) error {
	if s == nil {
		return nil
	}
	_, err := s.Proc.Stop(grace)
	return err
}

// DoppelSettings are the settings every harness gives `doppel serve`: where its database, broker,
// topics and vendor are, and how hard it works.
type DoppelSettings struct {
	DatabaseURL string
	Brokers     []string
	Group       string
	// Events, Alerts and DLQ name the topics.
	Events, Alerts, DLQ string
	Partitions          int
	// SimulatorURL is the vendor's base URL; the credentials are the simulator's.
	SimulatorURL string
	// QPS is DOPPEL_ADVANCE_QPS (0: no limit of doppel's own).
	QPS     float64
	Workers int
}

// Env is the environment of `doppel serve`: childproc.Env with the settings, logging at warn (a
// run's log stays readable), then extra, which may override any of them.
func (d DoppelSettings) Env(extra ...string) []string {
	return childproc.Env(append([]string{
		"DOPPEL_DATABASE_URL=" + d.DatabaseURL,
		"DOPPEL_KAFKA_BROKERS=" + strings.Join(d.Brokers, ","),
		"DOPPEL_KAFKA_GROUP_ID=" + d.Group,
		"DOPPEL_TOPIC_EVENTS=" + d.Events,
		"DOPPEL_TOPIC_ALERTS=" + d.Alerts,
		"DOPPEL_TOPIC_DLQ=" + d.DLQ,
		fmt.Sprintf("DOPPEL_TOPIC_PARTITIONS=%d", d.Partitions),
		"DOPPEL_ADVANCE_BASE_URL=" + d.SimulatorURL,
		"DOPPEL_ADVANCE_ACCESS_KEY=" + AccessKey,
		"DOPPEL_ADVANCE_SECRET_KEY=" + SecretKey,
		fmt.Sprintf("DOPPEL_ADVANCE_QPS=%g", d.QPS),
		fmt.Sprintf("DOPPEL_WORKERS=%d", d.Workers),
		"DOPPEL_LOG_LEVEL=warn",
	}, extra...)...)
}

// Doppel is a running `doppel serve`.
type Doppel struct {
	Proc *childproc.Process
	// HTTPAddr serves the API and /readyz; AdminAddr serves /metrics and pprof.
	HTTPAddr, AdminAddr string
	// Started is when the process was started.
	Started time.Time
}

// StartDoppel starts `bin serve` with env (DoppelSettings.Env and the like) on two free loopback
// ports, and returns without waiting: the soak starts doppel again while the database may be down.
// name names the process in errors and logs.
func StartDoppel(name, bin string, log Log, env []string) (*Doppel, error) {
	httpAddr, err := childproc.FreeAddr()
	if err != nil {
		return nil, err
	}
	adminAddr, err := childproc.FreeAddr()
	if err != nil {
		return nil, err
	}
	env = append(append([]string(nil), env...), "DOPPEL_HTTP_ADDR="+httpAddr, "DOPPEL_ADMIN_ADDR="+adminAddr)
	started := time.Now()
	p, err := log.start(name, bin, []string{"serve"}, env)
	if err != nil {
		return nil, err
	}
	return &Doppel{Proc: p, HTTPAddr: httpAddr, AdminAddr: adminAddr, Started: started}, nil
}

// WaitReady waits up to timeout until doppel answers /readyz, or fails early when it exits.
func (d *Doppel) WaitReady(ctx context.Context, timeout time.Duration) error {
	return childproc.WaitHTTP(ctx, "http://"+d.HTTPAddr+"/readyz", timeout, d.Proc)
}
