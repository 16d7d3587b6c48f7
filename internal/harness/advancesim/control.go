package advancesim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
)

// maxSeedBytes bounds a POST /sim/sessions/batch body: room for a few hundred thousand sessions.
const maxSeedBytes = 256 << 20

// Stats counts what the simulator was asked and what it answered.
type Stats struct {
	// Calls counts requests per endpoint: generate-token, face-search, get-result.
	Calls map[string]int64 `json:"calls"`
	// FaceSearchBySignature counts face searches answered SUCCESS per signatureId, which is
	// what the vendor bills: a value above 1 means a verification was paid for twice.
	FaceSearchBySignature map[string]int64 `json:"faceSearchBySignature"`
	// Answers counts answers by code across endpoints; a 503 fault counts as "HTTP_503".
	Answers map[string]int64 `json:"answers"`
	// EnrollBySignature counts face-search-enroll calls answered SUCCESS per signatureId.
	EnrollBySignature map[string]int64 `json:"enrollBySignature"`
}

// count adds one answer with this code.
func (s *Sim) count(code string) {
	if c, ok := s.answers.Load(code); ok {
		c.(*atomic.Int64).Add(1)
		return
	}
	c, _ := s.answers.LoadOrStore(code, new(atomic.Int64))
	c.(*atomic.Int64).Add(1)
}

// Stats returns the counters since the start or the last ResetStats.
func (s *Sim) Stats() Stats {
	st := Stats{
		Calls:                 make(map[string]int64, endpointCount),
		FaceSearchBySignature: make(map[string]int64),
		Answers:               make(map[string]int64),
		EnrollBySignature:     make(map[string]int64),
	}
	for i, name := range endpointNames {
		st.Calls[name] = s.calls[i].Load()
	}
	s.answers.Range(func(k, v any) bool {
		if n := v.(*atomic.Int64).Load(); n > 0 {
			st.Answers[k.(string)] = n
		}
		return true
	})
	s.mu.RLock()
	for sig, sess := range s.sessions {
		if n := sess.billed.Load(); n > 0 {
			st.FaceSearchBySignature[sig] = n
		}
		if n := sess.enrolled.Load(); n > 0 {
			st.EnrollBySignature[sig] = n
		}
	}
	s.mu.RUnlock()
	return st
}

// ResetStats sets every counter back to zero.
func (s *Sim) ResetStats() {
	for i := range s.calls {
		s.calls[i].Store(0)
	}
	s.answers.Range(func(_, v any) bool {
		v.(*atomic.Int64).Store(0)
		return true
	})
	s.mu.RLock()
	for _, sess := range s.sessions {
		sess.billed.Store(0)
		sess.enrolled.Store(0)
	}
	s.mu.RUnlock()
}

// LoadSessions seeds the sessions of a JSON array (the body of POST /sim/sessions/batch) and
// returns how many were added. Either all are added or none.
func (s *Sim) LoadSessions(r io.Reader) (int, error) {
	var xs []Session
	if err := json.NewDecoder(r).Decode(&xs); err != nil {
		return 0, fmt.Errorf("decode sessions: %w", err)
	}
	ids, err := s.AddSessions(xs)
	if err != nil {
		return 0, err
	}
	return len(ids), nil
}

// handleAddSession implements POST /sim/sessions.
func (s *Sim) handleAddSession(w http.ResponseWriter, r *http.Request) {
	var x Session
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBytes)).Decode(&x); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("decode session: %w", err))
		return
	}
	id, err := s.AddSession(x)
	if err != nil {
		writeError(w, seedErrorStatus(err), err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"signatureId": id})
}

// handleAddSessions implements POST /sim/sessions/batch.
func (s *Sim) handleAddSessions(w http.ResponseWriter, r *http.Request) {
	var xs []Session
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxSeedBytes)).Decode(&xs); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("decode sessions: %w", err))
		return
	}
	ids, err := s.AddSessions(xs)
	if err != nil {
		writeError(w, seedErrorStatus(err), err)
		return
	}
	writeJSON(w, http.StatusOK, map[string][]string{"signatureIds": ids})
}

// Completion is the body of POST /sim/sessions/{signatureId}/complete and its answer.
type Completion struct {
	SignatureID string `json:"signatureId,omitempty"`
	// OverallResult is PASS or FAIL.
	OverallResult string `json:"overallResult"`
}

// handleComplete implements POST /sim/sessions/{signatureId}/complete: 404 for an unknown
// signatureId, 409 for a session that has already completed, 400 for a bad verdict.
func (s *Sim) handleComplete(w http.ResponseWriter, r *http.Request) {
	var c Completion
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("decode completion: %w", err))
		return
	}
	sig := r.PathValue("signatureId")
	err := s.Complete(sig, c.OverallResult)
	switch {
	case errors.Is(err, ErrUnknownSignature):
		writeError(w, http.StatusNotFound, err)
	case errors.Is(err, ErrAlreadyCompleted):
		writeError(w, http.StatusConflict, err)
	case err != nil:
		writeError(w, http.StatusBadRequest, err)
	default:
		writeJSON(w, http.StatusOK, Completion{SignatureID: sig, OverallResult: c.OverallResult})
	}
}

// seedErrorStatus maps a seeding error to 409 for a taken signatureId, else 400.
func seedErrorStatus(err error) int {
	if errors.Is(err, ErrDuplicateSignature) {
		return http.StatusConflict
	}
	return http.StatusBadRequest
}

// handleStats implements GET /sim/stats.
func (s *Sim) handleStats(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Stats())
}

// handleResetStats implements POST /sim/reset-stats.
func (s *Sim) handleResetStats(w http.ResponseWriter, _ *http.Request) {
	s.ResetStats()
	w.WriteHeader(http.StatusNoContent)
}

// handleGetFaults implements GET /sim/faults.
func (s *Sim) handleGetFaults(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Faults())
}

// handlePutFaults implements PUT /sim/faults: the fields given replace those in force.
func (s *Sim) handlePutFaults(w http.ResponseWriter, r *http.Request) {
	var p FaultsPatch
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBytes))
	dec.DisallowUnknownFields() // a misspelt fault must not silently do nothing
	if err := dec.Decode(&p); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("decode faults: %w", err))
		return
	}
	f, err := s.patchFaults(p)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	writeJSON(w, http.StatusOK, f)
}

// handleRevokeTokens implements POST /sim/tokens/revoke.
func (s *Sim) handleRevokeTokens(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]int{"revoked": s.RevokeTokens()})
}

// handleHealthz implements GET /healthz.
func (s *Sim) handleHealthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// writeJSON writes v as a JSON answer of the control surface.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header()["Content-Type"] = headerJSON
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError writes {"error": "..."} with the status.
func writeError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error()})
}
