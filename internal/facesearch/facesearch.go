// Package facesearch adapts the vendor client (package advance) to the detector's Vendor interface.
// It maps the vendor's answers to domain types and makes every worker share one client-side rate
// limit and one SERVICE_BUSY pause, so a rate limit slows the whole consumer, not one event.
package facesearch

import (
	"context"
	"errors"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/doppelhq/doppel/internal/advance"
	"github.com/doppelhq/doppel/internal/duplicate"
)

// Client is the part of *advance.Client the adapter calls.
type Client interface {
	FaceSearch(ctx context.Context, signatureID string) (*advance.FaceSearchResult, error)
	GetResult(ctx context.Context, signatureID string) (*advance.Result, error)
}

// defaultBusyPause is how long every worker waits after SERVICE_BUSY without a Retry-After.
const defaultBusyPause = time.Second

// Vendor implements duplicate.Vendor on top of the vendor client.
type Vendor struct {
	client  Client
	limiter *rate.Limiter

	mu          sync.Mutex
	pausedUntil time.Time
}

var _ duplicate.Vendor = (*Vendor)(nil)

// New returns a Vendor that makes at most qps calls per second across all callers (0: no limit).
func New(client Client, qps float64) *Vendor {
	limit, burst := rate.Inf, 1
	if qps > 0 {
		// A small burst keeps the rate steady at the limit instead of spiking above it each second.
		limit, burst = rate.Limit(qps), max(1, int(math.Ceil(qps/20)))
	}
	return &Vendor{client: client, limiter: rate.NewLimiter(limit, burst)}
}

// FaceSearch calls the vendor's face search. Each call is billed.
func (v *Vendor) FaceSearch(ctx context.Context, signatureID string) (duplicate.SearchResult, error) {
	if err := v.wait(ctx); err != nil {
		return duplicate.SearchResult{}, err
	}
	res, err := v.client.FaceSearch(ctx, signatureID)
	if err != nil {
		v.observe(err)
		return duplicate.SearchResult{}, err
	}
	return duplicate.SearchResult{SimilarUserIDs: res.SimilarFaceUserIDs, TransactionID: res.TransactionID}, nil
}

// Verification calls get-result for the user's own id and the verdict.
func (v *Vendor) Verification(ctx context.Context, signatureID string) (duplicate.Verification, error) {
	if err := v.wait(ctx); err != nil {
		return duplicate.Verification{}, err
	}
	res, err := v.client.GetResult(ctx, signatureID)
	if err != nil {
		v.observe(err)
		return duplicate.Verification{}, err
	}
	return duplicate.Verification{UserID: res.UserID, OverallResult: res.OverallResult,
		TransactionID: res.TransactionID}, nil
}

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
	return v.limiter.Wait(ctx)
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
	if until.After(v.pausedUntil) {
		v.pausedUntil = until
	}
	v.mu.Unlock()
}

// PausedFor returns how much longer calls are held back by a SERVICE_BUSY answer.
func (v *Vendor) PausedFor() time.Duration {
	v.mu.Lock()
	defer v.mu.Unlock()
	return max(0, time.Until(v.pausedUntil))
}
