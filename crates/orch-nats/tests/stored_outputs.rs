//! Outputs too large for a result message, which a worker stores in the object store:
//! stored once the bucket has room again, and sent with a reason for leaving them out
//! of the journal that is itself too long for a message; and a handler's error too long
//! for a log line.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, object_store};
use common::NatsServer;
use orch_core::{RunId, Task, TaskStatus, Workflow};
use orch_engine::{
    Durability, FileJournal, Journal, Output, TaskContext, TaskError, WorkflowEngine,
};
use orch_nats::{RemoteHandler, Worker};
use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// A server whose messages are at most 64 KiB, so that outputs over that go to the
/// object store.
fn small_messages_server() -> Option<NatsServer> {
    NatsServer::start_with_config(Some("max_payload: 65536"))
}

/// An engine whose `remote` tasks run on workers, with `journal` if given.
async fn coordinator(server: &NatsServer, journal: Option<FileJournal>) -> WorkflowEngine {
    let remote = RemoteHandler::connect(&server.config())
        .await
        .expect("the coordinator connects");
    let mut builder = WorkflowEngine::builder();
    if let Some(journal) = journal {
        builder = builder.journal(journal, Durability::Process);
    }
    let engine = builder.build().expect("valid settings");
    engine.register_handler("remote", remote);
    engine
}

/// A worker's log, kept whole, whose waiters wake once a line holds `text`.
#[derive(Clone)]
struct WorkerLog {
    text: &'static str,
    seen: Arc<Notify>,
    kept: Arc<std::sync::Mutex<Vec<u8>>>,
}

impl WorkerLog {
    fn watching(text: &'static str) -> Self {
        let (seen, kept) = (Arc::default(), Arc::default());
        Self { text, seen, kept }
    }

    fn text(&self) -> String {
        String::from_utf8(self.kept.lock().expect("not poisoned").clone()).expect("UTF-8")
    }
}

impl std::io::Write for WorkerLog {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        self.kept
            .lock()
            .expect("not poisoned")
            .extend_from_slice(line);
        if String::from_utf8_lossy(line).contains(self.text) {
            self.seen.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `worker` on a thread and runtime of its own, logging to `log`, until `stop`.
fn run_logged(
    worker: orch_nats::WorkerBuilder,
    server: &NatsServer,
    log: &WorkerLog,
    stop: &CancellationToken,
) -> std::thread::JoinHandle<()> {
    let (config, stop, log) = (server.config(), stop.clone(), log.clone());
    std::thread::spawn(move || {
        let log = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || log.clone())
            .finish();
        let _log = tracing::subscriber::set_default(log);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async move {
            let worker = worker.connect(&config).await.expect("the worker connects");
            worker.run(stop).await;
        });
    })
}

/// A worker told to stop while it uploads a large output over a slow link gives the
/// upload up at the end of its grace period and hands the task back, which another
/// worker then runs: it once finished the upload first, stopping up to its result
/// patience (a minute here) late.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_worker_hands_back_a_task_whose_output_it_is_still_uploading() {
    let Some(server) = small_messages_server() else {
        return;
    };
    let engine = coordinator(&server, None).await;
    let link = Arc::new(common::Outage::relay_to(server.port()));
    let output = "x".repeat(4 << 20);
    let (uploading, ran_again) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let (link_slowed, told, big) = (Arc::clone(&link), Arc::clone(&uploading), output.clone());
    let slowed = Worker::builder()
        .shutdown_grace(Duration::from_millis(200))
        .handler("remote", move |_ctx: TaskContext| {
            // Each of the output's 65 parts then waits a second for the server's word.
            link_slowed.slow_replies(Duration::from_secs(1));
            told.notify_one();
            let big = big.clone();
            async move { Ok::<_, TaskError>(big) }
        })
        .connect(&orch_nats::NatsConfig::new(link.url()))
        .await
        .expect("the worker connects");
    let stop = CancellationToken::new();
    let slowed = tokio::spawn(slowed.run(stop.clone()));
    let workflow = Workflow::new("w", "W").task(Task::new("big", "remote"));
    let run = tokio::spawn(async move { engine.execute_workflow(&workflow).await });
    uploading.notified().await;
    stop.cancel();
    // A guard against waiting for ever, not a measure.
    let stopped = tokio::time::timeout(Duration::from_secs(20), slowed).await;
    stopped
        .expect("the worker stops without finishing the upload")
        .expect("no panic");

    let (told, big) = (Arc::clone(&ran_again), output.clone());
    let second = Worker::builder().handler("remote", move |_ctx: TaskContext| {
        told.notify_one();
        let big = big.clone();
        async move { Ok::<_, TaskError>(big) }
    });
    let stop = common::run_worker(&server, second).await;
    big_completed_once(run, Duration::from_secs(60), &output).await;
    // The second worker ran the task handed back.
    tokio::time::timeout(Duration::ZERO, ran_again.notified())
        .await
        .expect("the task ran on the second worker");
    stop.cancel();
}

/// A handler that ends in its cancel grace, once its stopping worker cancelled it, has
/// its large output stored, not handed back to run again: the stop came before the
/// upload, which it does not cut short.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_made_after_the_stop_is_stored_all_the_same() {
    let Some(server) = small_messages_server() else {
        return;
    };
    let engine = coordinator(&server, None).await;
    let output = "x".repeat(4 << 20);
    let (started, calls) = (Arc::new(Notify::new()), Arc::new(AtomicU32::new(0)));
    let (told, counted, big) = (Arc::clone(&started), Arc::clone(&calls), output.clone());
    let worker = Worker::builder()
        .shutdown_grace(Duration::from_millis(100))
        .handler("remote", move |ctx: TaskContext| {
            counted.fetch_add(1, Ordering::SeqCst);
            told.notify_one();
            let big = big.clone();
            async move {
                ctx.cancellation().cancelled().await;
                Ok::<_, TaskError>(big)
            }
        });
    let stop = common::run_worker(&server, worker).await;
    let workflow = Workflow::new("w", "W").task(Task::new("big", "remote"));
    let run = tokio::spawn(async move { engine.execute_workflow(&workflow).await });
    started.notified().await;
    stop.cancel();
    big_completed_once(run, Duration::from_secs(30), &output).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// Waits for `run` (`guard` at most, against waiting for ever, not as a measure), whose
/// task `big` must have completed in one attempt with `output`.
async fn big_completed_once(
    run: tokio::task::JoinHandle<Result<orch_core::WorkflowResult, orch_engine::RunError>>,
    guard: Duration,
    output: &str,
) {
    let result = tokio::time::timeout(guard, run)
        .await
        .expect("the run ends")
        .expect("no panic")
        .expect("valid");
    let big = result.task("big").expect("a task");
    assert_eq!((big.status, big.attempts), (TaskStatus::Completed, 1));
    assert_eq!(big.result, Some(json!(output)));
}

/// A worker tries storing a large output again while its patience lasts: here the
/// bucket is full until the test deletes an object from it, once the worker logged that
/// its first try failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_the_full_bucket_refuses_at_first_is_stored_once_there_is_room() {
    let Some(server) = small_messages_server() else {
        return;
    };
    let js = jetstream::new(async_nats::connect(server.url()).await.expect("connects"));
    // Made before the coordinator, which then uses it: room for 2.5 MiB, 2 of them taken.
    let bucket = js
        .create_object_store(object_store::Config {
            bucket: "ORCH_RESULTS".to_owned(),
            max_bytes: 5 << 19,
            ..Default::default()
        })
        .await
        .expect("the bucket");
    let filler = vec![b'f'; 2 << 20];
    let filler_meta = object_store::ObjectMetadata {
        name: "filler".to_owned(),
        chunk_size: Some(32 << 10),
        ..Default::default()
    };
    (bucket.put(filler_meta, &mut filler.as_slice()).await).expect("stored");
    let stop = CancellationToken::new();
    let worker = Worker::builder().handler("remote", |_ctx: TaskContext| async move {
        Ok::<_, TaskError>("x".repeat(1 << 20))
    });
    let failed = WorkerLog::watching("storing an output failed; trying again");
    run_logged(worker, &server, &failed, &stop);
    let deleted = async {
        failed.seen.notified().await;
        bucket.delete("filler").await.expect("deleted");
    };
    let engine = coordinator(&server, None).await;
    let workflow = Workflow::new("w", "W").task(Task::new("big", "remote"));
    let run = async { tokio::join!(engine.execute_workflow(&workflow), deleted).0 };
    // A guard against waiting for ever, not a measure.
    let result = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the run ends")
        .expect("valid");
    let big = result.task("big").expect("a task");
    assert_eq!(
        (big.status, big.attempts, big.error.as_deref()),
        (TaskStatus::Completed, 1, None)
    );
    assert_eq!(big.result, Some(json!("x".repeat(1 << 20))));
    stop.cancel();
}

/// A handler's error of megabytes reaches the coordinator cut to fit a result message,
/// and the worker's log holds only its start, saying how much it left out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_handler_error_is_logged_by_its_start() {
    let Some(server) = small_messages_server() else {
        return;
    };
    let long = "é".repeat(1 << 20);
    let error = long.clone();
    let worker = Worker::builder().handler("remote", move |_ctx: TaskContext| {
        let error = error.clone();
        async move { Err::<(), _>(TaskError::permanent(error)) }
    });
    let (log, stop) = (
        WorkerLog::watching("the task failed"),
        CancellationToken::new(),
    );
    let worker_thread = run_logged(worker, &server, &log, &stop);
    let engine = coordinator(&server, None).await;
    let workflow = Workflow::new("w", "W").task(Task::new("loud", "remote"));
    // A guard against waiting for ever, not a measure.
    let result = tokio::time::timeout(Duration::from_secs(60), engine.execute_workflow(&workflow))
        .await
        .expect("the run ends")
        .expect("valid");
    stop.cancel();
    worker_thread.join().expect("the worker's thread ends");
    let loud = result.task("loud").expect("a task");
    assert_eq!(loud.status, TaskStatus::Failed);
    let recorded = loud.error.as_deref().expect("an error");
    assert!(recorded.starts_with(&long[..1000]), "{}", &recorded[..100]);
    let log = log.text();
    let line = (log.lines().find(|line| line.contains("the task failed")))
        .unwrap_or_else(|| panic!("no failure logged in {log}"));
    assert!(line.len() < 8 << 10, "a log line of {} bytes", line.len());
    let left_out = long.len() - 4096;
    assert!(line.contains(&format!(
        "{}… [{left_out} more bytes not logged]",
        &long[..4096]
    )));
}

/// What a worker's handler leaves under its own attempt's name in the bucket.
#[derive(Clone, Copy)]
enum Earlier {
    /// The output, whole.
    Whole,
    /// The output's description, its parts removed.
    PartsGone,
    /// The output, and one more part that its digest does not cover (a space: the
    /// JSON read whole is still valid).
    ExtraPart,
    /// A link to another object holding the output.
    Link,
    /// A link to itself.
    SelfLink,
}

/// Runs task `big` on a worker whose handler first stores `earlier` (as JSON) as its own
/// attempt's output (as a delivery that died before reporting it would have), in the
/// way `how` says, then returns an output too large for a message.
async fn run_after_an_earlier_store(
    server: &NatsServer,
    earlier: serde_json::Value,
    how: Earlier,
) -> orch_core::TaskRecord {
    let engine = coordinator(server, None).await;
    let js = jetstream::new(async_nats::connect(server.url()).await.expect("connects"));
    let bucket = js
        .get_object_store("ORCH_RESULTS")
        .await
        .expect("the bucket");
    let stop = CancellationToken::new();
    let worker = Worker::builder()
        .handler("remote", move |ctx: TaskContext| {
            let (bucket, js, earlier) = (bucket.clone(), js.clone(), earlier.clone());
            async move {
                let name = format!("{}.{}.{}", ctx.run_id(), ctx.task_id(), ctx.attempt());
                let earlier = serde_json::to_vec(&earlier).expect("JSON");
                let meta = object_store::ObjectMetadata {
                    name: match how {
                        Earlier::Link | Earlier::SelfLink => "another".to_owned(),
                        _ => name.clone(),
                    },
                    chunk_size: Some(16 << 10),
                    ..Default::default()
                };
                let info = (bucket.put(meta, &mut earlier.as_slice()).await).expect("stored");
                match how {
                    Earlier::Whole => {}
                    Earlier::PartsGone => {
                        let objects = js.get_stream("OBJ_ORCH_RESULTS").await.expect("found");
                        let parts = format!("$O.ORCH_RESULTS.C.{}", info.nuid);
                        (objects.purge().filter(parts).await).expect("its parts removed");
                    }
                    Earlier::ExtraPart => {
                        let parts = format!("$O.ORCH_RESULTS.C.{}", info.nuid);
                        let sent = js.publish(parts, " ".into()).await.expect("sent");
                        sent.await.expect("stored");
                    }
                    Earlier::Link => drop(bucket.add_link(name, &info).await.expect("linked")),
                    Earlier::SelfLink => {
                        let itself = json!({"name": name, "bucket": "ORCH_RESULTS"});
                        let itself: object_store::ObjectInfo =
                            serde_json::from_value(itself).expect("an object's description");
                        drop(bucket.add_link(name, &itself).await.expect("linked"));
                    }
                }
                Ok::<_, TaskError>("x".repeat(1 << 17))
            }
        })
        .connect(&server.config())
        .await
        .expect("the worker connects");
    tokio::spawn(worker.run(stop.clone()));
    let workflow = Workflow::new("w", "W").task(Task::new("big", "remote"));
    // A guard against waiting for ever, not a measure.
    let result = tokio::time::timeout(Duration::from_secs(60), engine.execute_workflow(&workflow))
        .await
        .expect("the run ends")
        .expect("valid");
    stop.cancel();
    result.task("big").expect("a task").clone()
}

/// An output already stored for the attempt (by a delivery that died before reporting
/// it) is kept, not stored again: replacing it would upload it all again, and need a
/// right to purge the bucket that workers are not given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_already_stored_for_the_attempt_is_kept() {
    let Some(server) = small_messages_server() else {
        return;
    };
    let big = run_after_an_earlier_store(&server, json!("earlier"), Earlier::Whole).await;
    assert_eq!(big.status, TaskStatus::Completed, "{:?}", big.error);
    assert_eq!(big.result, Some(json!("earlier")));
}

/// A stored output whose parts are gone (expired, purged) while its description stays
/// fails its attempt once no part comes for a while, rather than keeping the run
/// waiting for ever for parts that will not come.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_output_whose_parts_are_gone_fails_its_attempt() {
    let Some(server) = small_messages_server() else {
        return;
    };
    let big =
        run_after_an_earlier_store(&server, json!("y".repeat(1 << 17)), Earlier::PartsGone).await;
    assert_eq!(big.status, TaskStatus::Failed);
    let error = big.error.as_deref().unwrap_or_default();
    assert!(
        error.starts_with("cannot read the stored output") && error.contains("no part"),
        "{error}"
    );
}

/// A stored output whose parts do not match its digest (one part more than stored)
/// fails its attempt rather than being taken as its output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_output_whose_parts_do_not_match_its_digest_fails_its_attempt() {
    let Some(server) = small_messages_server() else {
        return;
    };
    let earlier = json!("z".repeat(1 << 17));
    let big = run_after_an_earlier_store(&server, earlier, Earlier::ExtraPart).await;
    assert_eq!(big.status, TaskStatus::Failed);
    let error = big.error.as_deref().unwrap_or_default();
    assert!(error.contains("do not match its digest"), "{error}");
}

/// A link under the attempt's name is not the attempt's own output: the object it
/// names (another attempt's, another bucket's) is not taken as this attempt's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_in_place_of_a_stored_output_fails_its_attempt() {
    let Some(server) = small_messages_server() else {
        return;
    };
    let big = run_after_an_earlier_store(&server, json!("someone else's"), Earlier::Link).await;
    assert_eq!(big.status, TaskStatus::Failed);
    let error = big.error.as_deref().unwrap_or_default();
    assert!(error.contains("is a link to `another`"), "{error}");
    // A link to itself is refused before it is followed (and followed again, for as long
    // as the coordinator waits).
    let big = run_after_an_earlier_store(&server, json!("unused"), Earlier::SelfLink).await;
    assert_eq!(big.status, TaskStatus::Failed);
    let error = big.error.as_deref().unwrap_or_default();
    assert!(
        error.contains(".big.1` in bucket `ORCH_RESULTS`"),
        "{error}"
    );
}

/// A reason for leaving an output out of the journal too long for a result message is
/// cut to fit, as an error's text is; before, the result could never be sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_not_journaled_reason_too_long_for_a_message_is_cut_to_fit() {
    let Some(server) = small_messages_server() else {
        return;
    };
    let stop = CancellationToken::new();
    let worker = Worker::builder()
        .result_patience(Duration::from_secs(2))
        .handler("remote", |_ctx: TaskContext| async move {
            Ok::<_, TaskError>(Output::from(json!("small")).not_journaled("why ".repeat(50_000)))
        })
        .connect(&server.config())
        .await
        .expect("the worker connects");
    tokio::spawn(worker.run(stop.clone()));
    let dir = tempfile::tempdir().expect("a directory");
    let journal = FileJournal::new(dir.path()).expect("a journal");
    let engine = coordinator(&server, Some(journal)).await;
    let workflow = Workflow::new("w", "W").task(Task::new("small", "remote"));
    let run_id = RunId::parse("r").expect("an id");
    let run = engine.run_durable(&workflow, run_id.clone());
    let result = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the run ends")
        .expect("valid");
    let small = result.task("small").expect("a task");
    assert_eq!(
        (small.status, small.result.clone()),
        (TaskStatus::Completed, Some(json!("small")))
    );
    let loaded = FileJournal::new(dir.path())
        .expect("a journal")
        .load(&run_id)
        .await
        .expect("readable")
        .expect("recorded");
    let recorded = loaded.task("small").expect("recorded");
    let reason = recorded.result.as_ref().expect("the reason")["not_journaled"]
        .as_str()
        .expect("a text")
        .to_owned();
    assert!(reason.starts_with("why why "), "{}", &reason[..40]);
    assert!(
        reason.ends_with("more bytes cut: the text was longer than a result message may be]"),
        "{}",
        &reason[reason.len() - 100..]
    );
    stop.cancel();
}

/// A results stream an administrator made with a largest message below the server's
/// `max_payload`: an output over it goes to the object store, as one over `max_payload`
/// does. Before, the worker's result was refused, and the task ran again until it was
/// lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_over_the_results_streams_own_limit_is_stored() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let js = jetstream::new(async_nats::connect(server.url()).await.expect("connects"));
    js.create_stream(jetstream::stream::Config {
        name: "ORCH_RESULTS".to_owned(),
        subjects: vec!["orch.result.>".to_owned()],
        max_message_size: 8 << 10,
        ..Default::default()
    })
    .await
    .expect("the results stream, made by hand");
    let stop = CancellationToken::new();
    let calls = Arc::new(AtomicU32::new(0));
    let worker = Worker::builder().handler("remote", {
        let calls = Arc::clone(&calls);
        move |_ctx: TaskContext| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<_, TaskError>("x".repeat(64 << 10)) }
        }
    });
    run_logged(worker, &server, &WorkerLog::watching("-"), &stop);
    let engine = coordinator(&server, None).await;
    let workflow = Workflow::new("w", "W").task(Task::new("big", "remote"));
    let run = tokio::spawn(async move { engine.execute_workflow(&workflow).await });
    big_completed_once(run, Duration::from_secs(30), &"x".repeat(64 << 10)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the handler ran once");
    stop.cancel();
}
