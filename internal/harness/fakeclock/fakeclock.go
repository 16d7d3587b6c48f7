// Package fakeclock is the settable clock tests hand to code that takes a "now" function (the
// vendor client and simulator, the consumer's stall monitor, the console's sessions, budgets), so
// that time moves only when the test says.
package fakeclock

import (
	"sync"
	"time"
)

// Clock is a time that stands still until Add or Set moves it; safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// New returns a clock showing t.
func New(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Add moves the clock on by d.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}
