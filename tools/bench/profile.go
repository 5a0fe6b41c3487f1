package main

import (
	"bufio"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"time"
)

// stackSample is one distinct stack of a CPU profile (leaf first) and the
// time spent in it.
type stackSample struct {
	Dur    time.Duration
	Frames []string
}

// parseTraces reads the output of `go tool pprof -traces`.
func parseTraces(text string) []stackSample {
	var out []stackSample
	var cur *stackSample
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "-----------+") {
			if cur != nil && len(cur.Frames) > 0 {
				out = append(out, *cur)
			}
			cur = &stackSample{}
			continue
		}
		if cur == nil {
			continue // the header
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(cur.Frames) == 0 {
			d, err := time.ParseDuration(f[0])
			if err != nil || len(f) < 2 {
				continue
			}
			cur.Dur = d
			f = f[1:]
		}
		cur.Frames = append(cur.Frames, f[0]) // drop "(inline)"
	}
	if cur != nil && len(cur.Frames) > 0 {
		out = append(out, *cur)
	}
	return out
}

// category is where a sample's time goes, decided by its whole stack.
type category struct {
	Name  string
	match func(leaf string, stack string) bool
}

func has(s string, subs ...string) bool {
	for _, x := range subs {
		if strings.Contains(s, x) {
			return true
		}
	}
	return false
}

// uploadCategories sort the samples of workload 1; they are tried in order
// and the first that matches takes the sample.
var uploadCategories = []category{
	{"garbage collector (background marking and sweeping)", func(_, s string) bool {
		return has(s, "runtime.gcBgMarkWorker", "runtime.bgsweep", "runtime.bgscavenge")
	}},
	{"SHA-256 of artifacts (the exporter's sha256 verification while streaming)", func(l, s string) bool {
		return has(l, "sha256") && has(s, "s3-exporter/internal/source.")
	}},
	{"SHA-256 of request payloads (SigV4 signing of PUTs over http, in the SDK)", func(l, s string) bool {
		return has(l, "sha256") && has(s, "aws-sdk-go-v2")
	}},
	{"CRC32 request checksums (the SDK's default flexible checksums)", func(l, s string) bool {
		return has(l, "crc32") || has(s, "hash/crc32")
	}},
	{"goroutine stack growth (runtime.newstack, copystack)", func(_, s string) bool { return has(s, "runtime.newstack") }},
	{"zap logging", func(_, s string) bool { return has(s, "go.uber.org/zap") }},
	{"reading artifacts into memory (io.ReadAll: copies, buffer growth)", func(_, s string) bool { return has(s, "io.ReadAll") }},
	{"NATS client: object-store reads, fetch, acks, ledger and status publishes", func(_, s string) bool {
		return has(s, "nats-io/nats.go", "nats-io/nats%2ego")
	}},
	{"S3 requests: SDK middleware, XML, HTTP client and socket writes", func(_, s string) bool {
		return has(s, "aws-sdk-go-v2", "aws/smithy-go", "net/http.", "transfermanager", "exporter.(*wire)", "exporter.directPut")
	}},
	{"JSON encoding and decoding", func(_, s string) bool { return has(s, "encoding/json") }},
	{"Go scheduler, timers and netpoller", func(_, s string) bool {
		return has(s, "runtime.schedule", "runtime.findRunnable", "runtime.mcall", "runtime.park_m", "runtime.netpoll",
			"runtime.sysmon", "runtime.goexit0")
	}},
	{"other", func(string, string) bool { return true }},
}

// natsCategories sort the samples of nats-server while it serves the
// exporter of workload 1.
var natsCategories = []category{
	{"garbage collector (background marking and sweeping)", func(_, s string) bool {
		return has(s, "runtime.gcBgMarkWorker", "runtime.bgsweep", "runtime.bgscavenge")
	}},
	{"file store: loading message blocks from disk", func(_, s string) bool {
		return has(s, "(*msgBlock).loadBlock", "(*msgBlock).loadMsgsWithLock", "(*msgBlock).indexCacheBuf")
	}},
	{"consumers: create, deliver, acknowledge, delete", func(_, s string) bool {
		return has(s, "jsConsumerCreateRequest", "jsConsumerDeleteRequest", "addConsumer", "server.(*consumer)", "processNextMsgRequest")
	}},
	{"direct gets (object infos, chunks): lookup and reply", func(_, s string) bool {
		return has(s, "processDirectGet", "getDirectRequest", "getDirectMulti")
	}},
	{"JetStream API and stored publishes (stream info, ledger, status, acks)", func(_, s string) bool {
		return has(s, "processJSAPIRoutedRequests", "processInboundJetStreamMsg", "processJetStreamMsg", "internalSendLoop", "(*stream).internalLoop")
	}},
	{"writing to clients (socket writes)", func(_, s string) bool { return has(s, "flushOutbound", "(*client).writeLoop") }},
	{"reading and routing client messages", func(_, s string) bool {
		return has(s, "(*client).readLoop", "processInboundClientMsg", "(*client).parse")
	}},
	{"Go scheduler, timers and netpoller", func(_, s string) bool {
		return has(s, "runtime.schedule", "runtime.findRunnable", "runtime.mcall", "runtime.park_m", "runtime.netpoll",
			"runtime.sysmon", "runtime.goexit0")
	}},
	{"other", func(string, string) bool { return true }},
}

// catchUpCategories sort the samples of an exporter's start on a large
// integrations stream (workload 3).
var catchUpCategories = []category{
	{"garbage collector (background marking and sweeping)", func(_, s string) bool {
		return has(s, "runtime.gcBgMarkWorker", "runtime.bgsweep", "runtime.bgscavenge")
	}},
	{"zap logging (one line per integration)", func(_, s string) bool { return has(s, "go.uber.org/zap") }},
	{"Fernet decryption of the credentials", func(_, s string) bool { return has(s, "s3-exporter/fernet.") }},
	{"JSON decoding of the payloads", func(_, s string) bool { return has(s, "encoding/json") }},
	{"validation (names, ARNs, paths)", func(_, s string) bool {
		return has(s, "s3-exporter/integration.(*Parser)", "s3-exporter/integration.Normalize", "s3-exporter/integration.Validate", "regexp.")
	}},
	{"integration cache (Put, indexes)", func(_, s string) bool { return has(s, "s3-exporter/integration.(*Cache)") }},
	{"NATS client: receiving the messages", func(_, s string) bool { return has(s, "nats-io/nats.go", "nats-io/nats%2ego") }},
	{"Go scheduler, timers and netpoller", func(_, s string) bool {
		return has(s, "runtime.schedule", "runtime.findRunnable", "runtime.mcall", "runtime.park_m", "runtime.netpoll",
			"runtime.sysmon", "runtime.goexit0")
	}},
	{"other", func(string, string) bool { return true }},
}

// share is one category's part of a profile.
type share struct {
	Name string
	Dur  time.Duration
	Pct  float64
}

// profileSummary is what BENCHMARKS.md says of the workload-1 profile.
type profileSummary struct {
	Window   time.Duration // wall time profiled
	Total    time.Duration // CPU time sampled
	Shares   []share       // by category, largest first
	Syscalls float64       // % of samples whose leaf is a system call
	Top      []share       // flat top functions
}

// summarize groups samples by category.
func summarize(samples []stackSample, categories []category) profileSummary {
	var p profileSummary
	by := map[string]time.Duration{}
	var sys time.Duration
	for _, s := range samples {
		p.Total += s.Dur
		stack := strings.Join(s.Frames, " ")
		leaf := s.Frames[0]
		if has(leaf, "syscall.Syscall", "syscall.RawSyscall", "runtime/syscall/linux.Syscall", "runtime.futex", "runtime.epollwait", "runtime.write1", "runtime.read") {
			sys += s.Dur
		}
		for _, c := range categories {
			if c.match(leaf, stack) {
				by[c.Name] += s.Dur
				break
			}
		}
	}
	for _, c := range categories {
		if d := by[c.Name]; d > 0 {
			p.Shares = append(p.Shares, share{Name: c.Name, Dur: d, Pct: pct(d, p.Total)})
		}
	}
	sort.SliceStable(p.Shares, func(i, j int) bool { return p.Shares[i].Dur > p.Shares[j].Dur })
	p.Syscalls = pct(sys, p.Total)
	return p
}

func pct(d, total time.Duration) float64 {
	if total <= 0 {
		return 0
	}
	return 100 * float64(d) / float64(total)
}

// parseTop reads `go tool pprof -top` output into flat shares.
func parseTop(text string, n int) []share {
	var out []share
	in := false
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) >= 5 && f[0] == "flat" {
			in = true
			continue
		}
		if !in || len(f) < 6 {
			continue
		}
		d, err := time.ParseDuration(f[0])
		if err != nil {
			continue
		}
		var p float64
		if _, err := fmt.Sscanf(f[1], "%f%%", &p); err != nil {
			continue
		}
		out = append(out, share{Name: strings.Join(f[5:], " "), Dur: d, Pct: p})
		if len(out) == n {
			break
		}
	}
	return out
}

// analyzeProfile runs go tool pprof on a CPU profile.
func analyzeProfile(path string, window time.Duration, categories []category) (profileSummary, error) {
	traces, err := exec.Command("go", "tool", "pprof", "-traces", path).Output()
	if err != nil {
		return profileSummary{}, fmt.Errorf("go tool pprof -traces: %w", err)
	}
	p := summarize(parseTraces(string(traces)), categories)
	p.Window = window
	top, err := exec.Command("go", "tool", "pprof", "-top", "-nodecount=15", path).Output()
	if err != nil {
		return p, fmt.Errorf("go tool pprof -top: %w", err)
	}
	p.Top = parseTop(string(top), 15)
	return p, nil
}
