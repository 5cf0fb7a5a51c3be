//! `catalog report --html`: each series of the catalog over time, as one
//! page — objects per resource (the top N), bytes in use against the file
//! size, the revision rate, and every trend rule's verdict for every entry
//! (as if each had been the newest when `catalog check` ran), so that a
//! drop or a vanished namespace is seen at a glance and each failing entry
//! links to its details.
//!
//! The charts are SVG written with the page's template engine (maud), not
//! a chart crate: every mark carries its entry, its line and its exact
//! value in `data-*` attributes (what the tests compare with `catalog list
//! -w json`), which plotters' SVG backend has no way to add.

use std::collections::BTreeMap;

use maud::{Markup, html};

use super::entry::Entry;
use super::store::{CatalogError, Store};
use super::trend::{judge, series_key};
use crate::check::rules::RuleResult;
use crate::html::{bytes_cell, count_cell, page, shown};
use crate::report::humanize_bytes;

/// One entry of a series, judged.
#[derive(Debug, Clone)]
pub struct EntryView {
    /// The entry.
    pub entry: Entry,
    /// Every trend rule's result for it (and whether it verified).
    pub rules: Vec<RuleResult>,
    /// Whether all passed.
    pub passed: bool,
}

/// One series, oldest entry first.
#[derive(Debug, Clone)]
pub struct SeriesView {
    /// Its name (its labels, or its cluster ID).
    pub name: String,
    /// Its entries.
    pub entries: Vec<EntryView>,
}

/// The series of `store` whose labels include `filter`, each entry judged by
/// the trend rules against the entries before it (`max_drop` a percentage).
pub fn series(
    store: &Store,
    filter: &BTreeMap<String, String>,
    max_drop: f64,
) -> Result<Vec<SeriesView>, CatalogError> {
    let heads = store.heads()?;
    let mut out: Vec<SeriesView> = Vec::new();
    for (seq, entry) in store.entries()? {
        if !filter.iter().all(|(k, v)| entry.labels.get(k) == Some(v)) {
            continue;
        }
        let mut rules = vec![RuleResult {
            rule: "trend verify".into(),
            passed: entry.verify.passed,
            message: if entry.verify.passed {
                "the entry verified".into()
            } else {
                format!(
                    "the entry did not verify ({} problems)",
                    entry.verify.problems
                )
            },
        }];
        rules.extend(judge(&heads, seq, max_drop, &mut |s| store.entry(s))?);
        let passed = rules.iter().all(|r| r.passed);
        let name = series_key(&entry.head());
        let view = EntryView {
            entry,
            rules,
            passed,
        };
        match out.iter_mut().find(|s| s.name == name) {
            Some(s) => s.entries.push(view),
            None => out.push(SeriesView {
                name,
                entries: vec![view],
            }),
        }
    }
    Ok(out)
}

/// The chart box (SVG units) and its margins.
const W: f64 = 800.0;
const H: f64 = 260.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 30.0;

/// One line of a chart: its name and a value per entry (none: no mark).
struct Line {
    name: String,
    values: Vec<Option<f64>>,
}

/// A line chart over the entries (equally spaced, oldest left): the y axis
/// from 0 to the largest value, a polyline and a circle per value, each
/// circle with `data-entry`, `data-line` and `data-v`.
fn chart(
    id: &str,
    label: &str,
    entries: &[EntryView],
    lines: &[Line],
    fmt: fn(f64) -> String,
) -> Markup {
    html! {
        figure {
            (chart_svg(id, label, entries, lines, fmt, false))
            figcaption.legend {
                (label) ":"
                @for (li, l) in lines.iter().enumerate() {
                    span style=(format!("background: {}", hue(li))) {} (shown(&l.name))
                }
            }
        }
    }
}

/// The chart's SVG; `standalone` (a file of `--svg-dir`) adds its style, a
/// white ground, its title and a legend of text.
fn chart_svg(
    id: &str,
    label: &str,
    entries: &[EntryView],
    lines: &[Line],
    fmt: fn(f64) -> String,
    standalone: bool,
) -> Markup {
    let max = lines
        .iter()
        .flat_map(|l| l.values.iter().flatten())
        .fold(0.0f64, |a, &b| a.max(b));
    let max = if max > 0.0 { max } else { 1.0 };
    let n = entries.len();
    let x = |i: usize| {
        if n <= 1 {
            LEFT + (W - LEFT - RIGHT) / 2.0
        } else {
            LEFT + (W - LEFT - RIGHT) * i as f64 / (n - 1) as f64
        }
    };
    let y = |v: f64| TOP + (H - TOP - BOTTOM) * (1.0 - v / max);
    html! {
            svg.chart #(id) xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {W} {H}"))
                role="img" aria-label=(label) {
                @if standalone {
                    style { (maud::PreEscaped("text { font: 12px system-ui, sans-serif; fill: #5b6475; }")) }
                    rect width=(W) height=(H) fill="#fff" {}
                    text x=(LEFT + 8.0) y=(TOP + 10.0) { (label) }
                    @for (li, l) in lines.iter().enumerate() {
                        text x=(LEFT + 8.0) y=(TOP + 26.0 + 14.0 * li as f64) fill=(hue(li)) style=(format!("fill: {}", hue(li))) {
                            "— " (shown(&l.name))
                        }
                    }
                }
                line x1=(LEFT) y1=(TOP) x2=(LEFT) y2=(H - BOTTOM) stroke="#888" {}
                line x1=(LEFT) y1=(H - BOTTOM) x2=(W - RIGHT) y2=(H - BOTTOM) stroke="#888" {}
                text x=(LEFT - 6.0) y=(TOP + 10.0) text-anchor="end" { (fmt(max)) }
                text x=(LEFT - 6.0) y=(H - BOTTOM) text-anchor="end" { "0" }
                @if let (Some(first), Some(last)) = (entries.first(), entries.last()) {
                    text x=(x(0)) y=(H - 8.0) text-anchor="start" { (day(first.entry.added)) }
                    @if n > 1 {
                        text x=(x(n - 1)) y=(H - 8.0) text-anchor="end" { (day(last.entry.added)) }
                    }
                }
                @for (li, l) in lines.iter().enumerate() {
                    @let color = hue(li);
                    @let pts: Vec<String> = l.values.iter().enumerate()
                        .filter_map(|(i, v)| v.map(|v| format!("{:.1},{:.1}", x(i), y(v))))
                        .collect();
                    polyline points=(pts.join(" ")) fill="none" stroke=(color) stroke-width="2" {}
                    @for (i, v) in l.values.iter().enumerate() {
                        @if let Some(v) = v {
                            circle.mark cx=(format!("{:.1}", x(i))) cy=(format!("{:.1}", y(*v))) r="4"
                                fill=(color) data-entry=(short(&entries[i].entry.sha256))
                                data-line=(l.name) data-v=(v) {
                                title { (shown(&l.name)) ", " (day(entries[i].entry.added)) ": " (fmt(*v)) }
                            }
                        }
                    }
                }
            }
    }
}

fn hue(i: usize) -> String {
    const HUES: [u32; 12] = [212, 28, 140, 0, 265, 180, 45, 320, 95, 240, 10, 160];
    format!("hsl({} 60% 40%)", HUES[i % HUES.len()])
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

/// A time as `2026-12-05 07:36 UTC`.
fn day(unix: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(unix) {
        Ok(t) => format!(
            "{}-{:02}-{:02} {:02}:{:02} UTC",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute()
        ),
        Err(_) => unix.to_string(),
    }
}

fn count_text(v: f64) -> String {
    format!("{v:.0}")
}

fn bytes_text(v: f64) -> String {
    humanize_bytes(v as u64)
}

fn rate_text(v: f64) -> String {
    format!("{v:.1}/h")
}

/// A chart: its id, its label, its lines, how its values read.
type Chart = (&'static str, &'static str, Vec<Line>, fn(f64) -> String);

/// A series' charts: live objects per resource (the `top` of the newest
/// entry, and of any earlier one, so a resource that vanished still shows),
/// bytes in use and file size, revisions per hour.
fn charts(s: &SeriesView, top: usize) -> Vec<Chart> {
    let entries = &s.entries;
    // The resources with the most objects in the newest entry.
    let mut newest: Vec<(&String, &u64)> = entries
        .last()
        .map(|e| e.entry.objects.iter().collect())
        .unwrap_or_default();
    newest.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    let mut shown_resources: Vec<String> =
        newest.iter().take(top).map(|(r, _)| (*r).clone()).collect();
    // And any resource that dropped out of the newest entry but was in the
    // top of an earlier one: a drop to zero is what the chart is for.
    for e in entries {
        let mut r: Vec<(&String, &u64)> = e.entry.objects.iter().collect();
        r.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
        for (name, _) in r.into_iter().take(top) {
            if !shown_resources.contains(name) && shown_resources.len() < top * 2 {
                shown_resources.push(name.clone());
            }
        }
    }
    let objects: Vec<Line> = shown_resources
        .iter()
        .map(|r| Line {
            name: r.clone(),
            values: entries
                .iter()
                .map(|e| Some(e.entry.objects.get(r).copied().unwrap_or(0) as f64))
                .collect(),
        })
        .collect();
    let bytes = vec![
        Line {
            name: "file size".into(),
            values: entries
                .iter()
                .map(|e| Some(e.entry.file_size as f64))
                .collect(),
        },
        Line {
            name: "in use".into(),
            values: entries
                .iter()
                .map(|e| e.entry.db_size_in_use.map(|b| b as f64))
                .collect(),
        },
    ];
    let rate = vec![Line {
        name: "revisions per hour".into(),
        values: entries
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let p = &entries[i.checked_sub(1)?].entry;
                let hours = (e.entry.added - p.added) as f64 / 3600.0;
                (hours > 0.0).then(|| (e.entry.revision - p.revision) as f64 / hours)
            })
            .collect(),
    }];
    vec![
        ("objects", "Live objects per resource", objects, count_text),
        ("bytes", "Bytes in use and file size", bytes, bytes_text),
        ("rate", "Revisions per hour", rate, rate_text),
    ]
}

/// One series' section: its charts, its verdict strip and its entries.
fn section(i: usize, s: &SeriesView, top: usize) -> Markup {
    let entries = &s.entries;
    let failed = entries.iter().filter(|e| !e.passed).count();
    let slug = slug(i, &s.name);
    html! {
        section.series data-series=(s.name) data-entries=(entries.len()) data-failed=(failed) {
            h2 { "Series " (shown(&s.name)) }
            p class=(if failed == 0 { "good" } else { "bad" }) {
                (entries.len()) " entries; " (failed) " with a failed rule"
            }
            div.strip role="list" aria-label="each entry's verdict, oldest first" {
                @for e in entries {
                    a.verdict.good-bg[e.passed].bad-bg[!e.passed] role="listitem"
                        href=(format!("#e-{}", short(&e.entry.sha256)))
                        data-entry=(short(&e.entry.sha256)) data-passed=(e.passed)
                        title=(format!("{}: {}", day(e.entry.added), if e.passed { "passed" } else { "FAILED" })) {
                        (if e.passed { "✓" } else { "✗" })
                    }
                }
            }
            @for (chart_id, label, lines, fmt) in charts(s, top) {
                (chart(&format!("{chart_id}-{slug}"), label, entries, &lines, fmt))
            }
            h3 { "Entries" }
            div.scroll {
                table.sortable {
                    thead { tr {
                        th { "added" } th { "sha256" } th.n { "revision" } th.n { "objects" }
                        th.n { "in use" } th.n { "file" } th { "verdict" }
                    } }
                    tbody {
                        @for e in entries {
                            tr.entry id=(format!("e-{}", short(&e.entry.sha256))) data-passed=(e.passed) {
                                td data-v=(e.entry.added) { (day(e.entry.added)) }
                                td { code { (short(&e.entry.sha256)) } }
                                (count_cell(e.entry.revision.max(0) as u64))
                                (count_cell(e.entry.objects.values().sum()))
                                @match e.entry.db_size_in_use {
                                    Some(b) => (bytes_cell(b)),
                                    None => td.n { "-" },
                                }
                                (bytes_cell(e.entry.file_size))
                                td.name {
                                    @if e.passed { span.good { "passed" } } @else {
                                        span.bad { "FAILED" }
                                        ul { @for r in e.rules.iter().filter(|r| !r.passed) {
                                            li.failed-rule { (shown(&r.rule)) ": " (shown(&r.message)) }
                                        } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Each series' charts as standalone SVG files for `--svg-dir`: (file
/// name, contents), named `<chart>-<series>.svg`.
pub fn svgs(series: &[SeriesView], top: usize) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, s) in series.iter().enumerate() {
        let slug = slug(i, &s.name);
        for (chart, label, lines, fmt) in charts(s, top) {
            let svg = chart_svg(
                &format!("{chart}-{slug}"),
                label,
                &s.entries,
                &lines,
                fmt,
                true,
            );
            out.push((
                format!("{chart}-{slug}.svg"),
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{}\n",
                    svg.into_string()
                ),
            ));
        }
    }
    out
}

/// The `i`th series' name as part of an id or file name: its place (so
/// two names that read alike stay apart), then the name's letters and
/// digits, at most 64.
fn slug(i: usize, name: &str) -> String {
    let tail: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(64)
        .collect();
    format!("{}-{tail}", i + 1)
}

/// The page of `series`, each chart of objects showing the `top`
/// resources.
pub fn html(series: &[SeriesView], top: usize) -> String {
    let failed: usize = series
        .iter()
        .map(|s| s.entries.iter().filter(|e| !e.passed).count())
        .sum();
    let body = html! {
        style { (maud::PreEscaped(CHART_STYLE)) }
        header {
            h1 { "etcdsnap catalog report" }
            p #verdict data-v=(failed) class=(if failed == 0 { "good" } else { "bad" }) {
                (series.len()) " series, "
                (series.iter().map(|s| s.entries.len()).sum::<usize>()) " entries, "
                (failed) " with a failed trend rule."
            }
        }
        @for (i, s) in series.iter().enumerate() { (section(i, s, top)) }
    };
    page(
        "etcdsnap catalog report",
        "etcdsnap catalog report --html",
        body,
    )
}

const CHART_STYLE: &str = "
svg.chart { width: 100%; height: auto; display: block; }
svg.chart text { font-size: 12px; fill: #5b6475; }
figure { margin: 12px 0 20px; }
figcaption.legend span { display: inline-block; width: 12px; height: 12px; margin: 0 4px 0 12px; vertical-align: -1px; }
.strip { display: flex; flex-wrap: wrap; gap: 3px; margin: 8px 0; }
a.verdict { display: inline-block; width: 22px; height: 22px; line-height: 22px; text-align: center;
  color: #fff; text-decoration: none; border-radius: 3px; font-size: 13px; }
.good-bg { background: #1a6b2d; } .bad-bg { background: #a0161b; }
";
