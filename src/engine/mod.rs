//! The data plane of one worker: `(packet, capture time) → verdict + flow-log
//! observations` (the manual, "Where a packet is evaluated" to "Network ACLs").
//!
//! The engine is pure: it owns its connection-tracking table, its fragment memory
//! and its counters, but no thread, file or clock. The pipeline feeds it packets in
//! capture order (per flow) and gives it a new [`Policy`] when the ruleset changes.
//!
//! The path of a packet, as manual: "Where a packet is evaluated" fixes it:
//!
//! | source | destination | checks, in order |
//! |---|---|---|
//! | ENI A | ENI B, same subnet | SG(A) egress → SG(B) ingress |
//! | ENI A | ENI B, other subnet | SG(A) egress → NACL(A) outbound → NACL(B) inbound → SG(B) ingress |
//! | ENI A | outside | SG(A) egress → NACL(A) outbound |
//! | outside | ENI B | NACL(B) inbound → SG(B) ingress |
//!
//! ```
//! use std::sync::Arc;
//! use vpcgate::{engine::*, model::*, wire::packet::*, policy::Policy};
//! let mut vpc = Vpc::new("vpc-1");
//! vpc.cidrs.push("10.0.0.0/16".parse().unwrap());
//! vpc.subnets.push(Subnet::new("subnet-a", "10.0.1.0/24".parse().unwrap()));
//! let mut sg = SecurityGroup::new("sg-web"); // no inbound rules: nothing comes in
//! vpc.security_groups.push(sg);
//! let mut eni = NetworkInterface::new("eni-web", "subnet-a", "10.0.1.10".parse().unwrap());
//! eni.security_groups.push("sg-web".into());
//! vpc.network_interfaces.push(eni);
//! vpc.validate().unwrap();
//! let policy = Arc::new(Policy::compile(Arc::new(vpc), &["eni-web".to_string()]));
//! let mut engine = Engine::new(policy);
//! let syn = Packet {
//!     src: "198.51.100.7".parse().unwrap(), dst: "10.0.1.10".parse().unwrap(),
//!     protocol: 6, src_port: 50000, dst_port: 443, icmp_type: 0, icmp_code: 0, icmp_id: 0,
//!     tcp_flags: tcp_flags::SYN, ip_len: 60, fragment: Fragment::None,
//! };
//! let d = engine.process(&syn, Timestamp::from_secs_nanos(1_700_000_000, 0));
//! assert_eq!(d.verdict, Verdict::Reject);
//! assert_eq!(d.reason_text(engine.policy()), "sg-ingress eni-web no rule");
//! ```
#![deny(clippy::disallowed_methods, clippy::disallowed_types)]

pub mod trace;
mod worker;

pub use worker::{Tally, Worker, WorkerConfig, WorkerTotals};

use crate::conntrack::{ConnKey, ConnRef, ConnState, ConnTable};
use crate::flowlog::Observation;
use crate::model::{Action, Direction, EniIdx};
use crate::model::{PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP};
use crate::policy::{ExemptService, NaclRuleRef, Policy, SgRuleRef};
use crate::wire::packet::{Fragment, Packet, Timestamp};
use hashbrown::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use crate::wire::packet::NANOS_PER_SEC as NS;
/// How long a first fragment's verdict is remembered for its later fragments.
pub const FRAGMENT_MEMORY_SECS: u64 = 30;
/// At most this many remembered first fragments; more are not remembered (their later
/// fragments are then judged with unknown ports).
pub const FRAGMENT_MEMORY_MAX: usize = 65_536;
/// Expired tracked connections are swept every this many seconds of capture time.
const SWEEP_EVERY_SECS: u64 = 10;

/// The outcome for one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verdict {
    Accept,
    Reject,
    /// Not evaluated: not IP, malformed, exempt, or no ENI involved.
    None,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Accept => "ACCEPT",
            Verdict::Reject => "REJECT",
            Verdict::None => "NONE",
        }
    }
}

/// A counterfactual data plane, for teaching: what would change if security groups
/// or network ACLs worked the other way. Not AWS: `replay --stateless-sg` and
/// `--stateful-nacl` mark every output so. [`Counterfactual::default`] is AWS's
/// behaviour, and costs nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counterfactual {
    /// Security groups judge every packet by their rules alone, as if nothing were
    /// tracked: no connection is created or consulted.
    pub stateless_sg: bool,
    /// A network ACL lets through a packet that answers a connection the security
    /// group tracks at that ENI (a reply: the connection's first packet went the
    /// other way, and passed the NACLs), as if the NACL tracked too; everything else
    /// by its rules. Flows
    /// the group does not track (untracked flows, ENIs without groups, ICMP errors)
    /// get nothing from it.
    pub stateful_nacl: bool,
}

impl Counterfactual {
    /// AWS's behaviour: no counterfactual.
    pub fn is_aws(self) -> bool {
        self == Counterfactual::default()
    }

    /// `stateless security groups`, `stateful network ACLs`, or both; empty for AWS.
    pub fn describe(self) -> String {
        let mut v = Vec::new();
        if self.stateless_sg {
            v.push("stateless security groups");
        }
        if self.stateful_nacl {
            v.push("stateful network ACLs");
        }
        v.join(" and ")
    }
}

/// Why a packet got its verdict: for REJECT the first check that denied it, for
/// NONE why it was not evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    Accepted,
    NaclInbound {
        rule: NaclRuleRef,
        rule_number: u32,
    },
    NaclOutbound {
        rule: NaclRuleRef,
        rule_number: u32,
    },
    /// No rule of the ENI's groups allowed it.
    SgIngress {
        eni: EniIdx,
    },
    SgEgress {
        eni: EniIdx,
    },
    /// It would have created a tracked connection, but the allowance was used up.
    ConntrackFull {
        eni: EniIdx,
    },
    Exempt(ExemptService),
    /// Neither address belongs to an ENI of the VPC.
    NoEni,
}

/// What happened to one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    pub reason: Reason,
    /// Up to two flow-log observations: the source ENI's egress, then the destination
    /// ENI's ingress.
    pub obs: [Option<Observation>; 2],
    /// The tracked connection each observation's packet belongs to, where there is
    /// one: [`Engine::flow_log_hint`] takes it, until the next packet.
    pub conn: [Option<ConnRef>; 2],
    /// Per side (the source ENI's egress, the destination ENI's ingress): true when the
    /// packet belonged to a live tracked connection at that ENI, also when a NACL then
    /// dropped it (a reply that a stateless NACL drops).
    pub tracked: [bool; 2],
}

impl Decision {
    fn none(reason: Reason) -> Decision {
        Decision {
            verdict: Verdict::None,
            reason,
            obs: [None, None],
            conn: [None, None],
            tracked: [false, false],
        }
    }

    /// The `reason` text of a verdict line (CLI.md), e.g. `nacl-inbound acl-0abc rule
    /// 32767`, `sg-ingress eni-0abc no rule`, `conntrack-full eni-0abc`,
    /// `exempt amazon-dns`, `no-eni`. Empty for an accepted packet.
    pub fn reason_text(&self, policy: &Policy) -> String {
        reason_text(self.reason, policy)
    }
}

/// See [`Decision::reason_text`].
pub fn reason_text(reason: Reason, policy: &Policy) -> String {
    let vpc = &policy.vpc;
    let eni = |i: EniIdx| {
        vpc.network_interfaces
            .get(i.get())
            .map_or("?", |e| e.id.as_str())
    };
    let acl = |r: NaclRuleRef| {
        vpc.network_acls
            .get(r.acl as usize)
            .map_or("?", |a| a.id.as_str())
    };
    match reason {
        Reason::Accepted => String::new(),
        Reason::NaclInbound { rule, rule_number } => {
            format!("nacl-inbound {} rule {rule_number}", acl(rule))
        }
        Reason::NaclOutbound { rule, rule_number } => {
            format!("nacl-outbound {} rule {rule_number}", acl(rule))
        }
        Reason::SgIngress { eni: e } => format!("sg-ingress {} no rule", eni(e)),
        Reason::SgEgress { eni: e } => format!("sg-egress {} no rule", eni(e)),
        Reason::ConntrackFull { eni: e } => format!("conntrack-full {}", eni(e)),
        Reason::Exempt(s) => format!("exempt {}", s.name()),
        Reason::NoEni => "no-eni".to_string(),
    }
}

/// How a security group let a packet through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SgOutcome {
    /// A live tracked connection allowed it.
    Tracked,
    /// A rule allowed it and a tracked connection was created.
    New,
    /// A rule allowed it and the flow is untracked (§2.2).
    Untracked,
    /// A rule allowed it, but its ports are unknown (a fragment), or groups are
    /// stateless ([`Counterfactual::stateless_sg`]): not tracked.
    NoPorts,
    /// A rule allowed an ICMP message that is not a query (an error, a redirect, ...)
    /// or a query reply without its request's entry: such messages are never tracked.
    NotTracked,
    /// The ENI has no security group: no check, no tracking (manual: "The model").
    NoGroup,
    Denied,
    Full,
}

/// How connection tracking treats a packet (manual: "Connection tracking").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tracking {
    /// TCP, UDP and other protocols: an entry matches in either direction.
    Flow,
    /// An ICMP query (echo request, ...): it may create an entry, and refreshes one it
    /// created, in its own direction only.
    IcmpQuery,
    /// An ICMP query reply: allowed by the entry of its query, opened the other way.
    IcmpReply,
    /// Any other ICMP message (errors, redirects, router and neighbour discovery, ...):
    /// never tracked, judged by the rules each time.
    Never,
}

/// The ICMP query and reply types that connection tracking knows, as
/// `(query, reply)`: echo, timestamp, information and address mask for ICMPv4
/// (RFC 792, RFC 950); echo and node information for ICMPv6 (RFC 4443, RFC 4620).
/// The same pairs as Linux's conntrack.
const ICMP_QUERIES: [(u8, u8); 4] = [(8, 0), (13, 14), (15, 16), (17, 18)];
const ICMPV6_QUERIES: [(u8, u8); 2] = [(128, 129), (139, 140)];

/// How tracking treats `pkt`, and for ICMP queries and replies the query type that
/// names their entry.
#[inline]
fn tracking(pkt: &Packet) -> (Tracking, u8) {
    let pairs: &[(u8, u8)] = match pkt.protocol {
        PROTO_ICMP => &ICMP_QUERIES,
        PROTO_ICMPV6 => &ICMPV6_QUERIES,
        _ => return (Tracking::Flow, 0),
    };
    for &(query, reply) in pairs {
        if pkt.icmp_type == query {
            return (Tracking::IcmpQuery, query);
        }
        if pkt.icmp_type == reply {
            return (Tracking::IcmpReply, query);
        }
    }
    (Tracking::Never, 0)
}

/// Counters of one engine; summed over workers for the summary.
#[derive(Clone, Debug, Default)]
pub struct EngineStats {
    /// Hits per NACL entry, per ruleset generation.
    pub nacl_hits: Vec<HashMap<NaclRuleRef, u64>>,
    /// Hits per SG rule (the first allowing rule of the ENI), per ruleset generation.
    pub sg_hits: Vec<HashMap<SgRuleRef, u64>>,
    /// Packets allowed by a live tracked connection.
    pub conntrack_hits: u64,
    /// Tracked connections created.
    pub conntrack_created: u64,
    /// Packets of untracked flows allowed by the rules.
    pub untracked: u64,
    /// ICMP packets allowed by a rule that tracking never follows: errors and other
    /// non-query messages, and query replies without their query's entry.
    pub icmp_not_tracked: u64,
    /// ENI checks passed at an ENI without security groups (no SG check, no tracking).
    pub no_security_group: u64,
    /// Packets rejected because the tracked-connection allowance was used up
    /// (`conntrack_allowance_exceeded`).
    pub conntrack_allowance_exceeded: u64,
    /// Later fragments that took their first fragment's verdict, and those judged
    /// without one.
    pub fragments_remembered: u64,
    pub fragments_orphaned: u64,
    /// The most tracked connections alive at once (sampled at sweeps).
    pub conntrack_peak: u64,
    /// Packets rejected because the global `--max-flows` limit was reached.
    pub flow_limit_exceeded: u64,
}

impl EngineStats {
    /// Adds another worker's counters.
    pub fn merge(&mut self, o: &EngineStats) {
        for (dst, src) in [(&mut self.nacl_hits, &o.nacl_hits)] {
            if dst.len() < src.len() {
                dst.resize(src.len(), HashMap::new());
            }
            for (d, s) in dst.iter_mut().zip(src) {
                for (k, v) in s {
                    *d.entry(*k).or_insert(0) += v;
                }
            }
        }
        if self.sg_hits.len() < o.sg_hits.len() {
            self.sg_hits.resize(o.sg_hits.len(), HashMap::new());
        }
        for (d, s) in self.sg_hits.iter_mut().zip(&o.sg_hits) {
            for (k, v) in s {
                *d.entry(*k).or_insert(0) += v;
            }
        }
        self.conntrack_hits += o.conntrack_hits;
        self.conntrack_created += o.conntrack_created;
        self.untracked += o.untracked;
        self.icmp_not_tracked += o.icmp_not_tracked;
        self.no_security_group += o.no_security_group;
        self.conntrack_allowance_exceeded += o.conntrack_allowance_exceeded;
        self.fragments_remembered += o.fragments_remembered;
        self.fragments_orphaned += o.fragments_orphaned;
        self.conntrack_peak += o.conntrack_peak;
        self.flow_limit_exceeded += o.flow_limit_exceeded;
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct FragKey {
    src: IpAddr,
    dst: IpAddr,
    protocol: u8,
    id: u32,
}

#[derive(Clone, Copy, Debug)]
struct FragMemory {
    at: u64,
    decision: Decision,
}
pub use crate::conntrack::FLOW_SHARDS;

/// The flow hash of `p` under `policy`: symmetric in source and destination (see
/// [`FLOW_SHARDS`]). An ENI's public IPv4 address counts as its primary private one,
/// as in connection tracking ([`Policy::canonical_addr`]), so a capture that holds
/// both views of a connection (outside and inside the internet gateway) keeps it on
/// one worker.
#[inline]
pub fn flow_hash(p: &Packet, policy: &Policy) -> u64 {
    fn fold(a: IpAddr) -> u64 {
        match a {
            IpAddr::V4(v) => u32::from(v) as u64,
            IpAddr::V6(v) => {
                let x = u128::from(v);
                (x as u64) ^ ((x >> 64) as u64)
            }
        }
    }
    let (a, b) = (
        fold(policy.canonical_addr(p.src)),
        fold(policy.canonical_addr(p.dst)),
    );
    // Ports for TCP and UDP only: an ICMP flow-log record counts every echo id
    // between two hosts, so ICMP keeps to its address pair.
    let (x, y) = match p.protocol {
        PROTO_TCP | PROTO_UDP => (p.src_port, p.dst_port),
        _ => (0, 0),
    };
    // The port pair, unordered; 0 for ports 0 and 0.
    let ports = u64::from(x.min(y)) << 16 | u64::from(x.max(y));
    let ports = ports.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17);
    let mut h = a.wrapping_add(b) ^ (a ^ b).rotate_left(29) ^ (p.protocol as u64) << 56 ^ ports;
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h
}

/// The flow shard of `p`, below [`FLOW_SHARDS`]: for a non-first fragment, the shard
/// of its address pair and protocol (the pipeline routes those by their first
/// fragment instead).
#[inline]
pub fn flow_shard(p: &Packet, policy: &Policy) -> u8 {
    (flow_hash(p, policy) % u64::from(FLOW_SHARDS)) as u8
}

/// One worker's data plane.
pub struct Engine {
    policy: Arc<Policy>,
    core: Core,
}

/// The engine's state, apart from the policy it reads, so that the per-packet path
/// borrows the policy instead of cloning its `Arc` (no atomic per packet).
struct Core {
    generation: usize,
    /// This ruleset's index of each ENI number of the run (`None`: not in this
    /// ruleset).
    by_number: Vec<Option<EniIdx>>,
    ct: ConnTable,
    frags: HashMap<FragKey, FragMemory, foldhash::fast::RandomState>,
    last_sweep: u64,
    pub stats: EngineStats,
    /// Hits per NACL and SG slot ([`Policy::nacl_slot`]), per ruleset generation,
    /// with the policy that names the slots: dense counters, so the per-packet path
    /// hashes nothing. [`Engine::stats`] turns them into rule references.
    nacl_counts: Vec<Vec<u64>>,
    sg_counts: Vec<Vec<u64>>,
    policies: Vec<Option<Arc<Policy>>>,
    /// Tracked connections allowed per flow shard (`--max-flows` / [`FLOW_SHARDS`]).
    shard_limit: Option<u32>,
    /// Not AWS, when set: see [`Counterfactual`].
    cf: Counterfactual,
}

impl Engine {
    pub fn new(policy: Arc<Policy>) -> Engine {
        let mut e = Engine {
            policy: policy.clone(),
            core: Core {
                by_number: Vec::new(),
                generation: 0,
                ct: ConnTable::new(),
                frags: HashMap::default(),
                last_sweep: 0,
                stats: EngineStats::default(),
                nacl_counts: Vec::new(),
                sg_counts: Vec::new(),
                policies: Vec::new(),
                shard_limit: None,
                cf: Counterfactual::default(),
            },
        };
        e.set_policy(policy, 0);
        e
    }

    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }

    /// Tracked connections alive in this engine.
    pub fn tracked(&self) -> usize {
        self.core.ct.len()
    }

    /// The engine's counters.
    pub fn stats(&self) -> EngineStats {
        let mut s = self.core.stats.clone();
        let gens = self.core.policies.len();
        s.nacl_hits = vec![HashMap::new(); gens];
        s.sg_hits = vec![HashMap::new(); gens];
        for (g, p) in self.core.policies.iter().enumerate() {
            let Some(p) = p else { continue };
            for (r, &n) in p.nacl_slot_refs().iter().zip(&self.core.nacl_counts[g]) {
                if n > 0 {
                    s.nacl_hits[g].insert(*r, n);
                }
            }
            for (r, &n) in p.sg_slot_refs().iter().zip(&self.core.sg_counts[g]) {
                if n > 0 {
                    s.sg_hits[g].insert(*r, n);
                }
            }
        }
        s
    }

    /// Frees expired state; the pipeline calls it as capture time advances.
    pub fn housekeeping(&mut self, now: Timestamp) {
        self.core.housekeeping(&self.policy, now)
    }

    /// Evaluates one IP packet at capture time `ts`.
    #[inline]
    pub fn process(&mut self, pkt: &Packet, ts: Timestamp) -> Decision {
        self.core.process(
            &self.policy,
            pkt,
            ts,
            flow_shard(pkt, &self.policy),
            &mut trace::NoTrace,
        )
    }

    /// [`Engine::process`], telling `tracer` every check of the packet's path (see
    /// [`trace`]): the same code, the same decision and the same state changes.
    pub fn process_traced<T: trace::Tracer>(
        &mut self,
        pkt: &Packet,
        ts: Timestamp,
        tracer: &mut T,
    ) -> Decision {
        let shard = flow_shard(pkt, &self.policy);
        self.core.process(&self.policy, pkt, ts, shard, tracer)
    }

    /// [`Engine::process_traced`] for a packet whose [`flow_shard`] the caller computed.
    #[inline]
    pub fn process_in_shard_traced<T: trace::Tracer>(
        &mut self,
        pkt: &Packet,
        ts: Timestamp,
        shard: u8,
        tracer: &mut T,
    ) -> Decision {
        self.core.process(&self.policy, pkt, ts, shard, tracer)
    }

    /// [`Engine::process`] for a packet whose [`flow_shard`] the caller computed.
    #[inline]
    pub fn process_in_shard(&mut self, pkt: &Packet, ts: Timestamp, shard: u8) -> Decision {
        debug_assert!(
            matches!(pkt.fragment, Fragment::Later { .. })
                || shard == flow_shard(pkt, &self.policy)
        );
        self.core
            .process(&self.policy, pkt, ts, shard, &mut trace::NoTrace)
    }

    /// Where the flow-log record of the tracked connection `conn` (from the last
    /// [`Decision`]) in direction `dir` was last found: the hint that
    /// [`crate::flowlog::Aggregator::observe_hinted`] reads and updates. `None` once
    /// `conn` is stale (another packet was processed since).
    #[inline]
    pub fn flow_log_hint(&mut self, conn: ConnRef, dir: Direction) -> Option<&mut u32> {
        self.core
            .ct
            .entry_mut(conn)
            .map(|e| &mut e.flow_log[dir as usize])
    }

    /// Limits the tracked connections of this engine to `per_shard` in each flow
    /// shard (`None`: no limit). A packet that would create an entry in a full shard
    /// is rejected as `conntrack-full` and counted in
    /// [`EngineStats::flow_limit_exceeded`]; live entries keep working.
    pub fn set_flow_limit(&mut self, per_shard: Option<u32>) {
        self.core.shard_limit = per_shard;
    }

    /// Makes this engine a counterfactual one (not AWS), from the next packet on.
    pub fn set_counterfactual(&mut self, cf: Counterfactual) {
        self.core.cf = cf;
    }

    /// Switches to a new ruleset from the next packet on (`--rules-at`). Live tracked
    /// connections keep passing until they time out or close; untracked flows and
    /// NACLs follow the new rules at once (manual: "Connection tracking").
    pub fn set_policy(&mut self, policy: Arc<Policy>, generation: usize) {
        let n = policy
            .eni_number
            .iter()
            .map(|n| n.get() + 1)
            .max()
            .unwrap_or(0);
        let mut by_number = vec![None; n];
        for (i, num) in policy.eni_number.iter().enumerate() {
            by_number[num.get()] = Some(EniIdx(i as u32));
        }
        let core = &mut self.core;
        core.generation = generation;
        if core.policies.len() <= generation {
            core.policies.resize(generation + 1, None);
            core.nacl_counts.resize(generation + 1, Vec::new());
            core.sg_counts.resize(generation + 1, Vec::new());
        }
        if !matches!(&core.policies[generation], Some(p) if Arc::ptr_eq(p, &policy)) {
            core.policies[generation] = Some(policy.clone());
            core.nacl_counts[generation] = vec![0; policy.nacl_slots()];
            core.sg_counts[generation] = vec![0; policy.sg_slots()];
        }
        core.ct.regroup(&|num| {
            let local = (*by_number.get(num.get())?)?;
            Some(policy.eni_limit_group[local.get()])
        });
        core.by_number = by_number;
        // Remembered fragment verdicts name rules of the old ruleset.
        core.frags.clear();
        self.policy = policy;
    }
}

impl Core {
    /// Sweeps expired tracked connections (see [`ConnTable::sweep`]).
    fn sweep(&mut self, policy: &Policy, now: u64, every_secs: u64, force: bool) {
        let by_number = &self.by_number;
        self.ct.sweep(
            now,
            every_secs,
            force,
            &|num| match by_number.get(num.get()) {
                Some(&Some(l)) => policy.eni_timeouts[l.get()],
                _ => policy.vpc.conntrack,
            },
        );
    }

    fn housekeeping(&mut self, policy: &Policy, now: Timestamp) {
        let now = now.0;
        if now.saturating_sub(self.last_sweep) < SWEEP_EVERY_SECS * NS {
            return;
        }
        self.stats.conntrack_peak = self.stats.conntrack_peak.max(self.ct.len() as u64);
        self.sweep(policy, now, SWEEP_EVERY_SECS, true);
        self.last_sweep = now;
        self.frags
            .retain(|_, f| now.saturating_sub(f.at) <= FRAGMENT_MEMORY_SECS * NS);
    }

    /// One packet's path. `tr` watches every check (behind `if T::ON`, so that
    /// replay's copy, with [`trace::NoTrace`], has no tracing code at all).
    fn process<T: trace::Tracer>(
        &mut self,
        policy: &Policy,
        pkt: &Packet,
        ts: Timestamp,
        shard: u8,
        tr: &mut T,
    ) -> Decision {
        // Exempt services: never filtered, never logged.
        let (src_info, dst_info) = (policy.addr_info(pkt.src), policy.addr_info(pkt.dst));
        if let Some(s) = dst_info.exempt.or(src_info.exempt) {
            if T::ON {
                tr.step(trace::Step::Exempt(s));
            }
            return Decision::none(Reason::Exempt(s));
        }
        if pkt.protocol == PROTO_UDP
            && (67..=68).contains(&pkt.src_port)
            && (67..=68).contains(&pkt.dst_port)
        {
            if T::ON {
                tr.step(trace::Step::Exempt(ExemptService::Dhcp));
            }
            return Decision::none(Reason::Exempt(ExemptService::Dhcp));
        }
        let (src, dst) = (src_info.owner, dst_info.owner);
        if src.is_none() && dst.is_none() {
            if T::ON {
                tr.step(trace::Step::NoEni);
            }
            return Decision::none(Reason::NoEni);
        }

        // A later fragment takes its first fragment's verdict.
        if let Fragment::Later { id } = pkt.fragment {
            let key = FragKey {
                src: pkt.src,
                dst: pkt.dst,
                protocol: pkt.protocol,
                id,
            };
            if let Some(m) = self.frags.get(&key) {
                if ts.0.saturating_sub(m.at) <= FRAGMENT_MEMORY_SECS * NS {
                    self.stats.fragments_remembered += 1;
                    if T::ON {
                        tr.step(trace::Step::Fragment);
                    }
                    let mut d = m.decision;
                    d.conn = [None, None];
                    for o in d.obs.iter_mut().flatten() {
                        o.bytes = pkt.ip_len;
                        o.tcp_flags = 0;
                    }
                    return d;
                }
            }
            self.stats.fragments_orphaned += 1;
        }

        let now = ts.0;
        let mut obs: [Option<Observation>; 2] = [None, None];
        let mut conn: [Option<ConnRef>; 2] = [None, None];
        let mut tracked = [false, false];
        // Public addressing goes through the internet gateway: NACLs apply on both
        // sides even within one subnet.
        let via_public = src.is_some_and(|o| o.is_public()) || dst.is_some_and(|o| o.is_public());
        let cross_subnet = match (src, dst) {
            (Some(a), Some(b)) => {
                via_public || policy.eni_subnet[a.eni.get()] != policy.eni_subnet[b.eni.get()]
            }
            _ => true,
        };
        let mut verdict = Verdict::Accept;
        let mut reason = Reason::Accepted;
        if T::ON {
            trace::trace_path(tr, src, dst, pkt, cross_subnet);
        }

        if let Some(a) = src {
            let eni = a.eni;
            let mut ok = true;
            let before = if T::ON && T::KEYS {
                self.trace_key(policy, eni, Direction::Egress, pkt)
            } else {
                None
            };
            let met = if T::ON { self.trace_met(before) } else { None };
            let (outcome, cref) =
                self.sg_check(policy, eni, Direction::Egress, pkt, now, shard, None);
            if T::ON {
                self.trace_sg(
                    tr,
                    policy,
                    eni,
                    Direction::Egress,
                    pkt,
                    outcome,
                    cref,
                    before,
                    met,
                );
            }
            conn[0] = cref;
            tracked[0] = outcome == SgOutcome::Tracked;
            match outcome {
                SgOutcome::Denied => {
                    ok = false;
                    reason = Reason::SgEgress { eni };
                }
                SgOutcome::Full => {
                    ok = false;
                    reason = Reason::ConntrackFull { eni };
                }
                _ => {}
            }
            if ok && cross_subnet {
                let checked = self.nacl_check(policy, eni, Direction::Egress, pkt, cref, now);
                if T::ON {
                    let passed = checked.is_ok();
                    trace::trace_nacl(tr, policy, eni, Direction::Egress, pkt, tracked[0], passed);
                }
                if let Err(r) = checked {
                    ok = false;
                    reason = r;
                }
            }
            // 1: to a resource of this VPC (an ENI, or any address of its CIDRs);
            // 8: through the internet gateway.
            let inside = dst.is_some() || policy.vpc.cidrs.iter().any(|c| c.contains(&pkt.dst));
            let traffic_path = if inside && !via_public { 1 } else { 8 };
            obs[0] = Some(observation(
                policy,
                eni,
                Direction::Egress,
                ok,
                pkt,
                Some(traffic_path),
            ));
            if !ok {
                verdict = Verdict::Reject;
            }
        }
        if verdict == Verdict::Accept {
            if let Some(b) = dst {
                let eni = b.eni;
                let mut ok = true;
                // The NACL comes first here; its cache is in the connection's entry.
                let found = (pkt.ports_known() && !policy.eni_no_sg[eni.get()]).then(|| {
                    let key = conn_key(policy, eni, Direction::Ingress, pkt);
                    (key, self.ct.find(&key))
                });
                // Whether a live entry waits for it (the SG check below says for sure).
                tracked[1] = found.is_some_and(|f| f.1.is_some());
                let met = if T::ON { self.trace_met(found) } else { None };
                if cross_subnet {
                    let checked = self.nacl_check(
                        policy,
                        eni,
                        Direction::Ingress,
                        pkt,
                        found.and_then(|f| f.1),
                        now,
                    );
                    if T::ON {
                        // A live entry (an expired one is no tracked connection).
                        let live = met.is_some_and(|m| {
                            let t = policy.eni_timeouts[eni.get()];
                            now.saturating_sub(m.last_seen.0)
                                <= u64::from(m.state.timeout_secs(&t)) * NS
                        });
                        let passed = checked.is_ok();
                        trace::trace_nacl(tr, policy, eni, Direction::Ingress, pkt, live, passed);
                    }
                    if let Err(r) = checked {
                        ok = false;
                        reason = r;
                    }
                }
                if ok {
                    let (outcome, cref) =
                        self.sg_check(policy, eni, Direction::Ingress, pkt, now, shard, found);
                    if T::ON {
                        self.trace_sg(
                            tr,
                            policy,
                            eni,
                            Direction::Ingress,
                            pkt,
                            outcome,
                            cref,
                            found,
                            met,
                        );
                    }
                    conn[1] = cref;
                    tracked[1] = outcome == SgOutcome::Tracked;
                    match outcome {
                        SgOutcome::Denied => {
                            ok = false;
                            reason = Reason::SgIngress { eni };
                        }
                        SgOutcome::Full => {
                            ok = false;
                            reason = Reason::ConntrackFull { eni };
                        }
                        _ => {}
                    }
                }
                obs[1] = Some(observation(policy, eni, Direction::Ingress, ok, pkt, None));
                if !ok {
                    verdict = Verdict::Reject;
                }
            }
        }
        let decision = Decision {
            verdict,
            reason,
            obs,
            conn,
            tracked,
        };
        if let Fragment::First { id } = pkt.fragment {
            if self.frags.len() < FRAGMENT_MEMORY_MAX {
                let key = FragKey {
                    src: pkt.src,
                    dst: pkt.dst,
                    protocol: pkt.protocol,
                    id,
                };
                let decision = Decision {
                    conn: [None, None],
                    ..decision
                };
                self.frags.insert(key, FragMemory { at: now, decision });
            }
        }
        decision
    }
}

fn observation(
    policy: &Policy,
    eni: EniIdx,
    dir: Direction,
    ok: bool,
    pkt: &Packet,
    traffic_path: Option<u8>,
) -> Observation {
    {
        let e = &policy.vpc.network_interfaces[eni.get()];
        // The ENI's side shows its primary private IPv4 (flow logs §6.9); IPv6 stays.
        let own = |a: IpAddr| match a {
            IpAddr::V4(_) => e.primary_ipv4().map_or(a, IpAddr::V4),
            v6 => v6,
        };
        let (srcaddr, dstaddr) = match dir {
            Direction::Egress => (own(pkt.src), pkt.dst),
            Direction::Ingress => (pkt.src, own(pkt.dst)),
        };
        // The ENI never sees its own public IPv4: the internet gateway translates it
        // to the private address behind it first (§6, AWS's v5 example).
        let seen = |a: IpAddr| match a {
            IpAddr::V4(v) => IpAddr::V4(private_behind(e, v)),
            v6 => v6,
        };
        let (pkt_srcaddr, pkt_dstaddr) = match dir {
            Direction::Egress => (seen(pkt.src), pkt.dst),
            Direction::Ingress => (pkt.src, seen(pkt.dst)),
        };
        Observation {
            eni: policy.eni_number[eni.get()],
            direction: dir,
            action: if ok { Action::Accept } else { Action::Reject },
            srcaddr,
            dstaddr,
            pkt_srcaddr,
            pkt_dstaddr,
            srcport: pkt.src_port,
            dstport: pkt.dst_port,
            protocol: pkt.protocol,
            bytes: pkt.ip_len,
            tcp_flags: if pkt.protocol == PROTO_TCP {
                pkt.tcp_flags
            } else {
                0
            },
            traffic_path,
        }
    }
}

/// The connection-tracking key of `pkt` at `eni` in `dir`. The ENI's public IPv4 is
/// keyed as its primary private address (what the internet gateway translates it
/// to), so a capture taken on either side of the gateway tracks the same connection.
fn conn_key(policy: &Policy, eni: EniIdx, dir: Direction, pkt: &Packet) -> ConnKey {
    {
        let number = policy.eni_number[eni.get()];
        let (mut local, remote, lp, rp) = match dir {
            Direction::Egress => (pkt.src, pkt.dst, pkt.src_port, pkt.dst_port),
            Direction::Ingress => (pkt.dst, pkt.src, pkt.dst_port, pkt.src_port),
        };
        let e = &policy.vpc.network_interfaces[eni.get()];
        if let IpAddr::V4(a) = local {
            local = IpAddr::V4(private_behind(e, a));
        }
        match pkt.protocol {
            PROTO_TCP | PROTO_UDP => ConnKey::new(number, pkt.protocol, local, lp, remote, rp),
            // An ICMP query and its reply are keyed by the id, the query's type and
            // the direction the query went at this ENI, as Linux keys the tuple
            // (query type one way, reply type the other): a reply matches only the
            // entry of a query sent the other way. Other ICMP messages are never
            // tracked (see `tracking`).
            PROTO_ICMP | PROTO_ICMPV6 => {
                let (kind, query) = tracking(pkt);
                let query_dir = match (kind, dir) {
                    (Tracking::IcmpReply, Direction::Ingress) => Direction::Egress,
                    (Tracking::IcmpReply, Direction::Egress) => Direction::Ingress,
                    (_, d) => d,
                };
                let tag = u16::from(query) | (query_dir as u16) << 8;
                ConnKey::new(number, pkt.protocol, local, pkt.icmp_id, remote, tag)
            }
            p => ConnKey::new(number, p, local, 0, remote, 0),
        }
    }
}

/// The private IPv4 address behind `a` when `a` is one of `e`'s public (or Elastic)
/// IPv4 addresses; else `a`.
#[inline]
fn private_behind(e: &crate::model::NetworkInterface, a: std::net::Ipv4Addr) -> std::net::Ipv4Addr {
    if e.public_ipv4 == Some(a) {
        return e.primary_ipv4().unwrap_or(a);
    }
    e.secondary_public_ipv4
        .iter()
        .find(|(public, _)| *public == a)
        .map_or(a, |&(_, private)| private)
}

impl Core {
    /// The NACL of `eni`'s subnet for `pkt` (`egress`: its outbound entries), counted
    /// in the hit counters; the reason when it denies.
    ///
    /// Allow decisions are cached in the tracked connection's entry `conn` (when
    /// given), per direction: for TCP and UDP the NACL reads the protocol, the peer
    /// address (the key's remote) and the destination port (the key's remote port
    /// outbound, local port inbound), so every packet of the entry in that direction
    /// gets the same decision until the ruleset changes (which clears the caches).
    /// A cached packet skips the classifier; counters and verdicts are unchanged.
    #[inline]
    fn nacl_check(
        &mut self,
        policy: &Policy,
        eni: EniIdx,
        dir: Direction,
        pkt: &Packet,
        tracked: Option<ConnRef>,
        now: u64,
    ) -> Result<(), Reason> {
        let side = dir as usize;
        let conn = tracked.filter(|_| matches!(pkt.protocol, PROTO_TCP | PROTO_UDP));
        if let Some(e) = conn.and_then(|r| self.ct.entry(r)) {
            let slot = e.nacl_allow[side];
            if slot != 0 {
                self.nacl_counts[self.generation][slot as usize - 1] += 1;
                return Ok(());
            }
        }
        let d = policy.nacl_decide(policy.eni_subnet[eni.get()], dir, pkt);
        if !d.allow && self.cf.stateful_nacl && self.answers_tracked(policy, eni, dir, tracked, now)
        {
            // Not AWS (`--stateful-nacl`): the reply passes as if the NACL tracked.
            return Ok(());
        }
        let slot = policy.nacl_slot(d.rule);
        self.nacl_counts[self.generation][slot] += 1;
        if d.allow {
            if let Some(e) = conn.and_then(|r| self.ct.entry_mut(r)) {
                e.nacl_allow[side] = slot as u32 + 1;
            }
            return Ok(());
        }
        Err(if dir == Direction::Egress {
            Reason::NaclOutbound {
                rule: d.rule,
                rule_number: d.rule_number,
            }
        } else {
            Reason::NaclInbound {
                rule: d.rule,
                rule_number: d.rule_number,
            }
        })
    }

    /// Whether `conn` is a live tracked connection at `eni` that `dir` answers (its
    /// first packet went the other way): what a stateful NACL would let through
    /// ([`Counterfactual::stateful_nacl`]).
    fn answers_tracked(
        &self,
        policy: &Policy,
        eni: EniIdx,
        dir: Direction,
        conn: Option<ConnRef>,
        now: u64,
    ) -> bool {
        let Some(e) = conn.and_then(|r| self.ct.entry(r)) else {
            return false;
        };
        // A connection opened outwards is an allowed flow only if its first packets
        // passed the outbound NACL (an inward one met the inbound NACL before the
        // group created its entry). For TCP and UDP the entry remembers that
        // (`nacl_allow`); other protocols are taken as allowed.
        let allowed = e.origin == Direction::Ingress
            || e.nacl_allow[Direction::Egress as usize] != 0
            || matches!(e.state, ConnState::Icmp | ConnState::Other);
        e.origin != dir && allowed && !e.expired(now, &policy.eni_timeouts[eni.get()])
    }

    /// The security group of `eni` in `dir`, with its connection tracking, and the
    /// tracked connection's entry (found or created) if there is one. `found` is the
    /// packet's key and what [`ConnTable::find`] gave for it, when the caller looked.
    #[allow(clippy::too_many_arguments)]
    fn sg_check(
        &mut self,
        policy: &Policy,
        eni: EniIdx,
        dir: Direction,
        pkt: &Packet,
        now: u64,
        shard: u8,
        found: Option<(ConnKey, Option<ConnRef>)>,
    ) -> (SgOutcome, Option<ConnRef>) {
        let remote = match dir {
            Direction::Ingress => pkt.src,
            Direction::Egress => pkt.dst,
        };
        if policy.eni_no_sg[eni.get()] {
            self.stats.no_security_group += 1;
            return (SgOutcome::NoGroup, None);
        }
        let t = policy.eni_timeouts[eni.get()];
        if !pkt.ports_known() || self.cf.stateless_sg {
            // A fragment without its first fragment: rules only, with unknown ports.
            // Stateless groups (not AWS: `--stateless-sg`): rules only, nothing tracked.
            return match policy.sg_match(eni, dir, remote, pkt) {
                Some(r) => {
                    self.sg_counts[self.generation][policy.sg_slot(r)] += 1;
                    (SgOutcome::NoPorts, None)
                }
                None => (SgOutcome::Denied, None),
            };
        }
        let (tracking, _) = tracking(pkt);
        let (key, at) = match found {
            Some(f) => f,
            None if tracking == Tracking::Never => (conn_key(policy, eni, dir, pkt), None),
            None => {
                let key = conn_key(policy, eni, dir, pkt);
                (key, self.ct.find(&key))
            }
        };
        // ICMP keys name the query's type and direction, so a query finds only the
        // entry it opened and a reply only the entry of its query (see `conn_key`).
        if let Some(r) = at {
            if self.ct.lookup_at(r, dir, pkt.tcp_flags, now, &t).is_some() {
                self.stats.conntrack_hits += 1;
                return (SgOutcome::Tracked, Some(r));
            }
        }
        let Some(rule) = policy.sg_match(eni, dir, remote, pkt) else {
            return (SgOutcome::Denied, None);
        };
        self.sg_counts[self.generation][policy.sg_slot(rule)] += 1;
        if matches!(tracking, Tracking::IcmpReply | Tracking::Never) {
            // Only a query creates an entry.
            self.stats.icmp_not_tracked += 1;
            return (SgOutcome::NotTracked, None);
        }
        if (pkt.protocol == PROTO_TCP || pkt.protocol == PROTO_UDP)
            && untracked(policy, eni, dir, pkt)
        {
            self.stats.untracked += 1;
            return (SgOutcome::Untracked, None);
        }
        let group = policy.eni_limit_group[eni.get()];
        if let Some(limit) = policy.group_limit[group as usize] {
            if self.ct.group_len(group) >= limit {
                // Free what has expired before refusing (at most once per second).
                self.sweep(policy, now, 1, false);
                if self.ct.group_len(group) >= limit {
                    self.stats.conntrack_allowance_exceeded += 1;
                    return (SgOutcome::Full, None);
                }
            }
        }
        if let Some(limit) = self.shard_limit {
            if self.ct.shard_len(shard) >= limit {
                self.sweep(policy, now, 1, false);
                if self.ct.shard_len(shard) >= limit {
                    self.stats.flow_limit_exceeded += 1;
                    return (SgOutcome::Full, None);
                }
            }
        }
        let r = self
            .ct
            .insert_in_shard(key, dir, pkt.tcp_flags, group, shard, now, &t);
        self.stats.conntrack_created += 1;
        (SgOutcome::New, Some(r))
    }
}

/// The untracked condition of manual: "Connection tracking", with either side as the initiator.
fn untracked(p: &Policy, eni: EniIdx, dir: Direction, pkt: &Packet) -> bool {
    {
        let v6 = pkt.src.is_ipv6();
        let other = match dir {
            Direction::Ingress => Direction::Egress,
            Direction::Egress => Direction::Ingress,
        };
        // TCP says which side opened: a SYN without ACK is the initiating packet, a
        // SYN-ACK a reply. Other packets may be either.
        let syn =
            pkt.protocol == PROTO_TCP && pkt.tcp_flags & crate::wire::packet::tcp_flags::SYN != 0;
        let ack = pkt.tcp_flags & crate::wire::packet::tcp_flags::ACK != 0;
        let (may_open, may_reply) = match (syn, ack) {
            (true, false) => (true, false),
            (true, true) => (false, true),
            _ => (true, true),
        };
        // As a first packet: its own direction's open rule admits it, and the other
        // direction has the open all-ports rule.
        if may_open
            && p.sg_open_admits(eni, dir, v6, pkt)
            && p.sg_open_all_ports(eni, other, v6, pkt.protocol)
        {
            return true;
        }
        if !may_reply {
            return false;
        }
        // As a reply: the other direction's open rule admits the reversed packet, and
        // its own direction has the open all-ports rule.
        let reversed = Packet {
            src: pkt.dst,
            dst: pkt.src,
            src_port: pkt.dst_port,
            dst_port: pkt.src_port,
            ..*pkt
        };
        p.sg_open_all_ports(eni, dir, v6, pkt.protocol)
            && p.sg_open_admits(eni, other, v6, &reversed)
    }
}
