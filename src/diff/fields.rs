//! Field-level differences of two decoded objects: a unified diff of their
//! YAML (the `similar` crate) and an RFC 6902 JSON Patch (the `json-patch`
//! crate) that turns the old object into the new one.

use serde_json::Value;
use similar::TextDiff;

/// A unified diff of two texts with `context` lines around each change,
/// headed `--- old_label` / `+++ new_label`; empty when they are equal.
pub fn unified(old: &str, new: &str, context: usize, old_label: &str, new_label: &str) -> String {
    if old == new {
        return String::new();
    }
    let diff = TextDiff::from_lines(old, new);
    diff.unified_diff()
        .context_radius(context)
        .header(old_label, new_label)
        .to_string()
}

/// The JSON Patch (RFC 6902) from `old` to `new`, as JSON.
pub fn patch(old: &Value, new: &Value) -> Value {
    let p = json_patch::diff(old, new);
    serde_json::to_value(&p).unwrap_or(Value::Array(Vec::new()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn patch_turns_old_into_new() {
        let old = json!({"a": 1, "b": {"c": [1, 2, 3]}, "d": "x"});
        let new = json!({"a": 2, "b": {"c": [1, 3]}, "e": "y"});
        let p: json_patch::Patch = serde_json::from_value(super::patch(&old, &new)).unwrap();
        let mut o = old.clone();
        json_patch::patch(&mut o, &p).unwrap();
        assert_eq!(o, new);
    }

    #[test]
    fn unified_has_headers_and_context() {
        let d = super::unified("a\nb\nc\n", "a\nB\nc\n", 1, "old", "new");
        assert_eq!(d, "--- old\n+++ new\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n");
        assert_eq!(super::unified("x\n", "x\n", 3, "o", "n"), "");
    }
}
