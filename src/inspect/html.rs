//! `inspect --html`: the inspection as one self-contained HTML page, for a
//! person to look at and for a CI job to attach.
//!
//! Why it exists: "what is in this 6 GB etcd?" is answered faster by a
//! picture than by tables. The page holds a space map (a squarified treemap
//! of the bytes per resource and namespace, live and history told apart,
//! exact figures in each mark's title), the space story (file, in use,
//! free, what defrag and compaction give back), sortable tables of
//! resources, namespaces and the largest objects, and the security figures.
//!
//! What it promises: no request of any kind (inline CSS and SVG, one inline
//! script allowed by its hash in a Content-Security-Policy that forbids
//! everything else); readable without JavaScript (the script only sorts
//! tables); every name from the file escaped — HTML-escaped by the template
//! (maud) after the terminal's spoofing rules made control and bidi
//! characters visible ([`crate::report::escape_controls`]); every figure shown carries its
//! exact value in a `data-v` attribute, and every mark of the map its
//! resource, namespace and bytes in `data-*` attributes (names as stored,
//! attribute-escaped), equal to `inspect -w json`'s.

use maud::{Markup, PreEscaped, html};

use super::{Inspection, Named, SpaceCell};
use crate::html::{bytes_cell, count_cell, page, shown};
use crate::inspect::figures::Usage;
use crate::report::humanize_bytes;

/// The space map's drawing box (SVG user units; the page scales it).
const MAP_W: f64 = 1000.0;
const MAP_H: f64 = 560.0;

/// The map's own style, for the SVG file (`--svg-dir`), which has no page.
const MAP_STYLE: &str = "text { font: 13px system-ui, sans-serif; fill: #fff; paint-order: stroke; \
     stroke: rgba(0, 0, 0, .55); stroke-width: 3px; }";

/// The space map as a standalone SVG file (for wikis and chat: `--svg-dir`),
/// the same marks as the page's.
pub fn space_map_svg(ins: &Inspection) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{}\n",
        space_map(&ins.space_map, true).into_string()
    )
}

/// A rectangle of the map.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rect {
    /// Left.
    pub x: f64,
    /// Top.
    pub y: f64,
    /// Width.
    pub w: f64,
    /// Height.
    pub h: f64,
}

/// The squarified treemap layout (Bruls, Huizing, van Wijk) of `values`
/// (largest first, each > 0) in `r`: one rectangle per value, areas in
/// proportion, as close to square as the greedy row choice gets.
pub fn squarify(values: &[f64], r: Rect) -> Vec<Rect> {
    let total: f64 = values.iter().sum();
    if values.is_empty() || total <= 0.0 || r.w <= 0.0 || r.h <= 0.0 {
        return vec![
            Rect {
                w: 0.0,
                h: 0.0,
                ..r
            };
            values.len()
        ];
    }
    let scale = r.w * r.h / total;
    let areas: Vec<f64> = values.iter().map(|v| v * scale).collect();
    let mut out = Vec::with_capacity(areas.len());
    let mut free = r;
    let mut start = 0;
    while start < areas.len() {
        let side = free.w.min(free.h);
        let mut end = start + 1;
        while end < areas.len()
            && worst(&areas[start..=end], side) <= worst(&areas[start..end], side)
        {
            end += 1;
        }
        let row = &areas[start..end];
        let sum: f64 = row.iter().sum();
        if free.w >= free.h {
            // A column at the left.
            let cw = if free.h > 0.0 { sum / free.h } else { 0.0 };
            let mut y = free.y;
            for a in row {
                let h = if cw > 0.0 { a / cw } else { 0.0 };
                out.push(Rect {
                    x: free.x,
                    y,
                    w: cw,
                    h,
                });
                y += h;
            }
            free.x += cw;
            free.w = (free.w - cw).max(0.0);
        } else {
            // A row at the top.
            let rh = if free.w > 0.0 { sum / free.w } else { 0.0 };
            let mut x = free.x;
            for a in row {
                let w = if rh > 0.0 { a / rh } else { 0.0 };
                out.push(Rect {
                    x,
                    y: free.y,
                    w,
                    h: rh,
                });
                x += w;
            }
            free.y += rh;
            free.h = (free.h - rh).max(0.0);
        }
        start = end;
    }
    out
}

/// The worst aspect ratio of `row` laid along a side of length `side`.
fn worst(row: &[f64], side: f64) -> f64 {
    let s: f64 = row.iter().sum();
    if s <= 0.0 || side <= 0.0 {
        return f64::INFINITY;
    }
    let s2 = s * s;
    let w2 = side * side;
    row.iter()
        .map(|&r| (w2 * r / s2).max(s2 / (w2 * r)))
        .fold(0.0, f64::max)
}

/// The colour of the `i`th resource of the map.
fn hue(i: usize) -> String {
    const HUES: [u32; 12] = [212, 28, 140, 0, 265, 180, 45, 320, 95, 240, 10, 160];
    format!("hsl({} 55% 42%)", HUES[i % HUES.len()])
}

/// The space map: resources squarified in the box, each resource's cells
/// squarified in its rectangle, each cell's live bytes solid and its
/// history bytes lighter (split along the cell's longer side).
fn space_map(cells: &[SpaceCell], standalone: bool) -> Markup {
    let mut resources: Vec<(&str, Vec<&SpaceCell>)> = Vec::new();
    for c in cells.iter().filter(|c| c.live_bytes + c.history_bytes > 0) {
        match resources.iter_mut().find(|(r, _)| *r == c.resource) {
            Some((_, v)) => v.push(c),
            None => resources.push((&c.resource, vec![c])),
        }
    }
    let total = |v: &[&SpaceCell]| {
        v.iter()
            .map(|c| c.live_bytes + c.history_bytes)
            .sum::<u64>()
    };
    resources.sort_by(|a, b| total(&b.1).cmp(&total(&a.1)).then_with(|| a.0.cmp(b.0)));
    let outer = squarify(
        &resources
            .iter()
            .map(|(_, v)| total(v) as f64)
            .collect::<Vec<_>>(),
        Rect {
            x: 0.0,
            y: 0.0,
            w: MAP_W,
            h: MAP_H,
        },
    );
    html! {
        svg.map xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {MAP_W} {MAP_H}")) role="img"
            aria-label="Where the bytes go: resources and namespaces" {
            @if standalone {
                style { (PreEscaped(MAP_STYLE)) }
                rect width=(MAP_W) height=(MAP_H) fill="#fff" {}
            }
            @for (i, ((resource, cells), rr)) in resources.iter().zip(&outer).enumerate() {
                @let color = hue(i);
                @let inner = squarify(
                    &cells.iter().map(|c| (c.live_bytes + c.history_bytes) as f64).collect::<Vec<_>>(),
                    *rr,
                );
                g.resource data-resource=(resource) data-bytes=(total(cells)) {
                    @for (c, r) in cells.iter().zip(&inner) {
                        @let t = (c.live_bytes + c.history_bytes) as f64;
                        @let live = if t > 0.0 { c.live_bytes as f64 / t } else { 0.0 };
                        @let (lw, lh) = if r.w >= r.h { (r.w * live, r.h) } else { (r.w, r.h * live) };
                        @let where_ = match (&c.namespace, c.other_namespaces) {
                            (_, Some(n)) => format!("{n} more namespaces"),
                            (Some(ns), None) => shown(ns),
                            (None, None) => "cluster-scoped".to_string(),
                        };
                        g.cell data-resource=(c.resource)
                            data-namespace=(c.namespace.as_deref().unwrap_or_default())
                            data-live=(c.live_bytes) data-history=(c.history_bytes)
                            data-objects=(c.live_objects) {
                            title {
                                (shown(&c.resource)) " in " (where_) ": "
                                (humanize_bytes(c.live_bytes)) " live in " (c.live_objects) " objects ("
                                (c.live_bytes) " bytes), " (humanize_bytes(c.history_bytes))
                                " of history (" (c.history_bytes) " bytes)"
                            }
                            rect x=(fmt(r.x)) y=(fmt(r.y)) width=(fmt(r.w)) height=(fmt(r.h))
                                fill=(color) fill-opacity="0.45" stroke="#fff" stroke-width="1" {}
                            @if lw > 0.0 && lh > 0.0 {
                                rect x=(fmt(r.x)) y=(fmt(r.y)) width=(fmt(lw)) height=(fmt(lh))
                                    fill=(color) {}
                            }
                            // The third level: the cell's largest object, its
                            // share of the live part, outlined at its corner.
                            @if let Some(o) = &c.largest
                                && c.live_bytes > 0
                                && lw > 0.0
                                && lh > 0.0
                            {
                                @let share = (o.bytes as f64 / c.live_bytes as f64).clamp(0.0, 1.0).sqrt();
                                rect.object x=(fmt(r.x)) y=(fmt(r.y)) width=(fmt(lw * share)) height=(fmt(lh * share))
                                    fill="none" stroke="#fff" stroke-width="1.5" stroke-dasharray="4 3"
                                    data-key=(o.key) data-bytes=(o.bytes) {
                                    title { "largest: " (shown(&o.key)) ", " (humanize_bytes(o.bytes)) " (" (o.bytes) " bytes)" }
                                }
                            }
                            @if r.h > 36.0 && r.w > 8.0 * c.resource.chars().count().max(where_.chars().count()) as f64 {
                                text x=(fmt(r.x + 5.0)) y=(fmt(r.y + 16.0)) { (shown(&c.resource)) }
                                text x=(fmt(r.x + 5.0)) y=(fmt(r.y + 31.0)) { (where_) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A coordinate, to a tenth of a unit.
fn fmt(v: f64) -> String {
    format!("{:.1}", v)
}

fn usage_table(caption: &str, rows: &[Named<Usage>]) -> Markup {
    html! {
        div.scroll {
            table.sortable id=(caption) {
                thead { tr {
                    th { "name" } th.n { "live objects" } th.n { "live bytes" }
                    th.n { "history revisions" } th.n { "history bytes" } th { "largest object" }
                } }
                tbody {
                    @for r in rows {
                        tr {
                            td.name { (shown(&r.name)) }
                            (count_cell(r.usage.live_objects))
                            (bytes_cell(r.usage.live_bytes))
                            (count_cell(r.usage.history_revisions))
                            (bytes_cell(r.usage.history_bytes))
                            td.name { @if let Some(l) = &r.usage.largest {
                                (shown(&l.key)) " (" (humanize_bytes(l.bytes)) ")"
                            } }
                        }
                    }
                }
            }
        }
    }
}

/// The page for `ins` of the snapshot shown as `name`.
pub fn render(ins: &Inspection, name: &str) -> String {
    let sp = &ins.space;
    let in_use = sp.pages_in_use.map(|p| p * sp.page_size);
    let sec = &ins.security;
    let unencrypted: u64 = sec.unencrypted_secrets.values().sum();
    let body = html! {
                header {
                    h1 { (shown(name)) }
                    p.muted {
                        "revision " span #revision data-v=(ins.header.revision) { (ins.header.revision) }
                        @if let Some(c) = ins.header.compacted_revision { ", compacted at " (c) }
                        @if let Some(id) = &ins.header.cluster_id { ", cluster " (shown(id)) }
                        @if let Some(v) = &ins.header.cluster_version { ", etcd " (shown(v)) }
                        ", " (ins.header.members.len()) " members"
                        @if let Some(ns) = &ins.namespace { ", namespace " (shown(ns)) " only" }
                    }
                    // inspect refuses a file `verify` finds damaged: a page
                    // exists only for one that passed.
                    p.good #verify { "verify: every check passed (sha256, bolt pages, etcd's buckets and keys)." }
                }
                section #space {
                    h2 { "Space" }
                    dl.figures {
                        div { dt { "file" } dd #file-bytes data-v=(sp.file_bytes) { (humanize_bytes(sp.file_bytes)) } }
                        @if let Some(b) = in_use {
                            div { dt { "pages in use" } dd #in-use-bytes data-v=(b) { (humanize_bytes(b)) } }
                        }
                        @if let Some(f) = sp.free_pages {
                            div { dt { "free pages" } dd #free-pages data-v=(f) { (f) " × " (humanize_bytes(sp.page_size)) } }
                        }
                        div { dt { "after defrag" } dd #after-defrag-bytes data-v=(sp.after_defrag_bytes) { (humanize_bytes(sp.after_defrag_bytes)) } }
                        div { dt { "defrag gives back" } dd #defrag-gain-bytes data-v=(sp.defrag_gain_bytes) { (humanize_bytes(sp.defrag_gain_bytes)) } }
                        div { dt { "history (older revisions)" } dd #history-bytes data-v=(sp.history_bytes) { (humanize_bytes(sp.history_bytes)) } }
                        div { dt { "after compaction and defrag" } dd #after-compact-and-defrag-bytes data-v=(sp.after_compact_and_defrag_bytes) { (humanize_bytes(sp.after_compact_and_defrag_bytes)) } }
                    }
                    p #advice { (shown(&sp.advice)) }
                }
                section #map {
                    h2 { "Where the bytes go" }
                    p.muted.legend {
                        "Each rectangle is a resource's objects in one namespace, its area their bytes;"
                        span style="background: hsl(212 55% 42%)" {} "live"
                        span style="background: hsl(212 55% 42%); opacity: .45" {} "history (older revisions);"
                        " the dashed box in a rectangle is its largest object's share."
                        " Hover a rectangle for its figures."
                    }
                    (space_map(&ins.space_map, false))
                }
                section #resources-section {
                    h2 { "Resources" }
                    (usage_table("resources", &ins.resources))
                }
                section #namespaces-section {
                    h2 { "Namespaces" }
                    p.muted { (ins.namespace_count) " namespaces; the " (ins.namespaces.len()) " with the most bytes:" }
                    (usage_table("namespaces", &ins.namespaces))
                }
                section #largest-section {
                    h2 { "Largest objects" }
                    div.scroll {
                        table.sortable #largest {
                            thead { tr { th { "key" } th { "resource" } th { "namespace" } th.n { "bytes" } } }
                            tbody {
                                @for o in &ins.largest_objects {
                                    tr {
                                        td.name { (shown(&o.key)) }
                                        td.name { (o.resource.as_deref().map(shown).unwrap_or_default()) }
                                        td.name { (o.namespace.as_deref().map(shown).unwrap_or_default()) }
                                        (bytes_cell(o.bytes))
                                    }
                                }
                            }
                        }
                    }
                }
                section #security {
                    h2 { "Security" }
                    @if unencrypted == 0 {
                        p.good #unencrypted-secrets data-v="0" { "No Secret is stored unencrypted." }
                    } @else {
                        p.bad #unencrypted-secrets data-v=(unencrypted) {
                            (unencrypted) " Secrets are stored unencrypted: anyone with this file reads them."
                        }
                        div.scroll { table.sortable #unencrypted {
                            thead { tr { th { "namespace" } th.n { "Secrets" } } }
                            tbody { @for (ns, n) in &sec.unencrypted_secrets {
                                tr { td.name { (shown(ns)) } (count_cell(*n)) }
                            } }
                        } }
                    }
                    @if !sec.encrypted.is_empty() {
                        div.scroll { table.sortable #encrypted {
                            thead { tr { th { "provider" } th { "key name" } th { "KMS key ID" } th.n { "values" } } }
                            tbody { @for e in &sec.encrypted {
                                tr {
                                    td { (shown(&e.provider)) }
                                    td.name { (shown(&e.key_name)) }
                                    td.name { (e.key_id.as_deref().map(shown).unwrap_or_else(|| "-".into())) }
                                    (count_cell(e.values))
                                }
                            } }
                        } }
                    }
                    p #undecodable data-v=(sec.undecodable_values) class=(if sec.undecodable_values == 0 { "good" } else { "bad" }) {
                        (sec.undecodable_values) " values under the prefix do not decode."
                    }
                    @if !sec.undecodable.is_empty() {
                        ul { @for u in &sec.undecodable { li { (shown(&u.key)) ": " (shown(&u.reason)) } } }
                    }
                }
    };
    page(
        &format!("etcdsnap inspect: {}", shown(name)),
        "etcdsnap inspect --html",
        body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squarify_keeps_areas_and_stays_inside() {
        let r = Rect {
            x: 0.0,
            y: 0.0,
            w: 600.0,
            h: 400.0,
        };
        let values = [6.0, 6.0, 4.0, 3.0, 2.0, 2.0, 1.0];
        let rects = squarify(&values, r);
        let total: f64 = values.iter().sum();
        for (v, q) in values.iter().zip(&rects) {
            let want = v / total * r.w * r.h;
            assert!((q.w * q.h - want).abs() < 1e-6, "{q:?} area, want {want}");
            assert!(q.x >= -1e-9 && q.y >= -1e-9, "{q:?}");
            assert!(q.x + q.w <= r.w + 1e-6 && q.y + q.h <= r.h + 1e-6, "{q:?}");
        }
        // The paper's example ends with no sliver: every ratio under 4.
        for q in &rects {
            assert!(q.w.max(q.h) / q.w.min(q.h) < 4.0, "{q:?}");
        }
        assert!(squarify(&[], r).is_empty());
    }
}
