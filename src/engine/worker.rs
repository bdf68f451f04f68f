//! [`Worker`]: the data plane of one owner of flow shards: the engine, the flow-log
//! aggregator and the counters, driven packet by packet.
//!
//! Everything that turns a stream of packets into verdicts and flow-log records lives
//! here, with no thread, file or clock: the threaded replay pipeline runs one per
//! thread, and tests, live mode and `diff` drive it directly. Time is the packets'.
//!
//! ```
//! use std::sync::Arc;
//! use vpcgate::engine::{Worker, WorkerConfig, flow_shard, Verdict};
//! use vpcgate::flowlog::{Collator, Run};
//! use vpcgate::wire::packet::{Packet, Timestamp, Fragment};
//! use vpcgate::policy::Policy;
//! let vpc = vpcgate::load::load_str("x.toml", r#"
//!     [vpc]
//!     id = "vpc-1"
//!     cidrs = ["10.0.0.0/16"]
//!     [[subnets]]
//!     id = "subnet-a"
//!     cidr = "10.0.1.0/24"
//!     [[security_groups]]
//!     id = "sg-web"
//!     ingress = [ { protocol = "tcp", ports = "443", cidr = "0.0.0.0/0" } ]
//!     [[network_interfaces]]
//!     id = "eni-web"
//!     subnet = "subnet-a"
//!     private_ips = ["10.0.1.10"]
//!     security_groups = ["sg-web"]
//! "#).unwrap();
//! let policy = Arc::new(Policy::compile(Arc::new(vpc), &["eni-web".to_string()]));
//! let mut w = Worker::new(policy.clone(), WorkerConfig::default());
//! let syn = Packet {
//!     src: "198.51.100.7".parse().unwrap(), dst: "10.0.1.10".parse().unwrap(),
//!     protocol: 6, src_port: 50000, dst_port: 443, icmp_type: 0, icmp_code: 0, icmp_id: 0,
//!     tcp_flags: 2, ip_len: 60, fragment: Fragment::None,
//! };
//! let t = Timestamp::from_secs_nanos(1_700_000_000, 0);
//! let d = w.handle(&syn, t, 0, flow_shard(&syn, &policy));
//! assert_eq!(d.verdict, Verdict::Accept);
//! // Close everything and collate: one ingress record.
//! let mut runs = Vec::new();
//! let totals = w.finish(&mut runs);
//! assert_eq!(totals.tally.accepted, 1);
//! let mut c = Collator::new(1, 600, false);
//! c.add(runs);
//! let mut n = 0;
//! c.finish::<()>(Some(1_700_000_000), &mut |_| { n += 1; Ok(()) }).unwrap();
//! assert_eq!(n, 1);
//! ```

use super::{Decision, Engine, EngineStats, Reason, Verdict, FLOW_SHARDS};
use crate::flowlog::{Aggregator, Run};
use crate::policy::Policy;
use crate::wire::packet::{Packet, Timestamp};
use hashbrown::HashMap;
use std::sync::Arc;

/// How a [`Worker`] is set up.
#[derive(Clone, Copy, Debug)]
pub struct WorkerConfig {
    /// The flow-log aggregation interval, seconds (60 or 600).
    pub interval: u32,
    /// The `--max-flows` bound of the whole run (split over [`FLOW_SHARDS`]).
    pub max_flows: Option<u64>,
    /// Whether packets are observed for flow logs at all.
    pub flow_log: bool,
}

impl Default for WorkerConfig {
    /// 600-s windows, no bound, flow logs on.
    fn default() -> WorkerConfig {
        WorkerConfig {
            interval: 600,
            max_flows: None,
            flow_log: true,
        }
    }
}

/// Verdicts counted by ruleset generation and reason.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    pub accepted: u64,
    pub rejected: u64,
    pub none: u64,
    pub rejects: HashMap<(usize, Reason), u64>,
    /// Of `rejects`, the packets of a live tracked connection at the rejecting ENI (a
    /// stateless NACL dropping a reply).
    pub rejects_tracked: HashMap<(usize, Reason), u64>,
    pub none_reasons: HashMap<(usize, Reason), u64>,
}

/// What a worker leaves when it finishes.
#[derive(Clone, Debug, Default)]
pub struct WorkerTotals {
    pub stats: EngineStats,
    pub tally: Tally,
    /// Packets counted only in SKIPDATA records (the bound on open records).
    pub flow_log_skipped: u64,
}

/// The engine, the aggregator and the counters of one shard owner.
pub struct Worker {
    engine: Engine,
    agg: Aggregator,
    cfg: WorkerConfig,
    generation: usize,
    /// The window index (capture seconds / interval) closed up to, exclusive.
    closed_up_to: u64,
    pub tally: Tally,
}

impl Worker {
    pub fn new(policy: Arc<Policy>, cfg: WorkerConfig) -> Worker {
        let mut engine = Engine::new(policy);
        let mut agg = Aggregator::new(cfg.interval);
        let per_shard = cfg.max_flows.map(|m| {
            m.div_ceil(u64::from(FLOW_SHARDS))
                .min(u64::from(u32::MAX / 2)) as u32
        });
        engine.set_flow_limit(per_shard);
        agg.set_limit(per_shard.map(|l| l * 2));
        Worker {
            engine,
            agg,
            cfg,
            generation: 0,
            closed_up_to: 0,
            tally: Tally::default(),
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &Arc<Policy> {
        self.engine.policy()
    }

    /// Security-group checks so far that allowed a packet of an untracked flow
    /// ([`EngineStats::untracked`]): a caller that compares it before and after
    /// [`Worker::handle`] knows whether that packet passed as untracked.
    pub fn untracked_checks(&self) -> u64 {
        self.engine.core.stats.untracked
    }

    /// Makes this worker's engine a counterfactual one (not AWS; see
    /// [`super::Counterfactual`]).
    pub fn set_counterfactual(&mut self, cf: super::Counterfactual) {
        self.engine.set_counterfactual(cf);
    }

    /// From the next packet on, ruleset generation `generation` applies (tracked
    /// connections survive, EMULATION §4).
    pub fn set_policy(&mut self, policy: Arc<Policy>, generation: usize) {
        self.generation = generation;
        self.engine.set_policy(policy, generation);
    }

    /// Judges `pkt` at capture time `ts` (`seq`: its place in the whole input, for
    /// record order; `shard`: its [`super::flow_shard`]), observes it for flow logs and
    /// counts its verdict.
    #[inline]
    pub fn handle(&mut self, pkt: &Packet, ts: Timestamp, seq: u64, shard: u8) -> Decision {
        self.handle_traced(pkt, ts, seq, shard, &mut super::trace::NoTrace)
    }

    /// [`Worker::handle`], telling `tracer` every check (see [`super::trace`]).
    #[inline]
    pub fn handle_traced<T: super::trace::Tracer>(
        &mut self,
        pkt: &Packet,
        ts: Timestamp,
        seq: u64,
        shard: u8,
        tracer: &mut T,
    ) -> Decision {
        let d = self.engine.process_in_shard_traced(pkt, ts, shard, tracer);
        if self.cfg.flow_log {
            for (o, c) in d.obs.iter().zip(d.conn) {
                let Some(o) = o else { continue };
                match c.and_then(|c| self.engine.flow_log_hint(c, o.direction)) {
                    Some(hint) => self.agg.observe_hinted(o, ts, seq, shard, hint),
                    None => self.agg.observe_in_shard(o, ts, seq, shard),
                }
            }
        }
        let t = &mut self.tally;
        let g = self.generation;
        match d.verdict {
            Verdict::Accept => t.accepted += 1,
            Verdict::Reject => {
                t.rejected += 1;
                *t.rejects.entry((g, d.reason)).or_insert(0) += 1;
                let tracked = match d.reason {
                    Reason::NaclOutbound { .. } | Reason::SgEgress { .. } => d.tracked[0],
                    Reason::NaclInbound { .. } | Reason::SgIngress { .. } => d.tracked[1],
                    _ => false,
                };
                if tracked {
                    *t.rejects_tracked.entry((g, d.reason)).or_insert(0) += 1;
                }
            }
            Verdict::None => {
                t.none += 1;
                *t.none_reasons.entry((g, d.reason)).or_insert(0) += 1
            }
        }
        d
    }

    /// Frees expired state at capture time `now`.
    pub fn housekeeping(&mut self, now: Timestamp) {
        self.engine.housekeeping(now);
    }

    /// Capture time reached `watermark` (seconds) for every shard: the windows that
    /// ended by then are closed into `out`, once per new window.
    pub fn advance(&mut self, watermark: u64, out: &mut Vec<Run>) {
        let window = watermark / u64::from(self.cfg.interval);
        if window > self.closed_up_to {
            self.closed_up_to = window;
            self.close(Some(watermark), out);
        }
    }

    /// Closes every window into `out` and returns the counters.
    pub fn finish(mut self, out: &mut Vec<Run>) -> WorkerTotals {
        self.close(None, out);
        WorkerTotals {
            stats: self.engine.stats(),
            flow_log_skipped: self.agg.skipped_packets(),
            tally: self.tally,
        }
    }

    /// Closes the windows that ended by `watermark` (every window with `None`) into
    /// runs.
    fn close(&mut self, watermark: Option<u64>, out: &mut Vec<Run>) {
        let (mut windows, mut skipdata) = (Vec::new(), Vec::new());
        match watermark {
            Some(w) => self
                .agg
                .close_windows_before(w, &mut windows, &mut skipdata),
            None => self.agg.close_all_windows(&mut windows, &mut skipdata),
        }
        out.extend(
            windows
                .into_iter()
                .filter(|w| !w.is_empty())
                .map(Run::Window),
        );
        if !skipdata.is_empty() {
            skipdata.sort_unstable();
            out.push(Run::Records(skipdata));
        }
    }
}
