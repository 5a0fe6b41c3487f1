package main

import (
	"context"
	"flag"
	"fmt"
	"github.com/prowler-cloud/s3-exporter/internal/natsconn"
	"io"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/prowler-cloud/s3-exporter/client"
)

// globals are the connection flags, shared by every command. They are
// registered on the top-level flag set and again on each command's, so they
// may come before or after the command name.
type globals struct {
	server   string
	creds    string
	nkey     string
	tlsCert  string
	tlsKey   string
	tlsCA    string
	prefix   string
	inbox    string
	jsDomain string
	timeout  time.Duration
	json     bool
	context  string          // a nats CLI context (context.go)
	explicit map[string]bool // connection flags given on the command line
}

// defaultGlobals reads the defaults from the environment, as the nats CLI does.
func defaultGlobals(getenv func(string) string) globals {
	g := globals{
		server:  getenv("NATS_URL"),
		creds:   getenv("NATS_CREDS"),
		nkey:    getenv("NATS_NKEY"),
		tlsCert: getenv("NATS_CERT"),
		tlsKey:  getenv("NATS_KEY"),
		tlsCA:   getenv("NATS_CA"),
		inbox:   getenv("NATS_INBOX_PREFIX"),
		prefix:  "prowler",
		timeout: 30 * time.Second,
		context: getenv("NATS_CONTEXT"),
	}
	if g.server == "" {
		g.server = nats.DefaultURL
	}
	return g
}

// register adds the connection flags to fs, with the values parsed so far as
// defaults (so that a command's flag set does not reset them).
func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.server, "server", g.server, "NATS servers")
	fs.StringVar(&g.server, "s", g.server, "NATS servers")
	fs.StringVar(&g.creds, "creds", g.creds, "NATS credentials file")
	fs.StringVar(&g.nkey, "nkey", g.nkey, "NATS NKey seed file")
	fs.StringVar(&g.tlsCert, "tlscert", g.tlsCert, "TLS client certificate")
	fs.StringVar(&g.tlsKey, "tlskey", g.tlsKey, "TLS client key")
	fs.StringVar(&g.tlsCA, "tlsca", g.tlsCA, "TLS CA")
	fs.StringVar(&g.prefix, "prefix", g.prefix, "subject prefix")
	fs.StringVar(&g.inbox, "inbox-prefix", g.inbox, "reply subject prefix")
	fs.StringVar(&g.jsDomain, "js-domain", g.jsDomain, "JetStream domain of the exporter's streams")
	fs.DurationVar(&g.timeout, "timeout", g.timeout, "time limit of each request")
	fs.BoolVar(&g.json, "json", g.json, "JSON output")
	fs.StringVar(&g.context, "context", g.context, "nats CLI context")
	g.trackExplicit(fs)
}

var (
	prefixPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	inboxPattern  = regexp.MustCompile(`^[A-Za-z0-9_=-]+(\.[A-Za-z0-9_=-]+)*$`)
)

// check validates the connection flags.
func (g *globals) check() error {
	if !prefixPattern.MatchString(g.prefix) {
		return usageErrorf("--prefix %q: must be 1 to 64 letters, digits, '_' or '-'", g.prefix)
	}
	if g.timeout <= 0 {
		return usageErrorf("--timeout must be positive")
	}
	if (g.tlsCert == "") != (g.tlsKey == "") {
		return usageErrorf("--tlscert and --tlskey go together")
	}
	if g.inbox != "" && !inboxPattern.MatchString(g.inbox) {
		return usageErrorf("--inbox-prefix %q: must be subject tokens without wildcards, e.g. _INBOX_tenant-a", g.inbox)
	}
	if g.jsDomain != "" && !prefixPattern.MatchString(g.jsDomain) {
		return usageErrorf("--js-domain %q: must be 1 to 64 letters, digits, '_' or '-' (one subject token)", g.jsDomain)
	}
	if strings.TrimSpace(g.server) == "" {
		return usageErrorf("--server is empty")
	}
	return nil
}

// connect opens a NATS connection and a client; close it with the returned
// function.
func (a *app) connect() (*client.Client, func(), error) {
	g := &a.g
	ctxOpts, err := a.applyContext()
	if err != nil {
		return nil, nil, err
	}
	if err := g.check(); err != nil {
		return nil, nil, err
	}
	a.secrets.addURLPasswords(g.server)
	opts := []nats.Option{nats.Timeout(g.timeout)}
	if g.inbox != "" {
		// A tenant's user may subscribe its own reply subjects only: with
		// _INBOX.> it could read the replies sent to other tenants.
		opts = append(opts, nats.CustomInboxPrefix(g.inbox))
	}
	nc, err := natsconn.Connect(g.server, "exporterctl", natsconn.Auth{
		Creds: g.creds, NKeySeed: g.nkey, TLSCert: g.tlsCert, TLSKey: g.tlsKey, TLSCA: g.tlsCA,
	}, append(ctxOpts, opts...)...)
	if err != nil {
		return nil, nil, err
	}
	cl, err := client.New(nc, g.prefix, client.WithJSDomain(g.jsDomain))
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	return cl, nc.Close, nil
}

// request runs fn under the request timeout.
func (a *app) request(ctx context.Context, fn func(context.Context) error) error {
	rctx, cancel := context.WithTimeout(ctx, a.g.timeout)
	defer cancel()
	return fn(rctx)
}

// Secrets: a last line of defence. Every secret the command was given is
// registered here, and everything written to stdout and stderr is scrubbed of
// them. The output is built from redacting types in the first place; this
// catches what a wrapped error might quote.

// minSecretLen is the shortest value scrubbed: shorter ones would mangle
// ordinary output, and no real secret is that short.
const minSecretLen = 6

type secretSet struct {
	mu   sync.Mutex
	vals []string
}

func (s *secretSet) add(vals ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range vals {
		if v = strings.TrimSpace(v); len(v) >= minSecretLen {
			s.vals = append(s.vals, v)
		}
	}
}

// addURLPasswords registers the user information of NATS URLs.
func (s *secretSet) addURLPasswords(servers string) {
	for _, p := range strings.Split(servers, ",") {
		at := strings.LastIndex(p, "@")
		if at < 0 {
			continue
		}
		start := 0
		if j := strings.Index(p, "://"); j >= 0 && j < at {
			start = j + len("://")
		}
		info := p[start:at]
		s.add(info)
		if _, pass, ok := strings.Cut(info, ":"); ok {
			s.add(pass)
		}
	}
}

func (s *secretSet) redact(text string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range s.vals {
		text = strings.ReplaceAll(text, v, "[REDACTED]")
	}
	return text
}

// redactWriter scrubs every registered secret from what it writes. The
// commands write whole lines, so a secret is never split across writes.
type redactWriter struct {
	w io.Writer
	s *secretSet
}

func (r *redactWriter) Write(p []byte) (int, error) {
	if _, err := io.WriteString(r.w, r.s.redact(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}
