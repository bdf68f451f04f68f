//! `vpcgate synth`: captures for benchmarks that are the same bytes for the same flags,
//! read back as written (every frame parses, checksums verify in tshark), and that a
//! replay rejects as asked (`--reject-share` counts flows rejected at their first
//! packet).

use crate::determinism::root;
use assert_cmd::Command;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::Path;
use vpcgate::capture::CaptureReader;
use vpcgate::wire::packet::{parse, Packet, Timestamp};

const PACKETS: usize = 20_000;
const FLOWS: usize = 1_000;

fn vpcgate() -> Command {
    Command::cargo_bin("vpcgate").unwrap()
}

/// `vpcgate synth -o PATH --packets 20000 --flows 1000 ARGS`, from the crate root.
fn synth(path: &Path, args: &[&str]) -> String {
    let out = vpcgate()
        .current_dir(root())
        .arg("synth")
        .arg("-o")
        .arg(path)
        .args(["--packets", &PACKETS.to_string()])
        .args(["--flows", &FLOWS.to_string()])
        .args(args)
        .assert()
        .success()
        .get_output()
        .clone();
    String::from_utf8(out.stderr).unwrap()
}

/// Every packet of a capture, parsed; panics on a frame that does not parse.
fn read(path: &Path) -> Vec<(Timestamp, Packet)> {
    let mut r = CaptureReader::open(path).unwrap();
    let mut v = Vec::new();
    while let Some(p) = r.next_packet().unwrap() {
        let pkt = parse(p.link_type, p.data)
            .unwrap_or_else(|e| panic!("packet {} does not parse: {e:?}", v.len() + 1));
        assert_eq!(
            p.data.len() as u32,
            p.orig_len,
            "no frame is cut by default"
        );
        v.push((p.ts, pkt));
    }
    v
}

/// The flow of a packet, the same both ways: protocol and the two ends (address and
/// port, or the echo identifier for ICMP), in order.
type FlowKey = (u8, (IpAddr, u16), (IpAddr, u16));

fn flow_key(p: &Packet) -> FlowKey {
    let (sp, dp) = if p.protocol == 1 || p.protocol == 58 {
        (p.icmp_id, p.icmp_id)
    } else {
        (p.src_port, p.dst_port)
    };
    let (x, y) = ((p.src, sp), (p.dst, dp));
    (p.protocol, x.min(y), x.max(y))
}

#[test]
fn the_same_flags_give_the_same_bytes_another_seed_others() {
    let dir = tempfile::tempdir().unwrap();
    let [a, b, c] = ["a.pcap", "b.pcap", "c.pcap"].map(|n| dir.path().join(n));
    synth(&a, &["--seed", "7"]);
    synth(&b, &["--seed", "7"]);
    synth(&c, &["--seed", "8"]);
    let [a, b, c] = [a, b, c].map(|p| std::fs::read(p).unwrap());
    assert!(a == b, "the same seed gave different captures");
    assert!(a != c, "another seed gave the same capture");
    // Standard output gets the same bytes as a file.
    let out = vpcgate()
        .current_dir(root())
        .args(["synth", "-o", "-", "--seed", "7"])
        .args(["--packets", &PACKETS.to_string()])
        .args(["--flows", &FLOWS.to_string()])
        .assert()
        .success()
        .get_output()
        .clone();
    assert!(out.stdout == a, "`-o -` wrote other bytes than `-o FILE`");
}

#[test]
fn the_capture_reads_back_as_many_flows_of_every_kind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.pcap");
    // A fifth of the flows rejected: SecureCart rejects every ping, so ICMP flows are
    // among the rejected ones.
    let summary = synth(&path, &["--reject-share", "0.2"]);
    assert!(summary.contains(&format!("{PACKETS} packets")), "{summary}");
    let pkts = read(&path);
    assert_eq!(pkts.len(), PACKETS);
    assert!(
        pkts.windows(2).all(|w| w[0].0 <= w[1].0),
        "timestamps go backwards"
    );
    let first = pkts[0].0;
    let span = pkts[PACKETS - 1].0 .0 - first.0;
    assert_eq!(first, Timestamp::from_secs_nanos(1_700_000_000, 0));
    assert!(
        (500e9..700e9).contains(&(span as f64)),
        "the default --duration is 600 s; the capture spans {span} ns"
    );
    let count = |f: &dyn Fn(&Packet) -> bool| pkts.iter().filter(|(_, p)| f(p)).count();
    let tcp = count(&|p| p.protocol == 6);
    let udp = count(&|p| p.protocol == 17);
    let icmp = count(&|p| p.protocol == 1 || p.protocol == 58);
    let v6 = count(&|p| p.src.is_ipv6());
    let dns = count(&|p| p.protocol == 17 && (p.src_port == 53 || p.dst_port == 53));
    assert!(
        tcp > PACKETS / 2 && udp > 500 && icmp > 10 && v6 > 500 && dns > 500,
        "tcp {tcp}, udp {udp}, icmp {icmp}, ipv6 {v6}, dns {dns}"
    );
    assert_eq!(tcp + udp + icmp, PACKETS);
    // Handshakes, closes both ways, and resets.
    let flags = |f: u8| count(&|p| p.protocol == 6 && p.tcp_flags & 0x17 == f);
    assert!(flags(0x02) > 100 && flags(0x12) > 100 && flags(0x11) > 100 && flags(0x14) > 5);
    // Between subnets, from the internet to public addresses, and out to the internet.
    let internal = |a: IpAddr| matches!(a, IpAddr::V4(v) if v.octets()[0] == 10);
    assert!(count(&|p| internal(p.src) && internal(p.dst)) > 1000);
    assert!(count(&|p| p.dst.to_string().starts_with("203.0.113.")) > 100);
    assert!(count(&|p| internal(p.src) && !internal(p.dst) && p.protocol == 6) > 100);
    let flows: HashSet<FlowKey> = pkts.iter().map(|(_, p)| flow_key(p)).collect();
    assert!(
        flows.len() >= FLOWS,
        "{} flows, fewer than the {FLOWS} open at once",
        flows.len()
    );
}

#[test]
fn tshark_finds_every_checksum_good() {
    if !crate::support::require(
        crate::support::has_program("tshark"),
        "tshark is not installed: this test needs it (apt-get install tshark) to check \
         the checksums of vpcgate synth's packets",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.pcap");
    synth(&path, &["--reject-share", "0.2", "--seed", "3"]);
    let pkts = read(&path);
    let out = std::process::Command::new("tshark")
        .arg("-r")
        .arg(&path)
        .args(["-o", "ip.check_checksum:TRUE"])
        .args(["-o", "tcp.check_checksum:TRUE"])
        .args(["-o", "udp.check_checksum:TRUE"])
        .args(["-T", "fields"])
        .args(["-e", "ip.checksum.status", "-e", "tcp.checksum.status"])
        .args(["-e", "udp.checksum.status", "-e", "icmp.checksum.status"])
        .args(["-e", "icmpv6.checksum.status"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    // Status 0 is "Bad", 1 "Good", 2 "Unverified" (`tshark -G values`).
    let mut good = [0usize; 5];
    let mut lines = 0;
    for (n, line) in text.lines().enumerate() {
        lines += 1;
        for (i, field) in line.split('\t').enumerate() {
            for status in field.split(',').filter(|s| !s.is_empty()) {
                assert_eq!(
                    status,
                    "1",
                    "packet {}: checksum status {status} in {line:?}",
                    n + 1
                );
                good[i] += 1;
            }
        }
    }
    assert_eq!(lines, PACKETS);
    let count = |f: &dyn Fn(&Packet) -> bool| pkts.iter().filter(|(_, p)| f(p)).count();
    assert_eq!(
        good,
        [
            count(&|p| p.src.is_ipv4()),
            count(&|p| p.protocol == 6),
            count(&|p| p.protocol == 17),
            count(&|p| p.protocol == 1),
            count(&|p| p.protocol == 58),
        ],
        "checksums verified: IPv4, TCP, UDP, ICMP, ICMPv6"
    );
}

/// What `--reject-share` promises: the share of flows whose first packet the ruleset
/// rejects. Every new flow's first packet is classified by the same engine, and the
/// generator keeps the count within one flow of the share; replay must agree, up to
/// the rare flow whose 5-tuple repeats an earlier one's (they count as one here).
#[test]
fn a_replay_rejects_the_share_of_flows_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.pcap");
    let verdicts = dir.path().join("v.jsonl");
    let summary = synth(
        &path,
        &[
            "--rules",
            "rulesets/securecart.toml",
            "--reject-share",
            "0.2",
        ],
    );
    assert!(summary.contains("20.0 % rejected"), "{summary}");
    vpcgate()
        .current_dir(root())
        .args(["replay", "--rules", "rulesets/securecart.toml"])
        .arg(&path)
        .arg("--verdicts")
        .arg(&verdicts)
        .arg("-q")
        .assert()
        .success();
    let actions: Vec<String> = std::fs::read_to_string(&verdicts)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["action"].as_str().unwrap().to_string()
        })
        .collect();
    let pkts = read(&path);
    assert_eq!(actions.len(), pkts.len());
    let mut first: HashMap<FlowKey, &str> = HashMap::new();
    for ((_, p), a) in pkts.iter().zip(&actions) {
        first.entry(flow_key(p)).or_insert(a);
    }
    let rejected = first.values().filter(|a| **a == "REJECT").count();
    let share = rejected as f64 / first.len() as f64;
    assert!(
        (share - 0.2).abs() < 0.01,
        "{rejected} of {} flows rejected at their first packet ({share:.4}), not 20 %",
        first.len()
    );
    // The rest pass: accepted, or exempt (DNS to the Amazon resolver).
    for a in ["ACCEPT", "REJECT", "NONE"] {
        assert!(actions.iter().any(|x| x == a), "no {a} verdict");
    }
    assert!(first.values().any(|a| *a == "NONE"));
}

#[test]
fn a_ruleset_that_does_not_load_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s.pcap");
    let missing = dir.path().join("no-such-vpc.toml");
    let assert = vpcgate()
        .args(["synth", "-o"])
        .arg(&out)
        .arg("--rules")
        .arg(&missing)
        .assert()
        .code(2);
    let stderr = String::from_utf8(assert.get_output().stderr.clone()).unwrap();
    assert!(stderr.contains("no-such-vpc.toml"), "{stderr}");
    assert!(
        !out.exists(),
        "nothing is written when the ruleset does not load"
    );
    // A share out of range names the flag.
    let assert = vpcgate()
        .args(["synth", "-o"])
        .arg(&out)
        .args(["--reject-share", "1.5"])
        .assert()
        .code(2);
    let stderr = String::from_utf8(assert.get_output().stderr.clone()).unwrap();
    assert!(stderr.contains("--reject-share"), "{stderr}");
}
