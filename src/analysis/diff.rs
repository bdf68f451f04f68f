//! The packets whose verdict differs between two runs of the engine over the same
//! capture, grouped by flow pattern and by the rule responsible on each side.
//!
//! Two users: `vpcgate diff` (the same capture under an old and a new ruleset) and
//! the counterfactual replays (`replay --stateless-sg`, `--stateful-nacl`: AWS's
//! behaviour against the counterfactual one). Both drive [`crate::engine`] and hand
//! each packet's two [`Decision`]s to a [`Differ`]; nothing here judges a packet.
//! Where one side accepted a packet that the other rejected, the rule that let it
//! through that check is asked of the same compiled [`Policy`] the engine used.
//!
//! Grouping: one group per kind of change (newly rejected, newly accepted), the
//! rule responsible before and after, the protocol, the two addresses and the
//! service port; the other port (the client's ephemeral port) is collapsed into a
//! range. The result, [`DiffReport`], is plain data for text, JSON and HTML.
//!
//! ```
//! use vpcgate::analysis::diff::{Differ, PortSpan};
//! let d = Differ::default();
//! let r = d.finish("old.toml", "new.toml", 0);
//! assert!(r.groups.is_empty() && r.newly_rejected == 0);
//! assert_eq!(PortSpan { lo: 1024, hi: 2048 }.to_string(), "1024-2048");
//! ```
#![deny(clippy::disallowed_methods, clippy::disallowed_types)]

use crate::engine::{Decision, Reason, Verdict};
use crate::model::{Direction, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP};
use crate::policy::Policy;
use crate::wire::packet::Packet;
use hashbrown::{HashMap, HashSet};
use serde_json::{json, Value};
use std::fmt;
use std::net::IpAddr;

/// What changed for the packets of a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChangeKind {
    /// Accepted (or not evaluated) before, rejected after.
    NewlyRejected,
    /// Rejected (or not evaluated) before, accepted after.
    NewlyAccepted,
    /// Evaluated on one side, not on the other (an ENI added or removed).
    NotEvaluated,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::NewlyRejected => "newly rejected",
            ChangeKind::NewlyAccepted => "newly accepted",
            ChangeKind::NotEvaluated => "evaluated on one side only",
        }
    }

    fn of(before: Verdict, after: Verdict) -> Option<ChangeKind> {
        match (before, after) {
            (b, a) if b == a => None,
            (_, Verdict::Reject) => Some(ChangeKind::NewlyRejected),
            (_, Verdict::Accept) => Some(ChangeKind::NewlyAccepted),
            _ => Some(ChangeKind::NotEvaluated),
        }
    }
}

/// A range of ports, `lo..=hi`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PortSpan {
    pub lo: u16,
    pub hi: u16,
}

impl fmt::Display for PortSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

/// A packet of a capture: its file (index among the captures) and its 1-based index
/// in that file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PacketRef {
    pub file: u32,
    pub index: u64,
}

/// The packets of one flow pattern whose verdict changed the same way, for the same
/// rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeGroup {
    pub kind: ChangeKind,
    /// IP protocol number.
    pub protocol: u8,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// TCP/UDP ports; `None` for other protocols. One side is the service port (a
    /// single port), the other the range of the clients' ports.
    pub src_ports: Option<PortSpan>,
    pub dst_ports: Option<PortSpan>,
    /// The clients' ports themselves, sorted, when there are at most
    /// [`FEW_PORTS`] of them (a range of three ports would hide which).
    pub client_ports: Option<Vec<u16>>,
    /// ICMP type and code, for ICMP.
    pub icmp: Option<(u8, u8)>,
    /// The rule responsible on each side: for a REJECT the check and rule that denied
    /// it, for an ACCEPT what let it through that check.
    pub before: String,
    pub after: String,
    pub packets: u64,
    /// Distinct port pairs (TCP/UDP connections), or 1.
    pub flows: u64,
    /// Packets that belonged to a live tracked connection at the checking ENI (in
    /// either run): replies, mostly.
    pub tracked: u64,
    /// The first packet of the group, to look at with `--verdicts`.
    pub first: PacketRef,
}

impl ChangeGroup {
    /// `tcp 10.0.11.11:8080 -> 10.0.1.10:1024-32767`.
    pub fn pattern(&self) -> String {
        let proto = match self.protocol {
            PROTO_TCP => "tcp".to_string(),
            PROTO_UDP => "udp".to_string(),
            PROTO_ICMP => "icmp".to_string(),
            PROTO_ICMPV6 => "icmpv6".to_string(),
            p => format!("protocol {p}"),
        };
        // The clients' side is the one that spans several ports.
        let ports = |p: Option<PortSpan>| -> Option<String> {
            let p = p?;
            Some(match &self.client_ports {
                Some(v) if p.lo != p.hi => v
                    .iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
                _ => p.to_string(),
            })
        };
        let end = |a: &IpAddr, p: Option<String>| match (a, p) {
            (IpAddr::V6(a), Some(p)) => format!("[{a}]:{p}"),
            (a, Some(p)) => format!("{a}:{p}"),
            (a, None) => a.to_string(),
        };
        let icmp = self
            .icmp
            .map_or(String::new(), |(t, c)| format!(" type {t} code {c}"));
        format!(
            "{proto} {} -> {}{icmp}",
            end(&self.src, ports(self.src_ports)),
            end(&self.dst, ports(self.dst_ports))
        )
    }

    /// The group as JSON (README: `vpcgate diff --json`).
    pub fn to_json(&self) -> Value {
        json!({
            "change": self.kind.as_str(),
            "protocol": self.protocol,
            "src": self.src.to_string(),
            "dst": self.dst.to_string(),
            "src_ports": self.src_ports.map(|p| p.to_string()),
            "dst_ports": self.dst_ports.map(|p| p.to_string()),
            "client_ports": self.client_ports,
            "icmp_type": self.icmp.map(|i| i.0),
            "icmp_code": self.icmp.map(|i| i.1),
            "pattern": self.pattern(),
            "before": self.before,
            "after": self.after,
            "packets": self.packets,
            "flows": self.flows,
            "tracked": self.tracked,
            "first_packet": {"file": self.first.file, "packet": self.first.index},
        })
    }
}

/// The packets of one kind of change that one rule rejects (newly rejected: the rule
/// that rejects them after; newly accepted: the rule that rejected them before), over
/// all their flow groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleTotal {
    pub kind: ChangeKind,
    pub rule: String,
    pub packets: u64,
    pub tracked: u64,
    /// Flow groups.
    pub groups: usize,
}

/// Up to this many distinct client ports are listed, not spanned.
pub const FEW_PORTS: usize = 3;

/// Every change of a run, grouped: what `vpcgate diff` prints and the counterfactual
/// summaries list (and the HTML report can draw).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiffReport {
    /// What the two sides are: the rulesets' paths, or `AWS` and the counterfactual.
    pub before_label: String,
    pub after_label: String,
    /// Packets compared.
    pub packets: u64,
    pub newly_rejected: u64,
    pub newly_accepted: u64,
    pub not_evaluated: u64,
    /// Changed packets (counted above) of flow groups beyond the differ's limit
    /// ([`MAX_GROUPS`]): not in `groups`.
    pub ungrouped: u64,
    /// Newly rejected first, then newly accepted, then the rest; most packets first.
    pub groups: Vec<ChangeGroup>,
}

impl DiffReport {
    /// The groups of one kind.
    pub fn of(&self, kind: ChangeKind) -> impl Iterator<Item = &ChangeGroup> {
        self.groups.iter().filter(move |g| g.kind == kind)
    }

    /// The changes of each kind totalled by the rejecting rule: the rule that rejects
    /// them after (newly rejected) or rejected them before (newly accepted). Most
    /// packets first.
    pub fn by_rule(&self) -> Vec<RuleTotal> {
        let mut v: Vec<RuleTotal> = Vec::new();
        for g in &self.groups {
            let rule = match g.kind {
                ChangeKind::NewlyAccepted => &g.before,
                _ => &g.after,
            };
            match v.iter_mut().find(|t| t.kind == g.kind && &t.rule == rule) {
                Some(t) => {
                    t.packets += g.packets;
                    t.tracked += g.tracked;
                    t.groups += 1;
                }
                None => v.push(RuleTotal {
                    kind: g.kind,
                    rule: rule.clone(),
                    packets: g.packets,
                    tracked: g.tracked,
                    groups: 1,
                }),
            }
        }
        v.sort_by(|a, b| {
            a.kind
                .cmp(&b.kind)
                .then(b.packets.cmp(&a.packets))
                .then_with(|| a.rule.cmp(&b.rule))
        });
        v
    }

    /// The groups of each kind under a heading per kind, at most `limit` per kind
    /// (then `… and N more (see --json)`); `indent` before every line.
    pub fn groups_text(&self, o: &mut String, indent: &str, limit: usize) {
        use std::fmt::Write;
        for kind in [
            ChangeKind::NewlyRejected,
            ChangeKind::NewlyAccepted,
            ChangeKind::NotEvaluated,
        ] {
            let groups: Vec<_> = self.of(kind).collect();
            if groups.is_empty() {
                continue;
            }
            let mut title = kind.as_str().to_string();
            title[..1].make_ascii_uppercase();
            let totals: Vec<RuleTotal> = self
                .by_rule()
                .into_iter()
                .filter(|t| t.kind == kind)
                .collect();
            let by = match kind {
                ChangeKind::NewlyRejected => "by the rule that rejects them now",
                ChangeKind::NewlyAccepted => "by the rule that rejected them",
                ChangeKind::NotEvaluated => "by what decided them",
            };
            let _ = writeln!(o, "{indent}{title}, {by}:");
            for t in totals.iter().take(limit) {
                let _ = writeln!(
                    o,
                    "{indent}  {:>8}  {}  ({} flow group(s))",
                    t.packets, t.rule, t.groups
                );
            }
            if totals.len() > limit {
                let _ = writeln!(
                    o,
                    "{indent}  … and {} more (see --json)",
                    totals.len() - limit
                );
            }
            let _ = writeln!(o, "{indent}{title}, by flow and rule:");
            for g in groups.iter().take(limit) {
                let _ = writeln!(
                    o,
                    "{indent}  {:>8}  {}  ({} flow(s); first: packet {}{})",
                    g.packets,
                    g.pattern(),
                    g.flows,
                    g.first.index,
                    if g.first.file > 0 {
                        format!(" of capture {}", g.first.file + 1)
                    } else {
                        String::new()
                    }
                );
                let (was, is) = match kind {
                    ChangeKind::NewlyRejected => ("ACCEPT, ", "REJECT, "),
                    ChangeKind::NewlyAccepted => ("REJECT, ", "ACCEPT, "),
                    ChangeKind::NotEvaluated => ("", ""),
                };
                let _ = writeln!(o, "{indent}            before: {was}{}", g.before);
                let _ = writeln!(o, "{indent}            after:  {is}{}", g.after);
                if g.tracked > 0 {
                    let _ = writeln!(
                        o,
                        "{indent}            {} of them belong to connections the security group tracks",
                        g.tracked
                    );
                }
            }
            if groups.len() > limit {
                let _ = writeln!(
                    o,
                    "{indent}  … and {} more (see --json)",
                    groups.len() - limit
                );
            }
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "before": self.before_label,
            "after": self.after_label,
            "packets": self.packets,
            "newly_rejected": self.newly_rejected,
            "newly_accepted": self.newly_accepted,
            "evaluated_on_one_side_only": self.not_evaluated,
            "ungrouped": self.ungrouped,
            "by_rule": self.by_rule().iter().map(|t| json!({
                "change": t.kind.as_str(),
                "rule": t.rule,
                "packets": t.packets,
                "tracked": t.tracked,
                "groups": t.groups,
            })).collect::<Vec<_>>(),
            "groups": self.groups.iter().map(ChangeGroup::to_json).collect::<Vec<_>>(),
        })
    }
}

/// What a group is keyed by.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    kind: ChangeKind,
    protocol: u8,
    src: IpAddr,
    dst: IpAddr,
    /// The service port and whether it is the destination's; 0 for portless.
    service: u16,
    service_is_dst: bool,
    icmp: Option<(u8, u8)>,
    before: String,
    after: String,
}

#[derive(Clone, Debug)]
struct Acc {
    client: PortSpan,
    packets: u64,
    tracked: u64,
    first: PacketRef,
    clients: HashSet<u16>,
}

/// Collects the packets whose verdict differs between two runs, grouped as they come.
#[derive(Clone, Debug)]
pub struct Differ {
    groups: HashMap<Key, Acc>,
    packets: u64,
    /// At most this many groups: a capture of hostile or scanning traffic can change
    /// the verdict of millions of distinct flows, and memory must stay bounded.
    limit: usize,
    /// Changed packets of groups beyond `limit`, per [`ChangeKind`]: counted, not
    /// grouped.
    ungrouped: [u64; 3],
}

/// The groups one [`Differ`] keeps by default (about 200 bytes each).
pub const MAX_GROUPS: usize = 200_000;

impl Default for Differ {
    fn default() -> Differ {
        Differ::with_limit(MAX_GROUPS)
    }
}

/// One packet's decision in one run, with the policy that made it.
#[derive(Clone, Copy)]
pub struct Side<'a> {
    pub policy: &'a Policy,
    pub decision: &'a Decision,
}

impl Differ {
    /// A differ that keeps at most `limit` groups; the changed packets of any further
    /// group are counted in the totals and in [`DiffReport::ungrouped`]. Which groups
    /// are kept is decided by the order of [`Differ::add`]: the first `limit` seen.
    pub fn with_limit(limit: usize) -> Differ {
        Differ {
            groups: HashMap::new(),
            packets: 0,
            limit,
            ungrouped: [0; 3],
        }
    }

    /// Compares one packet's two decisions (`before`, `after`); a packet whose verdict
    /// is the same on both sides only counts.
    pub fn add(&mut self, at: PacketRef, pkt: &Packet, before: Side<'_>, after: Side<'_>) {
        self.packets += 1;
        let (bv, av) = (before.decision.verdict, after.decision.verdict);
        let Some(kind) = ChangeKind::of(bv, av) else {
            return;
        };
        // The check that decided: the rejecting side's.
        let check = match (bv, av) {
            (Verdict::Reject, _) => before.decision.reason,
            _ => after.decision.reason,
        };
        let tracked =
            before.decision.tracked.iter().any(|&t| t) || after.decision.tracked.iter().any(|&t| t);
        let (service, service_is_dst, client) = ports(pkt);
        let icmp = matches!(pkt.protocol, PROTO_ICMP | PROTO_ICMPV6)
            .then_some((pkt.icmp_type, pkt.icmp_code));
        let key = Key {
            kind,
            protocol: pkt.protocol,
            src: pkt.src,
            dst: pkt.dst,
            service,
            service_is_dst,
            icmp,
            before: responsible(before, pkt, check),
            after: responsible(after, pkt, check),
        };
        if self.groups.len() >= self.limit && !self.groups.contains_key(&key) {
            self.ungrouped[kind as usize] += 1;
            return;
        }
        let acc = self.groups.entry(key).or_insert_with(|| Acc {
            client: PortSpan {
                lo: client,
                hi: client,
            },
            packets: 0,
            tracked: 0,
            first: at,
            clients: HashSet::new(),
        });
        acc.client.lo = acc.client.lo.min(client);
        acc.client.hi = acc.client.hi.max(client);
        acc.packets += 1;
        acc.tracked += u64::from(tracked);
        acc.first = acc.first.min(at);
        acc.clients.insert(client);
    }

    /// Adds another differ's packets (another worker's flow shards).
    pub fn merge(&mut self, other: Differ) {
        self.packets += other.packets;
        for (a, b) in self.ungrouped.iter_mut().zip(other.ungrouped) {
            *a += b;
        }
        for (k, o) in other.groups {
            match self.groups.get_mut(&k) {
                None => {
                    self.groups.insert(k, o);
                }
                Some(a) => {
                    a.client.lo = a.client.lo.min(o.client.lo);
                    a.client.hi = a.client.hi.max(o.client.hi);
                    a.packets += o.packets;
                    a.tracked += o.tracked;
                    a.first = a.first.min(o.first);
                    a.clients.extend(o.clients);
                }
            }
        }
    }

    /// The groups, in a fixed order: the same for any order of [`Differ::add`] and
    /// [`Differ::merge`].
    pub fn finish(self, before_label: &str, after_label: &str, packets: u64) -> DiffReport {
        let mut r = DiffReport {
            before_label: before_label.to_string(),
            after_label: after_label.to_string(),
            packets: packets.max(self.packets),
            newly_rejected: self.ungrouped[ChangeKind::NewlyRejected as usize],
            newly_accepted: self.ungrouped[ChangeKind::NewlyAccepted as usize],
            not_evaluated: self.ungrouped[ChangeKind::NotEvaluated as usize],
            ungrouped: self.ungrouped.iter().sum(),
            ..Default::default()
        };
        for (k, a) in self.groups {
            match k.kind {
                ChangeKind::NewlyRejected => r.newly_rejected += a.packets,
                ChangeKind::NewlyAccepted => r.newly_accepted += a.packets,
                ChangeKind::NotEvaluated => r.not_evaluated += a.packets,
            }
            let portful = matches!(k.protocol, PROTO_TCP | PROTO_UDP);
            let service = PortSpan {
                lo: k.service,
                hi: k.service,
            };
            let (src_ports, dst_ports) = match (portful, k.service_is_dst) {
                (false, _) => (None, None),
                (true, true) => (Some(a.client), Some(service)),
                (true, false) => (Some(service), Some(a.client)),
            };
            let client_ports = (portful && a.clients.len() <= FEW_PORTS).then(|| {
                let mut v: Vec<u16> = a.clients.iter().copied().collect();
                v.sort_unstable();
                v
            });
            r.groups.push(ChangeGroup {
                kind: k.kind,
                protocol: k.protocol,
                src: k.src,
                dst: k.dst,
                src_ports,
                dst_ports,
                client_ports,
                icmp: k.icmp,
                before: k.before,
                after: k.after,
                packets: a.packets,
                flows: if portful { a.clients.len() as u64 } else { 1 },
                tracked: a.tracked,
                first: a.first,
            });
        }
        r.groups.sort_by(|a, b| {
            a.kind
                .cmp(&b.kind)
                .then(b.packets.cmp(&a.packets))
                .then(a.first.cmp(&b.first))
                .then_with(|| a.pattern().cmp(&b.pattern()))
                .then_with(|| a.before.cmp(&b.before))
                .then_with(|| a.after.cmp(&b.after))
        });
        r
    }
}

/// The service port, whether it is the destination port, and the client's port: the
/// lower port is taken for the service (clients pick theirs from an ephemeral range
/// above it). 0, true, 0 for protocols without ports.
fn ports(p: &Packet) -> (u16, bool, u16) {
    if !matches!(p.protocol, PROTO_TCP | PROTO_UDP) {
        return (0, true, 0);
    }
    if p.dst_port <= p.src_port {
        (p.dst_port, true, p.src_port)
    } else {
        (p.src_port, false, p.dst_port)
    }
}

/// The rule responsible on `side` for the `check` (a reject reason of one of the two
/// sides): the rule that denied, or what let the packet through that check.
fn responsible(side: Side<'_>, pkt: &Packet, check: Reason) -> String {
    let (policy, d) = (side.policy, side.decision);
    match d.verdict {
        Verdict::Reject => rejected_by(policy, d.reason),
        Verdict::None => format!(
            "not evaluated: {}",
            crate::engine::reason_text(d.reason, policy)
        ),
        Verdict::Accept => allowed_by(policy, pkt, d, check),
    }
}

/// `acl-0abc outbound rule * (deny all to 0.0.0.0/0)`,
/// `sg-egress eni-0abc: no rule of sg-0abc (app)`.
fn rejected_by(policy: &Policy, reason: Reason) -> String {
    let vpc = &policy.vpc;
    match reason {
        Reason::NaclInbound { rule, .. } | Reason::NaclOutbound { rule, .. } => {
            policy.describe_nacl_rule(rule)
        }
        Reason::SgIngress { eni } | Reason::SgEgress { eni } => {
            let check = if matches!(reason, Reason::SgIngress { .. }) {
                "sg-ingress"
            } else {
                "sg-egress"
            };
            let Some(e) = vpc.network_interfaces.get(eni.get()) else {
                return crate::engine::reason_text(reason, policy);
            };
            let groups: Vec<String> = e
                .security_groups
                .iter()
                .map(|g| {
                    let name = vpc
                        .security_groups
                        .iter()
                        .find(|s| &s.id == g)
                        .map_or("", |s| s.name.as_str());
                    if name.is_empty() || name == g {
                        g.clone()
                    } else {
                        format!("{g} ({name})")
                    }
                })
                .collect();
            format!(
                "{check} {}: no rule of {} allows it",
                e.id,
                groups.join(", ")
            )
        }
        other => crate::engine::reason_text(other, policy),
    }
}

/// What let `pkt` through the check that `check` names (a reason of either side,
/// found again in this side's ruleset by the packet's addresses).
fn allowed_by(policy: &Policy, pkt: &Packet, d: &Decision, check: Reason) -> String {
    let (dir, addr) = match check {
        Reason::NaclOutbound { .. } | Reason::SgEgress { .. } => (Direction::Egress, pkt.src),
        Reason::NaclInbound { .. } | Reason::SgIngress { .. } | Reason::ConntrackFull { .. } => {
            (Direction::Ingress, pkt.dst)
        }
        _ => return "accepted".to_string(),
    };
    let side = match dir {
        Direction::Egress => 0,
        Direction::Ingress => 1,
    };
    // A conntrack-full reject names its ENI; the other checks are at the source ENI
    // (egress) or the destination ENI (ingress).
    let eni = match check {
        Reason::ConntrackFull { .. } => policy
            .owner(pkt.src)
            .filter(|_| d.tracked[0])
            .or_else(|| policy.owner(pkt.dst)),
        _ => policy.owner(addr),
    };
    let Some(owner) = eni else {
        return "accepted (the address is no ENI of this ruleset)".to_string();
    };
    let eni = owner.eni;
    let eni_id = &policy.vpc.network_interfaces[eni.get()].id;
    match check {
        Reason::NaclOutbound { .. } | Reason::NaclInbound { .. } => {
            let nd = policy.nacl_decide(policy.eni_subnet[eni.get()], dir, pkt);
            if nd.allow {
                policy.describe_nacl_rule(nd.rule)
            } else if d.tracked[side] {
                format!(
                    "a connection tracked at {eni_id}, let through by a stateful NACL (not AWS)"
                )
            } else {
                "no network ACL on its path".to_string()
            }
        }
        Reason::SgEgress { .. } | Reason::SgIngress { .. } => {
            let remote = match dir {
                Direction::Egress => pkt.dst,
                Direction::Ingress => pkt.src,
            };
            if d.tracked[side] {
                format!("a connection tracked at {eni_id}")
            } else if policy.eni_no_sg[eni.get()] {
                format!("{eni_id} has no security group")
            } else {
                match policy.sg_match(eni, dir, remote, pkt) {
                    Some(r) => policy.describe_sg_rule(r),
                    None => "accepted".to_string(),
                }
            }
        }
        _ => format!("room for a tracked connection at {eni_id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Counterfactual, Engine};
    use crate::wire::packet::{tcp_flags, Fragment, Timestamp};
    use std::sync::Arc;

    fn policy(egress_port: &str) -> Arc<Policy> {
        let vpc = crate::load::load_str(
            "x.toml",
            &format!(
                r#"
            [vpc]
            id = "vpc-1"
            cidrs = ["10.0.0.0/16"]
            [[subnets]]
            id = "subnet-a"
            cidr = "10.0.1.0/24"
            network_acl = "acl-a"
            [[network_acls]]
            id = "acl-a"
            inbound = [ {{ rule = 100, protocol = "tcp", ports = "443", cidr = "0.0.0.0/0", action = "allow" }} ]
            outbound = [ {{ rule = 100, protocol = "tcp", ports = "{egress_port}", cidr = "0.0.0.0/0", action = "allow" }} ]
            [[security_groups]]
            id = "sg-web"
            name = "web"
            ingress = [ {{ protocol = "tcp", ports = "443", cidr = "0.0.0.0/0" }} ]
            [[network_interfaces]]
            id = "eni-web"
            subnet = "subnet-a"
            private_ips = ["10.0.1.10"]
            security_groups = ["sg-web"]
        "#
            ),
        )
        .unwrap();
        Arc::new(Policy::compile(Arc::new(vpc), &["eni-web".to_string()]))
    }

    fn tcp(src: &str, dst: &str, sport: u16, dport: u16, flags: u8) -> Packet {
        Packet {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            protocol: PROTO_TCP,
            src_port: sport,
            dst_port: dport,
            icmp_type: 0,
            icmp_code: 0,
            icmp_id: 0,
            tcp_flags: flags,
            ip_len: 60,
            fragment: Fragment::None,
        }
    }

    /// Three clients' handshakes with the web server; its replies leave only to
    /// 32768-61000 under the old NACL, to 1024-65535 under the new one.
    fn packets() -> Vec<Packet> {
        let mut v = Vec::new();
        for (client, port) in [
            ("198.51.100.1", 2000),
            ("198.51.100.1", 3000),
            ("198.51.100.1", 40000),
            ("198.51.100.2", 5000),
        ] {
            v.push(tcp(client, "10.0.1.10", port, 443, tcp_flags::SYN));
            v.push(tcp(
                "10.0.1.10",
                client,
                443,
                port,
                tcp_flags::SYN | tcp_flags::ACK,
            ));
        }
        v
    }

    fn differ_over(pkts: &[(u64, Packet)], old: &Arc<Policy>, new: &Arc<Policy>) -> Differ {
        let (mut a, mut b) = (Engine::new(old.clone()), Engine::new(new.clone()));
        let mut d = Differ::default();
        for (i, p) in pkts {
            let t = Timestamp::from_secs_nanos(1_700_000_000 + i, 0);
            let (da, db) = (a.process(p, t), b.process(p, t));
            let at = PacketRef { file: 0, index: *i };
            d.add(
                at,
                p,
                Side {
                    policy: old,
                    decision: &da,
                },
                Side {
                    policy: new,
                    decision: &db,
                },
            );
        }
        d
    }

    /// Memory stays bounded: beyond its limit a differ counts the packets of new
    /// groups and lists only the groups it kept (the first seen).
    #[test]
    fn groups_beyond_the_limit_are_counted_not_kept() {
        let (old, new) = (policy("32768-61000"), policy("1024-65535"));
        let (mut a, mut b) = (Engine::new(old.clone()), Engine::new(new.clone()));
        let mut d = Differ::with_limit(1);
        for (i, p) in packets().into_iter().enumerate() {
            let t = Timestamp::from_secs_nanos(1_700_000_000 + i as u64, 0);
            let (da, db) = (a.process(&p, t), b.process(&p, t));
            let at = PacketRef {
                file: 0,
                index: i as u64 + 1,
            };
            let before = Side {
                policy: &old,
                decision: &da,
            };
            let after = Side {
                policy: &new,
                decision: &db,
            };
            d.add(at, &p, before, after);
        }
        let r = d.finish("old", "new", 8);
        // Replies to ports 2000 and 3000 (one group: 198.51.100.1 -> 443) and 5000
        // (198.51.100.2) leave only under the new NACL; 40000 passes both.
        assert_eq!(r.newly_accepted, 3);
        assert_eq!(r.ungrouped, 1);
        assert_eq!(r.groups.len(), 1);
        assert_eq!(r.groups[0].packets, 2);
        assert_eq!(r.groups[0].dst, "198.51.100.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn replies_are_grouped_by_flow_pattern_and_rule() {
        let (old, new) = (policy("32768-61000"), policy("1024-65535"));
        let pkts: Vec<(u64, Packet)> = packets()
            .into_iter()
            .enumerate()
            .map(|(i, p)| (i as u64 + 1, p))
            .collect();
        let r = differ_over(&pkts, &old, &new).finish("old", "new", 0);
        assert_eq!(r.packets, 8);
        assert_eq!((r.newly_rejected, r.newly_accepted), (0, 3));
        assert_eq!(r.groups.len(), 2);
        let g = &r.groups[0];
        assert_eq!(g.pattern(), "tcp 10.0.1.10:443 -> 198.51.100.1:2000,3000");
        assert_eq!((g.packets, g.flows, g.tracked), (2, 2, 2));
        assert_eq!(g.first, PacketRef { file: 0, index: 2 });
        assert_eq!(g.before, "acl-a outbound rule * (deny all to 0.0.0.0/0)");
        assert_eq!(
            g.after,
            "acl-a outbound rule 100 (allow tcp 1024-65535 to 0.0.0.0/0)"
        );
        assert_eq!(
            r.groups[1].pattern(),
            "tcp 10.0.1.10:443 -> 198.51.100.2:5000"
        );
        // The other way round: newly rejected, sides swapped.
        let back = differ_over(&pkts, &new, &old).finish("new", "old", 0);
        assert_eq!((back.newly_rejected, back.newly_accepted), (3, 0));
        assert_eq!(back.groups[0].before, g.after);
    }

    /// Split over two differs (two workers' shards) in any way, merged in either
    /// order: the same report.
    #[test]
    fn merging_gives_the_same_report_in_any_order() {
        let (old, new) = (policy("32768-61000"), policy("1024-65535"));
        let pkts: Vec<(u64, Packet)> = packets()
            .into_iter()
            .enumerate()
            .map(|(i, p)| (i as u64 + 1, p))
            .collect();
        let whole = differ_over(&pkts, &old, &new).finish("old", "new", 0);
        // Each handshake whole in one part (connection tracking is per flow).
        let (x, y): (Vec<_>, Vec<_>) = pkts.iter().cloned().partition(|(_, p)| {
            p.src_port == 3000 || p.dst_port == 3000 || p.src_port == 5000 || p.dst_port == 5000
        });
        let (dx, dy) = (differ_over(&x, &old, &new), differ_over(&y, &old, &new));
        let mut m1 = dx.clone();
        m1.merge(dy.clone());
        let mut m2 = dy;
        m2.merge(dx);
        assert_eq!(m1.finish("old", "new", 0), whole);
        assert_eq!(m2.finish("old", "new", 0), whole);
    }

    /// Stateless groups: the SYN-ACK that tracking let out meets the group's egress
    /// rules (there are none).
    #[test]
    fn a_stateless_group_drops_what_tracking_let_out() {
        let p = policy("1024-65535");
        let (mut aws, mut cf) = (Engine::new(p.clone()), Engine::new(p.clone()));
        cf.set_counterfactual(Counterfactual {
            stateless_sg: true,
            stateful_nacl: false,
        });
        let mut d = Differ::default();
        for (i, pkt) in packets().iter().take(2).enumerate() {
            let t = Timestamp::from_secs_nanos(1_700_000_000, i as u32);
            let (da, dc) = (aws.process(pkt, t), cf.process(pkt, t));
            let at = PacketRef {
                file: 0,
                index: i as u64 + 1,
            };
            d.add(
                at,
                pkt,
                Side {
                    policy: &p,
                    decision: &da,
                },
                Side {
                    policy: &p,
                    decision: &dc,
                },
            );
        }
        let r = d.finish("AWS", "stateless", 0);
        assert_eq!((r.newly_rejected, r.newly_accepted), (1, 0));
        assert_eq!(r.groups[0].before, "a connection tracked at eni-web");
        assert_eq!(
            r.groups[0].after,
            "sg-egress eni-web: no rule of sg-web (web) allows it"
        );
    }
}
