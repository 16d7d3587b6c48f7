package duplicate

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

func TestDecodeEventAcceptsTheVendorCallbackBody(t *testing.T) {
	t.Parallel()
	ev, err := DecodeEvent([]byte(`{"signatureId":"730baa5ab2e34e53","type":"COMPLETED"}`), DecodeOptions{MaxBytes: 1024})
	require.NoError(t, err)
	require.Equal(t, Event{SignatureID: "730baa5ab2e34e53", Type: EventTypeCompleted}, ev)

	ev, err = DecodeEvent([]byte(`{"signatureId":" s1 ","type":"COMPLETED","userId":"u1",
		"occurredAt":"2026-11-25T10:00:00Z","eventId":"e1","extra":"ignored"}`), DecodeOptions{})
	require.NoError(t, err)
	require.Equal(t, "s1", ev.SignatureID)
	require.Equal(t, "u1", ev.UserID)
	require.Equal(t, "e1", ev.EventID)
	require.NotNil(t, ev.OccurredAt)
	require.Equal(t, 2026, ev.OccurredAt.Year())
}

func TestDecodeEventRejectsWithAReason(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, value, reason, signatureID string
		opts                             DecodeOptions
	}{
		{"not json", `{"signatureId":`, ReasonInvalidJSON, "", DecodeOptions{}},
		{"not an object", `["s1"]`, ReasonWrongFieldType, "", DecodeOptions{}},
		{"empty", ``, ReasonInvalidJSON, "", DecodeOptions{}},
		{"no signature", `{"type":"COMPLETED"}`, ReasonMissingSignatureID, "", DecodeOptions{}},
		{"blank signature", `{"signatureId":"  ","type":"COMPLETED"}`, ReasonMissingSignatureID, "", DecodeOptions{}},
		{"numeric signature", `{"signatureId":42,"type":"COMPLETED"}`, ReasonWrongFieldType, "", DecodeOptions{}},
		{"control characters", `{"signatureId":"a\u0000b","type":"COMPLETED"}`, ReasonInvalidSignatureID, "", DecodeOptions{}},
		{"huge signature", `{"signatureId":"` + strings.Repeat("a", 500) + `","type":"COMPLETED"}`, ReasonInvalidSignatureID, "", DecodeOptions{}},
		{"no type", `{"signatureId":"s1"}`, ReasonMissingType, "s1", DecodeOptions{}},
		{"NUL in the type", `{"signatureId":"s1","type":"COMPLETED\u0000"}`, ReasonInvalidField, "s1", DecodeOptions{}},
		{"huge type", `{"signatureId":"s1","type":"` + strings.Repeat("T", 65) + `"}`, ReasonInvalidField, "s1", DecodeOptions{}},
		{"tab around the signature", `{"signatureId":"\ts1","type":"COMPLETED"}`, ReasonInvalidSignatureID, "", DecodeOptions{}},
		{"NUL in the eventId", `{"signatureId":"s1","type":"COMPLETED","eventId":"e\u0000"}`, ReasonInvalidField, "s1", DecodeOptions{}},
		{"wrong userId type keeps the signature", `{"signatureId":"s1","type":"COMPLETED","userId":7}`, ReasonWrongFieldType, "s1", DecodeOptions{}},
		{"bad time", `{"signatureId":"s1","type":"COMPLETED","occurredAt":"yesterday"}`, ReasonInvalidField, "s1", DecodeOptions{}},
		{"too large", `{"signatureId":"s1","type":"COMPLETED","pad":"` + strings.Repeat("x", 300) + `"}`, ReasonTooLarge, "", DecodeOptions{MaxBytes: 256}},
		{"bidi override in the userId", `{"signatureId":"s1","type":"COMPLETED","userId":"admin\u202egnp.exe"}`, ReasonInvalidField, "s1", DecodeOptions{}},
		{"zero-width space in the userId", `{"signatureId":"s1","type":"COMPLETED","userId":"ad\u200bmin"}`, ReasonInvalidField, "s1", DecodeOptions{}},
		{"BOM in the signature", `{"signatureId":"\ufeffs1","type":"COMPLETED"}`, ReasonInvalidSignatureID, "", DecodeOptions{}},
		{"tag character in the region", `{"signatureId":"s1","type":"COMPLETED","region":"ph\udb40\udc41"}`, ReasonInvalidField, "s1", DecodeOptions{}},
		{"C1 control in the eventId", `{"signatureId":"s1","type":"COMPLETED","eventId":"e\u0085"}`, ReasonInvalidField, "s1", DecodeOptions{}},
		{"line separator in the type", `{"signatureId":"s1","type":"COMPLETED\u2028"}`, ReasonInvalidField, "s1", DecodeOptions{}},
		{"unknown type when strict", `{"signatureId":"s1","type":"STARTED"}`, ReasonUnknownEventType, "s1", DecodeOptions{RejectUnknownTypes: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := DecodeEvent([]byte(tc.value), tc.opts)
			var de *DecodeError
			require.True(t, errors.As(err, &de), "want a *DecodeError, got %v", err)
			require.Equal(t, tc.reason, de.Reason, de.Detail)
			require.Equal(t, tc.signatureID, de.SignatureID)
			require.Equal(t, FailurePermanent, KindOf(err))
		})
	}
}

func TestDecodeEventKeepsUnknownTypesByDefault(t *testing.T) {
	t.Parallel()
	ev, err := DecodeEvent([]byte(`{"signatureId":"s1","type":"SUBMIT_COMPLETED"}`), DecodeOptions{})
	require.NoError(t, err)
	require.Equal(t, EventTypeSubmitCompleted, ev.Type)
}

func FuzzDecodeEvent(f *testing.F) {
	f.Add([]byte(`{"signatureId":"730baa5ab2e34e53","type":"COMPLETED"}`))
	f.Add([]byte(`{"signatureId":"s","type":"COMPLETED","userId":"u","occurredAt":"2026-01-02T03:04:05Z","eventId":"e"}`))
	f.Add([]byte(`{"signatureId":1}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, value []byte) {
		ev, err := DecodeEvent(value, DecodeOptions{MaxBytes: 4096})
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || de.Reason == "" {
				t.Fatalf("error is not a *DecodeError with a reason: %v", err)
			}
			return
		}
		if ev.SignatureID == "" || ev.Type == "" || utf8.RuneCountInString(ev.SignatureID) > maxSignatureIDLen {
			t.Fatalf("accepted an unusable event: %+v", ev)
		}
	})
}

func TestDecodeEventRejectsInvalidUTF8InsteadOfReplacingIt(t *testing.T) {
	t.Parallel()
	for name, value := range map[string]string{
		"raw byte":              "{\"signatureId\":\"ab\xffcd\",\"type\":\"COMPLETED\"}",
		"truncated sequence":    "{\"signatureId\":\"ab\xc3\",\"type\":\"COMPLETED\"}",
		"lone surrogate":        `{"signatureId":"ab\ud800cd","type":"COMPLETED"}`,
		"elsewhere in the body": "{\"signatureId\":\"s1\",\"type\":\"COMPLETED\",\"note\":\"\xfe\"}",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			for _, decode := range []func([]byte, DecodeOptions) (Event, error){DecodeEvent, DecodeCallback} {
				_, err := decode([]byte(value), DecodeOptions{})
				var de *DecodeError
				require.True(t, errors.As(err, &de), "want a *DecodeError, got %v", err)
				require.Equal(t, ReasonInvalidUTF8, de.Reason, de.Detail)
				require.Empty(t, de.SignatureID, "no check is recorded under a mangled id")
			}
		})
	}
}

func TestDecodeCallbackReadsOnlyTheVendorsFields(t *testing.T) {
	t.Parallel()
	ev, err := DecodeCallback([]byte(`{"signatureId":" s1 ","type":"COMPLETED","userId":"victim",
		"occurredAt":"2026-11-25T10:00:00Z","eventId":"e1"}`), DecodeOptions{})
	require.NoError(t, err)
	require.Equal(t, Event{SignatureID: "s1", Type: EventTypeCompleted}, ev, "get-result supplies the user")

	// Enrichment fields are not read, so their types do not matter either.
	ev, err = DecodeCallback([]byte(`{"signatureId":"s1","type":"COMPLETED","userId":7,"occurredAt":"soon"}`), DecodeOptions{})
	require.NoError(t, err)
	require.Equal(t, Event{SignatureID: "s1", Type: EventTypeCompleted}, ev)

	_, err = DecodeCallback([]byte(`{"signatureId":"s1","type":"STARTED"}`), DecodeOptions{RejectUnknownTypes: true})
	var de *DecodeError
	require.True(t, errors.As(err, &de))
	require.Equal(t, ReasonUnknownEventType, de.Reason, "the pipeline's rules apply to both")
}

func TestDecodeErrorsSpeakJSONNotGo(t *testing.T) {
	t.Parallel()
	for value, want := range map[string]string{
		`["s1"]`:                                "the message must be a JSON object with signatureId and type, got an array",
		`"s1"`:                                  "the message must be a JSON object with signatureId and type, got a string",
		`{"signatureId":42,"type":"COMPLETED"}`: `field "signatureId" must be a string, got a number`,
		`{"signatureId":"s1","type":true}`:      `field "type" must be a string, got a boolean`,
		`{"signatureId":"s1","type":"COMPLETED","occurredAt":7}`: "occurredAt must be an RFC 3339 time string",
	} {
		_, err := DecodeEvent([]byte(value), DecodeOptions{})
		var de *DecodeError
		require.True(t, errors.As(err, &de), value)
		require.Equal(t, want, de.Detail, value)
		require.NotContains(t, de.Detail, "duplicate.", value)
		require.NotContains(t, de.Detail, "time.Time", value)
	}
}

func TestDecodeErrorNamesTheFieldAtFault(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		`["s1"]`:                                                                             "",
		`{"signatureId":42,"type":"COMPLETED"}`:                                              "signatureId",
		`{"type":"COMPLETED"}`:                                                               "signatureId",
		`{"signatureId":"\ud800","type":"COMPLETED"}`:                                        "signatureId",
		`{"signatureId":"s1"}`:                                                               "type",
		`{"signatureId":"s1","type":"COMPLETED\u0000"}`:                                      "type",
		`{"signatureId":"s1","type":"COMPLETED","userId":7}`:                                 "userId",
		`{"signatureId":"s1","type":"COMPLETED","userId":"u\u0000"}`:                         "userId",
		`{"signatureId":"s1","type":"COMPLETED","eventId":"e\u0000"}`:                        "eventId",
		`{"signatureId":"s1","type":"COMPLETED","occurredAt":"yesterday"}`:                   "occurredAt",
		`{"signatureId":"s1","type":"COMPLETED","region":"` + strings.Repeat("r", 40) + `"}`: "region",
		"{\"signatureId\":\"s\xff1\",\"type\":\"COMPLETED\"}":                                "signatureId",
		"{\"signatureId\":\"s1\",\"type\":\"COMPLETED\",\"userId\":\"\xff\"}":                "",
	}
	for value, field := range cases {
		_, err := DecodeEvent([]byte(value), DecodeOptions{})
		var de *DecodeError
		require.ErrorAs(t, err, &de, value)
		require.Equal(t, field, de.Field, value)
	}
}

func TestTheFailureKindTravelsWithTheError(t *testing.T) {
	t.Parallel()
	wrapped := fmt.Errorf("save check s1: %w", Fail(FailureAccount, ReasonVendorAccountUnusable, errors.New("INSUFFICIENT_BALANCE")))
	require.Equal(t, FailureAccount, KindOf(wrapped))
	require.Equal(t, ReasonVendorAccountUnusable, ReasonOf(wrapped))
	require.Equal(t, "save check s1: INSUFFICIENT_BALANCE", wrapped.Error())

	store := fmt.Errorf("%w: save check s1: %w", ErrStore, errors.New("connection refused"))
	require.ErrorIs(t, store, ErrStore)
	require.Equal(t, FailureStore, KindOf(store))
	require.Equal(t, ReasonDatabaseUnavailable, ReasonOf(store))

	unknown := errors.New("something else")
	require.Equal(t, FailureTransient, KindOf(unknown))
	require.Equal(t, ReasonTransientFailure, ReasonOf(unknown))
}

// IDProblem names the character at fault by its code point and position, so a producer can find it.
func TestIDProblemNamesTheCharacterAtFault(t *testing.T) {
	t.Parallel()
	require.Equal(t, "", IDProblem("cust-1002", 256))
	require.Contains(t, IDProblem("admin\u202egnp.exe", 256), "character 6 is U+202E")
	require.Contains(t, IDProblem("a\x00", 256), "U+0000")
	require.Contains(t, IDProblem(strings.Repeat("x", 300), 256), "300 characters long, the bound is 256")
	require.Contains(t, IDProblem("a\xff", 256), "not valid UTF-8")
	require.False(t, ValidUserID("ad\u200bmin"))
	require.True(t, ValidUserID("José Müller-Åström 山田"), "letters of every script are fine")
}
