//! The replay pipeline: reader → N workers → ordered merge → sinks.
//!
//! - The **reader** (the calling thread) reads each capture in blocks of about
//!   1 MiB ([`CaptureReader::read_block`]): the records stay in the buffer they were
//!   read into, and the block is shared (an `Arc`, one per block, not per packet) by
//!   every worker. Buffers come back to the reader when the last holder drops them.
//! - The reader also parses every frame once and gives it a flow shard
//!   ([`flow_shard`]: a symmetric hash of the address pair, protocol and TCP/UDP
//!   port pair, so both directions of a connection agree; a non-first fragment goes
//!   where its first fragment went, see `FragRoutes`). A worker would otherwise
//!   parse every frame to find its own.
//! - Each **worker** keeps the packets of the block whose shard is its own (shard mod
//!   workers), reading no other frame. It owns an [`crate::engine::Engine`] (its connection
//!   tracking) and a flow-log [`crate::flowlog::Aggregator`] outright: no lock and no atomic on the
//!   per-packet path. It renders the verdict lines of its packets itself.
//! - The **merger** puts verdicts back in capture order (a merge of the workers'
//!   runs by index), writes the accepted and rejected pcaps, and writes flow-log
//!   records when their window has closed on every worker, sorted by (window start,
//!   interface id, first packet): each worker's closed windows arrive in that order
//!   as [`crate::flowlog::ClosedWindow`]s, and the merger merges them as it writes, making each
//!   record only then.
//!
//! Every worker sees which frames parsed, so each computes the same capture-time
//! watermark that closes windows; ruleset changes (`--rules-at`) split blocks and
//! travel in-band; the `--max-flows` bound is split over flow shards, not workers.
//! So the output is the same bytes for any number of workers.

use crate::analysis::diff::{Differ, PacketRef, Side};
use crate::capture::{Block, CaptureError, CaptureReader, PcapWriter};
use crate::engine::{
    flow_shard, reason_text, Counterfactual, EngineStats, Reason, Verdict, Worker, WorkerConfig,
    WorkerTotals, FRAGMENT_MEMORY_MAX, FRAGMENT_MEMORY_SECS,
};
use crate::flowlog::{Collator, EniMeta, FlowRecord, LogFormat, Run};
use crate::model::{EniIdx, Vpc};
use crate::model::{PROTO_ICMP, PROTO_ICMPV6, PROTO_UDP};
use crate::output::sink::{self, RecordWriter};
use crate::output::FlowLogWriter;
use crate::policy::Policy;
pub mod collect;
use crate::wire::packet::{self, Fragment, Packet, ParseError, Timestamp};
use collect::ReportCollector;
use crossbeam_channel::{bounded, Receiver, Sender};
use hashbrown::HashMap;
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub mod bench;
pub use crate::time::When;

pub mod explain;
mod merger;
mod reader;
pub(crate) use reader::FragRoutes;
mod summary;
mod worker;
use merger::merger_loop;
use reader::read_all;
pub use summary::*;
use worker::{worker_loop, PerPacket};

/// At most this many packets per block handed between threads (a block is also
/// bounded by the reader's buffer, 1 MiB).
const BLOCK_PACKETS: usize = 8192;
/// Batches in flight per channel.
const QUEUE_DEPTH: usize = 2;

/// A ruleset and the capture time it takes effect.
#[derive(Clone, Debug)]
pub struct RulesetAt {
    /// `None`: from the start.
    pub from: Option<When>,
    pub vpc: Arc<Vpc>,
    /// What the user named, for the summary.
    pub label: String,
}

/// A validated replay configuration (the CLI resolves flags into this).
#[derive(Clone, Debug)]
pub struct ReplayConfig {
    pub captures: Vec<PathBuf>,
    /// The first has `from: None`. The others take effect in the order of their
    /// resolved times (ties: in this order).
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
    /// The most tracked connections at once over the whole run (`--max-flows`), and
    /// twice that many open flow-log records; `None`: unbounded. Split evenly over the
    /// [`crate::conntrack::FLOW_SHARDS`] flow shards, so the outcome does not depend on `workers`.
    pub max_flows: Option<u64>,
    /// Collect what `--report` shows beyond the summary ([`Summary::report`]).
    pub report: bool,
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

/// A block of records read in one go, with every frame parsed by the reader, shared
/// by every worker (each keeps its own flow shards' packets) and by the merger when it
/// writes pcaps. The buffers go back to the reader when the last holder drops it.
struct InBlock {
    block: Block,
    /// Per record: its flow shard and parsed packet (`None`: the frame did not parse).
    parsed: Vec<Option<(u8, Packet)>>,
    file: u32,
    /// Global sequence number (over all files, from 0) of record 0.
    first_seq: u64,
    /// 1-based index in its file of record 0.
    first_index: u64,
    recycle: Sender<Buffers>,
}

/// The reusable buffers of an [`InBlock`].
#[derive(Default)]
struct Buffers {
    block: Block,
    parsed: Vec<Option<(u8, Packet)>>,
}

impl Drop for InBlock {
    fn drop(&mut self) {
        let _ = self.recycle.try_send(Buffers {
            block: std::mem::take(&mut self.block),
            parsed: std::mem::take(&mut self.parsed),
        });
    }
}

/// A run of records of one block: `block.records[from..to]`.
struct Work {
    id: u64,
    blk: Arc<InBlock>,
    from: u32,
    to: u32,
}

enum ToWorker {
    Work(Work),
    /// From the next message on, use ruleset generation N.
    SetPolicy(usize),
}

/// What one worker made of one [`Work`].
struct WorkerOut {
    id: u64,
    worker: usize,
    /// Only with per-packet outputs: the block index of each packet this worker
    /// answers for (its own, and for worker 0 also every frame that did not parse),
    /// ascending, with its verdict and the end of its verdict line.
    idx: Vec<u32>,
    verdicts: Vec<Verdict>,
    lines: Vec<u8>,
    line_ends: Vec<u32>,
    records: Vec<Run>,
    /// Worker 0: the block, when pcaps are written.
    blk: Option<Arc<InBlock>>,
    /// The capture-time watermark (seconds) after this run; every worker computes
    /// the same one, since every worker sees which frames parsed.
    watermark: u64,
    /// First and last time of a frame that parsed in this run.
    first_ts: Option<Timestamp>,
    last_ts: Option<Timestamp>,
}

/// A worker's final records and counters.
struct WorkerDone {
    records: Vec<Run>,
    totals: WorkerTotals,
    /// Frames that did not parse (worker 0 only): (not IP?, reason) → count.
    unparsed: HashMap<(bool, &'static str), u64>,
    report: Option<ReportCollector>,
    /// Counterfactual runs: the packets whose verdict AWS's engine judged otherwise.
    differ: Option<Differ>,
}

enum ToMerger {
    Out(WorkerOut),
    Done(Box<WorkerDone>),
}

fn out_err(path: &Path) -> impl Fn(io::Error) -> ReplayError + '_ {
    move |error| ReplayError::Output {
        path: path.display().to_string(),
        error,
    }
}

/// The files a replay writes, opened before any work so that a bad path fails first.
struct Outputs {
    flow_writer: Option<FlowLogWriter>,
    verdict_writer: Option<RecordWriter>,
    accepted: Option<PcapWriter>,
    rejected: Option<PcapWriter>,
}

impl Outputs {
    fn open(cfg: &ReplayConfig) -> Result<Outputs, ReplayError> {
        let pcap = |p: &Option<PathBuf>| match p {
            Some(p) => PcapWriter::create(p).map(Some).map_err(out_err(p)),
            None => Ok(None),
        };
        Ok(Outputs {
            flow_writer: match &cfg.flow_log {
                Some(p) => {
                    Some(FlowLogWriter::create(p, cfg.log_format.clone()).map_err(out_err(p))?)
                }
                None => None,
            },
            verdict_writer: match &cfg.verdicts {
                Some(p) => Some(sink::open_verdicts(p).map_err(out_err(p))?),
                None => None,
            },
            accepted: pcap(&cfg.accepted)?,
            rejected: pcap(&cfg.rejected)?,
        })
    }

    /// Finishes every file (whole records, flushed); returns the packets the pcaps
    /// skipped for their link type.
    fn finish(self, cfg: &ReplayConfig) -> Result<u64, ReplayError> {
        if let Some(w) = self.flow_writer {
            let p = cfg.flow_log.as_deref().unwrap();
            w.finish().map_err(out_err(p))?;
        }
        if let Some(w) = self.verdict_writer {
            let p = cfg.verdicts.as_deref().unwrap();
            w.finish().map_err(out_err(p))?;
        }
        let mut skipped = 0;
        for (w, p) in [
            (self.accepted, &cfg.accepted),
            (self.rejected, &cfg.rejected),
        ] {
            if let Some(w) = w {
                skipped += w.skipped();
                let p = p.as_deref().unwrap();
                w.finish().map_err(out_err(p))?;
            }
        }
        Ok(skipped)
    }
}

/// Runs a replay. `interrupt`, when set, makes the reader stop after the block it is
/// reading; everything read so far is still processed and written. A capture read
/// from a pipe or a terminal (`-`, a FIFO) stops too once nothing more is ready to
/// read: an idle input does not hold the run (see [`crate::sys::Interruptible`]).
pub fn run(
    cfg: &ReplayConfig,
    interrupt: Option<&Arc<AtomicBool>>,
) -> Result<Summary, ReplayError> {
    run_with(cfg, interrupt, Counterfactual::default())
}

/// Runs a replay of a capture held in memory (the bytes of a pcap or pcapng file), as
/// [`run`] does a file: `cfg.captures` must hold one name, used in messages only.
/// `vpcgate bench` measures the pipeline this way, without the page cache.
pub fn run_in_memory(cfg: &ReplayConfig, capture: Arc<[u8]>) -> Result<Summary, ReplayError> {
    run_from(cfg, None, Counterfactual::default(), Some(capture))
}

/// [`run`] with a counterfactual data plane (not AWS, `--stateless-sg`,
/// `--stateful-nacl`): every output is the counterfactual engine's, and each worker
/// also runs AWS's engine on the same packets, so that the summary lists the packets
/// whose verdict flips ([`Summary::counterfactual`]).
pub fn run_with(
    cfg: &ReplayConfig,
    interrupt: Option<&Arc<AtomicBool>>,
    cf: Counterfactual,
) -> Result<Summary, ReplayError> {
    run_from(cfg, interrupt, cf, None)
}

fn run_from(
    cfg: &ReplayConfig,
    interrupt: Option<&Arc<AtomicBool>>,
    cf: Counterfactual,
    memory: Option<Arc<[u8]>>,
) -> Result<Summary, ReplayError> {
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
    let mut outputs = Outputs::open(cfg)?;
    let want_verdicts = outputs.verdict_writer.is_some();
    let want_block = outputs.accepted.is_some() || outputs.rejected.is_some();
    let multi_file = cfg.captures.len() > 1;
    let file_names: Vec<String> = cfg
        .captures
        .iter()
        .map(|p| p.display().to_string())
        .collect();

    let (merge_tx, merge_rx) = bounded::<ToMerger>(QUEUE_DEPTH * (workers + 1));
    let mut worker_txs = Vec::new();

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
                    workers,
                    rx,
                    merge_tx,
                    policies,
                    WorkerConfig {
                        interval: cfg.interval,
                        max_flows: cfg.max_flows,
                        flow_log: cfg.flow_log.is_some(),
                    },
                    PerPacket {
                        verdicts: want_verdicts,
                        block: want_block,
                        multi_file,
                        file_names,
                        report: cfg.report,
                        counterfactual: cf,
                    },
                )
            });
        }
        drop(merge_tx);

        // The merger runs on its own thread; the reader is this thread.
        let merger = {
            let metas = &metas;
            let policies = &policies;
            let outputs = &mut outputs;
            scope.spawn(move || merger_loop(cfg, merge_rx, workers, metas, policies, outputs))
        };

        let read = read_all(cfg, &policies, &worker_txs, interrupt, memory, &mut summary);
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
        summary.flow_log_skipped_packets = m.flow_log_skipped;
        summary.max_flows = cfg.max_flows;
        summary.first_packet = m.first_ts;
        summary.counterfactual = m.differ.map(|d| CounterfactualSummary {
            mode: cf,
            flips: d.finish("AWS", &format!("{} (not AWS)", cf.describe()), m.packets),
        });
        summary.last_packet = m.last_ts;
        summary.report = m.report.map(ReportCollector::finish);
        for ((gen, reason), n) in m.rejects {
            let text = reason_text(reason, &policies[gen]);
            *summary.reject_reasons.entry(text.clone()).or_insert(0) += n;
            let tracked = m.rejects_tracked.get(&(gen, reason)).copied().unwrap_or(0);
            summary.reject_details.push(reject_count(
                &policies[gen],
                gen,
                reason,
                text,
                n,
                tracked,
            ));
        }
        Ok(())
    })?;

    // Outputs are finished after every thread is done.
    summary.pcap_link_type_skipped += outputs.finish(cfg)?;

    summary.coverage = coverage(&policies, &cfg.rulesets, &summary);
    if cfg.report {
        summary.eni_ids = eni_ids;
    }
    summary.peak_rss_bytes = peak_rss_bytes();
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
