//! Writes the bundled captures, `pcaps/securecart.pcap` and `pcaps/lesson-stateful.pcap`,
//! from [`vpcgate::synth::securecart_demo`] and [`vpcgate::synth::lesson_stateful`]. Run from the repository root:
//!
//! ```text
//! cargo run --example securecart_pcap
//! ```
//!
//! A test checks that the committed file is exactly what this writes.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)] // not the core: see clippy.toml
use vpcgate::capture::PcapWriter;

fn main() -> std::io::Result<()> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps");
    for (name, t) in [
        ("securecart.pcap", vpcgate::synth::securecart_demo()),
        ("lesson-stateful.pcap", vpcgate::synth::lesson_stateful()),
    ] {
        let path = dir.join(name);
        let mut w = PcapWriter::create(&path)?;
        t.write_pcap(&mut w)?;
        w.finish()?;
        println!("wrote {} packets to {}", t.len(), path.display());
    }
    Ok(())
}
