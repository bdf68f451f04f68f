//! Collation: the flow-log records of every shard, in the order AWS's text would
//! have them, with NODATA and merged SKIPDATA records: pure functions of what the
//! workers closed.
//!
//! Workers ([`crate::engine::Worker`]) close their windows into [`Run`]s, each sorted
//! in record order. A [`Collator`] takes runs from any number of workers, in any
//! interleaving, and writes out, when told that capture time reached `upto`, every
//! record of a window that ended by then:
//! - merged from the runs with a k-way merge (never copied into one vector and sorted
//!   again: a window can hold hundreds of thousands of records);
//! - with one NODATA record per ENI and window without traffic, between the first
//!   packet's window and `upto` (EMULATION §6), unless NODATA is off;
//! - with the SKIPDATA records of several workers for one ENI and window merged into
//!   one, as a single worker would write it.
//!
//! The order is [`FlowRecord`]'s: window start, then ENI, then first packet. So the
//! output does not depend on how many workers there were or how they interleaved.
//! No threads, no files: the caller passes each record to its writer.
//!
//! ```
//! use vpcgate::flowlog::{Collator, FlowRecord, Run};
//! // Two ENIs, 600-s windows, NODATA on; the first packet was at 1,700,000,100.
//! let mut c = Collator::new(2, 600, true);
//! c.first_packet(1_700_000_100);
//! // Nothing was seen: at 1,700,000,400 the window 1,699,999,800..=1,700,000,399 is
//! // over, and each ENI gets a NODATA record for it.
//! let mut out = Vec::new();
//! c.flush::<()>(1_700_000_400, &mut |r| { out.push(r.clone()); Ok(()) }).unwrap();
//! assert_eq!(out.len(), 2);
//! assert!(out.iter().all(|r| r.window_start == 1_699_999_800));
//! ```

#![deny(clippy::disallowed_methods, clippy::disallowed_types)]

use super::aggregate::ClosedWindow;
use super::record::{FlowRecord, LogStatus};
use crate::model::EniNum;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};

/// A run of NODATA windows longer than this is a gap in the timeline (a bogus
/// timestamp), not a quiet network: it is skipped and counted.
pub const MAX_NODATA_GAP_WINDOWS: u64 = 10_000;

/// (window start, ENI, first packet): [`FlowRecord::sort_key`].
type SortKey = (u64, EniNum, u64);

/// Records on their way to the collator, each run in record order: a closed window
/// (its records made as they are written), or records made already.
#[derive(Debug)]
pub enum Run {
    Window(ClosedWindow),
    Records(Vec<FlowRecord>),
}

impl Run {
    pub fn len(&self) -> usize {
        match self {
            Run::Window(w) => w.len(),
            Run::Records(r) => r.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn get(&self, i: usize) -> FlowRecord {
        match self {
            Run::Window(w) => w.get(i),
            Run::Records(r) => r[i].clone(),
        }
    }
}

/// The records not written yet, and what NODATA needs to know.
#[derive(Debug)]
pub struct Collator {
    enis: u32,
    interval: u64,
    nodata: bool,
    /// Runs as the workers sent them, each sorted in record order.
    pending: Vec<Run>,
    /// The first window not yet written (for NODATA), once a packet was seen.
    next_window: Option<u64>,
    /// Records written (NODATA and SKIPDATA included), NODATA records written, and
    /// NODATA windows skipped over a gap in the timeline.
    pub written: u64,
    pub nodata_written: u64,
    pub nodata_skipped: u64,
}

impl Collator {
    /// For `enis` ENIs (stable numbers `0..enis`), windows of `interval` seconds, with
    /// or without NODATA records.
    pub fn new(enis: u32, interval: u64, nodata: bool) -> Collator {
        Collator {
            enis,
            interval,
            nodata,
            pending: Vec::new(),
            next_window: None,
            written: 0,
            nodata_written: 0,
            nodata_skipped: 0,
        }
    }

    /// The capture time (seconds) of the first packet: NODATA starts at its window.
    /// Only the first call counts.
    pub fn first_packet(&mut self, secs: u64) {
        if self.next_window.is_none() {
            self.next_window = Some(secs / self.interval * self.interval);
        }
    }

    /// Takes a worker's closed runs.
    pub fn add(&mut self, runs: impl IntoIterator<Item = Run>) {
        self.pending.extend(runs);
    }

    /// Passes to `emit`, in record order, every record of a window that ended at or
    /// before `upto` (seconds), with the NODATA records of those windows; keeps the
    /// rest. Stops at the first error of `emit`.
    pub fn flush<E>(
        &mut self,
        upto: u64,
        emit: &mut dyn FnMut(&FlowRecord) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut runs = self.take_ready(upto);
        let mut extra = self.nodata_records(upto, &runs);
        extra.extend(merge_skipdata(&mut runs));
        extra.sort_unstable();
        runs.push(Run::Records(extra));
        runs.retain(|r| !r.is_empty());
        self.merge(runs, emit)
    }

    /// Passes every record left to `emit`: the windows up to the one of the last
    /// packet (`last_packet`, seconds) with their NODATA records, then any window of
    /// out-of-order packets after it, without NODATA.
    pub fn finish<E>(
        &mut self,
        last_packet: Option<u64>,
        emit: &mut dyn FnMut(&FlowRecord) -> Result<(), E>,
    ) -> Result<(), E> {
        let interval = self.interval;
        let end = last_packet.map_or(0, |t| (t / interval + 1) * interval);
        let pending_end = self
            .pending
            .iter()
            .filter(|r| !r.is_empty())
            .map(|r| r.get(r.len() - 1).window_start + interval)
            .max()
            .unwrap_or(0);
        self.flush(end.max(pending_end), emit)?;
        self.nodata = false;
        self.flush(u64::MAX, emit)
    }

    /// The ready records of each run are a prefix of it (runs are sorted by window).
    fn take_ready(&mut self, upto: u64) -> Vec<Run> {
        let interval = self.interval;
        let is_ready = |r: &FlowRecord| r.window_start + interval <= upto;
        let mut runs: Vec<Run> = Vec::new();
        let mut kept: Vec<Run> = Vec::new();
        for run in self.pending.drain(..) {
            match run {
                Run::Window(w) if w.window_start() + interval <= upto => runs.push(Run::Window(w)),
                Run::Window(w) => kept.push(Run::Window(w)),
                Run::Records(mut r) => {
                    let n = r.partition_point(is_ready);
                    if n == r.len() {
                        runs.push(Run::Records(r));
                    } else if n == 0 {
                        kept.push(Run::Records(r));
                    } else {
                        let rest = r.split_off(n);
                        runs.push(Run::Records(r));
                        kept.push(Run::Records(rest));
                    }
                }
            }
        }
        self.pending = kept;
        runs
    }

    /// NODATA records for every ENI without a record in each window from the next one
    /// up to `upto`.
    fn nodata_records(&mut self, upto: u64, runs: &[Run]) -> Vec<FlowRecord> {
        let mut out = Vec::new();
        let (true, Some(mut w)) = (self.nodata, self.next_window) else {
            return out;
        };
        let interval = self.interval;
        // The ENIs with records, per window.
        let mut seen: HashMap<u64, HashSet<EniNum>> = HashMap::new();
        for run in runs {
            match run {
                Run::Window(w) => {
                    seen.entry(w.window_start()).or_default().extend(w.enis());
                }
                Run::Records(r) => {
                    for r in r {
                        seen.entry(r.window_start).or_default().insert(r.eni);
                    }
                }
            }
        }
        let none = HashSet::new();
        // The first window that has not ended by `upto`.
        let open = upto / interval * interval;
        let mut gap = 0u64;
        while w + interval <= upto {
            let has = match seen.get(&w) {
                Some(h) => {
                    gap = 0;
                    h
                }
                None => {
                    gap += 1;
                    if gap > MAX_NODATA_GAP_WINDOWS {
                        // Skip to the next window with records, counting.
                        let next = seen
                            .keys()
                            .copied()
                            .filter(|&k| k > w && k < open)
                            .min()
                            .unwrap_or(open);
                        self.nodata_skipped += (next - w) / interval;
                        w = next;
                        continue;
                    }
                    &none
                }
            };
            for eni in (0..self.enis).map(EniNum) {
                if !has.contains(&eni) {
                    out.push(FlowRecord::nodata(eni, w, interval as u32));
                    self.nodata_written += 1;
                }
            }
            w += interval;
        }
        self.next_window = Some(w);
        out
    }

    /// A k-way merge: the run with the smallest head, each time. The heap holds
    /// (window, ENI, first packet) and the run; the heads themselves stay put. Records
    /// of different runs never tie on that key but one way: a packet counted in a
    /// record and skipped at the same ENI, whose SKIPDATA record is in the last run,
    /// after it, as the full record order puts it.
    fn merge<E>(
        &mut self,
        runs: Vec<Run>,
        emit: &mut dyn FnMut(&FlowRecord) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut head: Vec<FlowRecord> = runs.iter().map(|r| r.get(0)).collect();
        let mut at = vec![0usize; runs.len()];
        let mut heap: BinaryHeap<Reverse<(SortKey, usize)>> = head
            .iter()
            .enumerate()
            .map(|(i, r)| Reverse((r.sort_key(), i)))
            .collect();
        let mut last: Option<FlowRecord> = None;
        while let Some(Reverse((_, i))) = heap.pop() {
            let rec = &head[i];
            if cfg!(debug_assertions) {
                debug_assert!(last.as_ref().is_none_or(|l| l <= rec), "{last:?} > {rec:?}");
                last = Some(rec.clone());
            }
            emit(rec)?;
            self.written += 1;
            at[i] += 1;
            if at[i] < runs[i].len() {
                head[i] = runs[i].get(at[i]);
                heap.push(Reverse((head[i].sort_key(), i)));
            }
        }
        Ok(())
    }
}

/// Takes the SKIPDATA records out of `runs` and returns one per ENI and window: each
/// worker counts its own skipped packets, and one record is what a single worker
/// would write.
fn merge_skipdata(runs: &mut [Run]) -> Vec<FlowRecord> {
    let has_skipdata = |run: &Run| match run {
        Run::Records(r) => r.iter().any(|r| r.log_status == LogStatus::SkipData),
        Run::Window(_) => false,
    };
    if !runs.iter().any(has_skipdata) {
        return Vec::new();
    }
    let mut skip: BTreeMap<(u64, EniNum), FlowRecord> = BTreeMap::new();
    for run in runs.iter_mut() {
        let Run::Records(run) = run else { continue };
        run.retain(|r| {
            if r.log_status != LogStatus::SkipData {
                return true;
            }
            skip.entry((r.window_start, r.eni))
                .and_modify(|s| {
                    s.first_seq = s.first_seq.min(r.first_seq);
                    s.start = s.start.min(r.start);
                    s.end = s.end.max(r.end);
                })
                .or_insert_with(|| r.clone());
            false
        });
    }
    skip.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record of traffic at `eni` in the window at `w`, first seen as packet `seq`.
    fn rec(w: u64, eni: u32, seq: u64, status: LogStatus) -> FlowRecord {
        FlowRecord {
            log_status: status,
            first_seq: seq,
            start: w + seq,
            end: w + seq,
            packets: 1,
            ..FlowRecord::nodata(EniNum(eni), w, 600)
        }
    }

    fn collate(runs: Vec<Vec<FlowRecord>>, enis: u32, nodata: bool) -> Vec<FlowRecord> {
        let mut c = Collator::new(enis, 600, nodata);
        c.first_packet(1_200);
        c.add(runs.into_iter().map(Run::Records));
        let mut out = Vec::new();
        c.finish::<()>(Some(1_900), &mut |r| {
            out.push(r.clone());
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn the_order_does_not_depend_on_which_worker_sent_what() {
        let a = vec![
            rec(1_200, 0, 5, LogStatus::Ok),
            rec(1_800, 1, 9, LogStatus::Ok),
        ];
        let b = vec![
            rec(1_200, 0, 2, LogStatus::Ok),
            rec(1_200, 1, 3, LogStatus::Ok),
        ];
        let one = collate(vec![a.clone(), b.clone()], 2, false);
        let other = collate(vec![b, a], 2, false);
        assert_eq!(one, other);
        let keys: Vec<_> = one
            .iter()
            .map(|r| (r.window_start, r.eni.0, r.first_seq))
            .collect();
        assert_eq!(
            keys,
            [(1_200, 0, 2), (1_200, 0, 5), (1_200, 1, 3), (1_800, 1, 9)]
        );
    }

    #[test]
    fn nodata_fills_each_quiet_eni_and_window() {
        // Windows 1,200 and 1,800 (the last packet's); ENI 0 spoke in the first only,
        // ENI 1 never: three NODATA records.
        let out = collate(vec![vec![rec(1_200, 0, 1, LogStatus::Ok)]], 2, true);
        let got: Vec<_> = out
            .iter()
            .map(|r| (r.window_start, r.eni.0, r.log_status))
            .collect();
        assert_eq!(
            got,
            [
                (1_200, 0, LogStatus::Ok),
                (1_200, 1, LogStatus::NoData),
                (1_800, 0, LogStatus::NoData),
                (1_800, 1, LogStatus::NoData),
            ]
        );
    }

    #[test]
    fn skipdata_of_several_workers_is_one_record() {
        let a = vec![rec(1_200, 0, 7, LogStatus::SkipData)];
        let b = vec![rec(1_200, 0, 4, LogStatus::SkipData)];
        let out = collate(vec![a, b], 1, false);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].log_status, LogStatus::SkipData);
        assert_eq!(
            (out[0].first_seq, out[0].start, out[0].end),
            (4, 1_204, 1_207)
        );
    }
}
