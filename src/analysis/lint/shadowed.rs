//! `nacl-shadowed` and `nacl-partly-shadowed`: NACL entries that earlier entries decide
//! before them, wholly or for some ports.

use super::*;

pub(super) fn proto_covers(a: Protocol, b: Protocol) -> bool {
    a == Protocol::All || a == b
}

pub(super) fn icmp_covers(a: PortSpec, b: PortSpec) -> bool {
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

pub(super) fn is_icmp(p: Protocol) -> bool {
    matches!(
        p,
        Protocol::Number(PROTO_ICMP) | Protocol::Number(PROTO_ICMPV6)
    )
}

pub(super) fn shadowed(vpc: &Vpc, out: &mut Vec<Finding>) {
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
                let shadow = shadowing(e, &covering);
                if !shadow.is_empty() {
                    out.push(shadowed_finding(acl, egress, e, &shadow));
                } else if let Some(f) = partly_shadowed(acl, egress, e, &covering) {
                    out.push(f);
                }
            }
        }
    }
}

/// The earlier entries (of `covering`: same family, wider CIDR, covering protocol)
/// that together match every packet `e` matches; empty when some get through to `e`.
pub(super) fn shadowing<'a>(
    e: &NetworkAclEntry,
    covering: &[&'a NetworkAclEntry],
) -> Vec<&'a NetworkAclEntry> {
    if !e.protocol.has_ports() {
        return covering
            .iter()
            .copied()
            .find(|p| {
                p.protocol == Protocol::All || !is_icmp(e.protocol) || icmp_covers(p.ports, e.ports)
            })
            .into_iter()
            .collect();
    }
    let want = spec_ports(e.ports);
    let relevant: Vec<&NetworkAclEntry> = covering
        .iter()
        .copied()
        .filter(|p| {
            p.protocol == Protocol::All || !intersect(&want, &spec_ports(p.ports)).is_empty()
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
}

/// `nacl-shadowed`: entry `e` never decides; a note when `shadow` decides alike
/// (redundant), a warning when it decides the other way.
pub(super) fn shadowed_finding(
    acl: &NetworkAcl,
    egress: bool,
    e: &NetworkAclEntry,
    shadow: &[&NetworkAclEntry],
) -> Finding {
    let dir = dir_name(egress);
    let same = shadow.iter().all(|p| p.action == e.action);
    let nums: Vec<String> = shadow.iter().map(|p| p.rule_number.to_string()).collect();
    let by = if nums.len() == 1 {
        format!("rule {}", nums[0])
    } else {
        format!("rules {}", nums.join(", "))
    };
    let rules = shadow
        .iter()
        .map(|p| nacl_rule_text(p, egress))
        .collect::<Vec<_>>()
        .join("; ");
    let (severity, message, fix) = if same {
        (
            Severity::Note,
            format!(
                "{dir} rule {} of {} never decides anything: every packet it matches is matched first by {by} ({rules}), which {} it already; the rule is redundant.",
                e.rule_number,
                acl.id,
                if e.action == RuleAction::Allow { "allows" } else { "denies" }
            ),
            format!("remove rule {} of {}", e.rule_number, acl.id),
        )
    } else {
        (
            Severity::Warning,
            format!(
                "{dir} rule {} of {} never decides anything: every packet it matches is matched first by {by} ({rules}), so what it means to {} is never done.",
                e.rule_number, acl.id, e.action
            ),
            format!(
                "give rule {} a number below {} if it should decide, or remove it",
                e.rule_number,
                shadow.iter().map(|p| p.rule_number).min().unwrap_or(0)
            ),
        )
    };
    Finding {
        code: "nacl-shadowed",
        severity,
        resource: format!("{} {dir} rule {}", acl.id, e.rule_number),
        rule: Some(nacl_rule_text(e, egress)),
        message,
        fix,
        origin: entry_origin(acl, e),
    }
}

/// `nacl-partly-shadowed`: an allow for a few ports (a span of at most 1024) of which
/// earlier denies (of `covering`) take some.
pub(super) fn partly_shadowed(
    acl: &NetworkAcl,
    egress: bool,
    e: &NetworkAclEntry,
    covering: &[&NetworkAclEntry],
) -> Option<Finding> {
    if e.action != RuleAction::Allow || !e.protocol.has_ports() {
        return None;
    }
    let want = spec_ports(e.ports);
    let span: u32 = want.iter().map(|&(f, t)| (t - f) as u32 + 1).sum();
    if span > 1024 {
        return None;
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
        return None;
    }
    let taken = denies.iter().fold(Vec::new(), |acc, p| {
        union(&acc, &intersect(&want, &spec_ports(p.ports)))
    });
    let left = subtract(&want, &taken);
    let dir = dir_name(egress);
    Some(Finding {
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
    })
}
