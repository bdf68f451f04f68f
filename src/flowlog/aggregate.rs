//! Per-worker flow-log accumulators: [`Observation`]s in, [`FlowRecord`]s out.
//!
//! Sans-IO: the capture time and the watermark are arguments; nothing here reads a clock.
//! The aggregator does not decide which ENIs need a NODATA record, and it does not sort
//! records of several workers together: the caller does both.
#![deny(clippy::disallowed_methods, clippy::disallowed_types)]

use crate::model::PROTO_TCP;
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::IpAddr;

use hashbrown::{HashMap, HashTable};

use super::record::{aws_tcp_flags, FlowRecord, LogStatus, Observation};
use crate::model::{Action, Direction, EniNum};
use crate::wire::packet::Timestamp;

type WideMap = HashMap<Key, Accum, foldhash::fast::RandomState>;

/// The record key within one window (manual: "Flow-log records"), in full.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    eni: EniNum,
    direction: Direction,
    action: Action,
    protocol: u8,
    srcport: u16,
    dstport: u16,
    srcaddr: IpAddr,
    dstaddr: IpAddr,
    pkt_srcaddr: IpAddr,
    pkt_dstaddr: IpAddr,
}

/// The same key in 52 bytes instead of 80, for the per-window maps that can hold
/// hundreds of thousands of records: the record addresses in full, and each packet
/// address only where it differs from its record address, which the engine does only
/// by mapping an IPv4 address to the ENI's primary (flow logs §6.9). A key that does
/// not fit (a packet address differing in IPv6) goes to a window's `wide` map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Compact {
    eni: EniNum,
    /// protocol | direction << 8 | action << 9 | src v6 << 10 | dst v6 << 11 |
    /// pkt-src differs << 12 | pkt-dst differs << 13
    tags: u32,
    ports: u32,
    src: [u32; 4],
    dst: [u32; 4],
    pkt_src: u32,
    pkt_dst: u32,
}

const PKT_SRC_DIFFERS: u32 = 1 << 12;
const PKT_DST_DIFFERS: u32 = 1 << 13;

fn words(a: IpAddr) -> [u32; 4] {
    match a {
        IpAddr::V4(v) => [v.to_bits(), 0, 0, 0],
        IpAddr::V6(v) => {
            let x = v.to_bits();
            [
                x as u32,
                (x >> 32) as u32,
                (x >> 64) as u32,
                (x >> 96) as u32,
            ]
        }
    }
}

fn addr(w: [u32; 4], v6: bool) -> IpAddr {
    if v6 {
        let x = u128::from(w[0])
            | u128::from(w[1]) << 32
            | u128::from(w[2]) << 64
            | u128::from(w[3]) << 96;
        IpAddr::V6(x.into())
    } else {
        IpAddr::V4(w[0].into())
    }
}

/// The direction in a slot's `tags` (bit 8).
#[inline]
fn tag_direction(tags: u32) -> Direction {
    if tags & 1 << 8 != 0 {
        Direction::Egress
    } else {
        Direction::Ingress
    }
}

/// The action in a slot's `tags` (bit 9).
#[inline]
fn tag_action(tags: u32) -> Action {
    if tags & 1 << 9 != 0 {
        Action::Reject
    } else {
        Action::Accept
    }
}

impl Compact {
    #[inline]
    fn of(k: &Key) -> Option<Compact> {
        let alt = |record: IpAddr, pkt: IpAddr, bit: u32| -> Option<(u32, u32)> {
            match pkt {
                _ if pkt == record => Some((0, 0)),
                IpAddr::V4(v) => Some((v.to_bits(), bit)),
                IpAddr::V6(_) => None,
            }
        };
        let (pkt_src, a) = alt(k.srcaddr, k.pkt_srcaddr, PKT_SRC_DIFFERS)?;
        let (pkt_dst, b) = alt(k.dstaddr, k.pkt_dstaddr, PKT_DST_DIFFERS)?;
        Some(Compact {
            eni: k.eni,
            tags: u32::from(k.protocol)
                | (k.direction as u32) << 8
                | (k.action as u32) << 9
                | u32::from(k.srcaddr.is_ipv6()) << 10
                | u32::from(k.dstaddr.is_ipv6()) << 11
                | a
                | b,
            ports: u32::from(k.srcport) | u32::from(k.dstport) << 16,
            src: words(k.srcaddr),
            dst: words(k.dstaddr),
            pkt_src,
            pkt_dst,
        })
    }

    fn key(&self) -> Key {
        let srcaddr = addr(self.src, self.tags & 1 << 10 != 0);
        let dstaddr = addr(self.dst, self.tags & 1 << 11 != 0);
        Key {
            eni: self.eni,
            direction: tag_direction(self.tags),
            action: tag_action(self.tags),
            protocol: self.tags as u8,
            srcport: self.ports as u16,
            dstport: (self.ports >> 16) as u16,
            srcaddr,
            dstaddr,
            pkt_srcaddr: if self.tags & PKT_SRC_DIFFERS != 0 {
                IpAddr::V4(self.pkt_src.into())
            } else {
                srcaddr
            },
            pkt_dstaddr: if self.tags & PKT_DST_DIFFERS != 0 {
                IpAddr::V4(self.pkt_dst.into())
            } else {
                dstaddr
            },
        }
    }
}

impl Hash for Compact {
    /// A few wide writes instead of the derived field-by-field ones (the per-packet path).
    #[inline]
    fn hash<H: Hasher>(&self, h: &mut H) {
        h.write_u64(u64::from(self.eni.0) | u64::from(self.tags) << 32);
        h.write_u64(u64::from(self.ports) | u64::from(self.pkt_src) << 32);
        h.write_u64(u64::from(self.src[0]) | u64::from(self.dst[0]) << 32);
        if self.tags & (3 << 10) != 0 {
            h.write_u64(u64::from(self.src[1]) | u64::from(self.src[2]) << 32);
            h.write_u64(u64::from(self.src[3]) | u64::from(self.dst[1]) << 32);
            h.write_u64(u64::from(self.dst[2]) | u64::from(self.dst[3]) << 32);
        }
        h.write_u32(self.pkt_dst);
    }
}

/// The counters of one record.
#[derive(Clone, Copy, Debug)]
struct Accum {
    first_seq: u64,
    packets: u64,
    bytes: u64,
    /// Seconds after the window's start of the earliest and latest packet.
    start: u32,
    end: u32,
    tcp_flags: u8,
    traffic_path: Option<u8>,
    /// The flow shard the accumulator counts against (see [`Aggregator::set_limit`]).
    shard: u8,
}

/// Packets that found no room for their record, per (window, ENI): one `SKIPDATA`
/// record each.
#[derive(Clone, Copy, Debug)]
struct Skipped {
    first_seq: u64,
    start: u64,
    end: u64,
}

/// One open record: its key and its counters.
#[derive(Clone, Copy, Debug)]
struct Slot {
    key: Compact,
    acc: Accum,
}

/// Slots per chunk of a window's record storage (96 bytes a slot, 384 KiB a chunk).
const CHUNK: usize = 4096;

/// One open record whose addresses are both IPv4 and equal to the packet's (all but a
/// few records), of an ENI numbered below 2^16: 32 bytes instead of a [`Slot`]'s
/// 96. Counters are narrow; what would not fit (2^16 packets or more, 2^32 bytes or
/// more, a first packet before the window's first) is kept exactly in the window's
/// `extra` map, flagged by [`N_EXTRA`], so nothing overflows silently.
#[derive(Clone, Copy, Debug)]
struct Narrow {
    /// protocol | egress << 8 | reject << 9 (the key bits, [`N_KEY`]) | AWS TCP flags
    /// << 10 | traffic path code << 18 | shard << 20 | [`N_EXTRA`]
    tags: u32,
    ports: u32,
    src: u32,
    dst: u32,
    /// The first packet's sequence number less the window's `seq_base`.
    first: u32,
    bytes: u32,
    eni: u16,
    packets: u16,
    /// Seconds after the window's start of the earliest and latest packet.
    start: u16,
    end: u16,
}

/// The bits of [`Narrow::tags`] that belong to the record key.
const N_KEY: u32 = (1 << 10) - 1;
const N_FLAGS_SHIFT: u32 = 10;
const N_PATH_SHIFT: u32 = 18;
const N_SHARD_SHIFT: u32 = 20;
/// The record has an entry in its window's `extra` map.
const N_EXTRA: u32 = 1 << 26;

/// Narrow slots per chunk (256 KiB a chunk).
const NCHUNK: usize = 8192;

/// The high bit of a record handle: set for a [`Slot`] (its index below), clear
/// for a [`Narrow`] one.
const WIDE: u32 = 1 << 31;

/// The key of a [`Narrow`] record, for hashing and comparing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct NarrowKey {
    eni: EniNum,
    tags: u32,
    ports: u32,
    src: u32,
    dst: u32,
}

impl NarrowKey {
    /// The narrow key of `obs`, if its record fits a [`Narrow`] slot.
    #[inline]
    fn of(obs: &Observation) -> Option<NarrowKey> {
        let (IpAddr::V4(s), IpAddr::V4(d)) = (obs.srcaddr, obs.dstaddr) else {
            return None;
        };
        if obs.pkt_srcaddr != obs.srcaddr || obs.pkt_dstaddr != obs.dstaddr || obs.eni.0 > 0xffff {
            return None;
        }
        Some(NarrowKey {
            eni: obs.eni,
            tags: u32::from(obs.protocol) | (obs.direction as u32) << 8 | (obs.action as u32) << 9,
            ports: u32::from(obs.srcport) | u32::from(obs.dstport) << 16,
            src: s.to_bits(),
            dst: d.to_bits(),
        })
    }

    #[inline]
    fn hash<H: Hasher>(&self, h: &mut H) {
        h.write_u64(u64::from(self.eni.0) | u64::from(self.tags) << 32);
        h.write_u64(u64::from(self.ports) | u64::from(self.src) << 32);
        h.write_u32(self.dst);
    }
}

impl Narrow {
    #[inline]
    fn matches(&self, k: &NarrowKey) -> bool {
        u32::from(self.eni) == k.eni.0
            && self.tags & N_KEY == k.tags
            && self.ports == k.ports
            && self.src == k.src
            && self.dst == k.dst
    }

    fn key(&self) -> Key {
        let (src, dst) = (IpAddr::V4(self.src.into()), IpAddr::V4(self.dst.into()));
        Key {
            eni: self.eni(),
            direction: tag_direction(self.tags),
            action: tag_action(self.tags),
            protocol: self.tags as u8,
            srcport: self.ports as u16,
            dstport: (self.ports >> 16) as u16,
            srcaddr: src,
            dstaddr: dst,
            pkt_srcaddr: src,
            pkt_dstaddr: dst,
        }
    }

    fn eni(&self) -> EniNum {
        EniNum(u32::from(self.eni))
    }

    fn shard(&self) -> u8 {
        (self.tags >> N_SHARD_SHIFT & 63) as u8
    }
}

/// The code of a traffic path in [`Narrow::tags`]; `None` for one that has none.
#[inline]
fn path_code(p: Option<u8>) -> Option<u32> {
    match p {
        None => Some(0),
        Some(1) => Some(1),
        Some(8) => Some(2),
        Some(_) => None,
    }
}

fn path_of(code: u32) -> Option<u8> {
    match code & 3 {
        1 => Some(1),
        2 => Some(8),
        _ => None,
    }
}

/// What a [`Narrow`] record's counters could not hold.
#[derive(Clone, Copy, Debug, Default)]
struct Extra {
    /// The first packet's sequence number, when it is not `seq_base + first`.
    first_seq: Option<u64>,
    /// Added to the narrow counters (multiples of 2^16 packets, of 2^32 bytes).
    packets: u64,
    bytes: u64,
}

/// The open records of one window with compact keys.
///
/// Written by hand on `hashbrown::HashTable` rather than a `HashMap<Compact, Accum>`
/// because of where the time goes: a window of the benchmark mix holds about 445k
/// records, far beyond the cache, and a map's buckets of 96 bytes cost two or three
/// cache misses per packet (control bytes, key, counters) plus a rehash of all of
/// them at each doubling. Here the hash table holds only (slot, 32 hash bits), 8
/// bytes a bucket, which mostly stays in cache; the records live in fixed chunks in
/// the order they opened, so a packet costs about one miss (its slot), growing never
/// moves a record, and a closed window hands its chunks on as they are
/// ([`ClosedWindow`]).
#[derive(Debug, Default)]
struct Records {
    /// (record handle: a [`Narrow`] index, or [`WIDE`] | a [`Slot`] index; 32 hash
    /// bits).
    index: HashTable<(u32, u32)>,
    /// Slots in opening order, which in one worker is the order of the records'
    /// first packets (`first_seq`).
    chunks: Vec<Vec<Slot>>,
    len: u32,
    /// Narrow slots in opening order, likewise.
    narrow: Vec<Vec<Narrow>>,
    narrow_len: u32,
    /// What narrow slots flagged [`N_EXTRA`] could not hold, by narrow index.
    extra: HashMap<u32, Extra, foldhash::fast::FixedState>,
    /// The sequence number narrow slots count their first packet from.
    seq_base: u64,
}

/// The table hash of a record from the 32 hash bits kept in its bucket: hashbrown
/// takes the bucket position from the low bits and a tag from the top 7.
#[inline]
fn spread(h: u32) -> u64 {
    u64::from(h) << 32 | u64::from(h)
}

impl Records {
    /// Empties the window (its chunks were handed on), keeping the index's buckets
    /// when few.
    fn recycle(&mut self) {
        if self.index.capacity() <= SPARE_INDEX_CAPACITY {
            self.index.clear();
        } else {
            self.index = HashTable::new();
        }
        self.chunks.clear();
        self.len = 0;
        self.narrow.clear();
        self.narrow_len = 0;
        self.extra = HashMap::default();
    }

    #[inline]
    fn narrow_mut(&mut self, i: u32) -> &mut Narrow {
        &mut self.narrow[i as usize / NCHUNK][i as usize % NCHUNK]
    }

    /// Counts one more packet in narrow record `i`.
    #[inline]
    fn add_narrow(&mut self, i: u32, seq: u64, bytes: u32, at: u16, flags: u8) {
        let base = self.seq_base;
        let s = &mut self.narrow[i as usize / NCHUNK][i as usize % NCHUNK];
        let (packets, po) = s.packets.overflowing_add(1);
        let (b, bo) = s.bytes.overflowing_add(bytes);
        s.packets = packets;
        s.bytes = b;
        s.start = s.start.min(at);
        s.end = s.end.max(at);
        s.tags |= u32::from(flags) << N_FLAGS_SHIFT;
        if po || bo || seq < base + u64::from(s.first) {
            self.add_narrow_rare(i, seq, po, bo);
        }
    }

    /// The rest of [`Records::add_narrow`] when a counter wrapped or the packet came
    /// before the record's first.
    #[cold]
    fn add_narrow_rare(&mut self, i: u32, seq: u64, packets_wrapped: bool, bytes_wrapped: bool) {
        let base = self.seq_base;
        let s = &mut self.narrow[i as usize / NCHUNK][i as usize % NCHUNK];
        let x = self.extra.entry(i).or_default();
        if packets_wrapped {
            x.packets += 1 << 16;
        }
        if bytes_wrapped {
            x.bytes += 1 << 32;
        }
        let first = x.first_seq.unwrap_or(base + u64::from(s.first));
        if seq < first {
            x.first_seq = Some(seq);
        }
        s.tags |= N_EXTRA;
    }

    /// Opens narrow record number `narrow_len` for `k`'s first packet.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn push_narrow(
        &mut self,
        k: &NarrowKey,
        seq: u64,
        bytes: u32,
        at: u16,
        flags: u8,
        path: u32,
        shard: u8,
    ) {
        let i = self.narrow_len;
        let off = seq.wrapping_sub(self.seq_base);
        let fits = seq >= self.seq_base && off <= u64::from(u32::MAX);
        let mut tags = k.tags
            | u32::from(flags) << N_FLAGS_SHIFT
            | path << N_PATH_SHIFT
            | u32::from(shard) << N_SHARD_SHIFT;
        if !fits {
            tags |= N_EXTRA;
            self.extra.insert(
                i,
                Extra {
                    first_seq: Some(seq),
                    ..Extra::default()
                },
            );
        }
        if (i as usize).is_multiple_of(NCHUNK) {
            self.narrow.push(Vec::with_capacity(NCHUNK));
        }
        let last = self.narrow.len() - 1;
        self.narrow[last].push(Narrow {
            eni: k.eni.0 as u16,
            tags,
            ports: k.ports,
            src: k.src,
            dst: k.dst,
            first: if fits { off as u32 } else { 0 },
            packets: 1,
            bytes,
            start: at,
            end: at,
        });
        self.narrow_len += 1;
    }
}

/// The open accumulators of one aggregation window.
#[derive(Debug)]
struct Window {
    start: u64,
    flows: Records,
    /// Keys that do not fit [`Compact`] (never made by the engine).
    wide: WideMap,
}

/// Emptied windows kept for reuse (their index's capacity is the point).
const SPARE_MAPS: usize = 2;
/// An emptied window's index with more buckets than this is freed, not kept.
const SPARE_INDEX_CAPACITY: usize = 1 << 20;

/// Per-worker flow-log accumulators, one map per open aggregation window.
///
/// - Windows are aligned to multiples of the interval in Unix time: a packet at second
///   `t` belongs to the window starting at `t - t % interval`.
/// - A record's key is (ENI, direction, srcaddr, dstaddr, pkt-srcaddr, pkt-dstaddr,
///   srcport, dstport, protocol, action): a flow whose packets were partly accepted and
///   partly rejected in one window gives two records.
/// - `start`/`end` are the floor seconds of the earliest and latest packet of the record
///   (in capture order these are its first and last packet; if capture timestamps go
///   backwards inside a window, `start <= end` still holds). `first_seq` is the smallest
///   sequence number seen, `traffic_path` the first packet's.
/// - A packet whose window was already closed opens a new accumulator for that window,
///   which gives a second record for the same key and window.
///
/// ```
/// use std::net::IpAddr;
/// use vpcgate::flowlog::{Aggregator, Observation};
/// use vpcgate::model::{Action, Direction};
/// use vpcgate::wire::packet::Timestamp;
///
/// let a: IpAddr = "10.0.0.5".parse().unwrap();
/// let b: IpAddr = "203.0.113.9".parse().unwrap();
/// let obs = Observation {
///     eni: vpcgate::model::EniNum(0), direction: Direction::Egress, action: Action::Accept,
///     srcaddr: a, dstaddr: b, pkt_srcaddr: a, pkt_dstaddr: b,
///     srcport: 40000, dstport: 443, protocol: 6, bytes: 60,
///     tcp_flags: 0x02, traffic_path: Some(8),
/// };
/// let mut agg = Aggregator::new(60);
/// agg.observe(&obs, Timestamp::from_secs_nanos(125, 0), 1);
/// agg.observe(&obs, Timestamp::from_secs_nanos(170, 0), 2);
/// let mut out = Vec::new();
/// agg.close_before(179, &mut out);
/// assert!(out.is_empty()); // the window [120, 180) is still open at second 179
/// agg.close_before(180, &mut out);
/// assert_eq!((out[0].packets, out[0].start, out[0].end), (2, 125, 170));
/// ```
#[derive(Debug)]
pub struct Aggregator {
    interval: u64,
    /// Open windows, sorted by start (usually one or two).
    windows: Vec<Window>,
    spare: Vec<Records>,
    hasher: foldhash::fast::RandomState,
    /// Open accumulators allowed per flow shard (`None`: no limit).
    limit: Option<u32>,
    /// Open accumulators per flow shard.
    open: Vec<u32>,
    skipped: HashMap<(u64, EniNum), Skipped, foldhash::fast::FixedState>,
    skipped_packets: u64,
}

impl Aggregator {
    /// An aggregator with windows of `interval_secs` seconds (60 or 600 for AWS; any
    /// positive value works).
    ///
    /// # Panics
    /// If `interval_secs` is 0.
    pub fn new(interval_secs: u32) -> Aggregator {
        assert!(
            interval_secs > 0,
            "the aggregation interval must be at least one second"
        );
        Aggregator {
            interval: u64::from(interval_secs),
            windows: Vec::new(),
            spare: Vec::new(),
            hasher: foldhash::fast::RandomState::default(),
            limit: None,
            open: vec![0; crate::conntrack::FLOW_SHARDS as usize],
            skipped: HashMap::default(),
            skipped_packets: 0,
        }
    }

    /// The aggregation interval in seconds.
    pub fn interval_secs(&self) -> u32 {
        self.interval as u32
    }

    /// The start of the window that second `secs` belongs to.
    pub fn window_start(&self, secs: u64) -> u64 {
        secs - secs % self.interval
    }

    /// Counts one packet seen at one ENI. `seq` is the packet's global capture sequence
    /// number.
    #[inline]
    pub fn observe(&mut self, obs: &Observation, ts: Timestamp, seq: u64) {
        self.observe_in_shard(obs, ts, seq, 0)
    }

    /// Bounds the open accumulators (records not yet closed) to `per_shard` in each
    /// flow shard of [`crate::engine::flow_shard`]. A packet whose record is not open
    /// and finds its shard full is not counted in a record: it is counted in a
    /// `SKIPDATA` record of its ENI and window instead, as AWS does when "an internal
    /// capacity constraint" skips records.
    pub fn set_limit(&mut self, per_shard: Option<u32>) {
        self.limit = per_shard;
    }

    /// Packets counted in `SKIPDATA` records so far.
    pub fn skipped_packets(&self) -> u64 {
        self.skipped_packets
    }

    /// [`Aggregator::observe`] for a packet of flow shard `shard`.
    #[inline]
    pub fn observe_in_shard(&mut self, obs: &Observation, ts: Timestamp, seq: u64, shard: u8) {
        self.observe_inner(obs, ts, seq, shard, None)
    }

    /// [`Aggregator::observe_in_shard`] with a hint: where this observation's record
    /// was last found (`u32::MAX`: nowhere), which it updates. The engine keeps one
    /// per tracked connection and direction ([`crate::engine::Engine::flow_log_hint`]),
    /// so that a tracked packet reaches its record without a hash-table probe. A
    /// hint is checked against the record's key before use: a wrong one (another
    /// window, a rejected packet of an accepted flow, an address of the packet that
    /// differs) only costs the probe it would have saved.
    #[inline]
    pub fn observe_hinted(
        &mut self,
        obs: &Observation,
        ts: Timestamp,
        seq: u64,
        shard: u8,
        hint: &mut u32,
    ) {
        self.observe_inner(obs, ts, seq, shard, Some(hint))
    }

    #[inline]
    fn observe_inner(
        &mut self,
        obs: &Observation,
        ts: Timestamp,
        seq: u64,
        shard: u8,
        hint: Option<&mut u32>,
    ) {
        let secs = ts.secs();
        let window = self.window_start(secs);
        let limit = self.limit;
        let full = limit.is_some_and(|l| self.open[shard as usize] >= l);
        let wi = self.window_index(window, seq);
        let w = &mut self.windows[wi];
        let flags = if obs.protocol == PROTO_TCP {
            aws_tcp_flags(obs.tcp_flags)
        } else {
            0
        };
        let at = (secs - window) as u32;
        // Most records: both addresses IPv4, as the packet's (a narrow slot).
        if self.interval <= 1 << 16 && u32::from(shard) < crate::conntrack::FLOW_SHARDS {
            if let (Some(k), Some(path)) = (NarrowKey::of(obs), path_code(obs.traffic_path)) {
                let at = at as u16;
                let recs = &mut w.flows;
                if let Some(&i) = hint.as_deref() {
                    if i < recs.narrow_len && recs.narrow_mut(i).matches(&k) {
                        recs.add_narrow(i, seq, obs.bytes, at, flags);
                        return;
                    }
                }
                let mut h = self.hasher.build_hasher();
                k.hash(&mut h);
                let h = (h.finish() >> 32) as u32;
                let Records {
                    index,
                    chunks,
                    narrow,
                    ..
                } = recs;
                let found = index
                    .find(spread(h), |&(i, hh)| {
                        hh == h
                            && i & WIDE == 0
                            && narrow[i as usize / NCHUNK][i as usize % NCHUNK].matches(&k)
                    })
                    .map(|&(i, _)| i);
                let _ = chunks;
                match found {
                    Some(i) => {
                        if let Some(hint) = hint {
                            *hint = i;
                        }
                        recs.add_narrow(i, seq, obs.bytes, at, flags);
                        return;
                    }
                    None if !full && recs.narrow_len < WIDE - 1 => {
                        let i = recs.narrow_len;
                        recs.index
                            .insert_unique(spread(h), (i, h), |&(_, hh)| spread(hh));
                        recs.push_narrow(&k, seq, obs.bytes, at, flags, path, shard);
                        if let Some(hint) = hint {
                            *hint = i;
                        }
                        self.open[shard as usize] += 1;
                        return;
                    }
                    None => {
                        self.skip(window, obs.eni, seq, secs);
                        return;
                    }
                }
            }
        }
        let key = Key {
            eni: obs.eni,
            direction: obs.direction,
            action: obs.action,
            protocol: obs.protocol,
            srcport: obs.srcport,
            dstport: obs.dstport,
            srcaddr: obs.srcaddr,
            dstaddr: obs.dstaddr,
            pkt_srcaddr: obs.pkt_srcaddr,
            pkt_dstaddr: obs.pkt_dstaddr,
        };
        let bytes = u64::from(obs.bytes);
        let update = |a: &mut Accum| {
            a.packets += 1;
            a.bytes += bytes;
            a.start = a.start.min(at);
            a.end = a.end.max(at);
            a.tcp_flags |= flags;
            a.first_seq = a.first_seq.min(seq);
        };
        let accum = Accum {
            first_seq: seq,
            packets: 1,
            bytes,
            start: at,
            end: at,
            tcp_flags: flags,
            traffic_path: obs.traffic_path,
            shard,
        };
        // One hash and one probe for the usual case (a compact key).
        match Compact::of(&key) {
            Some(c) => {
                let Records {
                    index, chunks, len, ..
                } = &mut w.flows;
                if let Some(&i) = hint.as_deref() {
                    let j = i & !WIDE;
                    if i & WIDE != 0 && j < *len {
                        let s = &mut chunks[j as usize / CHUNK][j as usize % CHUNK];
                        if s.key == c {
                            update(&mut s.acc);
                            return;
                        }
                    }
                }
                let h = (self.hasher.hash_one(c) >> 32) as u32;
                let slot = |i: u32| {
                    let j = (i & !WIDE) as usize;
                    (j / CHUNK, j % CHUNK)
                };
                let entry = index.entry(
                    spread(h),
                    |&(i, hh)| {
                        hh == h && i & WIDE != 0 && {
                            let (a, b) = slot(i);
                            chunks[a][b].key == c
                        }
                    },
                    |&(_, hh)| spread(hh),
                );
                match entry {
                    hashbrown::hash_table::Entry::Occupied(o) => {
                        let i = o.get().0;
                        if let Some(hint) = hint {
                            *hint = i;
                        }
                        let (a, b) = slot(i);
                        update(&mut chunks[a][b].acc);
                        return;
                    }
                    hashbrown::hash_table::Entry::Vacant(v) => {
                        if !full && *len < WIDE - 1 {
                            let i = *len;
                            v.insert((i | WIDE, h));
                            if let Some(hint) = hint {
                                *hint = i | WIDE;
                            }
                            if (i as usize).is_multiple_of(CHUNK) {
                                chunks.push(Vec::with_capacity(CHUNK));
                            }
                            let last = chunks.len() - 1;
                            chunks[last].push(Slot { key: c, acc: accum });
                            *len += 1;
                            self.open[shard as usize] += 1;
                            return;
                        }
                    }
                }
            }
            None => {
                if let Some(a) = w.wide.get_mut(&key) {
                    update(a);
                    return;
                }
                if !full {
                    w.wide.insert(key, accum);
                    self.open[shard as usize] += 1;
                    return;
                }
            }
        }
        // No record open for it, and its shard is full: count it in SKIPDATA.
        self.skip(window, obs.eni, seq, secs);
    }

    /// Counts a packet that found no room for its record in its ENI's `SKIPDATA`
    /// record of window `window`.
    #[cold]
    fn skip(&mut self, window: u64, eni: EniNum, seq: u64, secs: u64) {
        self.skipped_packets += 1;
        self.skipped
            .entry((window, eni))
            .and_modify(|s| {
                s.first_seq = s.first_seq.min(seq);
                s.start = s.start.min(secs);
                s.end = s.end.max(secs);
            })
            .or_insert(Skipped {
                first_seq: seq,
                start: secs,
                end: secs,
            });
    }

    /// The position in `windows` of the window starting at `start`, opened if needed.
    #[inline]
    fn window_index(&mut self, start: u64, seq: u64) -> usize {
        // Usually the newest window: search from the back.
        let mut at = self.windows.len();
        while at > 0 && self.windows[at - 1].start > start {
            at -= 1;
        }
        if at == 0 || self.windows[at - 1].start != start {
            let mut flows = self.spare.pop().unwrap_or_default();
            flows.seq_base = seq;
            self.windows.insert(
                at,
                Window {
                    start,
                    flows,
                    wide: WideMap::default(),
                },
            );
            at
        } else {
            at - 1
        }
    }

    /// Moves out every record whose window has ended by `watermark_secs`: window start +
    /// interval <= `watermark_secs`. Records are appended to `out` sorted (window, ENI,
    /// first packet).
    pub fn close_before(&mut self, watermark_secs: u64, out: &mut Vec<FlowRecord>) {
        let n = self.ended(watermark_secs);
        self.close_first_records(n, out);
    }

    /// Moves out every open record, sorted (window, ENI, first packet).
    pub fn close_all(&mut self, out: &mut Vec<FlowRecord>) {
        self.close_first_records(self.windows.len(), out);
    }

    /// [`Aggregator::close_before`] without making the records: each window that
    /// ended becomes a [`ClosedWindow`] in `out` (in window order), which makes its
    /// records when they are read; the window's `SKIPDATA` records, if any, go to
    /// `skipdata`.
    pub fn close_windows_before(
        &mut self,
        watermark_secs: u64,
        out: &mut Vec<ClosedWindow>,
        skipdata: &mut Vec<FlowRecord>,
    ) {
        let n = self.ended(watermark_secs);
        self.close_first(n, out, skipdata);
    }

    /// [`Aggregator::close_all`] as [`Aggregator::close_windows_before`] does it.
    pub fn close_all_windows(
        &mut self,
        out: &mut Vec<ClosedWindow>,
        skipdata: &mut Vec<FlowRecord>,
    ) {
        self.close_first(self.windows.len(), out, skipdata);
    }

    /// Records currently accumulating, over all open windows.
    pub fn open_records(&self) -> usize {
        self.windows
            .iter()
            .map(|w| w.flows.len as usize + w.flows.narrow_len as usize + w.wide.len())
            .sum()
    }

    /// How many of the oldest windows have ended by `watermark_secs`.
    fn ended(&self, watermark_secs: u64) -> usize {
        self.windows
            .iter()
            .take_while(|w| w.start.saturating_add(self.interval) <= watermark_secs)
            .count()
    }

    /// Closes the `n` oldest windows into records.
    fn close_first_records(&mut self, n: usize, out: &mut Vec<FlowRecord>) {
        let (mut windows, mut skipdata) = (Vec::new(), Vec::new());
        self.close_first(n, &mut windows, &mut skipdata);
        for w in windows {
            let from = out.len();
            out.extend(w.iter());
            let before = out.len();
            out.extend(skipdata.extract_if(.., |r| r.window_start == w.start));
            if out.len() > before {
                out[from..].sort_unstable();
            }
        }
    }

    /// Closes the `n` oldest windows.
    fn close_first(
        &mut self,
        n: usize,
        out: &mut Vec<ClosedWindow>,
        skipdata: &mut Vec<FlowRecord>,
    ) {
        if n == 0 {
            return;
        }
        for mut window in self.windows.drain(..n) {
            let open = &mut self.open;
            for s in window.flows.chunks.iter().flatten() {
                open[s.acc.shard as usize] -= 1;
            }
            for s in window.flows.narrow.iter().flatten() {
                open[s.shard() as usize] -= 1;
            }
            let extra: Vec<FlowRecord> = window
                .wide
                .drain()
                .map(|(k, a)| {
                    open[a.shard as usize] -= 1;
                    record(window.start, k, a)
                })
                .collect();
            if !self.skipped.is_empty() {
                let start = window.start;
                let interval = self.interval;
                self.skipped.retain(|&(w, eni), s| {
                    if w != start {
                        return true;
                    }
                    let mut r = FlowRecord::nodata(eni, w, interval as u32);
                    r.log_status = LogStatus::SkipData;
                    r.first_seq = s.first_seq;
                    r.start = s.start;
                    r.end = s.end;
                    skipdata.push(r);
                    false
                });
            }
            let f = &mut window.flows;
            let mut closed = ClosedWindow::new(
                window.start,
                std::mem::take(&mut f.chunks),
                f.len,
                std::mem::take(&mut f.narrow),
                f.narrow_len,
                std::mem::take(&mut f.extra),
                f.seq_base,
            );
            if !extra.is_empty() {
                // Keys that did not fit the compact form (never made by the engine):
                // every record is made now and sorted.
                let mut all = extra;
                all.extend(closed.iter());
                all.sort_unstable();
                let mut enis: Vec<EniNum> = all.iter().map(|r| r.eni).collect();
                enis.dedup();
                closed = ClosedWindow {
                    enis,
                    start: window.start,
                    chunks: Vec::new(),
                    narrow: Vec::new(),
                    extra: HashMap::default(),
                    seq_base: 0,
                    order: Vec::new(),
                    built: all,
                };
            }
            out.push(closed);
            window.flows.recycle();
            if self.spare.len() < SPARE_MAPS {
                self.spare.push(window.flows);
            }
        }
    }
}

/// The records of one closed aggregation window, in record order (ENI, first packet,
/// then the record's fields), still in the compact form they were counted in:
/// [`ClosedWindow::get`] makes a [`FlowRecord`] when it is read. A window of the
/// benchmark mix holds about 500k records; as `FlowRecord`s (136 bytes each) they
/// would all exist at once, next to the slots they come from, at every window close.
#[derive(Debug)]
pub struct ClosedWindow {
    start: u64,
    chunks: Vec<Vec<Slot>>,
    narrow: Vec<Vec<Narrow>>,
    extra: HashMap<u32, Extra, foldhash::fast::FixedState>,
    seq_base: u64,
    /// Record order: record handles (see [`WIDE`]).
    order: Vec<u32>,
    /// Every record, already made and in order (instead of `order`), when some key
    /// did not fit the compact forms.
    built: Vec<FlowRecord>,
    /// The ENIs with at least one record, ascending.
    enis: Vec<EniNum>,
}

impl ClosedWindow {
    /// `slots` slots and `narrow_len` narrow slots, each in first-packet order, put
    /// in record order.
    fn new(
        start: u64,
        chunks: Vec<Vec<Slot>>,
        slots: u32,
        narrow: Vec<Vec<Narrow>>,
        narrow_len: u32,
        extra: HashMap<u32, Extra, foldhash::fast::FixedState>,
        seq_base: u64,
    ) -> ClosedWindow {
        let mut w = ClosedWindow {
            start,
            chunks,
            narrow,
            extra,
            seq_base,
            order: Vec::new(),
            built: Vec::new(),
            enis: Vec::new(),
        };
        // Each store is in first-packet order: grouping its records by ENI (a
        // stable counting sort) gives its part of the record order without
        // comparing records; the two parts of each ENI are then merged by first
        // packet.
        let enis = w
            .chunks
            .iter()
            .flatten()
            .map(|s| s.key.eni.get() + 1)
            .chain(w.narrow.iter().flatten().map(|s| s.eni().get() + 1))
            .max()
            .unwrap_or(0);
        // Two passes over each store (count, then place) rather than a list of
        // (handle, ENI) pairs: this runs at the peak of memory, a window's close.
        fn group(
            handles: impl Iterator<Item = (u32, usize)> + Clone,
            n: u32,
            enis: usize,
        ) -> (Vec<u32>, Vec<u32>) {
            let mut at = vec![0u32; enis + 1];
            for (_, e) in handles.clone() {
                at[e + 1] += 1;
            }
            for e in 1..at.len() {
                at[e] += at[e - 1];
            }
            let bounds = at.clone();
            let mut order = vec![0u32; n as usize];
            for (h, e) in handles {
                order[at[e] as usize] = h;
                at[e] += 1;
            }
            (order, bounds)
        }
        let (narrow_order, nb) = group(
            w.narrow
                .iter()
                .flatten()
                .enumerate()
                .map(|(i, s)| (i as u32, s.eni().get())),
            narrow_len,
            enis,
        );
        let (wide_order, wb) = group(
            w.chunks
                .iter()
                .flatten()
                .enumerate()
                .map(|(i, s)| (i as u32 | WIDE, s.key.eni.get())),
            slots,
            enis,
        );
        if wide_order.is_empty() {
            // Nothing to merge (the usual case): the narrow order is the order.
            w.enis = (0..enis)
                .filter(|&e| nb[e + 1] > nb[e])
                .map(|e| EniNum(e as u32))
                .collect();
            w.order = narrow_order;
            w.fix_ties();
            return w;
        }
        let mut order = Vec::with_capacity((slots + narrow_len) as usize);
        for e in 0..enis {
            let (mut a, mut b) = (
                &narrow_order[nb[e] as usize..nb[e + 1] as usize],
                &wide_order[wb[e] as usize..wb[e + 1] as usize],
            );
            if !a.is_empty() || !b.is_empty() {
                w.enis.push(EniNum(e as u32));
            }
            while let (Some(&x), Some(&y)) = (a.first(), b.first()) {
                if w.first_seq(x) <= w.first_seq(y) {
                    order.push(x);
                    a = &a[1..];
                } else {
                    order.push(y);
                    b = &b[1..];
                }
            }
            order.extend_from_slice(a);
            order.extend_from_slice(b);
        }
        drop((narrow_order, wide_order));
        w.order = order;
        w.fix_ties();
        w
    }

    /// One packet observed twice at one ENI (egress and ingress of traffic to
    /// itself) opens two records with the same first packet, one after the other:
    /// the full record order decides between them.
    fn fix_ties(&mut self) {
        for k in 1..self.order.len() {
            let (a, b) = (self.order[k - 1], self.order[k]);
            if self.first_seq(a) == self.first_seq(b) {
                let (ra, rb) = (self.record(a), self.record(b));
                if ra.eni == rb.eni && ra > rb {
                    self.order.swap(k - 1, k);
                }
            }
        }
    }

    /// The first packet of the record with handle `h`.
    fn first_seq(&self, h: u32) -> u64 {
        if h & WIDE != 0 {
            let j = (h & !WIDE) as usize;
            self.chunks[j / CHUNK][j % CHUNK].acc.first_seq
        } else {
            let n = &self.narrow[h as usize / NCHUNK][h as usize % NCHUNK];
            match n.tags & N_EXTRA != 0 {
                true => self.extra.get(&h).and_then(|x| x.first_seq),
                false => None,
            }
            .unwrap_or(self.seq_base + u64::from(n.first))
        }
    }

    /// The record with handle `h`.
    fn record(&self, h: u32) -> FlowRecord {
        if h & WIDE != 0 {
            let j = (h & !WIDE) as usize;
            let s = &self.chunks[j / CHUNK][j % CHUNK];
            return record(self.start, s.key.key(), s.acc);
        }
        let n = &self.narrow[h as usize / NCHUNK][h as usize % NCHUNK];
        let x = match n.tags & N_EXTRA != 0 {
            true => self.extra.get(&h).copied().unwrap_or_default(),
            false => Extra::default(),
        };
        let acc = Accum {
            first_seq: x.first_seq.unwrap_or(self.seq_base + u64::from(n.first)),
            packets: u64::from(n.packets) + x.packets,
            bytes: u64::from(n.bytes) + x.bytes,
            start: u32::from(n.start),
            end: u32::from(n.end),
            tcp_flags: (n.tags >> N_FLAGS_SHIFT) as u8,
            traffic_path: path_of(n.tags >> N_PATH_SHIFT),
            shard: n.shard(),
        };
        record(self.start, n.key(), acc)
    }

    /// The start of the window, Unix seconds.
    pub fn window_start(&self) -> u64 {
        self.start
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.order.len() + self.built.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Record `i`, in record order.
    ///
    /// # Panics
    /// If `i` is not below [`ClosedWindow::len`].
    pub fn get(&self, i: usize) -> FlowRecord {
        if self.built.is_empty() {
            self.record(self.order[i])
        } else {
            self.built[i].clone()
        }
    }

    /// The stable ENI numbers that have at least one record here, ascending.
    pub fn enis(&self) -> &[EniNum] {
        &self.enis
    }

    /// Every record, in record order.
    pub fn iter(&self) -> impl Iterator<Item = FlowRecord> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }
}

fn record(window_start: u64, k: Key, a: Accum) -> FlowRecord {
    FlowRecord {
        window_start,
        eni: k.eni,
        first_seq: a.first_seq,
        direction: k.direction,
        action: k.action,
        srcaddr: k.srcaddr,
        dstaddr: k.dstaddr,
        pkt_srcaddr: k.pkt_srcaddr,
        pkt_dstaddr: k.pkt_dstaddr,
        srcport: k.srcport,
        dstport: k.dstport,
        protocol: k.protocol,
        packets: a.packets,
        bytes: a.bytes,
        start: window_start + u64::from(a.start),
        end: window_start + u64::from(a.end),
        tcp_flags: a.tcp_flags,
        traffic_path: a.traffic_path,
        log_status: LogStatus::Ok,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::packet::tcp_flags::{ACK, FIN, PSH, SYN};

    #[test]
    fn compact_keys_round_trip_and_wide_keys_do_not_fit() {
        let v4 = ip("10.0.1.5");
        let public = ip("203.0.113.10");
        let v6 = ip("2600:1f18::5");
        let other6 = ip("2600:1f18::6");
        let remote6 = ip("2001:db8::1");
        for (src, dst, psrc, pdst, fits) in [
            (v4, public, v4, public, true),
            (v4, public, public, public, true), // egress from the public IP
            (public, v4, public, ip("203.0.113.20"), true), // ingress to the public IP
            (v6, remote6, v6, remote6, true),
            (remote6, v6, remote6, v6, true),
            (v6, remote6, other6, remote6, false),
            (v4, remote6, v4, other6, false),
        ] {
            for direction in [Direction::Ingress, Direction::Egress] {
                for action in [Action::Accept, Action::Reject] {
                    let k = Key {
                        eni: crate::model::EniNum(7),
                        direction,
                        action,
                        protocol: 58,
                        srcport: 65535,
                        dstport: 1,
                        srcaddr: src,
                        dstaddr: dst,
                        pkt_srcaddr: psrc,
                        pkt_dstaddr: pdst,
                    };
                    match Compact::of(&k) {
                        Some(c) => {
                            assert!(fits, "{k:?}");
                            assert_eq!(c.key(), k);
                        }
                        None => assert!(!fits, "{k:?}"),
                    }
                }
            }
        }
        // A wide key is counted like any other.
        let mut agg = Aggregator::new(60);
        let mut o = obs(0, Direction::Egress, Action::Accept, 0);
        o.srcaddr = v6;
        o.pkt_srcaddr = other6;
        agg.observe(&o, Timestamp::from_secs_nanos(61, 0), 1);
        agg.observe(&o, Timestamp::from_secs_nanos(62, 0), 2);
        assert_eq!(agg.open_records(), 1);
        let mut out = Vec::new();
        agg.close_all(&mut out);
        assert_eq!(
            (out[0].packets, out[0].pkt_srcaddr, out[0].start),
            (2, other6, 61)
        );
    }

    #[test]
    fn narrow_counters_spill_instead_of_wrapping() {
        // A narrow slot counts packets and bytes in 32 bits and its first packet from
        // the window's first: what does not fit must still come out exact.
        assert_eq!(std::mem::size_of::<Narrow>(), 32);
        let mut agg = Aggregator::new(600);
        let mut big = obs(1, Direction::Egress, Action::Accept, 0);
        big.bytes = u32::MAX;
        for seq in [100, 101, 102] {
            agg.observe(&big, at(10, 0), seq);
        }
        // Sequence numbers before the window's first and 2^32 after it.
        let mut early = obs(2, Direction::Egress, Action::Accept, 0);
        agg.observe(&early, at(11, 0), 200);
        agg.observe(&early, at(12, 0), 7);
        early.srcport = 1;
        agg.observe(&early, at(13, 0), 3);
        let mut late = obs(3, Direction::Egress, Action::Accept, 0);
        late.bytes = 1;
        agg.observe(&late, at(14, 0), 100 + (1 << 33));
        agg.observe(&late, at(15, 0), 100 + (1 << 33) + 1);
        // 2^17 + 5 packets: the packet counter wraps twice.
        let mut many = obs(4, Direction::Egress, Action::Accept, 0);
        many.bytes = 1;
        for seq in 0..(1 << 17) + 5 {
            agg.observe(&many, at(16, 0), 1000 + seq);
        }
        let mut out = Vec::new();
        agg.close_all(&mut out);
        let got: Vec<_> = out
            .iter()
            .map(|r| (r.eni.0, r.srcport, r.first_seq, r.packets, r.bytes))
            .collect();
        assert_eq!(
            got,
            [
                (1, 40_000, 100, 3, 3 * u64::from(u32::MAX)),
                (2, 40_000, 7, 2, 200),
                (2, 1, 3, 1, 100),
                (3, 40_000, 100 + (1 << 33), 2, 2),
                (4, 40_000, 1000, (1 << 17) + 5, (1 << 17) + 5),
            ]
        );
    }

    #[test]
    fn narrow_and_wide_records_interleave_in_record_order() {
        // IPv4 records (narrow slots) and IPv6 ones (wide slots) of the same ENIs,
        // opened alternately, and a packet of both kinds seen twice at one ENI.
        let mut agg = Aggregator::new(60);
        for (seq, round) in (0..40u16).enumerate() {
            let seq = seq as u64;
            let eni = u32::from(round % 3);
            let mut o = obs(eni, Direction::Ingress, Action::Accept, 0);
            o.srcport = round;
            if round % 2 == 1 {
                o.srcaddr = ip("2001:db8::7");
                o.dstaddr = ip("2600:1f18::5");
                o.pkt_srcaddr = o.srcaddr;
                o.pkt_dstaddr = o.dstaddr;
            }
            let mut e = o;
            e.direction = Direction::Egress;
            // Egress first: the order must still put ingress first.
            agg.observe(&e, at(5, 0), seq);
            agg.observe(&o, at(5, 0), seq);
        }
        let (mut windows, mut skipdata) = (Vec::new(), Vec::new());
        agg.close_all_windows(&mut windows, &mut skipdata);
        let got: Vec<FlowRecord> = windows[0].iter().collect();
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(got.len(), 80);
        assert_eq!(got, sorted);
        assert_eq!(windows[0].enis(), [EniNum(0), EniNum(1), EniNum(2)]);
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn obs(eni: u32, direction: Direction, action: Action, flags: u8) -> Observation {
        let (a, b) = (ip("10.0.0.5"), ip("198.51.100.7"));
        let (srcaddr, dstaddr) = match direction {
            Direction::Egress => (a, b),
            Direction::Ingress => (b, a),
        };
        Observation {
            eni: EniNum(eni),
            direction,
            action,
            srcaddr,
            dstaddr,
            pkt_srcaddr: srcaddr,
            pkt_dstaddr: dstaddr,
            srcport: 40_000,
            dstport: 443,
            protocol: 6,
            bytes: 100,
            tcp_flags: flags,
            traffic_path: if direction == Direction::Egress {
                Some(8)
            } else {
                None
            },
        }
    }

    fn at(secs: u64, nanos: u32) -> Timestamp {
        Timestamp::from_secs_nanos(secs, nanos)
    }

    #[test]
    fn one_record_per_key_and_window() {
        let mut agg = Aggregator::new(600);
        let o = obs(1, Direction::Egress, Action::Accept, SYN);
        agg.observe(&o, at(1_200, 900_000_000), 10);
        agg.observe(&o.with_flags(ACK | PSH), at(1_250, 0), 11);
        agg.observe(&o.with_flags(FIN | ACK), at(1_799, 999_999_999), 12);
        assert_eq!(agg.open_records(), 1);
        let mut out = Vec::new();
        agg.close_all(&mut out);
        assert_eq!(out.len(), 1);
        let r = &out[0];
        assert_eq!((r.window_start, r.start, r.end), (1_200, 1_200, 1_799));
        assert_eq!(
            (r.packets, r.bytes, r.tcp_flags, r.first_seq),
            (3, 300, 3, 10)
        );
        assert_eq!(r.traffic_path, Some(8));
        assert_eq!(r.log_status, LogStatus::Ok);
        assert_eq!(agg.open_records(), 0);
    }

    #[test]
    fn close_before_closes_only_ended_windows() {
        let mut agg = Aggregator::new(60);
        let o = obs(1, Direction::Egress, Action::Accept, 0);
        agg.observe(&o, at(59, 0), 1);
        agg.observe(&o, at(60, 0), 2);
        agg.observe(&o, at(125, 0), 3);
        let mut out = Vec::new();
        agg.close_before(59, &mut out);
        assert!(out.is_empty());
        agg.close_before(60, &mut out);
        assert_eq!(out.iter().map(|r| r.window_start).collect::<Vec<_>>(), [0]);
        agg.close_before(179, &mut out);
        assert_eq!(
            out.iter().map(|r| r.window_start).collect::<Vec<_>>(),
            [0, 60]
        );
        assert_eq!(agg.open_records(), 1);
        agg.close_all(&mut out);
        assert_eq!(
            out.iter().map(|r| r.window_start).collect::<Vec<_>>(),
            [0, 60, 120]
        );
    }

    #[test]
    fn late_packet_reopens_a_closed_window() {
        let mut agg = Aggregator::new(60);
        let o = obs(1, Direction::Egress, Action::Accept, 0);
        agg.observe(&o, at(61, 0), 1);
        let mut out = Vec::new();
        agg.close_before(120, &mut out);
        agg.observe(&o, at(130, 0), 2);
        agg.observe(&o, at(62, 0), 3); // timestamp went backwards
        assert_eq!(agg.open_records(), 2);
        agg.close_all(&mut out);
        let got: Vec<_> = out
            .iter()
            .map(|r| (r.window_start, r.first_seq, r.packets))
            .collect();
        assert_eq!(got, [(60, 1, 1), (60, 3, 1), (120, 2, 1)]);
    }

    #[test]
    fn backwards_timestamps_keep_start_before_end() {
        let mut agg = Aggregator::new(600);
        let o = obs(1, Direction::Ingress, Action::Accept, 0);
        agg.observe(&o, at(700, 0), 5);
        agg.observe(&o, at(650, 0), 6);
        let mut out = Vec::new();
        agg.close_all(&mut out);
        assert_eq!((out[0].start, out[0].end, out[0].first_seq), (650, 700, 5));
    }

    #[test]
    fn action_and_direction_split_records() {
        let mut agg = Aggregator::new(600);
        agg.observe(&obs(1, Direction::Ingress, Action::Accept, 0), at(10, 0), 1);
        agg.observe(&obs(1, Direction::Ingress, Action::Reject, 0), at(11, 0), 2);
        agg.observe(&obs(1, Direction::Egress, Action::Accept, 0), at(12, 0), 3);
        agg.observe(&obs(0, Direction::Egress, Action::Accept, 0), at(13, 0), 4);
        let mut out = Vec::new();
        agg.close_all(&mut out);
        let got: Vec<_> = out
            .iter()
            .map(|r| (r.eni.0, r.first_seq, r.direction, r.action))
            .collect();
        assert_eq!(
            got,
            [
                (0, 4, Direction::Egress, Action::Accept),
                (1, 1, Direction::Ingress, Action::Accept),
                (1, 2, Direction::Ingress, Action::Reject),
                (1, 3, Direction::Egress, Action::Accept),
            ]
        );
    }

    #[test]
    fn non_tcp_records_have_no_flags() {
        let mut agg = Aggregator::new(60);
        let mut o = obs(1, Direction::Egress, Action::Accept, SYN | ACK);
        o.protocol = 17;
        agg.observe(&o, at(1, 0), 1);
        let mut out = Vec::new();
        agg.close_all(&mut out);
        assert_eq!(out[0].tcp_flags, 0);
    }

    #[test]
    fn maps_are_reused_after_close() {
        let mut agg = Aggregator::new(60);
        let o = obs(1, Direction::Egress, Action::Accept, 0);
        let mut out = Vec::new();
        for w in 0..5u64 {
            agg.observe(&o, at(w * 60, 0), w);
            agg.close_before((w + 1) * 60, &mut out);
            assert!(agg.spare.len() <= SPARE_MAPS);
        }
        assert_eq!(out.len(), 5);
        assert!(out.windows(2).all(|p| p[0] < p[1]));
    }

    #[test]
    fn a_hint_is_checked_before_use_and_then_updated() {
        let mut agg = Aggregator::new(60);
        let a = obs(1, Direction::Egress, Action::Accept, 0);
        let b = obs(1, Direction::Ingress, Action::Accept, 0);
        let (mut ha, mut hb) = (u32::MAX, u32::MAX);
        agg.observe_hinted(&a, at(1, 0), 1, 0, &mut ha);
        agg.observe_hinted(&b, at(2, 0), 2, 0, &mut hb);
        assert_eq!((ha, hb), (0, 1), "each hint now names its record's slot");
        // A wrong hint (b's slot for a's packet) and one beyond the window's records:
        // the packet still counts in its own record, and the hint is corrected.
        let mut wrong = hb;
        agg.observe_hinted(&a, at(3, 0), 3, 0, &mut wrong);
        assert_eq!(wrong, ha);
        let mut beyond = 7;
        agg.observe_hinted(&b, at(4, 0), 4, 0, &mut beyond);
        assert_eq!(beyond, hb);
        // A right hint is used as is.
        agg.observe_hinted(&a, at(5, 0), 5, 0, &mut ha);
        let mut out = Vec::new();
        agg.close_all(&mut out);
        let count = |d: Direction| out.iter().find(|r| r.direction == d).unwrap().packets;
        assert_eq!(
            (count(Direction::Egress), count(Direction::Ingress)),
            (3, 2)
        );
        // A hint of a closed window names nothing in the next one.
        let mut stale = ha;
        agg.observe_hinted(&b, at(61, 0), 6, 0, &mut stale);
        assert_eq!(stale, 0);
        out.clear();
        agg.close_all(&mut out);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].direction, out[0].packets), (Direction::Ingress, 1));
    }

    #[test]
    fn a_closed_window_reads_in_record_order() {
        // Records of several ENIs opened interleaved, some by one packet seen twice at
        // one ENI, in two windows: each closed window must read back sorted by the
        // full record order, with every record once.
        let mut agg = Aggregator::new(60);
        let mut seq = 0;
        let mut opened = 0;
        for round in 0..300u64 {
            let eni = (round * 7 % 5) as u32;
            let secs = if round < 150 {
                1 + round % 50
            } else {
                61 + round % 50
            };
            let mut o = obs(eni, Direction::Egress, Action::Accept, 0);
            o.srcport = 1000 + round as u16;
            agg.observe(&o, at(secs, 0), seq);
            opened += 1;
            if round % 4 == 0 {
                // Traffic to itself: the same packet at the same ENI, ingress.
                let mut i = o;
                i.direction = Direction::Ingress;
                agg.observe(&i, at(secs, 0), seq);
                opened += 1;
            }
            // A second packet of an earlier record.
            agg.observe(&o, at(secs, 0), seq + 1);
            seq += 2;
        }
        let (mut windows, mut skipdata) = (Vec::new(), Vec::new());
        agg.close_all_windows(&mut windows, &mut skipdata);
        assert!(skipdata.is_empty());
        assert_eq!(windows.len(), 2);
        let mut total = 0;
        for w in &windows {
            let got: Vec<FlowRecord> = w.iter().collect();
            let mut sorted = got.clone();
            sorted.sort();
            assert_eq!(got, sorted);
            assert!(got.iter().all(|r| r.window_start == w.window_start()));
            let mut enis: Vec<EniNum> = got.iter().map(|r| r.eni).collect();
            enis.dedup();
            assert_eq!(w.enis(), enis);
            assert!(got
                .iter()
                .all(|r| r.packets == 2 || r.direction == Direction::Ingress));
            total += got.len();
        }
        assert_eq!(total, opened);
    }

    #[test]
    fn one_packet_seen_twice_at_one_eni_gives_ingress_first() {
        // Traffic from an ENI to itself: the same packet is the first of an egress and
        // of an ingress record at the same ENI. The record order (window, ENI, first
        // packet, then the record's fields: ingress before egress) must not depend on
        // which was opened first.
        for first in [Direction::Egress, Direction::Ingress] {
            let mut agg = Aggregator::new(60);
            let second = match first {
                Direction::Egress => Direction::Ingress,
                Direction::Ingress => Direction::Egress,
            };
            agg.observe(&obs(3, first, Action::Accept, 0), at(1, 0), 9);
            agg.observe(&obs(3, second, Action::Accept, 0), at(1, 0), 9);
            let mut out = Vec::new();
            agg.close_all(&mut out);
            let dirs: Vec<_> = out.iter().map(|r| r.direction).collect();
            assert_eq!(dirs, [Direction::Ingress, Direction::Egress]);
        }
    }

    impl Observation {
        fn with_flags(mut self, flags: u8) -> Observation {
            self.tcp_flags = flags;
            self
        }
    }
}
