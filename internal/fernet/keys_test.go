package fernet

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// Rotation as MultiFernet: the first key encrypts, every key decrypts, and
// a token of a key not in the set is refused.
func TestKeysRotation(t *testing.T) {
	t.Parallel()
	oldS, _ := GenerateKey()
	newS, _ := GenerateKey()
	strayS, _ := GenerateKey()
	old, stray := mustKey(t, oldS), mustKey(t, strayS)
	now := time.Now()

	ks, err := ParseKeys(" " + newS + " ,\n" + strings.TrimRight(oldS, "="))
	if err != nil {
		t.Fatal(err)
	}
	if ks.Len() != 2 {
		t.Fatalf("Len = %d, want 2", ks.Len())
	}
	byOld, _ := old.Encrypt([]byte("made with the old key"), now)
	if got, err := ks.Decrypt(byOld, 0, now); err != nil || string(got) != "made with the old key" {
		t.Fatalf("old token: %q, %v", got, err)
	}
	byKeys, err := ks.Encrypt([]byte("made with the set"), now)
	if err != nil {
		t.Fatal(err)
	}
	// The set encrypts with the first (new) key: the old key alone cannot
	// read it, the new one alone can.
	if _, err := old.Decrypt(byKeys, 0, now); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("the old key read a token the set made: %v", err)
	}
	if got, err := mustKey(t, newS).Decrypt(byKeys, 0, now); err != nil || string(got) != "made with the set" {
		t.Errorf("the new key: %q, %v", got, err)
	}
	byStray, _ := stray.Encrypt([]byte("x"), now)
	if _, err := ks.Decrypt(byStray, 0, now); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("a token of a key outside the set: %v, want ErrInvalidToken", err)
	}
	// An expired token authentic under the second key says expired.
	stale, _ := old.Encrypt([]byte("x"), now.Add(-2*time.Hour))
	if _, err := ks.Decrypt(stale, time.Hour, now); !errors.Is(err, ErrExpired) {
		t.Errorf("expired token: %v, want ErrExpired", err)
	}
}

func TestParseKeysRefusesBadLists(t *testing.T) {
	t.Parallel()
	good, _ := GenerateKey()
	for _, s := range []string{"", ",", good + ",", "," + good, good + ",," + good, good + ",not-a-key"} {
		ks, err := ParseKeys(s)
		if !errors.Is(err, ErrBadKey) || ks != nil {
			t.Errorf("ParseKeys(%q) = %v, %v; want ErrBadKey", s, ks, err)
			continue
		}
		if strings.Contains(err.Error(), good) || strings.Contains(err.Error(), "not-a-key") {
			t.Errorf("error %q repeats a key", err)
		}
	}
	ks, err := ParseKeys(good + ",not-a-key")
	if err == nil || !strings.Contains(err.Error(), "key 2 of 2") {
		t.Errorf("error %v does not name the bad key's position (%v)", err, ks)
	}
}

func TestKeysNeverPrint(t *testing.T) {
	t.Parallel()
	s, _ := GenerateKey()
	ks, err := ParseKeys(s + "," + s)
	if err != nil {
		t.Fatal(err)
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%d"} {
		for _, arg := range []any{ks, *ks, struct{ K *Keys }{ks}} {
			out := fmt.Sprintf(verb, arg)
			if !strings.Contains(out, "REDACTED") || strings.Contains(out, strings.TrimRight(s, "=")[:20]) {
				t.Errorf("Sprintf(%q) = %q", verb, out)
			}
		}
	}
}
