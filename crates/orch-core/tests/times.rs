//! Times in records and events, whatever their year: RFC 3339 for years 0000 to 9999, a
//! signed, expanded year outside them, and every one of them reads back.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use orch_core::{
    EngineEvent, EngineEventKind, Task, TaskRecord, TaskRecords, TaskStatus, Workflow,
    WorkflowResult, WorkflowStatus,
};
use proptest::prelude::*;

/// The first second of year 10000.
const YEAR_10000: u64 = 253_402_300_800;
/// Seconds from the first second of year 0 to the Unix epoch.
const YEAR_0: u64 = 62_167_219_200;

fn result(start: SystemTime, end: SystemTime) -> WorkflowResult {
    let workflow = Workflow::new("w", "W").task(Task::new("a", "t"));
    let record = TaskRecord {
        status: TaskStatus::Completed,
        start_time: Some(start),
        end_time: Some(end),
        attempts: 1,
        ..TaskRecord::default()
    };
    WorkflowResult {
        workflow_id: "w".into(),
        run_id: orch_core::RunId::new(),
        name: "W".into(),
        status: WorkflowStatus::Completed,
        start_time: start,
        end_time: end,
        max_concurrent: 1,
        tasks: TaskRecords::for_workflow(&workflow, vec![record]).expect("one per task"),
    }
}

#[test]
fn results_before_1970_and_after_9999_serialise_and_read_back() {
    let cases = [
        (
            UNIX_EPOCH - Duration::from_millis(500),
            "1969-12-31T23:59:59.500000Z",
        ),
        (
            UNIX_EPOCH - Duration::from_secs(YEAR_0),
            "0000-01-01T00:00:00.000000Z",
        ),
        (
            UNIX_EPOCH - Duration::from_secs(YEAR_0 + 1),
            "-0001-12-31T23:59:59.000000Z",
        ),
        (
            UNIX_EPOCH + Duration::from_secs(YEAR_10000 - 1),
            "9999-12-31T23:59:59.000000Z",
        ),
        (
            UNIX_EPOCH + Duration::from_secs(YEAR_10000) + Duration::from_micros(7),
            "+10000-01-01T00:00:00.000007Z",
        ),
    ];
    for (time, text) in cases {
        let result = result(time, time + Duration::from_secs(2));
        let value = result.to_value();
        assert_eq!(value["start_time"], text);
        assert_eq!(value["tasks"]["a"]["start_time"], text);
        assert_eq!(value["total_duration"], 2.0);
        let back: WorkflowResult = serde_json::from_str(&result.to_json()).expect("reads back");
        assert_eq!(back, result, "{text}");
    }
}

#[test]
fn the_earliest_and_latest_system_times_serialise_and_read_back() {
    let latest = UNIX_EPOCH + Duration::new(i64::MAX as u64, 999_999_000);
    let earliest = UNIX_EPOCH - Duration::from_secs(i64::MAX as u64) - Duration::from_secs(1);
    let result = result(earliest, latest);
    let value = result.to_value();
    assert_eq!(value["end_time"], "+292277026596-12-04T15:30:07.999999Z");
    assert_eq!(value["start_time"], "-292277022657-01-27T08:29:52.000000Z");
    let back: WorkflowResult = serde_json::from_value(value).expect("reads back");
    assert_eq!(back, result);
}

#[test]
fn events_before_1970_serialise() {
    let event = EngineEvent::new(
        EngineEventKind::WorkflowStarted,
        "w".into(),
        orch_core::RunId::new(),
        UNIX_EPOCH - Duration::from_secs(86_400),
    );
    let value = serde_json::to_value(&event).expect("serialises");
    assert_eq!(value["timestamp"], "1969-12-31T00:00:00.000000Z");
    let late = EngineEvent {
        timestamp: UNIX_EPOCH + Duration::from_secs(YEAR_10000),
        ..event
    };
    let value = serde_json::to_value(&late).expect("serialises");
    assert_eq!(value["timestamp"], "+10000-01-01T00:00:00.000000Z");
}

#[test]
fn times_read_back_in_the_forms_accepted_before() {
    let text = |time: &str| format!(r#"{{"status": "completed", "start_time": "{time}"}}"#);
    let second = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    for (form, expected) in [
        ("2023-11-14T22:13:20Z", second),
        ("2023-11-14 22:13:20", second),
        ("2023-11-14T22:13:20+00:00", second),
        ("2023-11-14T23:13:20+01:00", second),
        (
            "2023-11-14T22:13:20.25Z",
            second + Duration::from_millis(250),
        ),
        ("2023-11-14T22:13:60Z", second + Duration::from_secs(39)),
    ] {
        let record: TaskRecord = serde_json::from_str(&text(form)).expect(form);
        assert_eq!(record.start_time, Some(expected), "{form}");
    }
    for bad in [
        "2023-13-14T22:13:20Z",
        "2023-02-29T00:00:00Z",
        "2023-11-14T24:00:00Z",
        "2023-11-14",
        "+292277026597-01-01T00:00:00Z",
        "99999999999999999999999-01-01T00:00:00Z",
    ] {
        let error = serde_json::from_str::<TaskRecord>(&text(bad)).expect_err(bad);
        assert!(error.to_string().contains(bad), "{bad}: {error}");
    }
}

proptest! {
    #[test]
    fn any_time_to_the_microsecond_reads_back(secs in any::<i64>(), micros in 0u32..1_000_000) {
        let time = if secs >= 0 {
            UNIX_EPOCH + Duration::new(secs as u64, micros * 1_000)
        } else {
            UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()) + Duration::from_micros(micros.into())
        };
        let result = result(time, time);
        let back: WorkflowResult = serde_json::from_str(&result.to_json()).expect("reads back");
        prop_assert_eq!(back, result);
    }

    #[test]
    fn times_from_1970_to_9999_are_written_as_before(secs in 0..YEAR_10000, micros in 0u32..1_000_000) {
        let time = UNIX_EPOCH + Duration::new(secs, micros * 1_000);
        let value = result(time, time).to_value();
        let expected = humantime::format_rfc3339_micros(time).to_string();
        prop_assert_eq!(value["start_time"].as_str(), Some(expected.as_str()));
    }
}

/// An invalid time is named in the error escaped and cut short: the file holding it may
/// hold anything, a terminal's escape sequences or a megabyte of text.
#[test]
fn an_invalid_time_is_named_escaped_and_cut_short() {
    let text = |time: &str| format!(r#"{{"status": "completed", "start_time": "{time}"}}"#);
    let hostile = format!("\\u001b[2J\\u202e{}", "9".repeat(10_000));
    let error = serde_json::from_str::<TaskRecord>(&text(&hostile)).expect_err("not a time");
    let message = error.to_string();
    assert!(
        !message.chars().any(orch_core::is_hidden_control),
        "{message}"
    );
    assert!(
        message.contains("invalid time `\\u{1b}[2J\\u{202e}999"),
        "{message}"
    );
    assert!(message.len() < 300, "{message}");
}
