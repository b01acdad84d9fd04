//! `orch_bench_postgres engine SHAPE TASKS MAX_CONCURRENT [OPTIONS] journal=postgres`: the
//! cases of `orch_bench engine`, with durable runs recorded in a throwaway PostgreSQL
//! server (started from the system's PostgreSQL binaries). A binary of its own, so that
//! the PostgreSQL client's code is not part of the engine rows' memory.

use std::any::Any;
use std::process::ExitCode;

use benches::engine_case::{engine_case, report};
use orch_engine::{Durability, EngineBuilder};
use orch_journal::PgJournal;
use orch_journal::postgres::TempServer;
use tokio::runtime::Runtime;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let outcome = match args.as_slice() {
        ["engine", shape, tasks, max_concurrent, options @ ..] => {
            engine_case(shape, tasks, max_concurrent, options, &postgres_journal)
        }
        _ => Err(
            "usage: orch_bench_postgres engine SHAPE TASKS MAX_CONCURRENT [OPTIONS] journal=postgres"
                .to_owned(),
        ),
    };
    report("orch_bench_postgres", outcome)
}

/// The `journal=postgres` option: a journal in a server started for this process.
fn postgres_journal(
    kind: &str,
    builder: EngineBuilder,
    runtime: &Runtime,
) -> Result<(EngineBuilder, Box<dyn Any>), String> {
    if kind != "postgres" {
        return Err(format!(
            "unknown journal `{kind}` (this binary offers `postgres`)"
        ));
    }
    let server = TempServer::start().map_err(|e| e.to_string())?;
    let journal = runtime
        .block_on(PgJournal::connect(&server.connection_string()))
        .map_err(|e| e.to_string())?;
    Ok((
        builder.journal(journal, Durability::Process),
        Box::new(server),
    ))
}
