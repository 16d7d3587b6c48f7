package httpapi

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
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

// inClass reports whether r is in the negated class that starts pattern ("^[^...]"), written with
// \uXXXX escapes, single characters and ranges.
func inClass(t *testing.T, pattern string, r rune) bool {
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
	for i := 0; i < len(runes); i++ {
		lo, hi := runes[i], runes[i]
		if i+2 < len(runes) && runes[i+1] == '-' {
			hi = runes[i+2]
			i += 2
		}
		if lo <= r && r <= hi {
			return true
		}
	}
	return false
}

// The OpenAPI description states the identifier rule as a pattern, so a client can check it: its
// class refuses exactly the characters duplicate.Invisible refuses, for every character of the
// Basic Multilingual Plane (JSON Schema patterns cannot name the others portably; the server
// refuses those too).
func TestTheSpecsIdentifierPatternIsTheCodesRule(t *testing.T) {
	t.Parallel()
	ps := patterns(t)
	require.GreaterOrEqual(t, len(ps), 8, "userId, signatureId, reviewer parameters and fields")
	for _, p := range ps {
		for r := rune(0); r <= 0xFFFF; r++ {
			if utf16.IsSurrogate(r) {
				continue
			}
			require.Equal(t, duplicate.Invisible(r), inClass(t, p, r), "%U in %s", r, p)
		}
	}
}
