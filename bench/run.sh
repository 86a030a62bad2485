#!/usr/bin/env bash
# hookgate vs nginx proxy_pass, interleaved, on 127.0.0.1 (issue 8).
#
#   bench/run.sh                                   # every scenario, defaults
#   DURATION=5s ROUNDS=1 SCENARIOS="1 4" bench/run.sh
#   PERF=1 SCENARIOS="1 4" bench/run.sh            # plus one profiled hookgate run each
#
# Starts an nginx upstream that answers 204, an nginx proxy_pass in front of
# it (the peer: no verification, keep-alive to the upstream) and hookgate in
# front of the same upstream, then drives them with wrk for the same duration
# and connections, alternating nginx, hookgate, nginx, hookgate... for ROUNDS
# rounds per scenario, and prints the medians and the hookgate/nginx ratios.
# Every request is a ~1.5 KB TruTac event with its own event id, signed
# beforehand by gen_requests.py (wrk cannot HMAC).
#
# Scenarios (hookgate; nginx is the same plain proxy in each):
#   1  ack: sync, TruTac verify, dedup off
#   2  sync + verify + local dedup (SQLite in data_dir), key {json:/id}
#   3  sync + verify + Redis dedup (our own redis-server, no persistence)
#   4  ack: async, store.fsync: true; afterwards every acked event must
#      reach the upstream (distinct Hookgate-Delivery-Id in its access log)
#   5  ack: async, store.fsync: false; same check
#   6  (optional, not in the default list) as 4, but hookgate starts with
#      BACKLOG (1,000,000) pending deliveries already spooled, which its
#      workers deliver during the run: ack rate, latency and RSS with a
#      backlog. No delivery check (draining takes minutes).
#   7  (optional, not in the default list) as 2, with DEDUP_KEYS
#      (10,000,000) committed dedup keys already stored, against the same
#      with DEDUP_SMALL (1,000): each round runs nginx, then hookgate on
#      both stores (order alternating by round), each store copied fresh
#      from one made once by seed_dedup.py. Reported as 10M / 1k ratios.
#   10 (optional, not in the default list) ack: async on PostgreSQL
#      (store.backend: postgres), a private
#      cluster started for the run (initdb + pg_ctl as the postgres user,
#      fsync and synchronous_commit on: durable, as scenario 4); the same
#      delivery check as 4. Also reports the PostgreSQL server's CPU per
#      event, to estimate how many replicas one primary can serve.
#   11 (optional, not in the default list) fan-out: as 4, with three
#      destinations: the same HTTP upstream, a NATS JetStream stream and a
#      RabbitMQ exchange with a durable queue (this machine's brokers; a
#      stream and exchange per round, removed after). Every acked event
#      must reach all three (the HTTP upstream's distinct ids, the
#      stream's and the queue's message counts). Run it beside 4 for the
#      cost of fan-out: SCENARIOS="4 11".
# hookgate is restarted with an empty data_dir (and Redis flushed) for each
# round, so every round's event ids are new to it.
#
# Settings (environment):
#   DURATION=10s  ROUNDS=3  CONNECTIONS=32  THREADS=1 (wrk threads)
#   SCENARIOS="1 2 3 4 5"  EVENTS=400000 (distinct signed events per wrk run)
#   DRAIN_TIMEOUT=120 (s, async: wait for the spool to empty)
#   ACCESS_LOG=on (both log every request: nginx to a file, hookgate's
#   access log to stderr, redirected to a file; `off` disables both)
#   BASE_PORT=18100  WORK=/tmp/hookgate-bench.XXXX  PERF=0  NO_BUILD=0
#   HG_CONCURRENCY= (async: upstream.concurrency; unset = hookgate's default)
#   BACKLOG=1000000 (scenario 6)  DEDUP_KEYS=10000000 DEDUP_SMALL=1000 (scenario 7)
#   PG_POOL=16 (scenario 10: store.postgres.pool_size)
# The defaults finish in about 8 minutes on 2 cores.
#
# Needs nginx, wrk, redis-server (scenario 3), python3, cargo; installs the
# Debian packages when missing and run as root. Traffic stays on 127.0.0.1.
set -euo pipefail

DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-1}
SCENARIOS=${SCENARIOS:-"1 2 3 4 5"}
EVENTS=${EVENTS:-400000}
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-120}
BACKLOG=${BACKLOG:-1000000}
DEDUP_KEYS=${DEDUP_KEYS:-10000000}
DEDUP_SMALL=${DEDUP_SMALL:-1000}
ACCESS_LOG=${ACCESS_LOG:-on}
BASE_PORT=${BASE_PORT:-18100}
PERF=${PERF:-0}
NO_BUILD=${NO_BUILD:-0}
HG_CONCURRENCY=${HG_CONCURRENCY:-}
PG_POOL=${PG_POOL:-16}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
WORK=${WORK:-$(mktemp -d /tmp/hookgate-bench.XXXXXX)}
mkdir -p "$WORK"
SECRET="bench-trutac-secret"
UP_PORT=$((BASE_PORT + 1))
PX_PORT=$((BASE_PORT + 2))
HG_PORT=$((BASE_PORT + 3))
ADMIN_PORT=$((BASE_PORT + 4))
REDIS_PORT=$((BASE_PORT + 5))
PG_PORT=$((BASE_PORT + 6))
HOOK_PATH=/hooks/trutac

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- tools
need=()
command -v nginx >/dev/null || need+=(nginx-light)
command -v wrk >/dev/null || need+=(wrk)
command -v python3 >/dev/null || need+=(python3)
case " $SCENARIOS " in *" 3 "*)
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null || need+=(redis-server) ;;
esac
case " $SCENARIOS " in *" 10 "*)
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql) ;;
esac
case " $SCENARIOS " in *" 11 "*)
  python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv) ;;
esac
if [ "$PERF" = 1 ] && ! command -v perf >/dev/null; then need+=(linux-perf); fi
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "missing ${need[*]}: apt-get install -y ${need[*]}"
  log "installing ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
NGINX=$(command -v nginx)

if [ "$NO_BUILD" != 1 ]; then
  log "cargo build --release"
  (cd "$ROOT" && cargo build --release --quiet)
fi
HOOKGATE="$ROOT/target/release/hookgate"
[ -x "$HOOKGATE" ] || die "no $HOOKGATE"

# Scenario 11's brokers are driven from Python (nats-py, pika) in a venv.
BROKERS=""
case " $SCENARIOS " in *" 11 "*)
  python3 -m venv "$WORK/venv"
  "$WORK/venv/bin/pip" install --quiet --no-cache-dir nats-py==2.9.0 pika==1.3.2
  BROKERS="$WORK/venv/bin/python $BENCH/brokers.py" ;;
esac

# ---------------------------------------------------------------- helpers
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

secs() { # 10s, 2m, 500ms -> seconds (integer, at least 1)
  case "$1" in
    *ms) echo $(( (${1%ms} + 999) / 1000 )) ;;
    *s) echo "${1%s}" ;;
    *m) echo $(( ${1%m} * 60 )) ;;
    *) echo "$1" ;;
  esac
}

wait_port() { # port: wait until something listens
  local i
  for i in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  die "nothing listens on 127.0.0.1:$1"
}

# Memory of a process tree root and its direct children (nginx master and
# workers), in KiB: field VmHWM (peak) or VmRSS (now).
mem_kib() { # field pid...
  local field=$1 total=0 pid kids
  shift
  for pid in "$@"; do
    kids=$(pgrep -P "$pid" || true)
    for p in $pid $kids; do
      v=$(awk -v f="$field:" '$1 == f { print $2 }' "/proc/$p/status" 2>/dev/null || echo 0)
      total=$((total + ${v:-0}))
    done
  done
  echo "$total"
}

# CPU time (user + system, clock ticks) of a process and its direct
# children: what serving the requests cost, less sensitive to other load on
# the machine than throughput.
cpu_ticks() { # pid
  local total=0 p
  for p in $1 $(pgrep -P "$1" || true); do
    total=$((total + $(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}
us_per_req() { # ticks requests
  awk -v t="$1" -v n="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN { if (n > 0) printf "%.1f", t * 1e6 / hz / n; else print 0 }'
}

mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# wrk output -> "rps p50_ms p99_ms non2xx errors wraps requests"
parse_wrk() {
  awk '
    function ms(v) {
      if (v ~ /us$/) { sub(/us$/, "", v); return v / 1000 }
      if (v ~ /ms$/) { sub(/ms$/, "", v); return v + 0 }
      if (v ~ /m$/)  { sub(/m$/, "", v); return v * 60000 }
      if (v ~ /s$/)  { sub(/s$/, "", v); return v * 1000 }
      return v
    }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    /^Requests\/sec:/ { rps = $2 }
    /Non-2xx or 3xx responses:/ { non2xx = $NF }
    /Socket errors:/ { gsub(/,/, ""); errors = $4 + $6 + $8 + $10 }
    $1 == "WRAPS" { wraps = $2 }
    / requests in / { requests = $1 }
    END { printf "%s %.3f %.3f %d %d %d %d\n", rps, p50, p99, non2xx, errors, wraps, requests }
  ' "$1"
}

run_wrk() { # port label -> parsed result line; raw output kept in $WORK
  local port=$1 label=$2 out="$WORK/wrk-$2.txt"
  BENCH_REQUESTS="$WORK/requests.txt" BENCH_THREADS="$THREADS" BENCH_PATH="$HOOK_PATH" \
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --timeout 10s --latency \
    -s "$BENCH/trutac.lua" "http://127.0.0.1:$port$HOOK_PATH" >"$out" 2>&1 \
    || die "wrk failed: $(cat "$out")"
  parse_wrk "$out"
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

metric() { # name{labels} -> value from hookgate's /metrics (0 when absent)
  curl -fsS "http://127.0.0.1:$ADMIN_PORT/metrics" 2>/dev/null \
    | awk -v m="$1" 'index($0, m " ") == 1 { print $2; found = 1 } END { if (!found) print 0 }'
}

# ---------------------------------------------------------------- requests
log "signing $EVENTS events"
python3 "$BENCH/gen_requests.py" "$SECRET" "$EVENTS" "$WORK/requests.txt" >&2

# ---------------------------------------------------------------- nginx
mkdir -p "$WORK/upstream" "$WORK/proxy"
if [ "$ACCESS_LOG" = on ]; then PX_LOG="access_log $WORK/proxy/access.log;"; HG_LEVEL=info
else PX_LOG="access_log off;"; HG_LEVEL="info,hookgate::access=off"; fi
temp_paths() {
  echo "client_body_temp_path $1/body; proxy_temp_path $1/proxy; fastcgi_temp_path $1/fastcgi;"
  echo "uwsgi_temp_path $1/uwsgi; scgi_temp_path $1/scgi;"
}
# The upstream: 204 to everything. Deliveries of the async scenarios go to
# /async and are logged with their delivery id, to check nothing was lost.
cat >"$WORK/upstream/nginx.conf" <<EOF
worker_processes 1;
pid $WORK/upstream/nginx.pid;
error_log $WORK/upstream/error.log warn;
events { worker_connections 8192; }
http {
  $(temp_paths "$WORK/upstream")
  access_log off;
  log_format delivery '\$status \$http_hookgate_delivery_id';
  keepalive_requests 10000000;
  keepalive_timeout 120s;
  client_max_body_size 2m;
  server {
    listen 127.0.0.1:$UP_PORT backlog=4096;
    location /async { access_log $WORK/upstream/delivered.log delivery; return 204; }
    location / { return 204; }
  }
}
EOF
# The peer: a plain reverse proxy with keep-alive to the upstream. Two
# workers, as hookgate's runtime has one worker thread per core.
cat >"$WORK/proxy/nginx.conf" <<EOF
worker_processes auto;
pid $WORK/proxy/nginx.pid;
error_log $WORK/proxy/error.log warn;
events { worker_connections 8192; }
http {
  $(temp_paths "$WORK/proxy")
  $PX_LOG
  keepalive_requests 10000000;
  keepalive_timeout 120s;
  client_max_body_size 1m;
  upstream up { server 127.0.0.1:$UP_PORT; keepalive 128; }
  server {
    listen 127.0.0.1:$PX_PORT backlog=4096;
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF
for d in upstream proxy; do
  "$NGINX" -t -q -c "$WORK/$d/nginx.conf" -g "daemon off;" || die "bad nginx config $WORK/$d/nginx.conf"
  "$NGINX" -c "$WORK/$d/nginx.conf" -g "daemon off;" &
  PIDS+=($!)
  eval "${d^^}_PID=$!"
done
wait_port "$UP_PORT"; wait_port "$PX_PORT"
sleep 0.3
NGINX_IDLE_KIB=$(mem_kib VmRSS "$PROXY_PID")

# ---------------------------------------------------------------- redis
case " $SCENARIOS " in *" 3 "*)
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$WORK" --logfile "$WORK/redis.log" &
  PIDS+=($!)
  wait_port "$REDIS_PORT" ;;
esac

# ---------------------------------------------------------------- postgres
# Scenario 10: a private cluster (the machine's own may be shared), durable
# settings. initdb refuses root, so as root it runs as `postgres`, in a
# directory of its own (WORK is private to root).
PG_PID=""
case " $SCENARIOS " in *" 10 "*)
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  PG_DIR=$(mktemp -d /tmp/hookgate-bench-pg.XXXXXX)
  as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$PG_DIR"
  as_pg "$PG_BIN/initdb" -D "$PG_DIR/data" -A trust -U postgres --no-instructions >/dev/null
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w \
    -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on -c max_connections=200" \
    start >/dev/null
  PG_PID=$(head -n 1 "$PG_DIR/data/postmaster.pid")
  pg_stop() { as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true; rm -rf "$PG_DIR"; }
  trap 'cleanup; pg_stop' EXIT
  PG_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
  wait_port "$PG_PORT" ;;
esac

# ---------------------------------------------------------------- hookgate
hookgate_config() { # scenario -> YAML
  local s=$1 ack=sync fsync=true dedup=off url="/sync" extra="" redis="" conc=""
  case $s in
    1) ;;
    2|7) dedup='{ key: "{json:/id}", backend: local }' ;;
    3) dedup='{ key: "{json:/id}", backend: redis }'
       redis="redis: { url: \"redis://127.0.0.1:$REDIS_PORT/0\" }" ;;
    4|5|6) ack=async url="/async"
       [ "$s" = 5 ] && fsync=false
       [ -n "$HG_CONCURRENCY" ] && conc=", concurrency: $HG_CONCURRENCY"
       # Room for every event of a run: a 503 spool_full is not what is measured.
       extra="max_pending: 10000000" ;;
    10|11) ack=async url="/async"
       [ -n "$HG_CONCURRENCY" ] && conc=", concurrency: $HG_CONCURRENCY"
       extra="max_pending: 10000000" ;;
    *) die "unknown scenario $s" ;;
  esac
  local target="    upstream: { url: \"http://127.0.0.1:$UP_PORT$url\"$conc }"
  if [ "$s" = 11 ]; then
    target="    destinations:
      - { name: http, url: \"http://127.0.0.1:$UP_PORT$url\"$conc }
      - { name: nats, url: \"nats://127.0.0.1:4222\", nats: { subject: \"bench.$FANOUT\" }$conc }
      - { name: amqp, url: \"amqp://guest:guest@127.0.0.1:5672/%2f\", amqp: { exchange: \"$FANOUT\", routing_key: bench }$conc }"
  fi
  cat <<EOF
listen: "127.0.0.1:$HG_PORT"
admin: { listen: "127.0.0.1:$ADMIN_PORT" }
data_dir: "$WORK/hookgate/data"
$( [ "$s" = 10 ] && echo "store: { backend: postgres, postgres: { url: \"$PG_URL\", schema: hookgate_bench, pool_size: $PG_POOL } }" || echo "store: { fsync: $fsync }" )
log: { level: "$HG_LEVEL" }
$redis
routes:
  - name: bench
    path: $HOOK_PATH
    verify: { scheme: trutac, secrets: ["$SECRET"] }
    ack: $ack
    $extra
    dedup: $dedup
    events: { allow: ["*"], ack_only: [] }
$target
EOF
}

HG_PID=""
# Lets hookgate create an empty store (its schema) in DIR/data for a
# scenario's config, to be seeded afterwards.
create_store() { # scenario dir
  local dir="$2"
  mkdir -p "$dir"
  hookgate_config "$1" | sed "s|$WORK/hookgate/data|$dir/data|" >"$dir/config.yaml"
  "$HOOKGATE" serve -c "$dir/config.yaml" 2>"$dir/stderr.log" &
  local pid=$!
  local i
  for i in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$ADMIN_PORT/readyz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  kill -TERM "$pid"; wait "$pid" || true
}

# Scenario 6: a store holding BACKLOG pending deliveries, made once and
# copied for each round.
make_backlog() {
  [ -f "$WORK/backlog/data/hookgate.db" ] && return 0
  log "scenario 6: spooling a backlog of $BACKLOG events"
  create_store 6 "$WORK/backlog"
  python3 "$BENCH/seed_backlog.py" "$WORK/backlog/data/hookgate.db" bench "$BACKLOG" >&2
}

# Scenario 7: two stores holding DEDUP_KEYS and DEDUP_SMALL committed dedup
# keys of the route, made once and copied for each round.
make_dedup_store() { # keys
  local dir="$WORK/dedup-$1"
  [ -f "$dir/data/hookgate.db" ] && return 0
  log "scenario 7: seeding a store with $1 dedup keys"
  create_store 7 "$dir"
  python3 "$BENCH/seed_dedup.py" "$dir/data/hookgate.db" bench "$1" >&2
}

start_hookgate() { # scenario [dedup keys stored, scenario 7]
  rm -rf "$WORK/hookgate"
  mkdir -p "$WORK/hookgate"
  hookgate_config "$1" >"$WORK/hookgate/config.yaml"
  [ "$1" = 3 ] && redis-cli -p "$REDIS_PORT" flushall >/dev/null
  # Scenario 10: an empty schema each round (hookgate migrates it).
  [ "$1" = 10 ] && as_pg "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -qAtc \
    "DROP SCHEMA IF EXISTS hookgate_bench CASCADE" postgres >/dev/null
  if [ "$1" = 6 ]; then
    mkdir -p "$WORK/hookgate/data"
    cp "$WORK/backlog/data/hookgate.db" "$WORK/hookgate/data/"
  fi
  if [ "$1" = 7 ]; then
    mkdir -p "$WORK/hookgate/data"
    cp "$WORK/dedup-${2:-$DEDUP_KEYS}/data/hookgate.db" "$WORK/hookgate/data/"
  fi
  # Write the copy back before the run: otherwise the kernel flushes it (1.2
  # GB for the 10M store) during the measurement, and hookgate's first
  # checkpoint sync waits for all of it.
  if [ "$1" = 6 ] || [ "$1" = 7 ]; then sync "$WORK/hookgate/data/hookgate.db"; fi
  "$HOOKGATE" serve -c "$WORK/hookgate/config.yaml" 2>"$WORK/hookgate/stderr.log" &
  HG_PID=$!
  PIDS+=("$HG_PID")
  local i t0=$SECONDS
  for i in $(seq 1 600); do
    if curl -fsS "http://127.0.0.1:$ADMIN_PORT/readyz" >/dev/null 2>&1; then
      [ $((SECONDS - t0)) -lt 2 ] || log "hookgate ready after ~$((SECONDS - t0)) s"
      return 0
    fi
    kill -0 "$HG_PID" 2>/dev/null || die "hookgate exited: $(tail -5 "$WORK/hookgate/stderr.log")"
    sleep 0.1
  done
  die "hookgate not ready: $(tail -5 "$WORK/hookgate/stderr.log")"
}
stop_hookgate() {
  kill -TERM "$HG_PID" 2>/dev/null || true
  wait "$HG_PID" 2>/dev/null || true
  HG_PID=""
}

# Async: wait for the spool to empty, then compare what was acknowledged
# with what the upstream received. Prints "drain_seconds acked delivered_ids
# pending_at_load_end".
check_delivery() {
  local start=$SECONDS pending left
  left=$(metric 'hookgate_spool_pending{route="bench"}')
  while :; do
    pending=$(metric 'hookgate_spool_pending{route="bench"}')
    [ "${pending%.*}" = 0 ] && break
    [ $((SECONDS - start)) -ge "$DRAIN_TIMEOUT" ] && break
    sleep 0.2
  done
  local drain=$((SECONDS - start))
  local acked delivered
  acked=$(metric 'hookgate_requests_total{route="bench",outcome="accepted"}')
  delivered=$(awk '$1 == 204 && $2 != "-" { print $2 }' "$WORK/upstream/delivered.log" | sort -u | wc -l)
  echo "$drain ${acked%.*} $delivered ${left%.*}"
}

profile_hookgate() { # scenario: one extra, unmeasured run under perf
  local s=$1 d
  d=$(secs "$DURATION")
  if [ "$s" = 11 ]; then
    FANOUT="bench_fanout_perf_$$"
    $BROKERS setup "$FANOUT"
  fi
  start_hookgate "$s"
  : >"$WORK/upstream/delivered.log"
  log "scenario $s: profiling hookgate (perf, ${d}s)"
  perf record -q -F 999 -e cpu-clock -p "$HG_PID" -o "$WORK/perf-s$s.data" -- sleep "$d" \
    >/dev/null 2>&1 &
  local perf_pid=$!
  run_wrk "$HG_PORT" "s$s-perf" >/dev/null
  wait "$perf_pid" || true
  [ "$s" = 4 ] || [ "$s" = 5 ] || [ "$s" = 11 ] && check_delivery >/dev/null
  stop_hookgate
  [ "$s" = 11 ] && $BROKERS teardown "$FANOUT"
  local sort
  for sort in comm dso dso,symbol comm,symbol; do
    echo "== by $sort"
    perf report -i "$WORK/perf-s$s.data" --no-children -g none --sort "$sort" --stdio 2>/dev/null \
      | grep -E '^ +[0-9.]+%' | sed -E 's/[[:space:]]+(-[[:space:]]+-)?[[:space:]]*$//' | head -30
  done >"$WORK/perf-s$s.txt" || true
  log "profile: $WORK/perf-s$s.txt"
}

# ---------------------------------------------------------------- run
log "work dir $WORK; $ROUNDS rounds x $DURATION, $CONNECTIONS connections, $THREADS wrk thread(s)"
log "warming up nginx"
DURATION=2s run_wrk "$PX_PORT" warmup >/dev/null

RESULTS="$WORK/results.tsv"
printf 'scenario\tround\ttarget\trps\tp50_ms\tp99_ms\tnon2xx\terrors\twraps\tpeak_rss_kib\tidle_rss_kib\tdrain_s\tacked\tdelivered\tcpu_us_per_req\tpending_at_end\tcommits\tcommit_ms_avg\tcommits_over_100ms\tpostgres_cpu_us_per_req\n' >"$RESULTS"
for s in $SCENARIOS; do
  [ "$s" = 6 ] && make_backlog
  [ "$s" = 7 ] && make_dedup_store "$DEDUP_SMALL" && make_dedup_store "$DEDUP_KEYS"
  for r in $(seq 1 "$ROUNDS"); do
    log "scenario $s round $r: nginx"
    t0=$(cpu_ticks "$PROXY_PID")
    read -r rps p50 p99 non2xx errors wraps requests < <(run_wrk "$PX_PORT" "s$s-r$r-nginx")
    cpu=$(us_per_req $(($(cpu_ticks "$PROXY_PID") - t0)) "$requests")
    printf '%s\t%s\tnginx\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\t\t\t%s\t\t\t\n' "$s" "$r" "$rps" "$p50" "$p99" \
      "$non2xx" "$errors" "$wraps" "$(mem_kib VmHWM "$PROXY_PID")" "$NGINX_IDLE_KIB" "$cpu" >>"$RESULTS"

    # Scenario 7 measures hookgate twice a round: on the small store
    # ("hookgate") and on the big one ("hookgate-big"), alternating which
    # goes first.
    targets=hookgate
    if [ "$s" = 7 ]; then
      if [ $((r % 2)) = 1 ]; then targets="hookgate hookgate-big"; else targets="hookgate-big hookgate"; fi
    fi
    for target in $targets; do
    keys=""
    [ "$s" = 7 ] && keys=$DEDUP_SMALL && [ "$target" = hookgate-big ] && keys=$DEDUP_KEYS
    log "scenario $s round $r: $target${keys:+ ($keys dedup keys stored)}"
    if [ "$s" = 11 ]; then
      FANOUT="bench_fanout_${r}_$$"
      $BROKERS setup "$FANOUT"
    fi
    start_hookgate "$s" $keys
    : >"$WORK/upstream/delivered.log"
    sleep 0.5
    idle=$(mem_kib VmRSS "$HG_PID")
    t0=$(cpu_ticks "$HG_PID")
    pg0=0; [ -n "$PG_PID" ] && pg0=$(cpu_ticks "$PG_PID")
    read -r rps p50 p99 non2xx errors wraps requests < <(run_wrk "$HG_PORT" "s$s-r$r-$target")
    peak=$(mem_kib VmHWM "$HG_PID")
    drain="" acked="" delivered="" left=""
    if [ "$s" = 6 ]; then
      left=$(metric 'hookgate_spool_pending{route="bench"}')
      acked=$(metric 'hookgate_requests_total{route="bench",outcome="accepted"}')
      left=${left%.*} acked=${acked%.*}
    fi
    if [ "$s" = 4 ] || [ "$s" = 5 ] || [ "$s" = 10 ] || [ "$s" = 11 ]; then
      # Delivery included: the CPU an event costs until it is delivered.
      read -r drain acked delivered left < <(check_delivery)
      peak=$(mem_kib VmHWM "$HG_PID")
    fi
    if [ "$s" = 11 ]; then
      # Delivered means every destination has it: the least of the three.
      read -r in_stream in_queue < <($BROKERS count "$FANOUT")
      log "scenario 11 round $r: acked $acked; http $delivered, nats $in_stream, amqp $in_queue"
      for n in $in_stream $in_queue; do [ "$n" -lt "$delivered" ] && delivered=$n; done
      $BROKERS teardown "$FANOUT"
    fi
    cpu=$(us_per_req $(($(cpu_ticks "$HG_PID") - t0)) "$requests")
    pg_cpu=""
    [ "$s" = 10 ] && pg_cpu=$(us_per_req $(($(cpu_ticks "$PG_PID") - pg0)) "$requests")
    commits=$(metric hookgate_store_commit_duration_seconds_count)
    commit_ms=$(awk -v s="$(metric hookgate_store_commit_duration_seconds_sum)" -v n="$commits" \
      'BEGIN { if (n > 0) printf "%.2f", s * 1000 / n }')
    # Group commits slower than 100 ms (a stalled writer holds every
    # request waiting on it): the histogram's count minus its le=0.1 bucket.
    slow=$(awk -v n="$commits" -v b="$(metric 'hookgate_store_commit_duration_seconds_bucket{le="0.1"}')" \
      'BEGIN { printf "%d", n - b }')
    # Everything hookgate counted (histograms included), for a closer look.
    curl -fsS "http://127.0.0.1:$ADMIN_PORT/metrics" >"$WORK/metrics-s$s-r$r-$target.txt" 2>/dev/null || true
    dups=$(metric 'hookgate_dedup_total{route="bench",result="duplicate"}')
    [ "${dups%.*}" = 0 ] || log "WARNING: $dups duplicates: raise EVENTS"
    stop_hookgate
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$s" "$r" "$target" "$rps" "$p50" "$p99" \
      "$non2xx" "$errors" "$wraps" "$peak" "$idle" "$drain" "$acked" "$delivered" "$cpu" "$left" "${commits%.*}" "$commit_ms" "$slow" "$pg_cpu" >>"$RESULTS"
    tail -1 "$RESULTS" | cut -f3-6,12- | sed 's/^/    /' >&2
    done
  done
  [ "$PERF" = 1 ] && profile_hookgate "$s"
done

# ---------------------------------------------------------------- report
col() { # scenario target column -> median over rounds
  awk -F'\t' -v s="$1" -v t="$2" -v c="$3" 'NR > 1 && $1 == s && $3 == t { print $c }' "$RESULTS" | median
}
colmax() {
  awk -F'\t' -v s="$1" -v t="$2" -v c="$3" 'NR > 1 && $1 == s && $3 == t && $c > m { m = $c } END { print m + 0 }' "$RESULTS"
}
colsum() {
  awk -F'\t' -v s="$1" -v t="$2" -v c="$3" 'NR > 1 && $1 == s && $3 == t { n += $c } END { print n + 0 }' "$RESULTS"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
name() {
  case $1 in
    1) echo "1 sync, verify, no dedup" ;; 2) echo "2 sync, verify, local dedup" ;;
    3) echo "3 sync, verify, redis dedup" ;; 4) echo "4 async, fsync on" ;;
    5) echo "5 async, fsync off" ;;
    6) echo "6 async, fsync on, $BACKLOG backlog" ;;
    7) echo "7 sync, local dedup, $DEDUP_SMALL keys stored" ;;
    10) echo "10 async, PostgreSQL store" ;;
    11) echo "11 async, fan-out: HTTP + NATS + RabbitMQ" ;;
  esac
}

# Per-round ratio hookgate/nginx (or target a / target b) of column c,
# "min-max" over the rounds.
round_ratios() { # scenario column [a b]
  awk -F'\t' -v s="$1" -v c="$2" -v a="${3:-hookgate}" -v b="${4:-nginx}" 'NR > 1 && $1 == s { v[$2 " " $3] = $c; r[$2] = 1 }
    END { for (k in r) if (v[k " " b] > 0) { x = v[k " " a] / v[k " " b]
            if (lo == "" || x < lo) lo = x; if (x > hi) hi = x }
          printf "%.2f-%.2f", lo, hi }' "$RESULTS"
}

echo
echo "hookgate vs nginx proxy_pass: medians of $ROUNDS interleaved rounds, $DURATION each," \
  "$CONNECTIONS connections, $THREADS wrk thread(s), ~1.5 KB signed bodies, access log $ACCESS_LOG"
echo "$(nproc) cores, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo), kernel $(uname -r)"
echo
echo "| scenario | nginx req/s | hookgate req/s | ratio (per round) | nginx p50 ms | hookgate p50 ms | nginx p99 ms | hookgate p99 ms | p99 ratio | nginx CPU µs/req | hookgate CPU µs/req | CPU ratio | nginx peak RSS MiB | hookgate idle / peak RSS MiB | non-2xx nginx/hookgate |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for s in $SCENARIOS; do
  nr=$(col "$s" nginx 4); hr=$(col "$s" hookgate 4)
  n50=$(col "$s" nginx 5); h50=$(col "$s" hookgate 5)
  n99=$(col "$s" nginx 6); h99=$(col "$s" hookgate 6)
  nc=$(col "$s" nginx 15); hc=$(col "$s" hookgate 15)
  printf '| %s | %.0f | %.0f | %s (%s) | %.2f | %.2f | %.2f | %.2f | %s | %.1f | %.1f | %s | %s | %s / %s | %s/%s |\n' \
    "$(name "$s")" "$nr" "$hr" "$(ratio "$hr" "$nr")" "$(round_ratios "$s" 4)" "$n50" "$h50" "$n99" "$h99" \
    "$(ratio "$h99" "$n99")" "$nc" "$hc" "$(ratio "$hc" "$nc")" \
    "$(mib "$(colmax "$s" nginx 10)")" "$(mib "$(colmax "$s" hookgate 11)")" "$(mib "$(colmax "$s" hookgate 10)")" \
    "$(colsum "$s" nginx 7)" "$(colsum "$s" hookgate 7)"
done
case " $SCENARIOS " in *" 4 "*|*" 5 "*|*" 6 "*|*" 10 "*|*" 11 "*)
  echo
  echo "Async delivery (every round; CPU µs/req above includes delivering the event):"
  echo
  echo "| scenario | round | acked | delivered (distinct ids at upstream; 11: the least of HTTP, stream, queue) | pending when load stopped | drain s | drain rate ev/s | store commits | avg commit ms |"
  echo "|---|---|---|---|---|---|---|---|---|"
  awk -F'\t' 'NR > 1 && $3 == "hookgate" && ($1 == 4 || $1 == 5 || $1 == 6 || $1 == 10 || $1 == 11) {
      rate = ($12 > 0) ? sprintf("%.0f", $16 / $12) : "-"
      check = ($14 == "") ? "not checked" : ($13 == $14 ? $14 : $14 " MISMATCH")
      printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $13, check, $16, $12, rate, $17, $18
    }' "$RESULTS" ;;
esac
case " $SCENARIOS " in *" 7 "*)
  echo
  echo "Scenario 7: hookgate with $DEDUP_KEYS dedup keys stored vs $DEDUP_SMALL, same run, interleaved (ratio big / small; target <= 1.2x cost):"
  echo
  echo "| store | req/s | p50 ms | p99 ms | CPU µs/req | idle / peak RSS MiB | non-2xx | commits over 100 ms (all rounds) |"
  echo "|---|---|---|---|---|---|---|---|"
  for t in hookgate hookgate-big; do
    k=$DEDUP_SMALL; [ "$t" = hookgate-big ] && k=$DEDUP_KEYS
    printf '| %s keys | %.0f | %.2f | %.2f | %.1f | %s / %s | %s | %s |\n' "$k" "$(col 7 "$t" 4)" "$(col 7 "$t" 5)" \
      "$(col 7 "$t" 6)" "$(col 7 "$t" 15)" "$(mib "$(colmax 7 "$t" 11)")" "$(mib "$(colmax 7 "$t" 10)")" "$(colsum 7 "$t" 7)" \
      "$(colsum 7 "$t" 19)"
  done
  printf '| ratio big / small (per round) | %s (%s) | %s | %s (%s) | %s (%s) | | | |\n' \
    "$(ratio "$(col 7 hookgate-big 4)" "$(col 7 hookgate 4)")" "$(round_ratios 7 4 hookgate-big hookgate)" \
    "$(ratio "$(col 7 hookgate-big 5)" "$(col 7 hookgate 5)")" \
    "$(ratio "$(col 7 hookgate-big 6)" "$(col 7 hookgate 6)")" "$(round_ratios 7 6 hookgate-big hookgate)" \
    "$(ratio "$(col 7 hookgate-big 15)" "$(col 7 hookgate 15)")" "$(round_ratios 7 15 hookgate-big hookgate)" ;;
esac
case " $SCENARIOS " in *" 10 "*)
  hc=$(col 10 hookgate 15); pc=$(col 10 hookgate 20)
  echo
  echo "Scenario 10, CPU per acknowledged and delivered event: hookgate $hc µs, PostgreSQL server $pc µs."
  echo "One primary core serves about $(awk -v p="$pc" 'BEGIN { if (p > 0) printf "%.0f", 1e6 / p; else print "-" }') events/s;"
  echo "a replica at the rate it reached here ($(col 10 hookgate 4) ev/s) needs $(awk -v p="$pc" -v r="$(col 10 hookgate 4)" 'BEGIN { printf "%.2f", p * r / 1e6 }') primary cores."
  ;;
esac
# Copies only matter to hookgate (dedup answers them without forwarding).
wraps=$(awk -F'\t' 'NR > 1 && $3 ~ /^hookgate/ { n += $9 } END { print n + 0 }' "$RESULTS")
[ "$wraps" = 0 ] || echo "WARNING: wrk ran out of distinct events $wraps times against hookgate (raise EVENTS): those runs sent copies"
echo
echo "raw results: $RESULTS"
