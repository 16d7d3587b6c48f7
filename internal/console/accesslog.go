package console

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/doppelhq/doppel/internal/accesslog"
	"github.com/doppelhq/doppel/internal/duplicate"
)

// AccessLog records the reads of a person's data; accesslog.Writer implements it.
type AccessLog interface {
	Record(ctx context.Context, e accesslog.Entry) error
}

// logRead records that the page about to be shown shows userIDs (the one asked about first) and
// ringID, under the signed-in key's name. When it cannot, the page is not shown (503): a read
// without a record is what the access log exists to prevent. It reports whether the page may go.
func (c *Console) logRead(w http.ResponseWriter, r *http.Request, ringID string, userIDs ...[]string) bool {
	if c.cfg.AccessLog == nil {
		return true
	}
	ids, n := accesslog.Shown(userIDs...)
	actor := ""
	if s := sessionOf(r.Context()); s != nil {
		actor = s.name
	}
	err := c.cfg.AccessLog.Record(r.Context(), accesslog.Entry{At: time.Now(), Actor: actor, Via: accesslog.ViaConsole,
		What: r.Pattern, UserIDs: ids, UserCount: n, RingID: ringID})
	if err == nil {
		return true
	}
	if !errors.Is(err, accesslog.ErrUnavailable) {
		c.log.Error("console: record the read", "error", err)
	}
	w.Header().Set("Retry-After", "5")
	c.fail(w, r, http.StatusServiceUnavailable, "This page cannot be recorded in the access log right now, so it is not shown. Try again in a moment.")
	return false
}

// The ids each page shows, as logRead takes them.

// ringPageIDs are the ids a ring page shows: the alert's user and new matches, the accounts drawn,
// and the pairs of the page's table (a face farm's page shows at most maxGraphNodes accounts and
// pairsPageSize pairs, whatever its size).
func ringPageIDs(d ringData) [][]string {
	ids := [][]string{{d.Focus}}
	if d.Alert != nil {
		ids = append(ids, []string{d.Alert.UserID}, d.Alert.NewMatchedUserIDs)
	}
	drawn := make([]string, len(d.Graph.Nodes))
	for i, n := range d.Graph.Nodes {
		drawn[i] = n.ID
	}
	pairs := make([]string, 0, 2*len(d.Pairs))
	for _, p := range d.Pairs {
		pairs = append(pairs, p.UserIDLow, p.UserIDHigh)
	}
	return append(ids, drawn, pairs)
}

func alertUsers(alerts []duplicate.StoredAlert) []string {
	ids := make([]string, len(alerts))
	for i, a := range alerts {
		ids[i] = a.UserID
	}
	return ids
}

func reviewUsers(reviews []duplicate.Review) []string {
	ids := make([]string, 0, 2*len(reviews))
	for _, r := range reviews {
		ids = append(ids, r.UserID, r.DuplicateUserID)
	}
	return ids
}

func linkedUsers(accounts []duplicate.LinkedAccount) []string {
	ids := make([]string, len(accounts))
	for i, a := range accounts {
		ids[i] = a.UserID
	}
	return ids
}
