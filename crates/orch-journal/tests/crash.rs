//! Crash test with real processes: a writer process appends to a file journal and is
//! killed with SIGKILL at random moments, then restarted on the same run. After every
//! kill the journal must load, hold each task at most once and in order, and hold every
//! batch the writer had seen committed. While a writer runs, no other process may open
//! its run; once it is killed, one may.

#![allow(clippy::unwrap_used)] // in tests, a failed unwrap is a failed test

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod common;

use common::block_on;
use orch_core::{RunId, TaskStatus};
use orch_journal::{FileJournal, Journal, JournalError, RunStatus};

const TASKS: usize = 1000;

/// The task numbers the journal holds, in order, after checking it loads. A writer killed
/// between creating the run's file and writing its first line leaves a run with no head,
/// which holds nothing (opening it starts it afresh).
fn recorded(journal: &FileJournal, run: &RunId) -> Vec<usize> {
    let loaded = match block_on(journal.load(run)) {
        Ok(Some(loaded)) => loaded,
        Ok(None) | Err(JournalError::HeadMissing { .. }) => return Vec::new(),
        Err(e) => panic!("{e}"),
    };
    loaded
        .records()
        .iter()
        .map(|(id, record)| {
            assert_eq!(record.status, TaskStatus::Completed);
            id.strip_prefix('t')
                .and_then(|n| n.parse().ok())
                .expect("a task of the test")
        })
        .collect()
}

/// The highest task number the writer acknowledged as committed.
fn last_ack(dir: &Path) -> Option<usize> {
    let acks = fs::read_to_string(dir.join("acks")).unwrap_or_default();
    acks.lines().filter_map(|l| l.parse().ok()).max()
}

fn writer(dir: &Path, durability: &str, pause_us: u64) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_orch-journal-crash-writer"));
    command.arg(dir).args([
        "crash",
        &TASKS.to_string(),
        durability,
        &pause_us.to_string(),
    ]);
    command
}

/// Runs `trials` writers, each killed after a random delay of up to `max_delay_ms`;
/// writers pause up to `pause_us` between batches.
fn kill_at_random_moments(durability: &str, trials: usize, max_delay_ms: u64, pause_us: u64) {
    let dir = tempfile::tempdir().unwrap();
    let journal_dir = dir.path().join("journal");
    let run = RunId::parse("crash").unwrap();
    let mut seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
        | 1;
    println!("{durability}: seed {seed}");
    let mut random = move |below: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % below
    };
    let (mut killed_midway, mut acked_before_kill) = (0, 0);
    let mut progress = Vec::new();
    for trial in 0..trials {
        let mut child = writer(&journal_dir, durability, pause_us).spawn().unwrap();
        std::thread::sleep(Duration::from_micros(random(max_delay_ms * 1000)));
        child.kill().unwrap();
        let status = child.wait().unwrap();
        let journal = FileJournal::new(&journal_dir).unwrap();
        let tasks = recorded(&journal, &run);
        assert_eq!(
            tasks,
            (0..tasks.len()).collect::<Vec<_>>(),
            "trial {trial}: not a prefix of the run, in order, once each"
        );
        if let Some(acked) = last_ack(&journal_dir) {
            assert!(
                acked < tasks.len(),
                "trial {trial}: task {acked} was committed but is not in the journal"
            );
            acked_before_kill += usize::from(acked + 1 < TASKS);
        }
        killed_midway += usize::from(!status.success() && tasks.len() < TASKS);
        progress.push(tasks.len());
    }
    println!("{durability}: tasks recorded after each kill: {progress:?}");
    assert!(
        killed_midway > 0,
        "no trial was killed while writing: the test proved nothing"
    );
    assert!(
        acked_before_kill > 0,
        "no trial saw a commit before it was killed midway: what was committed went unchecked"
    );
    // Left alone, the writer completes the run.
    let status = writer(&journal_dir, durability, 0).status().unwrap();
    assert!(status.success());
    let journal = FileJournal::new(&journal_dir).unwrap();
    assert_eq!(recorded(&journal, &run), (0..TASKS).collect::<Vec<_>>());
    let loaded = block_on(journal.load(&run)).unwrap().unwrap();
    assert_eq!(loaded.status(), RunStatus::Completed);
}

#[test]
fn a_killed_writer_leaves_a_prefix_of_its_run_process_durability() {
    kill_at_random_moments("process", 20, 8, 300);
}

#[test]
fn a_killed_writer_leaves_a_prefix_of_its_run_power_durability() {
    kill_at_random_moments("power", 10, 40, 0);
}

#[test]
fn a_run_is_refused_while_a_writer_process_holds_it_and_free_once_it_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let journal_dir = dir.path().join("journal");
    let run = RunId::parse("crash").unwrap();
    // Pauses of up to 0.2 s between batches keep the writer going for minutes.
    let mut child = writer(&journal_dir, "process", 200_000).spawn().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while last_ack(&journal_dir).is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the writer committed nothing"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let journal = FileJournal::new(&journal_dir).unwrap();
    let workflow = orch_core::Workflow::new("crash", "Crash test");
    let refused = block_on(journal.open(&run, &workflow));
    let still_running = child.try_wait().unwrap().is_none();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(still_running, "the writer ended before the check");
    let Err(error) = refused else {
        panic!("opened a run another process is writing");
    };
    assert!(matches!(error, JournalError::InUse { .. }), "{error}");
    let recorded_before = recorded(&journal, &run);
    assert!(!recorded_before.is_empty());
    // The killed writer's lock ended with it: a new writer takes the run and finishes it.
    let status = writer(&journal_dir, "process", 0).status().unwrap();
    assert!(status.success());
    assert_eq!(recorded(&journal, &run), (0..TASKS).collect::<Vec<_>>());
}
