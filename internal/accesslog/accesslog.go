// Package accesslog records every read of a person's data: who (an API key, or the analyst signed in
// to the console with one), what (the route or console page), which userIds the answer showed and
// which ring, and when. Entries are queued by the reading request and written in batches by one
// goroutine (Writer), so that a read costs a channel send, not a database round trip; the store
// keeps them in an append-only table (postgres.Store.InsertAccessLog). See docs/access-log.md.
package accesslog

import (
	"slices"
	"time"
)

// MaxUserIDs bounds the userIds one entry lists: the ring page of a face farm of 5,000 records the
// ring's id, the first MaxUserIDs ids it showed (the one asked about first) and how many it showed
// in all (UserCount). Every API answer already lists at most 1,000 ring members.
const MaxUserIDs = 1000

// Where a read came from.
const (
	ViaAPI     = "api"
	ViaConsole = "console"
)

// Entry is one read of a person's data.
type Entry struct {
	// ID is the stored entry's id (0 before it is stored); pages are ordered by (At, ID).
	ID int64
	// At is when the answer was given.
	At time.Time
	// Actor is the API key's name (in the console, the key the analyst signed in with).
	Actor string
	// Via is ViaAPI or ViaConsole.
	Via string
	// What is the route or page pattern, e.g. "GET /v1/rings/{ringId}".
	What string
	// UserIDs are the userIds the answer showed, the one asked about first, at most MaxUserIDs;
	// UserCount is how many distinct ids it showed in all.
	UserIDs   []string
	UserCount int
	// RingID is the ring the answer showed, "" when none.
	RingID string
}

// Shown returns the userIds an answer showed, as an entry lists them: each once, in order (so the
// one asked about, given first, stays first), at most MaxUserIDs, and how many there were in all
// (Entry.UserCount). Empty ids (a field the answer left blank) are left out.
func Shown(ids ...[]string) (list []string, count int) {
	seen := map[string]bool{}
	for _, group := range ids {
		for _, id := range group {
			if id == "" || seen[id] {
				continue
			}
			seen[id] = true
			count++
			if len(list) < MaxUserIDs {
				list = append(list, id)
			}
		}
	}
	return slices.Clip(list), count
}

// Position is where a page of entries ends: the last entry's time and id.
type Position struct {
	At time.Time
	ID int64
}

// Query selects entries, newest first: those that showed UserID, of RingID, by Actor, read at or
// after Since (each filter only when set), before Before when set, at most Limit.
type Query struct {
	UserID string
	RingID string
	Actor  string
	Since  time.Time
	Before *Position
	Limit  int
}
