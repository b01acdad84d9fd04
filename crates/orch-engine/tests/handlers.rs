//! Handlers as application code writes them: `async fn`s returning `anyhow::Result` of a
//! typed value, `?` on any error, outputs read back typed from any ancestor, in-process
//! shared values, application state, skipping, and attempts spread over the runtime's
//! threads.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use orch_core::{Task, TaskStatus, TriggerRule, Workflow, WorkflowResult, WorkflowStatus};
use orch_engine::{Shared, TaskContext, TaskError, WorkflowEngine, inline};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

mod common;
use common::{current_thread as runtime, error_of, record};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Rows {
    count: u64,
    source: String,
}

async fn extract(ctx: TaskContext) -> anyhow::Result<Rows> {
    let count: u64 = ctx.config()["count"].to_string().parse()?;
    Ok(Rows {
        count,
        source: "db".into(),
    })
}

async fn double(ctx: TaskContext) -> anyhow::Result<u64> {
    let rows: Rows = ctx.input("extract")?;
    Ok(rows.count * 2)
}

#[test]
fn async_fns_returning_anyhow_results_of_typed_values_register_as_they_are() {
    runtime().block_on(async {
        let engine = WorkflowEngine::new();
        engine.register_handler("extract", extract);
        engine.register_handler("double", double);
        let workflow = Workflow::new("w", "W")
            .task(Task::new("extract", "extract").config(json!({"count": 21})))
            .task(Task::new("double", "double").depends_on(["extract"]))
            .task(Task::new("broken", "extract").config(json!({"count": "many"})));
        let result = engine.execute_workflow(&workflow).await.expect("valid");
        assert_eq!(
            record(&result, "extract").result,
            Some(json!({"count": 21, "source": "db"}))
        );
        assert_eq!(record(&result, "double").result, Some(json!(42)));
        // `?` on a `ParseIntError` inside an anyhow handler.
        assert_eq!(
            error_of(&result, "broken"),
            (TaskStatus::Failed, Some("invalid digit found in string"))
        );
    });
}

/// An error with a source, as libraries write them.
#[derive(Debug)]
struct LoadError(std::io::Error);

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("loading the rows")
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[test]
fn question_mark_works_on_every_error_and_the_record_keeps_the_chain() {
    runtime().block_on(async {
        let engine = WorkflowEngine::new();
        let attempts = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&attempts);
        engine.register_handler("fail", move |ctx: TaskContext| {
            counter.fetch_add(1, Ordering::SeqCst);
            async move {
                let how = ctx.config()["how"].as_str().unwrap_or_default().to_owned();
                match how.as_str() {
                    "anyhow" => {
                        Err(anyhow::anyhow!("root cause")).map_err(|e| e.context("outer"))?
                    }
                    "boxed" => Err(Box::<dyn std::error::Error + Send + Sync>::from(LoadError(
                        std::io::Error::other("disk full"),
                    )))?,
                    "string" => Err(format!("bad {how}"))?,
                    "str" => Err("bad str")?,
                    "permanent" => Err(anyhow::Error::from(TaskError::permanent("no such table"))
                        .context("querying"))?,
                    _ => {}
                }
                Ok::<_, TaskError>(())
            }
        });
        let workflow = Workflow::from_tasks(
            "w",
            "W",
            ["anyhow", "boxed", "string", "str", "permanent"].map(|how| {
                Task::new(how, "fail")
                    .config(json!({"how": how}))
                    .retries(1)
            }),
        );
        let result = engine.execute_workflow(&workflow).await.expect("valid");
        let expected = [
            ("anyhow", "outer: root cause"),
            ("boxed", "loading the rows: disk full"),
            ("string", "bad string"),
            ("str", "bad str"),
            ("permanent", "querying: no such table"),
        ];
        for (id, text) in expected {
            assert_eq!(error_of(&result, id), (TaskStatus::Failed, Some(text)));
        }
        // Four tasks retried once; the permanent one, wrapped in anyhow context, did not.
        assert_eq!(record(&result, "anyhow").attempts, 2);
        assert_eq!(record(&result, "permanent").attempts, 1);
        assert_eq!(attempts.load(Ordering::SeqCst), 9);
    });
}

/// `analyze -> compress -> store`, plus `other`, which none of them depends on.
fn chain_workflow() -> Workflow {
    Workflow::new("w", "W")
        .task(Task::new("analyze", "analyze"))
        .task(Task::new("compress", "compress").depends_on(["analyze"]))
        .task(Task::new("other", "analyze"))
        .task(Task::new("store", "store").depends_on(["compress"]))
}

#[test]
fn a_task_reads_every_ancestor_typed_and_as_json_and_nothing_else() {
    runtime().block_on(async {
        let engine = WorkflowEngine::new();
        engine.register_handler("analyze", |ctx: TaskContext| async move {
            Ok::<_, TaskError>(Rows {
                count: 7,
                source: ctx.task_id().to_string(),
            })
        });
        engine.register_handler("compress", |_ctx: TaskContext| async move {
            Ok::<_, TaskError>(json!("zipped"))
        });
        engine.register_handler("store", |ctx: TaskContext| async move {
            let analyzed: Rows = ctx.input("analyze")?;
            let compressed = ctx.input_json("compress")?.clone();
            let errors: Vec<String> = [
                ctx.input_json("other").map(|_| ()),
                ctx.input_json("store").map(|_| ()),
                ctx.input_json("nowhere").map(|_| ()),
                ctx.input::<Rows>("compress").map(|_| ()),
                ctx.shared::<Rows>("analyze").map(|_| ()),
            ]
            .into_iter()
            .map(|outcome| {
                let error = outcome.expect_err("each read is refused");
                assert!(error.is_permanent(), "{error}");
                error.to_string()
            })
            .collect();
            Ok::<_, TaskError>(
                json!({"rows": analyzed.count, "compressed": compressed, "errors": errors}),
            )
        });
        let result = engine
            .execute_workflow(&chain_workflow())
            .await
            .expect("valid");
        let stored = record(&result, "store").result.clone().expect("completed");
        assert_eq!(stored["rows"], 7);
        assert_eq!(stored["compressed"], "zipped");
        let errors: Vec<&str> = stored["errors"]
            .as_array()
            .expect("a list")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(
            errors[0],
            "task `store` read the output of `other`, which it does not depend on, directly or \
             not; a task reads only the outputs of its ancestors"
        );
        assert!(
            errors[1].contains("`store`, which it does not depend on"),
            "{}",
            errors[1]
        );
        assert_eq!(
            errors[2],
            "task `store` read the output of `nowhere`, which is not a task of workflow `w`"
        );
        assert!(
            errors[3].starts_with("the output of `compress` is not a `"),
            "{}",
            errors[3]
        );
        assert!(
            errors[4].starts_with("`analyze` returned JSON, not a shared `"),
            "{}",
            errors[4]
        );
    });
}

/// A large in-process value; not serialisable at all.
struct Model {
    weights: Vec<f32>,
}

#[test]
fn shared_values_reach_every_descendant_unserialised_and_the_record_keeps_the_summary() {
    runtime().block_on(async {
        let engine = WorkflowEngine::new();
        let made: Arc<Mutex<Option<Arc<Model>>>> = Arc::default();
        let keep = Arc::clone(&made);
        engine.register_handler("analyze", move |ctx: TaskContext| {
            let keep = Arc::clone(&keep);
            async move {
                let model = Arc::new(Model {
                    weights: vec![0.5; 1000],
                });
                if ctx.task_id() == "analyze" {
                    *keep.lock().expect("lock") = Some(Arc::clone(&model));
                }
                Ok::<_, TaskError>(Shared::from_arc(model).summary(json!({"weights": 1000})))
            }
        });
        engine.register_handler("compress", |ctx: TaskContext| async move {
            Ok::<_, TaskError>(ctx.shared::<Model>("analyze")?.weights.len())
        });
        let seen: Arc<Mutex<Option<Arc<Model>>>> = Arc::default();
        let found = Arc::clone(&seen);
        engine.register_handler("store", move |ctx: TaskContext| {
            let found = Arc::clone(&found);
            async move {
                // Two levels down; the summary is the JSON view.
                let model = ctx.shared::<Model>("analyze")?;
                let summary = ctx.input_json("analyze")?.clone();
                let wrong = ctx.shared::<String>("analyze").expect_err("a Model");
                *found.lock().expect("lock") = Some(model);
                Ok::<_, TaskError>(json!({"summary": summary, "wrong": wrong.to_string()}))
            }
        });
        let result = engine
            .execute_workflow(&chain_workflow())
            .await
            .expect("valid");
        assert_eq!(result.status, WorkflowStatus::Completed);
        let made = made.lock().expect("lock").take().expect("analyze ran");
        let seen = seen.lock().expect("lock").take().expect("store ran");
        assert!(Arc::ptr_eq(&made, &seen), "the same value, not a copy");
        let analyze = record(&result, "analyze");
        assert_eq!(analyze.result, Some(json!({"weights": 1000})));
        assert!(analyze.shared_output);
        assert!(!record(&result, "compress").shared_output);
        assert_eq!(record(&result, "compress").result, Some(json!(1000)));
        let stored = record(&result, "store").result.clone().expect("completed");
        assert_eq!(stored["summary"], json!({"weights": 1000}));
        assert_eq!(
            stored["wrong"],
            "`analyze` shared a `handlers::Model`, not a `alloc::string::String`"
        );
        let json = result.to_json();
        assert!(json.contains(r#""shared_output":true"#), "{json}");
    });
}

/// Registers `load`, which shares a 3-byte value after `delay` (its runs counted in the
/// first counter returned), and `use`, which gives the value's length and fails for
/// every task but `passes` until the second counter returned is set.
fn load_and_use_shared(
    engine: &WorkflowEngine,
    delay: Duration,
    passes: &'static str,
) -> (Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let loads = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&loads);
    engine.register_handler("load", move |_ctx: TaskContext| {
        counter.fetch_add(1, Ordering::SeqCst);
        async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Ok::<_, TaskError>(Shared::new(vec![1u8, 2, 3]))
        }
    });
    let healthy = Arc::new(AtomicUsize::new(0));
    let flag = Arc::clone(&healthy);
    engine.register_handler("use", move |ctx: TaskContext| {
        let ok = flag.load(Ordering::SeqCst) > 0 || ctx.task_id() == passes;
        async move {
            if !ok {
                return Err(TaskError::new("not yet"));
            }
            Ok::<_, TaskError>(ctx.shared::<Vec<u8>>("load")?.len())
        }
    });
    (loads, healthy)
}

/// A result read back from its JSON is the result the run returned: its times are whole
/// microseconds, as JSON writes them (they were nanoseconds, so the durations it wrote
/// disagreed with its times, and reading it back gave another result).
#[test]
fn a_result_reads_back_from_its_json_as_it_was_returned() {
    runtime().block_on(async {
        let engine = WorkflowEngine::new();
        engine.register_handler("work", |ctx: TaskContext| async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            Ok::<_, TaskError>(ctx.task_id().to_string())
        });
        let workflow = Workflow::new("w", "W")
            .task(Task::new("a", "work"))
            .task(Task::new("b", "work").depends_on(["a"]));
        for _ in 0..20 {
            let result = engine.execute_workflow(&workflow).await.expect("valid");
            let read: WorkflowResult = serde_json::from_str(&result.to_json()).expect("JSON");
            assert_eq!(read, result);
            assert_eq!(read.metrics_with(&workflow), result.metrics());
        }
    });
}

#[test]
fn resuming_runs_a_shared_output_again_only_for_a_task_that_runs_and_needs_it() {
    runtime().block_on(async {
        let engine = WorkflowEngine::new();
        let (loads, healthy) = load_and_use_shared(&engine, Duration::ZERO, "early");
        // `early` completes in the first run; `late` fails there.
        let workflow = Workflow::new("w", "W")
            .task(Task::new("load", "load"))
            .task(Task::new("early", "use").depends_on(["load"]))
            .task(Task::new("late", "use").depends_on(["early"]));
        let first = engine.execute_workflow(&workflow).await.expect("valid");
        assert_eq!(first.status, WorkflowStatus::Failed);
        // Through JSON, as a resumed run usually gets its previous result.
        let first: WorkflowResult = serde_json::from_str(&first.to_json()).expect("round trip");
        healthy.store(1, Ordering::SeqCst);
        let second = engine.resume(&workflow, &first).await.expect("valid");
        assert_eq!(second.status, WorkflowStatus::Completed);
        assert_eq!(record(&second, "late").result, Some(json!(3)));
        assert_eq!(
            loads.load(Ordering::SeqCst),
            2,
            "`late` needed the value again"
        );
        // `early`, between them, ran again too: kept, it would have let `late` start
        // before `load` ran again.
        assert_eq!(record(&second, "early").attempts, 2, "`early` ran again");

        // Nothing left to run needs it: it is kept.
        let third = engine.resume(&workflow, &second).await.expect("valid");
        assert_eq!(third.status, WorkflowStatus::Completed);
        assert_eq!(loads.load(Ordering::SeqCst), 2);
    });
}

/// Registers `ok`, which completes with `1`.
fn register_ok(engine: &WorkflowEngine) {
    engine.register_handler("ok", |_ctx: TaskContext| async move {
        Ok::<_, TaskError>(json!(1))
    });
}

/// `previous` without the outcomes of tasks `ids` (pending again), as a journal has a run
/// whose process died before it recorded them.
fn forget<const N: usize>(workflow: &Workflow, previous: &mut WorkflowResult, ids: [&str; N]) {
    let mut records = previous.tasks.records().to_vec();
    for id in ids {
        records[workflow.index_of(id).expect("a task")] = orch_core::TaskRecord::default();
    }
    previous.tasks = orch_core::TaskRecords::for_workflow(workflow, records).expect("same tasks");
}

/// A dependent that a kept skip skips at once (its rule waits for every dependency to
/// complete) runs nothing, so the shared output it would have read is not made again.
#[test]
fn resuming_makes_no_shared_output_again_for_a_task_a_kept_skip_skips() {
    // `r` skips on one skipped dependency either way; with `all_failed` the workflow has
    // rules, which decide skips another way.
    for rule in [TriggerRule::AllSuccess, TriggerRule::AllFailed] {
        runtime().block_on(async {
            let engine = WorkflowEngine::new();
            let (loads, _) = load_and_use_shared(&engine, Duration::ZERO, "t");
            engine.register_handler("route", |ctx: TaskContext| async move {
                ctx.choose_branches(["x"])?;
                Ok::<_, TaskError>(json!("x"))
            });
            register_ok(&engine);
            let workflow = Workflow::new("w", "W")
                .task(Task::new("route", "route"))
                .task(Task::new("x", "ok").depends_on(["route"]))
                .task(Task::new("k", "ok").depends_on(["route"]))
                .task(Task::new("load", "load"))
                .task(Task::new("t", "use").depends_on(["load"]))
                .task(
                    Task::new("r", "ok")
                        .depends_on(["k", "t"])
                        .trigger_rule(rule),
                );
            let mut previous = engine.execute_workflow(&workflow).await.expect("valid");
            assert_eq!(record(&previous, "r").status, TaskStatus::Skipped);
            // As a journal has it when the process died while `x` ran: `k`'s skip was
            // written at once, `r`'s was to be written at the run's end.
            forget(&workflow, &mut previous, ["x", "r"]);
            let resumed = engine.resume(&workflow, &previous).await.expect("valid");
            assert_eq!(resumed.status, WorkflowStatus::Completed, "{rule:?}");
            assert_eq!(record(&resumed, "r").status, TaskStatus::Skipped);
            assert_eq!(record(&resumed, "x").status, TaskStatus::Completed);
            assert_eq!(
                loads.load(Ordering::SeqCst),
                1,
                "`load` ran again: {rule:?}"
            );
            assert_eq!(record(&resumed, "t").attempts, 1, "`t` ran again: {rule:?}");
        });
    }
}

/// A skip that a shared value run again may undo is no reason to think its dependents
/// skipped: `k` (`one_failed` on shared `s`) runs this time, as `s` fails, and so does
/// `r` after it, which reads shared `s2`: made again for it, not left missing.
#[test]
fn a_kept_skip_a_shared_value_may_undo_leaves_its_dependents_their_shared_values() {
    runtime().block_on(async {
        let engine = WorkflowEngine::new();
        let second_run = Arc::new(AtomicUsize::new(0));
        let flag = Arc::clone(&second_run);
        engine.register_handler("flaky_share", move |_ctx: TaskContext| {
            let failing = flag.load(Ordering::SeqCst) > 0;
            async move {
                if failing {
                    return Err(TaskError::permanent("broken now"));
                }
                Ok::<_, TaskError>(Shared::new(1u32))
            }
        });
        engine.register_handler("share", |_ctx: TaskContext| async move {
            Ok::<_, TaskError>(Shared::new(5u32))
        });
        engine.register_handler("read", |ctx: TaskContext| async move {
            Ok::<_, TaskError>(*ctx.shared::<u32>("s2")?)
        });
        register_ok(&engine);
        let workflow = Workflow::new("w", "W")
            .task(Task::new("s", "flaky_share"))
            .task(
                Task::new("k", "ok")
                    .depends_on(["s"])
                    .trigger_rule(TriggerRule::OneFailed),
            )
            .task(
                Task::new("z", "ok")
                    .depends_on(["k"])
                    .trigger_rule(TriggerRule::AllDone),
            )
            .task(Task::new("s2", "share"))
            .task(Task::new("t", "read").depends_on(["s2"]))
            .task(Task::new("r", "read").depends_on(["k", "t"]));
        let mut previous = engine.execute_workflow(&workflow).await.expect("valid");
        assert_eq!(record(&previous, "k").status, TaskStatus::Skipped);
        // As a journal has it when the process died before `z` ended and `r`'s skip
        // was written.
        forget(&workflow, &mut previous, ["z", "r"]);
        second_run.store(1, Ordering::SeqCst);
        let resumed = engine.resume(&workflow, &previous).await.expect("valid");
        assert_eq!(record(&resumed, "k").status, TaskStatus::Completed);
        let r = record(&resumed, "r");
        assert_eq!(
            (r.status, &r.result),
            (TaskStatus::Completed, &Some(json!(5))),
            "{:?}",
            r.error
        );
    });
}

/// A completion that stands is no skip, even when a dependency the workflow gained since
/// is a kept skip: `j`, made to run again for `i` that reads its shared value, is then
/// skipped, and `i` with it (not left to read a value that is not there).
#[test]
fn a_shared_completion_that_gained_a_skipped_dependency_is_made_again_for_its_reader() {
    runtime().block_on(async {
        let engine = WorkflowEngine::new();
        let healthy = Arc::new(AtomicUsize::new(0));
        let flag = Arc::clone(&healthy);
        engine.register_handler("share", |_ctx: TaskContext| async move {
            Ok::<_, TaskError>(Shared::new(7u32))
        });
        engine.register_handler("read", move |ctx: TaskContext| {
            let ok = flag.load(Ordering::SeqCst) > 0;
            async move {
                if !ok {
                    return Err(TaskError::new("not yet"));
                }
                Ok::<_, TaskError>(*ctx.shared::<u32>("j")?)
            }
        });
        register_ok(&engine);
        let with_j_after = |j_after: &[&str]| {
            Workflow::new("w", "W")
                .task(Task::new("a", "ok"))
                .task(
                    Task::new("d", "ok")
                        .depends_on(["a"])
                        .trigger_rule(TriggerRule::AllFailed),
                )
                .task(Task::new("j", "share").depends_on(j_after.to_vec()))
                .task(Task::new("i", "read").depends_on(["j"]))
        };
        let first = engine
            .execute_workflow(&with_j_after(&["a"]))
            .await
            .expect("valid");
        assert_eq!(record(&first, "d").status, TaskStatus::Skipped);
        healthy.store(1, Ordering::SeqCst);
        let changed = with_j_after(&["a", "d"]);
        let resumed = engine.resume(&changed, &first).await.expect("valid");
        let i = record(&resumed, "i");
        assert_eq!(i.status, TaskStatus::Skipped, "{:?}", i.error);
        assert_eq!(record(&resumed, "j").status, TaskStatus::Skipped);
    });
}

/// A task run again on resume for its shared output runs before any task that reads it,
/// even through a task whose record was kept between them.
#[test]
fn a_resumed_task_waits_for_a_shared_output_run_again_behind_a_kept_task() {
    runtime().block_on(async {
        let engine = WorkflowEngine::builder()
            .max_concurrent(2)
            .build()
            .expect("valid");
        let (_, healthy) = load_and_use_shared(&engine, Duration::from_millis(20), "mid");
        // `mid` completes in the first run; `late` fails there.
        let workflow = Workflow::new("w", "W")
            .task(Task::new("load", "load"))
            .task(Task::new("mid", "use").depends_on(["load"]))
            .task(Task::new("late", "use").depends_on(["mid"]));
        let first = engine.execute_workflow(&workflow).await.expect("valid");
        assert_eq!(first.status, WorkflowStatus::Failed);
        healthy.store(1, Ordering::SeqCst);
        let second = engine.resume(&workflow, &first).await.expect("valid");
        assert_eq!(
            record(&second, "late").result,
            Some(json!(3)),
            "{:?}",
            record(&second, "late").error
        );
        assert_eq!(second.status, WorkflowStatus::Completed);
    });
}

struct Pool {
    name: &'static str,
}

#[test]
fn a_handler_sees_the_id_of_the_run_it_belongs_to() {
    runtime().block_on(async {
        let engine = WorkflowEngine::new();
        engine.register_handler("id", |ctx: TaskContext| async move {
            Ok::<_, TaskError>(ctx.run_id().as_str().to_owned())
        });
        let workflow = Workflow::new("w", "W").task(Task::new("a", "id"));
        let result = engine.execute_workflow(&workflow).await.expect("valid");
        assert_eq!(
            record(&result, "a").result,
            Some(json!(result.run_id.as_str()))
        );
        let run_id = orch_core::RunId::parse("given-id").expect("a valid id");
        let result = engine.run_with_id(&workflow, run_id).await.expect("valid");
        assert_eq!(record(&result, "a").result, Some(json!("given-id")));
    });
}

#[test]
fn handlers_read_the_engines_state_by_type() {
    runtime().block_on(async {
        let engine = WorkflowEngine::builder()
            .state(Pool { name: "main" })
            .state(42u32)
            .build()
            .expect("valid");
        engine.register_handler("q", |ctx: TaskContext| async move {
            let pool = ctx.state::<Pool>()?;
            let limit = ctx.state::<u32>()?;
            Ok::<_, TaskError>(format!("{} {limit}", pool.name))
        });
        engine.register_handler("missing", |ctx: TaskContext| async move {
            ctx.state::<String>()?;
            Ok::<_, TaskError>(())
        });
        let workflow = Workflow::new("w", "W")
            .task(Task::new("q", "q"))
            .task(Task::new("m", "missing").retries(2));
        let result = engine.execute_workflow(&workflow).await.expect("valid");
        assert_eq!(record(&result, "q").result, Some(json!("main 42")));
        assert_eq!(
            error_of(&result, "m"),
            (
                TaskStatus::Failed,
                Some(
                    "the engine has no state of type `alloc::string::String` (give it with \
                     `EngineBuilder::state`)"
                )
            )
        );
        assert_eq!(
            record(&result, "m").attempts,
            1,
            "a missing state is permanent"
        );
    });
}

#[test]
fn a_skip_ends_the_task_and_its_descendants_without_failing_the_workflow() {
    runtime().block_on(async {
        let engine = WorkflowEngine::new();
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&calls);
        engine.register_handler("gate", move |ctx: TaskContext| {
            counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if ctx.config()["open"] != true {
                    // Through anyhow, as application code often does.
                    Err(anyhow::Error::from(TaskError::skip("the gate is closed")))?;
                }
                Ok::<_, anyhow::Error>("through")
            }
        });
        engine.register_handler(
            "ok",
            |_ctx: TaskContext| async move { Ok::<_, TaskError>(()) },
        );
        let workflow = Workflow::new("w", "W")
            .task(Task::new("closed", "gate").retries(3))
            .task(Task::new("after", "ok").depends_on(["closed"]))
            .task(Task::new("later", "ok").depends_on(["after"]))
            .task(Task::new("open", "gate").config(json!({"open": true})))
            .task(Task::new("beside", "ok").depends_on(["open"]));
        let result = engine.execute_workflow(&workflow).await.expect("valid");
        assert_eq!(result.status, WorkflowStatus::Completed);
        assert_eq!(
            error_of(&result, "closed"),
            (TaskStatus::Skipped, Some("the gate is closed"))
        );
        assert_eq!(
            record(&result, "closed").attempts,
            1,
            "a skip is not retried"
        );
        for id in ["after", "later"] {
            assert_eq!(
                error_of(&result, id),
                (TaskStatus::Skipped, Some("dependency `closed` was skipped"))
            );
        }
        assert_eq!(record(&result, "beside").status, TaskStatus::Completed);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    });
}

#[test]
fn a_skip_beside_a_failure_leaves_the_workflow_failed() {
    runtime().block_on(async {
        let engine = WorkflowEngine::new();
        engine.register_handler("skip", |_ctx: TaskContext| async move {
            Err::<(), _>(TaskError::skip("not today"))
        });
        engine.register_handler("fail", |_ctx: TaskContext| async move {
            Err::<(), _>(TaskError::new("broken"))
        });
        let workflow = Workflow::new("w", "W")
            .task(Task::new("s", "skip"))
            .task(Task::new("f", "fail"));
        let result = engine.execute_workflow(&workflow).await.expect("valid");
        assert_eq!(result.status, WorkflowStatus::Failed);
        assert_eq!(record(&result, "s").status, TaskStatus::Skipped);
    });
}

/// Busy-waits (no await, as CPU-bound code does) until `arrived` reaches `expected`;
/// whether it did before `patience` ran out. The wait is a bound on a failing run, not a
/// measure of speed.
fn spin_until_all_arrive(arrived: &AtomicUsize, expected: usize, patience: Duration) -> bool {
    arrived.fetch_add(1, Ordering::SeqCst);
    let start = Instant::now();
    while arrived.load(Ordering::SeqCst) < expected {
        if start.elapsed() > patience {
            return false;
        }
        std::hint::spin_loop();
    }
    true
}

#[test]
fn cpu_bound_handlers_run_at_the_same_time_on_two_threads_of_a_two_worker_runtime() {
    let runtime = common::two_workers();
    let arrived = Arc::new(AtomicUsize::new(0));
    let threads: Arc<Mutex<Vec<ThreadId>>> = Arc::default();
    let engine = WorkflowEngine::with_max_concurrent(2).expect("valid");
    let (a, t) = (Arc::clone(&arrived), Arc::clone(&threads));
    engine.register_handler("busy", move |_ctx: TaskContext| {
        let (arrived, threads) = (Arc::clone(&a), Arc::clone(&t));
        async move {
            threads
                .lock()
                .expect("lock")
                .push(std::thread::current().id());
            // Each sees the other arrive while it is still busy: their busy spells overlap.
            let overlapped = spin_until_all_arrive(&arrived, 2, Duration::from_secs(5));
            Ok::<_, TaskError>(overlapped)
        }
    });
    let workflow = Workflow::new("w", "W")
        .task(Task::new("a", "busy"))
        .task(Task::new("b", "busy"));
    let result = runtime
        .block_on(engine.execute_workflow(&workflow))
        .expect("valid");
    for id in ["a", "b"] {
        assert_eq!(record(&result, id).result, Some(json!(true)), "task {id}");
    }
    let threads = threads.lock().expect("lock");
    assert_eq!(threads.len(), 2);
    assert_ne!(threads[0], threads[1]);
}

#[test]
fn an_inline_handler_runs_on_the_runs_own_thread_and_others_on_workers() {
    let runtime = common::two_workers();
    let engine = WorkflowEngine::new();
    let thread_of = |ctx: TaskContext| async move {
        let _ = ctx;
        Ok::<_, TaskError>(format!("{:?}", std::thread::current().id()))
    };
    engine.register_handler("inline", inline(thread_of));
    engine.register_handler("spawned", thread_of);
    let workflow = Workflow::new("w", "W")
        .task(Task::new("i", "inline"))
        .task(Task::new("s", "spawned"));
    // `block_on` polls the run on this thread.
    let here = format!("{:?}", std::thread::current().id());
    let result = runtime
        .block_on(engine.execute_workflow(&workflow))
        .expect("valid");
    assert_eq!(record(&result, "i").result, Some(json!(here)));
    assert_ne!(record(&result, "s").result, Some(json!(here)));
}

/// A handler can tell whether its attempt may have run before, in the earlier run this
/// one resumes (to ask another system whether it already finished there): not in a new
/// run, nor for a task the earlier run ended (here skipped); yes for one it left pending,
/// unless what its dependencies recorded could not have started it.
#[test]
fn a_handler_knows_whether_its_run_was_resumed() {
    let engine = WorkflowEngine::new();
    engine.register_handler("seen", |ctx: TaskContext| async move {
        Ok::<_, TaskError>(ctx.resumed())
    });
    engine.register_handler("fails", |_ctx: TaskContext| async move {
        Err::<(), _>(TaskError::permanent("not yet"))
    });
    let workflow = Workflow::new("w", "W")
        .task(Task::new("first", "seen"))
        .task(Task::new("gate", "fails"))
        .task(Task::new("later", "seen").depends_on(["gate"]));
    let first = runtime()
        .block_on(engine.execute_workflow(&workflow))
        .expect("runs");
    assert_eq!(record(&first, "first").result, Some(json!(false)));
    engine.register_handler("fails", |_ctx: TaskContext| async move {
        Ok::<_, TaskError>(())
    });
    let resumed = runtime()
        .block_on(engine.resume(&workflow, &first))
        .expect("resumes");
    assert_eq!(record(&resumed, "later").result, Some(json!(false)));
    let mut cut_short = first.clone();
    cut_short.tasks = orch_core::TaskRecords::for_workflow(
        &workflow,
        ["first", "gate", "later"]
            .map(|id| match id {
                "first" | "later" => orch_core::TaskRecord::default(),
                id => record(&first, id).clone(),
            })
            .to_vec(),
    )
    .expect("one record per task");
    let resumed = runtime()
        .block_on(engine.resume(&workflow, &cut_short))
        .expect("resumes");
    // `first` may have been under way; `later` cannot have started on `gate`'s failure.
    assert_eq!(record(&resumed, "first").result, Some(json!(true)));
    assert_eq!(record(&resumed, "later").result, Some(json!(false)));
}
