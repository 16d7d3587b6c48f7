package duplicate

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fakeVendor answers from maps and counts calls, like a billing ledger.
type fakeVendor struct {
	similar       map[string][]string
	verifications map[string]Verification
	searchErr     error
	searches      map[string]int
	results       map[string]int
}

func newFakeVendor() *fakeVendor {
	return &fakeVendor{similar: map[string][]string{}, verifications: map[string]Verification{},
		searches: map[string]int{}, results: map[string]int{}}
}

func (f *fakeVendor) FaceSearch(_ context.Context, sig string) (SearchResult, error) {
	f.searches[sig]++
	if f.searchErr != nil {
		return SearchResult{}, f.searchErr
	}
	return SearchResult{SimilarUserIDs: f.similar[sig], TransactionID: "tx-" + sig}, nil
}

func (f *fakeVendor) Verification(_ context.Context, sig string) (Verification, error) {
	f.results[sig]++
	return f.verifications[sig], nil
}

// fakeStore keeps checks, links and rings in maps and decides with the same rule as the real store
// (PlanLinks, MergeRings), enough to test the detector.
type fakeStore struct {
	checks map[string]Check
	links  map[PairKey]int
	rings  map[string]RingState
	alerts []Alert
	err    error
}

func newFakeStore() *fakeStore {
	return &fakeStore{checks: map[string]Check{}, links: map[PairKey]int{}, rings: map[string]RingState{}}
}

func (s *fakeStore) FinalOutcome(_ context.Context, sig string) (Outcome, bool, error) {
	if s.err != nil {
		return "", false, s.err
	}
	c, ok := s.checks[sig]
	return c.Outcome, ok && c.Outcome.Final(), nil
}

func (s *fakeStore) SaveCheck(_ context.Context, c Check) (Saved, error) {
	if s.err != nil {
		return Saved{}, s.err
	}
	if old, ok := s.checks[c.SignatureID]; ok && old.Outcome.Final() {
		return Saved{}, nil
	}
	s.checks[c.SignatureID] = c
	pairs := map[PairKey]PairState{}
	for _, k := range Pairs([]Check{c}) {
		pairs[k] = PairState{Linked: s.links[k] > 0}
	}
	plan := PlanLinks([]Check{c}, pairs)
	for _, l := range plan.Links {
		s.links[l.PairKey] += l.Seen
	}
	changes, alertable, rings := MergeRings(s.rings, []Check{c}, plan)
	for _, r := range changes.Rings {
		for u, cur := range s.rings {
			if changes.Moved[cur.Key] == r.Key || cur.Key == r.Key {
				s.rings[u] = r
			}
		}
	}
	for u, key := range changes.Joined {
		for _, r := range changes.Rings {
			if r.Key == key {
				s.rings[u] = r
			}
		}
	}
	saved := Saved{Stored: true, NewLinks: plan.Checks[0].NewLinks,
		Alert: NewAlert("alert-"+c.SignatureID, c, alertable[0], rings[0], AlertPolicy{})}
	if saved.Alert != nil {
		s.alerts = append(s.alerts, *saved.Alert)
	}
	return saved, nil
}

type permanentErr struct{}

func (permanentErr) Error() string            { return "PARAMETER_ERROR: Transaction is not pass" }
func (permanentErr) FailureKind() FailureKind { return FailurePermanent }
func (permanentErr) FailureReason() string    { return ReasonPermanentFailure }

type accountErr struct{}

func (accountErr) Error() string            { return "INSUFFICIENT_BALANCE" }
func (accountErr) FailureKind() FailureKind { return FailureAccount }
func (accountErr) FailureReason() string    { return ReasonVendorAccountUnusable }

func setup(t *testing.T) (*Detector, *fakeVendor, *fakeStore) {
	t.Helper()
	v, s := newFakeVendor(), newFakeStore()
	clock := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	return NewDetector(s, func() time.Time { return clock }), v, s
}

func TestDetectorLinksMatchesAndAlertsOnlyOnNewLinks(t *testing.T) {
	t.Parallel()
	d, v, s := setup(t)
	ctx := context.Background()
	v.similar["sa"] = []string{"bob", "alice", "carol", "bob", ""}
	v.similar["sb"] = []string{"alice", "carol"}
	v.similar["sc"] = []string{"alice", "bob"}

	res, err := d.Handle(ctx, Event{SignatureID: "sa", Type: EventTypeCompleted, UserID: "alice"}, v, Source{})
	require.NoError(t, err)
	require.Equal(t, OutcomeDuplicatesFound, res.Outcome)
	require.Equal(t, []string{"bob", "carol"}, s.checks["sa"].MatchedUserIDs, "self, blanks and repeats dropped")
	require.NotNil(t, res.Saved.Alert)
	require.Equal(t, []string{"bob", "carol"}, res.Saved.Alert.NewMatchedUserIDs)
	require.Equal(t, "tx-sa", res.Saved.Alert.VendorTransactionID)

	res, err = d.Handle(ctx, Event{SignatureID: "sb", Type: EventTypeCompleted, UserID: "bob"}, v, Source{})
	require.NoError(t, err)
	require.Equal(t, []string{"carol"}, res.Saved.NewLinks, "alice-bob already existed")

	res, err = d.Handle(ctx, Event{SignatureID: "sc", Type: EventTypeCompleted, UserID: "carol"}, v, Source{})
	require.NoError(t, err)
	require.Equal(t, OutcomeDuplicatesFound, res.Outcome)
	require.Nil(t, res.Saved.Alert, "every link of carol's ring was known: no alert")
	require.Len(t, s.alerts, 2)
	require.Len(t, s.links, 3)
}

func TestDetectorNeverSearchesAStoredSignatureTwice(t *testing.T) {
	t.Parallel()
	d, v, _ := setup(t)
	ev := Event{SignatureID: "s1", Type: EventTypeCompleted, UserID: "u1"}
	for range 3 {
		_, err := d.Handle(context.Background(), ev, v, Source{})
		require.NoError(t, err)
	}
	require.Equal(t, 1, v.searches["s1"])
}

func TestDetectorSkipsTypesOtherThanCompleted(t *testing.T) {
	t.Parallel()
	d, v, s := setup(t)
	res, err := d.Handle(context.Background(), Event{SignatureID: "s1", Type: EventTypeSubmitCompleted}, v, Source{})
	require.NoError(t, err)
	require.Equal(t, OutcomeSkipped, res.Outcome)
	require.Equal(t, OutcomeSkipped, s.checks["s1"].Outcome)
	require.Zero(t, v.searches["s1"]+v.results["s1"])
}

func TestDetectorAsksGetResultWhenTheEventHasNoUser(t *testing.T) {
	t.Parallel()
	d, v, s := setup(t)
	v.verifications["pass"] = Verification{UserID: "u1", OverallResult: "PASS", TransactionID: "r1"}
	v.verifications["fail"] = Verification{UserID: "u2", OverallResult: "FAIL", TransactionID: "r2"}
	v.similar["pass"] = []string{"u1", "u9"}

	res, err := d.Handle(context.Background(), Event{SignatureID: "pass", Type: EventTypeCompleted}, v, Source{})
	require.NoError(t, err)
	require.Equal(t, OutcomeDuplicatesFound, res.Outcome)
	require.Equal(t, "u1", s.checks["pass"].UserID)
	require.Equal(t, []string{"u9"}, s.checks["pass"].MatchedUserIDs)

	res, err = d.Handle(context.Background(), Event{SignatureID: "fail", Type: EventTypeCompleted}, v, Source{})
	require.NoError(t, err)
	require.Equal(t, OutcomeNotPassed, res.Outcome)
	require.Equal(t, "FAIL", s.checks["fail"].OverallResult)
	require.Zero(t, v.searches["fail"], "a non-PASS verification is not searched (nor billed)")
}

func TestDetectorRecordsPermanentVendorFailuresAndAllowsARetryLater(t *testing.T) {
	t.Parallel()
	d, v, s := setup(t)
	v.searchErr = permanentErr{}
	ev := Event{SignatureID: "s1", Type: EventTypeCompleted, UserID: "u1"}
	_, err := d.Handle(context.Background(), ev, v, Source{Topic: "t", Partition: 2, Offset: 9})
	var pf *PermanentFailure
	require.ErrorAs(t, err, &pf)
	require.Equal(t, "vendor_rejected", pf.Reason)
	require.Equal(t, OutcomeFailed, s.checks["s1"].Outcome)
	require.Contains(t, s.checks["s1"].FailureReason, "Transaction is not pass")

	// A failed check does not count as stored: a replay after a fix searches again.
	v.searchErr = nil
	res, err := d.Handle(context.Background(), ev, v, Source{})
	require.NoError(t, err)
	require.Equal(t, OutcomeNoDuplicates, res.Outcome)
	require.Equal(t, 2, v.searches["s1"])
}

func TestDetectorLeavesOtherFailuresToTheCaller(t *testing.T) {
	t.Parallel()
	d, v, s := setup(t)
	v.searchErr = accountErr{}
	_, err := d.Handle(context.Background(), Event{SignatureID: "s1", Type: EventTypeCompleted, UserID: "u1"}, v, Source{})
	require.Equal(t, FailureAccount, KindOf(err))
	require.Empty(t, s.checks, "an account problem is not the event's fault: nothing is recorded")

	v.searchErr = errors.New("connection reset")
	_, err = d.Handle(context.Background(), Event{SignatureID: "s1", Type: EventTypeCompleted, UserID: "u1"}, v, Source{})
	require.Equal(t, FailureTransient, KindOf(err))

	s.err = errors.New("connection refused")
	_, err = d.Handle(context.Background(), Event{SignatureID: "s1", Type: EventTypeCompleted, UserID: "u1"}, v, Source{})
	require.Equal(t, FailureStore, KindOf(err))
}

func TestMatchedUsersAndPair(t *testing.T) {
	t.Parallel()
	require.Equal(t, []string{"b", "c"}, MatchedUsers("a", []string{"a", "b", "", "c", "b"}))
	require.Empty(t, MatchedUsers("a", nil))
	lo, hi := Pair("z", "a")
	require.Equal(t, [2]string{"a", "z"}, [2]string{lo, hi})
}

func TestAStoreFailureAfterTheSearchDoesNotPayForItTwice(t *testing.T) {
	t.Parallel()
	v, s := newFakeVendor(), newFakeStore()
	failing := &failOnceStore{fakeStore: s}
	d := NewDetector(failing, nil)
	v.verifications["s1"] = Verification{UserID: "u1", OverallResult: "PASS"}
	v.similar["s1"] = []string{"u2"}
	ev := Event{SignatureID: "s1", Type: EventTypeCompleted}

	_, err := d.Handle(context.Background(), ev, v, Source{})
	require.Equal(t, FailureStore, KindOf(err))
	res, err := d.Handle(context.Background(), ev, v, Source{})
	require.NoError(t, err)
	require.Equal(t, OutcomeDuplicatesFound, res.Outcome)
	require.Equal(t, 1, v.searches["s1"], "the retry reused the answer it had paid for")
	require.Equal(t, 1, v.results["s1"])
}

// failOnceStore fails the first SaveCheck, as a database restart would.
type failOnceStore struct {
	*fakeStore
	failed bool
}

func (s *failOnceStore) SaveCheck(ctx context.Context, c Check) (Saved, error) {
	if !s.failed {
		s.failed = true
		return Saved{}, errors.New("connection refused")
	}
	return s.fakeStore.SaveCheck(ctx, c)
}

func TestOnlyAFinalOutcomeIsFinal(t *testing.T) {
	t.Parallel()
	final := map[Outcome]bool{
		OutcomeDuplicatesFound: true, OutcomeNoDuplicates: true, OutcomeNotPassed: true,
		OutcomeSkipped: false, OutcomeIncomplete: false, OutcomeFailed: false, Outcome("unknown"): false,
	}
	for o, want := range final {
		require.Equal(t, want, o.Final(), string(o))
	}
}

// TestANoticeOrAVerdictStillToComeDoesNotStopTheSearch follows one verification through the
// vendor's callback order: SUBMIT_COMPLETED, a COMPLETED while get-result still says INCOMPLETE,
// then the COMPLETED with the PASS verdict, which is searched (once, whatever comes after).
func TestANoticeOrAVerdictStillToComeDoesNotStopTheSearch(t *testing.T) {
	t.Parallel()
	d, v, s := setup(t)
	ctx := context.Background()
	submit := Event{SignatureID: "s1", Type: EventTypeSubmitCompleted}
	completed := Event{SignatureID: "s1", Type: EventTypeCompleted}
	v.similar["s1"] = []string{"alice"}

	res, err := d.Handle(ctx, submit, v, Source{})
	require.NoError(t, err)
	require.Equal(t, OutcomeSkipped, res.Outcome)
	require.Zero(t, v.results["s1"]+v.searches["s1"], "a notice calls no vendor")

	v.verifications["s1"] = Verification{UserID: "bob", OverallResult: "INCOMPLETE"}
	res, err = d.Handle(ctx, completed, v, Source{})
	require.NoError(t, err)
	require.Equal(t, OutcomeIncomplete, res.Outcome)
	require.False(t, res.AlreadyStored)
	require.Equal(t, "INCOMPLETE", s.checks["s1"].OverallResult)
	require.Zero(t, v.searches["s1"], "no search before the verdict is PASS")

	v.verifications["s1"] = Verification{UserID: "bob", OverallResult: "PASS"}
	res, err = d.Handle(ctx, completed, v, Source{})
	require.NoError(t, err)
	require.Equal(t, OutcomeDuplicatesFound, res.Outcome)
	require.NotNil(t, res.Saved.Alert)
	require.Equal(t, []string{"alice"}, res.Saved.Alert.NewMatchedUserIDs)
	require.Equal(t, 2, v.results["s1"], "the verdict was asked for again, not reused")

	for _, ev := range []Event{completed, submit} {
		res, err = d.Handle(ctx, ev, v, Source{})
		require.NoError(t, err)
		require.True(t, res.AlreadyStored, ev.Type)
	}
	require.Equal(t, OutcomeDuplicatesFound, s.checks["s1"].Outcome)
	require.Equal(t, 1, v.searches["s1"], "billed once")
}

func TestAFailVerdictIsFinalAndAnUnknownOneIsNot(t *testing.T) {
	t.Parallel()
	d, v, s := setup(t)
	ctx := context.Background()
	v.verifications["fail"] = Verification{UserID: "u1", OverallResult: "FAIL"}
	v.verifications["odd"] = Verification{UserID: "u2", OverallResult: "UNDER_REVIEW"}
	for _, sig := range []string{"fail", "odd"} {
		_, err := d.Handle(ctx, Event{SignatureID: sig, Type: EventTypeCompleted}, v, Source{})
		require.NoError(t, err)
	}
	require.Equal(t, OutcomeNotPassed, s.checks["fail"].Outcome)
	require.Equal(t, OutcomeIncomplete, s.checks["odd"].Outcome, "a verdict Doppel does not know is not final")

	v.verifications["fail"] = Verification{UserID: "u1", OverallResult: "PASS"}
	res, err := d.Handle(ctx, Event{SignatureID: "fail", Type: EventTypeCompleted}, v, Source{})
	require.NoError(t, err)
	require.True(t, res.AlreadyStored, "FAIL is final")
	require.Equal(t, 1, v.results["fail"])
	require.Zero(t, v.searches["fail"])
}

func TestAVerdictStillToComeIsNotKeptWhenStoringItFails(t *testing.T) {
	t.Parallel()
	v, s := newFakeVendor(), newFakeStore()
	d := NewDetector(&failOnceStore{fakeStore: s}, nil)
	v.verifications["s1"] = Verification{UserID: "u1", OverallResult: "INCOMPLETE"}
	ev := Event{SignatureID: "s1", Type: EventTypeCompleted}
	_, err := d.Handle(context.Background(), ev, v, Source{})
	require.Equal(t, FailureStore, KindOf(err))

	v.verifications["s1"] = Verification{UserID: "u1", OverallResult: "PASS"}
	res, err := d.Handle(context.Background(), ev, v, Source{})
	require.NoError(t, err)
	require.Equal(t, OutcomeNoDuplicates, res.Outcome, "the retry asked for the verdict again")
	require.Equal(t, 1, v.searches["s1"])
}

// refusingStore refuses any check carrying a vendor transaction id, as PostgreSQL refuses a NUL.
type refusingStore struct{ *fakeStore }

func (s refusingStore) SaveCheck(ctx context.Context, c Check) (Saved, error) {
	if c.VendorTransactionID != "" {
		return Saved{}, fmt.Errorf("%w: invalid byte sequence", ErrCheckRefused)
	}
	return s.fakeStore.SaveCheck(ctx, c)
}

// A check the database refuses for good is a dead letter with its reason, and its failure is
// recorded without the refused data; it is not a database outage to wait out.
func TestACheckTheDatabaseRefusesIsADeadLetterNotAnOutage(t *testing.T) {
	t.Parallel()
	v, s := newFakeVendor(), newFakeStore()
	d := NewDetector(refusingStore{s}, nil)
	v.similar["s1"] = []string{"alice"}
	res, err := d.Handle(context.Background(), Event{SignatureID: "s1", UserID: "bob", Type: EventTypeCompleted}, v, Source{})
	require.Equal(t, FailurePermanent, KindOf(err))
	require.Equal(t, ReasonCheckRefused, ReasonOf(err))
	require.Equal(t, OutcomeFailed, res.Outcome)
	require.Equal(t, OutcomeFailed, s.checks["s1"].Outcome)
	require.Contains(t, s.checks["s1"].FailureReason, "check_refused: ")
	require.Empty(t, s.checks["s1"].MatchedUserIDs, "the failure keeps nothing of the refused check")
}

// Ids that cannot be userIds are split from an answer, in order, and a clean answer is kept as is.
func TestSplitUserIDsKeepsOnlyValidUserIDs(t *testing.T) {
	t.Parallel()
	clean := []string{"a", "b"}
	usable, unusable := SplitUserIDs(clean)
	require.Equal(t, clean, usable)
	require.Nil(t, unusable)
	require.Same(t, &clean[0], &usable[0], "a clean answer is not copied")

	usable, unusable = SplitUserIDs([]string{"a", "nul\x00", "b", "tab\t", string(make([]byte, MaxUserIDLen+1)), "c"})
	require.Equal(t, []string{"a", "b", "c"}, usable)
	require.Len(t, unusable, 3)
	usable, unusable = SplitUserIDs([]string{"\x01"})
	require.Empty(t, usable)
	require.Equal(t, []string{"\x01"}, unusable)
}
