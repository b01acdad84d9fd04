//! A helper process for the crash test (not a tool for users): opens a run of a workflow
//! of independent tasks `t0000`, `t0001`, ... in a file journal, then records every task
//! the run has not completed yet, in order, in batches of varying size, until all are
//! recorded. After each batch is committed it appends the batch's last task number to
//! `<dir>/acks`, so the test can check that what was acknowledged survived the kill.
//!
//! Usage: `orch-journal-crash-writer DIR RUN_ID TASKS process|power PAUSE_US`, where
//! the writer pauses up to `PAUSE_US` microseconds between batches, as tasks would take.

use std::fs::OpenOptions;
use std::future::Future;
use std::io::Write;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::SystemTime;

use orch_core::{RunId, Task, TaskId, TaskRecord, TaskStatus, Workflow};
use orch_journal::{Durability, FileJournal, Journal};
use serde_json::json;

struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `future` to its end on this thread.
fn block_on<F: Future>(future: F) -> F::Output {
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        thread::park();
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, run, tasks, durability, pause] = args.as_slice() else {
        return Err(
            "usage: orch-journal-crash-writer DIR RUN_ID TASKS process|power PAUSE_US".into(),
        );
    };
    let pause: u64 = pause.parse()?;
    let tasks: usize = tasks.parse()?;
    let durability = match durability.as_str() {
        "process" => Durability::Process,
        "power" => Durability::Power,
        other => return Err(format!("unknown durability {other:?}").into()),
    };
    let workflow = (0..tasks).fold(Workflow::new("crash", "Crash test"), |w, i| {
        w.task(Task::new(format!("t{i:04}"), "t"))
    });
    let journal = FileJournal::new(dir)?;
    let opened = block_on(journal.open(&RunId::parse(run)?, &workflow))?;
    let done = |id: &TaskId| {
        opened
            .previous
            .as_ref()
            .and_then(|p| p.task(id))
            .is_some_and(|r| r.status == TaskStatus::Completed)
    };
    let todo: Vec<(usize, TaskId)> = workflow
        .tasks()
        .map(|task| &task.task_id)
        .enumerate()
        .filter(|(_, id)| !done(id))
        .map(|(i, id)| (i, id.clone()))
        .collect();
    let mut acks = OpenOptions::new()
        .create(true)
        .append(true)
        .open(std::path::Path::new(dir).join("acks"))?;
    // A small generator seeded by the process id varies batch sizes and line lengths.
    let mut seed = u64::from(std::process::id()) | 1;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut rest = todo.as_slice();
    while !rest.is_empty() {
        let size = (1 + next() % 16) as usize;
        let (batch, tail) = rest.split_at(size.min(rest.len()));
        rest = tail;
        let now = SystemTime::now();
        let records: Vec<TaskRecord> = batch
            .iter()
            .map(|(i, _)| TaskRecord {
                status: TaskStatus::Completed,
                result: Some(json!({"i": i, "pad": "x".repeat((next() % 300) as usize)})),
                start_time: Some(now),
                end_time: Some(now),
                attempts: 1,
                ..TaskRecord::default()
            })
            .collect();
        let pairs: Vec<(&TaskId, &TaskRecord)> =
            batch.iter().map(|(_, id)| id).zip(&records).collect();
        block_on(opened.writer.commit(&pairs, durability))?;
        // One write per line (`writeln!` writes the number and the newline apart): a
        // kill between the two would glue this number to the next start's first one.
        acks.write_all(format!("{}\n", batch[batch.len() - 1].0).as_bytes())?;
        if pause > 0 {
            thread::sleep(std::time::Duration::from_micros(next() % pause));
        }
    }
    block_on(opened.writer.finish(orch_core::WorkflowStatus::Completed))?;
    Ok(())
}
