//! Fuzz target `load_json`: see `fuzz/src/harness.rs` and `fuzz/README.md`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vpcgate_fuzz::harness::load_json(data);
});
