//! Runs a nightly report with trigger rules, a branch, a `gpu` pool and priorities, twice:
//! with small figures (the quick report runs) and large ones (the full report runs), and
//! prints each task's status, with the reason of every skip, and the order tasks started.
//!
//! `cargo run --example pipeline_rules`

#[tokio::main]
async fn main() -> Result<(), examples::BoxError> {
    for scale in [1, 100] {
        let outcome = examples::pipeline_rules::run(scale).await?;
        println!("figures x{scale}: workflow {}", outcome.result.status);
        for (id, record) in outcome.result.tasks.iter() {
            let why = record.error.as_deref().unwrap_or("");
            println!("  {id:<14} {:<10} {why}", record.status.to_string());
        }
        println!("  started: {}", outcome.starts.join(", "));
    }
    Ok(())
}
