//! Where a ruleset object was written, and the errors that name it.

use super::*;

/// Where an object was written: file, 1-based line and column. `line == 0` means
/// unknown (an object that AWS or the project created implicitly).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origin {
    pub file: Arc<str>,
    pub line: u32,
    pub column: u32,
}

impl Origin {
    pub fn new(file: &str, line: u32, column: u32) -> Origin {
        Origin {
            file: file.into(),
            line,
            column,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.file.is_empty() {
            write!(f, "<implicit>")
        } else if self.line == 0 {
            write!(f, "{}", self.file)
        } else {
            write!(f, "{}:{}:{}", self.file, self.line, self.column)
        }
    }
}

/// A ruleset error for people: where, which field, what is wrong and what is valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RulesetError {
    pub origin: Origin,
    /// The field, as a path a person can find: `network_acls[2].inbound[0].rule_number`
    /// or `NetworkAcls[0].Entries[3].RuleNumber`.
    pub field: String,
    pub message: String,
}

impl RulesetError {
    pub fn new(origin: &Origin, field: impl Into<String>, message: impl Into<String>) -> Self {
        RulesetError {
            origin: origin.clone(),
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for RulesetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.origin, self.message)
        } else {
            write!(f, "{}: {}: {}", self.origin, self.field, self.message)
        }
    }
}

impl std::error::Error for RulesetError {}

/// All the errors found in one ruleset; loading reports every one, not just the first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RulesetErrors(pub Vec<RulesetError>);

impl fmt::Display for RulesetErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "error: {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for RulesetErrors {}

impl From<RulesetError> for RulesetErrors {
    fn from(e: RulesetError) -> Self {
        RulesetErrors(vec![e])
    }
}
