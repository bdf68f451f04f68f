//! The JSON summary: one object, every entry of every list (README "The JSON
//! summary" documents its shape).

use super::{
    applied, flow_bound_mattered, nacl_direction, notes, reject_groups, sg_direction, time_text,
    unexercised,
};
use crate::pipeline::{NaclRuleHits, ReplayConfig, SgRuleHits, Summary};
use serde_json::{json, Value};

fn nacl_rule(r: &NaclRuleHits) -> Value {
    json!({
        "acl": r.acl,
        "direction": nacl_direction(r.egress),
        "rule_number": r.rule_number,
        "default_deny": r.default_deny,
        "rule": r.text,
        "hits": r.hits,
    })
}

fn sg_rule(r: &SgRuleHits) -> Value {
    json!({
        "group": r.group,
        "group_name": r.group_name,
        "direction": sg_direction(r.egress),
        "index": r.index,
        "rule": r.text,
        "hits": r.hits,
    })
}

pub fn summary_json(s: &Summary, cfg: &ReplayConfig, elapsed: std::time::Duration) -> String {
    let e = &s.engine;
    let coverage: Vec<_> = s
        .coverage
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let (un_nacl, un_sg) = unexercised(c);
            json!({
                "ruleset": c.label,
                "vpc_id": c.vpc_id,
                "from": c.from.map(time_text),
                "applied": applied(s, cfg, i),
                "nacl_rules": c.nacl.iter().map(nacl_rule).collect::<Vec<_>>(),
                "sg_rules": c.sg.iter().map(sg_rule).collect::<Vec<_>>(),
                "not_hit": {
                    "nacl_rules": un_nacl.into_iter().map(nacl_rule).collect::<Vec<_>>(),
                    "sg_rules": un_sg.into_iter().map(sg_rule).collect::<Vec<_>>(),
                },
            })
        })
        .collect();
    let rejects: Vec<_> = reject_groups(s)
        .iter()
        .map(|g| {
            json!({
                "check": g.check,
                "acl": g.acl,
                "rule_number": g.rule_number,
                "rule": g.rule,
                "default_deny": g.default_deny,
                "groups": g.groups.iter().map(|(id, name)| json!({"id": id, "name": name})).collect::<Vec<_>>(),
                "enis": g.enis,
                "packets": g.packets,
                "tracked_replies": g.tracked,
                "text": g.title(),
            })
        })
        .collect();
    let flow_log = cfg.flow_log.is_some();
    let v = json!({
        "captures": cfg.captures.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "packets": s.packets,
        "accepted": s.accepted,
        "rejected": s.rejected,
        "not_evaluated": s.not_evaluated,
        "notes": notes(s, cfg),
        "first_packet": s.first_packet.map(time_text),
        "last_packet": s.last_packet.map(time_text),
        "reject_reasons": s.reject_reasons,
        "rejects": rejects,
        "none_reasons": s.none_reasons,
        "parse_problems": s.parse_problems,
        "conntrack": {
            "counted_per": "ENI check",
            "created": e.conntrack_created,
            "tracked_checks": e.conntrack_hits,
            "untracked_checks": e.untracked,
            "icmp_not_tracked_checks": e.icmp_not_tracked,
            "no_security_group_checks": e.no_security_group,
            "conntrack_allowance_exceeded": e.conntrack_allowance_exceeded,
            "peak": e.conntrack_peak,
            "max_flows": s.max_flows,
            "max_flows_exceeded": e.flow_limit_exceeded,
            "max_flows_mattered": flow_bound_mattered(s),
        },
        "flow_log_skipped_packets": s.flow_log_skipped_packets,
        "peak_rss_bytes": s.peak_rss_bytes,
        "fragments": {"remembered": e.fragments_remembered, "orphaned": e.fragments_orphaned},
        "flow_records": flow_log.then_some(s.flow_records),
        "nodata_records": (flow_log && cfg.nodata).then_some(s.nodata_records),
        "nodata_windows_skipped": s.nodata_windows_skipped,
        "coverage": coverage,
        "capture_errors": s.capture_errors,
        "counterfactual": s.counterfactual.as_ref().map(|c| json!({
            "aws": false,
            "stateless_sg": c.mode.stateless_sg,
            "stateful_nacl": c.mode.stateful_nacl,
            "mode": c.mode.describe(),
            "lessons": super::counterfactual_lessons(c),
            "flips": c.flips.to_json(),
        })),
        "workers": s.workers,
        "interrupted": s.interrupted,
        "seconds": elapsed.as_secs_f64(),
    });
    serde_json::to_string_pretty(&v).unwrap_or_default()
}
