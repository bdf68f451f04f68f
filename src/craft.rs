//! `vpcgate craft STORY -o OUT`: a short written story compiled into a small capture,
//! for lessons and tests. The same story (and ruleset) gives the same bytes.
//!
//! Frames come from [`crate::synth::Frame`] and [`crate::synth::Timeline`] (so from the
//! crate's one frame builder, [`crate::wire::emit`]): correct lengths and checksums,
//! TCP handshakes with matching sequence and acknowledgement numbers.
//!
//! # The story format (TOML)
//!
//! ```toml
//! start = 1732435200            # required: Unix seconds of "+0s"
//! ephemeral = "32768-60999"     # optional: where client ports are drawn (Linux's range)
//! seed = 1                      # optional: the draw's seed (same seed, same ports)
//!
//! [hosts]                       # optional nicknames
//! customer = "192.0.2.10"                       # an address
//! web = "eni-0c1a55e0000000001"                 # an ENI id or Name (needs --rules)
//! web-public = { host = "web", via = "public" } # the ENI's public IPv4
//!
//! [[connection]]
//! at = "+0s"                    # offset from `start`: "+12s", "+1.5s", "+250ms", "+2m"
//! protocol = "tcp"              # tcp (default) or udp
//! client = "customer"           # a nickname, an ENI id or Name, or an address
//! server = "web"
//! via = "public"                # how the client addresses the server: private
//!                               # (default), public, ipv6
//! port = 80                     # the server's port (required)
//! client_port = 51000           # optional; else drawn from `ephemeral`
//! ephemeral = "1024-65535"      # optional: this connection's range
//! exchanges = [[420, 1460], [380, 900]]  # (request, response) payload sizes; 0: none
//! every = "1s"                  # optional pause between exchanges (default none)
//! end = "fin"                   # tcp: fin (default), rst, open, idle-timeout,
//!                               # no-answer, synack-lost; udp: open (default),
//!                               # idle-timeout
//! idle = "121s"                 # idle-timeout: the quiet time before the late packet
//! late = 100                    # idle-timeout: the late packet's payload size
//! retries = 2                   # no-answer, synack-lost: resent, one second apart
//!
//! [[ping]]
//! at = "+5s"
//! from = "customer"
//! to = "web"
//! via = "public"                # as for a connection's server
//! count = 4                     # default 4
//! interval = "1s"               # default 1s
//! id = 42                       # ICMP id; default drawn
//! size = 56                     # ICMP data bytes (default 56: 84 IP bytes)
//! replies = true                # default true
//!
//! [[rules_change]]              # a ruleset change: not in the pcap; craft prints the
//! at = "+30s"                   # `--rules-at TIME=PATH` argument for `replay`
//! rules = "after.toml"          # optional: the PATH printed (else `AFTER.toml`)
//! note = "the inbound rule is removed"
//! ```
//!
//! A TCP connection is a handshake (SYN, SYN-ACK, ACK), then each exchange (the
//! client's segment, then the server's), then its end: `fin` (FIN from the client,
//! FIN from the server, the last ACKs), `rst` (the client resets), `open` (nothing),
//! `idle-timeout` (the connection goes quiet for `idle`, default 432001 s for TCP, one
//! second past AWS's established timeout, and 31 s for UDP, then the server sends one
//! more segment or datagram of `late` bytes: a late reply), `no-answer` (only the
//! client's SYN, resent `retries` times a second apart; `exchanges` must be empty),
//! `synack-lost` (the server answers, but its SYN-ACK never reaches the client, which
//! sends its SYN again: SYN and SYN-ACK, `retries` more times a second apart; no
//! exchanges).
//! A UDP connection is one datagram each way per exchange. Frames of one conversation
//! are 1 ms apart; conversations may overlap; the capture is sorted by time (ties keep
//! the story's order).
//!
//! Hosts resolve in this order: an IPv4 or IPv6 address; a `[hosts]` nickname; an ENI
//! of the ruleset given with `--rules`, by id or by its `Name` tag (the `TagSet` of
//! `describe-network-interfaces` JSON). An ENI stands for its primary private IPv4, or
//! its public IPv4 (`via = "public"`) or first IPv6 (`via = "ipv6"`). Both ends of a
//! conversation must be of one family.
//!
//! Errors name the story's file, line, column and field, like the ruleset loader's.

use crate::load::tree::{self, Ctx, Entry, Node, Obj, Syntax, Val};
use crate::model::{RulesetError, RulesetErrors, Vpc};
use crate::synth::{Frame, Timeline};
use crate::wire::packet::tcp_flags;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

const TOP: &[&str] = &[
    "start",
    "ephemeral",
    "seed",
    "hosts",
    "connection",
    "ping",
    "rules_change",
];
const CONNECTION: &[&str] = &[
    "at",
    "protocol",
    "client",
    "server",
    "via",
    "port",
    "client_port",
    "ephemeral",
    "exchanges",
    "every",
    "end",
    "idle",
    "late",
    "retries",
];
const PING: &[&str] = &[
    "at", "from", "to", "via", "count", "interval", "id", "size", "replies",
];
const RULES_CHANGE: &[&str] = &["at", "rules", "note"];
const HOST: &[&str] = &["host", "via"];

/// The Linux default ephemeral port range (`net.ipv4.ip_local_port_range`).
pub const DEFAULT_EPHEMERAL: (u16, u16) = (32768, 60999);

/// A ruleset change the story marks: replay it with `--rules-at`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RulesChange {
    /// Offset from `start`, milliseconds.
    pub offset_ms: u64,
    /// Capture time, Unix milliseconds.
    pub at_ms: u64,
    pub rules: Option<String>,
    pub note: String,
}

impl RulesChange {
    /// The capture time as `replay --rules-at` takes it: Unix seconds, fractions only
    /// when needed.
    pub fn time_arg(&self) -> String {
        fmt_ms(self.at_ms)
    }

    /// `--rules-at TIME=PATH`.
    pub fn argument(&self) -> String {
        format!(
            "--rules-at {}={}",
            self.time_arg(),
            self.rules.as_deref().unwrap_or("AFTER.toml")
        )
    }
}

/// What a story compiles to.
#[derive(Debug)]
pub struct Crafted {
    pub timeline: Timeline,
    pub changes: Vec<RulesChange>,
    pub connections: usize,
    pub pings: usize,
}

/// Unix milliseconds as seconds with the fraction only when there is one.
fn fmt_ms(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{}", ms / 1000)
    } else {
        format!("{}.{:03}", ms / 1000, ms % 1000)
            .trim_end_matches('0')
            .to_string()
    }
}

/// Offsets as a person wrote them back: `+30s`, `+1.5s`.
pub fn fmt_offset(ms: u64) -> String {
    format!("+{}s", fmt_ms(ms))
}

/// ENI names (`Name` tags) found in the AWS JSON among `paths` (files or folders,
/// as `--rules` takes them): (name, ENI id), in file order. The ruleset TOML has no
/// ENI names; a story names such ENIs in its `[hosts]` table.
pub fn eni_names(paths: &[PathBuf]) -> Vec<(String, String)> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            if let Ok(rd) = std::fs::read_dir(p) {
                let mut v: Vec<PathBuf> = rd
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|f| f.extension().is_some_and(|e| e == "json"))
                    .collect();
                v.sort();
                files.extend(v);
            }
        } else if p.extension().is_some_and(|e| e == "json") {
            files.push(p.clone());
        }
    }
    let mut out = Vec::new();
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(text.trim_start_matches('\u{feff}'))
        else {
            continue;
        };
        let enis = v["NetworkInterfaces"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for e in enis {
            let Some(id) = e["NetworkInterfaceId"].as_str() else {
                continue;
            };
            let tags = e["TagSet"].as_array().cloned().unwrap_or_default();
            for t in tags {
                if t["Key"] == "Name" {
                    if let Some(n) = t["Value"].as_str() {
                        out.push((n.to_string(), id.to_string()));
                    }
                }
            }
        }
    }
    out
}

/// Where the story's ENIs are looked up.
#[derive(Default)]
pub struct Resolver<'v> {
    pub vpc: Option<&'v Vpc>,
    /// (Name tag, ENI id).
    pub names: Vec<(String, String)>,
}

/// A small deterministic generator (SplitMix64) for client ports, ICMP ids and ISNs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn range(&mut self, lo: u16, hi: u16) -> u16 {
        lo + (self.next() % (u64::from(hi - lo) + 1)) as u16
    }
}

/// How a host was written, with the node to point errors at.
struct HostDef<'n> {
    target: &'n str,
    via: Option<(&'n str, &'n Node)>,
    node: &'n Node,
}

struct Reader<'a, 'v, 'n> {
    ctx: Ctx<'a>,
    res: &'a Resolver<'v>,
    hosts: BTreeMap<String, HostDef<'n>>,
}

/// Parses a duration: `12s`, `1.5s`, `250ms`, `2m`, `1h`; milliseconds.
fn parse_duration(s: &str) -> Option<u64> {
    let (num, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => s.split_at(i),
        None => return None,
    };
    let per: u64 = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    let (whole, frac) = num.split_once('.').unwrap_or((num, ""));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || whole.len() > 12
    {
        return None;
    }
    let whole: u64 = whole.parse().ok()?;
    let mut ms = whole.checked_mul(per)?;
    // The fraction, in units of `per`, to whole milliseconds.
    let mut scale = per;
    for b in frac.bytes() {
        if !scale.is_multiple_of(10) {
            // Finer than a millisecond.
            if b != b'0' {
                return None;
            }
            continue;
        }
        scale /= 10;
        ms += u64::from(b - b'0') * scale;
    }
    // At most ten years.
    (ms <= 10 * 366 * 86_400_000).then_some(ms)
}

fn parse_range(s: &str) -> Option<(u16, u16)> {
    let (a, b) = s.split_once('-')?;
    let (a, b): (u16, u16) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a >= 1 && a <= b).then_some((a, b))
}

impl<'a, 'v, 'n> Reader<'a, 'v, 'n> {
    fn offset(&mut self, o: &Obj<'n>) -> Option<u64> {
        let (s, n) = o.req_str(&mut self.ctx, "at")?;
        match s.strip_prefix('+').and_then(parse_duration) {
            Some(ms) => Some(ms),
            None => {
                self.ctx.error(
                    n.pos,
                    o.field("at"),
                    format!(
                        "{s:?} is not an offset from `start`; write \"+12s\", \"+1.5s\", \"+250ms\", \"+2m\" or \"+1h\""
                    ),
                );
                None
            }
        }
    }

    fn duration(&mut self, o: &Obj<'n>, key: &str) -> Option<u64> {
        let (s, n) = o.opt_str(&mut self.ctx, key)?;
        match parse_duration(s) {
            Some(ms) => Some(ms),
            None => {
                self.ctx.error(
                    n.pos,
                    o.field(key),
                    format!("{s:?} is not a duration; write \"12s\", \"1.5s\", \"250ms\", \"2m\" or \"1h\""),
                );
                None
            }
        }
    }

    fn int(&mut self, o: &Obj<'n>, key: &str, what: &str, lo: i64, hi: i64) -> Option<i64> {
        let n = o.opt(key)?;
        self.ctx.as_int_in(n, &o.field(key), what, lo, hi)
    }

    fn range(&mut self, o: &Obj<'n>, key: &str) -> Option<(u16, u16)> {
        let (s, n) = o.opt_str(&mut self.ctx, key)?;
        match parse_range(s) {
            Some(r) => Some(r),
            None => {
                self.ctx.error(
                    n.pos,
                    o.field(key),
                    format!(
                        "{s:?} is not a port range; write \"32768-60999\" (1-65535, low first)"
                    ),
                );
                None
            }
        }
    }

    fn via(&mut self, field: &str, s: &str, n: &Node) -> Option<Via> {
        match s {
            "private" => Some(Via::Private),
            "public" => Some(Via::Public),
            "ipv6" => Some(Via::Ipv6),
            _ => {
                self.ctx.error(
                    n.pos,
                    field,
                    format!("unknown via {s:?}; valid: \"private\", \"public\", \"ipv6\""),
                );
                None
            }
        }
    }

    /// A host reference, as the story wrote it, to an address.
    fn host(&mut self, o: &Obj<'n>, key: &str, via_key: Option<&str>) -> Option<IpAddr> {
        let (s, n) = o.req_str(&mut self.ctx, key)?;
        let field = o.field(key);
        let via = match via_key.and_then(|k| o.opt_str(&mut self.ctx, k).map(|v| (k, v))) {
            Some((k, (v, vn))) => Some(self.via(&o.field(k), v, vn)?),
            None => None,
        };
        self.resolve(s, n, &field, via, 0)
    }

    fn resolve(
        &mut self,
        s: &str,
        n: &Node,
        field: &str,
        via: Option<Via>,
        depth: u8,
    ) -> Option<IpAddr> {
        if let Ok(a) = s.parse::<IpAddr>() {
            if via.is_some_and(|v| v != Via::Private) {
                self.ctx.error(
                    n.pos,
                    field,
                    format!("{s} is an address; `via` chooses among an ENI's addresses"),
                );
                return None;
            }
            return Some(a);
        }
        if depth == 0 {
            if let Some(def) = self.hosts.get(s) {
                let (target, dvia, dnode) = (def.target, def.via, def.node);
                let via = match (via, dvia) {
                    (Some(v), _) => Some(v),
                    (None, Some((v, vn))) => Some(self.via(&format!("hosts.{s}.via"), v, vn)?),
                    (None, None) => None,
                };
                return self.resolve(target, dnode, &format!("hosts.{s}"), via, 1);
            }
        }
        let Some(vpc) = self.res.vpc else {
            let hint = if s.starts_with("eni-") {
                "give the ruleset with --rules to resolve ENI ids"
            } else {
                "not an address nor a [hosts] nickname; give the ruleset with --rules to resolve ENI names"
            };
            self.ctx
                .error(n.pos, field, format!("unknown host {s:?}: {hint}"));
            return None;
        };
        let id = self
            .res
            .names
            .iter()
            .find(|(name, _)| name == s)
            .map(|(_, id)| id.as_str())
            .unwrap_or(s);
        let Some(eni) = vpc.network_interface(id) else {
            let mut known: Vec<&str> = self.hosts.keys().map(|k| k.as_str()).collect();
            known.extend(self.res.names.iter().map(|(n, _)| n.as_str()));
            let hint = if known.is_empty() {
                String::new()
            } else {
                format!("; known names: {}", known.join(", "))
            };
            self.ctx.error(
                n.pos,
                field,
                format!(
                    "unknown host {s:?}: not an address, not a [hosts] nickname, and the ruleset has no ENI with that id or Name{hint}"
                ),
            );
            return None;
        };
        let addr = match via.unwrap_or(Via::Private) {
            Via::Private => eni.primary_ipv4().map(IpAddr::V4),
            Via::Public => eni.public_ipv4.map(IpAddr::V4),
            Via::Ipv6 => eni.ipv6.first().copied().map(IpAddr::V6),
        };
        if addr.is_none() {
            let what = match via.unwrap_or(Via::Private) {
                Via::Private => "no private IPv4",
                Via::Public => "no public IPv4",
                Via::Ipv6 => "no IPv6 address",
            };
            self.ctx
                .error(n.pos, field, format!("{} ({s}) has {what}", eni.id));
        }
        addr
    }

    fn same_family(&mut self, o: &Obj<'n>, a: IpAddr, b: IpAddr, key: &str) -> bool {
        if a.is_ipv4() != b.is_ipv4() {
            let pos = o.get(key).map_or(o.pos, |n| n.pos);
            self.ctx.error(
                pos,
                o.field(key),
                format!("{a} and {b} are of different IP families; use `via = \"ipv6\"` on both ends, or addresses of one family"),
            );
            return false;
        }
        true
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Via {
    Private,
    Public,
    Ipv6,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    Fin,
    Rst,
    Open,
    IdleTimeout,
    NoAnswer,
    SynAckLost,
}

/// One conversation, resolved; emitted after the whole story was read.
enum Item {
    Tcp(TcpItem),
    Udp(UdpItem),
    Ping(PingItem),
}

/// A `[[connection]]` over TCP.
struct TcpItem {
    at: u64,
    client: IpAddr,
    cport: u16,
    server: IpAddr,
    sport: u16,
    exchanges: Vec<(usize, usize)>,
    every: u64,
    end: End,
    idle: u64,
    late: usize,
    retries: u64,
    isn: (u32, u32),
}

/// A `[[connection]]` over UDP.
struct UdpItem {
    at: u64,
    client: IpAddr,
    cport: u16,
    server: IpAddr,
    sport: u16,
    exchanges: Vec<(usize, usize)>,
    every: u64,
    idle: Option<u64>,
    late: usize,
}

/// A `[[ping]]`.
struct PingItem {
    at: u64,
    from: IpAddr,
    to: IpAddr,
    count: u64,
    interval: u64,
    id: u16,
    size: usize,
    replies: bool,
}

/// Compiles a story. `name` names the file in messages.
pub fn compile(name: &str, text: &str, res: &Resolver<'_>) -> Result<Crafted, RulesetErrors> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let root = match tree::parse_toml(text) {
        Ok(r) => r,
        Err((pos, msg)) => {
            let mut ctx = Ctx::new(name, text, Syntax::Toml);
            ctx.error(pos, "", format!("TOML syntax: {msg}"));
            return Err(RulesetErrors(ctx.errors));
        }
    };
    let mut r = Reader {
        ctx: Ctx::new(name, text, Syntax::Toml),
        res,
        hosts: BTreeMap::new(),
    };
    let Some(top) = r.ctx.as_obj(&root, "") else {
        return Err(RulesetErrors(r.ctx.errors));
    };
    top.deny_unknown(&mut r.ctx, TOP);
    let start = match top.req(&mut r.ctx, "start") {
        Some(n) => r
            .ctx
            .as_int_in(n, "start", "start", 0, i64::from(u32::MAX))
            .map_or(0, |i| i as u64),
        None => 0,
    };
    let ephemeral = r.range(&top, "ephemeral").unwrap_or(DEFAULT_EPHEMERAL);
    let seed = r.int(&top, "seed", "seed", 0, i64::MAX).unwrap_or(1) as u64;
    let mut rng = Rng(seed ^ 0x00c2_af75_7024);

    r.hosts_table(&top);
    // Connections draw from `rng` before pings: the order fixes every port and id.
    let mut items: Vec<Item> = Vec::new();
    let connections = r.connections(&top, ephemeral, &mut rng, &mut items);
    let pings = r.pings(&top, &mut rng, &mut items);
    let mut changes = r.rules_changes(&top, start);
    if connections == 0 && pings == 0 && r.ctx.errors.is_empty() {
        r.ctx.error(
            top.pos,
            "",
            "the story has no [[connection]] and no [[ping]]: nothing to write",
        );
    }
    if !r.ctx.errors.is_empty() {
        return Err(RulesetErrors(r.ctx.errors));
    }
    changes.sort_by_key(|c| c.at_ms);

    let mut t = Timeline::new(start);
    for item in &items {
        emit(&mut t, start, item);
    }
    t.sort();
    Ok(Crafted {
        timeline: t,
        changes,
        connections,
        pings,
    })
}

/// The steps of [`compile`]: one per table of the story.
impl<'a, 'v, 'n> Reader<'a, 'v, 'n> {
    /// `[hosts]`: nicknames, each an address or ENI, or `{ host, via }`. Every nickname
    /// must resolve, even one the story does not use.
    fn hosts_table(&mut self, top: &Obj<'n>) {
        let Some(h) = top.obj(&mut self.ctx, "hosts") else {
            return;
        };
        for e in h.entries {
            self.host_def(&h, e);
        }
        let names: Vec<String> = self.hosts.keys().cloned().collect();
        for n in names {
            let def = &self.hosts[&n];
            let (target, node) = (def.target, def.node);
            let via = match def.via {
                Some((v, vn)) => match self.via(&format!("hosts.{n}.via"), v, vn) {
                    Some(v) => Some(v),
                    None => continue,
                },
                None => None,
            };
            if self.hosts.contains_key(target) {
                self.ctx.error(
                    node.pos,
                    format!("hosts.{n}"),
                    format!("{target:?} is a nickname itself; name an address or an ENI"),
                );
                continue;
            }
            self.resolve(target, node, &format!("hosts.{n}"), via, 1);
        }
    }

    /// One nickname of `[hosts]`, as written.
    fn host_def(&mut self, h: &Obj<'n>, e: &'n Entry) {
        let field = h.field(&e.key);
        if e.key.parse::<IpAddr>().is_ok() {
            self.ctx
                .error(e.key_pos, &field, "a nickname cannot be an address");
            return;
        }
        match &e.node.val {
            Val::Str(s) => {
                self.hosts.insert(
                    e.key.clone(),
                    HostDef {
                        target: s,
                        via: None,
                        node: &e.node,
                    },
                );
            }
            Val::Obj(_) => {
                let Some(o) = self.ctx.as_obj(&e.node, field.clone()) else {
                    return;
                };
                o.deny_unknown(&mut self.ctx, HOST);
                let Some((target, tn)) = o.req_str(&mut self.ctx, "host") else {
                    return;
                };
                let via = o.opt_str(&mut self.ctx, "via");
                self.hosts.insert(
                    e.key.clone(),
                    HostDef {
                        target,
                        via,
                        node: tn,
                    },
                );
            }
            _ => self.ctx.error(
                e.node.pos,
                &field,
                format!(
                    "expected a string (an address, an ENI id or Name) or a table {{ host = \"...\", via = \"public\" }}, found {}",
                    e.node.val.type_name(Syntax::Toml)
                ),
            ),
        }
    }

    /// `[[connection]]`: each one read into `items`; returns how many there are.
    fn connections(
        &mut self,
        top: &Obj<'n>,
        ephemeral: (u16, u16),
        rng: &mut Rng,
        items: &mut Vec<Item>,
    ) -> usize {
        let mut connections = 0;
        for (i, n) in top.arr(&mut self.ctx, "connection").iter().enumerate() {
            let Some(o) = self.ctx.as_obj(n, format!("connection[{i}]")) else {
                continue;
            };
            o.deny_unknown(&mut self.ctx, CONNECTION);
            connections += 1;
            items.extend(self.connection(&o, ephemeral, rng));
        }
        connections
    }

    /// One `[[connection]]`; `None` when it has an error.
    fn connection(&mut self, o: &Obj<'n>, ephemeral: (u16, u16), rng: &mut Rng) -> Option<Item> {
        let at = self.offset(o);
        let udp = self.is_udp(o);
        let client = self.host(o, "client", None);
        let server = self.host(o, "server", Some("via"));
        let sport = match o.req(&mut self.ctx, "port") {
            Some(pn) => self.ctx.as_int_in(pn, &o.field("port"), "port", 1, 65535),
            None => None,
        };
        let range = self.range(o, "ephemeral").unwrap_or(ephemeral);
        // Drawn whether or not it is used, so that giving one connection's port does
        // not move the others'.
        let drawn = rng.range(range.0, range.1);
        let isn = (rng.next() as u32, rng.next() as u32);
        let cport = match self.int(o, "client_port", "client_port", 1, 65535) {
            Some(p) => p as u16,
            None => drawn,
        };
        let exchanges = self.exchanges(o, udp);
        let every = self.duration(o, "every").unwrap_or(0);
        let end = self.end(o, udp);
        let idle = self.duration(o, "idle");
        let late = self.int(o, "late", "late", 0, 65_507).unwrap_or(100) as usize;
        let retries = self.int(o, "retries", "retries", 0, 100);
        self.check_end_options(o, end, &exchanges);
        if udp && exchanges.is_empty() {
            self.ctx.error(
                o.pos,
                o.field("exchanges"),
                "a UDP connection needs at least one exchange, e.g. exchanges = [[40, 120]]",
            );
        }
        let (Some(at), Some(client), Some(server), Some(sport), Some(end)) =
            (at, client, server, sport, end)
        else {
            return None;
        };
        if !self.same_family(o, client, server, "server") {
            return None;
        }
        let sport = sport as u16;
        Some(if udp {
            Item::Udp(UdpItem {
                at,
                client,
                cport,
                server,
                sport,
                exchanges,
                every,
                idle: (end == End::IdleTimeout).then(|| idle.unwrap_or(31_000)),
                late,
            })
        } else {
            Item::Tcp(TcpItem {
                at,
                client,
                cport,
                server,
                sport,
                exchanges,
                every,
                end,
                idle: idle.unwrap_or(432_001_000),
                late,
                retries: retries.unwrap_or(2) as u64,
                isn,
            })
        })
    }

    /// `protocol`: "tcp" (the default) or "udp".
    fn is_udp(&mut self, o: &Obj<'n>) -> bool {
        match o.opt_str(&mut self.ctx, "protocol") {
            None | Some(("tcp", _)) => false,
            Some(("udp", _)) => true,
            Some((p, pn)) => {
                self.ctx.error(
                    pn.pos,
                    o.field("protocol"),
                    format!("unknown protocol {p:?}; valid: \"tcp\", \"udp\" (pings are [[ping]])"),
                );
                false
            }
        }
    }

    /// `exchanges`: [request, response] payload sizes.
    fn exchanges(&mut self, o: &Obj<'n>, udp: bool) -> Vec<(usize, usize)> {
        let mut exchanges = Vec::new();
        for (j, x) in o.arr(&mut self.ctx, "exchanges").iter().enumerate() {
            let f = o.field(&format!("exchanges[{j}]"));
            let pair = self.ctx.as_arr(x, &f);
            let max = if udp { 65_507 } else { 1_000_000 };
            if pair.len() != 2 {
                if matches!(x.val, Val::Arr(_)) {
                    self.ctx.error(
                        x.pos,
                        &f,
                        "an exchange is [request, response]: two payload sizes in bytes (0: none)",
                    );
                }
                continue;
            }
            let req = self
                .ctx
                .as_int_in(&pair[0], &format!("{f}[0]"), "request size", 0, max);
            let resp = self
                .ctx
                .as_int_in(&pair[1], &format!("{f}[1]"), "response size", 0, max);
            if let (Some(a), Some(b)) = (req, resp) {
                exchanges.push((a as usize, b as usize));
            }
        }
        exchanges
    }

    /// `end`: how the connection ends (TCP: "fin" by default; UDP: "open").
    fn end(&mut self, o: &Obj<'n>, udp: bool) -> Option<End> {
        match o.opt_str(&mut self.ctx, "end") {
            None => Some(if udp { End::Open } else { End::Fin }),
            Some(("fin", _)) if !udp => Some(End::Fin),
            Some(("rst", _)) if !udp => Some(End::Rst),
            Some(("no-answer", _)) if !udp => Some(End::NoAnswer),
            Some(("synack-lost", _)) if !udp => Some(End::SynAckLost),
            Some(("open", _)) => Some(End::Open),
            Some(("idle-timeout", _)) => Some(End::IdleTimeout),
            Some((e, en)) => {
                let valid = if udp {
                    "for udp: \"open\", \"idle-timeout\""
                } else {
                    "\"fin\", \"rst\", \"open\", \"idle-timeout\", \"no-answer\", \"synack-lost\""
                };
                self.ctx.error(
                    en.pos,
                    o.field("end"),
                    format!("unknown end {e:?}; valid {valid}"),
                );
                None
            }
        }
    }

    /// `idle`, `late` and `retries` belong to one kind of end each; a handshake that
    /// never completes has no exchanges.
    fn check_end_options(&mut self, o: &Obj<'n>, end: Option<End>, exchanges: &[(usize, usize)]) {
        if end != Some(End::IdleTimeout) {
            for k in ["idle", "late"] {
                if let Some(kn) = o.get(k) {
                    self.ctx.error(
                        kn.pos,
                        o.field(k),
                        format!("`{k}` is only for end = \"idle-timeout\""),
                    );
                }
            }
        }
        if !matches!(end, Some(End::NoAnswer | End::SynAckLost)) {
            if let Some(kn) = o.get("retries") {
                self.ctx.error(
                    kn.pos,
                    o.field("retries"),
                    "`retries` is only for end = \"no-answer\" or \"synack-lost\"",
                );
            }
        } else if !exchanges.is_empty() {
            self.ctx.error(
                o.opt("end").map_or(o.pos, |n| n.pos),
                o.field("end"),
                "a connection whose handshake never completes has no exchanges; remove `exchanges`",
            );
        }
    }

    /// `[[ping]]`: each one read into `items`; returns how many there are.
    fn pings(&mut self, top: &Obj<'n>, rng: &mut Rng, items: &mut Vec<Item>) -> usize {
        let mut pings = 0;
        for (i, n) in top.arr(&mut self.ctx, "ping").iter().enumerate() {
            let Some(o) = self.ctx.as_obj(n, format!("ping[{i}]")) else {
                continue;
            };
            o.deny_unknown(&mut self.ctx, PING);
            pings += 1;
            let at = self.offset(&o);
            let from = self.host(&o, "from", None);
            let to = self.host(&o, "to", Some("via"));
            let drawn = rng.range(1, 65535);
            let count = self.int(&o, "count", "count", 1, 10_000).unwrap_or(4) as u64;
            let interval = self.duration(&o, "interval").unwrap_or(1000);
            let id = self
                .int(&o, "id", "id", 0, 65535)
                .map_or(drawn, |i| i as u16);
            let size = self.int(&o, "size", "size", 0, 65_000).unwrap_or(56) as usize;
            let replies = o.opt_bool(&mut self.ctx, "replies").unwrap_or(true);
            let (Some(at), Some(from), Some(to)) = (at, from, to) else {
                continue;
            };
            if !self.same_family(&o, from, to, "to") {
                continue;
            }
            items.push(Item::Ping(PingItem {
                at,
                from,
                to,
                count,
                interval,
                id,
                size,
                replies,
            }));
        }
        pings
    }

    /// `[[rules_change]]`: when the rules change, in story order.
    fn rules_changes(&mut self, top: &Obj<'n>, start: u64) -> Vec<RulesChange> {
        let mut changes = Vec::new();
        for (i, n) in top.arr(&mut self.ctx, "rules_change").iter().enumerate() {
            let Some(o) = self.ctx.as_obj(n, format!("rules_change[{i}]")) else {
                continue;
            };
            o.deny_unknown(&mut self.ctx, RULES_CHANGE);
            let at = self.offset(&o);
            let rules = o
                .opt_str(&mut self.ctx, "rules")
                .map(|(s, _)| s.to_string());
            let note = o.str_or_empty(&mut self.ctx, "note");
            if let Some(at) = at {
                changes.push(RulesChange {
                    offset_ms: at,
                    at_ms: start * 1000 + at,
                    rules,
                    note,
                });
            }
        }
        changes
    }
}

/// Sets the clock to `start` + `ms`.
fn set_clock(t: &mut Timeline, start: u64, ms: u64) {
    t.at(start + ms / 1000);
    t.advance_ms(ms % 1000);
}

fn emit(t: &mut Timeline, start: u64, item: &Item) {
    match item {
        Item::Tcp(c) => emit_tcp(t, start, c),
        Item::Udp(c) => emit_udp(t, start, c),
        Item::Ping(p) => emit_ping(t, start, p),
    }
}

/// A TCP connection: the handshake (or its retries), the exchanges, the end.
fn emit_tcp(t: &mut Timeline, start: u64, item: &TcpItem) {
    use tcp_flags::*;
    let TcpItem {
        at,
        client,
        cport,
        server,
        sport,
        ref exchanges,
        every,
        end,
        idle,
        late,
        retries,
        isn,
    } = *item;
    set_clock(t, start, at);
    let (mut cs, mut ss) = isn;
    if end == End::NoAnswer {
        for _ in 0..=retries {
            t.segment(client, cport, server, sport, SYN, cs, 0, 0);
            t.advance_ms(999);
        }
        return;
    }
    if end == End::SynAckLost {
        for _ in 0..=retries {
            t.segment(client, cport, server, sport, SYN, cs, 0, 0);
            t.segment(
                server,
                sport,
                client,
                cport,
                SYN | ACK,
                ss,
                cs.wrapping_add(1),
                0,
            );
            t.advance_ms(998);
        }
        return;
    }
    let c = |t: &mut Timeline, flags, seq, ack, len| {
        t.segment(client, cport, server, sport, flags, seq, ack, len)
    };
    let s = |t: &mut Timeline, flags, seq, ack, len| {
        t.segment(server, sport, client, cport, flags, seq, ack, len)
    };
    c(t, SYN, cs, 0, 0);
    cs = cs.wrapping_add(1);
    s(t, SYN | ACK, ss, cs, 0);
    ss = ss.wrapping_add(1);
    c(t, ACK, cs, ss, 0);
    for (i, &(req, resp)) in exchanges.iter().enumerate() {
        if i > 0 {
            t.advance_ms(every);
        }
        if req > 0 {
            c(t, PSH | ACK, cs, ss, req);
            cs = cs.wrapping_add(req as u32);
        }
        if resp > 0 {
            s(t, PSH | ACK, ss, cs, resp);
            ss = ss.wrapping_add(resp as u32);
        }
    }
    match end {
        End::Fin => {
            c(t, FIN | ACK, cs, ss, 0);
            cs = cs.wrapping_add(1);
            s(t, FIN | ACK, ss, cs, 0);
            ss = ss.wrapping_add(1);
            c(t, ACK, cs, ss, 0);
        }
        End::Rst => c(t, RST | ACK, cs, ss, 0),
        End::Open | End::NoAnswer | End::SynAckLost => {}
        End::IdleTimeout => {
            t.advance_ms(idle);
            s(t, PSH | ACK, ss, cs, late);
        }
    }
}

/// A UDP conversation: the exchanges, then a late reply after an idle timeout.
fn emit_udp(t: &mut Timeline, start: u64, item: &UdpItem) {
    let UdpItem {
        at,
        client,
        cport,
        server,
        sport,
        ref exchanges,
        every,
        idle,
        late,
    } = *item;
    set_clock(t, start, at);
    for (i, &(req, resp)) in exchanges.iter().enumerate() {
        if i > 0 {
            t.advance_ms(every);
        }
        for (n, a, ap, b, bp) in [
            (req, client, cport, server, sport),
            (resp, server, sport, client, cport),
        ] {
            if n > 0 {
                t.push(Frame::Udp {
                    src: a,
                    sport: ap,
                    dst: b,
                    dport: bp,
                    payload: n,
                });
            }
        }
    }
    if let Some(idle) = idle {
        t.advance_ms(idle);
        t.push(Frame::Udp {
            src: server,
            sport,
            dst: client,
            dport: cport,
            payload: late,
        });
    }
}

/// Echo requests every `interval`, each with its reply unless `replies` is false.
fn emit_ping(t: &mut Timeline, start: u64, item: &PingItem) {
    let PingItem {
        at,
        from,
        to,
        count,
        interval,
        id,
        size,
        replies,
    } = *item;
    for seq in 1..=count {
        set_clock(t, start, at + (seq - 1) * interval);
        let seq = seq as u16;
        t.push(Frame::Echo {
            src: from,
            dst: to,
            reply: false,
            id,
            seq,
            payload: size,
        });
        if replies {
            t.push(Frame::Echo {
                src: to,
                dst: from,
                reply: true,
                id,
                seq,
                payload: size,
            });
        }
    }
}

/// Whether two paths name one file (the output must never be the story or a ruleset).
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// One error for a file that cannot be read.
pub fn file_error(name: &str, message: impl Into<String>) -> RulesetErrors {
    RulesetErrors(vec![RulesetError::new(
        &crate::model::Origin::new(name, 0, 0),
        "",
        message,
    )])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::packet::Timestamp;

    fn story(s: &str) -> Result<Crafted, String> {
        compile("s.toml", s, &Resolver::default()).map_err(|e| e.to_string())
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("12s"), Some(12_000));
        assert_eq!(parse_duration("1.5s"), Some(1_500));
        assert_eq!(parse_duration("250ms"), Some(250));
        assert_eq!(parse_duration("2m"), Some(120_000));
        assert_eq!(parse_duration("0.001s"), Some(1));
        assert_eq!(parse_duration("1.0005s"), None);
        assert_eq!(parse_duration("1.2500s"), Some(1_250));
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("-1s"), None);
        assert_eq!(parse_duration("12"), None);
        assert_eq!(fmt_ms(1_732_435_230_000), "1732435230");
        assert_eq!(fmt_ms(1_732_435_230_500), "1732435230.5");
        assert_eq!(fmt_offset(30_250), "+30.25s");
    }

    #[test]
    fn a_session_is_a_handshake_exchanges_and_fin() {
        let c = story(
            r#"
start = 1700000000
[[connection]]
at = "+2s"
client = "192.0.2.10"
server = "10.0.1.10"
port = 443
client_port = 50000
exchanges = [[300, 1200]]
"#,
        )
        .unwrap();
        let f = c.timeline.frames();
        assert_eq!(f.len(), 3 + 2 + 3);
        assert_eq!(f[0].0, Timestamp::from_secs_nanos(1_700_000_002, 0));
        let p: Vec<_> = f
            .iter()
            .map(|(_, b)| {
                crate::wire::packet::parse(crate::wire::packet::linktype::ETHERNET, b).unwrap()
            })
            .collect();
        assert_eq!(p[0].tcp_flags, tcp_flags::SYN);
        assert_eq!(p[1].tcp_flags, tcp_flags::SYN | tcp_flags::ACK);
        assert_eq!((p[0].src_port, p[0].dst_port), (50000, 443));
        assert_eq!((p[1].src_port, p[1].dst_port), (443, 50000));
    }

    #[test]
    fn the_same_story_gives_the_same_frames_and_ports_come_from_the_range() {
        let s = r#"
start = 1700000000
ephemeral = "1024-1030"
[[connection]]
at = "+0s"
client = "192.0.2.10"
server = "10.0.1.10"
port = 443
end = "rst"
[[ping]]
at = "+1s"
from = "192.0.2.10"
to = "10.0.1.10"
count = 2
interval = "500ms"
"#;
        let (a, b) = (story(s).unwrap(), story(s).unwrap());
        assert_eq!(a.timeline.frames(), b.timeline.frames());
        let p = crate::wire::packet::parse(
            crate::wire::packet::linktype::ETHERNET,
            &a.timeline.frames()[0].1,
        )
        .unwrap();
        assert!((1024..=1030).contains(&p.src_port), "{}", p.src_port);
        // 3 handshake + RST, then 2 pings with replies at +1s and +1.5s.
        assert_eq!(a.timeline.len(), 4 + 4);
        assert_eq!(
            a.timeline.frames()[6].0,
            Timestamp::from_secs_nanos(1_700_000_001, 500_000_000)
        );
    }

    #[test]
    fn errors_name_line_column_and_field() {
        let e = story(
            "start = 1700000000\n[[connection]]\nat = \"12s\"\nclient = \"x\"\nserver = \"10.0.0.1\"\nport = 0\nend = \"close\"\nbogus = 1\n",
        )
        .unwrap_err();
        assert!(
            e.contains("s.toml:3:6: connection[0].at: \"12s\" is not an offset"),
            "{e}"
        );
        assert!(
            e.contains("s.toml:4:10: connection[0].client: unknown host \"x\""),
            "{e}"
        );
        assert!(
            e.contains("s.toml:6:8: connection[0].port: port 0 is outside 1..=65535"),
            "{e}"
        );
        assert!(
            e.contains("s.toml:7:7: connection[0].end: unknown end \"close\""),
            "{e}"
        );
        assert!(
            e.contains("s.toml:8:1: connection[0].bogus: unknown field `bogus`"),
            "{e}"
        );
        let e = story("start = 1\n[[ping]\n").unwrap_err();
        assert!(e.contains("s.toml:2:"), "{e}");
        let e = story("start = 1\n").unwrap_err();
        assert!(e.contains("nothing to write"), "{e}");
    }

    #[test]
    fn rules_changes_print_the_replay_argument() {
        let c = story(
            r#"
start = 1700000000
[[ping]]
at = "+0s"
from = "192.0.2.1"
to = "10.0.0.9"
[[rules_change]]
at = "+30.5s"
rules = "after.toml"
note = "x"
"#,
        )
        .unwrap();
        assert_eq!(
            c.changes[0].argument(),
            "--rules-at 1700000030.5=after.toml"
        );
    }
}
