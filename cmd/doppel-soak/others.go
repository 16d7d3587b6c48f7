package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/doppelhq/doppel/internal/clip"
	"github.com/doppelhq/doppel/internal/harness/runenv"
)

// otherUsers lists the processes other than this soak's that use this checkout's PostgreSQL and Kafka:
// a benchmark, a demo, a test binary or a `doppel serve` started by someone else. The soak stops and
// starts those servers, which would break such a run, and such a run would add faults the ledger does
// not know about.
func otherUsers(root string) []string {
	self := os.Getpid()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(raw) == 0 {
			continue
		}
		args := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
		name := filepath.Base(args[0])
		switch {
		case name == "doppel-bench", name == "doppel-demo", strings.HasSuffix(name, ".test"):
		case name == "doppel" && len(args) > 1 && args[1] == "serve":
			if parentOf(pid) == self {
				continue // ours
			}
		default:
			continue
		}
		cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if err != nil || !(cwd == root || strings.HasPrefix(cwd, root+string(filepath.Separator))) {
			continue // another checkout has its own servers
		}
		out = append(out, fmt.Sprintf("pid %d: %s", pid, clip.Ellipsis(strings.Join(args, " "), 120)))
	}
	return out
}

func parentOf(pid int) int {
	st, err := runenv.ReadProcStat(pid)
	if err != nil {
		return 0
	}
	return st.PPID
}

// infraPids returns the pids of the broker and the postmaster, from the files scripts/infra.sh keeps,
// so that a restart the soak did not make can be noticed.
func infraPids(root string) (kafka, postgres string) {
	read := func(path string) string {
		line, err := runenv.PidFileLine(path)
		if err != nil {
			return "?"
		}
		return line
	}
	kafka = read(runenv.KafkaPidFile(root))
	// A three-node Kafka keeps a pid file per node (scripts/infra.sh): any change among them counts.
	if nodes := runenv.KafkaNodePidFiles(root); len(nodes) > 0 {
		pids := make([]string, len(nodes))
		for i, n := range nodes {
			pids[i] = read(n)
		}
		kafka = strings.Join(pids, ",")
	}
	return kafka, read(runenv.PostmasterPidFile(root))
}
