package relay

import (
	"context"
	"fmt"

	"github.com/segmentio/kafka-go"
)

// PublishOne writes one alert that is not a duplicate_face alert (callbacks_missing) to the alert
// topic with the same headers and acknowledgement, keyed by its type, and returns once the brokers
// acknowledged it.
func (r *Relay) PublishOne(ctx context.Context, alertID, alertType string, value []byte) error {
	err := r.writer.WriteMessages(ctx, kafka.Message{
		Key:   []byte(alertType),
		Value: value,
		Headers: []kafka.Header{
			{Key: "alert-id", Value: []byte(alertID)},
			{Key: "alert-type", Value: []byte(alertType)},
		},
	})
	if err != nil {
		return fmt.Errorf("write %s alert to %s: %w", alertType, r.cfg.Topic, err)
	}
	return nil
}
