//! The task message of one attempt: its task, attempt and the outputs it may read,
//! within the size limit.

use std::borrow::Cow;
use std::collections::BTreeMap;

use bytes::Bytes;
use orch_core::{Task, TaskId, TriggerRule};
use orch_engine::{TaskContext, TaskError};

use crate::nesting::{MAX_NESTING, nesting};
use crate::protocol::{self, HEADER_ROOM, MessageItem, TaskMessage};

/// Which ancestors' outputs travel with a task to its worker. Either way, an instance of
/// a map task travels with its element, not with the list it maps over.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Inputs {
    /// The task's direct dependencies (the default): what
    /// [`TaskContext::dependency_results`] lists. Reading another ancestor on the worker
    /// is an error that says its output was not sent.
    #[default]
    Direct,
    /// Every ancestor, direct or not. Messages grow with the depth of the workflow.
    Ancestors,
}

/// Task `task` as a task message carries it, under the id `instance` for an instance of
/// a map task: without the fields only the coordinator acts on (its trigger rule, pool,
/// priority and cache say when and whether an attempt is sent, and mean nothing to a
/// worker), which a worker of the build that first read version 1 refuses as unknown.
fn task_for_workers(task: &Task, instance: Option<TaskId>) -> Cow<'_, Task> {
    let scheduling =
        !task.trigger_rule.is_default() || task.pool.is_some() || task.priority != 0 || task.cache;
    if !scheduling && instance.is_none() {
        return Cow::Borrowed(task);
    }
    let mut sent = task.clone();
    (sent.trigger_rule, sent.pool, sent.priority, sent.cache) =
        (TriggerRule::default(), None, 0, false);
    if let Some(instance) = instance {
        sent.task_id = instance;
    }
    Cow::Owned(sent)
}

/// The task message of `ctx`'s attempt, refused when over the size limit.
pub(super) fn task_message(
    ctx: &TaskContext,
    inputs_sent: Inputs,
    max_bytes: usize,
) -> Result<Bytes, TaskError> {
    let task = ctx.task_definition();
    // Written from borrowed parts: nothing of the task or its inputs is copied.
    let mut inputs = BTreeMap::new();
    // A map instance is sent its element, not the list: n instances would carry it n
    // times, and a list larger than a message would fail every one.
    let mapped = (ctx.item_index().is_some())
        .then(|| task.map.as_ref().map(|spec| &spec.over))
        .flatten();
    let sent = |id: &TaskId| Some(id) != mapped;
    match inputs_sent {
        Inputs::Direct => {
            for (id, output) in ctx.dependency_results().filter(|(id, _)| sent(id)) {
                inputs.insert(id.as_str(), output);
            }
        }
        Inputs::Ancestors => {
            let ancestors = ctx
                .workflow()
                .validate()
                .ok()
                .and_then(|valid| valid.ancestors(&task.task_id))
                .unwrap_or_default();
            for id in ancestors.iter().filter(|id| sent(id)) {
                if let Ok(output) = ctx.input_json(id) {
                    inputs.insert(id.as_str(), output);
                }
            }
        }
    }
    let item = ctx.item_index().map(|index| MessageItem {
        index,
        value: ctx.item().cloned().unwrap_or_default(),
    });
    // An instance of a map task travels under its own id.
    let id = ctx.record_id();
    let sent = task_for_workers(task, item.as_ref().map(|_| id.clone()));
    let message = TaskMessage {
        v: TaskMessage::version_for(item.as_ref()),
        run_id: ctx.run_id().clone(),
        workflow_id: ctx.workflow().workflow_id().to_owned(),
        workflow_name: ctx.workflow().name().to_owned(),
        task: sent,
        attempt: ctx.attempt(),
        inputs,
        deadline_ms: task.timeout.map(protocol::deadline_after),
        traceparent: Some(protocol::traceparent(ctx.run_id(), &id, ctx.attempt())),
        item,
        resumed: ctx.resumed(),
    };
    let payload = protocol::write(&message);
    // The message id goes with it, in a header.
    if payload.len() + HEADER_ROOM > max_bytes {
        let largest = largest_part(
            &message.inputs,
            message.item.as_ref(),
            &task.config,
            payload.len(),
        );
        return Err(TaskError::permanent(format!(
            "the message for attempt {} of task `{}` is {} bytes, over the limit of {} bytes \
             ({HEADER_ROOM} of them kept for its headers){largest}",
            ctx.attempt(),
            message.task.task_id,
            payload.len(),
            max_bytes
        )));
    }
    let depth = nesting(&payload);
    if depth > MAX_NESTING {
        return Err(TaskError::permanent(format!(
            "the message for attempt {} of task `{}` nests {depth} levels deep (arrays and \
             objects within each other), and a worker reads at most {MAX_NESTING}{}",
            ctx.attempt(),
            message.task.task_id,
            deepest_part(&message.inputs, message.item.as_ref())
        )));
    }
    Ok(Bytes::from(payload))
}

/// What is largest in a task message of `total` bytes, too large to send: one of its
/// inputs, its item or its task's config; nothing when none of them is half the message
/// (its ids and names make it large).
fn largest_part(
    inputs: &BTreeMap<&str, &serde_json::Value>,
    item: Option<&MessageItem>,
    config: &serde_json::Value,
    total: usize,
) -> String {
    let bytes = |value: &serde_json::Value| protocol::write(value).len();
    let input = inputs.iter().map(|(id, value)| (bytes(value), id)).max();
    let (item, config) = (item.map_or(0, |item| bytes(&item.value)), bytes(config));
    let largest = input.map_or(0, |(size, _)| size).max(item).max(config);
    if largest * 2 < total {
        return String::new();
    }
    match input {
        Some((size, id)) if size >= item && size >= config => {
            format!("; its largest input is the output of `{id}`, {size} bytes")
        }
        _ if item >= config => format!("; its item is {item} bytes"),
        _ => format!("; its task's config is {config} bytes"),
    }
}

/// What nests deepest in a task message too deep to send: one of its inputs, its item or
/// its task's config.
fn deepest_part(inputs: &BTreeMap<&str, &serde_json::Value>, item: Option<&MessageItem>) -> String {
    let depth = |value: &serde_json::Value| nesting(&protocol::write(value));
    let input = inputs.iter().map(|(id, value)| (depth(value), id)).max();
    let item = item.map_or(0, |item| depth(&item.value));
    match input {
        // An input sits two levels down: in the message, in its inputs.
        Some((levels, id)) if levels >= item && levels + 2 > MAX_NESTING => {
            format!("; its deepest input is the output of `{id}`, {levels} levels deep")
        }
        _ if item + 2 > MAX_NESTING => format!("; its item is {item} levels deep"),
        _ => "; its task's config nests deepest".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use orch_core::{Task, TaskId, TriggerRule};
    use serde_json::json;

    use super::task_for_workers;

    /// A task message is version 1 but for a map instance, so its task must read as a
    /// version-1 worker reads one, refusing fields it does not know: those of a task as
    /// version 1 had them. An instance (version 2) keeps its map.
    #[test]
    fn a_task_goes_to_workers_with_the_fields_version_1_had() {
        const VERSION_1_FIELDS: [&str; 8] = [
            "task_id",
            "name",
            "task_type",
            "config",
            "dependencies",
            "retries",
            "backoff",
            "timeout",
        ];
        let plain = Task::new("a", "t")
            .name("A")
            .config(json!({"k": 1}))
            .depends_on(["b"])
            .retries(2)
            .timeout(std::time::Duration::from_secs(3));
        let scheduled = [
            plain.clone().trigger_rule(TriggerRule::AllDone),
            plain.clone().pool("gpu"),
            plain.clone().priority(-1),
            plain.clone().cache(true),
        ];
        for task in std::iter::once(&plain).chain(&scheduled) {
            let sent = task_for_workers(task, None);
            let written = serde_json::to_value(&sent).expect("a task writes");
            let fields = written.as_object().expect("an object").keys();
            let unknown: Vec<_> = fields
                .filter(|f| !VERSION_1_FIELDS.contains(&f.as_str()))
                .collect();
            assert!(unknown.is_empty(), "{unknown:?}");
            assert_eq!(
                (&sent.task_id, &sent.config, sent.retries, sent.timeout),
                (&plain.task_id, &plain.config, plain.retries, plain.timeout)
            );
        }
        let map = plain.clone().map_over("b").cache(true);
        let instance = task_for_workers(&map, Some(TaskId::from("a[3]")));
        assert_eq!(
            (instance.task_id.as_str(), &instance.map),
            ("a[3]", &map.map)
        );
        assert!(!instance.cache);
    }
}
