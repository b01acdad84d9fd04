//! A command's standard output made into its task's result, by capture mode.

use base64::Engine as _;
use serde_json::Value;

use super::CommandError;
use crate::spec::Capture;

/// The task's result from its standard output, JSON nested at most `max_depth` levels.
pub(super) fn to_result(
    bytes: Vec<u8>,
    capture: Capture,
    max_depth: usize,
) -> Result<Value, CommandError> {
    let text = |bytes: Vec<u8>| {
        String::from_utf8(bytes).map_err(|e| CommandError::NotUtf8 {
            offset: e.utf8_error().valid_up_to(),
        })
    };
    match capture {
        Capture::None => Ok(Value::Null),
        Capture::Base64 => Ok(Value::String(
            base64::engine::general_purpose::STANDARD.encode(bytes),
        )),
        Capture::Json => {
            let value = serde_json::from_slice(&bytes).map_err(CommandError::NotJson)?;
            match depth(&value) {
                depth if depth > max_depth => Err(CommandError::TooDeep {
                    depth,
                    limit: max_depth,
                }),
                _ => Ok(value),
            }
        }
        Capture::Text => {
            let mut text = text(bytes)?;
            strip_newline(&mut text);
            Ok(Value::String(text))
        }
        Capture::Auto => {
            let mut text = text(bytes)?;
            if text.trim().is_empty() {
                return Ok(Value::Null);
            }
            if let Ok(value) = serde_json::from_str(&text)
                && depth(&value) <= max_depth
                && crate::exact_numbers::numbers_read_exactly(&text)
            {
                return Ok(value);
            }
            strip_newline(&mut text);
            Ok(Value::String(text))
        }
    }
}

/// The deepest a command's JSON output may nest (arrays and objects within each other):
/// as deep as a result file holds a task's result (a map instance's, one level less: it
/// is in its map task's list).
pub(super) const MAX_DEPTH: usize = crate::result_file::MAX_RESULT_DEPTH;

/// How deep `value` nests (a number 0, `[1]` 1), without recursion, holding one
/// iterator per level (an entry per element would double a large capture's memory).
pub(crate) fn depth(value: &Value) -> usize {
    fn inner(value: &Value) -> Option<Box<dyn Iterator<Item = &Value> + '_>> {
        match value {
            Value::Array(items) => Some(Box::new(items.iter())),
            Value::Object(fields) => Some(Box::new(fields.values())),
            _ => None,
        }
    }
    let mut path: Vec<_> = inner(value).into_iter().collect();
    let mut deepest = path.len();
    while let Some(level) = path.last_mut() {
        match level.next() {
            Some(item) => {
                if let Some(items) = inner(item) {
                    path.push(items);
                    deepest = deepest.max(path.len());
                }
            }
            None => drop(path.pop()),
        }
    }
    deepest
}

fn strip_newline(text: &mut String) {
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// How deep `value` nests, by recursion: the definition `depth` must agree with.
    fn recursive_depth(value: &Value) -> usize {
        let deepest = |items: &mut dyn Iterator<Item = &Value>| {
            1 + items.map(recursive_depth).max().unwrap_or(0)
        };
        match value {
            Value::Array(items) => deepest(&mut items.iter()),
            Value::Object(fields) => deepest(&mut fields.values()),
            _ => 0,
        }
    }

    proptest::proptest! {
        #[test]
        fn depth_agrees_with_its_recursive_definition(value in json_value()) {
            proptest::prop_assert_eq!(depth(&value), recursive_depth(&value));
        }
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![Just(Value::Null), any::<i8>().prop_map(|n| json!(n))];
        leaf.prop_recursive(8, 64, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec(("[a-c]", inner), 0..4)
                    .prop_map(|fields| Value::Object(fields.into_iter().collect())),
            ]
        })
    }

    #[test]
    fn output_becomes_json_text_or_an_error_by_capture_mode() {
        let auto =
            |s: &[u8]| to_result(s.to_vec(), Capture::Auto, MAX_DEPTH).map_err(|e| e.to_string());
        assert_eq!(auto(b"{\"rows\": 3}\n"), Ok(json!({"rows": 3})));
        assert_eq!(auto(b"hello\n"), Ok(json!("hello")));
        assert_eq!(auto(b"  \n"), Ok(Value::Null));
        assert_eq!(auto(b"42"), Ok(json!(42)));
        let error = auto(b"ok\xff\n").expect_err("not UTF-8");
        assert!(error.contains("offset 2"), "{error}");
        assert_eq!(
            to_result(b"42\n".to_vec(), Capture::Text, MAX_DEPTH).ok(),
            Some(json!("42"))
        );
        assert_eq!(
            to_result(b"\xff".to_vec(), Capture::Base64, MAX_DEPTH).ok(),
            Some(json!("/w=="))
        );
        // Numbers that JSON would round keep the output as text.
        assert_eq!(
            auto(b"123456789012345678901234567890\n"),
            Ok(json!("123456789012345678901234567890"))
        );
        assert_eq!(
            auto(b"[\"\\\"1\", {\"e\": -18446744073709551616}]"),
            Ok(json!("[\"\\\"1\", {\"e\": -18446744073709551616}]"))
        );
        assert_eq!(
            auto(b"0.12345678901234567890"),
            Ok(json!("0.12345678901234567890"))
        );
        assert_eq!(
            auto(b"[18446744073709551615, -1.50e1, 0.1, 0e99999999999999999999, -0]"),
            Ok(json!([18446744073709551615_u64, -15.0, 0.1, 0.0, -0.0]))
        );
        assert!(to_result(b"x".to_vec(), Capture::Json, MAX_DEPTH).is_err());
        assert_eq!(
            to_result(b"x".to_vec(), Capture::None, MAX_DEPTH).ok(),
            Some(Value::Null)
        );
    }
}
