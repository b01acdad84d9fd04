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

/// What a TLS file must hold: PEM blocks whose label ends so.
pub(super) const CERTIFICATE: &str = "CERTIFICATE-----";
pub(super) const PRIVATE_KEY: &str = "PRIVATE KEY-----";

/// Refuses `path`, the connection's `what` (a TLS file), unless it is a regular file of
/// at most 1 MiB holding a PEM block whose label ends in `holds` (a file with none would
/// fail the handshake later, as a certificate problem of the server's). Looked at
/// before it is opened: opening a pipe waits for a writer.
pub(super) fn check_tls(what: &str, path: &Path, holds: &str) -> Result<(), ConnectError> {
    check_tls_file(what, path)?;
    let text = std::fs::read(path)
        .map_err(|e| invalid(format!("cannot read {what} {}: {e}", path.display())))?;
    let pem = String::from_utf8_lossy(&text);
    let labelled = pem.lines().any(|line| {
        let line = line.trim();
        line.starts_with("-----BEGIN ") && line.ends_with(holds)
    });
    if !labelled {
        return Err(invalid(format!(
            "{what} {} holds no PEM block ending `{holds}` (is it the right file?)",
            path.display()
        )));
    }
    Ok(())
}

fn check_tls_file(what: &str, path: &Path) -> Result<(), ConnectError> {
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

/// `seed` (around any white space, as a file read into a variable may end in a line
/// break) if it is an NKey seed the client can sign with; else why not, without showing
/// it (the server would only be blamed for refusing it).
pub(super) fn nkey_seed(seed: &str) -> Result<String, ConnectError> {
    let seed = seed.trim();
    if nkeys::KeyPair::from_seed(seed).is_ok() {
        return Ok(seed.to_owned());
    }
    let why = match seed.chars().next() {
        Some('U' | 'A' | 'O' | 'N' | 'C' | 'X' | 'P') => {
            "it looks like a public key; give the NKey seed (it starts with S)"
        }
        _ => "a seed starts with S (SU for a user) and has 58 characters; look for a typo",
    };
    Err(invalid(format!("the NKey seed is not a valid seed: {why}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A seed with a line break after it is taken without it; a public key or text that
    /// is no seed is refused here, saying why, without showing it.
    #[test]
    fn an_nkey_seed_is_checked_before_the_server_sees_it() {
        let seed = nkeys::KeyPair::new_user().seed().expect("a seed");
        assert_eq!(nkey_seed(&format!("{seed}\n")).expect("valid"), seed);
        let public = nkeys::KeyPair::new_user().public_key();
        for (wrong, why) in [
            (public.as_str(), "public key"),
            ("SUAGARBAGE", "look for a typo"),
        ] {
            let error = nkey_seed(wrong).expect_err(wrong).to_string();
            assert!(
                error.contains("the NKey seed is not a valid seed") && error.contains(why),
                "{error}"
            );
            assert!(!error.contains(wrong), "{error}");
        }
    }

    /// A TLS file must hold the PEM block it is for: a workflow file, an empty file or a
    /// key given as the CA is refused, naming the file; a certificate is taken.
    #[test]
    fn a_tls_file_without_its_pem_block_is_refused() {
        let dir = tempfile::tempdir().expect("a directory");
        let file = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("written");
            path
        };
        let key = "-----BEGIN PRIVATE KEY-----\nMC4=\n-----END PRIVATE KEY-----\n";
        let cert = "-----BEGIN CERTIFICATE-----\nMC4=\n-----END CERTIFICATE-----\n";
        for (name, text) in [
            ("empty.pem", ""),
            ("wf.yaml", "tasks: []\n"),
            ("key.pem", key),
        ] {
            let path = file(name, text);
            let error = check_tls("the TLS CA certificate", &path, CERTIFICATE).expect_err(name);
            assert!(
                error
                    .to_string()
                    .contains("holds no PEM block ending `CERTIFICATE-----`"),
                "{error}"
            );
            assert!(error.to_string().contains(name), "{error}");
        }
        assert!(check_tls("the TLS CA certificate", &file("ca.pem", cert), CERTIFICATE).is_ok());
        assert!(check_tls("the TLS client key", &file("k.pem", key), PRIVATE_KEY).is_ok());
    }
}
