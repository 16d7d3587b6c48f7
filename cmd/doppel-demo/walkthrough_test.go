package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/harness/testinfra"
)

// walkthroughBlocks returns the README's fenced blocks marked "sh walkthrough", in order.
func walkthroughBlocks(t *testing.T, readme string) []string {
	t.Helper()
	var blocks []string
	var cur *strings.Builder
	for line := range strings.SplitSeq(readme, "\n") {
		switch {
		case cur == nil && strings.TrimSpace(line) == "```sh walkthrough":
			cur = &strings.Builder{}
		case cur != nil && strings.TrimSpace(line) == "```":
			blocks = append(blocks, cur.String())
			cur = nil
		case cur != nil:
			cur.WriteString(line + "\n")
		}
	}
	require.Nil(t, cur, "an unclosed walkthrough block in README.md")
	return blocks
}

// descendants returns the processes below pid, from /proc: make, the scripts, doppel-demo and what
// it started (doppel serve, both simulators).
func descendants(pid int) []int {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so read after the last ')'.
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(fields) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(fields[1])
		children[ppid] = append(children[ppid], p)
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// alive reports whether pid runs (a zombie waiting to be reaped does not).
func alive(pid int) bool {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}

// The README's walk-through runs as written against what `make dev` seeds and writes to
// .local/dev.env, so it cannot drift from the stack again; and a SIGTERM to `make dev` stops every
// process it started (before, scripts/with-infra.sh never passed the signal on, and doppel serve,
// doppel-demo and both simulators outlived it).
func TestTheREADMEWalkthroughRunsAgainstMakeDevAndSIGTERMStopsIt(t *testing.T) {
	root := testinfra.RepoRoot()
	raw, err := os.ReadFile(filepath.Join(root, "README.md"))
	require.NoError(t, err)
	require.LessOrEqual(t, strings.Count(string(raw), "\n"), 250, "the README is the short front door: depth goes to docs/")
	blocks := walkthroughBlocks(t, string(raw))
	require.GreaterOrEqual(t, len(blocks), 3, "README.md's walk-through blocks (```sh walkthrough)")

	envFile := filepath.Join(t.TempDir(), "dev.env")
	addr := testinfra.FreeAddr(t)
	cmd := exec.Command("make", "--no-print-directory", "dev")
	cmd.Dir = root
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k != "MAKEFLAGS" && k != "MAKELEVEL" && k != "MFLAGS" {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, "DEV_HTTP_ADDR="+addr, "DEMO_DATABASE=doppel_walkthrough", "DEV_ENV_FILE="+envFile,
		"DOPPEL_DATABASE_URL="+testinfra.Env(t, "DOPPEL_DATABASE_URL"), "DOPPEL_KAFKA_BROKERS="+testinfra.Env(t, "DOPPEL_KAFKA_BROKERS"))
	logPath := filepath.Join(t.TempDir(), "make-dev.log")
	logFile, err := os.Create(logPath)
	require.NoError(t, err)
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	require.NoError(t, cmd.Start())
	makePID := cmd.Process.Pid
	var started []int
	t.Cleanup(func() { // whatever happened, nothing is left running
		for _, p := range append(descendants(makePID), started...) {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	showLog := func() string { b, _ := os.ReadFile(logPath); return string(b) }

	testinfra.Eventually(t, 5*time.Minute, func() bool {
		_, err := os.Stat(envFile)
		return err == nil
	}, "make dev writes %s once the stack is ready", envFile)
	dev, err := os.ReadFile(envFile)
	require.NoError(t, err)
	require.Contains(t, string(dev), "export ANALYST_KEY=")
	require.Contains(t, string(dev), "export DOPPEL_ADMIN_URL=")
	signInAsTheDevAnalysts(t, string(dev), "http://"+addr)

	for i, block := range blocks {
		script := strings.ReplaceAll(block, ". .local/dev.env", ". '"+envFile+"'")
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		run := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", script)
		run.Dir = root
		out, err := run.CombinedOutput()
		cancel()
		require.NoError(t, err, "walk-through block %d failed:\n%s\n--- output:\n%s\n--- make dev:\n%s", i+1, block, out, showLog())
		t.Logf("block %d:\n%s", i+1, out)
	}

	started = descendants(makePID)
	require.NotEmpty(t, started)
	require.NoError(t, syscall.Kill(makePID, syscall.SIGTERM))
	testinfra.Eventually(t, 60*time.Second, func() bool {
		for _, p := range append(started, makePID) {
			if alive(p) {
				return false
			}
		}
		return true
	}, "every process make dev started is gone after SIGTERM")
	_, err = os.Stat(envFile)
	require.True(t, os.IsNotExist(err), "make dev removes its dev.env when it stops")
	scanner := bufio.NewScanner(strings.NewReader(showLog()))
	stopping := false
	for scanner.Scan() {
		stopping = stopping || strings.Contains(scanner.Text(), "Stopping doppel serve and advance-sim")
	}
	require.True(t, stopping, "doppel-demo stopped its children itself:\n%s", showLog())
}

// signInAsTheDevAnalysts signs in to the console as the reviewer and the lead make dev made and
// printed, with the names and passwords of its dev.env.
func signInAsTheDevAnalysts(t *testing.T, devEnv, base string) {
	t.Helper()
	vars := map[string]string{}
	for _, line := range strings.Split(devEnv, "\n") {
		if k, v, ok := strings.Cut(strings.TrimPrefix(line, "export "), "="); ok {
			vars[k] = strings.Trim(v, "'")
		}
	}
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	for _, role := range []string{"REVIEWER", "LEAD"} {
		require.NotEmpty(t, vars[role+"_NAME"], "dev.env names the %s", role)
		jar, _ := cookiejar.New(nil)
		hc := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		res, err := hc.Get(base + "/console/login")
		require.NoError(t, err)
		page, _ := io.ReadAll(res.Body)
		res.Body.Close()
		m := csrf.FindSubmatch(page)
		require.NotNil(t, m)
		res, err = hc.PostForm(base+"/console/login", url.Values{"csrf": {string(m[1])}, "name": {vars[role+"_NAME"]},
			"password": {vars[role+"_PASSWORD"]}})
		require.NoError(t, err)
		res.Body.Close()
		require.Equal(t, http.StatusSeeOther, res.StatusCode, "the %s signs in", role)
		require.Equal(t, "/console/", res.Header.Get("Location"))
	}
}
