//! Text flow-log files: a header line, then one record per line; gzip when the path ends
//! in `.gz`; `-` is standard output.
//!
//! Records are rendered into a buffer and handed to the file only as whole lines, so a
//! run that stops early never leaves half a record in a plain-text file. The writer does
//! not order records: give them in output order (`FlowRecord`'s `Ord`).

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use flate2::write::GzEncoder;
use flate2::Compression;

use super::format::{EniMeta, LogFormat};
use super::record::FlowRecord;

/// Lines are handed to the underlying writer once this many bytes have accumulated.
const CHUNK: usize = 64 * 1024;

enum Sink {
    Plain(Box<dyn Write + Send>),
    Gzip(GzEncoder<File>),
}

impl Sink {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Sink::Plain(w) => w.write_all(bytes),
            Sink::Gzip(w) => w.write_all(bytes),
        }
    }
}

/// Writes flow-log records as text in one [`LogFormat`].
///
/// ```
/// use vpcgate::flowlog::{EniMeta, FlowLogWriter, FlowRecord, LogFormat};
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("flow.log");
/// let mut w = FlowLogWriter::create(&path, LogFormat::default_format()).unwrap();
/// let meta = EniMeta { interface_id: "eni-0abc".into(), account_id: "123456789010".into(), ..EniMeta::default() };
/// w.write(&FlowRecord::nodata(0, 600, 600), &meta).unwrap();
/// w.finish().unwrap();
/// let text = std::fs::read_to_string(&path).unwrap();
/// assert_eq!(text.lines().nth(1), Some("2 123456789010 eni-0abc - - - - - - - 600 1199 - NODATA"));
/// ```
pub struct FlowLogWriter {
    format: LogFormat,
    sink: Option<Sink>,
    buf: Vec<u8>,
    records: u64,
}

impl FlowLogWriter {
    /// Creates (truncates) `path` and writes the header line. `-` is standard output; a
    /// path ending in `.gz` is written gzip-compressed.
    pub fn create(path: &Path, format: LogFormat) -> io::Result<FlowLogWriter> {
        let sink = if path == Path::new("-") {
            Sink::Plain(Box::new(io::stdout()))
        } else {
            let file = File::create(path)?;
            let gz = path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("gz"));
            if gz {
                Sink::Gzip(GzEncoder::new(file, Compression::default()))
            } else {
                Sink::Plain(Box::new(file))
            }
        };
        FlowLogWriter::start(sink, format)
    }

    /// A writer of plain text into `out` (a file, a socket, a `Vec<u8>`…); writes the
    /// header line.
    pub fn from_writer(out: Box<dyn Write + Send>, format: LogFormat) -> io::Result<FlowLogWriter> {
        FlowLogWriter::start(Sink::Plain(out), format)
    }

    fn start(sink: Sink, format: LogFormat) -> io::Result<FlowLogWriter> {
        let mut buf = Vec::with_capacity(CHUNK + 1024);
        buf.extend_from_slice(format.header().as_bytes());
        buf.push(b'\n');
        let mut w = FlowLogWriter {
            format,
            sink: Some(sink),
            buf,
            records: 0,
        };
        // The header goes out at once: even a run that stops early leaves a file that
        // says what its columns are.
        w.flush_lines()?;
        Ok(w)
    }

    /// The format records are written in.
    pub fn format(&self) -> &LogFormat {
        &self.format
    }

    /// Appends one record.
    pub fn write(&mut self, rec: &FlowRecord, meta: &EniMeta) -> io::Result<()> {
        self.format.write_record(rec, meta, &mut self.buf);
        self.records += 1;
        if self.buf.len() >= CHUNK {
            self.flush_lines()?;
        }
        Ok(())
    }

    /// Hands every buffered line to the underlying writer and flushes it (for gzip: the
    /// compressor's sync flush, so the file so far decodes).
    pub fn flush(&mut self) -> io::Result<()> {
        self.flush_lines()?;
        match self.sink.as_mut() {
            Some(Sink::Plain(w)) => w.flush(),
            Some(Sink::Gzip(w)) => w.flush(),
            None => Ok(()),
        }
    }

    /// Writes out everything, flushes, and ends the gzip stream.
    pub fn finish(mut self) -> io::Result<()> {
        self.flush_lines()?;
        match self.sink.take() {
            Some(Sink::Plain(mut w)) => w.flush(),
            Some(Sink::Gzip(w)) => w.finish().map(drop),
            None => Ok(()),
        }
    }

    /// Records written so far (the header line not counted).
    pub fn records_written(&self) -> u64 {
        self.records
    }

    /// The buffer holds whole lines only; hand them over in one piece.
    fn flush_lines(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        if let Some(sink) = self.sink.as_mut() {
            let r = sink.write_all(&self.buf);
            self.buf.clear();
            r?;
        }
        Ok(())
    }
}

impl Drop for FlowLogWriter {
    /// A writer dropped without [`finish`](FlowLogWriter::finish) (an error path) still
    /// writes its whole lines out, best effort; a gzip stream is ended by its own drop.
    fn drop(&mut self) {
        let _ = self.flush_lines();
        if let Some(Sink::Plain(w)) = self.sink.as_mut() {
            let _ = w.flush();
        }
    }
}

impl std::fmt::Debug for FlowLogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowLogWriter")
            .field("format", &self.format.to_string())
            .field("buffered", &self.buf.len())
            .field("records", &self.records)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::sync::{Arc, Mutex};

    /// A `Write` that records every `write` call.
    #[derive(Clone, Default)]
    struct Calls(Arc<Mutex<Vec<Vec<u8>>>>);

    impl Write for Calls {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().push(b.to_vec());
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn meta() -> EniMeta {
        EniMeta {
            interface_id: "eni-1".into(),
            account_id: "123456789010".into(),
            ..EniMeta::default()
        }
    }

    #[test]
    fn only_whole_lines_reach_the_writer() {
        let calls = Calls::default();
        let mut w =
            FlowLogWriter::from_writer(Box::new(calls.clone()), LogFormat::default_format())
                .unwrap();
        for i in 0..5_000u64 {
            w.write(&FlowRecord::nodata(0, i * 600, 600), &meta())
                .unwrap();
        }
        assert_eq!(w.records_written(), 5_000);
        w.finish().unwrap();
        let calls = calls.0.lock().unwrap();
        assert!(calls.len() > 2, "output was handed over in chunks");
        assert!(calls.iter().all(|c| c.ends_with(b"\n")));
        let text = String::from_utf8(calls.concat()).unwrap();
        assert_eq!(text.lines().count(), 5_001);
        assert!(text.starts_with("version account-id interface-id "));
        assert_eq!(
            text.lines().nth(1),
            Some("2 123456789010 eni-1 - - - - - - - 0 599 - NODATA")
        );
    }

    #[test]
    fn header_is_written_at_once_and_drop_flushes() {
        let calls = Calls::default();
        let format = LogFormat::parse("${interface-id} ${log-status}").unwrap();
        let mut w = FlowLogWriter::from_writer(Box::new(calls.clone()), format).unwrap();
        assert_eq!(
            calls.0.lock().unwrap().concat(),
            b"interface-id log-status\n"
        );
        w.write(&FlowRecord::nodata(0, 0, 60), &meta()).unwrap();
        drop(w);
        assert_eq!(
            calls.0.lock().unwrap().concat(),
            b"interface-id log-status\neni-1 NODATA\n"
        );
    }

    #[test]
    fn gzip_by_extension() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("a.log");
        let gz = dir.path().join("a.log.gz");
        for p in [&plain, &gz] {
            let mut w = FlowLogWriter::create(p, LogFormat::default_format()).unwrap();
            w.write(&FlowRecord::nodata(0, 600, 600), &meta()).unwrap();
            w.finish().unwrap();
        }
        let plain = std::fs::read(&plain).unwrap();
        let raw = std::fs::read(&gz).unwrap();
        assert_eq!(&raw[..2], &[0x1f, 0x8b], "gzip magic");
        let mut decoded = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut decoded)
            .unwrap();
        assert_eq!(decoded, plain);
    }
}
