package duplicate

import (
	"unicode"
	"unicode/utf8"
)

// ValidUserID reports whether s can be a userId: 1..256 UTF-8 characters without control
// characters, the same rule the event decoder applies.
func ValidUserID(s string) bool { return validID(s, maxUserIDLen) }

// ValidSignatureID reports whether s can be a signatureId: 1..128 UTF-8 characters without control
// characters.
func ValidSignatureID(s string) bool { return validID(s, maxSignatureIDLen) }

// Bounds exported for the API's input checks and its OpenAPI description.
const (
	MaxUserIDLen      = maxUserIDLen
	MaxSignatureIDLen = maxSignatureIDLen
	MaxNoteLen        = 2000
	MaxRegionLen      = maxRegionLen
)

// validID reports whether s is 1..maxLen characters of valid UTF-8 without control characters
// (Unicode Cc: C0, DEL and C1). The rule is the one the OpenAPI description states as a pattern, so
// API clients can check it; it keeps NUL (which PostgreSQL cannot store) and terminal escapes out,
// and bounds the size at 4*maxLen bytes.
func validID(s string, maxLen int) bool {
	if s == "" || !utf8.ValidString(s) || utf8.RuneCountInString(s) > maxLen {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// validOptional is validID that also accepts the empty string.
func validOptional(s string, maxLen int) bool { return s == "" || validID(s, maxLen) }

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
