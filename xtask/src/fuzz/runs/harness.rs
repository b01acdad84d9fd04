//! Running one planned workflow: the handlers of each kind, and a fresh runtime with a
//! paused clock (or none) to run it on.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use orch_core::{Backoff, EngineEvent, Task, Workflow, WorkflowResult};
use orch_engine::{TaskContext, TaskError, WorkflowEngine};
use orch_events::{EventBus, SubscribeOptions};
use serde_json::{Value, json};

use super::limits::LimitCheck;
use super::model::RunPlan;

/// What a `droppanic` handler panics with.
pub(super) const DROP_PANIC: &str = "droppanic: handler future dropped while pending";

/// What a run did.
pub(super) struct Observed {
    /// `None` if it did not return before the harness gave up on it.
    pub(super) result: Option<Result<WorkflowResult, orch_engine::RunError>>,
    pub(super) returned_ms: u64,
    pub(super) cancelled_ms: Option<u64>,
    pub(super) events: Option<Vec<EngineEvent>>,
    /// The first handler start that went past a limit, if any.
    pub(super) past_a_limit: Option<String>,
}

fn workflow(plan: &RunPlan) -> Workflow {
    let tasks = plan.tasks.iter().map(|t| {
        let backoff = Duration::from_millis(t.backoff_ms);
        let mut task = Task::new(t.id.as_str(), t.kind.name())
            .config(json!({ "n": t.kind.param() }))
            .depends_on(t.after.iter().map(String::as_str))
            .retries(t.retries)
            .backoff(Backoff {
                initial: backoff,
                multiplier: 1.0,
                max: backoff,
                jitter: false,
            });
        if let Some(timeout) = t.timeout_ms {
            task = task.timeout(Duration::from_millis(timeout));
        }
        if let Some(pool) = t.pool {
            task = task.pool(format!("p{pool}"));
        }
        task.priority(t.priority)
    });
    Workflow::from_tasks("fuzz", "Fuzz", tasks)
}

/// Panics if dropped while armed (and not already panicking).
struct PanicOnDrop(bool);

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        if self.0 && !std::thread::panicking() {
            panic!("{DROP_PANIC}");
        }
    }
}

fn millis(ctx: &TaskContext) -> Option<Duration> {
    ctx.config()["n"].as_u64().map(Duration::from_millis)
}

/// Registers `handler` as `name`, its starts and ends noted in `limits`.
fn add<F, Fut>(engine: &WorkflowEngine, limits: &Arc<LimitCheck>, name: &str, handler: F)
where
    F: Fn(TaskContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Value, TaskError>> + Send + 'static,
{
    let limits = Arc::clone(limits);
    engine.register_handler(name, move |ctx: TaskContext| {
        let started = limits.enter(&ctx);
        let attempt = handler(ctx);
        async move {
            let _started = started;
            attempt.await
        }
    });
}

fn register(engine: &WorkflowEngine, limits: &Arc<LimitCheck>) {
    add(engine, limits, "ok", |_ctx: TaskContext| async move {
        Ok::<_, TaskError>(Value::Null)
    });
    add(engine, limits, "fail", |_ctx: TaskContext| async move {
        Err::<Value, _>(TaskError::new("fails"))
    });
    add(
        engine,
        limits,
        "permanent",
        |_ctx: TaskContext| async move { Err::<Value, _>(TaskError::permanent("fails for good")) },
    );
    add(engine, limits, "panic", |_ctx: TaskContext| async move {
        if true {
            panic!("the handler panics");
        }
        Ok::<_, TaskError>(Value::Null)
    });
    add(engine, limits, "hang", |_ctx: TaskContext| async move {
        std::future::pending::<()>().await;
        Ok::<_, TaskError>(Value::Null)
    });
    add(engine, limits, "sleep", |ctx: TaskContext| async move {
        tokio::time::sleep(millis(&ctx).unwrap_or_default()).await;
        Ok::<_, TaskError>(Value::Null)
    });
    add(engine, limits, "flaky", |ctx: TaskContext| async move {
        match u64::from(ctx.attempt()) <= ctx.config()["n"].as_u64().unwrap_or(0) {
            true => Err(TaskError::new("not yet")),
            false => Ok::<_, TaskError>(Value::Null),
        }
    });
    add(engine, limits, "droppanic", |ctx: TaskContext| async move {
        let mut guard = PanicOnDrop(true);
        match millis(&ctx) {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
        guard.0 = false;
        Ok::<_, TaskError>(Value::Null)
    });
    add(
        engine,
        limits,
        "slowcancel",
        |ctx: TaskContext| async move {
            ctx.cancellation().cancelled().await;
            tokio::time::sleep(millis(&ctx).unwrap_or_default()).await;
            Ok::<_, TaskError>(Value::Null)
        },
    );
    add(engine, limits, "quitfail", |ctx: TaskContext| async move {
        ctx.cancellation().cancelled().await;
        // With no pause, in the poll that hears of the cancellation.
        if let Some(pause) = millis(&ctx).filter(|pause| !pause.is_zero()) {
            tokio::time::sleep(pause).await;
        }
        Err::<Value, _>(TaskError::new("stopped on the cancellation"))
    });
    add(engine, limits, "cancels", |ctx: TaskContext| async move {
        tokio::time::sleep(millis(&ctx).unwrap_or_default()).await;
        ctx.cancellation().cancel();
        // Pending once: the handlers the cancellation woke run in the same pass.
        tokio::task::yield_now().await;
        Ok::<_, TaskError>(Value::Null)
    });
}

/// Runs `plan` on a fresh runtime and records what happened.
pub(super) fn observe(plan: &RunPlan) -> Observed {
    let runtime = if plan.timer {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread().build()
    };
    let Ok(runtime) = runtime else {
        return Observed {
            result: None,
            returned_ms: 0,
            cancelled_ms: None,
            events: None,
            past_a_limit: None,
        };
    };
    runtime.block_on(run(plan))
}

async fn run(plan: &RunPlan) -> Observed {
    let bus = (plan.reader || plan.stalled.is_some()).then(EventBus::<EngineEvent>::new);
    let stalled = match (&bus, plan.stalled) {
        (Some(bus), Some(capacity)) => bus
            .subscribe_with("workflow.>", SubscribeOptions::new().capacity(capacity))
            .ok(),
        _ => None,
    };
    let reader = match (&bus, plan.reader) {
        (Some(bus), true) => bus.subscribe("workflow.>").ok().map(|mut events| {
            tokio::spawn(async move {
                let mut seen = Vec::new();
                while let Some(event) = events.recv_event().await {
                    seen.push(event.payload().clone());
                }
                seen
            })
        }),
        _ => None,
    };
    let mut builder = WorkflowEngine::builder()
        .max_concurrent(plan.concurrency)
        .cancel_grace_period(Duration::from_millis(plan.grace_ms));
    for pool in 0..4 {
        builder = builder.pool(format!("p{pool}"), plan.pool_limit);
    }
    if let Some(bus) = &bus {
        builder = builder.event_bus(bus.clone());
    }
    let Ok(engine) = builder.build() else {
        return Observed {
            result: None,
            returned_ms: 0,
            cancelled_ms: None,
            events: None,
            past_a_limit: None,
        };
    };
    let limits = LimitCheck::new(plan.concurrency, plan.pool_limit);
    register(&engine, &limits);
    let workflow = workflow(plan);
    let handle = engine.run(&workflow);
    let token = handle.cancellation_token();
    let clock = plan.timer.then(tokio::time::Instant::now);
    let elapsed = move || clock.map_or(0, |start| start.elapsed().as_millis() as u64);
    let cancelled = Arc::new(Mutex::new(None));
    let cancel_at = plan.cancel_at();
    let canceller = match cancel_at {
        Some(0) => {
            token.cancel();
            *cancelled.lock().unwrap_or_else(|e| e.into_inner()) = Some(0);
            None
        }
        Some(at) if plan.timer => {
            let cancelled = Arc::clone(&cancelled);
            Some(tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(at)).await;
                *cancelled.lock().unwrap_or_else(|e| e.into_inner()) = Some(elapsed());
                token.cancel();
            }))
        }
        _ => None,
    };
    let result = if plan.timer {
        let limit = cancel_at
            .map_or(0, |c| c + plan.grace_ms)
            .max(plan.finite_bound_ms().unwrap_or(0))
            + 60_000;
        tokio::time::timeout(Duration::from_millis(limit), handle)
            .await
            .ok()
    } else {
        Some(handle.await)
    };
    let returned_ms = elapsed();
    if let Some(canceller) = canceller {
        canceller.abort();
    }
    let cancelled_ms = *cancelled.lock().unwrap_or_else(|e| e.into_inner());
    let mut events = None;
    if let (Some(bus), Some(reader), None, Some(_)) = (&bus, reader, &stalled, &result) {
        // A cancelled run whose grace period ran out leaves its last events to a
        // background delivery (the engine's documented rule), which ends when the bus
        // closes: give it its turns on the runtime first (yields, not a sleep: the
        // runtime may have no timer).
        for _ in 0..256 {
            tokio::task::yield_now().await;
        }
        bus.close().await;
        events = reader.await.ok();
    }
    drop(stalled);
    Observed {
        result,
        returned_ms,
        cancelled_ms,
        events,
        past_a_limit: limits.first_past_a_limit(),
    }
}
