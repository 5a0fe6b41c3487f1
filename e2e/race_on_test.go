//go:build race

package e2e

// raceDetector is true in a -race build: a few tests moving tens of MiB
// through the object store then run too slowly for NATS's publish acks.
const raceDetector = true
