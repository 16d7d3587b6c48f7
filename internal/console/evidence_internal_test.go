package console

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/evidence"
)

// Every way a look-up can fail has words for the page: a new outcome cannot show a blank.
func TestEveryFailedLookUpSaysWhyOnThePage(t *testing.T) {
	t.Parallel()
	for _, o := range evidence.Outcomes {
		if o == evidence.OutcomeOK || o == evidence.OutcomeCached {
			continue
		}
		require.NotEmpty(t, missingText[o], "no text for outcome %s", o)
	}
}
