//! The run's data as a person or a program reads it: the text summary, the JSON
//! summary, and what is said when a signal stopped the replay. Text and JSON are
//! rendered from the same [`Summary`], so they say the same things.

mod json;
mod text;

pub use json::summary_json;
pub use text::summary_text;

use crate::pipeline::ReplayConfig;

/// What is said when SIGINT or SIGTERM stopped a replay.
pub fn interrupted_text(signal: usize, packets: u64, cfg: &ReplayConfig) -> String {
    let name = match signal as i32 {
        signal_hook::consts::SIGTERM => "SIGTERM",
        _ => "SIGINT",
    };
    let outputs: Vec<String> = [&cfg.verdicts, &cfg.flow_log, &cfg.accepted, &cfg.rejected]
        .into_iter()
        .flatten()
        .map(|p| {
            if p.as_os_str() == "-" {
                "standard output".to_string()
            } else {
                p.display().to_string()
            }
        })
        .collect();
    if outputs.is_empty() {
        format!("interrupted by {name} after {packets} packet(s); every packet read before the signal was processed")
    } else {
        format!(
            "interrupted by {name} after {packets} packet(s); every record up to then was written, whole, to {}",
            outputs.join(", ")
        )
    }
}
