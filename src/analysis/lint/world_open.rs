//! `world-open-admin-port`: administrative and database ports open to the world.

use super::*;

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

pub(super) fn admin_in(ports: &[(u16, u16)]) -> Vec<String> {
    ADMIN_PORTS
        .iter()
        .filter(|(p, _)| ports.iter().any(|&(f, t)| f <= *p && *p <= t))
        .map(|(p, n)| format!("{p} ({n})"))
        .collect()
}

pub(super) fn admin_list(v: &[String]) -> String {
    if v.len() > 4 {
        format!("{} and {} more", v[..4].join(", "), v.len() - 4)
    } else {
        v.join(", ")
    }
}

pub(super) fn world_open(vpc: &Vpc, out: &mut Vec<Finding>) {
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
