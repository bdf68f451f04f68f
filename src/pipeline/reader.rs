//! The reader: reads each capture in blocks, parses every frame once, gives it a flow
//! shard (later fragments follow their first, [`FragRoutes`]) and hands the blocks to the
//! workers; ruleset changes travel in-band.

use super::*;

/// Reads every capture in blocks and feeds the workers. Returns after the last
/// block is sent.
pub(super) fn read_all(
    cfg: &ReplayConfig,
    policies: &[Arc<Policy>],
    worker_txs: &[Sender<ToWorker>],
    interrupt: Option<&Arc<AtomicBool>>,
    memory: Option<Arc<[u8]>>,
    summary: &mut Summary,
) -> Result<(), ReplayError> {
    let mut next_id = 0u64;
    let mut seq = 0u64;
    // The rulesets after the first, by the capture time they take effect (ruleset
    // number in `cfg.rulesets`), resolved at the first packet; the next one to apply.
    let mut schedule: Option<Vec<(Timestamp, usize)>> = None;
    let mut next_rules = 0usize;
    let interrupted = || interrupt.is_some_and(|f| f.load(Ordering::Relaxed));
    let progress = if cfg.progress {
        let total: u64 = cfg
            .captures
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} replay [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap()
            .progress_chars("=> "),
        );
        Some(bar)
    } else {
        None
    };
    // Buffers come back here when every holder has dropped their block.
    let (recycle_tx, recycle_rx) = bounded::<Buffers>(QUEUE_DEPTH * 2 + 4);
    let mut done_bytes = 0u64;
    let mut routes = FragRoutes::default();
    // The ruleset generation of the record being parsed.
    let mut generation = 0usize;
    let mut splits: Vec<(u32, usize)> = Vec::new();
    // False when the workers are gone: the merger stopped on an output error.
    let send = |w: Work, next_id: &mut u64| -> bool {
        *next_id += 1;
        let mut alive = true;
        for tx in worker_txs {
            alive &= tx
                .send(ToWorker::Work(Work {
                    id: w.id,
                    blk: w.blk.clone(),
                    from: w.from,
                    to: w.to,
                }))
                .is_ok();
        }
        alive
    };

    'files: for (fi, path) in cfg.captures.iter().enumerate() {
        if interrupted() {
            summary.interrupted = true;
            break;
        }
        let opened = match (&memory, interrupt) {
            (Some(bytes), _) => CaptureReader::from_reader(
                &path.display().to_string(),
                Box::new(io::Cursor::new(bytes.clone())),
            ),
            (None, Some(stop)) if is_stream(path) => open_stream(path, stop),
            (None, _) => CaptureReader::open(path),
        };
        let mut reader = match opened {
            Ok(r) => r,
            // A stream that ended because of the signal is no damaged capture.
            Err(_) if interrupted() => {
                summary.interrupted = true;
                break;
            }
            Err(e) => {
                summary.capture_errors.push(e.to_string());
                continue;
            }
        };
        let mut index = 1u64;
        loop {
            let Buffers {
                mut block,
                mut parsed,
            } = recycle_rx.try_recv().unwrap_or_default();
            let read = reader.read_block(&mut block, BLOCK_PACKETS);
            if let Err(e) = read {
                if interrupted() {
                    summary.interrupted = true;
                    break 'files;
                }
                summary.capture_errors.push(e.to_string());
                break;
            }
            let n = block.records.len() as u32;
            if n == 0 {
                break;
            }
            let schedule = schedule.get_or_insert_with(|| {
                let first = block.records[0].ts;
                let mut v: Vec<(Timestamp, usize)> = cfg
                    .rulesets
                    .iter()
                    .enumerate()
                    .skip(1)
                    .map(|(i, r)| (r.from.map_or(first, |w| w.resolve(first)), i))
                    .collect();
                v.sort_by_key(|&(t, _)| t);
                summary.ruleset_from = vec![None; cfg.rulesets.len()];
                for &(t, i) in &v {
                    summary.ruleset_from[i] = Some(t);
                }
                v
            });
            // Where a ruleset takes effect: (record, ruleset) pairs.
            splits.clear();
            let mut from = 0usize;
            let mut next = next_rules;
            while let Some(&(t, rules)) = schedule.get(next) {
                let Some(at) = block.records[from..].iter().position(|r| r.ts >= t) else {
                    break;
                };
                from += at;
                splits.push((from as u32, rules));
                next += 1;
            }
            // Parsed here once, not by every worker: the reader has just touched
            // these bytes, and a worker then skips other shards' frames unread.
            parsed.clear();
            let mut split = splits.iter().peekable();
            for (i, r) in block.records.iter().enumerate() {
                while let Some(&(_, rules)) = split.next_if(|s| s.0 as usize == i) {
                    // A new ruleset forgets first fragments, as the engine does.
                    routes.clear();
                    generation = rules;
                }
                parsed.push(
                    packet::parse(r.link_type, block.frame(i))
                        .ok()
                        .map(|p| (routes.shard(&p, r.ts, &policies[generation]), p)),
                );
            }
            let blk = Arc::new(InBlock {
                block,
                parsed,
                file: fi as u32,
                first_seq: seq,
                first_index: index,
                recycle: recycle_tx.clone(),
            });
            seq += u64::from(n);
            index += u64::from(n);
            // Split the block where a ruleset takes effect.
            let mut from = 0u32;
            for &(at, rules) in &splits {
                if at > from
                    && !send(
                        Work {
                            id: next_id,
                            blk: blk.clone(),
                            from,
                            to: at,
                        },
                        &mut next_id,
                    )
                {
                    break 'files;
                }
                for tx in worker_txs {
                    let _ = tx.send(ToWorker::SetPolicy(rules));
                }
                next_rules += 1;
                from = at;
            }
            if from < n
                && !send(
                    Work {
                        id: next_id,
                        blk: blk.clone(),
                        from,
                        to: n,
                    },
                    &mut next_id,
                )
            {
                break 'files;
            }
            if let Some(bar) = &progress {
                bar.set_position(done_bytes + reader.bytes_read());
            }
            // After the block, not before: what was read (a stream's input that was
            // ready when the signal came) is processed and written.
            if interrupted() {
                summary.interrupted = true;
                break 'files;
            }
        }
        done_bytes += reader.bytes_read();
    }
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    Ok(())
}

/// Whether a capture path is a stream that may sit idle: standard input (`-`), a
/// FIFO, a terminal or a socket (`<(command)` gives a pipe).
pub(super) fn is_stream(path: &Path) -> bool {
    path.as_os_str() == "-" || std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir())
}

/// Opens a stream capture whose reads end when `stop` is set and nothing is ready.
pub(super) fn open_stream(
    path: &Path,
    stop: &Arc<AtomicBool>,
) -> Result<CaptureReader, CaptureError> {
    use crate::sys::Interruptible;
    if path.as_os_str() == "-" {
        let stdin = std::io::stdin().as_fd().try_clone_to_owned();
        return match stdin {
            Ok(fd) => CaptureReader::from_reader(
                "<stdin>",
                Box::new(Interruptible::new(std::fs::File::from(fd), stop.clone())),
            ),
            Err(_) => CaptureReader::open(path),
        };
    }
    match crate::sys::open_stream(path) {
        Ok(f) => CaptureReader::from_reader(
            &path.display().to_string(),
            Box::new(Interruptible::new(f, stop.clone())),
        ),
        Err(_) => CaptureReader::open(path),
    }
}

/// The reader's memory of first fragments, to send each later fragment to the worker
/// that evaluated its first fragment and remembers its verdict (the engine's fragment
/// memory): a later fragment has no ports, so [`flow_shard`] alone would send it to
/// the shard of its address pair.
///
/// It remembers what the engine remembers, for as long ([`FRAGMENT_MEMORY_SECS`] of
/// capture time), and forgets everything at a ruleset change as the engine does.
/// DHCP first fragments are not remembered (the engine exempts them before it
/// remembers anything). It holds at most 4 × [`FRAGMENT_MEMORY_MAX`] entries; beyond
/// that (a flood of first fragments) a later fragment may reach another worker than
/// its first and be judged with unknown ports, as beyond the engine's own bound.
#[derive(Default)]
pub(crate) struct FragRoutes {
    /// (source, destination, protocol, id) → (shard, capture time in ns).
    map: HashMap<(IpAddr, IpAddr, u8, u32), (u8, u64)>,
    /// Capture time of the last pruning of expired entries.
    pruned: u64,
}

impl FragRoutes {
    const MAX: usize = 4 * FRAGMENT_MEMORY_MAX;
    const NS: u64 = crate::wire::packet::NANOS_PER_SEC;

    /// The shard of `p`, remembering first fragments.
    pub(crate) fn shard(&mut self, p: &Packet, ts: Timestamp, policy: &Policy) -> u8 {
        match p.fragment {
            Fragment::None => flow_shard(p, policy),
            Fragment::First { id } => {
                let shard = flow_shard(p, policy);
                let dhcp = p.protocol == PROTO_UDP
                    && (67..=68).contains(&p.src_port)
                    && (67..=68).contains(&p.dst_port);
                if !dhcp {
                    self.remember((p.src, p.dst, p.protocol, id), shard, ts.0);
                }
                shard
            }
            Fragment::Later { id } => match self.map.get(&(p.src, p.dst, p.protocol, id)) {
                Some(&(shard, at))
                    if ts.0.saturating_sub(at) <= FRAGMENT_MEMORY_SECS * Self::NS =>
                {
                    shard
                }
                _ => flow_shard(p, policy),
            },
        }
    }

    fn remember(&mut self, key: (IpAddr, IpAddr, u8, u32), shard: u8, now: u64) {
        if self.map.len() >= Self::MAX && !self.map.contains_key(&key) {
            // Prune expired entries, at most once per second of capture time, so a
            // flood costs one pass per second, not one per packet.
            if now.saturating_sub(self.pruned) < Self::NS {
                return;
            }
            self.pruned = now;
            let keep = FRAGMENT_MEMORY_SECS * Self::NS;
            self.map
                .retain(|_, &mut (_, at)| now.saturating_sub(at) <= keep);
            if self.map.len() >= Self::MAX {
                return;
            }
        }
        self.map.insert(key, (shard, now));
    }

    fn clear(&mut self) {
        self.map.clear();
    }
}
