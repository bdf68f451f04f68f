//! Network ACLs: numbered entries per direction, first match wins.

use super::*;

/// One network ACL entry. Rule numbers 1..=32766 are the user's; 32767 (IPv4) and
/// 32768 (IPv6) are the `*` deny rules that [`Vpc::validate`] adds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkAclEntry {
    pub rule_number: u32,
    pub protocol: Protocol,
    /// `CidrBlock` or `Ipv6CidrBlock`: the source for inbound, destination for outbound.
    pub cidr: IpNet,
    pub ports: PortSpec,
    pub action: RuleAction,
    pub origin: Origin,
}

impl NetworkAclEntry {
    /// The catch-all `*` deny rule of a family.
    pub fn catch_all(v6: bool) -> NetworkAclEntry {
        NetworkAclEntry {
            rule_number: if v6 { 32768 } else { 32767 },
            protocol: Protocol::All,
            cidr: if v6 {
                IpNet::V6(Ipv6Net::default())
            } else {
                IpNet::V4(Ipv4Net::default())
            },
            ports: PortSpec::Any,
            action: RuleAction::Deny,
            origin: Origin::default(),
        }
    }

    /// The label the summary and verdicts use: `32767` shows as `*` in the console,
    /// but we print the API number, which is what `describe-network-acls` shows.
    pub fn label(&self) -> String {
        self.rule_number.to_string()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkAcl {
    pub id: String,
    pub is_default: bool,
    /// Inbound entries, sorted by rule number after validation.
    pub inbound: Vec<NetworkAclEntry>,
    /// Outbound entries, sorted by rule number after validation.
    pub outbound: Vec<NetworkAclEntry>,
    /// Subnets explicitly associated (from `Associations` or a subnet's `network_acl`).
    pub associations: Vec<String>,
    pub origin: Origin,
}

impl NetworkAcl {
    pub fn new(id: &str) -> NetworkAcl {
        NetworkAcl {
            id: id.to_string(),
            is_default: false,
            inbound: Vec::new(),
            outbound: Vec::new(),
            associations: Vec::new(),
            origin: Origin::default(),
        }
    }

    /// The default NACL AWS creates with a VPC: rule 100 allows all IPv4, rule 101
    /// all IPv6 (only when the VPC has an IPv6 CIDR), then the `*` rules.
    pub fn aws_default(id: &str, ipv6: bool) -> NetworkAcl {
        let mut acl = NetworkAcl::new(id);
        acl.is_default = true;
        for list in [&mut acl.inbound, &mut acl.outbound] {
            list.push(NetworkAclEntry {
                rule_number: 100,
                protocol: Protocol::All,
                cidr: IpNet::V4(Ipv4Net::default()),
                ports: PortSpec::Any,
                action: RuleAction::Allow,
                origin: Origin::default(),
            });
            if ipv6 {
                list.push(NetworkAclEntry {
                    rule_number: 101,
                    protocol: Protocol::All,
                    cidr: IpNet::V6(Ipv6Net::default()),
                    ports: PortSpec::Any,
                    action: RuleAction::Allow,
                    origin: Origin::default(),
                });
            }
        }
        acl
    }
}
