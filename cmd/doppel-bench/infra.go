package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/doppelhq/doppel/internal/harness/runenv"
	"github.com/doppelhq/doppel/internal/pause"
	"github.com/doppelhq/doppel/internal/topic"
)

// clockTicks is USER_HZ (runenv.ClockTicksPerSecond).
const clockTicks = runenv.ClockTicksPerSecond

// ---------------------------------------------------------------- /proc accounting

// infraProcesses are the long-running processes scripts/infra.sh started, found through the pid
// files it keeps; a zero pid means not found (the CPU share is then not reported).
type infraProcesses struct {
	kafka      int
	postmaster int
}

// findInfraProcesses reads the pid files. Only a single-node Kafka has a CPU share: on three
// nodes there is no one broker to measure.
func findInfraProcesses(root string) infraProcesses {
	return infraProcesses{kafka: runenv.LivePid(runenv.KafkaPidFile(root)), postmaster: runenv.LivePid(runenv.PostmasterPidFile(root))}
}

// cpuSnapshot holds the CPU ticks of every process of every role at one moment.
type cpuSnapshot struct {
	at    time.Time
	ticks map[string]map[int]int64 // role -> pid -> ticks (own, plus reaped children for roots)
	// busy is the whole machine's non-idle ticks (all cores), from /proc/stat.
	busy int64
}

// machineBusyTicks sums the non-idle CPU time of all cores since boot.
func machineBusyTicks() int64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0
	}
	var busy int64
	for i, x := range f[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		if i >= 8 { // guest time is already counted in user
			break
		}
		n, _ := strconv.ParseInt(x, 10, 64)
		busy += n
	}
	return busy
}

// cpuRoles maps a role name to the root pid whose process (and, for postgres, direct children)
// it covers.
type cpuRoles map[string]int

// benchBackendRole names the PostgreSQL backend of the benchmark's own connection (its progress
// counts and pg_stat_activity samples): its CPU is the benchmark's, not doppel's, so the snapshot
// moves it from postgres to bench. The counts alone were 6-7 % of PostgreSQL's CPU in (a).
const benchBackendRole = "bench-backend"

func (r cpuRoles) snapshot(postmaster int) cpuSnapshot {
	snap := cpuSnapshot{at: time.Now(), ticks: map[string]map[int]int64{}, busy: machineBusyTicks()}
	for role, pid := range r {
		if pid <= 0 || role == benchBackendRole {
			continue
		}
		st, err := runenv.ReadProcStat(pid)
		if err != nil {
			continue
		}
		snap.ticks[role] = map[int]int64{pid: st.Self + st.Reaped}
	}
	if postmaster > 0 {
		if st, err := runenv.ReadProcStat(postmaster); err == nil {
			m := map[int]int64{postmaster: st.Self + st.Reaped}
			entries, _ := os.ReadDir("/proc")
			for _, e := range entries {
				pid, err := strconv.Atoi(e.Name())
				if err != nil || pid == postmaster {
					continue
				}
				if cst, err := runenv.ReadProcStat(pid); err == nil && cst.PPID == postmaster {
					m[pid] = cst.Self
				}
			}
			snap.ticks["postgres"] = m
			if pid := r[benchBackendRole]; pid > 0 && snap.ticks["bench"] != nil {
				if t, ok := m[pid]; ok {
					delete(m, pid)
					snap.ticks["bench"][pid] = t
				}
			}
		}
	}
	return snap
}

// cpuUse is what each role used between two snapshots, in cores (1.0 = one core busy throughout).
// "other" is the rest of the machine's busy time: the kernel's own work and any process outside
// the benchmark (another test run would show here).
func cpuUse(from, to cpuSnapshot) map[string]float64 {
	wall := to.at.Sub(from.at).Seconds()
	out := map[string]float64{}
	if wall <= 0 {
		return out
	}
	var sum int64
	for role, pids := range to.ticks {
		var d int64
		for pid, t := range pids {
			d += t - from.ticks[role][pid] // a process born in between starts from zero
		}
		sum += d
		out[role] = float64(d) / clockTicks / wall
	}
	if from.busy > 0 && to.busy > 0 {
		out["other"] = max(0, float64(to.busy-from.busy-sum)/clockTicks/wall)
	}
	return out
}

// cpuSeconds is the CPU time each role used between two snapshots, in seconds.
func cpuSeconds(from, to cpuSnapshot) map[string]float64 {
	wall := to.at.Sub(from.at).Seconds()
	out := map[string]float64{}
	for role, cores := range cpuUse(from, to) {
		out[role] = cores * wall
	}
	return out
}

// perEvent turns CPU seconds per role into CPU microseconds per event: the cost of one event,
// which unlike cores in use does not depend on how fast the events came.
func perEvent(seconds map[string]float64, events int64) map[string]float64 {
	if events <= 0 {
		return nil
	}
	out := make(map[string]float64, len(seconds))
	for role, s := range seconds {
		out[role] = s * 1e6 / float64(events)
	}
	return out
}

// memKB reads a Vm* line (VmRSS, VmHWM) of /proc/<pid>/status, in KiB.
func memKB(pid int, field string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			fields := strings.Fields(rest)
			if len(fields) > 0 {
				n, _ := strconv.ParseInt(fields[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// machineInfo describes where the numbers were taken.
type machineInfo struct {
	CPUs       int    `json:"cpus"`
	CPUModel   string `json:"cpuModel"`
	MemTotalMB int64  `json:"memTotalMB"`
	GoVersion  string `json:"goVersion"`
	PostgreSQL string `json:"postgresql"`
	Kafka      string `json:"kafka"`
	// LoadAvgAtStart is /proc/loadavg when the run began: other work on the machine skews figures.
	LoadAvgAtStart string `json:"loadAvgAtStart"`
}

func readMachine() machineInfo {
	var m machineInfo
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "processor") {
				m.CPUs++
			}
		}
	}
	m.CPUModel = runenv.CPUModel()
	m.MemTotalMB = memTotalKB() / 1024
	m.GoVersion = runtime.Version()
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		m.LoadAvgAtStart = strings.TrimSpace(string(b))
	}
	return m
}

func memTotalKB() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// ---------------------------------------------------------------- PostgreSQL

// ---------------------------------------------------------------- Kafka

// createTopics creates the topics with the given partitions (replication 1, this is one broker)
// and waits until every partition has a leader.
func createTopics(ctx context.Context, brokers []string, partitions int, names ...string) error {
	specs := make([]topic.Spec, len(names))
	for i, n := range names {
		specs[i] = topic.Spec{Name: n, Partitions: partitions, ReplicationFactor: 1}
	}
	_, err := topic.Ensure(ctx, brokers, specs...)
	return err
}

// quietCores is the CPU use (in cores) of the whole machine below which it counts as quiet before a
// scenario starts: the idle broker, database and simulators use less than this.
const quietCores = 0.3

// busyCores measures the machine's CPU use over d, in cores.
func busyCores(ctx context.Context, d time.Duration) float64 {
	t0, b0 := time.Now(), machineBusyTicks()
	if !pause.For(ctx, d) {
		return 0
	}
	return float64(machineBusyTicks()-b0) / clockTicks / time.Since(t0).Seconds()
}

// waitQuiet waits up to b.opts.quietWait for the machine to be quiet before a scenario, so that
// another program's burst (a build, a test run) does not land in the figures. It goes on either
// way; the scenario's "other" CPU share then shows what was disturbed.
func (b *bench) waitQuiet(ctx context.Context, scenario string) {
	defer func() { b.infra = findInfraProcesses(b.root) }()
	deadline := time.Now().Add(b.opts.quietWait)
	for i := 0; ; i++ {
		busy := busyCores(ctx, time.Second)
		if busy <= quietCores || ctx.Err() != nil {
			return
		}
		if !time.Now().Before(deadline) {
			b.logf("machine still busy before %s (%.2f cores in use), going on: see the \"other\" CPU of its figures", scenario, busy)
			return
		}
		if i == 0 {
			b.logf("machine busy before %s (%.2f cores in use outside the benchmark); waiting up to %s for it to calm down", scenario, busy, b.opts.quietWait)
		}
	}
}
