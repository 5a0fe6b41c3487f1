package deploy

import (
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

type dockerInstr struct {
	Cmd  string // upper case
	Args string
}

type dockerStage struct {
	From   string
	Name   string
	Instrs []dockerInstr
}

// parseDockerfile splits a Dockerfile into stages of instructions, joining
// continuation lines and dropping comments.
func parseDockerfile(t *testing.T, src string) []dockerStage {
	t.Helper()
	var stages []dockerStage
	var cur strings.Builder
	flush := func() {
		line := strings.TrimSpace(cur.String())
		cur.Reset()
		if line == "" {
			return
		}
		cmd, args, _ := strings.Cut(line, " ")
		in := dockerInstr{Cmd: strings.ToUpper(cmd), Args: strings.TrimSpace(args)}
		if in.Cmd == "FROM" {
			f := strings.Fields(in.Args)
			st := dockerStage{From: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.Name = f[2]
			}
			stages = append(stages, st)
			return
		}
		if len(stages) == 0 {
			if in.Cmd != "ARG" {
				t.Errorf("%s before the first FROM", in.Cmd)
			}
			return
		}
		st := &stages[len(stages)-1]
		st.Instrs = append(st.Instrs, in)
	}
	for raw := range strings.Lines(src) {
		line := strings.TrimRight(raw, "\r\n")
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if body, ok := strings.CutSuffix(line, "\\"); ok {
			cur.WriteString(body + " ")
			continue
		}
		cur.WriteString(line)
		flush()
	}
	flush()
	return stages
}

func (s dockerStage) all(cmd string) []string {
	var out []string
	for _, in := range s.Instrs {
		if in.Cmd == cmd {
			out = append(out, in.Args)
		}
	}
	return out
}

const modulePath = "github.com/prowler-cloud/s3-exporter"

var ldflagsRE = regexp.MustCompile(`-ldflags\s+"([^"]*)"`)

func TestDockerfile(t *testing.T) {
	stages := parseDockerfile(t, string(readFile(t, filepath.Join(repoRoot, "Dockerfile"))))
	if len(stages) < 2 {
		t.Fatalf("%d stages, want a multi-stage build", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]

	args := dockerGlobalArgs(string(readFile(t, filepath.Join(repoRoot, "Dockerfile"))))
	for _, msg := range checkBaseImages(expandArgs(build.From, args), expandArgs(final.From, args)) {
		t.Error(msg)
	}
	if build.Name == "" {
		t.Error("build stage is not named")
	}

	// Static build, stamped with the version.
	buildArgs := build.all("ARG")
	for _, a := range []string{"VERSION", "REVISION"} {
		if !slices.ContainsFunc(buildArgs, func(s string) bool { return s == a || strings.HasPrefix(s, a+"=") }) {
			t.Errorf("ARG %s not declared in the build stage", a)
		}
	}
	if !slices.Contains(build.all("ENV"), "CGO_ENABLED=0") {
		t.Error("build stage does not set ENV CGO_ENABLED=0")
	}
	var goBuild string
	for _, r := range build.all("RUN") {
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
	for _, c := range final.all("COPY") {
		if strings.Contains(c, "--from="+build.Name) && strings.Contains(c, "s3-exporter") && strings.Contains(c, "exporterctl") {
			copied = true
		}
	}
	if !copied {
		t.Errorf("final stage does not COPY --from=%s both binaries", build.Name)
	}
	users := final.all("USER")
	if len(users) == 0 || !slices.Contains([]string{"65532", "65532:65532", "nonroot", "nonroot:nonroot"}, users[len(users)-1]) {
		t.Errorf("final USER %v, want the distroless nonroot user 65532", users)
	}
	if !slices.Contains(final.all("EXPOSE"), "9090") {
		t.Error("final stage does not EXPOSE 9090")
	}
	ep := final.all("ENTRYPOINT")
	if len(ep) != 1 || !strings.HasPrefix(ep[0], "[") || !strings.Contains(ep[0], "s3-exporter\"") {
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
	stages := parseDockerfile(t, string(readFile(t, filepath.Join(repoRoot, "Dockerfile"))))
	var ld string
	for _, r := range stages[0].all("RUN") {
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

// dockerGlobalArgs returns the defaults of the ARGs before the first FROM.
func dockerGlobalArgs(src string) map[string]string {
	args := map[string]string{}
	for line := range strings.Lines(src) {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if strings.EqualFold(f[0], "FROM") {
			break
		}
		if strings.EqualFold(f[0], "ARG") && len(f) > 1 {
			if k, v, ok := strings.Cut(f[1], "="); ok {
				args[k] = v
			}
		}
	}
	return args
}

func expandArgs(s string, args map[string]string) string {
	return os.Expand(s, func(k string) string { return args[k] })
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
	args := dockerGlobalArgs(string(readFile(t, filepath.Join(repoRoot, "Dockerfile"))))
	if args["GO_IMAGE"] == "" || args["RUNTIME_IMAGE"] == "" {
		t.Fatalf("Dockerfile has no GO_IMAGE/RUNTIME_IMAGE build arguments: %v", args)
	}
	if msgs := checkBaseImages(args["GO_IMAGE"]+d, args["RUNTIME_IMAGE"]+d); len(msgs) > 0 {
		t.Error(msgs)
	}
}
