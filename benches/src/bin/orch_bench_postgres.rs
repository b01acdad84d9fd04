//! `orch_bench_postgres engine SHAPE TASKS MAX_CONCURRENT [OPTIONS] journal=postgres`: the
//! cases of `orch_bench engine`, with durable runs recorded in a throwaway PostgreSQL
//! server (started from the system's PostgreSQL binaries). A binary of its own, so that
//! the PostgreSQL client's code is not part of the engine rows' memory.

use std::any::Any;
use std::process::ExitCode;

use benches::engine_case::{engine_case, report};
use orch_engine::{Durability, EngineBuilder};
use orch_journal::PgJournal;
use orch_journal::postgres::{TempServer, TempServerError};
use tokio::runtime::Runtime;

/// The exit code of a case that could not run here for want of PostgreSQL.
const SKIPPED: i32 = 3;

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
    let server = match TempServer::start() {
        Ok(server) => server,
        Err(TempServerError::NotInstalled(reason)) => {
            // `cargo xtask bench` leaves the row out, saying why.
            eprintln!("skipped: no PostgreSQL server programs: {reason}");
            std::process::exit(SKIPPED);
        }
        Err(error) => return Err(error.to_string()),
    };
    let journal = runtime
        .block_on(PgJournal::connect(&server.connection_string()))
        .map_err(|e| e.to_string())?;
    Ok((
        builder.journal(journal, Durability::Process),
        Box::new(server),
    ))
}
