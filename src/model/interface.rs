//! Network interfaces (ENIs): addresses, groups, public addresses, type.

use super::*;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkInterface {
    pub id: String,
    pub subnet_id: String,
    /// Private IPv4 addresses; the first is the primary.
    pub private_ipv4: Vec<Ipv4Addr>,
    pub ipv6: Vec<Ipv6Addr>,
    /// A public or Elastic IPv4 address the internet gateway maps to the primary.
    pub public_ipv4: Option<Ipv4Addr>,
    /// Elastic IPs on secondary private addresses, as `(public, private)`: AWS prints
    /// an `Association` per private address (manual: "The model").
    pub secondary_public_ipv4: Vec<(Ipv4Addr, Ipv4Addr)>,
    /// Delegated prefixes (`Ipv4Prefixes`, `Ipv6Prefixes`): every address in them
    /// belongs to this ENI.
    pub ipv4_prefixes: Vec<Ipv4Net>,
    pub ipv6_prefixes: Vec<Ipv6Net>,
    /// `InterfaceType` as `describe-network-interfaces` prints it (`interface`,
    /// `nat_gateway`, `transit_gateway`, ...). Informational: what decides the SG
    /// check is whether `security_groups` is empty.
    pub interface_type: String,
    /// The ENI's groups. **Empty means no security group at all** (NAT gateways,
    /// transit gateways, ...): no SG check and no connection tracking; only NACLs
    /// filter its traffic (manual: "The model").
    pub security_groups: Vec<String>,
    pub instance_id: Option<String>,
    /// The owner account (flow-log `account-id`); empty means the VPC's account.
    pub owner_id: String,
    pub description: String,
    /// Per-ENI timeouts on top of the VPC's.
    pub conntrack: ConntrackOverrides,
    /// The tracked-connection allowance of the instance (or of this ENI when it has no
    /// instance). `None`: unlimited.
    pub max_tracked_connections: Option<u32>,
    pub origin: Origin,
}

impl NetworkInterface {
    pub fn new(id: &str, subnet_id: &str, primary: Ipv4Addr) -> NetworkInterface {
        NetworkInterface {
            id: id.to_string(),
            subnet_id: subnet_id.to_string(),
            private_ipv4: vec![primary],
            ipv6: Vec::new(),
            public_ipv4: None,
            secondary_public_ipv4: Vec::new(),
            ipv4_prefixes: Vec::new(),
            ipv6_prefixes: Vec::new(),
            interface_type: "interface".to_string(),
            security_groups: Vec::new(),
            instance_id: None,
            owner_id: String::new(),
            description: String::new(),
            conntrack: ConntrackOverrides::default(),
            max_tracked_connections: None,
            origin: Origin::default(),
        }
    }

    /// The primary private IPv4, which flow logs show for the ENI's side.
    pub fn primary_ipv4(&self) -> Option<Ipv4Addr> {
        self.private_ipv4.first().copied()
    }

    /// Every private address (IPv4 and IPv6), delegated prefixes aside.
    pub fn private_addrs(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.private_ipv4
            .iter()
            .map(|a| IpAddr::V4(*a))
            .chain(self.ipv6.iter().map(|a| IpAddr::V6(*a)))
    }

    /// Every private address and delegated prefix, as networks: what an SG reference
    /// to this ENI's groups matches.
    pub fn private_nets(&self) -> impl Iterator<Item = IpNet> + '_ {
        self.private_addrs()
            .map(IpNet::from)
            .chain(self.ipv4_prefixes.iter().map(|p| IpNet::V4(*p)))
            .chain(self.ipv6_prefixes.iter().map(|p| IpNet::V6(*p)))
    }

    /// Every `(public IPv4, private IPv4 it maps to)` pair: the primary's public
    /// address first, then the Elastic IPs of secondary addresses.
    pub fn public_mappings(&self) -> impl Iterator<Item = (Ipv4Addr, Ipv4Addr)> + '_ {
        self.public_ipv4
            .zip(self.primary_ipv4())
            .into_iter()
            .chain(self.secondary_public_ipv4.iter().copied())
    }

    /// True when the ENI has no security group (manual: "The model"): no SG check, no
    /// connection tracking.
    pub fn has_no_security_group(&self) -> bool {
        self.security_groups.is_empty()
    }
}
