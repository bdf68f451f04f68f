//! Property tests (proptest) of the emulation's invariants: random VPCs, random
//! packets, random captures, garbage included ("Hostile input", part 2).
//!
//! The invariants, each a test below (case counts in the tests; `PROPTEST_CASES=N`
//! runs N cases of each instead):
//!
//! 1. **Compiled matching equals a linear reading of the rules**
//!    (`nacl_and_sg_matching_equals_linear_reading`). Random VPCs (three subnets, two
//!    custom NACLs and maybe the AWS default one, three security groups, two prefix
//!    lists, one to four ENIs) are built as [`vpcgate::model`] values and validated,
//!    then compiled by [`Policy::compile`]. For random packets whose addresses are
//!    drawn near the rules' CIDRs and among the ENIs' addresses, every subnet's NACL
//!    (both directions) and every ENI's security groups (both directions) are asked, and
//!    the answer must equal the reference written in this file straight from
//!    EMULATION.md §3, §5 and the README's manual, without looking at `src/policy/`:
//!    - a **linear reading of a NACL** takes the subnet's NACL as written (its explicit
//!      association, else the NACL marked default, else the one AWS creates: rule 100
//!      allows all IPv4, 101 all IPv6 when the VPC has an IPv6 CIDR), sorts its entries
//!      by rule number and returns the first entry whose family, CIDR (the source
//!      inbound, the destination outbound), protocol and ports/ICMP type-code match; if
//!      none does, the `*` rule denies (32767 for IPv4, 32768 for IPv6);
//!    - a **linear reading of the security groups** allows when any rule, of any group
//!      of the ENI, in the packet's direction, matches: its peer (a CIDR of the packet's
//!      family; a prefix list's entries; a referenced group's members' private IPv4 and
//!      IPv6 addresses, never public ones) holds the remote address (the source inbound,
//!      the destination outbound), and its protocol and ports match.
//!
//!    Protocol `-1` matches everything, and a protocol other than 6, 17, 1, 58 matches
//!    every port whatever the rule says; ICMP rules read type and code (`-1` a
//!    wildcard); a NACL rule for protocol 58 with an IPv4 CIDR allows every type and
//!    code; ports are the destination port; a non-first fragment (ports unknown) matches
//!    only rules that allow every port. The rule that `sg_match` names must itself
//!    match, and the untracked predicates (`sg_open_admits`, `sg_open_all_ports`) are
//!    read the same way (only CIDR rules `0.0.0.0/0`, `::/0` count).
//!    `sg_match_credits_first_rule_in_group_id_order` checks the manual's coverage
//!    decision: the credited rule is the first matching one with the ENI's groups
//!    taken by id.
//! 2. **A reply to an accepted tracked flow is never rejected by a security group**
//!    (`reply_to_accepted_flow_never_rejected_by_sg`). Random rulesets and random
//!    traffic through one [`Engine`]; whenever a packet with known ports is accepted,
//!    its reverse (addresses and ports swapped, random TCP flags) sent less than 5 s
//!    later (under every idle timeout, the 5-s closing one included) must not be
//!    rejected with an SG reason. A NACL may reject it: NACLs are stateless.
//! 3. **A NACL decision never depends on earlier packets**
//!    (`nacl_outcome_independent_of_history`). (a) With security groups that allow
//!    everything, a probe packet gets the same decision from a fresh engine as from an
//!    engine that has seen a random prefix of traffic, and that decision is the
//!    reference's NACL path (EMULATION.md §2); (b) with the random security groups,
//!    every NACL reject of the engine, and every NACL check it must have passed, agrees
//!    with the reference NACLs, whatever came before. Non-first fragments are left out
//!    of the probes: they take their first fragment's verdict, by design.
//! 4. **The output is the same bytes for 1, 2 and 3 workers**
//!    (`output_identical_for_1_2_3_workers`). Random captures built with
//!    [`vpcgate::synth::Timeline`] between SecureCart's ENIs, its public addresses, exempt
//!    services and the internet, over several 60-s windows, sorted or not (time going
//!    back), with garbage frames and maybe a ruleset change (`--rules-at`), replayed
//!    through [`vpcgate::pipeline::run`]: flow log, verdicts, accepted and rejected
//!    pcaps are compared byte for byte.
//! 5. **Every packet gets exactly one verdict** (`every_packet_gets_one_verdict`).
//!    The same kind of captures: the verdicts file has one line per frame, `packet`
//!    numbered 1..=N in order, each line's action counted in the summary, and
//!    accepted + rejected + not evaluated = packets = N; the accepted and rejected
//!    pcaps hold as many packets as the summary says.
//!
//! `late_records_across_ruleset_change_same_for_any_workers` replays one capture that
//! property 4 found, many times, as a regression test.

use proptest::prelude::*;
use proptest::sample::{select, subsequence};
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use vpcgate::capture::{CaptureReader, PcapWriter};
use vpcgate::engine::{reason_text, Decision, Engine, Reason, Verdict};
use vpcgate::flowlog::LogFormat;
use vpcgate::model::{
    Direction, NetworkAcl, NetworkAclEntry, NetworkInterface, Origin, PortSpec, PrefixList,
    Protocol, RuleAction, SecurityGroup, SecurityGroupRule, SgPeer, Subnet, Vpc,
};
use vpcgate::pipeline::{ReplayConfig, RulesetAt, Summary};
use vpcgate::policy::Policy;
use vpcgate::synth::{Close, Frame, Timeline};
use vpcgate::wire::packet::{linktype, Fragment, Packet, Timestamp};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

// =================================================================================
// Running properties
// =================================================================================

/// Runs `test` on `cases` values of `strategy` (or `PROPTEST_CASES`); a failure panics
/// with proptest's report: the reason and the shrunk input.
fn check<S>(
    name: &str,
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S: Strategy,
    S::Value: fmt::Debug,
{
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(cases);
    let config = Config {
        cases,
        // No regression files written into the repository; a failure prints its input.
        failure_persistence: None,
        max_shrink_time: 120_000,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    if let Err(e) = runner.run(&strategy, test) {
        panic!("property `{name}` does not hold.\n{e}");
    }
}

fn fail(msg: String) -> Result<(), TestCaseError> {
    Err(TestCaseError::fail(msg))
}

// =================================================================================
// Addresses drawn near a small universe, so that rules and packets meet often
// =================================================================================

const V4_ANCHORS: &[[u8; 4]] = &[
    [0, 0, 0, 0],
    [10, 0, 0, 0],
    [10, 0, 1, 0],
    [10, 0, 1, 128],
    [10, 0, 2, 0],
    [10, 0, 3, 0],
    [192, 0, 2, 0],
    [198, 51, 100, 0],
    [203, 0, 113, 0],
    [255, 255, 255, 0],
];

const V6_ANCHORS: &[&str] = &[
    "::",
    "::ffff:10.0.1.0",
    "2600:1f18:4a3:6d00::",
    "2600:1f18:4a3:6d01::",
    "2600:1f18:4a3:6d02::",
    "2600:1f18:4a3:6d03::",
    "2001:db8::",
    "fd00:ec2::",
    "ffff::",
];

fn v4_addr() -> BoxedStrategy<Ipv4Addr> {
    let offset = prop_oneof![
        4 => 0u32..=40,
        2 => 0u32..=300,
        1 => Just(u32::MAX),
        1 => any::<u32>(),
    ];
    (select(V4_ANCHORS), offset)
        .prop_map(|(a, o)| Ipv4Addr::from(u32::from(Ipv4Addr::from(a)).wrapping_add(o)))
        .boxed()
}

fn v6_addr() -> BoxedStrategy<Ipv6Addr> {
    let offset = prop_oneof![
        4 => 0u128..=40,
        2 => 0u128..=300,
        1 => Just(u128::MAX),
        1 => (0u128..4).prop_map(|k| k << 64),
        1 => any::<u128>(),
    ];
    (select(V6_ANCHORS), offset)
        .prop_map(|(a, o)| {
            let a: Ipv6Addr = a.parse().unwrap();
            Ipv6Addr::from(u128::from(a).wrapping_add(o))
        })
        .boxed()
}

/// A CIDR, host bits possibly set (the model canonicalises it, as the API does).
fn v4_net() -> BoxedStrategy<IpNet> {
    let prefix = prop_oneof![1 => Just(0u8), 1 => 1u8..=15, 4 => 16u8..=32];
    (v4_addr(), prefix)
        .prop_map(|(a, p)| IpNet::V4(Ipv4Net::new(a, p).unwrap()))
        .boxed()
}

fn v6_net() -> BoxedStrategy<IpNet> {
    let prefix = prop_oneof![1 => Just(0u8), 1 => 1u8..=55, 4 => 56u8..=128];
    (v6_addr(), prefix)
        .prop_map(|(a, p)| IpNet::V6(Ipv6Net::new(a, p).unwrap()))
        .boxed()
}

fn any_net() -> BoxedStrategy<IpNet> {
    prop_oneof![3 => v4_net(), 2 => v6_net()].boxed()
}

const PORTS: &[u16] = &[
    0, 1, 21, 22, 23, 53, 79, 80, 81, 442, 443, 444, 1023, 1024, 1025, 5432, 8080, 32767, 32768,
    60999, 61000, 61001, 65534, 65535,
];
const ICMP_TYPES: &[u8] = &[0, 1, 2, 3, 4, 5, 8, 11, 128, 129, 255];
const ICMP_CODES: &[u8] = &[0, 1, 3, 4, 5, 255];

fn port() -> BoxedStrategy<u16> {
    prop_oneof![4 => select(PORTS), 1 => any::<u16>()].boxed()
}

fn icmp_type() -> BoxedStrategy<u8> {
    prop_oneof![4 => select(ICMP_TYPES), 1 => any::<u8>()].boxed()
}

fn icmp_code() -> BoxedStrategy<u8> {
    prop_oneof![4 => select(ICMP_CODES), 1 => any::<u8>()].boxed()
}

// =================================================================================
// Random VPCs
// =================================================================================

/// A rule's protocol and ports/ICMP, as the loaders produce them (plus, for protocol
/// -1 and portless protocols, port specs the rule must ignore).
#[derive(Clone, Copy, PartialEq, Eq)]
struct L4 {
    protocol: Protocol,
    ports: PortSpec,
}

impl fmt::Debug for L4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.protocol.label(), self.ports)
    }
}

fn range_spec() -> BoxedStrategy<PortSpec> {
    (port(), port())
        .prop_map(|(a, b)| PortSpec::Range {
            from: a.min(b),
            to: a.max(b),
        })
        .boxed()
}

fn icmp_spec() -> BoxedStrategy<PortSpec> {
    (
        prop::option::weighted(0.7, icmp_type()),
        prop::option::weighted(0.5, icmp_code()),
    )
        // Type -1 with a code is refused by the loaders and by validation.
        .prop_map(|(t, c)| PortSpec::Icmp {
            icmp_type: t,
            code: if t.is_none() { None } else { c },
        })
        .boxed()
}

fn l4() -> BoxedStrategy<L4> {
    let protocol = prop_oneof![
        2 => Just(Protocol::All),
        3 => Just(Protocol::Number(6)),
        2 => Just(Protocol::Number(17)),
        2 => Just(Protocol::Number(1)),
        2 => Just(Protocol::Number(58)),
        1 => Just(Protocol::Number(47)),
        1 => any::<u8>().prop_map(Protocol::Number),
    ];
    protocol
        .prop_flat_map(|p| {
            let ports = match p {
                Protocol::Number(6 | 17) => prop_oneof![
                    8 => range_spec(),
                    1 => Just(PortSpec::Range { from: 0, to: 65535 }),
                    1 => Just(PortSpec::Any),
                ]
                .boxed(),
                Protocol::Number(1 | 58) => prop_oneof![
                    8 => icmp_spec(),
                    1 => Just(PortSpec::Any),
                ]
                .boxed(),
                // -1 and portless protocols: whatever the rule says, every port.
                _ => prop_oneof![
                    2 => Just(PortSpec::Any),
                    1 => range_spec(),
                    1 => icmp_spec(),
                ]
                .boxed(),
            };
            (Just(p), ports)
        })
        .prop_map(|(protocol, ports)| L4 { protocol, ports })
        .boxed()
}

#[derive(Clone)]
struct NaclRule {
    number: u32,
    allow: bool,
    l4: L4,
    cidr: IpNet,
}

impl fmt::Debug for NaclRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "#{} {} {:?} {}",
            self.number,
            if self.allow { "allow" } else { "deny" },
            self.l4,
            self.cidr
        )
    }
}

#[derive(Clone)]
struct NaclSpec {
    inbound: Vec<NaclRule>,
    outbound: Vec<NaclRule>,
    /// Give the model the entries in descending order (validation sorts them).
    descending: bool,
}

impl fmt::Debug for NaclSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Nacl")
            .field("inbound", &self.inbound)
            .field("outbound", &self.outbound)
            .field("descending", &self.descending)
            .finish()
    }
}

fn nacl_rules() -> BoxedStrategy<Vec<NaclRule>> {
    let number = prop_oneof![8 => 1u32..=30, 1 => 1u32..=32766, 1 => Just(32766u32)];
    let body = (any::<bool>(), l4(), any_net());
    prop::collection::btree_map(number, body, 0..=6)
        .prop_map(|m| {
            m.into_iter()
                .map(|(number, (allow, l4, cidr))| NaclRule {
                    number,
                    allow,
                    l4,
                    cidr,
                })
                .collect()
        })
        .boxed()
}

fn nacl() -> BoxedStrategy<NaclSpec> {
    (nacl_rules(), nacl_rules(), any::<bool>())
        .prop_map(|(inbound, outbound, descending)| NaclSpec {
            inbound,
            outbound,
            descending,
        })
        .boxed()
}

#[derive(Clone, PartialEq, Eq)]
enum Peer {
    Cidr(IpNet),
    PrefixList(usize),
    Group(usize),
}

impl fmt::Debug for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Cidr(n) => write!(f, "{n}"),
            Peer::PrefixList(i) => write!(f, "{}", pl_id(*i)),
            Peer::Group(i) => write!(f, "{}", sg_id(*i)),
        }
    }
}

#[derive(Clone)]
struct SgRule {
    l4: L4,
    peer: Peer,
}

impl fmt::Debug for SgRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} {:?}", self.l4, self.peer)
    }
}

#[derive(Clone)]
struct GroupSpec {
    ingress: Vec<SgRule>,
    egress: Vec<SgRule>,
}

impl GroupSpec {
    fn rules(&self, egress: bool) -> &[SgRule] {
        if egress {
            &self.egress
        } else {
            &self.ingress
        }
    }
}

impl fmt::Debug for GroupSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("ingress", &self.ingress)
            .field("egress", &self.egress)
            .finish()
    }
}

const GROUPS: usize = 3;
const PREFIX_LISTS: usize = 2;
const SUBNETS: usize = 3;
const NACLS: usize = 2;

/// How permissive generated VPCs are: the weight of broad SG rules (against 8 for
/// the others), and how often a subnet has its own NACL rather than the default one.
#[derive(Clone, Copy)]
struct Knobs {
    broad_sg: u32,
    own_nacl: f64,
    /// How often a custom NACL is the VPC's default (else AWS's allow-all one is).
    custom_default: f64,
    /// The fewest groups an ENI has.
    min_groups: usize,
}

/// For matching: mostly narrow rules, so that they match and miss in every way.
const NARROW: Knobs = Knobs {
    broad_sg: 1,
    own_nacl: 0.7,
    custom_default: 0.3,
    min_groups: 0,
};
/// For the engine: enough broad rules that many packets are accepted, tracked or not.
const LENIENT: Knobs = Knobs {
    broad_sg: 24,
    own_nacl: 0.3,
    custom_default: 0.1,
    min_groups: 1,
};
/// For NACLs through the engine: most subnets with their own random NACL.
const NACL_HEAVY: Knobs = Knobs {
    broad_sg: 24,
    own_nacl: 0.8,
    custom_default: 0.3,
    min_groups: 1,
};

/// A rule that lets much through: all ports of a protocol, to a wide peer (`/0` ones
/// make flows untracked, the others leave them tracked).
fn broad_sg_rule() -> BoxedStrategy<SgRule> {
    let all = |p: Protocol, ports: PortSpec| L4 { protocol: p, ports };
    let l4 = prop_oneof![
        6 => Just(all(Protocol::All, PortSpec::Any)),
        2 => Just(all(Protocol::Number(6), PortSpec::Range { from: 0, to: 65535 })),
        1 => Just(all(Protocol::Number(6), PortSpec::Range { from: 1024, to: 65535 })),
        2 => Just(all(Protocol::Number(17), PortSpec::Range { from: 0, to: 65535 })),
        1 => Just(all(Protocol::Number(1), PortSpec::Icmp { icmp_type: None, code: None })),
        1 => Just(all(Protocol::Number(58), PortSpec::Icmp { icmp_type: None, code: None })),
        1 => l4(),
    ];
    let peer = select(
        &[
            "0.0.0.0/0",
            "::/0",
            "0.0.0.0/1",
            "128.0.0.0/1",
            "10.0.0.0/8",
            "192.0.2.0/24",
            "2600:1f18:4a3:6d00::/56",
            "2001:db8::/32",
        ][..],
    )
    .prop_map(|c| Peer::Cidr(c.parse().unwrap()));
    prop_oneof![
        4 => (l4, peer).prop_map(|(l4, peer)| SgRule { l4, peer }),
        1 => (0..GROUPS).prop_map(move |g| SgRule {
            l4: all(Protocol::All, PortSpec::Any),
            peer: Peer::Group(g),
        }),
    ]
    .boxed()
}

fn sg_rule(k: Knobs) -> BoxedStrategy<SgRule> {
    let peer = prop_oneof![
        5 => any_net().prop_map(Peer::Cidr),
        1 => (0..PREFIX_LISTS).prop_map(Peer::PrefixList),
        2 => (0..GROUPS).prop_map(Peer::Group),
    ];
    let narrow = (l4(), peer).prop_map(|(l4, peer)| SgRule { l4, peer });
    prop_oneof![8 => narrow, k.broad_sg => broad_sg_rule()].boxed()
}

fn group(k: Knobs) -> BoxedStrategy<GroupSpec> {
    (
        prop::collection::vec(sg_rule(k), 0..=4),
        prop::collection::vec(sg_rule(k), 0..=4),
    )
        .prop_map(|(ingress, egress)| GroupSpec { ingress, egress })
        .boxed()
}

#[derive(Clone)]
struct EniSpec {
    subnet: usize,
    /// Private IPv4 addresses (the first is the primary), IPv6 addresses (only when the
    /// VPC has an IPv6 CIDR), a public IPv4.
    v4: usize,
    v6: usize,
    public: bool,
    /// Group numbers, in the order the ENI lists them.
    groups: Vec<usize>,
}

impl fmt::Debug for EniSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let groups: Vec<String> = self.groups.iter().map(|g| sg_id(*g)).collect();
        write!(
            f,
            "{} v4 x{} v6 x{}{} groups [{}]",
            subnet_id(self.subnet),
            self.v4,
            self.v6,
            if self.public { " public" } else { "" },
            groups.join(", ")
        )
    }
}

fn eni(k: Knobs) -> BoxedStrategy<EniSpec> {
    (
        0..SUBNETS,
        1usize..=2,
        0usize..=2,
        prop::bool::weighted(0.4),
        subsequence((0..GROUPS).collect::<Vec<_>>(), k.min_groups..=GROUPS).prop_shuffle(),
    )
        .prop_map(|(subnet, v4, v6, public, groups)| EniSpec {
            subnet,
            v4,
            v6,
            public,
            groups,
        })
        .boxed()
}

/// One VPC: 10.0.0.0/16 (and 2600:1f18:4a3:6d00::/56 when `ipv6`), subnet i is
/// 10.0.(i+1).0/24 (and 2600:1f18:4a3:6d0(i+1)::/64).
#[derive(Clone)]
struct VpcSpec {
    ipv6: bool,
    /// The explicit NACL of each subnet (`None`: the default NACL).
    subnet_nacl: Vec<Option<usize>>,
    /// Which custom NACL is marked default (`None`: AWS's default NACL is added).
    default_nacl: Option<usize>,
    nacls: Vec<NaclSpec>,
    groups: Vec<GroupSpec>,
    prefix_lists: Vec<Vec<IpNet>>,
    enis: Vec<EniSpec>,
}

impl fmt::Debug for VpcSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Vpc");
        s.field("ipv6", &self.ipv6);
        s.field("subnet_nacl", &self.subnet_nacl);
        s.field("default_nacl", &self.default_nacl);
        for (i, n) in self.nacls.iter().enumerate() {
            s.field(&acl_id(i), n);
        }
        for (i, g) in self.groups.iter().enumerate() {
            s.field(&sg_id(i), g);
        }
        for (i, p) in self.prefix_lists.iter().enumerate() {
            s.field(&pl_id(i), p);
        }
        for (i, e) in self.enis.iter().enumerate() {
            s.field(&eni_id(i), e);
        }
        s.finish()
    }
}

fn vpc_spec(k: Knobs) -> BoxedStrategy<VpcSpec> {
    (
        prop::bool::weighted(0.75),
        prop::collection::vec(prop::option::weighted(k.own_nacl, 0..NACLS), SUBNETS),
        prop::option::weighted(k.custom_default, 0..NACLS),
        prop::collection::vec(nacl(), NACLS),
        prop::collection::vec(group(k), GROUPS),
        prop::collection::vec(prop::collection::vec(any_net(), 0..=3), PREFIX_LISTS),
        prop::collection::vec(eni(k), 1..=4),
    )
        .prop_map(
            |(ipv6, subnet_nacl, default_nacl, nacls, groups, prefix_lists, enis)| VpcSpec {
                ipv6,
                subnet_nacl,
                default_nacl,
                nacls,
                groups,
                prefix_lists,
                enis,
            },
        )
        .boxed()
}

fn acl_id(i: usize) -> String {
    format!("acl-{i:02}")
}
fn sg_id(i: usize) -> String {
    format!("sg-{i:02}")
}
fn pl_id(i: usize) -> String {
    format!("pl-{i:02}")
}
fn subnet_id(i: usize) -> String {
    format!("subnet-{i:02}")
}
fn eni_id(i: usize) -> String {
    format!("eni-{i:02}")
}

fn subnet_v4(s: usize) -> Ipv4Net {
    Ipv4Net::new(Ipv4Addr::new(10, 0, s as u8 + 1, 0), 24).unwrap()
}

fn subnet_v6(s: usize) -> Ipv6Net {
    let base: Ipv6Addr = "2600:1f18:4a3:6d00::".parse().unwrap();
    Ipv6Net::new(
        Ipv6Addr::from(u128::from(base) + ((s as u128 + 1) << 64)),
        64,
    )
    .unwrap()
}

/// The addresses of ENI `j`: private IPv4 (primary first), IPv6, public IPv4.
struct EniAddrs {
    v4: Vec<Ipv4Addr>,
    v6: Vec<Ipv6Addr>,
    public: Option<Ipv4Addr>,
}

impl VpcSpec {
    fn eni_addrs(&self, j: usize) -> EniAddrs {
        let e = &self.enis[j];
        let v4base = u32::from(subnet_v4(e.subnet).network());
        let v6base = u128::from(subnet_v6(e.subnet).network());
        let host = |k: usize| (10 + 3 * j + k) as u32;
        EniAddrs {
            v4: (0..e.v4)
                .map(|k| Ipv4Addr::from(v4base + host(k)))
                .collect(),
            v6: if self.ipv6 {
                (0..e.v6)
                    .map(|k| Ipv6Addr::from(v6base + host(k) as u128))
                    .collect()
            } else {
                Vec::new()
            },
            public: e.public.then(|| Ipv4Addr::new(203, 0, 113, 10 + j as u8)),
        }
    }

    /// The ENI owning `a`, and whether `a` is its public address.
    fn owner(&self, a: IpAddr) -> Option<(usize, bool)> {
        (0..self.enis.len()).find_map(|j| {
            let e = self.eni_addrs(j);
            match a {
                IpAddr::V4(a) if e.v4.contains(&a) => Some((j, false)),
                IpAddr::V4(a) if e.public == Some(a) => Some((j, true)),
                IpAddr::V6(a) if e.v6.contains(&a) => Some((j, false)),
                _ => None,
            }
        })
    }

    /// The groups' members' private addresses: what a rule naming group `g` matches.
    fn members(&self, g: usize) -> Vec<IpAddr> {
        let mut v = Vec::new();
        for (j, e) in self.enis.iter().enumerate() {
            if e.groups.contains(&g) {
                let a = self.eni_addrs(j);
                v.extend(a.v4.iter().map(|&x| IpAddr::V4(x)));
                v.extend(a.v6.iter().map(|&x| IpAddr::V6(x)));
            }
        }
        v
    }

    /// The NACL subnet `s` uses, as (id, inbound, outbound) in the order written.
    fn subnet_acl(&self, s: usize) -> (String, Vec<NaclRule>, Vec<NaclRule>) {
        match self.subnet_nacl[s].or(self.default_nacl) {
            Some(i) => (
                acl_id(i),
                self.nacls[i].inbound.clone(),
                self.nacls[i].outbound.clone(),
            ),
            None => {
                // The default NACL AWS creates: allow all IPv4 (100), all IPv6 (101).
                let mut rules = vec![NaclRule {
                    number: 100,
                    allow: true,
                    l4: L4 {
                        protocol: Protocol::All,
                        ports: PortSpec::Any,
                    },
                    cidr: "0.0.0.0/0".parse().unwrap(),
                }];
                if self.ipv6 {
                    rules.push(NaclRule {
                        number: 101,
                        allow: true,
                        l4: L4 {
                            protocol: Protocol::All,
                            ports: PortSpec::Any,
                        },
                        cidr: "::/0".parse().unwrap(),
                    });
                }
                ("acl-default-0p".to_string(), rules.clone(), rules)
            }
        }
    }

    /// The same VPC with security groups that allow everything, both ways.
    fn with_open_sgs(&self) -> VpcSpec {
        let mut v = self.clone();
        let all = |cidr: &str| SgRule {
            l4: L4 {
                protocol: Protocol::All,
                ports: PortSpec::Any,
            },
            peer: Peer::Cidr(cidr.parse().unwrap()),
        };
        v.groups[0] = GroupSpec {
            ingress: vec![all("0.0.0.0/0"), all("::/0")],
            egress: vec![all("0.0.0.0/0"), all("::/0")],
        };
        for e in &mut v.enis {
            e.groups = vec![0];
        }
        v
    }

    /// The model: built field by field, then validated.
    fn build(&self) -> Vpc {
        let mut vpc = Vpc::new("vpc-0p");
        vpc.account_id = "123456789012".into();
        vpc.cidrs.push("10.0.0.0/16".parse().unwrap());
        if self.ipv6 {
            vpc.cidrs.push("2600:1f18:4a3:6d00::/56".parse().unwrap());
        }
        for (s, acl) in self.subnet_nacl.iter().enumerate() {
            let mut sub = Subnet::new(&subnet_id(s), subnet_v4(s));
            if self.ipv6 {
                sub.ipv6_cidrs.push(subnet_v6(s));
            }
            sub.network_acl_id = acl.map(acl_id);
            vpc.subnets.push(sub);
        }
        let entries = |rules: &[NaclRule], descending: bool| {
            let mut v: Vec<NetworkAclEntry> = rules
                .iter()
                .map(|r| NetworkAclEntry {
                    rule_number: r.number,
                    protocol: r.l4.protocol,
                    cidr: r.cidr,
                    ports: r.l4.ports,
                    action: if r.allow {
                        RuleAction::Allow
                    } else {
                        RuleAction::Deny
                    },
                    origin: Origin::default(),
                })
                .collect();
            if descending {
                v.reverse();
            }
            v
        };
        for (i, n) in self.nacls.iter().enumerate() {
            let mut acl = NetworkAcl::new(&acl_id(i));
            acl.is_default = self.default_nacl == Some(i);
            acl.inbound = entries(&n.inbound, n.descending);
            acl.outbound = entries(&n.outbound, n.descending);
            vpc.network_acls.push(acl);
        }
        for (i, entries) in self.prefix_lists.iter().enumerate() {
            vpc.prefix_lists.push(PrefixList {
                id: pl_id(i),
                name: String::new(),
                entries: entries.clone(),
                origin: Origin::default(),
            });
        }
        let rules = |rules: &[SgRule]| {
            rules
                .iter()
                .map(|r| SecurityGroupRule {
                    protocol: r.l4.protocol,
                    ports: r.l4.ports,
                    peer: match &r.peer {
                        Peer::Cidr(n) => SgPeer::Cidr(*n),
                        Peer::PrefixList(i) => SgPeer::PrefixList(pl_id(*i)),
                        Peer::Group(i) => SgPeer::SecurityGroup(sg_id(*i)),
                    },
                    description: None,
                    origin: Origin::default(),
                })
                .collect()
        };
        for (i, g) in self.groups.iter().enumerate() {
            let mut sg = SecurityGroup::new(&sg_id(i));
            sg.ingress = rules(&g.ingress);
            sg.egress = rules(&g.egress);
            vpc.security_groups.push(sg);
        }
        for (j, e) in self.enis.iter().enumerate() {
            let a = self.eni_addrs(j);
            let mut eni = NetworkInterface::new(&eni_id(j), &subnet_id(e.subnet), a.v4[0]);
            eni.private_ipv4 = a.v4;
            eni.ipv6 = a.v6;
            eni.public_ipv4 = a.public;
            eni.security_groups = e.groups.iter().map(|g| sg_id(*g)).collect();
            vpc.network_interfaces.push(eni);
        }
        if let Err(e) = vpc.validate() {
            panic!("the generated VPC does not validate:\n{e}\n{self:#?}");
        }
        vpc
    }

    fn policy(&self) -> Policy {
        let vpc = self.build();
        let mut ids: Vec<String> = vpc
            .network_interfaces
            .iter()
            .map(|e| e.id.clone())
            .collect();
        ids.sort();
        Policy::compile(Arc::new(vpc), &ids)
    }
}

// =================================================================================
// Random packets
// =================================================================================

/// A packet address: a literal one, or an address of an ENI of the generated VPC.
#[derive(Clone, Copy)]
enum AddrSpec {
    Ip(IpAddr),
    /// The `nth` private address of ENI `eni` of the packet's family, or its public
    /// IPv4 when it has one and `public`.
    Eni {
        eni: usize,
        nth: usize,
        public: bool,
    },
}

impl fmt::Debug for AddrSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddrSpec::Ip(a) => write!(f, "{a}"),
            AddrSpec::Eni { eni, nth, public } => {
                write!(
                    f,
                    "{}[{nth}]{}",
                    eni_id(*eni),
                    if *public { ".public" } else { "" }
                )
            }
        }
    }
}

fn addr_spec(v6: bool, eni_weight: u32) -> BoxedStrategy<AddrSpec> {
    let lit = if v6 {
        v6_addr().prop_map(|a| AddrSpec::Ip(IpAddr::V6(a))).boxed()
    } else {
        v4_addr().prop_map(|a| AddrSpec::Ip(IpAddr::V4(a))).boxed()
    };
    let eni = (0usize..4, 0usize..2, prop::bool::weighted(0.3))
        .prop_map(|(eni, nth, public)| AddrSpec::Eni { eni, nth, public });
    prop_oneof![4 => lit, eni_weight => eni].boxed()
}

#[derive(Clone)]
struct PktSpec {
    v6: bool,
    src: AddrSpec,
    dst: AddrSpec,
    protocol: u8,
    sport: u16,
    dport: u16,
    icmp_type: u8,
    icmp_code: u8,
    icmp_id: u16,
    flags: u8,
    fragment: Fragment,
}

impl fmt::Debug for PktSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "proto {} {:?}:{} -> {:?}:{} icmp {}/{} id {} flags {:#04x} {:?}",
            self.protocol,
            self.src,
            self.sport,
            self.dst,
            self.dport,
            self.icmp_type,
            self.icmp_code,
            self.icmp_id,
            self.flags,
            self.fragment
        )
    }
}

fn pkt_spec(eni_weight: u32) -> BoxedStrategy<PktSpec> {
    let family = |v6: bool| {
        let protocol = prop_oneof![
            3 => Just(6u8),
            2 => Just(17u8),
            2 => Just(if v6 { 58u8 } else { 1u8 }),
            1 => Just(if v6 { 1u8 } else { 58u8 }),
            1 => Just(47u8),
            1 => any::<u8>(),
        ];
        let fragment = prop_oneof![
            8 => Just(Fragment::None),
            1 => (0u32..4).prop_map(|id| Fragment::First { id }),
            1 => (0u32..4).prop_map(|id| Fragment::Later { id }),
        ];
        (
            addr_spec(v6, eni_weight),
            addr_spec(v6, eni_weight),
            protocol,
            (port(), port()),
            (icmp_type(), icmp_code(), 0u16..4),
            any::<u8>(),
            fragment,
        )
            .prop_map(
                move |(
                    src,
                    dst,
                    protocol,
                    (sport, dport),
                    (icmp_type, icmp_code, icmp_id),
                    flags,
                    fragment,
                )| {
                    PktSpec {
                        v6,
                        src,
                        dst,
                        protocol,
                        sport,
                        dport,
                        icmp_type,
                        icmp_code,
                        icmp_id,
                        flags,
                        fragment,
                    }
                },
            )
    };
    prop_oneof![2 => family(false), 1 => family(true)].boxed()
}

impl VpcSpec {
    fn resolve_addr(&self, a: AddrSpec, v6: bool) -> IpAddr {
        match a {
            AddrSpec::Ip(ip) => ip,
            AddrSpec::Eni { eni, nth, public } => {
                let j = eni % self.enis.len();
                let e = self.eni_addrs(j);
                if v6 {
                    match e.v6.len() {
                        // No IPv6 on this ENI: a neighbour in its subnet, owned by nobody.
                        0 => IpAddr::V6(Ipv6Addr::from(
                            u128::from(subnet_v6(self.enis[j].subnet).network()) + 0xff,
                        )),
                        n => IpAddr::V6(e.v6[nth % n]),
                    }
                } else if let (true, Some(p)) = (public, e.public) {
                    IpAddr::V4(p)
                } else {
                    IpAddr::V4(e.v4[nth % e.v4.len()])
                }
            }
        }
    }

    /// The packet. `realistic`: fields the parser leaves 0 are 0 (ports of non-TCP/UDP
    /// and of non-first fragments, ICMP fields of non-ICMP, flags of non-TCP);
    /// otherwise they keep random values, which no rule may look at.
    fn packet(&self, p: &PktSpec, realistic: bool) -> Packet {
        let mut pkt = Packet {
            src: self.resolve_addr(p.src, p.v6),
            dst: self.resolve_addr(p.dst, p.v6),
            protocol: p.protocol,
            src_port: p.sport,
            dst_port: p.dport,
            icmp_type: p.icmp_type,
            icmp_code: p.icmp_code,
            icmp_id: p.icmp_id,
            tcp_flags: p.flags,
            ip_len: 60,
            fragment: p.fragment,
        };
        if realistic {
            let later = matches!(p.fragment, Fragment::Later { .. });
            if later || !matches!(p.protocol, 6 | 17) {
                pkt.src_port = 0;
                pkt.dst_port = 0;
            }
            if later || !matches!(p.protocol, 1 | 58) {
                pkt.icmp_type = 0;
                pkt.icmp_code = 0;
                pkt.icmp_id = 0;
            }
            if later || p.protocol != 6 {
                pkt.tcp_flags = 0;
            }
        }
        pkt
    }
}

fn show(p: &Packet) -> String {
    let frag = match p.fragment {
        Fragment::None => String::new(),
        f => format!(" {f:?}"),
    };
    match p.protocol {
        6 | 17 => format!(
            "{} {}:{} -> {}:{} flags {:#04x}{frag}",
            if p.protocol == 6 { "tcp" } else { "udp" },
            p.src,
            p.src_port,
            p.dst,
            p.dst_port,
            p.tcp_flags
        ),
        1 | 58 => format!(
            "{} {} -> {} type {} code {} id {}{frag}",
            if p.protocol == 1 { "icmp" } else { "icmpv6" },
            p.src,
            p.dst,
            p.icmp_type,
            p.icmp_code,
            p.icmp_id
        ),
        n => format!(
            "proto {n} {} -> {} (ports {}/{}){frag}",
            p.src, p.dst, p.src_port, p.dst_port
        ),
    }
}

// =================================================================================
// The reference: a linear reading of EMULATION.md
// =================================================================================

/// `net` holds `a`: same family, same bits under the prefix. Host bits of `net` are
/// ignored (CIDRs are canonicalised).
fn in_net(net: &IpNet, a: IpAddr) -> bool {
    match (net, a) {
        (IpNet::V4(n), IpAddr::V4(a)) => {
            let p = n.prefix_len() as u32;
            let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
            u32::from(n.addr()) & mask == u32::from(a) & mask
        }
        (IpNet::V6(n), IpAddr::V6(a)) => {
            let p = n.prefix_len() as u32;
            let mask = if p == 0 { 0 } else { u128::MAX << (128 - p) };
            u128::from(n.addr()) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

/// True when the rule's ports/ICMP part admits every port (or type and code) of its
/// protocol.
fn every_port(protocol: u8, ports: PortSpec) -> bool {
    match (protocol, ports) {
        (_, PortSpec::Any) => true,
        (6 | 17, PortSpec::Range { from, to }) => from == 0 && to == 65535,
        (1 | 58, PortSpec::Icmp { icmp_type, code }) => icmp_type.is_none() && code.is_none(),
        // Ports of another kind than the protocol has: not generated.
        _ => false,
    }
}

/// Protocol and ports/ICMP of a rule against a packet (§3, §4 "Fragments", §5).
/// `nacl_v4_icmpv6`: a NACL rule for protocol 58 with an IPv4 CIDR (all types and codes).
fn l4_matches(l4: L4, nacl_v4_icmpv6: bool, p: &Packet) -> bool {
    let n = match l4.protocol {
        Protocol::All => return true,
        Protocol::Number(n) => n,
    };
    if n != p.protocol {
        return false;
    }
    if !matches!(n, 6 | 17 | 1 | 58) || (n == 58 && nacl_v4_icmpv6) {
        return true;
    }
    if every_port(n, l4.ports) {
        return true;
    }
    if !p.ports_known() {
        return false;
    }
    match l4.ports {
        PortSpec::Any => true,
        PortSpec::Range { from, to } => from <= p.dst_port && p.dst_port <= to,
        PortSpec::Icmp { icmp_type, code } => {
            icmp_type.is_none_or(|t| t == p.icmp_type) && code.is_none_or(|c| c == p.icmp_code)
        }
    }
}

/// The NACL of subnet `s` read linearly: (allow, rule number).
fn ref_nacl(v: &VpcSpec, s: usize, egress: bool, p: &Packet) -> (bool, u32) {
    let (_, inbound, outbound) = v.subnet_acl(s);
    let mut rules = if egress { outbound } else { inbound };
    rules.sort_by_key(|r| r.number);
    let peer = if egress { p.dst } else { p.src };
    for r in &rules {
        let v4_icmpv6 = matches!(r.cidr, IpNet::V4(_));
        if in_net(&r.cidr, peer) && l4_matches(r.l4, v4_icmpv6, p) {
            return (r.allow, r.number);
        }
    }
    (false, if peer.is_ipv6() { 32768 } else { 32767 })
}

fn peer_holds(v: &VpcSpec, peer: &Peer, a: IpAddr) -> bool {
    match peer {
        Peer::Cidr(n) => in_net(n, a),
        Peer::PrefixList(i) => v.prefix_lists[*i].iter().any(|n| in_net(n, a)),
        Peer::Group(g) => v.members(*g).contains(&a),
    }
}

fn sg_rule_matches(v: &VpcSpec, r: &SgRule, egress: bool, p: &Packet) -> bool {
    let remote = if egress { p.dst } else { p.src };
    l4_matches(r.l4, false, p) && peer_holds(v, &r.peer, remote)
}

/// The ENI's groups read linearly: every matching (group, rule), the ENI's groups in
/// the order it lists them.
fn ref_sg(v: &VpcSpec, j: usize, egress: bool, p: &Packet) -> Vec<(usize, usize)> {
    let mut hits = Vec::new();
    for &g in &v.enis[j].groups {
        for (i, r) in v.groups[g].rules(egress).iter().enumerate() {
            if sg_rule_matches(v, r, egress, p) {
                hits.push((g, i));
            }
        }
    }
    hits
}

fn is_open(r: &SgRule, v6: bool) -> bool {
    matches!(&r.peer, Peer::Cidr(n) if n.prefix_len() == 0 && matches!(n, IpNet::V6(_)) == v6)
}

/// §4 "Untracked": a `0.0.0.0/0` (`::/0`) CIDR rule of the ENI admits the packet.
fn ref_open_admits(v: &VpcSpec, j: usize, egress: bool, v6: bool, p: &Packet) -> bool {
    v.enis[j].groups.iter().any(|&g| {
        v.groups[g]
            .rules(egress)
            .iter()
            .any(|r| is_open(r, v6) && l4_matches(r.l4, false, p))
    })
}

/// §4 "Untracked": a `0.0.0.0/0` (`::/0`) CIDR rule covering protocol -1, or
/// `protocol` on every port.
fn ref_open_all_ports(v: &VpcSpec, j: usize, egress: bool, v6: bool, protocol: u8) -> bool {
    v.enis[j].groups.iter().any(|&g| {
        v.groups[g].rules(egress).iter().any(|r| {
            is_open(r, v6)
                && match r.l4.protocol {
                    Protocol::All => true,
                    Protocol::Number(n) => {
                        n == protocol
                            && (!matches!(n, 6 | 17 | 1 | 58) || every_port(n, r.l4.ports))
                    }
                }
        })
    })
}

/// The exempt services of §2, by address, and DHCP.
fn ref_exempt(v: &VpcSpec, p: &Packet) -> bool {
    let mut addrs: Vec<IpAddr> = [
        "169.254.169.253",
        "169.254.169.254",
        "169.254.169.123",
        "fd00:ec2::253",
        "fd00:ec2::254",
        "fd00:ec2::123",
        "10.0.0.2",
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    for s in 0..SUBNETS {
        addrs.push(IpAddr::V4(Ipv4Addr::from(
            u32::from(subnet_v4(s).network()) + 1,
        )));
        if v.ipv6 {
            addrs.push(IpAddr::V6(Ipv6Addr::from(
                u128::from(subnet_v6(s).network()) + 1,
            )));
        }
    }
    addrs.contains(&p.src)
        || addrs.contains(&p.dst)
        || (p.protocol == 17 && (67..=68).contains(&p.src_port) && (67..=68).contains(&p.dst_port))
}

/// Where a packet is evaluated (§2): source ENI, destination ENI (model index and
/// whether by its public address), and whether NACLs apply.
struct EvalPath {
    src: Option<(usize, bool)>,
    dst: Option<(usize, bool)>,
    cross: bool,
}

fn ref_path(v: &VpcSpec, p: &Packet) -> Option<EvalPath> {
    if ref_exempt(v, p) {
        return None;
    }
    let src = v.owner(p.src);
    let dst = v.owner(p.dst);
    if src.is_none() && dst.is_none() {
        return None;
    }
    let cross = match (src, dst) {
        (Some((a, pa)), Some((b, pb))) => pa || pb || v.enis[a].subnet != v.enis[b].subnet,
        _ => true,
    };
    Some(EvalPath { src, dst, cross })
}

// =================================================================================
// 1. Compiled matching equals a linear reading
// =================================================================================

#[derive(Clone)]
struct MatchCase {
    vpc: VpcSpec,
    packets: Vec<PktSpec>,
}

impl fmt::Debug for MatchCase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MatchCase")
            .field("vpc", &self.vpc)
            .field("packets", &self.packets)
            .finish()
    }
}

fn match_case() -> BoxedStrategy<MatchCase> {
    (vpc_spec(NARROW), prop::collection::vec(pkt_spec(1), 1..=24))
        .prop_map(|(vpc, packets)| MatchCase { vpc, packets })
        .boxed()
}

fn dir_of(egress: bool) -> Direction {
    if egress {
        Direction::Egress
    } else {
        Direction::Ingress
    }
}

fn check_matching(case: &MatchCase, credit_order: bool) -> Result<(), TestCaseError> {
    let v = &case.vpc;
    let policy = v.policy();
    let vpc = &policy.vpc;
    for ps in &case.packets {
        let p = v.packet(ps, false);
        for s in 0..SUBNETS {
            for egress in [false, true] {
                let want = ref_nacl(v, s, egress, &p);
                let dir = if egress {
                    Direction::Egress
                } else {
                    Direction::Ingress
                };
                let got = policy.nacl_decide(s as u32, dir, &p);
                let way = if egress { "outbound" } else { "inbound" };
                let (acl, ..) = v.subnet_acl(s);
                if (got.allow, got.rule_number) != want {
                    return fail(format!(
                        "NACL {acl} of {} {way}, packet {}: the linear reading says {} by rule {}, nacl_decide says {} by rule {}",
                        subnet_id(s),
                        show(&p),
                        if want.0 { "allow" } else { "deny" },
                        want.1,
                        if got.allow { "allow" } else { "deny" },
                        got.rule_number
                    ));
                }
                let named = &vpc.network_acls[got.rule.acl as usize];
                if named.id != acl || got.rule.egress != egress {
                    return fail(format!(
                        "{} {way}, packet {}: the decision names {} (egress {}), the subnet uses {acl}",
                        subnet_id(s),
                        show(&p),
                        named.id,
                        got.rule.egress
                    ));
                }
                let list = if egress {
                    &named.outbound
                } else {
                    &named.inbound
                };
                if let Some(e) = list.get(got.rule.entry as usize) {
                    if e.rule_number != got.rule_number {
                        return fail(format!(
                            "{acl} {way}, packet {}: entry {} is rule {}, the decision says rule {}",
                            show(&p),
                            got.rule.entry,
                            e.rule_number,
                            got.rule_number
                        ));
                    }
                }
            }
        }
        for j in 0..v.enis.len() {
            for egress in [false, true] {
                let dir = dir_of(egress);
                let remote = if egress { p.dst } else { p.src };
                let hits = ref_sg(v, j, egress, &p);
                let got = policy.sg_match(vpcgate::model::EniIdx(j as u32), dir, remote, &p);
                if hits.is_empty() != got.is_none() {
                    return fail(format!(
                        "{} {dir}, packet {}: the linear reading says {}, sg_match says {:?}",
                        eni_id(j),
                        show(&p),
                        if hits.is_empty() {
                            "no rule matches".to_string()
                        } else {
                            format!("allowed by {hits:?} (group, rule)")
                        },
                        got
                    ));
                }
                if let Some(r) = got {
                    let (g, i) = (r.group as usize, r.rule as usize);
                    let ok = r.egress == egress
                        && v.enis[j].groups.contains(&g)
                        && v.groups[g]
                            .rules(egress)
                            .get(i)
                            .is_some_and(|rule| sg_rule_matches(v, rule, egress, &p));
                    if !ok {
                        return fail(format!(
                            "{} {dir}, packet {}: sg_match names {:?}, which is not a rule of the ENI that matches (matching: {hits:?})",
                            eni_id(j),
                            show(&p),
                            r
                        ));
                    }
                    if credit_order {
                        // The manual: credited to the first matching rule, the ENI's
                        // groups taken by id, then the rules of a group in order.
                        let mut by_id = hits.clone();
                        by_id.sort();
                        if (g, i) != by_id[0] {
                            return fail(format!(
                                "{} {dir} (groups listed {:?}), packet {}: sg_match credits {} rule {i}, the manual's order says {} rule {} (matching: {hits:?})",
                                eni_id(j),
                                v.enis[j].groups.iter().map(|g| sg_id(*g)).collect::<Vec<_>>(),
                                show(&p),
                                sg_id(g),
                                sg_id(by_id[0].0),
                                by_id[0].1
                            ));
                        }
                    }
                }
                let v6 = p.src.is_ipv6();
                for fam in [v6, !v6] {
                    let want = ref_open_admits(v, j, egress, fam, &p);
                    let got = policy.sg_open_admits(vpcgate::model::EniIdx(j as u32), dir, fam, &p);
                    if want != got {
                        return fail(format!(
                            "{} {dir}, packet {}, IPv6 rules {fam}: sg_open_admits says {got}, the linear reading {want}",
                            eni_id(j),
                            show(&p)
                        ));
                    }
                    for proto in [6, 17, p.protocol] {
                        let want = ref_open_all_ports(v, j, egress, fam, proto);
                        let got = policy.sg_open_all_ports(
                            vpcgate::model::EniIdx(j as u32),
                            dir,
                            fam,
                            proto,
                        );
                        if want != got {
                            return fail(format!(
                                "{} {dir}, protocol {proto}, IPv6 rules {fam}: sg_open_all_ports says {got}, the linear reading {want}",
                                eni_id(j)
                            ));
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

#[test]
fn nacl_and_sg_matching_equals_linear_reading() {
    check(
        "nacl_and_sg_matching_equals_linear_reading",
        384,
        match_case(),
        |case| check_matching(&case, false),
    );
}

#[test]
fn sg_match_credits_first_rule_in_group_id_order() {
    check(
        "sg_match_credits_first_rule_in_group_id_order",
        128,
        match_case(),
        |case| check_matching(&case, true),
    );
}

// =================================================================================
// 2. Replies of accepted tracked flows pass the security groups
// =================================================================================

#[derive(Clone)]
enum Event {
    /// Any packet, `after_ms` after the previous one.
    Noise { pkt: PktSpec, after_ms: u32 },
    /// A packet and, if it is accepted, its reply: after `reply_at` (a fraction, in
    /// 65536ths) of the shortest idle timeout its tracked entry can have.
    Flow {
        pkt: PktSpec,
        after_ms: u32,
        reply_at: u16,
        reply_flags: u8,
    },
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Noise { pkt, after_ms } => write!(f, "+{after_ms}ms noise {pkt:?}"),
            Event::Flow {
                pkt,
                after_ms,
                reply_at,
                reply_flags,
            } => write!(
                f,
                "+{after_ms}ms flow {pkt:?}, reply at {reply_at}/65536 of the timeout, flags {reply_flags:#04x}"
            ),
        }
    }
}

fn gap_ms() -> BoxedStrategy<u32> {
    prop_oneof![4 => 0u32..=2_000, 2 => 0u32..=60_000, 1 => 0u32..=700_000].boxed()
}

fn event() -> BoxedStrategy<Event> {
    let reply_at = prop_oneof![2 => any::<u16>(), 1 => Just(u16::MAX), 1 => Just(0)];
    prop_oneof![
        1 => (pkt_spec(12), gap_ms()).prop_map(|(pkt, after_ms)| Event::Noise { pkt, after_ms }),
        2 => (pkt_spec(12), gap_ms(), reply_at, any::<u8>()).prop_map(
            |(pkt, after_ms, reply_at, reply_flags)| Event::Flow {
                pkt,
                after_ms,
                reply_at,
                reply_flags,
            }
        ),
    ]
    .boxed()
}

#[derive(Clone)]
struct EngineCase {
    vpc: VpcSpec,
    events: Vec<Event>,
}

impl fmt::Debug for EngineCase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineCase")
            .field("vpc", &self.vpc)
            .field("events", &self.events)
            .finish()
    }
}

fn engine_case() -> BoxedStrategy<EngineCase> {
    (vpc_spec(LENIENT), prop::collection::vec(event(), 1..=40))
        .prop_map(|(vpc, events)| EngineCase { vpc, events })
        .boxed()
}

const T0_MS: u64 = 1_700_000_000_000;

fn ts_ms(ms: u64) -> Timestamp {
    Timestamp(ms * 1_000_000)
}

/// Feeds one packet as the pipeline would: housekeeping, then the engine.
fn feed(engine: &mut Engine, p: &Packet, now_ms: u64) -> Decision {
    engine.housekeeping(ts_ms(now_ms));
    engine.process(p, ts_ms(now_ms))
}

fn reversed(p: &Packet, flags: u8) -> Packet {
    Packet {
        src: p.dst,
        dst: p.src,
        src_port: p.dst_port,
        dst_port: p.src_port,
        icmp_type: icmp_reply_type(p).unwrap_or(p.icmp_type),
        tcp_flags: if p.protocol == 6 { flags } else { 0 },
        fragment: Fragment::None,
        ..*p
    }
}

/// The reply type of an ICMP query (EMULATION.md §4: echo, timestamp, information and
/// address mask for ICMPv4, RFC 792 and RFC 950; echo and node information for
/// ICMPv6, RFC 4443 and RFC 4620); `None` for any other packet.
fn icmp_reply_type(p: &Packet) -> Option<u8> {
    match (p.protocol, p.icmp_type) {
        (1, 8) => Some(0),
        (1, 13) => Some(14),
        (1, 15) => Some(16),
        (1, 17) => Some(18),
        (58, 128) => Some(129),
        (58, 139) => Some(140),
        _ => None,
    }
}

fn describe(d: &Decision, policy: &Policy) -> String {
    match d.verdict {
        Verdict::Accept => "ACCEPT".into(),
        v => format!("{} ({})", v.as_str(), reason_text(d.reason, policy)),
    }
}

impl VpcSpec {
    /// The connection a packet belongs to, loosely: protocol and the two addresses,
    /// unordered, an ENI's public address counted as its primary private one.
    fn conversation(&self, p: &Packet) -> (u8, IpAddr, IpAddr) {
        let private = |a: IpAddr| match self.owner(a) {
            Some((j, true)) => IpAddr::V4(self.eni_addrs(j).v4[0]),
            _ => a,
        };
        let (a, b) = (private(p.src), private(p.dst));
        (p.protocol, a.min(b), a.max(b))
    }
}

/// The shortest idle timeout (EMULATION.md §4, defaults) the tracked entry of `p` can
/// have right after `p`, in ms: 5 s (closing) if its conversation was seen before (an
/// RST, or FINs from both sides, may have closed it) or `p` is an RST; else by protocol.
fn shortest_timeout_ms(p: &Packet, seen_before: bool) -> u64 {
    if seen_before || (p.protocol == 6 && p.tcp_flags & 0x04 != 0) {
        return 5_000;
    }
    match p.protocol {
        6 => 120_000,
        17 | 1 | 58 => 30_000,
        _ => 600_000,
    }
}

#[test]
fn reply_to_accepted_flow_never_rejected_by_sg() {
    let replies = AtomicU64::new(0);
    let cases = AtomicU64::new(0);
    check(
        "reply_to_accepted_flow_never_rejected_by_sg",
        512,
        engine_case(),
        |case| {
            cases.fetch_add(1, Relaxed);
            let v = &case.vpc;
            let policy = Arc::new(v.policy());
            let mut engine = Engine::new(policy.clone());
            let mut seen = std::collections::HashSet::new();
            let mut now = T0_MS;
            for ev in &case.events {
                match ev {
                    Event::Noise { pkt, after_ms } => {
                        now += *after_ms as u64;
                        let p = v.packet(pkt, true);
                        seen.insert(v.conversation(&p));
                        feed(&mut engine, &p, now);
                    }
                    Event::Flow {
                        pkt,
                        after_ms,
                        reply_at,
                        reply_flags,
                    } => {
                        now += *after_ms as u64;
                        let p = v.packet(pkt, true);
                        let seen_before = !seen.insert(v.conversation(&p));
                        let d = feed(&mut engine, &p, now);
                        if d.verdict != Verdict::Accept || !p.ports_known() {
                            continue;
                        }
                        // Only ICMP queries are tracked, and only their replies pass
                        // (EMULATION.md §4): an ICMP error or reply has no reply.
                        if matches!(p.protocol, 1 | 58) && icmp_reply_type(&p).is_none() {
                            continue;
                        }
                        // Strictly within the timeout: an entry idle for exactly its
                        // timeout is still live.
                        let timeout = shortest_timeout_ms(&p, seen_before);
                        let delay = timeout * *reply_at as u64 / 65535;
                        now += delay;
                        let r = reversed(&p, *reply_flags);
                        let dr = feed(&mut engine, &r, now);
                        replies.fetch_add(1, Relaxed);
                        if matches!(
                            dr.reason,
                            Reason::SgIngress { .. }
                                | Reason::SgEgress { .. }
                                | Reason::ConntrackFull { .. }
                        ) {
                            return fail(format!(
                                "the reply {} ({delay} ms after its accepted packet {}, timeout at least {timeout} ms) is {}",
                                show(&r),
                                show(&p),
                                describe(&dr, &policy)
                            ));
                        }
                    }
                }
            }
            Ok(())
        },
    );
    // The property must not hold vacuously: many accepted packets had their reply.
    let (replies, cases) = (replies.load(Relaxed), cases.load(Relaxed));
    assert!(
        replies >= cases,
        "only {replies} replies checked in {cases} cases: the generator rarely gets a packet accepted"
    );
}

// =================================================================================
// 3. NACL outcomes never depend on earlier packets
// =================================================================================

#[derive(Clone)]
struct NaclCase {
    vpc: VpcSpec,
    prefix: Vec<(PktSpec, u32)>,
    probes: Vec<PktSpec>,
}

impl fmt::Debug for NaclCase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NaclCase")
            .field("vpc", &self.vpc)
            .field("prefix", &self.prefix)
            .field("probes", &self.probes)
            .finish()
    }
}

fn nacl_case() -> BoxedStrategy<NaclCase> {
    (
        vpc_spec(NACL_HEAVY),
        prop::collection::vec((pkt_spec(12), gap_ms()), 0..=16),
        prop::collection::vec(pkt_spec(12), 1..=8),
    )
        .prop_map(|(vpc, prefix, probes)| NaclCase {
            vpc,
            prefix,
            probes,
        })
        .boxed()
}

/// What the NACLs alone decide for `p` on its path (§2), when SGs allow everything.
#[derive(Debug, PartialEq, Eq)]
enum NaclOutcome {
    NotEvaluated,
    Accept,
    Outbound(u32),
    Inbound(u32),
}

fn ref_nacl_outcome(v: &VpcSpec, p: &Packet) -> NaclOutcome {
    let Some(path) = ref_path(v, p) else {
        return NaclOutcome::NotEvaluated;
    };
    if path.cross {
        if let Some((a, _)) = path.src {
            let (allow, n) = ref_nacl(v, v.enis[a].subnet, true, p);
            if !allow {
                return NaclOutcome::Outbound(n);
            }
        }
        if let Some((b, _)) = path.dst {
            let (allow, n) = ref_nacl(v, v.enis[b].subnet, false, p);
            if !allow {
                return NaclOutcome::Inbound(n);
            }
        }
    }
    NaclOutcome::Accept
}

fn outcome_of(d: &Decision) -> Option<NaclOutcome> {
    Some(match (d.verdict, d.reason) {
        (Verdict::None, _) => NaclOutcome::NotEvaluated,
        (Verdict::Accept, _) => NaclOutcome::Accept,
        (_, Reason::NaclOutbound { rule_number, .. }) => NaclOutcome::Outbound(rule_number),
        (_, Reason::NaclInbound { rule_number, .. }) => NaclOutcome::Inbound(rule_number),
        _ => return None,
    })
}

/// With random SGs: the engine's NACL rejects, and the NACL checks a packet must have
/// passed to get its verdict, agree with the reference.
fn check_nacl_consistent(
    v: &VpcSpec,
    p: &Packet,
    d: &Decision,
    policy: &Policy,
) -> Result<(), String> {
    let path = ref_path(v, p);
    let msg = |why: &str| format!("packet {} got {}: {why}", show(p), describe(d, policy));
    let Some(path) = path else {
        return if d.verdict == Verdict::None {
            Ok(())
        } else {
            Err(msg("the reference does not evaluate it (exempt or no ENI)"))
        };
    };
    let out = |p: &Packet| {
        path.src
            .map(|(a, _)| ref_nacl(v, v.enis[a].subnet, true, p))
    };
    let inb = |p: &Packet| {
        path.dst
            .map(|(b, _)| ref_nacl(v, v.enis[b].subnet, false, p))
    };
    let passed = |side: Option<(bool, u32)>| !path.cross || side.is_none_or(|(allow, _)| allow);
    match d.reason {
        Reason::NaclOutbound { rule_number, .. } => {
            if !path.cross || out(p) != Some((false, rule_number)) {
                return Err(msg(&format!(
                    "the reference NACL outbound says {:?} (NACLs apply: {})",
                    out(p),
                    path.cross
                )));
            }
        }
        Reason::NaclInbound { rule_number, .. } => {
            if !path.cross || inb(p) != Some((false, rule_number)) || !passed(out(p)) {
                return Err(msg(&format!(
                    "the reference NACLs say outbound {:?}, inbound {:?} (NACLs apply: {})",
                    out(p),
                    inb(p),
                    path.cross
                )));
            }
        }
        Reason::Accepted | Reason::SgIngress { .. } => {
            if !passed(out(p)) || !passed(inb(p)) {
                return Err(msg(&format!(
                    "the reference NACLs deny it: outbound {:?}, inbound {:?}",
                    out(p),
                    inb(p)
                )));
            }
        }
        Reason::SgEgress { .. } | Reason::ConntrackFull { .. } => {}
        Reason::Exempt(_) | Reason::NoEni => {
            return Err(msg("the reference evaluates it"));
        }
    }
    Ok(())
}

#[test]
fn nacl_outcome_independent_of_history() {
    // Probe outcomes in (a): [accepted, denied by a NACL, not evaluated].
    let outcomes: [AtomicU64; 3] = Default::default();
    check(
        "nacl_outcome_independent_of_history",
        256,
        nacl_case(),
        |case| {
            // (a) Security groups that allow everything: only NACLs decide.
            let open = case.vpc.with_open_sgs();
            let policy = Arc::new(open.policy());
            let mut seasoned = Engine::new(policy.clone());
            let mut now = T0_MS;
            for (ps, gap) in &case.prefix {
                now += *gap as u64;
                feed(&mut seasoned, &open.packet(ps, true), now);
            }
            for ps in &case.probes {
                let mut p = open.packet(ps, true);
                if matches!(p.fragment, Fragment::Later { .. }) {
                    // A later fragment takes its first fragment's verdict, by design.
                    p.fragment = Fragment::None;
                }
                now += 1;
                let fresh = Engine::new(policy.clone()).process(&p, ts_ms(now));
                let after = feed(&mut seasoned, &p, now);
                if (fresh.verdict, fresh.reason) != (after.verdict, after.reason) {
                    return fail(format!(
                        "security groups open: probe {} gets {} from a fresh engine, {} after the prefix",
                        show(&p),
                        describe(&fresh, &policy),
                        describe(&after, &policy)
                    ));
                }
                let want = ref_nacl_outcome(&open, &p);
                let i = match want {
                    NaclOutcome::Accept => 0,
                    NaclOutcome::Outbound(_) | NaclOutcome::Inbound(_) => 1,
                    NaclOutcome::NotEvaluated => 2,
                };
                outcomes[i].fetch_add(1, Relaxed);
                if outcome_of(&after) != Some(want) {
                    let want = ref_nacl_outcome(&open, &p);
                    return fail(format!(
                        "security groups open: probe {} gets {}, the reference NACL path says {want:?}",
                        show(&p),
                        describe(&after, &policy)
                    ));
                }
            }
            // (b) The random security groups: wherever a NACL is reached, it decides as
            // the reference does, whatever came before.
            let v = &case.vpc;
            let policy = Arc::new(v.policy());
            let mut engine = Engine::new(policy.clone());
            let mut now = T0_MS;
            let all = case
                .prefix
                .iter()
                .cloned()
                .chain(case.probes.iter().map(|p| (p.clone(), 1)));
            for (ps, gap) in all {
                now += gap as u64;
                let p = v.packet(&ps, true);
                let d = feed(&mut engine, &p, now);
                if matches!(p.fragment, Fragment::Later { .. }) {
                    continue;
                }
                if let Err(m) = check_nacl_consistent(v, &p, &d, &policy) {
                    return fail(m);
                }
            }
            Ok(())
        },
    );
    // Not vacuous: probes were accepted and denied by NACLs, in numbers.
    let [acc, denied, none] = outcomes.map(|a| a.load(Relaxed));
    assert!(
        acc >= 64 && denied >= 64,
        "probes: {acc} accepted, {denied} denied by a NACL, {none} not evaluated: too few of a kind"
    );
}

// =================================================================================
// 4, 5. Whole replays of random captures
// =================================================================================

const START: u64 = 1_732_435_200;

const INSIDE_V4: &[&str] = &[
    "10.0.1.10",
    "10.0.2.10",
    "10.0.1.20",
    "10.0.11.10",
    "10.0.11.11",
    "10.0.12.10",
    "10.0.21.10",
    "10.0.22.10",
    "203.0.113.10",
    "203.0.113.20",
    "203.0.113.30",
];
const OUTSIDE_V4: &[&str] = &[
    "192.0.2.10",
    "192.0.2.201",
    "198.51.100.7",
    "8.8.8.8",
    "10.0.99.5",
    "10.0.0.2",
    "169.254.169.254",
];
const INSIDE_V6: &[&str] = &["2600:1f18:4a3:6d01::10", "2600:1f18:4a3:6d02::10"];
const OUTSIDE_V6: &[&str] = &[
    "2001:db8::5",
    "2001:db8::99",
    "2600:1f18:4a3:6d01::1",
    "fd00:ec2::254",
];

/// An endpoint: one of SecureCart's ENI addresses (private or public), or another
/// address (the internet, exempt services, the VPC outside any ENI).
#[derive(Clone, Copy, Debug)]
struct Pick {
    inside: bool,
    idx: usize,
}

impl Pick {
    fn addr(self, v6: bool) -> IpAddr {
        let pool = match (v6, self.inside) {
            (false, true) => INSIDE_V4,
            (false, false) => OUTSIDE_V4,
            (true, true) => INSIDE_V6,
            (true, false) => OUTSIDE_V6,
        };
        pool[self.idx % pool.len()].parse().unwrap()
    }
}

fn pick() -> BoxedStrategy<Pick> {
    (prop::bool::weighted(0.6), 0usize..16)
        .prop_map(|(inside, idx)| Pick { inside, idx })
        .boxed()
}

#[derive(Clone, Debug)]
enum ConvKind {
    Tcp {
        exchanges: Vec<(usize, usize)>,
        close: Close,
    },
    SynAttempt {
        retries: usize,
    },
    Segment {
        flags: u8,
        payload: usize,
    },
    Udp {
        request: usize,
        response: usize,
    },
    Ping {
        id: u16,
        count: u16,
        replies: bool,
    },
    Unreachable {
        code: u8,
    },
    Other {
        protocol: u8,
    },
}

#[derive(Clone)]
struct Conv {
    start_s: u64,
    start_ms: u64,
    step_ms: u64,
    v6: bool,
    client: Pick,
    server: Pick,
    cport: u16,
    sport: u16,
    kind: ConvKind,
}

impl fmt::Debug for Conv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "at +{}.{:03}s (step {} ms) {}:{} <-> {}:{} {:?}",
            self.start_s,
            self.start_ms,
            self.step_ms,
            self.client.addr(self.v6),
            self.cport,
            self.server.addr(self.v6),
            self.sport,
            self.kind
        )
    }
}

fn conv_kind() -> BoxedStrategy<ConvKind> {
    let close = prop_oneof![Just(Close::Fin), Just(Close::Rst), Just(Close::Open)];
    prop_oneof![
        4 => (prop::collection::vec((0usize..1500, 0usize..1500), 0..=3), close)
            .prop_map(|(exchanges, close)| ConvKind::Tcp { exchanges, close }),
        1 => (0usize..=2).prop_map(|retries| ConvKind::SynAttempt { retries }),
        1 => (any::<u8>(), 0usize..100).prop_map(|(flags, payload)| ConvKind::Segment { flags, payload }),
        2 => (0usize..600, 0usize..600).prop_map(|(request, response)| ConvKind::Udp { request, response }),
        2 => (any::<u16>(), 1u16..=3, any::<bool>()).prop_map(|(id, count, replies)| ConvKind::Ping { id, count, replies }),
        1 => (0u8..16).prop_map(|code| ConvKind::Unreachable { code }),
        1 => prop_oneof![Just(47u8), Just(50u8), Just(132u8), any::<u8>()]
            .prop_filter("not TCP, UDP or ICMP", |p| !matches!(p, 1 | 6 | 17 | 58))
            .prop_map(|protocol| ConvKind::Other { protocol }),
    ]
    .boxed()
}

fn conv() -> BoxedStrategy<Conv> {
    (
        (
            0u64..=250,
            0u64..1000,
            prop_oneof![3 => 1u64..=50, 1 => 1u64..=40_000],
        ),
        prop::bool::weighted(0.2),
        pick(),
        pick(),
        (port(), port()),
        conv_kind(),
    )
        .prop_map(
            |((start_s, start_ms, step_ms), v6, client, server, (cport, sport), kind)| Conv {
                start_s,
                start_ms,
                step_ms,
                v6,
                client,
                server,
                cport,
                sport,
                kind,
            },
        )
        .boxed()
}

/// A frame no parser should trust.
#[derive(Clone)]
enum Junk {
    /// Random bytes.
    Bytes(Vec<u8>),
    /// A real frame cut after `len` bytes (the record says the wire had more).
    Cut { base: usize, len: usize },
    /// A real frame with one byte changed.
    Flip { base: usize, at: usize, xor: u8 },
}

impl fmt::Debug for Junk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Junk::Bytes(b) => {
                let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
                write!(f, "bytes {hex}")
            }
            Junk::Cut { base, len } => write!(f, "base frame {base} cut to {len} bytes"),
            Junk::Flip { base, at, xor } => write!(f, "base frame {base} byte {at} ^= {xor:#04x}"),
        }
    }
}

fn base_frame(i: usize) -> Vec<u8> {
    let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
    match i % 4 {
        0 => Frame::Tcp {
            src: ip("192.0.2.10"),
            sport: 40000,
            dst: ip("203.0.113.20"),
            dport: 443,
            flags: 2,
            seq: 1,
            ack: 0,
            payload: 20,
        },
        1 => Frame::Udp {
            src: ip("10.0.11.10"),
            sport: 5353,
            dst: ip("8.8.8.8"),
            dport: 53,
            payload: 30,
        },
        2 => Frame::Echo {
            src: ip("192.0.2.50"),
            dst: ip("10.0.2.10"),
            reply: false,
            id: 7,
            seq: 1,
            payload: 56,
        },
        _ => Frame::Tcp {
            src: ip("2001:db8::5"),
            sport: 40000,
            dst: ip("2600:1f18:4a3:6d01::10"),
            dport: 443,
            flags: 2,
            seq: 1,
            ack: 0,
            payload: 0,
        },
    }
    .build()
}

impl Junk {
    /// (captured bytes, length on the wire).
    fn bytes(&self) -> (Vec<u8>, u32) {
        match self {
            Junk::Bytes(b) => (b.clone(), b.len() as u32),
            Junk::Cut { base, len } => {
                let f = base_frame(*base);
                let n = (*len).min(f.len());
                (f[..n].to_vec(), f.len() as u32)
            }
            Junk::Flip { base, at, xor } => {
                let mut f = base_frame(*base);
                let i = at % f.len();
                f[i] ^= xor;
                let n = f.len() as u32;
                (f, n)
            }
        }
    }
}

fn junk() -> BoxedStrategy<Junk> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..80).prop_map(Junk::Bytes),
        (0usize..4, 0usize..70).prop_map(|(base, len)| Junk::Cut { base, len }),
        (0usize..4, 0usize..70, 1u8..=255).prop_map(|(base, at, xor)| Junk::Flip { base, at, xor }),
    ]
    .boxed()
}

#[derive(Clone)]
struct CaptureSpec {
    convs: Vec<Conv>,
    /// Garbage frames, each written before the frame at its position.
    junk: Vec<(usize, Junk)>,
    /// Sort the frames by time (else conversations overlap and time goes back).
    sorted: bool,
    /// `--rules-at START+s=fixed.toml` (SecureCart with its NACL fixed).
    switch_at: Option<u64>,
    nodata: bool,
    custom_format: bool,
    /// Workers of the single replay of invariant 5.
    workers: usize,
}

impl fmt::Debug for CaptureSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Capture")
            .field("convs", &self.convs)
            .field("junk", &self.junk)
            .field("sorted", &self.sorted)
            .field("switch_at", &self.switch_at)
            .field("nodata", &self.nodata)
            .field("custom_format", &self.custom_format)
            .field("workers", &self.workers)
            .finish()
    }
}

fn capture_spec() -> BoxedStrategy<CaptureSpec> {
    (
        prop::collection::vec(conv(), 1..=10),
        prop::collection::vec((0usize..200, junk()), 0..=6),
        prop::bool::weighted(0.7),
        prop::option::weighted(0.4, 0u64..=250),
        any::<bool>(),
        any::<bool>(),
        1usize..=3,
    )
        .prop_map(
            |(convs, junk, sorted, switch_at, nodata, custom_format, workers)| CaptureSpec {
                convs,
                junk,
                sorted,
                switch_at,
                nodata,
                custom_format,
                workers,
            },
        )
        .boxed()
}

impl CaptureSpec {
    /// Writes the capture; returns how many frames it holds.
    fn write(&self, path: &Path) -> u64 {
        let mut t = Timeline::new(START);
        for c in &self.convs {
            t.at(START + c.start_s);
            t.advance_ms(c.start_ms);
            t.step = c.step_ms * 1_000_000;
            let (a, b) = (c.client.addr(c.v6), c.server.addr(c.v6));
            match &c.kind {
                ConvKind::Tcp { exchanges, close } => {
                    t.tcp_session(a, c.cport, b, c.sport, exchanges, *close)
                }
                ConvKind::SynAttempt { retries } => {
                    t.tcp_syn_attempt(a, c.cport, b, c.sport, *retries)
                }
                ConvKind::Segment { flags, payload } => {
                    t.segment(a, c.cport, b, c.sport, *flags, 1, 1, *payload)
                }
                ConvKind::Udp { request, response } => {
                    t.udp_exchange(a, c.cport, b, c.sport, *request, *response)
                }
                ConvKind::Ping { id, count, replies } => t.ping(a, b, *id, *count, *replies),
                ConvKind::Unreachable { code } => t.push(Frame::Unreachable {
                    src: a,
                    dst: b,
                    code: *code,
                    payload: 28,
                }),
                ConvKind::Other { protocol } => t.push(Frame::Other {
                    src: a,
                    dst: b,
                    protocol: *protocol,
                    payload: 40,
                }),
            }
        }
        if self.sorted {
            t.sort();
        }
        let frames = t.frames();
        let mut w = PcapWriter::create(path).unwrap();
        let mut n = 0u64;
        let mut junk: Vec<&(usize, Junk)> = self.junk.iter().collect();
        junk.sort_by_key(|(at, _)| (*at).min(frames.len()));
        let mut next = junk.into_iter().peekable();
        for i in 0..=frames.len() {
            while let Some((_, j)) = next.next_if(|(at, _)| (*at).min(frames.len()) == i) {
                let ts = frames
                    .get(i)
                    .or(frames.last())
                    .map_or(Timestamp::from_secs_nanos(START, 0), |f| f.0);
                let (bytes, orig) = j.bytes();
                w.write_packet(ts, linktype::ETHERNET, &bytes, orig)
                    .unwrap();
                n += 1;
            }
            if let Some((ts, f)) = frames.get(i) {
                w.write_packet(*ts, linktype::ETHERNET, f, f.len() as u32)
                    .unwrap();
                n += 1;
            }
        }
        w.finish().unwrap();
        n
    }
}

fn securecart() -> &'static (Arc<Vpc>, Arc<Vpc>) {
    static VPCS: OnceLock<(Arc<Vpc>, Arc<Vpc>)> = OnceLock::new();
    VPCS.get_or_init(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("rulesets/securecart.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let base = vpcgate::load::load_str("securecart.toml", &text).unwrap();
        let fixed = text.replace("ports = \"32768-61000\"", "ports = \"1024-65535\"");
        assert_ne!(
            fixed, text,
            "securecart.toml no longer has the teaching point"
        );
        let fixed = vpcgate::load::load_str("fixed.toml", &fixed).unwrap();
        (Arc::new(base), Arc::new(fixed))
    })
}

const CUSTOM_FORMAT: &str = "${version} ${interface-id} ${srcaddr} ${dstaddr} ${pkt-srcaddr} ${pkt-dstaddr} ${srcport} ${dstport} ${protocol} ${packets} ${bytes} ${start} ${end} ${action} ${tcp-flags} ${flow-direction} ${traffic-path} ${log-status}";

struct Outputs {
    files: Vec<(&'static str, Vec<u8>)>,
    summary: Summary,
}

fn replay(spec: &CaptureSpec, capture: &Path, out: &Path, workers: usize) -> Outputs {
    std::fs::create_dir_all(out).unwrap();
    let (base, fixed) = securecart();
    let mut rulesets = vec![RulesetAt {
        from: None,
        vpc: base.clone(),
        label: "securecart.toml".into(),
    }];
    if let Some(s) = spec.switch_at {
        rulesets.push(RulesetAt {
            from: Some(vpcgate::pipeline::When::At(Timestamp::from_secs_nanos(
                START + s,
                0,
            ))),
            vpc: fixed.clone(),
            label: "fixed.toml".into(),
        });
    }
    let names = [
        "flows.log",
        "verdicts.jsonl",
        "accepted.pcap",
        "rejected.pcap",
    ];
    let cfg = ReplayConfig {
        captures: vec![capture.to_path_buf()],
        rulesets,
        flow_log: Some(out.join(names[0])),
        log_format: if spec.custom_format {
            LogFormat::parse(CUSTOM_FORMAT).unwrap()
        } else {
            LogFormat::default()
        },
        interval: 60,
        nodata: spec.nodata,
        verdicts: Some(out.join(names[1])),
        accepted: Some(out.join(names[2])),
        rejected: Some(out.join(names[3])),
        workers,
        progress: false,
        max_flows: None,
        report: false,
    };
    let summary = vpcgate::pipeline::run(&cfg, None)
        .unwrap_or_else(|e| panic!("the replay with {workers} worker(s) failed: {e}"));
    Outputs {
        files: names
            .iter()
            .map(|n| (*n, std::fs::read(out.join(n)).unwrap()))
            .collect(),
        summary,
    }
}

/// Where two outputs first differ, for people.
fn first_difference(a: &[u8], b: &[u8]) -> String {
    let i = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let line = a[..i].iter().filter(|&&c| c == b'\n').count() + 1;
    let excerpt = |s: &[u8]| {
        let start = s[..i.min(s.len())]
            .iter()
            .rposition(|&c| c == b'\n')
            .map_or(0, |p| p + 1);
        let end = s[start..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(s.len(), |p| start + p);
        String::from_utf8_lossy(&s[start..end.min(start + 300)]).into_owned()
    };
    format!(
        "byte {i} (line {line}; lengths {} and {}):\n  {}\n  {}",
        a.len(),
        b.len(),
        excerpt(a),
        excerpt(b)
    )
}

#[test]
fn output_identical_for_1_2_3_workers() {
    check(
        "output_identical_for_1_2_3_workers",
        24,
        capture_spec(),
        |spec| {
            let dir = tempfile::tempdir().unwrap();
            let cap = dir.path().join("capture.pcap");
            spec.write(&cap);
            let one = replay(&spec, &cap, &dir.path().join("w1"), 1);
            for workers in [2, 3] {
                let other = replay(
                    &spec,
                    &cap,
                    &dir.path().join(format!("w{workers}")),
                    workers,
                );
                for ((name, a), (_, b)) in one.files.iter().zip(&other.files) {
                    if a != b {
                        return fail(format!(
                            "{name} differs between 1 and {workers} workers at {}",
                            first_difference(a, b)
                        ));
                    }
                }
                let counts = |s: &Summary| (s.packets, s.accepted, s.rejected, s.not_evaluated);
                if counts(&one.summary) != counts(&other.summary) {
                    return fail(format!(
                        "summary (packets, accepted, rejected, not evaluated) {:?} with 1 worker, {:?} with {workers}",
                        counts(&one.summary),
                        counts(&other.summary)
                    ));
                }
            }
            Ok(())
        },
    );
}

fn pcap_packets(path: &Path) -> u64 {
    let mut r = CaptureReader::open(path).unwrap();
    let mut n = 0;
    while r.next_packet().unwrap().is_some() {
        n += 1;
    }
    n
}

#[test]
fn every_packet_gets_one_verdict() {
    check(
        "every_packet_gets_one_verdict",
        48,
        capture_spec(),
        |spec| {
            let dir = tempfile::tempdir().unwrap();
            let cap = dir.path().join("capture.pcap");
            let frames = spec.write(&cap);
            let out = dir.path().join("out");
            let o = replay(&spec, &cap, &out, spec.workers);
            let s = &o.summary;
            let text = String::from_utf8(o.files[1].1.clone()).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            if lines.len() as u64 != frames {
                return fail(format!(
                    "{frames} frames in the capture, {} verdict lines",
                    lines.len()
                ));
            }
            let mut counts = [0u64; 3];
            for (i, line) in lines.iter().enumerate() {
                let v: serde_json::Value = match serde_json::from_str(line) {
                    Ok(v) => v,
                    Err(e) => {
                        return fail(format!("verdict line {} is not JSON ({e}): {line}", i + 1))
                    }
                };
                if v["packet"].as_u64() != Some(i as u64 + 1) {
                    return fail(format!(
                        "verdict line {} has packet {}: {line}",
                        i + 1,
                        v["packet"]
                    ));
                }
                match v["action"].as_str() {
                    Some("ACCEPT") => counts[0] += 1,
                    Some("REJECT") => counts[1] += 1,
                    Some("NONE") => counts[2] += 1,
                    _ => {
                        return fail(format!(
                            "verdict line {} has no valid action: {line}",
                            i + 1
                        ))
                    }
                }
            }
            let summary = [s.accepted, s.rejected, s.not_evaluated];
            if s.packets != frames || summary.iter().sum::<u64>() != s.packets || counts != summary
            {
                return fail(format!(
                    "{frames} frames; summary: {} packets, {summary:?} accepted/rejected/not evaluated; verdict lines: {counts:?}",
                    s.packets
                ));
            }
            let acc = pcap_packets(&out.join("accepted.pcap"));
            let rej = pcap_packets(&out.join("rejected.pcap"));
            if (acc, rej) != (s.accepted, s.rejected) {
                return fail(format!(
                    "the pcaps hold {acc} accepted and {rej} rejected packets, the summary says {} and {}",
                    s.accepted, s.rejected
                ));
            }
            Ok(())
        },
    );
}

/// A case `output_identical_for_1_2_3_workers` found (shrunk by hand): records of a
/// window reopened by packets that go back in time, on both sides of a ruleset change
/// (`--rules-at`). With 2 or 3 workers their order in the flow log changed from run to
/// run (the merger took a worker's final records before other workers' earlier
/// ones; fixed). Replayed several times, since the failure depended on thread timing.
#[test]
fn late_records_across_ruleset_change_same_for_any_workers() {
    let v4 = |inside: bool, a: &str| {
        let pool = if inside { INSIDE_V4 } else { OUTSIDE_V4 };
        Pick {
            inside,
            idx: pool.iter().position(|x| *x == a).unwrap(),
        }
    };
    let conv = |start_ms: u64, step_ms: u64, client: Pick, cport, server: Pick, sport, kind| Conv {
        start_s: start_ms / 1000,
        start_ms: start_ms % 1000,
        step_ms,
        v6: false,
        client,
        server,
        cport,
        sport,
        kind,
    };
    let spec = CaptureSpec {
        convs: vec![
            // Not evaluated (no ENI), but moves capture time to +180 s.
            conv(
                180_000,
                1,
                v4(false, "192.0.2.10"),
                0,
                v4(false, "192.0.2.10"),
                0,
                ConvKind::Tcp {
                    exchanges: vec![],
                    close: Close::Fin,
                },
            ),
            // Back to +0 s: the first window, already written, reopens.
            conv(
                0,
                1,
                v4(true, "10.0.22.10"),
                444,
                v4(false, "192.0.2.201"),
                1,
                ConvKind::Segment {
                    flags: 172,
                    payload: 69,
                },
            ),
            // After the ruleset change at +199 s.
            conv(
                239_793,
                12,
                v4(true, "10.0.2.10"),
                5432,
                v4(true, "203.0.113.20"),
                32767,
                ConvKind::Segment {
                    flags: 60,
                    payload: 85,
                },
            ),
            // Back to +27 s and +53 s: the first window again, under the new rules.
            conv(
                27_353,
                26_422,
                v4(true, "203.0.113.30"),
                65535,
                v4(false, "192.0.2.201"),
                21,
                ConvKind::Udp {
                    request: 413,
                    response: 253,
                },
            ),
        ],
        junk: vec![],
        sorted: false,
        switch_at: Some(199),
        nodata: false,
        custom_format: false,
        workers: 1,
    };
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("capture.pcap");
    spec.write(&cap);
    let one = replay(&spec, &cap, &dir.path().join("w1"), 1);
    for run in 0..12 {
        let workers = 2 + run % 2;
        let other = replay(&spec, &cap, &dir.path().join(format!("run{run}")), workers);
        for ((name, a), (_, b)) in one.files.iter().zip(&other.files) {
            assert!(
                a == b,
                "{name} differs between 1 and {workers} workers (run {run}) at {}",
                first_difference(a, b)
            );
        }
    }
}
