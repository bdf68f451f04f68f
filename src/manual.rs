//! The manual of emulation decisions: every place where vpcgate had to decide how
//! AWS behaves (EMULATION.md), in prose.
//!
//! The text lives once, in the "Manual of emulation decisions" section of
//! README.md; `vpcgate manual` prints it and this module exposes it.
#![deny(clippy::disallowed_methods, clippy::disallowed_types)]

/// The README, as built into the binary.
const README: &str = include_str!("../README.md");

/// The heading that starts the manual in README.md.
pub const HEADING: &str = "## Manual of emulation decisions";

/// The manual: README.md from [`HEADING`] up to the next second-level heading.
pub fn text() -> &'static str {
    let Some(start) = README.find(HEADING) else {
        return "The manual is missing from this build (README.md has no manual section).\n";
    };
    let rest = &README[start..];
    let end = rest[HEADING.len()..]
        .find("\n## ")
        .map_or(rest.len(), |i| i + HEADING.len() + 1);
    &rest[..end]
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
    }
}
