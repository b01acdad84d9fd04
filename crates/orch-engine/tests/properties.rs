//! Property tests over random DAGs with random failing tasks: skips are exactly the failed
//! tasks' descendants, no task starts before its dependencies complete, and concurrency
//! never exceeds the limit (and reaches it when there is work for it).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use orch_core::{Task, TaskStatus, Workflow, WorkflowResult};
use orch_engine::{TaskContext, TaskError, WorkflowEngine};
use proptest::prelude::*;
use serde_json::{Value, json};

#[derive(Clone, Debug)]
struct Case {
    deps: Vec<Vec<usize>>,
    failing: Vec<bool>,
    max_concurrent: usize,
}

fn case() -> impl Strategy<Value = Case> {
    (1usize..30, 1usize..6)
        .prop_flat_map(|(n, max_concurrent)| {
            let deps = (0..n)
                .map(|i| proptest::sample::subsequence((0..i).collect::<Vec<_>>(), 0..=i.min(3)))
                .collect::<Vec<_>>();
            let failing = proptest::collection::vec(proptest::bool::weighted(0.2), n);
            (deps, failing, Just(max_concurrent))
        })
        .prop_map(|(deps, failing, max_concurrent)| Case {
            deps,
            failing,
            max_concurrent,
        })
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Event {
    Start(usize),
    End(usize),
}

#[derive(Default)]
struct Log {
    events: Vec<Event>,
    running: usize,
    peak: usize,
}

fn index(id: &str) -> usize {
    id[1..].parse().expect("ids are t<number>")
}

/// Runs `deps` with a handler that logs starts and ends, sleeps a little (on tokio's
/// paused clock) and fails where `failing` says so.
fn run(deps: &[Vec<usize>], failing: &[bool], max_concurrent: usize) -> (WorkflowResult, Log) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a runtime");
    let log = Arc::new(Mutex::new(Log::default()));
    let engine = WorkflowEngine::with_max_concurrent(max_concurrent).expect("at least 1");
    let shared = Arc::clone(&log);
    engine.register_handler("work", move |ctx: TaskContext| {
        let log = Arc::clone(&shared);
        async move {
            let i = index(ctx.task_id());
            {
                let mut log = log.lock().expect("lock");
                log.events.push(Event::Start(i));
                log.running += 1;
                log.peak = log.peak.max(log.running);
            }
            tokio::time::sleep(Duration::from_millis((i as u64 * 7) % 5 + 1)).await;
            let mut log = log.lock().expect("lock");
            log.events.push(Event::End(i));
            log.running -= 1;
            if ctx.config()["fail"] == json!(true) {
                Err(TaskError::new(format!("t{i} failed")))
            } else {
                Ok(Value::Null)
            }
        }
    });
    let tasks = deps.iter().enumerate().map(|(i, deps)| {
        Task::new(format!("t{i}"), "work")
            .config(json!({"fail": failing[i]}))
            .depends_on(deps.iter().map(|d| format!("t{d}")))
    });
    let workflow = Workflow::from_tasks("random", "Random", tasks);
    let result = runtime
        .block_on(engine.execute_workflow(&workflow))
        .expect("a valid DAG");
    drop(engine);
    let log = std::mem::take(&mut *log.lock().expect("lock"));
    (result, log)
}

fn descendants(deps: &[Vec<usize>], of: &HashSet<usize>) -> HashSet<usize> {
    // deps point to lower indices, so one pass in index order finds every descendant.
    let mut found = HashSet::new();
    for (t, deps) in deps.iter().enumerate() {
        if deps.iter().any(|d| of.contains(d) || found.contains(d)) {
            found.insert(t);
        }
    }
    found
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn skips_are_exactly_the_descendants_of_failed_tasks(case in case()) {
        let (result, _) = run(&case.deps, &case.failing, case.max_concurrent);
        let with = |status| -> HashSet<usize> {
            result.tasks_with(status).iter().map(|id| index(id)).collect()
        };
        let failed = with(TaskStatus::Failed);
        let skipped = with(TaskStatus::Skipped);
        let completed = with(TaskStatus::Completed);
        prop_assert_eq!(&skipped, &descendants(&case.deps, &failed));
        for t in 0..case.deps.len() {
            let ran = !skipped.contains(&t);
            prop_assert_eq!(failed.contains(&t), ran && case.failing[t]);
            prop_assert_eq!(completed.contains(&t), ran && !case.failing[t]);
        }
        for &t in &skipped {
            let error = result.tasks[t].error.clone().unwrap_or_default();
            let named = error
                .strip_prefix("dependency `")
                .and_then(|rest| rest.strip_suffix("` failed"))
                .map(index);
            prop_assert!(named.is_some_and(|f| failed.contains(&f)), "{}", error);
        }
    }

    #[test]
    fn no_task_starts_before_its_dependencies_complete(case in case()) {
        let (_, log) = run(&case.deps, &case.failing, case.max_concurrent);
        let mut ended = HashSet::new();
        for event in &log.events {
            match *event {
                Event::Start(t) => {
                    for d in &case.deps[t] {
                        prop_assert!(ended.contains(d), "t{} started before t{} ended", t, d);
                    }
                }
                Event::End(t) => {
                    ended.insert(t);
                }
            }
        }
    }

    #[test]
    fn concurrency_never_exceeds_the_limit(case in case()) {
        let (_, log) = run(&case.deps, &case.failing, case.max_concurrent);
        prop_assert!(log.peak <= case.max_concurrent, "peak {} > {}", log.peak, case.max_concurrent);
    }

    #[test]
    fn a_wide_dag_reaches_the_limit(width in 1usize..40, max_concurrent in 1usize..9) {
        let deps: Vec<Vec<usize>> = (0..=width).map(|i| if i == 0 { vec![] } else { vec![0] }).collect();
        let (_, log) = run(&deps, &vec![false; width + 1], max_concurrent);
        prop_assert_eq!(log.peak, max_concurrent.min(width));
    }
}
