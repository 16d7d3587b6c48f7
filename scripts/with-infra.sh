#!/usr/bin/env bash
# Runs a command with the local infrastructure up and .local/env exported. Whatever this script
# started it stops again afterwards, even when the command fails; infrastructure that was already
# running (a developer's `make infra-up`) is left running.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"

started=0
if ! bash scripts/infra.sh status >/dev/null 2>&1; then
  started=1
fi
cleanup() {
  local rc=$?
  if (( started )); then
    bash scripts/infra.sh down || true
  fi
  exit "$rc"
}
trap cleanup EXIT
bash scripts/infra.sh up

set -a
# shellcheck source=/dev/null
. "$ROOT/.local/env"
set +a
"$@"
