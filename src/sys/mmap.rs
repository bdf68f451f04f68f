//! A capture file mapped read-only into memory (issue 14, item 4): the reader hands
//! the workers windows of the mapping instead of copying the file through `read(2)`.
//! The kernel is told that the file is read front to back (`MADV_SEQUENTIAL`), and a
//! window's pages are dropped from the process (`MADV_DONTNEED`) once every worker
//! is done with it, so the resident memory stays at the blocks in flight, not the
//! file's size.
//!
//! The one hazard of a mapping: if another program truncates the file while it is
//! mapped, reading the lost pages raises `SIGBUS`. A capture being appended to is
//! safe (only the length at open time is mapped).
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// A whole regular file, mapped read-only.
#[derive(Debug)]
pub struct MappedFile {
    ptr: *mut libc::c_void,
    len: usize,
}

// SAFETY: the mapping is read-only and never written through; `&[u8]` views of it
// may be shared between threads like any immutable slice, and munmap runs once, in
// Drop, when no view is left.
unsafe impl Send for MappedFile {}
// SAFETY: as above: every method takes `&self` and only reads or advises.
unsafe impl Sync for MappedFile {}

/// The page size; 4096 when sysconf does not say.
fn page_size() -> usize {
    // SAFETY: sysconf reads a constant of the system; no memory is touched.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

impl MappedFile {
    /// Maps the first `len` bytes of `file` (`len` > 0, at most the file's length).
    pub fn map(file: &File, len: usize) -> io::Result<MappedFile> {
        if len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "an empty file is not mapped",
            ));
        }
        // SAFETY: a fresh read-only private mapping of an open descriptor; the kernel
        // picks the address, nothing else refers to that range. The pointer is checked
        // against MAP_FAILED before any use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: advice on the range just mapped; it changes no contents.
        unsafe { libc::madvise(ptr, len, libc::MADV_SEQUENTIAL) };
        Ok(MappedFile { ptr, len })
    }

    /// The mapped bytes.
    #[inline]
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` points at `len` readable bytes for as long as `self` lives
        // (unmapped only in Drop), and they are never written through the mapping.
        unsafe { std::slice::from_raw_parts(self.ptr as *const u8, self.len) }
    }

    /// Drops the pages of `start..end` from the process's memory (`MADV_DONTNEED`),
    /// widened to whole pages. Reading them again is correct (a private, unwritten
    /// file mapping reads them back from the file), only slower.
    pub fn drop_pages(&self, start: usize, end: usize) {
        let page = page_size();
        let from = start / page * page;
        let to = end.min(self.len).div_ceil(page) * page;
        if to <= from {
            return;
        }
        // SAFETY: `from..to` lies inside the mapping (`to` is at most the mapping's
        // length rounded up to a page, which the kernel mapped whole); DONTNEED on a
        // private unwritten file mapping only drops page-table entries, and later reads
        // fault the file's bytes back in.
        unsafe {
            libc::madvise(
                (self.ptr as *mut u8).add(from) as *mut libc::c_void,
                to - from,
                libc::MADV_DONTNEED,
            )
        };
    }
}

impl Drop for MappedFile {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are the mapping made in `map`, unmapped once; no view of
        // it outlives `self` (views borrow `self`).
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn maps_reads_and_drops_pages_of_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..3 * 4096 + 100).map(|i| (i % 251) as u8).collect();
        std::fs::File::create(&path)
            .unwrap()
            .write_all(&data)
            .unwrap();
        let m = MappedFile::map(&File::open(&path).unwrap(), data.len()).unwrap();
        assert_eq!(m.bytes(), &data[..]);
        // Dropped pages read back the file's bytes.
        m.drop_pages(10, 2 * 4096 + 7);
        m.drop_pages(0, data.len());
        assert_eq!(m.bytes(), &data[..]);
        assert!(MappedFile::map(&File::open(&path).unwrap(), 0).is_err());
    }
}
