//! The edge that writes: the only code that creates output files.
//!
//! - [`sink`]: whole-record writers for verdict lines and pcaps, with the rules for a full
//!   disk and an interrupted run.
//! - [`flowlog`]: the flow-log file (plain or gzip) in a chosen format.
//! - [`report`]: the `--report` HTML page.

pub mod flowlog;
pub mod report;
pub mod sink;

pub use flowlog::FlowLogWriter;
