#!/usr/bin/env bash
# Runs the benchmark (`make bench`): builds bin/doppel, bin/advance-sim and bin/doppel-bench,
# brings PostgreSQL and Kafka up through scripts/with-infra.sh (which stops again whatever it
# started), and runs bin/doppel-bench, which starts advance-sim and `doppel serve` itself.
#
# Arguments are passed to doppel-bench, e.g. `bash scripts/bench.sh -events 20000 -only a,e`;
# `bin/doppel-bench -h` lists them. Results: the table on stdout, bench-results/bench.json,
# bench-results/events_per_second.png and docs/benchmarks.md.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"
GO="${GO:-go}"

"$GO" build -o bin/doppel ./cmd/doppel
"$GO" build -o bin/advance-sim ./cmd/advance-sim
"$GO" build -o bin/doppel-bench ./cmd/doppel-bench

bash scripts/with-infra.sh bin/doppel-bench "$@"
