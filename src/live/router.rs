//! The VPC router of live mode, as a pure function of frames (manual: "Live mode and the lab").
//!
//! [`Router::handle_frame`] takes one Ethernet frame read from a port (an ENI's TAP or
//! the internet gateway's) and the wall-clock time it was read, and returns the frames
//! to write and where. No devices, no clock, no threads: the TAP loop in
//! [`super::tap`] and the tests drive it alike.
//!
//! What it does:
//! - **ARP.** From an ENI port it answers for the subnet router (base + 1 of the ENI's
//!   subnet, with the subnet's router MAC) and for every address of that subnet another
//!   ENI owns (with that ENI's MAC), as AWS's mapping service does. From the internet
//!   gateway port it answers for every public IPv4 of an ENI (with the gateway's MAC).
//!   Nothing else is answered: the request is dropped and counted.
//! - **Forwarding.** An IPv4 or IPv6 packet from an ENI whose source address is the
//!   ENI's own (AWS's source/destination check) goes through [`Engine::process`]; on
//!   ACCEPT it is delivered to the ENI that owns the destination (Ethernet destination =
//!   that ENI's MAC, source = the router MAC of its subnet) or, for a destination outside
//!   the VPC, to the internet gateway. Routing is the VPC's `local` route plus the
//!   internet gateway for everything else; TTLs are not decremented (the VPC router is
//!   not a hop in a traceroute).
//! - **The internet gateway** translates 1:1 between an ENI's public IPv4 and the
//!   private IPv4 it maps to, both ways, fixing the IPv4, TCP and UDP checksums
//!   (RFC 1624). IPv6 passes untranslated.
//!
//! **Where the engine looks.** The engine judges each packet as it reaches the router,
//! *before* translation: an ENI's outgoing packet with its private source, an incoming
//! packet from the internet with the ENI's public destination. That is the view a capture
//! gives replay, and manual: "Where a packet is evaluated" maps a public IPv4 to its ENI (tracking and flow
//! logs use the private address), so live and replay give the same verdicts and records.
//!
//! Everything that is not forwarded is counted by reason ([`Router::drops`]); no input
//! makes it panic.

use crate::model::{PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ipnet::IpNet;

use super::arp;
use crate::engine::{Engine, Verdict};
use crate::flowlog::{Aggregator, Collator, EniMeta, FlowRecord, Run};
use crate::model::Vpc;
use crate::policy::Policy;
use crate::wire::checksum;
use crate::wire::packet::{self, linktype, Packet, Timestamp};
use crate::wire::vnet::{self, VnetHdr, VNET_HDR_LEN};

/// What to do with a frame after [`Router::route_in_place`].
#[derive(Debug, PartialEq, Eq)]
pub enum Routed {
    /// Write the (rewritten) frame to this port.
    Forward(Port),
    /// Write these frames instead (answers; none: the frame was dropped or rejected).
    Frames(Vec<(Port, Vec<u8>)>),
}

impl Routed {
    /// The frames to write, given the buffer routed in place.
    pub fn frames(self, buf: Vec<u8>) -> Vec<(Port, Vec<u8>)> {
        match self {
            Routed::Forward(p) => vec![(p, buf)],
            Routed::Frames(v) => v,
        }
    }
}

impl From<Vec<(Port, Vec<u8>)>> for Routed {
    fn from(v: Vec<(Port, Vec<u8>)>) -> Routed {
        Routed::Frames(v)
    }
}

/// A frame read from a TAP with `IFF_VNET_HDR`: its header, checked against it.
#[derive(Clone, Copy)]
struct Vnet {
    hdr: VnetHdr,
    plan: vnet::Plan,
}

/// Where a frame came from or goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Port {
    /// An ENI, by its index in the ruleset's `network_interfaces`.
    Eni(u32),
    /// The internet gateway: everything outside the VPC.
    Igw,
}

/// 64-bit FNV-1a: a fixed hash, the same on every run and every machine.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A locally administered unicast MAC, `02:` and five bytes of a hash of `key` (FNV-1a,
/// then MurmurHash3's 64-bit finalizer, so that ids that differ in one character get
/// MACs that differ everywhere).
pub fn derived_mac(key: &str) -> [u8; 6] {
    let mut h = fnv1a(key.as_bytes());
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    let h = h.to_be_bytes();
    [0x02, h[0], h[1], h[2], h[3], h[4]]
}

/// The MAC of an ENI: derived from its id, the same on every run.
pub fn eni_mac(eni_id: &str) -> [u8; 6] {
    derived_mac(eni_id)
}

/// The MAC the VPC router answers with in a subnet.
pub fn router_mac(subnet_id: &str) -> [u8; 6] {
    derived_mac(&format!("vpc-router/{subnet_id}"))
}

/// The MAC of the internet gateway's side of the gateway port.
pub fn igw_mac(vpc_id: &str) -> [u8; 6] {
    derived_mac(&format!("internet-gateway/{vpc_id}"))
}

/// `02:aa:bb:cc:dd:ee` text.
pub fn mac_text(m: [u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

/// Counters of the router, beside the engine's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouterStats {
    pub frames: u64,
    /// The wire packets those frames stand for, as `--capture` numbers them: a GSO
    /// super-frame counts its segments, every other frame 1.
    pub wire_packets: u64,
    /// GSO super-frames read (TAPs with offloads), and the wire packets they stood for.
    pub super_frames: u64,
    pub super_frame_segments: u64,
    /// Frames a worker read and handed to the worker that owns their flow shard
    /// (`--workers` above 1).
    pub handed_off: u64,
    pub arp_answered: u64,
    pub evaluated: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub forwarded: u64,
    pub translated: u64,
    /// Frames dropped before or instead of evaluation, by reason.
    pub drops: BTreeMap<String, u64>,
    /// Rejected packets, by the engine's reason text.
    pub rejects: BTreeMap<String, u64>,
}

/// The VPC router, the internet gateway and the engine behind them.
pub struct Router {
    policy: Arc<Policy>,
    engine: Engine,
    agg: Aggregator,
    metas: Vec<EniMeta>,
    eni_macs: Vec<[u8; 6]>,
    /// Subnet index of each ENI (`usize::MAX`: none).
    eni_subnet: Vec<usize>,
    router_macs: Vec<[u8; 6]>,
    /// The subnet router address (base + 1) of each subnet's IPv4 CIDR.
    router_ip4: Vec<Option<Ipv4Addr>>,
    router_ip6: Vec<Vec<Ipv6Addr>>,
    igw_mac: [u8; 6],
    igw_peer: Option<[u8; 6]>,
    vpc_cidrs: Vec<IpNet>,
    stats: RouterStats,
    seq: u64,
    verdicts: Option<Vec<u8>>,
    /// The checks of the packet in hand, for the `why` of verdict lines (traced only
    /// when verdicts are kept), and the writer of that text.
    checks: crate::engine::trace::Checks,
    why: String,
    why_writer: crate::engine::trace::WhyWriter,
    /// How many rulesets this router has had (0: the first); the engine's generation.
    generation: usize,
    /// Orders the closed records and adds NODATA ones, as replay's merger does.
    collator: Collator,
    /// The time of the last frame read, and of the first.
    last_frame: Option<Timestamp>,
    first_frame: Option<Timestamp>,
    /// A worker `w` of `n` (`Some((w, n))`): flow-log records are ordered by a number
    /// that follows the time each frame was judged, unique over all workers (this
    /// worker's numbers are `w` modulo `n`), so that the records and the frames of every
    /// worker merge in one order; not by this router's own count.
    seq_by_time: Option<(u64, u64)>,
    /// That number, for the frame in hand.
    frame_seq: u64,
    nodata: bool,
}

/// `Ok` when `new` describes the same network as `old` (what a reload may not change).
fn same_network(old: &Vpc, new: &Vpc) -> Result<(), String> {
    let restart = "a reload changes rules, not the network: restart to change it";
    if old.cidrs != new.cidrs {
        return Err(format!("the VPC's CIDRs differ; {restart}"));
    }
    let subnets = |v: &Vpc| -> Vec<(String, Option<ipnet::Ipv4Net>, Vec<ipnet::Ipv6Net>)> {
        v.subnets
            .iter()
            .map(|s| (s.id.clone(), s.ipv4_cidr, s.ipv6_cidrs.clone()))
            .collect()
    };
    if subnets(old) != subnets(new) {
        return Err(format!("the subnets or their CIDRs differ; {restart}"));
    }
    let (a, b) = (&old.network_interfaces, &new.network_interfaces);
    if a.len() != b.len() || a.iter().zip(b).any(|(x, y)| x.id != y.id) {
        let ids = |v: &[crate::model::NetworkInterface]| {
            v.iter()
                .map(|e| e.id.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        };
        return Err(format!(
            "the network interfaces differ (running: {}; new: {}); {restart}",
            ids(a),
            ids(b)
        ));
    }
    for (x, y) in a.iter().zip(b) {
        let addrs = |e: &crate::model::NetworkInterface| {
            (
                e.subnet_id.clone(),
                e.private_ipv4.clone(),
                e.ipv6.clone(),
                e.public_ipv4,
                e.secondary_public_ipv4.clone(),
                e.ipv4_prefixes.clone(),
                e.ipv6_prefixes.clone(),
            )
        };
        if addrs(x) != addrs(y) {
            return Err(format!(
                "{}: its subnet or addresses differ; {restart}",
                x.id
            ));
        }
    }
    Ok(())
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

impl Router {
    /// A router for `vpc`, alone in its run (ENI numbers are its own sorted ids).
    pub fn new(vpc: Arc<Vpc>, aggregation_interval: u32) -> Router {
        let (ids, metas) = crate::pipeline::eni_table(&[&vpc]);
        let policy = Arc::new(Policy::compile(vpc.clone(), &ids));
        let eni_macs = vpc
            .network_interfaces
            .iter()
            .map(|e| eni_mac(&e.id))
            .collect();
        let eni_subnet = vpc
            .network_interfaces
            .iter()
            .map(|e| {
                vpc.subnets
                    .iter()
                    .position(|s| s.id == e.subnet_id)
                    .unwrap_or(usize::MAX)
            })
            .collect();
        let router_macs = vpc.subnets.iter().map(|s| router_mac(&s.id)).collect();
        let router_ip4 = vpc
            .subnets
            .iter()
            .map(|s| {
                s.ipv4_cidr
                    .map(|c| Ipv4Addr::from(u32::from(c.network()).wrapping_add(1)))
            })
            .collect();
        let router_ip6 = vpc
            .subnets
            .iter()
            .map(|s| {
                s.ipv6_cidrs
                    .iter()
                    .map(|c| Ipv6Addr::from(u128::from(c.network()).wrapping_add(1)))
                    .collect()
            })
            .collect();
        let n_enis = metas.len() as u32;
        Router {
            engine: Engine::new(policy.clone()),
            policy,
            agg: Aggregator::new(aggregation_interval),
            metas,
            eni_macs,
            eni_subnet,
            router_macs,
            router_ip4,
            router_ip6,
            igw_mac: igw_mac(&vpc.id),
            igw_peer: None,
            vpc_cidrs: vpc.cidrs.clone(),
            stats: RouterStats::default(),
            seq: 0,
            verdicts: None,
            checks: Default::default(),
            why: String::new(),
            why_writer: Default::default(),
            generation: 0,
            collator: Collator::new(n_enis, u64::from(aggregation_interval), true),
            last_frame: None,
            first_frame: None,
            seq_by_time: None,
            frame_seq: 0,
            nodata: true,
        }
    }

    /// Switches to the ruleset `vpc` from the next frame on, as replay's `--rules-at`
    /// does (EMULATION.md §4): tracked connections keep passing until they time out or
    /// close, untracked flows and network ACLs follow the new rules at once, and the
    /// flow-log windows stay open. The network must be the same (the same ENIs in the
    /// same order, with the same subnets and addresses, the same subnets and VPC
    /// CIDRs): the devices and namespaces were made for it. Refused otherwise, with
    /// what differs; the old ruleset then stays in force. Returns the number of
    /// tracked connections kept.
    pub fn reload(&mut self, vpc: Arc<Vpc>) -> Result<usize, String> {
        same_network(&self.policy.vpc, &vpc)?;
        let (ids, metas) = crate::pipeline::eni_table(&[&vpc]);
        let policy = Arc::new(Policy::compile(vpc, &ids));
        self.generation += 1;
        self.engine.set_policy(policy.clone(), self.generation);
        self.policy = policy;
        self.metas = metas;
        Ok(self.engine.tracked())
    }

    /// The VPC this router serves.
    pub fn vpc(&self) -> &Vpc {
        &self.policy.vpc
    }

    /// The compiled policy (for reason texts).
    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }

    /// The flow-log metadata, indexed by ENI number.
    pub fn metas(&self) -> &[EniMeta] {
        &self.metas
    }

    /// The MAC of the host on the far side of the internet gateway port. Learned from
    /// the frames that port sends; the lab sets it up front.
    pub fn set_igw_peer(&mut self, mac: [u8; 6]) {
        self.igw_peer = Some(mac);
    }

    /// Keeps one verdict line (CLI.md) per evaluated packet, for [`Router::take_verdicts`];
    /// `packet` is the number of the frame among all frames read (as in `--capture`).
    pub fn keep_verdicts(&mut self) {
        self.verdicts = Some(Vec::new());
    }

    /// The verdict lines since the last call.
    pub fn take_verdicts(&mut self) -> Vec<u8> {
        self.verdicts
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    pub fn stats(&self) -> &RouterStats {
        &self.stats
    }

    /// Frames dropped without evaluation, by reason.
    pub fn drops(&self) -> &BTreeMap<String, u64> {
        &self.stats.drops
    }

    /// The engine's counters.
    pub fn engine_stats(&self) -> crate::engine::EngineStats {
        self.engine.stats()
    }

    /// The ENI's MAC, by model index.
    pub fn eni_mac(&self, eni: u32) -> [u8; 6] {
        self.eni_macs[eni as usize]
    }

    /// Frees expired tracking state and closes the flow-log windows that ended by
    /// `now`: their records, in output order, with a NODATA record for each ENI
    /// without traffic in such a window since the first frame (as replay writes them,
    /// EMULATION.md §6; unless [`Router::set_nodata`] turned them off).
    pub fn tick(&mut self, now: Timestamp) -> Vec<FlowRecord> {
        self.engine.housekeeping(now);
        let mut recs = Vec::new();
        self.agg.close_before(now.secs(), &mut recs);
        self.collator.add([Run::Records(recs)]);
        let mut out = Vec::new();
        let _ = self.collator.flush::<()>(now.secs(), &mut |r| {
            out.push(r.clone());
            Ok(())
        });
        out
    }

    /// Every open flow-log record, at the end of a run: the windows up to the last
    /// frame's, with their NODATA records, as replay ends a capture.
    pub fn finish(&mut self) -> Vec<FlowRecord> {
        let mut recs = Vec::new();
        self.agg.close_all(&mut recs);
        self.collator.add([Run::Records(recs)]);
        let mut out = Vec::new();
        let _ = self
            .collator
            .finish::<()>(self.last_frame.map(|t| t.secs()), &mut |r| {
                out.push(r.clone());
                Ok(())
            });
        out
    }

    /// A router for one worker of several, like this one (the same ruleset, window
    /// length, verdicts kept or not, internet peer), with its own tracking and flow-log
    /// records, which it orders by the time their first packet was judged; its
    /// records are collated with the other workers' by the caller
    /// ([`Router::close_records`]).
    pub fn worker(&self, w: usize, n: usize) -> Router {
        let mut r = Router::new(self.policy.vpc.clone(), self.agg.interval_secs());
        r.igw_peer = self.igw_peer;
        r.seq_by_time = Some((w as u64, n.max(1) as u64));
        if self.verdicts.is_some() {
            r.keep_verdicts();
        }
        r
    }

    /// Frees expired tracking state and closes the flow-log windows that ended by
    /// `now`: their records in record order, without NODATA (for a worker of several:
    /// the caller collates).
    pub fn close_records(&mut self, now: Timestamp) -> Vec<FlowRecord> {
        self.engine.housekeeping(now);
        let mut recs = Vec::new();
        self.agg.close_before(now.secs(), &mut recs);
        recs
    }

    /// Every open record, in record order, without NODATA (for a worker of several).
    pub fn close_all_records(&mut self) -> Vec<FlowRecord> {
        let mut recs = Vec::new();
        self.agg.close_all(&mut recs);
        recs
    }

    /// A worker's number of the last frame routed ([`Router::worker`]).
    pub fn frame_seq(&self) -> u64 {
        self.frame_seq
    }

    /// The least number a worker's next frame can get, if the clock reads `now`.
    pub fn next_seq_bound(&self, now: Timestamp) -> u64 {
        now.0.max(self.frame_seq + 1)
    }

    /// The times of the first and the last frame read.
    pub fn frame_times(&self) -> (Option<Timestamp>, Option<Timestamp>) {
        (self.first_frame, self.last_frame)
    }

    /// Adds a worker's counters to this router's (for the summary).
    pub fn absorb_stats(&mut self, o: &RouterStats) {
        let s = &mut self.stats;
        s.frames += o.frames;
        s.wire_packets += o.wire_packets;
        s.super_frames += o.super_frames;
        s.super_frame_segments += o.super_frame_segments;
        s.handed_off += o.handed_off;
        s.arp_answered += o.arp_answered;
        s.evaluated += o.evaluated;
        s.accepted += o.accepted;
        s.rejected += o.rejected;
        s.forwarded += o.forwarded;
        s.translated += o.translated;
        for (k, v) in &o.drops {
            *s.drops.entry(k.clone()).or_insert(0) += v;
        }
        for (k, v) in &o.rejects {
            *s.rejects.entry(k.clone()).or_insert(0) += v;
        }
    }

    /// Counts frames handed to another worker.
    pub fn count_handed_off(&mut self, n: u64) {
        self.stats.handed_off += n;
    }

    /// Counts a frame dropped outside the router (e.g. a worker's full hand-off queue).
    pub fn count_drop(&mut self, reason: &str) {
        self.drop_frame(reason);
    }

    /// The MAC learned (or set) for the internet gateway's peer.
    pub fn igw_peer(&self) -> Option<[u8; 6]> {
        self.igw_peer
    }

    /// Whether NODATA records are written.
    pub fn nodata(&self) -> bool {
        self.nodata
    }

    /// The flow-log aggregation interval, in seconds.
    pub fn interval_secs(&self) -> u32 {
        self.agg.interval_secs()
    }

    /// Whether to write NODATA records (default: yes, as replay does).
    pub fn set_nodata(&mut self, on: bool) {
        self.nodata = on;
        self.collator = Collator::new(
            self.metas.len() as u32,
            u64::from(self.agg.interval_secs()),
            on,
        );
    }

    fn drop_frame(&mut self, reason: &str) -> Vec<(Port, Vec<u8>)> {
        *self.stats.drops.entry(reason.to_string()).or_insert(0) += 1;
        Vec::new()
    }

    /// One frame read from `from` at wall-clock time `now`: the frames to write, each
    /// with its port. Never panics.
    pub fn handle_frame(
        &mut self,
        from: Port,
        frame: &[u8],
        now: Timestamp,
    ) -> Vec<(Port, Vec<u8>)> {
        let mut b = frame.to_vec();
        self.route_in_place(from, &mut b, false, now).frames(b)
    }

    /// [`Router::handle_frame`] for a TAP opened with `IFF_VNET_HDR`: `buf` is the
    /// 10-byte `virtio_net_hdr` and the frame, and so is every frame returned. A GSO
    /// super-frame is judged once, as one packet (tracking moves as for one packet, its
    /// TCP flags are the OR of its segments'), forwarded whole with its header, and
    /// counted in flow logs and verdicts as the wire packets it stands for
    /// ([`vnet::Plan`]). A header that does not fit its frame drops the frame, counted
    /// by reason (`vnet-...`). Never panics.
    pub fn handle_vnet_frame(
        &mut self,
        from: Port,
        buf: &[u8],
        now: Timestamp,
    ) -> Vec<(Port, Vec<u8>)> {
        let mut b = buf.to_vec();
        self.route_in_place(from, &mut b, true, now).frames(b)
    }

    /// What [`Router::handle_frame`] and [`Router::handle_vnet_frame`] do (`vnet`: `buf`
    /// starts with a `virtio_net_hdr`), without copying a forwarded frame: its MACs
    /// (and addresses, at the internet gateway) are rewritten in `buf`, which is then to
    /// be written to the port [`Routed::Forward`] names. Never panics.
    pub fn route_in_place(
        &mut self,
        from: Port,
        buf: &mut [u8],
        vnet: bool,
        now: Timestamp,
    ) -> Routed {
        self.stats.frames += 1;
        if let Some((w, n)) = self.seq_by_time {
            // The next number of this worker at or after both the clock and the last.
            let base = now.0.max(self.frame_seq + 1);
            self.frame_seq = base + (w + n - base % n) % n;
        }
        if !vnet {
            self.stats.wire_packets += 1;
            return self.handle(from, None, buf, now);
        }
        let Some(hdr) = VnetHdr::parse(buf) else {
            self.stats.wire_packets += 1;
            return self
                .drop_frame(vnet::VnetError::TruncatedHeader.reason())
                .into();
        };
        let frame = &mut buf[VNET_HDR_LEN..];
        let plan = match vnet::plan(&hdr, frame) {
            Ok(p) => p,
            Err(e) => {
                self.stats.wire_packets += 1;
                return self.drop_frame(e.reason()).into();
            }
        };
        self.stats.wire_packets += u64::from(plan.segments());
        if plan.is_super_frame() {
            self.stats.super_frames += 1;
            self.stats.super_frame_segments += u64::from(plan.segments());
        }
        self.handle(from, Some(Vnet { hdr, plan }), frame, now)
    }

    fn handle(
        &mut self,
        from: Port,
        vnet: Option<Vnet>,
        frame: &mut [u8],
        now: Timestamp,
    ) -> Routed {
        self.collator.first_packet(now.secs());
        self.last_frame = Some(now);
        if self.first_frame.is_none() {
            self.first_frame = Some(now);
        }
        if let Port::Eni(i) = from {
            if i as usize >= self.eni_macs.len() {
                return self.drop_frame("unknown-port").into();
            }
        }
        let Some(ethertype) = be16(frame, 12) else {
            return self.drop_frame("truncated-ethernet").into();
        };
        if from == Port::Igw {
            let mut src = [0; 6];
            src.copy_from_slice(&frame[6..12]);
            if src[0] & 1 == 0 && src != [0; 6] {
                self.igw_peer = Some(src);
            }
        }
        match ethertype {
            arp::ETHERTYPE_ARP => {
                let out = self.arp(from, frame);
                with_empty_hdr(out, vnet.is_some()).into()
            }
            0x0800 | 0x86dd => self.ip(from, vnet, frame, now),
            _ => self.drop_frame("not-ip").into(),
        }
    }

    fn arp(&mut self, from: Port, frame: &[u8]) -> Vec<(Port, Vec<u8>)> {
        let a = match arp::parse(frame) {
            Ok(a) => a,
            Err(e) => return self.drop_frame(e.reason()),
        };
        if a.op != arp::Op::Request {
            return self.drop_frame("arp-reply");
        }
        let answer = match from {
            Port::Eni(i) => {
                let s = self.eni_subnet[i as usize];
                if s == usize::MAX {
                    None
                } else if self.router_ip4[s] == Some(a.target_ip) {
                    Some(self.router_macs[s])
                } else {
                    let in_subnet = self.policy.vpc.subnets[s]
                        .ipv4_cidr
                        .is_some_and(|c| c.contains(&a.target_ip));
                    match self.policy.owner(IpAddr::V4(a.target_ip)) {
                        Some(o) if in_subnet && !o.is_public() && o.eni.0 != i => {
                            Some(self.eni_macs[o.eni.get()])
                        }
                        _ => None,
                    }
                }
            }
            Port::Igw => match self.policy.owner(IpAddr::V4(a.target_ip)) {
                Some(o) if o.is_public() => Some(self.igw_mac),
                _ => None,
            },
        };
        match answer {
            Some(mac) => {
                self.stats.arp_answered += 1;
                vec![(from, arp::frame(&arp::reply_to(&a, mac)))]
            }
            None => self.drop_frame("arp-not-owned"),
        }
    }

    fn outside_vpc(&self, a: IpAddr) -> bool {
        !self.vpc_cidrs.iter().any(|c| c.contains(&a))
    }

    fn ip(&mut self, from: Port, vnet: Option<Vnet>, frame: &mut [u8], now: Timestamp) -> Routed {
        if frame[0] & 1 == 1 {
            // Broadcast and multicast (IPv6 neighbour discovery, mDNS, ...).
            if let Some(out) = self.neighbour_solicitation(from, frame) {
                return with_empty_hdr(out, vnet.is_some()).into();
            }
            return self.drop_frame("multicast").into();
        }
        let pkt = match packet::parse(linktype::ETHERNET, frame) {
            Ok(p) => p,
            Err(e) => return self.drop_frame(&format!("malformed {}", e.reason())).into(),
        };
        // Where it goes, and the address translation on the way.
        let mut no_public = false;
        let (to, nat) = match from {
            Port::Eni(i) => {
                match self.policy.owner(pkt.src) {
                    Some(o) if o.eni.0 == i && !o.is_public() => {}
                    _ => return self.drop_frame("source-not-owned-by-eni").into(),
                }
                if self.policy.exempt_service(pkt.dst).is_some() {
                    return self.drop_frame("vpc-service-not-served").into();
                }
                match self.policy.owner(pkt.dst) {
                    Some(o) if o.is_public() => {
                        return self
                            .drop_frame("public-address-from-inside-not-emulated")
                            .into()
                    }
                    Some(o) if o.eni.0 == i => return self.drop_frame("to-itself").into(),
                    Some(o) => (Port::Eni(o.eni.0), None),
                    None if !self.outside_vpc(pkt.dst) => {
                        return self.drop_frame("destination-not-owned").into()
                    }
                    None => match pkt.src {
                        IpAddr::V4(src) => {
                            let public = self.policy.vpc.network_interfaces[i as usize]
                                .public_mappings()
                                .find(|&(_, private)| private == src)
                                .map(|(public, _)| public);
                            match public {
                                Some(p) => (Port::Igw, Some((true, src, p))),
                                // Judged and logged as replay does; the internet
                                // gateway drops it after (below).
                                None => {
                                    no_public = true;
                                    (Port::Igw, None)
                                }
                            }
                        }
                        IpAddr::V6(_) => (Port::Igw, None),
                    },
                }
            }
            Port::Igw => {
                if !self.outside_vpc(pkt.src) || self.policy.owner(pkt.src).is_some() {
                    return self.drop_frame("internet-source-inside-vpc").into();
                }
                match (self.policy.owner(pkt.dst), pkt.dst) {
                    (
                        Some(
                            o @ crate::policy::AddrOwner {
                                public_of: Some(private),
                                ..
                            },
                        ),
                        IpAddr::V4(public),
                    ) => (Port::Eni(o.eni.0), Some((false, public, private))),
                    (Some(o), IpAddr::V6(_)) => (Port::Eni(o.eni.0), None),
                    _ => return self.drop_frame("internet-destination-not-public").into(),
                }
            }
        };
        // One judgement; a super-frame is counted as the wire packets it stands for,
        // each with its own sequence number and IP bytes, as replay of its segments
        // counts them.
        let d = if self.verdicts.is_some() {
            self.checks.clear();
            self.engine.process_traced(&pkt, now, &mut self.checks)
        } else {
            self.engine.process(&pkt, now)
        };
        let segments = vnet.map_or(1, |v| v.plan.segments());
        let first_packet = self.stats.wire_packets + 1 - u64::from(segments);
        let reason = d.reason_text(&self.policy);
        self.why.clear();
        if self.verdicts.is_some() && d.verdict == Verdict::Accept {
            self.why_writer
                .write(&self.policy, &self.checks, &mut self.why);
        }
        // Where each observation's record was found: the segments after the first
        // reach it without a hash probe.
        let mut hints = [u32::MAX; 2];
        for s in 0..segments {
            self.seq += 1;
            let seq = if self.seq_by_time.is_some() {
                self.frame_seq
            } else {
                self.seq
            };
            for (obs, hint) in d.obs.iter().zip(hints.iter_mut()) {
                let Some(obs) = obs else { continue };
                let mut obs = *obs;
                if let Some(b) = vnet.and_then(|v| v.plan.segment_ip_bytes(s)) {
                    obs.bytes = b;
                }
                self.agg.observe_hinted(&obs, now, seq, 0, hint);
            }
            let number = first_packet + u64::from(s);
            self.write_verdict(&pkt, number, from, to, now, d.verdict, &reason);
        }
        let n = u64::from(segments);
        self.stats.evaluated += n;
        match d.verdict {
            Verdict::Accept => self.stats.accepted += n,
            Verdict::Reject => {
                self.stats.rejected += n;
                *self.stats.rejects.entry(reason).or_insert(0) += n;
                return Routed::Frames(Vec::new());
            }
            Verdict::None => return self.drop_frame("not-evaluated").into(),
        }
        if no_public {
            // The ENI's security groups and NACL let it out (and its flow log says
            // so), but the internet gateway has no public address to translate to.
            return self.drop_frame("no-public-ipv4").into();
        }
        let (dst_mac, src_mac) = match to {
            Port::Eni(j) => {
                let s = self.eni_subnet[j as usize];
                let rmac = self.router_macs.get(s).copied().unwrap_or(self.igw_mac);
                (self.eni_macs[j as usize], rmac)
            }
            Port::Igw => match self.igw_peer {
                Some(m) => (m, self.igw_mac),
                None => return self.drop_frame("internet-peer-mac-unknown").into(),
            },
        };
        if let Some((is_src, old, new)) = nat {
            let partial = vnet.is_some_and(|v| v.hdr.needs_csum());
            rewrite_ipv4(frame, is_src, old, new, partial);
            self.stats.translated += 1;
        }
        frame[0..6].copy_from_slice(&dst_mac);
        frame[6..12].copy_from_slice(&src_mac);
        self.stats.forwarded += 1;
        Routed::Forward(to)
    }

    #[allow(clippy::too_many_arguments)]
    fn write_verdict(
        &mut self,
        p: &Packet,
        number: u64,
        from: Port,
        to: Port,
        now: Timestamp,
        verdict: Verdict,
        reason: &str,
    ) {
        let Some(out) = self.verdicts.as_mut() else {
            return;
        };
        let port = |p: Port, ids: &Vpc| match p {
            Port::Eni(i) => ids.network_interfaces[i as usize].id.clone(),
            Port::Igw => "igw".to_string(),
        };
        let vpc = &self.policy.vpc;
        let _ = write!(
            out,
            "{{\"packet\":{},\"time\":{}.{:09},\"from\":\"{}\",\"to\":\"{}\",\"src\":\"{}\",\"dst\":\"{}\",\"protocol\":{},\"src_port\":{},\"dst_port\":{}",
            number,
            now.secs(),
            now.subsec_nanos(),
            port(from, vpc),
            port(to, vpc),
            p.src,
            p.dst,
            p.protocol,
            if p.protocol == PROTO_ICMP || p.protocol == PROTO_ICMPV6 { 0 } else { p.src_port },
            if p.protocol == PROTO_ICMP || p.protocol == PROTO_ICMPV6 { 0 } else { p.dst_port },
        );
        if p.protocol == PROTO_ICMP || p.protocol == PROTO_ICMPV6 {
            let _ = write!(
                out,
                ",\"icmp_type\":{},\"icmp_code\":{}",
                p.icmp_type, p.icmp_code
            );
        }
        let _ = write!(out, ",\"action\":\"{}\"", verdict.as_str());
        if !reason.is_empty() {
            let _ = write!(out, ",\"reason\":{}", serde_json::Value::from(reason));
        }
        if verdict == Verdict::Accept {
            // What let it through, as replay's lines say (README "Per-packet verdicts").
            let _ = write!(
                out,
                ",\"why\":{}",
                serde_json::Value::from(self.why.as_str())
            );
        }
        out.extend_from_slice(b"}\n");
    }

    /// An IPv6 neighbour solicitation (RFC 4861 §4.3) from an ENI port for the subnet
    /// router or another ENI's address of the subnet, or from the gateway port for an
    /// ENI's IPv6 address: the advertisement that answers it. `None` when the frame is
    /// not a solicitation; a solicitation for an address nobody owns is dropped and
    /// counted.
    fn neighbour_solicitation(&mut self, from: Port, f: &[u8]) -> Option<Vec<(Port, Vec<u8>)>> {
        // Ethernet, IPv6 with no extension headers, ICMPv6 type 135 code 0.
        if be16(f, 12)? != 0x86dd || f.len() < 14 + 40 + 24 || f[14 + 6] != 58 {
            return None;
        }
        let icmp = 14 + 40;
        if f[icmp] != 135 || f[icmp + 1] != 0 || f[14 + 7] != 255 {
            return None;
        }
        let mut b = [0u8; 16];
        b.copy_from_slice(&f[14 + 8..14 + 24]);
        let src = Ipv6Addr::from(b);
        b.copy_from_slice(&f[icmp + 8..icmp + 24]);
        let target = Ipv6Addr::from(b);
        if src.is_unspecified() {
            // Duplicate address detection: never claim the asker's own address.
            return Some(self.drop_frame("nd-duplicate-address-detection"));
        }
        let answer = match from {
            Port::Eni(i) => {
                let s = self.eni_subnet[i as usize];
                if s == usize::MAX {
                    None
                } else if self.router_ip6[s].contains(&target) {
                    Some(self.router_macs[s])
                } else {
                    let in_subnet = self.policy.vpc.subnets[s].contains(IpAddr::V6(target));
                    match self.policy.owner(IpAddr::V6(target)) {
                        Some(o) if in_subnet && o.eni.0 != i => Some(self.eni_macs[o.eni.get()]),
                        _ => None,
                    }
                }
            }
            Port::Igw => match self.policy.owner(IpAddr::V6(target)) {
                Some(_) => Some(self.igw_mac),
                None => None,
            },
        };
        let Some(mac) = answer else {
            return Some(self.drop_frame("nd-not-owned"));
        };
        let mut asker = [0u8; 6];
        asker.copy_from_slice(&f[6..12]);
        self.stats.arp_answered += 1;
        Some(vec![(
            from,
            neighbour_advertisement(mac, target, asker, src, from != Port::Igw),
        )])
    }
}

/// A solicited neighbour advertisement for `target` at `mac`, to `to_mac`/`to_ip`.
fn neighbour_advertisement(
    mac: [u8; 6],
    target: Ipv6Addr,
    to_mac: [u8; 6],
    to_ip: Ipv6Addr,
    router: bool,
) -> Vec<u8> {
    let mut icmp = Vec::with_capacity(32);
    icmp.extend_from_slice(&[136, 0, 0, 0]);
    // Router (only on ENI ports: the router answers for the whole subnet), solicited,
    // override.
    icmp.extend_from_slice(&[if router { 0xe0 } else { 0x60 }, 0, 0, 0]);
    icmp.extend_from_slice(&target.octets());
    icmp.extend_from_slice(&[2, 1]);
    icmp.extend_from_slice(&mac);
    let ip = crate::wire::emit::Ip {
        ttl: 255,
        ..crate::wire::emit::Ip::new(IpAddr::V6(target), IpAddr::V6(to_ip))
    };
    let acc = checksum::pseudo_header(ip.src, ip.dst, 58, icmp.len());
    let c = checksum::finish(checksum::sum(&icmp, acc));
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let eth = crate::wire::emit::Eth {
        dst: to_mac,
        src: mac,
    };
    crate::wire::emit::frame(
        &eth,
        &ip,
        &crate::wire::emit::L4::Other { protocol: 58 },
        &icmp,
    )
}

/// Frames without offload (ARP and neighbour answers) for a TAP with `IFF_VNET_HDR`:
/// an all-zero header before each.
fn with_empty_hdr(frames: Vec<(Port, Vec<u8>)>, vnet: bool) -> Vec<(Port, Vec<u8>)> {
    if !vnet {
        return frames;
    }
    frames
        .into_iter()
        .map(|(p, f)| {
            let mut b = Vec::with_capacity(VNET_HDR_LEN + f.len());
            b.extend_from_slice(&[0; VNET_HDR_LEN]);
            b.extend_from_slice(&f);
            (p, b)
        })
        .collect()
}

/// Rewrites the IPv4 source (`is_src`) or destination address `old` of an Ethernet
/// frame to `new`, fixing the IPv4 header checksum and, on an unfragmented or first
/// fragment, the TCP or UDP checksum (RFC 1624). ICMP has no pseudo-header; the
/// addresses quoted inside ICMP errors are not translated. The frame was parsed before,
/// so its headers are there; a short frame is left as it is, never a panic.
///
/// `partial`: the frame came with `VIRTIO_NET_HDR_F_NEEDS_CSUM`, so its TCP or UDP
/// checksum field holds the pseudo-header sum itself, not its complement (the card
/// finishes it): the same address change is added to that sum, which is RFC 1624's
/// update with the other sign (`P' = P + ~m + m'`, i.e. `~update(~P)`).
pub fn rewrite_ipv4(f: &mut [u8], is_src: bool, old: Ipv4Addr, new: Ipv4Addr, partial: bool) {
    let ip = 14;
    let Some(&vihl) = f.get(ip) else { return };
    let ihl = usize::from(vihl & 0x0f) * 4;
    if f.len() < ip + ihl || ihl < 20 {
        return;
    }
    let (o, n) = (IpAddr::V4(old), IpAddr::V4(new));
    let at = ip + if is_src { 12 } else { 16 };
    f[at..at + 4].copy_from_slice(&new.octets());
    let stored = u16::from_be_bytes([f[ip + 10], f[ip + 11]]);
    f[ip + 10..ip + 12].copy_from_slice(&checksum::update_addr(stored, o, n).to_be_bytes());
    let offset = u16::from_be_bytes([f[ip + 6], f[ip + 7]]) & 0x1fff;
    if offset != 0 {
        return;
    }
    let l4 = ip + ihl;
    let at = match f[ip + 9] {
        PROTO_TCP => l4 + 16,
        PROTO_UDP => l4 + 6,
        _ => return,
    };
    let Some(c) = f.get(at..at + 2) else { return };
    let stored = u16::from_be_bytes([c[0], c[1]]);
    if partial {
        let p = !checksum::update_addr(!stored, o, n);
        f[at..at + 2].copy_from_slice(&p.to_be_bytes());
        return;
    }
    if f[ip + 9] == 17 && stored == 0 {
        return; // UDP without a checksum stays without one.
    }
    let mut c = checksum::update_addr(stored, o, n);
    if f[ip + 9] == 17 && c == 0 {
        c = 0xffff;
    }
    f[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::emit::{frame, Eth, Ip, L4};
    use crate::wire::vnet::{VnetHdr, VNET_HDR_LEN};

    const SECURECART: &str = include_str!("../../rulesets/securecart.toml");
    const ALB_A: u32 = 0; // eni-...0101, 10.0.1.10, public 203.0.113.10
    const BASTION: u32 = 2; // eni-...0103, 10.0.1.20, public 203.0.113.30
    const APP_1: u32 = 3; // eni-...0201, 10.0.11.10
    const DB_1: u32 = 6; // eni-...0301, 10.0.21.10
    const T: Timestamp = Timestamp(1_700_000_000_000_000_000);
    const PEER: [u8; 6] = [0x02, 0xee, 0, 0, 0, 1];

    fn router() -> Router {
        let vpc = crate::load::load_str("securecart.toml", SECURECART).unwrap();
        let mut r = Router::new(Arc::new(vpc), 600);
        r.set_igw_peer(PEER);
        r
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn tcp(src: &str, dst: &str, sport: u16, dport: u16, flags: u8) -> Vec<u8> {
        let l4 = L4::Tcp {
            sport,
            dport,
            seq: 1000,
            ack: 1,
            flags,
            window: 64240,
        };
        frame(&Eth::default(), &Ip::new(ip(src), ip(dst)), &l4, b"hello")
    }

    fn arp_request(sender: &str, target: &str) -> Vec<u8> {
        arp::frame(&arp::Arp {
            op: arp::Op::Request,
            sender_mac: [2, 0x11, 0x22, 0x33, 0x44, 0x55],
            sender_ip: sender.parse().unwrap(),
            target_mac: [0; 6],
            target_ip: target.parse().unwrap(),
        })
    }

    /// The frame verifies as a whole: parse it with etherparse and check every checksum.
    fn checksums_ok(f: &[u8]) -> bool {
        let s = etherparse::SlicedPacket::from_ethernet(f).unwrap();
        let Some(etherparse::NetSlice::Ipv4(v4)) = s.net else {
            return true;
        };
        let h = v4.header();
        let hdr = h.to_header();
        if hdr.calc_header_checksum() != hdr.header_checksum {
            return false;
        }
        match s.transport {
            Some(etherparse::TransportSlice::Tcp(t)) => {
                let c = t.to_header().calc_checksum_ipv4(&hdr, t.payload()).unwrap();
                c == t.checksum()
            }
            _ => true,
        }
    }

    #[test]
    fn macs_are_derived_from_ids_and_stable() {
        assert_eq!(
            eni_mac("eni-0a1b2c3d4e5f60101"),
            eni_mac("eni-0a1b2c3d4e5f60101")
        );
        assert_ne!(
            eni_mac("eni-0a1b2c3d4e5f60101"),
            eni_mac("eni-0a1b2c3d4e5f60102")
        );
        assert_eq!(eni_mac("eni-x")[0], 0x02);
        // Pinned: a change would change every lab's MACs.
        assert_eq!(mac_text(derived_mac("")), "02:ef:d0:1f:60:ba");
    }

    #[test]
    fn arp_for_the_subnet_router_and_owned_addresses_only() {
        let mut r = router();
        let out = r.handle_frame(Port::Eni(APP_1), &arp_request("10.0.11.10", "10.0.11.1"), T);
        assert_eq!(out.len(), 1);
        let a = arp::parse(&out[0].1).unwrap();
        assert_eq!(out[0].0, Port::Eni(APP_1));
        assert_eq!(a.op, arp::Op::Reply);
        assert_eq!(a.sender_mac, router_mac("subnet-0a1b2c3d4e5f60021"));
        assert_eq!(a.sender_ip, "10.0.11.1".parse::<Ipv4Addr>().unwrap());
        assert_eq!(a.target_mac, [2, 0x11, 0x22, 0x33, 0x44, 0x55]);
        // Another ENI of the same subnet: its own MAC.
        let out = r.handle_frame(
            Port::Eni(APP_1),
            &arp_request("10.0.11.10", "10.0.11.11"),
            T,
        );
        let a = arp::parse(&out[0].1).unwrap();
        assert_eq!(a.sender_mac, eni_mac("eni-0a1b2c3d4e5f60202"));
        // Nobody's address, an address of another subnet, the asker's own address.
        for target in ["10.0.11.99", "10.0.21.10", "10.0.11.10"] {
            let out = r.handle_frame(Port::Eni(APP_1), &arp_request("10.0.11.10", target), T);
            assert!(out.is_empty(), "{target}");
        }
        assert_eq!(r.drops()["arp-not-owned"], 3);
        // From the internet: public addresses only.
        let out = r.handle_frame(Port::Igw, &arp_request("192.0.2.10", "203.0.113.30"), T);
        assert_eq!(
            arp::parse(&out[0].1).unwrap().sender_mac,
            igw_mac("vpc-0a1b2c3d4e5f60001")
        );
        assert!(r
            .handle_frame(Port::Igw, &arp_request("192.0.2.10", "203.0.113.99"), T)
            .is_empty());
        assert!(r
            .handle_frame(Port::Igw, &arp_request("192.0.2.10", "10.0.1.20"), T)
            .is_empty());
        assert_eq!(r.stats().arp_answered, 3);
    }

    #[test]
    fn app_to_db_is_forwarded_and_the_reply_too() {
        let mut r = router();
        let syn = tcp("10.0.11.10", "10.0.21.10", 40000, 5432, 2);
        let out = r.handle_frame(Port::Eni(APP_1), &syn, T);
        assert_eq!(out.len(), 1);
        let (port, f) = &out[0];
        assert_eq!(*port, Port::Eni(DB_1));
        assert_eq!(&f[0..6], &eni_mac("eni-0a1b2c3d4e5f60301"));
        assert_eq!(&f[6..12], &router_mac("subnet-0a1b2c3d4e5f60031"));
        assert_eq!(&f[12..], &syn[12..], "only the MACs change");
        let synack = tcp("10.0.21.10", "10.0.11.10", 5432, 40000, 0x12);
        let out = r.handle_frame(Port::Eni(DB_1), &synack, T);
        assert_eq!(out[0].0, Port::Eni(APP_1));
        assert_eq!(r.stats().accepted, 2);
        // The database never opens a connection.
        let out = r.handle_frame(
            Port::Eni(DB_1),
            &tcp("10.0.21.10", "10.0.11.10", 40001, 8080, 2),
            T,
        );
        assert!(out.is_empty());
        assert_eq!(r.stats().rejected, 1);
        let recs = r.finish();
        assert!(
            recs.len() >= 4,
            "egress and ingress records of both directions"
        );
    }

    #[test]
    fn the_internet_gateway_translates_both_ways_and_fixes_checksums() {
        let mut r = router();
        // A customer to the ALB's public address, port 443.
        let syn = tcp("192.0.2.10", "203.0.113.10", 50000, 443, 2);
        assert!(checksums_ok(&syn));
        let out = r.handle_frame(Port::Igw, &syn, T);
        assert_eq!(out.len(), 1, "{:?}", r.stats());
        let (port, f) = &out[0];
        assert_eq!(*port, Port::Eni(ALB_A));
        let p = packet::parse(linktype::ETHERNET, f).unwrap();
        assert_eq!(p.dst, ip("10.0.1.10"));
        assert_eq!(p.src, ip("192.0.2.10"));
        assert!(checksums_ok(f));
        // The reply leaves with the public address as its source.
        let synack = tcp("10.0.1.10", "192.0.2.10", 443, 50000, 0x12);
        let out = r.handle_frame(Port::Eni(ALB_A), &synack, T);
        assert_eq!(out.len(), 1, "{:?}", r.stats());
        let (port, f) = &out[0];
        assert_eq!(*port, Port::Igw);
        // To the MAC the gateway port's frames came from (learned), from the gateway's.
        assert_eq!(&f[0..6], &Eth::default().src);
        assert_ne!(&f[0..6], &PEER);
        assert_eq!(&f[6..12], &igw_mac("vpc-0a1b2c3d4e5f60001"));
        let p = packet::parse(linktype::ETHERNET, f).unwrap();
        assert_eq!(p.src, ip("203.0.113.10"));
        assert!(checksums_ok(f));
        assert_eq!(r.stats().translated, 2);
        // Flow logs show the private address for the ENI's side.
        let recs = r.finish();
        assert!(recs
            .iter()
            .all(|rec| rec.srcaddr != ip("203.0.113.10") && rec.dstaddr != ip("203.0.113.10")));
    }

    #[test]
    fn udp_checksums_survive_translation() {
        let mut f = frame(
            &Eth::default(),
            &Ip::new(ip("10.0.1.20"), ip("192.0.2.10")),
            &L4::Udp {
                sport: 5000,
                dport: 53,
            },
            b"abc",
        );
        rewrite_ipv4(
            &mut f,
            true,
            "10.0.1.20".parse().unwrap(),
            "203.0.113.30".parse().unwrap(),
            false,
        );
        let s = etherparse::SlicedPacket::from_ethernet(&f).unwrap();
        let Some(etherparse::NetSlice::Ipv4(v4)) = s.net else {
            panic!()
        };
        let hdr = v4.header().to_header();
        assert_eq!(hdr.calc_header_checksum(), hdr.header_checksum);
        let Some(etherparse::TransportSlice::Udp(u)) = s.transport else {
            panic!()
        };
        assert_eq!(
            u.to_header().calc_checksum_ipv4(&hdr, u.payload()).unwrap(),
            u.checksum()
        );
    }

    #[test]
    fn no_public_address_no_internet() {
        let mut r = router();
        // App tasks allow HTTPS out, but have no public IPv4 (they would need a NAT gateway).
        let out = r.handle_frame(
            Port::Eni(APP_1),
            &tcp("10.0.11.10", "192.0.2.10", 40000, 443, 2),
            T,
        );
        assert!(out.is_empty());
        assert_eq!(r.drops()["no-public-ipv4"], 1);
        // Judged first, as replay judges it: the app SG allows HTTPS out, so the
        // ENI's flow log has an ACCEPT record of it (AWS logs it at the ENI; the
        // internet gateway drops it after).
        assert_eq!((r.stats().evaluated, r.stats().accepted), (1, 1));
        let recs = r.finish();
        let rec = recs
            .iter()
            .find(|x| x.dstport == 443 && x.srcport == 40000)
            .expect("a record of the packet");
        assert_eq!((rec.action, rec.packets), (crate::model::Action::Accept, 1));
    }

    #[test]
    fn spoofed_unowned_and_denied_frames_are_dropped_and_counted() {
        let mut r = router();
        // A source address the ENI does not own.
        assert!(r
            .handle_frame(
                Port::Eni(APP_1),
                &tcp("10.0.11.11", "10.0.21.10", 1, 5432, 2),
                T
            )
            .is_empty());
        // A destination nobody owns.
        assert!(r
            .handle_frame(
                Port::Eni(APP_1),
                &tcp("10.0.11.10", "10.0.21.99", 1, 5432, 2),
                T
            )
            .is_empty());
        // The internet to a private address.
        assert!(r
            .handle_frame(Port::Igw, &tcp("192.0.2.10", "10.0.1.10", 1, 443, 2), T)
            .is_empty());
        // The internet claiming a VPC source.
        assert!(r
            .handle_frame(Port::Igw, &tcp("10.0.1.10", "203.0.113.10", 1, 443, 2), T)
            .is_empty());
        // Denied by the bastion's group: the internet to the bastion on port 80.
        assert!(r
            .handle_frame(Port::Igw, &tcp("192.0.2.10", "203.0.113.30", 1, 80, 2), T)
            .is_empty());
        let d = r.drops();
        assert_eq!(d["source-not-owned-by-eni"], 1);
        assert_eq!(d["destination-not-owned"], 1);
        assert_eq!(d["internet-destination-not-public"], 1);
        assert_eq!(d["internet-source-inside-vpc"], 1);
        assert_eq!(r.stats().rejected, 1);
        assert_eq!(r.stats().forwarded, 0);
        let _ = BASTION;
    }

    #[test]
    fn neighbour_solicitation_for_the_subnet_router_is_answered() {
        let mut r = router();
        let target: Ipv6Addr = "2600:1f18:4a3:6d01::1".parse().unwrap();
        let src: Ipv6Addr = "2600:1f18:4a3:6d01::10".parse().unwrap();
        let mut icmp = vec![135, 0, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&target.octets());
        icmp.extend_from_slice(&[1, 1, 2, 0x11, 0x22, 0x33, 0x44, 0x55]);
        let ip6 = Ip {
            ttl: 255,
            ..Ip::new(IpAddr::V6(src), "ff02::1:ff00:1".parse().unwrap())
        };
        let eth = Eth {
            dst: [0x33, 0x33, 0xff, 0, 0, 1],
            src: [2, 0x11, 0x22, 0x33, 0x44, 0x55],
        };
        let f = frame(&eth, &ip6, &L4::Other { protocol: 58 }, &icmp);
        let out = r.handle_frame(Port::Eni(ALB_A), &f, T);
        assert_eq!(out.len(), 1, "{:?}", r.stats());
        let s = etherparse::SlicedPacket::from_ethernet(&out[0].1).unwrap();
        let Some(etherparse::TransportSlice::Icmpv6(na)) = s.transport else {
            panic!("{s:?}")
        };
        assert_eq!(na.type_u8(), 136);
        let Some(etherparse::NetSlice::Ipv6(v6)) = s.net else {
            panic!()
        };
        let h = v6.header().to_header();
        assert_eq!(
            na.icmp_type()
                .calc_checksum(h.source, h.destination, na.payload())
                .ok(),
            Some(na.checksum())
        );
        assert_eq!(&out[0].1[6..12], &router_mac("subnet-0a1b2c3d4e5f60011"));
    }

    #[test]
    fn ten_thousand_malformed_frames_never_panic_and_are_counted() {
        let mut r = router();
        let good = [
            tcp("10.0.11.10", "10.0.21.10", 40000, 5432, 2),
            tcp("192.0.2.10", "203.0.113.10", 50000, 443, 2),
            arp_request("10.0.11.10", "10.0.11.1"),
        ];
        // A fixed xorshift: the same frames every run.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for i in 0..10_000u64 {
            let g = &good[(i % 3) as usize];
            let mut f: Vec<u8> = match i % 4 {
                0 => g[..(next() as usize % g.len())].to_vec(),
                1 => {
                    let mut f = g.clone();
                    for _ in 0..4 {
                        let at = next() as usize % f.len();
                        f[at] = next() as u8;
                    }
                    f
                }
                _ => (0..(next() % 120) as usize).map(|_| next() as u8).collect(),
            };
            if i % 7 == 0 && f.len() > 14 {
                f[12..14].copy_from_slice(&[0x08, 0x00]);
            }
            let port = if next() % 2 == 0 {
                Port::Igw
            } else {
                Port::Eni((next() % 12) as u32)
            };
            let _ = r.handle_frame(port, &f, T);
        }
        let s = r.stats();
        assert_eq!(s.frames, 10_000);
        let dropped: u64 = s.drops.values().sum();
        assert_eq!(
            dropped + s.arp_answered + s.accepted + s.rejected,
            10_000,
            "{s:?}"
        );
        assert!(s.drops.keys().any(|k| k.starts_with("malformed")), "{s:?}");
    }

    fn vnet_buf(h: &VnetHdr, f: &[u8]) -> Vec<u8> {
        let mut b = h.bytes().to_vec();
        b.extend_from_slice(f);
        b
    }

    /// A super-frame is judged once and counted as the wire packets it stands for
    /// (EMULATION.md §7 "Offloads"): packets = ceil(payload / gso_size), bytes = the
    /// IP bytes of those packets; one verdict line per wire packet, numbered as the
    /// capture numbers them. It leaves whole, with its header.
    #[test]
    fn a_super_frame_is_judged_once_and_counted_as_its_wire_packets() {
        let mut r = router();
        r.keep_verdicts();
        // app-1 -> db-1:5432 (allowed), 10,000 bytes in 1,448-byte segments: 7 packets
        // (6 × 1,448 = 8,688, and 1,312), each with 40 bytes of headers.
        let (h, f) = crate::wire::vnet::tso_frame_ports(
            "10.0.11.10",
            "10.0.21.10",
            (40000, 5432),
            0x18,
            10_000,
            1448,
        );
        // A frame before it: the super-frame's packets are numbered 2 to 8.
        r.handle_vnet_frame(
            Port::Eni(APP_1),
            &vnet_buf(&VnetHdr::default(), &arp_request("10.0.11.10", "10.0.11.1")),
            T,
        );
        let out = r.handle_vnet_frame(Port::Eni(APP_1), &vnet_buf(&h, &f), T);
        assert_eq!(out.len(), 1);
        let (port, fwd) = &out[0];
        assert_eq!(*port, Port::Eni(DB_1));
        assert_eq!(VnetHdr::parse(fwd), Some(h), "the header goes along");
        assert_eq!(&fwd[VNET_HDR_LEN + 12..], &f[12..], "only the MACs change");
        let s = r.stats();
        assert_eq!((s.frames, s.wire_packets), (2, 8));
        assert_eq!((s.super_frames, s.super_frame_segments), (1, 7));
        assert_eq!((s.evaluated, s.accepted, s.forwarded), (7, 7, 1));
        assert_eq!(
            r.engine_stats().conntrack_created,
            2,
            "one packet for tracking"
        );
        let v = String::from_utf8(r.take_verdicts()).unwrap();
        let numbers: Vec<u64> = v
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["packet"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(numbers, [2, 3, 4, 5, 6, 7, 8]);
        let recs = r.finish();
        let ok: Vec<_> = recs
            .iter()
            .filter(|rec| rec.log_status == crate::flowlog::LogStatus::Ok)
            .collect();
        assert_eq!(ok.len(), 2, "app-1 egress, db-1 ingress");
        for rec in ok {
            assert_eq!(rec.packets, 7);
            assert_eq!(rec.bytes, 7 * 40 + 10_000);
        }
    }

    /// Live verdict lines carry replay's `why` for accepted packets (README
    /// "Per-packet verdicts"): the SG rule that admitted a new connection, then
    /// `tracked` for its reply; a REJECT has a `reason` and no `why`.
    #[test]
    fn verdict_lines_say_why_a_packet_was_accepted() {
        let mut r = router();
        r.keep_verdicts();
        r.handle_frame(
            Port::Eni(APP_1),
            &tcp("10.0.11.10", "10.0.21.10", 40000, 5432, 2),
            T,
        );
        r.handle_frame(
            Port::Eni(DB_1),
            &tcp("10.0.21.10", "10.0.11.10", 5432, 40000, 0x12),
            T,
        );
        r.handle_frame(
            Port::Eni(DB_1),
            &tcp("10.0.21.10", "10.0.11.10", 40001, 8080, 2),
            T,
        );
        let v: Vec<serde_json::Value> = String::from_utf8(r.take_verdicts())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(v.len(), 3);
        let why = |i: usize| v[i]["why"].as_str().unwrap_or("").to_string();
        // app-1's egress rule (tcp 5432 to the db group), both NACLs, db-1's ingress.
        assert!(
            why(0).starts_with("sg-egress eni-0a1b2c3d4e5f60201 new by "),
            "{}",
            why(0)
        );
        assert!(why(0).contains("nacl-outbound acl-") && why(0).contains("nacl-inbound acl-"));
        assert!(
            why(0).contains("sg-ingress eni-0a1b2c3d4e5f60301 new by "),
            "{}",
            why(0)
        );
        assert!(
            why(1).contains("sg-egress eni-0a1b2c3d4e5f60301 tracked"),
            "{}",
            why(1)
        );
        assert!(
            why(1).contains("sg-ingress eni-0a1b2c3d4e5f60201 tracked"),
            "{}",
            why(1)
        );
        assert_eq!(v[2]["action"], "REJECT");
        assert!(v[2].get("why").is_none() && v[2]["reason"].is_string());
    }

    /// IPv6: a TSO super-frame from the internet to the ALB's IPv6 address (untranslated)
    /// counts its segments with 60 bytes of headers each (40 IPv6 + 20 TCP).
    #[test]
    fn an_ipv6_super_frame_counts_its_segments() {
        let mut r = router();
        let (h, f) = crate::wire::vnet::tso_frame_ports(
            "2001:db8::7",
            "2600:1f18:4a3:6d01::10",
            (50000, 443),
            0x10,
            5000,
            1428,
        );
        let out = r.handle_vnet_frame(Port::Igw, &vnet_buf(&h, &f), T);
        assert_eq!(out.len(), 1, "{:?}", r.stats());
        assert_eq!(out[0].0, Port::Eni(ALB_A));
        assert_eq!(r.stats().super_frame_segments, 4, "ceil(5000 / 1428)");
        let recs = r.finish();
        let rec = recs
            .iter()
            .find(|rec| rec.log_status == crate::flowlog::LogStatus::Ok)
            .unwrap();
        assert_eq!((rec.packets, rec.bytes), (4, 4 * 60 + 5000));
    }

    /// The gateway's 1:1 NAT on frames whose checksum the card finishes: the TCP field
    /// holds the pseudo-header sum, and the address change must be added to it with the
    /// other sign than RFC 1624's update of a finished checksum. Checked by cutting the
    /// translated super-frame as the card would (from the partial sum) and verifying
    /// every segment's checksums from scratch with etherparse; and on a frame without
    /// GSO, finished the same way.
    #[test]
    fn nat_keeps_partial_checksums_right() {
        let mut r = router();
        let cases = [
            // The internet to the ALB's public address (destination rewritten).
            (Port::Igw, "192.0.2.10", "203.0.113.10", (50000, 443), 0x10),
            // The ALB's reply (source rewritten).
            (
                Port::Eni(ALB_A),
                "10.0.1.10",
                "192.0.2.10",
                (443, 50000),
                0x18,
            ),
        ];
        for (from, src, dst, ports, flags) in cases {
            for (gso, payload) in [(true, 5000), (false, 900)] {
                let (mut h, f) =
                    crate::wire::vnet::tso_frame_ports(src, dst, ports, flags, payload, 1448);
                if !gso {
                    h.gso_type = crate::wire::vnet::GSO_NONE;
                    h.gso_size = 0;
                }
                let out = r.handle_vnet_frame(from, &vnet_buf(&h, &f), T);
                assert_eq!(out.len(), 1, "{src} -> {dst}: {:?}", r.stats());
                let fwd = &out[0].1;
                let h2 = VnetHdr::parse(fwd).unwrap();
                let f2 = &fwd[VNET_HDR_LEN..];
                let p = packet::parse(linktype::ETHERNET, f2).unwrap();
                assert!(p.src != ip(src) || p.dst != ip(dst), "translated");
                let plan = crate::wire::vnet::plan(&h2, f2).unwrap();
                let mut n = 0;
                plan.segment(f2, &mut Vec::new(), &mut |seg| {
                    n += 1;
                    assert!(checksums_ok(seg), "{src} -> {dst}, gso {gso}, segment {n}");
                });
                assert_eq!(n, if gso { 4 } else { 1 });
                // The old sign would be wrong: the plain update breaks the partial sum.
                let mut wrong = f.clone();
                let (old, new) = match from {
                    Port::Igw => ("203.0.113.10", "10.0.1.10"),
                    _ => ("10.0.1.10", "203.0.113.10"),
                };
                rewrite_ipv4(
                    &mut wrong,
                    from != Port::Igw,
                    old.parse().unwrap(),
                    new.parse().unwrap(),
                    false,
                );
                let plan = crate::wire::vnet::plan(&h, &wrong).unwrap();
                let mut all_ok = true;
                plan.segment(&wrong, &mut Vec::new(), &mut |seg| {
                    all_ok &= checksums_ok(seg)
                });
                assert!(
                    !all_ok,
                    "the finished-checksum update does not fit a partial sum"
                );
            }
        }
        assert_eq!(r.stats().translated, 4);
    }

    /// Headers that do not fit their frames are dropped and counted by reason, and a
    /// flood of random ones never panics.
    #[test]
    fn malformed_vnet_headers_are_dropped_and_counted_by_reason() {
        let mut r = router();
        let (h, f) = crate::wire::vnet::tso_frame_ports(
            "10.0.11.10",
            "10.0.21.10",
            (40000, 5432),
            0x10,
            4000,
            1448,
        );
        let bad = [
            VnetHdr { gso_size: 0, ..h },
            VnetHdr {
                hdr_len: 60_000,
                ..h
            },
            VnetHdr {
                gso_type: crate::wire::vnet::GSO_TCPV6,
                ..h
            },
            VnetHdr {
                gso_type: crate::wire::vnet::GSO_UDP_L4,
                csum_offset: 6,
                ..h
            },
        ];
        for b in bad {
            assert!(r
                .handle_vnet_frame(Port::Eni(APP_1), &vnet_buf(&b, &f), T)
                .is_empty());
        }
        assert!(r
            .handle_vnet_frame(Port::Eni(APP_1), &[1, 2, 3], T)
            .is_empty());
        let d = r.drops();
        assert_eq!(d["vnet-bad-gso-size"], 1);
        assert_eq!(d["vnet-hdr-len-beyond-frame"], 1);
        assert_eq!(d["vnet-gso-protocol-mismatch"], 2);
        assert_eq!(d["vnet-truncated-header"], 1);
        assert_eq!(r.stats().evaluated, 0);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let good = vnet_buf(&h, &f);
        for i in 0..10_000u64 {
            let mut b = good[..(next() as usize % good.len()).max(1)].to_vec();
            for _ in 0..(i % 4) {
                let at = next() as usize % b.len().min(80);
                b[at] = next() as u8;
            }
            let _ = r.handle_vnet_frame(Port::Eni(APP_1), &b, T);
        }
        let s = r.stats();
        assert_eq!(s.frames, 10_005);
        let vnet_reasons = s.drops.keys().filter(|k| k.starts_with("vnet-")).count();
        assert!(vnet_reasons >= 4, "{s:?}");
    }

    /// EMULATION.md §4 on a reload: the tracked SSH session (office, allowed from the
    /// office range only) keeps passing without its inbound rule; the untracked one
    /// (world, 0.0.0.0/0 both ways) is cut at once; a new session is refused.
    #[test]
    fn reload_keeps_tracked_sessions_and_cuts_untracked_ones() {
        let before = include_str!("../../rulesets/lesson-untracked.toml");
        let after = include_str!("../../rulesets/lesson-untracked-after.toml");
        let load = |name, text| Arc::new(crate::load::load_str(name, text).unwrap());
        let mut r = Router::new(load("before.toml", before), 600);
        r.set_igw_peer(PEER);
        const SYN: u8 = 0x02;
        const ACK: u8 = 0x10;
        // Customer 192.0.2.10 to world's public address; office 198.51.100.7 to office's.
        let world = |f| tcp("192.0.2.10", "203.0.113.31", 40000, 22, f);
        let office = |f| tcp("198.51.100.7", "203.0.113.32", 40001, 22, f);
        let mut t = T;
        for f in [SYN, ACK] {
            t = Timestamp(t.0 + 1_000_000);
            assert_eq!(r.handle_frame(Port::Igw, &world(f), t).len(), 1);
            assert_eq!(r.handle_frame(Port::Igw, &office(f), t).len(), 1);
        }
        let kept = r.reload(load("after.toml", after)).unwrap();
        assert_eq!(kept, 1, "only the office session is tracked");
        t = Timestamp(t.0 + 1_000_000);
        assert_eq!(
            r.handle_frame(Port::Igw, &office(ACK), t).len(),
            1,
            "tracked: kept"
        );
        assert!(
            r.handle_frame(Port::Igw, &world(ACK), t).is_empty(),
            "untracked: cut"
        );
        let new = tcp("198.51.100.7", "203.0.113.32", 40002, 22, SYN);
        assert!(
            r.handle_frame(Port::Igw, &new, t).is_empty(),
            "new sessions: refused"
        );
        // Another network is refused and the rules in force stay.
        let mut other = crate::load::load_str("after.toml", after).unwrap();
        other.network_interfaces[1].private_ipv4 = vec!["10.3.1.99".parse().unwrap()];
        let e = r.reload(Arc::new(other)).unwrap_err();
        assert!(
            e.contains("eni-0c1a55e0000000032") && e.contains("addresses"),
            "{e}"
        );
        assert_eq!(r.handle_frame(Port::Igw, &office(ACK), t).len(), 1);
    }

    /// Windows close on the time the loop passes to `tick`: a window that ended gets
    /// its records, and one NODATA record for every ENI without traffic in it
    /// (EMULATION.md §6); `set_nodata(false)` leaves them out.
    #[test]
    fn ticks_close_windows_with_nodata_for_quiet_enis() {
        for nodata in [true, false] {
            let mut r = router();
            r.set_nodata(nodata);
            // 1,700,000,030 lies in the 600-s window 1,699,999,800 .. 1,700,000,400.
            let t = Timestamp::from_secs_nanos(1_700_000_030, 0);
            let syn = tcp("10.0.11.10", "10.0.21.10", 40000, 5432, 2);
            assert_eq!(r.handle_frame(Port::Eni(APP_1), &syn, t).len(), 1);
            assert!(r
                .tick(Timestamp::from_secs_nanos(1_700_000_399, 0))
                .is_empty());
            let recs = r.tick(Timestamp::from_secs_nanos(1_700_000_400, 0));
            let (ok, quiet): (Vec<_>, Vec<_>) = recs
                .iter()
                .partition(|rec| rec.log_status == crate::flowlog::LogStatus::Ok);
            assert_eq!(ok.len(), 2, "app-1's egress and db-1's ingress: {recs:?}");
            let enis = r.vpc().network_interfaces.len();
            assert_eq!(quiet.len(), if nodata { enis - 2 } else { 0 });
            assert!(quiet.iter().all(|rec| rec.window_start == 1_699_999_800));
            assert!(r.finish().is_empty(), "everything was written");
        }
    }
}
