//! What the engine reports per packet ([`Observation`]) and what a flow log holds per
//! window ([`FlowRecord`]).
//!
//! No I/O and no clock here: plain data and the TCP-flag rule of AWS's `tcp-flags` field.
#![deny(clippy::disallowed_methods, clippy::disallowed_types)]

use std::cmp::Ordering;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use crate::model::{Action, Direction, EniNum};
use crate::wire::packet::tcp_flags;

/// What the engine reports for one packet at one ENI (one direction).
///
/// A packet between two ENIs gives two observations: the sender's egress and, if the
/// packet got past the sender's checks, the receiver's ingress (manual: "Where a packet is evaluated").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Observation {
    /// ENI numbers sort like interface ids.
    pub eni: EniNum,
    pub direction: Direction,
    pub action: Action,
    /// Record addresses: the ENI's side already shows its primary private IPv4 (§6.9).
    pub srcaddr: IpAddr,
    pub dstaddr: IpAddr,
    /// The packet's own addresses.
    pub pkt_srcaddr: IpAddr,
    pub pkt_dstaddr: IpAddr,
    /// 0 for ICMP and portless protocols.
    pub srcport: u16,
    pub dstport: u16,
    pub protocol: u8,
    /// IP bytes of this packet (IP total length), not counting the link layer.
    pub bytes: u32,
    /// Raw TCP flags byte of the packet (0 for non-TCP).
    pub tcp_flags: u8,
    /// `Some(1)` (destination inside the VPC) or `Some(8)` (outside) for egress; `None`
    /// for ingress.
    pub traffic_path: Option<u8>,
}

/// A record's `log-status`.
///
/// vpcgate writes `SKIPDATA` only when the open flow-log records reach the
/// `--max-flows` bound (see [`crate::flowlog::Aggregator::set_limit`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LogStatus {
    /// `OK`: a record of traffic.
    Ok,
    /// `NODATA`: no traffic to or from the ENI in the window.
    NoData,
    /// `SKIPDATA`: packets of the ENI in the window that no record counts, because
    /// of a capacity limit. `start`/`end` span those packets.
    SkipData,
}

impl LogStatus {
    /// The text AWS prints: `OK` or `NODATA`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogStatus::Ok => "OK",
            LogStatus::NoData => "NODATA",
            LogStatus::SkipData => "SKIPDATA",
        }
    }
}

impl fmt::Display for LogStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One flow-log record: one direction of one flow at one ENI in one window, one action.
///
/// Records order (`Ord`) by [`FlowRecord::sort_key`] — window start, ENI number, the
/// capture sequence number of the record's first packet — which is the output order of
/// the manual, "Flow-log records"; ties (two records of the same packet at the same ENI) are broken by
/// the remaining fields, so sorting is total and deterministic.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FlowRecord {
    /// Start of the aggregation window, Unix seconds, a multiple of the interval.
    pub window_start: u64,
    pub eni: EniNum,
    /// Global capture sequence number of the record's first packet.
    pub first_seq: u64,
    pub direction: Direction,
    pub action: Action,
    pub srcaddr: IpAddr,
    pub dstaddr: IpAddr,
    pub pkt_srcaddr: IpAddr,
    pub pkt_dstaddr: IpAddr,
    pub srcport: u16,
    pub dstport: u16,
    pub protocol: u8,
    pub packets: u64,
    pub bytes: u64,
    /// Unix seconds (floor) of the earliest packet of the record.
    pub start: u64,
    /// Unix seconds (floor) of the latest packet of the record.
    pub end: u64,
    /// AWS bits, OR-ed over the window: FIN=1, SYN=2, RST=4, SYN-ACK=18 (see
    /// [`aws_tcp_flags`]); 0 for non-TCP records.
    pub tcp_flags: u8,
    pub traffic_path: Option<u8>,
    pub log_status: LogStatus,
}

impl FlowRecord {
    /// A `NODATA` record for ENI `eni` and the window starting at `window_start`.
    ///
    /// It spans the whole window: `start` = `window_start`, `end` = `window_start +
    /// interval - 1`, the last whole second inside the window, which is also the largest
    /// `end` a record of traffic in that window can have. (AWS's FL-3 example shows a
    /// 58-second span: AWS's windows are neither aligned nor exactly one interval long.)
    /// The packet fields hold placeholders (unspecified addresses, zeros, ingress, ACCEPT)
    /// that the writer never prints: a NODATA line shows `-` for them.
    pub fn nodata(eni: EniNum, window_start: u64, interval: u32) -> FlowRecord {
        let none = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        FlowRecord {
            window_start,
            eni,
            first_seq: 0,
            direction: Direction::Ingress,
            action: Action::Accept,
            srcaddr: none,
            dstaddr: none,
            pkt_srcaddr: none,
            pkt_dstaddr: none,
            srcport: 0,
            dstport: 0,
            protocol: 0,
            packets: 0,
            bytes: 0,
            start: window_start,
            end: window_start + u64::from(interval.max(1)) - 1,
            tcp_flags: 0,
            traffic_path: None,
            log_status: LogStatus::NoData,
        }
    }

    /// The output order of the manual, "Flow-log records": (window start, ENI number, first packet's
    /// capture sequence number).
    pub fn sort_key(&self) -> (u64, EniNum, u64) {
        (self.window_start, self.eni, self.first_seq)
    }

    /// Whether this is a record of traffic (`log-status` OK).
    pub fn is_ok(&self) -> bool {
        self.log_status == LogStatus::Ok
    }
}

impl PartialOrd for FlowRecord {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for FlowRecord {
    fn cmp(&self, other: &Self) -> Ordering {
        let rest = |r: &FlowRecord| {
            (
                r.log_status,
                r.direction,
                r.action,
                r.srcaddr,
                r.dstaddr,
                r.pkt_srcaddr,
                r.pkt_dstaddr,
                r.srcport,
                r.dstport,
                r.protocol,
            )
        };
        let counters = |r: &FlowRecord| {
            (
                r.start,
                r.end,
                r.packets,
                r.bytes,
                r.tcp_flags,
                r.traffic_path,
            )
        };
        self.sort_key()
            .cmp(&other.sort_key())
            .then_with(|| rest(self).cmp(&rest(other)))
            .then_with(|| counters(self).cmp(&counters(other)))
    }
}

/// One packet's contribution to AWS's `tcp-flags` field, from the raw TCP flags byte.
///
/// AWS reports FIN=1, SYN=2, RST=4 and SYN-ACK=18: the ACK bit (16) counts only together
/// with SYN; PSH, URG, ECE, CWR and ACK alone count for nothing (AWS's documentation of `tcp-flags`).
/// A record's value is the OR over its packets.
///
/// ```
/// use vpcgate::flowlog::aws_tcp_flags;
/// use vpcgate::wire::packet::tcp_flags::{ACK, FIN, PSH, SYN};
/// assert_eq!(aws_tcp_flags(SYN | ACK), 18);
/// assert_eq!(aws_tcp_flags(PSH | ACK), 0);
/// assert_eq!(aws_tcp_flags(FIN | ACK), 1);
/// ```
#[inline]
pub fn aws_tcp_flags(raw: u8) -> u8 {
    let base = raw & (tcp_flags::FIN | tcp_flags::SYN | tcp_flags::RST);
    let syn_ack = tcp_flags::SYN | tcp_flags::ACK;
    if raw & syn_ack == syn_ack {
        base | tcp_flags::ACK
    } else {
        base
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::packet::tcp_flags::{ACK, FIN, PSH, RST, SYN};

    #[test]
    fn tcp_flags_follow_aws_bits() {
        assert_eq!(aws_tcp_flags(0), 0);
        assert_eq!(aws_tcp_flags(SYN), 2);
        assert_eq!(aws_tcp_flags(SYN | ACK), 18);
        assert_eq!(aws_tcp_flags(ACK), 0, "ACK alone is 0, not 16");
        assert_eq!(aws_tcp_flags(PSH | ACK), 0);
        assert_eq!(aws_tcp_flags(FIN | ACK), 1);
        assert_eq!(aws_tcp_flags(RST | ACK), 4);
        assert_eq!(aws_tcp_flags(SYN | 0x40), 2, "SYN+ECE is 2");
        assert_eq!(aws_tcp_flags(0xff), 1 | 2 | 4 | 16);
    }

    #[test]
    fn nodata_spans_the_whole_window() {
        let r = FlowRecord::nodata(crate::model::EniNum(3), 1_200, 600);
        assert_eq!((r.start, r.end), (1_200, 1_799));
        assert_eq!(r.log_status, LogStatus::NoData);
        assert_eq!(r.sort_key(), (1_200, crate::model::EniNum(3), 0));
        let r = FlowRecord::nodata(crate::model::EniNum(3), 1_200, 60);
        assert_eq!((r.start, r.end), (1_200, 1_259));
    }

    #[test]
    fn records_sort_by_window_then_eni_then_first_packet() {
        let a = FlowRecord::nodata(crate::model::EniNum(2), 600, 600);
        let mut b = FlowRecord::nodata(crate::model::EniNum(1), 600, 600);
        b.first_seq = 9;
        let mut c = FlowRecord::nodata(crate::model::EniNum(1), 600, 600);
        c.first_seq = 4;
        let d = FlowRecord::nodata(crate::model::EniNum(0), 1_200, 600);
        let mut v = vec![d.clone(), a.clone(), b.clone(), c.clone()];
        v.sort();
        assert_eq!(v, vec![c, b, a, d]);
    }

    #[test]
    fn log_status_text() {
        assert_eq!(LogStatus::Ok.to_string(), "OK");
        assert_eq!(LogStatus::NoData.to_string(), "NODATA");
    }
}
