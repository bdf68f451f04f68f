//! `vpcgate check`: the SecureCart ephemeral-port mistake and its fix, in both ruleset
//! forms; exit statuses; the JSON shape. Expected rules are read off
//! rulesets/securecart.toml: the ALB's ENIs are in 10.0.1.0/24 and 10.0.2.0/24
//! (public NACL acl-…10), the app tasks in 10.0.11.0/24 and 10.0.12.0/24 (app NACL
//! acl-…20, outbound rules 120 and 130 allow 32768-61000 to the public subnets).

use crate::determinism::root;
use crate::support::run;
use assert_cmd::Command;
use serde_json::Value;

fn json(args: &[&str], code: i32) -> Value {
    let mut a = args.to_vec();
    a.push("--json");
    let (out, _) = run(&a, code);
    serde_json::from_str(&out).unwrap()
}

/// The two forms of the SecureCart VPC, and the same with the app NACL's reply rules
/// widened to 1024-65535 (the tutorial's fix), written into `dir`.
fn forms(dir: &std::path::Path) -> Vec<(String, String)> {
    let toml = std::fs::read_to_string(root().join("rulesets/securecart.toml")).unwrap();
    let fixed = dir.join("fixed.toml");
    std::fs::write(
        &fixed,
        toml.replace("ports = \"32768-61000\"", "ports = \"1024-65535\""),
    )
    .unwrap();
    let aws = dir.join("aws");
    std::fs::create_dir(&aws).unwrap();
    for e in std::fs::read_dir(root().join("rulesets/securecart-aws")).unwrap() {
        let p = e.unwrap().path();
        let mut text = std::fs::read_to_string(&p).unwrap();
        if p.file_name().unwrap() == "describe-network-acls.json" {
            let n = text.matches("\"From\": 32768,").count();
            assert_eq!(n, 2, "the two app NACL reply rules");
            text = text
                .replace("\"From\": 32768,", "\"From\": 1024,")
                .replace("\"To\": 61000", "\"To\": 65535");
        }
        std::fs::write(aws.join(p.file_name().unwrap()), text).unwrap();
    }
    vec![
        (
            "rulesets/securecart.toml".to_string(),
            fixed.display().to_string(),
        ),
        (
            "rulesets/securecart-aws/".to_string(),
            aws.display().to_string(),
        ),
    ]
}

fn checks(group: &Value) -> Vec<(String, bool, String)> {
    group["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let by = match c["check"].as_str().unwrap() {
                "sg-egress" | "sg-ingress" => c["tracking"].as_str().unwrap().to_string(),
                "internet-gateway" => c["public"].as_str().unwrap().to_string(),
                _ => format!(
                    "{} rule {}",
                    c["acl"].as_str().unwrap(),
                    c["rule"].as_str().unwrap()
                ),
            };
            (
                c["check"].as_str().unwrap().to_string(),
                c["allowed"].as_bool().unwrap(),
                by,
            )
        })
        .collect()
}

fn ports(group: &Value) -> Vec<(u64, u64)> {
    group["client_ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_u64().unwrap(), p[1].as_u64().unwrap()))
        .collect()
}

fn t(check: &str, ok: bool, by: &str) -> (String, bool, String) {
    (check.to_string(), ok, by.to_string())
}

const ALB_B: &str = "eni-0a1b2c3d4e5f60102"; // 10.0.2.10, public-b
const TASK_A2: &str = "eni-0a1b2c3d4e5f60202"; // 10.0.11.11, app-a

/// The tutorial's lesson: the ALB opens connections from any port of 1024-65535
/// (AWS: Elastic Load Balancing's ephemeral range); the app NACL answers only
/// 32768-61000, so the SYN-ACK to the rest falls to its `*` rule. The fix passes all.
#[test]
fn check_finds_the_securecart_ephemeral_port_mistake_and_passes_its_fix() {
    let dir = tempfile::tempdir().unwrap();
    for (broken, fixed) in forms(dir.path()) {
        let args = [
            "check", "--rules", &broken, "--from", ALB_B, "--to", TASK_A2, "--port", "8080",
        ];
        let v = json(&args, 1);
        assert_eq!(v["pass"], false, "{broken}");
        assert_eq!(v["client_ports"]["from"], 1024);
        assert_eq!(v["client_ports"]["to"], 65535);
        assert!(v["client_ports"]["why"]
            .as_str()
            .unwrap()
            .contains("Elastic Load Balancing"));
        // The request passes for every port: SG rule to the app group, public NACL
        // outbound rule 100 (8080 to 10.0.11.0/24), app NACL inbound rule 110 (8080
        // from 10.0.2.0/24).
        let req = v["request"].as_array().unwrap();
        assert_eq!(req.len(), 1);
        assert_eq!(req[0]["action"], "ACCEPT");
        assert_eq!(ports(&req[0]), [(1024, 65535)]);
        assert_eq!(
            checks(&req[0]),
            [
                t("sg-egress", true, "new"),
                t("nacl-outbound", true, "acl-0a1b2c3d4e5f60010 rule 100"),
                t("nacl-inbound", true, "acl-0a1b2c3d4e5f60020 rule 110"),
                t("sg-ingress", true, "new"),
            ]
        );
        // The reply: tracked by the task's SG, then the app NACL's outbound rules.
        let rep = v["reply"].as_array().unwrap();
        let pass: Vec<&Value> = rep.iter().filter(|g| g["action"] == "ACCEPT").collect();
        let fail: Vec<&Value> = rep.iter().filter(|g| g["action"] == "REJECT").collect();
        assert_eq!((pass.len(), fail.len()), (1, 1), "{broken}");
        assert_eq!(ports(pass[0]), [(32768, 61000)]);
        assert_eq!(ports(fail[0]), [(1024, 32767), (61001, 65535)]);
        assert_eq!(
            checks(fail[0]),
            [
                t("sg-egress", true, "tracked"),
                t("nacl-outbound", false, "acl-0a1b2c3d4e5f60020 rule *"),
            ]
        );
        assert_eq!(fail[0]["checks"][1]["tracked"], true);
        assert_eq!(
            checks(pass[0]),
            [
                t("sg-egress", true, "tracked"),
                t("nacl-outbound", true, "acl-0a1b2c3d4e5f60020 rule 130"),
                t("nacl-inbound", true, "acl-0a1b2c3d4e5f60010 rule 140"),
                t("sg-ingress", true, "tracked"),
            ]
        );
        let failures = v["failures"].as_array().unwrap();
        assert_eq!(failures.len(), 1);
        assert!(failures[0]
            .as_str()
            .unwrap()
            .contains("1024-32767, 61001-65535"));

        // The fix: every port of 1024-65535 answered by rule 130.
        let args = [
            "check", "--rules", &fixed, "--from", ALB_B, "--to", TASK_A2, "--port", "8080",
        ];
        let v = json(&args, 0);
        assert_eq!(v["pass"], true, "{fixed}");
        let rep = v["reply"].as_array().unwrap();
        assert_eq!(rep.len(), 1);
        assert_eq!(ports(&rep[0]), [(1024, 65535)]);
        assert_eq!(
            checks(&rep[0])[1],
            t("nacl-outbound", true, "acl-0a1b2c3d4e5f60020 rule 130")
        );
        // The text says the same, and exits the same way.
        let (text, _) = run(&args[..args.len()], 0);
        assert!(text.contains("PASS"), "{text}");
    }
}

/// SSH from the bastion (a Linux instance: 32768-60999) to an app task is not
/// affected: the reply meets rule 120 (to 10.0.1.0/24). By its Name tag in the AWS
/// form, by its id in the TOML form.
#[test]
fn check_ssh_from_the_bastion_passes_for_a_linux_client() {
    for (rules, from) in [
        ("rulesets/securecart-aws/", "securecart-bastion"),
        ("rulesets/securecart.toml", "eni-0a1b2c3d4e5f60103"),
    ] {
        let v = json(
            &[
                "check",
                "--rules",
                rules,
                "--from",
                from,
                "--to",
                "10.0.11.10",
                "--port",
                "22",
            ],
            0,
        );
        assert_eq!(v["from"]["eni"], "eni-0a1b2c3d4e5f60103");
        assert_eq!(v["to"]["eni"], "eni-0a1b2c3d4e5f60201");
        assert_eq!(
            (
                v["client_ports"]["from"].as_u64(),
                v["client_ports"]["to"].as_u64()
            ),
            (Some(32768), Some(60999))
        );
        let rep = v["reply"].as_array().unwrap();
        assert_eq!(rep.len(), 1);
        assert_eq!(
            checks(&rep[0])[1],
            t("nacl-outbound", true, "acl-0a1b2c3d4e5f60020 rule 120")
        );
        // A Windows client's range would not be answered above 61000.
        let v = json(
            &[
                "check",
                "--rules",
                rules,
                "--from",
                from,
                "--to",
                "10.0.11.10",
                "--port",
                "22",
                "--client-ports",
                "49152-65535",
            ],
            1,
        );
        let fail: Vec<&Value> = v["reply"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|g| g["action"] == "REJECT")
            .collect();
        assert_eq!(ports(fail[0]), [(61001, 65535)]);
    }
}

/// From the internet, the ALB is reached at its public address through the internet
/// gateway; HTTPS passes (public NACL inbound 100, outbound 150 for the replies), a
/// ping does not (the public NACL lets in only ICMP 3/4).
#[test]
fn check_from_the_internet_goes_through_the_gateway() {
    let v = json(
        &[
            "check",
            "--rules",
            "rulesets/securecart.toml",
            "--from",
            "internet",
            "--to",
            "eni-0a1b2c3d4e5f60101",
            "--port",
            "443",
        ],
        0,
    );
    assert_eq!(v["from"]["address"], "192.0.2.1");
    assert_eq!(v["to"]["address"], "203.0.113.10");
    assert_eq!(
        checks(&v["request"][0]),
        [
            t("internet-gateway", true, "203.0.113.10"),
            t("nacl-inbound", true, "acl-0a1b2c3d4e5f60010 rule 100"),
            t("sg-ingress", true, "new"),
        ]
    );
    assert_eq!(
        checks(&v["reply"][0])[1..],
        [
            t("sg-egress", true, "tracked"),
            t("nacl-outbound", true, "acl-0a1b2c3d4e5f60010 rule 150"),
        ]
    );
    let v = json(
        &[
            "check",
            "--rules",
            "rulesets/securecart.toml",
            "--from",
            "internet",
            "--to",
            "eni-0a1b2c3d4e5f60101",
            "--protocol",
            "icmp",
            "--icmp",
            "8/0",
        ],
        1,
    );
    assert_eq!(v["request"][0]["action"], "REJECT");
    assert_eq!(
        checks(&v["request"][0])[1],
        t("nacl-inbound", false, "acl-0a1b2c3d4e5f60010 rule *")
    );
    assert_eq!(v["reply"].as_array().unwrap().len(), 0);
    assert_eq!(v["client_ports"], Value::Null);
    // An app task has no public address: the internet cannot reach it.
    let (text, _) = run(
        &[
            "check",
            "--rules",
            "rulesets/securecart.toml",
            "--from",
            "internet",
            "--to",
            "eni-0a1b2c3d4e5f60201",
            "--port",
            "8080",
        ],
        1,
    );
    assert!(text.contains("no public IPv4 address"), "{text}");
}

#[test]
fn check_exit_statuses_and_messages() {
    let (_, err) = run(
        &[
            "check",
            "--rules",
            "rulesets/securecart.toml",
            "--from",
            "nosuch",
            "--to",
            "internet",
            "--port",
            "1",
        ],
        2,
    );
    assert!(
        err.contains("--from: \"nosuch\" is not an address"),
        "{err}"
    );
    let (_, err) = run(
        &[
            "check",
            "--rules",
            "rulesets/securecart.toml",
            "--from",
            "internet",
            "--to",
            "eni-0a1b2c3d4e5f60101",
        ],
        2,
    );
    assert!(err.contains("needs --port"), "{err}");
    let (_, err) = run(
        &[
            "check",
            "--rules",
            "rulesets/securecart.toml",
            "--from",
            "internet",
            "--to",
            "eni-0a1b2c3d4e5f60101",
            "--protocol",
            "icmp",
            "--port",
            "1",
        ],
        2,
    );
    assert!(err.contains("only tcp and udp have ports"), "{err}");
    let (_, err) = run(
        &[
            "check",
            "--rules",
            "no/such/rules.toml",
            "--from",
            "internet",
            "--to",
            "eni-0a1b2c3d4e5f60101",
            "--port",
            "443",
        ],
        2,
    );
    assert!(err.contains("did not load"), "{err}");
    let (out, _) = run(&["check", "--help"], 0);
    assert!(
        out.contains("Examples:") && out.contains("Exit status"),
        "{out}"
    );
}

/// README.md's samples of `check` and `replay --explain` are what those commands print
/// (`scratch/fixed.toml` made as tutorial 3 makes it).
#[test]
fn the_readme_samples_of_check_and_explain_are_real() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for d in ["rulesets", "pcaps"] {
        std::os::unix::fs::symlink(root().join(d), dir.path().join(d)).unwrap();
    }
    std::fs::create_dir(dir.path().join("scratch")).unwrap();
    let toml = std::fs::read_to_string(root().join("rulesets/securecart.toml")).unwrap();
    std::fs::write(
        dir.path().join("scratch/fixed.toml"),
        toml.replace("ports = \"32768-61000\"", "ports = \"1024-65535\""),
    )
    .unwrap();
    let mut compared = 0;
    for block in readme.split("```text\n").skip(1) {
        let body = block.split("```").next().unwrap();
        let Some(first) = body.lines().next() else {
            continue;
        };
        let Some(cmd) = first.strip_prefix("$ vpcgate ") else {
            continue;
        };
        if !(cmd.starts_with("check ") || cmd.contains("--explain")) {
            continue;
        }
        let shown = &body[first.len() + 1..];
        let args: Vec<&str> = cmd.split_whitespace().collect();
        let out = Command::cargo_bin("vpcgate")
            .unwrap()
            .current_dir(dir.path())
            .args(&args)
            .output()
            .unwrap();
        let printed = String::from_utf8(out.stdout).unwrap();
        assert_eq!(printed, shown, "README.md: `vpcgate {cmd}`");
        compared += 1;
    }
    assert_eq!(compared, 3, "the README's check and explain samples");
}

/// Lesson 3's `world` server: its group allows SSH from 0.0.0.0/0 and everything out
/// to 0.0.0.0/0, so SSH to it is untracked (manual, "Connection tracking"): the
/// SYN creates no connection and the SYN-ACK passes by the egress rule, not by
/// tracking. The `office` server (SSH only from 198.51.100.0/24) is tracked.
#[test]
fn check_tells_untracked_from_tracked() {
    let rules = "rulesets/lesson-untracked.toml";
    let v = json(
        &[
            "check",
            "--rules",
            rules,
            "--from",
            "internet",
            "--to",
            "eni-0c1a55e0000000031",
            "--port",
            "22",
        ],
        0,
    );
    let sg = |g: &Value| {
        g["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"].as_str().unwrap().starts_with("sg-"))
            .unwrap()
            .clone()
    };
    assert_eq!(sg(&v["request"][0])["tracking"], "untracked");
    let reply_sg = sg(&v["reply"][0]);
    assert_eq!(reply_sg["tracking"], "untracked");
    assert_eq!(
        reply_sg["rule"],
        "sg-0c1a55e0000000031 egress: all to 0.0.0.0/0"
    );
    let v = json(
        &[
            "check",
            "--rules",
            rules,
            "--from",
            "198.51.100.25",
            "--to",
            "eni-0c1a55e0000000032",
            "--port",
            "22",
        ],
        0,
    );
    assert_eq!(sg(&v["request"][0])["tracking"], "new");
    assert_eq!(sg(&v["request"][0])["state"], "tcp-not-established");
    assert_eq!(sg(&v["reply"][0])["tracking"], "tracked");
    assert_eq!(sg(&v["reply"][0])["state"], "tcp-established");
}

/// The VPC resolver (base + 2 of 10.0.0.0/16) is never filtered (manual, "Where a
/// packet is evaluated"): a DNS query to it passes whatever the rules say, though
/// the app group allows no UDP out.
#[test]
fn check_dns_to_the_vpc_resolver_is_exempt() {
    let v = json(
        &[
            "check",
            "--rules",
            "rulesets/securecart.toml",
            "--from",
            "eni-0a1b2c3d4e5f60201",
            "--to",
            "10.0.0.2",
            "--protocol",
            "udp",
            "--port",
            "53",
        ],
        0,
    );
    assert_eq!(v["request"][0]["action"], "NONE");
    assert_eq!(v["request"][0]["checks"][0]["check"], "exempt");
    assert_eq!(v["reply"][0]["checks"][0]["check"], "exempt");
    // To another address outside, the app group's egress (5432 to the db group, 443
    // to 0.0.0.0/0) has nothing for UDP 53.
    let v = json(
        &[
            "check",
            "--rules",
            "rulesets/securecart.toml",
            "--from",
            "eni-0a1b2c3d4e5f60201",
            "--to",
            "internet",
            "--protocol",
            "udp",
            "--port",
            "53",
        ],
        1,
    );
    assert_eq!(v["request"][0]["checks"][0]["tracking"], "no-rule");
}
