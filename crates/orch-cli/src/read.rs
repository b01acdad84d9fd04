//! Reading the files a user names: regular files only, of a bounded size.

use std::io::{Error, ErrorKind, Read};
use std::path::Path;

/// The largest workflow file read.
pub(crate) const WORKFLOW_LIMIT: u64 = 256 << 20;

/// The largest result file read (results hold what the commands printed).
pub(crate) const RESULT_LIMIT: u64 = 1 << 30;

/// Whether `path` is there and is a file or a pipe, which [`text`] reads.
pub(crate) fn readable(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let kind = std::fs::metadata(path)?.file_type();
    if !kind.is_file() && !kind.is_fifo() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "not a file or a pipe (a directory or a device)",
        ));
    }
    Ok(())
}

/// The text of `path`, a file or a pipe (`<(command)`), not a directory or a device
/// (`/dev/zero` never ends), of at most `limit` bytes, in UTF-8.
pub(crate) fn text(path: &Path, limit: u64) -> std::io::Result<String> {
    readable(path)?;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(limit + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(Error::new(
            ErrorKind::InvalidData,
            format!("larger than {} MiB", limit >> 20),
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let line = 1 + e.as_bytes()[..offset]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        Error::new(
            ErrorKind::InvalidData,
            format!("not UTF-8 text: line {line} (byte {offset}) holds bytes that are not UTF-8"),
        )
    })
}
