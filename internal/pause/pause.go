// Package pause waits without outliving a context: the one sleep that retry loops, pollers and the
// harness share.
package pause

import (
	"context"
	"time"
)

// For waits for d and reports true, or reports false as soon as ctx ends.
func For(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
