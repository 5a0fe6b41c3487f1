// Command exporterctl is the command line of the exporter's peers: an
// integration admin publishing, testing and inspecting S3 integrations, and a
// scan engine (or an operator) publishing a folder of Prowler outputs as a
// scan-completed event, following status events and asking for replays. It
// speaks the wire contract through the client package and never prints a
// credential.
//
// Exit codes:
//
//	0  success
//	1  error (connection, request, I/O, a reply with an error)
//	2  usage error (bad command, flag or argument)
//	3  not connected (a connection test failed; its code and message are printed)
//	4  export failed (scan publish --wait: an integration's export failed)
//	5  not found (integration get/test: the exporter does not know the
//	   integration; dlq replay: no such dead letter)
//
// With --json, an error is one JSON object on stderr too (see cli.go).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// Exit codes (see the package comment and the help text).
const (
	exitOK           = 0
	exitError        = 1
	exitUsage        = 2
	exitNotConnected = 3
	exitExportFailed = 4
	exitNotFound     = 5
)

func main() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }

// run runs one command and returns its exit code. Interrupt and SIGTERM end
// long-running commands (status watch, scan publish --wait) cleanly.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	return runContext(ctx, args, stdin, stdout, stderr, os.Getenv)
}

// app is one invocation: its streams, environment and global flags.
type app struct {
	stdin   io.Reader
	stdout  io.Writer
	stderr  io.Writer
	getenv  func(string) string
	g       globals
	secrets *secretSet
}

// command is a leaf of the command tree.
type command struct {
	name  string // "integration put"
	short string // one line for the command list
	help  string // the command's own usage text (flags)
	run   func(ctx context.Context, a *app, args []string) error
}

// commands is set in init: the commands' functions look it up (for their
// help), which a package-level initialiser can't refer to.
var commands []command

func init() {
	commands = []command{
		{"integration put", "publish an integration (upsert)", integrationPutHelp, runIntegrationPut},
		{"integration delete", "publish the deletion of an integration", integrationDeleteHelp, runIntegrationDelete},
		{"integration get", "show an integration as the exporter holds it (redacted) and its last connection status", integrationGetHelp, runIntegrationGet},
		{"integration list", "list a tenant's integrations as the exporter holds them, with their connection status", integrationListHelp, runIntegrationList},
		{"integration test", "run a connection test of a saved or an unsaved integration", integrationTestHelp, runIntegrationTest},
		{"scan publish", "store a folder of Prowler outputs and publish the scan-completed event", scanPublishHelp, runScanPublish},
		{"scan run", "run Prowler, then publish its outputs and wait for the exports", scanRunHelp, runScanRun},
		{"status watch", "print export and connection status events as JSON lines", statusWatchHelp, runStatusWatch},
		{"replay", "ask the exporter to export a scan again", replayHelp, runReplay},
		{"dlq list", "list the dead letters (reason, original subject) of the DLQ stream", dlqListHelp, runDLQList},
		{"key generate", "print a new Fernet key for S3EXPORTER_CREDENTIALS_KEY and --key-file", keyGenerateHelp, runKeyGenerate},
		{"dlq replay", "publish dead letters' original payloads again on their original subjects", dlqReplayHelp, runDLQReplay},
	}
}

func findCommand(name string) *command {
	for i := range commands {
		if commands[i].name == name {
			return &commands[i]
		}
	}
	return nil
}

// runContext is run with its context and environment injected (tests call it).
func runContext(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	secrets := &secretSet{}
	a := &app{
		stdin:   stdin,
		stdout:  &redactWriter{w: stdout, s: secrets},
		stderr:  &redactWriter{w: stderr, s: secrets},
		getenv:  getenv,
		g:       defaultGlobals(getenv),
		secrets: secrets,
	}
	err := a.dispatch(ctx, args)
	code := exitCode(err)
	var help *helpRequest
	switch {
	case errors.As(err, &help):
		fmt.Fprint(a.stdout, help.text)
		return exitOK
	case err != nil && !errors.Is(err, errSilent):
		if a.g.json || wantsJSON(args) {
			a.printJSONError(err, code)
		} else {
			fmt.Fprintf(a.stderr, "exporterctl: %s\n", oneLine(err.Error()))
		}
	}
	return code
}

func (a *app) dispatch(ctx context.Context, args []string) error {
	top := newFlagSet("exporterctl")
	a.g.register(top)
	rest, err := parseInterleaved(top, args, true)
	if err != nil {
		return flagError(err, mainHelp())
	}
	if len(rest) == 0 {
		return usageErrorf("no command given; run exporterctl --help")
	}
	name := rest[0]
	if name == "help" {
		if len(rest) > 1 {
			if c := findCommand(strings.Join(rest[1:], " ")); c != nil {
				return &helpRequest{text: commandHelp(c)}
			}
		}
		return &helpRequest{text: mainHelp()}
	}
	sub := rest[1:]
	c := findCommand(name)
	if c == nil && len(sub) > 0 {
		if c = findCommand(name + " " + sub[0]); c != nil {
			sub = sub[1:]
		}
	}
	if c == nil {
		if groupHasCommands(name) {
			if len(sub) > 0 && isHelpFlag(sub[0]) {
				return &helpRequest{text: mainHelp()}
			}
			return usageErrorf("%s: which command? one of: %s", name, strings.Join(groupCommands(name), ", "))
		}
		return usageErrorf("unknown command %q; run exporterctl --help", name)
	}
	return c.run(ctx, a, sub)
}

func groupCommands(group string) []string {
	var out []string
	for _, c := range commands {
		if g, leaf, ok := strings.Cut(c.name, " "); ok && g == group {
			out = append(out, leaf)
		}
	}
	return out
}

func groupHasCommands(group string) bool { return len(groupCommands(group)) > 0 }

func isHelpFlag(s string) bool {
	switch s {
	case "-h", "-help", "--help":
		return true
	}
	return false
}

// Errors and exit codes.

// exitErr carries an exit code other than 1.
type exitErr struct {
	code int
	err  error
}

func (e *exitErr) Error() string { return e.err.Error() }
func (e *exitErr) Unwrap() error { return e.err }

// errSilent ends a command with its code and no message (the command has
// already printed its outcome).
var errSilent = errors.New("silent")

func usageErrorf(format string, args ...any) error {
	return &exitErr{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// withCode ends a command with code and no further message.
func withCode(code int) error { return &exitErr{code: code, err: errSilent} }

// helpRequest asks run to print text and exit 0.
type helpRequest struct{ text string }

func (h *helpRequest) Error() string { return "help requested" }

func exitCode(err error) int {
	var e *exitErr
	var h *helpRequest
	switch {
	case err == nil, errors.As(err, &h):
		return exitOK
	case errors.As(err, &e):
		return e.code
	default:
		return exitError
	}
}

// flagError turns an error of the flag package into a usage error (or a help
// request for -h). The flag package's messages name the flag, never the value
// of a string flag, so a mistyped secret flag cannot leak its value.
func flagError(err error, help string) error {
	if errors.Is(err, flag.ErrHelp) {
		return &helpRequest{text: help}
	}
	return &exitErr{code: exitUsage, err: cleanFlagError(err, help)}
}

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	return strings.NewReplacer("\r\n", "; ", "\n", "; ", "\r", "; ").Replace(s)
}

// Flag parsing.

func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	// Usage is printed by run from hand-written help; printing the flag
	// defaults could show a server URL with a password in it.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parseInterleaved parses flags that may come before, between or after the
// positional arguments (the stdlib stops at the first one), and returns the
// positional arguments. With stopAtFirst it stops at the first positional
// argument instead, leaving it and everything after it unparsed (the top
// level, where the command name comes first).
func parseInterleaved(fs *flag.FlagSet, args []string, stopAtFirst bool) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		if stopAtFirst {
			return rest, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// noArgs is the check of commands that take no positional argument. It does
// not echo them: a mistyped flag can leave a secret as a positional argument.
func noArgs(pos []string) error {
	if len(pos) > 0 {
		return usageErrorf("unexpected positional argument(s) (%d); did you mistype a flag?", len(pos))
	}
	return nil
}

// stringList is a repeatable flag that also splits on commas.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

// setFlags returns the names of the flags set on the command line.
func setFlags(fs *flag.FlagSet) map[string]bool {
	m := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { m[f.Name] = true })
	return m
}

// Help.

func mainHelp() string {
	var b strings.Builder
	b.WriteString(`exporterctl: the command line of the Prowler S3 exporter's peers.

Usage: exporterctl [connection flags] <command> [flags] [arguments]

Commands:
`)
	names := make([]string, 0, len(commands))
	for _, c := range commands {
		names = append(names, c.name)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "  %-20s %s\n", n, findCommand(n).short)
	}
	b.WriteString("\nRun 'exporterctl <command> --help' for a command's flags.\n\n")
	b.WriteString(globalHelp)
	b.WriteString(exitCodesHelp)
	return b.String()
}

func commandHelp(c *command) string {
	return "exporterctl " + c.name + ": " + c.short + "\n\n" + c.help + "\n" + globalHelp + exitCodesHelp
}

const globalHelp = `Connection flags (before or after the command):
  -s, --server URL    NATS servers, comma-separated (env NATS_URL; default nats://127.0.0.1:4222)
  --creds FILE        NATS user credentials file (env NATS_CREDS)
  --nkey FILE         NATS NKey seed file (env NATS_NKEY)
  --tlscert FILE      client certificate for NATS TLS (env NATS_CERT)
  --tlskey FILE       client key for NATS TLS (env NATS_KEY)
  --tlsca FILE        CA to verify the NATS servers (env NATS_CA)
  --prefix P          subject prefix of the exporter (default prowler)
  --inbox-prefix P    prefix of reply subjects (env NATS_INBOX_PREFIX; default _INBOX); a
                      per-tenant NATS user is allowed its own only (docs/security.md)
  --js-domain D       JetStream domain of the exporter's streams, e.g. hub from a leaf node
                      (the exporter's S3EXPORTER_NATS_JS_DOMAIN; a context's jetstream_domain)
  --timeout D         time limit of connecting and of each request (default 30s)
  --context NAME      a nats CLI context (~/.config/nats/context/NAME.json; env NATS_CONTEXT):
                      its url, creds, nkey, TLS files, user/password or token, unless a flag
                      or a NATS_* variable sets them
  --json              machine-readable (JSON) output; errors too, as {"error": {...}} on stderr
`

const exitCodesHelp = `
Exit codes:
  0  success
  1  error
  2  usage error
  3  not connected (connection test failed)
  4  export failed (scan publish --wait)
  5  not found (integration get/test: unknown integration; dlq replay: no such dead letter)
`
