//! `ipv6-twin-missing`: IPv4 rules without an IPv6 rule for the same traffic.

use super::*;

/// Whether `t` (IPv6) covers the same traffic as `r` (IPv4): same protocol (ICMP and
/// ICMPv6 are twins) and ports at least as wide.
pub(super) fn twin_covers(rp: Protocol, rs: PortSpec, tp: Protocol, ts: PortSpec) -> bool {
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
pub(super) fn twin_text(p: Protocol, ports: PortSpec) -> String {
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
pub(super) fn want_addr(vpc: &Vpc, c: &IpNet) -> Option<IpAddr> {
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
pub(super) fn twin_wanted(vpc: &Vpc, c: &IpNet) -> Option<String> {
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

pub(super) fn ipv6_twins(vpc: &Vpc, out: &mut Vec<Finding>) {
    if !vpc.has_ipv6() {
        return;
    }
    sg_twins(vpc, out);
    nacl_twins(vpc, out);
}

/// IPv4 rules of groups with IPv6 interfaces that IPv6 rules do not match alike
/// (rules add up).
pub(super) fn sg_twins(vpc: &Vpc, out: &mut Vec<Finding>) {
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
}

/// IPv4 entries of NACLs with IPv6 subnets whose ports the IPv6 entries do not decide
/// alike (first match wins).
pub(super) fn nacl_twins(vpc: &Vpc, out: &mut Vec<Finding>) {
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
