//! What `orch run` shows while a workflow runs: a progress bar on a terminal, one line per
//! event otherwise, and a summary at the end.

use std::io::{BufWriter, Stdout, Write};
use std::time::{Duration, SystemTime};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use orch::core::{
    EngineEvent, EngineEventKind, TaskId, TaskRecord, TaskStatus, Workflow, WorkflowResult,
    WorkflowStatus,
};

use crate::logging;
use crate::tally::Tally;

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ProgressMode {
    /// A bar when standard output is a terminal, else one line per event.
    Auto,
    /// A bar with the counts and the running tasks (drawn only on a terminal).
    Bar,
    /// One line per event.
    Lines,
    /// Nothing but the summary.
    None,
}

/// The live display of one run.
pub(crate) struct Display {
    tally: Tally,
    bar: Option<ProgressBar>,
    /// Where event lines go, when they are shown; flushed whenever no event is waiting.
    lines: Option<BufWriter<Stdout>>,
    /// When the run started, from its first event.
    start: Option<SystemTime>,
    /// Map instances that completed, or were restored from the run resumed.
    instances_done: usize,
}

/// How many running tasks the bar names.
const NAMED: usize = 3;
/// How many failed or skipped tasks the summary names.
const LISTED: usize = 10;

impl Display {
    /// A display for a run of `total` tasks; `terminal` says whether standard output is one.
    pub(crate) fn new(mode: ProgressMode, total: usize, terminal: bool) -> Self {
        let bar = matches!(mode, ProgressMode::Bar) || (mode == ProgressMode::Auto && terminal);
        let bar = bar.then(|| {
            let bar =
                ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stdout());
            let style = ProgressStyle::with_template(
                "{spinner} {elapsed_precise} [{bar:30}] {pos}/{len} {wide_msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            // Drawn at once, not at the ticker's first turn (a manual tick does nothing
            // once the ticker runs).
            bar.tick();
            bar.enable_steady_tick(Duration::from_millis(100));
            logging::set_bar(Some(bar.clone()));
            bar
        });
        let lines = bar.is_none() && mode != ProgressMode::None;
        Self {
            tally: Tally::new(total),
            lines: lines.then(|| BufWriter::new(std::io::stdout())),
            bar,
            start: None,
            instances_done: 0,
        }
    }

    /// Shows one lifecycle event.
    pub(crate) fn event(&mut self, event: &EngineEvent) {
        // The bar counts the workflow's tasks; a map's instances, done, beside them.
        if event.map_item.is_none() {
            self.tally.apply(event);
        } else if matches!(
            event.kind,
            EngineEventKind::TaskCompleted | EngineEventKind::TaskRestored
        ) {
            self.instances_done += 1;
        }
        let start = *self.start.get_or_insert(event.timestamp);
        if let Some(bar) = &self.bar {
            bar.set_position(self.tally.finished() as u64);
            bar.set_message(self.status_line());
        } else if let Some(out) = self.lines.as_mut().filter(|_| event.kind.is_task_event()) {
            let at = event.timestamp.duration_since(start).unwrap_or_default();
            crate::note_stdout(writeln!(out, "{}", event_line(event, at)));
        }
    }

    /// Prints `line` on standard output, above the bar or among the event lines.
    pub(crate) fn say(&mut self, line: &str) {
        match (&self.bar, &mut self.lines) {
            (Some(bar), _) => bar.suspend(|| outln!("{line}")),
            (None, Some(out)) => crate::note_stdout(writeln!(out, "{}", printable(line))),
            (None, None) => outln!("{line}"),
        }
    }

    /// Writes what is pending and takes the bar off the screen (a run that ended without
    /// a result has no summary).
    pub(crate) fn clear(&mut self) {
        self.flush();
        if let Some(bar) = &self.bar {
            logging::set_bar(None);
            bar.finish_and_clear();
        }
    }

    /// Writes out the event lines shown so far.
    pub(crate) fn flush(&mut self) {
        if let Some(out) = &mut self.lines {
            crate::note_stdout(out.flush());
        }
    }

    /// `done 3, failed 1, skipped 2, running: a, b, c (+4)`, with `map instances done
    /// 36` after the counts once a map's instances are done.
    fn status_line(&self) -> String {
        let t = &self.tally;
        let mut text = format!(
            "done {}, failed {}, skipped {}",
            t.completed, t.failed, t.skipped
        );
        if self.instances_done > 0 {
            text.push_str(&format!(", map instances done {}", self.instances_done));
        }
        if !t.running.is_empty() {
            let named: Vec<&str> = t.running.iter().take(NAMED).map(|id| id.as_str()).collect();
            text.push_str(&format!(", running: {}", named.join(", ")));
            if t.running.len() > NAMED {
                text.push_str(&format!(" (+{})", t.running.len() - NAMED));
            }
        }
        text
    }

    /// Clears the bar and prints the summary of `result`, a run of `workflow`.
    pub(crate) fn finish(
        mut self,
        workflow: &Workflow,
        result: &WorkflowResult,
        interrupted: bool,
    ) {
        self.clear();
        let summary = summary(workflow, result, interrupted);
        crate::note_stdout(std::io::stdout().lock().write_all(summary.as_bytes()));
    }
}

/// `[  0.013s] failed     build: ...`
fn event_line(event: &EngineEvent, at: Duration) -> String {
    let id = event.task_id.as_deref().unwrap_or_default();
    let mut line = format!(
        "[{:>8.3}s] {:<10} {id}",
        at.as_secs_f64(),
        event.kind.as_str()
    );
    match event.kind {
        EngineEventKind::TaskStarted => {
            line.push_str(&format!(
                " ({})",
                event.task_type.as_deref().unwrap_or_default()
            ));
        }
        EngineEventKind::TaskCompleted => {
            if let Some(d) = event.duration {
                line.push_str(&format!(" in {:.3}s", d.as_secs_f64()));
            }
        }
        EngineEventKind::TaskRetrying => {
            line.push_str(&format!(
                " after attempt {}: {}",
                event.attempt,
                error_text(event.error.as_deref().unwrap_or_default())
            ));
        }
        _ => {
            if let Some(error) = &event.error {
                line.push_str(&format!(": {}", error_text(error)));
            }
        }
    }
    line
}

pub(crate) use orch::core::is_hidden_control;

/// `text` with its control characters (bidirectional ones too) but line breaks and tabs
/// written as escapes (`\u{1b}`): an error may end with what a command wrote to standard
/// error, whose terminal escape sequences must not reach the terminal as such.
pub(crate) fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    escaped_where(text, |c| is_hidden_control(c) && c != '\n' && c != '\t')
}

/// A handler's error text as `printable` writes it, each line after the first indented:
/// a line of it cannot pass for one of orch's own (an event or a summary line).
fn error_text(text: &str) -> std::borrow::Cow<'_, str> {
    let shown = printable(text);
    match shown.contains('\n') {
        true => shown.replace('\n', "\n      ").into(),
        false => shown,
    }
}

/// `text` with every control character written as an escape, line breaks and tabs too:
/// for what must stay on its line (an id, a name, a table's cell), where a line break
/// could pass for a line of output.
pub(crate) fn one_line(text: &str) -> std::borrow::Cow<'_, str> {
    escaped_where(text, is_hidden_control)
}

/// `text` with each character `escaped` picks written as `\u{..}`.
fn escaped_where(text: &str, escaped: impl Fn(char) -> bool) -> std::borrow::Cow<'_, str> {
    replaced(text, escaped, |out, c| out.extend(c.escape_unicode()))
}

/// `text` with each character `picked` picks written by `write` instead; borrowed when
/// none is.
fn replaced(
    text: &str,
    picked: impl Fn(char) -> bool,
    write: impl Fn(&mut String, char),
) -> std::borrow::Cow<'_, str> {
    if !text.contains(&picked) {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match picked(c) {
            true => write(&mut out, c),
            false => out.push(c),
        }
    }
    out.into()
}

/// `value` as indented JSON, with DEL, the C1 controls and the bidirectional and
/// invisible characters written as JSON escapes (`\u009b`, `\u202e`) as well: serde_json
/// escapes the other control characters itself, and the text stays JSON that reads back
/// to `value`.
pub(crate) fn json_text(value: &serde_json::Value) -> String {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    json_controls_escaped(&text).into_owned()
}

/// JSON text with the control characters serde_json leaves (DEL, the C1 controls, the
/// bidirectional and invisible ones) written as JSON escapes (`\u009b`; a pair of them,
/// `\udb40\udc41`, for one past the Basic Multilingual Plane): in JSON they can only be
/// inside strings, where such an escape stands for them.
pub(crate) fn json_controls_escaped(text: &str) -> std::borrow::Cow<'_, str> {
    use std::fmt::Write as _;
    replaced(
        text,
        |c| c >= '\u{7f}' && is_hidden_control(c),
        |out, c| {
            for unit in c.encode_utf16(&mut [0; 2]) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        },
    )
}

/// The records of `result`: those of `workflow`'s tasks, and those of its map tasks'
/// instances (the ids it does not have).
pub(crate) type Records<'a> = Vec<(&'a TaskId, &'a TaskRecord)>;

pub(crate) fn tasks_and_instances<'a>(
    workflow: &Workflow,
    result: &'a WorkflowResult,
) -> (Records<'a>, Records<'a>) {
    (result.tasks.iter()).partition(|(id, _)| workflow.index_of(id).is_some())
}

/// How many of `records` ended as `status`.
pub(crate) fn count_of(records: &[(&TaskId, &TaskRecord)], status: TaskStatus) -> usize {
    records.iter().filter(|(_, r)| r.status == status).count()
}

/// The statuses of `records` that some have, with how many: `2 completed, 1 failed`.
pub(crate) fn status_counts(records: &[(&TaskId, &TaskRecord)]) -> String {
    let counts: Vec<String> = STATUSES
        .into_iter()
        .map(|s| (count_of(records, s), s))
        .filter(|&(n, _)| n > 0)
        .map(|(n, s)| format!("{n} {}", s.as_str()))
        .collect();
    counts.join(", ")
}

/// The run's outcome in a few lines: status, the counts of the workflow's tasks (then of
/// its map instances, when it had any), and the tasks that failed or were skipped, each
/// with its reason. A failed instance is listed with its own error, and so is one its
/// handler skipped; one skipped because its map stopped is not (its map task's line
/// says why).
pub(crate) fn summary(workflow: &Workflow, result: &WorkflowResult, interrupted: bool) -> String {
    let (tasks, instances) = tasks_and_instances(workflow, result);
    let verb = match (result.status, interrupted) {
        (WorkflowStatus::Cancelled, true) => "was interrupted",
        (status, _) => status.as_str(),
    };
    let mut text = format!(
        "workflow `{}` {verb} after {:.3}s: {} tasks: {} completed, {} failed, {} skipped, {} cancelled",
        result.workflow_id,
        result.total_duration().as_secs_f64(),
        tasks.len(),
        count_of(&tasks, TaskStatus::Completed),
        count_of(&tasks, TaskStatus::Failed),
        count_of(&tasks, TaskStatus::Skipped),
        count_of(&tasks, TaskStatus::Cancelled),
    );
    if !instances.is_empty() {
        text.push_str(&format!(
            "; {} map instances: {}",
            instances.len(),
            status_counts(&instances)
        ));
    }
    text.push('\n');
    list(
        &mut text,
        TaskStatus::Failed,
        tasks.iter().chain(&instances),
    );
    // An instance skipped because its map stopped is not listed: its map task's line
    // says why. One its handler skipped is.
    let map_stopped = |r: &TaskRecord| {
        r.error
            .as_deref()
            .is_some_and(|e| e.starts_with("map stopped:"))
    };
    let skipped_by_handler = instances.iter().filter(|(_, r)| !map_stopped(r));
    list(
        &mut text,
        TaskStatus::Skipped,
        tasks.iter().chain(skipped_by_handler),
    );
    text
}

/// Adds a line for each of the first `LISTED` of `records` that have `status`, then how
/// many more have it.
fn list<'r>(
    text: &mut String,
    status: TaskStatus,
    records: impl Iterator<Item = &'r (&'r TaskId, &'r TaskRecord)>,
) {
    let records: Vec<_> = records.filter(|(_, r)| r.status == status).collect();
    for (id, record) in records.iter().take(LISTED) {
        let error = error_text(record.error.as_deref().unwrap_or_default());
        text.push_str(&format!("  {:<9} {id}: {error}\n", status.as_str()));
    }
    if records.len() > LISTED {
        text.push_str(&format!(
            "  ... and {} more {}\n",
            records.len() - LISTED,
            status.as_str()
        ));
    }
}

/// Every status, in the order the summary counts them (and the graph lists its classes).
pub(crate) const STATUSES: [TaskStatus; 6] = [
    TaskStatus::Completed,
    TaskStatus::Failed,
    TaskStatus::Skipped,
    TaskStatus::Cancelled,
    TaskStatus::Running,
    TaskStatus::Pending,
];

#[cfg(test)]
mod tests {
    use orch::core::{RunId, Task, TaskRecord, TaskRecords, TaskStatus, Workflow, WorkflowResult};

    use super::{Display, ProgressMode, error_text, one_line, printable, summary};

    /// The bar's line counts the workflow's tasks, and beside them the map instances
    /// done (completed, or restored from the run resumed).
    #[test]
    fn the_status_line_counts_map_instances_done_apart() {
        use orch::core::{EngineEvent, EngineEventKind};
        let mut display = Display::new(ProgressMode::None, 2, false);
        let event = |kind, task: &str, item: Option<u32>| {
            let run = RunId::parse("r").expect("a run id");
            let mut event = EngineEvent::new(kind, "w".into(), run, std::time::SystemTime::now());
            event.task_id = Some(task.into());
            event.map_item = item;
            event
        };
        display.event(&event(EngineEventKind::TaskCompleted, "list", None));
        assert_eq!(display.status_line(), "done 1, failed 0, skipped 0");
        display.event(&event(EngineEventKind::TaskStarted, "m", None));
        display.event(&event(EngineEventKind::TaskRestored, "m", Some(0)));
        display.event(&event(EngineEventKind::TaskStarted, "m", Some(1)));
        display.event(&event(EngineEventKind::TaskCompleted, "m", Some(1)));
        display.event(&event(EngineEventKind::TaskFailed, "m", Some(2)));
        assert_eq!(
            display.status_line(),
            "done 1, failed 0, skipped 0, map instances done 2, running: m"
        );
    }

    /// Bidirectional controls, which reorder how the rest of a line is shown, are
    /// written as escapes as control characters are.
    #[test]
    fn bidirectional_controls_are_written_as_escapes() {
        assert_eq!(printable("a\u{202E}b\nc"), "a\\u{202e}b\nc");
        assert_eq!(one_line("x\u{2067}y"), "x\\u{2067}y");
    }

    /// An invisible character past the Basic Multilingual Plane (a tag character) is
    /// written in JSON as the pair of escapes that stands for it, and reads back.
    #[test]
    fn an_invisible_character_past_the_first_plane_is_a_pair_of_json_escapes() {
        let value = serde_json::json!({"id": "load\u{E0041}\u{3164}"});
        let text = super::json_text(&value);
        assert!(text.contains(r"load\udb40\udc41\u3164"), "{text}");
        let back: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(back, value);
        assert_eq!(printable("a\u{E0041}"), "a\\u{e0041}");
    }

    /// An error's later lines are indented, so that a handler cannot print what looks
    /// like an event or a summary line of orch's.
    #[test]
    fn an_errors_later_lines_are_indented() {
        let forged = "boom\n[   0.500s] completed  deploy\n  failed    other: x";
        assert_eq!(
            error_text(forged),
            "boom\n      [   0.500s] completed  deploy\n        failed    other: x"
        );
        assert_eq!(error_text("a\u{1b}b"), "a\\u{1b}b");
        let workflow = Workflow::new("w", "W").task(Task::new("build", "t"));
        let records = vec![record(TaskStatus::Failed, Some(forged))];
        let tasks = TaskRecords::for_workflow(&workflow, records).expect("records");
        let text = summary(&workflow, &failed_run(tasks), false);
        assert!(
            text.contains(&format!("build: {}\n", error_text(forged))),
            "{text}"
        );
    }

    /// A failed run `r` of workflow `w` whose tasks ended as `tasks` say.
    fn failed_run(tasks: TaskRecords) -> WorkflowResult {
        let now = std::time::SystemTime::now();
        WorkflowResult {
            workflow_id: "w".into(),
            run_id: RunId::parse("r").expect("a run id"),
            name: "W".into(),
            status: orch::core::WorkflowStatus::Failed,
            start_time: now,
            end_time: now,
            max_concurrent: 1,
            tasks,
        }
    }

    fn record(status: TaskStatus, error: Option<&str>) -> TaskRecord {
        TaskRecord {
            status,
            error: error.map(str::to_owned),
            ..TaskRecord::default()
        }
    }

    /// An instance its handler skipped is listed with its reason; one skipped because
    /// its map stopped is not (its map task's line says why).
    #[test]
    fn an_instance_its_handler_skipped_is_listed_and_one_its_map_stopped_is_not() {
        let workflow = Workflow::new("w", "W")
            .task(Task::new("list", "t"))
            .task(Task::new("each", "t").map_over("list"));
        let records = vec![
            record(TaskStatus::Completed, None),
            record(TaskStatus::Failed, Some("instance `each[1]` failed")),
        ];
        let instances = [
            (
                "each[0]",
                record(TaskStatus::Skipped, Some("not for this item")),
            ),
            ("each[1]", record(TaskStatus::Failed, Some("broken"))),
            (
                "each[2]",
                record(TaskStatus::Skipped, Some("map stopped: `each[1]` failed")),
            ),
        ]
        .map(|(id, r)| (id.into(), r));
        let tasks =
            TaskRecords::for_workflow_with_extra(&workflow, records, instances).expect("records");
        let text = summary(&workflow, &failed_run(tasks), false);
        assert!(
            text.contains("2 tasks: 1 completed, 1 failed, 0 skipped, 0 cancelled; 3 map instances: 1 failed, 2 skipped"),
            "{text}"
        );
        assert!(
            text.contains("  skipped   each[0]: not for this item\n"),
            "{text}"
        );
        assert!(!text.contains("each[2]"), "{text}");
        assert!(text.contains("  failed    each[1]: broken\n"), "{text}");
    }
}
