//! Security-group and network-ACL matching, compiled once per ruleset.
//!
//! [`Policy::compile`] turns a validated [`Vpc`] into the lookup structures the
//! engine needs: which ENI owns an address (private, secondary or public), each
//! ENI's united security-group rules per direction and address family with
//! references and prefix lists resolved to address sets, each subnet's NACL entries
//! per direction and family in rule-number order, and the exempt service addresses.
//! Everything here is a pure function of (rules, packet): no state, no clock.
//!
//! What it does not do: connection tracking ([`crate::conntrack`]) and the order of
//! checks ([`crate::engine`]).
//!
//! ```
//! use vpcgate::model::*;
//! use vpcgate::policy::Policy;
//! let mut vpc = Vpc::new("vpc-1");
//! vpc.cidrs.push("10.0.0.0/16".parse().unwrap());
//! vpc.subnets.push(Subnet::new("subnet-a", "10.0.1.0/24".parse().unwrap()));
//! vpc.validate().unwrap();
//! let policy = Policy::compile(std::sync::Arc::new(vpc), &["eni-x".to_string()]);
//! // 10.0.0.2 is the Amazon DNS resolver (VPC base + 2): never filtered.
//! assert!(policy.exempt_service("10.0.0.2".parse().unwrap()).is_some());
//! ```
#![deny(clippy::disallowed_methods, clippy::disallowed_types)]

pub mod classify;
mod compile;

use crate::model::*;
use crate::policy::classify::{Classifier, RuleFields, Step};
use crate::wire::packet::Packet;
use hashbrown::{HashMap, HashSet};
use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// A service that security groups and NACLs never filter (manual: "Where a packet is evaluated").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ExemptService {
    AmazonDns,
    InstanceMetadata,
    TimeSync,
    VpcRouter,
    Dhcp,
}

impl ExemptService {
    pub fn name(self) -> &'static str {
        match self {
            ExemptService::AmazonDns => "amazon-dns",
            ExemptService::InstanceMetadata => "instance-metadata",
            ExemptService::TimeSync => "time-sync",
            ExemptService::VpcRouter => "vpc-router",
            ExemptService::Dhcp => "dhcp",
        }
    }
}

/// Which ENI an address belongs to, and whether it was one of its public IPv4s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddrOwner {
    pub eni: EniIdx,
    /// For a public (or Elastic) IPv4 address: the private IPv4 address the internet
    /// gateway translates it to (the primary's, or the secondary address the Elastic
    /// IP is associated with). `None` for a private address.
    pub public_of: Option<Ipv4Addr>,
}

impl AddrOwner {
    /// True when the address was a public IPv4 of the ENI.
    #[inline]
    pub fn is_public(self) -> bool {
        self.public_of.is_some()
    }
}

/// What the policy knows about one address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AddrInfo {
    pub owner: Option<AddrOwner>,
    pub exempt: Option<ExemptService>,
}

/// Names one rule of one security group: `(group index, egress?, rule index)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SgRuleRef {
    pub group: u32,
    pub egress: bool,
    pub rule: u32,
}

/// Names one NACL entry: `(acl index, egress?, entry index)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NaclRuleRef {
    pub acl: u32,
    pub egress: bool,
    pub entry: u32,
}

#[derive(Clone, Debug)]
enum Peer {
    Net(IpNet),
    /// Resolved prefix list or SG reference: sorted, deduplicated networks.
    Set(Arc<Vec<IpNet>>),
}

impl Peer {
    #[cfg(test)]
    fn contains(&self, a: IpAddr) -> bool {
        match self {
            Peer::Net(n) => n.contains(&a),
            Peer::Set(s) => s.iter().any(|n| n.contains(&a)),
        }
    }
}

#[derive(Clone, Debug)]
struct CompiledSgRule {
    protocol: Protocol,
    ports: PortSpec,
    peer: Peer,
    /// The peer is the CIDR `0.0.0.0/0` or `::/0` (the untracked condition of §2.2).
    open: bool,
    id: SgRuleRef,
}

/// One ENI's united SG rules for one direction, split by address family, each
/// family compiled into a [`Classifier`].
#[derive(Clone, Debug)]
struct DirRules {
    v4: Family<u32>,
    v6: Family<u128>,
}

/// The SG rules of one family and direction, compiled.
#[derive(Clone, Debug)]
struct Family<A> {
    rules: Vec<CompiledSgRule>,
    classifier: Classifier<A>,
    /// Bitset of the rules whose peer is the CIDR `0.0.0.0/0` or `::/0`.
    open: Vec<u64>,
    /// Protocols (bit per number) an open rule covers on every port.
    open_all_ports: [u64; 4],
}

impl<A: Copy + Ord + Default + Step> Family<A> {
    fn new(rules: Vec<CompiledSgRule>, peers: impl Fn(&Peer) -> Vec<(A, A)>) -> Self {
        let fields: Vec<RuleFields<A>> = rules
            .iter()
            .map(|r| RuleFields {
                protocol: r.protocol,
                ports: r.ports,
                peers: peers(&r.peer),
            })
            .collect();
        let classifier = Classifier::new(&fields);
        let mut open = classifier.bitset();
        let mut open_all_ports = [0u64; 4];
        for (i, r) in rules.iter().enumerate() {
            if !r.open {
                continue;
            }
            open[i / 64] |= 1 << (i % 64);
            match r.protocol {
                Protocol::All => open_all_ports = [u64::MAX; 4],
                Protocol::Number(n) if r.ports.is_any() => {
                    open_all_ports[n as usize / 64] |= 1 << (n % 64)
                }
                Protocol::Number(_) => {}
            }
        }
        Family {
            rules,
            classifier,
            open,
            open_all_ports,
        }
    }
}

fn ranges4(p: &Peer) -> Vec<(u32, u32)> {
    let nets: &[IpNet] = match p {
        Peer::Net(n) => std::slice::from_ref(n),
        Peer::Set(s) => s,
    };
    nets.iter()
        .filter_map(|n| match n {
            IpNet::V4(n) => Some((u32::from(n.network()), u32::from(n.broadcast()))),
            IpNet::V6(_) => None,
        })
        .collect()
}

fn ranges6(p: &Peer) -> Vec<(u128, u128)> {
    let nets: &[IpNet] = match p {
        Peer::Net(n) => std::slice::from_ref(n),
        Peer::Set(s) => s,
    };
    nets.iter()
        .filter_map(|n| match n {
            IpNet::V6(n) => Some((u128::from(n.network()), u128::from(n.broadcast()))),
            IpNet::V4(_) => None,
        })
        .collect()
}

fn net_ranges4(n: &IpNet) -> Vec<(u32, u32)> {
    ranges4(&Peer::Net(*n))
}

fn net_ranges6(n: &IpNet) -> Vec<(u128, u128)> {
    ranges6(&Peer::Net(*n))
}

#[derive(Clone, Debug)]
struct CompiledNaclEntry {
    protocol: Protocol,
    ports: PortSpec,
    cidr: IpNet,
    allow: bool,
    rule_number: u32,
    entry: u32,
}

#[derive(Clone, Debug)]
struct NaclDir {
    v4: Vec<CompiledNaclEntry>,
    v6: Vec<CompiledNaclEntry>,
    c4: Classifier<u32>,
    c6: Classifier<u128>,
}

impl NaclDir {
    fn new(v4: Vec<CompiledNaclEntry>, v6: Vec<CompiledNaclEntry>) -> NaclDir {
        let fields4: Vec<RuleFields<u32>> = v4
            .iter()
            .map(|e| RuleFields {
                protocol: e.protocol,
                ports: e.ports,
                peers: net_ranges4(&e.cidr),
            })
            .collect();
        let fields6: Vec<RuleFields<u128>> = v6
            .iter()
            .map(|e| RuleFields {
                protocol: e.protocol,
                ports: e.ports,
                peers: net_ranges6(&e.cidr),
            })
            .collect();
        NaclDir {
            c4: Classifier::new(&fields4),
            c6: Classifier::new(&fields6),
            v4,
            v6,
        }
    }
}

/// The outcome of a NACL check: which entry decided, and whether it allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NaclDecision {
    pub allow: bool,
    pub rule_number: u32,
    pub rule: NaclRuleRef,
}

/// A ruleset compiled for the data path.
#[derive(Debug)]
pub struct Policy {
    pub vpc: Arc<Vpc>,
    /// The run's number of each ENI (see [`Policy::compile`]), by [`EniIdx`].
    pub eni_number: Vec<EniNum>,
    /// Subnet index of each ENI.
    pub eni_subnet: Vec<u32>,
    /// NACL index of each subnet.
    pub subnet_nacl: Vec<u32>,
    /// Connection-tracking timeouts of each ENI (VPC values with the ENI's overrides).
    pub eni_timeouts: Vec<ConntrackTimeouts>,
    /// The tracked-connection group of each ENI: ENIs of one instance share one.
    pub eni_limit_group: Vec<u32>,
    /// The allowance of each group (`None`: unlimited).
    pub group_limit: Vec<Option<u32>>,
    /// Owner and exempt service of each known address, one map per family so the
    /// per-packet lookup hashes a plain integer.
    addrs4: HashMap<u32, AddrInfo, foldhash::fast::FixedState>,
    addrs6: HashMap<u128, AddrInfo, foldhash::fast::FixedState>,
    /// Delegated prefixes and their ENI, for addresses not found above (empty in most
    /// VPCs, so the per-packet path pays one branch).
    prefixes: Vec<(IpNet, EniIdx)>,
    /// True for each ENI without any security group (manual: "The model"): no SG check
    /// and no connection tracking.
    pub eni_no_sg: Vec<bool>,
    /// First hit-counter slot of each (NACL, direction): `acl * 2 + egress`.
    nacl_base: Vec<u32>,
    /// First hit-counter slot of each (security group, direction).
    sg_base: Vec<u32>,
    sg_in: Vec<DirRules>,
    sg_out: Vec<DirRules>,
    nacl_in: Vec<NaclDir>,
    nacl_out: Vec<NaclDir>,
}

#[cfg(test)]
fn proto_ports_match(protocol: Protocol, ports: PortSpec, pkt: &Packet) -> bool {
    match protocol {
        Protocol::All => true,
        Protocol::Number(n) if n != pkt.protocol => false,
        Protocol::Number(_) => {
            if ports.is_any() {
                return true;
            }
            if !pkt.ports_known() {
                // A fragment without its first fragment: only rules that allow every
                // port can allow it (manual: "Connection tracking").
                return false;
            }
            match ports {
                PortSpec::Any => true,
                PortSpec::Range { from, to } => (from..=to).contains(&pkt.dst_port),
                PortSpec::Icmp { icmp_type, code } => {
                    icmp_type.is_none_or(|t| t == pkt.icmp_type)
                        && code.is_none_or(|c| c == pkt.icmp_code)
                }
            }
        }
    }
}

impl Policy {
    /// The ENI that owns `addr` (private, secondary or public address).
    #[inline]
    pub fn owner(&self, addr: IpAddr) -> Option<AddrOwner> {
        self.addr_info(addr).owner
    }

    /// The exempt service at `addr`, if any.
    #[inline]
    pub fn exempt_service(&self, addr: IpAddr) -> Option<ExemptService> {
        self.addr_info(addr).exempt
    }

    /// The owner and exempt service of `addr` in one lookup.
    #[inline]
    pub fn addr_info(&self, addr: IpAddr) -> AddrInfo {
        let mut info = match addr {
            IpAddr::V4(a) => self.addrs4.get(&u32::from(a)).copied(),
            IpAddr::V6(a) => self.addrs6.get(&u128::from(a)).copied(),
        }
        .unwrap_or_default();
        if info.owner.is_none() && !self.prefixes.is_empty() {
            info.owner = self.prefix_owner(addr);
        }
        info
    }

    /// The ENI whose delegated prefix holds `addr` (validation keeps prefixes from
    /// overlapping).
    #[cold]
    fn prefix_owner(&self, addr: IpAddr) -> Option<AddrOwner> {
        self.prefixes
            .iter()
            .find(|(net, _)| net.contains(&addr))
            .map(|&(_, eni)| AddrOwner {
                eni,
                public_of: None,
            })
    }

    /// `addr`, or the private IPv4 address that `addr` maps to when it is an ENI's
    /// public (or Elastic) IPv4 address: the address connection tracking keys the
    /// ENI's side by, and the one the ENI itself sees (flow-log `pkt-*` fields).
    #[inline]
    pub fn canonical_addr(&self, addr: IpAddr) -> IpAddr {
        match self.addr_info(addr).owner {
            Some(AddrOwner {
                public_of: Some(private),
                ..
            }) => IpAddr::V4(private),
            _ => addr,
        }
    }

    /// The hit-counter slot of a NACL entry (dense, below [`Policy::nacl_slots`]); the
    /// implicit deny of a family without a `*` rule has the last slot of its list.
    #[inline]
    pub fn nacl_slot(&self, r: NaclRuleRef) -> usize {
        let i = r.acl as usize * 2 + r.egress as usize;
        let (base, end) = (self.nacl_base[i], self.nacl_base[i + 1]);
        (base + r.entry.min(end - base - 1)) as usize
    }

    /// Number of NACL hit-counter slots.
    pub fn nacl_slots(&self) -> usize {
        *self.nacl_base.last().unwrap_or(&0) as usize
    }

    /// Every NACL slot's entry, in slot order.
    pub fn nacl_slot_refs(&self) -> Vec<NaclRuleRef> {
        let mut v = Vec::with_capacity(self.nacl_slots());
        for (ai, acl) in self.vpc.network_acls.iter().enumerate() {
            for (egress, list) in [(false, &acl.inbound), (true, &acl.outbound)] {
                for e in 0..list.len() as u32 {
                    v.push(NaclRuleRef {
                        acl: ai as u32,
                        egress,
                        entry: e,
                    });
                }
                v.push(NaclRuleRef {
                    acl: ai as u32,
                    egress,
                    entry: u32::MAX,
                });
            }
        }
        v
    }

    /// The hit-counter slot of an SG rule (dense, below [`Policy::sg_slots`]).
    #[inline]
    pub fn sg_slot(&self, r: SgRuleRef) -> usize {
        (self.sg_base[r.group as usize * 2 + r.egress as usize] + r.rule) as usize
    }

    /// Number of SG hit-counter slots.
    pub fn sg_slots(&self) -> usize {
        *self.sg_base.last().unwrap_or(&0) as usize
    }

    /// Every SG slot's rule, in slot order.
    pub fn sg_slot_refs(&self) -> Vec<SgRuleRef> {
        let mut v = Vec::with_capacity(self.sg_slots());
        for (gi, g) in self.vpc.security_groups.iter().enumerate() {
            for (egress, list) in [(false, &g.ingress), (true, &g.egress)] {
                for r in 0..list.len() as u32 {
                    v.push(SgRuleRef {
                        group: gi as u32,
                        egress,
                        rule: r,
                    });
                }
            }
        }
        v
    }

    /// True when any ENI has a tracked-connection allowance.
    pub fn has_conntrack_limits(&self) -> bool {
        self.group_limit.iter().any(|l| l.is_some())
    }

    /// The first SG rule of `eni` (model index) that allows `pkt` in `dir`, where
    /// `remote` is the packet's source (ingress) or destination (egress). Rules are
    /// united across the ENI's groups; any match allows (the most permissive wins).
    #[inline]
    pub fn sg_match(
        &self,
        eni: EniIdx,
        dir: Direction,
        remote: IpAddr,
        pkt: &Packet,
    ) -> Option<SgRuleRef> {
        let rules = self.sg_dir(eni, dir);
        match remote {
            IpAddr::V4(a) => {
                let f = &rules.v4;
                f.classifier
                    .first_match(pkt, u32::from(a))
                    .map(|i| f.rules[i].id)
            }
            IpAddr::V6(a) => {
                let f = &rules.v6;
                f.classifier
                    .first_match(pkt, u128::from(a))
                    .map(|i| f.rules[i].id)
            }
        }
    }

    #[inline]
    fn sg_dir(&self, eni: EniIdx, dir: Direction) -> &DirRules {
        match dir {
            Direction::Ingress => &self.sg_in[eni.get()],
            Direction::Egress => &self.sg_out[eni.get()],
        }
    }

    /// True when an SG rule of `eni` whose peer is the CIDR `0.0.0.0/0` (or `::/0`)
    /// allows `pkt` in `dir`: the initiating half of the untracked condition.
    #[inline]
    pub fn sg_open_admits(&self, eni: EniIdx, dir: Direction, v6: bool, pkt: &Packet) -> bool {
        let rules = self.sg_dir(eni, dir);
        if v6 {
            rules.v6.classifier.any_ports_match(pkt, &rules.v6.open)
        } else {
            rules.v4.classifier.any_ports_match(pkt, &rules.v4.open)
        }
    }

    /// True when `eni` has, in `dir`, an SG rule with the CIDR `0.0.0.0/0` (or `::/0`)
    /// covering protocol -1, or `protocol` on every port: the response half of the
    /// untracked condition.
    #[inline]
    pub fn sg_open_all_ports(&self, eni: EniIdx, dir: Direction, v6: bool, protocol: u8) -> bool {
        let rules = self.sg_dir(eni, dir);
        let set = if v6 {
            &rules.v6.open_all_ports
        } else {
            &rules.v4.open_all_ports
        };
        set[protocol as usize / 64] & (1 << (protocol % 64)) != 0
    }

    /// The first NACL entry, in rule-number order, of subnet `subnet`'s NACL that
    /// matches `pkt`. `egress` selects the outbound entries; the peer is the source
    /// (inbound) or destination (outbound).
    #[inline]
    pub fn nacl_decide(&self, subnet: u32, dir: Direction, pkt: &Packet) -> NaclDecision {
        let egress = dir == Direction::Egress;
        let acl = self.subnet_nacl[subnet as usize];
        let dir = if egress {
            &self.nacl_out[acl as usize]
        } else {
            &self.nacl_in[acl as usize]
        };
        let peer = if egress { pkt.dst } else { pkt.src };
        let hit = match peer {
            IpAddr::V4(a) => dir.c4.first_match(pkt, u32::from(a)).map(|i| &dir.v4[i]),
            IpAddr::V6(a) => dir.c6.first_match(pkt, u128::from(a)).map(|i| &dir.v6[i]),
        };
        if let Some(e) = hit {
            return NaclDecision {
                allow: e.allow,
                rule_number: e.rule_number,
                rule: NaclRuleRef {
                    acl,
                    egress,
                    entry: e.entry,
                },
            };
        }
        // Unreachable after validation (the `*` rules match everything of their
        // family); an IPv6 packet in a VPC without IPv6 CIDRs has no `*` rule, and
        // is denied as 32768 would.
        NaclDecision {
            allow: false,
            rule_number: if peer.is_ipv6() { 32768 } else { 32767 },
            rule: NaclRuleRef {
                acl,
                egress,
                entry: u32::MAX,
            },
        }
    }

    /// Every ENI number of this ruleset.
    pub fn eni_numbers(&self) -> impl Iterator<Item = EniNum> + '_ {
        self.eni_number.iter().copied()
    }

    /// The set of subnets' NACL entries that exist, for coverage reports.
    pub fn all_nacl_rules(&self) -> Vec<NaclRuleRef> {
        let mut v = Vec::new();
        let used: HashSet<u32> = self.subnet_nacl.iter().copied().collect();
        for (ai, acl) in self.vpc.network_acls.iter().enumerate() {
            if !used.contains(&(ai as u32)) {
                continue;
            }
            for (egress, list) in [(false, &acl.inbound), (true, &acl.outbound)] {
                for i in 0..list.len() {
                    v.push(NaclRuleRef {
                        acl: ai as u32,
                        egress,
                        entry: i as u32,
                    });
                }
            }
        }
        v
    }

    /// Every SG rule of a group attached to at least one ENI, for coverage reports.
    pub fn all_sg_rules(&self) -> Vec<SgRuleRef> {
        let mut attached: HashSet<&str> = HashSet::new();
        for e in &self.vpc.network_interfaces {
            for g in &e.security_groups {
                attached.insert(g);
            }
        }
        let mut v = Vec::new();
        for (gi, g) in self.vpc.security_groups.iter().enumerate() {
            if !attached.contains(g.id.as_str()) {
                continue;
            }
            for (egress, list) in [(false, &g.ingress), (true, &g.egress)] {
                for i in 0..list.len() {
                    v.push(SgRuleRef {
                        group: gi as u32,
                        egress,
                        rule: i as u32,
                    });
                }
            }
        }
        v
    }

    /// `acl-0abc inbound rule 100 (allow tcp 443 from 0.0.0.0/0)`.
    pub fn describe_nacl_rule(&self, r: NaclRuleRef) -> String {
        let acl = &self.vpc.network_acls[r.acl as usize];
        let list = if r.egress {
            &acl.outbound
        } else {
            &acl.inbound
        };
        let dir = if r.egress { "outbound" } else { "inbound" };
        match list.get(r.entry as usize) {
            Some(e) => {
                let num = if e.rule_number >= 32767 {
                    "*".to_string()
                } else {
                    e.rule_number.to_string()
                };
                let proto = e.protocol.label();
                let ports = if matches!(e.ports, PortSpec::Any) {
                    String::new()
                } else {
                    format!(" {}", e.ports)
                };
                let peer = if r.egress { "to" } else { "from" };
                format!(
                    "{} {dir} rule {num} ({} {proto}{ports} {peer} {})",
                    acl.id, e.action, e.cidr
                )
            }
            None => format!("{} {dir} rule ?", acl.id),
        }
    }

    /// `sg-0abc ingress: tcp 443 from 0.0.0.0/0`.
    pub fn describe_sg_rule(&self, r: SgRuleRef) -> String {
        let g = &self.vpc.security_groups[r.group as usize];
        let list = if r.egress { &g.egress } else { &g.ingress };
        let dir = if r.egress { "egress" } else { "ingress" };
        match list.get(r.rule as usize) {
            Some(rule) => format!("{} {dir}: {}", g.id, rule.describe(!r.egress)),
            None => format!("{} {dir}: ?", g.id),
        }
    }
}

fn nth4(base: Ipv4Addr, n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(base).wrapping_add(n))
}

fn nth6(base: Ipv6Addr, n: u128) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(base).wrapping_add(n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::packet::Fragment;

    fn pkt(src: &str, dst: &str, proto: u8, dport: u16) -> Packet {
        Packet {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            protocol: proto,
            src_port: 40000,
            dst_port: dport,
            icmp_type: 0,
            icmp_code: 0,
            icmp_id: 0,
            tcp_flags: 0,
            ip_len: 60,
            fragment: Fragment::None,
        }
    }

    fn entry(
        n: u32,
        proto: Protocol,
        ports: PortSpec,
        cidr: &str,
        action: RuleAction,
    ) -> NetworkAclEntry {
        NetworkAclEntry {
            rule_number: n,
            protocol: proto,
            cidr: cidr.parse().unwrap(),
            ports,
            action,
            origin: Origin::default(),
        }
    }

    /// NACL-3 of aws-semantics.md §7.3 (VPC-NACL 2023, custom IPv4 NACL), inbound.
    fn nacl3_vpc() -> Vpc {
        let mut vpc = Vpc::new("vpc-1");
        vpc.cidrs.push("10.0.0.0/16".parse().unwrap());
        let mut s = Subnet::new("subnet-a", "10.0.1.0/24".parse().unwrap());
        s.network_acl_id = Some("acl-3".into());
        vpc.subnets.push(s);
        let mut acl = NetworkAcl::new("acl-3");
        let tcp = Protocol::Number(PROTO_TCP);
        let r = |f, t| PortSpec::Range { from: f, to: t };
        acl.inbound = vec![
            entry(100, tcp, r(80, 80), "0.0.0.0/0", RuleAction::Allow),
            entry(110, tcp, r(443, 443), "0.0.0.0/0", RuleAction::Allow),
            entry(120, tcp, r(22, 22), "192.0.2.0/24", RuleAction::Allow),
            entry(130, tcp, r(3389, 3389), "192.0.2.0/24", RuleAction::Allow),
            entry(140, tcp, r(32768, 65535), "0.0.0.0/0", RuleAction::Allow),
        ];
        vpc.network_acls.push(acl);
        vpc.validate().unwrap();
        vpc
    }

    #[test]
    fn nacl3_documented_outcomes() {
        let p = Policy::compile(Arc::new(nacl3_vpc()), &[]);
        // "Inbound packet to port 443: does not match 100, matches 110 ⇒ ALLOW."
        let d = p.nacl_decide(
            0,
            Direction::Ingress,
            &pkt("198.51.100.7", "10.0.1.5", 6, 443),
        );
        assert_eq!((d.allow, d.rule_number), (true, 110));
        // "Inbound packet to port 139: matches nothing ⇒ * ⇒ DENY."
        let d = p.nacl_decide(
            0,
            Direction::Ingress,
            &pkt("198.51.100.7", "10.0.1.5", 6, 139),
        );
        assert_eq!((d.allow, d.rule_number), (false, 32767));
        // SSH only from the home network.
        assert!(
            p.nacl_decide(0, Direction::Ingress, &pkt("192.0.2.9", "10.0.1.5", 6, 22))
                .allow
        );
        assert!(
            !p.nacl_decide(
                0,
                Direction::Ingress,
                &pkt("203.0.113.9", "10.0.1.5", 6, 22)
            )
            .allow
        );
    }

    #[test]
    fn exempt_addresses() {
        let p = Policy::compile(Arc::new(nacl3_vpc()), &[]);
        let e = |s: &str| p.exempt_service(s.parse().unwrap());
        assert_eq!(e("10.0.0.2"), Some(ExemptService::AmazonDns));
        assert_eq!(e("10.0.1.1"), Some(ExemptService::VpcRouter));
        assert_eq!(e("169.254.169.254"), Some(ExemptService::InstanceMetadata));
        assert_eq!(e("169.254.169.123"), Some(ExemptService::TimeSync));
        assert_eq!(e("fd00:ec2::253"), Some(ExemptService::AmazonDns));
        assert_eq!(e("10.0.1.2"), None);
    }
}

/// The compiled classifiers against a plain linear reading of the same rules, on
/// random rules and packets (the property tests in `tests/it/props.rs` do the same
/// from the model's side).
#[cfg(test)]
mod classifier_equivalence {
    use super::*;
    use crate::synth::SplitMix64;
    use crate::wire::packet::Fragment;

    fn linear_sg(f: &[CompiledSgRule], remote: IpAddr, pkt: &Packet) -> Option<SgRuleRef> {
        f.iter()
            .find(|r| proto_ports_match(r.protocol, r.ports, pkt) && r.peer.contains(remote))
            .map(|r| r.id)
    }

    fn linear_nacl(entries: &[CompiledNaclEntry], peer: IpAddr, pkt: &Packet) -> Option<u32> {
        entries
            .iter()
            .find(|e| e.cidr.contains(&peer) && proto_ports_match(e.protocol, e.ports, pkt))
            .map(|e| e.entry)
    }

    fn random_rule(r: &mut SplitMix64) -> (Protocol, PortSpec) {
        let protocol = match r.range(0, 5) {
            0 => Protocol::All,
            1 | 2 => Protocol::Number(6),
            3 => Protocol::Number(17),
            4 => Protocol::Number(1),
            _ => Protocol::Number(47),
        };
        let ports = match (protocol, r.range(0, 3)) {
            (Protocol::All, _) | (_, 0) => PortSpec::Any,
            (Protocol::Number(1), k) => PortSpec::Icmp {
                icmp_type: (k != 1).then(|| r.range(0, 11) as u8),
                code: (k != 2).then(|| r.range(0, 3) as u8),
            },
            _ => {
                let a = (r.range(0, 65) * 1000) as u16;
                let b = a.saturating_add(r.range(0, 2999) as u16);
                PortSpec::Range { from: a, to: b }
            }
        };
        (protocol, ports)
    }

    fn random_net(r: &mut SplitMix64) -> IpNet {
        let len = r.range(0, 32) as u8;
        let addr = Ipv4Addr::from((10u32 << 24) | (r.range(0, (1 << 16) - 1) as u32) << 8);
        IpNet::new(IpAddr::V4(addr), len).unwrap().trunc()
    }

    fn random_packet(r: &mut SplitMix64) -> Packet {
        let protocol = [6u8, 6, 17, 1, 47, 50][r.range(0, 5) as usize];
        Packet {
            src: IpAddr::V4(Ipv4Addr::from(
                (10u32 << 24) | r.range(0, (1 << 24) - 1) as u32,
            )),
            dst: IpAddr::V4(Ipv4Addr::from(
                (10u32 << 24) | r.range(0, (1 << 24) - 1) as u32,
            )),
            protocol,
            src_port: r.range(0, 65535) as u16,
            dst_port: r.range(0, 70_000).min(65535) as u16,
            icmp_type: r.range(0, 11) as u8,
            icmp_code: r.range(0, 3) as u8,
            icmp_id: 0,
            tcp_flags: 0,
            ip_len: 60,
            fragment: if r.range(0, 7) == 0 {
                Fragment::Later { id: 1 }
            } else {
                Fragment::None
            },
        }
    }

    #[test]
    fn compiled_matching_equals_linear_reading() {
        let mut r = SplitMix64(7);
        for round in 0..40 {
            let n = [1usize, 5, 63, 64, 65, 200][round % 6];
            let sg: Vec<CompiledSgRule> = (0..n)
                .map(|i| {
                    let (protocol, ports) = random_rule(&mut r);
                    let peer = if r.range(0, 3) == 0 {
                        Peer::Set(Arc::new((0..3).map(|_| random_net(&mut r)).collect()))
                    } else {
                        Peer::Net(random_net(&mut r))
                    };
                    CompiledSgRule {
                        protocol,
                        ports,
                        open: matches!(peer, Peer::Net(n) if n.prefix_len() == 0),
                        peer,
                        id: SgRuleRef {
                            group: 0,
                            egress: false,
                            rule: i as u32,
                        },
                    }
                })
                .collect();
            let fam = Family::new(sg.clone(), ranges4);
            let nacl: Vec<CompiledNaclEntry> = (0..n)
                .map(|i| {
                    let (protocol, ports) = random_rule(&mut r);
                    CompiledNaclEntry {
                        protocol,
                        ports,
                        cidr: random_net(&mut r),
                        allow: r.range(0, 1) == 0,
                        rule_number: i as u32 + 1,
                        entry: i as u32,
                    }
                })
                .collect();
            let nd = NaclDir::new(nacl.clone(), Vec::new());
            for _ in 0..2000 {
                let p = random_packet(&mut r);
                let IpAddr::V4(src) = p.src else {
                    unreachable!()
                };
                assert_eq!(
                    fam.classifier
                        .first_match(&p, u32::from(src))
                        .map(|i| sg[i].id),
                    linear_sg(&sg, p.src, &p),
                    "SG, {n} rules, {p:?}"
                );
                assert_eq!(
                    nd.c4.first_match(&p, u32::from(src)).map(|i| nacl[i].entry),
                    linear_nacl(&nacl, p.src, &p),
                    "NACL, {n} rules, {p:?}"
                );
                let open_linear = sg
                    .iter()
                    .any(|x| x.open && proto_ports_match(x.protocol, x.ports, &p));
                assert_eq!(fam.classifier.any_ports_match(&p, &fam.open), open_linear);
            }
        }
    }
}
