//! The integration tests: one binary, one module per area.
mod bounds;
mod cli;
mod cli_safety;
mod conformance;
mod corpus;
pub mod determinism;
mod emulation;
mod faults;
mod flowlog;
mod fuzz_regressions;
mod props;
mod readme;
mod rulesets;
mod support;
mod synth;
