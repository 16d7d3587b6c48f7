package postgres

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/pseudonym"
)

// The write path's side of erasure: the tombstones an erasure leaves (keyed hashes of the person's
// userId and signatureIds) are checked inside the transaction that stores a check, after the
// person's lock, so that an event in flight while an erasure runs cannot bring a row back.
//
//   - Every transaction that stores checks first takes a shared per-person lock on each check's
//     userId (lockSubjectsSQL); the erasure takes it exclusively, so the two exclude each other
//     per person and store paths never wait for each other.
//   - insertChecksSQL then leaves out a check whose signatureId is tombstoned, or whose userId was
//     erased after the check completed (an event of the erased relationship): its statement starts
//     after the lock, so it sees a tombstone committed meanwhile. A check that completed after the
//     erasure is a new customer relationship and is stored.
//   - The linking path, once it holds the ring-index lock (which the erasure takes too), reads the
//     tombstones of the matched accounts (matchedTombstonesSQL) in the same round trip as its other
//     reads: an erased account is dropped from the check's lists before anything links it.

// WithTombstones sets the key of the tombstones' keyed hash (DOPPEL_PSEUDONYM_KEY). Without it the
// store checks no tombstone (and cannot erase): every instance must be given the same key.
func WithTombstones(key pseudonym.Key) Option {
	return func(s *Store) { s.tomb = &key }
}

// subjectLockClass is the first key of the per-person advisory locks (pg_advisory_xact_lock(int,
// int)): the second is hashtext(userId). A collision of two people's hashes only makes one wait.
const subjectLockClass = 24

// lockSubjectsSQL takes the shared per-person lock of each of $1 (distinct userIds).
const lockSubjectsSQL = `SELECT count(pg_advisory_xact_lock_shared(24, hashtext(u))) FROM unnest($1::text[]) AS u`

// matchedTombstonesSQL returns which of the keyed hashes $1 are erased people's.
const matchedTombstonesSQL = `SELECT user_hash FROM erased_users WHERE user_hash = ANY ($1::text[])`

// hash returns the keyed hash of id, "" without a key (a value no tombstone has).
func (s *Store) hash(id string) string {
	if s.tomb == nil || id == "" {
		return ""
	}
	return s.tomb.Hash(id)
}

// checkUsers returns the distinct userIds of checks, sorted.
func checkUsers(checks []duplicate.Check) []string {
	out := make([]string, 0, len(checks))
	for _, c := range checks {
		if c.UserID != "" {
			out = append(out, c.UserID)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// matchedHashes returns the keyed hashes of every account the checks match (overflow included),
// and which account each hash is.
func (s *Store) matchedHashes(checks []duplicate.Check) ([]string, map[string]string) {
	if s.tomb == nil {
		return nil, nil
	}
	of := map[string]string{}
	for _, c := range checks {
		for _, u := range c.MatchedUserIDs {
			if _, seen := of[u]; !seen {
				of[u] = s.tomb.Hash(u)
			}
		}
	}
	hashes := make([]string, 0, len(of))
	byHash := make(map[string]string, len(of))
	for u, h := range of {
		hashes = append(hashes, h)
		byHash[h] = u
	}
	return hashes, byHash
}

// readErasedMatches reads matchedTombstonesSQL's answer: the erased accounts among the matched.
func readErasedMatches(rows pgx.Rows, err error, byHash map[string]string) (map[string]bool, error) {
	if err != nil {
		return nil, fmt.Errorf("read tombstones: %w", err)
	}
	hashes, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read tombstones: %w", err)
	}
	if len(hashes) == 0 {
		return nil, nil
	}
	erased := make(map[string]bool, len(hashes))
	for _, h := range hashes {
		erased[byHash[h]] = true
	}
	return erased, nil
}

// dropErasedMatches removes the erased accounts from the checks' lists (a check left with no match
// becomes no_duplicates) and rewrites the stored rows of the checks it changed, in the caller's
// transaction. An erased account that has a check stored since its erasure is a new customer
// relationship and stays. It returns the checks as they are to be linked, and how many mentions it
// dropped (for the metric).
func (s *Store) dropErasedMatches(ctx context.Context, q querier, checks []duplicate.Check, erased map[string]bool) ([]duplicate.Check, int, error) {
	if len(erased) == 0 {
		return checks, 0, nil
	}
	ids := make([]string, 0, len(erased))
	for u := range erased {
		ids = append(ids, u)
	}
	rows, err := q.Query(ctx, `SELECT DISTINCT user_id FROM idv_checks WHERE user_id = ANY ($1::text[])`, ids)
	if err != nil {
		return nil, 0, fmt.Errorf("read returned users: %w", err)
	}
	returned, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, 0, fmt.Errorf("read returned users: %w", err)
	}
	for _, u := range returned {
		delete(erased, u)
	}
	if len(erased) == 0 {
		return checks, 0, nil
	}
	dropped := 0
	keep := func(list []string) []string {
		out := list[:0:0]
		for _, u := range list {
			if erased[u] {
				dropped++
				continue
			}
			out = append(out, u)
		}
		return out
	}
	out := slices.Clone(checks)
	var changed []duplicate.Check
	for i, c := range out {
		before := dropped
		c.MatchedUserIDs = keep(c.MatchedUserIDs)
		matchedDrops := dropped - before
		c.SimilarUserIDs = keepAll(c.SimilarUserIDs, erased)
		c.MatchedFailedUserIDs = keepAll(c.MatchedFailedUserIDs, erased)
		if matchedDrops == 0 {
			continue
		}
		if len(c.MatchedUserIDs) == 0 && c.Outcome == duplicate.OutcomeDuplicatesFound {
			c.Outcome = duplicate.OutcomeNoDuplicates
		}
		out[i] = c
		changed = append(changed, c)
	}
	if len(changed) > 0 {
		b := &pgx.Batch{}
		for _, c := range changed {
			b.Queue(`UPDATE idv_checks SET outcome = $2, similar_user_ids = $3::text[], matched_user_ids = $4::text[],
    similar_count = $5, matched_count = $6 WHERE signature_id = $1`,
				c.SignatureID, string(c.Outcome), arrayLiteral(duplicate.Listed(c.SimilarUserIDs)),
				arrayLiteral(duplicate.Listed(c.MatchedUserIDs)), len(c.SimilarUserIDs), len(c.MatchedUserIDs))
		}
		if err := q.(batchSender).SendBatch(ctx, b).Close(); err != nil {
			return nil, 0, fmt.Errorf("drop erased accounts from checks: %w", err)
		}
	}
	if s.onErasedMatch != nil {
		s.onErasedMatch(dropped)
	}
	if s.log != nil {
		pseud := make([]string, 0, len(erased))
		for u := range erased {
			pseud = append(pseud, "erased:"+s.hash(u)[:24])
		}
		s.log.Info("face search named erased people: linked without them", "erased", pseud, "checks", len(changed))
	}
	return out, dropped, nil
}

// batchSender is the part of pgx.Tx and *pgx.Conn that sends a batch.
type batchSender interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// keepAll returns list without the erased accounts.
func keepAll(list []string, erased map[string]bool) []string {
	out := list[:0:0]
	for _, u := range list {
		if !erased[u] {
			out = append(out, u)
		}
	}
	return out
}

// CountErasedMatches sets what counts the mentions of erased people dropped from face-search
// answers (the metric). Call it before the store is used.
func (s *Store) CountErasedMatches(count func(n int)) { s.onErasedMatch = count }
