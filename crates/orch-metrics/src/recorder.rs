//! [`Recorder`]: counts and duration histograms per task type, across runs.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use orch_core::{EngineEvent, EngineEventKind, TaskStatus, WorkflowResult};

/// Upper bounds (seconds) of the duration histogram's buckets; a last bucket takes the
/// rest. From 100 µs to 5 min, roughly three per decade.
pub const DURATION_BUCKETS: [f64; 19] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0, 300.0,
];

/// A histogram of task durations with the fixed [`DURATION_BUCKETS`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DurationHistogram {
    /// `counts[i]` tasks took at most `DURATION_BUCKETS[i]` seconds (and more than the
    /// bound before); the last entry counts the longer ones.
    pub counts: [u64; DURATION_BUCKETS.len() + 1],
    /// How many durations were recorded.
    pub count: u64,
    /// Their sum, in seconds.
    pub sum: f64,
}

impl DurationHistogram {
    /// Records one duration.
    pub fn record(&mut self, duration: Duration) {
        let secs = duration.as_secs_f64();
        let bucket = DURATION_BUCKETS.partition_point(|&bound| bound < secs);
        self.counts[bucket] += 1;
        self.count += 1;
        self.sum += secs;
    }
}

/// What happened to the tasks of one type, across every run observed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TaskTypeStats {
    /// Tasks started.
    pub started: u64,
    /// Tasks completed.
    pub completed: u64,
    /// Tasks failed (after their retries).
    pub failed: u64,
    /// Failed attempts that were retried.
    pub retried: u64,
    /// Tasks skipped because a dependency failed.
    pub skipped: u64,
    /// Tasks cancelled with their run.
    pub cancelled: u64,
    /// Durations of the tasks that completed or failed.
    pub durations: DurationHistogram,
}

/// Aggregates task outcomes and durations per task type, across runs.
///
/// Feed it the engine's lifecycle events ([`Recorder::observe`], e.g. from a bus
/// subscription on `workflow.>`) or whole results ([`Recorder::record_result`]). With the
/// `metrics-facade` feature it also reports through the `metrics` crate:
/// `orch_tasks_total{task_type, outcome}` (outcome: `started`, `completed`, `failed`,
/// `retried`, `skipped`, `cancelled`) and `orch_task_duration_seconds{task_type}`.
///
/// ```
/// use orch_core::{EngineEvent, EngineEventKind};
/// use orch_metrics::Recorder;
/// use std::time::{Duration, SystemTime};
///
/// let recorder = Recorder::new();
/// let mut event = EngineEvent::new(EngineEventKind::TaskCompleted, "etl".into(), orch_core::RunId::new(), SystemTime::now());
/// event.task_type = Some("load".into());
/// event.duration = Some(Duration::from_millis(30));
/// recorder.observe(&event);
/// let load = recorder.task_type("load").unwrap();
/// assert_eq!(load.completed, 1);
/// assert_eq!(load.durations.count, 1);
/// ```
#[derive(Debug, Default)]
pub struct Recorder {
    by_type: Mutex<HashMap<String, TaskTypeStats>>,
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one lifecycle event into account; workflow events are ignored.
    pub fn observe(&self, event: &EngineEvent) {
        let Some(task_type) = event.task_type.as_deref() else {
            return;
        };
        let outcome = match event.kind {
            EngineEventKind::TaskStarted => Outcome::Started,
            EngineEventKind::TaskCompleted => Outcome::Completed,
            EngineEventKind::TaskFailed => Outcome::Failed,
            EngineEventKind::TaskRetrying => Outcome::Retried,
            EngineEventKind::TaskSkipped => Outcome::Skipped,
            EngineEventKind::TaskCancelled => Outcome::Cancelled,
            _ => return,
        };
        let duration = match outcome {
            Outcome::Completed | Outcome::Failed => event.duration,
            _ => None,
        };
        self.count(task_type, outcome, duration);
    }

    /// Takes a whole run into account (for runs whose events were not observed). The
    /// result of a resumed run holds the runs it continues too: the tasks it kept, and
    /// the attempts its tasks made there.
    pub fn record_result(&self, result: &WorkflowResult) {
        let Some(workflow) = result.tasks.workflow() else {
            return;
        };
        for (task, record) in workflow.tasks().zip(result.tasks.records()) {
            let task_type = task.task_type.as_str();
            if record.attempts > 0 {
                self.count(task_type, Outcome::Started, None);
            }
            for _ in 1..record.attempts {
                self.count(task_type, Outcome::Retried, None);
            }
            let outcome = match record.status {
                TaskStatus::Completed => Outcome::Completed,
                TaskStatus::Failed => Outcome::Failed,
                TaskStatus::Skipped => Outcome::Skipped,
                TaskStatus::Cancelled => Outcome::Cancelled,
                TaskStatus::Pending | TaskStatus::Running => continue,
            };
            let duration = match outcome {
                Outcome::Completed | Outcome::Failed => record.duration(),
                _ => None,
            };
            self.count(task_type, outcome, duration);
        }
    }

    /// The figures of one task type, if any of its tasks was seen.
    pub fn task_type(&self, task_type: &str) -> Option<TaskTypeStats> {
        self.lock().get(task_type).cloned()
    }

    /// Every task type's figures, by type name.
    pub fn snapshot(&self) -> BTreeMap<String, TaskTypeStats> {
        self.lock()
            .iter()
            .map(|(t, stats)| (t.clone(), stats.clone()))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, TaskTypeStats>> {
        self.by_type.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn count(&self, task_type: &str, outcome: Outcome, duration: Option<Duration>) {
        {
            let mut by_type = self.lock();
            let stats = match by_type.get_mut(task_type) {
                Some(stats) => stats,
                None => by_type.entry(task_type.to_owned()).or_default(),
            };
            *outcome.counter(stats) += 1;
            if let Some(duration) = duration {
                stats.durations.record(duration);
            }
        }
        #[cfg(feature = "metrics-facade")]
        {
            let labels = [
                ("task_type", task_type.to_owned()),
                ("outcome", outcome.name().to_owned()),
            ];
            metrics::counter!("orch_tasks_total", &labels).increment(1);
            if let Some(duration) = duration {
                let labels = [("task_type", task_type.to_owned())];
                metrics::histogram!("orch_task_duration_seconds", &labels)
                    .record(duration.as_secs_f64());
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Outcome {
    Started,
    Completed,
    Failed,
    Retried,
    Skipped,
    Cancelled,
}

impl Outcome {
    fn counter(self, stats: &mut TaskTypeStats) -> &mut u64 {
        match self {
            Self::Started => &mut stats.started,
            Self::Completed => &mut stats.completed,
            Self::Failed => &mut stats.failed,
            Self::Retried => &mut stats.retried,
            Self::Skipped => &mut stats.skipped,
            Self::Cancelled => &mut stats.cancelled,
        }
    }

    #[cfg(feature = "metrics-facade")]
    fn name(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Retried => "retried",
            Self::Skipped => "skipped",
            Self::Cancelled => "cancelled",
        }
    }
}
