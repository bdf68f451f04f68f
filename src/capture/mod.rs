//! Capture files: streaming pcap / pcapng reading with bounded memory, and pcap writing.
//!
//! [`CaptureReader`] reads classic pcap (both byte orders, microsecond and nanosecond
//! magics) and pcapng (several sections and interfaces, per-interface link type and
//! timestamp resolution, EPB / SPB / obsolete Packet Blocks) from a file or standard
//! input, one packet at a time, through one reused buffer (1 MiB, more only for a
//! single record that needs it, at most 16 MiB): memory does not grow with the file.
//! [`PcapWriter`] writes classic pcap with nanosecond timestamps.
//!
//! Damage is an error that names the file and the byte offset of the record where it
//! was found ([`CaptureError`]); every packet before it has been returned first. A
//! record whose length is absurd is refused as damage before anything is allocated for it.
//!
//! What it does not do: parse the packets (see [`crate::wire::packet`]), write pcapng, or read
//! compressed captures.
//!
//! ```
//! use vpcgate::capture::{CaptureReader, PcapWriter};
//! use vpcgate::wire::packet::{linktype, Timestamp};
//! use std::sync::{Arc, Mutex};
//!
//! // Write two packets to memory, then read them back.
//! #[derive(Clone, Default)]
//! struct Shared(Arc<Mutex<Vec<u8>>>);
//! impl std::io::Write for Shared {
//!     fn write(&mut self, b: &[u8]) -> std::io::Result<usize> { self.0.lock().unwrap().write(b) }
//!     fn flush(&mut self) -> std::io::Result<()> { Ok(()) }
//! }
//! let out = Shared::default();
//! let mut w = PcapWriter::to_writer(Box::new(out.clone()));
//! w.write_packet(Timestamp(1_700_000_000_123_456_789), linktype::RAW, &[0x45; 20], 20)?;
//! w.write_packet(Timestamp(1_700_000_001_000_000_000), linktype::RAW, &[0x45; 20], 1500)?;
//! w.finish()?;
//! let bytes = out.0.lock().unwrap().clone();
//! let mut r = CaptureReader::from_reader("mem.pcap", Box::new(std::io::Cursor::new(bytes))).unwrap();
//! let p = r.next_packet().unwrap().unwrap();
//! assert_eq!((p.ts, p.link_type, p.data.len(), p.orig_len), (Timestamp(1_700_000_000_123_456_789), 101, 20, 20));
//! assert_eq!(r.next_packet().unwrap().unwrap().orig_len, 1500);
//! assert!(r.next_packet().unwrap().is_none());
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Why hand-written rather than `pcap-file`: we need the byte offset of every record to
//! report damage, one reader that streams both formats from standard input through a
//! bounded reused buffer, our own limits on record lengths (refused before allocating),
//! and a writer that keeps the first packet's link type and counts the others. Both
//! formats are a few fixed-layout headers, so owning these ~400 lines is simpler than
//! adapting a pre-release API to all of that.

use crate::wire::packet::{linktype, Timestamp};
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

/// The largest captured length accepted for one packet (libpcap's and Wireshark's limit).
/// A record's captured length above a file's snaplen is accepted up to this limit, as
/// libpcap and Wireshark do: many real files have a bogus snaplen.
pub const MAX_CAPLEN: u32 = 262_144;
/// The largest pcapng block accepted (any type).
pub const MAX_BLOCK_LEN: u32 = 16 * 1024 * 1024;
/// The snaplen [`PcapWriter`] writes.
pub const WRITER_SNAPLEN: u32 = MAX_CAPLEN;

const BUFFER_SIZE: usize = 1 << 20;

const PCAP_MAGIC_MICROS: u32 = 0xa1b2_c3d4;
const PCAP_MAGIC_NANOS: u32 = 0xa1b2_3c4d;
/// Alexey Kuznetzov's modified pcap: 8 more bytes in each record header.
const PCAP_MAGIC_KUZNETZOV: u32 = 0xa1b2_cd34;
const PCAPNG_SHB: u32 = 0x0a0d_0d0a;
const PCAPNG_BYTE_ORDER_MAGIC: u32 = 0x1a2b_3c4d;
const PCAPNG_IDB: u32 = 1;
const PCAPNG_PB: u32 = 2;
const PCAPNG_SPB: u32 = 3;
const PCAPNG_EPB: u32 = 6;

/// One captured packet as stored in the file; `data` borrows the reader's buffer until the
/// next call to [`CaptureReader::next_packet`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawPacket<'a> {
    pub ts: Timestamp,
    pub link_type: u32,
    pub data: &'a [u8],
    /// Length of the packet on the wire (≥ `data.len()` unless the file says otherwise).
    pub orig_len: u32,
}

/// A capture that cannot be read further: which file, at which byte offset (the start of
/// the record or block where the problem is), and what.
#[derive(Debug)]
pub struct CaptureError {
    pub file: String,
    pub offset: u64,
    pub kind: CaptureErrorKind,
}

/// What went wrong in a [`CaptureError`].
#[derive(Debug)]
pub enum CaptureErrorKind {
    /// The file could not be opened.
    Open(io::Error),
    /// Reading failed.
    Io(io::Error),
    /// A file of 0 bytes.
    Empty,
    /// The first four bytes are no capture magic number.
    NotACapture { magic: [u8; 4] },
    /// The file ends inside its pcap file header or first pcapng block header.
    TruncatedFileHeader { needed: u64, present: u64 },
    /// A pcap (major 2) or pcapng (major 1) version this reader does not know.
    UnsupportedVersion {
        format: &'static str,
        major: u16,
        minor: u16,
    },
    /// The file ends inside a pcap packet record.
    TruncatedRecord { needed: u64, present: u64 },
    /// The file ends inside a pcapng block.
    TruncatedBlock {
        block_type: u32,
        needed: u64,
        present: u64,
    },
    /// A captured length above [`MAX_CAPLEN`].
    RecordTooLong { length: u32, limit: u32 },
    /// A pcapng block length below 12, above [`MAX_BLOCK_LEN`] or not a multiple of 4.
    BadBlockLength { block_type: u32, length: u32 },
    /// A pcapng block too short for the fixed fields of its type.
    BlockTooShort {
        block_type: u32,
        length: u32,
        needed: u32,
    },
    /// A pcapng block whose trailing length differs from its leading one.
    BlockTrailerMismatch {
        block_type: u32,
        length: u32,
        trailer: u32,
    },
    /// A pcapng section header whose byte-order magic is neither 0x1a2b3c4d nor swapped.
    BadByteOrderMagic { magic: u32 },
    /// A pcapng packet for an interface the section has not described.
    UnknownInterface {
        interface_id: u32,
        interfaces: usize,
    },
    /// A pcapng packet whose captured length exceeds the room in its block.
    PacketBeyondBlock { caplen: u32, room: u32 },
}

fn block_name(block_type: u32) -> &'static str {
    match block_type {
        PCAPNG_SHB => "section header",
        PCAPNG_IDB => "interface description",
        PCAPNG_PB => "packet",
        PCAPNG_SPB => "simple packet",
        4 => "name resolution",
        5 => "interface statistics",
        PCAPNG_EPB => "enhanced packet",
        0x0a => "decryption secrets",
        _ => "unknown",
    }
}

impl fmt::Display for CaptureErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use CaptureErrorKind::*;
        match self {
            Open(e) => write!(f, "cannot open: {e}"),
            Io(e) => write!(f, "read error: {e}"),
            Empty => write!(f, "the file is empty: not a pcap or pcapng capture"),
            NotACapture { magic: m } => write!(
                f,
                "not a pcap or pcapng capture: it starts with {:02x} {:02x} {:02x} {:02x}, and a capture \
                 starts with a1 b2 c3 d4 (pcap, microseconds), a1 b2 3c 4d (pcap, nanoseconds), \
                 a1 b2 cd 34 (modified pcap), each in either byte order, or 0a 0d 0d 0a (pcapng)",
                m[0], m[1], m[2], m[3]
            ),
            TruncatedFileHeader { needed, present } => write!(
                f,
                "the file ends inside its file header ({present} of {needed} bytes present; truncated capture?)"
            ),
            UnsupportedVersion { format, major, minor } => {
                write!(f, "{format} version {major}.{minor} is not supported")
            }
            TruncatedRecord { needed, present } => write!(
                f,
                "the file ends inside a packet record ({present} of its {needed} bytes present; truncated capture?)"
            ),
            TruncatedBlock { block_type, needed, present } => write!(
                f,
                "the file ends inside a pcapng {} block ({present} of its {needed} bytes present; truncated capture?)",
                block_name(*block_type)
            ),
            RecordTooLong { length, limit } => {
                write!(f, "record length {length} exceeds the limit of {limit} bytes (damaged capture?)")
            }
            BadBlockLength { block_type, length } => write!(
                f,
                "pcapng block of type 0x{block_type:08x} with length {length}: a block length is a multiple \
                 of 4 from 12 to {MAX_BLOCK_LEN} (damaged capture?)"
            ),
            BlockTooShort { block_type, length, needed } => write!(
                f,
                "pcapng {} block of {length} bytes, too short for its {needed} bytes of fixed fields (damaged capture?)",
                block_name(*block_type)
            ),
            BlockTrailerMismatch { block_type, length, trailer } => write!(
                f,
                "pcapng {} block length {length} differs from its trailing copy {trailer} (damaged capture?)",
                block_name(*block_type)
            ),
            BadByteOrderMagic { magic } => write!(
                f,
                "pcapng section header with byte-order magic 0x{magic:08x}, expected 0x1a2b3c4d in either \
                 byte order (damaged capture?)"
            ),
            UnknownInterface { interface_id, interfaces } => write!(
                f,
                "a packet for interface {interface_id}, but the section describes {interfaces} interface(s) \
                 (damaged capture?)"
            ),
            PacketBeyondBlock { caplen, room } => write!(
                f,
                "captured length {caplen} does not fit in its block ({room} bytes of room; damaged capture?)"
            ),
        }
    }
}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            CaptureErrorKind::Open(_) => write!(f, "{}: {}", self.file, self.kind),
            _ => write!(
                f,
                "{}: at byte offset {}: {}",
                self.file, self.offset, self.kind
            ),
        }
    }
}

impl std::error::Error for CaptureError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            CaptureErrorKind::Open(e) | CaptureErrorKind::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// A reused read buffer over the input: `buf[start..end]` holds the unconsumed bytes,
/// `buf[0]` is at file offset `base`.
struct Input {
    reader: Box<dyn Read + Send>,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    base: u64,
    eof: bool,
    /// While a block is being gathered ([`CaptureReader::read_block`]), bytes already
    /// handed out as records must not move: `fill` reads more only into the free tail
    /// of the buffer and answers [`Pinned`] when that is not enough.
    pinned: bool,
}

/// The answer of a pinned [`Input::fill`] that would have to move bytes.
#[derive(Debug)]
struct Pinned;

impl fmt::Display for Pinned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the block is full")
    }
}

impl std::error::Error for Pinned {}

fn is_pinned(kind: &CaptureErrorKind) -> bool {
    matches!(kind, CaptureErrorKind::Io(e) if e.get_ref().is_some_and(|x| x.is::<Pinned>()))
}

impl Input {
    /// File offset of the next unconsumed byte.
    fn offset(&self) -> u64 {
        self.base + self.start as u64
    }

    fn available(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Makes `n` bytes available (fewer only at the end of the input); returns how many are.
    fn fill(&mut self, n: usize) -> io::Result<usize> {
        if self.end - self.start >= n {
            return Ok(self.end - self.start);
        }
        if self.start + n > self.buf.len() {
            if self.pinned {
                return Err(io::Error::other(Pinned));
            }
            self.buf.copy_within(self.start..self.end, 0);
            self.base += self.start as u64;
            self.end -= self.start;
            self.start = 0;
            if n > self.buf.len() {
                // Only for one record larger than the buffer; the callers bound `n`.
                self.buf.resize(n, 0);
            }
        }
        while self.end - self.start < n && !self.eof {
            match self.reader.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(k) => self.end += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(self.end - self.start)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Resolution {
    /// Units of 10^-n seconds.
    Pow10(u8),
    /// Units of 2^-n seconds.
    Pow2(u8),
}

#[derive(Clone, Copy, Debug)]
struct Interface {
    link_type: u32,
    snaplen: u32,
    resolution: Resolution,
    /// if_tsoffset: seconds added to every timestamp.
    offset_secs: i64,
}

impl Interface {
    fn timestamp(&self, units: u64) -> Timestamp {
        let units = u128::from(units);
        let nanos: u128 = match self.resolution {
            Resolution::Pow10(e) if e <= 9 => units * 10u128.pow(u32::from(9 - e)),
            Resolution::Pow10(e) => 10u128
                .checked_pow(u32::from(e - 9))
                .map_or(0, |d| units / d),
            Resolution::Pow2(e) => (units * 1_000_000_000) >> e,
        };
        let nanos = nanos as i128 + i128::from(self.offset_secs) * 1_000_000_000;
        Timestamp(nanos.clamp(0, i128::from(u64::MAX)) as u64)
    }
}

enum Format {
    Pcap {
        big_endian: bool,
        nanos: bool,
        record_header: usize,
        link_type: u32,
    },
    PcapNg {
        big_endian: bool,
        interfaces: Vec<Interface>,
        last_ts: Timestamp,
    },
}

/// Reads a pcap or pcapng capture packet by packet, from a file or standard input.
pub struct CaptureReader {
    name: String,
    input: Input,
    format: Format,
    file_len: Option<u64>,
    done: bool,
    /// An error met while gathering a block that already held records: returned by
    /// the next call.
    deferred: Option<CaptureError>,
}

/// One record of a [`Block`]: `data[start..start + len]` is the captured frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockRecord {
    pub ts: Timestamp,
    pub link_type: u32,
    pub start: u32,
    pub len: u32,
    pub orig_len: u32,
}

/// Whole records read in one go by [`CaptureReader::read_block`], in the buffer they
/// were read into: no record is copied on its way to the workers.
#[derive(Debug, Default)]
pub struct Block {
    pub data: Vec<u8>,
    pub records: Vec<BlockRecord>,
}

impl Block {
    /// The captured bytes of record `i`.
    #[inline]
    pub fn frame(&self, i: usize) -> &[u8] {
        let r = &self.records[i];
        &self.data[r.start as usize..(r.start + r.len) as usize]
    }
}

fn u32_at(b: &[u8], at: usize, big_endian: bool) -> u32 {
    let x = [b[at], b[at + 1], b[at + 2], b[at + 3]];
    if big_endian {
        u32::from_be_bytes(x)
    } else {
        u32::from_le_bytes(x)
    }
}

fn u16_at(b: &[u8], at: usize, big_endian: bool) -> u16 {
    let x = [b[at], b[at + 1]];
    if big_endian {
        u16::from_be_bytes(x)
    } else {
        u16::from_le_bytes(x)
    }
}

impl CaptureReader {
    /// Opens a capture file; `-` reads standard input.
    pub fn open(path: &Path) -> Result<CaptureReader, CaptureError> {
        if path.as_os_str() == "-" {
            return CaptureReader::from_reader("<stdin>", Box::new(io::stdin()));
        }
        let name = path.display().to_string();
        let open_error = |e| CaptureError {
            file: name.clone(),
            offset: 0,
            kind: CaptureErrorKind::Open(e),
        };
        let file = File::open(path).map_err(open_error)?;
        let meta = file.metadata().map_err(open_error)?;
        let mut reader = CaptureReader::from_reader(&name, Box::new(file))?;
        reader.file_len = meta.is_file().then_some(meta.len());
        Ok(reader)
    }

    /// Reads a capture from any byte stream; `name` is used in error messages.
    pub fn from_reader(
        name: &str,
        reader: Box<dyn Read + Send>,
    ) -> Result<CaptureReader, CaptureError> {
        let mut input = Input {
            reader,
            buf: vec![0; BUFFER_SIZE],
            start: 0,
            end: 0,
            base: 0,
            eof: false,
            pinned: false,
        };
        let error = |kind| CaptureError {
            file: name.to_string(),
            offset: 0,
            kind,
        };
        let have = input.fill(24).map_err(|e| error(CaptureErrorKind::Io(e)))?;
        if have == 0 {
            return Err(error(CaptureErrorKind::Empty));
        }
        let head = input.available();
        let mut magic = [0u8; 4];
        magic[..have.min(4)].copy_from_slice(&head[..have.min(4)]);
        let be = u32::from_be_bytes(magic);
        let le = u32::from_le_bytes(magic);
        let truncated = |needed: usize| {
            error(CaptureErrorKind::TruncatedFileHeader {
                needed: needed as u64,
                present: have as u64,
            })
        };
        let format = if be == PCAPNG_SHB {
            if have < 12 {
                return Err(truncated(12));
            }
            // The first block is a section header; next_packet reads it like any other.
            let big_endian = match u32::from_be_bytes([head[8], head[9], head[10], head[11]]) {
                PCAPNG_BYTE_ORDER_MAGIC => true,
                m if m.swap_bytes() == PCAPNG_BYTE_ORDER_MAGIC => false,
                magic => return Err(error(CaptureErrorKind::BadByteOrderMagic { magic })),
            };
            Format::PcapNg {
                big_endian,
                interfaces: Vec::new(),
                last_ts: Timestamp(0),
            }
        } else {
            let big_endian = match (be, le) {
                (PCAP_MAGIC_MICROS | PCAP_MAGIC_NANOS | PCAP_MAGIC_KUZNETZOV, _) => true,
                (_, PCAP_MAGIC_MICROS | PCAP_MAGIC_NANOS | PCAP_MAGIC_KUZNETZOV) => false,
                _ if have < 4 => return Err(truncated(4)),
                _ => return Err(error(CaptureErrorKind::NotACapture { magic })),
            };
            if have < 24 {
                return Err(truncated(24));
            }
            let magic = if big_endian { be } else { le };
            let major = u16_at(head, 4, big_endian);
            let minor = u16_at(head, 6, big_endian);
            if major != 2 {
                return Err(error(CaptureErrorKind::UnsupportedVersion {
                    format: "pcap",
                    major,
                    minor,
                }));
            }
            // The upper bits of the link type field carry FCS information.
            let link_type = u32_at(head, 20, big_endian) & 0x03ff_ffff;
            input.start += 24;
            Format::Pcap {
                big_endian,
                nanos: magic == PCAP_MAGIC_NANOS,
                record_header: if magic == PCAP_MAGIC_KUZNETZOV {
                    24
                } else {
                    16
                },
                link_type,
            }
        };
        Ok(CaptureReader {
            name: name.to_string(),
            input,
            format,
            file_len: None,
            done: false,
            deferred: None,
        })
    }

    /// The next packet; `Ok(None)` at a clean end of the capture. After an error, every
    /// later call returns `Ok(None)`.
    pub fn next_packet(&mut self) -> Result<Option<RawPacket<'_>>, CaptureError> {
        if self.done {
            return Ok(None);
        }
        let result = match self.format {
            Format::Pcap { .. } => self.next_pcap(),
            Format::PcapNg { .. } => self.next_pcapng(),
        };
        match result {
            Ok(Some((ts, link_type, range, orig_len))) => Ok(Some(RawPacket {
                ts,
                link_type,
                data: &self.input.buf[range],
                orig_len,
            })),
            Ok(None) => {
                self.done = true;
                Ok(None)
            }
            Err(kind) => {
                // Nothing of the damaged record was consumed: the offset is its start.
                self.done = true;
                Err(CaptureError {
                    file: self.name.clone(),
                    offset: self.input.offset(),
                    kind,
                })
            }
        }
    }

    /// Reads up to `max` whole records into `block`, without copying them: `block`
    /// takes over the buffer they were read into, and the reader goes on in `block`'s
    /// old buffer (only a partly read record at the end is copied over). A block holds
    /// about one buffer of records, fewer at the end of the input.
    ///
    /// `Ok` with no records at the end of the capture. An error met after some
    /// records were gathered is returned by the next call, so everything before the
    /// damage is delivered first; after an error, every later call gives no records.
    pub fn read_block(&mut self, block: &mut Block, max: usize) -> Result<(), CaptureError> {
        block.records.clear();
        if let Some(e) = self.deferred.take() {
            return Err(e);
        }
        if self.done {
            return Ok(());
        }
        while block.records.len() < max {
            self.input.pinned = !block.records.is_empty();
            let step = match self.format {
                Format::Pcap { .. } => self.next_pcap(),
                Format::PcapNg { .. } => self.next_pcapng(),
            };
            self.input.pinned = false;
            match step {
                Ok(Some((ts, link_type, range, orig_len))) => block.records.push(BlockRecord {
                    ts,
                    link_type,
                    start: range.start as u32,
                    len: range.len() as u32,
                    orig_len,
                }),
                Ok(None) => {
                    self.done = true;
                    break;
                }
                Err(kind) if is_pinned(&kind) => break,
                Err(kind) => {
                    self.done = true;
                    let e = CaptureError {
                        file: self.name.clone(),
                        offset: self.input.offset(),
                        kind,
                    };
                    if block.records.is_empty() {
                        return Err(e);
                    }
                    self.deferred = Some(e);
                    break;
                }
            }
        }
        // Hand the buffer over; keep reading in the block's old one.
        let tail = self.input.end - self.input.start;
        let mut next = std::mem::take(&mut block.data);
        let size = BUFFER_SIZE.max(tail).max(next.len());
        if next.len() < size {
            next.resize(size, 0);
        }
        next[..tail].copy_from_slice(&self.input.buf[self.input.start..self.input.end]);
        block.data = std::mem::replace(&mut self.input.buf, next);
        self.input.base += self.input.start as u64;
        self.input.start = 0;
        self.input.end = tail;
        Ok(())
    }

    /// Bytes of the input consumed so far: the end of the last packet returned (for a
    /// progress bar against [`CaptureReader::file_len`]).
    pub fn bytes_read(&self) -> u64 {
        self.input.offset()
    }

    /// The file's length, when reading a regular file.
    pub fn file_len(&self) -> Option<u64> {
        self.file_len
    }

    /// The name used in error messages (the path, or `<stdin>`).
    pub fn name(&self) -> &str {
        &self.name
    }

    fn next_pcap(&mut self) -> Step {
        let Format::Pcap {
            big_endian,
            nanos,
            record_header,
            link_type,
        } = self.format
        else {
            return Ok(None);
        };
        let have = self.input.fill(record_header).map_err(io_error)?;
        if have == 0 {
            return Ok(None);
        }
        if have < record_header {
            return Err(CaptureErrorKind::TruncatedRecord {
                needed: record_header as u64,
                present: have as u64,
            });
        }
        let h = self.input.available();
        let secs = u64::from(u32_at(h, 0, big_endian));
        let frac = u64::from(u32_at(h, 4, big_endian));
        let caplen = u32_at(h, 8, big_endian);
        let orig_len = u32_at(h, 12, big_endian);
        if caplen > MAX_CAPLEN {
            return Err(CaptureErrorKind::RecordTooLong {
                length: caplen,
                limit: MAX_CAPLEN,
            });
        }
        let needed = record_header + caplen as usize;
        let have = self.input.fill(needed).map_err(io_error)?;
        if have < needed {
            return Err(CaptureErrorKind::TruncatedRecord {
                needed: needed as u64,
                present: have as u64,
            });
        }
        let frac_nanos = if nanos { frac } else { frac * 1_000 };
        let ts = Timestamp(secs * 1_000_000_000 + frac_nanos);
        let start = self.input.start;
        self.input.start += needed;
        Ok(Some((
            ts,
            link_type,
            start + record_header..start + needed,
            orig_len,
        )))
    }

    fn next_pcapng(&mut self) -> Step {
        loop {
            let Format::PcapNg { big_endian, .. } = self.format else {
                return Ok(None);
            };
            let have = self.input.fill(12).map_err(io_error)?;
            if have == 0 {
                return Ok(None);
            }
            let h = self.input.available();
            let block_type = if have >= 4 {
                u32_at(h, 0, big_endian)
            } else {
                0
            };
            if have < 12 {
                return Err(CaptureErrorKind::TruncatedBlock {
                    block_type,
                    needed: 12,
                    present: have as u64,
                });
            }
            // A section header sets the byte order of everything up to the next one.
            let big_endian = if block_type == PCAPNG_SHB {
                match u32_at(h, 8, true) {
                    PCAPNG_BYTE_ORDER_MAGIC => true,
                    m if m.swap_bytes() == PCAPNG_BYTE_ORDER_MAGIC => false,
                    magic => return Err(CaptureErrorKind::BadByteOrderMagic { magic }),
                }
            } else {
                big_endian
            };
            let length = u32_at(h, 4, big_endian);
            if length < 12 || !length.is_multiple_of(4) || length > MAX_BLOCK_LEN {
                return Err(CaptureErrorKind::BadBlockLength { block_type, length });
            }
            let have = self.input.fill(length as usize).map_err(io_error)?;
            if have < length as usize {
                return Err(CaptureErrorKind::TruncatedBlock {
                    block_type,
                    needed: u64::from(length),
                    present: have as u64,
                });
            }
            let start = self.input.start;
            let block = &self.input.buf[start..start + length as usize];
            let trailer = u32_at(block, length as usize - 4, big_endian);
            if trailer != length {
                return Err(CaptureErrorKind::BlockTrailerMismatch {
                    block_type,
                    length,
                    trailer,
                });
            }
            let body = &block[8..length as usize - 4];
            let too_short = |needed: u32| CaptureErrorKind::BlockTooShort {
                block_type,
                length,
                needed: needed + 12,
            };
            let Format::PcapNg {
                big_endian: order,
                interfaces,
                last_ts,
            } = &mut self.format
            else {
                return Ok(None);
            };
            // (interface id, timestamp units, caplen, orig_len, data start within body, room)
            let packet = match block_type {
                PCAPNG_SHB => {
                    if body.len() < 16 {
                        return Err(too_short(16));
                    }
                    let major = u16_at(body, 4, big_endian);
                    let minor = u16_at(body, 6, big_endian);
                    if major != 1 {
                        return Err(CaptureErrorKind::UnsupportedVersion {
                            format: "pcapng",
                            major,
                            minor,
                        });
                    }
                    *order = big_endian;
                    interfaces.clear();
                    None
                }
                PCAPNG_IDB => {
                    if body.len() < 8 {
                        return Err(too_short(8));
                    }
                    let mut interface = Interface {
                        link_type: u32::from(u16_at(body, 0, big_endian)),
                        snaplen: u32_at(body, 4, big_endian),
                        resolution: Resolution::Pow10(6),
                        offset_secs: 0,
                    };
                    read_interface_options(&body[8..], big_endian, &mut interface);
                    interfaces.push(interface);
                    None
                }
                PCAPNG_EPB => {
                    if body.len() < 20 {
                        return Err(too_short(20));
                    }
                    let units = u64::from(u32_at(body, 4, big_endian)) << 32
                        | u64::from(u32_at(body, 8, big_endian));
                    Some((
                        u32_at(body, 0, big_endian),
                        Some(units),
                        u32_at(body, 12, big_endian),
                        u32_at(body, 16, big_endian),
                        20,
                    ))
                }
                PCAPNG_PB => {
                    if body.len() < 20 {
                        return Err(too_short(20));
                    }
                    let units = u64::from(u32_at(body, 4, big_endian)) << 32
                        | u64::from(u32_at(body, 8, big_endian));
                    let interface_id = u32::from(u16_at(body, 0, big_endian));
                    Some((
                        interface_id,
                        Some(units),
                        u32_at(body, 12, big_endian),
                        u32_at(body, 16, big_endian),
                        20,
                    ))
                }
                PCAPNG_SPB => {
                    if body.len() < 4 {
                        return Err(too_short(4));
                    }
                    let orig_len = u32_at(body, 0, big_endian);
                    // No captured length: the packet is what the snaplen and the block allow.
                    let snaplen = interfaces.first().map_or(0, |i| i.snaplen);
                    let mut caplen = orig_len.min(body.len() as u32 - 4);
                    if snaplen != 0 {
                        caplen = caplen.min(snaplen);
                    }
                    Some((0, None, caplen, orig_len, 4))
                }
                _ => None,
            };
            let Some((interface_id, units, caplen, orig_len, data_at)) = packet else {
                self.input.start += length as usize;
                continue;
            };
            let Some(interface) = interfaces.get(interface_id as usize) else {
                let interfaces = interfaces.len();
                return Err(CaptureErrorKind::UnknownInterface {
                    interface_id,
                    interfaces,
                });
            };
            if caplen > MAX_CAPLEN {
                return Err(CaptureErrorKind::RecordTooLong {
                    length: caplen,
                    limit: MAX_CAPLEN,
                });
            }
            let room = (body.len() - data_at) as u32;
            if caplen > room {
                return Err(CaptureErrorKind::PacketBeyondBlock { caplen, room });
            }
            // A simple packet block has no timestamp: it keeps the previous packet's.
            let ts = units.map_or(*last_ts, |u| interface.timestamp(u));
            *last_ts = ts;
            let link_type = interface.link_type;
            let data_start = start + 8 + data_at;
            self.input.start += length as usize;
            return Ok(Some((
                ts,
                link_type,
                data_start..data_start + caplen as usize,
                orig_len,
            )));
        }
    }
}

/// One packet found: timestamp, link type, its bytes in the buffer, original length.
type Found = (Timestamp, u32, std::ops::Range<usize>, u32);
/// A packet, the end, or what is wrong with the record at the current offset.
type Step = Result<Option<Found>, CaptureErrorKind>;

fn io_error(e: io::Error) -> CaptureErrorKind {
    CaptureErrorKind::Io(e)
}

/// if_tsresol (9) and if_tsoffset (14) from an interface description's options.
fn read_interface_options(mut options: &[u8], big_endian: bool, interface: &mut Interface) {
    while options.len() >= 4 {
        let code = u16_at(options, 0, big_endian);
        let len = usize::from(u16_at(options, 2, big_endian));
        let Some(value) = options.get(4..4 + len) else {
            break;
        };
        match (code, len) {
            (0, _) => break,
            (9, 1) => {
                let v = value[0];
                interface.resolution = if v & 0x80 != 0 {
                    Resolution::Pow2(v & 0x7f)
                } else {
                    Resolution::Pow10(v)
                };
            }
            (14, 8) => {
                let hi = u64::from(u32_at(value, 0, big_endian));
                let lo = u64::from(u32_at(value, 4, big_endian));
                // Stored as one 64-bit integer in the section's byte order.
                let v = if big_endian {
                    hi << 32 | lo
                } else {
                    lo << 32 | hi
                };
                interface.offset_secs = v as i64;
            }
            _ => {}
        }
        let padded = 4 + len.div_ceil(4) * 4;
        options = options.get(padded..).unwrap_or(&[]);
    }
}

/// Writes a classic pcap file (nanosecond magic, snaplen [`WRITER_SNAPLEN`], little-endian).
/// The file's link type is the first packet's; packets of another link type are
/// skipped and counted.
///
/// Each packet (record header and data) goes to a
/// [`RecordWriter`](crate::output::sink::RecordWriter) whole, so the file never ends inside a
/// record, even when the disk fills up (see [`crate::output::sink`]).
pub struct PcapWriter {
    out: crate::output::sink::RecordWriter,
    link_type: Option<u32>,
    written: u64,
    skipped: u64,
}

impl PcapWriter {
    /// Creates (or truncates) a pcap file; `-` is standard output.
    pub fn create(path: &Path) -> io::Result<PcapWriter> {
        let out = crate::output::sink::RecordWriter::create(path)?;
        Ok(PcapWriter::to_records(out))
    }

    /// Writes to any byte sink (memory, a pipe).
    pub fn to_writer(w: Box<dyn Write + Send>) -> PcapWriter {
        PcapWriter::to_records(crate::output::sink::RecordWriter::from_writer(w))
    }

    /// Writes to a [`RecordWriter`](crate::output::sink::RecordWriter).
    pub fn to_records(out: crate::output::sink::RecordWriter) -> PcapWriter {
        PcapWriter {
            out,
            link_type: None,
            written: 0,
            skipped: 0,
        }
    }

    fn write_header(&mut self, link_type: u32) -> io::Result<()> {
        let mut h = [0u8; 24];
        h[0..4].copy_from_slice(&PCAP_MAGIC_NANOS.to_le_bytes());
        h[4..6].copy_from_slice(&2u16.to_le_bytes());
        h[6..8].copy_from_slice(&4u16.to_le_bytes());
        h[16..20].copy_from_slice(&WRITER_SNAPLEN.to_le_bytes());
        h[20..24].copy_from_slice(&link_type.to_le_bytes());
        self.link_type = Some(link_type);
        self.out.push(&h)
    }

    /// Appends one packet (cut to the snaplen if longer). A packet whose link type differs
    /// from the first packet's is not written: it is counted in [`PcapWriter::skipped`].
    pub fn write_packet(
        &mut self,
        ts: Timestamp,
        link_type: u32,
        data: &[u8],
        orig_len: u32,
    ) -> io::Result<()> {
        match self.link_type {
            None => self.write_header(link_type)?,
            Some(lt) if lt != link_type => {
                self.skipped += 1;
                return Ok(());
            }
            Some(_) => {}
        }
        let data = &data[..data.len().min(WRITER_SNAPLEN as usize)];
        let caplen = data.len() as u32;
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&(ts.secs().min(u64::from(u32::MAX)) as u32).to_le_bytes());
        h[4..8].copy_from_slice(&ts.subsec_nanos().to_le_bytes());
        h[8..12].copy_from_slice(&caplen.to_le_bytes());
        h[12..16].copy_from_slice(&orig_len.max(caplen).to_le_bytes());
        self.out.push_parts(&[&h, data])?;
        self.written += 1;
        Ok(())
    }

    /// Packets written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Packets not written because their link type differs from the file's.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// The file's link type: the first packet's, `None` before any packet.
    pub fn link_type(&self) -> Option<u32> {
        self.link_type
    }

    /// Writes the header if no packet came (link type Ethernet) and flushes.
    pub fn finish(mut self) -> io::Result<()> {
        if self.link_type.is_none() {
            self.write_header(linktype::ETHERNET)?;
        }
        self.out.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// A reader that hands out at most `chunk` bytes a call, like a pipe.
    struct Trickle {
        data: Vec<u8>,
        pos: usize,
        chunk: usize,
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.chunk).min(self.data.len() - self.pos);
            buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    fn reader(bytes: Vec<u8>) -> Result<CaptureReader, CaptureError> {
        CaptureReader::from_reader("test.pcap", Box::new(Cursor::new(bytes)))
    }

    /// All packets as owned values, and the error that ended the file, if any.
    type Owned = (Timestamp, u32, Vec<u8>, u32);
    fn read_all(mut r: CaptureReader) -> (Vec<Owned>, Option<CaptureError>) {
        let mut out = Vec::new();
        loop {
            match r.next_packet() {
                Ok(Some(p)) => out.push((p.ts, p.link_type, p.data.to_vec(), p.orig_len)),
                Ok(None) => return (out, None),
                Err(e) => return (out, Some(e)),
            }
        }
    }

    /// Every record through [`CaptureReader::read_block`], as owned packets.
    fn read_blocks(mut r: CaptureReader, max: usize) -> (Vec<Owned>, Option<CaptureError>, usize) {
        let mut out = Vec::new();
        let mut block = Block::default();
        let mut blocks = 0;
        loop {
            match r.read_block(&mut block, max) {
                Ok(()) if block.records.is_empty() => return (out, None, blocks),
                Ok(()) => {
                    blocks += 1;
                    for (i, rec) in block.records.iter().enumerate() {
                        out.push((rec.ts, rec.link_type, block.frame(i).to_vec(), rec.orig_len));
                    }
                }
                Err(e) => return (out, Some(e), blocks),
            }
        }
    }

    #[test]
    fn blocks_carry_the_same_records_as_packet_by_packet_reading() {
        // 5,000 records of 1,000 bytes: several buffers, records straddling their ends,
        // and damage at the end (a record header cut short).
        let frames: Vec<Vec<u8>> = (0..5000u32).map(|i| vec![(i % 251) as u8; 1000]).collect();
        let records: Vec<(u32, u32, &[u8], u32)> = frames
            .iter()
            .enumerate()
            .map(|(i, f)| (i as u32, 7, f.as_slice(), 1000))
            .collect();
        let mut file = pcap_file(0xa1b2_c3d4, false, 1, &records);
        file.extend_from_slice(&[1, 2, 3]);
        let open = || {
            CaptureReader::from_reader("t", Box::new(std::io::Cursor::new(file.clone()))).unwrap()
        };
        let (want, want_err) = read_all(open());
        for max in [1, 7, 4096] {
            let (got, err, blocks) = read_blocks(open(), max);
            assert_eq!(got.len(), 5000);
            assert!(got == want, "max {max}");
            assert!(blocks >= 5, "max {max}: {blocks} blocks");
            let (a, b) = (err.unwrap(), want_err.as_ref().unwrap());
            assert_eq!((a.offset, a.to_string()), (b.offset, b.to_string()));
        }
    }

    fn write_pcap(packets: &[(Timestamp, u32, Vec<u8>, u32)]) -> (Vec<u8>, u64) {
        let out = Shared::default();
        let mut w = PcapWriter::to_writer(Box::new(out.clone()));
        for (ts, lt, data, orig) in packets {
            w.write_packet(*ts, *lt, data, *orig).unwrap();
        }
        let skipped = w.skipped();
        w.finish().unwrap();
        let bytes = out.0.lock().unwrap().clone();
        (bytes, skipped)
    }

    /// A classic pcap file by hand: 24-byte header, 16-byte record headers.
    fn pcap_file(
        magic: u32,
        big_endian: bool,
        link_type: u32,
        records: &[(u32, u32, &[u8], u32)],
    ) -> Vec<u8> {
        let u32b = |v: u32| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let u16b = |v: u16| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut f = Vec::new();
        f.extend_from_slice(&u32b(magic));
        f.extend_from_slice(&u16b(2));
        f.extend_from_slice(&u16b(4));
        f.extend_from_slice(&[0; 8]); // thiszone, sigfigs
        f.extend_from_slice(&u32b(65535));
        f.extend_from_slice(&u32b(link_type));
        for (secs, frac, data, orig) in records {
            f.extend_from_slice(&u32b(*secs));
            f.extend_from_slice(&u32b(*frac));
            f.extend_from_slice(&u32b(data.len() as u32));
            f.extend_from_slice(&u32b(*orig));
            f.extend_from_slice(data);
        }
        f
    }

    #[test]
    fn writer_reader_round_trip() {
        let packets = vec![
            (Timestamp(1_700_000_000_000_000_001), 1, vec![0xaa; 60], 60),
            (
                Timestamp(1_700_000_000_999_999_999),
                1,
                vec![0xbb; 1514],
                9000,
            ),
            (
                Timestamp(1_700_000_001_000_000_000),
                101,
                vec![0x45; 20],
                20,
            ), // other link type
            (Timestamp(1_700_000_002_500_000_000), 1, vec![], 0),
        ];
        let (bytes, skipped) = write_pcap(&packets);
        assert_eq!(skipped, 1);
        assert_eq!(&bytes[..4], &[0x4d, 0x3c, 0xb2, 0xa1]); // nanosecond magic, little-endian
        assert_eq!(
            u32::from_le_bytes(bytes[16..20].try_into().unwrap()),
            262_144
        );
        let r = reader(bytes.clone()).unwrap();
        let (got, err) = read_all(r);
        assert!(err.is_none());
        let expected: Vec<_> = packets.iter().filter(|p| p.1 == 1).cloned().collect();
        assert_eq!(got, expected);
        let mut r = reader(bytes.clone()).unwrap();
        while r.next_packet().unwrap().is_some() {}
        assert_eq!(r.bytes_read(), bytes.len() as u64);
        assert_eq!(r.file_len(), None);
    }

    #[test]
    fn writer_without_packets_writes_a_valid_ethernet_header() {
        let (bytes, _) = write_pcap(&[]);
        assert_eq!(bytes.len(), 24);
        assert_eq!(
            u32::from_le_bytes(bytes[20..24].try_into().unwrap()),
            linktype::ETHERNET
        );
        let mut r = reader(bytes).unwrap();
        assert!(r.next_packet().unwrap().is_none());
    }

    #[test]
    fn writer_to_a_file_and_open() {
        let dir = std::env::temp_dir().join(format!("vpcgate-capture-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out.pcap");
        let mut w = PcapWriter::create(&path).unwrap();
        w.write_packet(Timestamp(5_000_000_123), 113, &[1, 2, 3], 3)
            .unwrap();
        assert_eq!((w.link_type(), w.written()), (Some(113), 1));
        w.finish().unwrap();
        let mut r = CaptureReader::open(&path).unwrap();
        assert_eq!(r.file_len(), Some(24 + 16 + 3));
        let p = r.next_packet().unwrap().unwrap();
        assert_eq!(
            (p.ts, p.link_type, p.data, p.orig_len),
            (Timestamp(5_000_000_123), 113, &[1u8, 2, 3][..], 3)
        );
        std::fs::remove_dir_all(&dir).unwrap();
        let e = CaptureReader::open(&dir.join("missing.pcap"))
            .err()
            .unwrap();
        assert!(matches!(e.kind, CaptureErrorKind::Open(_)));
        assert!(e.to_string().contains("missing.pcap: cannot open"), "{e}");
    }

    #[test]
    fn microsecond_and_nanosecond_magics() {
        let data: &[u8] = &[1, 2, 3, 4];
        let us = pcap_file(0xa1b2_c3d4, false, 1, &[(10, 500_000, data, 4)]);
        let (got, _) = read_all(reader(us).unwrap());
        assert_eq!(got[0].0, Timestamp(10_500_000_000));
        let ns = pcap_file(0xa1b2_3c4d, false, 1, &[(10, 500_000, data, 4)]);
        let (got, _) = read_all(reader(ns).unwrap());
        assert_eq!(got[0].0, Timestamp(10_000_500_000));
    }

    #[test]
    fn big_endian_pcap() {
        let f = pcap_file(
            0xa1b2_c3d4,
            true,
            101,
            &[(1, 2, &[9; 7], 70), (3, 4, &[8; 5], 5)],
        );
        assert_eq!(&f[..4], &[0xa1, 0xb2, 0xc3, 0xd4]);
        let (got, err) = read_all(reader(f).unwrap());
        assert!(err.is_none());
        assert_eq!(
            got,
            vec![
                (Timestamp(1_000_002_000), 101, vec![9; 7], 70),
                (Timestamp(3_000_004_000), 101, vec![8; 5], 5)
            ]
        );
        let f = pcap_file(0xa1b2_3c4d, true, 1, &[(1, 2, &[9; 7], 7)]);
        assert_eq!(
            read_all(reader(f).unwrap()).0[0].0,
            Timestamp(1_000_000_002)
        );
    }

    #[test]
    fn fcs_bits_of_the_link_type_field_are_ignored() {
        // LINKTYPE_ETHERNET with "FCS present, 4 bytes" in the upper bits.
        let f = pcap_file(
            0xa1b2_c3d4,
            false,
            1 | 0x2000_0000 | 0x0400_0000,
            &[(1, 0, &[0; 4], 4)],
        );
        assert_eq!(read_all(reader(f).unwrap()).0[0].1, 1);
    }

    #[test]
    fn kuznetzov_modified_pcap() {
        let mut f = pcap_file(0xa1b2_cd34, false, 1, &[]);
        f.extend_from_slice(&7u32.to_le_bytes());
        f.extend_from_slice(&0u32.to_le_bytes());
        f.extend_from_slice(&3u32.to_le_bytes());
        f.extend_from_slice(&3u32.to_le_bytes());
        f.extend_from_slice(&[0; 8]); // ifindex, protocol, packet type, pad
        f.extend_from_slice(&[1, 2, 3]);
        let (got, err) = read_all(reader(f).unwrap());
        assert!(err.is_none());
        assert_eq!(got, vec![(Timestamp(7_000_000_000), 1, vec![1, 2, 3], 3)]);
    }

    #[test]
    fn truncated_file_returns_every_earlier_packet_then_the_offset() {
        let packets: Vec<_> = (0..3u64)
            .map(|i| (Timestamp(i * 1_000_000_000), 1, vec![i as u8; 100], 100))
            .collect();
        let (bytes, _) = write_pcap(&packets);
        let third = 24 + 2 * (16 + 100);
        for cut in [third + 10, third + 16 + 50] {
            let (got, err) = read_all(reader(bytes[..cut].to_vec()).unwrap());
            assert_eq!(got, packets[..2].to_vec());
            let err = err.expect("an error");
            assert_eq!(err.offset, third as u64);
            assert!(matches!(err.kind, CaptureErrorKind::TruncatedRecord { .. }));
            let msg = err.to_string();
            assert!(
                msg.starts_with(&format!(
                    "test.pcap: at byte offset {third}: the file ends inside a packet record"
                )),
                "{msg}"
            );
        }
        // A clean cut between records is a clean end.
        let (got, err) = read_all(reader(bytes[..third].to_vec()).unwrap());
        assert_eq!((got.len(), err.is_none()), (2, true));
    }

    #[test]
    fn giant_caplen_is_damage_not_an_allocation() {
        let mut f = pcap_file(0xa1b2_c3d4, false, 1, &[(1, 0, &[7; 10], 10)]);
        f.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
        f.extend_from_slice(&u32::MAX.to_le_bytes());
        f.extend_from_slice(&u32::MAX.to_le_bytes());
        f.extend_from_slice(&[0; 64]);
        let mut r = CaptureReader::from_reader("capture.pcap", Box::new(Cursor::new(f))).unwrap();
        assert_eq!(r.next_packet().unwrap().unwrap().data, &[7; 10]);
        let e = r.next_packet().unwrap_err();
        assert_eq!(
            e.to_string(),
            "capture.pcap: at byte offset 50: record length 4294967295 exceeds the limit of 262144 bytes (damaged capture?)"
        );
        assert_eq!(r.input.buf.len(), BUFFER_SIZE);
        assert!(r.next_packet().unwrap().is_none());
        // Just above the limit, too.
        let big = vec![0u8; MAX_CAPLEN as usize + 1];
        let f = pcap_file(0xa1b2_c3d4, false, 1, &[(1, 0, &big, 1)]);
        let (got, err) = read_all(reader(f).unwrap());
        assert!(got.is_empty());
        assert!(matches!(
            err.unwrap().kind,
            CaptureErrorKind::RecordTooLong {
                length: 262_145,
                limit: 262_144
            }
        ));
    }

    #[test]
    fn not_a_capture() {
        let e = reader(b"Licence text, not a capture\n".to_vec())
            .err()
            .unwrap();
        assert_eq!(e.offset, 0);
        let msg = e.to_string();
        assert!(msg.starts_with(
            "test.pcap: at byte offset 0: not a pcap or pcapng capture: it starts with 4c 69 63 65"
        ));
        assert!(
            msg.contains("a1 b2 c3 d4")
                && msg.contains("a1 b2 3c 4d")
                && msg.contains("0a 0d 0d 0a"),
            "{msg}"
        );
        let e = reader(Vec::new()).err().unwrap();
        assert!(matches!(e.kind, CaptureErrorKind::Empty));
        let e = reader(vec![0xd4, 0xc3, 0xb2]).err().unwrap();
        assert!(
            matches!(
                e.kind,
                CaptureErrorKind::TruncatedFileHeader {
                    needed: 4,
                    present: 3
                }
            ),
            "{e}"
        );
        let e = reader(vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0]).err().unwrap();
        assert!(
            matches!(
                e.kind,
                CaptureErrorKind::TruncatedFileHeader {
                    needed: 24,
                    present: 6
                }
            ),
            "{e}"
        );
        let mut f = pcap_file(0xa1b2_c3d4, false, 1, &[]);
        f[4] = 1;
        assert!(matches!(
            reader(f).err().unwrap().kind,
            CaptureErrorKind::UnsupportedVersion { major: 1, .. }
        ));
    }

    #[test]
    fn streams_through_a_small_pipe_beyond_the_buffer() {
        // ~3 MiB of packets of varied sizes, handed out 4093 bytes at a time.
        let packets: Vec<_> = (0..3000u64)
            .map(|i| {
                (
                    Timestamp(i),
                    1,
                    vec![(i % 251) as u8; (i as usize * 7919) % 2000],
                    2000,
                )
            })
            .collect();
        let (bytes, _) = write_pcap(&packets);
        assert!(bytes.len() > 2 * BUFFER_SIZE);
        let total = bytes.len() as u64;
        let pipe = Trickle {
            data: bytes,
            pos: 0,
            chunk: 4093,
        };
        let r = CaptureReader::from_reader("pipe", Box::new(pipe)).unwrap();
        let (got, err) = read_all(r);
        assert!(err.is_none());
        assert_eq!(got, packets);
        let mut r = CaptureReader::from_reader(
            "pipe",
            Box::new(Trickle {
                data: write_pcap(&packets).0,
                pos: 0,
                chunk: 1,
            }),
        )
        .unwrap();
        let mut n = 0;
        while r.next_packet().unwrap().is_some() {
            n += 1;
        }
        assert_eq!(
            (n, r.bytes_read(), r.input.buf.len()),
            (3000, total, BUFFER_SIZE)
        );
    }

    // ---- pcapng, built by hand (draft-ietf-opsawg-pcapng) ----

    struct Ng {
        be: bool,
        bytes: Vec<u8>,
    }

    impl Ng {
        fn u16(&self, v: u16) -> [u8; 2] {
            if self.be {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        }
        fn u32(&self, v: u32) -> [u8; 4] {
            if self.be {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        }
        /// type, total length, body padded to 4, total length.
        fn block(&mut self, block_type: u32, body: &[u8]) -> usize {
            let at = self.bytes.len();
            let padded = body.len().div_ceil(4) * 4;
            let len = (12 + padded) as u32;
            let (t, l) = (self.u32(block_type), self.u32(len));
            self.bytes.extend_from_slice(&t);
            self.bytes.extend_from_slice(&l);
            self.bytes.extend_from_slice(body);
            self.bytes.resize(at + 8 + padded, 0);
            self.bytes.extend_from_slice(&l);
            at
        }
        fn shb(&mut self) -> usize {
            let mut b = self.u32(0x1a2b_3c4d).to_vec();
            b.extend_from_slice(&self.u16(1));
            b.extend_from_slice(&self.u16(0));
            b.extend_from_slice(&[0xff; 8]); // section length unknown
            self.block(0x0a0d_0d0a, &b)
        }
        /// An IDB with optional if_tsresol and if_tsoffset.
        fn idb(
            &mut self,
            link_type: u16,
            snaplen: u32,
            tsresol: Option<u8>,
            tsoffset: Option<i64>,
        ) -> usize {
            let mut b = self.u16(link_type).to_vec();
            b.extend_from_slice(&[0, 0]);
            b.extend_from_slice(&self.u32(snaplen));
            // An option we do not read first (if_name "eth0").
            b.extend_from_slice(&self.u16(2));
            b.extend_from_slice(&self.u16(4));
            b.extend_from_slice(b"eth0");
            if let Some(r) = tsresol {
                b.extend_from_slice(&self.u16(9));
                b.extend_from_slice(&self.u16(1));
                b.extend_from_slice(&[r, 0, 0, 0]);
            }
            if let Some(o) = tsoffset {
                b.extend_from_slice(&self.u16(14));
                b.extend_from_slice(&self.u16(8));
                let o = o as u64;
                if self.be {
                    b.extend_from_slice(&o.to_be_bytes());
                } else {
                    b.extend_from_slice(&o.to_le_bytes());
                }
            }
            b.extend_from_slice(&[0, 0, 0, 0]); // opt_endofopt
            self.block(1, &b)
        }
        fn epb(&mut self, interface: u32, units: u64, data: &[u8], orig_len: u32) -> usize {
            let mut b = self.u32(interface).to_vec();
            b.extend_from_slice(&self.u32((units >> 32) as u32));
            b.extend_from_slice(&self.u32(units as u32));
            b.extend_from_slice(&self.u32(data.len() as u32));
            b.extend_from_slice(&self.u32(orig_len));
            b.extend_from_slice(data);
            b.resize(b.len().div_ceil(4) * 4, 0);
            // An epb_flags option.
            b.extend_from_slice(&self.u16(2));
            b.extend_from_slice(&self.u16(4));
            b.extend_from_slice(&self.u32(1));
            b.extend_from_slice(&[0, 0, 0, 0]);
            self.block(6, &b)
        }
    }

    #[test]
    fn pcapng_interfaces_resolutions_and_block_kinds() {
        for be in [false, true] {
            let mut ng = Ng {
                be,
                bytes: Vec::new(),
            };
            ng.shb();
            ng.idb(1, 65535, None, None); // Ethernet, microseconds
            ng.idb(101, 0, Some(9), None); // raw IP, nanoseconds
            ng.idb(113, 0, Some(0x80 | 10), Some(100)); // SLL, 2^-10 s, +100 s
            ng.epb(0, 1_700_000_000_123_456, &[1; 14], 60);
            ng.block(0x0bad_cafe, &[0xee; 10]); // unknown block: skipped
            ng.block(5, &[0; 8]); // interface statistics: skipped
            ng.epb(1, 1_700_000_000_123_456_789, &[0x45; 21], 21);
            ng.epb(2, 1024 * 3 + 512, &[2; 16], 16);
            // Simple packet blocks (interface 0, no timestamp, no captured length): the
            // packet is what the block holds, up to the original length.
            let mut spb = ng.u32(100).to_vec(); // cut by the capture: 16 bytes held
            spb.extend_from_slice(&[3; 16]);
            ng.block(3, &spb);
            let mut spb = ng.u32(10).to_vec(); // whole: 10 bytes, padded to 12
            spb.extend_from_slice(&[5; 10]);
            ng.block(3, &spb);
            // Obsolete packet block: interface 1 (u16), drops (u16), timestamp, lengths.
            let mut pb = ng.u16(1).to_vec();
            pb.extend_from_slice(&ng.u16(0));
            pb.extend_from_slice(&ng.u32(0));
            pb.extend_from_slice(&ng.u32(2_000_000_000));
            pb.extend_from_slice(&ng.u32(3));
            pb.extend_from_slice(&ng.u32(3));
            pb.extend_from_slice(&[4, 4, 4]);
            ng.block(2, &pb);
            // A new section: interfaces start over.
            ng.shb();
            ng.idb(228, 0, None, None);
            ng.epb(0, 5_000_000, &[0x45; 20], 20);
            let (got, err) = read_all(reader(ng.bytes).unwrap());
            assert!(err.is_none(), "{err:?}");
            assert_eq!(
                got,
                vec![
                    (Timestamp(1_700_000_000_123_456_000), 1, vec![1; 14], 60),
                    (
                        Timestamp(1_700_000_000_123_456_789),
                        101,
                        vec![0x45; 21],
                        21
                    ),
                    (Timestamp(103_500_000_000), 113, vec![2; 16], 16),
                    (Timestamp(103_500_000_000), 1, vec![3; 16], 100),
                    (Timestamp(103_500_000_000), 1, vec![5; 10], 10),
                    (Timestamp(2_000_000_000), 101, vec![4; 3], 3),
                    (Timestamp(5_000_000_000), 228, vec![0x45; 20], 20),
                ],
                "big endian: {be}"
            );
        }
    }

    #[test]
    fn pcapng_sections_of_both_byte_orders() {
        let mut le = Ng {
            be: false,
            bytes: Vec::new(),
        };
        le.shb();
        le.idb(1, 0, None, None);
        le.epb(0, 1, &[1], 1);
        let mut be = Ng {
            be: true,
            bytes: Vec::new(),
        };
        be.shb();
        be.idb(101, 0, None, None);
        be.epb(0, 2, &[2], 1);
        let mut bytes = le.bytes;
        bytes.extend_from_slice(&be.bytes);
        let (got, err) = read_all(reader(bytes).unwrap());
        assert!(err.is_none());
        assert_eq!(
            got,
            vec![
                (Timestamp(1_000), 1, vec![1], 1),
                (Timestamp(2_000), 101, vec![2], 1)
            ]
        );
    }

    #[test]
    fn pcapng_damage() {
        let base = |be| {
            let mut ng = Ng {
                be,
                bytes: Vec::new(),
            };
            ng.shb();
            ng.idb(1, 0, None, None);
            ng.epb(0, 1, &[1; 10], 10);
            ng
        };
        // A packet for an interface of the previous section.
        let mut ng = base(false);
        ng.shb();
        let at = ng.epb(0, 1, &[1], 1);
        let (got, err) = read_all(reader(ng.bytes).unwrap());
        let err = err.unwrap();
        assert_eq!((got.len(), err.offset), (1, at as u64));
        assert!(matches!(
            err.kind,
            CaptureErrorKind::UnknownInterface {
                interface_id: 0,
                interfaces: 0
            }
        ));
        // Absurd block lengths.
        for length in [u32::MAX - 3, 8, 30, MAX_BLOCK_LEN + 4] {
            let mut ng = base(true);
            let at = ng.bytes.len();
            ng.bytes.extend_from_slice(&6u32.to_be_bytes());
            ng.bytes.extend_from_slice(&length.to_be_bytes());
            ng.bytes.extend_from_slice(&[0; 64]);
            let mut r = reader(ng.bytes).unwrap();
            assert!(r.next_packet().unwrap().is_some());
            let err = r.next_packet().unwrap_err();
            assert_eq!(err.offset, at as u64);
            assert!(
                matches!(
                    err.kind,
                    CaptureErrorKind::BadBlockLength { block_type: 6, .. }
                ),
                "{err}"
            );
            assert_eq!(r.input.buf.len(), BUFFER_SIZE);
        }
        // Trailer mismatch.
        let mut ng = base(false);
        let n = ng.bytes.len();
        ng.bytes[n - 1] = 0x7f;
        let (got, err) = read_all(reader(ng.bytes).unwrap());
        assert!(got.is_empty());
        assert!(matches!(
            err.unwrap().kind,
            CaptureErrorKind::BlockTrailerMismatch { .. }
        ));
        // Captured length beyond the block (8 data + 12 option bytes of room), and beyond the limit.
        for (caplen, limit) in [(200u32, false), (MAX_CAPLEN + 1, true)] {
            let mut ng = base(false);
            let at = ng.epb(0, 1, &[1; 8], 8);
            ng.bytes[at + 20..at + 24].copy_from_slice(&caplen.to_le_bytes());
            let (got, err) = read_all(reader(ng.bytes).unwrap());
            let err = err.unwrap();
            assert_eq!((got.len(), err.offset), (1, at as u64));
            if limit {
                assert!(
                    matches!(err.kind, CaptureErrorKind::RecordTooLong { .. }),
                    "{err}"
                );
            } else {
                assert!(
                    matches!(
                        err.kind,
                        CaptureErrorKind::PacketBeyondBlock {
                            caplen: 200,
                            room: 20
                        }
                    ),
                    "{err}"
                );
            }
        }
        // A file cut inside the last block.
        let mut ng = base(false);
        let at = ng.epb(0, 1, &[1; 100], 100);
        let cut = ng.bytes.len() - 10;
        let (got, err) = read_all(reader(ng.bytes[..cut].to_vec()).unwrap());
        let err = err.unwrap();
        assert_eq!((got.len(), err.offset), (1, at as u64));
        assert!(
            err.to_string()
                .contains("the file ends inside a pcapng enhanced packet block"),
            "{err}"
        );
        // A bad byte-order magic in the first section header.
        let mut ng = base(false);
        ng.bytes[8..12].copy_from_slice(&[1, 2, 3, 4]);
        let err = reader(ng.bytes).err().unwrap();
        assert!(matches!(
            err.kind,
            CaptureErrorKind::BadByteOrderMagic { magic: 0x0102_0304 }
        ));
    }

    #[test]
    fn pcapng_timestamp_resolutions() {
        let i = |resolution, offset_secs| Interface {
            link_type: 1,
            snaplen: 0,
            resolution,
            offset_secs,
        };
        assert_eq!(
            i(Resolution::Pow10(6), 0).timestamp(1_500_000),
            Timestamp(1_500_000_000)
        );
        assert_eq!(i(Resolution::Pow10(9), 0).timestamp(7), Timestamp(7));
        assert_eq!(i(Resolution::Pow10(12), 0).timestamp(7_000), Timestamp(7));
        assert_eq!(
            i(Resolution::Pow10(127), 0).timestamp(u64::MAX),
            Timestamp(0)
        );
        assert_eq!(
            i(Resolution::Pow10(0), 0).timestamp(3),
            Timestamp(3_000_000_000)
        );
        assert_eq!(
            i(Resolution::Pow2(1), 0).timestamp(3),
            Timestamp(1_500_000_000)
        );
        assert_eq!(
            i(Resolution::Pow2(127), 0).timestamp(u64::MAX),
            Timestamp(0)
        );
        assert_eq!(
            i(Resolution::Pow10(6), -10).timestamp(1_000_000),
            Timestamp(0)
        );
        assert_eq!(
            i(Resolution::Pow10(0), 0).timestamp(u64::MAX),
            Timestamp(u64::MAX)
        );
    }
}
