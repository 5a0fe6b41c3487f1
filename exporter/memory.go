package exporter

import "math"

// ReadWindow is the most bytes of a nats-os:// object fetched ahead of the
// reader (source.chunkWindow), counted in each upload's memory.
const ReadWindow = 16 << 20

// DefaultUploadMemory is the byte budget of uploads when neither
// S3EXPORTER_UPLOAD_MEMORY nor GOMEMLIMIT sets one.
const DefaultUploadMemory = 256 << 20

// UploadMemory returns the byte budget of the uploads running at once:
// setting when positive; else half of memLimit (GOMEMLIMIT, as
// runtime/debug.SetMemoryLimit(-1) reports it: math.MaxInt64 when unset),
// leaving the other half to the Go runtime, the NATS client and the caches;
// else DefaultUploadMemory.
func UploadMemory(setting, memLimit int64) int64 {
	switch {
	case setting > 0:
		return setting
	case memLimit > 0 && memLimit < math.MaxInt64:
		return memLimit / 2
	}
	return DefaultUploadMemory
}

// uploadBytes is the most memory one upload of an artifact holds, by its
// size as the event tells it (-1: not told):
//
//   - below the multipart threshold: the PutObject buffer of its size, and
//     as much again fetched ahead by the source reader;
//   - known and multipart: the transfer manager's parts in flight plus the
//     one it fills (PartConcurrency+1 parts; it reads one part before its
//     first request, see upload) and the read window;
//   - unknown: as multipart, plus the threshold the transfer manager reads
//     first to decide.
//
// docs/operations.md "Memory" states the bound this gives; TestMemoryBound
// pins it.
func (o Options) uploadBytes(size int64) int64 {
	parts := int64(o.PartConcurrency+1) * o.PartSize
	switch {
	case size >= 0 && size < o.MultipartThreshold:
		return 2 * size
	case size >= 0:
		return parts + ReadWindow
	}
	return o.MultipartThreshold + parts + ReadWindow
}

// MemoryBound is the most memory the uploads of a replica hold at once: the
// budget, or one upload of unknown size when that is larger (an upload larger
// than the whole budget runs alone).
func (o Options) MemoryBound() int64 {
	return max(o.UploadMemory, o.uploadBytes(-1))
}
