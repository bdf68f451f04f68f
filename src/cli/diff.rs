//! `vpcgate diff`: the same captures replayed under two rulesets, side by side, and
//! the flows whose outcome changes.

use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use vpcgate::analysis::diff::{DiffReport, Differ, PacketRef, Side};
use vpcgate::capture::CaptureReader;
use vpcgate::engine::{flow_shard, Decision, Worker, WorkerConfig};
use vpcgate::policy::Policy;
use vpcgate::wire::packet;

use super::usage_error;

pub(crate) const DIFF_HELP: &str = "\
Replays the captures once under the old ruleset (--rules) and once under the new one
(--rules-after), through the same engine as `vpcgate replay`, and lists the packets
whose verdict changes: first totalled by the rule that rejects them (after the
change, or before it for newly accepted packets), then grouped by flow pattern
(protocol, addresses, the service port, the clients' ports: up to three listed, else
their range) and by the rule responsible on each side: for a REJECT the check and rule
that denied it, for an ACCEPT what let it through there (a NACL entry, an SG rule, a
tracked connection).

Examples:
  # The SecureCart fix: open the app NACL's reply rules to 1024-65535.
  sed 's/ports = \"32768-61000\"/ports = \"1024-65535\"/' rulesets/securecart.toml > fixed.toml
  vpcgate diff --rules rulesets/securecart.toml --rules-after fixed.toml pcaps/securecart.pcap

  # The same, and a page to look at (the new ruleset's replay, the changes listed):
  vpcgate diff --rules rulesets/securecart.toml --rules-after fixed.toml pcaps/securecart.pcap --report diff.html

  # Gate a rule change in CI on last week's traffic (exit 1 if anything is newly
  # rejected), as JSON:
  vpcgate diff --rules ./vpc-main/ --rules-after ./vpc-branch/ week.pcap --json

Exit status: 0 nothing newly rejected (newly accepted packets are fine); 1 some
packet newly rejected; 2 bad usage, a ruleset that does not load, or a capture that
cannot be read (missing, not a capture, or damaged: the diff of what was read is
printed, and it is incomplete).";

#[derive(Args, Debug)]
pub(crate) struct DiffArgs {
    /// Capture files (pcap or pcapng), replayed in order as one stream; `-` reads
    /// standard input.
    #[arg(required = true, value_name = "CAPTURE")]
    captures: Vec<PathBuf>,

    /// The ruleset before the change: a TOML file, an `aws ec2 describe-*` JSON
    /// file, or a directory of such files. Repeatable: all are merged into one VPC.
    #[arg(long, required = true, value_name = "PATH")]
    rules: Vec<PathBuf>,

    /// The ruleset after the change, in the same forms. Repeatable.
    #[arg(long = "rules-after", required = true, value_name = "PATH")]
    rules_after: Vec<PathBuf>,

    /// Keep only this VPC's objects when the exports list several VPCs.
    #[arg(long, value_name = "VPC_ID")]
    vpc: Option<String>,

    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,

    /// Accepted for the same command line as `replay`; diff runs both rulesets side
    /// by side on one thread, and its output is the same for every value (it sets
    /// the workers of the --report replay).
    #[arg(long, value_name = "N")]
    workers: Option<usize>,

    /// Also write a page for people to PATH, as `replay --report` does: the captures
    /// under the new ruleset (timeline, rejected flows, coverage, diagram), with the
    /// packets whose verdict changes from the old ruleset listed under "Stateful and
    /// stateless". One self-contained HTML file; replays the captures once more.
    #[arg(long, value_name = "PATH")]
    report: Option<PathBuf>,
}

pub(crate) fn diff(args: DiffArgs) -> ExitCode {
    match run(&args) {
        Ok(code) | Err(code) => code,
    }
}

fn label(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(" + ")
}

fn run(args: &DiffArgs) -> Result<ExitCode, ExitCode> {
    if let Some(w) = args.workers {
        if w == 0 || w > 1024 {
            return Err(usage_error(format!("--workers {w}: give 1 to 1024")));
        }
    }
    if args
        .captures
        .iter()
        .filter(|p| p.as_os_str() == "-")
        .count()
        > 1
    {
        return Err(usage_error("`-` (standard input) is named more than once"));
    }
    check_report_path(args)?;
    let before = load(&args.rules, "--rules", args)?;
    let after = load(&args.rules_after, "--rules-after", args)?;
    if let Err(msg) = vpcgate::preflight::check_captures(&args.captures) {
        eprintln!("vpcgate: {msg}; nothing was compared");
        return Err(ExitCode::from(2));
    }
    let (eni_ids, _) = vpcgate::pipeline::eni_table(&[&before, &after]);
    let old = Arc::new(Policy::compile(Arc::new(before), &eni_ids));
    let new = Arc::new(Policy::compile(Arc::new(after), &eni_ids));
    let (report, errors) = compare(
        &args.captures,
        &old,
        &new,
        &label(&args.rules),
        &label(&args.rules_after),
    );
    if args.json {
        let mut v = report.to_json();
        v["captures"] = args
            .captures
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        v["capture_errors"] = errors.clone().into();
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        print!("{}", text(&report, args.captures.len()));
    }
    if !errors.is_empty() {
        for e in &errors {
            eprintln!("error: {e}");
        }
        eprintln!(
            "vpcgate: {} capture file(s) could not be read to the end: the diff above covers only the packets before that",
            errors.len()
        );
        return Err(ExitCode::from(2));
    }
    if let Some(path) = &args.report {
        write_report(args, path, &new, &report)?;
    }
    Ok(if report.newly_rejected > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `--report` is an output: never an input, never standard output.
fn check_report_path(args: &DiffArgs) -> Result<(), ExitCode> {
    let Some(path) = &args.report else {
        return Ok(());
    };
    if path.as_os_str() == "-" {
        return Err(usage_error(
            "--report writes an HTML file: name one, e.g. --report diff.html",
        ));
    }
    let rules: Vec<PathBuf> = args
        .rules
        .iter()
        .chain(&args.rules_after)
        .cloned()
        .collect();
    vpcgate::preflight::check_distinct(&args.captures, &rules, &[], &[("--report", path)])
        .map_err(usage_error)
}

/// The `--report` page: a replay of the captures under the new ruleset, with the
/// packets whose verdict changes listed as flips against the old one.
fn write_report(
    args: &DiffArgs,
    path: &std::path::Path,
    new: &Arc<Policy>,
    diff: &DiffReport,
) -> Result<(), ExitCode> {
    use vpcgate::report::html::{render, Flip, Flips, Report, TOP_FLOWS};
    let cfg = vpcgate::pipeline::ReplayConfig {
        captures: args.captures.clone(),
        rulesets: vec![vpcgate::pipeline::RulesetAt {
            from: None,
            vpc: new.vpc.clone(),
            label: label(&args.rules_after),
        }],
        flow_log: None,
        log_format: vpcgate::flowlog::LogFormat::default_format(),
        interval: 600,
        nodata: false,
        verdicts: None,
        accepted: None,
        rejected: None,
        workers: args
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        progress: false,
        max_flows: Some(super::replay::default_max_flows()),
        report: true,
    };
    let summary = vpcgate::pipeline::run(&cfg, None).map_err(|e| {
        eprintln!("vpcgate: {e}");
        ExitCode::from(2)
    })?;
    let mut page = Report::from_replay(&summary, &cfg);
    page.title = format!(
        "vpcgate diff: {} to {}",
        diff.before_label, diff.after_label
    );
    page.notes.insert(
        0,
        format!(
            "The verdicts on this page are those of the new ruleset ({}). Against the old one ({}), {} packet(s) are newly rejected and {} newly accepted: they are listed under \"Stateful and stateless\".",
            diff.after_label, diff.before_label, diff.newly_rejected, diff.newly_accepted
        ),
    );
    page.stateful.flips = Some(Flips {
        not_aws: false,
        what: format!("from {}", diff.before_label),
        rows: diff
            .groups
            .iter()
            .take(TOP_FLOWS)
            .map(|g| Flip {
                packets: g.packets,
                change: g.kind.as_str().to_string(),
                flow: g.pattern(),
                rule: format!("before: {}; after: {}", g.before, g.after),
            })
            .collect(),
    });
    vpcgate::output::report::write_report(path, &render(&page)).map_err(|e| {
        eprintln!("vpcgate: cannot write {}: {e}", path.display());
        ExitCode::from(2)
    })
}

fn load(paths: &[PathBuf], flag: &str, args: &DiffArgs) -> Result<vpcgate::model::Vpc, ExitCode> {
    super::load_ruleset(
        paths,
        args.vpc.as_deref(),
        &format!("the ruleset of {flag}"),
        "; nothing was compared",
    )
}

/// Every packet of `captures` through one worker per ruleset, side by side; the
/// grouped changes and the captures that could not be read to the end.
fn compare(
    captures: &[PathBuf],
    old: &Arc<Policy>,
    new: &Arc<Policy>,
    old_label: &str,
    new_label: &str,
) -> (DiffReport, Vec<String>) {
    let cfg = WorkerConfig {
        flow_log: false,
        max_flows: Some(super::replay::default_max_flows()),
        ..WorkerConfig::default()
    };
    let mut a = Worker::new(old.clone(), cfg);
    let mut b = Worker::new(new.clone(), cfg);
    let mut differ = Differ::default();
    let mut errors = Vec::new();
    let mut seq = 0u64;
    for (file, path) in captures.iter().enumerate() {
        let mut reader = match CaptureReader::open(path) {
            Ok(r) => r,
            Err(e) => {
                errors.push(e.to_string());
                continue;
            }
        };
        let mut index = 0u64;
        loop {
            let raw = match reader.next_packet() {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => {
                    errors.push(e.to_string());
                    break;
                }
            };
            index += 1;
            seq += 1;
            let at = PacketRef {
                file: file as u32,
                index,
            };
            let Ok(pkt) = packet::parse(raw.link_type, raw.data) else {
                // Not IP or unreadable: not evaluated under either ruleset.
                continue;
            };
            let da: Decision = a.handle(&pkt, raw.ts, seq, flow_shard(&pkt, old));
            let db: Decision = b.handle(&pkt, raw.ts, seq, flow_shard(&pkt, new));
            a.housekeeping(raw.ts);
            b.housekeeping(raw.ts);
            differ.add(
                at,
                &pkt,
                Side {
                    policy: old,
                    decision: &da,
                },
                Side {
                    policy: new,
                    decision: &db,
                },
            );
        }
    }
    (differ.finish(old_label, new_label, seq), errors)
}

/// The report as text: the totals, then each kind of change, group by group.
pub(crate) fn text(r: &DiffReport, captures: usize) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "vpcgate diff: {} packet(s) from {captures} capture(s)",
        r.packets
    );
    let _ = writeln!(o, "  before: {}", r.before_label);
    let _ = writeln!(o, "  after:  {}", r.after_label);
    let _ = writeln!(o, "  newly rejected {:>10}", r.newly_rejected);
    let _ = writeln!(o, "  newly accepted {:>10}", r.newly_accepted);
    if r.not_evaluated > 0 {
        let _ = writeln!(
            o,
            "  evaluated on one side only {:>10}  (an ENI in one ruleset only)",
            r.not_evaluated
        );
    }
    if r.ungrouped > 0 {
        let _ = writeln!(
            o,
            "  {} changed packet(s) belong to flow groups beyond the first {} and are counted above, not listed below",
            r.ungrouped,
            vpcgate::analysis::diff::MAX_GROUPS
        );
    }
    r.groups_text(&mut o, "", usize::MAX);
    o
}
