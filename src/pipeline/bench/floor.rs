//! The floor's packet walk, used by `vpcgate bench --floor FILE` and by the `floor`
//! group of `benches/stages.rs`.
//!
//! The least work any filter must do: walk every classic-pcap record of a buffer and,
//! for every packet, its Ethernet (+ VLAN tags) → IPv4 / IPv6 (+ extension headers)
//! → TCP / UDP / ICMP headers to build the 5-tuple, folded into a checksum so that
//! the compiler cannot skip any of it. Written by hand on purpose, with std only: no
//! parsing crate, no validation beyond what reading the fields needs, no allocation.
//! A floor that leaned on vpcgate's reader or parser would measure them instead.

/// Ethernet.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Raw IPv4 or IPv6, no link header.
pub const LINKTYPE_RAW: u32 = 101;
pub const LINKTYPE_IPV4: u32 = 228;
pub const LINKTYPE_IPV6: u32 = 229;

/// What a classic pcap file header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PcapHeader {
    /// The file's numbers are big-endian.
    pub big_endian: bool,
    /// Bytes of each record header: 16, or 24 for the "modified" (Kuznetzov) format.
    pub record_header: usize,
    pub link_type: u32,
}

/// Reads a classic pcap file header (24 bytes). The error is for people.
pub fn pcap_header(h: &[u8]) -> Result<PcapHeader, String> {
    if h.len() < 24 {
        return Err(format!(
            "the file ends inside its pcap header ({} of 24 bytes)",
            h.len()
        ));
    }
    let magic = [h[0], h[1], h[2], h[3]];
    let (big_endian, modified) = match magic {
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => (true, false),
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => (false, false),
        [0xa1, 0xb2, 0xcd, 0x34] => (true, true),
        [0x34, 0xcd, 0xb2, 0xa1] => (false, true),
        [0x0a, 0x0d, 0x0d, 0x0a] => {
            return Err("a pcapng capture: the floor reads classic pcap only \
                        (convert with `editcap -F pcap IN OUT`)"
                .to_string())
        }
        m => {
            return Err(format!(
                "not a pcap capture: it starts with {:02x} {:02x} {:02x} {:02x}",
                m[0], m[1], m[2], m[3]
            ))
        }
    };
    let link_type = u32_at(&h[20..24], big_endian) & 0x0fff_ffff;
    match link_type {
        LINKTYPE_ETHERNET | LINKTYPE_RAW | LINKTYPE_IPV4 | LINKTYPE_IPV6 => {}
        other => {
            return Err(format!(
                "link type {other}: the floor walks Ethernet (1) and raw IP (101, 228, 229) only"
            ))
        }
    }
    Ok(PcapHeader {
        big_endian,
        record_header: if modified { 24 } else { 16 },
        link_type,
    })
}

#[inline(always)]
fn u32_at(b: &[u8], big_endian: bool) -> u32 {
    let a = [b[0], b[1], b[2], b[3]];
    if big_endian {
        u32::from_be_bytes(a)
    } else {
        u32::from_le_bytes(a)
    }
}

#[inline(always)]
fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline(always)]
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[inline(always)]
fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

/// Packets walked and the checksum of their 5-tuples.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Walked {
    /// Records walked.
    pub packets: u64,
    /// Records that held an IPv4 or IPv6 header.
    pub ip: u64,
    /// Bytes of the records, headers included.
    pub bytes: u64,
    pub checksum: u64,
}

impl Walked {
    #[inline(always)]
    fn fold(&mut self, tuple: u64) {
        self.checksum = (self.checksum ^ tuple).wrapping_mul(0x0000_0100_0000_01b3);
    }
}

/// Walks the whole records at the start of `buf` (record headers as `hdr` says) and
/// returns how many bytes they took; a record cut by the end of `buf` is left for
/// the next call. `Err` is a record longer than `max_record` bytes (a damaged file).
#[inline]
pub fn walk_records(
    buf: &[u8],
    hdr: &PcapHeader,
    max_record: usize,
    acc: &mut Walked,
) -> Result<usize, String> {
    let rh = hdr.record_header;
    let mut at = 0usize;
    while buf.len() - at >= rh {
        let caplen = u32_at(&buf[at + 8..at + 12], hdr.big_endian) as usize;
        if caplen > max_record {
            return Err(format!(
                "a record of {caplen} bytes, above the limit of {max_record} (damaged capture?)"
            ));
        }
        let end = at + rh + caplen;
        if end > buf.len() {
            break;
        }
        let frame = &buf[at + rh..end];
        acc.packets += 1;
        acc.bytes += (rh + caplen) as u64;
        if let Some(t) = five_tuple(hdr.link_type, frame) {
            acc.ip += 1;
            acc.fold(t);
        }
        at = end;
    }
    Ok(at)
}

/// The 5-tuple of one frame, folded into 64 bits: `None` when it holds no IP header.
/// For ICMP the "ports" are type and code; a later fragment has no ports.
#[inline(always)]
pub fn five_tuple(link_type: u32, f: &[u8]) -> Option<u64> {
    let (mut ethertype, mut at) = match link_type {
        LINKTYPE_ETHERNET => {
            if f.len() < 14 {
                return None;
            }
            (be16(f, 12), 14)
        }
        LINKTYPE_IPV4 => (0x0800, 0),
        LINKTYPE_IPV6 => (0x86dd, 0),
        _ => match f.first()? >> 4 {
            4 => (0x0800, 0),
            6 => (0x86dd, 0),
            _ => return None,
        },
    };
    // 802.1Q, 802.1ad and the old QinQ tag: 4 bytes each.
    while matches!(ethertype, 0x8100 | 0x88a8 | 0x9100) {
        if f.len() < at + 4 {
            return None;
        }
        ethertype = be16(f, at + 2);
        at += 4;
    }
    let ip = &f[at..];
    let (proto, addrs, l4, ports_known) = match ethertype {
        0x0800 => {
            if ip.len() < 20 {
                return None;
            }
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            let later_fragment = be16(ip, 6) & 0x1fff != 0;
            let addrs = (u64::from(be32(ip, 12)) << 32) | u64::from(be32(ip, 16));
            (ip[9], addrs, ip.get(ihl..).unwrap_or(&[]), !later_fragment)
        }
        0x86dd => {
            if ip.len() < 40 {
                return None;
            }
            let addrs = be64(ip, 8)
                ^ be64(ip, 16).rotate_left(13)
                ^ be64(ip, 24).rotate_left(29)
                ^ be64(ip, 32).rotate_left(41);
            let mut next = ip[6];
            let mut off = 40usize;
            let mut ports_known = true;
            // Hop-by-hop, routing, destination options; the fragment header.
            loop {
                match next {
                    0 | 43 | 60 => {
                        if ip.len() < off + 8 {
                            break;
                        }
                        next = ip[off];
                        off += (usize::from(ip[off + 1]) + 1) * 8;
                    }
                    44 => {
                        if ip.len() < off + 8 {
                            break;
                        }
                        next = ip[off];
                        ports_known &= be16(ip, off + 2) & 0xfff8 == 0;
                        off += 8;
                    }
                    _ => break,
                }
            }
            (next, addrs, ip.get(off..).unwrap_or(&[]), ports_known)
        }
        _ => return None,
    };
    let ports = match proto {
        6 | 17 if ports_known && l4.len() >= 4 => u64::from(be32(l4, 0)),
        1 | 58 if ports_known && l4.len() >= 2 => u64::from(be16(l4, 0)),
        _ => 0,
    };
    Some(addrs ^ (ports << 8 | u64::from(proto)).rotate_left(23))
}
