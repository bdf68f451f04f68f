//! What a run checks and resolves before it writes anything, for the binary: the
//! times `--rules-at` accepts, that every capture can be read, and that no output is
//! an input or another output. It reads file metadata and capture headers; it creates
//! nothing (creating outputs is [`crate::output::sink::preflight`]).
//!
//! ```
//! use vpcgate::wire::packet::Timestamp;
//! use vpcgate::pipeline::When;
//! use vpcgate::preflight::parse_when;
//!
//! let at = When::At(Timestamp::from_secs_nanos(1_732_435_500, 0));
//! assert_eq!(parse_when("2024-11-24T08:05:00Z"), Ok(at));
//! assert_eq!(parse_when("1732435500"), Ok(at));
//! assert_eq!(parse_when("+1.5m"), Ok(When::AfterFirstPacket(90_000_000_000)));
//! ```

use crate::pipeline::When;
use crate::sys::FileId;
use crate::wire::packet::Timestamp;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Unix seconds, fractions allowed (`1700000060.25`).
pub fn parse_unix_time(s: &str) -> Option<Timestamp> {
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    if secs.is_empty()
        || !secs.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let secs: u64 = secs.parse().ok()?;
    let mut nanos = 0u32;
    for (i, b) in frac.bytes().take(9).enumerate() {
        nanos += (b - b'0') as u32 * 10u32.pow(8 - i as u32);
    }
    Some(Timestamp::from_secs_nanos(secs, nanos))
}

/// A `--rules-at` time: Unix seconds, an RFC 3339 time, or `+OFFSET` from the first
/// packet (seconds, or with a unit: `s`, `m`, `h`; fractions allowed).
pub fn parse_when(s: &str) -> Result<When, String> {
    if let Some(offset) = s.strip_prefix('+') {
        let (num, unit) = match offset.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
            Some((i, _)) => offset.split_at(i),
            None => (offset, "s"),
        };
        let per = match unit {
            "s" => 1u128,
            "m" => 60,
            "h" => 3600,
            _ => return Err(format!("{unit:?} is not a unit of an offset (s, m or h)")),
        };
        let t = parse_unix_time(num).ok_or_else(|| format!("{num:?} is not a number of {unit}"))?;
        let ns = u64::try_from(u128::from(t.0) * per)
            .map_err(|_| format!("{s:?} is too far from the first packet"))?;
        return Ok(When::AfterFirstPacket(ns));
    }
    if let Some(t) = parse_unix_time(s) {
        return Ok(When::At(t));
    }
    if s.len() >= 10 && s.as_bytes()[4] == b'-' {
        return parse_rfc3339(s).map(When::At);
    }
    Err(format!("{s:?} is not a capture time"))
}

/// An RFC 3339 time (`2024-11-24T08:05:00Z`, `2024-11-24T09:05:00.5+01:00`; `t`, `z`
/// and a space for `T` allowed) as a capture time.
pub fn parse_rfc3339(s: &str) -> Result<Timestamp, String> {
    let bad = || format!("{s:?} is not an RFC 3339 time like 2024-11-24T08:05:00Z");
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Result<i64, String> {
        let part = s.get(r).ok_or_else(bad)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().map_err(|_| bad())
        } else {
            Err(bad())
        }
    };
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return Err(bad());
    }
    if b[13] != b':' || b[16] != b':' {
        return Err(bad());
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &s[19..];
    let mut nanos = 0u32;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        for (i, c) in frac.bytes().take(digits.min(9)).enumerate() {
            nanos += u32::from(c - b'0') * 10u32.pow(8 - i as u32);
        }
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && rest.as_bytes()[3] == b':' => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return Err(bad()),
            };
            let h = num(s.len() - 5..s.len() - 3)?;
            let m = num(s.len() - 2..s.len())?;
            if h > 23 || m > 59 {
                return Err(bad());
            }
            sign * (h * 3600 + m * 60)
        }
        _ => {
            return Err(format!(
                "{s:?} has no time zone: end it with Z or an offset like +01:00"
            ))
        }
    };
    let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days_in_month = match month {
        2 if leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month
        || hour > 23
        || min > 59
        || sec > 60
    {
        return Err(format!("{s:?} is not a valid date and time"));
    }
    // Days since 1970-01-01 (H. Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + min * 60 + sec - offset;
    let secs = u64::try_from(secs).map_err(|_| format!("{s:?} is before 1970"))?;
    Ok(Timestamp::from_secs_nanos(secs, nanos))
}

/// Checks every capture before anything is written: each names an existing file that
/// can be opened and starts like a pcap or pcapng (a pipe or a FIFO is taken as it
/// is).
pub fn check_captures(captures: &[PathBuf]) -> Result<(), String> {
    for p in captures {
        if p.as_os_str() == "-" {
            continue;
        }
        let name = p.display();
        let m = std::fs::metadata(p).map_err(|e| format!("cannot read capture {name}: {e}"))?;
        if m.is_dir() {
            return Err(format!(
                "cannot read capture {name}: it is a directory (name the capture files in it)"
            ));
        }
        if !m.is_file() {
            // A FIFO or a device: opening it could block, and reading would consume it.
            continue;
        }
        crate::capture::CaptureReader::open(p).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Refuses an output that is the same file as an input (a capture, a ruleset file or a
/// file of a ruleset directory) or as another output: files are compared by device and
/// inode, outputs that do not exist yet by their directory and name.
pub fn check_distinct(
    captures: &[PathBuf],
    rules: &[PathBuf],
    rules_at: &[PathBuf],
    outputs: &[(&str, &PathBuf)],
) -> Result<(), String> {
    let inputs = input_files(captures, rules, rules_at);
    check_not_in_rule_dirs(rules, rules_at, outputs)?;
    check_outputs(&inputs, outputs)
}

/// Every input file by identity, with what it is in the user's words (`the capture
/// x.pcap`, `the ruleset r.toml of --rules-at`); the first name given wins.
fn input_files(
    captures: &[PathBuf],
    rules: &[PathBuf],
    rules_at: &[PathBuf],
) -> HashMap<FileId, String> {
    let mut inputs: HashMap<FileId, String> = HashMap::new();
    for c in captures {
        if c.as_os_str() == "-" {
            if let Some(id) = crate::sys::stdin_file_id() {
                inputs.entry(id).or_insert("standard input".into());
            }
        } else {
            add_input(&mut inputs, c, format!("the capture {}", c.display()));
        }
    }
    for r in rules {
        add_input(&mut inputs, r, format!("the ruleset {}", r.display()));
    }
    for r in rules_at {
        add_input(
            &mut inputs,
            r,
            format!("the ruleset {} of --rules-at", r.display()),
        );
    }
    inputs
}

/// Adds file `p`, or the files the loader reads in directory `p`, as `what`.
fn add_input(inputs: &mut HashMap<FileId, String>, p: &Path, what: String) {
    let Ok(m) = std::fs::metadata(p) else {
        return;
    };
    if m.is_file() {
        inputs.entry(FileId::of(&m)).or_insert(what);
    } else if m.is_dir() {
        // The files the loader reads there.
        for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
            let path = e.path();
            let ext = path.extension().and_then(|x| x.to_str()).unwrap_or("");
            if !ext.eq_ignore_ascii_case("toml") && !ext.eq_ignore_ascii_case("json") {
                continue;
            }
            if let Ok(m) = std::fs::metadata(&path) {
                if m.is_file() {
                    inputs
                        .entry(FileId::of(&m))
                        .or_insert(format!("{what} ({})", e.path().display()));
                }
            }
        }
    }
}

/// A ruleset directory is read whole: a *.toml or *.json output written into it would
/// be read as part of the ruleset next time.
fn check_not_in_rule_dirs(
    rules: &[PathBuf],
    rules_at: &[PathBuf],
    outputs: &[(&str, &PathBuf)],
) -> Result<(), String> {
    let rule_dirs: Vec<PathBuf> = rules
        .iter()
        .chain(rules_at)
        .filter(|p| p.is_dir())
        .filter_map(|p| p.canonicalize().ok())
        .collect();
    for &(flag, p) in outputs {
        let parent = match p.parent() {
            Some(d) if d.as_os_str().is_empty() => Path::new("."),
            Some(d) => d,
            None => continue,
        };
        let read_by_loader = p
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("toml") || e.eq_ignore_ascii_case("json"));
        if read_by_loader && parent.canonicalize().is_ok_and(|d| rule_dirs.contains(&d)) {
            return Err(format!(
                "{flag} {}: that is in a ruleset directory, whose every *.toml and *.json file is read as part of the ruleset. Name a file elsewhere",
                p.display()
            ));
        }
    }
    Ok(())
}

/// No output is an input or another output: existing outputs by identity, new ones
/// by canonical directory and name.
fn check_outputs(
    inputs: &HashMap<FileId, String>,
    outputs: &[(&str, &PathBuf)],
) -> Result<(), String> {
    let mut seen_ids: HashMap<FileId, (&str, &PathBuf)> = HashMap::new();
    let mut seen_new: HashMap<PathBuf, (&str, &PathBuf)> = HashMap::new();
    for &(flag, p) in outputs {
        if p.as_os_str() == "-" {
            continue;
        }
        let same = match std::fs::metadata(p) {
            Ok(m) if m.is_file() => {
                let id = FileId::of(&m);
                if let Some(what) = inputs.get(&id) {
                    return Err(format!(
                        "{flag} {}: that is {what}; writing it would destroy the input. Name another file",
                        p.display()
                    ));
                }
                seen_ids.insert(id, (flag, p))
            }
            // A device or FIFO (/dev/null, /dev/stdout) may well take several outputs.
            Ok(_) => None,
            Err(_) => match new_file_key(p) {
                Some(key) => seen_new.insert(key, (flag, p)),
                None => None,
            },
        };
        if let Some((other, q)) = same {
            return Err(format!(
                "{flag} {} and {other} {} are the same file; give each output its own",
                p.display(),
                q.display()
            ));
        }
    }
    Ok(())
}

/// A file that does not exist yet, as its canonical directory and name.
fn new_file_key(p: &Path) -> Option<PathBuf> {
    let (parent, file) = (p.parent()?, p.file_name()?);
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    Some(parent.canonicalize().ok()?.join(file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_at_time() {
        assert_eq!(
            parse_unix_time("1700000060"),
            Some(Timestamp::from_secs_nanos(1_700_000_060, 0))
        );
        assert_eq!(
            parse_unix_time("1700000060.25"),
            Some(Timestamp::from_secs_nanos(1_700_000_060, 250_000_000))
        );
        assert_eq!(parse_unix_time("x"), None);
        assert_eq!(parse_unix_time("-5"), None);
    }

    #[test]
    fn rules_at_rfc3339_and_offsets() {
        let at = |s, n| When::At(Timestamp::from_secs_nanos(s, n));
        assert_eq!(parse_when("1732435500"), Ok(at(1_732_435_500, 0)));
        assert_eq!(parse_when("2024-11-24T08:05:00Z"), Ok(at(1_732_435_500, 0)));
        assert_eq!(parse_when("2024-11-24t08:05:00z"), Ok(at(1_732_435_500, 0)));
        assert_eq!(
            parse_when("2024-11-24T09:05:00+01:00"),
            Ok(at(1_732_435_500, 0))
        );
        assert_eq!(
            parse_when("2024-11-24T03:05:00.25-05:00"),
            Ok(at(1_732_435_500, 250_000_000))
        );
        assert_eq!(parse_when("1970-01-01T00:00:00Z"), Ok(at(0, 0)));
        assert_eq!(parse_when("2000-02-29T00:00:00Z"), Ok(at(951_782_400, 0)));
        assert!(parse_when("2023-02-29T00:00:00Z").is_err());
        assert!(parse_when("2024-11-24T08:05:00")
            .unwrap_err()
            .contains("time zone"));
        assert!(parse_when("1969-12-31T23:59:59Z")
            .unwrap_err()
            .contains("1970"));
        let after = |ns| When::AfterFirstPacket(ns);
        assert_eq!(parse_when("+90"), Ok(after(90_000_000_000)));
        assert_eq!(parse_when("+90s"), Ok(after(90_000_000_000)));
        assert_eq!(parse_when("+1.5m"), Ok(after(90_000_000_000)));
        assert_eq!(parse_when("+2h"), Ok(after(7_200_000_000_000)));
        assert_eq!(parse_when("+0.25"), Ok(after(250_000_000)));
        assert!(parse_when("+90d").is_err());
        assert!(parse_when("+").is_err());
        assert!(parse_when("soon").is_err());
    }
}
