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

// ---- real accounts' shapes ---------------------------------------------------------------

fn shapes() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/aws-shapes")
}

/// 1-based `line:column` of the `n`-th (0-based) occurrence of `needle` in a file.
fn pos_in(file: &Path, needle: &str, n: usize) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    let (i, _) = text
        .match_indices(needle)
        .nth(n)
        .unwrap_or_else(|| panic!("{needle:?} #{n} not in {}", file.display()));
    let line = text[..i].matches('\n').count() + 1;
    let col = text[..i].rsplit('\n').next().unwrap().chars().count() + 1;
    format!("{line}:{col}")
}

/// `tests/data/aws-shapes/` holds what the AWS CLI and boto3 print, written from the
/// documented output shapes (EC2 API Reference: NetworkInterface, InstanceNetworkInterface,
/// NetworkInterfacePrivateIpAddress, Ipv4PrefixSpecification, Ipv6PrefixSpecification,
/// AuthorizeSecurityGroupIngress's `Return` + `SecurityGroupRules`; boto3 adds
/// `ResponseMetadata` to every response).
#[test]
fn aws_shapes_load_as_printed() {
    let vpc = load(&shapes());
    assert_eq!(vpc.id, "vpc-0a1b2c3d4e5f60001");

    // A NAT gateway's ENI: `"Groups": []`, `"InterfaceType": "nat_gateway"`.
    let nat = vpc.network_interface("eni-0a1b2c3d4e5f60041").unwrap();
    assert_eq!(nat.interface_type, "nat_gateway");
    assert!(nat.security_groups.is_empty() && nat.has_no_security_group());
    assert_eq!(nat.public_ipv4, Some("198.51.100.71".parse().unwrap()));

    // Each private address has its own `Association.PublicIp`.
    let web = vpc.network_interface("eni-0a1b2c3d4e5f60051").unwrap();
    assert_eq!(web.interface_type, "interface");
    assert_eq!(web.public_ipv4, Some("203.0.113.10".parse().unwrap()));
    assert_eq!(
        web.secondary_public_ipv4,
        [(
            "203.0.113.11".parse().unwrap(),
            "10.0.0.11".parse().unwrap()
        )]
    );
    assert_eq!(web.instance_id.as_deref(), Some("i-0a1b2c3d4e5f60051"));

    // Delegated prefixes. describe-instances lists the same ENI (without its IPv6
    // address and prefixes): describe-network-interfaces wins, no duplicate-id error.
    let app = vpc.network_interface("eni-0a1b2c3d4e5f60061").unwrap();
    assert_eq!(app.ipv4_prefixes, ["10.0.1.160/28".parse().unwrap()]);
    assert_eq!(
        app.ipv6_prefixes,
        ["2600:1f18:4a3:6d01:8f3a::/80".parse().unwrap()]
    );
    assert_eq!(app.ipv6.len(), 1);
    // An ENI only describe-instances lists: its instance is the one it is printed under.
    let batch = vpc.network_interface("eni-0a1b2c3d4e5f60071").unwrap();
    assert_eq!(batch.instance_id.as_deref(), Some("i-0a1b2c3d4e5f60071"));
    assert_eq!(batch.subnet_id, "subnet-0a1b2c3d4e5f60012");
    assert_eq!(batch.security_groups, ["sg-0a1b2c3d4e5f60022"]);
    assert_eq!(vpc.network_interfaces.len(), 4);

    // authorize-security-group-ingress's rule (`Return` next to it) joins its group.
    let app_sg = vpc.security_group("sg-0a1b2c3d4e5f60022").unwrap();
    assert!(app_sg.ingress.iter().any(|r| r.ports
        == PortSpec::Range {
            from: 9090,
            to: 9090
        }));

    // The legacy describe-prefix-lists gives the CIDRs of the managed list of that id.
    let s3 = vpc
        .prefix_lists
        .iter()
        .find(|p| p.id == "pl-63a5400a")
        .unwrap();
    assert_eq!(s3.name, "com.amazonaws.us-east-1.s3");
    assert_eq!(s3.entries.len(), 3);
    let office = vpc
        .prefix_lists
        .iter()
        .find(|p| p.id == "pl-0f1e2d3c4b5a60001")
        .unwrap();
    assert_eq!((office.name.as_str(), office.entries.len()), ("office", 2));
    assert_eq!(vpc.prefix_lists.len(), 2);

    // The association to a subnet that was not exported is dropped, with a warning at
    // the JSON's own field.
    let acl = vpc.network_acl("acl-0a1b2c3d4e5f60010").unwrap();
    assert_eq!(acl.associations.len(), 2);

    let warnings: Vec<String> = vpc.warnings.iter().map(|w| w.to_string()).collect();
    let dir = shapes();
    let acls = dir.join("describe-network-acls.json");
    let want = [
        format!(
            "{}:{}: {}",
            acls.display(),
            pos_in(&acls, "\"subnet-0a1b2c3d4e5f60099\"", 0),
            "NetworkAcls[0] (acl-0a1b2c3d4e5f60010).Associations[2].SubnetId: subnet `subnet-0a1b2c3d4e5f60099` was not exported"
        ),
        format!(
            "{}:2:5: RouteTables: `RouteTables` is the output of `aws ec2 describe-route-tables`, which vpcgate does not read",
            dir.join("describe-route-tables.json").display()
        ),
        format!(
            "{}:2:5: InternetGateways: `InternetGateways` is the output of `aws ec2 describe-internet-gateways`",
            dir.join("describe-internet-gateways.json").display()
        ),
        format!(
            "{}:2:5: Subnet: `Subnet` is the output of `aws ec2 create-subnet`",
            dir.join("create-subnet.json").display()
        ),
    ];
    for w in &want {
        assert!(
            warnings.iter().any(|g| g.starts_with(w.as_str())),
            "expected a warning starting {w:?} in:\n{}",
            warnings.join("\n")
        );
    }
    assert_eq!(warnings.len(), want.len(), "{}", warnings.join("\n"));
}

#[test]
fn shipped_rulesets_load_without_warnings() {
    for p in [
        rulesets().join("securecart.toml"),
        rulesets().join("securecart-aws"),
    ] {
        let vpc = load(&p);
        assert!(
            vpc.warnings.is_empty(),
            "{}:\n{}",
            p.display(),
            vpc.warnings
                .iter()
                .map(|w| w.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// `vpcgate replay` prints each load warning, for `--rules` and for each `--rules-at`,
/// and `--vpc` picks the VPC.
#[test]
fn replay_prints_load_warnings_and_takes_vpc() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let run = |extra: &[&str]| {
        let out = assert_cmd::Command::cargo_bin("vpcgate")
            .unwrap()
            .current_dir(root)
            .args([
                "replay",
                "--rules",
                "tests/data/aws-shapes",
                "pcaps/securecart.pcap",
            ])
            .args(["--quiet"])
            .args(extra)
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8(out.stderr).unwrap())
    };
    let (code, err) = run(&[]);
    assert_eq!(code, Some(0), "{err}");
    let warnings = err.lines().filter(|l| l.starts_with("warning: ")).count();
    assert_eq!(warnings, 4, "{err}");
    assert!(
        err.contains(
            "warning: tests/data/aws-shapes/describe-route-tables.json:2:5: RouteTables: "
        ),
        "{err}"
    );
    let (code, err) = run(&["--rules-at", "1700000000=tests/data/aws-shapes"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        err.lines().filter(|l| l.starts_with("warning: ")).count(),
        8,
        "{err}"
    );
    let (code, err) = run(&["--vpc", "vpc-0a1b2c3d4e5f60001"]);
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = run(&["--vpc", "vpc-0nope"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(
            "--vpc vpc-0nope: no object of that VPC was loaded; VPCs seen: vpc-0a1b2c3d4e5f60001"
        ),
        "{err}"
    );
}

#[test]
fn every_aws_shape_file_loads_on_its_own_terms() {
    // Alone, a file may only miss what other files give (the VPC's id, the subnets and
    // groups it refers to); its own format always reads.
    let mut files: Vec<PathBuf> = std::fs::read_dir(shapes())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 13);
    for f in files {
        if let Err(e) = load_paths(std::slice::from_ref(&f)) {
            for err in &e.0 {
                assert!(
                    err.message.contains("unknown") || err.message.contains("no id"),
                    "{}: {err}",
                    f.display()
                );
            }
        }
    }
}
