package advancesim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Control drives a running advance-sim through its /sim/* endpoints: seeding sessions, injecting
// faults and reading the billing counters. The demo, the benchmark and the soak all use it.
type Control struct {
	baseURL string
	http    *http.Client
}

// NewControl returns a Control for the simulator at baseURL (e.g. http://127.0.0.1:8090).
func NewControl(baseURL string) *Control {
	return &Control{baseURL: strings.TrimRight(baseURL, "/"), http: &http.Client{Timeout: 60 * time.Second}}
}

// AddSessions registers sessions in one request and returns their signatureIds, in order.
func (c *Control) AddSessions(ctx context.Context, sessions []Session) ([]string, error) {
	var out struct {
		SignatureIDs []string `json:"signatureIds"`
	}
	if err := c.do(ctx, http.MethodPost, "/sim/sessions/batch", sessions, &out); err != nil {
		return nil, fmt.Errorf("seed advance-sim: %w", err)
	}
	if len(out.SignatureIDs) != len(sessions) {
		return nil, fmt.Errorf("seed advance-sim: %d signatureIds for %d sessions", len(out.SignatureIDs), len(sessions))
	}
	return out.SignatureIDs, nil
}

// Complete finishes a session registered INCOMPLETE with overallResult PASS or FAIL: from then on
// get-result answers the verdict and a PASS session is in the face database.
func (c *Control) Complete(ctx context.Context, signatureID, overallResult string) error {
	path := "/sim/sessions/" + url.PathEscape(signatureID) + "/complete"
	if err := c.do(ctx, http.MethodPost, path, Completion{OverallResult: overallResult}, nil); err != nil {
		return fmt.Errorf("complete advance-sim session: %w", err)
	}
	return nil
}

// PatchFaults replaces the faults given in p and leaves the others as they are.
func (c *Control) PatchFaults(ctx context.Context, p FaultsPatch) error {
	return c.do(ctx, http.MethodPut, "/sim/faults", p, nil)
}

// Stats reads the call and billing counters.
func (c *Control) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	err := c.do(ctx, http.MethodGet, "/sim/stats", nil, &st)
	return st, err
}

func (c *Control) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.baseURL+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, strings.TrimSpace(string(msg)))
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
