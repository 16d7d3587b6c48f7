package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/segmentio/kafka-go"

	"github.com/doppelhq/doppel/internal/consumer"
	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/harness/advancesim"
	"github.com/doppelhq/doppel/internal/harness/produce"
	"github.com/doppelhq/doppel/internal/harness/results"
	"github.com/doppelhq/doppel/internal/harness/runenv"
)

// maxExamples bounds the example keys listed for each kind of problem.
const maxExamples = 20

// ledger is the soak's account of every event, link, search and alert.
type ledger struct {
	RunID     string    `json:"runId"`
	StartedAt time.Time `json:"startedAt"`
	Seed      uint64    `json:"seed"`
	Build     string    `json:"build"`
	Machine   string    `json:"machine"`
	Options   struct {
		Events       int     `json:"events"`
		Duration     string  `json:"duration"`
		Workers      int     `json:"workers"`
		Kills        int     `json:"kills"`
		SimLatency   string  `json:"simLatency"`
		ErrorRate    float64 `json:"errorRate"`
		HTTP5xxRate  float64 `json:"http5xxRate"`
		BusyEvery    string  `json:"busyEvery"`
		BusyFor      string  `json:"busyFor"`
		BusyQPS      float64 `json:"busyQps"`
		PGDown       string  `json:"pgDown"`
		KafkaDown    string  `json:"kafkaDown"`
		Settle       string  `json:"settle"`
		RingFraction float64 `json:"ringFraction"`
	} `json:"options"`
	Names struct {
		Database string `json:"database"`
		Events   string `json:"eventsTopic"`
		Alerts   string `json:"alertsTopic"`
		DLQ      string `json:"dlqTopic"`
		Group    string `json:"group"`
	} `json:"names"`

	WallSeconds       float64 `json:"wallSeconds"`
	ProductionSeconds float64 `json:"productionSeconds"`
	SettleSeconds     float64 `json:"settleSeconds"`
	Settled           bool    `json:"settled"`

	Events struct {
		MessagesProduced int            `json:"messagesProduced"`
		Distinct         int            `json:"distinctEvents"`
		Resent           int            `json:"resentMessages"`
		ByKind           map[string]int `json:"byKind"`
		NeverAcked       int            `json:"neverAcknowledged"`
		FailedWrites     int            `json:"failedWriteAttemptsRetried"`
		ProduceError     string         `json:"produceError,omitempty"`
		OnTopic          int64          `json:"messagesOnTopic"`
		UsersInRings     int            `json:"usersInRings"`
		Rings            int            `json:"rings"`
	} `json:"events"`

	Outcomes        map[string]int `json:"outcomes"`
	OutcomeRows     int            `json:"outcomeRows"`
	ForeignOutcomes int            `json:"outcomeRowsOfUnknownSignatures"`

	DeadLetters struct {
		Messages        int            `json:"messages"`
		ByReason        map[string]int `json:"byReason"`
		DistinctEvents  int            `json:"distinctEvents"`
		EventsTwice     int            `json:"eventsDeadLetteredMoreThanOnce"`
		TwiceAround     map[string]int `json:"deadLetteredAgainAfter,omitempty"`
		UnknownKeys     int            `json:"unknownKeys"`
		ExhaustedEvents int            `json:"retriesExhaustedEvents"`
	} `json:"deadLetters"`

	Lost       int      `json:"lost"`
	LostKeys   []string `json:"lostKeys,omitempty"`
	Unexpected struct {
		Count    int            `json:"count"`
		ByKind   map[string]int `json:"byKind,omitempty"`
		Examples []string       `json:"examples,omitempty"`
	} `json:"unexpectedResults"`
	StoredAndDeadLettered int `json:"storedAndDeadLettered"`

	Links struct {
		Rows            int      `json:"rows"`
		Expected        int      `json:"expected"`
		PairsTwice      int      `json:"pairsStoredTwice"`
		SeenCountAbove  int      `json:"seenCountAboveMatchingChecks"`
		SeenCountBelow  int      `json:"seenCountBelowMatchingChecks"`
		WithoutCheck    int      `json:"linksWithoutAMatchingCheck"`
		MatchWithout    int      `json:"matchedPairsWithoutALink"`
		Missing         int      `json:"missingVersusPopulation"`
		NotInPopulation int      `json:"notInPopulation"`
		SeenCountOff    int      `json:"seenCountDiffersFromPopulation"`
		Examples        []string `json:"examples,omitempty"`
	} `json:"links"`
	DoubledLinks int `json:"doubledLinks"`

	Billing struct {
		Searches        int64          `json:"searchesBilled"`
		Signatures      int            `json:"signaturesBilled"`
		Expected        int            `json:"signaturesExpectedBilled"`
		Twice           int            `json:"billedTwice"`
		TwiceExamples   []string       `json:"billedTwiceExamples,omitempty"`
		TwiceWhen       map[string]int `json:"billedTwiceBetween,omitempty"`
		TwiceResent     int            `json:"billedTwiceAmongResentEvents"`
		Bound           int            `json:"boundKillsTimesWorkers"`
		WithoutOutcome  int            `json:"billedWithoutAStoredOutcome"`
		NotSearchable   int            `json:"billedButNotSearchable"`
		StoredUnbilled  int            `json:"searchOutcomesWithoutBilling"`
		ThreeOrMore     int            `json:"billedThreeTimesOrMore"`
		FaceSearchCalls int64          `json:"faceSearchCalls"`
	} `json:"billing"`

	Alerts struct {
		InOutbox          int `json:"inOutbox"`
		Unpublished       int `json:"unpublishedInOutbox"`
		OnTopic           int `json:"messagesOnTopic"`
		Distinct          int `json:"distinctAlertIdsOnTopic"`
		Republished       int `json:"republished"`
		NeverPublished    int `json:"inOutboxNeverOnTopic"`
		NotInOutbox       int `json:"onTopicNotInOutbox"`
		SignaturesTwice   int `json:"signaturesWithTwoAlerts"`
		WithoutDuplicates int `json:"alertsOfChecksWithoutDuplicates"`
	} `json:"alerts"`

	Vendor struct {
		Calls   map[string]int64 `json:"calls"`
		Answers map[string]int64 `json:"answers"`
	} `json:"vendor"`

	Faults faultsLedger `json:"faults"`

	Verdict struct {
		Pass     bool     `json:"pass"`
		Failures []string `json:"failures"`
		Notes    []string `json:"notes"`
	} `json:"verdict"`
}

// count counts the faults carried out whose name starts with prefix.
func (f *faultsLedger) count(prefix string) int {
	n := 0
	for _, r := range f.Timeline {
		if strings.HasPrefix(r.Name, prefix) && r.Error == "" {
			n++
		}
	}
	return n
}

// faultsLedger is what the soak did to doppel and the servers.
type faultsLedger struct {
	Timeline        []faultRecord `json:"timeline"`
	NotBySoak       []string      `json:"infrastructureRestartsNotBySoak"`
	OtherPrograms   []string      `json:"otherProgramsUsingTheServers"`
	Kills           int           `json:"kills"`
	NodeKills       int           `json:"kafkaNodeKills"`
	BusyBursts      int           `json:"serviceBusyBursts"`
	DoppelStarts    int           `json:"doppelStarts"`
	UnexpectedExits []exitRecord  `json:"unexpectedExits"`
	GracefulStop    gracefulStop  `json:"gracefulStop"`
}

type gracefulStop struct {
	Ran     bool    `json:"ran"`
	Seconds float64 `json:"seconds"`
	Status  string  `json:"status"`
}

// account reads everything the run left and builds the ledger.
func (s *soak) account(ctx context.Context, settled bool) (*ledger, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
	defer cancel()
	res := s.resolution()
	if err := s.readDLQ(ctx, res); err != nil {
		return nil, fmt.Errorf("read dead letters: %w", err)
	}
	checks, err := s.readChecks(ctx)
	if err != nil {
		return nil, fmt.Errorf("read idv_checks: %w", err)
	}
	stats, err := s.sim.stats(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the simulator's billing: %w", err)
	}

	l := &ledger{RunID: s.runID, StartedAt: s.started.UTC(), Seed: s.opts.seed, Build: runenv.GitLabel(ctx), Machine: machine(),
		Settled: settled}
	o := s.opts
	l.Options.Events, l.Options.Duration, l.Options.Workers, l.Options.Kills = o.events, o.duration.String(), o.workers, o.kills
	l.Options.SimLatency, l.Options.ErrorRate, l.Options.HTTP5xxRate = o.simLatency.String(), o.errorRate, o.http5xxRate
	l.Options.BusyEvery, l.Options.BusyFor, l.Options.BusyQPS = o.busyEvery.String(), o.busyFor.String(), o.busyQPS
	l.Options.PGDown, l.Options.KafkaDown, l.Options.Settle = o.pgDown.String(), o.kafkaDown.String(), o.settle.String()
	l.Options.RingFraction = o.ringFraction
	l.Names.Database, l.Names.Events, l.Names.Alerts, l.Names.DLQ, l.Names.Group = s.dbName, s.topicEvents, s.topicAlerts, s.topicDLQ, s.group
	l.WallSeconds = round1(time.Since(s.started).Seconds())
	l.ProductionSeconds = round1(s.prodEnd.Sub(s.prodStart).Seconds())
	l.SettleSeconds = round1(time.Since(s.settle).Seconds())

	// Events.
	s.mu.Lock()
	l.Events.MessagesProduced, l.Events.Distinct = s.ackedMsgs, len(s.ackedKeys)
	l.Events.FailedWrites = s.produceAttempts
	acked := make(map[string]int, len(s.ackedKeys))
	for k, n := range s.ackedKeys {
		acked[k] = n
	}
	l.Faults.Timeline = append([]faultRecord(nil), s.faults...)
	l.Faults.BusyBursts = s.busyBursts
	l.Faults.NotBySoak = append([]string{}, s.foreignInfra...)
	l.Faults.OtherPrograms = []string{}
	for o := range s.othersSeen {
		l.Faults.OtherPrograms = append(l.Faults.OtherPrograms, o)
	}
	sort.Strings(l.Faults.OtherPrograms)
	snapshots := append([]billingSnapshot(nil), s.snapshots...)
	s.mu.Unlock()
	if s.produceErr != nil {
		l.Events.ProduceError = s.produceErr.Error()
	}
	l.Events.Resent = l.Events.MessagesProduced - l.Events.Distinct
	l.Events.NeverAcked = len(s.pop.events) - l.Events.Distinct
	l.Events.ByKind = map[string]int{}
	l.Events.UsersInRings, l.Events.Rings = s.pop.inRing, s.pop.rings
	if bounds, err := produce.Offsets(ctx, s.brokers, s.topicEvents); err == nil {
		for _, b := range bounds {
			l.Events.OnTopic += b.End - b.First
		}
	}

	// Every acknowledged event: an outcome, a dead letter, or lost.
	l.Outcomes = map[string]int{}
	l.OutcomeRows = len(checks)
	for sig := range checks {
		if s.pop.bySig[sig] == nil {
			l.ForeignOutcomes++
		}
	}
	l.Unexpected.ByKind = map[string]int{}
	l.DeadLetters.TwiceAround = map[string]int{}
	keys := sortedKeys(acked)
	for _, key := range keys {
		ev := s.pop.byKey[key]
		l.Events.ByKind[string(ev.Kind)]++
		c, stored := checks[ev.Sig]
		stored = stored && ev.Sig != ""
		dls := res.dlq[key]
		if stored {
			l.Outcomes[c.outcome]++
		}
		if !stored && len(dls) == 0 {
			l.Lost++
			if len(l.LostKeys) < maxExamples {
				l.LostKeys = append(l.LostKeys, fmt.Sprintf("%s (%s)", key, ev.Kind))
			}
			continue
		}
		if len(dls) > 1 {
			l.DeadLetters.EventsTwice++
			l.DeadLetters.TwiceAround[s.faultBetween(l.Faults.Timeline, res.dlqAt[key])]++
		}
		if slices.Contains(dls, consumer.ReasonRetriesExhausted) {
			l.DeadLetters.ExhaustedEvents++
			if stored {
				l.StoredAndDeadLettered++
			}
			continue
		}
		got := expectation{DLQ: strings.Join(dls, ",")}
		if stored {
			got.Outcome = c.outcome
		}
		problem := ""
		switch {
		case got.Outcome != ev.Expect.Outcome:
			problem = fmt.Sprintf("outcome %q, want %q", got.Outcome, ev.Expect.Outcome)
		case ev.Expect.DLQ == "" && len(dls) > 0:
			problem = fmt.Sprintf("dead-lettered (%s), want no dead letter", got.DLQ)
		case ev.Expect.DLQ != "" && !allEqual(dls, ev.Expect.DLQ):
			problem = fmt.Sprintf("dead letters %q, want %q", got.DLQ, ev.Expect.DLQ)
		case stored && c.outcome == string(duplicate.OutcomeDuplicatesFound) && !s.matchesAsExpected(c):
			problem = fmt.Sprintf("matched %v, want the users of face %s who completed earlier", c.matched, s.pop.faceOf[c.userID])
		}
		if problem != "" {
			l.Unexpected.Count++
			l.Unexpected.ByKind[string(ev.Kind)]++
			if len(l.Unexpected.Examples) < maxExamples {
				l.Unexpected.Examples = append(l.Unexpected.Examples, fmt.Sprintf("%s (%s): %s", key, ev.Kind, problem))
			}
		}
	}

	// Dead letters.
	l.DeadLetters.Messages = res.dlqMsgs
	l.DeadLetters.ByReason = map[string]int{}
	for key, reasons := range res.dlq {
		if s.pop.byKey[key] == nil {
			l.DeadLetters.UnknownKeys++
		} else if acked[key] > 0 {
			l.DeadLetters.DistinctEvents++
		}
		for _, r := range reasons {
			l.DeadLetters.ByReason[r]++
		}
	}

	if err := s.accountLinks(ctx, l, checks); err != nil {
		return nil, fmt.Errorf("links: %w", err)
	}
	s.accountBilling(l, checks, stats, snapshots, acked)
	if err := s.accountAlerts(ctx, l, checks); err != nil {
		return nil, fmt.Errorf("alerts: %w", err)
	}
	l.Vendor.Calls, l.Vendor.Answers = stats.Calls, stats.Answers
	for _, f := range l.Faults.Timeline {
		if strings.HasPrefix(f.Name, "kill") && f.Error == "" {
			l.Faults.Kills++
		}
	}
	l.Faults.NodeKills = l.Faults.count(nodeKillPrefix)
	l.Faults.DoppelStarts, l.Faults.UnexpectedExits = s.doppel.report()
	if l.Faults.UnexpectedExits == nil {
		l.Faults.UnexpectedExits = []exitRecord{}
	}
	// A Kafka node's kill can hand out again what was in flight too (the group rejoins before the
	// offsets were committed), at most one event per worker.
	l.Billing.Bound = (l.Faults.Kills + l.Faults.NodeKills) * s.opts.workers
	return l, nil
}

// faultBetween names the last fault that began between an event's first dead letter and its second
// (a second dead letter is the event handled again after a kill -9 or a group rejoin).
func (s *soak) faultBetween(faults []faultRecord, at []time.Time) string {
	if len(at) < 2 {
		return "unknown"
	}
	first, second := at[0], at[1]
	name := "no fault between the two"
	for _, f := range faults {
		start := s.prodStart.Add(time.Duration(f.Start * float64(time.Second)))
		// The broker's timestamps and the soak's clock are the same machine's; allow for rounding.
		if !start.Before(first.Add(-time.Second)) && start.Before(second) {
			name = f.Name
		}
	}
	return name
}

// check is the part of an idv_checks row the ledger uses.
type check struct {
	userID  string
	outcome string
	matched []string
}

func (s *soak) readChecks(ctx context.Context) (map[string]check, error) {
	rows, err := s.pool.Query(ctx, `SELECT signature_id, coalesce(user_id, ''), outcome, matched_user_ids FROM idv_checks`)
	if err != nil {
		return nil, err
	}
	out := map[string]check{}
	var sig string
	var c check
	_, err = pgx.ForEachRow(rows, []any{&sig, &c.userID, &c.outcome, &c.matched}, func() error {
		out[sig] = check{userID: c.userID, outcome: c.outcome, matched: slices.Clone(c.matched)}
		return nil
	})
	return out, err
}

// matchesAsExpected reports whether a check matched exactly the users of the user's face who
// completed before the user did.
func (s *soak) matchesAsExpected(c check) bool {
	want := slices.Clone(s.pop.earlierOf(c.userID))
	got := slices.Clone(c.matched)
	slices.Sort(want)
	slices.Sort(got)
	return slices.Equal(want, got)
}

type pair struct{ low, high string }

func pairOf(a, b string) pair {
	if a > b {
		a, b = b, a
	}
	return pair{a, b}
}

// accountLinks checks duplicate_links against itself (each link's seen_count equals the checks that
// matched the pair, as internal/faulttest's verify does) and against the population.
func (s *soak) accountLinks(ctx context.Context, l *ledger, checks map[string]check) error {
	rows, err := s.pool.Query(ctx, `SELECT user_id_low, user_id_high, seen_count FROM duplicate_links`)
	if err != nil {
		return err
	}
	actual := map[pair]int{}
	var lo, hi string
	var seen int
	if _, err := pgx.ForEachRow(rows, []any{&lo, &hi, &seen}, func() error {
		p := pairOf(lo, hi)
		if _, dup := actual[p]; dup {
			l.Links.PairsTwice++
		}
		actual[p] += seen
		l.Links.Rows++
		return nil
	}); err != nil {
		return err
	}
	// From the stored checks, as the database holds them.
	matched := map[pair]int{}
	for _, c := range checks {
		for _, m := range c.matched {
			if m != c.userID {
				matched[pairOf(c.userID, m)]++
			}
		}
	}
	example := func(format string, args ...any) {
		if len(l.Links.Examples) < maxExamples {
			l.Links.Examples = append(l.Links.Examples, fmt.Sprintf(format, args...))
		}
	}
	for p, n := range actual {
		m, ok := matched[p]
		switch {
		case !ok:
			l.Links.WithoutCheck++
			example("link %s-%s (seen %d) matches no stored check", p.low, p.high, n)
		case n > m:
			l.Links.SeenCountAbove++
			example("link %s-%s seen %d times, %d checks matched it", p.low, p.high, n, m)
		case n < m:
			l.Links.SeenCountBelow++
			example("link %s-%s seen %d times, %d checks matched it", p.low, p.high, n, m)
		}
	}
	for p := range matched {
		if _, ok := actual[p]; !ok {
			l.Links.MatchWithout++
			example("checks matched %s-%s but there is no link", p.low, p.high)
		}
	}
	// From the population: every searched PASS check matches the users of its face who completed
	// before it.
	expected := map[pair]int{}
	for _, c := range checks {
		if c.outcome != string(duplicate.OutcomeDuplicatesFound) {
			continue
		}
		for _, u := range s.pop.earlierOf(c.userID) {
			expected[pairOf(c.userID, u)]++
		}
	}
	l.Links.Expected = len(expected)
	for p, n := range expected {
		got, ok := actual[p]
		switch {
		case !ok:
			l.Links.Missing++
		case got != n:
			l.Links.SeenCountOff++
		}
	}
	for p := range actual {
		if _, ok := expected[p]; !ok {
			l.Links.NotInPopulation++
		}
	}
	l.DoubledLinks = l.Links.PairsTwice + l.Links.SeenCountAbove
	return nil
}

// accountBilling reads the simulator's billing: a signatureId with a stored outcome billed more than
// once was paid for twice. The snapshots taken around each fault date the second search.
func (s *soak) accountBilling(l *ledger, checks map[string]check, st advancesim.Stats, snaps []billingSnapshot, acked map[string]int) {
	b := &l.Billing
	b.FaceSearchCalls = st.Calls["face-search"]
	b.TwiceWhen = map[string]int{}
	for _, key := range sortedKeys(acked) {
		if ev := s.pop.byKey[key]; ev.searched() {
			b.Expected++
		}
	}
	sigs := make([]string, 0, len(st.FaceSearchBySignature))
	for sig := range st.FaceSearchBySignature {
		sigs = append(sigs, sig)
	}
	sort.Strings(sigs)
	for _, sig := range sigs {
		n := st.FaceSearchBySignature[sig]
		b.Searches += n
		b.Signatures++
		ev := s.pop.bySig[sig]
		if ev == nil || !ev.searched() {
			b.NotSearchable++
		}
		_, stored := checks[sig]
		if !stored {
			b.WithoutOutcome++
		}
		if n >= 3 {
			b.ThreeOrMore++
		}
		if n < 2 || !stored {
			continue
		}
		b.Twice++
		if ev != nil && acked[ev.Key] > 1 {
			b.TwiceResent++
		}
		b.TwiceWhen["first billed "+billedBetween(snaps, sig, 1)+", again "+billedBetween(snaps, sig, 2)]++
		if len(b.TwiceExamples) < maxExamples {
			b.TwiceExamples = append(b.TwiceExamples, fmt.Sprintf("%s x%d", sig, n))
		}
	}
	for sig, c := range checks {
		if c.outcome == string(duplicate.OutcomeDuplicatesFound) || c.outcome == string(duplicate.OutcomeNoDuplicates) {
			if st.FaceSearchBySignature[sig] == 0 {
				b.StoredUnbilled++
			}
		}
	}
}

// billedBetween names the two snapshots between which sig's billing counter reached n.
func billedBetween(snaps []billingSnapshot, sig string, n int64) string {
	for i, snap := range snaps {
		if snap.counts[sig] >= n {
			if i == 0 {
				return "before " + snap.label
			}
			return "between " + snaps[i-1].label + " and " + snap.label
		}
	}
	if len(snaps) == 0 {
		return "at an unknown time"
	}
	return "after " + snaps[len(snaps)-1].label
}

// accountAlerts compares the outbox with the alert topic, read in full.
func (s *soak) accountAlerts(ctx context.Context, l *ledger, checks map[string]check) error {
	rows, err := s.pool.Query(ctx, `SELECT alert_id::text, signature_id, published_at IS NOT NULL FROM alerts`)
	if err != nil {
		return err
	}
	outbox := map[string]bool{}
	perSig := map[string]int{}
	var id, sig string
	var published bool
	if _, err := pgx.ForEachRow(rows, []any{&id, &sig, &published}, func() error {
		outbox[id] = true
		perSig[sig]++
		l.Alerts.InOutbox++
		if !published {
			l.Alerts.Unpublished++
		}
		if checks[sig].outcome != string(duplicate.OutcomeDuplicatesFound) {
			l.Alerts.WithoutDuplicates++
		}
		return nil
	}); err != nil {
		return err
	}
	for _, n := range perSig {
		if n > 1 {
			l.Alerts.SignaturesTwice++
		}
	}
	onTopic := map[string]bool{}
	var decodeErr error
	err = produce.NewReader(s.brokers, s.topicAlerts).ReadNew(ctx, 3*time.Minute, func(m kafka.Message) {
		l.Alerts.OnTopic++
		var a duplicate.Alert
		if err := json.Unmarshal(m.Value, &a); err != nil || a.AlertID == "" {
			decodeErr = fmt.Errorf("alert at %d/%d: %v", m.Partition, m.Offset, err)
			for _, h := range m.Headers {
				if h.Key == "alert-id" {
					a.AlertID = string(h.Value)
				}
			}
		}
		onTopic[a.AlertID] = true
	})
	if err != nil {
		return err
	}
	if decodeErr != nil {
		l.Verdict.Notes = append(l.Verdict.Notes, "an alert on the topic is not valid JSON: "+decodeErr.Error())
	}
	l.Alerts.Distinct = len(onTopic)
	l.Alerts.Republished = l.Alerts.OnTopic - l.Alerts.Distinct
	for id := range outbox {
		if !onTopic[id] {
			l.Alerts.NeverPublished++
		}
	}
	for id := range onTopic {
		if !outbox[id] {
			l.Alerts.NotInOutbox++
		}
	}
	return nil
}

// judge fills the verdict: the failures make the soak fail; the notes explain what is allowed.
func (l *ledger) judge() {
	fail := func(cond bool, format string, args ...any) {
		if cond {
			l.Verdict.Failures = append(l.Verdict.Failures, fmt.Sprintf(format, args...))
		}
	}
	note := func(cond bool, format string, args ...any) {
		if cond {
			l.Verdict.Notes = append(l.Verdict.Notes, fmt.Sprintf(format, args...))
		}
	}
	fail(l.Lost > 0, "%d events lost: acknowledged by the broker, yet neither a stored outcome nor a dead letter", l.Lost)
	fail(l.DoubledLinks > 0, "%d doubled links (%d pairs stored twice, %d links seen more often than checks matched them)",
		l.DoubledLinks, l.Links.PairsTwice, l.Links.SeenCountAbove)
	fail(l.Links.SeenCountBelow+l.Links.WithoutCheck+l.Links.MatchWithout > 0,
		"duplicate_links disagrees with idv_checks: %d links seen less often than matched, %d links without a check, %d matched pairs without a link",
		l.Links.SeenCountBelow, l.Links.WithoutCheck, l.Links.MatchWithout)
	fail(l.Links.Missing+l.Links.NotInPopulation+l.Links.SeenCountOff > 0,
		"links disagree with the population: %d missing, %d not in it, %d with another seen_count", l.Links.Missing, l.Links.NotInPopulation, l.Links.SeenCountOff)
	fail(l.Billing.Twice > l.Billing.Bound,
		"%d signatureIds billed twice, more than the %d kill -9 x workers searches that can be in flight at a kill", l.Billing.Twice, l.Billing.Bound)
	fail(l.Billing.NotSearchable > 0, "%d face searches billed for signatureIds that should never be searched", l.Billing.NotSearchable)
	fail(l.Billing.StoredUnbilled > 0, "%d search outcomes stored without a billed face search", l.Billing.StoredUnbilled)
	fail(l.Alerts.NeverPublished > 0 || l.Alerts.Unpublished > 0, "%d alerts in the outbox never reached the topic (%d still unpublished)", l.Alerts.NeverPublished, l.Alerts.Unpublished)
	fail(l.Alerts.NotInOutbox > 0, "%d alertIds on the topic are not in the outbox", l.Alerts.NotInOutbox)
	fail(l.Alerts.SignaturesTwice > 0, "%d signatureIds raised two alerts", l.Alerts.SignaturesTwice)
	// The relay reads the alert topic back before publishing what the outbox holds unmarked, so a
	// kill between publishing and marking no longer publishes an alert twice (issue 21).
	fail(l.Alerts.Republished > 0, "%d alert message(s) repeat an alertId already on the topic: each alert is published once, even across a kill -9", l.Alerts.Republished)
	fail(l.Unexpected.Count > 0, "%d events ended otherwise than the population says they should", l.Unexpected.Count)
	fail(l.ForeignOutcomes > 0, "%d outcomes stored for signatureIds the soak never produced", l.ForeignOutcomes)
	fail(len(l.Faults.UnexpectedExits) > 0, "doppel exited %d times without being killed", len(l.Faults.UnexpectedExits))
	fail(l.Faults.GracefulStop.Ran && l.Faults.GracefulStop.Status != "exit status 0", "SIGTERM at the end: %s", l.Faults.GracefulStop.Status)
	fail(!l.Settled, "the run did not settle within %s", l.Options.Settle)
	for _, f := range l.Faults.Timeline {
		fail(f.Error != "", "fault %q could not be carried out: %s", f.Name, f.Error)
	}
	fail(l.Events.ProduceError != "", "producing stopped early: %s", l.Events.ProduceError)

	note(l.Billing.Twice > 0, "%d signatureIds were billed twice; the README allows it only for a search in flight at a kill -9 "+
		"(its answer was not stored yet), at most one per worker per kill: %d kills x %d workers = %d. When, from the billing snapshots taken before and after each fault: %s",
		l.Billing.Twice, l.Faults.Kills+l.Faults.NodeKills, l.Options.Workers, l.Billing.Bound, formatWhy(l.Billing.TwiceWhen))
	note(l.DeadLetters.ExhaustedEvents > 0, "%d events ran out of retries against the ~%.0f%% failing vendor (dead-lettered retries_exhausted; `doppel dlq replay --reason retries_exhausted` re-runs them)",
		l.DeadLetters.ExhaustedEvents, 100*(l.Options.ErrorRate+l.Options.HTTP5xxRate))
	note(l.StoredAndDeadLettered > 0, "%d events were dead-lettered retries_exhausted and also stored (redelivered after a kill before the offset was committed)", l.StoredAndDeadLettered)
	note(l.DeadLetters.EventsTwice > 0, "%d events were dead-lettered more than once: a kill -9, or the group rejoining after the broker restart, "+
		"between the dead letter and the offset commit hands the event out again (dead letters are at least once; replaying both is harmless). "+
		"Last fault between the first and the second letter: %s", l.DeadLetters.EventsTwice, formatWhy(l.DeadLetters.TwiceAround))
	note(len(l.Faults.NotBySoak) > 0, "PostgreSQL or Kafka restarted without the soak asking (more faults than planned): %s", strings.Join(l.Faults.NotBySoak, "; "))
	note(len(l.Faults.OtherPrograms) > 0, "other programs used this checkout's servers during the run (the soak's restarts disturb them; they share the CPU): %s",
		strings.Join(l.Faults.OtherPrograms, "; "))
	note(l.Events.NeverAcked > 0, "%d events were never acknowledged by the broker and are left out of the ledger", l.Events.NeverAcked)
	l.Verdict.Pass = len(l.Verdict.Failures) == 0
	if l.Verdict.Failures == nil {
		l.Verdict.Failures = []string{}
	}
	if l.Verdict.Notes == nil {
		l.Verdict.Notes = []string{}
	}
}

// ---------------------------------------------------------------- the report

type row struct{ figure, value, target, ok string }

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "NO"
}

func (l *ledger) rows() []row {
	var r []row
	add := func(figure, value, target, ok string) { r = append(r, row{figure, value, target, ok}) }
	add("events produced (acknowledged by the broker)", fmt.Sprintf("%d messages: %d distinct events + %d sent twice", l.Events.MessagesProduced, l.Events.Distinct, l.Events.Resent), "", "")
	add("outcomes stored", fmt.Sprintf("%d: %s", sumValues(l.Outcomes), formatCounts(l.Outcomes)), "", "")
	add("dead-lettered, by reason", fmt.Sprintf("%d letters for %d events: %s", l.DeadLetters.Messages, l.DeadLetters.DistinctEvents, formatCounts(l.DeadLetters.ByReason)), "", "")
	add("lost (neither outcome nor dead letter)", fmt.Sprint(l.Lost), "0", yes(l.Lost == 0))
	add("events ending otherwise than expected", fmt.Sprint(l.Unexpected.Count), "0", yes(l.Unexpected.Count == 0))
	add("duplicate links doubled", fmt.Sprintf("%d (%d pairs twice, %d seen_count above the checks that matched)", l.DoubledLinks, l.Links.PairsTwice, l.Links.SeenCountAbove), "0", yes(l.DoubledLinks == 0))
	add("links consistent with checks and population", fmt.Sprintf("%d links, %d expected; %d missing, %d extra, %d other seen_count", l.Links.Rows, l.Links.Expected,
		l.Links.Missing+l.Links.MatchWithout, l.Links.NotInPopulation+l.Links.WithoutCheck, l.Links.SeenCountOff+l.Links.SeenCountBelow), "all", yes(l.Links.Missing+l.Links.NotInPopulation+l.Links.SeenCountOff+l.Links.SeenCountBelow+l.Links.WithoutCheck+l.Links.MatchWithout == 0))
	add("face searches billed twice", fmt.Sprintf("%d of %d signatureIds (%d searches billed, %d expected)", l.Billing.Twice, l.Billing.Signatures, l.Billing.Searches, l.Billing.Expected),
		fmt.Sprintf("0; at most %d (%d kill -9 x %d workers)", l.Billing.Bound, l.Faults.Kills+l.Faults.NodeKills, l.Options.Workers), billedOK(l))
	add("alerts in the outbox", fmt.Sprintf("%d (%d unpublished)", l.Alerts.InOutbox, l.Alerts.Unpublished), "", "")
	add("alerts published (messages on the alert topic)", fmt.Sprintf("%d (%d republished)", l.Alerts.OnTopic, l.Alerts.Republished), "0 republished", yes(l.Alerts.Republished == 0))
	add("distinct alertIds on the topic", fmt.Sprint(l.Alerts.Distinct), fmt.Sprintf("= outbox (%d)", l.Alerts.InOutbox), yes(l.Alerts.Distinct == l.Alerts.InOutbox && l.Alerts.NotInOutbox == 0))
	add("alerts in the outbox never published", fmt.Sprint(l.Alerts.NeverPublished), "0", yes(l.Alerts.NeverPublished == 0))
	add("signatureIds with two alerts", fmt.Sprint(l.Alerts.SignaturesTwice), "0", yes(l.Alerts.SignaturesTwice == 0))
	add("faults", fmt.Sprintf("%d kill -9, %d PostgreSQL restart, %d Kafka restart, %d Kafka node kill -9, %d SERVICE_BUSY bursts", l.Faults.Kills,
		l.Faults.count("PostgreSQL"), l.Faults.count("Kafka stop"), l.Faults.NodeKills, l.Faults.BusyBursts), "", "")
	add("vendor answers", formatCounts64(l.Vendor.Answers), "", "")
	add("doppel exits not caused by the soak", fmt.Sprint(len(l.Faults.UnexpectedExits)), "0", yes(len(l.Faults.UnexpectedExits) == 0))
	add("settled (all resolved, lag 0, outbox empty)", fmt.Sprintf("%v, %.0f s after production", l.Settled, l.SettleSeconds), "yes", yes(l.Settled))
	add("SIGTERM at the end", fmt.Sprintf("%s in %.1f s", l.Faults.GracefulStop.Status, l.Faults.GracefulStop.Seconds), "exit 0", yes(!l.Faults.GracefulStop.Ran || l.Faults.GracefulStop.Status == "exit status 0"))
	add("wall time", fmt.Sprintf("%.0f s (production %.0f s)", l.WallSeconds, l.ProductionSeconds), "", "")
	add("verdict", map[bool]string{true: "PASS", false: "FAIL"}[l.Verdict.Pass], "", "")
	return r
}

func billedOK(l *ledger) string {
	switch {
	case l.Billing.Twice == 0:
		return "yes"
	case l.Billing.Twice <= l.Billing.Bound:
		return "within bound"
	default:
		return "NO"
	}
}

func (l *ledger) text() string {
	rows := l.rows()
	w := [3]int{len("figure"), len("value"), len("target")}
	for _, r := range rows {
		w[0], w[1], w[2] = max(w[0], len(r.figure)), max(w[1], len(r.value)), max(w[2], len(r.target))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Soak ledger, run %s (seed %d)\n", l.RunID, l.Seed)
	line := func(a, c, d, e string) { fmt.Fprintf(&b, "%-*s  %-*s  %-*s  %s\n", w[0], a, w[1], c, w[2], d, e) }
	line("figure", "value", "target", "met?")
	line(strings.Repeat("-", w[0]), strings.Repeat("-", w[1]), strings.Repeat("-", w[2]), "----")
	for _, r := range rows {
		line(r.figure, r.value, r.target, r.ok)
	}
	for _, f := range l.Verdict.Failures {
		fmt.Fprintf(&b, "FAILURE: %s\n", f)
	}
	for _, n := range l.Verdict.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	for _, k := range l.LostKeys {
		fmt.Fprintf(&b, "lost: %s\n", k)
	}
	for _, e := range l.Unexpected.Examples {
		fmt.Fprintf(&b, "unexpected: %s\n", e)
	}
	for _, e := range l.Links.Examples {
		fmt.Fprintf(&b, "link: %s\n", e)
	}
	return b.String()
}

func (l *ledger) write(outDir, docsPath string) error {
	if err := results.WriteJSON(filepath.Join(outDir, "ledger.json"), l); err != nil {
		return err
	}
	if docsPath == "" {
		return nil
	}
	return results.WriteFile(docsPath, []byte(l.markdown()))
}

func (l *ledger) markdown() string {
	var b strings.Builder
	b.WriteString("# Soak\n\nWritten by `make soak` (cmd/doppel-soak, through scripts/soak.sh); do not edit by hand, run it again.\n\n")
	fmt.Fprintf(&b, "Run %s (seed %d), %s UTC, %.0f s of wall time, on %s; build: %s.\n\n", l.RunID, l.Seed,
		l.StartedAt.Format("2006-01-02 15:04"), l.WallSeconds, l.Machine, l.Build)
	fmt.Fprintf(&b, "%d messages produced over %s in waves, %d doppel workers, vendor latency %s with %.0f%% ERROR and %.0f%% HTTP 503 answers, "+
		"a SERVICE_BUSY burst (QPS limit %.0f for %s) every %s, %d kill -9 of doppel, %d PostgreSQL stop/start (%s down), %d Kafka stop/start (%s down) and %d kill -9 of a node of a three-node Kafka.\n\n",
		l.Events.MessagesProduced, l.Options.Duration, l.Options.Workers, l.Options.SimLatency, 100*l.Options.ErrorRate, 100*l.Options.HTTP5xxRate,
		l.Options.BusyQPS, l.Options.BusyFor, l.Options.BusyEvery, l.Faults.Kills, l.Faults.count("PostgreSQL"), l.Options.PGDown,
		l.Faults.count("Kafka stop"), l.Options.KafkaDown, l.Faults.NodeKills)
	b.WriteString("| figure | value | target | met? |\n|---|---|---|---|\n")
	for _, r := range l.rows() {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", r.figure, r.value, results.Dash(r.target), results.Dash(r.ok))
	}
	if len(l.Verdict.Failures) > 0 {
		b.WriteString("\nFailures:\n\n")
		for _, f := range l.Verdict.Failures {
			fmt.Fprintf(&b, "- %s\n", f)
		}
	}
	if len(l.Verdict.Notes) > 0 {
		b.WriteString("\nNotes:\n\n")
		for _, n := range l.Verdict.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	b.WriteString("\nEvents by kind (distinct, acknowledged): " + formatCounts(l.Events.ByKind) + ".\n")
	fmt.Fprintf(&b, "%d users share a face in %d rings.\n", l.Events.UsersInRings, l.Events.Rings)
	b.WriteString("\nFault timeline (seconds since production started):\n\n| fault | from | to | detail |\n|---|---|---|---|\n")
	for _, f := range l.Faults.Timeline {
		d := f.Detail
		if f.Error != "" {
			d = "FAILED: " + f.Error
		}
		fmt.Fprintf(&b, "| %s | %.1f | %.1f | %s |\n", f.Name, f.Start, f.End, d)
	}
	b.WriteString(`
## What the soak does and how each figure is counted

- ` + "`make soak`" + ` (or ` + "`bash scripts/soak.sh [flags]`" + `; ` + "`bin/doppel-soak -h`" + ` lists the flags: -events,
  -duration, -workers, -kills, -error-rate, ...) builds the binaries, brings PostgreSQL and Kafka up through
  scripts/with-infra.sh and runs cmd/doppel-soak. It uses a fresh database (` + "`soak_<run>`" + `), fresh topics
  (` + "`soak.<run>.*`" + `, 6 partitions) and a fresh consumer group; they are kept for inspection and dropped by the
  next soak. Child logs are in soak-results/logs/, the full ledger in soak-results/ledger.json.
- The population is seeded into advance-sim: about 30% of the users share a face in rings of 2 to 4; some
  events carry no userId (get-result first); some sessions are FAIL or INCOMPLETE (stored not_passed and
  incomplete without a userId, dead-lettered vendor_rejected with one); SUBMIT_COMPLETED and unknown types
  are stored skipped; each session completes at seeding, in order, and face search sees only earlier ones;
  unknown signatureIds are dead-lettered vendor_rejected; malformed messages of each kind are dead-lettered
  with their reason; 1.5% of the events are produced a second time, later.
- **Produced** counts only messages the broker acknowledged (acks from all in-sync replicas). A write that
  fails while the broker is down is written again once it is back, so no produced event is a guess.
- **Outcomes** are the idv_checks rows of the produced events; **dead letters** are read from the
  dead-letter topic in full and matched to events by message key. **Lost** is an acknowledged event with
  neither. **Ending otherwise than expected** compares each event with what its kind calls for (outcome,
  dead-letter reason, and for duplicates_found the exact users matched); an event that ran out of retries
  is reported apart (retries_exhausted is correct behaviour when the vendor keeps failing).
- **Doubled links**: a pair stored twice, or a link whose seen_count is above the number of stored checks
  that matched it (internal/faulttest's check). The links are also compared with the population: every
  pair of a face where at least one member's check found duplicates, seen once per such check.
- **Billed twice**: signatureIds with a stored outcome that advance-sim answered SUCCESS more than once
  (its billing counters). The README allows this only for a search in flight at a kill -9, at most one per
  worker per kill; billing snapshots taken before and after every fault date each second search.
- **Alerts**: the outbox table against the alert topic, read in full from every partition without a
  consumer group: every stored alertId must be on the topic, nothing else may be, and no signatureId may
  raise two alerts. No alertId may be on the topic twice (the relay reads the topic back before it
  publishes what the outbox holds unmarked, so a kill -9 between publishing and marking repeats none).
- The run **settles** when every produced event has an outcome or a dead letter, the consumer group's lag
  is 0 and the outbox is empty (bounded by -settle); then doppel gets SIGTERM and must exit 0.
- The exit status is non-zero when any figure marked NO fails.
`)
	return b.String()
}

func formatCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// formatWhy lists the counts of a map of explanations, the most frequent first.
func formatWhy(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d %s", m[k], k)
	}
	return strings.Join(parts, "; ")
}

func formatCounts64(m map[string]int64) string {
	c := make(map[string]int, len(m))
	for k, v := range m {
		c[k] = int(v)
	}
	return formatCounts(c)
}

func sumValues(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func allEqual(xs []string, want string) bool {
	for _, x := range xs {
		if x != want {
			return false
		}
	}
	return len(xs) > 0
}

func round1(x float64) float64 { return math.Round(x*10) / 10 }

func machine() string {
	return fmt.Sprintf("%d cores (%s), %s", runtime.NumCPU(), runenv.CPUModel(), runtime.Version())
}
