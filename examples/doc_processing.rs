//! Fetches `examples/data/document.html`, extracts its text, gzips it and stores the
//! file in a temporary directory; prints the sizes and where the file went.
//!
//! `cargo run --example doc_processing [-- OUT_DIR]`

use std::path::PathBuf;

#[tokio::main]
async fn main() -> Result<(), examples::BoxError> {
    let out_dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::temp_dir().join(format!("orch-doc-processing-{}", std::process::id()))
        });
    let source = examples::data_file("document.html");
    let outcome = examples::doc_processing::run(&source, &out_dir).await?;
    for (id, record) in outcome.result.tasks.iter() {
        let id = id.as_str();
        println!("{id:<9} {}", record.status);
    }
    println!("\ntitle: {}", outcome.title);
    println!("text ({} bytes):\n{}", outcome.original_bytes, outcome.text);
    println!(
        "gzip: {} -> {} bytes ({:.0}%)",
        outcome.original_bytes,
        outcome.compressed_bytes,
        100.0 * outcome.compressed_bytes as f64 / outcome.original_bytes.max(1) as f64
    );
    println!("stored: {}", outcome.stored_path.display());
    Ok(())
}
