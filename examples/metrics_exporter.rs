//! Per task type metrics across several runs, in Prometheus's text format: a `Recorder`
//! fed from the bus reports through the `metrics` crate to the Prometheus exporter.
//!
//! `cargo run --example metrics_exporter`

#[tokio::main]
async fn main() -> Result<(), examples::BoxError> {
    let exporter = examples::metrics_exporter::install_exporter()?;
    let outcome = examples::metrics_exporter::run(&exporter, 4).await?;
    println!("# {} runs of the data pipeline\n", outcome.runs);
    print!("{}", outcome.prometheus_text);
    Ok(())
}
