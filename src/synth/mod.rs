//! Building real frames: the demo capture, test fixtures and (later) benchmark
//! captures are made by this code, never by hand.
//!
//! [`Frame`] writes one Ethernet frame (IPv4 or IPv6; TCP, UDP, ICMP echo, ICMP
//! errors, or any other protocol) with correct lengths and checksums, using the
//! crate's frame builder ([`crate::wire::emit`]). [`Timeline`] collects frames with capture times and
//! writes them as a pcap; [`Timeline::tcp_session`] and friends write whole
//! conversations (handshake, data both ways, FIN or RST).
//!
//! ```
//! use vpcgate::synth::*;
//! let mut t = Timeline::new(1_700_000_000);
//! let client = "198.51.100.7".parse().unwrap();
//! let server = "10.0.1.10".parse().unwrap();
//! t.tcp_session(client, 50000, server, 443, &[(300, 1200)], Close::Fin);
//! assert_eq!(t.len(), 3 + 2 + 4); // handshake, request + reply, FIN/ACK both ways
//! ```
#![deny(clippy::disallowed_methods, clippy::disallowed_types)]

pub mod bulk;

use crate::capture::PcapWriter;
use crate::wire::emit::{self, Eth, Ip, L4};
use crate::wire::packet::{linktype, tcp_flags, Timestamp};
use std::net::IpAddr;

/// One frame to build.
#[derive(Clone, Copy, Debug)]
pub enum Frame {
    Tcp {
        src: IpAddr,
        sport: u16,
        dst: IpAddr,
        dport: u16,
        flags: u8,
        seq: u32,
        ack: u32,
        payload: usize,
    },
    Udp {
        src: IpAddr,
        sport: u16,
        dst: IpAddr,
        dport: u16,
        payload: usize,
    },
    /// ICMP or ICMPv6 echo (the family follows the addresses).
    Echo {
        src: IpAddr,
        dst: IpAddr,
        reply: bool,
        id: u16,
        seq: u16,
        payload: usize,
    },
    /// An ICMP destination-unreachable (v4 type 3 / v6 type 1) with `code`.
    Unreachable {
        src: IpAddr,
        dst: IpAddr,
        code: u8,
        payload: usize,
    },
    /// Any other IP protocol, with a payload of zeros.
    Other {
        src: IpAddr,
        dst: IpAddr,
        protocol: u8,
        payload: usize,
    },
}

impl Frame {
    /// The Ethernet frame's bytes, built by [`crate::wire::emit`]. Panics only if
    /// `src` and `dst` are of different families (a bug in the caller, never input
    /// data).
    pub fn build(&self) -> Vec<u8> {
        let (src, dst) = match *self {
            Frame::Tcp { src, dst, .. }
            | Frame::Udp { src, dst, .. }
            | Frame::Echo { src, dst, .. }
            | Frame::Unreachable { src, dst, .. }
            | Frame::Other { src, dst, .. } => (src, dst),
        };
        let ip = Ip::new(src, dst);
        let (l4, payload) = match *self {
            Frame::Tcp {
                sport,
                dport,
                flags,
                seq,
                ack,
                payload,
                ..
            } => (
                L4::Tcp {
                    sport,
                    dport,
                    seq,
                    ack,
                    flags,
                    window: 64240,
                },
                vec![0x61; payload],
            ),
            Frame::Udp {
                sport,
                dport,
                payload,
                ..
            } => (L4::Udp { sport, dport }, vec![0x62; payload]),
            Frame::Echo {
                reply,
                id,
                seq,
                payload,
                ..
            } => (L4::echo(src.is_ipv6(), reply, id, seq), vec![0x63; payload]),
            Frame::Unreachable { code, payload, .. } => (
                L4::Icmp {
                    icmp_type: if src.is_ipv4() { 3 } else { 1 },
                    code,
                    rest: [0; 4],
                },
                vec![0x64; payload],
            ),
            Frame::Other {
                protocol, payload, ..
            } => (L4::Other { protocol }, vec![0x65; payload]),
        };
        emit::frame(&Eth::default(), &ip, &l4, &payload)
    }
}

/// How a TCP session ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Close {
    /// FIN/ACK from the client, FIN/ACK from the server, last ACK.
    Fin,
    /// The client resets.
    Rst,
    /// Left open.
    Open,
}

/// Frames with capture times, in order; writes a pcap.
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    /// Capture time of the next frame, nanoseconds.
    now: u64,
    /// Gap between frames of a conversation, nanoseconds.
    pub step: u64,
    frames: Vec<(Timestamp, Vec<u8>)>,
}

impl Timeline {
    /// Starts at Unix second `start`, with 1 ms between frames.
    pub fn new(start: u64) -> Timeline {
        Timeline {
            now: start * 1_000_000_000,
            step: 1_000_000,
            frames: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    pub fn frames(&self) -> &[(Timestamp, Vec<u8>)] {
        &self.frames
    }

    /// Capture time of the next frame.
    pub fn now(&self) -> Timestamp {
        Timestamp(self.now)
    }

    /// Moves the clock forward.
    pub fn advance_ms(&mut self, ms: u64) {
        self.now += ms * 1_000_000;
    }

    /// Sets the clock to Unix second `secs`, backwards too: conversations may
    /// overlap in time; call [`Timeline::sort`] before writing.
    pub fn at(&mut self, secs: u64) {
        self.now = secs * 1_000_000_000;
    }

    /// Adds one frame at the current time, then steps the clock.
    pub fn push(&mut self, f: Frame) {
        self.frames.push((Timestamp(self.now), f.build()));
        self.now += self.step;
    }

    /// One TCP segment.
    #[allow(clippy::too_many_arguments)]
    pub fn segment(
        &mut self,
        src: IpAddr,
        sport: u16,
        dst: IpAddr,
        dport: u16,
        flags: u8,
        seq: u32,
        ack: u32,
        payload: usize,
    ) {
        self.push(Frame::Tcp {
            src,
            sport,
            dst,
            dport,
            flags,
            seq,
            ack,
            payload,
        });
    }

    /// A TCP session: handshake, then for each `(request, response)` pair of payload
    /// sizes a client segment and a server segment (0 means none), then `close`.
    pub fn tcp_session(
        &mut self,
        client: IpAddr,
        cport: u16,
        server: IpAddr,
        sport: u16,
        exchanges: &[(usize, usize)],
        close: Close,
    ) {
        use tcp_flags::*;
        let (mut cs, mut ss) = (1000u32, 5000u32);
        let c = |flags, seq, ack, payload| Frame::Tcp {
            src: client,
            sport: cport,
            dst: server,
            dport: sport,
            flags,
            seq,
            ack,
            payload,
        };
        let s = |flags, seq, ack, payload| Frame::Tcp {
            src: server,
            sport,
            dst: client,
            dport: cport,
            flags,
            seq,
            ack,
            payload,
        };
        self.push(c(SYN, cs, 0, 0));
        cs += 1;
        self.push(s(SYN | ACK, ss, cs, 0));
        ss += 1;
        self.push(c(ACK, cs, ss, 0));
        for &(req, resp) in exchanges {
            if req > 0 {
                self.push(c(PSH | ACK, cs, ss, req));
                cs = cs.wrapping_add(req as u32);
            }
            if resp > 0 {
                self.push(s(PSH | ACK, ss, cs, resp));
                ss = ss.wrapping_add(resp as u32);
            }
        }
        match close {
            Close::Fin => {
                self.push(c(FIN | ACK, cs, ss, 0));
                cs += 1;
                self.push(s(FIN | ACK, ss, cs, 0));
                ss += 1;
                self.push(c(ACK, cs, ss, 0));
                self.push(s(ACK, ss, cs, 0));
            }
            Close::Rst => self.push(c(RST, cs, 0, 0)),
            Close::Open => {}
        }
    }

    /// A TCP connection attempt that gets no answer: the SYN and `retries` more.
    pub fn tcp_syn_attempt(
        &mut self,
        client: IpAddr,
        cport: u16,
        server: IpAddr,
        sport: u16,
        retries: usize,
    ) {
        for _ in 0..=retries {
            self.push(Frame::Tcp {
                src: client,
                sport: cport,
                dst: server,
                dport: sport,
                flags: tcp_flags::SYN,
                seq: 1000,
                ack: 0,
                payload: 0,
            });
            self.advance_ms(1000);
        }
    }

    /// A UDP request and, if `response` > 0, its reply.
    pub fn udp_exchange(
        &mut self,
        client: IpAddr,
        cport: u16,
        server: IpAddr,
        sport: u16,
        request: usize,
        response: usize,
    ) {
        self.push(Frame::Udp {
            src: client,
            sport: cport,
            dst: server,
            dport: sport,
            payload: request,
        });
        if response > 0 {
            self.push(Frame::Udp {
                src: server,
                sport,
                dst: client,
                dport: cport,
                payload: response,
            });
        }
    }

    /// `count` pings (request and reply) one second apart, as `ping` sends them:
    /// 56 bytes of data, so 84 IP bytes each.
    pub fn ping(&mut self, from: IpAddr, to: IpAddr, id: u16, count: u16, replies: bool) {
        for seq in 1..=count {
            self.push(Frame::Echo {
                src: from,
                dst: to,
                reply: false,
                id,
                seq,
                payload: 56,
            });
            if replies {
                self.push(Frame::Echo {
                    src: to,
                    dst: from,
                    reply: true,
                    id,
                    seq,
                    payload: 56,
                });
            }
            self.advance_ms(1000);
        }
    }

    /// Sorts frames by time (stable), for timelines written out of order.
    pub fn sort(&mut self) {
        self.frames.sort_by_key(|(t, _)| *t);
    }

    /// Writes the frames as an Ethernet pcap.
    pub fn write_pcap(&self, w: &mut PcapWriter) -> std::io::Result<()> {
        for (ts, f) in &self.frames {
            w.write_packet(*ts, linktype::ETHERNET, f, f.len() as u32)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes etherparse 0.21's `PacketBuilder` writes for `f`: what this module
    /// built before it moved to [`crate::wire::emit`], and an independent builder to
    /// hold the new one to (etherparse is a dev-dependency only for this).
    fn etherparse_bytes(f: &Frame) -> Vec<u8> {
        use etherparse::{IpNumber, PacketBuilder, TcpHeader};
        let (src, dst) = match *f {
            Frame::Tcp { src, dst, .. }
            | Frame::Udp { src, dst, .. }
            | Frame::Echo { src, dst, .. }
            | Frame::Unreachable { src, dst, .. }
            | Frame::Other { src, dst, .. } => (src, dst),
        };
        let eth = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let ip = match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), 64),
            (IpAddr::V6(s), IpAddr::V6(d)) => eth.ipv6(s.octets(), d.octets(), 64),
            _ => unreachable!(),
        };
        let mut out = Vec::new();
        match *f {
            Frame::Tcp {
                sport,
                dport,
                flags,
                seq,
                ack,
                payload,
                ..
            } => {
                let mut h = TcpHeader::new(sport, dport, seq, 64240);
                h.fin = flags & tcp_flags::FIN != 0;
                h.syn = flags & tcp_flags::SYN != 0;
                h.rst = flags & tcp_flags::RST != 0;
                h.psh = flags & tcp_flags::PSH != 0;
                h.ack = flags & tcp_flags::ACK != 0;
                h.acknowledgment_number = if h.ack { ack } else { 0 };
                ip.tcp_header(h).write(&mut out, &vec![0x61; payload])
            }
            Frame::Udp {
                sport,
                dport,
                payload,
                ..
            } => ip.udp(sport, dport).write(&mut out, &vec![0x62; payload]),
            Frame::Echo {
                reply,
                id,
                seq,
                payload,
                ..
            } => {
                let data = vec![0x63; payload];
                match (src.is_ipv4(), reply) {
                    (true, false) => ip.icmpv4_echo_request(id, seq).write(&mut out, &data),
                    (true, true) => ip.icmpv4_echo_reply(id, seq).write(&mut out, &data),
                    (false, false) => ip.icmpv6_echo_request(id, seq).write(&mut out, &data),
                    (false, true) => ip.icmpv6_echo_reply(id, seq).write(&mut out, &data),
                }
            }
            Frame::Unreachable { code, payload, .. } => {
                let data = vec![0x64; payload];
                if src.is_ipv4() {
                    ip.icmpv4_raw(3, code, [0; 4]).write(&mut out, &data)
                } else {
                    ip.icmpv6_raw(1, code, [0; 4]).write(&mut out, &data)
                }
            }
            Frame::Other {
                protocol, payload, ..
            } => ip.write(&mut out, IpNumber(protocol), &vec![0x65; payload]),
        }
        .unwrap();
        out
    }

    #[test]
    fn frames_are_the_bytes_etherparse_writes() {
        let pairs: [(IpAddr, IpAddr); 2] = [
            (
                "198.51.100.7".parse().unwrap(),
                "10.0.1.10".parse().unwrap(),
            ),
            (
                "2001:db8::7".parse().unwrap(),
                "2600:1f18:4a3:6d01::10".parse().unwrap(),
            ),
        ];
        let mut n = 0;
        for (src, dst) in pairs {
            for payload in [0, 1, 2, 57, 1400] {
                let mut frames = vec![
                    Frame::Udp {
                        src,
                        sport: 53,
                        dst,
                        dport: 40000,
                        payload,
                    },
                    Frame::Unreachable {
                        src,
                        dst,
                        code: 4,
                        payload,
                    },
                    Frame::Other {
                        src,
                        dst,
                        protocol: 47,
                        payload,
                    },
                ];
                for flags in [
                    tcp_flags::SYN,
                    tcp_flags::SYN | tcp_flags::ACK,
                    tcp_flags::FIN | tcp_flags::ACK | tcp_flags::PSH,
                    tcp_flags::RST,
                ] {
                    frames.push(Frame::Tcp {
                        src,
                        sport: 50000,
                        dst,
                        dport: 443,
                        flags,
                        seq: 0xfeed_beef,
                        ack: 17,
                        payload,
                    });
                }
                for reply in [false, true] {
                    frames.push(Frame::Echo {
                        src,
                        dst,
                        reply,
                        id: 0x2a,
                        seq: 9,
                        payload,
                    });
                }
                for f in frames {
                    assert_eq!(f.build(), etherparse_bytes(&f), "{f:?}");
                    n += 1;
                }
            }
        }
        assert_eq!(n, 2 * 5 * 9);
    }

    #[test]
    fn ping_is_84_ip_bytes() {
        // FL-5: four default pings are 336 bytes: 20 (IPv4) + 8 (ICMP) + 56 (data).
        let f = Frame::Echo {
            src: "203.0.113.12".parse().unwrap(),
            dst: "172.31.16.139".parse().unwrap(),
            reply: false,
            id: 1,
            seq: 1,
            payload: 56,
        }
        .build();
        assert_eq!(f.len(), 14 + 84);
        // The IPv4 total length field at Ethernet offset 14 + 2.
        assert_eq!(u16::from_be_bytes([f[16], f[17]]), 84);
    }
}

/// A small deterministic generator (SplitMix64), so generated captures are the same
/// bytes for the same seed on every machine.
#[derive(Clone, Debug)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }
}

/// The first second of the bundled demo capture: 2024-11-24 08:00:00 UTC, the start
/// of a 600-second flow-log window.
pub const SECURECART_DEMO_START: u64 = 1_732_435_200;

/// The traffic of `pcaps/securecart.pcap`, for the SecureCart VPC of
/// `rulesets/securecart.toml`, over about twelve minutes (two 600-second windows):
///
/// - customers on the internet (192.0.2.0/24, one on IPv6) open HTTPS sessions to the
///   ALB's public addresses;
/// - the ALB forwards each to an app task on 8080, and the task queries the RDS
///   primary on 5432; the ALB's source ports are spread over 1024-65535, so a few
///   land below 32768 and the task's SYN-ACK is **dropped by the app subnet's NACL**
///   (the ruleset's teaching point): the ALB's SYN is retried and gets no answer;
/// - an app task calls an API on the internet over HTTPS and resolves its name at the
///   Amazon DNS resolver (exempt from filtering);
/// - the office (198.51.100.0/24) uses SSH through the bastion to an app task;
/// - a host on the internet tries SSH on the bastion (denied by the public NACL), a
///   blocked scraper (192.0.2.200/29) tries HTTPS (denied by NACL rule 90), and
///   someone pings the ALB (denied by the public NACL, which allows only ICMP 3/4).
pub fn securecart_demo() -> Timeline {
    let h = SecureCart::hosts();
    let mut rng = SplitMix64(0x005e_c02e_ca27);
    let mut t = Timeline::new(SECURECART_DEMO_START);
    // The random draws (ports) come in this order: the first window's customers, then
    // the second window's.
    for i in 0..24u64 {
        t.at(SECURECART_DEMO_START + i * 28);
        h.customer_order(&mut t, &mut rng, i);
    }
    h.ipv6_customer(&mut t);
    h.payment_call(&mut t);
    h.office_ssh(&mut t);
    h.refused_from_the_internet(&mut t);
    h.second_window(&mut t, &mut rng);
    t.sort();
    t
}

/// The addresses of the SecureCart demo.
struct SecureCart {
    alb_public: [IpAddr; 2],
    alb_private: [IpAddr; 2],
    tasks: [IpAddr; 3],
    db: IpAddr,
    bastion_public: IpAddr,
    bastion: IpAddr,
}

fn literal(s: &str) -> IpAddr {
    s.parse().expect("a literal address")
}

impl SecureCart {
    fn hosts() -> SecureCart {
        let ip = literal;
        SecureCart {
            alb_public: [ip("203.0.113.10"), ip("203.0.113.20")],
            alb_private: [ip("10.0.1.10"), ip("10.0.2.10")],
            tasks: [ip("10.0.11.10"), ip("10.0.11.11"), ip("10.0.12.10")],
            db: ip("10.0.21.10"),
            bastion_public: ip("203.0.113.30"),
            bastion: ip("10.0.1.20"),
        }
    }

    /// Customer `i` of the first window: an HTTPS page through ALB `i % 2`, which asks
    /// task `i % 3`, which queries the database.
    fn customer_order(&self, t: &mut Timeline, rng: &mut SplitMix64, i: u64) {
        let customer = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 10 + (i % 40) as u8));
        let lb = (i % 2) as usize;
        let cport = rng.range(49152, 65535) as u16;
        // The customer's HTTPS session with the ALB (TLS handshake, a page).
        t.tcp_session(
            customer,
            cport,
            self.alb_public[lb],
            443,
            &[(517, 1460), (126, 51), (420, 1380)],
            Close::Open,
        );
        // The ALB's request to a task, and the task's query to the database.
        let task = self.tasks[(i % 3) as usize];
        let lport = rng.range(1024, 65535) as u16;
        if lport < 32768 {
            self.alb_syn_ack_dropped(t, lb, lport, task);
        } else {
            self.alb_to_task(t, rng, lb, lport, task);
        }
        let alb = self.alb_public[lb];
        t.segment(alb, 443, customer, cport, PSH_ACK, 9000, 2000, 1200);
        t.segment(customer, cport, alb, 443, FIN_ACK, 2000, 10200, 0);
        t.segment(alb, 443, customer, cport, FIN_ACK, 10200, 2001, 0);
    }

    /// The teaching point: the SYN-ACK to a port below 32768 is dropped by the app
    /// NACL, so the ALB retries its SYN and the task answers each time.
    fn alb_syn_ack_dropped(&self, t: &mut Timeline, lb: usize, lport: u16, task: IpAddr) {
        let alb = self.alb_private[lb];
        for _ in 0..3 {
            t.segment(alb, lport, task, 8080, tcp_flags::SYN, 1, 0, 0);
            t.segment(task, 8080, alb, lport, SYN_ACK, 9, 2, 0);
            t.advance_ms(1000);
        }
    }

    /// The ALB's request reaches the task, which queries the database and answers.
    fn alb_to_task(
        &self,
        t: &mut Timeline,
        rng: &mut SplitMix64,
        lb: usize,
        lport: u16,
        task: IpAddr,
    ) {
        let alb = self.alb_private[lb];
        t.tcp_session(alb, lport, task, 8080, &[(380, 0)], Close::Open);
        let dport = rng.range(32768, 60999) as u16;
        t.tcp_session(
            task,
            dport,
            self.db,
            5432,
            &[(210, 640), (90, 1200)],
            Close::Fin,
        );
        // The task's answer to the ALB, then the ALB's answer to the customer.
        t.segment(task, 8080, alb, lport, PSH_ACK, 5001, 1381, 1400);
        t.segment(alb, lport, task, 8080, FIN_ACK, 1381, 6401, 0);
        t.segment(task, 8080, alb, lport, FIN_ACK, 6401, 1382, 0);
    }

    /// A customer on IPv6.
    fn ipv6_customer(&self, t: &mut Timeline) {
        t.at(SECURECART_DEMO_START + 95);
        t.tcp_session(
            literal("2001:db8:5ca1::77"),
            51234,
            literal("2600:1f18:4a3:6d01::10"),
            443,
            &[(517, 1460), (300, 4000)],
            Close::Fin,
        );
    }

    /// An app task resolves and calls a payment API on the internet.
    fn payment_call(&self, t: &mut Timeline) {
        t.at(SECURECART_DEMO_START + 130);
        t.udp_exchange(self.tasks[0], 40111, literal("10.0.0.2"), 53, 40, 120);
        t.tcp_session(
            self.tasks[0],
            44321,
            literal("192.0.2.80"),
            443,
            &[(517, 2900), (700, 300)],
            Close::Fin,
        );
    }

    /// The office: SSH to the bastion, then from the bastion to a task.
    fn office_ssh(&self, t: &mut Timeline) {
        t.at(SECURECART_DEMO_START + 200);
        t.tcp_session(
            literal("198.51.100.25"),
            50522,
            self.bastion_public,
            22,
            &[(40, 40), (120, 680), (60, 60)],
            Close::Open,
        );
        t.tcp_session(
            self.bastion,
            41022,
            self.tasks[1],
            22,
            &[(40, 40), (80, 900)],
            Close::Fin,
        );
    }

    /// What the rules refuse from the internet: SSH on the bastion, the blocked
    /// scraper, a ping to the ALB.
    fn refused_from_the_internet(&self, t: &mut Timeline) {
        // Someone on the internet tries SSH on the bastion: the public NACL denies it.
        t.at(SECURECART_DEMO_START + 260);
        t.tcp_syn_attempt(literal("192.0.2.66"), 61001, self.bastion_public, 22, 2);
        // The blocked scraper (NACL rule 90) tries the shop.
        t.at(SECURECART_DEMO_START + 300);
        t.tcp_syn_attempt(literal("192.0.2.203"), 40404, self.alb_public[0], 443, 1);
        // A ping to the ALB: its security group allows only ICMP 3/4 (path MTU).
        t.at(SECURECART_DEMO_START + 330);
        t.ping(literal("192.0.2.50"), self.alb_public[1], 0x4d2, 4, false);
    }

    /// The second window: a few more customers, the office session ends.
    fn second_window(&self, t: &mut Timeline, rng: &mut SplitMix64) {
        for i in 0..6u64 {
            t.at(SECURECART_DEMO_START + 610 + i * 15);
            let customer = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 100 + i as u8));
            let cport = rng.range(49152, 65535) as u16;
            t.tcp_session(
                customer,
                cport,
                self.alb_public[(i % 2) as usize],
                443,
                &[(517, 1460), (300, 2800)],
                Close::Fin,
            );
        }
        t.at(SECURECART_DEMO_START + 700);
        let office = literal("198.51.100.25");
        t.segment(
            office,
            50522,
            self.bastion_public,
            22,
            FIN_ACK,
            1300,
            9000,
            0,
        );
        t.segment(
            self.bastion_public,
            22,
            office,
            50522,
            FIN_ACK,
            9000,
            1301,
            0,
        );
    }
}

const PSH_ACK: u8 = tcp_flags::PSH | tcp_flags::ACK;
const FIN_ACK: u8 = tcp_flags::FIN | tcp_flags::ACK;
const SYN_ACK: u8 = tcp_flags::SYN | tcp_flags::ACK;

/// The traffic of `pcaps/lesson-stateful.pcap`, for `rulesets/lesson-stateful.toml`:
/// an HTTP session from a customer, four pings, and a connection the server opens
/// itself (see the ruleset's comments for what each shows).
pub fn lesson_stateful() -> Timeline {
    let ip = |s: &str| -> IpAddr { s.parse().expect("a literal address") };
    let (customer, server, server_private) =
        (ip("192.0.2.10"), ip("203.0.113.50"), ip("10.1.1.10"));
    let mut t = Timeline::new(SECURECART_DEMO_START);
    t.tcp_session(
        customer,
        51000,
        server,
        80,
        &[(420, 1460), (0, 1460), (380, 900)],
        Close::Fin,
    );
    t.advance_ms(2000);
    t.ping(customer, server, 0x2a, 4, true);
    t.advance_ms(2000);
    t.tcp_syn_attempt(server_private, 40100, ip("192.0.2.99"), 443, 2);
    t
}
