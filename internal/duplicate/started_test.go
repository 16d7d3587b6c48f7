package duplicate_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/duplicate"
)

func TestDecodeStarted(t *testing.T) {
	t.Parallel()
	ev, err := duplicate.DecodeStarted([]byte(`{"signatureId":" s1 ","userId":"u1","region":"sg","startedAt":"2026-12-01T10:00:00Z"}`), 0)
	require.NoError(t, err)
	require.Equal(t, "s1", ev.SignatureID)
	require.Equal(t, "u1", ev.UserID)
	require.Equal(t, "sg", ev.Region)
	require.Equal(t, time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC), ev.StartedAt.UTC())

	ev, err = duplicate.DecodeStarted([]byte(`{"signatureId":"s2"}`), 0)
	require.NoError(t, err, "only signatureId is required")
	require.Nil(t, ev.StartedAt)

	for name, tc := range map[string]struct {
		value, reason, sig string
	}{
		"not json":          {`{"signatureId":`, duplicate.ReasonInvalidJSON, ""},
		"no signatureId":    {`{"userId":"u"}`, duplicate.ReasonMissingSignatureID, ""},
		"numeric signature": {`{"signatureId":7}`, duplicate.ReasonWrongFieldType, ""},
		"control character": {`{"signatureId":"a\u0000b"}`, duplicate.ReasonInvalidSignatureID, ""},
		"bad startedAt":     {`{"signatureId":"s3","startedAt":"yesterday"}`, duplicate.ReasonInvalidField, "s3"},
		"long region":       {`{"signatureId":"s4","region":"` + strings.Repeat("x", 65) + `"}`, duplicate.ReasonInvalidField, "s4"},
		"too large":         {`{"signatureId":"` + strings.Repeat("x", 300) + `"}`, duplicate.ReasonTooLarge, ""},
	} {
		_, err := duplicate.DecodeStarted([]byte(tc.value), 256)
		var de *duplicate.DecodeError
		require.True(t, errors.As(err, &de), name)
		require.Equal(t, tc.reason, de.Reason, name)
		require.Equal(t, tc.sig, de.SignatureID, name)
	}
}
