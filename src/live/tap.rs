//! TAP devices and the live loop: one reader thread per device, the router in one
//! thread, the wall clock as the time of each frame.
//!
//! Fail closed: the TAP devices are the only path between the ENIs' hosts; when the
//! process ends, the devices it created disappear and a persistent device it attached to
//! has no reader (the kernel drops what is written to it), so nothing passes.
//!
//! Not here yet: multi-queue TAPs (`IFF_MULTI_QUEUE`) with per-flow-shard workers,
//! GSO/TSO super-frames (`IFF_VNET_HDR`), reloading the ruleset while running.

use std::fs::File;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::router::{Port, Router};
use crate::output::FlowLogWriter;
use crate::wire::packet::Timestamp;

/// One TAP device and the port it stands for.
pub struct Device {
    pub port: Port,
    /// The kernel's name of the device (in the namespace where it was opened).
    pub name: String,
    pub file: Arc<File>,
}

impl Device {
    /// Creates (or attaches to the persistent) TAP `name` for `port`.
    pub fn open(port: Port, name: &str) -> io::Result<Device> {
        let (file, name) = crate::sys::tun::open_tap(name)?;
        Ok(Device {
            port,
            name,
            file: Arc::new(file),
        })
    }
}

/// Where the loop writes.
#[derive(Default)]
pub struct Outputs {
    pub flow_log: Option<FlowLogWriter>,
    pub verdicts: Option<Box<dyn Write + Send>>,
}

/// The wall clock as a [`Timestamp`].
pub fn wall_clock() -> Timestamp {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp::from_secs_nanos(d.as_secs(), d.subsec_nanos())
}

enum Event {
    Frame(Port, Vec<u8>),
    Failed(String, io::Error),
}

/// Runs until `stop` is set (checked at least four times a second) or a device fails:
/// reads every device, routes each frame at the wall-clock time it was read, writes what
/// the router returns, and writes the flow-log records of each window as it closes on
/// the wall clock (whole lines, flushed). At the end, the open records are written too.
pub fn serve(
    router: &mut Router,
    devices: &[Device],
    out: &mut Outputs,
    stop: &AtomicBool,
) -> io::Result<()> {
    let (tx, rx) = crossbeam_channel::bounded::<Event>(4096);
    for d in devices {
        let (tx, file, port, name) = (tx.clone(), d.file.clone(), d.port, d.name.clone());
        std::thread::Builder::new()
            .name(format!("tap-{name}"))
            .spawn(move || {
                let mut buf = vec![0u8; 65_536];
                loop {
                    match (&*file).read(&mut buf) {
                        Ok(n) => {
                            if tx.send(Event::Frame(port, buf[..n].to_vec())).is_err() {
                                return;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            let _ = tx.send(Event::Failed(name, e));
                            return;
                        }
                    }
                }
            })?;
    }
    drop(tx);
    let files: Vec<(Port, Arc<File>)> = devices.iter().map(|d| (d.port, d.file.clone())).collect();
    let mut last_tick = Instant::now();
    let mut result = Ok(());
    while !stop.load(Ordering::Relaxed) {
        match rx.recv_timeout(Duration::from_millis(250)) {
            Ok(Event::Frame(port, frame)) => {
                for (to, f) in router.handle_frame(port, &frame, wall_clock()) {
                    if let Some((_, file)) = files.iter().find(|(p, _)| *p == to) {
                        // A full or downed device drops the frame, as a wire would.
                        let _ = (&**file).write(&f);
                    }
                }
            }
            Ok(Event::Failed(name, e)) => {
                result = Err(io::Error::new(e.kind(), format!("reading {name}: {e}")));
                break;
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        }
        if last_tick.elapsed() >= Duration::from_secs(1) {
            last_tick = Instant::now();
            let recs = router.tick(wall_clock());
            write_out(router, out, recs)?;
        }
    }
    let recs = router.finish();
    write_out(router, out, recs)?;
    result
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
    for (r, n) in &s.rejects {
        t += &format!("  rejected {n:>8}  {r}\n");
    }
    for (r, n) in &s.drops {
        t += &format!("  dropped  {n:>8}  {r}\n");
    }
    t
}
