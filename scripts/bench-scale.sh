#!/usr/bin/env bash
# Runs the scale scenario (`make bench-scale SIZE=...`, issue 23): builds bin/doppel,
# bin/advance-sim and bin/doppel-scale, brings PostgreSQL and Kafka up through
# scripts/with-infra.sh (which stops again whatever it started), and runs bin/doppel-scale, which
# fills the doppel_scale database, starts `doppel serve` on it, times every read route and console
# page, drains a backlog on a fresh database and on the filled one (the hot path), and writes the
# scale block of docs/performance.md.
#
# Arguments are passed to doppel-scale, e.g. `bash scripts/bench-scale.sh -size 2000000`;
# `bin/doppel-scale -h` lists them. Issue 23's target size is 10,000,000 checks.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"
GO="${GO:-go}"

"$GO" build -o bin/doppel ./cmd/doppel
"$GO" build -o bin/advance-sim ./cmd/advance-sim
"$GO" build -o bin/doppel-scale ./cmd/doppel-scale

bash scripts/with-infra.sh bin/doppel-scale "$@"
