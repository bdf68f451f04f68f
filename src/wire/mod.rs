//! Frames on the wire: parsing, the Internet checksum and a frame builder.
//!
//! - [`packet`]: link-layer frames (Ethernet, VLAN, SLL, raw IP, …) to a small
//!   [`packet::Packet`] view, fragments and all; the per-packet hot path.
//! - [`checksum`]: RFC 1071 sums, pseudo-headers, and RFC 1624's incremental update
//!   (what address translation needs).
//! - [`vnet`]: the `virtio_net_hdr` of TAPs with offloads; GSO super-frames counted
//!   and cut into wire packets.
//! - [`emit`]: Ethernet II + IPv4/IPv6 + TCP/UDP/ICMP/other, every length and checksum
//!   filled in.
//!
//! //! Pure: no I/O.
#![deny(clippy::disallowed_methods, clippy::disallowed_types)]

pub mod checksum;
pub mod emit;
pub mod packet;
pub mod vnet;
