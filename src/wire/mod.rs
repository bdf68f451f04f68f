//! Frames on the wire: the Internet checksum and a frame builder.
//!
//! - [`checksum`]: RFC 1071 sums, pseudo-headers, and RFC 1624's incremental update
//!   (what address translation needs).
//! - [`emit`]: Ethernet II + IPv4/IPv6 + TCP/UDP/ICMP/other, every length and checksum
//!   filled in.
//!
//! Parsing stays in [`crate::packet`] (the per-packet hot path); this module writes.
//! Pure: no I/O.
#![deny(clippy::disallowed_methods, clippy::disallowed_types)]

pub mod checksum;
pub mod emit;
