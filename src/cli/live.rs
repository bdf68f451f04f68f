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
records and a summary, then exits. SIGHUP loads the --rules paths again: tracked
connections keep passing, untracked flows follow the new rules (as replay's
--rules-at); a ruleset that does not load, or describes another network, is refused
and the old one stays.

Offloads: TAPs are opened with IFF_VNET_HDR and checksum, TSO (and USO where the
kernel has it) offloads, so the hosts hand over GSO super-frames of up to 64 KiB:
each is judged once and counted in flow logs and --verdicts as the wire packets it
stands for (ceil(payload / gso_size) packets, their IP bytes); --capture writes
those wire packets. Which offloads were enabled is printed at the start;
--no-offloads opens plain TAPs (the kernel cuts super-frames first; slower).

Workers: --workers N (default: the number of CPUs) opens every TAP with N queues;
worker W reads queue W of every TAP and owns the flows whose shard (replay's flow
hash) is W modulo N; frames of other workers' flows are handed to them in batches.
The same verdicts and records as one worker; --workers 1 serves from one thread.

Examples:
  # Create the TAPs and print which is which:
  vpcgate tap --rules rulesets/securecart.toml --flow-log flows.log

  # Serve persistent TAPs made beforehand (ip tuntap add mode tap name tap-db):
  vpcgate tap --rules r.toml --attach eni-0a1b2c3d4e5f60301=tap-db \\
      --attach igw=tap-igw --verdicts - --aggregation-interval 60

  # Record every frame, then check that replay judges them the same way:
  vpcgate tap --rules r.toml --capture all.pcap --verdicts live.jsonl
  vpcgate replay --rules r.toml all.pcap --verdicts replayed.jsonl

  # New rules while running (edit r.toml first):
  kill -HUP $(pidof vpcgate)

  # One worker, one queue per TAP (a persistent TAP made without multi_queue
  # has one queue anyway; worker 0 reads it and hands frames on):
  vpcgate tap --rules r.toml --workers 1

  # Plain TAPs, no virtio-net header (for a program that writes plain frames):
  vpcgate tap --rules r.toml --attach eni-0a1b2c3d4e5f60301=tap-db --no-offloads

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

    #[command(flatten)]
    out: LiveOutputArgs,
}

/// The outputs of `tap` and `lab up`.
#[derive(Args, Debug)]
pub(crate) struct LiveOutputArgs {
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

    /// Do not write NODATA records for interfaces without traffic in a window.
    #[arg(long = "no-nodata")]
    no_nodata: bool,

    /// Write one JSON object per evaluated packet; `-` is standard output.
    #[arg(long, value_name = "PATH")]
    verdicts: Option<PathBuf>,

    /// Write every frame read, in the order judged, to this pcap file (nanosecond
    /// timestamps: the wall-clock time it was judged at). `vpcgate replay` of it gives
    /// the same verdicts and flow-log records.
    #[arg(long, value_name = "PATH")]
    capture: Option<PathBuf>,

    /// Open the TAPs without IFF_VNET_HDR and offloads: the kernel then cuts every
    /// GSO super-frame into wire packets before vpcgate reads them (slower for TCP).
    #[arg(long = "no-offloads")]
    no_offloads: bool,

    /// Worker threads: each TAP gets this many queues, worker W reads queue W of every
    /// TAP and owns a share of the flow shards (default: the number of CPUs).
    #[arg(long, value_name = "N", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1024))]
    workers: Option<usize>,
}

impl LiveOutputArgs {
    /// `--workers`, or the number of CPUs.
    fn workers(&self) -> usize {
        self.workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1)
    }
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

  # New rules: tracked connections survive, untracked flows are cut; a ruleset that
  # does not load is refused and the old one stays (exit status 2).
  sudo vpcgate lab reload scratch/fixed.toml     # README tutorial 3 makes it
  sudo vpcgate lab down            # also after a crash; removes only what up made

  # Every frame to a pcap, the flow log in 60-s windows:
  sudo vpcgate lab up --rules rulesets/securecart.toml --capture all.pcap \\
      --flow-log flows.log --aggregation-interval 60

Namespaces are named after the ENI's security group (securecart-alb -> alb-1,
alb-2), see `vpcgate manual` and README.md \"Live mode and the lab\".";

const LAB_UP_HELP: &str = "\
Examples:
  sudo vpcgate lab up --rules rulesets/securecart.toml --flow-log flows.log
  # Two labs at once, every frame recorded, 60-s flow-log windows:
  sudo vpcgate lab up --rules r.toml --name second --prefix b- \\
      --capture all.pcap --flow-log flows.log --aggregation-interval 60

  # Without offloads (every frame one wire packet; TCP several times slower),
  # and with one worker instead of one per CPU:
  sudo vpcgate lab up --rules r.toml --no-offloads
  sudo vpcgate lab up --rules r.toml --workers 1

On a terminal a status line on standard error gives frames/s per namespace and
rejects. SIGHUP reloads the --rules paths (see `vpcgate lab reload --help`).
The TAPs carry GSO super-frames (IFF_VNET_HDR with offloads, listed at the start):
each is judged once and counted as the wire packets it stands for; the summary
says how many super-frames were read.
Exit status: 0 stopped by Ctrl-C/SIGTERM; 2 bad usage or a ruleset that does not
load; 1 the lab could not be built or a device failed.";

const LAB_RELOAD_HELP: &str = "\
Examples:
  sudo vpcgate lab reload rulesets/lesson-untracked-after.toml
  sudo vpcgate lab reload --name second my-vpc/

The running `lab up` loads the paths between two frames, as replay's --rules-at:
tracked connections keep passing, untracked flows and network ACLs follow the new
rules at once. Refused, with the old ruleset kept: a ruleset that does not load, or
one with other ENIs, subnets or addresses (restart the lab for those).
Exit status: 0 in force; 2 refused; 1 the lab is not up or did not answer.";

#[derive(Subcommand, Debug)]
pub(crate) enum LabCommand {
    /// Build the namespaces and serve them in the foreground until Ctrl-C/SIGTERM.
    #[command(after_help = LAB_UP_HELP)]
    Up(LabUpArgs),
    /// Remove every namespace a lab made, and only those (idempotent).
    Down(LabNameArgs),
    /// Run a command in one of the lab's namespaces (`ip netns exec`).
    Exec(LabExecArgs),
    /// Say whether the lab is up and which namespaces it has.
    Status(LabNameArgs),
    /// Hand the running `lab up` a new ruleset: tracked connections survive, untracked
    /// flows are cut; a ruleset that does not load is refused and the old one stays.
    #[command(after_help = LAB_RELOAD_HELP)]
    Reload(LabReloadArgs),
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

    #[command(flatten)]
    out: LiveOutputArgs,
}

#[derive(Args, Debug)]
pub(crate) struct LabReloadArgs {
    #[command(flatten)]
    lab: LabNameArgs,

    /// The new ruleset (TOML, `aws ec2 describe-*` JSON, or a directory of them).
    #[arg(value_name = "PATH", required = true)]
    rules: Vec<PathBuf>,
}

#[derive(Args, Debug)]
pub(crate) struct LabExecArgs {
    #[command(flatten)]
    lab: LabNameArgs,

    /// The namespace (as `lab up` printed it; the lab's prefix may be left out), or an
    /// ENI id or address of it.
    #[arg(value_name = "NAMESPACE")]
    namespace: String,

    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<String>,
}

pub(crate) fn live_outputs(
    a: &LiveOutputArgs,
    rules: &[PathBuf],
    labels: Vec<String>,
) -> Result<vpcgate::live::tap::Outputs, ExitCode> {
    use std::io::IsTerminal;
    // No output may overwrite a ruleset or another output.
    let mut outputs = Vec::new();
    for (flag, p) in [
        ("--flow-log", &a.flow_log),
        ("--verdicts", &a.verdicts),
        ("--capture", &a.capture),
    ] {
        if let Some(p) = p {
            outputs.push((flag, p));
        }
    }
    if let Err(msg) = vpcgate::preflight::check_distinct(&[], rules, &[], &outputs) {
        return Err(usage_error(msg));
    }
    let interval = a.aggregation_interval;
    if interval != 60 && interval != 600 {
        return Err(usage_error(format!(
            "--aggregation-interval {interval}: AWS allows 60 or 600 seconds"
        )));
    }
    let format = match a.log_format.as_deref() {
        Some(f) => LogFormat::parse(f).map_err(|e| usage_error(format!("--log-format: {e}")))?,
        None => LogFormat::default_format(),
    };
    let mut out = vpcgate::live::tap::Outputs::default();
    if let Some(p) = &a.flow_log {
        out.flow_log = Some(
            vpcgate::output::FlowLogWriter::create(p, format).map_err(|e| {
                eprintln!("vpcgate: {}: {e}", p.display());
                ExitCode::from(1)
            })?,
        );
    }
    if let Some(p) = &a.verdicts {
        out.verdicts = Some(if p.as_os_str() == "-" {
            Box::new(std::io::stdout())
        } else {
            Box::new(std::fs::File::create(p).map_err(|e| {
                eprintln!("vpcgate: {}: {e}", p.display());
                ExitCode::from(1)
            })?)
        });
    }
    if let Some(p) = &a.capture {
        out.capture = Some(vpcgate::capture::PcapWriter::create(p).map_err(|e| {
            eprintln!("vpcgate: {}: {e}", p.display());
            ExitCode::from(1)
        })?);
    }
    if std::io::stderr().is_terminal() {
        out.status = Some(labels);
    }
    Ok(out)
}

/// Loads `paths` again for a reload: the ruleset, or the usual message of why not.
fn reload_rules(paths: &[PathBuf]) -> Result<vpcgate::model::Vpc, String> {
    match vpcgate::load::load_paths(paths) {
        Ok(v) => {
            v.warnings.iter().for_each(|w| eprintln!("warning: {w}"));
            Ok(v)
        }
        Err(e) => Err(format!(
            "{e}\nvpcgate: the ruleset did not load ({} problem(s))",
            e.0.len()
        )),
    }
}

/// Loads `paths` and hands them to the router: the line to print, `Ok` when the new
/// ruleset is in force.
fn reload_router(
    router: &mut dyn vpcgate::live::tap::Reload,
    paths: &[PathBuf],
) -> Result<String, String> {
    let shown = paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(" ");
    let refused =
        |why: String| format!("{why}\nreload of {shown} refused: the old ruleset stays in force");
    let vpc = reload_rules(paths).map_err(refused)?;
    let kept = router.reload(Arc::new(vpc)).map_err(refused)?;
    Ok(format!(
        "reloaded {shown}: {kept} tracked connection(s) kept, untracked flows follow the new rules"
    ))
}

/// `, offloads csum tso4 ...` or `, no offloads`.
#[cfg(target_os = "linux")]
fn offloads_text(o: Option<u32>) -> String {
    match o {
        Some(bits) => format!(
            " (IFF_VNET_HDR, offloads: {})",
            vpcgate::sys::tun::offload_names(bits)
        ),
        None => " (no offloads)".into(),
    }
}

/// SIGHUP, as a flag for the live loop.
fn hup_flag() -> Arc<std::sync::atomic::AtomicBool> {
    let hup = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let _ = signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone());
    hup
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
    let mut labels: Vec<String> = vpc
        .network_interfaces
        .iter()
        .map(|e| e.id.clone())
        .collect();
    labels.push("igw".into());
    let mut out = match live_outputs(&args.out, &args.rules, labels) {
        Ok(o) => o,
        Err(c) => return c,
    };
    let mut router = Router::new(vpc.clone(), args.out.aggregation_interval);
    let workers = args.out.workers();
    router.set_nodata(!args.out.no_nodata);
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
        match Device::open_queues(port, &name, !args.out.no_offloads, workers) {
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
                eprintln!(
                    "vpcgate tap: {what} on {}{}, {} queue(s)",
                    d.name,
                    offloads_text(d.offloads),
                    d.queues.len()
                );
                devices.push(d);
            }
            Err(e) => {
                eprintln!("vpcgate tap: cannot open TAP {name} for {what}: {e}");
                return ExitCode::from(1);
            }
        }
    }
    if args.out.verdicts.is_some() {
        router.keep_verdicts();
    }
    let stop = stop_flag();
    let hup = hup_flag();
    let rules = args.rules.clone();
    let mut on_reload = |r: &mut dyn vpcgate::live::tap::Reload| match reload_router(r, &rules) {
        Ok(line) | Err(line) => eprintln!("vpcgate tap: {line}"),
    };
    let mut ctl = vpcgate::live::tap::Control {
        stop: &stop,
        reload: &hup,
        on_reload: &mut on_reload,
    };
    let r = vpcgate::live::tap::serve_with(&mut router, &devices, &mut out, &mut ctl, workers);
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
            let labels = lab::plan(&vpc, &args.prefix)
                .into_iter()
                .map(|n| n.ns)
                .collect();
            let mut out = match live_outputs(&args.out, &args.rules, labels) {
                Ok(o) => o,
                Err(c) => return c,
            };
            // Signals first: a Ctrl-C while building still tears down.
            let stop = stop_flag();
            let hup = hup_flag();
            let opts = lab::UpOptions {
                name: args.lab.name.clone(),
                prefix: args.prefix.clone(),
                offloads: !args.out.no_offloads,
                workers: args.out.workers(),
            };
            let mut l = match lab::up(vpc, &opts, args.out.aggregation_interval) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("vpcgate lab up: {e}");
                    return ExitCode::from(1);
                }
            };
            if args.out.verdicts.is_some() {
                l.router.keep_verdicts();
            }
            l.router.set_nodata(!args.out.no_nodata);
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
            if let Some(d) = l.devices.first() {
                eprintln!(
                    "  TAPs{}, {} queue(s) each, {} worker(s)",
                    offloads_text(d.offloads),
                    d.queues.len(),
                    opts.workers
                );
            }
            println!("lab {} is up: {} namespaces", opts.name, l.nodes.len());
            let _ = std::io::Write::flush(&mut std::io::stdout());
            let (name, rules) = (opts.name.clone(), args.rules.clone());
            let mut on_reload = |r: &mut dyn vpcgate::live::tap::Reload| {
                // `lab reload` names the paths in a request file; a bare SIGHUP
                // reloads the paths `up` was given.
                let paths = lab::take_reload_request(&name).unwrap_or_else(|| rules.clone());
                let res = reload_router(r, &paths);
                match &res {
                    Ok(line) | Err(line) => eprintln!("vpcgate lab: {line}"),
                }
                if let Err(e) = lab::write_reload_result(&name, &res) {
                    eprintln!("vpcgate lab: cannot write the reload result: {e}");
                }
            };
            let mut ctl = vpcgate::live::tap::Control {
                stop: &stop,
                reload: &hup,
                on_reload: &mut on_reload,
            };
            let r = lab::run(&mut l, &opts.name, &mut out, &mut ctl, opts.workers);
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
        LabCommand::Reload(a) => lab_reload(&a),
        LabCommand::Exec(a) => {
            let ns = match lab::State::read(&a.lab.name) {
                Ok(Some(s)) => s.resolve(&a.namespace).map(str::to_string),
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

/// `lab reload`: checks that the new ruleset loads, hands its paths to the running
/// `lab up` (a request file beside the lab's state file, then SIGHUP) and waits for
/// its answer.
#[cfg(target_os = "linux")]
fn lab_reload(a: &LabReloadArgs) -> ExitCode {
    use vpcgate::lab;
    let name = &a.lab.name;
    let pid = match lab::State::read(name) {
        Ok(Some(s)) => s.pid.filter(|&p| lab::pid_is_lab(p)),
        Ok(None) => None,
        Err(e) => {
            eprintln!("vpcgate lab reload: {e}");
            return ExitCode::from(1);
        }
    };
    let Some(pid) = pid else {
        eprintln!("vpcgate lab reload: lab {name} is not up (`vpcgate lab status --name {name}`)");
        return ExitCode::from(1);
    };
    // Refused here already when it does not load: the usual message, nothing sent.
    if let Err(c) = load_rules(&a.rules) {
        eprintln!("vpcgate lab reload: nothing was changed; lab {name} keeps its ruleset");
        return c;
    }
    let mut paths = Vec::new();
    for p in &a.rules {
        match std::fs::canonicalize(p) {
            Ok(abs) => paths.push(abs),
            Err(e) => {
                eprintln!("vpcgate lab reload: {}: {e}", p.display());
                return ExitCode::from(2);
            }
        }
    }
    match lab::request_reload(name, pid, &paths, std::time::Duration::from_secs(10)) {
        Ok(Ok(line)) => {
            println!("lab {name}: {line}");
            ExitCode::SUCCESS
        }
        Ok(Err(why)) => {
            eprintln!("{why}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("vpcgate lab reload: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn lab(_: LabCommand) -> ExitCode {
    eprintln!("vpcgate lab: network namespaces need Linux");
    ExitCode::from(2)
}
