//! Logs on standard error through `tracing-subscriber`: `-v` for more, `RUST_LOG` to
//! choose exactly, `--log-format json` for machines. While a progress bar is drawn, each
//! log line is written with the bar hidden, so the two never tear each other apart. A
//! text line's control characters are escaped (commands' errors and output reach the
//! logs), all but its colours.

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
        .with_target(verbose > 0);
    let installed = if json {
        // JSON escapes what a string holds itself.
        builder
            .with_writer(StderrAroundBar { escape: false })
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder
            .with_writer(StderrAroundBar { escape: true })
            .with_ansi(std::io::stderr().is_terminal())
            .try_init()
    };
    // A subscriber is already set only in tests that call this twice; keep the first.
    drop(installed);
}

/// Standard error, written around the progress bar; `escape`: with control characters
/// escaped.
struct StderrAroundBar {
    escape: bool,
}

impl<'a> MakeWriter<'a> for StderrAroundBar {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        LineWriter {
            line: Vec::new(),
            escape: self.escape,
        }
    }
}

/// Collects one formatted event and writes it whole when dropped.
struct LineWriter {
    line: Vec<u8>,
    escape: bool,
}

impl Write for LineWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        let line = match self.escape {
            true => escaped(&self.line).into_bytes(),
            false => std::mem::take(&mut self.line),
        };
        let write = || {
            let _ = std::io::stderr().lock().write_all(&line);
        };
        let bar = BAR.lock().unwrap_or_else(PoisonError::into_inner).clone();
        match bar {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    }
}

/// A formatted log line with every control character but newlines, tabs and colours
/// (`ESC [ digits;... m`, which the formatter writes on a terminal) escaped as `\u{..}`.
fn escaped(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_ref();
    while let Some(c) = rest.chars().next() {
        let colour = (c == '\u{1b}')
            .then(|| rest[1..].strip_prefix('['))
            .flatten()
            .and_then(|after| {
                let digits = after.find(|d: char| !d.is_ascii_digit() && d != ';')?;
                after[digits..].starts_with('m').then_some(2 + digits + 1)
            });
        match colour {
            Some(length) => {
                out.push_str(&rest[..length]);
                rest = &rest[length..];
                continue;
            }
            None if c.is_control() && c != '\n' && c != '\t' => out.extend(c.escape_unicode()),
            None => out.push(c),
        }
        rest = &rest[c.len_utf8()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escaped;

    #[test]
    fn control_characters_are_escaped_and_colours_kept() {
        let line = "\u{1b}[2mtime\u{1b}[0m error=boom\u{1b}[2J\u{1b}]0;title\u{7}\r\u{9b}1m\tend\n";
        assert_eq!(
            escaped(line.as_bytes()),
            "\u{1b}[2mtime\u{1b}[0m error=boom\\u{1b}[2J\\u{1b}]0;title\\u{7}\\u{d}\\u{9b}1m\tend\n"
        );
        // A lone escape at the end, and one that starts a colour it never finishes.
        assert_eq!(escaped(b"a\x1b"), "a\\u{1b}");
        assert_eq!(escaped(b"a\x1b[12"), "a\\u{1b}[12");
    }
}
