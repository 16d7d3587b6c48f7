#!/usr/bin/env bash
# Throwaway local infrastructure for Doppel: PostgreSQL 15 and Apache Kafka
# 4.1.2 in KRaft mode, all bound to 127.0.0.1 only, with all state under
# <repo>/.local/ (git-ignored). Kafka is one combined broker+controller node,
# or, with DOPPEL_INFRA_BROKERS=3, a cluster of three combined nodes whose
# controllers form a quorum of three (docs/kafka-cluster.md).
#
# There is no Docker engine on the build machines, so PostgreSQL runs from the
# distribution binaries and Kafka from its Maven artifacts (fetched once by
# infra/kafka/pom.xml into .local/kafka/libs, which `down` keeps as a cache).
#
# Usage: scripts/infra.sh <command>
#   up                 start both (idempotent), write .local/env
#   up-kafka           start only Kafka (a second cluster beside the shared one)
#   down               stop everything and delete its data (keeps the jar cache)
#   status             report; exit 0 only if everything set up is up
#   stop-postgres      stop PostgreSQL, keep its data       (fault tests)
#   kill-postgres      SIGKILL the postmaster, keep data (crash recovery on start)
#   start-postgres     start it again on the same port
#   stop-kafka         graceful stop (SIGTERM) of every Kafka node, keep data
#   kill-kafka         SIGKILL every Kafka node, keep data
#   start-kafka        start every Kafka node again on the same ports
#   stop-kafka-node N  graceful stop of node N (1..3), keep data
#   kill-kafka-node N  SIGKILL node N, keep data
#   start-kafka-node N start node N again
#   kafka-controller   print the node id of the active controller (quorum leader)
#   kafka-node-pid N   print node N's pid (exit 1 if it is not running)
#
# Environment:
#   DOPPEL_INFRA_BROKERS  Kafka nodes for `up`: 1 (default) or 3. Recorded at the
#                         first `up`; change it only after `down`.
#   DOPPEL_INFRA_DIR      state folder (default <repo>/.local): tests start a
#                         cluster of their own in a folder of their own. The
#                         jar cache stays in <repo>/.local/kafka/libs.
#
# .local/env holds KEY=VALUE lines without quotes so that both bash
# (`set -a; . .local/env; set +a`) and Make (`include .local/env`) read it.
set -euo pipefail

# Physical path (-P): it is compared with /proc/<pid>/cwd and cmdline below.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
LOCAL="${DOPPEL_INFRA_DIR:-$ROOT/.local}"
mkdir -p "$LOCAL"
LOCAL="$(cd "$LOCAL" && pwd -P)"
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
# One jar cache per checkout, whichever state folder is in use.
KAFKA_LIBS="$ROOT/.local/kafka/libs"
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
# Pick n ports the kernel considers free right now, all different: the
# sockets are held open together until every number is known.
free_ports() {
  python3 -c 'import socket,sys
ss=[socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss: s.bind(("127.0.0.1",0))
print(" ".join(str(s.getsockname()[1]) for s in ss))' "$1"
}

# Ports are chosen once and persisted, so a stop/start (and the env file)
# keeps pointing at the same addresses. `down` forgets them. The file also
# records how many Kafka nodes there are (KAFKA_NODES) and whether this folder
# has a PostgreSQL (WITH_PG), so that later commands need no settings.
# KAFKA_PORT and KAFKA_CONTROLLER_PORT are node 1's (the names of a one-node
# setup, which older ports files hold alone).
load_ports() {
  if [[ -f "$PORTS_FILE" ]]; then
    # shellcheck disable=SC1090
    . "$PORTS_FILE"
  fi
  if [[ -n "${KAFKA_PORT:-}" ]]; then
    KAFKA_NODES=${KAFKA_NODES:-1}
    WITH_PG=${WITH_PG:-1}
    KAFKA_PORT_1=${KAFKA_PORT_1:-$KAFKA_PORT}
    KAFKA_CONTROLLER_PORT_1=${KAFKA_CONTROLLER_PORT_1:-$KAFKA_CONTROLLER_PORT}
    local want=${DOPPEL_INFRA_BROKERS:-$KAFKA_NODES}
    if [[ "${1:-}" == create && "$want" != "$KAFKA_NODES" ]]; then
      die "$LOCAL holds a $KAFKA_NODES-node Kafka, not $want: run 'scripts/infra.sh down' first (DOPPEL_INFRA_BROKERS is read only by a fresh 'up')"
    fi
    return 0
  fi
  [[ "${1:-}" == create ]] || die "no ports recorded in $PORTS_FILE: run 'scripts/infra.sh up' first"
  KAFKA_NODES=${DOPPEL_INFRA_BROKERS:-1}
  [[ "$KAFKA_NODES" == 1 || "$KAFKA_NODES" == 3 ]] ||
    die "DOPPEL_INFRA_BROKERS must be 1 or 3, got '$KAFKA_NODES'"
  WITH_PG=${2:-1}
  local ports n
  read -r -a ports <<<"$(free_ports $((1 + 2 * KAFKA_NODES)))"
  PG_PORT=${ports[0]}
  {
    printf 'KAFKA_NODES=%s\nWITH_PG=%s\nPG_PORT=%s\n' "$KAFKA_NODES" "$WITH_PG" "$PG_PORT"
    for ((n = 1; n <= KAFKA_NODES; n++)); do
      printf -v "KAFKA_PORT_$n" '%s' "${ports[2 * n - 1]}"
      printf -v "KAFKA_CONTROLLER_PORT_$n" '%s' "${ports[2 * n]}"
      printf 'KAFKA_PORT_%s=%s\nKAFKA_CONTROLLER_PORT_%s=%s\n' "$n" "${ports[2 * n - 1]}" "$n" "${ports[2 * n]}"
    done
    printf 'KAFKA_PORT=%s\nKAFKA_CONTROLLER_PORT=%s\n' "$KAFKA_PORT_1" "$KAFKA_CONTROLLER_PORT_1"
  } > "$PORTS_FILE.tmp"
  mv "$PORTS_FILE.tmp" "$PORTS_FILE"
  KAFKA_PORT=$KAFKA_PORT_1
  KAFKA_CONTROLLER_PORT=$KAFKA_CONTROLLER_PORT_1
  log "picked ports: postgres $PG_PORT, kafka $(kafka_ports_text)"
}

# node_port N and node_controller_port N: node N's listener ports.
node_port() { local v="KAFKA_PORT_$1"; echo "${!v}"; }
node_controller_port() { local v="KAFKA_CONTROLLER_PORT_$1"; echo "${!v}"; }

kafka_ports_text() {
  local n out=()
  for ((n = 1; n <= KAFKA_NODES; n++)); do
    out+=("node $n 127.0.0.1:$(node_port "$n") (controller $(node_controller_port "$n"))")
  done
  local IFS=';'; echo "${out[*]}"
}

# The bootstrap list every client gets: all nodes, so that any one of them
# being down leaves the others to ask.
kafka_bootstrap() {
  local n out=()
  for ((n = 1; n <= KAFKA_NODES; n++)); do out+=("127.0.0.1:$(node_port "$n")"); done
  local IFS=,; echo "${out[*]}"
}

write_env() {
  {
    echo "# Written by scripts/infra.sh up; do not edit. Removed by scripts/infra.sh down."
    if (( WITH_PG )); then
      echo "DOPPEL_DATABASE_URL=postgres://$PG_SUPERUSER@127.0.0.1:$PG_PORT/$PG_DB?sslmode=disable"
      echo "DOPPEL_PG_PORT=$PG_PORT"
    fi
    echo "DOPPEL_KAFKA_BROKERS=$(kafka_bootstrap)"
    echo "DOPPEL_KAFKA_PORT=$KAFKA_PORT"
    echo "DOPPEL_KAFKA_CONTROLLER_PORT=$KAFKA_CONTROLLER_PORT"
    echo "DOPPEL_KAFKA_NODES=$KAFKA_NODES"
    echo "DOPPEL_KAFKA_LIBS=$KAFKA_LIBS"
  } > "$ENV_FILE.tmp"
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

# Node N's files. A one-node Kafka keeps the layout it always had
# (.local/kafka/{data,kafka.log,...}); the nodes of a cluster each have a
# folder .local/kafka/node-N/ with the same names inside.
node_dir() { if (( KAFKA_NODES == 1 )); then echo "$KAFKA_DIR"; else echo "$KAFKA_DIR/node-$1"; fi; }
node_data() { echo "$(node_dir "$1")/data"; }
node_log() { echo "$(node_dir "$1")/kafka.log"; }
node_pidfile() { echo "$(node_dir "$1")/kafka.pid"; }
node_props() { echo "$(node_dir "$1")/server.properties"; }

# slf4j-simple (the binding in infra/kafka/pom.xml) logs to stderr; add timestamps.
# A one-node Kafka gets the heap it always had. Three nodes share the same two
# cores and the memory of everything else: smaller heaps, the serial collector
# (no parallel GC threads to compete with three JVMs' worth of work) and the
# C1 compiler only, which halves the CPU a cold start burns; a test cluster
# carries hundreds of events per second, not the broker's peak.
kafka_java_cmd() {
  local n=$1 heap=(-Xms256m -Xmx768m)
  if (( KAFKA_NODES > 1 )); then
    heap=(-Xms128m -Xmx384m -XX:+UseSerialGC -XX:TieredStopAtLevel=1)
  fi
  KAFKA_JAVA=(java "${heap[@]}" -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true
    -Dkafka.logs.dir="$(node_dir "$n")/logs"
    -Dorg.slf4j.simpleLogger.showDateTime=true
    "-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSS"
    -cp "$KAFKA_LIBS/*")
}

kafka_fetch() {
  # The marker holds the pom's checksum, so editing the pom (e.g. a version
  # bump) refetches, and an interrupted fetch never looks complete. The cache
  # is shared by every state folder of this checkout: fetch under a lock of
  # its own (fd 8).
  local sum; sum=$(sha256sum "$KAFKA_POM" | cut -d' ' -f1)
  mkdir -p "$ROOT/.local/kafka"
  exec 8>"$ROOT/.local/.fetch.lock"
  flock -w 600 8 || die "another scripts/infra.sh is still fetching the Kafka jars"
  if [[ -f "$KAFKA_LIBS/.fetched" && "$(cat "$KAFKA_LIBS/.fetched")" == "$sum" ]] &&
     compgen -G "$KAFKA_LIBS/kafka_2.13-$KAFKA_VERSION.jar" >/dev/null; then
    exec 8>&-
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found (needed once to fetch the Kafka jars)"
  log "kafka: fetching Kafka $KAFKA_VERSION jars with Maven (first time only, can take a few minutes)"
  rm -rf "$KAFKA_LIBS.tmp"
  mvn -B -q -f "$KAFKA_POM" dependency:copy-dependencies -DincludeScope=runtime \
      -DoutputDirectory="$KAFKA_LIBS.tmp" >"$ROOT/.local/kafka/mvn.log" 2>&1 ||
    { tail -n 40 "$ROOT/.local/kafka/mvn.log" >&2; die "maven fetch failed (log: $ROOT/.local/kafka/mvn.log)"; }
  echo "$sum" > "$KAFKA_LIBS.tmp/.fetched"
  rm -rf "$KAFKA_LIBS"
  mv "$KAFKA_LIBS.tmp" "$KAFKA_LIBS"
  exec 8>&-
  log "kafka: $(find "$KAFKA_LIBS" -name '*.jar' | wc -l) jars in $KAFKA_LIBS"
}

kafka_write_props() {
  local n=$1 dir voters="" i rf=1 isr=1
  dir=$(node_dir "$n")
  mkdir -p "$dir"
  for ((i = 1; i <= KAFKA_NODES; i++)); do
    voters+="${voters:+,}$i@127.0.0.1:$(node_controller_port "$i")"
  done
  # Internal topics are replicated on every node of a cluster, so that losing
  # one node loses no committed offset; two copies must have a transaction's
  # state. The brokers' own min.insync.replicas stays at Kafka's default of 1:
  # Doppel sets 2 on the topics it creates (DOPPEL_TOPIC_REPLICATION_FACTOR).
  if (( KAFKA_NODES >= 3 )); then rf=3; isr=2; fi
  cat > "$(node_props "$n").tmp" <<PROPS
# Written by scripts/infra.sh; rewritten on every start.
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$(node_port "$n"),CONTROLLER://127.0.0.1:$(node_controller_port "$n")
advertised.listeners=PLAINTEXT://127.0.0.1:$(node_port "$n")
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$(node_data "$n")

# Replication of the internal topics and of topics created without a factor.
offsets.topic.replication.factor=$rf
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$isr
default.replication.factor=$rf
min.insync.replicas=1

# Small and fast: few internal partitions (faster first group join / first
# transaction), no rebalance delay, the service creates its own topics.
offsets.topic.num.partitions=5
transaction.state.log.num.partitions=5
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
num.partitions=1

# Modest thread counts and buffers for a laptop-sized JVM.
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.cleaner.dedupe.buffer.size=$(( KAFKA_NODES > 1 ? 8388608 : 33554432 ))
PROPS
  if (( KAFKA_NODES > 1 )); then
    # A node killed with SIGKILL is fenced, and its partitions get new
    # leaders, when it misses heartbeats for broker.session.timeout.ms (9 s by
    # default): 6 s keeps a fault test's pause short, still far above the
    # pauses of a busy loopback machine.
    cat >> "$(node_props "$n").tmp" <<PROPS

# A node that stops heartbeating is fenced after 6 s (see scripts/infra.sh).
broker.heartbeat.interval.ms=1000
broker.session.timeout.ms=6000
PROPS
  fi
  mv "$(node_props "$n").tmp" "$(node_props "$n")"
}

# Prints the pid if node N is alive. The pid file may be stale or point to a
# recycled pid, so check the command line; if the file is missing or wrong,
# look for a node started from its server.properties anyway.
kafka_is_ours() {
  alive "$1" || return 1
  local cmd; cmd=$(tr '\0' ' ' < "/proc/$1/cmdline" 2>/dev/null) || return 1
  [[ "$cmd" == *kafka.Kafka*"$2"* ]]
}
kafka_pid() {
  local n=$1 pid d props pidfile
  props=$(node_props "$n"); pidfile=$(node_pidfile "$n")
  pid=$(cat "$pidfile" 2>/dev/null) || pid=
  if [[ "$pid" =~ ^[0-9]+$ ]] && kafka_is_ours "$pid" "$props"; then echo "$pid"; return 0; fi
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    if kafka_is_ours "$pid" "$props"; then echo "$pid" > "$pidfile"; echo "$pid"; return 0; fi
  done
  return 1
}

# kafka_format formats every node's storage with one cluster id. With static
# controller.quorum.voters the format needs no --standalone or
# --initial-controllers: every node already knows the three voters.
kafka_format() {
  local n missing=() id pids=() rc=0
  for ((n = 1; n <= KAFKA_NODES; n++)); do
    # meta.properties is written by the format; a data dir without it is junk
    # from an aborted run.
    [[ -f "$(node_data "$n")/meta.properties" ]] || missing+=("$n")
  done
  (( ${#missing[@]} )) || return 0
  if [[ ! -s "$KAFKA_DIR/cluster.id" || ${#missing[@]} -eq $KAFKA_NODES ]]; then
    # Kafka's cluster id: 16 random bytes in URL-safe base64 without padding,
    # as `StorageTool random-uuid` prints it (without a JVM start).
    python3 -c 'import base64,os; print(base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("="))' > "$KAFKA_DIR/cluster.id"
  fi
  id=$(cat "$KAFKA_DIR/cluster.id")
  log "kafka: formatting storage of node(s) ${missing[*]} (cluster id $id)"
  # In parallel: each format is a JVM start.
  for n in "${missing[@]}"; do
    rm -rf "$(node_data "$n")"
    kafka_java_cmd "$n"
    "${KAFKA_JAVA[@]}" kafka.tools.StorageTool format --cluster-id "$id" -c "$(node_props "$n")" \
      >"$(node_dir "$n")/format.log" 2>&1 &
    pids+=($!)
  done
  for i in "${!pids[@]}"; do
    if ! wait "${pids[$i]}"; then
      n=${missing[$i]}
      tail -n 30 "$(node_dir "$n")/format.log" >&2
      rc=1
    fi
  done
  (( rc == 0 )) || die "kafka: storage format failed"
}

kafka_wait_ready() {
  local n=$1 pid=$2 log port deadline=$((SECONDS + KAFKA_READY_TIMEOUT))
  log=$(node_log "$n"); port=$(node_port "$n")
  while (( SECONDS < deadline )); do
    if ! alive "$pid"; then
      tail -n 40 "$log" >&2
      die "kafka node $n exited during startup (log: $log)"
    fi
    # Both: the port accepts connections and the node finished recovery
    # (4.1 logs "Transitioning from RECOVERY to RUNNING" and then
    # "[KafkaRaftServer nodeId=1] Kafka Server started").
    if port_open "$port" && grep -q 'Kafka Server started' "$log" 2>/dev/null; then
      return 0
    fi
    sleep 0.3
  done
  tail -n 40 "$log" >&2
  die "kafka node $n not ready after ${KAFKA_READY_TIMEOUT}s (log: $log)"
}

# kafka_launch N starts node N unless it runs, without waiting for it; it
# prints the pid.
kafka_launch() {
  local n=$1 pid pidfile log p
  [[ -f "$(node_data "$n")/meta.properties" ]] || die "kafka storage of node $n is not formatted: run 'scripts/infra.sh up'"
  if pid=$(kafka_pid "$n"); then
    log "kafka node $n: already running (pid $pid)"
    echo "$pid"; return 0
  fi
  pidfile=$(node_pidfile "$n"); log=$(node_log "$n")
  rm -f "$pidfile"
  for p in "$(node_port "$n")" "$(node_controller_port "$n")"; do
    if port_open "$p"; then
      die "port $p (kafka node $n) is taken by another process; 'scripts/infra.sh down' forgets the ports"
    fi
  done
  kafka_write_props "$n"
  mkdir -p "$(node_dir "$n")/logs"
  # One log per run (the previous one is kept) so readiness only looks at
  # lines from this start.
  [[ -f "$log" ]] && mv "$log" "$log.prev"
  log "kafka node $n: starting on 127.0.0.1:$(node_port "$n") (log: $log)"
  kafka_java_cmd "$n"
  # setsid: own session, so the node outlives this shell and a Ctrl-C in the
  # terminal. The wrapper writes its own pid, then becomes java.
  KAFKA_PID_FILE="$pidfile" setsid nohup bash -c \
    'echo $$ > "$KAFKA_PID_FILE"; exec "$@"' kafka-launcher \
    "${KAFKA_JAVA[@]}" kafka.Kafka "$(node_props "$n")" \
    </dev/null >"$log" 2>&1 9>&- 8>&- &
  local i
  for i in $(seq 1 50); do [[ -s "$pidfile" ]] && break; sleep 0.1; done
  pid=$(cat "$pidfile" 2>/dev/null) || die "kafka node $n: launcher wrote no pid"
  echo "$pid"
}

# kafka_start [N...] starts the given nodes (default: all) and waits until
# each is ready. All are launched before any is waited for: a node of a
# cluster finishes starting only once a majority of the controllers runs.
kafka_start() {
  local nodes=("$@") n pids=()
  (( ${#nodes[@]} )) || nodes=($(seq 1 "$KAFKA_NODES"))
  for n in "${nodes[@]}"; do pids+=("$(kafka_launch "$n")"); done
  for i in "${!nodes[@]}"; do
    kafka_wait_ready "${nodes[$i]}" "${pids[$i]}"
    log "kafka node ${nodes[$i]}: ready (pid ${pids[$i]})"
  done
}

# kafka_stop SIG [N...] signals the given nodes (default: all) at once and
# waits until every one has exited, with SIGKILL after KAFKA_STOP_TIMEOUT.
kafka_stop() {
  local sig=$1 n pid; shift
  local nodes=("$@") live=() pids=()
  (( ${#nodes[@]} )) || nodes=($(seq 1 "$KAFKA_NODES"))
  for n in "${nodes[@]}"; do
    if pid=$(kafka_pid "$n"); then
      log "kafka node $n: stopping pid $pid (SIG$sig)"
      kill -s "$sig" "$pid" 2>/dev/null || true
      live+=("$n"); pids+=("$pid")
    else
      log "kafka node $n: not running"
      rm -f "$(node_pidfile "$n")"
    fi
  done
  local deadline=$((SECONDS + KAFKA_STOP_TIMEOUT)) killed=0 i
  for i in "${!live[@]}"; do
    while alive "${pids[$i]}"; do
      if (( SECONDS >= deadline && !killed )); then
        log "kafka: still alive after ${KAFKA_STOP_TIMEOUT}s, sending SIGKILL"
        for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
        killed=1
      fi
      sleep 0.2
    done
    rm -f "$(node_pidfile "${live[$i]}")"
  done
}

# kafka_controller prints the node id of the active controller. Each node
# records the quorum's leader and epoch in __cluster_metadata-0/quorum-state
# whenever it learns of an election; the running node with the newest epoch
# knows the current leader. (The Metadata API cannot say: under KRaft its
# "controller id" is a random broker, and kafka-go has no DescribeQuorum.)
kafka_controller() {
  local n files=()
  for ((n = 1; n <= KAFKA_NODES; n++)); do
    kafka_pid "$n" >/dev/null && files+=("$(node_data "$n")/__cluster_metadata-0/quorum-state")
  done
  (( ${#files[@]} )) || die "no kafka node is running"
  python3 - "${files[@]}" <<'PY'
import json, sys
best = None
for path in sys.argv[1:]:
    try:
        with open(path) as f:
            st = json.load(f)
    except (OSError, ValueError):
        continue
    if st.get("leaderId", -1) >= 0 and (best is None or st["leaderEpoch"] > best["leaderEpoch"]):
        best = st
if best is None:
    sys.exit("no running node knows a quorum leader yet")
print(best["leaderId"])
PY
}

node_arg() {
  [[ "${1:-}" =~ ^[0-9]+$ ]] && (( $1 >= 1 && $1 <= KAFKA_NODES )) ||
    die "give a node number between 1 and $KAFKA_NODES, got '${1:-}'"
}

# ---------------------------------------------------------------- commands

kafka_up() {
  local n
  kafka_fetch
  for ((n = 1; n <= KAFKA_NODES; n++)); do kafka_write_props "$n"; done
  kafka_format
  kafka_start
}

cmd_up() {
  local t0=$SECONDS
  load_ports create 1
  if (( ! WITH_PG )); then
    # A Kafka-only folder gains a PostgreSQL: record it.
    WITH_PG=1
    sed -i 's/^WITH_PG=0$/WITH_PG=1/' "$PORTS_FILE"
  fi
  pg_init
  pg_start
  pg_create_db
  kafka_up
  write_env
  log "up in $((SECONDS - t0))s: postgres 127.0.0.1:$PG_PORT, kafka $(kafka_bootstrap)"
}

cmd_up_kafka() {
  local t0=$SECONDS
  load_ports create 0
  kafka_up
  write_env
  log "kafka up in $((SECONDS - t0))s: $(kafka_bootstrap)"
}

cmd_down() {
  if [[ -f "$PORTS_FILE" ]]; then
    load_ports
  else
    # Without the ports file (a half-finished `up`, or it was deleted), the
    # nodes are still found by their server.properties (kafka_pid).
    KAFKA_NODES=1
    compgen -G "$KAFKA_DIR/node-*" >/dev/null && KAFKA_NODES=$(compgen -G "$KAFKA_DIR/node-*" | wc -l)
  fi
  # The data is deleted next: no point in a graceful stop, and a cluster
  # whose controllers all leave at once cannot shut its brokers down
  # cleanly anyway (each would wait for KAFKA_STOP_TIMEOUT).
  if (( KAFKA_NODES > 1 )); then kafka_stop KILL; else kafka_stop TERM; fi
  pg_stop
  [[ -d "$PG_DATA" ]] && pg_clear_leftovers
  rm -rf "$PG_DIR" "$KAFKA_DIR"/node-* "$KAFKA_DIR/data" "$KAFKA_DIR/logs" "$KAFKA_LIBS.tmp" \
    "$KAFKA_DIR"/kafka.log* "$KAFKA_DIR"/*.log "$KAFKA_DIR/kafka.pid" "$KAFKA_DIR/server.properties" \
    "$KAFKA_DIR/cluster.id" "$ENV_FILE" "$PORTS_FILE"
  log "down: data removed (jar cache kept in $KAFKA_LIBS)"
}

cmd_status() {
  local ok=0 pid n
  if [[ ! -f "$PORTS_FILE" ]]; then
    echo "postgres: down (never started)"; echo "kafka: down (never started)"; return 1
  fi
  load_ports
  if (( WITH_PG )); then
    if pg_running && pg_ready; then
      echo "postgres: up (127.0.0.1:$PG_PORT)"
    else
      echo "postgres: down"; ok=1
    fi
  fi
  for ((n = 1; n <= KAFKA_NODES; n++)); do
    local name="kafka"; (( KAFKA_NODES == 1 )) || name="kafka node $n"
    if pid=$(kafka_pid "$n") && port_open "$(node_port "$n")"; then
      echo "$name: up (127.0.0.1:$(node_port "$n"), pid $pid)"
    else
      echo "$name: down"; ok=1
    fi
  done
  return $ok
}

# Serialise commands that change state: test packages may run `up` in
# parallel. The lock is fd 9; the long-running servers are started with fd 9
# closed so they never hold it.
case "${1:-}" in
  up|up-kafka|down|stop-*|start-*|kill-*)
    exec 9>"$LOCAL/.lock"
    flock -w 300 9 || die "another scripts/infra.sh is still running (lock $LOCAL/.lock)" ;;
esac

case "${1:-}" in
  up)               cmd_up ;;
  up-kafka)         cmd_up_kafka ;;
  down)             cmd_down ;;
  status)           cmd_status ;;
  stop-postgres)    load_ports; pg_stop ;;
  kill-postgres)    load_ports; pg_kill ;;
  start-postgres)   load_ports; pg_start ;;
  stop-kafka)       load_ports; kafka_stop TERM ;;
  kill-kafka)       load_ports; kafka_stop KILL ;;
  start-kafka)      load_ports; kafka_start ;;
  stop-kafka-node)  load_ports; node_arg "${2:-}"; kafka_stop TERM "$2" ;;
  kill-kafka-node)  load_ports; node_arg "${2:-}"; kafka_stop KILL "$2" ;;
  start-kafka-node) load_ports; node_arg "${2:-}"; kafka_start "$2" ;;
  kafka-controller) load_ports; kafka_controller ;;
  kafka-node-pid)   load_ports; node_arg "${2:-}"; kafka_pid "$2" ;;
  *)
    sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
    exit 2 ;;
esac
