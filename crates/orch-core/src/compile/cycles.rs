//! Finding the cycles among the tasks a topological order could not place, for
//! validation to report: one for each group of tasks that wait on one another.

use std::collections::HashSet;

use crate::plan::Adjacency;
use crate::{TaskId, TaskTable, ValidationError};

/// Reports a cycle in each group of tasks that wait on one another, among the tasks
/// Kahn's algorithm could not order (each strongly connected component, found with
/// Tarjan's algorithm): separate cycles are each reported, also when one task leads to
/// two of them. Tasks only behind a cycle are in no such group.
pub(super) fn find_cycles(
    tasks: &TaskTable,
    dependencies: &Adjacency,
    waiting: &[u32],
    errors: &mut Vec<ValidationError>,
) {
    let group = groups_waiting_on_each_other(dependencies, waiting);
    let id = |i: usize| tasks.get_index(i).map(|(id, _)| id.clone());
    // A dependency of `task` in its own group: every task of a group has one.
    let next_in_group = |task: usize| {
        (dependencies.of(task).iter())
            .map(|&d| d as usize)
            .find(|&d| group[d] == group[task])
    };
    let mut reported = HashSet::new();
    let mut walked_from = vec![u32::MAX; waiting.len()];
    let mut path: Vec<usize> = Vec::new();
    for start in (0..waiting.len()).filter(|&i| waiting[i] > 0) {
        if reported.contains(&group[start]) || next_in_group(start).is_none() {
            continue;
        }
        reported.insert(group[start]);
        // Walking inside the group must come back to a task already on the walk.
        path.clear();
        let mut current = start;
        while let Some(next) = next_in_group(current) {
            walked_from[current] = start as u32;
            path.push(current);
            if walked_from[next] != start as u32 {
                current = next;
                continue;
            }
            let from = path.iter().position(|&p| p == next).unwrap_or(0);
            let cycle = &path[from..];
            let lowest = (0..cycle.len()).min_by_key(|&k| cycle[k]).unwrap_or(0);
            let mut ids: Vec<TaskId> = cycle[lowest..]
                .iter()
                .chain(&cycle[..lowest])
                .filter_map(|&k| id(k))
                .collect();
            ids.extend(ids.first().cloned());
            errors.push(ValidationError::Cycle { path: ids });
            break;
        }
    }
}

/// Each unordered task's group of tasks that wait on one another (its strongly connected
/// component among the unordered tasks, by Tarjan's algorithm, without recursion: a
/// cycle may be millions of tasks long); `u32::MAX` for the tasks that were ordered.
fn groups_waiting_on_each_other(dependencies: &Adjacency, waiting: &[u32]) -> Vec<u32> {
    let n = waiting.len();
    let mut search = Tarjan {
        order: vec![NO_GROUP; n],
        lowest: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        visited: 0,
        walk: Vec::new(),
    };
    let mut group = vec![NO_GROUP; n];
    let mut groups = 0_u32;
    for root in (0..n).filter(|&i| waiting[i] > 0) {
        if search.order[root] != NO_GROUP {
            continue;
        }
        search.enter(root);
        while let Some(&(task, seen)) = search.walk.last() {
            if let Some(&dependency) = dependencies.of(task).get(seen) {
                if let Some(top) = search.walk.last_mut() {
                    top.1 += 1;
                }
                let dependency = dependency as usize;
                if waiting[dependency] == 0 {
                    continue;
                }
                if search.order[dependency] == NO_GROUP {
                    search.enter(dependency);
                } else if search.on_stack[dependency] {
                    search.lowest[task] = search.lowest[task].min(search.order[dependency]);
                }
                continue;
            }
            search.walk.pop();
            if let Some(&(parent, _)) = search.walk.last() {
                search.lowest[parent] = search.lowest[parent].min(search.lowest[task]);
            }
            if search.lowest[task] == search.order[task] {
                while let Some(member) = search.stack.pop() {
                    search.on_stack[member] = false;
                    group[member] = groups;
                    if member == task {
                        break;
                    }
                }
                groups += 1;
            }
        }
    }
    group
}

/// Not in a group (and, in [`Tarjan::order`], not visited yet).
const NO_GROUP: u32 = u32::MAX;

/// The state of Tarjan's search for strongly connected components.
struct Tarjan {
    /// When each task was first visited.
    order: Vec<u32>,
    /// The earliest visit each task reaches through the tasks still on the stack.
    lowest: Vec<u32>,
    on_stack: Vec<bool>,
    stack: Vec<usize>,
    visited: u32,
    /// The tasks being walked, each with how many of its dependencies it looked at.
    walk: Vec<(usize, usize)>,
}

impl Tarjan {
    fn enter(&mut self, task: usize) {
        (self.order[task], self.lowest[task]) = (self.visited, self.visited);
        self.visited += 1;
        self.stack.push(task);
        self.on_stack[task] = true;
        self.walk.push((task, 0));
    }
}
