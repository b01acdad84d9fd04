//! The memory a query of the graph takes, measured: the ancestors of a task cost what
//! they find, not a share of the whole workflow. (Its own test binary: the allocator
//! counts every thread's memory.)

use orch_core::{Task, Workflow};
use peak_alloc::PeakAlloc;

#[global_allocator]
static ALLOCATOR: PeakAlloc = PeakAlloc;

/// A remote worker's inputs ask each task of a fan-out for its ancestors: a flag per task
/// of the workflow for each made that quadratic in the fan-out's width.
#[test]
fn the_ancestors_of_a_task_take_memory_for_what_they_find() {
    const WIDTH: usize = 200_000;
    let workflow = Workflow::from_tasks(
        "w",
        "W",
        std::iter::once(Task::new("root", "t"))
            .chain((0..WIDTH).map(|i| Task::new(format!("leaf{i}"), "t").depends_on(["root"]))),
    );
    let valid = workflow.validate().expect("a valid fan-out");
    // Anything built once for the workflow, built before measuring.
    assert_eq!(valid.ancestors("leaf0").map(|a| a.len()), Some(1));
    let before = ALLOCATOR.current_usage();
    ALLOCATOR.reset_peak_usage();
    let ancestors = valid.ancestors("leaf7");
    let peak = ALLOCATOR.peak_usage().saturating_sub(before);
    assert_eq!(ancestors.map(|a| a.len()), Some(1));
    assert!(
        peak < 4096,
        "asking one task for its one ancestor took {peak} bytes"
    );
}
