//! The edge that writes: the only code that creates output files.
//!
//! - [`preflight`]: what a run checks before it creates or truncates anything (inputs
//!   readable, outputs distinct from inputs and from each other, times that parse).
//! - [`sink`]: whole-record writers for verdict lines and pcaps, with the rules for a full
//!   disk and an interrupted run.
//! - [`flowlog`]: the flow-log file (plain or gzip) in a chosen format.
//! - [`report`]: the `--report` HTML page.

pub mod flowlog;
pub mod preflight;
pub mod report;
pub mod sink;

pub use flowlog::FlowLogWriter;
