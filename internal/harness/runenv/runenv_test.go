package runenv_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/harness/runenv"
	"github.com/doppelhq/doppel/internal/harness/testinfra"
)

func TestFreshDatabaseIsEmptyEachTimeAndDropDatabaseRemovesIt(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	base := testinfra.Env(t, "DOPPEL_DATABASE_URL")
	name := testinfra.UniqueName("runenv_test")

	url, err := runenv.FreshDatabase(ctx, base, name)
	require.NoError(t, err)
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "CREATE TABLE left_behind (id int)")
	require.NoError(t, err)
	require.NoError(t, conn.Close(ctx))

	// Again: dropped and created, so what the last run left is gone.
	url, err = runenv.FreshDatabase(ctx, base, name)
	require.NoError(t, err)
	conn, err = pgx.Connect(ctx, url)
	require.NoError(t, err)
	var tables int
	require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE tablename = 'left_behind'").Scan(&tables))
	require.Zero(t, tables)
	require.NoError(t, conn.Close(ctx))

	require.NoError(t, runenv.DropDatabase(ctx, base, name))
	_, err = pgx.Connect(ctx, url)
	require.Error(t, err, "the database is gone")
}

func TestReadProcStatReadsThisProcess(t *testing.T) {
	t.Parallel()
	st, err := runenv.ReadProcStat(os.Getpid())
	require.NoError(t, err)
	require.Equal(t, os.Getppid(), st.PPID)
	_, err = runenv.ReadProcStat(-1)
	require.Error(t, err)
}
