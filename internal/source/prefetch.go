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
}

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
// scan has one artifact there, the answer lacked it).
func (o *Opener) hint(ctx context.Context, st objectStore, scan *event.ScanCompleted, bucket, name string) *jetstream.ObjectInfo {
	if st.stream == nil || !st.stream.CachedInfo().Config.AllowDirect || len(scan.Artifacts) < 2 {
		return nil
	}
	k := metaKey{scan.TenantID, scan.ScanID, bucket}
	now := time.Now()
	o.metaMu.Lock()
	m := o.metas[k]
	if m == nil || now.Sub(m.at) > metasTTL {
		if o.metas == nil || len(o.metas) >= maxScanMetas {
			o.metas = o.freshMetas(now)
		}
		m = &scanMetas{at: now}
		o.metas[k] = m
	}
	o.metaMu.Unlock()
	m.once.Do(func() {
		names := scanObjects(scan, bucket)
		if len(names) >= 2 && len(names) <= maxPrefetch {
			m.infos = fetchInfos(ctx, o.js, st.stream.CachedInfo().Config.Name, bucket, names)
		}
	})
	return m.infos[name]
}

// freshMetas returns the kept infos less those older than metasTTL; none if
// that leaves the cache full. It holds o.metaMu.
func (o *Opener) freshMetas(now time.Time) map[metaKey]*scanMetas {
	out := map[metaKey]*scanMetas{}
	for k, m := range o.metas {
		if now.Sub(m.at) <= metasTTL {
			out[k] = m
		}
	}
	if len(out) >= maxScanMetas {
		return map[metaKey]*scanMetas{}
	}
	return out
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
	req, err := json.Marshal(multiLastRequest{MultiLast: subjects, Batch: len(subjects)})
	if err != nil {
		return nil
	}
	nc := js.Conn()
	inbox := nc.NewInbox()
	// Room for the answer (an info per subject and the end-of-batch status):
	// anything more is dropped, not waited for.
	answers := make(chan *nats.Msg, len(subjects)+1)
	sub, err := nc.ChanSubscribe(inbox, answers)
	if err != nil {
		return nil
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.PublishRequest(apiPrefix(js)+"DIRECT.GET."+stream, inbox, req); err != nil {
		return nil
	}
	infos := make(map[string]*jetstream.ObjectInfo, len(names))
	for range len(subjects) + 1 {
		var m *nats.Msg
		select {
		case m = <-answers:
		case <-ctx.Done():
			return infos
		}
		if m.Header.Get("Status") != "" { // the end of the batch, or none
			return infos
		}
		name, ok := bySubject[m.Header.Get(jetstream.SubjectHeader)]
		if !ok {
			continue
		}
		var info jetstream.ObjectInfo
		if json.Unmarshal(m.Data, &info) != nil || info.Deleted || info.Name != name || info.Bucket != bucket {
			continue
		}
		infos[name] = &info
	}
	return infos
}
