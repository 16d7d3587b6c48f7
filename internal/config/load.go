package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/agnivade/levenshtein"
	"github.com/caarlos0/env/v11"
	"go.yaml.in/yaml/v3"

	"github.com/doppelhq/doppel/internal/redact"
)

// Source says where a setting's effective value came from.
type Source string

// The sources, from weakest to strongest: a variable wins over the file, the file over the default.
const (
	SourceDefault Source = "default"
	SourceFile    Source = "file"
	SourceEnv     Source = "environment"
)

// Setting describes one field of Config, as its tags declare it.
type Setting struct {
	Env    string // the variable, e.g. DOPPEL_WORKERS
	Key    string // the YAML key, e.g. workers
	Secret bool   // masked when printed
	field  int
}

// Settings returns every setting in the order Config declares them.
func Settings() []Setting {
	t := reflect.TypeFor[Config]()
	out := make([]Setting, 0, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		if name := f.Tag.Get("env"); name != "" {
			key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			out = append(out, Setting{Env: name, Key: key, Secret: f.Tag.Get("secret") == "true", field: i})
		}
	}
	return out
}

// notSettings are DOPPEL_* variables that are not settings of a Config but are not mistakes
// either: DOPPEL_CONFIG names the file; DOPPEL_INFRA_* are scripts/infra.sh's own settings; the
// others are written by scripts/infra.sh for the scripts and tests beside doppel.
var notSettings = []string{"DOPPEL_CONFIG", "DOPPEL_PG_PORT", "DOPPEL_KAFKA_PORT",
	"DOPPEL_KAFKA_CONTROLLER_PORT", "DOPPEL_KAFKA_LIBS", "DOPPEL_KAFKA_NODES",
	"DOPPEL_INFRA_BROKERS", "DOPPEL_INFRA_DIR"}

// retired are variables that were settings once: setting one stops start-up with what to set
// instead, since silently ignoring it would leave an operator believing it still works.
var retired = map[string]string{
	"DOPPEL_PPROF_ADDR": "DOPPEL_PPROF_ADDR is no longer used: the profiler is served at /debug/pprof/ on the admin listener; remove it and set DOPPEL_ADMIN_ADDR (default 127.0.0.1:9090)",
}

// Unknown is a DOPPEL_* variable that is set but is no setting, which is usually a misspelling.
type Unknown struct {
	Name    string
	Nearest string // the closest known variable, or empty when none is close
}

func (u Unknown) String() string {
	if u.Nearest == "" {
		return u.Name + " is set but is not a Doppel setting: it is ignored"
	}
	return fmt.Sprintf("%s is set but is not a Doppel setting (did you mean %s?): it is ignored", u.Name, u.Nearest)
}

// Loaded is a loaded configuration together with where each value came from and the variables
// that looked like settings but were not.
type Loaded struct {
	Config  Config
	Sources map[string]Source // by variable name
	Unknown []Unknown
}

// Load builds the configuration from the defaults, the YAML file at path (if path is not empty) and
// the environment read through getenv, then validates all of it. It cannot see variables it does
// not know; LoadEnv, given the whole environment, reports them.
func Load(path string, getenv func(string) string) (Config, error) {
	environ := map[string]string{}
	for _, s := range Settings() {
		if v := getenv(s.Env); v != "" {
			environ[s.Env] = v
		}
	}
	for name := range retired {
		if v := getenv(name); v != "" {
			environ[name] = v
		}
	}
	l, err := loadEnv(path, environ, getenv)
	return l.Config, err
}

// LoadEnv builds the configuration from the defaults, the YAML file at path (if not empty) and
// environ (every variable, as from os.Environ), then validates it. Given names, it validates only
// those settings, so that a command needing the database does not demand vendor keys; the other
// settings are still loaded as given.
func LoadEnv(path string, environ map[string]string, names ...string) (Loaded, error) {
	return loadEnv(path, environ, func(k string) string { return environ[k] }, names...)
}

// loadEnv is LoadEnv reading the per-region variables, whose names depend on the regions
// configured, through getenv.
func loadEnv(path string, environ map[string]string, getenv func(string) string, names ...string) (Loaded, error) {
	l := Loaded{Config: Default(), Sources: map[string]Source{}}
	settings := Settings()
	for _, s := range settings {
		l.Sources[s.Env] = SourceDefault
	}
	if path != "" {
		keys, err := readFile(path, &l.Config)
		if err != nil {
			return Loaded{}, err
		}
		for _, s := range settings {
			if keys[s.Key] {
				l.Sources[s.Env] = SourceFile
			}
		}
	}
	vars := map[string]string{}
	for k, v := range environ {
		if v = strings.TrimSpace(v); v != "" {
			vars[k] = v // a blank variable leaves the file's value or the default, as unset does
		}
	}
	err := env.ParseWithOptions(&l.Config, env.Options{
		Environment: vars,
		FuncMap:     parsers,
		OnSet: func(name string, value any, _ bool) {
			if value != "" {
				l.Sources[name] = SourceEnv
			}
		},
	})
	errs := []error{envErrors(err, settings)}
	if rerr := applyRegionEnv(&l.Config, getenv, l.Sources); rerr != nil {
		errs = append(errs, rerr)
	}
	for name, instead := range retired {
		if vars[name] != "" {
			errs = append(errs, errors.New(instead))
		}
	}
	l.Unknown = unknownVariables(vars, settings, l.Config.regionVariable)
	if verr := l.Config.Validate(); verr != nil {
		errs = append(errs, verr)
	}
	return l, keepNaming(errors.Join(errs...), names)
}

// keepNaming keeps the problems that name one of the variables (every problem names the variable
// to set); no names keeps them all.
func keepNaming(err error, names []string) error {
	if err == nil || len(names) == 0 {
		return err
	}
	var kept []error
	for _, e := range flatten(err) {
		for _, name := range variableName.FindAllString(e.Error(), -1) {
			if slices.Contains(names, name) || slices.Contains(names, flatRegionVariable(name)) {
				kept = append(kept, e)
				break
			}
		}
	}
	return errors.Join(kept...)
}

var variableName = regexp.MustCompile(`DOPPEL_[A-Z0-9_]+`)

// flatten lists the problems inside errors.Join'ed errors.
func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// readFile decodes the YAML file into cfg and returns the keys it sets.
func readFile(path string, cfg *Config) (map[string]bool, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("open config file: %w", err)
	}
	var keys map[string]yaml.Node
	if err := yaml.Unmarshal(raw, &keys); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	settings := Settings()
	set := map[string]bool{}
	var unknown []error
	for k := range keys {
		set[k] = true
		if !slices.ContainsFunc(settings, func(s Setting) bool { return s.Key == k }) && !slices.Contains(sectionKeys, k) {
			// A misspelt key must not be silently ignored.
			if near := nearest(k, settings, func(s Setting) string { return s.Key }); near != "" {
				unknown = append(unknown, fmt.Errorf("config file %s: unknown key %q (did you mean %s?)", path, k, near))
			} else {
				unknown = append(unknown, fmt.Errorf("config file %s: unknown key %q", path, k))
			}
		}
	}
	if len(unknown) > 0 {
		slices.SortFunc(unknown, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
		return nil, errors.Join(unknown...)
	}
	if raw, err = listsFromStrings(raw, settings); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	return set, nil
}

// listsFromStrings rewrites a list setting written as one string ("a, b", as its variable takes it)
// into a YAML sequence. Besides matching the variable, it keeps yaml's type error, which quotes the
// start of the value, from printing part of a secret list such as callback_signing_secrets.
func listsFromStrings(raw []byte, settings []Setting) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return raw, nil
	}
	t := reflect.TypeFor[Config]()
	isList := func(key string) bool {
		i := slices.IndexFunc(settings, func(s Setting) bool { return s.Key == key })
		return i >= 0 && t.Field(settings[i].field).Type == reflect.TypeFor[[]string]()
	}
	m, changed := doc.Content[0], false
	for i := 0; i+1 < len(m.Content); i += 2 {
		v := m.Content[i+1]
		if v.Kind != yaml.ScalarNode || v.Tag == "!!null" || !isList(m.Content[i].Value) {
			continue
		}
		seq := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for _, part := range strings.Split(v.Value, ",") {
			if part = strings.TrimSpace(part); part != "" {
				seq.Content = append(seq.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: part})
			}
		}
		m.Content[i+1], changed = seq, true
	}
	if !changed {
		return raw, nil
	}
	return yaml.Marshal(&doc)
}

// envErrors turns the env library's errors into "VARIABLE: what is wrong" lines.
func envErrors(err error, settings []Setting) error {
	if err == nil {
		return nil
	}
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return err
	}
	t := reflect.TypeFor[Config]()
	var out []error
	for _, e := range agg.Errors {
		var pe env.ParseError
		if !errors.As(e, &pe) {
			out = append(out, e)
			continue
		}
		name := pe.Name
		for _, s := range settings {
			if t.Field(s.field).Name == pe.Name {
				name = s.Env
			}
		}
		out = append(out, fmt.Errorf("%s: %w", name, pe.Err))
	}
	return errors.Join(out...)
}

// parsers give the messages an operator can act on, instead of strconv's.
var parsers = map[reflect.Type]env.ParserFunc{
	reflect.TypeFor[int](): func(raw string) (any, error) {
		n, err := strconv.Atoi(raw)
		if err != nil {
			return nil, fmt.Errorf("want a whole number, got %q", raw)
		}
		return n, nil
	},
	reflect.TypeFor[bool](): func(raw string) (any, error) {
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return nil, fmt.Errorf("want true or false, got %q", raw)
		}
		return b, nil
	},
	reflect.TypeFor[float64](): func(raw string) (any, error) {
		x, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			return nil, fmt.Errorf("want a number, got %q", raw)
		}
		return x, nil
	},
	reflect.TypeFor[time.Duration](): func(raw string) (any, error) {
		d, err := time.ParseDuration(raw)
		if err != nil {
			return nil, fmt.Errorf("want a duration such as 500ms or 10s, got %q", raw)
		}
		return d, nil
	},
	// A comma-separated list; blanks around and between entries are dropped.
	reflect.TypeFor[[]string](): func(raw string) (any, error) {
		var list []string
		for _, part := range strings.Split(raw, ",") {
			if part = strings.TrimSpace(part); part != "" {
				list = append(list, part)
			}
		}
		return list, nil
	},
}

// unknownVariables lists the DOPPEL_* variables in vars that are no setting, each with the nearest
// setting's name when one is close enough to be a likely misspelling.
// known reports the variables that are settings without being fields (a region's).
func unknownVariables(vars map[string]string, settings []Setting, known func(string) bool) []Unknown {
	var out []Unknown
	for name := range vars {
		if !strings.HasPrefix(name, "DOPPEL_") || slices.Contains(notSettings, name) || retired[name] != "" || known(name) ||
			slices.ContainsFunc(settings, func(s Setting) bool { return s.Env == name }) {
			continue
		}
		out = append(out, Unknown{Name: name, Nearest: nearest(name, settings, func(s Setting) string { return s.Env })})
	}
	slices.SortFunc(out, func(a, b Unknown) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// nearest returns the setting name (as name gives it) closest to misspelt, or "" when none is close
// enough to be a likely misspelling: a third of the name (after DOPPEL_) may be wrong, but at
// least two characters, since one transposition (WORKRES) is two edits.
func nearest(misspelt string, settings []Setting, name func(Setting) string) string {
	limit := max(2, len(strings.TrimPrefix(misspelt, "DOPPEL_"))/3)
	best, bestDistance := "", limit+1
	for _, s := range settings {
		if d := levenshtein.ComputeDistance(misspelt, name(s)); d < bestDistance {
			best, bestDistance = name(s), d
		}
	}
	return best
}

// Describe writes the effective configuration, one "VARIABLE=value  # source" line per setting in
// declaration order, with secrets masked, for `doppel config check`.
func (l Loaded) Describe(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	v := reflect.ValueOf(l.Config)
	for _, s := range Settings() {
		val := formatValue(v.Field(s.field))
		if s.Secret && val != "" {
			val = mask(s.Env, val)
		}
		src := l.Sources[s.Env]
		if src == "" {
			src = SourceDefault
		}
		if _, err := fmt.Fprintf(tw, "%s=%s\t# %s\n", s.Env, val, src); err != nil {
			return err
		}
	}
	err := l.Config.describeRegions(func(name, value string) error {
		src := l.Sources[name]
		if src == "" {
			src = SourceDefault
		}
		_, err := fmt.Fprintf(tw, "%s=%s\t# %s\n", name, value, src)
		return err
	})
	if err != nil {
		return err
	}
	return tw.Flush()
}

func formatValue(f reflect.Value) string {
	switch x := f.Interface().(type) {
	case []string:
		return strings.Join(x, ",")
	case time.Duration:
		return x.String()
	default:
		return fmt.Sprint(x)
	}
}

// mask hides a secret; a database URL keeps everything but its password, which is what an operator
// needs to check where it points (redact.DatabaseURL is the one place that knows where passwords
// go: user:pass@ and ?password=).
func mask(name, val string) string {
	if name == "DOPPEL_DATABASE_URL" {
		return redact.DatabaseURL(val)
	}
	return "*****"
}

// checkListenAddr says what is wrong with a host:port to listen on ("must be ..."), or nil.
func checkListenAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("must be host:port or :port to listen on, got %q", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("must end in a port number from 0 to 65535, got %q", addr)
	}
	if host != "" && net.ParseIP(host) == nil && !validHostname(host) {
		return fmt.Errorf("must have an IP address or a host name before the port, got %q", addr)
	}
	return nil
}

var hostname = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$`)

func validHostname(h string) bool { return len(h) <= 253 && hostname.MatchString(h) }
