//! The floor: the least work any packet filter must do on a capture file, which is
//! to read it in large blocks and walk every packet's headers.
//!
//! ```text
//! cargo run --release --example floor -- FILE.pcap
//! ```
//!
//! It reads FILE with plain `read()` calls into one reused 4 MiB buffer, walks every
//! classic-pcap record (pcapng is refused with a message), and for every packet walks
//! Ethernet (+ VLAN tags) → IPv4 / IPv6 → TCP / UDP / ICMP to build its 5-tuple,
//! folding it into a checksum so that nothing is optimised away. It prints packets,
//! seconds, ns/packet, Mpps and the checksum. What vpcgate does on top (rules,
//! connection tracking, flow logs, threads, outputs) is what costs above this floor;
//! `scripts/bench-whole.sh` runs both on the same file.
//!
//! Hand-written on purpose and with no dependency beyond std: a floor that leaned
//! on vpcgate's reader or parser, or on a parsing crate, would measure them instead.
//! The walk itself is `benches/support/floor_walk.rs`, shared with the `floor` group
//! of `cargo bench --bench stages`.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)] // not the core: see clippy.toml

#[path = "../benches/support/floor_walk.rs"]
mod floor_walk;

use floor_walk::{pcap_header, walk_records, Walked};
use std::fs::File;
use std::io::{self, Read};
use std::process::ExitCode;
use std::time::Instant;

const BUFFER: usize = 4 << 20;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path] = args.as_slice() else {
        eprintln!("usage: floor FILE.pcap");
        return ExitCode::from(2);
    };
    match run(path) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("floor: {path}: {e}");
            ExitCode::from(1)
        }
    }
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn fill(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn run(path: &str) -> Result<(), String> {
    let started = Instant::now();
    let mut file = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let mut buf = vec![0u8; BUFFER];
    let read_err = |e: io::Error| format!("read error: {e}");
    let mut have = fill(&mut file, &mut buf).map_err(read_err)?;
    let hdr = pcap_header(&buf[..have])?;
    let mut start = 24;
    let mut acc = Walked::default();
    loop {
        // A record must fit the buffer with its header.
        let max_record = BUFFER - hdr.record_header;
        let used = walk_records(&buf[start..have], &hdr, max_record, &mut acc)?;
        start += used;
        // Move the cut record (if any) to the front and read more behind it.
        buf.copy_within(start..have, 0);
        have -= start;
        start = 0;
        let n = fill(&mut file, &mut buf[have..]).map_err(read_err)?;
        if n == 0 {
            break;
        }
        have += n;
    }
    if have > 0 {
        return Err(format!(
            "the file ends inside a packet record ({have} bytes of it present; truncated capture?)"
        ));
    }
    let secs = started.elapsed().as_secs_f64();
    let ns = if acc.packets > 0 {
        secs * 1e9 / acc.packets as f64
    } else {
        0.0
    };
    println!(
        "{} packets ({} IP), {} bytes in {secs:.3} s: {ns:.1} ns/packet, {:.2} Mpps, {:.0} MB/s; checksum {:016x}",
        acc.packets,
        acc.ip,
        acc.bytes + 24,
        acc.packets as f64 / secs / 1e6,
        (acc.bytes + 24) as f64 / secs / 1e6,
        acc.checksum
    );
    Ok(())
}
