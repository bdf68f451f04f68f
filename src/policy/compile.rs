//! [`Policy::compile`] in named steps: a validated [`Vpc`] to the lookup structures the
//! per-packet path reads.

use super::*;
use std::collections::HashMap as StdMap;

/// Model index by id, for one kind of object.
fn index_of<'a>(ids: impl Iterator<Item = &'a str>) -> StdMap<&'a str, u32> {
    ids.enumerate().map(|(i, id)| (id, i as u32)).collect()
}

impl Policy {
    /// Compiles a validated VPC. `eni_ids` is the sorted list of every ENI id of every
    /// ruleset of the run: an ENI's stable number is its position there, so that flow
    /// records and tracked connections survive a ruleset change (`--rules-at`).
    ///
    /// # Panics
    /// When `eni_ids` lacks an ENI of `vpc` (a caller's mistake: it is built from the
    /// same rulesets).
    pub fn compile(vpc: Arc<Vpc>, eni_ids: &[String]) -> Policy {
        let subnet_index = index_of(vpc.subnets.iter().map(|s| s.id.as_str()));
        let acl_index = index_of(vpc.network_acls.iter().map(|a| a.id.as_str()));
        let sg_index = index_of(vpc.security_groups.iter().map(|g| g.id.as_str()));

        let (addrs, prefixes) = owned_addresses(&vpc);
        let (addrs4, addrs6) = address_table(&addrs, &exempt_services(&vpc));
        let (sg_in, sg_out) = compile_security_groups(&vpc, &sg_index);
        let (nacl_in, nacl_out) = compile_nacls(&vpc);
        let (group_limit, eni_limit_group) = limit_groups(&vpc);
        let (nacl_base, sg_base) = slot_bases(&vpc);

        let enis = &vpc.network_interfaces;
        let eni_number = enis
            .iter()
            .map(|e| {
                let i = eni_ids.binary_search(&e.id).unwrap_or_else(|_| {
                    panic!(
                        "Policy::compile: `eni_ids` lacks {}, an ENI of the ruleset",
                        e.id
                    )
                });
                EniNum(i as u32)
            })
            .collect();
        let eni_subnet = enis
            .iter()
            .map(|e| subnet_index.get(e.subnet_id.as_str()).copied().unwrap_or(0))
            .collect();
        let subnet_nacl = vpc
            .subnets
            .iter()
            .map(|s| {
                s.network_acl_id
                    .as_deref()
                    .and_then(|a| acl_index.get(a).copied())
                    .unwrap_or(0)
            })
            .collect();
        let eni_timeouts = enis
            .iter()
            .map(|e| e.conntrack.apply(vpc.conntrack))
            .collect();
        let eni_no_sg = enis.iter().map(|e| e.has_no_security_group()).collect();
        Policy {
            eni_number,
            eni_subnet,
            subnet_nacl,
            eni_timeouts,
            eni_limit_group,
            group_limit,
            addrs4,
            addrs6,
            prefixes,
            eni_no_sg,
            nacl_base,
            sg_base,
            sg_in,
            sg_out,
            nacl_in,
            nacl_out,
            vpc,
        }
    }
}

/// Every address an ENI owns (private, secondary, public and Elastic IPs, with the
/// private address behind a public one), and its delegated prefixes.
fn owned_addresses(vpc: &Vpc) -> (HashMap<IpAddr, AddrOwner>, Vec<(IpNet, EniIdx)>) {
    let mut addrs = HashMap::new();
    let mut prefixes = Vec::new();
    for (i, e) in vpc.network_interfaces.iter().enumerate() {
        let eni = EniIdx(i as u32);
        for a in e.private_addrs() {
            addrs.insert(
                a,
                AddrOwner {
                    eni,
                    public_of: None,
                },
            );
        }
        for (public, private) in e.public_mappings() {
            addrs.insert(
                IpAddr::V4(public),
                AddrOwner {
                    eni,
                    public_of: Some(private),
                },
            );
        }
        for p in &e.ipv4_prefixes {
            prefixes.push((IpNet::V4(*p), eni));
        }
        for p in &e.ipv6_prefixes {
            prefixes.push((IpNet::V6(*p), eni));
        }
    }
    (addrs, prefixes)
}

/// The services no SG or NACL filters: Amazon DNS, instance metadata, time sync (both
/// families), each subnet's router (base + 1) and the VPC resolver (base + 2).
fn exempt_services(vpc: &Vpc) -> HashMap<IpAddr, ExemptService> {
    let mut exempt = HashMap::new();
    let v4 = |s: &str| IpAddr::V4(s.parse::<Ipv4Addr>().unwrap());
    let v6 = |s: &str| IpAddr::V6(s.parse::<Ipv6Addr>().unwrap());
    exempt.insert(v4("169.254.169.253"), ExemptService::AmazonDns);
    exempt.insert(v6("fd00:ec2::253"), ExemptService::AmazonDns);
    exempt.insert(v4("169.254.169.254"), ExemptService::InstanceMetadata);
    exempt.insert(v6("fd00:ec2::254"), ExemptService::InstanceMetadata);
    exempt.insert(v4("169.254.169.123"), ExemptService::TimeSync);
    exempt.insert(v6("fd00:ec2::123"), ExemptService::TimeSync);
    for s in &vpc.subnets {
        if let Some(c) = s.ipv4_cidr {
            exempt.insert(IpAddr::V4(nth4(c.network(), 1)), ExemptService::VpcRouter);
        }
        for c in &s.ipv6_cidrs {
            exempt.insert(IpAddr::V6(nth6(c.network(), 1)), ExemptService::VpcRouter);
        }
    }
    if let Some(c) = vpc.primary_ipv4_cidr() {
        exempt.insert(IpAddr::V4(nth4(c.network(), 2)), ExemptService::AmazonDns);
    }
    exempt
}

type AddrTable<K> = HashMap<K, AddrInfo, foldhash::fast::FixedState>;

/// Owners and exempt services in one table per family, keyed by the address's bits.
fn address_table(
    addrs: &HashMap<IpAddr, AddrOwner>,
    exempt: &HashMap<IpAddr, ExemptService>,
) -> (AddrTable<u32>, AddrTable<u128>) {
    let mut addrs4: AddrTable<u32> = HashMap::default();
    let mut addrs6: AddrTable<u128> = HashMap::default();
    for (&a, &o) in addrs {
        match a {
            IpAddr::V4(v) => addrs4.entry(u32::from(v)).or_default().owner = Some(o),
            IpAddr::V6(v) => addrs6.entry(u128::from(v)).or_default().owner = Some(o),
        }
    }
    for (&a, &x) in exempt {
        match a {
            IpAddr::V4(v) => addrs4.entry(u32::from(v)).or_default().exempt = Some(x),
            IpAddr::V6(v) => addrs6.entry(u128::from(v)).or_default().exempt = Some(x),
        }
    }
    (addrs4, addrs6)
}

/// What SG rules refer to, resolved to address sets: each group's members (every
/// private address of every ENI in it) and each prefix list's entries.
struct PeerSets<'a> {
    sg_index: &'a StdMap<&'a str, u32>,
    members: Vec<Arc<Vec<IpNet>>>,
    prefix_lists: StdMap<&'a str, Arc<Vec<IpNet>>>,
}

impl<'a> PeerSets<'a> {
    fn new(vpc: &'a Vpc, sg_index: &'a StdMap<&'a str, u32>) -> PeerSets<'a> {
        let sorted = |mut v: Vec<IpNet>| {
            v.sort();
            v.dedup();
            Arc::new(v)
        };
        let mut members: Vec<Vec<IpNet>> = vec![Vec::new(); vpc.security_groups.len()];
        for e in &vpc.network_interfaces {
            for g in &e.security_groups {
                if let Some(&gi) = sg_index.get(g.as_str()) {
                    members[gi as usize].extend(e.private_nets());
                }
            }
        }
        PeerSets {
            sg_index,
            members: members.into_iter().map(sorted).collect(),
            prefix_lists: vpc
                .prefix_lists
                .iter()
                .map(|p| (p.id.as_str(), sorted(p.entries.clone())))
                .collect(),
        }
    }

    /// A rule's peer, and whether it is open to the world (`/0`).
    fn peer(&self, peer: &SgPeer) -> (Peer, bool) {
        match peer {
            SgPeer::Cidr(n) => (Peer::Net(*n), n.prefix_len() == 0),
            SgPeer::PrefixList(p) => (
                Peer::Set(
                    self.prefix_lists
                        .get(p.as_str())
                        .cloned()
                        .unwrap_or_default(),
                ),
                false,
            ),
            SgPeer::SecurityGroup(s) => {
                let set = self
                    .sg_index
                    .get(s.as_str())
                    .map(|&i| self.members[i as usize].clone())
                    .unwrap_or_default();
                (Peer::Set(set), false)
            }
        }
    }
}

/// Each ENI's united SG rules per direction (ingress, egress) and family.
fn compile_security_groups(
    vpc: &Vpc,
    sg_index: &StdMap<&str, u32>,
) -> (Vec<DirRules>, Vec<DirRules>) {
    let peers = PeerSets::new(vpc, sg_index);
    let mut sg_in = Vec::new();
    let mut sg_out = Vec::new();
    for e in &vpc.network_interfaces {
        let mut din = (Vec::new(), Vec::new());
        let mut dout = (Vec::new(), Vec::new());
        // In group-id order (the model is sorted by id), whatever order the ENI
        // lists them in: the manual credits a packet to the first rule that way.
        let mut groups: Vec<u32> = e
            .security_groups
            .iter()
            .filter_map(|g| sg_index.get(g.as_str()).copied())
            .collect();
        groups.sort_unstable();
        groups.dedup();
        for gi in groups {
            let group = &vpc.security_groups[gi as usize];
            for (egress, rules, dir) in [
                (false, &group.ingress, &mut din),
                (true, &group.egress, &mut dout),
            ] {
                for (ri, r) in rules.iter().enumerate() {
                    let (peer, open) = peers.peer(&r.peer);
                    let rule = CompiledSgRule {
                        protocol: r.protocol,
                        ports: r.ports,
                        peer,
                        open,
                        id: SgRuleRef {
                            group: gi,
                            egress,
                            rule: ri as u32,
                        },
                    };
                    // A CIDR rule matches only its own family; a set may hold both.
                    let (in_v4, in_v6) = match &rule.peer {
                        Peer::Net(IpNet::V4(_)) => (true, false),
                        Peer::Net(IpNet::V6(_)) => (false, true),
                        Peer::Set(s) => (
                            s.iter().any(|n| n.addr().is_ipv4()),
                            s.iter().any(|n| n.addr().is_ipv6()),
                        ),
                    };
                    if in_v4 {
                        dir.0.push(rule.clone());
                    }
                    if in_v6 {
                        dir.1.push(rule);
                    }
                }
            }
        }
        for (d, out) in [(din, &mut sg_in), (dout, &mut sg_out)] {
            out.push(DirRules {
                v4: Family::new(d.0, ranges4),
                v6: Family::new(d.1, ranges6),
            });
        }
    }
    (sg_in, sg_out)
}

/// Each NACL's entries per direction (inbound, outbound) and family, in rule-number
/// order (validation sorted them and appended the `*` rules).
fn compile_nacls(vpc: &Vpc) -> (Vec<NaclDir>, Vec<NaclDir>) {
    let compile = |entries: &Vec<NetworkAclEntry>| {
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for (i, e) in entries.iter().enumerate() {
            let c = CompiledNaclEntry {
                protocol: e.protocol,
                ports: e.ports,
                cidr: e.cidr,
                allow: e.action == RuleAction::Allow,
                rule_number: e.rule_number,
                entry: i as u32,
            };
            if e.cidr.addr().is_ipv4() {
                v4.push(c);
            } else {
                v6.push(c);
            }
        }
        NaclDir::new(v4, v6)
    };
    vpc.network_acls
        .iter()
        .map(|acl| (compile(&acl.inbound), compile(&acl.outbound)))
        .unzip()
}

/// Tracked-connection allowance: one group per instance (else per ENI), with the
/// smallest limit any of its ENIs names; and each ENI's group.
fn limit_groups(vpc: &Vpc) -> (Vec<Option<u32>>, Vec<u32>) {
    let mut group_of: StdMap<String, u32> = StdMap::new();
    let mut group_limit: Vec<Option<u32>> = Vec::new();
    let mut eni_limit_group = Vec::new();
    for e in &vpc.network_interfaces {
        let key = e.instance_id.clone().unwrap_or_else(|| e.id.clone());
        let g = *group_of.entry(key).or_insert_with(|| {
            group_limit.push(None);
            (group_limit.len() - 1) as u32
        });
        if let Some(l) = e.max_tracked_connections {
            let cur = &mut group_limit[g as usize];
            *cur = Some(cur.map_or(l, |c| c.min(l)));
        }
        eni_limit_group.push(g);
    }
    (group_limit, eni_limit_group)
}

/// Where each NACL direction's and each SG direction's hit counters start in the dense
/// coverage arrays ([`Policy::nacl_slot`], [`Policy::sg_slot`]); one slot more per NACL
/// direction for "no entry".
fn slot_bases(vpc: &Vpc) -> (Vec<u32>, Vec<u32>) {
    let mut nacl_base = Vec::with_capacity(vpc.network_acls.len() * 2 + 1);
    let mut next = 0u32;
    for acl in &vpc.network_acls {
        for list in [&acl.inbound, &acl.outbound] {
            nacl_base.push(next);
            next += list.len() as u32 + 1;
        }
    }
    nacl_base.push(next);
    let mut sg_base = Vec::with_capacity(vpc.security_groups.len() * 2 + 1);
    let mut next = 0u32;
    for g in &vpc.security_groups {
        for list in [&g.ingress, &g.egress] {
            sg_base.push(next);
            next += list.len() as u32;
        }
    }
    sg_base.push(next);
    (nacl_base, sg_base)
}
