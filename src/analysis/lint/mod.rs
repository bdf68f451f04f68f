//! `vpcgate lint`: a ruleset's mistakes, each with the rule it concerns, where that
//! rule is written, why it is a mistake and a suggested fix.
//!
//! The checks (codes are stable; scripts and SARIF consumers key on them):
//!
//! | code | severity | what |
//! |---|---|---|
//! | `nacl-reply-dropped` | error (load balancer, NAT gateway, Lambda peer), warning (instances, the internet) | an SG- and NACL-allowed service whose replies a NACL drops at the ephemeral ports the client uses |
//! | `nacl-shadowed` | warning (earlier entries decide the other way), note (same action: redundant) | a NACL entry that earlier entries of the same direction always decide before it |
//! | `nacl-partly-shadowed` | note | an allow entry for a few ports (a span of at most 1024) of which earlier deny entries take some |
//! | `world-open-admin-port` | warning (SG ingress, NACL entries naming the ports), note (NACL `-1` entries) | an administrative or database port open to `0.0.0.0/0` or `::/0` |
//! | `sg-unused` | note | a security group no ENI uses (the group named `default` aside: AWS keeps it) |
//! | `sg-reference-unused` | warning | a rule naming a group no ENI uses: it matches nothing |
//! | `ipv6-twin-missing` | note | an IPv4 rule (world or a subnet with IPv6) without an IPv6 rule for the same traffic, where the group's ENIs or the NACL's subnets have IPv6 |
//! | `quota-exceeded` | error | more rules or groups than an AWS quota allows (defaults, or `--quota`) |
//!
//! The ephemeral ports a client uses are AWS's table (aws-semantics §3.6): Elastic
//! Load Balancing, NAT gateways and Lambda 1024-65535; an instance is assumed to run
//! Linux (32768-60999); a client on the internet may be Linux (32768-60999) or Windows
//! (49152-65535).

use crate::model::{
    NetworkAcl, NetworkAclEntry, NetworkInterface, Origin, PortSpec, Protocol, RuleAction,
    SecurityGroup, SecurityGroupRule, SgPeer, Vpc, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP,
};
use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

mod output;
mod ports;
mod quotas;
pub(crate) mod replies;
mod rules;
mod shadowed;
#[cfg(test)]
mod tests;
mod twins;
mod unused;
mod world_open;

pub use output::{json, sarif, text};
use ports::*;
use quotas::*;
use replies::*;
use rules::*;
use shadowed::*;
use twins::*;
use unused::*;
use world_open::*;

/// How bad a finding is; SARIF's `level` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Note,
    Warning,
    Error,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Note => "note",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }

    /// `error`, `warning` or `note`.
    pub fn parse(s: &str) -> Option<Severity> {
        match s {
            "error" => Some(Severity::Error),
            "warning" => Some(Severity::Warning),
            "note" => Some(Severity::Note),
            _ => None,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One mistake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// A stable code: `nacl-reply-dropped`, `nacl-shadowed`, ... (see [`RULES`]).
    pub code: &'static str,
    pub severity: Severity,
    /// The object: `acl-0abc outbound rule 120`, `sg-0abc ingress rule 2`, `eni-0abc`.
    pub resource: String,
    /// The rule as a person reads it, when the finding is about one rule.
    pub rule: Option<String>,
    pub message: String,
    pub fix: String,
    /// Where the rule (or the object) is written.
    pub origin: Origin,
}

/// Every code with a one-line description (SARIF `rules[]`).
pub const RULES: &[(&str, Severity, &str)] = &[
    (
        "nacl-reply-dropped",
        Severity::Error,
        "An allowed service whose replies a network ACL drops at the client's ephemeral ports",
    ),
    (
        "nacl-shadowed",
        Severity::Warning,
        "A network ACL entry that earlier entries of the same direction always decide first",
    ),
    (
        "nacl-partly-shadowed",
        Severity::Note,
        "An allow entry of which earlier deny entries take some ports",
    ),
    (
        "world-open-admin-port",
        Severity::Warning,
        "An administrative or database port open to 0.0.0.0/0 or ::/0",
    ),
    (
        "sg-unused",
        Severity::Note,
        "A security group attached to no network interface",
    ),
    (
        "sg-reference-unused",
        Severity::Warning,
        "A security-group rule naming a group that no network interface uses",
    ),
    (
        "ipv6-twin-missing",
        Severity::Note,
        "An IPv4 rule without its IPv6 twin where the VPC has IPv6",
    ),
    (
        "quota-exceeded",
        Severity::Error,
        "More rules or groups than an AWS quota allows",
    ),
];

/// The AWS quotas lint checks, with AWS's defaults (aws-semantics §1.7, §3.9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quotas {
    /// `rules-per-security-group`: inbound or outbound rules per group, per address
    /// family (60).
    pub rules_per_security_group: u32,
    /// `security-groups-per-interface`: groups per ENI (5).
    pub security_groups_per_interface: u32,
    /// `rules-per-network-acl`: entries per NACL, per direction and address family,
    /// the `*` entries not counted (20).
    pub rules_per_network_acl: u32,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            rules_per_security_group: 60,
            security_groups_per_interface: 5,
            rules_per_network_acl: 20,
        }
    }
}

/// The names `--quota` takes.
pub const QUOTA_NAMES: &[&str] = &[
    "rules-per-security-group",
    "security-groups-per-interface",
    "rules-per-network-acl",
];

impl Quotas {
    /// Applies one `NAME=N` (`--quota rules-per-security-group=100`).
    pub fn set(&mut self, spec: &str) -> Result<(), String> {
        let Some((name, n)) = spec.split_once('=') else {
            return Err(format!(
                "--quota {spec:?}: expected NAME=N, e.g. rules-per-security-group=100"
            ));
        };
        let n: u32 = match n.trim().parse() {
            Ok(n) if n > 0 => n,
            _ => {
                return Err(format!(
                    "--quota {spec:?}: {n:?} is not a positive whole number"
                ))
            }
        };
        match name.trim() {
            "rules-per-security-group" => self.rules_per_security_group = n,
            "security-groups-per-interface" => self.security_groups_per_interface = n,
            "rules-per-network-acl" => self.rules_per_network_acl = n,
            other => {
                return Err(format!(
                    "--quota {spec:?}: unknown quota `{other}`; known: {}",
                    QUOTA_NAMES.join(", ")
                ))
            }
        }
        Ok(())
    }
}

/// Every finding in `vpc`, in the order of the files (file, line, column), then code.
pub fn lint(vpc: &Vpc, quotas: &Quotas) -> Vec<Finding> {
    let mut out = Vec::new();
    replies(vpc, &mut out);
    shadowed(vpc, &mut out);
    world_open(vpc, &mut out);
    unused_groups(vpc, &mut out);
    ipv6_twins(vpc, &mut out);
    quota_checks(vpc, quotas, &mut out);
    out.sort_by(|a, b| {
        (
            a.origin.file.is_empty(),
            &a.origin.file,
            a.origin.line,
            a.origin.column,
            a.code,
            &a.message,
        )
            .cmp(&(
                b.origin.file.is_empty(),
                &b.origin.file,
                b.origin.line,
                b.origin.column,
                b.code,
                &b.message,
            ))
    });
    out.dedup();
    out
}

/// True when a finding at or above `level` exists.
pub fn fails(findings: &[Finding], level: Severity) -> bool {
    findings.iter().any(|f| f.severity >= level)
}
