package deploy

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestGoreleaserConfig pins what a release is: static linux/amd64 and arm64
// binaries of both commands, stamped like `make build`, archives with the
// license, checksums and an SBOM. (`goreleaser check`, run by .ci/run and
// `make release-check`, validates the schema.)
func TestGoreleaserConfig(t *testing.T) {
	var cfg struct {
		Version int `yaml:"version"`
		Builds  []struct {
			ID      string   `yaml:"id"`
			Main    string   `yaml:"main"`
			Env     []string `yaml:"env"`
			Goos    []string `yaml:"goos"`
			Goarch  []string `yaml:"goarch"`
			Flags   []string `yaml:"flags"`
			Ldflags []string `yaml:"ldflags"`
		} `yaml:"builds"`
		Archives []struct {
			Files []string `yaml:"files"`
		} `yaml:"archives"`
		Checksum struct {
			Algorithm string `yaml:"algorithm"`
		} `yaml:"checksum"`
		Sboms []struct {
			Artifacts string `yaml:"artifacts"`
			Cmd       string `yaml:"cmd"`
		} `yaml:"sboms"`
	}
	if err := yaml.Unmarshal(readFile(t, filepath.Join(repoRoot, ".goreleaser.yaml")), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Version != 2 {
		t.Errorf("version %d, want 2", cfg.Version)
	}
	var mains []string
	for _, b := range cfg.Builds {
		mains = append(mains, b.Main)
		if !slices.Contains(b.Env, "CGO_ENABLED=0") {
			t.Errorf("build %s is not static (CGO_ENABLED=0)", b.ID)
		}
		if !slices.Equal(b.Goos, []string{"linux"}) || !slices.Equal(b.Goarch, []string{"amd64", "arm64"}) {
			t.Errorf("build %s targets %v/%v, want linux amd64+arm64", b.ID, b.Goos, b.Goarch)
		}
		if !slices.Contains(b.Flags, "-trimpath") {
			t.Errorf("build %s lacks -trimpath", b.ID)
		}
		ld := strings.Join(b.Ldflags, " ")
		for _, v := range []string{"Version", "Revision"} {
			if !strings.Contains(ld, "-X github.com/prometheus/common/version."+v+"=") {
				t.Errorf("build %s does not stamp version.%s", b.ID, v)
			}
		}
	}
	slices.Sort(mains)
	if !slices.Equal(mains, []string{"./cmd/exporterctl", "./cmd/s3-exporter"}) {
		t.Errorf("builds %v, want the daemon and exporterctl", mains)
	}
	if len(cfg.Archives) == 0 || !slices.Contains(cfg.Archives[0].Files, "LICENSE") {
		t.Error("archives do not carry the LICENSE")
	}
	for _, f := range cfg.Archives[0].Files {
		if _, err := os.Stat(filepath.Join(repoRoot, f)); err != nil {
			t.Errorf("archive file %s: %v", f, err)
		}
	}
	if cfg.Checksum.Algorithm != "sha256" {
		t.Errorf("checksum algorithm %q", cfg.Checksum.Algorithm)
	}
	if len(cfg.Sboms) == 0 || cfg.Sboms[0].Artifacts != "archive" || cfg.Sboms[0].Cmd != "syft" {
		t.Errorf("sboms %+v, want syft on every archive", cfg.Sboms)
	}
}

// TestReleaseFiles: the license is Apache-2.0's full text (as Prowler's), and
// the changelog and the security policy exist with their sections.
func TestReleaseFiles(t *testing.T) {
	lic := string(readFile(t, filepath.Join(repoRoot, "LICENSE")))
	for _, want := range []string{"Apache License", "Version 2.0, January 2004", "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION", "9. Accepting Warranty or Additional Liability", "END OF TERMS AND CONDITIONS"} {
		if !strings.Contains(lic, want) {
			t.Errorf("LICENSE lacks %q", want)
		}
	}
	if len(lic) < 11000 {
		t.Errorf("LICENSE is %d bytes: not the full Apache-2.0 text", len(lic))
	}
	cl := string(readFile(t, filepath.Join(repoRoot, "CHANGELOG.md")))
	for _, want := range []string{"contract v1.1", "### Added", "Migration"} {
		if !strings.Contains(cl, want) {
			t.Errorf("CHANGELOG.md lacks %q", want)
		}
	}
	sec := string(readFile(t, filepath.Join(repoRoot, "SECURITY.md")))
	for _, want := range []string{"## Reporting a vulnerability", "## Supported versions", "docs/contract.md#9-trust-model"} {
		if !strings.Contains(sec, want) {
			t.Errorf("SECURITY.md lacks %q", want)
		}
	}
}
