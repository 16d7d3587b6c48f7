package service_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/consumer"
	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/harness/advancesim"
	"github.com/doppelhq/doppel/internal/harness/testinfra"
)

// The vendor returns the userIds its customer passed to generateUrl, unchecked. One that breaks the
// userId rule (a NUL, which PostgreSQL cannot store at all, or a control character) is neither
// stored nor linked, and the rest of the answer is; a get-result naming such a user is a dead
// letter with its reason. Before, such a check could never be saved: the database error made its
// partition wait for ever.
func TestAVendorAnswerNamingAnInvalidUserIDLinksTheRestAndStallsNothing(t *testing.T) {
	t.Parallel()
	f := setup(t, advancesim.Config{})
	testinfra.AddSession(t, f.sim, "nul\x00user", "F7", "PASS")
	testinfra.AddSession(t, f.sim, "walter", "F7", "PASS")
	zoe := testinfra.AddSession(t, f.sim, "zoe", "F7", "PASS")
	tab := testinfra.AddSession(t, f.sim, "tab\tuser", "F8", "PASS")
	stop := f.start(t)
	defer stop()

	// The second event has no userId: get-result gives the user's own, which is not valid.
	testinfra.Produce(t, f.cfg.TopicEvents, event(zoe, "COMPLETED", "zoe"), event(tab, "COMPLETED", ""))
	f.waitForChecks(t, 2, 60*time.Second)

	require.Equal(t, []string{"walter~zoe"}, f.links(t))
	require.Equal(t, map[string]string{zoe: "duplicates_found", tab: "failed"}, f.outcomes(t))
	similar := f.bySignature(t, `SELECT signature_id, array_to_string(similar_user_ids, ',') FROM idv_checks`)
	require.Equal(t, "walter", similar[zoe], "the invalid id is not stored as the vendor's answer either")

	dead := testinfra.ReadAll(t, f.cfg.TopicDLQ, 1, 30*time.Second)
	require.Equal(t, duplicate.ReasonInvalidUserID, header(dead[0], consumer.HeaderReason))
	require.Contains(t, header(dead[0], consumer.HeaderError), `"tab\tuser"`)
}
