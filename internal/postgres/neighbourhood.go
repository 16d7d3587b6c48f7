package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/doppelhq/doppel/internal/duplicate"
)

// These reads serve the console's page of a large ring: each is bounded by its limit, never by the
// ring's size, so that a face farm of thousands of accounts costs a page what a ring of fifty does.

// RingSize returns the number of accounts of the ring ringID, from the ring index.
func (s *Store) RingSize(ctx context.Context, ringID string) (int, error) {
	root, err := ringRoot(ctx, s.pool, ringID)
	if err != nil {
		return 0, err
	}
	current, err := ringsOf(ctx, s.pool, []string{root})
	if err != nil {
		return 0, err
	}
	st, ok := current[root]
	if !ok {
		return 0, unknownRing(ringID)
	}
	return st.Size, nil
}

// RingNeighbourhood returns the part of the ring ringID around centre (the ring's newest account
// when centre is "" or not a member): centre, up to limit of its direct neighbours (as
// neighbourhoodSQL chooses them, most recently linked first), the links among them with their evidence and history, and how many direct links
// centre has in all.
func (s *Store) RingNeighbourhood(ctx context.Context, ringID, centre string, limit int) (duplicate.RingNeighbourhood, error) {
	var out duplicate.RingNeighbourhood
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		root, err := ringRoot(ctx, tx, ringID)
		if err != nil {
			return err
		}
		current, err := ringsOf(ctx, tx, []string{root})
		if err != nil {
			return err
		}
		st, ok := current[root]
		if !ok {
			return unknownRing(ringID)
		}
		out = duplicate.RingNeighbourhood{ID: ringID, Size: st.Size}
		if centre != "" {
			var member bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM ring_members WHERE user_id = $1 AND ring_key = $2)`,
				centre, st.Key).Scan(&member); err != nil {
				return fmt.Errorf("look up ring member: %w", err)
			}
			if !member {
				centre = ""
			}
		}
		if centre == "" {
			// The newest member is kept with the ring's summary: no look at every member's checks.
			if centre, err = ringNewest(ctx, tx, root); err != nil {
				return err
			}
		}
		out.Centre = centre
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM duplicate_links WHERE user_id_low = $1 OR user_id_high = $1`,
			centre).Scan(&out.CentreLinks); err != nil {
			return fmt.Errorf("count the account's links: %w", err)
		}
		// The same bounded read as a large ring's API page (neighbourhoodSQL): never all of a face
		// farm member's thousands of links.
		rows, err := tx.Query(ctx, neighbourhoodSQL, centre, st.Key, limit)
		direct, err := readLinks(rows, err)
		if err != nil {
			return fmt.Errorf("select the account's neighbours: %w", err)
		}
		neighbours := make([]string, len(direct))
		for i, l := range direct {
			neighbours[i] = duplicate.PairKey{Low: l.UserIDLow, High: l.UserIDHigh}.Other(centre)
		}
		out.Members = append([]string{centre}, neighbours...)
		links, err := linksAmong(ctx, tx, out.Members)
		if err != nil {
			return err
		}
		out.Pairs = make([]duplicate.RingPair, len(links))
		index := make(map[[2]string]int, len(links))
		for i, l := range links {
			out.Pairs[i] = duplicate.RingPair{Link: l}
			index[[2]string{l.UserIDLow, l.UserIDHigh}] = i
		}
		if err := addPairEvidence(ctx, tx, out.Members, out.Pairs, index); err != nil {
			return err
		}
		return addPairHistory(ctx, tx, out.Members, out.Pairs, index)
	})
	return out, err
}

// linksAmong returns the links between members (a short list: at most its square) with each one's
// latest review.
func linksAmong(ctx context.Context, q querier, members []string) ([]duplicate.Link, error) {
	links, err := readLinks(q.Query(ctx, linksAmongSQL, pgx.QueryExecModeExec, members, len(members)*len(members)))
	if err != nil {
		return nil, fmt.Errorf("select links among accounts: %w", err)
	}
	return links, nil
}

// RingMembersPage returns up to limit accounts of the ring ringID whose userId sorts after after
// ("" for the first page), in userId order.
func (s *Store) RingMembersPage(ctx context.Context, ringID, after string, limit int) ([]string, error) {
	root, err := ringRoot(ctx, s.pool, ringID)
	if err != nil {
		return nil, err
	}
	current, err := ringsOf(ctx, s.pool, []string{root})
	if err != nil {
		return nil, err
	}
	st, ok := current[root]
	if !ok {
		return nil, unknownRing(ringID)
	}
	rows, err := s.pool.Query(ctx, `
SELECT user_id FROM ring_members WHERE ring_key = $1 AND user_id > $2 ORDER BY user_id LIMIT $3`, st.Key, after, limit)
	if err != nil {
		return nil, fmt.Errorf("select ring members: %w", err)
	}
	members, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("select ring members: %w", err)
	}
	return members, nil
}

// LatestChecks returns the verification each of userIDs' evidence is read from: the latest face
// search of the account, else its latest check of any kind. Accounts without a check are left out.
func (s *Store) LatestChecks(ctx context.Context, userIDs []string) ([]duplicate.LatestCheck, error) {
	rows, err := s.pool.Query(ctx, `
SELECT DISTINCT ON (user_id) user_id, signature_id, region, checked_at
FROM idv_checks
WHERE user_id = ANY ($1)
ORDER BY user_id, (outcome IN ('duplicates_found', 'no_duplicates')) DESC, checked_at DESC, signature_id`, userIDs)
	if err != nil {
		return nil, fmt.Errorf("select latest checks: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (duplicate.LatestCheck, error) {
		var c duplicate.LatestCheck
		err := row.Scan(&c.UserID, &c.SignatureID, &c.Region, &c.CheckedAt)
		c.CheckedAt = c.CheckedAt.UTC()
		return c, err
	})
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("select latest checks: %w", err)
	}
	return out, nil
}
