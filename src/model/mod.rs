//! The VPC as plain, validated data: the VPC, its subnets, network ACLs, security
//! groups, network interfaces (ENIs) and managed prefix lists.
//!
//! This module does no I/O. The loaders in [`crate::load`] fill a [`Vpc`] from a
//! ruleset TOML file or from `aws ec2 describe-*` JSON and then call
//! [`Vpc::validate`], which fills in what AWS fills in (default NACL association,
//! the `*` deny rules, canonical CIDRs) and rejects what AWS would reject. Every
//! object remembers where it was written ([`Origin`]) so that a validation error can
//! name the file, line, column and field.
//!
//! ```
//! use vpcgate::model::*;
//! let mut vpc = Vpc::new("vpc-1");
//! vpc.cidrs.push("10.0.0.0/16".parse().unwrap());
//! vpc.subnets.push(Subnet::new("subnet-a", "10.0.1.0/24".parse().unwrap()));
//! vpc.validate().unwrap();
//! // The subnet had no NACL: it now uses the VPC's default NACL, which allows all.
//! assert_eq!(vpc.network_acls.len(), 1);
//! assert!(vpc.network_acls[0].is_default);
//! ```
#![deny(clippy::disallowed_methods, clippy::disallowed_types)]

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// Where an object was written: file, 1-based line and column. `line == 0` means
/// unknown (an object that AWS or the project created implicitly).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origin {
    pub file: Arc<str>,
    pub line: u32,
    pub column: u32,
}

impl Origin {
    pub fn new(file: &str, line: u32, column: u32) -> Origin {
        Origin {
            file: file.into(),
            line,
            column,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.file.is_empty() {
            write!(f, "<implicit>")
        } else if self.line == 0 {
            write!(f, "{}", self.file)
        } else {
            write!(f, "{}:{}:{}", self.file, self.line, self.column)
        }
    }
}

/// A ruleset error for people: where, which field, what is wrong and what is valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RulesetError {
    pub origin: Origin,
    /// The field, as a path a person can find: `network_acls[2].inbound[0].rule_number`
    /// or `NetworkAcls[0].Entries[3].RuleNumber`.
    pub field: String,
    pub message: String,
}

impl RulesetError {
    pub fn new(origin: &Origin, field: impl Into<String>, message: impl Into<String>) -> Self {
        RulesetError {
            origin: origin.clone(),
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for RulesetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.origin, self.message)
        } else {
            write!(f, "{}: {}: {}", self.origin, self.field, self.message)
        }
    }
}

impl std::error::Error for RulesetError {}

/// All the errors found in one ruleset; loading reports every one, not just the first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RulesetErrors(pub Vec<RulesetError>);

impl fmt::Display for RulesetErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "error: {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for RulesetErrors {}

impl From<RulesetError> for RulesetErrors {
    fn from(e: RulesetError) -> Self {
        RulesetErrors(vec![e])
    }
}

/// IP protocol of a rule: all protocols (`-1`) or one IANA number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    All,
    Number(u8),
}

pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_ICMPV6: u8 = 58;

impl Protocol {
    /// Parses what `IpProtocol` / `Protocol` may hold: `-1`, `all`, a name
    /// (`tcp`, `udp`, `icmp`, `icmpv6`) or a number 0..=255.
    pub fn parse(s: &str) -> Option<Protocol> {
        match s.trim().to_ascii_lowercase().as_str() {
            "-1" | "all" => Some(Protocol::All),
            "tcp" => Some(Protocol::Number(PROTO_TCP)),
            "udp" => Some(Protocol::Number(PROTO_UDP)),
            "icmp" => Some(Protocol::Number(PROTO_ICMP)),
            "icmpv6" | "icmp6" => Some(Protocol::Number(PROTO_ICMPV6)),
            n => n.parse::<u8>().ok().map(Protocol::Number),
        }
    }

    /// True when a rule of this protocol looks at ports (TCP, UDP).
    pub fn has_ports(self) -> bool {
        matches!(
            self,
            Protocol::Number(PROTO_TCP) | Protocol::Number(PROTO_UDP)
        )
    }

    /// A name for people: `all`, `tcp`, `udp`, `icmp`, `icmpv6` or `proto N`.
    pub fn label(self) -> String {
        match self {
            Protocol::All => "all".into(),
            Protocol::Number(PROTO_TCP) => "tcp".into(),
            Protocol::Number(PROTO_UDP) => "udp".into(),
            Protocol::Number(PROTO_ICMP) => "icmp".into(),
            Protocol::Number(PROTO_ICMPV6) => "icmpv6".into(),
            Protocol::Number(n) => format!("proto {n}"),
        }
    }

    pub fn matches(self, proto: u8) -> bool {
        match self {
            Protocol::All => true,
            Protocol::Number(n) => n == proto,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Protocol::All => write!(f, "-1"),
            Protocol::Number(n) => write!(f, "{n}"),
        }
    }
}

/// What a rule says about ports or ICMP type and code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PortSpec {
    /// Every port (protocol -1, protocols without ports, or a TCP/UDP range 0-65535).
    Any,
    /// An inclusive destination-port range (TCP and UDP).
    Range { from: u16, to: u16 },
    /// ICMP / ICMPv6 type and code; `None` is the `-1` wildcard.
    Icmp {
        icmp_type: Option<u8>,
        code: Option<u8>,
    },
}

impl PortSpec {
    /// True when the spec lets every port (or every type and code) through.
    pub fn is_any(self) -> bool {
        match self {
            PortSpec::Any => true,
            PortSpec::Range { from, to } => from == 0 && to == 65535,
            PortSpec::Icmp { icmp_type, code } => icmp_type.is_none() && code.is_none(),
        }
    }
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PortSpec::Any => write!(f, "all"),
            PortSpec::Range { from, to } if from == to => write!(f, "{from}"),
            PortSpec::Range { from, to } => write!(f, "{from}-{to}"),
            PortSpec::Icmp { icmp_type, code } => match (icmp_type, code) {
                (Some(t), Some(c)) => write!(f, "type {t} code {c}"),
                (Some(t), None) => write!(f, "type {t}, any code"),
                (None, None) => write!(f, "any type"),
                (None, Some(c)) => write!(f, "any type, code {c}"),
            },
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RuleAction {
    Allow,
    Deny,
}

impl fmt::Display for RuleAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RuleAction::Allow => "allow",
            RuleAction::Deny => "deny",
        })
    }
}

/// One network ACL entry. Rule numbers 1..=32766 are the user's; 32767 (IPv4) and
/// 32768 (IPv6) are the `*` deny rules that [`Vpc::validate`] adds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkAclEntry {
    pub rule_number: u32,
    pub protocol: Protocol,
    /// `CidrBlock` or `Ipv6CidrBlock`: the source for inbound, destination for outbound.
    pub cidr: IpNet,
    pub ports: PortSpec,
    pub action: RuleAction,
    pub origin: Origin,
}

impl NetworkAclEntry {
    /// The catch-all `*` deny rule of a family.
    pub fn catch_all(v6: bool) -> NetworkAclEntry {
        NetworkAclEntry {
            rule_number: if v6 { 32768 } else { 32767 },
            protocol: Protocol::All,
            cidr: if v6 {
                IpNet::V6(Ipv6Net::default())
            } else {
                IpNet::V4(Ipv4Net::default())
            },
            ports: PortSpec::Any,
            action: RuleAction::Deny,
            origin: Origin::default(),
        }
    }

    /// The label the summary and verdicts use: `32767` shows as `*` in the console,
    /// but we print the API number, which is what `describe-network-acls` shows.
    pub fn label(&self) -> String {
        self.rule_number.to_string()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkAcl {
    pub id: String,
    pub is_default: bool,
    /// Inbound entries, sorted by rule number after validation.
    pub inbound: Vec<NetworkAclEntry>,
    /// Outbound entries, sorted by rule number after validation.
    pub outbound: Vec<NetworkAclEntry>,
    /// Subnets explicitly associated (from `Associations` or a subnet's `network_acl`).
    pub associations: Vec<String>,
    pub origin: Origin,
}

impl NetworkAcl {
    pub fn new(id: &str) -> NetworkAcl {
        NetworkAcl {
            id: id.to_string(),
            is_default: false,
            inbound: Vec::new(),
            outbound: Vec::new(),
            associations: Vec::new(),
            origin: Origin::default(),
        }
    }

    /// The default NACL AWS creates with a VPC: rule 100 allows all IPv4, rule 101
    /// all IPv6 (only when the VPC has an IPv6 CIDR), then the `*` rules.
    pub fn aws_default(id: &str, ipv6: bool) -> NetworkAcl {
        let mut acl = NetworkAcl::new(id);
        acl.is_default = true;
        for list in [&mut acl.inbound, &mut acl.outbound] {
            list.push(NetworkAclEntry {
                rule_number: 100,
                protocol: Protocol::All,
                cidr: IpNet::V4(Ipv4Net::default()),
                ports: PortSpec::Any,
                action: RuleAction::Allow,
                origin: Origin::default(),
            });
            if ipv6 {
                list.push(NetworkAclEntry {
                    rule_number: 101,
                    protocol: Protocol::All,
                    cidr: IpNet::V6(Ipv6Net::default()),
                    ports: PortSpec::Any,
                    action: RuleAction::Allow,
                    origin: Origin::default(),
                });
            }
        }
        acl
    }
}

/// The peer of a security-group rule: the source of an inbound rule, the destination
/// of an outbound rule.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SgPeer {
    Cidr(IpNet),
    PrefixList(String),
    SecurityGroup(String),
}

impl fmt::Display for SgPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SgPeer::Cidr(c) => write!(f, "{c}"),
            SgPeer::PrefixList(p) => write!(f, "{p}"),
            SgPeer::SecurityGroup(g) => write!(f, "{g}"),
        }
    }
}

/// One security-group rule (one peer; an AWS `IpPermission` with several peers
/// becomes several rules).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityGroupRule {
    pub protocol: Protocol,
    pub ports: PortSpec,
    pub peer: SgPeer,
    pub description: Option<String>,
    pub origin: Origin,
}

impl SecurityGroupRule {
    /// A short text for the summary: `tcp 443 from 0.0.0.0/0`.
    pub fn describe(&self, ingress: bool) -> String {
        let proto = self.protocol.label();
        let dir = if ingress { "from" } else { "to" };
        if matches!(self.ports, PortSpec::Any) {
            format!("{proto} {dir} {}", self.peer)
        } else {
            format!("{proto} {} {dir} {}", self.ports, self.peer)
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityGroup {
    pub id: String,
    pub name: String,
    pub description: String,
    pub ingress: Vec<SecurityGroupRule>,
    pub egress: Vec<SecurityGroupRule>,
    pub origin: Origin,
}

impl SecurityGroup {
    pub fn new(id: &str) -> SecurityGroup {
        SecurityGroup {
            id: id.to_string(),
            name: String::new(),
            description: String::new(),
            ingress: Vec::new(),
            egress: Vec::new(),
            origin: Origin::default(),
        }
    }
}

/// Connection-tracking idle timeouts in seconds (EMULATION.md §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConntrackTimeouts {
    /// `TcpEstablishedTimeout`: a SYN-ACK or any packet seen in both directions.
    pub tcp_established: u32,
    /// TCP before it is established.
    pub tcp_unestablished: u32,
    /// TCP after an RST, or FIN from both sides; then the entry is removed.
    pub tcp_closing: u32,
    /// `UdpTimeout`: one direction, or a single request and reply.
    pub udp: u32,
    /// `UdpStreamTimeout`: at least two packets seen in each direction.
    pub udp_stream: u32,
    /// ICMP, keyed by id.
    pub icmp: u32,
    /// Other protocols, keyed by addresses and protocol.
    pub other: u32,
}

impl Default for ConntrackTimeouts {
    fn default() -> Self {
        ConntrackTimeouts {
            tcp_established: 432_000,
            tcp_unestablished: 120,
            tcp_closing: 5,
            udp: 30,
            udp_stream: 180,
            icmp: 30,
            other: 600,
        }
    }
}

/// Overrides of [`ConntrackTimeouts`], as a ruleset or `ConnectionTrackingConfiguration`
/// gives them; `None` keeps the value from the level above.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConntrackOverrides {
    pub tcp_established: Option<u32>,
    pub tcp_unestablished: Option<u32>,
    pub tcp_closing: Option<u32>,
    pub udp: Option<u32>,
    pub udp_stream: Option<u32>,
    pub icmp: Option<u32>,
    pub other: Option<u32>,
}

impl ConntrackOverrides {
    pub fn apply(&self, base: ConntrackTimeouts) -> ConntrackTimeouts {
        ConntrackTimeouts {
            tcp_established: self.tcp_established.unwrap_or(base.tcp_established),
            tcp_unestablished: self.tcp_unestablished.unwrap_or(base.tcp_unestablished),
            tcp_closing: self.tcp_closing.unwrap_or(base.tcp_closing),
            udp: self.udp.unwrap_or(base.udp),
            udp_stream: self.udp_stream.unwrap_or(base.udp_stream),
            icmp: self.icmp.unwrap_or(base.icmp),
            other: self.other.unwrap_or(base.other),
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == ConntrackOverrides::default()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subnet {
    pub id: String,
    pub ipv4_cidr: Option<Ipv4Net>,
    pub ipv6_cidrs: Vec<Ipv6Net>,
    /// `us-east-1a`; may be empty.
    pub availability_zone: String,
    /// `use1-az1`; may be empty (flow logs then print `-`).
    pub availability_zone_id: String,
    /// The NACL the subnet uses; filled by [`Vpc::validate`] (default NACL if none).
    pub network_acl_id: Option<String>,
    pub origin: Origin,
}

impl Subnet {
    pub fn new(id: &str, cidr: Ipv4Net) -> Subnet {
        Subnet {
            id: id.to_string(),
            ipv4_cidr: Some(cidr),
            ipv6_cidrs: Vec::new(),
            availability_zone: String::new(),
            availability_zone_id: String::new(),
            network_acl_id: None,
            origin: Origin::default(),
        }
    }

    pub fn contains(&self, addr: IpAddr) -> bool {
        match addr {
            IpAddr::V4(a) => self.ipv4_cidr.is_some_and(|c| c.contains(&a)),
            IpAddr::V6(a) => self.ipv6_cidrs.iter().any(|c| c.contains(&a)),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkInterface {
    pub id: String,
    pub subnet_id: String,
    /// Private IPv4 addresses; the first is the primary.
    pub private_ipv4: Vec<Ipv4Addr>,
    pub ipv6: Vec<Ipv6Addr>,
    /// A public or Elastic IPv4 address the internet gateway maps to the primary.
    pub public_ipv4: Option<Ipv4Addr>,
    /// Elastic IPs on secondary private addresses, as `(public, private)`: AWS prints
    /// an `Association` per private address (EMULATION.md §1).
    pub secondary_public_ipv4: Vec<(Ipv4Addr, Ipv4Addr)>,
    /// Delegated prefixes (`Ipv4Prefixes`, `Ipv6Prefixes`): every address in them
    /// belongs to this ENI.
    pub ipv4_prefixes: Vec<Ipv4Net>,
    pub ipv6_prefixes: Vec<Ipv6Net>,
    /// `InterfaceType` as `describe-network-interfaces` prints it (`interface`,
    /// `nat_gateway`, `transit_gateway`, ...). Informational: what decides the SG
    /// check is whether `security_groups` is empty.
    pub interface_type: String,
    /// The ENI's groups. **Empty means no security group at all** (NAT gateways,
    /// transit gateways, ...): no SG check and no connection tracking; only NACLs
    /// filter its traffic (EMULATION.md §1).
    pub security_groups: Vec<String>,
    pub instance_id: Option<String>,
    /// The owner account (flow-log `account-id`); empty means the VPC's account.
    pub owner_id: String,
    pub description: String,
    /// Per-ENI timeouts on top of the VPC's.
    pub conntrack: ConntrackOverrides,
    /// The tracked-connection allowance of the instance (or of this ENI when it has no
    /// instance). `None`: unlimited.
    pub max_tracked_connections: Option<u32>,
    pub origin: Origin,
}

impl NetworkInterface {
    pub fn new(id: &str, subnet_id: &str, primary: Ipv4Addr) -> NetworkInterface {
        NetworkInterface {
            id: id.to_string(),
            subnet_id: subnet_id.to_string(),
            private_ipv4: vec![primary],
            ipv6: Vec::new(),
            public_ipv4: None,
            secondary_public_ipv4: Vec::new(),
            ipv4_prefixes: Vec::new(),
            ipv6_prefixes: Vec::new(),
            interface_type: "interface".to_string(),
            security_groups: Vec::new(),
            instance_id: None,
            owner_id: String::new(),
            description: String::new(),
            conntrack: ConntrackOverrides::default(),
            max_tracked_connections: None,
            origin: Origin::default(),
        }
    }

    /// The primary private IPv4, which flow logs show for the ENI's side.
    pub fn primary_ipv4(&self) -> Option<Ipv4Addr> {
        self.private_ipv4.first().copied()
    }

    /// Every private address (IPv4 and IPv6), delegated prefixes aside.
    pub fn private_addrs(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.private_ipv4
            .iter()
            .map(|a| IpAddr::V4(*a))
            .chain(self.ipv6.iter().map(|a| IpAddr::V6(*a)))
    }

    /// Every private address and delegated prefix, as networks: what an SG reference
    /// to this ENI's groups matches.
    pub fn private_nets(&self) -> impl Iterator<Item = IpNet> + '_ {
        self.private_addrs()
            .map(IpNet::from)
            .chain(self.ipv4_prefixes.iter().map(|p| IpNet::V4(*p)))
            .chain(self.ipv6_prefixes.iter().map(|p| IpNet::V6(*p)))
    }

    /// Every `(public IPv4, private IPv4 it maps to)` pair: the primary's public
    /// address first, then the Elastic IPs of secondary addresses.
    pub fn public_mappings(&self) -> impl Iterator<Item = (Ipv4Addr, Ipv4Addr)> + '_ {
        self.public_ipv4
            .zip(self.primary_ipv4())
            .into_iter()
            .chain(self.secondary_public_ipv4.iter().copied())
    }

    /// True when the ENI has no security group (EMULATION.md §1): no SG check, no
    /// connection tracking.
    pub fn has_no_security_group(&self) -> bool {
        self.security_groups.is_empty()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrefixList {
    pub id: String,
    pub name: String,
    pub entries: Vec<IpNet>,
    pub origin: Origin,
}

/// One VPC: what a ruleset describes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vpc {
    pub id: String,
    pub account_id: String,
    pub region: String,
    /// IPv4 and IPv6 CIDRs; the first IPv4 one is the primary (its base+2 is the
    /// Amazon DNS resolver).
    pub cidrs: Vec<IpNet>,
    pub subnets: Vec<Subnet>,
    pub network_acls: Vec<NetworkAcl>,
    pub security_groups: Vec<SecurityGroup>,
    pub network_interfaces: Vec<NetworkInterface>,
    pub prefix_lists: Vec<PrefixList>,
    /// VPC-wide connection-tracking timeouts (ENIs may override).
    pub conntrack: ConntrackTimeouts,
    pub origin: Origin,
    /// What loading and validation found that cannot change a verdict, or that the
    /// user must hear about (EMULATION.md §1): printed as `warning: ...` at load time.
    pub warnings: Vec<RulesetError>,
}

impl Vpc {
    pub fn new(id: &str) -> Vpc {
        Vpc {
            id: id.to_string(),
            account_id: String::new(),
            region: String::new(),
            cidrs: Vec::new(),
            subnets: Vec::new(),
            network_acls: Vec::new(),
            security_groups: Vec::new(),
            network_interfaces: Vec::new(),
            prefix_lists: Vec::new(),
            conntrack: ConntrackTimeouts::default(),
            origin: Origin::default(),
            warnings: Vec::new(),
        }
    }

    pub fn has_ipv6(&self) -> bool {
        self.cidrs.iter().any(|c| matches!(c, IpNet::V6(_)))
    }

    /// The primary IPv4 CIDR.
    pub fn primary_ipv4_cidr(&self) -> Option<Ipv4Net> {
        self.cidrs.iter().find_map(|c| match c {
            IpNet::V4(n) => Some(*n),
            _ => None,
        })
    }

    pub fn subnet(&self, id: &str) -> Option<&Subnet> {
        self.subnets.iter().find(|s| s.id == id)
    }

    pub fn network_acl(&self, id: &str) -> Option<&NetworkAcl> {
        self.network_acls.iter().find(|a| a.id == id)
    }

    pub fn security_group(&self, id: &str) -> Option<&SecurityGroup> {
        self.security_groups.iter().find(|g| g.id == id)
    }

    pub fn network_interface(&self, id: &str) -> Option<&NetworkInterface> {
        self.network_interfaces.iter().find(|e| e.id == id)
    }

    /// A copy with every [`Origin`] cleared: two rulesets that describe the same VPC
    /// from different files (TOML, AWS JSON) then compare equal.
    pub fn without_origins(&self) -> Vpc {
        let mut v = self.clone();
        v.origin = Origin::default();
        v.warnings.clear();
        for s in &mut v.subnets {
            s.origin = Origin::default();
        }
        for a in &mut v.network_acls {
            a.origin = Origin::default();
            for e in a.inbound.iter_mut().chain(a.outbound.iter_mut()) {
                e.origin = Origin::default();
            }
        }
        for g in &mut v.security_groups {
            g.origin = Origin::default();
            for r in g.ingress.iter_mut().chain(g.egress.iter_mut()) {
                r.origin = Origin::default();
            }
        }
        for e in &mut v.network_interfaces {
            e.origin = Origin::default();
        }
        for p in &mut v.prefix_lists {
            p.origin = Origin::default();
        }
        v
    }

    /// Checks the VPC and fills in what AWS fills in:
    /// - canonical CIDRs (host bits cleared, as the API stores them);
    /// - NACL entries sorted by rule number, with the `*` rules 32767 (IPv4) and
    ///   32768 (IPv6, when the VPC has an IPv6 CIDR) appended;
    /// - a default NACL (allow all) when none is marked default;
    /// - each subnet's NACL: its explicit association, else the default NACL;
    /// - ENIs, subnets and groups sorted by id, so that output order never depends on
    ///   the order of files.
    ///
    /// Reports every problem found: duplicate ids, rule numbers outside 1..=32766,
    /// duplicate rule numbers, `from > to`, unknown SG, subnet, NACL or prefix-list
    /// references, ENI addresses outside their subnet, subnets outside the VPC.
    pub fn validate(&mut self) -> Result<(), RulesetErrors> {
        let mut errs: Vec<RulesetError> = Vec::new();
        let vpc_origin = self.origin.clone();
        if self.id.is_empty() {
            errs.push(RulesetError::new(
                &vpc_origin,
                "vpc.id",
                "the VPC has no id (e.g. `vpc-0abc1234`)",
            ));
        }
        for c in &mut self.cidrs {
            *c = c.trunc();
        }

        // Unique ids.
        fn dupes<'a>(
            errs: &mut Vec<RulesetError>,
            kind: &str,
            items: impl Iterator<Item = (&'a str, &'a Origin)>,
        ) {
            let mut seen: HashMap<&str, &Origin> = HashMap::new();
            for (id, origin) in items {
                if let Some(first) = seen.get(id) {
                    errs.push(RulesetError::new(
                        origin,
                        format!("{kind}.id"),
                        format!("duplicate {kind} id `{id}` (first defined at {first})"),
                    ));
                } else {
                    seen.insert(id, origin);
                }
            }
        }
        dupes(
            &mut errs,
            "subnet",
            self.subnets.iter().map(|s| (s.id.as_str(), &s.origin)),
        );
        dupes(
            &mut errs,
            "network_acl",
            self.network_acls.iter().map(|s| (s.id.as_str(), &s.origin)),
        );
        dupes(
            &mut errs,
            "security_group",
            self.security_groups
                .iter()
                .map(|s| (s.id.as_str(), &s.origin)),
        );
        dupes(
            &mut errs,
            "network_interface",
            self.network_interfaces
                .iter()
                .map(|s| (s.id.as_str(), &s.origin)),
        );
        dupes(
            &mut errs,
            "prefix_list",
            self.prefix_lists.iter().map(|s| (s.id.as_str(), &s.origin)),
        );

        // Subnets inside the VPC.
        for s in &mut self.subnets {
            if let Some(c) = &mut s.ipv4_cidr {
                *c = c.trunc();
            }
            for c in &mut s.ipv6_cidrs {
                *c = c.trunc();
            }
        }
        for s in &self.subnets {
            let inside = |net: IpNet| self.cidrs.iter().any(|v| v.contains(&net));
            if let Some(c) = s.ipv4_cidr {
                if !self.cidrs.is_empty() && !inside(IpNet::V4(c)) {
                    errs.push(RulesetError::new(
                        &s.origin,
                        format!("subnet {}.cidr", s.id),
                        format!("{c} is not inside any VPC CIDR ({})", list(&self.cidrs)),
                    ));
                }
            }
            for c in &s.ipv6_cidrs {
                if self.has_ipv6() && !inside(IpNet::V6(*c)) {
                    errs.push(RulesetError::new(
                        &s.origin,
                        format!("subnet {}.ipv6_cidr", s.id),
                        format!("{c} is not inside any VPC CIDR ({})", list(&self.cidrs)),
                    ));
                }
            }
        }

        // NACLs: rule numbers, ranges, the `*` rules.
        let ipv6 = self.has_ipv6();
        if !self.network_acls.iter().any(|a| a.is_default) {
            let id = format!("acl-default-{}", self.id.trim_start_matches("vpc-"));
            self.network_acls.push(NetworkAcl::aws_default(&id, ipv6));
        }
        let defaults: Vec<&NetworkAcl> =
            self.network_acls.iter().filter(|a| a.is_default).collect();
        if defaults.len() > 1 {
            errs.push(RulesetError::new(
                &defaults[1].origin,
                format!("network_acl {}.is_default", defaults[1].id),
                format!(
                    "a VPC has exactly one default NACL; `{}` is already the default",
                    defaults[0].id
                ),
            ));
        }
        for acl in &mut self.network_acls {
            for (dir, list) in [
                ("inbound", &mut acl.inbound),
                ("outbound", &mut acl.outbound),
            ] {
                // The `*` rules as describe-network-acls prints them are re-added below.
                list.retain(|e| {
                    !((e.rule_number == 32767 || e.rule_number == 32768)
                        && e.action == RuleAction::Deny
                        && e.protocol == Protocol::All
                        && e.cidr.prefix_len() == 0)
                });
                let mut seen: HashMap<u32, Origin> = HashMap::new();
                for e in list.iter_mut() {
                    e.cidr = e.cidr.trunc();
                    let field = format!("network_acl {}.{dir} rule {}", acl.id, e.rule_number);
                    if !(1..=32766).contains(&e.rule_number) {
                        errs.push(RulesetError::new(
                            &e.origin,
                            format!("network_acl {}.{dir}.rule_number", acl.id),
                            format!(
                                "RuleNumber {} is outside 1..=32766 (32767 and up are reserved for the `*` rules)",
                                e.rule_number
                            ),
                        ));
                    }
                    if let Some(first) = seen.get(&e.rule_number) {
                        errs.push(RulesetError::new(
                            &e.origin,
                            field.clone(),
                            format!(
                                "duplicate {dir} rule number {} (first at {first}); each direction's numbers must be unique",
                                e.rule_number
                            ),
                        ));
                    } else {
                        seen.insert(e.rule_number, e.origin.clone());
                    }
                    if let PortSpec::Range { from, to } = e.ports {
                        if from > to {
                            errs.push(RulesetError::new(
                                &e.origin,
                                format!("{field}.port_range"),
                                format!(
                                    "from {from} is greater than to {to}; write the range low-high"
                                ),
                            ));
                        }
                    }
                    // AWS ignores ports for protocols without them.
                    if !e.protocol.has_ports()
                        && !matches!(
                            e.protocol,
                            Protocol::Number(PROTO_ICMP) | Protocol::Number(PROTO_ICMPV6)
                        )
                    {
                        e.ports = PortSpec::Any;
                    }
                    // ICMPv6 with an IPv4 CIDR: all types and codes (API doc).
                    if e.protocol == Protocol::Number(PROTO_ICMPV6) && e.cidr.addr().is_ipv4() {
                        e.ports = PortSpec::Any;
                    }
                }
                list.sort_by_key(|e| e.rule_number);
                list.push(NetworkAclEntry::catch_all(false));
                if ipv6 {
                    list.push(NetworkAclEntry::catch_all(true));
                }
            }
        }

        // Subnet → NACL.
        let default_acl = self
            .network_acls
            .iter()
            .find(|a| a.is_default)
            .map(|a| a.id.clone());
        let mut assoc: HashMap<String, (String, Origin)> = HashMap::new();
        for acl in &self.network_acls {
            for sid in &acl.associations {
                if let Some((other, _)) = assoc.get(sid) {
                    if other != &acl.id {
                        errs.push(RulesetError::new(
                            &acl.origin,
                            format!("network_acl {}.associations", acl.id),
                            format!("subnet `{sid}` is already associated with `{other}`; a subnet has exactly one NACL"),
                        ));
                    }
                } else {
                    assoc.insert(sid.clone(), (acl.id.clone(), acl.origin.clone()));
                }
                if self.subnet(sid).is_none() {
                    errs.push(RulesetError::new(
                        &acl.origin,
                        format!("network_acl {}.associations", acl.id),
                        format!(
                            "unknown subnet `{sid}`; known subnets: {}",
                            ids(self.subnets.iter().map(|s| &s.id))
                        ),
                    ));
                }
            }
        }
        let acl_ids: HashSet<String> = self.network_acls.iter().map(|a| a.id.clone()).collect();
        for s in &mut self.subnets {
            match &s.network_acl_id {
                Some(id) if !acl_ids.contains(id) => errs.push(RulesetError::new(
                    &s.origin,
                    format!("subnet {}.network_acl", s.id),
                    format!("unknown network ACL `{id}`; known: {}", ids(acl_ids.iter())),
                )),
                Some(_) => {}
                None => {
                    s.network_acl_id = assoc
                        .get(&s.id)
                        .map(|(a, _)| a.clone())
                        .or_else(|| default_acl.clone());
                }
            }
        }

        // Security groups: references to groups and prefix lists, port ranges.
        let sg_ids: HashSet<String> = self.security_groups.iter().map(|g| g.id.clone()).collect();
        let pl_ids: HashSet<String> = self.prefix_lists.iter().map(|p| p.id.clone()).collect();
        for g in &self.security_groups {
            for (dir, rules) in [("ingress", &g.ingress), ("egress", &g.egress)] {
                for (i, r) in rules.iter().enumerate() {
                    let field = format!("security_group {}.{dir}[{i}]", g.id);
                    match &r.peer {
                        SgPeer::SecurityGroup(id) if !sg_ids.contains(id) => {
                            errs.push(RulesetError::new(
                                &r.origin,
                                format!("{field}.security_group"),
                                format!(
                                    "unknown security group `{id}`{}; known: {}",
                                    self.did_you_mean(id),
                                    ids(sg_ids.iter())
                                ),
                            ))
                        }
                        SgPeer::PrefixList(id) if !pl_ids.contains(id) => {
                            errs.push(RulesetError::new(
                                &r.origin,
                                format!("{field}.prefix_list"),
                                format!(
                                    "unknown prefix list `{id}`; known: {}",
                                    ids(pl_ids.iter())
                                ),
                            ))
                        }
                        _ => {}
                    }
                    if let PortSpec::Range { from, to } = r.ports {
                        if from > to {
                            errs.push(RulesetError::new(
                                &r.origin,
                                format!("{field}.ports"),
                                format!(
                                    "from {from} is greater than to {to}; write the range low-high"
                                ),
                            ));
                        }
                    }
                    if let PortSpec::Icmp {
                        icmp_type: None,
                        code: Some(c),
                    } = r.ports
                    {
                        errs.push(RulesetError::new(
                            &r.origin,
                            format!("{field}.ports"),
                            format!("ICMP code {c} with type -1: when the type is -1 the code must be -1 too"),
                        ));
                    }
                }
            }
        }
        for g in &mut self.security_groups {
            for r in g.ingress.iter_mut().chain(g.egress.iter_mut()) {
                if let SgPeer::Cidr(c) = &mut r.peer {
                    *c = c.trunc();
                }
                if !r.protocol.has_ports()
                    && !matches!(
                        r.protocol,
                        Protocol::Number(PROTO_ICMP) | Protocol::Number(PROTO_ICMPV6)
                    )
                {
                    r.ports = PortSpec::Any;
                }
            }
        }

        // ENIs: subnet, groups, addresses inside the subnet.
        for e in &self.network_interfaces {
            let Some(subnet) = self.subnet(&e.subnet_id) else {
                errs.push(RulesetError::new(
                    &e.origin,
                    format!("network_interface {}.subnet", e.id),
                    format!(
                        "unknown subnet `{}`; known subnets: {}",
                        e.subnet_id,
                        ids(self.subnets.iter().map(|s| &s.id))
                    ),
                ));
                continue;
            };
            if e.private_ipv4.is_empty() && e.ipv6.is_empty() {
                errs.push(RulesetError::new(
                    &e.origin,
                    format!("network_interface {}.private_ips", e.id),
                    "an ENI needs at least one private address (the first IPv4 is the primary)",
                ));
            }
            for a in e.private_addrs() {
                if !subnet.contains(a) {
                    let cidrs: Vec<String> = subnet
                        .ipv4_cidr
                        .iter()
                        .map(|c| c.to_string())
                        .chain(subnet.ipv6_cidrs.iter().map(|c| c.to_string()))
                        .collect();
                    errs.push(RulesetError::new(
                        &e.origin,
                        format!("network_interface {}.private_ips", e.id),
                        format!(
                            "address {a} is outside its subnet `{}` ({})",
                            subnet.id,
                            if cidrs.is_empty() {
                                "no CIDR".to_string()
                            } else {
                                cidrs.join(", ")
                            }
                        ),
                    ));
                }
            }
            // Delegated prefixes come out of the subnet's range (aws-semantics: "the
            // prefixes are taken from the subnet's CIDR").
            for (net, ok) in e
                .ipv4_prefixes
                .iter()
                .map(|p| {
                    (
                        IpNet::V4(*p),
                        subnet.ipv4_cidr.is_some_and(|c| c.contains(p)),
                    )
                })
                .chain(e.ipv6_prefixes.iter().map(|p| {
                    (
                        IpNet::V6(*p),
                        subnet.ipv6_cidrs.iter().any(|c| c.contains(p)),
                    )
                }))
            {
                if !ok {
                    errs.push(RulesetError::new(
                        &e.origin,
                        format!("network_interface {}.prefixes", e.id),
                        format!(
                            "prefix {net} is outside its subnet `{}` ({})",
                            subnet.id,
                            subnet_cidrs(subnet)
                        ),
                    ));
                }
            }
            // An Elastic IP sits on one of the ENI's own secondary addresses.
            for (public, private) in &e.secondary_public_ipv4 {
                if e.primary_ipv4() == Some(*private) {
                    errs.push(RulesetError::new(
                        &e.origin,
                        format!("network_interface {}.elastic_ips", e.id),
                        format!(
                            "{public} maps to {private}, the primary address; the primary's public address is `public_ip`"
                        ),
                    ));
                } else if !e.private_ipv4.contains(private) {
                    errs.push(RulesetError::new(
                        &e.origin,
                        format!("network_interface {}.elastic_ips", e.id),
                        format!(
                            "{public} maps to {private}, which is not one of this ENI's private addresses ({})",
                            e.private_ipv4
                                .iter()
                                .map(|a| a.to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
            }
            if e.security_groups.is_empty() && e.interface_type == "interface" {
                self.warnings.push(RulesetError::new(
                    &e.origin,
                    format!("network_interface {}.security_groups", e.id),
                    "an ENI of type `interface` without security groups: treated as an ENI \
                     without security groups, only NACLs filter it (`vpcgate manual`, The model)",
                ));
            }
            for g in &e.security_groups {
                if !sg_ids.contains(g) {
                    errs.push(RulesetError::new(
                        &e.origin,
                        format!("network_interface {}.security_groups", e.id),
                        format!(
                            "unknown security group `{g}`{}; known: {}",
                            self.did_you_mean(g),
                            ids(sg_ids.iter())
                        ),
                    ));
                }
            }
        }
        // The same address on two ENIs would make the data path ambiguous.
        let mut owner: HashMap<IpAddr, &str> = HashMap::new();
        for e in &self.network_interfaces {
            let publics = e
                .public_ipv4
                .into_iter()
                .chain(e.secondary_public_ipv4.iter().map(|(p, _)| *p))
                .map(IpAddr::V4);
            for a in e.private_addrs().chain(publics) {
                if let Some(o) = owner.insert(a, &e.id) {
                    if o != e.id {
                        errs.push(RulesetError::new(
                            &e.origin,
                            format!("network_interface {}.private_ips", e.id),
                            format!("address {a} is already assigned to `{o}`"),
                        ));
                    }
                }
            }
        }
        // Delegated prefixes: no address in them belongs to another ENI.
        for e in &self.network_interfaces {
            let prefixes = e
                .ipv4_prefixes
                .iter()
                .map(|p| IpNet::V4(*p))
                .chain(e.ipv6_prefixes.iter().map(|p| IpNet::V6(*p)));
            for net in prefixes {
                let clash = self.network_interfaces.iter().find_map(|o| {
                    if let Some(a) = o.private_addrs().find(|a| net.contains(a)) {
                        return (o.id != e.id).then(|| format!("address {a} of `{}`", o.id));
                    }
                    o.ipv4_prefixes
                        .iter()
                        .map(|p| IpNet::V4(*p))
                        .chain(o.ipv6_prefixes.iter().map(|p| IpNet::V6(*p)))
                        .find(|p| {
                            (o.id != e.id || *p != net) && (p.contains(&net) || net.contains(p))
                        })
                        .map(|p| format!("prefix {p} of `{}`", o.id))
                });
                if let Some(c) = clash {
                    errs.push(RulesetError::new(
                        &e.origin,
                        format!("network_interface {}.prefixes", e.id),
                        format!("prefix {net} overlaps {c}; an address belongs to one ENI"),
                    ));
                }
            }
        }
        for p in &mut self.prefix_lists {
            for c in &mut p.entries {
                *c = c.trunc();
            }
        }

        self.subnets.sort_by(|a, b| a.id.cmp(&b.id));
        self.network_interfaces.sort_by(|a, b| a.id.cmp(&b.id));
        self.security_groups.sort_by(|a, b| a.id.cmp(&b.id));
        self.network_acls.sort_by(|a, b| a.id.cmp(&b.id));
        self.prefix_lists.sort_by(|a, b| a.id.cmp(&b.id));

        // Validating again (after a change) must not repeat a warning.
        let mut seen = HashSet::new();
        self.warnings.retain(|w| seen.insert(w.to_string()));

        if errs.is_empty() {
            Ok(())
        } else {
            Err(RulesetErrors(errs))
        }
    }
}

impl Vpc {
    /// `; did you mean `sg-…`?` when `name` is some group's name (GroupName).
    fn did_you_mean(&self, name: &str) -> String {
        match self.security_groups.iter().find(|g| g.name == name) {
            Some(g) => format!(
                " (did you mean `{}`? `{name}` is that group's name; rules name groups by id)",
                g.id
            ),
            None => String::new(),
        }
    }
}

fn subnet_cidrs(subnet: &Subnet) -> String {
    let cidrs: Vec<String> = subnet
        .ipv4_cidr
        .iter()
        .map(|c| c.to_string())
        .chain(subnet.ipv6_cidrs.iter().map(|c| c.to_string()))
        .collect();
    if cidrs.is_empty() {
        "no CIDR".to_string()
    } else {
        cidrs.join(", ")
    }
}

fn list(cidrs: &[IpNet]) -> String {
    if cidrs.is_empty() {
        return "none".into();
    }
    cidrs
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn ids<'a, S: AsRef<str> + 'a>(it: impl Iterator<Item = S>) -> String {
    let mut v: Vec<String> = it.map(|s| format!("`{}`", s.as_ref())).collect();
    v.sort();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Vpc {
        let mut vpc = Vpc::new("vpc-1");
        vpc.cidrs.push("10.0.0.0/16".parse().unwrap());
        vpc.subnets
            .push(Subnet::new("subnet-a", "10.0.1.0/24".parse().unwrap()));
        vpc
    }

    #[test]
    fn default_nacl_added_and_associated() {
        let mut vpc = base();
        vpc.validate().unwrap();
        let acl = &vpc.network_acls[0];
        assert!(acl.is_default);
        assert_eq!(
            acl.inbound
                .iter()
                .map(|e| e.rule_number)
                .collect::<Vec<_>>(),
            vec![100, 32767]
        );
        assert_eq!(
            vpc.subnets[0].network_acl_id.as_deref(),
            Some(acl.id.as_str())
        );
    }

    #[test]
    fn rule_number_out_of_range_named() {
        let mut vpc = base();
        let mut acl = NetworkAcl::new("acl-1");
        acl.origin = Origin::new("r.toml", 3, 1);
        acl.inbound.push(NetworkAclEntry {
            rule_number: 40000,
            protocol: Protocol::All,
            cidr: "0.0.0.0/0".parse().unwrap(),
            ports: PortSpec::Any,
            action: RuleAction::Allow,
            origin: Origin::new("r.toml", 7, 3),
        });
        vpc.network_acls.push(acl);
        let err = vpc.validate().unwrap_err().to_string();
        assert!(err.contains("r.toml:7:3"), "{err}");
        assert!(
            err.contains("RuleNumber 40000 is outside 1..=32766"),
            "{err}"
        );
    }

    #[test]
    fn eni_outside_subnet() {
        let mut vpc = base();
        vpc.network_interfaces.push(NetworkInterface::new(
            "eni-1",
            "subnet-a",
            "10.0.2.5".parse().unwrap(),
        ));
        let err = vpc.validate().unwrap_err().to_string();
        assert!(
            err.contains("10.0.2.5 is outside its subnet `subnet-a` (10.0.1.0/24)"),
            "{err}"
        );
    }

    #[test]
    fn cidr_canonicalised() {
        // NACL-8: 100.68.0.18/18 is stored as 100.68.0.0/18.
        let mut vpc = base();
        let mut acl = NetworkAcl::new("acl-1");
        acl.inbound.push(NetworkAclEntry {
            rule_number: 100,
            protocol: Protocol::All,
            cidr: "100.68.0.18/18".parse().unwrap(),
            ports: PortSpec::Any,
            action: RuleAction::Allow,
            origin: Origin::default(),
        });
        vpc.network_acls.push(acl);
        vpc.validate().unwrap();
        let acl = vpc.network_acl("acl-1").unwrap();
        assert_eq!(acl.inbound[0].cidr.to_string(), "100.68.0.0/18");
    }
}

/// Which way a packet crosses an ENI, as flow logs name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    Ingress,
    Egress,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        })
    }
}

/// A flow-log action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    Accept,
    Reject,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Accept => "ACCEPT",
            Action::Reject => "REJECT",
        })
    }
}
