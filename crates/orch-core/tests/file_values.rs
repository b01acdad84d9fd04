//! Values in workflow files that used to be mangled or refused: TOML datetimes, non-finite
//! numbers, `null` timeouts, human-readable durations, byte-order marks and bytes that are
//! not UTF-8.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use orch_core::{LoadError, Workflow};
use serde_json::json;
use support::parse_error;

/// A scratch directory of this test binary's own, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("orch-core-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }

    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, bytes).expect("write");
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn toml_datetimes_reach_the_config_as_rfc3339_text() {
    let workflow = Workflow::from_toml(
        "workflow_id = \"w\"\n[tasks.a]\ntask_type = \"t\"\n[tasks.a.config]\n\
         at = 1979-05-27T07:32:00Z\n\
         offset = 1979-05-27T00:32:00.999999-07:00\n\
         local = 1979-05-27T07:32:00\n\
         day = 1979-05-27\n\
         times = [07:32:00, { nested = 2024-02-29T12:00:00Z }]\n\
         short = [1979-05-27T07:32Z, 1979-05-27 07:32, 07:32]\n",
    )
    .expect("valid TOML");
    assert_eq!(
        workflow.get("a").expect("task a").config,
        json!({
            "at": "1979-05-27T07:32:00Z",
            "offset": "1979-05-27T00:32:00.999999-07:00",
            "local": "1979-05-27T07:32:00",
            "day": "1979-05-27",
            "times": ["07:32:00", {"nested": "2024-02-29T12:00:00Z"}],
            // TOML 1.1 lets the seconds out; RFC 3339 does not.
            "short": ["1979-05-27T07:32:00Z", "1979-05-27T07:32:00", "07:32:00"],
        })
    );
}

/// The key under which TOML's reader hands over a datetime, written by hand, does not
/// make its table text.
#[test]
fn a_table_written_with_the_datetime_key_is_not_taken_for_a_datetime() {
    for (value, field) in [
        (
            "{ \"$__toml_private_datetime\" = \"not a date\" }",
            "tasks.a.config.when",
        ),
        (
            "{ \"$__toml_private_datetime\" = \"1979-05-27\", more = 1 }",
            "tasks.a.config.when",
        ),
        // A valid datetime's text, but written by hand.
        (
            "{ \"$__toml_private_datetime\" = \"1979-05-27T07:32\" }",
            "tasks.a.config.when",
        ),
    ] {
        let (at, _, message) = parse_error(Workflow::from_toml(&format!(
            "workflow_id = \"w\"\n[tasks.a]\ntask_type = \"t\"\nconfig = {{ when = {value} }}\n"
        )));
        assert_eq!(at, field, "{value}");
        assert!(message.contains("kept for TOML datetimes"), "{message}");
    }
    let (at, _, message) = parse_error(Workflow::from_toml(
        "workflow_id = { \"$__toml_private_datetime\" = \"w\" }\n[tasks.a]\ntask_type = \"t\"\n",
    ));
    assert_eq!(at, "workflow_id");
    assert!(message.contains("kept for TOML datetimes"), "{message}");
}

#[test]
fn toml_non_finite_numbers_are_a_load_error_naming_the_field() {
    for (value, shown) in [
        ("nan", "NaN"),
        ("inf", "inf"),
        ("-inf", "-inf"),
        ("+nan", "NaN"),
    ] {
        let (field, line, message) = parse_error(Workflow::from_toml(&format!(
            "workflow_id = \"w\"\n[tasks.a]\ntask_type = \"t\"\nconfig = {{ ok = 1.5, x = {value} }}\n"
        )));
        assert_eq!(field, "tasks.a.config.x", "{value}");
        assert_eq!(line, Some(4), "{value}");
        assert!(
            message.contains(&format!("{shown} is not a finite number")),
            "{message}"
        );
    }
    let (field, _, _) = parse_error(Workflow::from_toml(
        "workflow_id = \"w\"\n[tasks.a]\ntask_type = \"t\"\nbackoff = { multiplier = inf }\n",
    ));
    assert_eq!(field, "tasks.a.backoff.multiplier");
}

#[test]
fn yaml_non_finite_numbers_are_a_load_error_naming_the_field() {
    for value in [".nan", ".NaN", ".inf", "-.inf", "+.INF"] {
        let (field, line, message) = parse_error(Workflow::from_yaml(&format!(
            "workflow_id: w\ntasks:\n  a:\n    task_type: t\n    config:\n      list: [1, {value}]\n"
        )));
        assert_eq!(field, "tasks.a.config.list[1]", "{value}");
        assert_eq!(line, Some(6), "{value}");
        assert!(message.contains("is not a finite number"), "{message}");
    }
    let (field, _, _) = parse_error(Workflow::from_yaml(
        "workflow_id: w\ntasks:\n  a:\n    task_type: t\n    timeout: .inf\n",
    ));
    assert_eq!(field, "tasks.a.timeout");
}

#[test]
fn integers_past_64_bits_are_refused_in_yaml_and_toml_and_the_edges_read_exactly() {
    for (value, edge) in [
        ("18446744073709551616", json!(u64::MAX)),
        ("-9223372036854775809", json!(i64::MIN)),
    ] {
        let (field, line, message) = parse_error(Workflow::from_yaml(&format!(
            "workflow_id: w\ntasks:\n  a:\n    task_type: t\n    config:\n      n: {value}\n"
        )));
        assert_eq!(
            (field.as_str(), line),
            ("tasks.a.config.n", Some(6)),
            "{value}"
        );
        assert!(message.contains("does not fit in 64 bits"), "{message}");
        let (field, _, message) = parse_error(Workflow::from_toml(&format!(
            "workflow_id = \"w\"\n[tasks.a]\ntask_type = \"t\"\nconfig = {{ n = {value} }}\n"
        )));
        // TOML's own integers stop at i64: its parser may refuse first, in its words.
        assert_eq!(field, "tasks.a.config.n", "{value}: {message}");

        let edge_text = edge.to_string();
        let workflow = Workflow::from_yaml(&format!(
            "workflow_id: w\ntasks:\n  a:\n    task_type: t\n    config:\n      n: {edge_text}\n"
        ))
        .expect("a 64-bit integer");
        let read = workflow.get("a").map(|task| task.config["n"].clone());
        assert_eq!(read, Some(edge), "{edge_text}");
    }
}

#[test]
fn a_null_timeout_means_no_timeout() {
    let json = Workflow::from_json(
        r#"{"workflow_id": "w", "tasks": {"a": {"task_type": "t", "timeout": null}}}"#,
    )
    .expect("null timeout");
    assert_eq!(json.get("a").expect("task a").timeout, None);
    for yaml in ["timeout: ~", "timeout: null", "timeout:"] {
        let workflow = Workflow::from_yaml(&format!(
            "workflow_id: w\ntasks:\n  a:\n    task_type: t\n    {yaml}\n"
        ))
        .expect(yaml);
        assert_eq!(workflow.get("a").expect("task a").timeout, None, "{yaml}");
    }
}

#[test]
fn durations_accept_human_text() {
    let workflow = Workflow::from_yaml(
        "workflow_id: w\ntasks:\n  a:\n    task_type: t\n    timeout: 1m 30s\n    backoff:\n      initial: 250ms\n      max: 2h\n  b:\n    task_type: t\n    timeout: 30s\n  c:\n    task_type: t\n    timeout: \"1.25\"\n",
    )
    .expect("human durations");
    let a = workflow.get("a").expect("task a");
    assert_eq!(a.timeout, Some(Duration::from_secs(90)));
    assert_eq!(a.backoff.initial, Duration::from_millis(250));
    assert_eq!(a.backoff.max, Duration::from_secs(7_200));
    assert_eq!(
        workflow.get("b").expect("task b").timeout,
        Some(Duration::from_secs(30))
    );
    assert_eq!(
        workflow.get("c").expect("task c").timeout,
        Some(Duration::from_millis(1_250))
    );

    let toml = Workflow::from_toml(
        "workflow_id = \"w\"\n[tasks.a]\ntask_type = \"t\"\ntimeout = \"1m 30s\"\n",
    )
    .expect("human duration in TOML");
    assert_eq!(
        toml.get("a").expect("task a").timeout,
        Some(Duration::from_secs(90))
    );
}

#[test]
fn durations_past_the_longest_are_an_error_naming_the_field_in_every_format() {
    let too_large = [
        "18446744073709551615s 1000ms",
        "18446744073709551615s 1000000000ns",
        "18446744073709551615s 0.5s 0.5s",
        "99999999999999999999s",
        "1000000000000y",
    ];
    for text in too_large {
        for loaded in [
            Workflow::from_json(&format!(
                r#"{{"workflow_id": "w", "tasks": {{"a": {{"task_type": "t", "timeout": "{text}"}}}}}}"#
            )),
            Workflow::from_yaml(&format!(
                "workflow_id: w\ntasks:\n  a:\n    task_type: t\n    backoff:\n      max: {text}\n"
            )),
            Workflow::from_toml(&format!(
                "workflow_id = \"w\"\n[tasks.a]\ntask_type = \"t\"\nbackoff = {{ initial = \"{text}\" }}\n"
            )),
        ] {
            let (field, _, message) = parse_error(loaded);
            assert!(field.starts_with("tasks.a."), "{text}: {field}");
            assert!(
                message.contains("longer than the longest duration"),
                "{text}: {message}"
            );
        }
        assert_eq!(
            orch_core::parse_duration(text),
            Err(orch_core::DurationError::TooLarge(text.to_owned()))
        );
    }
    let (field, _, message) = parse_error(Workflow::from_json(
        r#"{"workflow_id": "w", "tasks": {"a": {"task_type": "t", "timeout": 1e20}}}"#,
    ));
    assert_eq!(field, "tasks.a.timeout");
    assert!(
        message.contains("longer than the longest duration"),
        "{message}"
    );
    // Just under the longest, in the same units, still reads.
    assert_eq!(
        orch_core::parse_duration("18446744073709551614s 999ms"),
        Ok(Duration::new(u64::MAX - 1, 999_000_000))
    );
}

/// YAML reads a whole number past 64 bits as a 128-bit one: a duration of that many
/// seconds is too long, and a negative one negative, not a number of the wrong type.
#[test]
fn yaml_whole_numbers_past_64_bits_are_durations_too_long_or_negative() {
    for (value, expected) in [
        ("99999999999999999999", "longer than the longest duration"),
        (
            "-99999999999999999999",
            "expected a non-negative, finite number of seconds",
        ),
    ] {
        for field in ["timeout: ", "backoff:\n      initial: "] {
            let text =
                format!("workflow_id: w\ntasks:\n  a:\n    task_type: t\n    {field}{value}\n");
            let (field, _, message) = parse_error(Workflow::from_yaml(&text));
            assert!(field.starts_with("tasks.a."), "{value}: {field}");
            assert!(message.contains(expected), "{value}: {message}");
        }
    }
}

#[test]
fn a_key_repeated_in_a_config_object_is_an_error_in_every_format() {
    for (loaded, field) in [
        (
            Workflow::from_json(
                r#"{"workflow_id": "w", "tasks": {"a": {"task_type": "t", "config": {"url": "a", "url": "b"}}}}"#,
            ),
            "tasks.a.config",
        ),
        (
            Workflow::from_yaml(
                "workflow_id: w\ntasks:\n  a:\n    task_type: t\n    config:\n      db: {url: a, url: b}\n",
            ),
            "tasks.a.config.db",
        ),
        (
            // TOML's own reader refuses it, at its line.
            Workflow::from_toml(
                "workflow_id = \"w\"\n[tasks.a]\ntask_type = \"t\"\nconfig = { url = \"a\", url = \"b\" }\n",
            ),
            ".",
        ),
    ] {
        let (at, line, message) = parse_error(loaded);
        assert!(at.starts_with(field), "{at}: {message}");
        assert!(message.starts_with("duplicate key"), "{message}");
        assert!(message.contains("`url`"), "{message}");
        assert!(field != "." || line == Some(4), "{line:?}");
    }
    // The same key in two objects is no repetition.
    let workflow = Workflow::from_json(
        r#"{"workflow_id": "w", "tasks": {"a": {"task_type": "t", "config": {"x": {"url": 1}, "y": {"url": 2}, "n": [1, 2.5, null, true, "s"]}}}}"#,
    )
    .expect("valid");
    assert_eq!(
        workflow.get("a").expect("task a").config,
        serde_json::json!({"x": {"url": 1}, "y": {"url": 2}, "n": [1, 2.5, null, true, "s"]})
    );
}

#[test]
fn a_file_that_is_not_utf8_is_refused_at_the_bad_byte() {
    let scratch = Scratch::new("utf8");
    for (name, bytes, offset, line) in [
        ("bad.json", &b"{\"workflow_id\": \"w\xff\"}"[..], 18, 1),
        ("bad.yaml", &b"workflow_id: w\nname: caf\xc3\n"[..], 24, 2),
        (
            "bad.toml",
            &b"\xef\xbb\xbfworkflow_id = \"\xe2\x82\""[..],
            18,
            1,
        ),
    ] {
        let path = scratch.file(name, bytes);
        match Workflow::from_path(&path) {
            Err(LoadError::InvalidUtf8 {
                path: found,
                offset: at,
                line: on,
            }) => {
                assert_eq!(found, path);
                assert_eq!((at, on), (offset, line), "{name}");
            }
            other => panic!("{name}: expected invalid UTF-8, got {other:?}"),
        }
        let message = Workflow::from_path(&path).expect_err(name).to_string();
        assert!(
            message.contains(&format!("at byte offset {offset} (line {line})")),
            "{message}"
        );
    }
}

#[test]
fn a_byte_order_mark_is_accepted_in_every_format() {
    let scratch = Scratch::new("bom");
    let bom = "\u{feff}";
    let files = [
        (
            "w.json",
            r#"{"workflow_id": "w", "tasks": {"a": {"task_type": "t"}}}"#,
        ),
        ("w.yaml", "workflow_id: w\ntasks:\n  a:\n    task_type: t\n"),
        (
            "w.toml",
            "workflow_id = \"w\"\n[tasks.a]\ntask_type = \"t\"\n",
        ),
    ];
    let expected = Workflow::from_json(files[0].1).expect("valid");
    for (name, text) in files {
        let with_bom = format!("{bom}{text}");
        let path = scratch.file(name, with_bom.as_bytes());
        assert_eq!(Workflow::from_path(&path).expect(name), expected, "{name}");
    }
    let text = format!("{bom}{}", files[0].1);
    assert_eq!(Workflow::from_json(&text).expect("from_json"), expected);
    let text = format!("{bom}{}", files[1].1);
    assert_eq!(Workflow::from_yaml(&text).expect("from_yaml"), expected);
    let text = format!("{bom}{}", files[2].1);
    assert_eq!(Workflow::from_toml(&text).expect("from_toml"), expected);

    // Errors still give the position in the text as written, BOM or not.
    let (_, line, _) = parse_error(Workflow::from_json(&format!(
        "{bom}{{\n  \"workflow_id\": 1\n}}"
    )));
    assert_eq!(line, Some(2));
}
