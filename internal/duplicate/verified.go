package duplicate

import "context"

// HandleVerified processes a verification whose get-result answer the caller already has (the
// reconciliation poller, which asked get-result to learn that it completed), exactly as Handle
// processes its COMPLETED event, without asking get-result again: the user and the verdict come
// from v.
func (d *Detector) HandleVerified(ctx context.Context, signatureID string, v Verification, src Source) (Result, error) {
	d.mu.Lock()
	kept := d.unsaved[signatureID]
	kept.verification = &v
	if len(d.unsaved) >= maxUnsaved {
		clear(d.unsaved)
	}
	d.unsaved[signatureID] = kept
	d.mu.Unlock()
	res, err := d.Handle(ctx, Event{SignatureID: signatureID, Type: EventTypeCompleted}, src)
	if res.AlreadyStored {
		d.takeUnsaved(signatureID) // Handle never looked at it
	}
	return res, err
}
