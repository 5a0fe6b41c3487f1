// Package natsconn opens the NATS connections of the daemon and of
// exporterctl the same way: the same authentication settings, and errors
// that never show a password written into a server URL.
package natsconn

import (
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/prowler-cloud/s3-exporter/config"
)

// Auth is how a client proves who it is to the NATS servers, and which
// servers it trusts. Every field is optional.
type Auth struct {
	Creds    string // a .creds file (user JWT and NKey seed)
	NKeySeed string // a file holding an NKey seed
	TLSCert  string // a client certificate...
	TLSKey   string // ...and its key
	TLSCA    string // CA certificates to verify the servers with
}

// Options returns the connection options that carry a. A seed file that
// cannot be read is an error that names it.
func (a Auth) Options() ([]nats.Option, error) {
	var opts []nats.Option
	if a.Creds != "" {
		opts = append(opts, nats.UserCredentials(a.Creds))
	}
	if a.NKeySeed != "" {
		o, err := nats.NkeyOptionFromSeed(a.NKeySeed)
		if err != nil {
			return nil, fmt.Errorf("NKey seed %s: %w", a.NKeySeed, err)
		}
		opts = append(opts, o)
	}
	if a.TLSCert != "" {
		opts = append(opts, nats.ClientCert(a.TLSCert, a.TLSKey))
	}
	if a.TLSCA != "" {
		opts = append(opts, nats.RootCAs(a.TLSCA))
	}
	return opts, nil
}

// Connect connects to the servers of urls (comma-separated) as name, with
// a's settings and opts. A failure's message shows the URLs with their
// passwords redacted.
func Connect(urls, name string, a Auth, opts ...nats.Option) (*nats.Conn, error) {
	auth, err := a.Options()
	if err != nil {
		return nil, err
	}
	all := append([]nats.Option{nats.Name(name)}, auth...)
	nc, err := nats.Connect(strings.TrimSpace(urls), append(all, opts...)...)
	if err != nil {
		return nil, &connectError{
			msg: fmt.Sprintf("connecting to NATS at %s: %s", config.RedactURLs(urls), redact(err.Error(), urls)),
			err: err,
		}
	}
	return nc, nil
}

// connectError is a failure to connect, its message redacted; errors.Is
// still sees the client library's error.
type connectError struct {
	msg string
	err error
}

func (e *connectError) Error() string { return e.msg }
func (e *connectError) Unwrap() error { return e.err }

// redact removes from msg the passwords of the URLs in urls, in case the
// client library quoted one.
func redact(msg, urls string) string {
	for _, u := range strings.Split(urls, ",") {
		u = strings.TrimSpace(u)
		if r := config.RedactURLs(u); r != u {
			msg = strings.ReplaceAll(msg, u, r)
		}
	}
	return msg
}
