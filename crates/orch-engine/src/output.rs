//! What a handler returns: [`Output`], made from any serialisable value or a [`Shared`]
//! in-process value through [`IntoOutput`].

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use crate::TaskError;

mod finite;

/// A task's output, as the engine keeps it for dependents and the record.
///
/// Handlers written as closures or `async fn`s return any [`IntoOutput`] value, and name
/// this type only to mark an output with [`Output::not_journaled`]; a type that
/// implements [`Handler`](crate::Handler) returns it, made with [`Output::new`] or
/// `.into()` from a `serde_json::Value` or a [`Shared`] value.
///
/// What survives where:
/// - A serialisable output is kept as JSON: dependents read it (typed or as JSON), the
///   record keeps it, and it survives [`to_json`](orch_core::WorkflowResult::to_json) and
///   [resuming](crate::WorkflowEngine::resume) (a resumed run does not run the task again).
/// - A [`Shared`] output stays in this process: dependents borrow the value itself, and
///   the record keeps only its summary (or null). Resuming cannot restore the value, so a
///   resumed run runs such a task again when a task that runs depends on it, directly or
///   not.
/// - An output marked [`Output::not_journaled`] is kept as JSON in this process (in the
///   record, for dependents) but a journal of a durable run holds only the reason it
///   was left out: resuming the run from its journal treats it as a [`Shared`] output.
pub struct Output(pub(crate) Stored);

/// How the engine stores an output: as JSON, or as an in-process value (boxed, so that
/// JSON outputs, the common case, take no more room than a `Value`).
pub(crate) enum Stored {
    Json(Value),
    Shared(Box<SharedValue>),
    /// JSON that a journal does not hold, with the reason the handler gave.
    Unjournaled(Box<(Value, String)>),
}

pub(crate) struct SharedValue {
    pub(crate) value: Arc<dyn Any + Send + Sync>,
    pub(crate) type_name: &'static str,
    pub(crate) summary: Value,
}

impl Drop for SharedValue {
    /// Lets the value go where a panic of its `Drop` is caught (and logged): the run
    /// drops it in its own code (once a map instance's record is written, at the end for
    /// a task), where a panic would take the run down.
    fn drop(&mut self) {
        static NOTHING: std::sync::OnceLock<Arc<dyn Any + Send + Sync>> =
            std::sync::OnceLock::new();
        let nothing = NOTHING.get_or_init(|| Arc::new(()));
        let value = std::mem::replace(&mut self.value, Arc::clone(nothing));
        if crate::handler::drop_contained(value) {
            tracing::error!(
                type_name = self.type_name,
                "a task's shared output panicked when it was dropped"
            );
        }
    }
}

const _: () = assert!(
    std::mem::size_of::<Stored>() == std::mem::size_of::<Value>(),
    "an output kept as JSON takes no more room than the JSON"
);

impl Stored {
    /// The JSON view: the value, or a shared value's summary.
    pub(crate) fn json(&self) -> &Value {
        match self {
            Stored::Json(value) => value,
            Stored::Shared(shared) => &shared.summary,
            Stored::Unjournaled(kept) => &kept.0,
        }
    }

    /// What the record keeps, and whether it is only a shared value's summary.
    #[inline]
    pub(crate) fn into_record(self) -> (Value, bool) {
        match self {
            Stored::Json(value) => (value, false),
            Stored::Shared(mut shared) => (std::mem::take(&mut shared.summary), true),
            Stored::Unjournaled(kept) => (kept.0, false),
        }
    }
}

impl Output {
    /// The output of `value`: JSON for a serialisable value, or a [`Shared`] value as it
    /// is. Fails (permanently) when the value cannot be serialised.
    pub fn new(value: impl IntoOutput) -> Result<Self, TaskError> {
        value.into_output()
    }

    /// Keeps this output out of a durable run's journal (say, because it is too large
    /// to write after every task), with `reason` recorded in its place. The run itself
    /// is unchanged: dependents read the output and the task's record keeps it. A run
    /// resumed from the journal runs the task again when a task that runs depends on it,
    /// directly or not, as for a [`Shared`] output. A [`Shared`] output is never
    /// journaled and stays as it is.
    ///
    /// ```
    /// use orch_engine::{Output, TaskContext, TaskError};
    ///
    /// async fn render(_ctx: TaskContext) -> Result<Output, TaskError> {
    ///     let frames = vec![0u8; 1 << 20];
    ///     Ok(Output::new(frames)?.not_journaled("a megabyte of frames; cheap to render again"))
    /// }
    /// ```
    pub fn not_journaled(self, reason: impl Into<String>) -> Self {
        match self.0 {
            Stored::Json(value) => Output(Stored::Unjournaled(Box::new((value, reason.into())))),
            other => Output(other),
        }
    }
}

impl From<Value> for Output {
    fn from(value: Value) -> Self {
        Output(Stored::Json(value))
    }
}

impl<T: Any + Send + Sync> From<Shared<T>> for Output {
    fn from(shared: Shared<T>) -> Self {
        Output(Stored::Shared(Box::new(SharedValue {
            value: shared.value,
            type_name: std::any::type_name::<T>(),
            summary: shared.summary,
        })))
    }
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Stored::Json(value) => f.debug_tuple("Json").field(value).finish(),
            Stored::Shared(shared) => f
                .debug_struct("Shared")
                .field("type", &shared.type_name)
                .field("summary", &shared.summary)
                .finish(),
            Stored::Unjournaled(kept) => f
                .debug_struct("NotJournaled")
                .field("value", &kept.0)
                .field("reason", &kept.1)
                .finish(),
        }
    }
}

mod sealed {
    pub trait Sealed {}
}

/// What a handler may return: every `T: Serialize` (kept as JSON; a `serde_json::Value`
/// is kept as it is, without serialising it again), a [`Shared`] in-process value, or an
/// [`Output`]. See [`Output`] for what survives a record, `to_json` and resuming.
pub trait IntoOutput: sealed::Sealed {
    /// Converts into an output; fails (permanently) when a value cannot be serialised,
    /// or holds a number JSON cannot (NaN or an infinity, which serde_json would write
    /// as `null`).
    fn into_output(self) -> Result<Output, TaskError>;
}

impl<T: Serialize + 'static> sealed::Sealed for T {}

impl<T: Serialize + 'static> IntoOutput for T {
    fn into_output(self) -> Result<Output, TaskError> {
        // A `Value` is stored as it is: no round trip through the serialiser.
        let mut slot = Some(self);
        if let Some(value) = (&mut slot as &mut dyn Any).downcast_mut::<Option<Value>>() {
            let value = value.take().unwrap_or_default();
            // Empty now; dropping it would still be an out-of-line call.
            std::mem::forget(slot);
            return Ok(Output::from(value));
        }
        let not_json = |why: &dyn fmt::Display| {
            TaskError::permanent(format!(
                "the output of type `{}` cannot be written as JSON: {why}",
                std::any::type_name::<T>()
            ))
        };
        match serde_json::to_value(&slot) {
            // serde_json writes a NaN or an infinity as `null`: looked for only where a
            // null was written.
            Ok(value) if holds_null(&value) && finite::holds_non_finite(&slot) => Err(not_json(
                &"it holds a number that is not finite (NaN or an infinity), which JSON cannot",
            )),
            Ok(value) => Ok(Output::from(value)),
            Err(error) => Err(not_json(&error)),
        }
    }
}

/// Whether `value` is or holds a null. Recursive, without a list to allocate: the value
/// was built by recursing as deep.
fn holds_null(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => items.iter().any(holds_null),
        Value::Object(fields) => fields.values().any(holds_null),
        _ => false,
    }
}

impl<T: Any + Send + Sync> sealed::Sealed for Shared<T> {}

impl<T: Any + Send + Sync> IntoOutput for Shared<T> {
    fn into_output(self) -> Result<Output, TaskError> {
        Ok(Output::from(self))
    }
}

impl sealed::Sealed for Output {}

impl IntoOutput for Output {
    fn into_output(self) -> Result<Output, TaskError> {
        Ok(self)
    }
}

/// A value passed to dependents in this process, never serialised: a dataframe, a tensor,
/// a model. Dependents borrow it with [`TaskContext::shared`](crate::TaskContext::shared)
/// as an `Arc<T>`; the task's record keeps only [`Shared::summary`] (null unless set).
///
/// The engine keeps the value until the run ends. It does not survive `to_json` or
/// resuming (see [`Output`]). A map task's instances that return one share nothing: the
/// map's output is the JSON list of their results, so it holds their summaries, and
/// [`TaskContext::shared`](crate::TaskContext::shared) on the map task is an error. A map
/// task over a shared value goes over its summary.
///
/// ```
/// use orch_engine::{Shared, TaskContext, TaskError, WorkflowEngine};
/// use orch_core::{Task, Workflow};
/// use serde_json::json;
///
/// struct Table { rows: Vec<[f64; 2]> }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let engine = WorkflowEngine::new();
/// engine.register_handler("load", |_ctx: TaskContext| async move {
///     let table = Table { rows: vec![[1.0, 2.0], [3.0, 4.0]] };
///     let summary = json!({"rows": table.rows.len()});
///     Ok::<_, TaskError>(Shared::new(table).summary(summary))
/// });
/// engine.register_handler("total", |ctx: TaskContext| async move {
///     let table = ctx.shared::<Table>("load")?;
///     Ok::<_, TaskError>(table.rows.iter().flatten().sum::<f64>())
/// });
/// let workflow = Workflow::new("w", "W")
///     .task(Task::new("load", "load"))
///     .task(Task::new("total", "total").depends_on(["load"]));
/// let result = engine.execute_workflow(&workflow).await?;
/// assert_eq!(result.task("load").unwrap().result, Some(json!({"rows": 2})));
/// assert_eq!(result.task("total").unwrap().result, Some(json!(10.0)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub struct Shared<T> {
    value: Arc<T>,
    summary: Value,
}

impl<T: Any + Send + Sync> Shared<T> {
    /// Shares `value`.
    pub fn new(value: T) -> Self {
        Self::from_arc(Arc::new(value))
    }

    /// Shares a value that is already behind an `Arc`.
    pub fn from_arc(value: Arc<T>) -> Self {
        Self {
            value,
            summary: Value::Null,
        }
    }

    /// Sets what the task's record keeps in place of the value (null by default).
    pub fn summary(mut self, summary: Value) -> Self {
        self.summary = summary;
        self
    }
}

impl<T> fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("type", &std::any::type_name::<T>())
            .field("summary", &self.summary)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Rows {
        count: u32,
    }

    #[test]
    fn serialisable_values_become_json_and_values_stay_as_they_are() {
        let Output(Stored::Json(rows)) = Rows { count: 3 }.into_output().expect("serialises")
        else {
            panic!("a serialisable value is JSON");
        };
        assert_eq!(rows, serde_json::json!({"count": 3}));
        let Output(Stored::Json(unit)) = ().into_output().expect("serialises") else {
            panic!("unit is JSON");
        };
        assert_eq!(unit, Value::Null);
    }

    #[test]
    fn a_value_that_cannot_be_json_is_a_permanent_error_naming_its_type() {
        let mut map = std::collections::HashMap::new();
        map.insert((1, 2), "a tuple key");
        let error = map.into_output().expect_err("tuple keys are not JSON");
        assert!(error.is_permanent());
        assert!(error.to_string().contains("HashMap"), "{error}");
    }

    /// JSON has no NaN or infinity: serde_json would write `null` in its place, and the
    /// task would complete with its number lost. It fails instead, naming the type.
    #[test]
    fn a_number_that_is_not_finite_is_a_permanent_error_not_a_null() {
        #[derive(Serialize)]
        struct Loss {
            epoch: u32,
            value: Option<f64>,
        }
        let outputs: [Result<Output, TaskError>; 5] = [
            f64::NAN.into_output(),
            vec![1.0, f64::INFINITY].into_output(),
            f32::NEG_INFINITY.into_output(),
            Loss {
                epoch: 3,
                value: Some(f64::NAN),
            }
            .into_output(),
            std::collections::BTreeMap::from([("loss", [0.5, f64::NAN])]).into_output(),
        ];
        for output in outputs {
            let error = output.expect_err("not JSON");
            assert!(error.is_permanent());
            assert!(error.to_string().contains("not finite"), "{error}");
        }
        // A null of its own, beside finite numbers, is kept.
        let kept = Loss {
            epoch: 3,
            value: None,
        }
        .into_output()
        .expect("JSON");
        let Output(Stored::Json(kept)) = kept else {
            panic!("JSON");
        };
        assert_eq!(kept, serde_json::json!({"epoch": 3, "value": null}));
        let error = f64::NAN.into_output().expect_err("not JSON");
        assert!(error.to_string().contains("f64"), "{error}");
        // A value that writes a null and fails when serialised again is not taken for
        // one holding such a number.
        struct NullOnce(std::cell::Cell<bool>);
        impl Serialize for NullOnce {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                match self.0.replace(true) {
                    true => Err(serde::ser::Error::custom("serialised twice")),
                    false => serializer.serialize_none(),
                }
            }
        }
        let once = NullOnce(std::cell::Cell::new(false)).into_output();
        assert!(once.is_ok(), "{once:?}");
    }
}
