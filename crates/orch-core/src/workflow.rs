//! [`Workflow`], a named set of tasks, and [`ValidWorkflow`], one that passed validation.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use indexmap::IndexMap;
use serde::{Serialize, Serializer};

use crate::compile;
use crate::plan::Plan;
use crate::suggest::{Budget, closest};
use crate::{MissingHandler, Task, TaskId, TaskTable, ValidationErrors};

/// A named set of tasks with dependencies between them: the definition of a DAG workflow.
///
/// Tasks keep their insertion order, which breaks ties in the execution order
/// ([`Workflow::execution_order`]); tasks ready at the same time start by priority
/// ([`Task::priority`], higher first), then in execution order. A
/// workflow is never changed by running it, so the same definition can run again. Its
/// validation and compiled [`Plan`] are computed once, on first use, and cached.
/// Cloning is cheap: clones share one definition (and its cache) until one of them is
/// changed.
///
/// ```
/// use orch_core::{Task, Workflow};
/// use serde_json::json;
///
/// let workflow = Workflow::new("data_pipeline", "Data Processing Pipeline")
///     .task(Task::new("fetch_task", "fetch").config(json!({"source": "api"})))
///     .task(Task::new("process_task", "process").depends_on(["fetch_task"]));
///
/// let valid = workflow.validate()?;
/// assert_eq!(valid.execution_order(), ["fetch_task", "process_task"]);
/// assert_eq!(valid.level("process_task"), Some(1));
/// # Ok::<(), orch_core::ValidationErrors>(())
/// ```
#[derive(Clone, Debug)]
pub struct Workflow {
    inner: Arc<Definition>,
}

/// The shared body of a [`Workflow`]: clones share it, and a change copies it first.
#[derive(Clone, Debug)]
struct Definition {
    workflow_id: String,
    name: String,
    tasks: TaskTable,
    duplicate_ids: Vec<TaskId>,
    plan: OnceLock<Result<Plan, ValidationErrors>>,
}

impl Workflow {
    /// Creates an empty workflow.
    pub fn new(workflow_id: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            inner: Arc::new(Definition {
                workflow_id: workflow_id.into(),
                name: name.into(),
                tasks: TaskTable::default(),
                duplicate_ids: Vec::new(),
                plan: OnceLock::new(),
            }),
        }
    }

    /// Creates a workflow from tasks in order. Ids given twice are kept once (the first)
    /// and reported by [`Workflow::validate`].
    pub fn from_tasks(
        workflow_id: impl Into<String>,
        name: impl Into<String>,
        tasks: impl IntoIterator<Item = Task>,
    ) -> Self {
        let tasks = tasks.into_iter();
        let mut workflow = Self::new(workflow_id, name);
        // Exact: a plain reserve may round the entries up to the hash table's capacity.
        workflow.reserve_exact(tasks.size_hint().0);
        for task in tasks {
            workflow.add_task(task);
        }
        workflow
    }

    /// Adds a task and returns the workflow, for chaining.
    pub fn task(mut self, task: Task) -> Self {
        self.add_task(task);
        self
    }

    /// Adds a task. A second task with an id already present is not stored; validation
    /// reports it as [`ValidationError::DuplicateTaskId`](crate::ValidationError::DuplicateTaskId),
    /// and writing the workflow out (`Serialize`) fails.
    pub fn add_task(&mut self, task: Task) {
        self.insert_keyed(task.task_id.clone(), task);
    }

    /// Adds a task under a map key, as a file in map form does. A key that differs from
    /// the task's own id is reported by validation.
    pub(crate) fn insert_keyed(&mut self, key: TaskId, mut task: Task) {
        let definition = self.definition();
        if definition.tasks.contains_key(&key) {
            definition.duplicate_ids.push(key);
            return;
        }
        // A dependency on a task already present shares that task's id: one string per
        // id however many tasks depend on it, which large workflows feel in memory.
        for dependency in &mut task.dependencies {
            if let Some((id, _)) = definition.tasks.get_key_value(dependency.as_str()) {
                *dependency = id.clone();
            }
        }
        definition.tasks.insert_new(key, task);
    }

    /// Makes room for `additional` more tasks, exactly.
    pub(crate) fn reserve_exact(&mut self, additional: usize) {
        self.definition().tasks.reserve_exact(additional);
    }

    /// The definition, unshared and with its cached validation cleared, ready to change.
    fn definition(&mut self) -> &mut Definition {
        let definition = Arc::make_mut(&mut self.inner);
        definition.plan = OnceLock::new();
        definition
    }

    /// The workflow's identifier.
    pub fn workflow_id(&self) -> &str {
        &self.inner.workflow_id
    }

    /// The workflow's human-readable name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The tasks, in insertion order.
    ///
    /// ```
    /// use orch_core::{Task, Workflow};
    ///
    /// let workflow = Workflow::new("w", "W")
    ///     .task(Task::new("load", "io"))
    ///     .task(Task::new("clean", "cpu").depends_on(["load"]));
    /// let types: Vec<&str> = workflow.tasks().map(|t| t.task_type.as_str()).collect();
    /// assert_eq!(types, ["io", "cpu"]);
    /// assert_eq!(workflow.get("clean").map(|t| t.dependencies.len()), Some(1));
    /// assert_eq!(workflow.index_of("clean"), Some(1));
    /// assert_eq!(workflow.get_index(0).map(|t| t.task_id.as_str()), Some("load"));
    /// ```
    pub fn tasks(&self) -> impl ExactSizeIterator<Item = &Task> + DoubleEndedIterator + Clone + '_ {
        self.inner.tasks.values()
    }

    /// The tasks by id, in insertion order.
    pub(crate) fn task_map(&self) -> &TaskTable {
        &self.inner.tasks
    }

    /// The task with this id.
    pub fn get(&self, id: &str) -> Option<&Task> {
        self.inner.tasks.get(id)
    }

    /// The position of task `id` in insertion order (0 for the first task added). A run's
    /// records ([`TaskRecords`](crate::TaskRecords)) keep the same positions.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.inner.tasks.get_index_of(id)
    }

    /// The task at position `index` in insertion order.
    pub fn get_index(&self, index: usize) -> Option<&Task> {
        self.inner.tasks.get_index(index).map(|(_, task)| task)
    }

    /// The number of tasks.
    pub fn len(&self) -> usize {
        self.inner.tasks.len()
    }

    /// Whether the workflow has no tasks.
    pub fn is_empty(&self) -> bool {
        self.inner.tasks.is_empty()
    }

    /// Checks the workflow and returns a view that answers DAG queries.
    ///
    /// Every problem is reported at once: an empty workflow, unknown, self and duplicate
    /// dependencies, duplicate ids, map keys that differ from task ids, cycles (one with
    /// its path for each group of tasks that wait on one another) and invalid task
    /// options. The result is computed once and cached.
    /// Validation looks dependencies up on the calling thread; for a workflow of a few
    /// hundred thousand tasks or more, [`Workflow::validate_parallel`] may be quicker.
    pub fn validate(&self) -> Result<ValidWorkflow<'_>, ValidationErrors> {
        self.validate_on(1)
    }

    /// Validates as [`Workflow::validate`] does, looking dependencies up on up to
    /// `threads` threads, and no more than the machine has cores (or 8, on a machine
    /// with fewer; scoped: all of them have finished when this returns). The
    /// result is the same as `validate`'s and is cached the same way, so a workflow
    /// already validated returns at once. A `threads` of 0 or 1 uses the calling thread
    /// only, and so does the work of any thread the system refuses to start.
    ///
    /// ```
    /// use orch_core::{Task, Workflow};
    ///
    /// let tasks = (0..1000).map(|i| {
    ///     let task = Task::new(format!("t{i}"), "t");
    ///     if i == 0 { task } else { task.depends_on([format!("t{}", i - 1)]) }
    /// });
    /// let workflow = Workflow::from_tasks("chain", "Chain", tasks);
    /// let valid = workflow.validate_parallel(4)?;
    /// assert_eq!(valid.level("t999"), Some(999));
    /// # Ok::<(), orch_core::ValidationErrors>(())
    /// ```
    pub fn validate_parallel(&self, threads: usize) -> Result<ValidWorkflow<'_>, ValidationErrors> {
        self.validate_on(threads)
    }

    fn validate_on(&self, threads: usize) -> Result<ValidWorkflow<'_>, ValidationErrors> {
        let inner = &*self.inner;
        let compiled = inner.plan.get_or_init(|| {
            compile::compile(
                &inner.workflow_id,
                &inner.tasks,
                &inner.duplicate_ids,
                threads,
            )
        });
        match compiled {
            Ok(plan) => Ok(ValidWorkflow {
                workflow: self,
                plan,
            }),
            Err(errors) => Err(errors.clone()),
        }
    }

    /// Task ids in execution order (see [`ValidWorkflow::execution_order`]).
    pub fn execution_order(&self) -> Result<Vec<&TaskId>, ValidationErrors> {
        Ok(self.validate()?.execution_order())
    }

    /// Each task's level (see [`ValidWorkflow::task_levels`]).
    pub fn task_levels(&self) -> Result<IndexMap<TaskId, usize>, ValidationErrors> {
        Ok(self.validate()?.task_levels())
    }
}

impl PartialEq for Workflow {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (&self.inner, &other.inner);
        Arc::ptr_eq(a, b)
            || (a.workflow_id == b.workflow_id
                && a.name == b.name
                && a.tasks == b.tasks
                && a.duplicate_ids == b.duplicate_ids)
    }
}

impl Serialize for Workflow {
    /// Writes the map form: `{workflow_id, name, tasks: {id: task, ...}}`.
    ///
    /// A workflow given a task id more than once is not written (an error naming the
    /// id): it kept only the first task with that id, so what it wrote would read back
    /// as a workflow without the repeat, one that passes validation.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeStruct};
        if let Some(id) = self.inner.duplicate_ids.first() {
            return Err(S::Error::custom(format_args!(
                "task id `{}` is used by more than one task: a workflow that repeats a \
                 task id cannot be written, as it kept only the first task with that id",
                crate::error::shown(id)
            )));
        }
        let mut s = serializer.serialize_struct("Workflow", 3)?;
        s.serialize_field("workflow_id", &self.inner.workflow_id)?;
        s.serialize_field("name", &self.inner.name)?;
        s.serialize_field("tasks", &self.inner.tasks)?;
        s.end()
    }
}

/// A workflow that passed validation, with its DAG queries.
///
/// Obtained from [`Workflow::validate`]; cheap to copy.
///
/// ```
/// use orch_core::{Task, Workflow};
///
/// let workflow = Workflow::new("parallel", "Parallel Processing")
///     .task(Task::new("prep", "t"))
///     .task(Task::new("task_a", "t").depends_on(["prep"]))
///     .task(Task::new("task_b", "t").depends_on(["prep"]))
///     .task(Task::new("merge", "t").depends_on(["task_a", "task_b"]));
/// let valid = workflow.validate()?;
/// assert_eq!(valid.roots(), ["prep"]);
/// assert_eq!(valid.leaves(), ["merge"]);
/// assert_eq!(valid.dependents("prep").unwrap(), ["task_a", "task_b"]);
/// assert_eq!(valid.descendants("task_a").unwrap(), ["merge"]);
/// assert_eq!(valid.ancestors("merge").unwrap(), ["prep", "task_a", "task_b"]);
/// assert_eq!(valid.task_levels()["merge"], 2);
/// # Ok::<(), orch_core::ValidationErrors>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct ValidWorkflow<'w> {
    workflow: &'w Workflow,
    plan: &'w Plan,
}

impl<'w> ValidWorkflow<'w> {
    /// The workflow.
    pub fn workflow(&self) -> &'w Workflow {
        self.workflow
    }

    /// The compiled, index-based plan.
    pub fn plan(&self) -> &'w Plan {
        self.plan
    }

    fn id(&self, index: usize) -> &'w TaskId {
        self.workflow
            .task_map()
            .get_index(index)
            .map(|(id, _)| id)
            .unwrap_or_else(|| unreachable!("plan indices come from this workflow's task map"))
    }

    fn ids(&self, indices: impl IntoIterator<Item = usize>) -> Vec<&'w TaskId> {
        indices.into_iter().map(|i| self.id(i)).collect()
    }

    fn index(&self, id: &str) -> Option<usize> {
        self.workflow.index_of(id)
    }

    /// Task ids in execution order: each task after all of its dependencies, and among
    /// tasks that could go next, the one inserted first.
    pub fn execution_order(&self) -> Vec<&'w TaskId> {
        self.ids(self.plan.order().iter().map(|&i| i as usize))
    }

    /// Each task's level, in insertion order: 0 for a task with no dependencies, otherwise
    /// one more than its deepest dependency. Tasks of one level never depend on each other.
    pub fn task_levels(&self) -> IndexMap<TaskId, usize> {
        (0..self.plan.len())
            .map(|i| (self.id(i).clone(), self.plan.level(i)))
            .collect()
    }

    /// The level of one task, or `None` if no task has this id.
    pub fn level(&self, id: &str) -> Option<usize> {
        self.index(id).map(|i| self.plan.level(i))
    }

    /// The tasks that depend directly on `id`, in insertion order; `None` if no task has
    /// this id.
    pub fn dependents(&self, id: &str) -> Option<Vec<&'w TaskId>> {
        let found = self.plan.dependents(self.index(id)?);
        Some(self.ids(found.iter().map(|&i| i as usize)))
    }

    /// Every task that transitively depends on `id`, in execution order; `None` if no task
    /// has this id.
    pub fn descendants(&self, id: &str) -> Option<Vec<&'w TaskId>> {
        Some(self.ids(self.plan.descendants(self.index(id)?)))
    }

    /// Every task that `id` transitively depends on, in execution order; `None` if no task
    /// has this id.
    pub fn ancestors(&self, id: &str) -> Option<Vec<&'w TaskId>> {
        Some(self.ids(self.plan.ancestors(self.index(id)?)))
    }

    /// Tasks with no dependencies, in insertion order.
    pub fn roots(&self) -> Vec<&'w TaskId> {
        self.ids((0..self.plan.len()).filter(|&i| self.plan.dependencies(i).is_empty()))
    }

    /// Every task type that has no handler among `handler_types`, in the order the types
    /// are first used, each with the tasks that use it and the handler type closest to
    /// it when one is close enough to be the one meant. Empty when every type has one.
    ///
    /// ```
    /// use orch_core::{Task, Workflow};
    ///
    /// let workflow = Workflow::new("w", "W")
    ///     .task(Task::new("a", "fetch"))
    ///     .task(Task::new("b", "stor").depends_on(["a"]))
    ///     .task(Task::new("c", "stor").depends_on(["a"]));
    /// let valid = workflow.validate()?;
    /// let missing = valid.missing_handlers(["fetch", "store"]);
    /// assert_eq!(missing.len(), 1);
    /// assert_eq!(missing[0].task_type, "stor");
    /// assert_eq!(missing[0].tasks, ["b", "c"]);
    /// assert_eq!(missing[0].suggestion.as_deref(), Some("store"));
    /// assert!(valid.missing_handlers(["fetch", "stor"]).is_empty());
    /// # Ok::<(), orch_core::ValidationErrors>(())
    /// ```
    pub fn missing_handlers<'h>(
        &self,
        handler_types: impl IntoIterator<Item = &'h str>,
    ) -> Vec<MissingHandler> {
        let known: HashSet<&str> = handler_types.into_iter().collect();
        let types = self.plan.task_types();
        let missing: Vec<usize> = (0..types.len())
            .filter(|&t| !known.contains(types[t].as_str()))
            .collect();
        if missing.is_empty() {
            return Vec::new();
        }
        let mut tasks: Vec<Vec<TaskId>> = vec![Vec::new(); types.len()];
        for i in 0..self.plan.len() {
            if let Some(list) = tasks.get_mut(self.plan.type_of(i)) {
                list.push(self.id(i).clone());
            }
        }
        // Sorted, so that the suggestion does not depend on the order of a hash set.
        let mut names: Vec<&str> = known.into_iter().collect();
        names.sort_unstable();
        let mut budget = Budget::new();
        missing
            .into_iter()
            .map(|t| MissingHandler {
                task_type: types[t].clone(),
                tasks: std::mem::take(&mut tasks[t]),
                suggestion: closest(&types[t], None, names.iter().copied(), &mut budget)
                    .map(str::to_owned),
            })
            .collect()
    }

    /// Tasks nothing depends on, in insertion order.
    pub fn leaves(&self) -> Vec<&'w TaskId> {
        self.ids((0..self.plan.len()).filter(|&i| self.plan.dependents(i).is_empty()))
    }
}
