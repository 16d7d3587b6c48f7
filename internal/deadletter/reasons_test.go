package deadletter

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// notDeadLetterReasons are failure reasons that only ever make a message retry or wait (see
// pipeline.Classify): none of them reaches the dead-letter topic.
var notDeadLetterReasons = map[string]bool{
	"transient_failure": true, "vendor_rate_limited": true, "vendor_account_unusable": true,
	"vendor_circuit_open": true, "region_budget_spent": true, "database_unavailable": true,
}

// Every reason constant the code declares (Reason* in the packages that fail messages) is in the
// table, unless it only ever retries or waits; and the table names no reason twice. A list kept by
// hand drifted before: invalid_utf8, invalid_user_id and check_refused were written and missing.
func TestTheTableHoldsEveryReasonTheCodeCanWrite(t *testing.T) {
	t.Parallel()
	declared := map[string]string{}
	for _, dir := range []string{"../duplicate", "../consumer", "../region", "../facesearch", "../pipeline"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		require.NoError(t, err)
		for _, path := range files {
			if strings.HasSuffix(path, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
			require.NoError(t, err)
			ast.Inspect(f, func(n ast.Node) bool {
				spec, ok := n.(*ast.ValueSpec)
				if !ok {
					return true
				}
				for i, name := range spec.Names {
					if !strings.HasPrefix(name.Name, "Reason") || i >= len(spec.Values) {
						continue
					}
					if lit, ok := spec.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						v, _ := strconv.Unquote(lit.Value)
						declared[v] = path + ": " + name.Name
					}
				}
				return true
			})
		}
	}
	require.NotEmpty(t, declared)
	seen := map[string]bool{}
	for _, r := range Table {
		require.False(t, seen[r.Name], "%s twice in the table", r.Name)
		seen[r.Name] = true
		require.NotEmpty(t, r.Meaning, r.Name)
		_, isDeclared := declared[r.Name]
		require.True(t, isDeclared, "%s is in the table but no code declares it", r.Name)
	}
	for reason, where := range declared {
		if !notDeadLetterReasons[reason] {
			require.True(t, seen[reason], "%s (%s) can be dead-lettered and is missing from deadletter.Table", reason, where)
		}
	}
	require.Equal(t, len(Table), len(Reasons))
}

// The reasons table of docs/contracts.md is derived from Table (make docs rewrites it).
func TestTheContractsListEveryReason(t *testing.T) {
	const path = "../../docs/contracts.md"
	const start = "<!-- dead-letter reasons: generated from internal/deadletter/reasons.go by TestTheContractsListEveryReason (make docs) -->\n"
	const end = "<!-- end of dead-letter reasons -->"
	var b strings.Builder
	b.WriteString(start + "\n| reason | meaning | replayable |\n|---|---|---|\n")
	for _, r := range Table {
		replay := "no"
		if r.Replayable {
			replay = "yes"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", r.Name, r.Meaning, replay)
	}
	b.WriteString("\n")
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	doc := string(raw)
	i, j := strings.Index(doc, start), strings.Index(doc, end)
	require.True(t, i >= 0 && j > i, "docs/contracts.md lost its generated reasons markers")
	want := doc[:i] + b.String() + doc[j:]
	if os.Getenv("UPDATE_DOCS") != "" {
		require.NoError(t, os.WriteFile(path, []byte(want), 0o644))
		return
	}
	require.Equal(t, want, doc, "docs/contracts.md's reasons are not deadletter.Table's: run make docs")
}
