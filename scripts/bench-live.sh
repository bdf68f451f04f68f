#!/usr/bin/env bash
# Live-mode benchmark (issue 12; not a test): the same two hosts, a client and a server
# in two subnets, joined three ways, each measured with iperf3:
#   raw     two TAP devices joined by a tiny C forwarder (one thread per TAP: read a
#           frame, write it to the other TAP): the ceiling of one TAP queue; once with
#           plain frames, once with IFF_VNET_HDR and offloads (GSO super-frames)
#   vpcgate `vpcgate lab up` on the ruleset below (the security groups judge every packet),
#           with offloads (the default, one worker per CPU), with --workers 1 and with
#           --no-offloads; with BEFORE=PATH, also
#           another vpcgate binary (an older build) the same way
#   linux   veth pairs and a Linux router namespace whose nftables ruleset means the same
#           (forward chain, policy drop, conntrack: new client->server 5201 accepted,
#           established/related accepted)
# Measures: TCP throughput with 1 and 4 streams, UDP 64-byte datagrams per second
# (received). Needs root, iperf3, nft, gcc, python3 and a release build
# (cargo build --release). Usage: sudo [BEFORE=old/vpcgate] scripts/bench-live.sh [SECONDS]
# (default 5)
# Prints a Markdown table and the machine's load (other work on the box skews it).
# Leaves nothing behind (namespaces vb-*, lr-*, tf-*).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-5}
BIN=${VPCGATE:-target/release/vpcgate}
for c in iperf3 nft gcc python3 ip; do
  command -v "$c" >/dev/null || { echo "bench-live: needs $c (apt-get install iperf3 nftables gcc python3 iproute2)" >&2; exit 2; }
done
[[ -x $BIN ]] || { echo "bench-live: no $BIN; run cargo build --release" >&2; exit 2; }
[[ $(id -u) == 0 ]] || { echo "bench-live: run as root" >&2; exit 2; }
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  "$BIN" lab down --name vgbench >/dev/null 2>&1 || true
  for ns in lr-client lr-server lr-router tf-client tf-server; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

cat > "$WORK/bench.toml" <<'TOML'
[vpc]
id = "vpc-0000000000000beef"
account_id = "123456789012"
region = "us-east-1"
cidrs = ["10.88.0.0/16"]

[[subnets]]
id = "subnet-000000000000000c1"
cidr = "10.88.1.0/24"

[[subnets]]
id = "subnet-000000000000000c2"
cidr = "10.88.2.0/24"

[[security_groups]]
id = "sg-000000000000000c1"
name = "bench-client"
ingress = []
egress = [{ protocol = "-1", cidr = "0.0.0.0/0" }]

[[security_groups]]
id = "sg-000000000000000c2"
name = "bench-server"
ingress = [
  { protocol = "tcp", ports = "5201", security_group = "sg-000000000000000c1" },
  { protocol = "udp", ports = "5201", security_group = "sg-000000000000000c1" },
]
egress = []

[[network_interfaces]]
id = "eni-000000000000000c1"
subnet = "subnet-000000000000000c1"
private_ips = ["10.88.1.10"]
security_groups = ["sg-000000000000000c1"]

[[network_interfaces]]
id = "eni-000000000000000c2"
subnet = "subnet-000000000000000c2"
private_ips = ["10.88.2.10"]
security_groups = ["sg-000000000000000c2"]
TOML

cat > "$WORK/tapfwd.c" <<'C'
/* Two TAPs, one thread per direction (as vpcgate has one reader per TAP): read a
   frame from one TAP, write it to the other, nothing else. */
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
static int vnet;
static int tap(const char *name) {
  struct ifreq r; int fd = open("/dev/net/tun", O_RDWR);
  if (fd < 0) { perror("open /dev/net/tun"); return -1; }
  memset(&r, 0, sizeof r); r.ifr_flags = IFF_TAP | IFF_NO_PI | (vnet ? IFF_VNET_HDR : 0);
  strncpy(r.ifr_name, name, IFNAMSIZ - 1);
  if (ioctl(fd, TUNSETIFF, &r) < 0) { perror("TUNSETIFF"); return -1; }
  if (vnet && ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN) < 0) {
    perror("TUNSETOFFLOAD"); return -1;
  }
  return fd;
}
static int fds[2];
static void *pump(void *arg) {
  int i = (int)(long)arg; static __thread char buf[65536 + 64];
  for (;;) {
    ssize_t n = read(fds[i], buf, sizeof buf);
    if (n > 0 && write(fds[1 - i], buf, n) < 0) {}
  }
  return 0;
}
int main(int argc, char **argv) {
  if (argc != 4) return 2;
  vnet = argv[3][0] == 'v';
  fds[0] = tap(argv[1]); fds[1] = tap(argv[2]);
  if (fds[0] < 0 || fds[1] < 0) return 1;
  printf("ready\n"); fflush(stdout);
  pthread_t t; pthread_create(&t, 0, pump, (void *)1L);
  pump((void *)0L);
}
C
gcc -O2 -pthread -o "$WORK/tapfwd" "$WORK/tapfwd.c"

# One iperf3 run from namespace $1 to a one-off server in namespace $2 at address $3,
# with the client options after; its JSON report on standard output.
iperf() {
  local cns=$1 sns=$2 addr=$3; shift 3
  ip netns exec "$sns" iperf3 -s -1 >/dev/null 2>&1 &
  local sp=$!
  sleep 0.5
  ip netns exec "$cns" iperf3 -c "$addr" -t "$SECS" -J "$@" || true
  wait "$sp" || true
}

# Prints "tcp1 tcp4 udp" (Gbit/s, Gbit/s, packets/s received) from $1 to $2 at $3.
measure() {
  local gbit='import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))'
  local pps='import json,sys; s=json.load(sys.stdin)["end"]["sum"]; print(int((s["packets"]-s["lost_packets"])/s["seconds"]))'
  local t1 t4 u
  t1=$(iperf "$@" | python3 -c "$gbit")
  t4=$(iperf "$@" -P 4 | python3 -c "$gbit")
  u=$(iperf "$@" -u -b 0 -l 64 | python3 -c "$pps")
  echo "$t1 $t4 $u"
}

# 1. raw: tapfwd between two namespaces in one subnet; $1: plain or vnet.
raw() {
  for ns in tf-client tf-server; do ip netns add $ns; done
  "$WORK/tapfwd" tfa tfb "$1" > "$WORK/tapfwd.out" & local pid=$!
  for _ in $(seq 50); do grep -q ready "$WORK/tapfwd.out" && break; sleep 0.1; done
  ip link set tfa netns tf-client; ip link set tfb netns tf-server
  ip -n tf-client addr add 10.88.1.10/24 dev tfa; ip -n tf-client link set tfa up
  ip -n tf-server addr add 10.88.1.20/24 dev tfb; ip -n tf-server link set tfb up
  measure tf-client tf-server 10.88.1.20
  kill "$pid"; wait "$pid" 2>/dev/null || true
  ip netns del tf-client; ip netns del tf-server
  rm -f "$WORK/tapfwd.out"
}
read -r RAW_T1 RAW_T4 RAW_U <<< "$(raw plain)"
read -r RAWV_T1 RAWV_T4 RAWV_U <<< "$(raw vnet)"

# 2. vpcgate lab: binary $1, more options after.
lab() {
  local bin=$1; shift
  "$bin" lab up --rules "$WORK/bench.toml" --name vgbench --prefix vb- "$@" > "$WORK/lab.out" 2> "$WORK/lab.err" & local pid=$!
  for _ in $(seq 100); do grep -q "is up" "$WORK/lab.out" && break; sleep 0.1; done
  measure vb-client vb-server 10.88.2.10
  kill -TERM "$pid"; wait "$pid" || true
  grep -h "super-frame" "$WORK/lab.err" >&2 || true
}
read -r VG_T1 VG_T4 VG_U <<< "$(lab "$BIN")"
read -r VG1_T1 VG1_T4 VG1_U <<< "$(lab "$BIN" --workers 1)"
read -r VGN_T1 VGN_T4 VGN_U <<< "$(lab "$BIN" --no-offloads)"
if [[ -n ${BEFORE:-} ]]; then
  read -r VGB_T1 VGB_T4 VGB_U <<< "$(lab "$BEFORE")"
fi

# 3. Linux router with nftables and conntrack.
for ns in lr-client lr-server lr-router; do ip netns add $ns; done
ip link add lrc0 netns lr-client type veth peer name rc netns lr-router
ip link add lrs0 netns lr-server type veth peer name rs netns lr-router
ip -n lr-client addr add 10.88.1.10/24 dev lrc0; ip -n lr-client link set lrc0 up
ip -n lr-server addr add 10.88.2.10/24 dev lrs0; ip -n lr-server link set lrs0 up
ip -n lr-router addr add 10.88.1.1/24 dev rc; ip -n lr-router link set rc up
ip -n lr-router addr add 10.88.2.1/24 dev rs; ip -n lr-router link set rs up
ip -n lr-client route add default via 10.88.1.1
ip -n lr-server route add default via 10.88.2.1
ip netns exec lr-router sysctl -qw net.ipv4.ip_forward=1
ip netns exec lr-router nft -f - <<'NFT'
table inet vpc {
  chain forward {
    type filter hook forward priority 0; policy drop;
    ct state established,related accept
    iifname "rc" ip daddr 10.88.2.10 tcp dport 5201 ct state new accept
    iifname "rc" ip daddr 10.88.2.10 udp dport 5201 ct state new accept
  }
}
NFT
read -r LR_T1 LR_T4 LR_U <<< "$(measure lr-client lr-server 10.88.2.10)"

pct() { python3 -c "print('%.0f %%' % (100.0*float('$1')/float('$2')) if float('$2') else '-')"; }
echo
echo "$(nproc) CPUs; load average $(cut -d' ' -f1-3 /proc/loadavg); $SECS s per run"
echo
echo "| path | TCP 1 stream (Gbit/s) | TCP 4 streams (Gbit/s) | UDP 64 B (packets/s received) |"
echo "|---|---:|---:|---:|"
echo "| raw TAP forwarder (ceiling, 1 queue) | $RAW_T1 | $RAW_T4 | $RAW_U |"
echo "| raw TAP forwarder, IFF_VNET_HDR + offloads | $RAWV_T1 | $RAWV_T4 | $RAWV_U |"
if [[ -n ${BEFORE:-} ]]; then
  echo "| vpcgate lab, $BEFORE | $VGB_T1 | $VGB_T4 | $VGB_U |"
fi
echo "| vpcgate lab --no-offloads | $VGN_T1 | $VGN_T4 | $VGN_U |"
echo "| vpcgate lab --workers 1 (offloads) | $VG1_T1 | $VG1_T4 | $VG1_U |"
echo "| vpcgate lab (offloads, --workers $(nproc)) | $VG_T1 | $VG_T4 | $VG_U |"
echo "| Linux router + nftables conntrack | $LR_T1 | $LR_T4 | $LR_U |"
echo
echo "vpcgate UDP packets/s: $(pct "$VG_U" "$RAW_U") of the raw TAP forwarder (target 80 %)"
echo "vpcgate TCP 1 stream: $(pct "$VG_T1" "$LR_T1") of the Linux router (target 100 %)"
echo "vpcgate TCP 4 streams: $(pct "$VG_T4" "$LR_T4") of the Linux router (target 100 %)"
