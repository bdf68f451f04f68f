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
//! - [`synth`]: frames and conversations built by code, for the demo, tests and benchmarks.
//! - [`wire`]: the Internet checksum and the one frame builder.
//! - [`manual`]: every emulation decision, in prose.
#![deny(unsafe_code)]

pub mod capture;
pub mod classify;
pub mod conntrack;
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
pub mod report;
pub mod sink;
pub mod synth;
pub mod synthgen;
pub mod wire;
