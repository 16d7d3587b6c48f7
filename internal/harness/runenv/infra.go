package runenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/doppelhq/doppel/internal/harness/childproc"
)

// Servers reads where PostgreSQL and Kafka are (DOPPEL_DATABASE_URL, DOPPEL_KAFKA_BROKERS, which
// scripts/with-infra.sh exports from .local/env) and refuses anything off the loopback interface:
// a harness kills, restarts and floods what it is pointed at. who names the run in the errors ("the
// benchmark"), script the way to run it that sets the variables ("scripts/bench.sh (make bench)").
func Servers(getenv func(string) string, who, script string) (databaseURL string, brokers []string, err error) {
	databaseURL, list := getenv("DOPPEL_DATABASE_URL"), getenv("DOPPEL_KAFKA_BROKERS")
	if databaseURL == "" || list == "" {
		return "", nil, fmt.Errorf("DOPPEL_DATABASE_URL and DOPPEL_KAFKA_BROKERS must be set: run through %s, which starts the infrastructure and exports .local/env", script)
	}
	brokers = strings.Split(list, ",")
	for _, b := range brokers {
		if !childproc.Loopback(b) {
			return "", nil, fmt.Errorf("DOPPEL_KAFKA_BROKERS entry %q is not a loopback address: %s only talks to this machine", b, who)
		}
	}
	if !childproc.LoopbackURL(databaseURL) {
		return "", nil, errors.New("DOPPEL_DATABASE_URL does not point at a loopback address: " + who + " only talks to this machine")
	}
	return databaseURL, brokers, nil
}

// CheckBinaries fails when one of the programs a harness starts is not built in binDir; script is
// the other way to build them, named in the error.
func CheckBinaries(binDir, script string, names ...string) error {
	for _, bin := range names {
		if _, err := os.Stat(filepath.Join(binDir, bin)); err != nil {
			return fmt.Errorf("%s/%s is missing: run `make build` (or %s) first", binDir, bin, script)
		}
	}
	return nil
}

// The pid files scripts/infra.sh keeps under the checkout's .local: the harness finds the broker
// and the postmaster through them, to measure their CPU or to notice a restart it did not make.

// KafkaPidFile is the pid file of a single-node Kafka.
func KafkaPidFile(root string) string { return filepath.Join(root, ".local", "kafka", "kafka.pid") }

// KafkaNodePidFiles lists the pid files of a three-node Kafka (DOPPEL_INFRA_BROKERS=3), one per
// node; none on a single node.
func KafkaNodePidFiles(root string) []string {
	nodes, _ := filepath.Glob(filepath.Join(root, ".local", "kafka", "node-*", "kafka.pid"))
	return nodes
}

// PostmasterPidFile is PostgreSQL's postmaster.pid.
func PostmasterPidFile(root string) string {
	return filepath.Join(root, ".local", "pg", "data", "postmaster.pid")
}

// PidFileLine returns the first line of a pid file, trimmed: the pid, as the file says it.
func PidFileLine(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(line), nil
}

// LivePid returns the pid a pid file names when that process is running, and 0 otherwise.
func LivePid(path string) int {
	line, err := PidFileLine(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(line)
	if err != nil || pid <= 0 {
		return 0
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
		return 0
	}
	return pid
}
