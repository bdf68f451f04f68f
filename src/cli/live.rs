//! Live mode: `vpcgate tap` and `vpcgate lab` (the library's `live/` and `lab/`).

use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use vpcgate::flowlog::LogFormat;

use super::{load_rules, stop_flag, usage_error};

pub(crate) const TAP_HELP: &str = "\
vpcgate answers ARP for the subnet routers and the ENIs' addresses, judges every
IP packet with the same engine as `replay` (the wall clock is its time), forwards
what is accepted and translates public IPv4 addresses at the internet gateway.
Each ENI gets one TAP device (created as vge<N>, or the persistent TAP named by
--attach), the internet gateway one more (vgigw, or --attach igw=DEV). Nothing
passes when vpcgate is not running. Ctrl-C or SIGTERM writes the open flow-log
records and a summary, then exits.

Examples:
  # Create the TAPs and print which is which:
  vpcgate tap --rules rulesets/securecart.toml --flow-log flows.log

  # Serve persistent TAPs made beforehand (ip tuntap add mode tap name tap-db):
  vpcgate tap --rules r.toml --attach eni-0a1b2c3d4e5f60301=tap-db \\
      --attach igw=tap-igw --verdicts - --aggregation-interval 60

  # The whole VPC as network namespaces, ready to ping: see `vpcgate lab up --help`.

Exit status: 0 stopped by a signal; 2 bad usage or a ruleset that does not load;
1 a device could not be opened or read.";

#[derive(Args, Debug)]
pub(crate) struct TapArgs {
    /// A ruleset (TOML, `aws ec2 describe-*` JSON, or a directory of them); repeatable.
    #[arg(long, required = true, value_name = "PATH")]
    rules: Vec<PathBuf>,

    /// Serve the TAP device DEV for ENI (an ENI id, or `igw` for the internet gateway)
    /// instead of creating one. Repeatable.
    #[arg(long, value_name = "ENI=DEV")]
    attach: Vec<String>,

    /// Write flow-log records here as each window closes on the wall clock (whole lines).
    #[arg(long = "flow-log", value_name = "PATH")]
    flow_log: Option<PathBuf>,

    /// An AWS custom flow-log format (default: the version 2 default format).
    #[arg(long = "log-format", value_name = "FORMAT")]
    log_format: Option<String>,

    /// Flow-log aggregation interval in seconds: 60 or 600.
    #[arg(
        long = "aggregation-interval",
        value_name = "SECONDS",
        default_value_t = 600
    )]
    aggregation_interval: u32,

    /// Write one JSON object per evaluated packet; `-` is standard output.
    #[arg(long, value_name = "PATH")]
    verdicts: Option<PathBuf>,
}

pub(crate) const LAB_HELP: &str = "\
Examples:
  # Bring SecureCart up (foreground; Ctrl-C or SIGTERM takes it down again):
  sudo vpcgate lab up --rules rulesets/securecart.toml --flow-log flows.log

  # In another terminal: the app task reaches the database, the database cannot
  # open connections, the internet reaches the ALB's public address.
  sudo vpcgate lab exec app-1 -- bash -c 'echo > /dev/tcp/db-1/5432'
  sudo vpcgate lab exec db-1 -- ping -c1 -W1 app-1       # denied: no ICMP rule
  sudo vpcgate lab exec internet -- curl -m3 http://alb-1/
  sudo vpcgate lab status
  sudo vpcgate lab down            # also after a crash; removes only what up made

Namespaces are named after the ENI's security group (securecart-alb -> alb-1,
alb-2), see `vpcgate manual` and README.md \"Live mode and the lab\".";

#[derive(Subcommand, Debug)]
pub(crate) enum LabCommand {
    /// Build the namespaces and serve them in the foreground until Ctrl-C/SIGTERM.
    Up(LabUpArgs),
    /// Remove every namespace a lab made, and only those (idempotent).
    Down(LabNameArgs),
    /// Run a command in one of the lab's namespaces (`ip netns exec`).
    Exec(LabExecArgs),
    /// Say whether the lab is up and which namespaces it has.
    Status(LabNameArgs),
}

#[derive(Args, Debug)]
pub(crate) struct LabNameArgs {
    /// The lab's name (its state file is /run/vpcgate-lab/NAME.state).
    #[arg(long, default_value = "vpcgate", value_name = "NAME")]
    name: String,
}

#[derive(Args, Debug)]
pub(crate) struct LabUpArgs {
    /// A ruleset (TOML, `aws ec2 describe-*` JSON, or a directory of them); repeatable.
    #[arg(long, required = true, value_name = "PATH")]
    rules: Vec<PathBuf>,

    #[command(flatten)]
    lab: LabNameArgs,

    /// Put PREFIX before every namespace name (to run several labs at once).
    #[arg(long, default_value = "", value_name = "PREFIX")]
    prefix: String,

    /// Write flow-log records here as each window closes (whole lines).
    #[arg(long = "flow-log", value_name = "PATH")]
    flow_log: Option<PathBuf>,

    /// Flow-log aggregation interval in seconds: 60 or 600.
    #[arg(
        long = "aggregation-interval",
        value_name = "SECONDS",
        default_value_t = 600
    )]
    aggregation_interval: u32,

    /// Write one JSON object per evaluated packet; `-` is standard output.
    #[arg(long, value_name = "PATH")]
    verdicts: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub(crate) struct LabExecArgs {
    #[command(flatten)]
    lab: LabNameArgs,

    /// The namespace (as `lab up` printed it; the lab's prefix may be left out).
    #[arg(value_name = "NAMESPACE")]
    namespace: String,

    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<String>,
}

pub(crate) fn live_outputs(
    flow_log: Option<&PathBuf>,
    log_format: Option<&str>,
    interval: u32,
    verdicts: Option<&PathBuf>,
) -> Result<vpcgate::live::tap::Outputs, ExitCode> {
    if interval != 60 && interval != 600 {
        return Err(usage_error(format!(
            "--aggregation-interval {interval}: AWS allows 60 or 600 seconds"
        )));
    }
    let format = match log_format {
        Some(f) => LogFormat::parse(f).map_err(|e| usage_error(format!("--log-format: {e}")))?,
        None => LogFormat::default_format(),
    };
    let mut out = vpcgate::live::tap::Outputs::default();
    if let Some(p) = flow_log {
        out.flow_log = Some(
            vpcgate::output::FlowLogWriter::create(p, format).map_err(|e| {
                eprintln!("vpcgate: {}: {e}", p.display());
                ExitCode::from(1)
            })?,
        );
    }
    if let Some(p) = verdicts {
        out.verdicts = Some(if p.as_os_str() == "-" {
            Box::new(std::io::stdout())
        } else {
            Box::new(std::fs::File::create(p).map_err(|e| {
                eprintln!("vpcgate: {}: {e}", p.display());
                ExitCode::from(1)
            })?)
        });
    }
    Ok(out)
}

#[cfg(target_os = "linux")]
pub(crate) fn tap(args: TapArgs) -> ExitCode {
    use vpcgate::live::router::{mac_text, Port, Router};
    use vpcgate::live::tap::Device;
    let vpc = match load_rules(&args.rules) {
        Ok(v) => Arc::new(v),
        Err(c) => return c,
    };
    let mut attach = std::collections::HashMap::new();
    for a in &args.attach {
        let Some((eni, dev)) = a.split_once('=') else {
            return usage_error(format!("--attach {a}: expected ENI=DEV"));
        };
        if eni != "igw" && !vpc.network_interfaces.iter().any(|e| e.id == eni) {
            return usage_error(format!("--attach {a}: the ruleset has no ENI {eni}"));
        }
        attach.insert(eni.to_string(), dev.to_string());
    }
    let mut out = match live_outputs(
        args.flow_log.as_ref(),
        args.log_format.as_deref(),
        args.aggregation_interval,
        args.verdicts.as_ref(),
    ) {
        Ok(o) => o,
        Err(c) => return c,
    };
    let mut router = Router::new(vpc.clone(), args.aggregation_interval);
    let mut devices = Vec::new();
    let mut wanted: Vec<(Port, String, String, Option<[u8; 6]>)> = vpc
        .network_interfaces
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let dev = attach.get(&e.id).cloned();
            let mac = vpcgate::live::router::eni_mac(&e.id);
            (
                Port::Eni(i as u32),
                e.id.clone(),
                dev.clone().unwrap_or(format!("vge{i}")),
                dev.is_none().then_some(mac),
            )
        })
        .collect();
    let igw = attach.get("igw").cloned();
    wanted.push((
        Port::Igw,
        "igw".into(),
        igw.clone().unwrap_or("vgigw".into()),
        igw.is_none().then_some([0; 6]),
    ));
    for (port, what, name, created) in wanted {
        match Device::open(port, &name) {
            Ok(d) => {
                if let Some(mac) = created {
                    // The host side of an ENI's TAP carries the ENI's MAC.
                    let mut cmd = std::process::Command::new("ip");
                    cmd.args(["link", "set", "dev", &d.name]);
                    if mac != [0; 6] {
                        cmd.args(["address", &mac_text(mac)]);
                    }
                    let _ = cmd.arg("up").status();
                }
                eprintln!("vpcgate tap: {what} on {}", d.name);
                devices.push(d);
            }
            Err(e) => {
                eprintln!("vpcgate tap: cannot open TAP {name} for {what}: {e}");
                return ExitCode::from(1);
            }
        }
    }
    if args.verdicts.is_some() {
        router.keep_verdicts();
    }
    let stop = stop_flag();
    let r = vpcgate::live::tap::serve(&mut router, &devices, &mut out, &stop);
    eprint!("{}", vpcgate::live::tap::summary(&router));
    if let Some(w) = out.flow_log.take() {
        let _ = w.finish();
    }
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vpcgate tap: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn tap(_: TapArgs) -> ExitCode {
    eprintln!("vpcgate tap: TAP devices need Linux");
    ExitCode::from(2)
}

#[cfg(target_os = "linux")]
pub(crate) fn lab(cmd: LabCommand) -> ExitCode {
    use vpcgate::lab;
    match cmd {
        LabCommand::Up(args) => {
            let vpc = match load_rules(&args.rules) {
                Ok(v) => Arc::new(v),
                Err(c) => return c,
            };
            let mut out = match live_outputs(
                args.flow_log.as_ref(),
                None,
                args.aggregation_interval,
                args.verdicts.as_ref(),
            ) {
                Ok(o) => o,
                Err(c) => return c,
            };
            // Signals first: a Ctrl-C while building still tears down.
            let stop = stop_flag();
            let opts = lab::UpOptions {
                name: args.lab.name.clone(),
                prefix: args.prefix.clone(),
            };
            let mut l = match lab::up(vpc, &opts, args.aggregation_interval) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("vpcgate lab up: {e}");
                    return ExitCode::from(1);
                }
            };
            if args.verdicts.is_some() {
                l.router.keep_verdicts();
            }
            for n in &l.nodes {
                let addrs: Vec<String> = n.addrs.iter().map(|a| a.to_string()).collect();
                let public: Vec<String> = n.public.iter().map(|a| a.to_string()).collect();
                eprintln!(
                    "  {:<14} {:<22} {} {}{}",
                    n.ns,
                    n.eni_id.as_deref().unwrap_or("internet gateway"),
                    vpcgate::live::router::mac_text(n.mac),
                    addrs.join(","),
                    if public.is_empty() {
                        String::new()
                    } else {
                        format!(" public {}", public.join(","))
                    }
                );
            }
            println!("lab {} is up: {} namespaces", opts.name, l.nodes.len());
            let _ = std::io::Write::flush(&mut std::io::stdout());
            let r = lab::run(&mut l, &opts.name, &mut out, &stop);
            eprint!("{}", vpcgate::live::tap::summary(&l.router));
            if let Some(w) = out.flow_log.take() {
                let _ = w.finish();
            }
            match r {
                Ok(()) => {
                    eprintln!("lab {} is down", opts.name);
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("vpcgate lab up: {e}");
                    ExitCode::from(1)
                }
            }
        }
        LabCommand::Down(a) => match lab::down(&a.name) {
            Ok(removed) => {
                eprintln!(
                    "lab {}: removed {} namespace(s){}",
                    a.name,
                    removed.len(),
                    if removed.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", removed.join(" "))
                    }
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("vpcgate lab down: {e}");
                ExitCode::from(1)
            }
        },
        LabCommand::Status(a) => match lab::State::read(&a.name) {
            Ok(None) => {
                println!("lab {}: not up", a.name);
                ExitCode::from(1)
            }
            Ok(Some(s)) => {
                let alive = s
                    .pid
                    .is_some_and(|p| std::path::Path::new(&format!("/proc/{p}")).exists());
                println!(
                    "lab {}: {} (process {})",
                    a.name,
                    if alive {
                        "up"
                    } else {
                        "not running (run `vpcgate lab down`)"
                    },
                    s.pid.map(|p| p.to_string()).unwrap_or("-".into())
                );
                for ns in &s.netns {
                    println!(
                        "  {ns:<14} {}",
                        if lab::netns_exists(ns) {
                            "present"
                        } else {
                            "absent"
                        }
                    );
                }
                if alive {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                }
            }
            Err(e) => {
                eprintln!("vpcgate lab status: {e}");
                ExitCode::from(1)
            }
        },
        LabCommand::Exec(a) => {
            let ns = match lab::State::read(&a.lab.name) {
                Ok(Some(s)) => s
                    .netns
                    .iter()
                    .find(|n| **n == a.namespace)
                    .or_else(|| {
                        let full = format!("{}{}", s.prefix, a.namespace);
                        s.netns.iter().find(|n| **n == full)
                    })
                    .cloned(),
                _ => None,
            };
            let Some(ns) = ns else {
                return usage_error(format!(
                    "lab {} has no namespace {:?} (`vpcgate lab status --name {}`)",
                    a.lab.name, a.namespace, a.lab.name
                ));
            };
            match std::process::Command::new("ip")
                .args(["netns", "exec", &ns])
                .args(&a.command)
                .status()
            {
                Ok(s) => ExitCode::from(s.code().unwrap_or(1).clamp(0, 255) as u8),
                Err(e) => {
                    eprintln!("vpcgate lab exec: running `ip netns exec`: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn lab(_: LabCommand) -> ExitCode {
    eprintln!("vpcgate lab: network namespaces need Linux");
    ExitCode::from(2)
}
