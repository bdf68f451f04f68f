//! The flow-log record format: the fields of versions 2 to 8, the custom-format parser
//! and the text form of one record.
//!
//! This module renders bytes into a `Vec<u8>`; it opens no file (see [`super::writer`]).
//!
//! ```
//! use vpcgate::flowlog::{Field, LogFormat};
//!
//! let format = LogFormat::parse("${version} ${interface-id} ${srcaddr} ${tcp-flags} ${action}").unwrap();
//! assert_eq!(format.version(), 3); // tcp-flags is a version 3 field
//! assert_eq!(format.header(), "version interface-id srcaddr tcp-flags action");
//! assert_eq!(format.fields()[2], Field::Srcaddr);
//!
//! let err = LogFormat::parse("${version} ${srcadr}").unwrap_err();
//! assert!(err.to_string().contains("did you mean `${srcaddr}`"));
//! ```
#![deny(clippy::disallowed_methods, clippy::disallowed_types)]

use crate::model::PROTO_TCP;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::record::{FlowRecord, LogStatus};
use crate::model::{Action, Direction};

/// Where AWS lists the fields.
pub const FIELDS_URL: &str =
    "https://docs.aws.amazon.com/vpc/latest/userguide/flow-log-records.html";

/// One field of a VPC flow-log record, versions 2 to 8, in the order of AWS's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    // version 2
    Version,
    AccountId,
    InterfaceId,
    Srcaddr,
    Dstaddr,
    Srcport,
    Dstport,
    Protocol,
    Packets,
    Bytes,
    Start,
    End,
    Action,
    LogStatus,
    // version 3
    VpcId,
    SubnetId,
    InstanceId,
    TcpFlags,
    Type,
    PktSrcaddr,
    PktDstaddr,
    // version 4
    Region,
    AzId,
    SublocationType,
    SublocationId,
    // version 5
    PktSrcAwsService,
    PktDstAwsService,
    FlowDirection,
    TrafficPath,
    // version 7
    EcsClusterArn,
    EcsClusterName,
    EcsContainerInstanceArn,
    EcsContainerInstanceId,
    EcsContainerId,
    EcsSecondContainerId,
    EcsServiceName,
    EcsTaskDefinitionArn,
    EcsTaskArn,
    EcsTaskId,
    // version 8
    RejectReason,
}

impl Field {
    /// Every field, in the order of AWS's table (which is also version order).
    pub const ALL: [Field; 40] = [
        Field::Version,
        Field::AccountId,
        Field::InterfaceId,
        Field::Srcaddr,
        Field::Dstaddr,
        Field::Srcport,
        Field::Dstport,
        Field::Protocol,
        Field::Packets,
        Field::Bytes,
        Field::Start,
        Field::End,
        Field::Action,
        Field::LogStatus,
        Field::VpcId,
        Field::SubnetId,
        Field::InstanceId,
        Field::TcpFlags,
        Field::Type,
        Field::PktSrcaddr,
        Field::PktDstaddr,
        Field::Region,
        Field::AzId,
        Field::SublocationType,
        Field::SublocationId,
        Field::PktSrcAwsService,
        Field::PktDstAwsService,
        Field::FlowDirection,
        Field::TrafficPath,
        Field::EcsClusterArn,
        Field::EcsClusterName,
        Field::EcsContainerInstanceArn,
        Field::EcsContainerInstanceId,
        Field::EcsContainerId,
        Field::EcsSecondContainerId,
        Field::EcsServiceName,
        Field::EcsTaskDefinitionArn,
        Field::EcsTaskArn,
        Field::EcsTaskId,
        Field::RejectReason,
    ];

    /// The field id as AWS writes it, without `${}`: `account-id`, `pkt-srcaddr`, …
    pub fn name(self) -> &'static str {
        match self {
            Field::Version => "version",
            Field::AccountId => "account-id",
            Field::InterfaceId => "interface-id",
            Field::Srcaddr => "srcaddr",
            Field::Dstaddr => "dstaddr",
            Field::Srcport => "srcport",
            Field::Dstport => "dstport",
            Field::Protocol => "protocol",
            Field::Packets => "packets",
            Field::Bytes => "bytes",
            Field::Start => "start",
            Field::End => "end",
            Field::Action => "action",
            Field::LogStatus => "log-status",
            Field::VpcId => "vpc-id",
            Field::SubnetId => "subnet-id",
            Field::InstanceId => "instance-id",
            Field::TcpFlags => "tcp-flags",
            Field::Type => "type",
            Field::PktSrcaddr => "pkt-srcaddr",
            Field::PktDstaddr => "pkt-dstaddr",
            Field::Region => "region",
            Field::AzId => "az-id",
            Field::SublocationType => "sublocation-type",
            Field::SublocationId => "sublocation-id",
            Field::PktSrcAwsService => "pkt-src-aws-service",
            Field::PktDstAwsService => "pkt-dst-aws-service",
            Field::FlowDirection => "flow-direction",
            Field::TrafficPath => "traffic-path",
            Field::EcsClusterArn => "ecs-cluster-arn",
            Field::EcsClusterName => "ecs-cluster-name",
            Field::EcsContainerInstanceArn => "ecs-container-instance-arn",
            Field::EcsContainerInstanceId => "ecs-container-instance-id",
            Field::EcsContainerId => "ecs-container-id",
            Field::EcsSecondContainerId => "ecs-second-container-id",
            Field::EcsServiceName => "ecs-service-name",
            Field::EcsTaskDefinitionArn => "ecs-task-definition-arn",
            Field::EcsTaskArn => "ecs-task-arn",
            Field::EcsTaskId => "ecs-task-id",
            Field::RejectReason => "reject-reason",
        }
    }

    /// The flow-log version that introduced the field (2, 3, 4, 5, 7 or 8; there is no
    /// VPC field of version 6).
    pub fn version(self) -> u8 {
        use Field::*;
        match self {
            Version | AccountId | InterfaceId | Srcaddr | Dstaddr | Srcport | Dstport
            | Protocol | Packets | Bytes | Start | End | Action | LogStatus => 2,
            VpcId | SubnetId | InstanceId | TcpFlags | Type | PktSrcaddr | PktDstaddr => 3,
            Region | AzId | SublocationType | SublocationId => 4,
            PktSrcAwsService | PktDstAwsService | FlowDirection | TrafficPath => 5,
            EcsClusterArn
            | EcsClusterName
            | EcsContainerInstanceArn
            | EcsContainerInstanceId
            | EcsContainerId
            | EcsSecondContainerId
            | EcsServiceName
            | EcsTaskDefinitionArn
            | EcsTaskArn
            | EcsTaskId => 7,
            RejectReason => 8,
        }
    }

    /// The field named `name` (exact, as AWS writes it, without `${}`).
    pub fn from_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Whether vpcgate can know the value; fields it cannot know always print `-`
    /// (sublocations, AWS service names, ECS metadata, `reject-reason`).
    pub fn is_known(self) -> bool {
        use Field::*;
        !matches!(
            self,
            SublocationType
                | SublocationId
                | PktSrcAwsService
                | PktDstAwsService
                | EcsClusterArn
                | EcsClusterName
                | EcsContainerInstanceArn
                | EcsContainerInstanceId
                | EcsContainerId
                | EcsSecondContainerId
                | EcsServiceName
                | EcsTaskDefinitionArn
                | EcsTaskArn
                | EcsTaskId
                | RejectReason
        )
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// VPC flow-log fields of versions after 8, which vpcgate does not write, with their
/// versions (third-party sources).
const LATER_FIELDS: &[(&str, u8)] = &[
    ("resource-id", 9),
    ("encryption-status", 10),
    ("interface-type", 11),
    ("next-hop-interface-id", 11),
    ("next-hop-subnet-id", 11),
    ("next-hop-az-id", 11),
    ("next-hop-vpc-id", 11),
    ("next-hop-interface-type", 11),
    ("instance-tag", 11),
    ("instance-tag-2", 11),
    ("interface-tag", 11),
    ("interface-tag-2", 11),
    ("asg-tag", 11),
    ("asg-tag-2", 11),
];

/// Fields of Transit Gateway flow logs (a different product), not of VPC flow logs.
const TGW_FIELDS: &[&str] = &[
    "resource-type",
    "tgw-id",
    "tgw-attachment-id",
    "tgw-src-vpc-account-id",
    "tgw-dst-vpc-account-id",
    "tgw-src-vpc-id",
    "tgw-dst-vpc-id",
    "tgw-src-subnet-id",
    "tgw-dst-subnet-id",
    "tgw-src-eni",
    "tgw-dst-eni",
    "tgw-src-az-id",
    "tgw-dst-az-id",
    "tgw-pair-attachment-id",
    "packets-lost-no-route",
    "packets-lost-blackhole",
    "packets-lost-mtu-exceeded",
    "packets-lost-ttl-expired",
];

/// Why a custom log format was refused. Columns count characters from 1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FormatError {
    /// No field at all.
    Empty,
    /// `${}`.
    EmptyField { column: usize },
    /// A name that is no field of any version; `suggestion` is the closest valid field.
    UnknownField {
        name: String,
        column: usize,
        suggestion: Option<Field>,
    },
    /// A VPC flow-log field of version 9 or later.
    LaterVersion {
        name: String,
        column: usize,
        version: u8,
    },
    /// A Transit Gateway flow-log field.
    TransitGatewayField { name: String, column: usize },
    /// `${name` with no closing `}`.
    Unclosed { text: String, column: usize },
    /// `${src addr}`: whitespace inside the braces; `field` if the text without spaces
    /// names one.
    SpaceInName {
        text: String,
        column: usize,
        field: Option<Field>,
    },
    /// Text outside `${…}`; `field` if it names one (a missing `${` or `}`).
    UnexpectedText {
        text: String,
        column: usize,
        field: Option<Field>,
    },
    /// `${a}${b}`: the second field at `column` follows the first without a space.
    NotSeparated { column: usize },
    /// The same field twice.
    Duplicate {
        field: Field,
        first_column: usize,
        column: usize,
    },
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatError::Empty => write!(
                f,
                "the log format is empty: give at least one field as `${{field-name}}`, \
                 e.g. '${{version}} ${{interface-id}} ${{srcaddr}} ${{action}}'"
            ),
            FormatError::EmptyField { column } => {
                write!(f, "`${{}}` at column {column} names no field")
            }
            FormatError::UnknownField { name, column, suggestion } => {
                write!(f, "unknown field `${{{name}}}` at column {column}")?;
                if let Some(s) = suggestion {
                    write!(f, " (did you mean `${{{s}}}`?)")?;
                }
                write!(f, "; the fields of flow-log versions 2 to 8 are:")?;
                for field in Field::ALL {
                    write!(f, " {field}")?;
                }
                write!(f, " (described at {FIELDS_URL})")
            }
            FormatError::LaterVersion { name, column, version } => write!(
                f,
                "field `${{{name}}}` at column {column} belongs to flow-log version {version}; \
                 vpcgate writes versions 2 to 8 (fields listed at {FIELDS_URL})"
            ),
            FormatError::TransitGatewayField { name, column } => write!(
                f,
                "field `${{{name}}}` at column {column} belongs to Transit Gateway flow logs, \
                 not to VPC flow logs (fields listed at {FIELDS_URL})"
            ),
            FormatError::Unclosed { text, column } => {
                write!(f, "`{text}` at column {column} has no closing `}}`")
            }
            FormatError::SpaceInName { text, column, field } => {
                write!(f, "`{text}` at column {column} has a space inside the braces")?;
                match field {
                    Some(field) => write!(f, ": write `${{{field}}}`"),
                    None => write!(f, "; is a `}}` or a `${{` missing?"),
                }
            }
            FormatError::UnexpectedText { text, column, field } => match field {
                Some(field) => write!(
                    f,
                    "`{text}` at column {column} is not written as a field: write `${{{field}}}`"
                ),
                None => write!(
                    f,
                    "unexpected text `{text}` at column {column}: a log format is `${{field-name}}` \
                     tokens separated by spaces, nothing else"
                ),
            },
            FormatError::NotSeparated { column } => write!(
                f,
                "the field at column {column} follows the previous one without a space: \
                 separate fields with spaces"
            ),
            FormatError::Duplicate { field, first_column, column } => write!(
                f,
                "field `${{{field}}}` appears twice (columns {first_column} and {column}); \
                 each field may appear once"
            ),
        }
    }
}

impl std::error::Error for FormatError {}

/// A flow-log format: the fields of each record, in order.
///
/// - The default format is the 14 version 2 fields in table order; its `version` is 2.
/// - A custom format's `version` is the highest version among its fields (AWS's rule).
/// - Each field may appear once: a format with a duplicate is refused (its header line
///   would have two columns of the same name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogFormat {
    fields: Vec<Field>,
    version: u8,
}

impl Default for LogFormat {
    fn default() -> LogFormat {
        LogFormat::default_format()
    }
}

impl LogFormat {
    /// AWS's default format: `${version} ${account-id} ${interface-id} ${srcaddr}
    /// ${dstaddr} ${srcport} ${dstport} ${protocol} ${packets} ${bytes} ${start} ${end}
    /// ${action} ${log-status}`, version 2.
    pub fn default_format() -> LogFormat {
        let fields = Field::ALL
            .into_iter()
            .filter(|f| f.version() == 2)
            .collect();
        LogFormat { fields, version: 2 }
    }

    /// Parses an AWS custom format: `${field-id}` tokens separated by whitespace (spaces,
    /// tabs or newlines, any number), as in `--log-format` or the `LogFormat` of
    /// `aws ec2 describe-flow-logs`.
    pub fn parse(s: &str) -> Result<LogFormat, FormatError> {
        let mut fields: Vec<(Field, usize)> = Vec::new();
        let chars: Vec<char> = s.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            if chars[i].is_whitespace() {
                i += 1;
                continue;
            }
            let column = i + 1;
            if chars[i] == '$' && chars.get(i + 1) == Some(&'{') {
                // `${name}`: the name runs to `}`; a `$` or the end first means no `}`.
                let name_at = i + 2;
                let mut j = name_at;
                while j < chars.len() && chars[j] != '}' && chars[j] != '$' {
                    j += 1;
                }
                if j == chars.len() || chars[j] == '$' {
                    let text: String = chars[i..j].iter().collect();
                    return Err(FormatError::Unclosed {
                        text: text.trim_end().to_string(),
                        column,
                    });
                }
                let name: String = chars[name_at..j].iter().collect();
                let field = resolve(&name, column, &chars[i..=j])?;
                if let Some(&(_, first_column)) = fields.iter().find(|(f, _)| *f == field) {
                    return Err(FormatError::Duplicate {
                        field,
                        first_column,
                        column,
                    });
                }
                fields.push((field, column));
                i = j + 1;
                match chars.get(i) {
                    None => {}
                    Some(c) if c.is_whitespace() => {}
                    Some('$') if chars.get(i + 1) == Some(&'{') => {
                        return Err(FormatError::NotSeparated { column: i + 1 })
                    }
                    Some(_) => return Err(stray(&chars, i)),
                }
            } else {
                return Err(stray(&chars, i));
            }
        }
        if fields.is_empty() {
            return Err(FormatError::Empty);
        }
        let version = fields.iter().map(|(f, _)| f.version()).max().unwrap_or(2);
        Ok(LogFormat {
            fields: fields.into_iter().map(|(f, _)| f).collect(),
            version,
        })
    }

    /// The value of the `version` field: 2 for the default format, else the highest
    /// version among the fields.
    pub fn version(&self) -> u8 {
        self.version
    }

    /// The fields, in order.
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// The header line of a text flow log (without the newline): the field names without
    /// `${}`, separated by single spaces.
    pub fn header(&self) -> String {
        let mut h = String::new();
        for (i, f) in self.fields.iter().enumerate() {
            if i > 0 {
                h.push(' ');
            }
            h.push_str(f.name());
        }
        h
    }

    /// Appends one record as a line of text, `\n` included, fields separated by single
    /// spaces.
    ///
    /// A NODATA record shows the ENI's metadata (account, interface, VPC, subnet,
    /// instance, region, AZ), `start`, `end` and `log-status`; every packet-derived field
    /// (addresses, ports, protocol, counters, `action`, `tcp-flags`, `type`,
    /// `flow-direction`, `traffic-path`) is `-`.
    pub fn write_record(&self, rec: &FlowRecord, meta: &EniMeta, out: &mut Vec<u8>) {
        for (i, &f) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            self.write_field(f, rec, meta, out);
        }
        out.push(b'\n');
    }

    #[inline]
    fn write_field(&self, field: Field, rec: &FlowRecord, meta: &EniMeta, out: &mut Vec<u8>) {
        let ok = rec.log_status == LogStatus::Ok;
        let text = |out: &mut Vec<u8>, s: &str| {
            out.extend_from_slice(if s.is_empty() { b"-" } else { s.as_bytes() })
        };
        // Packet-derived values: `-` in a NODATA record.
        macro_rules! packet {
            ($e:expr) => {
                if ok {
                    $e
                } else {
                    out.push(b'-')
                }
            };
        }
        match field {
            Field::Version => push_u64(out, u64::from(self.version)),
            Field::AccountId => text(out, &meta.account_id),
            Field::InterfaceId => text(out, &meta.interface_id),
            Field::Srcaddr => packet!(push_ip(out, rec.srcaddr)),
            Field::Dstaddr => packet!(push_ip(out, rec.dstaddr)),
            Field::Srcport => packet!(push_u64(out, u64::from(rec.srcport))),
            Field::Dstport => packet!(push_u64(out, u64::from(rec.dstport))),
            Field::Protocol => packet!(push_u64(out, u64::from(rec.protocol))),
            Field::Packets => packet!(push_u64(out, rec.packets)),
            Field::Bytes => packet!(push_u64(out, rec.bytes)),
            Field::Start => push_u64(out, rec.start),
            Field::End => push_u64(out, rec.end),
            Field::Action => packet!(text(
                out,
                match rec.action {
                    Action::Accept => "ACCEPT",
                    Action::Reject => "REJECT",
                }
            )),
            Field::LogStatus => text(out, rec.log_status.as_str()),
            Field::VpcId => text(out, &meta.vpc_id),
            Field::SubnetId => text(out, &meta.subnet_id),
            Field::InstanceId => text(out, meta.instance_id.as_deref().unwrap_or("")),
            Field::TcpFlags => {
                packet!(push_u64(
                    out,
                    if rec.protocol == PROTO_TCP {
                        u64::from(rec.tcp_flags)
                    } else {
                        0
                    }
                ))
            }
            Field::Type => packet!(text(
                out,
                match rec.pkt_srcaddr {
                    IpAddr::V4(_) => "IPv4",
                    IpAddr::V6(_) => "IPv6",
                }
            )),
            Field::PktSrcaddr => packet!(push_ip(out, rec.pkt_srcaddr)),
            Field::PktDstaddr => packet!(push_ip(out, rec.pkt_dstaddr)),
            Field::Region => text(out, &meta.region),
            Field::AzId => text(out, &meta.az_id),
            Field::FlowDirection => packet!(text(
                out,
                match rec.direction {
                    Direction::Ingress => "ingress",
                    Direction::Egress => "egress",
                }
            )),
            Field::TrafficPath => match (ok, rec.direction, rec.traffic_path) {
                (true, Direction::Egress, Some(path)) => push_u64(out, u64::from(path)),
                _ => out.push(b'-'),
            },
            Field::SublocationType
            | Field::SublocationId
            | Field::PktSrcAwsService
            | Field::PktDstAwsService
            | Field::EcsClusterArn
            | Field::EcsClusterName
            | Field::EcsContainerInstanceArn
            | Field::EcsContainerInstanceId
            | Field::EcsContainerId
            | Field::EcsSecondContainerId
            | Field::EcsServiceName
            | Field::EcsTaskDefinitionArn
            | Field::EcsTaskArn
            | Field::EcsTaskId
            | Field::RejectReason => out.push(b'-'),
        }
    }
}

impl fmt::Display for LogFormat {
    /// The format as AWS writes it: `${field} ${field} …`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, field) in self.fields.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "${{{field}}}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for LogFormat {
    type Err = FormatError;
    fn from_str(s: &str) -> Result<LogFormat, FormatError> {
        LogFormat::parse(s)
    }
}

/// What a flow log knows of an ENI besides its traffic. An empty string prints `-`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EniMeta {
    /// `eni-…`
    pub interface_id: String,
    pub account_id: String,
    pub vpc_id: String,
    pub subnet_id: String,
    /// `None` prints `-` (an ENI with no instance, e.g. requester-managed).
    pub instance_id: Option<String>,
    pub region: String,
    pub az_id: String,
}

/// The field named inside `${…}`, or why not. `token` is the whole `${…}` text.
fn resolve(name: &str, column: usize, token: &[char]) -> Result<Field, FormatError> {
    if let Some(f) = Field::from_name(name) {
        return Ok(f);
    }
    let text = || token.iter().collect::<String>();
    if name.trim().is_empty() && !name.is_empty() || name.chars().any(char::is_whitespace) {
        let squeezed: String = name.chars().filter(|c| !c.is_whitespace()).collect();
        return Err(FormatError::SpaceInName {
            text: text(),
            column,
            field: Field::from_name(&squeezed),
        });
    }
    if name.is_empty() {
        return Err(FormatError::EmptyField { column });
    }
    if let Some(&(_, version)) = LATER_FIELDS.iter().find(|(n, _)| *n == name) {
        return Err(FormatError::LaterVersion {
            name: name.to_string(),
            column,
            version,
        });
    }
    if TGW_FIELDS.contains(&name) {
        return Err(FormatError::TransitGatewayField {
            name: name.to_string(),
            column,
        });
    }
    Err(FormatError::UnknownField {
        name: name.to_string(),
        column,
        suggestion: closest(name),
    })
}

/// The error for text at `chars[i]` that is not a `${…}` token: the run of characters up
/// to the next whitespace or `${`.
fn stray(chars: &[char], i: usize) -> FormatError {
    let mut j = i;
    while j < chars.len()
        && !chars[j].is_whitespace()
        && !(j > i && chars[j] == '$' && chars.get(j + 1) == Some(&'{'))
    {
        j += 1;
    }
    let text: String = chars[i..j].iter().collect();
    let bare = text.trim_matches(|c| c == '$' || c == '{' || c == '}');
    FormatError::UnexpectedText {
        field: Field::from_name(bare),
        text,
        column: i + 1,
    }
}

/// The valid field closest to `name` (case, `_` for `-` and small typos forgiven).
fn closest(name: &str) -> Option<Field> {
    let norm: String = name.to_ascii_lowercase().replace('_', "-");
    if let Some(f) = Field::from_name(&norm) {
        return Some(f);
    }
    let (field, dist) = Field::ALL
        .into_iter()
        .map(|f| (f, edit_distance(&norm, f.name())))
        .min_by_key(|&(_, d)| d)?;
    let budget = (field.name().len() / 3).max(2);
    (dist <= budget).then_some(field)
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let sub = diag + usize::from(ca != cb);
            diag = row[j + 1];
            row[j + 1] = sub.min(row[j] + 1).min(diag + 1);
        }
    }
    row[b.len()]
}

/// Appends `n` in decimal (`itoa`: two digits per step from a table).
#[inline]
fn push_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

#[inline]
fn push_ipv4(out: &mut Vec<u8>, a: Ipv4Addr) {
    let mut buf = itoa::Buffer::new();
    for (i, octet) in a.octets().into_iter().enumerate() {
        if i > 0 {
            out.push(b'.');
        }
        out.extend_from_slice(buf.format(octet).as_bytes());
    }
}

/// Appends a 16-bit group in lowercase hex without leading zeros.
#[inline]
fn push_hex16(out: &mut Vec<u8>, v: u16) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits = (4 - v.leading_zeros() as usize / 4).max(1);
    for k in (0..digits).rev() {
        out.push(HEX[usize::from((v >> (4 * k)) & 0xf)]);
    }
}

/// Appends an IPv6 address as `Display` writes it (RFC 5952: lowercase, no leading
/// zeros, the longest run of two or more zero groups as `::`, the first of equal runs;
/// an IPv4-mapped address as `::ffff:a.b.c.d`), without the formatting machinery.
#[inline]
fn push_ipv6(out: &mut Vec<u8>, a: Ipv6Addr) {
    if let Some(v4) = a.to_ipv4_mapped() {
        out.extend_from_slice(b"::ffff:");
        push_ipv4(out, v4);
        return;
    }
    let seg = a.segments();
    let (mut best, mut best_len) = (0usize, 0usize);
    let mut i = 0;
    while i < 8 {
        if seg[i] == 0 {
            let start = i;
            while i < 8 && seg[i] == 0 {
                i += 1;
            }
            if i - start > best_len {
                best = start;
                best_len = i - start;
            }
        } else {
            i += 1;
        }
    }
    let groups = |out: &mut Vec<u8>, gs: &[u16]| {
        for (k, g) in gs.iter().enumerate() {
            if k > 0 {
                out.push(b':');
            }
            push_hex16(out, *g);
        }
    };
    if best_len > 1 {
        groups(out, &seg[..best]);
        out.extend_from_slice(b"::");
        groups(out, &seg[best + best_len..]);
    } else {
        groups(out, &seg);
    }
}

/// Appends an address as `Display` writes it (RFC 5952 for IPv6).
#[inline]
fn push_ip(out: &mut Vec<u8>, a: IpAddr) {
    match a {
        IpAddr::V4(v4) => push_ipv4(out, v4),
        IpAddr::V6(v6) => push_ipv6(out, v6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn meta() -> EniMeta {
        EniMeta {
            interface_id: "eni-0abc".into(),
            account_id: "111122223333".into(),
            vpc_id: "vpc-1".into(),
            subnet_id: "subnet-1".into(),
            instance_id: Some("i-1".into()),
            region: "eu-west-1".into(),
            az_id: "euw1-az1".into(),
        }
    }

    fn record() -> FlowRecord {
        FlowRecord {
            window_start: 600,
            eni: crate::model::EniNum(0),
            first_seq: 1,
            direction: Direction::Egress,
            action: Action::Reject,
            srcaddr: ip("10.0.0.5"),
            dstaddr: ip("2001:db8::1"),
            pkt_srcaddr: ip("10.0.0.9"),
            pkt_dstaddr: ip("2001:db8::1"),
            srcport: 0,
            dstport: 65_535,
            protocol: 6,
            packets: 1,
            bytes: 18_446_744_073_709_551_615,
            start: 600,
            end: 1_199,
            tcp_flags: 19,
            traffic_path: Some(8),
            log_status: LogStatus::Ok,
        }
    }

    fn line(format: &LogFormat, rec: &FlowRecord, meta: &EniMeta) -> String {
        let mut out = Vec::new();
        format.write_record(rec, meta, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn table_is_complete_and_ordered() {
        assert_eq!(Field::ALL.len(), 40);
        for (i, f) in Field::ALL.iter().enumerate() {
            assert_eq!(Field::from_name(f.name()), Some(*f));
            if i > 0 {
                assert!(Field::ALL[i - 1] < *f);
                assert!(Field::ALL[i - 1].version() <= f.version());
            }
        }
        assert!(Field::ALL.iter().all(|f| f.version() != 6));
        assert_eq!(Field::ALL.iter().filter(|f| f.version() == 7).count(), 10);
        assert_eq!(Field::from_name("Srcaddr"), None);
    }

    #[test]
    fn default_format() {
        let f = LogFormat::default_format();
        assert_eq!(f.version(), 2);
        assert_eq!(
            f.header(),
            "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status"
        );
        assert_eq!(LogFormat::parse(&f.to_string()), Ok(f));
    }

    #[test]
    fn version_is_the_highest_field_version() {
        let v = |s: &str| LogFormat::parse(s).unwrap().version();
        assert_eq!(v("${srcaddr}"), 2);
        assert_eq!(v("${srcaddr} ${vpc-id}"), 3);
        assert_eq!(v("${az-id} ${srcaddr} ${vpc-id}"), 4);
        assert_eq!(v("${traffic-path}"), 5);
        assert_eq!(v("${ecs-task-id} ${version}"), 7);
        assert_eq!(v("${reject-reason}"), 8);
    }

    #[test]
    fn whitespace_between_tokens_is_free() {
        let f = LogFormat::parse("  ${version}\t${srcaddr}\n ${action}  ").unwrap();
        assert_eq!(f.fields(), [Field::Version, Field::Srcaddr, Field::Action]);
        assert_eq!(f.to_string(), "${version} ${srcaddr} ${action}");
    }

    #[test]
    fn parse_errors_say_what_is_wrong() {
        let e = |s: &str| LogFormat::parse(s).unwrap_err();
        assert_eq!(e(""), FormatError::Empty);
        assert_eq!(e("   "), FormatError::Empty);
        assert_eq!(e("${version} ${}"), FormatError::EmptyField { column: 12 });
        assert_eq!(
            e("${version} ${srcadr}"),
            FormatError::UnknownField {
                name: "srcadr".into(),
                column: 12,
                suggestion: Some(Field::Srcaddr)
            }
        );
        assert_eq!(
            e("${SrcAddr}"),
            FormatError::UnknownField {
                name: "SrcAddr".into(),
                column: 1,
                suggestion: Some(Field::Srcaddr)
            }
        );
        assert_eq!(
            e("${account_id}"),
            FormatError::UnknownField {
                name: "account_id".into(),
                column: 1,
                suggestion: Some(Field::AccountId)
            }
        );
        assert_eq!(
            e("${bananas}"),
            FormatError::UnknownField {
                name: "bananas".into(),
                column: 1,
                suggestion: None
            }
        );
        assert_eq!(
            e("${version} ${encryption-status}"),
            FormatError::LaterVersion {
                name: "encryption-status".into(),
                column: 12,
                version: 10
            }
        );
        assert_eq!(
            e("${resource-id}"),
            FormatError::LaterVersion {
                name: "resource-id".into(),
                column: 1,
                version: 9
            }
        );
        assert_eq!(
            e("${tgw-id}"),
            FormatError::TransitGatewayField {
                name: "tgw-id".into(),
                column: 1
            }
        );
        assert_eq!(
            e("${version} ${srcaddr"),
            FormatError::Unclosed {
                text: "${srcaddr".into(),
                column: 12
            }
        );
        assert_eq!(
            e("${srcaddr ${dstaddr}"),
            FormatError::Unclosed {
                text: "${srcaddr".into(),
                column: 1
            }
        );
        assert_eq!(
            e("${ srcaddr }"),
            FormatError::SpaceInName {
                text: "${ srcaddr }".into(),
                column: 1,
                field: Some(Field::Srcaddr)
            }
        );
        assert_eq!(
            e("${srcaddr dstaddr}"),
            FormatError::SpaceInName {
                text: "${srcaddr dstaddr}".into(),
                column: 1,
                field: None
            }
        );
        assert_eq!(
            e("${version} srcaddr"),
            FormatError::UnexpectedText {
                text: "srcaddr".into(),
                column: 12,
                field: Some(Field::Srcaddr)
            }
        );
        assert_eq!(
            e("{srcaddr}"),
            FormatError::UnexpectedText {
                text: "{srcaddr}".into(),
                column: 1,
                field: Some(Field::Srcaddr)
            }
        );
        assert_eq!(
            e("${version}, ${srcaddr}"),
            FormatError::UnexpectedText {
                text: ",".into(),
                column: 11,
                field: None
            }
        );
        assert_eq!(
            e("${version} - ${srcaddr}"),
            FormatError::UnexpectedText {
                text: "-".into(),
                column: 12,
                field: None
            }
        );
        assert_eq!(
            e("${version}${srcaddr}"),
            FormatError::NotSeparated { column: 11 }
        );
        assert_eq!(
            e("${srcaddr} ${version} ${srcaddr}"),
            FormatError::Duplicate {
                field: Field::Srcaddr,
                first_column: 1,
                column: 23
            }
        );
    }

    #[test]
    fn error_messages_read_well() {
        let msg = |s: &str| LogFormat::parse(s).unwrap_err().to_string();
        let m = msg("${version} ${srcadr}");
        assert!(
            m.starts_with("unknown field `${srcadr}` at column 12 (did you mean `${srcaddr}`?)"),
            "{m}"
        );
        assert!(m.contains("reject-reason") && m.contains(FIELDS_URL), "{m}");
        let m = msg("${encryption-status}");
        assert!(
            m.contains("version 10") && m.contains("versions 2 to 8"),
            "{m}"
        );
        assert!(msg("${srcaddr").contains("no closing `}`"));
        assert!(msg("srcaddr").contains("write `${srcaddr}`"));
        assert!(msg("").contains("empty"));
    }

    #[test]
    fn every_field_of_an_ok_record() {
        let all: Vec<String> = Field::ALL.iter().map(|f| format!("${{{f}}}")).collect();
        let format = LogFormat::parse(&all.join(" ")).unwrap();
        assert_eq!(format.version(), 8);
        let got = line(&format, &record(), &meta());
        let want = "8 111122223333 eni-0abc 10.0.0.5 2001:db8::1 0 65535 6 1 18446744073709551615 600 1199 REJECT OK \
                    vpc-1 subnet-1 i-1 19 IPv4 10.0.0.9 2001:db8::1 eu-west-1 euw1-az1 - - - - egress 8 \
                    - - - - - - - - - - -\n";
        assert_eq!(got, want);
    }

    #[test]
    fn every_field_of_a_nodata_record() {
        let all: Vec<String> = Field::ALL.iter().map(|f| format!("${{{f}}}")).collect();
        let format = LogFormat::parse(&all.join(" ")).unwrap();
        let mut m = meta();
        m.instance_id = None;
        m.region.clear();
        let got = line(
            &format,
            &FlowRecord::nodata(crate::model::EniNum(0), 600, 60),
            &m,
        );
        let want = "8 111122223333 eni-0abc - - - - - - - 600 659 - NODATA \
                    vpc-1 subnet-1 - - - - - - euw1-az1 - - - - - - \
                    - - - - - - - - - - -\n";
        assert_eq!(got, want);
    }

    #[test]
    fn non_tcp_and_ingress_values() {
        let format =
            LogFormat::parse("${protocol} ${tcp-flags} ${flow-direction} ${traffic-path} ${type}")
                .unwrap();
        let mut r = record();
        r.protocol = 1;
        r.direction = Direction::Ingress;
        r.pkt_srcaddr = ip("2001:db8::2");
        assert_eq!(line(&format, &r, &meta()), "1 0 ingress - IPv6\n");
        r.direction = Direction::Egress;
        r.traffic_path = None;
        assert_eq!(line(&format, &r, &meta()), "1 0 egress - IPv6\n");
    }

    #[test]
    fn numbers_and_addresses() {
        for n in [0u64, 7, 10, 99, 1_000, 4_294_967_296, u64::MAX] {
            let mut out = Vec::new();
            push_u64(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes());
        }
        for a in [
            "0.0.0.0",
            "255.255.255.255",
            "10.0.100.7",
            "::",
            "::ffff:10.0.0.1",
            "fe80::1:2",
        ] {
            let mut out = Vec::new();
            push_ip(&mut out, ip(a));
            assert_eq!(String::from_utf8(out).unwrap(), ip(a).to_string());
        }
    }

    /// The hand-written IPv6 text is `Display`'s, byte for byte: RFC 5952's cases
    /// (runs of zeros at the start, middle and end, ties, a single zero group, the
    /// IPv4-mapped form) and addresses drawn with many zero groups.
    #[test]
    fn ipv6_text_is_displays() {
        let check = |a: Ipv6Addr| {
            let mut out = Vec::new();
            push_ipv6(&mut out, a);
            assert_eq!(String::from_utf8(out).unwrap(), a.to_string(), "{a:?}");
        };
        for a in [
            "::",
            "::1",
            "1::",
            "2001:db8::1",
            "2001:db8:0:0:1:0:0:1",
            "2001:0:0:1:0:0:0:1",
            "2001:db8:0:1:1:1:1:1",
            "0:0:1:0:0:0:1:0",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "::ffff:192.0.2.1",
            "::192.0.2.1",
            "64:ff9b::192.0.2.1",
            "fe80::a:bc:def:1234",
        ] {
            check(a.parse().unwrap());
        }
        // Every pattern of zero and non-zero groups, with varied non-zero values.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for pattern in 0u32..256 {
            for _ in 0..8 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let mut seg = [0u16; 8];
                for (i, s) in seg.iter_mut().enumerate() {
                    if pattern & (1 << i) != 0 {
                        let v = (x >> (i * 8)) as u16;
                        *s = if v == 0 { 1 } else { v >> (x as u32 % 13) }.max(1);
                    }
                }
                check(Ipv6Addr::from(seg));
            }
        }
    }

    #[test]
    fn closest_names() {
        assert_eq!(closest("interfaceid"), Some(Field::InterfaceId));
        assert_eq!(closest("log_status"), Some(Field::LogStatus));
        assert_eq!(closest("tcpflags"), Some(Field::TcpFlags));
        assert_eq!(closest("x"), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
