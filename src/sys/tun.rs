//! The one place with `unsafe`: the ioctls of TAP devices. `TUNSETIFF` turns an open
//! `/dev/net/tun` into a TAP device (creating it, or attaching to a persistent one);
//! with `IFF_VNET_HDR`, `TUNSETVNETHDRSZ` and `TUNSETOFFLOAD` every frame carries a
//! 10-byte `virtio_net_hdr` ([`crate::wire::vnet`]) and the host behind the TAP may
//! send and receive GSO super-frames and frames with partial checksums.
//!
//! Written by hand instead of with `tun-rs` to keep the dependency tree as it was (only
//! `libc`, already built for the standard library's users), and because three ioctls
//! are all live mode needs.
#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;

/// `_IOW('T', 202, int)`.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_MULTI_QUEUE: libc::c_short = 0x0100;
const IFF_VNET_HDR: libc::c_short = 0x4000;
/// `_IOW('T', 208, unsigned int)`: the offloads, passed by value.
const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;
/// `_IOW('T', 216, int)`: the size of the virtio-net header, by pointer.
const TUNSETVNETHDRSZ: libc::c_ulong = 0x4004_54d8;

/// `TUN_F_*` offload bits (linux/if_tun.h).
pub const TUN_F_CSUM: u32 = 0x01;
pub const TUN_F_TSO4: u32 = 0x02;
pub const TUN_F_TSO6: u32 = 0x04;
pub const TUN_F_TSO_ECN: u32 = 0x08;
pub const TUN_F_USO4: u32 = 0x20;
pub const TUN_F_USO6: u32 = 0x40;

/// The offloads asked for, most first: a kernel that refuses a set (USO came with
/// Linux 6.2) is asked for the next.
const OFFLOAD_CHOICES: [u32; 3] = [
    TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN | TUN_F_USO4 | TUN_F_USO6,
    TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN,
    TUN_F_CSUM,
];

/// The names of the offload bits in `f`, e.g. `csum tso4 tso6 tso-ecn uso4 uso6`.
pub fn offload_names(f: u32) -> String {
    let names = [
        (TUN_F_CSUM, "csum"),
        (TUN_F_TSO4, "tso4"),
        (TUN_F_TSO6, "tso6"),
        (TUN_F_TSO_ECN, "tso-ecn"),
        (TUN_F_USO4, "uso4"),
        (TUN_F_USO6, "uso6"),
    ];
    let v: Vec<&str> = names
        .iter()
        .filter(|(b, _)| f & b != 0)
        .map(|(_, n)| *n)
        .collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(" ")
    }
}

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
    open_tap_flags(name, 0)
}

/// [`open_tap`] with `IFF_VNET_HDR`: every frame read or written starts with a 10-byte
/// `virtio_net_hdr`, and offloads are turned on (checksum, TSO for IPv4 and IPv6 with
/// ECN, and USO for both where the kernel has it). Returns the offload bits the kernel
/// accepted.
pub fn open_tap_vnet(name: &str) -> io::Result<(File, String, u32)> {
    let (file, name) = open_tap_flags(name, IFF_VNET_HDR)?;
    let offloads = set_vnet(&file)?;
    Ok((file, name, offloads))
}

/// Opens `queues` queues of the TAP device `name` (`IFF_MULTI_QUEUE`; the first open
/// creates the device or attaches to the persistent one), with `IFF_VNET_HDR` and
/// offloads when `vnet` is true. A persistent TAP made without `multi_queue` has one
/// queue only: then one is opened. Returns the queues, the kernel's name and the
/// offloads (`None` without `vnet`).
pub fn open_tap_queues(
    name: &str,
    vnet: bool,
    queues: usize,
) -> io::Result<(Vec<File>, String, Option<u32>)> {
    let single = || -> io::Result<(Vec<File>, String, Option<u32>)> {
        if vnet {
            let (f, n, o) = open_tap_vnet(name)?;
            Ok((vec![f], n, Some(o)))
        } else {
            let (f, n) = open_tap(name)?;
            Ok((vec![f], n, None))
        }
    };
    if queues <= 1 {
        return single();
    }
    let flags = IFF_MULTI_QUEUE | if vnet { IFF_VNET_HDR } else { 0 };
    let (first, kernel_name) = match open_tap_with(name, flags) {
        Ok(r) => r,
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return single(),
        Err(e) => return Err(e),
    };
    let offloads = if vnet { Some(set_vnet(&first)?) } else { None };
    let mut files = vec![first];
    for _ in 1..queues {
        files.push(open_tap_with(&kernel_name, flags)?.0);
    }
    Ok((files, kernel_name, offloads))
}

/// The virtio-net header's size and the offloads, on a TAP opened with `IFF_VNET_HDR`.
fn set_vnet(file: &File) -> io::Result<u32> {
    let size: libc::c_int = crate::wire::vnet::VNET_HDR_LEN as libc::c_int;
    // SAFETY: the descriptor is open and owned by `file`; TUNSETVNETHDRSZ reads one
    // `int` through the pointer, which points at `size`, alive for the whole call.
    let rc = unsafe {
        libc::ioctl(
            file.as_raw_fd(),
            TUNSETVNETHDRSZ as _,
            &size as *const libc::c_int,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut last = io::Error::from_raw_os_error(libc::EINVAL);
    for want in OFFLOAD_CHOICES {
        // SAFETY: the descriptor is open and owned by `file`; TUNSETOFFLOAD takes its
        // argument by value (an unsigned long of TUN_F_* bits) and touches no memory of
        // ours.
        let rc = unsafe {
            libc::ioctl(
                file.as_raw_fd(),
                TUNSETOFFLOAD as _,
                libc::c_ulong::from(want),
            )
        };
        if rc == 0 {
            return Ok(want);
        }
        last = io::Error::last_os_error();
    }
    Err(last)
}

fn open_tap_flags(name: &str, flags: libc::c_short) -> io::Result<(File, String)> {
    match open_tap_with(name, flags) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            open_tap_with(name, flags | IFF_MULTI_QUEUE).map_err(|_| e)
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
            assert!(super::open_tap_vnet(n).is_err(), "{n}");
        }
    }

    /// The ioctl numbers are `_IOW('T', nr, 4 bytes)` (linux/if_tun.h).
    #[test]
    fn ioctl_numbers_are_the_kernels() {
        let iow = |nr: libc::c_ulong| (1 << 30) | (4 << 16) | ((b'T' as libc::c_ulong) << 8) | nr;
        assert_eq!(super::TUNSETIFF, iow(202));
        assert_eq!(super::TUNSETOFFLOAD, iow(208));
        assert_eq!(super::TUNSETVNETHDRSZ, iow(216));
        assert_eq!(
            super::offload_names(super::OFFLOAD_CHOICES[1]),
            "csum tso4 tso6 tso-ecn"
        );
    }
}
