//! Loading a VPC: the project's ruleset TOML and the JSON that `aws ec2 describe-*`
//! prints, merged into one [`Vpc`] and [validated](Vpc::validate).
//!
//! What it does: reads files and directories, tells the formats apart, maps every
//! AWS shape onto the [model](crate::model), and reports **every** problem it finds with
//! the file, line, column and field, and what would be valid:
//!
//! ```text
//! error: rulesets/x.toml:14:9: network_acls[0].inbound[2].rule: rule 40000 is outside 1..=32766
//! error: aws/sg.json:31:17: SecurityGroups[1] (sg-0abc).IpPermissions[0]: missing required field `IpProtocol`
//! ```
//!
//! What it does not do: talk to AWS, evaluate packets, or keep the files' formatting.
//!
//! ```
//! let vpc = vpcgate::load::load_str("lab.toml", r#"
//!     [vpc]
//!     id = "vpc-0lab"
//!     cidrs = ["10.0.0.0/16"]
//!
//!     [[subnets]]
//!     id = "subnet-0a"
//!     cidr = "10.0.1.0/24"
//!     availability_zone = "us-east-1a"
//! "#).unwrap();
//! assert_eq!(vpc.region, "us-east-1"); // from the availability zone
//! ```
//!
//! # Inputs
//!
//! [`load_paths`] takes files and directories, in order:
//! - a file ending in `.toml` is a ruleset (below); `.json` is `aws ec2` output; any other
//!   name is JSON when its first non-blank character is `{`, else TOML;
//! - a directory contributes the `*.toml` and `*.json` files directly inside it, sorted by
//!   name; subdirectories and other files (a README) are skipped.
//!
//! Everything is merged into one VPC. Objects are appended (an id defined twice is an
//! error of [`Vpc::validate`], unless both are the same object: the same response saved
//! twice merges); the VPC's own facts (id, account, region, CIDRs) may come from any file
//! but must agree. When any file has an error, loading stops before validation, so that
//! one mistake does not cascade into unknown-reference errors.
//!
//! An export of a whole account lists several VPCs: that is an error naming them, unless
//! [`LoadOptions::vpc`] (`--vpc vpc-0abc`, [`load_paths_with`], [`Loader::with_vpc`])
//! picks one; objects whose `VpcId` names another VPC are then dropped (with a warning
//! counting them), and so are the `describe-security-group-rules` rules of their groups.
//!
//! # Errors and warnings
//!
//! What a real export lacks but cannot change a verdict, and what would silently change
//! verdicts, loads with a **warning** ([`Vpc::warnings`], printed `warning: ...`):
//! - another command's output (`describe-route-tables`, `describe-internet-gateways`,
//!   `create-subnet`, ...): skipped, naming the command;
//! - a NACL association to a subnet that was not exported: dropped;
//! - a prefix list that a rule names but that has no entries (it matches nothing): the
//!   message names the `aws ec2 get-managed-prefix-list-entries --prefix-list-id pl-...` to run;
//! - no IPv4 CIDR for the VPC (no `describe-vpcs`): the resolver at base+2 cannot be
//!   exempted;
//! - an ENI of type `interface` without security groups: only NACLs filter it;
//! - with `--vpc`, the objects of other VPCs that were dropped.
//!
//! Everything else is an **error**: syntax (a trailing comma, two JSON documents
//! appended to one file, a JSON array printed by `--query`, UTF-16 without a byte-order
//! mark; UTF-16 with one, as Windows PowerShell's `>` writes, is decoded), unknown
//! top-level keys and TOML fields, missing or malformed fields, several VPCs without
//! `--vpc`, no VPC id, unknown references (an unknown group that is some group's name
//! says "did you mean `sg-...`?"), addresses outside their subnet or owned twice, Elastic IPs
//! on an address the ENI does not own, prefixes outside the subnet. For JSON, the error
//! names the JSON's own path and the position of the field:
//! `NetworkInterfaces[0] (eni-0abc).Groups[1].GroupId`.
//!
//! # AWS JSON
//!
//! The kind of a JSON file is its top-level key; several may share one file:
//!
//! | key | printed by | becomes |
//! |---|---|---|
//! | `Vpcs` | `describe-vpcs` | VPC id, account (`OwnerId`), IPv4 and IPv6 CIDRs (associated ones) |
//! | `Subnets` | `describe-subnets` | subnets; the region comes from `AvailabilityZone` when nothing else says it |
//! | `NetworkAcls` | `describe-network-acls` | NACLs, their `Associations` and `Entries` (the `*` entries 32767/32768 are re-added by validation) |
//! | `SecurityGroups` | `describe-security-groups` | groups; each peer of an `IpPermission` is one rule |
//! | `SecurityGroupRules` | `describe-security-group-rules` | rules merged into their group by `GroupId` (a group known only from rules is created); a rule already present is not added twice |
//! | `NetworkInterfaces` | `describe-network-interfaces` | ENIs: addresses (primary first), `Association.PublicIp` (the ENI's, and each secondary `PrivateIpAddresses[]` entry's own: an Elastic IP on a secondary address), `Ipv4Prefixes[].Ipv4Prefix`, `Ipv6Prefixes[].Ipv6Prefix`, `InterfaceType`, `Groups` (`[]`: no security group, e.g. a NAT gateway), `Attachment.InstanceId`, `ConnectionTrackingConfiguration` |
//! | `Reservations` | `describe-instances` | the ENIs of `Instances[].NetworkInterfaces[]` (same shape; the instance id is the instance's), used where no `describe-network-interfaces` describes the same ENI |
//! | `PrefixLists` | `describe-managed-prefix-lists` (ids and names), legacy `describe-prefix-lists` (with `Cidrs`) | prefix lists; both listings of one list merge |
//! | `Entries` | `get-managed-prefix-list-entries` | the entries of one prefix list (see below) |
//!
//! `NextToken` and boto3's `ResponseMetadata` are ignored, and so is the `Return` that
//! `authorize-security-group-ingress`/`-egress` print next to their `SecurityGroupRules`.
//! The keys of other commands' output (`RouteTables`, `InternetGateways`, `NatGateways`,
//! `Subnet` of `create-subnet`, `Instances` of `run-instances`, ...) are skipped with a
//! warning naming the command. Any other top-level key is an error listing the accepted
//! ones. A top-level JSON array (`--query` output) is an error.
//! Unknown fields inside objects are ignored (real accounts print many).
//!
//! `get-managed-prefix-list-entries` does not print the list's id. It is taken from a
//! `"PrefixListId"` key next to `"Entries"` when there is one, else from the file name,
//! which must contain the id: `pl-0abc1234.json` or
//! `get-managed-prefix-list-entries.pl-0abc1234.json`.
//!
//! Mapping (aws-semantics §1.2, §3.3): TCP/UDP `FromPort`/`ToPort` → a port range;
//! ICMP/ICMPv6 `FromPort` = type, `ToPort` = code, `-1` or absent = all; protocol `-1` or
//! any other number → all ports. NACL entries of protocol 6/17 need `PortRange`; 1/58 take
//! `IcmpTypeCode` (absent = all types). A `UserIdGroupPairs` / `ReferencedGroupInfo`
//! peer in another VPC (`VpcPeeringConnectionId`, or a `VpcId` other than the group's)
//! is skipped: vpcgate emulates one VPC and cannot know that group's members. An ENI's
//! `OwnerId` equal to the VPC's account is stored as empty ("the VPC's account").
//!
//! # The ruleset TOML
//!
//! One file describes one VPC; every table rejects unknown keys, listing the valid ones.
//! See `rulesets/securecart.toml` for a commented example.
//!
//! ```toml
//! [vpc]
//! id = "vpc-0a1b2c3d4e5f60001"       # required (here or in another file)
//! account_id = "123456789012"        # 12 digits; flow logs' account-id
//! region = "us-east-1"               # optional: derived from a subnet's availability zone
//! cidrs = ["10.0.0.0/16", "2600:1f18:4a3:6d00::/56"]   # the first IPv4 is the primary
//!
//! [conntrack]                        # optional VPC-wide idle timeouts in seconds
//! tcp_established = 432000           # also tcp_unestablished, tcp_closing, udp,
//!                                    # udp_stream, icmp, other
//! [[prefix_lists]]
//! id = "pl-0a1b2c3d4e5f60001"
//! name = "office"                    # optional
//! entries = ["198.51.100.0/24"]
//!
//! [[subnets]]
//! id = "subnet-0a1b2c3d4e5f60011"
//! cidr = "10.0.1.0/24"               # IPv4; optional for an IPv6-only subnet
//! ipv6_cidr = "2600:1f18:4a3:6d01::/64"  # optional; a string or an array
//! availability_zone = "us-east-1a"   # optional
//! availability_zone_id = "use1-az4"  # optional (flow logs' az-id)
//! network_acl = "acl-0a1b2c3d4e5f60010"  # optional; else the VPC's default NACL
//!
//! [[network_acls]]
//! id = "acl-0a1b2c3d4e5f60010"
//! default = false                    # optional; exactly one NACL may be the default
//! inbound = [                        # rule 1..=32766, first match wins; `*` is implicit
//!   { rule = 100, protocol = "tcp", ports = "443", cidr = "0.0.0.0/0", action = "allow" },
//!   { rule = 140, protocol = "icmp", icmp_type = 3, icmp_code = 4, cidr = "0.0.0.0/0", action = "allow" },
//! ]
//! outbound = [
//!   { rule = 100, protocol = "tcp", ports = "1024-65535", cidr = "0.0.0.0/0", action = "allow" },
//! ]
//!
//! [[security_groups]]
//! id = "sg-0a1b2c3d4e5f60010"
//! name = "alb"                       # optional
//! description = "..."                # optional
//! ingress = [                        # one peer per rule: cidr, security_group or prefix_list
//!   { protocol = "tcp", ports = "443", cidr = "0.0.0.0/0", description = "customers" },
//!   { protocol = "tcp", ports = "8080", security_group = "sg-0a1b2c3d4e5f60020" },
//!   { protocol = "tcp", ports = 22, prefix_list = "pl-0a1b2c3d4e5f60001" },
//!   { protocol = "icmp", icmp_type = 8, cidr = "0.0.0.0/0" },   # icmp_code omitted = all
//! ]
//! egress = [ { protocol = "-1", cidr = "0.0.0.0/0" } ]
//!
//! [[network_interfaces]]
//! id = "eni-0a1b2c3d4e5f60101"
//! subnet = "subnet-0a1b2c3d4e5f60011"
//! private_ips = ["10.0.1.10", "10.0.1.11"]  # the first is the primary
//! ipv6 = ["2600:1f18:4a3:6d01::10"]         # optional
//! public_ip = "203.0.113.10"                 # optional: public or Elastic IP
//! security_groups = ["sg-0a1b2c3d4e5f60010"]
//! instance_id = "i-0a1b2c3d4e5f60001"        # optional
//! owner_id = "123456789012"                  # optional; default the VPC's account
//! description = "..."                        # optional
//! max_tracked_connections = 100000           # optional; default unlimited
//! conntrack = { tcp_established = 3600 }     # optional; same keys as [conntrack]
//! elastic_ips = { "10.0.1.11" = "198.51.100.9" }  # optional: private IPv4 = its Elastic IP
//! ipv4_prefixes = ["10.0.1.160/28"]          # optional delegated prefixes, inside the subnet
//! ipv6_prefixes = ["2600:1f18:4a3:6d01:8f3a::/80"]
//! interface_type = "interface"               # optional; `nat_gateway`, `transit_gateway`, ...
//! ```
//!
//! `security_groups = []` (or omitted) is an ENI without security groups: no SG check and
//! no connection tracking, only NACLs filter it. That is what AWS does for a NAT gateway's
//! or transit gateway's ENI; for an `interface` (the default type) it loads with a
//! warning. An `elastic_ips` entry for the primary address is its `public_ip`.
//!
//! Values: `protocol` is `-1` (or `all`), `tcp`, `udp`, `icmp`, `icmpv6` or a number
//! 0-255, as a string or an integer. `ports` is `"443"`, `"1024-65535"`, `"all"`
//! (0-65535) or an integer, and is required for tcp and udp, refused for other
//! protocols. `icmp_type` / `icmp_code` are -1 (all) or 0-255, omitted = -1, only for icmp
//! and icmpv6. `action` is `allow` or `deny`. CIDRs need a prefix length (`/32` for one
//! address).

mod aws;
mod toml;
pub(crate) mod tree;
mod values;

use crate::model::{
    ConntrackOverrides, NetworkAcl, NetworkInterface, Origin, PrefixList, RulesetError,
    RulesetErrors, SecurityGroup, SecurityGroupRule, SgPeer, Subnet, Vpc,
};
use ipnet::IpNet;
use std::path::{Path, PathBuf};
use tree::{Ctx, Syntax};

/// Loads the files and directories in `paths` (see the [module docs](self)), merges them
/// into one VPC and validates it.
pub fn load_paths(paths: &[PathBuf]) -> Result<Vpc, RulesetErrors> {
    load_paths_with(paths, &LoadOptions::default())
}

/// [`load_paths`] with options (`--vpc`).
pub fn load_paths_with(paths: &[PathBuf], opts: &LoadOptions) -> Result<Vpc, RulesetErrors> {
    let mut loader = Loader::with_options(opts);
    for p in paths {
        loader.add_path(p);
    }
    loader.finish()
}

/// Loads one document held in memory. `name` is used in messages and decides the format
/// as a path would (`.toml`, `.json`, else by the first character).
pub fn load_str(name: &str, text: &str) -> Result<Vpc, RulesetErrors> {
    let mut loader = Loader::new();
    loader.add_str(name, text);
    loader.finish()
}

/// How to load.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Keep only this VPC's objects (`--vpc vpc-0abc`): an export of a whole account
    /// lists several VPCs; objects with another `VpcId` are dropped.
    pub vpc: Option<String>,
}

/// Merges any number of files into one VPC: [`add_path`](Loader::add_path) and
/// [`add_str`](Loader::add_str) collect, [`finish`](Loader::finish) merges and validates.
#[derive(Default)]
pub struct Loader {
    parts: Parts,
    errors: Vec<RulesetError>,
    warnings: Vec<RulesetError>,
    first_file: Option<String>,
}

/// A fact about the VPC itself (its id, account, region) and where it was read.
/// `declared`: said by the VPC's own description (`[vpc]`, `describe-vpcs`), rather than
/// seen on another object (`VpcId`, `OwnerId` of a group).
#[derive(Clone, Debug)]
pub(crate) struct Claim {
    pub value: String,
    pub origin: Origin,
    pub field: String,
    pub declared: bool,
}

/// What the files said, before merging.
#[derive(Default)]
pub(crate) struct Parts {
    pub vpc_ids: Vec<Claim>,
    pub accounts: Vec<Claim>,
    pub regions: Vec<Claim>,
    /// Availability zones seen on subnets and ENIs (the region is derived from them).
    pub zones: Vec<Claim>,
    pub cidrs: Vec<IpNet>,
    pub vpc_origin: Option<Origin>,
    pub conntrack: Option<(ConntrackOverrides, Origin)>,
    pub subnets: Vec<Subnet>,
    pub network_acls: Vec<NetworkAcl>,
    pub security_groups: Vec<SecurityGroup>,
    pub network_interfaces: Vec<NetworkInterface>,
    pub prefix_lists: Vec<PrefixList>,
    /// Rules from `describe-security-group-rules`, merged into their group at the end.
    pub loose_rules: Vec<LooseRule>,
    /// Entries from `get-managed-prefix-list-entries`, merged into their list at the end.
    pub prefix_entries: Vec<(String, Vec<IpNet>, Origin)>,
    /// `--vpc`: objects with another `VpcId` are dropped.
    pub vpc_filter: Option<String>,
    /// Objects dropped by `--vpc`: their VPC ids, and the dropped groups' ids (their
    /// `describe-security-group-rules` rules are dropped too).
    pub dropped_vpcs: Vec<String>,
    pub dropped_groups: Vec<String>,
    /// ENIs from `describe-instances`: used where `describe-network-interfaces` does not
    /// describe the same ENI.
    pub instance_enis: Vec<NetworkInterface>,
    /// Where each NACL association was written: `(acl, subnet, origin, field)`.
    pub nacl_assocs: Vec<(String, String, Origin, String)>,
    /// The JSON fields behind references that validation checks (item 11): its errors
    /// are moved to the field that was written.
    pub fields: Vec<FieldAt>,
}

/// A field that [`Vpc::validate`] may complain about, as the file wrote it: an error at
/// `object` whose message contains `needle` is reported at `at` as `field`.
pub(crate) struct FieldAt {
    pub object: Origin,
    pub needle: String,
    pub field: String,
    pub at: Origin,
}

pub(crate) struct LooseRule {
    pub group_id: String,
    pub egress: bool,
    pub rule: SecurityGroupRule,
}

impl Loader {
    pub fn new() -> Loader {
        Loader::default()
    }

    pub fn with_options(opts: &LoadOptions) -> Loader {
        let mut l = Loader::default();
        l.parts.vpc_filter = opts.vpc.clone();
        l
    }

    /// Keeps only the objects of VPC `id` (see [`LoadOptions::vpc`]).
    pub fn with_vpc(id: &str) -> Loader {
        Loader::with_options(&LoadOptions {
            vpc: Some(id.to_string()),
        })
    }

    /// Adds a file, or the `*.toml` and `*.json` files of a directory (sorted by name).
    /// Errors are kept for [`finish`](Loader::finish).
    pub fn add_path(&mut self, path: &Path) {
        let name = path.display().to_string();
        if path.is_dir() {
            let entries = match std::fs::read_dir(path) {
                Ok(rd) => rd
                    .filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .collect::<Vec<_>>(),
                Err(e) => {
                    self.file_error(&name, format!("cannot read directory: {e}"));
                    return;
                }
            };
            let mut files: Vec<PathBuf> = entries
                .into_iter()
                .filter(|p| p.is_file() && matches!(ext(p).as_deref(), Some("toml" | "json")))
                .collect();
            files.sort();
            if files.is_empty() {
                self.file_error(&name, "directory holds no *.toml or *.json file");
            }
            for f in files {
                self.add_file(&f);
            }
        } else {
            self.add_file(path);
        }
    }

    fn add_file(&mut self, path: &Path) {
        let name = path.display().to_string();
        match std::fs::read(path) {
            Ok(bytes) => match tree::decode(bytes) {
                Ok(text) => self.add_str(&name, &text),
                Err(e) => self.file_error(&name, e),
            },
            Err(e) => self.file_error(&name, format!("cannot read: {e}")),
        }
    }

    fn file_error(&mut self, name: &str, message: impl Into<String>) {
        self.first_file.get_or_insert_with(|| name.to_string());
        self.errors
            .push(RulesetError::new(&Origin::new(name, 0, 0), "", message));
    }

    /// Adds one document. `name` names it in messages and origins, and its extension
    /// picks the format (`.toml`, `.json`, else the first character decides).
    pub fn add_str(&mut self, name: &str, text: &str) {
        self.first_file.get_or_insert_with(|| name.to_string());
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let syntax = match ext(Path::new(name)).as_deref() {
            Some("toml") => Syntax::Toml,
            Some("json") => Syntax::Json,
            _ if text.trim_start().starts_with('{') => Syntax::Json,
            _ => Syntax::Toml,
        };
        let mut ctx = Ctx::new(name, text, syntax);
        match syntax {
            Syntax::Toml => match tree::parse_toml(text) {
                Ok(root) => toml::read(&mut ctx, &root, &mut self.parts),
                Err((pos, msg)) => ctx.error(pos, "", format!("TOML syntax: {msg}")),
            },
            Syntax::Json => match tree::parse_json(text) {
                Ok(root) => aws::read(&mut ctx, &root, &mut self.parts),
                Err(tree::JsonError::At(pos, msg)) => {
                    ctx.error(pos, "", format!("JSON syntax: {msg}"))
                }
            },
        }
        self.errors.append(&mut ctx.errors);
        self.warnings.append(&mut ctx.warnings);
    }

    /// Merges what was added into one VPC and validates it. Returns every error found;
    /// when a file had errors, validation is not run.
    pub fn finish(self) -> Result<Vpc, RulesetErrors> {
        let Loader {
            mut parts,
            mut errors,
            mut warnings,
            first_file,
        } = self;
        let file_origin = Origin::new(first_file.as_deref().unwrap_or("<no ruleset>"), 0, 0);
        if first_file.is_none() {
            errors.push(RulesetError::new(&file_origin, "", "no ruleset given"));
        }
        let fields = std::mem::take(&mut parts.fields);
        let mut vpc = merge(parts, &file_origin, &mut errors, &mut warnings);
        if !errors.is_empty() {
            return Err(RulesetErrors(errors));
        }
        if let Err(RulesetErrors(errs)) = vpc.validate() {
            return Err(RulesetErrors(
                errs.into_iter().map(|e| at_field(e, &fields)).collect(),
            ));
        }
        warnings.append(&mut vpc.warnings);
        vpc.warnings = warnings.into_iter().map(|w| at_field(w, &fields)).collect();
        Ok(vpc)
    }
}

/// Moves a validation message onto the field the file wrote, where one was recorded.
fn at_field(mut e: RulesetError, fields: &[FieldAt]) -> RulesetError {
    if let Some(f) = fields
        .iter()
        .find(|f| f.object == e.origin && e.message.contains(&f.needle))
    {
        e.origin = f.at.clone();
        e.field = f.field.clone();
    }
    e
}

fn ext(p: &Path) -> Option<String> {
    p.extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
}

/// The VPC's own facts must agree across files; the first declared one wins.
fn pick(claims: &[Claim], what: &str, hint: &str, errors: &mut Vec<RulesetError>) -> Option<Claim> {
    let chosen = claims
        .iter()
        .find(|c| c.declared)
        .or_else(|| claims.first())?
        .clone();
    let mut reported: Vec<&str> = Vec::new();
    for c in claims {
        if c.value != chosen.value && !reported.contains(&c.value.as_str()) {
            reported.push(&c.value);
            errors.push(RulesetError::new(
                &c.origin,
                c.field.clone(),
                format!(
                    "{what} `{}` differs from `{}` (at {}); {hint}",
                    c.value, chosen.value, chosen.origin
                ),
            ));
        }
    }
    Some(chosen)
}

/// Merges what the files said into one VPC, in named steps: the VPC's own facts (id,
/// account, region, CIDRs), then its objects (deduplicated, loose rules and prefix-list
/// entries folded in, NACL associations completed), then the warnings about what is
/// missing. Errors and warnings come in that order.
fn merge(
    parts: Parts,
    file_origin: &Origin,
    errors: &mut Vec<RulesetError>,
    warnings: &mut Vec<RulesetError>,
) -> Vpc {
    let Parts {
        vpc_ids,
        accounts,
        regions,
        zones,
        cidrs,
        vpc_origin,
        conntrack,
        subnets,
        network_acls,
        security_groups,
        network_interfaces,
        prefix_lists,
        mut loose_rules,
        prefix_entries,
        vpc_filter,
        dropped_vpcs,
        dropped_groups,
        instance_enis,
        nacl_assocs,
        ..
    } = parts;

    let id = vpc_id(
        &vpc_ids,
        vpc_filter.as_deref(),
        &dropped_vpcs,
        file_origin,
        errors,
    );
    if id.is_none() && vpc_filter.is_none() {
        no_vpc_id(vpc_origin.as_ref(), file_origin, errors);
    }
    warn_dropped_vpcs(&dropped_vpcs, vpc_filter.as_deref(), file_origin, warnings);
    loose_rules.retain(|r| !dropped_groups.contains(&r.group_id));
    let mut vpc = Vpc::new(id.as_ref().map_or("", |c| c.value.as_str()));
    vpc.origin = vpc_origin
        .or_else(|| id.map(|c| c.origin))
        .unwrap_or_else(|| file_origin.clone());
    vpc.account_id = account(&accounts, errors);
    vpc.region = region(&regions, &zones, errors);
    for c in cidrs {
        if !vpc.cidrs.contains(&c) {
            vpc.cidrs.push(c);
        }
    }
    if let Some((ct, _)) = conntrack {
        vpc.conntrack = ct.apply(vpc.conntrack);
    }

    let subnets = dedupe_subnets(subnets);
    let mut network_acls = dedupe_network_acls(network_acls);
    let mut security_groups = dedupe_security_groups(security_groups);
    let mut network_interfaces = dedupe_network_interfaces(network_interfaces, instance_enis);
    let mut prefix_lists = merge_prefix_lists(prefix_lists);
    add_loose_rules(&mut security_groups, loose_rules);
    add_prefix_entries(&mut prefix_lists, prefix_entries);
    associate_nacls(&subnets, &mut network_acls, &nacl_assocs, warnings);
    for e in &mut network_interfaces {
        if e.owner_id == vpc.account_id {
            e.owner_id.clear();
        }
    }

    warn_no_ipv4_cidr(&vpc, warnings);
    warn_empty_prefix_lists(&prefix_lists, &security_groups, warnings);

    vpc.subnets = subnets;
    vpc.network_acls = network_acls;
    vpc.security_groups = security_groups;
    vpc.network_interfaces = network_interfaces;
    vpc.prefix_lists = prefix_lists;
    vpc
}

/// Each distinct value of `items`, in first-seen order.
fn distinct(items: impl IntoIterator<Item = impl AsRef<str>>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for i in items {
        if !out.iter().any(|o| o == i.as_ref()) {
            out.push(i.as_ref().to_string());
        }
    }
    out
}

/// The VPC's id: the one `--vpc` names (every other VPC id is then an error), or the one
/// all files agree on.
fn vpc_id(
    vpc_ids: &[Claim],
    vpc_filter: Option<&str>,
    dropped_vpcs: &[String],
    file_origin: &Origin,
    errors: &mut Vec<RulesetError>,
) -> Option<Claim> {
    let seen = distinct(vpc_ids.iter().map(|c| &c.value));
    let Some(want) = vpc_filter else {
        let hint = format!(
            "vpcgate emulates one VPC: pick one with `--vpc <VPC_ID>` (seen: {}), or export \
             one VPC only (e.g. `aws ec2 describe-subnets --filters Name=vpc-id,Values=<id>`)",
            seen.join(", ")
        );
        return pick(vpc_ids, "VPC", &hint, errors);
    };
    let found = vpc_ids.iter().find(|c| c.value == want).cloned();
    if found.is_none() {
        let others = distinct(seen.iter().chain(dropped_vpcs));
        errors.push(RulesetError::new(
            file_origin,
            "",
            format!(
                "--vpc {want}: no object of that VPC was loaded; VPCs seen: {}",
                if others.is_empty() {
                    "none".to_string()
                } else {
                    others.join(", ")
                }
            ),
        ));
    }
    // What `--vpc` could not drop (a ruleset TOML's `[vpc] id`) must agree.
    for c in vpc_ids.iter().filter(|c| c.value != want) {
        errors.push(RulesetError::new(
            &c.origin,
            c.field.clone(),
            format!(
                "VPC `{}` differs from `--vpc {want}`; a ruleset TOML describes one VPC: leave it out",
                c.value
            ),
        ));
    }
    found
}

/// No file says which VPC this is: the error, at the `[vpc]` table or the first file.
fn no_vpc_id(vpc_origin: Option<&Origin>, file_origin: &Origin, errors: &mut Vec<RulesetError>) {
    let at = vpc_origin.cloned().unwrap_or_else(|| Origin {
        line: 1,
        column: 1,
        ..file_origin.clone()
    });
    let how = if at.file.ends_with(".toml") {
        "add a `[vpc]` table with `id = \"vpc-...\"`"
    } else {
        "add the output of `aws ec2 describe-vpcs --vpc-ids vpc-...` \
         (or, in a ruleset TOML, `[vpc]` with `id = \"vpc-...\"`)"
    };
    errors.push(RulesetError::new(
        &at,
        "vpc.id",
        format!("the VPC has no id: no file says which VPC this is; {how}"),
    ));
}

/// `--vpc` dropped objects of other VPCs: one warning that says how many and whose.
fn warn_dropped_vpcs(
    dropped_vpcs: &[String],
    vpc_filter: Option<&str>,
    file_origin: &Origin,
    warnings: &mut Vec<RulesetError>,
) {
    if dropped_vpcs.is_empty() {
        return;
    }
    warnings.push(RulesetError::new(
        file_origin,
        "",
        format!(
            "--vpc {}: dropped {} object(s) of other VPCs ({})",
            vpc_filter.unwrap_or(""),
            dropped_vpcs.len(),
            distinct(dropped_vpcs).join(", ")
        ),
    ));
}

/// The owner account. Objects' OwnerId may differ from the VPC's in a shared VPC: only
/// declarations must agree.
fn account(accounts: &[Claim], errors: &mut Vec<RulesetError>) -> String {
    let declared: Vec<Claim> = accounts.iter().filter(|c| c.declared).cloned().collect();
    let account = if declared.is_empty() {
        accounts.first().cloned()
    } else {
        pick(&declared, "account", "a VPC has one owner account", errors)
    };
    account.map(|c| c.value).unwrap_or_default()
}

/// The region: declared, or derived from an availability zone; every zone must be in it.
fn region(regions: &[Claim], zones: &[Claim], errors: &mut Vec<RulesetError>) -> String {
    let region = pick(regions, "region", "a VPC lives in one region", errors);
    let derived = zones
        .iter()
        .find_map(|z| values::region_of_az(&z.value).map(|r| (r, z.clone())));
    let (name, source) = match (&region, &derived) {
        (Some(r), _) => (r.value.clone(), format!("`{}` at {}", r.value, r.origin)),
        (None, Some((r, z))) => (
            r.clone(),
            format!(
                "`{r}`, from availability zone `{}` at {}",
                z.value, z.origin
            ),
        ),
        (None, None) => return String::new(),
    };
    if name.is_empty() {
        return name;
    }
    for z in zones {
        if let Some(r) = values::region_of_az(&z.value) {
            if r != name {
                errors.push(RulesetError::new(
                    &z.origin,
                    z.field.clone(),
                    format!("availability zone `{}` is in region `{r}`, but the VPC's region is {source}", z.value),
                ));
            }
        }
    }
    name
}

// The same response saved twice: identical objects merge, differing ones stay
// duplicates (an error of validation).

fn dedupe_subnets(subnets: Vec<Subnet>) -> Vec<Subnet> {
    dedupe(
        subnets,
        |s| &s.id,
        |s| Subnet {
            origin: Origin::default(),
            ..s.clone()
        },
    )
}

fn dedupe_network_acls(network_acls: Vec<NetworkAcl>) -> Vec<NetworkAcl> {
    dedupe(
        network_acls,
        |a| &a.id,
        |a| {
            let mut a = a.clone();
            a.origin = Origin::default();
            for e in a.inbound.iter_mut().chain(a.outbound.iter_mut()) {
                e.origin = Origin::default();
            }
            a
        },
    )
}

fn dedupe_security_groups(security_groups: Vec<SecurityGroup>) -> Vec<SecurityGroup> {
    dedupe(
        security_groups,
        |g| &g.id,
        |g| {
            let mut g = g.clone();
            g.origin = Origin::default();
            for r in g.ingress.iter_mut().chain(g.egress.iter_mut()) {
                r.origin = Origin::default();
            }
            g
        },
    )
}

/// The ENIs of describe-network-interfaces, then those of describe-instances that it
/// does not describe.
fn dedupe_network_interfaces(
    network_interfaces: Vec<NetworkInterface>,
    instance_enis: Vec<NetworkInterface>,
) -> Vec<NetworkInterface> {
    let eni_key = |e: &NetworkInterface| NetworkInterface {
        origin: Origin::default(),
        ..e.clone()
    };
    let mut out = dedupe(network_interfaces, |e| &e.id, eni_key);
    for e in dedupe(instance_enis, |e| &e.id, eni_key) {
        if !out.iter().any(|d| d.id == e.id) {
            out.push(e);
        }
    }
    out
}

/// describe-security-group-rules: each rule into its group, creating it if needed.
fn add_loose_rules(security_groups: &mut Vec<SecurityGroup>, loose_rules: Vec<LooseRule>) {
    for lr in loose_rules {
        let g = match security_groups.iter().position(|g| g.id == lr.group_id) {
            Some(i) => &mut security_groups[i],
            None => {
                let mut g = SecurityGroup::new(&lr.group_id);
                g.origin = lr.rule.origin.clone();
                security_groups.push(g);
                security_groups.last_mut().expect("just pushed")
            }
        };
        let list = if lr.egress {
            &mut g.egress
        } else {
            &mut g.ingress
        };
        let same = |r: &SecurityGroupRule| {
            r.protocol == lr.rule.protocol && r.ports == lr.rule.ports && r.peer == lr.rule.peer
        };
        if !list.iter().any(same) {
            list.push(lr.rule);
        }
    }
}

/// get-managed-prefix-list-entries: the entries into their list, creating it if needed.
fn add_prefix_entries(
    prefix_lists: &mut Vec<PrefixList>,
    prefix_entries: Vec<(String, Vec<IpNet>, Origin)>,
) {
    for (id, entries, origin) in prefix_entries {
        let p = match prefix_lists.iter().position(|p| p.id == id) {
            Some(i) => &mut prefix_lists[i],
            None => {
                prefix_lists.push(PrefixList {
                    id,
                    name: String::new(),
                    entries: Vec::new(),
                    origin,
                });
                prefix_lists.last_mut().expect("just pushed")
            }
        };
        for e in entries {
            if !p.entries.contains(&e) {
                p.entries.push(e);
            }
        }
    }
}

/// A subnet that names its NACL is one of that NACL's associations, as
/// describe-network-acls would show it; an association to a subnet that was not
/// exported cannot change a verdict, so it is dropped with a warning.
fn associate_nacls(
    subnets: &[Subnet],
    network_acls: &mut [NetworkAcl],
    nacl_assocs: &[(String, String, Origin, String)],
    warnings: &mut Vec<RulesetError>,
) {
    for s in subnets {
        if let Some(acl_id) = &s.network_acl_id {
            if let Some(acl) = network_acls.iter_mut().find(|a| &a.id == acl_id) {
                acl.associations.push(s.id.clone());
            }
        }
    }
    for acl in network_acls {
        acl.associations.sort();
        acl.associations.dedup();
        acl.associations.retain(|sid| {
            if subnets.iter().any(|s| &s.id == sid) {
                return true;
            }
            let (at, field) = nacl_assocs
                .iter()
                .find(|(a, s, _, _)| a == &acl.id && s == sid)
                .map(|(_, _, o, f)| (o.clone(), f.clone()))
                .unwrap_or_else(|| (acl.origin.clone(), format!("network_acl {}.associations", acl.id)));
            warnings.push(RulesetError::new(
                &at,
                field,
                format!(
                    "subnet `{sid}` was not exported (no `describe-subnets` entry); association ignored"
                ),
            ));
            false
        });
    }
}

/// Without an IPv4 CIDR the DNS resolver cannot be exempted: a warning that says how
/// to add one.
fn warn_no_ipv4_cidr(vpc: &Vpc, warnings: &mut Vec<RulesetError>) {
    if vpc.cidrs.iter().any(|c| matches!(c, IpNet::V4(_))) {
        return;
    }
    warnings.push(RulesetError::new(
        &vpc.origin,
        "",
        format!(
            "the VPC has no IPv4 CIDR, so the Amazon DNS resolver at the base of its \
             primary CIDR +2 cannot be exempted (its traffic is filtered and logged) and \
             subnets are not checked against the VPC; add the output of `aws ec2 \
             describe-vpcs --vpc-ids {}` (or `cidrs` under `[vpc]` in a ruleset TOML)",
            if vpc.id.is_empty() {
                "vpc-..."
            } else {
                &vpc.id
            }
        ),
    ));
}

/// A prefix list without entries matches nothing: rules that name it allow nothing.
fn warn_empty_prefix_lists(
    prefix_lists: &[PrefixList],
    security_groups: &[SecurityGroup],
    warnings: &mut Vec<RulesetError>,
) {
    for p in prefix_lists {
        let used = security_groups.iter().any(|g| {
            g.ingress
                .iter()
                .chain(g.egress.iter())
                .any(|r| matches!(&r.peer, SgPeer::PrefixList(id) if id == &p.id))
        });
        if !used || !p.entries.is_empty() {
            continue;
        }
        let name = if p.name.is_empty() {
            String::new()
        } else {
            format!(" ({})", p.name)
        };
        let how = if p.origin.file.ends_with(".toml") {
            "give its `entries`".to_string()
        } else {
            format!(
                "run `aws ec2 get-managed-prefix-list-entries --prefix-list-id {0} > {0}.json` \
                 and load that file too",
                p.id
            )
        };
        warnings.push(RulesetError::new(
            &p.origin,
            "",
            format!(
                "prefix list `{}`{name} has no entries, so the security-group rules that \
                 name it match nothing; {how}",
                p.id
            ),
        ));
    }
}

/// Drops an object equal (ignoring where it was written) to an earlier one of the same id.
fn dedupe<T, K: PartialEq>(
    items: Vec<T>,
    id: impl Fn(&T) -> &String,
    key: impl Fn(&T) -> K,
) -> Vec<T> {
    let mut out: Vec<T> = Vec::with_capacity(items.len());
    for item in items {
        let k = key(&item);
        if !out.iter().any(|o| id(o) == id(&item) && key(o) == k) {
            out.push(item);
        }
    }
    out
}

/// The same prefix list from `describe-managed-prefix-lists` (no entries) and the legacy
/// `describe-prefix-lists` (with `Cidrs`), or the same response saved twice, is one list.
/// Two lists of one id whose entries or names differ stay two (a duplicate-id error).
fn merge_prefix_lists(lists: Vec<PrefixList>) -> Vec<PrefixList> {
    let mut out: Vec<PrefixList> = Vec::with_capacity(lists.len());
    for p in lists {
        let same = out.iter_mut().find(|o| {
            o.id == p.id
                && (o.name.is_empty() || p.name.is_empty() || o.name == p.name)
                && (o.entries.is_empty() || p.entries.is_empty() || o.entries == p.entries)
        });
        match same {
            Some(o) => {
                if o.name.is_empty() {
                    o.name = p.name;
                }
                if o.entries.is_empty() {
                    o.entries = p.entries;
                }
            }
            None => out.push(p),
        }
    }
    out
}

#[cfg(test)]
mod tests;
