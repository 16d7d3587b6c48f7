// Package pipeline handles the events consumer's messages: it decodes an "H5 IDV completed" event
// once, when the consumer routes it, and resolves its vendor region (the edge); then a chain of
// middlewares (count, record a decode failure, wait for or park a region that cannot take it) wraps
// one plain function that runs the detector, counts the outcome and hands a committed alert to the
// relay. Classify says what a handler error means for the message: the one place
// a failure kind becomes retry, wait or dead letter. The wiring (which consumers, which topics) is
// service's.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/segmentio/kafka-go"

	"github.com/doppelhq/doppel/internal/clip"
	"github.com/doppelhq/doppel/internal/consumer"
	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/region"
)

// Metrics is what the handler counts; metrics.Metrics implements it. It is an interface so that the
// pipeline knows nothing of Prometheus: the service passes the one it scrapes.
type Metrics interface {
	// EventConsumed counts an event taken from the events topic (doppel_events_consumed_total).
	EventConsumed()
	// EventKeyMismatch counts an event whose Kafka key was neither empty nor its signatureId.
	EventKeyMismatch()
	// Outcome counts an event processed, by the outcome stored for its check.
	Outcome(outcome string)
}

// Config configures a Handler.
type Config struct {
	// EventOptions are the event bounds (DOPPEL_MAX_EVENT_BYTES, DOPPEL_REJECT_UNKNOWN_TYPES), the
	// same the API's event endpoint holds events to.
	EventOptions duplicate.DecodeOptions
	Detector     *duplicate.Detector
	Regions      *region.Registry
	// Parking moves events of regions that cannot take them to their parking topics; nil with one
	// region (its events wait in place, as its trouble stops everything anyway) and in the parking
	// topics' own consumers.
	Parking *Parking
	// FromParking marks the handler of a parking topic. Its events wait, before any work, while
	// their region cannot take calls (they wait for nothing else), and they are not counted as
	// consumed again: they were counted when first taken from the events topic.
	FromParking bool
	// OnAlert is given each alert a stored check raised, once it is committed (the relay's Handoff).
	OnAlert func(duplicate.Alert)
	Metrics Metrics
	Logger  *slog.Logger
}

// Handler is the consumer's handler. Route decodes each message once, at fetch, and resolves its
// region (the edge); Handle runs the decoded event through a chain of middlewares around one plain
// function, detect:
//
//	consumed → decodeFailure → waitForRegion (parking topics) → park (the events topic) → detect
//
// Retrying and dead-lettering are the consumer's, decided by Classify from the error's kind.
type Handler struct {
	cfg    Config
	log    *slog.Logger
	handle EventHandler
}

// Delivery is one decoded event on its way through the middlewares.
type Delivery struct {
	Msg kafka.Message
	// Event is the decoded event, its Region resolved; on a decode error, as much as could be read.
	Event duplicate.Event
	// Region is the event's vendor region, resolved once by Route; nil when decoding failed.
	Region *region.Region
	// Err is why the message is not a usable event (a *duplicate.DecodeError), nil when it is.
	Err error
	// Source is where the event came from (the events topic's position for a parked event).
	Source duplicate.Source
}

// EventHandler handles one delivery.
type EventHandler func(ctx context.Context, d *Delivery) error

// Middleware wraps an EventHandler with one concern.
type Middleware func(EventHandler) EventHandler

// New returns a Handler for cfg.
func New(cfg Config) *Handler {
	if cfg.OnAlert == nil {
		cfg.OnAlert = func(duplicate.Alert) {}
	}
	h := &Handler{cfg: cfg, log: cfg.Logger}
	chain := []Middleware{h.countConsumed, h.recordDecodeFailure}
	if cfg.FromParking {
		chain = append(chain, waitForRegion)
	}
	if cfg.Parking != nil {
		chain = append(chain, h.park)
	}
	h.handle = h.detect
	for i := len(chain) - 1; i >= 0; i-- {
		h.handle = chain[i](h.handle)
	}
	return h
}

// Route serialises work per signatureId, so one signatureId is never searched twice at once: the
// decoded event's signatureId, never the message key. Producers are asked to key by the
// signatureId, but any producer sets the key it likes: copies of one verification under several keys
// land on several partitions, and keyed by their key they would be searched (and billed) at once.
// A key that is neither empty nor the signatureId is counted (doppel_event_key_mismatches_total).
// An undecodable event is keyed by the signatureId it still carried, else by its bytes. The
// decoded event travels with the message to Handle (consumer.Message.Routed).
func (p *Handler) Route(msg kafka.Message) ([]byte, any) {
	d := p.deliver(msg)
	sig := d.Event.SignatureID
	if d.Err != nil {
		sig = ""
		var de *duplicate.DecodeError
		if errors.As(d.Err, &de) {
			sig = de.SignatureID
		}
	}
	if sig == "" {
		return msg.Value, d
	}
	if len(msg.Key) > 0 && string(msg.Key) != sig && !p.cfg.FromParking {
		p.cfg.Metrics.EventKeyMismatch()
	}
	return []byte(sig), d
}

// deliver decodes msg into a Delivery.
func (p *Handler) deliver(msg kafka.Message) *Delivery {
	ev, reg, err := p.decode(msg)
	return &Delivery{Msg: msg, Event: ev, Region: reg, Err: err, Source: sourceOf(msg, p.cfg.FromParking)}
}

// Handle is the consumer's handler for one event: see the type's doc. It is idempotent, as
// consumer.Handler must be.
func (p *Handler) Handle(ctx context.Context, msg consumer.Message) error {
	d, ok := msg.Routed.(*Delivery)
	if !ok { // a consumer without Route (tests): decode here
		d = p.deliver(msg.Message)
	}
	return p.handle(ctx, d)
}

// countConsumed counts the event as consumed, once: an event taken again from a parking topic was
// counted when first taken from the events topic.
func (p *Handler) countConsumed(next EventHandler) EventHandler {
	if p.cfg.FromParking {
		return next
	}
	return func(ctx context.Context, d *Delivery) error {
		p.cfg.Metrics.EventConsumed()
		return next(ctx, d)
	}
}

// recordDecodeFailure stops an event that is not usable: its failure is recorded against its
// signatureId when it carried one, and the decode error goes back to the consumer (a dead letter).
func (p *Handler) recordDecodeFailure(next EventHandler) EventHandler {
	return func(ctx context.Context, d *Delivery) error {
		if d.Err == nil {
			return next(ctx, d)
		}
		var de *duplicate.DecodeError
		if errors.As(d.Err, &de) && de.SignatureID != "" {
			if rerr := p.cfg.Detector.RecordFailure(ctx, de.SignatureID, d.Event.Region, de.Reason+": "+de.Detail, d.Source); rerr != nil {
				var refused *duplicate.PermanentFailure
				if errors.As(rerr, &refused) { // dead-lettered check_refused, still naming the event's fault
					return &duplicate.PermanentFailure{Reason: refused.Reason, Err: fmt.Errorf("%w; the event: %w", refused.Err, d.Err)}
				}
				return rerr
			}
			p.cfg.Metrics.Outcome(string(duplicate.OutcomeFailed))
		}
		return d.Err
	}
}

// waitForRegion holds a parking topic's event, before any work, while its region cannot take
// calls: it waits for nothing else.
func waitForRegion(next EventHandler) EventHandler {
	return func(ctx context.Context, d *Delivery) error {
		if err := d.Region.WaitUsable(ctx); err != nil {
			return err
		}
		return next(ctx, d)
	}
}

// park moves an event of a region that cannot take it now, or whose vendor calls failed with the
// region's trouble, to the region's parking topic; the share bounds the events at the region's
// vendor, which an event leaves when its vendor calls are over, not when its check is stored.
func (p *Handler) park(next EventHandler) EventHandler {
	return func(ctx context.Context, d *Delivery) error {
		if !p.cfg.Parking.enter(d.Region) {
			return p.cfg.Parking.park(ctx, d.Msg, d.Region, "region cannot take events now")
		}
		leave := sync.OnceFunc(func() { p.cfg.Parking.leave(d.Region) })
		defer leave()
		err := next(duplicate.WithVendorPhaseEnd(ctx, leave), d)
		if err != nil && regionTrouble(err) {
			return p.cfg.Parking.park(ctx, d.Msg, d.Region, err.Error())
		}
		return err
	}
}

// detect is the plain handler: the detector's rules on one event in its region's account, the
// outcome counted and logged, a committed alert handed to the relay.
func (p *Handler) detect(ctx context.Context, d *Delivery) error {
	ev, msg := d.Event, d.Msg
	res, err := p.cfg.Detector.Handle(ctx, ev, d.Region, d.Source)
	if err != nil {
		if res.Outcome == duplicate.OutcomeFailed { // a permanent failure, recorded against the check
			p.cfg.Metrics.Outcome(string(duplicate.OutcomeFailed))
		}
		return err
	}
	// Checked first: a logger derived per event (With) formats its attributes even when the line
	// is then dropped, and at thousands of events a second that was a visible share of the CPU.
	if res.AlreadyStored {
		if res.Outcome == duplicate.OutcomeErased {
			// The person was erased: skipped with no vendor call and nothing stored.
			p.cfg.Metrics.Outcome(string(duplicate.OutcomeErased))
			return nil
		}
		p.cfg.Metrics.Outcome("already_stored")
		if p.log.Enabled(ctx, slog.LevelDebug) {
			p.log.Debug("already stored, not searched again", "signature_id", ev.SignatureID,
				"partition", msg.Partition, "offset", msg.Offset, "outcome", res.Outcome)
		}
		return nil
	}
	p.cfg.Metrics.Outcome(string(res.Outcome))
	if len(res.UnusableUserIDs) > 0 {
		p.log.Warn("face search named ids that are not valid userIds: neither stored nor linked",
			"signature_id", ev.SignatureID, "count", len(res.UnusableUserIDs), "first_user_id", clip.Bytes(res.UnusableUserIDs[0], 64))
	}
	if p.log.Enabled(ctx, slog.LevelInfo) {
		p.log.Info("check stored", "signature_id", ev.SignatureID, "partition", msg.Partition, "offset", msg.Offset,
			"outcome", res.Outcome, "vendor_transaction_id", res.VendorTransactionID, "new_links", len(res.Saved.NewLinks))
	}
	if res.Saved.Alert != nil {
		p.cfg.OnAlert(*res.Saved.Alert)
	}
	return nil
}

// decode parses the event and resolves its region: the event's region field, else the Kafka header
// region, else the default region. The header is held to the identifier rule like every field
// (invalid_header); an unconfigured region is a *duplicate.DecodeError with reason unknown_region
// (the returned event then carries the region as given, to record the failure).
func (p *Handler) decode(msg kafka.Message) (duplicate.Event, *region.Region, error) {
	ev, err := duplicate.DecodeEvent(msg.Value, p.cfg.EventOptions)
	if err != nil {
		// The failure is recorded in the default region: an unusable event's region is unknown.
		ev.Region = p.cfg.Regions.Default().Name
		return ev, nil, err
	}
	header, err := duplicate.CheckHeader(region.HeaderRegion, region.Header(msg.Headers, region.HeaderRegion),
		duplicate.MaxRegionLen, ev.SignatureID)
	if err != nil {
		ev.Region = p.cfg.Regions.Default().Name
		return ev, nil, err
	}
	reg, err := p.cfg.Regions.Resolve(ev.Region, header)
	if err != nil {
		var unknown *region.UnknownError
		errors.As(err, &unknown)
		ev.Region = strings.ToValidUTF8(clip.Bytes(unknown.Region, duplicate.MaxRegionLen), "")
		return ev, nil, &duplicate.DecodeError{Reason: duplicate.ReasonUnknownRegion, Field: "region", Detail: err.Error(), SignatureID: ev.SignatureID}
	}
	ev.Region = reg.Name
	return ev, reg, nil
}

// regionTrouble reports whether err says the region's vendor cannot take events now (down, busy,
// account unusable, budget spent), as opposed to a problem of the event or of our database.
func regionTrouble(err error) bool {
	switch duplicate.KindOf(err) {
	case duplicate.FailureTransient, duplicate.FailureRateLimited, duplicate.FailureAccount:
		return true
	}
	return false
}
