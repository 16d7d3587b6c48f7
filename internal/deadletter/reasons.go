package deadletter

import (
	"github.com/doppelhq/doppel/internal/consumer"
	"github.com/doppelhq/doppel/internal/duplicate"
)

// Reasons are the dead-letter reasons the pipeline writes (the doppel-dlq-reason header): the
// decoder's, the detector's permanent failures, the service's catch-all for permanent vendor
// errors, and the consumer's exhausted retries. `doppel dlq replay --reason` accepts only these,
// and doppel_dead_letters_total has a series for each from start.
var Reasons = []string{
	duplicate.ReasonTooLarge,
	duplicate.ReasonInvalidJSON,
	duplicate.ReasonWrongFieldType,
	duplicate.ReasonMissingSignatureID,
	duplicate.ReasonInvalidSignatureID,
	duplicate.ReasonMissingType,
	duplicate.ReasonInvalidField,
	duplicate.ReasonUnknownEventType,
	duplicate.ReasonUnknownRegion, // the event names a vendor region that is not configured
	duplicate.ReasonMissingUserID,
	duplicate.ReasonVendorRejected,
	duplicate.ReasonPermanentFailure, // any other permanent vendor failure
	consumer.ReasonRetriesExhausted,
}
