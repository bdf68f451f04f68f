//! The bodies of the fuzz targets, one public function per target.
//!
//! This file depends on `vpcgate` and `std` only: the fuzz targets call it through the
//! `vpcgate-fuzz` library, and the main crate's test suite includes it with
//! `#[path = "../../fuzz/src/harness.rs"] mod harness;` to replay the seeds and every
//! crash input on stable Rust (`tests/it/fuzz_regressions.rs`).
//!
//! Besides "no panic", each function asserts invariants the documentation promises,
//! so that a wrong answer is a crash too:
//!
//! - [`parse_packet`]: one selector byte picks the link type (see [`link_types`]),
//!   the rest is the frame.
//! - [`capture_read`]: the input is a capture file; it is read twice, once in one piece
//!   and once in small uneven reads with `Interrupted` errors in between, and both reads
//!   must give the same packets and the same error; the number of packets is bounded by
//!   the input's length.
//! - [`load_toml`] / [`load_json`]: UTF-8 text; NUL bytes split it into several files
//!   merged by one [`Loader`]. A VPC that loads is compiled into a [`Policy`].
//! - [`log_format`]: a custom flow-log format; when it parses, it prints itself back
//!   and renders a header and records.
//! - [`engine`]: a little program of packets (built from the addresses of
//!   `rulesets/securecart.toml` or raw frames), time steps, housekeeping, window
//!   closes and ruleset changes, run through an [`Engine`] and an [`Aggregator`].

use std::io::{self, Cursor, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, OnceLock};

use vpcgate::capture::{Block, CaptureReader};
use vpcgate::engine::{Engine, Verdict};
use vpcgate::flowlog::{Aggregator, EniMeta, Field, FlowRecord, LogFormat, LogStatus, Observation};
use vpcgate::load::{load_str, Loader};
use vpcgate::model::{Action, Direction, Vpc};
use vpcgate::policy::Policy;
use vpcgate::wire::packet::{
    link_type_name, linktype, parse, Fragment, Packet, ParseError, Timestamp,
};

// ---------------------------------------------------------------------------------------
// Link types and packets
// ---------------------------------------------------------------------------------------

/// The link types [`vpcgate::wire::packet::parse`] reads.
pub const SUPPORTED_LINK_TYPES: [u32; 10] = [
    linktype::ETHERNET,
    linktype::RAW,
    linktype::LINUX_SLL,
    linktype::LINUX_SLL2,
    linktype::NULL,
    linktype::LOOP,
    linktype::IPV4,
    linktype::IPV6,
    linktype::RAW_ALT1,
    linktype::RAW_ALT2,
];

/// The link types a selector byte chooses from (`byte % len`): the supported ones
/// first, then every other one [`link_type_name`] knows, then `u32::MAX`.
pub fn link_types() -> &'static [u32] {
    static TABLE: OnceLock<Vec<u32>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = SUPPORTED_LINK_TYPES.to_vec();
        let named: Vec<u32> = (0..=1024)
            .filter(|lt| link_type_name(*lt).is_some() && !t.contains(lt))
            .collect();
        t.extend(named);
        t.push(u32::MAX);
        t
    })
}

/// The selector byte of `link_type`, if [`link_types`] lists it.
pub fn link_type_selector(link_type: u32) -> Option<u8> {
    link_types()
        .iter()
        .position(|&lt| lt == link_type)
        .and_then(|i| u8::try_from(i).ok())
}

/// Target `parse_packet`: `[selector, frame...]`.
pub fn parse_packet(data: &[u8]) {
    let Some((&selector, frame)) = data.split_first() else {
        return;
    };
    let table = link_types();
    check_parse(table[usize::from(selector) % table.len()], frame);
}

/// [`parse`] and the invariants of its answer.
pub fn check_parse(link_type: u32, frame: &[u8]) -> Option<Packet> {
    let result = parse(link_type, frame);
    let supported = SUPPORTED_LINK_TYPES.contains(&link_type);
    match result {
        Ok(p) => {
            assert!(supported, "link type {link_type} parsed: {p:?}");
            check_packet(&p);
            Some(p)
        }
        Err(e) => {
            assert!(ParseError::REASONS.contains(&e.reason()), "{e:?}");
            assert_eq!(e.is_not_ip(), e.reason() == "not-ip");
            assert!(!e.to_string().is_empty());
            if supported {
                assert!(
                    !matches!(e, ParseError::UnsupportedLinkType { .. }),
                    "{link_type}: {e:?}"
                );
            } else {
                assert_eq!(e, ParseError::UnsupportedLinkType { link_type });
            }
            None
        }
    }
}

/// What the fields of a [`Packet`] promise.
fn check_packet(p: &Packet) {
    assert_eq!(p.src.is_ipv4(), p.dst.is_ipv4(), "mixed families: {p:?}");
    let later = !p.ports_known();
    assert_eq!(later, matches!(p.fragment, Fragment::Later { .. }));
    if later || !matches!(p.protocol, 6 | 17) {
        assert_eq!((p.src_port, p.dst_port), (0, 0), "{p:?}");
    }
    if later || p.protocol != 6 {
        assert_eq!(p.tcp_flags, 0, "{p:?}");
    }
    if later || !matches!(p.protocol, 1 | 58) {
        assert_eq!((p.icmp_type, p.icmp_code, p.icmp_id), (0, 0, 0), "{p:?}");
    }
    if p.icmp_id != 0 {
        assert!(matches!(p.icmp_type, 0 | 8 | 128 | 129), "{p:?}");
    }
    let min_len = if p.src.is_ipv4() { 20 } else { 40 };
    assert!(p.ip_len >= min_len, "{p:?}");
}

// ---------------------------------------------------------------------------------------
// Captures
// ---------------------------------------------------------------------------------------

/// Target `capture_read`: the input is a pcap or pcapng file.
pub fn capture_read(data: &[u8]) {
    let whole = read_capture(data, Box::new(Cursor::new(data.to_vec())));
    let trickled = read_capture(data, Box::new(Trickle::new(data)));
    assert_eq!(
        whole, trickled,
        "reading in small pieces changed the result"
    );
    // The pipeline's path: whole records in blocks of at most `max`.
    for (max, reader) in [
        (
            1,
            Box::new(Cursor::new(data.to_vec())) as Box<dyn Read + Send>,
        ),
        (7, Box::new(Trickle::new(data))),
        (4096, Box::new(Cursor::new(data.to_vec()))),
    ] {
        let blocks = read_capture_blocks(data, reader, max);
        assert_eq!(
            whole, blocks,
            "reading in blocks of {max} changed the result"
        );
    }
}

/// A reader that returns 1 to 4096 bytes per call and sometimes `Interrupted`.
struct Trickle {
    data: Vec<u8>,
    pos: usize,
    calls: usize,
}

impl Trickle {
    fn new(data: &[u8]) -> Trickle {
        Trickle {
            data: data.to_vec(),
            pos: 0,
            calls: 0,
        }
    }
}

impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        const STEPS: [usize; 7] = [1, 7, 3, 4096, 13, 1000, 64];
        self.calls += 1;
        if self.calls.is_multiple_of(5) {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "interrupted"));
        }
        let step = STEPS[self.calls % STEPS.len()];
        let n = step.min(buf.len()).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// One packet as read: timestamp, link type, bytes, original length.
type ReadPacket = (u64, u32, Vec<u8>, u32);
/// Every packet, and the error that ended the capture (offset, message), if any.
type ReadAll = (Vec<ReadPacket>, Option<(u64, String)>);

/// Reads a whole capture; returns every packet and the error that ended it, if any.
fn read_capture(data: &[u8], reader: Box<dyn Read + Send>) -> ReadAll {
    let mut packets = Vec::new();
    let mut reader = match CaptureReader::from_reader("fuzz", reader) {
        Ok(r) => r,
        Err(e) => return (packets, Some((e.offset, e.to_string()))),
    };
    // Every record or block is at least 12 bytes long: a bound on the packets, so that
    // a reader that stops consuming input shows up as a crash rather than a hang.
    let bound = data.len() / 12 + 1;
    let mut last_offset = reader.bytes_read();
    let error = loop {
        match reader.next_packet() {
            Ok(Some(raw)) => {
                packets.push((raw.ts.0, raw.link_type, raw.data.to_vec(), raw.orig_len));
                check_parse(raw.link_type, raw.data);
                let offset = reader.bytes_read();
                assert!(offset > last_offset, "a packet consumed no input");
                assert!(offset <= data.len() as u64, "read beyond the input");
                last_offset = offset;
                assert!(
                    packets.len() <= bound,
                    "more packets than the input can hold"
                );
            }
            Ok(None) => break None,
            Err(e) => break Some((e.offset, e.to_string())),
        }
    };
    // After the end or an error, the reader stays at the end.
    assert!(matches!(reader.next_packet(), Ok(None)));
    (packets, error)
}

/// Reads a whole capture with `CaptureReader::read_block`, `max` records at a time.
fn read_capture_blocks(data: &[u8], reader: Box<dyn Read + Send>, max: usize) -> ReadAll {
    let mut packets = Vec::new();
    let mut reader = match CaptureReader::from_reader("fuzz", reader) {
        Ok(r) => r,
        Err(e) => return (packets, Some((e.offset, e.to_string()))),
    };
    let mut block = Block::default();
    let bound = data.len() / 12 + 2;
    let mut calls = 0;
    let error = loop {
        calls += 1;
        assert!(calls <= bound, "read_block does not come to an end");
        match reader.read_block(&mut block, max) {
            Ok(()) if block.records.is_empty() => break None,
            Ok(()) => {
                assert!(
                    block.records.len() <= max,
                    "a block of more than {max} records"
                );
                for (i, r) in block.records.iter().enumerate() {
                    packets.push((r.ts.0, r.link_type, block.frame(i).to_vec(), r.orig_len));
                }
            }
            Err(e) => break Some((e.offset, e.to_string())),
        }
    };
    // After the end or an error, no more records.
    assert!(matches!(reader.read_block(&mut block, max), Ok(())));
    assert!(block.records.is_empty());
    (packets, error)
}

// ---------------------------------------------------------------------------------------
// Rulesets
// ---------------------------------------------------------------------------------------

/// Target `load_toml`.
pub fn load_toml(data: &[u8]) {
    load_text(data, "toml");
}

/// Target `load_json`.
pub fn load_json(data: &[u8]) {
    load_text(data, "json");
}

/// Loads UTF-8 text as one file, or as several files (split at NUL bytes) merged by a
/// [`Loader`]; a VPC that loads is compiled.
fn load_text(data: &[u8], ext: &str) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let result = if text.contains('\0') {
        let mut loader = Loader::new();
        for (i, part) in text.split('\0').enumerate() {
            // The third part has no extension: its first character decides the format.
            let name = match i {
                2 => "fuzz".to_string(),
                _ => format!("fuzz{i}.{ext}"),
            };
            loader.add_str(&name, part);
        }
        loader.finish()
    } else {
        load_str(&format!("fuzz.{ext}"), text)
    };
    match result {
        Ok(vpc) => exercise_vpc(vpc),
        Err(errors) => {
            assert!(!errors.0.is_empty(), "an error without errors");
            assert!(!errors.to_string().is_empty());
        }
    }
}

/// Compiles a loaded VPC and sends packets between its own addresses (and two outside
/// ones) through an engine of it, both ways, with a jump past every timeout.
fn exercise_vpc(vpc: Vpc) {
    let (ids, metas) = eni_table(&[&vpc]);
    assert_eq!(ids.len(), metas.len());
    let outside4: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
    let outside6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
    let mut v4 = vec![outside4];
    let mut v6 = vec![outside6];
    for e in &vpc.network_interfaces {
        v4.extend(e.private_ipv4.first().map(|&a| IpAddr::V4(a)));
        v4.extend(e.public_ipv4.map(IpAddr::V4));
        v6.extend(e.ipv6.first().map(|&a| IpAddr::V6(a)));
    }
    v4.truncate(6);
    v6.truncate(4);
    let policy = Arc::new(Policy::compile(Arc::new(vpc), &ids));
    for r in policy.all_nacl_rules() {
        let _ = policy.describe_nacl_rule(r);
    }
    for r in policy.all_sg_rules() {
        let _ = policy.describe_sg_rule(r);
    }
    let mut engine = Engine::new(policy);
    let mut agg = Aggs::new(60);
    let mut records = Vec::new();
    let mut seq = 0;
    let mut now: u64 = 1_700_000_000 * 1_000_000_000;
    let enis = ids.len() as u32;
    let format = &world().format;
    for round in 0..2 {
        for addrs in [&v4, &v6] {
            for &a in addrs.iter() {
                for &b in addrs.iter() {
                    if a == b {
                        continue;
                    }
                    let icmp = if a.is_ipv4() { (1, 8) } else { (58, 128) };
                    for (protocol, sport, dport, flags, icmp_type) in [
                        (6, 40000, 443, 0x02, 0),
                        (6, 443, 40000, 0x12, 0),
                        (6, 40000, 22, 0x11, 0),
                        (17, 40000, 53, 0, 0),
                        (icmp.0, 0, 0, 0, icmp.1),
                    ] {
                        let p = Packet {
                            src: a,
                            dst: b,
                            protocol,
                            src_port: sport,
                            dst_port: dport,
                            icmp_type,
                            icmp_code: 0,
                            icmp_id: if icmp_type != 0 { 7 } else { 0 },
                            tcp_flags: flags,
                            ip_len: 60,
                            fragment: if round == 1 && protocol == 17 {
                                Fragment::First { id: 5 }
                            } else {
                                Fragment::None
                            },
                        };
                        feed(&mut engine, &mut agg, &p, now, &mut seq, enis);
                        now += 1_000_000;
                    }
                }
            }
        }
        // Past every default timeout: housekeeping frees, windows close.
        now += 6 * 86_400 * 1_000_000_000;
        engine.housekeeping(Timestamp(now));
        agg.close_before(Timestamp(now).secs(), &mut records);
        render(&metas, format, &mut records, 60);
    }
    agg.close_all(&mut records);
    render(&metas, format, &mut records, 60);
}

// ---------------------------------------------------------------------------------------
// Flow-log formats
// ---------------------------------------------------------------------------------------

/// Target `log_format`.
pub fn log_format(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match LogFormat::parse(text) {
        Ok(format) => {
            // The canonical text parses back to the same format.
            assert_eq!(LogFormat::parse(&format.to_string()), Ok(format.clone()));
            assert!(format.version() >= 2);
            let header = format.header();
            assert_eq!(header.split(' ').count(), format.fields().len());
            let metas = [
                EniMeta::default(),
                EniMeta {
                    interface_id: "eni-0fuzz".into(),
                    account_id: "123456789012".into(),
                    vpc_id: "vpc-0fuzz".into(),
                    subnet_id: "subnet-0fuzz".into(),
                    instance_id: Some("i-0fuzz".into()),
                    region: "us-east-1".into(),
                    az_id: "use1-az4".into(),
                },
            ];
            let skipped = FlowRecord {
                log_status: LogStatus::SkipData,
                ..ok_record()
            };
            for rec in [
                FlowRecord::nodata(vpcgate::model::EniNum(0), 0, 600),
                ok_record(),
                skipped,
            ] {
                for meta in &metas {
                    let mut out = Vec::new();
                    format.write_record(&rec, meta, &mut out);
                    let line = std::str::from_utf8(&out).expect("a record is UTF-8");
                    assert!(line.ends_with('\n'));
                    assert_eq!(
                        line.trim_end_matches('\n').split(' ').count(),
                        format.fields().len(),
                        "{line:?}"
                    );
                }
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

/// A record of traffic with every field set.
fn ok_record() -> FlowRecord {
    let a: IpAddr = "2600:1f18:4a3:6d01::10".parse().expect("an address");
    let b: IpAddr = "2001:db8::1".parse().expect("an address");
    FlowRecord {
        window_start: 1_700_000_400,
        eni: vpcgate::model::EniNum(1),
        first_seq: 7,
        direction: Direction::Egress,
        action: Action::Reject,
        srcaddr: a,
        dstaddr: b,
        pkt_srcaddr: a,
        pkt_dstaddr: b,
        srcport: 443,
        dstport: 50000,
        protocol: 6,
        packets: 3,
        bytes: 180,
        start: 1_700_000_401,
        end: 1_700_000_999,
        tcp_flags: 19,
        traffic_path: Some(8),
        log_status: LogStatus::Ok,
    }
}

// ---------------------------------------------------------------------------------------
// The engine
// ---------------------------------------------------------------------------------------

/// The stable ENI numbering of a run and each ENI's flow-log metadata: the
/// pipeline's own table.
pub fn eni_table(vpcs: &[&Vpc]) -> (Vec<String>, Vec<EniMeta>) {
    vpcgate::pipeline::eni_table(vpcs)
}

/// The fixed world of the `engine` target: four rulesets of the same ENIs and the
/// addresses packets are built from.
pub struct World {
    pub policies: Vec<Arc<Policy>>,
    pub eni_ids: Vec<String>,
    pub metas: Vec<EniMeta>,
    pub v4: Vec<Ipv4Addr>,
    pub v6: Vec<Ipv6Addr>,
    /// Every field, for rendering records.
    pub format: LogFormat,
}

const SECURECART: &str = include_str!("../../rulesets/securecart.toml");
const AWS_JSON: [(&str, &str); 7] = [
    (
        "describe-managed-prefix-lists.json",
        include_str!("../../rulesets/securecart-aws/describe-managed-prefix-lists.json"),
    ),
    (
        "describe-network-acls.json",
        include_str!("../../rulesets/securecart-aws/describe-network-acls.json"),
    ),
    (
        "describe-network-interfaces.json",
        include_str!("../../rulesets/securecart-aws/describe-network-interfaces.json"),
    ),
    (
        "describe-security-groups.json",
        include_str!("../../rulesets/securecart-aws/describe-security-groups.json"),
    ),
    (
        "describe-subnets.json",
        include_str!("../../rulesets/securecart-aws/describe-subnets.json"),
    ),
    (
        "describe-vpcs.json",
        include_str!("../../rulesets/securecart-aws/describe-vpcs.json"),
    ),
    (
        "get-managed-prefix-list-entries.pl-0a1b2c3d4e5f60001.json",
        include_str!(
            "../../rulesets/securecart-aws/get-managed-prefix-list-entries.pl-0a1b2c3d4e5f60001.json"
        ),
    ),
];

/// The engine target's rulesets: securecart.toml; the same with a tracked-connection
/// allowance of 3 on the bastion and 2 on an app task (to reach `conntrack-full`); the
/// AWS JSON export of the same VPC; and an open variant (the app subnets on the
/// allow-all NACL, UDP and GRE out of the app tasks, the bastion open both ways: UDP,
/// "other" and untracked connections).
pub fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let base = load_str("securecart.toml", SECURECART).expect("securecart.toml loads");
        let limited_text = [
            (
                "instance_id = \"i-0a1b2c3d4e5f60001\"",
                "instance_id = \"i-0a1b2c3d4e5f60001\"\nmax_tracked_connections = 3",
            ),
            (
                "private_ips = [\"10.0.11.11\"]",
                "private_ips = [\"10.0.11.11\"]\nmax_tracked_connections = 2",
            ),
        ]
        .iter()
        .fold(SECURECART.to_string(), |t, (from, to)| edit(&t, from, to));
        let limited = load_str("securecart-limited.toml", &limited_text)
            .expect("the limited securecart loads");
        let open_text = [
            (
                "network_acl = \"acl-0a1b2c3d4e5f60020\"",
                "network_acl = \"acl-0a1b2c3d4e5f60001\"",
            ),
            (
                "description = \"Payment and shipping APIs\" },",
                "description = \"Payment and shipping APIs\" },\n\
                 { protocol = \"udp\", ports = \"53\", cidr = \"0.0.0.0/0\" },\n\
                 { protocol = \"47\", cidr = \"0.0.0.0/0\" },",
            ),
            (
                "description = \"SSH from the office\" },",
                "description = \"SSH from the office\" },\n\
                 { protocol = \"-1\", cidr = \"0.0.0.0/0\" },\n\
                 { protocol = \"udp\", ports = \"1024-65535\", cidr = \"::/0\" },",
            ),
            (
                "description = \"SSH to the app tasks\" },",
                "description = \"SSH to the app tasks\" },\n\
                 { protocol = \"-1\", cidr = \"0.0.0.0/0\" },\n\
                 { protocol = \"-1\", cidr = \"::/0\" },",
            ),
        ]
        .iter()
        .fold(SECURECART.to_string(), |t, (from, to)| edit(&t, from, to));
        let open = load_str("securecart-open.toml", &open_text).expect("the open securecart loads");
        let mut loader = Loader::new();
        for (name, text) in AWS_JSON {
            loader.add_str(name, text);
        }
        let aws = loader.finish().expect("securecart-aws loads");
        let vpcs: [&Vpc; 4] = [&base, &limited, &aws, &open];
        let (eni_ids, metas) = eni_table(&vpcs);

        let mut v4: Vec<Ipv4Addr> = Vec::new();
        let mut v6: Vec<Ipv6Addr> = Vec::new();
        for vpc in vpcs {
            for e in &vpc.network_interfaces {
                v4.extend(&e.private_ipv4);
                v4.extend(e.public_ipv4);
                v6.extend(&e.ipv6);
            }
        }
        // Outside the VPC, allowed and denied ranges, exempt services, the subnet
        // routers, in-VPC addresses of no ENI, odd ones.
        for a in [
            "198.51.100.7",
            "192.0.2.201",
            "93.184.216.34",
            "10.0.0.2",
            "10.0.1.1",
            "10.0.1.99",
            "10.0.11.77",
            "169.254.169.253",
            "169.254.169.254",
            "169.254.169.123",
            "0.0.0.0",
            "255.255.255.255",
        ] {
            v4.push(a.parse().expect("an IPv4 address"));
        }
        for a in [
            "2001:db8::1",
            "2600:1f18:4a3:6d01::99",
            "2600:1f18:4a3:6d00::1",
            "fd00:ec2::253",
            "fd00:ec2::254",
            "fd00:ec2::123",
            "::",
            "ff02::1",
        ] {
            v6.push(a.parse().expect("an IPv6 address"));
        }
        dedup_keep_order(&mut v4);
        dedup_keep_order(&mut v6);

        let policies = vpcs
            .iter()
            .map(|v| Arc::new(Policy::compile(Arc::new((*v).clone()), &eni_ids)))
            .collect();
        let all: Vec<String> = Field::ALL.iter().map(|f| format!("${{{f}}}")).collect();
        let format = LogFormat::parse(&all.join(" ")).expect("every field is a format");
        World {
            policies,
            eni_ids,
            metas,
            v4,
            v6,
            format,
        }
    })
}

/// `text` with `from` replaced by `to`; `from` must be there (securecart.toml changed?).
fn edit(text: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "securecart.toml no longer contains {from:?}"
    );
    text.replace(from, to)
}

fn dedup_keep_order<T: PartialEq + Copy>(v: &mut Vec<T>) {
    let mut out: Vec<T> = Vec::with_capacity(v.len());
    for &x in v.iter() {
        if !out.contains(&x) {
            out.push(x);
        }
    }
    *v = out;
}

/// Reads the fuzz input front to back; zeros once it is used up.
pub struct Bytes<'a> {
    data: &'a [u8],
}

impl<'a> Bytes<'a> {
    pub fn new(data: &'a [u8]) -> Bytes<'a> {
        Bytes { data }
    }
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }
    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    pub fn u64(&mut self) -> u64 {
        u64::from(self.u32()) << 32 | u64::from(self.u32())
    }
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.data.split_at(n.min(self.data.len()));
        self.data = b;
        a
    }
}

/// Ports the rulesets name, and their edges.
pub const PORTS: [u16; 16] = [
    443, 80, 22, 8080, 5432, 53, 123, 67, 68, 1023, 1024, 32768, 61000, 65535, 0, 50000,
];

/// Ops of the engine program, by `op % 16`.
const OP_RAW: u8 = 0;
const OP_HOUSEKEEPING: u8 = 1;
const OP_CLOSE: u8 = 2;
const OP_RULESET: u8 = 3;
const OP_JUMP: u8 = 4;

/// The most ops one input runs (a few thousand packets at most).
const MAX_OPS: usize = 4096;

/// Target `engine`: a program of ops (see `fuzz/README.md` for the encoding).
pub fn engine(data: &[u8]) {
    let w = world();
    let mut input = Bytes::new(data);
    let mut generation = 0;
    let enis = w.eni_ids.len() as u32;
    let mut engine = Engine::new(w.policies[usize::from(input.u8()) % w.policies.len()].clone());
    let interval = [600, 60, 1, 3600][usize::from(input.u8() % 4)];
    let mut agg = Aggs::new(interval);
    let mut now: u64 = match input.u8() % 4 {
        0 => 1_700_000_000 * 1_000_000_000,
        1 => 0,
        2 => u64::MAX - 3_600 * 1_000_000_000,
        _ => input.u64(),
    };
    let mut seq = 0u64;
    let mut records = Vec::new();
    let mut last: Option<Spec> = None;
    let mut ops = 0;
    while !input.is_empty() && ops < MAX_OPS {
        ops += 1;
        let op = input.u8();
        match op % 16 {
            OP_RAW => {
                let selector = input.u8();
                let len = usize::from(input.u16() % 2048);
                let frame = input.take(len);
                let table = link_types();
                let lt = table[usize::from(selector) % table.len()];
                if let Some(p) = check_parse(lt, frame) {
                    feed(&mut engine, &mut agg, &p, now, &mut seq, enis);
                }
            }
            OP_HOUSEKEEPING => engine.housekeeping(Timestamp(now)),
            OP_CLOSE => {
                agg.close_before(Timestamp(now).secs(), &mut records);
                render(&w.metas, &w.format, &mut records, u64::from(interval));
            }
            OP_RULESET => {
                generation += 1;
                let policy = w.policies[usize::from(input.u8()) % w.policies.len()].clone();
                engine.set_policy(policy, generation);
            }
            OP_JUMP => {
                // Seconds to days: past every conntrack timeout and window.
                let secs = u64::from(input.u16()) * [1, 60, 3600, 86_400][usize::from(op >> 6)];
                now = now.saturating_add(secs.saturating_mul(1_000_000_000));
            }
            _ => {
                // A small step of capture time: 0 to 2.55 s.
                now = now.saturating_add(u64::from(input.u8()) * 10_000_000);
                let spec = Spec::read(&mut input, w, last.as_ref(), op);
                let frame = spec.frame();
                let lt = if spec.ethernet {
                    linktype::ETHERNET
                } else {
                    linktype::RAW
                };
                let p = match check_parse(lt, &frame) {
                    Some(p) => p,
                    None => panic!("a built frame does not parse: {spec:?} {frame:02x?}"),
                };
                spec.check(&p);
                feed(&mut engine, &mut agg, &p, now, &mut seq, enis);
                last = Some(spec);
            }
        }
    }
    engine.housekeeping(Timestamp(now));
    let _ = engine.stats();
    let _ = engine.tracked();
    agg.close_all(&mut records);
    render(&w.metas, &w.format, &mut records, u64::from(interval));
    assert_eq!(agg.open_records(), 0);
}

/// Two aggregators fed the same observations: one through the engine's hints, as the
/// pipeline does, one without; their records must be the same.
struct Aggs {
    hinted: Aggregator,
    plain: Aggregator,
}

impl Aggs {
    fn new(interval: u32) -> Aggs {
        Aggs {
            hinted: Aggregator::new(interval),
            plain: Aggregator::new(interval),
        }
    }

    fn close_before(&mut self, secs: u64, out: &mut Vec<FlowRecord>) {
        let mut plain = Vec::new();
        self.plain.close_before(secs, &mut plain);
        let from = out.len();
        self.hinted.close_before(secs, out);
        assert_eq!(out[from..], plain[..], "hinted and plain records differ");
        assert!(out[from..].is_sorted(), "records out of order");
    }

    fn close_all(&mut self, out: &mut Vec<FlowRecord>) {
        let mut plain = Vec::new();
        self.plain.close_all(&mut plain);
        let from = out.len();
        self.hinted.close_all(out);
        assert_eq!(out[from..], plain[..], "hinted and plain records differ");
        assert!(out[from..].is_sorted(), "records out of order");
    }

    fn open_records(&self) -> usize {
        assert_eq!(self.hinted.open_records(), self.plain.open_records());
        self.hinted.open_records()
    }
}

/// One packet through the engine, its observations into the aggregators. `enis`: how
/// many stable ENI numbers there are.
fn feed(engine: &mut Engine, agg: &mut Aggs, p: &Packet, now: u64, seq: &mut u64, enis: u32) {
    let ts = Timestamp(now);
    let d = engine.process(p, ts);
    let _ = d.reason_text(engine.policy());
    let obs: Vec<&Observation> = d.obs.iter().flatten().collect();
    match d.verdict {
        Verdict::None => assert!(obs.is_empty(), "{d:?}"),
        Verdict::Accept => assert!(obs.iter().all(|o| o.action == Action::Accept), "{d:?}"),
        Verdict::Reject => assert!(obs.iter().any(|o| o.action == Action::Reject), "{d:?}"),
    }
    for o in obs {
        assert!(o.eni.0 < enis, "{o:?}");
        assert_eq!(o.srcaddr.is_ipv4(), o.dstaddr.is_ipv4(), "{o:?}");
        agg.plain.observe(o, ts, *seq);
    }
    for (o, c) in d.obs.iter().zip(d.conn) {
        let Some(o) = o else { continue };
        match c.and_then(|c| engine.flow_log_hint(c, o.direction)) {
            Some(hint) => agg.hinted.observe_hinted(o, ts, *seq, 0, hint),
            None => agg.hinted.observe(o, ts, *seq),
        }
    }
    *seq += 1;
}

/// Renders closed records with every field, checking what a record promises.
fn render(metas: &[EniMeta], format: &LogFormat, records: &mut Vec<FlowRecord>, interval: u64) {
    let mut out = Vec::new();
    for r in records.drain(..) {
        assert!(r.start <= r.end, "{r:?}");
        assert!(r.window_start <= r.start, "{r:?}");
        assert!(r.end < r.window_start + interval, "{r:?}");
        assert_eq!(r.window_start % interval, 0, "{r:?}");
        if r.log_status == LogStatus::Ok {
            assert!(r.packets > 0, "{r:?}");
        }
        format.write_record(&r, &metas[r.eni.get()], &mut out);
    }
}

/// A packet to build, as decoded from the input.
#[derive(Clone, Debug)]
struct Spec {
    src: IpAddr,
    dst: IpAddr,
    protocol: u8,
    src_port: u16,
    dst_port: u16,
    tcp_flags: u8,
    icmp_type: u8,
    icmp_code: u8,
    icmp_id: u16,
    /// 0: none, 1: first fragment, 2: later fragment.
    fragment: u8,
    frag_id: u16,
    payload: u8,
    ethernet: bool,
    vlan: bool,
    options: bool,
}

impl Spec {
    /// Decodes one packet. `op` bits: 0x10 reply to the previous packet (reversed
    /// addresses and ports), 0x20 Ethernet rather than raw IP, 0x40 a VLAN tag (Ethernet),
    /// 0x80 IPv4 options / an IPv6 hop-by-hop header.
    fn read(input: &mut Bytes<'_>, w: &World, last: Option<&Spec>, op: u8) -> Spec {
        let flags = input.u8();
        let v6 = flags & 1 != 0;
        let fragment = match (flags >> 1) & 7 {
            6 => 1,
            7 => 2,
            _ => 0,
        };
        let mut spec = match last {
            Some(l) if op & 0x10 != 0 => Spec {
                src: l.dst,
                dst: l.src,
                src_port: l.dst_port,
                dst_port: l.src_port,
                ..l.clone()
            },
            _ => {
                let (src, dst) = if v6 {
                    let a = |b: u8| IpAddr::V6(w.v6[usize::from(b) % w.v6.len()]);
                    (a(input.u8()), a(input.u8()))
                } else {
                    let a = |b: u8| IpAddr::V4(w.v4[usize::from(b) % w.v4.len()]);
                    (a(input.u8()), a(input.u8()))
                };
                let p = input.u8();
                let protocol = match p % 8 {
                    0..=2 => 6,
                    3 | 4 => 17,
                    5 if v6 => 58,
                    5 => 1,
                    6 if v6 => 1,
                    6 => 58,
                    _ => p,
                };
                let mut port = || {
                    let b = input.u8();
                    if b < 0xe0 {
                        PORTS[usize::from(b) % PORTS.len()]
                    } else {
                        input.u16()
                    }
                };
                let (src_port, dst_port) = (port(), port());
                Spec {
                    src,
                    dst,
                    protocol,
                    src_port,
                    dst_port,
                    tcp_flags: 0,
                    icmp_type: 0,
                    icmp_code: 0,
                    icmp_id: 0,
                    fragment: 0,
                    frag_id: 0,
                    payload: 0,
                    ethernet: false,
                    vlan: false,
                    options: false,
                }
            }
        };
        match spec.protocol {
            6 => spec.tcp_flags = input.u8(),
            1 | 58 => {
                spec.icmp_type = input.u8();
                spec.icmp_code = input.u8() % 8;
                spec.icmp_id = u16::from(input.u8());
            }
            _ => {}
        }
        spec.fragment = fragment;
        if fragment != 0 {
            spec.frag_id = u16::from(input.u8());
        }
        spec.payload = input.u8();
        spec.ethernet = op & 0x20 != 0;
        spec.vlan = op & 0x40 != 0;
        spec.options = op & 0x80 != 0;
        spec
    }

    /// The frame: Ethernet (with a VLAN tag if asked) or raw IP.
    fn frame(&self) -> Vec<u8> {
        let mut f = Vec::new();
        if self.ethernet {
            f.extend_from_slice(&[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2]);
            if self.vlan {
                f.extend_from_slice(&[0x81, 0x00, 0x00, 0x2a]);
            }
            f.extend_from_slice(if self.src.is_ipv4() {
                &[0x08, 0x00]
            } else {
                &[0x86, 0xdd]
            });
        }
        // Upper-layer header (absent in a later fragment), then payload.
        let mut l4 = Vec::new();
        if self.fragment != 2 {
            match self.protocol {
                6 => {
                    l4.extend_from_slice(&self.src_port.to_be_bytes());
                    l4.extend_from_slice(&self.dst_port.to_be_bytes());
                    l4.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, self.tcp_flags]);
                    l4.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
                }
                17 => {
                    l4.extend_from_slice(&self.src_port.to_be_bytes());
                    l4.extend_from_slice(&self.dst_port.to_be_bytes());
                    l4.extend_from_slice(&(8 + u16::from(self.payload)).to_be_bytes());
                    l4.extend_from_slice(&[0, 0]);
                }
                1 | 58 => {
                    l4.extend_from_slice(&[self.icmp_type, self.icmp_code, 0, 0]);
                    l4.extend_from_slice(&self.icmp_id.to_be_bytes());
                    l4.extend_from_slice(&[0, 1]);
                }
                _ => {}
            }
        }
        l4.resize(l4.len() + usize::from(self.payload), 0xa5);
        match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let ihl: u8 = if self.options { 6 } else { 5 };
                let total = u16::from(ihl) * 4 + l4.len() as u16;
                let flags_offset: u16 = match self.fragment {
                    1 => 0x2000,
                    2 => 0x2000 | 185,
                    _ => 0x4000,
                };
                f.extend_from_slice(&[0x40 | ihl, 0]);
                f.extend_from_slice(&total.to_be_bytes());
                f.extend_from_slice(&self.frag_id.to_be_bytes());
                f.extend_from_slice(&flags_offset.to_be_bytes());
                f.extend_from_slice(&[64, self.protocol, 0, 0]);
                f.extend_from_slice(&s.octets());
                f.extend_from_slice(&d.octets());
                if self.options {
                    f.extend_from_slice(&[1, 1, 1, 0]); // NOP NOP NOP EOL
                }
            }
            (s, d) => {
                let (IpAddr::V6(s), IpAddr::V6(d)) = (s, d) else {
                    unreachable!("both addresses of a spec are of one family")
                };
                let mut ext = Vec::new();
                let mut next = self.protocol;
                if self.fragment != 0 {
                    let offset_more: u16 = if self.fragment == 1 { 1 } else { 185 << 3 };
                    let mut h = vec![next, 0];
                    h.extend_from_slice(&offset_more.to_be_bytes());
                    h.extend_from_slice(&u32::from(self.frag_id).to_be_bytes());
                    ext = h;
                    next = 44;
                }
                if self.options {
                    let mut h = vec![next, 0, 1, 4, 0, 0, 0, 0]; // PadN
                    h.extend_from_slice(&ext);
                    ext = h;
                    next = 0;
                }
                let payload_length = (ext.len() + l4.len()) as u16;
                f.extend_from_slice(&[0x60, 0, 0, 0]);
                f.extend_from_slice(&payload_length.to_be_bytes());
                f.extend_from_slice(&[next, 64]);
                f.extend_from_slice(&s.octets());
                f.extend_from_slice(&d.octets());
                f.extend_from_slice(&ext);
            }
        }
        f.extend_from_slice(&l4);
        f
    }

    /// The parser read back what was built.
    fn check(&self, p: &Packet) {
        assert_eq!(
            (p.src, p.dst, p.protocol),
            (self.src, self.dst, self.protocol)
        );
        let fragment = match p.fragment {
            Fragment::None => 0,
            Fragment::First { id } => {
                assert_eq!(id, u32::from(self.frag_id));
                1
            }
            Fragment::Later { id } => {
                assert_eq!(id, u32::from(self.frag_id));
                2
            }
        };
        assert_eq!(fragment, self.fragment, "{p:?}");
        if self.fragment != 2 {
            match self.protocol {
                6 | 17 => {
                    assert_eq!((p.src_port, p.dst_port), (self.src_port, self.dst_port));
                }
                1 | 58 => assert_eq!((p.icmp_type, p.icmp_code), (self.icmp_type, self.icmp_code)),
                _ => {}
            }
            if self.protocol == 6 {
                assert_eq!(p.tcp_flags, self.tcp_flags);
            }
        }
    }
}
