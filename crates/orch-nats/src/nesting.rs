//! How deep a message's arrays and objects nest: serde_json reads only so deep, and a
//! message deeper than that must be refused where it is written, not lost where it is
//! read.

/// The deepest that arrays and objects may nest within each other in a message: serde_json
/// reads no deeper.
pub(crate) const MAX_NESTING: usize = 127;

/// How deep the arrays and objects of `json` (valid JSON) nest within each other. A scan
/// of the text, not a parse: a value too deep to parse is measured too.
pub(crate) fn nesting(json: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0_usize, 0_usize);
    let (mut in_string, mut escaped) = (false, false);
    for &byte in json {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::Value;

    use super::*;

    /// The nesting of `value`, counted on the value itself.
    fn reference(value: &Value) -> usize {
        match value {
            Value::Array(items) => 1 + items.iter().map(reference).max().unwrap_or(0),
            Value::Object(fields) => 1 + fields.values().map(reference).max().unwrap_or(0),
            _ => 0,
        }
    }

    fn json() -> impl Strategy<Value = Value> {
        // Strings full of what the scan must not count: brackets, quotes, backslashes.
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<i64>().prop_map(Value::from),
            "[\\[\\]{}\"\\\\a-z]{0,8}".prop_map(Value::from),
        ];
        leaf.prop_recursive(8, 64, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map("[\\[\\]{}\"\\\\a-z]{0,6}", inner, 0..4)
                    .prop_map(|fields| Value::Object(fields.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn the_scan_counts_what_the_value_nests(value in json()) {
            let text = serde_json::to_vec(&value).expect("json");
            prop_assert_eq!(nesting(&text), reference(&value));
        }
    }

    #[test]
    fn what_serde_json_reads_is_what_the_limit_allows() {
        for depth in [MAX_NESTING - 1, MAX_NESTING, MAX_NESTING + 1, 10_000] {
            let text = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
            assert_eq!(nesting(text.as_bytes()), depth);
            let read = serde_json::from_str::<Value>(&text).is_ok();
            assert_eq!(read, depth <= MAX_NESTING, "{depth} levels");
        }
    }
}
