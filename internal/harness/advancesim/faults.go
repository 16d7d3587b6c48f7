package advancesim

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"time"

	"golang.org/x/time/rate"
)

// Faults are the failures injected into face-search and get-result calls. The token endpoint is
// left healthy: a billed API failing is what the consumer must survive, and a broken token call
// is tested against the client with a stub server instead.
type Faults struct {
	// LatencyMs delays every call, honouring the caller's cancellation.
	LatencyMs int64 `json:"latencyMs"`
	// ErrorRate is the fraction of calls answered with code ERROR.
	ErrorRate float64 `json:"errorRate"`
	// QPS limits calls per second (0 = unlimited); above it calls get SERVICE_BUSY.
	QPS float64 `json:"qps"`
	// ForceCode, when set, answers every call with this code (INSUFFICIENT_BALANCE, ...).
	ForceCode string `json:"forceCode"`
	// HTTP5xxRate is the fraction of calls answered HTTP 503 with a non-envelope body, as a
	// gateway in front of the vendor would.
	HTTP5xxRate float64 `json:"http5xxRate"`
	// BusyAsHTTP429 sends SERVICE_BUSY with HTTP status 429 instead of 200.
	BusyAsHTTP429 bool `json:"busyAsHTTP429"`
}

// codePattern keeps a forced code to the vendor's shape (and out of the way of JSON escaping).
var codePattern = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,63}$`)

// validate reports the first out-of-range field.
func (f Faults) validate() error {
	switch {
	case f.LatencyMs < 0:
		return errors.New("latencyMs must not be negative")
	case !(f.ErrorRate >= 0 && f.ErrorRate <= 1):
		return errors.New("errorRate must be between 0 and 1")
	case !(f.HTTP5xxRate >= 0 && f.HTTP5xxRate <= 1):
		return errors.New("http5xxRate must be between 0 and 1")
	case !(f.QPS >= 0) || math.IsInf(f.QPS, 0):
		return errors.New("qps must be 0 (unlimited) or a positive number")
	case f.ForceCode == "SUCCESS":
		return errors.New("forceCode SUCCESS is not a fault: send an empty forceCode to clear it")
	case f.ForceCode != "" && !codePattern.MatchString(f.ForceCode):
		return fmt.Errorf("forceCode %q must look like a vendor code (A-Z, 0-9, _)", f.ForceCode)
	}
	return nil
}

// faultState is an immutable snapshot of the faults, swapped atomically so the hot path reads
// it without a lock.
type faultState struct {
	Faults
	latency time.Duration
	limiter *rate.Limiter // nil when QPS is 0
}

// newFaultState builds a snapshot, keeping the old limiter (and its budget) when QPS is unchanged.
func newFaultState(f Faults, latency time.Duration, old *faultState) *faultState {
	st := &faultState{Faults: f, latency: latency}
	switch {
	case f.QPS == 0:
	case old != nil && old.limiter != nil && old.QPS == f.QPS:
		st.limiter = old.limiter
	default:
		// A burst of one second's worth, so a steady caller just under the limit is not refused.
		st.limiter = rate.NewLimiter(rate.Limit(f.QPS), max(1, int(math.Ceil(f.QPS))))
	}
	return st
}

// Faults returns the faults in force.
func (s *Sim) Faults() Faults { return s.faults.Load().Faults }

// SetFaults replaces the faults in force, or returns why they are invalid.
func (s *Sim) SetFaults(f Faults) error {
	if err := f.validate(); err != nil {
		return err
	}
	s.faultsMu.Lock()
	defer s.faultsMu.Unlock()
	s.faults.Store(newFaultState(f, time.Duration(f.LatencyMs)*time.Millisecond, s.faults.Load()))
	return nil
}

// FaultsPatch is the body of PUT /sim/faults: only the fields given (not nil) are replaced.
type FaultsPatch struct {
	LatencyMs     *int64   `json:"latencyMs"`
	ErrorRate     *float64 `json:"errorRate"`
	QPS           *float64 `json:"qps"`
	ForceCode     *string  `json:"forceCode"`
	HTTP5xxRate   *float64 `json:"http5xxRate"`
	BusyAsHTTP429 *bool    `json:"busyAsHTTP429"`
}

// patchFaults applies a patch to the faults in force, atomically with respect to other patches.
func (s *Sim) patchFaults(p FaultsPatch) (Faults, error) {
	s.faultsMu.Lock()
	defer s.faultsMu.Unlock()
	old := s.faults.Load()
	f, latency := old.Faults, old.latency
	if p.LatencyMs != nil {
		f.LatencyMs = *p.LatencyMs
		latency = time.Duration(f.LatencyMs) * time.Millisecond
	}
	if p.ErrorRate != nil {
		f.ErrorRate = *p.ErrorRate
	}
	if p.QPS != nil {
		f.QPS = *p.QPS
	}
	if p.ForceCode != nil {
		f.ForceCode = *p.ForceCode
	}
	if p.HTTP5xxRate != nil {
		f.HTTP5xxRate = *p.HTTP5xxRate
	}
	if p.BusyAsHTTP429 != nil {
		f.BusyAsHTTP429 = *p.BusyAsHTTP429
	}
	if err := f.validate(); err != nil {
		return old.Faults, err
	}
	s.faults.Store(newFaultState(f, latency, old))
	return f, nil
}

// draw reports whether a random event of probability p happens. The generator is only touched
// when p is strictly between 0 and 1, so a fixed seed gives the same sequence for the same calls.
func (s *Sim) draw(p float64) bool {
	if p <= 0 {
		return false
	}
	if p >= 1 {
		return true
	}
	s.rngMu.Lock()
	x := s.rng.Float64()
	s.rngMu.Unlock()
	return x < p
}
