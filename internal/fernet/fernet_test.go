package fernet

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

type prowlerFixture struct {
	Key       string `json:"key"`
	Token     string `json:"token"`
	Plaintext string `json:"plaintext"`
}

func loadFixture(t *testing.T) prowlerFixture {
	t.Helper()
	b, err := os.ReadFile("testdata/prowler_fixture.json")
	if err != nil {
		t.Fatal(err)
	}
	var f prowlerFixture
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if f.Key == "" || f.Token == "" || f.Plaintext == "" {
		t.Fatal("fixture is incomplete")
	}
	return f
}

func mustKey(t *testing.T, s string) *Key {
	t.Helper()
	k, err := ParseKey(s)
	if err != nil {
		t.Fatalf("ParseKey: %v", err)
	}
	return k
}

// tokenTime reads the timestamp of a token without verifying it.
func tokenTime(t *testing.T, token string) time.Time {
	t.Helper()
	raw, err := decodeBase64(token)
	if err != nil || len(raw) < headerSize {
		t.Fatalf("cannot read token: %v", err)
	}
	return time.Unix(int64(binary.BigEndian.Uint64(raw[1:9])), 0)
}

// TestDecryptPythonFixture checks interoperability with the token Python's
// cryptography package made (testdata/make_fixture.py).
func TestDecryptPythonFixture(t *testing.T) {
	t.Parallel()
	f := loadFixture(t)
	k := mustKey(t, f.Key)
	issued := tokenTime(t, f.Token)

	got, err := k.Decrypt([]byte(f.Token), 0, time.Now())
	if err != nil {
		t.Fatalf("Decrypt: %v", err)
	}
	if string(got) != f.Plaintext {
		t.Fatalf("plaintext = %q, want %q", got, f.Plaintext)
	}
	var creds map[string]string
	if err := json.Unmarshal(got, &creds); err != nil {
		t.Fatalf("plaintext is not JSON: %v", err)
	}
	if creds["aws_access_key_id"] != "AKIAFERNETFIXTURE0001" || creds["role_arn"] != "arn:aws:iam::123456789012:role/ProwlerScan" {
		t.Fatalf("unexpected credentials: %v", creds)
	}

	// Within its TTL it still decrypts; past it, it is expired.
	if _, err := k.Decrypt([]byte(f.Token), time.Hour, issued.Add(30*time.Minute)); err != nil {
		t.Fatalf("Decrypt within TTL: %v", err)
	}
	if _, err := k.Decrypt([]byte(f.Token), time.Hour, issued.Add(2*time.Hour)); !errors.Is(err, ErrExpired) {
		t.Fatalf("Decrypt past TTL: err = %v, want ErrExpired", err)
	}

	// Unpadded form of the same token.
	unpadded := strings.TrimRight(f.Token, "=")
	if got, err := k.Decrypt([]byte(unpadded), 0, time.Now()); err != nil || string(got) != f.Plaintext {
		t.Fatalf("Decrypt unpadded: %q, %v", got, err)
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	ks, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if raw, err := base64.URLEncoding.DecodeString(ks); err != nil || len(raw) != 32 {
		t.Fatalf("GenerateKey() = %d bytes, %v; want url-safe base64 of 32 bytes", len(raw), err)
	}
	k := mustKey(t, ks)
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	for _, size := range []int{0, 1, 15, 16, 17, 31, 32, 1000} {
		plain := bytes.Repeat([]byte{'x'}, size)
		tok, err := k.Encrypt(plain, now)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := base64.URLEncoding.DecodeString(string(tok)); err != nil {
			t.Fatalf("token is not padded url-safe base64: %v", err)
		}
		got, err := k.Decrypt(tok, time.Minute, now.Add(30*time.Second))
		if err != nil {
			t.Fatalf("size %d: Decrypt: %v", size, err)
		}
		if !bytes.Equal(got, plain) {
			t.Fatalf("size %d: round trip changed the plaintext", size)
		}
	}
	a, _ := k.Encrypt([]byte("same"), now)
	b, _ := k.Encrypt([]byte("same"), now)
	if bytes.Equal(a, b) {
		t.Fatal("two encryptions share an IV")
	}
}

func TestDecryptFailures(t *testing.T) {
	t.Parallel()
	f := loadFixture(t)
	k := mustKey(t, f.Key)
	issued := tokenTime(t, f.Token)
	raw, err := decodeBase64(f.Token)
	if err != nil {
		t.Fatal(err)
	}
	enc := func(b []byte) []byte { return []byte(base64.URLEncoding.EncodeToString(b)) }
	modified := func(i int, fn func(byte) byte) []byte {
		c := bytes.Clone(raw)
		c[i] = fn(c[i])
		return enc(c)
	}
	flip := func(b byte) byte { return b ^ 0x01 }
	other := mustKey(t, "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=")

	cases := []struct {
		name  string
		key   *Key
		token []byte
		ttl   time.Duration
		now   time.Time
		want  error
	}{
		{"wrong key", other, []byte(f.Token), 0, issued, ErrInvalidToken},
		{"bad version", k, modified(0, func(byte) byte { return 0x81 }), 0, issued, ErrInvalidToken},
		{"tampered timestamp", k, modified(5, flip), 0, issued, ErrInvalidToken},
		{"tampered iv", k, modified(12, flip), 0, issued, ErrInvalidToken},
		{"tampered ciphertext", k, modified(headerSize+3, flip), 0, issued, ErrInvalidToken},
		{"tampered hmac", k, modified(len(raw)-1, flip), 0, issued, ErrInvalidToken},
		{"truncated by one byte", k, enc(raw[:len(raw)-1]), 0, issued, ErrInvalidToken},
		{"truncated by one block", k, enc(raw[:len(raw)-16]), 0, issued, ErrInvalidToken},
		{"header only", k, enc(raw[:headerSize]), 0, issued, ErrInvalidToken},
		{"empty", k, nil, 0, issued, ErrInvalidToken},
		{"not base64", k, []byte("not a token!"), 0, issued, ErrInvalidToken},
		{"standard alphabet", k, []byte(strings.NewReplacer("-", "+", "_", "/").Replace(f.Token) + "+/"), 0, issued, ErrInvalidToken},
		{"expired", k, []byte(f.Token), time.Minute, issued.Add(2 * time.Minute), ErrExpired},
		{"from the future", k, []byte(f.Token), time.Minute, issued.Add(-2 * time.Minute), ErrInvalidToken},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.key.Decrypt(tc.token, tc.ttl, tc.now)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if got != nil {
				t.Fatal("a failed Decrypt returned plaintext")
			}
			if strings.Contains(err.Error(), "AKIA") || strings.Contains(err.Error(), f.Key) {
				t.Fatalf("error leaks secrets: %v", err)
			}
		})
	}

	// A token with a re-computed HMAC but a version byte other than 0x80 is
	// rejected for its version, not only for its signature.
	c := bytes.Clone(raw)
	c[0] = 0x81
	body := c[:len(c)-hmacSize]
	copy(c[len(c)-hmacSize:], k.mac(body))
	if _, err := k.Decrypt(enc(c), 0, issued); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("re-signed token with version 0x81: err = %v, want ErrInvalidToken", err)
	}
}

func TestParseKey(t *testing.T) {
	t.Parallel()
	good := "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4="
	for _, s := range []string{good, strings.TrimRight(good, "="), " " + good + "\n"} {
		if _, err := ParseKey(s); err != nil {
			t.Errorf("ParseKey(%q): %v", s, err)
		}
	}
	bad := []string{
		"",
		"c2hvcnQ=", // 5 bytes
		base64.URLEncoding.EncodeToString(make([]byte, 31)),
		base64.URLEncoding.EncodeToString(make([]byte, 33)),
		"cw/0x689RpI+jtRR7oE8h/eQsKImvJapLeSbXpwF4e4=", // standard alphabet
		"%%%%",
	}
	for _, s := range bad {
		k, err := ParseKey(s)
		if !errors.Is(err, ErrBadKey) || k != nil {
			t.Errorf("ParseKey(%q) = %v, %v; want ErrBadKey", s, k, err)
		}
		if s != "" && strings.Contains(err.Error(), s) {
			t.Errorf("error %q contains the key", err)
		}
	}
}

func TestKeyNeverPrints(t *testing.T) {
	t.Parallel()
	k := mustKey(t, "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=")
	raw, _ := base64.URLEncoding.DecodeString("cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=")
	signing := fmt.Sprint(raw[:16])
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%d", "%q"} {
		for _, arg := range []any{k, *k} {
			out := fmt.Sprintf(verb, arg)
			if out != redacted {
				t.Errorf("Sprintf(%q) = %q, want %q", verb, out, redacted)
			}
		}
	}
	wrapped := fmt.Sprintf("%+v", struct{ K *Key }{k})
	if strings.Contains(wrapped, signing) || !strings.Contains(wrapped, redacted) {
		t.Errorf("struct holding a key prints %q", wrapped)
	}
}

type specVectors struct {
	Generate []struct {
		Token  string `json:"token"`
		Now    string `json:"now"`
		IVInts []int  `json:"iv"`
		Src    string `json:"src"`
		Secret string `json:"secret"`
	} `json:"generate"`
	Verify []struct {
		Token  string `json:"token"`
		Now    string `json:"now"`
		TTLSec int    `json:"ttl_sec"`
		Src    string `json:"src"`
		Secret string `json:"secret"`
	} `json:"verify"`
	Invalid []struct {
		Desc   string `json:"desc"`
		Token  string `json:"token"`
		Now    string `json:"now"`
		TTLSec int    `json:"ttl_sec"`
		Secret string `json:"secret"`
	} `json:"invalid"`
}

func parseTime(t *testing.T, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

// TestSpecVectors runs the test vectors of the Fernet specification. (The last
// two invalid vectors are ones Python's cryptography 38 leniently accepts; the
// spec and this package reject them.)
func TestSpecVectors(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("testdata/spec_vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v specVectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Generate) == 0 || len(v.Verify) == 0 || len(v.Invalid) < 8 {
		t.Fatal("spec vectors missing")
	}
	for i, g := range v.Generate {
		var iv [ivSize]byte
		if len(g.IVInts) != ivSize {
			t.Fatalf("generate[%d]: iv has %d bytes", i, len(g.IVInts))
		}
		for j, n := range g.IVInts {
			iv[j] = byte(n)
		}
		got := mustKey(t, g.Secret).encrypt([]byte(g.Src), parseTime(t, g.Now), iv)
		if string(got) != g.Token {
			t.Errorf("generate[%d]: token = %s, want %s", i, got, g.Token)
		}
	}
	for i, c := range v.Verify {
		got, err := mustKey(t, c.Secret).Decrypt([]byte(c.Token), time.Duration(c.TTLSec)*time.Second, parseTime(t, c.Now))
		if err != nil || string(got) != c.Src {
			t.Errorf("verify[%d]: %q, %v; want %q", i, got, err, c.Src)
		}
	}
	for _, c := range v.Invalid {
		t.Run(c.Desc, func(t *testing.T) {
			got, err := mustKey(t, c.Secret).Decrypt([]byte(c.Token), time.Duration(c.TTLSec)*time.Second, parseTime(t, c.Now))
			if err == nil {
				t.Fatalf("accepted, plaintext %q", got)
			}
			want := ErrInvalidToken
			if c.Desc == "expired TTL" {
				want = ErrExpired
			}
			if !errors.Is(err, want) {
				t.Fatalf("err = %v, want %v", err, want)
			}
		})
	}
}
