package advance_test

import (
	"context"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/advance"
	"github.com/doppelhq/doppel/internal/harness/advancesim"
	"github.com/doppelhq/doppel/internal/harness/fakeclock"
)

const (
	simAccessKey = "sim-ak"
	simSecretKey = "sim-sk"
)

// simBundle is what setupSim returns.
type simBundle struct {
	sim    *advancesim.Sim
	client *advance.Client
	clock  *fakeclock.Clock
}

// setupSim starts the real simulator in process and a client for it, sharing one clock.
func setupSim(t *testing.T, simCfg advancesim.Config, mutate func(*advance.Config)) *simBundle {
	t.Helper()
	clock := fakeclock.New(time.Now())
	simCfg.AccessKey, simCfg.SecretKey, simCfg.Now = simAccessKey, simSecretKey, clock.Now
	sim := advancesim.New(simCfg)
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	cfg := advance.Config{BaseURL: srv.URL, AccessKey: simAccessKey, SecretKey: simSecretKey, Now: clock.Now, Timeout: 2 * time.Second}
	if mutate != nil {
		mutate(&cfg)
	}
	client, err := advance.New(cfg)
	require.NoError(t, err)
	return &simBundle{sim: sim, client: client, clock: clock}
}

func (b *simBundle) seed(t *testing.T, xs ...advancesim.Session) []string {
	t.Helper()
	ids, err := b.sim.AddSessions(xs)
	require.NoError(t, err)
	return ids
}

func asError(t *testing.T, err error) *advance.Error {
	t.Helper()
	var e *advance.Error
	require.ErrorAs(t, err, &e)
	return e
}

func TestSimulatorFaceSearchAndResult(t *testing.T) {
	t.Parallel()
	for _, newSpelling := range []bool{false, true} {
		t.Run("newSpelling="+strconv.FormatBool(newSpelling), func(t *testing.T) {
			t.Parallel()
			b := setupSim(t, advancesim.Config{NewSpelling: newSpelling}, nil)
			ids := b.seed(t,
				advancesim.Session{UserID: "alice", Face: "ring", OverallResult: "PASS"},
				advancesim.Session{UserID: "bob", Face: "ring", OverallResult: "PASS"},
				advancesim.Session{UserID: "carol", Face: "ring", OverallResult: "PASS"},
				advancesim.Session{UserID: "dan", Face: "x", OverallResult: "FAIL"},
			)
			ctx := context.Background()

			res, err := b.client.FaceSearch(ctx, ids[2])
			require.NoError(t, err)
			require.Equal(t, ids[2], res.SignatureID)
			require.Equal(t, []string{"alice", "bob"}, res.SimilarFaceUserIDs, "the sessions completed before carol's")
			require.Regexp(t, `^[0-9a-f]{16}$`, res.TransactionID)

			r, err := b.client.GetResult(ctx, ids[1])
			require.NoError(t, err)
			require.Equal(t, advance.Result{SignatureID: ids[1], OverallResult: "PASS", SubmissionCompleted: true, UserID: "bob", TransactionID: r.TransactionID}, *r)

			_, err = b.client.FaceSearch(ctx, ids[3])
			e := asError(t, err)
			require.Equal(t, advance.CodeParameterError, e.Code)
			require.Equal(t, "Transaction is not pass", e.Message)
			require.True(t, e.Permanent())

			_, err = b.client.FaceSearch(ctx, "unknown")
			require.True(t, asError(t, err).Permanent())

			_, err = b.client.GetResult(ctx, "unknown")
			e = asError(t, err)
			require.Equal(t, advance.CodeSignatureNotExist, e.Code)
			require.True(t, e.Permanent())

			st := b.sim.Stats()
			require.EqualValues(t, 1, st.Calls["generate-token"])
			require.Equal(t, map[string]int64{ids[2]: 1}, st.FaceSearchBySignature)
		})
	}
}

func TestSimulatorTokenSharedAndRefreshed(t *testing.T) {
	t.Parallel()
	b := setupSim(t, advancesim.Config{}, func(c *advance.Config) {
		c.TokenPeriod = time.Hour
		c.TokenRefreshMargin = 5 * time.Minute
	})
	ids := make([]advancesim.Session, 200)
	for i := range ids {
		ids[i] = advancesim.Session{UserID: "u" + strconv.Itoa(i), Face: "f" + strconv.Itoa(i%20), OverallResult: "PASS"}
	}
	sigs := b.seed(t, ids...)
	var wg sync.WaitGroup
	for _, sig := range sigs {
		wg.Go(func() {
			_, err := b.client.FaceSearch(context.Background(), sig)
			require.NoError(t, err)
		})
	}
	wg.Wait()
	st := b.sim.Stats()
	require.EqualValues(t, 1, st.Calls["generate-token"], "200 concurrent calls share one token")
	require.Len(t, st.FaceSearchBySignature, 200)
	for _, n := range st.FaceSearchBySignature {
		require.EqualValues(t, 1, n)
	}

	// Within the refresh margin the client asks for a new token before the old one expires.
	b.clock.Add(56 * time.Minute)
	_, err := b.client.GetResult(context.Background(), sigs[0])
	require.NoError(t, err)
	require.Eventually(t, func() bool { return b.sim.Stats().Calls["generate-token"] == 2 }, 5*time.Second, time.Millisecond)
	b.clock.Add(5 * time.Minute) // the first token has expired now
	_, err = b.client.GetResult(context.Background(), sigs[0])
	require.NoError(t, err)
	require.EqualValues(t, 2, b.sim.Stats().Calls["generate-token"])
	require.Zero(t, b.sim.Stats().Answers["IAM_FAILED"], "the refresh came before expiry")
}

func TestSimulatorRevokedTokenIsReplacedOnce(t *testing.T) {
	t.Parallel()
	b := setupSim(t, advancesim.Config{}, nil)
	sig := b.seed(t, advancesim.Session{UserID: "u", Face: "f", OverallResult: "PASS"})[0]
	_, err := b.client.GetResult(context.Background(), sig)
	require.NoError(t, err)

	b.sim.RevokeTokens()
	_, err = b.client.GetResult(context.Background(), sig)
	require.NoError(t, err)
	st := b.sim.Stats()
	require.EqualValues(t, 2, st.Calls["generate-token"])
	require.EqualValues(t, 3, st.Calls["get-result"])
	require.EqualValues(t, 1, st.Answers["IAM_FAILED"])
}

func TestSimulatorFaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		faults    advancesim.Faults
		wantCode  string
		wantKind  advance.Kind
		wantRetry time.Duration
	}{
		{"insufficient balance", advancesim.Faults{ForceCode: "INSUFFICIENT_BALANCE"}, "INSUFFICIENT_BALANCE", advance.KindAccount, 0},
		{"IAM failed after one retry", advancesim.Faults{ForceCode: "IAM_FAILED"}, "IAM_FAILED", advance.KindAccount, 0},
		{"server error", advancesim.Faults{ErrorRate: 1}, "ERROR", advance.KindTransient, 0},
		{"gateway 503", advancesim.Faults{HTTP5xxRate: 1}, "HTTP_503", advance.KindTransient, 0},
		{"busy as 200", advancesim.Faults{ForceCode: "SERVICE_BUSY"}, "SERVICE_BUSY", advance.KindRateLimited, time.Second},
		{"busy as 429", advancesim.Faults{ForceCode: "SERVICE_BUSY", BusyAsHTTP429: true}, "SERVICE_BUSY", advance.KindRateLimited, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setupSim(t, advancesim.Config{}, nil)
			sig := b.seed(t, advancesim.Session{UserID: "u", Face: "f", OverallResult: "PASS"})[0]
			require.NoError(t, b.sim.SetFaults(tt.faults))
			_, err := b.client.FaceSearch(context.Background(), sig)
			e := asError(t, err)
			require.Equal(t, tt.wantCode, e.Code)
			require.Equal(t, tt.wantKind, e.Kind)
			require.Equal(t, tt.wantRetry, e.RetryAfter)
			require.Empty(t, b.sim.Stats().FaceSearchBySignature, "nothing billed")
			require.NotContains(t, err.Error(), simSecretKey)
		})
	}
}

func TestSimulatorQPSLimit(t *testing.T) {
	t.Parallel()
	b := setupSim(t, advancesim.Config{QPS: 5, BusyAsHTTP429: true}, nil)
	sig := b.seed(t, advancesim.Session{UserID: "u", Face: "f", OverallResult: "PASS"})[0]
	limited := 0
	for range 20 {
		_, err := b.client.GetResult(context.Background(), sig)
		if err != nil {
			e := asError(t, err)
			require.True(t, e.RateLimited(), err.Error())
			require.Equal(t, 429, e.HTTPStatus)
			require.Equal(t, time.Second, e.RetryAfter)
			limited++
		}
	}
	require.GreaterOrEqual(t, limited, 10)
}

func TestSimulatorLatencyBeyondTimeout(t *testing.T) {
	t.Parallel()
	b := setupSim(t, advancesim.Config{Latency: 2 * time.Second}, func(c *advance.Config) { c.Timeout = 100 * time.Millisecond })
	sig := b.seed(t, advancesim.Session{UserID: "u", Face: "f", OverallResult: "PASS"})[0]
	_, err := b.client.FaceSearch(context.Background(), sig)
	e := asError(t, err)
	require.Equal(t, advance.CodeTimeout, e.Code)
	require.True(t, e.Transient())
	require.Empty(t, b.sim.Stats().FaceSearchBySignature, "the abandoned call was not billed")
}

func TestSimulatorRejectsWrongSecret(t *testing.T) {
	t.Parallel()
	b := setupSim(t, advancesim.Config{}, func(c *advance.Config) { c.SecretKey = "wrong-secret" })
	_, err := b.client.FaceSearch(context.Background(), "sig")
	e := asError(t, err)
	require.Equal(t, advance.EndpointGenerateToken, e.Op)
	require.Equal(t, "Signature error", e.Message)
	require.True(t, e.AccountLevel(), "a rejected token request is a configuration fault, not the event's")
	require.NotContains(t, err.Error(), "wrong-secret")
}

// BenchmarkClientFaceSearch measures the client and the simulator together over real HTTP on
// loopback, with many calls in flight, as the service drives them.
func BenchmarkClientFaceSearch(b *testing.B) {
	sim := advancesim.New(advancesim.Config{AccessKey: simAccessKey, SecretKey: simSecretKey})
	xs := make([]advancesim.Session, 10_000)
	for i := range xs {
		xs[i] = advancesim.Session{UserID: "u" + strconv.Itoa(i), Face: "f" + strconv.Itoa(i/5), OverallResult: "PASS"}
	}
	sigs, err := sim.AddSessions(xs)
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(sim.Handler())
	defer srv.Close()
	client, err := advance.New(advance.Config{BaseURL: srv.URL, AccessKey: simAccessKey, SecretKey: simSecretKey})
	if err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := client.FaceSearch(context.Background(), sigs[i%len(sigs)]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

func TestSimulatorEnroll(t *testing.T) {
	t.Parallel()
	b := setupSim(t, advancesim.Config{}, nil)
	ids := b.seed(t,
		advancesim.Session{UserID: "failed", Face: "f", OverallResult: advancesim.ResultFail},
		advancesim.Session{UserID: "passed", Face: "g", OverallResult: advancesim.ResultPass},
	)
	ctx := context.Background()
	res, err := b.client.Enroll(ctx, ids[0])
	require.NoError(t, err)
	require.Equal(t, ids[0], res.SignatureID)
	require.NotEmpty(t, res.TransactionID)

	_, err = b.client.Enroll(ctx, ids[1])
	e := asError(t, err)
	require.Equal(t, advance.CodeParameterError, e.Code)
	require.True(t, e.Permanent(), "enrolling a PASS verification is the caller's mistake, never retried")
	require.Equal(t, advance.EndpointEnroll, e.Op)

	_, err = b.client.Enroll(ctx, "")
	require.True(t, asError(t, err).Permanent())
	require.Equal(t, map[string]int64{ids[0]: 1}, b.sim.Stats().EnrollBySignature)
}

func TestGetEvidenceFromTheSimulator(t *testing.T) {
	t.Parallel()
	b := setupSim(t, advancesim.Config{}, nil)
	ids := b.seed(t,
		advancesim.Session{UserID: "a", Face: "f", OverallResult: advancesim.ResultPass},
		advancesim.Session{UserID: "b", Face: "f", OverallResult: advancesim.ResultPass},
	)
	a, err := b.client.GetEvidence(context.Background(), ids[0], advance.ImageBase64)
	require.NoError(t, err)
	c, err := b.client.GetEvidence(context.Background(), ids[1], advance.ImageBase64)
	require.NoError(t, err)
	require.Equal(t, "a", a.UserID)
	require.NotEmpty(t, a.Face.Image)
	require.Equal(t, a.Face.Image, c.Face.Image, "one face, one picture")
	require.NotEmpty(t, a.Document.FullName)
	require.NotEmpty(t, a.Document.BirthDate)
	require.NotEqual(t, a.Document.IDNumber, c.Document.IDNumber, "two accounts, two documents")
}

// ClearData against the simulator: the cleared verification's face leaves the face database, so a
// later face search no longer returns its user; an account without the call is a permanent error.
func TestClearDataRemovesTheFaceFromLaterSearches(t *testing.T) {
	t.Parallel()
	b := setupSim(t, advancesim.Config{}, func(c *advance.Config) { c.ClearDataPath = advancesim.ClearDataPath })
	ids := b.seed(t,
		advancesim.Session{UserID: "u1", Face: "f", OverallResult: advancesim.ResultPass},
		advancesim.Session{UserID: "u2", Face: "f", OverallResult: advancesim.ResultPass},
		advancesim.Session{UserID: "u3", Face: "f", OverallResult: advancesim.ResultPass})
	ctx := context.Background()
	res, err := b.client.FaceSearch(ctx, ids[2])
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"u1", "u2"}, res.SimilarFaceUserIDs)

	require.NoError(t, b.client.ClearData(ctx, ids[0]))
	require.NoError(t, b.client.ClearData(ctx, ids[0]), "clearing twice changes nothing")
	res, err = b.client.FaceSearch(ctx, ids[2])
	require.NoError(t, err)
	require.Equal(t, []string{"u2"}, res.SimilarFaceUserIDs)
	require.Equal(t, advance.CodeParameterError, asError(t, b.client.ClearData(ctx, "no-such-signature")).Code)

	without := setupSim(t, advancesim.Config{}, nil)
	e := asError(t, without.client.ClearData(ctx, ids[0]))
	require.Equal(t, advance.KindPermanent, e.Kind)
}
