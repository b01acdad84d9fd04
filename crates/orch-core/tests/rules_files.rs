//! Trigger rules, pools and priorities in JSON, YAML and TOML files, and the errors that
//! name the place of a bad value.

mod support;

use orch_core::{Task, TriggerRule, ValidationError, Workflow};
use support::parse_error;

const JSON: &str = r#"{
  "workflow_id": "w",
  "tasks": {
    "train": {"task_type": "gpu", "pool": "gpu", "priority": 5},
    "cleanup": {"task_type": "io", "dependencies": ["train"], "trigger_rule": "all_done",
                "priority": -1}
  }
}"#;

const YAML: &str = "workflow_id: w
tasks:
  train:
    task_type: gpu
    pool: gpu
    priority: 5
  cleanup:
    task_type: io
    dependencies: [train]
    trigger_rule: all_done
    priority: -1
";

const TOML: &str = r#"workflow_id = "w"

[tasks.train]
task_type = "gpu"
pool = "gpu"
priority = 5

[tasks.cleanup]
task_type = "io"
dependencies = ["train"]
trigger_rule = "all_done"
priority = -1
"#;

fn expected() -> Workflow {
    Workflow::new("w", "")
        .task(Task::new("train", "gpu").pool("gpu").priority(5))
        .task(
            Task::new("cleanup", "io")
                .depends_on(["train"])
                .trigger_rule(TriggerRule::AllDone)
                .priority(-1),
        )
}

#[test]
fn every_format_reads_rule_pool_and_priority() {
    let expected = expected();
    for (format, read) in [
        ("json", Workflow::from_json(JSON)),
        ("yaml", Workflow::from_yaml(YAML)),
        ("toml", Workflow::from_toml(TOML)),
    ] {
        let workflow = read.unwrap_or_else(|e| panic!("{format}: {e}"));
        assert_eq!(workflow, expected, "{format}");
    }
}

/// Tasks keep the order the file lists them in, in every format: that order breaks ties
/// wherever an order is chosen (TOML's map form once came back sorted by id).
#[test]
fn every_format_keeps_the_tasks_in_the_files_order() {
    for (format, read) in [
        ("json", Workflow::from_json(JSON)),
        ("yaml", Workflow::from_yaml(YAML)),
        ("toml", Workflow::from_toml(TOML)),
    ] {
        let workflow = read.unwrap_or_else(|e| panic!("{format}: {e}"));
        let ids: Vec<&str> = workflow.tasks().map(|t| t.task_id.as_str()).collect();
        assert_eq!(ids, ["train", "cleanup"], "{format}");
    }
}

#[test]
fn defaults_are_left_out_when_written() {
    let text = serde_json::to_string(&Workflow::new("w", "").task(Task::new("a", "t")))
        .expect("serialisable");
    assert!(!text.contains("trigger_rule"), "{text}");
    assert!(!text.contains("pool"), "{text}");
    assert!(!text.contains("priority"), "{text}");
    let text = serde_json::to_string(&expected()).expect("serialisable");
    assert_eq!(Workflow::from_json(&text).expect("round trip"), expected());
}

#[test]
fn an_unknown_rule_names_its_place_in_every_format() {
    let cases = [
        (
            "json",
            Workflow::from_json(&JSON.replace("all_done", "all_dne")),
        ),
        (
            "yaml",
            Workflow::from_yaml(&YAML.replace("all_done", "all_dne")),
        ),
        (
            "toml",
            Workflow::from_toml(&TOML.replace("all_done", "all_dne")),
        ),
    ];
    for (format, result) in cases {
        let (field, line, message) = parse_error(result);
        assert_eq!(field, "tasks.cleanup.trigger_rule", "{format}");
        assert!(line.is_some(), "{format}");
        assert!(message.contains("all_dne"), "{format}: {message}");
        assert!(
            message.contains("none_failed_min_one_success"),
            "{format}: {message}"
        );
    }
}

#[test]
fn a_bad_pool_or_priority_names_its_place() {
    let (field, _, message) = parse_error(Workflow::from_json(
        &JSON.replace(r#""pool": "gpu""#, r#""pool": 3"#),
    ));
    assert_eq!(field, "tasks.train.pool");
    assert!(message.contains("string"), "{message}");
    let (field, line, _) = parse_error(Workflow::from_yaml(
        &YAML.replace("priority: 5", "priority: high"),
    ));
    assert_eq!(field, "tasks.train.priority");
    assert_eq!(line, Some(6));
    let (field, line, _) = parse_error(Workflow::from_toml(
        &TOML.replace("priority = 5", "priority = 5000000000"),
    ));
    assert_eq!(field, "tasks.train.priority");
    assert_eq!(line, Some(6));
}

#[test]
fn an_empty_pool_name_is_invalid() {
    let workflow = Workflow::new("w", "").task(Task::new("a", "t").pool(""));
    let errors = workflow.validate().expect_err("empty pool");
    assert!(
        errors.iter().any(|e| matches!(
            e,
            ValidationError::InvalidOption { task, option: "pool", .. } if task == "a"
        )),
        "{errors}"
    );
}

#[test]
fn the_readme_workflow_file_reads() {
    let readme = include_str!("../../../README.md");
    let start = readme
        .find("```yaml\nworkflow_id: nightly")
        .expect("the README's example")
        + 8;
    let end = start + readme[start..].find("```").expect("its end");
    let workflow = Workflow::from_yaml(&readme[start..end]).expect("valid YAML");
    workflow.validate().expect("a valid workflow");
    let merge = workflow.get("merge").expect("merge");
    assert_eq!(merge.trigger_rule, TriggerRule::OneSuccess);
    assert_eq!(
        workflow.get("embed_today").expect("embed").pool.as_deref(),
        Some("gpu")
    );
}
