//! The project's ruleset TOML (format in the [module docs](super)): a hand-written file,
//! so every table refuses keys it does not know, naming the valid ones. Messages use the
//! file's words (`rule`, not AWS's `RuleNumber`).
//!
//! An ENI's keys beyond the basics: `interface_type` (`interface` by default,
//! `nat_gateway`, ...), `elastic_ips = { "10.0.1.11" = "198.51.100.9" }` (a private IPv4
//! of the ENI = its Elastic IP; the primary's is `public_ip`), `ipv4_prefixes` and
//! `ipv6_prefixes` (delegated prefixes, inside the subnet). `security_groups = []` or no
//! `security_groups`: an ENI without security groups (only NACLs filter it).

use super::tree::{Ctx, Node, Obj};
use super::values::{self, is_icmp};
use super::{Claim, Parts};
use crate::model::{
    ConntrackOverrides, NetworkAcl, NetworkAclEntry, NetworkInterface, PortSpec, PrefixList,
    Protocol, SecurityGroup, SecurityGroupRule, SgPeer, Subnet,
};

const TOP: &[&str] = &[
    "vpc",
    "conntrack",
    "prefix_lists",
    "subnets",
    "network_acls",
    "security_groups",
    "network_interfaces",
];
const VPC: &[&str] = &["id", "account_id", "region", "cidrs"];
const CONNTRACK: &[&str] = &[
    "tcp_established",
    "tcp_unestablished",
    "tcp_closing",
    "udp",
    "udp_stream",
    "icmp",
    "other",
];
const PREFIX_LIST: &[&str] = &["id", "name", "entries"];
const SUBNET: &[&str] = &[
    "id",
    "cidr",
    "ipv6_cidr",
    "availability_zone",
    "availability_zone_id",
    "network_acl",
];
const NACL: &[&str] = &["id", "default", "inbound", "outbound"];
const NACL_ENTRY: &[&str] = &[
    "rule",
    "protocol",
    "ports",
    "icmp_type",
    "icmp_code",
    "cidr",
    "action",
];
const SG: &[&str] = &["id", "name", "description", "ingress", "egress"];
const SG_RULE: &[&str] = &[
    "protocol",
    "ports",
    "icmp_type",
    "icmp_code",
    "cidr",
    "security_group",
    "prefix_list",
    "description",
];
const ENI: &[&str] = &[
    "id",
    "subnet",
    "private_ips",
    "ipv6",
    "public_ip",
    "security_groups",
    "instance_id",
    "owner_id",
    "description",
    "max_tracked_connections",
    "conntrack",
    "interface_type",
    "elastic_ips",
    "ipv4_prefixes",
    "ipv6_prefixes",
];

pub(crate) fn read(ctx: &mut Ctx, root: &Node, parts: &mut Parts) {
    let Some(top) = ctx.as_obj(root, "") else {
        return;
    };
    top.deny_unknown(ctx, TOP);
    if let Some(v) = top.obj(ctx, "vpc") {
        vpc(ctx, &v, parts);
    }
    if let Some(c) = top.obj(ctx, "conntrack") {
        let ct = conntrack(ctx, &c);
        let origin = ctx.origin(c.pos);
        match &parts.conntrack {
            Some((prev, at)) if *prev != ct => ctx.error(
                c.pos,
                "conntrack",
                format!(
                    "[conntrack] is already set differently at {at}; give the VPC's timeouts once"
                ),
            ),
            _ => parts.conntrack = Some((ct, origin)),
        }
    }
    for (i, n) in top.arr(ctx, "prefix_lists").iter().enumerate() {
        if let Some(o) = ctx.as_obj(n, format!("prefix_lists[{i}]")) {
            prefix_list(ctx, &o, parts);
        }
    }
    for (i, n) in top.arr(ctx, "subnets").iter().enumerate() {
        if let Some(o) = ctx.as_obj(n, format!("subnets[{i}]")) {
            subnet(ctx, &o, parts);
        }
    }
    for (i, n) in top.arr(ctx, "network_acls").iter().enumerate() {
        if let Some(o) = ctx.as_obj(n, format!("network_acls[{i}]")) {
            network_acl(ctx, &o, parts);
        }
    }
    for (i, n) in top.arr(ctx, "security_groups").iter().enumerate() {
        if let Some(o) = ctx.as_obj(n, format!("security_groups[{i}]")) {
            security_group(ctx, &o, parts);
        }
    }
    for (i, n) in top.arr(ctx, "network_interfaces").iter().enumerate() {
        if let Some(o) = ctx.as_obj(n, format!("network_interfaces[{i}]")) {
            network_interface(ctx, &o, parts);
        }
    }
}

fn claim(ctx: &Ctx, obj: &Obj, key: &str, value: &str, node: &Node) -> Claim {
    Claim {
        value: value.to_string(),
        origin: ctx.origin(node.pos),
        field: obj.field(key),
        declared: true,
    }
}

fn vpc(ctx: &mut Ctx, v: &Obj, parts: &mut Parts) {
    v.deny_unknown(ctx, VPC);
    parts.vpc_origin.get_or_insert_with(|| ctx.origin(v.pos));
    if let Some((id, n)) = v.req_str(ctx, "id") {
        parts.vpc_ids.push(claim(ctx, v, "id", id, n));
    }
    if let Some((acct, n)) = v.opt_str(ctx, "account_id") {
        if acct.len() == 12 && acct.bytes().all(|b| b.is_ascii_digit()) {
            parts.accounts.push(claim(ctx, v, "account_id", acct, n));
        } else {
            ctx.error(
                n.pos,
                v.field("account_id"),
                format!("account id {acct:?}: expected 12 digits"),
            );
        }
    }
    if let Some((region, n)) = v.opt_str(ctx, "region") {
        parts.regions.push(claim(ctx, v, "region", region, n));
    }
    for (i, n) in v.arr(ctx, "cidrs").iter().enumerate() {
        if let Some(c) = values::cidr(ctx, n, &format!("{}[{i}]", v.field("cidrs"))) {
            parts.cidrs.push(c);
        }
    }
}

/// `[conntrack]` and an ENI's `conntrack`: idle timeouts in seconds, each optional.
fn conntrack(ctx: &mut Ctx, c: &Obj) -> ConntrackOverrides {
    c.deny_unknown(ctx, CONNTRACK);
    let mut get = |key: &str| {
        let n = c.opt(key)?;
        ctx.as_int_in(n, &c.field(key), "timeout", 1, u32::MAX as i64)
            .map(|v| v as u32)
    };
    ConntrackOverrides {
        tcp_established: get("tcp_established"),
        tcp_unestablished: get("tcp_unestablished"),
        tcp_closing: get("tcp_closing"),
        udp: get("udp"),
        udp_stream: get("udp_stream"),
        icmp: get("icmp"),
        other: get("other"),
    }
}

fn prefix_list(ctx: &mut Ctx, o: &Obj, parts: &mut Parts) {
    o.deny_unknown(ctx, PREFIX_LIST);
    let id = o
        .req_str(ctx, "id")
        .map(|(s, _)| s.to_string())
        .unwrap_or_default();
    let name = o.str_or_empty(ctx, "name");
    let mut entries = Vec::new();
    for (i, n) in o.arr(ctx, "entries").iter().enumerate() {
        if let Some(c) = values::cidr(ctx, n, &format!("{}[{i}]", o.field("entries"))) {
            entries.push(c);
        }
    }
    parts.prefix_lists.push(PrefixList {
        id,
        name,
        entries,
        origin: ctx.origin(o.pos),
    });
}

fn subnet(ctx: &mut Ctx, o: &Obj, parts: &mut Parts) {
    o.deny_unknown(ctx, SUBNET);
    let id = o
        .req_str(ctx, "id")
        .map(|(s, _)| s.to_string())
        .unwrap_or_default();
    let mut s = Subnet {
        id,
        ipv4_cidr: None,
        ipv6_cidrs: Vec::new(),
        availability_zone: String::new(),
        availability_zone_id: o.str_or_empty(ctx, "availability_zone_id"),
        network_acl_id: o.opt_str(ctx, "network_acl").map(|(s, _)| s.to_string()),
        origin: ctx.origin(o.pos),
    };
    if let Some(n) = o.opt("cidr") {
        s.ipv4_cidr = values::cidr_v4(ctx, n, &o.field("cidr"), "put it in `ipv6_cidr`");
    }
    if let Some(n) = o.opt("ipv6_cidr") {
        let field = o.field("ipv6_cidr");
        for (_, node) in ctx.as_strs(n, &field) {
            if let Some(c) = values::cidr_v6(ctx, node, &field, "put it in `cidr`") {
                s.ipv6_cidrs.push(c);
            }
        }
    }
    if o.opt("cidr").is_none() && o.opt("ipv6_cidr").is_none() {
        ctx.error(
            o.pos,
            o.field("cidr"),
            "a subnet needs `cidr` (IPv4) or `ipv6_cidr` (IPv6-only subnet), or both",
        );
    }
    if let Some((az, n)) = o.opt_str(ctx, "availability_zone") {
        s.availability_zone = az.to_string();
        parts.zones.push(Claim {
            value: az.to_string(),
            origin: ctx.origin(n.pos),
            field: o.field("availability_zone"),
            declared: false,
        });
    }
    parts.subnets.push(s);
}

/// `ports`, `icmp_type`, `icmp_code` of a rule, checked against its protocol.
fn rule_ports(ctx: &mut Ctx, o: &Obj, protocol: Protocol) -> Option<PortSpec> {
    let ports = o.opt("ports");
    let (t, c) = (o.opt("icmp_type"), o.opt("icmp_code"));
    if protocol.has_ports() {
        if let Some(n) = t.or(c) {
            ctx.error(
                n.pos,
                o.field("icmp_type"),
                "icmp_type and icmp_code apply to icmp and icmpv6 only",
            );
        }
        let Some(n) = ports else {
            ctx.error(
                o.pos,
                o.field("ports"),
                "tcp and udp rules need `ports`: \"443\", \"1024-65535\" or \"all\"",
            );
            return None;
        };
        let (from, to) = values::ports(ctx, n, &o.field("ports"))?;
        Some(PortSpec::Range { from, to })
    } else if is_icmp(protocol) {
        if let Some(n) = ports {
            ctx.error(
                n.pos,
                o.field("ports"),
                "icmp and icmpv6 rules take `icmp_type` and `icmp_code`, not `ports`",
            );
        }
        let icmp_type = match t {
            Some(n) => values::icmp_value(ctx, n, &o.field("icmp_type"), "ICMP type")?,
            None => None,
        };
        let code = match c {
            Some(n) => values::icmp_value(ctx, n, &o.field("icmp_code"), "ICMP code")?,
            None => None,
        };
        values::icmp_spec(
            ctx,
            c.map_or(o.pos, |n| n.pos),
            &o.field("icmp_code"),
            icmp_type,
            code,
        )
    } else {
        if let Some(n) = t.or(c) {
            ctx.error(
                n.pos,
                o.field("icmp_type"),
                "icmp_type and icmp_code apply to icmp and icmpv6 only",
            );
        }
        if let Some(n) = ports {
            if matches!(values::ports(ctx, n, &o.field("ports")), Some(r) if r != (0, 65535)) {
                ctx.error(
                    n.pos,
                    o.field("ports"),
                    format!("protocol {protocol} has no ports: the rule matches every port; remove `ports`"),
                );
            }
        }
        Some(PortSpec::Any)
    }
}

fn network_acl(ctx: &mut Ctx, o: &Obj, parts: &mut Parts) {
    o.deny_unknown(ctx, NACL);
    let id = o
        .req_str(ctx, "id")
        .map(|(s, _)| s.to_string())
        .unwrap_or_default();
    let mut acl = NetworkAcl::new(&id);
    acl.origin = ctx.origin(o.pos);
    acl.is_default = o.opt_bool(ctx, "default").unwrap_or(false);
    for dir in ["inbound", "outbound"] {
        let mut list = Vec::new();
        for (i, n) in o.arr(ctx, dir).iter().enumerate() {
            let Some(e) = ctx.as_obj(n, format!("{}[{i}]", o.field(dir))) else {
                continue;
            };
            if let Some(entry) = nacl_entry(ctx, &e) {
                list.push(entry);
            }
        }
        if dir == "inbound" {
            acl.inbound = list;
        } else {
            acl.outbound = list;
        }
    }
    parts.network_acls.push(acl);
}

fn nacl_entry(ctx: &mut Ctx, e: &Obj) -> Option<NetworkAclEntry> {
    e.deny_unknown(ctx, NACL_ENTRY);
    let rule = e
        .req(ctx, "rule")
        .and_then(|n| ctx.as_int_in(n, &e.field("rule"), "rule", 1, 32766));
    let protocol = e
        .req(ctx, "protocol")
        .and_then(|n| values::protocol(ctx, n, &e.field("protocol")));
    let ports = protocol.and_then(|p| rule_ports(ctx, e, p));
    let cidr = e
        .req(ctx, "cidr")
        .and_then(|n| values::cidr(ctx, n, &e.field("cidr")));
    let action = e
        .req(ctx, "action")
        .and_then(|n| values::action(ctx, n, &e.field("action")));
    Some(NetworkAclEntry {
        rule_number: rule? as u32,
        protocol: protocol?,
        cidr: cidr?,
        ports: ports?,
        action: action?,
        origin: ctx.origin(e.pos),
    })
}

fn security_group(ctx: &mut Ctx, o: &Obj, parts: &mut Parts) {
    o.deny_unknown(ctx, SG);
    let id = o
        .req_str(ctx, "id")
        .map(|(s, _)| s.to_string())
        .unwrap_or_default();
    let mut g = SecurityGroup::new(&id);
    g.origin = ctx.origin(o.pos);
    g.name = o.str_or_empty(ctx, "name");
    g.description = o.str_or_empty(ctx, "description");
    for dir in ["ingress", "egress"] {
        let mut list = Vec::new();
        for (i, n) in o.arr(ctx, dir).iter().enumerate() {
            let Some(r) = ctx.as_obj(n, format!("{}[{i}]", o.field(dir))) else {
                continue;
            };
            if let Some(rule) = sg_rule(ctx, &r) {
                list.push(rule);
            }
        }
        if dir == "ingress" {
            g.ingress = list;
        } else {
            g.egress = list;
        }
    }
    parts.security_groups.push(g);
}

fn sg_rule(ctx: &mut Ctx, r: &Obj) -> Option<SecurityGroupRule> {
    r.deny_unknown(ctx, SG_RULE);
    let protocol = r
        .req(ctx, "protocol")
        .and_then(|n| values::protocol(ctx, n, &r.field("protocol")));
    let ports = protocol.and_then(|p| rule_ports(ctx, r, p));
    let given: Vec<&str> = ["cidr", "security_group", "prefix_list"]
        .into_iter()
        .filter(|k| r.opt(k).is_some())
        .collect();
    let peer = match given.as_slice() {
        ["cidr"] => values::cidr(ctx, r.opt("cidr")?, &r.field("cidr")).map(SgPeer::Cidr),
        ["security_group"] => r
            .opt_str(ctx, "security_group")
            .map(|(s, _)| SgPeer::SecurityGroup(s.into())),
        ["prefix_list"] => r
            .opt_str(ctx, "prefix_list")
            .map(|(s, _)| SgPeer::PrefixList(s.into())),
        [] => {
            ctx.error(
                r.pos,
                r.path.clone(),
                "a rule needs one peer: `cidr`, `security_group` or `prefix_list`",
            );
            None
        }
        _ => {
            let n = r.opt(given[1])?;
            ctx.error(
                n.pos,
                r.field(given[1]),
                format!("a rule has exactly one peer, and `{}` is already given; write one rule per peer", given[0]),
            );
            None
        }
    };
    let description = r.opt_str(ctx, "description").map(|(s, _)| s.to_string());
    Some(SecurityGroupRule {
        protocol: protocol?,
        ports: ports?,
        peer: peer?,
        description,
        origin: ctx.origin(r.pos),
    })
}

fn network_interface(ctx: &mut Ctx, o: &Obj, parts: &mut Parts) {
    o.deny_unknown(ctx, ENI);
    let id = o
        .req_str(ctx, "id")
        .map(|(s, _)| s.to_string())
        .unwrap_or_default();
    let subnet = o
        .req_str(ctx, "subnet")
        .map(|(s, _)| s.to_string())
        .unwrap_or_default();
    let mut private_ipv4 = Vec::new();
    for (i, n) in o.arr(ctx, "private_ips").iter().enumerate() {
        let field = format!("{}[{i}]", o.field("private_ips"));
        if let Some(a) = values::ipv4(ctx, n, &field, "put IPv6 addresses in `ipv6`") {
            private_ipv4.push(a);
        }
    }
    let mut ipv6 = Vec::new();
    for (i, n) in o.arr(ctx, "ipv6").iter().enumerate() {
        let field = format!("{}[{i}]", o.field("ipv6"));
        if let Some(a) = values::ipv6(ctx, n, &field, "put IPv4 addresses in `private_ips`") {
            ipv6.push(a);
        }
    }
    let public_ipv4 = o.opt("public_ip").and_then(|n| {
        values::ipv4(
            ctx,
            n,
            &o.field("public_ip"),
            "public IPv6 addresses are the `ipv6` ones",
        )
    });
    let mut public_ipv4 = public_ipv4;
    let secondary_public_ipv4 = elastic_ips(ctx, o, &private_ipv4, &mut public_ipv4);
    let (ipv4_prefixes, ipv6_prefixes) = prefixes(ctx, o);
    let interface_type = o
        .opt_str(ctx, "interface_type")
        .map_or("interface".to_string(), |(s, _)| s.to_string());
    let max_tracked_connections = o
        .opt("max_tracked_connections")
        .and_then(|n| {
            ctx.as_int_in(
                n,
                &o.field("max_tracked_connections"),
                "limit",
                1,
                u32::MAX as i64,
            )
        })
        .map(|v| v as u32);
    let conntrack = o
        .obj(ctx, "conntrack")
        .map(|c| conntrack(ctx, &c))
        .unwrap_or_default();
    parts.network_interfaces.push(NetworkInterface {
        id,
        subnet_id: subnet,
        private_ipv4,
        ipv6,
        public_ipv4,
        secondary_public_ipv4,
        ipv4_prefixes,
        ipv6_prefixes,
        interface_type,
        security_groups: values::ids(ctx, o, "security_groups"),
        instance_id: o.opt_str(ctx, "instance_id").map(|(s, _)| s.to_string()),
        owner_id: o.str_or_empty(ctx, "owner_id"),
        description: o.str_or_empty(ctx, "description"),
        conntrack,
        max_tracked_connections,
        origin: ctx.origin(o.pos),
    });
}

/// `elastic_ips = { "10.0.1.11" = "198.51.100.9" }`: private address → public one. The
/// primary address's becomes `public_ipv4` (unless `public_ip` already says another);
/// the others are returned as (public, private).
fn elastic_ips(
    ctx: &mut Ctx,
    o: &Obj,
    private_ipv4: &[std::net::Ipv4Addr],
    public_ipv4: &mut Option<std::net::Ipv4Addr>,
) -> Vec<(std::net::Ipv4Addr, std::net::Ipv4Addr)> {
    let mut secondary_public_ipv4 = Vec::new();
    let Some(t) = o.obj(ctx, "elastic_ips") else {
        return secondary_public_ipv4;
    };
    for e in t.entries {
        let field = t.field(&e.key);
        let private = match e.key.trim().parse::<std::net::Ipv4Addr>() {
            Ok(a) => Some(a),
            Err(_) => {
                ctx.error(
                    e.key_pos,
                    field.clone(),
                    format!(
                        "{:?} is not a private IPv4 address: write `elastic_ips = {{ \"10.0.1.11\" = \"198.51.100.9\" }}` (private = public)",
                        e.key
                    ),
                );
                None
            }
        };
        let public = values::ipv4(ctx, &e.node, &field, "Elastic IPs are IPv4");
        let (Some(private), Some(public)) = (private, public) else {
            continue;
        };
        if private_ipv4.first() == Some(&private) {
            match *public_ipv4 {
                Some(p) if p != public => ctx.error(
                    e.node.pos,
                    field,
                    format!("{private} is the primary address, whose public address is already `public_ip` = {p}"),
                ),
                _ => *public_ipv4 = Some(public),
            }
        } else {
            secondary_public_ipv4.push((public, private));
        }
    }
    secondary_public_ipv4
}

/// `ipv4_prefixes` and `ipv6_prefixes`: the prefixes delegated to the ENI.
fn prefixes(ctx: &mut Ctx, o: &Obj) -> (Vec<ipnet::Ipv4Net>, Vec<ipnet::Ipv6Net>) {
    let mut ipv4_prefixes = Vec::new();
    for (i, n) in o.arr(ctx, "ipv4_prefixes").iter().enumerate() {
        let field = format!("{}[{i}]", o.field("ipv4_prefixes"));
        ipv4_prefixes.extend(values::cidr_v4(ctx, n, &field, "put it in `ipv6_prefixes`"));
    }
    let mut ipv6_prefixes = Vec::new();
    for (i, n) in o.arr(ctx, "ipv6_prefixes").iter().enumerate() {
        let field = format!("{}[{i}]", o.field("ipv6_prefixes"));
        ipv6_prefixes.extend(values::cidr_v6(ctx, n, &field, "put it in `ipv4_prefixes`"));
    }
    (ipv4_prefixes, ipv6_prefixes)
}
