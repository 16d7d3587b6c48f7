package config_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/config"
)

func TestStallAfterDefaultsToTwoMinutesAndMustBePositive(t *testing.T) {
	t.Parallel()
	vals := map[string]string{}
	for k, v := range minimal {
		vals[k] = v
	}
	cfg, err := config.Load("", env(vals))
	require.NoError(t, err)
	require.Equal(t, 2*time.Minute, cfg.StallAfter)

	vals["DOPPEL_STALL_AFTER"] = "500ms"
	cfg, err = config.Load("", env(vals))
	require.NoError(t, err)
	require.Equal(t, 500*time.Millisecond, cfg.StallAfter, "short values work, for tests")

	vals["DOPPEL_STALL_AFTER"] = "0s"
	_, err = config.Load("", env(vals))
	require.ErrorContains(t, err, "DOPPEL_STALL_AFTER must be positive, e.g. 2m")
}
