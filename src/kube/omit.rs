//! Which fields the API server leaves out of its JSON when they are zero.
//!
//! go-to-protobuf writes every non-pointer field of a Go struct, zero or not,
//! so a stored Pod carries `hostNetwork: false`, `selfLink: ""` and twenty more
//! that the API server's JSON encoder drops by their `omitempty` tags. The
//! proto files do not say which; `k8s-omit.json.zst` does, generated from the
//! Go types themselves (see `k8s-omit.txt`): per protobuf message, per JSON
//! field, `e` omitempty, `z` omitzero, `p` a pointer (printed whenever set),
//! `n` a slice or map that no tag omits (absent in protobuf means nil in Go,
//! which the API server prints as `null`).
//! A message the table does not know (a type older than it) prints every field
//! it holds, as before.

use std::collections::HashMap;
use std::sync::OnceLock;

static TABLE_ZST: &[u8] = include_bytes!("k8s-omit.json.zst");

/// How one field is omitted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Omit {
    /// Go's `omitempty`: left out when empty or zero.
    pub omitempty: bool,
    /// Go's `omitzero`: left out when zero.
    pub omitzero: bool,
    /// A pointer in Go: left out when absent, printed when present even if zero.
    pub pointer: bool,
    /// A slice or map printed as `null` when absent.
    pub null_when_absent: bool,
}

impl Omit {
    /// Whether a zero value of this field is left out.
    pub fn drops_zero(self) -> bool {
        !self.pointer && (self.omitempty || self.omitzero)
    }
}

type Table = HashMap<String, HashMap<String, Omit>>;

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        // The table is compiled in; a damaged one would fail every test, so
        // an unreadable table degrades to "print every field".
        let Ok(bytes) = zstd::decode_all(TABLE_ZST) else {
            return Table::new();
        };
        let Ok(raw) = serde_json::from_slice::<HashMap<String, HashMap<String, String>>>(&bytes)
        else {
            return Table::new();
        };
        raw.into_iter()
            .map(|(msg, fields)| {
                let fields = fields
                    .into_iter()
                    .map(|(f, flags)| {
                        let o = Omit {
                            omitempty: flags.contains('e'),
                            omitzero: flags.contains('z'),
                            pointer: flags.contains('p'),
                            null_when_absent: flags.contains('n'),
                        };
                        (f, o)
                    })
                    .collect();
                (msg, fields)
            })
            .collect()
    })
}

/// The fields of one message (by full protobuf name), if the table knows it.
pub fn fields_of(message: &str) -> Option<&'static HashMap<String, Omit>> {
    table().get(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_loads_and_knows_core_types() {
        let pod = fields_of("api.core.v1.PodSpec").expect("PodSpec");
        assert!(pod["hostNetwork"].drops_zero());
        assert!(!pod["activeDeadlineSeconds"].drops_zero());
        let meta = fields_of("apimachinery.pkg.apis.meta.v1.ObjectMeta").expect("ObjectMeta");
        assert!(meta["resourceVersion"].drops_zero());
        assert!(fields_of("api.apps.v1.DeploymentSpec").is_some());
        let role = fields_of("api.rbac.v1.ClusterRole").expect("ClusterRole");
        assert!(role["rules"].null_when_absent);
    }
}
