//! Logs on standard error through `tracing-subscriber`: `-v` for more, `RUST_LOG` to
//! choose exactly, `--log-format json` for machines. While a progress bar is drawn, each
//! log line is written with the bar hidden, so the two never tear each other apart.

use std::io::{IsTerminal, Write};
use std::sync::{Mutex, PoisonError};

use indicatif::ProgressBar;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// The progress bar being drawn, if any.
static BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Makes `bar` the one log lines hide while they are written; `None` when it is gone.
pub(crate) fn set_bar(bar: Option<ProgressBar>) {
    *BAR.lock().unwrap_or_else(PoisonError::into_inner) = bar;
}

/// Installs the global subscriber. Without `RUST_LOG`, orch's own messages (among them
/// every command's standard error) show at `info`, the engine's only at `error` (the
/// command reports failures, skips and the run's end itself), others at `warn`; each
/// `-v` shows more.
pub(crate) fn init(verbose: u8, json: bool) {
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.is_empty() => EnvFilter::new(spec),
        _ => EnvFilter::new(match verbose {
            0 => "warn,orch=info,orch_engine=error",
            1 => "info",
            2 => "debug",
            _ => "trace",
        }),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(StderrAroundBar)
        .with_target(verbose > 0);
    let installed = if json {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init()
    };
    // A subscriber is already set only in tests that call this twice; keep the first.
    drop(installed);
}

/// Standard error, written around the progress bar.
struct StderrAroundBar;

impl<'a> MakeWriter<'a> for StderrAroundBar {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        LineWriter(Vec::new())
    }
}

/// Collects one formatted event and writes it whole when dropped.
struct LineWriter(Vec<u8>);

impl Write for LineWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        let write = || {
            let _ = std::io::stderr().lock().write_all(&self.0);
        };
        let bar = BAR.lock().unwrap_or_else(PoisonError::into_inner).clone();
        match bar {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    }
}
