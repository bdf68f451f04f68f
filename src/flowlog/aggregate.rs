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
            direction: if self.tags & 1 << 8 != 0 {
                Direction::Egress
            } else {
                Direction::Ingress
            },
            action: if self.tags & 1 << 9 != 0 {
                Action::Reject
            } else {
                Action::Accept
            },
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
    index: HashTable<(u32, u32)>,
    /// Slots in opening order, which in one worker is the order of the records'
    /// first packets (`first_seq`).
    chunks: Vec<Vec<Slot>>,
    len: u32,
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
        let wi = self.window_index(window);
        let w = &mut self.windows[wi];
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
        let flags = if obs.protocol == PROTO_TCP {
            aws_tcp_flags(obs.tcp_flags)
        } else {
            0
        };
        let bytes = u64::from(obs.bytes);
        let at = (secs - window) as u32;
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
                let Records { index, chunks, len } = &mut w.flows;
                if let Some(&i) = hint.as_deref() {
                    if i < *len {
                        let s = &mut chunks[i as usize / CHUNK][i as usize % CHUNK];
                        if s.key == c {
                            update(&mut s.acc);
                            return;
                        }
                    }
                }
                let h = (self.hasher.hash_one(c) >> 32) as u32;
                let entry = index.entry(
                    spread(h),
                    |&(i, hh)| hh == h && chunks[i as usize / CHUNK][i as usize % CHUNK].key == c,
                    |&(_, hh)| spread(hh),
                );
                match entry {
                    hashbrown::hash_table::Entry::Occupied(o) => {
                        let i = o.get().0;
                        if let Some(hint) = hint {
                            *hint = i;
                        }
                        let i = i as usize;
                        update(&mut chunks[i / CHUNK][i % CHUNK].acc);
                        return;
                    }
                    hashbrown::hash_table::Entry::Vacant(v) => {
                        if !full && *len < u32::MAX {
                            let i = *len;
                            v.insert((i, h));
                            if let Some(hint) = hint {
                                *hint = i;
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
        self.skipped_packets += 1;
        self.skipped
            .entry((window, obs.eni))
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
    fn window_index(&mut self, start: u64) -> usize {
        // Usually the newest window: search from the back.
        let mut at = self.windows.len();
        while at > 0 && self.windows[at - 1].start > start {
            at -= 1;
        }
        if at == 0 || self.windows[at - 1].start != start {
            let flows = self.spare.pop().unwrap_or_default();
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
            .map(|w| w.flows.len as usize + w.wide.len())
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
            let mut extra: Vec<FlowRecord> = window
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
            let slots = window.flows.len;
            let chunks = std::mem::take(&mut window.flows.chunks);
            let closed = if extra.is_empty() {
                ClosedWindow::new(window.start, chunks, slots)
            } else {
                // Keys that did not fit the compact form (never made by the engine):
                // every record is made now and sorted.
                extra.extend(
                    chunks
                        .iter()
                        .flatten()
                        .map(|s| record(window.start, s.key.key(), s.acc)),
                );
                extra.sort_unstable();
                let mut enis: Vec<EniNum> = extra.iter().map(|r| r.eni).collect();
                enis.dedup();
                ClosedWindow {
                    enis,
                    start: window.start,
                    chunks: Vec::new(),
                    order: (0..extra.len() as u32).collect(),
                    slots: 0,
                    extra,
                }
            };
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
    /// Record order: slot indices below `slots`, then indices into `extra`.
    order: Vec<u32>,
    slots: u32,
    extra: Vec<FlowRecord>,
    /// The ENIs with at least one record, ascending.
    enis: Vec<EniNum>,
}

impl ClosedWindow {
    /// `slots` slots in first-packet order, put in record order.
    fn new(start: u64, chunks: Vec<Vec<Slot>>, slots: u32) -> ClosedWindow {
        let slot = |i: u32| &chunks[i as usize / CHUNK][i as usize % CHUNK];
        // Slots are in first-packet order: grouping them by ENI (a stable counting
        // sort) gives the record order without comparing records.
        let enis = chunks
            .iter()
            .flatten()
            .map(|s| s.key.eni.get() + 1)
            .max()
            .unwrap_or(0);
        let mut at = vec![0u32; enis + 1];
        for s in chunks.iter().flatten() {
            at[s.key.eni.get() + 1] += 1;
        }
        let enis = (0..enis as u32)
            .filter(|&e| at[e as usize + 1] > 0)
            .map(EniNum)
            .collect();
        for e in 1..at.len() {
            at[e] += at[e - 1];
        }
        let mut order = vec![0u32; slots as usize];
        for (i, s) in chunks.iter().flatten().enumerate() {
            let e = s.key.eni.get();
            order[at[e] as usize] = i as u32;
            at[e] += 1;
        }
        // One packet observed twice at one ENI (egress and ingress of traffic to
        // itself) opens two records with the same first packet, one after the other:
        // the full record order decides between them.
        for k in 1..order.len() {
            let (a, b) = (slot(order[k - 1]), slot(order[k]));
            if a.key.eni == b.key.eni
                && a.acc.first_seq == b.acc.first_seq
                && record(start, a.key.key(), a.acc) > record(start, b.key.key(), b.acc)
            {
                order.swap(k - 1, k);
            }
        }
        ClosedWindow {
            start,
            chunks,
            order,
            slots,
            extra: Vec::new(),
            enis,
        }
    }

    /// The start of the window, Unix seconds.
    pub fn window_start(&self) -> u64 {
        self.start
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Record `i`, in record order.
    ///
    /// # Panics
    /// If `i` is not below [`ClosedWindow::len`].
    pub fn get(&self, i: usize) -> FlowRecord {
        let k = self.order[i];
        if k < self.slots {
            let s = &self.chunks[k as usize / CHUNK][k as usize % CHUNK];
            record(self.start, s.key.key(), s.acc)
        } else {
            self.extra[(k - self.slots) as usize].clone()
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
