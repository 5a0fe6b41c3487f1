package source

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/prowler-cloud/s3-exporter/event"
)

// Reading an object-store object takes its info first (its chunks' subject,
// size, digest): one direct get, as many as the scan has artifacts. The
// infos of a scan's artifacts in one store are fetched together instead, on
// the first open of one of them, with one direct get of the last message of
// each of their info subjects (multi_last), and kept a while: each open then
// asks for its chunks only (docs/BENCHMARKS.md, workload 1: one request per
// object where there were two, for the exporter and for nats-server).
//
// They are hints: an object replaced since has other chunks, which
// openChunks does not find whole (errStaleHint), and the object is opened
// again with its info read afresh. An info the answer lacks (a replica that
// lags, a deleted object, a link) is read on its own as before.

// errStaleHint says that a prefetched info named chunks that are not there.
var errStaleHint = errors.New("the prefetched object info is stale")

// metaKey names the artifacts of one scan in one object store.
type metaKey struct{ tenant, scan, bucket string }

// scanMetas are the infos of one scan's artifacts in one store, by object
// name; fetched once.
type scanMetas struct {
	once  sync.Once
	infos map[string]*jetstream.ObjectInfo
	at    time.Time

	// small holds the bytes of the scan's small objects of one chunk,
	// fetched right after the infos (fetchSmall), by object name; each is
	// handed out once (takeSmall), the rest dropped after smallTTL.
	mu    sync.Mutex
	small map[string][]byte
}

// The bytes of a scan's small objects come together too: most of a scan's
// artifacts are compliance CSVs of tens of kilobytes, one chunk each, and a
// direct get per object cost a request each to the exporter and to
// nats-server (docs/BENCHMARKS.md, workload 1). They are fetched once the
// infos are known, with one more multi_last direct get of their chunks'
// subjects, and kept until their object is opened. The memory is bounded
// apart from the upload budget: objects of at most smallObject, at most
// smallPerScan per scan, at most maxPrefetched for all scans (past it, the
// objects of the next scans are fetched one by one, as before), and what is
// not opened within smallTTL (an integration that failed first, a scan
// exported to a second integration after the first took them) is dropped.
const (
	smallObject   = 64 << 10
	smallPerScan  = 1 << 20
	maxPrefetched = 8 << 20
	smallTTL      = 30 * time.Second
)

const (
	// maxScanMetas bounds the scans whose infos are kept (a scan's take a
	// few hundred bytes per artifact); metasTTL how long they are kept.
	maxScanMetas = 256
	metasTTL     = 10 * time.Minute
	// maxPrefetch is the most artifacts whose infos are fetched together
	// (nats-server answers a multi_last request with at most 1024).
	maxPrefetch = 512
)

// hint returns the prefetched info of object name of scan, in the store st,
// fetching the infos of the scan's artifacts in that store on the first
// call; nil when there is none (the store does not allow direct gets, the
// scan has one artifact there, the answer lacked it). data is the object's
// bytes when they came with it (fetchSmall), handed out once.
func (o *Opener) hint(ctx context.Context, st objectStore, scan *event.ScanCompleted, bucket, name string) (info *jetstream.ObjectInfo, data []byte) {
	if st.stream == nil || !st.stream.CachedInfo().Config.AllowDirect || len(scan.Artifacts) < 2 {
		return nil, nil
	}
	k := metaKey{scan.TenantID, scan.ScanID, bucket}
	now := time.Now()
	o.metaMu.Lock()
	m := o.metas[k]
	if m == nil || now.Sub(m.at) > metasTTL {
		if o.metas == nil || len(o.metas) >= maxScanMetas {
			o.metas = o.freshMetas(now)
		}
		if m != nil {
			o.dropSmall(m)
		}
		m = &scanMetas{at: now}
		o.metas[k] = m
	}
	o.metaMu.Unlock()
	m.once.Do(func() {
		names := scanObjects(scan, bucket)
		if len(names) >= 2 && len(names) <= maxPrefetch {
			stream := st.stream.CachedInfo().Config.Name
			m.infos = fetchInfos(ctx, o.js, stream, bucket, names)
			small := o.fetchSmall(ctx, stream, bucket, m.infos, now)
			m.mu.Lock()
			m.small = small
			m.mu.Unlock()
		}
	})
	return m.infos[name], o.takeSmall(m, name)
}

// freshMetas returns the kept infos less those older than metasTTL; none if
// that leaves the cache full. It holds o.metaMu.
func (o *Opener) freshMetas(now time.Time) map[metaKey]*scanMetas {
	out := map[metaKey]*scanMetas{}
	for k, m := range o.metas {
		if now.Sub(m.at) <= metasTTL {
			out[k] = m
		} else {
			o.dropSmall(m)
		}
	}
	if len(out) >= maxScanMetas {
		for _, m := range out {
			o.dropSmall(m)
		}
		return map[metaKey]*scanMetas{}
	}
	return out
}

// fetchSmall fetches the bytes of the small one-chunk objects among infos
// with one direct get, within the bounds above; nil when it fetches none.
// It first drops what earlier scans left unopened for smallTTL.
func (o *Opener) fetchSmall(ctx context.Context, stream, bucket string, infos map[string]*jetstream.ObjectInfo, now time.Time) map[string][]byte {
	o.metaMu.Lock()
	for _, m := range o.metas {
		if now.Sub(m.at) > smallTTL {
			o.dropSmall(m)
		}
	}
	o.metaMu.Unlock()
	bySubject := map[string]string{}
	var (
		subjects []string
		want     int64
	)
	for name, info := range infos {
		size := int64(info.Size)
		if info.Chunks != 1 || size == 0 || size > smallObject || want+size > smallPerScan || info.Opts != nil && info.Opts.Link != nil {
			continue
		}
		want += size
		subject := "$O." + bucket + ".C." + info.NUID
		bySubject[subject] = name
		subjects = append(subjects, subject)
	}
	if len(subjects) < 2 {
		return nil
	}
	if o.prefetched.Add(want) > maxPrefetched {
		o.prefetched.Add(-want)
		return nil
	}
	small := make(map[string][]byte, len(subjects))
	var got int64
	multiLast(ctx, o.js, stream, subjects, func(subject string, data []byte) {
		// A chunk of another size is not the one the info names: its
		// object is read on its own.
		if name, ok := bySubject[subject]; ok && small[name] == nil && uint64(len(data)) == infos[name].Size {
			small[name] = data
			got += int64(len(data))
		}
	})
	o.prefetched.Add(got - want)
	return small
}

// takeSmall hands out the prefetched bytes of object name, once.
func (o *Opener) takeSmall(m *scanMetas, name string) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.small[name]
	if ok {
		delete(m.small, name)
		o.prefetched.Add(-int64(len(b)))
	}
	return b
}

// dropSmall drops the prefetched bytes m still holds.
func (o *Opener) dropSmall(m *scanMetas) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, b := range m.small {
		o.prefetched.Add(-int64(len(b)))
	}
	m.small = nil
}

// scanObjects returns the names of the object-store artifacts of scan in
// bucket that may be opened (Resolve), each once.
func scanObjects(scan *event.ScanCompleted, bucket string) []string {
	seen := map[string]bool{}
	var names []string
	for _, a := range scan.Artifacts {
		tg, err := Resolve(a.Source, scan.TenantID, scan.ScanID, nil)
		if err != nil || tg.Source.Scheme != event.SchemeObjectStore || tg.Source.Bucket != bucket || seen[tg.Source.Object] {
			continue
		}
		seen[tg.Source.Object] = true
		names = append(names, tg.Source.Object)
	}
	return names
}

// multiLastRequest is a direct get of the last message of each subject.
type multiLastRequest struct {
	MultiLast []string `json:"multi_last"`
	Batch     int      `json:"batch"`
}

// fetchInfos fetches the infos of the named objects of bucket with one
// direct get from stream (the store's stream). It returns what it got,
// maybe nothing: every info missing is read on its own later.
func fetchInfos(ctx context.Context, js jetstream.JetStream, stream, bucket string, names []string) map[string]*jetstream.ObjectInfo {
	bySubject := make(map[string]string, len(names))
	subjects := make([]string, len(names))
	for i, n := range names {
		subjects[i] = "$O." + bucket + ".M." + base64.URLEncoding.EncodeToString([]byte(n))
		bySubject[subjects[i]] = n
	}
	infos := make(map[string]*jetstream.ObjectInfo, len(names))
	multiLast(ctx, js, stream, subjects, func(subject string, data []byte) {
		name, ok := bySubject[subject]
		if !ok {
			return
		}
		var info jetstream.ObjectInfo
		if json.Unmarshal(data, &info) != nil || info.Deleted || info.Name != name || info.Bucket != bucket {
			return
		}
		infos[name] = &info
	})
	return infos
}

// multiLast asks stream (which must allow direct gets) for the last message
// of each subject with one direct get and hands each message of the answer
// to got, until the end of the batch, ctx's end or a failure: the caller
// reads on its own what is missing.
func multiLast(ctx context.Context, js jetstream.JetStream, stream string, subjects []string, got func(subject string, data []byte)) {
	req, err := json.Marshal(multiLastRequest{MultiLast: subjects, Batch: len(subjects)})
	if err != nil {
		return
	}
	nc := js.Conn()
	inbox := nc.NewInbox()
	// Room for the answer (a message per subject and the end-of-batch
	// status): anything more is dropped, not waited for.
	answers := make(chan *nats.Msg, len(subjects)+1)
	sub, err := nc.ChanSubscribe(inbox, answers)
	if err != nil {
		return
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.PublishRequest(apiPrefix(js)+"DIRECT.GET."+stream, inbox, req); err != nil {
		return
	}
	for range len(subjects) + 1 {
		var m *nats.Msg
		select {
		case m = <-answers:
		case <-ctx.Done():
			return
		}
		if m.Header.Get("Status") != "" { // the end of the batch, or none
			return
		}
		got(m.Header.Get(jetstream.SubjectHeader), m.Data)
	}
}
