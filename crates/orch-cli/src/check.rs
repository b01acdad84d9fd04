//! Reading a workflow file and finding every problem in it, each with its place: what
//! `orch validate` reports and what every other command checks first.

use std::path::{Path, PathBuf};

use orch::core::{Format, LoadError, ValidationError, Workflow};
use serde::Serialize;

use crate::locate::{Place, Places};
use crate::{spec, suggest};

/// One problem in a workflow file; `orch validate --format json` writes every field but
/// `word`, `null` when not known.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Problem {
    /// What kind of problem: `unreadable`, `unknown_format`, `parse`, `empty_workflow`,
    /// `unknown_dependency`, `self_dependency`, `duplicate_dependency`, `duplicate_task_id`,
    /// `key_mismatch`, `cycle`, `invalid_option`, `control_character`, `unknown_task_type`,
    /// `invalid_config`, `invalid_workflow`.
    pub(crate) kind: &'static str,
    pub(crate) message: String,
    /// The task the problem is about, when there is one.
    pub(crate) task: Option<String>,
    pub(crate) line: Option<usize>,
    pub(crate) column: Option<usize>,
    /// The name probably meant, for a misspelt one.
    pub(crate) suggestion: Option<String>,
    /// A word to look for inside the task's definition, to place the problem there.
    #[serde(skip)]
    word: Option<String>,
    /// The task's key under which the word is looked for first.
    #[serde(skip)]
    under: Option<&'static str>,
    /// Whether the problem is placed at the task's second definition (its id repeated).
    #[serde(skip)]
    at_repeat: bool,
}

impl Problem {
    fn new(kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            task: None,
            line: None,
            column: None,
            suggestion: None,
            word: None,
            under: None,
            at_repeat: false,
        }
    }

    /// The problem is about `task`: it is placed at the task's definition.
    fn task(mut self, task: &str) -> Self {
        self.task = Some(task.to_owned());
        self
    }

    /// The problem is placed where `word` appears in its task's definition.
    fn within(mut self, word: &str) -> Self {
        self.word = Some(word.to_owned());
        self
    }

    /// The problem is placed where `word` appears under the task's key `key`, or if not
    /// there, anywhere in its definition.
    fn within_key(mut self, key: &'static str, word: &str) -> Self {
        self.under = Some(key);
        self.within(word)
    }

    /// Sets the line and column from where its task is written.
    fn place(&mut self, places: &Places<'_>) {
        let Some(task) = &self.task else {
            return;
        };
        let place: Option<Place> = match &self.word {
            Some(word) => places.within_task(task, word, self.under),
            None if self.at_repeat => places.repeat(task).or_else(|| places.task(task)),
            None => places.task(task),
        };
        if let Some(place) = place {
            (self.line, self.column) = (Some(place.line), Some(place.column));
        }
    }

    /// `file:line:column: message (did you mean ...?)`, as compilers print.
    pub(crate) fn render(&self, file: &Path) -> String {
        let mut text = file.display().to_string();
        if let Some(line) = self.line {
            text.push_str(&format!(":{line}"));
            if let Some(column) = self.column {
                text.push_str(&format!(":{column}"));
            }
        }
        text.push_str(&format!(": {}", self.message));
        // Problems from orch-core already name the suggestion in their message.
        if let Some(suggestion) = self
            .suggestion
            .as_ref()
            .filter(|_| !self.message.contains("did you mean"))
        {
            text.push_str(&format!(" (did you mean `{suggestion}`?)"));
        }
        // Whatever the file holds, no terminal control sequence reaches the terminal, and
        // a problem is one line: a line break in a key or a name cannot pass for another.
        crate::display::one_line(&text).into_owned()
    }
}

/// A workflow file, read and checked.
pub(crate) struct Checked {
    pub(crate) file: PathBuf,
    /// The workflow, when the file could be read (it may still have problems).
    pub(crate) workflow: Option<Workflow>,
    /// Its problems, the first [`LISTED_PROBLEMS`] of them.
    pub(crate) problems: Vec<Problem>,
    /// How many more it has, not listed.
    pub(crate) unlisted: usize,
}

/// The most problems of one file that are listed; the others are counted. A generated
/// workflow may have millions, each naming its task: all listed, they could take far
/// more memory and time than the file (as compilers stop listing errors at a limit).
pub(crate) const LISTED_PROBLEMS: usize = 100;

impl Checked {
    /// How many problems the file has, listed or not.
    pub(crate) fn problem_count(&self) -> usize {
        self.problems.len() + self.unlisted
    }

    /// The file's listed problems as compilers print them, one per line, then a line
    /// that counts those not listed.
    pub(crate) fn rendered(&self) -> impl Iterator<Item = String> + '_ {
        let rendered = self.problems.iter().map(|p| p.render(&self.file));
        let unlisted = (self.unlisted > 0).then(|| {
            let file = crate::display::one_line(&self.file.display().to_string()).into_owned();
            format!("{file}: and {} more problem(s), not listed", self.unlisted)
        });
        rendered.chain(unlisted)
    }
}

/// Reads `file` and checks it: its syntax, the workflow's structure and options, and,
/// with `builtin_types`, that every task has a built-in type with a valid configuration.
pub(crate) fn check(file: &Path, builtin_types: bool) -> Checked {
    let mut checked = Checked {
        file: file.to_owned(),
        workflow: None,
        problems: Vec::new(),
        unlisted: 0,
    };
    let Some(format) = file
        .extension()
        .and_then(|e| e.to_str())
        .and_then(Format::from_extension)
    else {
        // A path that cannot be read is said so first (missing, a directory).
        checked.problems.push(match crate::read::readable(file) {
            Err(e) => Problem::new("unreadable", format!("cannot read: {e}")),
            Ok(()) => Problem::new(
                "unknown_format",
                "cannot tell the format: expected extension .json, .yaml, .yml or .toml",
            ),
        });
        return checked;
    };
    let text = match crate::read::text(file, crate::read::WORKFLOW_LIMIT) {
        // Without a byte-order mark, as the reader takes it: places are counted past it.
        Ok(mut text) => {
            if text.starts_with('\u{feff}') {
                text.drain(..'\u{feff}'.len_utf8());
            }
            text
        }
        Err(e) => {
            checked
                .problems
                .push(Problem::new("unreadable", format!("cannot read: {e}")));
            return checked;
        }
    };
    let parsed = match format {
        Format::Json => Workflow::from_json(&text),
        Format::Yaml => Workflow::from_yaml(&text),
        _ => Workflow::from_toml(&text),
    };
    // A problem reading the file, with its place when the reader knows it.
    let (text, line, column) = match parsed {
        Ok(workflow) => return checked_workflow(checked, workflow, &text, format, builtin_types),
        Err(LoadError::Parse {
            format,
            field,
            line,
            column,
            message,
            ..
        }) => {
            // `.` is the whole document: no field to name.
            let text = match field.as_str() {
                "." => format!("invalid {format} workflow: {message}"),
                _ => format!("invalid {format} workflow: at `{field}`: {message}"),
            };
            let mut problem = Problem::new("parse", text);
            (problem.line, problem.column) = (line, column);
            problem.task = task_of_field(&field);
            problem.suggestion = (message.rsplit_once("did you mean `"))
                .and_then(|(_, meant)| meant.strip_suffix("`?"))
                .map(str::to_owned);
            checked.problems.push(problem);
            return checked;
        }
        Err(LoadError::ExpansionLimit {
            field,
            line,
            column,
            limit,
            ..
        }) => {
            let text = format!(
                "invalid YAML workflow: at `{field}`: aliases expand the document past its limit of \
                 {limit} units (8 per value, 1 per byte of text, 32 per map with entries)"
            );
            (text, line, column)
        }
        Err(other) => (other.to_string(), None, None),
    };
    let mut problem = Problem::new("parse", text);
    (problem.line, problem.column) = (line, column);
    checked.problems.push(problem);
    checked
}

/// The task a problem at `field` (`tasks.a.retries`, `tasks."a.b".retries`) is in, when
/// the tasks are written as a map; none for a list (`tasks[3]`) or outside the tasks.
fn task_of_field(field: &str) -> Option<String> {
    let rest = field.strip_prefix("tasks.")?;
    if rest.starts_with('"') {
        // Quoted as JSON quotes a string.
        let mut values = serde_json::Deserializer::from_str(rest).into_iter::<String>();
        return values.next()?.ok();
    }
    let id = rest.split(['.', '[']).next()?;
    (!id.is_empty()).then(|| id.to_owned())
}

/// `checked` with the problems of `workflow`, read from `text`.
fn checked_workflow(
    mut checked: Checked,
    workflow: Workflow,
    text: &str,
    format: Format,
    builtin_types: bool,
) -> Checked {
    if let Err(errors) = workflow.validate() {
        // Only those listed are made into messages.
        let listed = errors.len().min(LISTED_PROBLEMS);
        checked
            .problems
            .extend(errors.iter().take(listed).map(structural));
        checked.unlisted = errors.len() - listed;
    }
    if builtin_types {
        let room = LISTED_PROBLEMS - checked.problems.len();
        let (found, unlisted) = builtin(&workflow, room);
        checked.problems.extend(found);
        checked.unlisted += unlisted;
    }
    // Finding places reads the text again: only when there is something to place.
    if !checked.problems.is_empty() {
        let places = Places::new(text, format);
        for problem in &mut checked.problems {
            problem.place(&places);
        }
    }
    checked.workflow = Some(workflow);
    checked
}

/// A validation error as a problem, placed at the task it names.
fn structural(error: &ValidationError) -> Problem {
    let message = error.to_string();
    match error {
        ValidationError::EmptyWorkflow => Problem::new("empty_workflow", message),
        ValidationError::UnknownDependency {
            task,
            dependency,
            suggestion,
        } => {
            let mut problem = Problem::new("unknown_dependency", message)
                .task(task)
                .within_key("dependencies", dependency);
            problem.suggestion = suggestion.as_ref().map(|id| id.to_string());
            problem
        }
        ValidationError::SelfDependency { task } => Problem::new("self_dependency", message)
            .task(task)
            .within_key("dependencies", task),
        ValidationError::DuplicateDependency { task, dependency } => {
            Problem::new("duplicate_dependency", message)
                .task(task)
                .within_key("dependencies", dependency)
        }
        ValidationError::DuplicateTaskId { task } => {
            let mut problem = Problem::new("duplicate_task_id", message).task(task);
            problem.at_repeat = true;
            problem
        }
        ValidationError::KeyMismatch { key, .. } => Problem::new("key_mismatch", message).task(key),
        ValidationError::Cycle { path } => {
            let first = path.first().map(|t| t.as_str()).unwrap_or_default();
            Problem::new("cycle", message).task(first)
        }
        ValidationError::InvalidOption { task, option, .. } => {
            let key = option.split('.').next().unwrap_or(option);
            Problem::new("invalid_option", message)
                .task(task)
                .within(key)
        }
        ValidationError::ControlCharacter { task, .. } => {
            let problem = Problem::new("control_character", message);
            match task {
                Some(task) => problem.task(task),
                None => problem,
            }
        }
        _ => Problem::new("invalid_workflow", message),
    }
}

/// Tasks whose type is not built in, and configurations of built-in types that cannot run:
/// the first of them, as long as a task's all fit in `room`, and how many more there are
/// (counted, not made into messages).
fn builtin(workflow: &Workflow, room: usize) -> (Vec<Problem>, usize) {
    let mut problems = Vec::new();
    let mut unlisted = 0;
    for task in workflow.tasks() {
        let id = &task.task_id;
        let parsed = spec::parse(&task.task_type, &task.config);
        let count = match &parsed {
            None => 1,
            Some(Err(found)) if task.config.is_object() => found.len(),
            Some(_) => 0,
        };
        if unlisted > 0 || problems.len() + count > room {
            unlisted += count;
            continue;
        }
        match parsed {
            None => {
                let mut problem = Problem::new(
                    "unknown_task_type",
                    format!(
                        "task `{id}` has unknown task type `{}` (orch runs: {})",
                        task.task_type,
                        spec::TYPES.join(", ")
                    ),
                )
                .task(id)
                .within_key("task_type", &task.task_type);
                problem.suggestion =
                    suggest::closest(&task.task_type, spec::TYPES).map(str::to_owned);
                problems.push(problem);
            }
            // A config that is not an object is the workflow's own problem, reported
            // with the others (once, not again here).
            Some(Err(_)) if !task.config.is_object() => {}
            Some(Err(found)) => problems.extend(found.into_iter().map(|p| {
                let mut problem =
                    Problem::new("invalid_config", format!("task `{id}`: {}", p.message)).task(id);
                if let Some(key) = &p.key {
                    problem = problem.within_key("config", key);
                }
                problem.suggestion = p.suggestion;
                problem
            })),
            Some(Ok(_)) => {}
        }
    }
    (problems, unlisted)
}
