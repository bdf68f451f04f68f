//! The fuzz targets on stable: every committed seed (`fuzz/seeds/<target>/`) and every
//! input that once crashed a target goes through the same code as the fuzzers
//! (`fuzz/src/harness.rs`, included below), which asserts no panic plus the invariants
//! each API promises. See `fuzz/README.md` for the campaign.

#[allow(dead_code)]
#[path = "../../fuzz/src/harness.rs"]
mod harness;

use std::path::Path;

/// Runs `target` over every file of `fuzz/seeds/<name>/`; fails if there are none.
fn replay(name: &str, target: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(name);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no seeds in {}", dir.display());
    for f in files {
        let data = std::fs::read(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let run = std::panic::catch_unwind(|| target(&data));
        assert!(run.is_ok(), "seed {} panicked", f.display());
    }
}

#[test]
fn seeds_parse_packet() {
    replay("parse_packet", harness::parse_packet);
}

#[test]
fn seeds_capture_read() {
    replay("capture_read", harness::capture_read);
}

#[test]
fn seeds_load_toml() {
    replay("load_toml", harness::load_toml);
}

#[test]
fn seeds_load_json() {
    replay("load_json", harness::load_json);
}

#[test]
fn seeds_log_format() {
    replay("log_format", harness::log_format);
}

#[test]
fn seeds_engine() {
    replay("engine", harness::engine);
}

/// Every supported link type parses something, and the selector table is stable.
#[test]
fn link_type_table() {
    let table = harness::link_types();
    assert_eq!(&table[..10], &harness::SUPPORTED_LINK_TYPES);
    assert!(table.len() < 256);
    for (i, &lt) in table.iter().enumerate() {
        assert_eq!(harness::link_type_selector(lt), Some(i as u8));
    }
}
