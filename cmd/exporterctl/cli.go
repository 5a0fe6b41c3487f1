package main

// Behaviour shared by every command: usage lines instead of the flag
// package's messages, JSON errors under --json, and the not-found exit code.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/prowler-cloud/s3-exporter/client"
	"github.com/prowler-cloud/s3-exporter/event"
)

// notFoundErr is a thing the exporter or the stream does not have; it ends
// the command with exitNotFound, and names its kind in JSON errors.
type notFoundErr struct {
	kind string // IntegrationNotFound, DeadLetterNotFound
	err  error
}

func (e *notFoundErr) Error() string { return "not found: " + e.err.Error() }
func (e *notFoundErr) Unwrap() error { return e.err }

func notFound(kind string, err error) error {
	return &exitErr{code: exitNotFound, err: &notFoundErr{kind: kind, err: err}}
}

// integrationNotFoundCode is the code a control reply may carry for an
// integration the exporter does not hold. Exporters that predate it answer
// InvalidRequest with a message saying the integration "is not known".
const integrationNotFoundCode = "IntegrationNotFound"

// classifyIntegrationErr turns a reply saying the integration is unknown into
// a not-found error; other errors pass unchanged.
func classifyIntegrationErr(err error) error {
	var re *client.ReplyError
	if errors.As(err, &re) && (re.Body.Code == integrationNotFoundCode || strings.Contains(re.Body.Message, "is not known")) {
		return notFound(integrationNotFoundCode, err)
	}
	return err
}

// getIntegration asks for one integration. It reads the reply itself rather
// than through client.Get so that an error reply with any code (the
// exporter's InvalidRequest today, IntegrationNotFound tomorrow) is an error,
// never an empty integration.
func getIntegration(ctx context.Context, cl *client.Client, tenant, id string) (event.GetReply, error) {
	var rep event.GetReply
	var raw json.RawMessage
	if err := cl.RequestTenant(ctx, tenant, event.OpGet, event.GetRequest{IntegrationID: id}, &raw); err != nil {
		return rep, classifyIntegrationErr(err)
	}
	var probe struct {
		Error *event.ErrorBody `json:"error"`
	}
	if err := json.Unmarshal(raw, &probe); err == nil && probe.Error != nil && probe.Error.Code != "" {
		return rep, classifyIntegrationErr(&client.ReplyError{Body: *probe.Error})
	}
	if err := json.Unmarshal(raw, &rep); err != nil {
		return rep, fmt.Errorf("reply: %w", err)
	}
	return rep, nil
}

// jsonError is what --json prints on stderr for an error.
type jsonError struct {
	Error struct {
		Code     string `json:"code"`
		Message  string `json:"message"`
		ExitCode int    `json:"exit_code"`
	} `json:"error"`
}

// errorCode names an error for JSON output: the exporter's own code when it
// answered with one, else the kind of failure.
func errorCode(err error, exit int) string {
	var nf *notFoundErr
	var re *client.ReplyError
	switch {
	case errors.As(err, &nf):
		return nf.kind
	case errors.As(err, &re) && re.Body.Code != "":
		return re.Body.Code
	case exit == exitUsage:
		return "UsageError"
	default:
		return "Error"
	}
}

// printJSONError writes err as one JSON line on stderr (through the
// redacting writer, like every other output).
func (a *app) printJSONError(err error, exit int) {
	var j jsonError
	j.Error.Code = errorCode(err, exit)
	j.Error.Message = oneLine(err.Error())
	j.Error.ExitCode = exit
	b, _ := json.Marshal(j)
	fmt.Fprintf(a.stderr, "%s\n", b)
}

// wantsJSON reports whether --json is among args (before a "--"): an error
// found before the flags are parsed, or in parsing them, is then JSON too.
func wantsJSON(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "--json", "-json", "--json=true", "-json=true":
			return true
		}
	}
	return false
}

// cleanFlagError rewrites the flag package's messages ("flag provided but
// not defined: -x") into ours, with the command's usage line. They never
// quote the value of a string flag, so a mistyped secret flag cannot leak.
func cleanFlagError(err error, help string) error {
	msg := err.Error()
	switch {
	case strings.HasPrefix(msg, "flag provided but not defined: "):
		name := strings.TrimLeft(strings.TrimPrefix(msg, "flag provided but not defined: "), "-")
		msg = "unknown flag --" + name
	case strings.HasPrefix(msg, "flag needs an argument: "):
		name := strings.TrimLeft(strings.TrimPrefix(msg, "flag needs an argument: "), "-")
		msg = "flag --" + name + " needs a value"
	default:
		msg = strings.Replace(msg, " for flag -", " for --", 1)
	}
	if u := usageLine(help); u != "" {
		msg += "; usage: " + u
	}
	return errors.New(msg)
}

// usageLine is the first usage line of a help text.
func usageLine(help string) string {
	lines := strings.Split(help, "\n")
	for i, l := range lines {
		rest, ok := strings.CutPrefix(strings.TrimSpace(l), "Usage:")
		if !ok {
			continue
		}
		if rest = strings.TrimSpace(rest); rest != "" {
			return rest
		}
		if i+1 < len(lines) {
			return strings.TrimSpace(lines[i+1])
		}
	}
	return ""
}
