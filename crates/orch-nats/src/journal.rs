//! [`NatsJournal`] (feature `journal`): an orch journal on a JetStream stream, so that a
//! coordinator keeps its durable runs on the NATS server and needs no local disk.

use std::fmt;
use std::sync::Arc;

use async_nats::jetstream::{self, consumer, stream};
use async_trait::async_trait;
use futures_util::StreamExt;
use orch_core::{RunId, TaskId, TaskRecord, Workflow, WorkflowStatus};
use orch_journal::backend::RunLines;
use orch_journal::{
    Journal, JournalError, JournalFuture, LoadedRun, OpenRun, RunFilter, RunSummary, RunWriter,
};

use crate::setup::Layout;
use crate::{ConnectError, NatsConfig};

const BACKEND: &str = "NATS JetStream";

/// A journal of orch runs on a JetStream stream: stream `<STEM>_JOURNAL` (`ORCH_JOURNAL`
/// for prefix `orch`), one subject per run, `<prefix>.journal.<run id>`, each message a
/// batch of records in the file journal's line format.
///
/// An append returns once the server has stored the batch (it survives a crash of the
/// coordinator); [`RunWriter::sync`] adds nothing to that: whether a batch survives the
/// server losing power is the server's `sync_interval` (set `always` for that) or its
/// replicas. A run should be open in one coordinator at a time: two writers of one run
/// make its journal unreadable.
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
}

impl fmt::Debug for NatsJournal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsJournal")
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
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
        let stream = names.tasks_stream().replace("_TASKS", "_JOURNAL");
        let js = jetstream::new(client);
        js.get_or_create_stream(stream::Config {
            name: stream.clone(),
            subjects: vec![format!("{}.journal.*", layout.prefix)],
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .map_err(|e| ConnectError::Setup {
            what: format!("the journal stream `{stream}`"),
            reason: e.to_string(),
        })?;
        Ok(Self {
            js,
            stream: stream.into(),
            prefix: layout.prefix.as_str().into(),
        })
    }

    fn subject(&self, run: &RunId) -> String {
        format!("{}.journal.{run}", self.prefix)
    }

    /// Every batch stored for `run`, in order; `None` when there is none.
    async fn read_bytes(&self, run: &RunId) -> Result<Option<Vec<u8>>, JournalError> {
        let subject = self.subject(run);
        let action = || format!("read run `{run}` from stream `{}`", self.stream);
        let stream = self.stream(&action()).await?;
        let last = match stream.get_last_raw_message_by_subject(&subject).await {
            Ok(message) => message.sequence,
            Err(error) if error.kind() == stream::LastRawMessageErrorKind::NoMessageFound => {
                return Ok(None);
            }
            Err(error) => return Err(failed(action(), error)),
        };
        let mut messages = stream
            .create_consumer(consumer::push::OrderedConfig {
                deliver_subject: self.js.client().new_inbox(),
                filter_subject: subject,
                ..Default::default()
            })
            .await
            .map_err(|e| failed(action(), e))?
            .messages()
            .await
            .map_err(|e| failed(action(), e))?;
        let mut bytes = Vec::new();
        while let Some(message) = messages.next().await {
            let message = message.map_err(|e| failed(action(), e))?;
            bytes.extend_from_slice(&message.payload);
            let sequence = message
                .info()
                .map_err(|e| failed(action(), e))?
                .stream_sequence;
            if sequence >= last {
                return Ok(Some(bytes));
            }
        }
        Err(failed(
            action(),
            "the stream ended before the run's last batch",
        ))
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
        let writer = |lines| NatsRunWriter {
            js: self.js.clone(),
            subject: self.subject(run),
            lines: Arc::new(tokio::sync::Mutex::new(lines)),
        };
        match self.read_bytes(run).await? {
            None => {
                let (lines, head) = RunLines::start(run, workflow)?;
                let writer = writer(lines);
                writer.store(head).await?;
                Ok(OpenRun::new(None, Default::default(), Box::new(writer)))
            }
            Some(bytes) => {
                let (loaded, mut lines) = RunLines::read(run, &self.at(run), &bytes)?;
                let previous = loaded.to_result(workflow)?;
                let changes = loaded.changes(workflow);
                let definition = if changes.is_empty() {
                    None
                } else {
                    Some(lines.definition(workflow)?)
                };
                let writer = writer(lines);
                if let Some(batch) = definition {
                    writer.store(batch).await?;
                }
                Ok(OpenRun::new(Some(previous), changes, Box::new(writer)))
            }
        }
    }

    async fn load(&self, run: &RunId) -> Result<Option<LoadedRun>, JournalError> {
        match self.read_bytes(run).await? {
            None => Ok(None),
            Some(bytes) => Ok(Some(RunLines::read(run, &self.at(run), &bytes)?.0)),
        }
    }

    async fn list(&self, filter: &RunFilter) -> Result<Vec<RunSummary>, JournalError> {
        let action = || format!("list the runs of stream `{}`", self.stream);
        let stream = self.stream(&action()).await?;
        let mut subjects = stream
            .info_with_subjects(format!("{}.journal.*", self.prefix))
            .await
            .map_err(|e| failed(action(), e))?;
        let mut runs = Vec::new();
        while let Some(entry) = subjects.next().await {
            let (subject, _) = entry.map_err(|e| failed(action(), e))?;
            let Some(run) = subject
                .rsplit('.')
                .next()
                .and_then(|id| RunId::parse(id).ok())
            else {
                continue;
            };
            if let Some(loaded) = self.load(&run).await? {
                let summary = loaded.summary();
                if filter.accepts(&summary) {
                    runs.push(summary);
                }
            }
        }
        runs.sort_by_key(|r| r.created);
        Ok(runs)
    }
}

/// Appends one run's batches to its subject, in order.
struct NatsRunWriter {
    js: jetstream::Context,
    subject: String,
    /// Held while a batch is numbered and handed to the connection, so that batches are
    /// stored in the order of their numbers.
    lines: Arc<tokio::sync::Mutex<RunLines>>,
}

impl fmt::Debug for NatsRunWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsRunWriter")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

impl NatsRunWriter {
    async fn store(&self, batch: Vec<u8>) -> Result<(), JournalError> {
        let ack = self
            .js
            .publish(self.subject.clone(), batch.into())
            .await
            .map_err(|e| failed(format!("append to `{}`", self.subject), e))?;
        ack.await
            .map_err(|e| failed(format!("append to `{}`", self.subject), e))?;
        Ok(())
    }

    /// Numbers a batch with `make` and stores it.
    fn append_with(
        &self,
        make: impl FnOnce(&mut RunLines) -> Result<Vec<u8>, JournalError> + Send + 'static,
    ) -> JournalFuture {
        let js = self.js.clone();
        let subject = self.subject.clone();
        let lines = Arc::clone(&self.lines);
        Box::pin(async move {
            let action = || format!("append to `{subject}`");
            let ack = {
                let mut lines = lines.lock().await;
                let batch = make(&mut lines)?;
                js.publish(subject.clone(), batch.into())
                    .await
                    .map_err(|e| failed(action(), e))?
            };
            ack.await.map_err(|e| failed(action(), e))?;
            Ok(())
        })
    }
}

impl RunWriter for NatsRunWriter {
    fn append(&self, records: &[(&TaskId, &TaskRecord)]) -> JournalFuture {
        let owned: Vec<(TaskId, TaskRecord)> = records
            .iter()
            .map(|(id, record)| ((*id).clone(), (*record).clone()))
            .collect();
        self.append_with(move |lines| {
            let borrowed: Vec<(&TaskId, &TaskRecord)> = owned.iter().map(|(i, r)| (i, r)).collect();
            lines.tasks(&borrowed)
        })
    }

    fn sync(&self) -> JournalFuture {
        // Appends resolve once stored; what survives a power loss is the server's choice.
        Box::pin(std::future::ready(Ok(())))
    }

    fn finish(&self, status: WorkflowStatus) -> JournalFuture {
        self.append_with(move |lines| lines.end(status))
    }
}
