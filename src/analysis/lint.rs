//! `vpcgate lint`: a ruleset's mistakes, each with the rule it concerns, where that
//! rule is written, why it is a mistake and a suggested fix.
//!
//! The checks (codes are stable; scripts and SARIF consumers key on them):
//!
//! | code | severity | what |
//! |---|---|---|
//! | `nacl-reply-dropped` | error (load balancer, NAT gateway, Lambda peer), warning (instances, the internet) | an SG- and NACL-allowed service whose replies a NACL drops at the ephemeral ports the client uses |
//! | `nacl-shadowed` | warning (earlier entries decide the other way), note (same action: redundant) | a NACL entry that earlier entries of the same direction always decide before it |
//! | `nacl-partly-shadowed` | note | an allow entry for a few ports (a span of at most 1024) of which earlier deny entries take some |
//! | `world-open-admin-port` | warning (SG ingress, NACL entries naming the ports), note (NACL `-1` entries) | an administrative or database port open to `0.0.0.0/0` or `::/0` |
//! | `sg-unused` | note | a security group no ENI uses (the group named `default` aside: AWS keeps it) |
//! | `sg-reference-unused` | warning | a rule naming a group no ENI uses: it matches nothing |
//! | `ipv6-twin-missing` | note | an IPv4 rule (world or a subnet with IPv6) without an IPv6 rule for the same traffic, where the group's ENIs or the NACL's subnets have IPv6 |
//! | `quota-exceeded` | error | more rules or groups than an AWS quota allows (defaults, or `--quota`) |
//!
//! The ephemeral ports a client uses are AWS's table (aws-semantics §3.6): Elastic
//! Load Balancing, NAT gateways and Lambda 1024-65535; an instance is assumed to run
//! Linux (32768-60999); a client on the internet may be Linux (32768-60999) or Windows
//! (49152-65535).

use crate::model::{
    NetworkAcl, NetworkAclEntry, NetworkInterface, Origin, PortSpec, Protocol, RuleAction,
    SecurityGroup, SecurityGroupRule, SgPeer, Vpc, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP,
};
use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

/// How bad a finding is; SARIF's `level` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Note,
    Warning,
    Error,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Note => "note",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }

    /// `error`, `warning` or `note`.
    pub fn parse(s: &str) -> Option<Severity> {
        match s {
            "error" => Some(Severity::Error),
            "warning" => Some(Severity::Warning),
            "note" => Some(Severity::Note),
            _ => None,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One mistake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// A stable code: `nacl-reply-dropped`, `nacl-shadowed`, ... (see [`RULES`]).
    pub code: &'static str,
    pub severity: Severity,
    /// The object: `acl-0abc outbound rule 120`, `sg-0abc ingress rule 2`, `eni-0abc`.
    pub resource: String,
    /// The rule as a person reads it, when the finding is about one rule.
    pub rule: Option<String>,
    pub message: String,
    pub fix: String,
    /// Where the rule (or the object) is written.
    pub origin: Origin,
}

/// Every code with a one-line description (SARIF `rules[]`).
pub const RULES: &[(&str, Severity, &str)] = &[
    (
        "nacl-reply-dropped",
        Severity::Error,
        "An allowed service whose replies a network ACL drops at the client's ephemeral ports",
    ),
    (
        "nacl-shadowed",
        Severity::Warning,
        "A network ACL entry that earlier entries of the same direction always decide first",
    ),
    (
        "nacl-partly-shadowed",
        Severity::Note,
        "An allow entry of which earlier deny entries take some ports",
    ),
    (
        "world-open-admin-port",
        Severity::Warning,
        "An administrative or database port open to 0.0.0.0/0 or ::/0",
    ),
    (
        "sg-unused",
        Severity::Note,
        "A security group attached to no network interface",
    ),
    (
        "sg-reference-unused",
        Severity::Warning,
        "A security-group rule naming a group that no network interface uses",
    ),
    (
        "ipv6-twin-missing",
        Severity::Note,
        "An IPv4 rule without its IPv6 twin where the VPC has IPv6",
    ),
    (
        "quota-exceeded",
        Severity::Error,
        "More rules or groups than an AWS quota allows",
    ),
];

/// The AWS quotas lint checks, with AWS's defaults (aws-semantics §1.7, §3.9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quotas {
    /// `rules-per-security-group`: inbound or outbound rules per group, per address
    /// family (60).
    pub rules_per_security_group: u32,
    /// `security-groups-per-interface`: groups per ENI (5).
    pub security_groups_per_interface: u32,
    /// `rules-per-network-acl`: entries per NACL, per direction and address family,
    /// the `*` entries not counted (20).
    pub rules_per_network_acl: u32,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            rules_per_security_group: 60,
            security_groups_per_interface: 5,
            rules_per_network_acl: 20,
        }
    }
}

/// The names `--quota` takes.
pub const QUOTA_NAMES: &[&str] = &[
    "rules-per-security-group",
    "security-groups-per-interface",
    "rules-per-network-acl",
];

impl Quotas {
    /// Applies one `NAME=N` (`--quota rules-per-security-group=100`).
    pub fn set(&mut self, spec: &str) -> Result<(), String> {
        let Some((name, n)) = spec.split_once('=') else {
            return Err(format!(
                "--quota {spec:?}: expected NAME=N, e.g. rules-per-security-group=100"
            ));
        };
        let n: u32 = match n.trim().parse() {
            Ok(n) if n > 0 => n,
            _ => {
                return Err(format!(
                    "--quota {spec:?}: {n:?} is not a positive whole number"
                ))
            }
        };
        match name.trim() {
            "rules-per-security-group" => self.rules_per_security_group = n,
            "security-groups-per-interface" => self.security_groups_per_interface = n,
            "rules-per-network-acl" => self.rules_per_network_acl = n,
            other => {
                return Err(format!(
                    "--quota {spec:?}: unknown quota `{other}`; known: {}",
                    QUOTA_NAMES.join(", ")
                ))
            }
        }
        Ok(())
    }
}

/// Every finding in `vpc`, in the order of the files (file, line, column), then code.
pub fn lint(vpc: &Vpc, quotas: &Quotas) -> Vec<Finding> {
    let mut out = Vec::new();
    replies(vpc, &mut out);
    shadowed(vpc, &mut out);
    world_open(vpc, &mut out);
    unused_groups(vpc, &mut out);
    ipv6_twins(vpc, &mut out);
    quota_checks(vpc, quotas, &mut out);
    out.sort_by(|a, b| {
        (
            a.origin.file.is_empty(),
            &a.origin.file,
            a.origin.line,
            a.origin.column,
            a.code,
            &a.message,
        )
            .cmp(&(
                b.origin.file.is_empty(),
                &b.origin.file,
                b.origin.line,
                b.origin.column,
                b.code,
                &b.message,
            ))
    });
    out.dedup();
    out
}

/// True when a finding at or above `level` exists.
pub fn fails(findings: &[Finding], level: Severity) -> bool {
    findings.iter().any(|f| f.severity >= level)
}

// ------------------------------------------------------------------------------------
// Port sets: sorted, disjoint, inclusive ranges.

type Ports = Vec<(u16, u16)>;

fn all_ports() -> Ports {
    vec![(0, 65535)]
}

fn intersect(a: &[(u16, u16)], b: &[(u16, u16)]) -> Ports {
    let mut out = Vec::new();
    for &(af, at) in a {
        for &(bf, bt) in b {
            let (f, t) = (af.max(bf), at.min(bt));
            if f <= t {
                out.push((f, t));
            }
        }
    }
    normalize(out)
}

fn subtract(a: &[(u16, u16)], b: &[(u16, u16)]) -> Ports {
    let mut cur: Ports = a.to_vec();
    for &(bf, bt) in b {
        let mut next = Vec::new();
        for (f, t) in cur {
            if bt < f || bf > t {
                next.push((f, t));
                continue;
            }
            if bf > f {
                next.push((f, bf - 1));
            }
            if bt < t {
                next.push((bt + 1, t));
            }
        }
        cur = next;
    }
    cur
}

fn union(a: &[(u16, u16)], b: &[(u16, u16)]) -> Ports {
    normalize(a.iter().chain(b).copied().collect())
}

fn normalize(mut v: Ports) -> Ports {
    v.sort();
    let mut out: Ports = Vec::new();
    for (f, t) in v {
        match out.last_mut() {
            Some(last) if (last.1 as u32) + 1 >= f as u32 => last.1 = last.1.max(t),
            _ => out.push((f, t)),
        }
    }
    out
}

fn ports_text(p: &[(u16, u16)]) -> String {
    let parts: Vec<String> = p
        .iter()
        .map(|&(f, t)| {
            if f == t {
                f.to_string()
            } else {
                format!("{f}-{t}")
            }
        })
        .collect();
    match parts.len() {
        0 => "none".into(),
        1 => parts[0].clone(),
        n => format!("{} and {}", parts[..n - 1].join(", "), parts[n - 1]),
    }
}

/// The destination ports a TCP/UDP rule of `spec` covers.
fn spec_ports(spec: PortSpec) -> Ports {
    match spec {
        PortSpec::Range { from, to } => vec![(from, to)],
        _ => all_ports(),
    }
}

fn family_v6(n: &IpNet) -> bool {
    matches!(n, IpNet::V6(_))
}

fn is_world(n: &IpNet) -> bool {
    n.prefix_len() == 0
}

fn proto_label(p: Protocol) -> String {
    p.label()
}

/// `120 allow tcp 32768-61000 to 10.0.1.0/24`.
fn nacl_rule_text(e: &NetworkAclEntry, egress: bool) -> String {
    let dir = if egress { "to" } else { "from" };
    let num = if e.rule_number >= 32767 {
        format!("{} (*)", e.rule_number)
    } else {
        e.rule_number.to_string()
    };
    if e.ports.is_any() || e.protocol == Protocol::All {
        format!(
            "{num} {} {} {dir} {}",
            e.action,
            proto_label(e.protocol),
            e.cidr
        )
    } else {
        format!(
            "{num} {} {} {} {dir} {}",
            e.action,
            proto_label(e.protocol),
            e.ports,
            e.cidr
        )
    }
}

fn dir_name(egress: bool) -> &'static str {
    if egress {
        "outbound"
    } else {
        "inbound"
    }
}

fn entries(acl: &NetworkAcl, egress: bool) -> &[NetworkAclEntry] {
    if egress {
        &acl.outbound
    } else {
        &acl.inbound
    }
}

/// The origin of a NACL entry, or of its NACL when the entry is implicit.
fn entry_origin(acl: &NetworkAcl, e: &NetworkAclEntry) -> Origin {
    if e.origin.file.is_empty() {
        acl.origin.clone()
    } else {
        e.origin.clone()
    }
}

/// Splits `ports` of protocol `proto` to or from `remote` by the entry that decides
/// them, first match wins: `(ports, index of the entry)`; ports no entry decides get
/// `None` (denied: only an unvalidated list lacks the `*` entries).
fn nacl_eval(
    list: &[NetworkAclEntry],
    proto: u8,
    remote: IpAddr,
    ports: &[(u16, u16)],
) -> Vec<(Ports, Option<usize>)> {
    let mut left: Ports = ports.to_vec();
    let mut out = Vec::new();
    for (i, e) in list.iter().enumerate() {
        if left.is_empty() {
            break;
        }
        if !e.cidr.contains(&remote) || !e.protocol.matches(proto) {
            continue;
        }
        let take = if e.protocol == Protocol::All {
            left.clone()
        } else {
            intersect(&left, &spec_ports(e.ports))
        };
        if !take.is_empty() {
            left = subtract(&left, &take);
            out.push((take, Some(i)));
        }
    }
    if !left.is_empty() {
        out.push((left, None));
    }
    out
}

/// The ports of `ports` that `list` allows.
fn nacl_allowed(
    list: &[NetworkAclEntry],
    proto: u8,
    remote: IpAddr,
    ports: &[(u16, u16)],
) -> Ports {
    let mut out = Vec::new();
    for (p, i) in nacl_eval(list, proto, remote, ports) {
        if i.is_some_and(|i| list[i].action == RuleAction::Allow) {
            out = union(&out, &p);
        }
    }
    out
}

// ------------------------------------------------------------------------------------
// Replies dropped at ephemeral ports.

/// The ephemeral ports a client uses, per AWS's table.
#[derive(Clone, Debug)]
struct Client {
    /// `the load balancer eni-0abc (10.0.1.10)`, `clients on the internet (0.0.0.0/0)`.
    who: String,
    /// Each OS or service the client may be, with its range and the severity of a
    /// drop: `("Elastic Load Balancing", 1024, 65535, Error)`.
    ranges: Vec<(&'static str, u16, u16, Severity)>,
    /// The client's subnet (or internet range): what a fix names as the reply's
    /// destination.
    net: IpNet,
    /// The grouping label (an ENI id, or the internet CIDR).
    key: String,
}

const LINUX: (&str, u16, u16) = ("Linux", 32768, 60999);
const WINDOWS: (&str, u16, u16) = ("Windows", 49152, 65535);

pub(crate) fn eni_kind(e: &NetworkInterface) -> Option<(&'static str, &'static str)> {
    let t = e.interface_type.as_str();
    if e.description.starts_with("ELB ")
        || matches!(
            t,
            "network_load_balancer" | "load_balancer" | "gateway_load_balancer"
        )
    {
        Some(("the load balancer", "Elastic Load Balancing"))
    } else if t == "nat_gateway" {
        Some(("the NAT gateway", "NAT gateway"))
    } else if t == "lambda" || e.description.starts_with("AWS Lambda VPC ENI") {
        Some(("the Lambda function", "AWS Lambda"))
    } else {
        None
    }
}

/// `eni-a (10.0.1.10), eni-b (10.0.1.11)`, at most three named.
fn members_text(c: &Class) -> String {
    let v6 = c.addr.is_ipv6();
    let named: Vec<String> = c
        .members
        .iter()
        .take(3)
        .map(|e| match addr_like(e, v6) {
            Some(a) => format!("{} ({a})", e.id),
            None => e.id.clone(),
        })
        .collect();
    if c.members.len() > 3 {
        format!("{} and {} more", named.join(", "), c.members.len() - 3)
    } else {
        named.join(", ")
    }
}

fn class_client(vpc: &Vpc, c: &Class, key: usize) -> Client {
    let addr = c.addr;
    let net = vpc
        .subnet(&c.rep.subnet_id)
        .and_then(|s| match addr {
            IpAddr::V4(_) => s.ipv4_cidr.map(IpNet::V4),
            IpAddr::V6(a) => s
                .ipv6_cidrs
                .iter()
                .find(|n| n.contains(&a))
                .map(|n| IpNet::V6(*n)),
        })
        .unwrap_or_else(|| IpNet::from(addr));
    let key = format!("{}#{key}", if addr.is_ipv6() { "v6" } else { "v4" });
    match eni_kind(c.rep) {
        Some((who, service)) => Client {
            who: format!("{who} {}", members_text(c)),
            ranges: vec![(service, 1024, 65535, Severity::Error)],
            net,
            key,
        },
        None => Client {
            who: format!("{}, assumed to run Linux,", members_text(c)),
            ranges: vec![(LINUX.0, LINUX.1, LINUX.2, Severity::Warning)],
            net,
            key,
        },
    }
}

/// Interfaces that every check sees alike: the same subnet, groups, kind and public
/// address, and an address (of one family) inside the same NACL, SG and prefix-list
/// CIDRs. The reply check runs once per pair of classes, not per pair of interfaces.
struct Class<'a> {
    members: Vec<&'a NetworkInterface>,
    rep: &'a NetworkInterface,
    addr: IpAddr,
    acl: &'a NetworkAcl,
    groups: Vec<&'a SecurityGroup>,
    public: bool,
}

type ClassKey = (String, Vec<String>, Option<&'static str>, bool, Vec<u32>);

fn classes(vpc: &Vpc, v6: bool) -> Vec<Class<'_>> {
    let mut cidrs: Vec<IpNet> = vpc
        .network_acls
        .iter()
        .flat_map(|a| a.inbound.iter().chain(&a.outbound).map(|e| e.cidr))
        .chain(vpc.security_groups.iter().flat_map(|g| {
            g.ingress
                .iter()
                .chain(&g.egress)
                .filter_map(|r| match r.peer {
                    SgPeer::Cidr(c) => Some(c),
                    _ => None,
                })
        }))
        .chain(
            vpc.prefix_lists
                .iter()
                .flat_map(|p| p.entries.iter().copied()),
        )
        .filter(|c| family_v6(c) == v6)
        .collect();
    cidrs.sort();
    cidrs.dedup();
    let mut index: BTreeMap<ClassKey, usize> = BTreeMap::new();
    let mut out: Vec<Class> = Vec::new();
    for e in &vpc.network_interfaces {
        let (Some(addr), Some(acl)) = (addr_like(e, v6), subnet_acl(vpc, e)) else {
            continue;
        };
        let public = if v6 {
            true
        } else {
            e.public_mappings().next().is_some()
        };
        let sig: Vec<u32> = cidrs
            .iter()
            .enumerate()
            .filter(|(_, c)| c.contains(&addr))
            .map(|(i, _)| i as u32)
            .collect();
        let mut groups = e.security_groups.clone();
        groups.sort();
        let key = (
            e.subnet_id.clone(),
            groups,
            eni_kind(e).map(|k| k.0),
            public,
            sig,
        );
        match index.get(&key) {
            Some(&i) => out[i].members.push(e),
            None => {
                index.insert(key, out.len());
                out.push(Class {
                    members: vec![e],
                    rep: e,
                    addr,
                    acl,
                    groups: groups_of(vpc, e),
                    public,
                });
            }
        }
    }
    out
}

fn ids_text(members: &[&NetworkInterface]) -> Vec<String> {
    members.iter().map(|e| e.id.clone()).collect()
}

fn internet_client(net: IpNet) -> Client {
    Client {
        who: format!("clients on the internet ({net})"),
        ranges: vec![
            (LINUX.0, LINUX.1, LINUX.2, Severity::Warning),
            (WINDOWS.0, WINDOWS.1, WINDOWS.2, Severity::Warning),
        ],
        net,
        key: net.to_string(),
    }
}

fn groups_of<'a>(vpc: &'a Vpc, e: &NetworkInterface) -> Vec<&'a SecurityGroup> {
    e.security_groups
        .iter()
        .filter_map(|g| vpc.security_group(g))
        .collect()
}

/// Whether an SG rule's peer matches `addr`, which belongs to `eni` when it is one
/// of an ENI's private addresses.
fn peer_matches(vpc: &Vpc, peer: &SgPeer, addr: IpAddr, eni: Option<&NetworkInterface>) -> bool {
    match peer {
        SgPeer::Cidr(c) => c.contains(&addr),
        SgPeer::PrefixList(id) => vpc
            .prefix_lists
            .iter()
            .find(|p| &p.id == id)
            .is_some_and(|p| p.entries.iter().any(|c| c.contains(&addr))),
        SgPeer::SecurityGroup(g) => eni.is_some_and(|e| e.security_groups.contains(g)),
    }
}

/// The ports of protocol `proto` the SG rules allow to or from `addr`.
fn sg_ports(
    vpc: &Vpc,
    groups: &[&SecurityGroup],
    ingress: bool,
    proto: u8,
    addr: IpAddr,
    eni: Option<&NetworkInterface>,
) -> Ports {
    let mut out = Vec::new();
    for g in groups {
        for r in if ingress { &g.ingress } else { &g.egress } {
            if r.protocol.matches(proto) && peer_matches(vpc, &r.peer, addr, eni) {
                out = union(&out, &spec_ports(r.ports));
            }
        }
    }
    out
}

fn in_vpc(vpc: &Vpc, net: &IpNet) -> bool {
    vpc.cidrs.iter().any(|c| c.contains(net))
}

/// Addresses outside the VPC that stand for `net` as NACL entries see it: `net`'s
/// first address and the first address of every narrower entry CIDR inside it.
fn outside_reps(vpc: &Vpc, net: IpNet, acls: &[&NetworkAcl]) -> Vec<(IpNet, IpAddr)> {
    let mut nets: BTreeSet<IpNet> = BTreeSet::new();
    nets.insert(net);
    for acl in acls {
        for e in acl.inbound.iter().chain(&acl.outbound) {
            if net.contains(&e.cidr) && e.cidr != net {
                nets.insert(e.cidr);
            }
        }
    }
    nets.into_iter()
        .filter(|n| !in_vpc(vpc, n))
        .map(|n| (net, n.network()))
        .collect()
}

#[derive(Default)]
struct ReplyGroup {
    severity: Option<Severity>,
    acl: String,
    egress: bool,
    origin: Origin,
    rule: Option<String>,
    anchor: Option<NetworkAclEntry>,
    client: String,
    /// `(name, from, to)` of each range that lost ports, and the ports lost.
    lost: Vec<(String, Ports)>,
    /// The entries that drop them.
    droppers: BTreeSet<String>,
    /// `tcp 8080` -> the servers (or `the internet (0.0.0.0/0)`).
    services: BTreeMap<String, BTreeSet<String>>,
    /// The far ends of the replies: what a new rule would name.
    nets: BTreeSet<IpNet>,
    needed: Ports,
}

type ReplyKey = (String, bool, u32, String, u8);

/// Checks the reply of one service through one NACL direction; records what it drops.
#[allow(clippy::too_many_arguments)]
fn check_reply(
    groups: &mut BTreeMap<ReplyKey, ReplyGroup>,
    acl: &NetworkAcl,
    egress: bool,
    proto: u8,
    remote: IpAddr,
    remote_net: IpNet,
    client: &Client,
    service: &(String, Vec<String>),
) {
    let list = entries(acl, egress);
    for &(name, from, to, sev) in &client.ranges {
        let eval = nacl_eval(list, proto, remote, &[(from, to)]);
        let dropped: Vec<&(Ports, Option<usize>)> = eval
            .iter()
            .filter(|(_, i)| i.is_none_or(|i| list[i].action == RuleAction::Deny))
            .collect();
        if dropped.is_empty() {
            continue;
        }
        // The allow entry that lets part of the range through, if any: the one to widen.
        let anchor = eval
            .iter()
            .filter_map(|(_, i)| *i)
            .find(|&i| list[i].action == RuleAction::Allow && list[i].rule_number < 32767);
        let anchor_num = anchor.map_or(0, |i| list[i].rule_number);
        let key = (
            acl.id.clone(),
            egress,
            anchor_num,
            client.key.clone(),
            proto,
        );
        let g = groups.entry(key).or_default();
        g.severity = g.severity.max(Some(sev));
        g.acl = acl.id.clone();
        g.egress = egress;
        g.client = client.who.clone();
        g.nets.insert(remote_net);
        g.needed = union(&g.needed, &[(from, to)]);
        if let Some(i) = anchor {
            g.origin = entry_origin(acl, &list[i]);
            g.rule = Some(nacl_rule_text(&list[i], egress));
            g.anchor = Some(list[i].clone());
        } else {
            // The first entry that drops: an explicit deny, or the NACL itself.
            let first = dropped.iter().find_map(|(_, i)| *i);
            g.origin = match first {
                Some(i) => entry_origin(acl, &list[i]),
                None => acl.origin.clone(),
            };
            if let Some(i) = first.filter(|&i| list[i].rule_number < 32767) {
                g.rule = Some(nacl_rule_text(&list[i], egress));
            }
        }
        let lost: Ports = dropped
            .iter()
            .fold(Vec::new(), |acc, (p, _)| union(&acc, p));
        let label = format!("{name} uses {from}-{to}");
        match g.lost.iter_mut().find(|(n, _)| *n == label) {
            Some((_, p)) => *p = union(p, &lost),
            None => g.lost.push((label, lost)),
        }
        for (_, i) in dropped {
            g.droppers.insert(match i {
                Some(i) if list[*i].rule_number >= 32767 => {
                    format!("rule {} (* deny)", list[*i].rule_number)
                }
                Some(i) => format!("deny rule {}", list[*i].rule_number),
                None => "no rule (denied)".to_string(),
            });
        }
        g.services
            .entry(service.0.clone())
            .or_default()
            .extend(service.1.iter().cloned());
    }
}

fn proto_name(p: u8) -> &'static str {
    if p == PROTO_TCP {
        "tcp"
    } else {
        "udp"
    }
}

fn protos_of(r: &SecurityGroupRule) -> Vec<u8> {
    match r.protocol {
        Protocol::All => vec![PROTO_TCP, PROTO_UDP],
        Protocol::Number(n) if n == PROTO_TCP || n == PROTO_UDP => vec![n],
        _ => vec![],
    }
}

fn rule_nets(vpc: &Vpc, peer: &SgPeer) -> Vec<IpNet> {
    match peer {
        SgPeer::Cidr(c) => vec![*c],
        SgPeer::PrefixList(id) => vpc
            .prefix_lists
            .iter()
            .find(|p| &p.id == id)
            .map(|p| p.entries.clone())
            .unwrap_or_default(),
        SgPeer::SecurityGroup(_) => vec![],
    }
}

fn subnet_acl<'a>(vpc: &'a Vpc, e: &NetworkInterface) -> Option<&'a NetworkAcl> {
    vpc.subnet(&e.subnet_id)
        .and_then(|s| s.network_acl_id.as_deref())
        .and_then(|id| vpc.network_acl(id))
}

/// The address of `e` of the family of `like`: the primary IPv4 or the first IPv6.
fn addr_like(e: &NetworkInterface, v6: bool) -> Option<IpAddr> {
    if v6 {
        e.ipv6.first().map(|a| IpAddr::V6(*a))
    } else {
        e.primary_ipv4().map(IpAddr::V4)
    }
}

fn replies(vpc: &Vpc, out: &mut Vec<Finding>) {
    let mut groups: BTreeMap<ReplyKey, ReplyGroup> = BTreeMap::new();
    for v6 in [false, true] {
        let all = classes(vpc, v6);
        let clients: Vec<Client> = all
            .iter()
            .enumerate()
            .map(|(i, c)| class_client(vpc, c, i))
            .collect();
        for (si, server) in all.iter().enumerate() {
            if server.rep.has_no_security_group() {
                continue;
            }
            let s_acl = server.acl;
            let targets = ids_text(&server.members);
            for g in &server.groups {
                for r in &g.ingress {
                    for proto in protos_of(r) {
                        let rule_ports = spec_ports(r.ports);
                        // Clients inside the VPC, in other subnets.
                        for (ci, client) in all.iter().enumerate() {
                            if ci == si || client.rep.subnet_id == server.rep.subnet_id {
                                continue;
                            }
                            if client.rep.has_no_security_group() && eni_kind(client.rep).is_none()
                            {
                                continue;
                            }
                            let (c_addr, s_addr) = (client.addr, server.addr);
                            if !peer_matches(vpc, &r.peer, c_addr, Some(client.rep)) {
                                continue;
                            }
                            let mut ports = rule_ports.clone();
                            if !client.rep.has_no_security_group() {
                                ports = intersect(
                                    &ports,
                                    &sg_ports(
                                        vpc,
                                        &client.groups,
                                        false,
                                        proto,
                                        s_addr,
                                        Some(server.rep),
                                    ),
                                );
                            }
                            ports = nacl_allowed(&client.acl.outbound, proto, s_addr, &ports);
                            ports = nacl_allowed(&s_acl.inbound, proto, c_addr, &ports);
                            if ports.is_empty() {
                                continue;
                            }
                            let service = (
                                format!("{} {}", proto_name(proto), ports_text(&ports)),
                                targets.clone(),
                            );
                            let c = &clients[ci];
                            check_reply(
                                &mut groups,
                                s_acl,
                                true,
                                proto,
                                c_addr,
                                c.net,
                                c,
                                &service,
                            );
                            check_reply(
                                &mut groups,
                                client.acl,
                                false,
                                proto,
                                s_addr,
                                clients[si].net,
                                c,
                                &service,
                            );
                        }
                        // Clients on the internet, when the server has a public address.
                        if !server.public {
                            continue;
                        }
                        for net in rule_nets(vpc, &r.peer) {
                            if in_vpc(vpc, &net) || family_v6(&net) != v6 {
                                continue;
                            }
                            for (net, rep) in outside_reps(vpc, net, &[s_acl]) {
                                let ports = nacl_allowed(&s_acl.inbound, proto, rep, &rule_ports);
                                if ports.is_empty() {
                                    continue;
                                }
                                let service = (
                                    format!("{} {}", proto_name(proto), ports_text(&ports)),
                                    targets.clone(),
                                );
                                let c = internet_client(net);
                                check_reply(
                                    &mut groups,
                                    s_acl,
                                    true,
                                    proto,
                                    rep,
                                    net,
                                    &c,
                                    &service,
                                );
                            }
                        }
                    }
                }
            }
            // The server's own connections to the internet: it is the client there.
            for g in &server.groups {
                for r in &g.egress {
                    for proto in protos_of(r) {
                        for net in rule_nets(vpc, &r.peer) {
                            if in_vpc(vpc, &net) || family_v6(&net) != v6 {
                                continue;
                            }
                            for (net, rep) in outside_reps(vpc, net, &[s_acl]) {
                                let ports =
                                    nacl_allowed(&s_acl.outbound, proto, rep, &spec_ports(r.ports));
                                if ports.is_empty() {
                                    continue;
                                }
                                let service = (
                                    format!("{} {}", proto_name(proto), ports_text(&ports)),
                                    vec![format!("the internet ({net})")],
                                );
                                let c = &clients[si];
                                check_reply(
                                    &mut groups,
                                    s_acl,
                                    false,
                                    proto,
                                    rep,
                                    net,
                                    c,
                                    &service,
                                );
                            }
                        }
                    }
                }
            }
        }
    }
    for ((_, _, _, _, proto), g) in groups {
        let dir = dir_name(g.egress);
        let services: Vec<String> = g
            .services
            .iter()
            .map(|(what, to)| {
                let to: Vec<&str> = to.iter().map(|s| s.as_str()).collect();
                if to.len() > 5 {
                    format!("{what} to {} and {} more", to[..5].join(", "), to.len() - 5)
                } else {
                    format!("{what} to {}", to.join(", "))
                }
            })
            .collect();
        let shown = if services.len() > 3 {
            format!(
                "{}; and {} more service(s)",
                services[..3].join("; "),
                services.len() - 3
            )
        } else {
            services.join("; ")
        };
        let uses: Vec<String> = g
            .lost
            .iter()
            .map(|(name, _)| name.clone())
            .collect::<Vec<_>>();
        let lost_all = g.lost.iter().fold(Vec::new(), |acc, (_, p)| union(&acc, p));
        let (resource, allows) = match &g.anchor {
            Some(a) => (
                format!("{} {dir} rule {}", g.acl, a.rule_number),
                format!(
                    "allows only {} {} there (rule {})",
                    proto_label(a.protocol),
                    a.ports,
                    a.rule_number
                ),
            ),
            None => (
                format!("{} {dir}", g.acl),
                "allows none of them".to_string(),
            ),
        };
        let need = match g.needed.as_slice() {
            [(f, t)] => format!("{f}-{t}"),
            other => ports_text(other),
        };
        let message = format!(
            "replies to {} {} network ACL {} {dir}, which {allows}. Ephemeral ports: {}; replies to {} fall to {}, so some connections hang: {shown}.",
            g.client,
            if g.egress { "leave through" } else { "enter through" },
            g.acl,
            uses.join(", "),
            ports_text(&lost_all),
            g.droppers.iter().cloned().collect::<Vec<_>>().join(", "),
        );
        let nets: Vec<String> = g.nets.iter().map(|n| n.to_string()).collect();
        let net = match nets.len() {
            0 | 1 => nets.join(""),
            n if n > 4 => format!(
                "each of {} and {} more (one rule each, or one CIDR that holds them)",
                nets[..4].join(", "),
                n - 4
            ),
            _ => format!(
                "each of {} (one rule each, or one CIDR that holds them)",
                nets.join(", ")
            ),
        };
        let fix = match &g.anchor {
            Some(a) => {
                let mut widened = union(&spec_ports(a.ports), &g.needed);
                if widened.len() > 1 {
                    widened = vec![(widened[0].0, widened[widened.len() - 1].1)];
                }
                format!(
                    "widen {dir} rule {} of {} to ports {} ({} {})",
                    a.rule_number,
                    g.acl,
                    ports_text(&widened),
                    proto_name(proto),
                    a.cidr
                )
            }
            None => format!(
                "add an {dir} allow rule to {}, {} ports {need} {} {net}, numbered before the rules that drop the replies",
                g.acl,
                proto_name(proto),
                if g.egress { "to" } else { "from" }
            ),
        };
        out.push(Finding {
            code: "nacl-reply-dropped",
            severity: g.severity.unwrap_or(Severity::Warning),
            resource,
            rule: g.rule,
            message,
            fix,
            origin: g.origin,
        });
    }
}

// ------------------------------------------------------------------------------------
// Shadowed NACL entries.

fn proto_covers(a: Protocol, b: Protocol) -> bool {
    a == Protocol::All || a == b
}

fn icmp_covers(a: PortSpec, b: PortSpec) -> bool {
    match (a, b) {
        (
            PortSpec::Icmp {
                icmp_type: at,
                code: ac,
            },
            PortSpec::Icmp {
                icmp_type: bt,
                code: bc,
            },
        ) => (at.is_none() || at == bt) && (ac.is_none() || ac == bc),
        (a, _) => a.is_any(),
    }
}

fn is_icmp(p: Protocol) -> bool {
    matches!(
        p,
        Protocol::Number(PROTO_ICMP) | Protocol::Number(PROTO_ICMPV6)
    )
}

fn shadowed(vpc: &Vpc, out: &mut Vec<Finding>) {
    for acl in &vpc.network_acls {
        for egress in [false, true] {
            let list = entries(acl, egress);
            for (i, e) in list.iter().enumerate() {
                if e.rule_number >= 32767 {
                    continue;
                }
                let covering: Vec<&NetworkAclEntry> = list[..i]
                    .iter()
                    .filter(|p| {
                        family_v6(&p.cidr) == family_v6(&e.cidr)
                            && p.cidr.contains(&e.cidr)
                            && proto_covers(p.protocol, e.protocol)
                    })
                    .collect();
                let shadow: Vec<&NetworkAclEntry> = if e.protocol.has_ports() {
                    let want = spec_ports(e.ports);
                    let relevant: Vec<&NetworkAclEntry> = covering
                        .iter()
                        .copied()
                        .filter(|p| {
                            p.protocol == Protocol::All
                                || !intersect(&want, &spec_ports(p.ports)).is_empty()
                        })
                        .collect();
                    let got = relevant.iter().fold(Vec::new(), |acc, p| {
                        if p.protocol == Protocol::All {
                            all_ports()
                        } else {
                            union(&acc, &spec_ports(p.ports))
                        }
                    });
                    if subtract(&want, &got).is_empty() {
                        relevant
                    } else {
                        vec![]
                    }
                } else {
                    covering
                        .iter()
                        .copied()
                        .find(|p| {
                            p.protocol == Protocol::All
                                || !is_icmp(e.protocol)
                                || icmp_covers(p.ports, e.ports)
                        })
                        .into_iter()
                        .collect()
                };
                let dir = dir_name(egress);
                if !shadow.is_empty() {
                    let same = shadow.iter().all(|p| p.action == e.action);
                    let nums: Vec<String> =
                        shadow.iter().map(|p| p.rule_number.to_string()).collect();
                    let by = if nums.len() == 1 {
                        format!("rule {}", nums[0])
                    } else {
                        format!("rules {}", nums.join(", "))
                    };
                    let (severity, message, fix) = if same {
                        (
                            Severity::Note,
                            format!(
                                "{dir} rule {} of {} never decides anything: every packet it matches is matched first by {by} ({}), which {} it already; the rule is redundant.",
                                e.rule_number,
                                acl.id,
                                shadow.iter().map(|p| nacl_rule_text(p, egress)).collect::<Vec<_>>().join("; "),
                                if e.action == RuleAction::Allow { "allows" } else { "denies" }
                            ),
                            format!("remove rule {} of {}", e.rule_number, acl.id),
                        )
                    } else {
                        (
                            Severity::Warning,
                            format!(
                                "{dir} rule {} of {} never decides anything: every packet it matches is matched first by {by} ({}), so what it means to {} is never done.",
                                e.rule_number,
                                acl.id,
                                shadow.iter().map(|p| nacl_rule_text(p, egress)).collect::<Vec<_>>().join("; "),
                                e.action
                            ),
                            format!(
                                "give rule {} a number below {} if it should decide, or remove it",
                                e.rule_number,
                                shadow.iter().map(|p| p.rule_number).min().unwrap_or(0)
                            ),
                        )
                    };
                    out.push(Finding {
                        code: "nacl-shadowed",
                        severity,
                        resource: format!("{} {dir} rule {}", acl.id, e.rule_number),
                        rule: Some(nacl_rule_text(e, egress)),
                        message,
                        fix,
                        origin: entry_origin(acl, e),
                    });
                    continue;
                }
                // An allow for a few ports of which earlier denies take some.
                if e.action != RuleAction::Allow || !e.protocol.has_ports() {
                    continue;
                }
                let want = spec_ports(e.ports);
                let span: u32 = want.iter().map(|&(f, t)| (t - f) as u32 + 1).sum();
                if span > 1024 {
                    continue;
                }
                let denies: Vec<&NetworkAclEntry> = covering
                    .iter()
                    .copied()
                    .filter(|p| {
                        p.action == RuleAction::Deny
                            && p.protocol != Protocol::All
                            && !intersect(&want, &spec_ports(p.ports)).is_empty()
                    })
                    .collect();
                if denies.is_empty() {
                    continue;
                }
                let taken = denies.iter().fold(Vec::new(), |acc, p| {
                    union(&acc, &intersect(&want, &spec_ports(p.ports)))
                });
                let left = subtract(&want, &taken);
                out.push(Finding {
                    code: "nacl-partly-shadowed",
                    severity: Severity::Note,
                    resource: format!("{} {dir} rule {}", acl.id, e.rule_number),
                    rule: Some(nacl_rule_text(e, egress)),
                    message: format!(
                        "{dir} rule {} of {} allows {} {} {} {}, but earlier deny {} ({}) take ports {} first: the rule allows only {}.",
                        e.rule_number,
                        acl.id,
                        proto_label(e.protocol),
                        e.ports,
                        if egress { "to" } else { "from" },
                        e.cidr,
                        if denies.len() == 1 { "rule" } else { "rules" },
                        denies.iter().map(|p| nacl_rule_text(p, egress)).collect::<Vec<_>>().join("; "),
                        ports_text(&taken),
                        ports_text(&left),
                    ),
                    fix: format!(
                        "narrow rule {} to ports {} to say what it does, or renumber the deny rules after it if those ports should be allowed",
                        e.rule_number,
                        ports_text(&left)
                    ),
                    origin: entry_origin(acl, e),
                });
            }
        }
    }
}

// ------------------------------------------------------------------------------------
// Administrative and database ports open to the world.

/// Ports that should never be open to the whole internet.
pub const ADMIN_PORTS: &[(u16, &str)] = &[
    (22, "SSH"),
    (23, "Telnet"),
    (445, "SMB"),
    (1433, "SQL Server"),
    (1521, "Oracle"),
    (2375, "Docker API"),
    (2376, "Docker API (TLS)"),
    (2379, "etcd"),
    (3306, "MySQL"),
    (3389, "RDP"),
    (5432, "PostgreSQL"),
    (5601, "Kibana"),
    (5900, "VNC"),
    (5984, "CouchDB"),
    (6379, "Redis"),
    (9200, "Elasticsearch"),
    (9300, "Elasticsearch transport"),
    (11211, "Memcached"),
    (27017, "MongoDB"),
];

fn admin_in(ports: &[(u16, u16)]) -> Vec<String> {
    ADMIN_PORTS
        .iter()
        .filter(|(p, _)| ports.iter().any(|&(f, t)| f <= *p && *p <= t))
        .map(|(p, n)| format!("{p} ({n})"))
        .collect()
}

fn admin_list(v: &[String]) -> String {
    if v.len() > 4 {
        format!("{} and {} more", v[..4].join(", "), v.len() - 4)
    } else {
        v.join(", ")
    }
}

fn world_open(vpc: &Vpc, out: &mut Vec<Finding>) {
    for g in &vpc.security_groups {
        for (idx, r) in g.ingress.iter().enumerate() {
            let world = match &r.peer {
                SgPeer::Cidr(c) => is_world(c).then(|| c.to_string()),
                SgPeer::PrefixList(_) => rule_nets(vpc, &r.peer)
                    .into_iter()
                    .find(is_world)
                    .map(|c| format!("{c} (in {})", r.peer)),
                SgPeer::SecurityGroup(_) => None,
            };
            let Some(world) = world else { continue };
            let what = match r.protocol {
                Protocol::All => {
                    "all traffic (protocol -1), every administrative port included".to_string()
                }
                p if p.has_ports() => {
                    let a = admin_in(&spec_ports(r.ports));
                    if a.is_empty() {
                        continue;
                    }
                    format!("{} {}", proto_label(p), admin_list(&a))
                }
                _ => continue,
            };
            out.push(Finding {
                code: "world-open-admin-port",
                severity: Severity::Warning,
                resource: format!("{} ingress rule {}", g.id, idx + 1),
                rule: Some(r.describe(true)),
                message: format!(
                    "security group {} ({}) lets anyone on the internet ({world}) reach {what}.",
                    g.id,
                    if g.name.is_empty() { "no name" } else { g.name.as_str() }
                ),
                fix: "allow only the addresses that need it (an office range, a prefix list, a bastion's security group), or reach the hosts through Session Manager".into(),
                origin: if r.origin.file.is_empty() { g.origin.clone() } else { r.origin.clone() },
            });
        }
    }
    let used: BTreeSet<&str> = vpc
        .subnets
        .iter()
        .filter_map(|s| s.network_acl_id.as_deref())
        .collect();
    for acl in &vpc.network_acls {
        if !used.contains(acl.id.as_str()) {
            continue;
        }
        for e in &acl.inbound {
            if e.action != RuleAction::Allow || !is_world(&e.cidr) {
                continue;
            }
            let (severity, what) = match e.protocol {
                Protocol::All => (
                    Severity::Note,
                    "all traffic (protocol -1), every administrative port included; only the security groups stand between the internet and those ports".to_string(),
                ),
                p if p.has_ports() => {
                    let ports = spec_ports(e.ports);
                    // A range that holds a client's whole ephemeral range is there for
                    // replies (AWS's own advice is 1024-65535).
                    let reply_range =
                        ports.iter().any(|&(f, t)| f >= 1024 && f <= LINUX.1 && t >= LINUX.2);
                    let a = admin_in(&ports);
                    if a.is_empty() || reply_range {
                        continue;
                    }
                    (Severity::Warning, format!("{} {}", proto_label(p), admin_list(&a)))
                }
                _ => continue,
            };
            out.push(Finding {
                code: "world-open-admin-port",
                severity,
                resource: format!("{} inbound rule {}", acl.id, e.rule_number),
                rule: Some(nacl_rule_text(e, false)),
                message: format!(
                    "network ACL {} lets anyone on the internet ({}) in to {what}.",
                    acl.id, e.cidr
                ),
                fix: format!(
                    "narrow inbound rule {} to the ports the subnets serve, or to the addresses that need the administrative ports",
                    e.rule_number
                ),
                origin: entry_origin(acl, e),
            });
        }
    }
}

// ------------------------------------------------------------------------------------
// Unused groups and references to them.

fn unused_groups(vpc: &Vpc, out: &mut Vec<Finding>) {
    let used: BTreeSet<&str> = vpc
        .network_interfaces
        .iter()
        .flat_map(|e| e.security_groups.iter().map(|s| s.as_str()))
        .collect();
    for g in &vpc.security_groups {
        if used.contains(g.id.as_str()) {
            for (dir, rules) in [("ingress", &g.ingress), ("egress", &g.egress)] {
                for (idx, r) in rules.iter().enumerate() {
                    let SgPeer::SecurityGroup(other) = &r.peer else {
                        continue;
                    };
                    if used.contains(other.as_str()) {
                        continue;
                    }
                    out.push(Finding {
                        code: "sg-reference-unused",
                        severity: Severity::Warning,
                        resource: format!("{} {dir} rule {}", g.id, idx + 1),
                        rule: Some(r.describe(dir == "ingress")),
                        message: format!(
                            "{dir} rule {} of {} names security group {other}, which no network interface uses: the rule matches no address.",
                            idx + 1,
                            g.id
                        ),
                        fix: format!(
                            "attach {other} to the interfaces this rule is meant for, name the group they do use, or remove the rule"
                        ),
                        origin: if r.origin.file.is_empty() { g.origin.clone() } else { r.origin.clone() },
                    });
                }
            }
        } else if g.name != "default" {
            let refs: Vec<&str> = vpc
                .security_groups
                .iter()
                .filter(|o| {
                    o.id != g.id
                        && o.ingress
                            .iter()
                            .chain(&o.egress)
                            .any(|r| r.peer == SgPeer::SecurityGroup(g.id.clone()))
                })
                .map(|o| o.id.as_str())
                .collect();
            out.push(Finding {
                code: "sg-unused",
                severity: Severity::Note,
                resource: g.id.clone(),
                rule: None,
                message: format!(
                    "security group {} ({}) is attached to no network interface: its rules filter nothing{}.",
                    g.id,
                    if g.name.is_empty() { "no name" } else { g.name.as_str() },
                    if refs.is_empty() {
                        String::new()
                    } else {
                        format!(", and the rules of {} that name it match no address", refs.join(", "))
                    }
                ),
                fix: format!("attach {} to the interfaces it is meant for, or delete it", g.id),
                origin: g.origin.clone(),
            });
        }
    }
}

// ------------------------------------------------------------------------------------
// IPv6 twins.

/// Whether `t` (IPv6) covers the same traffic as `r` (IPv4): same protocol (ICMP and
/// ICMPv6 are twins) and ports at least as wide.
fn twin_covers(rp: Protocol, rs: PortSpec, tp: Protocol, ts: PortSpec) -> bool {
    match (rp, tp) {
        (_, Protocol::All) => true,
        (Protocol::All, _) => false,
        (Protocol::Number(PROTO_ICMP), Protocol::Number(PROTO_ICMPV6)) => true,
        (Protocol::Number(a), Protocol::Number(b)) if a == b => {
            if rp.has_ports() {
                subtract(&spec_ports(rs), &spec_ports(ts)).is_empty()
            } else {
                true
            }
        }
        _ => false,
    }
}

/// The IPv6 form of a rule's protocol and ports: `tcp 443`, `icmpv6 type 2 code 0
/// (Packet Too Big)` for ICMP fragmentation-needed.
fn twin_text(p: Protocol, ports: PortSpec) -> String {
    if p == Protocol::Number(PROTO_ICMP) {
        let PortSpec::Icmp { icmp_type, code } = ports else {
            return "icmpv6".into();
        };
        return match (icmp_type, code) {
            (Some(3), Some(4)) => {
                "icmpv6 type 2 code 0 (Packet Too Big, the IPv6 form of fragmentation needed)"
                    .into()
            }
            (Some(3), _) => "icmpv6 type 1 (Destination Unreachable)".into(),
            (Some(8), _) => "icmpv6 type 128 (Echo Request)".into(),
            (Some(0), _) => "icmpv6 type 129 (Echo Reply)".into(),
            (Some(11), _) => "icmpv6 type 3 (Time Exceeded)".into(),
            _ => "icmpv6 (the matching ICMPv6 types)".into(),
        };
    }
    if p.has_ports() && !ports.is_any() {
        format!("{} {ports}", proto_label(p))
    } else {
        proto_label(p)
    }
}

/// An IPv6 address that stands for what an IPv4 CIDR's twin covers: `::` for the
/// world, else the first address of the first IPv6 subnet inside it.
fn want_addr(vpc: &Vpc, c: &IpNet) -> Option<IpAddr> {
    if is_world(c) {
        return Some(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED));
    }
    vpc.subnets
        .iter()
        .filter(|s| s.ipv4_cidr.is_some_and(|n| c.contains(&IpNet::V4(n))))
        .find_map(|s| s.ipv6_cidrs.first())
        .map(|n| IpAddr::V6(n.network()))
}

/// Why an IPv4 CIDR wants an IPv6 twin: the world, or subnets with IPv6 inside it.
fn twin_wanted(vpc: &Vpc, c: &IpNet) -> Option<String> {
    if family_v6(c) {
        return None;
    }
    if is_world(c) {
        return Some("::/0".into());
    }
    let v6: Vec<String> = vpc
        .subnets
        .iter()
        .filter(|s| s.ipv4_cidr.is_some_and(|n| c.contains(&IpNet::V4(n))))
        .flat_map(|s| s.ipv6_cidrs.iter().map(|n| n.to_string()))
        .collect();
    (!v6.is_empty()).then(|| v6.join(", "))
}

fn ipv6_twins(vpc: &Vpc, out: &mut Vec<Finding>) {
    if !vpc.has_ipv6() {
        return;
    }
    for g in &vpc.security_groups {
        let v6_enis = vpc
            .network_interfaces
            .iter()
            .any(|e| e.security_groups.contains(&g.id) && !e.ipv6.is_empty());
        if !v6_enis {
            continue;
        }
        for (dir, rules) in [("ingress", &g.ingress), ("egress", &g.egress)] {
            for (idx, r) in rules.iter().enumerate() {
                let SgPeer::Cidr(c) = &r.peer else { continue };
                let Some(want) = twin_wanted(vpc, c) else {
                    continue;
                };
                let v6_rules = rules
                    .iter()
                    .filter(|t| matches!(&t.peer, SgPeer::Cidr(tc) if family_v6(tc)));
                let twin = if r.protocol.has_ports() {
                    // Rules add up: the IPv6 rules of the protocol together.
                    let got = v6_rules
                        .filter(|t| proto_covers(t.protocol, r.protocol))
                        .fold(Vec::new(), |acc, t| union(&acc, &spec_ports(t.ports)));
                    subtract(&spec_ports(r.ports), &got).is_empty()
                } else {
                    v6_rules
                        .into_iter()
                        .any(|t| twin_covers(r.protocol, r.ports, t.protocol, t.ports))
                };
                if twin {
                    continue;
                }
                let twin = twin_text(r.protocol, r.ports);
                out.push(Finding {
                    code: "ipv6-twin-missing",
                    severity: Severity::Note,
                    resource: format!("{} {dir} rule {}", g.id, idx + 1),
                    rule: Some(r.describe(dir == "ingress")),
                    message: format!(
                        "{dir} rule {} of {} ({}) has no IPv6 twin, but interfaces in the group have IPv6 addresses: the same traffic over IPv6 is not allowed.",
                        idx + 1,
                        g.id,
                        r.describe(dir == "ingress")
                    ),
                    fix: format!(
                        "add an {dir} rule for {twin} {} {want}, if IPv6 should get the same",
                        if dir == "ingress" { "from" } else { "to" }
                    ),
                    origin: if r.origin.file.is_empty() { g.origin.clone() } else { r.origin.clone() },
                });
            }
        }
    }
    for acl in &vpc.network_acls {
        let v6_subnets = vpc.subnets.iter().any(|s| {
            s.network_acl_id.as_deref() == Some(acl.id.as_str()) && !s.ipv6_cidrs.is_empty()
        });
        if !v6_subnets {
            continue;
        }
        for egress in [false, true] {
            let list = entries(acl, egress);
            let dir = dir_name(egress);
            for e in list {
                if e.rule_number >= 32767 {
                    continue;
                }
                let Some(want) = twin_wanted(vpc, &e.cidr) else {
                    continue;
                };
                let v6: Vec<NetworkAclEntry> = list
                    .iter()
                    .filter(|t| t.rule_number < 32767 && family_v6(&t.cidr))
                    .cloned()
                    .collect();
                let twin = match (e.protocol, want_addr(vpc, &e.cidr)) {
                    // First match wins: what the IPv6 entries decide for these ports.
                    (Protocol::Number(p), Some(addr)) if e.protocol.has_ports() => {
                        nacl_eval(&v6, p, addr, &spec_ports(e.ports))
                            .iter()
                            .all(|(_, i)| i.is_some_and(|i| v6[i].action == e.action))
                    }
                    _ => v6.iter().any(|t| {
                        t.action == e.action
                            && twin_covers(e.protocol, e.ports, t.protocol, t.ports)
                    }),
                };
                if twin {
                    continue;
                }
                let free = (e.rule_number + 1..e.rule_number + 10)
                    .find(|n| *n < 32767 && list.iter().all(|t| t.rule_number != *n));
                out.push(Finding {
                    code: "ipv6-twin-missing",
                    severity: Severity::Note,
                    resource: format!("{} {dir} rule {}", acl.id, e.rule_number),
                    rule: Some(nacl_rule_text(e, egress)),
                    message: format!(
                        "{dir} rule {} of {} has no IPv6 twin, but subnets using the network ACL have IPv6: the same traffic over IPv6 is not {} the same way ({}).",
                        e.rule_number,
                        acl.id,
                        if e.action == RuleAction::Allow { "allowed" } else { "denied" },
                        if e.action == RuleAction::Allow { "no IPv6 entry allows all of it; the rest falls to rule 32768, deny" } else { "no IPv6 entry denies all of it first" }
                    ),
                    fix: format!(
                        "add {dir} rule{} {} {} {} {want}, if IPv6 should get the same",
                        free.map(|n| format!(" {n}")).unwrap_or_default(),
                        e.action,
                        twin_text(e.protocol, e.ports),
                        if egress { "to" } else { "from" }
                    ),
                    origin: entry_origin(acl, e),
                });
            }
        }
    }
}

// ------------------------------------------------------------------------------------
// Quotas.

fn quota_checks(vpc: &Vpc, q: &Quotas, out: &mut Vec<Finding>) {
    for g in &vpc.security_groups {
        for (dir, rules) in [("inbound", &g.ingress), ("outbound", &g.egress)] {
            let (mut v4, mut v6) = (0u32, 0u32);
            for r in rules.iter() {
                match &r.peer {
                    SgPeer::Cidr(c) if family_v6(c) => v6 += 1,
                    SgPeer::Cidr(_) | SgPeer::SecurityGroup(_) => v4 += 1,
                    SgPeer::PrefixList(_) => {
                        let nets = rule_nets(vpc, &r.peer);
                        let n = (nets.len() as u32).max(1);
                        if nets.first().is_some_and(family_v6) {
                            v6 += n
                        } else {
                            v4 += n
                        }
                    }
                }
            }
            for (fam, n) in [("IPv4", v4), ("IPv6", v6)] {
                if n > q.rules_per_security_group {
                    out.push(Finding {
                        code: "quota-exceeded",
                        severity: Severity::Error,
                        resource: g.id.clone(),
                        rule: None,
                        message: format!(
                            "security group {} has {n} {fam} {dir} rules (a prefix list counted as its entries, a group reference as one IPv4 rule); the quota rules-per-security-group is {} per direction and address family: AWS refuses the rules past it.",
                            g.id, q.rules_per_security_group
                        ),
                        fix: format!(
                            "merge rules (one port range, one prefix list for many CIDRs) or split them over more groups; if your account's quota is higher, say so with --quota rules-per-security-group=N (now {})",
                            q.rules_per_security_group
                        ),
                        origin: g.origin.clone(),
                    });
                }
            }
        }
    }
    for e in &vpc.network_interfaces {
        let n = e.security_groups.len() as u32;
        if n > q.security_groups_per_interface {
            out.push(Finding {
                code: "quota-exceeded",
                severity: Severity::Error,
                resource: e.id.clone(),
                rule: None,
                message: format!(
                    "network interface {} has {n} security groups; the quota security-groups-per-interface is {}: AWS refuses more.",
                    e.id, q.security_groups_per_interface
                ),
                fix: format!(
                    "merge groups, or if your account's quota is higher, say so with --quota security-groups-per-interface=N (now {})",
                    q.security_groups_per_interface
                ),
                origin: e.origin.clone(),
            });
        }
    }
    for acl in &vpc.network_acls {
        for egress in [false, true] {
            let list = entries(acl, egress);
            for (fam, v6) in [("IPv4", false), ("IPv6", true)] {
                let n = list
                    .iter()
                    .filter(|e| e.rule_number < 32767 && family_v6(&e.cidr) == v6)
                    .count() as u32;
                if n > q.rules_per_network_acl {
                    out.push(Finding {
                        code: "quota-exceeded",
                        severity: Severity::Error,
                        resource: format!("{} {}", acl.id, dir_name(egress)),
                        rule: None,
                        message: format!(
                            "network ACL {} has {n} {fam} {} rules (the * rules not counted); the quota rules-per-network-acl is {} per direction and address family: AWS refuses the rules past it.",
                            acl.id,
                            dir_name(egress),
                            q.rules_per_network_acl
                        ),
                        fix: format!(
                            "merge entries (wider CIDRs or port ranges), or if your account's quota is higher (up to 40), say so with --quota rules-per-network-acl=N (now {})",
                            q.rules_per_network_acl
                        ),
                        origin: acl.origin.clone(),
                    });
                }
            }
        }
    }
}

// ------------------------------------------------------------------------------------
// Output.

fn location(o: &Origin) -> String {
    o.to_string()
}

/// One block per finding, then a count.
pub fn text(findings: &[Finding]) -> String {
    let mut s = String::new();
    for f in findings {
        s.push_str(&format!(
            "{}[{}]: {}: {}\n",
            f.severity,
            f.code,
            location(&f.origin),
            f.resource
        ));
        if let Some(r) = &f.rule {
            s.push_str(&format!("  rule: {r}\n"));
        }
        s.push_str(&format!("  {}\n", f.message));
        s.push_str(&format!("  fix: {}\n\n", f.fix));
    }
    let count = |sev: Severity| findings.iter().filter(|f| f.severity == sev).count();
    if findings.is_empty() {
        s.push_str("no findings\n");
    } else {
        s.push_str(&format!(
            "{} finding(s): {} error(s), {} warning(s), {} note(s)\n",
            findings.len(),
            count(Severity::Error),
            count(Severity::Warning),
            count(Severity::Note)
        ));
    }
    s
}

fn opt_file(o: &Origin) -> serde_json::Value {
    if o.file.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::Value::String(o.file.to_string())
    }
}

fn opt_num(n: u32) -> serde_json::Value {
    if n == 0 {
        serde_json::Value::Null
    } else {
        n.into()
    }
}

/// A JSON array; each finding has the keys `code`, `severity`, `message`, `fix`,
/// `file`, `line`, `column` (`null` where unknown), `resource` and `rule` (`null` when
/// the finding is about an object, not one rule).
pub fn json(findings: &[Finding]) -> String {
    let v: Vec<serde_json::Value> = findings
        .iter()
        .map(|f| {
            serde_json::json!({
                "code": f.code,
                "severity": f.severity.name(),
                "message": f.message,
                "fix": f.fix,
                "file": opt_file(&f.origin),
                "line": opt_num(f.origin.line),
                "column": opt_num(f.origin.column),
                "resource": f.resource,
                "rule": f.rule,
            })
        })
        .collect();
    serde_json::to_string_pretty(&v).expect("JSON of findings")
}

/// A path as a SARIF `uri` (a relative URI reference): `/` separators, and the
/// characters a URI cannot hold percent-encoded.
fn uri(path: &str) -> String {
    let mut s = String::new();
    for b in path.replace('\\', "/").bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~:@!$&'()*+,;=".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

/// SARIF 2.1.0, one run, for code-scanning tools.
pub fn sarif(findings: &[Finding]) -> String {
    let rules: Vec<serde_json::Value> = RULES
        .iter()
        .map(|(id, sev, text)| {
            serde_json::json!({
                "id": id,
                "name": id,
                "shortDescription": { "text": text },
                "defaultConfiguration": { "level": sev.name() },
            })
        })
        .collect();
    let results: Vec<serde_json::Value> = findings
        .iter()
        .map(|f| {
            let mut loc = serde_json::json!({
                "logicalLocations": [{ "fullyQualifiedName": f.resource }],
            });
            if !f.origin.file.is_empty() {
                let mut phys = serde_json::json!({
                    "artifactLocation": { "uri": uri(&f.origin.file) },
                });
                if f.origin.line > 0 {
                    phys["region"] = serde_json::json!({
                        "startLine": f.origin.line,
                        "startColumn": f.origin.column.max(1),
                    });
                }
                loc["physicalLocation"] = phys;
            }
            serde_json::json!({
                "ruleId": f.code,
                "ruleIndex": RULES.iter().position(|r| r.0 == f.code).unwrap_or(0),
                "level": f.severity.name(),
                "message": { "text": format!("{} Fix: {}", f.message, f.fix) },
                "locations": [loc],
                "properties": { "fix": f.fix, "resource": f.resource, "rule": f.rule },
            })
        })
        .collect();
    let doc = serde_json::json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "vpcgate",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "results": results,
        }],
    });
    serde_json::to_string_pretty(&doc).expect("SARIF")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A VPC with a public subnet (IPv4 and IPv6, NACL `acl-pub`) and an app subnet
    /// (IPv4 only, NACL `acl-app`); `rest` adds NACLs, groups and ENIs.
    fn vpc(rest: &str) -> Vpc {
        let text = format!(
            r#"
[vpc]
id = "vpc-1"
cidrs = ["10.0.0.0/16", "2600:1f18::/56"]

[[subnets]]
id = "subnet-pub"
cidr = "10.0.1.0/24"
ipv6_cidr = "2600:1f18:0:1::/64"
network_acl = "acl-pub"

[[subnets]]
id = "subnet-app"
cidr = "10.0.11.0/24"
network_acl = "acl-app"
{rest}
"#
        );
        crate::load::load_str("t.toml", &text).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `acl-pub` allowing everything inside the VPC (IPv4 and IPv6), unless the test writes its own.
    const OPEN_PUB: &str = r#"
[[network_acls]]
id = "acl-pub"
inbound = [
  { rule = 100, protocol = "-1", cidr = "10.0.0.0/16", action = "allow" },
  { rule = 101, protocol = "-1", cidr = "2600:1f18::/56", action = "allow" },
]
outbound = [
  { rule = 100, protocol = "-1", cidr = "10.0.0.0/16", action = "allow" },
  { rule = 101, protocol = "-1", cidr = "2600:1f18::/56", action = "allow" },
]
"#;

    /// A load balancer (or `client_desc`) in the public subnet calling app tasks on
    /// 8080; the app NACL answers to `reply_ports`.
    fn lb_and_app(client_desc: &str, client_type: &str, reply_ports: &str) -> Vpc {
        vpc(&format!(
            r#"{OPEN_PUB}
[[network_acls]]
id = "acl-app"
inbound = [
  {{ rule = 100, protocol = "tcp", ports = "8080", cidr = "10.0.1.0/24", action = "allow" }},
]
outbound = [
  {{ rule = 120, protocol = "tcp", ports = "{reply_ports}", cidr = "10.0.1.0/24", action = "allow" }},
]

[[security_groups]]
id = "sg-lb"
egress = [ {{ protocol = "tcp", ports = "8080", security_group = "sg-app" }} ]

[[security_groups]]
id = "sg-app"
ingress = [ {{ protocol = "tcp", ports = "8080", security_group = "sg-lb" }} ]
egress = []

[[network_interfaces]]
id = "eni-lb"
subnet = "subnet-pub"
private_ips = ["10.0.1.10"]
security_groups = ["sg-lb"]
description = "{client_desc}"
interface_type = "{client_type}"

[[network_interfaces]]
id = "eni-app"
subnet = "subnet-app"
private_ips = ["10.0.11.10"]
security_groups = ["sg-app"]
"#
        ))
    }

    fn codes(f: &[Finding]) -> Vec<(&'static str, Severity, String)> {
        f.iter()
            .map(|f| (f.code, f.severity, f.resource.clone()))
            .collect()
    }

    fn run(v: &Vpc) -> Vec<Finding> {
        lint(v, &Quotas::default())
    }

    #[test]
    fn port_sets() {
        assert_eq!(subtract(&[(0, 100)], &[(10, 20)]), vec![(0, 9), (21, 100)]);
        assert_eq!(subtract(&[(0, 65535)], &[(0, 65535)]), vec![]);
        assert_eq!(union(&[(0, 9)], &[(10, 20)]), vec![(0, 20)]);
        assert_eq!(
            intersect(&[(0, 9), (20, 30)], &[(5, 25)]),
            vec![(5, 9), (20, 25)]
        );
        assert_eq!(
            ports_text(&[(1024, 32767), (61001, 65535)]),
            "1024-32767 and 61001-65535"
        );
    }

    #[test]
    fn replies_to_a_load_balancer_need_1024_and_up() {
        let f = run(&lb_and_app("ELB app/x/1", "interface", "32768-61000"));
        assert_eq!(
            codes(&f),
            vec![(
                "nacl-reply-dropped",
                Severity::Error,
                "acl-app outbound rule 120".to_string()
            )]
        );
        assert!(
            f[0].message
                .contains("Elastic Load Balancing uses 1024-65535"),
            "{}",
            f[0].message
        );
        assert!(
            f[0].message
                .contains("replies to 1024-32767 and 61001-65535 fall to rule 32767"),
            "{}",
            f[0].message
        );
        assert!(
            f[0].message.contains("tcp 8080 to eni-app."),
            "{}",
            f[0].message
        );
        assert!(
            f[0].fix.contains("rule 120") && f[0].fix.contains("1024-65535"),
            "{}",
            f[0].fix
        );
        assert_eq!(f[0].origin.file.as_ref(), "t.toml");
        assert!(f[0].origin.line > 0);
        // The fix applied: nothing left.
        assert_eq!(
            codes(&run(&lb_and_app("ELB app/x/1", "interface", "1024-65535"))),
            vec![]
        );
    }

    /// Interfaces alike are one client; an address a narrower NACL entry names is not.
    #[test]
    fn alike_interfaces_share_a_finding_and_narrower_entries_split_them() {
        let mut v = lb_and_app("ELB app/x/1", "interface", "32768-61000");
        let mut lb2 = v.network_interface("eni-lb").unwrap().clone();
        lb2.id = "eni-lb2".into();
        lb2.private_ipv4 = vec!["10.0.1.11".parse().unwrap()];
        let mut lb3 = lb2.clone();
        lb3.id = "eni-lb3".into();
        lb3.private_ipv4 = vec!["10.0.1.12".parse().unwrap()];
        v.network_interfaces.push(lb2);
        v.network_interfaces.push(lb3);
        v.validate().unwrap();
        let f = run(&v);
        assert_eq!(f.len(), 1, "{f:#?}");
        assert!(
            f[0].message.contains(
                "the load balancer eni-lb (10.0.1.10), eni-lb2 (10.0.1.11), eni-lb3 (10.0.1.12)"
            ),
            "{}",
            f[0].message
        );
        // eni-lb3 gets its own rule, numbered first: only the other two lose replies.
        let acl = v
            .network_acls
            .iter_mut()
            .find(|a| a.id == "acl-app")
            .unwrap();
        let mut own = acl.outbound[0].clone();
        own.rule_number = 110;
        own.cidr = "10.0.1.12/32".parse().unwrap();
        own.ports = PortSpec::Range {
            from: 1024,
            to: 65535,
        };
        acl.outbound.insert(0, own);
        let f = run(&v);
        assert_eq!(f.len(), 1, "{f:#?}");
        assert!(
            f[0].message
                .contains("the load balancer eni-lb (10.0.1.10), eni-lb2 (10.0.1.11) leave"),
            "{}",
            f[0].message
        );
    }

    #[test]
    fn network_load_balancers_and_nat_gateways_are_known_by_type() {
        for t in ["network_load_balancer", "nat_gateway"] {
            let f = run(&lb_and_app("", t, "32768-65535"));
            assert_eq!(f.len(), 1, "{t}: {f:?}");
            assert_eq!(f[0].severity, Severity::Error);
            assert!(f[0].message.contains("1024-65535"), "{}", f[0].message);
        }
    }

    #[test]
    fn an_instance_is_assumed_to_be_linux() {
        // 32768-60999 is enough for a Linux client: no finding.
        assert_eq!(
            codes(&run(&lb_and_app("", "interface", "32768-60999"))),
            vec![]
        );
        // Windows' range only: a Linux client loses 32768-49151.
        let f = run(&lb_and_app("", "interface", "49152-65535"));
        assert_eq!(
            codes(&f),
            vec![(
                "nacl-reply-dropped",
                Severity::Warning,
                "acl-app outbound rule 120".to_string()
            )]
        );
        assert!(
            f[0].message.contains("assumed to run Linux"),
            "{}",
            f[0].message
        );
        assert!(
            f[0].message.contains("replies to 32768-49151"),
            "{}",
            f[0].message
        );
    }

    #[test]
    fn no_reply_check_when_the_request_itself_is_denied() {
        // The app NACL lets nothing in: no service, so no reply to check.
        let v = lb_and_app("ELB app/x/1", "interface", "32768-61000");
        let mut v2 = v.clone();
        let acl = v2
            .network_acls
            .iter_mut()
            .find(|a| a.id == "acl-app")
            .unwrap();
        acl.inbound.retain(|e| e.rule_number >= 32767);
        assert_eq!(codes(&run(&v2)), vec![]);
        // Nor when the client's group does not let the request out.
        let mut v3 = v.clone();
        v3.security_groups
            .iter_mut()
            .find(|g| g.id == "sg-lb")
            .unwrap()
            .egress
            .clear();
        assert_eq!(codes(&run(&v3)), vec![]);
    }

    /// A web server with a public address; `out` is its NACL's outbound list.
    fn web(out: &str, inbound: &str) -> Vpc {
        vpc(&format!(
            r#"
[[network_acls]]
id = "acl-pub"
inbound = [ {inbound} ]
outbound = [ {out} ]

[[network_acls]]
id = "acl-app"
inbound = []
outbound = []

[[security_groups]]
id = "sg-web"
ingress = [ {{ protocol = "tcp", ports = "443", cidr = "0.0.0.0/0" }},
            {{ protocol = "tcp", ports = "443", cidr = "::/0" }} ]
egress = [ {{ protocol = "tcp", ports = "443", cidr = "0.0.0.0/0" }} ]

[[network_interfaces]]
id = "eni-web"
subnet = "subnet-pub"
private_ips = ["10.0.1.20"]
public_ip = "203.0.113.5"
security_groups = ["sg-web"]
"#
        ))
    }

    #[test]
    fn internet_clients_may_be_windows() {
        let inbound = r#"{ rule = 100, protocol = "tcp", ports = "443", cidr = "0.0.0.0/0", action = "allow" },
                         { rule = 110, protocol = "tcp", ports = "1024-65535", cidr = "0.0.0.0/0", action = "allow" }"#;
        let f = run(&web(
            r#"{ rule = 100, protocol = "tcp", ports = "32768-60999", cidr = "0.0.0.0/0", action = "allow" },
               { rule = 110, protocol = "tcp", ports = "443", cidr = "0.0.0.0/0", action = "allow" }"#,
            inbound,
        ));
        let replies: Vec<&Finding> = f
            .iter()
            .filter(|f| f.code == "nacl-reply-dropped")
            .collect();
        assert_eq!(replies.len(), 1, "{f:#?}");
        assert_eq!(replies[0].resource, "acl-pub outbound rule 100");
        assert_eq!(replies[0].severity, Severity::Warning);
        assert!(
            replies[0].message.contains("Windows uses 49152-65535"),
            "{}",
            replies[0].message
        );
        assert!(
            replies[0].message.contains("replies to 61000-65535"),
            "{}",
            replies[0].message
        );
        assert!(replies[0].fix.contains("32768-65535"), "{}", replies[0].fix);
        // 1024-65535 out: the replies of both directions pass.
        let f = run(&web(
            r#"{ rule = 100, protocol = "tcp", ports = "1024-65535", cidr = "0.0.0.0/0", action = "allow" },
               { rule = 110, protocol = "tcp", ports = "443", cidr = "0.0.0.0/0", action = "allow" }"#,
            inbound,
        ));
        assert!(f.iter().all(|f| f.code != "nacl-reply-dropped"), "{f:#?}");
    }

    #[test]
    fn replies_to_the_servers_own_requests_need_an_inbound_rule() {
        // HTTPS out is allowed, nothing comes back in.
        let f = run(&web(
            r#"{ rule = 100, protocol = "tcp", ports = "443", cidr = "0.0.0.0/0", action = "allow" }"#,
            r#"{ rule = 100, protocol = "tcp", ports = "443", cidr = "0.0.0.0/0", action = "allow" }"#,
        ));
        let r: Vec<&Finding> = f
            .iter()
            .filter(|f| f.code == "nacl-reply-dropped")
            .collect();
        // Inbound at the server's own requests (no allow rule at all), and outbound
        // to the internet clients of 443.
        let res: Vec<&str> = r.iter().map(|f| f.resource.as_str()).collect();
        assert!(res.contains(&"acl-pub inbound"), "{r:#?}");
        let inb = r.iter().find(|f| f.resource == "acl-pub inbound").unwrap();
        assert!(
            inb.message
                .contains("replies to eni-web (10.0.1.20), assumed to run Linux, enter through")
                && inb.message.contains("tcp 443 to the internet (0.0.0.0/0)"),
            "{}",
            inb.message
        );
        assert!(
            inb.fix.contains("add an inbound allow rule") && inb.fix.contains("32768-60999"),
            "{}",
            inb.fix
        );
    }

    fn nacl_only(inbound: &str) -> Vpc {
        vpc(&format!(
            r#"
[[network_acls]]
id = "acl-pub"
inbound = [ {inbound} ]
outbound = []
[[network_acls]]
id = "acl-app"
inbound = []
outbound = []
"#
        ))
    }

    fn only(f: &[Finding], code: &str) -> Vec<(Severity, String)> {
        f.iter()
            .filter(|f| f.code == code)
            .map(|f| (f.severity, f.resource.clone()))
            .collect()
    }

    #[test]
    fn shadowed_entries() {
        let f = run(&nacl_only(
            r#"{ rule = 100, protocol = "tcp", ports = "0-65535", cidr = "10.0.0.0/8", action = "allow" },
               { rule = 110, protocol = "tcp", ports = "22", cidr = "10.1.0.0/16", action = "deny" },
               { rule = 120, protocol = "tcp", ports = "443", cidr = "10.2.0.0/16", action = "allow" },
               { rule = 130, protocol = "udp", ports = "53", cidr = "10.2.0.0/16", action = "deny" },
               { rule = 140, protocol = "tcp", ports = "22", cidr = "::/0", action = "deny" },
               { rule = 150, protocol = "-1", cidr = "10.3.0.0/16", action = "deny" }"#,
        ));
        assert_eq!(
            only(&f, "nacl-shadowed"),
            vec![
                (Severity::Warning, "acl-pub inbound rule 110".to_string()),
                (Severity::Note, "acl-pub inbound rule 120".to_string()),
            ]
        );
        let w = f
            .iter()
            .find(|f| f.resource == "acl-pub inbound rule 110")
            .unwrap();
        assert!(w.message.contains("rule 100"), "{}", w.message);
        assert!(w.fix.contains("below 100"), "{}", w.fix);
    }

    #[test]
    fn shadowed_by_several_entries_together() {
        let f = run(&nacl_only(
            r#"{ rule = 100, protocol = "tcp", ports = "1-100", cidr = "0.0.0.0/0", action = "allow" },
               { rule = 110, protocol = "-1", cidr = "10.0.0.0/8", action = "deny" },
               { rule = 120, protocol = "tcp", ports = "101-200", cidr = "0.0.0.0/0", action = "allow" },
               { rule = 130, protocol = "tcp", ports = "50-150", cidr = "10.9.0.0/16", action = "allow" },
               { rule = 140, protocol = "icmp", icmp_type = 8, icmp_code = 0, cidr = "10.0.0.0/8", action = "allow" },
               { rule = 150, protocol = "tcp", ports = "50-250", cidr = "0.0.0.0/0", action = "allow" }"#,
        ));
        let s = only(&f, "nacl-shadowed");
        // 130: ports 50-100 by 100 (allow) and the rest by 110 (deny): mixed, a warning.
        // 140: the -1 deny of 110 takes every ICMP packet first.
        assert_eq!(
            s,
            vec![
                (Severity::Warning, "acl-pub inbound rule 130".to_string()),
                (Severity::Warning, "acl-pub inbound rule 140".to_string()),
            ]
        );
    }

    #[test]
    fn an_allow_for_a_few_ports_that_an_earlier_deny_cuts() {
        let f = run(&nacl_only(
            r#"{ rule = 90, protocol = "tcp", ports = "20-25", cidr = "0.0.0.0/0", action = "deny" },
               { rule = 100, protocol = "tcp", ports = "20-30", cidr = "10.0.0.0/8", action = "allow" },
               { rule = 110, protocol = "tcp", ports = "1024-65535", cidr = "0.0.0.0/0", action = "allow" },
               { rule = 120, protocol = "tcp", ports = "22", cidr = "10.0.0.0/8", action = "allow" },
               { rule = 130, protocol = "tcp", ports = "21-23", cidr = "192.0.2.0/24", action = "deny" },
               { rule = 140, protocol = "tcp", ports = "22-26", cidr = "0.0.0.0/0", action = "allow" }"#,
        ));
        assert_eq!(
            only(&f, "nacl-partly-shadowed"),
            vec![
                (Severity::Note, "acl-pub inbound rule 100".to_string()),
                (Severity::Note, "acl-pub inbound rule 140".to_string()),
            ]
        );
        let n = f
            .iter()
            .find(|f| f.resource == "acl-pub inbound rule 100" && f.code == "nacl-partly-shadowed")
            .unwrap();
        assert!(
            n.message
                .contains("take ports 20-25 first: the rule allows only 26-30"),
            "{}",
            n.message
        );
        // 120 is wholly shadowed by 90 (a deny): a warning, not a note; 130 denies
        // what 90 denied already: redundant, a note.
        assert_eq!(
            only(&f, "nacl-shadowed"),
            vec![
                (Severity::Warning, "acl-pub inbound rule 120".to_string()),
                (Severity::Note, "acl-pub inbound rule 130".to_string()),
            ]
        );
    }

    #[test]
    fn world_open_admin_ports() {
        let v = vpc(r#"
[[network_acls]]
id = "acl-pub"
inbound = [
  { rule = 100, protocol = "tcp", ports = "22", cidr = "0.0.0.0/0", action = "allow" },
  { rule = 110, protocol = "tcp", ports = "1024-65535", cidr = "0.0.0.0/0", action = "allow" },
  { rule = 120, protocol = "-1", cidr = "::/0", action = "allow" },
  { rule = 130, protocol = "tcp", ports = "3389", cidr = "198.51.100.0/24", action = "allow" },
  { rule = 140, protocol = "tcp", ports = "3306", cidr = "0.0.0.0/0", action = "deny" },
]
outbound = []
[[network_acls]]
id = "acl-app"
inbound = []
outbound = []
[[network_acls]]
id = "acl-nowhere"
inbound = [ { rule = 100, protocol = "-1", cidr = "0.0.0.0/0", action = "allow" } ]
outbound = []

[[security_groups]]
id = "sg-a"
ingress = [
  { protocol = "tcp", ports = "22", cidr = "0.0.0.0/0" },
  { protocol = "tcp", ports = "443", cidr = "0.0.0.0/0" },
  { protocol = "tcp", ports = "3000-4000", cidr = "::/0" },
  { protocol = "-1", cidr = "0.0.0.0/0" },
  { protocol = "tcp", ports = "5432", cidr = "10.0.0.0/16" },
  { protocol = "udp", ports = "11211", cidr = "0.0.0.0/0" },
]
[[network_interfaces]]
id = "eni-a"
subnet = "subnet-app"
private_ips = ["10.0.11.5"]
security_groups = ["sg-a"]
"#);
        let f = run(&v);
        assert_eq!(
            only(&f, "world-open-admin-port"),
            vec![
                (Severity::Warning, "acl-pub inbound rule 100".to_string()),
                (Severity::Note, "acl-pub inbound rule 120".to_string()),
                (Severity::Warning, "sg-a ingress rule 1".to_string()),
                (Severity::Warning, "sg-a ingress rule 3".to_string()),
                (Severity::Warning, "sg-a ingress rule 4".to_string()),
                (Severity::Warning, "sg-a ingress rule 6".to_string()),
            ]
        );
        let r3 = f
            .iter()
            .find(|f| f.resource == "sg-a ingress rule 3")
            .unwrap();
        assert!(
            r3.message.contains("3306 (MySQL), 3389 (RDP)"),
            "{}",
            r3.message
        );
    }

    #[test]
    fn unused_groups_and_references_to_them() {
        let v = vpc(&format!(
            r#"{OPEN_PUB}
[[network_acls]]
id = "acl-app"
inbound = []
outbound = []
[[security_groups]]
id = "sg-used"
ingress = [ {{ protocol = "tcp", ports = "22", security_group = "sg-lonely" }},
            {{ protocol = "tcp", ports = "80", security_group = "sg-used" }} ]
[[security_groups]]
id = "sg-lonely"
name = "lonely"
ingress = [ {{ protocol = "tcp", ports = "22", security_group = "sg-lonely" }} ]
[[security_groups]]
id = "sg-dflt"
name = "default"
[[network_interfaces]]
id = "eni-a"
subnet = "subnet-app"
private_ips = ["10.0.11.5"]
security_groups = ["sg-used"]
"#
        ));
        let f = run(&v);
        assert_eq!(
            only(&f, "sg-unused"),
            vec![(Severity::Note, "sg-lonely".to_string())]
        );
        assert_eq!(
            only(&f, "sg-reference-unused"),
            vec![(Severity::Warning, "sg-used ingress rule 1".to_string())]
        );
        let u = f.iter().find(|f| f.code == "sg-unused").unwrap();
        assert!(
            u.message.contains("the rules of sg-used that name it"),
            "{}",
            u.message
        );
    }

    fn twin_vpc(sg_rules: &str, eni_v6: bool) -> Vpc {
        vpc(&format!(
            r#"{OPEN_PUB}
[[network_acls]]
id = "acl-app"
inbound = [ {{ rule = 100, protocol = "tcp", ports = "443", cidr = "0.0.0.0/0", action = "allow" }} ]
outbound = []
[[security_groups]]
id = "sg-w"
ingress = [ {sg_rules} ]
[[network_interfaces]]
id = "eni-w"
subnet = "subnet-pub"
private_ips = ["10.0.1.5"]
{}
security_groups = ["sg-w"]
"#,
            if eni_v6 {
                r#"ipv6 = ["2600:1f18:0:1::5"]"#
            } else {
                ""
            }
        ))
    }

    #[test]
    fn ipv4_rules_without_their_ipv6_twin() {
        let f = run(&twin_vpc(
            r#"{ protocol = "tcp", ports = "443", cidr = "0.0.0.0/0" },
               { protocol = "tcp", ports = "80", cidr = "0.0.0.0/0" },
               { protocol = "tcp", ports = "1-1000", cidr = "::/0" },
               { protocol = "tcp", ports = "8443", cidr = "10.0.1.0/24" },
               { protocol = "tcp", ports = "8080", cidr = "10.0.11.0/24" },
               { protocol = "tcp", ports = "9000", cidr = "198.51.100.0/24" },
               { protocol = "icmp", icmp_type = 3, icmp_code = 4, cidr = "0.0.0.0/0" }"#,
            true,
        ));
        // 443 and 80 are inside ::/0 1-1000; 8443 names a subnet with IPv6; 8080 one
        // without; 9000 an outside range whose IPv6 we cannot know.
        assert_eq!(
            only(&f, "ipv6-twin-missing"),
            vec![
                (Severity::Note, "sg-w ingress rule 4".to_string()),
                (Severity::Note, "sg-w ingress rule 7".to_string()),
            ]
        );
        let icmp = f
            .iter()
            .find(|f| f.resource == "sg-w ingress rule 7")
            .unwrap();
        assert!(icmp.fix.contains("icmpv6 type 2 code 0"), "{}", icmp.fix);
        // acl-app's subnet has no IPv6: its IPv4-only rule is fine.
        assert!(
            f.iter().all(|f| !f.resource.starts_with("acl-app")),
            "{f:#?}"
        );
        // No IPv6 address on the group's ENIs: nothing to twin.
        let f = run(&twin_vpc(
            r#"{ protocol = "tcp", ports = "443", cidr = "0.0.0.0/0" }"#,
            false,
        ));
        assert_eq!(only(&f, "ipv6-twin-missing"), vec![]);
    }

    #[test]
    fn nacl_ipv6_twins_follow_first_match() {
        let v = vpc(r#"
[[network_acls]]
id = "acl-pub"
inbound = [
  { rule = 100, protocol = "tcp", ports = "443", cidr = "0.0.0.0/0", action = "allow" },
  { rule = 110, protocol = "tcp", ports = "22", cidr = "0.0.0.0/0", action = "allow" },
  { rule = 120, protocol = "tcp", ports = "0-1023", cidr = "::/0", action = "allow" },
  { rule = 130, protocol = "tcp", ports = "8080", cidr = "0.0.0.0/0", action = "allow" },
]
outbound = []
[[network_acls]]
id = "acl-app"
inbound = []
outbound = []
"#);
        let f = run(&v);
        assert_eq!(
            only(&f, "ipv6-twin-missing"),
            vec![(Severity::Note, "acl-pub inbound rule 130".to_string())]
        );
        let n = f.iter().find(|f| f.code == "ipv6-twin-missing").unwrap();
        assert!(
            n.fix
                .contains("add inbound rule 131 allow tcp 8080 from ::/0"),
            "{}",
            n.fix
        );
    }

    #[test]
    fn quotas() {
        let rules: Vec<String> = (0..61)
            .map(|i| {
                format!(
                    r#"{{ protocol = "tcp", ports = "{}", cidr = "10.0.0.0/16" }}"#,
                    1000 + i
                )
            })
            .collect();
        let entries: Vec<String> = (1..=21)
            .map(|i| format!(r#"{{ rule = {i}, protocol = "tcp", ports = "{}", cidr = "10.0.0.0/16", action = "allow" }}"#, 1000 + i))
            .collect();
        let groups: String = (1..=6)
            .map(|i| format!("[[security_groups]]\nid = \"sg-{i}\"\n"))
            .collect();
        let v = vpc(&format!(
            r#"{OPEN_PUB}
[[network_acls]]
id = "acl-app"
inbound = [ {} ]
outbound = []
[[security_groups]]
id = "sg-big"
ingress = [ {} ]
{groups}
[[network_interfaces]]
id = "eni-a"
subnet = "subnet-app"
private_ips = ["10.0.11.5"]
security_groups = ["sg-big", "sg-1", "sg-2", "sg-3", "sg-4", "sg-5"]
"#,
            entries.join(",\n"),
            rules.join(",\n")
        ));
        assert_eq!(
            only(&run(&v), "quota-exceeded"),
            vec![
                (Severity::Error, "acl-app inbound".to_string()),
                (Severity::Error, "sg-big".to_string()),
                (Severity::Error, "eni-a".to_string()),
            ]
        );
        let mut q = Quotas::default();
        q.set("rules-per-security-group=61").unwrap();
        q.set("security-groups-per-interface=6").unwrap();
        q.set("rules-per-network-acl=40").unwrap();
        assert_eq!(only(&lint(&v, &q), "quota-exceeded"), vec![]);
        assert!(q
            .set("rules-per-vpc=3")
            .unwrap_err()
            .contains("unknown quota `rules-per-vpc`"));
        assert!(q.set("rules-per-network-acl").is_err());
        assert!(q.set("rules-per-network-acl=0").is_err());
    }

    #[test]
    fn fail_levels() {
        let f = run(&lb_and_app("", "interface", "49152-65535"));
        assert!(fails(&f, Severity::Note));
        assert!(fails(&f, Severity::Warning));
        assert!(!fails(&f, Severity::Error));
        assert!(!fails(&[], Severity::Note));
    }

    #[test]
    fn json_and_sarif_shapes() {
        let f = run(&lb_and_app("ELB app/x/1", "interface", "32768-61000"));
        let j: serde_json::Value = serde_json::from_str(&json(&f)).unwrap();
        let a = j.as_array().unwrap();
        assert_eq!(a.len(), 1);
        for k in [
            "code", "severity", "message", "fix", "file", "line", "column", "resource", "rule",
        ] {
            assert!(a[0].get(k).is_some(), "{k}");
        }
        assert_eq!(a[0]["code"], "nacl-reply-dropped");
        assert_eq!(a[0]["severity"], "error");
        let s: serde_json::Value = serde_json::from_str(&sarif(&f)).unwrap();
        assert_eq!(s["version"], "2.1.0");
        let rules = s["runs"][0]["tool"]["driver"]["rules"].as_array().unwrap();
        assert_eq!(rules.len(), RULES.len());
        let r = &s["runs"][0]["results"][0];
        assert_eq!(r["ruleId"], "nacl-reply-dropped");
        assert_eq!(
            rules[r["ruleIndex"].as_u64().unwrap() as usize]["id"],
            "nacl-reply-dropped"
        );
        assert_eq!(r["level"], "error");
        let p = &r["locations"][0]["physicalLocation"];
        assert_eq!(p["artifactLocation"]["uri"], "t.toml");
        assert_eq!(p["region"]["startLine"], f[0].origin.line);
        assert_eq!(uri("my vpc/a%b.json"), "my%20vpc/a%25b.json");
    }
}
