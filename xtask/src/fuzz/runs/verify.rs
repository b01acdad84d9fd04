//! Checking what a run did against its plan and the reference model.

use orch_core::{EngineEvent, EngineEventKind, TaskStatus, WorkflowResult, WorkflowStatus};

use super::Violation;
use super::harness::Observed;
use super::model::{Kind, Own, RunPlan, own};

fn fail(kind: &str, message: String) -> Result<(), Violation> {
    Err(Violation::new(kind, message, None))
}

/// Checks what a run did against the plan.
pub(super) fn verify(plan: &RunPlan, observed: &Observed) -> Result<(), Violation> {
    let valid = plan.valid();
    let Some(result) = &observed.result else {
        let stalled = plan.stalled.is_some();
        let message = match observed.cancelled_ms {
            Some(at) => format!(
                "the run was cancelled at {at} ms and had not returned {} ms later (grace period {} ms)",
                observed.returned_ms - at,
                plan.grace_ms
            ),
            None => format!(
                "the run had not returned after {} ms (virtual)",
                observed.returned_ms
            ),
        };
        return Err(Violation::new(
            "run never returned",
            message,
            (stalled && observed.cancelled_ms.is_some()).then_some(4),
        ));
    };
    let result = match (result, valid) {
        (Ok(result), true) => result,
        (Err(_), false) => return Ok(()),
        (Ok(_), false) => {
            return fail(
                "validation",
                "validation accepted an invalid workflow".into(),
            );
        }
        // A runtime without a time driver refuses timers with its typed error.
        (Err(orch_engine::RunError::NoTimer { .. }), true) if !plan.timer && plan.needs_timer() => {
            return Ok(());
        }
        (Err(errors), true) => {
            return fail(
                "validation",
                format!("validation refused a valid workflow: {errors}"),
            );
        }
    };
    if let Some(at) = observed.cancelled_ms
        && observed.returned_ms > at + plan.grace_ms + 2
    {
        let late = observed.returned_ms - at;
        let known = plan.stalled.is_some().then_some(4);
        return Err(Violation::new(
            "cancel",
            format!(
                "the run returned {late} ms after its cancellation (grace period {} ms)",
                plan.grace_ms
            ),
            known,
        ));
    }
    let ids: Vec<&str> = result.tasks.ids().map(|id| id.as_str()).collect();
    if ids != plan.tasks.iter().map(|t| t.id.as_str()).collect::<Vec<_>>() {
        return fail(
            "records",
            format!("the result's records are {ids:?}, not one per task in order"),
        );
    }
    // Cancelled before its first poll: nothing may start.
    if plan.cancel_at() == Some(0)
        && let Some((id, record)) = (result.tasks.iter())
            .find(|(_, r)| r.status != TaskStatus::Cancelled || r.attempts != 0)
    {
        return fail(
            "cancelled before it started",
            format!(
                "task {id} is {} after {} attempt(s), though the run was cancelled before it started",
                record.status, record.attempts
            ),
        );
    }
    let status = |id: &str| result.tasks.get(id).map(|r| r.status);
    // By the harness, or by a `cancels` handler (one that completed cancelled the run).
    let cancelled = observed.cancelled_ms.is_some()
        || plan.tasks.iter().any(|t| {
            matches!(t.kind, Kind::Cancels(_)) && status(&t.id) == Some(TaskStatus::Completed)
        });
    let unknown = !plan.timer && plan.needs_timer();
    let expected = expectations(plan);
    for (t, expect) in plan.tasks.iter().zip(&expected) {
        let record = &result.tasks[t.id.as_str()];
        let deps: Vec<TaskStatus> = t.after.iter().filter_map(|d| status(d)).collect();
        let says = |what: &str| {
            format!(
                "task {} ({}) is {} after {} attempt(s) {what}; dependencies {deps:?}",
                t.id,
                t.kind.name(),
                record.status,
                record.attempts
            )
        };
        if !record.status.is_finished() {
            return fail("not finished", says("when the run returned"));
        }
        let failed_dependency = deps
            .iter()
            .any(|s| matches!(s, TaskStatus::Failed | TaskStatus::Skipped));
        if (record.status == TaskStatus::Skipped) != failed_dependency {
            return fail(
                "skips",
                says("(skipped exactly when a dependency failed or was skipped)"),
            );
        }
        let ran = matches!(record.status, TaskStatus::Completed | TaskStatus::Failed);
        if ran && deps.iter().any(|s| *s != TaskStatus::Completed) {
            return fail("order", says("though not every dependency completed"));
        }
        let most = u64::from(t.retries) + 1;
        let attempts = u64::from(record.attempts);
        if (record.status == TaskStatus::Skipped && attempts != 0)
            || (ran && !(1..=most).contains(&attempts))
            || attempts > most
        {
            return fail("attempts", says(&format!("(at most {most})")));
        }
        if unknown {
            continue;
        }
        let mine = own(t);
        let matches = match (cancelled, expect, record.status) {
            (false, Expect::Completed(a), TaskStatus::Completed) => *a == attempts,
            (false, Expect::Failed(a), TaskStatus::Failed) => a.is_none_or(|a| a == attempts),
            (false, Expect::Skipped, TaskStatus::Skipped) | (false, Expect::Unknown, _) => true,
            (false, _, _) => false,
            (true, _, TaskStatus::Completed) => {
                matches!(mine, Own::Succeeds { .. } | Own::Either)
                    || matches!(t.kind, Kind::SlowCancel(_))
            }
            (true, _, TaskStatus::Failed) => {
                matches!(mine, Own::Fails { .. } | Own::Either)
                    || matches!(t.kind, Kind::DropPanic(_))
            }
            (true, _, _) => true,
        };
        if !matches {
            return fail(
                "status",
                says(&format!(
                    "where the reference expects {expect:?} (own handler: {mine:?}, cancelled: {cancelled})"
                )),
            );
        }
    }
    let any = |s: TaskStatus| result.tasks.records().iter().any(|r| r.status == s);
    let derived = if any(TaskStatus::Cancelled) {
        WorkflowStatus::Cancelled
    } else if any(TaskStatus::Failed) {
        WorkflowStatus::Failed
    } else {
        WorkflowStatus::Completed
    };
    if result.status != derived && !(cancelled && result.status == WorkflowStatus::Cancelled) {
        return fail(
            "run status",
            format!("the run is {} but its tasks say {derived}", result.status),
        );
    }
    if let Some(events) = &observed.events {
        check_events(result, events)?;
    }
    if let Some(start) = &observed.past_a_limit {
        return fail("limits", start.clone());
    }
    Ok(())
}

/// What the reference model expects of each task in an uncancelled run.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    Completed(u64),
    Failed(Option<u64>),
    Skipped,
    Unknown,
    Never,
}

fn expectations(plan: &RunPlan) -> Vec<Expect> {
    let mut expect = vec![Expect::Unknown; plan.tasks.len()];
    let Some(order) = plan.order() else {
        return expect;
    };
    let index = plan.index();
    for i in order {
        let t = &plan.tasks[i];
        let deps: Vec<Expect> = t
            .after
            .iter()
            .filter_map(|d| index.get(d.as_str()))
            .map(|&d| expect[d])
            .collect();
        expect[i] = if deps
            .iter()
            .any(|e| matches!(e, Expect::Failed(_) | Expect::Skipped))
        {
            Expect::Skipped
        } else if deps.contains(&Expect::Unknown) {
            Expect::Unknown
        } else if deps.contains(&Expect::Never) {
            Expect::Never
        } else {
            match own(t) {
                Own::Succeeds { attempts } => Expect::Completed(attempts),
                Own::Fails { attempts } => Expect::Failed(attempts),
                Own::Either => Expect::Unknown,
                Own::Never => Expect::Never,
            }
        };
    }
    expect
}

/// A reading subscriber saw the run start and finish once, and one final event per task
/// that matches its record.
fn check_events(result: &WorkflowResult, events: &[EngineEvent]) -> Result<(), Violation> {
    let count = |kind: EngineEventKind| events.iter().filter(|e| e.kind == kind).count();
    if count(EngineEventKind::WorkflowStarted) != 1 || count(EngineEventKind::WorkflowFinished) != 1
    {
        return fail(
            "events",
            format!(
                "the run announced its start {} and its end {} times",
                count(EngineEventKind::WorkflowStarted),
                count(EngineEventKind::WorkflowFinished)
            ),
        );
    }
    for (id, record) in result.tasks.iter() {
        let finals: Vec<EngineEventKind> = events
            .iter()
            .filter(|e| e.kind.is_terminal() && e.task_id.as_ref() == Some(id))
            .map(|e| e.kind)
            .collect();
        let expected = match record.status {
            TaskStatus::Completed => EngineEventKind::TaskCompleted,
            TaskStatus::Failed => EngineEventKind::TaskFailed,
            TaskStatus::Skipped => EngineEventKind::TaskSkipped,
            _ => EngineEventKind::TaskCancelled,
        };
        if finals != [expected] {
            return fail(
                "events",
                format!(
                    "task {id} is {} but its final events were {finals:?}",
                    record.status
                ),
            );
        }
    }
    Ok(())
}
