package duplicate

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// fakeRegions is one fakeVendor per region; the default region ("") is "ph".
type fakeRegions map[string]*fakeVendor

type unknownRegion string

func (e unknownRegion) Error() string   { return fmt.Sprintf("region %q is not configured", string(e)) }
func (e unknownRegion) Permanent() bool { return true }

func (r fakeRegions) ForRegion(name string) (Vendor, error) {
	if name == "" {
		name = "ph"
	}
	if v, ok := r[name]; ok {
		return v, nil
	}
	return nil, unknownRegion(name)
}

func TestEachVerificationIsSearchedInItsOwnRegion(t *testing.T) {
	t.Parallel()
	regions := fakeRegions{"ph": newFakeVendor(), "th": newFakeVendor()}
	regions["th"].similar["sig-th"] = []string{"bob"}
	store := newFakeStore()
	d := NewDetector(store, nil)
	ctx := context.Background()

	// The pipeline resolved the event's region once and hands the detector that region's account.
	th, err := regions.ForRegion("th")
	require.NoError(t, err)
	res, err := d.Handle(ctx, Event{SignatureID: "sig-th", Type: EventTypeCompleted, UserID: "alice", Region: "th"}, th, Source{})
	require.NoError(t, err)
	require.Equal(t, OutcomeDuplicatesFound, res.Outcome)
	require.Equal(t, 1, regions["th"].searches["sig-th"], "searched and billed in th")
	require.Zero(t, regions["ph"].searches["sig-th"], "never in ph")
	require.Equal(t, "th", store.checks["sig-th"].Region)
	require.Equal(t, "th", store.alerts[0].Region, "the alert says which region found the link")

	// A re-run searches in the stored check's region too, resolved by the replayer (its edge).
	r := NewReplayer(regions, &replayStore{checks: store.checks, links: map[[2]string]bool{}}, nil)
	_, err = r.Replay(ctx, "sig-th")
	require.NoError(t, err)
	require.Equal(t, 2, regions["th"].searches["sig-th"])
	require.Zero(t, regions["ph"].searches["sig-th"])
	// A stored check whose region is no longer configured is not re-run anywhere else.
	store.checks["sig-vn"] = Check{SignatureID: "sig-vn", UserID: "carol", Region: "vn", Outcome: OutcomeNoDuplicates}
	_, err = r.Replay(ctx, "sig-vn")
	require.ErrorContains(t, err, `region "vn" is not configured`)
}

func TestDecodeEventReadsTheRegionCaseInsensitively(t *testing.T) {
	t.Parallel()
	ev, err := DecodeEvent([]byte(`{"signatureId":"s","type":"COMPLETED","region":" PH "}`), DecodeOptions{})
	require.NoError(t, err)
	require.Equal(t, "ph", ev.Region)
	_, err = DecodeEvent([]byte(`{"signatureId":"s","type":"COMPLETED","region":"p\u0000h"}`), DecodeOptions{})
	var de *DecodeError
	require.ErrorAs(t, err, &de)
	require.Equal(t, ReasonInvalidField, de.Reason)
	require.Contains(t, de.Detail, "region")
}

func TestARegionsRingIsReachedOverTheLinksThatRegionFoundAndNoReviewCleared(t *testing.T) {
	link := func(low, high string, decision Decision, regions ...string) Link {
		l := Link{UserIDLow: low, UserIDHigh: high, Regions: regions}
		if decision != "" {
			l.LatestReview = &Review{Decision: decision}
		}
		return l
	}
	// One ring as the index holds it: th found a-b-c, ph found c-d and a-b as well, b-e was found
	// by th but cleared, and f joined with no link (a face farm's overflow).
	whole := Ring{ID: RingID("a"), Size: 6, Members: []string{"a", "b", "c", "d", "e", "f"}, Links: []Link{
		link("a", "b", "", "ph", "th"),
		link("b", "c", "", "th"),
		link("b", "e", DecisionFalsePositive, "th"),
		link("c", "d", DecisionConfirmedFraud, "ph"),
	}}
	cases := []struct {
		name, user, region string
		members            []string
		links              [][2]string
	}{
		{"th's links from a", "a", "th", []string{"a", "b", "c"}, [][2]string{{"a", "b"}, {"b", "c"}}},
		{"the same ring from its other end, with the same id", "c", "th", []string{"a", "b", "c"}, [][2]string{{"a", "b"}, {"b", "c"}}},
		{"ph's links from a: b-c is th's only", "a", "ph", []string{"a", "b"}, [][2]string{{"a", "b"}}},
		{"ph's other ring: confirmed fraud still joins", "d", "ph", []string{"c", "d"}, [][2]string{{"c", "d"}}},
		{"a cleared pair joins no ring", "e", "th", []string{"e"}, nil},
		{"an account with no link is alone in every region", "f", "th", []string{"f"}, nil},
		{"a region that found nothing", "a", "my", []string{"a"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := RegionRing(whole, c.user, c.region)
			require.Equal(t, c.members, got.Members)
			require.Equal(t, len(c.members), got.Size)
			require.Equal(t, RingID(c.members[0]), got.ID)
			var pairs [][2]string
			for _, l := range got.Links {
				pairs = append(pairs, [2]string{l.UserIDLow, l.UserIDHigh})
			}
			require.Equal(t, c.links, pairs)
			require.False(t, got.Truncated)
		})
	}
	whole.Truncated = true
	require.True(t, RegionRing(whole, "a", "th").Truncated, "a region's ring cut from a truncated ring may be incomplete")
}
