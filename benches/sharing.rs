//! Owned per-worker flow tables against one shared `dashmap::DashMap`: the
//! measurement the "Fast path" issue asks for before dashmap may be used.
//!
//! Both sides do the same work: N threads each look up, and insert when missing, the
//! connection keys of their share of a flow mix (200k flows, 2M lookups, keys drawn
//! with a skew so that flows repeat as in a capture). "owned": each thread has its own
//! `hashbrown` map (foldhash) and only its own flows, as vpcgate's workers do after the
//! symmetric flow hash. "dashmap": every thread uses one `DashMap` (same hasher) for
//! its share of the flows, the design the issue suggests weighing.
//!
//! `cargo bench --bench sharing` prints ns per lookup for 1 and 2 threads. The numbers
//! from the project's machine are in README.md ("Benchmarks").
#![allow(clippy::disallowed_methods, clippy::disallowed_types)] // not the core: see clippy.toml

use std::time::Instant;

type Key = (u32, u32, u16, u16, u8);

#[derive(Clone, Copy, Default)]
struct Entry {
    last_seen: u64,
    packets: u32,
}

fn keys(n_lookups: usize, n_flows: u32) -> Vec<Key> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..n_lookups)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Skewed: half of the lookups go to a tenth of the flows.
            let f = if x & 1 == 0 {
                (x >> 8) as u32 % (n_flows / 10)
            } else {
                (x >> 8) as u32 % n_flows
            };
            (
                0x0a00_0000 | f,
                0xc000_0200 | (f >> 16),
                (f & 0xffff) as u16,
                443,
                6,
            )
        })
        .collect()
}

fn owned(share: &[Key]) -> u64 {
    let mut m: hashbrown::HashMap<Key, Entry, foldhash::fast::RandomState> =
        hashbrown::HashMap::default();
    let mut hits = 0u64;
    for (t, k) in share.iter().enumerate() {
        let e = m.entry(*k).or_default();
        hits += u64::from(e.packets > 0);
        e.packets += 1;
        e.last_seen = t as u64;
    }
    hits
}

fn shared(map: &dashmap::DashMap<Key, Entry, foldhash::fast::RandomState>, share: &[Key]) -> u64 {
    let mut hits = 0u64;
    for (t, k) in share.iter().enumerate() {
        let mut e = map.entry(*k).or_default();
        hits += u64::from(e.packets > 0);
        e.packets += 1;
        e.last_seen = t as u64;
    }
    hits
}

fn main() {
    // `cargo test --benches` runs bench targets with `--bench` absent: stay quick then.
    let quick = !std::env::args().any(|a| a == "--bench");
    let (lookups, flows) = if quick {
        (20_000, 2_000)
    } else {
        (2_000_000, 200_000)
    };
    let all = keys(lookups, flows);
    println!("{lookups} lookups over {flows} flows (median of 5 runs)");
    for threads in [1usize, 2] {
        // Split as the pipeline does: by a hash of the flow, so each flow has one owner.
        let shares: Vec<Vec<Key>> = (0..threads)
            .map(|t| {
                all.iter()
                    .copied()
                    .filter(|k| (k.0 as usize).wrapping_mul(0x9e37_79b9) >> 7 & (threads - 1) == t)
                    .collect()
            })
            .collect();
        let mut o = Vec::new();
        let mut d = Vec::new();
        for _ in 0..5 {
            let t0 = Instant::now();
            std::thread::scope(|s| {
                for sh in &shares {
                    s.spawn(move || owned(sh));
                }
            });
            o.push(t0.elapsed().as_nanos() as f64 / lookups as f64);
            let map = dashmap::DashMap::with_hasher(foldhash::fast::RandomState::default());
            let t0 = Instant::now();
            std::thread::scope(|s| {
                for sh in &shares {
                    let map = &map;
                    s.spawn(move || shared(map, sh));
                }
            });
            d.push(t0.elapsed().as_nanos() as f64 / lookups as f64);
        }
        o.sort_by(f64::total_cmp);
        d.sort_by(f64::total_cmp);
        println!(
            "{threads} thread(s): owned hashbrown {:.1} ns/lookup, shared dashmap {:.1} ns/lookup (wall time / all lookups)",
            o[2], d[2]
        );
    }
}
