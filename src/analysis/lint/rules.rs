//! How rules read (families, labels, rule text) and how a NACL decides ports.

use super::*;

pub(super) fn family_v6(n: &IpNet) -> bool {
    matches!(n, IpNet::V6(_))
}

pub(super) fn is_world(n: &IpNet) -> bool {
    n.prefix_len() == 0
}

pub(super) fn proto_label(p: Protocol) -> String {
    p.label()
}

/// `120 allow tcp 32768-61000 to 10.0.1.0/24`.
pub(super) fn nacl_rule_text(e: &NetworkAclEntry, egress: bool) -> String {
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

pub(super) fn dir_name(egress: bool) -> &'static str {
    if egress {
        "outbound"
    } else {
        "inbound"
    }
}

pub(super) fn entries(acl: &NetworkAcl, egress: bool) -> &[NetworkAclEntry] {
    if egress {
        &acl.outbound
    } else {
        &acl.inbound
    }
}

/// The origin of a NACL entry, or of its NACL when the entry is implicit.
pub(super) fn entry_origin(acl: &NetworkAcl, e: &NetworkAclEntry) -> Origin {
    if e.origin.file.is_empty() {
        acl.origin.clone()
    } else {
        e.origin.clone()
    }
}

/// Splits `ports` of protocol `proto` to or from `remote` by the entry that decides
/// them, first match wins: `(ports, index of the entry)`; ports no entry decides get
/// `None` (denied: only an unvalidated list lacks the `*` entries).
pub(super) fn nacl_eval(
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
pub(super) fn nacl_allowed(
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
