//! A `command` task's process: a working directory that is not there, a background
//! process that leaves the command's process group, and what a stopped command writes to
//! standard error.

mod common;

use common::{Dir, parts, run_in, task_error};
use serde_json::Value;

fn error(result: &Value, task: &str) -> String {
    task_error(result, task)
}

#[test]
fn a_missing_working_directory_is_named_with_its_task() {
    let dir = Dir::new();
    dir.write("afile", "");
    dir.write(
        "w.yaml",
        r#"workflow_id: w
tasks:
  x: { task_type: command, retries: 2, config: { program: 'true', cwd: no-such-dir } }
  y: { task_type: command, config: { shell: true, script: 'true', cwd: afile } }
"#,
    );
    let (code, stdout, stderr) = parts(&run_in(&dir, &["run", "w.yaml", "-o", "r.json"]));
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    let result = dir.json("r.json");
    assert_eq!(
        error(&result, "x"),
        "working directory `no-such-dir` of task `x` does not exist"
    );
    assert_eq!(result["tasks"]["x"]["attempts"], 1, "not retried");
    assert_eq!(
        error(&result, "y"),
        "working directory `afile` of task `y` is not a directory"
    );
}
