package pipeline

import (
	"github.com/doppelhq/doppel/internal/consumer"
	"github.com/doppelhq/doppel/internal/duplicate"
)

// ClassifyParked maps a handler error of a parking topic's consumer: its events wait for their
// region, so every vendor failure waits, never spending a retry budget that ends in a dead letter.
func ClassifyParked(err error) consumer.Classification {
	d := Classify(err)
	if d.Action == consumer.Retry {
		d.Action = consumer.Wait
	}
	return d
}

// Retries are the classifications Classify gives the failures the consumer tries again: the
// transient failure it retries and the failures it waits out, not the message's fault. Metrics
// creates doppel_consumer_retries_total's series for each at zero (the service passes them), so
// keep it in step with Classify and the reasons the pipeline's errors carry.
var Retries = []consumer.Classification{
	{Action: consumer.Retry, Reason: duplicate.ReasonTransientFailure},
	{Action: consumer.Wait, Reason: duplicate.ReasonVendorCircuitOpen},
	{Action: consumer.Wait, Reason: duplicate.ReasonVendorRateLimited},
	{Action: consumer.Wait, Reason: duplicate.ReasonVendorAccountUnusable},
	{Action: consumer.Wait, Reason: duplicate.ReasonDatabaseUnavailable},
}

// Classify maps a handler error to what the consumer does with the message, from the kind and
// reason the error carries (see duplicate.Failure): the one place a failure becomes an action.
func Classify(err error) consumer.Classification {
	d := consumer.Classification{Reason: duplicate.ReasonOf(err)}
	switch duplicate.KindOf(err) {
	case duplicate.FailurePermanent:
		d.Action = consumer.DeadLetter
	case duplicate.FailureTransient:
		d.Action = consumer.Retry
	default: // rate limited, account, store: not the message's fault
		d.Action = consumer.Wait
	}
	return d
}
