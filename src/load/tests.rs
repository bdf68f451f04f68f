//! Loader tests: every error kind names its file, line, column and field; the verbatim
//! JSON examples of aws-semantics.md load and map as §1.2 and §3.3 say.

use super::*;
use crate::model::{PortSpec, Protocol, RuleAction, SgPeer};

/// 1-based line and column of the first occurrence of `needle` in `text`.
fn at(text: &str, needle: &str) -> String {
    let i = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in the text"));
    let line = text[..i].matches('\n').count() + 1;
    let col = text[..i].rsplit('\n').next().unwrap().chars().count() + 1;
    format!("{line}:{col}")
}

/// The same, for the `n`-th (0-based) occurrence.
fn at_nth(text: &str, needle: &str, n: usize) -> String {
    let (i, _) = text
        .match_indices(needle)
        .nth(n)
        .unwrap_or_else(|| panic!("{needle:?} #{n} not in the text"));
    let line = text[..i].matches('\n').count() + 1;
    let col = text[..i].rsplit('\n').next().unwrap().chars().count() + 1;
    format!("{line}:{col}")
}

fn load_docs(docs: &[(&str, &str)]) -> Result<Vpc, RulesetErrors> {
    let mut l = Loader::new();
    for (name, text) in docs {
        l.add_str(name, text);
    }
    l.finish()
}

fn errors(docs: &[(&str, &str)]) -> String {
    match load_docs(docs) {
        Ok(_) => panic!("expected errors"),
        Err(e) => e.to_string(),
    }
}

fn assert_has(err: &str, want: &str) {
    assert!(err.contains(want), "expected {want:?} in:\n{err}");
}

const HEAD: &str = r#"
[vpc]
id = "vpc-0lab"
account_id = "123456789012"
cidrs = ["10.0.0.0/16"]

[[subnets]]
id = "subnet-0a"
cidr = "10.0.1.0/24"
availability_zone = "us-east-1a"
"#;

// ---- TOML errors ------------------------------------------------------------------------

#[test]
fn rule_number_outside_range() {
    let text = format!(
        "{HEAD}
[[network_acls]]
id = \"acl-0x\"
inbound = [
  {{ rule = 100, protocol = \"tcp\", ports = \"443\", cidr = \"0.0.0.0/0\", action = \"allow\" }},
  {{ rule = 110, protocol = \"tcp\", ports = \"80\", cidr = \"0.0.0.0/0\", action = \"allow\" }},
  {{ rule = 40000, protocol = \"-1\", cidr = \"0.0.0.0/0\", action = \"deny\" }},
]
"
    );
    let err = errors(&[("rulesets/x.toml", &text)]);
    let pos = at(&text, "40000");
    assert_has(
        &err,
        &format!("rulesets/x.toml:{pos}: network_acls[0].inbound[2].rule: rule 40000 is outside 1..=32766"),
    );
    // A TOML message speaks TOML: the field is `rule`, not AWS's `RuleNumber`.
    assert!(!err.contains("RuleNumber"), "{err}");
    let zero = text.replace("40000", "0");
    assert_has(&errors(&[("x.toml", &zero)]), "rule 0 is outside 1..=32766");
}

#[test]
fn duplicate_rule_numbers() {
    let text = format!(
        "{HEAD}
[[network_acls]]
id = \"acl-0x\"
outbound = [
  {{ rule = 100, protocol = \"tcp\", ports = \"443\", cidr = \"0.0.0.0/0\", action = \"allow\" }},
  {{ rule = 100, protocol = \"udp\", ports = \"53\", cidr = \"0.0.0.0/0\", action = \"allow\" }},
]
"
    );
    let err = errors(&[("x.toml", &text)]);
    let first = at(&text, "{ rule = 100");
    let second = at_nth(&text, "{ rule = 100", 1);
    assert_has(&err, &format!("x.toml:{second}: "));
    assert_has(
        &err,
        &format!("duplicate outbound rule number 100 (first at x.toml:{first})"),
    );
}

#[test]
fn bad_cidr() {
    let text = format!(
        "{HEAD}
[[security_groups]]
id = \"sg-0x\"
ingress = [ {{ protocol = \"tcp\", ports = \"22\", cidr = \"10.0.0.0/33\" }} ]
"
    );
    let err = errors(&[("x.toml", &text)]);
    let pos = at(&text, "\"10.0.0.0/33\"");
    assert_has(
        &err,
        &format!("x.toml:{pos}: security_groups[0].ingress[0].cidr: bad CIDR \"10.0.0.0/33\": "),
    );
    // A bare address gets a hint.
    let bare = text.replace("10.0.0.0/33", "10.0.0.7");
    assert_has(&errors(&[("x.toml", &bare)]), "add /32 for one address");
    // A subnet's `cidr` is IPv4 only.
    let v6 = HEAD.replace("cidr = \"10.0.1.0/24\"", "cidr = \"2600:1f18::/64\"");
    assert_has(
        &errors(&[("x.toml", &v6)]),
        "subnets[0].cidr: 2600:1f18::/64 is an IPv6 CIDR; this field takes IPv4",
    );
}

#[test]
fn from_greater_than_to() {
    let text = format!(
        "{HEAD}
[[network_acls]]
id = \"acl-0x\"
inbound = [ {{ rule = 100, protocol = \"tcp\", ports = \"443-80\", cidr = \"0.0.0.0/0\", action = \"allow\" }} ]
"
    );
    let err = errors(&[("x.toml", &text)]);
    let pos = at(&text, "\"443-80\"");
    assert_has(
        &err,
        &format!("x.toml:{pos}: network_acls[0].inbound[0].ports: ports \"443-80\": from 443 is greater than to 80"),
    );
}

#[test]
fn bad_protocol_action_and_ports() {
    let text = format!(
        "{HEAD}
[[network_acls]]
id = \"acl-0x\"
inbound = [
  {{ rule = 100, protocol = \"tpc\", ports = \"443\", cidr = \"0.0.0.0/0\", action = \"allow\" }},
  {{ rule = 110, protocol = \"tcp\", ports = \"70000\", cidr = \"0.0.0.0/0\", action = \"permit\" }},
  {{ rule = 120, protocol = \"tcp\", cidr = \"0.0.0.0/0\", action = \"allow\" }},
  {{ rule = 130, protocol = \"-1\", ports = \"22\", cidr = \"0.0.0.0/0\", action = \"allow\" }},
  {{ rule = 140, protocol = \"icmp\", icmp_code = 4, cidr = \"0.0.0.0/0\", action = \"allow\" }},
]
"
    );
    let err = errors(&[("x.toml", &text)]);
    assert_has(
        &err,
        &format!(
            "x.toml:{}: network_acls[0].inbound[0].protocol: protocol \"tpc\": expected -1, tcp, udp, icmp, icmpv6 or a number 0-255",
            at(&text, "\"tpc\"")
        ),
    );
    assert_has(
        &err,
        "inbound[1].ports: ports \"70000\": port 70000 is outside 0..=65535",
    );
    assert_has(
        &err,
        "inbound[1].action: action \"permit\": expected allow or deny",
    );
    assert_has(&err, "inbound[2].ports: tcp and udp rules need `ports`");
    assert_has(&err, "inbound[3].ports: protocol -1 has no ports");
    assert_has(&err, "inbound[4].icmp_code: ICMP code given with type -1");
}

#[test]
fn unknown_fields_list_the_valid_ones() {
    let text = format!(
        "{HEAD}
[[security_groups]]
id = \"sg-0x\"
ingress = [ {{ protocol = \"tcp\", port = \"22\", cidr = \"10.0.0.0/8\" }} ]
"
    );
    let err = errors(&[("x.toml", &text)]);
    let pos = at(&text, "port = ");
    assert_has(
        &err,
        &format!("x.toml:{pos}: security_groups[0].ingress[0].port: unknown field `port`; valid fields here: `protocol`, `ports`"),
    );
    // At the top level too.
    let top = format!("{HEAD}\n[[subnet]]\nid = \"subnet-0b\"\n");
    let err = errors(&[("x.toml", &top)]);
    assert_has(
        &err,
        &format!(
            "x.toml:{}: subnet: unknown field `subnet`",
            at(&top, "subnet]]")
        ),
    );
    assert_has(&err, "`network_interfaces`");
}

#[test]
fn wrong_types_are_named() {
    let text = format!("{HEAD}\n[[network_acls]]\nid = \"acl-0x\"\ndefault = \"yes\"\n");
    let err = errors(&[("x.toml", &text)]);
    assert_has(
        &err,
        &format!(
            "x.toml:{}: network_acls[0].default: expected true or false, found a string",
            at(&text, "\"yes\"")
        ),
    );
}

#[test]
fn toml_syntax_error_has_line_and_column() {
    let text = "[vpc]\nid = \"vpc-1\"\ncidrs = [\"10.0.0.0/16\"\n\n[[subnets]]\n";
    let err = errors(&[("x.toml", text)]);
    assert!(err.starts_with("error: x.toml:"), "{err}");
    assert_has(&err, "TOML syntax: ");
}

#[test]
fn unknown_security_group_and_subnet_references() {
    let text = format!(
        "{HEAD}
[[security_groups]]
id = \"sg-0app\"
ingress = [ {{ protocol = \"tcp\", ports = \"8080\", security_group = \"sg-0nope\" }} ]

[[network_interfaces]]
id = \"eni-0a\"
subnet = \"subnet-0nope\"
private_ips = [\"10.0.1.10\"]
security_groups = [\"sg-0app\", \"sg-0gone\"]
"
    );
    let err = errors(&[("x.toml", &text)]);
    let rule = at(&text, "{ protocol = \"tcp\", ports = \"8080\"");
    assert_has(&err, &format!("x.toml:{rule}: security_group sg-0app.ingress[0].security_group: unknown security group `sg-0nope`"));
    let eni = at(&text, "[[network_interfaces]]");
    assert_has(&err, &format!("x.toml:{eni}: network_interface eni-0a.subnet: unknown subnet `subnet-0nope`; known subnets: `subnet-0a`"));
    // Fix the subnet: the unknown group is reported.
    let text = text.replace("subnet-0nope", "subnet-0a");
    let err = errors(&[("x.toml", &text)]);
    assert_has(
        &err,
        "network_interface eni-0a.security_groups: unknown security group `sg-0gone`",
    );
}

#[test]
fn eni_address_outside_its_subnet() {
    let text = format!(
        "{HEAD}
[[network_interfaces]]
id = \"eni-0a\"
subnet = \"subnet-0a\"
private_ips = [\"10.0.2.5\"]
"
    );
    let err = errors(&[("x.toml", &text)]);
    let eni = at(&text, "[[network_interfaces]]");
    assert_has(
        &err,
        &format!("x.toml:{eni}: network_interface eni-0a.private_ips: address 10.0.2.5 is outside its subnet `subnet-0a` (10.0.1.0/24)"),
    );
}

#[test]
fn toml_maps_onto_the_model() {
    let text = format!(
        "{HEAD}
[conntrack]
udp = 45

[[prefix_lists]]
id = \"pl-0office\"
entries = [\"198.51.100.0/24\"]

[[network_acls]]
id = \"acl-0x\"
inbound = [
  {{ rule = 120, protocol = \"icmp\", icmp_type = 3, icmp_code = 4, cidr = \"0.0.0.0/0\", action = \"allow\" }},
  {{ rule = 100, protocol = 6, ports = 443, cidr = \"0.0.0.0/0\", action = \"ALLOW\" }},
]

[[security_groups]]
id = \"sg-0x\"
ingress = [
  {{ protocol = \"icmp\", icmp_type = 8, cidr = \"0.0.0.0/0\" }},
  {{ protocol = \"tcp\", ports = \"all\", prefix_list = \"pl-0office\" }},
  {{ protocol = \"50\", cidr = \"10.0.0.0/8\" }},
]

[[network_interfaces]]
id = \"eni-0a\"
subnet = \"subnet-0a\"
private_ips = [\"10.0.1.10\", \"10.0.1.11\"]
public_ip = \"203.0.113.10\"
security_groups = [\"sg-0x\"]
max_tracked_connections = 1000
conntrack = {{ tcp_established = 350 }}
"
    );
    let mut text = text.replace("[[subnets]]", "[[subnets]]\nnetwork_acl = \"acl-0x\"");
    text.push('\n');
    let vpc = load_str("x.toml", &text).unwrap();
    assert_eq!(vpc.region, "us-east-1");
    assert_eq!(vpc.conntrack.udp, 45);
    let acl = vpc.network_acl("acl-0x").unwrap();
    assert_eq!(acl.associations, vec!["subnet-0a".to_string()]);
    assert_eq!(vpc.subnets[0].network_acl_id.as_deref(), Some("acl-0x"));
    let rules: Vec<_> = acl
        .inbound
        .iter()
        .map(|e| (e.rule_number, e.protocol, e.ports, e.action))
        .collect();
    assert_eq!(
        rules[..2],
        [
            (
                100,
                Protocol::Number(6),
                PortSpec::Range { from: 443, to: 443 },
                RuleAction::Allow
            ),
            (
                120,
                Protocol::Number(1),
                PortSpec::Icmp {
                    icmp_type: Some(3),
                    code: Some(4)
                },
                RuleAction::Allow
            ),
        ]
    );
    let g = vpc.security_group("sg-0x").unwrap();
    assert_eq!(
        g.ingress[0].ports,
        PortSpec::Icmp {
            icmp_type: Some(8),
            code: None
        }
    );
    assert_eq!(g.ingress[1].ports, PortSpec::Range { from: 0, to: 65535 });
    assert_eq!(g.ingress[1].peer, SgPeer::PrefixList("pl-0office".into()));
    assert_eq!(g.ingress[2].ports, PortSpec::Any);
    let e = vpc.network_interface("eni-0a").unwrap();
    assert_eq!(e.private_ipv4.len(), 2);
    assert_eq!(e.public_ipv4, Some("203.0.113.10".parse().unwrap()));
    assert_eq!(e.max_tracked_connections, Some(1000));
    assert_eq!(e.conntrack.tcp_established, Some(350));
    assert_eq!(
        e.origin.to_string(),
        format!("x.toml:{}", at(&text, "[[network_interfaces]]"))
    );
}

#[test]
fn one_peer_per_rule() {
    let text = format!(
        "{HEAD}
[[security_groups]]
id = \"sg-0x\"
egress = [
  {{ protocol = \"tcp\", ports = \"22\", cidr = \"10.0.0.0/8\", security_group = \"sg-0x\" }},
  {{ protocol = \"tcp\", ports = \"22\" }},
]
"
    );
    let err = errors(&[("x.toml", &text)]);
    assert_has(
        &err,
        "egress[0].security_group: a rule has exactly one peer, and `cidr` is already given",
    );
    assert_has(&err, "egress[1]: a rule needs one peer");
}

// ---- JSON errors ------------------------------------------------------------------------

#[test]
fn json_missing_field_names_file_object_and_field() {
    let text = r#"{
    "SecurityGroups": [
        {"GroupId": "sg-0aaa", "GroupName": "a", "IpPermissions": [], "IpPermissionsEgress": []},
        {"GroupId": "sg-0abc", "GroupName": "b",
         "IpPermissions": [{"FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}]},
        {"GroupName": "c"}
    ]
}"#;
    let err = errors(&[("aws/sg.json", text)]);
    let perm = at(text, "{\"FromPort\"");
    assert_has(
        &err,
        &format!("aws/sg.json:{perm}: SecurityGroups[1] (sg-0abc).IpPermissions[0].IpProtocol: missing required field `IpProtocol`"),
    );
    let third = at(text, "{\"GroupName\": \"c\"}");
    assert_has(
        &err,
        &format!(
            "aws/sg.json:{third}: SecurityGroups[2].GroupId: missing required field `GroupId`"
        ),
    );
}

#[test]
fn json_tcp_rule_without_ports_and_nacl_entry_without_port_range() {
    let sg = r#"{"SecurityGroups": [{"GroupId": "sg-0a", "IpPermissions": [
        {"IpProtocol": "tcp", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]}]}"#;
    assert_has(
        &errors(&[("sg.json", sg)]),
        "SecurityGroups[0] (sg-0a).IpPermissions[0].FromPort: missing required field `FromPort`",
    );
    let acl = r#"{"NetworkAcls": [{"NetworkAclId": "acl-0a", "Entries": [
        {"CidrBlock": "0.0.0.0/0", "Egress": false, "Protocol": "6", "RuleAction": "allow", "RuleNumber": 100}]}]}"#;
    let err = errors(&[("acl.json", acl)]);
    assert_has(
        &err,
        &format!(
            "acl.json:{}: NetworkAcls[0] (acl-0a).Entries[0].PortRange: missing required field",
            at(acl, "{\"CidrBlock\"")
        ),
    );
}

#[test]
fn json_type_and_value_errors() {
    let text = r#"{"SecurityGroups": [{"GroupId": "sg-0a", "IpPermissions": [
        {"IpProtocol": "tcp", "FromPort": "22", "ToPort": 22, "IpRanges": []},
        {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 80, "IpRanges": []},
        {"IpProtocol": "icmp", "FromPort": 300, "ToPort": -1, "IpRanges": []}]}]}"#;
    let err = errors(&[("sg.json", text)]);
    assert_has(
        &err,
        &format!("sg.json:{}: SecurityGroups[0] (sg-0a).IpPermissions[0].FromPort: expected an integer, found a string", at(text, "\"22\"")),
    );
    assert_has(
        &err,
        "IpPermissions[1].ToPort: FromPort 443 is greater than ToPort 80",
    );
    assert_has(
        &err,
        "IpPermissions[2].FromPort: ICMP type (FromPort) 300 is outside -1..=255",
    );
}

#[test]
fn json_syntax_error_has_line_and_column() {
    let text = "{\n  \"Subnets\": [\n    {\"SubnetId\": \"subnet-1\",}\n  ]\n}";
    let err = errors(&[("s.json", text)]);
    assert_has(&err, "s.json:3:29: JSON syntax: key must be a string");
}

#[test]
fn json_unknown_top_level_key_lists_the_accepted_ones() {
    // (`Reservations`, used here before, is describe-instances' output: it is read now.)
    let text = "{\n  \"Reservatoins\": []\n}";
    let err = errors(&[("i.json", text)]);
    assert_has(
        &err,
        "i.json:2:3: Reservatoins: unknown top-level key `Reservatoins`",
    );
    assert_has(&err, "`SecurityGroups` (describe-security-groups)");
    assert_has(&err, "`Entries` (get-managed-prefix-list-entries)");
}

#[test]
fn several_vpcs_are_an_error_naming_both() {
    let a = r#"{"Subnets": [{"SubnetId": "subnet-1", "VpcId": "vpc-0aaa", "CidrBlock": "10.0.1.0/24"}]}"#;
    let b = "{\"SecurityGroups\": [\n  {\"GroupId\": \"sg-1\", \"VpcId\": \"vpc-0bbb\"}\n]}";
    let err = errors(&[("subnets.json", a), ("sgs.json", b)]);
    assert_has(&err, &format!("sgs.json:{}: SecurityGroups[0] (sg-1).VpcId: VPC `vpc-0bbb` differs from `vpc-0aaa` (at subnets.json:1:", at(b, "\"vpc-0bbb\"")));
    assert_has(&err, "vpcgate emulates one VPC");
}

#[test]
fn region_must_match_the_zones() {
    let text = HEAD.replace("account_id", "region = \"eu-west-1\"\naccount_id");
    let err = errors(&[("x.toml", &text)]);
    assert_has(&err, "subnets[0].availability_zone: availability zone `us-east-1a` is in region `us-east-1`, but the VPC's region is `eu-west-1`");
}

#[test]
fn errors_of_a_file_stop_before_validation() {
    // The bad CIDR makes the group unreadable; no cascade of "unknown group" errors.
    let text = format!(
        "{HEAD}
[[security_groups]]
id = \"sg-0x\"
ingress = [ {{ protocol = \"tcp\", ports = \"22\", cidr = \"nope\" }} ]
"
    );
    let e = load_docs(&[("x.toml", &text)]).unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
}

// ---- the verbatim examples of aws-semantics.md -----------------------------------------

/// §1.9, describe-security-groups, example 1.
const SG_EXAMPLE_1: &str = r#"{
    "SecurityGroups": [
        {
            "IpPermissionsEgress": [
                {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}], "UserIdGroupPairs": [], "PrefixListIds": []}
            ],
            "Description": "My security group",
            "Tags": [{"Value": "SG1", "Key": "Name"}],
            "IpPermissions": [
                {"IpProtocol": "-1", "IpRanges": [], "UserIdGroupPairs": [{"UserId": "123456789012", "GroupId": "sg-903004f8"}], "PrefixListIds": []},
                {"PrefixListIds": [], "FromPort": 22, "IpRanges": [{"Description": "Access from NY office", "CidrIp": "203.0.113.0/24"}], "ToPort": 22, "IpProtocol": "tcp", "UserIdGroupPairs": []}
            ],
            "GroupName": "MySecurityGroup",
            "VpcId": "vpc-1a2b3c4d",
            "OwnerId": "123456789012",
            "GroupId": "sg-903004f8"
        }
    ]
}"#;

#[test]
fn example_describe_security_groups() {
    let vpc = load_str("sg.json", SG_EXAMPLE_1).unwrap();
    assert_eq!(vpc.id, "vpc-1a2b3c4d");
    assert_eq!(vpc.account_id, "123456789012");
    let g = vpc.security_group("sg-903004f8").unwrap();
    assert_eq!(
        (g.name.as_str(), g.description.as_str()),
        ("MySecurityGroup", "My security group")
    );
    assert_eq!(g.ingress.len(), 2);
    assert_eq!(g.ingress[0].protocol, Protocol::All);
    assert_eq!(g.ingress[0].ports, PortSpec::Any);
    assert_eq!(
        g.ingress[0].peer,
        SgPeer::SecurityGroup("sg-903004f8".into())
    );
    assert_eq!(g.ingress[1].protocol, Protocol::Number(6));
    assert_eq!(g.ingress[1].ports, PortSpec::Range { from: 22, to: 22 });
    assert_eq!(
        g.ingress[1].peer,
        SgPeer::Cidr("203.0.113.0/24".parse().unwrap())
    );
    assert_eq!(
        g.ingress[1].description.as_deref(),
        Some("Access from NY office")
    );
    assert_eq!(
        g.ingress[1].origin.to_string(),
        format!("sg.json:{}", at(SG_EXAMPLE_1, "{\"Description\": \"Access"))
    );
    assert_eq!(g.egress.len(), 1);
    assert_eq!(g.egress[0].peer, SgPeer::Cidr("0.0.0.0/0".parse().unwrap()));
}

/// §1.9, describe-security-group-rules (the default SG of an IPv6-enabled VPC).
const SG_RULES_EXAMPLE: &str = r#"{"SecurityGroupRules": [
  {"SecurityGroupRuleId": "sgr-abcdef01234567890", "GroupId": "sg-1234567890abcdef0", "GroupOwnerId": "111122223333",
   "IsEgress": false, "IpProtocol": "-1", "FromPort": -1, "ToPort": -1,
   "ReferencedGroupInfo": {"GroupId": "sg-1234567890abcdef0", "UserId": "111122223333"}, "Tags": []},
  {"SecurityGroupRuleId": "sgr-bcdef01234567890a", "GroupId": "sg-1234567890abcdef0", "GroupOwnerId": "111122223333",
   "IsEgress": true, "IpProtocol": "-1", "FromPort": -1, "ToPort": -1, "CidrIpv6": "::/0", "Tags": []},
  {"SecurityGroupRuleId": "sgr-cdef01234567890ab", "GroupId": "sg-1234567890abcdef0", "GroupOwnerId": "111122223333",
   "IsEgress": true, "IpProtocol": "-1", "FromPort": -1, "ToPort": -1, "CidrIpv4": "0.0.0.0/0", "Tags": []}
]}"#;

#[test]
fn example_describe_security_group_rules() {
    let vpc = load_docs(&[
        ("vpc.toml", "[vpc]\nid = \"vpc-1\"\n"),
        ("rules.json", SG_RULES_EXAMPLE),
    ])
    .unwrap();
    let g = vpc.security_group("sg-1234567890abcdef0").unwrap();
    assert_eq!(g.ingress.len(), 1);
    assert_eq!(
        g.ingress[0].peer,
        SgPeer::SecurityGroup("sg-1234567890abcdef0".into())
    );
    assert_eq!(g.ingress[0].ports, PortSpec::Any);
    let peers: Vec<String> = g.egress.iter().map(|r| r.peer.to_string()).collect();
    assert_eq!(peers, ["::/0", "0.0.0.0/0"]);
    assert_eq!(
        g.ingress[0].origin.to_string(),
        format!(
            "rules.json:{}",
            at(SG_RULES_EXAMPLE, "{\"SecurityGroupRuleId\"")
        )
    );
}

#[test]
fn security_group_rules_merge_into_described_groups() {
    // The same rules from describe-security-groups and describe-security-group-rules
    // are not doubled; a rule only known from the rules file is added.
    let groups = r#"{"SecurityGroups": [{"GroupId": "sg-1234567890abcdef0", "VpcId": "vpc-1",
        "IpPermissionsEgress": [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]}]}"#;
    let vpc = load_docs(&[("g.json", groups), ("r.json", SG_RULES_EXAMPLE)]).unwrap();
    let g = vpc.security_group("sg-1234567890abcdef0").unwrap();
    assert_eq!(g.egress.len(), 2);
    assert_eq!(g.ingress.len(), 1);
    assert_eq!(g.origin.file.as_ref(), "g.json");
}

/// §3.4, the default NACL of a dual-stack VPC (one `NetworkAcl`, wrapped as
/// describe-network-acls prints it).
const DEFAULT_NACL: &str = r#"{
  "Associations": [],
  "Entries": [
    {"CidrBlock": "0.0.0.0/0", "Egress": true,  "Protocol": "-1", "RuleAction": "allow", "RuleNumber": 100},
    {"Egress": true,  "Ipv6CidrBlock": "::/0", "Protocol": "-1", "RuleAction": "allow", "RuleNumber": 101},
    {"CidrBlock": "0.0.0.0/0", "Egress": true,  "Protocol": "-1", "RuleAction": "deny",  "RuleNumber": 32767},
    {"Egress": true,  "Ipv6CidrBlock": "::/0", "Protocol": "-1", "RuleAction": "deny",  "RuleNumber": 32768},
    {"CidrBlock": "0.0.0.0/0", "Egress": false, "Protocol": "-1", "RuleAction": "allow", "RuleNumber": 100},
    {"Egress": false, "Ipv6CidrBlock": "::/0", "Protocol": "-1", "RuleAction": "allow", "RuleNumber": 101},
    {"CidrBlock": "0.0.0.0/0", "Egress": false, "Protocol": "-1", "RuleAction": "deny",  "RuleNumber": 32767},
    {"Egress": false, "Ipv6CidrBlock": "::/0", "Protocol": "-1", "RuleAction": "deny",  "RuleNumber": 32768}
  ],
  "IsDefault": true,
  "NetworkAclId": "acl-0e2a78e4e2EXAMPLE",
  "Tags": [],
  "VpcId": "vpc-03914afb3eEXAMPLE",
  "OwnerId": "111122223333"
}"#;

#[test]
fn example_default_nacl() {
    let text = format!("{{\"NetworkAcls\": [{DEFAULT_NACL}]}}");
    let vpcs = r#"{"Vpcs": [{"VpcId": "vpc-03914afb3eEXAMPLE", "CidrBlock": "10.0.0.0/16", "OwnerId": "111122223333",
        "Ipv6CidrBlockAssociationSet": [{"Ipv6CidrBlock": "2001:db8:1234:1a00::/56", "Ipv6CidrBlockState": {"State": "associated"}}]}]}"#;
    let vpc = load_docs(&[("acls.json", &text), ("vpcs.json", vpcs)]).unwrap();
    assert_eq!(vpc.network_acls.len(), 1);
    let acl = &vpc.network_acls[0];
    assert!(acl.is_default);
    for list in [&acl.inbound, &acl.outbound] {
        let numbers: Vec<u32> = list.iter().map(|e| e.rule_number).collect();
        assert_eq!(numbers, [100, 101, 32767, 32768]);
        assert_eq!(list[1].cidr.to_string(), "::/0");
        assert_eq!(list[0].action, RuleAction::Allow);
    }
    assert_eq!(vpc.account_id, "111122223333");
    assert_eq!(vpc.cidrs.len(), 2);
}

/// §8.1, describe-subnets, the minimal botocore example.
const SUBNETS_EXAMPLE: &str = r#"{"Subnets":[{"AvailabilityZone":"us-east-1c","AvailableIpAddressCount":251,"CidrBlock":"10.0.1.0/24","DefaultForAz":false,
"MapPublicIpOnLaunch":false,"State":"available","SubnetId":"subnet-9d4a7b6c","VpcId":"vpc-a01106c2"}]}"#;

#[test]
fn example_describe_subnets() {
    let vpc = load_str("subnets.json", SUBNETS_EXAMPLE).unwrap();
    assert_eq!(vpc.id, "vpc-a01106c2");
    assert_eq!(vpc.region, "us-east-1");
    let s = vpc.subnet("subnet-9d4a7b6c").unwrap();
    assert_eq!(s.ipv4_cidr, Some("10.0.1.0/24".parse().unwrap()));
    assert_eq!(s.availability_zone, "us-east-1c");
    // No NACL association anywhere: the default NACL.
    assert!(
        vpc.network_acl(s.network_acl_id.as_deref().unwrap())
            .unwrap()
            .is_default
    );
}

/// §8.2, describe-network-interfaces, the botocore element.
const ENI_EXAMPLE: &str = r#"{"NetworkInterfaces": [
{"Association":{"AssociationId":"eipassoc-0fbb766a","IpOwnerId":"123456789012","PublicDnsName":"ec2-203-0-113-12.compute-1.amazonaws.com","PublicIp":"203.0.113.12"},
 "Attachment":{"AttachTime":"2013-11-30T23:36:42.000Z","AttachmentId":"eni-attach-66c4350a","DeleteOnTermination":false,"DeviceIndex":1,"InstanceId":"i-1234567890abcdef0","InstanceOwnerId":"123456789012","Status":"attached"},
 "AvailabilityZone":"us-east-1d","Description":"my network interface","Groups":[{"GroupId":"sg-8637d3e3","GroupName":"default"}],
 "MacAddress":"02:2f:8f:b0:cf:75","NetworkInterfaceId":"eni-e5aa89a3","OwnerId":"123456789012","PrivateDnsName":"ip-10-0-1-17.ec2.internal","PrivateIpAddress":"10.0.1.17",
 "PrivateIpAddresses":[{"Association":{"AssociationId":"eipassoc-0fbb766a","IpOwnerId":"123456789012","PublicDnsName":"ec2-203-0-113-12.compute-1.amazonaws.com","PublicIp":"203.0.113.12"},
   "Primary":true,"PrivateDnsName":"ip-10-0-1-17.ec2.internal","PrivateIpAddress":"10.0.1.17"}],
 "RequesterManaged":false,"SourceDestCheck":true,"Status":"in-use","SubnetId":"subnet-b61f49f0","TagSet":[],"VpcId":"vpc-a01106c2"}
]}"#;

#[test]
fn example_describe_network_interfaces() {
    let rest = r#"{"Subnets": [{"SubnetId": "subnet-b61f49f0", "CidrBlock": "10.0.1.0/24", "AvailabilityZone": "us-east-1d", "VpcId": "vpc-a01106c2"}],
        "SecurityGroups": [{"GroupId": "sg-8637d3e3", "GroupName": "default", "VpcId": "vpc-a01106c2"}]}"#;
    let vpc = load_docs(&[("enis.json", ENI_EXAMPLE), ("rest.json", rest)]).unwrap();
    let e = vpc.network_interface("eni-e5aa89a3").unwrap();
    assert_eq!(e.subnet_id, "subnet-b61f49f0");
    assert_eq!(
        e.private_ipv4,
        vec!["10.0.1.17".parse::<std::net::Ipv4Addr>().unwrap()]
    );
    assert_eq!(e.public_ipv4, Some("203.0.113.12".parse().unwrap()));
    assert_eq!(e.instance_id.as_deref(), Some("i-1234567890abcdef0"));
    assert_eq!(e.security_groups, ["sg-8637d3e3"]);
    assert_eq!(e.description, "my network interface");
    // The account comes from the objects' OwnerId; an ENI of that account stores "".
    assert_eq!(vpc.account_id, "123456789012");
    assert_eq!(e.owner_id, "");
    assert_eq!(e.origin.to_string(), "enis.json:2:1");
}

#[test]
fn eni_details_real_accounts_print() {
    let text = r#"{"NetworkInterfaces": [{"NetworkInterfaceId": "eni-1", "SubnetId": "subnet-1", "VpcId": "vpc-1",
        "PrivateIpAddress": "10.0.1.5",
        "PrivateIpAddresses": [
            {"Primary": false, "PrivateIpAddress": "10.0.1.6", "Association": {"PublicIp": "198.51.100.6"}},
            {"Primary": true, "PrivateIpAddress": "10.0.1.5", "Association": {"PublicIp": "198.51.100.5"}}],
        "Ipv6Address": "2001:db8::5",
        "Ipv6Addresses": [{"Ipv6Address": "2001:db8::7"}, {"Ipv6Address": "2001:db8::5", "IsPrimaryIpv6": true}],
        "ConnectionTrackingConfiguration": {"TcpEstablishedTimeout": 120, "UdpStreamTimeout": 60, "UdpTimeout": 30},
        "TagSet": [{"Key": "Name", "Value": "x"}], "RequesterManaged": true}],
      "Subnets": [{"SubnetId": "subnet-1", "CidrBlock": "10.0.1.0/24", "VpcId": "vpc-1",
        "Ipv6CidrBlockAssociationSet": [
          {"Ipv6CidrBlock": "2001:db8::/64", "Ipv6CidrBlockState": {"State": "associated"}},
          {"Ipv6CidrBlock": "2001:db8:0:9::/64", "Ipv6CidrBlockState": {"State": "disassociated"}}]}]}"#;
    let vpc = load_str("x.json", text).unwrap();
    let e = vpc.network_interface("eni-1").unwrap();
    let v4: Vec<String> = e.private_ipv4.iter().map(|a| a.to_string()).collect();
    assert_eq!(v4, ["10.0.1.5", "10.0.1.6"]);
    assert_eq!(e.public_ipv4, Some("198.51.100.5".parse().unwrap()));
    let v6: Vec<String> = e.ipv6.iter().map(|a| a.to_string()).collect();
    assert_eq!(v6, ["2001:db8::7", "2001:db8::5"]);
    assert_eq!(
        (
            e.conntrack.tcp_established,
            e.conntrack.udp_stream,
            e.conntrack.udp
        ),
        (Some(120), Some(60), Some(30))
    );
    assert_eq!(vpc.subnet("subnet-1").unwrap().ipv6_cidrs.len(), 1);
}

/// §8.3, get-managed-prefix-list-entries.
const ENTRIES_EXAMPLE: &str = r#"{"Entries":[{"Cidr":"10.0.0.0/16","Description":"vpc-a"},{"Cidr":"10.2.0.0/16","Description":"vpc-b"}]}"#;

#[test]
fn example_prefix_list_entries() {
    let described = r#"{"PrefixLists": [{"PrefixListId": "pl-0123abcd", "AddressFamily": "IPv4", "State": "create-complete",
        "PrefixListName": "vpc-cidrs", "MaxEntries": 10, "Version": 1, "Tags": [], "OwnerId": "123456789012"}]}"#;
    let vpc = load_docs(&[
        ("lab.toml", "[vpc]\nid = \"vpc-1\"\n"),
        ("describe-managed-prefix-lists.json", described),
        (
            "aws/get-managed-prefix-list-entries.pl-0123abcd.json",
            ENTRIES_EXAMPLE,
        ),
    ])
    .unwrap();
    let p = &vpc.prefix_lists[0];
    assert_eq!(
        (p.id.as_str(), p.name.as_str()),
        ("pl-0123abcd", "vpc-cidrs")
    );
    let entries: Vec<String> = p.entries.iter().map(|c| c.to_string()).collect();
    assert_eq!(entries, ["10.0.0.0/16", "10.2.0.0/16"]);

    // The id may also sit next to "Entries".
    let wrapped = r#"{"PrefixListId": "pl-0999", "Entries": [{"Cidr": "192.0.2.0/24"}]}"#;
    let vpc = load_docs(&[
        ("lab.toml", "[vpc]\nid = \"vpc-1\"\n"),
        ("entries.json", wrapped),
    ])
    .unwrap();
    assert_eq!(vpc.prefix_lists[0].id, "pl-0999");

    // Without either, the error says how to name it.
    let err = errors(&[("entries.json", ENTRIES_EXAMPLE)]);
    assert_has(&err, "entries.json:1:12: Entries: get-managed-prefix-list-entries does not print which prefix list");
}

#[test]
fn legacy_describe_prefix_lists_with_cidrs() {
    let text = r#"{"PrefixLists": [{"PrefixListId": "pl-63a5400a", "PrefixListName": "com.amazonaws.us-east-1.s3",
        "Cidrs": ["54.231.0.0/17", "52.216.0.0/15"]}]}"#;
    let vpc = load_docs(&[("lab.toml", "[vpc]\nid = \"vpc-1\"\n"), ("pl.json", text)]).unwrap();
    assert_eq!(vpc.prefix_lists[0].entries.len(), 2);
}

#[test]
fn json_protocols_and_ports_map_as_documented() {
    let text = r#"{"SecurityGroups": [{"GroupId": "sg-1", "VpcId": "vpc-1", "IpPermissions": [
        {"IpProtocol": "6", "FromPort": 1024, "ToPort": 65535, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]},
        {"IpProtocol": "icmp", "FromPort": -1, "ToPort": -1, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]},
        {"IpProtocol": "icmp", "FromPort": 8, "ToPort": -1, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]},
        {"IpProtocol": "icmpv6", "Ipv6Ranges": [{"CidrIpv6": "::/0"}]},
        {"IpProtocol": "50", "FromPort": 10, "ToPort": 20, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]},
        {"IpProtocol": "-1", "FromPort": -1, "ToPort": -1, "PrefixListIds": [{"PrefixListId": "pl-1"}]},
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "UserIdGroupPairs": [
            {"GroupId": "sg-peer", "VpcId": "vpc-other", "VpcPeeringConnectionId": "pcx-1", "PeeringStatus": "active"},
            {"GroupId": "sg-1"}]}]}],
      "PrefixLists": [{"PrefixListId": "pl-1", "Cidrs": ["192.0.2.0/24"]}]}"#;
    let vpc = load_str("x.json", text).unwrap();
    let ports: Vec<PortSpec> = vpc
        .security_group("sg-1")
        .unwrap()
        .ingress
        .iter()
        .map(|r| r.ports)
        .collect();
    assert_eq!(
        ports,
        [
            PortSpec::Range {
                from: 1024,
                to: 65535
            },
            PortSpec::Icmp {
                icmp_type: None,
                code: None
            },
            PortSpec::Icmp {
                icmp_type: Some(8),
                code: None
            },
            PortSpec::Icmp {
                icmp_type: None,
                code: None
            },
            PortSpec::Any,
            PortSpec::Any,
            // The peered group is skipped; the local one stays.
            PortSpec::Range { from: 22, to: 22 },
        ]
    );
}

#[test]
fn json_nacl_entries_map_as_documented() {
    let text = r#"{"NetworkAcls": [{"NetworkAclId": "acl-1", "VpcId": "vpc-1", "Entries": [
        {"CidrBlock": "0.0.0.0/0", "Egress": false, "Protocol": "1", "IcmpTypeCode": {"Type": 3, "Code": 4}, "RuleAction": "allow", "RuleNumber": 100},
        {"CidrBlock": "0.0.0.0/0", "Egress": false, "Protocol": "17", "PortRange": {"From": 53, "To": 53}, "RuleAction": "allow", "RuleNumber": 110},
        {"CidrBlock": "0.0.0.0/0", "Egress": false, "Protocol": "47", "PortRange": {"From": 1, "To": 2}, "RuleAction": "deny", "RuleNumber": 120},
        {"Ipv6CidrBlock": "::/0", "Egress": true, "Protocol": "58", "IcmpTypeCode": {"Type": -1, "Code": -1}, "RuleAction": "allow", "RuleNumber": 100}]}]}"#;
    let vpc = load_str("x.json", text).unwrap();
    let acl = vpc.network_acl("acl-1").unwrap();
    assert_eq!(
        acl.inbound[0].ports,
        PortSpec::Icmp {
            icmp_type: Some(3),
            code: Some(4)
        }
    );
    assert_eq!(acl.inbound[1].ports, PortSpec::Range { from: 53, to: 53 });
    assert_eq!(acl.inbound[2].ports, PortSpec::Any);
    assert_eq!(
        acl.outbound[0].ports,
        PortSpec::Icmp {
            icmp_type: None,
            code: None
        }
    );
    let bad = text.replace("\"RuleNumber\": 120", "\"RuleNumber\": 40000");
    assert_has(
        &errors(&[("x.json", &bad)]),
        "NetworkAcls[0] (acl-1).Entries[2].RuleNumber: RuleNumber 40000 is outside 1..=32766",
    );
}

// ---- files and directories -------------------------------------------------------------

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vpcgate-load-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn directories_load_their_toml_and_json_files() {
    let d = temp_dir("dir");
    std::fs::write(d.join("b-subnets.json"), SUBNETS_EXAMPLE).unwrap();
    std::fs::write(
        d.join("a-vpc.toml"),
        "[vpc]\nid = \"vpc-a01106c2\"\ncidrs = [\"10.0.0.0/16\"]\n",
    )
    .unwrap();
    std::fs::write(d.join("README.md"), "not a ruleset").unwrap();
    std::fs::create_dir(d.join("old")).unwrap();
    std::fs::write(d.join("old").join("broken.toml"), "this is not toml").unwrap();
    let vpc = load_paths(std::slice::from_ref(&d)).unwrap();
    assert_eq!(vpc.subnets.len(), 1);
    assert_eq!(
        vpc.origin.file.as_ref(),
        d.join("a-vpc.toml").display().to_string()
    );

    let empty = temp_dir("empty");
    let err = load_paths(std::slice::from_ref(&empty))
        .unwrap_err()
        .to_string();
    assert_has(&err, "directory holds no *.toml or *.json file");
    let missing = load_paths(&[d.join("nope.toml")]).unwrap_err().to_string();
    assert_has(&missing, "nope.toml: cannot read: ");
    let _ = std::fs::remove_dir_all(&d);
    let _ = std::fs::remove_dir_all(&empty);
}

#[test]
fn no_ruleset_is_an_error() {
    assert_has(
        &load_paths(&[]).unwrap_err().to_string(),
        "no ruleset given",
    );
}

// ---- issue 9: real accounts --------------------------------------------------------------

fn warnings_of(vpc: &Vpc) -> String {
    vpc.warnings
        .iter()
        .map(|w| format!("warning: {w}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn toml_eni_type_elastic_ips_and_prefixes() {
    let text = format!(
        "{HEAD}
[[security_groups]]
id = \"sg-0web\"

[[network_interfaces]]
id = \"eni-0web\"
subnet = \"subnet-0a\"
private_ips = [\"10.0.1.10\", \"10.0.1.11\"]
public_ip = \"203.0.113.10\"
elastic_ips = {{ \"10.0.1.11\" = \"198.51.100.9\" }}
ipv4_prefixes = [\"10.0.1.160/28\"]
security_groups = [\"sg-0web\"]

[[network_interfaces]]
id = \"eni-0nat\"
subnet = \"subnet-0a\"
private_ips = [\"10.0.1.71\"]
elastic_ips = {{ \"10.0.1.71\" = \"198.51.100.71\" }}
interface_type = \"nat_gateway\"
security_groups = []
"
    );
    let vpc = load_str("x.toml", &text).unwrap();
    let web = vpc.network_interface("eni-0web").unwrap();
    assert_eq!(
        web.secondary_public_ipv4,
        [(
            "198.51.100.9".parse().unwrap(),
            "10.0.1.11".parse().unwrap()
        )]
    );
    assert_eq!(web.ipv4_prefixes, ["10.0.1.160/28".parse().unwrap()]);
    assert_eq!(web.interface_type, "interface");
    // An Elastic IP on the primary address is its public address.
    let nat = vpc.network_interface("eni-0nat").unwrap();
    assert_eq!(nat.public_ipv4, Some("198.51.100.71".parse().unwrap()));
    assert!(nat.secondary_public_ipv4.is_empty());
    assert_eq!(nat.interface_type, "nat_gateway");
    // A NAT gateway has no groups: no warning.
    assert!(vpc.warnings.is_empty(), "{}", warnings_of(&vpc));

    // An `interface` without groups loads, with a warning (manual: "The model").
    let bare = text.replace("interface_type = \"nat_gateway\"\n", "");
    let vpc = load_str("x.toml", &bare).unwrap();
    assert_has(
        &warnings_of(&vpc),
        "network_interface eni-0nat.security_groups: an ENI of type `interface` without security groups: treated as an ENI without security groups, only NACLs filter it",
    );
}

#[test]
fn eni_addresses_validated() {
    let eni = |extra: &str| {
        format!(
            "{HEAD}
[[security_groups]]
id = \"sg-0web\"

[[network_interfaces]]
id = \"eni-0a\"
subnet = \"subnet-0a\"
private_ips = [\"10.0.1.10\", \"10.0.1.11\"]
security_groups = [\"sg-0web\"]
{extra}

[[network_interfaces]]
id = \"eni-0b\"
subnet = \"subnet-0a\"
private_ips = [\"10.0.1.20\"]
public_ip = \"203.0.113.20\"
security_groups = [\"sg-0web\"]
"
        )
    };
    // An Elastic IP on an address the ENI does not own.
    let err = errors(&[(
        "x.toml",
        &eni("elastic_ips = { \"10.0.1.12\" = \"198.51.100.9\" }"),
    )]);
    assert_has(&err, "network_interface eni-0a.elastic_ips: 198.51.100.9 maps to 10.0.1.12, which is not one of this ENI's private addresses (10.0.1.10, 10.0.1.11)");
    // A public address owned twice.
    let err = errors(&[(
        "x.toml",
        &eni("elastic_ips = { \"10.0.1.11\" = \"203.0.113.20\" }"),
    )]);
    assert_has(&err, "address 203.0.113.20 is already assigned to `eni-0a`");
    // A prefix outside the subnet; a prefix over another ENI's address.
    let err = errors(&[("x.toml", &eni("ipv4_prefixes = [\"10.0.2.0/28\"]"))]);
    assert_has(
        &err,
        "network_interface eni-0a.prefixes: prefix 10.0.2.0/28 is outside its subnet `subnet-0a` (10.0.1.0/24)",
    );
    let err = errors(&[("x.toml", &eni("ipv4_prefixes = [\"10.0.1.16/28\"]"))]);
    assert_has(
        &err,
        "prefix 10.0.1.16/28 overlaps address 10.0.1.20 of `eni-0b`; an address belongs to one ENI",
    );
    // An IPv6 prefix needs the subnet's IPv6 range.
    let err = errors(&[("x.toml", &eni("ipv6_prefixes = [\"2001:db8::/80\"]"))]);
    assert_has(
        &err,
        "prefix 2001:db8::/80 is outside its subnet `subnet-0a`",
    );
}

#[test]
fn json_eni_without_groups_and_secondary_elastic_ip() {
    let text = r#"{"NetworkInterfaces": [
  {"NetworkInterfaceId": "eni-0nat", "SubnetId": "subnet-1", "VpcId": "vpc-1",
   "InterfaceType": "nat_gateway", "Groups": [],
   "PrivateIpAddresses": [{"Primary": true, "PrivateIpAddress": "10.0.1.71"}]},
  {"NetworkInterfaceId": "eni-0bad", "SubnetId": "subnet-1", "VpcId": "vpc-1", "Groups": [],
   "PrivateIpAddresses": [{"Primary": true, "PrivateIpAddress": "10.0.1.72"}]}],
 "Subnets": [{"SubnetId": "subnet-1", "CidrBlock": "10.0.1.0/24", "VpcId": "vpc-1"}],
 "Vpcs": [{"VpcId": "vpc-1", "CidrBlock": "10.0.0.0/16"}]}"#;
    let vpc = load_str("x.json", text).unwrap();
    assert!(vpc
        .network_interface("eni-0nat")
        .unwrap()
        .has_no_security_group());
    let w = warnings_of(&vpc);
    // Without InterfaceType, an ENI is an `interface`: no groups is worth a warning.
    assert_has(&w, "NetworkInterfaces[1] (eni-0bad).Groups: an ENI of type `interface` without security groups");
    assert!(!w.contains("eni-0nat"), "{w}");
    // Existing example: the secondary's own Association.PublicIp is kept now.
    let text = r#"{"NetworkInterfaces": [{"NetworkInterfaceId": "eni-1", "SubnetId": "subnet-1", "VpcId": "vpc-1",
        "Groups": [{"GroupId": "sg-1"}],
        "PrivateIpAddresses": [
            {"Primary": false, "PrivateIpAddress": "10.0.1.6", "Association": {"PublicIp": "198.51.100.6"}},
            {"Primary": true, "PrivateIpAddress": "10.0.1.5", "Association": {"PublicIp": "198.51.100.5"}}]}],
      "SecurityGroups": [{"GroupId": "sg-1", "VpcId": "vpc-1"}],
      "Subnets": [{"SubnetId": "subnet-1", "CidrBlock": "10.0.1.0/24", "VpcId": "vpc-1"}]}"#;
    let vpc = load_str("x.json", text).unwrap();
    let e = vpc.network_interface("eni-1").unwrap();
    assert_eq!(e.public_ipv4, Some("198.51.100.5".parse().unwrap()));
    assert_eq!(
        e.secondary_public_ipv4,
        [("198.51.100.6".parse().unwrap(), "10.0.1.6".parse().unwrap())]
    );
}

const TWO_VPCS: &str = r#"{"Subnets": [
    {"SubnetId": "subnet-0a", "VpcId": "vpc-0aaa", "CidrBlock": "10.0.1.0/24"},
    {"SubnetId": "subnet-0b", "VpcId": "vpc-0bbb", "CidrBlock": "10.9.1.0/24"}],
 "SecurityGroups": [
    {"GroupId": "sg-0a", "VpcId": "vpc-0aaa"},
    {"GroupId": "sg-0b", "VpcId": "vpc-0bbb"}],
 "Vpcs": [
    {"VpcId": "vpc-0aaa", "CidrBlock": "10.0.0.0/16"},
    {"VpcId": "vpc-0bbb", "CidrBlock": "10.9.0.0/16"}]}"#;

#[test]
fn several_vpcs_pick_one_with_vpc() {
    let err = errors(&[("all.json", TWO_VPCS)]);
    assert_has(
        &err,
        "pick one with `--vpc <VPC_ID>` (seen: vpc-0aaa, vpc-0bbb)",
    );

    let rules = r#"{"SecurityGroupRules": [
        {"SecurityGroupRuleId": "sgr-1", "GroupId": "sg-0b", "IsEgress": false, "IpProtocol": "-1", "CidrIpv4": "0.0.0.0/0"}]}"#;
    let mut l = Loader::with_vpc("vpc-0bbb");
    l.add_str("all.json", TWO_VPCS);
    l.add_str("rules.json", rules);
    let vpc = l.finish().unwrap();
    assert_eq!(vpc.id, "vpc-0bbb");
    assert_eq!(vpc.cidrs, ["10.9.0.0/16".parse().unwrap()]);
    let ids: Vec<&str> = vpc.subnets.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["subnet-0b"]);
    assert!(vpc.security_group("sg-0a").is_none());
    assert_eq!(vpc.security_group("sg-0b").unwrap().ingress.len(), 1);
    assert_has(
        &warnings_of(&vpc),
        "--vpc vpc-0bbb: dropped 3 object(s) of other VPCs (vpc-0aaa)",
    );
    // The other VPC's group's rules go with it.
    let mut l = Loader::with_options(&LoadOptions {
        vpc: Some("vpc-0aaa".into()),
    });
    l.add_str("all.json", TWO_VPCS);
    l.add_str("rules.json", rules);
    let vpc = l.finish().unwrap();
    assert!(vpc.security_group("sg-0b").is_none());

    let mut l = Loader::with_vpc("vpc-0aaa");
    l.add_str("all.json", TWO_VPCS);
    l.add_str("lab.toml", "[vpc]\nid = \"vpc-0bbb\"\n");
    assert_has(
        &l.finish().unwrap_err().to_string(),
        "lab.toml:2:6: vpc.id: VPC `vpc-0bbb` differs from `--vpc vpc-0aaa`",
    );
    let mut l = Loader::with_vpc("vpc-0ccc");
    l.add_str("all.json", TWO_VPCS);
    assert_has(
        &l.finish().unwrap_err().to_string(),
        "--vpc vpc-0ccc: no object of that VPC was loaded; VPCs seen: vpc-0aaa, vpc-0bbb",
    );
}

#[test]
fn load_time_warnings_for_what_would_change_verdicts() {
    // A prefix list a rule names, without entries: say which command gives them.
    let text = r#"{"PrefixLists": [{"PrefixListId": "pl-0office", "PrefixListName": "office"}],
      "SecurityGroups": [{"GroupId": "sg-1", "VpcId": "vpc-1", "IpPermissions": [
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "PrefixListIds": [{"PrefixListId": "pl-0office"}]}]}]}"#;
    let vpc = load_str("x.json", text).unwrap();
    let w = warnings_of(&vpc);
    assert_has(
        &w,
        &format!(
            "warning: x.json:{}: prefix list `pl-0office` (office) has no entries",
            at(text, "{\"PrefixListId\"")
        ),
    );
    assert_has(&w, "prefix list `pl-0office` (office) has no entries, so the security-group rules that name it match nothing; run `aws ec2 get-managed-prefix-list-entries --prefix-list-id pl-0office > pl-0office.json`");
    // No VPC CIDR: the resolver cannot be exempted.
    assert_has(&w, "the VPC has no IPv4 CIDR, so the Amazon DNS resolver at the base of its primary CIDR +2 cannot be exempted");
    assert_has(&w, "`aws ec2 describe-vpcs --vpc-ids vpc-1`");
    // A list no rule names changes nothing: describe-managed-prefix-lists lists dozens.
    let unused = r#"{"PrefixLists": [{"PrefixListId": "pl-0office", "PrefixListName": "office"}],
      "Vpcs": [{"VpcId": "vpc-1", "CidrBlock": "10.0.0.0/16"}]}"#;
    let vpc = load_str("x.json", unused).unwrap();
    assert!(vpc.warnings.is_empty(), "{}", warnings_of(&vpc));
    // In TOML, the words of TOML.
    let toml = format!(
        "{HEAD}
[[prefix_lists]]
id = \"pl-0office\"
entries = []

[[security_groups]]
id = \"sg-0a\"
ingress = [ {{ protocol = \"tcp\", ports = 22, prefix_list = \"pl-0office\" }} ]
"
    );
    let vpc = load_str("x.toml", &toml).unwrap();
    let w = warnings_of(&vpc);
    assert_has(&w, "prefix list `pl-0office` has no entries, so the security-group rules that name it match nothing; give its `entries`");
    assert!(!w.contains("CIDR"), "{w}");
}

#[test]
fn other_commands_output_is_skipped_with_a_warning() {
    let boto3 = r#"{"Subnets": [{"SubnetId": "subnet-1", "VpcId": "vpc-1", "CidrBlock": "10.0.1.0/24"}],
        "ResponseMetadata": {"RequestId": "x", "HTTPStatusCode": 200, "HTTPHeaders": {}, "RetryAttempts": 0}}"#;
    let vpc = load_str("s.json", boto3).unwrap();
    assert!(!warnings_of(&vpc).contains("ResponseMetadata"));
    let igw = r#"{"InternetGateways": [{"InternetGatewayId": "igw-1", "Attachments": []}]}"#;
    let vpc = load_docs(&[("s.json", boto3), ("igw.json", igw)]).unwrap();
    assert_has(&warnings_of(&vpc), "warning: igw.json:1:2: InternetGateways: `InternetGateways` is the output of `aws ec2 describe-internet-gateways`, which vpcgate does not read (routing is not emulated); skipped");
    // run-instances prints more keys next to `Instances`: all part of that output.
    let run =
        r#"{"Groups": [], "Instances": [], "OwnerId": "123456789012", "ReservationId": "r-1"}"#;
    let vpc = load_docs(&[("s.json", boto3), ("run.json", run)]).unwrap();
    assert_has(&warnings_of(&vpc), "`aws ec2 run-instances`");
    // `Return` alone: a command that changed something.
    let ret = r#"{"Return": true}"#;
    let vpc = load_docs(&[("s.json", boto3), ("r.json", ret)]).unwrap();
    assert_has(
        &warnings_of(&vpc),
        "r.json:1:2: Return: this is the output of a command that changes something",
    );
    // revoke-security-group-ingress: `Return` and the revoked rules, one warning.
    let revoke = r#"{"Return": true, "RevokedSecurityGroupRules": []}"#;
    let vpc = load_docs(&[("s.json", boto3), ("rv.json", revoke)]).unwrap();
    let w = warnings_of(&vpc);
    assert_has(&w, "rv.json:1:18: RevokedSecurityGroupRules: `RevokedSecurityGroupRules` is the output of `aws ec2 revoke-security-group-ingress/-egress`");
    assert!(!w.contains("Return"), "{w}");
    // Truly unknown keys stay errors.
    let err = errors(&[("s.json", boto3), ("u.json", r#"{"Subnetz": []}"#)]);
    assert_has(&err, "u.json:1:2: Subnetz: unknown top-level key `Subnetz`");
}

#[test]
fn the_same_response_twice_merges() {
    let vpc = load_docs(&[("a.json", TWO_VPCS), ("b.json", TWO_VPCS)]);
    // (two VPCs: an error, but not about duplicate ids)
    let err = vpc.unwrap_err().to_string();
    assert!(!err.contains("duplicate"), "{err}");
    let one = r#"{"SecurityGroups": [{"GroupId": "sg-1", "VpcId": "vpc-1", "IpPermissions": [
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}]}]}"#;
    let vpc = load_docs(&[("a.json", one), ("b.json", one)]).unwrap();
    assert_eq!(vpc.security_groups.len(), 1);
    assert_eq!(vpc.security_groups[0].ingress.len(), 1);
    // Differing objects of one id stay an error.
    let other = one.replace("10.0.0.0/8", "10.1.0.0/16");
    let err = errors(&[("a.json", one), ("b.json", &other)]);
    assert_has(&err, "duplicate security_group id `sg-1`");
    // Prefix lists: the managed listing (no entries) and the legacy one (with Cidrs).
    let managed = r#"{"PrefixLists": [{"PrefixListId": "pl-63a5400a", "PrefixListName": "com.amazonaws.us-east-1.s3", "OwnerId": "AWS"}]}"#;
    let legacy = r#"{"PrefixLists": [{"PrefixListId": "pl-63a5400a", "PrefixListName": "com.amazonaws.us-east-1.s3", "Cidrs": ["52.216.0.0/15"]}]}"#;
    let head = (
        "lab.toml",
        "[vpc]\nid = \"vpc-1\"\ncidrs = [\"10.0.0.0/16\"]\n",
    );
    for docs in [
        [head, ("m.json", managed), ("l.json", legacy)],
        [head, ("l.json", legacy), ("m.json", managed)],
    ] {
        let vpc = load_docs(&docs).unwrap();
        assert_eq!(vpc.prefix_lists.len(), 1);
        assert_eq!(vpc.prefix_lists[0].entries.len(), 1);
    }
    let legacy2 = legacy.replace("52.216.0.0/15", "3.5.0.0/19");
    let err = errors(&[head, ("l.json", legacy), ("l2.json", &legacy2)]);
    assert_has(&err, "duplicate prefix_list id `pl-63a5400a`");
}

#[test]
fn json_errors_name_the_jsons_own_field() {
    let text = r#"{"NetworkInterfaces": [
  {"NetworkInterfaceId": "eni-0a", "SubnetId": "subnet-0nope", "VpcId": "vpc-1",
   "Groups": [{"GroupId": "sg-0web"}],
   "PrivateIpAddresses": [{"Primary": true, "PrivateIpAddress": "10.0.1.5"}]},
  {"NetworkInterfaceId": "eni-0b", "SubnetId": "subnet-1", "VpcId": "vpc-1",
   "Groups": [{"GroupId": "sg-0web"}, {"GroupId": "web"}],
   "PrivateIpAddresses": [{"Primary": true, "PrivateIpAddress": "10.0.1.5"},
                          {"Primary": false, "PrivateIpAddress": "10.0.9.6"}]}],
 "SecurityGroups": [{"GroupId": "sg-0web", "GroupName": "web", "VpcId": "vpc-1", "IpPermissions": [
   {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "UserIdGroupPairs": [{"GroupId": "sg-0gone"}],
    "PrefixListIds": [{"PrefixListId": "pl-0gone"}]}]}],
 "Subnets": [{"SubnetId": "subnet-1", "CidrBlock": "10.0.1.0/24", "VpcId": "vpc-1"}],
 "Vpcs": [{"VpcId": "vpc-1", "CidrBlock": "10.0.0.0/16"}]}"#;
    let err = errors(&[("x.json", text)]);
    let at_ = |needle: &str| at(text, needle);
    assert_has(
        &err,
        &format!(
            "x.json:{}: NetworkInterfaces[0] (eni-0a).SubnetId: unknown subnet `subnet-0nope`",
            at_("\"subnet-0nope\"")
        ),
    );
    // A group named by its name: did you mean its id?
    assert_has(&err, &format!("x.json:{}: NetworkInterfaces[1] (eni-0b).Groups[1].GroupId: unknown security group `web` (did you mean `sg-0web`?", at_("\"web\"}")));
    assert_has(&err, &format!("x.json:{}: NetworkInterfaces[1] (eni-0b).PrivateIpAddresses[1].PrivateIpAddress: address 10.0.9.6 is outside its subnet", at_("\"10.0.9.6\"")));
    assert_has(&err, &format!("x.json:{}: SecurityGroups[0] (sg-0web).IpPermissions[0].UserIdGroupPairs[0].GroupId: unknown security group `sg-0gone`", at_("\"sg-0gone\"")));
    assert_has(&err, &format!("x.json:{}: SecurityGroups[0] (sg-0web).IpPermissions[0].PrefixListIds[0].PrefixListId: unknown prefix list `pl-0gone`", at_("\"pl-0gone\"")));

    // Duplicate ids, duplicate rule numbers, a subnet outside the VPC, a warning.
    let text = r#"{"Subnets": [
  {"SubnetId": "subnet-1", "CidrBlock": "10.0.1.0/24", "VpcId": "vpc-1"},
  {"SubnetId": "subnet-1", "CidrBlock": "10.0.2.0/24", "VpcId": "vpc-1"},
  {"SubnetId": "subnet-2", "CidrBlock": "10.7.2.0/24", "VpcId": "vpc-1"}],
 "NetworkAcls": [{"NetworkAclId": "acl-1", "VpcId": "vpc-1", "Entries": [
  {"CidrBlock": "0.0.0.0/0", "Egress": false, "Protocol": "-1", "RuleAction": "allow", "RuleNumber": 100},
  {"CidrBlock": "0.0.0.0/0", "Egress": false, "Protocol": "-1", "RuleAction": "deny", "RuleNumber": 100}]}],
 "Vpcs": [{"VpcId": "vpc-1", "CidrBlock": "10.0.0.0/16"}]}"#;
    let err = errors(&[("x.json", text)]);
    assert_has(
        &err,
        &format!(
            "x.json:{}: Subnets[1] (subnet-1).SubnetId: duplicate subnet id `subnet-1`",
            at_nth(text, "\"subnet-1\"", 1)
        ),
    );
    assert_has(
        &err,
        &format!(
            "x.json:{}: Subnets[2] (subnet-2).CidrBlock: 10.7.2.0/24 is not inside any VPC CIDR",
            at(text, "\"10.7.2.0/24\"")
        ),
    );
    assert_has(&err, &format!("x.json:{}: NetworkAcls[0] (acl-1).Entries[1].RuleNumber: duplicate inbound rule number 100", at_nth(text, "100}", 1)));
    // The `*` rule number with another action: reserved, at the JSON's field.
    let star = text.replace(
        "\"deny\", \"RuleNumber\": 100",
        "\"allow\", \"RuleNumber\": 32767",
    );
    assert_has(&errors(&[("x.json", &star)]), &format!("x.json:{}: NetworkAcls[0] (acl-1).Entries[1].RuleNumber: RuleNumber 32767 is outside 1..=32766", at(&star, "32767")));
    let text = r#"{"NetworkInterfaces": [
  {"NetworkInterfaceId": "eni-1", "SubnetId": "subnet-1", "VpcId": "vpc-1", "Groups": [],
   "PrivateIpAddresses": [{"Primary": true, "PrivateIpAddress": "10.0.1.5"}]}],
 "Subnets": [{"SubnetId": "subnet-1", "CidrBlock": "10.0.1.0/24", "VpcId": "vpc-1"}],
 "Vpcs": [{"VpcId": "vpc-1", "CidrBlock": "10.0.0.0/16"}]}"#;
    let vpc = load_str("x.json", text).unwrap();
    assert_has(&warnings_of(&vpc), &format!("warning: x.json:{}: NetworkInterfaces[0] (eni-1).Groups: an ENI of type `interface` without security groups", at(text, "[],")));

    // No VPC id anywhere: a position, and the export that gives it.
    let err = errors(&[(
        "x.toml",
        "[[subnets]]\nid = \"subnet-1\"\ncidr = \"10.0.1.0/24\"\n",
    )]);
    assert_has(&err, "x.toml:1:1: vpc.id: the VPC has no id: no file says which VPC this is; add a `[vpc]` table with `id = \"vpc-...\"`");
    let err = errors(&[("sg.json", r#"{"SecurityGroups": [{"GroupId": "sg-1"}]}"#)]);
    assert_has(&err, "sg.json:1:1: vpc.id: the VPC has no id: no file says which VPC this is; add the output of `aws ec2 describe-vpcs --vpc-ids vpc-...`");
}

#[test]
fn toml_names_a_group_by_its_name() {
    let text = format!(
        "{HEAD}
[[security_groups]]
id = \"sg-0web\"
name = \"web\"

[[security_groups]]
id = \"sg-0app\"
ingress = [ {{ protocol = \"tcp\", ports = \"8080\", security_group = \"web\" }} ]
"
    );
    let err = errors(&[("x.toml", &text)]);
    assert_has(&err, "security_group sg-0app.ingress[0].security_group: unknown security group `web` (did you mean `sg-0web`? `web` is that group's name");
}

#[test]
fn icmp_labels_say_any_code() {
    let text = format!(
        "{HEAD}
[[security_groups]]
id = \"sg-0a\"
ingress = [
  {{ protocol = \"icmp\", icmp_type = 8, cidr = \"0.0.0.0/0\" }},
  {{ protocol = \"icmp\", icmp_type = 3, icmp_code = 4, cidr = \"0.0.0.0/0\" }},
  {{ protocol = \"icmpv6\", cidr = \"::/0\" }},
]
"
    );
    let vpc = load_str("x.toml", &text).unwrap();
    let g = vpc.security_group("sg-0a").unwrap();
    let labels: Vec<String> = g.ingress.iter().map(|r| r.describe(true)).collect();
    assert_eq!(
        labels,
        [
            "icmp type 8, any code from 0.0.0.0/0",
            "icmp type 3 code 4 from 0.0.0.0/0",
            "icmpv6 any type from ::/0"
        ]
    );
}

#[test]
fn json_syntax_mistakes_are_named() {
    let err = errors(&[("a.json", "{\"Vpcs\": [\n  {\"VpcId\": \"vpc-1\"},\n]}")]);
    assert_has(&err, "a.json:3:1: JSON syntax: ");
    assert_has(&err, "a trailing comma");
    let err = errors(&[("a.json", "{\"Vpcs\": []}\n{\"Subnets\": []}\n")]);
    assert_has(&err, "a.json:2:1: JSON syntax: trailing characters: a second JSON document follows the first (two outputs appended with `>>`?)");
    let err = errors(&[("q.json", "[\n  {\"GroupId\": \"sg-1\"}\n]")]);
    assert_has(&err, "q.json:1:1: the document is a JSON array, not an object: this looks like `--query` output; export the whole response");
}

#[test]
fn utf16_files_from_powershell_load() {
    let d = temp_dir("utf16");
    let text = "{\"Vpcs\": [{\"VpcId\": \"vpc-1\", \"CidrBlock\": \"10.0.0.0/16\"}]}";
    let mut le = vec![0xFF, 0xFE];
    for u in text.encode_utf16() {
        le.extend(u.to_le_bytes());
    }
    std::fs::write(d.join("vpcs.json"), &le).unwrap();
    let vpc = load_paths(&[d.join("vpcs.json")]).unwrap();
    assert_eq!(vpc.id, "vpc-1");
    std::fs::write(d.join("vpcs.json"), &le[2..]).unwrap();
    let err = load_paths(&[d.join("vpcs.json")]).unwrap_err().to_string();
    assert_has(&err, "UTF-16 text without a byte-order mark");
    let _ = std::fs::remove_dir_all(&d);
}
