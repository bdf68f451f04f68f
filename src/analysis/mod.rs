//! Static analysis of a loaded ruleset: no packets, only the [`crate::model::Vpc`].
//!
//! - [`lint`]: the mistakes people make in security groups and network ACLs
//!   (shadowed NACL entries, replies dropped at ephemeral ports, unused groups,
//!   world-open administrative ports, missing IPv6 twins, AWS quotas), each with the
//!   rule it concerns and a suggested fix; rendered as text, JSON or SARIF 2.1.0.
#![deny(clippy::disallowed_methods, clippy::disallowed_types)]

pub mod check;
pub mod explain;
pub mod lint;
