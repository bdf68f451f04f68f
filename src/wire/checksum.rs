//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! One's-complement sums of big-endian 16-bit words, kept in a `u32` and folded at the
//! end. The IPv4 header checksum sums the header; TCP, UDP and ICMPv6 add a
//! pseudo-header of the addresses, the protocol and the layer-4 length (RFC 793,
//! RFC 768, RFC 8200 §8.1); ICMPv4 sums only its own bytes (RFC 792).
//!
//! ```
//! use vpcgate::wire::checksum::{finish, sum};
//! // RFC 1071 §3's worked example: the words 0001 f203 f4f5 f6f7 sum to 0xddf2.
//! let s = sum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7], 0);
//! assert_eq!(finish(s), !0xddf2);
//! ```

use std::net::IpAddr;

/// Adds `data` to `acc` as big-endian 16-bit words; an odd last byte is padded with a
/// zero byte (RFC 1071 §4.1).
#[inline]
pub fn sum(data: &[u8], mut acc: u32) -> u32 {
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        acc += u16::from_be_bytes([w[0], w[1]]) as u32;
        // Fold now and then so that no input length can overflow the u32.
        if acc > 0xffff_0000 {
            acc = (acc & 0xffff) + (acc >> 16);
        }
    }
    if let [last] = words.remainder() {
        acc += (*last as u32) << 8;
    }
    acc
}

/// Folds a sum into 16 bits and complements it: the value stored in a header.
#[inline]
pub fn finish(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// The sum of an address (4 or 16 bytes), for pseudo-headers.
#[inline]
pub fn addr_sum(a: IpAddr) -> u32 {
    match a {
        IpAddr::V4(v) => sum(&v.octets(), 0),
        IpAddr::V6(v) => sum(&v.octets(), 0),
    }
}

/// The pseudo-header sum of TCP, UDP and ICMPv6: both addresses, the protocol and the
/// layer-4 length (header and payload).
#[inline]
pub fn pseudo_header(src: IpAddr, dst: IpAddr, protocol: u8, l4_len: usize) -> u32 {
    let len = l4_len as u32;
    addr_sum(src) + addr_sum(dst) + protocol as u32 + (len >> 16) + (len & 0xffff)
}

/// A stored checksum after one 16-bit word of the covered data changed from `old` to
/// `new`, without summing the rest again: RFC 1624 eqn. 3, `HC' = ~(~HC + ~m + m')`.
/// Address translation rewrites addresses word by word this way.
#[inline]
pub fn update(stored: u16, old: u16, new: u16) -> u16 {
    let acc = (!stored) as u32 + (!old) as u32 + new as u32;
    finish(acc)
}

/// [`update`] for a change of a whole address (each of its 16-bit words).
pub fn update_addr(mut stored: u16, old: IpAddr, new: IpAddr) -> u16 {
    let (o, n): (Vec<u8>, Vec<u8>) = match (old, new) {
        (IpAddr::V4(o), IpAddr::V4(n)) => (o.octets().to_vec(), n.octets().to_vec()),
        (IpAddr::V6(o), IpAddr::V6(n)) => (o.octets().to_vec(), n.octets().to_vec()),
        _ => panic!("wire::checksum::update_addr: addresses of different families"),
    };
    for (ow, nw) in o.chunks_exact(2).zip(n.chunks_exact(2)) {
        stored = update(
            stored,
            u16::from_be_bytes([ow[0], ow[1]]),
            u16::from_be_bytes([nw[0], nw[1]]),
        );
    }
    stored
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: 0001 + f203 + f4f5 + f6f7 = 2ddf0, folded ddf2.
        let s = sum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7], 0);
        assert_eq!(s, 0x2ddf0);
        assert_eq!(finish(s), 0x220d);
    }

    #[test]
    fn an_odd_length_is_padded_with_zero() {
        assert_eq!(sum(&[0x12, 0x34, 0x56], 0), 0x1234 + 0x5600);
    }

    #[test]
    fn a_checksummed_header_sums_to_all_ones() {
        // RFC 1071 §1: summing the data with its checksum in place gives 0xffff, so
        // `finish` gives 0. The worked IPv4 header of Wikipedia's "IPv4 header
        // checksum" article, checksum 0xb861.
        let h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(finish(sum(&h, 0)), 0);
        let mut z = h;
        z[10] = 0;
        z[11] = 0;
        assert_eq!(finish(sum(&z, 0)), 0xb861);
    }

    #[test]
    fn incremental_update_equals_a_full_sum() {
        // RFC 1624 §4: the incremental form must agree with recomputing, including
        // the case where the result is 0x0000 vs 0xffff (eqn. 3 never yields -0).
        let mut h = [
            0x45u8, 0x00, 0x00, 0x3c, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00, 0xcb, 0x00,
            0x71, 0x0a, 0xc6, 0x33, 0x64, 0x07,
        ];
        let c = finish(sum(&h, 0));
        let old: IpAddr = "203.0.113.10".parse().unwrap();
        let new: IpAddr = "10.0.1.10".parse().unwrap();
        let updated = update_addr(c, old, new);
        h[12..16].copy_from_slice(&[10, 0, 1, 10]);
        assert_eq!(updated, finish(sum(&h, 0)));
        // Back again gives the original.
        assert_eq!(update_addr(updated, new, old), c);
    }

    #[test]
    fn no_length_overflows_the_sum() {
        let big = vec![0xffu8; 1 << 20];
        let s = sum(&big, 0);
        assert_eq!(finish(s), 0);
    }
}
