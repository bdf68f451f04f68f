//! The checks on small rulesets, and the output formats.

use super::output::uri;
use super::*;

/// A VPC with a public subnet (IPv4 and IPv6, NACL `acl-pub`) and an app subnet
/// (IPv4 only, NACL `acl-app`); `rest` adds NACLs, groups and ENIs.
fn vpc(rest: &str) -> Vpc {
    let text = format!(
        r#"
[vpc]
id = "vpc-1"
cidrs = ["10.0.0.0/16", "2600:1f18::/56"]

[[subnets]]
id = "subnet-pub"
cidr = "10.0.1.0/24"
ipv6_cidr = "2600:1f18:0:1::/64"
network_acl = "acl-pub"

[[subnets]]
id = "subnet-app"
cidr = "10.0.11.0/24"
network_acl = "acl-app"
{rest}
"#
    );
    crate::load::load_str("t.toml", &text).unwrap_or_else(|e| panic!("{e}"))
}

/// `acl-pub` allowing everything inside the VPC (IPv4 and IPv6), unless the test writes its own.
const OPEN_PUB: &str = r#"
[[network_acls]]
id = "acl-pub"
inbound = [
  { rule = 100, protocol = "-1", cidr = "10.0.0.0/16", action = "allow" },
  { rule = 101, protocol = "-1", cidr = "2600:1f18::/56", action = "allow" },
]
outbound = [
  { rule = 100, protocol = "-1", cidr = "10.0.0.0/16", action = "allow" },
  { rule = 101, protocol = "-1", cidr = "2600:1f18::/56", action = "allow" },
]
"#;

/// A load balancer (or `client_desc`) in the public subnet calling app tasks on
/// 8080; the app NACL answers to `reply_ports`.
fn lb_and_app(client_desc: &str, client_type: &str, reply_ports: &str) -> Vpc {
    vpc(&format!(
        r#"{OPEN_PUB}
[[network_acls]]
id = "acl-app"
inbound = [
  {{ rule = 100, protocol = "tcp", ports = "8080", cidr = "10.0.1.0/24", action = "allow" }},
]
outbound = [
  {{ rule = 120, protocol = "tcp", ports = "{reply_ports}", cidr = "10.0.1.0/24", action = "allow" }},
]

[[security_groups]]
id = "sg-lb"
egress = [ {{ protocol = "tcp", ports = "8080", security_group = "sg-app" }} ]

[[security_groups]]
id = "sg-app"
ingress = [ {{ protocol = "tcp", ports = "8080", security_group = "sg-lb" }} ]
egress = []

[[network_interfaces]]
id = "eni-lb"
subnet = "subnet-pub"
private_ips = ["10.0.1.10"]
security_groups = ["sg-lb"]
description = "{client_desc}"
interface_type = "{client_type}"

[[network_interfaces]]
id = "eni-app"
subnet = "subnet-app"
private_ips = ["10.0.11.10"]
security_groups = ["sg-app"]
"#
    ))
}

fn codes(f: &[Finding]) -> Vec<(&'static str, Severity, String)> {
    f.iter()
        .map(|f| (f.code, f.severity, f.resource.clone()))
        .collect()
}

fn run(v: &Vpc) -> Vec<Finding> {
    lint(v, &Quotas::default())
}

#[test]
fn port_sets() {
    assert_eq!(subtract(&[(0, 100)], &[(10, 20)]), vec![(0, 9), (21, 100)]);
    assert_eq!(subtract(&[(0, 65535)], &[(0, 65535)]), vec![]);
    assert_eq!(union(&[(0, 9)], &[(10, 20)]), vec![(0, 20)]);
    assert_eq!(
        intersect(&[(0, 9), (20, 30)], &[(5, 25)]),
        vec![(5, 9), (20, 25)]
    );
    assert_eq!(
        ports_text(&[(1024, 32767), (61001, 65535)]),
        "1024-32767 and 61001-65535"
    );
}

#[test]
fn replies_to_a_load_balancer_need_1024_and_up() {
    let f = run(&lb_and_app("ELB app/x/1", "interface", "32768-61000"));
    assert_eq!(
        codes(&f),
        vec![(
            "nacl-reply-dropped",
            Severity::Error,
            "acl-app outbound rule 120".to_string()
        )]
    );
    assert!(
        f[0].message
            .contains("Elastic Load Balancing uses 1024-65535"),
        "{}",
        f[0].message
    );
    assert!(
        f[0].message
            .contains("replies to 1024-32767 and 61001-65535 fall to rule 32767"),
        "{}",
        f[0].message
    );
    assert!(
        f[0].message.contains("tcp 8080 to eni-app."),
        "{}",
        f[0].message
    );
    assert!(
        f[0].fix.contains("rule 120") && f[0].fix.contains("1024-65535"),
        "{}",
        f[0].fix
    );
    assert_eq!(f[0].origin.file.as_ref(), "t.toml");
    assert!(f[0].origin.line > 0);
    // The fix applied: nothing left.
    assert_eq!(
        codes(&run(&lb_and_app("ELB app/x/1", "interface", "1024-65535"))),
        vec![]
    );
}

/// Interfaces alike are one client; an address a narrower NACL entry names is not.
#[test]
fn alike_interfaces_share_a_finding_and_narrower_entries_split_them() {
    let mut v = lb_and_app("ELB app/x/1", "interface", "32768-61000");
    let mut lb2 = v.network_interface("eni-lb").unwrap().clone();
    lb2.id = "eni-lb2".into();
    lb2.private_ipv4 = vec!["10.0.1.11".parse().unwrap()];
    let mut lb3 = lb2.clone();
    lb3.id = "eni-lb3".into();
    lb3.private_ipv4 = vec!["10.0.1.12".parse().unwrap()];
    v.network_interfaces.push(lb2);
    v.network_interfaces.push(lb3);
    v.validate().unwrap();
    let f = run(&v);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert!(
        f[0].message.contains(
            "the load balancer eni-lb (10.0.1.10), eni-lb2 (10.0.1.11), eni-lb3 (10.0.1.12)"
        ),
        "{}",
        f[0].message
    );
    // eni-lb3 gets its own rule, numbered first: only the other two lose replies.
    let acl = v
        .network_acls
        .iter_mut()
        .find(|a| a.id == "acl-app")
        .unwrap();
    let mut own = acl.outbound[0].clone();
    own.rule_number = 110;
    own.cidr = "10.0.1.12/32".parse().unwrap();
    own.ports = PortSpec::Range {
        from: 1024,
        to: 65535,
    };
    acl.outbound.insert(0, own);
    let f = run(&v);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert!(
        f[0].message
            .contains("the load balancer eni-lb (10.0.1.10), eni-lb2 (10.0.1.11) leave"),
        "{}",
        f[0].message
    );
}

#[test]
fn network_load_balancers_and_nat_gateways_are_known_by_type() {
    for t in ["network_load_balancer", "nat_gateway"] {
        let f = run(&lb_and_app("", t, "32768-65535"));
        assert_eq!(f.len(), 1, "{t}: {f:?}");
        assert_eq!(f[0].severity, Severity::Error);
        assert!(f[0].message.contains("1024-65535"), "{}", f[0].message);
    }
}

#[test]
fn an_instance_is_assumed_to_be_linux() {
    // 32768-60999 is enough for a Linux client: no finding.
    assert_eq!(
        codes(&run(&lb_and_app("", "interface", "32768-60999"))),
        vec![]
    );
    // Windows' range only: a Linux client loses 32768-49151.
    let f = run(&lb_and_app("", "interface", "49152-65535"));
    assert_eq!(
        codes(&f),
        vec![(
            "nacl-reply-dropped",
            Severity::Warning,
            "acl-app outbound rule 120".to_string()
        )]
    );
    assert!(
        f[0].message.contains("assumed to run Linux"),
        "{}",
        f[0].message
    );
    assert!(
        f[0].message.contains("replies to 32768-49151"),
        "{}",
        f[0].message
    );
}

#[test]
fn no_reply_check_when_the_request_itself_is_denied() {
    // The app NACL lets nothing in: no service, so no reply to check.
    let v = lb_and_app("ELB app/x/1", "interface", "32768-61000");
    let mut v2 = v.clone();
    let acl = v2
        .network_acls
        .iter_mut()
        .find(|a| a.id == "acl-app")
        .unwrap();
    acl.inbound.retain(|e| e.rule_number >= 32767);
    assert_eq!(codes(&run(&v2)), vec![]);
    // Nor when the client's group does not let the request out.
    let mut v3 = v.clone();
    v3.security_groups
        .iter_mut()
        .find(|g| g.id == "sg-lb")
        .unwrap()
        .egress
        .clear();
    assert_eq!(codes(&run(&v3)), vec![]);
}

/// A web server with a public address; `out` is its NACL's outbound list.
fn web(out: &str, inbound: &str) -> Vpc {
    vpc(&format!(
        r#"
[[network_acls]]
id = "acl-pub"
inbound = [ {inbound} ]
outbound = [ {out} ]

[[network_acls]]
id = "acl-app"
inbound = []
outbound = []

[[security_groups]]
id = "sg-web"
ingress = [ {{ protocol = "tcp", ports = "443", cidr = "0.0.0.0/0" }},
        {{ protocol = "tcp", ports = "443", cidr = "::/0" }} ]
egress = [ {{ protocol = "tcp", ports = "443", cidr = "0.0.0.0/0" }} ]

[[network_interfaces]]
id = "eni-web"
subnet = "subnet-pub"
private_ips = ["10.0.1.20"]
public_ip = "203.0.113.5"
security_groups = ["sg-web"]
"#
    ))
}

#[test]
fn internet_clients_may_be_windows() {
    let inbound = r#"{ rule = 100, protocol = "tcp", ports = "443", cidr = "0.0.0.0/0", action = "allow" },
                     { rule = 110, protocol = "tcp", ports = "1024-65535", cidr = "0.0.0.0/0", action = "allow" }"#;
    let f = run(&web(
        r#"{ rule = 100, protocol = "tcp", ports = "32768-60999", cidr = "0.0.0.0/0", action = "allow" },
           { rule = 110, protocol = "tcp", ports = "443", cidr = "0.0.0.0/0", action = "allow" }"#,
        inbound,
    ));
    let replies: Vec<&Finding> = f
        .iter()
        .filter(|f| f.code == "nacl-reply-dropped")
        .collect();
    assert_eq!(replies.len(), 1, "{f:#?}");
    assert_eq!(replies[0].resource, "acl-pub outbound rule 100");
    assert_eq!(replies[0].severity, Severity::Warning);
    assert!(
        replies[0].message.contains("Windows uses 49152-65535"),
        "{}",
        replies[0].message
    );
    assert!(
        replies[0].message.contains("replies to 61000-65535"),
        "{}",
        replies[0].message
    );
    assert!(replies[0].fix.contains("32768-65535"), "{}", replies[0].fix);
    // 1024-65535 out: the replies of both directions pass.
    let f = run(&web(
        r#"{ rule = 100, protocol = "tcp", ports = "1024-65535", cidr = "0.0.0.0/0", action = "allow" },
           { rule = 110, protocol = "tcp", ports = "443", cidr = "0.0.0.0/0", action = "allow" }"#,
        inbound,
    ));
    assert!(f.iter().all(|f| f.code != "nacl-reply-dropped"), "{f:#?}");
}

#[test]
fn replies_to_the_servers_own_requests_need_an_inbound_rule() {
    // HTTPS out is allowed, nothing comes back in.
    let f = run(&web(
        r#"{ rule = 100, protocol = "tcp", ports = "443", cidr = "0.0.0.0/0", action = "allow" }"#,
        r#"{ rule = 100, protocol = "tcp", ports = "443", cidr = "0.0.0.0/0", action = "allow" }"#,
    ));
    let r: Vec<&Finding> = f
        .iter()
        .filter(|f| f.code == "nacl-reply-dropped")
        .collect();
    // Inbound at the server's own requests (no allow rule at all), and outbound
    // to the internet clients of 443.
    let res: Vec<&str> = r.iter().map(|f| f.resource.as_str()).collect();
    assert!(res.contains(&"acl-pub inbound"), "{r:#?}");
    let inb = r.iter().find(|f| f.resource == "acl-pub inbound").unwrap();
    assert!(
        inb.message
            .contains("replies to eni-web (10.0.1.20), assumed to run Linux, enter through")
            && inb.message.contains("tcp 443 to the internet (0.0.0.0/0)"),
        "{}",
        inb.message
    );
    assert!(
        inb.fix.contains("add an inbound allow rule") && inb.fix.contains("32768-60999"),
        "{}",
        inb.fix
    );
}

fn nacl_only(inbound: &str) -> Vpc {
    vpc(&format!(
        r#"
[[network_acls]]
id = "acl-pub"
inbound = [ {inbound} ]
outbound = []
[[network_acls]]
id = "acl-app"
inbound = []
outbound = []
"#
    ))
}

fn only(f: &[Finding], code: &str) -> Vec<(Severity, String)> {
    f.iter()
        .filter(|f| f.code == code)
        .map(|f| (f.severity, f.resource.clone()))
        .collect()
}

#[test]
fn shadowed_entries() {
    let f = run(&nacl_only(
        r#"{ rule = 100, protocol = "tcp", ports = "0-65535", cidr = "10.0.0.0/8", action = "allow" },
           { rule = 110, protocol = "tcp", ports = "22", cidr = "10.1.0.0/16", action = "deny" },
           { rule = 120, protocol = "tcp", ports = "443", cidr = "10.2.0.0/16", action = "allow" },
           { rule = 130, protocol = "udp", ports = "53", cidr = "10.2.0.0/16", action = "deny" },
           { rule = 140, protocol = "tcp", ports = "22", cidr = "::/0", action = "deny" },
           { rule = 150, protocol = "-1", cidr = "10.3.0.0/16", action = "deny" }"#,
    ));
    assert_eq!(
        only(&f, "nacl-shadowed"),
        vec![
            (Severity::Warning, "acl-pub inbound rule 110".to_string()),
            (Severity::Note, "acl-pub inbound rule 120".to_string()),
        ]
    );
    let w = f
        .iter()
        .find(|f| f.resource == "acl-pub inbound rule 110")
        .unwrap();
    assert!(w.message.contains("rule 100"), "{}", w.message);
    assert!(w.fix.contains("below 100"), "{}", w.fix);
}

#[test]
fn shadowed_by_several_entries_together() {
    let f = run(&nacl_only(
        r#"{ rule = 100, protocol = "tcp", ports = "1-100", cidr = "0.0.0.0/0", action = "allow" },
           { rule = 110, protocol = "-1", cidr = "10.0.0.0/8", action = "deny" },
           { rule = 120, protocol = "tcp", ports = "101-200", cidr = "0.0.0.0/0", action = "allow" },
           { rule = 130, protocol = "tcp", ports = "50-150", cidr = "10.9.0.0/16", action = "allow" },
           { rule = 140, protocol = "icmp", icmp_type = 8, icmp_code = 0, cidr = "10.0.0.0/8", action = "allow" },
           { rule = 150, protocol = "tcp", ports = "50-250", cidr = "0.0.0.0/0", action = "allow" }"#,
    ));
    let s = only(&f, "nacl-shadowed");
    // 130: ports 50-100 by 100 (allow) and the rest by 110 (deny): mixed, a warning.
    // 140: the -1 deny of 110 takes every ICMP packet first.
    assert_eq!(
        s,
        vec![
            (Severity::Warning, "acl-pub inbound rule 130".to_string()),
            (Severity::Warning, "acl-pub inbound rule 140".to_string()),
        ]
    );
}

#[test]
fn an_allow_for_a_few_ports_that_an_earlier_deny_cuts() {
    let f = run(&nacl_only(
        r#"{ rule = 90, protocol = "tcp", ports = "20-25", cidr = "0.0.0.0/0", action = "deny" },
           { rule = 100, protocol = "tcp", ports = "20-30", cidr = "10.0.0.0/8", action = "allow" },
           { rule = 110, protocol = "tcp", ports = "1024-65535", cidr = "0.0.0.0/0", action = "allow" },
           { rule = 120, protocol = "tcp", ports = "22", cidr = "10.0.0.0/8", action = "allow" },
           { rule = 130, protocol = "tcp", ports = "21-23", cidr = "192.0.2.0/24", action = "deny" },
           { rule = 140, protocol = "tcp", ports = "22-26", cidr = "0.0.0.0/0", action = "allow" }"#,
    ));
    assert_eq!(
        only(&f, "nacl-partly-shadowed"),
        vec![
            (Severity::Note, "acl-pub inbound rule 100".to_string()),
            (Severity::Note, "acl-pub inbound rule 140".to_string()),
        ]
    );
    let n = f
        .iter()
        .find(|f| f.resource == "acl-pub inbound rule 100" && f.code == "nacl-partly-shadowed")
        .unwrap();
    assert!(
        n.message
            .contains("take ports 20-25 first: the rule allows only 26-30"),
        "{}",
        n.message
    );
    // 120 is wholly shadowed by 90 (a deny): a warning, not a note; 130 denies
    // what 90 denied already: redundant, a note.
    assert_eq!(
        only(&f, "nacl-shadowed"),
        vec![
            (Severity::Warning, "acl-pub inbound rule 120".to_string()),
            (Severity::Note, "acl-pub inbound rule 130".to_string()),
        ]
    );
}

#[test]
fn world_open_admin_ports() {
    let v = vpc(r#"
[[network_acls]]
id = "acl-pub"
inbound = [
  { rule = 100, protocol = "tcp", ports = "22", cidr = "0.0.0.0/0", action = "allow" },
  { rule = 110, protocol = "tcp", ports = "1024-65535", cidr = "0.0.0.0/0", action = "allow" },
  { rule = 120, protocol = "-1", cidr = "::/0", action = "allow" },
  { rule = 130, protocol = "tcp", ports = "3389", cidr = "198.51.100.0/24", action = "allow" },
  { rule = 140, protocol = "tcp", ports = "3306", cidr = "0.0.0.0/0", action = "deny" },
]
outbound = []
[[network_acls]]
id = "acl-app"
inbound = []
outbound = []
[[network_acls]]
id = "acl-nowhere"
inbound = [ { rule = 100, protocol = "-1", cidr = "0.0.0.0/0", action = "allow" } ]
outbound = []

[[security_groups]]
id = "sg-a"
ingress = [
  { protocol = "tcp", ports = "22", cidr = "0.0.0.0/0" },
  { protocol = "tcp", ports = "443", cidr = "0.0.0.0/0" },
  { protocol = "tcp", ports = "3000-4000", cidr = "::/0" },
  { protocol = "-1", cidr = "0.0.0.0/0" },
  { protocol = "tcp", ports = "5432", cidr = "10.0.0.0/16" },
  { protocol = "udp", ports = "11211", cidr = "0.0.0.0/0" },
]
[[network_interfaces]]
id = "eni-a"
subnet = "subnet-app"
private_ips = ["10.0.11.5"]
security_groups = ["sg-a"]
"#);
    let f = run(&v);
    assert_eq!(
        only(&f, "world-open-admin-port"),
        vec![
            (Severity::Warning, "acl-pub inbound rule 100".to_string()),
            (Severity::Note, "acl-pub inbound rule 120".to_string()),
            (Severity::Warning, "sg-a ingress rule 1".to_string()),
            (Severity::Warning, "sg-a ingress rule 3".to_string()),
            (Severity::Warning, "sg-a ingress rule 4".to_string()),
            (Severity::Warning, "sg-a ingress rule 6".to_string()),
        ]
    );
    let r3 = f
        .iter()
        .find(|f| f.resource == "sg-a ingress rule 3")
        .unwrap();
    assert!(
        r3.message.contains("3306 (MySQL), 3389 (RDP)"),
        "{}",
        r3.message
    );
}

#[test]
fn unused_groups_and_references_to_them() {
    let v = vpc(&format!(
        r#"{OPEN_PUB}
[[network_acls]]
id = "acl-app"
inbound = []
outbound = []
[[security_groups]]
id = "sg-used"
ingress = [ {{ protocol = "tcp", ports = "22", security_group = "sg-lonely" }},
        {{ protocol = "tcp", ports = "80", security_group = "sg-used" }} ]
[[security_groups]]
id = "sg-lonely"
name = "lonely"
ingress = [ {{ protocol = "tcp", ports = "22", security_group = "sg-lonely" }} ]
[[security_groups]]
id = "sg-dflt"
name = "default"
[[network_interfaces]]
id = "eni-a"
subnet = "subnet-app"
private_ips = ["10.0.11.5"]
security_groups = ["sg-used"]
"#
    ));
    let f = run(&v);
    assert_eq!(
        only(&f, "sg-unused"),
        vec![(Severity::Note, "sg-lonely".to_string())]
    );
    assert_eq!(
        only(&f, "sg-reference-unused"),
        vec![(Severity::Warning, "sg-used ingress rule 1".to_string())]
    );
    let u = f.iter().find(|f| f.code == "sg-unused").unwrap();
    assert!(
        u.message.contains("the rules of sg-used that name it"),
        "{}",
        u.message
    );
}

fn twin_vpc(sg_rules: &str, eni_v6: bool) -> Vpc {
    vpc(&format!(
        r#"{OPEN_PUB}
[[network_acls]]
id = "acl-app"
inbound = [ {{ rule = 100, protocol = "tcp", ports = "443", cidr = "0.0.0.0/0", action = "allow" }} ]
outbound = []
[[security_groups]]
id = "sg-w"
ingress = [ {sg_rules} ]
[[network_interfaces]]
id = "eni-w"
subnet = "subnet-pub"
private_ips = ["10.0.1.5"]
{}
security_groups = ["sg-w"]
"#,
        if eni_v6 {
            r#"ipv6 = ["2600:1f18:0:1::5"]"#
        } else {
            ""
        }
    ))
}

#[test]
fn ipv4_rules_without_their_ipv6_twin() {
    let f = run(&twin_vpc(
        r#"{ protocol = "tcp", ports = "443", cidr = "0.0.0.0/0" },
           { protocol = "tcp", ports = "80", cidr = "0.0.0.0/0" },
           { protocol = "tcp", ports = "1-1000", cidr = "::/0" },
           { protocol = "tcp", ports = "8443", cidr = "10.0.1.0/24" },
           { protocol = "tcp", ports = "8080", cidr = "10.0.11.0/24" },
           { protocol = "tcp", ports = "9000", cidr = "198.51.100.0/24" },
           { protocol = "icmp", icmp_type = 3, icmp_code = 4, cidr = "0.0.0.0/0" }"#,
        true,
    ));
    // 443 and 80 are inside ::/0 1-1000; 8443 names a subnet with IPv6; 8080 one
    // without; 9000 an outside range whose IPv6 we cannot know.
    assert_eq!(
        only(&f, "ipv6-twin-missing"),
        vec![
            (Severity::Note, "sg-w ingress rule 4".to_string()),
            (Severity::Note, "sg-w ingress rule 7".to_string()),
        ]
    );
    let icmp = f
        .iter()
        .find(|f| f.resource == "sg-w ingress rule 7")
        .unwrap();
    assert!(icmp.fix.contains("icmpv6 type 2 code 0"), "{}", icmp.fix);
    // acl-app's subnet has no IPv6: its IPv4-only rule is fine.
    assert!(
        f.iter().all(|f| !f.resource.starts_with("acl-app")),
        "{f:#?}"
    );
    // No IPv6 address on the group's ENIs: nothing to twin.
    let f = run(&twin_vpc(
        r#"{ protocol = "tcp", ports = "443", cidr = "0.0.0.0/0" }"#,
        false,
    ));
    assert_eq!(only(&f, "ipv6-twin-missing"), vec![]);
}

#[test]
fn nacl_ipv6_twins_follow_first_match() {
    let v = vpc(r#"
[[network_acls]]
id = "acl-pub"
inbound = [
  { rule = 100, protocol = "tcp", ports = "443", cidr = "0.0.0.0/0", action = "allow" },
  { rule = 110, protocol = "tcp", ports = "22", cidr = "0.0.0.0/0", action = "allow" },
  { rule = 120, protocol = "tcp", ports = "0-1023", cidr = "::/0", action = "allow" },
  { rule = 130, protocol = "tcp", ports = "8080", cidr = "0.0.0.0/0", action = "allow" },
]
outbound = []
[[network_acls]]
id = "acl-app"
inbound = []
outbound = []
"#);
    let f = run(&v);
    assert_eq!(
        only(&f, "ipv6-twin-missing"),
        vec![(Severity::Note, "acl-pub inbound rule 130".to_string())]
    );
    let n = f.iter().find(|f| f.code == "ipv6-twin-missing").unwrap();
    assert!(
        n.fix
            .contains("add inbound rule 131 allow tcp 8080 from ::/0"),
        "{}",
        n.fix
    );
}

#[test]
fn quotas() {
    let rules: Vec<String> = (0..61)
        .map(|i| {
            format!(
                r#"{{ protocol = "tcp", ports = "{}", cidr = "10.0.0.0/16" }}"#,
                1000 + i
            )
        })
        .collect();
    let entries: Vec<String> = (1..=21)
        .map(|i| format!(r#"{{ rule = {i}, protocol = "tcp", ports = "{}", cidr = "10.0.0.0/16", action = "allow" }}"#, 1000 + i))
        .collect();
    let groups: String = (1..=6)
        .map(|i| format!("[[security_groups]]\nid = \"sg-{i}\"\n"))
        .collect();
    let v = vpc(&format!(
        r#"{OPEN_PUB}
[[network_acls]]
id = "acl-app"
inbound = [ {} ]
outbound = []
[[security_groups]]
id = "sg-big"
ingress = [ {} ]
{groups}
[[network_interfaces]]
id = "eni-a"
subnet = "subnet-app"
private_ips = ["10.0.11.5"]
security_groups = ["sg-big", "sg-1", "sg-2", "sg-3", "sg-4", "sg-5"]
"#,
        entries.join(",\n"),
        rules.join(",\n")
    ));
    assert_eq!(
        only(&run(&v), "quota-exceeded"),
        vec![
            (Severity::Error, "acl-app inbound".to_string()),
            (Severity::Error, "sg-big".to_string()),
            (Severity::Error, "eni-a".to_string()),
        ]
    );
    let mut q = Quotas::default();
    q.set("rules-per-security-group=61").unwrap();
    q.set("security-groups-per-interface=6").unwrap();
    q.set("rules-per-network-acl=40").unwrap();
    assert_eq!(only(&lint(&v, &q), "quota-exceeded"), vec![]);
    assert!(q
        .set("rules-per-vpc=3")
        .unwrap_err()
        .contains("unknown quota `rules-per-vpc`"));
    assert!(q.set("rules-per-network-acl").is_err());
    assert!(q.set("rules-per-network-acl=0").is_err());
}

#[test]
fn fail_levels() {
    let f = run(&lb_and_app("", "interface", "49152-65535"));
    assert!(fails(&f, Severity::Note));
    assert!(fails(&f, Severity::Warning));
    assert!(!fails(&f, Severity::Error));
    assert!(!fails(&[], Severity::Note));
}

#[test]
fn json_and_sarif_shapes() {
    let f = run(&lb_and_app("ELB app/x/1", "interface", "32768-61000"));
    let j: serde_json::Value = serde_json::from_str(&json(&f)).unwrap();
    let a = j.as_array().unwrap();
    assert_eq!(a.len(), 1);
    for k in [
        "code", "severity", "message", "fix", "file", "line", "column", "resource", "rule",
    ] {
        assert!(a[0].get(k).is_some(), "{k}");
    }
    assert_eq!(a[0]["code"], "nacl-reply-dropped");
    assert_eq!(a[0]["severity"], "error");
    let s: serde_json::Value = serde_json::from_str(&sarif(&f)).unwrap();
    assert_eq!(s["version"], "2.1.0");
    let rules = s["runs"][0]["tool"]["driver"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), RULES.len());
    let r = &s["runs"][0]["results"][0];
    assert_eq!(r["ruleId"], "nacl-reply-dropped");
    assert_eq!(
        rules[r["ruleIndex"].as_u64().unwrap() as usize]["id"],
        "nacl-reply-dropped"
    );
    assert_eq!(r["level"], "error");
    let p = &r["locations"][0]["physicalLocation"];
    assert_eq!(p["artifactLocation"]["uri"], "t.toml");
    assert_eq!(p["region"]["startLine"], f[0].origin.line);
    assert_eq!(uri("my vpc/a%b.json"), "my%20vpc/a%25b.json");
}
