//! How `orch run` hears stopping signals: one while it sets up stops it before anything
//! runs; the first during the run cancels it; a second ends orch at once.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use orch::core::RunId;
use tokio::signal::unix::Signal;

use super::GRACE;
use crate::inputs::InputsRoot;

/// `step`'s output, or, if a stopping signal comes first, the exit code that says so
/// (said on stderr: nothing ran).
pub(super) async fn until_signal<T>(
    signals: &mut [(Signal, u8)],
    step: impl Future<Output = T>,
) -> Result<T, ExitCode> {
    crate::signals::unless_signalled(signals, step)
        .await
        .map_err(|number| {
            errln!("orch run: stopped before the run started");
            ExitCode::from(128 + number)
        })
}

/// What ending orch at once (at a second signal) must clean up, wait for, and say.
pub(super) struct ExitAtOnce {
    /// The directory of dependency results handed to commands.
    pub(super) inputs: InputsRoot,
    /// A durable run's id, to go on from.
    pub(super) resume: Option<RunId>,
    /// Whether the commands run on NATS workers, not here.
    pub(super) remote: bool,
    /// Whether a result file was asked for.
    pub(super) result_file: bool,
    /// Whether the result file is in place; held while it is written.
    pub(super) result_written: tokio::sync::Mutex<bool>,
}

impl ExitAtOnce {
    /// Runs `write`, which writes the result file, holding the lock a second signal takes:
    /// cut short, the write would leave a temporary file beside the result's place. What
    /// is said of it is said after, the lock let go: an output that blocks must not hold
    /// it.
    pub(super) async fn writing_result<T, E>(
        &self,
        write: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        let mut written = self.result_written.lock().await;
        let wrote = write();
        *written = wrote.is_ok();
        wrote
    }
}

/// Cancels the run at the first of `signals`, noting which signal it was; ends orch at
/// once at the second (a SIGHUP after the first signal does not count), killing the
/// commands still running (a result file being written is finished first; none is
/// written after). Watched apart (see [`crate::signals::watch_apart`]) until the guard
/// returned is dropped.
pub(super) fn cancel_on_signal(
    signals: Vec<(Signal, u8)>,
    cancel: impl FnOnce() + Send + 'static,
    interrupted: &Arc<AtomicU8>,
    at_once: &Arc<ExitAtOnce>,
) -> std::io::Result<crate::signals::WatchingApart> {
    let watching = watch(
        signals,
        cancel,
        Arc::clone(interrupted),
        Arc::clone(at_once),
    );
    crate::signals::watch_apart(watching)
}

async fn watch(
    mut signals: Vec<(Signal, u8)>,
    cancel: impl FnOnce(),
    interrupted: Arc<AtomicU8>,
    at_once: Arc<ExitAtOnce>,
) {
    let number = crate::signals::next(&mut signals).await;
    interrupted.store(number, Ordering::SeqCst);
    cancel();
    crate::signals::log_apart(|| {
        tracing::warn!(
            "interrupted: stopping the running tasks (up to {}s; again to exit at once)",
            GRACE.as_secs()
        );
    });
    let number = crate::signals::next_again(&mut signals).await;
    let result_written = at_once.result_written.lock().await;
    crate::process::kill_running_commands();
    if let Some(dir) = at_once.inputs.created() {
        let _ = std::fs::remove_dir_all(dir);
    }
    let mut said = String::from("orch run: exiting at once");
    if !at_once.remote {
        said.push_str(": running commands killed");
    }
    if at_once.result_file && !*result_written {
        said.push_str("; no result file written");
    }
    let mut lines = vec![said];
    if let Some(run_id) = &at_once.resume {
        lines.push(format!(
            "what the journal recorded stays: --resume {run_id} goes on from there"
        ));
    }
    crate::signals::exit_saying(lines, 128 + i32::from(number));
}
