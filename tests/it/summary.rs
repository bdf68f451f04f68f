//! The summary (text and JSON): totals first, top entries of each list, reasons a
//! person can read, notes about a capture or ruleset that do not fit, counters that
//! say what they count, rule coverage as fields.

use crate::determinism::root;
use assert_cmd::Command;
use std::path::{Path, PathBuf};
use vpcgate::capture::PcapWriter;
use vpcgate::synth::Frame;
use vpcgate::wire::packet::Timestamp;

fn vpcgate() -> Command {
    Command::cargo_bin("vpcgate").unwrap()
}

/// Runs `replay` with `args` (in the repository root) and returns standard output.
fn replay(args: &[&str]) -> String {
    let out = vpcgate()
        .current_dir(root())
        .arg("replay")
        .args(args)
        .assert()
        .success()
        .get_output()
        .clone();
    String::from_utf8(out.stdout).unwrap()
}

fn replay_json(args: &[&str]) -> serde_json::Value {
    let mut a = args.to_vec();
    a.push("--json");
    serde_json::from_str(&replay(a.as_slice())).unwrap()
}

fn demo() -> String {
    replay(&[
        "--rules",
        "rulesets/securecart.toml",
        "pcaps/securecart.pcap",
    ])
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A VPC of `enis` ENIs in one subnet (10.9.0.0/16), whose NACL allows everything;
/// ENI i has security group `i % groups`, named `tier-<n>`, which lets in only
/// tcp 443.
fn many_eni_ruleset(dir: &Path, enis: usize, groups: usize) -> PathBuf {
    let mut t = String::from(
        r#"[vpc]
id = "vpc-0000000000000a001"
account_id = "123456789012"
region = "eu-west-1"
cidrs = ["10.9.0.0/16"]

[[subnets]]
id = "subnet-0000000000000a001"
cidr = "10.9.0.0/16"
network_acl = "acl-0000000000000a001"

[[network_acls]]
id = "acl-0000000000000a001"
inbound = [ { rule = 100, protocol = "-1", cidr = "0.0.0.0/0", action = "allow" } ]
outbound = [ { rule = 100, protocol = "-1", cidr = "0.0.0.0/0", action = "allow" } ]
"#,
    );
    for g in 0..groups {
        t.push_str(&format!(
            r#"
[[security_groups]]
id = "sg-{g:017x}"
name = "tier-{g}"
ingress = [ {{ protocol = "tcp", ports = "443", cidr = "0.0.0.0/0" }} ]
egress = [ {{ protocol = "-1", cidr = "0.0.0.0/0" }} ]
"#
        ));
    }
    for i in 0..enis {
        t.push_str(&format!(
            r#"
[[network_interfaces]]
id = "eni-{i:017x}"
subnet = "subnet-0000000000000a001"
private_ips = ["{}"]
security_groups = ["sg-{:017x}"]
"#,
            eni_ip(i),
            i % groups
        ));
    }
    let p = dir.join("many.toml");
    std::fs::write(&p, t).unwrap();
    p
}

fn eni_ip(i: usize) -> String {
    format!("10.9.{}.{}", 1 + i / 200, 10 + i % 200)
}

/// Writes `frames` one millisecond apart from 1,700,000,000 s.
fn write_capture(path: &Path, frames: &[Frame]) {
    let mut w = PcapWriter::create(path).unwrap();
    for (k, f) in frames.iter().enumerate() {
        let b = f.build();
        let ts = Timestamp::from_secs_nanos(1_700_000_000, k as u32 * 1_000_000);
        w.write_packet(ts, 1, &b, b.len() as u32).unwrap();
    }
    w.finish().unwrap();
}

fn syn(src: &str, sport: u16, dst: &str, dport: u16) -> Frame {
    Frame::Tcp {
        src: src.parse().unwrap(),
        sport,
        dst: dst.parse().unwrap(),
        dport,
        flags: 0x02,
        seq: 1,
        ack: 0,
        payload: 0,
    }
}

/// A 400-ENI VPC probed on port 22 at every ENI, and on 443 at some: the totals come
/// first, each list shows its top entries, and the SG rejects are grouped by the
/// security groups checked (ids and names), not listed per ENI.
#[test]
fn a_many_eni_summary_is_short_and_puts_totals_first() {
    let dir = tempfile::tempdir().unwrap();
    let rules = many_eni_ruleset(dir.path(), 400, 12);
    let mut frames = Vec::new();
    for i in 0..400 {
        frames.push(syn("198.51.100.7", 40000 + i as u16, &eni_ip(i), 22));
        if i % 4 == 0 {
            frames.push(syn("198.51.100.8", 40000 + i as u16, &eni_ip(i), 443));
        }
    }
    let cap = dir.path().join("probe.pcap");
    write_capture(&cap, &frames);
    let text = replay(&["--rules", s(&rules), s(&cap)]);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() <= 50, "{} lines:\n{text}", lines.len());
    let at = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in\n{text}"))
    };
    assert!(at("rejected") < at("Rejected, by the check"), "{text}");
    assert!(
        at("Connection tracking") < at("Rejected, by the check"),
        "{text}"
    );
    // 12 groups of SG rejects: the top 10, then the rest counted.
    assert!(
        text.contains("sg-ingress: no rule of sg-00000000000000000 (tier-0) allowed it"),
        "{text}"
    );
    assert!(
        text.contains("at 34 ENI(s): eni-00000000000000000, "),
        "{text}"
    );
    assert!(text.contains("  … and 2 more (see --json)"), "{text}");
    assert!(!text.contains("no rule\n"), "no per-ENI lines:\n{text}");

    let v = replay_json(&["--rules", s(&rules), s(&cap)]);
    let groups = v["rejects"].as_array().unwrap();
    assert_eq!(groups.len(), 12, "{v}");
    let enis: usize = groups
        .iter()
        .map(|g| g["enis"].as_array().unwrap().len())
        .sum();
    assert_eq!(enis, 400);
    assert_eq!(groups[0]["check"], "sg-ingress");
    assert_eq!(groups[0]["groups"][0]["name"], "tier-0");
    assert_eq!(v["rejected"], 400);
}

/// The bundled demo fits a screen.
#[test]
fn the_demo_summary_fits_a_screen() {
    let text = demo();
    assert!(text.lines().count() <= 40, "{text}");
}

/// `rule 32767` is the implicit `*` entry: the summary says so; verdict lines keep
/// their fixed `reason`. NACL drops of replies of tracked connections get the
/// stateless hint.
#[test]
fn default_deny_is_named_and_stateless_replies_get_a_hint() {
    let text = demo();
    assert!(!text.contains("32767"), "{text}");
    assert!(
        text.contains("  39  nacl-outbound acl-0a1b2c3d4e5f60020 rule * (default deny)\n              39 of these were replies of tracked connections: NACLs are stateless, the reply needs its own rule (ephemeral ports)"),
        "{text}"
    );
    // Rejected SYNs of the internet are not replies: no hint.
    assert!(
        text.contains("7  nacl-inbound acl-0a1b2c3d4e5f60010 rule * (default deny)\n           2"),
        "{text}"
    );
    let verdicts = replay(&[
        "--rules",
        "rulesets/securecart.toml",
        "pcaps/securecart.pcap",
        "--verdicts",
        "-",
        "--quiet",
    ]);
    assert!(
        verdicts.contains(r#""reason":"nacl-outbound acl-0a1b2c3d4e5f60020 rule 32767","rule":"* (default deny)"}"#),
        "verdict reasons are fixed; a field says what rule 32767 is"
    );
    assert!(
        verdicts.contains(r#""reason":"nacl-inbound acl-0a1b2c3d4e5f60010 rule 90"}"#),
        "no `rule` field for a numbered entry"
    );
    let v = replay_json(&[
        "--rules",
        "rulesets/securecart.toml",
        "pcaps/securecart.pcap",
    ]);
    let g = &v["rejects"][0];
    assert_eq!(g["check"], "nacl-outbound");
    assert_eq!(g["rule"], "* (default deny)");
    assert_eq!(g["default_deny"], true);
    assert_eq!(g["tracked_replies"], 39);
}

/// SG rejects name the groups that were checked, with their names.
#[test]
fn sg_rejects_name_the_groups_checked() {
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("ssh.pcap");
    // The internet on SSH to the ALB's public address: its NACL lets port 22 in only
    // from the office, so use the office range, which the ALB's group refuses.
    write_capture(&cap, &[syn("198.51.100.20", 40000, "203.0.113.10", 22)]);
    let text = replay(&["--rules", "rulesets/securecart.toml", s(&cap)]);
    assert!(
        text.contains("sg-ingress: no rule of sg-0a1b2c3d4e5f60010 (securecart-alb) allowed it"),
        "{text}"
    );
}

/// A capture that touches no ENI of the ruleset says so.
#[test]
fn a_capture_that_touches_no_eni_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("elsewhere.pcap");
    write_capture(&cap, &[syn("192.0.2.7", 40000, "192.0.2.99", 443)]);
    let text = replay(&["--rules", "rulesets/securecart.toml", s(&cap)]);
    assert!(
        text.contains("no packet involved an ENI of this ruleset: wrong capture or ruleset?"),
        "{text}"
    );
    // The demo does not.
    assert!(!demo().contains("no packet involved"));
}

/// A `--rules-at` change before the first packet, after the last, or to another VPC
/// says so; the ruleset that never applied says so in its coverage.
#[test]
fn rules_at_outside_the_capture_or_to_another_vpc_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other.toml");
    let t = std::fs::read_to_string(root().join("rulesets/securecart.toml"))
        .unwrap()
        .replace("vpc-0a1b2c3d4e5f60001", "vpc-0ffffffffffffffff");
    assert!(t.contains("vpc-0ffffffffffffffff"));
    std::fs::write(&other, t).unwrap();
    let base = [
        "--rules",
        "rulesets/securecart.toml",
        "pcaps/securecart.pcap",
    ];
    let with = |at: &str| {
        let mut a = base.to_vec();
        a.extend(["--rules-at", at]);
        replay(&a)
    };
    let before = with("1700000000=rulesets/securecart.toml");
    assert!(
        before.contains("--rules-at 1700000000 is at or before the first packet (1732435200): the ruleset before it never applied"),
        "{before}"
    );
    assert!(
        before.contains("Rule coverage of rulesets/securecart.toml:\n  never applied"),
        "{before}"
    );
    let after = with("1800000000=rulesets/securecart.toml");
    assert!(
        after.contains("--rules-at 1800000000 is after the last packet (1732435900.001): its ruleset never applied"),
        "{after}"
    );
    let mid = format!("1732435500={}", s(&other));
    let vpc = with(&mid);
    assert!(
        vpc.contains("--rules-at 1732435500 is a ruleset of another VPC (vpc-0ffffffffffffffff, the first is vpc-0a1b2c3d4e5f60001): wrong ruleset?"),
        "{vpc}"
    );
    assert!(!vpc.contains("never applied"), "{vpc}");
    assert!(!demo().contains("note:"));
}

/// Connection-tracking figures are per ENI check; the flow bound shows only when it
/// mattered.
#[test]
fn counters_say_what_they_count() {
    let text = demo();
    assert!(
        text.contains("Connection tracking, counted per ENI check (a packet between two ENIs is checked at both):\n  111 connection(s) created; 883 check(s) passed by a tracked connection;"),
        "{text}"
    );
    assert!(
        !text.contains("Flow bound"),
        "the bound did not matter:\n{text}"
    );
    let tight = replay(&[
        "--rules",
        "rulesets/securecart.toml",
        "pcaps/securecart.pcap",
        "--max-flows",
        "64",
    ]);
    assert!(tight.contains("Flow bound (--max-flows 64): "), "{tight}");
    let v = replay_json(&[
        "--rules",
        "rulesets/securecart.toml",
        "pcaps/securecart.pcap",
        "--max-flows",
        "64",
    ]);
    assert_eq!(v["conntrack"]["max_flows_mattered"], true);
    assert_eq!(v["conntrack"]["counted_per"], "ENI check");
}

/// The JSON summary reports NODATA records only where they were written.
#[test]
fn json_reports_only_the_nodata_records_written() {
    let base = [
        "--rules",
        "rulesets/securecart.toml",
        "pcaps/securecart.pcap",
    ];
    let v = replay_json(&base);
    assert_eq!(
        v["nodata_records"],
        serde_json::Value::Null,
        "no --flow-log"
    );
    assert_eq!(v["flow_records"], serde_json::Value::Null, "no --flow-log");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("f.log");
    let mut a = base.to_vec();
    a.extend(["--flow-log", s(&log), "--no-nodata"]);
    let v = replay_json(&a);
    assert_eq!(v["nodata_records"], serde_json::Value::Null, "--no-nodata");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("NODATA"));
    assert_eq!(
        v["flow_records"].as_u64().unwrap() + 1,
        text.lines().count() as u64
    );
}

/// Coverage: the implicit `*` entries are not rules to remove; a rule nothing hit is
/// listed once; the JSON has fields, not prose.
#[test]
fn coverage_lists_each_unexercised_rule_once_and_not_the_default_deny() {
    let text = demo();
    let unhit = "acl-0a1b2c3d4e5f60010 inbound rule 110 (allow tcp 80 from 0.0.0.0/0)";
    assert_eq!(text.matches(unhit).count(), 1, "{text}");
    let list = text.split("not exercised by this capture").nth(1).unwrap();
    assert!(!list.contains("rule *"), "{text}");
    assert!(
        text.contains("not exercised by this capture (13):"),
        "{text}"
    );

    let v = replay_json(&[
        "--rules",
        "rulesets/securecart.toml",
        "pcaps/securecart.pcap",
    ]);
    let c = &v["coverage"][0];
    let r = &c["nacl_rules"][0];
    assert_eq!(r["acl"], "acl-0a1b2c3d4e5f60010");
    assert_eq!(r["direction"], "inbound");
    assert_eq!(r["rule_number"], 90);
    assert_eq!(r["hits"], 2);
    let not_hit = c["not_hit"]["nacl_rules"].as_array().unwrap();
    assert_eq!(not_hit.len(), 10);
    assert!(not_hit.iter().all(|r| r["default_deny"] == false));
    assert!(c["not_hit"]["sg_rules"][0]["group"].is_string());
    assert_eq!(c["not_hit"]["sg_rules"][0]["group_name"], "securecart-alb");
}

/// A ruleset with no rules has nothing to cover: it does not say every rule was hit,
/// even when the implicit `*` entries were all hit.
#[test]
fn a_ruleset_without_rules_does_not_say_every_rule_was_hit() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("bare.toml");
    std::fs::write(
        &rules,
        r#"[vpc]
id = "vpc-0000000000000b001"
cidrs = ["10.9.0.0/16", "2600:1f18:4a3:6d00::/56"]

[[subnets]]
id = "subnet-0000000000000b001"
cidr = "10.9.1.0/24"
ipv6_cidr = "2600:1f18:4a3:6d01::/64"
network_acl = "acl-0000000000000b001"

[[network_acls]]
id = "acl-0000000000000b001"
inbound = []
outbound = []

[[security_groups]]
id = "sg-0000000000000b001"
ingress = []
egress = []

[[network_interfaces]]
id = "eni-0000000000000b001"
subnet = "subnet-0000000000000b001"
private_ips = ["10.9.1.10"]
ipv6 = ["2600:1f18:4a3:6d01::10"]
security_groups = ["sg-0000000000000b001"]
"#,
    )
    .unwrap();
    let cap = dir.path().join("two.pcap");
    // Both inbound `*` entries are hit (IPv4 and IPv6).
    write_capture(
        &cap,
        &[
            syn("198.51.100.7", 40000, "10.9.1.10", 443),
            syn("2001:db8::7", 40000, "2600:1f18:4a3:6d01::10", 443),
        ],
    );
    let text = replay(&["--rules", s(&rules), s(&cap)]);
    assert!(!text.contains("every rule was hit"), "{text}");
    assert!(
        text.contains("no network ACL entry or security group rule to cover"),
        "{text}"
    );
    // A VPC without subnets: nothing at all to cover.
    let empty = dir.path().join("empty.toml");
    std::fs::write(
        &empty,
        "[vpc]\nid = \"vpc-0000000000000c001\"\ncidrs = [\"10.9.0.0/16\"]\n",
    )
    .unwrap();
    let text = replay(&["--rules", s(&empty), s(&cap)]);
    assert!(!text.contains("every rule was hit"), "{text}");
    assert!(
        text.contains("no network ACL entry or security group rule to cover"),
        "{text}"
    );
}

/// With `--rules-at`, coverage is per ruleset over the time it applied: the hits of
/// the two halves add up to those of one ruleset over the whole capture.
#[test]
fn rules_at_coverage_is_per_ruleset_over_its_time() {
    let base = [
        "--rules",
        "rulesets/securecart.toml",
        "pcaps/securecart.pcap",
    ];
    let whole = replay_json(&base);
    let mut a = base.to_vec();
    a.extend(["--rules-at", "1732435500=rulesets/securecart.toml"]);
    let split = replay_json(&a);
    let hits = |v: &serde_json::Value, i: usize| -> Vec<u64> {
        v["coverage"][i]["nacl_rules"]
            .as_array()
            .unwrap()
            .iter()
            .chain(v["coverage"][i]["sg_rules"].as_array().unwrap())
            .map(|r| r["hits"].as_u64().unwrap())
            .collect()
    };
    let (first, second) = (hits(&split, 0), hits(&split, 1));
    assert!(first.iter().sum::<u64>() > 0 && second.iter().sum::<u64>() > 0);
    let sum: Vec<u64> = first.iter().zip(&second).map(|(a, b)| a + b).collect();
    assert_eq!(sum, hits(&whole, 0));
    assert_eq!(split["coverage"][1]["from"], "1732435500");
    assert_eq!(split["coverage"][1]["applied"], true);
}

/// EMULATION.md §1 and §4 in the summary: checks at an ENI without security groups, and
/// ICMP errors a rule allowed but tracking never follows, are counted by name (text and
/// JSON), so a reader sees why nothing was tracked.
#[test]
fn untracked_icmp_and_enis_without_groups_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("nat.toml");
    std::fs::write(
        &rules,
        r#"[vpc]
id = "vpc-0000000000000b001"
account_id = "123456789012"
cidrs = ["10.8.0.0/16"]

[[subnets]]
id = "subnet-0000000000000b001"
cidr = "10.8.1.0/24"

[[security_groups]]
id = "sg-0000000000000b001"
ingress = [ { protocol = "icmp", icmp_type = 3, icmp_code = 4, cidr = "0.0.0.0/0" } ]

[[network_interfaces]]
id = "eni-0000000000000b001"
subnet = "subnet-0000000000000b001"
private_ips = ["10.8.1.50"]
interface_type = "nat_gateway"
security_groups = []

[[network_interfaces]]
id = "eni-0000000000000b002"
subnet = "subnet-0000000000000b001"
private_ips = ["10.8.1.10"]
security_groups = ["sg-0000000000000b001"]
"#,
    )
    .unwrap();
    let pcap = dir.path().join("c.pcap");
    write_capture(
        &pcap,
        &[
            // Two SYNs out through the NAT ENI: no SG, nothing tracked.
            syn("10.8.1.50", 40000, "198.51.100.7", 443),
            syn("10.8.1.50", 40001, "198.51.100.7", 443),
            // A path-MTU error in to the instance: allowed by its rule, not tracked.
            Frame::Unreachable {
                src: "192.0.2.1".parse().unwrap(),
                dst: "10.8.1.10".parse().unwrap(),
                code: 4,
                payload: 28,
            },
        ],
    );
    let text = replay(&["--rules", s(&rules), s(&pcap)]);
    assert!(text.contains("  accepted                3\n"), "{text}");
    assert!(
        text.contains("  1 ICMP check(s) allowed by a rule and not tracked"),
        "{text}"
    );
    assert!(
        text.contains("  2 check(s) at ENIs without security groups"),
        "{text}"
    );
    let j = replay_json(&["--rules", s(&rules), s(&pcap)]);
    assert_eq!(j["conntrack"]["created"], 0);
    assert_eq!(j["conntrack"]["icmp_not_tracked_checks"], 1);
    assert_eq!(j["conntrack"]["no_security_group_checks"], 2);
}
