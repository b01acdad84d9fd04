//! `orch run`: checks a workflow file, runs it on an engine with the built-in task types,
//! shows progress, serves metrics, handles Ctrl-C and writes the result. With
//! `builtin.rs`, the only module that calls into the engine.

use std::future::poll_fn;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::Poll;
use std::time::Duration;

use orch::core::{EngineEvent, EngineEventKind, RunId, Workflow, WorkflowStatus};
use orch::engine::{RunError, WorkflowEngine};
use orch::events::{Delivery, EventBus};
use orch::journal::{Durability, FileJournal, Journal, JournalError};

use crate::display::{Display, ProgressMode};
use crate::inputs::InputsRoot;
use crate::prometheus::{self, Live};
use crate::{builtin, check, result_file};

mod interrupt;

use interrupt::{ExitAtOnce, cancel_on_signal, until_signal};

/// How long running tasks have to stop after Ctrl-C before they are dropped; a command
/// gets SIGTERM at once and SIGKILL 2 s later, within this.
const GRACE: Duration = Duration::from_secs(5);

/// What `orch run` was asked to do.
#[derive(clap::Args)]
pub(crate) struct RunArgs {
    /// The workflow file (.json, .yaml, .yml or .toml).
    file: PathBuf,
    /// The most tasks running at once.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    max_concurrent: u32,
    /// A pool tasks can name (`pool: NAME`) and the most of its tasks running at once,
    /// besides --max-concurrent; repeat for more pools.
    #[arg(long = "pool", value_name = "NAME=LIMIT", value_parser = parse_pool)]
    pools: Vec<(String, usize)>,
    /// Write the result (and the workflow) to this JSON file.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Serve Prometheus metrics on http://HOST:PORT/metrics while the run lasts.
    #[arg(long, value_name = "HOST:PORT")]
    metrics_addr: Option<String>,
    /// How to show progress.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    progress: ProgressMode,
    /// Run the tasks on `orch worker`s through this NATS server (comma-separated
    /// URLs; credentials only from the ORCH_NATS_* variables).
    #[arg(long, value_name = "URL")]
    nats: Option<String>,
    /// With --nats: how long a task waits for a worker serving its type before it
    /// fails.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = orch::core::parse_duration, requires = "nats")]
    worker_timeout: Duration,
    /// Record the run in the journal in this directory, to continue it with --resume
    /// after a crash or Ctrl-C (`orch runs list DIR` lists the runs).
    #[arg(long, value_name = "DIR")]
    journal: Option<PathBuf>,
    /// Continue this run of the journal: its completed tasks are not run again, unless
    /// they ran after a task that failed (an `all_done` task, say), which runs again.
    #[arg(long, value_name = "RUN_ID", requires = "journal")]
    resume: Option<String>,
    /// With --journal: `process` (a completed task survives orch crashing) or `power`
    /// (it also survives a power loss: the journal is synced to disk).
    #[arg(long, value_enum, default_value_t = JournalDurability::Process, requires = "journal")]
    durability: JournalDurability,
}

/// What a task completion recorded in a journal survives.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum JournalDurability {
    Process,
    Power,
}

impl From<JournalDurability> for Durability {
    fn from(durability: JournalDurability) -> Self {
        match durability {
            JournalDurability::Process => Durability::Process,
            JournalDurability::Power => Durability::Power,
        }
    }
}

/// A `--pool NAME=LIMIT` argument: a non-empty name and a limit of at least 1. The
/// limit follows the last `=`, since a pool's name may hold one (`gpu=a100=2`).
fn parse_pool(text: &str) -> Result<(String, usize), String> {
    let (name, limit) = text
        .rsplit_once('=')
        .ok_or_else(|| format!("`{text}` is not NAME=LIMIT"))?;
    if name.is_empty() {
        return Err(format!("`{text}` has no pool name before `=`"));
    }
    match limit.parse::<usize>() {
        Ok(limit) if limit >= 1 => Ok((name.to_owned(), limit)),
        _ => Err(format!(
            "the limit of pool `{name}` must be a whole number of at least 1, not `{limit}`"
        )),
    }
}

/// Runs the workflow; the exit code is 0 when it completed, 1 when it failed (or the file
/// has problems), 2 when the run could not be set up, 128 + the signal when interrupted.
pub(crate) fn run(args: RunArgs) -> ExitCode {
    let checked = check::check(&args.file, true);
    let workflow = match checked.workflow {
        Some(workflow) if checked.problems.is_empty() => workflow,
        _ => {
            for line in checked.rendered() {
                errln!("{line}");
            }
            errln!(
                "{}: not run: {} problem(s)",
                args.file.display(),
                checked.problem_count()
            );
            return ExitCode::from(1);
        }
    };
    if let Err(problem) = pools_declared(&args.pools, &workflow) {
        return setup_error(problem);
    }
    let runtime = match crate::runtime::for_commands(args.max_concurrent as usize) {
        Ok(runtime) => runtime,
        Err(e) => return setup_error(format!("cannot start the async runtime: {e}")),
    };
    let code = runtime.block_on(execute(&args, workflow));
    // Shutting the runtime down drops every handler, and with them the inputs directory.
    crate::runtime::shut_down(runtime);
    code
}

/// Whether `pools` (from `--pool`) give each pool one limit, and every pool a task names
/// one: else the usage problem, naming the pool (and a task that names it).
fn pools_declared(pools: &[(String, usize)], workflow: &Workflow) -> Result<(), String> {
    for (i, (name, _)) in pools.iter().enumerate() {
        if pools[..i].iter().any(|(other, _)| other == name) {
            return Err(format!(
                "--pool {name}=... is given more than once: give each pool one limit"
            ));
        }
    }
    let undeclared = workflow.tasks().find_map(|task| {
        let pool = task.pool.as_deref()?;
        (!pools.iter().any(|(name, _)| name == pool)).then_some((task, pool))
    });
    match undeclared {
        Some((task, pool)) => Err(format!(
            "task `{}` runs in pool `{pool}`, which is not declared: declare each pool with \
             --pool NAME=LIMIT (say --pool {pool}=2)",
            task.task_id
        )),
        None => Ok(()),
    }
}

fn setup_error(message: String) -> ExitCode {
    errln!("orch run: {message}");
    ExitCode::from(2)
}

async fn execute(args: &RunArgs, workflow: Workflow) -> ExitCode {
    // Watched before anything is made or waited for (the result file's trial, a journal
    // to open, a NATS server to reach), so that no signal finds the default action
    // (exit, leaving a temporary file or directory behind).
    let Ok(mut signals) = crate::signals::watch_stopping() else {
        return setup_error("cannot watch for Ctrl-C, SIGTERM, SIGHUP and SIGQUIT".into());
    };
    let base_dir = base_dir(&args.file);
    // Checked before anything runs: an unwritable result file would lose every result.
    let prepare = |path| result_file::Target::prepare(path, &workflow, &args.file);
    let target = match args.output.as_deref().map(prepare) {
        Some(Ok(target)) => Some(target),
        Some(Err(e)) => return setup_error(e),
        None => None,
    };
    // Made when a command first reads dependencies' results: with `--nats` none does.
    let inputs = InputsRoot::when_needed();
    let live = args
        .metrics_addr
        .as_ref()
        .map(|_| Arc::new(Live::new(workflow.workflow_id(), workflow.len())));
    let server = match (&args.metrics_addr, &live) {
        // A host name is looked up first, which may take a while.
        (Some(addr), Some(live)) => {
            match until_signal(&mut signals, tokio::net::TcpListener::bind(addr)).await {
                Err(code) => return code,
                Ok(Ok(listener)) => {
                    if let Ok(local) = listener.local_addr() {
                        tracing::info!("serving metrics on http://{local}/metrics");
                    }
                    Some(prometheus::serve(listener, Arc::clone(live)))
                }
                Ok(Err(e)) => {
                    return setup_error(format!("cannot listen on {addr} for --metrics-addr: {e}"));
                }
            }
        }
        _ => None,
    };
    // A durable run's id is told once the run started (its journal opened): watched.
    let watched = server.is_some() || args.progress != ProgressMode::None || args.journal.is_some();
    let bus: Option<EventBus<EngineEvent>> = watched.then(EventBus::new);
    let mut builder = WorkflowEngine::builder()
        .max_concurrent(args.max_concurrent as usize)
        .cancel_grace_period(GRACE);
    for (name, limit) in &args.pools {
        builder = builder.pool(name.clone(), *limit);
    }
    if let Some(bus) = &bus {
        builder = builder.event_bus(bus.clone());
    }
    // Reached before the journal is opened: a run refused for want of its server leaves
    // no journal directory behind.
    let remote = match &args.nats {
        None => None,
        Some(url) => {
            let connecting = remote_handler(url, args.worker_timeout);
            match until_signal(&mut signals, connecting).await {
                Err(stopped) => return stopped,
                Ok(Err(e)) => return setup_error(e),
                Ok(Ok(remote)) => Some(remote),
            }
        }
    };
    let durable = match &args.journal {
        Some(dir) => {
            // On a thread of its own: reading a long run is the file system's work, and
            // a signal meanwhile must be heard (the run does not start then).
            let (dir, resume) = (dir.clone(), args.resume.clone());
            let runtime = tokio::runtime::Handle::current();
            let opening = tokio::task::spawn_blocking(move || {
                runtime.block_on(open_journal(&dir, resume.as_deref()))
            });
            match until_signal(&mut signals, opening).await {
                Err(stopped) => return stopped,
                Ok(Err(panicked)) => return setup_error(format!("--journal: {panicked}")),
                Ok(Ok(Err(e))) => return setup_error(e),
                Ok(Ok(Ok((journal, run_id)))) => {
                    builder = builder.journal(journal, args.durability.into());
                    Some(run_id)
                }
            }
        }
        None => None,
    };
    let engine = match builder.build() {
        Ok(engine) => engine,
        Err(e) => return setup_error(e.to_string()),
    };
    match remote {
        None => builtin::register(&engine, base_dir, inputs.clone()),
        Some(remote) => {
            for task_type in crate::spec::TYPES {
                engine.register_handler(task_type, remote.clone());
            }
        }
    }

    // Said once the run started: its journal took it, nothing more can fail before.
    let recorded = match (&durable, &args.journal) {
        (Some(run_id), Some(dir)) => Some(format!(
            "run {run_id} recorded in {} (continue it with --resume {run_id})",
            dir.display()
        )),
        _ => None,
    };
    let terminal = std::io::stdout().is_terminal();
    let mut display = Display::new(args.progress, workflow.len(), terminal);
    // Told when the watcher has shown the run's end.
    let finished_seen = Arc::new(tokio::sync::Notify::new());
    let watcher = match &bus {
        Some(bus) => match bus.subscribe("workflow.>") {
            Ok(mut events) => {
                let live = live.clone();
                let finished = Arc::clone(&finished_seen);
                Some(tokio::spawn(async move {
                    loop {
                        // Event lines are written out whenever no event is waiting.
                        let ready = poll_fn(|cx| Poll::Ready(events.poll_recv(cx))).await;
                        let delivery = match ready {
                            Poll::Ready(delivery) => delivery,
                            Poll::Pending => {
                                display.flush();
                                events.recv().await
                            }
                        };
                        match delivery {
                            Some(Delivery::Event(event)) => {
                                if event.payload().kind == EngineEventKind::WorkflowStarted
                                    && let Some(recorded) = &recorded
                                {
                                    display.say(recorded);
                                }
                                if let Some(live) = &live {
                                    live.observe(event.payload());
                                }
                                display.event(event.payload());
                                if event.payload().kind == EngineEventKind::WorkflowFinished {
                                    finished.notify_one();
                                }
                            }
                            Some(_) => {}
                            None => break,
                        }
                    }
                    display
                }))
            }
            Err(e) => return setup_error(format!("cannot watch the run: {e}")),
        },
        None => None,
    };

    let run = match durable.clone() {
        Some(run_id) => engine.run_durable(&workflow, run_id),
        None => engine.run(&workflow),
    };
    let interrupted = Arc::new(AtomicU8::new(0));
    let token = run.cancellation_token();
    let cancel = move || token.cancel();
    let at_once = Arc::new(ExitAtOnce {
        inputs,
        resume: durable.clone(),
        remote: args.nats.is_some(),
        result_file: target.is_some(),
        result_written: tokio::sync::Mutex::new(false),
    });
    // Heard until orch returns (dropping the guard stops it): a signal that comes while
    // the summary or the result file is written still counts, and a second one still
    // ends orch.
    let _watching = match cancel_on_signal(signals, cancel, &interrupted, &at_once) {
        Ok(watching) => watching,
        Err(e) => return setup_error(format!("cannot watch for signals: {e}")),
    };
    let outcome = run.await;
    if let Some(bus) = &bus {
        // A cancelled run may return while its last events are still on their way: they
        // are shown before the bus closes (a run that failed to run announces no end).
        if outcome.is_ok() && watcher.is_some() {
            let shown = finished_seen.notified();
            let _ = tokio::time::timeout(Duration::from_secs(2), shown).await;
        }
        bus.close().await;
    }
    let mut display = match watcher {
        Some(watcher) => watcher.await.ok(),
        None => None,
    };
    if let Some(server) = server {
        server.abort();
    }
    let signal = interrupted.load(Ordering::SeqCst);
    if outcome.is_err()
        && let Some(display) = &mut display
    {
        display.clear();
    }
    let result = match outcome {
        Ok(result) => result,
        Err(RunError::Journal(failure)) => {
            // Opened (or refused) before any task ran, or failed while tasks ran: what
            // it recorded until then stays, to go on from with --resume.
            let (what, code) = match failure.error() {
                _ if failure.while_running() => ("stopped: the journal failed", 1),
                // Could not be set up: in use elsewhere, or not readable or writable.
                JournalError::AlreadyOpen { .. }
                | JournalError::InUse { .. }
                | JournalError::Io { .. } => ("not run", 2),
                // Refused: the run cannot go on with this workflow.
                _ => ("not run", 1),
            };
            errln!("{}: {what}: {failure}", args.file.display());
            if let Some(run_id) = durable.filter(|_| failure.while_running()) {
                errln!("what it recorded before stays: --resume {run_id} goes on from there");
            }
            let code = ExitCode::from(code);
            return match signal {
                0 => code,
                signal => ExitCode::from(128 + signal),
            };
        }
        Err(errors) => {
            errln!("{}: not run:\n{errors}", args.file.display());
            return ExitCode::from(1);
        }
    };
    // A second signal that came as the run ended ends orch with no summary: the exit at
    // once holds this lock from before it kills the commands until orch ends. (Not held
    // while the summary is written: a second signal still ends orch when its output
    // blocks.)
    if at_once.result_written.try_lock().is_err() {
        std::future::pending::<()>().await;
    }
    match display {
        Some(display) => display.finish(&workflow, &result, signal != 0),
        None => out!(
            "{}",
            crate::display::summary(&workflow, &result, signal != 0)
        ),
    }
    let mut written = true;
    if let Some(target) = target {
        let path = target.path().to_owned();
        let wrote = at_once
            .writing_result(|| target.write(&result, &workflow))
            .await;
        match wrote {
            Ok(unreadable) => {
                outln!("result written to {}", path.display());
                // Kept, but of no use to orch's other commands: exit 2 all the same.
                if let Some(why) = unreadable {
                    errln!("orch run: {why}");
                    written = false;
                }
            }
            Err(e) => {
                errln!("orch run: {e}");
                written = false;
            }
        }
    }
    // A signal that came while the summary or the result was written counts too.
    let signal = interrupted.load(Ordering::SeqCst);
    // An interruption is reported even when the result could not be written.
    match (signal, result.status, written) {
        (0, WorkflowStatus::Completed, true) => ExitCode::SUCCESS,
        (0, _, false) => ExitCode::from(2),
        (0, _, true) => ExitCode::from(1),
        (signal, _, _) => ExitCode::from(128 + signal),
    }
}

/// The journal in `dir` (created if missing) and the run to record in it: a new one, or
/// run `resume`, which the journal must hold. A `dir` or `resume` refused without
/// looking in the journal (a resume of a `dir` that does not exist) creates no
/// directory.
async fn open_journal(dir: &Path, resume: Option<&str>) -> Result<(FileJournal, RunId), String> {
    if let Some((scheme, _)) = dir.to_str().and_then(|d| d.split_once("://")) {
        // Only the scheme: the rest may hold a password.
        return Err(format!(
            "--journal: `{scheme}://…` looks like a URL; --journal takes a directory (a \
             PostgreSQL journal is for programs that use the library's PgJournal)"
        ));
    }
    let resume = resume
        .map(|id| RunId::parse(id).map_err(|e| format!("--resume: `{id}` is not a run id: {e}")))
        .transpose()?;
    if let Some(run_id) = &resume
        && std::fs::metadata(dir).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
    {
        return Err(format!(
            "--resume: no run `{run_id}` in {}: there is no such directory",
            dir.display()
        ));
    }
    let journal = FileJournal::new(dir).map_err(|e| format!("--journal: {e}"))?;
    let Some(run_id) = resume else {
        return Ok((journal, RunId::new()));
    };
    match journal.load(&run_id).await {
        Ok(Some(_)) => Ok((journal, run_id)),
        Ok(None) => Err(format!(
            "--resume: no run `{run_id}` in {} (`orch runs list {}` lists them)",
            dir.display(),
            dir.display()
        )),
        Err(e) => Err(format!("--resume: {e}")),
    }
}

/// A handler that sends each attempt to a worker through NATS.
async fn remote_handler(
    url: &str,
    worker_timeout: Duration,
) -> Result<orch_nats::RemoteHandler, String> {
    let config = crate::worker::nats_config(Some(url), Some("orch run"))?;
    orch_nats::RemoteHandler::builder()
        .missing_worker_timeout(worker_timeout)
        .connect(&config)
        .await
        .map_err(|e| format!("--nats: {e}"))
}

/// The directory relative paths in the workflow start from: the file's own.
fn base_dir(file: &Path) -> PathBuf {
    let dir = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned())
}
