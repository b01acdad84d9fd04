//! DAG queries: order, levels, dependents, descendants, ancestors, roots, leaves.

use orch_core::{Task, Workflow};

/// prep -> a, b, c -> merge, plus an independent `solo`, inserted in a scrambled order.
fn diamond() -> Workflow {
    Workflow::new("parallel", "Parallel Processing")
        .task(Task::new("merge", "t").depends_on(["task_a", "task_b", "task_c"]))
        .task(Task::new("task_c", "t").depends_on(["prep"]))
        .task(Task::new("solo", "t"))
        .task(Task::new("task_a", "t").depends_on(["prep"]))
        .task(Task::new("prep", "t"))
        .task(Task::new("task_b", "t").depends_on(["prep"]))
}

#[test]
fn execution_order_puts_dependencies_first_and_breaks_ties_by_insertion() {
    let workflow = diamond();
    assert_eq!(
        workflow.execution_order().expect("valid"),
        ["solo", "prep", "task_c", "task_a", "task_b", "merge"]
    );
}

#[test]
fn execution_order_of_independent_tasks_is_insertion_order() {
    let workflow = Workflow::new("w", "W")
        .task(Task::new("z", "t"))
        .task(Task::new("y", "t"))
        .task(Task::new("x", "t"));
    assert_eq!(workflow.execution_order().expect("valid"), ["z", "y", "x"]);
}

#[test]
fn levels_are_one_more_than_the_deepest_dependency() {
    let workflow = Workflow::new("w", "W")
        .task(Task::new("a", "t"))
        .task(Task::new("b", "t").depends_on(["a"]))
        .task(Task::new("c", "t").depends_on(["b"]))
        .task(Task::new("d", "t").depends_on(["a", "c"]));
    let levels = workflow.task_levels().expect("valid");
    let levels: Vec<(&str, usize)> = levels.iter().map(|(id, &l)| (id.as_str(), l)).collect();
    assert_eq!(levels, [("a", 0), ("b", 1), ("c", 2), ("d", 3)]);
}

#[test]
fn dependents_descendants_and_ancestors() {
    let workflow = diamond();
    let valid = workflow.validate().expect("valid");
    assert_eq!(
        valid.dependents("prep").expect("known"),
        ["task_c", "task_a", "task_b"]
    );
    assert_eq!(
        valid.dependents("merge").expect("known"),
        Vec::<&str>::new()
    );
    assert_eq!(
        valid.descendants("prep").expect("known"),
        ["task_c", "task_a", "task_b", "merge"]
    );
    assert_eq!(
        valid.ancestors("merge").expect("known"),
        ["prep", "task_c", "task_a", "task_b"]
    );
    assert_eq!(valid.ancestors("prep").expect("known"), Vec::<&str>::new());
    assert_eq!(valid.dependents("nobody"), None);
    assert_eq!(valid.descendants("nobody"), None);
    assert_eq!(valid.ancestors("nobody"), None);
    assert_eq!(valid.level("nobody"), None);
}

#[test]
fn roots_and_leaves() {
    let workflow = diamond();
    let valid = workflow.validate().expect("valid");
    assert_eq!(valid.roots(), ["solo", "prep"]);
    assert_eq!(valid.leaves(), ["merge", "solo"]);
}

#[test]
fn the_plan_is_index_based_and_matches_the_id_queries() {
    let workflow = diamond();
    let valid = workflow.validate().expect("valid");
    let plan = valid.plan();
    assert_eq!(plan.len(), 6);
    let index = |id: &str| workflow.index_of(id).expect("known");
    assert_eq!(plan.dependencies(index("merge")).len(), 3);
    assert_eq!(plan.level(index("merge")), 2);
    assert_eq!(plan.position(index("prep")), 1);
    assert_eq!(plan.task_types(), ["t"]);
    assert_eq!(plan.type_of(index("solo")), 0);
    let mut deps: Vec<usize> = plan
        .dependencies(index("merge"))
        .iter()
        .map(|&d| d as usize)
        .collect();
    deps.sort_unstable();
    assert_eq!(deps, [index("task_c"), index("task_a"), index("task_b")]);
    assert_eq!(plan.dag().edge_count(), 6);
}

#[test]
fn the_definition_is_unchanged_by_queries() {
    let workflow = diamond();
    // Built apart, not cloned: a clone shares the tasks, and compares equal through that.
    let before = diamond();
    let _ = workflow.validate().expect("valid").execution_order();
    assert_eq!(workflow, before);
}
