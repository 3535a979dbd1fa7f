#!/usr/bin/env bash
# Load benchmark of `flowhost run`, measured the way the Node anchor was: the server pinned to
# one core, wrk and the sink to the other, wrk -t1 at 1, 16 and 64 connections, the two bench
# events POSTed 1:1. Prints requests/s, p50/p99 latency, errors and events delivered.
#
#   benches/load.sh [FLOW...]        FLOW: noop-config, api-config, noop-js, api-js, pixel-js
#                                    (default: the configs if flowhost can run them, else the
#                                    JS stand-ins)
#   benches/load.sh idle [COUNT]     hold COUNT idle keep-alive connections (default 10000)
#                                    and time requests on a fresh one meanwhile
#
# Settings (environment): DURATION (12s), WARMUP (3s), CONNECTIONS ("1 16 64"), REPS (1),
# SERVER_CPU (1), CLIENT_CPU (0), PIN (1; 0 lets everything float), PORT (18080),
# SINK_PORT (9901), EVENTS_DIR (tests/events), FLOWS_DIR (tests/configs/valid), QUIET ("5 65":
# seconds after the runs at which to read the RSS again, ascending),
# FLOWHOST (a prebuilt binary; default: cargo build --release).
#
# Needs wrk (Debian: apt-get install wrk) and taskset (util-linux). The project's setup does
# not install wrk; run with INSTALL=1 to have this script apt-get it.

set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-12s}
WARMUP=${WARMUP:-3s}
CONNECTIONS=${CONNECTIONS:-"1 16 64"}
REPS=${REPS:-1}
SERVER_CPU=${SERVER_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
PIN=${PIN:-1}
PORT=${PORT:-18080}
SINK_PORT=${SINK_PORT:-9901}
EVENTS_DIR=${EVENTS_DIR:-tests/events}
FLOWS_DIR=${FLOWS_DIR:-tests/configs/valid}
QUIET=${QUIET:-"5 65"}
WORK=$(mktemp -d)
PIDS=()

cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

need() {
  command -v "$1" >/dev/null && return
  if [[ "$1" == wrk && "${INSTALL:-0}" == 1 ]]; then
    if [[ $(id -u) == 0 ]]; then apt-get install -y wrk; else sudo apt-get install -y wrk; fi
    return
  fi
  echo "benches/load.sh needs $1. On Debian: apt-get install $2 (or run with INSTALL=1)." >&2
  exit 2
}
need wrk wrk
# The config flows are bundled from the registry npm is configured with, as the benches do.
if [[ -z ${NPM_CONFIG_REGISTRY:-} ]] && command -v npm >/dev/null; then
  NPM_CONFIG_REGISTRY=$(npm config get registry 2>/dev/null || true)
  export NPM_CONFIG_REGISTRY
fi
need taskset util-linux
need curl curl

on_cpu() { # on_cpu CPU COMMAND...: runs pinned unless PIN=0
  local cpu=$1
  shift
  if [[ $PIN == 1 ]]; then taskset -c "$cpu" "$@"; else "$@"; fi
}

echo "building flowhost and the load tool (release)..." >&2
cargo build --release --quiet --bin flowhost --example loadtool
TARGET_DIR=${CARGO_TARGET_DIR:-target}
FLOWHOST=${FLOWHOST:-$TARGET_DIR/release/flowhost}
LOADTOOL=$TARGET_DIR/release/examples/loadtool

# The events as compact one-line bodies (the anchor sent 791 and 1173 bytes).
for event in page-view order-complete; do
  sed -e 's/^ *//' "$EVENTS_DIR/$event.json" | tr -d '\n' >"$WORK/$event.json"
done

start_server() { # start_server BUNDLE: starts flowhost, waits for /ready
  local bundle=$1
  local pin=()
  if [[ $PIN == 1 ]]; then pin=(taskset -c "$SERVER_CPU"); fi
  # env and taskset exec the next program, so $! is flowhost's own pid (for its RSS).
  env PORT="$PORT" HOST=127.0.0.1 SINK_URL="http://127.0.0.1:$SINK_PORT/sink" FLOWHOST_LOG=warn \
    "${pin[@]}" "$FLOWHOST" run "$bundle" >"$WORK/server.log" 2>&1 &
  SERVER=$!
  PIDS+=("$SERVER")
  for _ in $(seq 1 600); do
    if curl -sf "http://127.0.0.1:$PORT/ready" >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$SERVER" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "flowhost did not become ready with $bundle:" >&2
  cat "$WORK/server.log" >&2
  return 1
}

stop_server() {
  kill -TERM "$SERVER" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

rss_mb() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
hwm_mb() { awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }

metric() { # metric NAME: a counter from /metrics
  curl -s "http://127.0.0.1:$PORT/metrics" | awk -v n="$1" '$1 == n {print $2}'
}

delivered() { # events delivered so far: at the sink for the api flows, else the flow's count
  case $1 in
    api-*) curl -s "http://127.0.0.1:$SINK_PORT/count" ;;
    *) metric flowhost_events_delivered_total ;;
  esac
}

settled() { # settled FLOW: the delivered count once it has held still for half a second
  # (respond-first: requests answered before delivery may still be in the backlog; 30 s at most)
  local count now
  count=$(delivered "$1")
  for _ in $(seq 1 60); do
    sleep 0.5
    now=$(delivered "$1")
    [[ $now == "$count" ]] && break
    count=$now
  done
  echo "$count"
}

# to_ms VALUE: wrk's "1.23ms" / "456.00us" / "1.20s" in milliseconds.
to_ms() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.2f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.2f", v }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.2f", v * 1000 }
    else print v }'
}

run_wrk() { # run_wrk FLOW CONNS DURATION: wrk output on stdout
  local flow=$1 conns=$2 duration=$3
  if [[ $flow == pixel-* ]]; then
    on_cpu "$CLIENT_CPU" wrk -t1 -c"$conns" -d"$duration" --latency \
      "http://127.0.0.1:$PORT/collect?name=page%20view&data[title]=Home&data[id]=ers&data[price]=9.99&user[session]=s3ss10n&context[shopping][0]=discover&context[shopping][1]=0"
  else
    on_cpu "$CLIENT_CPU" wrk -t1 -c"$conns" -d"$duration" --latency -s benches/post-events.lua \
      "http://127.0.0.1:$PORT" -- /collect "$WORK/page-view.json" "$WORK/order-complete.json"
  fi
}

bench_flow() { # bench_flow NAME BUNDLE
  local name=$1 bundle=$2
  start_server "$bundle" || return 1
  sleep 2
  local idle_rss
  idle_rss=$(rss_mb "$SERVER")
  echo
  echo "== $name ($bundle): idle RSS $idle_rss MB"
  # cpu% is the server's share of its core during the run; with other work on the machine it
  # stays below 100 and req/s with it, while µs/req (server CPU per request) holds.
  printf '%-6s %10s %9s %9s %7s %10s %10s %6s %7s\n' conns "req/s" "p50 ms" "p99 ms" errors \
    requests delivered "cpu%" "us/req"
  for conns in $CONNECTIONS; do
    for _ in $(seq 1 "$REPS"); do
      run_wrk "$name" "$conns" "$WARMUP" >/dev/null
      local before after out
      before=$(settled "$name")
      local t0 t1
      t0=$(cpu_ticks "$SERVER")
      out=$(run_wrk "$name" "$conns" "$DURATION")
      t1=$(cpu_ticks "$SERVER")
      after=$(settled "$name")
      local rps p50 p99 requests errors
      rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
      p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
      p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
      requests=$(awk '/requests in/ {print $1}' <<<"$out")
      errors=$(awk '/Non-2xx/ {n += $NF} /Socket errors/ {gsub(/,/, ""); n += $4 + $6 + $8 + $10} END {print n + 0}' <<<"$out")
      local seconds cpu us
      seconds=$(awk -v d="$DURATION" 'BEGIN { sub(/s$/, "", d); print d }')
      cpu=$(awk -v t=$((t1 - t0)) -v s="$seconds" 'BEGIN { printf "%.0f", t / s }')
      us=$(awk -v t=$((t1 - t0)) -v n="$requests" 'BEGIN { printf "%.0f", t * 10000 / n }')
      printf '%-6s %10s %9s %9s %7s %10s %10s %6s %7s\n' "$conns" "$rps" "$p50" "$p99" \
        "$errors" "$requests" "$((after - before))" "$cpu" "$us"
    done
  done
  echo "RSS after load: $(rss_mb "$SERVER") MB (high-water $(hwm_mb "$SERVER") MB)"
  # The runner trims its heap after a quiet second and again after 62 s (once the outbound pool
  # has closed its idle connections), the guest after FLOWHOST_IDLE_TRIM_MS (2 s).
  local waited=0
  for quiet in $QUIET; do
    sleep $((quiet - waited))
    waited=$quiet
    echo "RSS after ${quiet} s quiet: $(rss_mb "$SERVER") MB"
  done
  stop_server
}

idle_test() { # idle_test COUNT
  local count=$1
  ulimit -n $((count + 1024)) 2>/dev/null || {
    echo "cannot raise the open-file limit to $((count + 1024)); try as root or lower COUNT" >&2
    exit 2
  }
  FLOWHOST_HTTP_IDLE_TIMEOUT_MS=600000 start_server benches/flows/noop.mjs
  sleep 1
  echo "== $count idle keep-alive connections: server RSS before $(rss_mb "$SERVER") MB"
  on_cpu "$CLIENT_CPU" "$LOADTOOL" idle "127.0.0.1:$PORT" "$count" "$SERVER"
  stop_server
}

if [[ ${1:-} == idle ]]; then
  idle_test "${2:-10000}"
  exit 0
fi

if [[ $PIN == 1 ]]; then
  taskset -c "$CLIENT_CPU" "$LOADTOOL" sink "$SINK_PORT" 2>/dev/null >/dev/null &
else
  "$LOADTOOL" sink "$SINK_PORT" 2>/dev/null >/dev/null &
fi
PIDS+=("$!")

flows=("$@")
if [[ ${#flows[@]} == 0 ]]; then
  # The configs need the config bundler and the collector running in the guest; until then the
  # JS stand-ins measure the HTTP path.
  if start_server "$FLOWS_DIR/collect-noop.json" 2>/dev/null; then
    stop_server
    flows=(noop-config api-config)
  else
    echo "flowhost cannot run the flow configs yet; measuring the JS stand-ins" >&2
    flows=(noop-js api-js pixel-js)
  fi
fi
for flow in "${flows[@]}"; do
  case $flow in
    noop-config) bench_flow "$flow" "$FLOWS_DIR/collect-noop.json" ;;
    api-config) bench_flow "$flow" "$FLOWS_DIR/collect-api.json" ;;
    noop-js) bench_flow "$flow" benches/flows/noop.mjs ;;
    api-js) bench_flow "$flow" benches/flows/api.mjs ;;
    pixel-js) bench_flow "$flow" benches/flows/noop.mjs ;;
    *) echo "unknown flow $flow" >&2; exit 2 ;;
  esac
done
