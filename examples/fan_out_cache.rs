//! Fans out over a list known only at run time, one map instance per document, then runs
//! the same workflow again and reuses the cached results.
//!
//! `cargo run --example fan_out_cache`

const DOCUMENTS: [&str; 3] = [
    "orch runs workflows",
    "a map task runs once per element",
    "cached results are reused",
];

#[tokio::main]
async fn main() -> Result<(), examples::BoxError> {
    let outcome = examples::fan_out_cache::run(&DOCUMENTS).await?;
    for (label, result) in [
        ("first run", &outcome.first),
        ("second run", &outcome.second),
    ] {
        println!("{label}: {}", result.status);
        for (id, record) in result.tasks.iter() {
            let result = record.result.as_ref().map(ToString::to_string);
            let cached = if record.cached { " (cached)" } else { "" };
            println!(
                "  {id:<16} {:<10} attempts {} {}{cached}",
                record.status.as_str(),
                record.attempts,
                result.unwrap_or_default()
            );
        }
    }
    println!(
        "count_words ran {} times, report {} times, over both runs",
        outcome.count_calls, outcome.report_calls
    );
    Ok(())
}
