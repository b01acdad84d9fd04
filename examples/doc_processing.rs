//! The original module's document processing pipeline: `fetch → extract → compress →
//! store`. `fetch` reads `examples/data/document.html`, `extract` keeps its title and
//! text, `compress` gzips the text with `flate2` and `store` writes the `.gz` file into an
//! output directory (a temporary one unless given). Prints each task's status, the text,
//! the sizes and where the file went.
//!
//! `cargo run --example doc_processing [-- OUT_DIR]`

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use orch::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;

#[path = "support/mod.rs"]
pub(crate) mod support;

use support::{BoxError, task_output};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let out_dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::temp_dir().join(format!("orch-doc-processing-{}", std::process::id()))
        });
    let outcome = run(&support::data_file("document.html"), &out_dir).await?;
    for (id, record) in outcome.result.tasks.iter() {
        println!("{:<9} {}", id.as_str(), record.status);
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

/// The four-task workflow: the document at `source` is stored as `file_name` in
/// `out_dir`.
pub(crate) fn workflow(source: &Path, out_dir: &Path, file_name: &str) -> Workflow {
    Workflow::new("doc_processing", "Document Processing")
        .task(
            Task::new("fetch", "fetch")
                .name("Fetch Document")
                .config(json!({"source": source.display().to_string()})),
        )
        .task(
            Task::new("extract", "extract")
                .name("Extract Text")
                .depends_on(["fetch"]),
        )
        .task(
            Task::new("compress", "compress")
                .name("Compress Text")
                .config(json!({"level": 9}))
                .depends_on(["extract"]),
        )
        .task(
            Task::new("store", "store")
                .name("Store Result")
                .config(json!({"dir": out_dir.display().to_string(), "file": file_name}))
                .depends_on(["compress"]),
        )
}

/// Registers the `fetch`, `extract`, `compress` and `store` handlers on `engine`. The
/// ones doing file or CPU work run on tokio's blocking pool.
pub(crate) fn register_handlers(engine: &WorkflowEngine) {
    engine.register_handler("fetch", blocking(fetch));
    engine.register_handler("extract", |ctx: TaskContext| async move { extract(&ctx) });
    engine.register_handler("compress", blocking(compress));
    engine.register_handler("store", blocking(store));
}

/// What the example computed.
pub(crate) struct Outcome {
    pub(crate) result: WorkflowResult,
    pub(crate) title: String,
    pub(crate) text: String,
    pub(crate) original_bytes: usize,
    pub(crate) compressed_bytes: usize,
    pub(crate) stored_path: PathBuf,
}

/// Runs the pipeline: the HTML document at `source` ends up gzipped in `out_dir`.
pub(crate) async fn run(source: &Path, out_dir: &Path) -> Result<Outcome, BoxError> {
    let engine = WorkflowEngine::new();
    register_handlers(&engine);
    let result = engine
        .execute_workflow(&workflow(source, out_dir, "document.txt.gz"))
        .await?;
    let extracted = Extracted::deserialize(task_output(&result, "extract")?)?;
    let compressed = Compressed::deserialize(task_output(&result, "compress")?)?;
    let stored = Stored::deserialize(task_output(&result, "store")?)?;
    Ok(Outcome {
        title: extracted.title,
        original_bytes: extracted.text.len(),
        text: extracted.text,
        compressed_bytes: compressed.data.len(),
        stored_path: stored.path,
        result,
    })
}

#[derive(Serialize, Deserialize)]
struct Extracted {
    title: String,
    text: String,
}

#[derive(Serialize, Deserialize)]
struct Compressed {
    format: String,
    data: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    path: PathBuf,
    bytes: usize,
}

fn fetch(ctx: TaskContext) -> Result<String, TaskError> {
    #[derive(Deserialize)]
    struct Config {
        source: String,
    }
    let source = ctx.config_as::<Config>()?.source;
    std::fs::read_to_string(&source)
        .map_err(|e| TaskError::new(format!("cannot read {source}: {e}")))
}

fn extract(ctx: &TaskContext) -> Result<Extracted, TaskError> {
    let html: String = ctx.input("fetch")?;
    let (title, text) = html_to_text(&html);
    Ok(Extracted { title, text })
}

fn compress(ctx: TaskContext) -> Result<Compressed, TaskError> {
    #[derive(Deserialize)]
    struct Config {
        level: u32,
    }
    let level = ctx.config_as::<Config>()?.level;
    if level > 9 {
        return Err(TaskError::permanent("level must be 0 to 9"));
    }
    let extracted: Extracted = ctx.input("extract")?;
    Ok(Compressed {
        format: "gzip".to_owned(),
        data: gzip(extracted.text.as_bytes(), level)?,
    })
}

fn store(ctx: TaskContext) -> Result<Stored, TaskError> {
    #[derive(Deserialize)]
    struct Config {
        dir: PathBuf,
        file: String,
    }
    let config: Config = ctx.config_as()?;
    if Path::new(&config.file).file_name() != Some(config.file.as_ref()) {
        return Err(TaskError::permanent("`file` must be a plain file name"));
    }
    let compressed: Compressed = ctx.input("compress")?;
    let dir = &config.dir;
    std::fs::create_dir_all(dir)
        .map_err(|e| TaskError::new(format!("cannot make directory {}: {e}", dir.display())))?;
    let path = dir.join(&config.file);
    std::fs::write(&path, &compressed.data)
        .map_err(|e| TaskError::new(format!("cannot write {}: {e}", path.display())))?;
    Ok(Stored {
        path,
        bytes: compressed.data.len(),
    })
}

/// Gzips `data` at `level` (0 to 9).
pub(crate) fn gzip(data: &[u8], level: u32) -> std::io::Result<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::new(level));
    encoder.write_all(data)?;
    encoder.finish()
}

/// The title and the text of a simple HTML page: the `<body>` without its scripts, each
/// tag starting a new line, whitespace collapsed, blank lines dropped.
pub(crate) fn html_to_text(html: &str) -> (String, String) {
    let between = |open: &str, close: &str| {
        html.split_once(open)
            .and_then(|(_, rest)| rest.split_once(close))
            .map_or("", |(inside, _)| inside)
    };
    let mut body = between("<body>", "</body>").to_owned();
    while let Some((before, rest)) = body.split_once("<script") {
        let after = rest.split_once("</script>").map_or("", |(_, after)| after);
        body = format!("{before}{after}");
    }
    let mut lines = String::new();
    let mut in_tag = false;
    for c in body.chars() {
        match c {
            '<' => {
                in_tag = true;
                lines.push('\n');
            }
            '>' => in_tag = false,
            _ if in_tag => {}
            c if c.is_whitespace() => lines.push(' '),
            c => lines.push(c),
        }
    }
    let text = lines
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|line| !line.is_empty())
        .map(|line| decode_entities(&line) + "\n")
        .collect();
    (decode_entities(between("<title>", "</title>").trim()), text)
}

fn decode_entities(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&mdash;", "\u{2014}")
        .replace("&amp;", "&")
}
