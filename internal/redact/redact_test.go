package redact_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/redact"
)

func TestRedactURLHidesThePassword(t *testing.T) {
	t.Parallel()
	got := redact.DatabaseURL("postgres://doppel:hunter2@db:5432/doppel?sslmode=disable")
	require.NotContains(t, got, "hunter2")
	require.Contains(t, got, "db:5432")

	got = redact.DatabaseURL("postgres://doppel@db:5432/doppel?password=hunter3&sslmode=disable")
	require.NotContains(t, got, "hunter3", "a password given as a query parameter is masked too")
	require.Contains(t, got, "sslmode=disable")
}
