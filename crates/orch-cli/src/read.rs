//! Reading the files a user names: regular files only, of a bounded size.

use std::io::{Error, ErrorKind, Read};
use std::path::Path;

/// The largest workflow file read.
pub(crate) const WORKFLOW_LIMIT: u64 = 256 << 20;

/// The largest result file read (results hold what the commands printed).
pub(crate) const RESULT_LIMIT: u64 = 1 << 30;

/// The text of `path`, which must be a regular file (a pipe would block and a device
/// might never end) of at most `limit` bytes, in UTF-8.
pub(crate) fn text(path: &Path, limit: u64) -> std::io::Result<String> {
    // Looked at before opening: opening a pipe waits for a writer.
    if !std::fs::metadata(path)?.is_file() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "not a regular file (a directory, pipe or device)",
        ));
    }
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(limit + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > limit {
        return Err(Error::new(
            ErrorKind::InvalidData,
            format!("larger than {} MiB", limit >> 20),
        ));
    }
    Ok(text)
}
