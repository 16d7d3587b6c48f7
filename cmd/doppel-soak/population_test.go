package main

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/duplicate"
)

func TestPopulationHasEveryKindAndResendsOnlySearchedEvents(t *testing.T) {
	t.Parallel()
	pop := newPopulation(20000, 0.3, 7)
	require.Len(t, pop.sequence, 20000)
	counts := pop.kindCounts()
	for _, k := range []kind{kindPass, kindPassThin, kindNotPassUser, kindNotPassThin, kindSubmit, kindOtherType,
		kindUnknownSig, kindUnknownThin, kindInvalidJSON, kindWrongType, kindMissingSig, kindInvalidSig,
		kindMissingType, kindInvalidField, kindTooLarge} {
		require.GreaterOrEqual(t, counts[string(k)], minPerRareKind, "kind %s", k)
	}
	seen := map[*event]int{}
	for _, ev := range pop.sequence {
		seen[ev]++
	}
	require.Len(t, seen, len(pop.events))
	for ev, n := range seen {
		if n > 1 {
			require.True(t, ev.searched(), "only searched events are sent twice, not %s", ev.Kind)
		}
	}
	inRings := float64(pop.inRing) / float64(counts[string(kindPass)]+counts[string(kindPassThin)]+counts[string(kindSubmit)]+counts[string(kindOtherType)])
	require.InDelta(t, 0.3, inRings, 0.05)
}

func TestMalformedMessagesAreRejectedForTheExpectedReason(t *testing.T) {
	t.Parallel()
	for _, k := range []kind{kindInvalidJSON, kindWrongType, kindMissingSig, kindInvalidSig, kindMissingType, kindInvalidField, kindTooLarge} {
		ev := malformed(k, 1)
		_, err := duplicate.DecodeEvent(ev.Value, duplicate.DecodeOptions{MaxBytes: 64 << 10})
		var de *duplicate.DecodeError
		require.True(t, errors.As(err, &de), "kind %s: %v", k, err)
		require.Equal(t, ev.Expect.DLQ, de.Reason, "kind %s", k)
		// A failed check is stored exactly when Doppel can still tell the signatureId.
		require.Equal(t, ev.Expect.Outcome != "", de.SignatureID != "", "kind %s", k)
		require.Equal(t, ev.Sig, de.SignatureID, "kind %s", k)
		require.NotEmpty(t, ev.Key)
	}
}
