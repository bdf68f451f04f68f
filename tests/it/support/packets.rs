//! Packet builders for the engine-level suites: packets built field by field, with
//! the IP lengths of the usual tools (40/60-byte TCP segments, 48/68-byte UDP datagrams,
//! 84/104-byte pings), and bursts of one flow for the flow-log examples.

use std::net::IpAddr;
use vpcgate::wire::packet::{Fragment, Packet};

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A TCP segment with `flags`; 40 IP bytes (IPv4) or 60 (IPv6) unless resized.
pub fn tcp(src: &str, sport: u16, dst: &str, dport: u16, flags: u8) -> Packet {
    let v6 = ip(src).is_ipv6();
    Packet {
        src: ip(src),
        dst: ip(dst),
        protocol: 6,
        src_port: sport,
        dst_port: dport,
        icmp_type: 0,
        icmp_code: 0,
        icmp_id: 0,
        tcp_flags: flags,
        ip_len: if v6 { 60 } else { 40 },
        fragment: Fragment::None,
    }
}

pub fn udp(src: &str, sport: u16, dst: &str, dport: u16) -> Packet {
    Packet {
        protocol: 17,
        tcp_flags: 0,
        ip_len: if ip(src).is_ipv6() { 68 } else { 48 },
        ..tcp(src, sport, dst, dport, 0)
    }
}

/// ICMP (IPv4) or ICMPv6 (IPv6) with a type, a code and an echo id (0 for errors).
pub fn icmp(src: &str, dst: &str, icmp_type: u8, code: u8, id: u16) -> Packet {
    let v6 = ip(src).is_ipv6();
    Packet {
        protocol: if v6 { 58 } else { 1 },
        src_port: 0,
        dst_port: 0,
        icmp_type,
        icmp_code: code,
        icmp_id: id,
        tcp_flags: 0,
        ip_len: if v6 { 104 } else { 84 },
        ..tcp(src, 0, dst, 0, 0)
    }
}

/// An echo request (ICMP 8, ICMPv6 128) of the default `ping`: 84 IP bytes for IPv4.
pub fn ping(src: &str, dst: &str, id: u16) -> Packet {
    icmp(src, dst, if ip(src).is_ipv6() { 128 } else { 8 }, 0, id)
}

/// An echo reply (ICMP 0, ICMPv6 129).
pub fn pong(src: &str, dst: &str, id: u16) -> Packet {
    icmp(src, dst, if ip(src).is_ipv6() { 129 } else { 0 }, 0, id)
}

/// A packet of another IP protocol (GRE 47, ESP 50…): no ports.
pub fn proto(src: &str, dst: &str, protocol: u8) -> Packet {
    Packet {
        protocol,
        ip_len: 100,
        ..tcp(src, 0, dst, 0, 0)
    }
}

pub fn sized(p: Packet, ip_len: u32) -> Packet {
    Packet { ip_len, ..p }
}

/// The first fragment of `p` (offset 0, carries the ports), IP id `id`.
pub fn first_fragment(p: Packet, id: u32) -> Packet {
    Packet {
        fragment: Fragment::First { id },
        ..p
    }
}

/// A later fragment of `p` (offset > 0): no L4 header, so no ports or flags.
pub fn later_fragment(p: Packet, id: u32) -> Packet {
    Packet {
        src_port: 0,
        dst_port: 0,
        tcp_flags: 0,
        fragment: Fragment::Later { id },
        ..p
    }
}

/// `n` packets of one direction of one flow, `bytes` IP bytes in all, the first at second
/// `first` and the last at second `last`, evenly between; the first and last packets may
/// carry other TCP flags than the rest.
#[derive(Clone, Copy)]
pub struct Burst {
    pkt: Packet,
    n: u64,
    bytes: u64,
    first: u64,
    last: u64,
    opening: Option<u8>,
    closing: Option<u8>,
}

pub fn burst(pkt: Packet, n: u64, bytes: u64, first: u64, last: u64) -> Burst {
    Burst {
        pkt,
        n,
        bytes,
        first,
        last,
        opening: None,
        closing: None,
    }
}

impl Burst {
    pub fn opening(self, flags: u8) -> Burst {
        Burst {
            opening: Some(flags),
            ..self
        }
    }
    pub fn closing(self, flags: u8) -> Burst {
        Burst {
            closing: Some(flags),
            ..self
        }
    }
    /// (second, packet) of each packet: sizes differ by at most one byte.
    pub fn packets(&self) -> Vec<(u64, Packet)> {
        (0..self.n)
            .map(|i| {
                let t = if self.n == 1 {
                    self.first
                } else {
                    self.first + (self.last - self.first) * i / (self.n - 1)
                };
                let size = self.bytes / self.n + u64::from(i < self.bytes % self.n);
                let mut p = sized(self.pkt, size as u32);
                if i == 0 {
                    p.tcp_flags = self.opening.unwrap_or(p.tcp_flags);
                }
                if i == self.n - 1 {
                    p.tcp_flags = self.closing.unwrap_or(p.tcp_flags);
                }
                (t, p)
            })
            .collect()
    }
}
