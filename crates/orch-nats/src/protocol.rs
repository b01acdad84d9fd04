//! The messages coordinators and workers exchange, and the subjects and names they use
//! (described for users in the crate docs, under "Protocol").

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use orch_core::{MapSpec, RunId, Task, TaskId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

mod version;
pub(crate) use version::{ReadError, read};

/// The version of every message this crate writes but a task message with an item.
pub(crate) const VERSION: u32 = 1;

/// The version of a task message that carries an item ([`TaskMessage::item`]), and the
/// newest a reader accepts. Only such messages are written as version 2, so that workers
/// of an older build still run plain tasks and refuse only map instances, with an error
/// the coordinator reports.
pub(crate) const NEWEST: u32 = 2;

/// One attempt of one task, published on the tasks stream. For an instance of a map task,
/// `task.task_id` is the instance's id (`square[2]`), which names the attempt everywhere
/// (message id, result, cancellation), and `item` holds its element; the worker's handler
/// sees the map task's own id, as it would in the engine. A coordinator writes it from
/// borrowed parts (`TaskMessage<&Task, _>`); a worker reads it into owned ones.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct TaskMessage<T = Task, I = Map<String, Value>> {
    pub(crate) v: u32,
    pub(crate) run_id: RunId,
    pub(crate) workflow_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) workflow_name: String,
    /// The task's definition as a worker reads it (see `remote::message`): id, name,
    /// type, config, dependencies, retries, backoff, timeout and, for a map instance,
    /// its map.
    pub(crate) task: T,
    pub(crate) attempt: u32,
    /// The outputs of the ancestors the task may read, by task id.
    #[serde(default)]
    pub(crate) inputs: I,
    /// When the coordinator stops waiting for this attempt (milliseconds since the Unix
    /// epoch, by the coordinator's clock); none for no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) deadline_ms: Option<u64>,
    /// A W3C `traceparent` naming this attempt, for logs and traces on the worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) traceparent: Option<String>,
    /// For an instance of a map task: its element (version 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) item: Option<MessageItem>,
    /// Whether the attempt is taken up again from an earlier run that stopped before
    /// recording it (`TaskContext::resumed` on the coordinator).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) resumed: bool,
}

/// The element one instance of a map task runs for, and its position in the list.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct MessageItem {
    pub(crate) index: usize,
    pub(crate) value: Value,
}

impl TaskMessage {
    /// The version to write this message as: 2 with an item, 1 without.
    pub(crate) fn version_for(item: Option<&MessageItem>) -> u32 {
        if item.is_some() { NEWEST } else { VERSION }
    }

    /// Takes the item out, giving the map task back its own id (the message names the
    /// instance); an instance id that does not end in the item's position is an error.
    pub(crate) fn take_item(&mut self) -> Result<Option<MessageItem>, String> {
        let Some(item) = self.item.take() else {
            return Ok(None);
        };
        let id = self.task.task_id.as_str();
        let named = MapSpec::parse_instance_id(id).filter(|&(_, index)| index == item.index);
        let Some((map, _)) = named else {
            return Err(format!(
                "task `{id}` carries element {} of a map, but its id is not that instance's",
                item.index
            ));
        };
        self.task.task_id = TaskId::from(map);
        Ok(Some(item))
    }
}

/// What a worker can read from a task message it cannot fully read: enough to tell the
/// coordinator that the attempt failed.
#[derive(Debug, Deserialize)]
pub(crate) struct Envelope {
    pub(crate) run_id: RunId,
    pub(crate) task: EnvelopeTask,
    pub(crate) attempt: u32,
    #[serde(default)]
    pub(crate) deadline_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct EnvelopeTask {
    pub(crate) task_id: TaskId,
}

/// How one attempt ended, published by a worker on the results stream.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ResultMessage {
    pub(crate) v: u32,
    pub(crate) run_id: RunId,
    pub(crate) task_id: TaskId,
    pub(crate) attempt: u32,
    /// The name of the worker that ran it.
    #[serde(default)]
    pub(crate) worker: String,
    pub(crate) outcome: Outcome,
}

/// The end of one attempt.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "status", rename_all = "snake_case")]
pub(crate) enum Outcome {
    /// The handler returned `output`; `not_journaled`: the reason it gave for keeping
    /// the output out of a journal ([`Output::not_journaled`](orch_engine::Output::not_journaled)),
    /// if it did.
    Completed {
        output: Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        not_journaled: Option<String>,
    },
    /// The handler returned an output too large for a result message: it is object
    /// `object` (the attempt's message id) in the results' object store bucket, `bytes`
    /// of JSON; `not_journaled` as for `Completed`.
    Stored {
        object: String,
        bytes: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        not_journaled: Option<String>,
    },
    /// The handler failed; `error` is the whole chain of messages.
    Failed {
        error: String,
        #[serde(default)]
        permanent: bool,
    },
    /// The handler skipped its task.
    Skipped { reason: String },
}

/// Asks workers to cancel a run's attempts: all of them, or one task's attempt (when it
/// names both the task and the attempt; a worker ignores one that names only one of them).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct CancelMessage {
    pub(crate) v: u32,
    pub(crate) run_id: RunId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) task_id: Option<TaskId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) attempt: Option<u32>,
    /// The last task message (stream sequence on the tasks stream) the cancellation
    /// covers; a message sent later, the attempt sent again by a coordinator that came
    /// back on the run, still runs. Absent: every message of the run or attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) up_to_sequence: Option<u64>,
    /// A time by which every message the cancellation covers was stored: when the tasks
    /// stream stored its last message (or was made, if later), read as the cancellation
    /// was sent (nanoseconds since the Unix epoch, by the server's clock). A message
    /// stored later is not covered, though its sequence is lower (the stream was made
    /// anew since). Absent: no bound by time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) up_to_stored_ns: Option<i64>,
}

/// `at` in nanoseconds since the Unix epoch, as close as an `i64` holds (an empty
/// stream's last message time, the year 1, is below it).
pub(crate) fn nanos(at: async_nats::datetime::DateTime) -> i64 {
    let nanos = at.unix_timestamp_nanos();
    i64::try_from(nanos).unwrap_or(if nanos < 0 { i64::MIN } else { i64::MAX })
}

/// What a coordinator reads of a result message it cannot read whole: which attempt the
/// result ends, and the worker that sent it.
#[derive(Debug, Deserialize)]
struct ResultHead {
    run_id: RunId,
    task_id: TaskId,
    attempt: u32,
    #[serde(default)]
    worker: String,
}

impl ResultMessage {
    /// Reads a result message. One that names its attempt but cannot be read whole (it
    /// is malformed, nested too deep, or of a newer version) reads as that attempt's
    /// failure, so that the coordinator does not wait for the attempt for ever; an error
    /// only when not even the attempt can be read.
    pub(crate) fn read_or_failure(payload: &[u8]) -> Result<Self, ReadError> {
        let error = match read::<Self>(payload) {
            Ok(result) => return Ok(result),
            Err(error) => error,
        };
        let Ok(head) = serde_json::from_slice::<ResultHead>(payload) else {
            return Err(error);
        };
        Ok(Self {
            v: VERSION,
            outcome: Outcome::Failed {
                error: format!(
                    "the result from worker `{}` cannot be read: {error}",
                    head.worker
                ),
                permanent: false,
            },
            run_id: head.run_id,
            task_id: head.task_id,
            attempt: head.attempt,
            worker: head.worker,
        })
    }
}

/// Writes `value` as JSON; a message is made of JSON values only, so this cannot fail.
pub(crate) fn write(value: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// The subjects and stream names under one prefix.
#[derive(Clone, Debug)]
pub(crate) struct Names {
    prefix: String,
    tasks_stream: String,
    results_stream: String,
}

impl Names {
    pub(crate) fn new(prefix: &str) -> Self {
        let stem: String = prefix
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        Self {
            prefix: prefix.to_owned(),
            tasks_stream: format!("{stem}_TASKS"),
            results_stream: format!("{stem}_RESULTS"),
        }
    }

    pub(crate) fn tasks_stream(&self) -> &str {
        &self.tasks_stream
    }

    pub(crate) fn results_stream(&self) -> &str {
        &self.results_stream
    }

    /// The stream of the JetStream journal (`<STEM>_JOURNAL`).
    #[cfg(feature = "journal")]
    pub(crate) fn journal_stream(&self) -> String {
        format!("{}_JOURNAL", self.stem())
    }

    /// The stream that keeps the server's advisories about task messages that ran out of
    /// deliveries (`<STEM>_LOST`), for a coordinator that was away when one came.
    pub(crate) fn lost_stream(&self) -> String {
        format!("{}_LOST", self.stem())
    }

    /// The stream that keeps cancellations (`<STEM>_CANCELS`), for a worker whose
    /// connection was down when one was sent.
    pub(crate) fn cancels_stream(&self) -> String {
        format!("{}_CANCELS", self.stem())
    }

    fn stem(&self) -> &str {
        self.tasks_stream
            .strip_suffix("_TASKS")
            .unwrap_or(&self.tasks_stream)
    }

    /// The object store bucket of outputs too large for a result message (stream
    /// `OBJ_<bucket>`).
    pub(crate) fn results_bucket(&self) -> &str {
        &self.results_stream
    }

    /// The JetStream API subject that answers with the tasks stream's state; every
    /// coordinator and worker may request it.
    pub(crate) fn tasks_stream_info(&self) -> String {
        format!("$JS.API.STREAM.INFO.{}", self.tasks_stream)
    }

    /// `<prefix>.task.>`: every task subject.
    pub(crate) fn all_tasks(&self) -> String {
        format!("{}.task.>", self.prefix)
    }

    /// `<prefix>.task.<type>`: where attempts of tasks of `task_type` are published.
    pub(crate) fn task_subject(&self, task_type: &str) -> String {
        format!("{}.task.{}", self.prefix, token(task_type))
    }

    /// The durable consumer of `task_type`'s tasks.
    pub(crate) fn consumer(task_type: &str) -> String {
        token(task_type)
    }

    /// `<prefix>.result.>`: every result subject.
    pub(crate) fn all_results(&self) -> String {
        format!("{}.result.>", self.prefix)
    }

    /// `<prefix>.result.<run>.<task>.<attempt>`: where the result of one attempt is
    /// published.
    pub(crate) fn result_subject(&self, run: &RunId, task: &str, attempt: u32) -> String {
        format!("{}.result.{run}.{}.{attempt}", self.prefix, token(task))
    }

    /// `<prefix>.cancel.<run>`: where a run's cancellations are published.
    pub(crate) fn cancel_subject(&self, run: &RunId) -> String {
        format!("{}.cancel.{run}", self.prefix)
    }

    /// `<prefix>.cancel.*`: every run's cancellations.
    pub(crate) fn all_cancels(&self) -> String {
        format!("{}.cancel.*", self.prefix)
    }

    /// `<prefix>.worker.<type>`: answered by every worker that serves `task_type`.
    pub(crate) fn presence_subject(&self, task_type: &str) -> String {
        format!("{}.worker.{}", self.prefix, token(task_type))
    }

    /// The server's advisory when a task message ran out of deliveries.
    pub(crate) fn max_deliveries_advisory(&self) -> String {
        format!(
            "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{}.*",
            self.tasks_stream
        )
    }
}

/// Room left in a message for its headers: a payload is at most `max_payload` less this.
pub(crate) const HEADER_ROOM: usize = 1024;

/// The message id of an attempt, for the server's de-duplication: `run.task.attempt`.
pub(crate) fn message_id(run: &RunId, task: &str, attempt: u32) -> String {
    format!("{run}.{}.{attempt}", token(task))
}

/// The id of an attempt's message sent again for the `resend`th time (its first is
/// [`message_id`]'s): `run.task.attempt.n`.
pub(crate) fn resent_id(first: &str, resend: u32) -> String {
    match resend {
        0 => first.to_owned(),
        n => format!("{first}.{n}"),
    }
}

/// Whether message id `found` is one of an attempt's whose first id is `first`: it, or
/// one of [`resent_id`]'s (tokens and run ids hold no `.`, so no other attempt's id
/// begins so).
pub(crate) fn sent_as(found: &str, first: &str) -> bool {
    found
        .strip_prefix(first)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

/// The error of an attempt whose task message was delivered `deliveries` times and
/// never finished.
pub(crate) fn worker_lost(
    task: &str,
    task_type: &str,
    deliveries: u64,
    ack_wait: Duration,
) -> String {
    let times = match deliveries {
        1 => "once".to_owned(),
        n => format!("{n} times"),
    };
    format!(
        "worker lost: task `{task}` (type `{task_type}`) was delivered {times} and no worker \
         finished it (each one died, stopped acknowledging it within {ack_wait:?}, could not \
         store its result or find out whether one was stored (may it read the results \
         stream?), had no free slot, or was stopping and handed it back)"
    )
}

/// The longest token a name becomes; a longer one is shortened (see [`token`]).
const MAX_TOKEN: usize = 64;

/// How much of a long name's escaped form its token keeps before the hash.
const LONG_TOKEN_KEEPS: usize = MAX_TOKEN - 2 - 32;

/// A name as one subject token and consumer name: ASCII letters, digits, `-` and `_` as
/// they are, every other byte as `~XX` (hex), shortened by [`fit_token`] when longer than
/// 64 bytes. (`~~` never occurs in an escaped name, so a shortened token cannot equal a
/// plain one.)
pub(crate) fn token(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' {
            out.push(byte as char);
        } else {
            let _ = write!(out, "~{byte:02X}");
        }
    }
    if out.is_empty() {
        out.push('~');
    }
    match fit_token(&out) {
        std::borrow::Cow::Borrowed(_) => out,
        std::borrow::Cow::Owned(short) => short,
    }
}

/// The longest start of `text` of at most `bytes` bytes that ends between characters.
pub(crate) fn start_of(text: &str, bytes: usize) -> &str {
    let mut end = bytes.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `token` (a valid subject token) as it is when it has at most 64 bytes, else its
/// first 30 bytes or so (cut between characters, and not inside a `~XX` escape) and `~~`
/// and 32 hex digits of a 128-bit hash of the whole token: subjects stay far below the
/// server's limit on a protocol line, and consumer names within what it accepts.
pub(crate) fn fit_token(token: &str) -> std::borrow::Cow<'_, str> {
    if token.len() <= MAX_TOKEN {
        return std::borrow::Cow::Borrowed(token);
    }
    let bytes = token.as_bytes();
    let mut keep = start_of(token, LONG_TOKEN_KEEPS).len();
    if bytes[keep - 1] == b'~' {
        keep -= 1;
    } else if bytes[keep - 2] == b'~' {
        keep -= 2;
    }
    std::borrow::Cow::Owned(format!(
        "{}~~{:016x}{:016x}",
        &token[..keep],
        fnv(bytes, 2),
        fnv(bytes, 3)
    ))
}

/// Milliseconds since the Unix epoch of `now + after` (the largest there is for a time
/// the clock cannot hold).
pub(crate) fn deadline_after(after: Duration) -> u64 {
    let Some(at) = SystemTime::now().checked_add(after) else {
        return u64::MAX;
    };
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// How long until a deadline in milliseconds since the Unix epoch (zero if it passed;
/// `Duration::MAX` for one the clock cannot hold).
pub(crate) fn until(deadline_ms: u64) -> Duration {
    match UNIX_EPOCH.checked_add(Duration::from_millis(deadline_ms)) {
        Some(at) => at
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
        None => Duration::MAX,
    }
}

/// A W3C `traceparent` for one attempt: the trace id from the run, the span id from the
/// task and attempt (so every process names the attempt alike).
pub(crate) fn traceparent(run: &RunId, task: &str, attempt: u32) -> String {
    let trace =
        fnv(run.as_str().as_bytes(), 0) as u128 | ((fnv(run.as_str().as_bytes(), 1) as u128) << 64);
    let span = fnv(task.as_bytes(), u64::from(attempt));
    format!("00-{:032x}-{:016x}-01", trace.max(1), span.max(1))
}

/// FNV-1a over `bytes`, seeded.
fn fnv(bytes: &[u8], seed: u64) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325_u64 ^ seed.wrapping_mul(0x100_0000_01b3);
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// An attempt's message ids, first and sent again, are told from another attempt's.
    #[test]
    fn an_attempts_message_ids_are_told_from_anothers() {
        let run = RunId::parse("r1").expect("a run id");
        let first = message_id(&run, "t", 1);
        assert!(sent_as(&first, &first));
        assert!(sent_as(&resent_id(&first, 3), &first));
        assert_eq!(resent_id(&first, 0), first);
        for other in [
            message_id(&run, "t", 11),
            message_id(&run, "t", 2),
            message_id(&run, "t.1", 1),
        ] {
            assert!(!sent_as(&other, &first), "{other}");
        }
    }

    #[test]
    fn deadlines_far_away_neither_overflow_nor_panic() {
        assert_eq!(deadline_after(Duration::MAX), u64::MAX);
        assert!(until(u64::MAX) > Duration::from_secs(100 * 365 * 24 * 3600));
        assert_eq!(until(0), Duration::ZERO);
        let soon = until(deadline_after(Duration::from_secs(60)));
        assert!(soon > Duration::from_secs(50) && soon <= Duration::from_secs(60));
    }

    #[test]
    fn tokens_keep_plain_names_and_escape_the_rest_unambiguously() {
        assert_eq!(token("gpu_infer-2"), "gpu_infer-2");
        assert_eq!(token("a.b"), "a~2Eb");
        assert_eq!(token("a~2Eb"), "a~7E2Eb");
        assert_eq!(token("*>"), "~2A~3E");
        assert_eq!(token(""), "~");
        assert_eq!(token("é"), "~C3~A9");
    }

    #[test]
    fn long_names_keep_their_start_and_end_with_a_hash_of_the_whole_name() {
        let exactly = "a".repeat(MAX_TOKEN);
        assert_eq!(token(&exactly), exactly);
        let long = |tail: &str| format!("{}{tail}", "é".repeat(2000));
        let (one, other) = (token(&long("x")), token(&long("y")));
        assert_ne!(one, other);
        assert_eq!(one, token(&long("x")), "the same name, the same token");
        for t in [&one, &other, &token(&"a".repeat(MAX_TOKEN + 1))] {
            assert!(t.len() <= MAX_TOKEN, "{t}");
            assert!(t.contains("~~"), "{t}");
        }
        // Cut between escapes, never inside one.
        assert!(one.starts_with("~C3~A9~C3~A9~C3~A9~C3~A9~C3~A9~~"), "{one}");
        assert_eq!(one.len(), 30 + 2 + 32);
    }

    #[test]
    fn an_item_gives_the_map_task_its_id_back_and_a_mismatched_one_is_refused() {
        let message = |id: &str, index: usize| {
            let task = json!({"task_id": id, "task_type": "square"});
            let item = json!({"index": index, "value": 7});
            let text = json!({"v": 2, "run_id": "r", "workflow_id": "w", "task": task,
                              "attempt": 1, "item": item});
            read::<TaskMessage>(text.to_string().as_bytes()).expect("a task message")
        };
        let mut ok = message("square[2]", 2);
        let item = ok.take_item().expect("its own instance").expect("an item");
        assert_eq!((item.index, item.value), (2, json!(7)));
        assert_eq!(ok.task.task_id.as_str(), "square");
        let error = message("square[3]", 2)
            .take_item()
            .expect_err("another instance");
        assert!(
            error.contains("task `square[3]` carries element 2"),
            "{error}"
        );
        assert_eq!(TaskMessage::version_for(None), 1);
    }

    #[test]
    fn a_newer_version_is_refused_before_its_shape_is_read() {
        let newer = br#"{"v": 3, "something": "else"}"#;
        assert!(matches!(
            read::<CancelMessage>(newer),
            Err(ReadError::Newer { found: 3, .. })
        ));
        // Only task messages have a version 2: a cancellation or a result of version 2,
        // however well it reads as version 1, is refused.
        let cancel = br#"{"v": 2, "run_id": "r1"}"#;
        assert!(matches!(
            read::<CancelMessage>(cancel),
            Err(ReadError::Newer {
                found: 2,
                newest: 1
            })
        ));
        let result = br#"{"v": 2, "run_id": "r1", "task_id": "a", "attempt": 1,
            "worker": "w1", "outcome": {"status": "completed", "output": 1}}"#;
        let refused = ResultMessage::read_or_failure(result).expect("its attempt is named");
        let Outcome::Failed { error, .. } = &refused.outcome else {
            panic!("{refused:?}");
        };
        assert!(error.contains("protocol version 2 is newer"), "{error}");
        assert!(matches!(
            read::<CancelMessage>(b"{"),
            Err(ReadError::Malformed(_))
        ));
        let ok = read::<CancelMessage>(br#"{"v": 1, "run_id": "r1"}"#).expect("a valid cancel");
        assert_eq!(ok.run_id.as_str(), "r1");
    }

    #[test]
    fn outcomes_are_tagged_by_status() {
        let failed = Outcome::Failed {
            error: "boom".into(),
            permanent: true,
        };
        let text = serde_json::to_string(&failed).expect("json");
        assert_eq!(
            text,
            r#"{"status":"failed","error":"boom","permanent":true}"#
        );
        assert_eq!(
            serde_json::from_str::<Outcome>(&text).expect("reads back"),
            failed
        );
    }

    #[test]
    fn traceparents_have_the_w3c_shape_and_differ_by_attempt() {
        let run = RunId::parse("r").expect("valid");
        let a = traceparent(&run, "t", 1);
        let b = traceparent(&run, "t", 2);
        assert_eq!(a.len(), 55);
        assert_ne!(a, b);
        assert_eq!(a[..36], b[..36]);
    }
}
