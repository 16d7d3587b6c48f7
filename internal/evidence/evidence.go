// Package evidence is what the review console shows beside a ring: the face and the document data
// the vendor's get-result returns for each account's verification, and what two accounts' records
// say about each other (Suggest). It is personal data, so it is fetched when an analyst opens a
// ring, kept in memory for a few minutes (Cache), never written to PostgreSQL or to a log, and each
// view is recorded (LogViews) with pseudonyms for the people seen.
package evidence

import (
	"strings"
	"unicode"
)

// Record is the evidence of one account: what the vendor read on the document of its latest
// verification, and the face captured. Fields the vendor did not return are empty.
type Record struct {
	UserID      string
	SignatureID string
	Region      string
	// OverallResult is the verification's verdict: PASS, FAIL or INCOMPLETE.
	OverallResult string
	FullName      string
	BirthDate     string
	IDNumber      string
	DocType       string
	// Face is the picture's bytes and FaceType its media type ("image/png"); Face is nil when the
	// vendor returned no usable picture.
	Face     []byte
	FaceType string
	// FaceHandle is the unguessable name the console serves the face under while it is cached.
	FaceHandle string
}

// HasDocument reports whether the record holds anything read from a document.
func (r *Record) HasDocument() bool {
	return r != nil && (r.FullName != "" || r.BirthDate != "" || r.IDNumber != "")
}

// Verdict is the kind of a Suggestion.
type Verdict string

// Verdicts, from what the two records say.
const (
	// VerdictSamePerson: one document number on both, with the same name and birth date: most
	// likely the same person coming back under a second account.
	VerdictSamePerson Verdict = "same_person"
	// VerdictTamperedDocument: one document number, but a different name or birth date.
	VerdictTamperedDocument Verdict = "tampered_document"
	// VerdictDifferentIdentities: two document numbers and a different name or birth date on one
	// face: the classic duplicate-account fraud.
	VerdictDifferentIdentities Verdict = "different_identities"
	// VerdictSameIdentityNewDocument: the same name and birth date on two document numbers.
	VerdictSameIdentityNewDocument Verdict = "same_identity_new_document"
	// VerdictUnknown: a record is missing, so nothing can be said.
	VerdictUnknown Verdict = "unknown"
)

// Suggestion is what two records of one face say, for an analyst to weigh: a suggestion, never a
// decision.
type Suggestion struct {
	Verdict Verdict
	// Text says it in a sentence for the page.
	Text string
	// Differs names the fields that differ ("name", "birth date", "document number").
	Differs []string
}

// Suggest compares the records of two accounts that share a face.
func Suggest(a, b *Record) Suggestion {
	if !a.HasDocument() || !b.HasDocument() {
		return Suggestion{Verdict: VerdictUnknown, Text: "No document data to compare: decide on the face and the history."}
	}
	var differs []string
	if !sameText(a.FullName, b.FullName) {
		differs = append(differs, "name")
	}
	if !sameText(a.BirthDate, b.BirthDate) {
		differs = append(differs, "birth date")
	}
	if normalizeNumber(a.IDNumber) == "" || normalizeNumber(b.IDNumber) == "" {
		// Without both numbers, only the name and birth date can be compared.
		if len(differs) > 0 {
			return Suggestion{Verdict: VerdictDifferentIdentities, Differs: differs,
				Text: "One face, different " + joinList(differs) + " (no document number to compare): the classic duplicate-account fraud."}
		}
		return Suggestion{Verdict: VerdictUnknown,
			Text: "Same name and birth date, but no document number to compare: decide on the face and the history."}
	}
	sameNumber := normalizeNumber(a.IDNumber) == normalizeNumber(b.IDNumber)
	switch {
	case sameNumber && len(differs) == 0:
		return Suggestion{Verdict: VerdictSamePerson,
			Text: "Same document number, name and birth date: likely the same person coming back with a second account."}
	case sameNumber:
		return Suggestion{Verdict: VerdictTamperedDocument, Differs: differs,
			Text: "Same document number but a different " + strings.Join(differs, " and ") + ": a misread or altered document; look at both."}
	case len(differs) > 0:
		differs = append(differs, "document number")
		return Suggestion{Verdict: VerdictDifferentIdentities, Differs: differs,
			Text: "One face, different " + joinList(differs) + ": the classic duplicate-account fraud."}
	default:
		return Suggestion{Verdict: VerdictSameIdentityNewDocument, Differs: []string{"document number"},
			Text: "Same name and birth date on another document number: possibly the same person with a renewed document."}
	}
}

// sameText compares two values as a person would read them: case and spacing do not matter.
func sameText(a, b string) bool {
	return strings.EqualFold(strings.Join(strings.Fields(a), " "), strings.Join(strings.Fields(b), " "))
}

// normalizeNumber drops the separators a document number is written with.
func normalizeNumber(s string) string {
	return strings.ToUpper(strings.Map(func(r rune) rune {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			return r
		}
		return -1
	}, s))
}

// joinList joins "a", "b" and "c" as "a, b and c".
func joinList(xs []string) string {
	if len(xs) < 2 {
		return strings.Join(xs, "")
	}
	return strings.Join(xs[:len(xs)-1], ", ") + " and " + xs[len(xs)-1]
}
