//! Crash test with real processes: a helper process runs a 1,000-task durable workflow
//! (and a map task of 200 instances beside it) and is killed with SIGKILL at random
//! moments, then started again on the same run id,
//! until a last start runs it to its end. After every kill the journal must load; across
//! all starts, no task whose completion the journal held ever runs again, every task
//! completes exactly once as far as the journal knows, and the final statuses are those
//! of a run that was never interrupted.
//!
//! What a killed start leaves in the journal is read once nothing it did can still land
//! there. For a file journal that is as soon as the process is gone: it writes its own
//! lines. A PostgreSQL server, though, goes on with the statement a helper sent just
//! before it died and may commit it after the kill: a completion committed whose
//! acknowledgement nobody received. The journal then holds it (and a restart does not
//! run that task again), so the test waits until the server has ended the killed
//! helper's session before it reads what the start left.

#![allow(clippy::unwrap_used)] // in tests, a failed unwrap is a failed test

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use orch_core::{RunId, TaskStatus};
use orch_engine::{FileJournal, Journal};

fn helper(backend: &str, target: &str, run: &str, trial: usize, side: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_orch-engine-crash-run"));
    command
        .args([backend, target, run, &trial.to_string()])
        .arg(side)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Runs the helper to its end; its `task status` lines.
fn run_to_end(mut command: Command) -> BTreeMap<String, String> {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "the helper failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let (id, status) = line.split_once(' ').unwrap();
            (id.to_owned(), status.to_owned())
        })
        .collect()
}

/// The statuses of a run of the same workflow that nobody interrupted, how long that
/// run took, and how long a start that has nothing left to run takes.
fn uninterrupted() -> (BTreeMap<String, String>, Duration, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    let side = dir.path().join("side");
    let start = || helper("file", journal.to_str().unwrap(), "reference", 0, &side);
    let started = Instant::now();
    let statuses = run_to_end(start());
    let took = started.elapsed();
    assert_eq!(
        statuses.len(),
        1000 + 2 + 200,
        "the tasks, and the map's instances"
    );
    let started = Instant::now();
    assert_eq!(run_to_end(start()), statuses);
    (statuses, took, started.elapsed())
}

/// The completed tasks the journal holds for `run`; loading must succeed.
fn completed_in(
    journal: &dyn Journal,
    run: &RunId,
    rt: &tokio::runtime::Runtime,
) -> HashSet<String> {
    let Some(loaded) = rt
        .block_on(journal.load(run))
        .unwrap_or_else(|e| panic!("corrupt journal: {e}"))
    else {
        return HashSet::new();
    };
    loaded
        .records()
        .iter()
        .filter(|(_, record)| record.status == TaskStatus::Completed)
        .map(|(id, _)| id.to_string())
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// `trials` starts killed at random moments, then one run to the end; checks every
/// promise of the module docs. `settle` returns once the start that just ended can no
/// longer change the journal.
fn kill_and_restart(
    backend: &str,
    target: &str,
    rt: &tokio::runtime::Runtime,
    journal: &dyn Journal,
    trials: usize,
    settle: &dyn Fn(),
) {
    let seed = fastrand::u64(..);
    println!("seed {seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    // Kills spread so that the starts, together, cover about the whole run.
    let (reference, took, idle) = uninterrupted();
    let (idle, work) = (
        idle.as_micros() as u64,
        took.saturating_sub(idle).as_micros() as u64,
    );
    let spread = (work * 3 / trials as u64).max(1_000);
    println!("uninterrupted run: {took:?}; a start with nothing to run: {idle} us");
    let dir = tempfile::tempdir().unwrap();
    let side = dir.path().join("side");
    let run = RunId::parse("crash").unwrap();
    // What the journal held after each start (index 0: before the first).
    let mut held = vec![HashSet::new()];
    let mut killed = 0;
    for trial in 1..=trials {
        let mut child = helper(backend, target, run.as_str(), trial, &side)
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(idle / 2 + rng.u64(0..spread)));
        // Only the process this test started; it may have ended already.
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            killed += 1;
        }
        child.wait().unwrap();
        settle();
        let now = completed_in(journal, &run, rt);
        let before = held.last().unwrap();
        assert!(
            before.is_subset(&now),
            "trial {trial}: the journal lost completions"
        );
        held.push(now);
    }
    let counts: Vec<usize> = held.iter().map(HashSet::len).collect();
    println!(
        "{killed} of {trials} starts were killed before they ended; completions held after each: {counts:?}"
    );
    // A start killed after it journaled part of the run, not all: else what follows
    // checks only runs that ended by themselves, or never began.
    let completions = reference.values().filter(|s| *s == "completed").count();
    assert!(
        counts.windows(2).any(|w| w[1] > w[0] && w[1] < completions),
        "no start was killed part way through the run: the test proved nothing"
    );
    let last = trials + 1;
    let statuses = run_to_end(helper(backend, target, run.as_str(), last, &side));
    held.push(completed_in(journal, &run, rt));
    assert_eq!(
        statuses, reference,
        "final statuses differ from an uninterrupted run"
    );

    // Each line of the side file is a handler that completed: `TRIAL TASK`.
    let side = fs::read_to_string(&side).unwrap();
    let mut journaled_runs: BTreeMap<&str, usize> = BTreeMap::new();
    let mut lost = vec![0; last + 1];
    for line in side.lines() {
        let (trial, task) = line.split_once(' ').unwrap();
        let trial: usize = trial.parse().unwrap();
        assert!(
            !held[trial - 1].contains(task),
            "`{task}` ran again in start {trial} though the journal held its completion"
        );
        if held[trial].contains(task) {
            *journaled_runs.entry(task).or_default() += 1;
        } else {
            lost[trial] += 1;
        }
    }
    for (task, status) in &statuses {
        // The map task runs no handler of its own: its instances do.
        let expected = usize::from(status == "completed" && task != "m");
        assert_eq!(
            journaled_runs.get(task.as_str()).copied().unwrap_or(0),
            expected,
            "completions of `{task}` that the journal recorded"
        );
    }
    // Completions whose commit was under way at the kill: they ran again later.
    println!("completions lost to each kill: {lost:?}");
    if backend == "file" {
        // The helper writes each pass's completions as the pass ends, map instances
        // included: a kill loses at most those of its running handlers (8 at a time).
        let most = lost.iter().max().copied().unwrap_or(0);
        assert!(most <= 8, "a kill lost {most} completions: {lost:?}");
    }
    assert_eq!(lost[last], 0, "the start that ran to the end lost nothing");
}

#[test]
fn killed_file_journal_runs_resume_without_running_journaled_tasks_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal");
    let journal = FileJournal::new(&path).unwrap();
    let rt = runtime();
    // The helper writes the journal itself: once it is gone, nothing more arrives.
    kill_and_restart("file", path.to_str().unwrap(), &rt, &journal, 20, &|| ());
}

#[cfg(feature = "postgres")]
#[test]
fn killed_postgres_journal_runs_resume_without_running_journaled_tasks_again() {
    use orch_engine::journal::PgJournal;

    let Some(server) = common::postgres_server() else {
        return;
    };
    let config = server.connection_string();
    let rt = runtime();
    let journal = rt.block_on(PgJournal::connect(&config)).unwrap();
    let sessions = rt.block_on(HelperSessions::connect(&config));
    let helper_config = format!("{config} application_name={HELPER_SESSION}");
    kill_and_restart("postgres", &helper_config, &rt, &journal, 5, &|| {
        rt.block_on(sessions.wait_until_ended());
    });
}

/// The name the helper's PostgreSQL session goes by (`application_name`).
#[cfg(feature = "postgres")]
const HELPER_SESSION: &str = "orch-crash-run";

/// A connection of the test's own that watches the helper's sessions on the server.
#[cfg(feature = "postgres")]
struct HelperSessions(tokio_postgres::Client);

#[cfg(feature = "postgres")]
impl HelperSessions {
    async fn connect(config: &str) -> Self {
        let (client, connection) = tokio_postgres::connect(config, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        Self(client)
    }

    /// Returns once the server has ended every session of a helper: the statements a
    /// killed helper sent are then committed or rolled back, for good. Gives up after a
    /// minute (a server that never notices a closed connection is a failure too).
    async fn wait_until_ended(&self) {
        let give_up = Instant::now() + Duration::from_secs(60);
        loop {
            let open: i64 = self
                .0
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                    &[&HELPER_SESSION],
                )
                .await
                .unwrap()
                .get(0);
            if open == 0 {
                return;
            }
            assert!(
                Instant::now() < give_up,
                "the server kept a killed helper's session open for a minute"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

#[cfg(not(feature = "postgres"))]
#[test]
fn killed_postgres_journal_runs_resume_without_running_journaled_tasks_again() {
    assert_ne!(
        std::env::var("CI").as_deref(),
        Ok("true"),
        "CI must build orch-engine with its `postgres` feature to run the PostgreSQL crash test"
    );
    println!("skipped: orch-engine was built without its `postgres` feature");
}
