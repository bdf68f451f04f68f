//! The JSON that `aws ec2 describe-*` prints (shapes in aws-semantics §1.9, §3.5, §8),
//! mapped onto the model. Real accounts print many more fields than vpcgate needs:
//! unknown fields are ignored; a missing required one is an error naming the object.

use super::tree::{Ctx, Entry, Node, Obj, Val};
use super::values::{self, is_icmp};
use super::{Claim, FieldAt, LooseRule, Parts};
use crate::model::{
    ConntrackOverrides, NetworkAcl, NetworkAclEntry, NetworkInterface, Origin, PortSpec,
    PrefixList, Protocol, SecurityGroup, SecurityGroupRule, SgPeer, Subnet,
};
use ipnet::IpNet;

/// The top-level keys vpcgate reads, and the command that prints each.
const KINDS: &[(&str, &str)] = &[
    ("Vpcs", "describe-vpcs"),
    ("Subnets", "describe-subnets"),
    ("NetworkAcls", "describe-network-acls"),
    ("SecurityGroups", "describe-security-groups"),
    ("SecurityGroupRules", "describe-security-group-rules"),
    ("NetworkInterfaces", "describe-network-interfaces"),
    (
        "PrefixLists",
        "describe-managed-prefix-lists or describe-prefix-lists",
    ),
    ("Entries", "get-managed-prefix-list-entries"),
];

/// Top-level keys of other `aws` commands' output: skipped with a warning naming the
/// command. (`Reservations` of describe-instances is read for its ENIs.)
const OTHERS: &[(&str, &str, &str)] = &[
    (
        "RouteTables",
        "aws ec2 describe-route-tables",
        "routing is not emulated",
    ),
    (
        "InternetGateways",
        "aws ec2 describe-internet-gateways",
        "routing is not emulated",
    ),
    (
        "EgressOnlyInternetGateways",
        "aws ec2 describe-egress-only-internet-gateways",
        "routing is not emulated",
    ),
    (
        "NatGateways",
        "aws ec2 describe-nat-gateways",
        "a NAT gateway's ENI comes from describe-network-interfaces",
    ),
    (
        "TransitGateways",
        "aws ec2 describe-transit-gateways",
        "routing is not emulated",
    ),
    (
        "TransitGatewayAttachments",
        "aws ec2 describe-transit-gateway-attachments",
        "routing is not emulated",
    ),
    (
        "VpcEndpoints",
        "aws ec2 describe-vpc-endpoints",
        "an endpoint's ENIs come from describe-network-interfaces",
    ),
    (
        "VpcPeeringConnections",
        "aws ec2 describe-vpc-peering-connections",
        "peering is not emulated",
    ),
    (
        "Addresses",
        "aws ec2 describe-addresses",
        "Elastic IPs come from describe-network-interfaces",
    ),
    (
        "FlowLogs",
        "aws ec2 describe-flow-logs",
        "name the log format with --log-format",
    ),
    (
        "DhcpOptions",
        "aws ec2 describe-dhcp-options",
        "DHCP is exempt",
    ),
    (
        "AvailabilityZones",
        "aws ec2 describe-availability-zones",
        "zones come from describe-subnets",
    ),
    (
        "Instances",
        "aws ec2 run-instances",
        "use describe-instances or describe-network-interfaces",
    ),
    ("Subnet", "aws ec2 create-subnet", "use describe-subnets"),
    ("Vpc", "aws ec2 create-vpc", "use describe-vpcs"),
    (
        "NetworkAcl",
        "aws ec2 create-network-acl",
        "use describe-network-acls",
    ),
    (
        "NetworkInterface",
        "aws ec2 create-network-interface",
        "use describe-network-interfaces",
    ),
    (
        "RouteTable",
        "aws ec2 create-route-table",
        "routing is not emulated",
    ),
    (
        "InternetGateway",
        "aws ec2 create-internet-gateway",
        "routing is not emulated",
    ),
    (
        "NatGateway",
        "aws ec2 create-nat-gateway",
        "use describe-network-interfaces",
    ),
    (
        "SecurityGroupArn",
        "aws ec2 create-security-group",
        "use describe-security-groups",
    ),
    (
        "Tags",
        "aws ec2 describe-tags",
        "tags do not change verdicts",
    ),
    (
        "RevokedSecurityGroupRules",
        "aws ec2 revoke-security-group-ingress/-egress",
        "export describe-security-groups after the change",
    ),
    (
        "UnknownIpPermissions",
        "aws ec2 revoke-security-group-ingress/-egress",
        "export describe-security-groups after the change",
    ),
    (
        "LoadBalancers",
        "aws elbv2 describe-load-balancers",
        "a load balancer's ENIs come from describe-network-interfaces",
    ),
];

pub(crate) fn read(ctx: &mut Ctx, root: &Node, parts: &mut Parts) {
    if let super::tree::Val::Arr(_) = root.val {
        ctx.error(
            root.pos,
            "",
            "the document is a JSON array, not an object: this looks like `--query` output; \
             export the whole response (run the command without `--query`)",
        );
        return;
    }
    let Some(top) = ctx.as_obj(root, "") else {
        return;
    };
    let readable = |k: &str| KINDS.iter().any(|(kind, _)| *kind == k) || k == "Reservations";
    // Another command's output: its other keys are part of it, not unknown.
    let other = top
        .entries
        .iter()
        .any(|e| OTHERS.iter().any(|(k, _, _)| *k == e.key));
    let only_other = other && !top.entries.iter().any(|e| readable(&e.key));
    let (mut kinds, mut unknown) = (0, 0);
    for e in top.entries {
        match top_level_key(ctx, &top, e, parts, other, only_other) {
            TopKey::Counted => kinds += 1,
            TopKey::Unknown => unknown += 1,
            TopKey::Skipped => {}
        }
    }
    if kinds == 0 && unknown == 0 {
        ctx.error(
            root.pos,
            "",
            format!(
                "nothing to load; expected the output of an `aws ec2` command: {}",
                accepted_kinds()
            ),
        );
    }
}

/// What a top-level key of a response was.
enum TopKey {
    /// Read, or named by a warning: the document was not empty.
    Counted,
    /// Not the output of a command vpcgate knows: an error.
    Unknown,
    /// Part of a response that carries nothing to load (pagination, metadata).
    Skipped,
}

/// `accepted`: the kinds vpcgate reads, for messages.
fn accepted_kinds() -> String {
    KINDS
        .iter()
        .map(|(k, cmd)| format!("`{k}` ({cmd})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads one top-level key: its objects, or a warning (another command's output), or an
/// error (an unknown key). `other`: the document holds another command's output;
/// `only_other`: and nothing vpcgate reads.
fn top_level_key(
    ctx: &mut Ctx,
    top: &Obj,
    e: &Entry,
    parts: &mut Parts,
    other: bool,
    only_other: bool,
) -> TopKey {
    if read_objects(ctx, top, &e.key, &e.node, parts) {
        return TopKey::Counted;
    }
    match e.key.as_str() {
        // Pagination, and what boto3 adds to every response.
        "NextToken" | "ResponseMetadata" => TopKey::Skipped,
        "PrefixListId" if top.get("Entries").is_some() => TopKey::Skipped,
        // authorize-security-group-ingress/egress print `Return` next to the rules.
        "Return" if top.get("SecurityGroupRules").is_some() => TopKey::Skipped,
        // Part of another command's output, named by its own warning.
        "Return" if other => TopKey::Skipped,
        "Return" => {
            ctx.warn(
                e.key_pos,
                "Return",
                "this is the output of a command that changes something (`Return`: true/false), \
                 with nothing to load; skipped",
            );
            TopKey::Counted
        }
        k if OTHERS.iter().any(|(o, _, _)| *o == k) => {
            let (_, cmd, why) = OTHERS.iter().find(|(o, _, _)| *o == k).expect("found");
            ctx.warn(
                e.key_pos,
                k,
                format!(
                    "`{k}` is the output of `{cmd}`, which vpcgate does not read ({why}); skipped"
                ),
            );
            TopKey::Counted
        }
        _ if only_other => TopKey::Skipped,
        unknown => {
            ctx.error(
                e.key_pos,
                unknown,
                format!(
                    "unknown top-level key `{unknown}`: not the output of an `aws ec2` command vpcgate reads; accepted: {}",
                    accepted_kinds()
                ),
            );
            TopKey::Unknown
        }
    }
}

/// Reads the objects under `key` when it is one of the responses vpcgate reads; `false`
/// for any other key.
fn read_objects(ctx: &mut Ctx, top: &Obj, key: &str, node: &Node, parts: &mut Parts) -> bool {
    match key {
        "Vpcs" => each(ctx, node, key, |ctx, o| vpc(ctx, o, parts)),
        "Subnets" => each(ctx, node, key, |ctx, o| subnet(ctx, o, parts)),
        "NetworkAcls" => each(ctx, node, key, |ctx, o| network_acl(ctx, o, parts)),
        "SecurityGroups" => each(ctx, node, key, |ctx, o| security_group(ctx, o, parts)),
        "SecurityGroupRules" => each(ctx, node, key, |ctx, o| sg_rule(ctx, o, parts)),
        "NetworkInterfaces" => each(ctx, node, key, |ctx, o| {
            network_interface(ctx, o, parts, None)
        }),
        "Reservations" => each(ctx, node, key, |ctx, o| reservation(ctx, o, parts)),
        "PrefixLists" => each(ctx, node, key, |ctx, o| prefix_list(ctx, o, parts)),
        "Entries" => prefix_entries(ctx, top, node, parts),
        _ => return false,
    }
    true
}

// ---- describe-instances ---------------------------------------------------------------

/// `Reservations[].Instances[].NetworkInterfaces[]`: ENIs shaped like
/// describe-network-interfaces' (without `AvailabilityZone`; the instance id is the
/// instance's, not the attachment's).
fn reservation(ctx: &mut Ctx, o: Obj, parts: &mut Parts) {
    for inst in objs(ctx, &o, "Instances") {
        let id = inst.opt_str(ctx, "InstanceId").map(|(s, _)| s.to_string());
        let inst = match &id {
            Some(id) => Obj {
                path: format!("{} ({id})", inst.path),
                ..inst
            },
            None => inst,
        };
        for e in objs(ctx, &inst, "NetworkInterfaces") {
            network_interface(ctx, e, parts, Some(id.as_deref().unwrap_or("")));
        }
    }
}

/// Calls `f` on each object of a top-level array, named `Key[i]`.
fn each(ctx: &mut Ctx, node: &Node, key: &str, mut f: impl FnMut(&mut Ctx, Obj)) {
    for (i, n) in ctx.as_arr(node, key).iter().enumerate() {
        if let Some(o) = ctx.as_obj(n, format!("{key}[{i}]")) {
            f(ctx, o);
        }
    }
}

/// The objects of an array field, named `path.Key[i]`.
fn objs<'n>(ctx: &mut Ctx, o: &Obj<'n>, key: &str) -> Vec<Obj<'n>> {
    let mut out = Vec::new();
    for (i, n) in o.arr(ctx, key).iter().enumerate() {
        if let Some(obj) = ctx.as_obj(n, format!("{}[{i}]", o.field(key))) {
            out.push(obj);
        }
    }
    out
}

/// Reads the object's id and names the object with it: `SecurityGroups[1] (sg-0abc)`.
fn with_id<'n>(ctx: &mut Ctx, o: Obj<'n>, key: &str) -> Option<(String, Obj<'n>)> {
    let (id, _) = o.req_str(ctx, key)?;
    let id = id.to_string();
    let path = format!("{} ({id})", o.path);
    Some((id, Obj { path, ..o }))
}

/// Where a duplicate-id error of validation about this object belongs: its id field.
fn id_at(ctx: &Ctx, o: &Obj, key: &str, kind: &str, id: &str, parts: &mut Parts) {
    if let Some(n) = o.opt(key) {
        parts.fields.push(FieldAt {
            object: ctx.origin(o.pos),
            needle: format!("duplicate {kind} id `{id}`"),
            field: o.field(key),
            at: ctx.origin(n.pos),
        });
    }
}

/// With `--vpc`: true (and the object is to be dropped) when the object's `VpcId` names
/// another VPC.
fn in_other_vpc(o: &Obj, parts: &mut Parts) -> bool {
    let (
        Some(want),
        Some(Node {
            val: Val::Str(v), ..
        }),
    ) = (&parts.vpc_filter, o.opt("VpcId"))
    else {
        return false;
    };
    if v == want {
        return false;
    }
    parts.dropped_vpcs.push(v.clone());
    true
}

/// A `VpcId` on an object: all objects must belong to one VPC.
fn vpc_ref(ctx: &mut Ctx, o: &Obj, parts: &mut Parts) -> Option<String> {
    let (v, n) = o.opt_str(ctx, "VpcId")?;
    parts.vpc_ids.push(Claim {
        value: v.into(),
        origin: ctx.origin(n.pos),
        field: o.field("VpcId"),
        declared: false,
    });
    Some(v.to_string())
}

fn owner_ref(ctx: &mut Ctx, o: &Obj, parts: &mut Parts, declared: bool) -> Option<String> {
    let (v, n) = o.opt_str(ctx, "OwnerId")?;
    parts.accounts.push(Claim {
        value: v.into(),
        origin: ctx.origin(n.pos),
        field: o.field("OwnerId"),
        declared,
    });
    Some(v.to_string())
}

fn zone_ref(ctx: &mut Ctx, o: &Obj, parts: &mut Parts) -> String {
    let Some((az, n)) = o.opt_str(ctx, "AvailabilityZone") else {
        return String::new();
    };
    let field = o.field("AvailabilityZone");
    parts.zones.push(Claim {
        value: az.into(),
        origin: ctx.origin(n.pos),
        field,
        declared: false,
    });
    az.to_string()
}

/// A CIDR association in use (`State` associated or associating, or no state given).
fn associated(ctx: &mut Ctx, o: &Obj, state_key: &str) -> bool {
    let Some(state) = o.obj(ctx, state_key) else {
        return true;
    };
    match state.opt_str(ctx, "State") {
        Some((s, _)) => matches!(s, "associated" | "associating"),
        None => true,
    }
}

// ---- describe-vpcs --------------------------------------------------------------------

fn vpc(ctx: &mut Ctx, o: Obj, parts: &mut Parts) {
    let Some((id, o)) = with_id(ctx, o, "VpcId") else {
        return;
    };
    if in_other_vpc(&o, parts) {
        return;
    }
    let node = o.opt("VpcId").expect("read above");
    parts.vpc_ids.push(Claim {
        value: id,
        origin: ctx.origin(node.pos),
        field: o.field("VpcId"),
        declared: true,
    });
    parts.vpc_origin.get_or_insert_with(|| ctx.origin(o.pos));
    owner_ref(ctx, &o, parts, true);
    if let Some(n) = o.opt("CidrBlock") {
        if let Some(c) = values::cidr_v4(
            ctx,
            n,
            &o.field("CidrBlock"),
            "IPv6 is in Ipv6CidrBlockAssociationSet",
        ) {
            parts.cidrs.push(c.into());
        }
    }
    for a in objs(ctx, &o, "CidrBlockAssociationSet") {
        if !associated(ctx, &a, "CidrBlockState") {
            continue;
        }
        if let Some(n) = a.req(ctx, "CidrBlock") {
            if let Some(c) = values::cidr_v4(
                ctx,
                n,
                &a.field("CidrBlock"),
                "IPv6 is in Ipv6CidrBlockAssociationSet",
            ) {
                parts.cidrs.push(c.into());
            }
        }
    }
    for a in objs(ctx, &o, "Ipv6CidrBlockAssociationSet") {
        if !associated(ctx, &a, "Ipv6CidrBlockState") {
            continue;
        }
        if let Some(n) = a.req(ctx, "Ipv6CidrBlock") {
            if let Some(c) = values::cidr_v6(
                ctx,
                n,
                &a.field("Ipv6CidrBlock"),
                "IPv4 is in CidrBlockAssociationSet",
            ) {
                parts.cidrs.push(c.into());
            }
        }
    }
}

// ---- describe-subnets -----------------------------------------------------------------

fn subnet(ctx: &mut Ctx, o: Obj, parts: &mut Parts) {
    let Some((id, o)) = with_id(ctx, o, "SubnetId") else {
        return;
    };
    id_at(ctx, &o, "SubnetId", "subnet", &id, parts);
    if in_other_vpc(&o, parts) {
        return;
    }
    vpc_ref(ctx, &o, parts);
    owner_ref(ctx, &o, parts, false);
    let mut s = Subnet {
        id,
        ipv4_cidr: None,
        ipv6_cidrs: Vec::new(),
        availability_zone: zone_ref(ctx, &o, parts),
        availability_zone_id: o.str_or_empty(ctx, "AvailabilityZoneId"),
        network_acl_id: None,
        origin: ctx.origin(o.pos),
    };
    if let Some(n) = o.opt("CidrBlock") {
        s.ipv4_cidr = values::cidr_v4(
            ctx,
            n,
            &o.field("CidrBlock"),
            "IPv6 is in Ipv6CidrBlockAssociationSet",
        );
        if let Some(c) = s.ipv4_cidr {
            parts.fields.push(FieldAt {
                object: s.origin.clone(),
                needle: format!("{c} is not inside"),
                field: o.field("CidrBlock"),
                at: ctx.origin(n.pos),
            });
        }
    }
    for a in objs(ctx, &o, "Ipv6CidrBlockAssociationSet") {
        if !associated(ctx, &a, "Ipv6CidrBlockState") {
            continue;
        }
        if let Some(n) = a.req(ctx, "Ipv6CidrBlock") {
            if let Some(c) =
                values::cidr_v6(ctx, n, &a.field("Ipv6CidrBlock"), "IPv4 is in CidrBlock")
            {
                s.ipv6_cidrs.push(c);
            }
        }
    }
    parts.subnets.push(s);
}

// ---- describe-network-acls ------------------------------------------------------------

fn network_acl(ctx: &mut Ctx, o: Obj, parts: &mut Parts) {
    let Some((id, o)) = with_id(ctx, o, "NetworkAclId") else {
        return;
    };
    id_at(ctx, &o, "NetworkAclId", "network_acl", &id, parts);
    if in_other_vpc(&o, parts) {
        return;
    }
    vpc_ref(ctx, &o, parts);
    owner_ref(ctx, &o, parts, false);
    let mut acl = NetworkAcl::new(&id);
    acl.origin = ctx.origin(o.pos);
    acl.is_default = o.opt_bool(ctx, "IsDefault").unwrap_or(false);
    for a in objs(ctx, &o, "Associations") {
        if let Some((s, n)) = a.req_str(ctx, "SubnetId") {
            acl.associations.push(s.to_string());
            parts.nacl_assocs.push((
                id.clone(),
                s.to_string(),
                ctx.origin(n.pos),
                a.field("SubnetId"),
            ));
        }
    }
    for e in objs(ctx, &o, "Entries") {
        if let Some(n) = e.opt("RuleNumber") {
            for needle in ["rule number", "RuleNumber"] {
                parts.fields.push(FieldAt {
                    object: ctx.origin(e.pos),
                    needle: needle.to_string(),
                    field: e.field("RuleNumber"),
                    at: ctx.origin(n.pos),
                });
            }
        }
        let egress = e
            .req(ctx, "Egress")
            .and_then(|n| ctx.as_bool(n, &e.field("Egress")));
        let entry = nacl_entry(ctx, &e);
        match (egress, entry) {
            (Some(true), Some(entry)) => acl.outbound.push(entry),
            (Some(false), Some(entry)) => acl.inbound.push(entry),
            _ => {}
        }
    }
    parts.network_acls.push(acl);
}

fn nacl_entry(ctx: &mut Ctx, e: &Obj) -> Option<NetworkAclEntry> {
    let rule = nacl_rule_number(ctx, e);
    let protocol = e
        .req(ctx, "Protocol")
        .and_then(|n| values::protocol(ctx, n, &e.field("Protocol")));
    let action = e
        .req(ctx, "RuleAction")
        .and_then(|n| values::action(ctx, n, &e.field("RuleAction")));
    let cidr = nacl_cidr(ctx, e);
    let ports = match protocol? {
        p if p.has_ports() => nacl_port_range(ctx, e, p)?,
        p if is_icmp(p) => nacl_icmp(ctx, e)?,
        _ => PortSpec::Any,
    };
    Some(NetworkAclEntry {
        rule_number: rule?,
        protocol: protocol?,
        cidr: cidr?,
        ports,
        action: action?,
        origin: ctx.origin(e.pos),
    })
}

/// `RuleNumber`: 1..=32766, or 32767/32768 (the `*` rules describe-network-acls prints).
fn nacl_rule_number(ctx: &mut Ctx, e: &Obj) -> Option<u32> {
    e.req(ctx, "RuleNumber").and_then(|n| {
        let r = ctx.as_int(n, &e.field("RuleNumber"))?;
        if !(1..=32768).contains(&r) {
            ctx.error(
                n.pos,
                e.field("RuleNumber"),
                format!("RuleNumber {r} is outside 1..=32766 (32767 and 32768 are the `*` rules)"),
            );
            return None;
        }
        Some(r as u32)
    })
}

/// `CidrBlock` or `Ipv6CidrBlock`: exactly one of them.
fn nacl_cidr(ctx: &mut Ctx, e: &Obj) -> Option<IpNet> {
    match (e.opt("CidrBlock"), e.opt("Ipv6CidrBlock")) {
        (Some(n), None) => {
            values::cidr_v4(ctx, n, &e.field("CidrBlock"), "use Ipv6CidrBlock").map(Into::into)
        }
        (None, Some(n)) => {
            values::cidr_v6(ctx, n, &e.field("Ipv6CidrBlock"), "use CidrBlock").map(Into::into)
        }
        (None, None) => {
            ctx.error(
                e.pos,
                e.field("CidrBlock"),
                "missing required field: an entry has `CidrBlock` or `Ipv6CidrBlock`",
            );
            None
        }
        (Some(_), Some(n)) => {
            ctx.error(
                n.pos,
                e.field("Ipv6CidrBlock"),
                "an entry has `CidrBlock` or `Ipv6CidrBlock`, not both",
            );
            None
        }
    }
}

/// `PortRange` {From, To} of a TCP or UDP entry: required, `From` ≤ `To`.
fn nacl_port_range(ctx: &mut Ctx, e: &Obj, p: Protocol) -> Option<PortSpec> {
    let Some(r) = e.obj(ctx, "PortRange") else {
        ctx.error(
            e.pos,
            e.field("PortRange"),
            format!("missing required field: protocol {p} (tcp or udp) entries need `PortRange` {{From, To}}"),
        );
        return None;
    };
    let from = r
        .req(ctx, "From")
        .and_then(|n| values::port_number(ctx, n, &r.field("From")));
    let to = r
        .req(ctx, "To")
        .and_then(|n| values::port_number(ctx, n, &r.field("To")));
    let (from, to) = (from?, to?);
    if from > to {
        ctx.error(
            r.pos,
            r.field("From"),
            format!("From {from} is greater than To {to}"),
        );
        return None;
    }
    Some(PortSpec::Range { from, to })
}

/// `IcmpTypeCode` {Type, Code} of an ICMP entry: absent, any type and code.
fn nacl_icmp(ctx: &mut Ctx, e: &Obj) -> Option<PortSpec> {
    let Some(tc) = e.obj(ctx, "IcmpTypeCode") else {
        return Some(PortSpec::Icmp {
            icmp_type: None,
            code: None,
        });
    };
    let t = tc
        .opt("Type")
        .map(|n| values::icmp_value(ctx, n, &tc.field("Type"), "ICMP type"));
    let c = tc
        .opt("Code")
        .map(|n| values::icmp_value(ctx, n, &tc.field("Code"), "ICMP code"));
    values::icmp_spec(
        ctx,
        tc.pos,
        &tc.field("Code"),
        t.unwrap_or(Some(None))?,
        c.unwrap_or(Some(None))?,
    )
}

// ---- describe-security-groups / describe-security-group-rules -------------------------

fn security_group(ctx: &mut Ctx, o: Obj, parts: &mut Parts) {
    let Some((id, o)) = with_id(ctx, o, "GroupId") else {
        return;
    };
    id_at(ctx, &o, "GroupId", "security_group", &id, parts);
    if in_other_vpc(&o, parts) {
        parts.dropped_groups.push(id);
        return;
    }
    let group_vpc = vpc_ref(ctx, &o, parts);
    owner_ref(ctx, &o, parts, false);
    let mut g = SecurityGroup::new(&id);
    g.origin = ctx.origin(o.pos);
    g.name = o.str_or_empty(ctx, "GroupName");
    g.description = o.str_or_empty(ctx, "Description");
    for p in objs(ctx, &o, "IpPermissions") {
        g.ingress.extend(ip_permission(
            ctx,
            &p,
            group_vpc.as_deref(),
            &mut parts.fields,
        ));
    }
    for p in objs(ctx, &o, "IpPermissionsEgress") {
        g.egress.extend(ip_permission(
            ctx,
            &p,
            group_vpc.as_deref(),
            &mut parts.fields,
        ));
    }
    parts.security_groups.push(g);
}

/// `FromPort`/`ToPort` of a rule, read as its protocol says (aws-semantics §1.2).
fn sg_ports(ctx: &mut Ctx, o: &Obj, protocol: Protocol) -> Option<PortSpec> {
    let (from, to) = (o.opt("FromPort"), o.opt("ToPort"));
    if protocol.has_ports() {
        let (Some(f), Some(t)) = (from, to) else {
            let missing = if from.is_none() { "FromPort" } else { "ToPort" };
            ctx.error(
                o.pos,
                o.field(missing),
                format!("missing required field `{missing}`: tcp and udp rules need FromPort and ToPort"),
            );
            return None;
        };
        let f = values::port_number(ctx, f, &o.field("FromPort"));
        let tn = t;
        let t = values::port_number(ctx, t, &o.field("ToPort"));
        let (f, t) = (f?, t?);
        if f > t {
            ctx.error(
                tn.pos,
                o.field("ToPort"),
                format!("FromPort {f} is greater than ToPort {t}"),
            );
            return None;
        }
        Some(PortSpec::Range { from: f, to: t })
    } else if is_icmp(protocol) {
        let t = match from {
            Some(n) => values::icmp_value(ctx, n, &o.field("FromPort"), "ICMP type (FromPort)")?,
            None => None,
        };
        let c = match to {
            Some(n) => values::icmp_value(ctx, n, &o.field("ToPort"), "ICMP code (ToPort)")?,
            None => None,
        };
        values::icmp_spec(ctx, to.map_or(o.pos, |n| n.pos), &o.field("ToPort"), t, c)
    } else {
        Some(PortSpec::Any)
    }
}

/// One `IpPermission` → one rule per peer.
fn ip_permission(
    ctx: &mut Ctx,
    p: &Obj,
    group_vpc: Option<&str>,
    fields: &mut Vec<FieldAt>,
) -> Vec<SecurityGroupRule> {
    let protocol = p
        .req(ctx, "IpProtocol")
        .and_then(|n| values::protocol(ctx, n, &p.field("IpProtocol")));
    let ports = protocol.and_then(|pr| sg_ports(ctx, p, pr));
    let mut peers: Vec<(SgPeer, Option<String>, usize)> = Vec::new();
    for r in objs(ctx, p, "IpRanges") {
        if let Some(n) = r.req(ctx, "CidrIp") {
            if let Some(c) = values::cidr_v4(ctx, n, &r.field("CidrIp"), "IPv6 goes in Ipv6Ranges")
            {
                peers.push((SgPeer::Cidr(c.into()), desc(ctx, &r), r.pos));
            }
        }
    }
    for r in objs(ctx, p, "Ipv6Ranges") {
        if let Some(n) = r.req(ctx, "CidrIpv6") {
            if let Some(c) = values::cidr_v6(ctx, n, &r.field("CidrIpv6"), "IPv4 goes in IpRanges")
            {
                peers.push((SgPeer::Cidr(c.into()), desc(ctx, &r), r.pos));
            }
        }
    }
    for r in objs(ctx, p, "PrefixListIds") {
        if let Some((id, n)) = r.req_str(ctx, "PrefixListId") {
            fields.push(FieldAt {
                object: ctx.origin(r.pos),
                needle: format!("unknown prefix list `{id}`"),
                field: r.field("PrefixListId"),
                at: ctx.origin(n.pos),
            });
            peers.push((SgPeer::PrefixList(id.into()), desc(ctx, &r), r.pos));
        }
    }
    for r in objs(ctx, p, "UserIdGroupPairs") {
        if let Some(id) = group_pair(ctx, &r, group_vpc) {
            if let Some(n) = r.opt("GroupId") {
                fields.push(FieldAt {
                    object: ctx.origin(r.pos),
                    needle: format!("unknown security group `{id}`"),
                    field: r.field("GroupId"),
                    at: ctx.origin(n.pos),
                });
            }
            peers.push((SgPeer::SecurityGroup(id), desc(ctx, &r), r.pos));
        }
    }
    let (Some(protocol), Some(ports)) = (protocol, ports) else {
        return Vec::new();
    };
    peers
        .into_iter()
        .map(|(peer, description, pos)| SecurityGroupRule {
            protocol,
            ports,
            peer,
            description,
            origin: ctx.origin(pos),
        })
        .collect()
}

fn desc(ctx: &mut Ctx, o: &Obj) -> Option<String> {
    o.opt_str(ctx, "Description").map(|(s, _)| s.to_string())
}

/// The group id of a `UserIdGroupPairs` element or a `ReferencedGroupInfo`; `None` for a
/// group in another VPC (peering), which this one-VPC emulation cannot resolve.
fn group_pair(ctx: &mut Ctx, r: &Obj, group_vpc: Option<&str>) -> Option<String> {
    if r.opt("VpcPeeringConnectionId").is_some() {
        return None;
    }
    let (id, _) = r.req_str(ctx, "GroupId")?;
    if let (Some((v, _)), Some(g)) = (r.opt_str(ctx, "VpcId"), group_vpc) {
        if v != g {
            return None;
        }
    }
    Some(id.to_string())
}

fn sg_rule(ctx: &mut Ctx, o: Obj, parts: &mut Parts) {
    let o = match o.opt("SecurityGroupRuleId").and_then(|n| match &n.val {
        super::tree::Val::Str(s) => Some(s.clone()),
        _ => None,
    }) {
        Some(rid) => Obj {
            path: format!("{} ({rid})", o.path),
            ..o
        },
        None => o,
    };
    let group_id = o.req_str(ctx, "GroupId").map(|(s, _)| s.to_string());
    let egress = o
        .req(ctx, "IsEgress")
        .and_then(|n| ctx.as_bool(n, &o.field("IsEgress")));
    let protocol = o
        .req(ctx, "IpProtocol")
        .and_then(|n| values::protocol(ctx, n, &o.field("IpProtocol")));
    let ports = protocol.and_then(|pr| sg_ports(ctx, &o, pr));
    const PEERS: [&str; 4] = [
        "CidrIpv4",
        "CidrIpv6",
        "PrefixListId",
        "ReferencedGroupInfo",
    ];
    let given: Vec<&str> = PEERS.into_iter().filter(|k| o.opt(k).is_some()).collect();
    let peer = match given.as_slice() {
        ["CidrIpv4"] => values::cidr_v4(
            ctx,
            o.opt("CidrIpv4").expect("given"),
            &o.field("CidrIpv4"),
            "use CidrIpv6",
        )
        .map(|c| Some(SgPeer::Cidr(c.into()))),
        ["CidrIpv6"] => values::cidr_v6(
            ctx,
            o.opt("CidrIpv6").expect("given"),
            &o.field("CidrIpv6"),
            "use CidrIpv4",
        )
        .map(|c| Some(SgPeer::Cidr(c.into()))),
        ["PrefixListId"] => o
            .opt_str(ctx, "PrefixListId")
            .map(|(s, _)| Some(SgPeer::PrefixList(s.into()))),
        ["ReferencedGroupInfo"] => {
            let r = o.obj(ctx, "ReferencedGroupInfo");
            // Another VPC's group: skipped (Some(None)), as in describe-security-groups.
            r.map(|r| group_pair(ctx, &r, None).map(SgPeer::SecurityGroup))
        }
        _ => {
            ctx.error(
                o.pos,
                o.path.clone(),
                format!("a rule has exactly one of {}", PEERS.join(", ")),
            );
            None
        }
    };
    let description = desc(ctx, &o);
    let (Some(group_id), Some(egress), Some(protocol), Some(ports), Some(Some(peer))) =
        (group_id, egress, protocol, ports, peer)
    else {
        return;
    };
    let rule = SecurityGroupRule {
        protocol,
        ports,
        peer,
        description,
        origin: ctx.origin(o.pos),
    };
    parts.loose_rules.push(LooseRule {
        group_id,
        egress,
        rule,
    });
}

// ---- describe-network-interfaces ------------------------------------------------------

/// One ENI of `describe-network-interfaces`, or of `describe-instances` (`instance`:
/// the id of the instance it is printed under).
fn network_interface(ctx: &mut Ctx, o: Obj, parts: &mut Parts, instance: Option<&str>) {
    let Some((id, o)) = with_id(ctx, o, "NetworkInterfaceId") else {
        return;
    };
    id_at(
        ctx,
        &o,
        "NetworkInterfaceId",
        "network_interface",
        &id,
        parts,
    );
    if in_other_vpc(&o, parts) {
        return;
    }
    let origin = ctx.origin(o.pos);
    let subnet = match o.req_str(ctx, "SubnetId") {
        Some((s, n)) => {
            let at = ctx.origin(n.pos);
            field_at(
                parts,
                &origin,
                format!("unknown subnet `{s}`"),
                o.field("SubnetId"),
                at,
            );
            s.to_string()
        }
        None => String::new(),
    };
    vpc_ref(ctx, &o, parts);
    let owner_id = owner_ref(ctx, &o, parts, false).unwrap_or_default();
    zone_ref(ctx, &o, parts);
    let v4 = eni_private_ipv4(ctx, &o, &origin, parts);
    let ipv6 = eni_ipv6(ctx, &o);
    let (ipv4_prefixes, ipv6_prefixes) = eni_prefixes(ctx, &o, &origin, parts);
    let public_ipv4 = public_ip(ctx, &o).or(v4.primary_public);
    let security_groups = eni_security_groups(ctx, &o, &origin, parts);
    let interface_type = o
        .opt_str(ctx, "InterfaceType")
        .map_or("interface".to_string(), |(s, _)| s.to_string());
    let instance_id = match instance {
        Some(i) if !i.is_empty() => Some(i.to_string()),
        _ => o
            .obj(ctx, "Attachment")
            .and_then(|a| a.opt_str(ctx, "InstanceId"))
            .map(|(s, _)| s.to_string()),
    };
    let conntrack = eni_conntrack(ctx, &o);
    let eni = NetworkInterface {
        id,
        subnet_id: subnet,
        private_ipv4: v4.addresses,
        ipv6,
        public_ipv4,
        secondary_public_ipv4: v4.secondary_public,
        ipv4_prefixes,
        ipv6_prefixes,
        interface_type,
        security_groups,
        instance_id,
        owner_id,
        description: o.str_or_empty(ctx, "Description"),
        conntrack,
        max_tracked_connections: None,
        origin,
    };
    if instance.is_some() {
        parts.instance_enis.push(eni);
    } else {
        parts.network_interfaces.push(eni);
    }
}

/// Records that a validation error at `object` containing `needle` belongs to `field`,
/// written at `at`.
fn field_at(parts: &mut Parts, object: &Origin, needle: String, field: String, at: Origin) {
    parts.fields.push(FieldAt {
        object: object.clone(),
        needle,
        field,
        at,
    });
}

/// An ENI's private IPv4 addresses, the primary first, and the public addresses mapped
/// onto them.
struct PrivateIpv4 {
    addresses: Vec<std::net::Ipv4Addr>,
    /// The primary address's public IPv4 (`Association`).
    primary_public: Option<std::net::Ipv4Addr>,
    /// Elastic IPs on secondary addresses: (public, private).
    secondary_public: Vec<(std::net::Ipv4Addr, std::net::Ipv4Addr)>,
}

/// `PrivateIpAddresses[]` (or, without it, `PrivateIpAddress`).
fn eni_private_ipv4(ctx: &mut Ctx, o: &Obj, origin: &Origin, parts: &mut Parts) -> PrivateIpv4 {
    let v4_hint = "IPv6 addresses are in Ipv6Addresses";
    let mut primary = Vec::new();
    let mut secondary = Vec::new();
    let mut primary_public = None;
    let mut secondary_public = Vec::new();
    let list = objs(ctx, o, "PrivateIpAddresses");
    for a in &list {
        let Some(n) = a.req(ctx, "PrivateIpAddress") else {
            continue;
        };
        let Some(addr) = values::ipv4(ctx, n, &a.field("PrivateIpAddress"), v4_hint) else {
            continue;
        };
        let at = ctx.origin(n.pos);
        field_at(
            parts,
            origin,
            format!("address {addr} is "),
            a.field("PrivateIpAddress"),
            at,
        );
        if a.opt_bool(ctx, "Primary").unwrap_or(false) {
            primary.push(addr);
            primary_public = public_ip(ctx, a);
        } else {
            secondary.push(addr);
            // An Elastic IP on a secondary address: its own `Association`.
            if let Some(public) = public_ip(ctx, a) {
                secondary_public.push((public, addr));
            }
        }
    }
    if list.is_empty() {
        if let Some(n) = o.opt("PrivateIpAddress") {
            primary.extend(values::ipv4(ctx, n, &o.field("PrivateIpAddress"), v4_hint));
        }
    }
    primary.extend(secondary);
    PrivateIpv4 {
        addresses: primary,
        primary_public,
        secondary_public,
    }
}

/// `Ipv6Addresses[]`, with `Ipv6Address` first when it is not among them.
fn eni_ipv6(ctx: &mut Ctx, o: &Obj) -> Vec<std::net::Ipv6Addr> {
    let mut ipv6 = Vec::new();
    let v6_hint = "IPv4 addresses are in PrivateIpAddresses";
    for a in objs(ctx, o, "Ipv6Addresses") {
        if let Some(n) = a.req(ctx, "Ipv6Address") {
            ipv6.extend(values::ipv6(ctx, n, &a.field("Ipv6Address"), v6_hint));
        }
    }
    if let Some(n) = o.opt("Ipv6Address") {
        if let Some(a) = values::ipv6(ctx, n, &o.field("Ipv6Address"), v6_hint) {
            if !ipv6.contains(&a) {
                ipv6.insert(0, a);
            }
        }
    }
    ipv6
}

/// `Ipv4Prefixes[]` and `Ipv6Prefixes[]`: the prefixes delegated to the ENI.
fn eni_prefixes(
    ctx: &mut Ctx,
    o: &Obj,
    origin: &Origin,
    parts: &mut Parts,
) -> (Vec<ipnet::Ipv4Net>, Vec<ipnet::Ipv6Net>) {
    let mut ipv4_prefixes = Vec::new();
    for a in objs(ctx, o, "Ipv4Prefixes") {
        if let Some(n) = a.req(ctx, "Ipv4Prefix") {
            let field = a.field("Ipv4Prefix");
            if let Some(c) = values::cidr_v4(ctx, n, &field, "IPv6 prefixes are in Ipv6Prefixes") {
                let at = ctx.origin(n.pos);
                field_at(parts, origin, format!("prefix {c} "), field, at);
                ipv4_prefixes.push(c);
            }
        }
    }
    let mut ipv6_prefixes = Vec::new();
    for a in objs(ctx, o, "Ipv6Prefixes") {
        if let Some(n) = a.req(ctx, "Ipv6Prefix") {
            let field = a.field("Ipv6Prefix");
            if let Some(c) = values::cidr_v6(ctx, n, &field, "IPv4 prefixes are in Ipv4Prefixes") {
                let at = ctx.origin(n.pos);
                field_at(parts, origin, format!("prefix {c} "), field, at);
                ipv6_prefixes.push(c);
            }
        }
    }
    (ipv4_prefixes, ipv6_prefixes)
}

/// `Groups[].GroupId`. `Groups: []` is an ENI without security groups (NAT gateway, ...).
fn eni_security_groups(ctx: &mut Ctx, o: &Obj, origin: &Origin, parts: &mut Parts) -> Vec<String> {
    let mut security_groups = Vec::new();
    for g in objs(ctx, o, "Groups") {
        if let Some((gid, n)) = g.req_str(ctx, "GroupId") {
            let at = ctx.origin(n.pos);
            let needle = format!("unknown security group `{gid}`");
            field_at(parts, origin, needle, g.field("GroupId"), at);
            security_groups.push(gid.to_string());
        }
    }
    let at = ctx.origin(o.opt("Groups").map_or(o.pos, |n| n.pos));
    field_at(
        parts,
        origin,
        "without security groups".to_string(),
        o.field("Groups"),
        at,
    );
    security_groups
}

/// `ConnectionTrackingConfiguration`: the ENI's own idle timeouts.
fn eni_conntrack(ctx: &mut Ctx, o: &Obj) -> ConntrackOverrides {
    let mut conntrack = ConntrackOverrides::default();
    if let Some(c) = o.obj(ctx, "ConnectionTrackingConfiguration") {
        let mut get = |key: &str| {
            let n = c.opt(key)?;
            ctx.as_int_in(n, &c.field(key), "timeout", 1, u32::MAX as i64)
                .map(|v| v as u32)
        };
        conntrack.tcp_established = get("TcpEstablishedTimeout");
        conntrack.udp_stream = get("UdpStreamTimeout");
        conntrack.udp = get("UdpTimeout");
    }
    conntrack
}

/// `Association.PublicIp` of an ENI or of one of its private addresses.
fn public_ip(ctx: &mut Ctx, o: &Obj) -> Option<std::net::Ipv4Addr> {
    let a = o.obj(ctx, "Association")?;
    let n = a.opt("PublicIp")?;
    values::ipv4(ctx, n, &a.field("PublicIp"), "a public IPv4")
}

// ---- prefix lists ---------------------------------------------------------------------

fn prefix_list(ctx: &mut Ctx, o: Obj, parts: &mut Parts) {
    let Some((id, o)) = with_id(ctx, o, "PrefixListId") else {
        return;
    };
    id_at(ctx, &o, "PrefixListId", "prefix_list", &id, parts);
    let name = o.str_or_empty(ctx, "PrefixListName");
    let mut entries = Vec::new();
    // Legacy describe-prefix-lists prints the CIDRs; the managed API does not.
    for (i, n) in o.arr(ctx, "Cidrs").iter().enumerate() {
        entries.extend(values::cidr(ctx, n, &format!("{}[{i}]", o.field("Cidrs"))));
    }
    parts.prefix_lists.push(PrefixList {
        id,
        name,
        entries,
        origin: ctx.origin(o.pos),
    });
}

/// `get-managed-prefix-list-entries`: the list's id is a `PrefixListId` key next to
/// `Entries`, or part of the file name (`pl-0abc1234.json`).
fn prefix_entries(ctx: &mut Ctx, top: &Obj, node: &Node, parts: &mut Parts) {
    let id = match top.opt_str(ctx, "PrefixListId") {
        Some((s, _)) => Some(s.to_string()),
        None => id_in_file_name(&ctx.file),
    };
    let Some(id) = id else {
        ctx.error(
            node.pos,
            "Entries",
            "get-managed-prefix-list-entries does not print which prefix list this is: name the file \
             after the list (pl-0abc1234.json) or add \"PrefixListId\": \"pl-...\" next to \"Entries\"",
        );
        return;
    };
    let mut entries = Vec::new();
    for (i, n) in ctx.as_arr(node, "Entries").iter().enumerate() {
        let Some(e) = ctx.as_obj(n, format!("Entries[{i}]")) else {
            continue;
        };
        if let Some(c) = e.req(ctx, "Cidr") {
            entries.extend(values::cidr(ctx, c, &e.field("Cidr")));
        }
    }
    parts
        .prefix_entries
        .push((id, entries, ctx.origin(node.pos)));
}

/// `pl-0abc1234` from `…/get-managed-prefix-list-entries.pl-0abc1234.json`.
fn id_in_file_name(path: &str) -> Option<String> {
    let name = path.rsplit(['/', '\\']).next().unwrap_or(path);
    let mut from = 0;
    while let Some(i) = name[from..].find("pl-").map(|i| i + from) {
        let starts_word = i == 0 || !name.as_bytes()[i - 1].is_ascii_alphanumeric();
        let rest: String = name[i + 3..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        if starts_word && !rest.is_empty() {
            return Some(format!("pl-{rest}"));
        }
        from = i + 3;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::id_in_file_name;

    #[test]
    fn prefix_list_id_from_file_name() {
        assert_eq!(
            id_in_file_name("a/pl-0abc1234.json").as_deref(),
            Some("pl-0abc1234")
        );
        assert_eq!(
            id_in_file_name("x/get-managed-prefix-list-entries.pl-0a1b.json").as_deref(),
            Some("pl-0a1b")
        );
        assert_eq!(id_in_file_name("entries.json"), None);
        assert_eq!(id_in_file_name("apl-1.json"), None);
    }
}
