//go:build race

package exporter

// raceDetector is true in a -race build, where sync.Pool drops what it is
// given at random: tests that count allocations then measure the detector.
const raceDetector = true
