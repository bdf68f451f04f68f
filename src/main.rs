//! The `vpcgate` binary: flags are parsed by clap, resolved into a validated
//! [`vpcgate::pipeline::ReplayConfig`], and handed to the library. Nothing below the
//! CLI layer sees clap.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use clap::{Args, Parser, Subcommand};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use vpcgate::flowlog::LogFormat;
use vpcgate::pipeline::{self, ReplayConfig, RulesetAt, When};
use vpcgate::preflight::{check_captures, check_distinct, parse_when};

const AFTER_HELP: &str = "\
Every place where vpcgate had to decide how AWS behaves is written down in the
manual: run `vpcgate manual`, or read the \"Manual of emulation decisions\" section
of README.md.

Install: `cargo install --path .` from a clone. Shell completions: `vpcgate
completions bash` (or zsh, fish, elvish, powershell); a man page: `vpcgate man`.";

/// A packet filter that behaves like an AWS VPC data plane.
///
/// vpcgate replays pcap/pcapng captures through network ACLs (stateless, numbered
/// rules, first match wins) and security groups (stateful, with connection tracking
/// as AWS does it), and writes what AWS would have written: VPC Flow Log records,
/// plus one verdict per packet that names the check that denied it.
#[derive(Parser, Debug)]
#[command(name = "vpcgate", version, propagate_version = true, after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Replay captures through the emulated VPC.
    #[command(after_help = REPLAY_HELP)]
    Replay(Box<ReplayArgs>),
    /// Print the manual: the ruleset format and every emulation decision (paged
    /// when standard output is a terminal).
    Manual,
    /// Print a shell completion script, e.g. `vpcgate completions bash >
    /// ~/.local/share/bash-completion/completions/vpcgate`.
    Completions {
        /// The shell: bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `vpcgate man > ~/.local/share/man/man1/vpcgate.1`;
    /// `vpcgate man replay` prints the page of one subcommand (vpcgate-replay.1).
    Man {
        /// A subcommand: its own page.
        #[arg(value_name = "SUBCOMMAND")]
        subcommand: Option<String>,
    },
    /// Write a large, realistic capture for benchmarks (the same bytes for the same
    /// flags).
    #[command(after_help = SYNTH_HELP)]
    Synth(SynthArgs),
    /// Find a ruleset's mistakes: shadowed NACL entries, replies dropped at ephemeral
    /// ports, unused groups, world-open admin ports, missing IPv6 twins, quotas.
    #[command(after_help = LINT_HELP)]
    Lint(LintArgs),
    /// Write a small capture from a written story (hosts, connections, pings, times):
    /// the same story gives the same bytes. The story format: `src/craft.rs`, README.
    Craft(CraftArgs),
    /// The live data plane: vpcgate as the VPC router between TAP devices.
    #[command(after_help = TAP_HELP)]
    Tap(TapArgs),
    /// A ruleset's VPC as network namespaces on this box, vpcgate between them.
    #[command(subcommand, after_help = LAB_HELP)]
    Lab(LabCommand),
}

const REPLAY_HELP: &str = "\
Examples:
  # The bundled SecureCart VPC and its demo capture:
  vpcgate replay --rules rulesets/securecart.toml pcaps/securecart.pcap \\
      --flow-log flows.log --verdicts verdicts.jsonl

  # Your own VPC, exported with `aws ec2 describe-*` into one folder:
  vpcgate replay --rules ./my-vpc/ capture.pcap --flow-log flows.log.gz

  # A custom flow-log format with 60-second windows:
  vpcgate replay --rules r.toml cap.pcap --flow-log - --aggregation-interval 60 \\
      --log-format '${version} ${interface-id} ${srcaddr} ${dstaddr} ${action} ${tcp-flags}'

  # What changes when a rule is removed mid-capture (tracked flows survive):
  vpcgate replay --rules before.toml --rules-at 2024-11-24T08:05:00Z=after.toml cap.pcap
  # ... or 90 seconds after the first packet:
  vpcgate replay --rules before.toml --rules-at +90s=after.toml cap.pcap

Every input is checked before any output is created or truncated: a capture that
is missing or not a capture stops the run with nothing written. An output that is
the same file as an input or as another output is refused.

Exit status: 0 done; 2 bad usage (also an output that is an input) or a ruleset
that does not load; 1 a capture that cannot be read (missing, not a capture, or
damaged further in: everything before the damage is still processed and written)
or an output that could not be written; 130 interrupted by Ctrl-C or SIGTERM, also
while waiting for input (everything read before was processed and written).

Every place where vpcgate had to decide how AWS behaves: `vpcgate manual`.";

#[derive(Args, Debug)]
struct ReplayArgs {
    /// Capture files (pcap or pcapng); `-` reads standard input.
    #[arg(required = true, value_name = "CAPTURE")]
    captures: Vec<PathBuf>,

    /// A ruleset TOML file, a JSON file printed by an `aws ec2 describe-*` command,
    /// or a directory of such files. Repeatable: all are merged into one VPC.
    #[arg(long, required = true, value_name = "PATH")]
    rules: Vec<PathBuf>,

    /// From capture time TIME on, the ruleset is PATH (a file or a directory). TIME
    /// is Unix seconds (1732435500.25), an RFC 3339 time (2024-11-24T08:05:00Z,
    /// 2024-11-24T09:05:00+01:00), or an offset from the first packet's time (+90,
    /// +90s, +1.5m, +2h). Repeatable. Tracked connections survive the change;
    /// untracked flows and NACLs follow the new rules at once.
    #[arg(long = "rules-at", value_name = "TIME=PATH")]
    rules_at: Vec<String>,

    /// Keep only this VPC's objects when the exports list several VPCs.
    #[arg(long, value_name = "VPC_ID")]
    vpc: Option<String>,

    /// Write flow-log records here: a header line, then one record per line.
    /// `-` is standard output; a path ending in `.gz` is gzipped.
    #[arg(long = "flow-log", value_name = "PATH")]
    flow_log: Option<PathBuf>,

    /// An AWS custom flow-log format, e.g.
    /// '${version} ${interface-id} ${srcaddr} ${action}'. Any field of versions 2
    /// to 8. Default: the version 2 default format. Needs --flow-log.
    #[arg(long = "log-format", value_name = "FORMAT")]
    log_format: Option<String>,

    /// Flow-log aggregation interval in seconds: 60 or 600 (default 600). Needs
    /// --flow-log.
    #[arg(long = "aggregation-interval", value_name = "SECONDS")]
    aggregation_interval: Option<u32>,

    /// Do not write NODATA records for interfaces without traffic in a window. Needs
    /// --flow-log.
    #[arg(long = "no-nodata")]
    no_nodata: bool,

    /// Write one JSON object per packet, in capture order, saying ACCEPT, REJECT or
    /// NONE and which check decided. `-` is standard output.
    #[arg(long, value_name = "PATH")]
    verdicts: Option<PathBuf>,

    /// Write the accepted packets to this pcap file.
    #[arg(long, value_name = "PATH")]
    accepted: Option<PathBuf>,

    /// Write the rejected packets to this pcap file.
    #[arg(long, value_name = "PATH")]
    rejected: Option<PathBuf>,

    /// Worker threads. The output is the same bytes for every value.
    /// Default: the number of CPUs.
    #[arg(long, value_name = "N")]
    workers: Option<usize>,

    /// The most connections tracked at once over the whole run; a packet that
    /// would open one more is rejected as `conntrack-full` (manual: "Connection
    /// tracking"), counted
    /// and reported. Open flow-log records are bounded to twice this; packets beyond
    /// it are counted in SKIPDATA records. `0`: no bound. Default: a quarter of the
    /// total memory at about 512 bytes per flow (the same on every run).
    #[arg(long = "max-flows", value_name = "N")]
    max_flows: Option<u64>,

    /// Print the summary as JSON instead of text; `--json=FILE` writes the JSON
    /// summary to FILE (even with --quiet) and prints the text summary as usual.
    #[arg(
        long,
        value_name = "FILE",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "-"
    )]
    json: Option<PathBuf>,

    /// Print no summary.
    #[arg(long, short)]
    quiet: bool,

    /// Never show a progress bar (it shows only when stderr is a terminal).
    #[arg(long = "no-progress")]
    no_progress: bool,
}

/// Bytes one tracked flow may take, with its flow-log records: an estimate from the
/// peak RSS figures in the README's limits section (about 300 to 600 bytes per live
/// flow, depending on the aggregation interval).
const BYTES_PER_FLOW: u64 = 512;

/// The default `--max-flows`: a quarter of the machine's total memory, at
/// [`BYTES_PER_FLOW`] each, between 100,000 and 100,000,000. Total, not available,
/// memory: the same bound on every run on one machine, so the same capture gives
/// the same output.
fn default_max_flows() -> u64 {
    max_flows_for(std::fs::read_to_string("/proc/meminfo").ok().as_deref())
}

/// [`default_max_flows`] for the text of `/proc/meminfo` (`None`: 4 GiB).
fn max_flows_for(meminfo: Option<&str>) -> u64 {
    let total = meminfo
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))?
                .split_whitespace()
                .nth(1)?
                .parse::<u64>()
                .ok()
        })
        .map_or(4 << 30, |kib| kib * 1024);
    (total / 4 / BYTES_PER_FLOW).clamp(100_000, 100_000_000)
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli.command {
        Command::Manual => manual(),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "vpcgate",
                &mut std::io::stdout(),
            );
            ExitCode::SUCCESS
        }
        Command::Man { subcommand } => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            cmd.build();
            let page = match &subcommand {
                None => cmd,
                Some(name) => match cmd.find_subcommand(name) {
                    Some(sub) => {
                        // The page's name: vpcgate-replay(1).
                        let full: &'static str =
                            Box::leak(format!("vpcgate-{}", sub.get_name()).into_boxed_str());
                        sub.clone().name(full)
                    }
                    None => return usage_error(format!("man {name}: no such subcommand")),
                },
            };
            let mut out = Vec::new();
            if let Err(e) = clap_mangen::Man::new(page).render(&mut out) {
                eprintln!("vpcgate: cannot render the man page: {e}");
                return ExitCode::from(1);
            }
            write_stdout(&out)
        }
        Command::Replay(args) => replay(*args),
        Command::Synth(args) => synth(args),
        Command::Lint(args) => lint(args),
        Command::Craft(args) => craft(args),
        Command::Tap(args) => tap(args),
        Command::Lab(cmd) => lab(cmd),
    }
}

fn usage_error(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(2)
}

/// Writes `bytes` to standard output; a closed pipe (`| head`) is no error.
fn write_stdout(bytes: &[u8]) -> ExitCode {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vpcgate: cannot write standard output: {e}");
            ExitCode::from(1)
        }
    }
}

/// `vpcgate manual`: plain text into a pipe or file; on a terminal, headings in bold
/// and the whole through `$PAGER` (default `less -R`), or printed when no pager runs.
fn manual() -> ExitCode {
    let text = vpcgate::manual::text();
    if !std::io::stdout().is_terminal() {
        return write_stdout(text.as_bytes());
    }
    let rendered = vpcgate::manual::for_terminal(&text);
    let pager = std::env::var("PAGER")
        .ok()
        .filter(|p| !p.trim().is_empty())
        .unwrap_or_else(|| "less -R".into());
    let mut words = pager.split_whitespace();
    let Some(program) = words.next() else {
        return write_stdout(rendered.as_bytes());
    };
    let child = std::process::Command::new(program)
        .args(words)
        .env(
            "LESS",
            std::env::var("LESS").unwrap_or_else(|_| "FRX".into()),
        )
        .stdin(std::process::Stdio::piped())
        .spawn();
    match child {
        Ok(mut c) => {
            use std::io::Write;
            if let Some(mut stdin) = c.stdin.take() {
                let _ = stdin.write_all(rendered.as_bytes());
            }
            let _ = c.wait();
            ExitCode::SUCCESS
        }
        Err(_) => write_stdout(rendered.as_bytes()),
    }
}

fn replay(args: ReplayArgs) -> ExitCode {
    let aggregation_interval = args.aggregation_interval.unwrap_or(600);
    if aggregation_interval != 60 && aggregation_interval != 600 {
        return usage_error(format!(
            "--aggregation-interval {aggregation_interval}: AWS allows 60 or 600 seconds"
        ));
    }
    let log_format = match &args.log_format {
        Some(f) => match LogFormat::parse(f) {
            Ok(f) => f,
            Err(e) => return usage_error(format!("--log-format: {e}")),
        },
        None => LogFormat::default_format(),
    };
    // Flags that mean nothing without another (after their values are checked).
    if args.flow_log.is_none() {
        for (given, flag) in [
            (args.log_format.is_some(), "--log-format"),
            (
                args.aggregation_interval.is_some(),
                "--aggregation-interval",
            ),
            (args.no_nodata, "--no-nodata"),
        ] {
            if given {
                return usage_error(format!(
                    "{flag} shapes the flow log, and there is none: add --flow-log PATH (or --flow-log - for standard output)"
                ));
            }
        }
    }
    let load_opts = vpcgate::load::LoadOptions {
        vpc: args.vpc.clone(),
    };
    let base = match vpcgate::load::load_paths_with(&args.rules, &load_opts) {
        Ok(v) => {
            v.warnings.iter().for_each(|w| eprintln!("warning: {w}"));
            v
        }
        Err(e) => {
            eprintln!("{e}");
            eprintln!(
                "vpcgate: the ruleset did not load ({} problem(s)); nothing was replayed",
                e.0.len()
            );
            return ExitCode::from(2);
        }
    };
    let mut rulesets = vec![RulesetAt {
        from: None,
        vpc: Arc::new(base),
        label: args
            .rules
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" + "),
    }];
    for spec in &args.rules_at {
        let Some((t, path)) = spec.split_once('=') else {
            return usage_error(format!(
                "--rules-at {spec:?}: expected TIME=PATH, e.g. 1700000060.5=after.toml"
            ));
        };
        let ts = match parse_when(t) {
            Ok(w) => w,
            Err(why) => {
                return usage_error(format!(
                    "--rules-at {spec:?}: {why}; write Unix seconds (1732435500.25), an RFC 3339 time (2024-11-24T08:05:00Z) or an offset from the first packet (+90s)"
                ))
            }
        };
        match vpcgate::load::load_paths_with(&[PathBuf::from(path)], &load_opts) {
            Ok(v) => {
                v.warnings.iter().for_each(|w| eprintln!("warning: {w}"));
                rulesets.push(RulesetAt {
                    from: Some(ts),
                    vpc: Arc::new(v),
                    label: format!("{path} (from {t})"),
                })
            }
            Err(e) => {
                eprintln!("{e}");
                eprintln!(
                    "vpcgate: the ruleset of --rules-at {spec} did not load; nothing was replayed"
                );
                return ExitCode::from(2);
            }
        }
    }
    // Absolute times first, in time order, then offsets (the pipeline orders them
    // all once the first packet is known; ties keep this order).
    rulesets[1..].sort_by_key(|r| match r.from {
        Some(When::At(t)) => (0, t.0),
        Some(When::AfterFirstPacket(ns)) => (1, ns),
        None => (0, 0),
    });

    // Every input is checked before any output is created or truncated.
    if args
        .captures
        .iter()
        .filter(|p| p.as_os_str() == "-")
        .count()
        > 1
    {
        return usage_error("`-` (standard input) is named more than once");
    }
    if let Err(mut msg) = check_captures(&args.captures) {
        let json_named = args.json.as_ref().is_some_and(|j| j.as_os_str() == "-")
            && args
                .captures
                .iter()
                .any(|c| c.extension().is_some_and(|e| e == "json") && !c.exists());
        if json_named {
            msg.push_str(" (to write the JSON summary to a file, write --json=FILE)");
        }
        eprintln!("vpcgate: {msg}; nothing was replayed, and no output was created or changed");
        return ExitCode::from(1);
    }
    let json_file = args.json.as_ref().filter(|p| p.as_os_str() != "-");
    let outputs: Vec<(&str, &PathBuf)> = [
        ("--flow-log", &args.flow_log),
        ("--verdicts", &args.verdicts),
        ("--accepted", &args.accepted),
        ("--rejected", &args.rejected),
    ]
    .into_iter()
    .filter_map(|(f, p)| Some((f, p.as_ref()?)))
    .chain(json_file.map(|p| ("--json", p)))
    .collect();
    let rules_at_paths: Vec<PathBuf> = args
        .rules_at
        .iter()
        .filter_map(|s| Some(PathBuf::from(s.split_once('=')?.1)))
        .collect();
    if let Err(msg) = check_distinct(&args.captures, &args.rules, &rules_at_paths, &outputs) {
        return usage_error(msg);
    }

    let stdout_used = [
        &args.flow_log,
        &args.verdicts,
        &args.accepted,
        &args.rejected,
    ]
    .iter()
    .filter(|p| p.as_ref().is_some_and(|p| p.as_os_str() == "-"))
    .count();
    if stdout_used > 1 {
        return usage_error("only one output can be standard output (`-`)");
    }
    if (args.accepted.as_ref().is_some_and(|p| p.as_os_str() == "-")
        || args.rejected.as_ref().is_some_and(|p| p.as_os_str() == "-"))
        && std::io::stdout().is_terminal()
    {
        return usage_error(
            "refusing to write a pcap to a terminal; redirect standard output or name a file",
        );
    }
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if workers == 0 || workers > 1024 {
        return usage_error(format!("--workers {workers}: give 1 to 1024"));
    }
    let cfg = ReplayConfig {
        captures: args.captures.clone(),
        rulesets,
        flow_log: args.flow_log.clone(),
        log_format,
        interval: aggregation_interval,
        nodata: !args.no_nodata,
        verdicts: args.verdicts.clone(),
        accepted: args.accepted.clone(),
        rejected: args.rejected.clone(),
        workers,
        progress: !args.no_progress && std::io::stderr().is_terminal(),
        max_flows: match args.max_flows {
            Some(0) => None,
            Some(n) => Some(n),
            None => Some(default_max_flows()),
        },
    };
    // Ctrl-C or SIGTERM: stop reading, then process and write out everything read so
    // far. A second signal ends the process at once.
    let interrupt = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let signal = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register_conditional_shutdown(sig, 130, interrupt.clone());
        let _ = signal_hook::flag::register_usize(sig, signal.clone(), sig as usize);
        let _ = signal_hook::flag::register(sig, interrupt.clone());
    }
    // Every output is created before any is written: a bad path stops the run here and
    // leaves no new file behind.
    if let Err((path, error)) = vpcgate::sink::preflight(outputs.iter().map(|(_, p)| p.as_path())) {
        let e = pipeline::ReplayError::Output {
            path: path.display().to_string(),
            error,
        };
        eprintln!("vpcgate: {}", output_error_text(&e));
        return ExitCode::from(1);
    }
    let started = std::time::Instant::now();
    let summary = match pipeline::run(&cfg, Some(&interrupt)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("vpcgate: {}", output_error_text(&e));
            return ExitCode::from(1);
        }
    };
    let elapsed = started.elapsed();
    if let Some(path) = json_file {
        let mut v = vpcgate::report::summary_json(&summary, &cfg, elapsed);
        v.push('\n');
        if let Err(error) = std::fs::write(path, v) {
            let e = pipeline::ReplayError::Output {
                path: path.display().to_string(),
                error,
            };
            eprintln!("vpcgate: {e}");
            return ExitCode::from(1);
        }
    }
    let json_stdout = args.json.as_ref().is_some_and(|p| p.as_os_str() == "-");
    if !args.quiet {
        let text = if json_stdout {
            let mut v = vpcgate::report::summary_json(&summary, &cfg, elapsed);
            v.push('\n');
            v
        } else {
            vpcgate::report::summary_text(&summary, &cfg, elapsed)
        };
        if stdout_used > 0 {
            eprint!("{text}");
        } else {
            print!("{text}");
        }
    }
    for e in &summary.capture_errors {
        eprintln!("error: {e}");
    }
    let signal = signal.load(std::sync::atomic::Ordering::Relaxed);
    if summary.interrupted || signal != 0 {
        eprintln!(
            "vpcgate: {}",
            vpcgate::report::interrupted_text(signal, summary.packets, &cfg)
        );
        ExitCode::from(130)
    } else if summary.capture_errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "vpcgate: {} capture file(s) could not be read to the end; every packet read before that was processed and written out",
            summary.capture_errors.len()
        );
        ExitCode::from(1)
    }
}

/// How an output that could not be written is reported: the path, the OS error, and
/// what the file holds now.
fn output_error_text(e: &pipeline::ReplayError) -> String {
    use vpcgate::sink::{sink_error, Stage};
    #[allow(unreachable_patterns)]
    match e {
        pipeline::ReplayError::Output { path, error } => {
            let stdout = path == "-";
            let name = if stdout { "standard output" } else { path };
            match sink_error(error).map(|s| (s.stage, s.whole_records)) {
                Some((Stage::Create, _)) => {
                    format!("cannot create {name}: {error}; nothing was replayed")
                }
                Some((Stage::Write, true)) if stdout => format!(
                    "cannot write {name}: {error}; every complete record up to then was written"
                ),
                Some((Stage::Write, true)) => format!(
                    "cannot write {name}: {error}; the file holds every complete record up to then"
                ),
                Some((Stage::Write, false)) => {
                    format!("cannot write {name}: {error}; its last record may be cut short")
                }
                None => format!("cannot write {name}: {error}"),
            }
        }
        other => other.to_string(),
    }
}

const SYNTH_HELP: &str = "\
What it writes: a classic pcap (nanosecond timestamps, Ethernet) of --packets
packets spread over --duration seconds, from a pool of --flows flows open at once
(a finished flow is replaced by a new one): TCP (about 70 %: handshake, 1 to 3
request/response exchanges, FIN or RST), DNS-like UDP (about 20 %) and ICMP echo
(about 10 %), about --ipv6-share of them over IPv6 where the ENIs have IPv6
addresses. Every checksum is correct; payload bytes are zero. The bytes depend
on the flags and on the ruleset: the same flags give the same file.

Addresses: those of the ruleset's ENIs (default: the SecureCart VPC of
rulesets/securecart.toml, built in). Flows follow the rules (an SG rule naming
another group gives ENI-to-ENI traffic across subnets; 0.0.0.0/0 gives internet
hosts at random public addresses, which reach an ENI at its public IP), plus
background: scans and pings from the internet, HTTPS, DNS and pings out. A kind
of flow the ruleset never lets through (pings, in SecureCart) shows up only among
the rejected flows, and the others take its share; the summary says so.

--reject-share counts FLOWS, not packets: the share of flows whose first packet
the ruleset rejects (held to within one flow; each new flow's first packet is run
through the engine). A rejected flow holds only its opener's attempts (a SYN sent
1 to 3 times, a repeated query, unanswered pings), so its packets weigh less; and
a network ACL (stateless) may still reject replies of flows that were let in:
those flows count as not rejected, their replies add rejected packets.

Examples:
  # 2 million packets for SecureCart, then replay them:
  vpcgate synth -o bench.pcap
  vpcgate replay --rules rulesets/securecart.toml bench.pcap --flow-log flows.log

  # Your VPC, 20 million packets over an hour, a quarter of the flows rejected:
  vpcgate synth --rules ./my-vpc/ -o big.pcap --packets 20000000 --duration 3600 \\
      --reject-share 0.25

  # Another capture of the same shape, with frames cut after 96 bytes (every
  # header fits):
  vpcgate synth -o other.pcap --seed 2 --snaplen 96

  # Straight into another tool:
  vpcgate synth -o - --packets 100000 | tcpdump -r - -c 5 -nn

Exit status: 0 done; 2 bad usage or a ruleset that does not load; 1 the capture
could not be written.";

#[derive(Args, Debug)]
struct SynthArgs {
    /// Where to write the pcap. `-` is standard output (not a terminal).
    #[arg(short, long, value_name = "PATH")]
    output: PathBuf,

    /// Packets to write.
    #[arg(long, value_name = "N", default_value_t = 2_000_000)]
    packets: u64,

    /// Flows open at once. Each step writes the next packet of one of them; a flow
    /// that ends is replaced by a new one, so the capture holds at least N flows, more
    /// when --packets is larger than N flows send (2 million packets with 100000 flows
    /// open: about 150000 flows, most of them still open at the end).
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    flows: usize,

    /// The seed of every random choice: the same flags give the same bytes.
    #[arg(long, value_name = "S", default_value_t = 1)]
    seed: u64,

    /// The ruleset whose ENIs send and receive the traffic (same forms as `replay
    /// --rules`; repeatable, merged). Default: the SecureCart VPC of
    /// rulesets/securecart.toml, built in.
    #[arg(long, value_name = "PATH")]
    rules: Vec<PathBuf>,

    /// The share of flows (0 to 1) whose first packet the ruleset rejects. Flows, not
    /// packets: see below.
    #[arg(long = "reject-share", value_name = "F", default_value_t = 0.05)]
    reject_share: f64,

    /// The share of flows (0 to 1) over IPv6. Only ENIs with IPv6 addresses get IPv6
    /// flows; without any, there is no IPv6 and the summary says so.
    #[arg(long = "ipv6-share", value_name = "F", default_value_t = 0.1)]
    ipv6_share: f64,

    /// Capture time of the first packet, Unix seconds (default 2023-11-14 22:13:20 UTC).
    #[arg(long, value_name = "UNIX_SECS", default_value_t = 1_700_000_000)]
    start: u64,

    /// Seconds of capture time the packets span (the default gives one 600-second
    /// flow-log window, ten 60-second ones).
    #[arg(long, value_name = "SECS", default_value_t = 600.0)]
    duration: f64,

    /// Bytes kept of each frame; longer frames are cut, their length on the wire is
    /// kept. Frames are 54 to 1514 bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 65_535)]
    snaplen: u32,

    /// Never show a progress bar (it shows only when stderr is a terminal).
    #[arg(long = "no-progress")]
    no_progress: bool,
}

/// A writer that counts the pcap records going through it (after the 24-byte file
/// header, each record is a 16-byte header with its captured length, then the frame)
/// and moves a progress bar by them.
struct CountingPcap<W> {
    inner: W,
    bar: indicatif::ProgressBar,
    /// Bytes of the file header or of a frame still to pass before the next header.
    skip: usize,
    head: [u8; 16],
    have: usize,
}

impl<W: std::io::Write> CountingPcap<W> {
    fn new(inner: W, bar: indicatif::ProgressBar) -> CountingPcap<W> {
        CountingPcap {
            inner,
            bar,
            skip: 24,
            head: [0; 16],
            have: 0,
        }
    }

    fn count(&mut self, mut b: &[u8]) {
        let mut records = 0;
        while !b.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(b.len());
                self.skip -= n;
                b = &b[n..];
                continue;
            }
            let n = (16 - self.have).min(b.len());
            self.head[self.have..self.have + n].copy_from_slice(&b[..n]);
            self.have += n;
            b = &b[n..];
            if self.have == 16 {
                let caplen = u32::from_le_bytes(self.head[8..12].try_into().unwrap_or_default());
                self.skip = caplen as usize;
                self.have = 0;
                records += 1;
            }
        }
        if records > 0 {
            self.bar.inc(records);
        }
    }
}

impl<W: std::io::Write> std::io::Write for CountingPcap<W> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(b)?;
        self.count(&b[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn synth(args: SynthArgs) -> ExitCode {
    use vpcgate::synthgen::{self, SynthConfig};
    let cfg = SynthConfig {
        packets: args.packets,
        flows: args.flows,
        seed: args.seed,
        reject_share: args.reject_share,
        ipv6_share: args.ipv6_share,
        start: args.start,
        duration: args.duration,
        snaplen: args.snaplen,
    };
    if let Err(e) = cfg.validate() {
        return usage_error(e);
    }
    let (vpc, label) = if args.rules.is_empty() {
        (
            synthgen::builtin_vpc(),
            format!("{} (built in)", synthgen::BUILTIN_RULESET),
        )
    } else {
        match vpcgate::load::load_paths(&args.rules) {
            Ok(v) => (
                v,
                args.rules
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" + "),
            ),
            Err(e) => {
                eprintln!("{e}");
                eprintln!(
                    "vpcgate: the ruleset did not load ({} problem(s)); nothing was written",
                    e.0.len()
                );
                return ExitCode::from(2);
            }
        }
    };
    if let Err(msg) = check_distinct(&[], &args.rules, &[], &[("-o", &args.output)]) {
        return usage_error(msg);
    }
    let to_stdout = args.output.as_os_str() == "-";
    if to_stdout && std::io::stdout().is_terminal() {
        return usage_error(
            "refusing to write a pcap to a terminal; redirect standard output or name a file",
        );
    }
    let started = std::time::Instant::now();
    let bar = (!args.no_progress && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(args.packets);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} synth [{bar:40}] {human_pos}/{human_len} packets {per_sec} eta {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    });
    let write = |out: Box<dyn std::io::Write>| match &bar {
        Some(bar) => synthgen::generate(vpc, &cfg, CountingPcap::new(out, bar.clone())),
        None => synthgen::generate(vpc, &cfg, out),
    };
    let result = if to_stdout {
        write(Box::new(std::io::stdout().lock()))
    } else {
        match std::fs::File::create(&args.output) {
            Ok(f) => write(Box::new(f)),
            Err(e) => {
                eprintln!(
                    "vpcgate: cannot create {}: {e}; nothing was written",
                    args.output.display()
                );
                return ExitCode::from(1);
            }
        }
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let s = match result {
        Ok(s) => s,
        Err(synthgen::SynthError::Io(e)) => {
            eprintln!(
                "vpcgate: cannot write {}: {e}",
                if to_stdout {
                    "standard output".to_string()
                } else {
                    args.output.display().to_string()
                }
            );
            return ExitCode::from(1);
        }
        Err(e) => {
            eprintln!("vpcgate: {e}");
            return ExitCode::from(2);
        }
    };
    let secs = started.elapsed().as_secs_f64();
    let pct = |n: u64| {
        if s.flows == 0 {
            0.0
        } else {
            100.0 * n as f64 / s.flows as f64
        }
    };
    eprintln!(
        "vpcgate synth: {} packets, {} flows ({:.1} % rejected at the first packet, {:.1} % IPv6; TCP {:.1} %, UDP {:.1} %, ICMP {:.1} %), {:.1} MB, capture time {:.3} s, for {label}, written in {:.2} s ({:.2} M packets/s) to {}",
        s.packets,
        s.flows,
        pct(s.rejected_flows),
        pct(s.ipv6_flows),
        pct(s.tcp_flows),
        pct(s.udp_flows),
        pct(s.icmp_flows),
        s.bytes as f64 / 1e6,
        s.last.0.saturating_sub(s.first.0) as f64 / 1e9,
        secs,
        if secs > 0.0 { s.packets as f64 / secs / 1e6 } else { 0.0 },
        if to_stdout {
            "standard output".to_string()
        } else {
            args.output.display().to_string()
        }
    );
    for n in &s.notes {
        eprintln!("  note: {n}");
    }
    ExitCode::SUCCESS
}

#[derive(Args, Debug)]
struct CraftArgs {
    /// The story (TOML).
    #[arg(value_name = "STORY")]
    story: PathBuf,

    /// Where to write the pcap. `-` is standard output (not a terminal). Never the
    /// story or a ruleset.
    #[arg(short, long, value_name = "PATH")]
    output: PathBuf,

    /// The ruleset whose ENIs the story names (by id or `Name` tag); same forms as
    /// `replay --rules`. Repeatable, merged.
    #[arg(long, value_name = "PATH")]
    rules: Vec<PathBuf>,
}

fn craft(args: CraftArgs) -> ExitCode {
    use vpcgate::craft;
    let to_stdout = args.output.as_os_str() == "-";
    for p in std::iter::once(&args.story).chain(&args.rules) {
        if !to_stdout && (craft::same_file(p, &args.output) || *p == args.output) {
            return usage_error(format!(
                "-o {} would overwrite {}; write the capture elsewhere",
                args.output.display(),
                p.display()
            ));
        }
    }
    if to_stdout && std::io::stdout().is_terminal() {
        return usage_error(
            "refusing to write a pcap to a terminal; redirect standard output or name a file",
        );
    }
    let vpc = if args.rules.is_empty() {
        None
    } else {
        match vpcgate::load::load_paths(&args.rules) {
            Ok(v) => Some(v),
            Err(e) => {
                eprintln!("{e}");
                eprintln!(
                    "vpcgate: the ruleset did not load ({} problem(s)); nothing was written",
                    e.0.len()
                );
                return ExitCode::from(2);
            }
        }
    };
    let name = args.story.display().to_string();
    let compiled = std::fs::read(&args.story)
        .map_err(|e| craft::file_error(&name, format!("cannot read: {e}")))
        .and_then(|b| String::from_utf8(b).map_err(|_| craft::file_error(&name, "not UTF-8 text")))
        .and_then(|text| {
            let res = craft::Resolver {
                vpc: vpc.as_ref(),
                names: craft::eni_names(&args.rules),
            };
            craft::compile(&name, &text, &res)
        });
    let c = match compiled {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            eprintln!(
                "vpcgate: the story did not compile ({} problem(s)); nothing was written",
                e.0.len()
            );
            return ExitCode::from(2);
        }
    };
    let out_name = if to_stdout {
        "standard output".to_string()
    } else {
        args.output.display().to_string()
    };
    let written = vpcgate::capture::PcapWriter::create(&args.output).and_then(|mut w| {
        c.timeline.write_pcap(&mut w)?;
        w.finish()
    });
    if let Err(e) = written {
        eprintln!("vpcgate: cannot write {out_name}: {e}");
        return ExitCode::from(1);
    }
    // What was written, and the rule changes, on stdout unless the pcap went there.
    let mut text = String::new();
    let f = c.timeline.frames();
    let span =
        |t: vpcgate::packet::Timestamp| format!("{}.{:03}", t.secs(), t.subsec_nanos() / 1_000_000);
    text.push_str(&format!(
        "craft: {} packet(s) ({} connection(s), {} ping(s)) to {out_name}",
        f.len(),
        c.connections,
        c.pings
    ));
    if let (Some(a), Some(b)) = (f.first(), f.last()) {
        text.push_str(&format!(", capture time {} to {}", span(a.0), span(b.0)));
    }
    text.push('\n');
    for ch in &c.changes {
        text.push_str(&format!(
            "rules change at {}{}: replay with {}\n",
            craft::fmt_offset(ch.offset_ms),
            if ch.note.is_empty() {
                String::new()
            } else {
                format!(" ({})", ch.note)
            },
            ch.argument()
        ));
    }
    if to_stdout {
        eprint!("{text}");
    } else {
        print!("{text}");
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    /// The default bound depends on the machine, not on the moment: free memory
    /// changes from run to run, the total does not.
    #[test]
    fn default_max_flows_does_not_change_from_run_to_run() {
        let at = |avail: u64| {
            format!("MemTotal:       16000000 kB\nMemFree:         1000 kB\nMemAvailable:   {avail} kB\n")
        };
        assert_eq!(
            max_flows_for(Some(&at(2_000_000))),
            max_flows_for(Some(&at(12_000_000)))
        );
        assert_eq!(max_flows_for(Some(&at(1))), 16_000_000 * 1024 / 4 / 512);
        assert_eq!(max_flows_for(None), (4u64 << 30) / 4 / 512);
    }
}

const LINT_HELP: &str = "\
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
struct LintArgs {
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

fn lint(args: LintArgs) -> ExitCode {
    use vpcgate::analysis::lint as l;
    let mut quotas = l::Quotas::default();
    for q in &args.quota {
        if let Err(e) = quotas.set(q) {
            return usage_error(e);
        }
    }
    let level = l::Severity::parse(&args.fail_on).unwrap_or(l::Severity::Warning);
    let load_opts = vpcgate::load::LoadOptions {
        vpc: args.vpc.clone(),
    };
    let vpc = match vpcgate::load::load_paths_with(&args.rules, &load_opts) {
        Ok(v) => {
            v.warnings.iter().for_each(|w| eprintln!("warning: {w}"));
            v
        }
        Err(e) => {
            eprintln!("{e}");
            eprintln!(
                "vpcgate: the ruleset did not load ({} problem(s)); nothing was checked",
                e.0.len()
            );
            return ExitCode::from(2);
        }
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

// ---------------------------------------------------------------------------------------
// Live mode: `vpcgate tap` and `vpcgate lab` (src/live/, src/lab/).
// ---------------------------------------------------------------------------------------

const TAP_HELP: &str = "\
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
struct TapArgs {
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

const LAB_HELP: &str = "\
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
enum LabCommand {
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
struct LabNameArgs {
    /// The lab's name (its state file is /run/vpcgate-lab/NAME.state).
    #[arg(long, default_value = "vpcgate", value_name = "NAME")]
    name: String,
}

#[derive(Args, Debug)]
struct LabUpArgs {
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
struct LabExecArgs {
    #[command(flatten)]
    lab: LabNameArgs,

    /// The namespace (as `lab up` printed it; the lab's prefix may be left out).
    #[arg(value_name = "NAMESPACE")]
    namespace: String,

    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<String>,
}

fn load_rules(paths: &[PathBuf]) -> Result<vpcgate::model::Vpc, ExitCode> {
    match vpcgate::load::load_paths(paths) {
        Ok(v) => {
            v.warnings.iter().for_each(|w| eprintln!("warning: {w}"));
            Ok(v)
        }
        Err(e) => {
            eprintln!("{e}");
            eprintln!(
                "vpcgate: the ruleset did not load ({} problem(s))",
                e.0.len()
            );
            Err(ExitCode::from(2))
        }
    }
}

fn live_outputs(
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
            vpcgate::flowlog::FlowLogWriter::create(p, format).map_err(|e| {
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

fn stop_flag() -> Arc<std::sync::atomic::AtomicBool> {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(sig, stop.clone());
    }
    stop
}

#[cfg(target_os = "linux")]
fn tap(args: TapArgs) -> ExitCode {
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
fn tap(_: TapArgs) -> ExitCode {
    eprintln!("vpcgate tap: TAP devices need Linux");
    ExitCode::from(2)
}

#[cfg(target_os = "linux")]
fn lab(cmd: LabCommand) -> ExitCode {
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
fn lab(_: LabCommand) -> ExitCode {
    eprintln!("vpcgate lab: network namespaces need Linux");
    ExitCode::from(2)
}
