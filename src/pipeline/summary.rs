//! What a replay did, as data for the summary (text, JSON, HTML): counts, rejects by
//! reason, rule coverage per ruleset, peak memory.

use super::*;

/// What a replay did, for the summary.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub packets: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub not_evaluated: u64,
    /// NONE verdicts by reason (`exempt amazon-dns`, `no-eni`, `not-ip`, `malformed …`).
    pub none_reasons: BTreeMap<String, u64>,
    /// Frames the parser could not read, by reason.
    pub parse_problems: BTreeMap<String, u64>,
    /// Rejects by the check and rule that made them.
    pub reject_reasons: BTreeMap<String, u64>,
    /// Per ruleset: hits per NACL entry and SG rule, and the rules nothing hit.
    pub coverage: Vec<Coverage>,
    pub flow_records: u64,
    pub nodata_records: u64,
    pub nodata_windows_skipped: u64,
    pub engine: EngineStats,
    pub workers: usize,
    /// Why fewer workers than asked ran, if so.
    pub workers_note: Option<String>,
    /// Capture files that could not be read to the end (file and byte offset).
    pub capture_errors: Vec<String>,
    pub pcap_link_type_skipped: u64,
    pub interrupted: bool,
    /// The `--max-flows` bound the run used.
    pub max_flows: Option<u64>,
    /// Packets counted only in SKIPDATA records: their record found the bound on open
    /// flow-log records reached.
    pub flow_log_skipped_packets: u64,
    /// Rejects by ruleset and reason, with what the report needs to group and explain
    /// them (the same counts as `reject_reasons`, in more detail).
    pub reject_details: Vec<RejectCount>,
    /// Capture times of the earliest and the latest packet that parsed.
    pub first_packet: Option<Timestamp>,
    pub last_packet: Option<Timestamp>,
    /// The process's peak resident memory at the end of the run (Linux `VmHWM`).
    pub peak_rss_bytes: Option<u64>,
    /// A counterfactual run (not AWS): what was changed, and the packets whose
    /// verdict differs from AWS's. `None` for AWS's behaviour.
    pub counterfactual: Option<CounterfactualSummary>,
    /// Per ruleset of [`ReplayConfig::rulesets`]: the capture time it took effect, as
    /// resolved at the first packet (`None` for the first ruleset, and for all when no
    /// packet was read).
    pub ruleset_from: Vec<Option<Timestamp>>,
    /// With [`ReplayConfig::report`]: the per-ENI timeline, the rejected flows and how
    /// accepted packets passed; and the run's ENI ids (an [`crate::model::EniNum`] is
    /// a position in them).
    pub report: Option<super::collect::Collected>,
    pub eni_ids: Vec<String>,
}

/// What a counterfactual run changed, against AWS.
#[derive(Clone, Debug)]
pub struct CounterfactualSummary {
    pub mode: Counterfactual,
    /// Before: AWS; after: the counterfactual.
    pub flips: crate::analysis::diff::DiffReport,
}

/// The packets one check rejected for one reason under one ruleset.
#[derive(Clone, Debug, Default)]
pub struct RejectCount {
    /// Index of the ruleset in [`ReplayConfig::rulesets`].
    pub ruleset: usize,
    /// The verdict's `reason` text (CLI.md).
    pub reason: String,
    /// `nacl-inbound`, `nacl-outbound`, `sg-ingress`, `sg-egress` or `conntrack-full`.
    pub check: &'static str,
    /// NACL rejects: the ACL id, the entry's rule number and whether it is the implicit
    /// `*` entry (rule 32767 or above), and the entry as text.
    pub acl: Option<String>,
    pub rule_number: Option<u32>,
    pub default_deny: bool,
    pub entry: Option<String>,
    /// SG and conntrack-full rejects: the ENI, and (SG rejects) the id and name of
    /// each of its security groups, all of which were checked.
    pub eni: Option<String>,
    pub groups: Vec<(String, String)>,
    pub packets: u64,
    /// Of `packets`, those that belonged to a live tracked connection at the ENI
    /// whose check rejected them (a NACL dropping a reply).
    pub tracked: u64,
}

/// Rule coverage of one ruleset.
#[derive(Clone, Debug, Default)]
pub struct Coverage {
    pub label: String,
    pub nacl_hits: Vec<(String, u64)>,
    pub sg_hits: Vec<(String, u64)>,
    /// When the ruleset took effect (`None`: from the start), and its VPC id.
    pub from: Option<Timestamp>,
    pub vpc_id: String,
    /// The same hits as `nacl_hits` and `sg_hits`, as fields.
    pub nacl: Vec<NaclRuleHits>,
    pub sg: Vec<SgRuleHits>,
}

/// Hits of one network ACL entry.
#[derive(Clone, Debug, Default)]
pub struct NaclRuleHits {
    pub acl: String,
    pub egress: bool,
    pub rule_number: u32,
    /// The implicit `*` entry (rule 32767 or above): it cannot be removed.
    pub default_deny: bool,
    /// `allow tcp 443 from 0.0.0.0/0`.
    pub text: String,
    pub hits: u64,
}

/// Hits of one security-group rule.
#[derive(Clone, Debug, Default)]
pub struct SgRuleHits {
    pub group: String,
    pub group_name: String,
    pub egress: bool,
    /// Position of the rule in the group's list of its direction, from 0.
    pub index: u32,
    /// `tcp 443 from 0.0.0.0/0`.
    pub text: String,
    pub hits: u64,
}

/// The details of the rejects of one reason under one ruleset.
pub(super) fn reject_count(
    policy: &Policy,
    ruleset: usize,
    reason: Reason,
    text: String,
    packets: u64,
    tracked: u64,
) -> RejectCount {
    let vpc = &policy.vpc;
    let eni_id = |i: EniIdx| vpc.network_interfaces.get(i.get()).map(|e| e.id.clone());
    let mut c = RejectCount {
        ruleset,
        reason: text,
        packets,
        tracked,
        ..Default::default()
    };
    match reason {
        Reason::NaclInbound { rule, rule_number } | Reason::NaclOutbound { rule, rule_number } => {
            c.check = if rule.egress {
                "nacl-outbound"
            } else {
                "nacl-inbound"
            };
            c.acl = vpc
                .network_acls
                .get(rule.acl as usize)
                .map(|a| a.id.clone());
            c.rule_number = Some(rule_number);
            c.default_deny = rule_number >= 32767;
            c.entry = Some(policy.describe_nacl_rule(rule));
        }
        Reason::SgIngress { eni } | Reason::SgEgress { eni } => {
            c.check = if matches!(reason, Reason::SgIngress { .. }) {
                "sg-ingress"
            } else {
                "sg-egress"
            };
            c.eni = eni_id(eni);
            if let Some(e) = vpc.network_interfaces.get(eni.get()) {
                c.groups = e
                    .security_groups
                    .iter()
                    .map(|g| {
                        let name = vpc
                            .security_groups
                            .iter()
                            .find(|s| &s.id == g)
                            .map_or(String::new(), |s| s.name.clone());
                        (g.clone(), name)
                    })
                    .collect();
            }
        }
        Reason::ConntrackFull { eni } => {
            c.check = "conntrack-full";
            c.eni = eni_id(eni);
        }
        _ => c.check = "other",
    }
    c
}

/// The process's peak resident memory so far (Linux `VmHWM`), for the summary.
pub(super) fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Rule coverage per ruleset: every NACL entry and SG rule with its hits, over the
/// time that ruleset applied.
pub(super) fn coverage(
    policies: &[Arc<Policy>],
    rulesets: &[RulesetAt],
    summary: &Summary,
) -> Vec<Coverage> {
    let mut out = Vec::new();
    for (gen, (policy, rs)) in policies.iter().zip(rulesets).enumerate() {
        let mut cov = Coverage {
            label: rs.label.clone(),
            from: summary.ruleset_from.get(gen).copied().flatten(),
            vpc_id: rs.vpc.id.clone(),
            ..Default::default()
        };
        let nh = summary.engine.nacl_hits.get(gen);
        for r in policy.all_nacl_rules() {
            let n = nh.and_then(|h| h.get(&r)).copied().unwrap_or(0);
            cov.nacl_hits.push((policy.describe_nacl_rule(r), n));
            let acl = &policy.vpc.network_acls[r.acl as usize];
            let list = if r.egress {
                &acl.outbound
            } else {
                &acl.inbound
            };
            if let Some(e) = list.get(r.entry as usize) {
                let ports = if matches!(e.ports, crate::model::PortSpec::Any) {
                    String::new()
                } else {
                    format!(" {}", e.ports)
                };
                cov.nacl.push(NaclRuleHits {
                    acl: acl.id.clone(),
                    egress: r.egress,
                    rule_number: e.rule_number,
                    default_deny: e.rule_number >= 32767,
                    text: format!(
                        "{} {}{ports} {} {}",
                        e.action,
                        e.protocol.label(),
                        if r.egress { "to" } else { "from" },
                        e.cidr
                    ),
                    hits: n,
                });
            }
        }
        let sh = summary.engine.sg_hits.get(gen);
        for r in policy.all_sg_rules() {
            let n = sh.and_then(|h| h.get(&r)).copied().unwrap_or(0);
            cov.sg_hits.push((policy.describe_sg_rule(r), n));
            let g = &policy.vpc.security_groups[r.group as usize];
            let list = if r.egress { &g.egress } else { &g.ingress };
            if let Some(rule) = list.get(r.rule as usize) {
                cov.sg.push(SgRuleHits {
                    group: g.id.clone(),
                    group_name: g.name.clone(),
                    egress: r.egress,
                    index: r.rule,
                    text: rule.describe(!r.egress),
                    hits: n,
                });
            }
        }
        out.push(cov);
    }
    out
}
