package httpapi

import (
	"context"
	"time"
)

// Deliveries keeps the ids of signed callbacks accepted within the signature window, where every
// instance sees them; postgres.Store implements it.
type Deliveries interface {
	// ClaimDelivery takes the id before its event is published. It returns the claim when the
	// caller now holds the id; otherwise claim is "" and accepted says whether the id was already
	// accepted (a duplicate) or another delivery of it is publishing. A claim lapses after lease.
	ClaimDelivery(ctx context.Context, scheme, id string, lease time.Duration, expiresAt time.Time) (claim string, accepted bool, err error)
	// AcceptDelivery marks the claimed id accepted once its event is on the topic; false when
	// the claim had lapsed and was taken over.
	AcceptDelivery(ctx context.Context, scheme, id, claim string) (bool, error)
	// ReleaseDelivery gives the claimed id up when its event could not be published.
	ReleaseDelivery(ctx context.Context, scheme, id, claim string) error
	// DeleteExpiredDeliveries deletes at most limit ids whose window has passed.
	DeleteExpiredDeliveries(ctx context.Context, limit int) (int64, error)
}

// claimMargin is added to the publish timeout to make a claim's lease: a claim outlives the
// publish it guards, and the claim of an instance that died mid-publish lapses soon after.
const claimMargin = 20 * time.Second

// deliveryWriteTimeout bounds the release or acceptance of a claim. Both run after the request's
// context may have ended (the producer hung up while the event was being published), since the
// table must still be told.
const deliveryWriteTimeout = 5 * time.Second

// claimLease is how long a claim holds its id.
func (s *Server) claimLease() time.Duration { return s.cfg.CallbackTimeout + claimMargin }

// releaseDelivery gives the id up after a failed publish, so the producer's retry is not a
// duplicate. A release that fails leaves the claim to lapse after its lease (the retry is answered
// 409 until then): logged, not answered, since the answer is already a 5xx.
func (s *Server) releaseDelivery(ctx context.Context, auth callbackAuth, claim string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), deliveryWriteTimeout)
	defer cancel()
	if err := s.cfg.Deliveries.ReleaseDelivery(ctx, auth.deliveryScheme, auth.deliveryID, claim); err != nil {
		s.log.Warn("callback delivery not released: its retries wait for the claim to lapse",
			"delivery_scheme", auth.deliveryScheme, "lease", s.claimLease(), "error", err)
	}
}

// acceptDelivery records the id as accepted once its event is on the topic. If that fails the
// event is still on the topic, so the answer stays 200; the claim lapses after its lease and a
// replay after that would be published again, which the pipeline absorbs (one outcome per
// signatureId).
func (s *Server) acceptDelivery(ctx context.Context, auth callbackAuth, claim string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), deliveryWriteTimeout)
	defer cancel()
	held, err := s.cfg.Deliveries.AcceptDelivery(ctx, auth.deliveryScheme, auth.deliveryID, claim)
	switch {
	case err != nil:
		s.log.Warn("callback delivery not recorded as accepted", "delivery_scheme", auth.deliveryScheme, "error", err)
	case !held:
		s.log.Warn("callback delivery's claim lapsed before its event was published",
			"delivery_scheme", auth.deliveryScheme, "lease", s.claimLease())
	}
}

// Sweep bounds: each statement deletes at most sweepBatch ids, and one round at most
// sweepMaxBatches statements, so the sweep never holds the table long however many expired.
const (
	sweepBatch      = 1000
	sweepMaxBatches = 10
)

// SweepDeliveries deletes the expired delivery ids every interval until ctx ends, in the
// background rather than on a callback's path. It returns nil when ctx ends (and only then, even
// with no Deliveries configured: a part of the service that ends ends the service).
func (s *Server) SweepDeliveries(ctx context.Context, interval time.Duration) error {
	if s.cfg.Deliveries == nil {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		for range sweepMaxBatches {
			n, err := s.cfg.Deliveries.DeleteExpiredDeliveries(ctx, sweepBatch)
			if err != nil {
				if ctx.Err() == nil {
					s.log.Warn("expired callback deliveries not deleted; next round in an interval", "error", err)
				}
				break
			}
			if n < sweepBatch {
				break
			}
		}
	}
}
