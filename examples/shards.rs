//! How evenly a capture's packets spread over workers: each packet's flow shard
//! ([`vpcgate::engine::flow_shard`]) under a ruleset, then the busiest worker's share
//! of the packets for 2, 4, 8 and 16 workers (a worker owns shard mod workers).
//!
//! ```text
//! cargo run --release --example shards -- CAPTURE [RULESET]   # default rulesets/securecart.toml
//! ```
//!
//! Non-first fragments are counted in their own address-pair shard here; the
//! pipeline sends them after their first fragment.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)] // not the core: see clippy.toml
use std::path::PathBuf;
use std::sync::Arc;
use vpcgate::capture::CaptureReader;
use vpcgate::engine::{flow_shard, FLOW_SHARDS};
use vpcgate::policy::Policy;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let capture = PathBuf::from(args.next().ok_or("usage: shards CAPTURE [RULESET]")?);
    let rules = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "rulesets/securecart.toml".to_string()),
    );
    let vpc = vpcgate::load::load_paths(&[rules]).map_err(|e| e.to_string())?;
    let ids: Vec<String> = vpc
        .network_interfaces
        .iter()
        .map(|e| e.id.clone())
        .collect();
    let policy = Policy::compile(Arc::new(vpc), &ids);
    let mut reader = CaptureReader::open(&capture)?;
    let mut per_shard = vec![0u64; FLOW_SHARDS as usize];
    while let Some(p) = reader.next_packet()? {
        if let Ok(pkt) = vpcgate::wire::packet::parse(p.link_type, p.data) {
            per_shard[flow_shard(&pkt, &policy) as usize] += 1;
        }
    }
    let total = per_shard.iter().sum::<u64>().max(1) as f64;
    for workers in [2usize, 4, 8, 16] {
        let mut per = vec![0u64; workers];
        for (shard, n) in per_shard.iter().enumerate() {
            per[shard % workers] += n;
        }
        let busiest = *per.iter().max().unwrap_or(&0) as f64;
        println!(
            "{workers:>2} workers: the busiest gets {:.1} % of the packets (even: {:.1} %)",
            100.0 * busiest / total,
            100.0 / workers as f64
        );
    }
    let largest = *per_shard.iter().max().unwrap_or(&0) as f64;
    println!(
        "largest shard: {:.2} % of the packets",
        100.0 * largest / total
    );
    Ok(())
}
