//! `vpcgate check`: one hypothetical connection and its replies, through the engine
//! that replay uses, each check with the rule that decided it.
//!
//! The request (a TCP SYN, a UDP datagram, an ICMP query or message, a packet of
//! another protocol) and its reply (SYN-ACK, the datagram back, the query's reply,
//! the packet back) are built for every client port of the client's ephemeral range
//! and judged by one [`Engine`] with a tracer ([`crate::engine::trace`]). Ports whose
//! path reads the same (the same checks, the same rules) are grouped, so the answer
//! says which sub-ranges of the client's ports pass and which fail, and why.
//!
//! Which ephemeral range: AWS's table. Elastic Load Balancing, NAT gateways and
//! Lambda use 1024-65535 (an ENI of that kind, as `lint` recognises it); other
//! instances are assumed to run Linux, 32768-60999; a client outside the VPC may be
//! anything behind any NAT: 1024-65535. `client_ports` in the query overrides.
//!
//! What it does not do: routing (only the VPC's local route and the internet gateway
//! exist here), NAT gateways, load balancers forwarding.

use crate::engine::trace::{self, SgHow, Step};
use crate::engine::{Engine, Verdict};
use crate::model::{Direction, NetworkInterface, Vpc};
use crate::model::{PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP};
use crate::policy::Policy;
use crate::wire::packet::{tcp_flags, Fragment, Packet, Timestamp};
use serde_json::json;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// The address `internet` stands for (RFC 5737 TEST-NET-1, never routed): a client
/// or server outside the VPC that only `0.0.0.0/0` rules name.
pub const INTERNET_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// The IPv6 address `internet` stands for (RFC 3849 documentation prefix).
pub const INTERNET_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);

/// What to check.
#[derive(Clone, Debug)]
pub struct Query {
    /// The client: an ENI id, an ENI's `Name` tag, an address, or `internet`.
    pub from: String,
    /// The server, the same forms.
    pub to: String,
    /// IP protocol number.
    pub protocol: u8,
    /// The server's port (TCP, UDP).
    pub port: Option<u16>,
    /// ICMP type and code (default: echo request).
    pub icmp: Option<(u8, u8)>,
    /// Use IPv6 addresses for ENIs and `internet`.
    pub ipv6: bool,
    /// The client's ports to try (default: its ephemeral range, see the module docs).
    pub client_ports: Option<(u16, u16)>,
}

/// One end of the connection.
#[derive(Clone, Debug)]
pub struct End {
    /// As the user wrote it.
    pub input: String,
    /// The address the packets carry.
    pub addr: IpAddr,
    /// The ENI, where the address is one's.
    pub eni: Option<String>,
    /// `eni-0abc (10.0.1.10, subnet-0abc)`, `the internet (192.0.2.1)`.
    pub text: String,
}

/// Client ports whose packet took the same path with the same decisions.
#[derive(Clone, Debug)]
pub struct Group {
    /// Port ranges, ascending (one `(0, 0)` where there are no ports).
    pub ports: Vec<(u16, u16)>,
    pub verdict: Verdict,
    /// The steps, as the first port of the group met them.
    pub steps: Vec<Step>,
}

/// The answer.
#[derive(Clone, Debug)]
pub struct Report {
    pub client: End,
    pub server: End,
    pub protocol: u8,
    pub port: Option<u16>,
    pub icmp: Option<(u8, u8)>,
    /// The reply's ICMP type, for a query.
    pub reply_icmp: Option<u8>,
    /// The client ports tried, and why those.
    pub client_ports: Option<(u16, u16, String)>,
    pub request: Vec<Group>,
    /// `None`: the request has no reply (an ICMP error or other non-query message).
    pub reply: Option<Vec<Group>>,
    pub notes: Vec<String>,
    /// The request and every reply passed, and the server can be reached.
    pub pass: bool,
}

/// `tcp`, `udp`, `icmp`, `icmpv6` or `proto N`.
pub fn protocol_name(p: u8) -> String {
    crate::model::Protocol::Number(p).label()
}

/// The ICMP (or ICMPv6) reply type of a query type, if it is a query.
fn icmp_reply(protocol: u8, t: u8) -> Option<u8> {
    let pairs: &[(u8, u8)] = if protocol == PROTO_ICMP {
        &[(8, 0), (13, 14), (15, 16), (17, 18)]
    } else {
        &[(128, 129), (139, 140)]
    };
    pairs.iter().find(|p| p.0 == t).map(|p| p.1)
}

enum Resolved<'v> {
    Eni(&'v NetworkInterface),
    Addr(IpAddr),
    Internet,
}

fn resolve<'v>(vpc: &'v Vpc, names: &[(String, String)], s: &str) -> Result<Resolved<'v>, String> {
    if s.eq_ignore_ascii_case("internet") {
        return Ok(Resolved::Internet);
    }
    if let Ok(a) = s.parse::<IpAddr>() {
        return Ok(Resolved::Addr(a));
    }
    if let Some(e) = vpc.network_interfaces.iter().find(|e| e.id == s) {
        return Ok(Resolved::Eni(e));
    }
    let named: Vec<&String> = names
        .iter()
        .filter(|(n, _)| n == s)
        .map(|(_, id)| id)
        .collect();
    match named.as_slice() {
        [id] => match vpc.network_interfaces.iter().find(|e| &e.id == *id) {
            Some(e) => Ok(Resolved::Eni(e)),
            None => Err(format!(
                "{s:?} is the Name of {id}, which is not in the ruleset's network interfaces"
            )),
        },
        [] => {
            let ids: Vec<&str> = vpc
                .network_interfaces
                .iter()
                .take(4)
                .map(|e| e.id.as_str())
                .collect();
            Err(format!(
                "{s:?} is not an address, not `internet`, and no network interface of the ruleset has that id or Name tag (ENIs: {}{})",
                ids.join(", "),
                if vpc.network_interfaces.len() > 4 { ", ..." } else { "" }
            ))
        }
        many => Err(format!(
            "{s:?} is the Name of several network interfaces ({}); give an ENI id",
            many.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

fn inside(vpc: &Vpc, a: IpAddr) -> bool {
    vpc.cidrs.iter().any(|c| c.contains(&a))
}

/// The ephemeral ports of the client and why.
fn client_range(client: &Resolved, vpc: &Vpc) -> (u16, u16, String) {
    match client {
        Resolved::Eni(e) => match crate::analysis::lint::replies::eni_kind(e) {
            Some((who, service)) => (
                1024,
                65535,
                format!(
                    "{} is {who} ({service} uses 1024-65535 as source ports, AWS's table of ephemeral ranges)",
                    e.id
                ),
            ),
            None => (
                32768,
                60999,
                format!(
                    "{} is assumed to be a Linux instance (Linux uses 32768-60999; Windows uses 49152-65535, load balancers and NAT gateways 1024-65535: say --client-ports to try others)",
                    e.id
                ),
            ),
        },
        Resolved::Addr(a) if inside(vpc, *a) => (
            1024,
            65535,
            "an address of the VPC that no ENI of the ruleset has: any client (1024-65535)".into(),
        ),
        _ => (
            1024,
            65535,
            "a client outside the VPC may be Linux (32768-60999), Windows (49152-65535) or behind a NAT that uses any port: 1024-65535, as AWS advises for NACL reply rules".into(),
        ),
    }
}

/// Runs the check. `names`: (Name tag, ENI id) pairs, for ENIs given by name.
pub fn check(
    policy: &Arc<Policy>,
    names: &[(String, String)],
    q: &Query,
) -> Result<Report, String> {
    let vpc = &*policy.vpc;
    let a = resolve(vpc, names, &q.from).map_err(|e| format!("--from: {e}"))?;
    let b = resolve(vpc, names, &q.to).map_err(|e| format!("--to: {e}"))?;
    let v6 = q.ipv6
        || matches!(a, Resolved::Addr(IpAddr::V6(_)))
        || matches!(b, Resolved::Addr(IpAddr::V6(_)));
    if q.protocol == PROTO_ICMP && v6 {
        return Err("--protocol icmp is IPv4; over IPv6 say --protocol icmpv6".into());
    }
    if q.protocol == PROTO_ICMPV6 && !v6 {
        return Err("--protocol icmpv6 needs IPv6 addresses: give one, or add --ipv6".into());
    }
    let mut notes = Vec::new();
    let mut reachable = true;
    let outside = |r: &Resolved| match r {
        Resolved::Internet => true,
        Resolved::Addr(a) => policy.owner(*a).is_none() && !inside(vpc, *a),
        Resolved::Eni(_) => false,
    };
    let (a_out, b_out) = (outside(&a), outside(&b));
    // An ENI's address: private, or its public IPv4 for a peer outside the VPC that
    // opens the connection (the only way in through the internet gateway).
    let mut end = |r: &Resolved,
                   input: &str,
                   server: bool,
                   peer_outside: bool|
     -> Result<End, String> {
        Ok(match r {
            Resolved::Internet => {
                let addr = if v6 {
                    IpAddr::V6(INTERNET_V6)
                } else {
                    IpAddr::V4(INTERNET_V4)
                };
                End {
                    input: input.into(),
                    addr,
                    eni: None,
                    text: format!("the internet ({addr})"),
                }
            }
            Resolved::Addr(addr) => {
                let owner = policy.owner(*addr);
                let eni = owner.map(|o| vpc.network_interfaces[o.eni.get()].id.clone());
                let text = match (&eni, owner.and_then(|o| o.public_of)) {
                    (Some(e), Some(p)) => {
                        format!("{addr} (the public address of {e}, behind it {p})")
                    }
                    (Some(e), None) => format!("{addr} ({e})"),
                    (None, _) if inside(vpc, *addr) => {
                        format!("{addr} (in the VPC, no ENI of the ruleset)")
                    }
                    (None, _) => format!("{addr} (outside the VPC)"),
                };
                End {
                    input: input.into(),
                    addr: *addr,
                    eni,
                    text,
                }
            }
            Resolved::Eni(e) => {
                let private: Option<IpAddr> = if v6 {
                    e.ipv6.first().map(|a| IpAddr::V6(*a))
                } else {
                    e.primary_ipv4().map(IpAddr::V4)
                };
                let Some(private) = private else {
                    return Err(format!(
                        "{} has no {} address",
                        e.id,
                        if v6 { "IPv6" } else { "IPv4" }
                    ));
                };
                let mut addr = private;
                let mut text = format!("{} ({private}, {})", e.id, e.subnet_id);
                if server && peer_outside && !v6 {
                    match e.public_ipv4 {
                        Some(p) => {
                            addr = IpAddr::V4(p);
                            text = format!(
                                "{} (public {p}, private {private}, {})",
                                e.id, e.subnet_id
                            );
                        }
                        None => {
                            reachable = false;
                            notes.push(format!(
                                "{} has no public IPv4 address: the internet gateway has nothing to send a connection from outside to (checked at its private address {private}, as if it got there)",
                                e.id
                            ));
                        }
                    }
                }
                if !server && peer_outside && !v6 && e.public_ipv4.is_none() {
                    notes.push(format!(
                        "{} has no public IPv4 address: outside the VPC it needs a NAT gateway, which vpcgate does not emulate (the checks are those at the ENI)",
                        e.id
                    ));
                }
                End {
                    input: input.into(),
                    addr,
                    eni: Some(e.id.clone()),
                    text,
                }
            }
        })
    };
    let client = end(&a, &q.from, false, b_out)?;
    let server = end(&b, &q.to, true, a_out)?;
    if client.addr.is_ipv6() != server.addr.is_ipv6() {
        return Err(format!(
            "{} and {} are of different address families",
            client.addr, server.addr
        ));
    }
    if client.eni.is_none() && server.eni.is_none() {
        return Err(format!(
            "neither {} nor {} is an address of a network interface of the ruleset: nothing would check the packets",
            q.from, q.to
        ));
    }

    let ported = matches!(q.protocol, PROTO_TCP | PROTO_UDP);
    let port = if ported {
        Some(q.port.ok_or_else(|| {
            format!(
                "--protocol {} needs --port (the server's port)",
                protocol_name(q.protocol)
            )
        })?)
    } else {
        None
    };
    let icmp = match q.protocol {
        PROTO_ICMP => Some(q.icmp.unwrap_or((8, 0))),
        PROTO_ICMPV6 => Some(q.icmp.unwrap_or((128, 0))),
        _ => None,
    };
    let reply_icmp = icmp.and_then(|(t, _)| icmp_reply(q.protocol, t));
    let client_ports = ported.then(|| match q.client_ports {
        Some((f, t)) => (f, t, "as --client-ports says".to_string()),
        None => client_range(&a, vpc),
    });

    let mut engine = Engine::new(policy.clone());
    let t0 = Timestamp::from_secs_nanos(1_700_000_000, 0);
    let t1 = Timestamp::from_secs_nanos(1_700_000_000, 1_000_000);
    let request = |cp: u16| Packet {
        src: client.addr,
        dst: server.addr,
        protocol: q.protocol,
        src_port: if ported { cp } else { 0 },
        dst_port: port.unwrap_or(0),
        icmp_type: icmp.map_or(0, |i| i.0),
        icmp_code: icmp.map_or(0, |i| i.1),
        icmp_id: 0x1234,
        tcp_flags: if q.protocol == PROTO_TCP {
            tcp_flags::SYN
        } else {
            0
        },
        ip_len: 60,
        fragment: Fragment::None,
    };
    let reply = |req: &Packet| Packet {
        src: req.dst,
        dst: req.src,
        src_port: req.dst_port,
        dst_port: req.src_port,
        icmp_type: reply_icmp.unwrap_or(0),
        icmp_code: 0,
        tcp_flags: if q.protocol == PROTO_TCP {
            tcp_flags::SYN | tcp_flags::ACK
        } else {
            0
        },
        ..*req
    };
    let has_reply = icmp.is_none() || reply_icmp.is_some();
    let (lo, hi) = client_ports.as_ref().map_or((0, 0), |c| (c.0, c.1));
    let mut req_groups: Vec<Group> = Vec::new();
    let mut rep_groups: Vec<Group> = Vec::new();
    for cp in lo..=hi {
        let req = request(cp);
        let mut steps = Vec::new();
        let d = engine.process_traced(&req, t0, &mut steps);
        let through = passes(d.verdict, &steps);
        add(&mut req_groups, cp, ported, d.verdict, steps);
        // A reply only to a request that got through.
        if has_reply && through {
            let rep = reply(&req);
            let mut steps = Vec::new();
            let d = engine.process_traced(&rep, t1, &mut steps);
            add(&mut rep_groups, cp, ported, d.verdict, steps);
        }
    }
    let pass = reachable
        && req_groups.iter().all(|g| passes(g.verdict, &g.steps))
        && rep_groups.iter().all(|g| passes(g.verdict, &g.steps));
    Ok(Report {
        client,
        server,
        protocol: q.protocol,
        port,
        icmp,
        reply_icmp,
        client_ports,
        request: req_groups,
        reply: has_reply.then_some(rep_groups),
        notes,
        pass,
    })
}

/// Whether a packet gets through: accepted, or traffic of an exempt service (never
/// filtered).
fn passes(v: Verdict, steps: &[Step]) -> bool {
    v == Verdict::Accept || steps.iter().any(|s| matches!(s, Step::Exempt(_)))
}

/// What makes two ports' paths the same: the steps without the connection's key
/// (which holds the port) and without what the key met.
fn same_path(a: &[Step], b: &[Step]) -> bool {
    fn norm(s: &Step) -> Step {
        match *s {
            Step::Sg {
                eni,
                dir,
                how,
                rule,
                state,
                ..
            } => Step::Sg {
                eni,
                dir,
                how,
                rule,
                key: None,
                met: None,
                state,
            },
            other => other,
        }
    }
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| norm(x) == norm(y))
}

fn add(groups: &mut Vec<Group>, cp: u16, ported: bool, verdict: Verdict, steps: Vec<Step>) {
    let p = if ported { cp } else { 0 };
    if let Some(g) = groups
        .iter_mut()
        .find(|g| g.verdict == verdict && same_path(&g.steps, &steps))
    {
        match g.ports.last_mut() {
            Some(last) if last.1.checked_add(1) == Some(p) => last.1 = p,
            _ => g.ports.push((p, p)),
        }
        return;
    }
    groups.push(Group {
        ports: vec![(p, p)],
        verdict,
        steps,
    });
}

/// `1024-32767, 61001-65535`.
pub fn ranges_text(r: &[(u16, u16)]) -> String {
    r.iter()
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl Report {
    fn endpoints(&self, reply: bool, ports: &[(u16, u16)]) -> String {
        let (c, s) = (&self.client.addr, &self.server.addr);
        let cp = ranges_text(ports);
        let fmt = |a: &IpAddr, p: &str| match a {
            IpAddr::V6(_) => format!("[{a}]:{p}"),
            IpAddr::V4(_) => format!("{a}:{p}"),
        };
        match (self.port, reply) {
            (Some(port), false) => format!("{} -> {}", fmt(c, &cp), fmt(s, &port.to_string())),
            (Some(port), true) => format!("{} -> {}", fmt(s, &port.to_string()), fmt(c, &cp)),
            (None, false) => format!("{c} -> {s}"),
            (None, true) => format!("{s} -> {c}"),
        }
    }

    fn kind(&self, reply: bool) -> String {
        match (self.protocol, self.icmp) {
            (PROTO_TCP, _) => if reply { "tcp SYN-ACK" } else { "tcp SYN" }.into(),
            (_, Some((t, c))) => {
                let t = if reply {
                    self.reply_icmp.unwrap_or(0)
                } else {
                    t
                };
                let c = if reply { 0 } else { c };
                format!("{} type {t} code {c}", protocol_name(self.protocol))
            }
            (p, _) => protocol_name(p),
        }
    }

    /// The report for people.
    pub fn text(&self, policy: &Policy) -> String {
        let mut s = String::new();
        let what = match (self.port, self.icmp) {
            (Some(p), _) => format!("{} port {p}", protocol_name(self.protocol)),
            (None, Some((t, c))) => {
                format!("{} type {t} code {c}", protocol_name(self.protocol))
            }
            (None, None) => protocol_name(self.protocol),
        };
        let _ = writeln!(s, "vpcgate check: {what}");
        let _ = writeln!(s, "  from {}", self.client.text);
        let _ = writeln!(s, "  to   {}", self.server.text);
        if let Some((f, t, why)) = &self.client_ports {
            let _ = writeln!(s, "  client ports {f}-{t}: {why}");
        }
        for n in &self.notes {
            let _ = writeln!(s, "  note: {n}");
        }
        let mut section = |name: &str, reply: bool, groups: &[Group]| {
            for g in groups {
                let _ = writeln!(s);
                let _ = writeln!(
                    s,
                    "{name} {} ({}): {}",
                    self.endpoints(reply, &g.ports),
                    self.kind(reply),
                    g.verdict.as_str()
                );
                if let Some(p) = trace::path_text(&g.steps, policy) {
                    let _ = writeln!(s, "  path: {p}");
                }
                for (i, st) in g.steps.iter().filter_map(|st| st.text(policy)).enumerate() {
                    let _ = writeln!(s, "  {}. {st}", i + 1);
                }
            }
        };
        section("request", false, &self.request);
        match &self.reply {
            Some(r) if r.is_empty() => {
                let _ = writeln!(s);
                let _ = writeln!(s, "reply: none (the request does not get through)");
            }
            Some(r) => section("reply", true, r),
            None => {
                let _ = writeln!(s);
                let _ = writeln!(
                    s,
                    "reply: none (an ICMP message that is not a query gets no reply, and tracking does not follow it)"
                );
            }
        }
        let _ = writeln!(s);
        if self.pass {
            let _ = writeln!(s, "PASS: the connection and its replies get through");
        } else {
            let _ = writeln!(s, "FAIL:");
            for f in self.failure_lines(policy) {
                let _ = writeln!(s, "  {f}");
            }
        }
        s
    }

    /// What failed, one line per failing group (or the unreachable server).
    pub fn failure_lines(&self, policy: &Policy) -> Vec<String> {
        let mut out = Vec::new();
        for (what, groups) in [
            ("request", Some(&self.request)),
            ("reply", self.reply.as_ref()),
        ] {
            for g in groups.into_iter().flatten() {
                if passes(g.verdict, &g.steps) {
                    continue;
                }
                let ports = if self.port.is_some() {
                    let dir = if what == "request" { "from" } else { "to" };
                    format!(" {dir} client ports {}", ranges_text(&g.ports))
                } else {
                    String::new()
                };
                let by = g
                    .steps
                    .iter()
                    .find(|s| s.allowed() == Some(false))
                    .and_then(|s| s.why(policy));
                match by {
                    Some(by) => out.push(format!("the {what}{ports} is dropped by {by}")),
                    None => out.push(format!("the {what}{ports}: {}", g.verdict.as_str())),
                }
            }
        }
        if out.is_empty() {
            out.extend(self.notes.iter().cloned());
        }
        out
    }

    /// The report as JSON.
    pub fn json(&self, policy: &Policy) -> serde_json::Value {
        let end = |e: &End| json!({"input": e.input, "address": e.addr.to_string(), "eni": e.eni, "text": e.text});
        let groups = |g: &[Group], reply: bool| -> Vec<serde_json::Value> {
            g.iter()
                .map(|g| {
                    json!({
                        "client_ports": if self.port.is_some() {
                            json!(g.ports.iter().map(|p| json!([p.0, p.1])).collect::<Vec<_>>())
                        } else { serde_json::Value::Null },
                        "packet": self.endpoints(reply, &g.ports),
                        "kind": self.kind(reply),
                        "action": g.verdict.as_str(),
                        "path": trace::path_text(&g.steps, policy),
                        "checks": g.steps.iter().filter_map(|s| s.json(policy)).collect::<Vec<_>>(),
                    })
                })
                .collect()
        };
        json!({
            "from": end(&self.client),
            "to": end(&self.server),
            "protocol": protocol_name(self.protocol),
            "protocol_number": self.protocol,
            "port": self.port,
            "icmp": self.icmp.map(|(t, c)| json!({"type": t, "code": c})),
            "client_ports": self.client_ports.as_ref().map(|(f, t, why)| json!({"from": f, "to": t, "why": why})),
            "request": groups(&self.request, false),
            "reply": self.reply.as_ref().map(|r| groups(r, true)),
            "notes": self.notes,
            "pass": self.pass,
            "failures": if self.pass { Vec::new() } else { self.failure_lines(policy) },
        })
    }
}

/// Whether the SG of a step was passed by tracking (for tests and callers).
pub fn sg_tracked(steps: &[Step], dir: Direction) -> Option<bool> {
    steps.iter().find_map(|s| match s {
        Step::Sg { dir: d, how, .. } if *d == dir => Some(*how == SgHow::Tracked),
        _ => None,
    })
}
