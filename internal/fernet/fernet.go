// Package fernet implements the Fernet symmetric token format
// (https://github.com/fernet/spec, version 0x80), the scheme Prowler App uses to
// store integration credentials. It has no dependencies beyond the standard
// library.
//
// A token is the url-safe base64 encoding (with padding, as Python's
// cryptography package writes it; unpadded tokens are accepted too) of
//
//	version (0x80) | timestamp (uint64, big endian, seconds) | IV (16 bytes) |
//	ciphertext (AES-128-CBC, PKCS#7 padding) | HMAC-SHA256 of everything before it
//
// The 32-byte key is the signing key (first 16 bytes) followed by the
// encryption key (last 16 bytes).
//
// Errors never contain key material or plaintext, and a *Key never prints
// its bytes.
package fernet

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
)

const (
	version       = 0x80
	keySize       = 32
	versionSize   = 1
	timestampSize = 8
	ivSize        = aes.BlockSize
	hmacSize      = sha256.Size
	headerSize    = versionSize + timestampSize + ivSize
	// minTokenSize is a token with exactly one block of ciphertext.
	minTokenSize = headerSize + aes.BlockSize + hmacSize

	// maxClockSkew is how far in the future a token's timestamp may be when a
	// TTL is checked (the value Python's cryptography uses).
	maxClockSkew = 60 * time.Second
)

// Sentinel errors, to be checked with errors.Is.
var (
	// ErrInvalidToken is returned for a token that is malformed, was not made
	// with this key, was tampered with, or claims a time too far in the future.
	ErrInvalidToken = errors.New("fernet: invalid token")
	// ErrExpired is returned for an authentic token older than the TTL.
	ErrExpired = errors.New("fernet: token expired")
	// ErrBadKey is returned by ParseKey for anything but the url-safe base64
	// encoding of 32 bytes.
	ErrBadKey = errors.New("fernet: bad key")
)

// Key is a parsed Fernet key. Its zero value is not usable; get one from
// ParseKey. Printing a Key with any fmt verb shows only "fernet.Key([REDACTED])".
type Key struct {
	signing    [16]byte
	encryption [16]byte
}

// redacted is what a Key prints as.
const redacted = "fernet.Key([REDACTED])"

// ParseKey parses a key in the url-safe base64 encoding of 32 bytes, as made by
// GenerateKey or Python's Fernet.generate_key(). Surrounding white space is
// ignored and the trailing padding is optional.
func ParseKey(s string) (*Key, error) {
	raw, err := decodeBase64(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("%w: not url-safe base64", ErrBadKey)
	}
	if len(raw) != keySize {
		return nil, fmt.Errorf("%w: must decode to %d bytes, got %d", ErrBadKey, keySize, len(raw))
	}
	k := &Key{}
	copy(k.signing[:], raw[:16])
	copy(k.encryption[:], raw[16:])
	clear(raw)
	return k, nil
}

// GenerateKey returns a new random key in the url-safe base64 encoding (with
// padding) that ParseKey and Python's Fernet accept.
func GenerateKey() (string, error) {
	raw := make([]byte, keySize)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("fernet: generating key: %w", err)
	}
	s := base64.URLEncoding.EncodeToString(raw)
	clear(raw)
	return s, nil
}

// String implements fmt.Stringer without revealing the key.
func (Key) String() string { return redacted }

// GoString implements fmt.GoStringer without revealing the key.
func (Key) GoString() string { return redacted }

// Format implements fmt.Formatter so that no verb (%v, %+v, %#v, %x, %d, …)
// can print the key bytes.
func (Key) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// Encrypt returns a token (url-safe base64 with padding) of plaintext stamped
// with now, with a fresh random IV.
func (k *Key) Encrypt(plaintext []byte, now time.Time) ([]byte, error) {
	var iv [ivSize]byte
	if _, err := rand.Read(iv[:]); err != nil {
		return nil, fmt.Errorf("fernet: generating IV: %w", err)
	}
	return k.encrypt(plaintext, now, iv), nil
}

// encrypt is Encrypt with a chosen IV (the spec's test vectors fix it).
func (k *Key) encrypt(plaintext []byte, now time.Time, iv [ivSize]byte) []byte {
	padded := pad(plaintext)
	msg := make([]byte, headerSize+len(padded), headerSize+len(padded)+hmacSize)
	msg[0] = version
	binary.BigEndian.PutUint64(msg[versionSize:], uint64(now.Unix()))
	copy(msg[versionSize+timestampSize:], iv[:])

	block, err := aes.NewCipher(k.encryption[:])
	if err != nil {
		panic("fernet: " + err.Error()) // unreachable: the key is always 16 bytes
	}
	cipher.NewCBCEncrypter(block, iv[:]).CryptBlocks(msg[headerSize:], padded)
	clear(padded)

	msg = append(msg, k.mac(msg)...)
	out := make([]byte, base64.URLEncoding.EncodedLen(len(msg)))
	base64.URLEncoding.Encode(out, msg)
	return out
}

// Decrypt verifies token and returns its plaintext. When ttl is positive, a
// token older than ttl at now fails with ErrExpired, and one stamped more than
// a minute after now fails with ErrInvalidToken; ttl 0 means no expiry.
// Every other failure is ErrInvalidToken. The signature is checked (in
// constant time) before anything else about the contents.
func (k *Key) Decrypt(token []byte, ttl time.Duration, now time.Time) ([]byte, error) {
	msg, err := decodeBase64(strings.TrimSpace(string(token)))
	if err != nil || len(msg) < minTokenSize || (len(msg)-headerSize-hmacSize)%aes.BlockSize != 0 {
		return nil, ErrInvalidToken
	}
	if msg[0] != version {
		return nil, ErrInvalidToken
	}
	body, sum := msg[:len(msg)-hmacSize], msg[len(msg)-hmacSize:]
	if !hmac.Equal(sum, k.mac(body)) {
		return nil, ErrInvalidToken
	}

	if ttl > 0 {
		stamped := int64(binary.BigEndian.Uint64(msg[versionSize:]))
		at := now.Unix()
		if stamped < 0 || at+int64(maxClockSkew/time.Second) < stamped {
			return nil, ErrInvalidToken
		}
		if stamped+int64(ttl/time.Second) < at {
			return nil, ErrExpired
		}
	}

	iv := body[versionSize+timestampSize : headerSize]
	ciphertext := body[headerSize:]
	block, err := aes.NewCipher(k.encryption[:])
	if err != nil {
		return nil, ErrInvalidToken // unreachable: the key is always 16 bytes
	}
	plain := make([]byte, len(ciphertext))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(plain, ciphertext)
	out, ok := unpad(plain)
	if !ok {
		clear(plain)
		return nil, ErrInvalidToken
	}
	return out, nil
}

func (k *Key) mac(b []byte) []byte {
	h := hmac.New(sha256.New, k.signing[:])
	h.Write(b)
	return h.Sum(nil)
}

// decodeBase64 decodes url-safe base64 with or without padding. It is strict:
// characters of the standard alphabet ('+', '/') and trailing data are errors.
func decodeBase64(s string) ([]byte, error) {
	if strings.ContainsAny(s, "\r\n") {
		return nil, errors.New("line breaks in base64")
	}
	if strings.HasSuffix(s, "=") {
		return base64.URLEncoding.DecodeString(s)
	}
	return base64.RawURLEncoding.DecodeString(s)
}

// pad returns a copy of b with PKCS#7 padding to the AES block size.
func pad(b []byte) []byte {
	n := aes.BlockSize - len(b)%aes.BlockSize
	out := make([]byte, len(b)+n)
	copy(out, b)
	for i := len(b); i < len(out); i++ {
		out[i] = byte(n)
	}
	return out
}

// unpad strips PKCS#7 padding, reporting whether it was well formed.
func unpad(b []byte) ([]byte, bool) {
	if len(b) == 0 || len(b)%aes.BlockSize != 0 {
		return nil, false
	}
	n := int(b[len(b)-1])
	if n == 0 || n > aes.BlockSize {
		return nil, false
	}
	for _, c := range b[len(b)-n:] {
		if int(c) != n {
			return nil, false
		}
	}
	return b[:len(b)-n], true
}

// Keys is an ordered set of keys, as Python's MultiFernet: the first one
// encrypts, every one of them decrypts. It lets an operator rotate
// S3EXPORTER_CREDENTIALS_KEY without a moment where tokens made with the
// old key are refused: put the new key first, keep the old one after it
// until every token is re-encrypted, then drop it. Printing Keys shows no
// key material.
type Keys struct {
	keys []*Key
}

// ParseKeys parses one key or several, comma-separated (white space around
// each is ignored). An empty entry ("k1,,k2", a trailing comma) is an error,
// not skipped: a key list that is not what the operator meant should fail
// at start, not at the first token. The error names the position of the bad
// key, never its text.
func ParseKeys(s string) (*Keys, error) {
	parts := strings.Split(s, ",")
	ks := &Keys{keys: make([]*Key, 0, len(parts))}
	for i, p := range parts {
		if strings.TrimSpace(p) == "" {
			return nil, fmt.Errorf("%w: key %d of %d is empty", ErrBadKey, i+1, len(parts))
		}
		k, err := ParseKey(p)
		if err != nil {
			if len(parts) == 1 {
				return nil, err
			}
			return nil, fmt.Errorf("key %d of %d: %w", i+1, len(parts), err)
		}
		ks.keys = append(ks.keys, k)
	}
	return ks, nil
}

// Len is the number of keys.
func (ks *Keys) Len() int { return len(ks.keys) }

// Encrypt encrypts with the first key.
func (ks *Keys) Encrypt(plaintext []byte, now time.Time) ([]byte, error) {
	return ks.keys[0].Encrypt(plaintext, now)
}

// Decrypt tries each key in order and returns the first plaintext one of
// them authenticates. An expired token (authentic under some key) fails
// with ErrExpired, anything else with ErrInvalidToken, as Key.Decrypt.
func (ks *Keys) Decrypt(token []byte, ttl time.Duration, now time.Time) ([]byte, error) {
	err := ErrInvalidToken
	for _, k := range ks.keys {
		out, kerr := k.Decrypt(token, ttl, now)
		if kerr == nil {
			return out, nil
		}
		if errors.Is(kerr, ErrExpired) {
			// Authentic under this key: no other key can do better.
			return nil, kerr
		}
		err = kerr
	}
	return nil, err
}

// String implements fmt.Stringer without revealing the keys.
func (ks Keys) String() string { return fmt.Sprintf("fernet.Keys([REDACTED] × %d)", len(ks.keys)) }

// GoString implements fmt.GoStringer without revealing the keys.
func (ks Keys) GoString() string { return ks.String() }

// Format makes every fmt verb print String.
func (ks Keys) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(ks.String())) }
