//! The integration tests: one binary, one module per area.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)] // not the core: see clippy.toml
mod bench;
mod bounds;
mod check;
mod cli;
mod cli_safety;
mod conformance;
mod corpus;
mod counterfactual;
pub mod determinism;
mod diff;
mod emulation;
mod explain;
mod faults;
mod flowlog;
mod fuzz_regressions;
mod lint;
mod live;
mod props;
mod readme;
mod report_html;
mod rulesets;
mod summary;
mod support;
mod synth;
mod tutorial;
