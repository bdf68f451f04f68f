//! `vpcgate craft`: a small capture from a written story.

use clap::Args;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use super::usage_error;

#[derive(Args, Debug)]
pub(crate) struct CraftArgs {
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

pub(crate) fn craft(args: CraftArgs) -> ExitCode {
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
    let span = |t: vpcgate::wire::packet::Timestamp| {
        format!("{}.{:03}", t.secs(), t.subsec_nanos() / 1_000_000)
    };
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
