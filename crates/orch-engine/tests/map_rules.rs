//! Map tasks with the other scheduling rules: the instances of a map task in a pool hold
//! slots of that pool, and the dependents of a map task follow their trigger rules on its
//! status, seeing which instances failed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use orch_core::{Task, TaskStatus, TriggerRule, Workflow, WorkflowResult, WorkflowStatus};
use orch_engine::{TaskContext, TaskError, WorkflowEngine};
use proptest::prelude::*;
use serde_json::{Value, json};

mod common;

fn run(engine: &WorkflowEngine, workflow: &Workflow) -> WorkflowResult {
    common::paused_runtime()
        .block_on(engine.execute_workflow(workflow))
        .expect("the run starts")
}

/// How many handlers run at once, in all and per pool (the pool named in a task's config),
/// and the most seen.
#[derive(Default)]
struct Busy {
    now: HashMap<String, usize>,
    most: HashMap<String, usize>,
}

impl Busy {
    fn enter(&mut self, pool: &str) {
        for key in ["", pool] {
            let now = self.now.entry(key.to_owned()).or_default();
            *now += 1;
            let most = self.most.entry(key.to_owned()).or_default();
            *most = (*most).max(*now);
        }
    }

    fn leave(&mut self, pool: &str) {
        for key in ["", pool] {
            *self.now.entry(key.to_owned()).or_default() -= 1;
        }
    }

    fn most(&self, pool: &str) -> usize {
        self.most.get(pool).copied().unwrap_or_default()
    }
}

/// An engine with pools `a` and `b`: `list` tasks return their config's `items`; `work`
/// tasks (and map instances) sleep their config's `ms` and return their element, noting
/// in `busy` how many run at once.
fn engine(max_concurrent: usize, a: usize, b: usize) -> (WorkflowEngine, Arc<Mutex<Busy>>) {
    let engine = WorkflowEngine::builder()
        .max_concurrent(max_concurrent)
        .pool("a", a)
        .pool("b", b)
        .build()
        .expect("valid settings");
    let busy = Arc::new(Mutex::new(Busy::default()));
    engine.register_handler("list", |ctx: TaskContext| async move {
        Ok::<_, TaskError>(ctx.config()["items"].clone())
    });
    let seen = Arc::clone(&busy);
    engine.register_handler("work", move |ctx: TaskContext| {
        let busy = Arc::clone(&seen);
        async move {
            let pool = ctx.config()["pool"].as_str().unwrap_or("none").to_owned();
            busy.lock().expect("lock").enter(&pool);
            let ms = ctx.config()["ms"].as_u64().unwrap_or(1);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            busy.lock().expect("lock").leave(&pool);
            Ok::<_, TaskError>(ctx.item().cloned().unwrap_or(Value::Null))
        }
    });
    (engine, busy)
}

fn in_pool(task: Task, pool: Option<&str>, ms: u64) -> Task {
    let task = task.config(json!({"pool": pool.unwrap_or("none"), "ms": ms}));
    match pool {
        Some(pool) => task.pool(pool),
        None => task,
    }
}

#[test]
fn a_pool_of_one_runs_a_maps_instances_one_at_a_time() {
    let (engine, busy) = engine(4, 1, 3);
    let workflow = Workflow::new("w", "")
        .task(Task::new("list", "list").config(json!({"items": [1, 2, 3, 4]})))
        .task(in_pool(
            Task::new("m", "work").map_over("list"),
            Some("a"),
            10,
        ));
    let result = run(&engine, &workflow);
    assert_eq!(result.status, WorkflowStatus::Completed);
    assert_eq!(
        result.task("m").and_then(|r| r.result.clone()),
        Some(json!([1, 2, 3, 4]))
    );
    assert_eq!(busy.lock().expect("lock").most("a"), 1);
}

#[test]
fn map_instances_share_their_pool_with_the_pools_other_tasks() {
    // Pool `b` holds 2: a plain task of `b` runs beside one instance at a time.
    let (engine, busy) = engine(8, 1, 2);
    let workflow = Workflow::new("w", "")
        .task(Task::new("list", "list").config(json!({"items": [1, 2, 3]})))
        .task(in_pool(
            Task::new("m", "work").map_over("list"),
            Some("b"),
            10,
        ))
        .task(in_pool(Task::new("other", "work"), Some("b"), 25));
    let result = run(&engine, &workflow);
    assert_eq!(result.status, WorkflowStatus::Completed);
    assert_eq!(busy.lock().expect("lock").most("b"), 2);
}

/// A map over `[1, 2, 3, 4, 5]` whose instance for 3 fails, run one instance at a time,
/// with dependents of several rules; `report` returns the list it read.
fn failing_map() -> (WorkflowEngine, Workflow) {
    let (engine, _) = engine(1, 1, 1);
    engine.register_handler("odd_three", |ctx: TaskContext| async move {
        let x: i64 = ctx.map_item()?;
        match x {
            3 => Err(TaskError::permanent("three is not allowed")),
            _ => Ok(x * 10),
        }
    });
    engine.register_handler("report", |ctx: TaskContext| async move {
        Ok::<_, TaskError>(ctx.input_json("m")?.clone())
    });
    let workflow = Workflow::new("w", "")
        .task(Task::new("list", "list").config(json!({"items": [1, 2, 3, 4, 5]})))
        .task(Task::new("m", "odd_three").map_over("list"))
        .task(Task::new("sum", "report").depends_on(["m"]))
        .task(
            Task::new("report", "report")
                .depends_on(["m"])
                .trigger_rule(TriggerRule::AllDone),
        );
    (engine, workflow)
}

#[test]
fn an_all_done_dependent_of_a_map_with_a_failed_instance_runs_and_sees_which_failed() {
    let (engine, workflow) = failing_map();
    let result = run(&engine, &workflow);
    let status = |id: &str| result.task(id).map(|r| r.status);
    assert_eq!(status("m"), Some(TaskStatus::Failed));
    assert_eq!(status("m[2]"), Some(TaskStatus::Failed));
    assert_eq!(status("m[3]"), Some(TaskStatus::Skipped));
    // The default rule skips on the map's failure; `all_done` runs and reads the list,
    // `null` where the instance failed (m[2]) or never started (m[3], m[4]).
    assert_eq!(status("sum"), Some(TaskStatus::Skipped));
    assert_eq!(status("report"), Some(TaskStatus::Completed));
    assert_eq!(
        result.task("report").and_then(|r| r.result.clone()),
        Some(json!([10, 20, null, null, null]))
    );
    // The failed map's own record keeps no result, as any failed task's.
    assert_eq!(result.task("m").and_then(|r| r.result.clone()), None);
    assert_eq!(result.status, WorkflowStatus::Failed);
}

/// A map task whose rule runs it although the list it maps over did not come is skipped,
/// saying why: it neither fails the run nor waits. It is skipped without running (no
/// start, no attempt), as a rule's skip is: a resume keeps it while its list's outcome
/// stands.
#[test]
fn a_map_whose_list_did_not_come_is_skipped_not_failed() {
    for (list_ends, rule, run_status) in [
        ("skip", TriggerRule::NoneFailed, WorkflowStatus::Completed),
        ("fail", TriggerRule::AllDone, WorkflowStatus::Failed),
    ] {
        let (engine, _) = engine(4, 1, 1);
        engine.register_handler("skip", |_ctx: TaskContext| async move {
            Err::<Value, _>(TaskError::skip("nothing new today"))
        });
        engine.register_handler("fail", |_ctx: TaskContext| async move {
            Err::<Value, _>(TaskError::permanent("the source is down"))
        });
        let workflow = Workflow::new("w", "")
            .task(Task::new("list", list_ends))
            .task(Task::new("m", "work").map_over("list").trigger_rule(rule))
            .task(Task::new("after", "work").depends_on(["m"]));
        let result = run(&engine, &workflow);
        let m = result.task("m").expect("the map's record");
        assert_eq!(m.status, TaskStatus::Skipped, "{list_ends}");
        let expected = match list_ends {
            "skip" => "no list to map over: `list` did not complete (skipped)",
            _ => "no list to map over: `list` did not complete (failed)",
        };
        assert_eq!(m.error.as_deref(), Some(expected));
        assert_eq!((m.start_time, m.attempts), (None, 0), "{list_ends}");
        let after = result.task("after").expect("after's record");
        assert_eq!(after.status, TaskStatus::Skipped);
        // Its skip names the failure behind the map's, as after any rule's skip.
        let behind = match list_ends {
            "skip" => "dependency `m` was skipped (trigger rule `all_success`)",
            _ => "dependency `m` was skipped after `list` failed (trigger rule `all_success`)",
        };
        assert_eq!(after.error.as_deref(), Some(behind), "{list_ends}");
        assert_eq!(result.status, run_status, "{list_ends}");
    }
}

/// A resume keeps a map skipped for want of its list, and what ran on that skip, while
/// the list's outcome stands: only the failed task runs again.
#[test]
fn a_resume_keeps_a_map_skipped_for_want_of_its_list() {
    let ran = Arc::new(Mutex::new(Vec::new()));
    let engine = |fail: bool| {
        let engine = WorkflowEngine::new();
        let noted = Arc::clone(&ran);
        engine.register_handler("note", move |ctx: TaskContext| {
            noted.lock().expect("lock").push(ctx.task_id().to_string());
            let failed = fail && ctx.task_id().as_str() == "other";
            async move {
                match failed {
                    true => Err(TaskError::new("down")),
                    false => Ok(Value::Null),
                }
            }
        });
        engine
    };
    let workflow = Workflow::new("w", "")
        .task(Task::new("check", "note"))
        .task(
            Task::new("alerts", "note")
                .depends_on(["check"])
                .trigger_rule(TriggerRule::OneFailed),
        )
        .task(
            Task::new("notify", "note")
                .map_over("alerts")
                .trigger_rule(TriggerRule::NoneFailed),
        )
        .task(
            Task::new("report", "note")
                .depends_on(["notify"])
                .trigger_rule(TriggerRule::NoneFailed),
        )
        .task(Task::new("other", "note"));
    let first = run(&engine(true), &workflow);
    assert_eq!(first.status, WorkflowStatus::Failed);
    let runtime = common::paused_runtime();
    let resumed = runtime.block_on(engine(false).resume(&workflow, &first));
    assert_eq!(resumed.expect("resumed").status, WorkflowStatus::Completed);
    let ran = ran.lock().expect("lock").clone();
    assert_eq!(
        ran.iter().filter(|id| *id == "report").count(),
        1,
        "{ran:?}"
    );
    assert_eq!(ran.iter().filter(|id| *id == "other").count(), 2, "{ran:?}");
}

/// A rule that may start a task before all its dependencies ended cannot be a map task's.
#[test]
fn a_map_task_with_a_rule_that_does_not_wait_for_its_list_is_refused() {
    for rule in [
        TriggerRule::OneSuccess,
        TriggerRule::OneFailed,
        TriggerRule::Always,
    ] {
        let workflow = Workflow::new("w", "")
            .task(Task::new("list", "list"))
            .task(Task::new("m", "work").map_over("list").trigger_rule(rule));
        let error = workflow.validate().expect_err("refused").to_string();
        assert!(
            error.contains("task `m`") && error.contains("trigger_rule"),
            "{error}"
        );
        assert!(
            error.contains(&format!(
                "`{}` may start a map task before `list`",
                rule.as_str()
            )),
            "{error}"
        );
    }
}

/// One task of the random workflows below: a map over `list` or a plain task, in pool
/// `a`, `b` or none, sleeping some milliseconds.
#[derive(Clone, Debug)]
struct Spec {
    map: bool,
    pool: usize,
    ms: u64,
}

fn spec() -> impl Strategy<Value = Spec> {
    (any::<bool>(), 0usize..3, 1u64..6).prop_map(|(map, pool, ms)| Spec { map, pool, ms })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// For random mixes of map tasks and plain tasks in pools, no pool and not the global
    /// limit is ever exceeded, counting each map instance, and every task completes.
    #[test]
    fn no_pool_exceeds_its_limit_with_map_instances(
        specs in proptest::collection::vec(spec(), 1..6),
        items in 0usize..7,
        limits in (1usize..4, 1usize..4),
        max_concurrent in 1usize..6,
    ) {
        let (engine, busy) = engine(max_concurrent, limits.0, limits.1);
        let mut workflow = Workflow::new("w", "")
            .task(Task::new("list", "list").config(json!({"items": (0..items).collect::<Vec<_>>()})));
        for (i, spec) in specs.iter().enumerate() {
            let mut task = Task::new(format!("t{i}"), "work");
            if spec.map {
                task = task.map_over("list");
            }
            workflow = workflow.task(in_pool(task, [None, Some("a"), Some("b")][spec.pool], spec.ms));
        }
        let result = run(&engine, &workflow);
        prop_assert_eq!(result.status, WorkflowStatus::Completed);
        let busy = busy.lock().expect("lock");
        prop_assert!(busy.most("a") <= limits.0, "pool a: {} > {}", busy.most("a"), limits.0);
        prop_assert!(busy.most("b") <= limits.1, "pool b: {} > {}", busy.most("b"), limits.1);
        prop_assert!(busy.most("") <= max_concurrent);
        prop_assert!(result.tasks.iter().all(|(_, r)| r.status == TaskStatus::Completed));
    }
}
