//! Runs a workflow file (default: `examples/workflows/ml_pipeline.yaml`) with the ML
//! pipeline's handlers, and prints what each stage did.
//!
//! `cargo run --example from_file [-- path/to/workflow.yaml]`

use std::path::PathBuf;

#[tokio::main]
async fn main() -> Result<(), examples::BoxError> {
    let path = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| examples::workflow_file("ml_pipeline.yaml"));
    println!("workflow file: {}", path.display());
    let outcome = examples::from_file::run(&path).await?;
    examples::ml_pipeline::print(&outcome);
    Ok(())
}
