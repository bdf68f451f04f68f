//! The text summary: the totals first, then the top entries of each list (the JSON
//! summary has every entry).

use super::{
    applied, flow_bound_mattered, nacl_rule_text, notes, reject_groups, sg_rule_text, unexercised,
    STATELESS_HINT, TOP,
};
use crate::pipeline::{ReplayConfig, Summary};
use std::fmt::Write;

/// How many of the most-hit rules the text shows per ruleset.
const MOST_HIT: usize = 5;

/// `… and 12 more (see --json)` when a list was cut.
fn more(o: &mut String, indent: &str, left: usize) {
    if left > 0 {
        let _ = writeln!(o, "{indent}… and {left} more (see --json)");
    }
}

/// A list of counts by key, most first, the top [`TOP`].
fn counts(o: &mut String, title: &str, m: &std::collections::BTreeMap<String, u64>) {
    if m.is_empty() {
        return;
    }
    let _ = writeln!(o, "{title}");
    let mut v: Vec<_> = m.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (k, n) in v.iter().take(TOP) {
        let _ = writeln!(o, "  {n:>10}  {k}");
    }
    more(o, "  ", v.len().saturating_sub(TOP));
}

/// `eni-a, eni-b, eni-c and 397 more`.
fn some_of(v: &[String], n: usize) -> String {
    let shown = v.iter().take(n).cloned().collect::<Vec<_>>().join(", ");
    if v.len() > n {
        format!("{shown} and {} more", v.len() - n)
    } else {
        shown
    }
}

pub fn summary_text(s: &Summary, cfg: &ReplayConfig, elapsed: std::time::Duration) -> String {
    let mut o = String::new();
    if let Some(c) = &s.counterfactual {
        let _ = writeln!(
            o,
            "COUNTERFACTUAL, NOT AWS: {} ({}). Every verdict, record and count below is what such a VPC would do; AWS's is listed where it differs.",
            c.mode.describe(),
            super::counterfactual_flags(c.mode)
        );
    }
    let secs = elapsed.as_secs_f64();
    let _ = writeln!(
        o,
        "vpcgate replay: {} packet(s) from {} capture(s) in {:.2} s ({} worker(s){})",
        s.packets,
        cfg.captures.len(),
        secs,
        s.workers,
        if secs > 0.0 {
            format!(", {:.0} packets/s", s.packets as f64 / secs)
        } else {
            String::new()
        }
    );
    if let Some(n) = &s.workers_note {
        let _ = writeln!(o, "  note: {n}");
    }
    if s.interrupted {
        let _ = writeln!(
            o,
            "  interrupted: the replay stopped early; everything read was written out"
        );
    }
    let _ = writeln!(o, "  accepted       {:>10}", s.accepted);
    let _ = writeln!(o, "  rejected       {:>10}", s.rejected);
    let _ = writeln!(o, "  not evaluated  {:>10}", s.not_evaluated);
    for n in notes(s, cfg) {
        let _ = writeln!(o, "  note: {n}");
    }

    // The totals.
    let e = &s.engine;
    let _ = writeln!(
        o,
        "Connection tracking, counted per ENI check (a packet between two ENIs is checked at both):"
    );
    let _ = writeln!(
        o,
        "  {} connection(s) created; {} check(s) passed by a tracked connection; {} check(s) of untracked flows",
        e.conntrack_created, e.conntrack_hits, e.untracked
    );
    if e.icmp_not_tracked > 0 {
        let _ = writeln!(
            o,
            "  {} ICMP check(s) allowed by a rule and not tracked (errors and other non-query messages, replies without their query)",
            e.icmp_not_tracked
        );
    }
    if e.no_security_group > 0 {
        let _ = writeln!(
            o,
            "  {} check(s) at ENIs without security groups (NAT gateways and the like: only NACLs apply, nothing is tracked)",
            e.no_security_group
        );
    }
    if e.conntrack_allowance_exceeded > 0 {
        let _ = writeln!(
            o,
            "  {} packet(s) rejected at an instance's allowance (conntrack_allowance_exceeded)",
            e.conntrack_allowance_exceeded
        );
    }
    if let (true, Some(m)) = (flow_bound_mattered(s), s.max_flows) {
        let _ = writeln!(
            o,
            "Flow bound (--max-flows {m}): {} packet(s) rejected as conntrack-full at the bound; at most about {} connection(s) tracked at once{}",
            e.flow_limit_exceeded,
            e.conntrack_peak,
            if s.flow_log_skipped_packets > 0 {
                format!(
                    "; {} packet(s) counted only in SKIPDATA flow-log records",
                    s.flow_log_skipped_packets
                )
            } else {
                String::new()
            }
        );
    }
    if e.fragments_remembered + e.fragments_orphaned > 0 {
        let _ = writeln!(
            o,
            "Fragments: {} took their first fragment's verdict, {} were judged without it",
            e.fragments_remembered, e.fragments_orphaned
        );
    }
    if cfg.flow_log.is_some() {
        if cfg.nodata {
            let _ = writeln!(
                o,
                "Flow logs: {} record(s) and {} NODATA record(s)",
                s.flow_records, s.nodata_records
            );
        } else {
            let _ = writeln!(
                o,
                "Flow logs: {} record(s) (no NODATA records: --no-nodata)",
                s.flow_records
            );
        }
    }
    if s.nodata_windows_skipped > 0 {
        let _ = writeln!(
            o,
            "  {} empty window(s) in long gaps of the capture's timeline got no NODATA records",
            s.nodata_windows_skipped
        );
    }
    if s.pcap_link_type_skipped > 0 {
        let _ = writeln!(
            o,
            "  {} packet(s) not written to the accepted/rejected pcaps: their link type differs from the file's",
            s.pcap_link_type_skipped
        );
    }

    // The lists, the top entries of each.
    let groups = reject_groups(s);
    if !groups.is_empty() {
        let _ = writeln!(o, "Rejected, by the check and rule that denied:");
        for g in groups.iter().take(TOP) {
            let _ = writeln!(o, "  {:>10}  {}", g.packets, g.title());
            if !g.enis.is_empty() {
                let _ = writeln!(
                    o,
                    "              at {} ENI(s): {}",
                    g.enis.len(),
                    some_of(&g.enis, 3)
                );
            }
            if g.tracked > 0 && g.check.starts_with("nacl") {
                let _ = writeln!(
                    o,
                    "              {} of these were replies of tracked connections: {STATELESS_HINT}",
                    g.tracked
                );
            }
        }
        more(&mut o, "  ", groups.len().saturating_sub(TOP));
    }
    if let Some(c) = &s.counterfactual {
        counterfactual(&mut o, c);
    }
    counts(&mut o, "Not evaluated, by reason:", &s.none_reasons);
    counts(
        &mut o,
        "Frames the parser could not read, by reason:",
        &s.parse_problems,
    );

    for (i, c) in s.coverage.iter().enumerate() {
        let _ = writeln!(o, "Rule coverage of {}:", c.label);
        if applied(s, cfg, i) == Some(false) {
            let _ = writeln!(o, "  never applied: no packet falls in the time it held");
            continue;
        }
        let nacl: Vec<_> = c.nacl.iter().filter(|r| !r.default_deny).collect();
        let total = nacl.len() + c.sg.len();
        if total == 0 {
            let _ = writeln!(
                o,
                "  no network ACL entry or security group rule to cover, besides the default deny"
            );
            continue;
        }
        let _ = writeln!(
            o,
            "  hit: {} of {} network ACL entries (not counting the * entries), {} of {} security group rules",
            nacl.iter().filter(|r| r.hits > 0).count(),
            nacl.len(),
            c.sg.iter().filter(|r| r.hits > 0).count(),
            c.sg.len()
        );
        let mut hit: Vec<(u64, String)> = c
            .nacl
            .iter()
            .filter(|r| r.hits > 0)
            .map(|r| (r.hits, nacl_rule_text(r)))
            .chain(
                c.sg.iter()
                    .filter(|r| r.hits > 0)
                    .map(|r| (r.hits, sg_rule_text(r))),
            )
            .collect();
        if !hit.is_empty() {
            hit.sort_by_key(|h| std::cmp::Reverse(h.0));
            let _ = writeln!(
                o,
                "  most hit (an SG rule counts the packets it let in or out; tracked replies count nowhere):"
            );
            for (n, r) in hit.iter().take(MOST_HIT) {
                let _ = writeln!(o, "  {n:>10}  {r}");
            }
            more(&mut o, "  ", hit.len().saturating_sub(MOST_HIT));
        }
        let (un_nacl, un_sg) = unexercised(c);
        let unhit: Vec<String> = un_nacl
            .into_iter()
            .map(nacl_rule_text)
            .chain(un_sg.into_iter().map(sg_rule_text))
            .collect();
        if unhit.is_empty() {
            let _ = writeln!(o, "  every rule was hit by this capture");
        } else {
            let _ = writeln!(o, "  not exercised by this capture ({}):", unhit.len());
            for r in unhit.iter().take(TOP) {
                let _ = writeln!(o, "    {r}");
            }
            more(&mut o, "    ", unhit.len().saturating_sub(TOP));
        }
    }
    o
}

/// The packets whose verdict the counterfactual flips, against AWS, and what that
/// teaches.
fn counterfactual(o: &mut String, c: &crate::pipeline::CounterfactualSummary) {
    let f = &c.flips;
    let _ = writeln!(
        o,
        "Against AWS, with {}: {} packet(s) newly rejected, {} newly accepted",
        c.mode.describe(),
        f.newly_rejected,
        f.newly_accepted
    );
    for line in super::counterfactual_lessons(c) {
        let _ = writeln!(o, "  {line}");
    }
    if f.ungrouped > 0 {
        let _ = writeln!(
            o,
            "  {} of these belong to flow groups beyond the ones kept (a bound on memory): counted, not listed",
            f.ungrouped
        );
    }
    f.groups_text(o, "  ", TOP);
}
