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
//!   workers), reading no other frame. It owns an [`Engine`] (its connection
//!   tracking) and a flow-log [`Aggregator`] outright: no lock and no atomic on the
//!   per-packet path. It renders the verdict lines of its packets itself.
//! - The **merger** puts verdicts back in capture order (a merge of the workers'
//!   runs by index), writes the accepted and rejected pcaps, and writes flow-log
//!   records when their window has closed on every worker, sorted by (window start,
//!   interface id, first packet): each worker's closed windows arrive in that order
//!   as [`ClosedWindow`]s, and the merger merges them as it writes, making each
//!   record only then.
//!
//! Every worker sees which frames parsed, so each computes the same capture-time
//! watermark that closes windows; ruleset changes (`--rules-at`) split blocks and
//! travel in-band; the `--max-flows` bound is split over flow shards, not workers.
//! So the output is the same bytes for any number of workers.

use crate::capture::{Block, CaptureError, CaptureReader, PcapWriter};
use crate::engine::{
    flow_shard, reason_text, EngineStats, Reason, Verdict, Worker, WorkerConfig, WorkerTotals,
    FRAGMENT_MEMORY_MAX, FRAGMENT_MEMORY_SECS,
};
use crate::flowlog::{Collator, EniMeta, FlowRecord, LogFormat, Run};
use crate::model::{EniIdx, Vpc};
use crate::model::{PROTO_ICMP, PROTO_ICMPV6, PROTO_UDP};
use crate::output::sink::{self, RecordWriter};
use crate::output::FlowLogWriter;
use crate::policy::Policy;
use crate::wire::packet::{self, Fragment, Packet, ParseError, Timestamp};
use crossbeam_channel::{bounded, Receiver, Sender};
use hashbrown::HashMap;
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

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

/// When a ruleset of `--rules-at` takes effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum When {
    /// At this capture time.
    At(Timestamp),
    /// This long (nanoseconds) after the capture time of the first packet of the run
    /// (the first record of the first capture that has one), resolved when that
    /// packet is read: the same input gives the same output.
    AfterFirstPacket(u64),
}

impl When {
    /// The capture time this means, given the first packet's.
    pub fn resolve(self, first: Timestamp) -> Timestamp {
        match self {
            When::At(t) => t,
            When::AfterFirstPacket(ns) => Timestamp(first.0.saturating_add(ns)),
        }
    }
}

impl From<Timestamp> for When {
    fn from(t: Timestamp) -> When {
        When::At(t)
    }
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
    /// [`FLOW_SHARDS`] flow shards, so the outcome does not depend on `workers`.
    pub max_flows: Option<u64>,
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
    /// Per ruleset of [`ReplayConfig::rulesets`]: the capture time it took effect, as
    /// resolved at the first packet (`None` for the first ruleset, and for all when no
    /// packet was read).
    pub ruleset_from: Vec<Option<Timestamp>>,
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

/// Runs a replay. `interrupt`, when set, makes the reader stop after the block it is
/// reading; everything read so far is still processed and written. A capture read
/// from a pipe or a terminal (`-`, a FIFO) stops too once nothing more is ready to
/// read: an idle input does not hold the run (see [`crate::sys::Interruptible`]).
pub fn run(
    cfg: &ReplayConfig,
    interrupt: Option<&Arc<AtomicBool>>,
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
    let mut flow_writer = match &cfg.flow_log {
        Some(p) => Some(FlowLogWriter::create(p, cfg.log_format.clone()).map_err(out_err(p))?),
        None => None,
    };
    let mut verdict_writer: Option<RecordWriter> = match &cfg.verdicts {
        Some(p) => Some(sink::open_verdicts(p).map_err(out_err(p))?),
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
    let want_block = accepted.is_some() || rejected.is_some();
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
                    },
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
            // NODATA records are made only to be written.
            let nodata = cfg.nodata && cfg.flow_log.is_some();
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
                )
            })
        };

        let read = read_all(cfg, &policies, &worker_txs, interrupt, &mut summary);
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
        summary.last_packet = m.last_ts;
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
    if let Some(w) = flow_writer {
        let p = cfg.flow_log.as_deref().unwrap();
        w.finish().map_err(out_err(p))?;
    }
    if let Some(w) = verdict_writer {
        let p = cfg.verdicts.as_deref().unwrap();
        w.finish().map_err(out_err(p))?;
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
        summary.coverage.push(cov);
    }
    summary.peak_rss_bytes = peak_rss_bytes();
    Ok(summary)
}

/// The details of the rejects of one reason under one ruleset.
fn reject_count(
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

/// Reads every capture in blocks and feeds the workers. Returns after the last
/// block is sent.
fn read_all(
    cfg: &ReplayConfig,
    policies: &[Arc<Policy>],
    worker_txs: &[Sender<ToWorker>],
    interrupt: Option<&Arc<AtomicBool>>,
    summary: &mut Summary,
) -> Result<(), ReplayError> {
    let mut next_id = 0u64;
    let mut seq = 0u64;
    // The rulesets after the first, by the capture time they take effect (ruleset
    // number in `cfg.rulesets`), resolved at the first packet; the next one to apply.
    let mut schedule: Option<Vec<(Timestamp, usize)>> = None;
    let mut next_rules = 0usize;
    let interrupted = || interrupt.is_some_and(|f| f.load(Ordering::Relaxed));
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
    // Buffers come back here when every holder has dropped their block.
    let (recycle_tx, recycle_rx) = bounded::<Buffers>(QUEUE_DEPTH * 2 + 4);
    let mut done_bytes = 0u64;
    let mut routes = FragRoutes::default();
    // The ruleset generation of the record being parsed.
    let mut generation = 0usize;
    let mut splits: Vec<(u32, usize)> = Vec::new();
    // False when the workers are gone: the merger stopped on an output error.
    let send = |w: Work, next_id: &mut u64| -> bool {
        *next_id += 1;
        let mut alive = true;
        for tx in worker_txs {
            alive &= tx
                .send(ToWorker::Work(Work {
                    id: w.id,
                    blk: w.blk.clone(),
                    from: w.from,
                    to: w.to,
                }))
                .is_ok();
        }
        alive
    };

    'files: for (fi, path) in cfg.captures.iter().enumerate() {
        if interrupted() {
            summary.interrupted = true;
            break;
        }
        let opened = match interrupt {
            Some(stop) if is_stream(path) => open_stream(path, stop),
            _ => CaptureReader::open(path),
        };
        let mut reader = match opened {
            Ok(r) => r,
            // A stream that ended because of the signal is no damaged capture.
            Err(_) if interrupted() => {
                summary.interrupted = true;
                break;
            }
            Err(e) => {
                summary.capture_errors.push(e.to_string());
                continue;
            }
        };
        let mut index = 1u64;
        loop {
            let Buffers {
                mut block,
                mut parsed,
            } = recycle_rx.try_recv().unwrap_or_default();
            let read = reader.read_block(&mut block, BLOCK_PACKETS);
            if let Err(e) = read {
                if interrupted() {
                    summary.interrupted = true;
                    break 'files;
                }
                summary.capture_errors.push(e.to_string());
                break;
            }
            let n = block.records.len() as u32;
            if n == 0 {
                break;
            }
            let schedule = schedule.get_or_insert_with(|| {
                let first = block.records[0].ts;
                let mut v: Vec<(Timestamp, usize)> = cfg
                    .rulesets
                    .iter()
                    .enumerate()
                    .skip(1)
                    .map(|(i, r)| (r.from.map_or(first, |w| w.resolve(first)), i))
                    .collect();
                v.sort_by_key(|&(t, _)| t);
                summary.ruleset_from = vec![None; cfg.rulesets.len()];
                for &(t, i) in &v {
                    summary.ruleset_from[i] = Some(t);
                }
                v
            });
            // Where a ruleset takes effect: (record, ruleset) pairs.
            splits.clear();
            let mut from = 0usize;
            let mut next = next_rules;
            while let Some(&(t, rules)) = schedule.get(next) {
                let Some(at) = block.records[from..].iter().position(|r| r.ts >= t) else {
                    break;
                };
                from += at;
                splits.push((from as u32, rules));
                next += 1;
            }
            // Parsed here once, not by every worker: the reader has just touched
            // these bytes, and a worker then skips other shards' frames unread.
            parsed.clear();
            let mut split = splits.iter().peekable();
            for (i, r) in block.records.iter().enumerate() {
                while let Some(&(_, rules)) = split.next_if(|s| s.0 as usize == i) {
                    // A new ruleset forgets first fragments, as the engine does.
                    routes.clear();
                    generation = rules;
                }
                parsed.push(
                    packet::parse(r.link_type, block.frame(i))
                        .ok()
                        .map(|p| (routes.shard(&p, r.ts, &policies[generation]), p)),
                );
            }
            let blk = Arc::new(InBlock {
                block,
                parsed,
                file: fi as u32,
                first_seq: seq,
                first_index: index,
                recycle: recycle_tx.clone(),
            });
            seq += u64::from(n);
            index += u64::from(n);
            // Split the block where a ruleset takes effect.
            let mut from = 0u32;
            for &(at, rules) in &splits {
                if at > from
                    && !send(
                        Work {
                            id: next_id,
                            blk: blk.clone(),
                            from,
                            to: at,
                        },
                        &mut next_id,
                    )
                {
                    break 'files;
                }
                for tx in worker_txs {
                    let _ = tx.send(ToWorker::SetPolicy(rules));
                }
                next_rules += 1;
                from = at;
            }
            if from < n
                && !send(
                    Work {
                        id: next_id,
                        blk: blk.clone(),
                        from,
                        to: n,
                    },
                    &mut next_id,
                )
            {
                break 'files;
            }
            if let Some(bar) = &progress {
                bar.set_position(done_bytes + reader.bytes_read());
            }
            // After the block, not before: what was read (a stream's input that was
            // ready when the signal came) is processed and written.
            if interrupted() {
                summary.interrupted = true;
                break 'files;
            }
        }
        done_bytes += reader.bytes_read();
    }
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    Ok(())
}

/// Whether a capture path is a stream that may sit idle: standard input (`-`), a
/// FIFO, a terminal or a socket (`<(command)` gives a pipe).
fn is_stream(path: &Path) -> bool {
    path.as_os_str() == "-" || std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir())
}

/// Opens a stream capture whose reads end when `stop` is set and nothing is ready.
fn open_stream(path: &Path, stop: &Arc<AtomicBool>) -> Result<CaptureReader, CaptureError> {
    use crate::sys::Interruptible;
    if path.as_os_str() == "-" {
        let stdin = std::io::stdin().as_fd().try_clone_to_owned();
        return match stdin {
            Ok(fd) => CaptureReader::from_reader(
                "<stdin>",
                Box::new(Interruptible::new(std::fs::File::from(fd), stop.clone())),
            ),
            Err(_) => CaptureReader::open(path),
        };
    }
    match crate::sys::open_stream(path) {
        Ok(f) => CaptureReader::from_reader(
            &path.display().to_string(),
            Box::new(Interruptible::new(f, stop.clone())),
        ),
        Err(_) => CaptureReader::open(path),
    }
}

/// The reader's memory of first fragments, to send each later fragment to the worker
/// that evaluated its first fragment and remembers its verdict (the engine's fragment
/// memory): a later fragment has no ports, so [`flow_shard`] alone would send it to
/// the shard of its address pair.
///
/// It remembers what the engine remembers, for as long ([`FRAGMENT_MEMORY_SECS`] of
/// capture time), and forgets everything at a ruleset change as the engine does.
/// DHCP first fragments are not remembered (the engine exempts them before it
/// remembers anything). It holds at most 4 × [`FRAGMENT_MEMORY_MAX`] entries; beyond
/// that (a flood of first fragments) a later fragment may reach another worker than
/// its first and be judged with unknown ports, as beyond the engine's own bound.
#[derive(Default)]
struct FragRoutes {
    /// (source, destination, protocol, id) → (shard, capture time in ns).
    map: HashMap<(IpAddr, IpAddr, u8, u32), (u8, u64)>,
    /// Capture time of the last pruning of expired entries.
    pruned: u64,
}

impl FragRoutes {
    const MAX: usize = 4 * FRAGMENT_MEMORY_MAX;
    const NS: u64 = crate::wire::packet::NANOS_PER_SEC;

    /// The shard of `p`, remembering first fragments.
    fn shard(&mut self, p: &Packet, ts: Timestamp, policy: &Policy) -> u8 {
        match p.fragment {
            Fragment::None => flow_shard(p, policy),
            Fragment::First { id } => {
                let shard = flow_shard(p, policy);
                let dhcp = p.protocol == PROTO_UDP
                    && (67..=68).contains(&p.src_port)
                    && (67..=68).contains(&p.dst_port);
                if !dhcp {
                    self.remember((p.src, p.dst, p.protocol, id), shard, ts.0);
                }
                shard
            }
            Fragment::Later { id } => match self.map.get(&(p.src, p.dst, p.protocol, id)) {
                Some(&(shard, at))
                    if ts.0.saturating_sub(at) <= FRAGMENT_MEMORY_SECS * Self::NS =>
                {
                    shard
                }
                _ => flow_shard(p, policy),
            },
        }
    }

    fn remember(&mut self, key: (IpAddr, IpAddr, u8, u32), shard: u8, now: u64) {
        if self.map.len() >= Self::MAX && !self.map.contains_key(&key) {
            // Prune expired entries, at most once per second of capture time, so a
            // flood costs one pass per second, not one per packet.
            if now.saturating_sub(self.pruned) < Self::NS {
                return;
            }
            self.pruned = now;
            let keep = FRAGMENT_MEMORY_SECS * Self::NS;
            self.map
                .retain(|_, &mut (_, at)| now.saturating_sub(at) <= keep);
            if self.map.len() >= Self::MAX {
                return;
            }
        }
        self.map.insert(key, (shard, now));
    }

    fn clear(&mut self) {
        self.map.clear();
    }
}

fn worker_loop(
    me: usize,
    workers: usize,
    rx: Receiver<ToWorker>,
    merge_tx: Sender<ToMerger>,
    policies: Vec<Arc<Policy>>,
    cfg: WorkerConfig,
    out_cfg: PerPacket<'_>,
) {
    let mut worker = Worker::new(policies[0].clone(), cfg);
    let mut unparsed: HashMap<(bool, &'static str), u64> = HashMap::new();
    let mut watermark = 0u64;
    for msg in rx {
        let work = match msg {
            ToWorker::SetPolicy(g) => {
                worker.set_policy(policies[g].clone(), g);
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
                                file,
                                Some(&e),
                            );
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
            let d = worker.handle(pkt, rec.ts, seq, shard);
            if per_packet {
                out.idx.push(i);
                out.verdicts.push(d.verdict);
                if out_cfg.verdicts {
                    let reason = (d.verdict != Verdict::Accept)
                        .then(|| reason_text(d.reason, worker.policy()));
                    write_verdict(
                        &mut out.lines,
                        index,
                        rec.ts,
                        Some(pkt),
                        d.verdict,
                        reason.as_deref(),
                        file,
                        None,
                    );
                    out.line_ends.push(out.lines.len() as u32);
                }
            }
        }
        if let Some(t) = out.last_ts {
            worker.housekeeping(t);
        }
        out.watermark = watermark;
        worker.advance(watermark, &mut out.records);
        if merge_tx.send(ToMerger::Out(out)).is_err() {
            return;
        }
    }
    let mut records = Vec::new();
    let totals = worker.finish(&mut records);
    let _ = merge_tx.send(ToMerger::Done(Box::new(WorkerDone {
        records,
        totals,
        unparsed,
    })));
}

/// What a worker writes per packet, besides flow logs.
#[derive(Clone, Copy)]
struct PerPacket<'a> {
    /// Verdict lines.
    verdicts: bool,
    /// The blocks (worker 0), for the pcaps of accepted and rejected packets.
    block: bool,
    /// Verdict lines name their file.
    multi_file: bool,
    file_names: &'a [String],
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

/// One verdict line (README.md, "Per-packet verdicts").
#[allow(clippy::too_many_arguments)]
fn write_verdict(
    out: &mut Vec<u8>,
    index: u64,
    ts: Timestamp,
    pkt: Option<&Packet>,
    verdict: Verdict,
    reason: Option<&str>,
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
    out.extend_from_slice(b"}\n");
}

struct Merged {
    flow_log_skipped: u64,
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
    rejects_tracked: HashMap<(usize, Reason), u64>,
    first_ts: Option<Timestamp>,
    last_ts: Option<Timestamp>,
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
    verdict_writer: &mut Option<RecordWriter>,
    accepted: &mut Option<PcapWriter>,
    rejected: &mut Option<PcapWriter>,
) -> Result<Merged, ReplayError> {
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

/// The process's peak resident memory so far (Linux `VmHWM`), for the summary.
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
