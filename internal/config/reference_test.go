package config

import (
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// updateDocs rewrites docs/configuration.md instead of comparing it: `make docs`.
var updateDocs = flag.Bool("update-docs", false, "rewrite docs/configuration.md from the Config struct")

const referencePath = "../../docs/configuration.md"

// fieldDocs returns the doc comment of each field of the struct named typeName in file, by field
// name, as one line.
func fieldDocs(t *testing.T, file, typeName string) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.ParseComments)
	require.NoError(t, err)
	docs := map[string]string{}
	ast.Inspect(f, func(n ast.Node) bool {
		ts, ok := n.(*ast.TypeSpec)
		if !ok || ts.Name.Name != typeName {
			return true
		}
		for _, field := range ts.Type.(*ast.StructType).Fields.List {
			if field.Doc != nil && len(field.Names) == 1 {
				docs[field.Names[0].Name] = strings.Join(strings.Fields(field.Doc.Text()), " ")
			}
		}
		return false
	})
	return docs
}

// describe turns a field's doc comment into the reference's wording: a comment that starts with the
// Go name starts with the variable instead.
func describe(doc, goName, variable string) string {
	if rest, ok := strings.CutPrefix(doc, goName+" "); ok {
		return "`" + variable + "` " + rest
	}
	return doc
}

// reference writes the configuration reference from the Config struct: every setting's variable,
// YAML key, default and doc comment, then the per-region settings of RegionSettings.
func reference(t *testing.T) string {
	var b strings.Builder
	b.WriteString(`# Configuration

<!-- Generated from the Config struct (internal/config/config.go) and its doc comments by
     TestTheConfigurationReferenceIsTheStruct; change the struct, then run make docs. -->

Doppel reads environment variables, optionally on top of a YAML file (` + "`doppel --config FILE`" + `
or ` + "`DOPPEL_CONFIG`" + `; every key is in ` + "`configs/doppel.example.yaml`" + `). Variables win
over the file, the file over the defaults; an empty variable counts as unset. An invalid
configuration stops start-up with one line per problem, each naming the variable to set; a
` + "`DOPPEL_*`" + ` variable that is no setting is reported with the nearest setting's name.
` + "`doppel config check`" + ` prints every effective setting and where it came from, secrets masked.
Secrets never appear in logs or error messages.

| variable | YAML key | default | meaning |
|---|---|---|---|
`)
	docs := fieldDocs(t, "config.go", "Config")
	def := reflect.ValueOf(Default())
	typ := def.Type()
	for _, s := range Settings() {
		f := typ.Field(s.field)
		doc := docs[f.Name]
		require.NotEmpty(t, doc, "Config.%s (%s) has no doc comment: say what it does, for docs/configuration.md", f.Name, s.Env)
		value := formatValue(def.Field(s.field))
		switch {
		case s.Secret && value == "":
			value = "(secret)"
		case s.Secret:
			value = "(secret) " + value
		case value == "" || value == "0" && strings.Contains(doc, "required"):
			value = "–"
		}
		fmt.Fprintf(&b, "| `%s` | `%s` | %s | %s |\n", s.Env, s.Key, cell(value), describe(doc, f.Name, s.Env))
	}
	b.WriteString(`
## Per region

With ` + "`DOPPEL_ADVANCE_REGIONS`" + ` (e.g. ` + "`ph,th`" + `), each region R has its own vendor account, set by
` + "`DOPPEL_ADVANCE_<R>_*`" + ` (R upper case: ` + "`DOPPEL_ADVANCE_PH_BASE_URL`" + `) or in the file under
` + "`advance.regions.<r>`" + `. See [regions.md](regions.md).

| variable | YAML key | meaning |
|---|---|---|
`)
	regionDocs := fieldDocs(t, "regions.go", "RegionSettings")
	rt := reflect.TypeFor[RegionSettings]()
	for i := range rt.NumField() {
		f := rt.Field(i)
		suffix, key := f.Tag.Get("envsuffix"), f.Tag.Get("yaml")
		require.NotEmpty(t, suffix, "RegionSettings.%s has no envsuffix tag", f.Name)
		require.NotEmpty(t, regionDocs[f.Name], "RegionSettings.%s has no doc comment", f.Name)
		fmt.Fprintf(&b, "| `DOPPEL_ADVANCE_<R>_%s` | `advance.regions.<r>.%s` | %s |\n", suffix, key, regionDocs[f.Name])
	}
	return b.String()
}

func cell(s string) string {
	if s == "–" || strings.HasPrefix(s, "(") {
		return s
	}
	return "`" + strings.ReplaceAll(s, "|", `\|`) + "`"
}

// docs/configuration.md is generated from the Config struct, so every setting is documented, once,
// where it is declared, and the reference cannot drift: a new setting without a doc comment, or a
// reference not regenerated, fails here.
func TestTheConfigurationReferenceIsTheStruct(t *testing.T) {
	want := reference(t)
	if *updateDocs {
		require.NoError(t, os.WriteFile(referencePath, []byte(want), 0o644))
	}
	got, err := os.ReadFile(referencePath)
	require.NoError(t, err, "run make docs to write docs/configuration.md")
	require.Equal(t, want, string(got), "docs/configuration.md is not what the Config struct says: run make docs")
}

// Every per-region variable the loader reads is one RegionSettings declares (envsuffix), so the
// reference lists what the code reads.
func TestTheRegionVariablesAreTheDeclaredOnes(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("regions.go")
	require.NoError(t, err)
	declared := map[string]bool{}
	rt := reflect.TypeFor[RegionSettings]()
	for i := range rt.NumField() {
		declared[rt.Field(i).Tag.Get("envsuffix")] = true
	}
	read := regexp.MustCompile(`regionVar\([a-z]+, "([A-Z_]+)"\)`).FindAllStringSubmatch(string(src), -1)
	require.NotEmpty(t, read)
	for _, m := range read {
		require.True(t, declared[m[1]], "DOPPEL_ADVANCE_<R>_%s is read but RegionSettings declares no envsuffix for it", m[1])
	}
}
