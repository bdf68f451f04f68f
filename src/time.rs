//! Time in the core: nanoseconds since the Unix epoch, given as an argument. Capture
//! files, the live wall clock and `--rules-at` times are converted to it at the edges;
//! the engine, connection tracking and flow logs never read a clock.
#![deny(clippy::disallowed_methods, clippy::disallowed_types)]

/// Nanoseconds in a second: the one unit of time inside vpcgate is the nanosecond.
pub const NANOS_PER_SEC: u64 = 1_000_000_000;

/// Capture time in nanoseconds since the Unix epoch: the one time type of the core.
/// Capture files, the live wall clock and `--rules-at` times are converted to it at
/// the edges; the engine, connection tracking and flow logs take it (or its `u64`)
/// as an argument and never read a clock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub u64);

impl Timestamp {
    pub fn from_secs_nanos(secs: u64, nanos: u32) -> Timestamp {
        Timestamp(
            secs.saturating_mul(NANOS_PER_SEC)
                .saturating_add(nanos as u64),
        )
    }
    /// Whole seconds (floor).
    pub fn secs(self) -> u64 {
        self.0 / NANOS_PER_SEC
    }
    pub fn subsec_nanos(self) -> u32 {
        (self.0 % NANOS_PER_SEC) as u32
    }
}

/// When a ruleset of `--rules-at` takes effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum When {
    /// At this capture time.
    At(Timestamp),
    /// This long (nanoseconds) after the capture time of the first packet of the run
    /// (the first record of the first capture that has one), resolved when that
    /// packet is read: the same input gives the same output.
    AfterFirstPacket(u64),
}

impl When {
    /// The capture time this means, given the first packet's.
    pub fn resolve(self, first: Timestamp) -> Timestamp {
        match self {
            When::At(t) => t,
            When::AfterFirstPacket(ns) => Timestamp(first.0.saturating_add(ns)),
        }
    }
}

impl From<Timestamp> for When {
    fn from(t: Timestamp) -> When {
        When::At(t)
    }
}
