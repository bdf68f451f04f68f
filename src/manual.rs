//! The manual: every place where vpcgate had to decide how AWS behaves, in prose, and
//! the ruleset format.
//!
//! The text lives once, in the "Manual of emulation decisions" and "The ruleset
//! format" sections of README.md; `vpcgate manual` prints them and this module exposes
//! them. It does not page or colour anything: [`for_terminal`] only marks headings and
//! code for a pager that shows ANSI bold (`less -R`).
//!
//! ```
//! let m = vpcgate::manual::text();
//! assert!(m.starts_with(vpcgate::manual::HEADING));
//! assert!(m.contains(vpcgate::manual::FORMAT_HEADING));
//! ```
#![deny(clippy::disallowed_methods, clippy::disallowed_types)]

/// The README, as built into the binary.
const README: &str = include_str!("../README.md");

/// The heading that starts the manual in README.md.
pub const HEADING: &str = "## Manual of emulation decisions";

/// The heading of the ruleset format in README.md, printed after the manual.
pub const FORMAT_HEADING: &str = "## The ruleset format";

/// README.md from `heading` up to the next second-level heading.
fn section(heading: &str) -> Option<&'static str> {
    let start = README.find(&format!("\n{heading}\n"))? + 1;
    let rest = &README[start..];
    let end = rest[heading.len()..]
        .find("\n## ")
        .map_or(rest.len(), |i| i + heading.len() + 1);
    Some(&rest[..end])
}

/// The manual: the emulation decisions, then the ruleset format.
pub fn text() -> String {
    let Some(manual) = section(HEADING) else {
        return "The manual is missing from this build (README.md has no manual section).\n".into();
    };
    let mut t = manual.to_string();
    if let Some(format) = section(FORMAT_HEADING) {
        if !t.ends_with("\n\n") {
            t.push('\n');
        }
        t.push_str(format);
    }
    t
}

/// `text` for a terminal: headings in bold without their `#` marks, the fence lines
/// of code blocks dropped and the code indented, `**bold**` in bold.
pub fn for_terminal(text: &str) -> String {
    const BOLD: &str = "\x1b[1m";
    const PLAIN: &str = "\x1b[0m";
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    let mut code = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            code = !code;
            continue;
        }
        if code {
            out.push_str("    ");
            out.push_str(line);
        } else if let Some(h) = line.strip_prefix("## ") {
            out.push_str(&format!("{BOLD}{}{PLAIN}", h.to_uppercase()));
        } else if let Some(h) = line.strip_prefix("### ").or(line.strip_prefix("#### ")) {
            out.push_str(&format!("{BOLD}{h}{PLAIN}"));
        } else {
            let mut parts = line.split("**");
            out.push_str(parts.next().unwrap_or(""));
            for (i, p) in parts.enumerate() {
                out.push_str(if i % 2 == 0 { BOLD } else { PLAIN });
                out.push_str(p);
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn manual_is_built_in() {
        let t = super::text();
        assert!(t.starts_with(super::HEADING));
        assert!(
            t.len() > 1000,
            "the manual section of README.md is too short to be the manual"
        );
        assert!(t.contains(super::FORMAT_HEADING), "the ruleset format");
        assert!(t.contains("[[network_acls]]") || t.contains("network_acls"));
    }

    #[test]
    fn the_terminal_form_drops_markdown_marks() {
        let t = super::for_terminal("## Title\n\nSome **bold** text\n```sh\nls\n```\n");
        assert_eq!(
            t,
            "\x1b[1mTITLE\x1b[0m\n\nSome \x1b[1mbold\x1b[0m text\n    ls\n"
        );
    }
}
