package config

import (
	"fmt"
	"log/slog"
	"strconv"
)

// Redacted is what a set Secret prints as.
const Redacted = "[REDACTED]"

// Secret is a string that never prints: fmt (any verb), encoding/json,
// encoding.TextMarshaler users, zap (zap.Any and zap.Stringer use String;
// zap.Reflect uses MarshalJSON) and slog all see Redacted when it is set and
// "" when it is empty. Use Reveal to get the value.
type Secret string

// Reveal returns the secret value. Call it only where the value is used.
func (s Secret) Reveal() string { return string(s) }

// IsSet reports whether the secret is non-empty.
func (s Secret) IsSet() bool { return s != "" }

func (s Secret) redacted() string {
	if s == "" {
		return ""
	}
	return Redacted
}

// String implements fmt.Stringer.
func (s Secret) String() string { return s.redacted() }

// GoString implements fmt.GoStringer.
func (s Secret) GoString() string { return strconv.Quote(s.redacted()) }

// Format implements fmt.Formatter, so that no verb (%d, %x, %q, …) reaches
// the value.
func (s Secret) Format(f fmt.State, verb rune) {
	switch {
	case verb == 'q' || (verb == 'v' && f.Flag('#')):
		_, _ = f.Write([]byte(strconv.Quote(s.redacted())))
	default:
		_, _ = f.Write([]byte(s.redacted()))
	}
}

// MarshalJSON implements json.Marshaler.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(strconv.Quote(s.redacted())), nil }

// MarshalText implements encoding.TextMarshaler.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.redacted()), nil }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.redacted()) }
