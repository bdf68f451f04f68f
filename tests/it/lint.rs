//! `vpcgate lint`: the SecureCart finding in both ruleset forms, the README's sample,
//! exit statuses, the JSON and SARIF shapes.

use crate::determinism::root;
use crate::support::run;
use serde_json::Value;

fn findings(rules: &str) -> Vec<Value> {
    let (out, _) = run(&["lint", "--rules", rules, "--json"], 1);
    serde_json::from_str::<Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// The teaching point of rulesets/securecart.toml: the app NACL's rules 120 and 130
/// answer the load balancer only at 32768-61000; it uses 1024-65535.
#[test]
fn lint_finds_the_securecart_load_balancer_replies_in_toml_and_aws_json() {
    for rules in ["rulesets/securecart.toml", "rulesets/securecart-aws/"] {
        let f = findings(rules);
        let replies: Vec<&Value> = f
            .iter()
            .filter(|x| x["code"] == "nacl-reply-dropped")
            .collect();
        let resources: Vec<&str> = replies
            .iter()
            .map(|x| x["resource"].as_str().unwrap())
            .collect();
        assert_eq!(
            resources,
            [
                "acl-0a1b2c3d4e5f60020 outbound rule 120",
                "acl-0a1b2c3d4e5f60020 outbound rule 130"
            ],
            "{rules}"
        );
        for r in replies {
            assert_eq!(r["severity"], "error");
            let fix = r["fix"].as_str().unwrap();
            assert!(fix.contains("to ports 1024-65535"), "{fix}");
            let msg = r["message"].as_str().unwrap();
            assert!(msg.contains("the load balancer"), "{msg}");
            assert!(
                msg.contains("Elastic Load Balancing uses 1024-65535"),
                "{msg}"
            );
            let file = r["file"].as_str().unwrap();
            let expected = if rules.ends_with(".toml") {
                "rulesets/securecart.toml"
            } else {
                "describe-network-acls.json"
            };
            assert!(file.ends_with(expected), "{file}");
            assert!(r["line"].as_u64().unwrap() > 0);
            assert!(r["column"].as_u64().unwrap() > 0);
        }
    }
}

/// The two forms of the same VPC give the same findings, but for where they are written.
#[test]
fn lint_says_the_same_of_toml_and_aws_json() {
    let strip = |v: Vec<Value>| -> Vec<Value> {
        v.into_iter()
            .map(|mut x| {
                let o = x.as_object_mut().unwrap();
                for k in ["file", "line", "column"] {
                    o.remove(k);
                }
                x
            })
            .collect()
    };
    let mut a = strip(findings("rulesets/securecart.toml"));
    let mut b = strip(findings("rulesets/securecart-aws/"));
    let key = |x: &Value| x.to_string();
    a.sort_by_key(key);
    b.sort_by_key(key);
    assert_eq!(a, b);
}

/// The README's sample is exactly what the command prints.
#[test]
fn the_readme_lint_sample_is_what_lint_prints() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let cmd = "$ vpcgate lint --rules rulesets/securecart.toml\n";
    let start = readme.find(cmd).expect("the README shows the lint sample") + cmd.len();
    let end = start + readme[start..].find("```").unwrap();
    let (out, _) = run(&["lint", "--rules", "rulesets/securecart.toml"], 1);
    assert_eq!(
        &readme[start..end],
        out,
        "README.md's lint sample is stale: paste the output of `vpcgate lint --rules rulesets/securecart.toml`"
    );
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

const ONLY_A_NOTE: &str = r#"
[vpc]
id = "vpc-1"
cidrs = ["10.0.0.0/16"]
[[subnets]]
id = "subnet-a"
cidr = "10.0.1.0/24"
[[security_groups]]
id = "sg-spare"
name = "spare"
"#;

#[test]
fn lint_exit_status_follows_fail_on() {
    let dir = tempfile::tempdir().unwrap();
    let note = write(&dir, "note.toml", ONLY_A_NOTE);
    // A note only: fails only at --fail-on note.
    let (out, _) = run(&["lint", "--rules", &note], 0);
    assert!(out.contains("note[sg-unused]"), "{out}");
    run(&["lint", "--rules", &note, "--fail-on", "warning"], 0);
    run(&["lint", "--rules", &note, "--fail-on", "error"], 0);
    run(&["lint", "--rules", &note, "--fail-on", "note"], 1);
    // SecureCart has errors: every level fails.
    for level in ["error", "warning", "note"] {
        run(
            &[
                "lint",
                "--rules",
                "rulesets/securecart.toml",
                "--fail-on",
                level,
            ],
            1,
        );
    }
    // Nothing found.
    let (out, _) = run(
        &[
            "lint",
            "--rules",
            "rulesets/lesson-stateful.toml",
            "--fail-on",
            "note",
        ],
        0,
    );
    assert_eq!(out, "no findings\n");
    let (out, _) = run(
        &["lint", "--rules", "rulesets/lesson-stateful.toml", "--json"],
        0,
    );
    assert_eq!(out.trim(), "[]");
}

#[test]
fn lint_bad_usage_and_bad_rulesets_exit_2() {
    let (_, err) = run(
        &[
            "lint",
            "--rules",
            "rulesets/securecart.toml",
            "--quota",
            "rules-per-vpc=3",
        ],
        2,
    );
    assert!(err.contains("unknown quota `rules-per-vpc`"), "{err}");
    assert!(err.contains("rules-per-network-acl"), "{err}");
    run(
        &[
            "lint",
            "--rules",
            "rulesets/securecart.toml",
            "--quota",
            "rules-per-network-acl=x",
        ],
        2,
    );
    run(
        &[
            "lint",
            "--rules",
            "rulesets/securecart.toml",
            "--fail-on",
            "fatal",
        ],
        2,
    );
    run(&["lint"], 2);
    run(
        &[
            "lint",
            "--rules",
            "rulesets/securecart.toml",
            "--json",
            "--sarif",
        ],
        2,
    );
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        &dir,
        "bad.toml",
        "[vpc]\nid = \"vpc-1\"\n[[subnets]]\nid = \"subnet-a\"\ncidr = \"10.0.1.0/24\"\nnetwork_acl = \"acl-nope\"\n",
    );
    let (out, err) = run(&["lint", "--rules", &bad], 2);
    assert_eq!(out, "");
    assert!(err.contains("bad.toml:"), "{err}");
    assert!(err.contains("did not load"), "{err}");
}

#[test]
fn lint_quota_flag_changes_what_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let groups: Vec<String> = (1..=6).map(|i| format!("\"sg-{i}\"")).collect();
    let mut text = String::from(
        "[vpc]\nid = \"vpc-1\"\ncidrs = [\"10.0.0.0/16\"]\n[[subnets]]\nid = \"subnet-a\"\ncidr = \"10.0.1.0/24\"\n",
    );
    for i in 1..=6 {
        text += &format!("[[security_groups]]\nid = \"sg-{i}\"\n");
    }
    text += &format!(
        "[[network_interfaces]]\nid = \"eni-a\"\nsubnet = \"subnet-a\"\nprivate_ips = [\"10.0.1.5\"]\nsecurity_groups = [{}]\n",
        groups.join(", ")
    );
    let p = write(&dir, "six.toml", &text);
    let (out, _) = run(&["lint", "--rules", &p, "--json"], 1);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["code"], "quota-exceeded");
    assert_eq!(v[0]["resource"], "eni-a");
    run(
        &[
            "lint",
            "--rules",
            &p,
            "--quota",
            "security-groups-per-interface=6",
        ],
        0,
    );
}

#[test]
fn lint_json_keys_are_stable() {
    for f in findings("rulesets/securecart.toml") {
        let o = f.as_object().unwrap();
        let mut keys: Vec<&str> = o.keys().map(|k| k.as_str()).collect();
        keys.sort();
        assert_eq!(
            keys,
            ["code", "column", "file", "fix", "line", "message", "resource", "rule", "severity"]
        );
        assert!(["error", "warning", "note"].contains(&o["severity"].as_str().unwrap()));
    }
}

#[test]
fn lint_sarif_is_valid_sarif_2_1_0() {
    for rules in ["rulesets/securecart.toml", "rulesets/securecart-aws"] {
        let (out, _) = run(&["lint", "--rules", rules, "--sarif"], 1);
        let s: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(s["version"], "2.1.0");
        assert!(s["$schema"].as_str().unwrap().contains("sarif"));
        let runs = s["runs"].as_array().unwrap();
        assert_eq!(runs.len(), 1);
        let driver = &runs[0]["tool"]["driver"];
        assert_eq!(driver["name"], "vpcgate");
        let rule_ids: Vec<&str> = driver["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                assert!(r["shortDescription"]["text"].is_string());
                r["id"].as_str().unwrap()
            })
            .collect();
        let results = runs[0]["results"].as_array().unwrap();
        assert_eq!(results.len(), 4);
        for r in results {
            let id = r["ruleId"].as_str().unwrap();
            assert!(rule_ids.contains(&id), "{id}");
            assert_eq!(rule_ids[r["ruleIndex"].as_u64().unwrap() as usize], id);
            assert!(["error", "warning", "note", "none"].contains(&r["level"].as_str().unwrap()));
            assert!(!r["message"]["text"].as_str().unwrap().is_empty());
            let p = &r["locations"][0]["physicalLocation"];
            let uri = p["artifactLocation"]["uri"].as_str().unwrap();
            assert!(uri.starts_with("rulesets/"), "{uri}");
            assert!(p["region"]["startLine"].as_u64().unwrap() >= 1);
            assert!(p["region"]["startColumn"].as_u64().unwrap() >= 1);
        }
        assert!(results.iter().any(|r| r["ruleId"] == "nacl-reply-dropped"
            && r["level"] == "error"
            && r["message"]["text"]
                .as_str()
                .unwrap()
                .contains("1024-65535")));
    }
}

#[test]
fn lint_help_has_examples() {
    let (out, _) = run(&["lint", "--help"], 0);
    assert!(out.contains("Examples:"), "{out}");
    assert!(
        out.contains("vpcgate lint --rules rulesets/securecart.toml"),
        "{out}"
    );
    assert!(out.contains("--fail-on"), "{out}");
    assert!(out.contains("rules-per-security-group=60"), "{out}");
}
