//! Subnets: CIDRs and the NACL that guards them.

use super::*;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subnet {
    pub id: String,
    pub ipv4_cidr: Option<Ipv4Net>,
    pub ipv6_cidrs: Vec<Ipv6Net>,
    /// `us-east-1a`; may be empty.
    pub availability_zone: String,
    /// `use1-az1`; may be empty (flow logs then print `-`).
    pub availability_zone_id: String,
    /// The NACL the subnet uses; filled by [`Vpc::validate`] (default NACL if none).
    pub network_acl_id: Option<String>,
    pub origin: Origin,
}

impl Subnet {
    pub fn new(id: &str, cidr: Ipv4Net) -> Subnet {
        Subnet {
            id: id.to_string(),
            ipv4_cidr: Some(cidr),
            ipv6_cidrs: Vec::new(),
            availability_zone: String::new(),
            availability_zone_id: String::new(),
            network_acl_id: None,
            origin: Origin::default(),
        }
    }

    pub fn contains(&self, addr: IpAddr) -> bool {
        match addr {
            IpAddr::V4(a) => self.ipv4_cidr.is_some_and(|c| c.contains(&a)),
            IpAddr::V6(a) => self.ipv6_cidrs.iter().any(|c| c.contains(&a)),
        }
    }
}
