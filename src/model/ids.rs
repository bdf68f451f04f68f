//! Numbers that stand for ENIs. Two index spaces meet in the data path, and each has
//! its own type so that one is never read as the other:
//!
//! - [`EniIdx`]: an ENI's position in one validated [`super::Vpc`]'s
//!   `network_interfaces`, and so in one compiled policy's per-ENI tables. It means
//!   nothing under another ruleset.
//! - [`EniNum`]: an ENI's number for the whole run, its position in the sorted list of
//!   every ENI id of every ruleset the run uses. Flow-log records and tracked
//!   connections carry it, so that they survive a ruleset change (`--rules-at`, live
//!   reload).
//!
//! An ENI of one ruleset that the run does not number has no `EniNum` (`None`), never a
//! sentinel value.

use std::fmt;

/// An ENI's position in one ruleset (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(transparent)]
pub struct EniIdx(pub u32);

impl EniIdx {
    /// As an index into per-ENI tables.
    #[inline]
    pub fn get(self) -> usize {
        self.0 as usize
    }
}

/// An ENI's number for the whole run (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(transparent)]
pub struct EniNum(pub u32);

impl EniNum {
    /// As an index into per-run tables (the sorted ENI id list).
    #[inline]
    pub fn get(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for EniIdx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ENI index {}", self.0)
    }
}

impl fmt::Display for EniNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ENI #{}", self.0)
    }
}
