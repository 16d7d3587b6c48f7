// Package advancesim simulates the ADVANCE.AI identity APIs that Doppel calls (token
// authentication, get-result, face search), so that the client, the service and its benchmark
// can run without the paid vendor. Its answers are byte-compatible with the vendor's published
// examples; a control surface under /sim seeds verification sessions, injects faults and counts
// calls, so tests can prove, for example, that no face search was billed twice.
package advancesim

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Verification outcomes a session can have.
const (
	ResultPass       = "PASS"
	ResultFail       = "FAIL"
	ResultIncomplete = "INCOMPLETE"
)

// Config configures a Sim.
type Config struct {
	// AccessKey and SecretKey are the one account the simulator knows.
	AccessKey string
	SecretKey string
	// Latency is added to every face-search and get-result call.
	Latency time.Duration
	// ErrorRate is the fraction of face-search and get-result calls answered with code ERROR.
	ErrorRate float64
	// QPS limits face-search and get-result calls per second (0 = unlimited); above it the
	// simulator answers SERVICE_BUSY with a Retry-After header.
	QPS float64
	// BusyAsHTTP429 sends SERVICE_BUSY with HTTP status 429 instead of 200.
	BusyAsHTTP429 bool
	// NewSpelling answers face search with similarFaceUserIds instead of the seed page's
	// simliarFaceUserIds.
	NewSpelling bool
	// Seed seeds the random draws of ErrorRate and the 5xx fault, for deterministic tests.
	Seed int64
	// Now is optional, for tests of token expiry; it defaults to time.Now.
	Now func() time.Time
}

// Validate reports the first problem with the configuration, saying what to set.
func (c Config) Validate() error {
	switch {
	case c.AccessKey == "":
		return errors.New("advancesim config: AccessKey is empty: set the access key clients will use")
	case c.SecretKey == "":
		return errors.New("advancesim config: SecretKey is empty: set the secret key clients will use")
	}
	return Faults{
		LatencyMs:     c.Latency.Milliseconds(),
		ErrorRate:     c.ErrorRate,
		QPS:           c.QPS,
		BusyAsHTTP429: c.BusyAsHTTP429,
	}.validate()
}

// Sim is the simulated vendor. It is safe for concurrent use.
type Sim struct {
	accessKey   string
	secretKey   string
	newSpelling bool
	now         func() time.Time
	handler     http.Handler

	// txIDs and sessionIDs number their values; mixing makes them look random yet unique.
	txIDs      idSource
	sessionIDs idSource

	mu       sync.RWMutex
	sessions map[string]*session   // by signatureId
	faces    map[string]*faceGroup // completed PASS sessions by face
	// completions numbers completions in the order they happen: the face database's clock.
	completions uint64

	tokMu  sync.RWMutex
	tokens map[string]int64 // token -> expiry, epoch ms

	faultsMu sync.Mutex // serialises fault updates; readers use the atomic pointer
	faults   atomic.Pointer[faultState]

	rngMu sync.Mutex
	rng   *rand.Rand

	calls   [endpointCount]atomic.Int64
	answers sync.Map // code -> *atomic.Int64

	bufs sync.Pool // *[]byte for request and response bodies
}

// session is one seeded verification. result and completed change when it completes; both are
// guarded by Sim.mu.
type session struct {
	signatureID string
	userID      string
	face        string
	// person names the human whose documents the session shows ("": the account's own).
	person string
	result string
	// completed is the session's place in the order of completions; 0 while it is INCOMPLETE.
	completed uint64
	billed    atomic.Int64 // face searches answered SUCCESS: what the vendor would bill
	enrolled  atomic.Int64 // face-search-enroll calls answered SUCCESS
	cleared   bool         // the data-clearing call removed its face (guarded by Sim.mu)
}

// faceGroup holds the distinct users of the completed PASS sessions sharing a face, in the order
// of each user's first such completion. Because that order is the completion order, the users a
// face search may see (those who completed before the searched session) are a prefix: a search is
// a binary search and a copy, not a scan of all sessions.
type faceGroup struct {
	users []string
	first []uint64 // first[i]: when users[i] first completed PASS with this face
	known map[string]struct{}
}

// add records a PASS completion of user at moment seq (later than every earlier one).
func (g *faceGroup) add(user string, seq uint64) {
	if _, ok := g.known[user]; ok {
		return
	}
	g.known[user] = struct{}{}
	g.users = append(g.users, user)
	g.first = append(g.first, seq)
}

// remove takes user out of the group: face searches no longer return them.
func (g *faceGroup) remove(user string) {
	if _, ok := g.known[user]; !ok {
		return
	}
	delete(g.known, user)
	i := slices.Index(g.users, user)
	g.users = slices.Delete(g.users, i, i+1)
	g.first = slices.Delete(g.first, i, i+1)
}

// before returns the users who completed PASS with this face before moment seq. The searched
// session's own user is among them only through an earlier session of theirs (the same person
// verifying again), which is how the vendor answers too.
func (g *faceGroup) before(seq uint64) []string {
	n, _ := slices.BinarySearch(g.first, seq)
	return g.users[:n]
}

// New returns a simulator. Call Config.Validate first to reject bad settings; New itself
// accepts anything and treats out-of-range faults as off.
func New(cfg Config) *Sim {
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	base := uint64(time.Now().UnixNano())
	s := &Sim{
		accessKey:   cfg.AccessKey,
		secretKey:   cfg.SecretKey,
		newSpelling: cfg.NewSpelling,
		now:         now,
		txIDs:       idSource{base: base},
		sessionIDs:  idSource{base: base ^ 0x5bd1e9955bd1e995},
		sessions:    make(map[string]*session),
		faces:       make(map[string]*faceGroup),
		tokens:      make(map[string]int64),
		rng:         rand.New(rand.NewPCG(uint64(cfg.Seed), 0x9e3779b97f4a7c15)),
		bufs:        sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }},
	}
	f := Faults{
		LatencyMs:     cfg.Latency.Milliseconds(),
		ErrorRate:     cfg.ErrorRate,
		QPS:           cfg.QPS,
		BusyAsHTTP429: cfg.BusyAsHTTP429,
	}
	if f.validate() != nil {
		f = Faults{}
	}
	s.faults.Store(newFaultState(f, cfg.Latency, nil))
	s.handler = s.routes()
	return s
}

// Handler returns the simulator's HTTP handler: the vendor API, the /sim control surface and
// /healthz.
func (s *Sim) Handler() http.Handler { return s.handler }

// Session is a verification to seed, as sent to POST /sim/sessions.
//
// The simulated face database is time-aware, as the vendor's is: a session is searchable only
// once it has completed, and a face search returns only sessions that completed PASS before the
// searched one did. A session registered PASS or FAIL completes at registration (a batch in its
// order); one registered INCOMPLETE completes later, through Complete.
type Session struct {
	// UserID is the customer's id of the user (inputParameters.userId).
	UserID string `json:"userId"`
	// Face identifies the face: sessions with equal Face are similar faces. A FAIL session needs
	// one to be enrolled (face-search-enroll).
	Face string `json:"face"`
	// OverallResult is PASS, FAIL or INCOMPLETE (not completed yet).
	OverallResult string `json:"overallResult"`
	// SignatureID is optional; a fresh 16-hex-character id is made when empty.
	SignatureID string `json:"signatureId,omitempty"`
	// Person names the human behind the session, for the document get-result reads: sessions with
	// one Person show one name, birth date and document number (the same person verifying again,
	// under this account or another). Empty: the account's own identity, so two accounts show two
	// different documents unless the seed says they are one person.
	Person string `json:"person,omitempty"`
}

// validate checks one session. Face is needed only where face search can see it (PASS).
func (x Session) validate() error {
	switch {
	case x.UserID == "":
		return errors.New("userId is empty")
	case x.OverallResult != ResultPass && x.OverallResult != ResultFail && x.OverallResult != ResultIncomplete:
		return fmt.Errorf("overallResult %q is not PASS, FAIL or INCOMPLETE", x.OverallResult)
	case x.OverallResult == ResultPass && x.Face == "":
		return errors.New("face is empty on a PASS session")
	case len(x.SignatureID) > 64:
		return errors.New("signatureId is longer than 64 characters")
	}
	return nil
}

// ErrDuplicateSignature is returned when a seeded signatureId is already taken.
var ErrDuplicateSignature = errors.New("signatureId already exists")

// AddSession seeds one verification and returns its signatureId.
func (s *Sim) AddSession(x Session) (string, error) {
	ids, err := s.AddSessions([]Session{x})
	if err != nil {
		return "", err
	}
	return ids[0], nil
}

// AddSessions seeds verifications in order and returns their signatureIds in the same order.
// Either all are added or, on the first invalid one, none.
func (s *Sim) AddSessions(xs []Session) ([]string, error) {
	for i, x := range xs {
		if err := x.validate(); err != nil {
			return nil, fmt.Errorf("session %d: %w", i, err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	given := make(map[string]struct{})
	for i, x := range xs {
		if x.SignatureID == "" {
			continue
		}
		if _, taken := s.sessions[x.SignatureID]; taken {
			return nil, fmt.Errorf("session %d: %w: %s", i, ErrDuplicateSignature, x.SignatureID)
		}
		if _, taken := given[x.SignatureID]; taken {
			return nil, fmt.Errorf("session %d: %w: %s", i, ErrDuplicateSignature, x.SignatureID)
		}
		given[x.SignatureID] = struct{}{}
	}
	ids := make([]string, len(xs))
	for i, x := range xs {
		sig := x.SignatureID
		for sig == "" {
			sig = s.sessionIDs.next()
			if _, taken := s.sessions[sig]; taken {
				sig = ""
			} else if _, taken := given[sig]; taken {
				sig = ""
			}
		}
		sess := &session{signatureID: sig, userID: x.UserID, face: x.Face, person: x.Person, result: ResultIncomplete}
		s.sessions[sig] = sess
		if x.OverallResult != ResultIncomplete {
			s.completeLocked(sess, x.OverallResult)
		}
		ids[i] = sig
	}
	return ids, nil
}

// Errors of Complete.
var (
	ErrUnknownSignature = errors.New("no session has this signatureId")
	ErrAlreadyCompleted = errors.New("session already completed")
)

// Complete finishes an INCOMPLETE session with the verdict PASS or FAIL. From now on get-result
// answers the verdict and, for PASS, the session is in the face database: face searches of
// sessions that complete later can find it, and its own face search sees the sessions completed
// before this moment.
func (s *Sim) Complete(signatureID, overallResult string) error {
	if overallResult != ResultPass && overallResult != ResultFail {
		return fmt.Errorf("overallResult %q is not PASS or FAIL", overallResult)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.sessions[signatureID]
	switch {
	case sess == nil:
		return fmt.Errorf("%w: %s", ErrUnknownSignature, signatureID)
	case sess.result != ResultIncomplete:
		return fmt.Errorf("%w: %s is %s", ErrAlreadyCompleted, signatureID, sess.result)
	case overallResult == ResultPass && sess.face == "":
		return fmt.Errorf("session %s has no face: register it with one to complete it PASS", signatureID)
	}
	s.completeLocked(sess, overallResult)
	return nil
}

// completeLocked gives sess its verdict and its moment of completion; s.mu is held.
func (s *Sim) completeLocked(sess *session, result string) {
	s.completions++
	sess.result = result
	sess.completed = s.completions
	if result != ResultPass {
		return
	}
	s.faceGroupLocked(sess.face).add(sess.userID, sess.completed)
}

// faceGroupLocked returns the group of face, made on first use; s.mu is held.
func (s *Sim) faceGroupLocked(face string) *faceGroup {
	g := s.faces[face]
	if g == nil {
		g = &faceGroup{known: make(map[string]struct{})}
		s.faces[face] = g
	}
	return g
}

// idSource makes unique 16-hex-character ids: a counter through a bijective mixer, so no two
// calls of one source ever collide and the ids do not look sequential.
type idSource struct {
	base uint64
	n    atomic.Uint64
}

// next returns a fresh id.
func (g *idSource) next() string { return string(g.appendNext(nil)) }

// appendNext appends a fresh id to b, for answers built without intermediate strings.
func (g *idSource) appendNext(b []byte) []byte {
	var raw [8]byte
	binary.BigEndian.PutUint64(raw[:], mix64(g.base+g.n.Add(1)))
	return hex.AppendEncode(b, raw[:])
}

// mix64 is the splitmix64 finaliser, a bijection on uint64.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
