//! What `--report` needs beyond the summary, collected packet by packet: accepted and
//! rejected packets per ENI over capture time, the rejected flows, and how accepted
//! packets got past the security groups.
//!
//! One [`ReportCollector`] per pipeline worker; the workers' collectors are merged
//! with [`ReportCollector::merge`] and finished with [`ReportCollector::finish`]. The
//! result does not depend on how packets were spread over workers:
//!
//! - the timeline buckets lie on a ladder of widths where each width divides the
//!   next ([`LADDER_NS`]); a collector widens its buckets when it spans more than
//!   [`COLLECT_BUCKETS`], and `finish` brings everything to the width that the whole
//!   run's span needs for at most [`SHOWN_BUCKETS`], which is never narrower than a
//!   worker's own width: sums of the same packets in the same buckets;
//! - rejected flows are kept per flow shard (a shard's packets are judged in capture
//!   order by one worker, whatever the number of workers), the first
//!   [`FLOWS_PER_SHARD`] distinct flows of each shard; the packets of flows beyond
//!   that are counted apart, so memory stays bounded under a flood.
//!
//! Memory per worker: at most [`COLLECT_BUCKETS`] buckets per ENI that saw a packet,
//! and [`FLOWS_PER_SHARD`] flows per flow shard.
#![deny(clippy::disallowed_methods, clippy::disallowed_types)]

use crate::engine::{Decision, Reason, Verdict, FLOW_SHARDS};
use crate::model::{Action, EniNum, PROTO_ICMP, PROTO_ICMPV6};
use crate::wire::packet::{Packet, Timestamp, NANOS_PER_SEC};
use std::collections::BTreeMap;
use std::net::IpAddr;

const MS: u64 = NANOS_PER_SEC / 1000;
const S: u64 = NANOS_PER_SEC;
/// Bucket widths, each a divisor of the next; beyond the last, widths double.
pub const LADDER_NS: [u64; 19] = [
    MS,
    10 * MS,
    100 * MS,
    S,
    5 * S,
    10 * S,
    30 * S,
    60 * S,
    300 * S,
    600 * S,
    1800 * S,
    3600 * S,
    3 * 3600 * S,
    6 * 3600 * S,
    12 * 3600 * S,
    86400 * S,
    2 * 86400 * S,
    4 * 86400 * S,
    8 * 86400 * S,
];
/// A collector widens its buckets when its packets span more than this many.
pub const COLLECT_BUCKETS: u64 = 512;
/// The report shows at most this many buckets across the run.
pub const SHOWN_BUCKETS: u64 = 72;
/// Distinct rejected flows kept per flow shard.
pub const FLOWS_PER_SHARD: usize = 128;

/// Width `step` of the ladder (doubling past its end).
fn width(step: usize) -> u64 {
    match LADDER_NS.get(step) {
        Some(&w) => w,
        None => {
            let last = LADDER_NS[LADDER_NS.len() - 1];
            let k = (step - (LADDER_NS.len() - 1)).min(20) as u32;
            last.saturating_mul(1 << k)
        }
    }
}

/// The narrowest step whose buckets cover `[lo, hi]` (ns) in at most `max` buckets.
fn step_for(lo: u64, hi: u64, max: u64, from: usize) -> usize {
    let mut step = from;
    while hi / width(step) - lo / width(step) + 1 > max && step < LADDER_NS.len() + 20 {
        step += 1;
    }
    step
}

/// A rejected flow as the report lists it: the packet's addresses and protocol, and
/// the port that names the service. A reply of a tracked connection keeps its source
/// port (the service's) and drops its destination port (the client's ephemeral
/// port); any other packet keeps its destination port. ICMP keeps type and code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    /// The ruleset generation and the check that rejected the flow.
    pub ruleset: usize,
    pub reason: Reason,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: u8,
    /// `Some(port)`: the service port at the source (a reply); else at the destination.
    pub src_port: Option<u16>,
    pub dst_port: Option<u16>,
    /// ICMP type and code.
    pub icmp: Option<(u8, u8)>,
    /// Packets of a live tracked connection (replies a NACL drops).
    pub reply: bool,
}

/// Accepted and rejected packets seen at one ENI in one bucket (counted like flow-log
/// records: at the source ENI's egress and at the destination ENI's ingress).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub accepted: u64,
    pub rejected: u64,
}

/// See the [module documentation](self).
#[derive(Clone, Debug, Default)]
pub struct ReportCollector {
    step: usize,
    lo: Option<u64>,
    hi: u64,
    /// (bucket at `step`, ENI) → counts.
    buckets: BTreeMap<(u64, EniNum), Counts>,
    /// Per flow shard: the flows kept, and the packets of flows not kept.
    flows: Vec<BTreeMap<FlowKey, u64>>,
    flows_dropped: u64,
    /// Accepted packets that passed at least one security group through a live
    /// tracked connection (its rules were not consulted); of the others, those a
    /// group allowed as an untracked flow, and the rest.
    pub accepted_tracked: u64,
    pub accepted_untracked: u64,
    pub accepted_by_rules: u64,
}

impl ReportCollector {
    pub fn new() -> ReportCollector {
        ReportCollector {
            flows: vec![BTreeMap::new(); FLOW_SHARDS as usize],
            ..Default::default()
        }
    }

    /// Counts one judged packet (`shard`: its flow shard; `ruleset`: the generation
    /// that judged it; `untracked`: a security group allowed it as a packet of an
    /// untracked flow).
    pub fn add(
        &mut self,
        pkt: &Packet,
        ts: Timestamp,
        shard: u8,
        ruleset: usize,
        d: &Decision,
        untracked: bool,
    ) {
        match d.verdict {
            Verdict::None => return,
            Verdict::Accept => {
                if d.tracked[0] || d.tracked[1] {
                    self.accepted_tracked += 1;
                } else if untracked {
                    self.accepted_untracked += 1;
                } else {
                    self.accepted_by_rules += 1;
                }
            }
            Verdict::Reject => self.add_reject(pkt, shard, ruleset, d),
        }
        let t = ts.0;
        let (lo, hi) = match self.lo {
            Some(lo) => (lo.min(t), self.hi.max(t)),
            None => (t, t),
        };
        let step = step_for(lo, hi, COLLECT_BUCKETS, self.step);
        if step != self.step {
            self.rebucket(step);
        }
        self.lo = Some(lo);
        self.hi = hi;
        let b = t / width(self.step);
        for o in d.obs.iter().flatten() {
            let c = self.buckets.entry((b, o.eni)).or_default();
            match o.action {
                Action::Accept => c.accepted += 1,
                Action::Reject => c.rejected += 1,
            }
        }
    }

    fn add_reject(&mut self, pkt: &Packet, shard: u8, ruleset: usize, d: &Decision) {
        let reply = match d.reason {
            Reason::NaclOutbound { .. } | Reason::SgEgress { .. } => d.tracked[0],
            Reason::NaclInbound { .. } | Reason::SgIngress { .. } => d.tracked[1],
            _ => false,
        };
        let icmp = pkt.protocol == PROTO_ICMP || pkt.protocol == PROTO_ICMPV6;
        let ports = !icmp && pkt.ports_known() && (pkt.src_port != 0 || pkt.dst_port != 0);
        let key = FlowKey {
            ruleset,
            reason: d.reason,
            src: pkt.src,
            dst: pkt.dst,
            protocol: pkt.protocol,
            src_port: (ports && reply).then_some(pkt.src_port),
            dst_port: (ports && !reply).then_some(pkt.dst_port),
            icmp: (icmp && pkt.ports_known()).then_some((pkt.icmp_type, pkt.icmp_code)),
            reply,
        };
        let map = &mut self.flows[shard as usize % FLOW_SHARDS as usize];
        if let Some(n) = map.get_mut(&key) {
            *n += 1;
        } else if map.len() < FLOWS_PER_SHARD {
            map.insert(key, 1);
        } else {
            self.flows_dropped += 1;
        }
    }

    fn rebucket(&mut self, step: usize) {
        let k = width(step) / width(self.step);
        let old = std::mem::take(&mut self.buckets);
        for ((b, eni), c) in old {
            let e = self.buckets.entry((b / k, eni)).or_default();
            e.accepted += c.accepted;
            e.rejected += c.rejected;
        }
        self.step = step;
    }

    /// Adds another worker's collector (of other flow shards) to this one.
    pub fn merge(&mut self, mut o: ReportCollector) {
        let step = self.step.max(o.step);
        if self.step != step {
            self.rebucket(step);
        }
        if o.step != step {
            o.rebucket(step);
        }
        for (k, c) in o.buckets {
            let e = self.buckets.entry(k).or_default();
            e.accepted += c.accepted;
            e.rejected += c.rejected;
        }
        self.lo = match (self.lo, o.lo) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.hi = self.hi.max(o.hi);
        for (mine, theirs) in self.flows.iter_mut().zip(o.flows) {
            for (k, n) in theirs {
                *mine.entry(k).or_insert(0) += n;
            }
        }
        self.flows_dropped += o.flows_dropped;
        self.accepted_tracked += o.accepted_tracked;
        self.accepted_untracked += o.accepted_untracked;
        self.accepted_by_rules += o.accepted_by_rules;
    }

    /// The collected data, with buckets as wide as the whole span needs.
    pub fn finish(mut self) -> Collected {
        let Some(lo) = self.lo else {
            return Collected {
                accepted_tracked: self.accepted_tracked,
                accepted_untracked: self.accepted_untracked,
                accepted_by_rules: self.accepted_by_rules,
                ..Default::default()
            };
        };
        let step = step_for(lo, self.hi, SHOWN_BUCKETS, self.step);
        if step != self.step {
            self.rebucket(step);
        }
        let w = width(step);
        let first = lo / w;
        let n = (self.hi / w - first + 1) as usize;
        let mut per_eni: BTreeMap<EniNum, Vec<Counts>> = BTreeMap::new();
        for ((b, eni), c) in self.buckets {
            per_eni
                .entry(eni)
                .or_insert_with(|| vec![Counts::default(); n])[(b - first) as usize] = c;
        }
        let mut flows: BTreeMap<FlowKey, u64> = BTreeMap::new();
        for m in self.flows {
            for (k, v) in m {
                *flows.entry(k).or_insert(0) += v;
            }
        }
        let mut flows: Vec<(FlowKey, u64)> = flows.into_iter().collect();
        flows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        Collected {
            start: Timestamp(first * w),
            bucket_ns: w,
            buckets: n,
            per_eni: per_eni.into_iter().collect(),
            flows,
            flows_dropped: self.flows_dropped,
            accepted_tracked: self.accepted_tracked,
            accepted_untracked: self.accepted_untracked,
            accepted_by_rules: self.accepted_by_rules,
        }
    }
}

/// The finished data of a [`ReportCollector`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Collected {
    /// The start of the first bucket and the width of each.
    pub start: Timestamp,
    pub bucket_ns: u64,
    pub buckets: usize,
    /// Per ENI (by run number) that saw a packet: its counts per bucket.
    pub per_eni: Vec<(EniNum, Vec<Counts>)>,
    /// Rejected flows, most packets first.
    pub flows: Vec<(FlowKey, u64)>,
    /// Rejected packets of flows beyond [`FLOWS_PER_SHARD`] in their shard.
    pub flows_dropped: u64,
    pub accepted_tracked: u64,
    pub accepted_untracked: u64,
    pub accepted_by_rules: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_width_divides_the_next() {
        for s in 0..LADDER_NS.len() + 5 {
            assert_eq!(width(s + 1) % width(s), 0, "step {s}");
        }
    }

    fn decision(eni: u32, accept: bool) -> Decision {
        use crate::flowlog::Observation;
        use crate::model::Direction;
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let o = Observation {
            eni: EniNum(eni),
            direction: Direction::Ingress,
            action: if accept {
                Action::Accept
            } else {
                Action::Reject
            },
            srcaddr: a,
            dstaddr: a,
            pkt_srcaddr: a,
            pkt_dstaddr: a,
            srcport: 1,
            dstport: 2,
            protocol: 6,
            bytes: 40,
            tcp_flags: 0,
            traffic_path: None,
        };
        Decision {
            verdict: if accept {
                Verdict::Accept
            } else {
                Verdict::Reject
            },
            reason: if accept {
                Reason::Accepted
            } else {
                Reason::SgIngress {
                    eni: crate::model::EniIdx(eni),
                }
            },
            obs: [Some(o), None],
            conn: [None, None],
            tracked: [false, false],
        }
    }

    /// Packets spread over collectors in any way (as flow shards over workers) give
    /// the same result once merged, also when one collector had to widen its buckets
    /// and another did not.
    #[test]
    fn merged_collectors_equal_one() {
        let pkt = |i: u64| Packet {
            src: "198.51.100.1".parse().unwrap(),
            dst: "10.0.0.1".parse().unwrap(),
            protocol: 6,
            src_port: 40000 + (i % 50) as u16,
            dst_port: 22,
            icmp_type: 0,
            icmp_code: 0,
            icmp_id: 0,
            tcp_flags: 2,
            ip_len: 40,
            fragment: crate::wire::packet::Fragment::None,
        };
        // 3 hours of packets, 3 ENIs; `a` sees some of the first 20 minutes only.
        let t = |i: u64| Timestamp(1_700_000_000 * S + i * 7 * S + i * 13 * MS);
        let n = 1500u64;
        let mut one = ReportCollector::new();
        let (mut a, mut b) = (ReportCollector::new(), ReportCollector::new());
        for i in 0..n {
            let d = decision((i % 3) as u32, i % 5 != 0);
            let shard = (i % 64) as u8;
            one.add(&pkt(i), t(i), shard, 0, &d, false);
            let half = if i < n / 10 && i % 2 == 0 {
                &mut a
            } else {
                &mut b
            };
            half.add(&pkt(i), t(i), shard, 0, &d, false);
        }
        assert!(a.step < b.step, "the test should merge different widths");
        a.merge(b);
        let (x, y) = (one.finish(), a.finish());
        assert_eq!(x, y);
        // 3 h in at most 72 buckets: 5 minutes each.
        assert_eq!(x.bucket_ns, 300 * S);
        let total: u64 = x
            .per_eni
            .iter()
            .flat_map(|(_, v)| v)
            .map(|c| c.accepted + c.rejected)
            .sum();
        assert_eq!(total, n);
        let rejected: u64 = x.flows.iter().map(|f| f.1).sum::<u64>() + x.flows_dropped;
        assert_eq!(rejected, n / 5);
    }

    #[test]
    fn step_for_a_twelve_minute_capture_is_ten_seconds() {
        // 720 s in at most 72 buckets: 10 s buckets (5 s would need 144).
        let lo = 1_732_435_200 * S;
        let s = step_for(lo, lo + 719 * S, SHOWN_BUCKETS, 0);
        assert_eq!(width(s), 10 * S);
    }
}
