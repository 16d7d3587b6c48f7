package main

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	composecli "github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/config"
	"github.com/doppelhq/doppel/internal/harness/advancesim"
	"github.com/doppelhq/doppel/internal/httpapi"
)

// loadCompose loads docker-compose.yml as `docker compose` does (compose-spec's own loader), with
// every profile, its env files and the default interpolation.
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	opts, err := composecli.NewProjectOptions([]string{"../../docker-compose.yml"},
		composecli.WithWorkingDirectory("../.."), composecli.WithProfiles([]string{"*"}),
		composecli.WithEnv([]string{}), composecli.WithName("doppel"))
	require.NoError(t, err)
	project, err := opts.LoadProject(context.Background())
	require.NoError(t, err, "docker compose config would fail")
	return project
}

func TestComposeSetsOnlyKnownSettings(t *testing.T) {
	t.Parallel()
	known := map[string]bool{"DOPPEL_CONFIG": true}
	for _, s := range config.Settings() {
		known[s.Env] = true
	}
	project := loadCompose(t)
	for name, svc := range project.Services {
		for k := range svc.Environment {
			if strings.HasPrefix(k, "DOPPEL_") {
				require.True(t, known[k], "service %s sets %s, which is no Doppel setting", name, k)
			}
		}
	}
	doppel := project.Services["doppel"]
	for _, k := range []string{"DOPPEL_API_KEYS", "DOPPEL_CALLBACK_TOKEN"} {
		require.NotNil(t, doppel.Environment[k], "doppel gets %s from compose.env.example", k)
		require.NotEmpty(t, *doppel.Environment[k], k)
	}
	// The values the README walk-through uses are valid for doppel itself.
	environ := map[string]string{}
	for k, v := range doppel.Environment {
		if v != nil {
			environ[k] = *v
		}
	}
	_, err := config.LoadEnv("", environ)
	require.NoError(t, err, "doppel serve would refuse the compose configuration")
}

func TestComposeHealthchecksProbeWhatTheImagesServe(t *testing.T) {
	t.Parallel()
	project := loadCompose(t)
	for name, svc := range project.Services {
		for dep, d := range svc.DependsOn {
			if d.Condition == types.ServiceConditionHealthy {
				require.NotNil(t, project.Services[dep].HealthCheck, "%s waits for %s to be healthy, which has no healthcheck", name, dep)
			}
		}
	}
	// Our own images are probed over HTTP on the address they listen on, at a path they answer.
	ours := map[string]struct {
		listenVar string
		handler   http.Handler
	}{
		"doppel":      {"DOPPEL_HTTP_ADDR", httpapi.New(httpapi.Config{}).Handler()},
		"advance-sim": {"ADVANCE_SIM_ADDR", advancesim.New(advancesim.Config{}).Handler()},
	}
	for name, want := range ours {
		svc := project.Services[name]
		require.NotNil(t, svc.HealthCheck, name)
		probe := regexp.MustCompile(`https?://[^\s"]+`).FindString(strings.Join(svc.HealthCheck.Test, " "))
		require.NotEmpty(t, probe, "%s's healthcheck probes a URL", name)
		u, err := url.Parse(probe)
		require.NoError(t, err)
		_, port, err := net.SplitHostPort(*svc.Environment[want.listenVar])
		require.NoError(t, err)
		require.Equal(t, port, u.Port(), "%s's healthcheck probes the port %s listens on", name, want.listenVar)
		rec := httptest.NewRecorder()
		want.handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, u.RequestURI(), nil))
		require.Equal(t, http.StatusOK, rec.Code, "%s answers its healthcheck's %s", name, u.Path)
	}
	for _, name := range []string{"kafka", "postgres"} {
		require.NotEmpty(t, project.Services[name].HealthCheck.Test, name)
	}
}

// hostOnly are the commands that drive the host's processes (benchmark, soak, scale) and are not shipped
// in an image.
var hostOnly = []string{"doppel-bench", "doppel-soak", "doppel-scale"}

func TestTheDockerfileBuildsTheCommandsThatExist(t *testing.T) {
	t.Parallel()
	dockerfile, err := os.ReadFile("../../Dockerfile")
	require.NoError(t, err)
	entries, err := os.ReadDir("../../cmd")
	require.NoError(t, err)
	var commands []string
	for _, e := range entries {
		if e.IsDir() {
			commands = append(commands, e.Name())
		}
	}
	var built []string
	for _, m := range regexp.MustCompile(`\./cmd/([a-z0-9-]+)`).FindAllStringSubmatch(string(dockerfile), -1) {
		require.Contains(t, commands, m[1], "the Dockerfile builds ./cmd/%s, which does not exist", m[1])
		built = append(built, m[1])
	}
	for _, c := range commands {
		require.True(t, slices.Contains(built, c) || slices.Contains(hostOnly, c),
			"cmd/%s is neither built by the Dockerfile nor listed as host-only", c)
	}
	// Every binary an image copies or runs is one that was built.
	for _, m := range regexp.MustCompile(`COPY --from=build /out/([a-z0-9-]+)`).FindAllStringSubmatch(string(dockerfile), -1) {
		require.Contains(t, built, m[1])
	}
	for _, m := range regexp.MustCompile(`ENTRYPOINT \["([a-z0-9-]+)"`).FindAllStringSubmatch(string(dockerfile), -1) {
		require.Contains(t, built, m[1])
	}
	// Every build target compose asks for is a stage of the Dockerfile.
	stages := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^FROM .* AS ([a-z0-9-]+)`).FindAllStringSubmatch(string(dockerfile), -1) {
		stages[m[1]] = true
	}
	for name, svc := range loadCompose(t).Services {
		if svc.Build != nil {
			require.True(t, stages[svc.Build.Target], "service %s builds target %q, which the Dockerfile lacks", name, svc.Build.Target)
		}
	}
}
