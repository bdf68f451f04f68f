#!/usr/bin/env bash
# Whole-program benchmark: vpcgate replay (1 and 2 workers) against tcpdump, the
# floor (`vpcgate bench --floor`: read the capture in 4 MiB blocks, walk every packet's
# headers) and, where installed, the tools that turn captures into flow records
# (argus, nfpcapd), on one synthetic capture, in the page cache.
#
#   scripts/bench-whole.sh                               # 2M packets, 100k flows, 5 runs
#   scripts/bench-whole.sh --packets 10000000 --flows 200000 --runs 1   # memory check
#
# Options: --packets N (2000000), --flows M (100000), --runs R (5), --dir DIR (where
# the capture and the flow log go; default a new folder under ${TMPDIR:-/tmp}, removed
# at the end), --keep (keep the files).
#
# What it does: builds vpcgate in release mode, writes
# `vpcgate synth --rules rulesets/securecart.toml` to DIR/synth.pcap, reads it once
# to put it in the page cache, then runs each command R times, interleaved (run 1 of
# each, then run 2 of each, ...), measuring wall time (the clock around each
# run) and peak RSS (`/usr/bin/time -f '%e %M'`), and prints the median of each with ns/packet and
# packets/s, plus nproc, the CPU model and the load average (uptime).
#
# The tcpdump row: `tcpdump -r FILE -w /dev/null 'tcp port 443'`, a one-instruction-
# block BPF program over the same records: what the cheapest real filter costs to
# read a capture, run a filter on every packet and write what matches. Its
# selectivity (printed: about half the packets of the SecureCart mix are HTTPS) is
# higher than vpcgate's reject share (a few per cent), but with the output going to
# /dev/null the share that matches barely changes its time. vpcgate writes its flow
# log to DIR/f.log (a real file), tcpdump and vpcgate's own summary nothing.
#
# The flow-record tools, each writing its records to a file in DIR, as vpcgate does:
#   argus -r FILE -w DIR/a.argus                  (apt-get install argus-server)
#   nfpcapd -r FILE -w DIR/nf                     (apt-get install nfdump)
# softflowd is left out: 1.1.0 (Debian 12) with -r waits in accept() on its control
# socket before reading the file, and never ends.
#
# It installs nothing. Without tcpdump it says how to install it and skips that row;
# so for argus and nfpcapd.
set -euo pipefail

packets=2000000
flows=100000
runs=5
dir=""
keep=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --packets) packets="$2"; shift 2 ;;
    --flows) flows="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --dir) dir="$2"; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-whole.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
for v in packets flows runs; do
  if ! [[ "${!v}" =~ ^[1-9][0-9]*$ ]]; then
    echo "bench-whole.sh: --$v ${!v}: give a positive whole number" >&2
    exit 2
  fi
done

cd "$(dirname "$0")/.."
if [[ ! -x /usr/bin/time ]]; then
  echo "bench-whole.sh: /usr/bin/time is missing (GNU time: apt-get install time)" >&2
  exit 1
fi
if [[ -z "$dir" ]]; then
  dir="$(mktemp -d "${TMPDIR:-/tmp}/vpcgate-bench.XXXXXX")"
  [[ $keep == 1 ]] || trap 'rm -rf "$dir"' EXIT
else
  mkdir -p "$dir"
  [[ $keep == 1 ]] || trap 'rm -rf "$dir/synth.pcap" "$dir/f.log" "$dir/time.out" "$dir/a.argus" "$dir/nf"' EXIT
fi

if [[ "$dir" == *[[:space:]]* ]]; then
  echo "bench-whole.sh: --dir $dir: give a folder whose path has no spaces" >&2
  exit 2
fi

echo "== building (release)"
cargo build --release --quiet --bin vpcgate
vpcgate=target/release/vpcgate
floor="$vpcgate bench --floor"
f="$dir/synth.pcap"

echo "== vpcgate synth: $packets packets, $flows flows -> $f"
"$vpcgate" synth -o "$f" --packets "$packets" --flows "$flows" --rules rulesets/securecart.toml
echo "== warming the page cache"
cat "$f" > /dev/null
cat "$f" > /dev/null

have_tcpdump=1
if ! command -v tcpdump > /dev/null; then
  have_tcpdump=0
  echo "tcpdump is not installed: its row is skipped (install it with: apt-get install tcpdump)"
fi

names=("vpcgate replay --workers 1" "vpcgate replay --workers 2")
cmds=(
  "$vpcgate replay --rules rulesets/securecart.toml $f --flow-log $dir/f.log -q --workers 1"
  "$vpcgate replay --rules rulesets/securecart.toml $f --flow-log $dir/f.log -q --workers 2"
)
if [[ $have_tcpdump == 1 ]]; then
  names+=("tcpdump 'tcp port 443'")
  cmds+=("tcpdump -r $f -w /dev/null tcp port 443")
fi
if command -v argus > /dev/null; then
  names+=("argus -r")
  cmds+=("argus -r $f -w $dir/a.argus")
else
  echo "argus is not installed: its row is skipped (apt-get install argus-server)"
fi
if command -v nfpcapd > /dev/null; then
  mkdir -p "$dir/nf"
  names+=("nfpcapd -r")
  cmds+=("nfpcapd -r $f -w $dir/nf")
else
  echo "nfpcapd is not installed: its row is skipped (apt-get install nfdump)"
fi
names+=("floor")
cmds+=("$floor $f")

# Once, untimed: what vpcgate rejects, and what the tcpdump filter matches.
echo "== what the filters do with this capture (untimed)"
"$vpcgate" replay --rules rulesets/securecart.toml "$f" --workers 1 2>&1 \
  | sed -n '1,4p'
if [[ $have_tcpdump == 1 ]]; then
  matched=$(tcpdump -r "$f" -w - 'tcp port 443' 2>/dev/null | $floor /dev/stdin | awk '{print $1}')
  echo "tcpdump 'tcp port 443' matches $matched of $packets packets"
fi

declare -A wall rss
echo "== $runs runs of each, interleaved"
for ((r = 1; r <= runs; r++)); do
  for i in "${!cmds[@]}"; do
    t0=$(date +%s%N)
    # shellcheck disable=SC2086  # the command lines are split on purpose
    if ! /usr/bin/time -f '%e %M' -o "$dir/time.out" ${cmds[$i]} > /dev/null 2> "$dir/err.out"; then
      echo "failed: ${cmds[$i]}" >&2
      cat "$dir/err.out" >&2
      exit 1
    fi
    t1=$(date +%s%N)
    # Wall time from the clock around the run (time's %e has 10 ms steps), peak RSS
    # from time's %M.
    read -r _ m < <(tail -n 1 "$dir/time.out")
    e=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", (b - a) / 1e9}')
    wall[$i]+="$e "
    rss[$i]+="$m "
    printf '  run %d  %-28s %7.3f s  %8d KiB\n' "$r" "${names[$i]}" "$e" "$m"
  done
done
rm -f "$dir/err.out"

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

echo
echo "== medians of $runs runs, $packets packets ($(du -h "$f" | cut -f1) of pcap), $flows flows"
printf '%-30s %9s %10s %12s %12s\n' "command" "wall s" "ns/packet" "packets/s" "peak RSS MiB"
for i in "${!cmds[@]}"; do
  w=$(median <<< "${wall[$i]}")
  m=$(median <<< "${rss[$i]}")
  awk -v n="${names[$i]}" -v w="$w" -v m="$m" -v p="$packets" 'BEGIN {
    if (w > 0) printf "%-30s %9.3f %10.1f %12.0f %12.1f\n", n, w, w * 1e9 / p, p / w, m / 1024;
    else printf "%-30s %9.3f %10s %12s %12.1f\n", n, w, "-", "-", m / 1024 }'
done
echo
echo "nproc: $(nproc)"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "uptime: $(uptime)"
