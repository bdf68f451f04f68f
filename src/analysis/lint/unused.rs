//! `sg-unused` and `sg-reference-unused`: groups no ENI uses, and rules naming them.

use super::*;

pub(super) fn unused_groups(vpc: &Vpc, out: &mut Vec<Finding>) {
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
