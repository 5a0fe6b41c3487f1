package source

// Prefetched is the bytes of small objects fetched with their scan's infos
// and not yet opened (tests).
func (o *Opener) Prefetched() int64 { return o.prefetched.Load() }
