//! `--report report.html`: one self-contained HTML page (inline CSS and SVG, no
//! script, no font or image fetched) that shows a run: its totals, a timeline of
//! accepted and rejected packets per ENI, the top rejected flows with the rule that
//! decided each, rule coverage as a heat map, what connection tracking did, and the
//! ruleset as a picture.
//!
//! The page is a pure function of a [`Report`]: [`render`] turns one into a string.
//! [`Report::from_replay`] builds one from a replay's [`Summary`]; another command
//! (`vpcgate diff`) can build its own and call [`render`]. The page declares a
//! Content-Security-Policy of `default-src 'none'` (inline styles allowed), so a
//! browser refuses, and reports, any fetch a later change might add. The markup is an askama
//! template (`templates/report.html`, checked when the crate compiles, HTML-escaped
//! by default); the timeline charts are drawn with plotters' SVG backend (no font
//! files: the browser draws the text); the ruleset diagram is laid out here and drawn
//! by the template. askama rather than minijinja: the template is compiled and
//! type-checked with the crate, so a wrong field name fails the build, not a user's
//! run, and nothing is loaded at run time.
//!
//! ```
//! use vpcgate::report::html::{render, Report, Totals};
//! // Another command's data: a title and the totals; empty sections say so.
//! let page = render(&Report {
//!     title: "vpcgate diff".into(),
//!     totals: Totals { packets: 721, accepted: 671, rejected: 48, ..Default::default() },
//!     ..Default::default()
//! });
//! assert!(page.contains(r#"<div class="n" id="rejected">48</div>"#));
//! assert!(!page.contains("<script"));
//! ```
#![deny(clippy::disallowed_methods, clippy::disallowed_types)]

use super::{reject_groups, Collected, Counts, FlowKey};
use crate::engine::Reason;
use crate::model::{SgPeer, Vpc, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP};
use crate::pipeline::{Coverage, ReplayConfig, Summary};
use crate::wire::packet::{Timestamp, NANOS_PER_SEC};
use askama::Template;
use plotters::prelude::*;

/// How many ENIs get their own timeline; the others are summed in one more row.
pub const TIMELINE_ENIS: usize = 16;
/// How many rejected flows and reject groups the page lists.
pub const TOP_FLOWS: usize = 15;
/// ENIs drawn per subnet in the diagram; the others are counted.
pub const DIAGRAM_ENIS: usize = 12;

/// Everything the page shows. Every list is already in the order shown.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// `vpcgate replay`: the page's title.
    pub title: String,
    /// What was replayed against what: a line each.
    pub inputs: Vec<String>,
    pub totals: Totals,
    /// Things the user should know (the summary's notes).
    pub notes: Vec<String>,
    pub timeline: Option<Timeline>,
    pub rejected_flows: Vec<RejectedFlow>,
    /// Rejected packets not among `rejected_flows` (cut from the list or not kept).
    pub rejected_flows_rest: u64,
    pub reject_rules: Vec<RejectRule>,
    pub coverage: Vec<CoverageMap>,
    pub stateful: Stateful,
    pub diagram: Option<Diagram>,
}

#[derive(Clone, Debug, Default)]
pub struct Totals {
    pub packets: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub not_evaluated: u64,
    /// The first and last packet's capture time, as text.
    pub span: String,
}

/// Accepted and rejected packets per ENI over capture time.
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    /// The bucket width as text (`10 s`) and the first bucket's start (UTC).
    pub bucket: String,
    pub start: String,
    pub rows: Vec<TimelineRow>,
    /// Ruleset changes (`--rules-at`) inside the span, marked on every chart.
    pub changes: Vec<String>,
}

#[derive(Clone, Debug, Default)]
pub struct TimelineRow {
    /// `eni-0abc`, or `3 other ENIs`.
    pub eni: String,
    /// Its description and subnet, when known.
    pub about: String,
    pub accepted: u64,
    pub rejected: u64,
    /// The chart: an `<svg>` element drawn by plotters.
    pub svg: String,
}

/// One rejected flow: its packets, what it was, and the check and rule that denied it.
#[derive(Clone, Debug, Default)]
pub struct RejectedFlow {
    pub packets: u64,
    /// `198.51.100.7 → 10.0.1.20 tcp 22`, or for replies
    /// `10.0.11.11 tcp 8080 → 10.0.2.10 (replies)`.
    pub flow: String,
    /// Packets of a live tracked connection (replies a stateless NACL drops).
    pub replies: bool,
    /// `nacl-outbound acl-0abc rule *`.
    pub check: String,
    /// `deny all (default)`, `allow … ` or the groups checked.
    pub rule: String,
}

/// Rejects grouped by the check and rule that denied them (as the text summary).
#[derive(Clone, Debug, Default)]
pub struct RejectRule {
    pub packets: u64,
    pub title: String,
    /// Of these, replies of tracked connections.
    pub tracked: u64,
}

/// Rule coverage of one ruleset as a heat map.
#[derive(Clone, Debug, Default)]
pub struct CoverageMap {
    pub ruleset: String,
    pub nacls: Vec<HeatRow>,
    pub groups: Vec<HeatRow>,
    /// Rules nothing hit (never the implicit `*` entries): how many, and each as text.
    pub not_hit: usize,
    pub never_hit: Vec<String>,
    pub rules: usize,
}

/// A NACL direction or an SG direction: one row of cells.
#[derive(Clone, Debug, Default)]
pub struct HeatRow {
    /// `acl-0abc inbound`, `sg-0abc (web) ingress`.
    pub label: String,
    pub cells: Vec<HeatCell>,
    /// The implicit `*` entries, shown apart.
    pub implicit: Vec<HeatCell>,
}

#[derive(Clone, Debug, Default)]
pub struct HeatCell {
    /// `100`, `*`, `#1`.
    pub name: String,
    pub hits: u64,
    /// The rule as text, for the tooltip.
    pub rule: String,
    /// Background and text colour (CSS).
    pub bg: String,
    pub fg: String,
    pub never: bool,
}

/// What stateful tracking did. `flips` is for a counterfactual run (security groups
/// without tracking, NACLs with it) when one is given.
#[derive(Clone, Debug, Default)]
pub struct Stateful {
    /// Accepted packets that passed a security group through a live tracked
    /// connection (its rules were not consulted); those a group's rules allowed as an
    /// untracked flow (judged by the rules every time); and the others, passed by
    /// rules alone.
    pub accepted_tracked: u64,
    pub accepted_untracked: u64,
    pub accepted_by_rules: u64,
    /// Per ENI check (a packet between two ENIs is checked at both).
    pub created: u64,
    pub tracked_checks: u64,
    pub untracked_checks: u64,
    pub icmp_not_tracked_checks: u64,
    pub no_security_group_checks: u64,
    /// Rejected replies of tracked connections: the SG let them out, a NACL did not.
    pub rejected_replies: u64,
    /// Bar widths in percent of accepted packets.
    pub tracked_pct: f64,
    pub untracked_pct: f64,
    pub rules_pct: f64,
    /// Verdicts that flip under a counterfactual, when there is one.
    pub flips: Option<Flips>,
}

/// Verdicts that change: under a counterfactual (not AWS's behaviour), or from an old
/// ruleset to a new one (`vpcgate diff --report`).
#[derive(Clone, Debug, Default)]
pub struct Flips {
    /// `with stateless security groups`, `from rulesets/old.toml`.
    pub what: String,
    pub rows: Vec<Flip>,
    /// A counterfactual's flips: tagged "not AWS".
    pub not_aws: bool,
}

#[derive(Clone, Debug, Default)]
pub struct Flip {
    pub packets: u64,
    /// `ACCEPT → REJECT`.
    pub change: String,
    pub flow: String,
    pub rule: String,
}

/// The ruleset as a picture: subnets holding ENIs, security groups, and the
/// references between groups.
#[derive(Clone, Debug, Default)]
pub struct Diagram {
    pub width: i32,
    pub height: i32,
    pub subnets: Vec<SubnetBox>,
    pub groups: Vec<GroupBox>,
    pub arcs: Vec<Reference>,
}

#[derive(Clone, Debug, Default)]
pub struct SubnetBox {
    pub x: i32,
    pub y: i32,
    pub w: i32,
    pub h: i32,
    pub title: String,
    pub detail: String,
    pub enis: Vec<EniBox>,
    /// ENIs not drawn.
    pub more: usize,
}

#[derive(Clone, Debug, Default)]
pub struct EniBox {
    pub x: i32,
    pub y: i32,
    pub w: i32,
    pub id: String,
    pub about: String,
    pub addresses: String,
    pub chips: Vec<Chip>,
}

/// A security group's colour swatch on an ENI.
#[derive(Clone, Debug, Default)]
pub struct Chip {
    pub x: i32,
    pub y: i32,
    pub color: String,
    pub label: String,
}

#[derive(Clone, Debug, Default)]
pub struct GroupBox {
    pub x: i32,
    pub y: i32,
    pub w: i32,
    pub color: String,
    pub name: String,
    pub id: String,
    pub enis: usize,
}

/// A reference from one group's rule to a group: drawn in the direction traffic
/// flows (from the peer to the group for ingress, the other way for egress).
#[derive(Clone, Debug, Default)]
pub struct Reference {
    pub path: String,
    pub label: String,
    pub lx: i32,
    pub ly: i32,
}

#[derive(Template)]
#[template(path = "report.html")]
struct Page<'a> {
    r: &'a Report,
}

/// The page for `report`: one HTML document, nothing fetched.
pub fn render(report: &Report) -> String {
    Page { r: report }
        .render()
        .unwrap_or_else(|e| format!("<!DOCTYPE html><title>report</title><p>{e}</p>"))
}

impl Report {
    /// The report of a replay (`summary` made with [`ReplayConfig::report`] set).
    pub fn from_replay(s: &Summary, cfg: &ReplayConfig) -> Report {
        let span = match (s.first_packet, s.last_packet) {
            (Some(a), Some(b)) => format!(
                "{} to {} ({})",
                utc(a),
                utc(b),
                duration_text(b.0.saturating_sub(a.0))
            ),
            _ => "no packet".to_string(),
        };
        let mut inputs: Vec<String> = cfg
            .captures
            .iter()
            .map(|p| format!("capture {}", p.display()))
            .collect();
        for r in &cfg.rulesets {
            inputs.push(format!("ruleset {} ({})", r.label, r.vpc.id));
        }
        let groups = reject_groups(s);
        let rejected_replies = groups.iter().map(|g| g.tracked).sum();
        let reject_rules = groups
            .iter()
            .take(TOP_FLOWS)
            .map(|g| RejectRule {
                packets: g.packets,
                title: g.title(),
                tracked: g.tracked,
            })
            .collect();
        let vpc = cfg.rulesets.first().map(|r| &*r.vpc);
        let collected = s.report.clone().unwrap_or_default();
        // `--rules-at` changes that fell inside the capture, marked on the timeline.
        let changes: Vec<Timestamp> = s.ruleset_from.iter().flatten().copied().collect();
        let timeline = vpc.and_then(|v| timeline(&collected, &s.eni_ids, v, &changes));
        let (rejected_flows, rejected_flows_rest) = rejected_flows(&collected, s, cfg);
        // A counterfactual run (not AWS) says so first, and lists what flips.
        let mut notes = super::notes(s, cfg);
        let mut title = "vpcgate replay".to_string();
        let flips = s.counterfactual.as_ref().map(|c| {
            title = format!("vpcgate replay: COUNTERFACTUAL, NOT AWS ({})", c.mode.describe());
            notes.insert(
                0,
                format!(
                    "COUNTERFACTUAL, NOT AWS: {} ({}). Every verdict and count on this page is what such a VPC would do; the packets whose verdict differs from AWS's are listed under \"Stateful and stateless\".",
                    c.mode.describe(),
                    super::counterfactual_flags(c.mode)
                ),
            );
            Flips {
                not_aws: true,
                what: format!("with {}", c.mode.describe()),
                rows: c
                    .flips
                    .groups
                    .iter()
                    .take(TOP_FLOWS)
                    .map(|g| Flip {
                        packets: g.packets,
                        change: g.kind.as_str().to_string(),
                        flow: g.pattern(),
                        rule: format!("AWS: {}; here: {}", g.before, g.after),
                    })
                    .collect(),
            }
        });
        let e = &s.engine;
        let acc =
            collected.accepted_tracked + collected.accepted_untracked + collected.accepted_by_rules;
        let pct = |n: u64| {
            if acc == 0 {
                0.0
            } else {
                (n as f64 * 1000.0 / acc as f64).round() / 10.0
            }
        };
        Report {
            title,
            inputs,
            totals: Totals {
                packets: s.packets,
                accepted: s.accepted,
                rejected: s.rejected,
                not_evaluated: s.not_evaluated,
                span,
            },
            notes,
            timeline,
            rejected_flows,
            rejected_flows_rest,
            reject_rules,
            coverage: s.coverage.iter().map(coverage_map).collect(),
            stateful: Stateful {
                accepted_tracked: collected.accepted_tracked,
                accepted_untracked: collected.accepted_untracked,
                accepted_by_rules: collected.accepted_by_rules,
                created: e.conntrack_created,
                tracked_checks: e.conntrack_hits,
                untracked_checks: e.untracked,
                icmp_not_tracked_checks: e.icmp_not_tracked,
                no_security_group_checks: e.no_security_group,
                rejected_replies,
                tracked_pct: pct(collected.accepted_tracked),
                untracked_pct: pct(collected.accepted_untracked),
                rules_pct: pct(collected.accepted_by_rules),
                flips,
            },
            diagram: vpc.map(diagram),
        }
    }
}

/// `2024-11-24 08:00:00 UTC` (fractions of a second dropped).
pub fn utc(t: Timestamp) -> String {
    let secs = t.secs();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // H. Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// `12 min 5 s`, `850 ms`, `3 h 2 min`.
pub fn duration_text(ns: u64) -> String {
    let ms = ns / (NANOS_PER_SEC / 1000);
    let s = ns / NANOS_PER_SEC;
    if s == 0 {
        format!("{ms} ms")
    } else if s < 60 {
        if ms.is_multiple_of(1000) {
            format!("{s} s")
        } else {
            format!("{}.{:03} s", s, ms % 1000)
        }
    } else if s < 3600 {
        format!("{} min {} s", s / 60, s % 60)
    } else if s < 86_400 {
        format!("{} h {} min", s / 3600, s / 60 % 60)
    } else {
        format!("{} d {} h", s / 86_400, s / 3600 % 24)
    }
}

/// An offset on the timeline's axis: `+0`, `+30s`, `+5m`, `+1.5h`.
fn offset_label(secs: f64) -> String {
    let trim = |v: f64| {
        let t = format!("{v:.1}");
        t.trim_end_matches(".0").to_string()
    };
    if secs <= 0.0 {
        "+0".into()
    } else if secs < 1.0 {
        format!("+{}ms", (secs * 1000.0).round())
    } else if secs < 120.0 {
        format!("+{}s", trim(secs))
    } else if secs < 7200.0 {
        format!("+{}m", trim(secs / 60.0))
    } else if secs < 172_800.0 {
        format!("+{}h", trim(secs / 3600.0))
    } else {
        format!("+{}d", trim(secs / 86_400.0))
    }
}

fn timeline(
    c: &Collected,
    eni_ids: &[String],
    vpc: &Vpc,
    changes: &[Timestamp],
) -> Option<Timeline> {
    if c.per_eni.is_empty() || c.buckets == 0 {
        return None;
    }
    let total = |v: &[Counts]| v.iter().map(|c| c.accepted + c.rejected).sum::<u64>();
    let mut rows: Vec<(String, Vec<Counts>)> = c
        .per_eni
        .iter()
        .map(|(n, v)| {
            let id = eni_ids
                .get(n.get())
                .cloned()
                .unwrap_or_else(|| format!("ENI {}", n.0));
            (id, v.clone())
        })
        .collect();
    rows.sort_by(|a, b| total(&b.1).cmp(&total(&a.1)).then(a.0.cmp(&b.0)));
    if rows.len() > TIMELINE_ENIS + 1 {
        let rest = rows.split_off(TIMELINE_ENIS);
        let mut sum = vec![Counts::default(); c.buckets];
        for (_, v) in &rest {
            for (s, x) in sum.iter_mut().zip(v) {
                s.accepted += x.accepted;
                s.rejected += x.rejected;
            }
        }
        rows.push((format!("{} other ENIs", rest.len()), sum));
    }
    let bucket_s = c.bucket_ns as f64 / NANOS_PER_SEC as f64;
    let end = c.start.0 + c.bucket_ns * c.buckets as u64;
    let inside: Vec<Timestamp> = changes
        .iter()
        .copied()
        .filter(|t| t.0 > c.start.0 && t.0 < end)
        .collect();
    let marks: Vec<f64> = inside
        .iter()
        .map(|t| (t.0 - c.start.0) as f64 / NANOS_PER_SEC as f64)
        .collect();
    let last = rows.len() - 1;
    let rows = rows
        .into_iter()
        .enumerate()
        .map(|(i, (id, v))| {
            let about = vpc
                .network_interfaces
                .iter()
                .find(|e| e.id == id)
                .map(|e| {
                    let mut a = clip(&e.description, 40);
                    if !a.is_empty() {
                        a.push_str(", ");
                    }
                    a.push_str(&e.subnet_id);
                    a
                })
                .unwrap_or_default();
            TimelineRow {
                accepted: v.iter().map(|c| c.accepted).sum(),
                rejected: v.iter().map(|c| c.rejected).sum(),
                svg: timeline_svg(&v, bucket_s, &marks, i == last),
                eni: id,
                about,
            }
        })
        .collect();
    Some(Timeline {
        bucket: duration_text(c.bucket_ns),
        start: utc(c.start),
        rows,
        changes: inside.into_iter().map(utc).collect(),
    })
}

/// Colours of the page (also in the template's CSS).
const ACCEPT_RGB: RGBColor = RGBColor(0x2e, 0x8b, 0x57);
const REJECT_RGB: RGBColor = RGBColor(0xc6, 0x28, 0x28);
const CHANGE_RGB: RGBColor = RGBColor(0x7b, 0x1f, 0xa2);

/// One ENI's chart: accepted packets up, rejected down, per bucket.
fn timeline_svg(v: &[Counts], bucket_s: f64, marks: &[f64], axis: bool) -> String {
    let amax = v.iter().map(|c| c.accepted).max().unwrap_or(0);
    let rmax = v.iter().map(|c| c.rejected).max().unwrap_or(0);
    // Both halves get room, so that a few rejects beside many accepts still show.
    let hi = amax.max(rmax / 4).max(1) as f64;
    let lo = -(rmax.max(amax / 4).max(1) as f64);
    let height = if axis { 110 } else { 84 };
    let mut svg = String::new();
    let drawn =
        (|| -> Result<(), Box<dyn std::error::Error + '_>> {
            let root = SVGBackend::with_string(&mut svg, (900, height)).into_drawing_area();
            let mut chart = ChartBuilder::on(&root)
                .margin(4)
                .margin_right(14)
                .x_label_area_size(if axis { 24 } else { 0 })
                .y_label_area_size(56)
                .build_cartesian_2d(0f64..(v.len() as f64 * bucket_s), lo..hi)?;
            let ylabel = |y: &f64| {
                let n = y.abs().round() as u64;
                if *y < 0.0 {
                    format!("−{n}")
                } else {
                    n.to_string()
                }
            };
            let xlabel = |x: &f64| offset_label(*x);
            let mut mesh = chart.configure_mesh();
            mesh.disable_x_mesh()
                .y_labels(3)
                .y_label_formatter(&ylabel)
                .light_line_style(RGBColor(0xee, 0xee, 0xee))
                .label_style(("sans-serif", 11));
            if axis {
                mesh.x_labels(10).x_label_formatter(&xlabel);
            } else {
                mesh.x_labels(0);
            }
            mesh.draw()?;
            chart.draw_series(v.iter().enumerate().filter(|(_, c)| c.accepted > 0).map(
                |(i, c)| {
                    let x = i as f64 * bucket_s;
                    Rectangle::new(
                        [(x, 0.0), (x + bucket_s * 0.9, c.accepted as f64)],
                        ACCEPT_RGB.filled(),
                    )
                },
            ))?;
            chart.draw_series(v.iter().enumerate().filter(|(_, c)| c.rejected > 0).map(
                |(i, c)| {
                    let x = i as f64 * bucket_s;
                    Rectangle::new(
                        [(x, 0.0), (x + bucket_s * 0.9, -(c.rejected as f64))],
                        REJECT_RGB.filled(),
                    )
                },
            ))?;
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(0.0, 0.0), (v.len() as f64 * bucket_s, 0.0)],
                BLACK.stroke_width(1),
            )))?;
            chart.draw_series(
                marks
                    .iter()
                    .map(|&x| PathElement::new(vec![(x, lo), (x, hi)], CHANGE_RGB.stroke_width(2))),
            )?;
            root.present()?;
            Ok(())
        })();
    if drawn.is_err() {
        return String::new();
    }
    svg
}

/// `tcp`, `udp`, `icmp`, `icmpv6` or the number.
fn proto_name(p: u8) -> String {
    match p {
        PROTO_TCP => "tcp".into(),
        PROTO_UDP => "udp".into(),
        PROTO_ICMP => "icmp".into(),
        PROTO_ICMPV6 => "icmpv6".into(),
        n => format!("proto {n}"),
    }
}

fn flow_text(k: &FlowKey) -> String {
    let p = proto_name(k.protocol);
    if let Some((t, c)) = k.icmp {
        return format!("{} → {} {p} type {t} code {c}", k.src, k.dst);
    }
    match (k.src_port, k.dst_port) {
        (Some(sp), _) => format!("{} {p} {sp} → {} (replies)", k.src, k.dst),
        (None, Some(dp)) => format!("{} → {} {p} {dp}", k.src, k.dst),
        (None, None) => format!("{} → {} {p}", k.src, k.dst),
    }
}

/// The check and rule of a reject, from the ruleset that judged it.
fn check_and_rule(
    s: &Summary,
    cfg: &ReplayConfig,
    ruleset: usize,
    reason: Reason,
) -> (String, String) {
    let Some(rs) = cfg.rulesets.get(ruleset) else {
        return (format!("{reason:?}"), String::new());
    };
    let vpc = &rs.vpc;
    let eni = |i: crate::model::EniIdx| {
        vpc.network_interfaces
            .get(i.get())
            .map_or("?".to_string(), |e| e.id.clone())
    };
    let groups = |i: crate::model::EniIdx| -> String {
        let Some(e) = vpc.network_interfaces.get(i.get()) else {
            return String::new();
        };
        if e.security_groups.is_empty() {
            return "the ENI has no security group".into();
        }
        let names: Vec<String> = e
            .security_groups
            .iter()
            .map(|g| {
                let name = vpc
                    .security_groups
                    .iter()
                    .find(|x| &x.id == g)
                    .map_or("", |x| x.name.as_str());
                super::group_label(g, name)
            })
            .collect();
        format!("no rule of {} allowed it", names.join(", "))
    };
    match reason {
        Reason::NaclInbound { rule, rule_number } | Reason::NaclOutbound { rule, rule_number } => {
            let acl = vpc
                .network_acls
                .get(rule.acl as usize)
                .map_or("?", |a| a.id.as_str());
            let dir = if rule.egress { "outbound" } else { "inbound" };
            let text = s
                .coverage
                .get(ruleset)
                .and_then(|c| {
                    c.nacl.iter().find(|r| {
                        r.acl == acl && r.egress == rule.egress && r.rule_number == rule_number
                    })
                })
                .map(|r| r.text.clone())
                .unwrap_or_default();
            let num = if rule_number >= 32767 {
                "* (default deny)".to_string()
            } else {
                rule_number.to_string()
            };
            (format!("nacl-{dir} {acl} rule {num}"), text)
        }
        Reason::SgIngress { eni: i } => (format!("sg-ingress {}", eni(i)), groups(i)),
        Reason::SgEgress { eni: i } => (format!("sg-egress {}", eni(i)), groups(i)),
        Reason::ConntrackFull { eni: i } => (
            format!("conntrack-full {}", eni(i)),
            "no room for one more tracked connection (--max-flows)".into(),
        ),
        other => (format!("{other:?}"), String::new()),
    }
}

fn rejected_flows(c: &Collected, s: &Summary, cfg: &ReplayConfig) -> (Vec<RejectedFlow>, u64) {
    let shown: Vec<RejectedFlow> = c
        .flows
        .iter()
        .take(TOP_FLOWS)
        .map(|(k, n)| {
            let (check, rule) = check_and_rule(s, cfg, k.ruleset, k.reason);
            RejectedFlow {
                packets: *n,
                flow: flow_text(k),
                replies: k.reply,
                check,
                rule,
            }
        })
        .collect();
    let listed: u64 = shown.iter().map(|f| f.packets).sum();
    (shown, s.rejected.saturating_sub(listed))
}

/// A sequential blue scale: `t` in 0..=1.
fn heat(t: f64) -> (String, String) {
    let lerp = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
    let (r, g, b) = (lerp(222.0, 8.0), lerp(235.0, 48.0), lerp(247.0, 107.0));
    let fg = if t > 0.55 { "#fff" } else { "#111" };
    (format!("#{r:02x}{g:02x}{b:02x}"), fg.to_string())
}

fn coverage_map(c: &Coverage) -> CoverageMap {
    let max = c
        .nacl
        .iter()
        .map(|r| r.hits)
        .chain(c.sg.iter().map(|r| r.hits))
        .max()
        .unwrap_or(0);
    let cell = |name: String, hits: u64, rule: String| {
        let never = hits == 0;
        let (bg, fg) = if never {
            ("#fff".to_string(), "#888".to_string())
        } else {
            heat(((hits as f64).ln_1p() / (max.max(1) as f64).ln_1p()).clamp(0.08, 1.0))
        };
        HeatCell {
            name,
            hits,
            rule,
            bg,
            fg,
            never,
        }
    };
    let mut nacls: Vec<HeatRow> = Vec::new();
    for r in &c.nacl {
        let label = format!("{} {}", r.acl, super::nacl_direction(r.egress));
        if nacls.last().is_none_or(|l| l.label != label) {
            nacls.push(HeatRow {
                label: label.clone(),
                ..Default::default()
            });
        }
        let row = nacls.last_mut().expect("pushed");
        let text = format!(
            "{} rule {}: {} ({} hits)",
            label,
            super::rule_number_text(r.rule_number),
            r.text,
            r.hits
        );
        if r.default_deny {
            row.implicit.push(cell("*".into(), r.hits, text));
        } else {
            row.cells
                .push(cell(r.rule_number.to_string(), r.hits, text));
        }
    }
    let mut groups: Vec<HeatRow> = Vec::new();
    for r in &c.sg {
        let label = format!(
            "{} {}",
            super::group_label(&r.group, &r.group_name),
            super::sg_direction(r.egress)
        );
        if groups.last().is_none_or(|l| l.label != label) {
            groups.push(HeatRow {
                label: label.clone(),
                ..Default::default()
            });
        }
        let text = format!("{label} rule {}: {} ({} hits)", r.index + 1, r.text, r.hits);
        let row = groups.last_mut().expect("pushed");
        row.cells
            .push(cell(format!("#{}", r.index + 1), r.hits, text));
    }
    let (un_nacl, un_sg) = super::unexercised(c);
    CoverageMap {
        ruleset: c.label.clone(),
        nacls,
        groups,
        not_hit: un_nacl.len() + un_sg.len(),
        never_hit: un_nacl
            .iter()
            .map(|r| super::nacl_rule_text(r))
            .chain(un_sg.iter().map(|r| super::sg_rule_text(r)))
            .collect(),
        rules: c.nacl.iter().filter(|r| !r.default_deny).count() + c.sg.len(),
    }
}

const PALETTE: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
    "#7f7f7f", "#d62728",
];

/// Cuts `s` to `n` characters, with an ellipsis.
fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// Lays out the diagram: subnets in a grid of three columns, each with its ENIs;
/// the security groups in a column on the right, with arcs for group references.
pub fn diagram(vpc: &Vpc) -> Diagram {
    let cols = vpc.subnets.len().clamp(1, 3);
    const SW: i32 = 330; // subnet width
    const GAP: i32 = 20;
    const HEAD: i32 = 40;
    const ROW: i32 = 44;
    let color = |id: &str| {
        let i = vpc
            .security_groups
            .iter()
            .position(|g| g.id == id)
            .unwrap_or(0);
        PALETTE[i % PALETTE.len()].to_string()
    };
    let mut subnets = Vec::new();
    let mut row_y = 10;
    for chunk in vpc.subnets.chunks(cols) {
        let mut row_h = 0;
        for (ci, sn) in chunk.iter().enumerate() {
            let x = 10 + ci as i32 * (SW + GAP);
            let all: Vec<_> = vpc
                .network_interfaces
                .iter()
                .filter(|e| e.subnet_id == sn.id)
                .collect();
            let shown = all.len().min(DIAGRAM_ENIS);
            let more = all.len() - shown;
            let h = HEAD + shown as i32 * ROW + if more > 0 { 18 } else { 6 };
            row_h = row_h.max(h);
            let enis = all
                .iter()
                .take(shown)
                .enumerate()
                .map(|(i, e)| {
                    let y = row_y + HEAD + i as i32 * ROW;
                    let mut addrs: Vec<String> = e
                        .private_ipv4
                        .iter()
                        .take(2)
                        .map(|a| a.to_string())
                        .collect();
                    if let Some(p) = e.public_ipv4 {
                        addrs.push(format!("public {p}"));
                    }
                    if let Some(v6) = e.ipv6.first() {
                        addrs.push(v6.to_string());
                    }
                    let chips = e
                        .security_groups
                        .iter()
                        .enumerate()
                        .map(|(k, g)| Chip {
                            x: x + SW - 16 - k as i32 * 14,
                            y: y + 6,
                            color: color(g),
                            label: g.clone(),
                        })
                        .collect();
                    EniBox {
                        x: x + 6,
                        y,
                        w: SW - 12,
                        id: e.id.clone(),
                        about: clip(&e.description, 22),
                        addresses: clip(&addrs.join("  "), 52),
                        chips,
                    }
                })
                .collect();
            let mut detail = Vec::new();
            if let Some(c) = sn.ipv4_cidr {
                detail.push(c.to_string());
            }
            if !sn.availability_zone.is_empty() {
                detail.push(sn.availability_zone.clone());
            }
            if let Some(a) = &sn.network_acl_id {
                detail.push(format!("NACL {a}"));
            }
            subnets.push(SubnetBox {
                x,
                y: row_y,
                w: SW,
                h,
                title: sn.id.clone(),
                detail: detail.join(" · "),
                enis,
                more,
            });
        }
        // Equal heights in a row.
        let n = subnets.len();
        for s in &mut subnets[n - chunk.len()..] {
            s.h = row_h;
        }
        row_y += row_h + GAP;
    }
    let gx = 10 + cols as i32 * (SW + GAP) + 10;
    let gw = 250;
    let groups: Vec<GroupBox> = vpc
        .security_groups
        .iter()
        .enumerate()
        .map(|(i, g)| GroupBox {
            x: gx,
            y: 10 + i as i32 * 40,
            w: gw,
            color: color(&g.id),
            name: clip(if g.name.is_empty() { &g.id } else { &g.name }, 28),
            id: g.id.clone(),
            enis: vpc
                .network_interfaces
                .iter()
                .filter(|e| e.security_groups.contains(&g.id))
                .count(),
        })
        .collect();
    // One arc per (group, referenced group, direction), ports joined.
    let mut refs: Vec<(usize, usize, String)> = Vec::new();
    for (gi, g) in vpc.security_groups.iter().enumerate() {
        for (egress, rules) in [(false, &g.ingress), (true, &g.egress)] {
            for r in rules {
                let SgPeer::SecurityGroup(peer) = &r.peer else {
                    continue;
                };
                let Some(pi) = vpc.security_groups.iter().position(|x| &x.id == peer) else {
                    continue;
                };
                let ports = if matches!(r.ports, crate::model::PortSpec::Any) {
                    r.protocol.label()
                } else {
                    format!("{} {}", r.protocol.label(), r.ports)
                };
                // Traffic flows from the peer to the group for ingress.
                let (from, to) = if egress { (gi, pi) } else { (pi, gi) };
                match refs.iter_mut().find(|x| x.0 == from && x.1 == to) {
                    Some(x) => {
                        if !x.2.split(", ").any(|p| p == ports) {
                            x.2.push_str(", ");
                            x.2.push_str(&ports);
                        }
                    }
                    None => refs.push((from, to, ports)),
                }
            }
        }
    }
    let arcs: Vec<Reference> = refs
        .iter()
        .enumerate()
        .map(|(k, (from, to, ports))| {
            let x = gx + gw;
            let (y1, y2) = (10 + *from as i32 * 40 + 15, 10 + *to as i32 * 40 + 15);
            let d = 30 + (y1 - y2).abs() / 3 + (k as i32 % 3) * 12;
            let path = if from == to {
                format!(
                    "M {x} {} C {} {} {} {} {x} {}",
                    y1 - 6,
                    x + 40,
                    y1 - 20,
                    x + 40,
                    y1 + 20,
                    y1 + 6
                )
            } else {
                format!("M {x} {y1} C {} {y1} {} {y2} {x} {y2}", x + d, x + d)
            };
            Reference {
                path,
                label: clip(ports, 24),
                lx: x + d * 3 / 4 + 4,
                ly: (y1 + y2) / 2 + 4,
            }
        })
        .collect();
    let groups_h = 10 + groups.len() as i32 * 40 + 10;
    let arc_w = refs
        .iter()
        .map(|(f, t, _)| 30 + ((*f as i32 - *t as i32).abs() * 40) / 3 + 24 + 90)
        .max()
        .unwrap_or(40);
    Diagram {
        width: gx + gw + arc_w + 10,
        height: row_y.max(groups_h),
        subnets,
        groups,
        arcs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_of_known_times() {
        // 1732435200 is 2024-11-24T08:00:00Z (the SecureCart demo's start).
        assert_eq!(
            utc(Timestamp::from_secs_nanos(1_732_435_200, 0)),
            "2024-11-24 08:00:00 UTC"
        );
        assert_eq!(utc(Timestamp(0)), "1970-01-01 00:00:00 UTC");
        // 2000-02-29T23:59:59Z, a leap day: 951868799.
        assert_eq!(
            utc(Timestamp::from_secs_nanos(951_868_799, 0)),
            "2000-02-29 23:59:59 UTC"
        );
    }

    #[test]
    fn offsets_read_as_people_write_them() {
        assert_eq!(offset_label(0.0), "+0");
        assert_eq!(offset_label(30.0), "+30s");
        assert_eq!(offset_label(300.0), "+5m");
        assert_eq!(offset_label(5400.0), "+90m");
        assert_eq!(offset_label(9000.0), "+2.5h");
    }

    #[test]
    fn text_from_the_ruleset_is_escaped() {
        let r = Report {
            inputs: vec!["ruleset <script>alert(1)</script>".into()],
            rejected_flows: vec![RejectedFlow {
                packets: 1,
                flow: "a & b".into(),
                check: "\"><img src=x>".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let html = render(&r);
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(
            html.contains("a &amp; b") || html.contains("a &#38; b"),
            "{html}"
        );
    }

    #[test]
    fn flips_show_only_when_given_and_say_they_are_not_aws() {
        let mut r = Report::default();
        assert!(!render(&r).contains("id=\"flips\""));
        r.stateful.flips = Some(Flips {
            not_aws: true,
            what: "with stateless security groups".into(),
            rows: vec![Flip {
                packets: 39,
                change: "ACCEPT → REJECT".into(),
                flow: "10.0.11.11 tcp 8080 → 10.0.1.10 (replies)".into(),
                rule: "sg-egress eni-0a1b2c3d4e5f60201".into(),
            }],
        });
        let html = render(&r);
        assert!(html.contains("id=\"flips\""));
        assert!(html.contains("with stateless security groups"));
        assert!(html.contains("not AWS"));
        assert!(html.contains(">39<"));
    }

    #[test]
    fn an_empty_report_renders_a_whole_page() {
        let html = render(&Report::default());
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.trim_end().ends_with("</html>"));
    }
}
