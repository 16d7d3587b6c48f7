package console_test

import (
	"io"
	"net/http"
	"testing"
)

// BenchmarkFaceFarmRingPage measures the ring page of a 1,000-account face farm (2,994 links) as the
// server builds it: the ring walk, every pair's evidence and history, the layout of the summarised
// drawing and the HTML. The target is that the page loads in about a second.
func BenchmarkFaceFarmRingPage(b *testing.B) {
	f := setup(b)
	ringID := f.seedFarm(1000)
	c := newClient(b, f.srv.URL)
	c.signIn(analystKey)
	path := "/console/rings/" + ringID + "?user=farm-0500"
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
}
