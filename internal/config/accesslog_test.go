package config_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/config"
)

func TestTheAccessLogIsKeptUnlessARetentionOfAnHourOrMoreIsSet(t *testing.T) {
	t.Parallel()
	require.Zero(t, config.Default().AccessLogRetention, "kept for ever by default")
	load := func(retention string) (config.Config, error) {
		vals := map[string]string{"DOPPEL_ACCESS_LOG_RETENTION": retention}
		for k, v := range minimal {
			vals[k] = v
		}
		return config.Load("", env(vals))
	}
	cfg, err := load("17520h")
	require.NoError(t, err)
	require.Equal(t, 2*365*24*time.Hour, cfg.AccessLogRetention)
	for _, bad := range []string{"5m", "-1h"} {
		_, err := load(bad)
		require.ErrorContains(t, err, "DOPPEL_ACCESS_LOG_RETENTION must be 0 (keep every entry) or at least 1h", bad)
	}
	_, err = load("two years")
	require.ErrorContains(t, err, "DOPPEL_ACCESS_LOG_RETENTION")
}
