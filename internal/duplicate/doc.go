// Package duplicate holds Doppel's domain: what an "H5 IDV completed" event is, how a face-search
// answer becomes duplicate-account links (PlanLinks, the alert rule), how links form fraud rings
// (MergeRings, the ring rule), and what an alert says.
//
// It imports no Kafka, HTTP or SQL package. The vendor client, PostgreSQL and Kafka are adapters
// that plug in through the small interfaces declared here (Vendor, Store), so the rules can be tested
// with hand-written fakes and the adapters tested against the real servers.
package duplicate
