//! The original module's main example: fetch orders from `examples/data/sales.csv`, aggregate them
//! per region, print the run's result JSON and its metrics.
//!
//! `cargo run --example data_pipeline [-- region|product]`

use examples::data_pipeline;

#[tokio::main]
async fn main() -> Result<(), examples::BoxError> {
    let group_by = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "region".to_owned());
    let outcome = data_pipeline::run(&examples::data_file("sales.csv"), &group_by).await?;
    println!("{}", outcome.result.to_json_pretty());

    let summary = &outcome.summary;
    println!("\nrevenue by {}:", summary.group_by);
    for (name, totals) in &summary.groups {
        println!(
            "  {name:<10} {:>3} orders {:>4} units {:>9.2}",
            totals.orders,
            totals.units,
            totals.revenue_cents as f64 / 100.0
        );
    }
    println!(
        "  {:<10} {:>3} orders {:>4} units {:>9.2}",
        "total",
        summary.total.orders,
        summary.total.units,
        summary.total.revenue_cents as f64 / 100.0
    );
    let metrics = outcome.result.metrics();
    println!("\nmetrics:\n{}", serde_json::to_string_pretty(&metrics)?);
    Ok(())
}
