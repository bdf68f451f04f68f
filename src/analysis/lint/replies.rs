//! `nacl-reply-dropped`: an allowed service whose replies a NACL drops at the ephemeral
//! ports the client uses.

use super::*;

/// The ephemeral ports a client uses, per AWS's table.
#[derive(Clone, Debug)]
pub(super) struct Client {
    /// `the load balancer eni-0abc (10.0.1.10)`, `clients on the internet (0.0.0.0/0)`.
    who: String,
    /// Each OS or service the client may be, with its range and the severity of a
    /// drop: `("Elastic Load Balancing", 1024, 65535, Error)`.
    ranges: Vec<(&'static str, u16, u16, Severity)>,
    /// The client's subnet (or internet range): what a fix names as the reply's
    /// destination.
    net: IpNet,
    /// The grouping label (an ENI id, or the internet CIDR).
    key: String,
}

pub(super) const LINUX: (&str, u16, u16) = ("Linux", 32768, 60999);
pub(super) const WINDOWS: (&str, u16, u16) = ("Windows", 49152, 65535);

pub(crate) fn eni_kind(e: &NetworkInterface) -> Option<(&'static str, &'static str)> {
    let t = e.interface_type.as_str();
    if e.description.starts_with("ELB ")
        || matches!(
            t,
            "network_load_balancer" | "load_balancer" | "gateway_load_balancer"
        )
    {
        Some(("the load balancer", "Elastic Load Balancing"))
    } else if t == "nat_gateway" {
        Some(("the NAT gateway", "NAT gateway"))
    } else if t == "lambda" || e.description.starts_with("AWS Lambda VPC ENI") {
        Some(("the Lambda function", "AWS Lambda"))
    } else {
        None
    }
}

/// `eni-a (10.0.1.10), eni-b (10.0.1.11)`, at most three named.
pub(super) fn members_text(c: &Class) -> String {
    let v6 = c.addr.is_ipv6();
    let named: Vec<String> = c
        .members
        .iter()
        .take(3)
        .map(|e| match addr_like(e, v6) {
            Some(a) => format!("{} ({a})", e.id),
            None => e.id.clone(),
        })
        .collect();
    if c.members.len() > 3 {
        format!("{} and {} more", named.join(", "), c.members.len() - 3)
    } else {
        named.join(", ")
    }
}

pub(super) fn class_client(vpc: &Vpc, c: &Class, key: usize) -> Client {
    let addr = c.addr;
    let net = vpc
        .subnet(&c.rep.subnet_id)
        .and_then(|s| match addr {
            IpAddr::V4(_) => s.ipv4_cidr.map(IpNet::V4),
            IpAddr::V6(a) => s
                .ipv6_cidrs
                .iter()
                .find(|n| n.contains(&a))
                .map(|n| IpNet::V6(*n)),
        })
        .unwrap_or_else(|| IpNet::from(addr));
    let key = format!("{}#{key}", if addr.is_ipv6() { "v6" } else { "v4" });
    match eni_kind(c.rep) {
        Some((who, service)) => Client {
            who: format!("{who} {}", members_text(c)),
            ranges: vec![(service, 1024, 65535, Severity::Error)],
            net,
            key,
        },
        None => Client {
            who: format!("{}, assumed to run Linux,", members_text(c)),
            ranges: vec![(LINUX.0, LINUX.1, LINUX.2, Severity::Warning)],
            net,
            key,
        },
    }
}

/// Interfaces that every check sees alike: the same subnet, groups, kind and public
/// address, and an address (of one family) inside the same NACL, SG and prefix-list
/// CIDRs. The reply check runs once per pair of classes, not per pair of interfaces.
pub(super) struct Class<'a> {
    members: Vec<&'a NetworkInterface>,
    rep: &'a NetworkInterface,
    addr: IpAddr,
    acl: &'a NetworkAcl,
    groups: Vec<&'a SecurityGroup>,
    public: bool,
}

pub(super) type ClassKey = (String, Vec<String>, Option<&'static str>, bool, Vec<u32>);

pub(super) fn classes(vpc: &Vpc, v6: bool) -> Vec<Class<'_>> {
    let mut cidrs: Vec<IpNet> = vpc
        .network_acls
        .iter()
        .flat_map(|a| a.inbound.iter().chain(&a.outbound).map(|e| e.cidr))
        .chain(vpc.security_groups.iter().flat_map(|g| {
            g.ingress
                .iter()
                .chain(&g.egress)
                .filter_map(|r| match r.peer {
                    SgPeer::Cidr(c) => Some(c),
                    _ => None,
                })
        }))
        .chain(
            vpc.prefix_lists
                .iter()
                .flat_map(|p| p.entries.iter().copied()),
        )
        .filter(|c| family_v6(c) == v6)
        .collect();
    cidrs.sort();
    cidrs.dedup();
    let mut index: BTreeMap<ClassKey, usize> = BTreeMap::new();
    let mut out: Vec<Class> = Vec::new();
    for e in &vpc.network_interfaces {
        let (Some(addr), Some(acl)) = (addr_like(e, v6), subnet_acl(vpc, e)) else {
            continue;
        };
        let public = if v6 {
            true
        } else {
            e.public_mappings().next().is_some()
        };
        let sig: Vec<u32> = cidrs
            .iter()
            .enumerate()
            .filter(|(_, c)| c.contains(&addr))
            .map(|(i, _)| i as u32)
            .collect();
        let mut groups = e.security_groups.clone();
        groups.sort();
        let key = (
            e.subnet_id.clone(),
            groups,
            eni_kind(e).map(|k| k.0),
            public,
            sig,
        );
        match index.get(&key) {
            Some(&i) => out[i].members.push(e),
            None => {
                index.insert(key, out.len());
                out.push(Class {
                    members: vec![e],
                    rep: e,
                    addr,
                    acl,
                    groups: groups_of(vpc, e),
                    public,
                });
            }
        }
    }
    out
}

pub(super) fn ids_text(members: &[&NetworkInterface]) -> Vec<String> {
    members.iter().map(|e| e.id.clone()).collect()
}

pub(super) fn internet_client(net: IpNet) -> Client {
    Client {
        who: format!("clients on the internet ({net})"),
        ranges: vec![
            (LINUX.0, LINUX.1, LINUX.2, Severity::Warning),
            (WINDOWS.0, WINDOWS.1, WINDOWS.2, Severity::Warning),
        ],
        net,
        key: net.to_string(),
    }
}

pub(super) fn groups_of<'a>(vpc: &'a Vpc, e: &NetworkInterface) -> Vec<&'a SecurityGroup> {
    e.security_groups
        .iter()
        .filter_map(|g| vpc.security_group(g))
        .collect()
}

/// Whether an SG rule's peer matches `addr`, which belongs to `eni` when it is one
/// of an ENI's private addresses.
pub(super) fn peer_matches(
    vpc: &Vpc,
    peer: &SgPeer,
    addr: IpAddr,
    eni: Option<&NetworkInterface>,
) -> bool {
    match peer {
        SgPeer::Cidr(c) => c.contains(&addr),
        SgPeer::PrefixList(id) => vpc
            .prefix_lists
            .iter()
            .find(|p| &p.id == id)
            .is_some_and(|p| p.entries.iter().any(|c| c.contains(&addr))),
        SgPeer::SecurityGroup(g) => eni.is_some_and(|e| e.security_groups.contains(g)),
    }
}

/// The ports of protocol `proto` the SG rules allow to or from `addr`.
pub(super) fn sg_ports(
    vpc: &Vpc,
    groups: &[&SecurityGroup],
    ingress: bool,
    proto: u8,
    addr: IpAddr,
    eni: Option<&NetworkInterface>,
) -> Ports {
    let mut out = Vec::new();
    for g in groups {
        for r in if ingress { &g.ingress } else { &g.egress } {
            if r.protocol.matches(proto) && peer_matches(vpc, &r.peer, addr, eni) {
                out = union(&out, &spec_ports(r.ports));
            }
        }
    }
    out
}

pub(super) fn in_vpc(vpc: &Vpc, net: &IpNet) -> bool {
    vpc.cidrs.iter().any(|c| c.contains(net))
}

/// Addresses outside the VPC that stand for `net` as NACL entries see it: `net`'s
/// first address and the first address of every narrower entry CIDR inside it.
pub(super) fn outside_reps(vpc: &Vpc, net: IpNet, acls: &[&NetworkAcl]) -> Vec<(IpNet, IpAddr)> {
    let mut nets: BTreeSet<IpNet> = BTreeSet::new();
    nets.insert(net);
    for acl in acls {
        for e in acl.inbound.iter().chain(&acl.outbound) {
            if net.contains(&e.cidr) && e.cidr != net {
                nets.insert(e.cidr);
            }
        }
    }
    nets.into_iter()
        .filter(|n| !in_vpc(vpc, n))
        .map(|n| (net, n.network()))
        .collect()
}

#[derive(Default)]
pub(super) struct ReplyGroup {
    severity: Option<Severity>,
    acl: String,
    egress: bool,
    origin: Origin,
    rule: Option<String>,
    anchor: Option<NetworkAclEntry>,
    client: String,
    /// `(name, from, to)` of each range that lost ports, and the ports lost.
    lost: Vec<(String, Ports)>,
    /// The entries that drop them.
    droppers: BTreeSet<String>,
    /// `tcp 8080` -> the servers (or `the internet (0.0.0.0/0)`).
    services: BTreeMap<String, BTreeSet<String>>,
    /// The far ends of the replies: what a new rule would name.
    nets: BTreeSet<IpNet>,
    needed: Ports,
}

pub(super) type ReplyKey = (String, bool, u32, String, u8);

/// Checks the reply of one service through one NACL direction; records what it drops.
#[allow(clippy::too_many_arguments)]
pub(super) fn check_reply(
    groups: &mut BTreeMap<ReplyKey, ReplyGroup>,
    acl: &NetworkAcl,
    egress: bool,
    proto: u8,
    remote: IpAddr,
    remote_net: IpNet,
    client: &Client,
    service: &(String, Vec<String>),
) {
    let list = entries(acl, egress);
    for &(name, from, to, sev) in &client.ranges {
        let eval = nacl_eval(list, proto, remote, &[(from, to)]);
        let dropped: Vec<&(Ports, Option<usize>)> = eval
            .iter()
            .filter(|(_, i)| i.is_none_or(|i| list[i].action == RuleAction::Deny))
            .collect();
        if dropped.is_empty() {
            continue;
        }
        // The allow entry that lets part of the range through, if any: the one to widen.
        let anchor = eval
            .iter()
            .filter_map(|(_, i)| *i)
            .find(|&i| list[i].action == RuleAction::Allow && list[i].rule_number < 32767);
        let anchor_num = anchor.map_or(0, |i| list[i].rule_number);
        let key = (
            acl.id.clone(),
            egress,
            anchor_num,
            client.key.clone(),
            proto,
        );
        let g = groups.entry(key).or_default();
        g.severity = g.severity.max(Some(sev));
        g.acl = acl.id.clone();
        g.egress = egress;
        g.client = client.who.clone();
        g.nets.insert(remote_net);
        g.needed = union(&g.needed, &[(from, to)]);
        if let Some(i) = anchor {
            g.origin = entry_origin(acl, &list[i]);
            g.rule = Some(nacl_rule_text(&list[i], egress));
            g.anchor = Some(list[i].clone());
        } else {
            // The first entry that drops: an explicit deny, or the NACL itself.
            let first = dropped.iter().find_map(|(_, i)| *i);
            g.origin = match first {
                Some(i) => entry_origin(acl, &list[i]),
                None => acl.origin.clone(),
            };
            if let Some(i) = first.filter(|&i| list[i].rule_number < 32767) {
                g.rule = Some(nacl_rule_text(&list[i], egress));
            }
        }
        let lost: Ports = dropped
            .iter()
            .fold(Vec::new(), |acc, (p, _)| union(&acc, p));
        let label = format!("{name} uses {from}-{to}");
        match g.lost.iter_mut().find(|(n, _)| *n == label) {
            Some((_, p)) => *p = union(p, &lost),
            None => g.lost.push((label, lost)),
        }
        for (_, i) in dropped {
            g.droppers.insert(match i {
                Some(i) if list[*i].rule_number >= 32767 => {
                    format!("rule {} (* deny)", list[*i].rule_number)
                }
                Some(i) => format!("deny rule {}", list[*i].rule_number),
                None => "no rule (denied)".to_string(),
            });
        }
        g.services
            .entry(service.0.clone())
            .or_default()
            .extend(service.1.iter().cloned());
    }
}

pub(super) fn proto_name(p: u8) -> &'static str {
    if p == PROTO_TCP {
        "tcp"
    } else {
        "udp"
    }
}

pub(super) fn protos_of(r: &SecurityGroupRule) -> Vec<u8> {
    match r.protocol {
        Protocol::All => vec![PROTO_TCP, PROTO_UDP],
        Protocol::Number(n) if n == PROTO_TCP || n == PROTO_UDP => vec![n],
        _ => vec![],
    }
}

pub(super) fn rule_nets(vpc: &Vpc, peer: &SgPeer) -> Vec<IpNet> {
    match peer {
        SgPeer::Cidr(c) => vec![*c],
        SgPeer::PrefixList(id) => vpc
            .prefix_lists
            .iter()
            .find(|p| &p.id == id)
            .map(|p| p.entries.clone())
            .unwrap_or_default(),
        SgPeer::SecurityGroup(_) => vec![],
    }
}

pub(super) fn subnet_acl<'a>(vpc: &'a Vpc, e: &NetworkInterface) -> Option<&'a NetworkAcl> {
    vpc.subnet(&e.subnet_id)
        .and_then(|s| s.network_acl_id.as_deref())
        .and_then(|id| vpc.network_acl(id))
}

/// The address of `e` of the family of `like`: the primary IPv4 or the first IPv6.
pub(super) fn addr_like(e: &NetworkInterface, v6: bool) -> Option<IpAddr> {
    if v6 {
        e.ipv6.first().map(|a| IpAddr::V6(*a))
    } else {
        e.primary_ipv4().map(IpAddr::V4)
    }
}

pub(super) fn replies(vpc: &Vpc, out: &mut Vec<Finding>) {
    let mut groups: BTreeMap<ReplyKey, ReplyGroup> = BTreeMap::new();
    for v6 in [false, true] {
        let all = classes(vpc, v6);
        let clients: Vec<Client> = all
            .iter()
            .enumerate()
            .map(|(i, c)| class_client(vpc, c, i))
            .collect();
        let scan = ReplyScan {
            vpc,
            v6,
            all: &all,
            clients: &clients,
        };
        for si in 0..all.len() {
            scan.server(si, &mut groups);
        }
    }
    for ((_, _, _, _, proto), g) in groups {
        out.push(reply_finding(proto, g));
    }
}

/// The classes of one address family, and each one as a client.
pub(super) struct ReplyScan<'s, 'v> {
    vpc: &'v Vpc,
    v6: bool,
    all: &'s [Class<'v>],
    clients: &'s [Client],
}

impl ReplyScan<'_, '_> {
    /// Every service of class `si`: its SG ingress rules, for clients in the VPC and on
    /// the internet; its SG egress rules, where it is the client of the internet.
    fn server(&self, si: usize, groups: &mut BTreeMap<ReplyKey, ReplyGroup>) {
        let server = &self.all[si];
        if server.rep.has_no_security_group() {
            return;
        }
        let targets = ids_text(&server.members);
        for g in &server.groups {
            for r in &g.ingress {
                for proto in protos_of(r) {
                    self.vpc_clients(si, r, proto, &targets, groups);
                    if server.public {
                        self.internet_clients(si, r, proto, &targets, groups);
                    }
                }
            }
        }
        for g in &server.groups {
            for r in &g.egress {
                for proto in protos_of(r) {
                    self.internet_servers(si, r, proto, groups);
                }
            }
        }
    }

    /// Clients inside the VPC, in other subnets, that ingress rule `r` of server `si`
    /// lets in: the reply leaves through the server's NACL and enters the client's.
    fn vpc_clients(
        &self,
        si: usize,
        r: &SecurityGroupRule,
        proto: u8,
        targets: &[String],
        groups: &mut BTreeMap<ReplyKey, ReplyGroup>,
    ) {
        let (vpc, server) = (self.vpc, &self.all[si]);
        let s_acl = server.acl;
        let rule_ports = spec_ports(r.ports);
        for (ci, client) in self.all.iter().enumerate() {
            if ci == si || client.rep.subnet_id == server.rep.subnet_id {
                continue;
            }
            if client.rep.has_no_security_group() && eni_kind(client.rep).is_none() {
                continue;
            }
            let (c_addr, s_addr) = (client.addr, server.addr);
            if !peer_matches(vpc, &r.peer, c_addr, Some(client.rep)) {
                continue;
            }
            let mut ports = rule_ports.clone();
            if !client.rep.has_no_security_group() {
                ports = intersect(
                    &ports,
                    &sg_ports(vpc, &client.groups, false, proto, s_addr, Some(server.rep)),
                );
            }
            ports = nacl_allowed(&client.acl.outbound, proto, s_addr, &ports);
            ports = nacl_allowed(&s_acl.inbound, proto, c_addr, &ports);
            if ports.is_empty() {
                continue;
            }
            let service = (
                format!("{} {}", proto_name(proto), ports_text(&ports)),
                targets.to_vec(),
            );
            let c = &self.clients[ci];
            check_reply(groups, s_acl, true, proto, c_addr, c.net, c, &service);
            let s_net = self.clients[si].net;
            check_reply(groups, client.acl, false, proto, s_addr, s_net, c, &service);
        }
    }

    /// Clients on the internet that ingress rule `r` of server `si` (which has a
    /// public address) lets in: the reply leaves through the server's NACL.
    fn internet_clients(
        &self,
        si: usize,
        r: &SecurityGroupRule,
        proto: u8,
        targets: &[String],
        groups: &mut BTreeMap<ReplyKey, ReplyGroup>,
    ) {
        let (vpc, s_acl) = (self.vpc, self.all[si].acl);
        let rule_ports = spec_ports(r.ports);
        for net in rule_nets(vpc, &r.peer) {
            if in_vpc(vpc, &net) || family_v6(&net) != self.v6 {
                continue;
            }
            for (net, rep) in outside_reps(vpc, net, &[s_acl]) {
                let ports = nacl_allowed(&s_acl.inbound, proto, rep, &rule_ports);
                if ports.is_empty() {
                    continue;
                }
                let service = (
                    format!("{} {}", proto_name(proto), ports_text(&ports)),
                    targets.to_vec(),
                );
                let c = internet_client(net);
                check_reply(groups, s_acl, true, proto, rep, net, &c, &service);
            }
        }
    }

    /// The servers on the internet that egress rule `r` of class `si` reaches: it is
    /// the client there, and the reply enters through its NACL.
    fn internet_servers(
        &self,
        si: usize,
        r: &SecurityGroupRule,
        proto: u8,
        groups: &mut BTreeMap<ReplyKey, ReplyGroup>,
    ) {
        let (vpc, s_acl) = (self.vpc, self.all[si].acl);
        for net in rule_nets(vpc, &r.peer) {
            if in_vpc(vpc, &net) || family_v6(&net) != self.v6 {
                continue;
            }
            for (net, rep) in outside_reps(vpc, net, &[s_acl]) {
                let ports = nacl_allowed(&s_acl.outbound, proto, rep, &spec_ports(r.ports));
                if ports.is_empty() {
                    continue;
                }
                let service = (
                    format!("{} {}", proto_name(proto), ports_text(&ports)),
                    vec![format!("the internet ({net})")],
                );
                let c = &self.clients[si];
                check_reply(groups, s_acl, false, proto, rep, net, c, &service);
            }
        }
    }
}

/// The finding of one group of dropped replies: what drops them, for which services,
/// and the rule to widen or add.
pub(super) fn reply_finding(proto: u8, g: ReplyGroup) -> Finding {
    let dir = dir_name(g.egress);
    let uses: Vec<String> = g
        .lost
        .iter()
        .map(|(name, _)| name.clone())
        .collect::<Vec<_>>();
    let lost_all = g.lost.iter().fold(Vec::new(), |acc, (_, p)| union(&acc, p));
    let (resource, allows) = match &g.anchor {
        Some(a) => (
            format!("{} {dir} rule {}", g.acl, a.rule_number),
            format!(
                "allows only {} {} there (rule {})",
                proto_label(a.protocol),
                a.ports,
                a.rule_number
            ),
        ),
        None => (
            format!("{} {dir}", g.acl),
            "allows none of them".to_string(),
        ),
    };
    let message = format!(
        "replies to {} {} network ACL {} {dir}, which {allows}. Ephemeral ports: {}; replies to {} fall to {}, so some connections hang: {}.",
        g.client,
        if g.egress { "leave through" } else { "enter through" },
        g.acl,
        uses.join(", "),
        ports_text(&lost_all),
        g.droppers.iter().cloned().collect::<Vec<_>>().join(", "),
        reply_services_text(&g),
    );
    let fix = reply_fix(proto, &g);
    Finding {
        code: "nacl-reply-dropped",
        severity: g.severity.unwrap_or(Severity::Warning),
        resource,
        rule: g.rule,
        message,
        fix,
        origin: g.origin,
    }
}

/// `tcp 8080 to eni-a, eni-b; …`: at most three services, five servers each.
pub(super) fn reply_services_text(g: &ReplyGroup) -> String {
    let services: Vec<String> = g
        .services
        .iter()
        .map(|(what, to)| {
            let to: Vec<&str> = to.iter().map(|s| s.as_str()).collect();
            if to.len() > 5 {
                format!("{what} to {} and {} more", to[..5].join(", "), to.len() - 5)
            } else {
                format!("{what} to {}", to.join(", "))
            }
        })
        .collect();
    if services.len() > 3 {
        format!(
            "{}; and {} more service(s)",
            services[..3].join("; "),
            services.len() - 3
        )
    } else {
        services.join("; ")
    }
}

/// Widen the allow entry that lets part of the range through, or add one for the
/// ports needed from (or to) the far ends.
pub(super) fn reply_fix(proto: u8, g: &ReplyGroup) -> String {
    let dir = dir_name(g.egress);
    if let Some(a) = &g.anchor {
        let mut widened = union(&spec_ports(a.ports), &g.needed);
        if widened.len() > 1 {
            widened = vec![(widened[0].0, widened[widened.len() - 1].1)];
        }
        return format!(
            "widen {dir} rule {} of {} to ports {} ({} {})",
            a.rule_number,
            g.acl,
            ports_text(&widened),
            proto_name(proto),
            a.cidr
        );
    }
    let need = match g.needed.as_slice() {
        [(f, t)] => format!("{f}-{t}"),
        other => ports_text(other),
    };
    let nets: Vec<String> = g.nets.iter().map(|n| n.to_string()).collect();
    let net = match nets.len() {
        0 | 1 => nets.join(""),
        n if n > 4 => format!(
            "each of {} and {} more (one rule each, or one CIDR that holds them)",
            nets[..4].join(", "),
            n - 4
        ),
        _ => format!(
            "each of {} (one rule each, or one CIDR that holds them)",
            nets.join(", ")
        ),
    };
    format!(
        "add an {dir} allow rule to {}, {} ports {need} {} {net}, numbered before the rules that drop the replies",
        g.acl,
        proto_name(proto),
        if g.egress { "to" } else { "from" }
    )
}
