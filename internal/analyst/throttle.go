package analyst

import (
	"context"
	"net"
	"net/http"
	"time"
)

// Limits bound failed sign-ins: per name (one account guessed from many addresses) and per
// address (many names guessed from one), each in a fixed window.
type Limits struct {
	PerName, PerAddress int
	Window              time.Duration
}

// DefaultLimits allow 5 failures per name and 30 per address each 15 minutes: a person who
// mistypes is not stopped, a guesser gets 480 tries a day at one account.
var DefaultLimits = Limits{PerName: 5, PerAddress: 30, Window: 15 * time.Minute}

// Failures is one throttled key's count in its current window.
type Failures struct {
	Key         string
	WindowStart time.Time
	Count       int
}

// ThrottleStore counts failed sign-ins where every instance sees them (postgres.Store implements
// it): behind a load balancer, a guesser spreading tries over instances meets one count.
type ThrottleStore interface {
	// SignInFailures returns the counts of keys whose window started after since.
	SignInFailures(ctx context.Context, keys []string, since time.Time) ([]Failures, error)
	// RecordSignInFailure adds one failure to each key, starting a new window at now for a key
	// whose window started at or before now-window.
	RecordSignInFailure(ctx context.Context, keys []string, now time.Time, window time.Duration) error
	ClearSignInFailures(ctx context.Context, key string) error
}

// Throttle refuses sign-ins for a name or from an address that failed too often. It is checked
// before the password, and counts every failure whether the name exists or not, so that neither
// the answer nor the throttle tells which names exist.
type Throttle struct {
	Store  ThrottleStore
	Limits Limits
	Now    func() time.Time
}

func (t *Throttle) now() time.Time {
	if t.Now == nil {
		return time.Now()
	}
	return t.Now()
}

func nameKey(name string) string { return "name:" + name }
func addrKey(addr string) string { return "addr:" + addr }

// Blocked returns how long until name may be tried again from addr, 0 when it may now.
func (t *Throttle) Blocked(ctx context.Context, name, addr string) (time.Duration, error) {
	now := t.now()
	fs, err := t.Store.SignInFailures(ctx, []string{nameKey(name), addrKey(addr)}, now.Add(-t.Limits.Window))
	if err != nil {
		return 0, err
	}
	var wait time.Duration
	for _, f := range fs {
		limit := t.Limits.PerAddress
		if f.Key == nameKey(name) {
			limit = t.Limits.PerName
		}
		if f.Count >= limit {
			wait = max(wait, f.WindowStart.Add(t.Limits.Window).Sub(now))
		}
	}
	return wait, nil
}

// Failed counts a failed sign-in against name and addr.
func (t *Throttle) Failed(ctx context.Context, name, addr string) error {
	return t.Store.RecordSignInFailure(ctx, []string{nameKey(name), addrKey(addr)}, t.now(), t.Limits.Window)
}

// Succeeded forgets name's failures (its owner knew the password); the address's stay counted.
func (t *Throttle) Succeeded(ctx context.Context, name string) error {
	return t.Store.ClearSignInFailures(ctx, nameKey(name))
}

// Address is the throttle's key for r's client: its IP, or its /64 for IPv6 (one host commonly
// holds a whole /64). Like the API's own throttle it trusts no forwarding header: behind a proxy
// every sign-in comes from the proxy, which the per-name limit still protects.
func Address(r *http.Request) string {
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
