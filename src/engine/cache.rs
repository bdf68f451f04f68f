//! The classifier's answers, remembered per flow (issue 14, item 3).
//!
//! A rejected flow, an untracked one, or an ICMP message that tracking never follows
//! leaves no connection entry, so without this memory the classifier would run for
//! every one of its packets. Its answers are pure functions of the ruleset and of
//! fields every packet of the flow shares, at one ENI in one direction:
//!
//! - the security group's first allowing rule ([`Policy::sg_match`]) and the subnet's
//!   NACL decision ([`Policy::nacl_decide`]) read the protocol, the remote address
//!   (the peer), the destination port, the ICMP type and code, and whether the ports
//!   are known (not for a non-first fragment, which this memory never serves);
//! - the untracked condition (`untracked` in the engine) reads both ports, the
//!   address family and, for TCP, whether SYN and ACK are set: three classes of
//!   packet, remembered apart.
//!
//! So the key is (ENI, direction, protocol, remote address, both ports, ICMP type
//! and code): the local address is not in it (no rule reads it). The memory answers
//! only what the classifier would answer; the engine still counts every packet's
//! rule hits (rule coverage stays exact), looks for a tracked connection first, and
//! applies limits, so no verdict, flow log or summary changes.
//!
//! Bounded: [`DECISION_CACHE_SLOTS`] slots per engine; a new key takes its slot
//! over (counted in [`DecisionCache::flushes`]). A new ruleset empties it too ([`DecisionCache::clear`]):
//! the answers name rules of one policy generation.
#![deny(clippy::disallowed_methods, clippy::disallowed_types)]

use crate::model::{Direction, EniIdx, PROTO_TCP};
use crate::policy::{NaclDecision, Policy, SgRuleRef};
use crate::wire::packet::{tcp_flags, Packet};
use std::net::IpAddr;

/// Slots of the memory: a key's slot is fixed by its hash, and a new key takes the
/// slot over (direct-mapped, so a probe is one cache line or two, and the memory of
/// one engine is about 64 KiB, in L2).
pub const DECISION_CACHE_SLOTS: usize = 1 << 10;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
struct Key {
    remote: u128,
    eni: u32,
    src_port: u16,
    dst_port: u16,
    protocol: u8,
    /// Bit 0: egress; bit 1: IPv6.
    dir_family: u8,
    icmp_type: u8,
    icmp_code: u8,
}

/// What is known of one key; `None`: not asked yet.
#[derive(Clone, Copy, Debug, Default)]
struct Memo {
    nacl: Option<NaclDecision>,
    sg: Option<Option<SgRuleRef>>,
    /// Per class of packet ([`flag_class`]).
    untracked: [Option<bool>; 3],
}

/// The classifier's answers per flow key (see the module documentation).
#[derive(Debug, Default)]
pub struct DecisionCache {
    slots: Vec<Option<(Key, Memo)>>,
    /// The key of the side (one ENI, one direction) being judged, and what is known
    /// of it: looked up once per side, written back by [`DecisionCache::end_side`].
    cur: Option<Current>,
    /// Answers served from memory, and answers computed.
    pub hits: u64,
    pub misses: u64,
    /// Times a key took over another key's slot.
    pub flushes: u64,
}

#[derive(Debug)]
struct Current {
    key: Key,
    memo: Memo,
    /// Found in the map (else new), and changed since.
    known: bool,
    dirty: bool,
}

#[inline]
fn key(eni: EniIdx, dir: Direction, pkt: &Packet) -> Key {
    let (remote, v6) = match if dir == Direction::Egress {
        pkt.dst
    } else {
        pkt.src
    } {
        IpAddr::V4(a) => (u128::from(u32::from(a)), 0),
        IpAddr::V6(a) => (u128::from(a), 2),
    };
    Key {
        remote,
        eni: eni.get() as u32,
        src_port: pkt.src_port,
        dst_port: pkt.dst_port,
        protocol: pkt.protocol,
        dir_family: (dir == Direction::Egress) as u8 | v6,
        icmp_type: pkt.icmp_type,
        icmp_code: pkt.icmp_code,
    }
}

/// The class of `pkt` for the untracked condition: 0 a TCP SYN without ACK (may only
/// open), 1 a TCP SYN-ACK (may only reply), 2 anything else (either).
#[inline]
fn flag_class(pkt: &Packet) -> usize {
    if pkt.protocol != PROTO_TCP || pkt.tcp_flags & tcp_flags::SYN == 0 {
        2
    } else if pkt.tcp_flags & tcp_flags::ACK == 0 {
        0
    } else {
        1
    }
}

impl DecisionCache {
    pub fn new() -> DecisionCache {
        DecisionCache::default()
    }

    /// Forgets every answer (a new ruleset).
    pub fn clear(&mut self) {
        self.slots.iter_mut().for_each(|s| *s = None);
        self.cur = None;
    }

    #[inline]
    fn slot(k: &Key) -> usize {
        let h = (k.remote as u64 ^ (k.remote >> 64) as u64).wrapping_add(u64::from(k.eni) << 48)
            ^ (u64::from(k.src_port) << 16 | u64::from(k.dst_port)) << 8
            ^ u64::from(k.protocol) << 40
            ^ u64::from(k.dir_family) << 56
            ^ u64::from(k.icmp_type) << 24
            ^ u64::from(k.icmp_code);
        (h.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 54) as usize
    }

    /// The memo of `pkt`'s key for the side being judged, looked up in the map the
    /// first time the side asks.
    #[inline]
    fn memo(&mut self, eni: EniIdx, dir: Direction, pkt: &Packet) -> &mut Current {
        let k = key(eni, dir, pkt);
        if self.cur.as_ref().is_none_or(|c| c.key != k) {
            if self.slots.is_empty() {
                self.slots = vec![None; DECISION_CACHE_SLOTS];
            }
            let found = match self.slots[Self::slot(&k)] {
                Some((key, memo)) if key == k => Some(memo),
                _ => None,
            };
            self.cur = Some(Current {
                key: k,
                memo: found.unwrap_or_default(),
                known: found.is_some(),
                dirty: false,
            });
        }
        self.cur.as_mut().expect("set above")
    }

    /// Ends the side being judged: what it learnt is remembered when `remember`
    /// (the side neither used nor made a tracked connection: its next packet will ask
    /// the classifier again) or when its key was already remembered. A side that made
    /// a connection is not remembered: its entry answers for its next packets.
    #[inline]
    pub fn end_side(&mut self, remember: bool) {
        let Some(c) = self.cur.take() else { return };
        if !c.dirty || !(remember || c.known) {
            return;
        }
        let slot = &mut self.slots[Self::slot(&c.key)];
        if slot.is_some_and(|(k, _)| k != c.key) {
            self.flushes += 1;
        }
        *slot = Some((c.key, c.memo));
    }

    /// [`Policy::nacl_decide`] for `pkt` at `eni`'s subnet in `dir`.
    #[inline]
    pub fn nacl(
        &mut self,
        policy: &Policy,
        eni: EniIdx,
        dir: Direction,
        pkt: &Packet,
    ) -> NaclDecision {
        let subnet = policy.eni_subnet[eni.get()];
        if !pkt.ports_known() {
            return policy.nacl_decide(subnet, dir, pkt);
        }
        let c = self.memo(eni, dir, pkt);
        if let Some(d) = c.memo.nacl {
            self.hits += 1;
            return d;
        }
        let d = policy.nacl_decide(subnet, dir, pkt);
        c.memo.nacl = Some(d);
        c.dirty = true;
        self.misses += 1;
        d
    }

    /// [`Policy::sg_match`] for `pkt` at `eni` in `dir` (the remote is the packet's
    /// destination on egress, its source on ingress).
    #[inline]
    pub fn sg(
        &mut self,
        policy: &Policy,
        eni: EniIdx,
        dir: Direction,
        pkt: &Packet,
    ) -> Option<SgRuleRef> {
        let remote = match dir {
            Direction::Ingress => pkt.src,
            Direction::Egress => pkt.dst,
        };
        if !pkt.ports_known() {
            return policy.sg_match(eni, dir, remote, pkt);
        }
        let c = self.memo(eni, dir, pkt);
        if let Some(r) = c.memo.sg {
            self.hits += 1;
            return r;
        }
        let r = policy.sg_match(eni, dir, remote, pkt);
        c.memo.sg = Some(r);
        c.dirty = true;
        self.misses += 1;
        r
    }

    /// `f(policy, eni, dir, pkt)`, the untracked condition, remembered per class of
    /// TCP flags ([`flag_class`]).
    #[inline]
    pub fn untracked(
        &mut self,
        policy: &Policy,
        eni: EniIdx,
        dir: Direction,
        pkt: &Packet,
        f: fn(&Policy, EniIdx, Direction, &Packet) -> bool,
    ) -> bool {
        if !pkt.ports_known() {
            return f(policy, eni, dir, pkt);
        }
        let class = flag_class(pkt);
        let c = self.memo(eni, dir, pkt);
        if let Some(u) = c.memo.untracked[class] {
            self.hits += 1;
            return u;
        }
        let u = f(policy, eni, dir, pkt);
        c.memo.untracked[class] = Some(u);
        c.dirty = true;
        self.misses += 1;
        u
    }
}
