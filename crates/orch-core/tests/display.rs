//! Every public type of orch-core with a `Display` honours width, fill and alignment, so
//! values line up in tables (`{id:<18}`).

use orch_core::{EngineEventKind, Format, TaskId, TaskStatus, TriggerRule, WorkflowStatus};

#[test]
fn task_ids_pad() {
    let id = TaskId::from("load");
    assert_eq!(format!("[{id:<8}]"), "[load    ]");
    assert_eq!(format!("[{id:>8}]"), "[    load]");
    assert_eq!(format!("[{id:*^8}]"), "[**load**]");
    assert_eq!(format!("[{id:.2}]"), "[lo]");
    assert_eq!(format!("[{id}]"), "[load]");
}

#[test]
fn trigger_rules_pad() {
    assert_eq!(
        format!("[{:<12}]", TriggerRule::OneSuccess),
        "[one_success ]"
    );
    assert_eq!(format!("[{:>12}]", TriggerRule::AllDone), "[    all_done]");
}

#[test]
fn task_statuses_pad() {
    assert_eq!(format!("[{:<10}]", TaskStatus::Skipped), "[skipped   ]");
    assert_eq!(format!("[{:>10}]", TaskStatus::Completed), "[ completed]");
    assert_eq!(format!("[{:-^9}]", TaskStatus::Failed), "[-failed--]");
}

#[test]
fn workflow_statuses_pad() {
    assert_eq!(format!("[{:<10}]", WorkflowStatus::Failed), "[failed    ]");
    assert_eq!(
        format!("[{:>11}]", WorkflowStatus::Cancelled),
        "[  cancelled]"
    );
}

#[test]
fn event_kinds_pad() {
    assert_eq!(
        format!("[{:<10}]", EngineEventKind::TaskRetrying),
        "[retrying  ]"
    );
    assert_eq!(
        format!("[{:>9}]", EngineEventKind::WorkflowFinished),
        "[ finished]"
    );
}

#[test]
fn formats_pad() {
    assert_eq!(format!("[{:<6}]", Format::Yaml), "[YAML  ]");
    assert_eq!(format!("[{:>6}]", Format::Toml), "[  TOML]");
}
