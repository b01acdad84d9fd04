//! [`NatsJournal`] (feature `journal`): an orch journal on a JetStream stream, so that a
//! coordinator keeps its durable runs on the NATS server and needs no local disk.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use async_trait::async_trait;
use futures_util::StreamExt;
use orch_core::{RunId, Workflow};
use orch_journal::backend::{OpenRuns, RunLines};
use orch_journal::{Journal, JournalError, LoadedRun, OpenRun, RunFilter, RunSummary};

mod read;
mod writer;

use writer::{NatsRunWriter, WriterState};

use crate::layout::Layout;
use crate::{ConnectError, NatsConfig};

const BACKEND: &str = "NATS JetStream";

/// A journal of orch runs on a JetStream stream: stream `<STEM>_JOURNAL` (`ORCH_JOURNAL`
/// for prefix `orch`), one subject per run, `<prefix>.journal.<run id>`, each message a
/// batch of records in the file journal's line format. A stream that already takes
/// those subjects is used as it is, unless its retention is other than limits (it would
/// remove records as they are read): that is refused. Limits it has that remove old
/// messages (`max_age`, `max_msgs`, `max_bytes`, `max_msgs_per_subject`) are logged as
/// a warning: a run they reach can no longer be read or resumed.
///
/// An append returns once the server has stored the batch (it survives a crash of the
/// coordinator); while the server cannot be reached, or has no stream for the run's subject
/// (as while a restarted server recovers its streams), the batch is sent again for up to a
/// minute. One the stream refuses for a limit (its largest message, a limit that discards
/// new messages, or storage the account or server lacks) fails at once, with the server's
/// reason. [`RunWriter::sync`](orch_journal::RunWriter::sync) waits for the appends before
/// it and adds nothing else: whether a batch survives the server losing power is the
/// server's `sync_interval` (set `always` for that) or its
/// replicas. A batch larger than a message may be goes out as several messages, read
/// back whole or not at all.
///
/// One writer per run: a second open of a run through the same journal (or its clones)
/// is refused with [`JournalError::AlreadyOpen`], and each message is stored only if the
/// run's last stored message is still the one its writer wrote last, so neither of two
/// writers can leave a gap or a repeat in the run's lines. Another process's open is not
/// refused (the journal takes no lock on the server), unless the run had ended (opening
/// it then stores a line that marks it going on, checked as any append is): of two
/// coordinators on one run, the one that appends second is refused then, which may be
/// the one that opened it first, and both may have started the same tasks by then. Run one coordinator per
/// run. After a failed append a writer takes no more (its run ends with the error);
/// opening the run again goes on from what was stored. Something else published under a
/// run's subject that does not end its last line, which the next batch would run into,
/// makes opening the run fail with [`JournalError::Corrupt`] naming the message (remove
/// it to go on); reading and listing the run leave it out.
///
/// ```no_run
/// use orch_nats::{Layout, NatsConfig, NatsJournal};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let journal = NatsJournal::connect(&NatsConfig::from_env()?, &Layout::default()).await?;
/// // WorkflowEngine::builder().journal(journal, Durability::Process) ...
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct NatsJournal {
    js: jetstream::Context,
    stream: Arc<str>,
    prefix: Arc<str>,
    open_runs: Arc<OpenRuns>,
    read_patience: Duration,
}

/// The header of a batch's message that tells how many more messages of the batch
/// follow it (absent: none).
const BATCH_REST: &str = "Orch-Batch-Rest";

/// The header of a batch's later messages: the stream sequence of its first one.
const BATCH_START: &str = "Orch-Batch-Start";

/// How long reading a run waits for each answer of the server by default (see
/// [`NatsJournal::read_patience`]).
const READ_PATIENCE: Duration = Duration::from_secs(60);

/// How long one page of the listing of runs may take.
const PAGE_TIMEOUT: Duration = Duration::from_secs(10);

impl fmt::Debug for NatsJournal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsJournal")
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

/// Refuses journal stream `name`, found with `config`, when it removes messages once
/// they are acknowledged or have no consumer (retention other than limits): it would
/// keep no run. Limits that remove old messages (an age, a count, a size) are the
/// administrator's choice, logged as a warning: a run they reach loses its first lines
/// and cannot be read, and one they removed whole starts again from nothing.
fn keeps_runs(name: &str, config: &stream::Config) -> Result<(), ConnectError> {
    if config.retention != stream::RetentionPolicy::Limits {
        return Err(ConnectError::Setup {
            what: format!("the journal stream `{name}`"),
            reason: format!(
                "its retention is {:?}, which removes runs' records: a journal needs \
                 Limits retention (delete the stream and let orch make it)",
                config.retention
            ),
        });
    }
    let limited = [
        (!config.max_age.is_zero(), "max_age"),
        (config.max_messages > 0, "max_msgs"),
        (config.max_bytes > 0, "max_bytes"),
        (config.max_messages_per_subject > 0, "max_msgs_per_subject"),
    ];
    let limits: Vec<&str> = (limited.iter().filter(|(set, _)| *set))
        .map(|(_, limit)| *limit)
        .collect();
    if !limits.is_empty() {
        tracing::warn!(
            stream = name,
            ?limits,
            "the journal stream removes old records: a run they reach cannot be read or resumed"
        );
    }
    Ok(())
}

fn failed(action: impl Into<String>, error: impl fmt::Display) -> JournalError {
    JournalError::Backend {
        backend: BACKEND,
        action: action.into(),
        message: error.to_string(),
    }
}

impl NatsJournal {
    /// Connects with `config` and finds or creates the journal's stream under `layout`'s
    /// prefix.
    pub async fn connect(config: &NatsConfig, layout: &Layout) -> Result<Self, ConnectError> {
        layout.check()?;
        Self::new(config.connect().await?, layout).await
    }

    /// Uses a connection made elsewhere.
    pub async fn new(client: async_nats::Client, layout: &Layout) -> Result<Self, ConnectError> {
        layout.check()?;
        let names = layout.names();
        let subjects = format!("{}.journal.*", layout.prefix);
        let js = jetstream::new(client);
        // The stream that already holds the journal's subjects, whatever its name (an
        // earlier build named it otherwise for prefixes with `tasks` in them).
        let setup = |stream: &str, e: &dyn fmt::Display| ConnectError::Setup {
            what: format!("the journal stream `{stream}`"),
            reason: e.to_string(),
        };
        let (stream, found) = match js.stream_by_subject(&subjects).await {
            Ok(name) => {
                let found = js.get_stream(&name).await.map_err(|e| setup(&name, &e))?;
                (name, found)
            }
            Err(_) => {
                let stream = names.journal_stream();
                let found = js
                    .get_or_create_stream(stream::Config {
                        name: stream.clone(),
                        subjects: vec![subjects.clone()],
                        storage: stream::StorageType::File,
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| setup(&stream, &e))?;
                crate::setup::holds_subjects(&stream, &found.cached_info().config, &subjects)?;
                (stream, found)
            }
        };
        keeps_runs(&stream, &found.cached_info().config)?;
        Ok(Self {
            js,
            stream: stream.into(),
            prefix: layout.prefix.as_str().into(),
            open_runs: Arc::default(),
            read_patience: READ_PATIENCE,
        })
    }

    /// How long reading a run (to open or load it) waits for each answer of the server,
    /// its next stored message say, before it fails: 60 s unless set. The read as a
    /// whole may take longer, as long as the server keeps sending: a run with much
    /// output read over a slow link.
    pub fn read_patience(mut self, patience: Duration) -> Self {
        self.read_patience = patience;
        self
    }

    fn subject(&self, run: &RunId) -> String {
        format!("{}.journal.{run}", self.prefix)
    }

    async fn stream(&self, action: &str) -> Result<stream::Stream<()>, JournalError> {
        self.js
            .get_stream_no_info(&*self.stream)
            .await
            .map_err(|e| failed(action, e))
    }

    fn at(&self, run: &RunId) -> String {
        format!("stream `{}`, subject `{}`", self.stream, self.subject(run))
    }
}

#[async_trait]
impl Journal for NatsJournal {
    async fn open(&self, run: &RunId, workflow: &Workflow) -> Result<OpenRun, JournalError> {
        let claim = self.open_runs.claim(run)?;
        let stored = self.read_stored(run).await?;
        let writer = |lines, last| NatsRunWriter {
            js: self.js.clone(),
            subject: self.subject(run),
            state: Arc::new(tokio::sync::Mutex::new(WriterState {
                lines,
                last,
                broken: None,
                finished: false,
                writer_id: self.js.client().new_inbox(),
                sent: 0,
            })),
            claim: Arc::new(claim),
            waiting: Arc::default(),
        };
        match stored {
            None => {
                let (lines, head) = RunLines::start(run, workflow)?;
                let writer = writer(lines, 0);
                writer.append_batch(head).await?;
                Ok(OpenRun::new(None, Default::default(), Box::new(writer)))
            }
            // Only a batch that was not stored whole: the run starts anew after it.
            Some(stored) if stored.bytes.is_empty() => {
                let (lines, head) = RunLines::start(run, workflow)?;
                let writer = writer(lines, stored.last);
                writer.append_batch(head).await?;
                Ok(OpenRun::new(None, Default::default(), Box::new(writer)))
            }
            // What a journal writes ends its last line. Something else published under
            // the run's subject that does not would run into the next batch's first
            // line, and make the run unreadable: refused, for it to be removed.
            Some(stored) if !stored.bytes.ends_with(b"\n") => Err(JournalError::Corrupt {
                at: format!("{}, message {}", self.at(run), stored.last_whole),
                reason: "the message does not end its last line: it was not written by a \
                         journal, and the run cannot be written on after it (remove it)"
                    .into(),
            }),
            Some(stored) => {
                let (loaded, mut lines) = RunLines::read(run, &self.at(run), &stored.bytes)?;
                let previous = loaded.to_result(workflow)?;
                let changes = loaded.changes(workflow);
                let reopened = lines.reopen(&loaded)?;
                if !changes.is_empty() {
                    lines.redefine(workflow);
                }
                let writer = writer(lines, stored.last);
                if let Some(reopened) = reopened {
                    writer.append_batch(reopened).await?;
                }
                Ok(OpenRun::new(Some(previous), changes, Box::new(writer)))
            }
        }
    }

    async fn load(&self, run: &RunId) -> Result<Option<LoadedRun>, JournalError> {
        match self.read_stored(run).await? {
            None => Ok(None),
            Some(stored) => Ok(Some(RunLines::read(run, &self.at(run), &stored.bytes)?.0)),
        }
    }

    async fn list(&self, filter: &RunFilter) -> Result<Vec<RunSummary>, JournalError> {
        let action = || format!("list the runs of stream `{}`", self.stream);
        let stream = self.stream(&action()).await?;
        // Each page of the listing is a request: bounded, as a connection cut off from
        // its server for long would keep it waiting for room until the server is back.
        let unanswered = || {
            failed(
                action(),
                format!("the server did not answer within {PAGE_TIMEOUT:?}"),
            )
        };
        let first_page = stream.info_with_subjects(format!("{}.journal.*", self.prefix));
        let mut subjects = tokio::time::timeout(PAGE_TIMEOUT, first_page)
            .await
            .map_err(|_| unanswered())?
            .map_err(|e| failed(action(), e))?;
        let mut runs = Vec::new();
        let mut listed = ListedRuns::default();
        loop {
            let next = tokio::time::timeout(PAGE_TIMEOUT, subjects.next());
            let Some(entry) = next.await.map_err(|_| unanswered())? else {
                break;
            };
            let (subject, _) = entry.map_err(|e| failed(action(), e))?;
            let Some(run) = listed.first_sight(&subject) else {
                continue;
            };
            let loaded = match self.load(&run).await {
                Ok(loaded) => loaded,
                // A run whose first batch is not stored yet is not listed, nor something
                // else published under a run's subject.
                Err(JournalError::HeadMissing { .. } | JournalError::NotAJournal { .. }) => None,
                Err(error) => return Err(error),
            };
            if let Some(loaded) = loaded {
                let summary = loaded.summary();
                if filter.accepts(&summary) {
                    runs.push(summary);
                }
            }
        }
        runs.sort_by(|a, b| (a.created, &a.run_id).cmp(&(b.created, &b.run_id)));
        Ok(runs)
    }
}

/// The runs met so far in a listing of the journal's subjects.
///
/// The server pages the subjects by offset in their sorted order: a run created while
/// they are listed, sorting before the page read, moves the next page's start back by
/// one, so that its first subject is one already read.
#[derive(Default)]
struct ListedRuns {
    seen: HashSet<RunId>,
}

impl ListedRuns {
    /// The run whose journal `subject` holds, unless it is not a run's subject or its
    /// run was met before.
    fn first_sight(&mut self, subject: &str) -> Option<RunId> {
        let id = subject.rsplit('.').next()?;
        let run = RunId::parse(id).ok()?;
        self.seen.insert(run.clone()).then_some(run)
    }
}

#[cfg(test)]
mod tests {
    use super::ListedRuns;

    #[test]
    fn a_run_whose_subject_comes_again_on_the_next_page_is_listed_once() {
        let mut listed = ListedRuns::default();
        let runs: Vec<String> = ["orch.journal.a", "orch.journal.b", "orch.journal.b"]
            .into_iter()
            .chain(["orch.journal.not a run", "orch.journal.c", "orch.journal.a"])
            .filter_map(|subject| listed.first_sight(subject))
            .map(|run| run.as_str().to_owned())
            .collect();
        assert_eq!(runs, ["a", "b", "c"]);
    }
}
