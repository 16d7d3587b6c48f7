// Package region is the registry of Doppel's vendor regions. A customer that verifies users in
// several countries holds one vendor account per region, each with its own keys, face database,
// rate limit and bill; each Region wraps that account's client (with its own token cache, rate
// limit, circuit breaker and SERVICE_BUSY pause, see package facesearch) and its monthly budget, so
// that one region's trouble stays that region's. The Registry routes each verification to its
// region and resolves an event's region.
package region

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/doppelhq/doppel/internal/duplicate"
)

// HeaderRegion is the Kafka header naming an event's region when its JSON does not.
const HeaderRegion = "region"

// Account is one region's vendor account behind its limits: *facesearch.Vendor implements it.
type Account interface {
	duplicate.Vendor
	// Ready returns nil when calls can go out, or why not (open circuit, SERVICE_BUSY pause).
	Ready() error
	// State is the circuit's state: "closed", "open" or "half_open".
	State() string
	// PausedFor is how much longer calls are held back by a SERVICE_BUSY answer.
	PausedFor() time.Duration
}

// Region is one vendor region: its account and its budget (nil: none).
type Region struct {
	Name    string
	account Account
	budget  *Budget
}

var _ duplicate.Vendor = (*Region)(nil)

// New returns the region name calling account under budget (which may be nil).
func New(name string, account Account, budget *Budget) *Region {
	return &Region{Name: name, account: account, budget: budget}
}

// FaceSearch searches the region's face database, counting the search against its budget. Each
// call is billed by the region's account.
func (r *Region) FaceSearch(ctx context.Context, signatureID string) (duplicate.SearchResult, error) {
	if r.budget == nil {
		return r.account.FaceSearch(ctx, signatureID)
	}
	release, err := r.budget.Reserve(ctx)
	if err != nil {
		return duplicate.SearchResult{}, err
	}
	res, err := r.account.FaceSearch(ctx, signatureID)
	release(err == nil)
	return res, err
}

// Verification calls the region's get-result (free: not counted against the budget).
func (r *Region) Verification(ctx context.Context, signatureID string) (duplicate.Verification, error) {
	return r.account.Verification(ctx, signatureID)
}

// Ready returns nil when the region can take events now, or why it cannot: its budget is spent,
// its circuit is open or half-open, or its vendor asked for a pause.
func (r *Region) Ready() error {
	if r.budget != nil {
		if err := r.budget.Err(); err != nil {
			return err
		}
	}
	return r.account.Ready()
}

// usablePoll is how often WaitUsable looks again at a region that cannot take calls.
const usablePoll = 200 * time.Millisecond

// WaitUsable blocks while a call to the region is bound to be refused without reaching its vendor
// (budget spent, circuit open, SERVICE_BUSY pause), so that events waiting for the region cost
// neither database look-ups nor log lines; it returns as soon as a call may go out, a half-open
// circuit's probe included, or when ctx ends.
func (r *Region) WaitUsable(ctx context.Context) error {
	t := time.NewTicker(usablePoll)
	defer t.Stop()
	for !r.Usable() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// Usable reports whether a call to the region may go out now: its budget is not spent, its circuit
// is not open (a half-open probe may go) and its vendor asked for no pause.
func (r *Region) Usable() bool {
	if r.budget != nil && r.budget.Err() != nil {
		return false
	}
	return r.account.State() != "open" && r.account.PausedFor() <= 0
}

// Account returns the region's account behind its limits.
func (r *Region) Account() Account { return r.account }

// Budget returns the region's budget, nil when it has none.
func (r *Region) Budget() *Budget { return r.budget }

// Registry is every configured region, with the one an event that names none belongs to. It is a
// duplicate.Accounts: each stored check's region's account, by ForRegion.
type Registry struct {
	regions map[string]*Region
	names   []string
	def     *Region
}

var _ duplicate.Accounts = (*Registry)(nil)

// NewRegistry returns the registry of regions, whose default is the region named def.
func NewRegistry(def string, regions ...*Region) (*Registry, error) {
	g := &Registry{regions: make(map[string]*Region, len(regions))}
	for _, r := range regions {
		if _, dup := g.regions[r.Name]; dup {
			return nil, fmt.Errorf("region %s is configured twice", r.Name)
		}
		g.regions[r.Name] = r
		g.names = append(g.names, r.Name)
	}
	g.def = g.regions[def]
	if g.def == nil {
		return nil, fmt.Errorf("default region %q is not one of the regions (%s)", def, strings.Join(g.names, ","))
	}
	return g, nil
}

// Names returns the region codes in configuration order.
func (g *Registry) Names() []string { return slices.Clone(g.names) }

// Default returns the region of events that name none.
func (g *Registry) Default() *Region { return g.def }

// Lookup returns the region named name.
func (g *Registry) Lookup(name string) (*Region, bool) {
	r, ok := g.regions[name]
	return r, ok
}

// UnknownError is an event or a check naming a region that is not configured.
type UnknownError struct{ Region string }

func (e *UnknownError) Error() string {
	return fmt.Sprintf("region %q is not configured (DOPPEL_ADVANCE_REGIONS)", e.Region)
}

// FailureKind is FailurePermanent: no retry makes an unconfigured region known.
func (e *UnknownError) FailureKind() duplicate.FailureKind { return duplicate.FailurePermanent }

// FailureReason is duplicate.ReasonUnknownRegion.
func (e *UnknownError) FailureReason() string { return duplicate.ReasonUnknownRegion }

// ForRegion returns the account of region name; "" names the default region.
func (g *Registry) ForRegion(name string) (duplicate.Vendor, error) {
	if name == "" {
		return g.def, nil
	}
	if r, ok := g.regions[name]; ok {
		return r, nil
	}
	return nil, &UnknownError{Region: name}
}

// Resolve returns the region of an event: the event's own region field (already normalised by
// the decoder), else its Kafka header region (checked by duplicate.CheckHeader, case-insensitive),
// else the default region. An unconfigured region is an *UnknownError.
func (g *Registry) Resolve(eventRegion, headerRegion string) (*Region, error) {
	name := eventRegion
	if name == "" {
		name = duplicate.NormalizeRegion(headerRegion)
	}
	if name == "" {
		return g.def, nil
	}
	if r, ok := g.regions[name]; ok {
		return r, nil
	}
	return nil, &UnknownError{Region: name}
}

// Ready returns nil while at least one region can take events, else every region's reason.
func (g *Registry) Ready() error {
	var errs []error
	for _, name := range g.names {
		err := g.regions[name].Ready()
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", name, err))
	}
	return errors.Join(errs...)
}

// Header returns the value of the last header named key, "" when there is none.
func Header(headers []kafka.Header, key string) string {
	v := ""
	for _, h := range headers {
		if h.Key == key {
			v = string(h.Value)
		}
	}
	return v
}

func upper(s string) string { return strings.ToUpper(s) }
