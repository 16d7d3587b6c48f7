package console

import (
	"context"
	"net/http"
	"slices"

	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/evidence"
)

// EvidenceViews records who saw whose evidence: the console calls it once per ring page that
// showed any, with the accounts whose face or document data the page carried.
type EvidenceViews interface {
	RecordView(ctx context.Context, actor string, userIDs []string, ringID string)
}

// maxEvidenceAccounts bounds the accounts one page fetches evidence for: a ring of up to
// largeRing accounts shows all of them, a larger one its neighbourhood.
const maxEvidenceAccounts = largeRing

// accountEvidence is one account's card in the evidence section.
type accountEvidence struct {
	UserID string
	Record *evidence.Record
	// Missing says why there is no record, for the page; "" when there is one.
	Missing string
	// FaceURL is where the console serves the face, "" when there is none.
	FaceURL string
}

// pairEvidence is what the two records of a pair say.
type pairEvidence struct {
	Low, High  *accountEvidence
	Suggestion *evidence.Suggestion
	// Unavailable is set when either record is missing: the page says so instead of guessing.
	Unavailable string
}

// evidenceSection is the ring page's evidence: a card per account and the pairs' suggestions.
type evidenceSection struct {
	Accounts []*accountEvidence
	byUser   map[string]*accountEvidence
	// Shown counts the accounts with a record.
	Shown int
}

// missingText says, for the page, why an account's evidence is not shown.
var missingText = map[string]string{
	evidence.OutcomeTimeout:     "Evidence unavailable: the vendor did not answer in time. Reload the page in a moment.",
	evidence.OutcomeRateLimited: "Evidence unavailable: the vendor's rate limit is reached. Reload the page in a moment.",
	evidence.OutcomeUnavailable: "Evidence unavailable: the vendor account cannot be called now.",
	evidence.OutcomeNotFound:    "Evidence unavailable: the vendor no longer has this verification.",
	evidence.OutcomeError:       "Evidence unavailable: the vendor answered with an error.",
}

// ringEvidence fetches the evidence of the ring's accounts (at most maxEvidenceAccounts), records
// the view and returns the section; nil when the console shows no evidence. A vendor or database
// failure never fails the page: the accounts say their evidence is unavailable.
func (c *Console) ringEvidence(r *http.Request, ringID string, members []string) *evidenceSection {
	if c.cfg.Evidence == nil {
		return nil
	}
	members = members[:min(len(members), maxEvidenceAccounts)]
	sec := &evidenceSection{byUser: make(map[string]*accountEvidence, len(members))}
	for _, m := range members {
		a := &accountEvidence{UserID: m, Missing: "No verification of this account is stored."}
		sec.Accounts = append(sec.Accounts, a)
		sec.byUser[m] = a
	}
	checks, err := c.cfg.Store.LatestChecks(r.Context(), members)
	if err != nil {
		c.log.Warn("console: read the verifications to show", "ring_id", ringID, "error", err)
		for _, a := range sec.Accounts {
			a.Missing = "Evidence unavailable: the verifications could not be read."
		}
		return sec
	}
	targets := make([]evidence.Target, 0, len(checks))
	for _, ch := range checks {
		targets = append(targets, evidence.Target{UserID: ch.UserID, SignatureID: ch.SignatureID, Region: ch.Region})
	}
	var seen []string
	for _, res := range c.cfg.Evidence.Fetch(r.Context(), targets) {
		a := sec.byUser[res.UserID]
		if a == nil {
			continue
		}
		if res.Record == nil {
			a.Missing = missingText[res.Outcome]
			if a.Missing == "" {
				a.Missing = missingText[evidence.OutcomeError]
			}
			continue
		}
		a.Record, a.Missing = res.Record, ""
		if res.Record.FaceHandle != "" {
			a.FaceURL = Path + "/evidence/faces/" + res.Record.FaceHandle
		}
		seen = append(seen, res.UserID)
	}
	sec.Shown = len(seen)
	if len(seen) > 0 {
		slices.Sort(seen)
		c.cfg.EvidenceViews.RecordView(r.Context(), sessionOf(r.Context()).name, seen, ringID)
	}
	return sec
}

// pair returns what the records of a pair say; nil when the page has no evidence section.
func (sec *evidenceSection) pair(p duplicate.RingPair) *pairEvidence {
	if sec == nil {
		return nil
	}
	pe := &pairEvidence{Low: sec.byUser[p.UserIDLow], High: sec.byUser[p.UserIDHigh]}
	switch {
	case pe.Low == nil || pe.High == nil:
		pe.Unavailable = "Evidence not fetched for this pair (outside the accounts shown)."
	case pe.Low.Record == nil || pe.High.Record == nil:
		pe.Unavailable = "Evidence unavailable for one of the two accounts: no suggestion."
	default:
		s := evidence.Suggest(pe.Low.Record, pe.High.Record)
		pe.Suggestion = &s
	}
	return pe
}

// handleFace serves a face from the evidence cache: only while it is cached, only to a signed-in
// analyst, and only under the unguessable handle a recorded page view gave out.
func (c *Console) handleFace(w http.ResponseWriter, r *http.Request) {
	if c.cfg.Evidence == nil {
		http.NotFound(w, r)
		return
	}
	img, mediaType, ok := c.cfg.Evidence.Cache().Face(r.PathValue("handle"))
	if !ok {
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, "This picture is no longer kept: reload the ring's page.", http.StatusNotFound)
		return
	}
	// The browser may keep the picture only in its own memory, for as long as the page shows it.
	w.Header().Set("Cache-Control", "private, no-store")
	w.Header().Set("Content-Type", mediaType)
	_, _ = w.Write(img)
}
