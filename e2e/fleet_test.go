package e2e

// Helpers of the scale-out and fault-tolerance tests (cluster_test.go,
// crash_test.go, brownout_test.go, load_test.go): exporter replicas run as
// processes that can be killed and restarted, scans in bulk, a follower of
// the export statuses, and checks of what landed.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/prowler-cloud/s3-exporter/client"
	"github.com/prowler-cloud/s3-exporter/config"
	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/internal/clock"
	"github.com/prowler-cloud/s3-exporter/internal/streams"
	"github.com/prowler-cloud/s3-exporter/testutil/natstest"
	"github.com/prowler-cloud/s3-exporter/testutil/s3test"
)

// lockedBuffer is an io.Writer safe to read while a process writes to it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// replica is one exporter run as a process, which a test can kill and
// restart; the log of every incarnation is kept.
type replica struct {
	t    *testing.T
	name string
	bin  string
	env  map[string]string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan error
	logs []*lockedBuffer // one per incarnation, the current one last
}

// startReplica starts an exporter process and waits until it is ready; it is
// killed at the end of the test if still running.
func startReplica(t *testing.T, name, bin string, env map[string]string) *replica {
	t.Helper()
	r := &replica{t: t, name: name, bin: bin, env: env}
	t.Cleanup(func() {
		if r.running() {
			r.kill()
		}
	})
	r.start()
	return r
}

// start starts a new incarnation and waits for its "exporter ready" line.
func (r *replica) start() {
	r.t.Helper()
	cmd := exec.Command(r.bin)
	cmd.Env = os.Environ()
	for k, v := range r.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	buf := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = buf, buf
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("%s: %v", r.name, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	r.mu.Lock()
	r.cmd, r.done = cmd, done
	r.logs = append(r.logs, buf)
	r.mu.Unlock()

	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(buf.String(), `"msg":"exporter ready"`) {
		select {
		case err := <-done:
			done <- err
			r.t.Fatalf("%s exited before it was ready (%v); log:\n%s", r.name, err, buf)
		default:
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%s not ready after 30 s; log:\n%s", r.name, buf)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *replica) running() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done == nil {
		return false
	}
	select {
	case err := <-r.done:
		r.done <- err
		return false
	default:
		return true
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (r *replica) kill() {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGKILL)
	err := <-done
	done <- err
}

// stacks makes the running process print its goroutines (SIGQUIT) and exit,
// and returns them, for failure messages about a stuck replica.
func (r *replica) stacks() string {
	r.mu.Lock()
	cmd, done, buf := r.cmd, r.done, r.logs[len(r.logs)-1]
	r.mu.Unlock()
	before := len(buf.String())
	_ = cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case err := <-done:
		done <- err
	case <-time.After(10 * time.Second):
	}
	return buf.String()[before:]
}

func (r *replica) pid() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cmd.Process.Pid
}

func (r *replica) incarnations() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.logs)
}

// current is the log of the running incarnation.
func (r *replica) current() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.logs[len(r.logs)-1].String()
}

// logText is the log of every incarnation.
func (r *replica) logText() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for i, l := range r.logs {
		fmt.Fprintf(&b, "--- %s incarnation %d ---\n%s", r.name, i+1, l)
	}
	return b.String()
}

// notable is the log of every incarnation without the "export finished"
// lines, the last n of them, for failure messages.
func (r *replica) notable(n int) string {
	var keep []string
	for _, l := range strings.Split(strings.TrimRight(r.logText(), "\n"), "\n") {
		if !strings.Contains(l, `"msg":"export finished"`) {
			keep = append(keep, l)
		}
	}
	if len(keep) > n {
		keep = keep[len(keep)-n:]
	}
	return strings.Join(keep, "\n")
}

// count counts the log lines with message msg, over every incarnation.
func (r *replica) count(msg string) int {
	return strings.Count(r.logText(), `"msg":"`+msg+`"`)
}

// logField returns the field of the first line of the current incarnation
// with message msg.
func (r *replica) logField(msg, field string) string {
	sc := bufio.NewScanner(strings.NewReader(r.current()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) != nil || line["msg"] != msg {
			continue
		}
		s, _ := line[field].(string)
		return s
	}
	return ""
}

// metrics fetches the current incarnation's /metrics.
func (r *replica) metrics() (string, error) {
	addr := r.logField("metrics server listening", "addr")
	if addr == "" {
		return "", fmt.Errorf("%s logged no metrics address", r.name)
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// rssKiB reads the resident set size of the running process.
func (r *replica) rssKiB() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", r.pid()))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			return strconv.ParseInt(f[1], 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", r.pid())
}

// metricSum adds up every series of a metric in a Prometheus text exposition.
func metricSum(text, name string) float64 {
	var sum float64
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil && !math.IsNaN(v) {
			sum += v
		}
	}
	return sum
}

// replicaEnv is the environment of an exporter process; extra overrides.
func replicaEnv(natsURL, s3Endpoint string, extra map[string]string) map[string]string {
	env := map[string]string{
		"S3EXPORTER_NATS_URL":                    natsURL,
		"S3EXPORTER_S3_ENDPOINT":                 s3Endpoint,
		"S3EXPORTER_S3_FORCE_PATH_STYLE":         "true",
		"S3EXPORTER_ALLOW_PLAINTEXT_CREDENTIALS": "true",
		"S3EXPORTER_METRICS_ADDR":                "127.0.0.1:0",
		"S3EXPORTER_BACKOFF":                     "200ms",
		"S3EXPORTER_RETRY_BASE_DELAY":            "20ms",
		"S3EXPORTER_S3_RETRY_MAX_BACKOFF":        "50ms",
		"S3EXPORTER_SHUTDOWN_GRACE":              "2s",
	}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

// newClusterEnv starts a three-node NATS cluster and returns an env (without
// an exporter) connected to it, whose streams, ledger bucket and object store
// have three replicas.
func newClusterEnv(t *testing.T) (*env, []*server.Server) {
	t.Helper()
	servers := natstest.StartNATSCluster(t, 3)
	cfg := config.Default()
	cfg.NATSURL = natstest.ClusterURLs(servers)
	cfg.StreamReplicas = 3
	nc, err := nats.Connect(cfg.NATSURL, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	cl, err := client.New(nc, cfg.SubjectPrefix)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topo := streams.Topology{Prefix: cfg.SubjectPrefix, Replicas: 3, ScanMaxAge: cfg.ScanMaxAge}
	if _, err := streams.EnsureStreams(ctx, cl.JS, topo, true); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.JS.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: client.DefaultObjectStore, Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	return &env{t: t, s3: s3Server(t), cfg: cfg, nc: nc, cl: cl, changed: make(chan struct{})}, servers
}

// loadFile is one artifact of a loadScan.
type loadFile struct {
	format string
	size   int
	seed   int
}

// body generates the file's bytes (deterministic, distinct per scan and format).
func (f loadFile) body() []byte {
	b := make([]byte, f.size)
	head := fmt.Sprintf("seed %d format %s\n", f.seed, f.format)
	n := copy(b, head)
	x := uint32(f.seed)*2654435761 + uint32(len(f.format))
	for i := n; i < len(b); i++ {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = 'a' + byte(x%26)
		if x%61 == 0 {
			b[i] = '\n'
		}
	}
	return b
}

// loadScan is one scan of a bulk test: its own provider UID, so its keys
// are its own.
type loadScan struct {
	tenant, provider, uid, id string
	started                   time.Time
	files                     []loadFile
}

var suffixOf = map[string]string{
	event.FormatCSV: ".csv", event.FormatHTML: ".html", event.FormatOCSF: ".ocsf.json", event.FormatASFF: ".asff.json",
}

// key is the object key of contract §4 of one of the scan's files.
func (s loadScan) key(dir string, f loadFile) string {
	return dir + "/" + f.format + "/prowler-output-" + s.uid + "-" + s.started.UTC().Format("20060102150405") + suffixOf[f.format]
}

// loadScans makes n scans of tenant-a/prov-1 with a small file of each
// format; when bigEvery > 0, every bigEvery-th scan also has a json-asff file
// of bigSize bytes.
func loadScans(name string, n int, formats []string, bigEvery, bigSize int) []loadScan {
	out := make([]loadScan, n)
	base := time.Date(2025, 8, 5, 12, 0, 0, 0, time.UTC)
	for i := range out {
		s := loadScan{tenant: "tenant-a", provider: "prov-1", uid: fmt.Sprintf("%012d", 100_000_000_000+i),
			id: fmt.Sprintf("%s-%04d", name, i), started: base.Add(time.Duration(i) * time.Second)}
		for j, f := range formats {
			s.files = append(s.files, loadFile{format: f, size: 200 + (i*37+j*101)%900, seed: i*10 + j})
		}
		if bigEvery > 0 && i%bigEvery == bigEvery-1 {
			s.files = append(s.files, loadFile{format: event.FormatASFF, size: bigSize, seed: i*10 + 9})
		}
		out[i] = s
	}
	return out
}

// wantObject is what a key must hold.
type wantObject struct {
	size   int64
	sha256 string
}

// wantObjects lists what the scans must write under dir.
func wantObjects(scans []loadScan, dir string) map[string]wantObject {
	out := map[string]wantObject{}
	for _, s := range scans {
		for _, f := range s.files {
			sum := sha256.Sum256(f.body())
			out[s.key(dir, f)] = wantObject{size: int64(f.size), sha256: hex.EncodeToString(sum[:])}
		}
	}
	return out
}

// publishLoad stores the scans' files in the object store and publishes the
// scans, with workers publishers; every > 0 paces each worker.
func publishLoad(cl *client.Client, scans []loadScan, workers int, every time.Duration) error {
	next := make(chan loadScan)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range next {
				if err := publishOne(cl, s); err != nil {
					errs <- err
					for range next {
					}
					return
				}
				if every > 0 {
					time.Sleep(every)
				}
			}
		}()
	}
	for _, s := range scans {
		next <- s
	}
	close(next)
	wg.Wait()
	close(errs)
	return <-errs
}

func publishOne(cl *client.Client, s loadScan) error {
	// A NATS node may be lost while we publish: try again, the scan id
	// deduplicates the event and the object store overwrites the files.
	var err error
	for attempt := 0; attempt < 10; attempt++ {
		if attempt > 0 {
			time.Sleep(500 * time.Millisecond)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var files []client.File
		for _, f := range s.files {
			files = append(files, client.File{Format: f.format, Name: "out" + suffixOf[f.format], Body: bytes.NewReader(f.body())})
		}
		var arts []event.Artifact
		arts, err = cl.PutArtifacts(ctx, "", s.tenant, s.id, files)
		if err == nil {
			err = cl.PublishScan(ctx, event.ScanCompleted{ScanID: s.id, TenantID: s.tenant,
				Provider:  event.Provider{ID: s.provider, Type: "aws", UID: s.uid},
				StartedAt: s.started, Artifacts: arts})
		}
		cancel()
		if err == nil {
			return nil
		}
	}
	return fmt.Errorf("publishing scan %s: %w", s.id, err)
}

// exportKey identifies a (scan, integration) pair.
type exportKey struct{ scan, integration string }

// exportTally follows the export statuses on the status stream.
type exportTally struct {
	mu        sync.Mutex
	succeeded map[exportKey]int
	failed    map[exportKey]int
	retrying  int
	errors    []string // of the failed statuses
}

// followExports counts the export statuses as they are published, until the
// test ends. It survives the loss of a NATS node: when its ordered consumer
// fails it starts again after the last status seen.
func followExports(t *testing.T, js jetstream.JetStream) *exportTally {
	tl := &exportTally{succeeded: map[exportKey]int{}, failed: map[exportKey]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		var last uint64
		for ctx.Err() == nil {
			cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{"prowler.exports.status.>"}}
			if last > 0 {
				cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, last+1
			}
			cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
			cons, err := js.OrderedConsumer(cctx, "PROWLER_STATUS", cfg)
			ccancel()
			if err != nil {
				sleep(ctx, 200*time.Millisecond)
				continue
			}
			it, err := cons.Messages()
			if err != nil {
				sleep(ctx, 200*time.Millisecond)
				continue
			}
			stop := context.AfterFunc(ctx, it.Stop)
			for {
				msg, err := it.Next()
				if err != nil {
					break
				}
				if md, err := msg.Metadata(); err == nil {
					last = md.Sequence.Stream
				}
				var st event.ExportStatus
				if json.Unmarshal(msg.Data(), &st) != nil {
					continue
				}
				tl.add(st)
			}
			stop()
			it.Stop()
		}
	}()
	return tl
}

func sleep(ctx context.Context, d time.Duration) { clock.Sleep(ctx, d) }

func (tl *exportTally) add(st event.ExportStatus) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	k := exportKey{st.ScanID, st.IntegrationID}
	switch st.State {
	case event.StateSucceeded:
		tl.succeeded[k]++
	case event.StateFailed:
		tl.failed[k]++
		for _, e := range st.Errors {
			tl.errors = append(tl.errors, fmt.Sprintf("%s/%s attempt %d: %s %s: %s", st.ScanID, st.IntegrationID, st.Attempt, e.Code, e.Key, e.Message))
		}
	default:
		tl.retrying++
	}
}

// missing lists the (scan, integration) pairs without a succeeded status.
func (tl *exportTally) missing(scans []loadScan, integrations ...string) []string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	var out []string
	for _, s := range scans {
		for _, ig := range integrations {
			if tl.succeeded[exportKey{s.id, ig}] == 0 {
				out = append(out, s.id+"/"+ig)
			}
		}
	}
	return head(out, 20)
}

// failures describes the errors of the failed statuses.
func (tl *exportTally) failures() []string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return head(slices.Clone(tl.errors), 10)
}

// settled is how many (scan, integration) pairs have a succeeded or failed
// status.
func (tl *exportTally) settled() (succeeded, failed int) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return len(tl.succeeded), len(tl.failed)
}

// waitSettled waits until n pairs have succeeded or one has failed.
func (tl *exportTally) waitSettled(n int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		ok, failed := tl.settled()
		if ok >= n || failed > 0 {
			return ok >= n && failed == 0
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

// statusCount is every export status of the status stream, read from the
// first message to the last.
type statusCount struct {
	states   map[exportKey]map[string]int
	total    int
	retrying int
}

// readExportStatuses reads the whole PROWLER_STATUS stream.
func readExportStatuses(t *testing.T, js jetstream.JetStream) statusCount {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, "PROWLER_STATUS")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := statusCount{states: map[exportKey]map[string]int{}}
	if info.State.LastSeq == 0 {
		return out
	}
	cons, err := js.OrderedConsumer(ctx, "PROWLER_STATUS", jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var seq uint64
	for seq < info.State.LastSeq {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatalf("reading PROWLER_STATUS: %v", err)
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			md, err := msg.Metadata()
			if err != nil {
				t.Fatal(err)
			}
			seq = md.Sequence.Stream
			if !strings.HasPrefix(msg.Subject(), "prowler.exports.status.") {
				continue
			}
			var st event.ExportStatus
			if err := json.Unmarshal(msg.Data(), &st); err != nil {
				t.Fatalf("status %d: %v", seq, err)
			}
			k := exportKey{st.ScanID, st.IntegrationID}
			if out.states[k] == nil {
				out.states[k] = map[string]int{}
			}
			out.states[k][st.State]++
			out.total++
			if st.State == event.StateRetrying {
				out.retrying++
			}
		}
		if n == 0 && ctx.Err() != nil {
			t.Fatalf("read PROWLER_STATUS up to %d of %d", seq, info.State.LastSeq)
		}
	}
	return out
}

// checkSucceeded checks that every scan has at least one succeeded status for
// every integration and none failed, and returns how many succeeded statuses
// came more than once (duplicates).
func (c statusCount) checkSucceeded(t *testing.T, scans []loadScan, integrations ...string) (duplicates int) {
	t.Helper()
	var missing, failed []string
	for _, s := range scans {
		for _, ig := range integrations {
			st := c.states[exportKey{s.id, ig}]
			switch {
			case st[event.StateFailed] > 0:
				failed = append(failed, s.id+"/"+ig)
			case st[event.StateSucceeded] == 0:
				missing = append(missing, s.id+"/"+ig)
			default:
				duplicates += st[event.StateSucceeded] - 1
			}
		}
	}
	if len(failed) > 0 {
		t.Errorf("%d exports failed: %v", len(failed), head(failed, 10))
	}
	if len(missing) > 0 {
		t.Errorf("%d exports have no succeeded status: %v", len(missing), head(missing, 10))
	}
	if want := len(scans) * len(integrations); len(c.states) != want {
		t.Errorf("statuses name %d (scan, integration) pairs, want %d", len(c.states), want)
	}
	return duplicates
}

// duplicated lists the (scan, integration) pairs with more than one
// succeeded status.
func (c statusCount) duplicated() []exportKey {
	var out []exportKey
	for k, st := range c.states {
		if st[event.StateSucceeded] > 1 {
			out = append(out, k)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].scan < out[j].scan })
	return out
}

// explainDuplicates logs what the replicas logged about the first few
// (scan, integration) pairs that succeeded more than once.
func explainDuplicates(t *testing.T, c statusCount, replicas ...*replica) {
	t.Helper()
	for i, k := range c.duplicated() {
		if i == 3 {
			break
		}
		var lines []string
		for _, r := range replicas {
			for _, l := range strings.Split(r.logText(), "\n") {
				if strings.Contains(l, `"`+k.scan+`"`) {
					lines = append(lines, r.name+": "+l)
				}
			}
		}
		t.Logf("%s/%s succeeded %d times:\n%s", k.scan, k.integration, c.states[k][event.StateSucceeded], strings.Join(lines, "\n"))
	}
}

func head(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], fmt.Sprintf("... %d more", len(s)-n))
	}
	return s
}

// checkObjects checks that a bucket holds exactly the wanted keys with their
// sizes (from the listing), and the bytes (sha256, read back) of every
// sample-th object and of every object larger than 1 MiB.
func checkObjects(t *testing.T, s3srv *s3test.S3Server, bucket string, want map[string]wantObject, sample int) {
	t.Helper()
	objs, err := s3srv.ListObjects(bucket, "")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, o := range objs {
		got[o.Key] = o.Size
	}
	var missing, extra, sized []string
	for k, w := range want {
		size, ok := got[k]
		switch {
		case !ok:
			missing = append(missing, k)
		case size != w.size:
			sized = append(sized, fmt.Sprintf("%s: %d bytes, want %d", k, size, w.size))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing)+len(extra)+len(sized) > 0 {
		t.Fatalf("bucket %s: %d objects, want %d; missing %v; unexpected %v; wrong size %v",
			bucket, len(got), len(want), head(missing, 10), head(extra, 10), head(sized, 10))
	}
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	read := 0
	for i, k := range keys {
		if i%sample != 0 && want[k].size <= 1<<20 {
			continue
		}
		sum, _, err := s3srv.ObjectSHA256(bucket, k)
		if err != nil {
			t.Fatal(err)
		}
		if sum != want[k].sha256 {
			t.Errorf("%s/%s: sha256 %s, want %s", bucket, k, sum, want[k].sha256)
		}
		read++
	}
	t.Logf("bucket %s: %d objects listed with the right keys and sizes, %d read back byte-identical", bucket, len(got), read)
}

// consumerIdle waits until the durable scans consumer has nothing pending nor
// unacknowledged.
func consumerIdle(t *testing.T, js jetstream.JetStream, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var info *jetstream.ConsumerInfo
		c, err := js.Consumer(ctx, "PROWLER_SCANS", "s3-exporter")
		if err == nil {
			info, err = c.Info(ctx)
		}
		cancel()
		if err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.NumRedelivered == 0 {
			return
		}
		if time.Now().After(deadline) {
			if err != nil {
				t.Fatalf("scans consumer: %v", err)
			}
			t.Fatalf("scans consumer not idle: %d pending, %d unacknowledged, %d redelivered",
				info.NumPending, info.NumAckPending, info.NumRedelivered)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// dlqCount is how many dead letters there are.
func dlqCount(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, "PROWLER_DLQ")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// consumerState describes the durable scans consumer, for failure messages.
func consumerState(js jetstream.JetStream) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := js.Consumer(ctx, "PROWLER_SCANS", "s3-exporter")
	if err != nil {
		return fmt.Sprintf("scans consumer: %v", err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		return fmt.Sprintf("scans consumer: %v", err)
	}
	leader := ""
	if info.Cluster != nil {
		leader = info.Cluster.Leader
	}
	return fmt.Sprintf("scans consumer: %d pending, %d unacknowledged, %d redelivered, %d waiting pulls, delivered %d, ack floor %d, leader %q",
		info.NumPending, info.NumAckPending, info.NumRedelivered, info.NumWaiting, info.Delivered.Stream, info.AckFloor.Stream, leader)
}
