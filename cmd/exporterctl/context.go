package main

// nats CLI contexts: `--context NAME` (or NATS_CONTEXT) reads
// $XDG_CONFIG_HOME/nats/context/NAME.json (~/.config/nats/context/NAME.json),
// the file `nats context save` writes, so an operator who has set up the nats
// CLI reaches the same servers with the same credentials. Precedence, as in
// the nats CLI: a flag, then a NATS_* variable, then the context, then the
// default. The context that `nats context select` chose is not used unless
// named: exporterctl publishes integrations and replays scans, and should not
// act on another system because of a choice made for another tool.

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/nats-io/nats.go"
)

// natsContext holds the fields of a nats CLI context that exporterctl uses.
type natsContext struct {
	URL      string `json:"url"`
	User     string `json:"user"`
	Password string `json:"password"`
	Token    string `json:"token"`
	Creds    string `json:"creds"`
	NKey     string `json:"nkey"`
	Cert     string `json:"cert"`
	Key      string `json:"key"`
	CA       string `json:"ca"`
	JSDomain string `json:"jetstream_domain"`
}

var contextNamePattern = regexp.MustCompile(`^[A-Za-z0-9_@-][A-Za-z0-9_.@-]*$`)

// contextFields maps each connection flag a context can fill to its
// environment variable.
var contextFields = map[string]string{
	"server": "NATS_URL", "creds": "NATS_CREDS", "nkey": "NATS_NKEY",
	"tlscert": "NATS_CERT", "tlskey": "NATS_KEY", "tlsca": "NATS_CA",
}

// explicitValue marks its flag as given on the command line.
type explicitValue struct {
	flag.Value
	mark func()
}

func (v explicitValue) Set(s string) error { v.mark(); return v.Value.Set(s) }

// trackExplicit records which connection flags the command line sets, so a
// context fills only the others.
func (g *globals) trackExplicit(fs *flag.FlagSet) {
	if g.explicit == nil {
		g.explicit = map[string]bool{}
	}
	for _, name := range []string{"server", "s", "creds", "nkey", "tlscert", "tlskey", "tlsca", "js-domain"} {
		f := fs.Lookup(name)
		if f == nil {
			continue
		}
		field := name
		if field == "s" {
			field = "server"
		}
		f.Value = explicitValue{Value: f.Value, mark: func() { g.explicit[field] = true }}
	}
}

// contextDir is where the nats CLI keeps its contexts.
func contextDir(getenv func(string) string) (string, error) {
	if x := getenv("XDG_CONFIG_HOME"); x != "" {
		return filepath.Join(x, "nats", "context"), nil
	}
	home := getenv("HOME")
	if home == "" {
		return "", errors.New("neither XDG_CONFIG_HOME nor HOME is set")
	}
	return filepath.Join(home, ".config", "nats", "context"), nil
}

// loadContext reads a named context.
func loadContext(name string, getenv func(string) string) (*natsContext, error) {
	if !contextNamePattern.MatchString(name) || strings.Contains(name, "..") {
		return nil, usageErrorf("--context %q: not a context name", name)
	}
	dir, err := contextDir(getenv)
	if err != nil {
		return nil, fmt.Errorf("--context %s: %w", name, err)
	}
	path := filepath.Join(dir, name+".json")
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, usageErrorf("--context %s: no such context (%s)", name, path)
	}
	if err != nil {
		return nil, fmt.Errorf("--context %s: %w", name, err)
	}
	var c natsContext
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("--context %s: %s is not a nats context: %w", name, path, err)
	}
	home := getenv("HOME")
	for _, p := range []*string{&c.Creds, &c.NKey, &c.Cert, &c.Key, &c.CA} {
		if rest, ok := strings.CutPrefix(*p, "~/"); ok && home != "" {
			*p = filepath.Join(home, rest)
		}
	}
	return &c, nil
}

// applyContext fills the connection settings from --context (or
// NATS_CONTEXT) where neither a flag nor a NATS_* variable set them, and
// returns the options for what only a context carries (user and password,
// token). Its secrets are registered for redaction.
func (a *app) applyContext() ([]nats.Option, error) {
	g := &a.g
	if g.context == "" {
		return nil, nil
	}
	c, err := loadContext(g.context, a.getenv)
	if err != nil {
		return nil, err
	}
	a.secrets.add(c.Password, c.Token)
	a.secrets.addURLPasswords(c.URL)
	fromContext := map[string]string{
		"server": c.URL, "creds": c.Creds, "nkey": c.NKey, "tlscert": c.Cert, "tlskey": c.Key, "tlsca": c.CA,
	}
	fields := map[string]*string{
		"server": &g.server, "creds": &g.creds, "nkey": &g.nkey, "tlscert": &g.tlsCert, "tlskey": &g.tlsKey, "tlsca": &g.tlsCA,
	}
	for name, env := range contextFields {
		if v := fromContext[name]; v != "" && !g.explicit[name] && a.getenv(env) == "" {
			*fields[name] = v
		}
	}
	// The nats CLI's contexts name the JetStream domain too; it has no
	// environment variable, so only --js-domain overrides it.
	if c.JSDomain != "" && !g.explicit["js-domain"] {
		g.jsDomain = c.JSDomain
	}
	var opts []nats.Option
	switch {
	case c.User != "":
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	case c.Token != "":
		opts = append(opts, nats.Token(c.Token))
	}
	return opts, nil
}
