//! A run with a failing task (its dependents skipped), an independent branch that
//! completes, and a flaky task that succeeds on its second attempt; prints each task's
//! status, attempts and error.
//!
//! `cargo run --example failure_handling`

use orch::prelude::TaskStatus;

#[tokio::main]
async fn main() -> Result<(), examples::BoxError> {
    let result = examples::failure_handling::run().await?;
    println!("workflow: {}\n", result.status);
    for (id, record) in result.tasks.iter() {
        let id = id.as_str();
        println!(
            "{id:<16} {:<9} attempts {}  {}",
            record.status.as_str(),
            record.attempts,
            record.error.as_deref().unwrap_or("")
        );
    }
    for status in [
        TaskStatus::Failed,
        TaskStatus::Skipped,
        TaskStatus::Completed,
    ] {
        println!(
            "{:<10} {:?}",
            format!("{status}:"),
            result.tasks_with(status)
        );
    }
    if let Some(report) = result.task("report").and_then(|r| r.result.as_ref()) {
        println!("report:    {report}");
    }
    Ok(())
}
