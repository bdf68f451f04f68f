#!/usr/bin/env bash
# A/B benchmark of vpcgate builds: replays one capture with each binary in turn,
# interleaved (run 1 of each, then run 2 of each, ...), and prints per binary the
# median and range of wall time, CPU time of all threads (perf's task-clock) and
# peak RSS. CPU time is the figure to compare on a busy machine: wall time then
# measures the other programs as much as vpcgate.
#
#   scripts/bench-ab.sh CAPTURE BIN...                 # 5 runs, 1 worker
#   scripts/bench-ab.sh --runs 7 --workers 2 x.pcap /tmp/vpcgate-old target/release/vpcgate
#
# Options: --runs R (5), --workers N (1), --rules PATH (rulesets/securecart.toml).
# Each run: BIN replay --rules PATH CAPTURE --flow-log /dev/null --workers N -q.
# Keep a copy of the old binary first (cp target/release/vpcgate /tmp/vpcgate-old),
# and make a capture with vpcgate synth (see scripts/bench-whole.sh). Needs perf
# (apt-get install linux-perf) and GNU time (apt-get install time).
set -euo pipefail

runs=5
workers=1
rules=rulesets/securecart.toml
while [[ $# -gt 0 ]]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --workers) workers="$2"; shift 2 ;;
    --rules) rules="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "bench-ab.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) break ;;
  esac
done
if [[ $# -lt 2 ]]; then
  echo "bench-ab.sh: give a capture and at least one binary (see --help)" >&2
  exit 2
fi
for v in runs workers; do
  if ! [[ "${!v}" =~ ^[1-9][0-9]*$ ]]; then
    echo "bench-ab.sh: --$v ${!v}: give a positive whole number" >&2
    exit 2
  fi
done
capture="$1"
shift
for tool in perf /usr/bin/time; do
  if ! command -v "$tool" > /dev/null; then
    echo "bench-ab.sh: $tool is missing (apt-get install linux-perf time)" >&2
    exit 1
  fi
done
for b in "$@"; do
  [[ -x "$b" ]] || { echo "bench-ab.sh: $b: not an executable file" >&2; exit 2; }
done
[[ -r "$capture" ]] || { echo "bench-ab.sh: $capture: cannot be read" >&2; exit 2; }

tmp="$(mktemp -d "${TMPDIR:-/tmp}/vpcgate-ab.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
declare -A wall cpu rss
for ((r = 1; r <= runs; r++)); do
  for i in $(seq 0 $(($# - 1))); do
    b="${@:$((i + 1)):1}"
    t0=$(date +%s%N)
    if ! /usr/bin/time -f '%M' -o "$tmp/rss" perf stat -x, -e task-clock -o "$tmp/stat" \
        "$b" replay --rules "$rules" "$capture" --flow-log /dev/null --workers "$workers" -q \
        > /dev/null 2> "$tmp/err"; then
      echo "bench-ab.sh: failed: $b" >&2
      cat "$tmp/err" >&2
      exit 1
    fi
    t1=$(date +%s%N)
    wall[$i]+="$(((t1 - t0) / 1000000)) "
    cpu[$i]+="$(grep task-clock "$tmp/stat" | cut -d, -f1 | cut -d. -f1) "
    rss[$i]+="$(tail -n 1 "$tmp/rss") "
  done
done
stats() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR] = $1} END {printf "%s [%s..%s]", a[int((NR + 1) / 2)], a[1], a[NR]}'; }
echo "medians of $runs interleaved runs [min..max], --workers $workers, $capture"
for i in $(seq 0 $(($# - 1))); do
  printf '%s\n  wall ms %s   CPU ms %s   peak RSS KiB %s\n' "${@:$((i + 1)):1}" \
    "$(stats <<< "${wall[$i]}")" "$(stats <<< "${cpu[$i]}")" "$(stats <<< "${rss[$i]}")"
done
echo "uptime: $(uptime)"
