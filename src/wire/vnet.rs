//! The `virtio_net_hdr` that a TAP opened with `IFF_VNET_HDR` puts before every frame,
//! and what a GSO super-frame stands for on the wire.
//!
//! With offloads on, the host behind a TAP hands over **super-frames**: one TCP (or
//! UDP, with USO) packet of up to 64 KiB whose header says how the network card would
//! have cut it (`gso_type`, `gso_size`), and frames whose layer-4 checksum is left to
//! the card (`VIRTIO_NET_HDR_F_NEEDS_CSUM`: the checksum field then holds the
//! pseudo-header sum, not yet complemented, and the card finishes it from `csum_start`
//! on). This module reads and writes that header ([`VnetHdr`]), checks it against the
//! frame it describes ([`plan`]: the header must agree with the frame's protocol and
//! lengths, else a [`VnetError`] names why), counts the wire packets a super-frame
//! stands for and their IP bytes ([`Plan::segments`], [`Plan::segment_ip_bytes`]), and
//! cuts it into those packets ([`Plan::segment`]) as Linux's `tcp_gso_segment` and
//! `__udp_gso_segment` do: IPv4 ids counting up, lengths and TCP sequence numbers per
//! segment, FIN and PSH only on the last segment and CWR only on the first, checksums
//! finished.
//!
//! The header's 16-bit fields are in the host's byte order (the TAP's default, legacy
//! virtio), which is what the kernel reads and writes without `TUNSETVNETLE`/`BE`.
//!
//! Not handled: UFO (`VIRTIO_NET_HDR_GSO_UDP`, IP fragmentation by the card: never
//! enabled), super-frames behind a VLAN tag or with IPv6 extension headers (dropped as
//! `vnet-gso-unsupported`).
//!
//! ```
//! use vpcgate::wire::vnet::{plan, VnetHdr, GSO_TCPV4};
//! use vpcgate::wire::emit::{frame, Eth, Ip, L4};
//! let l4 = L4::Tcp { sport: 40000, dport: 5201, seq: 1, ack: 1, flags: 0x18, window: 512 };
//! let f = frame(&Eth::default(), &Ip::new("10.0.0.1".parse()?, "10.0.0.2".parse()?), &l4, &[7; 3000]);
//! let hdr = VnetHdr { gso_type: GSO_TCPV4, gso_size: 1448, ..VnetHdr::default() };
//! let p = plan(&hdr, &f).unwrap();
//! // 3,000 bytes of payload in segments of 1,448: three packets, each with its own
//! // 20-byte IPv4 and 20-byte TCP header.
//! assert_eq!(p.segments(), 3);
//! assert_eq!(p.ip_bytes(), 3 * 40 + 3000);
//! # Ok::<(), std::net::AddrParseError>(())
//! ```
#![deny(clippy::disallowed_methods, clippy::disallowed_types)]

use super::checksum;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The size of `struct virtio_net_hdr` (without `num_buffers`).
pub const VNET_HDR_LEN: usize = 10;

/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the card must finish the layer-4 checksum.
pub const F_NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_F_DATA_VALID`: the checksum was already checked.
pub const F_DATA_VALID: u8 = 2;

/// `VIRTIO_NET_HDR_GSO_NONE`.
pub const GSO_NONE: u8 = 0;
/// `VIRTIO_NET_HDR_GSO_TCPV4`.
pub const GSO_TCPV4: u8 = 1;
/// `VIRTIO_NET_HDR_GSO_UDP` (UFO: never enabled by vpcgate).
pub const GSO_UDP: u8 = 3;
/// `VIRTIO_NET_HDR_GSO_TCPV6`.
pub const GSO_TCPV6: u8 = 4;
/// `VIRTIO_NET_HDR_GSO_UDP_L4` (USO).
pub const GSO_UDP_L4: u8 = 5;
/// `VIRTIO_NET_HDR_GSO_ECN`: a flag on TCP types (the first segment carries CWR).
pub const GSO_ECN: u8 = 0x80;

const ETH: usize = 14;

/// `struct virtio_net_hdr`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VnetHdr {
    pub flags: u8,
    pub gso_type: u8,
    /// Length of the headers (a hint; Linux writes the length of the frame's linear
    /// part, which may hold some payload).
    pub hdr_len: u16,
    /// Payload bytes per segment.
    pub gso_size: u16,
    /// Where the checksummed part starts, from the start of the Ethernet frame.
    pub csum_start: u16,
    /// Where the checksum field is, from `csum_start`.
    pub csum_offset: u16,
}

impl VnetHdr {
    /// Reads the header at the start of `b`; `None` when `b` is shorter.
    pub fn parse(b: &[u8]) -> Option<VnetHdr> {
        let b = b.get(..VNET_HDR_LEN)?;
        let w = |i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
        Some(VnetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: w(2),
            gso_size: w(4),
            csum_start: w(6),
            csum_offset: w(8),
        })
    }

    /// The header's 10 bytes.
    pub fn bytes(&self) -> [u8; VNET_HDR_LEN] {
        let mut b = [0u8; VNET_HDR_LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
        b
    }

    /// Whether the layer-4 checksum field holds a partial (pseudo-header) sum.
    pub fn needs_csum(&self) -> bool {
        self.flags & F_NEEDS_CSUM != 0
    }
}

/// Why a header does not fit its frame. The frame is dropped and counted by
/// [`VnetError::reason`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VnetError {
    /// Fewer than 10 bytes: no header at all.
    TruncatedHeader,
    /// A `gso_type` that does not exist.
    BadGsoType,
    /// `gso_size` 0 on a super-frame.
    BadGsoSize,
    /// `hdr_len` beyond the end of the frame.
    HdrLenBeyondFrame,
    /// `csum_start` + `csum_offset` + 2 beyond the frame (or, on a super-frame, not the
    /// layer-4 checksum field).
    BadChecksumOffset,
    /// A GSO type that does not match the frame (TCPv4 on an IPv6 or UDP packet, ...),
    /// or an IP length that does not fit the frame.
    GsoProtocolMismatch,
    /// A super-frame vpcgate does not cut (UFO, a VLAN tag, IPv6 extension headers, an
    /// IPv4 fragment).
    GsoUnsupported,
}

impl VnetError {
    /// The drop reason counted in the summary.
    pub fn reason(self) -> &'static str {
        match self {
            VnetError::TruncatedHeader => "vnet-truncated-header",
            VnetError::BadGsoType => "vnet-bad-gso-type",
            VnetError::BadGsoSize => "vnet-bad-gso-size",
            VnetError::HdrLenBeyondFrame => "vnet-hdr-len-beyond-frame",
            VnetError::BadChecksumOffset => "vnet-bad-csum-offset",
            VnetError::GsoProtocolMismatch => "vnet-gso-protocol-mismatch",
            VnetError::GsoUnsupported => "vnet-gso-unsupported",
        }
    }
}

/// A frame checked against its header: how many wire packets it stands for and where
/// its headers are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    hdr: VnetHdr,
    gso: Option<Gso>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Gso {
    v6: bool,
    tcp: bool,
    /// Where the layer-4 header starts and the payload starts (from the frame's start).
    l4: usize,
    payload: usize,
    /// Where the IP packet ends.
    ip_end: usize,
    mss: usize,
    segments: u32,
}

/// Checks `hdr` against `frame` (Ethernet, without the header). A frame without GSO
/// stands for itself; a super-frame for `ceil(payload / gso_size)` packets (at least
/// one).
pub fn plan(hdr: &VnetHdr, frame: &[u8]) -> Result<Plan, VnetError> {
    if hdr.hdr_len as usize > frame.len() {
        return Err(VnetError::HdrLenBeyondFrame);
    }
    if hdr.needs_csum() && hdr.csum_start as usize + hdr.csum_offset as usize + 2 > frame.len() {
        return Err(VnetError::BadChecksumOffset);
    }
    let kind = hdr.gso_type & !GSO_ECN;
    let (v6, tcp) = match kind {
        GSO_NONE if hdr.gso_type == GSO_NONE => {
            return Ok(Plan {
                hdr: *hdr,
                gso: None,
            })
        }
        GSO_TCPV4 => (false, true),
        GSO_TCPV6 => (true, true),
        GSO_UDP_L4 => match frame.get(12..14) {
            Some([0x86, 0xdd]) => (true, false),
            _ => (false, false),
        },
        GSO_UDP => return Err(VnetError::GsoUnsupported),
        _ => return Err(VnetError::BadGsoType),
    };
    if hdr.gso_type & GSO_ECN != 0 && !tcp {
        return Err(VnetError::BadGsoType);
    }
    if hdr.gso_size == 0 {
        return Err(VnetError::BadGsoSize);
    }
    let ethertype = frame.get(12..14).ok_or(VnetError::GsoProtocolMismatch)?;
    let (proto, l4, ip_end) = match ethertype {
        [0x08, 0x00] if !v6 => {
            let ip = frame
                .get(ETH..ETH + 20)
                .ok_or(VnetError::GsoProtocolMismatch)?;
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            if ip[0] >> 4 != 4 || ihl < 20 {
                return Err(VnetError::GsoProtocolMismatch);
            }
            if u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0 {
                return Err(VnetError::GsoUnsupported);
            }
            let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
            (ip[9], ETH + ihl, ETH + total)
        }
        [0x86, 0xdd] if v6 => {
            let ip = frame
                .get(ETH..ETH + 40)
                .ok_or(VnetError::GsoProtocolMismatch)?;
            if ip[0] >> 4 != 6 {
                return Err(VnetError::GsoProtocolMismatch);
            }
            let payload = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
            match ip[6] {
                6 | 17 => (ip[6], ETH + 40, ETH + 40 + payload),
                0 | 43 | 44 | 60 => return Err(VnetError::GsoUnsupported),
                _ => return Err(VnetError::GsoProtocolMismatch),
            }
        }
        [0x81, 0x00] | [0x88, 0xa8] => return Err(VnetError::GsoUnsupported),
        _ => return Err(VnetError::GsoProtocolMismatch),
    };
    if proto != if tcp { 6 } else { 17 } {
        return Err(VnetError::GsoProtocolMismatch);
    }
    let l4_hdr = if tcp {
        let off = *frame.get(l4 + 12).ok_or(VnetError::GsoProtocolMismatch)?;
        usize::from(off >> 4) * 4
    } else {
        8
    };
    let payload = l4 + l4_hdr;
    if l4_hdr < if tcp { 20 } else { 8 } || payload > ip_end || ip_end > frame.len() {
        return Err(VnetError::GsoProtocolMismatch);
    }
    if hdr.needs_csum()
        && (hdr.csum_start as usize != l4 || hdr.csum_offset != if tcp { 16 } else { 6 })
    {
        return Err(VnetError::BadChecksumOffset);
    }
    let mss = usize::from(hdr.gso_size);
    let segments = (ip_end - payload).div_ceil(mss).max(1) as u32;
    Ok(Plan {
        hdr: *hdr,
        gso: Some(Gso {
            v6,
            tcp,
            l4,
            payload,
            ip_end,
            mss,
            segments,
        }),
    })
}

impl Plan {
    /// Whether the frame is a super-frame (a GSO type), even one of a single segment.
    pub fn is_super_frame(&self) -> bool {
        self.gso.is_some()
    }

    /// How many wire packets the frame stands for (1 without GSO).
    pub fn segments(&self) -> u32 {
        self.gso.map_or(1, |g| g.segments)
    }

    /// The IP bytes of segment `i` (IP and layer-4 headers and its share of the
    /// payload), as replay counts a packet; `None` for a frame without GSO (the
    /// packet's own IP length applies).
    pub fn segment_ip_bytes(&self, i: u32) -> Option<u32> {
        let g = self.gso?;
        let total = g.ip_end - g.payload;
        let start = (i as usize * g.mss).min(total);
        let len = g.mss.min(total - start);
        Some((g.payload - ETH + len) as u32)
    }

    /// The IP bytes of all the wire packets (the frame's own IP length without GSO is
    /// not known here: `None`).
    pub fn ip_bytes(&self) -> u64 {
        (0..self.segments())
            .filter_map(|i| self.segment_ip_bytes(i))
            .map(u64::from)
            .sum()
    }

    /// Hands each wire packet the frame stands for to `out`, as Ethernet frames with
    /// every checksum finished: a frame without GSO as it is (its checksum finished if
    /// the header asks the card to), a super-frame cut as Linux's GSO cuts it. `buf`
    /// is scratch space, reused.
    pub fn segment(&self, frame: &[u8], buf: &mut Vec<u8>, out: &mut dyn FnMut(&[u8])) {
        let Some(g) = self.gso else {
            if self.hdr.needs_csum() {
                buf.clear();
                buf.extend_from_slice(frame);
                let start = usize::from(self.hdr.csum_start);
                let at = start + usize::from(self.hdr.csum_offset);
                let c = checksum::finish(checksum::sum(&buf[start..], 0));
                buf[at..at + 2].copy_from_slice(&c.to_be_bytes());
                out(buf);
            } else {
                out(frame);
            }
            return;
        };
        let (hdrs, payload) = (&frame[..g.payload], &frame[g.payload..g.ip_end]);
        let l4_full = g.ip_end - g.l4;
        let ck_at = g.l4 + if g.tcp { 16 } else { 6 };
        let (src, dst) = addrs(frame, g.v6);
        let proto = if g.tcp { 6 } else { 17 };
        let ip_id = u16::from_be_bytes([frame[ETH + 4], frame[ETH + 5]]);
        let seq0 = if g.tcp {
            u32::from_be_bytes([
                frame[g.l4 + 4],
                frame[g.l4 + 5],
                frame[g.l4 + 6],
                frame[g.l4 + 7],
            ])
        } else {
            0
        };
        let chunks: Vec<&[u8]> = if payload.is_empty() {
            vec![&[]]
        } else {
            payload.chunks(g.mss).collect()
        };
        let last = chunks.len() - 1;
        for (i, chunk) in chunks.into_iter().enumerate() {
            buf.clear();
            buf.extend_from_slice(hdrs);
            buf.extend_from_slice(chunk);
            let l4_len = g.payload - g.l4 + chunk.len();
            if g.v6 {
                let pl = (buf.len() - ETH - 40) as u16;
                buf[ETH + 4..ETH + 6].copy_from_slice(&pl.to_be_bytes());
            } else {
                let tot = (buf.len() - ETH) as u16;
                buf[ETH + 2..ETH + 4].copy_from_slice(&tot.to_be_bytes());
                let id = ip_id.wrapping_add(i as u16);
                buf[ETH + 4..ETH + 6].copy_from_slice(&id.to_be_bytes());
                buf[ETH + 10..ETH + 12].copy_from_slice(&[0, 0]);
                let c = checksum::finish(checksum::sum(&buf[ETH..g.l4], 0));
                buf[ETH + 10..ETH + 12].copy_from_slice(&c.to_be_bytes());
            }
            if g.tcp {
                let seq = seq0.wrapping_add((i * g.mss) as u32);
                buf[g.l4 + 4..g.l4 + 8].copy_from_slice(&seq.to_be_bytes());
                let mut flags = buf[g.l4 + 13];
                if i != last {
                    flags &= !(0x01 | 0x08); // FIN and PSH only on the last segment
                }
                if i != 0 {
                    flags &= !0x80; // CWR only on the first
                }
                buf[g.l4 + 13] = flags;
            } else {
                buf[g.l4 + 4..g.l4 + 6].copy_from_slice(&(l4_len as u16).to_be_bytes());
            }
            // The card's part: the partial sum (for the whole super-frame's length)
            // adjusted to this segment's length, then summed over the segment. Without
            // NEEDS_CSUM Linux computes it afresh; so does this.
            let start = if self.hdr.needs_csum() {
                let p = u16::from_be_bytes([frame[ck_at], frame[ck_at + 1]]);
                fold(u32::from(p) + u32::from(!(l4_full as u16)) + l4_len as u32)
            } else {
                fold(checksum::pseudo_header(src, dst, proto, l4_len))
            };
            buf[ck_at..ck_at + 2].copy_from_slice(&start.to_be_bytes());
            let mut c = checksum::finish(checksum::sum(&buf[g.l4..], 0));
            if !g.tcp && c == 0 {
                c = 0xffff;
            }
            buf[ck_at..ck_at + 2].copy_from_slice(&c.to_be_bytes());
            out(buf);
        }
    }
}

/// A one's-complement sum folded to 16 bits, not complemented: the partial checksum
/// of `VIRTIO_NET_HDR_F_NEEDS_CSUM`.
pub fn fold(acc: u32) -> u16 {
    !checksum::finish(acc)
}

fn addrs(frame: &[u8], v6: bool) -> (IpAddr, IpAddr) {
    if v6 {
        let mut a = [0u8; 16];
        let mut b = [0u8; 16];
        a.copy_from_slice(&frame[ETH + 8..ETH + 24]);
        b.copy_from_slice(&frame[ETH + 24..ETH + 40]);
        (Ipv6Addr::from(a).into(), Ipv6Addr::from(b).into())
    } else {
        let a: [u8; 4] = [
            frame[ETH + 12],
            frame[ETH + 13],
            frame[ETH + 14],
            frame[ETH + 15],
        ];
        let b: [u8; 4] = [
            frame[ETH + 16],
            frame[ETH + 17],
            frame[ETH + 18],
            frame[ETH + 19],
        ];
        (Ipv4Addr::from(a).into(), Ipv4Addr::from(b).into())
    }
}

/// A super-frame as the Linux stack hands it over with TSO: IP lengths for the
/// whole frame, and the TCP checksum field holding the pseudo-header sum of the
/// whole layer-4 length (`~tcp_v4_check(len, saddr, daddr, 0)`), with NEEDS_CSUM.
#[cfg(test)]
pub(crate) fn tso_frame_ports(
    src: &str,
    dst: &str,
    (sport, dport): (u16, u16),
    flags: u8,
    payload: usize,
    mss: u16,
) -> (VnetHdr, Vec<u8>) {
    let l4 = crate::wire::emit::L4::Tcp {
        sport,
        dport,
        seq: 0xffff_f000,
        ack: 77,
        flags,
        window: 512,
    };
    let data: Vec<u8> = (0..payload).map(|i| (i * 7 + 3) as u8).collect();
    let (s, d): (IpAddr, IpAddr) = (src.parse().unwrap(), dst.parse().unwrap());
    let mut f = crate::wire::emit::frame(
        &crate::wire::emit::Eth::default(),
        &crate::wire::emit::Ip::new(s, d),
        &l4,
        &data,
    );
    let l4_at = if s.is_ipv4() { 34 } else { 54 };
    let l4_len = f.len() - l4_at;
    let partial = fold(checksum::pseudo_header(s, d, 6, l4_len));
    f[l4_at + 16..l4_at + 18].copy_from_slice(&partial.to_be_bytes());
    let hdr = VnetHdr {
        flags: F_NEEDS_CSUM,
        gso_type: if s.is_ipv4() { GSO_TCPV4 } else { GSO_TCPV6 },
        hdr_len: (l4_at + 20) as u16,
        gso_size: mss,
        csum_start: l4_at as u16,
        csum_offset: 16,
    };
    (hdr, f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::emit::{frame, Eth, Ip, L4};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn tso_frame(src: &str, dst: &str, flags: u8, payload: usize, mss: u16) -> (VnetHdr, Vec<u8>) {
        tso_frame_ports(src, dst, (40000, 5201), flags, payload, mss)
    }

    fn segments_of(hdr: &VnetHdr, f: &[u8]) -> Vec<Vec<u8>> {
        let p = plan(hdr, f).unwrap();
        let mut segs = Vec::new();
        p.segment(f, &mut Vec::new(), &mut |s| segs.push(s.to_vec()));
        assert_eq!(segs.len() as u32, p.segments());
        segs
    }

    /// Every checksum of `f` computed from scratch by etherparse (an independent
    /// implementation), compared with what the frame holds.
    fn checksums_ok(f: &[u8]) -> bool {
        let s = etherparse::SlicedPacket::from_ethernet(f).unwrap();
        match (&s.net, &s.transport) {
            (Some(etherparse::NetSlice::Ipv4(v4)), Some(t)) => {
                let h = v4.header().to_header();
                h.calc_header_checksum() == h.header_checksum
                    && match t {
                        etherparse::TransportSlice::Tcp(t) => {
                            t.to_header().calc_checksum_ipv4(&h, t.payload()).unwrap()
                                == t.checksum()
                        }
                        etherparse::TransportSlice::Udp(u) => {
                            u.to_header().calc_checksum_ipv4(&h, u.payload()).unwrap()
                                == u.checksum()
                        }
                        _ => false,
                    }
            }
            (Some(etherparse::NetSlice::Ipv6(v6)), Some(t)) => {
                let h = v6.header().to_header();
                match t {
                    etherparse::TransportSlice::Tcp(t) => {
                        t.to_header().calc_checksum_ipv6(&h, t.payload()).unwrap() == t.checksum()
                    }
                    etherparse::TransportSlice::Udp(u) => {
                        u.to_header().calc_checksum_ipv6(&h, u.payload()).unwrap() == u.checksum()
                    }
                    _ => false,
                }
            }
            _ => false,
        }
    }

    #[test]
    fn the_header_reads_and_writes_its_ten_bytes() {
        let h = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_TCPV4 | GSO_ECN,
            hdr_len: 66,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
        };
        let b = h.bytes();
        assert_eq!(b.len(), 10);
        assert_eq!((b[0], b[1]), (1, 0x81));
        // Host byte order, as the TAP's legacy virtio header has it.
        assert_eq!(&b[4..6], &1448u16.to_ne_bytes());
        assert_eq!(VnetHdr::parse(&b), Some(h));
        assert_eq!(VnetHdr::parse(&b[..9]), None);
    }

    /// ceil(payload / gso_size) segments, each with its own headers: 64,000 bytes in
    /// 1,448-byte segments (TCP with timestamps over a 1,500 MTU) are 45 packets, 44
    /// full and one of 288 bytes (64,000 - 44 × 1,448).
    #[test]
    fn a_super_frame_counts_its_segments_and_their_ip_bytes() {
        let (h, f) = tso_frame("10.0.0.1", "10.0.0.2", 0x18, 64_000, 1448);
        let p = plan(&h, &f).unwrap();
        assert!(p.is_super_frame());
        assert_eq!(p.segments(), 45);
        assert_eq!(p.segment_ip_bytes(0), Some(40 + 1448));
        assert_eq!(p.segment_ip_bytes(44), Some(40 + 288));
        assert_eq!(p.ip_bytes(), 45 * 40 + 64_000);
        // Exactly one segment's worth, and no payload at all: one packet.
        let (h, f) = tso_frame("10.0.0.1", "10.0.0.2", 0x10, 1448, 1448);
        assert_eq!(plan(&h, &f).unwrap().segments(), 1);
        let (h, f) = tso_frame("10.0.0.1", "10.0.0.2", 0x10, 0, 1448);
        assert_eq!(plan(&h, &f).unwrap().segments(), 1);
        assert_eq!(plan(&h, &f).unwrap().ip_bytes(), 40);
        // IPv6: 40-byte IP header.
        let (h, f) = tso_frame("2001:db8::1", "2001:db8::2", 0x10, 3000, 1428);
        let p = plan(&h, &f).unwrap();
        assert_eq!((p.segments(), p.ip_bytes()), (3, 3 * 60 + 3000));
        // No GSO: the frame stands for itself.
        let p = plan(&VnetHdr::default(), &f).unwrap();
        assert!(!p.is_super_frame());
        assert_eq!((p.segments(), p.segment_ip_bytes(0)), (1, None));
    }

    /// The segments are what the wire would carry (RFC 793 sequence numbers, RFC 791
    /// lengths and ids, checksums that verify from scratch), and their payloads put
    /// together are the super-frame's.
    #[test]
    fn segmenting_gives_wire_packets_with_right_lengths_sequence_numbers_and_checksums() {
        for (src, dst) in [("10.0.0.1", "10.0.0.2"), ("2001:db8::1", "2001:db8::2")] {
            // PSH|FIN|ACK|CWR: FIN and PSH on the last segment only, CWR on the first.
            let (h, f) = tso_frame(src, dst, 0x80 | 0x10 | 0x08 | 0x01, 4000, 1448);
            let segs = segments_of(&h, &f);
            assert_eq!(segs.len(), 3);
            let mut data = Vec::new();
            for (i, s) in segs.iter().enumerate() {
                assert!(checksums_ok(s), "segment {i} of {src}");
                let e = etherparse::SlicedPacket::from_ethernet(s).unwrap();
                let Some(etherparse::TransportSlice::Tcp(t)) = e.transport else {
                    panic!()
                };
                assert_eq!(
                    t.sequence_number(),
                    0xffff_f000u32.wrapping_add(i as u32 * 1448)
                );
                assert_eq!(t.fin(), i == 2, "FIN");
                assert_eq!(t.psh(), i == 2, "PSH");
                assert_eq!(t.cwr(), i == 0, "CWR");
                assert!(t.ack());
                assert_eq!(t.payload().len(), [1448, 1448, 1104][i]);
                data.extend_from_slice(t.payload());
                match e.net {
                    Some(etherparse::NetSlice::Ipv4(v4)) => {
                        let h = v4.header();
                        assert_eq!(usize::from(h.total_len()), s.len() - 14);
                        assert_eq!(h.identification(), i as u16, "ids count up from 0");
                    }
                    Some(etherparse::NetSlice::Ipv6(v6)) => {
                        assert_eq!(usize::from(v6.header().payload_length()), s.len() - 54);
                    }
                    _ => panic!(),
                }
            }
            let l4 = if src.contains(':') { 54 } else { 34 };
            assert_eq!(data, f[l4 + 20..]);
        }
    }

    /// USO: each segment is a datagram with its own UDP header and length.
    #[test]
    fn udp_super_frames_are_cut_into_datagrams() {
        let data = vec![9u8; 2500];
        let (s, d) = (ip("10.0.0.1"), ip("10.0.0.2"));
        let mut f = frame(
            &Eth::default(),
            &Ip::new(s, d),
            &L4::Udp {
                sport: 4000,
                dport: 5201,
            },
            &data,
        );
        let partial = fold(checksum::pseudo_header(s, d, 17, 8 + 2500));
        f[34 + 6..34 + 8].copy_from_slice(&partial.to_be_bytes());
        let h = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_UDP_L4,
            hdr_len: 42,
            gso_size: 1000,
            csum_start: 34,
            csum_offset: 6,
        };
        let segs = segments_of(&h, &f);
        assert_eq!(segs.len(), 3);
        for (i, s) in segs.iter().enumerate() {
            assert!(checksums_ok(s), "datagram {i}");
            let e = etherparse::SlicedPacket::from_ethernet(s).unwrap();
            let Some(etherparse::TransportSlice::Udp(u)) = e.transport else {
                panic!()
            };
            assert_eq!(u.length() as usize, 8 + [1000, 1000, 500][i]);
        }
        assert_eq!(plan(&h, &f).unwrap().ip_bytes(), 3 * 28 + 2500);
    }

    /// Any payload size, segment size, family and flags: the segments' payloads put
    /// together are the super-frame's, there are as many as counted, their IP lengths
    /// add up to [`Plan::ip_bytes`], and every checksum verifies from scratch.
    #[test]
    fn segmenting_any_super_frame_keeps_payload_count_bytes_and_checksums() {
        let mut x: u64 = 0x1234_5678_9abc_def1;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for i in 0..300 {
            let (src, dst) = if i % 2 == 0 {
                ("10.1.2.3", "10.9.8.7")
            } else {
                ("2001:db8::3", "2001:db8::7")
            };
            let payload = (next() % 20_000) as usize;
            let mss = 200 + (next() % 1400) as u16;
            let flags = 0x10 | (next() as u8 & 0x89); // ACK, maybe FIN, PSH, CWR
            let (h, f) = tso_frame(src, dst, flags, payload, mss);
            let p = plan(&h, &f).unwrap();
            let mut data = Vec::new();
            let (mut n, mut ip_bytes) = (0u32, 0u64);
            p.segment(&f, &mut Vec::new(), &mut |seg| {
                n += 1;
                assert!(checksums_ok(seg), "case {i}, segment {n}");
                let e = etherparse::SlicedPacket::from_ethernet(seg).unwrap();
                let Some(etherparse::TransportSlice::Tcp(t)) = e.transport else {
                    panic!()
                };
                assert!(t.payload().len() <= usize::from(mss));
                data.extend_from_slice(t.payload());
                ip_bytes += (seg.len() - 14) as u64;
            });
            assert_eq!(n, p.segments(), "case {i}");
            assert_eq!(n as usize, payload.div_ceil(usize::from(mss)).max(1));
            assert_eq!(ip_bytes, p.ip_bytes(), "case {i}");
            let l4 = if i % 2 == 0 { 34 } else { 54 };
            assert_eq!(data, f[l4 + 20..], "case {i}");
        }
    }

    /// A frame without GSO whose checksum the card must finish: the capture gets the
    /// finished checksum.
    #[test]
    fn a_partial_checksum_is_finished() {
        let (mut h, f) = tso_frame("10.0.0.1", "10.0.0.2", 0x18, 100, 1448);
        h.gso_type = GSO_NONE;
        h.gso_size = 0;
        assert!(!checksums_ok(&f), "the partial sum is not a checksum");
        let segs = segments_of(&h, &f);
        assert_eq!(segs.len(), 1);
        assert!(checksums_ok(&segs[0]));
    }

    /// Malformed headers are refused with their reason, never a panic.
    #[test]
    fn malformed_headers_are_refused_by_reason() {
        let (h, f) = tso_frame("10.0.0.1", "10.0.0.2", 0x10, 3000, 1448);
        let bad = |h: VnetHdr, f: &[u8]| plan(&h, f).unwrap_err();
        assert_eq!(bad(VnetHdr { gso_size: 0, ..h }, &f), VnetError::BadGsoSize);
        assert_eq!(
            bad(
                VnetHdr {
                    hdr_len: f.len() as u16 + 1,
                    ..h
                },
                &f
            ),
            VnetError::HdrLenBeyondFrame
        );
        assert_eq!(bad(VnetHdr { gso_type: 9, ..h }, &f), VnetError::BadGsoType);
        assert_eq!(
            bad(
                VnetHdr {
                    gso_type: GSO_UDP,
                    ..h
                },
                &f
            ),
            VnetError::GsoUnsupported
        );
        // TCPv6 on an IPv4 frame, USO on a TCP packet.
        assert_eq!(
            bad(
                VnetHdr {
                    gso_type: GSO_TCPV6,
                    ..h
                },
                &f
            ),
            VnetError::GsoProtocolMismatch
        );
        assert_eq!(
            bad(
                VnetHdr {
                    gso_type: GSO_UDP_L4,
                    csum_offset: 6,
                    ..h
                },
                &f
            ),
            VnetError::GsoProtocolMismatch
        );
        assert_eq!(
            bad(
                VnetHdr {
                    csum_start: f.len() as u16,
                    ..h
                },
                &f
            ),
            VnetError::BadChecksumOffset
        );
        assert_eq!(
            bad(
                VnetHdr {
                    csum_offset: 10,
                    ..h
                },
                &f
            ),
            VnetError::BadChecksumOffset
        );
        // An IP length beyond the frame.
        assert_eq!(bad(h, &f[..f.len() - 1]), VnetError::GsoProtocolMismatch);
        // Random headers on random bytes: an answer, never a panic.
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for i in 0..20_000 {
            let mut b: Vec<u8> = if i % 2 == 0 {
                let mut b = h.bytes().to_vec();
                b.extend_from_slice(&f[..(next() as usize % f.len())]);
                b
            } else {
                (0..(next() % 200) as usize).map(|_| next() as u8).collect()
            };
            if let Some(at) = (!b.is_empty()).then(|| next() as usize % b.len()) {
                b[at] = next() as u8;
            }
            let Some(hh) = VnetHdr::parse(&b) else {
                continue;
            };
            if let Ok(p) = plan(&hh, &b[VNET_HDR_LEN..]) {
                let mut n = 0;
                p.segment(&b[VNET_HDR_LEN..], &mut Vec::new(), &mut |_| n += 1);
                assert_eq!(n, p.segments());
            }
        }
    }
}
