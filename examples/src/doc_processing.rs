//! The original module's document processing pipeline: `fetch → extract → compress → store`.
//!
//! `fetch` reads an HTML document, `extract` turns it into plain text (tags, scripts and
//! styles removed, entities decoded, whitespace collapsed), `compress` gzips the text
//! with `flate2`, and `store` writes the `.gz` file into an output directory.

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use orch::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{BoxError, task_output};

/// What the example computed.
#[derive(Debug)]
pub struct Outcome {
    /// The run's records and metrics.
    pub result: WorkflowResult,
    /// The document's title.
    pub title: String,
    /// The extracted text.
    pub text: String,
    /// Size of the extracted text, in bytes, as `compress` reported it.
    pub original_bytes: usize,
    /// Size of the compressed file, in bytes.
    pub compressed_bytes: usize,
    /// Where `store` wrote it.
    pub stored_path: PathBuf,
}

/// The four-task workflow: the document at `source` is stored as `file_name` in
/// `out_dir`.
pub fn workflow(source: &Path, out_dir: &Path, file_name: &str) -> Workflow {
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

/// Registers the `fetch`, `extract`, `compress` and `store` handlers on `engine`.
pub fn register_handlers(engine: &WorkflowEngine) {
    engine.register_handler("fetch", blocking(fetch));
    engine.register_handler("extract", |ctx: TaskContext| async move { extract(&ctx) });
    engine.register_handler("compress", blocking(compress));
    engine.register_handler("store", blocking(store));
}

/// Runs the pipeline: the HTML document at `source` ends up gzipped in `out_dir`.
pub async fn run(source: &Path, out_dir: &Path) -> Result<Outcome, BoxError> {
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
        original_bytes: compressed.original_bytes,
        text: extracted.text,
        compressed_bytes: compressed.compressed_bytes,
        stored_path: stored.path,
        result,
    })
}

#[derive(Serialize, Deserialize)]
struct Fetched {
    source: String,
    content: String,
}

#[derive(Serialize, Deserialize)]
struct Extracted {
    title: String,
    text: String,
    words: usize,
}

#[derive(Serialize, Deserialize)]
struct Compressed {
    format: String,
    original_bytes: usize,
    compressed_bytes: usize,
    ratio: f64,
    data_hex: String,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    path: PathBuf,
    bytes: usize,
}

fn fetch(ctx: TaskContext) -> Result<Fetched, TaskError> {
    #[derive(Deserialize)]
    struct Config {
        source: String,
    }
    let source = ctx.config_as::<Config>()?.source;
    let content = std::fs::read_to_string(&source)
        .map_err(|e| TaskError::new(format!("cannot read {source}: {e}")))?;
    Ok(Fetched { source, content })
}

fn extract(ctx: &TaskContext) -> Result<Extracted, TaskError> {
    let fetched: Fetched = ctx.input("fetch")?;
    let (title, text) = html_to_text(&fetched.content);
    let words = text.split_whitespace().count();
    Ok(Extracted { title, text, words })
}

fn compress(ctx: TaskContext) -> Result<Compressed, TaskError> {
    #[derive(Deserialize)]
    struct Config {
        #[serde(default = "default_level")]
        level: u32,
    }
    fn default_level() -> u32 {
        6
    }
    let level = ctx.config_as::<Config>()?.level;
    if level > 9 {
        return Err(TaskError::permanent("level must be 0 to 9"));
    }
    let extracted: Extracted = ctx.input("extract")?;
    let data = gzip(extracted.text.as_bytes(), level)?;
    Ok(Compressed {
        format: "gzip".to_owned(),
        original_bytes: extracted.text.len(),
        compressed_bytes: data.len(),
        ratio: data.len() as f64 / extracted.text.len().max(1) as f64,
        data_hex: crate::hex::encode(&data),
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
    let data = crate::hex::decode(&compressed.data_hex)
        .ok_or_else(|| TaskError::permanent("compress gave invalid hex data"))?;
    std::fs::create_dir_all(&config.dir)?;
    let path = config.dir.join(&config.file);
    std::fs::write(&path, &data)?;
    Ok(Stored {
        path,
        bytes: data.len(),
    })
}

/// Gzips `data` at `level` (0 to 9).
pub fn gzip(data: &[u8], level: u32) -> std::io::Result<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::new(level));
    encoder.write_all(data)?;
    encoder.finish()
}

/// The title and the plain text of an HTML document: elements' tags dropped, the
/// contents of `head`, `script` and `style` dropped, the common entities decoded,
/// block elements (`p`, `h1`..`h6`, `li`, `br`, `div`) starting and ending lines, other
/// whitespace collapsed to single spaces.
///
/// ```
/// let (title, text) = examples::doc_processing::html_to_text(
///     "<html><head><title>T &amp; U</title></head><body><h1>Hi</h1><p>a  <b>b</b>\n c</p></body></html>",
/// );
/// assert_eq!(title, "T & U");
/// assert_eq!(text, "Hi\na b c\n");
/// ```
pub fn html_to_text(html: &str) -> (String, String) {
    let mut title = String::new();
    let mut raw = String::new();
    let mut hidden: Option<String> = None; // the element whose content is being dropped
    let mut in_title = false;
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        let chunk = &rest[..open];
        if in_title {
            title.push_str(chunk);
        } else if hidden.is_none() {
            push_inline(&mut raw, chunk);
        }
        let Some(close) = rest[open..].find('>') else {
            rest = "";
            break;
        };
        let tag = &rest[open + 1..open + close];
        rest = &rest[open + close + 1..];
        let closing = tag.starts_with('/');
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .collect::<String>()
            .to_ascii_lowercase();
        match (name.as_str(), closing) {
            ("title", false) => in_title = true,
            ("title", true) => in_title = false,
            ("head" | "script" | "style", false) if hidden.is_none() => hidden = Some(name),
            (_, true) if hidden.as_deref() == Some(name.as_str()) => hidden = None,
            ("p" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "li" | "br" | "div", _) => {
                raw.push('\n');
            }
            _ => {}
        }
    }
    if hidden.is_none() {
        push_inline(&mut raw, rest);
    }
    let mut text = String::new();
    for line in raw.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if !words.is_empty() {
            text.push_str(&decode_entities(&words.join(" ")));
            text.push('\n');
        }
    }
    (decode_entities(title.trim()), text)
}

/// Appends text that sits inside a block: its line breaks are only whitespace.
fn push_inline(raw: &mut String, chunk: &str) {
    raw.extend(
        chunk
            .chars()
            .map(|c| if c.is_whitespace() { ' ' } else { c }),
    );
}

fn decode_entities(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&mdash;", "\u{2014}")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&")
}
