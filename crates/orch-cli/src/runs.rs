//! `orch runs list DIR` and `orch runs show DIR RUN_ID`: the runs a journal directory
//! (`orch run --journal DIR`) holds, as a table or JSON.

use std::path::Path;
use std::process::ExitCode;
use std::time::SystemTime;

use std::collections::{HashMap, HashSet};

use orch::core::{MapSpec, RunId, TaskStatus};
use orch::journal::{FileJournal, Journal, JournalError, LoadedRun};
use serde_json::{Value, json};

use crate::Format;

/// Lists every run of the journal in `dir`, oldest first, then the runs whose file
/// cannot be read, each with its error. Exit 0; 1 when some run cannot be read; 2 when
/// the directory cannot be read.
pub(crate) fn list(dir: &Path, format: Format) -> ExitCode {
    let Listing { runs, unreadable } = match load_all(dir) {
        Ok(listing) => listing,
        Err(e) => return fail(e),
    };
    match format {
        Format::Json => {
            let mut listed: Vec<Value> = runs.iter().map(Summary::json).collect();
            listed.extend(unreadable.iter().map(|(run_id, error)| {
                json!({ "run_id": run_id.as_str(), "status": "unreadable", "error": error })
            }));
            print_json(&json!({ "runs": listed }));
        }
        Format::Text if runs.is_empty() && unreadable.is_empty() => {
            outln!("no runs in {}", dir.display());
        }
        Format::Text => {
            let mut rows = vec![row_strings(&[
                "RUN",
                "WORKFLOW",
                "STATUS",
                "TASKS",
                "COMPLETED",
                "FAILED",
                "SKIPPED",
                "CANCELLED",
                "STARTED",
                "ENDED",
            ])];
            for run in &runs {
                let counts = &run.counts;
                rows.push(vec![
                    run.run_id.to_string(),
                    run.workflow_id.clone(),
                    run.status.to_owned(),
                    counts.total.to_string(),
                    counts.completed.to_string(),
                    counts.failed.to_string(),
                    counts.skipped.to_string(),
                    counts.cancelled.to_string(),
                    time_text(Some(run.created)),
                    time_text(run.ended),
                ]);
            }
            for (run_id, _) in &unreadable {
                let mut row = vec!["-".to_owned(); 10];
                row[0] = run_id.to_string();
                row[2] = "unreadable".to_owned();
                rows.push(row);
            }
            print_table(&rows);
        }
    }
    for (run_id, error) in &unreadable {
        errln!("orch runs: cannot read run {run_id}: {error}");
    }
    if unreadable.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Shows run `run_id` of the journal in `dir` and each of its tasks. Exit 0; 1 when the
/// journal has no such run or its file cannot be read (as `list` exits for it); 2 when
/// the id is not a run id or the journal's directory cannot be opened.
pub(crate) fn show(dir: &Path, run_id: &str, format: Format) -> ExitCode {
    let run = match RunId::parse(run_id) {
        Ok(run) => run,
        Err(e) => return fail(format!("`{run_id}` is not a run id: {e}")),
    };
    let journal = match open(dir) {
        Ok(journal) => journal,
        Err(e) => return fail(e),
    };
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(e) => return fail(e),
    };
    let loaded = match runtime.block_on(journal.load(&run)) {
        Ok(Some(loaded)) => loaded,
        Ok(None) => {
            errln!("orch runs: no run `{run}` in {}", dir.display());
            return ExitCode::from(1);
        }
        // As `runs list` leaves it out: not a run yet.
        Err(JournalError::HeadMissing { .. }) => {
            errln!(
                "orch runs: no run `{run}` in {} (its file has no complete first line: \
                 a run being started, or one stopped before it recorded anything)",
                dir.display()
            );
            return ExitCode::from(1);
        }
        Err(JournalError::NotAJournal { .. }) => {
            errln!(
                "orch runs: no run `{run}` in {} (its file holds something else: it does not \
                 begin as a run's file does)",
                dir.display()
            );
            return ExitCode::from(1);
        }
        Err(e) => {
            errln!("orch runs: cannot read run {run}: {e}");
            return ExitCode::from(1);
        }
    };
    let instances = completed_instances(&loaded);
    match format {
        Format::Json => {
            let mut shown = Summary::of(&loaded).json();
            let tasks: Vec<Value> = loaded
                .task_ids()
                .map(|id| {
                    let mut task = json!({ "task_id": id.as_str() });
                    let record = loaded.task(id).cloned().unwrap_or_default();
                    if let (Some(task), Ok(Value::Object(fields))) =
                        (task.as_object_mut(), serde_json::to_value(record))
                    {
                        task.extend(fields);
                        if let Some(&count) = instances.get(id.as_str()) {
                            task.insert("instances_completed".into(), count.into());
                        }
                    }
                    task
                })
                .collect();
            shown["tasks"] = Value::Array(tasks);
            print_json(&shown);
        }
        Format::Text => {
            let counts = Counts::of(&loaded);
            outln!("run       {}", loaded.run_id());
            let id = crate::display::one_line(loaded.workflow_id());
            match crate::display::one_line(loaded.workflow_name()) {
                name if name.is_empty() => outln!("workflow  {id}"),
                name => outln!("workflow  {id} ({name})"),
            }
            outln!("status    {}", loaded.status());
            outln!(
                "tasks     {} ({} completed, {} failed, {} skipped, {} cancelled, {} not run)",
                counts.total,
                counts.completed,
                counts.failed,
                counts.skipped,
                counts.cancelled,
                counts.pending
            );
            outln!("started   {}", time_text(Some(loaded.created())));
            outln!("ended     {}", time_text(loaded.end_time()));
            outln!("");
            let mut rows = vec![row_strings(&[
                "TASK", "STATUS", "ATTEMPTS", "STARTED", "ENDED", "ERROR",
            ])];
            for id in loaded.task_ids() {
                let record = loaded.task(id).cloned().unwrap_or_default();
                rows.push(vec![
                    id.to_string(),
                    record.status.as_str().to_owned(),
                    record.attempts.to_string(),
                    time_text(record.start_time),
                    time_text(record.end_time),
                    record
                        .error
                        .as_deref()
                        .map(first_line)
                        .unwrap_or_default()
                        .to_owned(),
                ]);
            }
            print_table(&rows);
            for id in loaded.task_ids() {
                if let Some(count) = instances.get(id.as_str()) {
                    let id = crate::display::one_line(id);
                    outln!("{id}: {count} map instances completed");
                }
            }
        }
    }
    ExitCode::SUCCESS
}

/// Per map task, how many of its instances the journal holds as completed (a map that
/// runs again on a resume keeps those whose output the journal holds, unless what they
/// ran on changed).
fn completed_instances(run: &LoadedRun) -> HashMap<&str, usize> {
    let tasks: HashSet<&str> = run.task_ids().map(|id| id.as_str()).collect();
    let mut seen = HashSet::new();
    let mut counts = HashMap::new();
    for (id, _) in run.records() {
        let Some((map, _)) = MapSpec::parse_instance_id(id) else {
            continue;
        };
        // A task of the workflow named like an instance is none.
        let instance = tasks.contains(map) && !tasks.contains(id.as_str());
        let completed = run
            .task(id)
            .is_some_and(|r| r.status == TaskStatus::Completed);
        if instance && completed && seen.insert(id.as_str()) {
            *counts.entry(map).or_insert(0) += 1;
        }
    }
    counts
}

/// How many of a run's tasks stand where.
struct Counts {
    total: usize,
    completed: usize,
    failed: usize,
    skipped: usize,
    cancelled: usize,
    /// No record, or pending or running when the run stopped.
    pending: usize,
}

impl Counts {
    fn of(run: &LoadedRun) -> Self {
        let mut counts = Counts {
            total: 0,
            completed: 0,
            failed: 0,
            skipped: 0,
            cancelled: 0,
            pending: 0,
        };
        for id in run.task_ids() {
            counts.total += 1;
            let status = run.task(id).map_or(TaskStatus::Pending, |r| r.status);
            *match status {
                TaskStatus::Completed => &mut counts.completed,
                TaskStatus::Failed => &mut counts.failed,
                TaskStatus::Skipped => &mut counts.skipped,
                TaskStatus::Cancelled => &mut counts.cancelled,
                TaskStatus::Pending | TaskStatus::Running => &mut counts.pending,
            } += 1;
        }
        counts
    }
}

/// What a listing shows of a run: all of it is kept for each run listed, not the run's
/// records (results included), which may be large.
struct Summary {
    run_id: RunId,
    workflow_id: String,
    workflow_name: String,
    status: &'static str,
    counts: Counts,
    created: SystemTime,
    ended: Option<SystemTime>,
}

impl Summary {
    fn of(run: &LoadedRun) -> Self {
        Self {
            run_id: run.run_id().clone(),
            workflow_id: run.workflow_id().to_owned(),
            workflow_name: run.workflow_name().to_owned(),
            status: run.status().as_str(),
            counts: Counts::of(run),
            created: run.created(),
            ended: run.end_time(),
        }
    }

    /// The summary as JSON: ids, status, counts and times (RFC 3339, null when unknown).
    fn json(&self) -> Value {
        let counts = &self.counts;
        json!({
            "run_id": self.run_id.as_str(),
            "workflow_id": self.workflow_id,
            "workflow_name": self.workflow_name,
            "status": self.status,
            "tasks": counts.total,
            "completed": counts.completed,
            "failed": counts.failed,
            "skipped": counts.skipped,
            "cancelled": counts.cancelled,
            "not_run": counts.pending,
            "started": time_json(Some(self.created)),
            "ended": time_json(self.ended),
        })
    }
}

/// The runs of a journal directory.
struct Listing {
    /// Those that could be read, oldest first.
    runs: Vec<Summary>,
    /// Those whose file cannot be read, by id, each with its error.
    unreadable: Vec<(RunId, String)>,
}

/// Every run of the journal in `dir`. A run whose file holds no head line yet (being
/// started, or never recorded), and a file of something else named like a run's, are
/// left out, as the journal's own listing does.
fn load_all(dir: &Path) -> Result<Listing, String> {
    let journal = open(dir)?;
    let cannot_list = |e: std::io::Error| format!("cannot list the runs in {}: {e}", dir.display());
    // Read one by one (not through the journal's listing, which fails as a whole), so
    // that one bad file does not hide the others.
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(cannot_list)? {
        let name = entry.map_err(cannot_list)?.file_name();
        let run_id = name
            .to_str()
            .and_then(|n| n.strip_suffix(".jsonl"))
            .and_then(|n| RunId::parse(n).ok());
        ids.extend(run_id);
    }
    ids.sort();
    let runtime = runtime()?;
    let mut runs = Vec::with_capacity(ids.len());
    let mut unreadable = Vec::new();
    for run_id in ids {
        match runtime.block_on(journal.load(&run_id)) {
            // A run removed between the listing and now is left out.
            Ok(loaded) => runs.extend(loaded.as_ref().map(Summary::of)),
            // Not a run yet, or a file of something else with a run's file name.
            Err(JournalError::HeadMissing { .. } | JournalError::NotAJournal { .. }) => {}
            Err(e) => unreadable.push((run_id, e.to_string())),
        }
    }
    runs.sort_by(|a, b| (a.created, &a.run_id).cmp(&(b.created, &b.run_id)));
    Ok(Listing { runs, unreadable })
}

/// The journal in `dir`, which must exist (opening a journal creates a missing one).
fn open(dir: &Path) -> Result<FileJournal, String> {
    match std::fs::metadata(dir) {
        Ok(found) if found.is_dir() => {}
        Ok(_) => {
            let shown = dir.display();
            return Err(format!(
                "{shown}: not a directory (a journal is a directory)"
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("{}: no such journal directory", dir.display()));
        }
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    }
    FileJournal::new(dir).map_err(|e| e.to_string())
}

/// The file journal's futures are ready at once (only syncs wait, and reading does not
/// sync), so a current-thread runtime without I/O is enough.
fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

fn fail(message: String) -> ExitCode {
    errln!("orch runs: {message}");
    ExitCode::from(2)
}

/// Writes `value` as JSON, escaped by [`crate::display::json_text`] (not as `outln!`
/// escapes, which would not be JSON).
fn print_json(value: &Value) {
    out!("{}\n", crate::display::json_text(value));
}

fn row_strings(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| (*c).to_owned()).collect()
}

/// Prints rows as columns padded to their widest cell (the last column unpadded), with
/// the control characters of each cell escaped, line breaks too (an error may hold a
/// command's terminal escape sequences, and a row must stay one line).
fn print_table(rows: &[Vec<String>]) {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|cell| crate::display::one_line(cell).into_owned())
                .collect()
        })
        .collect();
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|c| crate::columns::width(rows.iter().map(|r| r[c].as_str()), 0))
        .collect();
    for row in &rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == columns {
                line.push_str(cell);
            } else {
                line.push_str(&crate::columns::pad(cell, widths[c]));
                line.push_str("  ");
            }
        }
        outln!("{}", line.trim_end());
    }
}

fn time_text(time: Option<SystemTime>) -> String {
    time.map_or_else(|| "-".to_owned(), |t| crate::times::rfc3339(t, 0))
}

fn time_json(time: Option<SystemTime>) -> Value {
    // Microseconds, as a task record's times have.
    time.map_or(Value::Null, |t| Value::String(crate::times::rfc3339(t, 6)))
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}
