//! `vpcgate replay --explain N`: the whole path of a captured packet, each check with
//! the rule that decided it, and the connection-tracking state it met (new, tracked
//! since packet K, untracked, expired at T, cut by a rule change at T).
//!
//! An [`Explainer`] is a single-threaded pass over the capture, apart from the replay
//! pipeline: the caller feeds it every frame in capture order; it drives one
//! [`Worker`] (the replay's engine, flow logs off) with a tracer, and keeps side maps
//! of which packet opened each tracked connection, which packets an untracked flow
//! had, and which flows were accepted under which ruleset. Normal replay never pays
//! for any of it. With one worker, its verdicts are those of replay for any
//! `--workers` (replay's output does not depend on the worker count).
//!
//! It reads no file: the caller (the `pipeline::explain` edge) reads the captures.

use crate::conntrack::{ConnKey, ConnState};
use crate::engine::trace::{self, SgHow, Step};
use crate::engine::{flow_shard, reason_text, Verdict, Worker, WorkerConfig};
use crate::model::{Direction, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP};
use crate::policy::Policy;
use crate::wire::packet::{tcp_flags, Packet, Timestamp, NANOS_PER_SEC};
use hashbrown::{HashMap, HashSet};
use serde_json::json;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;

/// A packet of the input: (capture file number from 0, packet number from 1 as
/// Wireshark counts frames).
pub type PacketId = (usize, u64);

/// One explained packet.
#[derive(Clone, Debug)]
pub struct Explanation {
    pub id: PacketId,
    pub time: Timestamp,
    /// `None`: the frame could not be read (`reason` says why).
    pub packet: Option<Packet>,
    pub verdict: Verdict,
    /// The verdict line's `reason` (empty for ACCEPT).
    pub reason: String,
    /// The ruleset in force (its number in the run, 0 the first).
    pub generation: usize,
    pub steps: Vec<Step>,
    /// For some steps (by index into `steps`): the tracking state the packet met.
    pub tracking: Vec<(usize, String)>,
}

/// What the side map remembers of a tracked connection.
#[derive(Clone, Copy, Debug)]
struct Conn {
    opened: PacketId,
    opened_at: Timestamp,
    last: PacketId,
    last_at: Timestamp,
    state: Option<ConnState>,
}

/// What it remembers of an untracked flow at one ENI.
#[derive(Clone, Copy, Debug)]
struct Untracked {
    first: PacketId,
    last: PacketId,
    generation: usize,
}

/// A flow, both directions alike: (protocol, lower end, higher end).
type FlowKey = (u8, (IpAddr, u16), (IpAddr, u16));

fn flow_key(p: &Packet) -> FlowKey {
    let a = (p.src, p.src_port);
    let b = (p.dst, p.dst_port);
    if a <= b {
        (p.protocol, a, b)
    } else {
        (p.protocol, b, a)
    }
}

/// The single-threaded explain pass. See the module docs.
pub struct Explainer {
    worker: Worker,
    policies: Vec<Arc<Policy>>,
    generation: usize,
    /// Rule changes still to come: (capture time, ruleset number), in time order.
    schedule: Vec<(Timestamp, usize)>,
    next_change: usize,
    /// When each ruleset took effect (`None`: from the start, or not yet).
    changed_at: Vec<Option<Timestamp>>,
    wanted: HashSet<PacketId>,
    conns: HashMap<ConnKey, Conn>,
    untracked: HashMap<ConnKey, Untracked>,
    /// The last accepted packet of each flow, and its ruleset.
    accepted: HashMap<FlowKey, (PacketId, usize)>,
    seq: u64,
    out: Vec<Explanation>,
}

impl Explainer {
    /// `policies`: the run's rulesets in the order `schedule` numbers them (the first
    /// applies from the start); `wanted`: the packets to explain.
    pub fn new(policies: Vec<Arc<Policy>>, cfg: WorkerConfig, wanted: &[PacketId]) -> Explainer {
        let n = policies.len();
        Explainer {
            worker: Worker::new(
                policies[0].clone(),
                WorkerConfig {
                    flow_log: false,
                    ..cfg
                },
            ),
            policies,
            generation: 0,
            schedule: Vec::new(),
            next_change: 0,
            changed_at: vec![None; n],
            wanted: wanted.iter().copied().collect(),
            conns: HashMap::new(),
            untracked: HashMap::new(),
            accepted: HashMap::new(),
            seq: 0,
            out: Vec::new(),
        }
    }

    /// Makes the pass a counterfactual one (not AWS: `--stateless-sg`,
    /// `--stateful-nacl`), as the replay it explains.
    pub fn set_counterfactual(&mut self, cf: crate::engine::Counterfactual) {
        self.worker.set_counterfactual(cf);
    }

    /// The rule changes, resolved at the first packet: (capture time, ruleset
    /// number), in time order.
    pub fn set_schedule(&mut self, schedule: Vec<(Timestamp, usize)>) {
        self.schedule = schedule;
        self.next_change = 0;
    }

    /// The explanations made so far, in capture order.
    pub fn finish(self) -> Vec<Explanation> {
        self.out
    }

    /// Whether every wanted packet has been explained.
    pub fn done(&self) -> bool {
        self.out.len() == self.wanted.len()
    }

    /// A frame that could not be read: `reason` is the verdict line's (`not-ip`,
    /// `malformed ...`).
    pub fn unreadable(&mut self, id: PacketId, ts: Timestamp, reason: String) {
        self.seq += 1;
        if self.wanted.contains(&id) {
            self.out.push(Explanation {
                id,
                time: ts,
                packet: None,
                verdict: Verdict::None,
                reason,
                generation: self.generation,
                steps: Vec::new(),
                tracking: Vec::new(),
            });
        }
    }

    /// Judges one packet (every packet of the input, in capture order).
    pub fn packet(&mut self, id: PacketId, ts: Timestamp, pkt: &Packet) {
        while let Some(&(at, g)) = self.schedule.get(self.next_change) {
            if ts < at {
                break;
            }
            self.worker.set_policy(self.policies[g].clone(), g);
            self.generation = g;
            self.changed_at[g] = Some(at);
            self.next_change += 1;
        }
        let policy = self.policies[self.generation].clone();
        let shard = flow_shard(pkt, &policy);
        let mut steps: Vec<Step> = Vec::new();
        let d = self
            .worker
            .handle_traced(pkt, ts, self.seq, shard, &mut steps);
        self.worker.housekeeping(ts);
        self.seq += 1;
        let want = self.wanted.contains(&id);
        let mut tracking = Vec::new();
        for (i, s) in steps.iter().enumerate() {
            let text = self.side_maps(id, ts, s, want);
            if let Some(t) = text {
                tracking.push((i, t));
            }
        }
        let flow = flow_key(pkt);
        let said = tracking
            .iter()
            .any(|(_, t): &(usize, String)| t.contains("rule change"));
        if want && d.verdict == Verdict::Reject && !said {
            if let Some(&(last, g)) = self.accepted.get(&flow) {
                if g != self.generation {
                    let at = self.changed_at[self.generation]
                        .map(|t| format!(" at {}", time_text(t)))
                        .unwrap_or_default();
                    let i = steps
                        .iter()
                        .position(|s| s.allowed() == Some(false))
                        .unwrap_or(0);
                    tracking.push((
                        i,
                        format!(
                            "cut by the rule change{at}: this flow's packets passed until packet {} under the earlier rules",
                            last.1
                        ),
                    ));
                }
            }
        }
        if d.verdict == Verdict::Accept {
            self.accepted.insert(flow, (id, self.generation));
        }
        if want {
            self.out.push(Explanation {
                id,
                time: ts,
                packet: Some(*pkt),
                verdict: d.verdict,
                reason: reason_text(d.reason, &policy),
                generation: self.generation,
                steps,
                tracking,
            });
        }
    }

    /// Updates the side maps for one step; for a wanted packet, the tracking state it
    /// met there.
    fn side_maps(&mut self, id: PacketId, ts: Timestamp, s: &Step, want: bool) -> Option<String> {
        match *s {
            Step::Sg {
                eni,
                how,
                key,
                state,
                ..
            } => {
                let key = key?;
                let policy = &self.policies[self.generation];
                let timeouts = policy.eni_timeouts[eni.get()];
                let expired = |c: &Conn| {
                    let secs = c.state.map_or(0, |s| s.timeout_secs(&timeouts));
                    let end = Timestamp(c.last_at.0 + u64::from(secs) * NANOS_PER_SEC);
                    let how = if c.state == Some(ConnState::TcpClosing) {
                        format!(
                            "was closed (RST, or FIN both ways) and removed {secs} s after its last packet, at {}",
                            time_text(end)
                        )
                    } else {
                        format!(
                            "expired at {} ({secs} s idle after packet {} in state {})",
                            time_text(end),
                            c.last.1,
                            state_text(c.state)
                        )
                    };
                    format!("the connection opened by packet {} {how}", c.opened.1)
                };
                match how {
                    SgHow::Tracked => {
                        let c = self.conns.get_mut(&key);
                        let text = c.as_ref().map(|c| {
                            format!(
                                "tracked since packet {} ({}), last seen at packet {}",
                                c.opened.1,
                                time_text(c.opened_at),
                                c.last.1
                            )
                        });
                        if let Some(c) = c {
                            c.last = id;
                            c.last_at = ts;
                            c.state = state;
                        }
                        Some(text.unwrap_or_else(|| "tracked".into()))
                    }
                    SgHow::New => {
                        let before = self.conns.get(&key).map(&expired);
                        self.conns.insert(
                            key,
                            Conn {
                                opened: id,
                                opened_at: ts,
                                last: id,
                                last_at: ts,
                                state,
                            },
                        );
                        want.then(|| match before {
                            Some(b) => format!("new: it opens a tracked connection; {b}"),
                            None => "new: it opens a tracked connection".into(),
                        })
                    }
                    SgHow::Untracked => {
                        let g = self.generation;
                        let u = self.untracked.entry(key).or_insert(Untracked {
                            first: id,
                            last: id,
                            generation: g,
                        });
                        let first = u.first;
                        u.last = id;
                        u.generation = g;
                        want.then(|| {
                            if first == id {
                                "untracked: no connection is kept; every packet of the flow is judged by the rules".into()
                            } else {
                                format!(
                                    "untracked (the flow's first packet was packet {}): no connection is kept; every packet is judged by the rules",
                                    first.1
                                )
                            }
                        })
                    }
                    SgHow::Denied if want => {
                        if let Some(c) = self.conns.get(&key) {
                            return Some(format!("no live tracked connection: {}", expired(c)));
                        }
                        if let Some(u) = self.untracked.get(&key) {
                            if u.generation != self.generation {
                                let at = self.changed_at[self.generation]
                                    .map(|t| format!(" at {}", time_text(t)))
                                    .unwrap_or_default();
                                return Some(format!(
                                    "untracked flow (since packet {}, last allowed at packet {}) cut by the rule change{at}: untracked flows follow the new rules at once",
                                    u.first.1, u.last.1
                                ));
                            }
                        }
                        Some("no tracked connection: the rules alone decide".into())
                    }
                    SgHow::NotTracked if want => Some(
                        "not tracked: an ICMP error, or a reply without its query's connection"
                            .into(),
                    ),
                    SgHow::NoGroup if want => Some("no security group: no tracking".into()),
                    SgHow::Full if want => {
                        Some("the tracked-connection allowance is used up".into())
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

fn state_text(s: Option<ConnState>) -> &'static str {
    match s {
        Some(ConnState::TcpUnestablished) => "tcp not established",
        Some(ConnState::TcpEstablished) => "tcp established",
        Some(ConnState::TcpClosing) => "tcp closing",
        Some(ConnState::Udp) => "udp",
        Some(ConnState::UdpStream) => "udp stream",
        Some(ConnState::Icmp) => "icmp",
        Some(ConnState::Other) => "other",
        None => "?",
    }
}

/// Unix seconds with nine decimals, as verdict lines write times.
pub fn time_text(t: Timestamp) -> String {
    format!("{}.{:09}", t.secs(), t.subsec_nanos())
}

/// `SYN`, `SYN-ACK`, `ACK FIN`, ...
fn flags_text(f: u8) -> String {
    let mut v = Vec::new();
    if f & tcp_flags::SYN != 0 && f & tcp_flags::ACK != 0 {
        v.push("SYN-ACK");
    } else if f & tcp_flags::SYN != 0 {
        v.push("SYN");
    } else if f & tcp_flags::ACK != 0 {
        v.push("ACK");
    }
    if f & tcp_flags::FIN != 0 {
        v.push("FIN");
    }
    if f & tcp_flags::RST != 0 {
        v.push("RST");
    }
    if f & tcp_flags::PSH != 0 {
        v.push("PSH");
    }
    v.join(" ")
}

/// `10.0.11.11:8080 -> 10.0.2.10:12756 tcp SYN-ACK`.
pub fn packet_text(p: &Packet) -> String {
    let end = |a: &IpAddr, port: u16| match a {
        IpAddr::V6(_) => format!("[{a}]:{port}"),
        IpAddr::V4(_) => format!("{a}:{port}"),
    };
    let proto = crate::model::Protocol::Number(p.protocol).label();
    match p.protocol {
        PROTO_ICMP | PROTO_ICMPV6 => format!(
            "{} -> {} {proto} type {} code {}",
            p.src, p.dst, p.icmp_type, p.icmp_code
        ),
        PROTO_TCP => format!(
            "{} -> {} tcp {}",
            end(&p.src, p.src_port),
            end(&p.dst, p.dst_port),
            flags_text(p.tcp_flags)
        ),
        _ if p.src_port != 0 || p.dst_port != 0 => format!(
            "{} -> {} {proto}",
            end(&p.src, p.src_port),
            end(&p.dst, p.dst_port)
        ),
        _ => format!("{} -> {} {proto}", p.src, p.dst),
    }
}

impl Explanation {
    /// The explanation for people. `file`: the capture's name; `ruleset`: the name
    /// of the ruleset in force.
    pub fn text(&self, policy: &Policy, file: &str, ruleset: &str) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "packet {} of {file}, time {}",
            self.id.1,
            time_text(self.time)
        );
        match &self.packet {
            Some(p) => {
                let _ = writeln!(s, "  {}", packet_text(p));
            }
            None => {
                let _ = writeln!(s, "  not evaluated: {}", self.reason);
                return s;
            }
        }
        let _ = writeln!(s, "  rules: {ruleset}");
        if let Some(p) = trace::path_text(&self.steps, policy) {
            let _ = writeln!(s, "  path: {p}");
        }
        let mut n = 0;
        for (i, st) in self.steps.iter().enumerate() {
            let Some(t) = st.text(policy) else { continue };
            n += 1;
            let _ = writeln!(s, "  {n}. {t}");
            for (_, tr) in self.tracking.iter().filter(|(j, _)| *j == i) {
                let _ = writeln!(s, "     tracking: {tr}");
            }
        }
        match self.verdict {
            Verdict::Accept => {
                let _ = writeln!(s, "  verdict: ACCEPT");
            }
            v => {
                let _ = writeln!(s, "  verdict: {} {}", v.as_str(), self.reason);
            }
        }
        s
    }

    /// The explanation as JSON.
    pub fn json(&self, policy: &Policy, file: &str, ruleset: &str) -> serde_json::Value {
        let checks: Vec<serde_json::Value> = self
            .steps
            .iter()
            .enumerate()
            .filter_map(|(i, st)| {
                let mut v = st.json(policy)?;
                let tr: Vec<&String> = self
                    .tracking
                    .iter()
                    .filter(|(j, _)| *j == i)
                    .map(|(_, t)| t)
                    .collect();
                if let Some(o) = v.as_object_mut() {
                    if !tr.is_empty() {
                        o.insert("tracking_state".into(), json!(tr));
                    }
                }
                Some(v)
            })
            .collect();
        json!({
            "file": file,
            "packet": self.id.1,
            "time": time_text(self.time),
            "summary": self.packet.as_ref().map(packet_text),
            "src": self.packet.map(|p| p.src.to_string()),
            "dst": self.packet.map(|p| p.dst.to_string()),
            "protocol": self.packet.map(|p| p.protocol),
            "rules": ruleset,
            "path": trace::path_text(&self.steps, policy),
            "checks": checks,
            "action": self.verdict.as_str(),
            "reason": if self.reason.is_empty() { None } else { Some(&self.reason) },
        })
    }

    /// Whether the packet met a tracked connection at an ENI in `dir`.
    pub fn tracked(&self, dir: Direction) -> bool {
        self.steps
            .iter()
            .any(|s| matches!(s, Step::Sg { dir: d, how: SgHow::Tracked, .. } if *d == dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::packet::Fragment;

    /// A UDP server whose group allows 53 in and nothing out: its replies pass only
    /// while the query's connection lives (UDP: 30 s idle, manual "Connection
    /// tracking").
    fn explainer(wanted: &[PacketId]) -> Explainer {
        let vpc = crate::load::load_str(
            "x.toml",
            r#"
            [vpc]
            id = "vpc-1"
            cidrs = ["10.0.0.0/16"]
            [[subnets]]
            id = "subnet-a"
            cidr = "10.0.1.0/24"
            [[security_groups]]
            id = "sg-dns"
            ingress = [ { protocol = "udp", ports = "53", cidr = "192.0.2.0/24" } ]
            [[network_interfaces]]
            id = "eni-dns"
            subnet = "subnet-a"
            private_ips = ["10.0.1.53"]
            security_groups = ["sg-dns"]
        "#,
        )
        .unwrap();
        let policy = Arc::new(Policy::compile(Arc::new(vpc), &["eni-dns".to_string()]));
        Explainer::new(vec![policy], WorkerConfig::default(), wanted)
    }

    fn udp(query: bool) -> Packet {
        let (c, s): (IpAddr, IpAddr) = ("192.0.2.7".parse().unwrap(), "10.0.1.53".parse().unwrap());
        Packet {
            src: if query { c } else { s },
            dst: if query { s } else { c },
            protocol: 17,
            src_port: if query { 40000 } else { 53 },
            dst_port: if query { 53 } else { 40000 },
            icmp_type: 0,
            icmp_code: 0,
            icmp_id: 0,
            tcp_flags: 0,
            ip_len: 60,
            fragment: Fragment::None,
        }
    }

    fn at(s: u64) -> Timestamp {
        Timestamp::from_secs_nanos(1_700_000_000 + s, 0)
    }

    #[test]
    fn tracked_since_expired_at_and_new_again() {
        let mut ex = explainer(&[(0, 2), (0, 3), (0, 4)]);
        ex.packet((0, 1), at(0), &udp(true)); // opens the connection
        ex.packet((0, 2), at(1), &udp(false)); // its reply, tracked
        ex.packet((0, 3), at(40), &udp(false)); // 39 s idle > 30 s: expired
        ex.packet((0, 4), at(41), &udp(true)); // a new query: a new connection
        let e = ex.finish();
        let sg = |e: &Explanation| e.tracking.iter().map(|t| t.1.clone()).collect::<Vec<_>>();
        assert_eq!(e[0].verdict, Verdict::Accept);
        assert!(sg(&e[0])[0].starts_with("tracked since packet 1 (1700000000.000000000)"));
        assert_eq!(e[1].verdict, Verdict::Reject);
        assert_eq!(e[1].reason, "sg-egress eni-dns no rule");
        // Last packet at 1 s, 30 s of UDP idle time: expired at 31 s.
        assert_eq!(
            sg(&e[1]),
            ["no live tracked connection: the connection opened by packet 1 expired at 1700000031.000000000 (30 s idle after packet 2 in state udp)"]
        );
        assert!(sg(&e[2])[0].starts_with("new: it opens a tracked connection; the connection opened by packet 1 expired at 1700000031"));
    }
}
