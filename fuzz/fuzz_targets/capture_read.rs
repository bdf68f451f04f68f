//! Fuzz target `capture_read`: see `fuzz/src/harness.rs` and `fuzz/README.md`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vpcgate_fuzz::harness::capture_read(data);
});
