//! The original module's seven-stage ML pipeline on `examples/data/ml_samples.csv`: prints what each
//! stage did and the model's test accuracy and F1.
//!
//! `cargo run --example ml_pipeline`

use examples::ml_pipeline;

#[tokio::main]
async fn main() -> Result<(), examples::BoxError> {
    let outcome = ml_pipeline::run(&examples::data_file("ml_samples.csv")).await?;
    examples::ml_pipeline::print(&outcome);
    Ok(())
}
