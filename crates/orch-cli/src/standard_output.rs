//! Failures to write to standard output: noted where they happen, reported once when
//! the command ends.

use std::process::ExitCode;

/// The first failure to write to standard output other than its reader going away.
static STDOUT_FAILURE: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Notes `written`'s failure, if it is one that loses output (not a closed pipe).
pub(crate) fn note_stdout(written: std::io::Result<()>) {
    if let Err(error) = written
        && error.kind() != std::io::ErrorKind::BrokenPipe
    {
        let mut failure = STDOUT_FAILURE.lock().unwrap_or_else(|e| e.into_inner());
        failure.get_or_insert_with(|| error.to_string());
    }
}

/// Exit status 2, with the error, for a command that succeeded but lost output it wrote
/// to standard output; `code` otherwise.
pub(crate) fn stdout_failure(code: ExitCode) -> ExitCode {
    note_stdout(std::io::Write::flush(&mut std::io::stdout().lock()));
    let failure = STDOUT_FAILURE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    match failure {
        Some(error) => {
            errln!("orch: cannot write to standard output: {error}");
            if code == ExitCode::SUCCESS {
                ExitCode::from(2)
            } else {
                code
            }
        }
        None => code,
    }
}
