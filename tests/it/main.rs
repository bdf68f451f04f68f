//! The integration tests: one binary, one module per area.
mod bounds;
mod cli;
mod conformance;
mod corpus;
pub mod determinism;
mod emulation;
mod faults;
mod flowlog;
mod fuzz_regressions;
mod live;
mod props;
mod rulesets;
mod summary;
mod synth;
