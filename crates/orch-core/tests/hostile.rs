//! Hostile input: lengths claimed by a binary format, YAML aliases that repeat a large
//! value, nesting that would overflow the stack or take the YAML parser quadratic time,
//! and options that would overflow a counter. Each gets a typed error naming its
//! place, never an abort or unbounded memory.

use orch_core::{LoadError, Task, ValidationError, Workflow, WorkflowResult};

/// CBOR text of fewer than 24 bytes.
fn cbor_text(text: &str) -> Vec<u8> {
    assert!(text.len() < 24);
    let mut bytes = vec![0x60 | text.len() as u8];
    bytes.extend_from_slice(text.as_bytes());
    bytes
}

/// A CBOR map (`0xbb`) or array (`0x9b`) header claiming 2^40 entries, none of which follow.
fn claims_2_pow_40(major: u8) -> Vec<u8> {
    let mut bytes = vec![major];
    bytes.extend_from_slice(&(1u64 << 40).to_be_bytes());
    bytes
}

/// `{"workflow_id": "w", "tasks": <2^40 entries claimed>}`.
fn workflow_claiming_2_pow_40_tasks(major: u8) -> Vec<u8> {
    let mut doc = vec![0xa2];
    doc.extend(cbor_text("workflow_id"));
    doc.extend(cbor_text("w"));
    doc.extend(cbor_text("tasks"));
    doc.extend(claims_2_pow_40(major));
    doc
}

#[test]
fn a_cbor_workflow_claiming_2_pow_40_tasks_is_an_error_not_an_abort() {
    for major in [0xbb, 0x9b] {
        let doc = workflow_claiming_2_pow_40_tasks(major);
        assert_eq!(doc.len(), 30);
        let error = ciborium::from_reader::<Workflow, _>(doc.as_slice())
            .expect_err("the claimed tasks are missing");
        assert!(
            matches!(error, ciborium::de::Error::Io(_)),
            "{major:#x}: {error:?}"
        );
    }
}

#[test]
fn a_cbor_result_claiming_2_pow_40_records_is_an_error_not_an_abort() {
    let mut doc = vec![0xa1];
    doc.extend(cbor_text("tasks"));
    doc.extend(claims_2_pow_40(0xbb));
    let error = ciborium::from_reader::<WorkflowResult, _>(doc.as_slice())
        .expect_err("the claimed records are missing");
    assert!(matches!(error, ciborium::de::Error::Io(_)), "{error:?}");
}

/// A workflow whose one task's config holds an anchor of `items` numbers and `aliases`
/// copies of it: `items * aliases` values from a file of about `2 * items + 5 * aliases`
/// bytes.
fn alias_bomb(items: usize, aliases: usize) -> String {
    let mut text = String::from(
        "workflow_id: w\ntasks:\n  a:\n    task_type: t\n    config:\n      big: &big [",
    );
    text.push_str(&"0,".repeat(items));
    text.push_str("]\n      copies: [");
    text.push_str(&"*big,".repeat(aliases));
    text.push_str("]\n");
    text
}

#[test]
fn yaml_aliases_that_expand_past_the_limit_are_refused_with_the_limit_named() {
    let text = alias_bomb(1_000, 1_000);
    let limit = 20 * text.len() as u64;
    match Workflow::from_yaml(&text) {
        Err(LoadError::ExpansionLimit {
            field,
            limit: found,
            line,
            ..
        }) => {
            assert_eq!(found, limit);
            assert!(field.starts_with("tasks.a.config.copies["), "{field}");
            assert!(line.is_some());
        }
        other => panic!("expected the expansion limit, got {other:?}"),
    }
    let message = Workflow::from_yaml(&text)
        .expect_err("past the limit")
        .to_string();
    assert!(message.contains(&format!("limit of {limit}")), "{message}");
}

/// The field an expansion error names is shown with its control characters escaped, as
/// in every other error: a key may hold a terminal's escape sequences.
#[test]
fn an_expansion_error_names_its_field_with_control_characters_escaped() {
    let text = alias_bomb(1_000, 1_000).replace("copies:", "\"\\e[2J\\a\":");
    let error = Workflow::from_yaml(&text).expect_err("past the limit");
    let LoadError::ExpansionLimit { field, .. } = &error else {
        panic!("expected the expansion limit, got {error:?}");
    };
    assert!(
        field.starts_with("tasks.a.config.\"\\u{1b}[2J\\u{7}\"["),
        "{field}"
    );
    assert!(!error.to_string().chars().any(char::is_control), "{error}");
}

/// The budget running out while a map's key is read names the map the key is in, not
/// a field no one can find (`config.c3.?`).
#[test]
fn an_expansion_error_met_in_a_key_names_the_map_the_key_is_in() {
    let mut text = String::from("workflow_id: w\ntasks:\n  a:\n    task_type: t\n    config:\n");
    text.push_str(&format!("      base: &k {}\n", "x".repeat(10_000)));
    for i in 0..100 {
        text.push_str(&format!("      c{i}: {{*k : 1}}\n"));
    }
    let error = Workflow::from_yaml(&text).expect_err("past the limit");
    let LoadError::ExpansionLimit { field, .. } = &error else {
        panic!("expected the expansion limit, got {error:?}");
    };
    assert!(field.starts_with("tasks.a.config.c"), "{field}");
    assert!(!field.contains('?'), "{field}");
}

#[test]
fn yaml_aliases_within_the_limit_are_expanded() {
    // Ten tasks share one config through an alias.
    let mut text = String::from("workflow_id: w\ntasks:\n");
    for i in 0..10 {
        text.push_str(&format!("  t{i}:\n    task_type: t\n    config: "));
        text.push_str(if i == 0 {
            "&shared {source: api, columns: [a, b, c, d, e, f, g, h]}\n"
        } else {
            "*shared\n"
        });
    }
    let workflow = Workflow::from_yaml(&text).expect("a modest expansion");
    assert_eq!(workflow.len(), 10);
    for task in workflow.tasks() {
        assert_eq!(task.config["columns"][7], "h");
    }
}

#[test]
fn retries_past_the_documented_cap_are_a_validation_error() {
    let at_cap = Workflow::new("w", "W").task(Task::new("a", "t").retries(Task::MAX_RETRIES));
    assert!(at_cap.validate().is_ok());

    let past = Workflow::new("w", "W").task(Task::new("a", "t").retries(u32::MAX));
    let errors = past.validate().expect_err("past the cap").into_vec();
    assert_eq!(
        errors,
        [ValidationError::InvalidOption {
            task: "a".into(),
            option: "retries",
            reason: format!("must be at most {}, not {}", Task::MAX_RETRIES, u32::MAX),
        }]
    );
}

#[test]
fn yaml_nested_a_hundred_thousand_levels_deep_is_refused_at_the_level_past_the_limit() {
    // The YAML parser's work grows with the square of this depth: without a check
    // before it runs, 10^5 levels (200 kB) keep it busy for minutes.
    let text = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let (line, column, message) = parse_error(Workflow::from_yaml(&text));
    assert_eq!((line, column), (Some(1), Some(128)));
    assert!(message.contains("nested deeper than 127"), "{message}");
}

#[test]
fn yaml_nesting_after_a_line_break_only_the_yaml_reader_knows_is_refused_before_parsing() {
    // The depth check's parser reads the comment on through LINE SEPARATOR; the YAML
    // reader starts a line there, and would parse every level before refusing.
    let text = format!(
        "workflow_id: w\nx: # c\u{2028}  k: {}{}",
        "[".repeat(200),
        "]".repeat(200)
    );
    let (line, column, message) = parse_error(Workflow::from_yaml(&text));
    // Where the YAML reader would say: after the break, at the 128th `[`.
    assert_eq!((line, column), (Some(3), Some(6 + 127)));
    assert!(
        message.contains("collections nested deeper than 127 levels"),
        "{message}"
    );
}

/// Brackets in plain text outside any flow collection are text, however many: a
/// workflow written out with such a config value reads back.
#[test]
fn yaml_brackets_in_plain_text_are_not_nesting() {
    let pattern = format!("x{}", "[".repeat(200));
    let text = format!(
        "workflow_id: w\ntasks:\n  a:\n    task_type: t\n    config:\n      pattern: {pattern}\n"
    );
    let workflow = Workflow::from_yaml(&text).expect("plain text");
    let config = &workflow.get("a").expect("task a").config;
    assert_eq!(config["pattern"], serde_json::json!(pattern));
}

/// The line, column and message of `read`'s error, which must be a parse error.
fn parse_error(read: Result<Workflow, LoadError>) -> (Option<usize>, Option<usize>, String) {
    match read {
        Err(LoadError::Parse {
            line,
            column,
            message,
            ..
        }) => (line, column, message),
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn yaml_nesting_past_a_comment_only_the_yaml_reader_accepts_is_refused() {
    // The nesting check's parser stops at `}#c` (YAML 1.2 wants a space before `#`; the
    // YAML reader does not), and past it the apostrophes of `Bob's` and `it's` open no
    // string: the nesting between them counts.
    let deep = format!("{}{}", "[".repeat(1000), "]".repeat(1000));
    let text = format!("name: Bob's\nx: {{k: 1}}#c\nd: {deep}\nn: it's\n");
    let (line, column, message) = parse_error(Workflow::from_yaml(&text));
    assert_eq!((line, column), (Some(2), Some(10)), "{message}");
    assert!(
        message.starts_with("comments must be separated")
            && message.contains("nested deeper than 127"),
        "{message}"
    );
}

/// A TOML workflow whose task `config` is `tables` inline tables nested in one another,
/// each under a dotted key of `keys` parts: about `tables * keys` levels deep, though the
/// TOML parser, which counts only brackets and braces, sees `tables`.
#[cfg(feature = "toml")]
fn toml_dotted_nesting(tables: usize, keys: usize) -> String {
    let key = vec!["k"; keys].join(".");
    let mut value = String::from("1");
    for _ in 0..tables {
        value = format!("{{{key} = {value}}}");
    }
    format!("workflow_id = \"w\"\n\n[tasks.a]\ntask_type = \"t\"\nconfig = {value}\n")
}

/// Runs `f` on a thread with a 2 MiB stack (a spawned thread's default), so that reading
/// that recurses without a bound overflows it here, whatever the test runner's stack.
#[cfg(feature = "toml")]
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .expect("thread")
        .join()
        .expect("no panic")
}

#[test]
#[cfg(feature = "toml")]
fn toml_nested_thousands_deep_through_dotted_keys_is_refused_at_its_line() {
    // About 6,200 levels in 13 KB, near the most the TOML parser lets through.
    let text = toml_dotted_nesting(79, 79);
    let result = on_small_stack(move || Workflow::from_toml(&text).map(|w| w.len()));
    match result {
        Err(LoadError::Parse {
            field,
            line,
            message,
            ..
        }) => {
            assert_eq!(line, Some(5), "{message}");
            assert!(field.starts_with("tasks.a.config"), "{field}");
            assert!(message.contains("nested deeper than 127"), "{message}");
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
#[cfg(feature = "toml")]
fn toml_nested_to_the_limit_is_read_and_one_level_more_is_refused() {
    // The workflow, `tasks` and `a` are 3 levels; `config`, 2 tables of 62 levels each
    // (the table and the 61 its dotted key opens inside it), 124 more: 127 in all.
    let text = toml_dotted_nesting(2, 62);
    let workflow = on_small_stack(move || Workflow::from_toml(&text)).expect("within the limit");
    assert_eq!(workflow.len(), 1);
    // A datetime there is a value, not one level more.
    let text = toml_dotted_nesting(2, 62).replace("= 1}", "= 1979-05-27T07:32:00Z}");
    let workflow = on_small_stack(move || Workflow::from_toml(&text)).expect("a datetime");
    assert_eq!(workflow.len(), 1);
    // 3 + 5 * 25: 128.
    let text = toml_dotted_nesting(5, 25);
    let error = on_small_stack(move || Workflow::from_toml(&text)).expect_err("too deep");
    assert!(
        error.to_string().contains("nested deeper than 127 levels"),
        "{error}"
    );
}

/// The TOML reader's own limits, 80 nested arrays and inline tables and 80 parts of a
/// key, are refused saying which, at their place (the reader gives none for a key).
#[test]
#[cfg(feature = "toml")]
fn toml_past_the_readers_own_limits_is_refused_at_its_place_saying_which() {
    let file = |config: &str| {
        format!("workflow_id = \"w\"\n\n[tasks.a]\ntask_type = \"t\"\nconfig = {config}\n")
    };
    let arrays = |n: usize| format!("{{k = {}{}}}", "[".repeat(n), "]".repeat(n));
    let key = |n: usize| vec!["k"; n].join(" . ");
    let refused = |text: String| parse_error(Workflow::from_toml(&text));
    // The inline table and 79 arrays in it: 80.
    let workflow = Workflow::from_toml(&file(&arrays(79))).expect("80 deep");
    assert_eq!(workflow.len(), 1);
    let (line, column, message) = refused(file(&arrays(80)));
    assert_eq!((line, column), (Some(5), Some(94)), "{message}");
    assert!(message.contains("nested more than 80 deep"), "{message}");

    let within = format!("{{\"a\".'b'.{} = 1}}", key(78));
    let workflow = Workflow::from_toml(&file(&within)).expect("80 parts");
    assert_eq!(workflow.len(), 1);
    let (line, column, message) = refused(file(&format!("{{{} = 1}}", key(81))));
    assert_eq!((line, column), (Some(5), Some(11)), "{message}");
    assert!(message.contains("more than 80 dotted parts"), "{message}");
    let headers = format!(
        "workflow_id = \"w\"\n[tasks.a]\ntask_type = \"t\"\n[tasks.a.config.x]\n[tasks.a.config.{}]\n",
        key(79)
    );
    let (line, column, message) = refused(headers);
    assert_eq!((line, column), (Some(5), Some(2)), "{message}");
    assert!(message.contains("more than 80 dotted parts"), "{message}");
}

/// A workflow whose task `a` has config `{"k": [[...]]}`, `levels` deep in all (the
/// workflow, `tasks`, `a`, `config` and its arrays), in `format`.
fn nested_config(format: &str, levels: usize) -> String {
    let arrays = levels - 4;
    let value = format!("{}{}", "[".repeat(arrays), "]".repeat(arrays));
    match format {
        "json" => format!(
            r#"{{"workflow_id": "w", "tasks": {{"a": {{"task_type": "t", "config": {{"k": {value}}}}}}}}}"#
        ),
        _ => {
            format!("workflow_id: w\ntasks:\n  a:\n    task_type: t\n    config: {{k: {value}}}\n")
        }
    }
}

/// YAML nests as deep as JSON does, counting block collections too: a workflow read
/// from YAML can be written as JSON and read back.
#[test]
#[cfg(feature = "yaml")]
fn yaml_nests_as_deep_as_json_block_collections_included() {
    for levels in [127, 128] {
        let json = Workflow::from_json(&nested_config("json", levels));
        let yaml = Workflow::from_yaml(&nested_config("yaml", levels));
        assert_eq!(
            json.is_ok(),
            levels == 127,
            "{levels} levels in JSON: {json:?}"
        );
        assert_eq!(
            yaml.is_ok(),
            levels == 127,
            "{levels} levels in YAML: {yaml:?}"
        );
        if let Ok(workflow) = yaml {
            let written = serde_json::to_string(&workflow).expect("written");
            assert_eq!(Workflow::from_json(&written).expect("read back"), workflow);
        }
    }
    let (line, _, message) = parse_error(Workflow::from_yaml(&nested_config("yaml", 128)));
    assert_eq!(line, Some(5), "{message}");
    assert!(message.contains("nested deeper than 127"), "{message}");
}
/// The budget is for what aliases add: a document without them reads whole, even one of
/// nothing but maps of one entry (the most memory per byte of text).
#[test]
fn a_file_without_aliases_never_reaches_the_expansion_limit() {
    for (list, item) in [
        ("[", "{a},"),
        ("[", "{a: },"),
        ("[", "?:,"),
        ("\n", "        - a:\n"),
    ] {
        let mut text =
            format!("workflow_id: w\ntasks:\n  a:\n    task_type: t\n    config:\n      c: {list}");
        text.push_str(&item.repeat(20_000));
        if list == "[" {
            text.push(']');
        }
        text.push('\n');
        let workflow = Workflow::from_yaml(&text).unwrap_or_else(|e| panic!("{item:?}: {e}"));
        let config = &workflow.get("a").expect("the task").config;
        assert_eq!(
            config["c"].as_array().map(Vec::len),
            Some(20_000),
            "{item:?}"
        );
    }
}
