//! The JetStream journal against a real nats-server: a run recorded by one coordinator
//! is continued by another (a new connection, as after a crash) from what it committed,
//! with the same refusals as the file journal, and runs are listed.

mod common;
/// The checks every journal backend passes (shared with orch-journal's own tests).
#[path = "../../orch-journal/tests/common/mod.rs"]
mod journal_checks;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use async_nats::jetstream::stream::{self, DiscardPolicy};
use common::NatsServer;
use orch_core::{RunId, Task, TaskRecord, TaskStatus, Workflow, WorkflowStatus};
use orch_engine::{Durability, TaskContext, TaskError, WorkflowEngine};
use orch_journal::{Journal, JournalError, RunFilter, RunStatus};
use orch_nats::{Layout, NatsJournal};

async fn journal(server: &NatsServer) -> NatsJournal {
    NatsJournal::connect(&server.config(), &Layout::default())
        .await
        .expect("connects")
}

fn workflow() -> Workflow {
    Workflow::new("etl", "ETL")
        .task(Task::new("extract", "step"))
        .task(Task::new("transform", "step").depends_on(["extract"]))
        .task(Task::new("load", "fails_once").depends_on(["transform"]))
}

/// An engine with the journal whose `fails_once` tasks fail on the first call of the
/// process and `step` tasks count their calls.
fn engine(journal: NatsJournal, calls: &Arc<AtomicU32>) -> WorkflowEngine {
    let engine = WorkflowEngine::builder()
        .journal(journal, Durability::Power)
        .build()
        .expect("valid");
    let counted = Arc::clone(calls);
    engine.register_handler("step", move |ctx: TaskContext| {
        let counted = Arc::clone(&counted);
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok::<_, TaskError>(format!("{} done", ctx.task_id()))
        }
    });
    engine
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_is_continued_by_another_coordinator_from_what_it_committed() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let run = RunId::parse("nightly-1").expect("a run id");
    let calls = Arc::new(AtomicU32::new(0));

    // The first coordinator: `load` fails, the run fails.
    let first = engine(journal(&server).await, &calls);
    first.register_handler("fails_once", |_ctx: TaskContext| async move {
        Err::<(), _>(TaskError::new("the warehouse is down"))
    });
    let result = first
        .run_durable(&workflow(), run.clone())
        .await
        .expect("runs");
    assert_eq!(result.status, WorkflowStatus::Failed);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    drop(first);

    // Another coordinator, on its own connection, continues it: only `load` runs.
    let second = engine(journal(&server).await, &calls);
    second.register_handler("fails_once", |ctx: TaskContext| async move {
        let transformed: String = ctx.input("transform")?;
        Ok::<_, TaskError>(format!("loaded {transformed}"))
    });
    let result = second
        .run_durable(&workflow(), run.clone())
        .await
        .expect("runs");
    assert_eq!(result.status, WorkflowStatus::Completed, "{result:?}");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "extract and transform ran once"
    );
    assert_eq!(
        result.task("load").and_then(|t| t.result.clone()),
        Some(serde_json::json!("loaded transform done"))
    );

    let journal = journal(&server).await;
    let loaded = journal.load(&run).await.expect("reads").expect("the run");
    assert_eq!(loaded.status(), RunStatus::Completed);
    assert_eq!(
        loaded.task("extract").map(|r| r.status),
        Some(TaskStatus::Completed)
    );
    let listed = journal.list(&RunFilter::default()).await.expect("lists");
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].run_id.as_str(), listed[0].completed_tasks),
        ("nightly-1", 3)
    );
    let missing = RunId::parse("never-ran").expect("a run id");
    assert!(journal.load(&missing).await.expect("reads").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_reopened_with_a_changed_completed_task_is_refused() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let run = RunId::parse("r-2").expect("a run id");
    let journal = journal(&server).await;
    let opened = journal.open(&run, &workflow()).await.expect("opens");
    assert!(opened.previous.is_none());
    let done = TaskRecord {
        status: TaskStatus::Completed,
        attempts: 1,
        result: Some(serde_json::json!(1)),
        ..TaskRecord::default()
    };
    opened
        .writer
        .commit(&[(&"extract".into(), &done)], Durability::Process)
        .await
        .expect("commits");
    drop(opened);

    let changed = Workflow::new("etl", "ETL")
        .task(Task::new("extract", "other_type"))
        .task(Task::new("transform", "step").depends_on(["extract"]));
    let refused = journal.open(&run, &changed).await.expect_err("refused");
    assert!(
        matches!(&refused, JournalError::WorkflowChanged { stale, .. } if stale.len() == 1),
        "{refused}"
    );
    // The unchanged workflow continues it, `extract` restored.
    let reopened = journal.open(&run, &workflow()).await.expect("opens");
    let previous = reopened.previous.expect("recorded before");
    assert_eq!(
        previous.task("extract").map(|t| t.status),
        Some(TaskStatus::Completed)
    );
    assert_eq!(
        previous.task("load").map(|t| t.status),
        Some(TaskStatus::Pending)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_of_no_task_is_refused() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let run = RunId::parse("foreign-1").expect("a run id");
    let journal = journal(&server).await;
    journal_checks::a_record_of_no_task_is_refused(&journal, &run, "w").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_ends_once() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let run = RunId::parse("ends-1").expect("a run id");
    let journal = journal(&server).await;
    journal_checks::a_run_ends_once(&journal, &run, "w").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reopened_run_is_unfinished_until_it_ends_again() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let run = RunId::parse("reopened-1").expect("a run id");
    let journal = journal(&server).await;
    journal_checks::a_reopened_run_is_unfinished_until_it_ends_again(&journal, &run, "w").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_definition_is_taken_with_the_first_record() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let run = RunId::parse("changed-1").expect("a run id");
    let journal = journal(&server).await;
    journal_checks::a_changed_definition_is_taken_with_the_first_record(&journal, &run, "w").await;
}

/// Commits that `task` completed (its id as its result) to `opened`'s writer.
async fn commit_completed(opened: &orch_journal::OpenRun, task: &str) -> Result<(), JournalError> {
    commit_result(opened, task, serde_json::json!(task)).await
}

/// Commits that `task` completed with `result` to `opened`'s writer.
async fn commit_result(
    opened: &orch_journal::OpenRun,
    task: &str,
    result: serde_json::Value,
) -> Result<(), JournalError> {
    let record = TaskRecord {
        status: TaskStatus::Completed,
        attempts: 1,
        result: Some(result),
        ..TaskRecord::default()
    };
    let task = orch_core::TaskId::from(task);
    opened
        .writer
        .commit(&[(&task, &record)], Durability::Process)
        .await
}

/// Opens run `id` of `workflow()` on `journal` and commits that `extract` completed; the
/// writer stays open.
async fn opened_with_extract(journal: &NatsJournal, id: &str) -> (RunId, orch_journal::OpenRun) {
    let run = RunId::parse(id).expect("a run id");
    let opened = journal.open(&run, &workflow()).await.expect("opens");
    commit_completed(&opened, "extract").await.expect("commits");
    (run, opened)
}

/// A JetStream context of its own on `server`, to reach the journal's stream directly.
async fn raw_jetstream(server: &NatsServer) -> async_nats::jetstream::Context {
    async_nats::jetstream::new(async_nats::connect(server.url()).await.expect("connects"))
}

/// Changes the settings of the journal's stream on `server` with `change`, given its
/// state as well.
async fn change_stream(
    server: &NatsServer,
    change: impl FnOnce(&mut stream::Config, &stream::State),
) {
    let js = raw_jetstream(server).await;
    let mut stream = js.get_stream("ORCH_JOURNAL").await.expect("the stream");
    let info = stream.info().await.expect("its settings");
    let mut config = info.config.clone();
    change(&mut config, &info.state);
    js.update_stream(config).await.expect("updated");
}

/// Settings that keep new messages out of the stream: full as it is, discarding new ones.
fn keep_out_new_messages(config: &mut stream::Config, state: &stream::State) {
    config.max_messages = i64::try_from(state.messages).expect("a few messages");
    config.discard = DiscardPolicy::New;
}

/// Stores `part` on `subject` directly, as a writer that died after it would have.
async fn store_part(
    js: &async_nats::jetstream::Context,
    subject: &str,
    part: async_nats::jetstream::message::PublishMessage,
) {
    (js.send_publish(subject.to_owned(), part)
        .await
        .expect("published"))
    .await
    .expect("stored");
}

/// The status of `task` in run `run` as `journal` reads it.
async fn recorded_status(journal: &NatsJournal, run: &RunId, task: &str) -> Option<TaskStatus> {
    let loaded = journal.load(run).await.expect("readable").expect("the run");
    loaded.task(task).map(|r| r.status)
}

/// A journal stream made by hand that removes messages once consumed (interest or
/// work-queue retention) is refused: it would keep no run. One with limits is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_stream_that_keeps_no_record_is_refused() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let js = raw_jetstream(&server).await;
    let made = |retention| stream::Config {
        name: "ORCH_JOURNAL".to_owned(),
        subjects: vec!["orch.journal.*".to_owned()],
        retention,
        max_age: std::time::Duration::from_secs(86_400),
        ..Default::default()
    };
    for retention in [
        stream::RetentionPolicy::Interest,
        stream::RetentionPolicy::WorkQueue,
    ] {
        js.create_stream(made(retention)).await.expect("made");
        let error = NatsJournal::connect(&server.config(), &Layout::default())
            .await
            .expect_err("refused");
        let text = error.to_string();
        assert!(
            text.contains("ORCH_JOURNAL") && text.contains("Limits retention"),
            "{text}"
        );
        js.delete_stream("ORCH_JOURNAL").await.expect("deleted");
    }
    js.create_stream(made(stream::RetentionPolicy::Limits))
        .await
        .expect("made");
    let journal = journal(&server).await;
    let (run, _opened) = opened_with_extract(&journal, "kept").await;
    assert_eq!(
        recorded_status(&journal, &run, "extract").await,
        Some(TaskStatus::Completed)
    );
}

/// A limit of the journal's stream that the append is over (here an administrator's
/// largest message) fails the commit at once, naming it, instead of sending the append
/// again for a minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_over_a_limit_of_the_stream_fails_at_once() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let journal = journal(&server).await;
    let (_, opened) = opened_with_extract(&journal, "limited").await;
    change_stream(&server, |config, _| config.max_message_size = 2048).await;
    let big = commit_result(&opened, "transform", serde_json::json!("t".repeat(4_000)));
    let error = tokio::time::timeout(std::time::Duration::from_secs(20), big)
        .await
        .expect("refused without sending it again for a minute")
        .expect_err("over the stream's largest message");
    assert!(error.to_string().contains("maximum"), "{error}");
}

/// A sync hears how the appends before it went: an append queued after it, stored with
/// it in one write and refused, does not fail it.
#[tokio::test]
async fn a_sync_is_not_failed_by_an_append_queued_after_it() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let journal = journal(&server).await;
    let (_, opened) = opened_with_extract(&journal, "synced").await;
    change_stream(&server, |config, _| config.max_message_size = 2048).await;
    let record = TaskRecord {
        status: TaskStatus::Completed,
        attempts: 1,
        result: Some(serde_json::json!("t".repeat(4_000))),
        ..TaskRecord::default()
    };
    let task = orch_core::TaskId::from("transform");
    // Queued one after the other before either is written: this runtime runs nothing
    // else until they are awaited.
    let sync = opened.writer.sync();
    let refused = opened.writer.append(&[(&task, &record)]);
    let (synced, refused) = tokio::join!(sync, refused);
    synced.expect("what came before the sync is stored");
    refused.expect_err("over the stream's largest message");
}

/// An append queued after the run's end, stored with it in one write, is refused as after
/// the end only if the end was stored: if the write failed, it says why.
#[tokio::test]
async fn an_append_after_an_end_that_failed_is_not_told_the_run_ended() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let journal = journal(&server).await;
    let record = TaskRecord {
        status: TaskStatus::Completed,
        attempts: 1,
        ..TaskRecord::default()
    };
    let task = orch_core::TaskId::from("transform");
    for full in [false, true] {
        let (_, opened) = opened_with_extract(&journal, &format!("ended-{full}")).await;
        change_stream(&server, |config, state| match full {
            true => keep_out_new_messages(config, state),
            false => (config.max_messages, config.discard) = (-1, DiscardPolicy::Old),
        })
        .await;
        // Queued together: this runtime runs nothing else until they are awaited.
        let end = opened.writer.finish(WorkflowStatus::Completed);
        let after = opened.writer.append(&[(&task, &record)]);
        let (ended, after) = tokio::join!(end, after);
        let after = after.expect_err("not taken");
        assert_eq!(ended.is_err(), full);
        assert_eq!(
            matches!(after, JournalError::Finished { .. }),
            !full,
            "{after}"
        );
    }
}

/// A stream that keeps new messages out once full (an administrator's message limit
/// with new ones discarded) refuses the append as a failure to store; that refusal
/// names a maximum and fails the commit at once too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_to_a_full_stream_that_discards_new_messages_fails_at_once() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let journal = journal(&server).await;
    let (_, opened) = opened_with_extract(&journal, "full").await;
    change_stream(&server, keep_out_new_messages).await;
    let refused = commit_result(&opened, "transform", serde_json::json!("t"));
    let error = tokio::time::timeout(std::time::Duration::from_secs(20), refused)
        .await
        .expect("refused without sending it again for a minute")
        .expect_err("the stream is full");
    assert!(error.to_string().contains("maximum messages"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_larger_than_a_message_is_stored_in_parts_and_read_back_whole() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let run = RunId::parse("big-1").expect("a run id");
    let engine = WorkflowEngine::builder()
        .journal(journal(&server).await, Durability::Process)
        .build()
        .expect("valid");
    // Three times the server's largest message (1 MiB by default).
    engine.register_handler("big", |_ctx: TaskContext| async move {
        Ok::<_, TaskError>("é".repeat(1_600_000))
    });
    let workflow = Workflow::new("w", "W")
        .task(Task::new("big", "big"))
        .task(Task::new("after", "big").depends_on(["big"]));
    let result = engine
        .run_durable(&workflow, run.clone())
        .await
        .expect("runs");
    assert_eq!(result.status, WorkflowStatus::Completed, "{result:?}");

    let loaded = journal(&server)
        .await
        .load(&run)
        .await
        .expect("reads")
        .expect("the run");
    assert_eq!(loaded.status(), RunStatus::Completed);
    let output = loaded.task("after").and_then(|r| r.result.clone());
    assert_eq!(
        output.as_ref().and_then(|o| o.as_str()).map(str::len),
        Some(3_200_000)
    );
}

/// The server a coordinator reconnects to may take smaller messages than the one it
/// opened the run on: a batch is stored in parts that fit the server it goes to, also
/// one committed while the connection was down (parted for the server it had).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_stored_in_parts_that_fit_the_server_reconnected_to() {
    let Some(mut server) = NatsServer::start_with_config(Some("max_payload: 1048576")) else {
        return;
    };
    let nats_journal = journal(&server).await;
    let (run, opened) = opened_with_extract(&nats_journal, "smaller-1").await;
    server.stop();
    let big = serde_json::json!("x".repeat(200_000));
    let stored = commit_result(&opened, "transform", big.clone());
    let back = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        server.restart_with_config("max_payload: 65536");
    };
    // Sent again while the server is away, then refused as too large.
    let (stored, ()) = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        tokio::join!(stored, back)
    })
    .await
    .expect("stored within the time a reconnection takes");
    stored.expect("stored");
    drop(opened);
    let loaded = (journal(&server).await.load(&run).await)
        .expect("reads")
        .expect("the run");
    assert_eq!(
        loaded.task("transform").and_then(|r| r.result.clone()),
        Some(big)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_writer_of_a_run_is_refused_and_the_run_stays_readable() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let run = RunId::parse("twice").expect("a run id");
    let first_journal = journal(&server).await;
    let first = first_journal.open(&run, &workflow()).await.expect("opens");
    // Through the same journal: refused at once.
    let again = first_journal
        .open(&run, &workflow())
        .await
        .expect_err("refused");
    assert!(matches!(again, JournalError::AlreadyOpen { .. }), "{again}");
    // Through another (another coordinator): refused at its first append.
    let second = journal(&server)
        .await
        .open(&run, &workflow())
        .await
        .expect("opens");
    commit_completed(&first, "extract")
        .await
        .expect("the first writer appends");
    // A sync waits for the appends before it, and fails with them.
    let (transform, done) = (orch_core::TaskId::from("transform"), TaskRecord::default());
    let append = second.writer.append(&[(&transform, &done)]);
    let sync = second.writer.sync();
    let refused = append.await.expect_err("refused");
    assert!(refused.to_string().contains("another writer"), "{refused}");
    let sync = sync.await.expect_err("the append before it failed");
    assert!(sync.to_string().contains("another writer"), "{sync}");
    // A refused writer takes no more, and the first goes on, until it ends the run.
    commit_completed(&second, "load")
        .await
        .expect_err("refused");
    commit_completed(&first, "transform")
        .await
        .expect("the first writer appends");
    first
        .writer
        .finish(WorkflowStatus::Failed)
        .await
        .expect("ends the run");
    first.writer.sync().await.expect("a sync after the end");
    let finished = commit_completed(&first, "load").await.expect_err("refused");
    assert!(
        matches!(finished, JournalError::Finished { .. }),
        "{finished}"
    );

    let reader = journal(&server).await;
    let status = |task| recorded_status(&reader, &run, task);
    assert_eq!(status("extract").await, Some(TaskStatus::Completed));
    assert_eq!(status("transform").await, Some(TaskStatus::Completed));
    assert_eq!(status("load").await, None);
}

/// The journal takes no lock on the server: of two coordinators on one run, the one that
/// appends second is refused, even when it opened the run first (as the docs say).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_coordinators_the_one_appending_second_is_refused_whoever_opened_first() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let run = RunId::parse("opened-first").expect("a run id");
    let first = journal(&server)
        .await
        .open(&run, &workflow())
        .await
        .expect("opens");
    let second = journal(&server)
        .await
        .open(&run, &workflow())
        .await
        .expect("another process's open is not refused");
    commit_completed(&second, "extract")
        .await
        .expect("the later opener appends first");
    let refused = commit_completed(&first, "transform")
        .await
        .expect_err("refused");
    assert!(refused.to_string().contains("another writer"), "{refused}");
    let reader = journal(&server).await;
    let status = |task| recorded_status(&reader, &run, task);
    assert_eq!(status("extract").await, Some(TaskStatus::Completed));
    assert_eq!(status("transform").await, None);
}

/// While no stream takes the run's subject (as while a restarted server recovers its
/// streams), an append waits for one instead of failing the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_waits_while_no_stream_takes_its_subject() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let journal = journal(&server).await;
    let (run, opened) = opened_with_extract(&journal, "gap").await;
    let js = raw_jetstream(&server).await;
    let mut stream = js.get_stream("ORCH_JOURNAL").await.expect("the stream");
    let mut config = stream.info().await.expect("its settings").config.clone();
    let subjects = std::mem::replace(&mut config.subjects, vec!["elsewhere.>".to_owned()]);
    js.update_stream(config.clone()).await.expect("updated");
    let append = commit_completed(&opened, "transform");
    let restore = async {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        config.subjects = subjects;
        js.update_stream(config).await.expect("restored");
    };
    let (appended, ()) = tokio::join!(append, restore);
    appended.expect("stored once the stream takes the subject again");
    drop(opened);
    assert_eq!(
        recorded_status(&journal, &run, "transform").await,
        Some(TaskStatus::Completed)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_with_unreadable_or_out_of_range_headers_are_left_out() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let journal = journal(&server).await;
    let (run, opened) = opened_with_extract(&journal, "odd").await;
    drop(opened);
    let js = raw_jetstream(&server).await;
    let publish = |subject: &'static str, start: &'static str, rest: &'static str| {
        let part = async_nats::jetstream::message::PublishMessage::build()
            .payload(bytes::Bytes::from_static(b"not a line\n"))
            .header("Orch-Batch-Start", start)
            .header("Orch-Batch-Rest", rest);
        store_part(&js, subject, part)
    };
    // A part naming no batch it could belong to.
    publish("orch.journal.odd", "first", "0").await;
    assert_eq!(
        recorded_status(&journal, &run, "extract").await,
        Some(TaskStatus::Completed)
    );
    // A part of a run with nothing else, numbered past any batch.
    publish("orch.journal.parts", "0", "18446744073709551615").await;
    let parts = RunId::parse("parts").expect("a run id");
    let loaded = journal.load(&parts).await;
    assert!(
        matches!(loaded, Err(JournalError::HeadMissing { .. })),
        "{loaded:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_stored_in_part_is_left_out_and_the_run_goes_on_after_it_even_its_head() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let journal = journal(&server).await;
    let (run, opened) = opened_with_extract(&journal, "torn").await;
    drop(opened);
    // A writer that died after the first of two parts of its batch.
    let js = raw_jetstream(&server).await;
    let part = async_nats::jetstream::message::PublishMessage::build()
        .payload(bytes::Bytes::from_static(b"{\"seq\":2,\"task\":\"transf"))
        .header("Orch-Batch-Rest", "1");
    store_part(&js, "orch.journal.torn", part).await;

    assert_eq!(
        recorded_status(&journal, &run, "extract").await,
        Some(TaskStatus::Completed)
    );
    let reopened = journal.open(&run, &workflow()).await.expect("opens");
    commit_completed(&reopened, "transform")
        .await
        .expect("commits after the torn batch");
    drop(reopened);
    assert_eq!(
        recorded_status(&journal, &run, "transform").await,
        Some(TaskStatus::Completed)
    );

    // A run with only part of its head stored starts anew after it.
    let part = async_nats::jetstream::message::PublishMessage::build()
        .payload(bytes::Bytes::from_static(b"{\"v\":1,\"run"))
        .header("Orch-Batch-Rest", "1");
    store_part(&js, "orch.journal.headless", part).await;
    let headless = RunId::parse("headless").expect("a run id");
    let opened = journal.open(&headless, &workflow()).await.expect("opens");
    assert!(opened.previous.is_none(), "a new run");
    commit_completed(&opened, "extract").await.expect("commits");
    drop(opened);
    assert_eq!(
        recorded_status(&journal, &headless, "extract").await,
        Some(TaskStatus::Completed)
    );
}

/// Something published under a run's subject that does not end its line (not a
/// journal's) would run into the next batch's first line: reopening the run is refused,
/// naming the message, and the run stays readable and listed as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_after_a_stray_message_that_ends_no_line_is_refused_on_reopening() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let journal = journal(&server).await;
    let (run, opened) = opened_with_extract(&journal, "strayed").await;
    drop(opened);
    let js = raw_jetstream(&server).await;
    let stray = js
        .publish("orch.journal.strayed", "oops".into())
        .await
        .expect("published")
        .await
        .expect("stored")
        .sequence;
    // A part of no batch after it adds nothing: the stray is still the one named.
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Orch-Batch-Start", "not a number");
    let part = js.publish_with_headers("orch.journal.strayed", headers, "x".into());
    part.await.expect("published").await.expect("stored");
    let reopened = journal.open(&run, &workflow()).await;
    let Err(JournalError::Corrupt { at, reason }) = &reopened else {
        panic!("refused as corrupt: {:?}", reopened.map(|_| ()));
    };
    assert!(at.ends_with(&format!("message {stray}")), "{at}");
    assert!(reason.contains("does not end its last line"), "{reason}");
    assert_eq!(
        recorded_status(&journal, &run, "extract").await,
        Some(TaskStatus::Completed)
    );
    let listed = journal.list(&RunFilter::default()).await.expect("lists");
    assert!(
        listed.iter().any(|summary| summary.run_id == run),
        "{listed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journal_stream_is_named_after_the_prefix_and_headless_or_stray_runs_are_not_listed() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let journal = NatsJournal::connect(&server.config(), &Layout::with_prefix("a_tasks"))
        .await
        .expect("connects");
    let js = raw_jetstream(&server).await;
    js.get_stream("A_TASKS_JOURNAL")
        .await
        .expect("the stream `<STEM>_JOURNAL`");
    // A run whose head is not stored (only a later line) is left out of the listing.
    js.publish("a_tasks.journal.headless", bytes::Bytes::new())
        .await
        .expect("published")
        .await
        .expect("stored");
    // Nor is something else published under a run's subject (as a file journal leaves
    // out a file of something else under a run's name).
    js.publish("a_tasks.journal.stray", "hello".into())
        .await
        .expect("published")
        .await
        .expect("stored");
    let run = RunId::parse("listed").expect("a run id");
    drop(journal.open(&run, &workflow()).await.expect("opens"));
    let listed = journal.list(&RunFilter::default()).await.expect("lists");
    let ids: Vec<&str> = listed.iter().map(|r| r.run_id.as_str()).collect();
    assert_eq!(ids, ["listed"]);

    // A stream that already holds a prefix's journal, under the name an earlier build
    // gave it, is the one used.
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "B_JOURNAL_JOURNAL".to_owned(),
        subjects: vec!["b_tasks.journal.*".to_owned()],
        ..Default::default()
    })
    .await
    .expect("created");
    let earlier = NatsJournal::connect(&server.config(), &Layout::with_prefix("b_tasks"))
        .await
        .expect("connects");
    drop(earlier.open(&run, &workflow()).await.expect("opens"));
    let mut legacy = js
        .get_stream("B_JOURNAL_JOURNAL")
        .await
        .expect("the stream");
    assert_eq!(
        legacy.info().await.expect("info").state.messages,
        1,
        "the run's head"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_run_goes_on_when_the_server_restarts_under_it() {
    let Some(mut server) = NatsServer::start() else {
        return;
    };
    let run = RunId::parse("restarted").expect("a run id");
    let engine = WorkflowEngine::builder()
        .journal(journal(&server).await, Durability::Process)
        .build()
        .expect("valid");
    let calls = Arc::new(AtomicU32::new(0));
    let counted = Arc::clone(&calls);
    engine.register_handler("nap", move |ctx: TaskContext| {
        let counted = Arc::clone(&counted);
        async move {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            counted.fetch_add(1, Ordering::SeqCst);
            Ok::<_, TaskError>(ctx.task_id().to_string())
        }
    });
    let chain = common::chain(30, "nap");
    let running = {
        let (engine, chain, run) = (engine.clone(), chain.clone(), run.clone());
        tokio::spawn(async move { engine.run_durable(&chain, run).await })
    };
    common::wait_for(|| calls.load(Ordering::SeqCst) > 5).await;
    server.restart();
    let result = tokio::time::timeout(std::time::Duration::from_secs(120), running)
        .await
        .expect("the run ends within two minutes")
        .expect("the run's task")
        .expect("runs");
    assert_eq!(result.status, WorkflowStatus::Completed, "{result:?}");
    assert_eq!(
        recorded_status(&journal(&server).await, &run, "t29").await,
        Some(TaskStatus::Completed)
    );
}

/// Listing runs with the server gone for long (the connection full of what it could not
/// send) is an error, not a wait until the server is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_runs_with_the_server_gone_and_the_connection_full_is_an_error() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let client = server.config().connect().await.expect("connects");
    let journal = NatsJournal::new(client.clone(), &Layout::default())
        .await
        .expect("the journal's stream");
    drop(server);
    let filler = common::fill_connection(client).await;
    // A guard, not a measure: a page waits a few seconds at most.
    let listed = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        journal.list(&RunFilter::default()),
    )
    .await
    .expect("list returned");
    let error = listed.expect_err("no answer");
    assert!(error.to_string().contains("did not answer"), "{error}");
    filler.abort();
}

/// Reading a run waits for each answer of the server as long as the read patience, not
/// for the whole read: over a slow link a read longer than the patience succeeds, and a
/// server that stops answering fails it after the patience, saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_over_a_slow_link_waits_answer_by_answer() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let (run, _opened) = opened_with_extract(&journal(&server).await, "slow-1").await;
    let link = common::Outage::relay_to(server.port());
    let patience = std::time::Duration::from_millis(1500);
    let slow = NatsJournal::connect(&orch_nats::NatsConfig::new(link.url()), &Layout::default())
        .await
        .expect("connects")
        .read_patience(patience);
    // Each answer held back 600 ms (the read has one request out at a time): well within
    // the patience, while the read's three answers take longer than it.
    link.slow_replies(std::time::Duration::from_millis(600));
    let started = std::time::Instant::now();
    let loaded = slow.load(&run).await.expect("read").expect("the run");
    let took = started.elapsed();
    assert!(
        took > patience,
        "the read took only {took:?}: not longer than its patience"
    );
    assert_eq!(
        loaded.task("extract").map(|r| r.status),
        Some(TaskStatus::Completed)
    );

    link.slow_replies(std::time::Duration::from_secs(3));
    let error = slow.load(&run).await.expect_err("no answer in time");
    assert!(
        error
            .to_string()
            .contains("the server did not answer within 1.5s"),
        "{error}"
    );
}

/// A server that stalls for longer than the journal's reader waits for a sign of life
/// (10 s) midway through a run's read is waited for, as long as the read patience: the
/// read once failed with "missed idle heartbeat".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_goes_on_after_the_server_stalls_midway() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let (run, opened) = opened_with_extract(&journal(&server).await, "stall-1").await;
    // About 6 MB, in parts of at most 1 MiB (the server's largest message).
    let big = serde_json::json!("t".repeat(3 << 20));
    for task in ["transform", "load"] {
        commit_result(&opened, task, big.clone())
            .await
            .expect("commits");
    }
    let link = common::Outage::relay_to(server.port());
    let slow = NatsJournal::connect(&orch_nats::NatsConfig::new(link.url()), &Layout::default())
        .await
        .expect("connects")
        .read_patience(std::time::Duration::from_secs(30));
    link.stall_once_after(2 << 20, std::time::Duration::from_secs(12));
    let loaded = slow.load(&run).await.expect("read").expect("the run");
    for task in ["transform", "load"] {
        let result = loaded.task(task).and_then(|r| r.result.clone());
        assert_eq!(result.as_ref(), Some(&big), "{task}");
    }
    // The consumer that set itself up again after the stall is gone with the read too.
    no_consumer_is_left(&server).await;
}

/// Reading runs (opening, loading, listing them) leaves no consumer on the server,
/// where each read's would count against the account's consumer limit for 30 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_leave_no_consumer_behind() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let journal = journal(&server).await;
    for id in ["read-1", "read-2", "read-3"] {
        let (run, opened) = opened_with_extract(&journal, id).await;
        drop(opened);
        assert_eq!(
            recorded_status(&journal, &run, "extract").await,
            Some(TaskStatus::Completed)
        );
        drop(journal.open(&run, &workflow()).await.expect("opens again"));
    }
    let listed = journal.list(&RunFilter::default()).await.expect("listed");
    assert_eq!(listed.len(), 3);
    no_consumer_is_left(&server).await;
}

/// Waits up to 10 s for the journal's stream on `server` to have no consumer left.
async fn no_consumer_is_left(server: &NatsServer) {
    let js = raw_jetstream(server).await;
    let mut stream = js.get_stream("ORCH_JOURNAL").await.expect("the stream");
    let mut left = 0;
    for _ in 0..100 {
        left = stream.info().await.expect("its state").state.consumer_count;
        if left == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{left} consumers left on the journal's stream");
}
