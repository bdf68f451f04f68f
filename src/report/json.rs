//! The JSON summary.

use crate::pipeline::{ReplayConfig, Summary};

pub fn summary_json(s: &Summary, cfg: &ReplayConfig, elapsed: std::time::Duration) -> String {
    use serde_json::json;
    let e = &s.engine;
    let coverage: Vec<_> = s
        .coverage
        .iter()
        .map(|c| {
            json!({
                "ruleset": c.label,
                "nacl_rules": c.nacl_hits.iter().map(|(r, n)| json!({"rule": r, "hits": n})).collect::<Vec<_>>(),
                "sg_rules": c.sg_hits.iter().map(|(r, n)| json!({"rule": r, "hits": n})).collect::<Vec<_>>(),
                "not_hit": c.nacl_hits.iter().chain(&c.sg_hits).filter(|(_, n)| *n == 0).map(|(r, _)| r).collect::<Vec<_>>(),
            })
        })
        .collect();
    let v = json!({
        "captures": cfg.captures.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "packets": s.packets,
        "accepted": s.accepted,
        "rejected": s.rejected,
        "not_evaluated": s.not_evaluated,
        "reject_reasons": s.reject_reasons,
        "none_reasons": s.none_reasons,
        "parse_problems": s.parse_problems,
        "conntrack": {
            "created": e.conntrack_created,
            "tracked_packets": e.conntrack_hits,
            "untracked_packets": e.untracked,
            "conntrack_allowance_exceeded": e.conntrack_allowance_exceeded,
            "max_flows": s.max_flows,
            "max_flows_exceeded": e.flow_limit_exceeded,
        },
        "flow_log_skipped_packets": s.flow_log_skipped_packets,
        "peak_rss_bytes": peak_rss_bytes(),
        "fragments": {"remembered": e.fragments_remembered, "orphaned": e.fragments_orphaned},
        "flow_records": s.flow_records,
        "nodata_records": s.nodata_records,
        "nodata_windows_skipped": s.nodata_windows_skipped,
        "coverage": coverage,
        "capture_errors": s.capture_errors,
        "workers": s.workers,
        "interrupted": s.interrupted,
        "seconds": elapsed.as_secs_f64(),
    });
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

/// The process's peak resident memory (Linux `VmHWM`), for the summary.
fn peak_rss_bytes() -> Option<u64> {
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
