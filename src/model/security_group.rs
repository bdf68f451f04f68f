//! Security groups: allow rules whose peers are CIDRs, groups or prefix lists.

use super::*;

/// The peer of a security-group rule: the source of an inbound rule, the destination
/// of an outbound rule.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SgPeer {
    Cidr(IpNet),
    PrefixList(String),
    SecurityGroup(String),
}

impl fmt::Display for SgPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SgPeer::Cidr(c) => write!(f, "{c}"),
            SgPeer::PrefixList(p) => write!(f, "{p}"),
            SgPeer::SecurityGroup(g) => write!(f, "{g}"),
        }
    }
}

/// One security-group rule (one peer; an AWS `IpPermission` with several peers
/// becomes several rules).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityGroupRule {
    pub protocol: Protocol,
    pub ports: PortSpec,
    pub peer: SgPeer,
    pub description: Option<String>,
    pub origin: Origin,
}

impl SecurityGroupRule {
    /// A short text for the summary: `tcp 443 from 0.0.0.0/0`.
    pub fn describe(&self, ingress: bool) -> String {
        let proto = self.protocol.label();
        let dir = if ingress { "from" } else { "to" };
        if matches!(self.ports, PortSpec::Any) {
            format!("{proto} {dir} {}", self.peer)
        } else {
            format!("{proto} {} {dir} {}", self.ports, self.peer)
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityGroup {
    pub id: String,
    pub name: String,
    pub description: String,
    pub ingress: Vec<SecurityGroupRule>,
    pub egress: Vec<SecurityGroupRule>,
    pub origin: Origin,
}

impl SecurityGroup {
    pub fn new(id: &str) -> SecurityGroup {
        SecurityGroup {
            id: id.to_string(),
            name: String::new(),
            description: String::new(),
            ingress: Vec::new(),
            egress: Vec::new(),
            origin: Origin::default(),
        }
    }
}
