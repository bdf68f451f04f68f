//! The replay pipeline: reader → N workers → ordered merge → sinks.
//!
//! - The **reader** (the calling thread) streams the captures, parses each frame
//!   into a [`Packet`] and sends batches. Each packet goes to the worker chosen by a
//!   symmetric hash of its address pair and protocol, so both directions of a flow
//!   and all fragments of a packet land on the same worker.
//! - Each **worker** owns an [`Engine`] (its connection tracking) and a flow-log
//!   [`Aggregator`] outright: no lock and no atomic on the per-packet path. It
//!   renders the verdict lines of its packets itself.
//! - The **merger** puts verdicts back in capture order, writes the accepted and
//!   rejected pcaps, and writes flow-log records when their window has closed on
//!   every worker, sorted by (window start, interface id, first packet).
//!
//! Windows close on a capture-time watermark carried by each batch, and ruleset
//! changes (`--rules-at`) travel in-band between batches, so the output is the same
//! bytes for any number of workers.

use crate::capture::{CaptureReader, PcapWriter};
use crate::engine::{reason_text, Decision, Engine, EngineStats, Reason, Verdict};
use crate::flowlog::{Aggregator, EniMeta, FlowLogWriter, FlowRecord, LogFormat};
use crate::model::Vpc;
use crate::packet::{self, Packet, ParseError, Timestamp};
use crate::policy::Policy;
use crossbeam_channel::{bounded, Receiver, Sender};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, BufWriter, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Packets per batch handed between threads.
const BATCH_PACKETS: usize = 1024;
/// Batches in flight per channel.
const QUEUE_DEPTH: usize = 8;
/// At most this many empty windows of NODATA records are written for one gap in
/// the capture's timeline; a longer gap (a capture with a bogus timestamp) is
/// reported in the summary instead of filling the log.
const MAX_NODATA_GAP_WINDOWS: u64 = 10_000;

/// A ruleset and the capture time it takes effect.
#[derive(Clone, Debug)]
pub struct RulesetAt {
    /// `None`: from the start.
    pub from: Option<Timestamp>,
    pub vpc: Arc<Vpc>,
    /// What the user named, for the summary.
    pub label: String,
}

/// A validated replay configuration (the CLI resolves flags into this).
#[derive(Clone, Debug)]
pub struct ReplayConfig {
    pub captures: Vec<PathBuf>,
    /// The first has `from: None`; the rest are sorted by time.
    pub rulesets: Vec<RulesetAt>,
    pub flow_log: Option<PathBuf>,
    pub log_format: LogFormat,
    pub interval: u32,
    pub nodata: bool,
    pub verdicts: Option<PathBuf>,
    pub accepted: Option<PathBuf>,
    pub rejected: Option<PathBuf>,
    pub workers: usize,
    pub progress: bool,
}

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
}

/// Rule coverage of one ruleset.
#[derive(Clone, Debug, Default)]
pub struct Coverage {
    pub label: String,
    pub nacl_hits: Vec<(String, u64)>,
    pub sg_hits: Vec<(String, u64)>,
}

/// An error that ends a replay early.
#[derive(Debug)]
pub enum ReplayError {
    /// An output could not be written (path and the OS error).
    Output { path: String, error: io::Error },
}

impl std::fmt::Display for ReplayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplayError::Output { path, error } => write!(f, "cannot write {path}: {error}"),
        }
    }
}

impl std::error::Error for ReplayError {}

struct Rec {
    ts: Timestamp,
    link_type: u32,
    orig_len: u32,
    start: u32,
    len: u32,
    /// 1-based index in its capture file.
    index: u64,
}

struct Batch {
    id: u64,
    file: u32,
    recs: Vec<Rec>,
    data: Vec<u8>,
    parsed: Vec<Result<Packet, ParseError>>,
    /// Worker of each packet; `u16::MAX` for frames the parser could not read.
    owner: Vec<u16>,
    /// Highest capture second seen up to the end of this batch.
    watermark: u64,
}

enum ToWorker {
    Batch(Arc<Batch>),
    /// From the next batch on, use ruleset generation N.
    SetPolicy(usize),
}

struct WorkerOut {
    batch: u64,
    worker: usize,
    verdicts: Vec<Verdict>,
    lines: Vec<u8>,
    line_ends: Vec<u32>,
    records: Vec<FlowRecord>,
}

enum ToMerger {
    Batch(Arc<Batch>),
    Out(WorkerOut),
    /// A worker's final records and counters.
    Done {
        records: Vec<FlowRecord>,
        stats: EngineStats,
        rejects: BTreeMap<(usize, Reason), u64>,
        none: BTreeMap<String, u64>,
    },
}

fn symmetric_hash(p: &Packet) -> u64 {
    fn fold(a: IpAddr) -> u64 {
        match a {
            IpAddr::V4(v) => u32::from(v) as u64,
            IpAddr::V6(v) => {
                let x = u128::from(v);
                (x as u64) ^ ((x >> 64) as u64)
            }
        }
    }
    let (a, b) = (fold(p.src), fold(p.dst));
    let mut h = a.wrapping_add(b) ^ (a ^ b).rotate_left(29) ^ (p.protocol as u64) << 56;
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h
}

fn out_err(path: &Path) -> impl Fn(io::Error) -> ReplayError + '_ {
    move |error| ReplayError::Output {
        path: path.display().to_string(),
        error,
    }
}

/// Runs a replay. `interrupt`, when set, makes the reader stop at the next batch;
/// everything read so far is still processed and written.
pub fn run(cfg: &ReplayConfig, interrupt: Option<&AtomicBool>) -> Result<Summary, ReplayError> {
    let vpcs: Vec<&Vpc> = cfg.rulesets.iter().map(|r| &*r.vpc).collect();
    let (eni_ids, metas) = eni_table(&vpcs);
    let policies: Vec<Arc<Policy>> = cfg
        .rulesets
        .iter()
        .map(|r| Arc::new(Policy::compile(r.vpc.clone(), &eni_ids)))
        .collect();

    let mut summary = Summary::default();
    let mut workers = cfg.workers.max(1);
    if workers > 1 && policies.iter().any(|p| p.has_conntrack_limits()) {
        workers = 1;
        summary.workers_note = Some(
            "a tracked-connection allowance is counted per instance across all its flows, so this run used one worker"
                .into(),
        );
    }
    summary.workers = workers;

    // Open every output first: a bad path fails before any work.
    let mut flow_writer = match &cfg.flow_log {
        Some(p) => Some(FlowLogWriter::create(p, cfg.log_format.clone()).map_err(out_err(p))?),
        None => None,
    };
    let mut verdict_writer: Option<Box<dyn Write + Send>> = match &cfg.verdicts {
        Some(p) if p.as_os_str() == "-" => {
            Some(Box::new(BufWriter::with_capacity(1 << 20, io::stdout())))
        }
        Some(p) => Some(Box::new(BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(p).map_err(out_err(p))?,
        ))),
        None => None,
    };
    let mut accepted = match &cfg.accepted {
        Some(p) => Some(PcapWriter::create(p).map_err(out_err(p))?),
        None => None,
    };
    let mut rejected = match &cfg.rejected {
        Some(p) => Some(PcapWriter::create(p).map_err(out_err(p))?),
        None => None,
    };
    let want_verdicts = verdict_writer.is_some();
    let multi_file = cfg.captures.len() > 1;
    let file_names: Vec<String> = cfg
        .captures
        .iter()
        .map(|p| p.display().to_string())
        .collect();

    let (merge_tx, merge_rx) = bounded::<ToMerger>(QUEUE_DEPTH * (workers + 1));
    let mut worker_txs = Vec::new();
    let interval = cfg.interval as u64;

    std::thread::scope(|scope| -> Result<(), ReplayError> {
        for w in 0..workers {
            let (tx, rx) = bounded::<ToWorker>(QUEUE_DEPTH);
            worker_txs.push(tx);
            let policies = policies.clone();
            let merge_tx = merge_tx.clone();
            let file_names = &file_names;
            scope.spawn(move || {
                worker_loop(
                    w,
                    rx,
                    merge_tx,
                    policies,
                    cfg.interval,
                    want_verdicts,
                    multi_file,
                    file_names,
                )
            });
        }
        drop(merge_tx);

        // The merger runs on its own thread; the reader is this thread.
        let merger = {
            let metas = &metas;
            let policies = &policies;
            let flow_writer = &mut flow_writer;
            let verdict_writer = &mut verdict_writer;
            let accepted = &mut accepted;
            let rejected = &mut rejected;
            let file_names = &file_names;
            let nodata = cfg.nodata;
            scope.spawn(move || {
                merger_loop(
                    cfg,
                    merge_rx,
                    workers,
                    interval,
                    nodata,
                    metas,
                    policies,
                    flow_writer,
                    verdict_writer,
                    accepted,
                    rejected,
                    multi_file,
                    file_names,
                )
            })
        };

        let read = read_all(cfg, &worker_txs, workers, interrupt, &mut summary);
        // Closing the worker channels lets workers finish, then the merger.
        worker_txs.clear();
        let merged = merger.join().expect("merger thread panicked");
        read?;
        let m = merged?;
        summary.packets = m.packets;
        summary.accepted = m.accepted;
        summary.rejected = m.rejected;
        summary.not_evaluated = m.none;
        summary.none_reasons = m.none_reasons;
        summary.parse_problems = m.parse_problems;
        summary.flow_records = m.flow_records;
        summary.nodata_records = m.nodata_records;
        summary.nodata_windows_skipped = m.nodata_skipped;
        summary.engine = m.stats;
        for ((gen, reason), n) in m.rejects {
            *summary
                .reject_reasons
                .entry(reason_text(reason, &policies[gen]))
                .or_insert(0) += n;
        }
        Ok(())
    })?;

    // Outputs are finished after every thread is done.
    if let Some(w) = flow_writer {
        let p = cfg.flow_log.as_deref().unwrap();
        w.finish().map_err(out_err(p))?;
    }
    if let Some(mut w) = verdict_writer {
        let p = cfg.verdicts.as_deref().unwrap();
        w.flush().map_err(out_err(p))?;
    }
    for (w, p) in [(accepted, &cfg.accepted), (rejected, &cfg.rejected)] {
        if let Some(w) = w {
            summary.pcap_link_type_skipped += w.skipped();
            let p = p.as_deref().unwrap();
            w.finish().map_err(out_err(p))?;
        }
    }

    // Coverage per ruleset.
    for (gen, (policy, rs)) in policies.iter().zip(&cfg.rulesets).enumerate() {
        let mut cov = Coverage {
            label: rs.label.clone(),
            ..Default::default()
        };
        let nh = summary.engine.nacl_hits.get(gen);
        for r in policy.all_nacl_rules() {
            let n = nh.and_then(|h| h.get(&r)).copied().unwrap_or(0);
            cov.nacl_hits.push((policy.describe_nacl_rule(r), n));
        }
        let sh = summary.engine.sg_hits.get(gen);
        for r in policy.all_sg_rules() {
            let n = sh.and_then(|h| h.get(&r)).copied().unwrap_or(0);
            cov.sg_hits.push((policy.describe_sg_rule(r), n));
        }
        summary.coverage.push(cov);
    }
    Ok(summary)
}

/// The stable ENI numbers of a run: every ENI id of every ruleset, sorted (an ENI's
/// number is its position), with the flow-log metadata of each (from the first
/// ruleset that has it).
pub fn eni_table(vpcs: &[&Vpc]) -> (Vec<String>, Vec<EniMeta>) {
    let mut eni_ids: Vec<String> = vpcs
        .iter()
        .flat_map(|v| v.network_interfaces.iter().map(|e| e.id.clone()))
        .collect();
    eni_ids.sort();
    eni_ids.dedup();
    let mut metas: Vec<Option<EniMeta>> = vec![None; eni_ids.len()];
    for vpc in vpcs {
        for e in &vpc.network_interfaces {
            let n = eni_ids
                .binary_search(&e.id)
                .expect("every id was collected");
            if metas[n].is_none() {
                let subnet = vpc.subnet(&e.subnet_id);
                metas[n] = Some(EniMeta {
                    interface_id: e.id.clone(),
                    account_id: if e.owner_id.is_empty() {
                        vpc.account_id.clone()
                    } else {
                        e.owner_id.clone()
                    },
                    vpc_id: vpc.id.clone(),
                    subnet_id: e.subnet_id.clone(),
                    instance_id: e.instance_id.clone(),
                    region: vpc.region.clone(),
                    az_id: subnet
                        .map(|s| s.availability_zone_id.clone())
                        .unwrap_or_default(),
                });
            }
        }
    }
    (
        eni_ids,
        metas
            .into_iter()
            .map(|m| m.expect("every id has an ENI"))
            .collect(),
    )
}

/// Reads every capture and feeds the workers. Returns after the last batch is sent.
fn read_all(
    cfg: &ReplayConfig,
    worker_txs: &[Sender<ToWorker>],
    workers: usize,
    interrupt: Option<&AtomicBool>,
    summary: &mut Summary,
) -> Result<(), ReplayError> {
    let mut batch_id = 0u64;
    let mut watermark = 0u64;
    let mut next_rules = 1usize;
    let progress = if cfg.progress {
        let total: u64 = cfg
            .captures
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} replay [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap()
            .progress_chars("=> "),
        );
        Some(bar)
    } else {
        None
    };
    let mut done_bytes = 0u64;
    let new_batch = |id: u64, file: u32| Batch {
        id,
        file,
        recs: Vec::with_capacity(BATCH_PACKETS),
        data: Vec::with_capacity(BATCH_PACKETS * 256),
        parsed: Vec::with_capacity(BATCH_PACKETS),
        owner: Vec::with_capacity(BATCH_PACKETS),
        watermark: 0,
    };

    'files: for (fi, path) in cfg.captures.iter().enumerate() {
        let mut reader = match CaptureReader::open(path) {
            Ok(r) => r,
            Err(e) => {
                summary.capture_errors.push(e.to_string());
                continue;
            }
        };
        let mut batch = new_batch(batch_id, fi as u32);
        let mut index = 0u64;
        loop {
            if interrupt.is_some_and(|f| f.load(Ordering::Relaxed)) {
                summary.interrupted = true;
                dispatch(batch, watermark, worker_txs, &mut batch_id);
                break 'files;
            }
            let pkt = match reader.next_packet() {
                Ok(Some(p)) => p,
                Ok(None) => break,
                Err(e) => {
                    summary.capture_errors.push(e.to_string());
                    break;
                }
            };
            index += 1;
            // A ruleset change at this packet's time: close the batch, tell workers.
            while next_rules < cfg.rulesets.len()
                && cfg.rulesets[next_rules].from.is_some_and(|t| pkt.ts >= t)
            {
                let full = std::mem::replace(&mut batch, new_batch(0, fi as u32));
                dispatch(full, watermark, worker_txs, &mut batch_id);
                batch.id = batch_id;
                for tx in worker_txs {
                    let _ = tx.send(ToWorker::SetPolicy(next_rules));
                }
                next_rules += 1;
            }
            let start = batch.data.len() as u32;
            batch.data.extend_from_slice(pkt.data);
            let parsed = packet::parse(pkt.link_type, pkt.data);
            // Flow-log windows follow the time of the packets that are evaluated.
            if parsed.is_ok() {
                watermark = watermark.max(pkt.ts.secs());
            }
            let owner = match &parsed {
                Ok(p) => (symmetric_hash(p) % workers as u64) as u16,
                Err(_) => u16::MAX,
            };
            batch.recs.push(Rec {
                ts: pkt.ts,
                link_type: pkt.link_type,
                orig_len: pkt.orig_len,
                start,
                len: pkt.data.len() as u32,
                index,
            });
            batch.parsed.push(parsed);
            batch.owner.push(owner);
            if batch.recs.len() >= BATCH_PACKETS {
                if let Some(bar) = &progress {
                    bar.set_position(done_bytes + reader.bytes_read());
                }
                let full = std::mem::replace(&mut batch, new_batch(0, fi as u32));
                dispatch(full, watermark, worker_txs, &mut batch_id);
                batch.id = batch_id;
            }
        }
        done_bytes += reader.bytes_read();
        dispatch(batch, watermark, worker_txs, &mut batch_id);
    }
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    Ok(())
}

fn dispatch(mut b: Batch, watermark: u64, worker_txs: &[Sender<ToWorker>], batch_id: &mut u64) {
    if b.recs.is_empty() {
        return;
    }
    b.id = *batch_id;
    b.watermark = watermark;
    *batch_id += 1;
    let b = Arc::new(b);
    for tx in worker_txs {
        let _ = tx.send(ToWorker::Batch(b.clone()));
    }
}

#[allow(clippy::too_many_arguments)]
fn worker_loop(
    me: usize,
    rx: Receiver<ToWorker>,
    merge_tx: Sender<ToMerger>,
    policies: Vec<Arc<Policy>>,
    interval: u32,
    want_verdicts: bool,
    multi_file: bool,
    file_names: &[String],
) {
    let mut engine = Engine::new(policies[0].clone());
    let mut gen = 0usize;
    let mut agg = Aggregator::new(interval);
    let mut rejects: BTreeMap<(usize, Reason), u64> = BTreeMap::new();
    let mut none: BTreeMap<String, u64> = BTreeMap::new();
    let mut closed_up_to = 0u64;
    for msg in rx {
        let batch = match msg {
            ToWorker::SetPolicy(g) => {
                gen = g;
                engine.set_policy(policies[g].clone(), g);
                continue;
            }
            ToWorker::Batch(b) => b,
        };
        // The merger gets each batch once, from worker 0.
        if me == 0 {
            let _ = merge_tx.send(ToMerger::Batch(batch.clone()));
        }
        let mut out = WorkerOut {
            batch: batch.id,
            worker: me,
            verdicts: Vec::new(),
            lines: Vec::new(),
            line_ends: Vec::new(),
            records: Vec::new(),
        };
        let mut last_ts = Timestamp(0);
        for (i, owner) in batch.owner.iter().enumerate() {
            if *owner as usize != me {
                continue;
            }
            let Ok(pkt) = &batch.parsed[i] else { continue };
            let rec = &batch.recs[i];
            let seq = (batch.id << 20) | i as u64;
            let d = engine.process(pkt, rec.ts);
            last_ts = last_ts.max(rec.ts);
            for o in d.obs.iter().flatten() {
                agg.observe(o, rec.ts, seq);
            }
            match d.verdict {
                Verdict::Reject => *rejects.entry((gen, d.reason)).or_insert(0) += 1,
                Verdict::None => {
                    *none
                        .entry(reason_text(d.reason, engine.policy()))
                        .or_insert(0) += 1
                }
                Verdict::Accept => {}
            }
            out.verdicts.push(d.verdict);
            if want_verdicts {
                write_verdict(
                    &mut out.lines,
                    rec,
                    Some(pkt),
                    &d,
                    engine.policy(),
                    multi_file.then(|| file_names[batch.file as usize].as_str()),
                    None,
                );
                out.line_ends.push(out.lines.len() as u32);
            }
        }
        if last_ts.0 > 0 {
            engine.housekeeping(last_ts);
        }
        // Close the windows that ended by the watermark.
        let wm_window = batch.watermark / interval as u64;
        if wm_window > closed_up_to {
            closed_up_to = wm_window;
            agg.close_before(batch.watermark, &mut out.records);
        }
        if merge_tx.send(ToMerger::Out(out)).is_err() {
            return;
        }
    }
    let mut records = Vec::new();
    agg.close_all(&mut records);
    let _ = merge_tx.send(ToMerger::Done {
        records,
        stats: engine.stats(),
        rejects,
        none,
    });
}

/// The NONE reason of a frame the parser could not read: `not-ip` or
/// `malformed <reason>`.
fn none_reason(e: &ParseError) -> String {
    if e.is_not_ip() {
        "not-ip".to_string()
    } else {
        format!("malformed {}", e.reason())
    }
}

/// One verdict line (CLI.md "Per-packet verdicts").
fn write_verdict(
    out: &mut Vec<u8>,
    rec: &Rec,
    pkt: Option<&Packet>,
    d: &Decision,
    policy: &Policy,
    file: Option<&str>,
    parse_error: Option<&ParseError>,
) {
    let _ = write!(
        out,
        "{{\"packet\":{},\"time\":{}.{:09}",
        rec.index,
        rec.ts.secs(),
        rec.ts.subsec_nanos()
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
        if p.protocol == 1 || p.protocol == 58 {
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
    let _ = write!(out, ",\"action\":\"{}\"", d.verdict.as_str());
    match (d.verdict, parse_error) {
        (_, Some(e)) => {
            let _ = write!(out, ",\"reason\":\"{}\"", none_reason(e));
        }
        (Verdict::Accept, None) => {}
        _ => {
            out.extend_from_slice(b",\"reason\":");
            let _ = serde_json::to_writer(&mut *out, &reason_text(d.reason, policy));
        }
    }
    out.extend_from_slice(b"}\n");
}

struct Merged {
    packets: u64,
    accepted: u64,
    rejected: u64,
    none: u64,
    none_reasons: BTreeMap<String, u64>,
    parse_problems: BTreeMap<String, u64>,
    flow_records: u64,
    nodata_records: u64,
    nodata_skipped: u64,
    stats: EngineStats,
    rejects: BTreeMap<(usize, Reason), u64>,
}

struct FlowSink<'a> {
    writer: &'a mut Option<FlowLogWriter>,
    metas: &'a [EniMeta],
    interval: u64,
    nodata: bool,
    pending: Vec<FlowRecord>,
    /// The first window not yet written (for NODATA), once a packet was seen.
    next_window: Option<u64>,
    written: u64,
    nodata_written: u64,
    nodata_skipped: u64,
}

impl FlowSink<'_> {
    /// Writes every pending record of windows ending at or before `upto` (seconds),
    /// with NODATA records for ENIs without traffic in those windows.
    fn flush(&mut self, upto: u64, path: &Path) -> Result<(), ReplayError> {
        let interval = self.interval;
        let mut ready: Vec<FlowRecord> = Vec::new();
        self.pending.retain(|r| {
            if r.window_start + interval <= upto {
                ready.push(r.clone());
                false
            } else {
                true
            }
        });
        if self.nodata {
            if let Some(mut w) = self.next_window {
                // The ENIs with records, per window.
                let mut seen: HashMap<u64, HashSet<u32>> = HashMap::new();
                for r in &ready {
                    seen.entry(r.window_start).or_default().insert(r.eni);
                }
                let none = HashSet::new();
                // The first window that has not ended by `upto`.
                let open = upto / interval * interval;
                let mut gap = 0u64;
                while w + interval <= upto {
                    let has = match seen.get(&w) {
                        Some(h) => {
                            gap = 0;
                            h
                        }
                        None => {
                            gap += 1;
                            if gap > MAX_NODATA_GAP_WINDOWS {
                                // A long gap in the timeline (a bogus timestamp): skip
                                // to the next window with records, counting.
                                let next = seen
                                    .keys()
                                    .copied()
                                    .filter(|&k| k > w && k < open)
                                    .min()
                                    .unwrap_or(open);
                                self.nodata_skipped += (next - w) / interval;
                                w = next;
                                continue;
                            }
                            &none
                        }
                    };
                    for eni in 0..self.metas.len() as u32 {
                        if !has.contains(&eni) {
                            ready.push(FlowRecord::nodata(eni, w, interval as u32));
                            self.nodata_written += 1;
                        }
                    }
                    w += interval;
                }
                self.next_window = Some(w);
            }
        }
        ready.sort_by_key(|r| r.sort_key());
        if let Some(wr) = self.writer.as_mut() {
            for r in &ready {
                wr.write(r, &self.metas[r.eni as usize])
                    .map_err(out_err(path))?;
            }
        }
        self.written += ready.len() as u64;
        Ok(())
    }
}

#[allow(clippy::too_many_arguments)]
fn merger_loop(
    cfg: &ReplayConfig,
    rx: Receiver<ToMerger>,
    workers: usize,
    interval: u64,
    nodata: bool,
    metas: &[EniMeta],
    policies: &[Arc<Policy>],
    flow_writer: &mut Option<FlowLogWriter>,
    verdict_writer: &mut Option<Box<dyn Write + Send>>,
    accepted: &mut Option<PcapWriter>,
    rejected: &mut Option<PcapWriter>,
    multi_file: bool,
    file_names: &[String],
) -> Result<Merged, ReplayError> {
    let mut m = Merged {
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
    };
    let path_of = |p: &Option<PathBuf>| {
        p.as_ref()
            .map_or(String::new(), |p| p.display().to_string())
    };
    let flow_path = cfg.flow_log.clone().unwrap_or_default();
    let mut sink = FlowSink {
        writer: flow_writer,
        metas,
        interval,
        nodata,
        pending: Vec::new(),
        next_window: None,
        written: 0,
        nodata_written: 0,
        nodata_skipped: 0,
    };
    let mut batches: BTreeMap<u64, Arc<Batch>> = BTreeMap::new();
    let mut outs: BTreeMap<u64, Vec<Option<WorkerOut>>> = BTreeMap::new();
    let mut next = 0u64;
    let mut done = 0usize;
    let mut last_ts: Option<Timestamp> = None;
    let mut verdict_error: Option<ReplayError> = None;
    let none_policy = &policies[0];

    for msg in rx {
        match msg {
            ToMerger::Batch(b) => {
                batches.insert(b.id, b);
            }
            ToMerger::Out(o) => {
                let slot = outs
                    .entry(o.batch)
                    .or_insert_with(|| (0..workers).map(|_| None).collect());
                let w = o.worker;
                slot[w] = Some(o);
            }
            ToMerger::Done {
                records,
                stats,
                rejects,
                none,
            } => {
                done += 1;
                sink.pending.extend(records);
                m.stats.merge(&stats);
                for (k, v) in rejects {
                    *m.rejects.entry(k).or_insert(0) += v;
                }
                for (k, v) in none {
                    *m.none_reasons.entry(k).or_insert(0) += v;
                }
            }
        }
        // Emit every batch that is complete, in order.
        while let (Some(b), Some(slot)) = (batches.get(&next), outs.get(&next)) {
            if slot.iter().any(|o| o.is_none()) {
                break;
            }
            let b = b.clone();
            let slot = outs.remove(&next).unwrap();
            batches.remove(&next);
            next += 1;
            let mut cursors: Vec<(usize, usize, u32)> = vec![(0, 0, 0); workers]; // (verdict idx, line start, _)
            let slot: Vec<WorkerOut> = slot.into_iter().map(|o| o.unwrap()).collect();
            for o in &slot {
                sink.pending.extend(o.records.iter().cloned());
            }
            for (i, rec) in b.recs.iter().enumerate() {
                m.packets += 1;
                let frame = &b.data[rec.start as usize..(rec.start + rec.len) as usize];
                if let Err(e) = &b.parsed[i] {
                    m.none += 1;
                    *m.none_reasons.entry(none_reason(e)).or_insert(0) += 1;
                    if !e.is_not_ip() {
                        *m.parse_problems.entry(e.reason().to_string()).or_insert(0) += 1;
                    }
                    if let Some(w) = verdict_writer.as_mut() {
                        let mut line = Vec::new();
                        let d = Decision {
                            verdict: Verdict::None,
                            reason: Reason::NoEni,
                            obs: [None, None],
                        };
                        write_verdict(
                            &mut line,
                            rec,
                            None,
                            &d,
                            none_policy,
                            multi_file.then(|| file_names[b.file as usize].as_str()),
                            Some(e),
                        );
                        if let Err(err) = w.write_all(&line) {
                            verdict_error.get_or_insert(ReplayError::Output {
                                path: path_of(&cfg.verdicts),
                                error: err,
                            });
                        }
                    }
                    continue;
                }
                let w = b.owner[i] as usize;
                let o = &slot[w];
                let c = &mut cursors[w];
                let verdict = o.verdicts[c.0];
                if !o.line_ends.is_empty() {
                    let end = o.line_ends[c.0] as usize;
                    if let Some(vw) = verdict_writer.as_mut() {
                        if let Err(err) = vw.write_all(&o.lines[c.1..end]) {
                            verdict_error.get_or_insert(ReplayError::Output {
                                path: path_of(&cfg.verdicts),
                                error: err,
                            });
                        }
                    }
                    c.1 = end;
                }
                c.0 += 1;
                match verdict {
                    Verdict::Accept => {
                        m.accepted += 1;
                        if let Some(p) = accepted.as_mut() {
                            p.write_packet(rec.ts, rec.link_type, frame, rec.orig_len)
                                .map_err(|e| ReplayError::Output {
                                    path: path_of(&cfg.accepted),
                                    error: e,
                                })?;
                        }
                    }
                    Verdict::Reject => {
                        m.rejected += 1;
                        if let Some(p) = rejected.as_mut() {
                            p.write_packet(rec.ts, rec.link_type, frame, rec.orig_len)
                                .map_err(|e| ReplayError::Output {
                                    path: path_of(&cfg.rejected),
                                    error: e,
                                })?;
                        }
                    }
                    Verdict::None => m.none += 1,
                }
                last_ts = Some(last_ts.map_or(rec.ts, |t| t.max(rec.ts)));
                if sink.next_window.is_none() {
                    sink.next_window = Some(rec.ts.secs() / interval * interval);
                }
            }
            sink.flush(b.watermark, &flow_path)?;
        }
        if done == workers {
            break;
        }
    }
    if let Some(e) = verdict_error {
        return Err(e);
    }
    // The last windows: up to the end of the window of the last packet.
    let end = last_ts.map_or(0, |t| (t.secs() / interval + 1) * interval);
    sink.flush(
        end.max(
            sink.pending
                .iter()
                .map(|r| r.window_start + interval)
                .max()
                .unwrap_or(0),
        ),
        &flow_path,
    )?;
    // Windows of out-of-order packets after the last one.
    sink.nodata = false;
    sink.flush(u64::MAX, &flow_path)?;
    m.flow_records = sink.written - sink.nodata_written;
    m.nodata_records = sink.nodata_written;
    m.nodata_skipped = sink.nodata_skipped;
    Ok(m)
}
