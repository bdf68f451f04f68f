//! Per-stage costs on one core, and the whole pipeline in memory, on a synthetic mix
//! (`vpcgate::synth::bulk`, 200,000 packets, 20,000 flows open at once, generated in
//! memory for the SecureCart VPC) with two rulesets:
//!
//! - `securecart`: `rulesets/securecart.toml` as it is;
//! - `1000-sg-rules-40-nacl`: the same VPC with 1,000 more ingress rules in the app
//!   tasks' security group (so each app ENI has over 1,000) and every network ACL in
//!   use padded to 40 IPv4 entries per direction (see [`big_ruleset_text`]).
//!
//! Groups: `floor` (the least any filter must do: walk the capture's records and
//! headers, `vpcgate bench --floor`'s walk), `parse`, `nacl`, `sg`, `conntrack`,
//! `flowlog`, `engine` (everything a worker does per packet, on one core) and
//! `pipeline` (`vpcgate::pipeline::run` from a file in /dev/shm, 1 and 2 workers).
//!
//! ```text
//! cargo bench --bench stages                 # everything: 70 s on 2 busy cores
//! cargo bench --bench stages -- engine       # one group (the setup runs anyway)
//! cargo bench --bench stages -- --quick      # about 35 s
//! ```
//!
//! Criterion reports the time of one iteration (one pass over the mix: every packet,
//! or every NACL/SG check, conntrack key or flow-log observation of the mix) and
//! elements/s. At the end a table gives, per benchmark, ns per element and per packet
//! of the mix (median and best sample) with the targets of the engine: ≤ 100
//! ns/packet on the SecureCart rules, ≤ 150 ns with the big ruleset.
//! `benches/engine.rs` is the older, smaller benchmark on the bundled demo capture.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)] // not the core: see clippy.toml

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput};
use std::cell::RefCell;
use std::hint::black_box;
use std::io::Cursor;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use toml::{Table, Value};
use vpcgate::capture::CaptureReader;
use vpcgate::conntrack::{ConnKey, ConnTable};
use vpcgate::engine::{flow_shard, Engine, Verdict, FLOW_SHARDS};
use vpcgate::flowlog::{Aggregator, LogFormat, Observation};
use vpcgate::model::{ConntrackTimeouts, Direction, Vpc};
use vpcgate::pipeline::{self, ReplayConfig, RulesetAt};
use vpcgate::policy::Policy;
use vpcgate::synth::bulk::{self, SynthConfig};
use vpcgate::wire::packet::{self, Packet, Timestamp};

use vpcgate::pipeline::bench::floor as floor_walk;

const PACKETS: u64 = 200_000;
const FLOWS: usize = 20_000;
/// The pipeline's workers call `Engine::housekeeping` once per block of this many.
const BLOCK: usize = 8192;
/// The security group the big ruleset adds 1,000 ingress rules to: the app tasks'.
const APP_SG: &str = "sg-0a1b2c3d4e5f60020";
const BIG_SG_RULES: usize = 1000;
const BIG_NACL_ENTRIES: usize = 40;
/// The `--max-flows` bound of the engine and pipeline benchmarks (the CLI's default
/// is a quarter of the available memory at 512 bytes per flow).
const MAX_FLOWS: u64 = 10_000_000;

// ---------------------------------------------------------------------------------
// Input
// ---------------------------------------------------------------------------------

/// The mix: the pcap bytes, its frames (one flat buffer) and its parsed packets.
struct Mix {
    pcap: Vec<u8>,
    frame_data: Vec<u8>,
    /// (link type, start, end) in `frame_data`.
    frames: Vec<(u32, usize, usize)>,
    packets: Vec<(Packet, Timestamp)>,
}

impl Mix {
    fn frame(&self, i: usize) -> (u32, &[u8]) {
        let (lt, a, b) = self.frames[i];
        (lt, &self.frame_data[a..b])
    }
}

fn make_mix(vpc: Vpc) -> Mix {
    let cfg = SynthConfig {
        packets: PACKETS,
        flows: FLOWS,
        ..Default::default()
    };
    let mut pcap = Vec::new();
    let summary = bulk::generate(vpc, &cfg, &mut pcap).expect("synthgen");
    assert_eq!(summary.packets, PACKETS);
    let mut r = CaptureReader::from_reader("synth", Box::new(Cursor::new(pcap.clone())))
        .expect("the synthetic capture opens");
    let mut frame_data = Vec::with_capacity(pcap.len());
    let mut frames = Vec::new();
    let mut packets = Vec::new();
    while let Some(p) = r.next_packet().expect("the synthetic capture reads") {
        let start = frame_data.len();
        frame_data.extend_from_slice(p.data);
        frames.push((p.link_type, start, frame_data.len()));
        if let Ok(pkt) = packet::parse(p.link_type, p.data) {
            packets.push((pkt, p.ts));
        }
    }
    assert_eq!(frames.len() as u64, PACKETS);
    eprintln!(
        "mix: {} packets ({} parse), {} flows ({} rejected at the first packet), {:.1} MB of pcap",
        frames.len(),
        packets.len(),
        summary.flows,
        summary.rejected_flows,
        pcap.len() as f64 / 1e6
    );
    Mix {
        pcap,
        frame_data,
        frames,
        packets,
    }
}

fn compile(vpc: Vpc) -> Arc<Policy> {
    let mut ids: Vec<String> = vpc
        .network_interfaces
        .iter()
        .map(|e| e.id.clone())
        .collect();
    ids.sort();
    Arc::new(Policy::compile(Arc::new(vpc), &ids))
}

// ---------------------------------------------------------------------------------
// The big ruleset
// ---------------------------------------------------------------------------------

/// A small deterministic generator for the big ruleset.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn s(v: &str) -> Value {
    Value::String(v.to_string())
}

fn table(pairs: &[(&str, Value)]) -> Value {
    let mut t = Table::new();
    for (k, v) in pairs {
        t.insert(k.to_string(), v.clone());
    }
    Value::Table(t)
}

/// A port range of 1 to 500 ports, or a well-known service port.
fn ports(rng: &mut Rng) -> String {
    const SERVICES: [u16; 8] = [1433, 3306, 5672, 6379, 9092, 9200, 11211, 27017];
    match rng.below(4) {
        0 => SERVICES[rng.below(SERVICES.len() as u64) as usize].to_string(),
        _ => {
            let from = 1024 + rng.below(60_000);
            let len = [0, 9, 99, 499][rng.below(4) as usize];
            format!("{from}-{}", (from + len).min(65_535))
        }
    }
}

/// A CIDR that no packet of the mix comes from or goes to: 10.x outside the VPC's
/// 10.0.0.0/16, or the shared (100.64.0.0/10) and private 172.16.0.0/12 and
/// 192.168.0.0/16 ranges, which the generator never draws internet hosts from.
fn quiet_cidr(rng: &mut Rng) -> String {
    let (a, b) = (rng.below(256), rng.below(256));
    match rng.below(4) {
        0 => format!("10.{}.{b}.0/24", 1 + rng.below(255)),
        1 => format!("100.{}.{b}.0/24", 64 + rng.below(64)),
        2 => format!("172.{}.{b}.{}/28", 16 + rng.below(16), a & 0xf0),
        _ => format!("192.168.{b}.{}/{}", a & 0xc0, 26),
    }
}

/// A public CIDR (a /16 to a /28, never 0.0.0.0/0).
fn public_cidr(rng: &mut Rng) -> String {
    loop {
        let x = rng.next() as u32;
        let o = x.to_be_bytes();
        if matches!(o[0], 0 | 10 | 100 | 127 | 169 | 172 | 192 | 224..=255) {
            continue;
        }
        let len = 16 + rng.below(13) as u32;
        let net = x & (u32::MAX << (32 - len));
        return format!("{}/{len}", std::net::Ipv4Addr::from(net));
    }
}

/// `rulesets/securecart.toml` with 1,000 more ingress rules in the app tasks'
/// security group (TCP and UDP port ranges from CIDRs spread over 10.x outside the
/// VPC and public space, never `0.0.0.0/0` so the untracked condition is the same;
/// 20 name the office prefix list and 20 the database's group) and each network ACL
/// in use padded to 40 IPv4 entries per direction, numbered below the existing ones
/// or between them, mostly for traffic that never comes (a linear first match would
/// look past them all), plus a few denies that do match: all traffic from 45.0.0.0/8 into the
/// public subnets, replies to 91.0.0.0/8 out of them, HTTPS from the app subnets to
/// 45.0.0.0/8.
fn big_ruleset_text(base: &str) -> String {
    let mut doc: Table = base.parse().expect("securecart.toml is TOML");
    let mut rng = Rng(0x5eed_1234_abcd_0001);

    // Security group rules.
    let sgs = doc
        .get_mut("security_groups")
        .and_then(Value::as_array_mut)
        .expect("security_groups");
    let app = sgs
        .iter_mut()
        .find(|g| g.get("id").and_then(Value::as_str) == Some(APP_SG))
        .expect("the app security group");
    let ingress = app
        .get_mut("ingress")
        .and_then(Value::as_array_mut)
        .expect("its ingress rules");
    for i in 0..BIG_SG_RULES {
        let protocol = if rng.below(10) < 7 { "tcp" } else { "udp" };
        let ports = ports(&mut rng);
        let peer = match i % 50 {
            0 => ("prefix_list", s("pl-0a1b2c3d4e5f60001")),
            1 => ("security_group", s("sg-0a1b2c3d4e5f60030")),
            k if k % 2 == 0 => ("cidr", s(&quiet_cidr(&mut rng))),
            _ => ("cidr", s(&public_cidr(&mut rng))),
        };
        ingress.push(table(&[
            ("protocol", s(protocol)),
            ("ports", s(&ports)),
            peer,
            ("description", s(&format!("bench rule {i}"))),
        ]));
    }

    // Network ACL entries.
    let used: Vec<String> = doc
        .get("subnets")
        .and_then(Value::as_array)
        .expect("subnets")
        .iter()
        .filter_map(|s| s.get("network_acl").and_then(Value::as_str))
        .map(str::to_string)
        .collect();
    let acls = doc
        .get_mut("network_acls")
        .and_then(Value::as_array_mut)
        .expect("network_acls");
    for acl in acls.iter_mut() {
        let id = acl
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if !used.contains(&id) {
            continue;
        }
        for dir in ["inbound", "outbound"] {
            let list = acl
                .get_mut(dir)
                .and_then(Value::as_array_mut)
                .expect("entries");
            let numbers: Vec<i64> = list
                .iter()
                .filter_map(|e| e.get("rule").and_then(Value::as_integer))
                .collect();
            let v4 = list
                .iter()
                .filter(|e| {
                    e.get("cidr")
                        .and_then(Value::as_str)
                        .is_some_and(|c| c.contains('.'))
                })
                .count();
            // Rule numbers 3, 7, 11, ...: below the existing ones (90 and up) and
            // between them.
            let free: Vec<i64> = (0..)
                .map(|k| 3 + 4 * k)
                .filter(|n| !numbers.contains(n))
                .take(BIG_NACL_ENTRIES - v4)
                .collect();
            for (k, &rule) in free.iter().enumerate() {
                let matching = match (id.as_str(), dir, k) {
                    ("acl-0a1b2c3d4e5f60010", "inbound", 5) => Some(("-1", None, "45.0.0.0/8")),
                    ("acl-0a1b2c3d4e5f60010", "outbound", 5) => {
                        Some(("tcp", Some("1024-65535"), "91.0.0.0/8"))
                    }
                    ("acl-0a1b2c3d4e5f60020", "outbound", 5) => {
                        Some(("tcp", Some("443"), "45.0.0.0/8"))
                    }
                    _ => None,
                };
                let mut e = vec![("rule", Value::Integer(rule))];
                match matching {
                    Some((protocol, ports, cidr)) => {
                        e.push(("protocol", s(protocol)));
                        if let Some(p) = ports {
                            e.push(("ports", s(p)));
                        }
                        e.push(("cidr", s(cidr)));
                        e.push(("action", s("deny")));
                    }
                    None => {
                        let protocol = ["tcp", "tcp", "udp", "icmp"][rng.below(4) as usize];
                        e.push(("protocol", s(protocol)));
                        if protocol == "icmp" {
                            e.push(("icmp_type", Value::Integer(rng.below(20) as i64)));
                        } else {
                            e.push(("ports", s(&ports(&mut rng))));
                        }
                        let cidr = if rng.below(3) == 0 {
                            public_cidr(&mut rng)
                        } else {
                            quiet_cidr(&mut rng)
                        };
                        e.push(("cidr", s(&cidr)));
                        let action = if rng.below(2) == 0 { "allow" } else { "deny" };
                        e.push(("action", s(action)));
                    }
                }
                list.push(table(&e));
            }
        }
    }
    toml::to_string(&doc).expect("the big ruleset serialises")
}

/// Checks that the big ruleset is what its name says.
fn check_big(vpc: &Vpc) {
    let most = vpc
        .network_interfaces
        .iter()
        .map(|e| {
            vpc.security_groups
                .iter()
                .filter(|g| e.security_groups.contains(&g.id))
                .map(|g| g.ingress.len())
                .sum::<usize>()
        })
        .max()
        .unwrap_or(0);
    assert!(
        most >= BIG_SG_RULES,
        "the big ruleset has at most {most} SG ingress rules on an ENI"
    );
    let used: Vec<&str> = vpc
        .subnets
        .iter()
        .filter_map(|s| s.network_acl_id.as_deref())
        .collect();
    assert!(!used.is_empty());
    for acl in vpc
        .network_acls
        .iter()
        .filter(|a| used.contains(&a.id.as_str()))
    {
        for (dir, list) in [("inbound", &acl.inbound), ("outbound", &acl.outbound)] {
            let v4 = list
                .iter()
                .filter(|e| e.rule_number < 32767 && e.cidr.addr().is_ipv4())
                .count();
            assert_eq!(
                v4, BIG_NACL_ENTRIES,
                "{} {dir}: {v4} IPv4 entries, not {BIG_NACL_ENTRIES}",
                acl.id
            );
        }
    }
    eprintln!(
        "big ruleset: {most} SG ingress rules on the app ENIs, {BIG_NACL_ENTRIES} IPv4 entries \
         per direction in each of {} network ACLs",
        used.iter().collect::<std::collections::BTreeSet<_>>().len()
    );
}

// ---------------------------------------------------------------------------------
// Per-stage inputs
// ---------------------------------------------------------------------------------

/// One rule check as the engine would make it: ENI (model index), its subnet,
/// direction, remote address, packet.
struct Check {
    eni: vpcgate::model::EniIdx,
    subnet: u32,
    dir: Direction,
    remote: IpAddr,
    pkt: usize,
}

/// The SG and NACL checks of every packet: the source ENI's egress, the destination
/// ENI's ingress (exempt services and packets with no ENI are not checked).
fn checks(policy: &Policy, packets: &[(Packet, Timestamp)]) -> Vec<Check> {
    let mut v = Vec::with_capacity(packets.len() * 2);
    for (i, (p, _)) in packets.iter().enumerate() {
        let (si, di) = (policy.addr_info(p.src), policy.addr_info(p.dst));
        if si.exempt.is_some() || di.exempt.is_some() {
            continue;
        }
        if let Some(o) = si.owner {
            v.push(Check {
                eni: o.eni,
                subnet: policy.eni_subnet[o.eni.get()],
                dir: Direction::Egress,
                remote: p.dst,
                pkt: i,
            });
        }
        if let Some(o) = di.owner {
            v.push(Check {
                eni: o.eni,
                subnet: policy.eni_subnet[o.eni.get()],
                dir: Direction::Ingress,
                remote: p.src,
                pkt: i,
            });
        }
    }
    v
}

/// The connection-tracking key of a check, as the engine builds it (an ENI's public
/// IPv4 keyed as its primary private address; ICMP by its id).
fn conn_key(policy: &Policy, c: &Check, p: &Packet) -> ConnKey {
    let e = &policy.vpc.network_interfaces[c.eni.get()];
    let (mut local, lp, rp) = match c.dir {
        Direction::Egress => (p.src, p.src_port, p.dst_port),
        Direction::Ingress => (p.dst, p.dst_port, p.src_port),
    };
    if let (IpAddr::V4(a), Some(public), Some(primary)) = (local, e.public_ipv4, e.primary_ipv4()) {
        if a == public {
            local = IpAddr::V4(primary);
        }
    }
    let number = policy.eni_number[c.eni.get()];
    match p.protocol {
        6 | 17 => ConnKey::new(number, p.protocol, local, lp, c.remote, rp),
        1 | 58 => ConnKey::new(number, p.protocol, local, p.icmp_id, c.remote, 0),
        n => ConnKey::new(number, n, local, 0, c.remote, 0),
    }
}

/// What a worker does per packet (`pipeline::worker_loop`): the flow shard, the
/// engine, the aggregator, housekeeping once per block, the records at the end, with
/// the `--max-flows` bound of [`MAX_FLOWS`]. Returns (accepted, rejected, not
/// evaluated, records).
fn worker(policy: &Arc<Policy>, packets: &[(Packet, Timestamp)]) -> (u64, u64, u64, usize) {
    let mut engine = Engine::new(policy.clone());
    let mut agg = Aggregator::new(600);
    let per_shard = MAX_FLOWS.div_ceil(u64::from(FLOW_SHARDS)) as u32;
    engine.set_flow_limit(Some(per_shard));
    agg.set_limit(Some(per_shard * 2));
    let mut n = [0u64; 3];
    for (block, chunk) in packets.chunks(BLOCK).enumerate() {
        for (i, (p, ts)) in chunk.iter().enumerate() {
            let shard = flow_shard(p, policy);
            let d = engine.process_in_shard(p, *ts, shard);
            let seq = (block * BLOCK + i) as u64;
            // As the pipeline does: a tracked packet reaches its record through the
            // hint kept in its connection's entry.
            for (o, c) in d.obs.iter().zip(d.conn) {
                let Some(o) = o else { continue };
                match c.and_then(|c| engine.flow_log_hint(c, o.direction)) {
                    Some(hint) => agg.observe_hinted(o, *ts, seq, shard, hint),
                    None => agg.observe_in_shard(o, *ts, seq, shard),
                }
            }
            n[match d.verdict {
                Verdict::Accept => 0,
                Verdict::Reject => 1,
                Verdict::None => 2,
            }] += 1;
        }
        if let Some((_, ts)) = chunk.last() {
            engine.housekeeping(*ts);
        }
    }
    let mut records = Vec::new();
    agg.close_all(&mut records);
    (n[0], n[1], n[2], records.len())
}

// ---------------------------------------------------------------------------------
// Measuring
// ---------------------------------------------------------------------------------

/// Per benchmark: (name, elements per iteration, packets per iteration, samples of
/// (elapsed, iterations)), for the table at the end.
type Samples = RefCell<Vec<(String, u64, u64, Vec<(Duration, u64)>)>>;

/// Benchmarks `f` (one call = one pass over `elements` elements, standing for
/// `packets` packets) as `group_name/name` in `g`, recording its samples in `log`.
fn bench<R>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    log: &Samples,
    group_name: &str,
    name: &str,
    elements: u64,
    packets: u64,
    mut f: impl FnMut() -> R,
) {
    let group = log.borrow().len();
    log.borrow_mut().push((
        format!("{group_name}/{name}"),
        elements,
        packets,
        Vec::new(),
    ));
    g.throughput(Throughput::Elements(elements));
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let t = Instant::now();
            for _ in 0..iters {
                black_box(f());
            }
            let e = t.elapsed();
            log.borrow_mut()[group].3.push((e, iters));
            e
        })
    });
}

/// Prints, per benchmark, the median and the best of its samples' time per pass (the
/// warm-up's included), per element and per packet. On a loaded machine the best is
/// the closer to the cost of the code: other jobs only ever add time.
fn summary(log: &Samples) {
    let log = log.borrow();
    if log.iter().all(|(.., s)| s.is_empty()) {
        return;
    }
    println!();
    if log.iter().all(|(.., s)| s.len() <= 1) {
        println!("one pass each (test mode): these are no measurements");
    }
    println!(
        "{:<36} {:>8} {:>9} {:>8} {:>10} {:>8} {:>8}",
        "benchmark", "elements", "ms/pass", "ns/elem", "ns/packet", "best", "Mpps"
    );
    for (name, elements, packets, samples) in log.iter() {
        if samples.is_empty() {
            continue;
        }
        let mut per_pass: Vec<f64> = samples
            .iter()
            .map(|(d, n)| d.as_secs_f64() / *n as f64)
            .collect();
        per_pass.sort_by(f64::total_cmp);
        let t = per_pass[per_pass.len() / 2];
        let ns_packet = t * 1e9 / *packets as f64;
        let best = per_pass[0] * 1e9 / *packets as f64;
        let target = match name.as_str() {
            "engine/securecart" => target(ns_packet, best, 100.0),
            "engine/1000-sg-rules-40-nacl" => target(ns_packet, best, 150.0),
            _ => String::new(),
        };
        println!(
            "{name:<36} {elements:>8} {:>9.3} {:>8.1} {ns_packet:>10.1} {best:>8.1} {:>8.2}{target}",
            t * 1e3,
            t * 1e9 / *elements as f64,
            *packets as f64 / t / 1e6,
        );
    }
    println!(
        "(median of the samples; best: the fastest sample; ns/packet = time per pass / \
         packets of the mix)"
    );
    if let Ok(l) = std::fs::read_to_string("/proc/loadavg") {
        println!("load average: {}", l.trim());
    }
}

fn target(median: f64, best: f64, target: f64) -> String {
    let met = |ns: f64| if ns <= target { "met" } else { "NOT met" };
    format!(
        "  target ≤ {target} ns/packet: {} (best: {})",
        met(median),
        met(best)
    )
}

/// A scratch folder in /dev/shm (memory), else the temporary folder; removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        let shm = Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("vpcgate-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch folder");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------------
// The groups
// ---------------------------------------------------------------------------------

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("rulesets/securecart.toml"))
        .expect("rulesets/securecart.toml");
    let small_vpc = vpcgate::load::load_str("securecart.toml", &text).expect("securecart loads");
    let big_vpc =
        vpcgate::load::load_str("big.toml", &big_ruleset_text(&text)).expect("big.toml loads");
    check_big(&big_vpc);
    let mix = make_mix(small_vpc.clone());
    let n = mix.packets.len() as u64;
    let frames = mix.frames.len() as u64;
    let rulesets = [
        ("securecart", compile(small_vpc.clone())),
        ("1000-sg-rules-40-nacl", compile(big_vpc)),
    ];

    // The floor must see what the reader sees.
    let hdr = floor_walk::pcap_header(&mix.pcap).expect("a classic pcap");
    let floor = |acc: &mut floor_walk::Walked| {
        floor_walk::walk_records(&mix.pcap[24..], &hdr, usize::MAX, acc).unwrap()
    };
    let mut walked = floor_walk::Walked::default();
    assert_eq!(
        floor(&mut walked),
        mix.pcap.len() - 24,
        "the floor walks every byte"
    );
    assert_eq!(
        walked.packets, frames,
        "the floor's packets are the reader's"
    );
    assert_eq!(walked.ip, n, "the floor's IP packets are those that parse");
    assert_eq!(walked.bytes as usize, mix.pcap.len() - 24);

    // What the engine does with the mix, and what it observes for the flow log.
    let mut obs: Vec<(Observation, Timestamp, u64)> = Vec::new();
    for (name, policy) in &rulesets {
        let (a, r, none, records) = worker(policy, &mix.packets);
        let mut engine = Engine::new(policy.clone());
        for (seq, (p, ts)) in mix.packets.iter().enumerate() {
            let d = engine.process(p, *ts);
            if *name == "securecart" {
                obs.extend(d.obs.iter().flatten().map(|o| (*o, *ts, seq as u64)));
            }
        }
        let st = engine.stats();
        eprintln!(
            "{name}: {a} accepted, {r} rejected, {none} not evaluated; {records} flow records; \
             {} tracked connections created, {} conntrack hits",
            st.conntrack_created, st.conntrack_hits
        );
    }

    let log: Samples = RefCell::new(Vec::new());
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(700))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
        .configure_from_args();

    {
        let mut g = c.benchmark_group("floor");
        g.sampling_mode(SamplingMode::Flat);
        bench(
            &mut g,
            &log,
            "floor",
            "walk-records-and-headers",
            frames,
            frames,
            || {
                let mut acc = floor_walk::Walked::default();
                floor(&mut acc);
                acc.checksum
            },
        );
        g.finish();
    }
    {
        let mut g = c.benchmark_group("parse");
        g.sampling_mode(SamplingMode::Flat);
        bench(
            &mut g,
            &log,
            "parse",
            "packet::parse",
            frames,
            frames,
            || {
                let mut x = 0u32;
                for i in 0..mix.frames.len() {
                    let (lt, f) = mix.frame(i);
                    if let Ok(p) = packet::parse(lt, f) {
                        x = x.wrapping_add(p.ip_len ^ u32::from(p.dst_port));
                    }
                }
                x
            },
        );
        g.finish();
    }
    {
        let mut g = c.benchmark_group("nacl");
        g.sampling_mode(SamplingMode::Flat);
        for (name, policy) in &rulesets {
            let checks = checks(policy, &mix.packets);
            eprintln!(
                "nacl/sg {name}: {} checks, {:.2} per packet",
                checks.len(),
                checks.len() as f64 / n as f64
            );
            bench(&mut g, &log, "nacl", name, checks.len() as u64, n, || {
                let mut allowed = 0u32;
                for c in &checks {
                    let d = policy.nacl_decide(c.subnet, c.dir, &mix.packets[c.pkt].0);
                    allowed += d.allow as u32;
                }
                allowed
            });
        }
        g.finish();
    }
    {
        let mut g = c.benchmark_group("sg");
        g.sampling_mode(SamplingMode::Flat);
        for (name, policy) in &rulesets {
            let checks = checks(policy, &mix.packets);
            bench(&mut g, &log, "sg", name, checks.len() as u64, n, || {
                let mut allowed = 0u32;
                for c in &checks {
                    let m = policy.sg_match(c.eni, c.dir, c.remote, &mix.packets[c.pkt].0);
                    allowed += m.is_some() as u32;
                }
                allowed
            });
        }
        g.finish();
    }
    {
        let policy = &rulesets[0].1;
        let keys: Vec<(ConnKey, Direction, u8, u64, ConntrackTimeouts)> =
            checks(policy, &mix.packets)
                .iter()
                .map(|c| {
                    let (p, ts) = &mix.packets[c.pkt];
                    let t = policy.eni_timeouts[c.eni.get()];
                    (conn_key(policy, c, p), c.dir, p.tcp_flags, ts.0, t)
                })
                .collect();
        let mut g = c.benchmark_group("conntrack");
        g.sampling_mode(SamplingMode::Flat);
        bench(
            &mut g,
            &log,
            "conntrack",
            "lookup-then-insert",
            keys.len() as u64,
            n,
            || {
                let mut ct = ConnTable::new();
                for (k, dir, flags, now, t) in &keys {
                    if ct.lookup(k, *dir, *flags, *now, t).is_none() {
                        ct.insert(*k, *dir, *flags, 0, *now, t);
                    }
                }
                ct.len()
            },
        );
        g.finish();
    }
    {
        let mut g = c.benchmark_group("flowlog");
        g.sampling_mode(SamplingMode::Flat);
        // A new aggregator each pass: its maps grow from empty, as in a fresh run.
        bench(
            &mut g,
            &log,
            "flowlog",
            "new/observe+close_all",
            obs.len() as u64,
            n,
            || {
                let mut agg = Aggregator::new(600);
                for (o, ts, seq) in &obs {
                    agg.observe(o, *ts, *seq);
                }
                let mut out = Vec::new();
                agg.close_all(&mut out);
                out.len()
            },
        );
        // One aggregator for every pass: closed windows' maps are reused with their
        // capacity, as in a long run.
        let mut agg = Aggregator::new(600);
        let mut out = Vec::new();
        bench(
            &mut g,
            &log,
            "flowlog",
            "reused/observe+close_all",
            obs.len() as u64,
            n,
            || {
                out.clear();
                for (o, ts, seq) in &obs {
                    agg.observe(o, *ts, *seq);
                }
                agg.close_all(&mut out);
                out.len()
            },
        );
        g.finish();
    }
    {
        let mut g = c.benchmark_group("engine");
        g.sampling_mode(SamplingMode::Flat)
            .sample_size(10)
            .measurement_time(Duration::from_secs(4));
        for (name, policy) in &rulesets {
            bench(&mut g, &log, "engine", name, n, n, || {
                worker(policy, &mix.packets)
            });
        }
        g.finish();
    }
    {
        let scratch = Scratch::new();
        let capture = scratch.0.join("synth.pcap");
        std::fs::write(&capture, &mix.pcap).expect("writing the capture");
        let mut g = c.benchmark_group("pipeline");
        g.sampling_mode(SamplingMode::Flat)
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(6));
        for workers in [1, 2] {
            let cfg = ReplayConfig {
                captures: vec![capture.clone()],
                rulesets: vec![RulesetAt {
                    from: None,
                    vpc: Arc::new(small_vpc.clone()),
                    label: "rulesets/securecart.toml".to_string(),
                }],
                flow_log: Some(scratch.0.join("flows.log")),
                log_format: LogFormat::default_format(),
                interval: 600,
                nodata: true,
                verdicts: None,
                accepted: None,
                rejected: None,
                workers,
                progress: false,
                max_flows: Some(MAX_FLOWS),
                report: false,
            };
            let s = pipeline::run(&cfg, None).expect("replay");
            assert_eq!(s.packets, frames);
            bench(
                &mut g,
                &log,
                "pipeline",
                &format!("securecart/{workers}-worker"),
                frames,
                frames,
                || pipeline::run(&cfg, None).expect("replay").packets,
            );
        }
        g.finish();
    }

    c.final_summary();
    summary(&log);
}
