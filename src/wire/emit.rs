//! Writing frames: Ethernet II, IPv4 or IPv6, then TCP, UDP, ICMP/ICMPv6 or any other
//! protocol, with every length and checksum filled in.
//!
//! The one frame builder of the crate: the demo capture, the test fixtures and the
//! teaching captures are built with it (the benchmark generator in
//! [`crate::synth::bulk`] writes its headers in place for speed, with the same
//! [`checksum`](super::checksum) functions).
//!
//! ```
//! use vpcgate::wire::emit::{frame, Ip, L4};
//! let ip = Ip::new("198.51.100.7".parse().unwrap(), "10.0.1.10".parse().unwrap());
//! let syn = L4::Tcp { sport: 50000, dport: 443, seq: 1, ack: 0, flags: 2, window: 64240 };
//! let bytes = frame(&Default::default(), &ip, &syn, &[]);
//! assert_eq!(bytes.len(), 14 + 20 + 20);
//! let p = vpcgate::wire::packet::parse(vpcgate::wire::packet::linktype::ETHERNET, &bytes).unwrap();
//! assert_eq!((p.dst_port, p.tcp_flags), (443, 2));
//! ```

use super::checksum::{finish, pseudo_header, sum};
use std::net::IpAddr;

/// The Ethernet II header's addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Eth {
    pub dst: [u8; 6],
    pub src: [u8; 6],
}

impl Default for Eth {
    /// Two locally administered addresses, 02:00:00:00:00:02 ← 02:00:00:00:00:01.
    fn default() -> Eth {
        Eth {
            dst: [0x02, 0, 0, 0, 0, 0x02],
            src: [0x02, 0, 0, 0, 0, 0x01],
        }
    }
}

/// The IP header's fields a frame chooses; the family follows the addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ip {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// TTL (IPv4) or hop limit (IPv6).
    pub ttl: u8,
    /// IPv4 identification.
    pub id: u16,
    /// IPv4 "don't fragment".
    pub dont_fragment: bool,
    /// IPv6 flow label (20 bits).
    pub flow_label: u32,
}

impl Ip {
    /// TTL 64, identification 0, don't fragment, flow label 0.
    pub fn new(src: IpAddr, dst: IpAddr) -> Ip {
        Ip {
            src,
            dst,
            ttl: 64,
            id: 0,
            dont_fragment: true,
            flow_label: 0,
        }
    }
}

/// The layer-4 header. Its protocol number follows the variant (and, for ICMP, the
/// family: ICMP for IPv4, ICMPv6 for IPv6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L4 {
    /// TCP with no options; `ack` is written only when `flags` has ACK.
    Tcp {
        sport: u16,
        dport: u16,
        seq: u32,
        ack: u32,
        flags: u8,
        window: u16,
    },
    Udp {
        sport: u16,
        dport: u16,
    },
    /// ICMP or ICMPv6: type, code, and the 4 bytes after the checksum (id and
    /// sequence of an echo, unused bytes of an error).
    Icmp {
        icmp_type: u8,
        code: u8,
        rest: [u8; 4],
    },
    /// Any other protocol: the payload follows the IP header.
    Other {
        protocol: u8,
    },
}

impl L4 {
    /// An echo request or reply (ICMP 8/0, ICMPv6 128/129 for `v6`).
    pub fn echo(v6: bool, reply: bool, id: u16, seq: u16) -> L4 {
        let icmp_type = match (v6, reply) {
            (false, false) => 8,
            (false, true) => 0,
            (true, false) => 128,
            (true, true) => 129,
        };
        let mut rest = [0; 4];
        rest[..2].copy_from_slice(&id.to_be_bytes());
        rest[2..].copy_from_slice(&seq.to_be_bytes());
        L4::Icmp {
            icmp_type,
            code: 0,
            rest,
        }
    }

    fn protocol(&self, v6: bool) -> u8 {
        match self {
            L4::Tcp { .. } => 6,
            L4::Udp { .. } => 17,
            L4::Icmp { .. } if v6 => 58,
            L4::Icmp { .. } => 1,
            L4::Other { protocol } => *protocol,
        }
    }

    fn header_len(&self) -> usize {
        match self {
            L4::Tcp { .. } => 20,
            L4::Udp { .. } | L4::Icmp { .. } => 8,
            L4::Other { .. } => 0,
        }
    }
}

/// The bytes of one Ethernet frame. Panics only if the addresses of `ip` are of
/// different families (a bug in the caller, never input data).
pub fn frame(eth: &Eth, ip: &Ip, l4: &L4, payload: &[u8]) -> Vec<u8> {
    let v6 = match (ip.src, ip.dst) {
        (IpAddr::V4(_), IpAddr::V4(_)) => false,
        (IpAddr::V6(_), IpAddr::V6(_)) => true,
        _ => panic!("wire::emit::frame: source and destination of different families"),
    };
    let protocol = l4.protocol(v6);
    let l4_len = l4.header_len() + payload.len();
    let mut out = Vec::with_capacity(14 + 40 + l4_len);
    out.extend_from_slice(&eth.dst);
    out.extend_from_slice(&eth.src);
    out.extend_from_slice(if v6 { &[0x86, 0xdd] } else { &[0x08, 0x00] });
    write_ip(&mut out, ip, protocol, l4_len);
    let start = out.len();
    match *l4 {
        L4::Tcp {
            sport,
            dport,
            seq,
            ack,
            flags,
            window,
        } => {
            out.extend_from_slice(&sport.to_be_bytes());
            out.extend_from_slice(&dport.to_be_bytes());
            out.extend_from_slice(&seq.to_be_bytes());
            let ack = if flags & crate::wire::packet::tcp_flags::ACK != 0 {
                ack
            } else {
                0
            };
            out.extend_from_slice(&ack.to_be_bytes());
            out.extend_from_slice(&[5 << 4, flags]);
            out.extend_from_slice(&window.to_be_bytes());
            out.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
        }
        L4::Udp { sport, dport } => {
            out.extend_from_slice(&sport.to_be_bytes());
            out.extend_from_slice(&dport.to_be_bytes());
            out.extend_from_slice(&(l4_len as u16).to_be_bytes());
            out.extend_from_slice(&[0, 0]);
        }
        L4::Icmp {
            icmp_type,
            code,
            rest,
        } => {
            out.extend_from_slice(&[icmp_type, code, 0, 0]);
            out.extend_from_slice(&rest);
        }
        L4::Other { .. } => {}
    }
    out.extend_from_slice(payload);
    // The layer-4 checksum over the header and payload, with the pseudo-header where
    // the protocol has one.
    let at = match l4 {
        L4::Tcp { .. } => Some(16),
        L4::Udp { .. } => Some(6),
        L4::Icmp { .. } => Some(2),
        L4::Other { .. } => None,
    };
    if let Some(at) = at {
        let base = match l4 {
            L4::Icmp { .. } if !v6 => 0,
            _ => pseudo_header(ip.src, ip.dst, protocol, l4_len),
        };
        let mut c = finish(sum(&out[start..], base));
        // UDP: a computed 0 is sent as 0xffff (0 means "no checksum", RFC 768).
        if matches!(l4, L4::Udp { .. }) && c == 0 {
            c = 0xffff;
        }
        out[start + at..start + at + 2].copy_from_slice(&c.to_be_bytes());
    }
    out
}

/// Appends the IP header of a packet with `l4_len` bytes after it.
fn write_ip(out: &mut Vec<u8>, ip: &Ip, protocol: u8, l4_len: usize) {
    match (ip.src, ip.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let start = out.len();
            out.extend_from_slice(&[0x45, 0]);
            out.extend_from_slice(&((20 + l4_len) as u16).to_be_bytes());
            out.extend_from_slice(&ip.id.to_be_bytes());
            out.extend_from_slice(&[if ip.dont_fragment { 0x40 } else { 0 }, 0]);
            out.extend_from_slice(&[ip.ttl, protocol, 0, 0]);
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
            let c = finish(sum(&out[start..], 0));
            out[start + 10..start + 12].copy_from_slice(&c.to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let label = ip.flow_label & 0xf_ffff;
            out.extend_from_slice(&(0x6000_0000u32 | label).to_be_bytes());
            out.extend_from_slice(&(l4_len as u16).to_be_bytes());
            out.extend_from_slice(&[protocol, ip.ttl]);
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
        }
        _ => unreachable!("checked by the caller"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::packet::{linktype, parse};

    fn ips(v6: bool) -> Ip {
        if v6 {
            Ip::new(
                "2001:db8::7".parse().unwrap(),
                "2600:1f18:4a3:6d01::10".parse().unwrap(),
            )
        } else {
            Ip::new(
                "198.51.100.7".parse().unwrap(),
                "10.0.1.10".parse().unwrap(),
            )
        }
    }

    /// Every checksum of a frame verifies: the IPv4 header sums to all ones, and so does
    /// the layer-4 segment with its pseudo-header (RFC 1071 §1).
    fn verify(bytes: &[u8], v6: bool, protocol: u8) {
        let (ip_len, src, dst) = if v6 {
            (40, &bytes[22..38], &bytes[38..54])
        } else {
            assert_eq!(finish(sum(&bytes[14..34], 0)), 0, "IPv4 header checksum");
            (20, &bytes[26..30], &bytes[30..34])
        };
        let l4 = &bytes[14 + ip_len..];
        let base = if protocol == 1 {
            0
        } else {
            sum(src, 0) + sum(dst, 0) + protocol as u32 + l4.len() as u32
        };
        assert_eq!(
            finish(sum(l4, base)),
            0,
            "layer-4 checksum of proto {protocol}"
        );
    }

    #[test]
    fn every_kind_parses_back_and_its_checksums_verify() {
        for v6 in [false, true] {
            let ip = ips(v6);
            for (l4, proto) in [
                (
                    L4::Tcp {
                        sport: 50000,
                        dport: 443,
                        seq: 7,
                        ack: 9,
                        flags: 0x12,
                        window: 64240,
                    },
                    6,
                ),
                (
                    L4::Udp {
                        sport: 5353,
                        dport: 53,
                    },
                    17,
                ),
                (L4::echo(v6, false, 0x0abc, 3), if v6 { 58 } else { 1 }),
                (L4::Other { protocol: 47 }, 47),
            ] {
                for payload in [&[][..], &[1, 2, 3][..], &[0x61; 100][..]] {
                    let b = frame(&Eth::default(), &ip, &l4, payload);
                    if proto != 47 {
                        verify(&b, v6, proto);
                    }
                    let p = parse(linktype::ETHERNET, &b).unwrap();
                    assert_eq!((p.src, p.dst, p.protocol), (ip.src, ip.dst, proto));
                    assert_eq!(p.ip_len as usize, b.len() - 14);
                    match l4 {
                        L4::Tcp { flags, .. } => {
                            assert_eq!((p.src_port, p.dst_port, p.tcp_flags), (50000, 443, flags))
                        }
                        L4::Udp { .. } => assert_eq!((p.src_port, p.dst_port), (5353, 53)),
                        L4::Icmp { .. } => {
                            assert_eq!((p.icmp_type, p.icmp_id), (if v6 { 128 } else { 8 }, 0x0abc))
                        }
                        L4::Other { .. } => {}
                    }
                }
            }
        }
    }
}
