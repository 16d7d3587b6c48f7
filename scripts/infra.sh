#!/usr/bin/env bash
# Throwaway local infrastructure for Doppel: PostgreSQL 15 and a single-node
# Apache Kafka 4.1.2 (KRaft, combined broker+controller), both bound to
# 127.0.0.1 only, with all state under <repo>/.local/ (git-ignored).
#
# There is no Docker engine on the build machines, so PostgreSQL runs from the
# distribution binaries and Kafka from its Maven artifacts (fetched once by
# infra/kafka/pom.xml into .local/kafka/libs, which `down` keeps as a cache).
#
# Usage: scripts/infra.sh <command>
#   up              start both (idempotent), write .local/env
#   down            stop both and delete their data (keeps the jar cache)
#   status          report; exit 0 only if both are up
#   stop-postgres   stop PostgreSQL, keep its data       (fault tests)
#   kill-postgres   SIGKILL the postmaster, keep data (crash recovery on start)
#   start-postgres  start it again on the same port
#   stop-kafka      graceful stop (SIGTERM), keep data
#   kill-kafka      SIGKILL the broker, keep data
#   start-kafka     start it again on the same ports
#
# .local/env holds KEY=VALUE lines without quotes so that both bash
# (`set -a; . .local/env; set +a`) and Make (`include .local/env`) read it.
set -euo pipefail

# Physical path (-P): it is compared with /proc/<pid>/cwd and cmdline below.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
LOCAL="$ROOT/.local"
PORTS_FILE="$LOCAL/ports"
ENV_FILE="$LOCAL/env"

PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
PG_DIR="$LOCAL/pg"
PG_DATA="$PG_DIR/data"
PG_LOG="$PG_DIR/postgres.log"
PG_READY_MARK="$PG_DIR/.initialised"   # written only after initdb+config succeeded
PG_DB=doppel
PG_SUPERUSER=postgres                    # fixed, so the URL does not depend on who ran `up`

KAFKA_VERSION=4.1.2
KAFKA_POM="$ROOT/infra/kafka/pom.xml"
KAFKA_DIR="$LOCAL/kafka"
KAFKA_LIBS="$KAFKA_DIR/libs"
KAFKA_DATA="$KAFKA_DIR/data"
KAFKA_LOGS="$KAFKA_DIR/logs"
KAFKA_LOG="$KAFKA_DIR/kafka.log"
KAFKA_PID="$KAFKA_DIR/kafka.pid"
KAFKA_PROPS="$KAFKA_DIR/server.properties"
KAFKA_READY_TIMEOUT="${KAFKA_READY_TIMEOUT:-90}"
KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"

log() { printf '[infra] %s\n' "$*" >&2; }
die() { printf '[infra] ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- helpers

# PostgreSQL refuses to run as root: as root, run its tools as `postgres`.
IS_ROOT=0; [[ $(id -u) -eq 0 ]] && IS_ROOT=1
as_pg() {
  # cd somewhere the postgres user can read, or the tools warn about the cwd.
  if (( IS_ROOT )); then (cd "$ROOT" && runuser -u postgres -- "$@"); else (cd "$ROOT" && "$@"); fi
}

# True if pid $1 is alive. A zombie counts as dead: the broker is reparented
# to PID 1, which may take a second or more to reap it.
alive() {
  kill -0 "$1" 2>/dev/null || return 1
  local st; st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ "$st" != Z ]]
}

# True if something accepts TCP connections on 127.0.0.1:$1.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Pick a port the kernel considers free right now.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Ports are chosen once and persisted, so a stop/start (and the env file)
# keeps pointing at the same addresses. `down` forgets them.
load_ports() {
  if [[ -f "$PORTS_FILE" ]]; then
    # shellcheck disable=SC1090
    . "$PORTS_FILE"
  fi
  if [[ -z "${PG_PORT:-}" || -z "${KAFKA_PORT:-}" || -z "${KAFKA_CONTROLLER_PORT:-}" ]]; then
    [[ "${1:-}" == create ]] || die "no ports recorded in $PORTS_FILE: run 'scripts/infra.sh up' first"
    mkdir -p "$LOCAL"
    PG_PORT=$(free_port)
    KAFKA_PORT=$(free_port)
    KAFKA_CONTROLLER_PORT=$(free_port)
    # Three separate binds may in theory return the same number; retry then.
    while [[ $KAFKA_PORT == "$PG_PORT" ]]; do KAFKA_PORT=$(free_port); done
    while [[ $KAFKA_CONTROLLER_PORT == "$PG_PORT" || $KAFKA_CONTROLLER_PORT == "$KAFKA_PORT" ]]; do
      KAFKA_CONTROLLER_PORT=$(free_port)
    done
    printf 'PG_PORT=%s\nKAFKA_PORT=%s\nKAFKA_CONTROLLER_PORT=%s\n' \
      "$PG_PORT" "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT" > "$PORTS_FILE.tmp"
    mv "$PORTS_FILE.tmp" "$PORTS_FILE"
    log "picked ports: postgres $PG_PORT, kafka $KAFKA_PORT, kafka controller $KAFKA_CONTROLLER_PORT"
  fi
}

write_env() {
  cat > "$ENV_FILE.tmp" <<EOF
# Written by scripts/infra.sh up; do not edit. Removed by scripts/infra.sh down.
DOPPEL_DATABASE_URL=postgres://$PG_SUPERUSER@127.0.0.1:$PG_PORT/$PG_DB?sslmode=disable
DOPPEL_KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT
DOPPEL_PG_PORT=$PG_PORT
DOPPEL_KAFKA_PORT=$KAFKA_PORT
DOPPEL_KAFKA_CONTROLLER_PORT=$KAFKA_CONTROLLER_PORT
DOPPEL_KAFKA_LIBS=$KAFKA_LIBS
EOF
  mv "$ENV_FILE.tmp" "$ENV_FILE"
  log "wrote $ENV_FILE"
}

# ---------------------------------------------------------------- postgres

# Pids of live processes of this cluster: postgres processes chdir into the
# data directory. After a postmaster SIGKILL its children linger briefly.
pg_procs() {
  local d pid
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    [[ "$(readlink "$d/cwd" 2>/dev/null)" == "$PG_DATA" ]] && alive "$pid" && echo "$pid"
  done
  return 0
}

# Prints the postmaster pid if it is alive. Not `pg_ctl status`: it trusts
# kill(pid, 0), which succeeds on a zombie, and PID 1 on these machines can
# take a minute to reap a killed postmaster.
pg_postmaster_pid() {
  local pid
  pid=$(head -n 1 "$PG_DATA/postmaster.pid" 2>/dev/null) || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] && alive "$pid" || return 1
  [[ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" == "$PG_DATA" ]] || return 1
  echo "$pid"
}
pg_running() { pg_postmaster_pid >/dev/null; }

pg_ready() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U "$PG_SUPERUSER" -d postgres; }

# After a crash: wait for orphaned backends to exit (SIGKILL after 10 s),
# then drop the stale lock files (data dir and socket), which postgres would
# otherwise trust as long as the dead postmaster is an unreaped zombie.
pg_clear_leftovers() {
  local deadline=$((SECONDS + 10)) procs
  while procs=$(pg_procs) && [[ -n "$procs" ]]; do
    if (( SECONDS >= deadline )); then
      log "postgres: killing leftover processes: $(echo $procs)"
      # shellcheck disable=SC2086
      kill -KILL $procs 2>/dev/null || true
    fi
    sleep 0.2
  done
  rm -f "$PG_DATA/postmaster.pid" "$PG_DIR"/.s.PGSQL.*
}

pg_init() {
  # A data dir without the marker is left over from an aborted run: start over.
  if [[ -d "$PG_DIR" && ( ! -f "$PG_READY_MARK" || ! -f "$PG_DATA/PG_VERSION" ) ]]; then
    log "postgres: removing half-initialised $PG_DIR"
    pg_running && as_pg "$PG_BIN/pg_ctl" stop -D "$PG_DATA" -m immediate -w >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
  fi
  [[ -f "$PG_READY_MARK" ]] && return 0

  mkdir -p "$PG_DIR"
  if (( IS_ROOT )); then
    chown postgres:postgres "$PG_DIR"
    as_pg test -w "$PG_DIR" ||
      die "user postgres cannot write $PG_DIR (a parent directory is not traversable?)"
  fi
  log "postgres: initdb into $PG_DATA"
  # trust auth: throwaway, loopback-only instance. Superuser fixed to 'postgres'.
  as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U "$PG_SUPERUSER" --auth-local=trust --auth-host=trust \
    -E UTF8 --locale=C.UTF-8 >"$PG_DIR/initdb.log" 2>&1 ||
    { tail -n 30 "$PG_DIR/initdb.log" >&2; die "initdb failed (log: $PG_DIR/initdb.log)"; }
  # Our settings live in doppel.conf (rewritten on every start); include it last.
  printf "\n# scripts/infra.sh\ninclude_if_exists = 'doppel.conf'\n" | as_pg tee -a "$PG_DATA/postgresql.conf" >/dev/null
  as_pg touch "$PG_READY_MARK"
}

pg_write_conf() {
  # Durability settings stay at their defaults: fault tests kill processes.
  as_pg tee "$PG_DATA/doppel.conf" >/dev/null <<EOF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_DIR'
max_connections = 200
shared_buffers = 128MB
EOF
}

pg_start() {
  [[ -f "$PG_READY_MARK" ]] || die "postgres is not initialised: run 'scripts/infra.sh up'"
  if pg_running; then
    log "postgres: already running"
  else
    if port_open "$PG_PORT"; then
      die "port $PG_PORT (postgres) is taken by another process; 'scripts/infra.sh down' forgets the ports"
    fi
    pg_clear_leftovers
    pg_write_conf
    log "postgres: starting on 127.0.0.1:$PG_PORT"
    # 9>&-: the server must not inherit the lock (see the end of this file).
    as_pg "$PG_BIN/pg_ctl" start -D "$PG_DATA" -l "$PG_LOG" -w -t 60 >/dev/null 9>&- ||
      { tail -n 30 "$PG_LOG" >&2; die "postgres failed to start (log: $PG_LOG)"; }
  fi
  local i
  for i in $(seq 1 60); do
    pg_ready && return 0
    sleep 0.5
  done
  tail -n 30 "$PG_LOG" >&2
  die "postgres does not answer on 127.0.0.1:$PG_PORT"
}

pg_create_db() {
  local psql=("$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U "$PG_SUPERUSER" -d postgres -v ON_ERROR_STOP=1 -qtA)
  if [[ "$(as_pg "${psql[@]}" -c "select 1 from pg_database where datname = '$PG_DB'")" != 1 ]]; then
    log "postgres: creating database $PG_DB"
    as_pg "${psql[@]}" -c "create database $PG_DB" >/dev/null
  fi
}

pg_stop() {
  if pg_running; then
    log "postgres: stopping"
    as_pg "$PG_BIN/pg_ctl" stop -D "$PG_DATA" -m fast -w -t 60 >/dev/null
  else
    log "postgres: not running"
  fi
}

# Crash PostgreSQL (SIGKILL to the postmaster); the next start recovers from WAL.
pg_kill() {
  local pid
  if ! pid=$(pg_postmaster_pid); then
    log "postgres: not running"
    return 0
  fi
  log "postgres: killing postmaster $pid (SIGKILL)"
  kill -KILL "$pid" 2>/dev/null || true
  pg_clear_leftovers
}

# ---------------------------------------------------------------- kafka

# slf4j-simple (the binding in infra/kafka/pom.xml) logs to stderr; add timestamps.
KAFKA_JAVA=(java -Xms256m -Xmx768m -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true
  -Dkafka.logs.dir="$KAFKA_LOGS"
  -Dorg.slf4j.simpleLogger.showDateTime=true
  "-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSS"
  -cp "$KAFKA_LIBS/*")
kafka_java() { "${KAFKA_JAVA[@]}" "$@"; }

kafka_fetch() {
  # The marker holds the pom's checksum, so editing the pom (e.g. a version
  # bump) refetches, and an interrupted fetch never looks complete.
  local sum; sum=$(sha256sum "$KAFKA_POM" | cut -d' ' -f1)
  if [[ -f "$KAFKA_LIBS/.fetched" && "$(cat "$KAFKA_LIBS/.fetched")" == "$sum" ]] &&
     compgen -G "$KAFKA_LIBS/kafka_2.13-$KAFKA_VERSION.jar" >/dev/null; then
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found (needed once to fetch the Kafka jars)"
  log "kafka: fetching Kafka $KAFKA_VERSION jars with Maven (first time only, can take a few minutes)"
  mkdir -p "$KAFKA_DIR"
  rm -rf "$KAFKA_LIBS.tmp"
  mvn -B -q -f "$KAFKA_POM" dependency:copy-dependencies -DincludeScope=runtime \
      -DoutputDirectory="$KAFKA_LIBS.tmp" >"$KAFKA_DIR/mvn.log" 2>&1 ||
    { tail -n 40 "$KAFKA_DIR/mvn.log" >&2; die "maven fetch failed (log: $KAFKA_DIR/mvn.log)"; }
  echo "$sum" > "$KAFKA_LIBS.tmp/.fetched"
  rm -rf "$KAFKA_LIBS"
  mv "$KAFKA_LIBS.tmp" "$KAFKA_LIBS"
  log "kafka: $(find "$KAFKA_LIBS" -name '*.jar' | wc -l) jars in $KAFKA_LIBS"
}

kafka_write_props() {
  mkdir -p "$KAFKA_DIR"
  cat > "$KAFKA_PROPS.tmp" <<EOF
# Written by scripts/infra.sh; rewritten on every start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KAFKA_DATA

# Single node: every internal topic has one replica.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
default.replication.factor=1
min.insync.replicas=1

# Small and fast: few internal partitions (faster first group join / first
# transaction), no rebalance delay, the service creates its own topics.
offsets.topic.num.partitions=5
transaction.state.log.num.partitions=5
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
num.partitions=1

# Modest thread counts and buffers for a laptop-sized JVM (-Xmx768m).
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.cleaner.dedupe.buffer.size=33554432
EOF
  mv "$KAFKA_PROPS.tmp" "$KAFKA_PROPS"
}

# Prints the pid if our broker is alive. The pid file may be stale or point
# to a recycled pid, so check the command line; if the file is missing or
# wrong, look for a broker started from our server.properties anyway.
kafka_is_ours() {
  alive "$1" || return 1
  local cmd; cmd=$(tr '\0' ' ' < "/proc/$1/cmdline" 2>/dev/null) || return 1
  [[ "$cmd" == *kafka.Kafka*"$KAFKA_PROPS"* ]]
}
kafka_pid() {
  local pid d
  pid=$(cat "$KAFKA_PID" 2>/dev/null) || pid=
  if [[ "$pid" =~ ^[0-9]+$ ]] && kafka_is_ours "$pid"; then echo "$pid"; return 0; fi
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    if kafka_is_ours "$pid"; then echo "$pid" > "$KAFKA_PID"; echo "$pid"; return 0; fi
  done
  return 1
}

kafka_format() {
  # meta.properties is written by the format; a data dir without it is junk
  # from an aborted run.
  [[ -f "$KAFKA_DATA/meta.properties" ]] && return 0
  rm -rf "$KAFKA_DATA"
  local id
  id=$(kafka_java kafka.tools.StorageTool random-uuid 2>>"$KAFKA_DIR/format.log" | tail -n 1)
  [[ -n "$id" ]] || { cat "$KAFKA_DIR/format.log" >&2; die "kafka: random-uuid failed"; }
  log "kafka: formatting storage (cluster id $id)"
  kafka_java kafka.tools.StorageTool format --cluster-id "$id" -c "$KAFKA_PROPS" >>"$KAFKA_DIR/format.log" 2>&1 ||
    { tail -n 30 "$KAFKA_DIR/format.log" >&2; die "kafka: storage format failed"; }
}

kafka_wait_ready() {
  local pid=$1 deadline=$((SECONDS + KAFKA_READY_TIMEOUT))
  while (( SECONDS < deadline )); do
    if ! alive "$pid"; then
      tail -n 40 "$KAFKA_LOG" >&2
      die "kafka exited during startup (log: $KAFKA_LOG)"
    fi
    # Both: the port accepts connections and the broker finished recovery
    # (4.1 logs "Transitioning from RECOVERY to RUNNING" and then
    # "[KafkaRaftServer nodeId=1] Kafka Server started").
    if port_open "$KAFKA_PORT" && grep -q 'Kafka Server started' "$KAFKA_LOG" 2>/dev/null; then
      return 0
    fi
    sleep 0.3
  done
  tail -n 40 "$KAFKA_LOG" >&2
  die "kafka not ready after ${KAFKA_READY_TIMEOUT}s (log: $KAFKA_LOG)"
}

kafka_start() {
  [[ -f "$KAFKA_DATA/meta.properties" ]] || die "kafka storage is not formatted: run 'scripts/infra.sh up'"
  local pid
  if pid=$(kafka_pid); then
    log "kafka: already running (pid $pid)"
  else
    rm -f "$KAFKA_PID"
    local p
    for p in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
      if port_open "$p"; then
        die "port $p (kafka) is taken by another process; 'scripts/infra.sh down' forgets the ports"
      fi
    done
    kafka_write_props
    mkdir -p "$KAFKA_LOGS"
    # One log per run (the previous one is kept) so readiness only looks at
    # lines from this start.
    [[ -f "$KAFKA_LOG" ]] && mv "$KAFKA_LOG" "$KAFKA_LOG.prev"
    log "kafka: starting on 127.0.0.1:$KAFKA_PORT (log: $KAFKA_LOG)"
    # setsid: own session, so the broker outlives this shell and a Ctrl-C in
    # the terminal. The wrapper writes its own pid, then becomes java.
    KAFKA_PID_FILE="$KAFKA_PID" setsid nohup bash -c \
      'echo $$ > "$KAFKA_PID_FILE"; exec "$@"' kafka-launcher \
      "${KAFKA_JAVA[@]}" kafka.Kafka "$KAFKA_PROPS" \
      </dev/null >"$KAFKA_LOG" 2>&1 9>&- &
    local i
    for i in $(seq 1 50); do [[ -s "$KAFKA_PID" ]] && break; sleep 0.1; done
    pid=$(cat "$KAFKA_PID" 2>/dev/null) || die "kafka: launcher wrote no pid"
  fi
  kafka_wait_ready "$pid"
  log "kafka: ready (pid $pid)"
}

kafka_stop() {
  local sig=${1:-TERM} pid
  if ! pid=$(kafka_pid); then
    log "kafka: not running"
    rm -f "$KAFKA_PID"
    return 0
  fi
  log "kafka: stopping pid $pid (SIG$sig)"
  kill -s "$sig" "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + KAFKA_STOP_TIMEOUT))
  while alive "$pid"; do
    if (( SECONDS >= deadline )); then
      log "kafka: still alive after ${KAFKA_STOP_TIMEOUT}s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      deadline=$((SECONDS + 10))
    fi
    sleep 0.2
  done
  rm -f "$KAFKA_PID"
}

# ---------------------------------------------------------------- commands

cmd_up() {
  local t0=$SECONDS
  load_ports create
  pg_init
  pg_start
  pg_create_db
  kafka_fetch
  kafka_write_props
  kafka_format
  kafka_start
  write_env
  log "up in $((SECONDS - t0))s: postgres 127.0.0.1:$PG_PORT, kafka 127.0.0.1:$KAFKA_PORT"
}

cmd_down() {
  if [[ -f "$PORTS_FILE" ]]; then load_ports; fi
  kafka_stop TERM
  pg_stop
  [[ -d "$PG_DATA" ]] && pg_clear_leftovers
  rm -rf "$PG_DIR" "$KAFKA_DATA" "$KAFKA_LOGS" "$KAFKA_LIBS.tmp" \
    "$KAFKA_DIR"/kafka.log* "$KAFKA_DIR"/*.log "$KAFKA_PID" "$KAFKA_PROPS" \
    "$ENV_FILE" "$PORTS_FILE"
  log "down: data removed (jar cache kept in $KAFKA_LIBS)"
}

cmd_status() {
  local ok=0 pid
  if [[ ! -f "$PORTS_FILE" ]]; then
    echo "postgres: down (never started)"; echo "kafka: down (never started)"; return 1
  fi
  load_ports
  if pg_running && pg_ready; then
    echo "postgres: up (127.0.0.1:$PG_PORT)"
  else
    echo "postgres: down"; ok=1
  fi
  if pid=$(kafka_pid) && port_open "$KAFKA_PORT"; then
    echo "kafka: up (127.0.0.1:$KAFKA_PORT, pid $pid)"
  else
    echo "kafka: down"; ok=1
  fi
  return $ok
}

# Serialise commands that change state: test packages may run `up` in
# parallel. The lock is fd 9; the long-running servers are started with fd 9
# closed so they never hold it.
case "${1:-}" in
  up|down|stop-*|start-*|kill-*)
    mkdir -p "$LOCAL"
    exec 9>"$LOCAL/.lock"
    flock -w 300 9 || die "another scripts/infra.sh is still running (lock $LOCAL/.lock)" ;;
esac

case "${1:-}" in
  up)             cmd_up ;;
  down)           cmd_down ;;
  status)         cmd_status ;;
  stop-postgres)  load_ports; pg_stop ;;
  kill-postgres)  load_ports; pg_kill ;;
  start-postgres) load_ports; pg_start ;;
  stop-kafka)     load_ports; kafka_stop TERM ;;
  kill-kafka)     load_ports; kafka_stop KILL ;;
  start-kafka)    load_ports; kafka_start ;;
  *)
    sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
    exit 2 ;;
esac
