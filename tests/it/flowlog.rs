//! Flow-log conformance: records rendered from AWS's documented examples.
//!
//! Each test builds the packets (or the record) of one example of
//! `reference/aws-semantics.md` §7.1, runs them through the `Aggregator` where AWS's
//! times fit one of our aligned windows, renders the record with `LogFormat`, and
//! compares it field by field with the text AWS published.
//!
//! Sources:
//! - FL-1 … FL-10: "Flow log record examples", Amazon VPC User Guide,
//!   <https://docs.aws.amazon.com/vpc/latest/userguide/flow-logs-records-examples.html>
//! - FL-11: AWS News Blog, "VPC encryption controls" (Nov 2025), the flow-log excerpt with
//!   its header line.
//!
//! AWS's aggregation windows are not aligned to the interval (FL-1 runs from …010 to
//! …070); ours are (EMULATION.md §6). Where an example's `start`/`end` fit one aligned
//! 600-second window, the record comes out of the aggregator as is.

use std::io::Read;
use std::net::IpAddr;

use vpcgate::flowlog::{
    Aggregator, EniMeta, Field, FlowRecord, FormatError, LogFormat, LogStatus, Observation,
};
use vpcgate::model::{Action, Direction};
use vpcgate::output::FlowLogWriter;
use vpcgate::wire::packet::tcp_flags::{ACK, FIN, PSH, SYN};
use vpcgate::wire::packet::Timestamp;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// One direction of one flow at one ENI, as the engine would observe it.
#[derive(Clone, Copy)]
struct Flow {
    eni: u32,
    direction: Direction,
    action: Action,
    src: &'static str,
    dst: &'static str,
    srcport: u16,
    dstport: u16,
    protocol: u8,
}

impl Flow {
    fn ingress(
        src: &'static str,
        dst: &'static str,
        srcport: u16,
        dstport: u16,
        protocol: u8,
    ) -> Flow {
        Flow {
            eni: 0,
            direction: Direction::Ingress,
            action: Action::Accept,
            src,
            dst,
            srcport,
            dstport,
            protocol,
        }
    }

    fn egress(
        src: &'static str,
        dst: &'static str,
        srcport: u16,
        dstport: u16,
        protocol: u8,
    ) -> Flow {
        Flow {
            direction: Direction::Egress,
            ..Flow::ingress(src, dst, srcport, dstport, protocol)
        }
    }

    fn action(self, action: Action) -> Flow {
        Flow { action, ..self }
    }

    fn obs(&self, bytes: u32, tcp_flags: u8, traffic_path: Option<u8>) -> Observation {
        Observation {
            eni: vpcgate::model::EniNum(self.eni),
            direction: self.direction,
            action: self.action,
            srcaddr: ip(self.src),
            dstaddr: ip(self.dst),
            pkt_srcaddr: ip(self.src),
            pkt_dstaddr: ip(self.dst),
            srcport: self.srcport,
            dstport: self.dstport,
            protocol: self.protocol,
            bytes,
            tcp_flags,
            traffic_path,
        }
    }
}

/// The packets of one record: `packets` packets carrying `bytes` bytes in all, the first
/// at second `start`, the last at `end`, the others in between; the first packets carry
/// `flags` in order, the rest plain ACKs (`last_flags` for the very last one, if any).
struct Burst {
    flow: Flow,
    packets: u32,
    bytes: u32,
    start: u64,
    end: u64,
    flags: &'static [u8],
    last_flags: Option<u8>,
    traffic_path: Option<u8>,
}

impl Burst {
    fn new(flow: Flow, packets: u32, bytes: u32, start: u64, end: u64) -> Burst {
        let traffic_path = match flow.direction {
            Direction::Egress => Some(8),
            Direction::Ingress => None,
        };
        Burst {
            flow,
            packets,
            bytes,
            start,
            end,
            flags: &[],
            last_flags: None,
            traffic_path,
        }
    }

    fn flags(self, flags: &'static [u8], last_flags: Option<u8>) -> Burst {
        Burst {
            flags,
            last_flags,
            ..self
        }
    }

    fn path(self, traffic_path: Option<u8>) -> Burst {
        Burst {
            traffic_path,
            ..self
        }
    }

    /// (nanoseconds, observation) of each packet.
    fn packets(&self) -> Vec<(u64, Observation)> {
        let n = u64::from(self.packets);
        let each = self.bytes / self.packets;
        let extra = self.bytes - each * self.packets;
        (0..n)
            .map(|i| {
                let secs = if n == 1 {
                    self.start
                } else {
                    self.start + (self.end - self.start) * i / (n - 1)
                };
                // Put the packet inside its second, never across it.
                let nanos = secs * 1_000_000_000 + 250_000_000 + i % 500_000_000;
                let flags = if self.flow.protocol != 6 {
                    0
                } else if i + 1 == n && self.last_flags.is_some() {
                    self.last_flags.unwrap()
                } else {
                    self.flags.get(i as usize).copied().unwrap_or(ACK)
                };
                let bytes = if i == 0 { each + extra } else { each };
                (nanos, self.flow.obs(bytes, flags, self.traffic_path))
            })
            .collect()
    }
}

/// Runs the bursts' packets through an aggregator in time order (ties: the order of the
/// bursts) with consecutive sequence numbers, and returns the records in output order.
fn aggregate(interval: u32, bursts: &[Burst]) -> Vec<FlowRecord> {
    let mut packets: Vec<(u64, usize, Observation)> = Vec::new();
    for (b, burst) in bursts.iter().enumerate() {
        packets.extend(burst.packets().into_iter().map(|(t, o)| (t, b, o)));
    }
    packets.sort_by_key(|&(t, b, _)| (t, b));
    let mut agg = Aggregator::new(interval);
    for (seq, (t, _, o)) in packets.iter().enumerate() {
        agg.observe(o, Timestamp(*t), seq as u64);
    }
    let mut out = Vec::new();
    agg.close_all(&mut out);
    out.sort();
    out
}

fn render(format: &LogFormat, rec: &FlowRecord, meta: &EniMeta) -> String {
    let mut out = Vec::new();
    format.write_record(rec, meta, &mut out);
    let line = String::from_utf8(out).unwrap();
    assert!(
        line.ends_with('\n') && !line[..line.len() - 1].contains(['\n', '\t']),
        "{line:?}"
    );
    assert!(
        !line.contains("  ") && !line.starts_with(' '),
        "single spaces only: {line:?}"
    );
    line
}

/// Compares our line with AWS's, field by field (AWS's text split on whitespace). At the
/// positions in `unknowable` AWS shows a value vpcgate cannot know; ours must be `-`.
#[track_caller]
fn assert_fields(ours: &str, aws: &str, unknowable: &[usize]) {
    let o: Vec<&str> = ours.split_whitespace().collect();
    let a: Vec<&str> = aws.split_whitespace().collect();
    assert_eq!(o.len(), a.len(), "field count\n ours: {ours}\n  aws: {aws}");
    for (i, (x, y)) in o.iter().zip(&a).enumerate() {
        if unknowable.contains(&i) {
            assert_eq!(*x, "-", "field {i} (AWS shows {y:?}, which vpcgate cannot know)\n ours: {ours}\n  aws: {aws}");
        } else {
            assert_eq!(x, y, "field {i}\n ours: {ours}\n  aws: {aws}");
        }
    }
}

/// The ENI of FL-1 … FL-6.
fn fl_meta() -> EniMeta {
    EniMeta {
        interface_id: "eni-1235b8ca123456789".into(),
        account_id: "123456789010".into(),
        vpc_id: "vpc-abcdefab012345678".into(),
        subnet_id: "subnet-aaaaaaaa012345678".into(),
        instance_id: Some("i-01234567890123456".into()),
        region: "us-east-1".into(),
        az_id: "use1-az1".into(),
    }
}

// ----- default format -------------------------------------------------------------------

#[test]
fn default_format_header_line() {
    // aws-semantics.md §6.11: the header of a text file is the format's field ids.
    let f = LogFormat::default_format();
    assert_eq!(
        f.header(),
        "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status"
    );
    assert_eq!(f.version(), 2);
    // The default format as describe-flow-logs prints it (§6.4, §6.12).
    let aws = "${version} ${account-id} ${interface-id} ${srcaddr} ${dstaddr} ${srcport} ${dstport} ${protocol} \
               ${packets} ${bytes} ${start} ${end} ${action} ${log-status}";
    assert_eq!(LogFormat::parse(aws).unwrap(), f);
    assert_eq!(f.to_string(), aws);
}

/// FL-1 (flow-logs-records-examples.html, "Accepted and rejected traffic"): SSH from
/// 172.31.16.139 to the ENI's 172.31.16.21 was allowed: 20 packets, 4249 bytes.
#[test]
fn fl1_accepted_ssh() {
    let aws = "2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK";
    let flow = Flow::ingress("172.31.16.139", "172.31.16.21", 20641, 22, 6);
    let recs = aggregate(
        600,
        &[Burst::new(flow, 20, 4249, 1418530010, 1418530070).flags(&[SYN], None)],
    );
    assert_eq!(recs.len(), 1);
    let line = render(&LogFormat::default_format(), &recs[0], &fl_meta());
    assert_eq!(line, format!("{aws}\n"));
    assert_fields(&line, aws, &[]);
}

/// FL-2 (flow-logs-records-examples.html, "Accepted and rejected traffic"): RDP to the
/// same ENI was rejected.
#[test]
fn fl2_rejected_rdp() {
    let aws = "2 123456789010 eni-1235b8ca123456789 172.31.9.69 172.31.9.12 49761 3389 6 20 4249 1418530010 1418530070 REJECT OK";
    let flow = Flow::ingress("172.31.9.69", "172.31.9.12", 49761, 3389, 6).action(Action::Reject);
    let recs = aggregate(600, &[Burst::new(flow, 20, 4249, 1418530010, 1418530070)]);
    assert_eq!(recs.len(), 1);
    assert_fields(
        &render(&LogFormat::default_format(), &recs[0], &fl_meta()),
        aws,
        &[],
    );
}

/// FL-3 (flow-logs-records-examples.html, "No data and skipped records"): an ENI with no
/// traffic in the interval.
#[test]
fn fl3_nodata() {
    let aws = "2 123456789010 eni-1235b8ca123456789 - - - - - - - 1431280876 1431280934 - NODATA";
    // AWS's window runs from …876 to …934; ours are aligned and span the whole interval.
    let ours = FlowRecord::nodata(vpcgate::model::EniNum(0), 1431280800, 600);
    assert_eq!(
        (ours.start, ours.end, ours.log_status),
        (1431280800, 1431281399, LogStatus::NoData)
    );
    let rec = FlowRecord {
        start: 1431280876,
        end: 1431280934,
        ..ours
    };
    let line = render(&LogFormat::default_format(), &rec, &fl_meta());
    assert_eq!(line, format!("{aws}\n"));
}

/// FL-5 (flow-logs-records-examples.html, "Security group and network ACL rules"): four
/// pings (84 IP bytes each, 336 in all) from 203.0.113.12 to the ENI's 172.31.16.139; the
/// SG lets the replies out (stateful), the NACL's outbound rules reject them.
#[test]
fn fl5_ping_reply_rejected_by_nacl() {
    let aws = [
        "2 123456789010 eni-1235b8ca123456789 203.0.113.12 172.31.16.139 0 0 1 4 336 1432917027 1432917142 ACCEPT OK",
        "2 123456789010 eni-1235b8ca123456789 172.31.16.139 203.0.113.12 0 0 1 4 336 1432917094 1432917142 REJECT OK",
    ];
    let request = Flow::ingress("203.0.113.12", "172.31.16.139", 0, 0, 1);
    let reply = Flow::egress("172.31.16.139", "203.0.113.12", 0, 0, 1).action(Action::Reject);
    let recs = aggregate(
        600,
        &[
            Burst::new(request, 4, 336, 1432917027, 1432917142),
            Burst::new(reply, 4, 336, 1432917094, 1432917142),
        ],
    );
    assert_eq!(recs.len(), 2);
    assert!(recs
        .iter()
        .all(|r| r.bytes == 336 && r.packets == 4 && r.tcp_flags == 0));
    for (rec, aws) in recs.iter().zip(aws) {
        assert_fields(
            &render(&LogFormat::default_format(), rec, &fl_meta()),
            aws,
            &[],
        );
    }
}

/// FL-6 (flow-logs-records-examples.html, "Accepted and rejected traffic", IPv6): SSH from
/// 2001:db8:1234:a100:8d6e:3477:df66:f105 was allowed.
#[test]
fn fl6_ipv6_ssh() {
    let aws = "2 123456789010 eni-1235b8ca123456789 2001:db8:1234:a100:8d6e:3477:df66:f105 \
               2001:db8:1234:a102:3304:8879:34cf:4071 34892 22 6 54 8855 1477913708 1477913820 ACCEPT OK";
    let flow = Flow::ingress(
        "2001:db8:1234:a100:8d6e:3477:df66:f105",
        "2001:db8:1234:a102:3304:8879:34cf:4071",
        34892,
        22,
        6,
    );
    let recs = aggregate(600, &[Burst::new(flow, 54, 8855, 1477913708, 1477913820)]);
    assert_fields(
        &render(&LogFormat::default_format(), &recs[0], &fl_meta()),
        aws,
        &[],
    );
}

// ----- FL-7: tcp-flags, custom version 3 format ------------------------------------------

/// The custom format of FL-7 (`bytes` before `packets`).
const FL7_FORMAT: &str = "${version} ${vpc-id} ${subnet-id} ${instance-id} ${interface-id} ${account-id} ${type} \
     ${srcaddr} ${dstaddr} ${srcport} ${dstport} ${pkt-srcaddr} ${pkt-dstaddr} ${protocol} ${bytes} ${packets} \
     ${start} ${end} ${action} ${tcp-flags} ${log-status}";

fn fl7_format() -> LogFormat {
    let f = LogFormat::parse(FL7_FORMAT).unwrap();
    // FL-7's header line as AWS shows it.
    assert_eq!(
        f.header(),
        "version vpc-id subnet-id instance-id interface-id account-id type srcaddr dstaddr srcport dstport \
         pkt-srcaddr pkt-dstaddr protocol bytes packets start end action tcp-flags log-status"
    );
    assert_eq!(f.version(), 3);
    f
}

const CLIENT: &str = "52.213.180.42";
const SERVER: &str = "10.0.0.62";

/// FL-7a (flow-logs-records-examples.html, "TCP flag sequence"): two connections from
/// 52.213.180.42 to 10.0.0.62:5001. Client→server saw SYN then ACKs: 2; server→client
/// SYN-ACK then ACKs: 18 (ACK alone counts for nothing).
#[test]
fn fl7a_syn_and_syn_ack() {
    let aws = [
        "3 vpc-abcdefab012345678 subnet-aaaaaaaa012345678 i-01234567890123456 eni-1235b8ca123456789 123456789010 IPv4 52.213.180.42 10.0.0.62 43416 5001 52.213.180.42 10.0.0.62 6 568 8 1566848875 1566848933 ACCEPT 2 OK",
        "3 vpc-abcdefab012345678 subnet-aaaaaaaa012345678 i-01234567890123456 eni-1235b8ca123456789 123456789010 IPv4 10.0.0.62 52.213.180.42 5001 43416 10.0.0.62 52.213.180.42 6 376 7 1566848875 1566848933 ACCEPT 18 OK",
        "3 vpc-abcdefab012345678 subnet-aaaaaaaa012345678 i-01234567890123456 eni-1235b8ca123456789 123456789010 IPv4 52.213.180.42 10.0.0.62 43418 5001 52.213.180.42 10.0.0.62 6 100701 70 1566848875 1566848933 ACCEPT 2 OK",
        "3 vpc-abcdefab012345678 subnet-aaaaaaaa012345678 i-01234567890123456 eni-1235b8ca123456789 123456789010 IPv4 10.0.0.62 52.213.180.42 5001 43418 10.0.0.62 52.213.180.42 6 632 12 1566848875 1566848933 ACCEPT 18 OK",
    ];
    let (s, e) = (1566848875, 1566848933);
    let recs = aggregate(
        600,
        &[
            Burst::new(Flow::ingress(CLIENT, SERVER, 43416, 5001, 6), 8, 568, s, e)
                .flags(&[SYN, ACK, PSH | ACK], None),
            Burst::new(Flow::egress(SERVER, CLIENT, 5001, 43416, 6), 7, 376, s, e)
                .flags(&[SYN | ACK], None),
            Burst::new(
                Flow::ingress(CLIENT, SERVER, 43418, 5001, 6),
                70,
                100701,
                s,
                e,
            )
            .flags(&[SYN, ACK, PSH | ACK], None),
            Burst::new(Flow::egress(SERVER, CLIENT, 5001, 43418, 6), 12, 632, s, e)
                .flags(&[SYN | ACK, ACK, PSH | ACK], None),
        ],
    );
    assert_eq!(
        recs.iter().map(|r| r.tcp_flags).collect::<Vec<_>>(),
        [2, 18, 2, 18]
    );
    let format = fl7_format();
    for (rec, aws) in recs.iter().zip(aws) {
        assert_fields(&render(&format, rec, &fl_meta()), aws, &[]);
    }
}

/// FL-7b (flow-logs-records-examples.html, "TCP flag sequence"): in the next interval the
/// connection on port 43418 closes; each direction sent a FIN (with ACK): 1.
///
/// AWS's record runs from …933 to …113, across our aligned 600-second boundary at
/// 1566849000: the packets are aggregated in one aligned window, then the record's `end`
/// is set to AWS's.
#[test]
fn fl7b_fin() {
    let aws = [
        "3 vpc-abcdefab012345678 subnet-aaaaaaaa012345678 i-01234567890123456 eni-1235b8ca123456789 123456789010 IPv4 10.0.0.62 52.213.180.42 5001 43418 10.0.0.62 52.213.180.42 6 63388 1219 1566848933 1566849113 ACCEPT 1 OK",
        "3 vpc-abcdefab012345678 subnet-aaaaaaaa012345678 i-01234567890123456 eni-1235b8ca123456789 123456789010 IPv4 52.213.180.42 10.0.0.62 43418 5001 52.213.180.42 10.0.0.62 6 23294588 15774 1566848933 1566849113 ACCEPT 1 OK",
    ];
    let (s, e) = (1566848933, 1566848999);
    let recs = aggregate(
        600,
        &[
            Burst::new(
                Flow::egress(SERVER, CLIENT, 5001, 43418, 6),
                1219,
                63388,
                s,
                e,
            )
            .flags(&[ACK, PSH | ACK], Some(FIN | ACK)),
            Burst::new(
                Flow::ingress(CLIENT, SERVER, 43418, 5001, 6),
                15774,
                23294588,
                s,
                e,
            )
            .flags(&[PSH | ACK, ACK], Some(FIN | ACK)),
        ],
    );
    assert_eq!(recs.iter().map(|r| r.tcp_flags).collect::<Vec<_>>(), [1, 1]);
    let format = fl7_format();
    for (rec, aws) in recs.iter().zip(aws) {
        let rec = FlowRecord {
            end: 1566849113,
            ..rec.clone()
        };
        assert_fields(&render(&format, &rec, &fl_meta()), aws, &[]);
    }
}

/// FL-7c (flow-logs-records-examples.html, "TCP flag sequence"): a connection opened and
/// closed within one interval: SYN | FIN = 3 client→server, SYN-ACK | FIN = 19 back. (AWS's
/// second line has a double space before `10.0.0.62`; we write single spaces.)
#[test]
fn fl7c_open_and_close_in_one_window() {
    let aws = [
        "3 vpc-abcdefab012345678 subnet-aaaaaaaa012345678 i-01234567890123456 eni-1235b8ca123456789 123456789010 IPv4 52.213.180.42 10.0.0.62 43638 5001 52.213.180.42 10.0.0.62 6 1260 17 1566933133 1566933193 ACCEPT 3 OK",
        "3 vpc-abcdefab012345678 subnet-aaaaaaaa012345678 i-01234567890123456 eni-1235b8ca123456789 123456789010 IPv4 10.0.0.62 52.213.180.42 5001 43638  10.0.0.62 52.213.180.42 6 967 14 1566933133 1566933193 ACCEPT 19 OK",
    ];
    let (s, e) = (1566933133, 1566933193);
    let recs = aggregate(
        600,
        &[
            Burst::new(
                Flow::ingress(CLIENT, SERVER, 43638, 5001, 6),
                17,
                1260,
                s,
                e,
            )
            .flags(&[SYN, ACK, PSH | ACK], Some(FIN | ACK)),
            Burst::new(Flow::egress(SERVER, CLIENT, 5001, 43638, 6), 14, 967, s, e)
                .flags(&[SYN | ACK, ACK], Some(FIN | ACK)),
        ],
    );
    assert_eq!(
        recs.iter().map(|r| r.tcp_flags).collect::<Vec<_>>(),
        [3, 19]
    );
    let format = fl7_format();
    for (rec, aws) in recs.iter().zip(aws) {
        assert_fields(&render(&format, rec, &fl_meta()), aws, &[]);
    }
}

// ----- FL-10: version 5 fields ------------------------------------------------------------

/// FL-10 (flow-logs-records-examples.html, "Service name, traffic path, and flow
/// direction"): an instance (10.0.0.71) talks to S3 (52.95.128.179) through an internet
/// gateway.
#[test]
fn fl10_traffic_path_and_flow_direction() {
    let format = LogFormat::parse(
        "${version} ${srcaddr} ${dstaddr} ${srcport} ${dstport} ${protocol} ${start} ${end} ${type} ${packets} \
         ${bytes} ${account-id} ${vpc-id} ${subnet-id} ${instance-id} ${interface-id} ${region} ${az-id} \
         ${sublocation-type} ${sublocation-id} ${action} ${tcp-flags} ${pkt-srcaddr} ${pkt-dstaddr} \
         ${pkt-src-aws-service} ${pkt-dst-aws-service} ${traffic-path} ${flow-direction} ${log-status}",
    )
    .unwrap();
    assert_eq!(format.version(), 5);
    assert_eq!(
        format.header(),
        "version srcaddr dstaddr srcport dstport protocol start end type packets bytes account-id vpc-id subnet-id \
         instance-id interface-id region az-id sublocation-type sublocation-id action tcp-flags pkt-srcaddr \
         pkt-dstaddr pkt-src-aws-service pkt-dst-aws-service traffic-path flow-direction log-status"
    );
    let meta = EniMeta {
        interface_id: "eni-1235b8ca123456789".into(),
        account_id: "123456789012".into(),
        vpc_id: "vpc-abcdefab012345678".into(),
        subnet_id: "subnet-aaaaaaaa012345678".into(),
        instance_id: Some("i-0c50d5961bcb2d47b".into()),
        region: "ap-southeast-2".into(),
        az_id: "apse2-az3".into(),
    };
    let (s, e) = (1616729292, 1616729349);
    let recs = aggregate(
        600,
        &[
            Burst::new(
                Flow::ingress("52.95.128.179", "10.0.0.71", 80, 34210, 6),
                14,
                15044,
                s,
                e,
            )
            .flags(&[SYN | ACK, ACK], Some(FIN | ACK)),
            Burst::new(
                Flow::egress("10.0.0.71", "52.95.128.179", 34210, 80, 6),
                7,
                471,
                s,
                e,
            )
            .flags(&[SYN, ACK], Some(FIN | ACK))
            .path(Some(8)),
        ],
    );
    let aws_ingress = "5 52.95.128.179 10.0.0.71 80 34210 6 1616729292 1616729349 IPv4 14 15044 123456789012 vpc-abcdefab012345678 subnet-aaaaaaaa012345678 i-0c50d5961bcb2d47b eni-1235b8ca123456789 ap-southeast-2 apse2-az3 - - ACCEPT 19 52.95.128.179 10.0.0.71 S3 - - ingress OK";
    let aws_egress = "5 10.0.0.71 52.95.128.179 34210 80 6 1616729292 1616729349 IPv4 7 471 123456789012 vpc-abcdefab012345678 subnet-aaaaaaaa012345678 i-0c50d5961bcb2d47b eni-1235b8ca123456789 ap-southeast-2 apse2-az3 - - ACCEPT 3 10.0.0.71 52.95.128.179 - S3 8 egress OK";
    // AWS names the service of a public address (`S3`, from ip-ranges.json); vpcgate
    // cannot know it and prints `-` (field 24 pkt-src-aws-service, 25 pkt-dst-aws-service).
    assert_eq!(format.fields()[24], Field::PktSrcAwsService);
    assert_eq!(format.fields()[25], Field::PktDstAwsService);
    assert_fields(&render(&format, &recs[0], &meta), aws_ingress, &[24]);
    assert_fields(&render(&format, &recs[1], &meta), aws_egress, &[25]);
}

// ----- FL-11: traffic-path 1 and a header line --------------------------------------------

/// FL-11 (AWS News Blog, "VPC encryption controls", Nov 2025): a flow log of a web server
/// (10.0.128.55, port 80) with its header line. Traffic between two ENIs of one VPC:
/// egress shows traffic-path 1, ingress `-`. The excerpt's last field,
/// `encryption-status`, is a version 10 field that vpcgate does not write: the format
/// without it is compared, and the full format is refused with a message saying so.
#[test]
fn fl11_header_and_traffic_path_within_the_vpc() {
    let aws_format = "${flow-direction} ${traffic-path} ${srcaddr} ${dstaddr} ${srcport} ${dstport} ${encryption-status}";
    let err = LogFormat::parse(aws_format).unwrap_err();
    assert_eq!(
        err,
        FormatError::LaterVersion {
            name: "encryption-status".into(),
            column: aws_format.find("${encryption-status}").unwrap() + 1, // 79
            version: 10
        }
    );
    assert!(err.to_string().contains("versions 2 to 8"), "{err}");

    let aws_header =
        "flow-direction traffic-path srcaddr dstaddr srcport dstport encryption-status";
    let aws = [
        "ingress - 10.0.133.8 10.0.128.55 43236 80 1",
        "egress 1 10.0.128.55 10.0.133.8 80 43236 1",
        "ingress - 10.0.133.8 10.0.128.55 36902 80 1",
        "egress 1 10.0.128.55 10.0.133.8 80 36902 1",
        "ingress - 10.0.130.104 10.0.128.55 55016 80 0",
        "egress 1 10.0.128.55 10.0.130.104 80 55016 0",
        "ingress - 10.0.130.104 10.0.128.55 60276 80 0",
        "egress 1 10.0.128.55 10.0.130.104 80 60276 0",
    ];
    let without_last = |s: &str| s.rsplit_once(' ').unwrap().0.to_string();

    let format = LogFormat::parse(aws_format.trim_end_matches(" ${encryption-status}")).unwrap();
    assert_eq!(format.version(), 5);
    assert_eq!(format.header(), without_last(aws_header));

    let server = "10.0.128.55";
    let conns: [(&'static str, u16); 4] = [
        ("10.0.133.8", 43236),
        ("10.0.133.8", 36902),
        ("10.0.130.104", 55016),
        ("10.0.130.104", 60276),
    ];
    let mut bursts = Vec::new();
    for (i, &(client, port)) in conns.iter().enumerate() {
        let t = 1_700_000_000 + 10 * i as u64;
        bursts.push(
            Burst::new(Flow::ingress(client, server, port, 80, 6), 5, 400, t, t + 1)
                .flags(&[SYN], None),
        );
        bursts.push(
            Burst::new(Flow::egress(server, client, 80, port, 6), 4, 300, t, t + 1)
                .flags(&[SYN | ACK], None)
                .path(Some(1)),
        );
    }
    let recs = aggregate(600, &bursts);
    assert_eq!(recs.len(), 8);

    // Written through FlowLogWriter: header line first, then the records in output order.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fl11.log");
    let mut w = FlowLogWriter::create(&path, format).unwrap();
    for rec in &recs {
        w.write(rec, &EniMeta::default()).unwrap();
    }
    assert_eq!(w.records_written(), 8);
    w.finish().unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 9);
    assert_eq!(lines[0], without_last(aws_header));
    for (ours, aws) in lines[1..].iter().zip(aws) {
        assert_fields(ours, &without_last(aws), &[]);
    }
}

// ----- the version rule ----------------------------------------------------------------

/// "If your custom format includes only version 2 fields, the version is 2; if it mixes
/// fields of versions 2, 3 and 4, the version is 4" (flow-log-records.html, aws-semantics §6.4).
#[test]
fn version_is_the_highest_version_among_the_fields() {
    let v = |s: &str| LogFormat::parse(s).unwrap().version();
    assert_eq!(v("${version} ${interface-id} ${srcaddr} ${action}"), 2);
    assert_eq!(v("${interface-id} ${bytes} ${start}"), 2);
    assert_eq!(v("${version} ${vpc-id} ${srcaddr} ${az-id}"), 4);
    assert_eq!(v("${version} ${vpc-id} ${region} ${srcaddr}"), 4);
    assert_eq!(v("${version} ${reject-reason}"), 8);
    assert_eq!(v("${ecs-task-id} ${flow-direction}"), 7);

    // The version field prints the format's version.
    let format = LogFormat::parse("${version} ${srcaddr} ${reject-reason}").unwrap();
    let rec = FlowRecord::nodata(vpcgate::model::EniNum(0), 0, 60);
    assert_eq!(render(&format, &rec, &fl_meta()), "8 - -\n");
}

#[test]
fn format_errors_help_the_user() {
    let e = LogFormat::parse("${version} ${interfaceid}").unwrap_err();
    assert_eq!(
        e,
        FormatError::UnknownField {
            name: "interfaceid".into(),
            column: 12,
            suggestion: Some(Field::InterfaceId)
        }
    );
    let msg = e.to_string();
    assert!(msg.contains("did you mean `${interface-id}`"), "{msg}");
    assert!(msg.contains("flow-log-records.html"), "{msg}");
    assert_eq!(LogFormat::parse("").unwrap_err(), FormatError::Empty);
    assert!(matches!(
        LogFormat::parse("${srcaddr").unwrap_err(),
        FormatError::Unclosed { .. }
    ));
    assert!(matches!(
        LogFormat::parse("srcaddr").unwrap_err(),
        FormatError::UnexpectedText { .. }
    ));
    assert!(matches!(
        LogFormat::parse("${version}:${srcaddr}").unwrap_err(),
        FormatError::UnexpectedText { .. }
    ));
    assert!(matches!(
        LogFormat::parse("${srcaddr} ${srcaddr}").unwrap_err(),
        FormatError::Duplicate { .. }
    ));
}

// ----- windows ---------------------------------------------------------------------------

fn one_packet_records(interval: u32, times: &[(u64, u32)]) -> Vec<FlowRecord> {
    let flow = Flow::egress("10.0.0.5", "198.51.100.1", 40000, 443, 6);
    let mut agg = Aggregator::new(interval);
    for (seq, &(s, n)) in times.iter().enumerate() {
        agg.observe(
            &flow.obs(60, ACK, Some(8)),
            Timestamp::from_secs_nanos(s, n),
            seq as u64,
        );
    }
    let mut out = Vec::new();
    agg.close_all(&mut out);
    out
}

#[test]
fn windows_are_aligned_to_the_interval_in_unix_time() {
    // 1418530010 = 2014-12-14T04:06:50Z.
    let times = [
        (1418530010, 0),
        (1418530019, 999_999_999),
        (1418530020, 0),
        (1418530199, 5),
        (1418530200, 0),
    ];
    let w60: Vec<_> = one_packet_records(60, &times)
        .iter()
        .map(|r| (r.window_start, r.packets))
        .collect();
    assert_eq!(
        w60,
        [
            (1418529960, 2),
            (1418530020, 1),
            (1418530140, 1),
            (1418530200, 1)
        ]
    );
    let w600: Vec<_> = one_packet_records(600, &times)
        .iter()
        .map(|r| (r.window_start, r.packets))
        .collect();
    assert_eq!(w600, [(1418529600, 4), (1418530200, 1)]);
    assert!(w60.iter().all(|(w, _)| w % 60 == 0) && w600.iter().all(|(w, _)| w % 600 == 0));
}

#[test]
fn start_and_end_are_floor_seconds_of_first_and_last_packet() {
    let recs = one_packet_records(60, &[(1000, 999_999_999), (1010, 1), (1019, 999_999_999)]);
    assert_eq!(recs.len(), 1);
    assert_eq!(
        (recs[0].start, recs[0].end, recs[0].packets),
        (1000, 1019, 3)
    );
    // A single packet: start == end.
    let recs = one_packet_records(600, &[(1_566_933_133, 700_000_000)]);
    assert_eq!((recs[0].start, recs[0].end), (1_566_933_133, 1_566_933_133));
}

#[test]
fn close_before_emits_windows_once_they_end() {
    let flow = Flow::ingress("198.51.100.1", "10.0.0.5", 40000, 443, 6);
    let mut agg = Aggregator::new(60);
    agg.observe(
        &flow.obs(60, SYN, None),
        Timestamp::from_secs_nanos(119, 0),
        0,
    );
    agg.observe(
        &flow.obs(60, ACK, None),
        Timestamp::from_secs_nanos(120, 0),
        1,
    );
    let mut out = Vec::new();
    agg.close_before(119, &mut out);
    assert!(out.is_empty());
    agg.close_before(120, &mut out);
    assert_eq!(
        out.iter()
            .map(|r| (r.window_start, r.tcp_flags))
            .collect::<Vec<_>>(),
        [(60, 2)]
    );
    assert_eq!(agg.open_records(), 1);
}

/// EMULATION.md §6: the action is part of the key, so a flow partly accepted and partly
/// rejected in one window gives two records (aws-semantics §9 item 12 leaves it open).
#[test]
fn accepted_and_rejected_packets_of_one_flow_give_two_records() {
    let flow = Flow::ingress("198.51.100.1", "10.0.0.5", 40000, 22, 6);
    let mut agg = Aggregator::new(600);
    let plan = [
        (Action::Accept, SYN, 1200),
        (Action::Accept, ACK, 1201),
        (Action::Reject, PSH | ACK, 1250), // e.g. the NACL changed (--rules-at)
        (Action::Accept, ACK, 1260),
        (Action::Reject, FIN | ACK, 1300),
    ];
    for (seq, &(action, flags, t)) in plan.iter().enumerate() {
        agg.observe(
            &flow.action(action).obs(100, flags, None),
            Timestamp::from_secs_nanos(t, 0),
            10 + seq as u64,
        );
    }
    let mut recs = Vec::new();
    agg.close_all(&mut recs);
    let got: Vec<_> = recs
        .iter()
        .map(|r| {
            (
                r.action,
                r.first_seq,
                r.packets,
                r.bytes,
                r.start,
                r.end,
                r.tcp_flags,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (Action::Accept, 10, 3, 300, 1200, 1260, 2),
            (Action::Reject, 12, 2, 200, 1250, 1300, 1)
        ]
    );
    let lines: Vec<String> = recs
        .iter()
        .map(|r| render(&LogFormat::default_format(), r, &fl_meta()))
        .collect();
    assert_eq!(
        lines,
        [
            "2 123456789010 eni-1235b8ca123456789 198.51.100.1 10.0.0.5 40000 22 6 3 300 1200 1260 ACCEPT OK\n",
            "2 123456789010 eni-1235b8ca123456789 198.51.100.1 10.0.0.5 40000 22 6 2 200 1250 1300 REJECT OK\n",
        ]
    );
}

// ----- writers -----------------------------------------------------------------------------

#[test]
fn gzip_output_decodes_to_the_same_text() {
    let flow = Flow::ingress("203.0.113.12", "172.31.16.139", 0, 53, 17);
    let mut bursts = Vec::new();
    for i in 0..300u64 {
        let flow = Flow {
            srcport: 30_000 + i as u16,
            ..flow
        };
        bursts.push(Burst::new(flow, 3, 252, 1432917027 + i, 1432917027 + i + 2));
    }
    let mut recs = aggregate(60, &bursts);
    recs.push(FlowRecord::nodata(
        vpcgate::model::EniNum(1),
        1432917000,
        60,
    ));
    recs.sort();
    let format = LogFormat::parse(FL7_FORMAT).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let (plain, gz) = (dir.path().join("flow.log"), dir.path().join("flow.log.gz"));
    for path in [&plain, &gz] {
        let mut w = FlowLogWriter::create(path, format.clone()).unwrap();
        for rec in &recs {
            w.write(rec, &fl_meta()).unwrap();
        }
        assert_eq!(w.records_written(), recs.len() as u64);
        w.finish().unwrap();
    }
    let text = std::fs::read_to_string(&plain).unwrap();
    let raw = std::fs::read(&gz).unwrap();
    assert_eq!(&raw[..2], [0x1f, 0x8b], "gzip magic");
    assert!(raw.len() < text.len());
    let mut decoded = String::new();
    flate2::read::MultiGzDecoder::new(&raw[..])
        .read_to_string(&mut decoded)
        .unwrap();
    assert_eq!(decoded, text);

    let mut expected = format!("{}\n", format.header());
    for rec in &recs {
        expected.push_str(&render(&format, rec, &fl_meta()));
    }
    assert_eq!(text, expected);
}
