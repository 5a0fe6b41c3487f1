package integration

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prowler-cloud/s3-exporter/event"
)

// Cache holds the current integrations, indexed by tenant and provider so that
// selecting the integrations of a scan does not scan the whole cache. It also
// remembers the integrations stream sequence it has applied, so the scan path
// can wait for the cache to catch up (read-your-writes, contract §3), and the
// last connection status of each integration.
//
// Cache is safe for concurrent use.
type Cache struct {
	mu    sync.RWMutex
	byKey map[string]*Integration                       // "<tenant>/<id>"
	byTP  map[string]map[string]map[string]*Integration // tenant -> provider -> id
	// sel holds, per tenant and provider, what Select returns: the enabled
	// integrations sorted by id, rebuilt when one of them changes, so that
	// the per-scan lookup neither filters, sorts nor touches the
	// integrations themselves (docs/BENCHMARKS.md, workload 3).
	sel     map[string]map[string][]*Integration
	status  map[string]event.ConnectionStatus // "<tenant>/<id>"
	applied uint64
	changed chan struct{} // closed and replaced whenever applied moves
}

// NewCache returns an empty cache.
func NewCache() *Cache {
	return &Cache{
		byKey:   map[string]*Integration{},
		byTP:    map[string]map[string]map[string]*Integration{},
		sel:     map[string]map[string][]*Integration{},
		status:  map[string]event.ConnectionStatus{},
		changed: make(chan struct{}),
	}
}

func key(tenant, id string) string { return tenant + "/" + id }

// Put stores (or replaces) an integration.
func (c *Cache) Put(ig *Integration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removeLocked(ig.TenantID, ig.ID)
	k := ig.Key()
	c.byKey[k] = ig
	tp := c.byTP[ig.TenantID]
	if tp == nil {
		tp = map[string]map[string]*Integration{}
		c.byTP[ig.TenantID] = tp
	}
	for _, p := range ig.Providers {
		ids := tp[p]
		if ids == nil {
			ids = map[string]*Integration{}
			tp[p] = ids
		}
		ids[ig.ID] = ig
		c.reselectLocked(ig.TenantID, p)
	}
}

// reselectLocked rebuilds the selection of a tenant and provider.
func (c *Cache) reselectLocked(tenant, provider string) {
	ids := c.byTP[tenant][provider]
	out := make([]*Integration, 0, len(ids))
	for _, ig := range ids {
		if ig.Enabled {
			out = append(out, ig)
		}
	}
	sortByID(out)
	ts := c.sel[tenant]
	if len(out) == 0 {
		delete(ts, provider)
		if len(ts) == 0 {
			delete(c.sel, tenant)
		}
		return
	}
	if ts == nil {
		ts = map[string][]*Integration{}
		c.sel[tenant] = ts
	}
	ts[provider] = out
}

// Delete drops an integration and its connection status; it reports whether
// there was one.
func (c *Cache) Delete(tenant, id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.status, key(tenant, id))
	return c.removeLocked(tenant, id)
}

func (c *Cache) removeLocked(tenant, id string) bool {
	k := key(tenant, id)
	old, ok := c.byKey[k]
	if !ok {
		return false
	}
	delete(c.byKey, k)
	tp := c.byTP[tenant]
	for _, p := range old.Providers {
		delete(tp[p], id)
		if len(tp[p]) == 0 {
			delete(tp, p)
		}
		c.reselectLocked(tenant, p)
	}
	if len(tp) == 0 {
		delete(c.byTP, tenant)
	}
	return true
}

// Get returns one integration, enabled or not.
func (c *Cache) Get(tenant, id string) (*Integration, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	ig, ok := c.byKey[key(tenant, id)]
	return ig, ok
}

// Select returns the enabled integrations of tenant that export scans of
// provider, in a stable order (by id). The slice is the caller's.
func (c *Cache) Select(tenant, provider string) []*Integration {
	c.mu.RLock()
	src := c.sel[tenant][provider]
	out := make([]*Integration, len(src))
	copy(out, src)
	c.mu.RUnlock()
	return out
}

// List returns every integration of tenant, enabled or not, sorted by id.
// It walks the whole cache: it serves an admin's list request, not the scan
// path.
func (c *Cache) List(tenant string) []*Integration {
	c.mu.RLock()
	var out []*Integration
	for _, ig := range c.byKey {
		if ig.TenantID == tenant {
			out = append(out, ig)
		}
	}
	c.mu.RUnlock()
	sortByID(out)
	return out
}

func sortByID(igs []*Integration) {
	slices.SortFunc(igs, func(a, b *Integration) int { return strings.Compare(a.ID, b.ID) })
}

// Len returns the number of cached integrations.
func (c *Cache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.byKey)
}

// Counts returns how many integrations are enabled and disabled, split by
// their last connection state ("true", "false" or "unknown").
func (c *Cache) Counts() map[[2]string]int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := map[[2]string]int{}
	for k, ig := range c.byKey {
		enabled := "false"
		if ig.Enabled {
			enabled = "true"
		}
		conn := "unknown"
		if st, ok := c.status[k]; ok {
			conn = "false"
			if st.Connected {
				conn = "true"
			}
		}
		out[[2]string{enabled, conn}]++
	}
	return out
}

// SetStatus records the last connection status of a cached integration.
func (c *Cache) SetStatus(st event.ConnectionStatus) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.byKey[key(st.TenantID, st.IntegrationID)]; ok {
		c.status[key(st.TenantID, st.IntegrationID)] = st
	}
}

// Status returns the last connection status of an integration.
func (c *Cache) Status(tenant, id string) (event.ConnectionStatus, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	st, ok := c.status[key(tenant, id)]
	return st, ok
}

// MarkApplied records that every integrations-stream message up to seq has
// been applied.
func (c *Cache) MarkApplied(seq uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if seq <= c.applied {
		return
	}
	c.applied = seq
	close(c.changed)
	c.changed = make(chan struct{})
}

// Applied returns the last applied integrations-stream sequence.
func (c *Cache) Applied() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.applied
}

// WaitApplied blocks until the cache has applied seq, the context ends, or
// timeout passes; it reports whether seq was reached.
func (c *Cache) WaitApplied(ctx context.Context, seq uint64, timeout time.Duration) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		c.mu.RLock()
		applied, ch := c.applied, c.changed
		c.mu.RUnlock()
		if applied >= seq {
			return true
		}
		select {
		case <-ch:
		case <-t.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}
