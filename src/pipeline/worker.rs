//! A worker thread: drives one [`crate::engine::Worker`] over the packets of its flow
//! shards and renders their verdict lines.

use super::*;

pub(super) fn worker_loop(
    me: usize,
    workers: usize,
    rx: Receiver<ToWorker>,
    merge_tx: Sender<ToMerger>,
    policies: Vec<Arc<Policy>>,
    cfg: WorkerConfig,
    out_cfg: PerPacket<'_>,
) {
    let mut worker = Worker::new(policies[0].clone(), cfg);
    // A counterfactual run: this worker's engine is the counterfactual one, and AWS's
    // runs beside it on the same packets (no flow log) to find the verdicts that flip.
    let cf = out_cfg.counterfactual;
    let cf_tag = cf_tag(cf);
    let mut aws = (!cf.is_aws()).then(|| {
        worker.set_counterfactual(cf);
        Worker::new(
            policies[0].clone(),
            WorkerConfig {
                flow_log: false,
                ..cfg
            },
        )
    });
    // One differ per flow shard: a shard's packets, and their order, are the same for
    // any number of workers, so which groups a bounded differ keeps is too.
    let mut differs: Option<Vec<Differ>> = aws.as_ref().map(|_| {
        (0..crate::conntrack::FLOW_SHARDS)
            .map(|_| Differ::with_limit(crate::analysis::diff::MAX_GROUPS / 16))
            .collect()
    });
    let mut unparsed: HashMap<(bool, &'static str), u64> = HashMap::new();
    let mut watermark = 0u64;
    let mut report = out_cfg.report.then(ReportCollector::new);
    let mut generation = 0usize;
    // The checks of the packet, for the `why` of verdict lines (only then traced).
    let mut checks = crate::engine::trace::Checks::default();
    let mut why = String::new();
    let mut why_writer = crate::engine::trace::WhyWriter::default();
    for msg in rx {
        let work = match msg {
            ToWorker::SetPolicy(g) => {
                worker.set_policy(policies[g].clone(), g);
                generation = g;
                if let Some(a) = aws.as_mut() {
                    a.set_policy(policies[g].clone(), g);
                }
                continue;
            }
            ToWorker::Work(w) => w,
        };
        let blk = &work.blk;
        let file = out_cfg
            .multi_file
            .then(|| out_cfg.file_names[blk.file as usize].as_str());
        let mut out = WorkerOut {
            id: work.id,
            worker: me,
            idx: Vec::new(),
            verdicts: Vec::new(),
            lines: Vec::new(),
            line_ends: Vec::new(),
            records: Vec::new(),
            blk: (me == 0 && out_cfg.block).then(|| work.blk.clone()),
            watermark: 0,
            first_ts: None,
            last_ts: None,
        };
        let per_packet = out_cfg.verdicts || out_cfg.block;
        for i in work.from..work.to {
            let rec = &blk.block.records[i as usize];
            let index = blk.first_index + u64::from(i);
            let Some((shard, pkt)) = &blk.parsed[i as usize] else {
                if me == 0 {
                    // Parsed again for its error (rare): parsing is a pure function.
                    let Err(e) = packet::parse(rec.link_type, blk.block.frame(i as usize)) else {
                        continue;
                    };
                    worker.tally.none += 1;
                    *unparsed.entry((e.is_not_ip(), e.reason())).or_insert(0) += 1;
                    if per_packet {
                        out.idx.push(i);
                        out.verdicts.push(Verdict::None);
                        if out_cfg.verdicts {
                            write_verdict(
                                &mut out.lines,
                                index,
                                rec.ts,
                                None,
                                Verdict::None,
                                None,
                                None,
                                file,
                                Some(&e),
                            );
                            if let Some(tag) = cf_tag {
                                mark_counterfactual(&mut out.lines, tag, None);
                            }
                            out.line_ends.push(out.lines.len() as u32);
                        }
                    }
                }
                continue;
            };
            let shard = *shard;
            // Flow-log windows follow the time of the packets that are evaluated.
            watermark = watermark.max(rec.ts.secs());
            out.first_ts.get_or_insert(rec.ts);
            out.last_ts = Some(out.last_ts.map_or(rec.ts, |t| t.max(rec.ts)));
            if workers > 1 && shard as usize % workers != me {
                continue;
            }
            let seq = blk.first_seq + u64::from(i);
            let untracked_before = report.is_some().then(|| worker.untracked_checks());
            let d = if out_cfg.verdicts {
                checks.clear();
                worker.handle_traced(pkt, rec.ts, seq, shard, &mut checks)
            } else {
                worker.handle(pkt, rec.ts, seq, shard)
            };
            if let Some(r) = report.as_mut() {
                let untracked = Some(worker.untracked_checks()) > untracked_before;
                r.add(pkt, rec.ts, shard, generation, &d, untracked);
            }
            let mut aws_action = None;
            if let (Some(a), Some(differs)) = (aws.as_mut(), differs.as_mut()) {
                let da = a.handle(pkt, rec.ts, seq, shard);
                let at = PacketRef {
                    file: blk.file,
                    index,
                };
                let (before, after) = (
                    Side {
                        policy: a.policy(),
                        decision: &da,
                    },
                    Side {
                        policy: worker.policy(),
                        decision: &d,
                    },
                );
                differs[shard as usize].add(at, pkt, before, after);
                aws_action = (da.verdict != d.verdict).then_some(da.verdict);
            }
            if per_packet {
                out.idx.push(i);
                out.verdicts.push(d.verdict);
                if out_cfg.verdicts {
                    let reason = (d.verdict != Verdict::Accept)
                        .then(|| reason_text(d.reason, worker.policy()));
                    why.clear();
                    if d.verdict == Verdict::Accept {
                        why_writer.write(worker.policy(), &checks, &mut why);
                    }
                    write_verdict(
                        &mut out.lines,
                        index,
                        rec.ts,
                        Some(pkt),
                        d.verdict,
                        reason.as_deref(),
                        (d.verdict == Verdict::Accept).then_some(why.as_str()),
                        file,
                        None,
                    );
                    if let Some(tag) = cf_tag {
                        mark_counterfactual(&mut out.lines, tag, aws_action);
                    }
                    out.line_ends.push(out.lines.len() as u32);
                }
            }
        }
        if let Some(t) = out.last_ts {
            worker.housekeeping(t);
            if let Some(a) = aws.as_mut() {
                a.housekeeping(t);
            }
        }
        out.watermark = watermark;
        worker.advance(watermark, &mut out.records);
        if merge_tx.send(ToMerger::Out(out)).is_err() {
            return;
        }
    }
    let mut records = Vec::new();
    let totals = worker.finish(&mut records);
    let differ = differs.map(|v| {
        v.into_iter().fold(Differ::with_limit(0), |mut all, d| {
            all.merge(d);
            all
        })
    });
    let _ = merge_tx.send(ToMerger::Done(Box::new(WorkerDone {
        records,
        totals,
        unparsed,
        report,
        differ,
    })));
}

/// The `counterfactual` value of verdict lines: `stateless-sg`, `stateful-nacl`, or
/// both joined by `+`; `None` for AWS.
pub(super) fn cf_tag(cf: Counterfactual) -> Option<&'static str> {
    match (cf.stateless_sg, cf.stateful_nacl) {
        (false, false) => None,
        (true, false) => Some("stateless-sg"),
        (false, true) => Some("stateful-nacl"),
        (true, true) => Some("stateless-sg+stateful-nacl"),
    }
}

/// Marks the verdict line just written (ending in `}\n`) as not AWS's: the
/// `counterfactual` key, and where AWS's verdict differs, `aws_action`.
fn mark_counterfactual(out: &mut Vec<u8>, tag: &str, aws_action: Option<Verdict>) {
    if out.ends_with(b"}\n") {
        out.truncate(out.len() - 2);
        let _ = write!(out, ",\"counterfactual\":\"{tag}\"");
        if let Some(v) = aws_action {
            let _ = write!(out, ",\"aws_action\":\"{}\"", v.as_str());
        }
        out.extend_from_slice(b"}\n");
    }
}

/// What a worker writes per packet, besides flow logs.
#[derive(Clone, Copy)]
pub(super) struct PerPacket<'a> {
    /// Verdict lines.
    pub(super) verdicts: bool,
    /// The blocks (worker 0), for the pcaps of accepted and rejected packets.
    pub(super) block: bool,
    /// Verdict lines name their file.
    pub(super) multi_file: bool,
    pub(super) file_names: &'a [String],
    /// Collect what `--report` needs (per flow shard, so the same for any workers).
    pub(super) report: bool,
    /// Not AWS, when set: the counterfactual this run emulates.
    pub(super) counterfactual: Counterfactual,
}

/// The NONE reason of a frame the parser could not read: `not-ip` or
/// `malformed <reason>`.
pub(super) fn none_reason(e: &ParseError) -> String {
    if e.is_not_ip() {
        "not-ip".to_string()
    } else {
        format!("malformed {}", e.reason())
    }
}

/// One verdict line (README.md, "Per-packet verdicts").
#[allow(clippy::too_many_arguments)]
pub(super) fn write_verdict(
    out: &mut Vec<u8>,
    index: u64,
    ts: Timestamp,
    pkt: Option<&Packet>,
    verdict: Verdict,
    reason: Option<&str>,
    why: Option<&str>,
    file: Option<&str>,
    parse_error: Option<&ParseError>,
) {
    let _ = write!(
        out,
        "{{\"packet\":{},\"time\":{}.{:09}",
        index,
        ts.secs(),
        ts.subsec_nanos()
    );
    if let Some(f) = file {
        out.extend_from_slice(b",\"file\":");
        let _ = serde_json::to_writer(&mut *out, f);
    }
    if let Some(p) = pkt {
        let _ = write!(
            out,
            ",\"src\":\"{}\",\"dst\":\"{}\",\"protocol\":{}",
            p.src, p.dst, p.protocol
        );
        if p.protocol == PROTO_ICMP || p.protocol == PROTO_ICMPV6 {
            let _ = write!(
                out,
                ",\"src_port\":0,\"dst_port\":0,\"icmp_type\":{},\"icmp_code\":{}",
                p.icmp_type, p.icmp_code
            );
        } else {
            let _ = write!(
                out,
                ",\"src_port\":{},\"dst_port\":{}",
                p.src_port, p.dst_port
            );
        }
    }
    let _ = write!(out, ",\"action\":\"{}\"", verdict.as_str());
    match (parse_error, reason) {
        (Some(e), _) => {
            let _ = write!(out, ",\"reason\":\"{}\"", none_reason(e));
        }
        (None, Some(r)) => {
            out.extend_from_slice(b",\"reason\":");
            let _ = serde_json::to_writer(&mut *out, r);
            // Rule 32767 (IPv4) or 32768 (IPv6) of a NACL is its implicit `*` entry.
            if r.starts_with("nacl-") && (r.ends_with(" rule 32767") || r.ends_with(" rule 32768"))
            {
                out.extend_from_slice(b",\"rule\":\"* (default deny)\"");
            }
        }
        (None, None) => {}
    }
    // What let an accepted packet through: its checks, in path order.
    if let Some(w) = why {
        out.extend_from_slice(b",\"why\":");
        let _ = serde_json::to_writer(&mut *out, w);
    }
    out.extend_from_slice(b"}\n");
}
