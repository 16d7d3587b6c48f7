// Package runenv describes and prepares where a measuring run (doppel-bench, doppel-soak,
// doppel-demo) takes place: the working tree it was built from, the machine, and a database of its
// own on the shared PostgreSQL. It exists only for the harness; the service never imports it.
package runenv

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// GitLabel names the working tree's commit, and says when it has uncommitted changes: bin/ is built
// from the working tree. It only reads.
func GitLabel(ctx context.Context) string {
	head, err := exec.CommandContext(ctx, "git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	label := "working tree at " + strings.TrimSpace(string(head))
	if st, err := exec.CommandContext(ctx, "git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		label += " with uncommitted changes"
	}
	return label
}

// CPUModel returns the model name /proc/cpuinfo gives the first processor, "" when it says none.
func CPUModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// FreshDatabase drops database name (if it exists) next to the one baseURL names, creates it empty,
// and returns its URL.
func FreshDatabase(ctx context.Context, baseURL, name string) (string, error) {
	conn, err := pgx.Connect(ctx, baseURL)
	if err != nil {
		return "", fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
		return "", fmt.Errorf("drop database %s: %w", name, err)
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	u, err := url.Parse(baseURL)
	if err != nil {
		return "", err
	}
	u.Path = "/" + name
	return u.String(), nil
}

// DropDatabase drops database name next to the one baseURL names, if it exists.
func DropDatabase(ctx context.Context, baseURL, name string) error {
	conn, err := pgx.Connect(ctx, baseURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	return err
}

// ClockTicksPerSecond is USER_HZ, the unit of the CPU times in /proc/<pid>/stat: 100 on every
// Linux build this runs on (fixed by the kernel ABI for x86 and arm64).
const ClockTicksPerSecond = 100

// ProcStat is the part of /proc/<pid>/stat the harness uses; CPU times are in clock ticks (USER_HZ).
type ProcStat struct {
	PPID         int
	Self, Reaped int64 // utime+stime, cutime+cstime
}

// ReadProcStat reads /proc/<pid>/stat.
func ReadProcStat(pid int) (ProcStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ProcStat{}, err
	}
	s := string(b)
	open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || closing < open {
		return ProcStat{}, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	f := strings.Fields(s[closing+1:])
	if len(f) < 20 {
		return ProcStat{}, fmt.Errorf("short /proc/%d/stat", pid)
	}
	num := func(i int) int64 { n, _ := strconv.ParseInt(f[i], 10, 64); return n }
	return ProcStat{PPID: int(num(1)), Self: num(11) + num(12), Reaped: num(13) + num(14)}, nil
}

// TreeTicks returns the CPU ticks (USER_HZ) of root and of its direct children: for the
// postmaster, all of PostgreSQL (the children it already reaped are in its Reaped). 0 when root
// is not running.
func TreeTicks(root int) int64 {
	st, err := ReadProcStat(root)
	if err != nil {
		return 0
	}
	ticks := st.Self + st.Reaped
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == root {
			continue
		}
		if cst, err := ReadProcStat(pid); err == nil && cst.PPID == root {
			ticks += cst.Self
		}
	}
	return ticks
}
