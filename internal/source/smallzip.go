package source

import "sync"

// smallArchives keeps the bytes of the small s3 archives read whole while
// their member list was read (the first GET, of the last archiveTail bytes,
// returns all of an archive that size or smaller: most Prowler output
// zips). Their members are then read from memory rather than by one ranged
// GET each: a scan's 43 files cost one GET instead of 44. An entry is keyed
// by the archive and its ETag, so a replaced archive is never read from an
// older copy; the cache holds at most maxSmallArchives entries (16 MiB),
// the oldest dropped first, and a miss just reads the member from S3.
type smallArchives struct {
	mu    sync.Mutex
	byKey map[string][]byte
	order []string // oldest first
}

const maxSmallArchives = 64

func smallKey(src, etag string) string { return src + "\x00" + etag }

func (c *smallArchives) put(src, etag string, b []byte) {
	if etag == "" {
		return
	}
	k := smallKey(src, etag)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byKey == nil {
		c.byKey = map[string][]byte{}
	}
	if _, ok := c.byKey[k]; ok {
		return
	}
	if len(c.order) >= maxSmallArchives {
		delete(c.byKey, c.order[0])
		c.order = c.order[1:]
	}
	c.byKey[k] = b
	c.order = append(c.order, k)
}

func (c *smallArchives) get(src, etag string) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byKey[smallKey(src, etag)]
}
