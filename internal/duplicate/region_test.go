package duplicate

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// fakeRegions is one fakeVendor per region; the default region is "ph".
type fakeRegions map[string]*fakeVendor

func (r fakeRegions) FaceSearch(ctx context.Context, sig string) (SearchResult, error) {
	return r["ph"].FaceSearch(ctx, sig)
}

func (r fakeRegions) Verification(ctx context.Context, sig string) (Verification, error) {
	return r["ph"].Verification(ctx, sig)
}

type unknownRegion string

func (e unknownRegion) Error() string   { return fmt.Sprintf("region %q is not configured", string(e)) }
func (e unknownRegion) Permanent() bool { return true }

func (r fakeRegions) ForRegion(name string) (Vendor, error) {
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
	d := NewDetector(regions, store, nil)
	ctx := context.Background()

	res, err := d.Handle(ctx, Event{SignatureID: "sig-th", Type: EventTypeCompleted, UserID: "alice", Region: "th"}, Source{})
	require.NoError(t, err)
	require.Equal(t, OutcomeDuplicatesFound, res.Outcome)
	require.Equal(t, 1, regions["th"].searches["sig-th"], "searched and billed in th")
	require.Zero(t, regions["ph"].searches["sig-th"], "never in ph")
	require.Equal(t, "th", store.checks["sig-th"].Region)
	require.Equal(t, "th", store.alerts[0].Region, "the alert says which region found the link")

	_, err = d.Handle(ctx, Event{SignatureID: "sig-vn", Type: EventTypeCompleted, UserID: "carol", Region: "vn"}, Source{})
	var pf *PermanentFailure
	require.ErrorAs(t, err, &pf)
	require.Equal(t, ReasonUnknownRegion, pf.Reason)
	require.Equal(t, OutcomeFailed, store.checks["sig-vn"].Outcome)

	// A re-run searches in the check's region too.
	r := NewReplayer(regions, &replayStore{checks: store.checks, links: map[[2]string]bool{}}, nil)
	_, err = r.Replay(ctx, "sig-th")
	require.NoError(t, err)
	require.Equal(t, 2, regions["th"].searches["sig-th"])
	require.Zero(t, regions["ph"].searches["sig-th"])
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
