//! Analysis of a ruleset: statically ([`lint`]: no packets, only the
//! [`crate::model::Vpc`]) and through the engine replay uses ([`check`]: one
//! hypothetical connection and its replies; [`explain`]: a captured packet's path and
//! the tracking state it met), never re-implementing a check.
//!
//! - [`lint`]: the mistakes people make in security groups and network ACLs
//!   (shadowed NACL entries, replies dropped at ephemeral ports, unused groups,
//!   world-open administrative ports, missing IPv6 twins, AWS quotas), each with the
//!   rule it concerns and a suggested fix; rendered as text, JSON or SARIF 2.1.0.
#![deny(clippy::disallowed_methods, clippy::disallowed_types)]

pub mod check;
pub mod explain;
pub mod lint;
