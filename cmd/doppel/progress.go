package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// isTerminal reports whether w is a terminal. Progress frames are drawn only there: redirected to
// a file or a log collector, the carriage-return frames are noise.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// newProgressBar returns a bar on w for total steps (-1: unknown, a spinner), drawn only when w
// is a terminal and the user did not ask for none.
func newProgressBar(w io.Writer, total int, description string, disabled bool) *progressbar.ProgressBar {
	if disabled || !isTerminal(w) {
		return progressbar.NewOptions(total, progressbar.OptionSetWriter(io.Discard), progressbar.OptionSetVisibility(false))
	}
	return progressbar.NewOptions(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(description),
		progressbar.OptionShowCount(),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
	)
}
