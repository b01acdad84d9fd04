//! `metrics_exporter`: the Prometheus text counts every task of every run, per task type
//! and outcome.

#[path = "../metrics_exporter.rs"]
#[allow(dead_code)]
mod metrics_exporter;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exporter_text_counts_every_task_of_every_run() {
    let exporter = metrics_exporter::install_exporter().expect("first install");
    let outcome = metrics_exporter::run(&exporter, 3).await.expect("runs");
    for task_type in ["fetch", "process"] {
        let seen = outcome.recorder.task_type(task_type).expect("seen");
        assert_eq!((seen.started, seen.completed), (3, 3), "{task_type}");
        assert_eq!(seen.durations.count, 3, "{task_type}");
    }
    let text = &outcome.prometheus_text;
    for task_type in ["fetch", "process"] {
        let counter =
            format!(r#"orch_tasks_total{{task_type="{task_type}",outcome="completed"}} 3"#);
        assert!(text.contains(&counter), "{text}");
    }
    assert!(text.contains("orch_task_duration_seconds"), "{text}");
    // A second exporter cannot be installed in the same process.
    assert!(metrics_exporter::install_exporter().is_err());
}
