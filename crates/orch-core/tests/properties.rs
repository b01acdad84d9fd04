//! Property tests over random DAGs: orders respect dependencies, levels are longest-path
//! depths, a back edge is always reported as a real cycle, and each group of tasks that
//! wait on one another gets its cycle.

use std::collections::HashSet;

use orch_core::{Task, ValidationError, Workflow};
use proptest::prelude::*;

/// A random DAG: `deps[i]` are indices below `i`; `insertion` is the order tasks are added.
#[derive(Clone, Debug)]
struct RandomDag {
    deps: Vec<Vec<usize>>,
    insertion: Vec<usize>,
}

fn random_dag() -> impl Strategy<Value = RandomDag> {
    (1usize..40)
        .prop_flat_map(|n| {
            let deps = (0..n)
                .map(|i| proptest::sample::subsequence((0..i).collect::<Vec<_>>(), 0..=i.min(4)))
                .collect::<Vec<_>>();
            let insertion = Just((0..n).collect::<Vec<_>>()).prop_shuffle();
            (deps, insertion)
        })
        .prop_map(|(deps, insertion)| RandomDag { deps, insertion })
}

impl RandomDag {
    fn workflow(&self) -> Workflow {
        let tasks = self.insertion.iter().map(|&i| {
            Task::new(format!("t{i}"), "t").depends_on(self.deps[i].iter().map(|d| format!("t{d}")))
        });
        Workflow::from_tasks("random", "Random", tasks)
    }

    /// Is `to` reachable from `from` by following dependents (so `to` depends on `from`)?
    fn reaches(&self, from: usize, to: usize) -> bool {
        let mut stack = vec![to];
        let mut seen = HashSet::new();
        while let Some(x) = stack.pop() {
            if x == from {
                return true;
            }
            if seen.insert(x) {
                stack.extend(&self.deps[x]);
            }
        }
        false
    }
}

fn index(id: &str) -> usize {
    id[1..].parse().expect("ids are t<number>")
}

proptest! {
    #[test]
    fn execution_order_is_the_insertion_first_topological_order(dag in random_dag()) {
        let workflow = dag.workflow();
        let order: Vec<usize> = workflow.execution_order().expect("a DAG").iter().map(|id| index(id)).collect();

        // Reference: repeatedly take the earliest-inserted task whose dependencies are done.
        let mut done = HashSet::new();
        let mut expected = Vec::new();
        while expected.len() < dag.deps.len() {
            let next = *dag.insertion.iter()
                .find(|&&t| !done.contains(&t) && dag.deps[t].iter().all(|d| done.contains(d)))
                .expect("some task is ready in a DAG");
            done.insert(next);
            expected.push(next);
        }
        prop_assert_eq!(&order, &expected);

        let position: Vec<usize> = {
            let mut p = vec![0; order.len()];
            for (k, &t) in order.iter().enumerate() { p[t] = k; }
            p
        };
        for (t, deps) in dag.deps.iter().enumerate() {
            for &d in deps {
                prop_assert!(position[d] < position[t]);
            }
        }
    }

    #[test]
    fn levels_are_longest_path_depths(dag in random_dag()) {
        let workflow = dag.workflow();
        let levels = workflow.task_levels().expect("a DAG");
        // deps only point to lower indices, so one pass in index order is enough.
        let mut depth = vec![0usize; dag.deps.len()];
        for t in 0..dag.deps.len() {
            depth[t] = dag.deps[t].iter().map(|&d| depth[d] + 1).max().unwrap_or(0);
        }
        for (id, &level) in &levels {
            prop_assert_eq!(level, depth[index(id)]);
        }
        prop_assert_eq!(levels.len(), dag.deps.len());
    }

    #[test]
    fn descendants_are_exactly_the_reachable_tasks(dag in random_dag(), pick in any::<prop::sample::Index>()) {
        let workflow = dag.workflow();
        let valid = workflow.validate().expect("a DAG");
        let from = pick.index(dag.deps.len());
        let found: HashSet<usize> = valid.descendants(&format!("t{from}")).expect("known")
            .iter().map(|id| index(id)).collect();
        let expected: HashSet<usize> = (0..dag.deps.len())
            .filter(|&t| t != from && dag.reaches(from, t)).collect();
        prop_assert_eq!(found, expected);
    }

    /// A task's dependents are the tasks that list it, in the workflow's order (which
    /// callers search by halving).
    #[test]
    fn dependents_are_the_tasks_that_list_it_in_the_workflows_order(dag in random_dag()) {
        let workflow = dag.workflow();
        let valid = workflow.validate().expect("a DAG");
        let plan = valid.plan();
        for (position, &task) in dag.insertion.iter().enumerate() {
            let expected: Vec<u32> = (dag.insertion.iter().enumerate())
                .filter(|&(_, &t)| dag.deps[t].contains(&task))
                .map(|(at, _)| at as u32)
                .collect();
            prop_assert_eq!(plan.dependents(position), &expected[..]);
        }
    }

    #[test]
    fn a_back_edge_is_reported_as_a_real_cycle(
        dag in random_dag(),
        a in any::<prop::sample::Index>(),
        b in any::<prop::sample::Index>(),
    ) {
        // Pick u and a task v that depends on u (possibly indirectly), then make u depend on v.
        let n = dag.deps.len();
        let u = a.index(n);
        let candidates: Vec<usize> = (0..n).filter(|&v| v != u && dag.reaches(u, v)).collect();
        prop_assume!(!candidates.is_empty());
        let v = candidates[b.index(candidates.len())];
        let mut cyclic = dag.clone();
        cyclic.deps[u].push(v);

        let errors = cyclic.workflow().validate().expect_err("a back edge makes a cycle").into_vec();
        prop_assert!(!errors.is_empty());
        for error in &errors {
            let ValidationError::Cycle { path } = error else {
                return Err(TestCaseError::fail(format!("unexpected error {error}")));
            };
            prop_assert!(path.len() >= 3);
            prop_assert_eq!(path.first(), path.last());
            for pair in path.windows(2) {
                let (from, to) = (index(&pair[0]), index(&pair[1]));
                prop_assert!(cyclic.deps[from].contains(&to), "{} does not depend on {}", from, to);
            }
            let distinct: HashSet<_> = path[..path.len() - 1].iter().collect();
            prop_assert_eq!(distinct.len(), path.len() - 1);
        }
    }
}

proptest! {
    /// With several back edges, each group of tasks that wait on one another (tasks that
    /// each depend on the others, directly or not) gets one reported cycle, a real one
    /// inside the group, however the groups are reached from one another.
    #[test]
    fn each_group_of_tasks_waiting_on_each_other_gets_one_real_cycle(
        dag in random_dag(),
        edges in proptest::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>()), 1..4),
    ) {
        let n = dag.deps.len();
        let mut cyclic = dag.clone();
        for (a, b) in edges {
            let (u, v) = (a.index(n), b.index(n));
            if u != v && !cyclic.deps[u].contains(&v) {
                cyclic.deps[u].push(v);
            }
        }
        // The reference: groups by mutual reachability, among tasks on a cycle.
        let on_cycle = |x: usize| cyclic.deps[x].iter().any(|&d| cyclic.reaches(x, d));
        let together = |x: usize, y: usize| cyclic.reaches(x, y) && cyclic.reaches(y, x);
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for x in (0..n).filter(|&x| on_cycle(x)) {
            match groups.iter_mut().find(|g| together(g[0], x)) {
                Some(group) => group.push(x),
                None => groups.push(vec![x]),
            }
        }
        let errors = match cyclic.workflow().validate() {
            Ok(_) => Vec::new(),
            Err(errors) => errors.into_vec(),
        };
        prop_assert_eq!(errors.len(), groups.len(), "{:?}", errors);
        let mut found = HashSet::new();
        for error in &errors {
            let ValidationError::Cycle { path } = error else {
                return Err(TestCaseError::fail(format!("unexpected error {error}")));
            };
            prop_assert_eq!(path.first(), path.last());
            for pair in path.windows(2) {
                let (from, to) = (index(&pair[0]), index(&pair[1]));
                prop_assert!(cyclic.deps[from].contains(&to), "{} does not depend on {}", from, to);
            }
            let group = groups.iter().position(|g| g.contains(&index(&path[0])));
            prop_assert!(group.is_some(), "{:?} is on no cycle", path);
            prop_assert!(path.iter().all(|id| groups[group.unwrap_or(0)].contains(&index(id))));
            prop_assert!(found.insert(group), "two cycles for one group: {:?}", errors);
        }
    }
}

/// Which optional settings each task of a random DAG gets: timeout, retries, a rule other
/// than the default, a pool, a priority, caching.
fn random_settings(n: usize) -> impl Strategy<Value = Vec<[bool; 6]>> {
    proptest::collection::vec(proptest::array::uniform6(proptest::bool::weighted(0.1)), n)
}

proptest! {
    /// A plan's features are the union of what its tasks use, and its pools the ones its
    /// tasks name, whatever the thread count of the validation that compiled it.
    #[test]
    fn features_are_what_some_task_uses(
        (dag, settings) in random_dag().prop_flat_map(|dag| {
            let n = dag.deps.len();
            (Just(dag), random_settings(n))
        }),
        threads in 1usize..4,
    ) {
        let tasks = dag.insertion.iter().map(|&i| {
            let [timeout, retries, rule, pool, priority, cache] = settings[i];
            let mut task = Task::new(format!("t{i}"), "t")
                .depends_on(dag.deps[i].iter().map(|d| format!("t{d}")));
            if timeout { task = task.timeout(std::time::Duration::from_secs(1)); }
            if retries { task = task.retries(1); }
            if rule { task = task.trigger_rule(orch_core::TriggerRule::AllDone); }
            if pool { task = task.pool("gpu"); }
            if priority { task = task.priority(3); }
            task.cache(cache)
        });
        let workflow = Workflow::from_tasks("random", "Random", tasks);
        let any = |k: usize| settings.iter().any(|s| s[k]);
        let valid = workflow.validate_parallel(threads).expect("a DAG");
        let features = valid.plan().features();
        prop_assert_eq!(
            [features.timeouts, features.retries, features.trigger_rules, features.pools, features.priorities, features.caching],
            [any(0), any(1), any(2), any(3), any(4), any(5)]
        );
        prop_assert!(!features.maps);
        let plan = valid.plan();
        for (index, &i) in dag.insertion.iter().enumerate() {
            let pool = plan.pool_of(index).map(|p| plan.pools()[p].as_str());
            prop_assert_eq!(pool, settings[i][3].then_some("gpu"));
        }
    }
}

proptest! {
    /// The start order holds every task once, higher priorities first, plan order among
    /// equals; with the critical-path policy, among equal priorities the longer chain of
    /// dependents first. Its ranks are its inverse.
    #[test]
    fn start_order_is_by_priority_then_chain_then_plan_order(
        (dag, priorities) in random_dag().prop_flat_map(|dag| {
            let n = dag.deps.len();
            (Just(dag), proptest::collection::vec(-2i32..3, n))
        }),
        critical_path_first: bool,
    ) {
        let tasks = dag.insertion.iter().map(|&i| {
            Task::new(format!("t{i}"), "t")
                .depends_on(dag.deps[i].iter().map(|d| format!("t{d}")))
                .priority(priorities[i])
        });
        let workflow = Workflow::from_tasks("random", "Random", tasks);
        let valid = workflow.validate().expect("a DAG");
        let plan = valid.plan();
        let n = plan.len();
        // The longest chain of tasks from each task to the end, by walking dependents.
        fn chain(plan: &orch_core::Plan, i: usize) -> usize {
            1 + plan.dependents(i).iter().map(|&d| chain(plan, d as usize)).max().unwrap_or(0)
        }
        let order = plan.start_order(critical_path_first);
        let mut seen = vec![false; n];
        for &i in order {
            prop_assert!(!std::mem::replace(&mut seen[i as usize], true));
        }
        prop_assert_eq!(order.len(), n);
        for pair in order.windows(2) {
            let (a, b) = (pair[0] as usize, pair[1] as usize);
            let key = |i: usize| {
                let chain = if critical_path_first { chain(plan, i) } else { 0 };
                (std::cmp::Reverse(plan.priority(i)), std::cmp::Reverse(chain), plan.position(i))
            };
            prop_assert!(key(a) < key(b), "{:?} before {:?}", key(a), key(b));
        }
        for (rank, &i) in order.iter().enumerate() {
            prop_assert_eq!(plan.start_ranks(critical_path_first)[i as usize] as usize, rank);
        }
    }
}
