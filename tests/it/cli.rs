//! The command line: the README's commands, exit statuses and messages for people
//! (CLI.md "Exit status"; STYLE.md "Errors are for people").

use crate::determinism::root;
use assert_cmd::Command;
use std::io::Read;

fn vpcgate() -> Command {
    Command::cargo_bin("vpcgate").unwrap()
}

fn stderr_of(cmd: &mut Command, code: i32) -> String {
    let out = cmd.assert().code(code).get_output().clone();
    String::from_utf8(out.stderr).unwrap()
}

/// The bundled captures are what `vpcgate::synth` writes. After a deliberate change to
/// the demo traffic, `VPCGATE_BLESS=1 cargo test the_bundled_pcaps` rewrites them.
#[test]
fn the_bundled_pcaps_are_what_the_generator_writes() {
    let bless = std::env::var_os("VPCGATE_BLESS").is_some_and(|v| v == "1");
    let dir = tempfile::tempdir().unwrap();
    for (name, t) in [
        ("securecart.pcap", vpcgate::synth::securecart_demo()),
        ("lesson-stateful.pcap", vpcgate::synth::lesson_stateful()),
    ] {
        let path = dir.path().join(name);
        let mut w = vpcgate::capture::PcapWriter::create(&path).unwrap();
        t.write_pcap(&mut w).unwrap();
        w.finish().unwrap();
        let bundled = root().join("pcaps").join(name);
        if bless {
            std::fs::copy(&path, &bundled).unwrap();
            println!("wrote {} packets to {}", t.len(), bundled.display());
        }
        let committed = std::fs::read(&bundled).unwrap();
        assert!(
            std::fs::read(&path).unwrap() == committed,
            "pcaps/{name} is stale: run `VPCGATE_BLESS=1 cargo test the_bundled_pcaps` \
             to rewrite it"
        );
    }
}

/// The lesson of rulesets/lesson-stateful.toml, as its comments tell it.
#[test]
fn the_stateful_lesson_shows_what_it_says() {
    let out = vpcgate()
        .current_dir(root())
        .args([
            "replay",
            "--rules",
            "rulesets/lesson-stateful.toml",
            "pcaps/lesson-stateful.pcap",
        ])
        .args(["--verdicts", "-", "--quiet"])
        .assert()
        .success()
        .get_output()
        .clone();
    let v: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let of = |pred: &dyn Fn(&serde_json::Value) -> bool| -> Vec<(String, String)> {
        v.iter()
            .filter(|x| pred(x))
            .map(|x| {
                (
                    x["action"].as_str().unwrap().to_string(),
                    x["reason"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    };
    // 1. HTTP: both ways accepted, although the SG has no outbound rule.
    let http = of(&|x| x["protocol"] == 6 && (x["src_port"] == 80 || x["dst_port"] == 80));
    assert!(
        http.len() >= 10 && http.iter().all(|(a, _)| a == "ACCEPT"),
        "{http:?}"
    );
    // 2. Ping: requests accepted, replies dropped by the NACL's `*` rule.
    let requests = of(&|x| x["icmp_type"] == 8);
    let replies = of(&|x| x["icmp_type"] == 0);
    assert_eq!(requests, vec![("ACCEPT".to_string(), String::new()); 4]);
    let nacl = (
        "REJECT".to_string(),
        "nacl-outbound acl-0c1a55e0000000001 rule 32767".to_string(),
    );
    assert_eq!(replies, vec![nacl; 4]);
    // 3. The server's own connection: rejected by the security group.
    let own = of(&|x| x["dst_port"] == 443);
    let sg = (
        "REJECT".to_string(),
        "sg-egress eni-0c1a55e0000000001 no rule".to_string(),
    );
    assert_eq!(own, vec![sg; 3]);
}

#[test]
fn readme_first_command_on_the_bundled_example() {
    let dir = tempfile::tempdir().unwrap();
    let flows = dir.path().join("flows.log");
    let verdicts = dir.path().join("verdicts.jsonl");
    let out = vpcgate()
        .current_dir(root())
        .args([
            "replay",
            "--rules",
            "rulesets/securecart.toml",
            "pcaps/securecart.pcap",
            "--flow-log",
        ])
        .arg(&flows)
        .arg("--verdicts")
        .arg(&verdicts)
        .assert()
        .success()
        .get_output()
        .clone();
    let summary = String::from_utf8(out.stdout).unwrap();
    assert!(summary.contains("rejected"), "{summary}");
    // The teaching point of the SecureCart ruleset shows in the summary.
    assert!(
        summary.contains("nacl-outbound acl-0a1b2c3d4e5f60020 rule * (default deny)"),
        "{summary}"
    );
    assert!(
        summary.contains("39 of these were replies of tracked connections: NACLs are stateless"),
        "{summary}"
    );
    assert!(
        summary.contains("not exercised by this capture"),
        "{summary}"
    );
    let log = std::fs::read_to_string(&flows).unwrap();
    assert_eq!(
        log.lines().next().unwrap(),
        "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status"
    );
    let packets = vpcgate_packets(&root().join("pcaps/securecart.pcap"));
    let lines = std::fs::read_to_string(&verdicts).unwrap();
    assert_eq!(lines.lines().count(), packets, "one verdict per packet");
    for (i, l) in lines.lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["packet"], i + 1);
        assert!(["ACCEPT", "REJECT", "NONE"].contains(&v["action"].as_str().unwrap()));
    }
}

fn vpcgate_packets(path: &std::path::Path) -> usize {
    let mut r = vpcgate::capture::CaptureReader::open(path).unwrap();
    let mut n = 0;
    while r.next_packet().unwrap().is_some() {
        n += 1;
    }
    n
}

#[test]
fn json_summary_and_gzip_flow_log() {
    let dir = tempfile::tempdir().unwrap();
    let flows = dir.path().join("flows.log.gz");
    let out = vpcgate()
        .current_dir(root())
        .args([
            "replay",
            "--rules",
            "rulesets/securecart-aws",
            "pcaps/securecart.pcap",
            "--json",
            "--flow-log",
        ])
        .arg(&flows)
        .assert()
        .success()
        .get_output()
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let n = |k: &str| v[k].as_u64().unwrap();
    assert_eq!(
        n("packets"),
        n("accepted") + n("rejected") + n("not_evaluated")
    );
    assert!(n("rejected") > 0);
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(&flows).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    assert!(text.starts_with("version account-id"));
    assert_eq!(
        text.lines().count() as u64,
        1 + n("flow_records") + n("nodata_records")
    );
}

#[test]
fn missing_rules_is_a_usage_error() {
    let err = stderr_of(vpcgate().args(["replay", "x.pcap"]), 2);
    assert!(err.contains("--rules"), "{err}");
}

#[test]
fn bad_ruleset_names_file_line_column_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    let text = std::fs::read_to_string(root().join("rulesets/securecart.toml"))
        .unwrap()
        .replace("{ rule = 90,", "{ rule = 40000,");
    std::fs::write(&bad, &text).unwrap();
    let line = text
        .lines()
        .position(|l| l.contains("rule = 40000"))
        .unwrap()
        + 1;
    let err = stderr_of(
        vpcgate()
            .arg("replay")
            .arg("--rules")
            .arg(&bad)
            .arg(root().join("pcaps/securecart.pcap")),
        2,
    );
    assert!(
        err.contains(&format!("bad.toml:{line}:")),
        "no file:line in: {err}"
    );
    assert!(err.contains("40000") && err.contains("1..=32766"), "{err}");
}

#[test]
fn bad_log_format_and_interval_are_usage_errors() {
    let pcap = root().join("pcaps/securecart.pcap");
    let rules = root().join("rulesets/securecart.toml");
    let err = stderr_of(
        vpcgate()
            .arg("replay")
            .arg("--rules")
            .arg(&rules)
            .arg(&pcap)
            .args(["--log-format", "${versoin}"]),
        2,
    );
    assert!(err.contains("versoin") && err.contains("version"), "{err}");
    let err = stderr_of(
        vpcgate()
            .arg("replay")
            .arg("--rules")
            .arg(&rules)
            .arg(&pcap)
            .args(["--aggregation-interval", "30"]),
        2,
    );
    assert!(err.contains("60 or 600"), "{err}");
}

#[test]
fn damaged_capture_keeps_everything_before_the_damage() {
    let dir = tempfile::tempdir().unwrap();
    let whole = std::fs::read(root().join("pcaps/securecart.pcap")).unwrap();
    // Cut inside the 101st record: walk the classic pcap records by hand.
    let mut off = 24usize;
    for _ in 0..100 {
        let caplen = u32::from_le_bytes(whole[off + 8..off + 12].try_into().unwrap()) as usize;
        off += 16 + caplen;
    }
    let cut = dir.path().join("cut.pcap");
    std::fs::write(&cut, &whole[..off + 20]).unwrap();
    let verdicts = dir.path().join("v.jsonl");
    let flows = dir.path().join("f.log");
    let err = stderr_of(
        vpcgate()
            .arg("replay")
            .arg("--rules")
            .arg(root().join("rulesets/securecart.toml"))
            .arg(&cut)
            .arg("--verdicts")
            .arg(&verdicts)
            .arg("--flow-log")
            .arg(&flows)
            .arg("-q"),
        1,
    );
    assert!(err.contains("cut.pcap"), "{err}");
    assert!(
        err.contains(&format!("byte offset {off}")),
        "expected offset {off} in: {err}"
    );
    assert_eq!(
        std::fs::read_to_string(&verdicts).unwrap().lines().count(),
        100
    );
    assert!(std::fs::read_to_string(&flows).unwrap().lines().count() > 1);
}

#[test]
fn not_a_capture() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("notes.txt");
    std::fs::write(&f, "hello, this is not a pcap file at all").unwrap();
    let err = stderr_of(
        vpcgate()
            .arg("replay")
            .arg("--rules")
            .arg(root().join("rulesets/securecart.toml"))
            .arg(&f),
        1,
    );
    assert!(
        err.contains("notes.txt") && err.contains("offset 0"),
        "{err}"
    );
}

#[test]
fn help_teaches_and_points_to_the_manual() {
    let out = vpcgate()
        .args(["replay", "--help"])
        .assert()
        .success()
        .get_output()
        .clone();
    let help = String::from_utf8(out.stdout).unwrap();
    for s in [
        "--rules-at",
        "--log-format",
        "Examples:",
        "vpcgate manual",
        "Exit status",
    ] {
        assert!(help.contains(s), "--help lacks {s}");
    }
    let out = vpcgate()
        .arg("manual")
        .assert()
        .success()
        .get_output()
        .clone();
    let manual = String::from_utf8(out.stdout).unwrap();
    assert!(manual.starts_with("## Manual of emulation decisions"));
    assert!(manual.contains("Untracked"));
}

#[test]
fn reads_standard_input() {
    let pcap = std::fs::read(root().join("pcaps/securecart.pcap")).unwrap();
    let out = vpcgate()
        .arg("replay")
        .arg("--rules")
        .arg(root().join("rulesets/securecart.toml"))
        .args(["-", "--json"])
        .write_stdin(pcap)
        .assert()
        .success()
        .get_output()
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["packets"].as_u64().unwrap() as usize,
        vpcgate_packets(&root().join("pcaps/securecart.pcap"))
    );
}

/// A packet with a bogus timestamp far in the future must not make vpcgate walk
/// millions of empty windows (it did, writing NODATA, once): long gaps are skipped
/// and counted.
#[test]
fn a_bogus_timestamp_gap_is_skipped_not_walked() {
    use vpcgate::synth::Frame;
    use vpcgate::wire::packet::Timestamp;
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("gap.pcap");
    let mut w = vpcgate::capture::PcapWriter::create(&cap).unwrap();
    let f = Frame::Udp {
        src: "192.0.2.7".parse().unwrap(),
        sport: 40000,
        dst: "203.0.113.10".parse().unwrap(),
        dport: 443,
        payload: 10,
    }
    .build();
    for secs in [1_700_000_000u64, 4_294_901_760] {
        w.write_packet(Timestamp::from_secs_nanos(secs, 0), 1, &f, f.len() as u32)
            .unwrap();
    }
    w.finish().unwrap();
    let out = vpcgate()
        .arg("replay")
        .arg("--rules")
        .arg(root().join("rulesets/securecart.toml"))
        .arg(&cap)
        .args(["--json", "--flow-log"])
        .arg(dir.path().join("f.log"))
        .timeout(std::time::Duration::from_secs(60))
        .assert()
        .success()
        .get_output()
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let windows = (4_294_901_760u64 / 600 + 1) - 1_700_000_000 / 600;
    let enis = 8;
    // Each of the two windows with a packet has 7 NODATA records (one ENI had the
    // packet); the first 10,000 empty windows after the first packet have 8 each;
    // the rest are counted as skipped.
    assert_eq!(
        v["nodata_records"].as_u64().unwrap(),
        2 * (enis - 1) + 10_000 * enis
    );
    assert_eq!(
        v["nodata_windows_skipped"].as_u64().unwrap(),
        windows - 2 - 10_000
    );
}
