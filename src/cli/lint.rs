//! `vpcgate lint`: a ruleset's mistakes, as text, JSON or SARIF.

use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

use super::usage_error;

pub(crate) const LINT_HELP: &str = "\
Each finding names its code, severity, where the rule is written (file:line:column),
the rule, what is wrong and a suggested fix. Codes: nacl-reply-dropped,
nacl-shadowed, nacl-partly-shadowed, world-open-admin-port, sg-unused,
sg-reference-unused, ipv6-twin-missing, quota-exceeded (README: \"vpcgate lint\").

Ephemeral ports a client uses (AWS's table): Elastic Load Balancing, NAT gateways
and Lambda 1024-65535 (an ENI whose description starts with `ELB `, or of type
network_load_balancer, nat_gateway, lambda); other instances are assumed to run
Linux (32768-60999); clients on the internet may be Linux or Windows (49152-65535).

Quotas (AWS defaults; --quota NAME=N sets your account's):
  rules-per-security-group=60       per direction and address family
  security-groups-per-interface=5
  rules-per-network-acl=20          per direction and address family, * rules aside

Examples:
  # The bundled SecureCart VPC (its app NACL drops the load balancer's replies):
  vpcgate lint --rules rulesets/securecart.toml

  # Your VPC's exports, for a code-scanning tool, failing only on errors:
  vpcgate lint --rules ./my-vpc/ --sarif --fail-on error > lint.sarif

  # JSON, with a raised quota:
  vpcgate lint --rules r.toml --json --quota rules-per-network-acl=40

Exit status: 0 no finding at or above --fail-on; 1 at least one; 2 bad usage or a
ruleset that does not load.";

#[derive(Args, Debug)]
pub(crate) struct LintArgs {
    /// A ruleset TOML file, a JSON file printed by an `aws ec2 describe-*` command,
    /// or a directory of such files. Repeatable: all are merged into one VPC.
    #[arg(long, required = true, value_name = "PATH")]
    rules: Vec<PathBuf>,

    /// Keep only this VPC's objects when the exports list several VPCs.
    #[arg(long, value_name = "VPC_ID")]
    vpc: Option<String>,

    /// Print the findings as a JSON array.
    #[arg(long, conflicts_with = "sarif")]
    json: bool,

    /// Print the findings as SARIF 2.1.0 (for code-scanning tools).
    #[arg(long)]
    sarif: bool,

    /// Exit 1 when a finding at or above this level exists.
    #[arg(long = "fail-on", value_name = "LEVEL", default_value = "warning",
          value_parser = ["error", "warning", "note"])]
    fail_on: String,

    /// Set a quota other than AWS's default: NAME=N, repeatable
    /// (rules-per-security-group, security-groups-per-interface, rules-per-network-acl).
    #[arg(long = "quota", value_name = "NAME=N")]
    quota: Vec<String>,
}

pub(crate) fn lint(args: LintArgs) -> ExitCode {
    use vpcgate::analysis::lint as l;
    let mut quotas = l::Quotas::default();
    for q in &args.quota {
        if let Err(e) = quotas.set(q) {
            return usage_error(e);
        }
    }
    let level = l::Severity::parse(&args.fail_on).unwrap_or(l::Severity::Warning);
    let vpc = match super::load_ruleset(
        &args.rules,
        args.vpc.as_deref(),
        "the ruleset",
        "; nothing was checked",
    ) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let findings = l::lint(&vpc, &quotas);
    if args.sarif {
        println!("{}", l::sarif(&findings));
    } else if args.json {
        println!("{}", l::json(&findings));
    } else {
        print!("{}", l::text(&findings));
    }
    if l::fails(&findings, level) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
