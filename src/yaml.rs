//! YAML output that every Kubernetes YAML reader reads back exactly.
//!
//! kubectl reads YAML with sigs.k8s.io/yaml, which follows YAML 1.1: a plain
//! `yes`, `on`, `n`, `1_000`, `0x1F`, `012`, `1:20` or `~` is a boolean, a
//! number or null there, `<<` merges maps, and a date may become a timestamp.
//! A general-purpose YAML 1.2 writer leaves most of these plain, so a restored
//! ConfigMap with `enabled: "yes"` came back as a boolean (or was refused).
//!
//! This writer renders a JSON value (what every decoder in this crate makes)
//! as block YAML in the layout kubectl prints, and writes a string plain only
//! when it is certain that neither a YAML 1.1 nor a YAML 1.2 resolver types it
//! and that no indicator or whitespace rule applies; anything else is
//! double-quoted with escapes, or, when it has line breaks and nothing else
//! unusual, a literal block. Being conservative costs a few quotes, never a
//! changed value. `tests/it/yaml_oracle.rs` reads the output back with
//! sigs.k8s.io/yaml over random and hostile strings.

use std::fmt::Write;

use serde_json::Value;

/// The document for `v` (no `---`), ending in a newline.
pub fn to_string(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Object(m) if !m.is_empty() => write_map(&mut out, m, 0),
        Value::Array(a) if !a.is_empty() => write_seq(&mut out, a, 0),
        other => {
            write_inline(&mut out, other, 0);
            out.push('\n');
        }
    }
    out
}

fn indent(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

fn write_map(out: &mut String, m: &serde_json::Map<String, Value>, ind: usize) {
    for (i, (k, v)) in m.iter().enumerate() {
        if i > 0 {
            indent(out, ind);
        }
        write_key(out, k);
        out.push(':');
        match v {
            Value::Object(_) | Value::Array(_) if ind >= MAX_BLOCK_INDENT && !is_empty(v) => {
                out.push(' ');
                write_flow(out, v);
                out.push('\n');
            }
            Value::Object(inner) if !inner.is_empty() => {
                out.push('\n');
                indent(out, ind + 2);
                write_map(out, inner, ind + 2);
            }
            Value::Array(items) if !items.is_empty() => {
                // kubectl's layout: a sequence under a key is not indented.
                out.push('\n');
                indent(out, ind);
                write_seq(out, items, ind);
            }
            other => {
                out.push(' ');
                write_inline(out, other, ind + 2);
                out.push('\n');
            }
        }
    }
}

fn write_seq(out: &mut String, items: &[Value], ind: usize) {
    for (i, v) in items.iter().enumerate() {
        if i > 0 {
            indent(out, ind);
        }
        out.push_str("- ");
        match v {
            Value::Object(_) | Value::Array(_) if ind >= MAX_BLOCK_INDENT && !is_empty(v) => {
                write_flow(out, v);
                out.push('\n');
            }
            Value::Object(inner) if !inner.is_empty() => write_map(out, inner, ind + 2),
            Value::Array(inner) if !inner.is_empty() => write_seq(out, inner, ind + 2),
            other => {
                write_inline(out, other, ind + 2);
                out.push('\n');
            }
        }
    }
}

/// Past this indentation (64 levels) containers are written in flow style on
/// one line: block YAML indents every line by its depth, so a value nested
/// 10,000 deep would otherwise print ~100 MB of spaces for 120 KB of input.
const MAX_BLOCK_INDENT: usize = 128;

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// A container in flow style (`{"k": [1, "x"]}`), every string
/// double-quoted; iterative, so any depth is safe.
fn write_flow(out: &mut String, v: &Value) {
    enum Step<'a> {
        Value(&'a Value),
        Key(&'a str),
        Text(&'static str),
    }
    let mut stack = vec![Step::Value(v)];
    while let Some(step) = stack.pop() {
        match step {
            Step::Text(t) => out.push_str(t),
            Step::Key(k) => {
                write_quoted(out, k);
                out.push_str(": ");
            }
            Step::Value(Value::Object(m)) => {
                out.push('{');
                stack.push(Step::Text("}"));
                for (i, (k, v)) in m.iter().enumerate().rev() {
                    stack.push(Step::Value(v));
                    stack.push(Step::Key(k));
                    if i > 0 {
                        stack.push(Step::Text(", "));
                    }
                }
            }
            Step::Value(Value::Array(a)) => {
                out.push('[');
                stack.push(Step::Text("]"));
                for (i, v) in a.iter().enumerate().rev() {
                    stack.push(Step::Value(v));
                    if i > 0 {
                        stack.push(Step::Text(", "));
                    }
                }
            }
            Step::Value(Value::String(s)) => write_quoted(out, s),
            Step::Value(other) => write_inline(out, other, 0),
        }
    }
}

/// A scalar, `{}` or `[]`; a multi-line string as a literal block whose lines
/// are indented by `ind`.
fn write_inline(out: &mut String, v: &Value, ind: usize) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => write_str(out, s, ind),
        Value::Object(_) => out.push_str("{}"),
        Value::Array(_) => out.push_str("[]"),
    }
}

fn write_key(out: &mut String, k: &str) {
    if is_plain_safe(k) {
        out.push_str(k);
    } else {
        write_quoted(out, k);
    }
}

fn write_str(out: &mut String, s: &str, ind: usize) {
    if is_plain_safe(s) {
        out.push_str(s);
    } else if literal_ok(s) {
        write_literal(out, s, ind);
    } else {
        write_quoted(out, s);
    }
}

/// Characters a plain or literal scalar may hold as they are: printable, not
/// a line break of any YAML version, not a byte-order mark.
fn printable(c: char) -> bool {
    match c {
        '\t' => true,
        '\u{20}'..='\u{7e}' => true,
        '\u{a0}'..='\u{d7ff}' => !matches!(c, '\u{2028}' | '\u{2029}'),
        '\u{e000}'..='\u{fffd}' => c != '\u{feff}',
        '\u{10000}'..='\u{10ffff}' => true,
        _ => false,
    }
}

/// Bidirectional overrides and isolates: printable to YAML, but they reorder
/// what a terminal shows, so they are escaped.
fn bidi_control(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{61c}')
}

/// Whether `s` can be written plain: certain to be read back as this string
/// by YAML 1.1 and 1.2 resolvers alike.
fn is_plain_safe(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    // Indicators and whitespace at the start, and what kubectl's reader
    // treats specially ('=' is YAML 1.1's value key, '<<' the merge key).
    if matches!(
        first,
        '-' | '?'
            | ':'
            | ','
            | '['
            | ']'
            | '{'
            | '}'
            | '#'
            | '&'
            | '*'
            | '!'
            | '|'
            | '>'
            | '\''
            | '"'
            | '%'
            | '@'
            | '`'
            | '='
            | '<'
            | '~'
            | ' '
            | '\t'
    ) {
        return false;
    }
    if s.ends_with([' ', '\t', ':']) {
        return false;
    }
    if s.contains(": ") || s.contains(" #") || s.contains(":\t") || s.contains("\t#") {
        return false;
    }
    if !s
        .chars()
        .all(|c| printable(c) && c != '\t' && !bidi_control(c))
    {
        return false;
    }
    !typed_by_a_resolver(s)
}

/// Words and number shapes that YAML 1.1 (sigs.k8s.io/yaml, PyYAML) or 1.2
/// read as something other than a string. Conservative: anything that starts
/// like a number and uses only number characters counts.
fn typed_by_a_resolver(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "y" | "yes"
            | "n"
            | "no"
            | "true"
            | "false"
            | "on"
            | "off"
            | "null"
            | "~"
            | ".inf"
            | "+.inf"
            | "-.inf"
            | ".nan"
    ) {
        return true;
    }
    let b = s.as_bytes();
    let start = usize::from(matches!(b[0], b'+' | b'-'));
    let Some(&c0) = b.get(start) else {
        return false;
    };
    if !(c0.is_ascii_digit() || c0 == b'.') {
        return false;
    }
    // Every int and float form of both versions: decimal, octal (012, 0o12),
    // hex, binary, underscores, sexagesimal (1:20), exponents, `.5`, `1.`.
    if b[start..].iter().all(|c| {
        c.is_ascii_hexdigit()
            || matches!(c, b'_' | b'.' | b':' | b'x' | b'X' | b'o' | b'O')
            || matches!(c, b'+' | b'-')
    }) {
        return true;
    }
    // Timestamps (YAML 1.1): 2001-12-14, 2001-12-14t21:59:43.10-05:00,
    // 2001-12-14 21:59:43.10 -5.
    b.len() >= 8 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && b[5].is_ascii_digit()
}

/// A literal block fits a string with line breaks whose every character is
/// printable, that does not start with whitespace (the indentation would be
/// read from it) and has no carriage return.
fn literal_ok(s: &str) -> bool {
    s.contains('\n')
        && !s.starts_with([' ', '\t', '\n'])
        && s.chars()
            .all(|c| c == '\n' || (printable(c) && !bidi_control(c)))
        && s.split('\n').all(|line| !line.ends_with([' ', '\t']))
}

fn write_literal(out: &mut String, s: &str, ind: usize) {
    let body = s.trim_end_matches('\n');
    let trailing = s.len() - body.len();
    out.push('|');
    match trailing {
        0 => out.push('-'),
        1 => {}
        _ => out.push('+'),
    }
    for line in body.split('\n') {
        out.push('\n');
        if !line.is_empty() {
            indent(out, ind.max(2));
            out.push_str(line);
        }
    }
    // `|+` keeps every trailing line break: write the extra ones as empty lines.
    for _ in 1..trailing {
        out.push('\n');
    }
}

fn write_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            c if printable(c) && !bidi_control(c) => out.push(c),
            c if (c as u32) <= 0xff => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if (c as u32) <= 0xffff => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push('"');
}

/// The deepest nesting a YAML file read by this crate (a policy, an
/// encryption config) may have: real ones stay under ten levels.
pub const MAX_READ_DEPTH: usize = 64;

/// A YAML document nested deeper than allowed, refused before parsing: the
/// parser's time grows with the square of the depth (a line of 100,000 `[`
/// took minutes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: nested deeper than {max} levels")]
pub struct TooDeep {
    /// The line the nesting got too deep at.
    pub line: usize,
    /// The deepest nesting accepted.
    pub max: usize,
}

/// Whether a node can start after `prev`, the last non-blank character
/// before it on the line (`None`: the line's start).
fn node_may_start(prev: Option<char>) -> bool {
    matches!(prev, None | Some(':' | '-' | '?' | '[' | '{' | ','))
}

/// Finds where a YAML text nests deeper than `max`, in one pass over its
/// bytes, without parsing it: block levels (indentations still open, and
/// compact `- ` / `? ` entries) plus flow levels (`[` and `{` that open a
/// node, outside quotes, comments and block scalars). It may count a level
/// a parser would not (a text line of a multi-line plain scalar); it never
/// misses the deep nesting that makes a parser slow.
pub fn check_depth(text: &str, max: usize) -> Result<(), TooDeep> {
    let mut indents: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    let (mut in_double, mut in_single) = (false, false);
    // The indentation of the line that opened a block scalar (`|`, `>`).
    let mut block_scalar: Option<usize> = None;
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let indent = line.len() - line.trim_start_matches(' ').len();
        let body = &line[indent..];
        if let Some(parent) = block_scalar {
            if body.trim().is_empty() || indent > parent {
                continue;
            }
            block_scalar = None;
        }
        let mut block = 0;
        let mut rest = body;
        if flow == 0 && !in_double && !in_single {
            if body.is_empty() || body.starts_with('#') {
                continue;
            }
            while indents.last().is_some_and(|&top| top > indent) {
                indents.pop();
            }
            if indents.last() != Some(&indent) {
                indents.push(indent);
            }
            block = indents.len();
            // Compact entries: `- - - x`, `? - x`.
            loop {
                let b = rest.as_bytes();
                if b.len() >= 2 && matches!(b[0], b'-' | b'?') && matches!(b[1], b' ' | b'\t') {
                    block += 1;
                    rest = rest[1..].trim_start_matches([' ', '\t']);
                } else {
                    break;
                }
            }
        }
        if block + flow > max {
            return Err(TooDeep { line: line_no, max });
        }
        let mut prev: Option<char> = None;
        let mut last_blank = true;
        let mut chars = rest.chars().peekable();
        while let Some(c) = chars.next() {
            if in_double {
                match c {
                    '\\' => {
                        chars.next();
                    }
                    '"' => in_double = false,
                    _ => {}
                }
                prev = Some(c);
                last_blank = false;
                continue;
            }
            if in_single {
                if c == '\'' {
                    if chars.peek() == Some(&'\'') {
                        chars.next();
                    } else {
                        in_single = false;
                    }
                }
                prev = Some(c);
                last_blank = false;
                continue;
            }
            let starts = node_may_start(prev);
            match c {
                '#' if last_blank => break,
                '"' if starts => in_double = true,
                '\'' if starts => in_single = true,
                '[' | '{' if starts => {
                    flow += 1;
                    if block + flow > max {
                        return Err(TooDeep { line: line_no, max });
                    }
                }
                ']' | '}' if flow > 0 => flow -= 1,
                _ => {}
            }
            last_blank = c == ' ' || c == '\t';
            if !last_blank {
                prev = Some(c);
            }
        }
        if flow == 0 && !in_double && !in_single {
            // A block scalar's header ends the line: `key: |`, `- >-`, `|2`.
            let content = rest.split(" #").next().unwrap_or("").trim_end();
            let last = content.rsplit([' ', '\t']).next().unwrap_or("");
            if (last.starts_with('|') || last.starts_with('>'))
                && last[1..]
                    .chars()
                    .all(|c| matches!(c, '-' | '+' | '1'..='9'))
            {
                block_scalar = Some(indent);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn deep_nesting_is_found_by_line() {
        use super::{TooDeep, check_depth};
        let ok = "a:\n  b: [1, {c: 'x[y', d: \"[[\"}]\n  e: |\n    [[[[[[\n    {{{{\n  f: don't [\n- - - x\n";
        assert_eq!(check_depth(ok, 5), Ok(()));
        let deep = format!("a: 1\nb: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(check_depth(&deep, 64), Err(TooDeep { line: 2, max: 64 }));
        let dashes = format!("a:\n\n  {}x\n", "- ".repeat(100));
        assert_eq!(check_depth(&dashes, 64), Err(TooDeep { line: 3, max: 64 }));
        let maps = format!("x: {}1{}\n", "{a: ".repeat(65), "}".repeat(65));
        assert!(check_depth(&maps, 64).is_err());
        let indented: String = (0..70)
            .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
            .collect();
        assert_eq!(
            check_depth(&indented, 64),
            Err(TooDeep { line: 65, max: 64 })
        );
    }

    use super::*;
    use serde_json::json;

    #[test]
    fn typed_strings_are_quoted() {
        for s in [
            "yes",
            "No",
            "ON",
            "off",
            "y",
            "N",
            "~",
            "null",
            "1_000",
            "0x1F",
            "012",
            "1:20",
            "<<",
            "=",
            "1e3",
            ".5",
            ".inf",
            "2001-12-14",
            "",
            " x",
            "x ",
            "a: b",
            "- x",
            "# c",
            "10.96.0.1",
            "+1",
            "-1",
        ] {
            let y = to_string(&json!({ "k": s }));
            assert!(y.starts_with("k: \""), "{s:?} -> {y}");
        }
        for s in [
            "web",
            "registry.example/app:1.0",
            "a b",
            "node-1",
            "x-1.5",
            "Hello",
        ] {
            assert_eq!(to_string(&json!({ "k": s })), format!("k: {s}\n"));
        }
    }

    #[test]
    fn deep_values_go_flow_and_stay_small() {
        // Dropping a serde_json value this deep recurses: a big stack.
        let t = std::thread::Builder::new()
            .stack_size(256 << 20)
            .spawn(|| {
                let mut v = json!("leaf");
                for _ in 0..2_000 {
                    let mut m = serde_json::Map::new();
                    m.insert("k".into(), Value::Array(vec![v]));
                    v = Value::Object(m);
                }
                let y = to_string(&v);
                assert!(y.len() < 40_000, "{} bytes", y.len());
                assert!(y.contains("[{\"k\": ["), "{}", &y[..300]);
                crate::kube::budget::drop_deep(v);
            })
            .expect("thread");
        t.join().expect("no panic");
        let shallow = json!({"a": {"b": [1, {"c": "d"}]}});
        assert!(!to_string(&shallow).contains('{'));
    }

    #[test]
    fn layout_like_kubectl() {
        let v = json!({"a": {"b": [1, {"c": "d", "e": []}], "f": {}}, "g": "x\ny\n"});
        assert_eq!(
            to_string(&v),
            "a:\n  b:\n  - 1\n  - c: d\n    e: []\n  f: {}\ng: |\n  x\n  y\n"
        );
    }
}
