//! The one place with `unsafe`: the `TUNSETIFF` ioctl that turns an open
//! `/dev/net/tun` into a TAP device (creating it, or attaching to a persistent one).
//!
//! Written by hand instead of with `tun-rs` to keep the dependency tree as it was (only
//! `libc`, already built for the standard library's users), and because one ioctl is all
//! live mode needs.
#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;

/// `_IOW('T', 202, int)`.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_MULTI_QUEUE: libc::c_short = 0x0100;

/// `struct ifreq` as TUNSETIFF reads it: the name, the flags, and the rest of the union.
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _rest: [u8; 22],
}

/// Opens the TAP device `name` (at most 15 bytes) in the calling thread's network
/// namespace: creates it if it does not exist (it then lives as long as the returned
/// file), or attaches to the persistent one of that name. `name` may hold `%d`; the
/// kernel's name is returned. Frames are plain Ethernet (no packet-information header,
/// no virtio-net header).
///
/// A persistent TAP made with `ip tuntap add ... multi_queue` refuses a single-queue
/// attach (EINVAL): vpcgate then attaches as its one queue, and the kernel, which
/// spreads frames over the queues attached, sends every frame to it.
pub fn open_tap(name: &str) -> io::Result<(File, String)> {
    match open_tap_with(name, 0) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            open_tap_with(name, IFF_MULTI_QUEUE).map_err(|_| e)
        }
        r => r,
    }
}

fn open_tap_with(name: &str, extra: libc::c_short) -> io::Result<(File, String)> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains(['\0', '/', ' ']) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a valid interface name (1 to 15 bytes)"),
        ));
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")?;
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: IFF_TAP | IFF_NO_PI | extra,
        _rest: [0; 22],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: the descriptor is open and owned by `file` for the whole call; `req` is an
    // initialized `struct ifreq` (40 bytes, the size the kernel copies in and out) that
    // outlives the call, and TUNSETIFF touches no other memory.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF as _, &mut req as *mut IfReq) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let end = req
        .name
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(req.name.len());
    Ok((file, String::from_utf8_lossy(&req.name[..end]).into_owned()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn ifreq_has_the_kernel_size() {
        assert_eq!(std::mem::size_of::<super::IfReq>(), 40);
    }

    #[test]
    fn bad_names_are_refused_before_any_system_call() {
        for n in ["", "a-name-far-too-long", "a/b"] {
            assert!(super::open_tap(n).is_err(), "{n}");
        }
    }
}
