//! Validation: every check on a workflow, and the compilation of its [`Plan`].

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::ops::Range;
use std::sync::OnceLock;

use indexmap::IndexSet;
use serde_json::Value;

use crate::plan::{Adjacency, Features, NO_POOL, Plan};
use crate::suggest::{Budget, closest};
use crate::{TaskId, TaskTable, ValidationError, ValidationErrors};

pub(crate) use task_checks::hidden_kind;
pub use task_checks::is_hidden_control;
use task_checks::{check_control_characters, check_options};

mod cycles;
mod task_checks;

/// Checks a workflow's tasks (by id, in insertion order) and the ids that were given
/// twice, and compiles its plan; reports every problem found. Dependencies are resolved
/// on `threads` threads (1: the calling thread only).
pub(crate) fn compile(
    workflow_id: &str,
    tasks: &TaskTable,
    duplicate_ids: &[TaskId],
    threads: usize,
) -> Result<Plan, ValidationErrors> {
    let mut errors = Vec::new();
    if tasks.is_empty() {
        errors.push(ValidationError::EmptyWorkflow);
    }
    check_control_characters(workflow_id, tasks, &mut errors);
    // Once per id, however many times it was given.
    let mut seen = HashSet::new();
    errors.extend(
        (duplicate_ids.iter())
            .filter(|id| seen.insert(id.as_str()))
            .map(|id| ValidationError::DuplicateTaskId { task: id.clone() }),
    );
    check_instance_ids(tasks, &mut errors);
    let mut resolved = resolve(tasks, threads);
    suggest_dependencies(tasks, &mut resolved.errors);
    errors.extend(resolved.errors);
    let dependencies = resolved.dependencies;
    let dependents = dependencies.reversed();
    let order = match topological_order(&dependencies, &dependents) {
        Ok(order) => order,
        Err(waiting) => {
            cycles::find_cycles(tasks, &dependencies, &waiting, &mut errors);
            Vec::new()
        }
    };
    if let Some(errors) = ValidationErrors::from_vec(errors) {
        return Err(errors);
    }

    let mut position = vec![0u32; tasks.len()];
    for (pos, &i) in order.iter().enumerate() {
        position[i as usize] = pos as u32;
    }
    Ok(Plan {
        dependencies,
        dependents,
        order,
        position,
        levels: OnceLock::new(),
        task_types: resolved.task_types,
        type_of: resolved.type_of,
        pools: resolved.pools,
        pool_of: resolved.pool_of,
        features: resolved.features,
        priorities: match resolved.features.priorities {
            true => tasks.values().map(|task| task.priority).collect(),
            false => Vec::new(),
        },
        start_orders: Default::default(),
        dag: OnceLock::new(),
    })
}

/// Dependencies as indices, task types as indices, and the per-task problems found.
struct Resolved {
    dependencies: Adjacency,
    task_types: Vec<String>,
    type_of: Vec<u32>,
    pools: Vec<String>,
    pool_of: Vec<u32>,
    features: Features,
    errors: Vec<ValidationError>,
}

/// Resolves every task's dependencies to indices and checks each task on its own: its
/// key, its options, and unknown, self and repeated dependencies. This is the one place
/// where dependency ids are looked up.
///
/// With `threads` above 1 (the caller asked for it), contiguous ranges of tasks are
/// resolved on that many scoped threads; results are merged in task order, so the
/// outcome does not depend on the thread count.
fn resolve(tasks: &TaskTable, threads: usize) -> Resolved {
    let n = tasks.len();
    // Many more threads than cores would only wait on each other, each with a stack of
    // its own, and could run out of what the system allows (a range whose thread is
    // refused is resolved on this one).
    // (Asked only then: the answer reads the cgroup files, a cost every small
    // workflow, and every task a remote worker receives, would pay.)
    let threads = if threads > 1 {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        threads.min(cores.max(8)).clamp(1, n.max(1))
    } else {
        1
    };
    let size = n.div_ceil(threads).max(1);
    let ranges = (0..threads).map(|t| (t * size).min(n)..((t + 1) * size).min(n));
    let chunks: Vec<Chunk<'_>> = if threads == 1 {
        vec![resolve_range(tasks, 0..n)]
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = ranges
                .map(|range| {
                    let mine = range.clone();
                    std::thread::Builder::new()
                        .spawn_scoped(scope, move || resolve_range(tasks, mine))
                        .map_err(|_refused| range)
                })
                .collect();
            handles
                .into_iter()
                .map(|handle| match handle {
                    Ok(h) => h
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                    // The system refused a thread: this range is resolved here instead.
                    Err(range) => resolve_range(tasks, range),
                })
                .collect()
        })
    };

    let edges = chunks.iter().map(|c| c.items.len()).sum();
    let mut dependencies = Adjacency {
        starts: Vec::with_capacity(n + 1),
        items: Vec::with_capacity(edges),
    };
    dependencies.starts.push(0);
    let mut task_types: IndexSet<&str, foldhash::fast::RandomState> = IndexSet::default();
    let mut type_of = Vec::with_capacity(n);
    let mut pools: IndexSet<&str, foldhash::fast::RandomState> = IndexSet::default();
    let mut pool_of = Vec::with_capacity(n);
    let mut errors = Vec::new();
    let mut features = Features::default();
    for chunk in chunks {
        features = features.union(chunk.features);
        let base = dependencies.items.len() as u32;
        dependencies
            .starts
            .extend(chunk.ends.iter().map(|&end| base + end));
        dependencies.items.extend_from_slice(&chunk.items);
        let global: Vec<u32> = chunk
            .types
            .iter()
            .map(|t| task_types.insert_full(t).0 as u32)
            .collect();
        type_of.extend(chunk.type_of.iter().map(|&t| global[t as usize]));
        let global: Vec<u32> = chunk
            .pools
            .iter()
            .map(|p| pools.insert_full(p).0 as u32)
            .collect();
        pool_of.extend(chunk.pool_of.iter().map(|&p| match p {
            NO_POOL => NO_POOL,
            p => global[p as usize],
        }));
        errors.extend(chunk.errors);
    }
    Resolved {
        dependencies,
        task_types: task_types.into_iter().map(str::to_owned).collect(),
        type_of,
        // A workflow without pools keeps no list of them.
        pool_of: if pools.is_empty() {
            Vec::new()
        } else {
            pool_of
        },
        pools: pools.into_iter().map(str::to_owned).collect(),
        features,
        errors,
    }
}

/// One contiguous range of tasks, resolved on its own.
struct Chunk<'w> {
    /// Per task, the end of its dependencies in `items`.
    ends: Vec<u32>,
    items: Vec<u32>,
    types: IndexSet<&'w str, foldhash::fast::RandomState>,
    type_of: Vec<u32>,
    /// The pools this range's tasks name, and per task its index here or [`NO_POOL`].
    pools: IndexSet<&'w str, foldhash::fast::RandomState>,
    pool_of: Vec<u32>,
    features: Features,
    errors: Vec<ValidationError>,
}

fn resolve_range(tasks: &TaskTable, range: Range<usize>) -> Chunk<'_> {
    let mut chunk = Chunk {
        ends: Vec::with_capacity(range.len()),
        items: Vec::with_capacity(range.len() * 2),
        types: IndexSet::default(),
        type_of: Vec::with_capacity(range.len()),
        pools: IndexSet::default(),
        pool_of: Vec::with_capacity(range.len()),
        features: Features::default(),
        errors: Vec::new(),
    };
    let mut listed: HashSet<u32> = HashSet::new();
    // A task's unknown dependencies and dependencies on itself, reported once each.
    let mut reported: HashSet<&str> = HashSet::new();
    for i in range {
        let Some((key, task)) = tasks.get_index(i) else {
            break;
        };
        if key != &task.task_id {
            chunk.errors.push(ValidationError::KeyMismatch {
                key: key.clone(),
                task_id: task.task_id.clone(),
            });
        }
        check_options(key, task, &mut chunk.errors);
        chunk.features.note(task);
        chunk.pool_of.push(match &task.pool {
            Some(pool) => chunk.pools.insert_full(pool).0 as u32,
            None => NO_POOL,
        });
        chunk
            .type_of
            .push(chunk.types.insert_full(&task.task_type).0 as u32);

        // Few dependencies: look back through this task's own list; many: use a set.
        let first = chunk.items.len();
        let many = task.dependencies.len() > 16;
        empty_for(&mut listed, task.dependencies.len());
        empty_for(&mut reported, task.dependencies.len());
        for dep in &task.dependencies {
            match tasks.get_index_of(dep.as_str()) {
                Some(d) if d == i => {
                    if reported.insert(dep.as_str()) {
                        (chunk.errors).push(ValidationError::SelfDependency { task: key.clone() });
                    }
                }
                Some(d) => {
                    let d = d as u32;
                    let repeated = if many {
                        !listed.insert(d)
                    } else {
                        chunk.items[first..].contains(&d)
                    };
                    if repeated {
                        chunk.errors.push(ValidationError::DuplicateDependency {
                            task: key.clone(),
                            dependency: dep.clone(),
                        });
                    } else {
                        chunk.items.push(d);
                    }
                }
                None if !reported.insert(dep.as_str()) => {}
                None => chunk.errors.push(ValidationError::UnknownDependency {
                    task: key.clone(),
                    dependency: dep.clone(),
                    suggestion: None,
                }),
            }
        }
        chunk.ends.push(chunk.items.len() as u32);
    }
    chunk
}

/// Fills in, for each unknown dependency, the task id it most likely meant; within one
/// [`Budget`] for the whole workflow, so that a generated workflow full of unknown ids
/// stays quick to check.
fn suggest_dependencies(tasks: &TaskTable, errors: &mut [ValidationError]) {
    let mut budget = Budget::new();
    for error in errors {
        if let ValidationError::UnknownDependency {
            task,
            dependency,
            suggestion,
        } = error
        {
            // Never the task itself: that would be a dependency on itself.
            let ids = tasks.keys().map(TaskId::as_str);
            *suggestion = closest(dependency, Some(task), ids, &mut budget)
                .and_then(|id| tasks.get_key_value(id))
                .map(|(id, _)| id.clone());
        }
    }
}

/// A task id that names an instance of a map task of the workflow (`sq[0]` beside map
/// task `sq`) would be mistaken for that instance.
fn check_instance_ids(tasks: &TaskTable, errors: &mut Vec<ValidationError>) {
    if !tasks.values().any(|task| task.map.is_some()) {
        return;
    }
    for id in tasks.keys() {
        let Some((map, item)) = crate::MapSpec::parse_instance_id(id.as_str()) else {
            continue;
        };
        if tasks.get(map).is_some_and(|task| task.map.is_some()) {
            let map = crate::error::shown_id(map);
            errors.push(ValidationError::InvalidOption {
                task: id.clone(),
                option: "task_id",
                reason: format!(
                    "is the id of instance {item} of map task `{map}` (its instances are \
                     `{map}[0]`, `{map}[1]`, ...); choose another id"
                ),
            });
        }
    }
}

/// What kind of JSON value `value` is, for error messages ("an object", "a string", ...).
pub(crate) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Kahn's algorithm with a min-heap: among ready tasks the earliest inserted goes first.
/// Hand-written rather than petgraph's `toposort`, which stops at the first cycle it meets:
/// validation reports every cycle, each with its path, and orders ties by insertion.
/// When every dependency was inserted before its dependent (as files usually list them),
/// insertion order is that order already and no heap is needed.
///
/// On a cycle, returns each task's count of unfinished dependencies instead: the tasks
/// with a count above zero are on, or behind, a cycle.
fn topological_order(
    dependencies: &Adjacency,
    dependents: &Adjacency,
) -> Result<Vec<u32>, Vec<u32>> {
    let n = dependencies.starts.len() - 1;
    let backward_only = (0..n).all(|i| dependencies.of(i).iter().all(|&d| (d as usize) < i));
    if backward_only {
        return Ok((0..n as u32).collect());
    }
    let mut waiting: Vec<u32> = (0..n).map(|i| dependencies.of(i).len() as u32).collect();
    let mut ready: BinaryHeap<Reverse<u32>> = (0..n as u32)
        .filter(|&i| waiting[i as usize] == 0)
        .map(Reverse)
        .collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for &c in dependents.of(i as usize) {
            waiting[c as usize] -= 1;
            if waiting[c as usize] == 0 {
                ready.push(Reverse(c));
            }
        }
    }
    if order.len() == n {
        Ok(order)
    } else {
        Err(waiting)
    }
}

/// Empties `set` for a task of `dependencies`. Clearing goes through all of a set's
/// room, so a set that a far wider task grew is made anew: else every task after it would
/// pay for that task's width.
fn empty_for<T>(set: &mut HashSet<T>, dependencies: usize) {
    if set.capacity() > 4 * dependencies.max(64) {
        *set = HashSet::new();
    } else {
        set.clear();
    }
}
