package service

import (
	"log/slog"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/doppelhq/doppel/internal/config"
	"github.com/doppelhq/doppel/internal/consumer"
	"github.com/doppelhq/doppel/internal/metrics"
	"github.com/doppelhq/doppel/internal/pipeline"
)

// parkedObserver counts what a parking topic's consumer finishes, retries and dead-letters with
// the events consumer's metrics, but leaves the in-flight and per-partition progress gauges to the
// events consumer: they are the events topic's, and a parked region's waiting is reported by
// doppel_region_parking and /readyz instead.
type parkedObserver struct{ m *metrics.Metrics }

func (o parkedObserver) Finished(topic string, partition int, deadLettered bool, reason string) {
	o.m.Finished(topic, partition, deadLettered, reason)
}

func (o parkedObserver) DeadLetterUnwritable(topic string, partition int, reason string) {
	o.m.DeadLetterUnwritable(topic, partition, reason)
}

func (o parkedObserver) Retried(action, reason string)            { o.m.Retried(action, reason) }
func (parkedObserver) InFlight(int)                               {}
func (parkedObserver) PartitionProgress(int, time.Duration, bool) {}

// parkedConsumerConfig configures the consumer of region's parking topic: its own group, its share
// of the workers, waiting instead of retrying (ClassifyParked), and metrics that leave the events
// topic's gauges alone (parkedObserver).
func parkedConsumerConfig(cfg config.Config, regionName string, log *slog.Logger, m *metrics.Metrics,
	route func(kafka.Message) ([]byte, any)) consumer.Config {
	c := consumerConfig(cfg, pipeline.ParkingGroup(cfg.KafkaGroupID, regionName), pipeline.ParkingTopic(cfg.TopicEvents, regionName),
		max(1, cfg.Workers/len(cfg.RegionNames())), log.With("component", "parked-consumer", "region", regionName), m, route)
	c.Classify = pipeline.ClassifyParked
	c.Observer = parkedObserver{m}
	return c
}
