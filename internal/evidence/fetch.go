package evidence

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/doppelhq/doppel/internal/advance"
	"github.com/doppelhq/doppel/internal/duplicate"
)

// Source fetches one verification's evidence from a region's vendor account, under that account's
// rate limit: *facesearch.Vendor implements it.
type Source interface {
	Evidence(ctx context.Context, signatureID string) (*advance.Evidence, error)
}

// Outcomes of a look-up, the outcome label of doppel_evidence_fetches_total.
const (
	OutcomeOK          = "ok"
	OutcomeCached      = "cached"
	OutcomeTimeout     = "timeout"
	OutcomeRateLimited = "rate_limited"
	OutcomeUnavailable = "unavailable"
	OutcomeNotFound    = "not_found"
	OutcomeError       = "error"
)

// Outcomes lists every outcome; the console has words for each failed one (a test checks).
var Outcomes = []string{OutcomeOK, OutcomeCached, OutcomeTimeout, OutcomeRateLimited, OutcomeUnavailable, OutcomeNotFound, OutcomeError}

// Defaults of FetcherConfig.
const (
	DefaultWait        = 4 * time.Second
	DefaultConcurrency = 4
	// maxFaceBytes bounds a picture kept in memory.
	maxFaceBytes = 4 << 20
)

// FetcherConfig configures a Fetcher.
type FetcherConfig struct {
	// Source returns the vendor account of a region; false for a region not configured.
	Source func(region string) (Source, bool)
	// Cache keeps what was fetched (NewCache(DefaultSize, DefaultTTL) when nil).
	Cache *Cache
	// Wait bounds how long a page waits for its evidence (DefaultWait when 0). A look-up still
	// running then goes on in the background and lands in the cache for the next view.
	Wait time.Duration
	// Concurrency bounds the look-ups one page runs at once (DefaultConcurrency when 0).
	Concurrency int
	// OnFetch is told the region and outcome of every look-up; may be nil.
	OnFetch func(region, outcome string)
}

// Fetcher looks up the evidence of verifications, from the cache or the vendor.
type Fetcher struct {
	cfg FetcherConfig

	mu       sync.Mutex
	inflight map[string]*call
}

// call is one vendor look-up that several page views may wait for.
type call struct {
	done chan struct{}
	rec  *Record
	err  error
}

// NewFetcher returns a Fetcher.
func NewFetcher(cfg FetcherConfig) *Fetcher {
	if cfg.Cache == nil {
		cfg.Cache = NewCache(DefaultSize, DefaultTTL)
	}
	if cfg.Wait <= 0 {
		cfg.Wait = DefaultWait
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	return &Fetcher{cfg: cfg, inflight: map[string]*call{}}
}

// Cache returns the fetcher's cache, whose faces the console serves.
func (f *Fetcher) Cache() *Cache { return f.cfg.Cache }

// Target is a verification whose evidence a page wants.
type Target struct {
	UserID      string
	SignatureID string
	// Region is the region the verification was searched in ("" is the default region).
	Region string
}

// Result is the evidence of one Target, or why there is none.
type Result struct {
	Target
	Record *Record
	// Outcome is one of the Outcome constants; Record is set for OutcomeOK and OutcomeCached.
	Outcome string
}

// ErrUnknownRegion is the error of a target whose region has no vendor account configured.
var ErrUnknownRegion = errors.New("evidence: region not configured")

// Fetch returns the evidence of every target, in order, waiting at most the configured Wait (or
// until ctx ends). A target not ready by then is OutcomeTimeout on this page; its look-up goes on
// and is cached for the next.
func (f *Fetcher) Fetch(ctx context.Context, targets []Target) []Result {
	out := make([]Result, len(targets))
	ctx, cancel := context.WithTimeout(ctx, f.cfg.Wait)
	defer cancel()
	sem := make(chan struct{}, f.cfg.Concurrency)
	var wg sync.WaitGroup
	for i, t := range targets {
		out[i].Target = t
		if r, ok := f.cfg.Cache.Get(t.Region, t.SignatureID); ok {
			out[i].Record, out[i].Outcome = r, OutcomeCached
			f.count(t.Region, OutcomeCached)
			continue
		}
		if f.cfg.Cache.Gone(t.Region, t.SignatureID) {
			out[i].Outcome = OutcomeNotFound
			f.count(t.Region, OutcomeCached)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-ctx.Done():
				out[i].Outcome = OutcomeTimeout
				return
			}
			c := f.start(t)
			select {
			case <-c.done:
				out[i].Record, out[i].Outcome = c.rec, outcomeOf(c.err)
			case <-ctx.Done():
				out[i].Outcome = OutcomeTimeout
			}
		}()
	}
	wg.Wait()
	return out
}

// lookupTimeout bounds one vendor look-up that no page waits for any more.
const lookupTimeout = 30 * time.Second

// start returns the running look-up of t, starting one if there is none. The look-up does not
// end with the page that started it: what it finds is cached for the next view.
func (f *Fetcher) start(t Target) *call {
	key := cacheKey(t.Region, t.SignatureID)
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.inflight[key]; ok {
		return c
	}
	c := &call{done: make(chan struct{})}
	f.inflight[key] = c
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), lookupTimeout)
		defer cancel()
		c.rec, c.err = f.lookup(ctx, t)
		f.count(t.Region, outcomeOf(c.err))
		switch outcomeOf(c.err) {
		case OutcomeOK:
			f.cfg.Cache.Put(c.rec)
		case OutcomeNotFound:
			f.cfg.Cache.PutGone(t.Region, t.SignatureID)
		}
		f.mu.Lock()
		delete(f.inflight, key)
		f.mu.Unlock()
		close(c.done)
	}()
	return c
}

// lookup asks the target's region for its evidence.
func (f *Fetcher) lookup(ctx context.Context, t Target) (*Record, error) {
	src, ok := f.cfg.Source(t.Region)
	if !ok {
		return nil, ErrUnknownRegion
	}
	ev, err := src.Evidence(ctx, t.SignatureID)
	if err != nil {
		return nil, err
	}
	r := &Record{UserID: t.UserID, SignatureID: t.SignatureID, Region: t.Region, OverallResult: ev.OverallResult}
	if d := ev.Document; d != nil {
		r.FullName, r.BirthDate, r.IDNumber, r.DocType = d.FullName, d.BirthDate, d.IDNumber, d.Type
	}
	if ev.Face != nil {
		r.Face, r.FaceType = decodeImage(ev.Face.Image)
	}
	return r, nil
}

// decodeImage decodes a base64 picture, keeping it only when it is an image a browser shows and
// not too large; anything else (a link, a broken value) gives no picture.
func decodeImage(s string) ([]byte, string) {
	if s == "" || len(s) > maxFaceBytes*4/3+4 || strings.HasPrefix(s, "http") {
		return nil, ""
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, ""
	}
	switch t := http.DetectContentType(b); t {
	case "image/png", "image/jpeg", "image/webp", "image/gif":
		return b, t
	}
	return nil, ""
}

// outcomeOf classifies a look-up's error for the metric and the page.
func outcomeOf(err error) string {
	var ae *advance.Error
	switch {
	case err == nil:
		return OutcomeOK
	case errors.Is(err, context.DeadlineExceeded):
		return OutcomeTimeout
	case errors.Is(err, ErrUnknownRegion):
		return OutcomeUnavailable
	case errors.As(err, &ae) && ae.Code == advance.CodeTimeout:
		return OutcomeTimeout
	case errors.As(err, &ae) && ae.RateLimited():
		return OutcomeRateLimited
	case errors.As(err, &ae) && ae.Code == advance.CodeSignatureNotExist:
		return OutcomeNotFound
	case duplicate.KindOf(err) == duplicate.FailureAccount:
		return OutcomeUnavailable // an open circuit or an account-level problem
	}
	return OutcomeError
}

func (f *Fetcher) count(region, outcome string) {
	if f.cfg.OnFetch != nil {
		f.cfg.OnFetch(region, outcome)
	}
}
