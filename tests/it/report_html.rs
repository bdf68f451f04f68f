//! `replay --report`: the HTML page is self-contained, says the run's key numbers
//! (checked against the README's documented demo figures, the JSON summary and the
//! flow log, which count the same packets by other code), is the same bytes for any
//! number of workers, is refused where it would overwrite an input, and loads in a
//! real browser (headless Chromium) without a console message, with a screenshot
//! kept under `target/test-artifacts/`.

use crate::determinism::root;
use crate::support::{in_ci, require};
use assert_cmd::Command;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn vpcgate() -> Command {
    Command::cargo_bin("vpcgate").unwrap()
}

/// Replays the SecureCart demo with `--report` (and `extra`) and returns the page.
fn demo_report(dir: &Path, extra: &[&str]) -> String {
    let page = dir.join("report.html");
    vpcgate()
        .current_dir(root())
        .args([
            "replay",
            "--rules",
            "rulesets/securecart.toml",
            "pcaps/securecart.pcap",
        ])
        .arg("--report")
        .arg(&page)
        .args(["--quiet", "--no-progress"])
        .args(extra)
        .assert()
        .success();
    std::fs::read_to_string(page).unwrap()
}

/// The text of the element with `id` (`<x id="id" ...>TEXT<`).
fn by_id<'a>(html: &'a str, id: &str) -> &'a str {
    let at = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no element with id {id}"));
    let rest = &html[at..];
    let start = rest.find('>').unwrap() + 1;
    let end = rest[start..].find('<').unwrap();
    &rest[start..start + end]
}

/// Every way a page could fetch something: a `src`, `href`, `url()` or `@import`
/// naming another host, a script, a stylesheet link, a frame.
fn fetches(html: &str) -> Vec<String> {
    let lower = html.to_ascii_lowercase();
    let mut found = Vec::new();
    for pat in [
        "src=\"http",
        "src='http",
        "href=\"http",
        "href='http",
        "href=\"//",
        "src=\"//",
        "url(http",
        "url(\"http",
        "url('http",
        "url(//",
        "@import",
        "<script",
        "<link",
        "<iframe",
        "<object",
        "<embed",
    ] {
        if lower.contains(pat) {
            found.push(pat.to_string());
        }
    }
    found
}

#[test]
fn the_fetch_check_finds_what_it_looks_for() {
    // The check below could fail: it finds each kind of fetch in a page that has one.
    for page in [
        r#"<img src="https://example.com/a.png">"#,
        r#"<link rel="stylesheet" href="x.css">"#,
        r#"<style>@import "x.css";</style>"#,
        r#"<div style="background: url(http://x/y)"></div>"#,
        r#"<script>1</script>"#,
    ] {
        assert!(!fetches(page).is_empty(), "{page}");
    }
}

#[test]
fn the_report_is_self_contained_and_says_the_demos_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let html = demo_report(dir.path(), &[]);
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert_eq!(
        fetches(&html),
        Vec::<String>::new(),
        "the page fetches something"
    );
    assert!(
        html.contains("Content-Security-Policy\" content=\"default-src 'none'"),
        "the page forbids fetches to the browser"
    );
    // The README's tutorial 1 documents these figures for the demo.
    assert_eq!(by_id(&html, "packets"), "721");
    assert_eq!(by_id(&html, "accepted"), "671");
    assert_eq!(by_id(&html, "rejected"), "48");
    assert_eq!(by_id(&html, "not-evaluated"), "2");
    assert_eq!(
        by_id(&html, "top-reject-rule"),
        "nacl-outbound acl-0a1b2c3d4e5f60020 rule * (default deny)"
    );
    // All 39 of those were replies of tracked connections (the README's lesson).
    assert_eq!(by_id(&html, "rejected-replies"), "39");
    // Every accepted packet is in one of the two stateful classes.
    let tracked: u64 = by_id(&html, "accepted-tracked").parse().unwrap();
    let untracked: u64 = by_id(&html, "accepted-untracked").parse().unwrap();
    let by_rules: u64 = by_id(&html, "accepted-by-rules").parse().unwrap();
    assert_eq!(tracked + untracked + by_rules, 671);
    // No SecureCart group allows all ports both ways to 0.0.0.0/0: nothing untracked.
    assert_eq!(untracked, 0);
    // A TCP connection has more packets after its SYN than the SYN itself: most
    // accepted packets passed through tracking.
    assert!(tracked > by_rules, "{tracked} tracked, {by_rules} by rules");
    // The sections a person looks for.
    for id in ["timeline", "rejects", "stateful", "coverage", "diagram"] {
        assert!(html.contains(&format!("<section id=\"{id}\"")), "{id}");
    }
    // The ruleset picture names every subnet, ENI and security group of SecureCart.
    let toml = std::fs::read_to_string(root().join("rulesets/securecart.toml")).unwrap();
    for line in toml.lines() {
        if let Some(id) = line.strip_prefix("id = \"") {
            let id = id.split('"').next().unwrap();
            if id.starts_with("subnet-") || id.starts_with("eni-") || id.starts_with("sg-") {
                assert!(html.contains(id), "{id} is not in the diagram");
            }
        }
    }
}

#[test]
fn the_report_agrees_with_the_json_summary() {
    let dir = tempfile::tempdir().unwrap();
    let json_path = dir.path().join("s.json");
    let html = demo_report(dir.path(), &[&format!("--json={}", json_path.display())]);
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(json_path).unwrap()).unwrap();
    for (id, key) in [
        ("packets", "packets"),
        ("accepted", "accepted"),
        ("rejected", "rejected"),
        ("not-evaluated", "not_evaluated"),
    ] {
        assert_eq!(by_id(&html, id), j[key].to_string(), "{id}");
    }
    assert_eq!(
        by_id(&html, "top-reject-rule"),
        j["rejects"][0]["text"].as_str().unwrap()
    );
    let replies: u64 = j["rejects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["tracked_replies"].as_u64().unwrap())
        .sum();
    assert_eq!(by_id(&html, "rejected-replies"), replies.to_string());
    assert_eq!(
        by_id(&html, "untracked-checks"),
        j["conntrack"]["untracked_checks"].to_string()
    );
    // The rules nothing hit: every one the JSON lists, by its rule text.
    let not_hit = &j["coverage"][0]["not_hit"];
    let mut want = 0;
    for r in not_hit["nacl_rules"].as_array().unwrap() {
        let text = format!(
            "{} {} rule {} ({})",
            r["acl"].as_str().unwrap(),
            r["direction"].as_str().unwrap(),
            r["rule_number"],
            r["rule"].as_str().unwrap()
        );
        assert!(html.contains(&format!("<li>{text}</li>")), "{text}");
        want += 1;
    }
    want += not_hit["sg_rules"].as_array().unwrap().len();
    assert!(html.contains(&format!("The {want} rules nothing hit")));
}

/// The per-ENI totals of the timeline are the packets the flow log counts per
/// interface and action (flow logs count a packet at each ENI it meets, as the
/// timeline does), computed by another part of vpcgate.
#[test]
fn the_timeline_counts_what_the_flow_log_counts() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("flows.log");
    let html = demo_report(
        dir.path(),
        &["--flow-log", log.to_str().unwrap(), "--no-nodata"],
    );
    let mut want: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for line in std::fs::read_to_string(log).unwrap().lines().skip(1) {
        let f: Vec<&str> = line.split(' ').collect();
        // version account-id interface-id srcaddr dstaddr srcport dstport protocol
        // packets bytes start end action log-status
        let e = want.entry(f[2].to_string()).or_default();
        let n: u64 = f[8].parse().unwrap();
        match f[12] {
            "ACCEPT" => e.0 += n,
            "REJECT" => e.1 += n,
            other => panic!("action {other}"),
        }
    }
    assert!(!want.is_empty());
    for (eni, (acc, rej)) in want {
        let row = format!("<span class=\"mono\">{eni}</span>");
        let at = html
            .find(&row)
            .unwrap_or_else(|| panic!("no timeline row for {eni}"));
        let text = &html[at..at + 600];
        assert!(
            text.contains(&format!("{acc} accepted, {rej} rejected")),
            "{eni}: the flow log has {acc} accepted and {rej} rejected; the row says {text}"
        );
    }
}

#[test]
fn the_report_is_the_same_bytes_for_any_number_of_workers() {
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("synth.pcap");
    // Hours of capture time and many rejected flows: the timeline's buckets widen and
    // flow shards fill their lists of rejected flows.
    vpcgate()
        .args(["synth", "-o"])
        .arg(&cap)
        .args([
            "--packets",
            "60000",
            "--flows",
            "800",
            "--reject-share",
            "0.3",
        ])
        .args(["--duration", "20000", "--seed", "7"])
        .assert()
        .success();
    let mut pages = Vec::new();
    for w in ["1", "2", "4"] {
        let page = dir.path().join(format!("r{w}.html"));
        vpcgate()
            .current_dir(root())
            .args(["replay", "--rules", "rulesets/securecart.toml", "--quiet"])
            .arg(&cap)
            .arg("--report")
            .arg(&page)
            .args(["--workers", w])
            .assert()
            .success();
        pages.push(std::fs::read(page).unwrap());
    }
    assert!(pages[0].len() > 10_000);
    assert!(
        pages[0] == pages[1] && pages[0] == pages[2],
        "the pages differ"
    );
}

#[test]
fn a_report_path_that_is_an_input_is_refused_and_nothing_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("c.pcap");
    std::fs::copy(root().join("pcaps/securecart.pcap"), &cap).unwrap();
    let before = std::fs::read(&cap).unwrap();
    let out = vpcgate()
        .current_dir(root())
        .args(["replay", "--rules", "rulesets/securecart.toml"])
        .arg(&cap)
        .arg("--report")
        .arg(&cap)
        .assert()
        .code(2)
        .get_output()
        .clone();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--report"), "{err}");
    assert_eq!(std::fs::read(&cap).unwrap(), before);
    // Standard output is no place for a page.
    vpcgate()
        .current_dir(root())
        .args([
            "replay",
            "--rules",
            "rulesets/securecart.toml",
            "pcaps/securecart.pcap",
        ])
        .args(["--report", "-"])
        .assert()
        .code(2);
}

#[test]
fn an_existing_report_survives_a_missing_capture() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("old.html");
    std::fs::write(&page, "the report of yesterday").unwrap();
    vpcgate()
        .current_dir(root())
        .args([
            "replay",
            "--rules",
            "rulesets/securecart.toml",
            "pcaps/no-such.pcap",
        ])
        .arg("--report")
        .arg(&page)
        .assert()
        .code(1);
    assert_eq!(
        std::fs::read_to_string(&page).unwrap(),
        "the report of yesterday"
    );
}

/// The Chromium binary, where one is installed.
fn chromium() -> Option<&'static str> {
    [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ]
    .into_iter()
    .find(|p| {
        std::process::Command::new(p)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// Loads `page` in headless Chromium: the DOM after load, and every console message
/// (script errors, refused fetches under the page's Content-Security-Policy, logs).
/// With `screenshot`, also writes a PNG of the page there.
fn load_in_chromium(
    browser: &str,
    page: &Path,
    screenshot: Option<&Path>,
) -> (String, Vec<String>) {
    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}", page.canonicalize().unwrap().display());
    let mut cmd = std::process::Command::new(browser);
    cmd.args([
        "--headless",
        // As root (CI), Chromium runs only without its sandbox.
        "--no-sandbox",
        "--disable-gpu",
        // Containers often have a small /dev/shm.
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--hide-scrollbars",
        // Nothing may leave the machine: any host name fails to resolve.
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--enable-logging=stderr",
        "--v=0",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()));
    match screenshot {
        Some(png) => {
            cmd.arg("--window-size=1400,3200")
                .arg(format!("--screenshot={}", png.display()));
        }
        None => {
            cmd.arg("--dump-dom");
        }
    }
    let out = cmd.arg(&url).output().expect("chromium runs");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let console = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_string)
        .collect();
    (String::from_utf8_lossy(&out.stdout).into_owned(), console)
}

fn artifacts() -> PathBuf {
    // target/tmp -> target/test-artifacts
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_report_loads_in_headless_chromium_without_a_console_message() {
    let browser = chromium();
    if !require(
        browser.is_some(),
        "headless Chromium is not installed (apt-get install chromium)",
    ) {
        return;
    }
    let browser = browser.unwrap();
    let dir = tempfile::tempdir().unwrap();

    // The check can fail: a page that logs, throws and tries to fetch under the same
    // policy as the report is caught.
    let bad = dir.path().join("bad.html");
    std::fs::write(
        &bad,
        "<!DOCTYPE html><html><head><meta http-equiv=\"Content-Security-Policy\" \
         content=\"default-src 'none'; style-src 'unsafe-inline'\"></head><body>\
         <img src=\"http://fetch.invalid/a.png\"><script>console.error('x')</script>\
         </body></html>",
    )
    .unwrap();
    let (_, console) = load_in_chromium(browser, &bad, None);
    assert!(
        console
            .iter()
            .any(|l| l.contains("Content Security Policy")),
        "a refused fetch is not seen: {console:?}"
    );

    demo_report(dir.path(), &[]);
    let page = dir.path().join("report.html");
    let (dom, console) = load_in_chromium(browser, &page, None);
    assert_eq!(
        console,
        Vec::<String>::new(),
        "console messages while loading the report"
    );
    // The key numbers are in the DOM the browser built.
    for (id, want) in [
        ("packets", "721"),
        ("accepted", "671"),
        ("rejected", "48"),
        ("rejected-replies", "39"),
        (
            "top-reject-rule",
            "nacl-outbound acl-0a1b2c3d4e5f60020 rule * (default deny)",
        ),
    ] {
        assert_eq!(by_id(&dom, id), want, "{id} in the DOM");
    }
    // The charts and the diagram are SVG the browser parsed.
    assert!(
        dom.matches("<svg").count() >= 8,
        "too few SVG elements in the DOM"
    );

    let png = artifacts().join("report-securecart.png");
    let _ = std::fs::remove_file(&png);
    let (_, console) = load_in_chromium(browser, &page, Some(&png));
    assert_eq!(console, Vec::<String>::new());
    let shot = std::fs::read(&png).expect("a screenshot was written");
    assert!(shot.starts_with(b"\x89PNG\r\n\x1a\n") && shot.len() > 50_000);
    if !in_ci() {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "screenshot: {}", png.display());
    }
}

/// Lesson 3 (lessons/untracked.toml): both servers' inbound SSH rules go at +30s
/// (08:00:30 UTC); the untracked session's last two keystrokes are rejected at once,
/// the tracked one goes on. The page marks the change and shows the two rejects on
/// the untracked server's row.
#[test]
fn a_rules_at_change_is_marked_on_the_timeline() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("u.html");
    vpcgate()
        .current_dir(root())
        .args(["replay", "--rules", "rulesets/lesson-untracked.toml"])
        .args([
            "--rules-at",
            "1732435230=rulesets/lesson-untracked-after.toml",
        ])
        .args(["pcaps/lessons/untracked.pcap", "--quiet", "--report"])
        .arg(&page)
        .assert()
        .success();
    let html = std::fs::read_to_string(page).unwrap();
    assert!(
        by_id(&html, "rules-changes").contains("2024-11-24 08:00:30 UTC"),
        "{}",
        by_id(&html, "rules-changes")
    );
    // The change is drawn on the charts (plotters' SVG path in its colour).
    assert!(html.contains("#7B1FA2") || html.contains("#7b1fa2"));
    let at = html.find("eni-0c1a55e0000000031</span>").unwrap();
    assert!(
        html[at..at + 300].contains(", 2 rejected"),
        "{}",
        &html[at..at + 300]
    );
    let at = html.find("eni-0c1a55e0000000032</span>").unwrap();
    assert!(
        html[at..at + 300].contains(", 0 rejected"),
        "{}",
        &html[at..at + 300]
    );
}

#[test]
fn a_report_that_cannot_be_created_stops_the_run_before_any_output() {
    let dir = tempfile::tempdir().unwrap();
    let verdicts = dir.path().join("v.jsonl");
    let out = vpcgate()
        .current_dir(root())
        .args([
            "replay",
            "--rules",
            "rulesets/securecart.toml",
            "pcaps/securecart.pcap",
        ])
        .arg("--verdicts")
        .arg(&verdicts)
        .arg("--report")
        .arg(dir.path().join("no-such-dir/r.html"))
        .assert()
        .code(1)
        .get_output()
        .clone();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no-such-dir/r.html") && err.contains("nothing was replayed"),
        "{err}"
    );
    assert!(!verdicts.exists(), "the verdicts file was left behind");
}

/// The stateful panel on lesson 3: the session to the server open to the world in
/// both directions is an untracked flow (all 7 of its accepted packets, as its
/// timeline row counts them); the office session is tracked: its SYN passes by rule,
/// everything after it through tracking.
#[test]
fn the_stateful_panel_tells_tracked_untracked_and_rule_passes_apart() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("u.html");
    vpcgate()
        .current_dir(root())
        .args(["replay", "--rules", "rulesets/lesson-untracked.toml"])
        .args([
            "--rules-at",
            "1732435230=rulesets/lesson-untracked-after.toml",
        ])
        .args(["pcaps/lessons/untracked.pcap", "--quiet", "--report"])
        .arg(&page)
        .assert()
        .success();
    let html = std::fs::read_to_string(page).unwrap();
    let n = |id: &str| by_id(&html, id).parse::<u64>().unwrap();
    let at = html.find("eni-0c1a55e0000000031</span>").unwrap();
    let row = &html[at..at + 300];
    let world_accepted: u64 = row
        .split(" accepted")
        .next()
        .unwrap()
        .rsplit('>')
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(n("accepted-untracked"), world_accepted);
    assert_eq!(n("accepted-by-rules"), 1, "only the office session's SYN");
    assert_eq!(
        n("accepted-tracked") + n("accepted-untracked") + n("accepted-by-rules"),
        n("accepted")
    );
}

/// `--stateless-sg` (not AWS): the page says so in its title and first note, and its
/// flips table lists the JSON summary's groups of packets whose verdict differs from
/// AWS's, first group first.
#[test]
fn a_counterfactual_report_is_marked_not_aws_and_lists_the_flips() {
    let dir = tempfile::tempdir().unwrap();
    let json_path = dir.path().join("s.json");
    let html = demo_report(
        dir.path(),
        &["--stateless-sg", &format!("--json={}", json_path.display())],
    );
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(json_path).unwrap()).unwrap();
    let title = &html[html.find("<title>").unwrap()..html.find("</title>").unwrap()];
    assert!(title.contains("NOT AWS"), "{title}");
    assert!(
        html.contains("<p>COUNTERFACTUAL, NOT AWS: stateless security groups (--stateless-sg).")
    );
    let groups = j["counterfactual"]["flips"]["groups"].as_array().unwrap();
    assert!(!groups.is_empty(), "stateless SGs drop tracked replies");
    let table = &html[html.find("<table id=\"flips\">").expect("a flips table")..];
    let table = &table[..table.find("</table>").unwrap()];
    let first = &groups[0];
    let row = format!(
        "<td class=\"num\">{}</td><td>{}</td>",
        first["packets"],
        first["change"].as_str().unwrap()
    );
    assert!(table.contains(&row), "{row} not in {table}");
    // The page's own numbers are the counterfactual run's, as the JSON's.
    assert_eq!(by_id(&html, "rejected"), j["rejected"].to_string());
}

/// The AWS JSON export of SecureCart (rulesets/securecart-aws/) gives the page the
/// same figures as the TOML: the same VPC, the same demo numbers (tutorial 1).
#[test]
fn the_report_of_the_aws_json_export_says_the_same_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("aws.html");
    vpcgate()
        .current_dir(root())
        .args([
            "replay",
            "--rules",
            "rulesets/securecart-aws/",
            "pcaps/securecart.pcap",
            "--quiet",
            "--no-progress",
        ])
        .arg("--report")
        .arg(&page)
        .assert()
        .success();
    let html = std::fs::read_to_string(page).unwrap();
    assert_eq!(by_id(&html, "packets"), "721");
    assert_eq!(by_id(&html, "accepted"), "671");
    assert_eq!(by_id(&html, "rejected"), "48");
    assert_eq!(by_id(&html, "rejected-replies"), "39");
    assert_eq!(
        by_id(&html, "top-reject-rule"),
        "nacl-outbound acl-0a1b2c3d4e5f60020 rule * (default deny)"
    );
    assert!(
        html.contains("eni-0a1b2c3d4e5f60201"),
        "the diagram names the ENIs"
    );
}
