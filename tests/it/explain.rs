//! `replay --explain` and the `why` of verdict lines: the SecureCart reply that the
//! app NACL drops, in both ruleset forms; the untracked lesson's rule change; the
//! explanations agree with replay's verdict lines; exit statuses; the JSON shape.

use crate::support::run;
use serde_json::Value;

fn verdicts(args: &[&str]) -> Vec<Value> {
    let mut a = vec!["replay", "--verdicts", "-", "--quiet", "--workers", "2"];
    a.extend_from_slice(args);
    let (out, _) = run(&a, 0);
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn explain(args: &[&str], packets: &[u64]) -> Vec<Value> {
    let mut a = vec!["replay", "--json"];
    a.extend_from_slice(args);
    let ns: Vec<String> = packets.iter().map(|n| n.to_string()).collect();
    for n in &ns {
        a.push("--explain");
        a.push(n);
    }
    let (out, _) = run(&a, 0);
    serde_json::from_str::<Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn check_names(e: &Value) -> Vec<String> {
    e["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["check"].as_str().unwrap().to_string())
        .collect()
}

/// The first rejected packet of the SecureCart capture is a task's SYN-ACK that the
/// app NACL drops (README tutorial 1). Its explanation: the task's SG let it out as
/// a tracked reply (tracked since the ALB's SYN, found here as the first packet of
/// the same address and port pair in the verdict lines), and the app NACL's `*` rule
/// denied it.
#[test]
fn explain_the_securecart_reply_dropped_by_the_app_nacl() {
    for rules in ["rulesets/securecart.toml", "rulesets/securecart-aws/"] {
        let v = verdicts(&["--rules", rules, "pcaps/securecart.pcap"]);
        let rej = v.iter().find(|l| l["action"] == "REJECT").unwrap();
        let n = rej["packet"].as_u64().unwrap();
        assert_eq!(
            rej["reason"],
            "nacl-outbound acl-0a1b2c3d4e5f60020 rule 32767"
        );
        let syn = v
            .iter()
            .find(|l| {
                l["src"] == rej["dst"]
                    && l["dst"] == rej["src"]
                    && l["src_port"] == rej["dst_port"]
                    && l["dst_port"] == rej["src_port"]
            })
            .unwrap();
        let k = syn["packet"].as_u64().unwrap();
        assert!(k < n);

        let e = explain(&["--rules", rules, "pcaps/securecart.pcap"], &[n]);
        assert_eq!(e.len(), 1);
        let e = &e[0];
        assert_eq!(e["packet"].as_u64(), Some(n));
        assert_eq!(e["action"], "REJECT");
        assert_eq!(e["reason"], rej["reason"]);
        assert_eq!(check_names(e), ["sg-egress", "nacl-outbound"]);
        let sg = &e["checks"][0];
        assert_eq!(sg["tracking"], "tracked");
        let state = sg["tracking_state"][0].as_str().unwrap();
        assert!(
            state.starts_with(&format!("tracked since packet {k} ")),
            "{state}"
        );
        let nacl = &e["checks"][1];
        assert_eq!(
            (nacl["allowed"].as_bool(), nacl["rule"].as_str()),
            (Some(false), Some("*"))
        );
        assert_eq!(nacl["tracked"], true);
    }
}

/// Every explained packet gets the verdict and reason replay gives it (replay with
/// two workers, the explain pass with one).
#[test]
fn explanations_agree_with_replay() {
    let args = [
        "--rules",
        "rulesets/securecart.toml",
        "pcaps/securecart.pcap",
    ];
    let v = verdicts(&args);
    let picks: Vec<u64> = (1..=v.len() as u64).step_by(17).chain([41, 138]).collect();
    let e = explain(&args, &picks);
    assert_eq!(e.len(), picks.len());
    for x in &e {
        let n = x["packet"].as_u64().unwrap();
        let line = &v[n as usize - 1];
        assert_eq!(x["action"], line["action"], "packet {n}");
        if line["action"] != "ACCEPT" {
            assert_eq!(x["reason"], line["reason"], "packet {n}");
        }
    }
}

/// tutorial lesson 3: SSH to `world` is untracked (its SG allows 22 from 0.0.0.0/0 and
/// everything out to 0.0.0.0/0); at 1732435230 both servers lose their SSH rule. The
/// untracked session is cut at once, the tracked one goes on.
#[test]
fn explain_untracked_flows_and_the_rule_change() {
    let args = [
        "--rules",
        "rulesets/lesson-untracked.toml",
        "--rules-at",
        "1732435230=rulesets/lesson-untracked-after.toml",
        "pcaps/lessons/untracked.pcap",
    ];
    let v = verdicts(&args);
    let cut = v.iter().find(|l| l["action"] == "REJECT").unwrap();
    let n = cut["packet"].as_u64().unwrap();
    assert!(cut["time"].as_f64().unwrap() >= 1732435230.0);
    let first_of_flow = v
        .iter()
        .find(|l| l["src_port"] == cut["src_port"] && l["dst_port"] == cut["dst_port"])
        .unwrap()["packet"]
        .as_u64()
        .unwrap();
    let e = explain(&args, &[first_of_flow, n]);
    assert_eq!(
        e[0]["checks"].as_array().unwrap().last().unwrap()["tracking"],
        "untracked"
    );
    let sg = e[1]["checks"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(sg["check"], "sg-ingress");
    assert_eq!(sg["allowed"], false);
    let state = sg["tracking_state"][0].as_str().unwrap();
    assert!(
        state.contains(&format!("since packet {first_of_flow},")),
        "{state}"
    );
    assert!(
        state.contains("cut by the rule change at 1732435230.000000000"),
        "{state}"
    );
    assert!(e[1]["rules"]
        .as_str()
        .unwrap()
        .contains("lesson-untracked-after.toml"));
    // The other server's session is tracked: its packets after the change pass.
    let later_ok = v
        .iter()
        .find(|l| {
            l["action"] == "ACCEPT"
                && l["time"].as_f64().unwrap() > 1732435230.0
                && l["dst_port"] == 22
        })
        .unwrap();
    let e = explain(&args, &[later_ok["packet"].as_u64().unwrap()]);
    let sg = e[0]["checks"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(sg["tracking"], "tracked");
    // The verdict line says why it passed.
    assert!(
        later_ok["why"]
            .as_str()
            .unwrap()
            .contains("sg-ingress eni-"),
        "{later_ok}"
    );
    assert!(
        later_ok["why"].as_str().unwrap().ends_with(" tracked"),
        "{later_ok}"
    );
}

/// `why` on every ACCEPT line and only there; a tracked reply says `tracked` at its
/// SG and names the NACL entries it still needed (stateless).
#[test]
fn verdict_lines_say_why_a_packet_passed() {
    let v = verdicts(&[
        "--rules",
        "rulesets/securecart.toml",
        "pcaps/securecart.pcap",
    ]);
    for l in &v {
        assert_eq!(l["why"].is_string(), l["action"] == "ACCEPT", "{l}");
    }
    // Packet 1: a customer's SYN to the ALB's public address (public NACL inbound
    // rule 100, tcp 443 from 0.0.0.0/0; the ALB group's first rule).
    assert_eq!(
        v[0]["why"],
        "nacl-inbound acl-0a1b2c3d4e5f60010 rule 100; sg-ingress eni-0a1b2c3d4e5f60101 new by sg-0a1b2c3d4e5f60010 ingress: tcp 443 from 0.0.0.0/0"
    );
    // Its SYN-ACK: tracked at the SG, rule 150 (1024-65535 to 0.0.0.0/0) at the NACL.
    assert_eq!(
        v[1]["why"],
        "sg-egress eni-0a1b2c3d4e5f60101 tracked; nacl-outbound acl-0a1b2c3d4e5f60010 rule 150"
    );
}

#[test]
fn explain_exit_statuses() {
    let (_, err) = run(
        &[
            "replay",
            "--rules",
            "rulesets/securecart.toml",
            "pcaps/securecart.pcap",
            "--explain",
            "100000",
        ],
        2,
    );
    assert!(
        err.contains("pcaps/securecart.pcap holds 721 packet(s)"),
        "{err}"
    );
    run(
        &[
            "replay",
            "--rules",
            "rulesets/securecart.toml",
            "pcaps/securecart.pcap",
            "--explain",
            "1",
            "--verdicts",
            "-",
        ],
        2,
    );
    let (_, err) = run(
        &[
            "replay",
            "--rules",
            "rulesets/securecart.toml",
            "pcaps/securecart.pcap",
            "--explain",
            "other.pcap:3",
        ],
        2,
    );
    assert!(err.contains("is not one of the captures"), "{err}");
    let (out, _) = run(
        &[
            "replay",
            "--rules",
            "rulesets/securecart.toml",
            "pcaps/securecart.pcap",
            "--explain",
            "pcaps/securecart.pcap:41",
        ],
        0,
    );
    assert!(
        out.starts_with("packet 41 of pcaps/securecart.pcap"),
        "{out}"
    );
    assert!(
        out.contains("verdict: REJECT nacl-outbound acl-0a1b2c3d4e5f60020 rule 32767"),
        "{out}"
    );
}

/// `--stateful-nacl` (not AWS): the app NACL's `*` entry still matches the reply, but
/// the counterfactual passes it as the reply of an allowed flow; the explanation and
/// the `why` say so, and the JSON says it is not AWS.
#[test]
fn explain_under_the_stateful_nacl_counterfactual_says_not_aws() {
    let (out, _) = run(
        &[
            "replay",
            "--rules",
            "rulesets/securecart.toml",
            "pcaps/securecart.pcap",
            "--explain",
            "41",
            "--stateful-nacl",
            "--json",
        ],
        0,
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["counterfactual"], "stateful-nacl");
    let e = &v["explanations"][0];
    assert_eq!(e["action"], "ACCEPT");
    let nacl = &e["checks"][1];
    assert_eq!(
        (
            nacl["check"].as_str(),
            nacl["rule"].as_str(),
            nacl["allowed"].as_bool(),
            nacl["stateful_nacl"].as_bool()
        ),
        (Some("nacl-outbound"), Some("*"), Some(true), Some(true))
    );
    let (text, _) = run(
        &[
            "replay",
            "--rules",
            "rulesets/securecart.toml",
            "pcaps/securecart.pcap",
            "--explain",
            "41",
            "--stateful-nacl",
        ],
        0,
    );
    assert!(text.starts_with("NOT AWS (--stateful-nacl)"), "{text}");
}
