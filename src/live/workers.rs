//! The live loop with several workers (`--workers N`, N > 1): multi-queue TAPs, a
//! worker per queue, each owning the flow shards of its share (manual: "Live mode").
//!
//! - Every TAP is opened with N queues; worker `w` reads queue `w` of every TAP (the
//!   kernel spreads the flows of a TAP over its queues).
//! - A worker parses each frame it reads and computes the same symmetric flow shard
//!   as replay ([`crate::engine::flow_shard`]); shard `s` belongs to worker `s % N`.
//!   Frames of another worker's shards are copied into a batch for that worker and
//!   handed over, a batch at a time, over a bounded channel, with one `eventfd` write
//!   per batch to wake it: no lock and no atomic per frame. A full channel drops the
//!   batch, counted (`worker-queue-full`), as a full NIC ring would.
//! - Fragments go first to the worker of their address pair, which sends each later
//!   fragment where its first fragment went (see [`owner`]).
//! - Frames that are not IP, or that a worker cannot parse, are handled by the worker
//!   that read them (ARP and neighbour answers need no state).
//! - Each worker owns a [`Router`] of its own: its connection tracking and flow-log
//!   aggregation; it writes the frames it forwards to its own queue of the destination
//!   TAP.
//! - The calling thread collates: flow-log records of every worker go through one
//!   [`Collator`] (order, NODATA) as each window closes on every worker's clock, and
//!   `--capture` and `--verdicts` are merged in the order of a number each worker
//!   gives its frames as it judges them: the time, made unique (worker `w` of N takes
//!   the numbers that are `w` modulo N, each above its last) and the same number orders
//!   the flow-log records. Each worker reports how far its numbers went, so the merge
//!   waits for no one for long; packet numbers are given in that merged order. So a
//!   replay of the capture gives the same verdicts and records in the same order.
//! - A reload is loaded and checked once, then handed to every worker, which puts it in
//!   force between two batches; the tracked connections kept are summed.

use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::router::{Port, Routed, Router, RouterStats};
use super::tap::{capture_vnet_into, wall_clock, Control, Device, Outputs, Reload, Status};
use crate::flowlog::{Collator, FlowRecord, Run};
use crate::model::Vpc;
use crate::pipeline::FragRoutes;
use crate::wire::packet::{self, linktype, Fragment, Timestamp};
use crate::wire::vnet::VNET_HDR_LEN;

/// Frames handed from one worker to another: copies, with the device each came from.
#[derive(Default)]
struct Batch {
    data: Vec<u8>,
    /// (device index, end of the frame in `data`).
    frames: Vec<(usize, usize)>,
}

/// One frame judged, for the capture and the verdicts.
struct Judged {
    ts: Timestamp,
    /// Its worker's number for it ([`Router::frame_seq`]): the merge order.
    seq: u64,
    /// The wire packets of the frame (what `--capture` gets), one after the other.
    capture: Vec<Vec<u8>>,
    /// How many wire packets it stood for (the numbers it takes).
    wire: u64,
    /// Its verdict lines, numbered by the worker's router (renumbered when merged).
    verdicts: Vec<u8>,
}

enum ToMain {
    /// Frames judged, in the order judged, and the least number the worker's next
    /// frame can get.
    Judged {
        worker: usize,
        frames: Vec<Judged>,
        upto: u64,
    },
    /// Flow-log records of the windows that ended by `upto` on the worker's clock.
    Tick {
        worker: usize,
        upto: Timestamp,
        records: Vec<FlowRecord>,
        first_frame: Option<Timestamp>,
        frames: Vec<u64>,
        rejected: u64,
    },
    /// The worker stopped: its last records and counters.
    Done {
        worker: usize,
        records: Vec<FlowRecord>,
        frame_times: (Option<Timestamp>, Option<Timestamp>),
        stats: RouterStats,
    },
    Failed(String),
}

/// The most frames read from one queue before the others get their turn.
const BATCH_FRAMES: usize = 256;
const FRAME_MAX: usize = 65_535 + 18 + VNET_HDR_LEN;

/// The worker that judges `frame`, as seen by worker `w`; `None` for frames any
/// worker handles (not IP, multicast, unparseable).
///
/// Fragments first go to the worker of their address pair and protocol (the shard a
/// packet without ports gets), the same for every fragment of a datagram. That worker
/// remembers where each first fragment's flow shard sent it ([`FragRoutes`], as
/// replay's reader does) and sends the later fragments there; a later fragment whose
/// first it has not seen stays with it, as in replay.
fn owner(
    frame: &[u8],
    policy: &crate::policy::Policy,
    n: usize,
    w: usize,
    frags: &mut FragRoutes,
) -> Option<usize> {
    let et = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    if !(et == 0x0800 || et == 0x86dd) || frame[0] & 1 == 1 {
        return None;
    }
    let p = packet::parse(linktype::ETHERNET, frame).ok()?;
    if p.fragment == Fragment::None {
        return Some(crate::engine::flow_shard(&p, policy) as usize % n);
    }
    Some(fragment_owner(&p, policy, n, w, frags))
}

/// The worker a fragment goes to next, as seen by worker `w`: its coordinator (the
/// worker of its address pair and protocol), or, at the coordinator, where its first
/// fragment went.
fn fragment_owner(
    p: &packet::Packet,
    policy: &crate::policy::Policy,
    n: usize,
    w: usize,
    frags: &mut FragRoutes,
) -> usize {
    let coordinator = fragment_coordinator(p, policy, n);
    if coordinator != w {
        return coordinator;
    }
    frags.shard(p, wall_clock(), policy) as usize % n
}

/// The worker of a fragment's address pair and protocol (the shard of a packet
/// without ports): the same for every fragment of a datagram.
fn fragment_coordinator(p: &packet::Packet, policy: &crate::policy::Policy, n: usize) -> usize {
    let mut pair = *p;
    (pair.src_port, pair.dst_port) = (0, 0);
    crate::engine::flow_shard(&pair, policy) as usize % n
}

/// Where a frame handed to worker `w` goes: `Some` for a fragment that `w`
/// coordinates and whose first fragment went to another worker; `None` (judge it
/// here) for everything else, fragments the coordinator sent here included.
fn handed_fragment_owner(
    frame: &[u8],
    policy: &crate::policy::Policy,
    n: usize,
    w: usize,
    frags: &mut FragRoutes,
) -> Option<usize> {
    let p = packet::parse(linktype::ETHERNET, frame).ok()?;
    if p.fragment == Fragment::None || fragment_coordinator(&p, policy, n) != w {
        return None;
    }
    Some(frags.shard(&p, wall_clock(), policy) as usize % n).filter(|&o| o != w)
}

/// Hands every non-empty batch in `out` to its worker.
fn hand_over(out: &mut [Batch], links: &Links, router: &mut Router) {
    for (o, b) in out.iter_mut().enumerate() {
        if b.frames.is_empty() {
            continue;
        }
        let batch = std::mem::take(b);
        let count = batch.frames.len();
        match links.handoff[o].0.try_send(batch) {
            Ok(()) => {
                router.count_handed_off(count as u64);
                wake(&links.wake[o]);
            }
            Err(_) => {
                for _ in 0..count {
                    router.count_drop("worker-queue-full");
                }
            }
        }
    }
}

fn wake(fd: &OwnedFd) {
    let _ = rustix::io::write(fd, &1u64.to_ne_bytes());
}

struct Worker<'a> {
    w: usize,
    n: usize,
    router: Router,
    devices: &'a [Device],
    capture: bool,
    verdicts: bool,
    judged: Vec<Judged>,
    scratch: Vec<u8>,
    frames: Vec<u64>,
    igw_peer: &'a AtomicU64,
}

impl Worker<'_> {
    /// Judges and forwards one frame this worker owns.
    fn process(&mut self, dev: usize, frame: &mut [u8]) {
        let d = &self.devices[dev];
        let vnet = d.offloads.is_some();
        let now = wall_clock();
        let mut capture = Vec::new();
        if self.capture {
            if vnet {
                capture_vnet_into(frame, &mut self.scratch, &mut capture);
            } else {
                capture.push(frame.to_vec());
            }
        }
        self.frames[dev] += 1;
        let before = self.router.stats().wire_packets;
        let routed = self.router.route_in_place(d.port, frame, vnet, now);
        let wire = self.router.stats().wire_packets - before;
        let write = |to: Port, f: &[u8]| {
            if let Some(t) = self.devices.iter().find(|t| t.port == to) {
                let q = &t.queues[self.w % t.queues.len()];
                // A full or downed device drops the frame, as a wire would.
                let _ = (&**q).write(f);
            }
        };
        match routed {
            Routed::Forward(to) => write(to, frame),
            Routed::Frames(v) => {
                for (to, f) in v {
                    write(to, &f);
                }
            }
        }
        if self.capture || self.verdicts {
            self.judged.push(Judged {
                ts: now,
                seq: self.router.frame_seq(),
                capture,
                wire,
                verdicts: self.router.take_verdicts(),
            });
        }
    }

    /// Shares a newly learned internet peer MAC, or takes one another worker learned.
    fn sync_igw_peer(&mut self) {
        let shared = self.igw_peer.load(Ordering::Relaxed);
        match self.router.igw_peer() {
            Some(m) => {
                let mut b = [0u8; 8];
                b[..6].copy_from_slice(&m);
                let v = u64::from_le_bytes(b) | 1 << 63;
                if v != shared {
                    self.igw_peer.store(v, Ordering::Relaxed);
                }
            }
            None if shared != 0 => {
                let b = shared.to_le_bytes();
                let mut m = [0u8; 6];
                m.copy_from_slice(&b[..6]);
                self.router.set_igw_peer(m);
            }
            None => {}
        }
    }
}

/// Both ends of a channel.
type Pair<T> = (crossbeam_channel::Sender<T>, crossbeam_channel::Receiver<T>);

/// How the workers and the calling thread reach each other.
struct Links {
    /// Each worker's inbound hand-off channel.
    handoff: Vec<Pair<Batch>>,
    /// Each worker's `eventfd`, written to wake it (one write per batch handed over).
    wake: Vec<OwnedFd>,
    /// Each worker's reload channel, and where the answers go.
    reload: Vec<Pair<Arc<Vpc>>>,
    reloaded: crossbeam_channel::Sender<Result<usize, String>>,
    to_main: crossbeam_channel::Sender<ToMain>,
}

fn run_worker(mut me: Worker<'_>, links: &Links, stop: &AtomicBool) {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let (w, n) = (me.w, me.n);
    let queues: Vec<(usize, Arc<std::fs::File>)> = me
        .devices
        .iter()
        .enumerate()
        .filter_map(|(i, d)| d.queues.get(w).map(|q| (i, q.clone())))
        .collect();
    let mut buf = vec![0u8; FRAME_MAX];
    let mut out: Vec<Batch> = (0..n).map(|_| Batch::default()).collect();
    let mut last_tick = Instant::now();
    let wait = Timespec {
        tv_sec: 0,
        tv_nsec: 250_000_000,
    };
    let mut ready = vec![false; queues.len()];
    let mut frags = FragRoutes::default();
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        while let Ok(vpc) = links.reload[w].1.try_recv() {
            let _ = links.reloaded.send(me.router.reload(vpc));
        }
        if !stopping {
            let mut fds: Vec<PollFd> = queues
                .iter()
                .map(|(_, q)| PollFd::new(&**q, PollFlags::IN | PollFlags::ERR))
                .collect();
            fds.push(PollFd::new(&links.wake[w], PollFlags::IN));
            match poll(&mut fds, Some(&wait)) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => {
                    let _ = links.to_main.send(ToMain::Failed(format!("poll: {e}")));
                    return;
                }
            }
            for (r, fd) in ready.iter_mut().zip(&fds) {
                *r = !fd.revents().is_empty();
            }
            if !fds[queues.len()].revents().is_empty() {
                let mut b = [0u8; 8];
                let _ = rustix::io::read(&links.wake[w], &mut b);
            }
        } else {
            // Stopping: what is still queued is read and judged, then the end.
            ready.iter_mut().for_each(|r| *r = true);
        }
        me.sync_igw_peer();
        let policy = me.router.policy().clone();
        let mut read_any = false;
        for (k, (dev, q)) in queues.iter().enumerate() {
            if !ready[k] {
                continue;
            }
            let vnet = me.devices[*dev].offloads.is_some();
            for _ in 0..BATCH_FRAMES {
                let len = match (&**q).read(&mut buf) {
                    Ok(len) => len,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        let name = &me.devices[*dev].name;
                        let _ = links
                            .to_main
                            .send(ToMain::Failed(format!("reading {name}: {e}")));
                        return;
                    }
                };
                read_any = true;
                let frame = &mut buf[..len];
                let at = if vnet { VNET_HDR_LEN.min(len) } else { 0 };
                match owner(&frame[at..], &policy, n, w, &mut frags) {
                    Some(o) if o != w => {
                        let b = &mut out[o];
                        b.data.extend_from_slice(frame);
                        b.frames.push((*dev, b.data.len()));
                    }
                    _ => me.process(*dev, frame),
                }
            }
        }
        hand_over(&mut out, links, &mut me.router);
        while let Ok(mut b) = links.handoff[w].1.try_recv() {
            read_any = true;
            let mut start = 0;
            for &(dev, end) in &b.frames {
                let frame = &mut b.data[start..end];
                start = end;
                let at = if me.devices[dev].offloads.is_some() {
                    VNET_HDR_LEN.min(frame.len())
                } else {
                    0
                };
                // A fragment this worker coordinates goes where its first went.
                if let Some(o) = handed_fragment_owner(&frame[at..], &policy, n, w, &mut frags) {
                    let b = &mut out[o];
                    b.data.extend_from_slice(frame);
                    b.frames.push((dev, b.data.len()));
                    continue;
                }
                me.process(dev, frame);
            }
        }
        hand_over(&mut out, links, &mut me.router);
        let now = wall_clock();
        if me.capture || me.verdicts {
            let frames = std::mem::take(&mut me.judged);
            let _ = links.to_main.send(ToMain::Judged {
                worker: w,
                frames,
                upto: me.router.next_seq_bound(now),
            });
        }
        if stopping && !read_any {
            break;
        }
        if last_tick.elapsed() >= Duration::from_secs(1) {
            last_tick = Instant::now();
            let records = me.router.close_records(now);
            let _ = links.to_main.send(ToMain::Tick {
                worker: w,
                upto: now,
                records,
                first_frame: me.router.frame_times().0,
                frames: me.frames.clone(),
                rejected: me.router.stats().rejected,
            });
        }
    }
    let records = me.router.close_all_records();
    let _ = links.to_main.send(ToMain::Done {
        worker: w,
        records,
        frame_times: me.router.frame_times(),
        stats: me.router.stats().clone(),
    });
}

/// The reload of every worker: checked once on the calling thread's router, then put
/// in force by each worker between two batches.
struct AllWorkers<'a> {
    controller: &'a mut Router,
    links: &'a Links,
    replies: &'a crossbeam_channel::Receiver<Result<usize, String>>,
}

impl Reload for AllWorkers<'_> {
    fn reload(&mut self, vpc: Arc<Vpc>) -> Result<usize, String> {
        self.controller.reload(vpc.clone())?;
        for (i, (tx, _)) in self.links.reload.iter().enumerate() {
            let _ = tx.send(vpc.clone());
            wake(&self.links.wake[i]);
        }
        let mut kept = 0;
        for _ in 0..self.links.reload.len() {
            match self.replies.recv_timeout(Duration::from_secs(10)) {
                Ok(Ok(k)) => kept += k,
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err("a worker did not answer the reload".into()),
            }
        }
        Ok(kept)
    }
}

/// Capture and verdicts of every worker, merged by the time each frame was judged.
struct Merge {
    queues: Vec<std::collections::VecDeque<Judged>>,
    upto: Vec<Option<u64>>,
    number: u64,
}

impl Merge {
    /// Writes every frame whose number no worker can undercut any more, in the order
    /// of the numbers (which follow the time each was judged; the flow-log records are
    /// ordered by the same numbers), numbering the wire packets as it goes.
    fn emit(&mut self, out: &mut Outputs, all: bool) -> io::Result<()> {
        let bound = if all {
            None
        } else {
            match self.upto.iter().copied().collect::<Option<Vec<_>>>() {
                Some(v) => v.into_iter().min(),
                None => return Ok(()),
            }
        };
        let mut lines = Vec::new();
        loop {
            let next = self
                .queues
                .iter()
                .enumerate()
                .filter_map(|(w, q)| q.front().map(|j| (j.seq, w)))
                .min();
            let Some((seq, w)) = next else { break };
            if bound.is_some_and(|b| seq >= b) {
                break;
            }
            let j = self.queues[w].pop_front().expect("a front");
            if let Some(c) = out.capture.as_mut() {
                for f in &j.capture {
                    c.write_packet(j.ts, linktype::ETHERNET, f, f.len() as u32)?;
                }
            }
            // Renumber the lines: the i-th line of the frame is its i-th wire packet.
            for (i, line) in j.verdicts.split_inclusive(|&b| b == b'\n').enumerate() {
                let rest = line
                    .iter()
                    .position(|&b| b == b',')
                    .map_or(line, |p| &line[p..]);
                lines.extend_from_slice(
                    format!("{{\"packet\":{}", self.number + 1 + i as u64).as_bytes(),
                );
                lines.extend_from_slice(rest);
            }
            self.number += j.wire;
        }
        if let Some(v) = out.verdicts.as_mut() {
            if !lines.is_empty() {
                v.write_all(&lines)?;
                v.flush()?;
            }
        }
        Ok(())
    }
}

/// [`super::tap::serve`] with `n` workers (every device opened with `n` queues, or
/// fewer for a persistent single-queue TAP): see the module documentation. `router`
/// is the template of the workers' routers; it checks reloads and ends with the sum of
/// their counters, for the summary.
pub fn serve_workers(
    router: &mut Router,
    devices: &[Device],
    out: &mut Outputs,
    ctl: &mut Control<'_>,
    n: usize,
) -> io::Result<()> {
    for d in devices {
        for q in &d.queues {
            rustix::io::ioctl_fionbio(&**q, true)?;
        }
    }
    let (to_main, from_workers) = crossbeam_channel::bounded::<ToMain>(4096);
    let (reloaded, replies) = crossbeam_channel::unbounded();
    let mut wake_fds = Vec::new();
    for _ in 0..n {
        wake_fds.push(rustix::event::eventfd(
            0,
            rustix::event::EventfdFlags::NONBLOCK | rustix::event::EventfdFlags::CLOEXEC,
        )?);
    }
    let links = Links {
        handoff: (0..n).map(|_| crossbeam_channel::bounded(64)).collect(),
        wake: wake_fds,
        reload: (0..n).map(|_| crossbeam_channel::unbounded()).collect(),
        reloaded,
        to_main,
    };
    let stop_workers = AtomicBool::new(false);
    let igw_peer = AtomicU64::new(0);
    let keep = out.capture.is_some() || out.verdicts.is_some();
    let templates: Vec<Router> = (0..n).map(|w| router.worker(w, n)).collect();
    let interval = u64::from(router.interval_secs());
    let mut collator = Collator::new(router.metas().len() as u32, interval, router.nodata());
    std::thread::scope(|sc| -> io::Result<()> {
        for (w, r) in templates.into_iter().enumerate() {
            let me = Worker {
                w,
                n,
                router: r,
                devices,
                capture: out.capture.is_some(),
                verdicts: out.verdicts.is_some(),
                judged: Vec::new(),
                scratch: Vec::new(),
                frames: vec![0; devices.len()],
                igw_peer: &igw_peer,
            };
            let (links, stop) = (&links, &stop_workers);
            std::thread::Builder::new()
                .name(format!("live-worker-{w}"))
                .spawn_scoped(sc, move || run_worker(me, links, stop))?;
        }
        let mut merge = Merge {
            queues: (0..n).map(|_| Default::default()).collect(),
            upto: vec![None; n],
            number: 0,
        };
        let mut flow_upto: Vec<Option<u64>> = vec![None; n];
        let mut first: Option<Timestamp> = None;
        let mut told_first = false;
        let mut last: Option<Timestamp> = None;
        let mut frames: Vec<Vec<u64>> = vec![vec![0; devices.len()]; n];
        let mut rejected = vec![0u64; n];
        let mut status = Status::default();
        let mut last_status = Instant::now();
        let mut done = 0;
        let mut result = Ok(());
        let write_records =
            |router: &Router, recs: &mut Vec<FlowRecord>, out: &mut Outputs| -> io::Result<()> {
                if let Some(w) = out.flow_log.as_mut() {
                    if !recs.is_empty() {
                        for r in recs.iter() {
                            w.write(r, &router.metas()[r.eni.get()])?;
                        }
                        w.flush()?;
                    }
                }
                recs.clear();
                Ok(())
            };
        let mut recs = Vec::new();
        while done < n {
            if ctl.stop.load(Ordering::Relaxed) {
                stop_workers.store(true, Ordering::Relaxed);
            }
            if ctl.reload.swap(false, Ordering::Relaxed) {
                let mut all = AllWorkers {
                    controller: router,
                    links: &links,
                    replies: &replies,
                };
                (ctl.on_reload)(&mut all);
            }
            let msg = match from_workers.recv_timeout(Duration::from_millis(250)) {
                Ok(m) => m,
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => continue,
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
            };
            match msg {
                ToMain::Judged {
                    worker,
                    frames,
                    upto,
                } => {
                    merge.queues[worker].extend(frames);
                    merge.upto[worker] = Some(upto);
                    if keep {
                        merge.emit(out, false)?;
                    }
                }
                ToMain::Tick {
                    worker,
                    upto,
                    records,
                    first_frame,
                    frames: f,
                    rejected: r,
                } => {
                    if let Some(t) = first_frame {
                        first = Some(first.map_or(t, |x: Timestamp| x.min(t)));
                    }
                    collator.add([Run::Records(records)]);
                    flow_upto[worker] = Some(upto.secs());
                    frames[worker] = f;
                    rejected[worker] = r;
                    if let Some(upto) = flow_upto.iter().copied().collect::<Option<Vec<_>>>() {
                        let upto = upto.into_iter().min().unwrap_or(0);
                        if let (false, Some(t)) = (told_first, first) {
                            collator.first_packet(t.secs());
                            told_first = true;
                        }
                        let _ = collator.flush::<()>(upto, &mut |r| {
                            recs.push(r.clone());
                            Ok(())
                        });
                        write_records(router, &mut recs, out)?;
                    }
                }
                ToMain::Done {
                    worker,
                    records,
                    frame_times,
                    stats,
                } => {
                    done += 1;
                    collator.add([Run::Records(records)]);
                    if let Some(t) = frame_times.0 {
                        first = Some(first.map_or(t, |x: Timestamp| x.min(t)));
                    }
                    if let Some(t) = frame_times.1 {
                        last = Some(last.map_or(t, |x: Timestamp| x.max(t)));
                    }
                    merge.upto[worker] = None;
                    router.absorb_stats(&stats);
                }
                ToMain::Failed(e) => {
                    result = Err(io::Error::other(e));
                    stop_workers.store(true, Ordering::Relaxed);
                }
            }
            if let Some(labels) = out.status.as_ref() {
                if last_status.elapsed() >= Duration::from_secs(1) {
                    last_status = Instant::now();
                    let mut sum = vec![0u64; devices.len()];
                    for f in &frames {
                        for (s, x) in sum.iter_mut().zip(f) {
                            *s += x;
                        }
                    }
                    eprint!(
                        "\r\x1b[K{}",
                        status.line(labels, &sum, rejected.iter().sum())
                    );
                }
            }
        }
        if out.status.is_some() {
            eprintln!();
        }
        merge.emit(out, true)?;
        if let (false, Some(t)) = (told_first, first) {
            collator.first_packet(t.secs());
        }
        let _ = collator.finish::<()>(last.map(|t| t.secs()), &mut |r| {
            recs.push(r.clone());
            Ok(())
        });
        write_records(router, &mut recs, out)?;
        if let Some(c) = out.capture.take() {
            c.finish()?;
        }
        result
    })
}
