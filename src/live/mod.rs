//! Live mode: vpcgate as the VPC router between TAP devices (manual: "Live mode and the lab").
//!
//! - [`router`]: the VPC router and internet gateway as a pure function of frames
//!   (ARP and neighbour answers, forwarding, 1:1 NAT), over the same
//!   [`crate::engine::Engine`] that replay uses. Tested without devices.
//! - [`arp`]: reading and writing ARP frames.
//! - [`tap`]: TAP devices and the loop that reads them, feeds the router with the wall
//!   clock and writes flow logs as windows close. Linux only.
//!
//! What it does not do (yet): one router thread (no multi-queue TAPs, no per-flow-shard
//! workers), no GSO/TSO super-frames (the TAPs are opened without `IFF_VNET_HDR`, so the
//! kernel segments before vpcgate sees the frames), no ruleset reload while running.

pub mod arp;
pub mod router;
#[cfg(target_os = "linux")]
pub mod tap;

pub use router::{Port, Router, RouterStats};
