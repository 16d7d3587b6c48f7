package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/doppelhq/doppel/internal/topic"
)

// brokerTimeout bounds each broker's answer to the start-up probe.
const brokerTimeout = 5 * time.Second

// probeBrokers asks each broker for the cluster's metadata and returns nil as soon as one answers,
// or an error saying, for each, what to check. It runs before `doppel serve` starts and in
// `doppel config check --connect`, so that a broker that is down is reported in words an operator
// acts on, not as kafka-go's dial error.
func probeBrokers(ctx context.Context, brokers []string) error {
	var errs []error
	for _, b := range brokers {
		ctx, cancel := context.WithTimeout(ctx, brokerTimeout)
		client, closeIdle := topic.NewClient([]string{b}, brokerTimeout)
		_, err := client.Metadata(ctx, &kafka.MetadataRequest{})
		closeIdle()
		cancel()
		if err == nil {
			return nil
		}
		errs = append(errs, brokerError(b, err))
	}
	return fmt.Errorf("no Kafka broker answers (DOPPEL_KAFKA_BROKERS=%s):\n  %w", strings.Join(brokers, ","),
		errors.Join(errs...))
}

// brokerError says what to check about broker's failure.
func brokerError(broker string, err error) error {
	var dns *net.DNSError
	var op *net.OpError
	var ke kafka.Error
	switch {
	case errors.As(err, &dns):
		return fmt.Errorf("broker host in %s does not resolve: check the name in DOPPEL_KAFKA_BROKERS", broker)
	case errors.As(err, &op) && op.Op == "dial" && !op.Timeout():
		return fmt.Errorf("broker at %s not available: is it running? (%v)", broker, op.Err)
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) || (op != nil && op.Timeout()):
		return fmt.Errorf("broker at %s did not answer within %s: is it reachable, and is it a Kafka listener's address?",
			broker, brokerTimeout)
	case errors.As(err, &ke):
		return fmt.Errorf("broker at %s answered %s: %s", broker, ke.Title(), ke.Description())
	default:
		return fmt.Errorf("broker at %s: %w", broker, err)
	}
}

// explainKafka rewrites a Kafka protocol error that stopped start-up (topic creation, for one) to
// say what the broker meant; other errors pass unchanged.
func explainKafka(err error, brokers []string) error {
	var ke kafka.Error
	if err == nil || !errors.As(err, &ke) {
		return err
	}
	return fmt.Errorf("%w (the broker at %s says: %s)", err, strings.Join(brokers, ","), ke.Description())
}
