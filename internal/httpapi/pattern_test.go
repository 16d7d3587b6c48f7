package httpapi

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf16"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/duplicate"
)

// patterns returns every "pattern" in the OpenAPI description whose negated class starts with the
// control characters: the identifier rule.
func patterns(t *testing.T) []string {
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if p, ok := v["pattern"].(string); ok && strings.HasPrefix(p, `^[^\u0000-\u001F`) {
				out = append(out, p)
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	var spec any
	require.NoError(t, json.Unmarshal(openAPISpec, &spec))
	walk(spec)
	return out
}

// classRanges returns the ranges of the negated class that starts pattern ("^[^...]"), written
// with \uXXXX escapes, ranges and literal characters (those outside the Basic Multilingual Plane).
func classRanges(t *testing.T, pattern string) [][2]rune {
	class := pattern[len("^[^"):strings.Index(pattern, "]")]
	var runes []rune
	for class != "" {
		if strings.HasPrefix(class, `\u`) {
			n, err := strconv.ParseUint(class[2:6], 16, 32)
			require.NoError(t, err, pattern)
			runes = append(runes, rune(n))
			class = class[6:]
			continue
		}
		c := []rune(class)[0]
		runes = append(runes, c)
		class = class[len(string(c)):]
	}
	var out [][2]rune
	for i := 0; i < len(runes); i++ {
		lo, hi := runes[i], runes[i]
		if i+2 < len(runes) && runes[i+1] == '-' {
			hi = runes[i+2]
			i += 2
		}
		out = append(out, [2]rune{lo, hi})
	}
	return out
}

// The OpenAPI description states the identifier rule as a pattern, so a client can check it: its
// class refuses exactly the characters duplicate.Invisible refuses, in every plane (schemathesis
// found a tag character, U+E0043, that the pattern let through and the server refused).
func TestTheSpecsIdentifierPatternIsTheCodesRule(t *testing.T) {
	t.Parallel()
	ps := patterns(t)
	require.GreaterOrEqual(t, len(ps), 8, "userId, signatureId, reviewer parameters and fields")
	classes := map[string][][2]rune{}
	for _, p := range ps {
		classes[p[:strings.Index(p, "]")]] = classRanges(t, p)
	}
	for prefix, ranges := range classes {
		for r := rune(0); r <= unicode.MaxRune; r++ {
			if utf16.IsSurrogate(r) {
				continue
			}
			in := false
			for _, rg := range ranges {
				if rg[0] <= r && r <= rg[1] {
					in = true
					break
				}
			}
			if in != duplicate.Invisible(r) {
				t.Fatalf("%U: the pattern %s... says %v, duplicate.Invisible %v", r, prefix[:20], in, duplicate.Invisible(r))
			}
		}
	}
}
