package postgres_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/duplicate"
)

func inRegion(c duplicate.Check, region string, at time.Time) duplicate.Check {
	c.Region, c.CheckedAt = region, at
	return c
}

func TestARegionsSpendIsCountedFromItsStoredSearches(t *testing.T) {
	t.Parallel()
	b := setup(t)
	month := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	lastMonth := month.Add(-time.Hour)
	for _, c := range []duplicate.Check{
		inRegion(check("ph-1", "u1"), "ph", month.Add(time.Hour)),
		inRegion(check("ph-2", "u2", "u1"), "ph", month.Add(2*time.Hour)),
		inRegion(check("ph-old", "u3"), "ph", lastMonth),          // last month's bill
		inRegion(check("th-1", "u4"), "th", month.Add(time.Hour)), // another region's
	} {
		_, err := b.store.SaveCheck(b.ctx, c)
		require.NoError(t, err)
	}
	notSearched := inRegion(check("ph-fail", "u5"), "ph", month.Add(time.Hour))
	notSearched.Outcome = duplicate.OutcomeNotPassed
	_, err := b.store.SaveCheck(b.ctx, notSearched)
	require.NoError(t, err)

	n, err := b.store.FaceSearchesSince(b.ctx, "ph", month)
	require.NoError(t, err)
	require.EqualValues(t, 2, n, "this month's searches in ph: not last month's, not th's, not a FAIL verdict")

	// A re-run this month of last month's check is billed this month.
	rerun := inRegion(check("ph-old", "u3"), "ph", lastMonth)
	at := month.Add(3 * time.Hour)
	rerun.ReplayedAt, rerun.ReplayCount = &at, 1
	_, _, err = b.store.ReplaceCheck(b.ctx, rerun)
	require.NoError(t, err)
	n, err = b.store.FaceSearchesSince(b.ctx, "ph", month)
	require.NoError(t, err)
	require.EqualValues(t, 3, n)
}

func TestALinkRecordsEachRegionThatFoundIt(t *testing.T) {
	t.Parallel()
	b := setup(t)
	now := time.Now()
	for _, c := range []duplicate.Check{
		inRegion(check("s1", "alice", "bob"), "ph", now),
		inRegion(check("s2", "bob", "alice"), "ph", now), // ph again: listed once
		inRegion(check("s3", "bob", "alice"), "th", now),
		inRegion(check("s4", "carol", "dave"), "", now), // no region: the single-region name
	} {
		_, err := b.store.SaveCheck(b.ctx, c)
		require.NoError(t, err)
	}
	var regions []string
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT regions FROM duplicate_links WHERE user_id_low = 'alice'`).Scan(&regions))
	require.Equal(t, []string{"ph", "th"}, regions)
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT regions FROM duplicate_links WHERE user_id_low = 'carol'`).Scan(&regions))
	require.Equal(t, []string{"default"}, regions)

	ph, err := b.store.UserDuplicates(b.ctx, "carol", "ph")
	require.NoError(t, err)
	require.Empty(t, ph)
	all, err := b.store.UserDuplicates(b.ctx, "alice", "")
	require.NoError(t, err)
	require.Len(t, all, 1)
	require.Equal(t, []string{"ph", "th"}, all[0].Regions)

	c, err := b.store.Check(b.ctx, "s3")
	require.NoError(t, err)
	require.Equal(t, "th", c.Region)
	alerts, err := b.store.Alerts(b.ctx, duplicate.AlertQuery{Limit: 10, Region: "ph"})
	require.NoError(t, err)
	require.Len(t, alerts, 1, "s1's alert; s2 and s3 found nothing new")
	require.Equal(t, "ph", alerts[0].Region)
}

func TestRegionFraudRingsAreTheRingsEachRegionFound(t *testing.T) {
	t.Parallel()
	b := setup(t)
	now := time.Now()
	for _, c := range []duplicate.Check{
		inRegion(check("s1", "bob", "alice"), "ph", now),
		inRegion(check("s2", "carol", "alice", "bob"), "ph", now),
		inRegion(check("s3", "dave", "carol"), "th", now), // carol and dave only in th
		inRegion(check("s4", "bob", "alice"), "th", now),  // alice~bob in both
	} {
		_, err := b.store.SaveCheck(b.ctx, c)
		require.NoError(t, err)
	}
	rows, err := b.pool.Query(b.ctx, `SELECT region, size, members, link_count FROM region_fraud_rings ORDER BY region, ring_id`)
	require.NoError(t, err)
	type ring struct {
		region  string
		size    int
		members []string
		links   int
	}
	var got []ring
	for rows.Next() {
		var r ring
		require.NoError(t, rows.Scan(&r.region, &r.size, &r.members, &r.links))
		got = append(got, r)
	}
	require.NoError(t, rows.Err())
	slices.SortFunc(got, func(a, b ring) int { return strings.Compare(a.region+a.members[0], b.region+b.members[0]) })
	require.Equal(t, []ring{
		{"ph", 3, []string{"alice", "bob", "carol"}, 3},
		{"th", 2, []string{"alice", "bob"}, 1},
		{"th", 2, []string{"carol", "dave"}, 1},
	}, got)
}
