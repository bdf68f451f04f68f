//! [`Vpc::validate`] in named steps: what AWS fills in, and what it rejects.

use super::*;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

impl Vpc {
    /// Checks the VPC and fills in what AWS fills in:
    /// - canonical CIDRs (host bits cleared, as the API stores them);
    /// - NACL entries sorted by rule number, with the `*` rules 32767 (IPv4) and
    ///   32768 (IPv6, when the VPC has an IPv6 CIDR) appended;
    /// - a default NACL (allow all) when none is marked default;
    /// - each subnet's NACL: its explicit association, else the default NACL;
    /// - ENIs, subnets and groups sorted by id, so that output order never depends on
    ///   the order of files.
    ///
    /// Reports every problem found: duplicate ids, rule numbers outside 1..=32766,
    /// duplicate rule numbers, `from > to`, unknown SG, subnet, NACL or prefix-list
    /// references, ENI addresses outside their subnet, subnets outside the VPC.
    pub fn validate(&mut self) -> Result<(), RulesetErrors> {
        let mut errs: Vec<RulesetError> = Vec::new();
        self.check_vpc(&mut errs);
        self.check_unique_ids(&mut errs);
        self.check_subnets(&mut errs);
        self.check_nacls(&mut errs);
        self.associate_subnets(&mut errs);
        self.check_security_groups(&mut errs);
        self.check_interfaces(&mut errs);
        self.check_address_owners(&mut errs);
        self.canonical_order();
        if errs.is_empty() {
            Ok(())
        } else {
            Err(RulesetErrors(errs))
        }
    }

    /// The VPC itself: an id, canonical CIDRs.
    fn check_vpc(&mut self, errs: &mut Vec<RulesetError>) {
        let vpc_origin = self.origin.clone();
        if self.id.is_empty() {
            errs.push(RulesetError::new(
                &vpc_origin,
                "vpc.id",
                "the VPC has no id (e.g. `vpc-0abc1234`)",
            ));
        }
        for c in &mut self.cidrs {
            *c = c.trunc();
        }
    }

    /// Ids are unique per kind of object.
    fn check_unique_ids(&self, errs: &mut Vec<RulesetError>) {
        fn dupes<'a>(
            errs: &mut Vec<RulesetError>,
            kind: &str,
            items: impl Iterator<Item = (&'a str, &'a Origin)>,
        ) {
            let mut seen: HashMap<&str, &Origin> = HashMap::new();
            for (id, origin) in items {
                if let Some(first) = seen.get(id) {
                    errs.push(RulesetError::new(
                        origin,
                        format!("{kind}.id"),
                        format!("duplicate {kind} id `{id}` (first defined at {first})"),
                    ));
                } else {
                    seen.insert(id, origin);
                }
            }
        }
        dupes(
            errs,
            "subnet",
            self.subnets.iter().map(|s| (s.id.as_str(), &s.origin)),
        );
        dupes(
            errs,
            "network_acl",
            self.network_acls.iter().map(|s| (s.id.as_str(), &s.origin)),
        );
        dupes(
            errs,
            "security_group",
            self.security_groups
                .iter()
                .map(|s| (s.id.as_str(), &s.origin)),
        );
        dupes(
            errs,
            "network_interface",
            self.network_interfaces
                .iter()
                .map(|s| (s.id.as_str(), &s.origin)),
        );
        dupes(
            errs,
            "prefix_list",
            self.prefix_lists.iter().map(|s| (s.id.as_str(), &s.origin)),
        );
    }

    /// Canonical subnet CIDRs, inside the VPC's.
    fn check_subnets(&mut self, errs: &mut Vec<RulesetError>) {
        for s in &mut self.subnets {
            if let Some(c) = &mut s.ipv4_cidr {
                *c = c.trunc();
            }
            for c in &mut s.ipv6_cidrs {
                *c = c.trunc();
            }
        }
        for s in &self.subnets {
            let inside = |net: IpNet| self.cidrs.iter().any(|v| v.contains(&net));
            if let Some(c) = s.ipv4_cidr {
                if !self.cidrs.is_empty() && !inside(IpNet::V4(c)) {
                    errs.push(RulesetError::new(
                        &s.origin,
                        format!("subnet {}.cidr", s.id),
                        format!("{c} is not inside any VPC CIDR ({})", list(&self.cidrs)),
                    ));
                }
            }
            for c in &s.ipv6_cidrs {
                if self.has_ipv6() && !inside(IpNet::V6(*c)) {
                    errs.push(RulesetError::new(
                        &s.origin,
                        format!("subnet {}.ipv6_cidr", s.id),
                        format!("{c} is not inside any VPC CIDR ({})", list(&self.cidrs)),
                    ));
                }
            }
        }
    }

    /// NACLs: one default (added when missing), rule numbers, ranges, the `*` rules.
    fn check_nacls(&mut self, errs: &mut Vec<RulesetError>) {
        let ipv6 = self.has_ipv6();
        if !self.network_acls.iter().any(|a| a.is_default) {
            let id = format!("acl-default-{}", self.id.trim_start_matches("vpc-"));
            self.network_acls.push(NetworkAcl::aws_default(&id, ipv6));
        }
        let defaults: Vec<&NetworkAcl> =
            self.network_acls.iter().filter(|a| a.is_default).collect();
        if defaults.len() > 1 {
            errs.push(RulesetError::new(
                &defaults[1].origin,
                format!("network_acl {}.is_default", defaults[1].id),
                format!(
                    "a VPC has exactly one default NACL; `{}` is already the default",
                    defaults[0].id
                ),
            ));
        }
        for acl in &mut self.network_acls {
            for (dir, list) in [
                ("inbound", &mut acl.inbound),
                ("outbound", &mut acl.outbound),
            ] {
                // The `*` rules as describe-network-acls prints them are re-added below.
                list.retain(|e| {
                    !((e.rule_number == 32767 || e.rule_number == 32768)
                        && e.action == RuleAction::Deny
                        && e.protocol == Protocol::All
                        && e.cidr.prefix_len() == 0)
                });
                let mut seen: HashMap<u32, Origin> = HashMap::new();
                for e in list.iter_mut() {
                    e.cidr = e.cidr.trunc();
                    let field = format!("network_acl {}.{dir} rule {}", acl.id, e.rule_number);
                    if !(1..=32766).contains(&e.rule_number) {
                        errs.push(RulesetError::new(
                            &e.origin,
                            format!("network_acl {}.{dir}.rule_number", acl.id),
                            format!(
                                "RuleNumber {} is outside 1..=32766 (32767 and up are reserved for the `*` rules)",
                                e.rule_number
                            ),
                        ));
                    }
                    if let Some(first) = seen.get(&e.rule_number) {
                        errs.push(RulesetError::new(
                            &e.origin,
                            field.clone(),
                            format!(
                                "duplicate {dir} rule number {} (first at {first}); each direction's numbers must be unique",
                                e.rule_number
                            ),
                        ));
                    } else {
                        seen.insert(e.rule_number, e.origin.clone());
                    }
                    check_port_range(e.ports, &e.origin, &format!("{field}.port_range"), errs);
                    // AWS ignores ports for protocols without them.
                    if !e.protocol.has_ports()
                        && !matches!(
                            e.protocol,
                            Protocol::Number(PROTO_ICMP) | Protocol::Number(PROTO_ICMPV6)
                        )
                    {
                        e.ports = PortSpec::Any;
                    }
                    // ICMPv6 with an IPv4 CIDR: all types and codes (API doc).
                    if e.protocol == Protocol::Number(PROTO_ICMPV6) && e.cidr.addr().is_ipv4() {
                        e.ports = PortSpec::Any;
                    }
                }
                list.sort_by_key(|e| e.rule_number);
                list.push(NetworkAclEntry::catch_all(false));
                if ipv6 {
                    list.push(NetworkAclEntry::catch_all(true));
                }
            }
        }
    }

    /// Each subnet's NACL: its explicit association, else the default NACL.
    fn associate_subnets(&mut self, errs: &mut Vec<RulesetError>) {
        let default_acl = self
            .network_acls
            .iter()
            .find(|a| a.is_default)
            .map(|a| a.id.clone());
        let mut assoc: HashMap<String, (String, Origin)> = HashMap::new();
        for acl in &self.network_acls {
            for sid in &acl.associations {
                if let Some((other, _)) = assoc.get(sid) {
                    if other != &acl.id {
                        errs.push(RulesetError::new(
                            &acl.origin,
                            format!("network_acl {}.associations", acl.id),
                            format!("subnet `{sid}` is already associated with `{other}`; a subnet has exactly one NACL"),
                        ));
                    }
                } else {
                    assoc.insert(sid.clone(), (acl.id.clone(), acl.origin.clone()));
                }
                if self.subnet(sid).is_none() {
                    errs.push(RulesetError::new(
                        &acl.origin,
                        format!("network_acl {}.associations", acl.id),
                        format!(
                            "unknown subnet `{sid}`; known subnets: {}",
                            ids(self.subnets.iter().map(|s| &s.id))
                        ),
                    ));
                }
            }
        }
        let acl_ids: HashSet<String> = self.network_acls.iter().map(|a| a.id.clone()).collect();
        for s in &mut self.subnets {
            match &s.network_acl_id {
                Some(id) if !acl_ids.contains(id) => errs.push(RulesetError::new(
                    &s.origin,
                    format!("subnet {}.network_acl", s.id),
                    format!("unknown network ACL `{id}`; known: {}", ids(acl_ids.iter())),
                )),
                Some(_) => {}
                None => {
                    s.network_acl_id = assoc
                        .get(&s.id)
                        .map(|(a, _)| a.clone())
                        .or_else(|| default_acl.clone());
                }
            }
        }
    }

    /// Security groups: references to groups and prefix lists, port ranges.
    fn check_security_groups(&mut self, errs: &mut Vec<RulesetError>) {
        let sg_ids: HashSet<String> = self.security_groups.iter().map(|g| g.id.clone()).collect();
        let pl_ids: HashSet<String> = self.prefix_lists.iter().map(|p| p.id.clone()).collect();
        for g in &self.security_groups {
            for (dir, rules) in [("ingress", &g.ingress), ("egress", &g.egress)] {
                for (i, r) in rules.iter().enumerate() {
                    let field = format!("security_group {}.{dir}[{i}]", g.id);
                    match &r.peer {
                        SgPeer::SecurityGroup(id) if !sg_ids.contains(id) => {
                            errs.push(RulesetError::new(
                                &r.origin,
                                format!("{field}.security_group"),
                                format!(
                                    "unknown security group `{id}`{}; known: {}",
                                    self.did_you_mean(id),
                                    ids(sg_ids.iter())
                                ),
                            ))
                        }
                        SgPeer::PrefixList(id) if !pl_ids.contains(id) => {
                            errs.push(RulesetError::new(
                                &r.origin,
                                format!("{field}.prefix_list"),
                                format!(
                                    "unknown prefix list `{id}`; known: {}",
                                    ids(pl_ids.iter())
                                ),
                            ))
                        }
                        _ => {}
                    }
                    check_port_range(r.ports, &r.origin, &format!("{field}.ports"), errs);
                    if let PortSpec::Icmp {
                        icmp_type: None,
                        code: Some(c),
                    } = r.ports
                    {
                        errs.push(RulesetError::new(
                            &r.origin,
                            format!("{field}.ports"),
                            format!("ICMP code {c} with type -1: when the type is -1 the code must be -1 too"),
                        ));
                    }
                }
            }
        }
        for g in &mut self.security_groups {
            for r in g.ingress.iter_mut().chain(g.egress.iter_mut()) {
                if let SgPeer::Cidr(c) = &mut r.peer {
                    *c = c.trunc();
                }
                if !r.protocol.has_ports()
                    && !matches!(
                        r.protocol,
                        Protocol::Number(PROTO_ICMP) | Protocol::Number(PROTO_ICMPV6)
                    )
                {
                    r.ports = PortSpec::Any;
                }
            }
        }
    }

    /// ENIs: subnet, groups, addresses inside the subnet.
    fn check_interfaces(&mut self, errs: &mut Vec<RulesetError>) {
        let sg_ids: HashSet<String> = self.security_groups.iter().map(|g| g.id.clone()).collect();
        let mut warnings = Vec::new();
        for e in &self.network_interfaces {
            self.check_interface(e, &sg_ids, errs, &mut warnings);
        }
        self.warnings.extend(warnings);
    }

    fn check_interface(
        &self,
        e: &NetworkInterface,
        sg_ids: &HashSet<String>,
        errs: &mut Vec<RulesetError>,
        warnings: &mut Vec<RulesetError>,
    ) {
        let Some(subnet) = self.subnet(&e.subnet_id) else {
            errs.push(RulesetError::new(
                &e.origin,
                format!("network_interface {}.subnet", e.id),
                format!(
                    "unknown subnet `{}`; known subnets: {}",
                    e.subnet_id,
                    ids(self.subnets.iter().map(|s| &s.id))
                ),
            ));
            return;
        };
        check_addresses(e, subnet, errs);
        check_prefixes(e, subnet, errs);
        check_elastic_ips(e, errs);
        self.check_interface_groups(e, sg_ids, errs, warnings);
    }

    /// Its groups exist; an ENI of type `interface` without any is warned about.
    fn check_interface_groups(
        &self,
        e: &NetworkInterface,
        sg_ids: &HashSet<String>,
        errs: &mut Vec<RulesetError>,
        warnings: &mut Vec<RulesetError>,
    ) {
        if e.security_groups.is_empty() && e.interface_type == "interface" {
            warnings.push(RulesetError::new(
                &e.origin,
                format!("network_interface {}.security_groups", e.id),
                "an ENI of type `interface` without security groups: treated as an ENI \
                 without security groups, only NACLs filter it (`vpcgate manual`, The model)",
            ));
        }
        for g in &e.security_groups {
            if !sg_ids.contains(g) {
                errs.push(RulesetError::new(
                    &e.origin,
                    format!("network_interface {}.security_groups", e.id),
                    format!(
                        "unknown security group `{g}`{}; known: {}",
                        self.did_you_mean(g),
                        ids(sg_ids.iter())
                    ),
                ));
            }
        }
    }

    /// No address or delegated prefix belongs to two ENIs: the data path would be
    /// ambiguous.
    fn check_address_owners(&self, errs: &mut Vec<RulesetError>) {
        let mut owner: HashMap<IpAddr, &str> = HashMap::new();
        for e in &self.network_interfaces {
            let publics = e
                .public_ipv4
                .into_iter()
                .chain(e.secondary_public_ipv4.iter().map(|(p, _)| *p))
                .map(IpAddr::V4);
            for a in e.private_addrs().chain(publics) {
                if let Some(o) = owner.insert(a, &e.id) {
                    if o != e.id {
                        errs.push(RulesetError::new(
                            &e.origin,
                            format!("network_interface {}.private_ips", e.id),
                            format!("address {a} is already assigned to `{o}`"),
                        ));
                    }
                }
            }
        }
        // Delegated prefixes: no address in them belongs to another ENI.
        for e in &self.network_interfaces {
            let prefixes = e
                .ipv4_prefixes
                .iter()
                .map(|p| IpNet::V4(*p))
                .chain(e.ipv6_prefixes.iter().map(|p| IpNet::V6(*p)));
            for net in prefixes {
                let clash = self.network_interfaces.iter().find_map(|o| {
                    if let Some(a) = o.private_addrs().find(|a| net.contains(a)) {
                        return (o.id != e.id).then(|| format!("address {a} of `{}`", o.id));
                    }
                    o.ipv4_prefixes
                        .iter()
                        .map(|p| IpNet::V4(*p))
                        .chain(o.ipv6_prefixes.iter().map(|p| IpNet::V6(*p)))
                        .find(|p| {
                            (o.id != e.id || *p != net) && (p.contains(&net) || net.contains(p))
                        })
                        .map(|p| format!("prefix {p} of `{}`", o.id))
                });
                if let Some(c) = clash {
                    errs.push(RulesetError::new(
                        &e.origin,
                        format!("network_interface {}.prefixes", e.id),
                        format!("prefix {net} overlaps {c}; an address belongs to one ENI"),
                    ));
                }
            }
        }
    }

    /// Canonical prefix-list CIDRs; everything sorted by id, so that output order
    /// never depends on the order of files; each warning once.
    fn canonical_order(&mut self) {
        for p in &mut self.prefix_lists {
            for c in &mut p.entries {
                *c = c.trunc();
            }
        }

        self.subnets.sort_by(|a, b| a.id.cmp(&b.id));
        self.network_interfaces.sort_by(|a, b| a.id.cmp(&b.id));
        self.security_groups.sort_by(|a, b| a.id.cmp(&b.id));
        self.network_acls.sort_by(|a, b| a.id.cmp(&b.id));
        self.prefix_lists.sort_by(|a, b| a.id.cmp(&b.id));

        // Validating again (after a change) must not repeat a warning.
        let mut seen = HashSet::new();
        self.warnings.retain(|w| seen.insert(w.to_string()));
    }
    /// `; did you mean `sg-…`?` when `name` is some group's name (GroupName).
    fn did_you_mean(&self, name: &str) -> String {
        match self.security_groups.iter().find(|g| g.name == name) {
            Some(g) => format!(
                " (did you mean `{}`? `{name}` is that group's name; rules name groups by id)",
                g.id
            ),
            None => String::new(),
        }
    }
}

/// At least one private address, each inside the ENI's subnet.
fn check_addresses(e: &NetworkInterface, subnet: &Subnet, errs: &mut Vec<RulesetError>) {
    if e.private_ipv4.is_empty() && e.ipv6.is_empty() {
        errs.push(RulesetError::new(
            &e.origin,
            format!("network_interface {}.private_ips", e.id),
            "an ENI needs at least one private address (the first IPv4 is the primary)",
        ));
    }
    for a in e.private_addrs() {
        if !subnet.contains(a) {
            let cidrs: Vec<String> = subnet
                .ipv4_cidr
                .iter()
                .map(|c| c.to_string())
                .chain(subnet.ipv6_cidrs.iter().map(|c| c.to_string()))
                .collect();
            errs.push(RulesetError::new(
                &e.origin,
                format!("network_interface {}.private_ips", e.id),
                format!(
                    "address {a} is outside its subnet `{}` ({})",
                    subnet.id,
                    if cidrs.is_empty() {
                        "no CIDR".to_string()
                    } else {
                        cidrs.join(", ")
                    }
                ),
            ));
        }
    }
}

/// Delegated prefixes come out of the subnet's range.
fn check_prefixes(e: &NetworkInterface, subnet: &Subnet, errs: &mut Vec<RulesetError>) {
    // Delegated prefixes come out of the subnet's range (aws-semantics: "the
    // prefixes are taken from the subnet's CIDR").
    for (net, ok) in e
        .ipv4_prefixes
        .iter()
        .map(|p| {
            (
                IpNet::V4(*p),
                subnet.ipv4_cidr.is_some_and(|c| c.contains(p)),
            )
        })
        .chain(e.ipv6_prefixes.iter().map(|p| {
            (
                IpNet::V6(*p),
                subnet.ipv6_cidrs.iter().any(|c| c.contains(p)),
            )
        }))
    {
        if !ok {
            errs.push(RulesetError::new(
                &e.origin,
                format!("network_interface {}.prefixes", e.id),
                format!(
                    "prefix {net} is outside its subnet `{}` ({})",
                    subnet.id,
                    subnet_cidrs(subnet)
                ),
            ));
        }
    }
}

/// An Elastic IP sits on one of the ENI's own secondary addresses.
fn check_elastic_ips(e: &NetworkInterface, errs: &mut Vec<RulesetError>) {
    // An Elastic IP sits on one of the ENI's own secondary addresses.
    for (public, private) in &e.secondary_public_ipv4 {
        if e.primary_ipv4() == Some(*private) {
            errs.push(RulesetError::new(
                    &e.origin,
                    format!("network_interface {}.elastic_ips", e.id),
                    format!(
                        "{public} maps to {private}, the primary address; the primary's public address is `public_ip`"
                    ),
                ));
        } else if !e.private_ipv4.contains(private) {
            errs.push(RulesetError::new(
                    &e.origin,
                    format!("network_interface {}.elastic_ips", e.id),
                    format!(
                        "{public} maps to {private}, which is not one of this ENI's private addresses ({})",
                        e.private_ipv4
                            .iter()
                            .map(|a| a.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
        }
    }
}

/// A port range is written low-high.
fn check_port_range(ports: PortSpec, origin: &Origin, field: &str, errs: &mut Vec<RulesetError>) {
    if let PortSpec::Range { from, to } = ports {
        if from > to {
            errs.push(RulesetError::new(
                origin,
                field,
                format!("from {from} is greater than to {to}; write the range low-high"),
            ));
        }
    }
}

fn subnet_cidrs(subnet: &Subnet) -> String {
    let cidrs: Vec<String> = subnet
        .ipv4_cidr
        .iter()
        .map(|c| c.to_string())
        .chain(subnet.ipv6_cidrs.iter().map(|c| c.to_string()))
        .collect();
    if cidrs.is_empty() {
        "no CIDR".to_string()
    } else {
        cidrs.join(", ")
    }
}

fn list(cidrs: &[IpNet]) -> String {
    if cidrs.is_empty() {
        return "none".into();
    }
    cidrs
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn ids<'a, S: AsRef<str> + 'a>(it: impl Iterator<Item = S>) -> String {
    let mut v: Vec<String> = it.map(|s| format!("`{}`", s.as_ref())).collect();
    v.sort();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}
