//! Checking the files a connection signs in with (a credentials file, TLS certificates
//! and keys) before the client reads them: a device named by mistake would be read for
//! ever. The client reads a TLS file again at every connection, so it must stay a
//! regular file; a credentials file is read once, here, and may also be a pipe
//! (`<(command)`).

use std::io::Read;
use std::path::Path;

use super::invalid;
use crate::ConnectError;

/// The most such a file may hold; they hold a few kilobytes.
const LIMIT: u64 = 1 << 20;

/// Refuses `path`, the connection's `what` (a TLS file), unless it is a regular file of
/// at most 1 MiB. Looked at without opening it: opening a pipe waits for a writer.
pub(super) fn check_tls(what: &str, path: &Path) -> Result<(), ConnectError> {
    let metadata = std::fs::metadata(path)
        .map_err(|e| invalid(format!("cannot read {what} {}: {e}", path.display())))?;
    let kind = metadata.file_type();
    if !kind.is_file() {
        return Err(invalid(format!(
            "{what} {} is {}, not a regular file (the client reads it again at every \
             connection)",
            path.display(),
            kind_of(&kind)
        )));
    }
    within_limit(what, path, metadata.len())
}

/// The text of the credentials file `path`: a regular file or a pipe, of at most 1 MiB.
pub(super) async fn read_credentials(path: &Path) -> Result<String, ConnectError> {
    const WHAT: &str = "the credentials file";
    use std::os::unix::fs::FileTypeExt;
    let cannot = |e: std::io::Error| invalid(format!("cannot read {WHAT} {}: {e}", path.display()));
    let metadata = std::fs::metadata(path).map_err(cannot)?;
    let kind = metadata.file_type();
    if !kind.is_file() && !kind.is_fifo() {
        return Err(invalid(format!(
            "{WHAT} {} is {}, not a file or a pipe",
            path.display(),
            kind_of(&kind)
        )));
    }
    // Opening a pipe waits for its writer: off the runtime's threads.
    let owned = path.to_owned();
    let read = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        std::fs::File::open(owned)?
            .take(LIMIT + 1)
            .read_to_end(&mut bytes)?;
        Ok(bytes)
    });
    let bytes = read
        .await
        .map_err(|e| cannot(std::io::Error::other(e)))?
        .map_err(cannot)?;
    within_limit(WHAT, path, bytes.len() as u64)?;
    String::from_utf8(bytes)
        .map_err(|_| invalid(format!("{WHAT} {} is not UTF-8 text", path.display())))
}

fn within_limit(what: &str, path: &Path, size: u64) -> Result<(), ConnectError> {
    if size > LIMIT {
        return Err(invalid(format!(
            "{what} {} holds more than such a file does (over {LIMIT} bytes)",
            path.display()
        )));
    }
    Ok(())
}

/// What a file of `kind` is, for an error.
fn kind_of(kind: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a pipe"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}
