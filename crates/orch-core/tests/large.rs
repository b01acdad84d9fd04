//! A million tasks validate without deep recursion: a chain and a random DAG.

use orch_core::{Task, Workflow};

const MILLION: usize = 1_000_000;

#[test]
fn a_million_task_chain_validates_and_orders() {
    let tasks = (0..MILLION).map(|i| {
        let task = Task::new(format!("t{i}"), "t");
        if i == 0 {
            task
        } else {
            task.depends_on([format!("t{}", i - 1)])
        }
    });
    // Insert in reverse, so the order has to be worked out rather than read off.
    let mut tasks: Vec<Task> = tasks.collect();
    tasks.reverse();
    let workflow = Workflow::from_tasks("chain", "Chain", tasks);
    let valid = workflow.validate().expect("a chain is a DAG");
    let order = valid.execution_order();
    assert_eq!(order.len(), MILLION);
    assert_eq!(order[0], "t0");
    assert_eq!(order[MILLION - 1], format!("t{}", MILLION - 1).as_str());
    assert_eq!(valid.level(&format!("t{}", MILLION - 1)), Some(MILLION - 1));
    assert_eq!(valid.descendants("t0").map(|d| d.len()), Some(MILLION - 1));
    assert_eq!(
        valid
            .ancestors(&format!("t{}", MILLION - 1))
            .map(|a| a.len()),
        Some(MILLION - 1)
    );
}

#[test]
fn a_million_task_chain_closed_into_a_cycle_is_reported() {
    let tasks = (0..MILLION).map(|i| {
        let previous = if i == 0 { MILLION - 1 } else { i - 1 };
        Task::new(format!("t{i}"), "t").depends_on([format!("t{previous}")])
    });
    let workflow = Workflow::from_tasks("ring", "Ring", tasks);
    let errors = workflow
        .validate()
        .expect_err("a ring is a cycle")
        .into_vec();
    assert_eq!(errors.len(), 1);
    match &errors[0] {
        orch_core::ValidationError::Cycle { path } => assert_eq!(path.len(), MILLION + 1),
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn a_million_task_random_dag_validates_and_orders() {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let tasks: Vec<Task> = (0..MILLION)
        .map(|i| {
            let mut deps: Vec<usize> = (0..(next() % 4))
                .filter(|_| i > 0)
                .map(|_| (next() % i as u64) as usize)
                .collect();
            deps.sort_unstable();
            deps.dedup();
            Task::new(format!("t{i}"), "t").depends_on(deps.into_iter().map(|d| format!("t{d}")))
        })
        .collect();
    let edges: usize = tasks.iter().map(|t| t.dependencies.len()).sum();
    let workflow = Workflow::from_tasks("random", "Random", tasks);
    let valid = workflow
        .validate()
        .expect("edges point backwards, so it is a DAG");
    let plan = valid.plan();
    assert_eq!(plan.len(), MILLION);
    assert_eq!(plan.dag().edge_count(), edges);
    let mut position = vec![0usize; MILLION];
    for (k, &t) in plan.order().iter().enumerate() {
        position[t as usize] = k;
    }
    for t in 0..MILLION {
        for &d in plan.dependencies(t) {
            let d = d as usize;
            assert!(position[d] < position[t], "t{d} must come before t{t}");
        }
    }
}

#[test]
fn problems_in_a_large_workflow_are_reported_in_task_order() {
    // Forward and backward references mixed.
    const N: usize = 200_000;
    let mut expected = Vec::new();
    let tasks: Vec<Task> = (0..N)
        .map(|i| {
            let mut deps = Vec::new();
            let parent = i.saturating_sub(1) / 2;
            if i > 0 {
                deps.push(format!("t{parent}"));
            }
            // Forward references from i >= 100 cannot close a cycle: every path from
            // t(i + 7) falls back below i.
            if i >= 100 && i + 7 < N && i % 3 == 0 {
                deps.push(format!("t{}", i + 7));
            }
            if i % 10_007 == 5 {
                deps.push(format!("ghost{i}"));
                expected.push(orch_core::ValidationError::UnknownDependency {
                    task: format!("t{i}").into(),
                    dependency: format!("ghost{i}").into(),
                    suggestion: None,
                });
            }
            if i % 20_011 == 9 {
                deps.push(format!("t{parent}"));
                expected.push(orch_core::ValidationError::DuplicateDependency {
                    task: format!("t{i}").into(),
                    dependency: format!("t{parent}").into(),
                });
            }
            Task::new(format!("t{i}"), "t").depends_on(deps)
        })
        .collect();
    let workflow = Workflow::from_tasks("mixed", "Mixed", tasks.clone());
    let errors = workflow.validate().expect_err("has problems").into_vec();
    assert_eq!(errors, expected);
    // Resolved on several threads (a fresh definition: clones share the cached result),
    // the problems are the same, in the same order.
    // More threads than a system allows are not started.
    for threads in [2, 3, 8, usize::MAX] {
        let fresh = Workflow::from_tasks("mixed", "Mixed", tasks.clone());
        let errors = fresh
            .validate_parallel(threads)
            .expect_err("has problems")
            .into_vec();
        assert_eq!(errors, expected, "on {threads} threads");
    }
}

#[test]
fn a_large_workflow_validated_on_several_threads_has_the_same_plan() {
    let tasks: Vec<Task> = (0..100_000)
        .map(|i: usize| {
            // Backward and forward references: t(i) depends on t(i / 2) and, for i one
            // below a multiple of 4, on t(i + 1), which depends only on t((i + 1) / 2).
            let mut deps = vec![];
            if i > 0 {
                deps.push(format!("t{}", i / 2));
            }
            if i % 4 == 3 && i + 1 < 100_000 {
                deps.push(format!("t{}", i + 1));
            }
            Task::new(format!("t{i}"), if i.is_multiple_of(3) { "a" } else { "b" }).depends_on(deps)
        })
        .collect();
    let single = Workflow::from_tasks("w", "W", tasks.clone());
    let parallel = Workflow::from_tasks("w", "W", tasks);
    let (one, many) = (
        single.validate().expect("a DAG"),
        parallel.validate_parallel(4).expect("a DAG"),
    );
    assert_eq!(one.plan().order(), many.plan().order());
    assert_eq!(one.task_levels(), many.task_levels());
    assert_eq!(one.plan().task_types(), many.plan().task_types());
}
