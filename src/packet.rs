//! Link-layer frames → a small [`Packet`] view of the fields the data plane needs.
//! (Skeleton: types fixed here; the parser is being written.)

use std::net::IpAddr;

/// Capture time in nanoseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub u64);

impl Timestamp {
    pub fn from_secs_nanos(secs: u64, nanos: u32) -> Timestamp {
        Timestamp(secs.saturating_mul(1_000_000_000).saturating_add(nanos as u64))
    }
    /// Whole seconds (floor).
    pub fn secs(self) -> u64 {
        self.0 / 1_000_000_000
    }
    pub fn subsec_nanos(self) -> u32 {
        (self.0 % 1_000_000_000) as u32
    }
}

/// pcap LINKTYPE_ values the parser understands.
pub mod linktype {
    pub const NULL: u32 = 0; // BSD loopback, host-endian u32 family
    pub const ETHERNET: u32 = 1;
    pub const RAW: u32 = 101;
    pub const LOOP: u32 = 108; // OpenBSD loopback, big-endian family
    pub const LINUX_SLL: u32 = 113;
    pub const IPV4: u32 = 228;
    pub const IPV6: u32 = 229;
    pub const LINUX_SLL2: u32 = 276;
    /// DLT_RAW as some systems number it (12 / 14).
    pub const RAW_ALT1: u32 = 12;
    pub const RAW_ALT2: u32 = 14;
}

/// Fragment information of an IP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fragment {
    /// Not a fragment.
    None,
    /// Offset 0 with more fragments to come: carries the L4 header.
    First { id: u32 },
    /// Offset > 0: no L4 header; takes the verdict of its first fragment.
    Later { id: u32 },
}

/// TCP flag bits as in the TCP header.
pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
}

/// What the data plane needs from one IP packet. Built by [`parse`]; never panics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet {
    /// Outer IP header addresses.
    pub src: IpAddr,
    pub dst: IpAddr,
    /// Upper-layer protocol (after IPv6 extension headers).
    pub protocol: u8,
    /// TCP/UDP ports; 0 for other protocols, and for a non-first fragment.
    pub src_port: u16,
    pub dst_port: u16,
    /// ICMP / ICMPv6 type and code (0 for other protocols).
    pub icmp_type: u8,
    pub icmp_code: u8,
    /// ICMP echo identifier (echo request/reply, both families); 0 for other ICMP.
    pub icmp_id: u16,
    /// TCP flags byte (0 for non-TCP).
    pub tcp_flags: u8,
    /// IP bytes: the IP header's total length (IPv4) or 40 + payload length (IPv6),
    /// which may exceed the captured bytes when the snaplen cut the packet.
    pub ip_len: u32,
    pub fragment: Fragment,
}

impl Packet {
    /// True when the L4 ports (or ICMP type/code) are known: false only for a
    /// non-first fragment.
    pub fn ports_known(&self) -> bool {
        !matches!(self.fragment, Fragment::Later { .. })
    }
}
