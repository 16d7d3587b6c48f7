package config_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/config"
)

var twoRegions = map[string]string{
	"DOPPEL_DATABASE_URL":              minimal["DOPPEL_DATABASE_URL"],
	"DOPPEL_KAFKA_BROKERS":             "k1:9092",
	"DOPPEL_ADVANCE_QPS":               "20",
	"DOPPEL_ADVANCE_REGIONS":           "PH, th",
	"DOPPEL_ADVANCE_DEFAULT_REGION":    "TH",
	"DOPPEL_ADVANCE_PH_BASE_URL":       "https://ph-api.advance.ai",
	"DOPPEL_ADVANCE_PH_ACCESS_KEY":     "ph-access-secret",
	"DOPPEL_ADVANCE_PH_SECRET_KEY":     "ph-secret-secret",
	"DOPPEL_ADVANCE_PH_QPS":            "5",
	"DOPPEL_ADVANCE_PH_MONTHLY_BUDGET": "10000",
	"DOPPEL_ADVANCE_TH_BASE_URL":       "https://th-api.advance.ai",
	"DOPPEL_ADVANCE_TH_ACCESS_KEY":     "th-access-secret",
	"DOPPEL_ADVANCE_TH_SECRET_KEY":     "th-secret-secret",
}

func with(base map[string]string, changes ...string) map[string]string {
	out := map[string]string{}
	for k, v := range base {
		out[k] = v
	}
	for i := 0; i+1 < len(changes); i += 2 {
		out[changes[i]] = changes[i+1]
	}
	return out
}

func TestWithoutRegionsTheFlatSettingsAreTheRegionDefault(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load("", env(minimal))
	require.NoError(t, err)
	require.Equal(t, []config.Region{{Name: "default", BaseURL: "https://sg-api.advance.ai", AccessKey: "ak-123",
		SecretKey: "sk-456", QPS: 50}}, cfg.Regions())
	require.Equal(t, "default", cfg.DefaultRegion())
}

func TestEachRegionHasItsOwnAccountFromTheEnvironment(t *testing.T) {
	t.Parallel()
	l, err := config.LoadEnv("", with(twoRegions, "DOPPEL_ADVANCE_VN_BASE_URL", "https://vn-api.advance.ai"))
	require.NoError(t, err)
	cfg := l.Config
	require.Equal(t, []config.Region{
		{Name: "ph", BaseURL: "https://ph-api.advance.ai", AccessKey: "ph-access-secret", SecretKey: "ph-secret-secret", QPS: 5, MonthlyBudget: 10000},
		{Name: "th", BaseURL: "https://th-api.advance.ai", AccessKey: "th-access-secret", SecretKey: "th-secret-secret", QPS: 20},
	}, cfg.Regions(), "codes are lower case; a region without its own QPS takes DOPPEL_ADVANCE_QPS")
	require.Equal(t, "th", cfg.DefaultRegion())
	// Each region's polling takes 10% of that region's rate.
	require.InDelta(t, 0.5, cfg.PollQPSOf(cfg.Regions()[0].QPS), 1e-9)
	require.InDelta(t, 2.0, cfg.PollQPSOf(cfg.Regions()[1].QPS), 1e-9)

	require.Equal(t, []config.Unknown{{Name: "DOPPEL_ADVANCE_VN_BASE_URL", Nearest: "DOPPEL_ADVANCE_BASE_URL"}}, l.Unknown,
		"a configured region's variables are settings; a region not listed is not")

	var out bytes.Buffer
	require.NoError(t, l.Describe(&out))
	require.Regexp(t, `DOPPEL_ADVANCE_PH_BASE_URL=https://ph-api.advance.ai\s+# environment\n`, out.String())
	require.Regexp(t, `DOPPEL_ADVANCE_PH_MONTHLY_BUDGET=10000\s+# environment\n`, out.String())
	require.Regexp(t, `DOPPEL_ADVANCE_TH_SECRET_KEY=\*\*\*\*\*\s+# environment\n`, out.String())
	require.Regexp(t, `DOPPEL_ADVANCE_TH_MONTHLY_BUDGET=0\s+# default\n`, out.String())
	require.NotContains(t, out.String(), "-secret", "no region's key is printed")
}

func TestRegionsFromTheFileWithTheEnvironmentOnTop(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "doppel.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`
advance:
  regions:
    my:
      base_url: https://my-api.advance.ai
      access_key: my-a
      secret_key: my-s
      monthly_budget: 500
    ph:
      base_url: https://ph-api.advance.ai
      access_key: ph-a
      secret_key: ph-s
      qps: 3
`), 0o600))
	cfg, err := config.Load(path, env(with(minimal, "DOPPEL_ADVANCE_MY_MONTHLY_BUDGET", "600")))
	require.NoError(t, err)
	require.Equal(t, []string{"my", "ph"}, cfg.RegionNames())
	regions := cfg.Regions()
	require.EqualValues(t, 600, regions[0].MonthlyBudget, "the variable wins over the file")
	require.InDelta(t, 3, regions[1].QPS, 0)
	require.Equal(t, "my", cfg.DefaultRegion(), "the first region when none is named")
}

func TestACommandValidatingTheVendorValidatesEveryRegion(t *testing.T) {
	t.Parallel()
	_, err := config.LoadEnv("", with(twoRegions, "DOPPEL_ADVANCE_TH_BASE_URL", ""), "DOPPEL_ADVANCE_BASE_URL")
	require.ErrorContains(t, err, "DOPPEL_ADVANCE_TH_BASE_URL is not set")
	_, err = config.LoadEnv("", with(twoRegions, "DOPPEL_ADVANCE_TH_BASE_URL", ""), "DOPPEL_DATABASE_URL")
	require.NoError(t, err, "a command without the vendor does not need its regions")
}

// A region's own review SLA applies to its cases; the others use DOPPEL_REVIEW_SLA.
func TestAReviewSLAPerRegion(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load("", env(with(with(twoRegions, "DOPPEL_ADVANCE_TH_REVIEW_SLA", "4h"), "DOPPEL_REVIEW_SLA", "12h")))
	require.NoError(t, err)
	def, regions := cfg.CaseSLA()
	require.Equal(t, 12*time.Hour, def)
	require.Equal(t, map[string]time.Duration{"th": 4 * time.Hour}, regions)
	require.Equal(t, 10, cfg.CaseCap, "the default cap")
}

func TestBadRegionSettingsSayWhatToSet(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		env  map[string]string
		want string
	}{
		"missing key":      {with(twoRegions, "DOPPEL_ADVANCE_TH_SECRET_KEY", ""), "DOPPEL_ADVANCE_TH_SECRET_KEY is not set"},
		"bad url":          {with(twoRegions, "DOPPEL_ADVANCE_PH_BASE_URL", "ph-api"), "DOPPEL_ADVANCE_PH_BASE_URL must be an http:// or https:// URL"},
		"bad code":         {with(twoRegions, "DOPPEL_ADVANCE_REGIONS", "ph,t-h"), `DOPPEL_ADVANCE_REGIONS entry "t-h"`},
		"twice":            {with(twoRegions, "DOPPEL_ADVANCE_REGIONS", "ph,th,PH"), `DOPPEL_ADVANCE_REGIONS lists "ph" twice`},
		"unknown default":  {with(twoRegions, "DOPPEL_ADVANCE_DEFAULT_REGION", "vn"), `DOPPEL_ADVANCE_DEFAULT_REGION "vn" is not one of DOPPEL_ADVANCE_REGIONS (ph,th)`},
		"bad budget":       {with(twoRegions, "DOPPEL_ADVANCE_PH_MONTHLY_BUDGET", "lots"), "DOPPEL_ADVANCE_PH_MONTHLY_BUDGET: want a whole number"},
		"negative budget":  {with(twoRegions, "DOPPEL_ADVANCE_PH_MONTHLY_BUDGET", "-1"), "DOPPEL_ADVANCE_PH_MONTHLY_BUDGET must be 0 (no budget)"},
		"bad qps":          {with(twoRegions, "DOPPEL_ADVANCE_TH_QPS", "fast"), "DOPPEL_ADVANCE_TH_QPS: want a number"},
		"bad review sla":   {with(twoRegions, "DOPPEL_ADVANCE_TH_REVIEW_SLA", "soon"), "DOPPEL_ADVANCE_TH_REVIEW_SLA: want a duration"},
		"zero review sla":  {with(twoRegions, "DOPPEL_ADVANCE_PH_REVIEW_SLA", "0s"), "DOPPEL_ADVANCE_PH_REVIEW_SLA must be a positive duration"},
		"zero default sla": {with(twoRegions, "DOPPEL_REVIEW_SLA", "0s"), "DOPPEL_REVIEW_SLA must be a positive duration"},
		"negative cap":     {with(twoRegions, "DOPPEL_CASE_CAP", "-1"), "DOPPEL_CASE_CAP must be 0 (no cap)"},
		"polling above a region's rate": {with(twoRegions, "DOPPEL_RECONCILE_QPS", "8"),
			"DOPPEL_RECONCILE_QPS (8) must be below DOPPEL_ADVANCE_PH_QPS (5)"},
		"default without regions": {with(minimal, "DOPPEL_ADVANCE_DEFAULT_REGION", "ph"),
			"DOPPEL_ADVANCE_DEFAULT_REGION is \"ph\" but DOPPEL_ADVANCE_REGIONS is not set"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := config.Load("", env(tc.env))
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
			require.False(t, strings.Contains(err.Error(), "-secret"), "no key in the message")
		})
	}
}
