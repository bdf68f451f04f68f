//! TAP devices and the live loop of one worker: one thread reads every device, routes
//! and writes, with the wall clock as the time of each frame.
//!
//! **Offloads.** Devices are opened with `IFF_VNET_HDR` and offloads on (checksum, TSO
//! for IPv4 and IPv6, USO where the kernel has it; [`crate::sys::tun::open_tap_vnet`]),
//! unless the caller asks for plain frames. The hosts behind the TAPs then hand over
//! GSO super-frames of up to 64 KiB and frames with partial checksums: each is read
//! once, judged once by the router ([`Router::handle_vnet_frame`]: counted as the wire
//! packets it stands for), and written whole, with its header, to the destination TAP,
//! whose kernel cuts it or hands it on whole. `--capture` gets what the wire would
//! carry: super-frames are cut in software ([`crate::wire::vnet::Plan::segment`]) and
//! partial checksums finished, so that replay of the capture judges and counts the
//! same packets.
//!
//! **One thread** ([`serve`]): it waits until a device is readable, reads frames from
//! it into one buffer until the kernel has none left (EAGAIN) or a batch's worth was
//! read, and routes each in place: a forwarded frame is written from the buffer it was
//! read into. No hand-off between threads, no copy beyond the kernel's.
//!
//! Fail closed: the TAP devices are the only path between the ENIs' hosts; when the
//! process ends, the devices it created disappear and a persistent device it attached to
//! has no reader (the kernel drops what is written to it), so nothing passes.
//!
//! A reload ([`Control::reload`], SIGHUP) runs in the router's thread between two
//! frames: the per-packet path takes no lock.
//!
//! With several workers (`--workers`), [`serve_with`] hands over to
//! [`super::workers`]: multi-queue TAPs, a worker per queue owning its flow shards.

use std::fs::File;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::router::{Port, Routed, Router};
use crate::capture::PcapWriter;
use crate::output::FlowLogWriter;
use crate::wire::packet::linktype;
use crate::wire::packet::Timestamp;

/// One TAP device and the port it stands for.
pub struct Device {
    pub port: Port,
    /// The kernel's name of the device (in the namespace where it was opened).
    pub name: String,
    /// The first queue.
    pub file: Arc<File>,
    /// Every queue opened, the first included (several with `--workers`).
    pub queues: Vec<Arc<File>>,
    /// The offloads on (`TUN_F_*` bits) when the device was opened with
    /// `IFF_VNET_HDR`; `None`: plain Ethernet frames.
    pub offloads: Option<u32>,
}

impl Device {
    /// Creates (or attaches to the persistent) TAP `name` for `port`, with
    /// `IFF_VNET_HDR` and offloads when `offload` is true.
    pub fn open(port: Port, name: &str, offload: bool) -> io::Result<Device> {
        Device::open_queues(port, name, offload, 1)
    }

    /// [`Device::open`] with `queues` queues (`IFF_MULTI_QUEUE`), one per worker; a
    /// persistent TAP made without `multi_queue` gets one.
    pub fn open_queues(port: Port, name: &str, offload: bool, queues: usize) -> io::Result<Device> {
        let (files, name, offloads) = crate::sys::tun::open_tap_queues(name, offload, queues)?;
        let queues: Vec<Arc<File>> = files.into_iter().map(Arc::new).collect();
        Ok(Device {
            port,
            name,
            file: queues[0].clone(),
            queues,
            offloads,
        })
    }
}

/// Where the loop writes.
#[derive(Default)]
pub struct Outputs {
    pub flow_log: Option<FlowLogWriter>,
    pub verdicts: Option<Box<dyn Write + Send>>,
    /// Every frame read, in the order judged, with the time it was judged at: a
    /// capture that `vpcgate replay` judges the same way.
    pub capture: Option<PcapWriter>,
    /// A one-line status on standard error every second (frames/s per device, with
    /// these labels in device order; rejects), for a terminal.
    pub status: Option<Vec<String>>,
}

/// What the loop obeys besides its devices.
pub struct Control<'a> {
    /// Set (by SIGINT/SIGTERM) to stop; checked at least four times a second.
    pub stop: &'a AtomicBool,
    /// Set (by SIGHUP) to reload: the loop clears it and calls `on_reload` between two
    /// frames, in the router's thread, so the per-packet path takes no lock.
    pub reload: &'a AtomicBool,
    pub on_reload: &'a mut dyn FnMut(&mut dyn Reload),
}

/// What a reload puts a new ruleset in force on: the router, or every worker's.
pub trait Reload {
    /// As [`Router::reload`]: the tracked connections kept, or why it was refused (the
    /// old ruleset then stays in force).
    fn reload(&mut self, vpc: Arc<crate::model::Vpc>) -> Result<usize, String>;
}

impl Reload for Router {
    fn reload(&mut self, vpc: Arc<crate::model::Vpc>) -> Result<usize, String> {
        Router::reload(self, vpc)
    }
}

/// [`serve`] with one thread (`workers` 1), or [`super::workers::serve_workers`] with
/// `workers` threads over multi-queue TAPs.
pub fn serve_with(
    router: &mut Router,
    devices: &[Device],
    out: &mut Outputs,
    ctl: &mut Control<'_>,
    workers: usize,
) -> io::Result<()> {
    if workers > 1 {
        super::workers::serve_workers(router, devices, out, ctl, workers)
    } else {
        serve(router, devices, out, ctl)
    }
}

/// The wall clock as a [`Timestamp`].
pub fn wall_clock() -> Timestamp {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp::from_secs_nanos(d.as_secs(), d.subsec_nanos())
}

/// The most frames read from one device before the others get their turn.
const BATCH_FRAMES: usize = 256;
/// The room for each read: a super-frame of 65,535 IP bytes, its Ethernet header (and a
/// VLAN tag) and its virtio-net header.
const FRAME_MAX: usize = 65_535 + 18 + crate::wire::vnet::VNET_HDR_LEN;

/// Writes what the wire carries for one frame read from a device with `IFF_VNET_HDR`
/// (`buf`: header and frame) to the capture: the wire packets of a super-frame, or the
/// frame with its checksum finished. A header that does not fit its frame: the bytes
/// after it as one frame (the router drops it and numbers it as one).
fn capture_vnet(
    c: &mut PcapWriter,
    now: Timestamp,
    buf: &[u8],
    scratch: &mut Vec<u8>,
) -> io::Result<()> {
    use crate::wire::vnet::{plan, VnetHdr, VNET_HDR_LEN};
    let frame = buf.get(VNET_HDR_LEN..).unwrap_or(buf);
    let Some(p) = VnetHdr::parse(buf).and_then(|h| plan(&h, frame).ok()) else {
        return c.write_packet(now, linktype::ETHERNET, frame, frame.len() as u32);
    };
    let mut result = Ok(());
    p.segment(frame, scratch, &mut |seg| {
        if result.is_ok() {
            result = c.write_packet(now, linktype::ETHERNET, seg, seg.len() as u32);
        }
    });
    result
}

/// [`capture_vnet`]'s wire packets, as copies (for a worker of several).
pub(crate) fn capture_vnet_into(buf: &[u8], scratch: &mut Vec<u8>, out: &mut Vec<Vec<u8>>) {
    use crate::wire::vnet::{plan, VnetHdr, VNET_HDR_LEN};
    let frame = buf.get(VNET_HDR_LEN..).unwrap_or(buf);
    match VnetHdr::parse(buf).and_then(|h| plan(&h, frame).ok()) {
        Some(p) => p.segment(frame, scratch, &mut |seg| out.push(seg.to_vec())),
        None => out.push(frame.to_vec()),
    }
}

/// Runs until `stop` is set (checked at least four times a second) or a device fails:
/// reads every device, routes each frame at the wall-clock time it was read, writes what
/// the router returns, and writes the flow-log records of each window as it closes on
/// the wall clock (whole lines, flushed). At the end, the open records are written too.
///
/// One thread: it waits until a device is readable (`poll`), reads each readable one
/// until the kernel has no frame left (EAGAIN) or [`BATCH_FRAMES`] were read, into one
/// buffer, reused; a forwarded frame is rewritten in that buffer and written from it
/// ([`Router::route_in_place`]). No thread hand-off and no copy per frame beyond the
/// kernel's two.
pub fn serve(
    router: &mut Router,
    devices: &[Device],
    out: &mut Outputs,
    ctl: &mut Control<'_>,
) -> io::Result<()> {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let stop = ctl.stop;
    for d in devices {
        rustix::io::ioctl_fionbio(&*d.file, true)?;
    }
    let mut buf = vec![0u8; FRAME_MAX];
    let mut scratch = Vec::new();
    let mut last_tick = Instant::now();
    let mut result = Ok(());
    let mut per_device = vec![0u64; devices.len()];
    let mut status = Status::default();
    let mut ready = vec![false; devices.len()];
    let wait = Timespec {
        tv_sec: 0,
        tv_nsec: 250_000_000,
    };
    'serve: while !stop.load(Ordering::Relaxed) {
        if ctl.reload.swap(false, Ordering::Relaxed) {
            (ctl.on_reload)(router);
        }
        {
            let mut fds: Vec<PollFd> = devices
                .iter()
                .map(|d| PollFd::new(&*d.file, PollFlags::IN | PollFlags::ERR))
                .collect();
            match poll(&mut fds, Some(&wait)) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
            for (r, fd) in ready.iter_mut().zip(&fds) {
                *r = !fd.revents().is_empty();
            }
        }
        for (i, d) in devices.iter().enumerate() {
            if !ready[i] {
                continue;
            }
            let vnet = d.offloads.is_some();
            for _ in 0..BATCH_FRAMES {
                let n = match (&*d.file).read(&mut buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        result = Err(io::Error::new(e.kind(), format!("reading {}: {e}", d.name)));
                        break 'serve;
                    }
                };
                let frame = &mut buf[..n];
                let now = wall_clock();
                if let Some(c) = out.capture.as_mut() {
                    if vnet {
                        capture_vnet(c, now, frame, &mut scratch)?;
                    } else {
                        c.write_packet(now, linktype::ETHERNET, frame, frame.len() as u32)?;
                    }
                }
                per_device[i] += 1;
                // A full or downed device drops the frame, as a wire would.
                match router.route_in_place(d.port, frame, vnet, now) {
                    Routed::Forward(to) => {
                        if let Some(t) = devices.iter().find(|t| t.port == to) {
                            let _ = (&*t.file).write(frame);
                        }
                    }
                    Routed::Frames(v) => {
                        for (to, f) in v {
                            if let Some(t) = devices.iter().find(|t| t.port == to) {
                                let _ = (&*t.file).write(&f);
                            }
                        }
                    }
                }
            }
        }
        if last_tick.elapsed() >= Duration::from_secs(1) {
            last_tick = Instant::now();
            let recs = router.tick(wall_clock());
            write_out(router, out, recs)?;
            if let Some(labels) = out.status.as_ref() {
                eprint!(
                    "\r\x1b[K{}",
                    status.line(labels, &per_device, router.stats().rejected)
                );
            }
        }
    }
    if out.status.is_some() {
        eprintln!();
    }
    let recs = router.finish();
    write_out(router, out, recs)?;
    if let Some(c) = out.capture.take() {
        c.finish()?;
    }
    result
}

/// The counters at the last status line.
#[derive(Default)]
pub(crate) struct Status {
    at: Option<Instant>,
    frames: Vec<u64>,
    rejected: u64,
}

impl Status {
    /// `alb-1 12/s  app-1 3/s  ...  rejects 2/s (41 in all)`: the rates since the
    /// last line.
    pub(crate) fn line(&mut self, labels: &[String], frames: &[u64], rejected: u64) -> String {
        let now = Instant::now();
        let secs = self
            .at
            .map_or(1.0, |a| now.duration_since(a).as_secs_f64())
            .max(0.001);
        self.frames.resize(frames.len(), 0);
        let mut t = String::new();
        for (i, n) in frames.iter().enumerate() {
            let rate = (n - self.frames[i]) as f64 / secs;
            let label = labels.get(i).map_or("?", |l| l.as_str());
            t += &format!("{label} {rate:.0}/s  ");
        }
        t += &format!(
            "rejects {:.0}/s ({rejected} in all)",
            (rejected - self.rejected) as f64 / secs
        );
        self.at = Some(now);
        self.frames.copy_from_slice(frames);
        self.rejected = rejected;
        t
    }
}

fn write_out(
    router: &mut Router,
    out: &mut Outputs,
    recs: Vec<crate::flowlog::FlowRecord>,
) -> io::Result<()> {
    if let Some(w) = out.flow_log.as_mut() {
        if !recs.is_empty() {
            for r in &recs {
                w.write(r, &router.metas()[r.eni.get()])?;
            }
            w.flush()?;
        }
    }
    let v = router.take_verdicts();
    if let Some(w) = out.verdicts.as_mut() {
        if !v.is_empty() {
            w.write_all(&v)?;
            w.flush()?;
        }
    }
    Ok(())
}

/// The summary printed at the end of a live run.
pub fn summary(router: &Router) -> String {
    let s = router.stats();
    let mut t = format!(
        "vpcgate live: {} frames, {} ARP/ND answers, {} packets evaluated: {} accepted, {} rejected; {} forwarded ({} translated at the internet gateway)\n",
        s.frames, s.arp_answered, s.evaluated, s.accepted, s.rejected, s.forwarded, s.translated
    );
    if s.super_frames > 0 {
        t += &format!(
            "  {} GSO super-frame(s) read, standing for {} wire packets (judged once each, counted as their packets)\n",
            s.super_frames, s.super_frame_segments
        );
    }
    if s.handed_off > 0 {
        t += &format!(
            "  {} frame(s) handed by the worker that read them to the worker that owns their flow\n",
            s.handed_off
        );
    }
    for (r, n) in &s.rejects {
        t += &format!("  rejected {n:>8}  {r}\n");
    }
    for (r, n) in &s.drops {
        t += &format!("  dropped  {n:>8}  {r}\n");
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The status line: each device's frames per second since the last line, then the
    /// rejects per second and in all.
    #[test]
    fn the_status_line_gives_rates_per_device_and_rejects() {
        let vpc = crate::load::load_str(
            "securecart.toml",
            include_str!("../../rulesets/securecart.toml"),
        )
        .unwrap();
        let router = Router::new(Arc::new(vpc), 600);
        let labels = vec!["alb-1".to_string(), "igw".to_string()];
        let mut s = Status::default();
        // The first line counts from zero over one second.
        let line = s.line(&labels, &[30, 0], router.stats().rejected);
        assert_eq!(line, "alb-1 30/s  igw 0/s  rejects 0/s (0 in all)");
        assert_eq!(s.frames, [30, 0]);
    }
}
