//! Random workflows with failing, skipping and retried tasks end the same when their
//! handlers run on a worker through a real nats-server as when they run in the engine.

mod common;

use common::NatsServer;
use orch_core::{Task, Workflow, WorkflowResult};
use orch_engine::{TaskContext, TaskError, WorkflowEngine};
use orch_nats::{RemoteHandler, Worker};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// Adds the config's `v` to the sum of the direct dependencies' outputs.
async fn sum(ctx: TaskContext) -> Result<i64, TaskError> {
    let mut total = ctx.config()["v"].as_i64().unwrap_or(0);
    for (_, output) in ctx.dependency_results() {
        total += output.as_i64().unwrap_or(0);
    }
    Ok(total)
}

/// Fails until attempt `succeed_on`; then sums.
async fn flaky(ctx: TaskContext) -> Result<i64, TaskError> {
    if u64::from(ctx.attempt()) < ctx.config()["succeed_on"].as_u64().unwrap_or(1) {
        return Err(TaskError::new(format!("attempt {} failed", ctx.attempt())));
    }
    sum(ctx).await
}

async fn broken(_ctx: TaskContext) -> Result<i64, TaskError> {
    Err(TaskError::permanent("broken for good"))
}

async fn skipping(_ctx: TaskContext) -> Result<i64, TaskError> {
    Err(TaskError::skip("nothing to do"))
}

const TYPES: [&str; 4] = ["sum", "flaky", "broken", "skipping"];

/// What must be alike: the run's status and each task's status, output and attempts,
/// and the error of each task that ran. (A task skipped for a dependency names the
/// first of its dependencies to end, which depends on timing.)
fn outcome(result: &WorkflowResult) -> Vec<String> {
    let mut lines = vec![format!("{:?}", result.status)];
    for (id, task) in result.tasks.iter() {
        let error = if task.attempts > 0 {
            task.error.as_deref()
        } else {
            None
        };
        lines.push(format!(
            "{id}: {:?} {:?} {error:?} {}",
            task.status, task.result, task.attempts
        ));
    }
    lines
}

fn workflow(specs: &[(Vec<prop::sample::Index>, usize, u32, u64)]) -> Workflow {
    Workflow::from_tasks(
        "random",
        "Random",
        specs
            .iter()
            .enumerate()
            .map(|(i, (deps, kind, retries, succeed_on))| {
                let deps: std::collections::BTreeSet<String> = if i == 0 {
                    Default::default()
                } else {
                    deps.iter().map(|d| format!("t{}", d.index(i))).collect()
                };
                Task::new(format!("t{i}"), TYPES[*kind])
                    .depends_on(deps)
                    .retries(*retries)
                    .config(json!({"v": i, "succeed_on": succeed_on}))
            }),
    )
}

/// Random workflows: up to 10 tasks, each depending on up to 2 earlier ones, of a random
/// type, with up to 2 retries and the attempt on which a flaky task succeeds.
fn specs() -> impl Strategy<Value = Vec<(Vec<prop::sample::Index>, usize, u32, u64)>> {
    prop::collection::vec(
        (
            prop::collection::vec(any::<prop::sample::Index>(), 0..3),
            0..4_usize,
            0..3_u32,
            1..4_u64,
        ),
        1..10,
    )
}

#[test]
fn random_workflows_end_alike_remotely_and_locally() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let stop = CancellationToken::new();
    let remote = runtime.block_on(async {
        let worker = Worker::builder()
            .handler("sum", sum)
            .handler("flaky", flaky)
            .handler("broken", broken)
            .handler("skipping", skipping)
            .connect(&server.config())
            .await
            .expect("the worker connects");
        tokio::spawn(worker.run(stop.clone()));
        RemoteHandler::connect(&server.config())
            .await
            .expect("connects")
    });
    let local = WorkflowEngine::with_max_concurrent(4).expect("valid");
    local.register_handler("sum", sum);
    local.register_handler("flaky", flaky);
    local.register_handler("broken", broken);
    local.register_handler("skipping", skipping);
    let distributed = WorkflowEngine::with_max_concurrent(4).expect("valid");
    for task_type in TYPES {
        distributed.register_handler(task_type, remote.clone());
    }
    let mut runner = TestRunner::new(ProptestConfig::with_cases(12));
    let outcome_of = |specs: Vec<(Vec<prop::sample::Index>, usize, u32, u64)>| {
        let workflow = workflow(&specs);
        let (here, there) = runtime.block_on(async {
            let here = local.execute_workflow(&workflow).await.expect("valid");
            let there = distributed
                .execute_workflow(&workflow)
                .await
                .expect("valid");
            (here, there)
        });
        prop_assert_eq!(outcome(&here), outcome(&there));
        Ok(())
    };
    if let Err(failure) = runner.run(&specs(), outcome_of) {
        panic!("{failure}");
    }
    stop.cancel();
}
