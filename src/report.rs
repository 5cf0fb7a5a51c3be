//! Output helpers shared by the commands: etcdctl-style tables and sizes, and
//! [`escape_controls`], which every human-readable output passes names through.

use std::borrow::Cow;
use std::fmt::Write as _;

/// A name from the file (key, bucket, object name) made safe for a terminal:
/// C0 and C1 control characters, DEL and bidirectional overrides are written
/// as `\xNN` / `\u{NNNN}` escapes, so a crafted name can neither move the
/// cursor, clear the screen, start a fake table row nor reorder what is shown.
/// JSON output needs none of this (JSON escapes controls itself).
pub fn escape_controls(s: &str) -> Cow<'_, str> {
    fn unsafe_char(c: char) -> bool {
        c.is_control()
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{61c}' | '\u{2028}' | '\u{2029}')
    }
    if !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if !unsafe_char(c) {
            out.push(c);
        } else if (c as u32) < 0x100 {
            let _ = write!(out, "\\x{:02x}", c as u32);
        } else {
            let _ = write!(out, "\\u{{{:04x}}}", c as u32);
        }
    }
    Cow::Owned(out)
}

/// [`escape_controls`] for bytes that may not be UTF-8 (etcd keys): invalid
/// bytes are shown as `\xNN`.
pub fn escape_bytes(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    for chunk in b.utf8_chunks() {
        out.push_str(&escape_controls(chunk.valid()));
        for byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
    out
}

/// Cell alignment in a [`Table`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Every column left-aligned.
    Left,
    /// Every column right-aligned.
    Right,
}

/// A table drawn the way etcdctl's tablewriter draws it: `+---+` rules,
/// upper-cased centred headers, one space of padding.
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
    align: Align,
}

impl Table {
    /// A table with these column headers (upper-cased), the columns aligned as `align` says.
    pub fn new(headers: &[&str], align: Align) -> Table {
        Table {
            headers: headers.iter().map(|h| h.to_uppercase()).collect(),
            rows: Vec::new(),
            align,
        }
    }

    /// Adds a row; control characters in cells are escapes
    /// ([`escape_controls`]), so no cell can break the table.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(
            cells
                .into_iter()
                .map(|c| match escape_controls(&c) {
                    Cow::Borrowed(_) => c,
                    Cow::Owned(e) => e,
                })
                .collect(),
        );
    }

    /// The table as text: a rule, the headers, a rule, the rows, a rule.
    pub fn render(&self) -> String {
        let n = self.headers.len();
        let width = |i: usize| {
            self.rows
                .iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .chain(std::iter::once(self.headers[i].chars().count()))
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..n).map(width).collect();
        let rule = {
            let mut s = String::from("+");
            for w in &widths {
                s.push_str(&"-".repeat(w + 2));
                s.push('+');
            }
            s.push('\n');
            s
        };
        let mut out = rule.clone();
        out.push('|');
        for (h, w) in self.headers.iter().zip(&widths) {
            let gap = w - h.chars().count();
            let left = gap / 2;
            out.push_str(&format!(
                " {}{}{} |",
                " ".repeat(left),
                h,
                " ".repeat(gap - left)
            ));
        }
        out.push('\n');
        out.push_str(&rule);
        for r in &self.rows {
            out.push('|');
            for (i, w) in widths.iter().enumerate() {
                let c = r.get(i).map(String::as_str).unwrap_or("");
                match self.align {
                    Align::Right => out.push_str(&format!(" {c:>w$} |")),
                    Align::Left => out.push_str(&format!(" {c:<w$} |")),
                }
            }
            out.push('\n');
        }
        out.push_str(&rule);
        out
    }
}

/// A byte count as go-humanize's `Bytes` prints it (SI units), which is what
/// `etcdutl snapshot status` shows: `20 kB`, `1.1 GB`.
pub fn humanize_bytes(s: u64) -> String {
    const SIZES: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if s < 10 {
        return format!("{s} B");
    }
    let f = s as f64;
    let e = (f.ln() / 1000f64.ln()).floor();
    let suffix = SIZES[(e as usize).min(SIZES.len() - 1)];
    let val = (f / 1000f64.powf(e) * 10.0 + 0.5).floor() / 10.0;
    if val < 10.0 {
        format!("{} {suffix}", go_fixed(val, 1))
    } else {
        format!("{} {suffix}", go_fixed(val, 0))
    }
}

/// `%.Nf` with Go's rounding (round half to even on the exact binary value).
fn go_fixed(v: f64, decimals: usize) -> String {
    // Rust's formatter rounds the exact binary value half-to-even, like Go.
    format!("{v:.decimals$}")
}

/// A JSON value as YAML (kubectl's `-o yaml` layout) that YAML 1.1 and 1.2
/// readers read back exactly: see [`crate::yaml`].
pub fn to_yaml(v: &serde_json::Value) -> Result<String, serde_yaml_ng::Error> {
    Ok(crate::yaml::to_string(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped() {
        assert_eq!(escape_controls("plain name"), "plain name");
        assert_eq!(escape_controls("a\x1b[2Jb"), "a\\x1b[2Jb");
        assert_eq!(escape_controls("row\n| fake |"), "row\\x0a| fake |");
        assert_eq!(escape_controls("x\u{9b}y\u{7f}"), "x\\x9by\\x7f");
        assert_eq!(escape_controls("ab\u{202e}cd"), "ab\\u{202e}cd");
        assert_eq!(escape_bytes(b"k\xff\x07"), "k\\xff\\x07");
        let mut t = Table::new(&["name"], Align::Left);
        t.row(vec!["evil\nOK: every check passed".into()]);
        assert_eq!(t.render().lines().count(), 5);
    }

    #[test]
    fn sizes_like_go_humanize() {
        assert_eq!(humanize_bytes(5), "5 B");
        assert_eq!(humanize_bytes(20480), "20 kB");
        assert_eq!(humanize_bytes(143360), "143 kB");
        assert_eq!(humanize_bytes(151552), "152 kB");
        assert_eq!(humanize_bytes(1_000_000), "1.0 MB");
        assert_eq!(humanize_bytes(1_073_741_824), "1.1 GB");
    }

    #[test]
    fn table_like_tablewriter() {
        let mut t = Table::new(
            &["hash", "revision", "total keys", "total size"],
            Align::Right,
        );
        t.row(vec![
            "43950a4".into(),
            "48".into(),
            "69".into(),
            "152 kB".into(),
        ]);
        let want = "\
+---------+----------+------------+------------+
|  HASH   | REVISION | TOTAL KEYS | TOTAL SIZE |
+---------+----------+------------+------------+
| 43950a4 |       48 |         69 |     152 kB |
+---------+----------+------------+------------+
";
        assert_eq!(t.render(), want);
    }
}
