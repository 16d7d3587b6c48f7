#!/usr/bin/env bash
# Builds bin/doppel, bin/advance-sim and bin/<harness>, brings PostgreSQL and Kafka up through
# scripts/with-infra.sh (which stops again whatever it started), and runs bin/<harness> with the
# remaining arguments: what scripts/bench.sh and scripts/soak.sh share.
#
# Usage: bash scripts/run-harness.sh doppel-bench|doppel-soak [arguments...]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"
GO="${GO:-go}"
harness="${1:?usage: run-harness.sh doppel-bench|doppel-soak [arguments...]}"
shift

"$GO" build -o bin/doppel ./cmd/doppel
"$GO" build -o bin/advance-sim ./cmd/advance-sim
"$GO" build -o "bin/$harness" "./cmd/$harness"

bash scripts/with-infra.sh "bin/$harness" "$@"
