//! vpcgate: a packet filter that behaves like an AWS VPC data plane.
//!
//! The data flow, left to right:
//!
//! ```text
//!  capture (pcap, pcapng) ─> pipeline (threads) ─> engine (pure) ─┬ flowlog (windows, records, writers)
//!                                                     │           ├ verdicts (JSON lines, pcaps)
//!                     model <─ load (TOML, AWS JSON)  │           └ stats (summary)
//!                                                     │
//!                                 policy (SG + NACL)  conntrack (per-ENI tables)
//! ```
//!
//! - [`model`]: the VPC as validated plain data.
//! - [`load`]: the ruleset TOML and `aws ec2 describe-*` JSON readers.
//! - [`packet`]: link-layer frames to a small [`packet::Packet`] view.
//! - [`capture`]: streaming pcap / pcapng reading, pcap writing.
//! - [`policy`]: security-group and network-ACL matching.
//! - [`conntrack`]: per-ENI connection tracking; time is an argument.
//! - [`engine`]: the evaluation path of one packet: checks, tracking, observations.
//! - [`flowlog`]: aggregation windows, records, the custom format, writers.
//! - [`pipeline`]: reader → workers → ordered merge → sinks.
//! - [`preflight`]: what a run checks before it writes anything (inputs, outputs, times).
//! - [`synth`]: frames and conversations built by code, for the demo, tests and benchmarks.
//! - [`wire`]: the Internet checksum and the one frame builder.
//! - [`manual`]: every emulation decision, in prose.
//! - [`sys`]: reads a signal can stop, file identities (the OS beyond `std`).
//! - [`analysis`]: static checks of a ruleset (`vpcgate lint`).
#![deny(unsafe_code)]
// The OS is reached from the edges only: the core's modules deny these again (see
// clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

pub mod analysis;
pub mod capture;
pub mod classify;
pub mod conntrack;
pub mod craft;
pub mod engine;
pub mod flowlog;
pub mod lab;
pub mod live;
pub mod load;
pub mod manual;
pub mod model;
pub mod packet;
pub mod pipeline;
pub mod policy;
pub mod preflight;
pub mod report;
pub mod sink;
pub mod synth;
pub mod synthgen;
pub mod sys;
pub mod wire;
