//! What a test needs from the machine it runs on: root, the shared capture corpus,
//! tshark. Where one is missing, a test says so and passes without checking anything
//! (a developer's laptop), except under `CI=true`, where every test must run: there a
//! missing requirement fails the test, loudly.
//!
//! The full suite runs as root, with tshark installed and the corpus in
//! `../shared/corpus/tcpdump-tests`: `CI=true cargo test` (what `.ci/run` does).
//!
//! The engine-level suites (`conformance.rs`, `emulation.rs`) share [`lab`] (one engine,
//! one aggregator, synthetic time, ruleset defaults) and [`packets`] (packet builders).

pub mod lab;
pub mod packets;

/// Whether the environment says this is the CI, where nothing may be skipped.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// `true` when `cond` holds. Otherwise, under `CI=true` this panics with `reason`;
/// elsewhere it prints that the test was skipped and why, and returns `false`: the
/// caller returns at once.
#[track_caller]
pub fn require(cond: bool, reason: &str) -> bool {
    if cond {
        return true;
    }
    if in_ci() {
        panic!("{reason} (CI=true: this test must run, so a missing requirement is a failure)");
    }
    let at = std::panic::Location::caller();
    // Straight to the process's stderr: the test harness hides what `eprintln!` prints
    // in a test that passes, and a skip must be seen.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "skipped ({}:{}): {reason}; set CI=true to make this a failure",
        at.file(),
        at.line()
    );
    false
}

/// Whether the tests run as root (mounting a tmpfs needs it).
pub fn is_root() -> bool {
    vpcgate::sys::is_root()
}

/// Whether `program` runs (`program --version` exits 0).
pub fn has_program(program: &str) -> bool {
    std::process::Command::new(program)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The built `vpcgate`, run in the repository root.
pub fn vpcgate() -> assert_cmd::Command {
    let mut c = assert_cmd::Command::cargo_bin("vpcgate").unwrap();
    c.current_dir(crate::determinism::root());
    c
}

/// Runs `vpcgate ARGS` in the repository root, requires exit status `code`, and
/// returns standard output and standard error.
pub fn run(args: &[&str], code: i32) -> (String, String) {
    let out = vpcgate()
        .args(args)
        .assert()
        .code(code)
        .get_output()
        .clone();
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}
