// Package faulttest holds the fault tests that stop, kill and restart the real PostgreSQL, the real
// Kafka broker and the doppel process itself. They share the one local broker and database with
// nothing else, so they build only with the `faults` tag and `make test` runs them on their own,
// one at a time, after the other packages.
package faulttest
