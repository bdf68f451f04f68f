//! `vpcgate synth`: large, realistic captures for benchmarks, written fast and the
//! same bytes for the same settings.
//!
//! What it is for: feeding `vpcgate replay` (and other tools) millions of packets
//! that look like a VPC's traffic and that the ruleset really evaluates. What it does
//! not do: model TCP congestion, retransmissions of lost data, or application
//! payloads (every payload byte is zero). [`crate::synth`] builds small hand-written
//! conversations; this module builds volume.
//!
//! # What a capture holds
//!
//! A classic pcap file (nanosecond timestamps, Ethernet link type), timestamps never
//! decreasing, spread evenly over the capture's duration. Every IPv4 header checksum
//! and every TCP, UDP, ICMP and ICMPv6 checksum is correct.
//!
//! The traffic is a pool of concurrently open flows (`flows`). Each step picks a flow
//! and writes its next packet; a flow that ends is replaced by a new one, so the
//! capture holds at least `flows` flows, more when `packets` is larger than they
//! send (with the defaults, 2 million packets and 100 000 flows open, about 150 000
//! flows, most of them still open at the end: so many open flows share the packets
//! thinly, and a flow's exchanges are far apart). Packets that answer
//! each other closely (a SYN, its SYN-ACK and the ACK; a request and its response
//! segments; a DNS query and its answer; an echo request and its reply) come within
//! a few dozen packets of each other, interleaved with other flows' exchanges; the
//! next exchange of a flow comes after an idle time. The flows:
//!
//! - **TCP, about 70 %**: the three-way handshake (the SYN and SYN-ACK carry MSS,
//!   window-scale and SACK options), then 1 to 3 request/response exchanges (a request
//!   of 1–2 segments, a response of 1–8; 2 to 30 data segments in all, frames of 64
//!   to 1514 bytes, a quarter of the response segments full-sized, the rest mostly
//!   small), the receiver acknowledging every second segment; closed by FIN/ACK from
//!   either side (90 %) or an RST (10 %). Sequence and acknowledgment numbers add up.
//!   Records average about 400 bytes.
//! - **UDP, about 20 %**: DNS-like: 1 or 2 queries (UDP payloads of 18–78 bytes, to
//!   port 53, or to the UDP port a rule names) each answered (58–458 bytes); to the
//!   Amazon resolver (exempt from filtering), to an internet resolver, or from the
//!   internet to an ENI.
//! - **ICMP echo, about 10 %**: 1 to 4 requests, each answered; ICMPv6 for IPv6.
//! - **IPv6**: about `ipv6_share` of the flows, where the ENIs have IPv6 addresses
//!   (none otherwise: no IPv6 flow is made up without them; the summary says so).
//!
//! A kind the ruleset never lets through (SecureCart answers no ping) shows up only
//! among the rejected flows, and the other kinds take its share of the rest; the
//! summary's notes say so.
//!
//! # Addresses and verdicts
//!
//! The addresses are those of the ruleset's network interfaces (without `--rules`,
//! the SecureCart VPC of `rulesets/securecart.toml`, built in). New flows are drawn
//! from the ruleset itself, so the traffic is what the rules expect, plus noise:
//!
//! - a flow a security-group rule (or a network-ACL rule naming a CIDR) describes:
//!   its peer is an ENI of the referenced group, an address of the CIDR or prefix
//!   list, or a random public address for `0.0.0.0/0` and `::/0`;
//! - background: internet hosts to ENIs' public addresses (service and scanned ports,
//!   pings), ENIs to internet servers (HTTPS, HTTP, SSH, DNS, pings), ENIs to ENIs.
//!
//! Traffic from the internet goes to an ENI's public IPv4 address (what the internet
//! gateway translates) or its IPv6 address; traffic an ENI opens leaves from its
//! private address. Internet hosts are random public addresses. Each new flow's
//! first packet, and its first reply, go through an [`Engine`] on the ruleset; that
//! decides what the capture holds:
//!
//! - **rejected** (the first packet is rejected): only the opener's packets, as a
//!   real capture shows them: a SYN sent 1–3 times, a query sent 1–3 times, 1–4
//!   unanswered pings;
//! - **reply dropped** (the first packet passes, its reply is rejected, as a
//!   stateless network ACL does to replies it has no rule for): TCP shows the SYN and
//!   the SYN-ACK, 1–3 times, and no more; UDP and ICMP their requests and replies;
//! - **passed** (accepted or not evaluated): the whole conversation.
//!
//! `reject_share` is the share of **flows** rejected at their first packet, held
//! exactly (within one flow) over the flows the capture holds. Packets are another
//! matter: rejected flows are short, so their share of packets is smaller, and dropped
//! replies add rejected packets to flows that were not rejected.
//!
//! # Speed
//!
//! No allocation per packet: each packet's headers are written from its flow's state
//! into one reused 1 MiB buffer whose payload bytes are already zero, and checksums
//! are computed over headers only (zeros add nothing to a ones'-complement sum).
//! The random choices of the next 64 steps are drawn at once and the flows they may
//! pick are loaded together, so that their cache misses overlap. A new flow costs
//! one or two runs through the engine (for its first packet and its first reply).
//!
//! ```
//! use vpcgate::synth::bulk::{builtin_vpc, generate, SynthConfig};
//! let cfg = SynthConfig { packets: 1_000, flows: 50, ..SynthConfig::default() };
//! let mut pcap = Vec::new();
//! let summary = generate(builtin_vpc(), &cfg, &mut pcap).unwrap();
//! assert_eq!(summary.packets, 1_000);
//! assert_eq!(summary.bytes, pcap.len() as u64);
//! // The same settings give the same bytes.
//! let mut again = Vec::new();
//! generate(builtin_vpc(), &cfg, &mut again).unwrap();
//! assert!(pcap == again);
//! ```
#![deny(clippy::disallowed_methods, clippy::disallowed_types)]

use crate::engine::{Engine, Verdict};
use crate::model::{
    PortSpec, Protocol, SecurityGroupRule, SgPeer, Vpc, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP,
    PROTO_UDP,
};
use crate::policy::Policy;
use crate::synth::SplitMix64;
use crate::wire::checksum::{finish, sum};
use crate::wire::packet::{tcp_flags, Fragment, Packet, Timestamp};
use ipnet::IpNet;
use std::collections::HashMap;
use std::fmt;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// The ruleset whose addresses are used when none is given.
pub const BUILTIN_RULESET: &str = "rulesets/securecart.toml";
const BUILTIN_TEXT: &str = include_str!("../../rulesets/securecart.toml");

/// The most flows that may be open at once.
pub const MAX_FLOWS: usize = 10_000_000;

/// The built-in VPC: SecureCart, as `rulesets/securecart.toml` describes it.
pub fn builtin_vpc() -> Vpc {
    crate::load::load_str("securecart.toml", BUILTIN_TEXT)
        .expect("the bundled SecureCart ruleset loads")
}

/// What to generate. [`Default`] gives the CLI's defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthConfig {
    /// Packets to write.
    pub packets: u64,
    /// Flows open at once.
    pub flows: usize,
    /// The seed of every random choice.
    pub seed: u64,
    /// The share of flows (0..=1) whose first packet the ruleset rejects.
    pub reject_share: f64,
    /// The share of flows (0..=1) over IPv6, where the ENIs allow it.
    pub ipv6_share: f64,
    /// Capture time of the first packet, Unix seconds.
    pub start: u64,
    /// Seconds of capture time the packets are spread over.
    pub duration: f64,
    /// Bytes of each frame written; longer frames are cut (their original length is
    /// kept in the record).
    pub snaplen: u32,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            packets: 2_000_000,
            flows: 100_000,
            seed: 1,
            reject_share: 0.05,
            ipv6_share: 0.1,
            start: 1_700_000_000,
            duration: 600.0,
            snaplen: 65_535,
        }
    }
}

impl SynthConfig {
    /// Checks the numbers; the message names the setting as the CLI flag does.
    pub fn validate(&self) -> Result<(), String> {
        if self.flows == 0 || self.flows > MAX_FLOWS {
            return Err(format!(
                "--flows {}: give 1 to {MAX_FLOWS} flows open at once",
                self.flows
            ));
        }
        for (name, v) in [
            ("--reject-share", self.reject_share),
            ("--ipv6-share", self.ipv6_share),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!(
                    "{name} {v}: a share is a number from 0 to 1 (0.05 is 5 %)"
                ));
            }
        }
        if !self.duration.is_finite() || self.duration < 0.0 {
            return Err(format!(
                "--duration {}: give seconds, 0 or more",
                self.duration
            ));
        }
        if self.start as f64 + self.duration >= u32::MAX as f64 {
            return Err(format!(
                "--start {} --duration {}: a classic pcap holds times up to {} (year 2106)",
                self.start,
                self.duration,
                u32::MAX
            ));
        }
        if self.snaplen == 0 || self.snaplen > 262_144 {
            return Err(format!(
                "--snaplen {}: give 1 to 262144 bytes",
                self.snaplen
            ));
        }
        Ok(())
    }
}

/// What was written.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SynthSummary {
    pub packets: u64,
    /// Bytes of the pcap file, headers included.
    pub bytes: u64,
    /// Flows in the capture (each has at least one packet in it).
    pub flows: u64,
    /// Flows whose first packet the ruleset rejects.
    pub rejected_flows: u64,
    /// Flows whose first packet passes and whose first reply is rejected.
    pub reply_dropped_flows: u64,
    pub tcp_flows: u64,
    pub udp_flows: u64,
    pub icmp_flows: u64,
    pub ipv6_flows: u64,
    /// Capture times of the first and the last packet.
    pub first: Timestamp,
    pub last: Timestamp,
    /// Things the settings asked for that the ruleset did not allow, for people.
    pub notes: Vec<String>,
}

/// Why nothing (or not everything) was written.
#[derive(Debug)]
pub enum SynthError {
    /// A setting out of range; the text names the flag.
    Config(String),
    /// The VPC has no network interface to send or receive traffic.
    NoInterfaces,
    /// Writing the capture failed.
    Io(io::Error),
}

impl fmt::Display for SynthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SynthError::Config(m) => f.write_str(m),
            SynthError::NoInterfaces => f.write_str(
                "the ruleset has no network interfaces: synth sends traffic from and to ENIs, \
                 so the VPC needs at least one",
            ),
            SynthError::Io(e) => write!(f, "writing the capture: {e}"),
        }
    }
}

impl std::error::Error for SynthError {}

impl From<io::Error> for SynthError {
    fn from(e: io::Error) -> Self {
        SynthError::Io(e)
    }
}

/// Writes the capture `cfg` describes, for the ENIs of `vpc` (a validated VPC, as
/// [`crate::load`] returns it), to `out`. Nothing is written when the settings are
/// wrong or the VPC has no ENI.
pub fn generate<W: Write>(vpc: Vpc, cfg: &SynthConfig, out: W) -> Result<SynthSummary, SynthError> {
    cfg.validate().map_err(SynthError::Config)?;
    if vpc.network_interfaces.is_empty() {
        return Err(SynthError::NoInterfaces);
    }
    let mut rng = SplitMix64(cfg.seed ^ 0x5157_ae6e_0000_0000);
    let mut planner = Planner::new(vpc, &mut rng);
    let mut out = Out::new(out, cfg.snaplen);
    out.header(cfg.snaplen)?;

    let n_flows = cfg.flows;
    let mut pool = vec![Flow::UNBORN; n_flows];
    let mut hot = HotSet {
        ids: [0u32; HOT],
        len: 0,
    };
    let mut ts = cfg.start * NS;
    // Uniform steps in [0, 2 * mean) between packets: the packets span `duration`
    // on average.
    let two_mean =
        ((cfg.duration * 1e9) as u128 * 2 / cfg.packets.saturating_sub(1).max(1) as u128) as u64;
    let mut s = SynthSummary {
        first: Timestamp(ts),
        last: Timestamp(ts),
        ..SynthSummary::default()
    };
    // Error diffusion: |rejected − share × flows| stays below one flow.
    let mut deficit = 0.0f64;
    let mut sched = Schedule {
        rng: SplitMix64(cfg.seed ^ 0x0c01_d5c4_ed00_0000),
        ahead: [0u64; LOOKAHEAD],
        next: LOOKAHEAD,
        n_flows,
    };
    for _ in 0..cfg.packets {
        let r = sched.next(&pool);
        let k = (r as usize) & (HOT - 1);
        let (idx, pos) = if k < hot.len {
            (hot.ids[k] as usize, Some(k))
        } else {
            (sched.cold(r), None)
        };
        let f = &mut pool[idx];
        if f.state == State::Unborn {
            deficit += cfg.reject_share;
            *f = birth(
                &mut planner,
                &mut rng,
                cfg,
                &mut deficit,
                Timestamp(ts),
                &mut s,
            );
        }
        out.make_room()?;
        let next = step(f, &mut rng, &mut out, ts);
        match next {
            Next::Hot => {
                if !f.hot {
                    // A cold pick happens only while the hot set has room.
                    f.hot = true;
                    hot.insert(idx);
                }
            }
            Next::Idle | Next::Done => {
                if f.hot {
                    f.hot = false;
                    hot.remove(idx, pos);
                }
                if next == Next::Done {
                    f.state = State::Unborn;
                }
            }
        }
        s.packets += 1;
        s.last = Timestamp(ts);
        // The next packet comes a random step later.
        ts += ((((r >> 5) & ((1 << 27) - 1)) as u128 * two_mean as u128) >> 27) as u64;
    }
    s.bytes = out.finish()?;
    add_notes(&planner, cfg, &mut s);
    Ok(s)
}

/// The flows with a packet due soon (a step returned [`Next::Hot`]): picked first.
struct HotSet {
    ids: [u32; HOT],
    len: usize,
}

impl HotSet {
    #[inline]
    fn insert(&mut self, idx: usize) {
        self.ids[self.len] = idx as u32;
        self.len += 1;
    }

    /// Removes flow `idx`, at `pos` when it was picked from the set.
    #[inline]
    fn remove(&mut self, idx: usize, pos: Option<usize>) {
        let at = match pos {
            Some(p) => p,
            None => self.ids[..self.len]
                .iter()
                .position(|&h| h as usize == idx)
                .expect("a hot flow is in the hot set"),
        };
        self.len -= 1;
        self.ids[at] = self.ids[self.len];
    }
}

/// The steps' choices come from their own generator, drawn LOOKAHEAD at a time: the
/// flows those steps' cold picks would take are loaded together, so that their cache
/// misses overlap instead of stalling one step each.
struct Schedule {
    rng: SplitMix64,
    ahead: [u64; LOOKAHEAD],
    next: usize,
    n_flows: usize,
}

impl Schedule {
    /// The flow a cold pick with draw `r` takes.
    #[inline]
    fn cold(&self, r: u64) -> usize {
        (((r >> 32) * self.n_flows as u64) >> 32) as usize
    }

    /// The next draw; every LOOKAHEAD draws, the flows of the next ones are touched.
    #[inline]
    fn next(&mut self, pool: &[Flow]) -> u64 {
        if self.next == LOOKAHEAD {
            let mut touch = 0u8;
            for r in &mut self.ahead {
                *r = self.rng.next_u64();
            }
            for r in &self.ahead {
                let f = &pool[self.cold(*r)];
                touch ^= f.a[0] ^ f.state as u8;
            }
            std::hint::black_box(touch);
            self.next = 0;
        }
        let r = self.ahead[self.next];
        self.next += 1;
        r
    }
}

/// A new flow at `ts`: its kind (TCP 70 %, UDP 20 %, ICMP 10 %), family and verdict
/// (rejected when `deficit` asks for it), counted in `s`.
#[inline]
fn birth(
    planner: &mut Planner,
    rng: &mut SplitMix64,
    cfg: &SynthConfig,
    deficit: &mut f64,
    ts: Timestamp,
    s: &mut SynthSummary,
) -> Flow {
    let want_reject = *deficit >= 1.0 || (*deficit > 0.0 && unit(rng) < *deficit);
    let roll = below(rng, 100);
    let kind = if roll < 70 {
        Kind::Tcp
    } else if roll < 90 {
        Kind::Udp
    } else {
        Kind::Icmp
    };
    let v6 = unit(rng) < cfg.ipv6_share;
    let c = planner.plan(rng, kind, v6, want_reject, ts);
    let flow = planner.flow(&c, rng);
    s.flows += 1;
    match c.fate {
        Fate::Rejected => {
            s.rejected_flows += 1;
            *deficit -= 1.0;
        }
        Fate::ReplyDropped => s.reply_dropped_flows += 1,
        Fate::Pass => {}
    }
    match c.kind {
        Kind::Tcp => s.tcp_flows += 1,
        Kind::Udp => s.udp_flows += 1,
        Kind::Icmp => s.icmp_flows += 1,
    }
    s.ipv6_flows += c.a.is_ipv6() as u64;
    flow
}

/// What the summary says the capture lacks, and why.
fn add_notes(planner: &Planner, cfg: &SynthConfig, s: &mut SynthSummary) {
    if s.ipv6_flows == 0 && cfg.ipv6_share > 0.0 && planner.v6_enis.is_empty() {
        s.notes.push(
            "no IPv6 traffic: no network interface of the ruleset has an IPv6 address".into(),
        );
    }
    for (k, name) in ["TCP", "UDP", "ICMP echo"].iter().enumerate() {
        if planner.impossible[k][0] {
            s.notes.push(format!(
                "the ruleset let no {name} flow tried through: the {name} flows here are rejected ones"
            ));
        }
    }
    if planner.share_misses > 0 {
        s.notes.push(format!(
            "{} flow(s) could not get the verdict --reject-share asked for: the ruleset {} \
             nearly every flow tried",
            planner.share_misses,
            if s.rejected_flows as f64 > cfg.reject_share * s.flows as f64 {
                "rejects"
            } else {
                "lets through"
            }
        ));
    }
}

// ---------------------------------------------------------------------------------
// Random numbers.
// ---------------------------------------------------------------------------------

/// A number in `0..n` (`n` > 0), without division.
#[inline]
fn below(rng: &mut SplitMix64, n: u64) -> u64 {
    ((rng.next_u64() as u128 * n as u128) >> 64) as u64
}

/// A number in `lo..=hi`.
#[inline]
fn between(rng: &mut SplitMix64, lo: u64, hi: u64) -> u64 {
    lo + below(rng, hi - lo + 1)
}

/// A number in `[0, 1)`.
#[inline]
fn unit(rng: &mut SplitMix64) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

// ---------------------------------------------------------------------------------
// The output buffer.
// ---------------------------------------------------------------------------------

use crate::wire::packet::NANOS_PER_SEC as NS;
/// 1 MiB: small enough that zeroing it and the kernel's copy out of it stay in cache
/// (4 MiB measured slower), large enough that system calls cost nothing.
const BUF_SIZE: usize = 1 << 20;
/// A record header and the longest frame.
const MAX_RECORD: usize = 16 + 1514;
const PCAP_MAGIC_NANOS: u32 = 0xa1b2_3c4d;
const LINKTYPE_ETHERNET: u32 = 1;

/// One reused buffer, kept zeroed past `pos`: a packet writes its record header and
/// frame headers, and its payload is the zeros already there.
struct Out<W: Write> {
    w: W,
    buf: Vec<u8>,
    pos: usize,
    written: u64,
    snaplen: usize,
}

impl<W: Write> Out<W> {
    fn new(w: W, snaplen: u32) -> Self {
        Out {
            w,
            buf: vec![0; BUF_SIZE + MAX_RECORD],
            pos: 0,
            written: 0,
            snaplen: snaplen as usize,
        }
    }

    fn header(&mut self, snaplen: u32) -> io::Result<()> {
        let mut h = [0u8; 24];
        h[0..4].copy_from_slice(&PCAP_MAGIC_NANOS.to_le_bytes());
        h[4..6].copy_from_slice(&2u16.to_le_bytes());
        h[6..8].copy_from_slice(&4u16.to_le_bytes());
        h[16..20].copy_from_slice(&snaplen.to_le_bytes());
        h[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        self.buf[..24].copy_from_slice(&h);
        self.pos = 24;
        Ok(())
    }

    #[inline]
    fn make_room(&mut self) -> io::Result<()> {
        if self.pos + MAX_RECORD > self.buf.len() {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.w.write_all(&self.buf[..self.pos])?;
        self.buf[..self.pos].fill(0);
        self.written += self.pos as u64;
        self.pos = 0;
        Ok(())
    }

    /// Writes one record: `hdr` is the frame's headers, `frame_len` the whole frame.
    #[inline]
    fn record(&mut self, ts: u64, hdr: &[u8], frame_len: usize) {
        let cap = frame_len.min(self.snaplen);
        let p = self.pos;
        let rec = &mut self.buf[p..p + 16 + cap];
        rec[0..4].copy_from_slice(&((ts / NS) as u32).to_le_bytes());
        rec[4..8].copy_from_slice(&((ts % NS) as u32).to_le_bytes());
        rec[8..12].copy_from_slice(&(cap as u32).to_le_bytes());
        rec[12..16].copy_from_slice(&(frame_len as u32).to_le_bytes());
        let h = hdr.len().min(cap);
        rec[16..16 + h].copy_from_slice(&hdr[..h]);
        self.pos = p + 16 + cap;
    }

    fn finish(mut self) -> io::Result<u64> {
        self.flush()?;
        self.w.flush()?;
        Ok(self.written)
    }
}

// ---------------------------------------------------------------------------------
// Flows and their packets.
// ---------------------------------------------------------------------------------

/// Flows in the middle of an exchange; their next packet comes soon.
const HOT: usize = 32;
/// Steps whose random choices are drawn, and whose flows are loaded, at once.
const LOOKAHEAD: usize = 64;
/// The MAC address of the VPC router, the other end of every frame from or to a host
/// that is not an ENI.
const ROUTER_MAC: [u8; 6] = [0x0e, 0x3c, 0x41, 0x7a, 0x00, 0x01];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Tcp = 0,
    Udp = 1,
    Icmp = 2,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    /// Accepted or not evaluated, both ways.
    Pass,
    /// The first packet passes, the first reply is rejected.
    ReplyDropped,
    /// The first packet is rejected.
    Rejected,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Unborn,
    Syn,
    SynAck,
    HandshakeAck,
    Data,
    DelayedAck,
    EndAck,
    Close,
    Fin2,
    LastAck,
    SynAckDropped,
    Query,
    Answer,
    EchoRequest,
    EchoReply,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    /// The flow's next packet follows soon.
    Hot,
    /// The flow waits for its next exchange.
    Idle,
    Done,
}

/// One flow's identity and progress. `a` opened the flow, `b` answers.
#[derive(Clone, Copy, Debug)]
struct Flow {
    a: [u8; 16],
    b: [u8; 16],
    mac_a: [u8; 6],
    mac_b: [u8; 6],
    /// Ports; for ICMP, `port_a` is the echo identifier.
    port_a: u16,
    port_b: u16,
    /// The ones'-complement sum of both addresses (the same either way).
    addr_sum: u32,
    seq_a: u32,
    seq_b: u32,
    flow_label: u32,
    id_a: u16,
    id_b: u16,
    /// Query and answer sizes (UDP), the echo payload (ICMP, `size_a`).
    size_a: u16,
    size_b: u16,
    echo_seq: u16,
    v6: bool,
    ttl_a: u8,
    ttl_b: u8,
    state: State,
    fate: Fate,
    /// Exchanges (TCP, UDP, ICMP) or attempts (rejected flows) still to come.
    left: u8,
    /// Segments left in the current round, and sent in it.
    segs: u8,
    sent: u8,
    /// The current round's sender is `b`.
    dir_b: bool,
    b_closes: bool,
    rst: bool,
    hot: bool,
}

impl Flow {
    const UNBORN: Flow = Flow {
        a: [0; 16],
        b: [0; 16],
        mac_a: [0; 6],
        mac_b: [0; 6],
        port_a: 0,
        port_b: 0,
        addr_sum: 0,
        seq_a: 0,
        seq_b: 0,
        flow_label: 0,
        id_a: 0,
        id_b: 0,
        size_a: 0,
        size_b: 0,
        echo_seq: 0,
        v6: false,
        ttl_a: 0,
        ttl_b: 0,
        state: State::Unborn,
        fate: Fate::Pass,
        left: 0,
        segs: 0,
        sent: 0,
        dir_b: false,
        b_closes: false,
        rst: false,
        hot: false,
    };

    fn mss(&self) -> u64 {
        if self.v6 {
            1440
        } else {
            1460
        }
    }
}

/// Writes the Ethernet and IP headers of a packet of `f` into `h`; returns where the
/// layer-4 header starts.
#[inline]
fn put_ip(h: &mut [u8; 96], f: &mut Flow, from_b: bool, proto: u8, l4_len: usize) -> usize {
    let (smac, dmac, ttl) = if from_b {
        (f.mac_b, f.mac_a, f.ttl_b)
    } else {
        (f.mac_a, f.mac_b, f.ttl_a)
    };
    h[0..6].copy_from_slice(&dmac);
    h[6..12].copy_from_slice(&smac);
    let (s, d) = if from_b { (f.b, f.a) } else { (f.a, f.b) };
    if f.v6 {
        let label = if from_b {
            f.flow_label ^ 0x5_a5a5
        } else {
            f.flow_label
        };
        h[12] = 0x86;
        h[13] = 0xdd;
        h[14] = 0x60;
        h[15] = ((label >> 16) & 0x0f) as u8;
        h[16] = (label >> 8) as u8;
        h[17] = label as u8;
        h[18..20].copy_from_slice(&(l4_len as u16).to_be_bytes());
        h[20] = proto;
        h[21] = ttl;
        h[22..38].copy_from_slice(&s);
        h[38..54].copy_from_slice(&d);
        54
    } else {
        let id = if from_b {
            f.id_b = f.id_b.wrapping_add(1);
            f.id_b
        } else {
            f.id_a = f.id_a.wrapping_add(1);
            f.id_a
        };
        h[12] = 0x08;
        h[13] = 0x00;
        h[14] = 0x45;
        h[16..18].copy_from_slice(&((20 + l4_len) as u16).to_be_bytes());
        h[18..20].copy_from_slice(&id.to_be_bytes());
        h[20] = 0x40; // don't fragment
        h[22] = ttl;
        h[23] = proto;
        h[26..30].copy_from_slice(&s[..4]);
        h[30..34].copy_from_slice(&d[..4]);
        let c = finish(sum(&h[14..34], 0));
        h[24..26].copy_from_slice(&c.to_be_bytes());
        34
    }
}

/// SYN options: MSS, NOP + window scale 7, NOP NOP + SACK permitted.
const SYN_OPTIONS: usize = 12;

#[allow(clippy::too_many_arguments)]
#[inline]
fn put_tcp<W: Write>(
    out: &mut Out<W>,
    ts: u64,
    f: &mut Flow,
    from_b: bool,
    flags: u8,
    seq: u32,
    ack: u32,
    payload: usize,
) {
    let mut h = [0u8; 96];
    let syn = flags & tcp_flags::SYN != 0;
    let thl = if syn { 20 + SYN_OPTIONS } else { 20 };
    let l4_len = thl + payload;
    let o = put_ip(&mut h, f, from_b, PROTO_TCP, l4_len);
    let (sp, dp) = if from_b {
        (f.port_b, f.port_a)
    } else {
        (f.port_a, f.port_b)
    };
    h[o..o + 2].copy_from_slice(&sp.to_be_bytes());
    h[o + 2..o + 4].copy_from_slice(&dp.to_be_bytes());
    h[o + 4..o + 8].copy_from_slice(&seq.to_be_bytes());
    let ack = if flags & tcp_flags::ACK != 0 { ack } else { 0 };
    h[o + 8..o + 12].copy_from_slice(&ack.to_be_bytes());
    h[o + 12] = ((thl / 4) << 4) as u8;
    h[o + 13] = flags;
    let window: u16 = if syn {
        if from_b {
            65_160
        } else {
            64_240
        }
    } else {
        502
    };
    h[o + 14..o + 16].copy_from_slice(&window.to_be_bytes());
    if syn {
        let mss = f.mss() as u16;
        h[o + 20..o + 32].copy_from_slice(&[
            2,
            4,
            (mss >> 8) as u8,
            mss as u8,
            1,
            3,
            3,
            7,
            1,
            1,
            4,
            2,
        ]);
    }
    let acc = sum(
        &h[o..o + thl],
        f.addr_sum + PROTO_TCP as u32 + l4_len as u32,
    );
    h[o + 16..o + 18].copy_from_slice(&finish(acc).to_be_bytes());
    out.record(ts, &h[..o + thl], o + l4_len);
}

#[inline]
fn put_udp<W: Write>(out: &mut Out<W>, ts: u64, f: &mut Flow, from_b: bool, payload: usize) {
    let mut h = [0u8; 96];
    let l4_len = 8 + payload;
    let o = put_ip(&mut h, f, from_b, PROTO_UDP, l4_len);
    let (sp, dp) = if from_b {
        (f.port_b, f.port_a)
    } else {
        (f.port_a, f.port_b)
    };
    h[o..o + 2].copy_from_slice(&sp.to_be_bytes());
    h[o + 2..o + 4].copy_from_slice(&dp.to_be_bytes());
    h[o + 4..o + 6].copy_from_slice(&(l4_len as u16).to_be_bytes());
    let acc = sum(&h[o..o + 8], f.addr_sum + PROTO_UDP as u32 + l4_len as u32);
    let c = match finish(acc) {
        0 => 0xffff,
        c => c,
    };
    h[o + 6..o + 8].copy_from_slice(&c.to_be_bytes());
    out.record(ts, &h[..o + 8], o + l4_len);
}

#[inline]
fn put_echo<W: Write>(out: &mut Out<W>, ts: u64, f: &mut Flow, reply: bool) {
    let mut h = [0u8; 96];
    let payload = f.size_a as usize;
    let l4_len = 8 + payload;
    let (proto, ty) = match (f.v6, reply) {
        (false, false) => (PROTO_ICMP, 8),
        (false, true) => (PROTO_ICMP, 0),
        (true, false) => (PROTO_ICMPV6, 128),
        (true, true) => (PROTO_ICMPV6, 129),
    };
    let o = put_ip(&mut h, f, reply, proto, l4_len);
    h[o] = ty;
    h[o + 4..o + 6].copy_from_slice(&f.port_a.to_be_bytes());
    h[o + 6..o + 8].copy_from_slice(&f.echo_seq.to_be_bytes());
    // ICMPv6 sums a pseudo-header as well; ICMP does not.
    let base = if f.v6 {
        f.addr_sum + PROTO_ICMPV6 as u32 + l4_len as u32
    } else {
        0
    };
    let c = finish(sum(&h[o..o + 8], base));
    h[o + 2..o + 4].copy_from_slice(&c.to_be_bytes());
    out.record(ts, &h[..o + 8], o + l4_len);
}

/// A request round: the opener sends 1 or 2 segments.
fn start_request(f: &mut Flow, rng: &mut SplitMix64) {
    f.state = State::Data;
    f.dir_b = false;
    f.segs = 1 + below(rng, 2) as u8;
    f.sent = 0;
}

/// Writes the next packet of `f` at `ts`.
#[inline]
fn step<W: Write>(f: &mut Flow, rng: &mut SplitMix64, out: &mut Out<W>, ts: u64) -> Next {
    match f.state {
        State::Syn | State::SynAckDropped | State::SynAck | State::HandshakeAck => {
            handshake_step(f, rng, out, ts)
        }
        State::Data | State::DelayedAck | State::EndAck => data_step(f, rng, out, ts),
        State::Close | State::Fin2 | State::LastAck => close_step(f, out, ts),
        State::Query | State::Answer => udp_step(f, out, ts),
        State::EchoRequest | State::EchoReply => echo_step(f, out, ts),
        State::Unborn => unreachable!("a flow is born before its first packet"),
    }
}

/// One exchange fewer to go: done after the last, else idle until the next.
#[inline]
fn one_less(f: &mut Flow) -> Next {
    f.left -= 1;
    if f.left == 0 {
        Next::Done
    } else {
        Next::Idle
    }
}

/// The three-way handshake: SYN (retried when rejected), SYN-ACK (retried when the
/// reply is dropped), ACK and the first request.
#[inline]
fn handshake_step<W: Write>(f: &mut Flow, rng: &mut SplitMix64, out: &mut Out<W>, ts: u64) -> Next {
    use tcp_flags::{ACK, SYN};
    match f.state {
        State::Syn => {
            put_tcp(out, ts, f, false, SYN, f.seq_a, 0, 0);
            match f.fate {
                // No answer: the SYN is retransmitted later, or the opener gives up.
                Fate::Rejected => one_less(f),
                Fate::ReplyDropped => {
                    f.state = State::SynAckDropped;
                    Next::Hot
                }
                Fate::Pass => {
                    f.state = State::SynAck;
                    Next::Hot
                }
            }
        }
        State::SynAckDropped => {
            put_tcp(out, ts, f, true, SYN | ACK, f.seq_b, f.seq_a + 1, 0);
            f.left -= 1;
            if f.left == 0 {
                Next::Done
            } else {
                f.state = State::Syn;
                Next::Idle
            }
        }
        State::SynAck => {
            put_tcp(out, ts, f, true, SYN | ACK, f.seq_b, f.seq_a + 1, 0);
            f.seq_a = f.seq_a.wrapping_add(1);
            f.seq_b = f.seq_b.wrapping_add(1);
            f.state = State::HandshakeAck;
            Next::Hot
        }
        State::HandshakeAck => {
            put_tcp(out, ts, f, false, ACK, f.seq_a, f.seq_b, 0);
            start_request(f, rng);
            Next::Hot
        }
        _ => unreachable!("not a handshake state"),
    }
}

/// The size of the next data segment: responses a quarter full-sized, the rest mostly
/// small (10 + (mss - 10) u², u uniform: a third of the MSS on average); requests
/// 10-600 bytes.
#[inline]
fn data_payload(f: &Flow, rng: &mut SplitMix64) -> u32 {
    let mss = f.mss();
    (if f.dir_b {
        let r = rng.next_u64();
        if r & 3 == 0 {
            mss
        } else {
            let u = (r >> 32) as u32 as u64;
            10 + ((((u * u) >> 32) * (mss - 10)) >> 32)
        }
    } else {
        between(rng, 10, 600)
    }) as u32
}

/// Requests and responses: data segments, an ACK every second one, the ACK of the
/// response, then the next request or the close.
#[inline]
fn data_step<W: Write>(f: &mut Flow, rng: &mut SplitMix64, out: &mut Out<W>, ts: u64) -> Next {
    use tcp_flags::{ACK, PSH};
    match f.state {
        State::Data => {
            let from_b = f.dir_b;
            let payload = data_payload(f, rng);
            f.segs -= 1;
            f.sent += 1;
            let flags = if f.segs == 0 { PSH | ACK } else { ACK };
            if from_b {
                put_tcp(out, ts, f, true, flags, f.seq_b, f.seq_a, payload as usize);
                f.seq_b = f.seq_b.wrapping_add(payload);
            } else {
                put_tcp(out, ts, f, false, flags, f.seq_a, f.seq_b, payload as usize);
                f.seq_a = f.seq_a.wrapping_add(payload);
            }
            if f.segs == 0 {
                if from_b {
                    f.state = State::EndAck;
                } else {
                    // The response; its first segment acknowledges the request.
                    f.dir_b = true;
                    f.segs = 1 + below(rng, 8) as u8;
                    f.sent = 0;
                }
            } else if f.sent.is_multiple_of(2) {
                f.state = State::DelayedAck;
            }
            Next::Hot
        }
        State::DelayedAck => {
            // The receiver acknowledges every second segment.
            if f.dir_b {
                put_tcp(out, ts, f, false, ACK, f.seq_a, f.seq_b, 0);
            } else {
                put_tcp(out, ts, f, true, ACK, f.seq_b, f.seq_a, 0);
            }
            f.state = State::Data;
            Next::Hot
        }
        State::EndAck => {
            put_tcp(out, ts, f, false, ACK, f.seq_a, f.seq_b, 0);
            f.left -= 1;
            if f.left > 0 {
                start_request(f, rng);
            } else {
                f.state = State::Close;
            }
            Next::Idle
        }
        _ => unreachable!("not a data state"),
    }
}

/// The close: a RST, or FIN, FIN and the last ACK.
#[inline]
fn close_step<W: Write>(f: &mut Flow, out: &mut Out<W>, ts: u64) -> Next {
    use tcp_flags::{ACK, FIN, RST};
    // Sequence and acknowledgement numbers of a segment from B or from A.
    let numbers = |f: &Flow, from_b: bool| {
        if from_b {
            (f.seq_b, f.seq_a)
        } else {
            (f.seq_a, f.seq_b)
        }
    };
    match f.state {
        State::Close => {
            let by_b = f.b_closes;
            let (seq, ack) = numbers(f, by_b);
            if f.rst {
                put_tcp(out, ts, f, by_b, RST | ACK, seq, ack, 0);
                return Next::Done;
            }
            put_tcp(out, ts, f, by_b, FIN | ACK, seq, ack, 0);
            if by_b {
                f.seq_b = f.seq_b.wrapping_add(1);
            } else {
                f.seq_a = f.seq_a.wrapping_add(1);
            }
            f.state = State::Fin2;
            Next::Hot
        }
        State::Fin2 => {
            let other_b = !f.b_closes;
            let (seq, ack) = numbers(f, other_b);
            put_tcp(out, ts, f, other_b, FIN | ACK, seq, ack, 0);
            if other_b {
                f.seq_b = f.seq_b.wrapping_add(1);
            } else {
                f.seq_a = f.seq_a.wrapping_add(1);
            }
            f.state = State::LastAck;
            Next::Hot
        }
        State::LastAck => {
            let by_b = f.b_closes;
            let (seq, ack) = numbers(f, by_b);
            put_tcp(out, ts, f, by_b, ACK, seq, ack, 0);
            Next::Done
        }
        _ => unreachable!("not a closing state"),
    }
}

/// A UDP query (repeated when rejected) and its answer.
#[inline]
fn udp_step<W: Write>(f: &mut Flow, out: &mut Out<W>, ts: u64) -> Next {
    match f.state {
        State::Query => {
            put_udp(out, ts, f, false, f.size_a as usize);
            if f.fate == Fate::Rejected {
                one_less(f)
            } else {
                f.state = State::Answer;
                Next::Hot
            }
        }
        State::Answer => {
            put_udp(out, ts, f, true, f.size_b as usize);
            let next = one_less(f);
            if f.left != 0 {
                f.state = State::Query;
            }
            next
        }
        _ => unreachable!("not a UDP state"),
    }
}

/// An echo request (repeated when rejected) and its reply.
#[inline]
fn echo_step<W: Write>(f: &mut Flow, out: &mut Out<W>, ts: u64) -> Next {
    match f.state {
        State::EchoRequest => {
            put_echo(out, ts, f, false);
            if f.fate == Fate::Rejected {
                f.echo_seq = f.echo_seq.wrapping_add(1);
                one_less(f)
            } else {
                f.state = State::EchoReply;
                Next::Hot
            }
        }
        State::EchoReply => {
            put_echo(out, ts, f, true);
            f.echo_seq = f.echo_seq.wrapping_add(1);
            let next = one_less(f);
            if f.left != 0 {
                f.state = State::EchoRequest;
            }
            next
        }
        _ => unreachable!("not an echo state"),
    }
}

// ---------------------------------------------------------------------------------
// Planning new flows from the ruleset.
// ---------------------------------------------------------------------------------

/// Ports scanners try on public addresses.
const PROBE_PORTS: [u16; 12] = [22, 23, 25, 80, 443, 445, 1433, 3306, 3389, 5900, 6379, 8080];
/// Services to pick when a rule allows every port.
const COMMON_PORTS: [u16; 8] = [443, 80, 22, 8080, 8443, 5432, 3306, 6379];
const RESOLVERS_V4: [[u8; 4]; 4] = [
    [8, 8, 8, 8],
    [1, 1, 1, 1],
    [9, 9, 9, 9],
    [208, 67, 222, 222],
];
const RESOLVERS_V6: [u128; 2] = [
    0x2001_4860_4860_0000_0000_0000_0000_8888,
    0x2606_4700_4700_0000_0000_0000_0000_1111,
];
/// Candidates tried for one wanted verdict before trying another protocol.
const TRIES: usize = 32;
/// Candidates kept for later when they came out with the verdict not wanted.
const STASH: usize = 64;
/// After this many fruitless tries, a (protocol, verdict) pair is given up.
const GIVE_UP: u64 = 2048;
/// The scratch engine is replaced after this many classifications: its tables stay
/// small (in cache), and its state cannot pile up.
const ENGINE_RENEW: u64 = 1 << 12;

/// Where a candidate flow comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    /// A flow a rule of the ruleset describes.
    Rule,
    /// From the internet to an ENI's public address.
    Probe,
    /// From an ENI to the internet.
    Outbound,
    /// Between two ENIs.
    Internal,
    /// A DNS query to the Amazon resolver.
    DnsVpc,
    /// A DNS query to a resolver on the internet.
    DnsInternet,
}

/// The sources of new flows and their weights, by kind (TCP, UDP, ICMP).
const SOURCES: [[(Source, f64); 4]; 3] = [
    [
        (Source::Rule, 60.0),
        (Source::Probe, 16.0),
        (Source::Outbound, 14.0),
        (Source::Internal, 10.0),
    ],
    [
        (Source::DnsVpc, 40.0),
        (Source::DnsInternet, 30.0),
        (Source::Rule, 15.0),
        (Source::Probe, 15.0),
    ],
    [
        (Source::Rule, 40.0),
        (Source::Probe, 20.0),
        (Source::Outbound, 20.0),
        (Source::Internal, 20.0),
    ],
];

/// Who sends a flow's packets: an ENI (by model index), a host on the internet, or a
/// service of the VPC (the Amazon resolver).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Eni(u32),
    Internet,
    Service,
}

/// A flow to be: who, where, and what the ruleset does with it.
#[derive(Clone, Copy, Debug)]
struct Cand {
    kind: Kind,
    a: IpAddr,
    b: IpAddr,
    port_a: u16,
    port_b: u16,
    side_a: Side,
    side_b: Side,
    fate: Fate,
}

impl Cand {
    fn packet(&self, reply: bool) -> Packet {
        let v6 = self.a.is_ipv6();
        let (src, dst, sp, dp) = if reply {
            (self.b, self.a, self.port_b, self.port_a)
        } else {
            (self.a, self.b, self.port_a, self.port_b)
        };
        let (protocol, src_port, dst_port, icmp_type, icmp_id, flags) = match self.kind {
            Kind::Tcp => (
                PROTO_TCP,
                sp,
                dp,
                0,
                0,
                if reply {
                    tcp_flags::SYN | tcp_flags::ACK
                } else {
                    tcp_flags::SYN
                },
            ),
            Kind::Udp => (PROTO_UDP, sp, dp, 0, 0, 0),
            Kind::Icmp => {
                let ty = match (v6, reply) {
                    (false, false) => 8,
                    (false, true) => 0,
                    (true, false) => 128,
                    (true, true) => 129,
                };
                let p = if v6 { PROTO_ICMPV6 } else { PROTO_ICMP };
                (p, 0, 0, ty, self.port_a, 0)
            }
        };
        Packet {
            src,
            dst,
            protocol,
            src_port,
            dst_port,
            icmp_type,
            icmp_code: 0,
            icmp_id,
            tcp_flags: flags,
            ip_len: if v6 { 80 } else { 60 },
            fragment: Fragment::None,
        }
    }
}

/// The peer of a rule: ENIs (of a referenced group, or in an internal CIDR), the
/// addresses of CIDRs, or anywhere on the internet.
#[derive(Clone, Debug)]
enum Peer {
    Enis(Vec<u32>),
    Nets(Vec<IpNet>),
    Internet,
}

/// A flow a rule describes: traffic to (`inbound`) or from ENI `eni`.
#[derive(Clone, Debug)]
struct RuleFlow {
    inbound: bool,
    eni: u32,
    ports: PortSpec,
    peer: Peer,
}

struct EniInfo {
    v4: Ipv4Addr,
    v6: Option<Ipv6Addr>,
    public: Option<Ipv4Addr>,
    mac: [u8; 6],
    ttl: u8,
    /// The ephemeral port range, and the counter of ports to the internet.
    eph: (u16, u16),
    counter: u32,
    /// TCP ports its security groups admit (single ports and small ranges).
    services: Vec<u16>,
}

struct Planner {
    policy: Arc<Policy>,
    engine: Engine,
    fresh_each: bool,
    classified: u64,
    enis: Vec<EniInfo>,
    /// Flows rules describe, by [kind][ipv6].
    rules: [[Vec<RuleFlow>; 2]; 3],
    public_v4: Vec<u32>,
    v6_enis: Vec<u32>,
    vpc_nets: Vec<IpNet>,
    resolver_v4: Ipv4Addr,
    tcp_ports: Vec<u16>,
    /// Candidates kept for later, by [kind][rejected].
    stash: [[Vec<Cand>; 2]; 3],
    tries: [[u64; 2]; 3],
    hits: [[u64; 2]; 3],
    impossible: [[bool; 2]; 3],
    /// Candidates that passed and that were rejected, by [kind][source].
    outcomes: [[[u64; 2]; 4]; 3],
    /// Port counters of ENIs, by (ENI, destination, port) inside the VPC.
    port_counters: HashMap<(u32, IpAddr, u16), u32>,
    share_misses: u64,
}

fn fnv(s: &str) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for b in s.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
    }
    h
}

fn family_v6(n: &IpNet) -> bool {
    matches!(n, IpNet::V6(_))
}

/// Each ENI's addresses, MAC, TTL and ephemeral ports (one draw from `rng` each, in
/// the ruleset's order).
fn eni_infos(vpc: &Vpc, rng: &mut SplitMix64) -> Vec<EniInfo> {
    let mut enis: Vec<EniInfo> = Vec::with_capacity(vpc.network_interfaces.len());
    for e in &vpc.network_interfaces {
        let h = fnv(&e.id);
        let mut mac = [0x0e, 0, 0, 0, 0, 0];
        mac[1..].copy_from_slice(&h.to_be_bytes()[3..8]);
        // Load balancers open connections from any port; Linux from 32768-60999.
        let eph = if e.description.starts_with("ELB") {
            (1024, 65535)
        } else {
            (32768, 60999)
        };
        enis.push(EniInfo {
            v4: e.primary_ipv4().unwrap_or(Ipv4Addr::new(10, 0, 0, 10)),
            v6: e.ipv6.first().copied(),
            public: e.public_ipv4,
            mac,
            ttl: if h.is_multiple_of(5) { 128 } else { 64 },
            eph,
            counter: below(rng, 1 << 16) as u32,
            services: Vec::new(),
        });
    }
    enis
}

/// The flows the rules describe, gathered from security groups and network ACLs, and
/// the TCP services they admit.
struct RuleFlows<'a> {
    vpc: &'a Vpc,
    enis: &'a [EniInfo],
    /// By [kind][ipv6].
    rules: [[Vec<RuleFlow>; 2]; 3],
    /// TCP ports each ENI's groups admit.
    services: Vec<Vec<u16>>,
    tcp_ports: Vec<u16>,
}

impl RuleFlows<'_> {
    /// Whether `n` overlaps the VPC's CIDRs.
    fn internal(&self, n: &IpNet) -> bool {
        self.vpc
            .cidrs
            .iter()
            .any(|v| v.contains(n) || n.contains(v))
    }

    /// The ENIs with an address in `n`.
    fn enis_in(&self, n: &IpNet) -> Vec<u32> {
        self.enis
            .iter()
            .enumerate()
            .filter(|(_, e)| match n {
                IpNet::V4(n) => n.contains(&e.v4),
                IpNet::V6(n) => e.v6.is_some_and(|a| n.contains(&a)),
            })
            .map(|(i, _)| i as u32)
            .collect()
    }

    /// The ENIs of security group `g`.
    fn members(&self, g: &str) -> Vec<u32> {
        self.vpc
            .network_interfaces
            .iter()
            .enumerate()
            .filter(|(_, e)| e.security_groups.iter().any(|x| x == g))
            .map(|(i, _)| i as u32)
            .collect()
    }

    /// The peer of a CIDR rule: the internet, the ENIs inside it, or the CIDR.
    fn cidr_peer(&self, n: &IpNet) -> Peer {
        if n.prefix_len() == 0 {
            Peer::Internet
        } else if self.internal(n) {
            let e = self.enis_in(n);
            if e.is_empty() {
                Peer::Nets(vec![*n])
            } else {
                Peer::Enis(e)
            }
        } else {
            Peer::Nets(vec![*n])
        }
    }

    /// The (family, peer) pairs an SG rule of ENI `i` gives.
    fn sg_peers(&self, i: u32, peer: &SgPeer) -> Vec<(bool, Peer)> {
        let mut peers: Vec<(bool, Peer)> = Vec::new();
        match peer {
            SgPeer::Cidr(n) => peers.push((family_v6(n), self.cidr_peer(n))),
            SgPeer::PrefixList(p) => {
                if let Some(pl) = self.vpc.prefix_lists.iter().find(|x| &x.id == p) {
                    for v6 in [false, true] {
                        let nets: Vec<IpNet> = pl
                            .entries
                            .iter()
                            .filter(|n| family_v6(n) == v6)
                            .copied()
                            .collect();
                        if !nets.is_empty() {
                            peers.push((v6, Peer::Nets(nets)));
                        }
                    }
                }
            }
            SgPeer::SecurityGroup(g) => {
                let m: Vec<u32> = self.members(g).into_iter().filter(|&x| x != i).collect();
                let m6: Vec<u32> = m
                    .iter()
                    .copied()
                    .filter(|&x| self.enis[x as usize].v6.is_some())
                    .collect();
                if !m.is_empty() {
                    peers.push((false, Peer::Enis(m)));
                }
                if !m6.is_empty() {
                    peers.push((true, Peer::Enis(m6)));
                }
            }
        }
        peers
    }

    /// Every rule of every ENI's security groups, in the ruleset's order.
    fn security_group_rules(&mut self) {
        let vpc = self.vpc;
        for (i, e) in vpc.network_interfaces.iter().enumerate() {
            for g in &e.security_groups {
                let Some(sg) = vpc.security_group(g) else {
                    continue;
                };
                for (inbound, list) in [(true, &sg.ingress), (false, &sg.egress)] {
                    for r in list {
                        self.sg_rule(i as u32, inbound, r);
                    }
                }
            }
        }
    }

    /// The flows of one SG rule of ENI `i`: each kind its protocol covers, to or from
    /// each of its peers of a family the ENI has.
    fn sg_rule(&mut self, i: u32, inbound: bool, r: &SecurityGroupRule) {
        let has_v6 = self.enis[i as usize].v6.is_some();
        let peers = self.sg_peers(i, &r.peer);
        let kinds: &[Kind] = match r.protocol {
            Protocol::All => &[Kind::Tcp, Kind::Udp, Kind::Icmp],
            Protocol::Number(PROTO_TCP) => &[Kind::Tcp],
            Protocol::Number(PROTO_UDP) => &[Kind::Udp],
            Protocol::Number(PROTO_ICMP) | Protocol::Number(PROTO_ICMPV6) => &[Kind::Icmp],
            Protocol::Number(_) => &[],
        };
        for &kind in kinds {
            for (v6, peer) in &peers {
                if *v6 && !has_v6 {
                    continue;
                }
                if kind == Kind::Icmp && !allows_echo(r, *v6) {
                    continue;
                }
                if kind == Kind::Tcp && inbound {
                    if let PortSpec::Range { from, to } = r.ports {
                        if to - from < 16 {
                            self.services[i as usize].push(from);
                            self.tcp_ports.push(from);
                        }
                    }
                }
                self.rules[kind as usize][*v6 as usize].push(RuleFlow {
                    inbound,
                    eni: i,
                    ports: r.ports,
                    peer: peer.clone(),
                });
            }
        }
    }

    /// Network-ACL rules that name an outside CIDR (a partner, a blocked scraper):
    /// traffic from there to the subnet's ENIs.
    fn nacl_rules(&mut self) {
        let vpc = self.vpc;
        for acl in &vpc.network_acls {
            for r in &acl.inbound {
                if r.cidr.prefix_len() == 0 || self.internal(&r.cidr) {
                    continue;
                }
                if let PortSpec::Range { from, to } = r.ports {
                    if to - from >= 1024 {
                        continue; // a rule for replies, not for a service
                    }
                }
                let v6 = family_v6(&r.cidr);
                let kinds: &[Kind] = match r.protocol {
                    Protocol::All => &[Kind::Tcp, Kind::Udp, Kind::Icmp],
                    Protocol::Number(PROTO_TCP) => &[Kind::Tcp],
                    Protocol::Number(PROTO_UDP) => &[Kind::Udp],
                    _ => &[],
                };
                for (i, e) in vpc.network_interfaces.iter().enumerate() {
                    let in_acl = vpc
                        .subnet(&e.subnet_id)
                        .is_some_and(|s| s.network_acl_id.as_deref() == Some(acl.id.as_str()));
                    if !in_acl || (v6 && self.enis[i].v6.is_none()) {
                        continue;
                    }
                    for &kind in kinds {
                        self.rules[kind as usize][v6 as usize].push(RuleFlow {
                            inbound: true,
                            eni: i as u32,
                            ports: r.ports,
                            peer: Peer::Nets(vec![r.cidr]),
                        });
                    }
                }
            }
        }
    }
}

/// Whether an ICMP rule admits echo requests of its family (the only ICMP flows
/// generated).
fn allows_echo(r: &SecurityGroupRule, v6: bool) -> bool {
    let echo = if v6 { 128 } else { 8 };
    let ok_type = match r.ports {
        PortSpec::Icmp { icmp_type, code } => {
            icmp_type.is_none_or(|t| t == echo) && code.is_none_or(|c| c == 0)
        }
        _ => true,
    };
    let ok_proto = match r.protocol {
        Protocol::Number(PROTO_ICMP) => !v6,
        Protocol::Number(PROTO_ICMPV6) => v6,
        _ => true,
    };
    ok_type && ok_proto
}

impl Planner {
    fn new(vpc: Vpc, rng: &mut SplitMix64) -> Planner {
        let mut ids: Vec<String> = vpc
            .network_interfaces
            .iter()
            .map(|e| e.id.clone())
            .collect();
        ids.sort();
        let vpc = Arc::new(vpc);
        let policy = Arc::new(Policy::compile(vpc.clone(), &ids));
        let engine = Engine::new(policy.clone());
        let fresh_each = policy.has_conntrack_limits();

        let mut enis = eni_infos(&vpc, rng);
        let mut flows = RuleFlows {
            vpc: &vpc,
            enis: &enis,
            rules: Default::default(),
            services: vec![Vec::new(); enis.len()],
            tcp_ports: COMMON_PORTS.to_vec(),
        };
        flows.security_group_rules();
        flows.nacl_rules();
        let RuleFlows {
            rules,
            services,
            mut tcp_ports,
            ..
        } = flows;
        tcp_ports.sort_unstable();
        tcp_ports.dedup();
        for (e, mut s) in enis.iter_mut().zip(services) {
            s.sort_unstable();
            s.dedup();
            e.services = s;
        }
        let public_v4 = (0..enis.len() as u32)
            .filter(|&i| enis[i as usize].public.is_some())
            .collect();
        let v6_enis = (0..enis.len() as u32)
            .filter(|&i| enis[i as usize].v6.is_some())
            .collect();
        let resolver_v4 = vpc
            .primary_ipv4_cidr()
            .map(|n| Ipv4Addr::from(u32::from(n.network()) + 2))
            .unwrap_or(Ipv4Addr::new(169, 254, 169, 253));
        Planner {
            policy,
            engine,
            fresh_each,
            classified: 0,
            enis,
            rules,
            public_v4,
            v6_enis,
            vpc_nets: vpc.cidrs.clone(),
            resolver_v4,
            tcp_ports,
            stash: Default::default(),
            tries: [[0; 2]; 3],
            hits: [[0; 2]; 3],
            impossible: [[false; 2]; 3],
            outcomes: [[[0; 2]; 4]; 3],
            port_counters: HashMap::new(),
            share_misses: 0,
        }
    }

    /// A new flow of `kind` (another kind when this one cannot get the verdict),
    /// rejected at its first packet or not as `reject` says.
    fn plan(
        &mut self,
        rng: &mut SplitMix64,
        kind: Kind,
        v6: bool,
        reject: bool,
        ts: Timestamp,
    ) -> Cand {
        let order = match kind {
            Kind::Tcp => [Kind::Tcp, Kind::Udp, Kind::Icmp],
            Kind::Udp => [Kind::Udp, Kind::Tcp, Kind::Icmp],
            Kind::Icmp => [Kind::Icmp, Kind::Tcp, Kind::Udp],
        };
        let want = reject as usize;
        for k in order {
            let ki = k as usize;
            if self.impossible[ki][want] {
                continue;
            }
            if let Some(c) = self.stash[ki][want].pop() {
                return c;
            }
            for _ in 0..TRIES {
                let c = self.candidate(rng, k, v6, reject, ts);
                self.tries[ki][want] += 1;
                let got = (c.fate == Fate::Rejected) as usize;
                if got == want {
                    self.hits[ki][want] += 1;
                    return c;
                }
                if self.stash[ki][got].len() < STASH {
                    self.stash[ki][got].push(c);
                }
            }
            if self.hits[ki][want] == 0 && self.tries[ki][want] >= GIVE_UP {
                self.impossible[ki][want] = true;
            }
        }
        self.share_misses += 1;
        self.candidate(rng, kind, v6, reject, ts)
    }

    /// Runs the first packet, then its reply, through the scratch engine.
    fn classify(&mut self, c: &mut Cand, ts: Timestamp) {
        self.classified += 1;
        if self.fresh_each || self.classified.is_multiple_of(ENGINE_RENEW) {
            self.engine = Engine::new(self.policy.clone());
        }
        c.fate = match self.engine.process(&c.packet(false), ts).verdict {
            Verdict::Reject => Fate::Rejected,
            Verdict::None => Fate::Pass,
            Verdict::Accept => match self.engine.process(&c.packet(true), ts).verdict {
                Verdict::Reject => Fate::ReplyDropped,
                _ => Fate::Pass,
            },
        };
    }

    /// One candidate of `kind`, classified. Its source (a rule, a probe from the
    /// internet, ...) is drawn by weight × the share of that source's candidates that
    /// came out `reject` so far: the same mix as drawing by weight and keeping the
    /// candidates with the wanted verdict, with fewer candidates thrown away.
    fn candidate(
        &mut self,
        rng: &mut SplitMix64,
        kind: Kind,
        v6: bool,
        reject: bool,
        ts: Timestamp,
    ) -> Cand {
        let ki = kind as usize;
        let no_rules = self.rules[ki][0].is_empty() && self.rules[ki][1].is_empty();
        let mut w = [0f64; 4];
        let mut total = 0.0;
        for (j, &(src, base)) in SOURCES[ki].iter().enumerate() {
            if src == Source::Rule && no_rules {
                continue;
            }
            let [pass, rejected] = self.outcomes[ki][j];
            let hit = if reject { rejected } else { pass };
            w[j] = base * (hit as f64 + 1.0) / ((pass + rejected) as f64 + 2.0);
            total += w[j];
        }
        let mut x = unit(rng) * total;
        let mut j = 0;
        while j < 3 && (w[j] == 0.0 || x >= w[j]) {
            x -= w[j];
            j += 1;
        }
        let mut c = match SOURCES[ki][j].0 {
            Source::Rule => self
                .rule_flow(rng, kind, v6)
                .unwrap_or_else(|| self.inbound_probe(rng, kind, v6)),
            Source::Probe => self.inbound_probe(rng, kind, v6),
            Source::Outbound => self.outbound(rng, kind, v6),
            Source::Internal => self.internal(rng, kind, v6),
            Source::DnsVpc => self.dns(rng, v6, false),
            Source::DnsInternet => self.dns(rng, v6, true),
        };
        self.classify(&mut c, ts);
        self.outcomes[ki][j][(c.fate == Fate::Rejected) as usize] += 1;
        c
    }

    fn eni_addr(&self, i: u32, v6: bool, public: bool) -> IpAddr {
        let e = &self.enis[i as usize];
        match (v6, e.v6) {
            (true, Some(a)) => IpAddr::V6(a),
            _ if public => IpAddr::V4(e.public.unwrap_or(e.v4)),
            _ => IpAddr::V4(e.v4),
        }
    }

    /// The next ephemeral port of a client opening a flow to `dst` port `dport`. An
    /// ENI walks its range in a scrambled order, per destination inside the VPC (as
    /// Linux does), so a 5-tuple comes back only after the whole range was used.
    fn client_port(
        &mut self,
        rng: &mut SplitMix64,
        side: Side,
        dst: IpAddr,
        dport: u16,
        dst_side: Side,
    ) -> u16 {
        let (lo, hi, n) = match side {
            Side::Eni(i) => {
                let (lo, hi) = self.enis[i as usize].eph;
                let n = if dst_side == Side::Internet {
                    let e = &mut self.enis[i as usize];
                    e.counter = e.counter.wrapping_add(1);
                    e.counter
                } else {
                    let c = self
                        .port_counters
                        .entry((i, dst, dport))
                        .or_insert_with(|| rng.next_u64() as u32);
                    *c = c.wrapping_add(1);
                    *c
                };
                (lo, hi, n as u64)
            }
            _ => {
                let (lo, hi) = match below(rng, 20) {
                    0..=9 => (32768, 60999),   // Linux
                    10..=16 => (49152, 65535), // Windows, macOS
                    _ => (1024, 65535),
                };
                (lo, hi, rng.next_u64())
            }
        };
        // A stride coprime with the range's length walks the whole range.
        let len = (hi - lo) as u64 + 1;
        let stride = if len.is_multiple_of(7919) { 1 } else { 7919 };
        lo + ((n.wrapping_mul(stride)) % len) as u16
    }

    fn random_public(&self, rng: &mut SplitMix64, v6: bool) -> IpAddr {
        loop {
            let a = if v6 {
                // 2000::/3, global unicast.
                let x = (rng.next_u64() as u128) << 64 | rng.next_u64() as u128;
                IpAddr::V6(Ipv6Addr::from(
                    (x & !(0xe000u128 << 112)) | (0x2000u128 << 112),
                ))
            } else {
                let x = rng.next_u64() as u32;
                let o = x.to_be_bytes();
                let reserved = matches!(o[0], 0 | 10 | 127 | 224..=255)
                    || (o[0] == 100 && (64..128).contains(&o[1]))
                    || (o[0] == 169 && o[1] == 254)
                    || (o[0] == 172 && (16..32).contains(&o[1]))
                    || (o[0] == 192 && o[1] == 168);
                if reserved {
                    continue;
                }
                IpAddr::V4(Ipv4Addr::from(x))
            };
            if self.usable_outside(a) {
                return a;
            }
        }
    }

    /// Not in the VPC, no ENI's, not an exempt service.
    fn usable_outside(&self, a: IpAddr) -> bool {
        !self.vpc_nets.iter().any(|n| n.contains(&a))
            && self.policy.owner(a).is_none()
            && self.policy.exempt_service(a).is_none()
    }

    fn addr_in(&self, rng: &mut SplitMix64, n: &IpNet) -> IpAddr {
        for _ in 0..8 {
            let a = match n {
                IpNet::V4(n) => {
                    let host = if n.prefix_len() >= 32 {
                        0
                    } else {
                        (rng.next_u64() as u32) & (u32::MAX >> n.prefix_len())
                    };
                    IpAddr::V4(Ipv4Addr::from(u32::from(n.network()) | host))
                }
                IpNet::V6(n) => {
                    let host = if n.prefix_len() >= 128 {
                        0
                    } else {
                        let x = (rng.next_u64() as u128) << 64 | rng.next_u64() as u128;
                        x & (u128::MAX >> n.prefix_len())
                    };
                    IpAddr::V6(Ipv6Addr::from(u128::from(n.network()) | host))
                }
            };
            if self.policy.owner(a).is_none() && self.policy.exempt_service(a).is_none() {
                return a;
            }
        }
        n.network()
    }

    #[allow(clippy::too_many_arguments)]
    fn cand(
        &mut self,
        rng: &mut SplitMix64,
        kind: Kind,
        a: IpAddr,
        side_a: Side,
        b: IpAddr,
        side_b: Side,
        port_b: u16,
    ) -> Cand {
        let port_a = match kind {
            Kind::Icmp => rng.next_u64() as u16,
            _ => self.client_port(rng, side_a, b, port_b, side_b),
        };
        Cand {
            kind,
            a,
            b,
            port_a,
            port_b: if kind == Kind::Icmp { 0 } else { port_b },
            side_a,
            side_b,
            fate: Fate::Pass,
        }
    }

    /// A flow one of the ruleset's rules describes.
    fn rule_flow(&mut self, rng: &mut SplitMix64, kind: Kind, v6: bool) -> Option<Cand> {
        let mut fam = v6;
        if self.rules[kind as usize][fam as usize].is_empty() {
            if !fam {
                return None;
            }
            fam = false;
        }
        let list = &self.rules[kind as usize][fam as usize];
        if list.is_empty() {
            return None;
        }
        let r = list[below(rng, list.len() as u64) as usize].clone();
        let port = match (kind, r.ports) {
            (Kind::Icmp, _) => 0,
            (_, PortSpec::Range { from, to }) => between(rng, from as u64, to as u64) as u16,
            (Kind::Udp, _) => 53,
            _ => COMMON_PORTS[below(rng, COMMON_PORTS.len() as u64) as usize],
        };
        let (peer, peer_side) = match &r.peer {
            Peer::Enis(m) => {
                let p = m[below(rng, m.len() as u64) as usize];
                (self.eni_addr(p, fam, false), Side::Eni(p))
            }
            Peer::Nets(nets) => {
                let n = nets[below(rng, nets.len() as u64) as usize];
                (self.addr_in(rng, &n), Side::Internet)
            }
            Peer::Internet => (self.random_public(rng, fam), Side::Internet),
        };
        let outside = peer_side == Side::Internet;
        let eni = self.eni_addr(r.eni, fam, outside && r.inbound);
        let me = Side::Eni(r.eni);
        Some(if r.inbound {
            self.cand(rng, kind, peer, peer_side, eni, me, port)
        } else {
            self.cand(rng, kind, eni, me, peer, peer_side, port)
        })
    }

    /// A random ENI (one with IPv6 for `v6`, when there is one).
    fn any_eni(&self, rng: &mut SplitMix64, v6: bool) -> (u32, bool) {
        if v6 && !self.v6_enis.is_empty() {
            let i = self.v6_enis[below(rng, self.v6_enis.len() as u64) as usize];
            (i, true)
        } else {
            (below(rng, self.enis.len() as u64) as u32, false)
        }
    }

    /// An ENI with a public address of the family, if any.
    fn public_eni(&self, rng: &mut SplitMix64, v6: bool) -> Option<(u32, bool)> {
        if v6 && !self.v6_enis.is_empty() {
            return Some((
                self.v6_enis[below(rng, self.v6_enis.len() as u64) as usize],
                true,
            ));
        }
        if self.public_v4.is_empty() {
            return None;
        }
        Some((
            self.public_v4[below(rng, self.public_v4.len() as u64) as usize],
            false,
        ))
    }

    /// Two different ENIs, both with IPv6 for `v6` if possible.
    fn eni_pair(&self, rng: &mut SplitMix64, v6: bool) -> Option<(u32, u32, bool)> {
        let pool: Vec<u32> = if v6 && self.v6_enis.len() >= 2 {
            self.v6_enis.clone()
        } else {
            (0..self.enis.len() as u32).collect()
        };
        if pool.len() < 2 {
            return None;
        }
        let fam = v6 && self.v6_enis.len() >= 2;
        let x = below(rng, pool.len() as u64) as usize;
        let y = (x + 1 + below(rng, pool.len() as u64 - 1) as usize) % pool.len();
        Some((pool[x], pool[y], fam))
    }

    /// From the internet to an ENI's public address.
    fn inbound_probe(&mut self, rng: &mut SplitMix64, kind: Kind, v6: bool) -> Cand {
        let Some((e, fam)) = self.public_eni(rng, v6) else {
            return self.outbound(rng, kind, v6);
        };
        let port = match kind {
            Kind::Tcp => {
                if below(rng, 10) < 6 {
                    self.tcp_ports[below(rng, self.tcp_ports.len() as u64) as usize]
                } else {
                    PROBE_PORTS[below(rng, PROBE_PORTS.len() as u64) as usize]
                }
            }
            _ => 53,
        };
        let peer = self.random_public(rng, fam);
        let dst = self.eni_addr(e, fam, true);
        self.cand(rng, kind, peer, Side::Internet, dst, Side::Eni(e), port)
    }

    /// From an ENI to the internet.
    fn outbound(&mut self, rng: &mut SplitMix64, kind: Kind, v6: bool) -> Cand {
        let (e, fam) = self.any_eni(rng, v6);
        let src = self.eni_addr(e, fam, false);
        let (dst, port) = match kind {
            Kind::Tcp => {
                let p = match below(rng, 20) {
                    0..=13 => 443,
                    14..=18 => 80,
                    _ => 22,
                };
                (self.random_public(rng, fam), p)
            }
            Kind::Udp => return self.dns(rng, v6, true),
            Kind::Icmp => {
                let d = if below(rng, 2) == 0 {
                    self.resolver(rng, fam)
                } else {
                    self.random_public(rng, fam)
                };
                (d, 0)
            }
        };
        self.cand(rng, kind, src, Side::Eni(e), dst, Side::Internet, port)
    }

    /// Between two ENIs, to a port the receiver serves.
    fn internal(&mut self, rng: &mut SplitMix64, kind: Kind, v6: bool) -> Cand {
        let Some((x, y, fam)) = self.eni_pair(rng, v6) else {
            return self.outbound(rng, kind, v6);
        };
        let port = {
            let s = &self.enis[y as usize].services;
            if !s.is_empty() && below(rng, 10) < 7 {
                s[below(rng, s.len() as u64) as usize]
            } else {
                self.tcp_ports[below(rng, self.tcp_ports.len() as u64) as usize]
            }
        };
        let a = self.eni_addr(x, fam, false);
        let b = self.eni_addr(y, fam, false);
        self.cand(rng, kind, a, Side::Eni(x), b, Side::Eni(y), port)
    }

    fn resolver(&self, rng: &mut SplitMix64, v6: bool) -> IpAddr {
        if v6 {
            IpAddr::V6(Ipv6Addr::from(
                RESOLVERS_V6[below(rng, RESOLVERS_V6.len() as u64) as usize],
            ))
        } else {
            IpAddr::V4(Ipv4Addr::from(
                RESOLVERS_V4[below(rng, RESOLVERS_V4.len() as u64) as usize],
            ))
        }
    }

    /// A DNS query from an ENI to the Amazon resolver or (`internet`) a public one.
    fn dns(&mut self, rng: &mut SplitMix64, v6: bool, internet: bool) -> Cand {
        let (e, fam) = self.any_eni(rng, v6);
        let src = self.eni_addr(e, fam, false);
        let (dst, side) = if internet {
            (self.resolver(rng, fam), Side::Internet)
        } else if fam {
            (
                IpAddr::V6("fd00:ec2::253".parse().expect("an address")),
                Side::Service,
            )
        } else {
            (IpAddr::V4(self.resolver_v4), Side::Service)
        };
        self.cand(rng, Kind::Udp, src, Side::Eni(e), dst, side, 53)
    }

    /// The flow's state from its plan: sizes, counts and how it ends.
    fn flow(&self, c: &Cand, rng: &mut SplitMix64) -> Flow {
        let bytes = |a: IpAddr| -> [u8; 16] {
            let mut x = [0u8; 16];
            match a {
                IpAddr::V4(a) => x[..4].copy_from_slice(&a.octets()),
                IpAddr::V6(a) => x = a.octets(),
            }
            x
        };
        let v6 = c.a.is_ipv6();
        let (a, b) = (bytes(c.a), bytes(c.b));
        let alen = if v6 { 16 } else { 4 };
        let addr_sum = sum(&a[..alen], sum(&b[..alen], 0));
        let mut side = |s: Side| -> ([u8; 6], u8) {
            match s {
                Side::Eni(i) => (self.enis[i as usize].mac, self.enis[i as usize].ttl),
                Side::Internet => (ROUTER_MAC, 40 + below(rng, 21) as u8),
                Side::Service => (ROUTER_MAC, 64),
            }
        };
        let (mac_a, ttl_a) = side(c.side_a);
        let (mac_b, ttl_b) = side(c.side_b);
        let r = rng.next_u64();
        let mut f = Flow {
            a,
            b,
            mac_a,
            mac_b,
            port_a: c.port_a,
            port_b: c.port_b,
            addr_sum,
            seq_a: r as u32,
            seq_b: (r >> 32) as u32,
            flow_label: rng.next_u64() as u32 & 0xf_ffff,
            id_a: rng.next_u64() as u16,
            id_b: rng.next_u64() as u16,
            v6,
            ttl_a,
            ttl_b,
            fate: c.fate,
            ..Flow::UNBORN
        };
        let rejected = c.fate == Fate::Rejected;
        match c.kind {
            Kind::Tcp => {
                f.state = State::Syn;
                // Exchanges, or attempts when the SYN or the SYN-ACK is dropped.
                f.left = between(rng, 1, 3) as u8;
                f.b_closes = below(rng, 2) == 0;
                f.rst = below(rng, 10) == 0;
            }
            Kind::Udp => {
                f.state = State::Query;
                f.left = if rejected {
                    between(rng, 1, 3)
                } else {
                    between(rng, 1, 2)
                } as u8;
                f.size_a = between(rng, 18, 78) as u16;
                f.size_b = between(rng, 58, 458) as u16;
            }
            Kind::Icmp => {
                f.state = State::EchoRequest;
                f.left = between(rng, 1, 4) as u8;
                f.echo_seq = 1;
                f.size_a = match below(rng, 10) {
                    0..=5 => 56, // Linux ping
                    6..=8 => 32, // Windows ping
                    _ => between(rng, 8, if v6 { 1452 } else { 1472 }) as u16,
                };
            }
        }
        f
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests may write scratch files
mod tests {
    use super::*;
    use crate::capture::CaptureReader;
    use crate::wire::packet::{linktype, parse};

    fn small(seed: u64) -> (Vec<u8>, SynthSummary) {
        let cfg = SynthConfig {
            packets: 5_000,
            flows: 200,
            seed,
            ..SynthConfig::default()
        };
        let mut v = Vec::new();
        let s = generate(builtin_vpc(), &cfg, &mut v).unwrap();
        (v, s)
    }

    #[test]
    fn every_frame_parses() {
        let (bytes, s) = small(7);
        assert_eq!(s.bytes, bytes.len() as u64);
        let dir = std::env::temp_dir().join(format!("vpcgate-synthgen-{}", std::process::id()));
        std::fs::write(&dir, &bytes).unwrap();
        let mut r = CaptureReader::open(&dir).unwrap();
        let mut n = 0;
        while let Some(p) = r.next_packet().unwrap() {
            assert_eq!(p.link_type, linktype::ETHERNET);
            parse(p.link_type, p.data).unwrap();
            n += 1;
        }
        std::fs::remove_file(&dir).unwrap();
        assert_eq!(n, 5_000);
    }

    /// The engine classified a flow by the packets [`Cand::packet`] describes: the
    /// frames written must be those packets.
    #[test]
    fn the_packets_written_are_the_packets_classified() {
        let mut rng = SplitMix64(5);
        let mut planner = Planner::new(builtin_vpc(), &mut rng);
        let mut fates = [0; 3];
        for i in 0..600 {
            let kind = [Kind::Tcp, Kind::Udp, Kind::Icmp][i % 3];
            let c = planner.candidate(&mut rng, kind, i % 2 == 0, i % 4 == 0, Timestamp(0));
            fates[c.fate as usize] += 1;
            let mut f = planner.flow(&c, &mut rng);
            let mut out = Out::new(Vec::new(), 65_535);
            let replied = c.fate != Fate::Rejected;
            step(&mut f, &mut rng, &mut out, 0);
            if replied {
                step(&mut f, &mut rng, &mut out, 0);
            }
            let mut at = 0;
            for reply in [false, true].into_iter().take(1 + replied as usize) {
                let cap = u32::from_le_bytes(out.buf[at + 8..at + 12].try_into().unwrap());
                let frame = &out.buf[at + 16..at + 16 + cap as usize];
                at += 16 + cap as usize;
                let got = parse(linktype::ETHERNET, frame).unwrap();
                let mut want = c.packet(reply);
                want.ip_len = got.ip_len;
                assert_eq!(got, want, "{c:?}");
            }
            assert_eq!(at, out.pos);
        }
        assert!(fates.iter().all(|&n| n > 0), "{fates:?}");
    }

    #[test]
    fn checksums_verify() {
        // Folding the stored checksum into the sum gives 0xffff (RFC 1071).
        let (bytes, _) = small(3);
        let mut at = 24;
        let mut checked = 0;
        while at < bytes.len() {
            let cap = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
            let orig = u32::from_le_bytes(bytes[at + 12..at + 16].try_into().unwrap()) as usize;
            let fr = &bytes[at + 16..at + 16 + cap];
            assert_eq!(cap, orig);
            at += 16 + cap;
            let (proto, l4, pseudo) = if fr[12] == 0x08 {
                assert_eq!(finish(sum(&fr[14..34], 0)), 0, "IPv4 header");
                let l4 = &fr[34..];
                let p = fr[23];
                let s = sum(&fr[26..34], 0) + p as u32 + l4.len() as u32;
                (p, l4, if p == PROTO_ICMP { 0 } else { s })
            } else {
                let l4 = &fr[54..];
                let p = fr[20];
                (p, l4, sum(&fr[22..54], 0) + p as u32 + l4.len() as u32)
            };
            let mut padded = l4.to_vec();
            if padded.len() % 2 == 1 {
                padded.push(0);
            }
            assert!(matches!(proto, 1 | 6 | 17 | 58));
            assert_eq!(finish(sum(&padded, pseudo)), 0, "protocol {proto}");
            checked += 1;
        }
        assert_eq!(checked, 5_000);
    }

    #[test]
    fn the_share_of_rejected_flows_is_held() {
        let cfg = SynthConfig {
            packets: 20_000,
            flows: 500,
            reject_share: 0.3,
            ..SynthConfig::default()
        };
        let s = generate(builtin_vpc(), &cfg, io::sink()).unwrap();
        let want = 0.3 * s.flows as f64;
        assert!((s.rejected_flows as f64 - want).abs() < 1.0, "{s:?}");
        assert!(s.ipv6_flows > 0 && s.icmp_flows > 0 && s.udp_flows > 0);
    }

    #[test]
    fn settings_out_of_range_are_refused() {
        let bad = SynthConfig {
            reject_share: 1.5,
            ..SynthConfig::default()
        };
        assert!(bad.validate().unwrap_err().contains("--reject-share"));
        let bad = SynthConfig {
            flows: 0,
            ..SynthConfig::default()
        };
        assert!(bad.validate().unwrap_err().contains("--flows"));
    }
}
