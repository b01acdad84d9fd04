//! The async runtime of `orch run` and `orch worker`, sized for the commands they run.

use std::io;
use std::time::Duration;

/// A runtime for running up to `commands` commands at once: each holds one of its
/// blocking threads while it runs (see `process::exited`), beside tokio's usual 512 for
/// other blocking work, so that no command's exit waits for a free thread.
///
/// It also handles SIGCHLD (doing nothing with it): orch started with SIGCHLD ignored,
/// which a parent process can hand down, would otherwise have each command's exit status
/// thrown away by the kernel, and every command task fail with "No child processes".
pub(crate) fn for_commands(commands: usize) -> io::Result<tokio::runtime::Runtime> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(512 + commands)
        .build()?;
    {
        let _inside = runtime.enter();
        // The handler stays installed when the returned stream is dropped.
        drop(tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::child(),
        )?);
    }
    Ok(runtime)
}

/// Shuts `runtime` down: its tasks are dropped (and with them the commands' handlers and
/// inputs directories), and a thread still waiting on a command that SIGKILL could not
/// end (stuck in the kernel, say on a hung network mount) is left behind after a while,
/// so that orch still exits.
pub(crate) fn shut_down(runtime: tokio::runtime::Runtime) {
    runtime.shutdown_timeout(Duration::from_secs(5));
}
