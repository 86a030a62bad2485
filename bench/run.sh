#!/usr/bin/env bash
# hookgate vs nginx proxy_pass, interleaved, on 127.0.0.1 (issues 8, 17).
#
#   bench/run.sh                                   # the performance issue's scenarios, defaults
#   DURATION=5s ROUNDS=1 SCENARIOS="1 4" bench/run.sh
#   PERF=1 SCENARIOS="1 4" bench/run.sh            # plus one profiled hookgate run each
#   ROUNDS=1 DURATION=3s REST_SECONDS=10 SCENARIOS="8 9 rest" bench/run.sh  # a quick look at the edge
#
# Starts an nginx upstream that answers 204, an nginx proxy_pass in front of
# it (the peer: no verification, keep-alive to the upstream) and hookgate in
# front of the same upstream, then drives them with wrk for the same duration
# and connections, alternating nginx, hookgate, nginx, hookgate... for ROUNDS
# rounds per scenario, and prints the medians and the hookgate/nginx ratios,
# then a "Targets" table: each target of the performance issue (17) whose
# scenario ran, what was measured and whether it was met.
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
#   8  TLS at the edge, a new connection per request (senders such as
#      GitHub and Stripe open one per delivery): hookgate terminating TLS
#      (rustls, its `tls:` block) against nginx terminating TLS (OpenSSL,
#      its own TLS server in front of the same upstream), both with wrk's
#      `Connection: close` and the same ECDSA P-256 certificate and key,
#      made with openssl for the run in WORK; otherwise as 1. wrk reconnects
#      after each answer; by default each connection does a full handshake
#      (bench/noresume.c, preloaded into wrk, drops the session wrk would
#      offer again; S8_RESUME=1 lets it resume). Checked and reported:
#      TCP connections opened per request (the kernel's TcpPassiveOpens,
#      both targets) and nginx's handshakes, full or resumed (its log).
#      wrk starts a request's clock once the handshake is done: p50/p99
#      leave the handshake out, req/s includes it.
#   9  many senders, few events each: S9_CONNECTIONS (2000) connections,
#      each sending an event every ~S9_INTERVAL_MS (500 ms, wrk's delay()
#      picks 0.5-1.5x at random), so 4000 events/s offered; otherwise as 1.
#      The open-files limit is raised for it; hookgate's default
#      limits.max_connections (10000) admits 2000 (the config sets it only
#      when S9_CONNECTIONS is larger). Reported: p99 and peak RSS.
#   10 ack: async on PostgreSQL
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
#   rest  cost at rest: hookgate with REST_ROUTES (50) routes and no
#      traffic, once per config: `async` (the routes of 4, SQLite store)
#      and `sync` (the routes of 1). After REST_SETTLE (5 s) from ready it
#      counts, over REST_SECONDS (30 s), each thread's wake-ups
#      (voluntary context switches, /proc/PID/task/*/status) and CPU
#      time (schedstat), and takes the RSS at the end; nothing touches
#      hookgate meanwhile. Prints every thread that woke, by name and
#      rate, so the timers can be named (all of tokio's threads, workers
#      and blocking pool alike, are called tokio-rt-worker); nginx (both,
#      idle meanwhile) is measured over the same window for reference. A
#      config that misses REST_WAKE_MAX is measured again with one route,
#      which splits its wake-ups into a part per route and a fixed part.
#      Not interleaved, not repeated per round.
# hookgate is restarted with an empty data_dir (and Redis flushed) for each
# round, so every round's event ids are new to it.
#
# Settings (environment):
#   DURATION=10s  ROUNDS=3  CONNECTIONS=32  THREADS=1 (wrk threads)
#   SCENARIOS="1 2 3 4 5 8 9 10 rest"  EVENTS=400000 (distinct signed events per wrk run)
#   DRAIN_TIMEOUT=120 (s, async: wait for the spool to empty)
#   ACCESS_LOG=on (both log every request: nginx to a file, hookgate's
#   access log to stderr, redirected to a file; `off` disables both)
#   BASE_PORT=18100  WORK=/tmp/hookgate-bench.XXXX  PERF=0  NO_BUILD=0
#   HG_CONCURRENCY= (async: upstream.concurrency; unset = hookgate's default)
#   BACKLOG=1000000 (scenario 6)  DEDUP_KEYS=10000000 DEDUP_SMALL=1000 (scenario 7)
#   PG_POOL=16 (scenario 10: store.postgres.pool_size)
#   S8_RESUME=0 (scenario 8: 1 lets wrk resume TLS sessions)
#   S9_CONNECTIONS=2000  S9_INTERVAL_MS=500 (scenario 9)
#   REST_ROUTES=50  REST_SECONDS=30  REST_SETTLE=5  REST_CONFIGS="async sync"
#   REST_WAKE_MAX=1 (rest: wake-ups per second, all threads together, that
#   still meet the target: "none but timers you can name")
# Ports: BASE_PORT+1 to +7. The defaults finish in about 15 minutes on 2
# cores (without the build). Ctrl-C stops everything the script started at
# once; a SIGTERM to the script alone takes effect when the current wrk run
# ends.
#
# Needs nginx, wrk, redis-server (scenario 3), PostgreSQL's server binaries
# (10), openssl and a C compiler (8), python3, cargo; installs the Debian
# packages when missing and run as root. Traffic stays on 127.0.0.1.
set -euo pipefail

DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-1}
SCENARIOS=${SCENARIOS:-"1 2 3 4 5 8 9 10 rest"}
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
S8_RESUME=${S8_RESUME:-0}
S9_CONNECTIONS=${S9_CONNECTIONS:-2000}
S9_INTERVAL_MS=${S9_INTERVAL_MS:-500}
REST_ROUTES=${REST_ROUTES:-50}
REST_SECONDS=${REST_SECONDS:-30}
REST_SETTLE=${REST_SETTLE:-5}
REST_CONFIGS=${REST_CONFIGS:-"async sync"}
REST_WAKE_MAX=${REST_WAKE_MAX:-1}

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
PXS_PORT=$((BASE_PORT + 7))
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
case " $SCENARIOS " in *" 8 "*)
  command -v openssl >/dev/null || need+=(openssl)
  command -v cc >/dev/null || need+=(gcc libc6-dev) ;;
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
# A signal ends the script through exit, so the EXIT trap (which PostgreSQL's
# stop joins) runs on Ctrl-C and kill too. The servers ignore the terminal's
# SIGINT (background jobs of a script do): cleanup stops them.
trap 'exit 130' INT
trap 'exit 143' TERM
# A sleep that a signal interrupts (bash runs a trap only once a foreground
# command is done; wrk's runs are at most DURATION).
pause() { # seconds
  sleep "$1" &
  PIDS+=($!)
  wait "$!"
}

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
per_req() { awk -v a="$1" -v n="$2" 'BEGIN { if (n > 0) printf "%.3f", a / n; else print 0 }'; }
has() { case " $SCENARIOS " in *" $1 "*) return 0 ;; esac; return 1; }
verdict() { # value >=|<= limit -> met | missed
  awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN {
    if (v == "" || v == "-") { print "no data"; exit }
    ok = (op == ">=") ? (v + 0 >= l + 0) : (v + 0 <= l + 0); print ok ? "met" : "missed" }'
}

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

# How wrk drives a scenario: connections, scheme, extra headers, the pause
# between a connection's requests, a library to preload. Set by wrk_mode.
WRK_CONNS=$CONNECTIONS WRK_SCHEME=http WRK_HOST=127.0.0.1 WRK_HEADER="" WRK_DELAY_MS="" WRK_PRELOAD=""
wrk_mode() { # scenario
  WRK_CONNS=$CONNECTIONS WRK_SCHEME=http WRK_HOST=127.0.0.1 WRK_HEADER="" WRK_DELAY_MS="" WRK_PRELOAD=""
  case $1 in
    # wrk sends the URL's host as SNI: a name, as senders do (an address
    # there is not allowed, and rustls logs a warning for each).
    8) WRK_SCHEME=https WRK_HOST=localhost WRK_HEADER="Connection: close" WRK_PRELOAD=${S8_PRELOAD:-} ;;
    9) WRK_CONNS=$S9_CONNECTIONS WRK_DELAY_MS=$S9_INTERVAL_MS ;;
  esac
}

# The kernel's count of accepted TCP connections (all of this network
# namespace: other programs' count too, so a check, not a measurement).
passive_opens() {
  awk '$1 == "Tcp:" && $2 ~ /^[0-9]+$/ { print $7 }' /proc/net/snmp
}

run_wrk() { # port label -> parsed result line; raw output kept in $WORK
  local port=$1 label=$2 out="$WORK/wrk-$2.txt" pre=() hdr=()
  if [ -n "$WRK_PRELOAD" ]; then pre=(LD_PRELOAD="$WRK_PRELOAD"); fi
  if [ -n "$WRK_HEADER" ]; then hdr=(-H "$WRK_HEADER"); fi
  env "${pre[@]}" BENCH_REQUESTS="$WORK/requests.txt" BENCH_THREADS="$THREADS" \
    BENCH_PATH="$HOOK_PATH" BENCH_DELAY_MS="$WRK_DELAY_MS" \
    wrk -t"$THREADS" -c"$WRK_CONNS" -d"$DURATION" --timeout 10s --latency "${hdr[@]}" \
    -s "$BENCH/trutac.lua" "$WRK_SCHEME://$WRK_HOST:$port$HOOK_PATH" >"$out" 2>&1 \
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

# ---------------------------------------------------------------- TLS, scenario 8
# One ECDSA P-256 certificate and key for both servers, made for this run.
case " $SCENARIOS " in *" 8 "*)
  getent ahosts localhost | awk '{ print $1 }' | grep -qx 127.0.0.1 \
    || die "scenario 8 needs localhost to resolve to 127.0.0.1"
  mkdir -p "$WORK/tls"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$WORK/tls/key.pem" -out "$WORK/tls/cert.pem" 2>/dev/null \
    || die "openssl could not make a certificate"
  S8_PRELOAD=""
  if [ "$S8_RESUME" != 1 ]; then
    cc -shared -fPIC -O2 -o "$WORK/tls/noresume.so" "$BENCH/noresume.c" -ldl \
      || die "cannot build bench/noresume.c"
    S8_PRELOAD="$WORK/tls/noresume.so"
  fi ;;
esac

# ---------------------------------------------------------------- files, scenario 9
# Each connection is a file descriptor in wrk, nginx (two, with its
# upstream's) and hookgate, which inherit this limit.
case " $SCENARIOS " in *" 9 "*)
  want=$((S9_CONNECTIONS * 2 + 1024))
  [ "$(ulimit -n)" -ge "$want" ] || ulimit -n "$want" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
  [ "$(ulimit -n)" -ge "$want" ] || die "scenario 9 needs $want open files, the hard limit is $(ulimit -Hn)" ;;
esac

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
# Scenario 8's peer: the same proxy terminating TLS. Its log says per request
# which connection carried it and whether the handshake resumed a session,
# to check that every request had a connection and a handshake of its own.
tls_server() {
  case " $SCENARIOS " in *" 8 "*) ;; *) return 0 ;; esac
  local log="access_log off;"
  [ "$ACCESS_LOG" = on ] && log="access_log $WORK/proxy/tls.log tls;"
  cat <<EOT
  log_format tls '\$connection \$connection_requests \$ssl_session_reused \$ssl_protocol \$ssl_cipher \$ssl_curve \$status';
  server {
    listen 127.0.0.1:$PXS_PORT ssl backlog=4096;
    ssl_certificate $WORK/tls/cert.pem;
    ssl_certificate_key $WORK/tls/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    $log
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
EOT
}
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
$(tls_server)
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
  local s=$1 ack=sync fsync=true dedup=off url="/sync" extra="" redis="" conc="" top="" routes=1
  case $s in
    1) ;;
    8) top="tls: { cert_file: \"$WORK/tls/cert.pem\", key_file: \"$WORK/tls/key.pem\" }" ;;
    9) [ "$S9_CONNECTIONS" -lt 10000 ] || top="limits: { max_connections: $((S9_CONNECTIONS + 100)) }" ;;
    # Cost at rest: REST_ROUTES routes like scenario 1's or 4's.
    rest-sync) routes=$REST_N ;;
    rest-async) routes=$REST_N ack=async url="/async" ;;
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
$top
routes:
EOF
  local i name=bench path=$HOOK_PATH
  for i in $(seq 1 "$routes"); do
    [ "$routes" = 1 ] || name=$(printf 'bench-%02d' "$i") path=$(printf '%s-%02d' "$HOOK_PATH" "$i")
    cat <<EOF
  - name: $name
    path: $path
    verify: { scheme: trutac, secrets: ["$SECRET"] }
    ack: $ack
    $extra
    dedup: $dedup
    events: { allow: ["*"], ack_only: [] }
$target
EOF
  done
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

# Scenario 8: does the server resume a session when the client offers one?
# Two connections from Python, the second offering the first's session.
# Prints "yes|no protocol cipher".
tls_probe() { # port
  python3 - "$1" <<'EOF'
import socket, ssl, sys
ctx = ssl.create_default_context()
ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
def once(session=None):
    with socket.create_connection(("127.0.0.1", int(sys.argv[1]))) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost", session=session) as s:
            s.sendall(b"GET /probe HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            try:
                while s.recv(65536):
                    pass
            except (ssl.SSLEOFError, ConnectionResetError):
                pass
            return s.session, s.session_reused, s.version(), s.cipher()[0]
first = once()[0]
_, reused, version, cipher = once(first)
print("yes" if reused else "no", version, cipher)
EOF
}
S8_PROBE_NGINX="" S8_PROBE_HG=""
s8_probe() {
  start_hookgate 8
  S8_PROBE_NGINX=$(tls_probe "$PXS_PORT" || echo "failed - -")
  S8_PROBE_HG=$(tls_probe "$HG_PORT" || echo "failed - -")
  stop_hookgate
  [ ! -f "$WORK/proxy/tls.log" ] || : >"$WORK/proxy/tls.log"
  log "scenario 8: resumes an offered session, protocol, cipher: nginx $S8_PROBE_NGINX; hookgate $S8_PROBE_HG"
}

# Cost at rest. Per thread of the processes and their direct children
# (nginx's workers): "pid<TAB>name<TAB>voluntary context switches<TAB>CPU
# ns". A thread that sleeps and is woken switches out voluntarily once per
# wake-up.
thread_stats() { # pid...
  local pid p t
  for pid in "$@"; do
    for p in $pid $(pgrep -P "$pid" || true); do
      for t in /proc/"$p"/task/*; do
        awk -v id="${t##*/}" -v name="$(cat "$t/comm" 2>/dev/null)" \
          -v cpu="$(awk '{ print $1 }' "$t/schedstat" 2>/dev/null)" \
          '$1 == "voluntary_ctxt_switches:" { printf "%s\t%s\t%s\t%s\n", id, name, $2, cpu + 0 }' \
          "$t/status" 2>/dev/null || true
      done
    done
  done
}
# Two thread_stats snapshots -> per thread "tid name wake-ups per_s
# cpu_us_per_s note", most wake-ups first; a thread that started in the
# window counts all its wake-ups, one that ended is listed without.
thread_delta() { # before after seconds
  awk -F'\t' -v secs="$3" '
    NR == FNR { w[$1] = $3; c[$1] = $4; n[$1] = $2; next }
    { seen[$1] = 1; dw = $3 - w[$1]; dc = $4 - c[$1]
      printf "%s\t%s\t%d\t%.2f\t%.1f\t%s\n", $1, $2, dw, dw / secs, dc / 1000 / secs, ($1 in w) ? "" : "started" }
    END { for (t in w) if (!(t in seen)) printf "%s\t%s\t0\t0\t0\tended\n", t, n[t] }' "$1" "$2" \
    | sort -t$'\t' -k3,3nr -k1,1n
}
REST="$WORK/rest.tsv"
REST_N=$REST_ROUTES
run_rest() { # async|sync routes
  local c=$1 t0 secs f="$WORK/rest-$1-$2"
  REST_N=$2
  start_hookgate "rest-$c"
  log "rest, $c: $REST_N routes, no traffic; counting wake-ups for ${REST_SECONDS}s after ${REST_SETTLE}s"
  pause "$REST_SETTLE"
  thread_stats "$HG_PID" >"$f-hookgate.0"
  thread_stats "$PROXY_PID" "$UPSTREAM_PID" >"$f-nginx.0"
  t0=$EPOCHREALTIME
  pause "$REST_SECONDS"
  thread_stats "$HG_PID" >"$f-hookgate.1"
  thread_stats "$PROXY_PID" "$UPSTREAM_PID" >"$f-nginx.1"
  secs=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }')
  local rss hwm
  rss=$(mem_kib VmRSS "$HG_PID") hwm=$(mem_kib VmHWM "$HG_PID")
  stop_hookgate
  local who
  for who in hookgate nginx; do
    thread_delta "$f-$who.0" "$f-$who.1" "$secs" >"$f-$who.tsv"
    awk -F'\t' -v c="$c" -v n="$REST_N" -v who="$who" -v secs="$secs" -v rss="$rss" -v hwm="$hwm" '
      { w += $3; cpu += $5; k++; if ($3 > 0) woke++ }
      END { if (who != "hookgate") rss = hwm = ""
            printf "%s\t%s\t%s\t%.3f\t%d\t%.2f\t%.1f\t%d\t%d\t%s\t%s\n", c, n, who, secs, w, w / secs, cpu, k, woke, rss, hwm }' \
      "$f-$who.tsv" >>"$REST"
  done
  tail -2 "$REST" | cut -f3,6,7,10 | sed 's/^/    /' >&2
}
rest_rate() { # config routes -> hookgate's wake-ups per second
  awk -F'\t' -v c="$1" -v n="$2" '$1 == c && $2 == n && $3 == "hookgate" { print $6 }' "$REST"
}
# Each config with REST_ROUTES routes; when that misses the target, once more
# with one route, which splits the wake-ups into a part per route (timers of
# each route's own) and a fixed part.
run_rest_all() {
  local c
  for c in $REST_CONFIGS; do
    run_rest "$c" "$REST_ROUTES"
    if [ "$REST_ROUTES" != 1 ] && [ "$(verdict "$(rest_rate "$c" "$REST_ROUTES")" '<=' "$REST_WAKE_MAX")" = missed ]; then
      run_rest "$c" 1
    fi
  done
}

# ---------------------------------------------------------------- run
log "work dir $WORK; $ROUNDS rounds x $DURATION, $CONNECTIONS connections, $THREADS wrk thread(s)"
log "warming up nginx"
DURATION=2s run_wrk "$PX_PORT" warmup >/dev/null

RESULTS="$WORK/results.tsv"
printf 'config\troutes\ttarget\tseconds\twakeups\twakeups_per_s\tcpu_us_per_s\tthreads\tthreads_woken\trss_kib\thwm_kib\n' >"$REST"
printf 'scenario\tround\ttarget\trps\tp50_ms\tp99_ms\tnon2xx\terrors\twraps\tpeak_rss_kib\tidle_rss_kib\tdrain_s\tacked\tdelivered\tcpu_us_per_req\tpending_at_end\tcommits\tcommit_ms_avg\tcommits_over_100ms\tpostgres_cpu_us_per_req\tconns_per_req\n' >"$RESULTS"
for s in $SCENARIOS; do
  if [ "$s" = rest ]; then run_rest_all; continue; fi
  [ "$s" = 6 ] && make_backlog
  [ "$s" = 7 ] && make_dedup_store "$DEDUP_SMALL" && make_dedup_store "$DEDUP_KEYS"
  wrk_mode "$s"
  peer_port=$PX_PORT
  [ "$s" = 8 ] && peer_port=$PXS_PORT && s8_probe
  for r in $(seq 1 "$ROUNDS"); do
    log "scenario $s round $r: nginx"
    t0=$(cpu_ticks "$PROXY_PID") o0=$(passive_opens)
    read -r rps p50 p99 non2xx errors wraps requests < <(run_wrk "$peer_port" "s$s-r$r-nginx")
    cpu=$(us_per_req $(($(cpu_ticks "$PROXY_PID") - t0)) "$requests")
    opens=$(per_req $(($(passive_opens) - o0)) "$requests")
    printf '%s\t%s\tnginx\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\t\t\t%s\t\t\t\t\t\t%s\n' "$s" "$r" "$rps" "$p50" "$p99" \
      "$non2xx" "$errors" "$wraps" "$(mem_kib VmHWM "$PROXY_PID")" "$NGINX_IDLE_KIB" "$cpu" "$opens" >>"$RESULTS"

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
    t0=$(cpu_ticks "$HG_PID") o0=$(passive_opens)
    pg0=0; [ -n "$PG_PID" ] && pg0=$(cpu_ticks "$PG_PID")
    read -r rps p50 p99 non2xx errors wraps requests < <(run_wrk "$HG_PORT" "s$s-r$r-$target")
    opens=$(per_req $(($(passive_opens) - o0)) "$requests")
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
    # What a later look needs from hookgate's log (the next start removes
    # it): every line but the 2xx access lines, the first 200.
    awk '!/hookgate::access: / || !/ status=2[0-9][0-9] /' "$WORK/hookgate/stderr.log" | head -n 200 \
      >"$WORK/hookgate-s$s-r$r-$target.log" || true
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$s" "$r" "$target" "$rps" "$p50" "$p99" \
      "$non2xx" "$errors" "$wraps" "$peak" "$idle" "$drain" "$acked" "$delivered" "$cpu" "$left" "${commits%.*}" "$commit_ms" "$slow" "$pg_cpu" "$opens" >>"$RESULTS"
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
    8) echo "8 sync, verify, TLS, a connection per request" ;;
    9) echo "9 sync, verify, $S9_CONNECTIONS connections, 1 event per ~$S9_INTERVAL_MS ms each" ;;
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

# Rest: with one route measured too, "X/s per route + Y/s fixed".
rest_split() { # config
  local one many
  one=$(rest_rate "$1" 1); many=$(rest_rate "$1" "$REST_ROUTES")
  [ -n "$one" ] && [ "$REST_ROUTES" != 1 ] || return 0
  awk -v a="$one" -v b="$many" -v n="$REST_ROUTES" 'BEGIN {
    per = (b - a) / (n - 1); printf "%.2f/s per route + %.2f/s fixed (1 route: %.2f/s)", per, a - per, a }'
}
# The performance issue's targets (17), for the scenarios that ran: "| target
# | measured | verdict |". A scenario whose hookgate runs had non-2xx
# answers or socket errors says so beside its figure: those can flatter it.
failures() { # scenario -> "; N non-2xx, M socket errors" when any
  local bad=$(($(colsum "$1" hookgate 7) + $(colsum "$1" hookgate 8)))
  [ "$bad" = 0 ] || printf '; hookgate: %s non-2xx, %s socket errors' "$(colsum "$1" hookgate 7)" "$(colsum "$1" hookgate 8)"
}
target_rps() { # scenario label min-ratio
  local nr hr r
  nr=$(col "$1" nginx 4); hr=$(col "$1" hookgate 4); r=$(ratio "$hr" "$nr")
  printf '| %s | %s× (%.0f vs %.0f req/s; rounds %s)%s | %s |\n' "$2" "$r" "$hr" "$nr" "$(round_ratios "$1" 4)" \
    "$(failures "$1")" "$(verdict "$r" '>=' "$3")"
}
target_p99() { # scenario label max-ratio
  local n99 h99 r
  n99=$(col "$1" nginx 6); h99=$(col "$1" hookgate 6); r=$(ratio "$h99" "$n99")
  printf '| %s | %s× (%.2f vs %.2f ms; rounds %s)%s | %s |\n' "$2" "$r" "$h99" "$n99" "$(round_ratios "$1" 6)" \
    "$(failures "$1")" "$(verdict "$r" '<=' "$3")"
}
target_p99_ms() { # scenario label max-ms
  local h99
  h99=$(col "$1" hookgate 6)
  printf '| %s | %.2f ms (nginx %.2f)%s | %s |\n' "$2" "$h99" "$(col "$1" nginx 6)" "$(failures "$1")" \
    "$(verdict "$h99" '<=' "$3")"
}
targets() {
  echo
  echo "Targets (performance issue; medians of the rounds, ratios hookgate / nginx):"
  echo
  echo "| target | measured | verdict |"
  echo "|---|---|---|"
  if has 1; then
    target_rps 1 "s1 sync, verify: ≥ 1.0× nginx req/s" 1.0
    target_p99 1 "s1 sync, verify: p99 ≤ 1.2× nginx's" 1.2
  fi
  if has 2; then target_rps 2 "s2 sync, verify, local dedup: ≥ 0.9×" 0.9; fi
  if has 3; then target_rps 3 "s3 sync, verify, Redis dedup: ≥ 0.7×" 0.7; fi
  if has 4; then
    target_rps 4 "s4 async, fsync: ≥ 0.6×" 0.6
    target_p99_ms 4 "s4 async, fsync: p99 ack ≤ 10 ms" 10
  fi
  if has 10; then
    target_rps 10 "PostgreSQL async (10): ≥ 0.4×" 0.4
    local r h99
    r=$(ratio "$(col 10 hookgate 4)" "$(col 10 nginx 4)"); h99=$(col 10 hookgate 6)
    printf '| PostgreSQL async (10), issue 14: ≥ 0.3× and p99 ≤ 20 ms | %s×, p99 %.2f ms | %s |\n' "$r" "$h99" \
      "$([ "$(verdict "$r" '>=' 0.3)" = met ] && [ "$(verdict "$h99" '<=' 20)" = met ] && echo met || echo missed)"
  fi
  if has 8; then target_rps 8 "s8 TLS, a connection per request: ≥ 1.0×" 1.0; fi
  if has 9; then
    target_p99 9 "s9 $S9_CONNECTIONS senders: p99 ≤ 1.2× nginx's" 1.2
    local peak
    peak=$(mib "$(colmax 9 hookgate 10)")
    printf '| s9 %s senders: RSS ≤ 64 MiB | %s MiB peak (nginx %s) | %s |\n' "$S9_CONNECTIONS" "$peak" \
      "$(mib "$(colmax 9 nginx 10)")" "$(verdict "$peak" '<=' 64)"
  fi
  if has rest; then
    local c rate rss top split
    for c in $REST_CONFIGS; do
      rate=$(rest_rate "$c" "$REST_ROUTES")
      rss=$(mib "$(awk -F'\t' -v c="$c" -v n="$REST_ROUTES" '$1 == c && $2 == n && $3 == "hookgate" { print $10 }' "$REST")")
      # The busiest thread names, summed over threads of one name.
      top=$(awk -F'\t' '$3 > 0 { w[$2] += $4; n[$2]++ } END { for (k in w) printf "%.2f\t%s\t%d\n", w[k], k, n[k] }' \
        "$WORK/rest-$c-$REST_ROUTES-hookgate.tsv" | sort -gr | head -3 \
        | awk -F'\t' '{ printf "%s%s x%d %s/s", sep, $2, $3, $1; sep = ", " }')
      split=$(rest_split "$c")
      printf '| rest, %s, %s routes: wake-ups ≤ %s/s (timers only) | %s/s%s%s | %s |\n' "$c" "$REST_ROUTES" "$REST_WAKE_MAX" \
        "$rate" "${top:+: $top}" "${split:+; $split}" "$(verdict "$rate" '<=' "$REST_WAKE_MAX")"
      printf '| rest, %s, %s routes: RSS ≤ 30 MiB | %s MiB | %s |\n' "$c" "$REST_ROUTES" "$rss" "$(verdict "$rss" '<=' 30)"
    done
  fi
}

echo
echo "hookgate vs nginx proxy_pass: medians of $ROUNDS interleaved rounds, $DURATION each," \
  "$CONNECTIONS connections, $THREADS wrk thread(s), ~1.5 KB signed bodies, access log $ACCESS_LOG"
echo "$(nproc) cores, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo), kernel $(uname -r)"
echo
echo "| scenario | nginx req/s | hookgate req/s | ratio (per round) | nginx p50 ms | hookgate p50 ms | nginx p99 ms | hookgate p99 ms | p99 ratio | nginx CPU µs/req | hookgate CPU µs/req | CPU ratio | nginx peak RSS MiB | hookgate idle / peak RSS MiB | non-2xx nginx/hookgate |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for s in $SCENARIOS; do
  [ "$s" = rest ] && continue
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
case " $SCENARIOS " in *" 8 "*)
  resume="no: each connection a full handshake (bench/noresume.c)"
  [ "$S8_RESUME" = 1 ] && resume="yes (S8_RESUME=1)"
  echo
  echo "Scenario 8: wrk offers a session again: $resume. A server offered a session resumes it" \
    "(Python probe; answer, protocol, cipher): nginx $S8_PROBE_NGINX; hookgate $S8_PROBE_HG."
  if [ -s "$WORK/proxy/tls.log" ]; then
    awk '{ n++; c[$1] = 1; if ($3 == "r") r++; if ($2 > 1) k++; p[$4 " " $5 " " $6]++ }
      END { for (x in c) m++
            printf "nginx log, all rounds: %d requests on %d connections (%d requests not the first on theirs), %d handshakes resumed, %d full;", n, m, k, r, m - r
            for (x in p) printf " %s: %d", x, p[x]; print "" }' "$WORK/proxy/tls.log"
  fi
  echo
  echo "| target | TCP connections accepted per request (per round; kernel TcpPassiveOpens) | socket errors | non-2xx |"
  echo "|---|---|---|---|"
  for t in nginx hookgate; do
    printf '| %s | %s | %s | %s |\n' "$t" \
      "$(awk -F'\t' -v t="$t" 'NR > 1 && $1 == 8 && $3 == t { printf "%s%s", sep, $21; sep = ", " }' "$RESULTS")" \
      "$(colsum 8 "$t" 8)" "$(colsum 8 "$t" 7)"
  done ;;
esac
case " $SCENARIOS " in *" 9 "*)
  echo
  echo "Scenario 9: $S9_CONNECTIONS connections, each waiting 0.5-1.5 x $S9_INTERVAL_MS ms before each request:" \
    "about $((S9_CONNECTIONS * 1000 / S9_INTERVAL_MS)) requests/s offered."
  echo
  echo "| target | req/s | p50 ms | p99 ms | peak RSS MiB | socket errors (all rounds) | TCP connections accepted per request |"
  echo "|---|---|---|---|---|---|---|"
  for t in nginx hookgate; do
    printf '| %s | %.0f | %.2f | %.2f | %s | %s | %s |\n' "$t" "$(col 9 "$t" 4)" "$(col 9 "$t" 5)" "$(col 9 "$t" 6)" \
      "$(mib "$(colmax 9 "$t" 10)")" "$(colsum 9 "$t" 8)" "$(col 9 "$t" 21)"
  done ;;
esac
case " $SCENARIOS " in *" rest "*)
  echo
  echo "Cost at rest: no traffic, ${REST_SECONDS}s after ${REST_SETTLE}s from ready. Wake-ups = voluntary" \
    "context switches; nginx (proxy and upstream, idle) over the same window. A config that missed" \
    "its target with $REST_ROUTES routes was measured with 1 route too."
  echo
  echo "| config | routes | target | wake-ups/s | CPU µs/s | threads (woken) | RSS MiB (peak) |"
  echo "|---|---|---|---|---|---|---|"
  awk -F'\t' 'NR > 1 { printf "| %s | %s | %s | %.2f | %.1f | %d (%d) | %s |\n", $1, $2, $3, $6, $7, $8, $9,
      ($10 == "") ? "-" : sprintf("%.1f (%.1f)", $10 / 1024, $11 / 1024) }' "$REST"
  for c in $REST_CONFIGS; do
    split=$(rest_split "$c")
    echo
    echo "hookgate at rest, $c, $REST_ROUTES routes: threads that woke (tid, name, wake-ups, per second," \
      "CPU µs/s; started/ended: during the window)${split:+. Wake-ups: $split}"
    awk -F'\t' '$3 > 0 || $6 != "" { printf "    %-8s %-18s %6d %8.2f/s %8.1f %s\n", $1, $2, $3, $4, $5, $6 }' \
      "$WORK/rest-$c-$REST_ROUTES-hookgate.tsv"
  done ;;
esac

targets

# Copies only matter to hookgate (dedup answers them without forwarding).
wraps=$(awk -F'\t' 'NR > 1 && $3 ~ /^hookgate/ { n += $9 } END { print n + 0 }' "$RESULTS")
[ "$wraps" = 0 ] || echo "WARNING: wrk ran out of distinct events $wraps times against hookgate (raise EVENTS): those runs sent copies"
echo
echo "raw results: $RESULTS"
