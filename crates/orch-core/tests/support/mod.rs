//! Helpers shared by the tests that read workflow files.

use orch_core::{LoadError, Workflow};

/// The field path, line and message of a parse error.
pub(crate) fn parse_error(result: Result<Workflow, LoadError>) -> (String, Option<usize>, String) {
    match result {
        Err(LoadError::Parse {
            field,
            line,
            message,
            ..
        }) => (field, line, message),
        Err(other) => panic!("expected a parse error, got {other}"),
        Ok(workflow) => panic!("expected a parse error, got {workflow:?}"),
    }
}
