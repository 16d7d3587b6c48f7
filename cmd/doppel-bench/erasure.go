package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/doppelhq/doppel/internal/harness/advancesim"
)

// ---------------------------------------------------------------- (h) erasing a face-farm member

// farmErasureMinSize is the smallest farm whose member (h) erases: issue 24's target is set on a
// farm of 5,000.
const farmErasureMinSize = 1000

// benchAPIKey and benchPseudonymKey are the runs' own secrets: doppel serves loopback for one run.
const (
	benchAPIKey       = "doppel-bench-erase-key"
	benchPseudonymKey = "doppel-bench-pseudonym-key-0123456789abcdef"
)

// erasureEnv configures a doppel run for erasure: the tombstones' key, a key with the erase scope,
// the erasures topic and advance-sim's clear-data call (the job's vendor step, as in production).
func erasureEnv(erasuresTopic string) []string {
	sum := sha256.Sum256([]byte(benchAPIKey))
	return []string{
		"DOPPEL_PSEUDONYM_KEY=" + benchPseudonymKey,
		"DOPPEL_API_KEYS=bench:read+erase:" + hex.EncodeToString(sum[:]),
		"DOPPEL_TOPIC_ERASURES=" + erasuresTopic,
		"DOPPEL_ADVANCE_CLEAR_DATA_PATH=" + advancesim.ClearDataPath,
	}
}

// farmErasure is (h): how long one erasure of a farm member took, seen from the API.
type farmErasure struct {
	RingSize int `json:"ringSize"`
	// Seconds is from POST /v1/erasures to the GET that first answered "done": the removal, the
	// vendor's clear-data call and the subject_erased event on the topic.
	Seconds float64 `json:"seconds"`
	// RemovalSeconds is the job's requested_at -> removed_at (the removal transaction, and its
	// wait for the runner), FinishSeconds removed_at -> done_at (clear-data, the event).
	RemovalSeconds float64          `json:"removalSeconds"`
	FinishSeconds  float64          `json:"finishSeconds"`
	Done           bool             `json:"done"`
	Removed        map[string]int64 `json:"removed,omitempty"`
	Error          string           `json:"error,omitempty"`
}

// erasureTimeout bounds the wait for one erasure.
const erasureTimeout = 60 * time.Second

// eraseThroughAPI asks doppel to erase member (overriding the legal hold that the farm's open
// alerts put on it) and polls the erasure until it is done.
func (b *bench) eraseThroughAPI(ctx context.Context, lr *liveRun, ringSize int, member string) *farmErasure {
	res := &farmErasure{RingSize: ringSize}
	base := "http://" + lr.doppel.httpAddr
	client := &http.Client{Timeout: 30 * time.Second}
	call := func(method, path string, body any, want int, out any) error {
		var buf bytes.Buffer
		if body != nil {
			if err := json.NewEncoder(&buf).Encode(body); err != nil {
				return err
			}
		}
		req, err := http.NewRequestWithContext(ctx, method, base+path, &buf)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+benchAPIKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != want {
			var e map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&e)
			return fmt.Errorf("%s %s: %d %v", method, path, resp.StatusCode, e)
		}
		return json.NewDecoder(resp.Body).Decode(out)
	}
	var answer struct {
		ErasureID string           `json:"erasureId"`
		Status    string           `json:"status"`
		Removed   map[string]int64 `json:"removed"`
	}
	began := time.Now()
	if err := call(http.MethodPost, "/v1/erasures", map[string]string{"userId": member, "reason": "doppel-bench (h)",
		"override": "legal_hold"}, http.StatusAccepted, &answer); err != nil {
		res.Error = err.Error()
		return res
	}
	deadline := began.Add(erasureTimeout)
	for answer.Status != "done" && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
		if err := call(http.MethodGet, "/v1/erasures/"+answer.ErasureID, nil, http.StatusOK, &answer); err != nil {
			res.Error = err.Error()
			return res
		}
	}
	res.Seconds, res.Done, res.Removed = time.Since(began).Seconds(), answer.Status == "done", answer.Removed
	if !res.Done {
		res.Error = fmt.Sprintf("not done after %s (status %s)", erasureTimeout, answer.Status)
		return res
	}
	lr.ownQueries++
	if err := lr.conn.QueryRow(ctx, `SELECT extract(epoch FROM removed_at - requested_at), extract(epoch FROM done_at - removed_at)
FROM erasures WHERE erasure_id = $1`, answer.ErasureID).Scan(&res.RemovalSeconds, &res.FinishSeconds); err != nil {
		res.Error = fmt.Sprintf("read the erasure's times: %v", err)
	}
	b.logf("(h) erasing a member of a face farm of %d through the API: %.2fs (removal %.2fs, clear-data and event %.2fs), removed %v",
		ringSize, res.Seconds, res.RemovalSeconds, res.FinishSeconds, res.Removed)
	return res
}
