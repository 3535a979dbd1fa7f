#!/usr/bin/env bash
# Wall time of `flowhost bundle` for one flow config, process start included, as medians of
# RUNS runs (default 7):
#   cold    a new package store every run (downloads from the registry included);
#   warm    the store filled, esbuild and the bytecode compile run (--no-bundle-cache, and the
#           bytecode cache cleared);
#   cached  a config bundled before: bundle and bytecode from the caches.
# The guest shim is compiled once up front and copied into every new cache directory: that cost
# is per machine, not per bundle.
#
# Usage: benches/bundle-cli.sh [FLOW.json]   (FLOWHOST=path/to/flowhost, RUNS=n)
# The registry is the npm configuration's (NPM_CONFIG_REGISTRY, .npmrc).
set -euo pipefail
cd "$(dirname "$0")/.."

flowhost=${FLOWHOST:-target/release/flowhost}
config=${1:-tests/configs/valid/collect-api.json}
runs=${RUNS:-7}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Milliseconds one command takes; its output goes to $work/last.log.
time_ms() {
  local start end
  start=$(date +%s%N)
  "$@" >"$work/last.log" 2>&1 || { cat "$work/last.log" >&2; exit 1; }
  end=$(date +%s%N)
  echo $(((end - start) / 1000000))
}

median() {
  sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

bundle() {
  local cache=$1
  shift
  "$flowhost" bundle "$config" -o "$work/out" --cache-dir "$cache" "$@"
}

# One full run to compile the shim and fill a store.
seed="$work/seed"
time_ms bundle "$seed" >/dev/null

cold=()
for i in $(seq "$runs"); do
  cache="$work/cold-$i"
  mkdir -p "$cache/artifacts"
  cp "$seed"/artifacts/shim-* "$cache/artifacts/"
  cold+=("$(time_ms bundle "$cache")")
done

warm=()
for _ in $(seq "$runs"); do
  rm -f "$seed"/artifacts/flow-*
  warm+=("$(time_ms bundle "$seed" --no-bundle-cache)")
done

cached=()
for _ in $(seq "$runs"); do
  cached+=("$(time_ms bundle "$seed")")
done

echo "flowhost bundle $config, medians of $runs runs:"
echo "  cold store: $(printf '%s\n' "${cold[@]}" | median) ms"
echo "  warm store: $(printf '%s\n' "${warm[@]}" | median) ms"
echo "  cached:     $(printf '%s\n' "${cached[@]}" | median) ms"
grep -h 'stages:' "$work/last.log" | sed 's/^ */  last run: /'
