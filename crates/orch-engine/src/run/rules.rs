//! What a task's end means for its dependents: released, skipped by their trigger rules,
//! or skipped because a branch task did not choose them.
//!
//! A workflow whose tasks all keep the default rule (`all_success`) takes the classic path:
//! a count of unfinished dependencies per task, and a failure or skip skips every
//! descendant. Any other rule switches the run to [`Rules`], which counts each task's
//! dependency outcomes and asks its rule.

use orch_core::{Decision, DependencyOutcomes, Features, TaskStatus, TriggerRule, Workflow};

use super::Scheduler;

/// Per task, its rule, how its dependencies ended so far, and whether it was decided
/// (released to run, or skipped).
pub(super) struct Rules {
    rule: Vec<TriggerRule>,
    outcomes: Vec<DependencyOutcomes>,
    decided: Vec<bool>,
    /// For each task a rule skipped after a failure upstream, the task that failed
    /// ([`NO_FAILURE`] for the others): its skip reason names it.
    failed_upstream: Vec<u32>,
}

/// No failure upstream of a skip (see [`Rules::failed_upstream`]).
const NO_FAILURE: u32 = u32::MAX;

/// The most dependencies a skip reason lists by name.
const LISTED: usize = 5;

impl Rules {
    /// The rules of `workflow`, or `None` when every task has the default rule (its
    /// plan's `features` say whether one does).
    pub(super) fn of(
        workflow: &Workflow,
        features: Features,
        totals: impl Iterator<Item = u32>,
    ) -> Option<Self> {
        if !features.trigger_rules {
            return None;
        }
        let outcomes: Vec<DependencyOutcomes> = totals
            .map(|total| DependencyOutcomes {
                total,
                ..DependencyOutcomes::default()
            })
            .collect();
        Some(Self {
            rule: workflow.tasks().map(|task| task.trigger_rule).collect(),
            decided: vec![false; outcomes.len()],
            failed_upstream: vec![NO_FAILURE; outcomes.len()],
            outcomes,
        })
    }

    /// Task `index` is decided (skipped) before its dependents are told: they are once
    /// the journal holds its skip.
    pub(super) fn decided_before_told(&mut self, index: usize) {
        self.decided[index] = true;
    }

    /// Task `index` was kept from an earlier run, where it ended as `status` (completed,
    /// or skipped without running): it is decided, and ended so for its dependents.
    pub(super) fn kept(&mut self, index: usize, dependents: &[u32], status: TaskStatus) {
        self.decided[index] = true;
        for &d in dependents {
            let outcomes = &mut self.outcomes[d as usize];
            match status {
                TaskStatus::Completed => outcomes.completed += 1,
                _ => outcomes.skipped += 1,
            }
        }
    }
}

fn how(status: TaskStatus) -> &'static str {
    match status {
        TaskStatus::Completed => "completed",
        TaskStatus::Failed => "failed",
        TaskStatus::Skipped => "was skipped",
        TaskStatus::Cancelled => "was cancelled",
        TaskStatus::Pending | TaskStatus::Running => "has not ended",
    }
}

impl Scheduler<'_> {
    /// Decides every task the rules can decide before anything ends: tasks with no
    /// dependencies, `always` tasks, and (when resuming) tasks whose dependencies were
    /// kept from the earlier run.
    pub(super) fn begin(&mut self) {
        if self.rules.is_none() {
            return;
        }
        let mut ended = Vec::new();
        for &index in self.plan.order() {
            self.decide(index as usize, None, &mut ended);
            self.propagate(&mut ended);
        }
        self.announce_skips();
    }

    /// Task `index` ended as `status` (completed, failed or skipped): releases or skips
    /// its dependents, as their rules (or the task's branch choice) say.
    // Forced inline: on every task's path, where the optimiser kept a call.
    #[inline(always)]
    pub(super) fn ended(&mut self, index: usize, status: TaskStatus) {
        // The common case inline: a completed task, no rules, no branch to read.
        if status == TaskStatus::Completed && self.rules.is_none() && !self.shared.branches.any() {
            self.release_dependents(index);
        } else {
            self.ended_with_rules(index, status);
        }
    }

    /// [`Self::ended`], for any status, rule and branch choice.
    fn ended_with_rules(&mut self, index: usize, status: TaskStatus) {
        self.release_or_skip(index, status);
        self.announce_skips();
    }

    /// What [`Self::ended_with_rules`] decides, before the skips are announced.
    fn release_or_skip(&mut self, index: usize, status: TaskStatus) {
        // A stopped run decides nothing more: what has not started ends cancelled (see
        // `finish`), not skipped by a rule, a branch or a skip upstream.
        if self.stopping {
            return;
        }
        let chosen = if status == TaskStatus::Completed && self.shared.branches.any() {
            let attempt = self.records[index].attempts;
            self.shared.branches.take(index as u32, attempt)
        } else {
            None
        };
        if let Some(chosen) = chosen {
            return self.branch_chosen(index, &chosen);
        }
        if self.rules.is_some() {
            let mut ended = vec![(index as u32, status)];
            self.propagate(&mut ended);
            return;
        }
        match status {
            TaskStatus::Completed => self.release_dependents(index),
            TaskStatus::Failed => self.skip_descendants(index, "failed"),
            _ => self.skip_descendants(index, "was skipped"),
        }
    }

    /// Task `index` completed, in a run without rules: each dependent has one dependency
    /// less to wait for, and those with none left are ready.
    // Forced inline: on every task's path, where the optimiser kept a call.
    #[inline(always)]
    fn release_dependents(&mut self, index: usize) {
        let dependents = self.plan.dependents(index);
        // Count down first, without branching on the counts, so that the cache misses of
        // a large random graph overlap; then start what became ready.
        for &d in dependents {
            self.waiting[d as usize].dependencies -= 1;
        }
        if !self.stopping {
            for &d in dependents {
                if self.waiting[d as usize].dependencies == 0 {
                    self.make_ready(d as usize);
                }
            }
        }
    }

    /// Writes the branch choice of task `index`'s completing attempt, if it made one, into
    /// its record, so that the result and the journal keep it for a resumed run.
    pub(super) fn note_choice(&mut self, index: usize) {
        let attempt = self.records[index].attempts;
        if let Some(chosen) = self.shared.branches.peek(index as u32, attempt) {
            let ids = (chosen.iter())
                .map(|&d| self.task(d as usize).task_id.clone())
                .collect();
            self.records[index].chosen_branches = Some(ids);
        }
    }

    /// Branch task `index` completed and chose `chosen` (sorted) among its direct
    /// dependents: the others are skipped, the chosen ones see it completed.
    fn branch_chosen(&mut self, index: usize, chosen: &[u32]) {
        let reason = format!("not chosen by branch task `{}`", self.task(index).task_id);
        let mut ended = Vec::new();
        for &d in self.plan.dependents(index) {
            let di = d as usize;
            if chosen.binary_search(&d).is_ok() {
                if let Some(rules) = &mut self.rules {
                    rules.outcomes[di].completed += 1;
                    self.decide(di, Some((index, TaskStatus::Completed)), &mut ended);
                } else {
                    self.waiting[di].dependencies -= 1;
                    if self.waiting[di].dependencies == 0 && !self.stopping {
                        self.make_ready(di);
                    }
                }
            } else if let Some(rules) = &mut self.rules {
                if !rules.decided[di] {
                    rules.decided[di] = true;
                    self.skip_pending(di, reason.clone());
                    self.skipped(di, &mut ended);
                }
            } else if self.records[di].status == TaskStatus::Pending {
                self.skip_pending(di, reason.clone());
                // In a durable run, its descendants are skipped once the journal holds
                // its skip, as with rules.
                match &mut self.journal {
                    Some(journal) => journal.push(di),
                    None => self.skip_descendants(di, "was skipped"),
                }
            }
        }
        self.propagate(&mut ended);
    }

    /// Tells the dependents of each task in `ended` how it ended, deciding them when their
    /// rules can; a task skipped on the way is told on in turn.
    fn propagate(&mut self, ended: &mut Vec<(u32, TaskStatus)>) {
        while let Some((task, status)) = ended.pop() {
            let task = task as usize;
            for &d in self.plan.dependents(task) {
                let d = d as usize;
                let Some(rules) = &mut self.rules else {
                    return;
                };
                if rules.decided[d] {
                    continue;
                }
                let outcomes = &mut rules.outcomes[d];
                match status {
                    TaskStatus::Completed => outcomes.completed += 1,
                    TaskStatus::Failed => outcomes.failed += 1,
                    _ => outcomes.skipped += 1,
                }
                self.decide(d, Some((task, status)), ended);
            }
        }
    }

    /// Asks the rule of the undecided task `index` whether it runs now; `last` is the
    /// dependency whose end prompted the question. A skipped task joins `ended`.
    fn decide(
        &mut self,
        index: usize,
        last: Option<(usize, TaskStatus)>,
        ended: &mut Vec<(u32, TaskStatus)>,
    ) {
        let (rule, outcomes) = match &self.rules {
            Some(rules) if !rules.decided[index] => (rules.rule[index], rules.outcomes[index]),
            _ => return,
        };
        let mut decision = rule.decide(outcomes);
        // A map whose list did not come has nothing to run: skipped as a rule's skip is,
        // without a start (its rule alone could not tell), for that reason.
        let no_list = match decision {
            Decision::Run => (self.shared.task(index).map.as_ref()).and_then(|m| self.no_list(m)),
            _ => None,
        };
        if no_list.is_some() {
            decision = Decision::Skip;
        }
        let Some(rules) = &mut self.rules else {
            return;
        };
        match decision {
            Decision::Wait => {}
            Decision::Run => {
                rules.decided[index] = true;
                if !self.stopping {
                    self.make_ready(index);
                }
            }
            Decision::Skip => {
                rules.decided[index] = true;
                // The failure the deciding dependency's end goes back to, if any.
                let failed = match last {
                    Some((dependency, TaskStatus::Failed)) => dependency as u32,
                    Some((dependency, TaskStatus::Skipped)) => rules.failed_upstream[dependency],
                    _ => NO_FAILURE,
                };
                // Else a failure behind another of its dependencies, if any.
                let behind = |d: &u32| match self.records[*d as usize].status {
                    TaskStatus::Failed => *d,
                    _ => rules.failed_upstream[*d as usize],
                };
                rules.failed_upstream[index] = match failed {
                    NO_FAILURE => (self.plan.dependencies(index).iter())
                        .map(behind)
                        .find(|&f| f != NO_FAILURE)
                        .unwrap_or(NO_FAILURE),
                    failed => failed,
                };
                let reason = no_list.unwrap_or_else(|| match last {
                    // One dependency decided it: it is named alone, with the failure
                    // upstream that its skip goes back to.
                    Some((dependency, TaskStatus::Skipped))
                        if failed != NO_FAILURE
                            && (!outcomes.all_ended() || outcomes.total == 1) =>
                    {
                        format!(
                            "dependency `{}` was skipped after `{}` failed (trigger rule `{rule}`)",
                            self.task(dependency).task_id,
                            self.task(failed as usize).task_id,
                        )
                    }
                    Some((dependency, status)) if !outcomes.all_ended() || outcomes.total == 1 => {
                        format!(
                            "dependency `{}` {} (trigger rule `{rule}`)",
                            self.task(dependency).task_id,
                            how(status)
                        )
                    }
                    _ => self.unmet(index, rule),
                });
                self.skip_pending(index, reason);
                self.skipped(index, ended);
            }
        }
    }

    /// Task `index` was skipped by a rule or a branch: its dependents are told with the
    /// rest of `ended`, or, in a durable run, once the journal holds the skip.
    fn skipped(&mut self, index: usize, ended: &mut Vec<(u32, TaskStatus)>) {
        match &mut self.journal {
            Some(journal) => journal.push(index),
            None => ended.push((index as u32, TaskStatus::Skipped)),
        }
    }

    /// The reason for skipping `index` once all its dependencies ended: each of them with
    /// its status.
    fn unmet(&self, index: usize, rule: TriggerRule) -> String {
        let dependencies = self.plan.dependencies(index);
        let mut listed: Vec<String> = dependencies
            .iter()
            .take(LISTED)
            .map(|&d| {
                let d = d as usize;
                let id = &self.task(d).task_id;
                let failed = self
                    .rules
                    .as_ref()
                    .map_or(NO_FAILURE, |r| r.failed_upstream[d]);
                match self.records[d].status {
                    TaskStatus::Skipped if failed != NO_FAILURE => format!(
                        "`{id}` was skipped after `{}` failed",
                        self.task(failed as usize).task_id
                    ),
                    status => format!("`{id}` {}", how(status)),
                }
            })
            .collect();
        if dependencies.len() > LISTED {
            listed.push(format!("and {} more", dependencies.len() - LISTED));
        }
        format!("trigger rule `{rule}` not met: {}", listed.join(", "))
    }

    /// Records the pending task `index` as skipped for `reason`.
    fn skip_pending(&mut self, index: usize, reason: String) {
        let record = &mut self.records[index];
        record.status = TaskStatus::Skipped;
        record.error = Some(reason);
        self.skips.push(index as u32);
    }

    /// Whether the failure of task `index` was handled: a direct dependent whose rule
    /// reacts to failures (`all_failed`, `one_failed`) completed.
    pub(super) fn failure_handled(&self, index: usize) -> bool {
        self.plan.dependents(index).iter().any(|&d| {
            let d = d as usize;
            self.task(d).trigger_rule.handles_failures()
                && self.records[d].status == TaskStatus::Completed
        })
    }
}
