//! Every validation error, alone and together.

use std::time::Duration;

use orch_core::{Backoff, Task, TaskId, ValidationError, Workflow};
use serde_json::json;

fn ids(names: &[&str]) -> Vec<TaskId> {
    names.iter().map(|&n| TaskId::from(n)).collect()
}

fn errors_of(workflow: &Workflow) -> Vec<ValidationError> {
    workflow
        .validate()
        .expect_err("workflow should be invalid")
        .into_vec()
}

#[test]
fn an_empty_workflow_is_reported() {
    let workflow = Workflow::new("w", "W");
    assert_eq!(errors_of(&workflow), [ValidationError::EmptyWorkflow]);
}

#[test]
fn an_unknown_dependency_names_the_task_and_the_missing_id() {
    let workflow = Workflow::new("w", "W").task(Task::new("a", "t").depends_on(["ghost"]));
    let errors = errors_of(&workflow);
    assert_eq!(
        errors,
        [ValidationError::UnknownDependency {
            task: "a".into(),
            dependency: "ghost".into()
        }]
    );
    assert_eq!(
        errors[0].to_string(),
        "task `a` depends on unknown task `ghost`"
    );
}

#[test]
fn a_self_dependency_is_reported_and_is_not_also_a_cycle() {
    let workflow = Workflow::new("w", "W").task(Task::new("a", "t").depends_on(["a"]));
    assert_eq!(
        errors_of(&workflow),
        [ValidationError::SelfDependency { task: "a".into() }]
    );
}

#[test]
fn a_duplicate_dependency_is_reported_once_per_repeat() {
    let workflow = Workflow::new("w", "W")
        .task(Task::new("a", "t"))
        .task(Task::new("b", "t").depends_on(["a", "a", "a"]));
    let errors = errors_of(&workflow);
    let expected = ValidationError::DuplicateDependency {
        task: "b".into(),
        dependency: "a".into(),
    };
    assert_eq!(errors, [expected.clone(), expected]);
}

#[test]
fn a_duplicate_task_id_is_reported_and_the_first_task_kept() {
    let workflow = Workflow::new("w", "W")
        .task(Task::new("a", "first"))
        .task(Task::new("a", "second"));
    assert_eq!(
        errors_of(&workflow),
        [ValidationError::DuplicateTaskId { task: "a".into() }]
    );
    assert_eq!(workflow.tasks()["a"].task_type, "first");
}

#[test]
fn a_cycle_is_reported_with_its_path() {
    let workflow = Workflow::new("w", "W")
        .task(Task::new("a", "t").depends_on(["c"]))
        .task(Task::new("b", "t").depends_on(["a"]))
        .task(Task::new("c", "t").depends_on(["b"]))
        .task(Task::new("d", "t").depends_on(["c"]));
    let errors = errors_of(&workflow);
    assert_eq!(
        errors,
        [ValidationError::Cycle {
            path: ids(&["a", "c", "b", "a"])
        }]
    );
    assert_eq!(
        errors[0].to_string(),
        "dependency cycle: a -> c -> b -> a (each task depends on the next)"
    );
}

#[test]
fn separate_cycles_are_each_reported() {
    let workflow = Workflow::new("w", "W")
        .task(Task::new("a", "t").depends_on(["b"]))
        .task(Task::new("b", "t").depends_on(["a"]))
        .task(Task::new("ok", "t"))
        .task(Task::new("x", "t").depends_on(["y", "ok"]))
        .task(Task::new("y", "t").depends_on(["x"]));
    assert_eq!(
        errors_of(&workflow),
        [
            ValidationError::Cycle {
                path: ids(&["a", "b", "a"])
            },
            ValidationError::Cycle {
                path: ids(&["x", "y", "x"])
            },
        ]
    );
}

#[test]
fn a_task_downstream_of_a_cycle_is_not_reported_as_a_cycle() {
    let workflow = Workflow::new("w", "W")
        .task(Task::new("tail", "t").depends_on(["a"]))
        .task(Task::new("a", "t").depends_on(["b"]))
        .task(Task::new("b", "t").depends_on(["a"]));
    assert_eq!(
        errors_of(&workflow),
        [ValidationError::Cycle {
            path: ids(&["a", "b", "a"])
        }]
    );
}

#[test]
fn invalid_options_name_the_task_and_the_option() {
    let bad_backoff = Backoff {
        initial: Duration::from_secs(10),
        multiplier: 0.5,
        max: Duration::from_secs(1),
        jitter: true,
    };
    let workflow = Workflow::new("w", "W")
        .task(Task::new("slow", "t").timeout(Duration::ZERO))
        .task(Task::new("bouncy", "t").backoff(bad_backoff))
        .task(Task::new("listy", "t").config(json!([1, 2])));
    let options: Vec<(String, &str)> = errors_of(&workflow)
        .iter()
        .map(|e| match e {
            ValidationError::InvalidOption { task, option, .. } => (task.to_string(), *option),
            other => panic!("unexpected error {other}"),
        })
        .collect();
    assert_eq!(
        options,
        [
            ("slow".to_owned(), "timeout"),
            ("bouncy".to_owned(), "backoff.multiplier"),
            ("bouncy".to_owned(), "backoff.initial"),
            ("listy".to_owned(), "config"),
        ]
    );
    assert_eq!(
        errors_of(&workflow)[3].to_string(),
        "task `listy`: invalid `config`: must be a JSON object, not an array"
    );
}

#[test]
fn a_map_key_that_differs_from_the_task_id_is_reported() {
    let workflow = Workflow::from_json(
        r#"{"workflow_id": "w", "tasks": {"load": {"task_id": "lode", "task_type": "t"}}}"#,
    )
    .expect("well-formed");
    assert_eq!(
        errors_of(&workflow),
        [ValidationError::KeyMismatch {
            key: "load".into(),
            task_id: "lode".into()
        }]
    );
}

#[test]
fn every_problem_is_reported_at_once_one_per_line() {
    let workflow = Workflow::new("w", "W")
        .task(Task::new("a", "t").depends_on(["a", "ghost"]))
        .task(Task::new("b", "t").depends_on(["c"]))
        .task(Task::new("c", "t").depends_on(["b"]))
        .task(Task::new("b", "t"));
    let errors = workflow.validate().expect_err("invalid");
    assert_eq!(errors.len(), 4, "{errors}");
    assert_eq!(
        errors.to_string(),
        "task id `b` is used by more than one task\n\
         task `a` depends on itself\n\
         task `a` depends on unknown task `ghost`\n\
         dependency cycle: b -> c -> b (each task depends on the next)"
    );
}

#[test]
fn missing_handlers_list_every_type_and_its_tasks() {
    let workflow = Workflow::new("w", "W")
        .task(Task::new("a", "fetch"))
        .task(Task::new("b", "store").depends_on(["a"]))
        .task(Task::new("c", "store").depends_on(["a"]))
        .task(Task::new("d", "known").depends_on(["a"]));
    let errors = workflow
        .validate_with_handlers(|t| t == "known")
        .expect_err("two types lack handlers")
        .into_vec();
    assert_eq!(
        errors,
        [
            ValidationError::MissingHandler {
                task_type: "fetch".into(),
                tasks: ids(&["a"])
            },
            ValidationError::MissingHandler {
                task_type: "store".into(),
                tasks: ids(&["b", "c"])
            },
        ]
    );
    assert_eq!(
        errors[1].to_string(),
        "no handler for task type `store` (used by `b`, `c`)"
    );
    assert!(workflow.validate_with_handlers(|_| true).is_ok());
}

#[test]
fn missing_handlers_are_reported_beside_structural_problems() {
    let workflow = Workflow::new("w", "W").task(Task::new("a", "fetch").depends_on(["ghost"]));
    let errors = workflow
        .validate_with_handlers(|_| false)
        .expect_err("invalid")
        .into_vec();
    assert_eq!(errors.len(), 2);
    assert!(matches!(
        errors[0],
        ValidationError::UnknownDependency { .. }
    ));
    assert!(matches!(errors[1], ValidationError::MissingHandler { .. }));
}

#[test]
fn adding_a_task_after_validation_validates_again() {
    let mut workflow = Workflow::new("w", "W").task(Task::new("a", "t"));
    assert!(workflow.validate().is_ok());
    workflow.add_task(Task::new("b", "t").depends_on(["ghost"]));
    assert_eq!(errors_of(&workflow).len(), 1);
}
