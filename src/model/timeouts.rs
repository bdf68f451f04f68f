//! Connection-tracking idle timeouts: the VPC's defaults and an ENI's overrides.

/// Connection-tracking idle timeouts in seconds (manual: "Connection tracking").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConntrackTimeouts {
    /// `TcpEstablishedTimeout`: a SYN-ACK or any packet seen in both directions.
    pub tcp_established: u32,
    /// TCP before it is established.
    pub tcp_unestablished: u32,
    /// TCP after an RST, or FIN from both sides; then the entry is removed.
    pub tcp_closing: u32,
    /// `UdpTimeout`: one direction, or a single request and reply.
    pub udp: u32,
    /// `UdpStreamTimeout`: at least two packets seen in each direction.
    pub udp_stream: u32,
    /// ICMP, keyed by id.
    pub icmp: u32,
    /// Other protocols, keyed by addresses and protocol.
    pub other: u32,
}

impl Default for ConntrackTimeouts {
    fn default() -> Self {
        ConntrackTimeouts {
            tcp_established: 432_000,
            tcp_unestablished: 120,
            tcp_closing: 5,
            udp: 30,
            udp_stream: 180,
            icmp: 30,
            other: 600,
        }
    }
}

/// Overrides of [`ConntrackTimeouts`], as a ruleset or `ConnectionTrackingConfiguration`
/// gives them; `None` keeps the value from the level above.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConntrackOverrides {
    pub tcp_established: Option<u32>,
    pub tcp_unestablished: Option<u32>,
    pub tcp_closing: Option<u32>,
    pub udp: Option<u32>,
    pub udp_stream: Option<u32>,
    pub icmp: Option<u32>,
    pub other: Option<u32>,
}

impl ConntrackOverrides {
    pub fn apply(&self, base: ConntrackTimeouts) -> ConntrackTimeouts {
        ConntrackTimeouts {
            tcp_established: self.tcp_established.unwrap_or(base.tcp_established),
            tcp_unestablished: self.tcp_unestablished.unwrap_or(base.tcp_unestablished),
            tcp_closing: self.tcp_closing.unwrap_or(base.tcp_closing),
            udp: self.udp.unwrap_or(base.udp),
            udp_stream: self.udp_stream.unwrap_or(base.udp_stream),
            icmp: self.icmp.unwrap_or(base.icmp),
            other: self.other.unwrap_or(base.other),
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == ConntrackOverrides::default()
    }
}
