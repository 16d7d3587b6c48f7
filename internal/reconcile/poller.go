package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/doppelhq/doppel/internal/duplicate"
)

// Verdicts get-result answers.
const (
	VerdictPass       = duplicate.VerdictPass
	VerdictFail       = "FAIL"
	VerdictIncomplete = "INCOMPLETE"
)

// Store keeps the started verifications. Every method is safe to call from several instances at
// once: claims skip rows another instance holds.
type Store interface {
	// SettleFinished settles every pending verification whose check has one of the outcomes:
	// recovered when polling found its verdict, completed otherwise. It marks recovered checks as
	// found by polling.
	SettleFinished(ctx context.Context, outcomes []string) (completed, recovered int, err error)
	// ExpireStartedBefore records pending verifications started before cutoff as expired.
	ExpireStartedBefore(ctx context.Context, cutoff time.Time) (int, error)
	// PruneSettledBefore deletes the verifications settled before cutoff.
	PruneSettledBefore(ctx context.Context, cutoff time.Time) (int, error)
	// ClaimDue claims up to limit pending verifications due for a poll, leaving those of the regions
	// in skip, and moves each one's next poll one interval on, so no instance polls it again within
	// the interval.
	ClaimDue(ctx context.Context, owner string, limit int, interval time.Duration, skip []string) ([]Due, error)
	// RecordPoll stores what a poll found: the final verdict (PASS or FAIL), or "" and a note.
	RecordPoll(ctx context.Context, signatureID, verdict, note string) error
	// ReleaseClaim makes a claimed verification due again at once: no vendor call was made.
	ReleaseClaim(ctx context.Context, signatureID string) error
	// RecentCounts returns the pending count and those of the window since since.
	RecentCounts(ctx context.Context, since time.Time) (Counts, error)
}

// Vendor is what polling calls in one region: get-result.
type Vendor interface {
	Verification(ctx context.Context, signatureID string) (duplicate.Verification, error)
}

// Regions routes each verification's polls to its own region, as the main path routes its events:
// each region's polling has its own share of that region's rate, under its circuit breaker, pause
// and budget.
type Regions interface {
	// Resolve returns the name and the polling vendor of region (a normalised code; "" is the
	// default region), or an error when the region is not configured.
	Resolve(region string) (name string, v Vendor, err error)
	// Paused returns the regions that cannot take calls now (circuit open, pause, budget spent),
	// "" included when the default region is one: their verifications are left unclaimed.
	Paused() []string
}

// OneRegion is Regions with the one region name, polled through v; paused tells whether calls
// cannot go out now. Verifications naming another region are of an unknown region.
func OneRegion(name string, v Vendor, paused func() bool) Regions {
	return oneRegion{name: name, v: v, paused: paused}
}

type oneRegion struct {
	name   string
	v      Vendor
	paused func() bool
}

func (o oneRegion) Resolve(region string) (string, Vendor, error) {
	if region != "" && region != o.name {
		return "", nil, fmt.Errorf("region %q is not configured", region)
	}
	return o.name, o.v, nil
}

func (o oneRegion) Paused() []string {
	if o.paused != nil && o.paused() {
		return []string{"", o.name}
	}
	return nil
}

// Events takes, for each verification polling found final, the COMPLETED event its lost callback
// would have been, for the events topic, keyed by signatureId (*topic.Publisher implements it); a
// PASS's event carries the userId get-result gave, so the main path does not ask again.
//
// Polling hands the verification to the main path instead of processing it itself: on the events
// topic its event waits behind any callback of the same verification (same key, same partition,
// handled one after another), so whichever comes second finds the stored outcome and nothing is
// searched or billed twice, even when the callback was only late, on any instance.
type Events interface {
	Publish(ctx context.Context, key, value []byte) error
}

// Config configures a Poller.
type Config struct {
	// Owner names this instance in started_verifications.polled_by.
	Owner string
	// Interval is the least time between two polls of one verification.
	Interval time.Duration
	// GiveUp is how long after it started a verification is recorded as expired.
	GiveUp time.Duration
	// Retention is how long a settled verification is kept (0: for ever); it must cover the
	// recovered-share window (an hour).
	Retention time.Duration
	// AlertRatio is the share recovered by polling above which callbacks_missing is raised.
	AlertRatio float64
	// Tick is how often the poller looks for due work; 0 takes a tenth of Interval, between
	// 100 ms and 5 s.
	Tick time.Duration
	// BatchSize is the most verifications claimed at once; 0 takes 4 per worker.
	BatchSize int
	// Workers is how many polls run at once; 0 takes 8.
	Workers int
	Logger  *slog.Logger
	// OnPolled is told the result of every poll ("PASS", "FAIL", "INCOMPLETE", "error"); may be nil.
	OnPolled func(result string)
	// OnCounts is told the pending and recent counts (see Store.RecentCounts), for metrics; may be nil.
	OnCounts func(Counts)
	// OnSettled is told how many verifications this instance settled with a status; may be nil.
	OnSettled func(status Status, n int)
	Now       func() time.Time
}

// AlertSink raises a callbacks_missing alert unless one was raised within the window, and
// publishes it (an outbox: an alert not yet on the topic goes out on a later round).
type AlertSink interface {
	RaiseCallbacksMissing(ctx context.Context, a *CallbacksMissing) (raised bool, err error)
	PublishPending(ctx context.Context) error
}

// Poller polls get-result for the started verifications no COMPLETED event settled in time.
type Poller struct {
	cfg     Config
	store   Store
	regions Regions
	events  Events
	alerts  AlertSink
	newID   func() string
	// countedAt is when the counts were last read: they scan the settled rows, so at most once per
	// countEvery.
	countedAt time.Time
	// unknownLogged holds the unconfigured regions already logged: each is logged once, not at
	// every poll of its verifications.
	unknownMu     sync.Mutex
	unknownLogged map[string]bool
}

// countEvery bounds how often the counts (and the callbacks_missing ratio) are computed.
func (p *Poller) countEvery() time.Duration { return min(10*time.Second, p.cfg.Interval) }

// NewPoller returns a Poller. alerts may be nil (no callbacks_missing alert).
func NewPoller(cfg Config, store Store, regions Regions, events Events, alerts AlertSink, newID func() string) *Poller {
	if cfg.Tick <= 0 {
		cfg.Tick = min(max(cfg.Interval/10, 100*time.Millisecond), 5*time.Second)
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 8
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 4 * cfg.Workers
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Poller{cfg: cfg, store: store, regions: regions, events: events, alerts: alerts, newID: newID,
		unknownLogged: map[string]bool{}}
}

// Run polls until ctx ends. A failing round (the database down, say) is logged and tried again on
// the next tick: nothing pending is lost, it stays in the store.
func (p *Poller) Run(ctx context.Context) error { return p.RunWith(ctx) }

// RunWith is Run that also runs each of extra after every round (the enroller), with the same
// handling of failures.
func (p *Poller) RunWith(ctx context.Context, extra ...func(context.Context) error) error {
	t := time.NewTicker(p.cfg.Tick)
	defer t.Stop()
	for {
		for _, round := range append([]func(context.Context) error{p.Round}, extra...) {
			if err := round(ctx); err != nil && ctx.Err() == nil {
				p.cfg.Logger.Warn("reconcile round failed, trying again", "error", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Round does one pass: settle what COMPLETED events finished, expire what is too old, poll what is
// due (except in the regions whose circuit is open), and raise callbacks_missing if callbacks are being lost.
func (p *Poller) Round(ctx context.Context) error {
	if err := p.settle(ctx); err != nil {
		return err
	}
	if n, err := p.store.ExpireStartedBefore(ctx, p.cfg.Now().Add(-p.cfg.GiveUp)); err != nil {
		return err
	} else if n > 0 {
		p.settled(StatusExpired, n)
		p.cfg.Logger.Warn("verifications expired without a final verdict", "count", n, "give_up", p.cfg.GiveUp)
	}
	if p.cfg.Retention > 0 {
		if n, err := p.store.PruneSettledBefore(ctx, p.cfg.Now().Add(-p.cfg.Retention)); err != nil {
			return err
		} else if n > 0 {
			p.cfg.Logger.Info("settled verifications pruned", "count", n, "retention", p.cfg.Retention)
		}
	}
	for ctx.Err() == nil {
		n, err := p.pollBatch(ctx)
		if err != nil {
			return err
		}
		// Settled after each batch, so a long backlog's early finds are not claimed again
		// once their interval has passed.
		if err := p.settle(ctx); err != nil {
			return err
		}
		if n < p.cfg.BatchSize {
			break
		}
	}
	return p.checkRatio(ctx)
}

func (p *Poller) settle(ctx context.Context) error {
	completed, recovered, err := p.store.SettleFinished(ctx, SettlingOutcomes())
	if err != nil {
		return err
	}
	p.settled(StatusCompleted, completed)
	p.settled(StatusRecovered, recovered)
	if recovered > 0 {
		p.cfg.Logger.Warn("verifications recovered by polling: their callbacks never came", "count", recovered)
	}
	if completed > 0 {
		p.cfg.Logger.Debug("verifications settled by their COMPLETED event", "count", completed)
	}
	return nil
}

// pollBatch claims and polls one batch, Workers at a time (each poll waits mostly on the vendor),
// and returns how many it polled (claims released unpolled do not count, so a region that became
// unusable during the batch is not claimed again at once). The verifications of regions that
// cannot take calls are not claimed: polling waits there, as the main path does, and goes on in
// the other regions. When a poll says the batch must stop, the polls not started yet are released.
func (p *Poller) pollBatch(ctx context.Context) (int, error) {
	due, err := p.store.ClaimDue(ctx, p.cfg.Owner, p.cfg.BatchSize, p.cfg.Interval, p.regions.Paused())
	if err != nil {
		return 0, err
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		stopErr  error
		released int
		sem      = make(chan struct{}, p.cfg.Workers)
	)
	stopped := func() error {
		mu.Lock()
		defer mu.Unlock()
		return stopErr
	}
	for _, d := range due {
		sem <- struct{}{}
		if stopped() != nil {
			<-sem
			if err := p.store.ReleaseClaim(context.WithoutCancel(ctx), d.SignatureID); err != nil {
				mu.Lock()
				stopErr = errors.Join(stopErr, err)
				mu.Unlock()
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			err := p.poll(ctx, d)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, errReleased):
				released++
			case err != nil && stopErr == nil:
				stopErr = err
			}
		}()
	}
	wg.Wait()
	if err := stopped(); err != nil {
		return 0, err
	}
	return len(due) - released, nil
}

// errReleased says a claim was released without a verdict: its region's vendor could not take the
// call (circuit open, account-level answer, budget spent).
var errReleased = errors.New("region unusable: claim released")

// poll polls one verification in its region. It returns an error when the batch must stop (the
// store failed), or errReleased; a vendor failure about this verification, or a region that is not
// configured, is recorded and the verification polled again after the interval (until give-up).
func (p *Poller) poll(ctx context.Context, d Due) error {
	log := p.cfg.Logger.With("signature_id", d.SignatureID, "polls", d.Polls)
	name, vendor, err := p.regions.Resolve(duplicate.NormalizeRegion(d.Region))
	if err != nil {
		// No vendor can answer for it: recorded as a failed poll, expired after the give-up time.
		p.observe("error")
		p.logUnknownRegion(log, d.Region, err)
		return p.store.RecordPoll(ctx, d.SignatureID, "", fmt.Sprintf("%s: %v", duplicate.ReasonUnknownRegion, err))
	}
	log = log.With("region", name)
	v, err := vendor.Verification(ctx, d.SignatureID)
	if err != nil {
		return p.failed(ctx, log, d, "get-result", err)
	}
	switch v.OverallResult {
	case VerdictPass, VerdictFail:
	default:
		p.observe(VerdictIncomplete)
		return p.store.RecordPoll(ctx, d.SignatureID, "", "get-result: "+v.OverallResult)
	}
	event := duplicate.Event{SignatureID: d.SignatureID, Type: duplicate.EventTypeCompleted, Region: name}
	if v.OverallResult == VerdictPass {
		// A PASS's event carries its user, so the main path searches without asking get-result
		// again. A FAIL's does not: without a userId the main path asks, and stores not_passed.
		// A PASS naming no valid user could never be searched: recorded here, polled again after
		// the interval until give-up, as the main path would record it (no dead letter per poll).
		reason := ""
		switch {
		case v.UserID == "":
			reason = duplicate.ReasonMissingUserID + ": get-result's inputParameters carry no userId"
		case !duplicate.ValidUserID(v.UserID):
			reason = duplicate.ReasonInvalidUserID + ": get-result's inputParameters userId is not a valid userId"
		}
		if reason != "" {
			p.observe("error")
			log.Warn("verification found by polling cannot be searched", "reason", reason)
			return p.store.RecordPoll(ctx, d.SignatureID, "", "failed: "+reason)
		}
		event.UserID = v.UserID
	}
	// The verdict is recorded before the event is published, so a crash in between still counts
	// the verification as recovered by polling when its next poll's event stores the check.
	if err := p.store.RecordPoll(ctx, d.SignatureID, v.OverallResult, "get-result: "+v.OverallResult); err != nil {
		return err
	}
	value, err := json.Marshal(event)
	if err != nil {
		return err
	}
	if err := p.events.Publish(ctx, []byte(d.SignatureID), value); err != nil {
		// The verdict is kept and the claim's lease stands: it is polled again after the interval,
		// as the vendor asks (releasing it would call get-result at every tick of a broker
		// outage). The batch stops: the broker is likely down for the rest of it too.
		return fmt.Errorf("publish the COMPLETED event of %s found by polling: %w", d.SignatureID, err)
	}
	p.observe(v.OverallResult)
	log.Info("verification found by polling: its COMPLETED event is on the events topic", "verdict", v.OverallResult)
	return nil
}

// failed handles a failed vendor call or store write during a poll.
func (p *Poller) failed(ctx context.Context, log *slog.Logger, d Due, op string, err error) error {
	p.observe("error")
	switch duplicate.KindOf(err) {
	case duplicate.FailureAccount:
		// An open circuit, an account-level answer that opened it or a spent budget: no verdict
		// was learnt, so this claim does not count as a poll. The region is skipped from the next
		// claim on; the other regions' polls go on.
		if rerr := p.store.ReleaseClaim(context.WithoutCancel(ctx), d.SignatureID); rerr != nil {
			return errors.Join(err, rerr)
		}
		return errReleased
	case duplicate.FailureStore:
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	log.Warn("poll failed, polling again after the interval", "op", op, "error", err)
	return p.store.RecordPoll(ctx, d.SignatureID, "", fmt.Sprintf("%s failed: %v", op, err))
}

// logUnknownRegion logs, once per region, that verifications name a region that is not configured.
func (p *Poller) logUnknownRegion(log *slog.Logger, region string, err error) {
	p.unknownMu.Lock()
	seen := p.unknownLogged[region]
	p.unknownLogged[region] = true
	p.unknownMu.Unlock()
	if !seen {
		log.Error("started verifications name a region that is not configured: they are not polled and expire after the give-up time",
			"region", region, "error", err)
	}
}

func (p *Poller) settled(status Status, n int) {
	if n > 0 && p.cfg.OnSettled != nil {
		p.cfg.OnSettled(status, n)
	}
}

func (p *Poller) observe(result string) {
	if p.cfg.OnPolled != nil {
		p.cfg.OnPolled(result)
	}
}

// checkRatio reports the counts and raises callbacks_missing when the share recovered by polling
// in the last hour is above the threshold.
func (p *Poller) checkRatio(ctx context.Context) error {
	now := p.cfg.Now()
	if now.Sub(p.countedAt) < p.countEvery() {
		return nil
	}
	p.countedAt = now
	counts, err := p.store.RecentCounts(ctx, now.Add(-AlertWindow))
	if err != nil {
		return err
	}
	if p.cfg.OnCounts != nil {
		p.cfg.OnCounts(counts)
	}
	if p.alerts == nil {
		return nil
	}
	if a := NewCallbacksMissing(p.newID(), counts, p.cfg.AlertRatio, now); a != nil {
		raised, err := p.alerts.RaiseCallbacksMissing(ctx, a)
		if err != nil {
			return err
		}
		if raised {
			p.cfg.Logger.Error("callbacks are being lost: check the vendor's callback URL and Doppel's callback endpoint",
				"recovered_by_polling", a.RecoveredByPolling, "settled", a.Settled, "ratio", a.Ratio, "threshold", a.Threshold)
		}
	}
	return p.alerts.PublishPending(ctx)
}
