//! Live mode: vpcgate as the VPC router between TAP devices (manual: "Live mode and the lab").
//!
//! - [`router`]: the VPC router and internet gateway as a pure function of frames
//!   (ARP and neighbour answers, forwarding, 1:1 NAT), over the same
//!   [`crate::engine::Engine`] that replay uses. Tested without devices.
//! - [`arp`]: reading and writing ARP frames.
//! - [`tap`]: TAP devices and the loop that reads them, feeds the router with the wall
//!   clock and writes flow logs as windows close. Linux only.
//!
//! Offloads: TAPs are opened with `IFF_VNET_HDR`; a GSO super-frame is judged once and
//! counted as the wire packets it stands for ([`Router::handle_vnet_frame`],
//! [`crate::wire::vnet`]). [`workers`]: `--workers N` over multi-queue TAPs, each worker
//! owning a share of the flow shards. Reloads: [`Router::reload`].

pub mod arp;
pub mod router;
#[cfg(target_os = "linux")]
pub mod tap;
#[cfg(target_os = "linux")]
pub mod workers;

pub use router::{Port, Router, RouterStats};
