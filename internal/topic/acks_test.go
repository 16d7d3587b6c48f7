package topic_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/harness/testinfra"
	"github.com/doppelhq/doppel/internal/topic"
)

// On a cluster, min.insync.replicas means something only to a producer that asks for acks=all:
// kafka-go's default is no acknowledgement at all.
func TestEveryWriterWaitsForEveryInSyncReplica(t *testing.T) {
	t.Parallel()
	w := topic.NewWriter([]string{"127.0.0.1:9092"}, "any", topic.WriterConfig{})
	defer w.Close()
	require.Equal(t, kafka.RequireAll, w.RequiredAcks)
}

// NewWriter is the one producer factory: a kafka.Writer built anywhere else could leave
// RequiredAcks at kafka-go's default, and nothing would show it until a broker died.
func TestNoProducerIsBuiltOutsideNewWriter(t *testing.T) {
	t.Parallel()
	root := testinfra.RepoRoot()
	factory := filepath.Join(root, "internal", "topic", "client.go")
	var found []string
	require.NoError(t, filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".local" || d.Name() == ".git" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") || path == factory {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if s := string(b); strings.Contains(s, "kafka.Writer{") || strings.Contains(s, "RequiredAcks") {
			found = append(found, strings.TrimPrefix(path, root+"/"))
		}
		return nil
	}))
	require.Empty(t, found, "build producers with topic.NewWriter (acks=all), not kafka.Writer{...}")
}
