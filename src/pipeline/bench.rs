//! `vpcgate bench`: what this machine does with a ruleset's traffic, measured in one
//! command. Not part of the core: it reads the clock, starts threads and reads `/proc`.
//!
//! [`run`] generates a capture in memory ([`crate::synth::bulk::generate`]), then
//! measures, on one core, each stage of a packet's way through a replay (reading the
//! records, parsing, the engine, flow-log counting, flow-log formatting), and the whole
//! pipeline ([`super::run_in_memory`], flow log on, written to `/dev/null`) for 1 to
//! N workers. Every measurement is repeated and the median kept. [`floor`] is the
//! least any packet filter must do with a capture file (`vpcgate bench --floor FILE`),
//! [`shard_spread`] how evenly a capture's flows spread over workers (`--shards FILE`).
//!
//! What is checked, not only timed: every stage and every worker count must see the
//! same packets, and every pipeline run must give the same counts and flow records
//! ([`BenchReport::identical`]), as `--workers` promises.

pub mod floor;

use super::{eni_table, run_in_memory, ReplayConfig, RulesetAt};
use crate::capture::{Block, CaptureReader};
use crate::engine::{flow_shard, Engine, Verdict, FLOW_SHARDS};
use crate::flowlog::{Aggregator, FlowRecord, LogFormat, Observation};
use crate::model::Vpc;
use crate::policy::Policy;
use crate::synth::bulk::{self, SynthConfig};
use crate::wire::packet::{self, Packet, Timestamp};
use serde::Serialize;
use std::hint::black_box;
use std::io::{self, Cursor, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Packets per block, as the pipeline's reader hands them on (and as its workers call
/// the engine's housekeeping).
const BLOCK: usize = 8192;

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    pub vpc: Vpc,
    /// What the user named (`SecureCart (built in)` by default), for the report.
    pub rules: String,
    pub packets: u64,
    pub flows: usize,
    /// Pipeline runs for 1 ..= this many workers.
    pub workers_max: usize,
    /// Repetitions of every measurement (the median is reported).
    pub runs: usize,
    /// The replay's `--max-flows` bound.
    pub max_flows: Option<u64>,
}

/// The machine the numbers come from.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// `model name` of /proc/cpuinfo (or what the platform calls it).
    pub cpu: String,
    /// CPUs this process may run on.
    pub cores: usize,
    /// `uname -r`.
    pub kernel: String,
    /// /proc/loadavg's 1, 5 and 15-minute averages, before the first measurement.
    pub load_average: String,
    pub vpcgate_version: String,
    /// `release`, or `debug` (then the numbers mean little).
    pub build: String,
}

/// One stage measured on one core.
#[derive(Clone, Debug, Serialize)]
pub struct StageTime {
    /// The key of `ns_per_packet` in the JSON.
    pub key: &'static str,
    /// For the table.
    pub label: &'static str,
    /// Median and fastest of the runs, nanoseconds of this thread's CPU time per
    /// packet of the capture.
    pub ns_per_packet: f64,
    pub best_ns_per_packet: f64,
}

/// The whole pipeline with one worker count.
#[derive(Clone, Debug, Serialize)]
pub struct PipelineTime {
    pub workers: usize,
    /// Median of the runs.
    pub packets_per_second: f64,
    pub ns_per_packet: f64,
    /// Every run's wall time, seconds, in run order.
    pub seconds: Vec<f64>,
    /// CPU time of the whole process (every thread: reader, workers, merger) per
    /// packet, median of the runs, from /proc/self/stat (10 ms steps); `None` where
    /// unknown. Unlike wall time, waiting for a CPU on a busy machine does not add to it.
    pub cpu_ns_per_packet: Option<f64>,
    /// Over the one-worker median.
    pub speedup: f64,
    /// The share of the packets the busiest worker gets (flows go to workers by
    /// their flow shard): 1 / workers is even.
    pub busiest_worker_share: f64,
}

/// What one pipeline run made of the capture: the same for every run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub packets: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub not_evaluated: u64,
    pub flow_records: u64,
}

/// The capture generated in memory.
#[derive(Clone, Debug, Serialize)]
pub struct InputInfo {
    pub rules: String,
    pub packets: u64,
    /// Packets that parse as IP (the others are counted, never judged).
    pub ip_packets: u64,
    /// Flows open at once in the generator.
    pub flows_open: usize,
    /// Flows in the capture.
    pub flows: u64,
    pub rejected_flows: u64,
    pub capture_bytes: u64,
    /// Seconds the generator took (not a measurement of vpcgate's data path).
    pub generate_seconds: f64,
}

/// Everything `vpcgate bench` prints.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub machine: Machine,
    pub input: InputInfo,
    pub runs: usize,
    pub stages: Vec<StageTime>,
    pub pipeline: Vec<PipelineTime>,
    pub outcome: Outcome,
    /// Every pipeline run gave [`BenchReport::outcome`].
    pub identical: bool,
    /// Peak resident memory while the pipeline ran (the capture in memory included),
    /// or of the whole process where the peak could not be reset (`None`: unknown).
    pub peak_rss_bytes: Option<u64>,
    /// True when `peak_rss_bytes` covers only the pipeline runs.
    pub peak_rss_pipeline_only: bool,
    pub seconds_total: f64,
    /// Why the replays used fewer workers than asked, if they did (a ruleset with
    /// per-instance connection-tracking allowances runs on one worker).
    pub workers_note: Option<String>,
}

impl BenchReport {
    /// The JSON record: `ns_per_packet` per stage, `packets_per_second` per worker
    /// count, and the details.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).expect("a report serialises");
        let ns: serde_json::Map<String, serde_json::Value> = self
            .stages
            .iter()
            .map(|s| (s.key.to_string(), round(s.ns_per_packet).into()))
            .collect();
        let pps: serde_json::Map<String, serde_json::Value> = self
            .pipeline
            .iter()
            .map(|p| (p.workers.to_string(), p.packets_per_second.round().into()))
            .collect();
        v["ns_per_packet"] = ns.into();
        v["packets_per_second"] = pps.into();
        v
    }

    /// The table, for a terminal or an issue.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let m = &self.machine;
        let i = &self.input;
        let mut s = String::new();
        let _ = writeln!(s, "vpcgate bench {} ({} build)", m.vpcgate_version, m.build);
        let _ = writeln!(
            s,
            "machine: {}, {} cores, Linux {}, load average {}",
            m.cpu, m.cores, m.kernel, m.load_average
        );
        let _ = writeln!(
            s,
            "input:   {} packets ({} IP), {} flows ({} open at once, {} rejected), {:.1} MB \
             of pcap in memory; rules: {}",
            i.packets,
            i.ip_packets,
            i.flows,
            i.flows_open,
            i.rejected_flows,
            i.capture_bytes as f64 / 1e6,
            i.rules
        );
        if m.build == "debug" {
            let _ = writeln!(
                s,
                "warning: a debug build; build with `cargo build --release` for numbers that mean anything"
            );
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "| {:<40} | ns/packet |   best | Mpackets/s |",
            format!("stage, one core, CPU time (median of {})", self.runs)
        );
        let _ = writeln!(s, "|---|--:|--:|--:|");
        for st in &self.stages {
            let _ = writeln!(
                s,
                "| {:<40} | {:>9.1} | {:>6.1} | {:>10.2} |",
                st.label,
                st.ns_per_packet,
                st.best_ns_per_packet,
                1e3 / st.ns_per_packet.max(1e-9)
            );
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "| {:<40} | packets/s | ns/packet | CPU ns/packet | speed-up | busiest worker |",
            "replay from memory, flow log on"
        );
        let _ = writeln!(s, "|---|--:|--:|--:|--:|--:|");
        for p in &self.pipeline {
            let _ = writeln!(
                s,
                "| {:<40} | {:>9} | {:>9.1} | {:>13} | {:>7.2}× | {:>12.1} % |",
                format!(
                    "{:>2} worker{}",
                    p.workers,
                    if p.workers == 1 { "" } else { "s" }
                ),
                si(p.packets_per_second),
                p.ns_per_packet,
                p.cpu_ns_per_packet
                    .map_or("-".to_string(), |c| format!("{c:.1}")),
                p.speedup,
                100.0 * p.busiest_worker_share
            );
        }
        if let Some(note) = &self.workers_note {
            let _ = writeln!(s, "note: {note}: every row ran on one worker");
        }
        let _ = writeln!(s);
        match self.peak_rss_bytes {
            Some(b) => {
                let _ = writeln!(
                    s,
                    "peak memory (RSS{}): {:.0} MiB, of which the capture in memory {:.0} MiB",
                    if self.peak_rss_pipeline_only {
                        ", during the replays"
                    } else {
                        ", whole run"
                    },
                    b as f64 / (1u64 << 20) as f64,
                    i.capture_bytes as f64 / (1u64 << 20) as f64
                );
            }
            None => {
                let _ = writeln!(s, "peak memory: unknown (no /proc/self/status)");
            }
        }
        let o = &self.outcome;
        let _ = writeln!(
            s,
            "every run: {} accepted, {} rejected, {} not evaluated, {} flow records{}",
            o.accepted,
            o.rejected,
            o.not_evaluated,
            o.flow_records,
            if self.identical {
                " (the same for every worker count)"
            } else {
                " — BUT THE RUNS DIFFERED: please report this"
            }
        );
        let _ = writeln!(
            s,
            "{:.0} s in all. Stages: CPU time of one thread; replays: wall time, which the \
             machine's other work lengthens (compare rows measured together)",
            self.seconds_total
        );
        s
    }
}

/// 1234567.0 → `1.23 M`.
fn si(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2} M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1} k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// What went wrong, for people.
#[derive(Debug)]
pub struct BenchError(pub String);

impl std::fmt::Display for BenchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BenchError {}

/// Median and minimum of `xs` (not empty).
fn median_min(xs: &[f64]) -> (f64, f64) {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    (v[(v.len() - 1) / 2], v[0])
}

/// Runs `f` `runs` times; the CPU seconds this thread spent in each (time spent
/// waiting for a CPU on a busy machine is not counted; the memory and caches the
/// machine's other work shares still are).
fn time_runs<R>(runs: usize, mut f: impl FnMut() -> R) -> Vec<f64> {
    (0..runs)
        .map(|_| {
            let t = crate::sys::thread_cpu_time();
            black_box(f());
            (crate::sys::thread_cpu_time().saturating_sub(t)).as_secs_f64()
        })
        .collect()
}

/// The machine this runs on, from /proc.
pub fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        cpuinfo.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == name && !v.trim().is_empty()).then(|| v.trim().to_string())
        })
    };
    let cpu = field("model name")
        .or_else(|| field("Model"))
        .or_else(|| field("Hardware"))
        .or_else(|| field("cpu"))
        .unwrap_or_else(|| "unknown CPU".to_string());
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".to_string())
    };
    let load = read("/proc/loadavg");
    Machine {
        cpu,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        kernel: read("/proc/sys/kernel/osrelease"),
        load_average: load
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        vpcgate_version: env!("CARGO_PKG_VERSION").to_string(),
        build: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
        .to_string(),
    }
}

/// CPU seconds (user + system) of this process so far, every thread included, from
/// /proc/self/stat (in USER_HZ ticks, 100 per second on Linux).
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // After the command name in parentheses: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace().skip(11);
    let utime: u64 = f.next()?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// Resets the kernel's peak-RSS mark of this process (Linux ≥ 4.0); false when it
/// could not.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The capture, as the reader sees it: every frame in one buffer, and every frame that
/// parses, with its flow shard.
struct Mix {
    pcap: Arc<[u8]>,
    frame_data: Vec<u8>,
    /// (link type, start, end) in `frame_data`.
    frames: Vec<(u32, usize, usize)>,
    packets: Vec<(Packet, Timestamp, u8)>,
}

fn read_mix(pcap: Arc<[u8]>, policy: &Policy) -> Result<Mix, BenchError> {
    let mut r = CaptureReader::from_reader("bench", Box::new(Cursor::new(pcap.clone())))
        .map_err(|e| BenchError(format!("the generated capture does not read: {e}")))?;
    let mut frame_data = Vec::with_capacity(pcap.len());
    let mut frames = Vec::new();
    let mut packets = Vec::new();
    while let Some(p) = r
        .next_packet()
        .map_err(|e| BenchError(format!("the generated capture does not read: {e}")))?
    {
        let start = frame_data.len();
        frame_data.extend_from_slice(p.data);
        frames.push((p.link_type, start, frame_data.len()));
        if let Ok(pkt) = packet::parse(p.link_type, p.data) {
            packets.push((pkt, p.ts, flow_shard(&pkt, policy)));
        }
    }
    Ok(Mix {
        pcap,
        frame_data,
        frames,
        packets,
    })
}

/// Generates the capture and measures everything; `progress` hears what is being
/// measured (for a line on standard error).
pub fn run(cfg: &BenchConfig, progress: &mut dyn FnMut(&str)) -> Result<BenchReport, BenchError> {
    let started = Instant::now();
    let machine = machine();

    // The capture.
    progress(&format!(
        "generating {} packets of {} flows in memory",
        cfg.packets, cfg.flows
    ));
    let synth = SynthConfig {
        packets: cfg.packets,
        flows: cfg.flows,
        ..Default::default()
    };
    let mut pcap = Vec::new();
    let t = Instant::now();
    let made = bulk::generate(cfg.vpc.clone(), &synth, &mut pcap)
        .map_err(|e| BenchError(format!("cannot generate traffic for {}: {e}", cfg.rules)))?;
    let generate_seconds = t.elapsed().as_secs_f64();
    let capture_bytes = pcap.len() as u64;

    let (eni_ids, metas) = eni_table(&[&cfg.vpc]);
    let vpc = Arc::new(cfg.vpc.clone());
    let policy = Arc::new(Policy::compile(vpc.clone(), &eni_ids));
    let pcap: Arc<[u8]> = Arc::from(pcap);
    let runs = cfg.runs.max(1);

    // The whole pipeline, from memory, flow log on; first, so that the peak memory
    // of the replays is theirs and the capture's, not what the stages left behind.
    let pipeline_only = reset_peak_rss();
    let Replays {
        outcome,
        mut identical,
        workers_note,
        secs: pipeline_secs,
    } = replays(cfg, &vpc, &pcap, runs, progress)?;
    let peak_rss_bytes = super::summary::peak_rss_bytes();

    let mix = read_mix(pcap, &policy)?;
    let frames = mix.frames.len() as u64;
    let n = frames.max(1) as f64;
    let input = InputInfo {
        rules: cfg.rules.clone(),
        packets: frames,
        ip_packets: mix.packets.len() as u64,
        flows_open: cfg.flows,
        flows: made.flows,
        rejected_flows: made.rejected_flows,
        capture_bytes,
        generate_seconds,
    };
    let per_shard = cfg
        .max_flows
        .map(|m| m.div_ceil(u64::from(FLOW_SHARDS)).min(u64::from(u32::MAX)) as u32);

    let (stages, verdicts) = measure_stages(&mix, &policy, &metas, per_shard, runs, progress);

    let pipeline = pipeline_times(pipeline_secs, &mix, n);
    let outcome = outcome.expect("at least one run");
    // The stages and the pipeline must agree on what the capture holds.
    identical &= outcome.packets == frames
        && outcome.accepted == verdicts[0]
        && outcome.rejected == verdicts[1];
    Ok(BenchReport {
        machine,
        input,
        runs,
        stages,
        pipeline,
        outcome,
        identical,
        peak_rss_bytes,
        peak_rss_pipeline_only: pipeline_only,
        seconds_total: started.elapsed().as_secs_f64(),
        workers_note,
    })
}

/// The pipeline's outcome and times for 1..=`workers_max` workers.
struct Replays {
    outcome: Option<Outcome>,
    /// Every run gave the same verdicts and records.
    identical: bool,
    workers_note: Option<String>,
    /// Per worker count: wall and CPU seconds of each run.
    secs: Vec<(usize, Vec<f64>, Vec<f64>)>,
}

/// The whole pipeline from memory, flow log on, `runs` times per worker count.
fn replays(
    cfg: &BenchConfig,
    vpc: &Arc<crate::model::Vpc>,
    pcap: &Arc<[u8]>,
    runs: usize,
    progress: &mut dyn FnMut(&str),
) -> Result<Replays, BenchError> {
    let mut outcome: Option<Outcome> = None;
    let mut identical = true;
    let mut workers_note = None;
    let mut pipeline_secs: Vec<(usize, Vec<f64>, Vec<f64>)> = Vec::new();
    for workers in 1..=cfg.workers_max.max(1) {
        progress(&format!(
            "replaying in memory with {workers} worker{}",
            if workers == 1 { "" } else { "s" }
        ));
        let rc = ReplayConfig {
            captures: vec![PathBuf::from("<generated in memory>")],
            rulesets: vec![RulesetAt {
                from: None,
                vpc: vpc.clone(),
                label: cfg.rules.clone(),
            }],
            flow_log: Some(PathBuf::from("/dev/null")),
            log_format: LogFormat::default_format(),
            interval: 600,
            nodata: true,
            verdicts: None,
            accepted: None,
            rejected: None,
            workers,
            progress: false,
            max_flows: cfg.max_flows,
            report: false,
        };
        let mut secs = Vec::new();
        let mut cpu = Vec::new();
        for _ in 0..runs {
            let c = process_cpu_seconds();
            let t = Instant::now();
            let s = run_in_memory(&rc, pcap.clone())
                .map_err(|e| BenchError(format!("the replay failed: {e}")))?;
            secs.push(t.elapsed().as_secs_f64());
            if let (Some(a), Some(b)) = (c, process_cpu_seconds()) {
                cpu.push(b - a);
            }
            if let Some(e) = s.capture_errors.first() {
                return Err(BenchError(format!(
                    "the replay could not read the capture: {e}"
                )));
            }
            if workers_note.is_none() {
                workers_note = s.workers_note.clone();
            }
            let o = Outcome {
                packets: s.packets,
                accepted: s.accepted,
                rejected: s.rejected,
                not_evaluated: s.not_evaluated,
                flow_records: s.flow_records,
            };
            match &outcome {
                None => outcome = Some(o),
                Some(first) => identical &= *first == o,
            }
        }
        pipeline_secs.push((workers, secs, cpu));
    }
    Ok(Replays {
        outcome,
        identical,
        workers_note,
        secs: pipeline_secs,
    })
}

/// Each stage alone on one core (read, parse, engine, aggregation, formatting, a
/// worker), and the engine's verdict counts (accepted, rejected, not evaluated).
fn measure_stages(
    mix: &Mix,
    policy: &Arc<Policy>,
    metas: &[crate::flowlog::EniMeta],
    per_shard: Option<u32>,
    runs: usize,
    progress: &mut dyn FnMut(&str),
) -> (Vec<StageTime>, [u64; 3]) {
    let frames = mix.frames.len() as u64;
    let n = frames.max(1) as f64;
    let mut stages = Vec::new();
    let mut stage = |key, label, secs: Vec<f64>| {
        let (med, best) = median_min(&secs);
        stages.push(StageTime {
            key,
            label,
            ns_per_packet: med * 1e9 / n,
            best_ns_per_packet: best * 1e9 / n,
        });
    };

    progress("measuring the stages on one core");
    // Reading: the records of the capture in blocks, as the pipeline's reader does.
    let secs = time_runs(runs, || {
        let mut r = CaptureReader::from_reader("bench", Box::new(Cursor::new(mix.pcap.clone())))
            .expect("it read before");
        let mut block = Block::default();
        let mut count = 0usize;
        loop {
            r.read_block(&mut block, BLOCK).expect("it read before");
            if block.records.is_empty() {
                break;
            }
            count += block.records.len();
        }
        assert_eq!(count as u64, frames, "the reader sees every record");
        count
    });
    stage("read", "read (records from memory)", secs);

    // Parsing every frame and giving it its flow shard, as the reader does.
    let secs = time_runs(runs, || {
        let mut x = 0u32;
        for &(lt, a, b) in &mix.frames {
            if let Ok(p) = packet::parse(lt, &mix.frame_data[a..b]) {
                x = x.wrapping_add(u32::from(flow_shard(&p, policy)));
            }
        }
        x
    });
    stage("parse", "parse + flow shard", secs);

    // The engine alone: NACLs, security groups, connection tracking.
    let mut observations: Vec<(Observation, Timestamp, u64, u8)> = Vec::new();
    let mut verdicts = [0u64; 3];
    let secs = time_runs(runs, || {
        let mut engine = Engine::new(policy.clone());
        engine.set_flow_limit(per_shard);
        let mut v = [0u64; 3];
        for chunk in mix.packets.chunks(BLOCK) {
            for (p, ts, shard) in chunk {
                let d = engine.process_in_shard(p, *ts, *shard);
                v[verdict_index(d.verdict)] += 1;
            }
            if let Some((_, ts, _)) = chunk.last() {
                engine.housekeeping(*ts);
            }
        }
        verdicts = v;
    });
    stage("engine", "engine (NACL, SG, conntrack)", secs);
    // Its observations, for the flow-log stages (untimed).
    {
        let mut engine = Engine::new(policy.clone());
        engine.set_flow_limit(per_shard);
        for (block, chunk) in mix.packets.chunks(BLOCK).enumerate() {
            for (i, (p, ts, shard)) in chunk.iter().enumerate() {
                let d = engine.process_in_shard(p, *ts, *shard);
                let seq = (block * BLOCK + i) as u64;
                observations.extend(d.obs.iter().flatten().map(|o| (*o, *ts, seq, *shard)));
            }
            if let Some((_, ts, _)) = chunk.last() {
                engine.housekeeping(*ts);
            }
        }
    }

    // Flow-log counting: every observation into its record, then every record out.
    let mut records: Vec<FlowRecord> = Vec::new();
    let secs = time_runs(runs, || {
        let mut agg = Aggregator::new(600);
        agg.set_limit(per_shard.map(|p| p.saturating_mul(2)));
        for (o, ts, seq, shard) in &observations {
            agg.observe_in_shard(o, *ts, *seq, *shard);
        }
        records.clear();
        agg.close_all(&mut records);
    });
    stage("flowlog_aggregation", "flow-log aggregation", secs);

    // Flow-log formatting: every record as a line of the default format.
    let format = LogFormat::default_format();
    let secs = time_runs(runs, || {
        let mut out = Vec::with_capacity(1 << 17);
        let mut bytes = 0usize;
        for r in &records {
            format.write_record(r, &metas[r.eni.get()], &mut out);
            if out.len() >= 1 << 16 {
                bytes += out.len();
                black_box(&out);
                out.clear();
            }
        }
        bytes + out.len()
    });
    stage("flowlog_format", "flow-log formatting", secs);

    // A worker: the engine and flow-log counting together, as the pipeline does.
    let secs = time_runs(runs, || {
        let mut engine = Engine::new(policy.clone());
        let mut agg = Aggregator::new(600);
        engine.set_flow_limit(per_shard);
        agg.set_limit(per_shard.map(|p| p.saturating_mul(2)));
        for (block, chunk) in mix.packets.chunks(BLOCK).enumerate() {
            for (i, (p, ts, shard)) in chunk.iter().enumerate() {
                let d = engine.process_in_shard(p, *ts, *shard);
                let seq = (block * BLOCK + i) as u64;
                for (o, c) in d.obs.iter().zip(d.conn) {
                    let Some(o) = o else { continue };
                    match c.and_then(|c| engine.flow_log_hint(c, o.direction)) {
                        Some(hint) => agg.observe_hinted(o, *ts, seq, *shard, hint),
                        None => agg.observe_in_shard(o, *ts, seq, *shard),
                    }
                }
            }
            if let Some((_, ts, _)) = chunk.last() {
                engine.housekeeping(*ts);
            }
        }
        let mut out = Vec::new();
        agg.close_all(&mut out);
        out.len()
    });
    stage("worker", "worker: engine + flow-log counting", secs);

    (stages, verdicts)
}

/// Packets per second for each worker count, and how the flow shards spread over the
/// workers.
fn pipeline_times(
    pipeline_secs: Vec<(usize, Vec<f64>, Vec<f64>)>,
    mix: &Mix,
    n: f64,
) -> Vec<PipelineTime> {
    // How the flows spread over workers.
    let mut per_shard_packets = vec![0u64; FLOW_SHARDS as usize];
    for (_, _, shard) in &mix.packets {
        per_shard_packets[*shard as usize] += 1;
    }
    let ip_packets: u64 = per_shard_packets.iter().sum();
    let mut pipeline: Vec<PipelineTime> = pipeline_secs
        .into_iter()
        .map(|(workers, secs, cpu)| {
            let (med, _) = median_min(&secs);
            let mut per_worker = vec![0u64; workers];
            for (shard, k) in per_shard_packets.iter().enumerate() {
                per_worker[shard % workers] += k;
            }
            let busiest = *per_worker.iter().max().unwrap_or(&0) as f64;
            PipelineTime {
                workers,
                packets_per_second: n / med,
                ns_per_packet: med * 1e9 / n,
                seconds: secs.iter().map(|s| (s * 1e4).round() / 1e4).collect(),
                cpu_ns_per_packet: (cpu.len() == secs.len()).then(|| median_min(&cpu).0 * 1e9 / n),
                speedup: 0.0,
                busiest_worker_share: busiest / (ip_packets as f64).max(1.0),
            }
        })
        .collect();

    let one = pipeline[0].packets_per_second;
    for p in &mut pipeline {
        p.speedup = p.packets_per_second / one;
    }
    pipeline
}

fn verdict_index(v: Verdict) -> usize {
    match v {
        Verdict::Accept => 0,
        Verdict::Reject => 1,
        Verdict::None => 2,
    }
}

/// `vpcgate bench --shards FILE`: how evenly `capture`'s packets spread over 2, 4, 8
/// and 16 workers under `vpc` (a worker owns the flow shards equal to its number
/// modulo the workers), as text. Non-first fragments count in their own shard here;
/// the pipeline sends them after their first fragment.
pub fn shard_spread(capture: &Path, vpc: Vpc) -> Result<String, BenchError> {
    let (eni_ids, _) = eni_table(&[&vpc]);
    let policy = Policy::compile(Arc::new(vpc), &eni_ids);
    let mut reader = CaptureReader::open(capture).map_err(|e| BenchError(e.to_string()))?;
    let mut per_shard = vec![0u64; FLOW_SHARDS as usize];
    while let Some(p) = reader
        .next_packet()
        .map_err(|e| BenchError(e.to_string()))?
    {
        if let Ok(pkt) = packet::parse(p.link_type, p.data) {
            per_shard[flow_shard(&pkt, &policy) as usize] += 1;
        }
    }
    let total = per_shard.iter().sum::<u64>();
    if total == 0 {
        return Err(BenchError(format!(
            "{}: no packet of it parses as IP",
            capture.display()
        )));
    }
    let total = total as f64;
    let mut s = format!("{} IP packets over {FLOW_SHARDS} flow shards\n", total);
    for workers in [2usize, 4, 8, 16] {
        let mut per = vec![0u64; workers];
        for (shard, n) in per_shard.iter().enumerate() {
            per[shard % workers] += n;
        }
        let busiest = *per.iter().max().unwrap_or(&0) as f64;
        s.push_str(&format!(
            "{workers:>2} workers: the busiest gets {:.1} % of the packets (even: {:.1} %)\n",
            100.0 * busiest / total,
            100.0 / workers as f64
        ));
    }
    let largest = *per_shard.iter().max().unwrap_or(&0) as f64;
    s.push_str(&format!(
        "largest shard: {:.2} % of the packets\n",
        100.0 * largest / total
    ));
    Ok(s)
}

/// `vpcgate bench --floor FILE`: the least work any packet filter must do with a
/// classic pcap file: read it with plain `read()` calls into one reused 4 MiB buffer
/// and walk every record and every packet's headers ([`floor::walk_records`]). One
/// line: packets, seconds, ns/packet, Mpps, MB/s and a checksum of the 5-tuples.
pub fn floor(path: &Path) -> Result<String, BenchError> {
    const BUFFER: usize = 4 << 20;
    let e = |what: &str, err: io::Error| BenchError(format!("{}: {what}: {err}", path.display()));
    let started = Instant::now();
    let mut file = std::fs::File::open(path).map_err(|err| e("cannot open", err))?;
    let mut buf = vec![0u8; BUFFER];
    let mut have = fill(&mut file, &mut buf).map_err(|err| e("read error", err))?;
    let hdr = floor::pcap_header(&buf[..have])
        .map_err(|m| BenchError(format!("{}: {m}", path.display())))?;
    let mut start = 24;
    let mut acc = floor::Walked::default();
    loop {
        // A record must fit the buffer with its header.
        let max_record = BUFFER - hdr.record_header;
        let used = floor::walk_records(&buf[start..have], &hdr, max_record, &mut acc)
            .map_err(|m| BenchError(format!("{}: {m}", path.display())))?;
        start += used;
        // Move the cut record (if any) to the front and read more behind it.
        buf.copy_within(start..have, 0);
        have -= start;
        start = 0;
        let k = fill(&mut file, &mut buf[have..]).map_err(|err| e("read error", err))?;
        if k == 0 {
            break;
        }
        have += k;
    }
    if have > 0 {
        return Err(BenchError(format!(
            "{}: the file ends inside a packet record ({have} bytes of it present; truncated capture?)",
            path.display()
        )));
    }
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    let ns = if acc.packets > 0 {
        secs * 1e9 / acc.packets as f64
    } else {
        0.0
    };
    Ok(format!(
        "{} packets ({} IP), {} bytes in {secs:.3} s: {ns:.1} ns/packet, {:.2} Mpps, {:.0} MB/s; checksum {:016x}",
        acc.packets,
        acc.ip,
        acc.bytes + 24,
        acc.packets as f64 / secs / 1e6,
        (acc.bytes + 24) as f64 / secs / 1e6,
        acc.checksum
    ))
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn fill(file: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts_is_a_sample() {
        assert_eq!(median_min(&[3.0, 1.0, 2.0]), (2.0, 1.0));
        // The lower middle: always a measured value.
        assert_eq!(median_min(&[4.0, 1.0, 3.0, 2.0]), (2.0, 1.0));
        assert_eq!(median_min(&[5.0]), (5.0, 5.0));
    }

    #[test]
    fn si_prefixes() {
        assert_eq!(si(1_234_567.0), "1.23 M");
        assert_eq!(si(12_345.0), "12.3 k");
        assert_eq!(si(999.0), "999");
    }
}
