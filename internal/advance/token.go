package advance

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"sync"
	"time"
)

// refreshRetryDelay is how long a still-valid token keeps being used after a failed refresh
// before the next attempt, so that a failing token endpoint is not hammered by every call.
const refreshRetryDelay = 5 * time.Second

// Signature returns the generate-token signature: the lowercase hex SHA-256 of
// accessKey+secretKey+timestamp, where timestamp is the 13-digit epoch milliseconds sent.
func Signature(accessKey, secretKey, timestamp string) string {
	sum := sha256.Sum256([]byte(accessKey + secretKey + timestamp))
	return hex.EncodeToString(sum[:])
}

// tokenCache holds the current access token and makes concurrent callers share one fetch.
type tokenCache struct {
	fetch func(ctx context.Context) (token, error)
	now   func() time.Time
	// period and margin come from Config; the vendor's expiredTime wins when it is sane.
	period, margin time.Duration

	mu        sync.Mutex
	value     string
	refreshAt time.Time // ask for a new token from here on
	expiresAt time.Time // the token is useless from here on
	retryAt   time.Time // after a failed refresh, keep the old token until then
	flight    *tokenFlight
}

// tokenFlight is one fetch under way; done is closed when value or err is set.
type tokenFlight struct {
	done  chan struct{}
	value string
	err   error
}

// get returns a usable token. While the current token is valid it is returned at once, and a
// refresh due within the margin runs in the background, so a slow token endpoint never stalls
// calls that have a working token. Only callers without a valid token wait for the fetch.
func (c *tokenCache) get(ctx context.Context) (string, error) {
	c.mu.Lock()
	now := c.now()
	if c.value != "" && now.Before(c.expiresAt) {
		if !now.Before(c.refreshAt) && !now.Before(c.retryAt) && c.flight == nil {
			c.startLocked(ctx)
		}
		v := c.value
		c.mu.Unlock()
		return v, nil
	}
	f := c.flight
	if f == nil {
		f = c.startLocked(ctx)
	}
	c.mu.Unlock()

	select {
	case <-f.done:
		return f.value, f.err
	case <-ctx.Done():
		return "", ctxError(EndpointGenerateToken, ctx.Err())
	}
}

// startLocked starts a fetch; c.mu must be held. The fetch must not fail for everyone because
// the caller that started it gave up: it runs without the caller's cancellation, bounded by the
// client's own timeout.
func (c *tokenCache) startLocked(ctx context.Context) *tokenFlight {
	f := &tokenFlight{done: make(chan struct{})}
	c.flight = f
	go c.run(context.WithoutCancel(ctx), f)
	return f
}

// run performs one fetch and publishes its outcome to the cache and the waiters.
func (c *tokenCache) run(ctx context.Context, f *tokenFlight) {
	start := c.now()
	t, err := c.fetch(ctx)

	c.mu.Lock()
	defer c.mu.Unlock()
	defer close(f.done)
	c.flight = nil
	now := c.now()
	if err != nil {
		if c.value != "" && now.Before(c.expiresAt) {
			// The old token still works: keep serving it rather than failing calls.
			c.retryAt = now.Add(refreshRetryDelay)
			f.value = c.value
			return
		}
		f.err = err
		return
	}
	lifetime := c.period
	if !t.expiresAt.IsZero() {
		// Measured from before the request, so the estimate errs on the early side. An expiry
		// already in the past means the clocks disagree: trust the period asked for instead.
		if l := t.expiresAt.Sub(start); l > 0 {
			lifetime = l
		}
	}
	margin := min(c.margin, lifetime/2)
	c.value = t.value
	c.expiresAt = start.Add(lifetime)
	c.refreshAt = c.expiresAt.Add(-margin)
	c.retryAt = time.Time{}
	f.value = t.value
}

// invalidate forgets the token if it is still the one that was rejected, so that many callers
// rejected with the same token cause one fetch, not one each.
func (c *tokenCache) invalidate(rejected string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.value == rejected {
		c.value = ""
		c.refreshAt, c.expiresAt, c.retryAt = time.Time{}, time.Time{}, time.Time{}
	}
}

// tokenRequest is the generate-token body. The vendor's table calls timestamp and periodSecond
// strings, but its request sample sends JSON numbers; this client sends what the sample shows.
type tokenRequest struct {
	AccessKey    string `json:"accessKey"`
	Signature    string `json:"signature"`
	Timestamp    int64  `json:"timestamp"`
	PeriodSecond int64  `json:"periodSecond"`
}

// newTokenRequest builds a signed generate-token body for the given moment.
func newTokenRequest(accessKey, secretKey string, now time.Time, period time.Duration) tokenRequest {
	ms := now.UnixMilli()
	return tokenRequest{
		AccessKey:    accessKey,
		Signature:    Signature(accessKey, secretKey, strconv.FormatInt(ms, 10)),
		Timestamp:    ms,
		PeriodSecond: int64(period / time.Second),
	}
}
