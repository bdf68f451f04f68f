//! Fuzz target `log_format`: see `fuzz/src/harness.rs` and `fuzz/README.md`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vpcgate_fuzz::harness::log_format(data);
});
