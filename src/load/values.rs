//! Readers of the small values both formats share: CIDRs, addresses, protocols, port
//! ranges, NACL actions. Each records an error that says what is valid and returns
//! `None`, so the caller carries on with the next field.

use super::tree::{Ctx, Node, Obj, Val};
use crate::model::{PortSpec, Protocol, RuleAction, PROTO_ICMP, PROTO_ICMPV6};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const CIDR_HINT: &str =
    "expected an address and a prefix length, e.g. 10.0.0.0/16 or 2600:1f18::/56";

/// A CIDR of either family.
pub(crate) fn cidr(ctx: &mut Ctx, node: &Node, field: &str) -> Option<IpNet> {
    let s = ctx.as_str(node, field)?;
    match s.trim().parse::<IpNet>() {
        Ok(n) => Some(n),
        Err(e) => {
            let hint = match s.trim().parse::<IpAddr>() {
                Ok(IpAddr::V4(_)) => {
                    "a CIDR needs a prefix length: add /32 for one address".to_string()
                }
                Ok(IpAddr::V6(_)) => {
                    "a CIDR needs a prefix length: add /128 for one address".to_string()
                }
                Err(_) => CIDR_HINT.to_string(),
            };
            ctx.error(node.pos, field, format!("bad CIDR {s:?}: {e}; {hint}"));
            None
        }
    }
}

pub(crate) fn cidr_v4(ctx: &mut Ctx, node: &Node, field: &str, v6_hint: &str) -> Option<Ipv4Net> {
    match cidr(ctx, node, field)? {
        IpNet::V4(n) => Some(n),
        IpNet::V6(n) => {
            ctx.error(
                node.pos,
                field,
                format!("{n} is an IPv6 CIDR; this field takes IPv4 ({v6_hint})"),
            );
            None
        }
    }
}

pub(crate) fn cidr_v6(ctx: &mut Ctx, node: &Node, field: &str, v4_hint: &str) -> Option<Ipv6Net> {
    match cidr(ctx, node, field)? {
        IpNet::V6(n) => Some(n),
        IpNet::V4(n) => {
            ctx.error(
                node.pos,
                field,
                format!("{n} is an IPv4 CIDR; this field takes IPv6 ({v4_hint})"),
            );
            None
        }
    }
}

pub(crate) fn ipv4(ctx: &mut Ctx, node: &Node, field: &str, v6_hint: &str) -> Option<Ipv4Addr> {
    let s = ctx.as_str(node, field)?;
    match s.trim().parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => Some(a),
        Ok(IpAddr::V6(_)) => {
            ctx.error(
                node.pos,
                field,
                format!("{s} is an IPv6 address; this field takes IPv4 ({v6_hint})"),
            );
            None
        }
        Err(_) => {
            ctx.error(
                node.pos,
                field,
                format!("bad IPv4 address {s:?}: expected four numbers like 10.0.1.17"),
            );
            None
        }
    }
}

pub(crate) fn ipv6(ctx: &mut Ctx, node: &Node, field: &str, v4_hint: &str) -> Option<Ipv6Addr> {
    let s = ctx.as_str(node, field)?;
    match s.trim().parse::<IpAddr>() {
        Ok(IpAddr::V6(a)) => Some(a),
        Ok(IpAddr::V4(_)) => {
            ctx.error(
                node.pos,
                field,
                format!("{s} is an IPv4 address; this field takes IPv6 ({v4_hint})"),
            );
            None
        }
        Err(_) => {
            ctx.error(
                node.pos,
                field,
                format!("bad IPv6 address {s:?}: expected e.g. 2600:1f18:4a3:6d01::10"),
            );
            None
        }
    }
}

/// `IpProtocol` / `Protocol` / `protocol`: a string (`tcp`, `"6"`, `-1`) or a number.
pub(crate) fn protocol(ctx: &mut Ctx, node: &Node, field: &str) -> Option<Protocol> {
    let text = match &node.val {
        Val::Str(s) => s.clone(),
        Val::Int(i) => i.to_string(),
        _ => {
            let found = node.val.type_name(ctx.syntax);
            ctx.error(
                node.pos,
                field,
                format!("expected a protocol name or number, found {found}"),
            );
            return None;
        }
    };
    let p = Protocol::parse(&text);
    if p.is_none() {
        ctx.error(
            node.pos,
            field,
            format!("protocol {text:?}: expected -1, tcp, udp, icmp, icmpv6 or a number 0-255"),
        );
    }
    p
}

/// `ports = "443" | "1024-65535" | "all" | 443`: an inclusive range, `all` = 0-65535.
pub(crate) fn ports(ctx: &mut Ctx, node: &Node, field: &str) -> Option<(u16, u16)> {
    let text = match &node.val {
        Val::Str(s) => s.trim().to_string(),
        Val::Int(i) => i.to_string(),
        _ => {
            let found = node.val.type_name(ctx.syntax);
            ctx.error(node.pos, field, format!("expected a port like \"443\", a range like \"1024-65535\" or \"all\", found {found}"));
            return None;
        }
    };
    match parse_port_range(&text) {
        Ok(r) => Some(r),
        Err(m) => {
            ctx.error(node.pos, field, format!("ports {text:?}: {m}"));
            None
        }
    }
}

fn parse_port_range(text: &str) -> Result<(u16, u16), String> {
    if text.eq_ignore_ascii_case("all") {
        return Ok((0, 65535));
    }
    let port = |s: &str| -> Result<u16, String> {
        let s = s.trim();
        match s.parse::<i64>() {
            Ok(p) if (0..=65535).contains(&p) => Ok(p as u16),
            Ok(p) => Err(format!("port {p} is outside 0..=65535")),
            Err(_) => Err("expected a port (443), a range (1024-65535) or all".to_string()),
        }
    };
    // A leading '-' is a negative number, not a range.
    match text.char_indices().skip(1).find(|&(_, c)| c == '-') {
        Some((i, _)) => {
            let (from, to) = (port(&text[..i])?, port(&text[i + 1..])?);
            if from > to {
                return Err(format!(
                    "from {from} is greater than to {to}; write the range low-high"
                ));
            }
            Ok((from, to))
        }
        None => {
            let p = port(text)?;
            Ok((p, p))
        }
    }
}

/// One TCP/UDP port given as a JSON number (`FromPort`, `PortRange.From`).
pub(crate) fn port_number(ctx: &mut Ctx, node: &Node, field: &str) -> Option<u16> {
    ctx.as_int_in(node, field, "port", 0, 65535)
        .map(|p| p as u16)
}

/// An ICMP type or code: -1 (all) or 0..=255.
pub(crate) fn icmp_value(
    ctx: &mut Ctx,
    node: &Node,
    field: &str,
    what: &str,
) -> Option<Option<u8>> {
    let i = ctx.as_int_in(node, field, what, -1, 255)?;
    Some(if i < 0 { None } else { Some(i as u8) })
}

/// ICMP type and code; checks that a code comes with a type.
pub(crate) fn icmp_spec(
    ctx: &mut Ctx,
    pos: usize,
    field: &str,
    icmp_type: Option<u8>,
    code: Option<u8>,
) -> Option<PortSpec> {
    if icmp_type.is_none() && code.is_some() {
        ctx.error(
            pos,
            field,
            "ICMP code given with type -1 (all types): when the type is -1 the code must be -1 too",
        );
        return None;
    }
    Some(PortSpec::Icmp { icmp_type, code })
}

pub(crate) fn is_icmp(p: Protocol) -> bool {
    matches!(
        p,
        Protocol::Number(PROTO_ICMP) | Protocol::Number(PROTO_ICMPV6)
    )
}

/// `RuleAction` / `action`: allow or deny.
pub(crate) fn action(ctx: &mut Ctx, node: &Node, field: &str) -> Option<RuleAction> {
    let s = ctx.as_str(node, field)?;
    match s.trim().to_ascii_lowercase().as_str() {
        "allow" => Some(RuleAction::Allow),
        "deny" => Some(RuleAction::Deny),
        _ => {
            ctx.error(
                node.pos,
                field,
                format!("action {s:?}: expected allow or deny"),
            );
            None
        }
    }
}

/// A list of ids (`security_groups = ["sg-1", "sg-2"]`).
pub(crate) fn ids(ctx: &mut Ctx, obj: &Obj, key: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, n) in obj.arr(ctx, key).iter().enumerate() {
        if let Some(s) = ctx.as_str(n, &format!("{}[{i}]", obj.field(key))) {
            out.push(s.to_string());
        }
    }
    out
}

/// The region of an availability zone: `us-east-1c` → `us-east-1`,
/// `us-gov-west-1a` → `us-gov-west-1`, `us-west-2-lax-1a` (a Local Zone) → `us-west-2`.
pub(crate) fn region_of_az(az: &str) -> Option<String> {
    let mut parts = Vec::new();
    for p in az.split('-') {
        if p.starts_with(|c: char| c.is_ascii_digit()) {
            let digits: String = p.chars().take_while(|c| c.is_ascii_digit()).collect();
            parts.push(digits);
            return if parts.len() >= 3 {
                Some(parts.join("-"))
            } else {
                None
            };
        }
        parts.push(p.to_string());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges() {
        assert_eq!(parse_port_range("443"), Ok((443, 443)));
        assert_eq!(parse_port_range("1024-65535"), Ok((1024, 65535)));
        assert_eq!(parse_port_range("1024 - 2048"), Ok((1024, 2048)));
        assert_eq!(parse_port_range("ALL"), Ok((0, 65535)));
        assert!(parse_port_range("443-80")
            .unwrap_err()
            .contains("from 443 is greater than to 80"));
        assert!(parse_port_range("70000")
            .unwrap_err()
            .contains("port 70000 is outside 0..=65535"));
        assert!(parse_port_range("-1")
            .unwrap_err()
            .contains("port -1 is outside"));
        assert!(parse_port_range("https").is_err());
    }

    #[test]
    fn regions() {
        assert_eq!(region_of_az("us-east-1c").as_deref(), Some("us-east-1"));
        assert_eq!(
            region_of_az("us-gov-west-1a").as_deref(),
            Some("us-gov-west-1")
        );
        assert_eq!(
            region_of_az("us-west-2-lax-1a").as_deref(),
            Some("us-west-2")
        );
        assert_eq!(
            region_of_az("ap-southeast-4b").as_deref(),
            Some("ap-southeast-4")
        );
        assert_eq!(region_of_az("nowhere"), None);
        assert_eq!(region_of_az("1a"), None);
    }
}
