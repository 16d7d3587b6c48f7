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
# The command runs in the background so that a SIGTERM or SIGINT to this script is passed on to
# it: bash runs no trap while a foreground child runs, so `kill <make dev>` used to leave the
# command and everything it started running. The command stops what it started; then the EXIT
# trap stops the infrastructure this script started.
child=0
forward() {
  if (( child )); then kill -s "$1" "$child" 2>/dev/null || true; fi
}
trap 'forward TERM' TERM
trap 'forward INT' INT
trap 'forward HUP' HUP
"$@" &
child=$!
status=0
# wait returns early when a trapped signal arrives: wait again until the child is gone.
while true; do
  wait "$child" && status=0 || status=$?
  kill -0 "$child" 2>/dev/null || break
done
exit "$status"
