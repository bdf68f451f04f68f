//! The `vpcgate` binary: flags are parsed by clap, resolved into a validated
//! [`vpcgate::pipeline::ReplayConfig`], and handed to the library. Nothing below the
//! CLI layer sees clap.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod cli;
use cli::bench::{BenchArgs, BENCH_HELP};
use cli::check::{CheckArgs, CHECK_HELP};
use cli::craft::CraftArgs;
use cli::diff::{DiffArgs, DIFF_HELP};
use cli::lint::{LintArgs, LINT_HELP};
use cli::live::{LabCommand, TapArgs, LAB_HELP, TAP_HELP};
use cli::replay::{ReplayArgs, REPLAY_HELP};
use cli::synth::{SynthArgs, SYNTH_HELP};
use cli::{usage_error, write_stdout};

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
    /// One hypothetical connection and its replies through the engine, each check
    /// with the rule that decided it.
    #[command(after_help = CHECK_HELP)]
    Check(CheckArgs),
    /// Replay captures under an old and a new ruleset and list the flows whose
    /// outcome changes (exit 1 when anything is newly rejected).
    #[command(after_help = DIFF_HELP)]
    Diff(DiffArgs),
    /// Find a ruleset's mistakes: shadowed NACL entries, replies dropped at ephemeral
    /// ports, unused groups, world-open admin ports, missing IPv6 twins, quotas.
    #[command(after_help = LINT_HELP)]
    Lint(LintArgs),
    /// Write a small capture from a written story (hosts, connections, pings, times):
    /// the same story gives the same bytes. The story format: `src/craft.rs`, README.
    Craft(CraftArgs),
    /// Write a large, realistic capture for benchmarks (the same bytes for the same
    /// flags).
    #[command(after_help = SYNTH_HELP)]
    Synth(SynthArgs),
    /// Measure this machine: per-stage ns/packet and whole-replay packets/s for 1 to N
    /// workers on traffic generated in memory, peak memory; a table to paste into an
    /// issue, or --json.
    #[command(after_help = BENCH_HELP)]
    Bench(BenchArgs),
    /// The live data plane: vpcgate as the VPC router between TAP devices.
    #[command(after_help = TAP_HELP)]
    Tap(TapArgs),
    /// A ruleset's VPC as network namespaces on this box, vpcgate between them.
    #[command(subcommand, after_help = LAB_HELP)]
    Lab(LabCommand),
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
        Command::Manual => cli::manual(),
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
        Command::Replay(args) => cli::replay::replay(*args),
        Command::Synth(args) => cli::synth::synth(args),
        Command::Lint(args) => cli::lint::lint(args),
        Command::Diff(args) => cli::diff::diff(args),
        Command::Craft(args) => cli::craft::craft(args),
        Command::Check(args) => cli::check::check(args),
        Command::Tap(args) => cli::live::tap(args),
        Command::Lab(cmd) => cli::live::lab(cmd),
        Command::Bench(args) => cli::bench::bench(args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}
