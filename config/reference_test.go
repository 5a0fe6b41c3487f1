package config

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestReferenceIsCurrent fails when docs/configuration.md is not what the
// settings' definitions generate: a setting added, removed or reworded
// without regenerating it.
func TestReferenceIsCurrent(t *testing.T) {
	var want bytes.Buffer
	if err := WriteReference(&want); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("..", filepath.FromSlash(ReferenceFile))
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v\nwrite it with: go generate ./config (or make docs)", err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(want.String(), "\n")
		for i := range max(len(gl), len(wl)) {
			g, w := lineAt(gl, i), lineAt(wl, i)
			if g != w {
				t.Fatalf("%s is stale: regenerate it with `go generate ./config` (or `make docs`)\nfirst difference, line %d:\n committed: %q\n generated: %q", ReferenceFile, i+1, g, w)
			}
		}
	}
}

func lineAt(lines []string, i int) string {
	if i < len(lines) {
		return lines[i]
	}
	return "<end of file>"
}

// TestReferenceListsEverySetting checks the reference against the struct
// itself and against --help: one table row per variable, in the same order
// as Usage prints them, each with its default.
func TestReferenceListsEverySetting(t *testing.T) {
	var ref, usage bytes.Buffer
	if err := WriteReference(&ref); err != nil {
		t.Fatal(err)
	}
	if err := Usage(&usage); err != nil {
		t.Fatal(err)
	}
	var rows []string
	for line := range strings.Lines(ref.String()) {
		if strings.HasPrefix(line, "| `"+Prefix+"_") {
			rows = append(rows, line)
		}
	}
	var helpVars []string
	for line := range strings.Lines(usage.String()) {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], Prefix+"_") {
			helpVars = append(helpVars, f[0])
		}
	}
	vars := allVars(t)
	if len(rows) != len(vars) || len(helpVars) != len(vars) {
		t.Fatalf("%d settings, %d reference rows, %d --help lines", len(vars), len(rows), len(helpVars))
	}
	for i, v := range vars {
		if !strings.HasPrefix(rows[i], "| `"+v+"` | ") {
			t.Errorf("reference row %d is %q, want %s", i+1, rows[i], v)
		}
		if helpVars[i] != v {
			t.Errorf("--help line %d names %s, want %s", i+1, helpVars[i], v)
		}
		s := Settings()[i]
		if s.Default != "" && !strings.Contains(rows[i], "| `"+s.Default+"` |") {
			t.Errorf("reference row of %s lacks its default %q: %q", v, s.Default, rows[i])
		}
	}
}

func TestMarkdownCellEscapes(t *testing.T) {
	got := markdownCell("a|b <prefix>.control.* arn:aws:iam::*:role/P*")
	want := `a\|b &lt;prefix&gt;.control.\* arn:aws:iam::\*:role/P\*`
	if got != want {
		t.Errorf("markdownCell = %q, want %q", got, want)
	}
}

// TestDocsNameOnlyRealSettings reads the repository's Markdown: every
// S3EXPORTER_ variable it names must be a setting (or one of the tests'
// own S3EXPORTER_TEST_ variables), so a renamed or removed setting cannot
// linger in the docs; and a default the README's table gives must be the
// setting's.
func TestDocsNameOnlyRealSettings(t *testing.T) {
	defaults := map[string]string{}
	for _, s := range Settings() {
		defaults[s.Var] = s.Default
	}
	docs, err := filepath.Glob(filepath.Join("..", "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	docs = append(docs, filepath.Join("..", "README.md"), filepath.Join("..", "CONTRIBUTING.md"), filepath.Join("..", "SECURITY.md"))
	name := regexp.MustCompile(Prefix + `_[A-Z0-9_]*[A-Z0-9]\b(_\*|_)?`)
	for _, doc := range docs {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range name.FindAllString(string(b), -1) {
			if strings.HasSuffix(v, "_") || strings.HasSuffix(v, "_*") || strings.HasPrefix(v, Prefix+"_TEST_") {
				continue // a family (S3EXPORTER_NATS_TLS_*) or a test's variable
			}
			if _, ok := defaults[v]; !ok {
				t.Errorf("%s names %s, which is not a setting", doc, v)
			}
		}
	}
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `(" + Prefix + "_[A-Z0-9_]+)` \\| `([^`]*)` \\|")
	n := 0
	for _, m := range row.FindAllStringSubmatch(string(readme), -1) {
		n++
		if defaults[m[1]] != m[2] {
			t.Errorf("README.md gives %s the default %q, the setting's is %q", m[1], m[2], defaults[m[1]])
		}
	}
	if n == 0 {
		t.Error("README.md's settings table has no row with a single default to check")
	}
}
