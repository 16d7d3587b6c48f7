package relay

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/segmentio/kafka-go"

	"github.com/doppelhq/doppel/internal/duplicate"
)

// The alert topic's message format, written here and read back by the relay (readback.go): the key
// is the userId (the alert type for alerts about the pipeline itself), the value the alert's JSON,
// and the alertId travels in a header as well, so that reading the topic back to learn which
// alerts are on it decodes no JSON. Every alert Doppel has written carries both headers.
const (
	headerAlertID   = "alert-id"
	headerAlertType = "alert-type"
)

// Message returns the message that puts alert a on the alert topic.
func Message(a duplicate.Alert) (kafka.Message, error) {
	value, err := json.Marshal(a)
	if err != nil {
		return kafka.Message{}, fmt.Errorf("encode alert %s: %w", a.AlertID, err)
	}
	return kafka.Message{
		Key:   []byte(a.UserID),
		Value: value,
		Headers: []kafka.Header{
			{Key: headerAlertID, Value: []byte(a.AlertID)},
			{Key: headerAlertType, Value: []byte(a.Type)},
		},
	}, nil
}

// PublishOne writes one alert that is not a duplicate_face alert (callbacks_missing) to the alert
// topic with the same headers and acknowledgement, keyed by its type, and returns once the brokers
// acknowledged it.
func (r *Relay) PublishOne(ctx context.Context, alertID, alertType string, value []byte) error {
	err := r.writer.WriteMessages(ctx, kafka.Message{
		Key:   []byte(alertType),
		Value: value,
		Headers: []kafka.Header{
			{Key: headerAlertID, Value: []byte(alertID)},
			{Key: headerAlertType, Value: []byte(alertType)},
		},
	})
	if err != nil {
		return fmt.Errorf("write %s alert to %s: %w", alertType, r.cfg.Topic, err)
	}
	return nil
}
