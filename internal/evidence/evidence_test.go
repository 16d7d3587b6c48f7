package evidence

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/advance"
	"github.com/doppelhq/doppel/internal/pseudonym"
)

func TestSuggest(t *testing.T) {
	t.Parallel()
	ana := &Record{FullName: "Ana Cruz", BirthDate: "1990-02-03", IDNumber: "1234-5678-9012"}
	tests := []struct {
		name    string
		a, b    *Record
		want    Verdict
		differs []string
		text    string
	}{
		{"same document, same person", ana, &Record{FullName: "ANA  cruz", BirthDate: "1990-02-03", IDNumber: "123456789012"},
			VerdictSamePerson, nil, "same person coming back"},
		{"same document, another name", ana, &Record{FullName: "Ana Reyes", BirthDate: "1990-02-03", IDNumber: "1234-5678-9012"},
			VerdictTamperedDocument, []string{"name"}, "Same document number but a different name"},
		{"different names and birth dates", ana, &Record{FullName: "Jose Santos", BirthDate: "1985-07-01", IDNumber: "9999-0000-1111"},
			VerdictDifferentIdentities, []string{"name", "birth date", "document number"}, "classic duplicate-account fraud"},
		{"only the birth date differs", ana, &Record{FullName: "Ana Cruz", BirthDate: "1991-02-03", IDNumber: "9999-0000-1111"},
			VerdictDifferentIdentities, []string{"birth date", "document number"}, "different birth date and document number"},
		{"same identity, new document", ana, &Record{FullName: "Ana Cruz", BirthDate: "1990-02-03", IDNumber: "9999-0000-1111"},
			VerdictSameIdentityNewDocument, []string{"document number"}, "renewed document"},
		{"a number missing, names differ", ana, &Record{FullName: "Jose Santos", BirthDate: "1990-02-03"},
			VerdictDifferentIdentities, []string{"name"}, "no document number to compare"},
		{"a number missing, same identity", ana, &Record{FullName: "Ana Cruz", BirthDate: "1990-02-03", IDNumber: " - "},
			VerdictUnknown, nil, "no document number to compare"},
		{"a record missing", ana, nil, VerdictUnknown, nil, "No document data"},
		{"a record without document data", &Record{Face: []byte{1}}, ana, VerdictUnknown, nil, "No document data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := Suggest(tt.a, tt.b)
			require.Equal(t, tt.want, got.Verdict)
			require.Equal(t, tt.differs, got.Differs)
			require.Contains(t, got.Text, tt.text)
			require.Equal(t, got, Suggest(tt.b, tt.a), "the order of the two records does not matter")
		})
	}
}

func TestCacheExpires(t *testing.T) {
	t.Parallel()
	c := NewCache(10, 150*time.Millisecond)
	c.Put(&Record{Region: "ph", SignatureID: "s1", FullName: "Ana", Face: []byte("png"), FaceType: "image/png"})
	r, ok := c.Get("ph", "s1")
	require.True(t, ok)
	require.Len(t, r.FaceHandle, 32)
	img, typ, ok := c.Face(r.FaceHandle)
	require.True(t, ok)
	require.Equal(t, "png", string(img))
	require.Equal(t, "image/png", typ)
	_, ok = c.Get("th", "s1")
	require.False(t, ok, "a signatureId is another verification in another region")

	require.Eventually(t, func() bool {
		_, rec := c.Get("ph", "s1")
		_, _, face := c.Face(r.FaceHandle)
		return !rec && !face && c.Len() == 0
	}, 2*time.Second, 20*time.Millisecond, "an entry is gone TTL after it was fetched, reads or not")
}

func TestCacheIsBounded(t *testing.T) {
	t.Parallel()
	c := NewCache(3, time.Minute)
	for _, sig := range []string{"a", "b", "c", "d"} {
		c.Put(&Record{SignatureID: sig})
	}
	require.Equal(t, 3, c.Len())
	_, ok := c.Get("", "a")
	require.False(t, ok, "the least recently used goes first")
}

// fakeSource answers from a function and counts calls.
type fakeSource struct {
	calls  atomic.Int64
	answer func(sig string) (*advance.Evidence, error)
}

func (s *fakeSource) Evidence(_ context.Context, sig string) (*advance.Evidence, error) {
	s.calls.Add(1)
	return s.answer(sig)
}

var pngBytes = []byte("\x89PNG\r\n\x1a\n" + strings.Repeat("\x00", 16))

func TestFetcher(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	src := &fakeSource{answer: func(sig string) (*advance.Evidence, error) {
		switch sig {
		case "busy":
			return nil, &advance.Error{Code: advance.CodeServiceBusy, Kind: advance.KindRateLimited}
		case "slow":
			<-release
		}
		return &advance.Evidence{SignatureID: sig, OverallResult: "PASS",
			Face:     &advance.FaceDetail{Image: base64.StdEncoding.EncodeToString(pngBytes)},
			Document: &advance.DocDetail{FullName: "Name " + sig, IDNumber: "N-" + sig}}, nil
	}}
	var outcomes []string
	counted := make(chan string, 100)
	f := NewFetcher(FetcherConfig{
		Source:  func(region string) (Source, bool) { return src, region == "ph" },
		Wait:    300 * time.Millisecond,
		OnFetch: func(region, outcome string) { counted <- region + ":" + outcome },
	})
	res := f.Fetch(context.Background(), []Target{
		{UserID: "u1", SignatureID: "s1", Region: "ph"},
		{UserID: "u2", SignatureID: "busy", Region: "ph"},
		{UserID: "u3", SignatureID: "slow", Region: "ph"},
		{UserID: "u4", SignatureID: "s4", Region: "mx"},
	})
	require.Equal(t, OutcomeOK, res[0].Outcome)
	require.Equal(t, "Name s1", res[0].Record.FullName)
	require.Equal(t, "u1", res[0].Record.UserID)
	require.Equal(t, pngBytes, res[0].Record.Face)
	require.Equal(t, "image/png", res[0].Record.FaceType)
	require.Equal(t, OutcomeRateLimited, res[1].Outcome)
	require.Nil(t, res[1].Record)
	require.Equal(t, OutcomeTimeout, res[2].Outcome, "the page does not wait past its budget")
	require.Equal(t, OutcomeUnavailable, res[3].Outcome)

	close(release) // the slow look-up finishes in the background and is cached for the next view
	require.Eventually(t, func() bool { _, ok := f.Cache().Get("ph", "slow"); return ok }, 2*time.Second, 10*time.Millisecond)
	calls := src.calls.Load()
	again := f.Fetch(context.Background(), []Target{{UserID: "u1", SignatureID: "s1", Region: "ph"}, {UserID: "u3", SignatureID: "slow", Region: "ph"}})
	require.Equal(t, OutcomeCached, again[0].Outcome)
	require.Equal(t, OutcomeCached, again[1].Outcome)
	require.Equal(t, calls, src.calls.Load(), "a cached record costs no vendor call")

	close(counted)
	for o := range counted {
		outcomes = append(outcomes, o)
	}
	require.ElementsMatch(t, []string{"ph:ok", "ph:rate_limited", "ph:ok", "mx:unavailable", "ph:cached", "ph:cached"}, outcomes)
}

func TestFetcherKeepsOnlyImages(t *testing.T) {
	t.Parallel()
	for name, img := range map[string]string{"a link": "https://vendor.example/x.png", "not base64": "%%%", "not an image": base64.StdEncoding.EncodeToString([]byte("<script>"))} {
		b, typ := decodeImage(img)
		require.Nil(t, b, name)
		require.Empty(t, typ, name)
	}
}

func TestLogViewsWritesPseudonymsOnly(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	key := pseudonym.NewKey([]byte("k"))
	v := LogViews{Logger: slog.New(slog.NewJSONHandler(&buf, nil)), Key: key}
	v.RecordView(context.Background(), "alice", []string{"cust-1", "cust-2"}, "ring_1")
	line := buf.String()
	require.Contains(t, line, `"actor":"alice"`)
	require.Contains(t, line, key.Of("cust-1"))
	require.Contains(t, line, key.Of("cust-2"))
	require.NotContains(t, line, "cust-1")
	require.NotContains(t, line, "cust-2")
}

func TestOutcomeOf(t *testing.T) {
	t.Parallel()
	require.Equal(t, OutcomeTimeout, outcomeOf(&advance.Error{Code: advance.CodeTimeout}))
	require.Equal(t, OutcomeNotFound, outcomeOf(&advance.Error{Code: advance.CodeSignatureNotExist, Kind: advance.KindPermanent}))
	require.Equal(t, OutcomeError, outcomeOf(errors.New("boom")))
	require.Equal(t, OutcomeTimeout, outcomeOf(context.DeadlineExceeded))
}

func TestAVerificationTheVendorDoesNotKnowIsNotAskedForAgain(t *testing.T) {
	t.Parallel()
	src := &fakeSource{answer: func(string) (*advance.Evidence, error) {
		return nil, &advance.Error{Code: advance.CodeSignatureNotExist, Kind: advance.KindPermanent}
	}}
	f := NewFetcher(FetcherConfig{Source: func(string) (Source, bool) { return src, true }})
	for range 3 {
		res := f.Fetch(context.Background(), []Target{{UserID: "u", SignatureID: "gone", Region: "ph"}})
		require.Equal(t, OutcomeNotFound, res[0].Outcome)
		require.Nil(t, res[0].Record)
	}
	require.EqualValues(t, 1, src.calls.Load(), "asked once, remembered for the cache's TTL")
}
