package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/doppelhq/doppel/internal/consumer"
	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/pause"
	"github.com/doppelhq/doppel/internal/region"
	"github.com/doppelhq/doppel/internal/topic"
)

// Parking keeps one region's trouble from holding up the others (see docs/regions.md).
//
// The events consumer commits a partition's offset only as far as every earlier message of it is
// finished, and bounds the messages in flight. A region whose vendor is down would, if its events
// waited in place, pin the commits of every partition it has events in and soon fill the in-flight
// bound, stopping every region. So while a region cannot take events (its circuit is open or
// half-open, its vendor asked for a pause, its monthly budget is spent) or already holds the
// workers' share it may use, the events consumer writes the region's events to the region's
// parking topic and finishes them there: their offsets commit, and the other regions' events flow.
//
// Each region's parking topic has a consumer of its own (own group, own workers, own in-flight
// bound) that handles the events exactly as the events consumer would, except that a vendor
// failure makes it wait rather than retry a bounded number of times: an event there is only
// waiting for its region, so it is never dead-lettered for that. Face search is still made once
// per signatureId (a final outcome stops later events), and billed in its region.
//
// A region goes on parking its events until its parking topic is drained (the group committed up
// to its end), so an event never overtakes an earlier parked one of the same verification.

// Parking-topic headers: where the parked event came from, for the stored check's source.
const (
	HeaderParkedTopic     = "doppel-parked-source-topic"
	HeaderParkedPartition = "doppel-parked-source-partition"
	HeaderParkedOffset    = "doppel-parked-source-offset"
)

// drainPoll is how often a region's parked backlog is measured.
const drainPoll = time.Second

// ParkingTopic is the parking topic of region, named after the events topic (DOPPEL_TOPIC_EVENTS).
func ParkingTopic(eventsTopic, regionName string) string {
	return eventsTopic + ".parked." + regionName
}

// ParkingGroup is the consumer group of region's parking topic, named after the events consumer's
// group (DOPPEL_KAFKA_GROUP_ID).
func ParkingGroup(groupID, regionName string) string {
	return groupID + ".parked." + regionName
}

// ParkingConfig is what the parking needs of the settings.
type ParkingConfig struct {
	Brokers []string
	// EventsTopic and GroupID are the events consumer's: the regions' parking topics and groups
	// are named after them (ParkingTopic, ParkingGroup).
	EventsTopic string
	GroupID     string
	// Workers is the events consumer's: one region may have half of them at its vendor.
	Workers int
}

// RegionMetrics is what the parking reports of one region; metrics.Region implements it.
type RegionMetrics interface {
	// Parked counts an event moved to the region's parking topic.
	Parked()
	// SetParking says whether the region's events go through its parking topic.
	SetParking(on bool)
}

// Parking writes events of regions that cannot take them to their parking topics.
type Parking struct {
	cfg     ParkingConfig
	regions *region.Registry
	writer  *kafka.Writer
	states  map[string]*parkState
	// share is the most events one region may have at its vendor in the events consumer: the rest
	// of the workers stay free for the other regions when one answers slowly.
	share int64
	log   *slog.Logger
	// lagClient measures the parking topics' backlogs over connections kept between rounds.
	lagClient      *kafka.Client
	closeLagClient func()
}

type parkState struct {
	metrics  RegionMetrics
	draining atomic.Bool  // its parking topic holds events not yet processed
	atVendor atomic.Int64 // its events the events consumer took, until their vendor calls are over
	// writing counts parking writes in progress and written counts those done, so that a backlog
	// measured while an event was being parked is not taken for drained; mu orders a park's start
	// with the end of draining.
	mu               sync.Mutex
	writing, written atomic.Int64
}

// NewParking returns the parking of regions' events, every region assumed to have a backlog until
// measured; regionMetrics gives each region's metrics.
func NewParking(cfg ParkingConfig, regions *region.Registry, regionMetrics func(region string) RegionMetrics, log *slog.Logger) *Parking {
	lagClient, closeLagClient := topic.NewClient(cfg.Brokers, 10*time.Second)
	p := &Parking{cfg: cfg, regions: regions, states: map[string]*parkState{},
		share: int64(max(1, cfg.Workers/2)), log: log,
		lagClient: lagClient, closeLagClient: closeLagClient,
		// No writer-wide topic: each parked event names its region's. Murmur2 keeps the same
		// partition per signatureId, so order is kept.
		writer: topic.NewWriter(cfg.Brokers, "", topic.WriterConfig{BatchTimeout: 2 * time.Millisecond})}
	for _, name := range regions.Names() {
		st := &parkState{metrics: regionMetrics(name)}
		// Until the first measurement says otherwise, assume a backlog: a restart must not let new
		// events overtake parked ones.
		st.draining.Store(true)
		p.states[name] = st
	}
	return p
}

// enter decides whether the events consumer handles an event of r now (true; call leave when done)
// or parks it.
func (p *Parking) enter(r *region.Region) bool {
	st := p.states[r.Name]
	if st.draining.Load() || r.Ready() != nil {
		return false
	}
	if st.atVendor.Add(1) > p.share {
		st.atVendor.Add(-1)
		return false
	}
	return true
}

func (p *Parking) leave(r *region.Region) { p.states[r.Name].atVendor.Add(-1) }

// park writes msg to r's parking topic, retrying until the broker takes it or ctx ends. Once it
// returns nil the message is finished here; the region's backlog is marked so later events follow.
func (p *Parking) park(ctx context.Context, msg kafka.Message, r *region.Region, why string) error {
	st := p.states[r.Name]
	st.mu.Lock()
	st.writing.Add(1)
	st.draining.Store(true)
	st.mu.Unlock()
	defer st.writing.Add(-1)
	st.metrics.SetParking(true)
	headers := make([]kafka.Header, 0, len(msg.Headers)+4)
	for _, h := range msg.Headers {
		if h.Key != region.HeaderRegion && !strings.HasPrefix(h.Key, "doppel-parked-") {
			headers = append(headers, h)
		}
	}
	src := sourceOf(msg, false) // only the events topic parks (a parking topic's consumer has no Parking)
	headers = append(headers,
		kafka.Header{Key: region.HeaderRegion, Value: []byte(r.Name)},
		kafka.Header{Key: HeaderParkedTopic, Value: []byte(src.Topic)},
		kafka.Header{Key: HeaderParkedPartition, Value: []byte(strconv.Itoa(src.Partition))},
		kafka.Header{Key: HeaderParkedOffset, Value: []byte(strconv.FormatInt(src.Offset, 10))},
	)
	parked := kafka.Message{Topic: ParkingTopic(p.cfg.EventsTopic, r.Name), Key: msg.Key, Value: msg.Value, Headers: headers}
	wait := 100 * time.Millisecond
	for {
		err := p.writer.WriteMessages(ctx, parked)
		if err == nil {
			st.written.Add(1)
			st.metrics.Parked()
			p.log.Debug("parked", "region", r.Name, "partition", msg.Partition, "offset", msg.Offset, "why", why)
			return nil
		}
		p.log.Error("write to parking topic", "region", r.Name, "topic", parked.Topic, "error", err)
		if !pause.For(ctx, wait) {
			return fmt.Errorf("%w: park event of region %s: %w", duplicate.ErrStore, r.Name, ctx.Err())
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// Watch measures, every drainPoll until ctx ends, the parked backlog of every region that parked
// events, so that a region stops parking once its parking topic is drained; the caller measures
// once before the events consumer starts (Measure). A region that parks nothing costs no broker
// round trip.
func (p *Parking) Watch(ctx context.Context) error {
	t := time.NewTicker(drainPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		p.Measure(ctx)
	}
}

// Measure measures, once, the parked backlog of every region still marked as having one. Called
// before the events consumer starts, it spares the first events of a region with nothing parked
// a needless trip through its parking topic; a measurement that fails leaves parking on.
func (p *Parking) Measure(ctx context.Context) {
	for _, name := range p.regions.Names() {
		st := p.states[name]
		r, _ := p.regions.Lookup(name)
		if !st.draining.Load() {
			st.metrics.SetParking(r.Ready() != nil)
			continue
		}
		written := st.written.Load()
		lag, err := consumer.LagOf(ctx, p.lagClient, ParkingGroup(p.cfg.GroupID, name), ParkingTopic(p.cfg.EventsTopic, name))
		if err != nil {
			if ctx.Err() == nil {
				p.log.Warn("measure parked backlog", "region", name, "error", err)
			}
			continue // keep the last answer: parking on is the safe side
		}
		var backlog int64
		for _, n := range lag {
			backlog += n
		}
		st.mu.Lock()
		drained := backlog == 0 && st.writing.Load() == 0 && st.written.Load() == written
		st.draining.Store(!drained)
		st.mu.Unlock()
		st.metrics.SetParking(!drained || r.Ready() != nil)
	}
}

// Close closes the parking writer and the backlog client.
func (p *Parking) Close() error {
	p.closeLagClient()
	return p.writer.Close()
}

// sourceOf is where an event came from: on a parking topic, the events topic's position the
// parking headers name, else the message's own. The headers are believed only on a parking topic,
// which only Doppel writes, and only when they name a topic Kafka could hold: any producer can
// write headers on the events topic, and its record would otherwise name a source that never was.
func sourceOf(msg kafka.Message, fromParking bool) duplicate.Source {
	src := duplicate.Source{Topic: msg.Topic, Partition: msg.Partition, Offset: msg.Offset}
	if !fromParking {
		return src
	}
	topic := region.Header(msg.Headers, HeaderParkedTopic)
	part, perr := strconv.Atoi(region.Header(msg.Headers, HeaderParkedPartition))
	off, oerr := strconv.ParseInt(region.Header(msg.Headers, HeaderParkedOffset), 10, 64)
	if validTopicName(topic) && perr == nil && oerr == nil && part >= 0 && off >= 0 {
		src = duplicate.Source{Topic: topic, Partition: part, Offset: off}
	}
	return src
}

// validTopicName reports whether s can be a Kafka topic's name: 1..249 of [a-zA-Z0-9._-].
func validTopicName(s string) bool {
	if s == "" || len(s) > 249 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
