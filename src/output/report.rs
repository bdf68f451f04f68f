//! The `--report` page: one file, written whole after the run.

use std::io::{self, Write};
use std::path::Path;

/// Writes `page` to `path` (created or truncated: the run checked before it started
/// that `path` is no input and no other output, and created it).
pub fn write_report(path: &Path, page: &str) -> io::Result<()> {
    let mut f = std::fs::File::create(path)?;
    f.write_all(page.as_bytes())?;
    f.flush()
}
