//! The lab of the engine-level suites: one engine and one flow-log aggregator over one
//! ruleset, fed packets at synthetic times, and the ruleset scaffolding they share.
//!
//! It drives `Engine` and `Aggregator` directly rather than `engine::Worker`: the suites
//! read the engine's counters between packets (`Lab::stats`, `Lab::nacl_path`), which a
//! `Worker` hands out only when it finishes.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::packets::Burst;
use vpcgate::engine::{reason_text, Decision, Engine, EngineStats, Verdict};
use vpcgate::flowlog::{Aggregator, EniMeta, FlowRecord, LogFormat};
use vpcgate::model::Vpc;
use vpcgate::pipeline::eni_table;
use vpcgate::policy::Policy;
use vpcgate::wire::packet::{Packet, Timestamp};

/// The default flow-log format (version 2), for [`Lab::records`].
pub const DEFAULT: &str = "";

/// Loads a test ruleset; a ruleset that does not load fails the test, showing it.
pub fn ruleset(toml: &str) -> Vpc {
    vpcgate::load::load_str("lab.toml", toml)
        .unwrap_or_else(|e| panic!("the test ruleset does not load:\n{e}\n---\n{toml}"))
}

/// One engine and one aggregator over one ruleset, fed packets at synthetic times.
pub struct Lab {
    pub engine: Engine,
    pub agg: Aggregator,
    seq: u64,
    generation: usize,
    /// Every ENI id, sorted: an ENI's stable number is its position.
    pub ids: Vec<String>,
    metas: Vec<EniMeta>,
    /// The ruleset in force.
    pub vpc: Arc<Vpc>,
}

impl Lab {
    /// A lab over `toml`, with 600-second flow-log windows.
    pub fn new(toml: &str) -> Lab {
        Lab::with_interval(toml, 600)
    }

    /// A lab over `toml`, with `interval`-second flow-log windows.
    pub fn with_interval(toml: &str, interval: u32) -> Lab {
        Lab::of_with_interval(ruleset(toml), interval)
    }

    /// A lab over a ruleset already loaded, with 600-second windows.
    pub fn of(vpc: Vpc) -> Lab {
        Lab::of_with_interval(vpc, 600)
    }

    fn of_with_interval(vpc: Vpc, interval: u32) -> Lab {
        let vpc = Arc::new(vpc);
        let (ids, metas) = eni_table(&[&vpc]);
        let policy = Policy::compile(vpc.clone(), &ids);
        Lab {
            engine: Engine::new(Arc::new(policy)),
            agg: Aggregator::new(interval),
            seq: 0,
            generation: 0,
            ids,
            metas,
            vpc,
        }
    }

    /// The rules change (same ENIs): from the next packet on, `toml` applies, as a new
    /// ruleset generation (`--rules-at`).
    pub fn change_rules(&mut self, toml: &str) {
        self.change_vpc(ruleset(toml));
    }

    /// Like [`Lab::change_rules`], with a ruleset already loaded (and maybe edited).
    pub fn change_vpc(&mut self, vpc: Vpc) {
        let vpc = Arc::new(vpc);
        self.generation += 1;
        let policy = Policy::compile(vpc.clone(), &self.ids);
        self.engine.set_policy(Arc::new(policy), self.generation);
        self.vpc = vpc;
    }

    /// Sends `p` at capture time `ts`: the engine judges it, the aggregator observes it.
    pub fn send_at(&mut self, ts: Timestamp, p: Packet) -> Decision {
        let d = self.engine.process(&p, ts);
        for o in d.obs.iter().flatten() {
            self.agg.observe(o, ts, self.seq);
        }
        self.seq += 1;
        d
    }

    /// Sends `p` at Unix second `secs`.
    pub fn send(&mut self, secs: u64, p: Packet) -> Decision {
        self.send_at(Timestamp::from_secs_nanos(secs, 0), p)
    }

    /// Sends `p` at `ms` milliseconds after Unix second `secs`.
    pub fn send_ms(&mut self, secs: u64, ms: u32, p: Packet) -> Decision {
        self.send_at(Timestamp::from_secs_nanos(secs, ms * 1_000_000), p)
    }

    /// The verdict of `p` at `ms` milliseconds after Unix second `secs`, as text.
    pub fn judge_ms(&mut self, secs: u64, ms: u32, p: Packet) -> String {
        let d = self.send_ms(secs, ms, p);
        self.text(&d)
    }

    /// The verdict of `p` at `secs`, as text: `ACCEPT`, `REJECT <reason>`, `NONE <reason>`.
    pub fn judge(&mut self, secs: u64, p: Packet) -> String {
        let d = self.send(secs, p);
        self.text(&d)
    }

    /// The verdict of `p` at `secs` and its reason text (empty for a plain ACCEPT), apart.
    pub fn verdict_and_reason(&mut self, secs: u64, p: Packet) -> (Verdict, String) {
        let d = self.send(secs, p);
        (d.verdict, reason_text(d.reason, self.engine.policy()))
    }

    /// A decision as text: `ACCEPT`, `REJECT <reason>`, `NONE <reason>`.
    pub fn text(&self, d: &Decision) -> String {
        let reason = reason_text(d.reason, self.engine.policy());
        if reason.is_empty() {
            d.verdict.as_str().to_string()
        } else {
            format!("{} {reason}", d.verdict.as_str())
        }
    }

    /// The flow-log observations of a decision: `eni-a egress ACCEPT`.
    pub fn seen(&self, d: &Decision) -> Vec<String> {
        d.obs
            .iter()
            .flatten()
            .map(|o| format!("{} {} {}", self.ids[o.eni.get()], o.direction, o.action))
            .collect()
    }

    /// Sends `p` and returns its verdict and its observations.
    pub fn path(&mut self, secs: u64, p: Packet) -> (String, Vec<String>) {
        let d = self.send(secs, p);
        (self.text(&d), self.seen(&d))
    }

    /// The engine's counters so far.
    pub fn stats(&self) -> EngineStats {
        self.engine.stats()
    }

    /// NACL entries hit under the current rules: `acl-x inbound 110` → hits.
    pub fn nacl_hits(&self) -> BTreeMap<String, u64> {
        let policy = self.engine.policy();
        let mut out = BTreeMap::new();
        let stats = self.engine.stats();
        let Some(hits) = stats.nacl_hits.get(self.generation) else {
            return out;
        };
        for (r, n) in hits.iter() {
            let acl = &policy.vpc.network_acls[r.acl as usize];
            let (dir, list) = if r.egress {
                ("outbound", &acl.outbound)
            } else {
                ("inbound", &acl.inbound)
            };
            let number = list
                .get(r.entry as usize)
                .map_or("?".to_string(), |e| e.rule_number.to_string());
            *out.entry(format!("{} {dir} {number}", acl.id)).or_insert(0) += *n;
        }
        out
    }

    /// Sends `p`: its verdict, and the NACL entries that decided on its path (sorted).
    pub fn nacl_path(&mut self, secs: u64, p: Packet) -> (String, Vec<String>) {
        let before = self.nacl_hits();
        let verdict = self.judge(secs, p);
        let after = self.nacl_hits();
        let mut rules = Vec::new();
        for (k, n) in &after {
            for _ in before.get(k).copied().unwrap_or(0)..*n {
                rules.push(k.clone());
            }
        }
        (verdict, rules)
    }

    /// Closes every window and renders every record in `format` (`DEFAULT` or a custom
    /// format), in output order (window, ENI, first packet).
    pub fn records(&mut self, format: &str) -> Vec<String> {
        self.records_where(format, |_| true)
    }

    /// Like [`Lab::records`], only the records of interface `eni`.
    pub fn records_at(&mut self, eni: &str, format: &str) -> Vec<String> {
        let n = self.ids.iter().position(|i| i == eni).unwrap() as u32;
        self.records_where(format, |r| r.eni.0 == n)
    }

    fn records_where(&mut self, format: &str, keep: impl Fn(&FlowRecord) -> bool) -> Vec<String> {
        let fmt = if format.is_empty() {
            LogFormat::default_format()
        } else {
            LogFormat::parse(format).unwrap()
        };
        let mut recs = Vec::new();
        self.agg.close_all(&mut recs);
        recs.sort();
        recs.iter()
            .filter(|r| keep(r))
            .map(|r| render(&fmt, r, &self.metas[r.eni.get()]))
            .collect()
    }
}

/// One record as a line of `fmt`, without its newline.
pub fn render(fmt: &LogFormat, r: &FlowRecord, meta: &EniMeta) -> String {
    let mut out = Vec::new();
    fmt.write_record(r, meta, &mut out);
    let line = String::from_utf8(out).unwrap();
    line.strip_suffix('\n').unwrap_or(&line).to_string()
}

/// `run(rules, packets)`: a fresh lab, every packet at its second; the verdicts, and the
/// records in the default format.
pub fn run(toml: &str, packets: &[(u64, Packet)]) -> (Vec<String>, Vec<String>) {
    let mut lab = Lab::new(toml);
    let verdicts = packets.iter().map(|&(t, p)| lab.judge(t, p)).collect();
    (verdicts, lab.records(DEFAULT))
}

/// Plays bursts interleaved by time; at one second, in the order given. Returns every
/// verdict.
pub fn play(lab: &mut Lab, bursts: &[Burst]) -> Vec<String> {
    let mut events: Vec<(u64, usize, u64, Packet)> = Vec::new();
    for (b, burst) in bursts.iter().enumerate() {
        for (i, (t, p)) in burst.packets().into_iter().enumerate() {
            events.push((t, b, i as u64, p));
        }
    }
    events.sort_by_key(|&(t, b, i, _)| (t, b, i));
    events
        .into_iter()
        .map(|(t, _, _, p)| lab.judge(t, p))
        .collect()
}

/// Whether every verdict is a plain `ACCEPT`.
pub fn all_accepted(verdicts: &[String]) -> bool {
    verdicts.iter().all(|v| v == "ACCEPT")
}

// ---------------------------------------------------------------------------------
// Ruleset scaffolding: the VPC/subnet/SG/ENI boilerplate around a few rule lines.
// ---------------------------------------------------------------------------------

/// A VPC (`cidr`) with one subnet (`cidr`, default NACL: allow all), one ENI
/// `eni-1235b8ca123456789` (account 123456789010, us-east-1) at `addr`, and the security
/// group `sg-1` with `ingress` and `egress` (rule tables' inner lines).
pub fn sg_only_eni(addr: &str, cidr: &str, ingress: &str, egress: &str) -> String {
    format!(
        r#"
        [vpc]
        id = "vpc-abcdefab012345678"
        account_id = "123456789010"
        region = "us-east-1"
        cidrs = ["{cidr}"]
        [[subnets]]
        id = "subnet-aaaaaaaa012345678"
        cidr = "{cidr}"
        [[security_groups]]
        id = "sg-1"
        ingress = [{ingress}]
        egress = [{egress}]
        [[network_interfaces]]
        id = "eni-1235b8ca123456789"
        subnet = "subnet-aaaaaaaa012345678"
        private_ips = ["{addr}"]
        security_groups = ["sg-1"]
        "#
    )
}

/// One ENI `eni-0a` at 10.0.1.10 (account 123456789012, VPC 10.0.0.0/16) in subnet-0a
/// 10.0.1.0/24, whose NACL `acl-0a` has the `inbound`/`outbound` lines of `nacl`, and
/// whose security group `sg-0a` has the rules `sg_in` / `sg_out`.
pub fn nacl_and_sg_eni(nacl: &str, sg_in: &str, sg_out: &str) -> String {
    NACL_AND_SG_ENI
        .replace("NACL", nacl)
        .replace("SG_IN", sg_in)
        .replace("SG_OUT", sg_out)
}

const NACL_AND_SG_ENI: &str = r#"
[vpc]
id = "vpc-0one"
account_id = "123456789012"
cidrs = ["10.0.0.0/16"]

[[subnets]]
id = "subnet-0a"
cidr = "10.0.1.0/24"
network_acl = "acl-0a"

[[network_acls]]
id = "acl-0a"
NACL

[[security_groups]]
id = "sg-0a"
ingress = [ SG_IN ]
egress = [ SG_OUT ]

[[network_interfaces]]
id = "eni-0a"
subnet = "subnet-0a"
private_ips = ["10.0.1.10"]
security_groups = ["sg-0a"]
"#;

/// A NACL that allows everything, both ways (IPv4), for [`nacl_and_sg_eni`].
pub const NACL_ALLOW_ALL: &str = r#"
inbound = [ { rule = 100, protocol = "-1", cidr = "0.0.0.0/0", action = "allow" } ]
outbound = [ { rule = 100, protocol = "-1", cidr = "0.0.0.0/0", action = "allow" } ]
"#;
