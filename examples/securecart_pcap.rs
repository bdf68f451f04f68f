//! Writes the bundled demo capture, `pcaps/securecart.pcap`, from
//! [`vpcgate::synth::securecart_demo`]. Run from the repository root:
//!
//! ```text
//! cargo run --example securecart_pcap
//! ```
//!
//! A test checks that the committed file is exactly what this writes.
use vpcgate::capture::PcapWriter;

fn main() -> std::io::Result<()> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps/securecart.pcap");
    let mut w = PcapWriter::create(&path)?;
    let t = vpcgate::synth::securecart_demo();
    t.write_pcap(&mut w)?;
    w.finish()?;
    println!("wrote {} packets to {}", t.len(), path.display());
    Ok(())
}
