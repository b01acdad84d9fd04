//! Reading workflows from JSON, YAML and TOML, and the errors that name the place.

mod support;

use std::time::Duration;

use orch_core::{Format, LoadError, Workflow};
use support::parse_error;

const JSON_MAP: &str = r#"{
  "workflow_id": "data_pipeline",
  "name": "Data Processing Pipeline",
  "tasks": {
    "fetch_task": {"task_id": "fetch_task", "name": "Fetch Data", "task_type": "fetch",
                   "config": {"source": "api"}, "dependencies": []},
    "process_task": {"name": "Process Data", "task_type": "process",
                     "config": {"method": "aggregation"}, "dependencies": ["fetch_task"],
                     "retries": 3, "timeout": 1.5, "backoff": {"initial": 0.25, "jitter": false}}
  }
}"#;

#[test]
fn json_map_form_reads_every_field() {
    let workflow = Workflow::from_json(JSON_MAP).expect("valid JSON");
    assert_eq!(workflow.workflow_id(), "data_pipeline");
    assert_eq!(workflow.name(), "Data Processing Pipeline");
    let process = workflow.get("process_task").expect("task process_task");
    assert_eq!(process.task_id, "process_task");
    assert_eq!(process.name, "Process Data");
    assert_eq!(process.config["method"], "aggregation");
    assert_eq!(process.dependencies, ["fetch_task"]);
    assert_eq!(process.retries, 3);
    assert_eq!(process.timeout, Some(Duration::from_millis(1500)));
    assert_eq!(process.backoff.initial, Duration::from_millis(250));
    assert!(!process.backoff.jitter);
    assert_eq!(process.backoff.multiplier, 2.0);
    assert_eq!(
        workflow.execution_order().expect("valid"),
        ["fetch_task", "process_task"]
    );
}

#[test]
fn a_workflow_survives_a_json_round_trip() {
    let workflow = Workflow::from_json(JSON_MAP).expect("valid JSON");
    let text = serde_json::to_string(&workflow).expect("serialisable");
    assert_eq!(Workflow::from_json(&text).expect("round trip"), workflow);
}

#[test]
fn a_workflow_that_repeats_a_task_id_is_not_written() {
    // Only the first task `a` was kept: written out, the workflow would read back as
    // one without the repeat, which passes validation.
    let workflow = Workflow::new("w", "W")
        .task(orch_core::Task::new("a", "t"))
        .task(orch_core::Task::new("a", "u"));
    assert!(workflow.validate().is_err());
    let errors = [
        serde_json::to_string(&workflow)
            .map(drop)
            .map_err(|e| e.to_string()),
        serde_yaml_ng::to_string(&workflow)
            .map(drop)
            .map_err(|e| e.to_string()),
        toml::to_string(&workflow)
            .map(drop)
            .map_err(|e| e.to_string()),
    ];
    for error in errors {
        let error = error.expect_err("a repeated task id");
        assert!(
            error.contains("task id `a` is used by more than one task"),
            "{error}"
        );
    }
}

#[test]
fn yaml_list_form_reads_and_reports_duplicate_ids() {
    let workflow = Workflow::from_yaml(
        "workflow_id: w\nname: W\ntasks:\n  - task_id: a\n    task_type: t\n  - task_id: b\n    task_type: t\n    dependencies: [a]\n  - task_id: a\n    task_type: t\n",
    )
    .expect("valid YAML");
    assert_eq!(workflow.len(), 2);
    let errors = workflow.validate().expect_err("duplicate id");
    assert_eq!(
        errors.to_string(),
        "task id `a` is used by more than one task"
    );
}

#[test]
fn yaml_merge_key_is_refused_at_its_line_and_a_quoted_one_is_an_ordinary_key() {
    // The YAML reader would take `<<` as a key of that name: the config below would
    // silently hold `{"<<": {"region": "eu"}, "bucket": "b"}`.
    let merged = "workflow_id: w\nname: W\ntasks:\n  - task_id: a\n    task_type: t\n    config:\n      <<: {region: eu}\n      bucket: b\n";
    let (_, line, message) = parse_error(Workflow::from_yaml(merged));
    assert_eq!(line, Some(7));
    assert!(
        message.contains("merge keys (`<<`) are not supported"),
        "{message}"
    );

    let quoted = merged.replace("<<:", "\"<<\":");
    let workflow = Workflow::from_yaml(&quoted).expect("a quoted `<<` is a key");
    let config = workflow.get("a").map(|task| task.config.clone());
    assert_eq!(
        config,
        Some(serde_json::json!({"<<": {"region": "eu"}, "bucket": "b"}))
    );
}

#[test]
fn yaml_merge_key_after_a_line_break_only_the_yaml_reader_knows_is_refused() {
    // NEL, LINE SEPARATOR and PARAGRAPH SEPARATOR end a line (and a comment) for the YAML
    // reader, not for the merge-key check's parser: a `<<` after one was read, unchecked,
    // as a key of that name.
    for line_break in ["\u{85}", "\u{2028}", "\u{2029}"] {
        let text = format!(
            "workflow_id: w\ntasks:\n  a:\n    task_type: t\n    config: # defaults{line_break}      <<: {{region: eu}}\n"
        );
        let (_, line, message) = parse_error(Workflow::from_yaml(&text));
        // The line after the break, as the YAML reader counts.
        assert_eq!(line, Some(6), "{line_break:?}");
        assert!(
            message.contains("merge keys (`<<`) are not supported"),
            "{line_break:?}: {message}"
        );
    }
}

/// A refusal made before the YAML reader reads the text (a merge key) counts lines as
/// that reader does, whatever ends them: it names the line its other errors would.
#[test]
fn yaml_refusals_count_lines_as_the_yaml_reader_does() {
    for line_break in ["\n", "\r\n", "\r", "\u{85}", "\u{2028}", "\u{2029}"] {
        let text = |config_line: &str| {
            [
                "workflow_id: w",
                "tasks:",
                "  a:",
                "    task_type: t",
                "    config:",
            ]
            .iter()
            .chain([config_line, ""].iter())
            .copied()
            .collect::<Vec<_>>()
            .join(line_break)
        };
        let (_, line, message) = parse_error(Workflow::from_yaml(&text("      <<: {k: 1}")));
        assert!(message.contains("merge keys"), "{line_break:?}: {message}");
        // The YAML reader's own error on that line: a task field that does not exist.
        let unknown = text("      k: 1").replace("    config:", "    confi:");
        let (_, reader_line, reader_message) = parse_error(Workflow::from_yaml(&unknown));
        assert!(
            reader_message.contains("confi"),
            "{line_break:?}: {reader_message}"
        );
        assert_eq!((line, reader_line), (Some(6), Some(5)), "{line_break:?}");
    }
}

#[test]
fn yaml_merge_key_with_the_merge_tag_is_refused() {
    let text = "workflow_id: w\ntasks:\n  a:\n    task_type: t\n    config:\n      !!merge <<: {region: eu}\n";
    let (_, line, message) = parse_error(Workflow::from_yaml(text));
    assert_eq!(line, Some(6));
    assert!(
        message.contains("merge keys (`<<`) are not supported"),
        "{message}"
    );
}

#[test]
fn yaml_merge_key_past_a_comment_only_the_yaml_reader_accepts_is_refused() {
    // `}#c`: a comment with no space before it, which YAML 1.2 forbids and the YAML
    // reader takes as a comment; the merge-key check's parser stops there.
    let text = "workflow_id: w\ntasks:\n  a:\n    task_type: t\n    config:\n      x: {k: 1}#c\n      m: {<<: {k: 2}}\n";
    let error = Workflow::from_yaml(text).expect_err("`<<` may be a merge key");
    let LoadError::Parse {
        line,
        column,
        message,
        ..
    } = error
    else {
        panic!("expected a parse error, got {error:?}");
    };
    assert_eq!((line, column), (Some(6), Some(16)), "{message}");
    assert!(
        message.starts_with("comments must be separated from other tokens by whitespace")
            && message.contains("merge key"),
        "{message}"
    );

    // With the space, the merge key itself is found.
    let spaced = text.replace("}#c", "} #c");
    let (_, line, message) = parse_error(Workflow::from_yaml(&spaced));
    assert_eq!(line, Some(7));
    assert!(
        message.contains("merge keys (`<<`) are not supported"),
        "{message}"
    );
    // And with no `<<`, the YAML reader reads the comment as it always did.
    let plain = text.replace("<<", "j");
    let workflow = Workflow::from_yaml(&plain).expect("no merge key");
    let config = workflow.get("a").map(|task| task.config.clone());
    assert_eq!(
        config,
        Some(serde_json::json!({"x": {"k": 1}, "m": {"j": {"k": 2}}}))
    );
}

#[test]
fn toml_reads_both_forms() {
    let map = Workflow::from_toml(
        "workflow_id = \"w\"\n[tasks.a]\ntask_type = \"t\"\n[tasks.b]\ntask_type = \"t\"\ndependencies = [\"a\"]\n",
    )
    .expect("valid TOML map");
    let list = Workflow::from_toml(
        "workflow_id = \"w\"\n[[tasks]]\ntask_id = \"a\"\ntask_type = \"t\"\n[[tasks]]\ntask_id = \"b\"\ntask_type = \"t\"\ndependencies = [\"a\"]\n",
    )
    .expect("valid TOML list");
    assert_eq!(map, list);
    assert_eq!(map.execution_order().expect("valid"), ["a", "b"]);
}

#[test]
fn json_syntax_error_gives_line() {
    let (_, line, message) = parse_error(Workflow::from_json(
        "{\n  \"workflow_id\": \"w\",\n  oops\n}",
    ));
    assert_eq!(line, Some(3));
    assert!(message.contains("key must be a string"), "{message}");
}

#[test]
fn json_error_columns_count_characters_as_in_yaml_and_toml() {
    let one = r#"{"workflow_id": "w", "name": "ünïcödé", "tasks": {"a": {"task_type": "t"}}}"#;
    let bad_key = one.replace(r#""tasks""#, "tasks");
    let wrong_type = one.replace(r#""t"}"#, "1}");
    for (text, at) in [
        (bad_key.clone(), bad_key.find("tasks").expect("the key")),
        (
            wrong_type.clone(),
            wrong_type.find("1}").expect("the number"),
        ),
        (format!("{one} ü"), one.len() + 1),
    ] {
        let error = Workflow::from_json(&text).expect_err(&text);
        let message = error.to_string();
        let LoadError::Parse { line, column, .. } = error else {
            panic!("{text}: not a parse error");
        };
        // 1-based, in characters: the character at `at`.
        let expected = text[..at].chars().count() + 1;
        assert_eq!((line, column), (Some(1), Some(expected)), "{text}");
        // One place in the message: the loader's, not the JSON reader's byte count too.
        assert_eq!(message.matches("line").count(), 1, "{message}");
    }
}

#[test]
fn json_errors_just_after_a_line_break_are_at_the_next_lines_first_column() {
    for text in [
        "{\"workflow_id\": \"w\",\n",
        "{\"workflow_id\": \"a\nb\", \"tasks\": {}}",
    ] {
        let error = Workflow::from_json(text).expect_err(text);
        let LoadError::Parse { line, column, .. } = &error else {
            panic!("{text}: not a parse error");
        };
        assert_eq!((*line, *column), (Some(2), Some(1)), "{text}: {error}");
    }
}

/// A YAML file with a second document (a `---` after the workflow, with or without
/// anything after it) is refused at that document's start.
#[test]
fn a_second_yaml_document_is_an_error_at_its_start() {
    let one = "workflow_id: w\ntasks:\n  a: { task_type: t }\n";
    for (text, line) in [
        (format!("{one}---\nworkflow_id: v\n"), 4),
        (format!("{one}\n--- \n"), 5),
        (format!("---\n{one}...\n---\n"), 6),
    ] {
        let error = Workflow::from_yaml(&text).expect_err(&text);
        let LoadError::Parse {
            line: at_line,
            column,
            message,
            ..
        } = error
        else {
            panic!("{text}: {error:?}");
        };
        assert_eq!((at_line, column), (Some(line), Some(1)), "{text}");
        assert_eq!(
            message,
            "more than one YAML document: a workflow file holds one"
        );
    }
}

#[test]
fn json_text_after_the_workflow_is_an_error_at_its_place() {
    let one = r#"{"workflow_id": "w", "tasks": {"a": {"task_type": "t"}}}"#;
    assert!(Workflow::from_json(&format!("\n{one}\n\t \n")).is_ok());
    for (text, line, column) in [
        (format!("{one}\n{one}"), 2, 1),
        (format!("{one} garbage"), 1, 58),
        (format!("{one}}}}}"), 1, 57),
    ] {
        let error = Workflow::from_json(&text).expect_err(&text);
        let LoadError::Parse {
            field,
            line: at_line,
            column: at_column,
            message,
            ..
        } = error
        else {
            panic!("{text}: {error:?}");
        };
        assert_eq!(
            (field.as_str(), at_line, at_column),
            (".", Some(line), Some(column)),
            "{text}"
        );
        assert_eq!(message, "more text after the workflow's closing `}`");
    }
}

#[test]
fn json_missing_field_names_the_task() {
    let (field, _, message) = parse_error(Workflow::from_json(
        r#"{"workflow_id": "w", "tasks": {"a": {"dependencies": []}}}"#,
    ));
    assert_eq!(field, "tasks.a");
    assert!(message.contains("missing field `task_type`"), "{message}");
}

#[test]
fn json_list_form_needs_task_ids() {
    let (field, _, message) = parse_error(Workflow::from_json(
        r#"{"workflow_id": "w", "tasks": [{"task_id": "a", "task_type": "t"}, {"task_type": "t"}]}"#,
    ));
    assert_eq!(field, "tasks[1]");
    assert!(message.contains("missing field `task_id`"), "{message}");
}

/// A task of a list without its id is named by its place, at its own line, in every
/// format (YAML and TOML once named the list's first line).
#[test]
fn a_listed_task_without_an_id_is_named_at_its_own_line() {
    let yaml = "workflow_id: w\ntasks:\n  - {task_id: a, task_type: t}\n  - {task_id: b, task_type: t}\n  - {task_type: t}\n";
    let toml = "workflow_id = \"w\"\n\n[[tasks]]\ntask_id = \"a\"\ntask_type = \"t\"\n\n[[tasks]]\ntask_type = \"t\"\n";
    let json = "{\"workflow_id\": \"w\", \"tasks\": [\n{\"task_id\": \"a\", \"task_type\": \"t\"},\n{\"task_type\": \"t\"}]}";
    for (format, read, field, line) in [
        ("yaml", Workflow::from_yaml(yaml), "tasks[2]", 5),
        ("toml", Workflow::from_toml(toml), "tasks[1]", 7),
        ("json", Workflow::from_json(json), "tasks[1]", 3),
    ] {
        let (at, at_line, message) = parse_error(read);
        assert_eq!(
            (at.as_str(), at_line),
            (field, Some(line)),
            "{format}: {message}"
        );
        assert!(
            message.contains("missing field `task_id`"),
            "{format}: {message}"
        );
    }
}

/// A task id with a `.` (or a bracket) is quoted in a field path, which would otherwise
/// read as a key inside task `a`.
#[test]
fn a_field_path_quotes_an_id_that_holds_a_dot() {
    let json = r#"{"workflow_id": "w", "tasks": {"a.b": {"task_type": "t", "retries": "x"}}}"#;
    let yaml = "workflow_id: w\ntasks:\n  a[0]:\n    task_type: t\n    retries: x\n";
    for (read, field) in [
        (Workflow::from_json(json), r#"tasks."a.b".retries"#),
        (Workflow::from_yaml(yaml), r#"tasks."a[0]".retries"#),
    ] {
        let (at, _, message) = parse_error(read);
        assert_eq!(at, field, "{message}");
        // The path is given once, as the field: not again in the message.
        assert!(message.starts_with("invalid type"), "{message}");
    }
}

#[test]
fn json_wrong_type_names_the_field_path() {
    let (field, line, message) = parse_error(Workflow::from_json(
        "{\"workflow_id\": \"w\", \"tasks\": [\n{\"task_id\": \"a\", \"task_type\": \"t\"},\n{\"task_id\": \"b\", \"task_type\": \"t\"},\n{\"task_id\": \"c\", \"task_type\": \"t\"},\n{\"task_id\": \"d\", \"task_type\": \"t\", \"dependencies\": \"a\"}]}",
    ));
    assert_eq!(field, "tasks[3].dependencies");
    assert_eq!(line, Some(5));
    assert!(
        message.contains("invalid type: string \"a\", expected a sequence"),
        "{message}"
    );
}

#[test]
fn json_unknown_key_is_an_error() {
    let (field, _, message) = parse_error(Workflow::from_json(
        r#"{"workflow_id": "w", "tasks": {"a": {"task_type": "t", "depends": ["b"]}}}"#,
    ));
    assert_eq!(field, "tasks.a.depends");
    assert_eq!(
        message,
        "unknown key `depends` in task `a`; expected `task_id`, `name`, `task_type`, \
         `config`, `dependencies`, `trigger_rule`, `pool`, `priority`, `retries`, `backoff`, \
         `timeout`, `map`, `cache`"
    );
    // A key with a backtick in it is named whole.
    let (field, _, message) = parse_error(Workflow::from_json(
        r#"{"workflow_id": "w", "tasks": {"a": {"task_type": "t", "x`y": 1}}}"#,
    ));
    assert_eq!(field, "tasks.a.x`y");
    assert!(
        message.starts_with("unknown key `x`y` in task `a`; expected `task_id`"),
        "{message}"
    );
}

/// An unknown trigger rule is told the rule meant when one is close, and a number out of
/// its type's range names the range in words, not the Rust type.
#[test]
fn an_unknown_value_suggests_the_value_meant_and_number_types_are_said_in_words() {
    let (field, _, message) = parse_error(Workflow::from_yaml(
        "workflow_id: w\ntasks:\n  x:\n    task_type: t\n    trigger_rule: all_dun\n",
    ));
    assert_eq!(field, "tasks.x.trigger_rule");
    assert!(message.starts_with("unknown variant `all_dun`, expected one of `all_success`"));
    assert!(message.ends_with("; did you mean `all_done`?"), "{message}");
    let (_, _, message) = parse_error(Workflow::from_json(
        r#"{"workflow_id": "w", "tasks": {"x": {"task_type": "t", "trigger_rule": "whenever"}}}"#,
    ));
    assert!(!message.contains("did you mean"), "{message}");
    for (format, read) in [
        (
            "YAML",
            Workflow::from_yaml("workflow_id: w\ntasks:\n  x: {task_type: t, retries: -1}\n"),
        ),
        (
            "JSON",
            Workflow::from_json(
                r#"{"workflow_id": "w", "tasks": {"x": {"task_type": "t", "retries": -1}}}"#,
            ),
        ),
    ] {
        let (field, _, message) = parse_error(read);
        assert_eq!(field, "tasks.x.retries", "{format}");
        assert!(
            message.ends_with("expected a whole number of 0 or more"),
            "{format}: {message}"
        );
    }
}

#[test]
fn an_unknown_key_suggests_the_key_meant_in_every_format() {
    let yaml = "workflow_id: w\ntasks:\n  x:\n    task_type: t\n    dependencis: [b]\n";
    let toml = "workflow_id = \"w\"\n[tasks.x]\ntask_type = \"t\"\ndependencis = [\"b\"]\n";
    let json = r#"{"workflow_id": "w", "tasks": {"x": {"task_type": "t", "dependencis": ["b"]}}}"#;
    for (format, read) in [
        ("YAML", Workflow::from_yaml(yaml)),
        ("TOML", Workflow::from_toml(toml)),
        ("JSON", Workflow::from_json(json)),
    ] {
        let (field, _, message) = parse_error(read);
        assert_eq!(field, "tasks.x.dependencis", "{format}");
        assert_eq!(
            message, "unknown key `dependencis` in task `x`; did you mean `dependencies`?",
            "{format}"
        );
    }
    let (_, _, message) = parse_error(Workflow::from_yaml(
        "workflow_id: w\ntasks:\n  x:\n    task_type: t\n    backoff: {initail: 1}\n",
    ));
    assert_eq!(
        message,
        "unknown key `initail` in the backoff of task `x`; did you mean `initial`?"
    );
    let (_, _, message) = parse_error(Workflow::from_yaml(
        "workflow_id: w\ntasks:\n  - task_id: x\n    task_type: t\n    retires: 2\n",
    ));
    assert_eq!(
        message,
        "unknown key `retires` in `tasks[0]`; did you mean `retries`?"
    );
    let (field, _, message) = parse_error(Workflow::from_yaml(
        "workflow_id: w\nnmae: W\ntasks:\n  x:\n    task_type: t\n",
    ));
    assert_eq!(
        (field.as_str(), message.as_str()),
        ("nmae", "unknown key `nmae`; did you mean `name`?")
    );
}

#[test]
fn error_messages_do_not_repeat_the_place() {
    let yaml = "workflow_id: w\ntasks:\n  a:\n    task_type: [t]\n";
    let json = "{\"workflow_id\": \"w\", \"tasks\": {\"a\": {\"task_type\": [\"t\"]}}}";
    let toml = "workflow_id = \"w\"\n[tasks.a]\ntask_type = [\"t\"]\n";
    for (read, expected) in [
        (
            Workflow::from_yaml(yaml),
            "invalid YAML workflow at line 4, column 16, field `tasks.a.task_type`: \
             invalid type: sequence, expected a string",
        ),
        (
            Workflow::from_json(json),
            "invalid JSON workflow at line 1, column 50, field `tasks.a.task_type`: \
             invalid type: sequence, expected a string",
        ),
        (
            Workflow::from_toml(toml),
            "invalid TOML workflow at line 3, column 13, field `tasks.a.task_type`: \
             invalid type: sequence, expected a string",
        ),
    ] {
        let error = read.expect_err("a list is no task type");
        assert_eq!(error.to_string(), expected);
    }
}

#[test]
fn a_yaml_syntax_error_gives_its_place_once() {
    let error = Workflow::from_yaml("workflow_id: w\n\ttasks: {}\n").expect_err("a tab");
    assert_eq!(
        error.to_string(),
        "invalid YAML workflow at line 2, column 1, field `workflow_id`: found a tab character \
         that violates indentation, while scanning a plain scalar at line 1 column 14"
    );
}

#[test]
fn a_key_that_cannot_be_read_is_reported_at_its_map() {
    let error = Workflow::from_yaml("workflow_id: w\ntasks:\n  ? [a]\n  : {task_type: t}\n")
        .expect_err("a list is no task id");
    assert_eq!(
        error.to_string(),
        "invalid YAML workflow at line 3, column 5, field `tasks`: \
         invalid key: invalid type: sequence, expected a string"
    );
}

#[test]
fn json_bad_timeouts_are_errors_naming_the_field() {
    for (timeout, expected) in [
        ("-1", "invalid duration -1"),
        ("\"soon\"", "invalid duration `soon`"),
        ("\"1.5.2s\"", "invalid duration `1.5.2s`"),
        ("true", "expected a duration"),
    ] {
        let (field, _, message) = parse_error(Workflow::from_json(&format!(
            r#"{{"workflow_id": "w", "tasks": {{"a": {{"task_type": "t", "timeout": {timeout}}}}}}}"#
        )));
        assert_eq!(field, "tasks.a.timeout");
        assert!(message.contains(expected), "{message}");
    }
}

#[test]
fn yaml_syntax_error_gives_line() {
    let (_, line, message) = parse_error(Workflow::from_yaml(
        "workflow_id: w\ntasks:\n  a: [unclosed\n",
    ));
    assert!(line.is_some(), "{message}");
}

#[test]
fn yaml_missing_field_names_the_task() {
    let (field, _, message) = parse_error(Workflow::from_yaml(
        "workflow_id: w\ntasks:\n  a:\n    name: A\n",
    ));
    assert_eq!(field, "tasks.a");
    assert!(message.contains("missing field `task_type`"), "{message}");
}

#[test]
fn yaml_null_is_not_text() {
    // `~`, `null` and an empty value are YAML's null, which JSON's reader refuses for
    // text too; read as the text "~" or "", a typo passed as an id or a type.
    for (text, field, line) in [
        ("workflow_id: ~\ntasks: {}\n", "workflow_id", 1),
        ("workflow_id: w\nname: null\ntasks: {}\n", "name", 2),
        (
            "workflow_id: w\ntasks:\n  a:\n    task_type:\n",
            "tasks.a.task_type",
            4,
        ),
        (
            "workflow_id: w\ntasks:\n  a:\n    task_type: t\n    dependencies: [b, ~]\n",
            "tasks.a.dependencies[1]",
            5,
        ),
        (
            "workflow_id: w\ntasks:\n  - task_id: Null\n    task_type: t\n",
            "tasks[0].task_id",
            3,
        ),
    ] {
        let (found, found_line, message) = parse_error(Workflow::from_yaml(text));
        assert_eq!(found, field, "{text}");
        assert_eq!(found_line, Some(line), "{text}");
        assert!(
            message.starts_with("invalid type: null"),
            "{text}: {message}"
        );
        assert!(!message.contains(" at line"), "{text}: {message}");
    }
    // A key written twice (here a task): the null may be in either copy, so it is placed
    // where the YAML reader places it, not in the first copy.
    for (text, field, line) in [
        (
            "workflow_id: w\ntasks:\n  a:\n    task_type: t\n  a:\n    task_type: ~\n",
            "tasks.a.task_type",
            6,
        ),
        (
            "workflow_id: w\ntasks:\n  a:\n    task_type: t\n    dependencies: [x, y]\n  a:\n    \
             task_type: t\n    dependencies: [x, ~]\n",
            "tasks.a.dependencies[1]",
            8,
        ),
    ] {
        let (found, found_line, message) = parse_error(Workflow::from_yaml(text));
        assert_eq!(found, field, "{text}");
        assert_eq!(found_line, Some(line), "{text}: {message}");
    }
    // Through an alias, the null is placed where the YAML reader places it (the map
    // holding it), not nowhere.
    let (field, line, message) = parse_error(Workflow::from_yaml(
        "workflow_id: w\ntasks:\n  a:\n    task_type: t\n    config: {tmpl: &t {task_type: ~}}\n  b: *t\n",
    ));
    assert_eq!(
        (field.as_str(), line.is_some()),
        ("tasks.b.task_type", true),
        "{message}"
    );
    // Quoted, they are text like any other.
    let workflow = Workflow::from_yaml(
        "workflow_id: \"~\"\nname: 'null'\ntasks:\n  a:\n    task_type: \"\"\n",
    )
    .expect("quoted text");
    assert_eq!(workflow.workflow_id(), "~");
    assert_eq!(workflow.name(), "null");
    assert_eq!(workflow.get("a").expect("task a").task_type, "");
    // Keys are text as written, in the tasks map and in a config.
    let workflow = Workflow::from_yaml(
        "workflow_id: w\ntasks:\n  ~:\n    task_type: t\n    config: {null: 1}\n",
    )
    .expect("keys are text");
    assert_eq!(workflow.get("~").expect("task ~").config["null"], 1);
}

#[test]
fn a_list_where_a_map_of_fields_belongs_is_refused_in_every_format() {
    // Read as the fields in their order, `[1, 4]` would silently be a backoff starting
    // at 1 s with multiplier 4; a task or a workflow written as a list likewise.
    let backoff = "expected struct Backoff";
    for (result, field, expected) in [
        (
            Workflow::from_json(
                r#"{"workflow_id": "w", "tasks": {"a": {"task_type": "t", "backoff": [1, 4]}}}"#,
            ),
            "tasks.a.backoff",
            backoff,
        ),
        (
            Workflow::from_yaml(
                "workflow_id: w\ntasks:\n  a:\n    task_type: t\n    backoff: [1, 4]\n",
            ),
            "tasks.a.backoff",
            backoff,
        ),
        (
            Workflow::from_toml(
                "workflow_id = \"w\"\n[tasks.a]\ntask_type = \"t\"\nbackoff = [1, 4]\n",
            ),
            "tasks.a.backoff",
            backoff,
        ),
        (
            Workflow::from_json(r#"{"workflow_id": "w", "tasks": {"a": ["t"]}}"#),
            "tasks.a",
            "expected",
        ),
        (Workflow::from_json(r#"["w", "W", {}]"#), ".", "expected"),
        (Workflow::from_yaml("[w, W, {}]\n"), ".", "expected"),
    ] {
        let (found, line, message) = parse_error(result);
        assert_eq!(found, field, "{message}");
        assert!(line.is_some(), "{message}");
        assert!(message.starts_with("invalid type: sequence"), "{message}");
        assert!(message.contains(expected), "{message}");
    }
}

#[test]
fn yaml_wrong_type_names_the_field_path() {
    let (field, line, message) = parse_error(Workflow::from_yaml(
        "workflow_id: w\ntasks:\n  - task_id: a\n    task_type: t\n  - task_id: b\n    task_type: t\n    retries: many\n",
    ));
    assert_eq!(field, "tasks[1].retries");
    assert_eq!(line, Some(7));
    assert!(message.contains("invalid type"), "{message}");
}

#[test]
fn yaml_unknown_key_is_an_error() {
    let (field, _, message) = parse_error(Workflow::from_yaml(
        "workflow_id: w\nowner: me\ntasks:\n  a:\n    task_type: t\n",
    ));
    assert_eq!(field, "owner");
    assert_eq!(
        message,
        "unknown key `owner`; expected `workflow_id`, `name`, `tasks`"
    );
}

#[test]
fn toml_errors_name_the_field_and_line() {
    let (field, line, message) = parse_error(Workflow::from_toml(
        "workflow_id = \"w\"\n[tasks.a]\ntask_type = \"t\"\nretries = \"x\"\n",
    ));
    assert_eq!(field, "tasks.a.retries");
    assert_eq!(line, Some(4));
    assert!(message.contains("invalid type"), "{message}");
    let (_, line, _) = parse_error(Workflow::from_toml("workflow_id = \n"));
    assert_eq!(line, Some(1));
}

#[test]
fn a_toml_key_refused_first_in_its_table_is_placed_at_the_key() {
    for (toml, field, place) in [
        (
            "workflow_id = \"w\"\n\n[tasks.a]\ntsk_type = \"t\"\n",
            "tasks.a.tsk_type",
            (4, 1),
        ),
        (
            "# etl\nworkflw_id = \"w\"\n[tasks.a]\ntask_type = \"t\"\n",
            "workflw_id",
            (2, 1),
        ),
        (
            "workflow_id = \"w\"\ntasks = { a = { tsk_type = \"t\" } }\n",
            "tasks.a.tsk_type",
            (2, 17),
        ),
    ] {
        let Err(LoadError::Parse {
            field: at,
            line,
            column,
            ..
        }) = Workflow::from_toml(toml)
        else {
            panic!("{toml}: not a parse error");
        };
        assert_eq!(
            (at.as_str(), line, column),
            (field, Some(place.0), Some(place.1)),
            "{toml}"
        );
    }
}

#[test]
fn errors_display_the_file_and_the_place() {
    let dir = std::env::temp_dir().join(format!("orch-core-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("broken.yaml");
    std::fs::write(&path, "workflow_id: w\ntasks:\n  a:\n    task_type: [t]\n").expect("write");
    let error = Workflow::from_path(&path).expect_err("wrong type");
    let text = error.to_string();
    assert_eq!(
        text,
        format!(
            "invalid YAML workflow in {} at line 4, column 16, field `tasks.a.task_type`: \
             invalid type: sequence, expected a string",
            path.display()
        )
    );

    let good = dir.join("good.json");
    std::fs::write(&good, JSON_MAP).expect("write");
    assert_eq!(Workflow::from_path(&good).expect("reads").len(), 2);

    let unknown = dir.join("workflow.ini");
    assert!(matches!(
        Workflow::from_path(&unknown),
        Err(LoadError::UnknownFormat { .. })
    ));
    let missing = dir.join("missing.toml");
    assert!(matches!(
        Workflow::from_path(&missing),
        Err(LoadError::Io { .. })
    ));
    // A device or a directory is refused, not read without end.
    let zero = dir.join("zero.json");
    #[cfg(unix)]
    std::os::unix::fs::symlink("/dev/zero", &zero).expect("a symlink");
    let folder = dir.join("folder.toml");
    std::fs::create_dir_all(&folder).expect("a directory");
    // (A device only where the test could make a link to one.)
    let paths = if cfg!(unix) {
        vec![&zero, &folder]
    } else {
        vec![&folder]
    };
    for path in paths {
        let error = Workflow::from_path(path).expect_err("not a file");
        assert!(matches!(error, LoadError::Io { .. }), "{error}");
        assert!(
            error
                .to_string()
                .ends_with("not a file or a pipe (a directory or a device)"),
            "{error}"
        );
    }
    std::fs::remove_dir_all(&dir).expect("clean up");
    assert_eq!(Format::from_extension("YML"), Some(Format::Yaml));
}
