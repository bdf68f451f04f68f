//! What a rule matches: protocols, ports (or ICMP type/code), and the action.

use super::*;

/// IP protocol of a rule: all protocols (`-1`) or one IANA number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    All,
    Number(u8),
}

pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_ICMPV6: u8 = 58;

impl Protocol {
    /// Parses what `IpProtocol` / `Protocol` may hold: `-1`, `all`, a name
    /// (`tcp`, `udp`, `icmp`, `icmpv6`) or a number 0..=255.
    pub fn parse(s: &str) -> Option<Protocol> {
        match s.trim().to_ascii_lowercase().as_str() {
            "-1" | "all" => Some(Protocol::All),
            "tcp" => Some(Protocol::Number(PROTO_TCP)),
            "udp" => Some(Protocol::Number(PROTO_UDP)),
            "icmp" => Some(Protocol::Number(PROTO_ICMP)),
            "icmpv6" | "icmp6" => Some(Protocol::Number(PROTO_ICMPV6)),
            n => n.parse::<u8>().ok().map(Protocol::Number),
        }
    }

    /// True when a rule of this protocol looks at ports (TCP, UDP).
    pub fn has_ports(self) -> bool {
        matches!(
            self,
            Protocol::Number(PROTO_TCP) | Protocol::Number(PROTO_UDP)
        )
    }

    /// A name for people: `all`, `tcp`, `udp`, `icmp`, `icmpv6` or `proto N`.
    pub fn label(self) -> String {
        match self {
            Protocol::All => "all".into(),
            Protocol::Number(PROTO_TCP) => "tcp".into(),
            Protocol::Number(PROTO_UDP) => "udp".into(),
            Protocol::Number(PROTO_ICMP) => "icmp".into(),
            Protocol::Number(PROTO_ICMPV6) => "icmpv6".into(),
            Protocol::Number(n) => format!("proto {n}"),
        }
    }

    pub fn matches(self, proto: u8) -> bool {
        match self {
            Protocol::All => true,
            Protocol::Number(n) => n == proto,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Protocol::All => write!(f, "-1"),
            Protocol::Number(n) => write!(f, "{n}"),
        }
    }
}

/// What a rule says about ports or ICMP type and code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PortSpec {
    /// Every port (protocol -1, protocols without ports, or a TCP/UDP range 0-65535).
    Any,
    /// An inclusive destination-port range (TCP and UDP).
    Range { from: u16, to: u16 },
    /// ICMP / ICMPv6 type and code; `None` is the `-1` wildcard.
    Icmp {
        icmp_type: Option<u8>,
        code: Option<u8>,
    },
}

impl PortSpec {
    /// True when the spec lets every port (or every type and code) through.
    pub fn is_any(self) -> bool {
        match self {
            PortSpec::Any => true,
            PortSpec::Range { from, to } => from == 0 && to == 65535,
            PortSpec::Icmp { icmp_type, code } => icmp_type.is_none() && code.is_none(),
        }
    }
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PortSpec::Any => write!(f, "all"),
            PortSpec::Range { from, to } if from == to => write!(f, "{from}"),
            PortSpec::Range { from, to } => write!(f, "{from}-{to}"),
            PortSpec::Icmp { icmp_type, code } => match (icmp_type, code) {
                (Some(t), Some(c)) => write!(f, "type {t} code {c}"),
                (Some(t), None) => write!(f, "type {t}, any code"),
                (None, None) => write!(f, "any type"),
                (None, Some(c)) => write!(f, "any type, code {c}"),
            },
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RuleAction {
    Allow,
    Deny,
}

impl fmt::Display for RuleAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RuleAction::Allow => "allow",
            RuleAction::Deny => "deny",
        })
    }
}
