//! `vpcgate craft` and the lessons of docs/tutorial.md: every command of the tutorial
//! runs here and its output is compared with the text; every lesson pcap is what
//! `craft` writes from its story; and the verdicts the lessons teach are checked one by
//! one against the manual (README "Manual of emulation decisions", EMULATION.md), each
//! with the point it comes from.

use crate::determinism::root;
use assert_cmd::Command;
use std::path::Path;

fn vpcgate() -> Command {
    Command::cargo_bin("vpcgate").unwrap()
}

/// Each lesson: its story, the `--rules` its story resolves ENIs against, its pcap.
const LESSONS: &[(&str, &str, &str)] = &[
    (
        "lessons/stateful.toml",
        "rulesets/lesson-stateful.toml",
        "pcaps/lessons/stateful.pcap",
    ),
    (
        "lessons/ephemeral.toml",
        "rulesets/securecart-aws/",
        "pcaps/lessons/ephemeral.pcap",
    ),
    (
        "lessons/untracked.toml",
        "rulesets/lesson-untracked.toml",
        "pcaps/lessons/untracked.pcap",
    ),
    (
        "lessons/sg-reference.toml",
        "rulesets/lesson-sg-reference.toml",
        "pcaps/lessons/sg-reference.pcap",
    ),
    (
        "lessons/defaults.toml",
        "rulesets/lesson-defaults.toml",
        "pcaps/lessons/defaults.pcap",
    ),
];

#[test]
fn the_lesson_pcaps_are_what_craft_writes_from_their_stories() {
    let dir = tempfile::tempdir().unwrap();
    for (story, rules, pcap) in LESSONS {
        let out = dir.path().join("out.pcap");
        vpcgate()
            .current_dir(root())
            .args(["craft", story, "--rules", rules, "-o"])
            .arg(&out)
            .assert()
            .success();
        let committed = std::fs::read(root().join(pcap)).unwrap();
        assert!(
            std::fs::read(&out).unwrap() == committed,
            "{pcap} is stale: run `cargo run --release -- craft {story} --rules {rules} -o {pcap}`"
        );
    }
}

/// A ```sh block of the tutorial and the ```text block right after it (if any).
struct Example {
    line: usize,
    commands: Vec<String>,
    expected: Option<String>,
}

fn examples(doc: &str) -> Vec<Example> {
    let lines: Vec<&str> = doc.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let block = |i: &mut usize| -> Vec<String> {
        let mut body = Vec::new();
        *i += 1;
        while *i < lines.len() && lines[*i].trim_end() != "```" {
            body.push(lines[*i].to_string());
            *i += 1;
        }
        *i += 1;
        body
    };
    while i < lines.len() {
        if lines[i].trim_end() == "```sh" {
            let line = i + 1;
            let body = block(&mut i);
            let mut commands = Vec::new();
            let mut cur = String::new();
            for l in body {
                if cur.is_empty() && (l.trim().is_empty() || l.trim_start().starts_with('#')) {
                    continue;
                }
                match l.strip_suffix('\\') {
                    Some(part) => cur.push_str(part),
                    None => {
                        cur.push_str(&l);
                        commands.push(std::mem::take(&mut cur));
                    }
                }
            }
            let mut j = i;
            while j < lines.len() && lines[j].trim().is_empty() {
                j += 1;
            }
            let expected = (j < lines.len() && lines[j].trim_end() == "```text").then(|| {
                i = j;
                let mut t = block(&mut i).join("\n");
                t.push('\n');
                t
            });
            out.push(Example {
                line,
                commands,
                expected,
            });
        } else {
            i += 1;
        }
    }
    out
}

/// Runs the tutorial's commands in a fresh directory that sees the repository's
/// `lessons/`, `rulesets/` and `pcaps/`, with `cargo run --release --` standing for the
/// binary under test. vpcgate's own commands must succeed; `grep` and `sed` may exit 1
/// (no match). Returns the concatenated stdout of each example.
fn run_tutorial(dir: &Path) -> Vec<(Example, String)> {
    for d in ["lessons", "rulesets", "pcaps"] {
        std::os::unix::fs::symlink(root().join(d), dir.join(d)).unwrap();
    }
    let bin = assert_cmd::cargo::cargo_bin("vpcgate");
    let doc = std::fs::read_to_string(root().join("docs/tutorial.md")).unwrap();
    let mut out = Vec::new();
    for ex in examples(&doc) {
        let mut stdout = String::new();
        for c in &ex.commands {
            let ours = c.starts_with("cargo run --release -- ");
            let cmd = match c.strip_prefix("cargo run --release -- ") {
                Some(rest) => format!("'{}' {rest}", bin.display()),
                None => c.clone(),
            };
            let o = std::process::Command::new("sh")
                .arg("-c")
                .arg(&cmd)
                .current_dir(dir)
                .output()
                .unwrap();
            if ours {
                assert!(
                    o.status.success(),
                    "docs/tutorial.md:{}: `{c}` failed: {}",
                    ex.line,
                    String::from_utf8_lossy(&o.stderr)
                );
            }
            stdout.push_str(&String::from_utf8(o.stdout).unwrap());
        }
        out.push((ex, stdout));
    }
    out
}

#[test]
fn every_command_of_the_tutorial_prints_what_the_tutorial_says() {
    let dir = tempfile::tempdir().unwrap();
    let runs = run_tutorial(dir.path());
    assert!(runs.len() >= 7, "the tutorial lost its examples");
    let mut failures = Vec::new();
    for (ex, got) in &runs {
        match &ex.expected {
            Some(want) if want != got => failures.push(format!(
                "docs/tutorial.md:{}: the output differs.\n--- the tutorial says:\n{want}--- the commands print:\n{got}",
                ex.line
            )),
            _ => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Replays a lesson pcap and returns (action, reason) per packet, with src and dst.
fn verdicts(rules: &[&str], pcap: &str) -> Vec<serde_json::Value> {
    let mut cmd = vpcgate();
    cmd.current_dir(root()).arg("replay");
    for r in rules {
        if let Some(at) = r.strip_prefix("at:") {
            cmd.args(["--rules-at", at]);
        } else {
            cmd.args(["--rules", r]);
        }
    }
    let out = cmd
        .args([pcap, "--verdicts", "-", "--quiet"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// (packet, action, reason) of every packet, reason "" for ACCEPT.
fn outcomes(v: &[serde_json::Value]) -> Vec<(u64, String, String)> {
    v.iter()
        .map(|x| {
            (
                x["packet"].as_u64().unwrap(),
                x["action"].as_str().unwrap().to_string(),
                x["reason"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn rejected(v: &[serde_json::Value]) -> Vec<(u64, String)> {
    outcomes(v)
        .into_iter()
        .filter(|(_, a, _)| a == "REJECT")
        .map(|(p, _, r)| (p, r))
        .collect()
}

/// The verdicts each lesson teaches, worked out from the manual rather than from what
/// the program prints; the tutorial's text is held to the program by the test above.
#[test]
fn the_lessons_teach_what_aws_does() {
    // Lesson 1 (rulesets/lesson-stateful.toml). Packets: 1-11 HTTP session, 12-19 four
    // echo request/reply pairs, 20-22 the server's own SYN sent three times.
    let v = verdicts(
        &["rulesets/lesson-stateful.toml"],
        "pcaps/lessons/stateful.pcap",
    );
    assert_eq!(v.len(), 22);
    let nacl_out = "nacl-outbound acl-0c1a55e0000000001 rule 32767";
    let sg_out = "sg-egress eni-0c1a55e0000000001 no rule";
    let mut want: Vec<(u64, String)> = Vec::new();
    // Manual, "Connection tracking": the echo request creates an entry that lets its
    // reply through the SG; "Network ACLs": the NACL is stateless, has no outbound ICMP
    // rule, so the `*` rule 32767 denies the reply (AWS's flow-log example of a ping with
    // a NACL that denies the reply). On egress the SG comes first, then the NACL, so the
    // NACL names the reject.
    for p in [13, 15, 17, 19] {
        want.push((p, nacl_out.to_string()));
    }
    // "Security groups": allow rules only; the group has no egress rule and nothing is
    // tracked for a connection the server opens itself.
    for p in [20, 21, 22] {
        want.push((p, sg_out.to_string()));
    }
    // Everything else, the HTTP session both ways (tracked replies; NACL outbound rule
    // 100 allows 1024-65535, the customer's port is 51000) and the echo requests
    // (NACL rule 110, SG icmp 8), is accepted.
    assert_eq!(rejected(&v), want);

    // Lesson 2 (SecureCart). Packets 19-24: three SYN / SYN-ACK pairs from the ALB's
    // port 20345. The app NACL's outbound rules 120/130 allow 32768-61000 only ("Network
    // ACLs": ports are the destination port, first match, then `*`), so each SYN-ACK to
    // 20345 is denied by rule 32767 of acl-0a1b2c3d4e5f60020; the SG does not deny it
    // (tracked reply). Port 40000 is inside the range: that session passes.
    let v = verdicts(
        &["rulesets/securecart-aws/"],
        "pcaps/lessons/ephemeral.pcap",
    );
    assert_eq!(v.len(), 34);
    let app_nacl = "nacl-outbound acl-0a1b2c3d4e5f60020 rule 32767".to_string();
    assert_eq!(
        rejected(&v),
        vec![
            (20, app_nacl.clone()),
            (22, app_nacl.clone()),
            (24, app_nacl)
        ]
    );
    for p in [19, 21, 23] {
        assert_eq!(v[p - 1]["dst_port"], 8080);
        assert_eq!(v[p - 1]["src_port"], 20345);
    }

    // Lesson 3: untracked and tracked flows over a rule change at 1732435230.
    let v = verdicts(
        &[
            "rulesets/lesson-untracked.toml",
            "at:1732435230=rulesets/lesson-untracked-after.toml",
        ],
        "pcaps/lessons/untracked.pcap",
    );
    assert_eq!(v.len(), 20);
    // "Untracked flows": the SSH to `world` (ingress tcp 22 from 0.0.0.0/0, egress -1 to
    // 0.0.0.0/0) is untracked, so "removing the inbound rule cuts the session at once":
    // the two keystrokes after the change (at +40 s and +60 s) meet no rule.
    // "Rule changes": "live tracked entries keep passing until they time out or close";
    // the session to `office` (ingress from 198.51.100.0/24 only, not 0.0.0.0/0) is
    // tracked, so all its packets pass after the change too.
    let world = "sg-ingress eni-0c1a55e0000000031 no rule".to_string();
    let r = rejected(&v);
    assert_eq!(r.len(), 2, "{r:?}");
    for (p, reason) in &r {
        let x = &v[*p as usize - 1];
        assert_eq!(reason, &world);
        assert_eq!(x["dst"], "203.0.113.31");
        assert!(x["time"].as_f64().unwrap() >= 1_732_435_230.0);
    }
    let office: Vec<_> = v
        .iter()
        .filter(|x| x["src"] == "203.0.113.32" || x["dst"] == "203.0.113.32")
        .collect();
    assert_eq!(office.len(), 11);
    assert!(office.iter().all(|x| x["action"] == "ACCEPT"));
    assert!(office
        .iter()
        .any(|x| x["time"].as_f64().unwrap() > 1_732_435_230.0));
    // Without the change, nothing is rejected: the story itself is allowed.
    let v = verdicts(
        &["rulesets/lesson-untracked.toml"],
        "pcaps/lessons/untracked.pcap",
    );
    assert!(rejected(&v).is_empty());

    // Lesson 4: "Security groups": "A rule naming a group matches the private IPv4 and
    // IPv6 addresses ... of every ENI in that group, never public addresses."
    // Packets 9-10: batch (10.4.1.20, not in `app`, same subnet) to the database: no
    // rule. 11-12: from the app server's public address to the API's public address:
    // "The other side still sees the public address, so an SG rule that names the ENI's
    // group never matches it". The default NACL allows all, so the SG names the reject.
    let v = verdicts(
        &["rulesets/lesson-sg-reference.toml"],
        "pcaps/lessons/sg-reference.pcap",
    );
    assert_eq!(v.len(), 20);
    let db = "sg-ingress eni-0c1a55e0000000043 no rule".to_string();
    let api = "sg-ingress eni-0c1a55e0000000044 no rule".to_string();
    assert_eq!(
        rejected(&v),
        vec![(9, db.clone()), (10, db), (11, api.clone()), (12, api)]
    );

    // Lesson 5: "The model": a subnet with no NACL association uses the VPC's default
    // NACL, which vpcgate adds as AWS creates it (allow all); "A custom NACL with no
    // rules denies everything". The default SG allows in only from its own members.
    // Packets 9-10: the internet to web-1: the NACL allows, the SG has no rule. 19-20:
    // web-1 to db-1 in subnet b: its NACL (no rules) denies with `*`, before db-1's SG
    // (which would allow a member of the group).
    let v = verdicts(
        &["rulesets/lesson-defaults.toml"],
        "pcaps/lessons/defaults.pcap",
    );
    assert_eq!(v.len(), 20);
    let sg = "sg-ingress eni-0c1a55e0000000051 no rule".to_string();
    let nacl = "nacl-inbound acl-0c1a55e0000000052 rule 32767".to_string();
    assert_eq!(
        rejected(&v),
        vec![(9, sg.clone()), (10, sg), (19, nacl.clone()), (20, nacl)]
    );
}

#[test]
fn craft_never_overwrites_its_story_or_ruleset() {
    let dir = tempfile::tempdir().unwrap();
    let story = dir.path().join("s.toml");
    let text =
        "start = 1700000000\n[[ping]]\nat = \"+0s\"\nfrom = \"192.0.2.1\"\nto = \"10.1.1.10\"\n";
    std::fs::write(&story, text).unwrap();
    let rules = dir.path().join("r.toml");
    std::fs::copy(root().join("rulesets/lesson-stateful.toml"), &rules).unwrap();
    for target in [&story, &rules] {
        let out = vpcgate()
            .arg("craft")
            .arg(&story)
            .arg("--rules")
            .arg(&rules)
            .arg("-o")
            .arg(target)
            .assert()
            .code(2)
            .get_output()
            .clone();
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains("would overwrite"), "{err}");
    }
    assert_eq!(std::fs::read_to_string(&story).unwrap(), text);
    // The same file by another name.
    let other = dir.path().join(".").join("s.toml");
    vpcgate()
        .arg("craft")
        .arg(&story)
        .arg("-o")
        .arg(&other)
        .assert()
        .code(2);
    assert_eq!(std::fs::read_to_string(&story).unwrap(), text);
}

#[test]
fn a_bad_story_exits_2_naming_the_line_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let story = dir.path().join("bad.toml");
    std::fs::write(
        &story,
        "start = 1700000000\n[[connection]]\nat = \"+1s\"\nclient = \"alb-1\"\nserver = \"eni-0c1a55e0000000099\"\nport = 80\n",
    )
    .unwrap();
    let out = dir.path().join("out.pcap");
    let o = vpcgate()
        .arg("craft")
        .arg(&story)
        .args(["--rules"])
        .arg(root().join("rulesets/lesson-stateful.toml"))
        .arg("-o")
        .arg(&out)
        .assert()
        .code(2)
        .get_output()
        .clone();
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(
        err.contains("bad.toml:4:10: connection[0].client: unknown host \"alb-1\""),
        "{err}"
    );
    assert!(
        err.contains("bad.toml:5:10: connection[0].server: unknown host \"eni-0c1a55e0000000099\""),
        "{err}"
    );
    assert!(
        err.contains("the story did not compile (2 problem(s))"),
        "{err}"
    );
    assert!(!out.exists());
}

/// ENI names come from the `Name` tags of describe-network-interfaces JSON; the same
/// story gives the same bytes on every run.
#[test]
fn eni_names_resolve_and_the_same_story_gives_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let story = dir.path().join("s.toml");
    std::fs::write(
        &story,
        "start = 1700000000\n[[connection]]\nat = \"+0s\"\nclient = \"198.51.100.25\"\nserver = \"securecart-bastion\"\nvia = \"public\"\nport = 22\nend = \"rst\"\n",
    )
    .unwrap();
    let mut bytes = Vec::new();
    for i in 0..2 {
        let out = dir.path().join(format!("{i}.pcap"));
        vpcgate()
            .arg("craft")
            .arg(&story)
            .arg("--rules")
            .arg(root().join("rulesets/securecart-aws"))
            .arg("-o")
            .arg(&out)
            .assert()
            .success();
        bytes.push(std::fs::read(&out).unwrap());
    }
    assert_eq!(bytes[0], bytes[1]);
    let v = vpcgate()
        .args(["replay", "--rules"])
        .arg(root().join("rulesets/securecart-aws"))
        .arg(dir.path().join("0.pcap"))
        .args(["--verdicts", "-", "--quiet"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let first: serde_json::Value =
        serde_json::from_str(String::from_utf8(v).unwrap().lines().next().unwrap()).unwrap();
    // The bastion's public address (rulesets/securecart.toml: 203.0.113.30).
    assert_eq!(first["dst"], "203.0.113.30");
    assert_eq!(first["action"], "ACCEPT");
}
