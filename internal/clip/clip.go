// Package clip shortens strings that go into logs, error messages, headers and reports, without
// splitting a UTF-8 sequence: the one cut every package uses.
package clip

import "unicode/utf8"

// Bytes returns s cut to at most n bytes, at the start of a UTF-8 sequence.
func Bytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := max(n, 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// Ellipsis returns s cut like Bytes, with "..." after it when anything was cut.
func Ellipsis(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return Bytes(s, n) + "..."
}
