//! `vpcgate diff`: the SecureCart ephemeral-port mistake and its fix, both ways and in
//! both ruleset forms; exit statuses; the JSON shape; the README's sample.
//!
//! Expected values come from the lesson's story and the ruleset, not from diff's own
//! output: `lessons/ephemeral.toml` has the load balancer (eni-…101, 10.0.1.10) open
//! one connection to task-1 (eni-…201, 10.0.11.10) port 8080 from client port 20345
//! with `end = "synack-lost"` and `retries = 2`: three SYNs, each answered by a
//! SYN-ACK from 10.0.11.10:8080 to 10.0.1.10:20345. The app NACL
//! (acl-0a1b2c3d4e5f60020) lets replies out to 10.0.1.0/24 only at 32768-61000 (rule
//! 120), so AWS drops those three SYN-ACKs at the `*` rule (EMULATION.md §5: first
//! match, ports are the destination port); widened to 1024-65535 it lets them out. The
//! connection from port 40000 is inside the range under both rulesets: no change.

use crate::determinism::root;
use crate::support::run;
use assert_cmd::Command;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The fixed SecureCart rulesets, written into `dir`: the TOML as the README's `sed`
/// writes it, and the AWS JSON folder with the same two entries widened.
fn fixed(dir: &Path) -> (PathBuf, PathBuf) {
    let toml = std::fs::read_to_string(root().join("rulesets/securecart.toml")).unwrap();
    assert_eq!(toml.matches("ports = \"32768-61000\"").count(), 2);
    let t = dir.join("fixed.toml");
    std::fs::write(
        &t,
        toml.replace("ports = \"32768-61000\"", "ports = \"1024-65535\""),
    )
    .unwrap();
    let aws = dir.join("fixed-aws");
    std::fs::create_dir(&aws).unwrap();
    for e in std::fs::read_dir(root().join("rulesets/securecart-aws")).unwrap() {
        let e = e.unwrap();
        let mut text = std::fs::read_to_string(e.path()).unwrap();
        if e.file_name() == "describe-network-acls.json" {
            assert_eq!(text.matches("\"From\": 32768").count(), 2);
            assert_eq!(text.matches("\"To\": 61000").count(), 2);
            text = text
                .replace("\"From\": 32768", "\"From\": 1024")
                .replace("\"To\": 61000", "\"To\": 65535");
        }
        std::fs::write(aws.join(e.file_name()), text).unwrap();
    }
    (t, aws)
}

fn json_of(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn the_ephemeral_fix_newly_accepts_three_syn_acks_in_toml_and_aws_json() {
    let dir = tempfile::tempdir().unwrap();
    let (toml, aws) = fixed(dir.path());
    for (old, new) in [
        (
            "rulesets/securecart.toml".to_string(),
            toml.display().to_string(),
        ),
        (
            "rulesets/securecart-aws/".to_string(),
            aws.display().to_string(),
        ),
    ] {
        let pcap = "pcaps/lessons/ephemeral.pcap";
        let (out, _) = run(
            &[
                "diff",
                "--rules",
                &old,
                "--rules-after",
                &new,
                pcap,
                "--json",
            ],
            0,
        );
        let v = json_of(&out);
        assert_eq!(v["newly_rejected"], 0, "{out}");
        assert_eq!(v["newly_accepted"], 3, "{out}");
        let groups = v["groups"].as_array().unwrap();
        assert_eq!(groups.len(), 1, "{out}");
        let g = &groups[0];
        assert_eq!(g["change"], "newly accepted");
        assert_eq!(g["protocol"], 6);
        assert_eq!(g["src"], "10.0.11.10");
        assert_eq!(g["dst"], "10.0.1.10");
        assert_eq!(g["src_ports"], "8080");
        assert_eq!(g["dst_ports"], "20345");
        assert_eq!(g["packets"], 3);
        assert_eq!(g["flows"], 1);
        // Each SYN-ACK answers a SYN the task's group tracked.
        assert_eq!(g["tracked"], 3);
        assert_eq!(
            g["before"],
            "acl-0a1b2c3d4e5f60020 outbound rule * (deny all to 0.0.0.0/0)"
        );
        assert_eq!(
            g["after"],
            "acl-0a1b2c3d4e5f60020 outbound rule 120 (allow tcp 1024-65535 to 10.0.1.0/24)"
        );
        assert_eq!(g["pattern"], "tcp 10.0.11.10:8080 -> 10.0.1.10:20345");

        // The other way round the same packets are newly rejected: exit 1.
        let (out, _) = run(
            &[
                "diff",
                "--rules",
                &new,
                "--rules-after",
                &old,
                pcap,
                "--json",
            ],
            1,
        );
        let v = json_of(&out);
        assert_eq!(v["newly_rejected"], 3, "{out}");
        assert_eq!(v["newly_accepted"], 0, "{out}");
        let g = &v["groups"][0];
        assert_eq!(g["change"], "newly rejected");
        assert_eq!(g["before"], groups[0]["after"]);
        assert_eq!(g["after"], groups[0]["before"]);
        let (text, _) = run(&["diff", "--rules", &new, "--rules-after", &old, pcap], 1);
        assert!(text.contains("  newly rejected          3\n"), "{text}");
        assert!(
            text.contains("Newly rejected, by flow and rule:\n"),
            "{text}"
        );
        assert!(
            text.contains("            after:  REJECT, acl-0a1b2c3d4e5f60020 outbound rule * (deny all to 0.0.0.0/0)\n"),
            "{text}"
        );
    }
}

/// On the demo capture, the fix newly accepts exactly the packets AWS's replay
/// rejects at the app NACL's `*` outbound rule towards the load balancers' subnets
/// (10.0.1.0/24, 10.0.2.0/24) at ports 1024-65535: what the widened rules 120 and
/// 130 cover. Nothing is newly rejected (the fix only adds ports to allow entries).
#[test]
fn the_securecart_fix_newly_accepts_what_the_star_rule_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let (toml, _) = fixed(dir.path());
    let (verdicts, _) = run(
        &[
            "replay",
            "--rules",
            "rulesets/securecart.toml",
            "pcaps/securecart.pcap",
            "--verdicts",
            "-",
            "--quiet",
        ],
        0,
    );
    let expected = verdicts
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| {
            let dst = v["dst"].as_str().unwrap_or("");
            v["reason"] == "nacl-outbound acl-0a1b2c3d4e5f60020 rule 32767"
                && (dst.starts_with("10.0.1.") || dst.starts_with("10.0.2."))
                && v["protocol"] == 6
                && (1024..=65535).contains(&v["dst_port"].as_u64().unwrap())
        })
        .count() as u64;
    assert!(expected > 0);
    let toml = toml.display().to_string();
    let args = |workers: &'static str| {
        vec![
            "diff".to_string(),
            "--rules".into(),
            "rulesets/securecart.toml".into(),
            "--rules-after".into(),
            toml.clone(),
            "pcaps/securecart.pcap".into(),
            "--json".into(),
            "--workers".into(),
            workers.into(),
        ]
    };
    let a: Vec<String> = args("1");
    let (out, _) = run(&a.iter().map(String::as_str).collect::<Vec<_>>(), 0);
    let v = json_of(&out);
    assert_eq!(v["newly_accepted"].as_u64(), Some(expected), "{out}");
    assert_eq!(v["newly_rejected"], 0);
    assert_eq!(v["packets"], 721);
    let sum: u64 = v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["packets"].as_u64().unwrap())
        .sum();
    assert_eq!(sum, expected);
    // All of them were the app NACL's `*` outbound rule's.
    let by_rule = v["by_rule"].as_array().unwrap();
    assert_eq!(by_rule.len(), 1, "{out}");
    assert_eq!(by_rule[0]["change"], "newly accepted");
    assert_eq!(
        by_rule[0]["rule"],
        "acl-0a1b2c3d4e5f60020 outbound rule * (deny all to 0.0.0.0/0)"
    );
    assert_eq!(by_rule[0]["packets"].as_u64(), Some(expected));
    for g in v["groups"].as_array().unwrap() {
        assert_eq!(g["src_ports"], "8080", "{g}");
        let after = g["after"].as_str().unwrap();
        assert!(
            after.contains("outbound rule 120 (allow tcp 1024-65535")
                || after.contains("outbound rule 130 (allow tcp 1024-65535"),
            "{after}"
        );
    }
    // The same report for any --workers.
    let b: Vec<String> = args("3");
    let (out3, _) = run(&b.iter().map(String::as_str).collect::<Vec<_>>(), 0);
    assert_eq!(out, out3);
}

#[test]
fn diff_json_has_its_documented_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (toml, _) = fixed(dir.path());
    let (out, _) = run(
        &[
            "diff",
            "--rules",
            "rulesets/securecart.toml",
            "--rules-after",
            toml.to_str().unwrap(),
            "pcaps/lessons/ephemeral.pcap",
            "--json",
        ],
        0,
    );
    let v = json_of(&out);
    for k in [
        "before",
        "after",
        "packets",
        "newly_rejected",
        "newly_accepted",
        "evaluated_on_one_side_only",
        "ungrouped",
        "by_rule",
        "groups",
        "captures",
        "capture_errors",
    ] {
        assert!(v.get(k).is_some(), "no {k} in {out}");
    }
    let g = &v["groups"][0];
    for k in [
        "change",
        "protocol",
        "src",
        "dst",
        "src_ports",
        "dst_ports",
        "client_ports",
        "icmp_type",
        "icmp_code",
        "pattern",
        "before",
        "after",
        "packets",
        "flows",
        "tracked",
        "first_packet",
    ] {
        assert!(g.get(k).is_some(), "no {k} in {g}");
    }
    // Packet 20 of the lesson is the first SYN-ACK to 20345 (the tutorial's verdicts).
    assert_eq!(g["first_packet"]["packet"], 20);
}

#[test]
fn the_same_ruleset_changes_nothing() {
    let (out, _) = run(
        &[
            "diff",
            "--rules",
            "rulesets/securecart.toml",
            "--rules-after",
            "rulesets/securecart-aws/",
            "pcaps/securecart.pcap",
        ],
        0,
    );
    assert!(
        out.contains("  newly rejected          0\n  newly accepted          0\n"),
        "{out}"
    );
    assert!(!out.contains("by flow and rule"), "{out}");
}

#[test]
fn diff_bad_usage_bad_rulesets_and_bad_captures_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[vpc]\nid = 7\n").unwrap();
    let bad = bad.display().to_string();
    // No --rules-after.
    run(
        &[
            "diff",
            "--rules",
            "rulesets/securecart.toml",
            "pcaps/securecart.pcap",
        ],
        2,
    );
    let (_, err) = run(
        &[
            "diff",
            "--rules",
            "rulesets/securecart.toml",
            "--rules-after",
            &bad,
            "pcaps/securecart.pcap",
        ],
        2,
    );
    assert!(err.contains("bad.toml"), "{err}");
    assert!(err.contains("--rules-after did not load"), "{err}");
    let (_, err) = run(
        &[
            "diff",
            "--rules",
            "rulesets/securecart.toml",
            "--rules-after",
            "rulesets/securecart.toml",
            "pcaps/no-such.pcap",
        ],
        2,
    );
    assert!(err.contains("no-such.pcap"), "{err}");
    run(
        &[
            "diff",
            "--rules",
            "rulesets/securecart.toml",
            "--rules-after",
            "rulesets/securecart.toml",
            "pcaps/securecart.pcap",
            "--workers",
            "0",
        ],
        2,
    );
}

/// The README's sample is what diff prints (run where README's `sed` wrote fixed.toml).
#[test]
fn the_readme_diff_sample_is_what_diff_prints() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let cmd = "$ vpcgate diff --rules rulesets/securecart.toml --rules-after fixed.toml pcaps/securecart.pcap\n";
    let start = readme.find(cmd).expect("the README shows the diff sample") + cmd.len();
    let end = start + readme[start..].find("```").unwrap();
    let dir = tempfile::tempdir().unwrap();
    for d in ["rulesets", "pcaps"] {
        std::os::unix::fs::symlink(root().join(d), dir.path().join(d)).unwrap();
    }
    fixed(dir.path());
    let out = Command::cargo_bin("vpcgate")
        .unwrap()
        .current_dir(dir.path())
        .args([
            "diff",
            "--rules",
            "rulesets/securecart.toml",
            "--rules-after",
            "fixed.toml",
            "pcaps/securecart.pcap",
        ])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    assert_eq!(
        &readme[start..end],
        String::from_utf8(out).unwrap(),
        "README.md's diff sample is stale"
    );
}

/// `diff --report`: the page of the new ruleset's replay, with the 39 SecureCart
/// replies that the fix lets out (README "vpcgate diff": 39 newly accepted) listed as
/// flips from the old ruleset, not tagged as a counterfactual.
#[test]
fn diff_report_lists_the_changes_on_the_new_rulesets_page() {
    let dir = tempfile::tempdir().unwrap();
    let (toml, _) = fixed(dir.path());
    let page = dir.path().join("diff.html");
    let (out, _) = run(
        &[
            "diff",
            "--rules",
            "rulesets/securecart.toml",
            "--rules-after",
            toml.to_str().unwrap(),
            "pcaps/securecart.pcap",
            "--report",
            page.to_str().unwrap(),
        ],
        0,
    );
    assert!(out.contains("newly accepted         39"), "{out}");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        html.contains("<title>vpcgate diff: rulesets/securecart.toml to "),
        "no title"
    );
    assert!(html.contains("id=\"flips\""));
    assert!(html.contains("Verdicts that flip from rulesets/securecart.toml"));
    assert!(!html.contains("<span class=\"tag\">not AWS</span>"));
    assert!(html.contains("39 newly accepted"));
    // The replies were rejected by the app NACL's `*` rule before the fix.
    assert!(html.contains("acl-0a1b2c3d4e5f60020 outbound rule *"));
}

/// `--report` is an output: a path that is an input is refused before anything is
/// read or written, and the input survives.
#[test]
fn diff_report_may_not_overwrite_an_input() {
    let dir = tempfile::tempdir().unwrap();
    let (toml, _) = fixed(dir.path());
    let before = std::fs::read(&toml).unwrap();
    let (_, err) = run(
        &[
            "diff",
            "--rules",
            "rulesets/securecart.toml",
            "--rules-after",
            toml.to_str().unwrap(),
            "pcaps/securecart.pcap",
            "--report",
            toml.to_str().unwrap(),
        ],
        2,
    );
    assert!(err.contains("--report"), "{err}");
    assert_eq!(std::fs::read(&toml).unwrap(), before);
    let (_, err) = run(
        &[
            "diff",
            "--rules",
            "rulesets/securecart.toml",
            "--rules-after",
            toml.to_str().unwrap(),
            "pcaps/securecart.pcap",
            "--report",
            "-",
        ],
        2,
    );
    assert!(err.contains("name one"), "{err}");
}
