//! The memory pools take, measured: it follows the tasks, not pools times tasks. (Its
//! own test binary: the allocator counts every thread's memory.)

use orch_core::{Task, TaskStatus, Workflow};
use orch_engine::{TaskContext, TaskError, WorkflowEngine};
use peak_alloc::PeakAlloc;

#[global_allocator]
static ALLOCATOR: PeakAlloc = PeakAlloc;

/// 20,000 tasks, each in a pool of its own of room for one: every pool fills and holds
/// a task that waits for room, for a run of ordinary size in memory.
#[test]
fn a_pool_per_task_takes_memory_by_the_task() {
    const TASKS: usize = 20_000;
    let mut builder = WorkflowEngine::builder().max_concurrent(TASKS);
    let mut workflow = Workflow::new("pools", "");
    for i in 0..TASKS {
        builder = builder.pool(format!("p{i}"), 1);
        workflow = workflow
            .task(Task::new(format!("a{i}"), "ok").pool(format!("p{i}")))
            .task(Task::new(format!("b{i}"), "ok").pool(format!("p{i}")));
    }
    let engine = builder.build().expect("valid limits");
    engine.register_handler("ok", |_: TaskContext| async {
        Ok::<_, TaskError>(serde_json::Value::Null)
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");

    let before = ALLOCATOR.current_usage();
    ALLOCATOR.reset_peak_usage();
    let result = runtime
        .block_on(engine.execute_workflow(&workflow))
        .expect("the run");
    let peak = ALLOCATOR.peak_usage().saturating_sub(before);

    assert!((result.tasks.iter()).all(|(_, r)| r.status == TaskStatus::Completed));
    let per_task = peak / (2 * TASKS);
    println!("{peak} bytes at the run's peak: {per_task} per task");
    // About 250 here; a set over every task per pool took over 2,500.
    assert!(per_task < 1024, "{per_task} bytes per task");
}
