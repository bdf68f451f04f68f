//! The VPC as plain, validated data: the VPC, its subnets, network ACLs, security
//! groups, network interfaces (ENIs) and managed prefix lists.
//!
//! This module does no I/O. The loaders in [`crate::load`] fill a [`Vpc`] from a
//! ruleset TOML file or from `aws ec2 describe-*` JSON and then call
//! [`Vpc::validate`], which fills in what AWS fills in (default NACL association,
//! the `*` deny rules, canonical CIDRs) and rejects what AWS would reject. Every
//! object remembers where it was written ([`Origin`]) so that a validation error can
//! name the file, line, column and field.
//!
//! ```
//! use vpcgate::model::*;
//! let mut vpc = Vpc::new("vpc-1");
//! vpc.cidrs.push("10.0.0.0/16".parse().unwrap());
//! vpc.subnets.push(Subnet::new("subnet-a", "10.0.1.0/24".parse().unwrap()));
//! vpc.validate().unwrap();
//! // The subnet had no NACL: it now uses the VPC's default NACL, which allows all.
//! assert_eq!(vpc.network_acls.len(), 1);
//! assert!(vpc.network_acls[0].is_default);
//! ```
#![deny(clippy::disallowed_methods, clippy::disallowed_types)]

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

mod validate;

mod error;
mod ids;
pub use error::*;
pub use ids::{EniIdx, EniNum};
mod rule;
pub use rule::*;
mod nacl;
pub use nacl::*;
mod security_group;
pub use security_group::*;
mod timeouts;
pub use timeouts::*;
mod subnet;
pub use subnet::*;
mod interface;
pub use interface::*;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrefixList {
    pub id: String,
    pub name: String,
    pub entries: Vec<IpNet>,
    pub origin: Origin,
}

/// One VPC: what a ruleset describes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vpc {
    pub id: String,
    pub account_id: String,
    pub region: String,
    /// IPv4 and IPv6 CIDRs; the first IPv4 one is the primary (its base+2 is the
    /// Amazon DNS resolver).
    pub cidrs: Vec<IpNet>,
    pub subnets: Vec<Subnet>,
    pub network_acls: Vec<NetworkAcl>,
    pub security_groups: Vec<SecurityGroup>,
    pub network_interfaces: Vec<NetworkInterface>,
    pub prefix_lists: Vec<PrefixList>,
    /// VPC-wide connection-tracking timeouts (ENIs may override).
    pub conntrack: ConntrackTimeouts,
    pub origin: Origin,
    /// What loading and validation found that cannot change a verdict, or that the
    /// user must hear about (manual: "The model"): printed as `warning: ...` at load time.
    pub warnings: Vec<RulesetError>,
}

impl Vpc {
    pub fn new(id: &str) -> Vpc {
        Vpc {
            id: id.to_string(),
            account_id: String::new(),
            region: String::new(),
            cidrs: Vec::new(),
            subnets: Vec::new(),
            network_acls: Vec::new(),
            security_groups: Vec::new(),
            network_interfaces: Vec::new(),
            prefix_lists: Vec::new(),
            conntrack: ConntrackTimeouts::default(),
            origin: Origin::default(),
            warnings: Vec::new(),
        }
    }

    pub fn has_ipv6(&self) -> bool {
        self.cidrs.iter().any(|c| matches!(c, IpNet::V6(_)))
    }

    /// The primary IPv4 CIDR.
    pub fn primary_ipv4_cidr(&self) -> Option<Ipv4Net> {
        self.cidrs.iter().find_map(|c| match c {
            IpNet::V4(n) => Some(*n),
            _ => None,
        })
    }

    pub fn subnet(&self, id: &str) -> Option<&Subnet> {
        self.subnets.iter().find(|s| s.id == id)
    }

    pub fn network_acl(&self, id: &str) -> Option<&NetworkAcl> {
        self.network_acls.iter().find(|a| a.id == id)
    }

    pub fn security_group(&self, id: &str) -> Option<&SecurityGroup> {
        self.security_groups.iter().find(|g| g.id == id)
    }

    pub fn network_interface(&self, id: &str) -> Option<&NetworkInterface> {
        self.network_interfaces.iter().find(|e| e.id == id)
    }

    /// A copy with every [`Origin`] cleared: two rulesets that describe the same VPC
    /// from different files (TOML, AWS JSON) then compare equal.
    pub fn without_origins(&self) -> Vpc {
        let mut v = self.clone();
        v.origin = Origin::default();
        v.warnings.clear();
        for s in &mut v.subnets {
            s.origin = Origin::default();
        }
        for a in &mut v.network_acls {
            a.origin = Origin::default();
            for e in a.inbound.iter_mut().chain(a.outbound.iter_mut()) {
                e.origin = Origin::default();
            }
        }
        for g in &mut v.security_groups {
            g.origin = Origin::default();
            for r in g.ingress.iter_mut().chain(g.egress.iter_mut()) {
                r.origin = Origin::default();
            }
        }
        for e in &mut v.network_interfaces {
            e.origin = Origin::default();
        }
        for p in &mut v.prefix_lists {
            p.origin = Origin::default();
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Vpc {
        let mut vpc = Vpc::new("vpc-1");
        vpc.cidrs.push("10.0.0.0/16".parse().unwrap());
        vpc.subnets
            .push(Subnet::new("subnet-a", "10.0.1.0/24".parse().unwrap()));
        vpc
    }

    #[test]
    fn default_nacl_added_and_associated() {
        let mut vpc = base();
        vpc.validate().unwrap();
        let acl = &vpc.network_acls[0];
        assert!(acl.is_default);
        assert_eq!(
            acl.inbound
                .iter()
                .map(|e| e.rule_number)
                .collect::<Vec<_>>(),
            vec![100, 32767]
        );
        assert_eq!(
            vpc.subnets[0].network_acl_id.as_deref(),
            Some(acl.id.as_str())
        );
    }

    #[test]
    fn rule_number_out_of_range_named() {
        let mut vpc = base();
        let mut acl = NetworkAcl::new("acl-1");
        acl.origin = Origin::new("r.toml", 3, 1);
        acl.inbound.push(NetworkAclEntry {
            rule_number: 40000,
            protocol: Protocol::All,
            cidr: "0.0.0.0/0".parse().unwrap(),
            ports: PortSpec::Any,
            action: RuleAction::Allow,
            origin: Origin::new("r.toml", 7, 3),
        });
        vpc.network_acls.push(acl);
        let err = vpc.validate().unwrap_err().to_string();
        assert!(err.contains("r.toml:7:3"), "{err}");
        assert!(
            err.contains("RuleNumber 40000 is outside 1..=32766"),
            "{err}"
        );
    }

    #[test]
    fn eni_outside_subnet() {
        let mut vpc = base();
        vpc.network_interfaces.push(NetworkInterface::new(
            "eni-1",
            "subnet-a",
            "10.0.2.5".parse().unwrap(),
        ));
        let err = vpc.validate().unwrap_err().to_string();
        assert!(
            err.contains("10.0.2.5 is outside its subnet `subnet-a` (10.0.1.0/24)"),
            "{err}"
        );
    }

    #[test]
    fn cidr_canonicalised() {
        // NACL-8: 100.68.0.18/18 is stored as 100.68.0.0/18.
        let mut vpc = base();
        let mut acl = NetworkAcl::new("acl-1");
        acl.inbound.push(NetworkAclEntry {
            rule_number: 100,
            protocol: Protocol::All,
            cidr: "100.68.0.18/18".parse().unwrap(),
            ports: PortSpec::Any,
            action: RuleAction::Allow,
            origin: Origin::default(),
        });
        vpc.network_acls.push(acl);
        vpc.validate().unwrap();
        let acl = vpc.network_acl("acl-1").unwrap();
        assert_eq!(acl.inbound[0].cidr.to_string(), "100.68.0.0/18");
    }
}

/// Which way a packet crosses an ENI, as flow logs name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    Ingress,
    Egress,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        })
    }
}

/// A flow-log action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    Accept,
    Reject,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Accept => "ACCEPT",
            Action::Reject => "REJECT",
        })
    }
}
