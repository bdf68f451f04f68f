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
    let mut out = PcapOut::create(path);
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
        out.record(1_700_000_000u64 * 1_000_000 + u64::from(i) * 10, &frame);
    }
    out.finish();
}

/// A classic pcap file (microseconds, Ethernet) written record by record.
struct PcapOut(std::io::BufWriter<std::fs::File>);

impl PcapOut {
    fn create(path: &Path) -> PcapOut {
        let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
        let mut h = Vec::new();
        h.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&[0; 8]);
        h.extend_from_slice(&65535u32.to_le_bytes());
        h.extend_from_slice(&1u32.to_le_bytes());
        out.write_all(&h).unwrap();
        PcapOut(out)
    }

    /// One record at `micros` microseconds since the epoch.
    fn record(&mut self, micros: u64, frame: &[u8]) {
        let mut rec = [0u8; 16];
        rec[0..4].copy_from_slice(&((micros / 1_000_000) as u32).to_le_bytes());
        rec[4..8].copy_from_slice(&((micros % 1_000_000) as u32).to_le_bytes());
        rec[8..12].copy_from_slice(&(frame.len() as u32).to_le_bytes());
        rec[12..16].copy_from_slice(&(frame.len() as u32).to_le_bytes());
        self.0.write_all(&rec).unwrap();
        self.0.write_all(frame).unwrap();
    }

    fn finish(mut self) {
        self.0.flush().unwrap();
    }
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
    const SYNS: u32 = 2_000_000;
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
    // The flood lasts 20 s; an unestablished TCP entry lives far longer, so the
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
    // Memory: two million flows unbounded would take hundreds of MiB.
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

/// A pcap header and one record header claiming `caplen` bytes (none follow).
fn pcap_with_record(snaplen: u32, caplen: u32, data: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    f.extend_from_slice(&2u16.to_le_bytes());
    f.extend_from_slice(&4u16.to_le_bytes());
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&snaplen.to_le_bytes());
    f.extend_from_slice(&1u32.to_le_bytes());
    f.extend_from_slice(&1u32.to_le_bytes());
    f.extend_from_slice(&0u32.to_le_bytes());
    f.extend_from_slice(&caplen.to_le_bytes());
    f.extend_from_slice(&caplen.to_le_bytes());
    f.extend_from_slice(data);
    f
}

fn read_all(bytes: Vec<u8>) -> (usize, Option<String>) {
    use vpcgate::capture::{Block, CaptureReader};
    let mut r = match CaptureReader::from_reader("t", Box::new(std::io::Cursor::new(bytes))) {
        Ok(r) => r,
        Err(e) => return (0, Some(e.to_string())),
    };
    let mut b = Block::default();
    let mut n = 0;
    loop {
        match r.read_block(&mut b, 1024) {
            Ok(()) if b.records.is_empty() => return (n, None),
            Ok(()) => n += b.records.len(),
            Err(e) => return (n, Some(e.to_string())),
        }
    }
}

#[test]
fn giant_record_lengths_are_damage_not_allocations() {
    // 4 GiB claimed: refused from the header alone, before any read or allocation.
    let (n, e) = read_all(pcap_with_record(65535, u32::MAX, &[]));
    assert_eq!(n, 0);
    let e = e.unwrap();
    assert!(e.contains("at byte offset 24"), "{e}");
    // Just above the 256 KiB bound, likewise.
    let (_, e) = read_all(pcap_with_record(
        65535,
        vpcgate::capture::MAX_CAPLEN + 1,
        &[],
    ));
    assert!(e.is_some());
}

#[test]
fn a_snaplen_lie_is_bounded_by_the_record_limit_not_trusted() {
    // The file says snaplen 64, the record carries 1,000 bytes: read (bounded by
    // MAX_CAPLEN, not by the header's claim), never past the record.
    let (n, e) = read_all(pcap_with_record(64, 1000, &[0u8; 1000]));
    assert_eq!((n, e), (1, None));
    // A snaplen of 0 or 2^32-1 changes nothing either.
    for snaplen in [0, u32::MAX] {
        assert_eq!(
            read_all(pcap_with_record(snaplen, 60, &[0u8; 60])),
            (1, None)
        );
    }
}

#[test]
fn pcapng_block_lengths_cannot_loop_or_balloon() {
    let shb = |len: u32| {
        let mut b = Vec::new();
        b.extend_from_slice(&0x0a0d_0d0au32.to_le_bytes());
        b.extend_from_slice(&len.to_le_bytes());
        b.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(&(-1i64).to_le_bytes());
        b.extend_from_slice(&len.to_le_bytes());
        b
    };
    let mut f = shb(28);
    // A block whose length would not move the reader forward (0, 4, 8), one that is
    // not a multiple of 4, and one of 4 GiB: each is damage at its own offset.
    for bad in [0u32, 4, 8, 30, u32::MAX] {
        let mut g = f.clone();
        g.extend_from_slice(&1u32.to_le_bytes()); // IDB
        g.extend_from_slice(&bad.to_le_bytes());
        g.extend_from_slice(&[0; 16]);
        let (n, e) = read_all(g);
        assert_eq!(n, 0);
        let e = e.unwrap_or_else(|| panic!("length {bad}: no error"));
        assert!(e.contains("at byte offset 28"), "length {bad}: {e}");
    }
    // Ten thousand empty section headers in a row: read in one linear pass.
    for _ in 0..10_000 {
        f.extend(shb(28));
    }
    assert_eq!(read_all(f), (0, None));
}

#[test]
fn ipv6_extension_chains_are_bounded() {
    // 40-byte IPv6 header, then a chain of destination-options headers (8 bytes
    // each), then an 8-byte UDP header.
    let chain = |n: usize| {
        let mut f = vec![0x60, 0, 0, 0];
        let payload = (n * 8 + 8) as u16;
        f.extend_from_slice(&payload.to_be_bytes());
        f.push(if n == 0 { 17 } else { 60 });
        f.push(64);
        f.extend_from_slice(&[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        f.extend_from_slice(&[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        for i in 0..n {
            f.push(if i + 1 == n { 17 } else { 60 });
            f.extend_from_slice(&[0; 7]);
        }
        f.extend_from_slice(&[0, 53, 0, 53, 0, 8, 0, 0]);
        f
    };
    let raw = vpcgate::wire::packet::linktype::RAW;
    let limit = vpcgate::wire::packet::MAX_IPV6_EXTENSIONS;
    assert!(vpcgate::wire::packet::parse(raw, &chain(limit)).is_ok());
    let e = vpcgate::wire::packet::parse(raw, &chain(limit + 1)).unwrap_err();
    assert_eq!(e.reason(), "bad-ipv6-extension");
    // A chain as long as a jumbo frame allows is refused just as fast.
    assert!(vpcgate::wire::packet::parse(raw, &chain(8000)).is_err());
}

/// Writes `n` first fragments of TCP SYNs to the SecureCart ALB's public address on
/// 443 (distinct sources and IP ids, one every 10 µs), then, for the first `later` of
/// them, their second and last fragment.
fn write_fragment_flood(path: &Path, n: u32, later: u32) {
    let mut out = PcapOut::create(path);
    let mut t = 1_700_000_000u64 * 1_000_000;
    // First fragment: IP header, TCP header, 4 bytes of data (24 = 3 × 8 bytes).
    let mut first = [0u8; 14 + 20 + 24];
    first[12] = 0x08;
    first[14] = 0x45;
    first[16..18].copy_from_slice(&44u16.to_be_bytes());
    first[20..22].copy_from_slice(&0x2000u16.to_be_bytes()); // MF, offset 0
    first[22] = 64;
    first[23] = 6;
    first[30..34].copy_from_slice(&[203, 0, 113, 10]);
    first[36..38].copy_from_slice(&443u16.to_be_bytes());
    first[46] = 0x50;
    first[47] = 0x02; // SYN
                      // Last fragment: offset 3 (24 bytes), 16 bytes of data.
    let mut last = [0u8; 14 + 20 + 16];
    last[12] = 0x08;
    last[14] = 0x45;
    last[16..18].copy_from_slice(&36u16.to_be_bytes());
    last[20..22].copy_from_slice(&3u16.to_be_bytes());
    last[22] = 64;
    last[23] = 6;
    last[30..34].copy_from_slice(&[203, 0, 113, 10]);
    let src = |i: u32| (0x6440_0000u32 + i).to_be_bytes();
    for i in 0..n {
        first[18..20].copy_from_slice(&(i as u16).to_be_bytes());
        first[26..30].copy_from_slice(&src(i));
        first[34..36].copy_from_slice(&(1024 + (i % 60000) as u16).to_be_bytes());
        out.record(t, &first);
        t += 10;
    }
    for i in 0..later {
        last[18..20].copy_from_slice(&(i as u16).to_be_bytes());
        last[26..30].copy_from_slice(&src(i));
        out.record(t, &last);
        t += 10;
    }
    out.finish();
}

#[test]
fn a_fragment_flood_is_bounded_and_later_fragments_find_their_first() {
    // 400,000 first fragments in 4 s: more than the engine (65,536 per worker) and the
    // reader's routing (262,144) remember. The run stays bounded, and the later
    // fragments of the first 1,000 (remembered everywhere) take their first
    // fragment's verdict, with 1 and 2 workers alike.
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("frags.pcap");
    write_fragment_flood(&cap, 400_000, 1_000);
    let mut verdicts = Vec::new();
    for workers in [1, 2] {
        let out = dir.path().join(format!("v{workers}.jsonl"));
        let summary = Command::cargo_bin("vpcgate")
            .unwrap()
            .current_dir(root())
            .args([
                "replay",
                "--rules",
                "rulesets/securecart.toml",
                "--json",
                "--no-progress",
            ])
            .arg(&cap)
            .arg("--verdicts")
            .arg(&out)
            .args(["--workers", &workers.to_string()])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        let summary: serde_json::Value = serde_json::from_slice(&summary).unwrap();
        assert_eq!(summary["packets"], 401_000, "{summary}");
        let rss = summary["peak_rss_bytes"].as_u64().unwrap();
        assert!(rss < 400 << 20, "peak RSS {rss} bytes");
        let text = std::fs::read_to_string(&out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 401_000);
        // The SG allows HTTPS from anywhere: first fragments and their later
        // fragments are accepted (a later fragment judged with unknown ports would
        // be rejected: no rule allows every port).
        let accepted = |l: &&str| l.contains("\"action\":\"ACCEPT\"");
        assert!(lines[..1_000].iter().all(accepted));
        assert!(
            lines[400_000..].iter().all(accepted),
            "a later fragment lost its first"
        );
        verdicts.push(text);
    }
    assert!(
        verdicts[0] == verdicts[1],
        "verdicts differ between 1 and 2 workers"
    );
}
