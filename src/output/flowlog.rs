//! Text flow-log files: a header line, then one record per line; gzip when the path ends
//! in `.gz`; `-` is standard output.
//!
//! Every record goes to a [`RecordWriter`] as one whole line, so the file never ends
//! inside a record: not when a run stops early, and not when the disk fills up (the file
//! is cut back to its last whole line, see [`crate::output::sink`]). The writer does not order
//! records: give them in output order (`FlowRecord`'s `Ord`).
//!
//! **Gzip** is written as a series of gzip members, one per `GZIP_MEMBER_TEXT` bytes
//! of text (and one more at each [`flush`](FlowLogWriter::flush) and at the end). The
//! concatenation of gzip members is itself a valid gzip file (RFC 1952 §2.2) that
//! `gzip -d`, `zcat`, Python's `gzip` and `flate2::read::MultiGzDecoder` read whole, and
//! each member is one record for the [`RecordWriter`]: a full disk leaves a file of
//! complete members that decodes without error to whole lines. (A reader that stops after
//! the first member, such as `flate2::read::GzDecoder`, sees only the first 1 MiB of text
//! of a large log.)

use std::io::{self, Write};
use std::path::Path;

use flate2::write::GzEncoder;
use flate2::Compression;

use super::sink::RecordWriter;
use crate::flowlog::{EniMeta, FlowRecord, LogFormat};

/// Plain text is handed to the file once this many bytes have accumulated.
const CHUNK: usize = 64 * 1024;

/// A gzip member is ended once it holds this much text (1 MiB; about 100-200 KiB
/// compressed, held in memory until the member ends).
const GZIP_MEMBER_TEXT: usize = 1 << 20;

enum Sink {
    Plain(RecordWriter),
    Gzip {
        out: RecordWriter,
        /// The member being compressed, into memory (boxed: zlib-rs's state is large).
        member: Box<GzEncoder<Vec<u8>>>,
        /// Text bytes in `member`.
        text: usize,
    },
}

fn new_member() -> Box<GzEncoder<Vec<u8>>> {
    Box::new(GzEncoder::new(Vec::new(), Compression::default()))
}

impl Sink {
    /// One whole line (or the header).
    fn line(&mut self, line: &[u8]) -> io::Result<()> {
        match self {
            Sink::Plain(out) => out.push(line),
            Sink::Gzip { member, text, .. } => {
                member.write_all(line)?;
                *text += line.len();
                if *text >= GZIP_MEMBER_TEXT {
                    self.end_member()?;
                }
                Ok(())
            }
        }
    }

    /// Ends the gzip member being written, if it holds any text, and hands it over whole.
    fn end_member(&mut self) -> io::Result<()> {
        if let Sink::Gzip { out, member, text } = self {
            if *text > 0 {
                let done = std::mem::replace(member, new_member());
                *text = 0;
                out.push(&done.finish()?)?;
            }
        }
        Ok(())
    }

    fn out(&mut self) -> &mut RecordWriter {
        match self {
            Sink::Plain(out) | Sink::Gzip { out, .. } => out,
        }
    }
}

/// Writes flow-log records as text in one [`LogFormat`].
///
/// ```
/// use vpcgate::flowlog::{EniMeta, FlowRecord, LogFormat};
/// use vpcgate::output::FlowLogWriter;
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("flow.log");
/// let mut w = FlowLogWriter::create(&path, LogFormat::default_format()).unwrap();
/// let meta = EniMeta { interface_id: "eni-0abc".into(), account_id: "123456789010".into(), ..EniMeta::default() };
/// w.write(&FlowRecord::nodata(vpcgate::model::EniNum(0), 600, 600), &meta).unwrap();
/// w.finish().unwrap();
/// let text = std::fs::read_to_string(&path).unwrap();
/// assert_eq!(text.lines().nth(1), Some("2 123456789010 eni-0abc - - - - - - - 600 1199 - NODATA"));
/// ```
pub struct FlowLogWriter {
    format: LogFormat,
    sink: Option<Sink>,
    /// The line being rendered.
    line: Vec<u8>,
    records: u64,
}

impl FlowLogWriter {
    /// Creates (truncates) `path` and writes the header line. `-` is standard output; a
    /// path ending in `.gz` is written gzip-compressed (a series of gzip members: see
    /// the module documentation).
    pub fn create(path: &Path, format: LogFormat) -> io::Result<FlowLogWriter> {
        let gz = path.as_os_str() != "-"
            && path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("gz"));
        let out = RecordWriter::create(path)?.with_capacity(CHUNK);
        let sink = if gz {
            Sink::Gzip {
                out,
                member: new_member(),
                text: 0,
            }
        } else {
            Sink::Plain(out)
        };
        FlowLogWriter::start(sink, format)
    }

    /// A writer of plain text into `out` (a file, a socket, a `Vec<u8>`…); writes the
    /// header line.
    pub fn from_writer(out: Box<dyn Write + Send>, format: LogFormat) -> io::Result<FlowLogWriter> {
        FlowLogWriter::start(
            Sink::Plain(RecordWriter::from_writer(out).with_capacity(CHUNK)),
            format,
        )
    }

    fn start(mut sink: Sink, format: LogFormat) -> io::Result<FlowLogWriter> {
        let mut header = format.header().into_bytes();
        header.push(b'\n');
        sink.line(&header)?;
        // Plain text: the header goes out at once, so even a run that stops early leaves
        // a file that says what its columns are. (Gzip: it starts the first member.)
        if let Sink::Plain(out) = &mut sink {
            out.flush()?;
        }
        Ok(FlowLogWriter {
            format,
            sink: Some(sink),
            line: Vec::with_capacity(512),
            records: 0,
        })
    }

    /// The format records are written in.
    pub fn format(&self) -> &LogFormat {
        &self.format
    }

    /// Appends one record.
    pub fn write(&mut self, rec: &FlowRecord, meta: &EniMeta) -> io::Result<()> {
        self.line.clear();
        self.format.write_record(rec, meta, &mut self.line);
        if let Some(sink) = self.sink.as_mut() {
            sink.line(&self.line)?;
        }
        self.records += 1;
        Ok(())
    }

    /// Hands every buffered line to the file and flushes it. For gzip, this ends the
    /// current gzip member: the file so far is a complete gzip file.
    pub fn flush(&mut self) -> io::Result<()> {
        match self.sink.as_mut() {
            Some(sink) => {
                sink.end_member()?;
                sink.out().flush()
            }
            None => Ok(()),
        }
    }

    /// Writes out everything, flushes, and ends the gzip stream.
    pub fn finish(mut self) -> io::Result<()> {
        self.flush()?;
        match self.sink.take() {
            Some(Sink::Plain(out)) | Some(Sink::Gzip { out, .. }) => out.finish(),
            None => Ok(()),
        }
    }

    /// Records written so far (the header line not counted).
    pub fn records_written(&self) -> u64 {
        self.records
    }
}

impl Drop for FlowLogWriter {
    /// A writer dropped without [`finish`](FlowLogWriter::finish) (an error path) still
    /// writes its whole lines out, and ends its gzip member, best effort.
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

impl std::fmt::Debug for FlowLogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowLogWriter")
            .field("format", &self.format.to_string())
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
            w.write(
                &FlowRecord::nodata(crate::model::EniNum(0), i * 600, 600),
                &meta(),
            )
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
        w.write(&FlowRecord::nodata(crate::model::EniNum(0), 0, 60), &meta())
            .unwrap();
        drop(w);
        assert_eq!(
            calls.0.lock().unwrap().concat(),
            b"interface-id log-status\neni-1 NODATA\n"
        );
    }

    /// A large gzip log is a series of complete members, each ending at a line, that
    /// together decode to the plain text.
    #[test]
    fn gzip_members_end_at_lines() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("big.log");
        let gz = dir.path().join("big.log.gz");
        for p in [&plain, &gz] {
            let mut w = FlowLogWriter::create(p, LogFormat::default_format()).unwrap();
            for i in 0..40_000u64 {
                w.write(
                    &FlowRecord::nodata(crate::model::EniNum(0), i * 600, 600),
                    &meta(),
                )
                .unwrap();
            }
            w.finish().unwrap();
        }
        let plain = std::fs::read(&plain).unwrap();
        assert!(plain.len() > 2 * GZIP_MEMBER_TEXT);
        let raw = std::fs::read(&gz).unwrap();
        let mut all = Vec::new();
        flate2::read::MultiGzDecoder::new(&raw[..])
            .read_to_end(&mut all)
            .unwrap();
        assert_eq!(all, plain);
        // Member by member: each one decodes alone to whole lines.
        let mut rest = &raw[..];
        let mut members = 0;
        while !rest.is_empty() {
            let mut d = flate2::bufread::GzDecoder::new(rest);
            let mut text = Vec::new();
            d.read_to_end(&mut text).unwrap();
            assert!(text.ends_with(b"\n"));
            rest = d.into_inner();
            members += 1;
        }
        assert_eq!(members, plain.len().div_ceil(GZIP_MEMBER_TEXT));
    }

    #[test]
    fn gzip_by_extension() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("a.log");
        let gz = dir.path().join("a.log.gz");
        for p in [&plain, &gz] {
            let mut w = FlowLogWriter::create(p, LogFormat::default_format()).unwrap();
            w.write(
                &FlowRecord::nodata(crate::model::EniNum(0), 600, 600),
                &meta(),
            )
            .unwrap();
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
