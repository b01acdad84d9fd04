//! The result file `orch run --output` writes and `orch report`, `orch gantt` and
//! `orch graph --result` read: a run's result as the library writes it
//! (`WorkflowResult::to_json`), plus a `workflow` field with the definition that ran, so
//! that the file alone can draw the graph.

use std::path::{Path, PathBuf};

use orch::core::{Workflow, WorkflowResult};
use serde::Serialize;

use crate::dag::Dag;

/// A run's result and, when the file holds it, the workflow that ran.
pub(crate) struct RunFile {
    pub(crate) result: WorkflowResult,
    pub(crate) workflow: Option<Workflow>,
}

#[derive(Serialize)]
struct Written<'a> {
    #[serde(flatten)]
    result: &'a WorkflowResult,
    workflow: &'a Workflow,
}

/// The deepest a task's configuration may nest for a result file to hold its workflow:
/// the file is read back with serde_json, which reads at most 127 levels of nesting, and
/// holds each configuration 4 levels down (`workflow`, `tasks`, the task, `config`).
const MAX_CONFIG_DEPTH: usize = 123;

/// The deepest a task's result may nest for a result file to be read back: it is read
/// with serde_json, which reads at most 127 levels of nesting, and holds each result 3
/// levels down (the file, `tasks`, the task). A command's captured output is held to
/// this; a result from a worker elsewhere may nest deeper.
pub(crate) const MAX_RESULT_DEPTH: usize = 124;

/// A result file checked before the run: a path that cannot be written is found before
/// any task runs.
pub(crate) struct Target {
    path: PathBuf,
}

impl Target {
    /// Checks that `path` can be written (it is not a directory and its directory exists
    /// and is writable) by creating a temporary file beside it, removed at once: kept for
    /// the whole run, it would be left behind if orch were killed. Refuses a path that
    /// names something other than a file (see [`write_private`]) or the workflow file
    /// `source`, which the result would replace.
    pub(crate) fn prepare(path: &Path, workflow: &Workflow, source: &Path) -> Result<Self, String> {
        let fail =
            |e: &dyn std::fmt::Display| format!("cannot write result file {}: {e}", path.display());
        let too_deep = workflow
            .tasks()
            .map(|task| (task, crate::process::depth(&task.config)))
            .find(|(_, depth)| *depth > MAX_CONFIG_DEPTH);
        if let Some((task, depth)) = too_deep {
            return Err(fail(&format_args!(
                "the config of task `{}` nests {depth} levels deep, and a result file holds at most {MAX_CONFIG_DEPTH} (it could not be read back)",
                task.task_id
            )));
        }
        if same_file(path, source) {
            return Err(fail(
                &"it is the workflow file, which the result would replace",
            ));
        }
        drop(file_beside(path).map_err(|e| fail(&e))?);
        Ok(Self {
            path: path.to_owned(),
        })
    }

    /// Where the result goes.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `result` and `workflow` as indented JSON through a temporary file renamed
    /// into place, so a reader never sees half a file. A result that [`read`] could not
    /// read back (a task's result nested too deep, the whole too large) is written all
    /// the same; what is returned then says why it cannot be read back.
    pub(crate) fn write(
        self,
        result: &WorkflowResult,
        workflow: &Workflow,
    ) -> Result<Option<String>, String> {
        let text = serde_json::to_string_pretty(&Written { result, workflow })
            .map_err(|e| format!("cannot write the result as JSON: {e}"))?;
        // As the other JSON orch writes: no raw C1 or bidirectional control for a terminal
        // to act on.
        let mut text = crate::display::json_controls_escaped(&text).into_owned();
        text.push('\n');
        let written = match file_beside(&self.path) {
            Ok((mut file, target)) => match write_synced(&mut file, &text) {
                Ok(()) => put_in_place(file, &target),
                // Its disk or quota full: the temporary file goes (dropped), and the
                // text is kept where there may be room.
                Err(error) => keep_elsewhere(&text, error),
            },
            // A task took the name, or removed its directory, during the run.
            Err(error) => keep_elsewhere(&text, error),
        };
        written.map_err(|e| format!("cannot write result file {}: {e}", self.path.display()))?;
        Ok(unreadable(result, text.len() as u64).map(|why| {
            format!(
                "orch cannot read result file {} back: {why}",
                self.path.display()
            )
        }))
    }
}

/// Why a result file of `size` bytes holding `result` could not be [`read`] back, if so.
fn unreadable(result: &WorkflowResult, size: u64) -> Option<String> {
    let too_deep = (result.tasks.iter())
        .filter_map(|(id, record)| Some((id, crate::process::depth(record.result.as_ref()?))))
        .find(|(_, depth)| *depth > MAX_RESULT_DEPTH);
    if let Some((id, depth)) = too_deep {
        return Some(format!(
            "the result of task `{id}` nests {depth} levels deep, and a result file is read \
             with at most {MAX_RESULT_DEPTH}"
        ));
    }
    (size > crate::read::RESULT_LIMIT).then(|| {
        format!(
            "it holds {size} bytes, and a result file is read up to {} MiB",
            crate::read::RESULT_LIMIT >> 20
        )
    })
}

/// Keeps `text`, which could not be written where it was to go for `error`, in a file of
/// its own in the working directory (or, failing that, the temporary directory): what
/// took a whole run to make is not lost. The error says where it is.
fn keep_elsewhere(text: &str, error: std::io::Error) -> std::io::Result<()> {
    let kept = [Path::new("."), &std::env::temp_dir()]
        .into_iter()
        .find_map(|dir| {
            let mut file = tempfile::Builder::new()
                .prefix("orch-result-")
                .suffix(".json")
                .tempfile_in(dir)
                .ok()?;
            std::io::Write::write_all(&mut file, text.as_bytes()).ok()?;
            file.keep().ok().map(|(_, path)| path)
        });
    match kept {
        Some(kept) => Err(kept_in(&error, &kept)),
        None => Err(error),
    }
}

/// `error`, saying that what was written is kept in `kept`.
fn kept_in(error: &std::io::Error, kept: &Path) -> std::io::Error {
    let said = format!("{error}; what was written is kept in {}", kept.display());
    std::io::Error::new(error.kind(), said)
}

/// Writes `text` to `path` through a temporary file in the same directory, readable by
/// its owner only, renamed into place (the rename synced): a reader never sees half a
/// file. A path that names
/// something other than a file is refused before anything is written (see
/// [`refuse_non_file`]): a directory (`out/` too), which the rename could not replace, or
/// a device such as `/dev/null`, a pipe, a socket, which it would replace with a file. A
/// symbolic link stays: the file it leads to is the one written. What is written here (a
/// drawing, a report) is quick to make again: when the rename fails, the temporary file
/// is removed, not kept as a run's result is.
pub(crate) fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let (mut file, target) = file_beside(path)?;
    write_synced(&mut file, text)?;
    // Refused, the temporary file is dropped, which removes it.
    file.persist(&target).map_err(|refused| refused.error)?;
    sync_directory_of(&target);
    Ok(())
}

/// Syncs the directory `path` is in, so that a file just renamed there keeps its name
/// through a power loss. At best: a file system that cannot sync a directory leaves the
/// rename to its own schedule, and the file is in place either way.
fn sync_directory_of(path: &Path) {
    let _ = std::fs::File::open(dir_of(path)).and_then(|dir| dir.sync_all());
}

/// A temporary file (private to its owner) beside the file `path` leads to, and that
/// file's path, once [`refuse_non_file`] let `path` through.
fn file_beside(path: &Path) -> std::io::Result<(tempfile::NamedTempFile, PathBuf)> {
    refuse_non_file(path)?;
    let target = through_links(path)?;
    let dir = dir_of(&target);
    match tempfile::NamedTempFile::new_in(dir) {
        Ok(file) => Ok((file, target)),
        // Its error ends naming the temporary file it could not make, which the user
        // never asked for: left out.
        Err(e) => {
            let said = e.to_string();
            let cause = said
                .rsplit_once(" at path \"")
                .map_or(&*said, |(cause, _)| cause);
            Err(std::io::Error::new(e.kind(), cause.to_owned()))
        }
    }
}

/// Where `path` leads when it is a symbolic link (to a link, and so on), else `path`:
/// the file to replace is the one the link names, as a shell's `>` writes it, while the
/// rename would replace the link itself. A link's target that does not exist yet is
/// where the file goes. Links that go on past Linux's bound (a loop) are refused.
fn through_links(path: &Path) -> std::io::Result<PathBuf> {
    /// Linux's own bound on links followed in one lookup.
    const MOST_LINKS: usize = 40;
    let mut path = path.to_owned();
    for _ in 0..=MOST_LINKS {
        match std::fs::read_link(&path) {
            Ok(target) => path = dir_of(&path).join(target),
            Err(_) => return Ok(path),
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        "too many levels of symbolic links (a loop?)",
    ))
}

/// Refuses a `path` that is there and is not a file (symbolic links followed): a
/// directory, which the rename could not replace (it would fail only after writing), or
/// anything else, which it would. Refuses too a path that can only name a directory,
/// there or not: `out/` (and `file.json/`, which names nothing), `out/.`, `..`, `/`; the rename
/// would fail only after writing, leaving the file under its temporary name.
pub(crate) fn refuse_non_file(path: &Path) -> std::io::Result<()> {
    let refused = |why| Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, why));
    // The last part as written (`Path::file_name` reads past a final `.`): empty, `.`
    // or `..` names a directory.
    let text = path.as_os_str().to_string_lossy();
    let last = text
        .rsplit(std::path::is_separator)
        .next()
        .unwrap_or_default();
    let names_a_directory = matches!(last, "" | "." | "..");
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => refused("it is a directory"),
        Ok(meta) if !meta.is_file() => refused(
            "it is not a file (a device, a pipe or a socket), which a result file would replace",
        ),
        _ if names_a_directory => refused("it names a directory, not a file"),
        _ => Ok(()),
    }
}

/// The directory `path` is in.
fn dir_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Writes `text` to `file` and syncs it to disk, so that once renamed, not even a power
/// loss leaves its name naming an empty file.
fn write_synced(file: &mut tempfile::NamedTempFile, text: &str) -> std::io::Result<()> {
    std::io::Write::write_all(file, text.as_bytes())?;
    file.as_file().sync_all()
}

/// Renames `file`, written, to `path`. A rename that fails (a name too long for the file
/// system, a file of another user's in its place) keeps the file written, and the error
/// says where: what took a whole run to make is not lost.
fn put_in_place(file: tempfile::NamedTempFile, path: &Path) -> std::io::Result<()> {
    let refused = match file.persist(path) {
        Ok(_) => {
            sync_directory_of(path);
            return Ok(());
        }
        Err(refused) => refused,
    };
    let error = refused.error;
    match refused.file.keep() {
        Ok((_, kept)) => Err(kept_in(&error, &kept)),
        Err(_) => Err(error),
    }
}

/// Reads a result file (or any `WorkflowResult` JSON, which then has no workflow).
///
/// Read straight from the text, twice (the result, then the workflow), never through a
/// `serde_json::Value`, whose maps would lose the tasks' order.
pub(crate) fn read(path: &Path) -> Result<RunFile, String> {
    let text = crate::read::text(path, crate::read::RESULT_LIMIT)
        .map_err(|e| format!("cannot read result file {}: {e}", path.display()))?;
    let place = |e: &serde_json::Error| json_place(path, &text, e);
    let mut de = serde_json::Deserializer::from_str(&text);
    let result: WorkflowResult = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        // Not JSON from its start (a workflow file given by mistake, say).
        let not_json = e.inner().is_syntax() && !text.trim_start().starts_with(['{', '[']);
        let hint = match not_json {
            true => " (a run result is the JSON file `orch run --output` writes)",
            false => "",
        };
        format!(
            "{}: not a run result: at `{}`: {}{hint}",
            place(e.inner()),
            e.path(),
            json_message(e.inner())
        )
    })?;
    de.end().map_err(|e| {
        format!(
            "{}: not a run result: more text after its closing `}}`",
            place(&e)
        )
    })?;
    // The workflow is read as a workflow file is, with the same checks.
    #[derive(serde::Deserialize)]
    struct Definition<'a> {
        #[serde(borrow)]
        workflow: Option<&'a serde_json::value::RawValue>,
    }
    let definition: Definition<'_> = serde_json::from_str(&text)
        .map_err(|e| format!("{}: invalid workflow: {}", place(&e), json_message(&e)))?;
    let workflow = match definition.workflow {
        None => None,
        Some(raw) => Some(Workflow::from_json(raw.get()).map_err(|e| {
            let start = (raw.get().as_ptr() as usize).saturating_sub(text.as_ptr() as usize);
            embedded_error(path, text.get(..start).unwrap_or_default(), e)
        })?),
    };
    Ok(RunFile { result, workflow })
}

/// Where JSON `error` is in `text`, the file at `path`: `path:line:column`, with the
/// column in characters (serde_json counts bytes).
fn json_place(path: &Path, text: &str, error: &serde_json::Error) -> String {
    let line = text.split('\n').nth(error.line().saturating_sub(1));
    // The characters that begin within the bytes serde_json counted.
    let column = line.map_or(error.column(), |line| {
        (line.char_indices())
            .take_while(|&(at, _)| at < error.column())
            .count()
    });
    format!("{}:{}:{column}", path.display(), error.line())
}

/// JSON `error`'s message without the place serde_json ends it with (given once, by
/// [`json_place`]).
fn json_message(error: &serde_json::Error) -> String {
    let message = error.to_string();
    let place = format!(" at line {} column {}", error.line(), error.column());
    match message.strip_suffix(&place) {
        Some(message) => message.to_owned(),
        None => message,
    }
}

/// `error`, of a workflow embedded in the result file at `path` after text `before`,
/// placed in the file.
fn embedded_error(path: &Path, before: &str, error: orch::core::LoadError) -> String {
    let orch::core::LoadError::Parse {
        field,
        line: Some(line),
        column,
        message,
        ..
    } = &error
    else {
        return format!("{}: invalid workflow: {error}", path.display());
    };
    let lines_before = before.matches('\n').count();
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = match (line, column) {
        (1, Some(column)) => format!(":{}", before[line_start..].chars().count() + column),
        (_, Some(column)) => format!(":{column}"),
        (_, None) => String::new(),
    };
    let at = match field.as_str() {
        "." => "`workflow`".to_owned(),
        field => format!("`workflow.{field}`"),
    };
    let line = lines_before + line;
    format!(
        "{}:{line}{column}: invalid workflow: at {at}: {message}",
        path.display()
    )
}

impl RunFile {
    /// The graph of the run, with each task's status; needs the workflow.
    pub(crate) fn dag(&self, path: &Path) -> Result<Dag, String> {
        let workflow = self.workflow.as_ref().ok_or_else(|| {
            format!(
                "{} holds no `workflow`: it was not written by `orch run --output`",
                path.display()
            )
        })?;
        Dag::new(workflow)
            .map(|dag| dag.with_statuses(&self.result))
            .map_err(|e| format!("{}: the workflow in it is invalid: {e}", path.display()))
    }

    /// The run's metrics, computed from its records (with the workflow, when the file
    /// carries it, for the critical path).
    pub(crate) fn metrics(&self) -> orch::core::RunMetrics {
        match &self.workflow {
            Some(workflow) => self.result.metrics_with(workflow),
            None => self.result.metrics(),
        }
    }
}

/// Whether `a` and `b` name one existing file (through symbolic or hard links, `.` and
/// `..`): the same device and inode.
pub(crate) fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use orch::core::WorkflowResult;
    use serde_json::{Value, json};

    /// A run whose task `t` has `result`.
    fn run_with(result: Value) -> WorkflowResult {
        let time = "2026-01-01T00:00:00.000000Z";
        serde_json::from_value(json!({
            "workflow_id": "w", "name": "W", "status": "completed", "start_time": time,
            "end_time": time, "max_concurrent": 1,
            "tasks": { "t": {
                "task_id": "t", "status": "completed", "result": result, "error": null,
                "start_time": time, "end_time": time, "attempts": 1,
            } },
        }))
        .expect("a run's result")
    }

    /// `depth` arrays within each other.
    fn nested(depth: usize) -> Value {
        (0..depth).fold(Value::Null, |inner, _| Value::Array(vec![inner]))
    }

    /// What is written is read back, or the writer says why not (and keeps it all the
    /// same): a result from a worker elsewhere may nest deeper than a command's output.
    #[test]
    fn a_result_too_deep_or_too_large_to_read_back_is_written_and_said_so() {
        let dir = tempfile::tempdir().expect("a directory");
        let workflow = orch::core::Workflow::new("w", "W").task(orch::core::Task::new("t", "echo"));
        for depth in [super::MAX_RESULT_DEPTH, super::MAX_RESULT_DEPTH + 1] {
            let path = dir.path().join(format!("r{depth}.json"));
            let target = super::Target::prepare(&path, &workflow, dir.path()).expect("writable");
            let written = target.write(&run_with(nested(depth)), &workflow);
            let read = super::read(&path);
            match depth > super::MAX_RESULT_DEPTH {
                false => {
                    assert_eq!(written, Ok(None));
                    let result = read.expect("read back").result;
                    let t = result.tasks.get("t").expect("the task");
                    assert_eq!(t.result, Some(nested(depth)));
                }
                true => {
                    assert_eq!(
                        written,
                        Ok(Some(format!(
                            "orch cannot read result file {} back: the result of task `t` \
                             nests 125 levels deep, and a result file is read with at most 124",
                            path.display()
                        )))
                    );
                    assert!(path.exists(), "kept all the same");
                    let error = read.err().expect("not read back");
                    assert!(error.contains("recursion limit exceeded"), "{error}");
                }
            }
        }
        let shallow = run_with(json!("x"));
        let limit = crate::read::RESULT_LIMIT;
        assert_eq!(super::unreadable(&shallow, limit), None);
        assert_eq!(
            super::unreadable(&shallow, limit + 1),
            Some(format!(
                "it holds {} bytes, and a result file is read up to 1024 MiB",
                limit + 1
            ))
        );
    }
}
