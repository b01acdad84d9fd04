//! Validating on several threads when the system refuses to start them: the work is
//! done on the calling thread instead, with the same outcome.
//!
//! The test runs itself again as a child process whose thread stacks cannot be mapped
//! (`RUST_MIN_STACK` larger than the address space), so every thread start fails.

use std::process::Command;

use orch_core::{Task, Workflow};

const CHILD: &str = "ORCH_THREADS_REFUSED_CHILD";

fn workflow() -> Workflow {
    let tasks = (0..2_000usize).map(|i| {
        let task = Task::new(format!("t{i}"), if i % 2 == 0 { "a" } else { "b" });
        match i {
            0 => task,
            // One unknown dependency, so the problems are compared too.
            1_500 => task.depends_on([format!("t{}", i / 2), "missing".to_string()]),
            _ => task.depends_on([format!("t{}", i / 2)]),
        }
    });
    Workflow::from_tasks("w", "W", tasks.collect::<Vec<_>>())
}

#[test]
fn validation_on_threads_the_system_refuses_runs_on_the_calling_thread() {
    if std::env::var_os(CHILD).is_some() {
        // The premise: no thread can be started in this process.
        assert!(
            std::thread::Builder::new().spawn(|| ()).is_err(),
            "a thread started, so this child tests nothing"
        );
        let one = workflow().validate().expect_err("one unknown dependency");
        let many = workflow()
            .validate_parallel(4)
            .expect_err("one unknown dependency");
        assert_eq!(one.into_vec(), many.into_vec());
        return;
    }
    let test = "validation_on_threads_the_system_refuses_runs_on_the_calling_thread";
    let output = Command::new(std::env::current_exe().expect("the test binary"))
        .args(["--exact", test, "--test-threads=1", "--nocapture"])
        .env(CHILD, "1")
        .env("RUST_MIN_STACK", (1u64 << 50).to_string())
        .output()
        .expect("the child test runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "child failed: {}\n{stdout}\n{stderr}",
        output.status
    );
}
