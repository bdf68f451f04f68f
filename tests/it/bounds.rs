//! Memory bounds: `--max-flows` and what happens at it (issue "Hostile input").
//!
//! A flood of unique SYNs must run within the bound, reject what does not fit as
//! `conntrack-full` (EMULATION.md §4), count it, and keep the output the same for
//! any number of workers.

use crate::determinism::root;
use assert_cmd::Command;
use std::io::Write;
use std::path::Path;

/// Writes `n` TCP SYNs from `n` distinct internet sources to the SecureCart ALB's
/// public address on 443 (its security group allows HTTPS from anywhere), one every
/// 10 µs from 1,700,000,000 s.
fn write_syn_flood(path: &Path, n: u32) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    // pcap header: microseconds, Ethernet.
    let mut h = Vec::new();
    h.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    h.extend_from_slice(&2u16.to_le_bytes());
    h.extend_from_slice(&4u16.to_le_bytes());
    h.extend_from_slice(&[0; 8]);
    h.extend_from_slice(&65535u32.to_le_bytes());
    h.extend_from_slice(&1u32.to_le_bytes());
    out.write_all(&h).unwrap();
    let mut frame = [0u8; 54];
    frame[12] = 0x08; // IPv4
    let ip = &mut frame[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&40u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 6;
    ip[16..20].copy_from_slice(&[203, 0, 113, 10]);
    frame[36..38].copy_from_slice(&443u16.to_be_bytes());
    frame[46] = 0x50; // data offset 5
    frame[47] = 0x02; // SYN
    for i in 0..n {
        // Sources spread over 100.64.0.0/10 and ports, all distinct.
        let src = 0x6440_0000u32 + i;
        frame[26..30].copy_from_slice(&src.to_be_bytes());
        frame[34..36].copy_from_slice(&(1024 + (i % 60000) as u16).to_be_bytes());
        let t = 1_700_000_000u64 * 1_000_000 + u64::from(i) * 10;
        let mut rec = [0u8; 16];
        rec[0..4].copy_from_slice(&((t / 1_000_000) as u32).to_le_bytes());
        rec[4..8].copy_from_slice(&((t % 1_000_000) as u32).to_le_bytes());
        rec[8..12].copy_from_slice(&54u32.to_le_bytes());
        rec[12..16].copy_from_slice(&54u32.to_le_bytes());
        out.write_all(&rec).unwrap();
        out.write_all(&frame).unwrap();
    }
    out.flush().unwrap();
}

fn replay_json(capture: &Path, flow_log: &Path, workers: u32, max_flows: u64) -> serde_json::Value {
    let out = Command::cargo_bin("vpcgate")
        .unwrap()
        .current_dir(root())
        .args([
            "replay",
            "--rules",
            "rulesets/securecart.toml",
            "--json",
            "--no-progress",
        ])
        .arg(capture)
        .arg("--flow-log")
        .arg(flow_log)
        .args(["--workers", &workers.to_string()])
        .args(["--max-flows", &max_flows.to_string()])
        .assert()
        .success()
        .get_output()
        .clone();
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_syn_flood_runs_within_the_flow_bound_and_reports_what_it_dropped() {
    const SYNS: u32 = 1_000_000;
    const MAX: u64 = 6_400; // 100 per flow shard
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("flood.pcap");
    write_syn_flood(&cap, SYNS);
    let one = replay_json(&cap, &dir.path().join("f1.log"), 1, MAX);
    let ct = &one["conntrack"];
    let created = ct["created"].as_u64().unwrap();
    let exceeded = ct["max_flows_exceeded"].as_u64().unwrap();
    assert_eq!(one["packets"], SYNS);
    // Every SYN is allowed by the rules: it either got an entry or hit the bound.
    assert_eq!(created + exceeded, u64::from(SYNS), "{one}");
    assert_eq!(one["rejected"].as_u64().unwrap(), exceeded);
    assert_eq!(
        one["reject_reasons"]["conntrack-full eni-0a1b2c3d4e5f60101"].as_u64(),
        Some(exceeded),
        "{one}"
    );
    // The flood lasts 10 s; an unestablished TCP entry lives far longer, so the
    // table fills at the bound and stays full: almost all of the flood is refused.
    assert!(created <= MAX, "{created} entries for a bound of {MAX}");
    assert!(exceeded >= u64::from(SYNS) - MAX);
    assert_eq!(ct["max_flows"], MAX);
    // Open flow-log records are bounded too: the rest is counted in SKIPDATA records.
    let skipped = one["flow_log_skipped_packets"].as_u64().unwrap();
    assert!(skipped >= u64::from(SYNS) - 2 * MAX - 100, "{skipped}");
    let log = std::fs::read_to_string(dir.path().join("f1.log")).unwrap();
    let skipdata: Vec<&str> = log.lines().filter(|l| l.ends_with(" SKIPDATA")).collect();
    assert_eq!(skipdata.len(), 1, "one ENI, one window: {skipdata:?}");
    // AWS's shape: the packet fields are `-`, start and end span the skipped packets.
    let f: Vec<&str> = skipdata[0].split(' ').collect();
    assert_eq!(f[2], "eni-0a1b2c3d4e5f60101");
    assert!(f[3..10].iter().all(|x| *x == "-"), "{f:?}");
    assert_eq!(f[12], "-");
    // Records of traffic: at most the bound on open records.
    let ok = log.lines().filter(|l| l.ends_with(" OK")).count() as u64;
    assert!(ok <= 2 * MAX, "{ok} records");
    // Memory: a million flows unbounded would take hundreds of MiB.
    let rss = one["peak_rss_bytes"].as_u64().unwrap();
    assert!(rss < 200 << 20, "peak RSS {} MiB", rss >> 20);
    // The bound is split over flow shards, not workers: same bytes with 2 workers.
    let two = replay_json(&cap, &dir.path().join("f2.log"), 2, MAX);
    assert_eq!(two["conntrack"], one["conntrack"]);
    let log2 = std::fs::read_to_string(dir.path().join("f2.log")).unwrap();
    assert!(
        log2 == log,
        "the flow logs of 1 and 2 workers differ:\n{}",
        log.lines()
            .zip(log2.lines())
            .filter(|(a, b)| a != b)
            .take(3)
            .map(|(a, b)| format!("1: {a}\n2: {b}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
