#!/usr/bin/env bash
# Runs the benchmark (`make bench`): builds bin/doppel, bin/advance-sim and bin/doppel-bench,
# brings PostgreSQL and Kafka up through scripts/with-infra.sh (which stops again whatever it
# started), and runs bin/doppel-bench, which starts advance-sim and `doppel serve` itself.
#
# Arguments are passed to doppel-bench, e.g. `bash scripts/bench.sh -events 20000 -only a,e`;
# `bin/doppel-bench -h` lists them. Results: the table on stdout, bench-results/bench.json,
# bench-results/events_per_second.png and docs/benchmarks.md.
exec bash "$(dirname "${BASH_SOURCE[0]}")/run-harness.sh" doppel-bench "$@"
