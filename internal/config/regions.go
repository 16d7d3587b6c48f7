package config

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/doppelhq/doppel/internal/duplicate"
)

// DefaultRegionName is the one region there is when DOPPEL_ADVANCE_REGIONS is unset: the flat
// DOPPEL_ADVANCE_BASE_URL, _ACCESS_KEY, _SECRET_KEY and _QPS settings.
const DefaultRegionName = duplicate.DefaultRegion

// Advance holds the YAML section advance: regions: <r>: {base_url, ...}; the variables
// DOPPEL_ADVANCE_<R>_BASE_URL and so on override it per region.
type Advance struct {
	Regions map[string]RegionSettings `yaml:"regions"`
}

// RegionSettings are one region's vendor account as configured; unset values fall back to the
// flat settings (QPS) or to none (MonthlyBudget 0). The envsuffix tag names the variable's end:
// DOPPEL_ADVANCE_<R>_ + suffix.
type RegionSettings struct {
	// The region's vendor host, e.g. `https://ph-api.advance.ai` (required).
	BaseURL string `yaml:"base_url" envsuffix:"BASE_URL"`
	// The region's vendor access key (required, secret).
	AccessKey string `yaml:"access_key" envsuffix:"ACCESS_KEY"`
	// The region's vendor secret key (required, secret).
	SecretKey string `yaml:"secret_key" envsuffix:"SECRET_KEY"`
	// The region's vendor calls per second, a client-side limit (default `DOPPEL_ADVANCE_QPS`).
	QPS *float64 `yaml:"qps" envsuffix:"QPS"`
	// The most face searches per calendar month (UTC) in the region; 0: no budget.
	MonthlyBudget int64 `yaml:"monthly_budget" envsuffix:"MONTHLY_BUDGET"`
	// How long a case whose first alert came from the region may wait for a decision (default
	// `DOPPEL_REVIEW_SLA`).
	ReviewSLA *time.Duration `yaml:"review_sla" envsuffix:"REVIEW_SLA"`
	// The path of the region's data-clearing call (default `DOPPEL_ADVANCE_CLEAR_DATA_PATH`; empty: none).
	ClearDataPath *string `yaml:"clear_data_path" envsuffix:"CLEAR_DATA_PATH"`
	// How long the region's data is kept, a Go duration (default `DOPPEL_RETENTION`; 0: keep).
	Retention *time.Duration `yaml:"retention" envsuffix:"RETENTION"`
}

// Region is one vendor account of the effective configuration: a face search in a region only
// searches that region's verifications, under its own keys, rate limit and bill.
type Region struct {
	Name      string
	BaseURL   string
	AccessKey string
	SecretKey string
	QPS       float64
	// MonthlyBudget is the most face searches per calendar month (UTC); 0 means no budget.
	MonthlyBudget int64
	// ClearDataPath is the path of the account's data-clearing call; "" when it has none.
	ClearDataPath string
	// Retention is how long the region's data is kept; 0 keeps it.
	Retention time.Duration
}

var regionCode = regexp.MustCompile(`^[a-z][a-z0-9]{0,15}$`)

// regionVar names region r's variable for setting (BASE_URL, ACCESS_KEY, ...).
func regionVar(r, setting string) string {
	return "DOPPEL_ADVANCE_" + strings.ToUpper(r) + "_" + setting
}

// RegionNames returns the configured region codes: DOPPEL_ADVANCE_REGIONS, else the YAML
// advance.regions keys (sorted), else the one region named "default".
func (c Config) RegionNames() []string {
	if len(c.AdvanceRegions) > 0 {
		return c.AdvanceRegions
	}
	if len(c.Advance.Regions) > 0 {
		names := make([]string, 0, len(c.Advance.Regions))
		for r := range c.Advance.Regions {
			names = append(names, r)
		}
		slices.Sort(names)
		return names
	}
	return []string{DefaultRegionName}
}

// regional reports whether regions are configured by name rather than by the flat settings.
func (c Config) regional() bool {
	return len(c.AdvanceRegions) > 0 || len(c.Advance.Regions) > 0
}

// Regions returns every region's effective settings, in RegionNames' order.
func (c Config) Regions() []Region {
	if !c.regional() {
		return []Region{{Name: DefaultRegionName, BaseURL: c.AdvanceBaseURL, AccessKey: c.AdvanceAccessKey,
			SecretKey: c.AdvanceSecretKey, QPS: c.AdvanceQPS, ClearDataPath: c.AdvanceClearDataPath, Retention: c.Retention}}
	}
	var out []Region
	for _, name := range c.RegionNames() {
		s := c.Advance.Regions[name]
		qps := c.AdvanceQPS
		if s.QPS != nil {
			qps = *s.QPS
		}
		clear := c.AdvanceClearDataPath
		if s.ClearDataPath != nil {
			clear = *s.ClearDataPath
		}
		retention := c.Retention
		if s.Retention != nil {
			retention = *s.Retention
		}
		out = append(out, Region{Name: name, BaseURL: s.BaseURL, AccessKey: s.AccessKey, SecretKey: s.SecretKey,
			QPS: qps, MonthlyBudget: s.MonthlyBudget, ClearDataPath: clear, Retention: retention})
	}
	return out
}

// CaseSLA returns how long a case may wait for a decision: DOPPEL_REVIEW_SLA, or a region's own
// DOPPEL_ADVANCE_<R>_REVIEW_SLA.
func (c Config) CaseSLA() (time.Duration, map[string]time.Duration) {
	regions := map[string]time.Duration{}
	for r, s := range c.Advance.Regions {
		if s.ReviewSLA != nil {
			regions[r] = *s.ReviewSLA
		}
	}
	return c.ReviewSLA, regions
}

// DefaultRegion returns the region of an event that names none: DOPPEL_ADVANCE_DEFAULT_REGION, else
// the first configured region.
func (c Config) DefaultRegion() string {
	if c.AdvanceDefaultRegion != "" {
		return c.AdvanceDefaultRegion
	}
	return c.RegionNames()[0]
}

// sectionKeys are the file's top-level keys that hold sections rather than one setting.
var sectionKeys = []string{"advance"}

// regionSettings are the per-region variables' suffixes: DOPPEL_ADVANCE_<R>_<suffix>.
var regionSettings = []string{"BASE_URL", "ACCESS_KEY", "SECRET_KEY", "QPS", "MONTHLY_BUDGET", "REVIEW_SLA", "CLEAR_DATA_PATH", "RETENTION"}

var regionVariablePattern = regexp.MustCompile(`^DOPPEL_ADVANCE_([A-Z][A-Z0-9]*)_(BASE_URL|ACCESS_KEY|SECRET_KEY|QPS|MONTHLY_BUDGET|REVIEW_SLA|CLEAR_DATA_PATH|RETENTION)$`)

// regionVariable reports whether name is a variable of a configured region.
func (c Config) regionVariable(name string) bool {
	m := regionVariablePattern.FindStringSubmatch(name)
	return m != nil && c.regional() && slices.Contains(c.RegionNames(), strings.ToLower(m[1]))
}

// flatRegionVariable maps a region's variable to the single-region setting it stands for
// (DOPPEL_ADVANCE_PH_BASE_URL to DOPPEL_ADVANCE_BASE_URL; a budget to DOPPEL_ADVANCE_REGIONS), so
// that a command validating the vendor settings validates every region's too.
func flatRegionVariable(name string) string {
	m := regionVariablePattern.FindStringSubmatch(name)
	switch {
	case m == nil:
		return name
	case m[2] == "RETENTION":
		return "DOPPEL_RETENTION"
	case m[2] == "MONTHLY_BUDGET":
		return "DOPPEL_ADVANCE_REGIONS"
	case m[2] == "REVIEW_SLA":
		return "DOPPEL_REVIEW_SLA"
	default:
		return "DOPPEL_ADVANCE_" + m[2]
	}
}

// applyRegionEnv lower-cases the region list and reads each region's DOPPEL_ADVANCE_<R>_* variables
// over its YAML settings, recording in sources the variables it used.
func applyRegionEnv(c *Config, getenv func(string) string, sources map[string]Source) error {
	for i, r := range c.AdvanceRegions {
		c.AdvanceRegions[i] = strings.ToLower(r)
	}
	c.AdvanceDefaultRegion = strings.ToLower(strings.TrimSpace(c.AdvanceDefaultRegion))
	if !c.regional() {
		return nil
	}
	if c.Advance.Regions == nil {
		c.Advance.Regions = map[string]RegionSettings{}
	}
	var errs []error
	for _, r := range c.RegionNames() {
		if !regionCode.MatchString(r) {
			continue // reported by Validate
		}
		s, inFile := c.Advance.Regions[r]
		for _, setting := range regionSettings {
			if inFile {
				sources[regionVar(r, setting)] = SourceFile
			}
		}
		get := func(setting string) string {
			v := strings.TrimSpace(getenv(regionVar(r, setting)))
			if v != "" {
				sources[regionVar(r, setting)] = SourceEnv
			}
			return v
		}
		if v := get("BASE_URL"); v != "" {
			s.BaseURL = v
		}
		if v := get("ACCESS_KEY"); v != "" {
			s.AccessKey = v
		}
		if v := get("SECRET_KEY"); v != "" {
			s.SecretKey = v
		}
		if v := get("QPS"); v != "" {
			q, err := strconv.ParseFloat(v, 64)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: want a number, got %q", regionVar(r, "QPS"), v))
			}
			s.QPS = &q
		}
		if v := get("MONTHLY_BUDGET"); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: want a whole number, got %q", regionVar(r, "MONTHLY_BUDGET"), v))
			}
			s.MonthlyBudget = n
		}
		if v := get("REVIEW_SLA"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: want a duration such as 4h, got %q", regionVar(r, "REVIEW_SLA"), v))
			}
			s.ReviewSLA = &d
		}
		if v := get("CLEAR_DATA_PATH"); v != "" {
			s.ClearDataPath = &v
		}
		if v := get("RETENTION"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: want a Go duration such as 43800h (0: keep), got %q", regionVar(r, "RETENTION"), v))
			}
			s.Retention = &d
		}
		c.Advance.Regions[r] = s
	}
	return errors.Join(errs...)
}

// validateRegions reports every problem of the vendor accounts, each naming the variable to set.
func (c Config) validateRegions(bad func(format string, args ...any)) {
	if !c.regional() {
		if c.AdvanceDefaultRegion != "" && c.AdvanceDefaultRegion != DefaultRegionName {
			bad("DOPPEL_ADVANCE_DEFAULT_REGION is %q but DOPPEL_ADVANCE_REGIONS is not set: list the regions in DOPPEL_ADVANCE_REGIONS, or unset it", c.AdvanceDefaultRegion)
		}
		validateAccount(bad, c.AdvanceBaseURL, c.AdvanceAccessKey, c.AdvanceSecretKey, "DOPPEL_ADVANCE_BASE_URL",
			"DOPPEL_ADVANCE_ACCESS_KEY", "DOPPEL_ADVANCE_SECRET_KEY")
		if c.AdvanceQPS < 0 {
			bad("DOPPEL_ADVANCE_QPS must be 0 (no client-side limit) or positive, got %g", c.AdvanceQPS)
		}
		validateClearDataPath(bad, "DOPPEL_ADVANCE_CLEAR_DATA_PATH", c.AdvanceClearDataPath)
		return
	}
	names := c.RegionNames()
	seen := map[string]bool{}
	for _, r := range names {
		if !regionCode.MatchString(r) {
			bad("DOPPEL_ADVANCE_REGIONS entry %q must be a region code of lower-case letters and digits, starting with a letter, e.g. ph", r)
			continue
		}
		if seen[r] {
			bad("DOPPEL_ADVANCE_REGIONS lists %q twice", r)
		}
		seen[r] = true
	}
	for _, reg := range c.Regions() {
		if !regionCode.MatchString(reg.Name) {
			continue
		}
		validateAccount(bad, reg.BaseURL, reg.AccessKey, reg.SecretKey, regionVar(reg.Name, "BASE_URL"),
			regionVar(reg.Name, "ACCESS_KEY"), regionVar(reg.Name, "SECRET_KEY"))
		if sla := c.Advance.Regions[reg.Name].ReviewSLA; sla != nil && *sla <= 0 {
			bad("%s must be a positive duration such as 4h, got %s", regionVar(reg.Name, "REVIEW_SLA"), *sla)
		}
		if reg.QPS < 0 {
			bad("%s must be 0 (no client-side limit) or positive, got %g", regionVar(reg.Name, "QPS"), reg.QPS)
		}
		if c.regional() && reg.QPS > 0 && c.ReconcileQPS >= reg.QPS {
			bad("DOPPEL_RECONCILE_QPS (%g) must be below %s (%g): each region's polling takes that share of the region's rate",
				c.ReconcileQPS, regionVar(reg.Name, "QPS"), reg.QPS)
		}
		validateClearDataPath(bad, regionVar(reg.Name, "CLEAR_DATA_PATH"), reg.ClearDataPath)
		if reg.Retention < 0 {
			bad("%s must be 0 (keep everything) or a positive Go duration, e.g. 43800h, got %s", regionVar(reg.Name, "RETENTION"), reg.Retention)
		}
		if reg.MonthlyBudget < 0 {
			bad("%s must be 0 (no budget) or a positive number of face searches, got %d", regionVar(reg.Name, "MONTHLY_BUDGET"), reg.MonthlyBudget)
		}
	}
	if c.AdvanceDefaultRegion != "" && !slices.Contains(names, c.AdvanceDefaultRegion) {
		bad("DOPPEL_ADVANCE_DEFAULT_REGION %q is not one of DOPPEL_ADVANCE_REGIONS (%s)", c.AdvanceDefaultRegion, strings.Join(names, ","))
	}
}

// validateClearDataPath checks a data-clearing path: empty, or a path on the vendor host.
func validateClearDataPath(bad func(string, ...any), name, path string) {
	if path != "" && (!strings.HasPrefix(path, "/") || strings.ContainsAny(path, "?# ")) {
		bad("%s must be empty (no data-clearing call) or a path on the vendor host starting with /, e.g. /intl/openapi/identity-risk/idvs-h5/ekyc/v1/clear-data, got %q", name, path)
	}
}

func validateAccount(bad func(string, ...any), baseURL, accessKey, secretKey, baseVar, accessVar, secretVar string) {
	if baseURL == "" {
		bad("%s is not set: set it to the vendor's regional host (https://<region>-api.advance.ai) or advance-sim's address", baseVar)
	} else if u, err := url.Parse(baseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("%s must be an http:// or https:// URL with a host", baseVar)
	}
	if accessKey == "" {
		bad("%s is not set: set it to the vendor access key", accessVar)
	}
	if secretKey == "" {
		bad("%s is not set: set it to the vendor secret key", secretVar)
	}
}

// describeRegions writes each named region's settings as the variables that set them, secrets masked.
func (c Config) describeRegions(w func(name, value string) error) error {
	if !c.regional() {
		return nil
	}
	for _, r := range c.Regions() {
		for _, kv := range [][2]string{
			{"BASE_URL", r.BaseURL}, {"ACCESS_KEY", maskSet(r.AccessKey)}, {"SECRET_KEY", maskSet(r.SecretKey)},
			{"QPS", strconv.FormatFloat(r.QPS, 'g', -1, 64)}, {"MONTHLY_BUDGET", strconv.FormatInt(r.MonthlyBudget, 10)},
			{"CLEAR_DATA_PATH", r.ClearDataPath}, {"RETENTION", r.Retention.String()},
		} {
			if err := w(regionVar(r.Name, kv[0]), kv[1]); err != nil {
				return err
			}
		}
	}
	return nil
}

func maskSet(s string) string {
	if s == "" {
		return ""
	}
	return "*****"
}
