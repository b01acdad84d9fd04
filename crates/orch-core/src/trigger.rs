//! [`TriggerRule`]: when a task runs, given how its dependencies ended.

use std::fmt;

use serde::{Deserialize, Serialize};

/// When a task runs, given how its dependencies ended.
///
/// The default, [`AllSuccess`](TriggerRule::AllSuccess), is the classic rule: a task runs
/// once every dependency completed, and is skipped as soon as one fails or is skipped.
/// Other rules let a task run past failures (a cleanup step, an error handler) or as soon
/// as one of several sources arrived.
///
/// A task whose rule can no longer be met is skipped, with a reason naming the rule and
/// the dependencies that decided it. A skipped dependency counts as skipped, not as
/// failed: the skip travels on through the rules of the task's own dependents. That
/// holds also for a task skipped because its own dependency failed: in
/// `extract` (fails) → `transform` (skipped) → `publish` (`none_failed`), `publish` runs,
/// and a `one_failed` task after `transform` alone is skipped. (Airflow would mark
/// `transform` "upstream failed" and count it as a failure; to react to a failure, depend
/// on the task that can fail.) A task with no dependencies runs whatever its rule.
///
/// In files the rule is written in snake case: `trigger_rule: one_failed`.
///
/// | rule | runs when | skipped when |
/// |---|---|---|
/// | `all_success` | every dependency completed | one failed or was skipped |
/// | `all_done` | every dependency ended, however | never |
/// | `all_failed` | every dependency failed | one completed or was skipped |
/// | `one_success` | one dependency completed (at once, without waiting for the rest) | all ended and none completed |
/// | `one_failed` | one dependency failed (at once) | all ended and none failed |
/// | `none_failed` | every dependency ended, none failed | one failed |
/// | `none_failed_min_one_success` | every dependency ended, none failed, one completed | one failed, or all ended and none completed |
/// | `always` | at once, without waiting for its dependencies | never |
///
/// A task that starts before all of its dependencies ended (`one_success`, `one_failed`,
/// `always`) can read the outputs of those that completed by then; reading another is an
/// error.
///
/// A map task (see [`MapSpec`](crate::MapSpec)) counts as one dependency: it fails if one
/// of its instances fails (after its retries), and its dependents' rules see that
/// failure. Those that run past it read the map's list of instance results all the same,
/// with `null` where an instance did not complete.
///
/// ```
/// use orch_core::{Decision, DependencyOutcomes, TriggerRule};
///
/// let one_failed = DependencyOutcomes { total: 3, completed: 1, failed: 1, skipped: 0 };
/// assert_eq!(TriggerRule::AllSuccess.decide(one_failed), Decision::Skip);
/// assert_eq!(TriggerRule::OneFailed.decide(one_failed), Decision::Run);
/// assert_eq!(TriggerRule::AllDone.decide(one_failed), Decision::Wait);
/// assert_eq!("none_failed".parse(), Ok(TriggerRule::NoneFailed));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerRule {
    /// Runs once every dependency completed (the default).
    #[default]
    AllSuccess,
    /// Runs once every dependency ended, whatever its status.
    AllDone,
    /// Runs once every dependency failed.
    AllFailed,
    /// Runs as soon as one dependency completed.
    OneSuccess,
    /// Runs as soon as one dependency failed.
    OneFailed,
    /// Runs once every dependency completed or was skipped.
    NoneFailed,
    /// Runs once every dependency completed or was skipped, and at least one completed.
    NoneFailedMinOneSuccess,
    /// Runs at once, without waiting for its dependencies.
    Always,
}

/// How a task's dependencies have ended so far (a dependency still to end counts in
/// `total` only).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DependencyOutcomes {
    /// How many dependencies the task has.
    pub total: u32,
    /// How many completed.
    pub completed: u32,
    /// How many failed.
    pub failed: u32,
    /// How many were skipped.
    pub skipped: u32,
}

impl DependencyOutcomes {
    /// How many dependencies ended (at most `u32::MAX`, however large the counts).
    pub fn ended(&self) -> u32 {
        (self.completed)
            .saturating_add(self.failed)
            .saturating_add(self.skipped)
    }

    /// Whether every dependency ended.
    pub fn all_ended(&self) -> bool {
        self.ended() >= self.total
    }
}

/// What a [`TriggerRule`] makes of a task's [`DependencyOutcomes`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Not decided yet: more dependencies must end.
    Wait,
    /// The task runs.
    Run,
    /// The task is skipped: the rule can no longer be met.
    Skip,
}

impl TriggerRule {
    /// Every rule, in the order of the table above.
    pub const ALL: [TriggerRule; 8] = [
        TriggerRule::AllSuccess,
        TriggerRule::AllDone,
        TriggerRule::AllFailed,
        TriggerRule::OneSuccess,
        TriggerRule::OneFailed,
        TriggerRule::NoneFailed,
        TriggerRule::NoneFailedMinOneSuccess,
        TriggerRule::Always,
    ];

    /// The rule's name as written in files (`all_success`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerRule::AllSuccess => "all_success",
            TriggerRule::AllDone => "all_done",
            TriggerRule::AllFailed => "all_failed",
            TriggerRule::OneSuccess => "one_success",
            TriggerRule::OneFailed => "one_failed",
            TriggerRule::NoneFailed => "none_failed",
            TriggerRule::NoneFailedMinOneSuccess => "none_failed_min_one_success",
            TriggerRule::Always => "always",
        }
    }

    /// Whether the rule waits for every dependency to end before the task runs: all but
    /// `one_success`, `one_failed` and `always`.
    pub fn waits_for_all(self) -> bool {
        !matches!(
            self,
            TriggerRule::OneSuccess | TriggerRule::OneFailed | TriggerRule::Always
        )
    }

    /// Whether this is the default rule, [`TriggerRule::AllSuccess`].
    pub fn is_default(&self) -> bool {
        *self == TriggerRule::AllSuccess
    }

    /// Whether a task with this rule may start before all its dependencies ended
    /// (`one_success`, `one_failed`, `always`).
    pub(crate) fn may_start_early(self) -> bool {
        matches!(
            self,
            TriggerRule::OneSuccess | TriggerRule::OneFailed | TriggerRule::Always
        )
    }

    /// Whether a task with this rule runs to react to failures (`all_failed`,
    /// `one_failed`): when it completes, the failures of its dependencies are handled and
    /// do not fail the workflow, including those that came after it started (the
    /// outcome does not depend on which failure came first).
    pub fn handles_failures(self) -> bool {
        matches!(self, TriggerRule::AllFailed | TriggerRule::OneFailed)
    }

    /// Whether the task runs, is skipped, or waits, given how its dependencies ended so
    /// far. A task with no dependencies always runs.
    pub fn decide(self, outcomes: DependencyOutcomes) -> Decision {
        let DependencyOutcomes {
            total,
            completed,
            failed,
            skipped,
        } = outcomes;
        if total == 0 {
            return Decision::Run;
        }
        let done = outcomes.all_ended();
        let wait_then = |run: bool| match (done, run) {
            (false, _) => Decision::Wait,
            (true, true) => Decision::Run,
            (true, false) => Decision::Skip,
        };
        match self {
            TriggerRule::AllSuccess if failed > 0 || skipped > 0 => Decision::Skip,
            TriggerRule::AllSuccess => wait_then(true),
            TriggerRule::AllDone => wait_then(true),
            TriggerRule::AllFailed if completed > 0 || skipped > 0 => Decision::Skip,
            TriggerRule::AllFailed => wait_then(true),
            TriggerRule::OneSuccess if completed > 0 => Decision::Run,
            TriggerRule::OneSuccess => wait_then(false),
            TriggerRule::OneFailed if failed > 0 => Decision::Run,
            TriggerRule::OneFailed => wait_then(false),
            TriggerRule::NoneFailed if failed > 0 => Decision::Skip,
            TriggerRule::NoneFailed => wait_then(true),
            TriggerRule::NoneFailedMinOneSuccess if failed > 0 => Decision::Skip,
            TriggerRule::NoneFailedMinOneSuccess => wait_then(completed > 0),
            TriggerRule::Always => Decision::Run,
        }
    }
}

impl fmt::Display for TriggerRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A name that is not a [`TriggerRule`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown trigger rule `{}`; expected one of all_success, all_done, all_failed, one_success, one_failed, none_failed, none_failed_min_one_success, always",
    crate::error::shown(.0)
)]
pub struct UnknownTriggerRule(pub String);

impl std::str::FromStr for TriggerRule {
    type Err = UnknownTriggerRule;

    fn from_str(name: &str) -> Result<Self, UnknownTriggerRule> {
        TriggerRule::ALL
            .into_iter()
            .find(|rule| rule.as_str() == name)
            .ok_or_else(|| UnknownTriggerRule(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::{Decision, DependencyOutcomes, TriggerRule};

    /// Outcomes of three dependencies: `c` completed, `f` failed, `s` skipped, the rest
    /// still running.
    fn three(completed: u32, failed: u32, skipped: u32) -> DependencyOutcomes {
        DependencyOutcomes {
            total: 3,
            completed,
            failed,
            skipped,
        }
    }

    /// The name in the error is shown with its control characters escaped.
    #[test]
    fn an_unknown_rule_is_named_with_control_characters_escaped() {
        let error = "all\u{1b}[2J".parse::<TriggerRule>().expect_err("unknown");
        let message = error.to_string();
        assert!(
            message.starts_with("unknown trigger rule `all\\u{1b}[2J`"),
            "{message}"
        );
    }

    /// Counts built by hand may add up past `u32::MAX`: every rule still decides.
    #[test]
    fn counts_past_the_largest_total_decide_without_overflow() {
        let huge = DependencyOutcomes {
            total: 1,
            completed: u32::MAX,
            failed: u32::MAX,
            skipped: 1,
        };
        assert_eq!(huge.ended(), u32::MAX);
        assert_eq!(TriggerRule::AllSuccess.decide(huge), Decision::Skip);
        assert_eq!(TriggerRule::AllFailed.decide(huge), Decision::Skip);
        assert_eq!(TriggerRule::AllDone.decide(huge), Decision::Run);
    }

    /// The rule table: rule x outcomes of three dependencies -> decision.
    #[test]
    fn rule_table() {
        use Decision::{Run as R, Skip as S, Wait as W};
        // Columns: all completed; all failed; all skipped; 2 completed + 1 failed;
        // 2 completed + 1 skipped; 1 failed + 2 skipped; 1 completed, 2 running;
        // 1 failed, 2 running; 1 skipped, 2 running; none ended.
        let columns = [
            three(3, 0, 0),
            three(0, 3, 0),
            three(0, 0, 3),
            three(2, 1, 0),
            three(2, 0, 1),
            three(0, 1, 2),
            three(1, 0, 0),
            three(0, 1, 0),
            three(0, 0, 1),
            three(0, 0, 0),
        ];
        let table: [(TriggerRule, [Decision; 10]); 8] = [
            (TriggerRule::AllSuccess, [R, S, S, S, S, S, W, S, S, W]),
            (TriggerRule::AllDone, [R, R, R, R, R, R, W, W, W, W]),
            (TriggerRule::AllFailed, [S, R, S, S, S, S, S, W, S, W]),
            (TriggerRule::OneSuccess, [R, S, S, R, R, S, R, W, W, W]),
            (TriggerRule::OneFailed, [S, R, S, R, S, R, W, R, W, W]),
            (TriggerRule::NoneFailed, [R, S, R, S, R, S, W, S, W, W]),
            (
                TriggerRule::NoneFailedMinOneSuccess,
                [R, S, S, S, R, S, W, S, W, W],
            ),
            (TriggerRule::Always, [R, R, R, R, R, R, R, R, R, R]),
        ];
        for (rule, expected) in table {
            for (outcomes, want) in columns.iter().zip(expected) {
                assert_eq!(rule.decide(*outcomes), want, "{rule} with {outcomes:?}");
            }
        }
    }

    #[test]
    fn a_task_without_dependencies_runs_whatever_its_rule() {
        for rule in TriggerRule::ALL {
            assert_eq!(rule.decide(DependencyOutcomes::default()), Decision::Run);
        }
    }

    #[test]
    fn names_round_trip_and_unknown_names_are_errors() {
        for rule in TriggerRule::ALL {
            assert_eq!(rule.as_str().parse(), Ok(rule));
            let json = serde_json::to_value(rule).expect("serialises");
            assert_eq!(json, rule.as_str());
        }
        let err = "all_sucess".parse::<TriggerRule>().expect_err("misspelt");
        assert!(err.to_string().contains("`all_sucess`"), "{err}");
    }
}
