//! The engine's trace: every check of one packet's path, in order, with what decided
//! it (for `vpcgate check`, `replay --explain` and the `why` of verdict lines).
//!
//! The engine's one per-packet function is generic over a [`Tracer`]. Replay passes
//! [`NoTrace`], whose `ON` is `false`: every tracing statement sits behind
//! `if T::ON`, so that copy of the function is compiled without them and costs
//! nothing. [`Engine::process_traced`] passes a tracer that records [`Step`]s: the
//! same code decides, the trace only watches (a rule named in a step is found by the
//! same matcher the check used, with the same inputs).
//!
//! ```
//! use std::sync::Arc;
//! use vpcgate::{engine::*, engine::trace::*, model::*, wire::packet::*, policy::Policy};
//! let vpc = vpcgate::load::load_str("x.toml", r#"
//!     [vpc]
//!     id = "vpc-1"
//!     cidrs = ["10.0.0.0/16"]
//!     [[subnets]]
//!     id = "subnet-a"
//!     cidr = "10.0.1.0/24"
//!     [[security_groups]]
//!     id = "sg-web"
//!     ingress = [ { protocol = "tcp", ports = "443", cidr = "0.0.0.0/0" } ]
//!     [[network_interfaces]]
//!     id = "eni-web"
//!     subnet = "subnet-a"
//!     private_ips = ["10.0.1.10"]
//!     security_groups = ["sg-web"]
//! "#).unwrap();
//! let policy = Arc::new(Policy::compile(Arc::new(vpc), &["eni-web".to_string()]));
//! let mut engine = Engine::new(policy.clone());
//! let syn = Packet {
//!     src: "198.51.100.7".parse().unwrap(), dst: "10.0.1.10".parse().unwrap(),
//!     protocol: 6, src_port: 50000, dst_port: 443, icmp_type: 0, icmp_code: 0, icmp_id: 0,
//!     tcp_flags: tcp_flags::SYN, ip_len: 60, fragment: Fragment::None,
//! };
//! let mut steps: Vec<Step> = Vec::new();
//! let d = engine.process_traced(&syn, Timestamp::from_secs_nanos(1_700_000_000, 0), &mut steps);
//! assert_eq!(d.verdict, Verdict::Accept);
//! let text: Vec<String> = steps.iter().filter_map(|s| s.text(&policy)).collect();
//! assert_eq!(text, [
//!     "nacl-inbound acl-default-1 rule 100: allow (allow all from 0.0.0.0/0)".to_string(),
//!     "sg-ingress eni-web: allowed by sg-web ingress: tcp 443 from 0.0.0.0/0; a tracked connection is created".to_string(),
//! ]);
//! ```

use super::{Core, SgOutcome};
use crate::conntrack::{ConnKey, ConnRef, ConnState};
use crate::model::{Direction, EniIdx};
use crate::policy::{AddrOwner, ExemptService, NaclRuleRef, Policy, SgRuleRef};
use crate::wire::packet::{Packet, Timestamp};
use std::net::Ipv4Addr;

/// Watches the engine's checks. See the module docs.
pub trait Tracer {
    /// `false`: the engine compiles every tracing statement away.
    const ON: bool;
    /// Whether SG steps carry the connection's key and the entry it met (a hash
    /// lookup more per check); `false` leaves them `None`.
    const KEYS: bool = true;
    fn step(&mut self, step: Step);
}

/// The tracer of replay: records nothing, costs nothing.
pub struct NoTrace;

impl Tracer for NoTrace {
    const ON: bool = false;
    #[inline(always)]
    fn step(&mut self, _: Step) {}
}

/// Records every step.
impl Tracer for Vec<Step> {
    const ON: bool = true;
    fn step(&mut self, step: Step) {
        self.push(step);
    }
}

/// How a security group treated a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SgHow {
    /// A live tracked connection let it through, whatever the rules say.
    Tracked,
    /// A rule allowed it, and a tracked connection was created.
    New,
    /// A rule allowed it, and the flow is untracked (judged by the rules each time).
    Untracked,
    /// A rule allowed it; its ports are unknown (a fragment without its first): not
    /// tracked.
    NoPorts,
    /// A rule allowed an ICMP message that tracking never follows (an error, or a
    /// query reply without its query's connection).
    NotTracked,
    /// The ENI has no security group: no check, no tracking.
    NoGroup,
    /// No rule allowed it, and no tracked connection did.
    Denied,
    /// A rule allowed it, but no more connections may be tracked.
    Full,
}

impl SgHow {
    fn of(o: SgOutcome) -> SgHow {
        match o {
            SgOutcome::Tracked => SgHow::Tracked,
            SgOutcome::New => SgHow::New,
            SgOutcome::Untracked => SgHow::Untracked,
            SgOutcome::NoPorts => SgHow::NoPorts,
            SgOutcome::NotTracked => SgHow::NotTracked,
            SgOutcome::NoGroup => SgHow::NoGroup,
            SgOutcome::Denied => SgHow::Denied,
            SgOutcome::Full => SgHow::Full,
        }
    }

    /// Whether the packet got past the group.
    pub fn allowed(self) -> bool {
        !matches!(self, SgHow::Denied | SgHow::Full)
    }

    /// `tracked`, `new`, `untracked`, ...: the word in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            SgHow::Tracked => "tracked",
            SgHow::New => "new",
            SgHow::Untracked => "untracked",
            SgHow::NoPorts => "no-ports",
            SgHow::NotTracked => "not-tracked",
            SgHow::NoGroup => "no-security-group",
            SgHow::Denied => "no-rule",
            SgHow::Full => "conntrack-full",
        }
    }
}

/// A tracked connection the packet's key found before the check: when it was last
/// seen and in which state (its idle timeout). If the check then did not find it
/// live, it had expired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Met {
    pub last_seen: Timestamp,
    pub state: ConnState,
}

/// One step of a packet's path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Traffic of an exempt service: never filtered, never logged.
    Exempt(ExemptService),
    /// Neither address is an ENI's.
    NoEni,
    /// A later fragment: it took its first fragment's verdict.
    Fragment,
    /// Which ENIs the packet leaves and reaches, and whether NACLs are on its path
    /// (between subnets, or through the internet gateway).
    Path {
        src: Option<EniIdx>,
        dst: Option<EniIdx>,
        nacls: bool,
    },
    /// The internet gateway translates between an ENI's public IPv4 address and the
    /// private one behind it (`inbound`: the public address is the destination).
    Gateway {
        eni: EniIdx,
        public: Ipv4Addr,
        private: Ipv4Addr,
        inbound: bool,
    },
    /// A security group check at `eni`.
    Sg {
        eni: EniIdx,
        dir: Direction,
        how: SgHow,
        /// The rule that allowed it (`New`, `Untracked`, `NoPorts`, `NotTracked`,
        /// `Full`).
        rule: Option<SgRuleRef>,
        /// The packet's connection-tracking key at this ENI (not for fragments
        /// without ports, nor at ENIs without groups).
        key: Option<ConnKey>,
        /// The entry the key found before the check, live or expired.
        met: Option<Met>,
        /// The connection's state after the packet (tracked or new).
        state: Option<ConnState>,
    },
    /// A network ACL check for `eni`'s subnet.
    Nacl {
        eni: EniIdx,
        dir: Direction,
        allow: bool,
        rule: NaclRuleRef,
        rule_number: u32,
        /// The packet belongs to a live tracked connection at this ENI (a reply that
        /// a stateless NACL judges like any packet).
        tracked: bool,
        /// Not AWS (`replay --stateful-nacl`): the entry denies, but the packet
        /// passed as the reply of an allowed flow (`allow` is then true).
        stateful: bool,
    },
}

fn eni_id(policy: &Policy, e: EniIdx) -> &str {
    policy
        .vpc
        .network_interfaces
        .get(e.get())
        .map_or("?", |e| e.id.as_str())
}

/// `rule 100`, `rule *`.
fn rule_label(n: u32) -> String {
    if n >= 32767 {
        "rule *".into()
    } else {
        format!("rule {n}")
    }
}

/// `(allow tcp 443 from 0.0.0.0/0)`, `(default deny)`: an entry's text after its
/// number.
pub fn nacl_entry_text(policy: &Policy, rule: NaclRuleRef, rule_number: u32) -> String {
    if rule_number >= 32767 {
        return "(default deny)".into();
    }
    let d = policy.describe_nacl_rule(rule);
    match d.find('(') {
        Some(i) => d[i..].to_string(),
        None => d,
    }
}

impl Step {
    /// The check's name as verdict lines name it: `sg-egress`, `nacl-inbound`, ...
    pub fn check(&self) -> Option<&'static str> {
        Some(match self {
            Step::Sg {
                dir: Direction::Egress,
                ..
            } => "sg-egress",
            Step::Sg { .. } => "sg-ingress",
            Step::Nacl {
                dir: Direction::Egress,
                ..
            } => "nacl-outbound",
            Step::Nacl { .. } => "nacl-inbound",
            Step::Gateway { .. } => "internet-gateway",
            _ => return None,
        })
    }

    /// Whether the packet got past this step (`None`: not a check).
    pub fn allowed(&self) -> Option<bool> {
        match self {
            Step::Sg { how, .. } => Some(how.allowed()),
            Step::Nacl { allow, .. } => Some(*allow),
            Step::Gateway { .. } => Some(true),
            _ => None,
        }
    }

    /// One line for people: `nacl-outbound acl-0abc rule 130: allow (allow tcp
    /// 32768-61000 to 10.0.1.0/24)`, `sg-egress eni-0abc: tracked (...)`. `None` for
    /// [`Step::Path`] (the caller says where the packet goes).
    pub fn text(&self, policy: &Policy) -> Option<String> {
        let vpc = &policy.vpc;
        Some(match *self {
            Step::Exempt(s) => format!("exempt: {} traffic is never filtered nor logged", s.name()),
            Step::NoEni => "no ENI of the ruleset sends or receives it: not evaluated".into(),
            Step::Fragment => "a later fragment: it takes its first fragment's verdict".into(),
            Step::Path { .. } => return None,
            Step::Gateway {
                eni,
                public,
                private,
                inbound,
            } => {
                if inbound {
                    format!(
                        "internet-gateway: {public} is the public address of {}; translated to {private}",
                        eni_id(policy, eni)
                    )
                } else {
                    format!(
                        "internet-gateway: {private} of {} leaves as its public address {public}",
                        eni_id(policy, eni)
                    )
                }
            }
            Step::Sg {
                eni,
                dir,
                how,
                rule,
                ..
            } => {
                let name = self.check().unwrap_or("?");
                let by = rule.map(|r| policy.describe_sg_rule(r));
                let by = by.as_deref().unwrap_or("?");
                let what = match how {
                    SgHow::Tracked => {
                        "tracked: a live tracked connection lets it through, whatever the rules say"
                            .to_string()
                    }
                    SgHow::New => {
                        format!("allowed by {by}; a tracked connection is created")
                    }
                    SgHow::Untracked => format!(
                        "allowed by {by}; untracked (open to all addresses both ways: no connection is kept, every packet is judged by the rules)"
                    ),
                    SgHow::NoPorts => format!("allowed by {by} (a fragment without ports: not tracked)"),
                    SgHow::NotTracked => format!(
                        "allowed by {by} (an ICMP message that connection tracking does not follow)"
                    ),
                    SgHow::NoGroup => {
                        "no security group on this interface: no check, no tracking".into()
                    }
                    SgHow::Denied => {
                        let groups = &vpc.network_interfaces[eni.get()].security_groups;
                        format!(
                            "denied: no rule of {} allows it, and no tracked connection does",
                            groups.join(", ")
                        )
                    }
                    SgHow::Full => format!(
                        "denied: allowed by {by}, but no more connections can be tracked (conntrack-full)"
                    ),
                };
                let _ = dir;
                format!("{name} {}: {what}", eni_id(policy, eni))
            }
            Step::Nacl {
                allow,
                rule,
                rule_number,
                tracked,
                stateful,
                ..
            } => {
                let name = self.check().unwrap_or("?");
                let acl = vpc
                    .network_acls
                    .get(rule.acl as usize)
                    .map_or("?", |a| a.id.as_str());
                let mut s = format!(
                    "{name} {acl} {}: {} {}",
                    rule_label(rule_number),
                    if allow { "allow" } else { "deny" },
                    nacl_entry_text(policy, rule, rule_number)
                );
                if stateful {
                    s = format!(
                        "{name} {acl} {}: allow as the reply of an allowed flow (--stateful-nacl, not AWS: the entry {} denies it)",
                        rule_label(rule_number),
                        nacl_entry_text(policy, rule, rule_number)
                    );
                }
                if tracked && !allow {
                    s.push_str(
                        " (a reply of a tracked connection: NACLs are stateless, it needs its own rule)",
                    );
                }
                s
            }
        })
    }

    /// The short part of a verdict line's `why`: `sg-egress eni-0abc tracked`,
    /// `nacl-outbound acl-0abc rule 130`, `sg-ingress eni-0abc new by sg-0abc
    /// ingress: tcp 443 from 0.0.0.0/0`. `None` for steps that are not checks.
    pub fn why(&self, policy: &Policy) -> Option<String> {
        Some(match *self {
            Step::Sg { eni, how, rule, .. } => {
                let name = self.check().unwrap_or("?");
                let e = eni_id(policy, eni);
                match (how, rule) {
                    (SgHow::Denied, _) => format!("{name} {e} no rule"),
                    (SgHow::Tracked | SgHow::NoGroup, _) | (_, None) => {
                        format!("{name} {e} {}", how.as_str())
                    }
                    (_, Some(r)) => format!(
                        "{name} {e} {} by {}",
                        how.as_str(),
                        policy.describe_sg_rule(r)
                    ),
                }
            }
            Step::Nacl {
                rule,
                rule_number,
                stateful,
                ..
            } => {
                let acl = policy
                    .vpc
                    .network_acls
                    .get(rule.acl as usize)
                    .map_or("?", |a| a.id.as_str());
                format!(
                    "{} {acl} {}{}",
                    self.check().unwrap_or("?"),
                    rule_label(rule_number),
                    if stateful { " stateful (not AWS)" } else { "" }
                )
            }
            Step::Exempt(s) => format!("exempt {}", s.name()),
            Step::Fragment => "fragment".into(),
            _ => return None,
        })
    }

    /// The step as JSON data.
    pub fn json(&self, policy: &Policy) -> Option<serde_json::Value> {
        use serde_json::json;
        let vpc = &policy.vpc;
        Some(match *self {
            Step::Sg {
                eni,
                how,
                rule,
                state,
                ..
            } => json!({
                "check": self.check(),
                "eni": eni_id(policy, eni),
                "security_groups": vpc.network_interfaces[eni.get()].security_groups,
                "allowed": how.allowed(),
                "tracking": how.as_str(),
                "rule": rule.map(|r| policy.describe_sg_rule(r)),
                "state": state.map(state_name),
                "text": self.text(policy),
            }),
            Step::Nacl {
                eni,
                allow,
                rule,
                rule_number,
                tracked,
                stateful,
                ..
            } => json!({
                "check": self.check(),
                "eni": eni_id(policy, eni),
                "subnet": vpc.network_interfaces[eni.get()].subnet_id,
                "acl": vpc.network_acls.get(rule.acl as usize).map(|a| a.id.as_str()),
                "allowed": allow,
                "rule_number": rule_number,
                "rule": if rule_number >= 32767 { "*".to_string() } else { rule_number.to_string() },
                "entry": nacl_entry_text(policy, rule, rule_number),
                "tracked": tracked,
                "stateful_nacl": stateful,
                "text": self.text(policy),
            }),
            Step::Gateway {
                eni,
                public,
                private,
                inbound,
            } => json!({
                "check": "internet-gateway",
                "eni": eni_id(policy, eni),
                "public": public.to_string(),
                "private": private.to_string(),
                "direction": if inbound { "inbound" } else { "outbound" },
                "allowed": true,
                "text": self.text(policy),
            }),
            Step::Exempt(_) | Step::NoEni | Step::Fragment => json!({
                "check": match self { Step::Exempt(_) => "exempt", Step::NoEni => "no-eni", _ => "fragment" },
                "text": self.text(policy),
            }),
            Step::Path { .. } => return None,
        })
    }
}

/// A connection state's name in JSON: `tcp-established`, `udp-stream`, ...
pub fn state_name(s: ConnState) -> &'static str {
    match s {
        ConnState::TcpUnestablished => "tcp-not-established",
        ConnState::TcpEstablished => "tcp-established",
        ConnState::TcpClosing => "tcp-closing",
        ConnState::Udp => "udp",
        ConnState::UdpStream => "udp-stream",
        ConnState::Icmp => "icmp",
        ConnState::Other => "other",
    }
}

/// The path of a traced packet: `eni-a in subnet-a -> eni-b in subnet-b`, or
/// `outside the VPC` for a side without an ENI (`check`, `--explain`).
pub fn path_text(steps: &[Step], policy: &Policy) -> Option<String> {
    let vpc = &policy.vpc;
    steps.iter().find_map(|s| match *s {
        Step::Path { src, dst, nacls } => {
            let side = |e: Option<EniIdx>| match e {
                Some(e) => {
                    let e = &vpc.network_interfaces[e.get()];
                    format!("{} in {}", e.id, e.subnet_id)
                }
                None => "outside the VPC".into(),
            };
            Some(format!(
                "{} -> {}{}",
                side(src),
                side(dst),
                if nacls {
                    ""
                } else {
                    " (one subnet: no NACL between them)"
                }
            ))
        }
        _ => None,
    })
}

/// The `why` of an accepted packet's verdict line: its checks' [`Step::why`], in
/// path order, joined by `; `.
pub fn why_text(steps: &[Step], policy: &Policy) -> String {
    let parts: Vec<String> = steps.iter().filter_map(|s| s.why(policy)).collect();
    parts.join("; ")
}

/// A fixed-size tracer for verdict lines: the checks of one packet, without
/// allocating (a path has at most two SG and two NACL checks and two gateway steps).
#[derive(Clone, Copy, Debug, Default)]
pub struct Checks {
    steps: [Option<Step>; 8],
    len: usize,
}

impl Checks {
    /// Forgets the last packet's steps.
    #[inline]
    pub fn clear(&mut self) {
        self.len = 0;
    }

    pub fn steps(&self) -> impl Iterator<Item = &Step> {
        self.steps[..self.len].iter().flatten()
    }

    /// [`why_text`] of the recorded steps, appended to `out`.
    pub fn write_why(&self, policy: &Policy, out: &mut String) {
        for (i, s) in self.steps().filter_map(|s| s.why(policy)).enumerate() {
            if i > 0 {
                out.push_str("; ");
            }
            out.push_str(&s);
        }
    }
}

/// Writes [`why_text`] for verdict lines without allocating per packet: the texts of
/// the ruleset's SG rules are made once per ruleset.
#[derive(Default)]
pub struct WhyWriter {
    policy: Option<std::sync::Arc<Policy>>,
    /// `describe_sg_rule` of every SG rule, by hit slot.
    sg: Vec<String>,
}

impl WhyWriter {
    /// Appends the `why` of `checks` (made under `policy`) to `out`; the same text as
    /// [`why_text`].
    pub fn write(&mut self, policy: &std::sync::Arc<Policy>, checks: &Checks, out: &mut String) {
        use std::fmt::Write as _;
        if !self
            .policy
            .as_ref()
            .is_some_and(|p| std::sync::Arc::ptr_eq(p, policy))
        {
            self.sg = policy
                .sg_slot_refs()
                .into_iter()
                .map(|r| policy.describe_sg_rule(r))
                .collect();
            self.policy = Some(policy.clone());
        }
        let vpc = &policy.vpc;
        let mut first = true;
        for s in checks.steps() {
            let sep = |out: &mut String, first: &mut bool| {
                if !*first {
                    out.push_str("; ");
                }
                *first = false;
            };
            match *s {
                Step::Sg { eni, how, rule, .. } => {
                    sep(out, &mut first);
                    out.push_str(s.check().unwrap_or("?"));
                    out.push(' ');
                    out.push_str(eni_id(policy, eni));
                    match (how, rule) {
                        (SgHow::Denied, _) => out.push_str(" no rule"),
                        (SgHow::Tracked | SgHow::NoGroup, _) | (_, None) => {
                            out.push(' ');
                            out.push_str(how.as_str());
                        }
                        (_, Some(r)) => {
                            out.push(' ');
                            out.push_str(how.as_str());
                            out.push_str(" by ");
                            out.push_str(&self.sg[policy.sg_slot(r)]);
                        }
                    }
                }
                Step::Nacl {
                    rule,
                    rule_number,
                    stateful,
                    ..
                } => {
                    sep(out, &mut first);
                    out.push_str(s.check().unwrap_or("?"));
                    out.push(' ');
                    out.push_str(
                        vpc.network_acls
                            .get(rule.acl as usize)
                            .map_or("?", |a| a.id.as_str()),
                    );
                    if rule_number >= 32767 {
                        out.push_str(" rule *");
                    } else {
                        let _ = write!(out, " rule {rule_number}");
                    }
                    if stateful {
                        out.push_str(" stateful (not AWS)");
                    }
                }
                Step::Exempt(_) | Step::Fragment => {
                    if let Some(w) = s.why(policy) {
                        sep(out, &mut first);
                        out.push_str(&w);
                    }
                }
                _ => {}
            }
        }
    }
}

impl Tracer for Checks {
    const ON: bool = true;
    const KEYS: bool = false;
    #[inline]
    fn step(&mut self, step: Step) {
        if matches!(step, Step::Path { .. }) {
            return;
        }
        if self.len < self.steps.len() {
            self.steps[self.len] = Some(step);
            self.len += 1;
        }
    }
}

// ------------------------------------------------------------------------------------
// The engine's side: what `Core::process` calls behind `if T::ON`.

impl Core {
    /// The entry `key` finds before a check, live or expired.
    pub(super) fn trace_met(&self, key: Option<(ConnKey, Option<ConnRef>)>) -> Option<Met> {
        let r = key?.1?;
        self.ct.entry(r).map(|e| Met {
            last_seen: Timestamp(e.last_seen),
            state: e.state,
        })
    }

    /// The entry `pkt`'s key finds at `eni` in `dir` before a check (see
    /// [`Core::trace_met`]), with the key.
    pub(super) fn trace_key(
        &self,
        policy: &Policy,
        eni: EniIdx,
        dir: Direction,
        pkt: &Packet,
    ) -> Option<(ConnKey, Option<ConnRef>)> {
        if !pkt.ports_known() || policy.eni_no_sg[eni.get()] {
            return None;
        }
        let key = super::conn_key(policy, eni, dir, pkt);
        Some((key, self.ct.find(&key)))
    }

    /// Records the SG check's step.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn trace_sg<T: Tracer>(
        &self,
        tr: &mut T,
        policy: &Policy,
        eni: EniIdx,
        dir: Direction,
        pkt: &Packet,
        outcome: SgOutcome,
        cref: Option<ConnRef>,
        before: Option<(ConnKey, Option<ConnRef>)>,
        met: Option<Met>,
    ) {
        let how = SgHow::of(outcome);
        let remote = match dir {
            Direction::Ingress => pkt.src,
            Direction::Egress => pkt.dst,
        };
        let rule = match how {
            SgHow::Tracked | SgHow::Denied | SgHow::NoGroup => None,
            _ => policy.sg_match(eni, dir, remote, pkt),
        };
        tr.step(Step::Sg {
            eni,
            dir,
            how,
            rule,
            key: before.map(|b| b.0),
            met,
            state: cref.and_then(|r| self.ct.entry(r)).map(|e| e.state),
        });
    }
}

/// Records the path and the internet gateway's translations.
pub(super) fn trace_path<T: Tracer>(
    tr: &mut T,
    src: Option<AddrOwner>,
    dst: Option<AddrOwner>,
    pkt: &Packet,
    nacls: bool,
) {
    tr.step(Step::Path {
        src: src.map(|o| o.eni),
        dst: dst.map(|o| o.eni),
        nacls,
    });
    if let (Some(o), std::net::IpAddr::V4(public)) = (src, pkt.src) {
        if let Some(private) = o.public_of {
            tr.step(Step::Gateway {
                eni: o.eni,
                public,
                private,
                inbound: false,
            });
        }
    }
    if let (Some(o), std::net::IpAddr::V4(public)) = (dst, pkt.dst) {
        if let Some(private) = o.public_of {
            tr.step(Step::Gateway {
                eni: o.eni,
                public,
                private,
                inbound: true,
            });
        }
    }
}

/// Records a NACL check's step: the entry the same matcher picks for the packet (the
/// check may have taken it from the connection's cache, which holds that entry).
pub(super) fn trace_nacl<T: Tracer>(
    tr: &mut T,
    policy: &Policy,
    eni: EniIdx,
    dir: Direction,
    pkt: &Packet,
    tracked: bool,
    passed: bool,
) {
    let d = policy.nacl_decide(policy.eni_subnet[eni.get()], dir, pkt);
    tr.step(Step::Nacl {
        eni,
        dir,
        allow: passed,
        rule: d.rule,
        rule_number: d.rule_number,
        tracked,
        stateful: passed && !d.allow,
    });
}
