//! Faults ("Hostile input", part 4): a signal in the middle of a replay, a full disk,
//! an output path that cannot be created. Whatever happens, every output ends at a
//! whole record, and the message says what happened and what the files hold.
//!
//! These tests drive the real binary. The full-disk tests mount small tmpfs file
//! systems and so need root (as the CI and the development VM have): without it they
//! say so and check nothing, except under `CI=true`, where they fail, loudly
//! ([`crate::support::require`]).

use crate::determinism::root;
use crate::support::{is_root, require};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vpcgate::capture::{CaptureReader, PcapWriter};
use vpcgate::wire::packet::Timestamp;

const RULES: &str = "rulesets/securecart.toml";
const DEMO: &str = "pcaps/securecart.pcap";
/// Each repetition of the demo capture is shifted this far in time (the demo spans
/// 700 s), so flow-log windows keep closing.
const SHIFT_SECS: u64 = 900;

fn vpcgate() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vpcgate"));
    c.current_dir(root());
    c
}

struct Pkt {
    ts: Timestamp,
    link_type: u32,
    data: Vec<u8>,
    orig_len: u32,
}

/// The packets of the demo capture.
fn demo() -> Vec<Pkt> {
    let mut r = CaptureReader::open(&root().join(DEMO)).unwrap();
    let mut v = Vec::new();
    while let Some(p) = r.next_packet().unwrap() {
        v.push(Pkt {
            ts: p.ts,
            link_type: p.link_type,
            data: p.data.to_vec(),
            orig_len: p.orig_len,
        });
    }
    v
}

/// Writes repetition `rep` of the demo (shifted in time).
fn write_rep(w: &mut PcapWriter, pkts: &[Pkt], rep: u64) -> std::io::Result<()> {
    for p in pkts {
        let ts = Timestamp(p.ts.0 + rep * SHIFT_SECS * 1_000_000_000);
        w.write_packet(ts, p.link_type, &p.data, p.orig_len)?;
    }
    Ok(())
}

/// A capture of `reps` repetitions of the demo.
fn repeated_capture(path: &Path, reps: u64) {
    let pkts = demo();
    let mut w = PcapWriter::create(path).unwrap();
    for rep in 0..reps {
        write_rep(&mut w, &pkts, rep).unwrap();
    }
    w.finish().unwrap();
}

/// Checks that a verdicts file holds whole lines of JSON, numbered 1, 2, 3…; returns
/// the (ACCEPT, REJECT, lines) counts.
fn check_verdicts(path: &Path) -> (u64, u64, u64) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "{} ends inside a record: {:?}",
        path.display(),
        &text[text.len().saturating_sub(80)..]
    );
    let (mut acc, mut rej, mut n) = (0, 0, 0);
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{}: line {}: {e}: {line}", path.display(), n + 1));
        n += 1;
        assert_eq!(v["packet"].as_u64(), Some(n), "{line}");
        match v["action"].as_str() {
            Some("ACCEPT") => acc += 1,
            Some("REJECT") => rej += 1,
            _ => {}
        }
    }
    (acc, rej, n)
}

/// Checks that a flow log is a header line and records with as many fields; returns
/// the records.
fn check_flow_log(path: &Path) -> u64 {
    let text = std::fs::read_to_string(path).unwrap();
    if text.is_empty() {
        return 0;
    }
    assert!(
        text.ends_with('\n'),
        "{} ends inside a record",
        path.display()
    );
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    assert!(header.starts_with("version account-id "), "{header}");
    let fields = header.split(' ').count();
    let mut n = 0;
    for line in lines {
        n += 1;
        assert_eq!(line.split(' ').count(), fields, "record {n}: {line}");
    }
    n
}

/// Reads a pcap to its end (an error is a torn record); returns its packets.
fn check_pcap(path: &Path) -> u64 {
    if std::fs::metadata(path).unwrap().len() == 0 {
        return 0;
    }
    let mut r = CaptureReader::open(path).unwrap();
    let mut n = 0;
    while r
        .next_packet()
        .unwrap_or_else(|e| panic!("{} has a torn record: {e}", path.display()))
        .is_some()
    {
        n += 1;
    }
    n
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

// ---------------------------------------------------------------------------------
// Signals

/// Streams the demo, repeated and shifted in time, into a replay reading standard
/// input, waits until every output has been written to, sends `signal` with kill(1),
/// and checks what the files hold.
fn interrupt_mid_replay(signal: &str, name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let v = dir.path().join("v.jsonl");
    let f = dir.path().join("f.log");
    let a = dir.path().join("a.pcap");
    let r = dir.path().join("r.pcap");
    let mut child = vpcgate()
        .args(["replay", "--rules", RULES, "-", "--workers", "2"])
        .arg("--verdicts")
        .arg(&v)
        .arg("--flow-log")
        .arg(&f)
        .arg("--accepted")
        .arg(&a)
        .arg("--rejected")
        .arg(&r)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The feeder writes until the replay stops reading (the pipe breaks), so the
    // replay is always busy when the signal comes.
    let stdin = child.stdin.take().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let feeder = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let pkts = demo();
            let mut w = PcapWriter::to_writer(Box::new(stdin));
            let mut rep = 0;
            while !stop.load(Ordering::Relaxed) {
                if write_rep(&mut w, &pkts, rep).is_err() {
                    break;
                }
                rep += 1;
            }
            rep
        })
    };
    // Collect the output as it comes (a full pipe would stall the replay).
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out_pipe.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s);
        s
    });

    let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let deadline = Instant::now() + Duration::from_secs(120);
    let header_len = size(&f);
    while size(&v) == 0 || size(&f) <= header_len.max(200) || size(&a) == 0 {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the replay ended before the signal: {status}; {}",
                err_reader.join().unwrap()
            );
        }
        assert!(
            Instant::now() < deadline,
            "the outputs were not written to within 120 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let kill = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the replay did not stop within 120 s of {name}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    stop.store(true, Ordering::Relaxed);
    let reps = feeder.join().unwrap();
    let stdout = out_reader.join().unwrap();
    let stderr = err_reader.join().unwrap();

    assert_eq!(status.code(), Some(130), "{stderr}");
    // "vpcgate: interrupted by SIGINT after N packet(s); every record up to then was
    // written, whole, to …"
    let prefix = format!("vpcgate: interrupted by {name} after ");
    let line = stderr
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no interrupt message: {stderr}"));
    assert!(
        line.contains("every record up to then was written, whole, to")
            && line.contains(&v.display().to_string())
            && line.contains(&f.display().to_string()),
        "{line}"
    );
    let packets: u64 = line[prefix.len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(stdout.contains("interrupted"), "{stdout}");
    // It stopped in the middle: more than the first buffers, less than was fed.
    assert!(packets > 5 * 721, "{packets}");
    assert!(
        packets < (reps + 1) * 721,
        "{packets} of {reps} repetitions"
    );

    // Every packet read has its verdict, and every file ends at a whole record.
    let (acc, rej, lines) = check_verdicts(&v);
    assert_eq!(lines, packets);
    assert!(check_flow_log(&f) > 0);
    assert_eq!(check_pcap(&a), acc);
    assert_eq!(check_pcap(&r), rej);
}

#[test]
fn sigint_mid_replay_writes_every_record_whole() {
    interrupt_mid_replay("-INT", "SIGINT");
}

#[test]
fn sigterm_mid_replay_writes_every_record_whole() {
    interrupt_mid_replay("-TERM", "SIGTERM");
}

// ---------------------------------------------------------------------------------
// Full disks

/// A small tmpfs, unmounted (and its directory removed) on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `bytes` (rounded up to pages). `None` (the test is skipped,
    /// or fails under `CI=true`) when it cannot: these tests need root.
    fn mount(bytes: u64) -> Option<Tmpfs> {
        if !require(
            is_root(),
            "this test fills a small tmpfs, and mounting one needs root",
        ) {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir.path())
            .output();
        let why = match out {
            Ok(o) if o.status.success() => return Some(Tmpfs { dir }),
            Ok(o) => format!(
                "this test fills a small tmpfs: `mount -t tmpfs -o size={bytes} tmpfs {}` failed: {}",
                dir.path().display(),
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => format!("this test needs mount(8) to mount a tmpfs: {e}"),
        };
        require(false, &why);
        None
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(self.dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}

/// What a replay left on a full disk, next to the whole output of the same replay.
struct FullDisk {
    whole: Vec<u8>,
    /// A copy of the file on the full disk (the tmpfs is gone).
    partial: PathBuf,
    _dir: tempfile::TempDir,
}

/// Replays `capture` with `flag PATH` into a normal directory and into a tmpfs of
/// `disk` bytes; checks the exit status and message of the second, and that its file
/// is the start of the first.
fn full_disk(capture: &Path, flag: &str, name: &str, disk: u64) -> Option<FullDisk> {
    let fs = Tmpfs::mount(disk)?;
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join(name);
    let out = vpcgate()
        .args(["replay", "--rules", RULES, "--quiet"])
        .arg(capture)
        .arg(flag)
        .arg(&whole)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let whole = std::fs::read(&whole).unwrap();
    assert!(
        whole.len() as u64 > disk,
        "the output ({} bytes) must not fit on the disk ({disk} bytes)",
        whole.len()
    );

    let path = fs.path(name);
    let out = vpcgate()
        .args(["replay", "--rules", RULES, "--quiet"])
        .arg(capture)
        .arg(flag)
        .arg(&path)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let expected = format!(
        "vpcgate: cannot write {}: No space left on device (os error 28); the file holds every complete record up to then",
        path.display()
    );
    assert!(err.contains(&expected), "{err}");
    let bytes = std::fs::read(&path).unwrap();
    assert!(!bytes.is_empty(), "some records fitted");
    assert!(bytes.len() as u64 <= disk);
    assert!(
        whole.starts_with(&bytes),
        "what is on the full disk is the start of the whole output"
    );
    let partial = dir.path().join(format!("partial-{name}"));
    std::fs::write(&partial, &bytes).unwrap();
    Some(FullDisk {
        whole,
        partial,
        _dir: dir,
    })
}

#[test]
fn full_disk_verdicts_end_at_a_whole_line() {
    let Some(d) = full_disk(&root().join(DEMO), "--verdicts", "v.jsonl", 48 * 1024) else {
        return;
    };
    let (_, _, lines) = check_verdicts(&d.partial);
    let all = d.whole.iter().filter(|&&b| b == b'\n').count() as u64;
    assert!(lines > 0 && lines < all, "{lines} of {all}");
}

#[test]
fn full_disk_flow_log_ends_at_a_whole_line() {
    let Some(d) = full_disk(&root().join(DEMO), "--flow-log", "f.log", 16 * 1024) else {
        return;
    };
    assert!(check_flow_log(&d.partial) > 0);
}

#[test]
fn full_disk_pcap_ends_at_a_whole_record() {
    let Some(d) = full_disk(&root().join(DEMO), "--accepted", "a.pcap", 128 * 1024) else {
        return;
    };
    let n = check_pcap(&d.partial);
    assert!(n > 0 && n < 671, "{n}");
}

/// A gzip flow log is a series of gzip members; a full disk leaves the members that
/// fitted, a valid gzip file of whole lines.
#[test]
fn full_disk_gzip_flow_log_ends_at_a_whole_member() {
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("long.pcap");
    // About 2.8 MiB of flow-log text: three members.
    repeated_capture(&capture, 120);
    // The members of the whole output, to size the disk between the first two.
    let reference = dir.path().join("f.log.gz");
    let out = vpcgate()
        .args(["replay", "--rules", RULES, "--quiet"])
        .arg(&capture)
        .arg("--flow-log")
        .arg(&reference)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let raw = std::fs::read(&reference).unwrap();
    let mut members = Vec::new();
    let mut rest = &raw[..];
    while !rest.is_empty() {
        let mut d = flate2::bufread::GzDecoder::new(rest);
        std::io::copy(&mut d, &mut std::io::sink()).unwrap();
        rest = d.into_inner();
        members.push(raw.len() - rest.len());
    }
    assert!(members.len() >= 2, "{members:?}");
    let disk = (members[0] + (members[1] - members[0]) / 2) as u64;
    assert!(disk / 4096 > members[0] as u64 / 4096, "{members:?}");

    let Some(fs) = Tmpfs::mount(disk) else {
        return;
    };
    let path = fs.path("f.log.gz");
    let out = vpcgate()
        .args(["replay", "--rules", RULES, "--quiet"])
        .arg(&capture)
        .arg("--flow-log")
        .arg(&path)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    let partial = std::fs::read(&path).unwrap();
    assert_eq!(partial, raw[..members[0]], "exactly the first member");
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(&partial[..])
        .read_to_string(&mut text)
        .unwrap();
    let kept = dir.path().join("partial.log");
    std::fs::write(&kept, &text).unwrap();
    assert!(check_flow_log(&kept) > 0);
}

/// Every output on one disk too small for them: the one that failed is named, and
/// every file, the others too, ends at a whole record.
#[test]
fn full_disk_leaves_every_output_whole() {
    let Some(fs) = Tmpfs::mount(96 * 1024) else {
        return;
    };
    let (v, f, a, r) = (
        fs.path("v.jsonl"),
        fs.path("f.log"),
        fs.path("a.pcap"),
        fs.path("r.pcap"),
    );
    let out = vpcgate()
        .args(["replay", "--rules", RULES, DEMO, "--quiet"])
        .arg("--verdicts")
        .arg(&v)
        .arg("--flow-log")
        .arg(&f)
        .arg("--accepted")
        .arg(&a)
        .arg("--rejected")
        .arg(&r)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("No space left on device (os error 28); the file holds every complete record up to then"),
        "{err}"
    );
    check_verdicts(&v);
    check_flow_log(&f);
    check_pcap(&a);
    check_pcap(&r);
}

#[test]
fn dev_full_is_a_clear_error() {
    let out = vpcgate()
        .args(["replay", "--rules", RULES, DEMO, "--quiet"])
        .args(["--verdicts", "/dev/full"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("vpcgate: cannot write /dev/full: No space left on device (os error 28)"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------
// Output paths that cannot be created

#[test]
fn an_output_in_a_missing_directory_stops_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("missing").join("v.jsonl");
    let out = vpcgate()
        .args(["replay", "--rules", RULES, DEMO])
        .arg("--verdicts")
        .arg(&bad)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "vpcgate: cannot create {}: No such file or directory (os error 2); nothing was replayed",
            bad.display()
        )),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "no summary: nothing was replayed");
}

/// A path under a regular file (root ignores permissions, so this is the unwritable
/// path every user has): nothing is created for the other outputs, and an existing
/// file among them is not truncated.
#[test]
fn an_output_under_a_file_creates_none_of_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"not a directory").unwrap();
    let (f, v, r) = (
        dir.path().join("f.log"),
        dir.path().join("v.jsonl"),
        dir.path().join("r.pcap"),
    );
    std::fs::write(&r, b"an older run").unwrap();
    let bad = file.join("a.pcap");
    let out = vpcgate()
        .args(["replay", "--rules", RULES, DEMO])
        .arg("--flow-log")
        .arg(&f)
        .arg("--verdicts")
        .arg(&v)
        .arg("--rejected")
        .arg(&r)
        .arg("--accepted")
        .arg(&bad)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "vpcgate: cannot create {}: Not a directory (os error 20); nothing was replayed",
            bad.display()
        )),
        "{err}"
    );
    assert!(!f.exists(), "no flow log was created");
    assert!(!v.exists(), "no verdicts file was created");
    assert_eq!(std::fs::read(&r).unwrap(), b"an older run");
}
