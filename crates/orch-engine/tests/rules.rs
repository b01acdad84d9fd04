//! Trigger rules, branches, pools and priorities on small workflows: skip reasons, the
//! workflow's final status past failures, branch choices, pool validation and waiting.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use orch_core::{Backoff, Task, TaskStatus, TriggerRule, Workflow, WorkflowStatus};
use orch_engine::{ConfigError, RunError, TaskContext, TaskError, WorkflowEngine};
use serde_json::json;

/// An engine whose `ok` handler completes, `fail` fails, and `route` chooses the branches
/// listed in its config's `choose`; `log` records every start.
fn engine(builder: orch_engine::EngineBuilder) -> (WorkflowEngine, Arc<Mutex<Vec<String>>>) {
    let engine = builder.build().expect("valid settings");
    let log = Arc::new(Mutex::new(Vec::new()));
    for (kind, fails) in [("ok", false), ("fail", true)] {
        let log = Arc::clone(&log);
        engine.register_handler(kind, move |ctx: TaskContext| {
            let log = Arc::clone(&log);
            async move {
                log.lock().expect("lock").push(ctx.task_id().to_string());
                let ms = ctx.config()["ms"].as_u64().unwrap_or(0);
                if ms > 0 {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                if fails {
                    Err(TaskError::permanent("broken"))
                } else {
                    Ok(json!(ctx.task_id()))
                }
            }
        });
    }
    engine.register_handler("route", |ctx: TaskContext| async move {
        let choose: Vec<String> = serde_json::from_value(ctx.config()["choose"].clone())
            .map_err(|e| TaskError::permanent(e.to_string()))?;
        ctx.choose_branches(&choose)?;
        // The first attempt of a retried router fails after choosing.
        if ctx.config()["fail_first"] == json!(true) && ctx.attempt() == 1 {
            return Err(TaskError::new("first attempt fails"));
        }
        Ok::<_, TaskError>(json!(choose))
    });
    (engine, log)
}

fn run(engine: &WorkflowEngine, workflow: &Workflow) -> orch_core::WorkflowResult {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a runtime")
        .block_on(engine.execute_workflow(workflow))
        .expect("the run starts")
}

fn resume(
    engine: &WorkflowEngine,
    workflow: &Workflow,
    previous: &orch_core::WorkflowResult,
) -> orch_core::WorkflowResult {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(engine.resume(workflow, previous))
        .expect("resumes")
}

fn status(result: &orch_core::WorkflowResult, id: &str) -> TaskStatus {
    result.task(id).expect("a task").status
}

fn reason(result: &orch_core::WorkflowResult, id: &str) -> String {
    result
        .task(id)
        .expect("a task")
        .error
        .clone()
        .unwrap_or_default()
}

#[test]
fn a_cleanup_task_runs_past_a_failure_and_the_workflow_still_fails() {
    let (engine, _) = engine(WorkflowEngine::builder());
    let workflow = Workflow::new("w", "")
        .task(Task::new("work", "fail"))
        .task(Task::new("next", "ok").depends_on(["work"]))
        .task(
            Task::new("cleanup", "ok")
                .depends_on(["work"])
                .trigger_rule(TriggerRule::AllDone),
        );
    let result = run(&engine, &workflow);
    assert_eq!(status(&result, "cleanup"), TaskStatus::Completed);
    assert_eq!(status(&result, "next"), TaskStatus::Skipped);
    assert_eq!(
        reason(&result, "next"),
        "dependency `work` failed (trigger rule `all_success`)"
    );
    assert_eq!(result.status, WorkflowStatus::Failed);
}

#[test]
fn a_completed_failure_handler_makes_the_workflow_complete() {
    let (engine, _) = engine(WorkflowEngine::builder());
    let workflow = |handler_type: &str| {
        Workflow::new("w", "").task(Task::new("work", "fail")).task(
            Task::new("on_error", handler_type)
                .depends_on(["work"])
                .trigger_rule(TriggerRule::OneFailed),
        )
    };
    let handled = run(&engine, &workflow("ok"));
    assert_eq!(status(&handled, "on_error"), TaskStatus::Completed);
    assert_eq!(handled.status, WorkflowStatus::Completed);
    // A handler that fails itself handles nothing.
    let unhandled = run(&engine, &workflow("fail"));
    assert_eq!(unhandled.status, WorkflowStatus::Failed);
}

#[test]
fn an_unmet_rule_names_the_rule_and_every_deciding_dependency() {
    let (engine, _) = engine(WorkflowEngine::builder().max_concurrent(4));
    let workflow = Workflow::new("w", "")
        .task(Task::new("a", "fail"))
        .task(Task::new("b", "fail").config(json!({"ms": 5})))
        .task(
            Task::new("report", "ok")
                .depends_on(["a", "b"])
                .trigger_rule(TriggerRule::OneSuccess),
        )
        .task(
            Task::new("after", "ok")
                .depends_on(["report"])
                .trigger_rule(TriggerRule::NoneFailed),
        );
    let result = run(&engine, &workflow);
    assert_eq!(status(&result, "report"), TaskStatus::Skipped);
    assert_eq!(
        reason(&result, "report"),
        "trigger rule `one_success` not met: `a` failed, `b` failed"
    );
    // A skipped dependency is not a failure: `none_failed` runs after it.
    assert_eq!(status(&result, "after"), TaskStatus::Completed);
}

/// A skipped dependency in an unmet rule's list says which failure it was skipped after,
/// and a skip further down still goes back to that failure, though the dependency that
/// ended last (`x`) completed.
#[test]
fn an_unmet_rule_names_the_failure_behind_a_skipped_dependency() {
    let (engine, _) = engine(WorkflowEngine::builder().max_concurrent(4));
    let workflow = Workflow::new("w", "")
        .task(Task::new("x", "ok").config(json!({"ms": 50})))
        .task(Task::new("a", "fail"))
        .task(Task::new("b", "ok").depends_on(["a"]))
        // Decided only once `x` ends too: no dependency failed.
        .task(
            Task::new("c", "ok")
                .depends_on(["x", "b"])
                .trigger_rule(TriggerRule::OneFailed),
        )
        .task(Task::new("d", "ok").depends_on(["c"]))
        .task(
            Task::new("z", "ok")
                .depends_on(["d"])
                .trigger_rule(TriggerRule::AllDone),
        );
    let result = run(&engine, &workflow);
    assert_eq!(
        reason(&result, "b"),
        "dependency `a` failed (trigger rule `all_success`)"
    );
    assert_eq!(
        reason(&result, "c"),
        "trigger rule `one_failed` not met: `x` completed, `b` was skipped after `a` failed"
    );
    assert_eq!(
        reason(&result, "d"),
        "dependency `c` was skipped after `a` failed (trigger rule `all_success`)"
    );
    assert_eq!(status(&result, "z"), TaskStatus::Completed);
}

#[test]
fn one_success_runs_as_soon_as_one_source_arrived() {
    let (engine, log) = engine(WorkflowEngine::builder().max_concurrent(4));
    let workflow = Workflow::new("w", "")
        .task(Task::new("fast", "ok"))
        .task(Task::new("slow", "ok").config(json!({"ms": 50})))
        .task(
            Task::new("report", "ok")
                .depends_on(["fast", "slow"])
                .trigger_rule(TriggerRule::OneSuccess),
        );
    let result = run(&engine, &workflow);
    assert_eq!(result.status, WorkflowStatus::Completed);
    let report = result.task("report").expect("report");
    let slow = result.task("slow").expect("slow");
    assert!(report.start_time < slow.end_time, "report waited for slow");
    assert_eq!(log.lock().expect("lock").len(), 3);
}

fn branch_workflow(join_rule: TriggerRule, route: serde_json::Value) -> Workflow {
    branch_workflow_with(join_rule, Task::new("route", "route").config(route))
}

fn branch_workflow_with(join_rule: TriggerRule, route: Task) -> Workflow {
    Workflow::new("w", "")
        .task(route)
        .task(Task::new("small", "ok").depends_on(["route"]))
        .task(Task::new("large", "ok").depends_on(["route"]))
        .task(Task::new("large_report", "ok").depends_on(["large"]))
        .task(
            Task::new("join", "ok")
                .depends_on(["small", "large_report"])
                .trigger_rule(join_rule),
        )
}

/// As without rules, a task skipped after a failure upstream names the failed task, also
/// when the workflow has rules (there, with the dependency that decided it).
#[test]
fn a_skip_far_downstream_of_a_failure_names_the_failed_task() {
    let (engine, _) = engine(WorkflowEngine::builder());
    let workflow = Workflow::new("w", "W")
        .task(Task::new("extract", "fail"))
        .task(Task::new("transform", "ok").depends_on(["extract"]))
        .task(Task::new("load", "ok").depends_on(["transform"]))
        .task(
            Task::new("cleanup", "ok")
                .depends_on(["load"])
                .trigger_rule(TriggerRule::AllDone),
        );
    let result = run(&engine, &workflow);
    assert_eq!(
        reason(&result, "transform"),
        "dependency `extract` failed (trigger rule `all_success`)"
    );
    assert_eq!(
        reason(&result, "load"),
        "dependency `transform` was skipped after `extract` failed (trigger rule `all_success`)"
    );
    assert_eq!(status(&result, "cleanup"), TaskStatus::Completed);
}

#[test]
fn a_branch_skips_the_unchosen_subtree_and_a_join_runs_after_the_chosen_one() {
    let (engine, _) = engine(WorkflowEngine::builder().max_concurrent(2));
    let workflow = branch_workflow(
        TriggerRule::NoneFailedMinOneSuccess,
        json!({"choose": ["small"]}),
    );
    let result = run(&engine, &workflow);
    assert_eq!(status(&result, "small"), TaskStatus::Completed);
    assert_eq!(status(&result, "large"), TaskStatus::Skipped);
    assert_eq!(
        reason(&result, "large"),
        "not chosen by branch task `route`"
    );
    assert_eq!(status(&result, "large_report"), TaskStatus::Skipped);
    assert_eq!(
        reason(&result, "large_report"),
        "dependency `large` was skipped (trigger rule `all_success`)"
    );
    assert_eq!(status(&result, "join"), TaskStatus::Completed);
    assert_eq!(result.status, WorkflowStatus::Completed);
}

#[test]
fn a_branch_without_rules_skips_the_unchosen_subtree_and_an_all_success_join() {
    let (engine, _) = engine(WorkflowEngine::builder());
    let workflow = branch_workflow(TriggerRule::AllSuccess, json!({"choose": ["large"]}));
    let result = run(&engine, &workflow);
    assert_eq!(status(&result, "small"), TaskStatus::Skipped);
    assert_eq!(
        reason(&result, "small"),
        "not chosen by branch task `route`"
    );
    assert_eq!(status(&result, "large"), TaskStatus::Completed);
    assert_eq!(status(&result, "large_report"), TaskStatus::Completed);
    assert_eq!(status(&result, "join"), TaskStatus::Skipped);
    assert_eq!(result.status, WorkflowStatus::Completed);
}

#[test]
fn the_choice_of_the_attempt_that_completes_counts() {
    let (engine, _) = engine(WorkflowEngine::builder());
    let route = Task::new("route", "route")
        .config(json!({"choose": ["small"], "fail_first": true}))
        .retries(1)
        .backoff(Backoff {
            initial: Duration::ZERO,
            max: Duration::ZERO,
            ..Backoff::default()
        });
    let workflow = branch_workflow_with(TriggerRule::AllSuccess, route);
    let result = run(&engine, &workflow);
    assert_eq!(result.task("route").expect("route").attempts, 2);
    assert_eq!(status(&result, "small"), TaskStatus::Completed);
    assert_eq!(status(&result, "large"), TaskStatus::Skipped);
}

/// A dependent chosen twice, or chosen after another one defined before it, is recorded
/// once, in the workflow's order; the choice holds as it would have.
#[test]
fn the_chosen_dependents_are_recorded_once_each_in_the_workflows_order() {
    let (engine, _) = engine(WorkflowEngine::builder());
    let route = json!({"choose": ["large", "small", "large"]});
    let workflow = branch_workflow(TriggerRule::AllSuccess, route)
        .task(Task::new("other", "ok").depends_on(["route"]));
    let result = run(&engine, &workflow);
    assert_eq!(
        result.task("route").and_then(|r| r.chosen_branches.clone()),
        Some(vec!["small".into(), "large".into()])
    );
    assert_eq!(status(&result, "small"), TaskStatus::Completed);
    assert_eq!(status(&result, "large"), TaskStatus::Completed);
    assert_eq!(status(&result, "other"), TaskStatus::Skipped);
    assert_eq!(status(&result, "join"), TaskStatus::Completed);
}

#[test]
fn choosing_a_task_that_is_not_a_direct_dependent_fails_the_branch_task() {
    let (engine, _) = engine(WorkflowEngine::builder());
    let workflow = branch_workflow(TriggerRule::AllSuccess, json!({"choose": ["join"]}));
    let result = run(&engine, &workflow);
    assert_eq!(status(&result, "route"), TaskStatus::Failed);
    assert!(
        reason(&result, "route").contains(
            "chose `join` as a branch, which is not one of its direct dependents; it may \
             choose `small`, `large`"
        ),
        "{}",
        reason(&result, "route")
    );
    // A name that is no task at all is told apart.
    let workflow = branch_workflow(TriggerRule::AllSuccess, json!({"choose": ["smal"]}));
    let result = run(&engine, &workflow);
    assert!(
        reason(&result, "route").ends_with(
            "chose `smal` as a branch, which is no task of the workflow; it may choose \
             `small`, `large`"
        ),
        "{}",
        reason(&result, "route")
    );
}

#[test]
fn an_instance_of_a_map_task_cannot_choose_branches() {
    let (engine, _) = engine(WorkflowEngine::builder());
    engine.register_handler("list", |_ctx: TaskContext| async move {
        Ok::<_, TaskError>(json!([1, 2]))
    });
    let workflow = Workflow::new("w", "W")
        .task(Task::new("list", "list"))
        .task(
            Task::new("route", "route")
                .config(json!({"choose": ["small"]}))
                .map_over("list"),
        )
        .task(Task::new("small", "ok").depends_on(["route"]))
        .task(Task::new("large", "ok").depends_on(["route"]));
    let result = run(&engine, &workflow);
    assert_eq!(status(&result, "route[0]"), TaskStatus::Failed);
    assert!(
        reason(&result, "route[0]").contains(
            "instance 0 of map task `route` chose branches; only a whole task can choose"
        ),
        "{}",
        reason(&result, "route[0]")
    );
    assert_eq!(status(&result, "small"), TaskStatus::Skipped);
    assert_eq!(status(&result, "large"), TaskStatus::Skipped);
}

#[test]
fn an_undeclared_pool_stops_the_run_before_it_starts() {
    let (engine, log) = engine(WorkflowEngine::builder().pool("gpu", 2));
    let workflow = Workflow::new("w", "")
        .task(Task::new("a", "ok").pool("gpu"))
        .task(Task::new("b", "ok").pool("gpus"));
    let error = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime")
        .block_on(engine.execute_workflow(&workflow))
        .expect_err("unknown pool");
    assert_eq!(
        error,
        RunError::UnknownPools {
            tasks: vec![("b".into(), "gpus".into())]
        }
    );
    assert!(
        error.to_string().contains("task `b` names pool `gpus`"),
        "{error}"
    );
    assert!(log.lock().expect("lock").is_empty());
}

#[test]
fn a_pool_limit_of_zero_is_a_config_error() {
    let error = WorkflowEngine::builder()
        .pool("gpu", 0)
        .build()
        .expect_err("zero limit");
    assert_eq!(error, ConfigError::ZeroPoolLimit { pool: "gpu".into() });
}

#[test]
fn an_engine_map_limit_of_zero_is_a_config_error() {
    let error = WorkflowEngine::builder()
        .max_map_instances(0)
        .build()
        .expect_err("zero limit");
    assert_eq!(error, ConfigError::ZeroMapInstances);
    assert!(error.to_string().contains("max_map_instances"), "{error}");
}

#[test]
fn a_task_waiting_for_its_pool_holds_no_global_slot_and_its_timeout_starts_when_it_starts() {
    let (engine, log) = engine(WorkflowEngine::builder().max_concurrent(2).pool("gpu", 1));
    let workflow = Workflow::new("w", "")
        .task(
            Task::new("gpu1", "ok")
                .pool("gpu")
                .priority(9)
                .config(json!({"ms": 40})),
        )
        .task(
            Task::new("gpu2", "ok")
                .pool("gpu")
                .priority(9)
                .config(json!({"ms": 20}))
                .timeout(Duration::from_millis(30)),
        )
        .task(Task::new("io", "ok").config(json!({"ms": 10})));
    let result = run(&engine, &workflow);
    // gpu2 waited for gpu1 without taking the second global slot: io ran meanwhile.
    assert_eq!(*log.lock().expect("lock"), ["gpu1", "io", "gpu2"]);
    // Its 30 ms timeout counted from its own start, not from the run's.
    assert_eq!(status(&result, "gpu2"), TaskStatus::Completed);
    assert_eq!(result.status, WorkflowStatus::Completed);
}

/// A task pausing before its retry gives its pool's slot back: another task of the pool
/// runs in the pause, and the retry waits for the slot like any ready task.
#[test]
fn a_task_in_backoff_holds_no_pool_slot() {
    let (engine, log) = engine(WorkflowEngine::builder().max_concurrent(4).pool("gpu", 1));
    engine.register_handler("flaky", |ctx: TaskContext| async move {
        match ctx.attempt() {
            1 => Err(TaskError::new("first attempt fails")),
            _ => Ok::<_, TaskError>(json!("second")),
        }
    });
    let workflow = Workflow::new("w", "")
        .task(
            Task::new("train", "flaky")
                .pool("gpu")
                .retries(1)
                .backoff(Backoff {
                    initial: Duration::from_millis(100),
                    max: Duration::from_millis(100),
                    multiplier: 1.0,
                    jitter: false,
                }),
        )
        .task(
            Task::new("infer", "ok")
                .pool("gpu")
                .config(json!({"ms": 50})),
        );
    let result = run(&engine, &workflow);
    assert_eq!(result.status, WorkflowStatus::Completed);
    assert_eq!(*log.lock().expect("lock"), ["infer"]);
    let record = |id: &str| result.task(id).expect("a record");
    let (train, infer) = (record("train"), record("infer"));
    assert_eq!(train.attempts, 2);
    // `infer` ran in `train`'s 100 ms pause and ended before `train`'s second attempt.
    assert!(infer.end_time < train.end_time, "{infer:?} {train:?}");
    assert_eq!(infer.start_time, train.start_time);
}

#[test]
fn higher_priorities_start_first_and_ties_keep_the_workflow_order() {
    let (engine, log) = engine(WorkflowEngine::builder());
    let workflow = Workflow::new("w", "")
        .task(Task::new("low", "ok").priority(-1))
        .task(Task::new("plain1", "ok"))
        .task(Task::new("urgent", "ok").priority(5))
        .task(Task::new("plain2", "ok"));
    run(&engine, &workflow);
    assert_eq!(
        *log.lock().expect("lock"),
        ["urgent", "plain1", "plain2", "low"]
    );
}

#[test]
fn critical_path_first_starts_the_longest_chain_first() {
    let (engine, log) = engine(WorkflowEngine::builder().critical_path_first(true));
    let workflow = Workflow::new("w", "")
        .task(Task::new("short", "ok"))
        .task(Task::new("long1", "ok"))
        .task(Task::new("long2", "ok").depends_on(["long1"]));
    run(&engine, &workflow);
    assert_eq!(*log.lock().expect("lock"), ["long1", "short", "long2"]);
}

#[test]
fn a_resumed_run_applies_rules_to_kept_tasks() {
    let (engine, _) = engine(WorkflowEngine::builder());
    let workflow = Workflow::new("w", "")
        .task(Task::new("a", "ok"))
        .task(Task::new("b", "fail"))
        .task(
            Task::new("on_error", "ok")
                .depends_on(["a", "b"])
                .trigger_rule(TriggerRule::OneFailed),
        )
        .task(
            Task::new("all_failed", "ok")
                .depends_on(["a"])
                .trigger_rule(TriggerRule::AllFailed),
        );
    let first = run(&engine, &workflow);
    assert_eq!(status(&first, "on_error"), TaskStatus::Completed);
    assert_eq!(status(&first, "all_failed"), TaskStatus::Skipped);
    let resumed = resume(&engine, &workflow, &first);
    assert_eq!(status(&resumed, "on_error"), TaskStatus::Completed);
    assert_eq!(status(&resumed, "all_failed"), TaskStatus::Skipped);
    assert_eq!(resumed.status, WorkflowStatus::Completed);
}

#[test]
fn a_resumed_run_keeps_a_branch_choice_with_and_without_rules() {
    for (join_rule, chosen, unchosen) in [
        (TriggerRule::NoneFailedMinOneSuccess, "small", "large"),
        (TriggerRule::AllSuccess, "large", "small"),
    ] {
        let (engine, log) = engine(WorkflowEngine::builder().max_concurrent(2));
        let workflow = branch_workflow(join_rule, json!({ "choose": [chosen] }));
        let first = run(&engine, &workflow);
        assert_eq!(status(&first, unchosen), TaskStatus::Skipped);
        log.lock().expect("lock").clear();
        let resumed = resume(&engine, &workflow, &first);
        // The branch task is not asked again, and what it did not choose stays skipped.
        assert_eq!(
            *log.lock().expect("lock"),
            Vec::<String>::new(),
            "{join_rule}"
        );
        for id in ["route", chosen, unchosen, "large_report", "join"] {
            assert_eq!(
                status(&resumed, id),
                status(&first, id),
                "{join_rule}: `{id}`"
            );
        }
        assert_eq!(reason(&resumed, unchosen), reason(&first, unchosen));
        assert_eq!(resumed.status, first.status);
        // Without `join`'s record (its run was cut short), a kept skip still decides it.
        let mut records = first.tasks.records().to_vec();
        let join = first.tasks.index_of("join").expect("join");
        records[join] = orch_core::TaskRecord::default();
        let cut = orch_core::WorkflowResult {
            tasks: orch_core::TaskRecords::for_workflow(&workflow, records).expect("records"),
            ..first.clone()
        };
        let resumed = resume(&engine, &workflow, &cut);
        assert_eq!(
            status(&resumed, "join"),
            status(&first, "join"),
            "{join_rule}"
        );
        assert_eq!(resumed.status, first.status, "{join_rule}");
    }
}

/// A kept branch task keeps its choice on resume (from its result, or its JSON): a
/// dependent it did not choose stays skipped although another of its dependencies now
/// completes, and also when that dependent has no record (its run was cut short before
/// its skip was written).
#[test]
fn a_resumed_run_keeps_a_branch_choice_when_an_unchosen_dependent_is_decided_again() {
    for join_rule in [None, Some(TriggerRule::NoneFailedMinOneSuccess)] {
        let (engine, log) = engine(WorkflowEngine::builder().max_concurrent(2));
        let workflow = |fetch: &str| {
            let mut workflow = Workflow::new("w", "W")
                .task(Task::new("route", "route").config(json!({"choose": ["small"]})))
                .task(Task::new("fetch", fetch))
                .task(Task::new("small", "ok").depends_on(["route"]))
                .task(Task::new("large", "ok").depends_on(["route", "fetch"]));
            if let Some(rule) = join_rule {
                workflow = workflow.task(
                    Task::new("join", "ok")
                        .depends_on(["small", "large"])
                        .trigger_rule(rule),
                );
            }
            workflow
        };
        let first = run(&engine, &workflow("fail"));
        assert_eq!(status(&first, "large"), TaskStatus::Skipped);
        assert_eq!(
            first.task("route").and_then(|r| r.chosen_branches.clone()),
            Some(vec!["small".into()])
        );
        let from_json: orch_core::WorkflowResult =
            serde_json::from_str(&first.to_json()).expect("reads back");
        let mut records = first.tasks.records().to_vec();
        let large = first.tasks.index_of("large").expect("large");
        records[large] = orch_core::TaskRecord::default();
        let cut = orch_core::WorkflowResult {
            tasks: orch_core::TaskRecords::for_workflow(&workflow("fail"), records)
                .expect("records"),
            ..first.clone()
        };
        for previous in [&first, &from_json, &cut] {
            log.lock().expect("lock").clear();
            let resumed = resume(&engine, &workflow("ok"), previous);
            assert_eq!(status(&resumed, "fetch"), TaskStatus::Completed);
            assert_eq!(
                status(&resumed, "large"),
                TaskStatus::Skipped,
                "{join_rule:?}"
            );
            assert_eq!(
                reason(&resumed, "large"),
                "not chosen by branch task `route`"
            );
            assert!(
                !log.lock()
                    .expect("lock")
                    .iter()
                    .any(|t| t == "large" || t == "route"),
                "{join_rule:?}: {:?}",
                log.lock().expect("lock")
            );
            assert_eq!(resumed.status, WorkflowStatus::Completed, "{join_rule:?}");
        }
    }
}

/// A dependent whose rule let it start before its branch task ended (`always`) is not
/// skipped by the choice on resume either: it failed in the earlier run, so it runs again.
#[test]
fn a_resumed_run_runs_again_an_early_started_dependent_the_branch_did_not_choose() {
    let (engine, log) = engine(WorkflowEngine::builder().max_concurrent(4));
    let workflow = |notify: &str| {
        Workflow::new("w", "W")
            .task(Task::new("route", "route").config(json!({"choose": ["small"], "ms": 20})))
            .task(Task::new("small", "ok").depends_on(["route"]))
            .task(Task::new("large", "ok").depends_on(["route"]))
            .task(
                Task::new("notify", notify)
                    .depends_on(["route"])
                    .trigger_rule(TriggerRule::Always),
            )
    };
    let first = run(&engine, &workflow("fail"));
    assert_eq!(status(&first, "notify"), TaskStatus::Failed);
    assert_eq!(status(&first, "large"), TaskStatus::Skipped);
    log.lock().expect("lock").clear();
    let resumed = resume(&engine, &workflow("ok"), &first);
    assert_eq!(status(&resumed, "notify"), TaskStatus::Completed);
    assert_eq!(status(&resumed, "large"), TaskStatus::Skipped);
    assert_eq!(*log.lock().expect("lock"), ["notify"]);
    assert_eq!(resumed.status, WorkflowStatus::Completed);
}

/// A dependent whose rule had decided to run it before its branch task ended is not
/// skipped by the choice on resume, also when its record does not show it started (it
/// was running, or waiting for a slot, when the run stopped): `always`, and
/// `one_success` after another dependency completed first. One whose other dependency
/// completed only after the branch task ended was skipped by the choice, and stays so.
#[test]
fn a_resumed_run_runs_a_dependent_decided_before_its_branch_task_ended_though_unrecorded() {
    let (engine, log) = engine(WorkflowEngine::builder().max_concurrent(4));
    let workflow = Workflow::new("w", "W")
        .task(Task::new("early", "ok"))
        .task(Task::new("late", "ok").config(json!({"ms": 60})))
        .task(Task::new("wait", "ok").config(json!({"ms": 20})))
        .task(
            Task::new("route", "route")
                .depends_on(["wait"])
                .config(json!({"choose": ["small"]})),
        )
        .task(Task::new("small", "ok").depends_on(["route"]))
        .task(
            Task::new("notify", "ok")
                .depends_on(["route"])
                .trigger_rule(TriggerRule::Always),
        )
        .task(
            Task::new("either", "ok")
                .depends_on(["early", "route"])
                .trigger_rule(TriggerRule::OneSuccess),
        )
        .task(
            Task::new("after", "ok")
                .depends_on(["late", "route"])
                .trigger_rule(TriggerRule::OneSuccess),
        );
    let first = run(&engine, &workflow);
    for (id, expected) in [
        ("notify", TaskStatus::Completed),
        ("either", TaskStatus::Completed),
        ("after", TaskStatus::Skipped),
    ] {
        assert_eq!(status(&first, id), expected, "`{id}` in the first run");
    }
    // As a journal holds it after a crash while `notify` and `either` ran.
    let mut records = first.tasks.records().to_vec();
    let at = |id: &str| first.tasks.index_of(id).expect("a task");
    for id in ["notify", "either", "after"] {
        records[at(id)] = orch_core::TaskRecord::default();
    }
    let crashed = orch_core::WorkflowResult {
        tasks: orch_core::TaskRecords::for_workflow(&workflow, records).expect("records"),
        ..first.clone()
    };
    log.lock().expect("lock").clear();
    let resumed = resume(&engine, &workflow, &crashed);
    for id in ["notify", "either", "after"] {
        assert_eq!(status(&resumed, id), status(&first, id), "`{id}` resumed");
    }
    assert_eq!(
        reason(&resumed, "after"),
        "not chosen by branch task `route`"
    );
    let mut ran = log.lock().expect("lock").clone();
    ran.sort();
    assert_eq!(ran, ["either", "notify"]);
    assert_eq!(resumed.status, first.status);
}

/// On a clock that does not move (paused), a dependency that ended when the branch task
/// started counts as ended first, as it was in the run: the resumed run agrees with it.
#[test]
fn a_resumed_run_agrees_with_the_run_when_the_clock_did_not_move() {
    let (engine, _) = engine(WorkflowEngine::builder().max_concurrent(1));
    let workflow = Workflow::new("w", "W")
        .task(Task::new("early", "ok"))
        .task(
            Task::new("route", "route")
                .depends_on(["early"])
                .config(json!({"choose": ["small"]})),
        )
        .task(Task::new("small", "ok").depends_on(["route"]))
        .task(
            Task::new("either", "ok")
                .depends_on(["early", "route"])
                .trigger_rule(TriggerRule::OneSuccess),
        );
    let first = run(&engine, &workflow);
    assert_eq!(status(&first, "either"), TaskStatus::Completed);
    let mut records = first.tasks.records().to_vec();
    records[first.tasks.index_of("either").expect("a task")] = orch_core::TaskRecord::default();
    let crashed = orch_core::WorkflowResult {
        tasks: orch_core::TaskRecords::for_workflow(&workflow, records).expect("records"),
        ..first.clone()
    };
    let resumed = resume(&engine, &workflow, &crashed);
    assert_eq!(status(&resumed, "either"), TaskStatus::Completed);
}

/// A task whose rule let it start before a dependency ended (`one_success`) did not run
/// on that dependency's outcome. It completed, so a resumed run keeps it, though that
/// dependency failed and runs again; a task that ran after the failure runs again.
#[test]
fn a_resumed_run_keeps_a_task_that_completed_before_a_failed_dependency_ended() {
    let (engine, log) = engine(WorkflowEngine::builder().max_concurrent(4));
    let workflow = |b: &str| {
        Workflow::new("w", "W")
            .task(Task::new("a", "ok"))
            .task(Task::new("b", b).config(json!({"ms": 50})))
            .task(
                Task::new("early", "ok")
                    .depends_on(["a", "b"])
                    .trigger_rule(TriggerRule::OneSuccess),
            )
            .task(
                Task::new("after", "ok")
                    .depends_on(["a", "b"])
                    .trigger_rule(TriggerRule::AllDone),
            )
    };
    let first = run(&engine, &workflow("fail"));
    assert_eq!(status(&first, "b"), TaskStatus::Failed);
    assert_eq!(status(&first, "early"), TaskStatus::Completed);
    assert_eq!(status(&first, "after"), TaskStatus::Completed);
    let from_json: orch_core::WorkflowResult =
        serde_json::from_str(&first.to_json()).expect("reads back");
    // As a journal holds it after a crash while `b` ran: `b` running, `after` not begun.
    let mut records = first.tasks.records().to_vec();
    let at = |id: &str| first.tasks.index_of(id).expect("a task");
    records[at("b")].status = TaskStatus::Running;
    (records[at("b")].end_time, records[at("b")].error) = (None, None);
    records[at("after")] = orch_core::TaskRecord::default();
    let crashed = orch_core::WorkflowResult {
        tasks: orch_core::TaskRecords::for_workflow(&workflow("fail"), records).expect("records"),
        ..first.clone()
    };
    for previous in [&first, &from_json, &crashed] {
        log.lock().expect("lock").clear();
        let resumed = resume(&engine, &workflow("ok"), previous);
        assert_eq!(*log.lock().expect("lock"), ["b", "after"]);
        assert_eq!(status(&resumed, "early"), TaskStatus::Completed);
        assert_eq!(resumed.status, WorkflowStatus::Completed);
    }
}

/// A task whose rule let it start early (`one_success`) completed before a dependency of
/// it was skipped without running (`d`, skipped when its own dependency failed, later):
/// it did not run on that skip, so a resumed run keeps it. It used to run again, as a
/// skipped task has no end time to tell when it was skipped.
#[test]
fn a_resumed_run_keeps_a_task_that_completed_before_a_dependency_was_skipped() {
    let (engine, log) = engine(WorkflowEngine::builder().max_concurrent(4));
    let workflow = |f: &str| {
        Workflow::new("w", "W")
            .task(Task::new("a", "ok"))
            .task(Task::new("f", f).config(json!({"ms": 50})))
            .task(Task::new("d", "ok").depends_on(["f"]))
            .task(
                Task::new("early", "ok")
                    .depends_on(["a", "d"])
                    .trigger_rule(TriggerRule::OneSuccess),
            )
    };
    let first = run(&engine, &workflow("fail"));
    assert_eq!(status(&first, "d"), TaskStatus::Skipped);
    assert_eq!(status(&first, "early"), TaskStatus::Completed);
    log.lock().expect("lock").clear();
    let resumed = resume(&engine, &workflow("ok"), &first);
    assert_eq!(*log.lock().expect("lock"), ["f", "d"]);
    assert_eq!(status(&resumed, "early"), TaskStatus::Completed);
    assert_eq!(resumed.status, WorkflowStatus::Completed);
}

/// The same for a dependency cancelled before it started: a task whose rule let it
/// start without it (`always`) and that completed before the run was cancelled is kept.
#[test]
fn a_resumed_run_keeps_a_task_that_completed_before_a_dependency_was_cancelled() {
    let (engine, log) = engine(WorkflowEngine::builder().max_concurrent(4));
    let workflow = |b_ms: u64| {
        Workflow::new("w", "W")
            .task(Task::new("b", "ok").config(json!({"ms": b_ms})))
            .task(Task::new("d", "ok").depends_on(["b"]))
            .task(
                Task::new("notify", "ok")
                    .depends_on(["d"])
                    .trigger_rule(TriggerRule::Always),
            )
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a runtime");
    let first = runtime.block_on(async {
        let handle = engine.run(&workflow(10_000));
        let token = handle.cancellation_token();
        let seen = Arc::clone(&log);
        tokio::spawn(async move {
            while !seen.lock().expect("lock").iter().any(|t| t == "notify") {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            token.cancel();
        });
        handle.await.expect("the run starts")
    });
    assert_eq!(status(&first, "notify"), TaskStatus::Completed);
    assert_eq!(status(&first, "d"), TaskStatus::Cancelled);
    log.lock().expect("lock").clear();
    let resumed = resume(&engine, &workflow(0), &first);
    assert_eq!(*log.lock().expect("lock"), ["b", "d"]);
    assert_eq!(status(&resumed, "notify"), TaskStatus::Completed);
    assert_eq!(resumed.status, WorkflowStatus::Completed);
}

/// A task skipped as soon as another of its dependencies failed ends before its other
/// dependencies do: a task below it that runs after a skipped dependency (`all_done`)
/// may start before an ancestor above it ended. Reading that ancestor is an error that
/// says it may still be running (it said only that the ancestor did not complete).
#[test]
fn an_ancestor_above_a_task_skipped_early_may_still_be_running() {
    let (engine, _) = engine(WorkflowEngine::builder().max_concurrent(4));
    engine.register_handler("read_a", |ctx: TaskContext| async move {
        ctx.input::<String>("a")
    });
    let workflow = Workflow::new("w", "W")
        .task(Task::new("a", "ok").config(json!({"ms": 300})))
        .task(Task::new("r", "fail"))
        .task(Task::new("b", "ok").depends_on(["a", "r"]))
        .task(
            Task::new("t", "read_a")
                .depends_on(["b"])
                .trigger_rule(TriggerRule::AllDone),
        );
    let result = run(&engine, &workflow);
    assert_eq!(status(&result, "b"), TaskStatus::Skipped);
    assert_eq!(status(&result, "a"), TaskStatus::Completed);
    let t = result.task("t").expect("a record");
    let error = t.error.as_deref().unwrap_or_default();
    assert!(
        error.contains("has not finished yet (a task between the two may have been skipped"),
        "{t:?}"
    );
}

/// A task below one whose rule starts it early (`always`) may start before an ancestor
/// above that task ended: reading the ancestor then is an error saying it may still be
/// running, and a direct dependency waits for it.
#[test]
fn an_ancestor_above_a_task_that_starts_early_may_still_be_running() {
    let (engine, _) = engine(WorkflowEngine::builder().max_concurrent(4));
    engine.register_handler("read_a", |ctx: TaskContext| async move {
        ctx.input::<String>("a")
    });
    let workflow = |direct: bool| {
        let reader = Task::new("t", "read_a");
        let reader = match direct {
            true => reader.depends_on(["d", "a"]),
            false => reader.depends_on(["d"]),
        };
        Workflow::new("w", "W")
            .task(Task::new("a", "ok").config(json!({"ms": 50})))
            .task(
                Task::new("d", "ok")
                    .depends_on(["a"])
                    .trigger_rule(TriggerRule::Always),
            )
            .task(reader)
    };
    let result = run(&engine, &workflow(false));
    let t = result.task("t").expect("a record");
    assert_eq!(t.status, TaskStatus::Failed);
    let error = t.error.as_deref().unwrap_or_default();
    assert!(
        error.contains("has not finished yet")
            && error.contains("`d`, between the two, has trigger rule `always`"),
        "{error}"
    );
    let result = run(&engine, &workflow(true));
    assert_eq!(
        result.task("t").map(|t| t.result.clone()),
        Some(Some(json!("a")))
    );
    // An ancestor that failed, with no such task between (only elsewhere): it did not
    // complete, and the error says only that.
    let workflow = Workflow::new("w", "W")
        .task(Task::new("a", "fail"))
        .task(
            Task::new("t", "read_a")
                .depends_on(["a"])
                .trigger_rule(TriggerRule::AllDone),
        )
        .task(Task::new("x", "ok").trigger_rule(TriggerRule::Always));
    let result = run(&engine, &workflow);
    let t = result.task("t").expect("a record");
    assert_eq!(
        t.error.as_deref(),
        Some("`a` has no output: it did not complete in this run or the one resumed")
    );
}
