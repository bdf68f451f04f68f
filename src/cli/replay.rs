//! `vpcgate replay`: flags resolved into a [`ReplayConfig`], the run, its exit status.

use clap::Args;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use vpcgate::flowlog::LogFormat;
use vpcgate::pipeline::{self, ReplayConfig, RulesetAt, When};
use vpcgate::preflight::{check_captures, check_distinct, parse_when};

use super::usage_error;

pub(crate) const REPLAY_HELP: &str = "\
Examples:
  # The bundled SecureCart VPC and its demo capture:
  vpcgate replay --rules rulesets/securecart.toml pcaps/securecart.pcap \\
      --flow-log flows.log --verdicts verdicts.jsonl

  # A page to look at (open report.html in a browser; nothing is fetched):
  vpcgate replay --rules rulesets/securecart.toml pcaps/securecart.pcap --report report.html

  # Your own VPC, exported with `aws ec2 describe-*` into one folder:
  vpcgate replay --rules ./my-vpc/ capture.pcap --flow-log flows.log.gz

  # A custom flow-log format with 60-second windows:
  vpcgate replay --rules r.toml cap.pcap --flow-log - --aggregation-interval 60 \\
      --log-format '${version} ${interface-id} ${srcaddr} ${dstaddr} ${action} ${tcp-flags}'

  # What changes when a rule is removed mid-capture (tracked flows survive):
  vpcgate replay --rules before.toml --rules-at 2024-11-24T08:05:00Z=after.toml cap.pcap
  # ... or 90 seconds after the first packet:
  vpcgate replay --rules before.toml --rules-at +90s=after.toml cap.pcap

  # Why was packet 41 rejected? Every check, its rule, the tracking state it met:
  vpcgate replay --rules rulesets/securecart.toml pcaps/securecart.pcap --explain 41
  # With several captures, say which: --explain second.pcap:12 (a bare N is in the first)

  # For teaching, NOT AWS: what connection tracking does, shown by its absence
  # (the summary lists the packets whose verdict flips against AWS):
  vpcgate replay --rules rulesets/lesson-stateful.toml pcaps/lesson-stateful.pcap --stateless-sg
  # ... and what stateless NACLs cost: replies they drop that a stateful one passes:
  vpcgate replay --rules rulesets/securecart.toml pcaps/securecart.pcap --stateful-nacl

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
pub(crate) struct ReplayArgs {
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

    /// Write a report for people to PATH: one self-contained HTML file (no script,
    /// nothing fetched) with the totals, a timeline of accepted and rejected packets
    /// per ENI, the top rejected flows with the rule that denied each, rule coverage
    /// as a heat map, what connection tracking did, and a diagram of the ruleset.
    #[arg(long, value_name = "PATH")]
    report: Option<PathBuf>,

    /// Explain packet N (as Wireshark numbers frames): its whole path, each check
    /// with the rule that decided it, and the connection-tracking state it met (new,
    /// tracked since packet K, untracked, expired, cut by a rule change).
    /// Repeatable. With several captures, FILE:N names the capture (a bare N is in
    /// the first). Prints the explanations instead of a summary (--json: as JSON),
    /// from a single-threaded pass of its own; writes no other output.
    #[arg(long, value_name = "N", conflicts_with_all = ["flow_log", "verdicts", "accepted", "rejected", "report"])]
    explain: Vec<String>,

    /// NOT AWS, for teaching: security groups judge every packet by their rules
    /// alone, as if nothing were tracked. The summary lists the packets whose verdict
    /// flips against AWS (what tracking did); every output is marked.
    #[arg(long = "stateless-sg", conflicts_with = "stateful_nacl")]
    stateless_sg: bool,

    /// NOT AWS, for teaching: network ACLs let through the replies of connections
    /// the security group tracks, as if they tracked too. The summary lists the
    /// packets whose verdict flips against AWS; every output is marked.
    #[arg(long = "stateful-nacl")]
    stateful_nacl: bool,

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
pub(crate) const BYTES_PER_FLOW: u64 = 512;

/// The default `--max-flows`: a quarter of the machine's total memory, at
/// [`BYTES_PER_FLOW`] each, between 100,000 and 100,000,000. Total, not available,
/// memory: the same bound on every run on one machine, so the same capture gives
/// the same output.
pub(crate) fn default_max_flows() -> u64 {
    max_flows_for(std::fs::read_to_string("/proc/meminfo").ok().as_deref())
}

/// [`default_max_flows`] for the text of `/proc/meminfo` (`None`: 4 GiB).
pub(crate) fn max_flows_for(meminfo: Option<&str>) -> u64 {
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

pub(crate) fn replay(args: ReplayArgs) -> ExitCode {
    match run(&args) {
        Ok(code) | Err(code) => code,
    }
}

/// The run in named steps; an `Err` is the exit status of a run that stopped early.
fn run(args: &ReplayArgs) -> Result<ExitCode, ExitCode> {
    let (interval, log_format) = flow_log_options(args)?;
    let rulesets = load_rulesets(args)?;
    let (outputs, stdout_used) = check_inputs_and_outputs(args)?;
    let cfg = config(args, rulesets, interval, log_format)?;
    if !args.explain.is_empty() {
        return explain(args, &cfg);
    }
    let (interrupt, signal) = install_signals();
    create_outputs(&outputs)?;
    let started = std::time::Instant::now();
    let cf = counterfactual(args);
    let summary = match pipeline::run_with(&cfg, Some(&interrupt), cf) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("vpcgate: {}", output_error_text(&e));
            return Err(ExitCode::from(1));
        }
    };
    write_report(args, &summary, &cfg)?;
    print_summary(args, &summary, &cfg, started.elapsed(), stdout_used)?;
    Ok(exit_status(
        &summary,
        &cfg,
        signal.load(std::sync::atomic::Ordering::Relaxed),
    ))
}

/// `--stateless-sg`, `--stateful-nacl`: a counterfactual engine (not AWS), said on
/// standard error for the outputs whose format cannot say it.
fn counterfactual(args: &ReplayArgs) -> vpcgate::engine::Counterfactual {
    let cf = vpcgate::engine::Counterfactual {
        stateless_sg: args.stateless_sg,
        stateful_nacl: args.stateful_nacl,
    };
    if !cf.is_aws() {
        let flags = vpcgate::report::counterfactual_flags(cf);
        if args.flow_log.is_some() {
            eprintln!(
                "warning: {flags}: the flow log holds what a VPC with {} would log, NOT what AWS logs (the records' format cannot say so)",
                cf.describe()
            );
        }
        if args.accepted.is_some() || args.rejected.is_some() {
            eprintln!(
                "warning: {flags}: --accepted and --rejected sort the packets by the counterfactual's verdicts, NOT AWS's"
            );
        }
    }
    cf
}

/// `--aggregation-interval` and `--log-format`, and the flags that mean nothing
/// without `--flow-log`.
fn flow_log_options(args: &ReplayArgs) -> Result<(u32, LogFormat), ExitCode> {
    let aggregation_interval = args.aggregation_interval.unwrap_or(600);
    if aggregation_interval != 60 && aggregation_interval != 600 {
        return Err(usage_error(format!(
            "--aggregation-interval {aggregation_interval}: AWS allows 60 or 600 seconds"
        )));
    }
    let log_format = match &args.log_format {
        Some(f) => match LogFormat::parse(f) {
            Ok(f) => f,
            Err(e) => return Err(usage_error(format!("--log-format: {e}"))),
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
                return Err(usage_error(format!(
                    "{flag} shapes the flow log, and there is none: add --flow-log PATH (or --flow-log - for standard output)"
                )));
            }
        }
    }
    Ok((aggregation_interval, log_format))
}

/// `--rules` and every `--rules-at`, loaded (warnings printed), in time order.
fn load_rulesets(args: &ReplayArgs) -> Result<Vec<RulesetAt>, ExitCode> {
    let load_opts = vpcgate::load::LoadOptions {
        vpc: args.vpc.clone(),
    };
    let base = super::load_ruleset(
        &args.rules,
        args.vpc.as_deref(),
        "the ruleset",
        "; nothing was replayed",
    )?;
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
            return Err(usage_error(format!(
                "--rules-at {spec:?}: expected TIME=PATH, e.g. 1700000060.5=after.toml"
            )));
        };
        let ts = match parse_when(t) {
            Ok(w) => w,
            Err(why) => {
                return Err(usage_error(format!(
                    "--rules-at {spec:?}: {why}; write Unix seconds (1732435500.25), an RFC 3339 time (2024-11-24T08:05:00Z) or an offset from the first packet (+90s)"
                )))
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
                return Err(ExitCode::from(2));
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

    Ok(rulesets)
}

/// The output files a run writes: (flag, path).
type Outputs<'a> = Vec<(&'static str, &'a PathBuf)>;

/// Every input is checked before any output is created or truncated; the outputs
/// (flag, path), and how many of them are standard output.
fn check_inputs_and_outputs(args: &ReplayArgs) -> Result<(Outputs<'_>, usize), ExitCode> {
    // Every input is checked before any output is created or truncated.
    if args
        .captures
        .iter()
        .filter(|p| p.as_os_str() == "-")
        .count()
        > 1
    {
        return Err(usage_error("`-` (standard input) is named more than once"));
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
        return Err(ExitCode::from(1));
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
    .chain(args.report.as_ref().map(|p| ("--report", p)))
    .collect();
    if args.report.as_ref().is_some_and(|p| p.as_os_str() == "-") {
        return Err(usage_error(
            "--report writes an HTML file: name one, e.g. --report report.html",
        ));
    }
    let rules_at_paths: Vec<PathBuf> = args
        .rules_at
        .iter()
        .filter_map(|s| Some(PathBuf::from(s.split_once('=')?.1)))
        .collect();
    if let Err(msg) = check_distinct(&args.captures, &args.rules, &rules_at_paths, &outputs) {
        return Err(usage_error(msg));
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
        return Err(usage_error("only one output can be standard output (`-`)"));
    }
    if (args.accepted.as_ref().is_some_and(|p| p.as_os_str() == "-")
        || args.rejected.as_ref().is_some_and(|p| p.as_os_str() == "-"))
        && std::io::stdout().is_terminal()
    {
        return Err(usage_error(
            "refusing to write a pcap to a terminal; redirect standard output or name a file",
        ));
    }
    Ok((outputs, stdout_used))
}

/// The pipeline's configuration.
fn config(
    args: &ReplayArgs,
    rulesets: Vec<RulesetAt>,
    interval: u32,
    log_format: LogFormat,
) -> Result<ReplayConfig, ExitCode> {
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if workers == 0 || workers > 1024 {
        return Err(usage_error(format!("--workers {workers}: give 1 to 1024")));
    }
    Ok(ReplayConfig {
        captures: args.captures.clone(),
        rulesets,
        flow_log: args.flow_log.clone(),
        log_format,
        interval,
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
        report: args.report.is_some(),
    })
}

/// Ctrl-C or SIGTERM: stop reading, then process and write out everything read so
/// far. A second signal ends the process at once. Returns the stop flag and the
/// signal number seen (0: none).
fn install_signals() -> (
    Arc<std::sync::atomic::AtomicBool>,
    Arc<std::sync::atomic::AtomicUsize>,
) {
    let interrupt = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let signal = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register_conditional_shutdown(sig, 130, interrupt.clone());
        let _ = signal_hook::flag::register_usize(sig, signal.clone(), sig as usize);
        let _ = signal_hook::flag::register(sig, interrupt.clone());
    }
    (interrupt, signal)
}

/// Every output is created before any is written: a bad path stops the run here and
/// leaves no new file behind.
fn create_outputs(outputs: &[(&str, &PathBuf)]) -> Result<(), ExitCode> {
    if let Err((path, error)) =
        vpcgate::output::sink::preflight(outputs.iter().map(|(_, p)| p.as_path()))
    {
        let e = pipeline::ReplayError::Output {
            path: path.display().to_string(),
            error,
        };
        eprintln!("vpcgate: {}", output_error_text(&e));
        return Err(ExitCode::from(1));
    }
    Ok(())
}

/// The `--report` page, from everything the run processed (also when interrupted).
fn write_report(
    args: &ReplayArgs,
    summary: &pipeline::Summary,
    cfg: &ReplayConfig,
) -> Result<(), ExitCode> {
    let Some(path) = &args.report else {
        return Ok(());
    };
    let page =
        vpcgate::report::html::render(&vpcgate::report::html::Report::from_replay(summary, cfg));
    if let Err(error) = vpcgate::output::report::write_report(path, &page) {
        eprintln!("vpcgate: cannot write {}: {error}", path.display());
        return Err(ExitCode::from(1));
    }
    Ok(())
}

/// The JSON summary (to its file, or standard output) and the text summary (to
/// standard error when standard output carries an output).
fn print_summary(
    args: &ReplayArgs,
    summary: &pipeline::Summary,
    cfg: &ReplayConfig,
    elapsed: std::time::Duration,
    stdout_used: usize,
) -> Result<(), ExitCode> {
    let json_file = args.json.as_ref().filter(|p| p.as_os_str() != "-");
    if let Some(path) = json_file {
        let mut v = vpcgate::report::summary_json(summary, cfg, elapsed);
        v.push('\n');
        if let Err(error) = std::fs::write(path, v) {
            let e = pipeline::ReplayError::Output {
                path: path.display().to_string(),
                error,
            };
            eprintln!("vpcgate: {e}");
            return Err(ExitCode::from(1));
        }
    }
    let json_stdout = args.json.as_ref().is_some_and(|p| p.as_os_str() == "-");
    if !args.quiet {
        let text = if json_stdout {
            let mut v = vpcgate::report::summary_json(summary, cfg, elapsed);
            v.push('\n');
            v
        } else {
            vpcgate::report::summary_text(summary, cfg, elapsed)
        };
        if stdout_used > 0 {
            eprint!("{text}");
        } else {
            print!("{text}");
        }
    }
    Ok(())
}

/// 130 after a signal, 1 when a capture could not be read to the end, else 0; with
/// the message that says which.
fn exit_status(summary: &pipeline::Summary, cfg: &ReplayConfig, signal: usize) -> ExitCode {
    for e in &summary.capture_errors {
        eprintln!("error: {e}");
    }
    if summary.interrupted || signal != 0 {
        eprintln!(
            "vpcgate: {}",
            vpcgate::report::interrupted_text(signal, summary.packets, cfg)
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
pub(crate) fn output_error_text(e: &pipeline::ReplayError) -> String {
    use vpcgate::output::sink::{sink_error, Stage};
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

/// `--explain`: which packets (capture number, packet number), from `N` or `FILE:N`.
fn explain_targets(args: &ReplayArgs) -> Result<Vec<(usize, u64)>, ExitCode> {
    let mut out = Vec::new();
    for spec in &args.explain {
        let (file, n) = match spec.rsplit_once(':') {
            Some((f, n)) => (Some(f), n),
            None => (None, spec.as_str()),
        };
        let n = match n.parse::<u64>() {
            Ok(n) if n > 0 => n,
            _ => {
                return Err(usage_error(format!(
                    "--explain {spec}: expected a packet number from 1 (as Wireshark numbers frames), or FILE:N"
                )))
            }
        };
        let fi = match file {
            None => 0,
            Some(f) => match args.captures.iter().position(|c| c.as_os_str() == f) {
                Some(i) => i,
                None => {
                    return Err(usage_error(format!(
                        "--explain {spec}: {f} is not one of the captures ({})",
                        args.captures
                            .iter()
                            .map(|c| c.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )))
                }
            },
        };
        if !out.contains(&(fi, n)) {
            out.push((fi, n));
        }
    }
    Ok(out)
}

/// `--explain`: a single-threaded pass of its own; the explanations on standard
/// output (text, or a JSON array with --json).
fn explain(args: &ReplayArgs, cfg: &ReplayConfig) -> Result<ExitCode, ExitCode> {
    if args.json.as_ref().is_some_and(|j| j.as_os_str() != "-") {
        return Err(usage_error(
            "--explain prints its explanations on standard output: write --json (not --json=FILE) for JSON",
        ));
    }
    let wanted = explain_targets(args)?;
    let cf = counterfactual(args);
    let found = pipeline::explain::explain(cfg, &wanted, cf);
    let name = |fi: usize| cfg.captures[fi].display().to_string();
    let rules = |g: usize| cfg.rulesets[g].label.clone();
    let mut text = String::new();
    let mut json = Vec::new();
    for e in &found.explanations {
        let policy = &found.policies[e.generation];
        if args.json.is_some() {
            json.push(e.json(policy, &name(e.id.0), &rules(e.generation)));
        } else {
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(&e.text(policy, &name(e.id.0), &rules(e.generation)));
        }
    }
    if args.json.is_some() {
        let v = if cf.is_aws() {
            serde_json::Value::Array(json)
        } else {
            // Not AWS: said in the data too.
            serde_json::json!({
                // As verdict lines tag it: `stateless-sg`, `stateful-nacl`.
                "counterfactual": vpcgate::report::counterfactual_flags(cf)
                    .replace("--", "")
                    .replace(' ', "+"),
                "not_aws": format!("a VPC with {}", cf.describe()),
                "explanations": json,
            })
        };
        text = serde_json::to_string_pretty(&v).unwrap_or_default();
        text.push('\n');
    } else if !cf.is_aws() {
        text = format!(
            "NOT AWS ({}): a VPC with {}, for teaching\n\n{text}",
            vpcgate::report::counterfactual_flags(cf),
            cf.describe()
        );
    }
    let code = super::write_stdout(text.as_bytes());
    if code != ExitCode::SUCCESS {
        return Err(code);
    }
    for e in &found.capture_errors {
        eprintln!("error: {e}");
    }
    let mut missing = false;
    for &(fi, n) in &wanted {
        if !found.explanations.iter().any(|e| e.id == (fi, n)) {
            missing = true;
            eprintln!(
                "error: --explain {n}: {} holds {} packet(s)",
                name(fi),
                found.packets[fi]
            );
        }
    }
    if !found.capture_errors.is_empty() {
        return Err(ExitCode::from(1));
    }
    if missing {
        return Err(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

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
