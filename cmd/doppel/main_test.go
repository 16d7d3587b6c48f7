package main

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/config"
	"github.com/doppelhq/doppel/internal/consumer"
	"github.com/doppelhq/doppel/internal/harness/advancesim"
	"github.com/doppelhq/doppel/internal/harness/testinfra"
	"github.com/doppelhq/doppel/internal/pseudonym"
	"github.com/doppelhq/doppel/migrations"
)

// doppel runs the command line as main does, with environ and stdin, and returns what it printed.
func doppel(t *testing.T, environ map[string]string, stdin string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	err := run(ctx, args, environ, strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), err
}

func TestEveryCommandHasHelpThatLoadsNoConfiguration(t *testing.T) {
	t.Parallel()
	// Nothing is set and one value is broken: help must not care.
	broken := map[string]string{"DOPPEL_WORKERS": "many", "DOPPEL_CONFIG": "/no/such/file.yaml"}
	var paths [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		paths = append(paths, path)
		for _, sub := range c.Commands() {
			walk(sub, append(append([]string(nil), path...), sub.Name()))
		}
	}
	walk((&app{environ: broken}).rootCommand(), nil)
	require.Greater(t, len(paths), 12, "serve, migrate and its 5, config check, replay, dlq replay, version, ...")
	for _, path := range paths {
		out, _, err := doppel(t, broken, "", append(path, "--help")...)
		require.NoError(t, err, "doppel %v --help", path)
		require.Contains(t, out, "Usage:", "doppel %v --help", path)
	}
	out, _, err := doppel(t, broken, "")
	require.NoError(t, err, "bare doppel prints the help")
	require.Contains(t, out, "Available Commands")
}

func TestVersionNamesTheBuild(t *testing.T) {
	t.Parallel()
	out, _, err := doppel(t, nil, "", "version")
	require.NoError(t, err)
	require.Regexp(t, `^doppel dev \(commit \S+.*, go1\.\d+`, out)
	out, _, err = doppel(t, nil, "", "--version")
	require.NoError(t, err)
	require.Contains(t, out, "doppel dev")
}

func TestCompletionScripts(t *testing.T) {
	t.Parallel()
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		out, _, err := doppel(t, nil, "", "completion", shell)
		require.NoError(t, err)
		require.Contains(t, out, "doppel", shell)
	}
	// --reason completes to the known reasons.
	out, _, err := doppel(t, nil, "", cobra.ShellCompRequestCmd, "dlq", "replay", "--reason", "retr")
	require.NoError(t, err)
	require.Contains(t, out, consumer.ReasonRetriesExhausted)
}

func TestEachCommandsSettingsAreKnown(t *testing.T) {
	t.Parallel()
	var known []string
	for _, s := range config.Settings() {
		known = append(known, s.Env)
	}
	for _, name := range append(append(append([]string(nil), replaySettings...), dlqSettings...), databaseSettings...) {
		require.Contains(t, known, name)
	}
}

func TestMigrateNeedsOnlyTheDatabaseAndAsksBeforeDroppingTheAudit(t *testing.T) {
	t.Parallel()
	dbURL, pool := testinfra.Database(t)
	// No brokers, no vendor keys, and a broken setting migrate does not use.
	environ := map[string]string{"DOPPEL_DATABASE_URL": dbURL, "DOPPEL_WORKERS": "many"}

	ups, err := fs.Glob(migrations.FS, "*.up.sql")
	require.NoError(t, err)
	// Versions are the files' numbers, which need not be contiguous (helpers number theirs apart).
	versions := make([]int, len(ups))
	for i, name := range ups {
		versions[i], err = strconv.Atoi(strings.SplitN(name, "_", 2)[0])
		require.NoError(t, err, name)
	}
	slices.Sort(versions)
	latest, previous := versions[len(versions)-1], versions[len(versions)-2]
	version := func(v int) string { return fmt.Sprintf("schema version: %d (dirty: false)", v) }

	out, _, err := doppel(t, environ, "", "migrate", "up")
	require.NoError(t, err)
	require.Contains(t, out, version(latest))

	// Going below 2 drops the review audit: asked, refused, nothing reverted.
	_, errOut, err := doppel(t, environ, "no\n", "migrate", "goto", "1")
	require.ErrorContains(t, err, "not reverted")
	require.Contains(t, errOut, "DROP TABLE IF EXISTS link_reviews;")
	require.Contains(t, errOut, "append-only review audit")
	out, _, err = doppel(t, environ, "", "migrate", "version")
	require.NoError(t, err)
	require.Contains(t, out, version(latest), "nothing was reverted")

	_, errOut, err = doppel(t, environ, "", "migrate", "down")
	require.ErrorContains(t, err, "pass --yes", "no answer is no")
	require.Contains(t, errOut, fmt.Sprintf("from version %d to %d", latest, previous))
	out, _, err = doppel(t, environ, "yes\n", "migrate", "down")
	require.NoError(t, err)
	require.Contains(t, out, version(previous))

	out, _, err = doppel(t, environ, "", "migrate", "goto", "1", "--yes")
	require.NoError(t, err)
	require.Contains(t, out, version(1))
	_, err = pool.Exec(context.Background(), "SELECT 1 FROM link_reviews")
	require.Error(t, err, "the audit is gone")

	out, _, err = doppel(t, environ, "", "migrate", "goto", strconv.Itoa(latest))
	require.NoError(t, err)
	require.Contains(t, out, version(latest))
	_, err = pool.Exec(context.Background(), "SELECT 1 FROM link_reviews")
	require.NoError(t, err, "goto re-created the table")

	out, _, err = doppel(t, environ, "", "migrate", "down", "--yes")
	require.NoError(t, err)
	require.Contains(t, out, version(previous))

	// force records a version after a hand repair, running nothing.
	out, _, err = doppel(t, environ, "", "migrate", "force", strconv.Itoa(latest))
	require.NoError(t, err)
	require.Contains(t, out, version(latest))
	out, _, err = doppel(t, environ, "", "migrate", "force", "--", "-1")
	require.NoError(t, err)
	require.Contains(t, out, "schema version: none")
	_, err = pool.Exec(context.Background(), "SELECT 1 FROM idv_checks")
	require.NoError(t, err, "force ran no migration: the tables are still there")

	_, _, err = doppel(t, environ, "", "migrate", "force", "two")
	require.ErrorContains(t, err, "VERSION must be a migration number")
	_, _, err = doppel(t, map[string]string{}, "", "migrate", "version")
	require.ErrorContains(t, err, "DOPPEL_DATABASE_URL is not set")
	require.NotContains(t, err.Error(), "DOPPEL_ADVANCE")
}

func TestDLQReplayHonoursTheConfigFileAndListsWhatADryRunWouldReplay(t *testing.T) {
	t.Parallel()
	topics := testinfra.Topics(t, 1, "dlq", "events")
	letter := func(key, reason string) kafka.Message {
		return kafka.Message{Key: []byte(key), Value: []byte(`{"signatureId":"` + key + `"}`),
			Headers: []kafka.Header{{Key: consumer.HeaderReason, Value: []byte(reason)}}}
	}
	testinfra.Produce(t, topics[0], letter("sig-1", consumer.ReasonRetriesExhausted), letter("sig-2", "invalid_json"))
	path := t.TempDir() + "/doppel.yaml"
	require.NoError(t, os.WriteFile(path, []byte("topic_dlq: "+topics[0]+"\ntopic_events: "+topics[1]+"\n"), 0o600))
	environ := map[string]string{"DOPPEL_KAFKA_BROKERS": strings.Join(testinfra.Brokers(t), ",")}

	out, errOut, err := doppel(t, environ, "", "--config", path, "dlq", "replay", "--dry-run", "--reason", consumer.ReasonRetriesExhausted)
	require.NoError(t, err, errOut)
	require.Regexp(t, `\d{4}-\d\d-\d\dT\S+Z +retries_exhausted +"sig-1" +0/0`, out)
	require.NotContains(t, out, "sig-2")
	require.Contains(t, out, "would replay (dry run) 1 of 2 dead letters from "+topics[0])
	require.NotContains(t, errOut, "reading dead letters", "no progress frames when stderr is not a terminal")

	_, _, err = doppel(t, environ, "", "--config", path, "dlq", "replay", "--reason", "retries_exhaustd")
	require.ErrorContains(t, err, `unknown --reason "retries_exhaustd": the known reasons are too_large,`)
}

func TestServeSaysWhatToCheckWhenTheBrokerIsDown(t *testing.T) {
	t.Parallel()
	dbURL, _ := testinfra.Database(t)
	environ := map[string]string{"DOPPEL_DATABASE_URL": dbURL, "DOPPEL_KAFKA_BROKERS": "127.0.0.1:1",
		"DOPPEL_ADVANCE_BASE_URL": "http://127.0.0.1:2", "DOPPEL_ADVANCE_ACCESS_KEY": "a", "DOPPEL_ADVANCE_SECRET_KEY": "b"}
	_, _, err := doppel(t, environ, "", "serve")
	require.ErrorContains(t, err, "broker at 127.0.0.1:1 not available: is it running?")
}

func TestConfigCheckConnectTriesEachDependency(t *testing.T) {
	t.Parallel()
	dbURL, _ := testinfra.Database(t)
	_, simURL := testinfra.Sim(t, advancesim.Config{})
	environ := map[string]string{"DOPPEL_DATABASE_URL": dbURL, "DOPPEL_KAFKA_BROKERS": strings.Join(testinfra.Brokers(t), ","),
		"DOPPEL_ADVANCE_BASE_URL": simURL, "DOPPEL_ADVANCE_ACCESS_KEY": testinfra.SimAccessKey,
		"DOPPEL_ADVANCE_SECRET_KEY": testinfra.SimSecretKey, "DOPPEL_WORKRES": "3"}
	out, _, err := doppel(t, environ, "", "config", "check", "--connect")
	require.NoError(t, err)
	require.Contains(t, out, "# warning: DOPPEL_WORKRES is set but is not a Doppel setting (did you mean DOPPEL_WORKERS?)")
	for _, dep := range []string{"database", "kafka", "vendor"} {
		require.Contains(t, out, "# "+dep+": ok")
	}

	environ["DOPPEL_ADVANCE_SECRET_KEY"] = "wrong-secret"
	out, _, err = doppel(t, environ, "", "config", "check", "--connect")
	require.ErrorContains(t, err, "1 of 3 connections failed")
	require.Contains(t, out, "# vendor: FAILED")
	require.NotContains(t, out+err.Error(), "wrong-secret")
}

// doppel serve's log names a person only by a pseudonym, the keyed hash under
// DOPPEL_PSEUDONYM_KEY, unless DOPPEL_LOG_PSEUDONYMIZE=false.
func TestTheLogPseudonymizesUserIDs(t *testing.T) {
	t.Parallel()
	line := func(cfg config.Config) string {
		var out bytes.Buffer
		log, err := newLogger(cfg, &out)
		require.NoError(t, err)
		log.Warn("face search named ids that are not valid userIds", "first_user_id", "cust-1004", "signature_id", "s1")
		return out.String()
	}
	cfg := config.Default()
	cfg.PseudonymKey = "0123456789abcdef0123456789abcdef"
	got := line(cfg)
	require.NotContains(t, got, "cust-1004")
	require.Contains(t, got, pseudonym.NewKey([]byte(cfg.PseudonymKey)).Of("cust-1004"), "the same key gives the same pseudonym")
	cfg.PseudonymKey = ""
	require.NotContains(t, line(cfg), "cust-1004", "without a key, a random one")
	cfg.LogPseudonymize = false
	require.Contains(t, line(cfg), "cust-1004", "DOPPEL_LOG_PSEUDONYMIZE=false writes ids as they are")
}
