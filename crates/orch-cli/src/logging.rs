//! Logs on standard error through `tracing-subscriber`: `-v` for more, `RUST_LOG` to
//! choose exactly, `--log-format json` for machines. While a progress bar is drawn, each
//! log line is written with the bar hidden, so the two never tear each other apart. A
//! line's control characters are escaped (commands' errors and output reach the logs):
//! in text, all but colours on a terminal; in JSON, those JSON leaves as they are.

use std::borrow::Cow;
use std::io::{IsTerminal, Write};
use std::sync::{Mutex, PoisonError};

use indicatif::ProgressBar;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::display::printable;

/// The progress bar being drawn, if any.
static BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Makes `bar` the one log lines hide while they are written; `None` when it is gone.
pub(crate) fn set_bar(bar: Option<ProgressBar>) {
    *BAR.lock().unwrap_or_else(PoisonError::into_inner) = bar;
}

/// The filter `RUST_LOG` asks for, its invalid directives left out and named on standard
/// error as orch writes errors (tracing-subscriber's own report of them would panic on a
/// closed standard error); the defaults for `verbose` if none is left (a filter without
/// directives would show nothing at all, errors included).
///
/// A span field's value in a directive is matched as the field's whole text, not as a
/// regular expression: building the matcher of a pattern may take any memory.
fn filter_from(spec: &str, verbose: u8) -> EnvFilter {
    let builder = EnvFilter::builder();
    let (valid, invalid): (Vec<String>, Vec<String>) = (spec.split(','))
        .filter(|directive| !directive.trim().is_empty())
        .map(literal_field_values)
        .partition(|directive| builder.parse(directive).is_ok());
    for directive in invalid {
        errln!("orch: ignoring `{directive}` in RUST_LOG: not a log directive");
    }
    if valid.is_empty() {
        return EnvFilter::new(default_filter(verbose));
    }
    builder.parse_lossy(valid.join(","))
}

/// `directive` with the characters of its span fields' values (`[span{field=value}]`)
/// that mean something in a regular expression escaped: each value matches its own
/// text only, and its matcher grows with its length only.
fn literal_field_values(directive: &str) -> String {
    // Those that mean something outside a class (`[` is escaped, so none is opened):
    // `-1` stays a number.
    const META: &str = "\\.+*?()|[]{}^$";
    let mut literal = String::with_capacity(directive.len());
    let (mut in_fields, mut in_value) = (false, false);
    for c in directive.chars() {
        match c {
            '}' if in_fields => (in_fields, in_value) = (false, false),
            ',' if in_fields => in_value = false,
            _ if in_value && META.contains(c) => literal.push('\\'),
            '{' => in_fields = true,
            '=' if in_fields => in_value = true,
            _ => {}
        }
        literal.push(c);
    }
    literal
}

/// What shows without `RUST_LOG`: see [`init`]. A directive's target matches every
/// target it starts (`orch` matches `orch_journal`), so orch's other crates are named.
fn default_filter(verbose: u8) -> &'static str {
    match verbose {
        0 => {
            "warn,orch=info,orch_nats=info,orch_engine=error,orch_core=warn,\
             orch_events=warn,orch_journal=warn,orch_metrics=warn"
        }
        1 => "info",
        2 => "debug",
        _ => "trace",
    }
}

/// Installs the global subscriber. Without `RUST_LOG`, orch's own messages (among them
/// every command's standard error) and its NATS connection's (connected again, a task
/// delivered again) show at `info`, the engine's only at `error` (the command reports
/// failures, skips and the run's end itself), others at `warn`; each `-v` shows more.
pub(crate) fn init(verbose: u8, json: bool) {
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) => filter_from(&spec, verbose),
        Err(std::env::VarError::NotUnicode(_)) => {
            errln!("orch: ignoring RUST_LOG: not valid UTF-8");
            EnvFilter::new(default_filter(verbose))
        }
        _ => EnvFilter::new(default_filter(verbose)),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(verbose > 0);
    let installed = if json {
        builder
            .with_writer(StderrAroundBar(Escape::Json))
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        let colours = std::io::stderr().is_terminal();
        builder
            .with_writer(StderrAroundBar(Escape::Text { colours }))
            .with_ansi(colours)
            .try_init()
    };
    // A subscriber is already set only in tests that call this twice; keep the first.
    drop(installed);
}

/// Which control characters a log line keeps.
#[derive(Clone, Copy)]
enum Escape {
    /// A text line: newlines and tabs, and colour sequences when `colours` (the formatter
    /// writes them on a terminal only).
    Text { colours: bool },
    /// A JSON line: serde_json escapes the first 32 itself, not DEL, the C1 range or the
    /// bidirectional and invisible characters.
    Json,
}

/// Standard error, written around the progress bar, with control characters escaped.
struct StderrAroundBar(Escape);

impl<'a> MakeWriter<'a> for StderrAroundBar {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        LineWriter {
            line: Vec::new(),
            escape: self.0,
        }
    }
}

/// Collects one formatted event and writes it whole when dropped.
struct LineWriter {
    line: Vec<u8>,
    escape: Escape,
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
            Escape::Text { colours } => escaped(&self.line, colours),
            Escape::Json => escaped_json(&self.line),
        };
        let write = || {
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        };
        let bar = BAR.lock().unwrap_or_else(PoisonError::into_inner).clone();
        match bar {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    }
}

/// A formatted log line with every control character but newlines, tabs and, with
/// `colours`, colour sequences (`ESC [ digits;... m`) escaped as `\u{..}`
/// ([`printable`]); borrowed when nothing is escaped.
fn escaped(line: &[u8], colours: bool) -> Cow<'_, str> {
    let text = String::from_utf8_lossy(line);
    if !colours || !text.contains('\u{1b}') {
        return match text {
            Cow::Borrowed(text) => printable(text),
            Cow::Owned(text) => Cow::Owned(printable(&text).into_owned()),
        };
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_ref();
    while let Some(at) = rest.find('\u{1b}') {
        out.push_str(&printable(&rest[..at]));
        let escape = &rest[at..];
        // The escape character is one byte; a colour sequence is kept whole.
        let kept = colour_length(escape).unwrap_or(0);
        out.push_str(&escape[..kept]);
        out.push_str(&printable(&escape[kept..kept.max(1)]));
        rest = &escape[kept.max(1)..];
    }
    out.push_str(&printable(rest));
    Cow::Owned(out)
}

/// The length of the colour sequence `text` starts with (`ESC [ digits;... m`), if it
/// starts with one.
fn colour_length(text: &str) -> Option<usize> {
    let after = text.strip_prefix("\u{1b}[")?;
    let digits = after.find(|d: char| !d.is_ascii_digit() && d != ';')?;
    after[digits..].starts_with('m').then_some(2 + digits + 1)
}

/// A JSON log line with DEL, the C1 controls and the bidirectional and invisible
/// characters written as JSON escapes (`\u009b`).
fn escaped_json(line: &[u8]) -> Cow<'_, str> {
    match String::from_utf8_lossy(line) {
        Cow::Borrowed(text) => crate::display::json_controls_escaped(text),
        Cow::Owned(text) => Cow::Owned(crate::display::json_controls_escaped(&text).into_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::{escaped, escaped_json};

    /// Whether `filter` shows each of a few targets' events at a few levels.
    fn shown_by(filter: tracing_subscriber::EnvFilter) -> [bool; 8] {
        use tracing_subscriber::layer::SubscriberExt as _;
        let subscriber = tracing_subscriber::registry().with(filter);
        tracing::subscriber::with_default(subscriber, || {
            [
                tracing::enabled!(target: "orch::run", tracing::Level::INFO),
                tracing::enabled!(target: "orch_nats::worker", tracing::Level::INFO),
                tracing::enabled!(target: "orch_journal::file", tracing::Level::INFO),
                tracing::enabled!(target: "orch_events", tracing::Level::INFO),
                tracing::enabled!(target: "orch_engine::run", tracing::Level::WARN),
                tracing::enabled!(target: "orch_engine::run", tracing::Level::ERROR),
                tracing::enabled!(target: "orch_journal::file", tracing::Level::WARN),
                tracing::enabled!(target: "tokio", tracing::Level::INFO),
            ]
        })
    }

    /// Which of orch's crates show `info` without `-v`: the command's own and the NATS
    /// connection's, not the others (which `orch=info` alone would take in).
    #[test]
    fn without_v_only_the_commands_and_the_nats_connections_info_shows() {
        let filter = tracing_subscriber::EnvFilter::new(super::default_filter(0));
        let shown = shown_by(filter);
        assert_eq!(shown, [true, true, false, false, false, true, true, false]);
    }

    /// A `RUST_LOG` with no directive orch can use (blank, or each one invalid) leaves
    /// the defaults of `-v` in force; it does not silence every log line.
    #[test]
    fn a_rust_log_with_no_valid_directive_leaves_the_defaults() {
        for (spec, verbose) in [(" ", 0), ("orch=loud", 0), (" , ", 1), ("x=y=z", 1)] {
            let default = tracing_subscriber::EnvFilter::new(super::default_filter(verbose));
            let filter = super::filter_from(spec, verbose);
            assert_eq!(shown_by(filter), shown_by(default), "RUST_LOG={spec:?}");
        }
    }

    /// A span field's value in `RUST_LOG` is matched as the field's whole text, whether
    /// the field is recorded as text or shown (`%`): `a.c*` matches `a.c*` only, not
    /// `abc`, `a.cc` or `a` as a pattern or a prefix would (a pattern like `[ab]*a[ab]…`
    /// could take any memory to build).
    #[test]
    fn a_field_value_in_rust_log_is_matched_as_text() {
        use tracing_subscriber::layer::SubscriberExt as _;
        let filter = super::filter_from("[{x=a.c*}]=debug", 0);
        let subscriber = tracing_subscriber::registry().with(filter);
        let shown = tracing::subscriber::with_default(subscriber, || {
            let debug = || tracing::enabled!(tracing::Level::DEBUG);
            ["a.c*", "abc", "a.cc", "a"].map(|x| {
                let shown = tracing::info_span!("s", x = %x).in_scope(debug);
                let text = tracing::info_span!("s", x).in_scope(debug);
                [shown, text]
            })
        });
        assert_eq!(
            shown,
            [[true, true], [false, false], [false, false], [false, false]]
        );
        // Only values change; numbers stay numbers.
        for (directive, literal) in [
            (
                "orch[task{task_id=a.b*}]=debug",
                r"orch[task{task_id=a\.b\*}]=debug",
            ),
            ("[s{x=(a|b){9}}]", r"[s{x=\(a\|b\)\{9}}]"),
            ("[{x=1,y=-2,z}]=trace", "[{x=1,y=-2,z}]=trace"),
            ("orch_engine=debug", "orch_engine=debug"),
        ] {
            assert_eq!(super::literal_field_values(directive), literal);
        }
    }

    #[test]
    fn control_characters_are_escaped_and_colours_kept() {
        let line = "\u{1b}[2mtime\u{1b}[0m error=boom\u{1b}[2J\u{1b}]0;title\u{7}\r\u{9b}1m\tend\n";
        assert_eq!(
            escaped(line.as_bytes(), true),
            "\u{1b}[2mtime\u{1b}[0m error=boom\\u{1b}[2J\\u{1b}]0;title\\u{7}\\u{d}\\u{9b}1m\tend\n"
        );
        // A lone escape at the end, and one that starts a colour it never finishes.
        assert_eq!(escaped(b"a\x1b", true), "a\\u{1b}");
        assert_eq!(escaped(b"a\x1b[12", true), "a\\u{1b}[12");
        // Off a terminal the formatter writes no colours: none is kept.
        assert_eq!(escaped(b"a\x1b[8mhidden", false), "a\\u{1b}[8mhidden");
    }

    #[test]
    fn json_lines_escape_what_serde_json_leaves() {
        let line = "{\"error\":\"x\u{9b}2J\u{7f}\u{a0}\"}\n";
        assert_eq!(
            escaped_json(line.as_bytes()),
            "{\"error\":\"x\\u009b2J\\u007f\u{a0}\"}\n"
        );
        let value: serde_json::Value =
            serde_json::from_str(&escaped_json(line.as_bytes())).expect("still JSON");
        assert_eq!(value["error"], "x\u{9b}2J\u{7f}\u{a0}");
    }
}
