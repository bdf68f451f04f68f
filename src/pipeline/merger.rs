//! The merger thread: verdicts back in capture order, pcaps, and flow-log records
//! through the [`crate::flowlog::Collator`] as their windows close on every worker.

use super::*;

pub(super) struct Merged {
    pub(super) flow_log_skipped: u64,
    pub(super) packets: u64,
    pub(super) accepted: u64,
    pub(super) rejected: u64,
    pub(super) none: u64,
    pub(super) none_reasons: BTreeMap<String, u64>,
    pub(super) parse_problems: BTreeMap<String, u64>,
    pub(super) flow_records: u64,
    pub(super) nodata_records: u64,
    pub(super) nodata_skipped: u64,
    pub(super) stats: EngineStats,
    pub(super) rejects: BTreeMap<(usize, Reason), u64>,
    pub(super) rejects_tracked: HashMap<(usize, Reason), u64>,
    pub(super) first_ts: Option<Timestamp>,
    pub(super) last_ts: Option<Timestamp>,
    pub(super) report: Option<ReportCollector>,
    pub(super) differ: Option<Differ>,
}

pub(super) fn merger_loop(
    cfg: &ReplayConfig,
    rx: Receiver<ToMerger>,
    workers: usize,
    metas: &[EniMeta],
    policies: &[Arc<Policy>],
    outputs: &mut Outputs,
) -> Result<Merged, ReplayError> {
    let Outputs {
        flow_writer,
        verdict_writer,
        accepted,
        rejected,
    } = outputs;
    let interval = u64::from(cfg.interval);
    // NODATA records are made only to be written.
    let nodata = cfg.nodata && cfg.flow_log.is_some();
    let mut m = Merged {
        flow_log_skipped: 0,
        packets: 0,
        accepted: 0,
        rejected: 0,
        none: 0,
        none_reasons: BTreeMap::new(),
        parse_problems: BTreeMap::new(),
        flow_records: 0,
        nodata_records: 0,
        nodata_skipped: 0,
        stats: EngineStats::default(),
        rejects: BTreeMap::new(),
        rejects_tracked: HashMap::new(),
        first_ts: None,
        last_ts: None,
        report: None,
        differ: None,
    };
    let path_of = |p: &Option<PathBuf>| {
        p.as_ref()
            .map_or(String::new(), |p| p.display().to_string())
    };
    let flow_path = cfg.flow_log.clone().unwrap_or_default();
    let mut collator = Collator::new(metas.len() as u32, interval, nodata);
    // Every collated record goes to the flow-log file, if there is one.
    let mut write_record = |rec: &FlowRecord| -> Result<(), ReplayError> {
        match flow_writer.as_mut() {
            Some(wr) => wr
                .write(rec, &metas[rec.eni.get()])
                .map_err(out_err(&flow_path)),
            None => Ok(()),
        }
    };
    let mut outs: BTreeMap<u64, Vec<Option<WorkerOut>>> = BTreeMap::new();
    let mut next = 0u64;
    let mut done = 0usize;
    let mut last_ts: Option<Timestamp> = None;
    let mut none_reasons: HashMap<(usize, Reason), u64> = HashMap::new();
    let mut final_records: Vec<Run> = Vec::new();

    for msg in rx {
        match msg {
            ToMerger::Out(o) => {
                let slot = outs
                    .entry(o.id)
                    .or_insert_with(|| (0..workers).map(|_| None).collect());
                let w = o.worker;
                slot[w] = Some(o);
            }
            ToMerger::Done(d) => {
                done += 1;
                // A worker's last records join the others only when every worker is
                // done: added now, the next flush would write them before records
                // other workers have not sent yet, in an order set by thread timing.
                final_records.extend(d.records);
                if let Some(diff) = d.differ {
                    m.differ.get_or_insert_with(Differ::default).merge(diff);
                }
                let (t, tally) = (&d.totals, &d.totals.tally);
                m.stats.merge(&t.stats);
                m.accepted += tally.accepted;
                m.rejected += tally.rejected;
                m.none += tally.none;
                m.flow_log_skipped += t.flow_log_skipped;
                for (&k, &v) in &tally.rejects {
                    *m.rejects.entry(k).or_insert(0) += v;
                }
                for (&k, &v) in &tally.rejects_tracked {
                    *m.rejects_tracked.entry(k).or_insert(0) += v;
                }
                for (&k, &v) in &tally.none_reasons {
                    *none_reasons.entry(k).or_insert(0) += v;
                }
                // Sums over flow shards: the same for any number of workers.
                if let Some(r) = d.report {
                    match m.report.as_mut() {
                        Some(mine) => mine.merge(r),
                        None => m.report = Some(r),
                    }
                }
                for ((not_ip, reason), v) in d.unparsed {
                    let key = if not_ip {
                        "not-ip".to_string()
                    } else {
                        *m.parse_problems.entry(reason.to_string()).or_insert(0) += v;
                        format!("malformed {reason}")
                    };
                    *m.none_reasons.entry(key).or_insert(0) += v;
                }
            }
        }
        // Emit every run that is complete, in order.
        while outs
            .get(&next)
            .is_some_and(|slot| slot.iter().all(|o| o.is_some()))
        {
            let mut slot: Vec<WorkerOut> = outs
                .remove(&next)
                .unwrap()
                .into_iter()
                .map(|o| o.unwrap())
                .collect();
            next += 1;
            for o in &mut slot {
                collator.add(o.records.drain(..));
            }
            let head = &slot[0];
            if let Some(t) = head.first_ts {
                m.first_ts = Some(m.first_ts.map_or(t, |f| f.min(t)));
                collator.first_packet(t.secs());
            }
            if let Some(t) = head.last_ts {
                last_ts = Some(last_ts.map_or(t, |l| l.max(t)));
            }
            // Per-packet outputs, in capture order: merge the workers' runs by index.
            let total: usize = slot.iter().map(|o| o.idx.len()).sum();
            if total > 0 {
                let mut cur: Vec<(usize, usize)> = vec![(0, 0); workers]; // (entry, line start)
                for _ in 0..total {
                    let w = (0..workers)
                        .filter(|&w| cur[w].0 < slot[w].idx.len())
                        .min_by_key(|&w| slot[w].idx[cur[w].0])
                        .expect("an entry is left");
                    let o = &slot[w];
                    let (k, line_start) = cur[w];
                    if let Some(vw) = verdict_writer.as_mut() {
                        let end = o.line_ends[k] as usize;
                        vw.push(&o.lines[line_start..end]).map_err(|error| {
                            ReplayError::Output {
                                path: path_of(&cfg.verdicts),
                                error,
                            }
                        })?;
                        cur[w].1 = end;
                    }
                    cur[w].0 += 1;
                    let (out, path) = match o.verdicts[k] {
                        Verdict::Accept => (accepted.as_mut(), &cfg.accepted),
                        Verdict::Reject => (rejected.as_mut(), &cfg.rejected),
                        Verdict::None => (None, &None),
                    };
                    if let (Some(pw), Some(blk)) = (out, &head.blk) {
                        let i = o.idx[k] as usize;
                        let rec = &blk.block.records[i];
                        pw.write_packet(rec.ts, rec.link_type, blk.block.frame(i), rec.orig_len)
                            .map_err(|e| ReplayError::Output {
                                path: path_of(path),
                                error: e,
                            })?;
                    }
                }
            }
            collator.flush(head.watermark, &mut write_record)?;
        }
        if done == workers {
            break;
        }
    }
    collator.add(final_records);
    m.packets = m.accepted + m.rejected + m.none;
    for ((gen, reason), v) in none_reasons {
        *m.none_reasons
            .entry(reason_text(reason, &policies[gen]))
            .or_insert(0) += v;
    }
    collator.finish(last_ts.map(|t| t.secs()), &mut write_record)?;
    m.last_ts = last_ts;
    m.flow_records = collator.written - collator.nodata_written;
    m.nodata_records = collator.nodata_written;
    m.nodata_skipped = collator.nodata_skipped;
    Ok(m)
}
