//! The orch workflow model: tasks, workflows, validation, DAG queries and run records.
//!
//! `orch-core` knows nothing of async runtimes: a build tool can use it alone to read,
//! check and order a workflow. The engine (`orch-engine`) runs what this crate describes.
//!
//! ```
//! use orch_core::{Task, Workflow};
//! use serde_json::json;
//!
//! let workflow = Workflow::new("ml_pipeline", "ML Pipeline")
//!     .task(Task::new("load", "load").config(json!({"path": "data.csv"})))
//!     .task(Task::new("validate", "validate").depends_on(["load"]))
//!     .task(Task::new("clean", "clean").depends_on(["validate"]))
//!     .task(Task::new("report", "report").depends_on(["load"]));
//!
//! let valid = workflow.validate()?;
//! assert_eq!(valid.execution_order(), ["load", "validate", "clean", "report"]);
//! assert_eq!(valid.level("clean"), Some(2));
//!
//! // Every problem is reported at once.
//! let broken = Workflow::new("w", "W")
//!     .task(Task::new("a", "t").depends_on(["b"]))
//!     .task(Task::new("b", "t").depends_on(["a", "ghost"]));
//! let errors = broken.validate().unwrap_err();
//! assert_eq!(
//!     errors.to_string(),
//!     "task `b` depends on unknown task `ghost`\n\
//!      dependency cycle: a -> b -> a (each task depends on the next)"
//! );
//! # Ok::<(), orch_core::ValidationErrors>(())
//! ```
//!
//! Workflows can also be read from files: [`Workflow::from_path`] takes JSON, YAML or
//! TOML (YAML and TOML behind the default-on features `yaml` and `toml`; a program that
//! builds its workflows in code can turn them off and compile neither parser), in map form (as the original Python module writes them) or list form. Errors
//! reading a file name the file, the field (`tasks[3].dependencies`) and the line and
//! column, or the byte offset for a file that is not UTF-8. A workflow read from a file
//! no longer knows the file: its validation errors name the task and the field, not the
//! line (`orch validate FILE` gives the line too). An unknown key, an unknown dependency and
//! (in the engine) a task type with no handler are reported with the name most likely
//! meant: "unknown key `dependencis` in task `load`; did you mean `dependencies`?".
//!
//! # Values in files
//!
//! - Durations (`timeout`, `backoff.initial`, `backoff.max`) are a number of seconds
//!   (`1.5`) or text (`30s`, `1m 30s`, `250ms`); a `timeout` of `null` means none. They
//!   are written back exactly: as a number when it states the duration to the
//!   nanosecond, otherwise as text (`123456789.123456789s`). A workflow written to JSON
//!   or YAML and read back is equal to the original (in YAML, but for a key `<<`: YAML
//!   writers leave it unquoted, and it then reads as a merge key, which is refused;
//!   quoted, `"<<"`, it reads back); so is one written to TOML, when
//!   TOML can hold its configs (it has no `null`, and no integers above `i64::MAX`:
//!   writing such a config fails). Writing a workflow that repeats a task id fails, in
//!   every format: it kept only the first task with that id.
//! - Numbers must be finite: YAML's `.nan` and `.inf` and TOML's `nan` and `inf` are
//!   errors naming the field.
//! - TOML datetimes reach a task's `config` as RFC 3339 text (`1979-05-27T07:32:00Z`;
//!   a time written without its seconds, as TOML 1.1 allows, gets `:00`).
//! - A UTF-8 byte-order mark at the start of a file is ignored.
//! - Times in run records and events are RFC 3339 in UTC, to the microsecond; a time
//!   outside the years 0000 to 9999 gets a signed year of four or more digits
//!   (`+10000-01-01T00:00:00.000000Z`), so every time can be written and read back (see
//!   [`WorkflowResult`]).
//!
//! # Limits
//!
//! Untrusted input cannot make reading a workflow or a result take unbounded memory:
//!
//! - **YAML expansion**: aliases are expanded as a document is read, so each value read
//!   counts 8 units, plus 1 per byte of its text (strings and map keys), and a map with
//!   entries 32 more (it takes room for several): units that follow the memory the
//!   values take. A document may expand to 20 units per byte of its own size, or 16,384
//!   if that is more; past that, reading stops with [`LoadError::ExpansionLimit`], which
//!   gives the limit. A document without aliases uses at most about 19 per byte (a list
//!   of maps of one empty entry each, `[?:,?:]`), so only aliases reach the limit.
//! - **Claimed lengths**: a format that announces how many entries follow (CBOR,
//!   MessagePack, bincode) gets room for at most 1 MiB of them up front, whatever it
//!   claims; the rest is allocated only as entries actually arrive.
//! - **Nesting**: lists and maps may nest at most 127 deep in JSON, YAML and TOML, the
//!   workflow itself counting as the first level (in TOML each part of a dotted key,
//!   `a.b.c = 1`, is a level), so that any workflow read can be written as JSON and read
//!   back; deeper ones are a [`LoadError::Parse`] with their place, not a stack overflow.
//!   The TOML reader itself also takes at most 80 nested arrays and inline tables, and
//!   keys of at most 80 dotted parts (a TOML file reaches 127 through dotted keys only).
//! - **Retries**: a task may ask for at most [`Task::MAX_RETRIES`] (1,000,000) retries;
//!   validation reports more as an invalid `retries` option.

mod compile;
mod config_value;
mod duration;
mod error;
mod event;
mod guard;
mod id;
mod load;
mod map;
mod metrics;
mod plan;
mod record;
mod run_id;
mod suggest;
mod task;
mod task_records;
mod task_table;
mod time;
#[cfg(feature = "toml")]
mod toml_limits;
mod trigger;
mod workflow;
#[cfg(feature = "yaml")]
mod yaml_depth;
#[cfg(feature = "yaml")]
mod yaml_merge;
#[cfg(feature = "yaml")]
mod yaml_place;

pub use compile::is_hidden_control;
pub use duration::{DurationError, parse_duration};
pub use error::{MissingHandler, ValidationError, ValidationErrors};
pub use event::{EngineEvent, EngineEventKind};
pub use id::TaskId;
pub use load::{Format, LoadError};
pub use map::{MapItemsError, MapSpec};
pub use metrics::RunMetrics;
pub use plan::{Features, Plan};
pub use record::{TaskRecord, TaskStatus, WorkflowResult, WorkflowStatus};
pub use run_id::{RunId, RunIdError};
pub use task::{Backoff, Task};
pub use task_records::TaskRecords;
pub(crate) use task_table::TaskTable;
pub use time::format_time;
pub use trigger::{Decision, DependencyOutcomes, TriggerRule, UnknownTriggerRule};
pub use workflow::{ValidWorkflow, Workflow};
