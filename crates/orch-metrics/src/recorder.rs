//! [`Recorder`]: counts and duration histograms per task type, across runs.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use orch_core::{
    EngineEvent, EngineEventKind, MapSpec, RunId, TaskId, TaskStatus, Workflow, WorkflowResult,
};

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
    /// Their sum, kept exactly: the same whatever order the durations came in.
    pub sum: Duration,
}

impl DurationHistogram {
    /// Records one duration.
    pub fn record(&mut self, duration: Duration) {
        let secs = duration.as_secs_f64();
        let bucket = DURATION_BUCKETS.partition_point(|&bound| bound < secs);
        self.counts[bucket] += 1;
        self.count += 1;
        self.sum = self.sum.saturating_add(duration);
    }
}

/// What happened to the tasks of one type, across every run observed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TaskTypeStats {
    /// Tasks started (a map task, and each of its instances).
    pub started: u64,
    /// Tasks completed.
    pub completed: u64,
    /// Tasks failed (after their retries).
    pub failed: u64,
    /// Failed attempts followed by a retry: counted from events when the retry is
    /// announced (its pause begins), from a result when it ran. The two differ for a
    /// retry that never ran (its run cancelled, or its map stopped, during the pause).
    /// A result counts each attempt after a task's first, as its record does not say
    /// why it came: in a resumed run, a task that ran again (one that had failed, been
    /// cut short or cancelled, or whose definition changed) counts as retried too.
    pub retried: u64,
    /// Tasks skipped (after a failure upstream, by a handler's choice, a branch not
    /// taken or a trigger rule that could not be met).
    pub skipped: u64,
    /// Tasks cancelled with their run.
    pub cancelled: u64,
    /// Durations of the tasks that completed or failed.
    pub durations: DurationHistogram,
}

/// Aggregates task outcomes and durations per task type, across runs.
///
/// Feed it the engine's lifecycle events ([`Recorder::observe`], e.g. from a bus
/// subscription on `workflow.>`) or whole results ([`Recorder::record_result`]): both
/// give the same figures for a run that resumes none (the events of a resumed run tell
/// of the work done in it, and of the skips it keeps, which it announces again so that
/// its watchers see them, so those count again; its result tells of the runs it
/// continues too), but for `retried`
/// when a retry announced never ran (see [`TaskTypeStats::retried`]). A map task's
/// instances count as tasks of its type;
/// the map task counts too, but its duration, which spans its instances', is not
/// recorded when it had instances (as in a run's own metrics). With the
/// `metrics-facade` feature it also reports through the `metrics` crate:
/// `orch_tasks_total{task_type, outcome}` (outcome: `started`, `completed`, `failed`,
/// `retried`, `skipped`, `cancelled`) and `orch_task_duration_seconds{task_type}`.
/// Those go to the process's one `metrics` recorder, whichever `Recorder` counts them:
/// two `Recorder`s fed the same runs (one from events, one from results, say) report
/// every figure twice.
///
/// What it keeps grows with the task types it sees, not with the runs: of runs under
/// way it notes only which maps had instances, for at most 1,024 runs at once.
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
    /// Map tasks of runs under way whose instances were seen: their own end brings no
    /// duration. A run's entries go with its last such map's end, or with its
    /// `WorkflowFinished` event, or to make room past [`RUNS_NOTED`] runs.
    mapped: Mutex<HashMap<RunKey, MapNote>>,
}

/// A run, by its id and its workflow's: runs of two workflows may share an id (each
/// journal has its own).
type RunKey = (RunId, Arc<str>);

/// The run `event` belongs to.
fn run_key(event: &EngineEvent) -> RunKey {
    (event.run_id.clone(), Arc::clone(&event.workflow_id))
}

/// The maps of one run whose instances were seen, and when one of them was last seen.
#[derive(Debug)]
struct MapNote {
    maps: HashSet<TaskId>,
    seen: SystemTime,
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one lifecycle event into account; workflow events are not counted.
    pub fn observe(&self, event: &EngineEvent) {
        if event.kind == EngineEventKind::WorkflowFinished {
            lock(&self.mapped).remove(&run_key(event));
            return;
        }
        let Some(task_type) = event.task_type.as_deref() else {
            return;
        };
        let task_id = event.task_id.as_ref();
        if event.map_item.is_some()
            && let Some((map, _)) = task_id.and_then(|id| MapSpec::parse_instance_id(id))
        {
            // Looked up first: a map's instances are many, its note is made once.
            let mut mapped = lock(&self.mapped);
            let key = run_key(event);
            match mapped.get_mut(&key) {
                Some(note) => {
                    note.seen = note.seen.max(event.timestamp);
                    if !note.maps.contains(map) {
                        note.maps.insert(TaskId::from(map));
                    }
                }
                None => {
                    // Notes left by runs whose ends never came (a run dropped during its
                    // map, a lossy subscription) must not pile up: past the limit the
                    // one seen longest ago goes (that map's end, if it comes, records
                    // its duration).
                    if mapped.len() >= RUNS_NOTED {
                        let oldest = (mapped.iter().min_by_key(|(_, note)| note.seen))
                            .map(|(run, _)| run.clone());
                        oldest.map(|run| mapped.remove(&run));
                    }
                    let note = MapNote {
                        maps: HashSet::from([map.into()]),
                        seen: event.timestamp,
                    };
                    mapped.insert(key, note);
                }
            }
        }
        let outcome = match event.kind {
            EngineEventKind::TaskStarted => Outcome::Started,
            EngineEventKind::TaskCompleted => Outcome::Completed,
            EngineEventKind::TaskFailed => Outcome::Failed,
            EngineEventKind::TaskRetrying => Outcome::Retried,
            EngineEventKind::TaskSkipped => Outcome::Skipped,
            EngineEventKind::TaskCancelled => Outcome::Cancelled,
            _ => return,
        };
        // A map task's end, whatever it is, ends the note of its instances.
        let ends = !matches!(outcome, Outcome::Started | Outcome::Retried);
        let spans_instances = ends
            && event.map_item.is_none()
            && task_id.is_some_and(|id| {
                let mut mapped = lock(&self.mapped);
                let key = run_key(event);
                let Some(note) = mapped.get_mut(&key) else {
                    return false;
                };
                let noted = note.maps.remove(id.as_str());
                // Gone with its last map too: a recorder fed only task events (or one
                // that lost a run's end) would keep it for ever.
                if note.maps.is_empty() {
                    mapped.remove(&key);
                }
                noted
            });
        let duration = match outcome {
            Outcome::Completed | Outcome::Failed => event.duration.filter(|_| !spans_instances),
            _ => None,
        };
        self.count(task_type, outcome, duration);
    }

    /// Takes a whole run into account (for runs whose events were not observed). The
    /// result of a resumed run holds the runs it continues too: the tasks it kept, and
    /// the attempts its tasks made there (not those of the instances of a map task that
    /// ran again: their records count this run's attempts only).
    ///
    /// The task types come from the workflow the result was run from: a result read back
    /// from JSON knows only its tasks' ids, and needs [`Recorder::record_result_with`].
    pub fn record_result(&self, result: &WorkflowResult) {
        if let Some(workflow) = result.tasks.workflow() {
            self.record_result_with(result, workflow);
        }
    }

    /// [`Recorder::record_result`] for a result of `workflow` (one read back from JSON,
    /// say); records of ids `workflow` does not have are left out.
    pub fn record_result_with(&self, result: &WorkflowResult, workflow: &Workflow) {
        let map_of = |id: &str| {
            let (map, _) = MapSpec::parse_instance_id(id)?;
            workflow.get(map).filter(|task| task.map.is_some())
        };
        // Map tasks whose instances have records: their own spans them.
        let mapped: HashSet<&str> = (result.tasks.ids())
            .filter(|id| workflow.get(id).is_none())
            .filter_map(|id| map_of(id).map(|map| map.task_id.as_str()))
            .collect();
        for (id, record) in result.tasks.iter() {
            let (task_type, spans_instances) = match workflow.get(id) {
                Some(task) => (task.task_type.as_str(), mapped.contains(id.as_str())),
                None => match map_of(id) {
                    Some(map) => (map.task_type.as_str(), false),
                    None => continue,
                },
            };
            // Started as its `TaskStarted` event says: with a start time (a result taken
            // from the cache has no attempt of its own, yet started).
            if record.attempts > 0 || record.start_time.is_some() {
                self.count(task_type, Outcome::Started, None);
            }
            // A map task's attempt count is its instances' (their retries count there).
            let retries = if spans_instances {
                0
            } else {
                record.attempts.saturating_sub(1)
            };
            if retries > 0 {
                // At once: the count comes from the record, however large.
                self.count_with(task_type, Outcome::Retried, u64::from(retries), None);
            }
            let outcome = match record.status {
                TaskStatus::Completed => Outcome::Completed,
                TaskStatus::Failed => Outcome::Failed,
                TaskStatus::Skipped => Outcome::Skipped,
                TaskStatus::Cancelled => Outcome::Cancelled,
                TaskStatus::Pending | TaskStatus::Running => continue,
            };
            let duration = match outcome {
                Outcome::Completed | Outcome::Failed if !spans_instances => record.duration(),
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
        lock(&self.by_type)
    }

    fn count(&self, task_type: &str, outcome: Outcome, duration: Option<Duration>) {
        self.count_with(task_type, outcome, 1, duration);
    }

    fn count_with(
        &self,
        task_type: &str,
        outcome: Outcome,
        times: u64,
        duration: Option<Duration>,
    ) {
        {
            let mut by_type = self.lock();
            let stats = match by_type.get_mut(task_type) {
                Some(stats) => stats,
                None => by_type.entry(task_type.to_owned()).or_default(),
            };
            let counter = outcome.counter(stats);
            *counter = counter.saturating_add(times);
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
            metrics::counter!("orch_tasks_total", &labels).increment(times);
            if let Some(duration) = duration {
                let labels = [("task_type", task_type.to_owned())];
                metrics::histogram!("orch_task_duration_seconds", &labels)
                    .record(duration.as_secs_f64());
            }
        }
    }
}

/// The most runs whose maps' instances a recorder keeps notes of at once.
const RUNS_NOTED: usize = 1024;

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs whose ends never come (dropped during a map) leave a bounded number of
    /// notes, and a run whose instances are still seen keeps its note among them.
    #[test]
    fn notes_of_runs_whose_ends_never_come_are_bounded() {
        let recorder = Recorder::new();
        let instance_started = |run: &RunId, second: u64| {
            let at = SystemTime::UNIX_EPOCH + Duration::from_secs(second);
            let mut event =
                EngineEvent::new(EngineEventKind::TaskStarted, "w".into(), run.clone(), at);
            event.task_id = Some("sq[0]".into());
            event.task_type = Some("square".into());
            event.map_item = Some(0);
            event
        };
        let live = RunId::new();
        let mut stale = Vec::new();
        for second in 0..3 * RUNS_NOTED as u64 {
            stale.push(RunId::new());
            recorder.observe(&instance_started(&stale[stale.len() - 1], second));
            recorder.observe(&instance_started(&live, second));
        }
        // The notes kept: the live run's, and those of the latest stale runs.
        let mapped = lock(&recorder.mapped);
        assert_eq!(mapped.len(), RUNS_NOTED);
        let noted = |run: &RunId| mapped.contains_key(&(run.clone(), "w".into()));
        assert!(noted(&live));
        let latest = &stale[stale.len() - (RUNS_NOTED - 1)..];
        assert!(latest.iter().all(noted));
        drop(mapped);
        let started = recorder.task_type("square").map(|s| s.started);
        assert_eq!(started, Some(6 * RUNS_NOTED as u64));
    }

    /// A map's note goes with its end, and its run's entry with it, though the run's
    /// own end is not observed (a recorder fed from task events only).
    #[test]
    fn a_maps_note_goes_with_its_end_without_the_runs_end() {
        let recorder = Recorder::new();
        let run = RunId::new();
        let event = |kind, id: &str, item: Option<u32>| {
            let mut event = EngineEvent::new(
                kind,
                "w".into(),
                run.clone(),
                std::time::SystemTime::UNIX_EPOCH,
            );
            event.task_id = Some(id.into());
            event.task_type = Some("square".into());
            event.map_item = item;
            event
        };
        recorder.observe(&event(EngineEventKind::TaskStarted, "sq", None));
        recorder.observe(&event(EngineEventKind::TaskCompleted, "sq[0]", Some(0)));
        assert_eq!(lock(&recorder.mapped).len(), 1);
        recorder.observe(&event(EngineEventKind::TaskCompleted, "sq", None));
        assert!(lock(&recorder.mapped).is_empty());
    }

    /// Two workflows' runs may share a run id (each journal has its own): the end of
    /// one does not take the other's note of its map, whose end then records no span.
    #[test]
    fn runs_of_two_workflows_under_one_run_id_keep_their_own_notes() {
        let recorder = Recorder::new();
        let run = RunId::new();
        let event = |kind, workflow: &str, id: Option<&str>, item: Option<u32>| {
            let at = SystemTime::UNIX_EPOCH;
            let mut event = EngineEvent::new(kind, workflow.into(), run.clone(), at);
            event.task_id = id.map(TaskId::from);
            event.task_type = id.map(|_| "square".into());
            event.map_item = item;
            event.duration = Some(Duration::from_secs(600));
            event
        };
        let instance = Some("sq[0]");
        recorder.observe(&event(
            EngineEventKind::TaskCompleted,
            "etl",
            instance,
            Some(0),
        ));
        recorder.observe(&event(
            EngineEventKind::WorkflowFinished,
            "reports",
            None,
            None,
        ));
        recorder.observe(&event(
            EngineEventKind::TaskCompleted,
            "etl",
            Some("sq"),
            None,
        ));
        let square = recorder.task_type("square").expect("seen");
        assert_eq!((square.completed, square.durations.count), (2, 1));
    }
}
