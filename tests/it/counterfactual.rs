//! `replay --stateless-sg` and `--stateful-nacl`: the packets whose verdict flips
//! against AWS, and the not-AWS marks on every output.
//!
//! The expected counts are worked out from the lesson stories and EMULATION.md, not
//! from the command's output:
//!
//! - `lessons/stateful.toml` on `rulesets/lesson-stateful.toml`: the web server's
//!   group has no outbound rule. The customer's HTTP connection (client port 51000,
//!   exchanges [[420, 1460], [0, 1460], [380, 900]], `end = "fin"`) has the server
//!   send 5 packets: the SYN-ACK, three data segments (1460, 1460, 900; the client's
//!   empty segment is not sent) and its FIN. In AWS they pass the group as packets of
//!   the connection the SYN opened (§4). With stateless groups they meet the egress
//!   rules, and there are none: 5 newly rejected. The 4 echo replies are rejected
//!   either way (AWS: the NACL has no outbound ICMP rule; stateless: the group has no
//!   outbound rule), so they do not flip. The server's own SYNs are rejected either
//!   way.
//! - The same with stateful NACLs: the 4 echo replies (`count = 4`) answer tracked
//!   echo requests, so a stateful NACL lets them out: 4 newly accepted, nothing else
//!   changes.
//! - `lessons/ephemeral.toml` on the AWS JSON SecureCart: the 3 SYN-ACKs to the load
//!   balancer's port 20345 (`synack-lost`, `retries = 2`) answer SYNs the task's
//!   group tracked; AWS's app NACL drops them (32768-61000 only), a stateful one
//!   passes them: 3 newly accepted.

use crate::determinism::root;
use crate::support::run;
use serde_json::Value;

const STATEFUL: [&str; 4] = [
    "replay",
    "--rules",
    "rulesets/lesson-stateful.toml",
    "pcaps/lessons/stateful.pcap",
];

fn summary(extra: &[&str], base: &[&str]) -> Value {
    let mut args: Vec<&str> = base.to_vec();
    args.extend_from_slice(extra);
    args.push("--json");
    let (out, _) = run(&args, 0);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn stateless_groups_reject_the_five_replies_that_tracking_let_out() {
    let v = summary(&["--stateless-sg"], &STATEFUL);
    let c = &v["counterfactual"];
    assert_eq!(c["aws"], false);
    assert_eq!(c["stateless_sg"], true);
    assert_eq!(c["stateful_nacl"], false);
    let f = &c["flips"];
    assert_eq!(f["newly_rejected"], 5, "{c}");
    assert_eq!(f["newly_accepted"], 0, "{c}");
    assert_eq!(f["before"], "AWS");
    let groups = f["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{c}");
    let g = &groups[0];
    // The server answers from the public address the customer used.
    assert_eq!(g["pattern"], "tcp 203.0.113.50:80 -> 192.0.2.10:51000");
    assert_eq!(g["packets"], 5);
    assert_eq!(g["tracked"], 5);
    assert_eq!(g["before"], "a connection tracked at eni-0c1a55e0000000001");
    assert_eq!(
        g["after"],
        "sg-egress eni-0c1a55e0000000001: no rule of sg-0c1a55e0000000001 (web) allows it"
    );
    // The counterfactual's own totals: of 22 packets AWS accepts 15 (docs/tutorial.md
    // lesson 1); 5 fewer here.
    assert_eq!(v["packets"], 22);
    assert_eq!(v["accepted"], 10);
    assert_eq!(v["conntrack"]["created"], 0);
    let lessons = c["lessons"].as_array().unwrap();
    assert!(lessons[0]
        .as_str()
        .unwrap()
        .contains("this is what tracking did"));

    // AWS's own run says it is AWS's.
    let aws = summary(&[], &STATEFUL);
    assert!(aws["counterfactual"].is_null());
    assert_eq!(aws["accepted"], 15);
}

#[test]
fn stateful_nacls_let_the_four_echo_replies_out() {
    let v = summary(&["--stateful-nacl"], &STATEFUL);
    let f = &v["counterfactual"]["flips"];
    assert_eq!(f["newly_accepted"], 4, "{f}");
    assert_eq!(f["newly_rejected"], 0, "{f}");
    let g = &f["groups"][0];
    assert_eq!(g["protocol"], 1);
    assert_eq!(g["icmp_type"], 0);
    assert_eq!(g["src"], "203.0.113.50");
    assert_eq!(g["dst"], "192.0.2.10");
    assert_eq!(g["packets"], 4);
    assert_eq!(
        g["before"],
        "acl-0c1a55e0000000001 outbound rule * (deny all to 0.0.0.0/0)"
    );
    assert!(
        g["after"]
            .as_str()
            .unwrap()
            .contains("stateful NACL (not AWS)"),
        "{g}"
    );
}

#[test]
fn stateful_nacls_pass_the_load_balancers_syn_acks_in_aws_json_form() {
    let base = [
        "replay",
        "--rules",
        "rulesets/securecart-aws/",
        "pcaps/lessons/ephemeral.pcap",
    ];
    let v = summary(&["--stateful-nacl"], &base);
    let f = &v["counterfactual"]["flips"];
    assert_eq!(f["newly_accepted"], 3, "{f}");
    assert_eq!(f["newly_rejected"], 0, "{f}");
    assert_eq!(
        f["groups"][0]["pattern"],
        "tcp 10.0.11.10:8080 -> 10.0.1.10:20345"
    );
    // The lesson's 34 packets all pass (docs/tutorial.md lesson 2: as with the fix).
    assert_eq!(v["accepted"], 34);
}

#[test]
fn every_output_of_a_counterfactual_run_says_it_is_not_aws() {
    let dir = tempfile::tempdir().unwrap();
    let flows = dir.path().join("flows.log");
    let verdicts = dir.path().join("v.jsonl");
    let mut args: Vec<&str> = STATEFUL.to_vec();
    args.extend_from_slice(&[
        "--stateless-sg",
        "--flow-log",
        flows.to_str().unwrap(),
        "--verdicts",
        verdicts.to_str().unwrap(),
    ]);
    let (text, err) = run(&args, 0);
    assert!(
        text.starts_with("COUNTERFACTUAL, NOT AWS: stateless security groups (--stateless-sg)."),
        "{text}"
    );
    assert!(text.contains("Against AWS, with stateless security groups: 5 packet(s) newly rejected, 0 newly accepted\n"), "{text}");
    assert!(err.contains("warning: --stateless-sg: the flow log holds what a VPC with stateless security groups would log, NOT what AWS logs"), "{err}");
    let lines: Vec<Value> = std::fs::read_to_string(&verdicts)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 22);
    assert!(lines.iter().all(|l| l["counterfactual"] == "stateless-sg"));
    let flipped: Vec<&Value> = lines
        .iter()
        .filter(|l| l.get("aws_action").is_some())
        .collect();
    assert_eq!(flipped.len(), 5);
    assert!(flipped
        .iter()
        .all(|l| l["aws_action"] == "ACCEPT" && l["action"] == "REJECT" && l["src_port"] == 80));
    // The flow log's format is AWS's, unchanged: a header and records.
    let log = std::fs::read_to_string(&flows).unwrap();
    assert!(log.starts_with("version account-id interface-id "), "{log}");

    // An AWS run marks nothing.
    let mut args: Vec<&str> = STATEFUL.to_vec();
    args.extend_from_slice(&["--verdicts", "-", "--quiet"]);
    let (out, err) = run(&args, 0);
    assert!(!out.contains("counterfactual") && !err.contains("NOT AWS"));
}

#[test]
fn counterfactual_output_is_the_same_for_any_worker_count() {
    let mut outs = Vec::new();
    for w in ["1", "2", "3"] {
        let mut args = vec![
            "replay",
            "--rules",
            "rulesets/securecart.toml",
            "pcaps/securecart.pcap",
            "--stateful-nacl",
            "--verdicts",
            "-",
            "--workers",
            w,
            "--quiet",
        ];
        let (v, _) = run(&args, 0);
        args.truncate(4);
        args.extend_from_slice(&["--stateless-sg", "--workers", w, "--json"]);
        let (j, _) = run(&args, 0);
        let mut j: Value = serde_json::from_str(&j).unwrap();
        outs.push((v, j["counterfactual"].take()));
    }
    assert_eq!(outs[0], outs[1]);
    assert_eq!(outs[0], outs[2]);
}

#[test]
fn the_two_counterfactuals_are_asked_one_at_a_time() {
    let mut args: Vec<&str> = STATEFUL.to_vec();
    args.extend_from_slice(&["--stateless-sg", "--stateful-nacl"]);
    run(&args, 2);
}

/// The README's sample is what the command prints (but for the run's time and rate).
#[test]
fn the_readme_counterfactual_sample_is_what_replay_prints() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let cmd = "$ vpcgate replay --rules rulesets/lesson-stateful.toml pcaps/lessons/stateful.pcap --stateless-sg\n";
    let start = readme.find(cmd).expect("the README shows the sample") + cmd.len();
    let end = start + readme[start..].find("```").unwrap();
    let mut args: Vec<&str> = STATEFUL.to_vec();
    args.push("--stateless-sg");
    let (out, _) = run(&args, 0);
    let steady = |t: &str| -> Vec<String> {
        t.lines()
            .map(|l| match l.strip_prefix("vpcgate replay:") {
                Some(rest) => rest.split(" in ").next().unwrap().to_string(),
                None => l.to_string(),
            })
            .collect()
    };
    assert_eq!(
        steady(&readme[start..end]),
        steady(&out),
        "README.md's counterfactual sample is stale"
    );
}

/// At the engine: a stateful NACL passes the reply of a flow whose request the NACL
/// allowed, and nothing else. One web server whose group tracks everything it sends
/// (egress all, no ingress rule: EMULATION.md §4, not untracked), behind a NACL that
/// lets out only TCP 443 and lets nothing in.
#[test]
fn a_stateful_nacl_passes_replies_of_allowed_flows_only() {
    use std::sync::Arc;
    use vpcgate::engine::{Counterfactual, Engine, Verdict};
    use vpcgate::policy::Policy;
    use vpcgate::wire::packet::{tcp_flags, Fragment, Packet, Timestamp};
    let vpc = vpcgate::load::load_str(
        "x.toml",
        r#"
        [vpc]
        id = "vpc-1"
        cidrs = ["10.0.0.0/16"]
        [[subnets]]
        id = "subnet-a"
        cidr = "10.0.1.0/24"
        network_acl = "acl-a"
        [[network_acls]]
        id = "acl-a"
        inbound = []
        outbound = [ { rule = 100, protocol = "tcp", ports = "443", cidr = "0.0.0.0/0", action = "allow" } ]
        [[security_groups]]
        id = "sg-web"
        egress = [ { protocol = "-1", cidr = "0.0.0.0/0" } ]
        [[network_interfaces]]
        id = "eni-web"
        subnet = "subnet-a"
        private_ips = ["10.0.1.10"]
        security_groups = ["sg-web"]
    "#,
    )
    .unwrap();
    let policy = Arc::new(Policy::compile(Arc::new(vpc), &["eni-web".to_string()]));
    let pkt = |src: &str, dst: &str, sport: u16, dport: u16, flags: u8| Packet {
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
        protocol: 6,
        src_port: sport,
        dst_port: dport,
        icmp_type: 0,
        icmp_code: 0,
        icmp_id: 0,
        tcp_flags: flags,
        ip_len: 60,
        fragment: Fragment::None,
    };
    let (web, peer) = ("10.0.1.10", "198.51.100.7");
    let synack = tcp_flags::SYN | tcp_flags::ACK;
    // (packet, AWS's verdict, a stateful NACL's verdict)
    let story = [
        // HTTPS out: the NACL allows the SYN; its SYN-ACK meets an inbound NACL
        // with no entry: AWS drops it, a stateful NACL lets the reply in.
        (
            pkt(web, peer, 40000, 443, tcp_flags::SYN),
            Verdict::Accept,
            Verdict::Accept,
        ),
        (
            pkt(peer, web, 443, 40000, synack),
            Verdict::Reject,
            Verdict::Accept,
        ),
        // HTTP out: the NACL drops the SYN (the group tracked it first); the SYN
        // sent again is no reply; a SYN-ACK answers a flow the NACL did not allow.
        (
            pkt(web, peer, 40001, 80, tcp_flags::SYN),
            Verdict::Reject,
            Verdict::Reject,
        ),
        (
            pkt(web, peer, 40001, 80, tcp_flags::SYN),
            Verdict::Reject,
            Verdict::Reject,
        ),
        (
            pkt(peer, web, 80, 40001, synack),
            Verdict::Reject,
            Verdict::Reject,
        ),
        // A SYN from outside opens nothing: no reply of anything.
        (
            pkt(peer, web, 50000, 22, tcp_flags::SYN),
            Verdict::Reject,
            Verdict::Reject,
        ),
    ];
    let mut aws = Engine::new(policy.clone());
    let mut cf = Engine::new(policy.clone());
    cf.set_counterfactual(Counterfactual {
        stateless_sg: false,
        stateful_nacl: true,
    });
    for (i, (p, want_aws, want_cf)) in story.iter().enumerate() {
        let t = Timestamp::from_secs_nanos(1_700_000_000 + i as u64, 0);
        assert_eq!(aws.process(p, t).verdict, *want_aws, "AWS, packet {i}");
        assert_eq!(
            cf.process(p, t).verdict,
            *want_cf,
            "stateful NACL, packet {i}"
        );
    }
}
