//! Hostile input: lengths claimed by a binary format, YAML aliases that repeat a large
//! value, and options that would overflow a counter. Each gets a typed error naming its
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
    let limit = 16 * text.len() as u64;
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
    match Workflow::from_yaml(&text) {
        Err(LoadError::Parse {
            line,
            column,
            message,
            ..
        }) => {
            assert_eq!((line, column), (Some(1), Some(129)));
            assert!(message.contains("nested deeper than 128"), "{message}");
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
}
