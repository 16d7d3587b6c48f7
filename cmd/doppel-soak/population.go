package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/harness/advancesim"
	"github.com/doppelhq/doppel/internal/harness/faces"
	"github.com/doppelhq/doppel/internal/harness/launch"
)

// kind is what an event is made of, and so what Doppel should do with it.
type kind string

// The kinds of events the soak produces.
const (
	kindPass         kind = "pass"               // COMPLETED with the userId, PASS session
	kindPassThin     kind = "pass_thin"          // COMPLETED without the userId: get-result first
	kindNotPassUser  kind = "not_pass_with_user" // FAIL/INCOMPLETE session, userId given: vendor refuses
	kindNotPassThin  kind = "not_pass_thin"      // FAIL/INCOMPLETE session, no userId: not_passed/incomplete
	kindSubmit       kind = "submit_completed"   // SUBMIT_COMPLETED: skipped
	kindOtherType    kind = "other_type"         // an unknown type: skipped
	kindUnknownSig   kind = "unknown_signature"  // signatureId the vendor never issued, userId given
	kindUnknownThin  kind = "unknown_signature_thin"
	kindInvalidJSON  kind = "malformed_invalid_json"
	kindWrongType    kind = "malformed_wrong_field_type"
	kindMissingSig   kind = "malformed_missing_signature_id"
	kindInvalidSig   kind = "malformed_invalid_signature_id"
	kindMissingType  kind = "malformed_missing_type"
	kindInvalidField kind = "malformed_invalid_field"
	kindTooLarge     kind = "malformed_too_large"
)

// The population's proportions.
const (
	tooLargePadding   = 70 << 10 // above doppel's default DOPPEL_MAX_EVENT_BYTES (64 KiB)
	resendPermille    = 15       // events produced a second time, later
	malformedPer10000 = 25       // all malformed kinds together
	unknownPermille   = 5
	notPassPermille   = 15 // each of the two not-pass kinds
	submitPermille    = 20
	otherTypePermille = 5
	thinPercentOfPass = 12
	minPerRareKind    = 3
)

// expectation is what Doppel should end with for an event: a stored outcome, a dead letter, or both.
type expectation struct {
	Outcome string // "" when no idv_checks row is expected
	DLQ     string // "" when no dead letter is expected
}

// event is one distinct event of the soak (a resend is the same event produced again).
type event struct {
	Key    string
	Sig    string // the signatureId Doppel stores an outcome under; "" when it cannot know one
	UserID string
	Face   string
	Kind   kind
	Value  []byte
	// Result is the session's verdict in the simulator ("" when it is not seeded).
	Result string
	Expect expectation
}

// population is every event of the soak, in production order, with what the simulator was seeded with.
type population struct {
	events   []*event
	sequence []*event // production order; resent events appear twice
	byKey    map[string]*event
	bySig    map[string]*event
	// faces holds the users of every PASS session by face, in the order they completed in the
	// simulator (its seeding order): a face search sees the users before the searched one.
	faces  map[string][]string
	faceOf map[string]string // userId -> face, PASS users only
	rings  int
	inRing int
}

// newPopulation makes the events of a soak of total messages, seeds nothing yet.
func newPopulation(total int, ringFraction float64, seed uint64) *population {
	rng := rand.New(rand.NewPCG(seed, 0x50a4))
	resends := total * resendPermille / 1000
	distinct := total - resends
	perMille := func(n int) int { return max(minPerRareKind, distinct*n/1000) }
	malformedEach := max(minPerRareKind, distinct*malformedPer10000/10000/7)
	unknown := perMille(unknownPermille)
	notPassUser, notPassThin := perMille(notPassPermille), perMille(notPassPermille)
	submit, other := perMille(submitPermille), perMille(otherTypePermille)
	pass := distinct - 7*malformedEach - unknown - notPassUser - notPassThin - submit - other
	thin := pass * thinPercentOfPass / 100

	pop := &population{byKey: map[string]*event{}, bySig: map[string]*event{}, faces: map[string][]string{},
		faceOf: map[string]string{}}

	// Users whose session is PASS, in random order, grouped into faces: about ringFraction of them
	// share a face with 1 to 3 others.
	var passKinds []kind
	for range pass - thin {
		passKinds = append(passKinds, kindPass)
	}
	for range thin {
		passKinds = append(passKinds, kindPassThin)
	}
	for range submit {
		passKinds = append(passKinds, kindSubmit)
	}
	for range other {
		passKinds = append(passKinds, kindOtherType)
	}
	rng.Shuffle(len(passKinds), func(i, j int) { passKinds[i], passKinds[j] = passKinds[j], passKinds[i] })
	user, face, i := 0, 0, 0
	for _, size := range faces.GroupSizes(rng, len(passKinds), ringFraction) {
		f := fmt.Sprintf("face-%07d", face)
		face++
		if size > 1 {
			pop.rings++
			pop.inRing += size
		}
		for range size {
			user++
			u := fmt.Sprintf("cust-%07d", user)
			pop.faces[f] = append(pop.faces[f], u)
			pop.faceOf[u] = f
			pop.events = append(pop.events, &event{UserID: u, Face: f, Kind: passKinds[i]})
			i++
		}
	}
	for i := range notPassUser + notPassThin {
		user++
		k := kindNotPassUser
		if i >= notPassUser {
			k = kindNotPassThin
		}
		pop.events = append(pop.events, &event{UserID: fmt.Sprintf("cust-%07d", user), Face: fmt.Sprintf("face-np-%07d", i), Kind: k})
	}
	for i := range unknown {
		k := kindUnknownSig
		if i%2 == 1 {
			k = kindUnknownThin
		}
		user++
		pop.events = append(pop.events, &event{UserID: fmt.Sprintf("cust-%07d", user), Kind: k,
			Sig: fmt.Sprintf("%016x", rng.Uint64()|1<<63)}) // simulator ids are random too; checked below
	}
	for _, k := range []kind{kindInvalidJSON, kindWrongType, kindMissingSig, kindInvalidSig, kindMissingType, kindInvalidField, kindTooLarge} {
		for i := range malformedEach {
			pop.events = append(pop.events, malformed(k, i))
		}
	}
	rng.Shuffle(len(pop.events), func(i, j int) { pop.events[i], pop.events[j] = pop.events[j], pop.events[i] })

	// Resent events: a producer's retry or a redelivered callback, some seconds after the first.
	type placed struct {
		pos float64
		ev  *event
	}
	order := make([]placed, 0, total)
	for i, ev := range pop.events {
		order = append(order, placed{float64(i), ev})
	}
	for n := 0; n < resends; {
		i := rng.IntN(len(pop.events))
		ev := pop.events[i]
		if ev.Kind != kindPass && ev.Kind != kindPassThin {
			continue // resend only what is searched: that is where double billing would show
		}
		order = append(order, placed{float64(i+100+rng.IntN(3000)) + 0.5, ev})
		n++
	}
	sort.SliceStable(order, func(a, b int) bool { return order[a].pos < order[b].pos })
	for _, o := range order {
		pop.sequence = append(pop.sequence, o.ev)
	}
	return pop
}

// malformed returns the i-th message of a malformed kind, with what Doppel should do with it.
func malformed(k kind, i int) *event {
	ev := &event{Kind: k}
	switch k {
	case kindInvalidJSON:
		ev.Key = fmt.Sprintf("malformed-invalid-json-%04d", i)
		ev.Value = []byte(fmt.Sprintf(`{"signatureId": "mfj%04d", "type": "COMPLETED"`, i))
		ev.Expect = expectation{DLQ: duplicate.ReasonInvalidJSON}
	case kindWrongType:
		ev.Sig = fmt.Sprintf("mfw%04d", i)
		ev.Value = []byte(fmt.Sprintf(`{"signatureId":%q,"type":"COMPLETED","userId":12345}`, ev.Sig))
		ev.Expect = expectation{Outcome: string(duplicate.OutcomeFailed), DLQ: duplicate.ReasonWrongFieldType}
	case kindMissingSig:
		ev.Key = fmt.Sprintf("malformed-missing-sig-%04d", i)
		ev.Value = []byte(fmt.Sprintf(`{"type":"COMPLETED","userId":"cust-mf%04d"}`, i))
		ev.Expect = expectation{DLQ: duplicate.ReasonMissingSignatureID}
	case kindInvalidSig:
		ev.Key = fmt.Sprintf("malformed-invalid-sig-%04d", i)
		ev.Value = []byte(fmt.Sprintf(`{"signatureId":"bad\u0007id%04d","type":"COMPLETED"}`, i))
		ev.Expect = expectation{DLQ: duplicate.ReasonInvalidSignatureID}
	case kindMissingType:
		ev.Sig = fmt.Sprintf("mft%04d", i)
		ev.Value = []byte(fmt.Sprintf(`{"signatureId":%q,"userId":"cust-mf%04d"}`, ev.Sig, i))
		ev.Expect = expectation{Outcome: string(duplicate.OutcomeFailed), DLQ: duplicate.ReasonMissingType}
	case kindInvalidField:
		ev.Sig = fmt.Sprintf("mff%04d", i)
		ev.Value = []byte(fmt.Sprintf(`{"signatureId":%q,"type":"COMPLETED","occurredAt":"yesterday"}`, ev.Sig))
		ev.Expect = expectation{Outcome: string(duplicate.OutcomeFailed), DLQ: duplicate.ReasonInvalidField}
	case kindTooLarge:
		// Too large to be parsed, so Doppel cannot know the signatureId: only the dead letter, by key.
		ev.Key = fmt.Sprintf("mfl%04d", i)
		ev.Value = []byte(fmt.Sprintf(`{"signatureId":%q,"type":"COMPLETED","note":"%s"}`, ev.Key, strings.Repeat("x", tooLargePadding)))
		ev.Expect = expectation{DLQ: duplicate.ReasonTooLarge}
	}
	if ev.Key == "" {
		ev.Key = ev.Sig
	}
	return ev
}

// seeded reports whether the event's verification is registered in the simulator.
func (e *event) seeded() bool {
	switch e.Kind {
	case kindPass, kindPassThin, kindNotPassUser, kindNotPassThin, kindSubmit, kindOtherType:
		return true
	}
	return false
}

// searched reports whether Doppel should make a (billed) face search for the event.
func (e *event) searched() bool { return e.Kind == kindPass || e.Kind == kindPassThin }

// seed registers the population's verifications in the simulator and completes every event: its
// signatureId, key, value and expectation.
func (pop *population) seed(ctx context.Context, sim *simulator, rng *rand.Rand) error {
	var sessions []advancesim.Session
	var seeded []*event
	for _, ev := range pop.events {
		if !ev.seeded() {
			continue
		}
		result := duplicate.VerdictPass
		if ev.Kind == kindNotPassUser || ev.Kind == kindNotPassThin {
			result = "FAIL"
			if rng.IntN(2) == 0 {
				result = "INCOMPLETE"
			}
		}
		ev.Result = result
		sessions = append(sessions, advancesim.Session{UserID: ev.UserID, Face: ev.Face, OverallResult: result})
		seeded = append(seeded, ev)
	}
	// The batch completes in its order, which is the order face search sees.
	clear(pop.faces)
	for _, ev := range seeded {
		if ev.Result == duplicate.VerdictPass {
			pop.faces[ev.Face] = append(pop.faces[ev.Face], ev.UserID)
		}
	}
	sigs, err := sim.Ctl.AddSessions(ctx, sessions)
	if err != nil {
		return err
	}
	for i, ev := range seeded {
		ev.Sig = sigs[i]
	}
	taken := make(map[string]bool, len(seeded))
	for _, ev := range seeded {
		taken[ev.Sig] = true
	}
	for _, ev := range pop.events {
		if ev.Kind == kindUnknownSig || ev.Kind == kindUnknownThin {
			for n := 0; (taken[ev.Sig] || ev.Sig == "") && n < 100; n++ {
				ev.Sig = fmt.Sprintf("%016x", rng.Uint64())
			}
			taken[ev.Sig] = true
		}
	}
	now := time.Now().UTC().Truncate(time.Second)
	for i, ev := range pop.events {
		if ev.Value == nil {
			e := duplicate.Event{SignatureID: ev.Sig, Type: duplicate.EventTypeCompleted}
			switch ev.Kind {
			case kindSubmit:
				e.Type = duplicate.EventTypeSubmitCompleted
			case kindOtherType:
				e.Type = "REVIEW_UPDATED"
			}
			if ev.Kind != kindPassThin && ev.Kind != kindNotPassThin && ev.Kind != kindUnknownThin {
				occurred := now
				e.UserID, e.OccurredAt, e.EventID = ev.UserID, &occurred, fmt.Sprintf("soak-%06d", i)
			}
			ev.Value, err = json.Marshal(e)
			if err != nil {
				return err
			}
			ev.Key = ev.Sig
			ev.Expect = pop.expectationOf(ev)
		}
		if pop.byKey[ev.Key] != nil {
			return fmt.Errorf("two events with key %s", ev.Key)
		}
		pop.byKey[ev.Key] = ev
		if ev.Sig != "" {
			pop.bySig[ev.Sig] = ev
		}
	}
	return nil
}

// earlierOf returns the users of userID's face who completed PASS before userID: what face search
// returns for userID's verification.
func (pop *population) earlierOf(userID string) []string {
	users := pop.faces[pop.faceOf[userID]]
	if i := slices.Index(users, userID); i >= 0 {
		return users[:i]
	}
	return nil
}

func (pop *population) expectationOf(ev *event) expectation {
	switch ev.Kind {
	case kindPass, kindPassThin:
		if len(pop.earlierOf(ev.UserID)) > 0 {
			return expectation{Outcome: string(duplicate.OutcomeDuplicatesFound)}
		}
		return expectation{Outcome: string(duplicate.OutcomeNoDuplicates)}
	case kindNotPassThin:
		if ev.Result == "FAIL" {
			return expectation{Outcome: string(duplicate.OutcomeNotPassed)}
		}
		return expectation{Outcome: string(duplicate.OutcomeIncomplete)}
	case kindSubmit, kindOtherType:
		return expectation{Outcome: string(duplicate.OutcomeSkipped)}
	case kindNotPassUser, kindUnknownSig, kindUnknownThin:
		return expectation{Outcome: string(duplicate.OutcomeFailed), DLQ: "vendor_rejected"}
	}
	return expectation{}
}

func (ev *event) message() kafka.Message {
	return kafka.Message{Key: []byte(ev.Key), Value: ev.Value}
}

// seededCount counts the verifications registered in the simulator.
func (pop *population) seededCount() int {
	n := 0
	for _, ev := range pop.events {
		if ev.seeded() {
			n++
		}
	}
	return n
}

// kindCounts counts the distinct events of each kind.
func (pop *population) kindCounts() map[string]int {
	out := map[string]int{}
	for _, ev := range pop.events {
		out[string(ev.Kind)]++
	}
	return out
}

// ---------------------------------------------------------------- advance-sim

// simulator is the running advance-sim, with the bounds the soak puts on its control calls.
type simulator struct {
	*launch.Simulator
}

func (s *simulator) setFaults(ctx context.Context, f advancesim.FaultsPatch) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return s.Ctl.PatchFaults(ctx, f)
}

func (s *simulator) stats(ctx context.Context) (advancesim.Stats, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return s.Ctl.Stats(ctx)
}

func ptr[T any](v T) *T { return &v }
