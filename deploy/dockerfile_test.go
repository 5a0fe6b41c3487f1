package deploy

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// dockerfile is the Dockerfile as BuildKit reads it: its own parser (line
// continuations, comments, escapes, heredocs) and its typed instructions.
type dockerfile struct {
	stages   []instructions.Stage
	metaArgs []instructions.ArgCommand // the ARGs before the first FROM
	escape   rune                      // the escape directive's, \\ by default
}

// parseDockerfile parses the repository's Dockerfile. BuildKit's
// parse-time lint rules (the ones `docker build --check` reports from the
// parser: casing, stage names, JSON arguments for ENTRYPOINT/CMD, empty
// continuation lines, ...) fail the test.
func parseDockerfile(t *testing.T) dockerfile {
	t.Helper()
	res, err := parser.Parse(bytes.NewReader(readFile(t, filepath.Join(repoRoot, "Dockerfile"))))
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	for _, w := range res.Warnings {
		t.Errorf("Dockerfile: %s", w.Short)
	}
	lint := linter.New(&linter.Config{Warn: func(rule, _, _, msg string, loc []parser.Range) {
		line := 0
		if len(loc) > 0 {
			line = loc[0].Start.Line
		}
		t.Errorf("Dockerfile line %d: %s: %s", line, rule, msg)
	}})
	stages, metaArgs, err := instructions.Parse(res.AST, lint)
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	return dockerfile{stages: stages, metaArgs: metaArgs, escape: res.EscapeToken}
}

// commands returns the stage's instructions of type T, in order.
func commands[T instructions.Command](st instructions.Stage) []T {
	var out []T
	for _, c := range st.Commands {
		if c, ok := c.(T); ok {
			out = append(out, c)
		}
	}
	return out
}

// runLines returns the stage's RUN command lines (shell form: the line as
// written, continuations joined, --mount flags removed).
func runLines(st instructions.Stage) []string {
	var out []string
	for _, r := range commands[*instructions.RunCommand](st) {
		out = append(out, strings.Join(r.CmdLine, " "))
	}
	return out
}

const modulePath = "github.com/prowler-cloud/s3-exporter"

var ldflagsRE = regexp.MustCompile(`-ldflags\s+"([^"]*)"`)

func TestDockerfile(t *testing.T) {
	df := parseDockerfile(t)
	if len(df.stages) < 2 {
		t.Fatalf("%d stages, want a multi-stage build", len(df.stages))
	}
	build, final := df.stages[0], df.stages[len(df.stages)-1]

	for _, msg := range checkBaseImages(df.expand(t, build.BaseName), df.expand(t, final.BaseName)) {
		t.Error(msg)
	}
	if build.Name == "" {
		t.Error("build stage is not named")
	}

	// Static build, stamped with the version.
	for _, a := range []string{"VERSION", "REVISION"} {
		if !slices.ContainsFunc(commands[*instructions.ArgCommand](build), func(c *instructions.ArgCommand) bool {
			return slices.ContainsFunc(c.Args, func(kv instructions.KeyValuePairOptional) bool { return kv.Key == a })
		}) {
			t.Errorf("ARG %s not declared in the build stage", a)
		}
	}
	if !slices.ContainsFunc(commands[*instructions.EnvCommand](build), func(c *instructions.EnvCommand) bool {
		return slices.ContainsFunc(c.Env, func(kv instructions.KeyValuePair) bool { return kv.Key == "CGO_ENABLED" && kv.Value == "0" })
	}) {
		t.Error("build stage does not set ENV CGO_ENABLED=0")
	}
	var goBuild string
	for _, r := range runLines(build) {
		if strings.Contains(r, "go build") {
			goBuild = r
		}
	}
	if goBuild == "" {
		t.Fatal("no go build in the build stage")
	}
	for _, want := range []string{"-trimpath", "./cmd/s3-exporter", "./cmd/exporterctl"} {
		if !strings.Contains(goBuild, want) {
			t.Errorf("go build lacks %s: %s", want, goBuild)
		}
	}
	m := ldflagsRE.FindStringSubmatch(goBuild)
	if m == nil {
		t.Fatalf("go build has no -ldflags \"...\": %s", goBuild)
	}
	ld := strings.Fields(m[1])
	for _, want := range []string{"-s", "-w", "-X", "github.com/prometheus/common/version.Version=${VERSION}", "github.com/prometheus/common/version.Revision=${REVISION}"} {
		if !slices.Contains(ld, want) {
			t.Errorf("ldflags lack %s: %s", want, m[1])
		}
	}

	// Final stage: the binaries from the build stage, non-root, the port.
	var copied bool
	for _, c := range commands[*instructions.CopyCommand](final) {
		bases := map[string]bool{}
		for _, src := range c.SourcePaths {
			bases[path.Base(src)] = true
		}
		if strings.EqualFold(c.From, build.Name) && bases["s3-exporter"] && bases["exporterctl"] {
			copied = true
		}
	}
	if !copied {
		t.Errorf("final stage does not COPY --from=%s both binaries", build.Name)
	}
	users := commands[*instructions.UserCommand](final)
	if len(users) == 0 || !slices.Contains([]string{"65532", "65532:65532", "nonroot", "nonroot:nonroot"}, users[len(users)-1].User) {
		t.Errorf("final USER %v, want the distroless nonroot user 65532", users)
	}
	if !slices.ContainsFunc(commands[*instructions.ExposeCommand](final), func(c *instructions.ExposeCommand) bool { return slices.Contains(c.Ports, "9090") }) {
		t.Error("final stage does not EXPOSE 9090")
	}
	ep := commands[*instructions.EntrypointCommand](final)
	if len(ep) != 1 || ep[0].PrependShell || len(ep[0].CmdLine) == 0 || path.Base(ep[0].CmdLine[0]) != "s3-exporter" {
		t.Errorf("ENTRYPOINT %v, want the exec form running s3-exporter", ep)
	}
}

// TestDockerfileLdflagsStamp builds a program with the Dockerfile's own
// ldflags and checks that the version variables change.
func TestDockerfileLdflagsStamp(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a program")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go not on PATH")
	}
	var ld string
	for _, r := range runLines(parseDockerfile(t).stages[0]) {
		if m := ldflagsRE.FindStringSubmatch(r); m != nil {
			ld = m[1]
		}
	}
	if ld == "" {
		t.Fatal("no -ldflags in the Dockerfile")
	}
	ld = strings.NewReplacer("${VERSION}", "1.2.3-stamp", "${REVISION}", "cafef00d").Replace(ld)

	dir := t.TempDir()
	main := filepath.Join(dir, "main.go")
	src := "package main\n\nimport (\n\t\"fmt\"\n\n\t\"" + modulePath + "/metrics\"\n)\n\nfunc main() { b := metrics.CurrentBuild(); fmt.Print(b.Version, \" \", b.Revision) }\n"
	if err := os.WriteFile(main, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	// Only the ldflags: -trimpath and CGO_ENABLED=0 would rebuild the
	// standard library, which takes a minute and tests nothing here.
	cmd := exec.CommandContext(t.Context(), goBin, "run", "-ldflags", ld, main)
	cmd.Dir = repoRoot
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go run with the Dockerfile ldflags: %v\n%s", err, out)
	}
	if got := string(out); got != "1.2.3-stamp cafef00d" {
		t.Errorf("stamped binary prints %q, want %q", got, "1.2.3-stamp cafef00d")
	}
}

func TestDockerignoreKeepsTheSources(t *testing.T) {
	var patterns []string
	for line := range strings.Lines(string(readFile(t, filepath.Join(repoRoot, ".dockerignore")))) {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") && !strings.HasPrefix(line, "!") {
			patterns = append(patterns, strings.TrimPrefix(line, "/"))
		}
	}
	ignored := func(p string) string {
		for _, pat := range patterns {
			for dir := p; dir != "." && dir != "/"; dir = path.Dir(dir) {
				if ok, _ := path.Match(pat, dir); ok {
					return pat
				}
			}
		}
		return ""
	}
	for _, p := range []string{"go.mod", "go.sum", "cmd/s3-exporter/main.go", "cmd/exporterctl/main.go", "metrics/metrics.go", "metrics/version.go", "errcode/errcode.go"} {
		if pat := ignored(p); pat != "" {
			t.Errorf(".dockerignore pattern %q excludes %s", pat, p)
		}
	}
	for _, p := range []string{".git/HEAD", "deploy/kubernetes/base/deployment.yaml", ".devstack/fernet.key", ".devstack"} {
		if ignored(p) == "" {
			t.Errorf(".dockerignore keeps %s in the build context", p)
		}
	}
}

var (
	goImageRE      = regexp.MustCompile(`^golang:1\.26(\.[0-9]+)?(-[a-z0-9.]+)?(@sha256:[0-9a-f]{64})?$`)
	runtimeImageRE = regexp.MustCompile(`^gcr\.io/distroless/static-debian12:nonroot(@sha256:[0-9a-f]{64})?$`)
)

// checkBaseImages: the build stage is Go 1.26 and the final stage distroless
// static nonroot, each by tag or by tag and digest (a digest pins the exact
// image a release was built from).
func checkBaseImages(build, final string) []string {
	var msgs []string
	if !goImageRE.MatchString(build) {
		msgs = append(msgs, fmt.Sprintf("build stage FROM %s, want golang:1.26[@sha256:…]", build))
	}
	if !runtimeImageRE.MatchString(final) {
		msgs = append(msgs, fmt.Sprintf("final stage FROM %s, want gcr.io/distroless/static-debian12:nonroot[@sha256:…]", final))
	}
	return msgs
}

// globalArgs returns the defaults of the ARGs before the first FROM.
func (df dockerfile) globalArgs() map[string]string {
	args := map[string]string{}
	for _, a := range df.metaArgs {
		for _, kv := range a.Args {
			if kv.Value != nil {
				args[kv.Key] = *kv.Value
			}
		}
	}
	return args
}

// expand expands a FROM image as BuildKit does, with its own shell lexer,
// against the global ARGs' defaults; a variable with no value is an error
// (BuildKit would pull an image named by an empty string).
func (df dockerfile) expand(t *testing.T, s string) string {
	t.Helper()
	var env []string
	for k, v := range df.globalArgs() {
		env = append(env, k+"="+v)
	}
	res, err := shell.NewLex(df.escape).ProcessWordWithMatches(s, shell.EnvsFromSlice(env))
	if err != nil {
		t.Fatalf("expanding %s: %v", s, err)
	}
	if len(res.Unmatched) > 0 {
		t.Errorf("FROM %s: undeclared %v", s, slices.Collect(maps.Keys(res.Unmatched)))
	}
	return res.Result
}

func TestDockerBaseImagesMayBePinnedByDigest(t *testing.T) {
	d := "@sha256:" + strings.Repeat("a1", 32)
	for _, ok := range [][2]string{
		{"golang:1.26", "gcr.io/distroless/static-debian12:nonroot"},
		{"golang:1.26" + d, "gcr.io/distroless/static-debian12:nonroot" + d},
		{"golang:1.26.8-bookworm" + d, "gcr.io/distroless/static-debian12:nonroot"},
	} {
		if msgs := checkBaseImages(ok[0], ok[1]); len(msgs) > 0 {
			t.Errorf("%v refused: %v", ok, msgs)
		}
	}
	for _, bad := range [][2]string{
		{"golang:latest", "gcr.io/distroless/static-debian12:nonroot"},
		{"golang:1.26@sha256:abc", "gcr.io/distroless/static-debian12:nonroot"},
		{"golang:1.26", "gcr.io/distroless/static-debian12:latest"},
		{"golang:1.26", "gcr.io/distroless/base-debian12:nonroot" + d},
	} {
		if msgs := checkBaseImages(bad[0], bad[1]); len(msgs) == 0 {
			t.Errorf("%v accepted", bad)
		}
	}
	// The Dockerfile's own defaults, once pinned by --build-arg, still pass.
	args := parseDockerfile(t).globalArgs()
	if args["GO_IMAGE"] == "" || args["RUNTIME_IMAGE"] == "" {
		t.Fatalf("Dockerfile has no GO_IMAGE/RUNTIME_IMAGE build arguments: %v", args)
	}
	if msgs := checkBaseImages(args["GO_IMAGE"]+d, args["RUNTIME_IMAGE"]+d); len(msgs) > 0 {
		t.Error(msgs)
	}
}
