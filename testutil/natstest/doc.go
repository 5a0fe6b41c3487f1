// Package natstest runs real, embedded nats-server instances for tests, the
// dev stack and the benchmarks. Run* return an error; Start* take a
// testing.TB, fail the test on error and register cleanup.
//
// RunNATS / StartNATS run an embedded nats-server with JetStream on a random
// port of 127.0.0.1. NATSOptions.Port and StoreDir pin a server to a previous
// one's port and store, so a test can restart it and keep its streams.
// RunNATSCluster / StartNATSCluster run n (use 3) clustered servers and return
// once the JetStream meta leader has stats from every peer, so an R3 stream
// can be created at once; ClusterURLs joins their client URLs.
package natstest
