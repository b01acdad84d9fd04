//! `orch run --pool NAME=LIMIT`: pools that tasks name in their file, declared on the
//! command line; an undeclared pool or a bad limit is a clear error before anything runs.

mod common;

use common::{Dir, parts, run_in};

/// Three tasks in pool `gpu` that each log their start and end, and one outside it.
const WORKFLOW: &str = r#"workflow_id: w
tasks:
  a: { task_type: command, pool: gpu, config: { shell: true, script: 'echo start >> gpu.log; sleep 0.2; echo end >> gpu.log' } }
  b: { task_type: command, pool: gpu, config: { shell: true, script: 'echo start >> gpu.log; sleep 0.2; echo end >> gpu.log' } }
  c: { task_type: command, pool: gpu, config: { shell: true, script: 'echo start >> gpu.log; sleep 0.2; echo end >> gpu.log' } }
  free: { task_type: sleep, config: { seconds: 0.1 } }
"#;

#[test]
fn a_pool_runs_at_most_its_limit_of_tasks_at_once() {
    let dir = Dir::new();
    dir.write("w.yaml", WORKFLOW);
    let args = [
        "run",
        "w.yaml",
        "--max-concurrent",
        "4",
        "--pool",
        "gpu=1",
        "-o",
        "r.json",
    ];
    let (code, stdout, stderr) = parts(&run_in(&dir, &args));
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let log = std::fs::read_to_string(dir.join("gpu.log")).expect("the tasks logged");
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(
        lines,
        ["start", "end", "start", "end", "start", "end"],
        "one gpu task at a time"
    );
    assert_eq!(dir.json("r.json")["status"], "completed");
}

#[test]
fn an_undeclared_pool_or_a_bad_limit_stops_the_run_before_anything_starts() {
    let dir = Dir::new();
    dir.write("w.yaml", WORKFLOW);
    let (code, stdout, stderr) = parts(&run_in(&dir, &["run", "w.yaml", "-o", "r.json"]));
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    assert!(
        stderr.starts_with("orch run: task `a` runs in pool `gpu`, which is not declared"),
        "the pool and a task in it are named: {stderr}"
    );
    assert!(stderr.contains("--pool gpu=2"), "{stderr}");
    // With a journal too: nothing is recorded, and no resume is offered.
    let journaled = ["run", "w.yaml", "--journal", "j"];
    let (code, _, stderr) = parts(&run_in(&dir, &journaled));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(!stderr.contains("--resume"), "{stderr}");
    let recorded = std::fs::read_dir(dir.join("j")).map_or(0, |entries| entries.count());
    assert_eq!(recorded, 0, "the journal holds no run");
    let twice = ["run", "w.yaml", "--pool", "gpu=1", "--pool", "gpu=3"];
    let (code, _, stderr) = parts(&run_in(&dir, &twice));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("--pool gpu=... is given more than once"),
        "{stderr}"
    );
    assert!(!dir.join("gpu.log").exists(), "nothing ran");
    for bad in ["gpu=0", "gpu", "=2", "gpu=many"] {
        let (code, _, stderr) = parts(&run_in(&dir, &["run", "w.yaml", "--pool", bad]));
        assert_eq!(code, Some(2), "--pool {bad}: {stderr}");
        assert!(stderr.contains("--pool"), "--pool {bad}: {stderr}");
    }
    assert!(!dir.join("gpu.log").exists(), "nothing ran");
}

#[test]
fn a_pool_whose_name_holds_an_equals_sign_is_declared_with_its_whole_name() {
    let dir = Dir::new();
    let workflow = "workflow_id: w\ntasks:\n  a: { task_type: echo, pool: 'gpu=a100', config: { message: hi } }\n";
    dir.write("w.yaml", workflow);
    let args = ["run", "w.yaml", "--pool", "gpu=a100=1", "-o", "r.json"];
    let (code, stdout, stderr) = parts(&run_in(&dir, &args));
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert_eq!(dir.json("r.json")["status"], "completed");
}
