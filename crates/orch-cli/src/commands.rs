//! The commands that read files and print: `validate`, `plan`, `graph`, `report`, `gantt`.

use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::json;

use crate::check::{self, Checked};
use crate::dag::Dag;
use crate::display::one_line;
use crate::{Format, GraphFormat, gantt, graph, plan, report, result_file, svg};

/// Prints `message` as an error of `command` and returns exit code `code`.
fn fail(command: &str, message: impl std::fmt::Display, code: u8) -> ExitCode {
    errln!("orch {command}: {message}");
    ExitCode::from(code)
}

/// `orch validate`: the problems of every file (the first [`check::LISTED_PROBLEMS`] of
/// each, the others counted).
pub(crate) fn validate(files: &[PathBuf], format: Format, builtin_types: bool) -> ExitCode {
    // Each workflow is let go once checked: only its size is printed, and the files may
    // be many and large.
    let checked: Vec<Validated> = files
        .iter()
        .map(|f| Validated::from(check::check(f, builtin_types)))
        .collect();
    let problems: usize = checked.iter().map(|c| c.checked.problem_count()).sum();
    match format {
        Format::Text => {
            let mut out = String::new();
            for file in &checked {
                for line in file.checked.rendered() {
                    out.push_str(&line);
                    out.push('\n');
                }
                if let (Some(tasks), 0) = (file.tasks, file.checked.problem_count()) {
                    let name = file.checked.file.display().to_string();
                    // One line, as each problem is: a name cannot pass for another file's.
                    let name = crate::display::one_line(&name);
                    out.push_str(&format!("{name}: ok ({tasks} tasks)\n"));
                }
            }
            let bad = checked
                .iter()
                .filter(|c| c.checked.problem_count() > 0)
                .count();
            if problems > 0 {
                out.push_str(&format!(
                    "{problems} problem(s) in {bad} of {} file(s)\n",
                    checked.len()
                ));
            }
            print_text(&out)
        }
        Format::Json => {
            let files: Vec<_> = checked
                .iter()
                .map(|c| {
                    json!({
                        "file": c.checked.file.to_string_lossy(),
                        "valid": c.checked.problem_count() == 0,
                        "tasks": c.tasks,
                        "problems": c.checked.problems,
                        "unlisted_problems": c.checked.unlisted,
                    })
                })
                .collect();
            let report = json!({"valid": problems == 0, "problems": problems, "files": files});
            print_text(&format!("{}\n", crate::display::json_text(&report)))
        }
    };
    if problems == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// What `orch validate` prints of a checked file: its problems, and its size.
struct Validated {
    /// Without its workflow.
    checked: Checked,
    /// How many tasks its workflow has, when it could be read.
    tasks: Option<usize>,
}

impl From<Checked> for Validated {
    fn from(mut checked: Checked) -> Self {
        let tasks = checked.workflow.take().map(|workflow| workflow.len());
        Self { checked, tasks }
    }
}

/// Writes to standard output; a closed pipe is not an error worth a panic.
fn print_text(text: &str) {
    out!("{text}");
}

/// A checked, valid workflow's graph, or the exit code after printing its problems.
fn load_dag(command: &str, file: &Path) -> Result<Dag, ExitCode> {
    let checked = check::check(file, false);
    let dag = checked
        .workflow
        .as_ref()
        .filter(|_| checked.problems.is_empty())
        .and_then(|w| Dag::new(w).ok());
    dag.ok_or_else(|| {
        for line in checked.rendered() {
            errln!("{line}");
        }
        fail(
            command,
            format!("{} is not a valid workflow", file.display()),
            1,
        )
    })
}

/// `orch plan`.
pub(crate) fn plan(file: &Path, format: Format) -> ExitCode {
    let dag = match load_dag("plan", file) {
        Ok(dag) => dag,
        Err(code) => return code,
    };
    match format {
        Format::Text => print_text(&plan::table(&dag)),
        Format::Json => print_text(&format!(
            "{}\n",
            crate::display::json_text(&plan::json(&dag))
        )),
    }
    ExitCode::SUCCESS
}

/// Writes `text` to `output` (through a temporary file renamed into place), or to
/// standard output.
fn emit(command: &str, text: &str, output: Option<&Path>) -> ExitCode {
    match output {
        Some(path) => match result_file::write_private(path, text) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(command, format!("cannot write {}: {e}", path.display()), 2),
        },
        None => {
            print_text(text);
            ExitCode::SUCCESS
        }
    }
}

/// Refuses, before the inputs are read, an `-o` that names one of the command's own input
/// files, which writing would replace (the run's only record, say), or one that is not a
/// file (a directory), which writing could not replace.
fn refuse_replacing(command: &str, output: &Path, inputs: &[&Path]) -> Result<(), ExitCode> {
    let refused = |why: String| {
        fail(
            command,
            format!("cannot write {}: {why}", output.display()),
            2,
        )
    };
    if let Some(input) = inputs
        .iter()
        .find(|input| result_file::same_file(output, input))
    {
        return Err(refused(format!(
            "it is {}, which this command reads",
            input.display()
        )));
    }
    result_file::refuse_non_file(output).map_err(|e| refused(e.to_string()))
}

/// `orch graph`.
pub(crate) fn graph(
    file: &Path,
    format: GraphFormat,
    result: Option<&Path>,
    output: Option<&Path>,
) -> ExitCode {
    if let Some(output) = output {
        let inputs: Vec<&Path> = std::iter::once(file).chain(result).collect();
        if let Err(code) = refuse_replacing("graph", output, &inputs) {
            return code;
        }
    }
    let mut dag = match load_dag("graph", file) {
        Ok(dag) => dag,
        Err(code) => return code,
    };
    if let Some(path) = result {
        let run = match result_file::read(path) {
            Ok(run) => run,
            Err(e) => return fail("graph", e, 1),
        };
        if run.result.workflow_id != dag.workflow_id {
            let message = format!(
                "{} is a run of workflow `{}`, not of `{}`, which {} defines",
                path.display(),
                one_line(&run.result.workflow_id),
                one_line(&dag.workflow_id),
                file.display()
            );
            return fail("graph", message, 1);
        }
        let missing = dag.tasks_not_in(&run);
        if !missing.is_empty() {
            let shown: Vec<String> = (missing.iter().take(10))
                .map(|id| format!("`{}`", one_line(id)))
                .collect();
            let more = missing.len().saturating_sub(shown.len());
            let (tasks, are) = match missing.len() {
                1 => ("task", "is"),
                _ => ("tasks", "are"),
            };
            errln!(
                "orch graph: {} {tasks} of {} {are} not in {}: {}{}",
                missing.len(),
                path.display(),
                file.display(),
                shown.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            );
        }
        dag = dag.with_statuses(&run.result);
    }
    let text = match format {
        GraphFormat::Dot => graph::dot(&dag),
        GraphFormat::Mermaid => graph::mermaid(&dag),
        GraphFormat::Svg => svg::dag(&dag),
    };
    emit("graph", &text, output)
}

/// `orch report`.
pub(crate) fn report(result: &Path, output: &Path) -> ExitCode {
    if let Err(code) = refuse_replacing("report", output, &[result]) {
        return code;
    }
    let page = result_file::read(result).and_then(|run| report::html(&run, result));
    // Owner-only, as the result file it comes from: it holds what the commands printed.
    match page.map(|page| result_file::write_private(output, &page)) {
        Ok(Ok(())) => {
            outln!("report written to {}", output.display());
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => fail(
            "report",
            format!("cannot write {}: {e}", output.display()),
            2,
        ),
        Err(e) => fail("report", e, 1),
    }
}

/// `orch gantt`.
pub(crate) fn gantt(result: &Path, width: Option<usize>) -> ExitCode {
    let run = match result_file::read(result) {
        Ok(run) => run,
        Err(e) => return fail("gantt", e, 1),
    };
    let terminal = std::io::stdout().is_terminal();
    let width = width
        .or_else(|| {
            console::Term::stdout()
                .size_checked()
                .map(|(_, columns)| columns.into())
        })
        .unwrap_or(100);
    let timeline = gantt::gantt(&run);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for line in gantt::terminal_lines(&timeline, width, terminal) {
        if let Err(error) = out.write_all(line.as_bytes()) {
            crate::note_stdout(Err(error));
            return ExitCode::SUCCESS;
        }
    }
    crate::note_stdout(out.flush());
    ExitCode::SUCCESS
}
