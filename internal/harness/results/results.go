// Package results writes what a harness run found: its JSON record beside the run's other output,
// and its markdown page under docs/ (docs/benchmarks.md, docs/soak.md), each made by the command
// that owns the figures. What a page says is the command's; how it lands on disk, and how an empty
// cell reads, is the same for both.
package results

import (
	"encoding/json"
	"os"
	"path/filepath"
)

// WriteJSON writes v, indented, with a final newline, to path, creating its folder.
func WriteJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return WriteFile(path, append(b, '\n'))
}

// WriteFile writes content to path, creating its folder.
func WriteFile(path string, content []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, content, 0o644)
}

// Dash is a table cell: s, or an en dash when it is empty, so that a markdown table shows the
// cell was left empty on purpose.
func Dash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}
