package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime/pprof"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	tm "github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/prowler-cloud/s3-exporter/event"
	"github.com/prowler-cloud/s3-exporter/exporter"
	"github.com/prowler-cloud/s3-exporter/internal/iox"
)

// The baselines run as children of the harness (this program run again with
// a subcommand), so that their CPU and memory are their own, as the
// exporter's are. Each reads its job as JSON on stdin and writes a
// childResult as JSON on stdout; it times only its work, not its start.

// childResult is what a baseline measured of itself.
type childResult struct {
	Objects    int     `json:"objects"`
	Bytes      int64   `json:"bytes"`
	Seconds    float64 `json:"seconds"`
	CPUSeconds float64 `json:"cpu_seconds"` // user + system during the work
	MaxRSS     int64   `json:"max_rss"`     // peak RSS of the process (bytes)
	// Latencies are the per-scan times of the latency baseline (seconds).
	Latencies []float64 `json:"latencies,omitempty"`
}

// putJob is baseline A (Concurrency 16) and B (Concurrency 1) of workload 1:
// read every artifact from the object store and PUT it.
type putJob struct {
	Server      serverConf `json:"server"`
	Bucket      string     `json:"bucket"`
	Data        dataset    `json:"data"`
	Concurrency int        `json:"concurrency"`
	// CPUProfile, when set, is where the child writes a CPU profile of its work.
	CPUProfile string `json:"cpu_profile,omitempty"`
}

// tmJob is the baseline of workload 2: one transfer-manager upload of an
// object read from the object store.
type tmJob struct {
	Server   serverConf     `json:"server"`
	Bucket   string         `json:"bucket"`
	Artifact event.Artifact `json:"artifact"`
	Data     dataset        `json:"data"`
	// Concurrency is the parts uploaded at once (0: the transfer manager's
	// default, 5); parts are 8 MiB either way.
	Concurrency int `json:"concurrency,omitempty"`
}

// followJob is the baseline of workload 3's catch-up: an ordered consumer
// that reads the last message of every integration and does nothing else.
type followJob struct {
	Server serverConf `json:"server"`
	Stream string     `json:"stream"`
	Filter string     `json:"filter"`
}

func readJob(v any) error {
	return json.NewDecoder(os.Stdin).Decode(v)
}

func writeResult(r childResult) error {
	return json.NewEncoder(os.Stdout).Encode(r)
}

func rusage() (cpu time.Duration, maxRSS int64) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0, 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), ru.Maxrss << 10
}

// plainS3 is an S3 client as a plain aws-sdk-go-v2 program makes it, with the
// same connection pool size as the exporter's (64 idle connections per host).
func plainS3(ctx context.Context, c serverConf) (*s3.Client, error) {
	hc := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) { tr.MaxIdleConnsPerHost = 64 })
	cfg, err := awsconfig.LoadDefaultConfig(ctx,
		awsconfig.WithRegion(c.Region),
		awsconfig.WithHTTPClient(hc),
		awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(c.AccessKey, c.SecretKey, "")))
	if err != nil {
		return nil, err
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(c.Endpoint)
		o.UsePathStyle = true
	}), nil
}

func openStore(ctx context.Context, url string) (*nats.Conn, jetstream.ObjectStore, error) {
	nc, err := nats.Connect(url, nats.Name("bench-baseline"))
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	store, err := js.ObjectStore(ctx, objectStore)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, store, nil
}

// objectName returns the object-store name of an artifact.
func objectName(a event.Artifact) (string, error) {
	src, err := event.ParseSource(a.Source)
	if err != nil {
		return "", err
	}
	return src.Object, nil
}

// runPut is the put subcommand.
func runPut() error {
	var job putJob
	if err := readJob(&job); err != nil {
		return err
	}
	// A deadline: without one the object store bounds a whole read by its
	// default API timeout (5 s), too short for a large object.
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	cl, err := plainS3(ctx, job.Server)
	if err != nil {
		return err
	}
	nc, store, err := openStore(ctx, job.Server.NATSURL)
	if err != nil {
		return err
	}
	defer nc.Close()

	type item struct {
		name, key, ctype string
	}
	var items []item
	for _, sc := range job.Data.Scans {
		for _, a := range sc.Artifacts {
			name, err := objectName(a)
			if err != nil {
				return err
			}
			items = append(items, item{name, exporter.ObjectKey("prowler-findings", a, job.Data.UID, sc.Started), exporter.ContentType(a.Format)})
		}
	}
	work := make(chan item)
	var (
		mu    sync.Mutex
		errs  []error
		bytes int64
		wg    sync.WaitGroup
	)
	if job.CPUProfile != "" {
		f, err := os.Create(job.CPUProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	cpu0, _ := rusage()
	start := time.Now()
	for range max(job.Concurrency, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range work {
				n, err := copyObject(ctx, store, cl, job.Bucket, it.name, it.key, it.ctype)
				mu.Lock()
				bytes += n
				if err != nil {
					errs = append(errs, err)
				}
				mu.Unlock()
			}
		}()
	}
	for _, it := range items {
		work <- it
	}
	close(work)
	wg.Wait()
	elapsed := time.Since(start)
	cpu1, rss := rusage()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return writeResult(childResult{Objects: len(items), Bytes: bytes, Seconds: elapsed.Seconds(), CPUSeconds: (cpu1 - cpu0).Seconds(), MaxRSS: rss})
}

// copyObject reads one object and PUTs it: the whole of what a plain
// program does per file.
func copyObject(ctx context.Context, store jetstream.ObjectStore, cl *s3.Client, bucket, name, key, ctype string) (int64, error) {
	res, err := store.Get(ctx, name)
	if err != nil {
		return 0, fmt.Errorf("get %s: %w", name, err)
	}
	body, err := io.ReadAll(res)
	res.Close()
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", name, err)
	}
	_, err = cl.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key),
		Body: bytes.NewReader(body), ContentType: aws.String(ctype)})
	if err != nil {
		return 0, fmt.Errorf("put %s: %w", key, err)
	}
	return int64(len(body)), nil
}

// runTM is the tm subcommand.
func runTM() error {
	var job tmJob
	if err := readJob(&job); err != nil {
		return err
	}
	// A deadline: without one the object store bounds a whole read by its
	// default API timeout (5 s), too short for a large object.
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	cl, err := plainS3(ctx, job.Server)
	if err != nil {
		return err
	}
	nc, store, err := openStore(ctx, job.Server.NATSURL)
	if err != nil {
		return err
	}
	defer nc.Close()
	name, err := objectName(job.Artifact)
	if err != nil {
		return err
	}
	key := exporter.ObjectKey("prowler-findings", job.Artifact, job.Data.UID, job.Data.Scans[0].Started)
	cpu0, _ := rusage()
	start := time.Now()
	res, err := store.Get(ctx, name)
	if err != nil {
		return err
	}
	defer res.Close()
	body := iox.NewCountingReader(res)
	// The transfer manager's defaults (8 MiB parts, 5 at once, multipart
	// from 16 MiB), or fewer parts at once.
	_, err = tm.New(cl, func(o *tm.Options) {
		if job.Concurrency > 0 {
			o.Concurrency = job.Concurrency
		}
	}).UploadObject(ctx, &tm.UploadObjectInput{Bucket: aws.String(job.Bucket), Key: aws.String(key),
		Body: body, ContentLength: job.Artifact.Size, ContentType: aws.String(exporter.ContentType(job.Artifact.Format))})
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	cpu1, rss := rusage()
	return writeResult(childResult{Objects: 1, Bytes: body.N, Seconds: elapsed.Seconds(), CPUSeconds: (cpu1 - cpu0).Seconds(), MaxRSS: rss})
}

// runFollow is the follow subcommand: what reading the integrations stream
// costs, without parsing or caching anything.
func runFollow() error {
	var job followJob
	if err := readJob(&job); err != nil {
		return err
	}
	// A deadline: without one the object store bounds a whole read by its
	// default API timeout (5 s), too short for a large object.
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	nc, err := nats.Connect(job.Server.NATSURL, nats.Name("bench-follow"))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	cpu0, _ := rusage()
	start := time.Now()
	st, err := js.Stream(ctx, job.Stream)
	if err != nil {
		return err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return err
	}
	target := info.State.LastSeq
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{job.Filter}, DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy,
	})
	if err != nil {
		return err
	}
	var (
		n    int
		size int64
	)
	done := make(chan struct{})
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		n++
		size += int64(len(msg.Data()))
		if md, err := msg.Metadata(); err == nil && md.Sequence.Stream >= target {
			close(done)
		}
	})
	if err != nil {
		return err
	}
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		return errors.New("follow: not caught up after 5 minutes")
	}
	elapsed := time.Since(start)
	cc.Stop()
	cpu1, rss := rusage()
	return writeResult(childResult{Objects: n, Bytes: size, Seconds: elapsed.Seconds(), CPUSeconds: (cpu1 - cpu0).Seconds(), MaxRSS: rss})
}
