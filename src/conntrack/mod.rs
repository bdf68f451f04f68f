//! Connection tracking as security groups do it (manual: "Connection tracking"): one table per
//! ENI (here one map keyed by the ENI's stable number), states and idle timeouts,
//! and a tracked-connection allowance per instance.
//!
//! Time is an argument: every call takes the packet's capture time. Nothing here
//! reads a clock, so replay is deterministic.
//!
//! What it does not do: decide whether a flow is tracked at all (the untracked
//! condition needs the rules; see [`crate::engine`]).
//!
//! ```
//! use vpcgate::conntrack::*;
//! use vpcgate::model::{ConntrackTimeouts, Direction};
//! let mut ct = ConnTable::new();
//! let key = ConnKey::new(vpcgate::model::EniNum(0), 17, "10.0.0.5".parse().unwrap(), 40000, "8.8.8.8".parse().unwrap(), 53);
//! let t = ConntrackTimeouts::default();
//! let s = 1_000_000_000u64; // one second in nanoseconds
//! ct.insert(key, Direction::Egress, 0, 0, 0, &t);
//! // The reply 10 s later belongs to the entry...
//! assert!(ct.lookup(&key, Direction::Ingress, 0, 10 * s, &t).is_some());
//! // ...but after 30 s of silence (the UDP timeout) it has expired.
//! assert!(ct.lookup(&key, Direction::Ingress, 0, 41 * s, &t).is_none());
//! ```
#![deny(clippy::disallowed_methods, clippy::disallowed_types)]

use crate::model::{ConntrackTimeouts, Direction, EniNum};
use crate::model::{PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP};
use crate::wire::packet::tcp_flags;
use hashbrown::{HashMap, HashTable};
use std::hash::BuildHasher;
use std::net::IpAddr;

use crate::wire::packet::NANOS_PER_SEC as NS;

/// Number of flow shards. A packet's shard is a symmetric hash of its address pair,
/// its protocol and, for TCP and UDP, its port pair: both directions of a connection,
/// and every packet of a flow-log record, share one, and the connections between two
/// hosts spread over all of them. (ICMP is not split by echo id: one flow-log record
/// counts every id between two hosts.) The pipeline gives each
/// worker whole shards (shard mod workers), and the `--max-flows` limit is split
/// evenly over the shards: where each flow goes, and when the limit bites, does not
/// depend on the number of workers.
///
/// A non-first fragment has no ports; the pipeline's reader sends it to the shard of
/// its first fragment, whose verdict it takes (see [`crate::engine::FRAGMENT_MEMORY_SECS`]). One
/// without a known first fragment, like any packet whose ports are both 0, gets the
/// shard of its address pair and protocol alone: [`crate::engine::flow_hash`] is built so that ports
/// 0 and 0 add nothing.
pub const FLOW_SHARDS: u32 = 64;

/// (ENI, protocol, local address, local port or ICMP id, remote address, remote port).
/// Ports are 0 for protocols without ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnKey {
    pub eni: EniNum,
    pub protocol: u8,
    pub local_port: u16,
    pub remote_port: u16,
    pub local: IpAddr,
    pub remote: IpAddr,
}

impl ConnKey {
    pub fn new(
        eni: EniNum,
        protocol: u8,
        local: IpAddr,
        local_port: u16,
        remote: IpAddr,
        remote_port: u16,
    ) -> ConnKey {
        ConnKey {
            eni,
            protocol,
            local_port,
            remote_port,
            local,
            remote,
        }
    }
}

impl std::hash::Hash for ConnKey {
    /// Two or four wide writes instead of the derived field-by-field ones (an
    /// `IpAddr` alone hashes as a tag, a length and bytes): the per-packet path.
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        let ports = u64::from(self.local_port) | u64::from(self.remote_port) << 16;
        let tag = |v6: bool, a: u32| {
            u64::from(self.eni.0 ^ u32::from(self.protocol) << 24 ^ a << 22)
                .wrapping_add(u64::from(v6))
        };
        match (self.local, self.remote) {
            (IpAddr::V4(l), IpAddr::V4(r)) => {
                h.write_u64(tag(false, 0) << 32 | ports);
                h.write_u64(u64::from(l.to_bits()) | u64::from(r.to_bits()) << 32);
            }
            (l, r) => {
                let wide = |a: IpAddr| match a {
                    IpAddr::V4(v) => u128::from(v.to_bits()),
                    IpAddr::V6(v) => v.to_bits(),
                };
                h.write_u64(
                    tag(true, u32::from(l.is_ipv6()) | u32::from(r.is_ipv6()) << 1) << 32 | ports,
                );
                h.write_u128(wide(l));
                h.write_u128(wide(r));
            }
        }
    }
}

/// The state of a tracked connection, which picks its idle timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnState {
    TcpUnestablished,
    TcpEstablished,
    TcpClosing,
    Udp,
    UdpStream,
    Icmp,
    Other,
}

impl ConnState {
    pub fn timeout_secs(self, t: &ConntrackTimeouts) -> u32 {
        match self {
            ConnState::TcpUnestablished => t.tcp_unestablished,
            ConnState::TcpEstablished => t.tcp_established,
            ConnState::TcpClosing => t.tcp_closing,
            ConnState::Udp => t.udp,
            ConnState::UdpStream => t.udp_stream,
            ConnState::Icmp => t.icmp,
            ConnState::Other => t.other,
        }
    }
}

/// One tracked connection. 36 bytes: aligned to 4, not 8, so that with its
/// [`ConnKey`] it takes 80 bytes of a [`ConnTable`], not 88 (fields in declaration
/// order, widest first).
#[derive(Clone, Copy, Debug)]
#[repr(C, packed(4))]
pub struct ConnEntry {
    /// Capture time of the last packet, nanoseconds.
    pub last_seen: u64,
    /// The allowance group (instance) the entry counts against.
    pub group: u32,
    /// Per direction at the ENI (`Direction as usize`): 0, or 1 + the hit slot
    /// ([`crate::policy::Policy::nacl_slot`]) of the NACL entry that allowed the
    /// connection's packets in that direction. The engine fills it for TCP and UDP,
    /// whose NACL decision reads only fields of the key (protocol, peer, destination
    /// port), and it is cleared when the ruleset changes. Nothing here reads it.
    pub nacl_allow: [u32; 2],
    /// Per direction: where the flow-log record of the connection's packets was last
    /// found ([`crate::flowlog::Aggregator::observe_hinted`]); a hint only, checked
    /// before use. Nothing here reads it.
    pub flow_log: [u32; 2],
    pub state: ConnState,
    /// Direction, at this ENI, of the packet that created the entry.
    pub origin: Direction,
    /// Packets seen from the originator and from the responder (saturating).
    pub orig_packets: u8,
    pub reply_packets: u8,
    pub fin_orig: bool,
    pub fin_reply: bool,
    /// The flow shard ([`crate::engine::flow_shard`]) the entry counts against for
    /// the global `--max-flows` limit.
    pub shard: u8,
}

impl ConnEntry {
    /// Whether the entry's idle time at `now` exceeds its state's timeout.
    pub fn expired(&self, now: u64, t: &ConntrackTimeouts) -> bool {
        now.saturating_sub(self.last_seen) > self.state.timeout_secs(t) as u64 * NS
    }

    fn initial_state(protocol: u8, flags: u8) -> ConnState {
        match protocol {
            PROTO_TCP => {
                if flags & tcp_flags::RST != 0 {
                    ConnState::TcpClosing
                } else if flags & (tcp_flags::SYN | tcp_flags::ACK)
                    == tcp_flags::SYN | tcp_flags::ACK
                {
                    ConnState::TcpEstablished
                } else {
                    ConnState::TcpUnestablished
                }
            }
            PROTO_UDP => ConnState::Udp,
            PROTO_ICMP | PROTO_ICMPV6 => ConnState::Icmp,
            _ => ConnState::Other,
        }
    }

    /// Applies a packet seen in `dir` at the ENI: refreshes the idle time and moves
    /// the state (manual: "Connection tracking").
    fn update(&mut self, dir: Direction, flags: u8, now: u64) {
        self.last_seen = self.last_seen.max(now);
        let reply = dir != self.origin;
        if reply {
            self.reply_packets = self.reply_packets.saturating_add(1);
        } else {
            self.orig_packets = self.orig_packets.saturating_add(1);
        }
        match self.state {
            ConnState::TcpUnestablished | ConnState::TcpEstablished => {
                if flags & tcp_flags::RST != 0 {
                    self.state = ConnState::TcpClosing;
                    return;
                }
                if flags & tcp_flags::FIN != 0 {
                    if reply {
                        self.fin_reply = true;
                    } else {
                        self.fin_orig = true;
                    }
                }
                if self.fin_orig && self.fin_reply {
                    self.state = ConnState::TcpClosing;
                } else if self.state == ConnState::TcpUnestablished
                    && (reply
                        || flags & (tcp_flags::SYN | tcp_flags::ACK)
                            == tcp_flags::SYN | tcp_flags::ACK)
                {
                    self.state = ConnState::TcpEstablished;
                }
            }
            ConnState::Udp if self.orig_packets >= 2 && self.reply_packets >= 2 => {
                self.state = ConnState::UdpStream;
            }
            _ => {}
        }
    }
}

/// Where a tracked connection sits in its [`ConnTable`]: valid until the table next
/// removes an entry, which a stale reference detects (it then finds nothing). The engine takes one per lookup to reach the entry again without
/// hashing its key (the NACL cache, the flow-log hint).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnRef {
    bucket: u32,
    epoch: u32,
}

/// One place of a [`ConnTable`]'s store: a tracked connection, or a free place
/// (`entry.shard == FREE`). 80 bytes.
#[derive(Clone, Copy, Debug)]
struct Place {
    key: ConnKey,
    entry: ConnEntry,
}

/// A [`Place`] for a connection whose two addresses are IPv4 (most): 56 bytes.
#[derive(Clone, Copy, Debug)]
struct Place4 {
    key: Key4,
    entry: ConnEntry,
}

/// A [`ConnKey`] with two IPv4 addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Key4 {
    eni: EniNum,
    local: u32,
    remote: u32,
    /// local port | remote port << 16
    ports: u32,
    protocol: u8,
}

impl Key4 {
    #[inline]
    fn of(k: &ConnKey) -> Option<Key4> {
        match (k.local, k.remote) {
            (IpAddr::V4(l), IpAddr::V4(r)) => Some(Key4 {
                eni: k.eni,
                local: l.to_bits(),
                remote: r.to_bits(),
                ports: u32::from(k.local_port) | u32::from(k.remote_port) << 16,
                protocol: k.protocol,
            }),
            _ => None,
        }
    }

    fn key(&self) -> ConnKey {
        ConnKey::new(
            self.eni,
            self.protocol,
            IpAddr::V4(self.local.into()),
            self.ports as u16,
            IpAddr::V4(self.remote.into()),
            (self.ports >> 16) as u16,
        )
    }
}

/// The `shard` of a free place (flow shards are below [`FLOW_SHARDS`]).
const FREE: u8 = u8::MAX;

/// Places per chunk of a store.
const PLACES: usize = 4096;

/// The high bit of a place's handle: set for a [`Place`], clear for a [`Place4`].
const WIDE: u32 = 1 << 31;

/// The table hash from the 32 hash bits kept in an index bucket: hashbrown takes the
/// bucket position from the low bits and a tag from the top 7.
#[inline]
fn spread(h: u32) -> u64 {
    u64::from(h) << 32 | u64::from(h)
}

/// Places in fixed chunks, reused through a free list: a place never moves.
#[derive(Debug)]
struct Store<T> {
    chunks: Vec<Vec<T>>,
    /// Places handed out so far (live or free).
    used: u32,
    /// Free places below `used`.
    free: Vec<u32>,
}

impl<T> Default for Store<T> {
    fn default() -> Self {
        Store {
            chunks: Vec::new(),
            used: 0,
            free: Vec::new(),
        }
    }
}

impl<T> Store<T> {
    #[inline]
    fn get(&self, i: u32) -> &T {
        &self.chunks[i as usize / PLACES][i as usize % PLACES]
    }

    #[inline]
    fn get_mut(&mut self, i: u32) -> &mut T {
        &mut self.chunks[i as usize / PLACES][i as usize % PLACES]
    }

    fn alloc(&mut self, place: T) -> u32 {
        if let Some(i) = self.free.pop() {
            *self.get_mut(i) = place;
            return i;
        }
        let i = self.used;
        assert!(i < WIDE - 1, "more than 2^31 tracked connections");
        if (i as usize).is_multiple_of(PLACES) {
            self.chunks.push(Vec::with_capacity(PLACES));
        }
        let last = self.chunks.len() - 1;
        self.chunks[last].push(place);
        self.used += 1;
        i
    }
}

/// The tracked connections of one worker (all ENIs whose flows it owns).
///
/// Entries live in fixed chunks of places (56 bytes for IPv4 connections, 80 for the
/// others), reused through a free list, and the hash table holds only (place, 32
/// hash bits), 8 bytes a bucket: a table of 120k connections takes about 9 MB
/// instead of the 23 MB of a table of whole entries (whose buckets are at most 7/8
/// full and as little as 7/16 after a doubling), a doubling copies 8-byte buckets,
/// not whole entries, and an entry never moves.
#[derive(Default)]
pub struct ConnTable {
    /// (handle: a [`Place4`] index, or [`WIDE`] | a [`Place`] index; 32 hash bits)
    index: HashTable<(u32, u32)>,
    narrow: Store<Place4>,
    wide: Store<Place>,
    len: usize,
    hasher: foldhash::fast::RandomState,
    /// Changes whenever an entry is removed (see [`ConnRef`]).
    epoch: u32,
    /// Live entries per allowance group.
    group_count: HashMap<u32, u32, foldhash::fast::FixedState>,
    /// Live entries per flow shard.
    shard_count: Vec<u32>,
    /// Capture time of the last sweep, nanoseconds.
    last_sweep: u64,
    /// Entries removed by expiry so far.
    pub expired: u64,
}

impl ConnTable {
    pub fn new() -> ConnTable {
        ConnTable::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    fn hash(&self, key: &ConnKey) -> u32 {
        (self.hasher.hash_one(key) >> 32) as u32
    }

    /// The entry at handle `h` (live or free).
    #[inline]
    fn entry_at(&self, h: u32) -> &ConnEntry {
        match h & WIDE {
            0 => &self.narrow.get(h).entry,
            _ => &self.wide.get(h & !WIDE).entry,
        }
    }

    #[inline]
    fn entry_at_mut(&mut self, h: u32) -> &mut ConnEntry {
        match h & WIDE {
            0 => &mut self.narrow.get_mut(h).entry,
            _ => &mut self.wide.get_mut(h & !WIDE).entry,
        }
    }

    fn key_at(&self, h: u32) -> ConnKey {
        match h & WIDE {
            0 => self.narrow.get(h).key.key(),
            _ => self.wide.get(h & !WIDE).key,
        }
    }

    /// The handle of `key`'s place, if it has one.
    #[inline]
    fn handle(&self, key: &ConnKey, h: u32) -> Option<u32> {
        let (narrow, wide) = (&self.narrow, &self.wide);
        let found = match Key4::of(key) {
            Some(k4) => self.index.find(spread(h), |&(i, hh)| {
                hh == h && i & WIDE == 0 && narrow.get(i).key == k4
            }),
            None => self.index.find(spread(h), |&(i, hh)| {
                hh == h && i & WIDE != 0 && wide.get(i & !WIDE).key == *key
            }),
        };
        found.map(|&(i, _)| i)
    }

    /// Whether handle `h` names a place that exists.
    #[inline]
    fn exists(&self, h: u32) -> bool {
        match h & WIDE {
            0 => h < self.narrow.used,
            _ => h & !WIDE < self.wide.used,
        }
    }

    /// Finds the live entry for `key`, applies the packet to it and returns its state
    /// after the update. An expired entry is removed and `None` returned: the packet
    /// is then judged by the rules again (a late packet after close).
    pub fn lookup(
        &mut self,
        key: &ConnKey,
        dir: Direction,
        flags: u8,
        now: u64,
        t: &ConntrackTimeouts,
    ) -> Option<ConnState> {
        let r = self.find(key)?;
        self.lookup_at(r, dir, flags, now, t)
    }

    /// Where the entry for `key` is, live or expired, without changing anything.
    #[inline]
    pub fn find(&self, key: &ConnKey) -> Option<ConnRef> {
        let i = self.handle(key, self.hash(key))?;
        Some(ConnRef {
            bucket: i,
            epoch: self.epoch,
        })
    }

    /// Removes the entry at handle `i` (live).
    fn remove(&mut self, i: u32) {
        let key = self.key_at(i);
        let h = self.hash(&key);
        if let Ok(o) = self.index.find_entry(spread(h), |&(j, _)| j == i) {
            o.remove();
        }
        let e = self.entry_at_mut(i);
        let (group, shard) = (e.group, e.shard);
        e.shard = FREE;
        match i & WIDE {
            0 => self.narrow.free.push(i),
            _ => self.wide.free.push(i & !WIDE),
        }
        self.len -= 1;
        self.epoch = self.epoch.wrapping_add(1);
        self.dec(group, shard);
    }

    /// [`ConnTable::lookup`] for an entry found by [`ConnTable::find`] (or returned by
    /// an insert) since the table last removed an entry. A stale `r` finds nothing.
    pub fn lookup_at(
        &mut self,
        r: ConnRef,
        dir: Direction,
        flags: u8,
        now: u64,
        t: &ConntrackTimeouts,
    ) -> Option<ConnState> {
        self.entry(r)?;
        let e = self.entry_at_mut(r.bucket);
        if e.expired(now, t) {
            self.remove(r.bucket);
            self.expired += 1;
            return None;
        }
        e.update(dir, flags, now);
        Some(e.state)
    }

    /// The entry at `r`, if `r` is not stale.
    #[inline]
    pub fn entry(&self, r: ConnRef) -> Option<&ConnEntry> {
        if r.epoch != self.epoch || !self.exists(r.bucket) {
            return None;
        }
        Some(self.entry_at(r.bucket)).filter(|e| e.shard != FREE)
    }

    /// The entry at `r`, if `r` is not stale, to change its caches.
    #[inline]
    pub fn entry_mut(&mut self, r: ConnRef) -> Option<&mut ConnEntry> {
        self.entry(r)?;
        Some(self.entry_at_mut(r.bucket))
    }

    /// The entry for `key`, live or expired.
    pub fn get(&self, key: &ConnKey) -> Option<&ConnEntry> {
        self.entry(self.find(key)?)
    }

    /// Live entries in allowance group `group`.
    pub fn group_len(&self, group: u32) -> u32 {
        self.group_count.get(&group).copied().unwrap_or(0)
    }

    /// Live entries in flow shard `shard`.
    pub fn shard_len(&self, shard: u8) -> u32 {
        self.shard_count.get(shard as usize).copied().unwrap_or(0)
    }

    /// Creates an entry for a packet the rules allowed (in flow shard 0; see
    /// [`ConnTable::insert_in_shard`]).
    pub fn insert(
        &mut self,
        key: ConnKey,
        dir: Direction,
        flags: u8,
        group: u32,
        now: u64,
        t: &ConntrackTimeouts,
    ) -> ConnRef {
        self.insert_in_shard(key, dir, flags, group, 0, now, t)
    }

    /// Creates an entry for a packet the rules allowed, counted in `shard` (below
    /// [`FLOW_SHARDS`]).
    #[allow(clippy::too_many_arguments)]
    pub fn insert_in_shard(
        &mut self,
        key: ConnKey,
        dir: Direction,
        flags: u8,
        group: u32,
        shard: u8,
        now: u64,
        _t: &ConntrackTimeouts,
    ) -> ConnRef {
        assert!(
            u32::from(shard) < FLOW_SHARDS,
            "flow shard {shard} out of range"
        );
        let mut e = ConnEntry {
            last_seen: now,
            state: ConnEntry::initial_state(key.protocol, flags),
            origin: dir,
            orig_packets: 1,
            reply_packets: 0,
            fin_orig: key.protocol == PROTO_TCP && flags & tcp_flags::FIN != 0,
            fin_reply: false,
            group,
            shard,
            nacl_allow: [0; 2],
            flow_log: [u32::MAX; 2],
        };
        if e.state == ConnState::TcpClosing {
            e.fin_orig = false;
        }
        let h = self.hash(&key);
        let i = match self.handle(&key, h) {
            Some(i) => {
                // Replaced: its counts move to the new entry's group and shard.
                let old = std::mem::replace(self.entry_at_mut(i), e);
                self.dec(old.group, old.shard);
                i
            }
            None => {
                let i = match Key4::of(&key) {
                    Some(k4) => self.narrow.alloc(Place4 { key: k4, entry: e }),
                    None => self.wide.alloc(Place { key, entry: e }) | WIDE,
                };
                self.index
                    .insert_unique(spread(h), (i, h), |&(_, hh)| spread(hh));
                self.len += 1;
                i
            }
        };
        *self.group_count.entry(group).or_insert(0) += 1;
        if self.shard_count.len() <= shard as usize {
            self.shard_count.resize(shard as usize + 1, 0);
        }
        self.shard_count[shard as usize] += 1;
        ConnRef {
            bucket: i,
            epoch: self.epoch,
        }
    }

    fn dec(&mut self, group: u32, shard: u8) {
        if let Some(c) = self.group_count.get_mut(&group) {
            *c = c.saturating_sub(1);
        }
        if let Some(c) = self.shard_count.get_mut(shard as usize) {
            *c = c.saturating_sub(1);
        }
    }

    /// The live places whose entry `gone` says to remove, removed.
    fn remove_where(&mut self, mut gone: impl FnMut(&ConnKey, &mut ConnEntry) -> bool) -> u64 {
        let mut removed = 0;
        for i in 0..self.narrow.used {
            let p = self.narrow.get_mut(i);
            if p.entry.shard != FREE && gone(&p.key.key(), &mut p.entry) {
                self.remove(i);
                removed += 1;
            }
        }
        for i in 0..self.wide.used {
            let p = self.wide.get_mut(i);
            if p.entry.shard != FREE && gone(&p.key, &mut p.entry) {
                self.remove(i | WIDE);
                removed += 1;
            }
        }
        removed
    }

    /// Removes expired entries when at least `every_secs` of capture time passed since
    /// the last sweep (or always, with `force`). Keeps memory proportional to live
    /// flows. `timeouts` gives each ENI's timeouts by stable number.
    pub fn sweep(
        &mut self,
        now: u64,
        every_secs: u64,
        force: bool,
        timeouts: &dyn Fn(EniNum) -> ConntrackTimeouts,
    ) {
        if !force && now.saturating_sub(self.last_sweep) < every_secs * NS {
            return;
        }
        self.last_sweep = now;
        self.expired += self.remove_where(|k, e| e.expired(now, &timeouts(k.eni)));
    }

    /// Moves entries of ENIs whose stable number maps to a new allowance group after a
    /// ruleset change; entries of ENIs that no longer exist are dropped. Clears the
    /// entries' NACL caches, which belong to the old ruleset.
    pub fn regroup(&mut self, group_of: &dyn Fn(EniNum) -> Option<u32>) {
        self.remove_where(|k, e| match group_of(k.eni) {
            Some(g) => {
                e.group = g;
                e.nacl_allow = [0; 2];
                false
            }
            None => true,
        });
        self.epoch = self.epoch.wrapping_add(1);
        self.group_count.clear();
        self.shard_count.clear();
        let narrow = (0..self.narrow.used).map(|i| self.narrow.get(i).entry);
        let wide = (0..self.wide.used).map(|i| self.wide.get(i).entry);
        for e in narrow.chain(wide) {
            if e.shard == FREE {
                continue;
            }
            *self.group_count.entry(e.group).or_insert(0) += 1;
            if self.shard_count.len() <= e.shard as usize {
                self.shard_count.resize(e.shard as usize + 1, 0);
            }
            self.shard_count[e.shard as usize] += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = NS;

    fn key(proto: u8) -> ConnKey {
        ConnKey::new(
            EniNum(1),
            proto,
            "10.0.0.5".parse().unwrap(),
            40000,
            "203.0.113.9".parse().unwrap(),
            443,
        )
    }

    #[test]
    fn tcp_handshake_establishes_and_fin_closes() {
        let t = ConntrackTimeouts::default();
        let mut ct = ConnTable::new();
        let k = key(6);
        ct.insert(k, Direction::Egress, tcp_flags::SYN, 0, 0, &t);
        assert_eq!(ct.get(&k).unwrap().state, ConnState::TcpUnestablished);
        // Not established: 120 s idle is the limit.
        assert_eq!(
            ct.lookup(
                &k,
                Direction::Ingress,
                tcp_flags::SYN | tcp_flags::ACK,
                S,
                &t
            ),
            Some(ConnState::TcpEstablished)
        );
        assert_eq!(
            ct.lookup(
                &k,
                Direction::Egress,
                tcp_flags::FIN | tcp_flags::ACK,
                2 * S,
                &t
            ),
            Some(ConnState::TcpEstablished)
        );
        assert_eq!(
            ct.lookup(
                &k,
                Direction::Ingress,
                tcp_flags::FIN | tcp_flags::ACK,
                3 * S,
                &t
            ),
            Some(ConnState::TcpClosing)
        );
        // Closing: 5 s, and every packet resets the idle time.
        assert_eq!(
            ct.lookup(&k, Direction::Egress, tcp_flags::ACK, 7 * S, &t),
            Some(ConnState::TcpClosing)
        );
        assert_eq!(
            ct.lookup(&k, Direction::Egress, tcp_flags::ACK, 13 * S, &t),
            None
        );
        assert_eq!(ct.len(), 0);
    }

    #[test]
    fn idle_exactly_at_timeout_is_still_live() {
        let t = ConntrackTimeouts::default();
        let mut ct = ConnTable::new();
        let k = key(17);
        ct.insert(k, Direction::Egress, 0, 0, 0, &t);
        // "expires when its idle time exceeds the timeout": 30 s is not more than 30 s.
        assert!(ct.lookup(&k, Direction::Ingress, 0, 30 * S, &t).is_some());
        assert!(ct
            .lookup(&k, Direction::Ingress, 0, 60 * S + 1, &t)
            .is_none());
    }

    #[test]
    fn udp_becomes_stream_after_two_each_way() {
        let t = ConntrackTimeouts::default();
        let mut ct = ConnTable::new();
        let k = key(17);
        ct.insert(k, Direction::Egress, 0, 0, 0, &t);
        assert_eq!(
            ct.lookup(&k, Direction::Ingress, 0, S, &t),
            Some(ConnState::Udp)
        );
        assert_eq!(
            ct.lookup(&k, Direction::Egress, 0, 2 * S, &t),
            Some(ConnState::Udp)
        );
        assert_eq!(
            ct.lookup(&k, Direction::Ingress, 0, 3 * S, &t),
            Some(ConnState::UdpStream)
        );
        // A stream lives 180 s idle.
        assert!(ct.lookup(&k, Direction::Ingress, 0, 150 * S, &t).is_some());
    }

    #[test]
    fn rst_closes_at_once() {
        let t = ConntrackTimeouts::default();
        let mut ct = ConnTable::new();
        let k = key(6);
        ct.insert(k, Direction::Ingress, tcp_flags::SYN, 0, 0, &t);
        assert_eq!(
            ct.lookup(&k, Direction::Egress, tcp_flags::RST, S, &t),
            Some(ConnState::TcpClosing)
        );
    }

    #[test]
    fn a_reference_goes_stale_when_the_table_changes_shape() {
        let t = ConntrackTimeouts::default();
        let mut ct = ConnTable::new();
        let k = key(17);
        let r = ct.insert(k, Direction::Egress, 0, 0, 0, &t);
        assert_eq!(ct.find(&k), Some(r));
        ct.entry_mut(r).unwrap().flow_log[0] = 5;
        assert_eq!(ct.get(&k).unwrap().flow_log[0], 5);
        // Growing the table moves no entry: references taken before still reach it.
        for p in 1..1000u16 {
            let mut other = key(6);
            other.local_port = p;
            ct.insert(other, Direction::Egress, 0, 0, 0, &t);
        }
        assert_eq!(ct.find(&k), Some(r));
        assert_eq!(ct.entry(r).unwrap().flow_log[0], 5);
        // Removing any entry stales every reference.
        let mut gone = key(6);
        gone.local_port = 1;
        let g = ct.find(&gone).unwrap();
        assert!(ct.lookup_at(g, Direction::Egress, 0, 200 * S, &t).is_none());
        assert!(ct.entry(r).is_none());
        assert!(ct.lookup_at(r, Direction::Ingress, 0, S, &t).is_none());
        let r = ct.find(&k).unwrap();
        assert_eq!(ct.entry(r).unwrap().flow_log[0], 5);
        assert_eq!(
            ct.lookup_at(r, Direction::Ingress, 0, S, &t),
            Some(ConnState::Udp)
        );
        // Expiry through a reference removes the entry and stales every reference.
        assert!(ct
            .lookup_at(r, Direction::Ingress, 0, 100 * S, &t)
            .is_none());
        assert!(ct.find(&k).is_none());
        assert!(ct.entry(r).is_none());
        assert_eq!(ct.len(), 998);
        // Freed places are used again, and what is found there is the new entry.
        let mut again = key(17);
        again.local_port = 7;
        let r = ct.insert(again, Direction::Egress, 0, 0, 0, &t);
        assert_eq!(ct.find(&again), Some(r));
        assert_eq!(ct.get(&again).unwrap().flow_log, [u32::MAX; 2]);
        assert!(ct.find(&k).is_none());
        assert_eq!(ct.len(), 999);
    }

    #[test]
    fn a_place_takes_80_bytes() {
        // The per-connection memory the README's arithmetic counts on.
        assert_eq!(std::mem::size_of::<ConnEntry>(), 36);
        assert_eq!(std::mem::size_of::<Place>(), 80);
        assert_eq!(std::mem::size_of::<Place4>(), 56);
    }

    #[test]
    fn ipv4_and_ipv6_connections_live_side_by_side() {
        // IPv4 connections and the others are kept in places of two sizes: each key
        // finds its own entry, and removing one leaves the other.
        let t = ConntrackTimeouts::default();
        let mut ct = ConnTable::new();
        let v4 = key(17);
        let mut v6 = v4;
        v6.local = "2600:1f18::5".parse().unwrap();
        v6.remote = "2001:db8::9".parse().unwrap();
        let mut mixed = v4;
        mixed.remote = "2001:db8::9".parse().unwrap();
        ct.insert(v4, Direction::Egress, 0, 1, 0, &t);
        ct.insert(v6, Direction::Ingress, 0, 2, 5 * S, &t);
        ct.insert(mixed, Direction::Egress, 0, 3, 10 * S, &t);
        assert_eq!(ct.len(), 3);
        assert_eq!(ct.get(&v4).unwrap().group, 1);
        assert_eq!(ct.get(&v6).unwrap().group, 2);
        assert_eq!(ct.get(&mixed).unwrap().group, 3);
        // At 32 s only the IPv4 one (last seen at 0) has been idle over 30 s.
        ct.sweep(32 * S, 0, true, &|_| t);
        assert!(ct.get(&v4).is_none());
        assert_eq!(ct.get(&v6).unwrap().origin, Direction::Ingress);
        assert_eq!(ct.len(), 2);
        assert!(ct.lookup(&v6, Direction::Egress, 0, 33 * S, &t).is_some());
        ct.regroup(&|_| Some(9));
        assert_eq!(ct.group_len(9), 2);
        assert_eq!(ct.group_len(2), 0);
    }

    #[test]
    fn regroup_clears_the_nacl_cache() {
        let t = ConntrackTimeouts::default();
        let mut ct = ConnTable::new();
        let k = key(6);
        let r = ct.insert(k, Direction::Egress, tcp_flags::SYN, 0, 0, &t);
        ct.entry_mut(r).unwrap().nacl_allow = [3, 4];
        ct.regroup(&|_| Some(2));
        assert_eq!({ ct.get(&k).unwrap().nacl_allow }, [0, 0]);
        assert_eq!(ct.group_len(2), 1);
    }

    #[test]
    fn sweep_frees_expired_and_group_counts() {
        let t = ConntrackTimeouts::default();
        let mut ct = ConnTable::new();
        for p in 0..10u16 {
            let mut k = key(1);
            k.local_port = p;
            ct.insert(k, Direction::Egress, 0, 7, 0, &t);
        }
        assert_eq!(ct.group_len(7), 10);
        ct.sweep(31 * S, 10, false, &|_| t);
        assert_eq!(ct.len(), 0);
        assert_eq!(ct.group_len(7), 0);
    }
}
