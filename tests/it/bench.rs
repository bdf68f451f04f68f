//! `vpcgate bench`: the JSON record has the documented shape and sane values (never
//! timings checked against a bound: only that they were measured), its runs agree with
//! a replay of the same traffic written by `vpcgate synth`, and `--floor` and
//! `--shards` count what the capture holds.

use crate::determinism::root;
use assert_cmd::Command;
use serde_json::Value;

const PACKETS: u64 = 20_000;
const FLOWS: u64 = 2_000;

fn vpcgate() -> Command {
    Command::cargo_bin("vpcgate").unwrap()
}

fn bench_json(extra: &[&str]) -> Value {
    let out = vpcgate()
        .current_dir(root())
        .args(["bench", "--json", "--runs", "1", "--workers-max", "2"])
        .args(["--packets", &PACKETS.to_string()])
        .args(["--flows", &FLOWS.to_string()])
        .args(extra)
        .assert()
        .success()
        .get_output()
        .clone();
    serde_json::from_slice(&out.stdout).expect("bench --json prints JSON")
}

fn positive(v: &Value, what: &str) -> f64 {
    let x = v
        .as_f64()
        .unwrap_or_else(|| panic!("{what} is not a number: {v}"));
    assert!(x.is_finite() && x > 0.0, "{what} = {x}");
    x
}

/// A `vpcgate synth` capture of the same flags bench generates from, and its replay
/// summary with a flow log.
fn synth_and_replay(dir: &std::path::Path) -> (std::path::PathBuf, Value) {
    let pcap = dir.join("s.pcap");
    vpcgate()
        .current_dir(root())
        .args(["synth", "--no-progress", "-o"])
        .arg(&pcap)
        .args(["--packets", &PACKETS.to_string()])
        .args(["--flows", &FLOWS.to_string()])
        .assert()
        .success();
    let out = vpcgate()
        .current_dir(root())
        .args(["replay", "--rules", "rulesets/securecart.toml", "--json"])
        .arg(&pcap)
        .arg("--flow-log")
        .arg(dir.join("f.log"))
        .assert()
        .get_output()
        .clone();
    (pcap, serde_json::from_slice(&out.stdout).unwrap())
}

#[test]
fn bench_json_has_every_stage_and_worker_count_and_agrees_with_a_replay() {
    let v = bench_json(&[]);
    // ns per packet of every stage the help names.
    for stage in [
        "read",
        "parse",
        "engine",
        "flowlog_aggregation",
        "flowlog_format",
        "worker",
    ] {
        positive(&v["ns_per_packet"][stage], stage);
    }
    // Packets per second for 1 and 2 workers, and nothing else.
    let pps = v["packets_per_second"].as_object().unwrap();
    assert_eq!(pps.keys().collect::<Vec<_>>(), ["1", "2"]);
    for (k, x) in pps {
        positive(x, &format!("packets_per_second.{k}"));
    }
    let pipeline = v["pipeline"].as_array().unwrap();
    assert_eq!(pipeline.len(), 2);
    for (i, p) in pipeline.iter().enumerate() {
        assert_eq!(p["workers"], i + 1);
        assert_eq!(p["seconds"].as_array().unwrap().len(), 1, "--runs 1");
        // ns/packet and packets/s describe the same median.
        let ns = positive(&p["ns_per_packet"], "ns_per_packet");
        let rate = positive(&p["packets_per_second"], "packets_per_second");
        assert!((ns * rate / 1e9 - 1.0).abs() < 1e-6, "{ns} ns vs {rate}/s");
        // The busiest of N workers gets at least 1/N of the packets.
        let share = p["busiest_worker_share"].as_f64().unwrap();
        assert!(share >= 1.0 / (i + 1) as f64 - 1e-12 && share <= 1.0);
        // CPU time per packet: measured where /proc is (in 10 ms steps: may be 0).
        if cfg!(target_os = "linux") {
            let cpu = p["cpu_ns_per_packet"].as_f64().expect("cpu_ns_per_packet");
            assert!(cpu.is_finite() && cpu >= 0.0, "{cpu}");
        }
    }
    assert_eq!(pipeline[0]["busiest_worker_share"], 1.0);
    assert_eq!(pipeline[0]["speedup"], 1.0);

    // The machine.
    let m = &v["machine"];
    assert!(m["cores"].as_u64().unwrap() >= 1);
    assert!(!m["cpu"].as_str().unwrap().is_empty());
    assert!(!m["kernel"].as_str().unwrap().is_empty());
    assert_eq!(m["vpcgate_version"], env!("CARGO_PKG_VERSION"));
    assert!(["debug", "release"].contains(&m["build"].as_str().unwrap()));
    if cfg!(target_os = "linux") {
        positive(&v["peak_rss_bytes"], "peak_rss_bytes");
    }

    // The input is what was asked for, and held in memory.
    let input = &v["input"];
    assert_eq!(input["packets"], PACKETS);
    assert_eq!(input["flows_open"], FLOWS);
    assert_eq!(input["rules"], "SecureCart (built in)");
    positive(&input["capture_bytes"], "capture_bytes");

    // Every run agreed, and with a replay of the same traffic from a file: bench
    // generates what `vpcgate synth` writes for the same flags, for the SecureCart VPC.
    assert_eq!(v["identical"], true);
    let dir = tempfile::tempdir().unwrap();
    let (_, replay) = synth_and_replay(dir.path());
    let o = &v["outcome"];
    assert_eq!(o["packets"], PACKETS);
    for key in ["accepted", "rejected", "not_evaluated", "flow_records"] {
        assert_eq!(o[key], replay[key], "{key}: bench vs replay");
    }
    assert!(o["rejected"].as_u64().unwrap() > 0, "the mix holds rejects");
    assert_eq!(input["ip_packets"], PACKETS, "every synthetic frame is IP");
}

#[test]
fn bench_takes_a_ruleset_and_writes_json_to_a_file_beside_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("b.json");
    let out = vpcgate()
        .current_dir(root())
        .args(["bench", "-q", "--runs", "1", "--workers-max", "1"])
        .args(["--packets", "5000", "--flows", "500"])
        .args(["--rules", "rulesets/securecart.toml"])
        .arg(format!("--json={}", json.display()))
        .assert()
        .success()
        .get_output()
        .clone();
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(out.stderr.is_empty(), "-q prints no progress");
    for needle in [
        "| stage, one core",
        "| engine (NACL, SG, conntrack)",
        "|  1 worker ",
        "rules: rulesets/securecart.toml",
        "cores",
        "peak memory",
        "(the same for every worker count)",
    ] {
        assert!(table.contains(needle), "{needle:?} missing from:\n{table}");
    }
    let v: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(v["input"]["rules"], "rulesets/securecart.toml");
    assert_eq!(
        v["packets_per_second"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["1"]
    );
}

#[test]
fn floor_and_shards_count_the_capture() {
    let dir = tempfile::tempdir().unwrap();
    let (pcap, _) = synth_and_replay(dir.path());
    let out = vpcgate()
        .arg("bench")
        .arg("--floor")
        .arg(&pcap)
        .assert()
        .success()
        .get_output()
        .clone();
    let line = String::from_utf8(out.stdout).unwrap();
    let size = std::fs::metadata(&pcap).unwrap().len();
    assert!(
        line.starts_with(&format!(
            "{PACKETS} packets ({PACKETS} IP), {size} bytes in "
        )),
        "{line}"
    );

    let out = vpcgate()
        .current_dir(root())
        .arg("bench")
        .arg("--shards")
        .arg(&pcap)
        .assert()
        .success()
        .get_output()
        .clone();
    let text = String::from_utf8(out.stdout).unwrap();
    for w in [2, 4, 8, 16] {
        let line = text
            .lines()
            .find(|l| {
                l.trim_start()
                    .starts_with(&format!("{w} workers: the busiest gets "))
            })
            .unwrap_or_else(|| panic!("no line for {w} workers in:\n{text}"));
        let pct: f64 = line
            .split("gets ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|p| p.parse().ok())
            .unwrap();
        // Shards are whole flows: the busiest worker never gets less than an even share.
        assert!(pct >= 100.0 / w as f64 - 0.05 && pct <= 100.0, "{line}");
    }
}

#[test]
fn bench_usage_errors_are_plain() {
    let out = vpcgate()
        .args(["bench", "--packets", "0"])
        .assert()
        .code(2)
        .get_output()
        .clone();
    assert!(String::from_utf8_lossy(&out.stderr).contains("--packets 0: give at least 1"));

    let out = vpcgate()
        .args(["bench", "--floor", "no-such-capture.pcap"])
        .assert()
        .code(1)
        .get_output()
        .clone();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no-such-capture.pcap: cannot open"), "{err}");

    // A pcapng file: the floor says so rather than misreading it.
    let dir = tempfile::tempdir().unwrap();
    let ng = dir.path().join("x.pcapng");
    std::fs::write(
        &ng,
        [
            0x0a, 0x0d, 0x0d, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0, 0, 0,
        ],
    )
    .unwrap();
    let out = vpcgate()
        .arg("bench")
        .arg("--floor")
        .arg(&ng)
        .assert()
        .code(1)
        .get_output()
        .clone();
    assert!(String::from_utf8_lossy(&out.stderr).contains("pcapng"));
}
