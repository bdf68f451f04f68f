//! Nothing lost, and a command line that speaks plainly: every input is checked before
//! any output is created or truncated; an output is never an input or another output;
//! a signal stops a replay that waits on an idle pipe; flags that need another say so;
//! `--rules-at` takes the times people write; the conveniences (completions, man page,
//! `--version` everywhere, `--json=FILE`) work.

use crate::determinism::root;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const RULES: &str = "rulesets/securecart.toml";
const DEMO: &str = "pcaps/securecart.pcap";

fn vpcgate() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vpcgate"));
    c.current_dir(root());
    c
}

fn run(c: &mut Command) -> Output {
    c.stdin(Stdio::null()).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn replay() -> Command {
    let mut c = vpcgate();
    c.args(["replay", "--rules", RULES]);
    c
}

// ---------------------------------------------------------------------------------
// Inputs first

#[test]
fn a_capture_that_cannot_be_read_leaves_every_output_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let keep = dir.path().join("keep.log");
    let new = dir.path().join("new.jsonl");
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "not a capture, but long enough for a header").unwrap();
    let missing = dir.path().join("securecart.pcpa");
    for (bad, says) in [
        (&missing, "No such file"),
        (&dir.path().to_path_buf(), "directory"),
        (&notes, "offset 0"),
    ] {
        std::fs::write(&keep, "precious\n").unwrap();
        // The good capture comes first: nothing of it may be written either.
        let out = run(replay()
            .arg(DEMO)
            .arg(bad)
            .arg("--flow-log")
            .arg(&keep)
            .arg("--verdicts")
            .arg(&new));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains(&bad.display().to_string()) && err.contains(says),
            "{err}"
        );
        assert!(err.contains("no output was created or changed"), "{err}");
        assert_eq!(std::fs::read_to_string(&keep).unwrap(), "precious\n");
        assert!(!new.exists(), "{} was created", new.display());
    }
}

#[test]
fn a_ruleset_or_flag_that_fails_leaves_every_output_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let keep = dir.path().join("keep.log");
    std::fs::write(&keep, "precious\n").unwrap();
    for extra in [
        vec!["--rules-at", "1732435500=rulesets/no-such.toml"],
        vec!["--rules-at", "soon=rulesets/securecart.toml"],
        vec!["-", "-"],
    ] {
        let out = run(replay().arg(DEMO).args(&extra).arg("--flow-log").arg(&keep));
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {}", stderr(&out));
        assert_eq!(std::fs::read_to_string(&keep).unwrap(), "precious\n");
    }
}

// ---------------------------------------------------------------------------------
// An output is never an input

#[test]
fn an_output_that_is_an_input_or_another_output_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let demo = std::fs::read(root().join(DEMO)).unwrap();
    let rules = std::fs::read(root().join(RULES)).unwrap();
    std::fs::write(p("in.pcap"), &demo).unwrap();
    std::fs::write(p("r.toml"), &rules).unwrap();
    std::fs::write(p("later.toml"), &rules).unwrap();
    std::fs::create_dir(p("vpc")).unwrap();
    std::fs::write(p("vpc/r.toml"), &rules).unwrap();
    std::fs::hard_link(p("in.pcap"), p("hard.pcap")).unwrap();
    std::fs::write(p("out.log"), "old\n").unwrap();
    std::os::unix::fs::symlink(p("out.log"), p("alias.log")).unwrap();
    std::os::unix::fs::symlink(p("vpc/r.toml"), p("alias.toml")).unwrap();
    std::fs::create_dir(p("sub")).unwrap();

    let s = |x: &Path| x.display().to_string();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--accepted".into(), s(&p("in.pcap"))],
            "that is the capture",
        ),
        (
            vec!["--rejected".into(), s(&p("hard.pcap"))],
            "that is the capture",
        ),
        (
            vec!["--verdicts".into(), s(&p("r.toml"))],
            "that is the ruleset",
        ),
        (
            vec![format!("--json={}", s(&p("r.toml")))],
            "that is the ruleset",
        ),
        (
            vec![
                "--rules-at".into(),
                format!("+60={}", s(&p("later.toml"))),
                "--flow-log".into(),
                s(&p("later.toml")),
            ],
            "that is the ruleset",
        ),
        (
            vec![
                "--rules".into(),
                s(&p("vpc")),
                "--verdicts".into(),
                s(&p("vpc/r.toml")),
            ],
            "ruleset directory",
        ),
        (
            vec![
                "--rules".into(),
                s(&p("vpc")),
                "--flow-log".into(),
                s(&p("alias.toml")),
            ],
            "that is the ruleset",
        ),
        (
            vec![
                "--rules".into(),
                s(&p("vpc")),
                format!("--json={}", s(&p("vpc/summary.json"))),
            ],
            "ruleset directory",
        ),
        (
            vec![
                "--verdicts".into(),
                s(&p("out.log")),
                "--flow-log".into(),
                s(&p("alias.log")),
            ],
            "are the same file",
        ),
        (
            vec![
                "--verdicts".into(),
                s(&p("new.jsonl")),
                "--accepted".into(),
                s(&p("sub/../new.jsonl")),
            ],
            "are the same file",
        ),
    ];
    for (args, says) in cases {
        let mut c = vpcgate();
        c.arg("replay");
        if !args.contains(&"--rules".to_string()) {
            c.arg("--rules").arg(p("r.toml"));
        }
        let out = run(c.arg(p("in.pcap")).args(&args));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    // Standard input redirected from the capture.
    let out = vpcgate()
        .args(["replay", "--rules"])
        .arg(p("r.toml"))
        .arg("-")
        .arg("--accepted")
        .arg(p("in.pcap"))
        .stdin(std::fs::File::open(p("in.pcap")).unwrap())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("standard input"), "{}", stderr(&out));

    assert!(std::fs::read(p("in.pcap")).unwrap() == demo, "the capture");
    for r in ["r.toml", "later.toml", "vpc/r.toml"] {
        assert!(std::fs::read(p(r)).unwrap() == rules, "{r}");
    }
    assert_eq!(std::fs::read_to_string(p("out.log")).unwrap(), "old\n");
    assert!(!p("new.jsonl").exists());
    assert!(!p("vpc/summary.json").exists());
    // vpcgate synth: its capture is not its ruleset either.
    let out = run(vpcgate()
        .args(["synth", "--packets", "10", "--rules"])
        .arg(p("r.toml"))
        .arg("-o")
        .arg(p("r.toml")));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(std::fs::read(p("r.toml")).unwrap() == rules, "synth -o");
    // Two devices are fine: /dev/null takes any number of outputs.
    let out =
        run(replay()
            .arg(DEMO)
            .args(["--verdicts", "/dev/null", "--flow-log", "/dev/null", "-q"]));
    assert!(out.status.success(), "{}", stderr(&out));
}

// ---------------------------------------------------------------------------------
// Signals while waiting for input

/// The demo capture's file header and first `n` records.
fn demo_prefix(n: usize) -> Vec<u8> {
    let whole = std::fs::read(root().join(DEMO)).unwrap();
    let mut off = 24usize;
    for _ in 0..n {
        let caplen = u32::from_le_bytes(whole[off + 8..off + 12].try_into().unwrap()) as usize;
        off += 16 + caplen;
    }
    whole[..off].to_vec()
}

/// Waits until process `pid` catches `signal` (its handlers are installed: Linux
/// `/proc/PID/status`, `SigCgt`), so that the signal is not the default one that kills.
fn wait_for_handler(pid: u32, signal: u32, child: &mut std::process::Child) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let caught = status
            .lines()
            .find_map(|l| l.strip_prefix("SigCgt:"))
            .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
            .is_some_and(|m| m & (1 << (signal - 1)) != 0);
        if caught {
            return;
        }
        if let Some(s) = child.try_wait().unwrap() {
            panic!("the replay ended before the signal: {s}");
        }
        assert!(
            Instant::now() < deadline,
            "the replay installed no handler for signal {signal}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for the child to exit after `signal` (a generous bound: no timing is
/// asserted, only that it exits).
fn wait_exit(child: &mut std::process::Child, signal: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the replay did not stop after kill {signal}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts a replay of standard input, writes `records` records of the demo into its
/// pipe and keeps the pipe open (no end of input), sends `signal`, and returns the exit
/// status, stderr and the verdict lines written.
fn signal_while_waiting(records: usize, signal: (&str, u32)) -> (Option<i32>, String, usize) {
    let dir = tempfile::tempdir().unwrap();
    let v = dir.path().join("v.jsonl");
    let mut child = replay()
        .args(["-", "--quiet", "--verdicts"])
        .arg(&v)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    wait_for_handler(child.id(), signal.1, &mut child);
    if records > 0 {
        stdin.write_all(&demo_prefix(records)).unwrap();
        stdin.flush().unwrap();
        // Wait until the replay has read them all out of the pipe (FIONREAD: the
        // bytes in the pipe), so that they were read before the signal.
        let deadline = Instant::now() + Duration::from_secs(120);
        while rustix::io::ioctl_fionread(&stdin).unwrap() > 0 {
            assert!(Instant::now() < deadline, "the replay read nothing");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let kill = Command::new("kill")
        .args([signal.0, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = wait_exit(&mut child, signal.0);
    drop(stdin);
    let mut err = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let text = std::fs::read_to_string(&v).unwrap();
    assert!(text.is_empty() || text.ends_with('\n'), "{text}");
    (status.code(), err, text.lines().count())
}

#[test]
fn sigterm_stops_a_replay_waiting_on_an_idle_pipe() {
    let (code, err, lines) = signal_while_waiting(0, ("-TERM", 15));
    assert_eq!(code, Some(130), "{err}");
    assert!(
        err.contains("interrupted by SIGTERM after 0 packet(s)"),
        "{err}"
    );
    assert_eq!(lines, 0);
}

#[test]
fn sigint_after_some_packets_writes_them_all() {
    let (code, err, lines) = signal_while_waiting(3, ("-INT", 2));
    assert_eq!(code, Some(130), "{err}");
    assert!(
        err.contains("interrupted by SIGINT after 3 packet(s)"),
        "{err}"
    );
    assert!(!err.contains("error:"), "no capture error: {err}");
    assert_eq!(lines, 3, "every packet in the pipe before the signal");
}

// ---------------------------------------------------------------------------------
// Flags that need another

#[test]
fn flow_log_flags_without_a_flow_log_are_usage_errors() {
    for args in [
        &["--log-format", "${version} ${action}"][..],
        &["--aggregation-interval", "60"],
        &["--no-nodata"],
    ] {
        let out = run(replay().arg(DEMO).args(args));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(args[0]) && err.contains("add --flow-log"),
            "{args:?}: {err}"
        );
        let out = run(replay()
            .arg(DEMO)
            .args(args)
            .args(["--flow-log", "/dev/null", "-q"]));
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
}

// ---------------------------------------------------------------------------------
// --rules-at times

#[test]
fn rules_at_takes_unix_seconds_rfc3339_and_offsets_alike() {
    let dir = tempfile::tempdir().unwrap();
    let fixed = dir.path().join("fixed.toml");
    let text = std::fs::read_to_string(root().join(RULES)).unwrap();
    std::fs::write(
        &fixed,
        text.replace("ports = \"32768-61000\"", "ports = \"1024-65535\""),
    )
    .unwrap();
    let verdicts = |times: &[String]| -> String {
        let mut c = replay();
        c.arg(DEMO).args(["--verdicts", "-", "-q"]);
        for t in times {
            c.arg("--rules-at").arg(t);
        }
        let out = run(&mut c);
        assert!(out.status.success(), "{times:?}: {}", stderr(&out));
        stdout(&out)
    };
    let at = |t: &str| format!("{t}={}", fixed.display());
    // The demo's first packet is at 1732435200 (2024-11-24T08:00:00Z).
    let reference = verdicts(&[at("1732435500")]);
    assert_ne!(reference, verdicts(&[]), "the change shows in the verdicts");
    for t in [
        "2024-11-24T08:05:00Z",
        "2024-11-24T09:05:00+01:00",
        "2024-11-24T03:05:00.000-05:00",
        "+300",
        "+300s",
        "+5m",
    ] {
        assert!(verdicts(&[at(t)]) == reference, "--rules-at {t}");
    }
    // Offsets and times together take effect in the order of their times: the
    // original rules at 08:03:20, the fixed ones at +300 s (08:05).
    let original = format!("1732435400={}", root().join(RULES).display());
    assert!(verdicts(&[at("+300"), original.clone()]) == reference);
    assert!(verdicts(&[original, at("+300")]) == reference);

    let out = run(replay()
        .arg(DEMO)
        .args(["--rules-at"])
        .arg(at("2024-11-24 08:05")));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("RFC 3339") && err.contains("+90s"), "{err}");
}

// ---------------------------------------------------------------------------------
// Conveniences

#[test]
fn every_subcommand_prints_the_version() {
    for sub in [
        &[][..],
        &["replay"],
        &["synth"],
        &["manual"],
        &["man"],
        &["completions"],
    ] {
        let out = run(vpcgate().args(sub).arg("--version"));
        assert!(out.status.success(), "{sub:?}: {}", stderr(&out));
        assert!(
            stdout(&out).contains(env!("CARGO_PKG_VERSION")),
            "{sub:?}: {}",
            stdout(&out)
        );
    }
}

#[test]
fn completions_and_man_pages() {
    let out = run(vpcgate().args(["completions", "bash"]));
    assert!(out.status.success());
    assert!(stdout(&out).contains("_vpcgate()"), "{}", stdout(&out));
    let out = run(vpcgate().args(["completions", "zsh"]));
    assert!(stdout(&out).contains("#compdef vpcgate"));
    let out = run(vpcgate().args(["completions", "tcsh"]));
    assert_eq!(out.status.code(), Some(2));

    let out = run(vpcgate().arg("man"));
    assert!(out.status.success());
    let page = stdout(&out);
    assert!(page.contains(".TH vpcgate 1"), "{page}");
    assert!(page.contains("replay"), "{page}");
    let out = run(vpcgate().args(["man", "replay"]));
    let page = stdout(&out);
    assert!(page.contains(".TH vpcgate-replay 1"), "{page}");
    assert!(page.contains("rules\\-at"), "{page}");
    assert_eq!(run(vpcgate().args(["man", "nope"])).status.code(), Some(2));
}

#[test]
fn json_summary_to_a_file_or_standard_output() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("summary.json");
    let out = run(replay()
        .arg(DEMO)
        .arg(format!("--json={}", json.display()))
        .arg("-q"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout.is_empty(), "--quiet: nothing on stdout");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(v["packets"], 721);
    // Without --quiet the text summary still prints.
    let out = run(replay().arg(DEMO).arg(format!("--json={}", json.display())));
    assert!(!out.stdout.is_empty() && out.stdout[0] != b'{');
    // `--json FILE` (no `=`) is `--json` and a capture named FILE: the message says
    // how to name the file.
    let out = run(replay()
        .arg(DEMO)
        .arg("--json")
        .arg(dir.path().join("s.json")));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("write --json=FILE"),
        "{}",
        stderr(&out)
    );
    // `--json` alone, before a capture, is still the flag alone: JSON on stdout.
    let out = run(replay().arg("--json").arg(DEMO));
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["packets"], 721);
}

/// The manual is the README's: help and manual never send a reader to a document
/// that is not in the repository.
#[test]
fn help_and_manual_point_only_to_what_the_repository_has() {
    let mut texts = vec![("manual".to_string(), stdout(&run(vpcgate().arg("manual"))))];
    for sub in ["", "replay", "synth", "manual", "completions", "man"] {
        let mut c = vpcgate();
        if !sub.is_empty() {
            c.arg(sub);
        }
        texts.push((format!("{sub} --help"), stdout(&run(c.arg("--help")))));
    }
    texts.push((
        "README.md".into(),
        std::fs::read_to_string(root().join("README.md")).unwrap(),
    ));
    for (what, text) in &texts {
        assert!(!text.is_empty(), "{what}");
        for outside in ["EMULATION.md", "CLI.md", "STYLE.md", "aws-semantics"] {
            assert!(!text.contains(outside), "{what} names {outside}");
        }
    }
    let manual = &texts[0].1;
    // Section numbers (§2.2) of notes kept outside the repository.
    assert!(
        !manual.contains('§'),
        "the manual cites notes outside the repository"
    );
    assert!(manual.contains("## The ruleset format"), "{manual}");
    assert!(!manual.contains('\x1b'), "plain text into a pipe");
}

#[test]
fn synth_shows_no_progress_bar_into_a_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let out: PathBuf = dir.path().join("s.pcap");
    let o = run(vpcgate()
        .args(["synth", "--packets", "2000", "--flows", "100", "-o"])
        .arg(&out));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        !stderr(&o).contains('\r') && !stderr(&o).contains("[="),
        "{}",
        stderr(&o)
    );
    assert!(std::fs::metadata(&out).unwrap().len() > 2000 * 54);
}

/// A FIFO that no writer has opened yet: `open(2)` alone would wait for one, deaf to
/// signals.
#[test]
fn sigterm_stops_a_replay_waiting_for_a_fifo_writer() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("capture.fifo");
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
    )
    .unwrap();
    let mut child = replay()
        .arg(&fifo)
        .arg("--quiet")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_handler(child.id(), 15, &mut child);
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = wait_exit(&mut child, "-TERM");
    let mut err = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(
        err.contains("interrupted by SIGTERM after 0 packet(s)"),
        "{err}"
    );
}

/// Runs `command` (a shell command line; `$VPCGATE` is the binary) on a pseudo-terminal
/// with script(1), and returns what the terminal showed.
fn on_a_terminal(command: &str, dir: &Path) -> Option<String> {
    if !crate::support::require(
        crate::support::has_program("script"),
        "script(1) (util-linux) is not installed: this test needs a terminal",
    ) {
        return None;
    }
    let out = Command::new("script")
        .args(["-qec", command, "/dev/null"])
        .current_dir(dir)
        .env("VPCGATE", env!("CARGO_BIN_EXE_vpcgate"))
        .env("PAGER", "cat")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{command}: {}", stderr(&out));
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn on_a_terminal_synth_shows_progress_and_the_manual_is_rendered() {
    let dir = tempfile::tempdir().unwrap();
    let Some(shown) = on_a_terminal("\"$VPCGATE\" synth -o s.pcap --packets 2000", dir.path())
    else {
        return;
    };
    assert!(shown.contains("synth ["), "no progress bar: {shown:?}");
    let shown = on_a_terminal(
        "\"$VPCGATE\" synth -o s.pcap --packets 2000 --no-progress",
        dir.path(),
    )
    .unwrap();
    assert!(!shown.contains("synth ["), "{shown:?}");
    // The manual through $PAGER (cat here), headings in bold.
    let shown = on_a_terminal("\"$VPCGATE\" manual", dir.path()).unwrap();
    assert!(
        shown.contains("\x1b[1mMANUAL OF EMULATION DECISIONS\x1b[0m"),
        "{}",
        &shown[..shown.len().min(300)]
    );
    assert!(shown.contains("THE RULESET FORMAT"));
}
