//! The example rulesets: each loads, and the SecureCart VPC reads the same from its TOML
//! and from the `aws ec2 describe-*` JSON of the same VPC.

use std::path::{Path, PathBuf};
use vpcgate::load::load_paths;
use vpcgate::model::{PortSpec, Protocol, SgPeer, Vpc};

fn rulesets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("rulesets")
}

fn load(p: &Path) -> Vpc {
    load_paths(&[p.to_path_buf()]).unwrap_or_else(|e| panic!("{} does not load:\n{e}", p.display()))
}

/// Origins cleared, and security-group rules in one order: an SG's rules are a set, and
/// `describe-security-groups` groups them by (protocol, ports) in its own order.
fn canonical(vpc: &Vpc) -> Vpc {
    let mut v = vpc.without_origins();
    for g in &mut v.security_groups {
        for rules in [&mut g.ingress, &mut g.egress] {
            rules.sort_by_key(|r| format!("{:?}", (r.protocol, r.ports, &r.peer, &r.description)));
        }
    }
    v
}

#[test]
fn securecart_toml_and_aws_json_are_the_same_vpc() {
    let toml = canonical(&load(&rulesets().join("securecart.toml")));
    let aws = canonical(&load(&rulesets().join("securecart-aws")));
    // Field by field first, for a readable failure.
    assert_eq!(toml.id, aws.id);
    assert_eq!(toml.account_id, aws.account_id);
    assert_eq!(toml.region, aws.region);
    assert_eq!(toml.cidrs, aws.cidrs);
    assert_eq!(toml.prefix_lists, aws.prefix_lists);
    assert_eq!(toml.subnets, aws.subnets);
    assert_eq!(toml.network_acls, aws.network_acls);
    assert_eq!(toml.security_groups, aws.security_groups);
    assert_eq!(toml.network_interfaces, aws.network_interfaces);
    assert_eq!(toml, aws);
}

#[test]
fn securecart_has_what_the_course_describes() {
    let vpc = load(&rulesets().join("securecart.toml"));
    assert_eq!(vpc.region, "us-east-1");
    assert_eq!(vpc.account_id, "123456789012");
    assert_eq!(vpc.subnets.len(), 6);
    assert_eq!(vpc.network_interfaces.len(), 8);
    // Every subnet uses its tier's NACL, none the default one.
    for s in &vpc.subnets {
        let acl = vpc
            .network_acl(s.network_acl_id.as_deref().unwrap())
            .unwrap();
        assert!(!acl.is_default, "{} uses the default NACL", s.id);
    }
    // The DB group only admits PostgreSQL from the app group, and has no egress rule.
    let db = vpc.security_group("sg-0a1b2c3d4e5f60030").unwrap();
    assert_eq!(db.ingress.len(), 1);
    assert_eq!(
        db.ingress[0].peer,
        SgPeer::SecurityGroup("sg-0a1b2c3d4e5f60020".into())
    );
    assert_eq!(
        db.ingress[0].ports,
        PortSpec::Range {
            from: 5432,
            to: 5432
        }
    );
    assert!(db.egress.is_empty());
    // The teaching point: the app NACL's replies to the public subnets stop at 32768.
    let app = vpc.network_acl("acl-0a1b2c3d4e5f60020").unwrap();
    let reply = app.outbound.iter().find(|e| e.rule_number == 120).unwrap();
    assert_eq!(reply.protocol, Protocol::Number(6));
    assert_eq!(
        reply.ports,
        PortSpec::Range {
            from: 32768,
            to: 61000
        }
    );
    assert_eq!(reply.cidr.to_string(), "10.0.1.0/24");
}

#[test]
fn every_ruleset_loads() {
    let mut loaded = 0;
    let mut entries: Vec<PathBuf> = std::fs::read_dir(rulesets())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        let is_ruleset = p.is_dir()
            || matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("toml" | "json")
            );
        if is_ruleset {
            let vpc = load(&p);
            assert!(!vpc.id.is_empty(), "{}", p.display());
            loaded += 1;
        }
    }
    assert!(
        loaded >= 2,
        "expected at least securecart.toml and securecart-aws/"
    );
}

#[test]
fn every_file_of_the_aws_directory_loads_on_its_own_terms() {
    // Each describe-* file alone reads without a format error; only cross-file references
    // (a subnet's VPC, an ENI's groups) may be missing, and those are validation errors.
    let dir = rulesets().join("securecart-aws");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files {
        if let Err(e) = load_paths(std::slice::from_ref(&f)) {
            for err in &e.0 {
                assert!(
                    err.message.contains("unknown")
                        || err.message.contains("no id")
                        || err.message.contains("outside"),
                    "{}: {err}",
                    f.display()
                );
            }
        }
    }
}
