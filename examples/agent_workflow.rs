//! The original module's agent workflow: analyze a support ticket (keywords and a summary),
//! compress the analysis, store it; prints the analysis and what was stored.
//!
//! `cargo run --example agent_workflow`

use examples::agent_workflow::{self, TICKET};

#[tokio::main]
async fn main() -> Result<(), examples::BoxError> {
    let outcome = agent_workflow::run(TICKET, "tickets/analysis.json.zz").await?;
    println!("keywords:");
    for keyword in &outcome.analysis.keywords {
        println!("  {:<10} {}", keyword.word, keyword.count);
    }
    println!("summary: {}", outcome.analysis.summary);
    if let Some(compressed) = outcome
        .result
        .task("compress")
        .and_then(|r| r.result.as_ref())
    {
        println!(
            "compressed: {} -> {} bytes ({})",
            compressed["original_bytes"], compressed["compressed_bytes"], compressed["format"]
        );
    }
    let stored = outcome
        .store
        .get(&outcome.key)
        .map_or(0, |bytes| bytes.len());
    println!("stored: {} ({stored} bytes)", outcome.key);
    Ok(())
}
