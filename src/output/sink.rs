//! Output files that never end inside a record.
//!
//! A [`RecordWriter`] takes whole records (a verdict line, a flow-log line, a pcap
//! record, a gzip member) into a buffer and hands the buffer to the file only as a
//! whole. When a write fails or stops short (a full disk: `ENOSPC`, a quota, a file too
//! large), it cuts the file back ([`File::set_len`]) to the end of the last record
//! that was written whole, writes nothing more, and returns the error (every later call
//! returns it again). So the file on disk always ends at a record boundary, and a reader
//! (a person, `tail -f`, a script after a crash) never sees half a record, only fewer.
//!
//! What each case leaves on disk:
//! - a failed write to a file: every record that fitted, whole; the error says so
//!   ([`SinkError::whole_records`]);
//! - standard output (`-`, a pipe or a terminal): nothing can be cut back there, so a
//!   partial write is completed by looping, and a failed one (`EPIPE`) may end the
//!   stream inside a record; the error says that too;
//! - the process killed outright (`kill -9`, a second Ctrl-C): what is in the buffer is
//!   lost, and a write the kernel was in the middle of may end the file inside a record
//!   (nothing in user space can prevent that).
//!
//! The errors of this module carry a [`SinkError`] inside the [`io::Error`] (same
//! [`io::ErrorKind`], same text), which tells whether the output could not be created
//! at all or failed while writing, and whether it ends at a record boundary: see
//! [`sink_error`]. [`preflight`] creates every output of a run before any is written,
//! so that a bad path fails before anything else is created.
//!
//! ```
//! use vpcgate::output::sink::RecordWriter;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("verdicts.jsonl");
//! let mut w = RecordWriter::create(&path)?;
//! w.push(b"{\"packet\":1}\n")?;
//! w.push_parts(&[b"{\"packet\":", b"2}\n"])?;
//! w.finish()?;
//! assert_eq!(std::fs::read(&path)?, b"{\"packet\":1}\n{\"packet\":2}\n");
//! # Ok::<(), std::io::Error>(())
//! ```

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The buffer a [`RecordWriter`] fills before it writes (1 MiB).
pub const DEFAULT_CAPACITY: usize = 1 << 20;

/// Where an output failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// The output could not be created: nothing was written to it.
    Create,
    /// A write failed after the output was created.
    Write,
}

/// The payload of the [`io::Error`]s of this module: what failed and what the output
/// holds now. Its text is the OS error's (`No space left on device (os error 28)`).
#[derive(Debug)]
pub struct SinkError {
    /// Creating or writing.
    pub stage: Stage,
    /// The output ends at a record boundary: a file was cut back to its last whole
    /// record, or nothing partial was written. `false` only for a stream that failed in
    /// the middle of a record, or a file that could not be cut back.
    pub whole_records: bool,
    /// Whole records the output holds (for [`Stage::Write`]).
    pub records: u64,
    message: String,
}

impl fmt::Display for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SinkError {}

/// The [`SinkError`] inside an error of this module, if `e` is one.
pub fn sink_error(e: &io::Error) -> Option<&SinkError> {
    e.get_ref()?.downcast_ref::<SinkError>()
}

fn tagged(kind: io::ErrorKind, error: SinkError) -> io::Error {
    io::Error::new(kind, error)
}

/// The error of an output that could not be created, tagged [`Stage::Create`].
pub fn create_error(e: io::Error) -> io::Error {
    if sink_error(&e).is_some() {
        return e;
    }
    tagged(
        e.kind(),
        SinkError {
            stage: Stage::Create,
            whole_records: true,
            records: 0,
            message: e.to_string(),
        },
    )
}

/// Creates (or truncates) `path` for writing, tagging a failure [`Stage::Create`].
fn create_file(path: &Path) -> io::Result<File> {
    File::create(path).map_err(create_error)
}

/// Checks, before a run writes anything, that every output path can be created: each
/// one (`-` skipped) is opened for writing, created empty when missing, and nothing is
/// truncated. When one fails, the files this call created are removed again and that
/// path is returned with its error (tagged [`Stage::Create`]), so a bad
/// `--verdicts` never leaves a new, empty flow log behind.
pub fn preflight<'a, I>(paths: I) -> Result<(), (PathBuf, io::Error)>
where
    I: IntoIterator<Item = &'a Path>,
{
    let mut created: Vec<&Path> = Vec::new();
    for p in paths {
        if p.as_os_str() == "-" {
            continue;
        }
        // A FIFO or a device (`/dev/stdout`, `/dev/null`) is left alone: opening a FIFO
        // here would block, and closing it would end the reader's stream.
        if let Ok(m) = std::fs::metadata(p) {
            if !m.is_file() && !m.is_dir() {
                continue;
            }
        }
        let existed = p.symlink_metadata().is_ok();
        let opened = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(p);
        match opened {
            Ok(_) => {
                if !existed {
                    created.push(p);
                }
            }
            Err(e) => {
                for c in created {
                    let _ = std::fs::remove_file(c);
                }
                return Err((p.to_path_buf(), create_error(e)));
            }
        }
    }
    Ok(())
}

/// What a [`RecordWriter`] writes to.
trait Target: Write + Send {
    /// Cuts the output back to `len` bytes past where the writer started. `Ok(false)`
    /// when this target cannot be cut (a stream).
    fn cut_to(&mut self, len: u64) -> io::Result<bool>;
}

/// A file, cut back with `set_len`.
struct FileTarget {
    file: File,
    /// The file's length when the writer took it: records start there.
    base: u64,
}

impl Write for FileTarget {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.file.write(b)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Target for FileTarget {
    fn cut_to(&mut self, len: u64) -> io::Result<bool> {
        let at = self.base + len;
        self.file.set_len(at)?;
        self.file.seek(SeekFrom::Start(at))?;
        Ok(true)
    }
}

/// Any byte stream: nothing can be taken back.
struct StreamTarget(Box<dyn Write + Send>);

impl Write for StreamTarget {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.write(b)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl Target for StreamTarget {
    fn cut_to(&mut self, _len: u64) -> io::Result<bool> {
        Ok(false)
    }
}

/// Standard output, unbuffered: `io::stdout()` is line-buffered, and a binary record
/// split at a newline byte could sit in its buffer when the process ends.
fn stdout_stream() -> Box<dyn Write + Send> {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        if let Ok(fd) = io::stdout().as_fd().try_clone_to_owned() {
            return Box::new(File::from(fd));
        }
    }
    Box::new(io::stdout())
}

/// Why a writer stopped: repeated to every later call.
struct Failed {
    kind: io::ErrorKind,
    message: String,
    whole_records: bool,
}

/// A writer of whole records; see the [module documentation](self).
///
/// Records are appended with [`push`](RecordWriter::push) (or
/// [`push_parts`](RecordWriter::push_parts) for a record in pieces); the buffer goes
/// out once it holds [`capacity`](RecordWriter::with_capacity) bytes, on
/// [`flush`](RecordWriter::flush), on [`finish`](RecordWriter::finish), and (best effort)
/// on drop. After an error the writer writes nothing more.
pub struct RecordWriter {
    target: Box<dyn Target>,
    buf: Vec<u8>,
    /// The end of each record in `buf`.
    ends: Vec<usize>,
    capacity: usize,
    /// Bytes and records on the target, past its start.
    committed_bytes: u64,
    committed_records: u64,
    pushed: u64,
    failed: Option<Failed>,
}

impl RecordWriter {
    /// Creates (or truncates) `path`; `-` is standard output. A failure to create is
    /// tagged [`Stage::Create`].
    pub fn create(path: &Path) -> io::Result<RecordWriter> {
        if path.as_os_str() == "-" {
            Ok(RecordWriter::stdout())
        } else {
            RecordWriter::from_file(create_file(path)?)
        }
    }

    /// Writes to `file` from its current position on; a failed write cuts the file back
    /// to the last whole record after that position.
    pub fn from_file(mut file: File) -> io::Result<RecordWriter> {
        let base = file.stream_position()?;
        Ok(RecordWriter::new(Box::new(FileTarget { file, base })))
    }

    /// Writes to standard output (unbuffered by std, so only whole buffers reach it).
    pub fn stdout() -> RecordWriter {
        RecordWriter::from_writer(stdout_stream())
    }

    /// Writes to any byte stream (memory, a pipe, a socket). Nothing can be cut back
    /// there: partial writes are completed, and a failed write may end the stream
    /// inside a record.
    pub fn from_writer(w: Box<dyn Write + Send>) -> RecordWriter {
        RecordWriter::new(Box::new(StreamTarget(w)))
    }

    fn new(target: Box<dyn Target>) -> RecordWriter {
        RecordWriter {
            target,
            buf: Vec::new(),
            ends: Vec::new(),
            capacity: DEFAULT_CAPACITY,
            committed_bytes: 0,
            committed_records: 0,
            pushed: 0,
            failed: None,
        }
    }

    /// The buffer is written out once it holds this many bytes (default
    /// [`DEFAULT_CAPACITY`]); a single larger record is written out whole.
    pub fn with_capacity(mut self, bytes: usize) -> RecordWriter {
        self.capacity = bytes.max(1);
        self
    }

    /// Appends one whole record.
    pub fn push(&mut self, record: &[u8]) -> io::Result<()> {
        self.push_parts(&[record])
    }

    /// Appends one whole record given in pieces (a header and a payload).
    pub fn push_parts(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        if let Some(f) = &self.failed {
            return Err(f.error(self.committed_records));
        }
        if self.buf.capacity() == 0 {
            self.buf.reserve(self.capacity.min(DEFAULT_CAPACITY));
        }
        for p in parts {
            self.buf.extend_from_slice(p);
        }
        self.ends.push(self.buf.len());
        self.pushed += 1;
        if self.buf.len() >= self.capacity {
            self.write_out()?;
        }
        Ok(())
    }

    /// Writes out every buffered record and flushes the target.
    pub fn flush(&mut self) -> io::Result<()> {
        self.write_out()?;
        self.target.flush()
    }

    /// Writes out every buffered record and flushes; the writer is done.
    pub fn finish(mut self) -> io::Result<()> {
        self.flush()
    }

    /// Records pushed so far (written or buffered).
    pub fn records_pushed(&self) -> u64 {
        self.pushed
    }

    /// Records the target holds whole.
    pub fn records_written(&self) -> u64 {
        self.committed_records
    }

    /// Bytes the target holds (whole records), past where this writer started.
    pub fn bytes_written(&self) -> u64 {
        self.committed_bytes
    }

    /// Whether a write failed (the writer writes nothing more).
    pub fn has_failed(&self) -> bool {
        self.failed.is_some()
    }

    /// Hands the buffer to the target, looping on partial writes. On an error, cuts the
    /// target back to the last whole record written and remembers the failure.
    fn write_out(&mut self) -> io::Result<()> {
        if let Some(f) = &self.failed {
            return Err(f.error(self.committed_records));
        }
        if self.buf.is_empty() {
            return Ok(());
        }
        let mut done = 0usize;
        let error = loop {
            if done == self.buf.len() {
                break None;
            }
            match self.target.write(&self.buf[done..]) {
                Ok(0) => break Some(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Some(e),
            }
        };
        let Some(error) = error else {
            self.committed_bytes += done as u64;
            self.committed_records += self.ends.len() as u64;
            self.buf.clear();
            self.ends.clear();
            return Ok(());
        };
        // The records written whole, and the bytes of a torn one after them.
        let whole = self.ends.partition_point(|&end| end <= done);
        let keep = if whole == 0 { 0 } else { self.ends[whole - 1] };
        let mut message = error.to_string();
        let mut whole_records = keep == done;
        if !whole_records {
            match self.target.cut_to(self.committed_bytes + keep as u64) {
                Ok(cut) => whole_records = cut,
                Err(e) => message.push_str(&format!(
                    " (and cutting the file back to its last whole record failed: {e})"
                )),
            }
        }
        self.committed_bytes += keep as u64;
        self.committed_records += whole as u64;
        self.buf = Vec::new();
        self.ends = Vec::new();
        let failed = Failed {
            kind: error.kind(),
            message,
            whole_records,
        };
        let e = failed.error(self.committed_records);
        self.failed = Some(failed);
        Err(e)
    }
}

impl Failed {
    fn error(&self, records: u64) -> io::Error {
        tagged(
            self.kind,
            SinkError {
                stage: Stage::Write,
                whole_records: self.whole_records,
                records,
                message: self.message.clone(),
            },
        )
    }
}

impl Drop for RecordWriter {
    /// A writer dropped without [`finish`](RecordWriter::finish) (an error path
    /// elsewhere) still writes its whole records out, best effort.
    fn drop(&mut self) {
        if self.failed.is_none() {
            let _ = self.flush();
        }
    }
}

impl fmt::Debug for RecordWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordWriter")
            .field("buffered", &self.buf.len())
            .field("records_written", &self.committed_records)
            .field("bytes_written", &self.committed_bytes)
            .field("failed", &self.failed.as_ref().map(|f| &f.message))
            .finish()
    }
}

/// Opens the per-packet verdict output (`--verdicts`): `-` is standard output.
pub fn open_verdicts(path: &Path) -> io::Result<RecordWriter> {
    RecordWriter::create(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A target that takes at most `room` bytes, then fails with ENOSPC; it can be cut
    /// back when `cuttable`.
    #[derive(Clone)]
    struct Small {
        data: Arc<Mutex<Vec<u8>>>,
        room: usize,
        /// At most this many bytes per `write` call.
        step: usize,
        cuttable: bool,
    }

    impl Write for Small {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            let mut d = self.data.lock().unwrap();
            let n = b.len().min(self.room - d.len()).min(self.step);
            if n == 0 && !b.is_empty() {
                return Err(io::Error::from_raw_os_error(28));
            }
            d.extend_from_slice(&b[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Target for Small {
        fn cut_to(&mut self, len: u64) -> io::Result<bool> {
            if self.cuttable {
                self.data.lock().unwrap().truncate(len as usize);
            }
            Ok(self.cuttable)
        }
    }

    fn small(room: usize, step: usize, cuttable: bool) -> (RecordWriter, Arc<Mutex<Vec<u8>>>) {
        let t = Small {
            data: Arc::default(),
            room,
            step,
            cuttable,
        };
        let data = t.data.clone();
        (RecordWriter::new(Box::new(t)), data)
    }

    fn line(i: usize) -> Vec<u8> {
        format!("{{\"packet\":{i}}}\n").into_bytes()
    }

    #[test]
    fn partial_writes_are_completed() {
        let (mut w, data) = small(usize::MAX / 2, 7, false);
        for i in 1..=100 {
            w.push(&line(i)).unwrap();
        }
        w.finish().unwrap();
        let text = String::from_utf8(data.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 100);
        assert!(text.ends_with("{\"packet\":100}\n"));
    }

    #[test]
    fn a_full_target_is_cut_back_to_the_last_whole_record() {
        let (mut w, data) = small(1000, 300, true);
        for i in 1..=500 {
            // The buffer (1 MiB) takes them all: nothing is written yet.
            w.push(&line(i)).unwrap();
        }
        assert_eq!(data.lock().unwrap().len(), 0);
        let e = w.flush().unwrap_err();
        assert_eq!(e.raw_os_error(), None, "tagged");
        assert_eq!(e.kind(), io::Error::from_raw_os_error(28).kind());
        assert!(e.to_string().contains("os error 28"), "{e}");
        let s = sink_error(&e).unwrap();
        assert_eq!(s.stage, Stage::Write);
        assert!(s.whole_records);
        let bytes = data.lock().unwrap().clone();
        assert!(bytes.len() <= 1000 && bytes.len() > 900, "{}", bytes.len());
        assert!(bytes.ends_with(b"\n"));
        let n = bytes.iter().filter(|&&b| b == b'\n').count() as u64;
        assert_eq!(s.records, n);
        assert_eq!(w.records_written(), n);
        assert_eq!(w.bytes_written(), bytes.len() as u64);
        // Sticky: nothing more is written, every call says why.
        let again = w.push(&line(1)).unwrap_err();
        assert!(again.to_string().contains("os error 28"));
        assert!(w.has_failed());
        drop(w);
        assert_eq!(data.lock().unwrap().len(), bytes.len());
    }

    #[test]
    fn a_stream_that_fails_mid_record_says_so() {
        let (mut w, data) = small(25, 100, false);
        w.push(&line(1)).unwrap();
        w.push(&line(2)).unwrap();
        let e = w.flush().unwrap_err();
        let s = sink_error(&e).unwrap();
        assert!(!s.whole_records);
        assert_eq!(s.records, 1);
        assert_eq!(data.lock().unwrap().len(), 25);
    }

    #[test]
    fn records_larger_than_the_buffer_go_out_whole() {
        let (w, data) = small(usize::MAX / 2, usize::MAX, false);
        let mut w = w.with_capacity(10);
        w.push_parts(&[b"0123456789", b"abcdef\n"]).unwrap();
        assert_eq!(data.lock().unwrap().as_slice(), b"0123456789abcdef\n");
        assert_eq!(w.records_written(), 1);
        assert_eq!(w.records_pushed(), 1);
    }

    #[test]
    fn dev_full_is_a_clear_error_and_writes_nothing() {
        let Ok(file) = OpenOptions::new().write(true).open("/dev/full") else {
            panic!("this test needs /dev/full (Linux)");
        };
        let mut w = RecordWriter::from_file(file).unwrap();
        w.push(b"one\n").unwrap();
        let e = w.flush().unwrap_err();
        assert!(e.to_string().contains("No space left on device"), "{e}");
        let s = sink_error(&e).unwrap();
        assert_eq!(
            (s.stage, s.whole_records, s.records),
            (Stage::Write, true, 0)
        );
        assert!(w.push(b"two\n").is_err());
    }

    #[test]
    fn a_real_file_is_cut_back_and_positioned() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.jsonl");
        let file = File::create(&path).unwrap();
        let mut w = RecordWriter::from_file(file.try_clone().unwrap()).unwrap();
        w.push(b"whole\n").unwrap();
        w.flush().unwrap();
        // Simulate a torn write the way the kernel leaves it, then cut back.
        (&file).write_all(b"to").unwrap();
        assert!(w.target.cut_to(w.bytes_written()).unwrap());
        w.push(b"next\n").unwrap();
        w.finish().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"whole\nnext\n");
    }

    #[test]
    fn create_failures_are_tagged() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let e = RecordWriter::create(&file.join("v.jsonl")).unwrap_err();
        assert_eq!(sink_error(&e).unwrap().stage, Stage::Create);
        assert!(e.to_string().contains("Not a directory"), "{e}");
    }

    #[test]
    fn preflight_removes_what_it_created() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old.log");
        std::fs::write(&old, b"kept").unwrap();
        let new = dir.path().join("new.log");
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let bad = file.join("v.jsonl");
        let (p, e) =
            preflight([old.as_path(), new.as_path(), Path::new("-"), bad.as_path()]).unwrap_err();
        assert_eq!(p, bad);
        assert_eq!(sink_error(&e).unwrap().stage, Stage::Create);
        assert!(!new.exists(), "created by preflight, removed again");
        assert_eq!(std::fs::read(&old).unwrap(), b"kept", "not truncated");
        preflight([old.as_path(), new.as_path()]).unwrap();
        assert!(new.exists());
    }
}
