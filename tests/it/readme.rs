//! The README's quick start and tutorial, run as written: every command succeeds, and
//! every sample output shown under a `head`/`grep` command is exactly what that command
//! prints; the summary of tutorial 1 shows every line the run prints (the coverage
//! part may be cut with `...`).
//!
//! When the output changes on purpose, run the README's commands from the repository
//! root and paste what they print into README.md.

use crate::determinism::root;
use std::path::Path;
use std::process::Command;

/// A fenced code block: its info string (`sh`, `text`, `json`), its body (the fence's
/// indentation removed) and the heading it sits under.
#[derive(Debug)]
struct Block {
    info: String,
    body: String,
    section: String,
}

fn blocks(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut section = String::new();
    let mut open: Option<(usize, String, String)> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        match &mut open {
            None if trimmed.starts_with("```") => {
                open = Some((indent, trimmed[3..].trim().to_string(), String::new()));
            }
            None => {
                if line.starts_with('#') {
                    section = line.trim_start_matches('#').trim().to_string();
                }
            }
            Some((_, info, body)) if trimmed == "```" => {
                out.push(Block {
                    info: std::mem::take(info),
                    body: std::mem::take(body),
                    section: section.clone(),
                });
                open = None;
            }
            Some((fence, _, body)) => {
                body.push_str(line.get(*fence..).unwrap_or(line.trim_start()));
                body.push('\n');
            }
        }
    }
    out
}

/// Runs a README command in `dir` (which has `rulesets/` and `pcaps/`), with
/// `cargo run --release --` standing for the binary under test.
fn sh(dir: &Path, command: &str) -> std::process::Output {
    let command = command.replace("cargo run --release --", "\"$VPCGATE\"");
    Command::new("sh")
        .arg("-c")
        .arg(&command)
        .current_dir(dir)
        .env("VPCGATE", env!("CARGO_BIN_EXE_vpcgate"))
        .output()
        .unwrap()
}

/// A summary line without what changes from run to run: the time and rate of the
/// first line, the default `--max-flows` (from the machine's memory).
fn steady(line: &str) -> String {
    let line = line.trim_end();
    if line.starts_with("vpcgate replay:") {
        return line.split(" in ").next().unwrap_or(line).to_string();
    }
    if let Some(i) = line.find("--max-flows ") {
        let rest = &line[i + 12..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        return format!("{}--max-flows N{}", &line[..i], &rest[digits..]);
    }
    line.to_string()
}

fn is_elision(line: &str) -> bool {
    matches!(line.trim(), "..." | "…")
}

#[test]
fn the_readme_tutorial_prints_what_it_shows() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let blocks = blocks(&readme);
    let dir = tempfile::tempdir().unwrap();
    for d in ["rulesets", "pcaps"] {
        std::os::unix::fs::symlink(root().join(d), dir.path().join(d)).unwrap();
    }
    let in_tutorial = |b: &Block| {
        b.section == "Quick start"
            || ["1. ", "2. ", "3. ", "4. "]
                .iter()
                .any(|n| b.section.starts_with(n))
    };
    let mut summary = None;
    let mut compared = 0;
    let mut i = 0;
    while i < blocks.len() {
        let b = &blocks[i];
        if b.info != "sh" || !in_tutorial(b) {
            i += 1;
            continue;
        }
        let shown = blocks
            .get(i + 1)
            .filter(|n| n.info == "text" || n.info == "json");
        let inspects = b
            .body
            .lines()
            .all(|l| l.starts_with("head ") || l.starts_with("grep "));
        let out = sh(dir.path(), &b.body);
        assert!(
            out.status.success(),
            "README command failed:\n{}\n{}",
            b.body,
            String::from_utf8_lossy(&out.stderr)
        );
        if b.section == "Quick start" && b.body.contains(" replay ") {
            summary = Some(String::from_utf8(out.stdout.clone()).unwrap());
        }
        if let (true, Some(shown)) = (inspects, shown) {
            let printed = String::from_utf8(out.stdout).unwrap();
            assert!(
                printed == shown.body,
                "README.md ({}): `{}` prints\n{printed}\nbut the README shows\n{}",
                b.section,
                b.body.trim(),
                shown.body
            );
            compared += 1;
            i += 1;
        }
        i += 1;
    }
    assert!(compared >= 3, "only {compared} sample outputs compared");

    // Tutorial 1's summary: every line it shows is printed, and every line printed
    // before the rule coverage is shown.
    let summary = summary.expect("the quick start's replay command");
    let shown = blocks
        .iter()
        .find(|b| b.section.starts_with("1. ") && b.info == "text")
        .expect("tutorial 1's summary block");
    let printed: Vec<String> = summary.lines().map(steady).collect();
    let listed: Vec<String> = shown
        .body
        .lines()
        .filter(|l| !is_elision(l))
        .map(steady)
        .collect();
    for l in &listed {
        assert!(
            printed.contains(l),
            "README.md tutorial 1 shows a line the run does not print:\n{l}\nThe run prints:\n{summary}"
        );
    }
    for l in printed
        .iter()
        .take_while(|l| !l.starts_with("Rule coverage"))
    {
        assert!(
            listed.contains(l),
            "the run prints a line README.md tutorial 1 does not show:\n{l}\nThe run prints:\n{summary}"
        );
    }
}
