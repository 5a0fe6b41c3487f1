package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prowler-cloud/s3-exporter/internal/fernet"
)

// The key printed by "key generate" is one the exporter reads
// (S3EXPORTER_CREDENTIALS_KEY's parser) and that round-trips a secret; two
// runs print different keys.
func TestKeyGenerate(t *testing.T) {
	ctx := context.Background()
	first := ctl(ctx, nil, "", "key", "generate")
	second := ctl(ctx, nil, "", "key", "generate")
	for _, r := range []result{first, second} {
		if r.code != exitOK || r.stderr != "" {
			t.Fatalf("key generate: %v", r)
		}
	}
	a, b := strings.TrimSpace(first.stdout), strings.TrimSpace(second.stdout)
	if a == b {
		t.Fatalf("two runs printed the same key %q", a)
	}
	keys, err := fernet.ParseKeys(b + "," + a)
	if err != nil {
		t.Fatalf("the printed keys are not S3EXPORTER_CREDENTIALS_KEY values: %v", err)
	}
	now := time.Now()
	token, err := keys.Encrypt([]byte("secret"), now)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := keys.Decrypt(token, 0, now); err != nil || string(got) != "secret" {
		t.Fatalf("round trip = %q, %v", got, err)
	}

	if r := ctl(ctx, nil, "", "key", "generate", "extra"); r.code != exitUsage || r.stdout != "" {
		t.Errorf("key generate with an argument: %v, want a usage error and no key", r)
	}
}
