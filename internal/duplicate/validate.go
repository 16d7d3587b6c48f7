package duplicate

import (
	"fmt"
	"unicode"
	"unicode/utf8"
)

// ValidUserID reports whether s can be a userId: 1..256 UTF-8 characters, none of them invisible
// (see Invisible), the same rule the event decoder applies.
func ValidUserID(s string) bool { return validID(s, maxUserIDLen) }

// ValidSignatureID reports whether s can be a signatureId: 1..128 UTF-8 characters, none of them
// invisible (see Invisible).
func ValidSignatureID(s string) bool { return validID(s, maxSignatureIDLen) }

// Bounds exported for the API's input checks and its OpenAPI description.
const (
	MaxUserIDLen      = maxUserIDLen
	MaxSignatureIDLen = maxSignatureIDLen
	MaxNoteLen        = 2000
	MaxRegionLen      = maxRegionLen
)

// Invisible reports whether r has no business in an identifier because a reader cannot see it or
// it changes how its neighbours are shown: a control character (Unicode Cc: C0, DEL, C1; NUL above
// all, which PostgreSQL cannot store, and terminal escapes), a format character (Cf: the bidi
// overrides and isolates such as U+202E, which make "admin\u202egnp.exe" read "adminexe.png",
// zero-width spaces and joiners, the BOM, the tag characters), or a line or paragraph separator
// (Zl, Zp). The OpenAPI description states the same rule as a pattern (IdentifierPattern).
func Invisible(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || unicode.In(r, unicode.Zl, unicode.Zp)
}

// IDProblem says what is wrong with s as an identifier of at most maxLen characters, "" when
// nothing is: it is empty, too long, not UTF-8, or holds an invisible character (named with its
// code point, so the producer can find it).
func IDProblem(s string, maxLen int) string {
	switch {
	case s == "":
		return "it is empty"
	case !utf8.ValidString(s):
		return "it is not valid UTF-8"
	case utf8.RuneCountInString(s) > maxLen:
		return fmt.Sprintf("it is %d characters long, the bound is %d", utf8.RuneCountInString(s), maxLen)
	}
	for i, r := range []rune(s) {
		if Invisible(r) {
			return fmt.Sprintf("character %d is %U, a control, format (bidi, zero-width) or separator character", i+1, r)
		}
	}
	return ""
}

// validID reports whether s is 1..maxLen characters of valid UTF-8 without invisible characters:
// IDProblem finds nothing. It bounds the size at 4*maxLen bytes.
func validID(s string, maxLen int) bool {
	if s == "" || !utf8.ValidString(s) || utf8.RuneCountInString(s) > maxLen {
		return false
	}
	for _, r := range s {
		if Invisible(r) {
			return false
		}
	}
	return true
}

// validOptional is validID that also accepts the empty string.
func validOptional(s string, maxLen int) bool { return s == "" || validID(s, maxLen) }

// invalidField is the DecodeError for a field (or header) whose value breaks the identifier rule.
func invalidField(reason, field, value string, maxLen int, signatureID string) *DecodeError {
	return &DecodeError{Reason: reason, Field: field, SignatureID: signatureID,
		Detail: fmt.Sprintf("%s must be 1..%d visible characters: %s", field, maxLen, IDProblem(value, maxLen))}
}

// SplitUserIDs separates the ids of a vendor answer that can be userIds (ValidUserID) from those
// that cannot. The vendor returns the userIds its customer passed in, unchecked: one that holds a NUL
// or is not UTF-8 cannot even be stored (PostgreSQL refuses the whole check), and one that breaks
// the userId rule could never be looked up through the API. So it is not linked; the rest of the
// answer is. usable is ids itself when every id is valid.
func SplitUserIDs(ids []string) (usable, unusable []string) {
	for i, id := range ids {
		if ValidUserID(id) {
			continue
		}
		usable = append(make([]string, 0, len(ids)-1), ids[:i]...)
		unusable = append(unusable, id)
		for _, id := range ids[i+1:] {
			if ValidUserID(id) {
				usable = append(usable, id)
			} else {
				unusable = append(unusable, id)
			}
		}
		return usable, unusable
	}
	return ids, nil
}
