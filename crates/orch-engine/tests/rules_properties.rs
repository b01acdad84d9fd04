//! Property tests for trigger rules, pools and priorities over random DAGs: final statuses
//! (and the workflow's) equal a simple reference evaluator's; no pool and not the global
//! limit is ever exceeded; no task starts before its rule lets it; and a ready task whose
//! pool has room never waits while a task of lower priority (or, at equal priority, later
//! in the workflow) starts.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use orch_core::{
    Decision, Task, TaskStatus, TriggerRule, Workflow, WorkflowResult, WorkflowStatus,
};
use orch_engine::{TaskContext, TaskError, WorkflowEngine};
use proptest::prelude::*;
use serde_json::{Value, json};

const POOLS: [&str; 2] = ["a", "b"];

#[derive(Clone, Debug)]
struct Case {
    deps: Vec<Vec<usize>>,
    rules: Vec<TriggerRule>,
    failing: Vec<bool>,
    priorities: Vec<i32>,
    /// Per task: 0 for no pool, otherwise 1 + its index in `POOLS`.
    pools: Vec<usize>,
    limits: [usize; 2],
    max_concurrent: usize,
}

fn case() -> impl Strategy<Value = Case> {
    (1usize..25)
        .prop_flat_map(|n| {
            let deps = (0..n)
                .map(|i| proptest::sample::subsequence((0..i).collect::<Vec<_>>(), 0..=i.min(3)))
                .collect::<Vec<_>>();
            (
                deps,
                proptest::collection::vec(proptest::sample::select(TriggerRule::ALL.to_vec()), n),
                proptest::collection::vec(proptest::bool::weighted(0.3), n),
                proptest::collection::vec(-2i32..3, n),
                proptest::collection::vec(0usize..3, n),
                (1usize..4, 1usize..4),
                1usize..6,
            )
        })
        .prop_map(
            |(deps, rules, failing, priorities, pools, (a, b), max_concurrent)| Case {
                deps,
                rules,
                failing,
                priorities,
                pools,
                limits: [a, b],
                max_concurrent,
            },
        )
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Event {
    Start(usize),
    End(usize),
}

fn index(id: &str) -> usize {
    id[1..].parse().expect("ids are t<number>")
}

/// Runs the case on a paused clock with a handler that logs its start and end.
fn run(case: &Case) -> (WorkflowResult, Vec<Event>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a runtime");
    let log = Arc::new(Mutex::new(Vec::new()));
    let engine = WorkflowEngine::builder()
        .max_concurrent(case.max_concurrent)
        .pool(POOLS[0], case.limits[0])
        .pool(POOLS[1], case.limits[1])
        .build()
        .expect("valid limits");
    let shared = Arc::clone(&log);
    engine.register_handler("work", move |ctx: TaskContext| {
        let log = Arc::clone(&shared);
        async move {
            let i = index(ctx.task_id());
            log.lock().expect("lock").push(Event::Start(i));
            tokio::time::sleep(Duration::from_millis((i as u64 * 7) % 5 + 1)).await;
            log.lock().expect("lock").push(Event::End(i));
            if ctx.config()["fail"] == json!(true) {
                Err(TaskError::new(format!("t{i} failed")))
            } else {
                Ok(Value::Null)
            }
        }
    });
    let tasks = (0..case.deps.len()).map(|i| {
        let mut task = Task::new(format!("t{i}"), "work")
            .config(json!({"fail": case.failing[i]}))
            .depends_on(case.deps[i].iter().map(|d| format!("t{d}")))
            .trigger_rule(case.rules[i])
            .priority(case.priorities[i]);
        if case.pools[i] > 0 {
            task = task.pool(POOLS[case.pools[i] - 1]);
        }
        task
    });
    let workflow = Workflow::from_tasks("random", "Random", tasks);
    let result = runtime
        .block_on(engine.execute_workflow(&workflow))
        .expect("a valid DAG");
    drop(engine);
    let events = std::mem::take(&mut *log.lock().expect("lock"));
    (result, events)
}

/// The reference: each task's final status from its dependencies' final statuses, in
/// index order (dependencies point to lower indices), and the workflow's status.
fn reference(case: &Case) -> (Vec<TaskStatus>, WorkflowStatus) {
    use TaskStatus::{Completed, Failed, Skipped};
    let mut status: Vec<TaskStatus> = Vec::new();
    for (i, deps) in case.deps.iter().enumerate() {
        let of: Vec<TaskStatus> = deps.iter().map(|&d| status[d]).collect();
        let all = |s| of.iter().all(|&x| x == s);
        let any = |s| of.contains(&s);
        let runs = of.is_empty()
            || match case.rules[i] {
                TriggerRule::AllSuccess => all(Completed),
                TriggerRule::AllDone | TriggerRule::Always => true,
                TriggerRule::AllFailed => all(Failed),
                TriggerRule::OneSuccess => any(Completed),
                TriggerRule::OneFailed => any(Failed),
                TriggerRule::NoneFailed => !any(Failed),
                TriggerRule::NoneFailedMinOneSuccess => !any(Failed) && any(Completed),
            };
        status.push(match (runs, case.failing[i]) {
            (false, _) => Skipped,
            (true, true) => Failed,
            (true, false) => Completed,
        });
    }
    let unhandled = (0..status.len()).any(|i| {
        status[i] == Failed
            && !(0..status.len()).any(|d| {
                case.deps[d].contains(&i)
                    && matches!(
                        case.rules[d],
                        TriggerRule::OneFailed | TriggerRule::AllFailed
                    )
                    && status[d] == Completed
            })
    });
    let workflow = if unhandled {
        WorkflowStatus::Failed
    } else {
        WorkflowStatus::Completed
    };
    (status, workflow)
}

/// What the README says rule `rule` decides, given how each dependency ended so far
/// (`None`: not yet), written apart from `TriggerRule::decide` so that the two check
/// each other: a start the engine allows too early shows as a start before `Run`.
fn rule_model(rule: TriggerRule, ends: &[Option<TaskStatus>]) -> Decision {
    use TaskStatus::{Completed, Failed};
    let all_ended = ends.iter().all(Option::is_some);
    let any = |status: TaskStatus| ends.contains(&Some(status));
    let any_skipped = ends
        .iter()
        .any(|e| e.is_some_and(|s| s != Completed && s != Failed));
    // Run once every dependency ended if `run`, else skip; wait until then.
    let at_the_end = |run: bool| match (all_ended, run) {
        (false, _) => Decision::Wait,
        (true, true) => Decision::Run,
        (true, false) => Decision::Skip,
    };
    if ends.is_empty() {
        return Decision::Run;
    }
    match rule {
        TriggerRule::Always => Decision::Run,
        TriggerRule::AllDone => at_the_end(true),
        TriggerRule::AllSuccess if any(Failed) || any_skipped => Decision::Skip,
        TriggerRule::AllSuccess => at_the_end(true),
        TriggerRule::AllFailed if any(Completed) || any_skipped => Decision::Skip,
        TriggerRule::AllFailed => at_the_end(true),
        TriggerRule::OneSuccess if any(Completed) => Decision::Run,
        TriggerRule::OneSuccess => at_the_end(false),
        TriggerRule::OneFailed if any(Failed) => Decision::Run,
        TriggerRule::OneFailed => at_the_end(false),
        TriggerRule::NoneFailed if any(Failed) => Decision::Skip,
        TriggerRule::NoneFailed => at_the_end(true),
        TriggerRule::NoneFailedMinOneSuccess if any(Failed) => Decision::Skip,
        TriggerRule::NoneFailedMinOneSuccess => at_the_end(any(Completed)),
    }
}

/// Replays the log: what the rules decided after each end, and which tasks run.
struct Replay<'c> {
    case: &'c Case,
    /// Per task: its outcome once it ended or was skipped.
    ended: Vec<Option<TaskStatus>>,
    /// Tasks released to run and not started yet.
    ready: Vec<bool>,
    started: Vec<bool>,
    running: Vec<usize>,
}

impl<'c> Replay<'c> {
    fn new(case: &'c Case) -> Self {
        let n = case.deps.len();
        let mut replay = Self {
            case,
            ended: vec![None; n],
            ready: vec![false; n],
            started: vec![false; n],
            running: Vec::new(),
        };
        replay.decide();
        replay
    }

    /// Decides every undecided task until nothing changes (skips travel on).
    fn decide(&mut self) {
        loop {
            let mut changed = false;
            for t in 0..self.case.deps.len() {
                if self.ready[t] || self.started[t] || self.ended[t].is_some() {
                    continue;
                }
                let ends: Vec<Option<TaskStatus>> =
                    self.case.deps[t].iter().map(|&d| self.ended[d]).collect();
                match rule_model(self.case.rules[t], &ends) {
                    Decision::Wait => continue,
                    Decision::Run => self.ready[t] = true,
                    Decision::Skip => self.ended[t] = Some(TaskStatus::Skipped),
                }
                changed = true;
            }
            if !changed {
                return;
            }
        }
    }

    fn busy(&self, pool: usize) -> usize {
        self.running
            .iter()
            .filter(|&&r| self.case.pools[r] == pool)
            .count()
    }

    fn has_room(&self, pool: usize) -> bool {
        pool == 0 || self.busy(pool) < self.case.limits[pool - 1]
    }

    /// Checks the start of `t` against the model, then records it.
    fn start(&mut self, t: usize) -> Result<(), TestCaseError> {
        prop_assert!(self.ready[t], "t{} started before its rule let it", t);
        let key = |u: usize| (-self.case.priorities[u], u);
        for u in 0..self.case.deps.len() {
            if u != t && self.ready[u] && self.has_room(self.case.pools[u]) {
                prop_assert!(
                    key(u) > key(t),
                    "t{} (priority {}) waited while t{} (priority {}) started",
                    u,
                    self.case.priorities[u],
                    t,
                    self.case.priorities[t]
                );
            }
        }
        self.ready[t] = false;
        self.started[t] = true;
        self.running.push(t);
        let pool = self.case.pools[t];
        if pool > 0 {
            prop_assert!(
                self.busy(pool) <= self.case.limits[pool - 1],
                "pool over its limit"
            );
        }
        prop_assert!(
            self.running.len() <= self.case.max_concurrent,
            "global limit exceeded"
        );
        Ok(())
    }

    fn end(&mut self, t: usize) {
        self.running.retain(|&r| r != t);
        self.ended[t] = Some(if self.case.failing[t] {
            TaskStatus::Failed
        } else {
            TaskStatus::Completed
        });
        self.decide();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn final_statuses_equal_the_reference(case in case()) {
        let (result, _) = run(&case);
        let (expected, workflow) = reference(&case);
        let got: Vec<TaskStatus> = result.tasks.iter().map(|(_, r)| r.status).collect();
        prop_assert_eq!(got, expected);
        prop_assert_eq!(result.status, workflow);
        for (id, record) in result.tasks.iter() {
            if record.status == TaskStatus::Skipped {
                let reason = record.error.clone().unwrap_or_default();
                let rule = case.rules[index(id)];
                prop_assert!(reason.contains(&format!("trigger rule `{rule}`")) || rule.is_default(), "{}", reason);
                prop_assert!(reason.contains("`t"), "{}", reason);
            }
        }
    }

    #[test]
    fn starts_follow_rules_limits_and_priorities(case in case()) {
        let (_, events) = run(&case);
        let mut replay = Replay::new(&case);
        for event in events {
            match event {
                Event::Start(t) => replay.start(t)?,
                Event::End(t) => replay.end(t),
            }
        }
    }
}

#[test]
fn the_pool_limits_of_the_reference_are_reached() {
    // Six independent tasks in pool `a` (limit 2) and a global limit of 5: two at a time.
    let case = Case {
        deps: vec![Vec::new(); 6],
        rules: vec![TriggerRule::AllSuccess; 6],
        failing: vec![false; 6],
        priorities: vec![0; 6],
        pools: vec![1; 6],
        limits: [2, 1],
        max_concurrent: 5,
    };
    let (_, events) = run(&case);
    let mut running = 0usize;
    let mut peak = 0;
    for event in events {
        match event {
            Event::Start(_) => running += 1,
            Event::End(_) => running -= 1,
        }
        peak = peak.max(running);
    }
    assert_eq!(peak, 2);
}
