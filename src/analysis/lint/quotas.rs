//! `quota-exceeded`: more rules or groups than an AWS quota allows.

use super::*;

pub(super) fn quota_checks(vpc: &Vpc, q: &Quotas, out: &mut Vec<Finding>) {
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
