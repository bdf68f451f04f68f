//! The run's data as a person or a program reads it: the text summary, the JSON
//! summary, and what is said when a signal stopped the replay. Text and JSON are
//! rendered from the same [`Summary`] through the helpers here (reject groups,
//! notes, coverage), so they say the same things.
#![deny(clippy::disallowed_methods, clippy::disallowed_types)]

pub mod html;
mod json;
mod text;

pub use crate::pipeline::collect::{Collected, Counts, FlowKey, ReportCollector};
pub use json::summary_json;
pub use text::summary_text;

use crate::pipeline::{Coverage, NaclRuleHits, ReplayConfig, SgRuleHits, Summary};
use crate::wire::packet::Timestamp;

/// How many entries of each list the text summary shows; the JSON summary has all.
pub const TOP: usize = 10;

/// What is said when SIGINT or SIGTERM stopped a replay.
pub fn interrupted_text(signal: usize, packets: u64, cfg: &ReplayConfig) -> String {
    let name = match signal as i32 {
        signal_hook::consts::SIGTERM => "SIGTERM",
        _ => "SIGINT",
    };
    let outputs: Vec<String> = [&cfg.verdicts, &cfg.flow_log, &cfg.accepted, &cfg.rejected]
        .into_iter()
        .flatten()
        .map(|p| {
            if p.as_os_str() == "-" {
                "standard output".to_string()
            } else {
                p.display().to_string()
            }
        })
        .collect();
    if outputs.is_empty() {
        format!("interrupted by {name} after {packets} packet(s); every packet read before the signal was processed")
    } else {
        format!(
            "interrupted by {name} after {packets} packet(s); every record up to then was written, whole, to {}",
            outputs.join(", ")
        )
    }
}

/// The flags that ask for the counterfactual `cf`: `--stateless-sg`,
/// `--stateful-nacl`.
pub fn counterfactual_flags(cf: crate::engine::Counterfactual) -> String {
    let mut v = Vec::new();
    if cf.stateless_sg {
        v.push("--stateless-sg");
    }
    if cf.stateful_nacl {
        v.push("--stateful-nacl");
    }
    v.join(" ")
}

/// What the flips of a counterfactual run teach, one sentence per effect seen.
pub fn counterfactual_lessons(c: &crate::pipeline::CounterfactualSummary) -> Vec<String> {
    use crate::analysis::diff::ChangeKind;
    let f = &c.flips;
    let tracked = |k: ChangeKind| f.of(k).map(|g| g.tracked).sum::<u64>();
    let mut v = Vec::new();
    if c.mode.stateless_sg && f.newly_rejected > 0 {
        v.push(format!(
            "with stateless security groups, these {} packet(s) would be dropped by the groups' rules; {} of them passed in AWS as packets of tracked connections: this is what tracking did",
            f.newly_rejected,
            tracked(ChangeKind::NewlyRejected)
        ));
    }
    if c.mode.stateful_nacl && f.newly_accepted > 0 {
        v.push(format!(
            "with stateful network ACLs, these {} packet(s) would pass: replies of tracked connections that AWS's stateless NACLs drop, since no entry allows the reply itself (for TCP and UDP: its ephemeral port)",
            f.newly_accepted
        ));
    }
    if f.newly_rejected + f.newly_accepted == 0 {
        v.push("no packet's verdict differs from AWS's".to_string());
    }
    v
}

/// The hint for NACL rejects of packets of tracked connections.
pub const STATELESS_HINT: &str =
    "NACLs are stateless, the reply needs its own rule (ephemeral ports)";

/// Rejects grouped by the check and rule that denied them: one group per NACL
/// entry, one per set of security groups checked (over all the ENIs that have that
/// set), one for the flow bound.
#[derive(Clone, Debug, Default)]
pub struct RejectGroup {
    /// `nacl-inbound`, `nacl-outbound`, `sg-ingress`, `sg-egress`, `conntrack-full`.
    pub check: &'static str,
    pub acl: Option<String>,
    pub rule_number: Option<u32>,
    pub default_deny: bool,
    /// `* (default deny)` or `90 (deny all from 192.0.2.200/29)`.
    pub rule: Option<String>,
    /// The security groups checked: id and name (empty where the ruleset has none).
    pub groups: Vec<(String, String)>,
    /// The ENIs of SG and conntrack-full rejects, sorted.
    pub enis: Vec<String>,
    pub packets: u64,
    /// Packets of a live tracked connection at the rejecting ENI.
    pub tracked: u64,
}

impl RejectGroup {
    /// One line: `nacl-outbound acl-0abc rule * (default deny)`,
    /// `sg-ingress: no rule of sg-0abc (web), sg-0def allowed it`.
    pub fn title(&self) -> String {
        match self.check {
            "nacl-inbound" | "nacl-outbound" => format!(
                "{} {} rule {}",
                self.check,
                self.acl.as_deref().unwrap_or("?"),
                self.rule.as_deref().unwrap_or("?")
            ),
            "sg-ingress" | "sg-egress" => {
                if self.groups.is_empty() {
                    format!("{}: the ENI has no security group", self.check)
                } else {
                    format!(
                        "{}: no rule of {} allowed it",
                        self.check,
                        self.groups
                            .iter()
                            .map(|(id, name)| group_label(id, name))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            }
            "conntrack-full" => {
                "conntrack-full: no room for one more tracked connection (--max-flows)".into()
            }
            other => other.to_string(),
        }
    }
}

/// `sg-0abc (web)`, or the id alone when the group has no name.
pub fn group_label(id: &str, name: &str) -> String {
    if name.is_empty() || name == id {
        id.to_string()
    } else {
        format!("{id} ({name})")
    }
}

/// `* (default deny)` for the implicit entry, else the number.
pub fn rule_number_text(n: u32) -> String {
    if n >= 32767 {
        "* (default deny)".to_string()
    } else {
        n.to_string()
    }
}

/// The rejects of a run, grouped, most packets first.
pub fn reject_groups(s: &Summary) -> Vec<RejectGroup> {
    let mut groups: Vec<RejectGroup> = Vec::new();
    let mut at: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for r in &s.reject_details {
        let (key, rule) = match r.check {
            "nacl-inbound" | "nacl-outbound" => {
                let n = r.rule_number.unwrap_or(0);
                let rule = if r.default_deny {
                    rule_number_text(n)
                } else {
                    // `acl-0abc inbound rule 90 (deny …)` -> `90 (deny …)`.
                    r.entry
                        .as_deref()
                        .and_then(|e| e.split_once(" rule ").map(|(_, x)| x.to_string()))
                        .unwrap_or_else(|| n.to_string())
                };
                (
                    format!("{} {} {n}", r.check, r.acl.as_deref().unwrap_or("")),
                    Some(rule),
                )
            }
            "sg-ingress" | "sg-egress" => {
                let mut ids: Vec<&str> = r.groups.iter().map(|g| g.0.as_str()).collect();
                ids.sort_unstable();
                (format!("{} {}", r.check, ids.join(",")), None)
            }
            other => (other.to_string(), None),
        };
        let i = *at.entry(key).or_insert_with(|| {
            groups.push(RejectGroup {
                check: r.check,
                acl: r.acl.clone(),
                rule_number: r.rule_number,
                default_deny: r.default_deny,
                rule,
                groups: r.groups.clone(),
                ..Default::default()
            });
            groups.len() - 1
        });
        let g = &mut groups[i];
        g.packets += r.packets;
        g.tracked += r.tracked;
        if let Some(e) = &r.eni {
            g.enis.push(e.clone());
        }
    }
    for g in &mut groups {
        g.enis.sort_unstable();
        g.enis.dedup();
    }
    groups.sort_by(|a, b| b.packets.cmp(&a.packets).then(a.title().cmp(&b.title())));
    groups
}

/// Capture time as Unix seconds, with a fraction only when there is one.
pub fn time_text(t: Timestamp) -> String {
    let nanos = t.subsec_nanos();
    if nanos == 0 {
        t.secs().to_string()
    } else {
        let f = format!("{nanos:09}");
        format!("{}.{}", t.secs(), f.trim_end_matches('0'))
    }
}

/// Whether ruleset `i` of the run decided any packet's fate: some packet's time falls
/// in the span it applied. `None` when no packet had a time.
pub fn applied(s: &Summary, cfg: &ReplayConfig, i: usize) -> Option<bool> {
    let (first, last) = (s.first_packet?, s.last_packet?);
    cfg.rulesets.get(i)?;
    let from = ruleset_from(s, i);
    // The next ruleset to take effect after this one (rulesets apply in the order of
    // their resolved times).
    let until = (1..cfg.rulesets.len())
        .filter(|&j| j != i)
        .filter_map(|j| ruleset_from(s, j))
        .filter(|&t| from.is_none_or(|f| t > f))
        .min();
    Some(from.is_none_or(|f| f <= last) && until.is_none_or(|u| u > first))
}

/// When ruleset `i` took effect, as the pipeline resolved it (`None` for the first).
fn ruleset_from(s: &Summary, i: usize) -> Option<Timestamp> {
    if i == 0 {
        return None;
    }
    s.ruleset_from.get(i).copied().flatten()
}

/// What the user should know about the run as a whole: a capture that touched no
/// ENI, a `--rules-at` change outside the capture or to another VPC.
pub fn notes(s: &Summary, cfg: &ReplayConfig) -> Vec<String> {
    let mut v = Vec::new();
    let exempt = s.none_reasons.keys().any(|k| k.starts_with("exempt"));
    if s.packets > 0 && s.accepted + s.rejected == 0 && !exempt {
        v.push("no packet involved an ENI of this ruleset: wrong capture or ruleset?".into());
    }
    let base = cfg.rulesets.first();
    for (i, r) in cfg.rulesets.iter().enumerate().skip(1) {
        let Some(from) = ruleset_from(s, i) else {
            continue;
        };
        let at = time_text(from);
        if let (Some(first), Some(last)) = (s.first_packet, s.last_packet) {
            if from <= first {
                v.push(format!(
                    "--rules-at {at} is at or before the first packet ({}): the ruleset before it never applied",
                    time_text(first)
                ));
            } else if from > last {
                v.push(format!(
                    "--rules-at {at} is after the last packet ({}): its ruleset never applied",
                    time_text(last)
                ));
            }
        }
        if let Some(b) = base {
            if r.vpc.id != b.vpc.id {
                v.push(format!(
                    "--rules-at {at} is a ruleset of another VPC ({}, the first is {}): wrong ruleset?",
                    r.vpc.id, b.vpc.id
                ));
            }
        }
    }
    v
}

/// Whether the `--max-flows` bound mattered: something was refused at it, or the
/// connections tracked at once came within a fifth of it.
pub fn flow_bound_mattered(s: &Summary) -> bool {
    let Some(m) = s.max_flows else { return false };
    let e = &s.engine;
    e.flow_limit_exceeded > 0
        || s.flow_log_skipped_packets > 0
        || e.conntrack_peak.saturating_mul(5) >= m.saturating_mul(4)
}

/// `inbound`/`outbound` for NACLs, `ingress`/`egress` for security groups.
pub fn nacl_direction(egress: bool) -> &'static str {
    if egress {
        "outbound"
    } else {
        "inbound"
    }
}

pub fn sg_direction(egress: bool) -> &'static str {
    if egress {
        "egress"
    } else {
        "ingress"
    }
}

/// `acl-0abc inbound rule 100 (allow tcp 443 from 0.0.0.0/0)`, or for the implicit
/// entry `acl-0abc inbound rule * (default deny, 0.0.0.0/0)`.
pub fn nacl_rule_text(r: &NaclRuleHits) -> String {
    if r.default_deny {
        let cidr = r.text.rsplit(' ').next().unwrap_or("");
        format!(
            "{} {} rule * (default deny, {cidr})",
            r.acl,
            nacl_direction(r.egress)
        )
    } else {
        format!(
            "{} {} rule {} ({})",
            r.acl,
            nacl_direction(r.egress),
            r.rule_number,
            r.text
        )
    }
}

/// `sg-0abc (web) ingress: tcp 443 from 0.0.0.0/0`.
pub fn sg_rule_text(r: &SgRuleHits) -> String {
    format!(
        "{} {}: {}",
        group_label(&r.group, &r.group_name),
        sg_direction(r.egress),
        r.text
    )
}

/// The rules of a ruleset nothing hit, that a user could remove: the implicit `*`
/// entries are not among them.
pub fn unexercised(c: &Coverage) -> (Vec<&NaclRuleHits>, Vec<&SgRuleHits>) {
    (
        c.nacl
            .iter()
            .filter(|r| r.hits == 0 && !r.default_deny)
            .collect(),
        c.sg.iter().filter(|r| r.hits == 0).collect(),
    )
}
