//! `vpcgate synth`: a large, realistic capture for benchmarks, with progress.

use clap::Args;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use vpcgate::preflight::check_distinct;

use super::usage_error;

pub(crate) const SYNTH_HELP: &str = "\
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
pub(crate) struct SynthArgs {
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
pub(crate) struct CountingPcap<W> {
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

pub(crate) fn synth(args: SynthArgs) -> ExitCode {
    use vpcgate::synth::bulk::{self, SynthConfig};
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
    let (vpc, label) = match synth_ruleset(&args) {
        Ok(v) => v,
        Err(code) => return code,
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
    let bar = progress_bar(&args);
    let write = |out: Box<dyn std::io::Write>| match &bar {
        Some(bar) => bulk::generate(vpc, &cfg, CountingPcap::new(out, bar.clone())),
        None => bulk::generate(vpc, &cfg, out),
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
        Err(bulk::SynthError::Io(e)) => {
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
    print_done(&s, &label, started.elapsed().as_secs_f64(), &args.output);
    ExitCode::SUCCESS
}

/// The ruleset whose ENIs send and receive the traffic, and its label.
fn synth_ruleset(args: &SynthArgs) -> Result<(vpcgate::model::Vpc, String), ExitCode> {
    use vpcgate::synth::bulk;
    Ok(if args.rules.is_empty() {
        (
            bulk::builtin_vpc(),
            format!("{} (built in)", bulk::BUILTIN_RULESET),
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
                return Err(ExitCode::from(2));
            }
        }
    })
}

/// A progress bar on standard error when it is a terminal (and not `--no-progress`).
fn progress_bar(args: &SynthArgs) -> Option<indicatif::ProgressBar> {
    (!args.no_progress && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(args.packets);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} synth [{bar:40}] {human_pos}/{human_len} packets {per_sec} eta {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    })
}

/// The one-line account of what was written, and the generator's notes.
fn print_done(
    s: &vpcgate::synth::bulk::SynthSummary,
    label: &str,
    secs: f64,
    output: &std::path::Path,
) {
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
        if output.as_os_str() == "-" {
            "standard output".to_string()
        } else {
            output.display().to_string()
        }
    );
    for n in &s.notes {
        eprintln!("  note: {n}");
    }
}
