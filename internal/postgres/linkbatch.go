package postgres

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/doppelhq/doppel/internal/duplicate"
)

// prefetchRingUsers bounds the accounts whose rings a batch reads before the domain has decided
// which it needs: past it (a face farm's batch) the rings are read afterwards, in a round trip of
// their own, for only the accounts the decision joins.
const prefetchRingUsers = 2_000

// copyLinksFrom is the number of new links from which a batch writes them with COPY (its own two
// round trips, the cheapest per row) rather than in its closing pipeline.
const copyLinksFrom = 1_000

// saveLinkedBatch stores a batch of checks that may link pairs in one transaction, as
// saveChecks and linkAll do, but pipelined: BEGIN, the check insert, the ring-index lock and the
// reads of the pairs' links, reviews and rings go in one round trip, and the writes with COMMIT
// in a second. The sequential version took nine round trips, and at a few hundred events a second
// (a batch of one or two checks) every round trip was time an alert waited and PostgreSQL CPU.
func (s *Store) saveLinkedBatch(ctx context.Context, checks []duplicate.Check) ([]duplicate.Saved, error) {
	var saved []duplicate.Saved
	err := s.pool.AcquireFunc(ctx, func(c *pgxpool.Conn) error {
		conn := c.Conn()
		var err error
		saved, err = s.linkPipelined(ctx, conn, checks)
		if err != nil && conn.PgConn().TxStatus() != 'I' {
			// The transaction is open or failed: end it, or the pool closes the connection.
			if _, rbErr := conn.Exec(ctx, "ROLLBACK"); rbErr != nil {
				return fmt.Errorf("%w (and roll back: %v)", err, rbErr)
			}
		}
		return err
	})
	return saved, err
}

func (s *Store) linkPipelined(ctx context.Context, conn *pgx.Conn, checks []duplicate.Check) ([]duplicate.Saved, error) {
	pairs := duplicate.Pairs(checks)
	pairReads := pairReadsOf(checks, pairs)
	ringUsers := append(pairUsers(pairs), duplicate.OverflowUsers(checks)...)
	if len(ringUsers) > prefetchRingUsers {
		ringUsers = nil
	}

	matchedHashes, byHash := s.matchedHashes(checks)
	reads := &pgx.Batch{}
	reads.Queue("BEGIN")
	if s.tomb != nil {
		reads.Queue(lockSubjectsSQL, checkUsers(checks))
	}
	reads.Queue(insertChecksSQL, s.insertChecksArgs(checks)...)
	reads.Queue(`SELECT pg_advisory_xact_lock($1)`, int64(ringIndexLock))
	if s.tomb != nil {
		reads.Queue(matchedTombstonesSQL, matchedHashes)
	}
	queuePairStates(reads, pairReads)
	if ringUsers != nil {
		reads.Queue(ringsOfSQL, ringUsers)
	}
	res := conn.SendBatch(ctx, reads)
	var erased map[string]bool
	stored, states, prefetched, err := readLinkReads(res, checks, pairs, ringUsers, s.tomb != nil,
		func(rows pgx.Rows, err error) error {
			erased, err = readErasedMatches(rows, err, byHash)
			return err
		})
	if closeErr := res.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return nil, err
	}
	if len(erased) > 0 {
		// Rare: a face search named an erased person. The batch is linked without them; the pair
		// states read for their pairs are simply not used.
		if checks, _, err = s.dropErasedMatches(ctx, conn, checks, erased); err != nil {
			return nil, err
		}
	}

	// The checks stored (usually all of them) are linked; at maps them back to checks.
	linking, at := checks, []int(nil)
	subset := slices.Contains(stored, false)
	if subset {
		linking = make([]duplicate.Check, 0, len(checks))
		for i, c := range checks {
			if stored[i] {
				linking = append(linking, c)
				at = append(at, i)
			}
		}
	}
	d, err := s.decideLinks(linking, states, func(need []string) (map[string]duplicate.RingState, error) {
		if ringUsers != nil {
			return prefetched, nil // a superset of need
		}
		return ringsOf(ctx, conn, need)
	})
	if err != nil {
		return nil, err
	}
	copied := newLinkCount(d.Plan.Links) >= copyLinksFrom
	if copied {
		if err := insertNewLinks(ctx, conn, d.Plan.Links); err != nil {
			return nil, err
		}
	}
	writes := &pgx.Batch{}
	d.queueWrites(s, writes, !copied)
	writes.Queue("COMMIT")
	if err := conn.SendBatch(ctx, writes).Close(); err != nil {
		return nil, d.writeError(err)
	}
	if !subset {
		return d.Saved, nil
	}
	saved := make([]duplicate.Saved, len(checks)) // Stored false for those not stored
	for j, i := range at {
		saved[i] = d.Saved[j]
	}
	return saved, nil
}

// readLinkReads reads the answers of linkPipelined's first round trip, in the order queued.
func readLinkReads(res pgx.BatchResults, checks []duplicate.Check, pairs []duplicate.PairKey,
	ringUsers []string, tombstones bool, readTombstones func(pgx.Rows, error) error,
) ([]bool, map[duplicate.PairKey]duplicate.PairState, map[string]duplicate.RingState, error) {
	if _, err := res.Exec(); err != nil {
		return nil, nil, nil, fmt.Errorf("begin: %w", err)
	}
	if tombstones {
		if _, err := res.Exec(); err != nil {
			return nil, nil, nil, fmt.Errorf("lock people: %w", err)
		}
	}
	rows, err := res.Query()
	stored, err := readStored(rows, err, checks)
	if err != nil {
		return nil, nil, nil, err
	}
	if _, err := res.Exec(); err != nil {
		return nil, nil, nil, fmt.Errorf("lock ring index: %w", err)
	}
	if tombstones {
		if err := readTombstones(res.Query()); err != nil {
			return nil, nil, nil, err
		}
	}
	states, err := readPairStates(res, pairs)
	if err != nil {
		return nil, nil, nil, err
	}
	var rings map[string]duplicate.RingState
	if ringUsers != nil {
		rows, err := res.Query()
		if rings, err = readRings(rows, err, ringUsers); err != nil {
			return nil, nil, nil, err
		}
	}
	return stored, states, rings, nil
}

// pairUsers returns every account the pairs name, once each.
func pairUsers(pairs []duplicate.PairKey) []string {
	seen := make(map[string]struct{}, 2*len(pairs))
	var out []string
	for _, p := range pairs {
		for _, u := range [2]string{p.Low, p.High} {
			if _, dup := seen[u]; !dup {
				seen[u] = struct{}{}
				out = append(out, u)
			}
		}
	}
	return out
}

func newLinkCount(links []duplicate.LinkWrite) int {
	n := 0
	for _, l := range links {
		if l.New {
			n++
		}
	}
	return n
}
