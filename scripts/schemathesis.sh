#!/usr/bin/env bash
# Runs schemathesis against the OpenAPI description (/openapi.json) of a real `doppel serve`:
# builds bin/doppel and bin/advance-sim, starts both against the running PostgreSQL and Kafka
# (scripts/infra.sh up, or `make test`, which wraps this in scripts/with-infra.sh) with a throwaway
# schema, topics and API keys, seeds a ring through the callback endpoint, then lets schemathesis
# generate requests for every operation, authenticated, for at most SCHEMATHESIS_MAX_TIME seconds.
# Exits non-zero when schemathesis finds a failure. Everything it started is stopped on exit.
#
#   SCHEMATHESIS_MAX_TIME   time budget of the run in seconds (default 90)
#   SCHEMATHESIS_VERSION    the schemathesis release installed into .local/schemathesis-venv (4.32.5)
#   SCHEMATHESIS_ARGS       extra arguments for `st run`, e.g. "--seed 1 --max-examples 50"
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"

MAX_TIME="${SCHEMATHESIS_MAX_TIME:-90}"
VERSION="${SCHEMATHESIS_VERSION:-4.32.5}"
VENV="$ROOT/.local/schemathesis-venv"
WORK="$ROOT/.local/schemathesis"
PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
mkdir -p "$WORK"

log() { printf 'schemathesis.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# Infrastructure addresses: the environment, else .local/env.
if [[ -z "${DOPPEL_DATABASE_URL:-}" || -z "${DOPPEL_KAFKA_BROKERS:-}" ]]; then
  [[ -f "$ROOT/.local/env" ]] || die "PostgreSQL and Kafka are not running: start them with 'bash scripts/infra.sh up' (or run 'make test')"
  set -a
  # shellcheck source=/dev/null
  . "$ROOT/.local/env"
  set +a
fi
PSQL="psql"
command -v psql >/dev/null 2>&1 || PSQL="$PG_BIN/psql"

# 1. schemathesis, pinned, in a venv of its own.
if ! "$VENV/bin/st" --version 2>/dev/null | grep -q "version $VERSION\$"; then
  log "installing schemathesis $VERSION into ${VENV#"$ROOT"/}"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$VERSION"
fi

# 2. The binaries.
log "building bin/doppel and bin/advance-sim"
go build -o bin/doppel ./cmd/doppel
go build -o bin/advance-sim ./cmd/advance-sim

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
rand_hex() { python3 -c "import secrets; print(secrets.token_hex($1))"; }

RUN="st_$(rand_hex 5)"
SCHEMA="$RUN"
API_KEY="$(rand_hex 32)"
API_KEY_SHA256="$(printf %s "$API_KEY" | sha256sum | cut -d' ' -f1)"
CALLBACK_TOKEN="$(rand_hex 24)"
SIM_PORT="$(free_port)"
API_PORT="$(free_port)"
ADMIN_PORT="$(free_port)"
DB_URL="$(python3 - "$DOPPEL_DATABASE_URL" "$SCHEMA" <<'PY'
import sys, urllib.parse as u
p = u.urlsplit(sys.argv[1]); q = dict(u.parse_qsl(p.query)); q["search_path"] = sys.argv[2]
print(u.urlunsplit(p._replace(query=u.urlencode(q))))
PY
)"

SIM_PID="" DOPPEL_PID=""
cleanup() {
  local rc=$?
  set +e
  [[ -n "$DOPPEL_PID" ]] && kill "$DOPPEL_PID" 2>/dev/null && wait "$DOPPEL_PID" 2>/dev/null
  [[ -n "$SIM_PID" ]] && kill "$SIM_PID" 2>/dev/null && wait "$SIM_PID" 2>/dev/null
  "$PSQL" "$DOPPEL_DATABASE_URL" -qtA -c "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" >/dev/null 2>&1 || true
  exit "$rc"
}
trap cleanup EXIT INT TERM

"$PSQL" "$DOPPEL_DATABASE_URL" -v ON_ERROR_STOP=1 -qtA -c "CREATE SCHEMA $SCHEMA" >/dev/null

# 3. The simulator, seeded with a ring of three sharing a face, and doppel serve.
cat > "$WORK/sessions.json" <<JSON
[{"userId": "st-alice", "face": "F1", "overallResult": "PASS", "signatureId": "${RUN}-a"},
 {"userId": "st-bob", "face": "F1", "overallResult": "PASS", "signatureId": "${RUN}-b"},
 {"userId": "st-carol", "face": "F1", "overallResult": "PASS", "signatureId": "${RUN}-c"}]
JSON
ADVANCE_SIM_ADDR="127.0.0.1:$SIM_PORT" ADVANCE_SIM_ACCESS_KEY=st-access ADVANCE_SIM_SECRET_KEY=st-secret \
  ADVANCE_SIM_SESSIONS_FILE="$WORK/sessions.json" bin/advance-sim >"$WORK/advance-sim.log" 2>&1 &
SIM_PID=$!

# DOPPEL_AUTH_FAILURES_PER_MINUTE=0: schemathesis sends wrong credentials on purpose, all from one
# address, and throttling them would turn its valid requests into 429s; the throttle has its own
# tests (internal/httpapi).
DOPPEL_DATABASE_URL="$DB_URL" DOPPEL_KAFKA_BROKERS="$DOPPEL_KAFKA_BROKERS" \
  DOPPEL_KAFKA_GROUP_ID="$RUN" DOPPEL_TOPIC_EVENTS="$RUN.idv.completed" DOPPEL_TOPIC_ALERTS="$RUN.alerts" \
  DOPPEL_TOPIC_DLQ="$RUN.dlq" DOPPEL_TOPIC_PARTITIONS=1 \
  DOPPEL_ADVANCE_BASE_URL="http://127.0.0.1:$SIM_PORT" DOPPEL_ADVANCE_ACCESS_KEY=st-access DOPPEL_ADVANCE_SECRET_KEY=st-secret \
  DOPPEL_ADVANCE_QPS=0 DOPPEL_HTTP_ADDR="127.0.0.1:$API_PORT" DOPPEL_ADMIN_ADDR="127.0.0.1:$ADMIN_PORT" \
  DOPPEL_LOG_LEVEL=warn \
  DOPPEL_API_KEYS="schemathesis:read+review+replay+erase:$API_KEY_SHA256" DOPPEL_CALLBACK_TOKEN="$CALLBACK_TOKEN" \
  DOPPEL_AUTH_FAILURES_PER_MINUTE=0 DOPPEL_PSEUDONYM_KEY="schemathesis-pseudonym-key-0123456789abcdef" \
  DOPPEL_RING_HIGH_SEVERITY_SIZE=3 DOPPEL_MAX_EVENT_BYTES=4096 \
  bin/doppel serve >"$WORK/doppel.log" 2>&1 &
DOPPEL_PID=$!

BASE="http://127.0.0.1:$API_PORT"
for _ in $(seq 1 120); do
  curl -fsS "$BASE/healthz" >/dev/null 2>&1 && break
  kill -0 "$DOPPEL_PID" 2>/dev/null || { cat "$WORK/doppel.log" >&2; die "doppel serve exited"; }
  sleep 0.5
done
curl -fsS "$BASE/healthz" >/dev/null || die "doppel serve did not answer /healthz within 60s (log: ${WORK#"$ROOT"/}/doppel.log)"

# 4. Seed: the ring arrives through the vendor callback and becomes alerts.
for s in a b c; do
  curl -fsS -X POST -H 'Content-Type: application/json' \
    -d "{\"signatureId\":\"${RUN}-$s\",\"type\":\"COMPLETED\"}" "$BASE/v1/callbacks/advance?token=$CALLBACK_TOKEN" >/dev/null
done
# Face search only sees verifications that completed earlier, so the ring is whole only once the
# later members' checks are stored: wait for all three, not for the first alert.
for _ in $(seq 1 60); do
  curl -fsS -H "Authorization: Bearer $API_KEY" "$BASE/v1/users/st-alice/cluster" | grep -q '"size":3' && break
  sleep 0.5
done
curl -fsS -H "Authorization: Bearer $API_KEY" "$BASE/v1/users/st-alice/cluster" | grep -q '"size":3' ||
  die "the seeded ring did not show up (log: ${WORK#"$ROOT"/}/doppel.log)"

# 5. schemathesis, authenticated with the throwaway key and token.
cat > "$WORK/schemathesis.toml" <<'TOML'
[auth.openapi.BearerAuth]
bearer = "${ST_API_KEY}"

[auth.openapi.CallbackToken]
api_key = "${ST_CALLBACK_TOKEN}"

# Rules a JSON Schema cannot state, where a 400 naming the field is the right answer to
# schema-valid input: a review's two userIds must differ, a replay window needs from < to, a
# cursor must be one the API handed out, a snooze ends in the next 30 days, and an erasure's region
# is a configured one. Every other check applies to these operations too.
[[operations]]
include-operation-id = ["createReview", "replay", "alerts", "rings", "reviews", "accessLog", "cases", "snoozeCase"]
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404"]

# An erasure of a person on legal hold is refused with 409 legal_hold (the seeded ring has
# confirmed_fraud reviews), and its region must be a configured one (400).
[[operations]]
include-operation-id = ["requestErasure"]
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409"]
TOML
log "running schemathesis $VERSION against $BASE/openapi.json for at most ${MAX_TIME}s"
# shellcheck disable=SC2086
# From .local/schemathesis, so schemathesis's own cache (.schemathesis/) stays out of the tree.
cd "$WORK"
# The hooks leave out generated cases holding a format character beyond the BMP, which the server
# refuses and the OpenAPI patterns cannot name (see the file).
SCHEMATHESIS_HOOKS="$ROOT/scripts/schemathesis_hooks.py" \
ST_API_KEY="$API_KEY" ST_CALLBACK_TOKEN="$CALLBACK_TOKEN" timeout --kill-after=30 "$((MAX_TIME + 120))" \
  "$VENV/bin/st" --config-file "$WORK/schemathesis.toml" run "$BASE/openapi.json" \
  --checks all --max-time "$MAX_TIME" --workers 1 --request-timeout 30 \
  --report junit --report-dir "$WORK/report" --output-sanitize true ${SCHEMATHESIS_ARGS:-}
