//! The integration tests: one binary, one module per area.
mod cli;
mod conformance;
mod corpus;
pub mod determinism;
mod emulation;
mod flowlog;
mod rulesets;
