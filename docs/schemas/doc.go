// Package schemas holds the JSON Schemas (draft 2020-12) of every payload of
// the exporter's wire contract (v1.1), one file per payload, with valid and
// invalid example payloads under examples/. See README.md for the subject each
// schema goes with.
//
// The package has no code of its own: its tests compile every schema, check
// every example against its schema, and check the schemas against the Go wire
// types (package event) and the exporter's decoders, so that the published
// schemas and the code cannot drift apart.
package schemas
