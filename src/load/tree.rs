//! A document as a tree of values that remember where they were written, shared by the
//! TOML and the JSON readers, and the small toolkit both use to read it: typed getters
//! that record an error (file, line, column, field, what is valid) and carry on, so that
//! one pass reports every problem of a file.
//!
//! TOML comes from `toml::de::DeTable`, which keeps byte spans. JSON goes through
//! `serde_json` first (its syntax errors are precise and well worded), then through the
//! small parser below, which only adds the byte offset of every value.

use crate::model::{Origin, RulesetError};
use std::sync::Arc;

/// A value and the byte offset where it starts.
#[derive(Debug)]
pub(crate) struct Node {
    pub pos: usize,
    pub val: Val,
}

#[derive(Debug)]
pub(crate) enum Val {
    Null,
    Bool(bool),
    Int(i64),
    Float,
    Str(String),
    Arr(Vec<Node>),
    Obj(Vec<Entry>),
    /// A TOML date or time: never valid in a ruleset.
    Datetime,
}

/// One key of an object and the offset of the key.
#[derive(Debug)]
pub(crate) struct Entry {
    pub key: String,
    pub key_pos: usize,
    pub node: Node,
}

/// Which format a document is in: the names of types in messages follow it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Syntax {
    Toml,
    Json,
}

impl Val {
    pub fn type_name(&self, syntax: Syntax) -> &'static str {
        match (self, syntax) {
            (Val::Null, _) => "null",
            (Val::Bool(_), _) => "a boolean",
            (Val::Int(_), Syntax::Toml) => "an integer",
            (Val::Int(_) | Val::Float, Syntax::Json) => "a number",
            (Val::Float, Syntax::Toml) => "a float",
            (Val::Str(_), _) => "a string",
            (Val::Arr(_), _) => "an array",
            (Val::Obj(_), Syntax::Toml) => "a table",
            (Val::Obj(_), Syntax::Json) => "an object",
            (Val::Datetime, _) => "a date-time",
        }
    }
}

/// One file being read: its name as the user gave it, its line starts, and the errors
/// found so far.
pub(crate) struct Ctx<'t> {
    pub file: Arc<str>,
    pub syntax: Syntax,
    text: &'t str,
    line_starts: Vec<usize>,
    pub errors: Vec<RulesetError>,
    /// What cannot change a verdict but must be heard (printed as `warning: ...`).
    pub warnings: Vec<RulesetError>,
}

impl<'t> Ctx<'t> {
    pub fn new(file: &str, text: &'t str, syntax: Syntax) -> Ctx<'t> {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Ctx {
            file: file.into(),
            syntax,
            text,
            line_starts,
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, pos: usize) -> (u32, u32) {
        let pos = pos.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= pos) - 1;
        let start = self.line_starts[line];
        let col = self
            .text
            .get(start..pos)
            .map_or(pos - start, |s| s.chars().count());
        (line as u32 + 1, col as u32 + 1)
    }

    pub fn origin(&self, pos: usize) -> Origin {
        let (line, column) = self.line_col(pos);
        Origin {
            file: self.file.clone(),
            line,
            column,
        }
    }

    pub fn error(&mut self, pos: usize, field: impl Into<String>, message: impl Into<String>) {
        let e = RulesetError::new(&self.origin(pos), field, message);
        self.errors.push(e);
    }

    pub fn warn(&mut self, pos: usize, field: impl Into<String>, message: impl Into<String>) {
        let e = RulesetError::new(&self.origin(pos), field, message);
        self.warnings.push(e);
    }

    fn type_error(&mut self, node: &Node, field: &str, expected: &str) {
        let found = node.val.type_name(self.syntax);
        self.error(
            node.pos,
            field,
            format!("expected {expected}, found {found}"),
        );
    }

    fn table_word(&self) -> &'static str {
        match self.syntax {
            Syntax::Toml => "a table",
            Syntax::Json => "an object",
        }
    }

    // ---- typed reads of a node ------------------------------------------------------

    pub fn as_str<'n>(&mut self, node: &'n Node, field: &str) -> Option<&'n str> {
        match &node.val {
            Val::Str(s) => Some(s),
            _ => {
                self.type_error(node, field, "a string");
                None
            }
        }
    }

    pub fn as_int(&mut self, node: &Node, field: &str) -> Option<i64> {
        match &node.val {
            Val::Int(i) => Some(*i),
            _ => {
                self.type_error(node, field, "an integer");
                None
            }
        }
    }

    /// An integer within `range`; the message says what is valid.
    pub fn as_int_in(
        &mut self,
        node: &Node,
        field: &str,
        what: &str,
        lo: i64,
        hi: i64,
    ) -> Option<i64> {
        let i = self.as_int(node, field)?;
        if i < lo || i > hi {
            self.error(
                node.pos,
                field,
                format!("{what} {i} is outside {lo}..={hi}"),
            );
            return None;
        }
        Some(i)
    }

    pub fn as_bool(&mut self, node: &Node, field: &str) -> Option<bool> {
        match &node.val {
            Val::Bool(b) => Some(*b),
            _ => {
                self.type_error(node, field, "true or false");
                None
            }
        }
    }

    pub fn as_arr<'n>(&mut self, node: &'n Node, field: &str) -> &'n [Node] {
        match &node.val {
            Val::Arr(a) => a,
            _ => {
                self.type_error(node, field, "an array");
                &[]
            }
        }
    }

    /// A string or an array of strings (each with its node).
    pub fn as_strs<'n>(&mut self, node: &'n Node, field: &str) -> Vec<(&'n str, &'n Node)> {
        match &node.val {
            Val::Str(s) => vec![(s.as_str(), node)],
            Val::Arr(a) => {
                let mut out = Vec::new();
                for (i, n) in a.iter().enumerate() {
                    if let Some(s) = self.as_str(n, &format!("{field}[{i}]")) {
                        out.push((s, n));
                    }
                }
                out
            }
            _ => {
                self.type_error(node, field, "a string or an array of strings");
                Vec::new()
            }
        }
    }

    pub fn as_obj<'n>(&mut self, node: &'n Node, path: impl Into<String>) -> Option<Obj<'n>> {
        let path = path.into();
        match &node.val {
            Val::Obj(entries) => Some(Obj {
                pos: node.pos,
                entries,
                path,
            }),
            _ => {
                let want = self.table_word();
                self.type_error(node, &path, want);
                None
            }
        }
    }
}

/// An object (TOML table or JSON object) and the path that names it in messages,
/// e.g. `security_groups[0].ingress[2]` or `SecurityGroups[1] (sg-0abc)`.
pub(crate) struct Obj<'n> {
    pub pos: usize,
    pub entries: &'n [Entry],
    pub path: String,
}

impl<'n> Obj<'n> {
    pub fn field(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    pub fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries.iter().find(|e| e.key == key).map(|e| &e.node)
    }

    /// A present, non-null value (JSON `null` counts as absent).
    pub fn opt(&self, key: &str) -> Option<&'n Node> {
        self.get(key).filter(|n| !matches!(n.val, Val::Null))
    }

    pub fn req(&self, ctx: &mut Ctx, key: &str) -> Option<&'n Node> {
        let n = self.opt(key);
        if n.is_none() {
            ctx.error(
                self.pos,
                self.field(key),
                format!("missing required field `{key}`"),
            );
        }
        n
    }

    pub fn opt_str(&self, ctx: &mut Ctx, key: &str) -> Option<(&'n str, &'n Node)> {
        let n = self.opt(key)?;
        ctx.as_str(n, &self.field(key)).map(|s| (s, n))
    }

    pub fn req_str(&self, ctx: &mut Ctx, key: &str) -> Option<(&'n str, &'n Node)> {
        let n = self.req(ctx, key)?;
        ctx.as_str(n, &self.field(key)).map(|s| (s, n))
    }

    /// A string value, or `""` when absent or wrong (the error is recorded).
    pub fn str_or_empty(&self, ctx: &mut Ctx, key: &str) -> String {
        self.opt_str(ctx, key)
            .map(|(s, _)| s.to_string())
            .unwrap_or_default()
    }

    pub fn opt_bool(&self, ctx: &mut Ctx, key: &str) -> Option<bool> {
        let n = self.opt(key)?;
        ctx.as_bool(n, &self.field(key))
    }

    /// The elements of an array field; none when absent (or not an array: recorded).
    pub fn arr(&self, ctx: &mut Ctx, key: &str) -> &'n [Node] {
        match self.opt(key) {
            Some(n) => ctx.as_arr(n, &self.field(key)),
            None => &[],
        }
    }

    pub fn obj(&self, ctx: &mut Ctx, key: &str) -> Option<Obj<'n>> {
        let n = self.opt(key)?;
        ctx.as_obj(n, self.field(key))
    }

    /// Hand-written files: every key must be one of `valid`.
    pub fn deny_unknown(&self, ctx: &mut Ctx, valid: &[&str]) {
        for e in self.entries {
            if !valid.contains(&e.key.as_str()) {
                let list: Vec<String> = valid.iter().map(|v| format!("`{v}`")).collect();
                ctx.error(
                    e.key_pos,
                    self.field(&e.key),
                    format!(
                        "unknown field `{}`; valid fields here: {}",
                        e.key,
                        list.join(", ")
                    ),
                );
            }
        }
    }
}

// ---- TOML ---------------------------------------------------------------------------

/// Parses a TOML document into a [`Node`] tree. A syntax error is returned with its
/// byte offset.
pub(crate) fn parse_toml(text: &str) -> Result<Node, (usize, String)> {
    use ::toml::de::{DeTable, DeValue};
    use ::toml::Spanned;

    fn value(v: &Spanned<DeValue<'_>>) -> Result<Node, (usize, String)> {
        let pos = v.span().start;
        let val = match v.get_ref() {
            DeValue::String(s) => Val::Str(s.to_string()),
            DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => Val::Int(n),
                Err(_) => return Err((pos, format!("integer {i} does not fit in 64 bits"))),
            },
            DeValue::Float(_) => Val::Float,
            DeValue::Boolean(b) => Val::Bool(*b),
            DeValue::Datetime(_) => Val::Datetime,
            DeValue::Array(a) => Val::Arr(a.iter().map(value).collect::<Result<_, _>>()?),
            DeValue::Table(t) => Val::Obj(table(t)?),
        };
        Ok(Node { pos, val })
    }

    fn table(t: &DeTable<'_>) -> Result<Vec<Entry>, (usize, String)> {
        let mut entries: Vec<Entry> = Vec::new();
        for (k, v) in t.iter() {
            entries.push(Entry {
                key: k.get_ref().to_string(),
                key_pos: k.span().start,
                node: value(v)?,
            });
        }
        // Keep the order of the file (the map sorts by key), so errors come out in it.
        entries.sort_by_key(|e| e.key_pos);
        Ok(entries)
    }

    match DeTable::parse(text) {
        Ok(doc) => Ok(Node {
            pos: 0,
            val: Val::Obj(table(doc.get_ref())?),
        }),
        Err(e) => Err((
            e.span().map_or(0, |s| s.start),
            e.message().trim_end().to_string(),
        )),
    }
}

// ---- JSON ---------------------------------------------------------------------------

/// Parses a JSON document into a [`Node`] tree. Syntax errors come from `serde_json`
/// (well worded), placed at their byte offset (so that columns count characters from 1)
/// and explained where a common mistake is behind them: a trailing comma, two outputs
/// appended to one file.
pub(crate) fn parse_json(text: &str) -> Result<Node, JsonError> {
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
        let msg = e.to_string();
        // serde_json appends " at line L column C"; we print the position in front.
        let msg = match msg.rfind(" at line ") {
            Some(i) => msg[..i].to_string(),
            None => msg,
        };
        // serde_json's column counts bytes from 1 (0: before the line's first byte).
        let line_start = text
            .match_indices('\n')
            .nth(e.line().saturating_sub(2))
            .map_or(0, |(i, _)| i + 1);
        let line_start = if e.line() <= 1 { 0 } else { line_start };
        let mut pos = (line_start + e.column().saturating_sub(1)).min(text.len());
        while !text.is_char_boundary(pos) {
            pos -= 1;
        }
        let before = text[..pos].trim_end();
        let here = text[pos..].chars().next();
        let msg = if before.ends_with(',') && matches!(here, Some('}' | ']')) {
            format!(
                "{msg}: a trailing comma; JSON allows no `,` after the last element (remove the one before this `{}`)",
                here.unwrap_or('}')
            )
        } else if msg.starts_with("trailing characters") && matches!(here, Some('{' | '[')) {
            format!(
                "{msg}: a second JSON document follows the first (two outputs appended with `>>`?); \
                 save each command's output to its own file"
            )
        } else {
            msg
        };
        return Err(JsonError::At(pos, msg));
    }
    let mut p = JsonParser {
        s: text.as_bytes(),
        i: 0,
    };
    p.ws();
    let v = p.value(0).map_err(|(pos, m)| JsonError::At(pos, m))?;
    Ok(v)
}

/// A JSON syntax error at a byte offset.
pub(crate) enum JsonError {
    At(usize, String),
}

/// Text of a file that is not UTF-8: UTF-16 with a byte-order mark (what Windows
/// PowerShell's `>` writes) is decoded; `Err` says what the bytes look like.
pub(crate) fn decode(bytes: Vec<u8>) -> Result<String, String> {
    let utf16 = |be: bool, body: &[u8]| -> Result<String, String> {
        let units = body.chunks(2).map(|c| {
            let pair = [c[0], *c.get(1).unwrap_or(&0)];
            if be {
                u16::from_be_bytes(pair)
            } else {
                u16::from_le_bytes(pair)
            }
        });
        char::decode_utf16(units)
            .collect::<Result<String, _>>()
            .map_err(|e| format!("UTF-16 text with an invalid character ({e})"))
    };
    match bytes.as_slice() {
        [0xFF, 0xFE, body @ ..] => return utf16(false, body),
        [0xFE, 0xFF, body @ ..] => return utf16(true, body),
        _ => {}
    }
    let zeros = |b: &[u8], odd: usize| {
        b.len() >= 2 && b.iter().skip(odd).step_by(2).take(64).all(|&x| x == 0)
    };
    if zeros(&bytes, 0) || zeros(&bytes, 1) {
        return Err(
            "UTF-16 text without a byte-order mark (every other byte is 0); \
                    save it as UTF-8 (PowerShell: `| Out-File -Encoding utf8`)"
                .to_string(),
        );
    }
    match String::from_utf8(bytes) {
        Ok(t) => Ok(t),
        Err(e) => Err(format!(
            "not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        )),
    }
}

/// A small JSON reader that keeps offsets. The text was already validated by
/// `serde_json`, so errors here are unexpected, but still reported, never a panic.
struct JsonParser<'a> {
    s: &'a [u8],
    i: usize,
}

type PResult<T> = Result<T, (usize, String)>;

impl JsonParser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn fail<T>(&self, what: &str) -> PResult<T> {
        Err((self.i, format!("unexpected input: expected {what}")))
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> PResult<Node> {
        if depth > 256 {
            return self.fail("less nesting");
        }
        let pos = self.i;
        let val = match self.s.get(self.i) {
            Some(b'{') => {
                self.i += 1;
                let mut entries = Vec::new();
                self.ws();
                if !self.eat(b'}') {
                    loop {
                        self.ws();
                        let key_pos = self.i;
                        let key = self.string()?;
                        self.ws();
                        if !self.eat(b':') {
                            return self.fail("`:`");
                        }
                        self.ws();
                        let node = self.value(depth + 1)?;
                        entries.push(Entry { key, key_pos, node });
                        self.ws();
                        if self.eat(b',') {
                            continue;
                        }
                        if self.eat(b'}') {
                            break;
                        }
                        return self.fail("`,` or `}`");
                    }
                }
                Val::Obj(entries)
            }
            Some(b'[') => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if !self.eat(b']') {
                    loop {
                        self.ws();
                        items.push(self.value(depth + 1)?);
                        self.ws();
                        if self.eat(b',') {
                            continue;
                        }
                        if self.eat(b']') {
                            break;
                        }
                        return self.fail("`,` or `]`");
                    }
                }
                Val::Arr(items)
            }
            Some(b'"') => Val::Str(self.string()?),
            Some(b't') if self.s[self.i..].starts_with(b"true") => {
                self.i += 4;
                Val::Bool(true)
            }
            Some(b'f') if self.s[self.i..].starts_with(b"false") => {
                self.i += 5;
                Val::Bool(false)
            }
            Some(b'n') if self.s[self.i..].starts_with(b"null") => {
                self.i += 4;
                Val::Null
            }
            Some(b'-' | b'0'..=b'9') => {
                let start = self.i;
                self.i += 1;
                let mut integer = true;
                while let Some(&c) = self.s.get(self.i) {
                    match c {
                        b'0'..=b'9' => {}
                        b'.' | b'e' | b'E' | b'+' | b'-' => integer = false,
                        _ => break,
                    }
                    self.i += 1;
                }
                let text = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
                match text.parse::<i64>() {
                    Ok(n) if integer => Val::Int(n),
                    _ => Val::Float,
                }
            }
            _ => return self.fail("a value"),
        };
        Ok(Node { pos, val })
    }

    fn string(&mut self) -> PResult<String> {
        if !self.eat(b'"') {
            return self.fail("a string");
        }
        let mut out = String::new();
        loop {
            let start = self.i;
            while let Some(&c) = self.s.get(self.i) {
                if c == b'"' || c == b'\\' {
                    break;
                }
                self.i += 1;
            }
            out.push_str(
                std::str::from_utf8(&self.s[start..self.i])
                    .map_err(|_| (start, "invalid UTF-8".to_string()))?,
            );
            match self.s.get(self.i) {
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.i += 1;
                    let c = self.s.get(self.i).copied();
                    self.i += 1;
                    match c {
                        Some(b'"') => out.push('"'),
                        Some(b'\\') => out.push('\\'),
                        Some(b'/') => out.push('/'),
                        Some(b'b') => out.push('\u{8}'),
                        Some(b'f') => out.push('\u{c}'),
                        Some(b'n') => out.push('\n'),
                        Some(b'r') => out.push('\r'),
                        Some(b't') => out.push('\t'),
                        Some(b'u') => {
                            let hi = self.hex4()?;
                            let ch = if (0xD800..0xDC00).contains(&hi)
                                && self.s[self.i..].starts_with(b"\\u")
                            {
                                self.i += 2;
                                let lo = self.hex4()?;
                                char::from_u32(
                                    0x10000
                                        + ((hi - 0xD800) << 10)
                                        + (lo.wrapping_sub(0xDC00) & 0x3FF),
                                )
                            } else {
                                char::from_u32(hi)
                            };
                            out.push(ch.unwrap_or('\u{FFFD}'));
                        }
                        _ => return self.fail("an escape"),
                    }
                }
                _ => return self.fail("`\"`"),
            }
        }
    }

    fn hex4(&mut self) -> PResult<u32> {
        let h = self
            .s
            .get(self.i..self.i + 4)
            .and_then(|h| std::str::from_utf8(h).ok());
        match h.and_then(|h| u32::from_str_radix(h, 16).ok()) {
            Some(v) => {
                self.i += 4;
                Ok(v)
            }
            None => self.fail("4 hex digits"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_offsets_and_line_columns() {
        let text = "{\n  \"a\": [1, {\"b\": \"x\\u00e9\"}],\n  \"c\": -1.5\n}";
        let n = parse_json(text).ok().unwrap();
        let ctx = Ctx::new("f.json", text, Syntax::Json);
        let Val::Obj(e) = &n.val else { panic!() };
        assert_eq!(e[0].key, "a");
        assert_eq!(ctx.line_col(e[0].key_pos), (2, 3));
        let Val::Arr(a) = &e[0].node.val else {
            panic!()
        };
        assert!(matches!(a[0].val, Val::Int(1)));
        assert_eq!(ctx.line_col(a[1].pos), (2, 12));
        let Val::Obj(b) = &a[1].val else { panic!() };
        assert!(matches!(&b[0].node.val, Val::Str(s) if s == "xé"));
        assert!(matches!(e[1].node.val, Val::Float));
    }

    #[test]
    fn json_syntax_error_has_position() {
        let text = "{\n  \"a\": [1,]\n}";
        match parse_json(text) {
            Err(JsonError::At(pos, message)) => {
                let ctx = Ctx::new("f.json", text, Syntax::Json);
                assert_eq!(ctx.line_col(pos).0, 2);
                assert!(!message.contains(" at line "), "{message}");
            }
            _ => panic!("expected a syntax error"),
        }
    }

    #[test]
    fn json_syntax_errors_say_what_they_are() {
        let err = |text: &str| match parse_json(text) {
            Err(JsonError::At(pos, m)) => {
                let (l, c) = Ctx::new("f.json", text, Syntax::Json).line_col(pos);
                format!("{l}:{c}: {m}")
            }
            Ok(_) => panic!("{text} parsed"),
        };
        let e = err("{\"a\": [1, 2,]}");
        assert!(
            e.starts_with("1:13: ") && e.contains("trailing comma"),
            "{e}"
        );
        let e = err("{\"a\": 1,\n}");
        assert!(
            e.starts_with("2:1: ") && e.contains("trailing comma"),
            "{e}"
        );
        // Two outputs appended with `>>`.
        let e = err("{\"Vpcs\": []}\n{\"Subnets\": []}\n");
        assert!(
            e.starts_with("2:1: ") && e.contains("a second JSON document follows"),
            "{e}"
        );
        // Columns count characters, from 1 (serde_json counts bytes).
        assert!(
            err("{\"é\": x}").starts_with("1:7: "),
            "{}",
            err("{\"é\": x}")
        );
        assert!(
            err("{\"a\":\n").starts_with("2:1: "),
            "{}",
            err("{\"a\":\n")
        );
    }

    #[test]
    fn utf16_with_a_bom_is_decoded() {
        let text = "{\"Vpcs\": []}";
        let mut le = vec![0xFF, 0xFE];
        let mut be = vec![0xFE, 0xFF];
        for u in text.encode_utf16() {
            le.extend(u.to_le_bytes());
            be.extend(u.to_be_bytes());
        }
        assert_eq!(decode(le.clone()).unwrap(), text);
        assert_eq!(decode(be).unwrap(), text);
        let e = decode(le[2..].to_vec()).unwrap_err();
        assert!(e.contains("UTF-16 text without a byte-order mark"), "{e}");
        assert!(decode(vec![b'{', 0xC3]).unwrap_err().contains("not UTF-8"));
    }

    #[test]
    fn toml_keeps_file_order_and_offsets() {
        let text = "b = 1\na = \"x\"\n[t]\nz = [1, 2]\n";
        let n = parse_toml(text).unwrap();
        let ctx = Ctx::new("f.toml", text, Syntax::Toml);
        let Val::Obj(e) = &n.val else { panic!() };
        assert_eq!(
            e.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(),
            ["b", "a", "t"]
        );
        assert_eq!(ctx.line_col(e[1].node.pos), (2, 5));
        let Val::Obj(t) = &e[2].node.val else {
            panic!()
        };
        assert_eq!(ctx.line_col(t[0].key_pos), (4, 1));
    }

    #[test]
    fn line_col_counts_characters() {
        let ctx = Ctx::new("f", "é = 1\nab", Syntax::Toml);
        assert_eq!(ctx.line_col(4), (1, 4)); // after "é =" (é is 2 bytes)
        assert_eq!(ctx.line_col(8), (2, 2));
    }
}
