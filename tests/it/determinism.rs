//! The same inputs give the same bytes whatever the number of workers
//! (EMULATION.md §6, "Output is deterministic"; ARCHITECTURE.md "Deterministic output").
//!
//! A capture of many interleaved flows (TCP, UDP, ICMP, IPv6, another protocol,
//! fragments, timestamps that go backwards, several 60-second windows) is replayed
//! with 1, 2 and 4 workers; flow log, verdicts and both pcaps must be identical.

use assert_cmd::Command;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use vpcgate::capture::PcapWriter;
use vpcgate::synth::{Close, Frame, SplitMix64, Timeline};
use vpcgate::wire::packet::{tcp_flags, Timestamp};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Many flows between the SecureCart ENIs and the internet, interleaved in time.
pub fn mixed_capture(path: &Path, seed: u64, sessions: usize) {
    let ip = |s: String| -> IpAddr { s.parse().unwrap() };
    let enis = [
        "10.0.1.10",
        "10.0.2.10",
        "10.0.1.20",
        "10.0.11.10",
        "10.0.11.11",
        "10.0.12.10",
        "10.0.21.10",
        "10.0.22.10",
    ];
    let publics = ["203.0.113.10", "203.0.113.20", "203.0.113.30"];
    let mut rng = SplitMix64(seed);
    let start = 1_732_435_200u64;
    let mut t = Timeline::new(start);
    for i in 0..sessions {
        t.at(start + rng.range(0, 1800));
        t.advance_ms(rng.range(0, 999));
        let inside = ip(enis[rng.range(0, enis.len() as u64 - 1) as usize].to_string());
        let other = ip(enis[rng.range(0, enis.len() as u64 - 1) as usize].to_string());
        let outside = ip(format!("192.0.2.{}", rng.range(1, 254)));
        let public = ip(publics[rng.range(0, 2) as usize].to_string());
        let cport = rng.range(1024, 65535) as u16;
        match i % 9 {
            0 => t.tcp_session(
                outside,
                cport,
                public,
                [443, 80, 22][rng.range(0, 2) as usize],
                &[(300, 1400)],
                Close::Fin,
            ),
            1 => t.tcp_session(
                inside,
                cport,
                other,
                [8080, 5432, 22, 443][rng.range(0, 3) as usize],
                &[(200, 900), (50, 0)],
                Close::Fin,
            ),
            2 => t.tcp_session(inside, cport, outside, 443, &[(500, 3000)], Close::Rst),
            3 => t.udp_exchange(inside, cport, outside, 53, 40, 120),
            4 => t.ping(outside, public, rng.range(1, 65535) as u16, 2, true),
            5 => t.tcp_session(
                ip("2001:db8::5".into()),
                cport,
                ip("2600:1f18:4a3:6d01::10".into()),
                443,
                &[(517, 1460)],
                Close::Open,
            ),
            6 => t.push(Frame::Other {
                src: inside,
                dst: outside,
                protocol: 47,
                payload: 100,
            }),
            7 => t.tcp_syn_attempt(outside, cport, public, rng.range(1, 1023) as u16, 1),
            _ => t.push(Frame::Tcp {
                src: outside,
                sport: cport,
                dst: inside,
                dport: 8080,
                flags: tcp_flags::ACK,
                seq: 1,
                ack: 1,
                payload: 10,
            }),
        }
    }
    t.sort();
    let mut w = PcapWriter::create(path).unwrap();
    t.write_pcap(&mut w).unwrap();
    // A few packets whose timestamps go back in time, at the end.
    let f = Frame::Udp {
        src: ip("10.0.11.10".into()),
        sport: 40000,
        dst: ip("192.0.2.9".into()),
        dport: 123,
        payload: 48,
    }
    .build();
    w.write_packet(
        Timestamp::from_secs_nanos(start + 5, 0),
        1,
        &f,
        f.len() as u32,
    )
    .unwrap();
    w.finish().unwrap();
}

fn replay(dir: &Path, cap: &Path, workers: usize, extra: &[&str]) -> Vec<Vec<u8>> {
    let out = dir.join(format!("w{workers}"));
    std::fs::create_dir_all(&out).unwrap();
    let mut cmd = Command::cargo_bin("vpcgate").unwrap();
    cmd.arg("replay")
        .arg("--rules")
        .arg(root().join("rulesets/securecart.toml"))
        .arg(cap)
        .arg("--flow-log")
        .arg(out.join("flows.log"))
        .arg("--verdicts")
        .arg(out.join("verdicts.jsonl"))
        .arg("--accepted")
        .arg(out.join("acc.pcap"))
        .arg("--rejected")
        .arg(out.join("rej.pcap"))
        .arg("--workers")
        .arg(workers.to_string())
        .args(extra)
        .arg("--quiet");
    cmd.assert().success();
    ["flows.log", "verdicts.jsonl", "acc.pcap", "rej.pcap"]
        .iter()
        .map(|f| std::fs::read(out.join(f)).unwrap())
        .collect()
}

#[test]
fn output_is_identical_for_1_2_and_4_workers() {
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("mixed.pcap");
    mixed_capture(&cap, 7, 1500);
    let one = replay(dir.path(), &cap, 1, &["--aggregation-interval", "60"]);
    // The capture really exercises the engine: records, rejects and accepts.
    let flows = String::from_utf8(one[0].clone()).unwrap();
    assert!(
        flows.lines().count() > 500,
        "too few records: {}",
        flows.lines().count()
    );
    assert!(
        flows.contains(" REJECT OK") && flows.contains(" ACCEPT OK") && flows.contains(" NODATA")
    );
    assert!(one[2].len() > 24 && one[3].len() > 24);
    for w in [2, 4] {
        let other = replay(dir.path(), &cap, w, &["--aggregation-interval", "60"]);
        for (i, name) in ["flow log", "verdicts", "accepted pcap", "rejected pcap"]
            .iter()
            .enumerate()
        {
            assert!(
                one[i] == other[i],
                "{name} differs between 1 and {w} workers"
            );
        }
    }
}

#[test]
fn rule_changes_are_deterministic_too() {
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("mixed.pcap");
    mixed_capture(&cap, 11, 600);
    let at = format!(
        "1732436100={}",
        root().join("rulesets/securecart-aws").display()
    );
    let one = replay(dir.path(), &cap, 1, &["--rules-at", &at]);
    let four = replay(dir.path(), &cap, 4, &["--rules-at", &at]);
    assert!(
        one == four,
        "outputs differ between 1 and 4 workers with --rules-at"
    );
}

/// A capture holding both views of the same connections: the client's SYN to the
/// ENI's public IPv4 (outside the internet gateway) and the ENI's SYN-ACK from its
/// private address (inside). Connection tracking keys both by the private address,
/// and the ENI's security group allows no egress, so every reply passes only as
/// tracked traffic: all must be accepted with any number of workers. (Shards hashed
/// on the packets' own addresses once put a reply on another worker than its
/// connection, which then rejected it.)
#[test]
fn both_views_of_a_public_address_stay_on_one_worker() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("public.toml");
    std::fs::write(
        &rules,
        r#"
        [vpc]
        id = "vpc-0public"
        cidrs = ["10.0.0.0/16"]

        [[subnets]]
        id = "subnet-0a"
        cidr = "10.0.1.0/24"

        [[security_groups]]
        id = "sg-0web"
        ingress = [ { protocol = "tcp", ports = "443", cidr = "0.0.0.0/0" } ]

        [[network_interfaces]]
        id = "eni-0web"
        subnet = "subnet-0a"
        private_ips = ["10.0.1.10"]
        public_ip = "203.0.113.10"
        security_groups = ["sg-0web"]
        "#,
    )
    .unwrap();
    let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
    let (public, private) = (ip("203.0.113.10"), ip("10.0.1.10"));
    let start = 1_732_435_200u64;
    let mut t = Timeline::new(start);
    for i in 0..200u16 {
        let client = ip(&format!("198.51.100.{}", 1 + i % 50));
        let cport = 20_000 + i;
        t.advance_ms(3);
        t.push(Frame::Tcp {
            src: client,
            sport: cport,
            dst: public,
            dport: 443,
            flags: tcp_flags::SYN,
            seq: 0,
            ack: 0,
            payload: 0,
        });
        t.advance_ms(1);
        t.push(Frame::Tcp {
            src: private,
            sport: 443,
            dst: client,
            dport: cport,
            flags: tcp_flags::SYN | tcp_flags::ACK,
            seq: 0,
            ack: 1,
            payload: 0,
        });
    }
    let cap = dir.path().join("views.pcap");
    let mut w = PcapWriter::create(&cap).unwrap();
    t.write_pcap(&mut w).unwrap();
    w.finish().unwrap();
    let run = |workers: usize| -> Vec<u8> {
        let out = dir.path().join(format!("v{workers}.jsonl"));
        Command::cargo_bin("vpcgate")
            .unwrap()
            .args(["replay", "--quiet", "--rules"])
            .arg(&rules)
            .arg(&cap)
            .arg("--verdicts")
            .arg(&out)
            .args(["--workers", &workers.to_string()])
            .assert()
            .success();
        std::fs::read(&out).unwrap()
    };
    let one = run(1);
    let text = String::from_utf8(one.clone()).unwrap();
    assert_eq!(text.lines().count(), 400);
    assert!(
        text.lines().all(|l| l.contains("\"action\":\"ACCEPT\"")),
        "a reply was not tracked: {}",
        text.lines().find(|l| !l.contains("ACCEPT")).unwrap()
    );
    for workers in [2, 4] {
        assert!(
            run(workers) == one,
            "verdicts differ with {workers} workers"
        );
    }
}
