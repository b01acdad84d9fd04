//! The streams and consumers coordinators and workers share ([`Layout`] gives their
//! settings), and how they are found or created on the server.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};

use crate::ConnectError;
use crate::layout::Layout;
use crate::protocol::Names;

/// What the tasks and results streams were found or made with.
pub(crate) struct Streams {
    /// The tasks stream's duplicate window (a stream found may have another than the
    /// layout's).
    pub(crate) window: Duration,
    /// The results stream's largest message, if it sets one.
    results_largest: Option<usize>,
}

impl Streams {
    /// The largest result message: the server's `max_payload`, or the results stream's
    /// own limit when an administrator set a smaller one.
    pub(crate) fn result_limit(&self, max_payload: usize) -> usize {
        self.results_largest
            .map_or(max_payload, |l| l.min(max_payload))
    }
}

/// Finds or creates the tasks stream (a work queue) and the results stream.
pub(crate) async fn ensure_streams(
    js: &jetstream::Context,
    layout: &Layout,
) -> Result<Streams, ConnectError> {
    let names = layout.names();
    let tasks = stream::Config {
        name: names.tasks_stream().to_owned(),
        subjects: vec![names.all_tasks()],
        retention: stream::RetentionPolicy::WorkQueue,
        storage: stream::StorageType::File,
        duplicate_window: layout.duplicate_window,
        ..Default::default()
    };
    let results = stream::Config {
        name: names.results_stream().to_owned(),
        subjects: vec![names.all_results()],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        max_age: layout.result_retention,
        duplicate_window: layout.duplicate_window,
        ..Default::default()
    };
    let tasks = ensure_stream(js, tasks).await?;
    let results = ensure_stream(js, results).await?;
    Ok(Streams {
        window: tasks.duplicate_window,
        results_largest: usize::try_from(results.max_message_size)
            .ok()
            .filter(|&n| n > 0),
    })
}

/// The stream that keeps the server's advisories about task messages that ran out of
/// deliveries, as a coordinator found it.
pub(crate) struct LostStream {
    /// How long the advisories matter: the tasks stream's duplicate window (or the
    /// layout's, if longer). A coordinator that comes back on a run within it finds
    /// there what happened to the messages it sent before; older advisories cannot
    /// concern a message it sends again, and are dropped.
    pub(crate) window: Duration,
    /// Whether the stream is there (a coordinator that may not set it up goes on
    /// without it).
    pub(crate) kept: bool,
}

/// Finds or creates the stream that keeps the server's advisories about task messages
/// that ran out of deliveries. A coordinator that may not set it up goes on without it
/// (with a warning).
pub(crate) async fn ensure_lost_stream(js: &jetstream::Context, layout: &Layout) -> LostStream {
    let names = layout.names();
    let mut window = layout.duplicate_window;
    if let Ok(tasks) = js.get_stream(names.tasks_stream()).await {
        window = window.max(tasks.cached_info().config.duplicate_window);
    }
    let lost = stream::Config {
        name: names.lost_stream(),
        subjects: vec![names.max_deliveries_advisory()],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        max_age: window,
        ..Default::default()
    };
    let kept = ensure_kept_stream(
        js,
        lost,
        "tasks that run out of deliveries while no coordinator listens, or while its connection is down, will not be known to it",
    )
    .await;
    LostStream { window, kept }
}

/// Finds or creates the stream that keeps cancellations for as long as results (at most
/// [`CANCELS_KEPT_BYTES`] of them, the oldest dropped first), so that a worker whose
/// connection was down hears those sent meanwhile; whether it is there. A process that
/// may not set it up goes on without it (with a warning).
pub(crate) async fn ensure_cancels_stream(js: &jetstream::Context, layout: &Layout) -> bool {
    let names = layout.names();
    let cancels = stream::Config {
        name: names.cancels_stream(),
        subjects: vec![names.all_cancels()],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        max_age: layout.result_retention,
        max_bytes: CANCELS_KEPT_BYTES,
        discard: stream::DiscardPolicy::Old,
        ..Default::default()
    };
    ensure_kept_stream(
        js,
        cancels,
        "a worker will not hear the cancellations sent while its connection is down",
    )
    .await
}

/// The most bytes of cancellations kept (a burst of timeouts in a wide map sends one per
/// attempt; a worker needs only the recent ones).
const CANCELS_KEPT_BYTES: i64 = 64 << 20;

/// Finds or creates a stream that only makes the protocol more robust; whether it is
/// there. Without it, the warning says what is `missed`.
async fn ensure_kept_stream(js: &jetstream::Context, config: stream::Config, missed: &str) -> bool {
    match ensure_stream(js, config).await {
        Ok(_) => true,
        Err(error) => {
            tracing::warn!(%error, "{missed}");
            false
        }
    }
}

const NAME_TAKEN: jetstream::ErrorCode = jetstream::ErrorCode::STREAM_NAME_EXIST;
const SUBJECTS_TAKEN: jetstream::ErrorCode = jetstream::ErrorCode::STREAM_SUBJECT_OVERLAP;

/// Finds or creates stream `config.name`; returns its settings as they are.
async fn ensure_stream(
    js: &jetstream::Context,
    config: stream::Config,
) -> Result<stream::Config, ConnectError> {
    use jetstream::context::{CreateStreamErrorKind, GetStreamErrorKind};
    let name = config.name.clone();
    let what = || format!("stream `{name}`");
    match js.get_stream(&name).await {
        Ok(stream) => return usable(&config, stream.cached_info().config.clone()),
        Err(error) => match error.kind() {
            GetStreamErrorKind::JetStream(e)
                if e.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND => {}
            GetStreamErrorKind::Request => return Err(no_jetstream_or(what(), &error)),
            _ => return Err(setup(what(), &error)),
        },
    }
    match js.create_stream(config.clone()).await {
        Ok(created) => Ok(created.cached_info().config.clone()),
        Err(error) => match error.kind() {
            CreateStreamErrorKind::JetStreamUnavailable => Err(ConnectError::NoJetStream {
                reason: error.to_string(),
            }),
            // Another process created it meanwhile (a server may say so as its subjects
            // being taken); if none has its name, another stream holds its subjects.
            CreateStreamErrorKind::JetStream(e)
                if [NAME_TAKEN, SUBJECTS_TAKEN].contains(&e.error_code()) =>
            {
                // The look-up's own error, unless another stream holds the subjects.
                let name_taken = e.error_code() == NAME_TAKEN;
                let stream = js
                    .get_stream(&name)
                    .await
                    .map_err(|found| match name_taken {
                        true => setup(what(), &found),
                        false => setup(what(), &error),
                    })?;
                usable(&config, stream.cached_info().config.clone())
            }
            _ => Err(not_made(what(), &error)),
        },
    }
}

/// The error for a stream that was not there and could not be created: a worker's user
/// usually may not create streams, so a worker started before any coordinator ends here.
fn not_made(what: String, error: &dyn std::fmt::Display) -> ConnectError {
    unanswered(
        what,
        error,
        " (it does not exist yet, and the server did not answer the request to create it, \
         as it does when this user may not create streams: start first a process whose \
         user may, usually a coordinator, or have an administrator create the streams)",
    )
}

/// Stream `found`'s settings, found where one made with `wanted` was to be: refused
/// when it takes none of the subjects `wanted` takes, or keeps its messages otherwise
/// (a tasks stream made with other than work-queue retention keeps every task
/// acknowledged or refused, and its attempts would wait on them for ever).
fn usable(wanted: &stream::Config, found: stream::Config) -> Result<stream::Config, ConnectError> {
    let subjects = wanted.subjects.first().map_or("", String::as_str);
    holds_subjects(&wanted.name, &found, subjects)?;
    if found.retention != wanted.retention {
        return Err(ConnectError::Setup {
            what: format!("stream `{}`", wanted.name),
            reason: format!(
                "its retention is {:?}, and orch needs {:?}: delete the stream and let orch \
                 make it, or make it with that retention",
                found.retention, wanted.retention
            ),
        });
    }
    Ok(found)
}

/// Refuses stream `name`, found with `config`, unless it takes some of the subjects of
/// pattern `wanted` (this prefix's): a stream of that name made for another prefix
/// (stream names keep only a prefix's letters and digits, upper-cased) would take none
/// of this prefix's messages. A stream made by hand with narrower or wider subjects is
/// fine.
pub(crate) fn holds_subjects(
    name: &str,
    config: &stream::Config,
    wanted: &str,
) -> Result<(), ConnectError> {
    if config
        .subjects
        .iter()
        .any(|pattern| overlap(pattern, wanted))
    {
        return Ok(());
    }
    Err(ConnectError::Setup {
        what: format!("stream `{name}`"),
        reason: format!(
            "it takes subjects {:?}, none of this prefix's `{wanted}`: it was made for \
             another prefix that gives the same stream name (names keep a prefix's \
             letters and digits, upper-cased); choose a prefix that gives another name",
            config.subjects
        ),
    })
}

/// Whether NATS subject patterns `a` and `b` take some subject in common.
fn overlap(a: &str, b: &str) -> bool {
    let (mut a, mut b) = (a.split('.'), b.split('.'));
    loop {
        match (a.next(), b.next()) {
            (Some(">"), Some(_)) | (Some(_), Some(">")) | (None, None) => return true,
            (Some(x), Some(y)) if x == "*" || y == "*" || x == y => {}
            _ => return false,
        }
    }
}

/// Finds or creates the durable pull consumer of `task_type`'s tasks; returns the
/// settings it has (which may predate this layout).
pub(crate) async fn ensure_consumer(
    js: &jetstream::Context,
    layout: &Layout,
    task_type: &str,
) -> Result<consumer::Config, ConnectError> {
    // One delivery more, which a worker answers with the "worker lost" result.
    let max_deliver = i64::from(layout.max_deliver) + 1;
    ensure_consumer_delivering(js, layout, task_type, max_deliver).await
}

/// As [`ensure_consumer`], creating it (if missing) with this `max_deliver`, as the
/// server counts it (-1 for any number).
pub(crate) async fn ensure_consumer_delivering(
    js: &jetstream::Context,
    layout: &Layout,
    task_type: &str,
    max_deliver: i64,
) -> Result<consumer::Config, ConnectError> {
    use jetstream::stream::ConsumerErrorKind;
    let names = layout.names();
    let name = Names::consumer(task_type);
    let stream = names.tasks_stream();
    let what = || format!("consumer `{name}` of stream `{stream}` (task type `{task_type}`)");
    match js
        .get_consumer_from_stream::<consumer::pull::Config, _, _>(&name, stream)
        .await
    {
        Ok(mut consumer) => {
            return Ok(consumer
                .info()
                .await
                .map_err(|e| setup(what(), &e))?
                .config
                .clone());
        }
        Err(error) => match error.kind() {
            ConsumerErrorKind::JetStream(e)
                if e.error_code() == jetstream::ErrorCode::CONSUMER_NOT_FOUND => {}
            _ => return Err(setup(what(), &error)),
        },
    }
    let config = consumer::pull::Config {
        durable_name: Some(name.clone()),
        description: Some(format!("orch tasks of type `{task_type}`")),
        filter_subject: names.task_subject(task_type),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: layout.ack_wait,
        max_deliver,
        max_ack_pending: i64::from(layout.max_in_flight),
        deliver_policy: consumer::DeliverPolicy::All,
        ..Default::default()
    };
    match js.create_consumer_on_stream(config, stream).await {
        Ok(mut consumer) => Ok(consumer
            .info()
            .await
            .map_err(|e| setup(what(), &e))?
            .config
            .clone()),
        Err(error) => Err(setup(what(), &error)),
    }
}

/// The error for `what` that could not be set up, with a hint when the server did not
/// answer (a request refused for want of permission goes unanswered).
pub(crate) fn setup(what: String, error: &dyn std::fmt::Display) -> ConnectError {
    unanswered(
        what,
        error,
        " (the server did not answer: may this user use it? see the permissions in the orch-nats docs)",
    )
}

/// The error for `what` that could not be set up, with `hint` added when the request
/// timed out: the server leaves a request this user may not make unanswered.
fn unanswered(what: String, error: &dyn std::fmt::Display, hint: &str) -> ConnectError {
    let mut reason = error.to_string();
    if reason.contains("timed out") {
        reason.push_str(hint);
    }
    ConnectError::Setup { what, reason }
}

/// A request with no answer: JetStream is off, or the user may not use its API.
fn no_jetstream_or(what: String, error: &dyn std::fmt::Display) -> ConnectError {
    let reason = error.to_string();
    if reason.contains("no responders") || reason.contains("does not exist") {
        ConnectError::NoJetStream { reason }
    } else {
        ConnectError::Setup {
            what,
            reason: format!("{reason} (is this user allowed to use the JetStream API?)"),
        }
    }
}

/// Returns once the server has read everything this connection sent before: a request
/// on `probe` (a subject this connection may publish to) answered by the server, with a
/// reply or its "no responders" status, was read after it.
pub(crate) async fn round_trip(
    client: &async_nats::Client,
    probe: String,
) -> Result<(), async_nats::RequestError> {
    use async_nats::client::RequestErrorKind;
    match client.request(probe, bytes::Bytes::new()).await {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == RequestErrorKind::NoResponders => Ok(()),
        Err(error) => Err(error),
    }
}

/// Returns once the server has processed everything this connection sent before, its
/// subscriptions included, so that a message anyone publishes afterwards reaches them.
///
/// `Client::flush` only writes the connection's buffer to the socket: the server may
/// not have read the subscriptions yet when another connection publishes. A request
/// answered by the server (a reply, or its "no responders" status) is read after them,
/// so its answer proves they are in place. `probe` is a subject this connection may
/// publish to: a JetStream API subject it uses anyway, or a fresh inbox.
pub(crate) async fn subscriptions_in_place(
    client: &async_nats::Client,
    probe: String,
    what: &str,
) -> Result<(), ConnectError> {
    match round_trip(client, probe.clone()).await {
        Ok(()) => Ok(()),
        Err(error) => Err(ConnectError::Setup {
            what: what.to_owned(),
            reason: format!(
                "the server did not answer a request on `{probe}` that confirms them: {error} \
                 (may this user publish there?)"
            ),
        }),
    }
}
