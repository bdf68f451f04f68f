//! `vpcgate bench`: the in-memory benchmark a user runs on their own machine, plus the
//! floor of a capture file (`--floor`) and how a capture's flows spread over workers
//! (`--shards`). The measuring is `vpcgate::pipeline::bench`.

use clap::Args;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use vpcgate::pipeline::bench::{self, BenchConfig};

use super::{load_rules, usage_error, write_stdout};

pub(crate) const BENCH_HELP: &str = "\
What it does: generates traffic for the ruleset in memory (as `vpcgate synth`
does, default the SecureCart VPC built in), then measures on this machine:
  - each stage of a replay on one core, in ns per packet of the thread's CPU
    time (waiting for a CPU on a busy machine does not count): reading the
    records, parsing, the engine (NACLs, security groups, connection tracking),
    flow-log aggregation, flow-log formatting, and a whole worker (engine +
    flow-log counting);
  - the whole replay pipeline from memory with the flow log on (to /dev/null),
    in packets per second (wall time) and CPU ns per packet (all threads), for
    1 to N workers (N: the cores, or --workers-max), with the busiest worker's
    share of the packets;
  - peak memory, and the machine: CPU model, cores, kernel, vpcgate version.
Every measurement runs --runs times; the table shows the median (and the best
stage time). Every run must give the same verdicts and flow records; the report
says so. It takes 10 to 40 seconds with the defaults on 2 cores; the
machine's other work adds time, so compare rows measured together.

The table is Markdown: paste it into an issue as it is. --json gives the record,
with `ns_per_packet` per stage, `packets_per_second` per worker count, and the
details (every run's seconds, the machine, the input).

Two more measurements of a capture FILE (classic pcap) instead:
  --floor FILE    the least any packet filter must do: read FILE in 4 MiB blocks
                  and walk every packet's headers (one line: packets, seconds,
                  ns/packet, Mpps, MB/s, a checksum). scripts/bench-whole.sh runs it
                  beside vpcgate replay and tcpdump.
  --shards FILE   how evenly FILE's packets spread over 2, 4, 8 and 16 workers
                  under the ruleset (flows go to workers by a symmetric hash).

Examples:
  # Build optimised first: a debug build's numbers mean little.
  cargo build --release
  target/release/vpcgate bench

  # Your VPC, a larger mix, up to 8 workers, the record to a file:
  vpcgate bench --rules ./my-vpc/ --packets 2000000 --flows 100000 \\
      --workers-max 8 --json=bench.json

  # The floor and the worker spread of a capture:
  vpcgate synth -o /tmp/s.pcap --packets 200000
  vpcgate bench --floor /tmp/s.pcap
  vpcgate bench --shards /tmp/s.pcap

Exit status: 0 done; 2 bad usage or a ruleset that does not load; 1 a capture
that cannot be read, or runs that disagreed (a bug: please report it).";

#[derive(Args, Debug)]
pub(crate) struct BenchArgs {
    /// The ruleset to generate traffic for and replay (same forms as `replay
    /// --rules`; repeatable, merged). Default: the SecureCart VPC of
    /// rulesets/securecart.toml, built in.
    #[arg(long, value_name = "PATH")]
    rules: Vec<PathBuf>,

    /// Packets to generate.
    #[arg(long, value_name = "N", default_value_t = 500_000)]
    packets: u64,

    /// Flows open at once in the generated traffic (as `vpcgate synth --flows`).
    #[arg(long, value_name = "N", default_value_t = 50_000)]
    flows: usize,

    /// Replay with 1 to N workers. Default: the cores this process may use, at most 64.
    #[arg(long = "workers-max", value_name = "N")]
    workers_max: Option<usize>,

    /// Repetitions of every measurement; the median is shown.
    #[arg(long, value_name = "R", default_value_t = 3)]
    runs: usize,

    /// Print the report as JSON instead of the table; `--json=FILE` writes the JSON
    /// to FILE and prints the table as usual.
    #[arg(
        long,
        value_name = "FILE",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "-"
    )]
    json: Option<PathBuf>,

    /// Instead: the floor of a classic pcap FILE (read it, walk every packet's
    /// headers), one line.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["shards", "json"])]
    floor: Option<PathBuf>,

    /// Instead: how evenly FILE's packets spread over 2, 4, 8 and 16 workers under
    /// the ruleset.
    #[arg(long, value_name = "FILE", conflicts_with = "json")]
    shards: Option<PathBuf>,

    /// Print no progress lines on standard error.
    #[arg(long, short)]
    quiet: bool,
}

pub(crate) fn bench(args: BenchArgs) -> ExitCode {
    if let Some(path) = &args.floor {
        if !args.rules.is_empty() {
            return usage_error("--floor reads no ruleset: leave out --rules");
        }
        return match bench::floor(path) {
            Ok(line) => write_stdout(format!("{line}\n").as_bytes()),
            Err(e) => {
                eprintln!("vpcgate bench --floor: {e}");
                ExitCode::from(1)
            }
        };
    }
    for (name, v) in [("--packets", args.packets), ("--runs", args.runs as u64)] {
        if v == 0 {
            return usage_error(format!("{name} 0: give at least 1"));
        }
    }
    if args.flows == 0 {
        return usage_error("--flows 0: give at least 1");
    }
    if args.workers_max == Some(0) {
        return usage_error("--workers-max 0: give at least 1");
    }
    let (vpc, rules) = if args.rules.is_empty() {
        (
            vpcgate::synth::bulk::builtin_vpc(),
            "SecureCart (built in)".to_string(),
        )
    } else {
        match load_rules(&args.rules) {
            Ok(v) => (
                v,
                args.rules
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" + "),
            ),
            Err(code) => return code,
        }
    };
    if let Some(path) = &args.shards {
        return match bench::shard_spread(path, vpc) {
            Ok(text) => write_stdout(text.as_bytes()),
            Err(e) => {
                eprintln!("vpcgate bench --shards: {e}");
                ExitCode::from(1)
            }
        };
    }
    let cfg = BenchConfig {
        vpc,
        rules,
        packets: args.packets,
        flows: args.flows,
        workers_max: args.workers_max.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(64)
        }),
        runs: args.runs,
        max_flows: Some(super::replay::default_max_flows()),
    };
    let show = !args.quiet;
    let tty = std::io::stderr().is_terminal();
    let mut progress = |what: &str| {
        if show {
            if tty {
                eprint!("\r\x1b[2Kbench: {what} …");
            } else {
                eprintln!("bench: {what}");
            }
        }
    };
    let report = bench::run(&cfg, &mut progress);
    if show && tty {
        eprint!("\r\x1b[2K");
    }
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            eprintln!("vpcgate bench: {e}");
            return ExitCode::from(1);
        }
    };
    let json = || {
        let mut s = serde_json::to_string_pretty(&report.to_json()).expect("JSON");
        s.push('\n');
        s
    };
    let code = match &args.json {
        Some(p) if p.as_os_str() == "-" => write_stdout(json().as_bytes()),
        Some(p) => {
            if let Err(e) = std::fs::write(p, json()) {
                eprintln!("vpcgate bench: cannot write {}: {e}", p.display());
                return ExitCode::from(1);
            }
            write_stdout(report.to_text().as_bytes())
        }
        None => write_stdout(report.to_text().as_bytes()),
    };
    if !report.identical {
        eprintln!(
            "vpcgate bench: the runs did not all give the same verdicts and flow records: \
             a bug, please report it with this output"
        );
        return ExitCode::from(1);
    }
    code
}
