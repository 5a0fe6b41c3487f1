package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// The committed configuration reference is what --write-documentation
// writes (go generate ./config runs it; config's own test checks the same
// text from the library side).
func TestWriteDocumentationIsTheCommittedReference(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"--write-documentation"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	want, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Fatal("docs/configuration.md differs from s3-exporter --write-documentation: run make docs")
	}
}

func TestArguments(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"--help"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "S3EXPORTER_NATS_URL") {
		t.Fatalf("--help: exit %d, output %q", code, out.String())
	}
	out.Reset()
	if code := run([]string{"--bogus"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), `unknown argument "--bogus"`) {
		t.Fatalf("--bogus: exit %d, stderr %q", code, errb.String())
	}
}
