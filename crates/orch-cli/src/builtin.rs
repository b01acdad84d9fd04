//! The handlers of the built-in task types, for an engine (`orch run`) or a NATS worker
//! (`orch worker`). This module, `run.rs` and `worker.rs` are the only ones that call into
//! the engine's handler API.

use std::path::PathBuf;
use std::sync::Arc;

use orch::engine::{Handler, TaskContext, TaskError, WorkflowEngine};
use serde_json::Value;

use crate::inputs::InputsRoot;
use crate::process::{self, Launch};
use crate::spec::{self, Builtin};

/// What every handler call shares.
struct Shared {
    /// Relative `cwd`s start here.
    base_dir: PathBuf,
    inputs: InputsRoot,
}

/// One handler serving `command`, `sleep` and `echo` (it reads the task's type). Relative
/// `cwd`s start at `base_dir`; dependency results are written under `inputs`, in a
/// directory for each attempt that is removed when the attempt ends (a run's commands
/// may read large results, and a worker serves many runs).
pub(crate) fn handler(base_dir: PathBuf, inputs: InputsRoot) -> impl Handler + Clone {
    let shared = Arc::new(Shared { base_dir, inputs });
    move |ctx: TaskContext| {
        let shared = Arc::clone(&shared);
        async move { call(&shared, ctx).await }
    }
}

/// Registers `command`, `sleep` and `echo` on `engine`. Dependency results are written
/// under `inputs` for the commands that have dependencies.
pub(crate) fn register(engine: &WorkflowEngine, base_dir: PathBuf, inputs: InputsRoot) {
    let handler = handler(base_dir, inputs);
    for task_type in spec::TYPES {
        // The engine runs each attempt as its own tokio task (its default on a
        // multi-threaded runtime), so process starts happen on every worker thread.
        engine.register_handler(task_type, handler.clone());
    }
}

async fn call(shared: &Shared, ctx: TaskContext) -> Result<Value, TaskError> {
    let task = ctx.task_definition();
    let builtin = match spec::parse(&task.task_type, ctx.config()) {
        Some(Ok(builtin)) => builtin,
        Some(Err(problems)) => {
            let text: Vec<String> = problems.into_iter().map(|p| p.message).collect();
            return Err(TaskError::permanent(text.join("; ")));
        }
        None => {
            return Err(TaskError::permanent(format!(
                "unknown task type `{}`",
                task.task_type
            )));
        }
    };
    match builtin {
        Builtin::Echo(value) => Ok(value),
        Builtin::Sleep(duration) => {
            tokio::select! {
                () = tokio::time::sleep(duration) => Ok(Value::Null),
                () = ctx.cancellation().cancelled() => Err(TaskError::permanent("the run was cancelled")),
            }
        }
        Builtin::Command(spec) => {
            // An instance of a map task goes by its own id, `task[i]`, and gets its
            // element (as JSON).
            let item = (ctx.item_index().zip(ctx.item())).map(|(i, value)| (i, value.to_string()));
            let task_id = ctx.record_id().to_string();
            // An instance has its element: the list it maps over is not written again for
            // each of them (n instances would write it n times).
            let mapped = item.as_ref().and(ctx.task_definition().map.as_ref());
            let inputs: Vec<(String, &Value)> = ctx
                .dependency_results()
                .filter(|(id, _)| mapped.is_none_or(|spec| spec.over != **id))
                .map(|(id, value)| (id.to_string(), value))
                .collect();
            // Even when none of its dependencies completed (a clean-up after failures):
            // the directory is there, without their files.
            let has_dependencies = !ctx.task_definition().dependencies.is_empty();
            let inputs_dir = if !has_dependencies && item.is_none() {
                None
            } else {
                let key = directory_key(ctx.run_id(), ctx.attempt(), &task_id);
                let item_text = item.as_ref().map(|(_, text)| text.as_str());
                // Files of large results take a while: the runtime's other tasks (the
                // display, the signal watcher) move to another thread meanwhile.
                let write = || shared.inputs.write(&key, &inputs, item_text);
                let written = match tokio::runtime::Handle::current().runtime_flavor() {
                    tokio::runtime::RuntimeFlavor::MultiThread => {
                        tokio::task::block_in_place(write)
                    }
                    _ => write(),
                };
                let dir = written.map_err(|e| {
                    TaskError::permanent(format!("cannot write the dependencies' results: {e}"))
                })?;
                Some(dir)
            };
            // Removed when the attempt ends, also when the engine drops it (a timeout).
            let _remove = RemoveOnDrop(inputs_dir.clone());
            let launch = Launch {
                spec: &spec,
                task_id: &task_id,
                item: item.as_ref().map(|(i, text)| (*i, text.as_str())),
                workflow_id: ctx.workflow().workflow_id(),
                attempt: ctx.attempt(),
                base_dir: &shared.base_dir,
                inputs_dir,
            };
            let outcome = process::run(launch, ctx.cancellation().cancelled()).await;
            outcome.map_err(|e| {
                if e.is_permanent() {
                    TaskError::permanent(e.to_string())
                } else {
                    TaskError::new(e.to_string())
                }
            })
        }
    }
}

/// A directory removed, with what it holds, when this is dropped.
struct RemoveOnDrop(Option<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The key of the directory of one delivery of attempt `attempt` of task `task_id`: run
/// ids hold no `/`, so it names one attempt of one run (an attempt that timed out may
/// still be dropped while the next one runs), and a number of its own (an attempt a
/// worker is given twice, its message delivered again while it runs, has two).
fn directory_key(run_id: &orch::core::RunId, attempt: u32, task_id: &str) -> String {
    static TAKEN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = TAKEN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{run_id}/{attempt}/{task_id}/{n}")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use orch::core::{Task, TaskStatus, Workflow};
    use serde_json::json;

    use super::*;

    /// A worker's attempt that times out while its command runs leaves no inputs
    /// directory behind (the engine drops the attempt; nothing after its await runs).
    #[test]
    fn an_attempt_that_times_out_removes_its_inputs_directory() {
        let runtime = crate::runtime::for_commands(2).expect("a runtime");
        let inputs = InputsRoot::create().expect("an inputs root");
        let root = inputs.path().expect("made").to_owned();
        let engine = WorkflowEngine::new();
        let handler = handler(std::env::temp_dir(), inputs);
        for task_type in spec::TYPES {
            engine.register_handler(task_type, handler.clone());
        }
        let workflow = Workflow::new("w", "W")
            .task(Task::new("a", "echo").config(json!({"message": 1})))
            .task(
                Task::new("b", "command")
                    .config(json!({"program": "sleep", "args": ["30"]}))
                    .depends_on(["a"])
                    .timeout(Duration::from_millis(300)),
            );
        let result = runtime
            .block_on(engine.execute_workflow(&workflow))
            .expect("runs");
        assert_eq!(result.task("b").map(|r| r.status), Some(TaskStatus::Failed));
        // The attempt runs as its own task, which the timeout aborts: it is dropped soon
        // after the run ends.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !walk(&root).is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let left = walk(&root);
        assert!(left.is_empty(), "left behind: {left:?}");
        crate::runtime::shut_down(runtime);
    }

    /// Two deliveries of one attempt (a worker given its message again while it runs)
    /// get directories of their own: one ending removes only its own.
    #[test]
    fn each_delivery_of_an_attempt_has_a_directory_of_its_own() {
        let run = orch::core::RunId::parse("r").expect("a run id");
        let (first, second) = (
            directory_key(&run, 2, "t[0]"),
            directory_key(&run, 2, "t[0]"),
        );
        assert_ne!(first, second);
        for key in [&first, &second] {
            assert!(key.starts_with("r/2/t[0]/"), "{key}");
        }
    }

    /// The files under `dir`, at any depth.
    fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            match path.is_dir() {
                true => files.extend(walk(&path)),
                false => files.push(path),
            }
        }
        files
    }
}
