//! Link-layer frames → a small [`Packet`] view of the fields the data plane needs.
//!
//! [`parse`] takes the pcap link type of a frame and its captured bytes, walks the
//! link header (Ethernet with any stack of VLAN tags, Linux cooked SLL/SLL2, raw IP,
//! BSD loopback), the outer IPv4 or IPv6 header (with options or extension headers)
//! and the start of the TCP, UDP, ICMP or ICMPv6 header, and returns a [`Packet`]:
//! addresses, protocol, ports, ICMP type/code/id, TCP flags, the IP length and the
//! fragment information. It never panics and never loops without bound: every length
//! comes from the frame and is checked before use.
//!
//! A packet that cannot be read gives a [`ParseError`]; its [`ParseError::reason`] is a
//! stable kebab-case word to count bad packets by in a summary. A valid frame that is
//! not IP (ARP, LLDP, STP…) is [`ParseError::NotIp`]: not malformed, just not ours.
//!
//! What it does not do: reassemble fragments (a later fragment carries only its
//! fragment id, see [`Fragment`]), look inside tunnels (the outer IP header is the
//! packet, as for a VPC), verify checksums, or read TCP options.
//!
//! ```
//! use vpcgate::wire::packet::{linktype, parse, Fragment};
//! // A raw IPv4 UDP packet 10.0.0.1:5353 -> 10.0.0.2:53 (IP header + UDP header only).
//! let frame = [
//!     0x45, 0, 0, 28, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
//!     0x14, 0xe9, 0, 53, 0, 8, 0, 0,
//! ];
//! let p = parse(linktype::RAW, &frame).unwrap();
//! assert_eq!((p.protocol, p.src_port, p.dst_port, p.ip_len), (17, 5353, 53, 28));
//! assert_eq!(p.fragment, Fragment::None);
//! // ARP is a valid frame, but not IP.
//! let arp = [0xffu8, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x08, 0x06];
//! assert!(parse(linktype::ETHERNET, &arp).unwrap_err().is_not_ip());
//! ```
//!
//! Why hand-written rather than etherparse: this is the per-packet hot path and the view
//! is small. etherparse's `SlicedPacket` rejects snaplen-cut packets and
//! `LaxSlicedPacket` costs 56–81 ns a packet (rust-ecosystem.md §1); neither reads the
//! ports of a first fragment, neither knows SLL2 or the loopback link types, and their
//! errors do not map one-to-one onto the reasons we count. The parser below is a few
//! hundred lines of bounds-checked slice reads, about 5–10 ns a packet.
#![deny(clippy::disallowed_methods, clippy::disallowed_types)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub use crate::time::{Timestamp, NANOS_PER_SEC};

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
    /// which may exceed the captured bytes when the snaplen cut the packet. A length
    /// field of 0 (TSO / BIG TCP super-frames, IPv6 jumbograms) gives the captured length.
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

/// A short human name of a pcap link type, for messages such as "link type 127
/// (IEEE 802.11 radiotap) is not supported". `None` for numbers not listed here.
pub fn link_type_name(link_type: u32) -> Option<&'static str> {
    Some(match link_type {
        0 => "BSD loopback",
        1 => "Ethernet",
        6 => "IEEE 802.5 Token Ring",
        7 => "ARCNET",
        8 => "SLIP",
        9 => "PPP",
        10 => "FDDI",
        12 | 14 | 101 => "raw IP",
        50 => "PPP in HDLC framing",
        51 => "PPPoE",
        104 => "Cisco HDLC",
        105 => "IEEE 802.11",
        107 => "Frame Relay",
        108 => "OpenBSD loopback",
        109 => "OpenBSD enc",
        113 => "Linux cooked (SLL)",
        114 => "LocalTalk",
        117 => "OpenBSD pflog",
        119 => "IEEE 802.11 Prism",
        122 => "IP over Fibre Channel",
        123 => "SunATM",
        127 => "IEEE 802.11 radiotap",
        129 => "ARCNET Linux",
        138 => "Apple IP over IEEE 1394",
        139 => "MTP2 with pseudo-header",
        140 => "MTP2",
        141 => "MTP3",
        142 => "SCCP",
        143 => "DOCSIS",
        144 => "Linux IrDA",
        163 => "IEEE 802.11 AVS",
        165 => "BACnet MS/TP",
        166 => "PPP with direction (pppd)",
        169 => "GPRS LLC",
        177 => "Linux LAPD",
        187 => "Bluetooth HCI H4",
        189 => "USB Linux",
        192 => "PPI",
        195 => "IEEE 802.15.4 with FCS",
        196 => "SITA",
        197 => "Endace ERF",
        201 => "Bluetooth HCI H4 with pseudo-header",
        204 => "PPP with direction",
        215 => "IEEE 802.15.4 non-ASK PHY",
        220 => "USB Linux mmapped",
        227 => "SocketCAN",
        228 => "raw IPv4",
        229 => "raw IPv6",
        230 => "IEEE 802.15.4 without FCS",
        231 => "D-Bus",
        235 => "DVB-CI",
        239 => "Netlink NFLOG",
        240 => "Netlink NETANALYZER",
        247 => "IP-over-InfiniBand",
        249 => "Linux netlink",
        253 => "Netlink",
        254 => "Bluetooth LE link layer",
        256 => "Bluetooth LE link layer with PHDR",
        263 => "Bluetooth Linux monitor",
        266 => "Linux netlink",
        276 => "Linux cooked v2 (SLL2)",
        281 => "DSA tag (Broadcom)",
        283 => "IEEE 802.15.4 TAP",
        _ => return None,
    })
}

/// Most VLAN tags (and LLC/SNAP headers) accepted in front of the IP header.
pub const MAX_LINK_TAGS: usize = 8;
/// Most IPv6 extension headers walked before giving up.
pub const MAX_IPV6_EXTENSIONS: usize = 16;

/// The header a [`ParseError::Truncated`] ran out of bytes in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layer {
    /// The link header, including VLAN tags and LLC/SNAP.
    Link,
    Ipv4,
    Ipv6,
    Ipv6Extension,
    Tcp,
    Udp,
    Icmp,
    Icmpv6,
}

impl Layer {
    fn name(self) -> &'static str {
        match self {
            Layer::Link => "link-layer",
            Layer::Ipv4 => "IPv4",
            Layer::Ipv6 => "IPv6",
            Layer::Ipv6Extension => "IPv6 extension",
            Layer::Tcp => "TCP",
            Layer::Udp => "UDP",
            Layer::Icmp => "ICMP",
            Layer::Icmpv6 => "ICMPv6",
        }
    }
}

/// What a valid non-IP frame carries instead of IP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NotIp {
    /// An Ethernet / SLL frame whose EtherType is neither IPv4, IPv6 nor a VLAN tag
    /// (ARP 0x0806, LLDP 0x88cc, MPLS 0x8847, PPPoE 0x8864…).
    EtherType(u16),
    /// An IEEE 802.3 frame with an 802.2 LLC header (STP, CDP…) that is not SNAP-encapsulated IP.
    Llc,
    /// A loopback (NULL / LOOP) frame whose address family is neither IPv4 nor IPv6.
    AddressFamily(u32),
}

/// Why an IPv4 header is impossible.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ipv4HeaderError {
    /// The version nibble is not 4 (in a frame whose link header said IPv4).
    Version { version: u8 },
    /// IHL below 5: the header cannot be shorter than 20 bytes.
    HeaderLength { ihl: u8 },
    /// The total length field is shorter than the header itself.
    TotalLength {
        total_length: u16,
        header_length: u16,
    },
}

/// Why an IPv6 extension header chain cannot be walked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ipv6ExtensionError {
    /// More than [`MAX_IPV6_EXTENSIONS`] extension headers.
    TooMany { limit: usize },
    /// An extension header ends beyond the IPv6 payload length.
    BeyondPayload {
        next_header: u8,
        offset: usize,
        header_length: usize,
        payload_end: usize,
    },
}

/// Why [`parse`] could not read a frame. Plain data, no strings: counting by
/// [`ParseError::reason`] costs nothing on the hot path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ParseError {
    /// A valid frame that does not carry IP. Not malformed.
    NotIp(NotIp),
    /// A pcap link type this parser does not read.
    UnsupportedLinkType {
        link_type: u32,
    },
    /// The captured bytes end inside a header we need: `offset` is where that header
    /// starts in the frame, `required` its length, `available` the bytes captured from
    /// `offset` (or up to the end of the IP packet, if that comes first).
    Truncated {
        layer: Layer,
        offset: usize,
        required: usize,
        available: usize,
    },
    /// More than [`MAX_LINK_TAGS`] VLAN tags or LLC/SNAP headers.
    TooManyLinkTags {
        limit: usize,
    },
    /// A raw-IP link type whose first nibble is neither 4 nor 6.
    BadIpVersion {
        link_type: u32,
        version: u8,
    },
    BadIpv4Header(Ipv4HeaderError),
    /// The version nibble is not 6 (in a frame whose link header said IPv6).
    BadIpv6Header {
        version: u8,
    },
    BadIpv6Extension(Ipv6ExtensionError),
}

impl ParseError {
    /// Every value [`ParseError::reason`] can return, for summaries that list all.
    pub const REASONS: &'static [&'static str] = &[
        "not-ip",
        "unsupported-link-type",
        "truncated-link-header",
        "too-many-link-tags",
        "bad-ip-version",
        "truncated-ipv4-header",
        "bad-ipv4-header",
        "truncated-ipv6-header",
        "bad-ipv6-header",
        "truncated-ipv6-extension",
        "bad-ipv6-extension",
        "truncated-tcp-header",
        "truncated-udp-header",
        "truncated-icmp-header",
        "truncated-icmpv6-header",
    ];

    /// A stable kebab-case word for counting bad packets by cause.
    pub fn reason(&self) -> &'static str {
        match self {
            ParseError::NotIp(_) => "not-ip",
            ParseError::UnsupportedLinkType { .. } => "unsupported-link-type",
            ParseError::Truncated { layer, .. } => match layer {
                Layer::Link => "truncated-link-header",
                Layer::Ipv4 => "truncated-ipv4-header",
                Layer::Ipv6 => "truncated-ipv6-header",
                Layer::Ipv6Extension => "truncated-ipv6-extension",
                Layer::Tcp => "truncated-tcp-header",
                Layer::Udp => "truncated-udp-header",
                Layer::Icmp => "truncated-icmp-header",
                Layer::Icmpv6 => "truncated-icmpv6-header",
            },
            ParseError::TooManyLinkTags { .. } => "too-many-link-tags",
            ParseError::BadIpVersion { .. } => "bad-ip-version",
            ParseError::BadIpv4Header(_) => "bad-ipv4-header",
            ParseError::BadIpv6Header { .. } => "bad-ipv6-header",
            ParseError::BadIpv6Extension(_) => "bad-ipv6-extension",
        }
    }

    /// True for a valid frame that is not IP: such frames are not "malformed".
    pub fn is_not_ip(&self) -> bool {
        matches!(self, ParseError::NotIp(_))
    }
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            ParseError::NotIp(NotIp::EtherType(t)) => {
                write!(f, "not an IP packet (EtherType 0x{t:04x})")
            }
            ParseError::NotIp(NotIp::Llc) => {
                write!(f, "not an IP packet (an IEEE 802.3 frame with an LLC header)")
            }
            ParseError::NotIp(NotIp::AddressFamily(af)) => {
                write!(f, "not an IP packet (loopback address family {af})")
            }
            ParseError::UnsupportedLinkType { link_type } => match link_type_name(link_type) {
                Some(name) => write!(f, "link type {link_type} ({name}) is not supported"),
                None => write!(f, "link type {link_type} is not supported"),
            },
            ParseError::Truncated { layer, offset, required, available } => write!(
                f,
                "the {} header at byte {offset} is cut off: {available} of its {required} bytes are present",
                layer.name()
            ),
            ParseError::TooManyLinkTags { limit } => {
                write!(f, "more than {limit} VLAN tags or LLC/SNAP headers in front of the IP header")
            }
            ParseError::BadIpVersion { link_type, version } => write!(
                f,
                "a raw IP frame (link type {link_type}) with IP version {version}, expected 4 or 6"
            ),
            ParseError::BadIpv4Header(Ipv4HeaderError::Version { version }) => {
                write!(f, "an IPv4 frame whose IP header says version {version}")
            }
            ParseError::BadIpv4Header(Ipv4HeaderError::HeaderLength { ihl }) => write!(
                f,
                "an IPv4 header length of {} bytes (IHL {ihl}), below the minimum of 20",
                u32::from(ihl) * 4
            ),
            ParseError::BadIpv4Header(Ipv4HeaderError::TotalLength { total_length, header_length }) => write!(
                f,
                "an IPv4 total length of {total_length} bytes, shorter than its own {header_length}-byte header"
            ),
            ParseError::BadIpv6Header { version } => {
                write!(f, "an IPv6 frame whose IP header says version {version}")
            }
            ParseError::BadIpv6Extension(Ipv6ExtensionError::TooMany { limit }) => {
                write!(f, "more than {limit} IPv6 extension headers")
            }
            ParseError::BadIpv6Extension(Ipv6ExtensionError::BeyondPayload {
                next_header,
                offset,
                header_length,
                payload_end,
            }) => write!(
                f,
                "the IPv6 extension header {next_header} at byte {offset} ({header_length} bytes) ends beyond the IPv6 payload, which ends at byte {payload_end}"
            ),
        }
    }
}

impl std::error::Error for ParseError {}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100; // IEEE 802.1Q
const ETHERTYPE_QINQ: u16 = 0x88a8; // IEEE 802.1ad
const ETHERTYPE_QINQ_OLD: u16 = 0x9100; // pre-standard QinQ
const IEEE_802_3_MAX_LEN: u16 = 1500;

const IPPROTO_ICMP: u8 = 1;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ICMPV6: u8 = 58;
// IPv6 extension headers walked by the parser (RFC 8200 §4, RFC 4302).
const IPV6_HOP_BY_HOP: u8 = 0;
const IPV6_ROUTING: u8 = 43;
const IPV6_FRAGMENT: u8 = 44;
const IPV6_AUTH: u8 = 51;
const IPV6_NO_NEXT: u8 = 59;
const IPV6_DEST_OPTS: u8 = 60;

// BSD loopback address families for IPv6 (NetBSD/OpenBSD, FreeBSD, Darwin).
const AF_INET: u32 = 2;
const AF_INET6_BSD: u32 = 24;
const AF_INET6_FREEBSD: u32 = 28;
const AF_INET6_DARWIN: u32 = 30;

#[inline(always)]
fn be16(b: &[u8], at: usize) -> Option<u16> {
    match b.get(at..at.checked_add(2)?) {
        Some(&[x, y]) => Some(u16::from_be_bytes([x, y])),
        _ => None,
    }
}

#[inline(always)]
fn truncated(layer: Layer, frame: &[u8], offset: usize, required: usize) -> ParseError {
    ParseError::Truncated {
        layer,
        offset,
        required,
        available: frame.len().saturating_sub(offset),
    }
}

/// Reads one captured frame of pcap link type `link_type` into a [`Packet`].
///
/// Never panics, whatever the bytes. A snaplen-cut packet (fewer bytes captured than
/// the IP length) is read as long as the headers we need are present; `ip_len` is
/// then still the length the IP header states.
pub fn parse(link_type: u32, frame: &[u8]) -> Result<Packet, ParseError> {
    match link_type {
        linktype::ETHERNET => match be16(frame, 12) {
            Some(ethertype) => after_ethertype(frame, ethertype, 14),
            None => Err(truncated(Layer::Link, frame, 0, 14)),
        },
        linktype::LINUX_SLL => match be16(frame, 14) {
            // packet type, ARPHRD type, address length, 8 address bytes, protocol.
            Some(protocol) => after_ethertype(frame, protocol, 16),
            None => Err(truncated(Layer::Link, frame, 0, 16)),
        },
        linktype::LINUX_SLL2 => match (be16(frame, 0), frame.len() >= 20) {
            // protocol, reserved, interface index, ARPHRD type, packet type,
            // address length, 8 address bytes.
            (Some(protocol), true) => after_ethertype(frame, protocol, 20),
            _ => Err(truncated(Layer::Link, frame, 0, 20)),
        },
        linktype::RAW | linktype::RAW_ALT1 | linktype::RAW_ALT2 => match frame.first() {
            Some(b) if b >> 4 == 4 => ipv4(frame, 0),
            Some(b) if b >> 4 == 6 => ipv6(frame, 0),
            Some(b) => Err(ParseError::BadIpVersion {
                link_type,
                version: b >> 4,
            }),
            None => Err(truncated(Layer::Link, frame, 0, 1)),
        },
        linktype::IPV4 => ipv4(frame, 0),
        linktype::IPV6 => ipv6(frame, 0),
        linktype::NULL | linktype::LOOP => {
            let Some(&[a, b, c, d]) = frame.get(..4) else {
                return Err(truncated(Layer::Link, frame, 0, 4));
            };
            let be = u32::from_be_bytes([a, b, c, d]);
            // NULL holds the family in the byte order of the host that wrote the
            // capture; a family is a small number, so reading it both ways is unambiguous.
            let family = if link_type == linktype::NULL {
                be.min(u32::from_le_bytes([a, b, c, d]))
            } else {
                be
            };
            match family {
                AF_INET => ipv4(frame, 4),
                AF_INET6_BSD | AF_INET6_FREEBSD | AF_INET6_DARWIN => ipv6(frame, 4),
                _ => Err(ParseError::NotIp(NotIp::AddressFamily(family))),
            }
        }
        _ => Err(ParseError::UnsupportedLinkType { link_type }),
    }
}

/// From an EtherType at `offset`: VLAN tags and LLC/SNAP, then IPv4 or IPv6.
#[inline(always)]
fn after_ethertype(
    frame: &[u8],
    mut ethertype: u16,
    mut offset: usize,
) -> Result<Packet, ParseError> {
    let mut tags = 0;
    loop {
        match ethertype {
            ETHERTYPE_IPV4 => return ipv4(frame, offset),
            ETHERTYPE_IPV6 => return ipv6(frame, offset),
            ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD => {
                // Tag control information, then the next EtherType.
                ethertype = be16(frame, offset + 2)
                    .ok_or_else(|| truncated(Layer::Link, frame, offset, 4))?;
                offset += 4;
            }
            0..=IEEE_802_3_MAX_LEN => {
                // An 802.3 length field: IP only as SNAP with a zero OUI (RFC 1042).
                match frame.get(offset..offset + 8) {
                    Some(&[0xaa, 0xaa, 0x03, 0, 0, 0, x, y]) => {
                        ethertype = u16::from_be_bytes([x, y])
                    }
                    _ => return Err(ParseError::NotIp(NotIp::Llc)),
                }
                offset += 8;
            }
            other => return Err(ParseError::NotIp(NotIp::EtherType(other))),
        }
        tags += 1;
        if tags > MAX_LINK_TAGS {
            return Err(ParseError::TooManyLinkTags {
                limit: MAX_LINK_TAGS,
            });
        }
    }
}

fn ipv4(frame: &[u8], offset: usize) -> Result<Packet, ParseError> {
    // The version first: a frame of the wrong family says so even when short.
    let version = frame.get(offset).map_or(4, |b| b >> 4);
    if version != 4 {
        return Err(ParseError::BadIpv4Header(Ipv4HeaderError::Version {
            version,
        }));
    }
    let Some(h) = frame.get(offset..offset + 20) else {
        return Err(truncated(Layer::Ipv4, frame, offset, 20));
    };
    let ihl = h[0] & 0x0f;
    if ihl < 5 {
        return Err(ParseError::BadIpv4Header(Ipv4HeaderError::HeaderLength {
            ihl,
        }));
    }
    let header_length = usize::from(ihl) * 4;
    let captured = frame.len() - offset;
    if captured < header_length {
        return Err(truncated(Layer::Ipv4, frame, offset, header_length));
    }
    let total_length = u16::from_be_bytes([h[2], h[3]]);
    let (ip_len, end) = if total_length == 0 {
        // Linux captures of TCP segmentation offload show a total length of 0 on
        // outgoing super-frames (Wireshark reads them the same way): the IP packet
        // is then what was captured.
        (captured as u32, frame.len())
    } else if usize::from(total_length) < header_length {
        return Err(ParseError::BadIpv4Header(Ipv4HeaderError::TotalLength {
            total_length,
            header_length: header_length as u16,
        }));
    } else {
        // Captured bytes beyond the total length are link-layer padding; fewer
        // captured bytes than the total length is a snaplen cut.
        (
            u32::from(total_length),
            offset + captured.min(usize::from(total_length)),
        )
    };
    let id = u32::from(u16::from_be_bytes([h[4], h[5]]));
    let flags_offset = u16::from_be_bytes([h[6], h[7]]);
    let fragment = if flags_offset & 0x1fff != 0 {
        Fragment::Later { id }
    } else if flags_offset & 0x2000 != 0 {
        Fragment::First { id }
    } else {
        Fragment::None
    };
    let mut p = Packet {
        src: IpAddr::V4(Ipv4Addr::new(h[12], h[13], h[14], h[15])),
        dst: IpAddr::V4(Ipv4Addr::new(h[16], h[17], h[18], h[19])),
        protocol: h[9],
        src_port: 0,
        dst_port: 0,
        icmp_type: 0,
        icmp_code: 0,
        icmp_id: 0,
        tcp_flags: 0,
        ip_len,
        fragment,
    };
    let start = offset + header_length;
    transport(&mut p, &frame[start..end], start)?;
    Ok(p)
}

fn ipv6(frame: &[u8], offset: usize) -> Result<Packet, ParseError> {
    let version = frame.get(offset).map_or(6, |b| b >> 4);
    if version != 6 {
        return Err(ParseError::BadIpv6Header { version });
    }
    let Some(h) = frame.get(offset..offset + 40) else {
        return Err(truncated(Layer::Ipv6, frame, offset, 40));
    };
    let payload_length = usize::from(u16::from_be_bytes([h[4], h[5]]));
    let mut next_header = h[6];
    let mut src = [0u8; 16];
    src.copy_from_slice(&h[8..24]);
    let mut dst = [0u8; 16];
    dst.copy_from_slice(&h[24..40]);
    let (ip_len, payload_end) = if payload_length == 0 && next_header != IPV6_NO_NEXT {
        // A jumbogram (RFC 2675) or a TSO super-frame: the length is what was captured.
        ((frame.len() - offset) as u32, usize::MAX)
    } else {
        (40 + payload_length as u32, offset + 40 + payload_length)
    };
    let end = payload_end.min(frame.len());
    let mut fragment = Fragment::None;
    let mut pos = offset + 40;
    let mut walked = 0;
    loop {
        let header_length = match next_header {
            IPV6_HOP_BY_HOP | IPV6_ROUTING | IPV6_DEST_OPTS => match frame.get(pos + 1) {
                Some(&len) if pos + 2 <= end => (usize::from(len) + 1) * 8,
                _ => 2,
            },
            IPV6_AUTH => match frame.get(pos + 1) {
                Some(&len) if pos + 2 <= end => (usize::from(len) + 2) * 4,
                _ => 2,
            },
            IPV6_FRAGMENT => 8,
            _ => break,
        };
        if walked == MAX_IPV6_EXTENSIONS {
            return Err(ParseError::BadIpv6Extension(Ipv6ExtensionError::TooMany {
                limit: MAX_IPV6_EXTENSIONS,
            }));
        }
        walked += 1;
        if pos + header_length > end {
            if pos + header_length > payload_end {
                return Err(ParseError::BadIpv6Extension(
                    Ipv6ExtensionError::BeyondPayload {
                        next_header,
                        offset: pos,
                        header_length,
                        payload_end,
                    },
                ));
            }
            return Err(ParseError::Truncated {
                layer: Layer::Ipv6Extension,
                offset: pos,
                required: header_length,
                available: end - pos,
            });
        }
        let e = &frame[pos..pos + header_length];
        if next_header == IPV6_FRAGMENT {
            let offset_more = u16::from_be_bytes([e[2], e[3]]);
            let id = u32::from_be_bytes([e[4], e[5], e[6], e[7]]);
            if offset_more >> 3 != 0 {
                // A later fragment: what follows is the middle of the payload.
                fragment = Fragment::Later { id };
                next_header = e[0];
                pos += header_length;
                break;
            } else if offset_more & 1 != 0 {
                fragment = Fragment::First { id };
            } // else an atomic fragment (RFC 6946): a whole packet.
        }
        next_header = e[0];
        pos += header_length;
    }
    let mut p = Packet {
        src: IpAddr::V6(Ipv6Addr::from(src)),
        dst: IpAddr::V6(Ipv6Addr::from(dst)),
        protocol: next_header,
        src_port: 0,
        dst_port: 0,
        icmp_type: 0,
        icmp_code: 0,
        icmp_id: 0,
        tcp_flags: 0,
        ip_len,
        fragment,
    };
    transport(&mut p, &frame[pos..end], pos)?;
    Ok(p)
}

/// Ports, TCP flags or ICMP type/code/id from the start of the upper-layer header `l4`,
/// which starts at byte `offset` of the frame.
#[inline(always)]
fn transport(p: &mut Packet, l4: &[u8], offset: usize) -> Result<(), ParseError> {
    let (layer, required) = match (p.protocol, p.fragment) {
        (_, Fragment::Later { .. }) => return Ok(()),
        (IPPROTO_TCP, _) => (Layer::Tcp, 20),
        (IPPROTO_UDP, _) => (Layer::Udp, 8),
        (IPPROTO_ICMP, _) => (Layer::Icmp, 8),
        (IPPROTO_ICMPV6, _) => (Layer::Icmpv6, 8),
        _ => return Ok(()),
    };
    if l4.len() < required && !matches!(p.fragment, Fragment::First { .. }) {
        return Err(ParseError::Truncated {
            layer,
            offset,
            required,
            available: l4.len(),
        });
    }
    // A first fragment may be too short for the whole header: take what it holds.
    let byte = |i: usize| l4.get(i).copied().unwrap_or(0);
    match layer {
        Layer::Tcp | Layer::Udp => {
            p.src_port = be16(l4, 0).unwrap_or(0);
            p.dst_port = be16(l4, 2).unwrap_or(0);
            if layer == Layer::Tcp {
                p.tcp_flags = byte(13);
            }
        }
        _ => {
            p.icmp_type = byte(0);
            p.icmp_code = byte(1);
            let echo = match layer {
                Layer::Icmp => p.icmp_type == 8 || p.icmp_type == 0,
                _ => p.icmp_type == 128 || p.icmp_type == 129,
            };
            if echo {
                p.icmp_id = be16(l4, 4).unwrap_or(0);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // ---- hand-written headers (RFC 791, 8200, 793, 768, 792 layouts) ----

    const MAC: [u8; 12] = [0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02];

    fn eth(ethertype: [u8; 2], payload: &[u8]) -> Vec<u8> {
        let mut f = MAC.to_vec();
        f.extend_from_slice(&ethertype);
        f.extend_from_slice(payload);
        f
    }

    /// IPv4 header: version 4, `ihl` words, total length, id, flags+offset, TTL 64.
    fn ipv4_hdr(ihl: u8, total: u16, id: u16, flags_frag: u16, proto: u8) -> Vec<u8> {
        let mut h = vec![0x40 | ihl, 0];
        h.extend_from_slice(&total.to_be_bytes());
        h.extend_from_slice(&id.to_be_bytes());
        h.extend_from_slice(&flags_frag.to_be_bytes());
        h.extend_from_slice(&[64, proto, 0, 0]);
        h.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        h.resize(usize::from(ihl) * 4, 0x01); // options: NOPs
        h
    }

    /// UDP header 5353 -> 53, length 8.
    const UDP: [u8; 8] = [0x14, 0xe9, 0x00, 0x35, 0x00, 0x08, 0x00, 0x00];
    /// TCP header 50000 -> 443, data offset 5, flags SYN|ECE (0x42).
    const TCP: [u8; 20] = [
        0xc3, 0x50, 0x01, 0xbb, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x42, 0xff, 0xff, 0, 0, 0, 0,
    ];

    fn ipv4_udp(total: u16) -> Vec<u8> {
        let mut f = ipv4_hdr(5, total, 7, 0, 17);
        f.extend_from_slice(&UDP);
        f
    }

    /// IPv6 header fc00::1 -> fc00::2, the given next header and payload length.
    fn ipv6_hdr(next: u8, payload_len: u16) -> Vec<u8> {
        let mut h = vec![0x60, 0, 0, 0];
        h.extend_from_slice(&payload_len.to_be_bytes());
        h.extend_from_slice(&[next, 64]);
        h.extend_from_slice(&[0xfc, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        h.extend_from_slice(&[0xfc, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        h
    }

    fn v4(a: [u8; 4]) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(a))
    }

    fn fc00(last: u8) -> IpAddr {
        let mut a = [0u8; 16];
        a[0] = 0xfc;
        a[15] = last;
        IpAddr::V6(Ipv6Addr::from(a))
    }

    fn trunc(layer: Layer, offset: usize, required: usize, available: usize) -> ParseError {
        ParseError::Truncated {
            layer,
            offset,
            required,
            available,
        }
    }

    // ---- Ethernet ----

    #[test]
    fn ethernet_ipv4_tcp_golden() {
        #[rustfmt::skip]
        let frame = [
            0x00, 0x1b, 0x21, 0x3a, 0x4b, 0x5c, 0x00, 0x1c, 0x42, 0x00, 0x00, 0x08, // MACs
            0x08, 0x00,                                     // EtherType IPv4
            0x45, 0x00, 0x00, 0x28, 0x1c, 0x46, 0x40, 0x00, // IHL 5, total 40, DF
            0x40, 0x06, 0x00, 0x00,                         // TTL 64, TCP, checksum
            192, 168, 1, 10, 93, 184, 216, 34,              // addresses
            0xc3, 0x50, 0x01, 0xbb,                         // 50000 -> 443
            0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, // seq, ack
            0x50, 0x12, 0xfa, 0xf0, 0x00, 0x00, 0x00, 0x00, // offset 5, SYN|ACK
        ];
        let p = parse(linktype::ETHERNET, &frame).unwrap();
        assert_eq!(
            p,
            Packet {
                src: v4([192, 168, 1, 10]),
                dst: v4([93, 184, 216, 34]),
                protocol: 6,
                src_port: 50000,
                dst_port: 443,
                icmp_type: 0,
                icmp_code: 0,
                icmp_id: 0,
                tcp_flags: tcp_flags::SYN | tcp_flags::ACK,
                ip_len: 40,
                fragment: Fragment::None,
            }
        );
        assert!(p.ports_known());
    }

    #[test]
    fn ethernet_padding_is_not_part_of_the_packet() {
        let mut f = eth([0x08, 0x00], &ipv4_udp(28));
        f.resize(60, 0); // minimum Ethernet frame
        let p = parse(linktype::ETHERNET, &f).unwrap();
        assert_eq!(
            (p.ip_len, p.protocol, p.src_port, p.dst_port),
            (28, 17, 5353, 53)
        );
    }

    #[test]
    fn vlan_tags_any_stacking() {
        let ip = ipv4_udp(28);
        for tags in [
            vec![0x81, 0x00, 0x00, 0x64],
            vec![0x88, 0xa8, 0x00, 0x0a, 0x81, 0x00, 0x00, 0x64],
            vec![0x91, 0x00, 0x00, 0x0a, 0x81, 0x00, 0x00, 0x64],
            vec![
                0x81, 0x00, 0x00, 0x01, 0x81, 0x00, 0x00, 0x02, 0x88, 0xa8, 0x00, 0x03,
            ],
        ] {
            // tags[0..2] is the outer TPID, in the EtherType position.
            let mut payload = tags[2..].to_vec();
            payload.extend_from_slice(&[0x08, 0x00]);
            payload.extend_from_slice(&ip);
            let f = eth([tags[0], tags[1]], &payload);
            let p = parse(linktype::ETHERNET, &f).unwrap();
            assert_eq!(
                (p.src, p.dst, p.src_port, p.dst_port),
                (v4([10, 0, 0, 1]), v4([10, 0, 0, 2]), 5353, 53)
            );
        }
    }

    #[test]
    fn vlan_tags_are_bounded() {
        let mut payload = Vec::new();
        for _ in 0..MAX_LINK_TAGS {
            payload.extend_from_slice(&[0x00, 0x01, 0x81, 0x00]); // TCI, next TPID
        }
        payload.extend_from_slice(&[0x00, 0x01, 0x08, 0x00]);
        payload.extend_from_slice(&ipv4_udp(28));
        // MAX_LINK_TAGS + 1 tags in all.
        let f = eth([0x81, 0x00], &payload);
        assert_eq!(
            parse(linktype::ETHERNET, &f),
            Err(ParseError::TooManyLinkTags {
                limit: MAX_LINK_TAGS
            })
        );
        // One fewer is fine.
        let f = eth([0x81, 0x00], &payload[4..]);
        assert!(parse(linktype::ETHERNET, &f).is_ok());
    }

    #[test]
    fn truncated_link_headers() {
        let f = eth([0x08, 0x00], &[]);
        assert_eq!(
            parse(linktype::ETHERNET, &f[..13]),
            Err(trunc(Layer::Link, 0, 14, 13))
        );
        let f = eth([0x81, 0x00], &[0x00, 0x64, 0x08]);
        assert_eq!(
            parse(linktype::ETHERNET, &f),
            Err(trunc(Layer::Link, 14, 4, 3))
        );
        // Headers complete, IP header missing.
        assert_eq!(
            parse(linktype::ETHERNET, &eth([0x08, 0x00], &[])),
            Err(trunc(Layer::Ipv4, 14, 20, 0))
        );
        assert_eq!(
            parse(linktype::ETHERNET, &eth([0x86, 0xdd], &[0x60; 39])),
            Err(trunc(Layer::Ipv6, 14, 40, 39))
        );
    }

    #[test]
    fn non_ip_frames_are_not_ip() {
        // ARP request: hardware type 1, protocol 0x0800, ...
        let arp = eth([0x08, 0x06], &[0, 1, 8, 0, 6, 4, 0, 1]);
        let e = parse(linktype::ETHERNET, &arp).unwrap_err();
        assert_eq!(e, ParseError::NotIp(NotIp::EtherType(0x0806)));
        assert!(e.is_not_ip());
        assert_eq!(e.reason(), "not-ip");
        // 802.3 frame, length 38, LLC DSAP/SSAP 0x42 (spanning tree).
        let stp = eth([0x00, 0x26], &[0x42, 0x42, 0x03, 0, 0, 0, 0, 0]);
        assert_eq!(
            parse(linktype::ETHERNET, &stp),
            Err(ParseError::NotIp(NotIp::Llc))
        );
        // LLDP behind a VLAN tag.
        let lldp = eth([0x81, 0x00], &[0x00, 0x05, 0x88, 0xcc, 0x02, 0x07]);
        assert_eq!(
            parse(linktype::ETHERNET, &lldp),
            Err(ParseError::NotIp(NotIp::EtherType(0x88cc)))
        );
        // A malformed packet is not "not IP".
        assert!(!trunc(Layer::Tcp, 34, 20, 3).is_not_ip());
    }

    #[test]
    fn llc_snap_encapsulated_ip() {
        let ip = ipv4_udp(28);
        let mut payload = vec![0xaa, 0xaa, 0x03, 0x00, 0x00, 0x00, 0x08, 0x00];
        payload.extend_from_slice(&ip);
        let f = eth((payload.len() as u16).to_be_bytes(), &payload);
        let p = parse(linktype::ETHERNET, &f).unwrap();
        assert_eq!((p.protocol, p.dst_port), (17, 53));
    }

    // ---- IPv4 ----

    #[test]
    fn ipv4_options_are_skipped() {
        // IHL 6: one 4-byte option word (Router Alert 0x94 0x04 0x00 0x00).
        let mut ip = ipv4_hdr(6, 32, 9, 0, 17);
        ip[20..24].copy_from_slice(&[0x94, 0x04, 0x00, 0x00]);
        ip.extend_from_slice(&UDP);
        let p = parse(linktype::IPV4, &ip).unwrap();
        assert_eq!((p.src_port, p.dst_port, p.ip_len), (5353, 53, 32));
        // IHL 15: 40 bytes of options.
        let mut ip = ipv4_hdr(15, 80, 9, 0, 6);
        ip.extend_from_slice(&TCP);
        let p = parse(linktype::IPV4, &ip).unwrap();
        assert_eq!(
            (p.src_port, p.dst_port, p.tcp_flags, p.ip_len),
            (50000, 443, 0x42, 80)
        );
    }

    #[test]
    fn bad_ipv4_headers() {
        let mut ip = ipv4_udp(28);
        ip[0] = 0x44; // IHL 4
        assert_eq!(
            parse(linktype::IPV4, &ip),
            Err(ParseError::BadIpv4Header(Ipv4HeaderError::HeaderLength {
                ihl: 4
            }))
        );
        let ip = ipv4_udp(19);
        let e = parse(linktype::IPV4, &ip).unwrap_err();
        assert_eq!(
            e,
            ParseError::BadIpv4Header(Ipv4HeaderError::TotalLength {
                total_length: 19,
                header_length: 20
            })
        );
        assert_eq!(e.reason(), "bad-ipv4-header");
        // EtherType IPv4 carrying an IPv6 header.
        let f = eth([0x08, 0x00], &ipv6_hdr(59, 0));
        assert_eq!(
            parse(linktype::ETHERNET, &f),
            Err(ParseError::BadIpv4Header(Ipv4HeaderError::Version {
                version: 6
            }))
        );
        // LINKTYPE_IPV4 with a version 5 header.
        let mut ip = ipv4_udp(28);
        ip[0] = 0x55;
        assert_eq!(
            parse(linktype::IPV4, &ip).unwrap_err().reason(),
            "bad-ipv4-header"
        );
    }

    #[test]
    fn truncated_ipv4_headers() {
        let ip = ipv4_udp(28);
        assert_eq!(
            parse(linktype::IPV4, &ip[..19]),
            Err(trunc(Layer::Ipv4, 0, 20, 19))
        );
        // IHL 7 (28 bytes) but 24 captured.
        let ip = ipv4_hdr(7, 28, 0, 0, 17);
        assert_eq!(
            parse(linktype::IPV4, &ip[..24]),
            Err(trunc(Layer::Ipv4, 0, 28, 24))
        );
    }

    #[test]
    fn snaplen_cut_packet_keeps_its_ip_length() {
        // Total length 1500, captured: Ethernet + IP + TCP headers only (snaplen 54).
        let mut ip = ipv4_hdr(5, 1500, 1, 0x4000, 6);
        ip.extend_from_slice(&TCP);
        let f = eth([0x08, 0x00], &ip);
        assert_eq!(f.len(), 54);
        let p = parse(linktype::ETHERNET, &f).unwrap();
        assert_eq!(
            (p.ip_len, p.src_port, p.dst_port, p.tcp_flags),
            (1500, 50000, 443, 0x42)
        );
    }

    #[test]
    fn truncated_transport_headers() {
        let mut ip = ipv4_hdr(5, 1500, 1, 0, 6);
        ip.extend_from_slice(&TCP[..10]);
        let f = eth([0x08, 0x00], &ip);
        let e = parse(linktype::ETHERNET, &f).unwrap_err();
        assert_eq!(e, trunc(Layer::Tcp, 34, 20, 10));
        assert_eq!(e.reason(), "truncated-tcp-header");
        // The total length, not the padding, bounds the UDP header.
        let mut f = eth([0x08, 0x00], &ipv4_hdr(5, 24, 1, 0, 17));
        f.extend_from_slice(&[0x14, 0xe9, 0x00, 0x35, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            parse(linktype::ETHERNET, &f),
            Err(trunc(Layer::Udp, 34, 8, 4))
        );
        let mut ip = ipv4_hdr(5, 100, 1, 0, 1);
        ip.extend_from_slice(&[8, 0, 0]);
        assert_eq!(
            parse(linktype::IPV4, &ip).unwrap_err().reason(),
            "truncated-icmp-header"
        );
        let mut ip = ipv6_hdr(58, 100);
        ip.extend_from_slice(&[128, 0, 0]);
        assert_eq!(
            parse(linktype::IPV6, &ip).unwrap_err().reason(),
            "truncated-icmpv6-header"
        );
    }

    #[test]
    fn tso_total_length_zero_uses_the_captured_length() {
        let mut ip = ipv4_hdr(5, 0, 1, 0x4000, 6);
        ip.extend_from_slice(&TCP);
        ip.extend_from_slice(&[0u8; 3000]);
        let p = parse(linktype::RAW, &ip).unwrap();
        assert_eq!((p.ip_len, p.dst_port), (3040, 443));
    }

    #[test]
    fn ipv6_payload_length_zero_uses_the_captured_length() {
        // A BIG TCP super-frame: payload length 0, no jumbo option.
        let mut ip = ipv6_hdr(6, 0);
        ip.extend_from_slice(&TCP);
        ip.extend_from_slice(&[0u8; 70_000]);
        let p = parse(linktype::IPV6, &ip).unwrap();
        assert_eq!((p.ip_len, p.dst_port), (70_060, 443));
        // A jumbogram: hop-by-hop header with the Jumbo Payload option (type 0xc2).
        let mut ip = ipv6_hdr(0, 0);
        ip.extend_from_slice(&[17, 0, 0xc2, 4, 0x00, 0x01, 0x00, 0x10]);
        ip.extend_from_slice(&UDP);
        ip.resize(40 + 0x10010, 0);
        let p = parse(linktype::IPV6, &ip).unwrap();
        assert_eq!((p.ip_len, p.protocol, p.dst_port), (40 + 0x10010, 17, 53));
    }

    #[test]
    fn icmp_type_code_and_echo_id() {
        // Echo request, id 0x1234, seq 1.
        let mut ip = ipv4_hdr(5, 28, 1, 0, 1);
        ip.extend_from_slice(&[8, 0, 0xf7, 0xff, 0x12, 0x34, 0x00, 0x01]);
        let p = parse(linktype::IPV4, &ip).unwrap();
        assert_eq!(
            (p.protocol, p.icmp_type, p.icmp_code, p.icmp_id, p.src_port),
            (1, 8, 0, 0x1234, 0)
        );
        // Echo reply.
        ip[20] = 0;
        assert_eq!(parse(linktype::IPV4, &ip).unwrap().icmp_id, 0x1234);
        // Destination unreachable (host), the "unused" word is not an id.
        ip[20..24].copy_from_slice(&[3, 1, 0, 0]);
        let p = parse(linktype::IPV4, &ip).unwrap();
        assert_eq!((p.icmp_type, p.icmp_code, p.icmp_id), (3, 1, 0));
    }

    #[test]
    fn other_protocols_have_no_ports() {
        // GRE (47), with a GRE header that must not be read as ports.
        let mut ip = ipv4_hdr(5, 28, 1, 0, 47);
        ip.extend_from_slice(&[0, 0, 0x08, 0x00, 1, 2, 3, 4]);
        let p = parse(linktype::IPV4, &ip).unwrap();
        assert_eq!(
            (p.protocol, p.src_port, p.dst_port, p.icmp_type),
            (47, 0, 0, 0)
        );
        // A protocol with no payload at all.
        let ip = ipv4_hdr(5, 20, 1, 0, 50);
        assert_eq!(parse(linktype::IPV4, &ip).unwrap().protocol, 50);
    }

    #[test]
    fn ipv4_fragments() {
        // First fragment: MF set, offset 0, id 0xbeef; carries the TCP header.
        let mut ip = ipv4_hdr(5, 1500, 0xbeef, 0x2000, 6);
        ip.extend_from_slice(&TCP);
        let p = parse(linktype::IPV4, &ip).unwrap();
        assert_eq!(p.fragment, Fragment::First { id: 0xbeef });
        assert_eq!((p.src_port, p.dst_port, p.tcp_flags), (50000, 443, 0x42));
        assert!(p.ports_known());
        // A tiny first fragment with 8 bytes of TCP: ports, no flags, no error.
        let mut ip = ipv4_hdr(5, 28, 0xbeef, 0x2000, 6);
        ip.extend_from_slice(&TCP[..8]);
        let p = parse(linktype::IPV4, &ip).unwrap();
        assert_eq!((p.src_port, p.dst_port, p.tcp_flags), (50000, 443, 0));
        // Later fragment: offset 185 (1480 bytes), MF clear; its bytes are not a header.
        let mut ip = ipv4_hdr(5, 40, 0xbeef, 185, 6);
        ip.extend_from_slice(&[0xaa; 20]);
        let p = parse(linktype::IPV4, &ip).unwrap();
        assert_eq!(p.fragment, Fragment::Later { id: 0xbeef });
        assert_eq!(
            (p.protocol, p.src_port, p.dst_port, p.tcp_flags, p.ip_len),
            (6, 0, 0, 0, 40)
        );
        assert!(!p.ports_known());
        // A later fragment shorter than a UDP header is fine too.
        let mut ip = ipv4_hdr(5, 23, 0xbeef, 0x2000 | 1, 17);
        ip.extend_from_slice(&[1, 2, 3]);
        assert_eq!(
            parse(linktype::IPV4, &ip).unwrap().fragment,
            Fragment::Later { id: 0xbeef }
        );
        // DF alone is not a fragment.
        let mut ip = ipv4_hdr(5, 28, 0xbeef, 0x4000, 17);
        ip.extend_from_slice(&UDP);
        assert_eq!(parse(linktype::IPV4, &ip).unwrap().fragment, Fragment::None);
    }

    // ---- IPv6 ----

    #[test]
    fn ethernet_ipv6_udp_golden() {
        #[rustfmt::skip]
        let frame = [
            0x33, 0x33, 0x00, 0x00, 0x00, 0xfb, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
            0x86, 0xdd,                                     // EtherType IPv6
            0x60, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x11, 0xff, // payload 12, UDP, hop limit 255
            0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
            0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xfb,
            0x14, 0xe9, 0x14, 0xe9, 0x00, 0x0c, 0x00, 0x00, // 5353 -> 5353
            0xde, 0xad, 0xbe, 0xef,
        ];
        let p = parse(linktype::ETHERNET, &frame).unwrap();
        assert_eq!(p.src, "fe80::1".parse::<IpAddr>().unwrap());
        assert_eq!(p.dst, "ff02::fb".parse::<IpAddr>().unwrap());
        assert_eq!(
            (p.protocol, p.src_port, p.dst_port, p.ip_len, p.fragment),
            (17, 5353, 5353, 52, Fragment::None)
        );
    }

    #[test]
    fn ipv6_extension_headers_are_walked() {
        // Hop-by-hop (8 bytes) -> routing (24 bytes) -> destination options (16) -> AH (16) -> TCP.
        let mut ip = ipv6_hdr(0, 8 + 24 + 16 + 16 + 20);
        ip.extend_from_slice(&[43, 0, 5, 2, 0, 0, 1, 0]); // next routing, len 0, router alert + PadN
        ip.extend_from_slice(&[60, 2, 0, 0, 0, 0, 0, 0]); // next dest opts, len 2 (24 bytes), type 0, segleft 0
        ip.extend_from_slice(&[0u8; 16]);
        ip.extend_from_slice(&[51, 1, 1, 12, 0, 0, 0, 0]); // next AH, len 1 (16 bytes), PadN
        ip.extend_from_slice(&[0u8; 8]);
        ip.extend_from_slice(&[6, 2, 0, 0, 0, 0, 0, 1]); // next TCP, payload len 2 -> (2+2)*4 = 16 bytes
        ip.extend_from_slice(&[0u8; 8]);
        ip.extend_from_slice(&TCP);
        let p = parse(linktype::IPV6, &ip).unwrap();
        assert_eq!((p.src, p.dst), (fc00(1), fc00(2)));
        assert_eq!(
            (p.protocol, p.src_port, p.dst_port, p.tcp_flags),
            (6, 50000, 443, 0x42)
        );
        assert_eq!(p.ip_len, 40 + 84);
    }

    #[test]
    fn esp_and_no_next_header_end_the_chain() {
        let mut ip = ipv6_hdr(60, 16);
        ip.extend_from_slice(&[50, 0, 1, 4, 0, 0, 0, 0]); // dest opts -> ESP
        ip.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1]); // SPI, sequence
        let p = parse(linktype::IPV6, &ip).unwrap();
        assert_eq!((p.protocol, p.src_port, p.ip_len), (50, 0, 56));
        let ip = ipv6_hdr(59, 0);
        let p = parse(linktype::IPV6, &ip).unwrap();
        assert_eq!((p.protocol, p.ip_len), (59, 40));
    }

    #[test]
    fn ipv6_fragments() {
        // First fragment: offset 0, M=1, id 0x01020304, then UDP.
        let mut ip = ipv6_hdr(44, 8 + 8);
        ip.extend_from_slice(&[17, 0, 0x00, 0x01, 1, 2, 3, 4]);
        ip.extend_from_slice(&UDP);
        let p = parse(linktype::IPV6, &ip).unwrap();
        assert_eq!(p.fragment, Fragment::First { id: 0x01020304 });
        assert_eq!((p.protocol, p.src_port, p.dst_port), (17, 5353, 53));
        // Later fragment: offset 1448/8 = 181 (0x05a8 = 181 << 3), M=0.
        let mut ip = ipv6_hdr(44, 8 + 4);
        ip.extend_from_slice(&[17, 0, 0x05, 0xa8, 1, 2, 3, 4]);
        ip.extend_from_slice(&[0xaa; 4]);
        let p = parse(linktype::IPV6, &ip).unwrap();
        assert_eq!(p.fragment, Fragment::Later { id: 0x01020304 });
        assert_eq!(
            (p.protocol, p.src_port, p.dst_port, p.ip_len),
            (17, 0, 0, 52)
        );
        // Atomic fragment (offset 0, M=0): a whole packet.
        let mut ip = ipv6_hdr(44, 8 + 8);
        ip.extend_from_slice(&[17, 0, 0, 0, 1, 2, 3, 4]);
        ip.extend_from_slice(&UDP);
        let p = parse(linktype::IPV6, &ip).unwrap();
        assert_eq!((p.fragment, p.dst_port), (Fragment::None, 53));
    }

    #[test]
    fn bad_and_truncated_ipv6_extensions() {
        // A routing header of 24 bytes in a payload of 16.
        let mut ip = ipv6_hdr(43, 16);
        ip.extend_from_slice(&[59, 2, 0, 0, 0, 0, 0, 0]);
        ip.extend_from_slice(&[0u8; 8]);
        let e = parse(linktype::IPV6, &ip).unwrap_err();
        assert_eq!(
            e,
            ParseError::BadIpv6Extension(Ipv6ExtensionError::BeyondPayload {
                next_header: 43,
                offset: 40,
                header_length: 24,
                payload_end: 56
            })
        );
        assert_eq!(e.reason(), "bad-ipv6-extension");
        // The same header inside a payload of 100, captured up to byte 56: truncated.
        ip[4..6].copy_from_slice(&100u16.to_be_bytes());
        assert_eq!(
            parse(linktype::IPV6, &ip),
            Err(trunc(Layer::Ipv6Extension, 40, 24, 16))
        );
        // One byte of a hop-by-hop header.
        let mut ip = ipv6_hdr(0, 100);
        ip.push(6);
        assert_eq!(
            parse(linktype::IPV6, &ip),
            Err(trunc(Layer::Ipv6Extension, 40, 2, 1))
        );
        // Too many destination options headers.
        let n = MAX_IPV6_EXTENSIONS + 1;
        let mut ip = ipv6_hdr(60, (n * 8) as u16);
        for _ in 0..n {
            ip.extend_from_slice(&[60, 0, 1, 4, 0, 0, 0, 0]);
        }
        assert_eq!(
            parse(linktype::IPV6, &ip),
            Err(ParseError::BadIpv6Extension(Ipv6ExtensionError::TooMany {
                limit: MAX_IPV6_EXTENSIONS
            }))
        );
        // IPv6 EtherType, version 4 inside.
        let f = eth([0x86, 0xdd], &[0x45; 40]);
        assert_eq!(
            parse(linktype::ETHERNET, &f),
            Err(ParseError::BadIpv6Header { version: 4 })
        );
    }

    #[test]
    fn icmpv6_echo_id() {
        let mut ip = ipv6_hdr(58, 8);
        ip.extend_from_slice(&[128, 0, 0, 0, 0xab, 0xcd, 0, 1]);
        let p = parse(linktype::IPV6, &ip).unwrap();
        assert_eq!((p.protocol, p.icmp_type, p.icmp_id), (58, 128, 0xabcd));
        ip[40] = 129;
        assert_eq!(parse(linktype::IPV6, &ip).unwrap().icmp_id, 0xabcd);
        // Neighbour solicitation: no id.
        ip[40] = 135;
        let p = parse(linktype::IPV6, &ip).unwrap();
        assert_eq!((p.icmp_type, p.icmp_id), (135, 0));
    }

    // ---- other link types ----

    #[test]
    fn linux_sll() {
        #[rustfmt::skip]
        let mut f = vec![
            0x00, 0x00,             // packet type: to us
            0x00, 0x01,             // ARPHRD_ETHER
            0x00, 0x06,             // address length
            0x02, 0, 0, 0, 0, 0x01, 0, 0, // address, padded to 8
            0x08, 0x00,             // protocol IPv4
        ];
        f.extend_from_slice(&ipv4_udp(28));
        let p = parse(linktype::LINUX_SLL, &f).unwrap();
        assert_eq!((p.src, p.dst_port), (v4([10, 0, 0, 1]), 53));
        f[14..16].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(
            parse(linktype::LINUX_SLL, &f),
            Err(ParseError::NotIp(NotIp::EtherType(0x0806)))
        );
        assert_eq!(
            parse(linktype::LINUX_SLL, &f[..15]),
            Err(trunc(Layer::Link, 0, 16, 15))
        );
    }

    #[test]
    fn linux_sll2() {
        #[rustfmt::skip]
        let mut f = vec![
            0x86, 0xdd,             // protocol IPv6
            0x00, 0x00,             // reserved
            0x00, 0x00, 0x00, 0x02, // interface index
            0x00, 0x01,             // ARPHRD_ETHER
            0x04,                   // packet type: outgoing
            0x06,                   // address length
            0x02, 0, 0, 0, 0, 0x01, 0, 0,
        ];
        let mut ip = ipv6_hdr(17, 8);
        ip.extend_from_slice(&UDP);
        f.extend_from_slice(&ip);
        let p = parse(linktype::LINUX_SLL2, &f).unwrap();
        assert_eq!(
            (p.src, p.dst, p.dst_port, p.ip_len),
            (fc00(1), fc00(2), 53, 48)
        );
        assert_eq!(
            parse(linktype::LINUX_SLL2, &f[..19]),
            Err(trunc(Layer::Link, 0, 20, 19))
        );
    }

    #[test]
    fn raw_ip_link_types() {
        let ip4 = ipv4_udp(28);
        let mut ip6 = ipv6_hdr(17, 8);
        ip6.extend_from_slice(&UDP);
        for lt in [linktype::RAW, linktype::RAW_ALT1, linktype::RAW_ALT2] {
            assert_eq!(parse(lt, &ip4).unwrap().src, v4([10, 0, 0, 1]));
            assert_eq!(parse(lt, &ip6).unwrap().src, fc00(1));
            assert_eq!(
                parse(lt, &[0x50; 20]),
                Err(ParseError::BadIpVersion {
                    link_type: lt,
                    version: 5
                })
            );
            assert_eq!(parse(lt, &[]), Err(trunc(Layer::Link, 0, 1, 0)));
        }
        assert_eq!(parse(linktype::IPV4, &ip4).unwrap().dst, v4([10, 0, 0, 2]));
        assert_eq!(parse(linktype::IPV6, &ip6).unwrap().dst, fc00(2));
        assert_eq!(
            parse(linktype::IPV4, &ip6).unwrap_err().reason(),
            "bad-ipv4-header"
        );
        assert_eq!(
            parse(linktype::IPV6, &ip4).unwrap_err().reason(),
            "bad-ipv6-header"
        );
    }

    #[test]
    fn bsd_loopback_both_byte_orders() {
        let ip4 = ipv4_udp(28);
        let mut ip6 = ipv6_hdr(17, 8);
        ip6.extend_from_slice(&UDP);
        let with = |hdr: [u8; 4], ip: &[u8]| {
            let mut f = hdr.to_vec();
            f.extend_from_slice(ip);
            f
        };
        // AF_INET = 2, little-endian (x86 writer) and big-endian (SPARC, PowerPC writer).
        assert_eq!(
            parse(linktype::NULL, &with([2, 0, 0, 0], &ip4))
                .unwrap()
                .dst_port,
            53
        );
        assert_eq!(
            parse(linktype::NULL, &with([0, 0, 0, 2], &ip4))
                .unwrap()
                .dst_port,
            53
        );
        // AF_INET6: 24 (NetBSD/OpenBSD), 28 (FreeBSD), 30 (Darwin).
        for af in [24u8, 28, 30] {
            assert_eq!(
                parse(linktype::NULL, &with([af, 0, 0, 0], &ip6))
                    .unwrap()
                    .src,
                fc00(1)
            );
            assert_eq!(
                parse(linktype::NULL, &with([0, 0, 0, af], &ip6))
                    .unwrap()
                    .src,
                fc00(1)
            );
        }
        // OpenBSD LOOP: always big-endian.
        assert_eq!(
            parse(linktype::LOOP, &with([0, 0, 0, 24], &ip6))
                .unwrap()
                .dst,
            fc00(2)
        );
        assert_eq!(
            parse(linktype::LOOP, &with([0, 0, 0, 2], &ip4))
                .unwrap()
                .dst,
            v4([10, 0, 0, 2])
        );
        assert_eq!(
            parse(linktype::LOOP, &with([2, 0, 0, 0], &ip4)),
            Err(ParseError::NotIp(NotIp::AddressFamily(0x0200_0000)))
        );
        // AF_ISO (7): a valid loopback frame, not IP.
        assert_eq!(
            parse(linktype::NULL, &with([7, 0, 0, 0], &ip4)),
            Err(ParseError::NotIp(NotIp::AddressFamily(7)))
        );
        assert_eq!(
            parse(linktype::NULL, &[2, 0, 0]),
            Err(trunc(Layer::Link, 0, 4, 3))
        );
    }

    #[test]
    fn unsupported_link_type() {
        let e = parse(127, &[0u8; 64]).unwrap_err();
        assert_eq!(e, ParseError::UnsupportedLinkType { link_type: 127 });
        assert_eq!(e.reason(), "unsupported-link-type");
        assert_eq!(
            e.to_string(),
            "link type 127 (IEEE 802.11 radiotap) is not supported"
        );
        assert_eq!(
            parse(60000, &[]).unwrap_err().to_string(),
            "link type 60000 is not supported"
        );
    }

    #[test]
    fn reasons_are_listed_and_messages_are_sentences() {
        let errors = [
            ParseError::NotIp(NotIp::EtherType(0x0806)),
            ParseError::NotIp(NotIp::Llc),
            ParseError::NotIp(NotIp::AddressFamily(7)),
            ParseError::UnsupportedLinkType { link_type: 9 },
            trunc(Layer::Link, 0, 14, 3),
            trunc(Layer::Ipv4, 14, 20, 3),
            trunc(Layer::Ipv6, 14, 40, 3),
            trunc(Layer::Ipv6Extension, 54, 8, 3),
            trunc(Layer::Tcp, 34, 20, 3),
            trunc(Layer::Udp, 34, 8, 3),
            trunc(Layer::Icmp, 34, 8, 3),
            trunc(Layer::Icmpv6, 54, 8, 3),
            ParseError::TooManyLinkTags { limit: 8 },
            ParseError::BadIpVersion {
                link_type: 101,
                version: 5,
            },
            ParseError::BadIpv4Header(Ipv4HeaderError::Version { version: 6 }),
            ParseError::BadIpv4Header(Ipv4HeaderError::HeaderLength { ihl: 2 }),
            ParseError::BadIpv4Header(Ipv4HeaderError::TotalLength {
                total_length: 3,
                header_length: 20,
            }),
            ParseError::BadIpv6Header { version: 4 },
            ParseError::BadIpv6Extension(Ipv6ExtensionError::TooMany { limit: 16 }),
        ];
        let mut seen = std::collections::BTreeSet::new();
        for e in errors {
            assert!(ParseError::REASONS.contains(&e.reason()), "{}", e.reason());
            seen.insert(e.reason());
            assert!(e.to_string().len() > 10);
        }
        assert_eq!(seen.len(), ParseError::REASONS.len());
        assert_eq!(
            trunc(Layer::Tcp, 34, 20, 10).to_string(),
            "the TCP header at byte 34 is cut off: 10 of its 20 bytes are present"
        );
    }

    /// Every prefix of every frame above, and pseudo-random bytes, under every link type:
    /// no panic, and the result is either a packet or an error with a listed reason.
    #[test]
    fn never_panics_on_prefixes_and_noise() {
        let mut frames: Vec<Vec<u8>> = vec![
            eth([0x08, 0x00], &ipv4_udp(28)),
            eth([0x81, 0x00], &[0, 1, 0x86, 0xdd]),
            ipv4_hdr(15, 60, 1, 0x2000, 6),
            ipv6_hdr(0, 64),
            ipv6_hdr(44, 64),
        ];
        let mut ip = ipv6_hdr(0, 200);
        for nh in [43u8, 60, 51, 44, 6] {
            ip.extend_from_slice(&[nh, 0, 0, 0, 0, 0, 0, 0]);
        }
        frames.push(ip);
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2000 {
            let len = (state % 120) as usize;
            let mut f = Vec::with_capacity(len);
            for _ in 0..len {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                f.push(state as u8);
            }
            // Give the noise a chance to reach the deeper layers.
            if f.len() > 20 {
                f[0] = [0x45, 0x46, 0x60, 0x4f][(state >> 8) as usize % 4];
                f[12..14].copy_from_slice(
                    &[[0x08, 0x00], [0x86, 0xdd], [0x81, 0x00]][(state >> 16) as usize % 3],
                );
            }
            frames.push(f);
        }
        let link_types = [0, 1, 12, 14, 101, 108, 113, 228, 229, 276, 127];
        for f in &frames {
            for n in 0..=f.len() {
                for lt in link_types {
                    match parse(lt, &f[..n]) {
                        Ok(p) => assert!(p.ip_len >= 20),
                        Err(e) => assert!(ParseError::REASONS.contains(&e.reason())),
                    }
                }
            }
        }
    }
}
