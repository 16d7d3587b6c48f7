package evidence

import (
	"context"
	"log/slog"

	"github.com/doppelhq/doppel/internal/pseudonym"
)

// LogViews records who saw whose evidence as one structured log line per page view, the people
// seen as pseudonyms (their keyed hashes), never their userIds, names or documents. It stands in
// for the access log until the console writes views there.
type LogViews struct {
	Logger *slog.Logger
	Key    pseudonym.Key
}

// RecordView records that actor saw the evidence of userIDs on the page of ring ringID.
func (v LogViews) RecordView(ctx context.Context, actor string, userIDs []string, ringID string) {
	seen := make([]string, len(userIDs))
	for i, id := range userIDs {
		seen[i] = v.Key.Of(id)
	}
	// "subjects", not "user_ids": the values are pseudonyms already, and a userId key would have
	// the logger hash them a second time.
	v.Logger.LogAttrs(ctx, slog.LevelInfo, "evidence viewed",
		slog.String("actor", actor), slog.String("ring_id", ringID), slog.Any("subjects", seen), slog.Int("accounts", len(seen)))
}
