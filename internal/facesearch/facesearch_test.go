package facesearch

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/advance"
	"github.com/doppelhq/doppel/internal/duplicate"
)

// scriptedClient answers every call with err (nil: success) and counts calls.
type scriptedClient struct {
	err   atomic.Pointer[advance.Error]
	calls atomic.Int64
}

func (c *scriptedClient) FaceSearch(context.Context, string) (*advance.FaceSearchResult, error) {
	c.calls.Add(1)
	if e := c.err.Load(); e != nil {
		return nil, e
	}
	return &advance.FaceSearchResult{SimilarFaceUserIDs: []string{"u2"}, TransactionID: "tx"}, nil
}

func (c *scriptedClient) GetResult(context.Context, string) (*advance.Result, error) {
	c.calls.Add(1)
	if e := c.err.Load(); e != nil {
		return nil, e
	}
	return &advance.Result{UserID: "u1", OverallResult: "PASS", TransactionID: "tx"}, nil
}

func (c *scriptedClient) GetEvidence(_ context.Context, sig string, _ advance.ImageType) (*advance.Evidence, error) {
	c.calls.Add(1)
	if e := c.err.Load(); e != nil {
		return nil, e
	}
	return &advance.Evidence{SignatureID: sig, UserID: "u1", OverallResult: "PASS"}, nil
}

func (c *scriptedClient) Enroll(_ context.Context, sig string) (*advance.EnrollResult, error) {
	c.calls.Add(1)
	if e := c.err.Load(); e != nil {
		return nil, e
	}
	return &advance.EnrollResult{SignatureID: sig, TransactionID: "tx"}, nil
}

// A view takes its calls from the account's rate, so the two never exceed it together; the main
// path has the whole rate when the view is idle (the view has no reservation).
func TestAViewTakesItsCallsFromTheAccountsRate(t *testing.T) {
	t.Parallel()
	main := New(&scriptedClient{}, Config{QPS: 1}) // one call a second, burst of one
	polling := main.WithShare(100)
	ctx := context.Background()

	_, err := main.FaceSearch(ctx, "s0")
	require.NoError(t, err, "the main path gets the account's token: nothing is held back for polling")
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	_, err = polling.Verification(short, "s1")
	cancel()
	require.ErrorContains(t, err, "would exceed context deadline", "the view waits for the account's next token too")
}

func TestAViewWithItsOwnRateSharesTheBreaker(t *testing.T) {
	t.Parallel()
	client := &scriptedClient{}
	main := New(client, Config{QPS: 1000, BreakerOpenFor: time.Minute})
	polling := main.WithShare(1)
	ctx := context.Background()

	// The view's limit is its own: a second call within a second waits, while the main path's
	// limit is untouched.
	_, err := polling.Enroll(ctx, "s0")
	require.NoError(t, err)
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	_, err = polling.Verification(short, "s1")
	cancel()
	require.ErrorContains(t, err, "would exceed context deadline", "the view's second call waits for its own limit")
	for range 10 {
		_, err := main.FaceSearch(ctx, "s2")
		require.NoError(t, err)
	}

	// An account failure seen by the main path opens the circuit for the view too.
	client.err.Store(&advance.Error{Code: "ACCOUNT_DISABLED", Kind: advance.KindAccount})
	_, err = main.FaceSearch(ctx, "s3")
	require.Error(t, err)
	require.Equal(t, "open", polling.State())
	time.Sleep(time.Second) // the view's next token
	_, err = polling.Verification(ctx, "s4")
	var unavailable *UnavailableError
	require.ErrorAs(t, err, &unavailable, "polling pauses while the circuit is open")
}

func TestAnAccountFailureOpensTheCircuitAtOnceAndAProbeClosesIt(t *testing.T) {
	t.Parallel()
	client := &scriptedClient{}
	var states []string
	v := New(client, Config{BreakerOpenFor: 200 * time.Millisecond, OnStateChange: func(s string) { states = append(states, s) }})
	ctx := context.Background()

	client.err.Store(&advance.Error{Code: "INSUFFICIENT_BALANCE", Kind: advance.KindAccount})
	_, err := v.FaceSearch(ctx, "s1")
	require.Equal(t, duplicate.FailureAccount, duplicate.KindOf(err))
	require.Equal(t, "open", v.State())
	require.ErrorContains(t, v.Ready(), "INSUFFICIENT_BALANCE")

	_, err = v.FaceSearch(ctx, "s2")
	var unavailable *UnavailableError
	require.ErrorAs(t, err, &unavailable)
	require.Equal(t, duplicate.FailureAccount, duplicate.KindOf(err), "an open circuit makes the pipeline wait")
	require.EqualValues(t, 1, client.calls.Load(), "no call goes out while the circuit is open")

	client.err.Store(nil)
	time.Sleep(250 * time.Millisecond)
	res, err := v.FaceSearch(ctx, "s3")
	require.NoError(t, err, "the probe after the open period goes through")
	require.Equal(t, []string{"u2"}, res.SimilarUserIDs)
	require.Equal(t, "closed", v.State())
	require.NoError(t, v.Ready())
	require.Equal(t, []string{"open", "half_open", "closed"}, states)
}

func TestARunOfServerErrorsOpensTheCircuitButPermanentAnswersDoNot(t *testing.T) {
	t.Parallel()
	client := &scriptedClient{}
	v := New(client, Config{BreakerFailures: 3, BreakerOpenFor: time.Minute})
	ctx := context.Background()

	client.err.Store(&advance.Error{Code: "PARAMETER_ERROR", Kind: advance.KindPermanent})
	for range 5 {
		_, err := v.FaceSearch(ctx, "s")
		require.Equal(t, duplicate.FailurePermanent, duplicate.KindOf(err))
	}
	require.Equal(t, "closed", v.State(), "a bad signatureId says nothing about the vendor")

	client.err.Store(&advance.Error{Code: "ERROR", Kind: advance.KindTransient})
	for range 3 {
		_, err := v.FaceSearch(ctx, "s")
		require.Equal(t, duplicate.FailureTransient, duplicate.KindOf(err))
	}
	require.Equal(t, "open", v.State())
}

func TestServiceBusyPausesEveryCaller(t *testing.T) {
	t.Parallel()
	client := &scriptedClient{}
	v := New(client, Config{})
	client.err.Store(&advance.Error{Code: "SERVICE_BUSY", Kind: advance.KindRateLimited, RetryAfter: 300 * time.Millisecond})
	_, err := v.Verification(context.Background(), "s1")
	require.Equal(t, duplicate.FailureRateLimited, duplicate.KindOf(err))
	require.Greater(t, v.PausedFor(), 200*time.Millisecond)
	require.ErrorContains(t, v.Ready(), "SERVICE_BUSY")

	client.err.Store(nil)
	start := time.Now()
	_, err = v.Verification(context.Background(), "s2") // another caller waits out the same pause
	require.NoError(t, err)
	require.GreaterOrEqual(t, time.Since(start), 200*time.Millisecond)
	require.Equal(t, "closed", v.State(), "a rate limit is not a vendor failure")
}

func TestTheRateLimitIsSharedByAllCallers(t *testing.T) {
	t.Parallel()
	client := &scriptedClient{}
	v := New(client, Config{QPS: 40})
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	done := make(chan struct{})
	for range 8 {
		go func() {
			for ctx.Err() == nil {
				_, _ = v.FaceSearch(ctx, "s")
			}
			done <- struct{}{}
		}()
	}
	for range 8 {
		<-done
	}
	// 40/s for 0.5 s plus the burst of 2 allows 22 calls, however many callers there are; a busy
	// machine may make fewer, never more.
	require.LessOrEqual(t, client.calls.Load(), int64(23))
	require.GreaterOrEqual(t, client.calls.Load(), int64(8))
}

// The console's evidence look-ups take their turn in the account's rate, like polling: an analyst
// opening a ring never makes the account exceed its vendor's limit.
func TestEvidenceTakesItsCallsFromTheAccountsRate(t *testing.T) {
	t.Parallel()
	main := New(&scriptedClient{}, Config{QPS: 1})
	evidence := main.WithShare(100)
	ctx := context.Background()

	_, err := main.FaceSearch(ctx, "s0")
	require.NoError(t, err)
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	_, err = evidence.Evidence(short, "s1")
	cancel()
	require.ErrorContains(t, err, "would exceed context deadline", "the evidence waits for the account's next token")

	time.Sleep(time.Second)
	ev, err := evidence.Evidence(ctx, "s2")
	require.NoError(t, err)
	require.Equal(t, "s2", ev.SignatureID)
}
