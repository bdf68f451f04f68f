//! Analyses of a ruleset (lint: no packets) and of the engine's decisions (diff,
//! check, explain), never re-implementing a check.
//!
//! - [`lint`]: the mistakes people make in security groups and network ACLs
//!   (shadowed NACL entries, replies dropped at ephemeral ports, unused groups,
//!   world-open administrative ports, missing IPv6 twins, AWS quotas), each with the
//!   rule it concerns and a suggested fix; rendered as text, JSON or SARIF 2.1.0.
//! - [`diff`]: the packets whose verdict differs between two runs of the engine
//!   (`vpcgate diff`, the counterfactual replays), grouped by flow and rule.
//! - [`check`]: one hypothetical connection and its replies through the engine, for
//!   every port of the client's ephemeral range (`vpcgate check`).
//! - [`explain`]: a captured packet's path and the tracking state it met (`replay
//!   --explain`).
#![deny(clippy::disallowed_methods, clippy::disallowed_types)]

pub mod check;
pub mod diff;
pub mod explain;
pub mod lint;
