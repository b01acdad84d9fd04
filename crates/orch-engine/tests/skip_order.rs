//! Skips are announced in the workflow's order: a task skipped in the same step as one of
//! its dependencies is announced after it, whichever path (a failure, a trigger rule, a
//! branch) skipped them. So are the tasks a cancelled run cancels as it ends.

use std::collections::HashMap;

use orch_core::{EngineEvent, EngineEventKind, Task, TaskStatus, TriggerRule, Workflow};
use orch_engine::{TaskContext, TaskError, WorkflowEngine};
use orch_events::EventBus;
use serde_json::Value;

mod common;
use common::current_thread;

/// An engine (publishing on `bus`, if given) whose `fail` tasks fail, whose `route`
/// tasks choose no branch, and whose other types complete.
fn engine(bus: Option<EventBus<EngineEvent>>) -> WorkflowEngine {
    let mut builder = WorkflowEngine::builder();
    if let Some(bus) = bus {
        builder = builder.event_bus(bus);
    }
    let engine = builder.build().expect("valid");
    engine.register_handler("ok", |_ctx: TaskContext| async move {
        Ok::<_, TaskError>(Value::Null)
    });
    engine.register_handler("fail", |_ctx: TaskContext| async move {
        Err::<Value, _>(TaskError::new("broken"))
    });
    engine.register_handler("route", |ctx: TaskContext| async move {
        ctx.choose_branches(Vec::<String>::new())?;
        Ok::<_, TaskError>(Value::Null)
    });
    engine
}

/// The task ids of the run `start` starts on an engine with a bus, in the order their
/// end was announced, with the run's records' statuses.
fn ends_announced(
    start: impl FnOnce(&WorkflowEngine) -> orch_engine::RunHandle,
) -> (Vec<String>, HashMap<String, TaskStatus>) {
    current_thread().block_on(async {
        let bus: EventBus<EngineEvent> = EventBus::new();
        let mut subscription = bus.subscribe("workflow.>").expect("a valid pattern");
        let engine = engine(Some(bus.clone()));
        let result = start(&engine).await.expect("valid");
        bus.close().await;
        let mut ended = Vec::new();
        while let Some(event) = subscription.recv_event().await {
            let event = event.payload();
            let ends = !matches!(
                event.kind,
                EngineEventKind::TaskStarted
                    | EngineEventKind::TaskRetrying
                    | EngineEventKind::TaskRestored
            );
            if let (Some(id), true) = (&event.task_id, ends) {
                ended.push(id.to_string());
            }
        }
        let statuses = (result.tasks.iter())
            .map(|(id, record)| (id.to_string(), record.status))
            .collect();
        (ended, statuses)
    })
}

/// Asserts that every task of `workflow`'s run was announced ended once, in order (see
/// [`assert_in_order`]).
fn assert_dependencies_first(workflow: &Workflow) {
    let (ended, statuses) = ends_announced(|engine| engine.run(workflow));
    assert_eq!(ended.len(), workflow.len(), "{ended:?}");
    assert_in_order(workflow, &ended, &statuses);
}

/// Asserts that no task was announced ended twice, and every skipped or cancelled one
/// after each of its dependencies that did not complete.
fn assert_in_order(workflow: &Workflow, ended: &[String], statuses: &HashMap<String, TaskStatus>) {
    let at = |id: &str| {
        let found = ended.iter().position(|e| e == id);
        found.unwrap_or_else(|| panic!("`{id}` was not announced: {ended:?}"))
    };
    let unique: std::collections::HashSet<&String> = ended.iter().collect();
    assert_eq!(unique.len(), ended.len(), "announced twice: {ended:?}");
    for task in workflow.tasks() {
        let id = task.task_id.as_str();
        if !matches!(statuses[id], TaskStatus::Skipped | TaskStatus::Cancelled) {
            continue;
        }
        for dependency in &task.dependencies {
            if statuses[dependency.as_str()] != TaskStatus::Completed {
                assert!(
                    at(dependency.as_str()) < at(id),
                    "`{id}` was announced before its dependency `{dependency}`: {ended:?}"
                );
            }
        }
    }
}

/// `d` depends on `b` and `c`, both of which a failure of `a` skips.
#[test]
fn a_failure_skips_a_diamond_in_order() {
    let workflow = Workflow::new("w", "W")
        .task(Task::new("a", "fail"))
        .task(Task::new("b", "ok").depends_on(["a"]))
        .task(Task::new("c", "ok").depends_on(["a"]))
        .task(Task::new("d", "ok").depends_on(["b", "c"]));
    assert_dependencies_first(&workflow);
}

/// `b`'s skip decides both `d` and `g` by their rules, and `d`, listed first, depends on
/// `g` too.
#[test]
fn a_rule_skips_in_order() {
    let workflow = Workflow::new("w", "W")
        .task(Task::new("a", "fail"))
        .task(Task::new("b", "ok").depends_on(["a"]))
        .task(Task::new("d", "ok").depends_on(["b", "g"]))
        .task(Task::new("g", "ok").depends_on(["b"]))
        .task(Task::new("cleanup", "ok").trigger_rule(TriggerRule::Always));
    assert_dependencies_first(&workflow);
}

/// A branch task that chooses neither `p` nor `q`, on which `r` depends, with and without
/// trigger rules in the workflow.
#[test]
fn a_branch_skips_in_order() {
    for rules in [false, true] {
        let mut workflow = Workflow::new("w", "W")
            .task(Task::new("route", "route"))
            .task(Task::new("p", "ok").depends_on(["route"]))
            .task(Task::new("r", "ok").depends_on(["p", "q"]))
            .task(Task::new("q", "ok").depends_on(["route"]));
        if rules {
            workflow = workflow.task(Task::new("cleanup", "ok").trigger_rule(TriggerRule::Always));
        }
        assert_dependencies_first(&workflow);
    }
}

/// A resumed run announces the skips it keeps and those they cause in one order: `y`,
/// added since and skipped after the kept `p`, comes before the kept `x` that depends
/// on it.
#[test]
fn a_resumed_run_announces_kept_and_new_skips_in_order() {
    let first = Workflow::new("w", "W")
        .task(Task::new("route", "route"))
        .task(Task::new("p", "ok").depends_on(["route"]))
        .task(Task::new("x", "ok").depends_on(["p"]));
    let earlier = current_thread()
        .block_on(engine(None).execute_workflow(&first))
        .expect("valid");
    assert_eq!(earlier.tasks["x"].status, TaskStatus::Skipped);
    let second = Workflow::new("w", "W")
        .task(Task::new("route", "route"))
        .task(Task::new("p", "ok").depends_on(["route"]))
        .task(Task::new("y", "ok").depends_on(["p"]))
        .task(Task::new("x", "ok").depends_on(["p", "y"]));
    let (ended, statuses) = ends_announced(|engine| engine.resume(&second, &earlier));
    assert_eq!(statuses["x"], TaskStatus::Skipped);
    assert_in_order(&second, &ended, &statuses);
}

/// A run cancelled before any task started cancels them all as it ends: `b`, listed
/// before `a` on which it depends, is announced after it.
#[test]
fn a_cancelled_run_announces_its_cancelled_tasks_in_order() {
    let workflow = Workflow::new("w", "W")
        .task(Task::new("b", "ok").depends_on(["a"]))
        .task(Task::new("a", "ok"));
    let (ended, statuses) = ends_announced(|engine| {
        let run = engine.run(&workflow);
        run.cancellation_token().cancel();
        run
    });
    assert_eq!(statuses["b"], TaskStatus::Cancelled);
    assert_eq!(ended.len(), workflow.len(), "{ended:?}");
    assert_in_order(&workflow, &ended, &statuses);
}
