//! The page shell every `--html` output shares (`inspect --html`, `check
//! --html`): one self-contained HTML document that makes no request of any
//! kind — inline CSS, inline SVG, one inline script (the table sorter)
//! allowed by its SHA-256 in a Content-Security-Policy that forbids
//! everything else — readable without the script, printable, and usable
//! from a phone's width up.
//!
//! Why a module of its own: the promises (no request, every name escaped,
//! every figure's exact value in `data-v`) are the same for every page and
//! are kept in one place. Names from files go through [`shown`]: control and
//! bidi characters made visible as in the terminal ([`escape_controls`]),
//! then HTML-escaped by the template engine (maud), which escapes every
//! text and attribute value it is given.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::report::{escape_controls, humanize_bytes};

/// The table sorter: a click on a header sorts by that column, by `data-v`
/// when the cells have one, else by text; a second click reverses.
const SCRIPT: &str = r#"
document.querySelectorAll('table.sortable').forEach(function (t) {
  t.querySelectorAll('th').forEach(function (th, i) {
    th.tabIndex = 0;
    var dir = 1;
    function sort() {
      var body = t.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[i], y = b.cells[i];
        var xv = x.getAttribute('data-v'), yv = y.getAttribute('data-v');
        if (xv !== null && yv !== null) { return dir * (Number(xv) - Number(yv)); }
        return dir * x.textContent.localeCompare(y.textContent);
      });
      rows.forEach(function (r) { body.appendChild(r); });
      dir = -dir;
    }
    th.addEventListener('click', sort);
    th.addEventListener('keydown', function (e) { if (e.key === 'Enter') { sort(); } });
  });
});
"#;

const STYLE: &str = r#"
:root { color-scheme: light; --fg: #1d2330; --muted: #5b6475; --line: #d9dde5; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
  margin: 0 auto; padding: 16px; max-width: 1200px; overflow-wrap: anywhere; }
h1 { font-size: 1.4em; margin: 0 0 4px; overflow-wrap: anywhere; }
h2 { font-size: 1.15em; margin: 28px 0 8px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
.muted { color: var(--muted); }
dl.figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: 8px; margin: 0; }
dl.figures div { border: 1px solid var(--line); border-radius: 6px; padding: 6px 10px; }
dl.figures dt { color: var(--muted); font-size: .85em; }
dl.figures dd { margin: 0; font-size: 1.15em; font-weight: 600; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: .92em; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table { overflow-wrap: normal; }
td.name { overflow-wrap: anywhere; min-width: 12ch; }
th { cursor: pointer; user-select: none; background: #f4f6f9; }
svg.map { width: 100%; height: auto; display: block; border: 1px solid var(--line); }
svg.map text { font-size: 13px; fill: #fff; pointer-events: none; paint-order: stroke;
  stroke: rgba(0, 0, 0, .55); stroke-width: 3px; }
.legend span { display: inline-block; width: 14px; height: 14px; vertical-align: -2px; margin: 0 4px 0 12px; }
.bad { color: #a0161b; font-weight: 600; }
.good { color: #1a6b2d; font-weight: 600; }
@media (max-width: 600px) { body { padding: 8px; font-size: 14px; } svg.map text { display: none; } }
@media print { th { cursor: default; } .scroll { overflow: visible; } }
"#;

/// A name from a file as a page shows it: control and bidi characters made
/// visible (maud then HTML-escapes it).
pub fn shown(s: &str) -> String {
    escape_controls(s).into_owned()
}

/// A table cell of bytes: readable, with the exact value in `data-v`.
pub fn bytes_cell(b: u64) -> Markup {
    html! { td.n data-v=(b) title=(format!("{b} bytes")) { (humanize_bytes(b)) } }
}

/// A table cell of a count, with its value in `data-v`.
pub fn count_cell(n: u64) -> Markup {
    html! { td.n data-v=(n) { (n) } }
}

/// The Content-Security-Policy of every page: nothing may be fetched,
/// connected to or framed; inline styles; only the sorter script, by hash.
pub fn csp() -> String {
    use base64::Engine as _;
    let d = ring::digest::digest(&ring::digest::SHA256, SCRIPT.as_bytes());
    let hash = base64::engine::general_purpose::STANDARD.encode(d.as_ref());
    format!(
        "default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{hash}'; \
         img-src data:; base-uri 'none'; form-action 'none'"
    )
}

/// The whole document: `title` (already [`shown`]), `body`, and a footer
/// naming the command that made it (`made_by`).
pub fn page(title: &str, made_by: &str, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta http-equiv="Content-Security-Policy" content=(csp());
                meta name="referrer" content="no-referrer";
                title { (title) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                (body)
                footer.muted {
                    p { "Made by etcdsnap " (env!("CARGO_PKG_VERSION")) " (" code { (made_by) } "). "
                        "This page makes no request of any kind." }
                }
                script { (PreEscaped(SCRIPT)) }
            }
        }
    }
    .into_string()
}
