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
//! The pure core: no file, thread, socket, process or clock (each module denies the
//! clippy lints of `clippy.toml`, so the build fails when the core reaches for the OS).
//!
//! - [`model`]: the VPC as validated plain data.
//! - [`time`]: [`time::Timestamp`], nanoseconds since the epoch, the one time type.
//! - [`wire`]: bytes and fields both ways: [`wire::packet`] parses link-layer frames to a
//!   small [`wire::packet::Packet`] view; [`wire::emit`] builds frames with checksums.
//! - [`policy`]: security-group and network-ACL matching ([`policy::classify`]).
//! - [`conntrack`]: per-ENI connection tracking; time is an argument.
//! - [`engine`]: the evaluation path of one packet, and [`engine::Worker`], the engine,
//!   aggregator and counters of one shard.
//! - [`flowlog`]: aggregation windows, records, the custom format, collation.
//! - [`synth`]: frames and conversations built by code ([`synth::bulk`]: benchmark traffic).
//! - [`analysis`]: static checks of a ruleset (`vpcgate lint`); verdicts that differ
//!   between two runs of the engine (`vpcgate diff`, the counterfactual replays).
//!   One hypothetical connection (`vpcgate check`) and a captured packet's path and
//!   tracking state (`replay --explain`), both from [`engine::trace`].
//! - [`report`]: a run's summary as text and JSON.
//! - [`manual`]: every emulation decision, in prose.
//!
//! The edges:
//!
//! - [`load`]: the ruleset TOML and `aws ec2 describe-*` JSON readers.
//! - [`capture`]: streaming pcap / pcapng reading, pcap writing.
//! - [`output`]: the only code that creates output files.
//! - [`preflight`]: what a run checks before it creates or truncates anything.
//! - [`pipeline`]: reader → workers → ordered merge → outputs, on threads.
//! - [`craft`]: `vpcgate craft`, a capture from a written story.
//! - [`live`]: the VPC router on TAP devices; [`lab`]: network namespaces for a ruleset.
//! - [`sys`]: the OS beyond `std` (interruptible reads, file identities, the TAP ioctl);
//!   the only module with `unsafe`.
#![deny(unsafe_code)]
// The OS is reached from the edges only: the core's modules deny these again (see
// clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

pub mod analysis;
pub mod capture;
pub mod conntrack;
pub mod craft;
pub mod engine;
pub mod flowlog;
pub mod lab;
pub mod live;
pub mod load;
pub mod manual;
pub mod model;
pub mod output;
pub mod pipeline;
pub mod policy;
pub mod preflight;
pub mod report;
pub mod synth;
pub mod sys;
pub mod time;
pub mod wire;
