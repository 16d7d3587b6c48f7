package console_test

import (
	"cmp"
	"fmt"
	"io"
	"net/http"
	"testing"
)

// BenchmarkFaceFarmRingPage measures the ring page of a face farm (each account linked to the three
// before it: 1,000 accounts have 2,994 links) as the server builds it: the ring's size, the
// neighbourhood of one account with its pairs' evidence and history, the layout and the HTML. A
// ring above 50 accounts is shown as a neighbourhood, so the page costs the same at 5,000 accounts
// as at 1,000. The target is that the page loads in about a second.
func BenchmarkFaceFarmRingPage(b *testing.B) {
	for _, tc := range []struct {
		accounts int
		centre   string // "": the ring's newest account, found among all its members
	}{{1000, "farm-0500"}, {5000, "farm-2500"}, {5000, ""}} {
		b.Run(fmt.Sprintf("accounts=%d/centre=%s", tc.accounts, cmp.Or(tc.centre, "newest")), func(b *testing.B) {
			f := setup(b)
			ringID := f.seedFarm(tc.accounts)
			c := newClient(b, f.srv.URL)
			c.signIn(analystKey)
			path := "/console/rings/" + ringID
			if tc.centre != "" {
				path += "?user=" + tc.centre
			}
			b.ResetTimer()
			for b.Loop() {
				res, err := c.http.Get(c.base + path)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusOK {
					b.Fatalf("status %d", res.StatusCode)
				}
			}
		})
	}
}
