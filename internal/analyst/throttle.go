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

// ThrottleStore counts sign-in attempts where every instance sees them (postgres.Store
// implements it): behind a load balancer, a guesser spreading tries over instances meets one count.
type ThrottleStore interface {
	// TakeSignInAttempt counts one attempt against every key, unless one of them has used its
	// limit (limits[i] is keys[i]'s) in its current window: then nothing is counted and the time
	// that window ends is returned. A key whose window started at or before now-window starts a
	// new one at now. Check and count are one transaction holding the keys' rows, so attempts made
	// at once, on any instance, are admitted one by one: a burst gets no more than the limit.
	TakeSignInAttempt(ctx context.Context, keys []string, limits []int, now time.Time, window time.Duration) (blockedUntil time.Time, err error)
	// RefundSignInAttempt forgets clearKey's count and takes back one attempt from
	// decrementKey's.
	RefundSignInAttempt(ctx context.Context, clearKey, decrementKey string) error
}

// Throttle holds back sign-ins for a name or from an address that failed too often. An attempt is
// counted before the password is looked at, whether the name exists or not (so neither the answer
// nor the throttle tells which names exist), and given back when it succeeds.
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

// Attempt counts a sign-in for name from addr and returns 0, or, when the name or the address has
// used its failures up, counts nothing and returns how long until it may try again.
func (t *Throttle) Attempt(ctx context.Context, name, addr string) (time.Duration, error) {
	now := t.now()
	// The address's key sorts before the name's ("addr:" < "name:"): every sign-in takes the rows'
	// locks in one order, so two cannot wait on each other.
	until, err := t.Store.TakeSignInAttempt(ctx, []string{addrKey(addr), nameKey(name)},
		[]int{t.Limits.PerAddress, t.Limits.PerName}, now, t.Limits.Window)
	if err != nil || until.IsZero() {
		return 0, err
	}
	return max(until.Sub(now), time.Second), nil
}

// Succeeded gives back the attempt of a sign-in that succeeded: the name's failures are forgotten
// (its owner knew the password), the address's others stay counted.
func (t *Throttle) Succeeded(ctx context.Context, name, addr string) error {
	return t.Store.RefundSignInAttempt(ctx, nameKey(name), addrKey(addr))
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
