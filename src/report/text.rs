//! The text summary.

use crate::pipeline::{ReplayConfig, Summary};

pub fn summary_text(s: &Summary, cfg: &ReplayConfig, elapsed: std::time::Duration) -> String {
    use std::fmt::Write;
    let mut o = String::new();
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
    let section = |o: &mut String, title: &str, m: &std::collections::BTreeMap<String, u64>| {
        if m.is_empty() {
            return;
        }
        let _ = writeln!(o, "{title}");
        let mut v: Vec<_> = m.iter().collect();
        v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (k, n) in v {
            let _ = writeln!(o, "  {n:>10}  {k}");
        }
    };
    section(
        &mut o,
        "Rejected, by the check and rule that denied:",
        &s.reject_reasons,
    );
    section(&mut o, "Not evaluated, by reason:", &s.none_reasons);
    section(
        &mut o,
        "Frames the parser could not read, by reason:",
        &s.parse_problems,
    );
    let e = &s.engine;
    let _ = writeln!(
        o,
        "Connection tracking: {} created, {} packets allowed by a tracked connection, {} packets of untracked flows, {} rejected at the allowance (conntrack_allowance_exceeded)",
        e.conntrack_created, e.conntrack_hits, e.untracked, e.conntrack_allowance_exceeded
    );
    if let Some(m) = s.max_flows {
        let _ = writeln!(
            o,
            "Flow bound (--max-flows {m}): {} packet(s) rejected as conntrack-full at the bound{}",
            e.flow_limit_exceeded,
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
        let _ = writeln!(
            o,
            "Flow logs: {} record(s) and {} NODATA record(s)",
            s.flow_records, s.nodata_records
        );
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
    for c in &s.coverage {
        let _ = writeln!(o, "Rule coverage of {}:", c.label);
        let _ = writeln!(o, "  network ACL rules (hits):");
        for (r, n) in &c.nacl_hits {
            let _ = writeln!(o, "  {n:>10}  {r}");
        }
        let _ = writeln!(
            o,
            "  security group rules (packets a rule let in or out; tracked replies count nowhere):"
        );
        for (r, n) in &c.sg_hits {
            let _ = writeln!(o, "  {n:>10}  {r}");
        }
        let unhit: Vec<&String> = c
            .nacl_hits
            .iter()
            .chain(&c.sg_hits)
            .filter(|(_, n)| *n == 0)
            .map(|(r, _)| r)
            .collect();
        if unhit.is_empty() {
            let _ = writeln!(o, "  every rule was hit by this capture");
        } else {
            let _ = writeln!(o, "  not exercised by this capture ({}):", unhit.len());
            for r in unhit {
                let _ = writeln!(o, "    {r}");
            }
        }
    }
    o
}
