// Package facesearch adapts the vendor client (package advance) to the detector's Vendor interface.
// It maps the vendor's answers to domain types and makes every worker share one client-side rate
// limit, one SERVICE_BUSY pause and one circuit breaker: a rate limit slows the whole consumer, and
// an account-level failure or a run of server errors stops every call until a probe succeeds.
package facesearch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
	"golang.org/x/time/rate"

	"github.com/doppelhq/doppel/internal/advance"
	"github.com/doppelhq/doppel/internal/duplicate"
)

// Client is the part of *advance.Client the adapter calls.
type Client interface {
	FaceSearch(ctx context.Context, signatureID string) (*advance.FaceSearchResult, error)
	GetResult(ctx context.Context, signatureID string) (*advance.Result, error)
	Enroll(ctx context.Context, signatureID string) (*advance.EnrollResult, error)
	GetEvidence(ctx context.Context, signatureID string, images advance.ImageType) (*advance.Evidence, error)
}

// defaultBusyPause is how long every worker waits after SERVICE_BUSY without a Retry-After.
const defaultBusyPause = time.Second

// Config configures a Vendor.
type Config struct {
	// QPS is the most calls per second across all callers; 0 means no client-side limit.
	QPS float64
	// BreakerFailures is how many transient failures in a row open the circuit (account-level
	// failures open it at once). 0 takes 10.
	BreakerFailures int
	// BreakerOpenFor is how long the circuit stays open before one probe call is let through.
	// 0 takes 30 s.
	BreakerOpenFor time.Duration
	// OnStateChange is told when the circuit changes state ("closed", "open", "half_open"); may be nil.
	OnStateChange func(state string)
	// OnPause is told when SERVICE_BUSY pauses every call, and for how long; may be nil.
	OnPause func(d time.Duration)
	// Logger gets one line per circuit change: open (with the failure that opened it), half-open,
	// closed (with how long it was open). Nil takes slog.Default(), which `doppel serve` sets.
	Logger *slog.Logger
}

// Vendor implements duplicate.Vendor on top of the vendor client.
type Vendor struct {
	// vendorState is shared with every view made by WithRate: one breaker and one SERVICE_BUSY
	// pause per vendor account, whoever calls.
	*vendorState
	// limiters are waited on in order: the account's rate, and for a view its own share before it.
	limiters []*rate.Limiter
}

type vendorState struct {
	client  Client
	breaker *gobreaker.CircuitBreaker[any]
	onPause func(time.Duration)

	// accountFailure is set by the breaker's success check so that ReadyToTrip, which only sees
	// counts, can open the circuit on the first account-level failure.
	accountFailure atomic.Bool

	mu          sync.Mutex
	pausedUntil time.Time
	lastFailure string
	openedAt    time.Time
}

var _ duplicate.Vendor = (*Vendor)(nil)

// New returns a Vendor calling client under cfg's limits.
func New(client Client, cfg Config) *Vendor {
	if cfg.BreakerFailures <= 0 {
		cfg.BreakerFailures = 10
	}
	if cfg.BreakerOpenFor <= 0 {
		cfg.BreakerOpenFor = 30 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "vendor")
	v := &Vendor{vendorState: &vendorState{client: client, onPause: cfg.OnPause}, limiters: []*rate.Limiter{newLimiter(cfg.QPS)}}
	v.breaker = gobreaker.NewCircuitBreaker[any](gobreaker.Settings{
		Name:        "vendor",
		MaxRequests: 1,
		Timeout:     cfg.BreakerOpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return v.accountFailure.Load() || c.ConsecutiveFailures >= uint32(cfg.BreakerFailures)
		},
		IsSuccessful: v.healthy,
		OnStateChange: func(_ string, from, to gobreaker.State) {
			v.mu.Lock()
			openedAt, last := v.openedAt, v.lastFailure
			if to == gobreaker.StateOpen {
				v.openedAt = time.Now()
			}
			v.mu.Unlock()
			logStateChange(log, from, to, last, openedAt, cfg.BreakerOpenFor)
			if cfg.OnStateChange != nil {
				cfg.OnStateChange(stateName(to))
			}
		},
	})
	return v
}

// newLimiter returns a limiter of qps calls per second (0: none).
func newLimiter(qps float64) *rate.Limiter {
	if qps <= 0 {
		return rate.NewLimiter(rate.Inf, 1)
	}
	// A small burst keeps the rate steady at the limit instead of spiking above it each second.
	return rate.NewLimiter(rate.Limit(qps), max(1, int(math.Ceil(qps/20))))
}

// WithShare returns a Vendor that shares this one's client, circuit breaker, SERVICE_BUSY pause and
// rate limit, and takes at most qps calls per second of that rate (0: no cap of its own). Polling
// uses one: it never takes more than its share, the two together never exceed the account's rate,
// and when polling is idle the main path has the whole rate (a share reserved for polling left 10 %
// of the vendor's limit unused: the benchmark's (b) reached 90 % of it), while a vendor that is
// down or busy stops both.
func (v *Vendor) WithShare(qps float64) *Vendor {
	return &Vendor{vendorState: v.vendorState, limiters: append([]*rate.Limiter{newLimiter(qps)}, v.limiters...)}
}

// healthy tells the breaker whether a call shows a working vendor. A permanent answer about one
// signatureId, a rate limit (handled by the pause) or our own cancellation says nothing bad about
// the vendor.
func (v *Vendor) healthy(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return true
	}
	var ae *advance.Error
	if errors.As(err, &ae) && (ae.Permanent() || ae.RateLimited()) {
		return true
	}
	v.accountFailure.Store(errors.As(err, &ae) && ae.AccountLevel())
	v.mu.Lock()
	v.lastFailure = err.Error()
	v.mu.Unlock()
	return false
}

// logStateChange logs one circuit change; gobreaker reports each transition once, so repeated
// failures while open add no lines.
func logStateChange(log *slog.Logger, from, to gobreaker.State, lastFailure string, openedAt time.Time, openFor time.Duration) {
	switch to {
	case gobreaker.StateOpen:
		if from == gobreaker.StateHalfOpen {
			log.Warn("vendor circuit open again: the probe call failed", "reason", lastFailure, "retry_in", openFor.String())
			return
		}
		log.Warn("vendor circuit open: calls stopped, consumption waits", "reason", lastFailure, "retry_in", openFor.String())
	case gobreaker.StateHalfOpen:
		log.Info("vendor circuit half-open: letting one probe call through")
	case gobreaker.StateClosed:
		log.Info("vendor circuit closed: calls resumed", "open_for", time.Since(openedAt).Round(time.Millisecond).String())
	}
}

func stateName(s gobreaker.State) string {
	switch s {
	case gobreaker.StateOpen:
		return "open"
	case gobreaker.StateHalfOpen:
		return "half_open"
	default:
		return "closed"
	}
}

// UnavailableError is returned without calling the vendor while the circuit is open. It is an
// account failure, so the pipeline waits (committing and dead-lettering nothing) instead of retrying.
type UnavailableError struct {
	LastFailure string
}

func (e *UnavailableError) Error() string {
	return "vendor circuit open, not calling: last failure: " + e.LastFailure
}

// FailureKind is FailureAccount: nothing can be done per event until the vendor is usable again.
func (e *UnavailableError) FailureKind() duplicate.FailureKind { return duplicate.FailureAccount }

// FailureReason names the open circuit, apart from the account failures that opened it.
func (e *UnavailableError) FailureReason() string { return duplicate.ReasonVendorCircuitOpen }

// classify gives a vendor error the pipeline's failure kind and reason: the one place the vendor
// client's classification (advance.Kind) is translated. Anything else (our own context ending) is
// left unclassified, so transient.
func classify(err error) error {
	var ae *advance.Error
	if !errors.As(err, &ae) {
		return err
	}
	switch ae.Kind {
	case advance.KindPermanent:
		return duplicate.Fail(duplicate.FailurePermanent, duplicate.ReasonPermanentFailure, err)
	case advance.KindAccount:
		return duplicate.Fail(duplicate.FailureAccount, duplicate.ReasonVendorAccountUnusable, err)
	case advance.KindRateLimited:
		return duplicate.Fail(duplicate.FailureRateLimited, duplicate.ReasonVendorRateLimited, err)
	default:
		return duplicate.Fail(duplicate.FailureTransient, duplicate.ReasonTransientFailure, err)
	}
}

// call runs fn through the rate limit, the SERVICE_BUSY pause and the circuit breaker.
func (v *Vendor) call(ctx context.Context, fn func() (any, error)) (any, error) {
	if err := v.wait(ctx); err != nil {
		return nil, err
	}
	res, err := v.breaker.Execute(fn)
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		v.mu.Lock()
		last := v.lastFailure
		v.mu.Unlock()
		return nil, &UnavailableError{LastFailure: last}
	}
	if err != nil {
		v.observe(err)
		return nil, classify(err)
	}
	return res, nil
}

// FaceSearch calls the vendor's face search. Each call is billed.
func (v *Vendor) FaceSearch(ctx context.Context, signatureID string) (duplicate.SearchResult, error) {
	res, err := v.call(ctx, func() (any, error) { return v.client.FaceSearch(ctx, signatureID) })
	if err != nil {
		return duplicate.SearchResult{}, err
	}
	r := res.(*advance.FaceSearchResult)
	return duplicate.SearchResult{SimilarUserIDs: r.SimilarFaceUserIDs, TransactionID: r.TransactionID}, nil
}

// Verification calls get-result for the user's own id and the verdict.
func (v *Vendor) Verification(ctx context.Context, signatureID string) (duplicate.Verification, error) {
	res, err := v.call(ctx, func() (any, error) { return v.client.GetResult(ctx, signatureID) })
	if err != nil {
		return duplicate.Verification{}, err
	}
	r := res.(*advance.Result)
	return duplicate.Verification{UserID: r.UserID, OverallResult: r.OverallResult, TransactionID: r.TransactionID}, nil
}

// Evidence calls get-result for the face and document of a verification, images in base64, for
// the review console. It takes its turn in the account's rate limit and SERVICE_BUSY pause and
// counts towards its circuit breaker like every other call: an analyst looking at a ring slows
// the pipeline by those calls, never the vendor's limit.
func (v *Vendor) Evidence(ctx context.Context, signatureID string) (*advance.Evidence, error) {
	res, err := v.call(ctx, func() (any, error) { return v.client.GetEvidence(ctx, signatureID, advance.ImageBase64) })
	if err != nil {
		return nil, err
	}
	return res.(*advance.Evidence), nil
}

// Enroll adds a FAIL verification's face to the vendor's searchable set (face-search-enroll).
func (v *Vendor) Enroll(ctx context.Context, signatureID string) (transactionID string, err error) {
	res, err := v.call(ctx, func() (any, error) { return v.client.Enroll(ctx, signatureID) })
	if err != nil {
		return "", err
	}
	return res.(*advance.EnrollResult).TransactionID, nil
}

// Ready returns nil when calls can go out, or why they cannot: an open circuit or a SERVICE_BUSY
// pause. It is the vendor's part of /readyz.
func (v *Vendor) Ready() error {
	v.mu.Lock()
	last, openedAt := v.lastFailure, v.openedAt
	v.mu.Unlock()
	switch v.breaker.State() {
	case gobreaker.StateOpen:
		return fmt.Errorf("vendor circuit open since %s (consumption paused, probing): last failure: %s",
			openedAt.UTC().Format(time.RFC3339), last)
	case gobreaker.StateHalfOpen:
		return fmt.Errorf("vendor circuit half-open, probing: last failure: %s", last)
	}
	if d := v.PausedFor(); d > 0 {
		return fmt.Errorf("vendor answered SERVICE_BUSY: calls paused for %s", d.Round(time.Millisecond))
	}
	return nil
}

// State returns the circuit's state: "closed", "open" or "half_open".
func (v *Vendor) State() string { return stateName(v.breaker.State()) }

// wait blocks while the vendor has asked everyone to back off, then for a rate-limit token.
func (v *Vendor) wait(ctx context.Context) error {
	for {
		v.mu.Lock()
		until := v.pausedUntil
		v.mu.Unlock()
		d := time.Until(until)
		if d <= 0 {
			break
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	for _, l := range v.limiters {
		if err := l.Wait(ctx); err != nil {
			return err
		}
	}
	return nil
}

// observe pauses every caller when the vendor says it is busy.
func (v *Vendor) observe(err error) {
	var ae *advance.Error
	if !errors.As(err, &ae) || !ae.RateLimited() {
		return
	}
	pause := ae.RetryAfter
	if pause <= 0 {
		pause = defaultBusyPause
	}
	until := time.Now().Add(pause)
	v.mu.Lock()
	extended := until.After(v.pausedUntil)
	if extended {
		v.pausedUntil = until
	}
	v.mu.Unlock()
	if extended && v.onPause != nil {
		v.onPause(pause)
	}
}

// PausedFor returns how much longer calls are held back by a SERVICE_BUSY answer.
func (v *Vendor) PausedFor() time.Duration {
	v.mu.Lock()
	defer v.mu.Unlock()
	return max(0, time.Until(v.pausedUntil))
}
