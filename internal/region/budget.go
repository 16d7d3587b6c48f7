package region

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/doppelhq/doppel/internal/duplicate"
)

// SpendCounter counts a region's face searches from since on, from what is stored.
type SpendCounter func(ctx context.Context, region string, since time.Time) (int64, error)

// Budget bounds a region's face searches per calendar month (UTC). The spend is read back from the
// stored checks when the month starts being counted (at start-up, and when the month turns), so a
// restart does not reset it; between reads every search this process makes is counted as it is
// reserved, so concurrent workers never overshoot the limit.
type Budget struct {
	region string
	limit  int64
	count  SpendCounter
	now    func() time.Time
	log    *slog.Logger
	// onChange is told the spend and the limit whenever the spend changes, with mu held: it must
	// not call the Budget; may be nil.
	onChange func(spent, limit int64)

	mu     sync.Mutex
	month  time.Time // the first instant of the month spent counts; zero until loaded
	spent  int64     // searches made or in flight in month
	warned bool      // the 80% warning was logged for month
}

// BudgetConfig configures a Budget.
type BudgetConfig struct {
	Region string
	// Limit is the most face searches per calendar month; 0 means no budget (only counted).
	Limit  int64
	Count  SpendCounter
	Now    func() time.Time
	Logger *slog.Logger
	// OnChange is told the spend and the limit at every change, in order; it must not call the
	// Budget.
	OnChange func(spent, limit int64)
}

// NewBudget returns a Budget; call Load before the first Reserve.
func NewBudget(cfg BudgetConfig) *Budget {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Budget{region: cfg.Region, limit: cfg.Limit, count: cfg.Count, now: cfg.Now, log: cfg.Logger,
		onChange: cfg.OnChange}
}

// SpentError is returned instead of a face search when the region's budget for the month is spent.
// It is account-level: the event waits (parked) until the month turns or the budget is raised.
type SpentError struct {
	Region     string
	Limit      int64
	Spent      int64
	ResumesAt  time.Time
	monthStart time.Time
}

func (e *SpentError) Error() string {
	return fmt.Sprintf("region %s spent its monthly budget of %d face searches (%d this month): paused until %s or until DOPPEL_ADVANCE_%s_MONTHLY_BUDGET is raised",
		e.Region, e.Limit, e.Spent, e.ResumesAt.Format(time.RFC3339), upper(e.Region))
}

// FailureKind is FailureAccount: nothing can be done per event until the budget allows searches again.
func (e *SpentError) FailureKind() duplicate.FailureKind { return duplicate.FailureAccount }

// FailureReason names the spent budget, apart from the vendor's own account failures.
func (e *SpentError) FailureReason() string { return duplicate.ReasonRegionBudgetSpent }

func monthStart(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// Load reads this month's spend from the stored checks.
func (b *Budget) Load(ctx context.Context) error {
	month := monthStart(b.now())
	n, err := b.count(ctx, b.region, month)
	if err != nil {
		return err
	}
	b.mu.Lock()
	if !month.Equal(b.month) {
		b.month, b.spent, b.warned = month, 0, false
	}
	// Never below what this process already counted: a search it made may not be stored yet.
	b.spent = max(b.spent, n)
	b.changed()
	b.mu.Unlock()
	return nil
}

// Reserve counts one face search about to be made, or returns a *SpentError when the budget is
// spent. The caller calls release with whether the search was billed (it answered); an unbilled
// one is given back.
func (b *Budget) Reserve(ctx context.Context) (release func(billed bool), err error) {
	if b.monthTurned() {
		// Month boundaries are rare: reading the new month's spend (nearly zero) is cheap.
		if err := b.Load(ctx); err != nil {
			return nil, fmt.Errorf("region %s budget: %w", b.region, err)
		}
	}
	b.mu.Lock()
	if b.limit > 0 && b.spent >= b.limit {
		err := b.spentError()
		b.mu.Unlock()
		return nil, err
	}
	b.spent++
	b.changed()
	spent, month := b.spent, b.month
	warn := b.limit > 0 && !b.warned && spent*5 >= b.limit*4
	if warn {
		b.warned = true
	}
	b.mu.Unlock()
	if warn {
		b.log.Warn("region has spent 80% of its monthly face-search budget", "region", b.region,
			"spent", spent, "budget", b.limit, "month", month.Format("2006-01"))
	}
	var once sync.Once
	return func(billed bool) {
		once.Do(func() {
			if billed {
				return
			}
			b.mu.Lock()
			if b.month.Equal(month) {
				b.spent--
			}
			b.changed()
			b.mu.Unlock()
		})
	}, nil
}

// Err returns a *SpentError while the budget is spent, else nil. It reads no database.
func (b *Budget) Err() error {
	if b.monthTurned() {
		return nil // the next Reserve reads the new month's spend
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.limit > 0 && b.spent >= b.limit {
		return b.spentError()
	}
	return nil
}

// Spent returns this month's spend as counted and the limit.
func (b *Budget) Spent() (spent, limit int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.spent, b.limit
}

func (b *Budget) monthTurned() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !monthStart(b.now()).Equal(b.month)
}

// spentError must be called with mu held.
func (b *Budget) spentError() *SpentError {
	return &SpentError{Region: b.region, Limit: b.limit, Spent: b.spent, ResumesAt: b.month.AddDate(0, 1, 0),
		monthStart: b.month}
}

// changed reports the spend; it must be called with mu held, so that reports arrive in the order
// of the changes and the last one is the spend (made after unlocking, two workers' reports could
// swap and leave the gauge at an older figure).
func (b *Budget) changed() {
	if b.onChange != nil {
		b.onChange(b.spent, b.limit)
	}
}
