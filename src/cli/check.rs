//! `vpcgate check`: one hypothetical connection and its replies, check by check.

use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use super::{usage_error, write_stdout};

pub(crate) const CHECK_HELP: &str = "\
A or B (--from, --to) is an ENI id, an ENI's Name tag (from the TagSet of
describe-network-interfaces JSON), an address, or `internet` (192.0.2.1, or
2001:db8::1 with --ipv6: documentation addresses that only 0.0.0.0/0 and ::/0
rules name). From the internet, an ENI is reached at its public IPv4 address,
through the internet gateway.

The request (TCP SYN, a UDP datagram, an ICMP message, a packet of another
protocol) and its reply (SYN-ACK, the datagram back, the query's reply) go
through the engine that `replay` uses, once for every port of the client's
ephemeral range; ports whose packets meet the same checks and rules are
grouped. The range, from AWS's table: a load balancer, NAT gateway or Lambda
ENI uses 1024-65535; another ENI is assumed to run Linux (32768-60999); a
client outside the VPC may use any of 1024-65535 (Windows: 49152-65535).
--client-ports overrides.

Examples:
  # The load balancer to an app task: the reply is dropped for most ports
  vpcgate check --rules rulesets/securecart.toml \\
      --from eni-0a1b2c3d4e5f60102 --to eni-0a1b2c3d4e5f60202 --port 8080

  # A customer to the load balancer's public address, as JSON:
  vpcgate check --rules rulesets/securecart.toml --from internet \\
      --to eni-0a1b2c3d4e5f60101 --port 443 --json

  # A ping, and a UDP query:
  vpcgate check --rules r.toml --from internet --to web --protocol icmp --icmp 8/0
  vpcgate check --rules r.toml --from web --to 10.0.0.53 --protocol udp --port 53

Exit status: 0 the connection and its replies pass; 1 they do not (or the
server cannot be reached); 2 bad usage or a ruleset that does not load.";

#[derive(Args, Debug)]
pub(crate) struct CheckArgs {
    /// A ruleset TOML file, a JSON file printed by an `aws ec2 describe-*` command,
    /// or a directory of such files. Repeatable: all are merged into one VPC.
    #[arg(long, required = true, value_name = "PATH")]
    rules: Vec<PathBuf>,

    /// Keep only this VPC's objects when the exports list several VPCs.
    #[arg(long, value_name = "VPC_ID")]
    vpc: Option<String>,

    /// The client: an ENI id, a Name tag, an address, or `internet`.
    #[arg(long, value_name = "A")]
    from: String,

    /// The server: an ENI id, a Name tag, an address, or `internet`.
    #[arg(long, value_name = "B")]
    to: String,

    /// tcp, udp, icmp, icmpv6, or a protocol number.
    #[arg(long, value_name = "PROTOCOL", default_value = "tcp")]
    protocol: String,

    /// The server's port (tcp and udp).
    #[arg(long, value_name = "N")]
    port: Option<u16>,

    /// ICMP type and code, TYPE/CODE (default 8/0, echo request; 128/0 for icmpv6).
    #[arg(long, value_name = "T/C")]
    icmp: Option<String>,

    /// Use the ENIs' IPv6 addresses (and 2001:db8::1 for `internet`).
    #[arg(long)]
    ipv6: bool,

    /// The client's source ports to try, FROM-TO (default: its ephemeral range).
    #[arg(long = "client-ports", value_name = "FROM-TO")]
    client_ports: Option<String>,

    /// Print the answer as JSON.
    #[arg(long)]
    json: bool,
}

fn protocol_number(s: &str) -> Result<u8, String> {
    match s.to_ascii_lowercase().as_str() {
        "tcp" => Ok(6),
        "udp" => Ok(17),
        "icmp" => Ok(1),
        "icmpv6" => Ok(58),
        n => n.parse::<u8>().map_err(|_| {
            format!("--protocol {s}: give tcp, udp, icmp, icmpv6 or a protocol number 0-255")
        }),
    }
}

pub(crate) fn check(args: CheckArgs) -> ExitCode {
    use vpcgate::analysis::check as c;
    let protocol = match protocol_number(&args.protocol) {
        Ok(p) => p,
        Err(e) => return usage_error(e),
    };
    let icmp = match &args.icmp {
        None => None,
        Some(s) => {
            if protocol != 1 && protocol != 58 {
                return usage_error(format!("--icmp {s}: only with --protocol icmp or icmpv6"));
            }
            let parsed = s
                .split_once('/')
                .and_then(|(t, c)| Some((t.parse::<u8>().ok()?, c.parse::<u8>().ok()?)));
            match parsed {
                Some(p) => Some(p),
                None => {
                    return usage_error(format!(
                        "--icmp {s}: expected TYPE/CODE, e.g. 8/0 (echo request) or 3/4"
                    ))
                }
            }
        }
    };
    if args.port.is_some() && protocol != 6 && protocol != 17 {
        return usage_error(format!(
            "--port: only tcp and udp have ports (--protocol {})",
            args.protocol
        ));
    }
    let client_ports = match &args.client_ports {
        None => None,
        Some(s) => {
            let parsed = s
                .split_once('-')
                .and_then(|(a, b)| Some((a.parse::<u16>().ok()?, b.parse::<u16>().ok()?)))
                .or_else(|| s.parse::<u16>().ok().map(|p| (p, p)));
            match parsed {
                Some((a, b)) if a <= b && a > 0 => Some((a, b)),
                _ => {
                    return usage_error(format!(
                        "--client-ports {s}: expected FROM-TO, e.g. 49152-65535"
                    ))
                }
            }
        }
    };
    let vpc = match super::load_ruleset(
        &args.rules,
        args.vpc.as_deref(),
        "the ruleset",
        "; nothing was checked",
    ) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let ids: Vec<String> = vpc
        .network_interfaces
        .iter()
        .map(|e| e.id.clone())
        .collect();
    let policy = Arc::new(vpcgate::policy::Policy::compile(Arc::new(vpc), &ids));
    let names = vpcgate::craft::eni_names(&args.rules);
    let q = c::Query {
        from: args.from.clone(),
        to: args.to.clone(),
        protocol,
        port: args.port,
        icmp,
        ipv6: args.ipv6,
        client_ports,
    };
    let report = match c::check(&policy, &names, &q) {
        Ok(r) => r,
        Err(e) => return usage_error(e),
    };
    let out = if args.json {
        let mut s = serde_json::to_string_pretty(&report.json(&policy)).unwrap_or_default();
        s.push('\n');
        s
    } else {
        report.text(&policy)
    };
    let code = write_stdout(out.as_bytes());
    if code != ExitCode::SUCCESS {
        return code;
    }
    if report.pass {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
