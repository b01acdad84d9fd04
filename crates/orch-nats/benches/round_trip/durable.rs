//! The `nats/durable_5000/*` rows of the round-trip bench: durable runs on `NatsJournal`
//! beside the same runs without a journal.

use std::time::{Duration, Instant};

use orch_core::WorkflowStatus;
use orch_engine::{TaskContext, TaskError, WorkflowEngine, inline};

use super::{ROUNDS, Setup, independent, peak_rss_bytes, percentile, print_row};

/// Tasks of a durable run in the journal rows.
const DURABLE_TASKS: usize = 5_000;

/// The journal rows: `DURABLE_TASKS` independent no-op tasks, 8 at a time, run without a
/// journal and as durable runs on `NatsJournal` (each completion stored before the run
/// goes on), alternated; the median time per task of each.
pub(super) fn journal_rows(setup: &Setup) {
    let workflow = independent(DURABLE_TASKS);
    let engine = |journal: Option<orch_nats::NatsJournal>| {
        let mut builder = WorkflowEngine::builder().max_concurrent(8);
        if let Some(journal) = journal {
            builder = builder.journal(journal, orch_engine::Durability::Process);
        }
        let engine = builder.build().expect("valid settings");
        engine.register_handler(
            "noop",
            inline(|_ctx: TaskContext| async move { Ok::<_, TaskError>(()) }),
        );
        engine
    };
    let journal = setup.runtime.block_on(async {
        orch_nats::NatsJournal::connect(&setup.server.config(), &orch_nats::Layout::default())
            .await
            .expect("the journal connects")
    });
    let engines = [
        ("none", engine(None)),
        ("nats_journal", engine(Some(journal))),
    ];
    let mut times: [Vec<Duration>; 2] = Default::default();
    for round in 0..=ROUNDS {
        for (n, (_, engine)) in engines.iter().enumerate() {
            let run = orch_core::RunId::parse(&format!("bench-{round}-{n}")).expect("an id");
            let start = Instant::now();
            // `run_durable` on the engine without a journal would be refused.
            let handle = match n {
                0 => engine.run_with_id(&workflow, run),
                _ => engine.run_durable(&workflow, run),
            };
            let result = setup.runtime.block_on(handle).expect("runs");
            assert_eq!(result.status, WorkflowStatus::Completed);
            if round > 0 {
                times[n].push(start.elapsed());
            }
        }
    }
    let peak = peak_rss_bytes();
    for (n, (name, _)) in engines.iter().enumerate() {
        let wall = percentile(&mut times[n], 0.5).as_secs_f64() * 1e9;
        let case = format!("nats/durable_5000/{name}");
        print_row(
            &case,
            DURABLE_TASKS,
            wall / DURABLE_TASKS as f64,
            peak,
            None,
        );
    }
}
