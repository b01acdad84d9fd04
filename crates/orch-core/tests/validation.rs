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

/// The text of each of `workflow`'s problems.
fn texts_of(workflow: &Workflow) -> Vec<String> {
    errors_of(workflow)
        .iter()
        .map(ToString::to_string)
        .collect()
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
            dependency: "ghost".into(),
            suggestion: None,
        }]
    );
    assert_eq!(
        errors[0].to_string(),
        "task `a` depends on unknown task `ghost`"
    );
}

#[test]
fn an_unknown_dependency_suggests_the_id_meant() {
    let workflow = Workflow::new("w", "W")
        .task(Task::new("extract_order", "t"))
        .task(Task::new("extract_customer", "t"))
        .task(Task::new("load", "t").depends_on(["extract_ordr", "extract_custmer", "zzz"]));
    let errors = errors_of(&workflow);
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        text,
        [
            "task `load` depends on unknown task `extract_ordr`; did you mean `extract_order`?",
            "task `load` depends on unknown task `extract_custmer`; did you mean `extract_customer`?",
            "task `load` depends on unknown task `zzz`",
        ]
    );
    assert!(matches!(
        &errors[0],
        ValidationError::UnknownDependency { suggestion: Some(id), .. } if id == "extract_order"
    ));
}

#[test]
fn a_suggestion_is_never_the_task_itself_nor_a_guess_at_a_short_name() {
    // `laod` is one swap from `load`, the task that names it: following that suggestion
    // would make the task depend on itself. `c` is one edit from `a`, as from any letter.
    let workflow = Workflow::new("w", "W")
        .task(Task::new("a", "t"))
        .task(Task::new("load", "t").depends_on(["laod"]))
        .task(Task::new("b", "t").depends_on(["c"]));
    assert_eq!(
        texts_of(&workflow),
        [
            "task `load` depends on unknown task `laod`",
            "task `b` depends on unknown task `c`",
        ]
    );
    // Beside another task it may mean, that one is suggested.
    let workflow = Workflow::new("w", "W")
        .task(Task::new("land", "t"))
        .task(Task::new("load", "t").depends_on(["laod"]));
    assert_eq!(
        errors_of(&workflow)[0].to_string(),
        "task `load` depends on unknown task `laod`; did you mean `land`?"
    );
}

#[test]
fn suggestions_for_a_large_workflow_stay_within_a_bounded_search() {
    // Every task depends on an unknown id one letter away from a real one: the search for
    // suggestions stops after a bounded amount of work, so the first get one and the
    // last do not.
    let n = 50_000;
    let workflow = Workflow::from_tasks(
        "w",
        "W",
        (0..n).map(|i| Task::new(format!("task{i:05}"), "t").depends_on([format!("tsak{i:05}")])),
    );
    let errors = errors_of(&workflow);
    assert_eq!(errors.len(), n);
    let suggested = |e: &ValidationError| {
        matches!(
            e,
            ValidationError::UnknownDependency {
                suggestion: Some(_),
                ..
            }
        )
    };
    assert!(suggested(&errors[0]), "{}", errors[0]);
    assert!(!suggested(&errors[n - 1]), "{}", errors[n - 1]);
}

#[test]
fn a_problem_given_twice_is_reported_once() {
    let workflow = Workflow::from_tasks(
        "w",
        "W",
        [
            Task::new("a", "t").depends_on(["ghost", "ghost", "a", "a"]),
            Task::new("b", "t"),
            Task::new("b", "t"),
            Task::new("b", "t"),
        ],
    );
    assert_eq!(
        texts_of(&workflow),
        [
            "task id `b` is used by more than one task",
            "task `a` depends on unknown task `ghost`",
            "task `a` depends on itself",
        ]
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
    assert_eq!(workflow.get("a").expect("task a").task_type, "first");
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

/// A long cycle's message shows its first and last tasks and counts the rest, so that it
/// stays a line of a log; the error still holds the whole path.
#[test]
fn a_long_cycle_is_shown_by_its_ends() {
    let n = 1000;
    let errors = errors_of(&ring(n));
    let [ValidationError::Cycle { path }] = &errors[..] else {
        panic!("one cycle: {errors:?}");
    };
    assert_eq!(path.len(), n + 1);
    let first: Vec<&str> = path[..10].iter().map(|t| t.as_str()).collect();
    let last: Vec<&str> = path[n - 9..].iter().map(|t| t.as_str()).collect();
    assert_eq!(
        errors[0].to_string(),
        format!(
            "dependency cycle: {} -> (981 more tasks) -> {} (each task depends on the next)",
            first.join(" -> "),
            last.join(" -> ")
        )
    );
}

fn ring(n: usize) -> Workflow {
    (0..n).fold(Workflow::new("w", "W"), |workflow, i| {
        workflow.task(Task::new(format!("t{i}"), "t").depends_on([format!("t{}", (i + 1) % n)]))
    })
}

#[test]
fn a_cycle_of_twenty_tasks_is_shown_whole_and_one_of_twenty_one_by_its_ends() {
    let text = errors_of(&ring(20))[0].to_string();
    assert!(!text.contains("more tasks"), "{text}");
    assert_eq!(text.matches(" -> ").count(), 20, "{text}");
    let text = errors_of(&ring(21))[0].to_string();
    assert!(text.contains(" -> (2 more tasks) -> "), "{text}");
    assert_eq!(text.matches(" -> ").count(), 20, "{text}");
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

/// The walk from `p` once followed its first dependency into the other cycle, and the
/// cycle `p` is on went unreported until that one was mended.
#[test]
fn two_cycles_reached_from_one_task_are_each_reported() {
    let workflow = Workflow::new("w", "W")
        .task(Task::new("p", "t").depends_on(["a", "q"]))
        .task(Task::new("q", "t").depends_on(["p"]))
        .task(Task::new("a", "t").depends_on(["b"]))
        .task(Task::new("b", "t").depends_on(["a"]));
    assert_eq!(
        errors_of(&workflow),
        [
            ValidationError::Cycle {
                path: ids(&["p", "q", "p"])
            },
            ValidationError::Cycle {
                path: ids(&["a", "b", "a"])
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
fn missing_handlers_list_every_type_its_tasks_and_the_type_meant() {
    let workflow = Workflow::new("w", "W")
        .task(Task::new("a", "fetch"))
        .task(Task::new("b", "stor").depends_on(["a"]))
        .task(Task::new("c", "stor").depends_on(["a"]))
        .task(Task::new("d", "known").depends_on(["a"]));
    let valid = workflow.validate().expect("valid");
    let missing = valid.missing_handlers(["known", "store"]);
    let found: Vec<(&str, Vec<&str>, Option<&str>)> = missing
        .iter()
        .map(|m| {
            (
                m.task_type.as_str(),
                m.tasks.iter().map(|t| t.as_str()).collect(),
                m.suggestion.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("fetch", vec!["a"], None),
            ("stor", vec!["b", "c"], Some("store")),
        ]
    );
    assert_eq!(
        missing[1].to_string(),
        "no handler for task type `stor` (used by `b`, `c`); did you mean `store`?"
    );
    assert!(
        valid
            .missing_handlers(["known", "stor", "fetch"])
            .is_empty()
    );
}

#[test]
fn adding_a_task_after_validation_validates_again() {
    let mut workflow = Workflow::new("w", "W").task(Task::new("a", "t"));
    assert!(workflow.validate().is_ok());
    workflow.add_task(Task::new("b", "t").depends_on(["ghost"]));
    assert_eq!(errors_of(&workflow).len(), 1);
}

#[test]
fn control_characters_in_ids_task_types_and_pools_are_refused_and_shown_escaped() {
    let workflow = Workflow::new("w\n", "W")
        .task(Task::new("a\u{1b}[31m", "t"))
        .task(Task::new("b", "t\r"))
        .task(Task::new("c\n", "u\t"))
        .task(Task::new("d", "t").pool("x\u{1b}]0;pwned\u{7}"))
        .task(Task::new("fine", "t"));
    let errors = errors_of(&workflow);
    let texts: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        texts,
        [
            "workflow id \"w\\n\" holds the control character '\\n': ids, task types and pool names may not",
            "task id \"a\\u{1b}[31m\" holds the control character '\\u{1b}': ids, task types and pool names may not",
            "task type \"t\\r\" of task \"b\" holds the control character '\\r': ids, task types and pool names may not",
            "task id \"c\\n\" holds the control character '\\n': ids, task types and pool names may not",
            "task type \"u\\t\" of task \"c\\n\" holds the control character '\\t': ids, task types and pool names may not",
            "pool \"x\\u{1b}]0;pwned\\u{7}\" of task \"d\" holds the control character '\\u{1b}': ids, task types and pool names may not",
        ]
    );
    assert!(texts.iter().all(|t| !t.chars().any(char::is_control)));
    // Each error but the workflow id's names its task, for tools that place it.
    let tasks: Vec<Option<&str>> = (errors.iter())
        .map(|e| match e {
            orch_core::ValidationError::ControlCharacter { task, .. } => task.as_deref(),
            _ => panic!("another error: {e}"),
        })
        .collect();
    assert_eq!(
        tasks,
        [
            None,
            Some("a\u{1b}[31m"),
            Some("b"),
            Some("c\n"),
            Some("c\n"),
            Some("d")
        ]
    );
}

/// A bidirectional control (which reorders how the rest of a line is shown, so that an
/// id can pass for another) is refused as a control character is, and shown escaped.
#[test]
fn bidirectional_controls_in_ids_task_types_and_pools_are_refused() {
    let workflow = Workflow::new("w", "W")
        .task(Task::new("load\u{202E}txt.exe", "t"))
        .task(Task::new("b", "t\u{2066}"))
        .task(Task::new("c", "t").pool("gpu\u{200F}"))
        .task(Task::new("d\u{61C}", "t"));
    let found: Vec<char> = (errors_of(&workflow).iter())
        .map(|e| match e {
            orch_core::ValidationError::ControlCharacter { found, .. } => *found,
            _ => panic!("another error: {e}"),
        })
        .collect();
    assert_eq!(found, ['\u{202E}', '\u{2066}', '\u{200F}', '\u{61C}']);
    let text = errors_of(&workflow)[0].to_string();
    assert!(
        text.contains("bidirectional control '\\u{202e}'") && !text.contains('\u{202E}'),
        "{text}"
    );
}

/// Line and paragraph separators (line breaks), and invisible characters (with which
/// two different ids look the same), are refused as control characters are, and shown
/// escaped.
#[test]
fn separators_and_invisible_characters_in_ids_are_refused() {
    let workflow = Workflow::new("w", "W")
        .task(Task::new("a\u{2028}x", "t"))
        .task(Task::new("load\u{200B}", "t"))
        .task(Task::new("c", "t\u{FEFF}"))
        .task(Task::new("d", "t").pool("gpu\u{AD}"))
        .task(Task::new("e\u{2029}", "t\u{2060}"))
        .task(Task::new("load\u{E0041}", "t"))
        .task(Task::new("f", "\u{3164}"))
        .task(Task::new("g\u{34F}", "t"));
    let errors = errors_of(&workflow);
    let found: Vec<char> = (errors.iter())
        .map(|e| match e {
            orch_core::ValidationError::ControlCharacter { found, .. } => *found,
            _ => panic!("another error: {e}"),
        })
        .collect();
    assert_eq!(
        found,
        [
            '\u{2028}',
            '\u{200B}',
            '\u{FEFF}',
            '\u{AD}',
            '\u{2029}',
            '\u{2060}',
            '\u{E0041}',
            '\u{3164}',
            '\u{34F}'
        ]
    );
    for error in &errors {
        let text = error.to_string();
        assert!(!text.chars().any(orch_core::is_hidden_control), "{text:?}");
    }
    assert!(
        errors[0]
            .to_string()
            .contains("line or paragraph separator '\\u{2028}'")
    );
    let filler = errors.iter().find(|e| e.to_string().contains("\\u{3164}"));
    assert!(filler.is_some_and(|e| e.to_string().contains("invisible character")));
    assert!(
        errors[1]
            .to_string()
            .contains("invisible character '\\u{200b}'")
    );
    // The zero-width joiner and non-joiner (emoji sequences, Persian and Indic text)
    // and variation selectors (an emoji's presentation, a Han character's variant,
    // Mongolian) pass.
    let joined = Workflow::new("w", "W")
        .task(Task::new("love\u{2764}\u{FE0F}", "t"))
        .task(Task::new("\u{845B}\u{E0100}", "t"))
        .task(Task::new("\u{1820}\u{180B}", "t"))
        .task(Task::new("family\u{1F468}\u{200D}\u{1F469}", "t"))
        .task(Task::new(
            "\u{645}\u{6CC}\u{200C}\u{62E}\u{648}\u{627}\u{647}\u{645}",
            "t",
        ));
    assert!(joined.validate().is_ok());
    // A dependency that looks like a task's id, but is not.
    let lookalike = Workflow::new("w", "W")
        .task(Task::new("load", "t"))
        .task(Task::new("b", "t").depends_on(["load\u{200B}"]));
    let text = errors_of(&lookalike)[0].to_string();
    assert!(text.contains("`load\\u{200b}`"), "{text}");
}

/// An empty task id is refused: it cannot be told apart in errors.
#[test]
fn empty_task_ids_are_refused() {
    let workflow = Workflow::new("w", "W").task(Task::new("", "t"));
    assert_eq!(
        texts_of(&workflow),
        ["task ``: invalid `task_id`: must not be empty"]
    );
    let read = Workflow::from_json(r#"{"workflow_id": "w", "tasks": {"": {"task_type": "t"}}}"#)
        .expect("read");
    assert_eq!(
        texts_of(&read),
        ["task ``: invalid `task_id`: must not be empty"]
    );
}

#[test]
fn errors_print_control_characters_in_ids_escaped() {
    let escape = "\u{1b}]0;pwned\u{7}\u{1b}[2J";
    let quoted = |text: &str| serde_json::to_string(text).expect("a JSON string");
    let json = format!(
        r#"{{"workflow_id": "w", "tasks": {{"a": {{"task_type": "t", "dependencies": [{}]}}, "b": {{"task_id": {}, "task_type": "t"}}}}}}"#,
        quoted(escape),
        quoted(&format!("x{escape}"))
    );
    let workflow = Workflow::from_json(&json).expect("read");
    let errors = workflow.validate().expect_err("invalid").to_string();
    assert!(
        errors.contains(r"depends on unknown task `\u{1b}]0;pwned\u{7}\u{1b}[2J`"),
        "{errors}"
    );
    assert!(errors.contains(r"has task_id `x\u{1b}]0;pwned"), "{errors}");
    assert!(
        !errors.chars().any(|c| c.is_control() && c != '\n'),
        "{errors:?}"
    );

    let unknown_key = format!(
        r#"{{"workflow_id": "w", "tasks": {{"a": {{"task_type": "t", {}: 1}}}}}}"#,
        quoted(escape)
    );
    let error = Workflow::from_json(&unknown_key)
        .expect_err("an unknown key")
        .to_string();
    assert!(error.contains(r"\u{1b}"), "{error}");
    assert!(!error.chars().any(char::is_control), "{error:?}");
}

/// An error naming text from the workflow (here an unknown dependency) shows its
/// bidirectional controls escaped, as it does control characters.
#[test]
fn errors_show_bidirectional_controls_in_names_escaped() {
    let workflow = Workflow::new("w", "W").task(Task::new("a", "t").depends_on(["b\u{202E}c"]));
    let text = errors_of(&workflow)[0].to_string();
    assert!(
        text.contains("b\\u{202e}c") && !text.contains('\u{202E}'),
        "{text}"
    );
}

/// A long id is shown by its two ends and its length, however many problems name it (cut
/// between characters); the error's fields hold it whole.
#[test]
fn a_long_id_is_shown_cut_in_the_text_and_kept_whole_in_the_fields() {
    // Two-byte characters from byte 132 on: no cut falls on a character's boundary.
    let long = |last: &str| format!("{}{}{last}", "x".repeat(133), "é".repeat(5_000));
    let (task, dependency) = (long("1"), long("2"));
    let workflow = Workflow::new("w", "W")
        .task(Task::new(task.as_str(), "t").depends_on([dependency.as_str(), "b", "b"]))
        .task(Task::new("b", "t"));
    let errors = errors_of(&workflow);
    assert_eq!(errors.len(), 2, "{errors:?}");
    for error in &errors {
        let text = error.to_string();
        assert!(text.len() < 600, "{text}");
        assert!(
            text.contains(&format!("é1 ({} bytes)", task.len())),
            "{text}"
        );
    }
    // Ids that differ only at their end still read apart.
    assert!(
        errors[0]
            .to_string()
            .contains(&format!("é2 ({} bytes)", task.len()))
    );
    assert!(matches!(
        &errors[0],
        ValidationError::UnknownDependency { task: t, .. } if *t.as_str() == task
    ));
}

/// The text of many problems lists the first hundred and counts the others, which
/// iterating the errors gives.
#[test]
fn the_text_of_many_problems_lists_a_hundred_and_counts_the_rest() {
    let ghosts: Vec<String> = (0..150).map(|i| format!("ghost{i}")).collect();
    let workflow = Workflow::new("w", "W").task(Task::new("a", "t").depends_on(ghosts));
    let errors = workflow.validate().expect_err("unknown dependencies");
    assert_eq!(errors.iter().count(), 150);
    let text = errors.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 101, "{text}");
    assert_eq!(lines[99], "task `a` depends on unknown task `ghost99`");
    assert_eq!(lines[100], "and 50 more problem(s)");
}
