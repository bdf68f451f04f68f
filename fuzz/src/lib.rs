//! The fuzz targets' bodies live in [`harness`], a plain module that depends on
//! `vpcgate` and `std` only, so that the main crate's test suite
//! (`tests/it/fuzz_regressions.rs`) replays the seeds and crash inputs through exactly
//! the same code on stable Rust.
pub mod harness;
