//! Memory bounded by the value: what decoding one stored value may build.
//!
//! A stored value can describe far more than its size: a CBOR byte is an
//! empty map, two protobuf bytes an empty container that prints a dozen
//! fields. Decoders charge what they build (nodes of the JSON tree, strings)
//! against a [`Budget`] of a small multiple of the value's size and stop with
//! [`TooLarge`] before building more, so a hostile value is refused with an
//! error naming it instead of taking gigabytes. Real objects stay far below
//! the bound (their bytes are mostly strings, which cost about their size).

/// What the decoded tree may cost, per byte of the stored value.
pub const TREE_FACTOR: usize = 10;

/// A tree this small is always allowed, so that small values are never
/// refused (real objects, mostly strings, cost about 3x their size; a dense
/// one of short fields and numbers 15-25x).
pub const TREE_FLOOR: usize = 8 << 20;

/// What one node of a decoded tree is charged, besides its string bytes.
/// Calibrated on measured peak memory, not on a worst-case model: 160 bytes
/// (a JSON value and its slot, an object's entry and index, vector growth)
/// over-counted so much that a real 1 MB custom resource of 20,000 small
/// list items — 7.5x its size in fact — was refused. At 64 bytes that value
/// decodes, and the hostile shapes (CBOR of empty maps, a protobuf Pod of
/// empty containers) are still refused within 10x of their size in measured
/// peak memory (`object_output::memory_is_bounded_by_the_value` checks both).
pub const NODE_COST: usize = 64;

/// The decoding of a value would build more than its budget allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "decoding would take more than {limit_mb} MiB (the bound is {TREE_FACTOR}x the value's \
     {value_len} bytes, at least 8 MiB): {what}; refused to keep memory bounded by the value \
     (-o raw has the stored bytes)"
)]
pub struct TooLarge {
    /// Bytes of the stored value.
    pub value_len: usize,
    /// The memory allowed for it, in MiB.
    pub limit_mb: usize,
    /// What made it large (`1400000 nodes`, …).
    pub what: String,
}

/// The bytes a decoder may still spend.
#[derive(Debug, Clone)]
pub struct Budget {
    value_len: usize,
    limit: usize,
    spent: usize,
    nodes: usize,
}

impl Budget {
    /// The budget of a stored value of `value_len` bytes.
    pub fn for_value(value_len: usize) -> Budget {
        Budget {
            value_len,
            limit: limit(value_len),
            spent: 0,
            nodes: 0,
        }
    }

    /// Charges `n` nodes and `bytes` of strings.
    #[inline]
    pub fn charge(&mut self, n: usize, bytes: usize) -> Result<(), TooLarge> {
        self.nodes = self.nodes.saturating_add(n);
        self.spent = self
            .spent
            .saturating_add(n.saturating_mul(NODE_COST))
            .saturating_add(bytes);
        if self.spent > self.limit {
            return Err(TooLarge {
                value_len: self.value_len,
                limit_mb: self.limit.div_ceil(1 << 20),
                what: format!("{} nodes and more", self.nodes),
            });
        }
        Ok(())
    }

    /// Nodes charged so far.
    pub fn nodes(&self) -> usize {
        self.nodes
    }
}

/// The tree bytes allowed for a value of `value_len` bytes.
pub fn limit(value_len: usize) -> usize {
    value_len.saturating_mul(TREE_FACTOR).max(TREE_FLOOR)
}

/// The most a value of `value_len` bytes can build: its [`limit`], and no
/// more than a few nodes per byte of the wire (CBOR's one-byte items;
/// protobuf's two-byte empty messages) — what `get --all` adds up to bound
/// the values it decodes at once.
pub fn worst_case(value_len: usize) -> usize {
    limit(value_len).min(value_len.saturating_mul(MAX_COST_PER_BYTE))
}

/// The most values a listing (`get --all`, `diff`) decodes at once, whatever
/// the core count: each holds a decoded tree and its rendering, and the
/// allocator keeps memory per thread, so peak memory would otherwise grow
/// with the core count (measured: 152 MiB on 2 threads, 327 MiB on 16, for
/// 1 MB values).
pub const MAX_DECODE_THREADS: usize = 4;

/// What the values decoded at once may build, in all: each value's decoding
/// is bounded ([`worst_case`]), so memory stays within this whatever the
/// number of threads.
pub const CHUNK_BUDGET: usize = 64 << 20;

/// Consecutive runs of `items` whose costs add up to at most `max_bytes` (a
/// larger one alone), at most `max_items` items each: the chunks a listing
/// decodes on all cores, one after the other.
pub fn chunks_by_cost<T>(
    items: &[T],
    cost: impl Fn(&T) -> usize,
    max_bytes: usize,
    max_items: usize,
) -> impl Iterator<Item = &[T]> {
    let mut rest = items;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut bytes = 0usize;
        let mut n = 0;
        while n < rest.len() && n < max_items {
            let c = cost(&rest[n]);
            if n > 0 && bytes.saturating_add(c) > max_bytes {
                break;
            }
            bytes = bytes.saturating_add(c);
            n += 1;
        }
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        Some(chunk)
    })
}

/// Budget bytes one stored byte can be charged at most (with margin).
pub const MAX_COST_PER_BYTE: usize = 16 * NODE_COST;

/// `bytes` as text the way Go's JSON encoder prints a string holding them:
/// each byte of an invalid UTF-8 sequence becomes U+FFFD.
pub fn go_lossy(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => {
            let mut out = String::with_capacity(bytes.len() + 8);
            for chunk in bytes.utf8_chunks() {
                out.push_str(chunk.valid());
                for _ in chunk.invalid() {
                    out.push('\u{fffd}');
                }
            }
            out
        }
    }
}

/// Drops a JSON value of any depth without recursion (a value nested 10,000
/// deep would overflow a small stack when dropped the ordinary way).
pub fn drop_deep(v: serde_json::Value) {
    use serde_json::Value;
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => stack.extend(map.into_iter().map(|(_, v)| v)),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_utf8_is_one_replacement_per_byte_like_go() {
        assert_eq!(go_lossy(b"ok"), "ok");
        assert_eq!(
            go_lossy(b"\xe2\x82 \xf0\x9f\x98"),
            "\u{fffd}\u{fffd} \u{fffd}\u{fffd}\u{fffd}"
        );
        assert_eq!(go_lossy(b"a\xffb"), "a\u{fffd}b");
    }

    #[test]
    fn budget_refuses_past_its_limit() {
        let mut b = Budget::for_value(10);
        assert!(b.charge(1, 100).is_ok());
        assert!(b.charge(TREE_FLOOR / NODE_COST, 0).is_err());
    }
}
