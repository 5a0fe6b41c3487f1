package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/prowler-cloud/s3-exporter/client"
	"github.com/prowler-cloud/s3-exporter/event"
)

const dlqListHelp = `Usage: exporterctl dlq list [--tenant T] [--limit N]

Lists the dead letters of the <PREFIX>_DLQ stream, oldest first: the scan
events the exporter could not use (MalformedEvent) or gave up on after its
retries, with their stream sequence, time, reason and original subject. The
payload itself is not printed (it can be large); "dlq replay" sends it again.
With --json, one JSON object per line.

Flags:
  --tenant T   only this tenant's dead letters (prowler.dlq.scans.<T>)
  --limit N    at most N dead letters, the oldest (default 0: all)
`

const dlqReplayHelp = `Usage: exporterctl dlq replay (--seq N [--seq M ...] | --tenant T --all) [--delete] [--force]

Publishes the original payload of dead letters again, byte for byte, on their
Prowler-Original-Subject (a scans.completed subject of this prefix; anything
else is refused), so the exporter takes them as new scan events, with their
retries, statuses and dead-lettering. Fix the cause first (the reason says
it). A republished event carries Nats-Msg-Id dlq-<sequence>, so running the
same replay twice within the scans stream's duplicate window publishes once.

Flags:
  --seq N      the dead letter with this stream sequence (repeatable; "dlq list" shows them)
  --tenant T   with --all: every dead letter of tenant T
  --all        every dead letter of --tenant
  --delete     delete each dead letter once it is republished
  --force      also replay MalformedEvent dead letters (they would be dead-lettered again
               unless the exporter's rules changed)
`

// deadLetter is what "dlq list" shows of one dead letter.
type deadLetter struct {
	Seq             uint64    `json:"seq"`
	Time            time.Time `json:"time"`
	Subject         string    `json:"subject"`
	Tenant          string    `json:"tenant"`
	Reason          string    `json:"reason"`
	OriginalSubject string    `json:"original_subject"`
	Size            int       `json:"size"`
}

func dlqStream(prefix string) string { return strings.ToUpper(prefix) + "_DLQ" }

// dlqSubject is the filter of a tenant's dead letters, or of all of them.
func dlqSubject(prefix, tenant string) string {
	if tenant == "" {
		return event.Subject(prefix, event.DLQScans, ">")
	}
	return event.Subject(prefix, event.DLQScans, tenant)
}

func toDeadLetter(prefix string, seq uint64, t time.Time, subject string, h nats.Header, size int) deadLetter {
	d := deadLetter{Seq: seq, Time: t.UTC(), Subject: subject, Size: size,
		Reason: h.Get(event.HeaderDLQReason), OriginalSubject: h.Get(event.HeaderOriginalSubject)}
	if toks, err := event.SubjectTokens(subject, prefix, event.DLQScans, 1); err == nil {
		d.Tenant = toks[0]
	}
	return d
}

func runDLQList(ctx context.Context, a *app, args []string) error {
	fs := newFlagSet("dlq list")
	a.g.register(fs)
	var tenant string
	var limit int
	fs.StringVar(&tenant, "tenant", "", "")
	fs.IntVar(&limit, "limit", 0, "")
	pos, err := a.parse(fs, "dlq list", args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	if tenant != "" && !event.ValidID(tenant) && tenant != "unknown" {
		return usageErrorf("--tenant %q: not an identifier", tenant)
	}
	if limit < 0 {
		return usageErrorf("--limit must be 0 (all) or more")
	}
	cl, closeConn, err := a.connect()
	if err != nil {
		return err
	}
	defer closeConn()
	letters, err := listDeadLetters(ctx, a, cl, tenant, limit)
	if err != nil {
		return err
	}
	for _, d := range letters {
		if a.g.json {
			if err := a.printJSON(d); err != nil {
				return err
			}
			continue
		}
		fmt.Fprintf(a.stdout, "%d  %s  %s  %s  (%d bytes)\n    %s\n", d.Seq, d.Time.Format(time.RFC3339), d.Tenant, d.OriginalSubject, d.Size, d.Reason)
	}
	if !a.g.json && len(letters) == 0 {
		fmt.Fprintln(a.stdout, "no dead letters")
	}
	return nil
}

// listDeadLetters reads the DLQ stream with an ordered consumer, from the
// first message to the last one there when it started.
func listDeadLetters(ctx context.Context, a *app, cl *client.Client, tenant string, limit int) ([]deadLetter, error) {
	var out []deadLetter
	err := a.request(ctx, func(ctx context.Context) error {
		name := dlqStream(cl.Prefix)
		st, err := cl.JS.Stream(ctx, name)
		if err != nil {
			return fmt.Errorf("stream %s: %w", name, err)
		}
		cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{dlqSubject(cl.Prefix, tenant)},
			DeliverPolicy:  jetstream.DeliverAllPolicy,
		})
		if err != nil {
			return fmt.Errorf("reading %s: %w", name, err)
		}
		info, err := cons.Info(ctx)
		if err != nil {
			return fmt.Errorf("reading %s: %w", name, err)
		}
		if info.NumPending == 0 {
			return nil
		}
		for {
			msg, err := cons.Next(jetstream.FetchMaxWait(a.g.timeout))
			if err != nil {
				return fmt.Errorf("reading %s: %w", name, err)
			}
			md, err := msg.Metadata()
			if err != nil {
				return err
			}
			out = append(out, toDeadLetter(cl.Prefix, md.Sequence.Stream, md.Timestamp, msg.Subject(), msg.Headers(), len(msg.Data())))
			if md.NumPending == 0 || (limit > 0 && len(out) == limit) {
				return nil
			}
		}
	})
	return out, err
}

type seqList []uint64

func (l *seqList) String() string { return fmt.Sprint(*l) }

func (l *seqList) Set(v string) error {
	for p := range strings.SplitSeq(v, ",") {
		n, err := strconv.ParseUint(strings.TrimSpace(p), 10, 64)
		if err != nil || n == 0 {
			return errors.New("not a stream sequence")
		}
		*l = append(*l, n)
	}
	return nil
}

// replayOutcome is one line of "dlq replay --json".
type replayOutcome struct {
	Seq             uint64 `json:"seq"`
	OriginalSubject string `json:"original_subject"`
	Published       bool   `json:"published"`
	StreamSeq       uint64 `json:"stream_seq,omitempty"`
	Duplicate       bool   `json:"duplicate,omitempty"`
	Deleted         bool   `json:"deleted,omitempty"`
	Skipped         string `json:"skipped,omitempty"`
}

func runDLQReplay(ctx context.Context, a *app, args []string) error {
	fs := newFlagSet("dlq replay")
	a.g.register(fs)
	var seqs seqList
	var tenant string
	var all, del, force bool
	fs.Var(&seqs, "seq", "")
	fs.StringVar(&tenant, "tenant", "", "")
	fs.BoolVar(&all, "all", false, "")
	fs.BoolVar(&del, "delete", false, "")
	fs.BoolVar(&force, "force", false, "")
	pos, err := a.parse(fs, "dlq replay", args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	switch {
	case len(seqs) > 0 && (all || tenant != ""):
		return usageErrorf("--seq, or --tenant with --all, not both")
	case len(seqs) == 0 && !all:
		return usageErrorf("which dead letters? --seq N, or --tenant T --all")
	case all && tenant == "":
		return usageErrorf("--all needs --tenant (dead letters are replayed one tenant at a time)")
	case tenant != "" && !event.ValidID(tenant) && tenant != "unknown":
		return usageErrorf("--tenant %q: not an identifier", tenant)
	}
	cl, closeConn, err := a.connect()
	if err != nil {
		return err
	}
	defer closeConn()
	if all {
		letters, err := listDeadLetters(ctx, a, cl, tenant, 0)
		if err != nil {
			return err
		}
		for _, d := range letters {
			seqs = append(seqs, d.Seq)
		}
		if len(seqs) == 0 {
			fmt.Fprintf(a.stderr, "no dead letters of tenant %s\n", tenant)
			return nil
		}
	}
	var failed int
	for _, seq := range seqs {
		o, err := replayDeadLetter(ctx, a, cl, seq, del, force)
		if err != nil {
			return fmt.Errorf("dead letter %d: %w", seq, err)
		}
		if o.Skipped != "" {
			failed++
		}
		if a.g.json {
			if err := a.printJSON(o); err != nil {
				return err
			}
			continue
		}
		switch {
		case o.Skipped != "":
			fmt.Fprintf(a.stdout, "dead letter %d: skipped: %s\n", seq, o.Skipped)
		case o.Duplicate:
			fmt.Fprintf(a.stdout, "dead letter %d: already republished on %s (duplicate dropped)\n", seq, o.OriginalSubject)
		default:
			fmt.Fprintf(a.stdout, "dead letter %d: republished on %s (stream sequence %d)%s\n", seq, o.OriginalSubject, o.StreamSeq,
				map[bool]string{true: ", deleted from the DLQ", false: ""}[o.Deleted])
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d dead letters not replayed", failed, len(seqs))
	}
	return nil
}

// replayDeadLetter republishes one dead letter. A dead letter that cannot be
// replayed as it is (its original subject is not a scan subject of this
// prefix, or it is a MalformedEvent without --force) is skipped with the
// reason; a missing one is an error.
func replayDeadLetter(ctx context.Context, a *app, cl *client.Client, seq uint64, del, force bool) (replayOutcome, error) {
	o := replayOutcome{Seq: seq}
	err := a.request(ctx, func(ctx context.Context) error {
		name := dlqStream(cl.Prefix)
		st, err := cl.JS.Stream(ctx, name)
		if err != nil {
			return fmt.Errorf("stream %s: %w", name, err)
		}
		raw, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return notFound("DeadLetterNotFound", fmt.Errorf("no message %d in %s", seq, name))
		}
		if err != nil {
			return err
		}
		if _, err := event.SubjectTokens(raw.Subject, cl.Prefix, event.DLQScans, 1); err != nil {
			o.Skipped = fmt.Sprintf("message %d of %s (%s) is not a dead letter", seq, name, raw.Subject)
			return nil
		}
		orig := raw.Header.Get(event.HeaderOriginalSubject)
		o.OriginalSubject = orig
		// Only ever a scan event of this prefix: a header is data, and a
		// dead letter must not be a way to publish anywhere else.
		if _, err := event.SubjectTokens(orig, cl.Prefix, event.ScansCompleted, 2); err != nil {
			o.Skipped = fmt.Sprintf("original subject %q is not a %s.%s.<tenant>.<provider> subject", orig, cl.Prefix, event.ScansCompleted)
			return nil
		}
		if reason := raw.Header.Get(event.HeaderDLQReason); strings.HasPrefix(reason, "MalformedEvent") && !force {
			o.Skipped = "a MalformedEvent would be dead-lettered again; fix the publisher, or use --force"
			return nil
		}
		msg := nats.NewMsg(orig)
		msg.Data = raw.Data
		msg.Header.Set(jetstream.MsgIDHeader, "dlq-"+strconv.FormatUint(seq, 10))
		ack, err := cl.JS.PublishMsg(ctx, msg)
		if err != nil {
			return fmt.Errorf("publishing on %s: %w", orig, err)
		}
		o.Published, o.StreamSeq, o.Duplicate = true, ack.Sequence, ack.Duplicate
		if del {
			if err := st.DeleteMsg(ctx, seq); err != nil {
				return fmt.Errorf("republished, but deleting it from %s: %w", name, err)
			}
			o.Deleted = true
		}
		return nil
	})
	return o, err
}
