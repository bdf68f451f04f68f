//! `replay --explain`: a single-threaded pass apart from the pipeline, reading the
//! captures in order and feeding every frame to an [`Explainer`]. Normal replay never
//! runs it.

use super::worker::none_reason;
use super::*;
use crate::analysis::explain::{Explainer, Explanation, PacketId};

/// What an explain pass found.
pub struct Explained {
    pub explanations: Vec<Explanation>,
    /// The compiled rulesets, by number (for naming rules).
    pub policies: Vec<Arc<Policy>>,
    /// Packets read per capture file.
    pub packets: Vec<u64>,
    /// Captures that could not be read to the end.
    pub capture_errors: Vec<String>,
}

/// Replays `cfg`'s captures with `cfg`'s rulesets (and `--max-flows`) on one thread
/// and explains the packets `wanted`: (capture number from 0, packet number from 1).
/// Stops reading once every wanted packet is explained.
/// `cf`: a counterfactual data plane (not AWS), as `replay --stateless-sg` or
/// `--stateful-nacl` runs.
pub fn explain(
    cfg: &ReplayConfig,
    wanted: &[PacketId],
    cf: crate::engine::Counterfactual,
) -> Explained {
    let vpcs: Vec<&Vpc> = cfg.rulesets.iter().map(|r| &*r.vpc).collect();
    let (eni_ids, _) = eni_table(&vpcs);
    let policies: Vec<Arc<Policy>> = cfg
        .rulesets
        .iter()
        .map(|r| Arc::new(Policy::compile(r.vpc.clone(), &eni_ids)))
        .collect();
    let mut ex = Explainer::new(
        policies.clone(),
        WorkerConfig {
            interval: cfg.interval,
            max_flows: cfg.max_flows,
            flow_log: false,
        },
        wanted,
    );
    ex.set_counterfactual(cf);
    let mut packets = vec![0u64; cfg.captures.len()];
    let mut capture_errors = Vec::new();
    let mut scheduled = false;
    let mut block = Block::default();
    'files: for (fi, path) in cfg.captures.iter().enumerate() {
        let mut reader = match CaptureReader::open(path) {
            Ok(r) => r,
            Err(e) => {
                capture_errors.push(e.to_string());
                continue;
            }
        };
        let mut index = 0u64;
        loop {
            if let Err(e) = reader.read_block(&mut block, BLOCK_PACKETS) {
                capture_errors.push(e.to_string());
                break;
            }
            if block.records.is_empty() {
                break;
            }
            if !scheduled {
                scheduled = true;
                let first = block.records[0].ts;
                let mut v: Vec<(Timestamp, usize)> = cfg
                    .rulesets
                    .iter()
                    .enumerate()
                    .skip(1)
                    .map(|(i, r)| (r.from.map_or(first, |w| w.resolve(first)), i))
                    .collect();
                v.sort_by_key(|&(t, _)| t);
                ex.set_schedule(v);
            }
            for (i, r) in block.records.iter().enumerate() {
                index += 1;
                match packet::parse(r.link_type, block.frame(i)) {
                    Ok(p) => ex.packet((fi, index), r.ts, &p),
                    Err(e) => ex.unreadable((fi, index), r.ts, none_reason(&e)),
                }
                if ex.done() {
                    packets[fi] = index;
                    break 'files;
                }
            }
        }
        packets[fi] = index;
    }
    Explained {
        explanations: ex.finish(),
        policies,
        packets,
        capture_errors,
    }
}
