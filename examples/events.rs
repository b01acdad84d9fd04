//! Live progress: every lifecycle event of a run printed as it arrives from the bus
//! (the failure-handling workflow, so there is a retry, a failure and skips to see).
//!
//! `cargo run --example events`

#[tokio::main]
async fn main() -> Result<(), examples::BoxError> {
    let outcome = examples::events::run(|line| println!("{line}")).await?;
    println!(
        "\n{} events; workflow {}",
        outcome.events.len(),
        outcome.result.status
    );
    Ok(())
}
