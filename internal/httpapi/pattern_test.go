package httpapi

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf16"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/duplicate"
)

// identifierPattern is a "pattern" of the OpenAPI description whose negated class starts with the
// control characters: the identifier rule. param marks a path or query parameter's.
type identifierPattern struct {
	pattern string
	param   bool
}

// patterns returns every identifier pattern of the OpenAPI description.
func patterns(t *testing.T) []identifierPattern {
	var out []identifierPattern
	var walk func(v any, param bool)
	walk = func(v any, param bool) {
		switch v := v.(type) {
		case map[string]any:
			if _, ok := v["in"]; ok { // a parameter object
				param = true
			}
			if p, ok := v["pattern"].(string); ok && strings.HasPrefix(p, `^[^\u0000-\u001F`) {
				out = append(out, identifierPattern{p, param})
			}
			for _, x := range v {
				walk(x, param)
			}
		case []any:
			for _, x := range v {
				walk(x, param)
			}
		}
	}
	var spec any
	require.NoError(t, json.Unmarshal(openAPISpec, &spec))
	walk(spec, false)
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
// class refuses exactly the characters duplicate.Invisible refuses in the Basic Multilingual Plane.
// The format characters beyond it (tag characters such as U+E0043) the server refuses too, but a
// pattern cannot name them: schemathesis, and JSON Schema tools without Unicode regexps, refuse such
// a pattern as invalid. scripts/schemathesis_hooks.py leaves those characters out of generated
// cases for that reason, and TestInvisibleRefusesEveryFormatCharacter checks them in the code.
func TestTheSpecsIdentifierPatternIsTheCodesRule(t *testing.T) {
	t.Parallel()
	ps := patterns(t)
	require.GreaterOrEqual(t, len(ps), 8, "userId, signatureId, reviewer parameters and fields")
	classes := map[string][][2]rune{}
	for _, p := range ps {
		classes[p.pattern[:strings.Index(p.pattern, "]")]] = classRanges(t, p.pattern)
	}
	for key, ranges := range classes {
		for r := rune(0); r <= 0xFFFF; r++ {
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
				t.Fatalf("%U: the pattern %s... says %v, duplicate.Invisible %v", r, key[:20], in, duplicate.Invisible(r))
			}
		}
	}
}

// Every format character of every plane is invisible to the identifier rule, the tag characters
// above the Basic Multilingual Plane included (schemathesis found U+E0043 in a type): the list
// scripts/schemathesis_hooks.py keeps out of generated cases is exactly these.
func TestInvisibleRefusesEveryFormatCharacter(t *testing.T) {
	t.Parallel()
	for r := rune(0x10000); r <= unicode.MaxRune; r++ {
		if unicode.Is(unicode.Cf, r) {
			require.True(t, duplicate.Invisible(r), "%U", r)
		}
	}
	hooks, err := os.ReadFile("../../scripts/schemathesis_hooks.py")
	require.NoError(t, err)
	for _, rt := range unicode.Cf.R32 {
		require.Contains(t, string(hooks), fmt.Sprintf("(0x%X, 0x%X, %d)", rt.Lo, rt.Hi, rt.Stride),
			"scripts/schemathesis_hooks.py lists the format characters beyond the BMP as Go's tables do")
	}
}
