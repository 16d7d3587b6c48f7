package console

import (
	"context"
	"net/http"
	"net/url"

	"github.com/doppelhq/doppel/internal/duplicate"
)

// largeRing is the size above which a ring's page shows a neighbourhood instead of the whole ring:
// its newest account (or the one the page is about), that account's direct links and the links
// among the accounts they reach. The rest is folded into a count that opens the paged member list.
// A face farm of thousands costs the page what a ring of fifty does.
const largeRing = duplicate.MaxRingPageMembers

// maxNeighbours bounds the direct neighbours a large ring's page shows.
const maxNeighbours = 40

// membersPageSize is the number of accounts on a page of a ring's member list.
const membersPageSize = 200

// largeRingView is what the page of a large ring says about what it leaves out.
type largeRingView struct {
	Size int
	// Centre is the account the neighbourhood is drawn around; Newest says it was chosen as the
	// ring's newest account rather than asked for.
	Centre string
	Newest bool
	// CentreLinks counts every direct link of Centre; Folded the accounts not drawn.
	CentreLinks int
	Folded      int
	MembersURL  string
}

// ringDetail returns the ring as its page shows it: the whole ring up to largeRing accounts, else
// the neighbourhood of focus (the ring's newest account when focus is "") with a description of
// what is left out. It never loads the links of a large ring.
func (c *Console) ringDetail(ctx context.Context, ringID, focus string) (duplicate.RingDetail, *largeRingView, error) {
	size, err := c.cfg.Store.RingSize(ctx, ringID)
	if err != nil || size <= largeRing {
		// An unknown ring takes the usual path, which follows a ring that merged into another.
		d, err := c.cfg.Store.RingDetail(ctx, ringID, "")
		return d, nil, err
	}
	nb, err := c.cfg.Store.RingNeighbourhood(ctx, ringID, focus, maxNeighbours)
	if err != nil {
		return duplicate.RingDetail{}, nil, err
	}
	view := &largeRingView{Size: nb.Size, Centre: nb.Centre, Newest: nb.Centre != focus, CentreLinks: nb.CentreLinks,
		Folded: nb.Size - len(nb.Members), MembersURL: Path + "/rings/" + url.PathEscape(ringID) + "/members"}
	return duplicate.RingDetail{ID: nb.ID, Size: nb.Size, Members: nb.Members, Pairs: nb.Pairs}, view, nil
}

// membersData is the page of a ring's member list.
type membersData struct {
	RingID  string
	Size    int
	Members []string
	Next    string
}

// handleRingMembers lists a ring's accounts, a page at a time, in userId order: what a large
// ring's page folds into its count.
func (c *Console) handleRingMembers(w http.ResponseWriter, r *http.Request) {
	ringID := r.PathValue("ringId")
	after := r.URL.Query().Get("after")
	if after != "" && !duplicate.ValidUserID(after) {
		c.fail(w, r, http.StatusBadRequest, "That page link is not valid; start from the first page.")
		return
	}
	size, err := c.cfg.Store.RingSize(r.Context(), ringID)
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	members, err := c.cfg.Store.RingMembersPage(r.Context(), ringID, after, membersPageSize+1)
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	d := membersData{RingID: ringID, Size: size, Members: members}
	if len(members) > membersPageSize {
		d.Members = members[:membersPageSize]
		d.Next = r.URL.Path + "?" + url.Values{"after": {d.Members[membersPageSize-1]}}.Encode()
	}
	c.render(w, r, http.StatusOK, "members", page{Title: "Accounts of ring " + ringID, Nav: "queue", Data: d})
}
