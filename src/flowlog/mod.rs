//! VPC Flow Logs: aggregation windows, records, the custom format, and collation.
//!
//! The engine reports one [`Observation`] per packet and ENI; an [`Aggregator`] (one per
//! worker) folds them into [`FlowRecord`]s per aggregation window; a [`LogFormat`] renders
//! a record as a line of text; [`crate::output::FlowLogWriter`] writes the lines to a file.
//!
//! A [`Collator`] merges the runs of records that workers close into the order of
//! [`FlowRecord::sort_key`], with NODATA and merged SKIPDATA records, as a pure
//! function (no threads): the threaded pipeline, tests and later live mode share it.
//!
//! What this module does not do: decide which packets are observed (the engine).
//!
//! The decisions taken where AWS leaves a choice (manual: "Flow-log records"):
//! - Windows are aligned to multiples of the interval in Unix time; `start`/`end` are the
//!   floor seconds of a record's earliest and latest packet.
//! - A flow whose packets were partly accepted and partly rejected in one window gives two
//!   records (the action is part of the key).
//! - A NODATA record spans its whole window: `start` is the window's first second and
//!   `end` its last (window start + interval − 1). Its packet-derived fields print `-`;
//!   the ENI's metadata (account, interface, VPC, subnet, instance, region, AZ) prints in
//!   every format.
//! - `tcp-flags` is 0 for non-TCP records, never `-` in a record of traffic.
//! - Fields vpcgate cannot know (sublocations, AWS service names, ECS metadata,
//!   `reject-reason`) print `-`; so does any empty metadata string.
//! - A custom format may name each field once; fields of versions 9 and later are refused.
//!
//! ```
//! use std::net::IpAddr;
//! use vpcgate::flowlog::{Aggregator, EniMeta, LogFormat, Observation};
//! use vpcgate::model::{Action, Direction};
//! use vpcgate::wire::packet::Timestamp;
//!
//! let (client, eni_ip): (IpAddr, IpAddr) = ("172.31.16.139".parse().unwrap(), "172.31.16.21".parse().unwrap());
//! let ssh = Observation {
//!     eni: vpcgate::model::EniNum(0), direction: Direction::Ingress, action: Action::Accept,
//!     srcaddr: client, dstaddr: eni_ip, pkt_srcaddr: client, pkt_dstaddr: eni_ip,
//!     srcport: 20641, dstport: 22, protocol: 6, bytes: 60, tcp_flags: 0x02, traffic_path: None,
//! };
//! let mut agg = Aggregator::new(600);
//! agg.observe(&ssh, Timestamp::from_secs_nanos(1418530010, 0), 1);
//! let mut records = Vec::new();
//! agg.close_all(&mut records);
//!
//! let meta = EniMeta {
//!     interface_id: "eni-1235b8ca123456789".into(), account_id: "123456789010".into(),
//!     ..EniMeta::default()
//! };
//! let mut line = Vec::new();
//! LogFormat::default_format().write_record(&records[0], &meta, &mut line);
//! assert_eq!(
//!     String::from_utf8(line).unwrap(),
//!     "2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 1 60 1418530010 1418530010 ACCEPT OK\n"
//! );
//! ```

mod aggregate;
mod collate;
mod format;
mod record;

pub use aggregate::{Aggregator, ClosedWindow};
pub use collate::{Collator, Run, MAX_NODATA_GAP_WINDOWS};
pub use format::{EniMeta, Field, FormatError, LogFormat, FIELDS_URL};
pub use record::{aws_tcp_flags, FlowRecord, LogStatus, Observation};
