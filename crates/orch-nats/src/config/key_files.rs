//! Reading the files a connection signs in with (a credentials file, TLS certificates and
//! keys) only once they look like such files: a device or a pipe named by mistake would
//! be read for ever, or wait for a writer that never comes.

use std::io::Read;
use std::path::Path;

use super::invalid;
use crate::ConnectError;

/// The most such a file may hold; they hold a few kilobytes.
const LIMIT: u64 = 1 << 20;

/// Refuses `path`, the connection's `what`, unless it is a regular file of at most 1 MiB.
/// Looked at without opening it: opening a pipe waits for a writer.
pub(super) fn check(what: &str, path: &Path) -> Result<(), ConnectError> {
    let metadata = std::fs::metadata(path)
        .map_err(|e| invalid(format!("cannot read {what} {}: {e}", path.display())))?;
    if !metadata.is_file() {
        return Err(invalid(format!(
            "{what} {} is not a regular file",
            path.display()
        )));
    }
    if metadata.len() > LIMIT {
        return Err(invalid(format!(
            "{what} {} holds {} bytes, more than such a file does (at most {LIMIT})",
            path.display(),
            metadata.len()
        )));
    }
    Ok(())
}

/// The text of `path`, the connection's `what`, once [`check`]ed (and read no further
/// than its limit, should it grow meanwhile).
pub(super) fn read(what: &str, path: &Path) -> Result<String, ConnectError> {
    check(what, path)?;
    let cannot = |e: std::io::Error| invalid(format!("cannot read {what} {}: {e}", path.display()));
    let mut text = String::new();
    std::fs::File::open(path)
        .map_err(cannot)?
        .take(LIMIT)
        .read_to_string(&mut text)
        .map_err(cannot)?;
    Ok(text)
}
