//! A slow pipeline recorded in a journal: interrupt it (Ctrl-C, or `--abort-after N`
//! steps) and start it again to see it resume, with the steps restored from the journal
//! listed.
//!
//! ```text
//! cargo run --example durable -- --abort-after 3   # stops after 3 of 6 steps
//! cargo run --example durable                      # restores 3, runs the other 3
//! ```
//!
//! Options: `--journal DIR` (default: `orch-durable-example` in the temporary
//! directory), `--run ID` (default `pipeline-1`), `--step-ms MS` (default 500).

use std::time::Duration;

use examples::durable::{self, Options};
use orch::prelude::*;

fn options() -> Result<Options, examples::BoxError> {
    let mut options = Options {
        journal_dir: std::env::temp_dir().join("orch-durable-example"),
        run_id: RunId::parse("pipeline-1")?,
        step: Duration::from_millis(500),
        abort_after: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--abort-after" => options.abort_after = Some(value.parse()?),
            "--journal" => options.journal_dir = value.into(),
            "--run" => options.run_id = RunId::parse(&value)?,
            "--step-ms" => options.step = Duration::from_millis(value.parse()?),
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> Result<(), examples::BoxError> {
    let options = options()?;
    let stop = CancellationToken::new();
    let on_ctrl_c = stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_ctrl_c.cancel();
        }
    });
    println!(
        "run `{}`, journal in {}",
        options.run_id,
        options.journal_dir.display()
    );
    let outcome = durable::run(&options, stop).await?;
    let list = |ids: &[TaskId]| {
        let ids: Vec<&str> = ids.iter().map(TaskId::as_str).collect();
        if ids.is_empty() {
            "none".to_owned()
        } else {
            ids.join(", ")
        }
    };
    println!("restored from the journal: {}", list(&outcome.restored));
    println!("ran now:                   {}", list(&outcome.ran));
    println!("run status:                {}", outcome.result.status);
    if outcome.result.status == WorkflowStatus::Cancelled {
        println!("interrupted: run the same command again (without --abort-after) to resume");
    }
    Ok(())
}
