package config_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/config"
)

func env(vals map[string]string) func(string) string {
	return func(k string) string { return vals[k] }
}

var minimal = map[string]string{
	"DOPPEL_DATABASE_URL":       "postgres://doppel:s3cret-pw@db:5432/doppel",
	"DOPPEL_KAFKA_BROKERS":      "k1:9092, k2:9092",
	"DOPPEL_ADVANCE_BASE_URL":   "https://sg-api.advance.ai",
	"DOPPEL_ADVANCE_ACCESS_KEY": "ak-123",
	"DOPPEL_ADVANCE_SECRET_KEY": "sk-456",
}

func TestLoadAppliesDefaultsAndEnvironment(t *testing.T) {
	t.Parallel()
	vals := map[string]string{"DOPPEL_WORKERS": "64", "DOPPEL_RETRY_MAX_ELAPSED": "30s", "DOPPEL_ADVANCE_QPS": "12.5"}
	for k, v := range minimal {
		vals[k] = v
	}
	cfg, err := config.Load("", env(vals))
	require.NoError(t, err)
	require.Equal(t, []string{"k1:9092", "k2:9092"}, cfg.KafkaBrokers)
	require.Equal(t, 64, cfg.Workers)
	require.Equal(t, 30*time.Second, cfg.RetryMaxElapsed)
	require.InDelta(t, 12.5, cfg.AdvanceQPS, 0.001)
	require.Equal(t, "idv.completed", cfg.TopicEvents, "default kept")
}

func TestEnvironmentOverridesTheFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "doppel.yaml")
	require.NoError(t, os.WriteFile(path, []byte("workers: 7\ntopic_alerts: risk.alerts\nkafka_brokers: [f:1]\n"), 0o600))
	cfg, err := config.Load(path, env(map[string]string{
		"DOPPEL_DATABASE_URL": minimal["DOPPEL_DATABASE_URL"], "DOPPEL_ADVANCE_BASE_URL": minimal["DOPPEL_ADVANCE_BASE_URL"],
		"DOPPEL_ADVANCE_ACCESS_KEY": "a", "DOPPEL_ADVANCE_SECRET_KEY": "b", "DOPPEL_WORKERS": "9"}))
	require.NoError(t, err)
	require.Equal(t, 9, cfg.Workers, "the variable wins")
	require.Equal(t, "risk.alerts", cfg.TopicAlerts, "the file wins over the default")
	require.Equal(t, []string{"f:1"}, cfg.KafkaBrokers)
}

func TestTheExampleFileIsValid(t *testing.T) {
	t.Parallel()
	_, err := config.Load("../../configs/doppel.example.yaml", env(map[string]string{
		"DOPPEL_ADVANCE_ACCESS_KEY": "a", "DOPPEL_ADVANCE_SECRET_KEY": "b"}))
	require.NoError(t, err)
}

func TestInvalidConfigurationSaysWhatToSet(t *testing.T) {
	t.Parallel()
	_, err := config.Load("", env(map[string]string{"DOPPEL_WORKERS": "many", "DOPPEL_LOG_LEVEL": "loud"}))
	require.Error(t, err)
	require.Contains(t, err.Error(), "DOPPEL_WORKERS: want a whole number")

	_, err = config.Load("", env(map[string]string{"DOPPEL_LOG_LEVEL": "loud"}))
	msg := err.Error()
	for _, want := range []string{"DOPPEL_DATABASE_URL is not set", "DOPPEL_KAFKA_BROKERS is not set",
		"DOPPEL_ADVANCE_BASE_URL is not set", "DOPPEL_ADVANCE_ACCESS_KEY is not set",
		"DOPPEL_ADVANCE_SECRET_KEY is not set", "DOPPEL_LOG_LEVEL must be"} {
		require.Contains(t, msg, want)
	}
}

func TestUnknownFileKeysAreRejected(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "doppel.yaml")
	require.NoError(t, os.WriteFile(path, []byte("workerz: 7\nfrobnicate: true\n"), 0o600))
	_, err := config.Load(path, env(minimal))
	require.ErrorContains(t, err, `unknown key "workerz" (did you mean workers?)`)
	require.ErrorContains(t, err, `unknown key "frobnicate"`)
}

func TestDescribeMasksSecretsAndSaysWhereEachValueCameFrom(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "doppel.yaml")
	require.NoError(t, os.WriteFile(path, []byte("topic_alerts: risk.alerts\n"), 0o600))
	l, err := config.LoadEnv(path, minimal)
	require.NoError(t, err)
	var out bytes.Buffer
	require.NoError(t, l.Describe(&out))
	s := out.String()
	require.NotContains(t, s, "s3cret-pw")
	require.NotContains(t, s, "ak-123")
	require.NotContains(t, s, "sk-456")
	require.Regexp(t, `(?m)^DOPPEL_ADVANCE_ACCESS_KEY=\*\*\*\*\* +# environment$`, s)
	require.Contains(t, s, "db:5432", "the database host stays visible")
	require.Regexp(t, `(?m)^DOPPEL_WORKERS=512 +# default$`, s)
	require.Regexp(t, `(?m)^DOPPEL_TOPIC_ALERTS=risk.alerts +# file$`, s)
	for _, st := range config.Settings() {
		require.Regexp(t, `(?m)^`+st.Env+`=`, s, "every setting is shown")
	}
}

func TestUnknownVariablesAreReportedWithTheNearestSetting(t *testing.T) {
	t.Parallel()
	vals := map[string]string{"DOPPEL_WORKRES": "64", "DOPPEL_QUUX_FROBNICATE": "1", "DOPPEL_CONFIG": "x.yaml",
		"DOPPEL_PG_PORT": "5432", "HOME": "/root"}
	for k, v := range minimal {
		vals[k] = v
	}
	l, err := config.LoadEnv("", vals)
	require.NoError(t, err, "an unknown variable warns, it does not stop start-up")
	require.Equal(t, []config.Unknown{{Name: "DOPPEL_QUUX_FROBNICATE"}, {Name: "DOPPEL_WORKRES", Nearest: "DOPPEL_WORKERS"}}, l.Unknown)
	require.Contains(t, l.Unknown[1].String(), "did you mean DOPPEL_WORKERS?")
	require.Equal(t, 512, l.Config.Workers, "the misspelt variable is ignored")
}

func TestListenAddressesAreValidated(t *testing.T) {
	t.Parallel()
	for addr, ok := range map[string]bool{":8080": true, "127.0.0.1:8080": true, "[::1]:0": true, "localhost:80": true,
		"nonsense": false, "8080": false, ":http": false, ":70000": false, "bad host:80": false} {
		for _, pair := range [][2]string{{"DOPPEL_HTTP_ADDR", "DOPPEL_ADMIN_ADDR"}, {"DOPPEL_ADMIN_ADDR", "DOPPEL_HTTP_ADDR"}} {
			vals := map[string]string{pair[0]: addr, pair[1]: "127.0.0.1:1"}
			for k, v := range minimal {
				vals[k] = v
			}
			_, err := config.LoadEnv("", vals)
			if ok {
				require.NoError(t, err, addr)
				continue
			}
			require.ErrorContains(t, err, pair[0]+" must", addr)
		}
	}
}

func TestACommandValidatesOnlyTheSettingsItUses(t *testing.T) {
	t.Parallel()
	db := map[string]string{"DOPPEL_DATABASE_URL": minimal["DOPPEL_DATABASE_URL"], "DOPPEL_WORKERS": "many"}
	l, err := config.LoadEnv("", db, "DOPPEL_DATABASE_URL")
	require.NoError(t, err, "no vendor keys, no brokers, and a bad setting it does not use")
	require.Equal(t, minimal["DOPPEL_DATABASE_URL"], l.Config.DatabaseURL)

	_, err = config.LoadEnv("", map[string]string{}, "DOPPEL_DATABASE_URL")
	require.ErrorContains(t, err, "DOPPEL_DATABASE_URL is not set")
	require.NotContains(t, err.Error(), "DOPPEL_ADVANCE")
}

func TestEverySettingIsInTheExampleFile(t *testing.T) {
	t.Parallel()
	example, err := os.ReadFile("../../configs/doppel.example.yaml")
	require.NoError(t, err)
	for _, st := range config.Settings() {
		require.Regexp(t, `(?m)^#? ?`+st.Key+`:.*# `+st.Env+`\b`, string(example),
			"configs/doppel.example.yaml shows %s with its variable", st.Key)
	}
}

func TestReconcileSettings(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	require.Equal(t, "idv.started", cfg.TopicStarted)
	require.Equal(t, 15*time.Minute, cfg.ReconcileAfter)
	require.Equal(t, 10*time.Minute, cfg.ReconcileInterval)
	require.Equal(t, 168*time.Hour, cfg.ReconcileGiveUp)
	require.False(t, cfg.EnrollFailed)
	// Polling takes at most 10% of the vendor rate by default.
	require.InDelta(t, 5.0, cfg.PollQPS(), 1e-9)
	cfg.ReconcileQPS = 2
	require.InDelta(t, 2.0, cfg.PollQPS(), 1e-9)

	_, err := config.Load("", env(map[string]string{
		"DOPPEL_DATABASE_URL": "postgres://u@h:5432/d", "DOPPEL_KAFKA_BROKERS": "h:9092",
		"DOPPEL_ADVANCE_BASE_URL": "http://sim:8090", "DOPPEL_ADVANCE_ACCESS_KEY": "a", "DOPPEL_ADVANCE_SECRET_KEY": "s",
		"DOPPEL_RECONCILE_AFTER": "2s", "DOPPEL_RECONCILE_INTERVAL": "1s", "DOPPEL_RECONCILE_GIVE_UP": "1s",
		"DOPPEL_RECONCILE_QPS": "60", "DOPPEL_RECONCILE_ALERT_RATIO": "0", "DOPPEL_TOPIC_STARTED": "idv.completed",
	}))
	require.Error(t, err)
	for _, want := range []string{"DOPPEL_RECONCILE_GIVE_UP", "DOPPEL_RECONCILE_QPS", "DOPPEL_RECONCILE_ALERT_RATIO", "DOPPEL_TOPIC_STARTED"} {
		require.ErrorContains(t, err, want)
	}
}

func TestDescribeMasksAPasswordGivenAsAQueryParameter(t *testing.T) {
	t.Parallel()
	vals := map[string]string{}
	for k, v := range minimal {
		vals[k] = v
	}
	vals["DOPPEL_DATABASE_URL"] = "postgres://doppel@db:5432/doppel?sslmode=disable&password=qu3ry-pw&sslpassword=k3y-pw"
	l, err := config.LoadEnv("", vals)
	require.NoError(t, err)
	var out bytes.Buffer
	require.NoError(t, l.Describe(&out))
	require.NotContains(t, out.String(), "qu3ry-pw")
	require.NotContains(t, out.String(), "k3y-pw")
	require.Contains(t, out.String(), "db:5432")
	require.Contains(t, out.String(), "sslmode=disable", "the rest of the URL stays visible")
}

func TestTheRetiredPprofVariableSaysWhatToSetInstead(t *testing.T) {
	t.Parallel()
	vals := map[string]string{"DOPPEL_PPROF_ADDR": "127.0.0.1:6060"}
	for k, v := range minimal {
		vals[k] = v
	}
	_, err := config.Load("", env(vals))
	require.ErrorContains(t, err, "DOPPEL_ADMIN_ADDR")
	require.ErrorContains(t, err, "/debug/pprof/")
}

func TestTheAdminListenerIsOnLoopbackAndApartFromTheAPI(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load("", env(minimal))
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:9090", cfg.AdminAddr)
	require.Equal(t, 1000, cfg.ReplayMaxChecks)
	vals := map[string]string{"DOPPEL_ADMIN_ADDR": ":8080", "DOPPEL_REPLAY_MAX_CHECKS": "0"}
	for k, v := range minimal {
		vals[k] = v
	}
	_, err = config.Load("", env(vals))
	require.ErrorContains(t, err, "DOPPEL_ADMIN_ADDR must differ from DOPPEL_HTTP_ADDR")
	require.ErrorContains(t, err, "DOPPEL_REPLAY_MAX_CHECKS must be at least 1")
}

// DOPPEL_PUBLIC_URL is an absolute http(s) address; an https one says a TLS proxy is in front.
func TestThePublicURLIsAnAbsoluteAddressAndHTTPSMeansTLS(t *testing.T) {
	t.Parallel()
	load := func(extra map[string]string) (config.Config, error) {
		vals := map[string]string{}
		for k, v := range minimal {
			vals[k] = v
		}
		for k, v := range extra {
			vals[k] = v
		}
		return config.Load("", env(vals))
	}
	cfg, err := load(nil)
	require.NoError(t, err)
	require.False(t, cfg.ServedOverTLS())
	require.Equal(t, 10000, cfg.ReplayDailyLimit)
	cfg, err = load(map[string]string{"DOPPEL_PUBLIC_URL": "https://doppel.example.com"})
	require.NoError(t, err)
	require.True(t, cfg.ServedOverTLS())
	for _, bad := range []string{"doppel.example.com", "ftp://x", "https://", "https://u:p@doppel.example.com", "https://d.example.com/?a=b"} {
		_, err = load(map[string]string{"DOPPEL_PUBLIC_URL": bad})
		require.ErrorContains(t, err, "DOPPEL_PUBLIC_URL must be the public listener's absolute address", bad)
	}
	_, err = load(map[string]string{"DOPPEL_REPLAY_DAILY_LIMIT": "-1"})
	require.ErrorContains(t, err, "DOPPEL_REPLAY_DAILY_LIMIT must be 0")
}
