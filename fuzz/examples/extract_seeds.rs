//! Builds the fuzz corpora and the small committed seed sets.
//!
//! ```text
//! cd fuzz && cargo run --release --example extract_seeds -- ../../shared/corpus/tcpdump-tests
//! ```
//!
//! Writes, relative to the fuzz crate (the current directory):
//!
//! - `corpus/parse_packet/`: the frames of every capture of the given directory (files
//!   up to 1 MiB, at most 64 frames a file, deduplicated), each prefixed by its link
//!   type's selector byte (`harness::link_type_selector`);
//! - `corpus/load_toml/`, `corpus/load_json/`: `../rulesets/*.toml`,
//!   `../rulesets/securecart-aws/*.json` and the raw-string TOML and JSON documents of
//!   `../src/load/tests.rs` and `../tests/it/*.rs`;
//! - `seeds/parse_packet/`: one frame per (link type, outcome) of the corpus above, at most
//!   48, each at most 2 KiB;
//! - `seeds/capture_read/`: per (file magic, link type), the smallest capture of at most
//!   32 KiB, at most 16 files;
//! - `seeds/load_toml/`, `seeds/load_json/`: the rulesets and a few test documents;
//! - `seeds/log_format/`: flow-log formats (default, every field, the README's, errors);
//! - `seeds/engine/`: hand-built engine programs (see `fuzz/README.md`).
//!
//! The `corpus/` directories are the libFuzzer working corpora (git-ignored); `seeds/`
//! is committed and replayed by the main crate's `tests/it/fuzz_regressions.rs`.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use vpcgate::capture::CaptureReader;
use vpcgate::wire::packet::{parse, Fragment};
use vpcgate_fuzz::harness::{link_type_selector, world, PORTS};

fn main() {
    let corpus = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "../../shared/corpus/tcpdump-tests".to_string());
    let corpus = PathBuf::from(corpus);
    let mut captures: Vec<PathBuf> = fs::read_dir(&corpus)
        .unwrap_or_else(|e| panic!("{}: {e}", corpus.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("pcap" | "pcapng" | "cap")
                )
        })
        .collect();
    captures.sort();

    frames(&captures);
    capture_seeds(&captures);
    rulesets();
    log_formats();
    engine_programs();
}

fn hash_name(data: &[u8]) -> String {
    let mut h = DefaultHasher::new();
    data.hash(&mut h);
    format!("{:016x}", h.finish())
}

fn write(dir: &str, name: &str, data: &[u8]) {
    fs::create_dir_all(dir).expect("create the directory");
    fs::write(Path::new(dir).join(name), data).expect("write a seed");
}

/// Every frame of every capture into `corpus/parse_packet`, and one per outcome into
/// `seeds/parse_packet`.
fn frames(captures: &[PathBuf]) {
    let mut seen = HashSet::new();
    let mut curated: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for path in captures {
        if fs::metadata(path).map_or(true, |m| m.len() > 1 << 20) {
            continue;
        }
        let Ok(mut reader) = CaptureReader::open(path) else {
            continue;
        };
        let mut n = 0;
        while let Ok(Some(raw)) = reader.next_packet() {
            let Some(selector) = link_type_selector(raw.link_type) else {
                break;
            };
            let mut seed = vec![selector];
            seed.extend_from_slice(raw.data);
            if seen.insert(hash_name(&seed)) {
                write("corpus/parse_packet", &hash_name(&seed), &seed);
                let outcome = match parse(raw.link_type, raw.data) {
                    Ok(p) => format!(
                        "{}-{}-{}",
                        if p.src.is_ipv4() { "v4" } else { "v6" },
                        p.protocol,
                        match p.fragment {
                            Fragment::None => "whole",
                            Fragment::First { .. } => "first",
                            Fragment::Later { .. } => "later",
                        }
                    ),
                    Err(e) => e.reason().to_string(),
                };
                let key = format!("lt{}-{outcome}", raw.link_type);
                if seed.len() <= 2048 {
                    let keep = curated.get(&key).is_none_or(|old| seed.len() < old.len());
                    if keep {
                        curated.insert(key, seed);
                    }
                }
            }
            n += 1;
            if n == 64 {
                break;
            }
        }
    }
    // Round-robin over the link types, so that Ethernet does not take every place.
    let mut rank: BTreeMap<&str, usize> = BTreeMap::new();
    let mut keys: Vec<(usize, &String)> = curated
        .keys()
        .map(|k| {
            let lt = k.split('-').next().unwrap_or("");
            let r = rank.entry(lt).or_insert(0);
            *r += 1;
            (*r, k)
        })
        .collect();
    keys.sort();
    for (_, k) in keys.into_iter().take(48) {
        write("seeds/parse_packet", k, &curated[k]);
    }
    println!("parse_packet: {} frames", seen.len());
}

/// The smallest capture per (magic, first link type), up to 32 KiB.
fn capture_seeds(captures: &[PathBuf]) {
    let mut best: BTreeMap<(String, u32), (u64, PathBuf)> = BTreeMap::new();
    for path in captures {
        let Ok(len) = fs::metadata(path).map(|m| m.len()) else {
            continue;
        };
        if !(24..=32 * 1024).contains(&len) {
            continue;
        }
        let Ok(bytes) = fs::read(path) else { continue };
        let Ok(mut reader) = CaptureReader::open(path) else {
            continue;
        };
        // Only files that read to the end with at least two packets.
        let mut link_type = None;
        let mut packets = 0;
        let clean = loop {
            match reader.next_packet() {
                Ok(Some(raw)) => {
                    link_type.get_or_insert(raw.link_type);
                    packets += 1;
                }
                Ok(None) => break true,
                Err(_) => break false,
            }
        };
        let Some(link_type) = link_type else { continue };
        if !clean || packets < 2 || link_type_selector(link_type).is_none() {
            continue;
        }
        let magic: String = bytes[..4].iter().map(|b| format!("{b:02x}")).collect();
        let key = (magic, link_type);
        if best.get(&key).is_none_or(|(l, _)| len < *l) {
            best.insert(key, (len, path.clone()));
        }
    }
    // Supported link types first.
    let mut chosen: Vec<_> = best.iter().collect();
    chosen.sort_by_key(|((_, lt), (len, _))| {
        (
            !vpcgate_fuzz::harness::SUPPORTED_LINK_TYPES.contains(lt),
            *len,
        )
    });
    for (_, (_, path)) in chosen.into_iter().take(16) {
        let name = path.file_name().and_then(|n| n.to_str()).expect("a name");
        write(
            "seeds/capture_read",
            name,
            &fs::read(path).expect("read a capture"),
        );
    }
}

/// Raw string literals (`r#"…"#`) of a Rust source file.
fn raw_strings(source: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = source;
    while let Some(i) = rest.find("r#\"") {
        let after = &rest[i + 3..];
        let Some(j) = after.find("\"#") else { break };
        out.push(after[..j].to_string());
        rest = &after[j + 2..];
    }
    out
}

/// Rulesets and test documents.
fn rulesets() {
    for entry in fs::read_dir("../rulesets").expect("../rulesets") {
        let p = entry.expect("an entry").path();
        if p.extension().and_then(|e| e.to_str()) == Some("toml") {
            let name = p.file_name().and_then(|n| n.to_str()).expect("a name");
            let text = fs::read(&p).expect("read a ruleset");
            write("corpus/load_toml", name, &text);
            write("seeds/load_toml", name, &text);
        }
    }
    for entry in fs::read_dir("../rulesets/securecart-aws").expect("securecart-aws") {
        let p = entry.expect("an entry").path();
        let name = p.file_name().and_then(|n| n.to_str()).expect("a name");
        let text = fs::read(&p).expect("read a JSON file");
        write("corpus/load_json", name, &text);
        write("seeds/load_json", name, &text);
    }
    let mut sources = vec![PathBuf::from("../src/load/tests.rs")];
    let mut its: Vec<PathBuf> = fs::read_dir("../tests/it")
        .expect("../tests/it")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    its.sort();
    sources.extend(its);
    let (mut toml, mut json) = (0, 0);
    for src in sources {
        let Ok(text) = fs::read_to_string(&src) else {
            continue;
        };
        for s in raw_strings(&text) {
            let t = s.trim_start();
            if t.starts_with('{') && s.contains("\":") {
                json += 1;
                write("corpus/load_json", &hash_name(s.as_bytes()), s.as_bytes());
                if json <= 6 {
                    write(
                        "seeds/load_json",
                        &format!("test-{}", hash_name(s.as_bytes())),
                        s.as_bytes(),
                    );
                }
            } else if s.contains("[vpc]") || s.contains("[[") {
                toml += 1;
                write("corpus/load_toml", &hash_name(s.as_bytes()), s.as_bytes());
                if toml <= 6 {
                    write(
                        "seeds/load_toml",
                        &format!("test-{}", hash_name(s.as_bytes())),
                        s.as_bytes(),
                    );
                }
            }
        }
    }
    println!("load_toml: {toml} test documents, load_json: {json}");
}

fn log_formats() {
    let all: Vec<String> = vpcgate::flowlog::Field::ALL
        .iter()
        .map(|f| format!("${{{f}}}"))
        .collect();
    let formats = [
        ("default", vpcgate::flowlog::LogFormat::default_format().to_string()),
        ("all-fields", all.join(" ")),
        ("all-fields-reversed", {
            let mut r = all.clone();
            r.reverse();
            r.join("\n")
        }),
        ("readme", "${version} ${interface-id} ${srcaddr} ${dstaddr} ${dstport} ${action} ${tcp-flags} ${flow-direction} ${traffic-path}".to_string()),
        ("whitespace", "  ${version}\t${srcaddr}\n ${action}  ".to_string()),
        ("unclosed", "${version} ${srcaddr".to_string()),
        ("not-separated", "${version}${srcaddr}".to_string()),
        ("space-in-name", "${ srcaddr }".to_string()),
        ("typo", "${version} ${srcadr}".to_string()),
        ("later-version", "${version} ${encryption-status}".to_string()),
        ("transit-gateway", "${tgw-id}".to_string()),
        ("duplicate", "${srcaddr} ${version} ${srcaddr}".to_string()),
        ("stray", "${version}, ${srcaddr}".to_string()),
        ("empty-field", "${version} ${}".to_string()),
    ];
    for (name, text) in formats {
        write("seeds/log_format", name, text.as_bytes());
        write("corpus/log_format", name, text.as_bytes());
    }
}

/// An encoder for the engine target's programs (the decoder is `harness::engine`).
struct Program<'w> {
    out: Vec<u8>,
    w: &'w vpcgate_fuzz::harness::World,
}

/// A packet op's options.
#[derive(Clone, Copy, Default)]
struct Opt {
    ethernet: bool,
    vlan: bool,
    options: bool,
    /// 0 none, 6 first fragment, 7 later fragment (the 3 bits of the flags byte).
    fragment: u8,
    frag_id: u8,
    payload: u8,
}

impl Program<'_> {
    fn new(policy: u8, interval_sel: u8, time_sel: u8) -> Program<'static> {
        Program {
            out: vec![policy, interval_sel, time_sel],
            w: world(),
        }
    }

    fn op_bits(o: Opt) -> u8 {
        // 5 is the first "packet" op; bits 0x20/0x40/0x80 are the options, 0x10 reply.
        5 | if o.ethernet { 0x20 } else { 0 }
            | if o.vlan { 0x40 } else { 0 }
            | if o.options { 0x80 } else { 0 }
    }

    fn addr(&self, a: &str) -> u8 {
        let a: IpAddr = a.parse().expect("an address");
        let i = match a {
            IpAddr::V4(a) => self.w.v4.iter().position(|x| *x == a),
            IpAddr::V6(a) => self.w.v6.iter().position(|x| *x == a),
        };
        u8::try_from(i.expect("an address of the world")).expect("a small index")
    }

    fn port(&mut self, p: u16) {
        match PORTS.iter().position(|x| *x == p) {
            Some(i) => self.out.push(i as u8),
            None => {
                self.out.push(0xe0);
                self.out.extend_from_slice(&p.to_be_bytes());
            }
        }
    }

    fn tail(&mut self, o: Opt) {
        if o.fragment != 0 {
            self.out.push(o.frag_id);
        }
        self.out.push(o.payload);
    }

    /// A TCP or UDP packet (`protocol` 6 or 17).
    #[allow(clippy::too_many_arguments)]
    fn l4(
        &mut self,
        dt: u8,
        protocol: u8,
        src: &str,
        sport: u16,
        dst: &str,
        dport: u16,
        flags: u8,
        o: Opt,
    ) {
        let v6 = src.contains(':');
        self.out.push(Self::op_bits(o));
        self.out.push(dt);
        self.out.push(u8::from(v6) | o.fragment << 1);
        let (s, d) = (self.addr(src), self.addr(dst));
        self.out
            .extend_from_slice(&[s, d, if protocol == 6 { 0 } else { 3 }]);
        self.port(sport);
        self.port(dport);
        if protocol == 6 {
            self.out.push(flags);
        }
        self.tail(o);
    }

    /// The reply to the previous packet, with TCP flags `flags`.
    fn reply(&mut self, dt: u8, flags: u8, o: Opt) {
        self.out.push(Self::op_bits(o) | 0x10);
        self.out.push(dt);
        self.out.push(o.fragment << 1);
        self.out.push(flags);
        self.tail(o);
    }

    /// An ICMP echo request (type 8 / 128).
    fn ping(&mut self, dt: u8, src: &str, dst: &str, o: Opt) {
        let v6 = src.contains(':');
        self.out.push(Self::op_bits(o));
        self.out.push(dt);
        self.out.push(u8::from(v6) | o.fragment << 1);
        let (s, d) = (self.addr(src), self.addr(dst));
        self.out.extend_from_slice(&[s, d, 5, 0, 0]);
        self.out
            .extend_from_slice(&[if v6 { 128 } else { 8 }, 0, 42]);
        self.tail(o);
    }

    /// A packet of another protocol (`protocol % 8 == 7`, e.g. 47 GRE).
    fn other(&mut self, dt: u8, src: &str, dst: &str, protocol: u8, o: Opt) {
        assert_eq!(protocol % 8, 7);
        let v6 = src.contains(':');
        self.out.push(Self::op_bits(o));
        self.out.push(dt);
        self.out.push(u8::from(v6) | o.fragment << 1);
        let (s, d) = (self.addr(src), self.addr(dst));
        self.out.extend_from_slice(&[s, d, protocol, 0, 0]);
        self.tail(o);
    }

    fn raw(&mut self, selector: u8, frame: &[u8]) {
        self.out.push(0);
        self.out.push(selector);
        self.out
            .extend_from_slice(&(frame.len() as u16).to_be_bytes());
        self.out.extend_from_slice(frame);
    }

    fn op(&mut self, op: u8, arg: &[u8]) {
        self.out.push(op);
        self.out.extend_from_slice(arg);
    }

    fn save(self, name: &str) {
        write("seeds/engine", name, &self.out);
        write("corpus/engine", name, &self.out);
    }
}

const SYN: u8 = 0x02;
const SYN_ACK: u8 = 0x12;
const ACK: u8 = 0x10;
const FIN_ACK: u8 = 0x11;
const PSH_ACK: u8 = 0x18;
const RST: u8 = 0x04;

fn engine_programs() {
    let eth = Opt {
        ethernet: true,
        ..Opt::default()
    };
    let raw = Opt::default();

    // A customer's HTTPS connection to the load balancer's public address.
    let mut p = Program::new(0, 0, 0);
    p.l4(1, 6, "198.51.100.7", 50000, "203.0.113.10", 443, SYN, eth);
    p.reply(2, SYN_ACK, eth);
    p.reply(2, ACK, eth);
    p.l4(
        5,
        6,
        "198.51.100.7",
        50000,
        "203.0.113.10",
        443,
        PSH_ACK,
        Opt {
            payload: 200,
            ..eth
        },
    );
    p.reply(3, FIN_ACK, eth);
    p.reply(3, ACK, eth);
    p.op(OP_CLOSE, &[]);
    p.save("https-alb");

    // SSH to the bastion, allowed and from a denied range; RST.
    let mut p = Program::new(0, 1, 0);
    p.l4(1, 6, "198.51.100.7", 40000, "203.0.113.30", 22, SYN, raw);
    p.reply(1, SYN_ACK, raw);
    p.l4(1, 6, "192.0.2.201", 40001, "203.0.113.30", 22, SYN, raw);
    p.l4(1, 6, "198.51.100.7", 40000, "203.0.113.30", 22, RST, raw);
    p.op(OP_HOUSEKEEPING, &[]);
    p.save("ssh-bastion");

    // App to database; six days of silence (past tcp_established); the reply comes late.
    let mut p = Program::new(0, 0, 0);
    p.l4(1, 6, "10.0.11.10", 40000, "10.0.21.10", 5432, SYN, eth);
    p.reply(1, SYN_ACK, eth);
    p.op(OP_JUMP | 0xc0, &[0, 6]);
    p.op(OP_HOUSEKEEPING, &[]);
    p.reply(1, PSH_ACK, eth);
    p.op(OP_CLOSE, &[]);
    p.save("app-db-expired");

    // IPv6: HTTPS to the load balancer, pings, fragments, a hop-by-hop header, VLAN.
    let mut p = Program::new(0, 2, 0);
    p.l4(
        1,
        6,
        "2001:db8::1",
        50000,
        "2600:1f18:4a3:6d01::10",
        443,
        SYN,
        Opt {
            options: true,
            ..eth
        },
    );
    p.reply(1, SYN_ACK, Opt { vlan: true, ..eth });
    p.ping(1, "2001:db8::1", "2600:1f18:4a3:6d01::10", raw);
    p.l4(
        1,
        17,
        "2001:db8::1",
        5000,
        "2600:1f18:4a3:6d01::10",
        443,
        0,
        Opt {
            fragment: 6,
            frag_id: 9,
            payload: 100,
            ..raw
        },
    );
    p.l4(
        1,
        17,
        "2001:db8::1",
        5000,
        "2600:1f18:4a3:6d01::10",
        443,
        0,
        Opt {
            fragment: 7,
            frag_id: 9,
            payload: 100,
            ..raw
        },
    );
    p.save("ipv6-mix");

    // The allowance-limited ruleset: SYNs until the bastion's table is full; a ruleset
    // change in between.
    let mut p = Program::new(1, 1, 0);
    for port in 0..5u16 {
        p.l4(
            1,
            6,
            "198.51.100.7",
            41000 + port,
            "203.0.113.30",
            22,
            SYN,
            raw,
        );
    }
    p.op(OP_RULESET, &[2]);
    p.l4(1, 6, "198.51.100.7", 41010, "203.0.113.30", 22, SYN, raw);
    p.op(OP_RULESET, &[0]);
    p.ping(
        1,
        "10.0.1.20",
        "93.184.216.34",
        Opt {
            options: true,
            ..raw
        },
    );
    p.save("conntrack-full");

    // Exempt services, DHCP, IPv4 fragments, raw frames (ARP, cut short), a huge time.
    let mut p = Program::new(2, 3, 2);
    p.l4(1, 17, "10.0.11.10", 40000, "10.0.0.2", 53, 0, raw);
    p.l4(1, 17, "10.0.11.10", 68, "255.255.255.255", 67, 0, eth);
    p.l4(
        1,
        17,
        "10.0.11.10",
        40001,
        "93.184.216.34",
        123,
        0,
        Opt {
            fragment: 6,
            frag_id: 3,
            payload: 60,
            ..raw
        },
    );
    p.l4(
        1,
        17,
        "10.0.11.10",
        40001,
        "93.184.216.34",
        123,
        0,
        Opt {
            fragment: 7,
            frag_id: 3,
            payload: 60,
            ..raw
        },
    );
    let arp = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x08, 0x06, 0, 1,
    ];
    p.raw(0, &arp);
    p.raw(1, &[0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6]);
    p.op(OP_JUMP | 0xc0, &[0xff, 0xff]);
    p.l4(1, 6, "10.0.11.11", 40000, "10.0.21.10", 5432, SYN, raw);
    p.save("exempt-fragments-raw");

    // The open ruleset: UDP to a stream, GRE, untracked TCP at the bastion, IPv6 UDP.
    let mut p = Program::new(3, 1, 0);
    p.l4(1, 17, "10.0.11.10", 40000, "93.184.216.34", 53, 0, raw);
    p.reply(1, 0, raw);
    p.l4(1, 17, "10.0.11.10", 40000, "93.184.216.34", 53, 0, raw);
    p.reply(1, 0, raw);
    p.other(1, "10.0.11.10", "93.184.216.34", 47, raw);
    p.l4(1, 6, "10.0.1.20", 40000, "93.184.216.34", 443, SYN, eth);
    p.reply(1, SYN_ACK, eth);
    p.l4(
        1,
        17,
        "2001:db8::1",
        5000,
        "2600:1f18:4a3:6d01::10",
        5000,
        0,
        raw,
    );
    p.op(OP_HOUSEKEEPING, &[]);
    p.op(OP_CLOSE, &[]);
    p.save("open-udp-gre");
}

const OP_HOUSEKEEPING: u8 = 1;
const OP_CLOSE: u8 = 2;
const OP_RULESET: u8 = 3;
const OP_JUMP: u8 = 4;
