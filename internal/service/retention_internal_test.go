package service

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestAnAlertTopicKeepingAlertsLongerThanTheRetentionIsWarnedAbout(t *testing.T) {
	t.Parallel()
	week, day := 7*24*time.Hour, 24*time.Hour
	require.NotEmpty(t, alertRetentionProblem(week, day))
	require.NotEmpty(t, alertRetentionProblem(-1, day), "for ever is longer")
	require.Empty(t, alertRetentionProblem(day, week))
	require.Empty(t, alertRetentionProblem(day, day))
}
