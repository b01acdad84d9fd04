//! Where `orch` writes: an unwritable result file found before the run starts, an
//! interrupted run whose result cannot be written still reporting the interruption.

mod common;

use common::{Dir, parts, run_in, start_sleeper};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// A workflow whose only task leaves `ran` behind when it runs.
const MARKS: &str = "workflow_id: w\ntasks:\n  a: { task_type: command, config: { program: touch, args: [ran] } }\n";

#[test]
fn an_unwritable_result_file_stops_the_run_before_any_task_runs() {
    let dir = Dir::new();
    dir.write("w.yaml", MARKS);
    std::fs::create_dir(dir.join("adir")).expect("a directory");
    for target in ["adir", "/nonexistent/r.json", "no/such/dir/r.json"] {
        let (code, stdout, stderr) = parts(&run_in(&dir, &["run", "w.yaml", "-o", target]));
        assert_eq!(code, Some(2), "{target}: {stdout}{stderr}");
        assert!(
            stderr.contains(&format!("orch run: cannot write result file {target}: ")),
            "{target}: {stderr}"
        );
        assert!(!dir.join("ran").exists(), "{target}: the task ran");
    }
    // Nothing was left in the directory the result file was to go to.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("listed")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
}

#[test]
fn an_interrupted_run_whose_result_cannot_be_written_still_exits_130() {
    let dir = Dir::new();
    let (child, _) = start_sleeper(&dir, &["--output", "r.json"]);
    // The result file's place is taken by a directory while the run lasts.
    std::fs::create_dir(dir.join("r.json")).expect("a directory");
    std::fs::write(dir.join("r.json").join("keep"), "").expect("written");
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).expect("SIGINT sent");
    let (code, stdout, stderr) = parts(&child.wait_with_output().expect("orch ends"));
    assert_eq!(code, Some(130), "{stdout}{stderr}");
    assert!(
        stderr.contains("cannot write result file r.json"),
        "{stderr}"
    );
}
