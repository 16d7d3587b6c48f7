package deadletter

import (
	"github.com/doppelhq/doppel/internal/consumer"
	"github.com/doppelhq/doppel/internal/duplicate"
)

// Reason is one reason a message can be dead-lettered (the doppel-dlq-reason header).
type Reason struct {
	// Name is the stable snake_case word in the header, the metric label and `--reason`.
	Name string
	// Meaning says what went wrong, for the docs and `doppel dlq replay --help`.
	Meaning string
	// Replayable is true when replaying the letter unchanged can succeed once something outside
	// it changed (a region configured, the vendor back, the database fixed); false when the bytes
	// themselves are at fault and only a corrected copy can succeed.
	Replayable bool
}

// Table is every dead-letter reason the pipeline writes: the decoder's, the detector's permanent
// failures, the service's catch-all for permanent vendor errors, and the consumer's exhausted
// retries. It is the one list: Reasons, doppel_dead_letters_total's series, `doppel dlq replay
// --reason` and the docs derive from it, and a test checks that every reason the code can write
// is here.
var Table = []Reason{
	{duplicate.ReasonTooLarge, "the message is larger than DOPPEL_MAX_EVENT_BYTES", true},
	{duplicate.ReasonInvalidJSON, "the message is not a JSON object", false},
	{duplicate.ReasonInvalidUTF8, "the message is not valid UTF-8 text", false},
	{duplicate.ReasonWrongFieldType, "a field has the wrong JSON type (a number where a string belongs)", false},
	{duplicate.ReasonMissingSignatureID, "signatureId is missing or empty", false},
	{duplicate.ReasonInvalidSignatureID, "signatureId is too long or holds an invisible character (control, format, bidi, zero-width)", false},
	{duplicate.ReasonMissingType, "type is missing or empty", false},
	{duplicate.ReasonInvalidField, "a field (named in the error) is too long or holds an invisible character", false},
	{duplicate.ReasonInvalidHeader, "a Kafka header Doppel reads (region) is too long or holds an invisible character", false},
	{duplicate.ReasonUnknownEventType, "type is not COMPLETED or SUBMIT_COMPLETED (DOPPEL_REJECT_UNKNOWN_TYPES)", true},
	{duplicate.ReasonUnknownRegion, "the event names a vendor region that is not configured (DOPPEL_ADVANCE_REGIONS)", true},
	{duplicate.ReasonMissingUserID, "neither the event nor the vendor's get-result names the user", true},
	{duplicate.ReasonInvalidUserID, "the vendor's get-result names a userId that breaks the userId rule", false},
	{duplicate.ReasonCheckRefused, "PostgreSQL refused the check's data for good (even its failure record)", false},
	{duplicate.ReasonVendorRejected, "the vendor refused this signatureId for good", true},
	{duplicate.ReasonPermanentFailure, "any other permanent vendor failure", true},
	{consumer.ReasonRetriesExhausted, "transient failures outlasted the retry budget (DOPPEL_RETRY_*)", true},
}

// Reasons are the names of Table, in its order: what `doppel dlq replay --reason` accepts and
// what doppel_dead_letters_total has a series for from start.
var Reasons = names(Table)

func names(table []Reason) []string {
	out := make([]string, len(table))
	for i, r := range table {
		out[i] = r.Name
	}
	return out
}

// Lookup returns the reason named name.
func Lookup(name string) (Reason, bool) {
	for _, r := range Table {
		if r.Name == name {
			return r, true
		}
	}
	return Reason{}, false
}
