package postgres_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/postgres"
)

// Data PostgreSQL refuses for good (a NUL in a text) is reported as refused, so the event becomes a
// dead letter; a database that cannot be reached is not.
func TestDataPostgreSQLRefusesIsToldApartFromAnOutage(t *testing.T) {
	t.Parallel()
	b := setup(t)
	c := check("s1", "carol", "alice")
	c.VendorTransactionID = "tx\x00"
	_, err := b.store.SaveCheck(b.ctx, c)
	require.ErrorIs(t, err, duplicate.ErrCheckRefused)

	c.VendorTransactionID = "tx-1"
	_, err = b.store.SaveCheck(b.ctx, c)
	require.NoError(t, err, "the same check with storable data is stored")

	pool := b.pool
	closed, err := postgres.Connect(context.Background(), pool.Config().ConnString(), 1)
	require.NoError(t, err)
	closed.Close()
	_, err = postgres.NewStore(closed).SaveCheck(b.ctx, check("s2", "dave", "erin"))
	require.Error(t, err)
	require.NotErrorIs(t, err, duplicate.ErrCheckRefused)
}
