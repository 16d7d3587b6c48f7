package httpapi

import (
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"
)

// Reasons an authentication failed, the reason label of doppel_http_auth_failures_total.
const (
	authMissingCredentials = "missing_credentials"
	authInvalidAPIKey      = "invalid_api_key"
	authMissingScope       = "missing_scope"
	authInvalidToken       = "invalid_token"
	authInvalidSignature   = "invalid_signature"
	authInvalidTimestamp   = "invalid_timestamp"
	authStaleTimestamp     = "stale_timestamp"
	authInvalidWebhookID   = "invalid_webhook_id"
	authRegionMismatch     = "region_mismatch"
	authTokenInQuery       = "token_in_query"
	authThrottled          = "throttled"
)

// maxTrackedAddrs bounds the memory the throttle uses however many addresses fail.
const maxTrackedAddrs = 10000

// authFailures counts, logs and throttles failed authentication. Each remote address has a token
// bucket of failures (x/time/rate): a failure takes a token, and an address without one is answered
// 429 before its credentials are even looked at, so guessing keys or tokens gets nowhere. A request
// that authenticates takes nothing. Only the connection's address is used: X-Forwarded-For is
// whatever the client wants it to be.
type authFailures struct {
	perMinute int
	onFailure func(route, reason string)
	log       *slog.Logger
	// logLimit keeps a flood of failures from flooding the log; suppressed counts the lines left out.
	logLimit   *rate.Limiter
	suppressed atomic.Int64

	mu     sync.Mutex
	byAddr map[string]*rate.Limiter
}

func newAuthFailures(perMinute int, onFailure func(route, reason string), log *slog.Logger) *authFailures {
	if onFailure == nil {
		onFailure = func(string, string) {}
	}
	return &authFailures{perMinute: perMinute, onFailure: onFailure, log: log,
		logLimit: rate.NewLimiter(1, 5), byAddr: map[string]*rate.Limiter{}}
}

// throttled answers 429 with Retry-After when the request's address has used its failures up.
func (a *authFailures) throttled(c echo.Context) error {
	retryAfter, blocked := a.blocked(c.Path(), c.Request())
	if !blocked {
		return nil
	}
	e := newError(http.StatusTooManyRequests, codeTooManyRequests,
		"too many failed authentication attempts from this address; retry in %s s", retryAfter)
	e.header = map[string]string{"Retry-After": retryAfter}
	return e
}

// blocked reports whether r's address has used its failures up, and in how many seconds it may
// try again; a blocked attempt is recorded as throttled.
func (a *authFailures) blocked(route string, r *http.Request) (retryAfter string, blocked bool) {
	if a.perMinute <= 0 {
		return "", false
	}
	addr := remoteKey(r)
	now := time.Now()
	a.mu.Lock()
	lim := a.byAddr[addr]
	tokens := float64(a.perMinute)
	if lim != nil {
		tokens = lim.TokensAt(now)
	}
	a.mu.Unlock()
	if tokens >= 1 {
		return "", false
	}
	wait := time.Duration((1 - tokens) / float64(lim.Limit()) * float64(time.Second))
	retryAfter = strconv.Itoa(int(math.Ceil(wait.Seconds())))
	a.record(route, r, authThrottled)
	return retryAfter, true
}

// fail records a failed authentication and takes one of the address's tokens, except for a known
// key that lacks a scope: that is a mistake, not a guess.
func (a *authFailures) fail(c echo.Context, reason string) { a.failed(c.Path(), c.Request(), reason) }

func (a *authFailures) failed(route string, r *http.Request, reason string) {
	a.record(route, r, reason)
	if a.perMinute <= 0 || reason == authMissingScope {
		return
	}
	addr := remoteKey(r)
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	lim := a.byAddr[addr]
	if lim == nil {
		a.makeRoom(now)
		lim = rate.NewLimiter(rate.Limit(float64(a.perMinute)/60), a.perMinute)
		a.byAddr[addr] = lim
	}
	lim.AllowN(now, 1)
}

// makeRoom forgets addresses whose bucket has refilled (they are as good as new); if every one is
// still draining, it forgets one at random rather than grow without bound. Called with mu held.
func (a *authFailures) makeRoom(now time.Time) {
	if len(a.byAddr) < maxTrackedAddrs {
		return
	}
	for addr, lim := range a.byAddr {
		if lim.TokensAt(now) >= float64(lim.Burst()) {
			delete(a.byAddr, addr)
		}
	}
	for addr := range a.byAddr {
		if len(a.byAddr) < maxTrackedAddrs {
			break
		}
		delete(a.byAddr, addr)
	}
}

// record counts the failure and logs it, at most about once a second: route, reason and address,
// never what was sent as a credential.
func (a *authFailures) record(route string, r *http.Request, reason string) {
	a.onFailure(route, reason)
	if !a.logLimit.Allow() {
		a.suppressed.Add(1)
		return
	}
	a.log.Warn("authentication failed", "route", route, "reason", reason, "remote_addr", remoteKey(r),
		"suppressed_since_last", a.suppressed.Swap(0))
}

// remoteKey is the address a failure is charged to: the IPv4 address, or the /64 of an IPv6 one
// (one host usually holds a whole /64).
func remoteKey(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return host
	}
	if ip.To4() == nil {
		return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
	}
	return ip.String()
}
