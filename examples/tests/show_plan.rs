//! `show_plan`: a workflow file's order and levels as text, and a clear error for a bad file.

#[path = "../show_plan.rs"]
#[allow(dead_code)]
mod show_plan;

#[test]
fn the_ml_pipeline_file_is_shown_in_dependency_order_with_levels() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/workflows/ml_pipeline.yaml");
    let text = show_plan::plan_text(path).expect("a valid file");
    let order: Vec<&str> = text
        .lines()
        .skip_while(|line| *line != "execution order:")
        .skip(1)
        .take_while(|line| *line != "levels:")
        .filter_map(|line| line.split_whitespace().nth(1))
        .collect();
    assert_eq!(
        order,
        [
            "load",
            "validate",
            "clean",
            "feature_eng",
            "split",
            "train",
            "evaluate"
        ]
    );
    assert!(text.contains("\n  0  load\n"), "{text}");
    assert!(text.contains("\n  6  evaluate\n"), "{text}");
}

#[test]
fn a_cycle_is_reported_naming_the_workflow() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("cycle.yaml");
    std::fs::write(
        &path,
        "workflow_id: loop\ntasks:\n  a: {task_type: t, dependencies: [b]}\n  b: {task_type: t, dependencies: [a]}\n",
    )
    .expect("written");
    let error = show_plan::plan_text(path.to_str().expect("utf-8")).expect_err("a cycle");
    assert!(
        error.starts_with("loop is not a valid workflow:"),
        "{error}"
    );
    assert!(error.contains("cycle"), "{error}");
}
