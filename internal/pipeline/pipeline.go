// Package pipeline handles the events consumer's messages: it decodes an "H5 IDV completed" event
// (once: the routing key reuses the decoded event), resolves its vendor region, parks it when that
// region cannot take it (see Parking), runs the detector, counts the outcome and nudges the relay
// when an alert is waiting. Classify says what a handler error means for the message: the one place
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

// Handler is the consumer's handler: decode, detect, nudge the relay.
type Handler struct {
	cfg Config
	log *slog.Logger
	// pending holds the events RouteKey decoded, by position, until Handle takes them.
	pending sync.Map // position -> decodedEvent
}

// New returns a Handler for cfg.
func New(cfg Config) *Handler {
	if cfg.OnAlert == nil {
		cfg.OnAlert = func(duplicate.Alert) {}
	}
	return &Handler{cfg: cfg, log: cfg.Logger}
}

type position struct {
	topic     string
	partition int
	offset    int64
}

type decodedEvent struct {
	ev     duplicate.Event
	region *region.Region
	err    error
}

// RouteKey serialises work per signatureId, so one signatureId is never searched twice at once:
// the decoded event's signatureId, never the message key. Producers are asked to key by the
// signatureId, but any producer sets the key it likes: copies of one verification under several keys
// land on several partitions, and keyed by their key they would be searched (and billed) at once.
// A key that is neither empty nor the signatureId is counted (doppel_event_key_mismatches_total).
// An undecodable event is keyed by the signatureId it still carried, else by its bytes. The event is
// decoded here once and kept for Handle, which does not parse the message again.
func (p *Handler) RouteKey(msg kafka.Message) []byte {
	ev, reg, err := p.decode(msg)
	p.pending.Store(position{msg.Topic, msg.Partition, msg.Offset}, decodedEvent{ev, reg, err})
	sig := ev.SignatureID
	var de *duplicate.DecodeError
	if err != nil {
		sig = ""
		if errors.As(err, &de) {
			sig = de.SignatureID
		}
	}
	if sig == "" {
		return msg.Value
	}
	if len(msg.Key) > 0 && string(msg.Key) != sig && !p.cfg.FromParking {
		p.cfg.Metrics.EventKeyMismatch()
	}
	return []byte(sig)
}

// decoded returns the event RouteKey decoded for msg, or decodes it (a keyed message, or a retry).
func (p *Handler) decoded(msg kafka.Message) (duplicate.Event, *region.Region, error) {
	if d, ok := p.pending.LoadAndDelete(position{msg.Topic, msg.Partition, msg.Offset}); ok {
		d := d.(decodedEvent)
		return d.ev, d.region, d.err
	}
	return p.decode(msg)
}

// Handle is the consumer's handler for one event: see the package doc. It is idempotent, as
// consumer.Handler must be.
func (p *Handler) Handle(ctx context.Context, msg kafka.Message) error {
	if !p.cfg.FromParking {
		p.cfg.Metrics.EventConsumed()
	}
	src := sourceOf(msg, p.cfg.FromParking)
	ev, reg, err := p.decoded(msg)
	if err != nil {
		var de *duplicate.DecodeError
		if errors.As(err, &de) && de.SignatureID != "" {
			if rerr := p.cfg.Detector.RecordFailure(ctx, de.SignatureID, ev.Region, de.Reason+": "+de.Detail, src); rerr != nil {
				var refused *duplicate.PermanentFailure
				if errors.As(rerr, &refused) { // dead-lettered check_refused, still naming the event's fault
					return &duplicate.PermanentFailure{Reason: refused.Reason, Err: fmt.Errorf("%w; the event: %w", refused.Err, err)}
				}
				return rerr
			}
			p.cfg.Metrics.Outcome(string(duplicate.OutcomeFailed))
		}
		return err
	}
	if p.cfg.FromParking {
		if err := reg.WaitUsable(ctx); err != nil {
			return err
		}
	}
	if p.cfg.Parking != nil {
		if !p.cfg.Parking.enter(reg) {
			return p.cfg.Parking.park(ctx, msg, reg, "region cannot take events now")
		}
		// The share bounds the events at the region's vendor: the event leaves it when its vendor
		// calls are over, not when its check is stored.
		leave := sync.OnceFunc(func() { p.cfg.Parking.leave(reg) })
		defer leave()
		ctx = duplicate.WithVendorPhaseEnd(ctx, leave)
	}
	res, err := p.cfg.Detector.Handle(ctx, ev, src)
	if err != nil && p.cfg.Parking != nil && regionTrouble(err) {
		return p.cfg.Parking.park(ctx, msg, reg, err.Error())
	}
	if err != nil {
		if res.Outcome == duplicate.OutcomeFailed { // a permanent failure, recorded against the check
			p.cfg.Metrics.Outcome(string(duplicate.OutcomeFailed))
		}
		return err
	}
	// Checked first: a logger derived per event (With) formats its attributes even when the line
	// is then dropped, and at thousands of events a second that was a visible share of the CPU.
	if res.AlreadyStored {
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
			"signature_id", ev.SignatureID, "count", len(res.UnusableUserIDs), "first", clip.Bytes(res.UnusableUserIDs[0], 64))
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
