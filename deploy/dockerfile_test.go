package deploy

import (
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

	if !strings.HasPrefix(build.From, "golang:1.26") || strings.Contains(build.From, "@sha256:") {
		t.Errorf("build stage FROM %s, want a golang:1.26 tag", build.From)
	}
	if build.Name == "" {
		t.Error("build stage is not named")
	}
	if final.From != "gcr.io/distroless/static-debian12:nonroot" {
		t.Errorf("final stage FROM %s, want gcr.io/distroless/static-debian12:nonroot", final.From)
	}

	// Static build, stamped with the version.
	args := build.all("ARG")
	for _, a := range []string{"VERSION", "REVISION"} {
		if !slices.ContainsFunc(args, func(s string) bool { return s == a || strings.HasPrefix(s, a+"=") }) {
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
	for _, p := range []string{".git/HEAD", "deploy/kubernetes/base/deployment.yaml"} {
		if ignored(p) == "" {
			t.Errorf(".dockerignore keeps %s in the build context", p)
		}
	}
}
