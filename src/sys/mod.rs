//! What vpcgate needs from the operating system beyond `std`: a read that a signal
//! can stop, the identity (device and inode) of a file, and ([`tun`]) the one ioctl that
//! makes a TAP device. It is the only module with `unsafe` code, in [`tun`], each block
//! with a `// SAFETY:` line; the rest uses rustix's safe API.
//!
//! Why [`Interruptible`]: signal handlers are installed with `SA_RESTART`, so a
//! `read(2)` on an idle pipe or terminal is restarted after Ctrl-C and the replay
//! would wait for data that may never come. `poll(2)` is never restarted; it wakes
//! every [`POLL_INTERVAL`] at the latest to look at the stop flag.
//!
//! ```
//! use std::sync::{atomic::AtomicBool, Arc};
//! use std::io::Read;
//! use vpcgate::sys::Interruptible;
//!
//! let stop = Arc::new(AtomicBool::new(true));
//! // Stopped, and nothing ready to read: the input ends at once.
//! let (rx, _tx) = std::io::pipe()?;
//! let mut r = Interruptible::new(rx, stop);
//! assert_eq!(r.read(&mut [0u8; 16])?, 0);
//! # Ok::<(), std::io::Error>(())
//! ```

#[cfg(target_os = "linux")]
pub mod tun;

use std::fs::Metadata;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// How long a read waits for data before it looks at the stop flag again.
pub const POLL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// A reader (a pipe, a terminal, standard input) whose reads end when `stop` is set:
/// data that is ready is still read, but once nothing is ready and `stop` is set, a
/// read returns 0 (end of input) instead of waiting.
pub struct Interruptible<R> {
    inner: R,
    stop: Arc<AtomicBool>,
}

impl<R: Read + AsFd> Interruptible<R> {
    pub fn new(inner: R, stop: Arc<AtomicBool>) -> Interruptible<R> {
        Interruptible { inner, stop }
    }

    /// Waits until `inner` is readable (true) or `stop` is set and nothing is ready
    /// (false).
    fn wait(&self) -> io::Result<bool> {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        loop {
            let stopped = self.stop.load(Ordering::Relaxed);
            let timeout = if stopped {
                Timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                }
            } else {
                Timespec {
                    tv_sec: 0,
                    tv_nsec: POLL_INTERVAL.as_nanos() as _,
                }
            };
            let mut fds = [PollFd::new(
                &self.inner,
                PollFlags::IN | PollFlags::HUP | PollFlags::ERR,
            )];
            match poll(&mut fds, Some(&timeout)) {
                Ok(0) if stopped => return Ok(false),
                Ok(0) => {}
                // Readable, closed or in error: the read says which.
                Ok(_) => return Ok(true),
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl<R: Read + AsFd> Read for Interruptible<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() || !self.wait()? {
            return Ok(0);
        }
        self.inner.read(buf)
    }
}

/// Opens a stream (a FIFO, a device, `/dev/fd/N` of a pipe) for reading without
/// waiting: `open(2)` of a FIFO waits for a writer, and no signal ends that wait. The
/// file is opened non-blocking, then set back to blocking: reads go through
/// [`Interruptible`], which polls first.
pub fn open_stream(path: &std::path::Path) -> io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)?;
    rustix::io::ioctl_fionbio(&f, false)?;
    Ok(f)
}

/// A file's identity: its device and inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

impl FileId {
    pub fn of(m: &Metadata) -> FileId {
        FileId {
            dev: m.dev(),
            ino: m.ino(),
        }
    }
}

/// The identity of what standard input is, when it is a regular file (`< file`).
pub fn stdin_file_id() -> Option<FileId> {
    let fd = io::stdin().as_fd().try_clone_to_owned().ok()?;
    let m = std::fs::File::from(fd).metadata().ok()?;
    m.is_file().then(|| FileId::of(&m))
}

/// Whether this process runs as root (the effective user id is 0).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// CPU time this thread has used (CLOCK_THREAD_CPUTIME_ID): what `vpcgate bench`
/// measures a one-core stage with, so that time spent waiting for a CPU on a busy
/// machine does not count.
pub fn thread_cpu_time() -> std::time::Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    std::time::Duration::new(
        t.tv_sec.max(0) as u64,
        t.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn ready_data_is_read_even_after_stop() {
        let (rx, mut tx) = io::pipe().unwrap();
        tx.write_all(b"abc").unwrap();
        let mut r = Interruptible::new(rx, Arc::new(AtomicBool::new(true)));
        let mut buf = [0u8; 8];
        assert_eq!(r.read(&mut buf).unwrap(), 3);
        assert_eq!(r.read(&mut buf).unwrap(), 0, "nothing ready, stopped");
    }

    #[test]
    fn a_stop_ends_a_wait_on_an_idle_pipe() {
        let (rx, _tx) = io::pipe().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let mut r = Interruptible::new(rx, stop.clone());
        let t = std::thread::spawn(move || r.read(&mut [0u8; 8]).unwrap());
        stop.store(true, Ordering::Relaxed);
        assert_eq!(t.join().unwrap(), 0);
    }

    #[test]
    fn a_fifo_without_a_writer_opens_and_a_stop_ends_the_wait() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("f");
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
        )
        .unwrap();
        let f = open_stream(&fifo).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let mut r = Interruptible::new(f, stop.clone());
        let t = std::thread::spawn(move || r.read(&mut [0u8; 8]).unwrap());
        stop.store(true, Ordering::Relaxed);
        assert_eq!(t.join().unwrap(), 0);
    }

    #[test]
    fn a_closed_pipe_is_the_end() {
        let (rx, tx) = io::pipe().unwrap();
        drop(tx);
        let mut r = Interruptible::new(rx, Arc::new(AtomicBool::new(false)));
        assert_eq!(r.read(&mut [0u8; 8]).unwrap(), 0);
    }
}
