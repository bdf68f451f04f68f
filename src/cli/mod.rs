//! The binary's command line: clap definitions, one module per subcommand (its flags,
//! how they resolve into the library's config, its exit statuses and messages), and the
//! few helpers they share. Nothing below this layer sees clap.

pub(crate) mod bench;
pub(crate) mod check;
pub(crate) mod craft;
pub(crate) mod diff;
pub(crate) mod lint;
pub(crate) mod live;
pub(crate) mod replay;
pub(crate) mod synth;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

pub(crate) fn usage_error(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(2)
}

/// Writes `bytes` to standard output; a closed pipe (`| head`) is no error.
pub(crate) fn write_stdout(bytes: &[u8]) -> ExitCode {
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
pub(crate) fn manual() -> ExitCode {
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

pub(crate) fn load_rules(paths: &[PathBuf]) -> Result<vpcgate::model::Vpc, ExitCode> {
    load_ruleset(paths, None, "the ruleset", "")
}

/// Loads a ruleset (`--vpc` keeps one VPC of the exports), prints its warnings, or
/// prints its problems and `vpcgate: WHAT did not load (N problem(s))AFTER` and gives
/// exit status 2.
pub(crate) fn load_ruleset(
    paths: &[PathBuf],
    vpc: Option<&str>,
    what: &str,
    after: &str,
) -> Result<vpcgate::model::Vpc, ExitCode> {
    let opts = vpcgate::load::LoadOptions {
        vpc: vpc.map(str::to_string),
    };
    match vpcgate::load::load_paths_with(paths, &opts) {
        Ok(v) => {
            v.warnings.iter().for_each(|w| eprintln!("warning: {w}"));
            Ok(v)
        }
        Err(e) => {
            eprintln!("{e}");
            eprintln!(
                "vpcgate: {what} did not load ({} problem(s)){after}",
                e.0.len()
            );
            Err(ExitCode::from(2))
        }
    }
}

pub(crate) fn stop_flag() -> Arc<std::sync::atomic::AtomicBool> {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(sig, stop.clone());
    }
    stop
}
