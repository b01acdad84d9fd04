//! A run with a failing task (its dependents skipped), an independent branch that
//! completes, and a flaky task that succeeds on its second attempt; prints each task's
//! status, attempts and error.
//!
//! `cargo run --example failure_handling`

#[tokio::main]
async fn main() -> Result<(), examples::BoxError> {
    let outcome = examples::failure_handling::run().await?;
    println!("workflow: {}\n", outcome.result.status);
    for (id, record) in outcome.result.tasks.iter() {
        let id = id.as_str();
        println!(
            "{id:<16} {:<9} attempts {}  {}",
            record.status.as_str(),
            record.attempts,
            record.error.as_deref().unwrap_or("")
        );
    }
    println!("\nfailed:    {:?}", outcome.failed);
    println!("skipped:   {:?}", outcome.skipped);
    println!("completed: {:?}", outcome.completed);
    if let Some(report) = outcome
        .result
        .task("report")
        .and_then(|r| r.result.as_ref())
    {
        println!("report:    {report}");
    }
    Ok(())
}
