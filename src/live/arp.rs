//! ARP (RFC 826) for Ethernet and IPv4: reading a request, writing a request or a reply.
//!
//! Only what the VPC router needs: the 28-byte Ethernet/IPv4 form. No I/O, no state.
//!
//! ```
//! use vpcgate::live::arp::{self, Arp, Op};
//! let req = arp::frame(&Arp {
//!     op: Op::Request,
//!     sender_mac: [2, 0, 0, 0, 0, 1],
//!     sender_ip: "10.0.1.10".parse().unwrap(),
//!     target_mac: [0; 6],
//!     target_ip: "10.0.1.1".parse().unwrap(),
//! });
//! let a = arp::parse(&req).unwrap();
//! assert_eq!(a.op, Op::Request);
//! assert_eq!(a.target_ip, "10.0.1.1".parse::<std::net::Ipv4Addr>().unwrap());
//! ```

use std::net::Ipv4Addr;

/// The EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// Ethernet header plus the ARP body for Ethernet/IPv4.
pub const FRAME_LEN: usize = 14 + 28;

/// Request or reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Request,
    Reply,
}

/// One ARP message for Ethernet and IPv4.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arp {
    pub op: Op,
    pub sender_mac: [u8; 6],
    pub sender_ip: Ipv4Addr,
    pub target_mac: [u8; 6],
    pub target_ip: Ipv4Addr,
}

/// What can be wrong with an ARP frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArpError {
    /// Fewer than [`FRAME_LEN`] bytes.
    Truncated,
    /// Not Ethernet (1) / IPv4 (0x0800) with 6- and 4-byte addresses.
    NotEthernetIpv4,
    /// An operation other than request (1) or reply (2).
    UnknownOp(u16),
}

impl ArpError {
    /// A short name, for counters.
    pub fn reason(self) -> &'static str {
        match self {
            ArpError::Truncated => "arp-truncated",
            ArpError::NotEthernetIpv4 => "arp-not-ethernet-ipv4",
            ArpError::UnknownOp(_) => "arp-unknown-op",
        }
    }
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn mac_at(b: &[u8], at: usize) -> [u8; 6] {
    let mut m = [0; 6];
    m.copy_from_slice(&b[at..at + 6]);
    m
}

fn ip_at(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

/// Reads the ARP message of an Ethernet frame (the EtherType is not checked here).
/// Never panics.
pub fn parse(frame: &[u8]) -> Result<Arp, ArpError> {
    if frame.len() < FRAME_LEN {
        return Err(ArpError::Truncated);
    }
    let a = &frame[14..FRAME_LEN];
    if be16(a, 0) != 1 || be16(a, 2) != 0x0800 || a[4] != 6 || a[5] != 4 {
        return Err(ArpError::NotEthernetIpv4);
    }
    let op = match be16(a, 6) {
        1 => Op::Request,
        2 => Op::Reply,
        n => return Err(ArpError::UnknownOp(n)),
    };
    Ok(Arp {
        op,
        sender_mac: mac_at(a, 8),
        sender_ip: ip_at(a, 14),
        target_mac: mac_at(a, 18),
        target_ip: ip_at(a, 24),
    })
}

/// The Ethernet frame of `arp`: a request is broadcast, a reply goes to the target's MAC;
/// the Ethernet source is the sender's MAC.
pub fn frame(arp: &Arp) -> Vec<u8> {
    let mut f = Vec::with_capacity(FRAME_LEN);
    match arp.op {
        Op::Request => f.extend_from_slice(&[0xff; 6]),
        Op::Reply => f.extend_from_slice(&arp.target_mac),
    }
    f.extend_from_slice(&arp.sender_mac);
    f.extend_from_slice(&ETHERTYPE_ARP.to_be_bytes());
    f.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4]);
    f.extend_from_slice(&(if arp.op == Op::Request { 1u16 } else { 2 }).to_be_bytes());
    f.extend_from_slice(&arp.sender_mac);
    f.extend_from_slice(&arp.sender_ip.octets());
    f.extend_from_slice(&arp.target_mac);
    f.extend_from_slice(&arp.target_ip.octets());
    f
}

/// The reply to `request` saying that `ip_owner_mac` has the requested address.
pub fn reply_to(request: &Arp, ip_owner_mac: [u8; 6]) -> Arp {
    Arp {
        op: Op::Reply,
        sender_mac: ip_owner_mac,
        sender_ip: request.target_ip,
        target_mac: request.sender_mac,
        target_ip: request.sender_ip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request as Linux sends it (`arping -I eth0 10.0.1.1` from 10.0.1.10).
    const REQUEST: [u8; 42] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x11, 0x22, 0x33, 0x44, 0x55, 0x08, 0x06, //
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, //
        0x02, 0x11, 0x22, 0x33, 0x44, 0x55, 10, 0, 1, 10, //
        0, 0, 0, 0, 0, 0, 10, 0, 1, 1,
    ];

    #[test]
    fn golden_request_reads_and_writes_back() {
        let a = parse(&REQUEST).unwrap();
        assert_eq!(a.op, Op::Request);
        assert_eq!(a.sender_ip, Ipv4Addr::new(10, 0, 1, 10));
        assert_eq!(a.target_ip, Ipv4Addr::new(10, 0, 1, 1));
        assert_eq!(frame(&a), REQUEST.to_vec());
    }

    #[test]
    fn a_reply_swaps_the_sides() {
        let a = parse(&REQUEST).unwrap();
        let r = reply_to(&a, [2, 9, 9, 9, 9, 9]);
        let f = frame(&r);
        assert_eq!(&f[0..6], &[0x02, 0x11, 0x22, 0x33, 0x44, 0x55]);
        let back = parse(&f).unwrap();
        assert_eq!(back.op, Op::Reply);
        assert_eq!(back.sender_ip, Ipv4Addr::new(10, 0, 1, 1));
        assert_eq!(back.sender_mac, [2, 9, 9, 9, 9, 9]);
        assert_eq!(back.target_ip, Ipv4Addr::new(10, 0, 1, 10));
    }

    #[test]
    fn short_and_foreign_frames_are_errors() {
        for n in 0..REQUEST.len() {
            assert_eq!(parse(&REQUEST[..n]), Err(ArpError::Truncated));
        }
        let mut f = REQUEST;
        f[15] = 6;
        assert_eq!(parse(&f), Err(ArpError::NotEthernetIpv4));
        let mut f = REQUEST;
        f[21] = 9;
        assert_eq!(parse(&f), Err(ArpError::UnknownOp(9)));
    }
}
