//! The file journal: what it writes reads back equal, any prefix of a file reads as a
//! prefix of the run, and what cannot be trusted is refused with its file and line.

#![allow(clippy::unwrap_used)] // in tests, a failed unwrap is a failed test

mod common;

use std::fs;
use std::io::Write;
use std::path::Path;

use common::{block_on, completed, in_force, workflow_of};
use orch_core::{RunId, Task, TaskId, TaskRecord, TaskStatus, Workflow, WorkflowStatus};
use orch_journal::{
    Durability, FileJournal, Journal, JournalError, RunFilter, RunStatus, RunWriter,
};
use proptest::prelude::*;
use serde_json::json;

fn run_id(text: &str) -> RunId {
    RunId::parse(text).unwrap()
}

fn failed(error: &str) -> TaskRecord {
    TaskRecord {
        status: TaskStatus::Failed,
        error: Some(error.to_owned()),
        attempts: 2,
        ..TaskRecord::default()
    }
}

fn append(writer: &dyn RunWriter, records: &[(&str, TaskRecord)]) {
    let ids: Vec<TaskId> = records.iter().map(|(id, _)| TaskId::from(*id)).collect();
    let pairs: Vec<(&TaskId, &TaskRecord)> =
        ids.iter().zip(records.iter().map(|(_, r)| r)).collect();
    block_on(writer.append(&pairs)).unwrap();
}

/// Writes `batches` as run `r` of a workflow with tasks `ids`, optionally finishing it.
fn write_run(
    journal: &FileJournal,
    ids: &[String],
    batches: &[Vec<(usize, TaskRecord)>],
    end: Option<WorkflowStatus>,
    durability: Durability,
) -> Vec<(TaskId, TaskRecord)> {
    let workflow = workflow_of("w", ids);
    let opened = block_on(journal.open(&run_id("r"), &workflow)).unwrap();
    let mut written = Vec::new();
    for batch in batches {
        let owned: Vec<(TaskId, TaskRecord)> = batch
            .iter()
            .map(|(i, r)| (TaskId::from(ids[*i].as_str()), r.clone()))
            .collect();
        let pairs: Vec<(&TaskId, &TaskRecord)> = owned.iter().map(|(i, r)| (i, r)).collect();
        block_on(opened.writer.commit(&pairs, durability)).unwrap();
        written.extend(owned);
    }
    if let Some(status) = end {
        block_on(opened.writer.finish(status)).unwrap();
    }
    written
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn a_run_reads_back_as_written(
        (ids, batches) in common::run(6),
        end in prop::option::of(prop_oneof![
            Just(WorkflowStatus::Completed),
            Just(WorkflowStatus::Failed),
            Just(WorkflowStatus::Cancelled),
        ]),
        power in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let journal = FileJournal::new(dir.path()).unwrap();
        let durability = if power { Durability::Power } else { Durability::Process };
        let written = write_run(&journal, &ids, &batches, end, durability);
        let loaded = block_on(journal.load(&run_id("r"))).unwrap().unwrap();
        prop_assert_eq!(loaded.records(), written.as_slice());
        prop_assert_eq!(loaded.workflow_id(), "w");
        prop_assert_eq!(loaded.status(), end.map_or(RunStatus::Unfinished, RunStatus::from));
        for id in &ids {
            prop_assert_eq!(loaded.task(id), in_force(&written, id));
        }
        // The previous result for a resume holds every task, pending where unrecorded.
        let result = loaded.to_result(&workflow_of("w", &ids)).unwrap();
        for id in &ids {
            let expected = in_force(&written, id).cloned().unwrap_or_default();
            prop_assert_eq!(result.task(id), Some(&expected));
        }
    }

    #[test]
    fn any_prefix_of_a_file_reads_as_a_prefix_of_the_run(
        (ids, batches) in common::run(4),
        finish in any::<bool>(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 24),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let journal = FileJournal::new(dir.path().join("whole")).unwrap();
        let end = finish.then_some(WorkflowStatus::Failed);
        let written = write_run(&journal, &ids, &batches, end, Durability::Process);
        let bytes = fs::read(journal.path_of(&run_id("r"))).unwrap();
        let head_len = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
        // Every line end, a byte either side of it, and random places.
        let mut places: Vec<usize> = vec![0, bytes.len()];
        for (i, &b) in bytes.iter().enumerate() {
            if b == b'\n' {
                places.extend([i, i + 1, i + 2]);
            }
        }
        places.extend(cuts.iter().map(|c| c.index(bytes.len() + 1)));
        places.retain(|&p| p <= bytes.len());
        places.sort_unstable();
        places.dedup();
        let cut_journal = FileJournal::new(dir.path().join("cut")).unwrap();
        let cut_path = cut_journal.path_of(&run_id("r"));
        for cut in places {
            fs::write(&cut_path, &bytes[..cut]).unwrap();
            let loaded = block_on(cut_journal.load(&run_id("r")));
            if cut < head_len {
                prop_assert!(
                    matches!(loaded, Err(JournalError::HeadMissing { .. })),
                    "cut at {} inside the head: {:?}", cut, loaded
                );
                continue;
            }
            let loaded = loaded.unwrap().unwrap();
            let lines = bytes[..cut].iter().filter(|&&b| b == b'\n').count();
            let tasks = (lines - 1).min(written.len());
            prop_assert_eq!(loaded.records(), &written[..tasks], "cut at {}", cut);
            let ended = lines - 1 > written.len();
            prop_assert_eq!(loaded.status() == RunStatus::Failed, ended, "cut at {}", cut);
        }
    }

    #[test]
    fn zeros_a_power_cut_left_inside_a_file_read_as_the_end_of_the_run(
        (ids, batches) in common::run(4),
        gap in (any::<prop::sample::Index>(), 512usize..5000),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let journal = FileJournal::new(dir.path()).unwrap();
        let written = write_run(&journal, &ids, &batches, None, Durability::Process);
        let path = journal.path_of(&run_id("r"));
        let mut bytes = fs::read(&path).unwrap();
        let head_len = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
        // A lost write: a sector or more of zeros from anywhere after the head, with
        // lines after them kept.
        let start = head_len + gap.0.index(bytes.len() - head_len + 1);
        let end = (start + gap.1).min(bytes.len());
        bytes[start..end].fill(0);
        fs::write(&path, &bytes).unwrap();
        let tasks = bytes[..start].iter().filter(|&&b| b == b'\n').count() - 1;
        let loaded = block_on(journal.load(&run_id("r"))).unwrap().unwrap();
        prop_assert_eq!(loaded.records(), &written[..tasks]);
        // Reopened, the run goes on from there.
        let opened = block_on(journal.open(&run_id("r"), &workflow_of("w", &ids))).unwrap();
        let id = TaskId::from(ids[0].as_str());
        let after = completed(json!("after the gap"));
        block_on(opened.writer.commit(&[(&id, &after)], Durability::Process)).unwrap();
        drop(opened);
        let loaded = block_on(journal.load(&run_id("r"))).unwrap().unwrap();
        let mut expected = written[..tasks].to_vec();
        expected.push((id, after));
        prop_assert_eq!(loaded.records(), expected.as_slice());
    }
}

#[test]
fn a_file_that_is_not_a_journal_is_refused_and_left_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let journal = FileJournal::new(dir.path()).unwrap();
    let workflow = Workflow::new("w", "W").task(Task::new("a", "t"));
    let run = run_id("report");
    // No complete line: read as a torn head before, and emptied by the open.
    let path = journal.path_of(&run);
    fs::write(&path, br#"{"a":1}"#).unwrap();
    let opened = block_on(journal.open(&run, &workflow));
    let Err(error) = opened else {
        panic!("opened a file that is not a journal");
    };
    assert!(
        matches!(&error, JournalError::NotAJournal { path: at } if *at == path),
        "{error}"
    );
    assert_eq!(fs::read(&path).unwrap(), br#"{"a":1}"#);
    // Listing the journal's runs passes over it.
    assert!(
        block_on(journal.list(&RunFilter::default()))
            .unwrap()
            .is_empty()
    );
    // Whole lines of something else too: they are not a journal's unreadable lines.
    for other in [&b"{\"a\":1}\n"[..], b"hello\nworld\n", b"\n", b"{\n"] {
        fs::write(&path, other).unwrap();
        assert!(
            matches!(
                block_on(journal.load(&run)),
                Err(JournalError::NotAJournal { .. })
            ),
            "{:?}",
            String::from_utf8_lossy(other)
        );
        assert!(block_on(journal.open(&run, &workflow)).is_err());
        assert_eq!(fs::read(&path).unwrap(), other);
        let listed = block_on(journal.list(&RunFilter::default()));
        assert!(listed.unwrap().is_empty());
    }
    // A head cut short, or lost to zeros, still reads as a run never recorded.
    for torn in [&br#"{"v":1,"seq":0,"ki"#[..], &[0; 40]] {
        fs::write(&path, torn).unwrap();
        assert!(matches!(
            block_on(journal.load(&run)),
            Err(JournalError::HeadMissing { .. })
        ));
    }
}

/// A power cut that loses the file's first block while later ones reached the disk
/// leaves zeros where the head was: the file is said damaged there, not "not a journal",
/// and is left as it is. So does one that loses a block in the middle of the head (a
/// workflow of many tasks has a head of several blocks).
#[test]
fn a_head_lost_to_zeros_with_lines_after_it_is_corrupt_at_line_1() {
    let dir = tempfile::tempdir().unwrap();
    let journal = FileJournal::new(dir.path()).unwrap();
    let run = run_id("r");
    let opened = block_on(journal.open(&run, &three_tasks())).unwrap();
    for n in 0..40 {
        let error = format!("try {n}: {}", "out of memory ".repeat(20));
        append(&*opened.writer, &[("c", failed(&error))]);
    }
    drop(opened);
    let path = journal.path_of(&run);
    let written = fs::read(&path).unwrap();
    let mut bytes = written.clone();
    assert!(
        bytes.len() > 8192,
        "the run's file spans more than one block"
    );
    bytes[..4096].fill(0);
    fs::write(&path, &bytes).unwrap();
    let lost = |error: &JournalError| {
        matches!(error, JournalError::Corrupt { at, reason }
            if at.ends_with(", line 1") && reason.contains("head") && reason.contains("lost"))
    };
    let loaded = block_on(journal.load(&run));
    assert!(matches!(&loaded, Err(e) if lost(e)), "{loaded:?}");
    let opened = block_on(journal.open(&run, &three_tasks()));
    assert!(matches!(&opened, Err(e) if lost(e)), "opened a damaged run");
    assert_eq!(fs::read(&path).unwrap(), bytes);
    let listed = block_on(journal.list(&RunFilter::default()));
    assert!(matches!(&listed, Err(e) if lost(e)), "{listed:?}");
    // The same when a later block of a head that spans several was lost.
    let mut head_torn = fs::read(&path).unwrap();
    head_torn[..4096].copy_from_slice(&written[..4096]);
    head_torn[20..40].fill(0);
    fs::write(&path, &head_torn).unwrap();
    let loaded = block_on(journal.load(&run));
    assert!(matches!(&loaded, Err(e) if lost(e)), "{loaded:?}");
    // The same with no complete line after the zeros; zeros alone are a head cut short.
    let mut torn = vec![0; 4096];
    torn.extend_from_slice(br#"{"v":1,"seq":9,"ki"#);
    fs::write(&path, &torn).unwrap();
    let loaded = block_on(journal.load(&run));
    assert!(matches!(&loaded, Err(e) if lost(e)), "{loaded:?}");
    fs::write(&path, [0; 4096]).unwrap();
    let loaded = block_on(journal.load(&run));
    assert!(
        matches!(loaded, Err(JournalError::HeadMissing { .. })),
        "{loaded:?}"
    );
}

fn lines_of(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn three_tasks() -> Workflow {
    Workflow::new("w", "W")
        .task(Task::new("a", "t"))
        .task(Task::new("b", "t").depends_on(["a"]))
        .task(Task::new("c", "t"))
}

/// A journal in a temporary directory with run `r` of [`three_tasks`]: `a` completed,
/// `b` failed, `c` not recorded.
fn recorded_run() -> (tempfile::TempDir, FileJournal) {
    let dir = tempfile::tempdir().unwrap();
    let journal = FileJournal::new(dir.path()).unwrap();
    let opened = block_on(journal.open(&run_id("r"), &three_tasks())).unwrap();
    append(
        &*opened.writer,
        &[("a", completed(json!({"rows": 3}))), ("b", failed("boom"))],
    );
    (dir, journal)
}

#[test]
fn the_line_format_is_versioned_and_numbered() {
    let (_dir, journal) = recorded_run();
    let lines = lines_of(&journal.path_of(&run_id("r")));
    assert_eq!(lines.len(), 3);
    assert!(
        lines[0].starts_with(
            r#"{"v":1,"seq":0,"kind":"head","run_id":"r","workflow_id":"w","name":"W","time":""#
        ),
        "{}",
        lines[0]
    );
    assert!(lines[1].starts_with(r#"{"v":1,"seq":1,"kind":"task","task_id":"a","attempt":1,"status":"completed","result":{"rows":3}}"#), "{}", lines[1]);
    assert_eq!(
        lines[2],
        r#"{"v":1,"seq":2,"kind":"task","task_id":"b","attempt":2,"status":"failed","error":"boom"}"#
    );
}

/// DEL and the C1 controls in a record (a command's output) are written as JSON
/// escapes, so a terminal showing the file runs no escape sequence; they read back as
/// they were.
#[test]
fn control_characters_in_a_record_are_escaped_in_the_file_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let journal = FileJournal::new(dir.path()).unwrap();
    let opened = block_on(journal.open(&run_id("r"), &three_tasks())).unwrap();
    let text = "clear\u{9b}2J then\u{7f} and \u{85}é";
    append(
        &*opened.writer,
        &[("a", completed(json!({ text: text }))), ("b", failed(text))],
    );
    let bytes = fs::read(journal.path_of(&run_id("r"))).unwrap();
    let raw = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(!raw(&[0xc2, 0x9b]) && !raw(&[0x7f]) && !raw(&[0xc2, 0x85]));
    assert!(raw(b"\\u009b2J") && raw("é".as_bytes()));
    let loaded = block_on(journal.load(&run_id("r"))).unwrap().unwrap();
    let result = loaded.to_result(&three_tasks()).unwrap();
    assert_eq!(
        result.task("a").unwrap().result,
        Some(json!({ text: text }))
    );
    assert_eq!(result.task("b").unwrap().error.as_deref(), Some(text));
}

#[test]
fn a_reopened_run_gives_its_records_as_the_previous_result() {
    let (_dir, journal) = recorded_run();
    let opened = block_on(journal.open(&run_id("r"), &three_tasks())).unwrap();
    let previous = opened.previous.as_ref().expect("a recorded run");
    assert_eq!(previous.workflow_id, "w");
    assert_eq!(previous.status, WorkflowStatus::Failed);
    assert_eq!(previous.task("a").unwrap().result, Some(json!({"rows": 3})));
    assert_eq!(previous.task("b").unwrap().status, TaskStatus::Failed);
    assert_eq!(previous.task("c").unwrap().status, TaskStatus::Pending);
    assert!(opened.changes.is_empty());
    // Records continue the sequence.
    append(&*opened.writer, &[("b", completed(json!(null)))]);
    drop(opened);
    let loaded = block_on(journal.load(&run_id("r"))).unwrap().unwrap();
    assert_eq!(loaded.task("b").unwrap().status, TaskStatus::Completed);
    assert_eq!(loaded.records().len(), 3);
}

#[test]
fn a_task_dropped_and_added_back_starts_afresh() {
    let dir = tempfile::tempdir().unwrap();
    let journal = FileJournal::new(dir.path()).unwrap();
    block_on(common::a_task_dropped_and_added_back_starts_afresh(
        &journal,
        &run_id("back"),
        "w",
    ));
}

#[test]
fn a_plain_task_in_place_of_a_maps_instance_keeps_its_records() {
    let dir = tempfile::tempdir().unwrap();
    let journal = FileJournal::new(dir.path()).unwrap();
    block_on(
        common::a_plain_task_in_place_of_a_maps_instance_keeps_its_records(
            &journal,
            &run_id("remap-2"),
            "w",
        ),
    );
}

#[test]
fn a_reset_in_a_batch_applies_in_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let journal = FileJournal::new(dir.path()).unwrap();
    let run = run_id("reset-in-place");
    block_on(common::a_reset_in_a_batch_applies_in_its_place(
        &journal, &run, "w",
    ));
}

#[test]
fn a_run_ends_once() {
    let dir = tempfile::tempdir().unwrap();
    let journal = FileJournal::new(dir.path()).unwrap();
    block_on(common::a_run_ends_once(&journal, &run_id("ends"), "w"));
}

#[test]
fn a_reopened_run_is_unfinished_until_it_ends_again() {
    let dir = tempfile::tempdir().unwrap();
    let journal = FileJournal::new(dir.path()).unwrap();
    let run = run_id("reopened");
    block_on(common::a_reopened_run_is_unfinished_until_it_ends_again(
        &journal, &run, "w",
    ));
}

#[test]
fn a_changed_definition_is_taken_with_the_first_record() {
    let dir = tempfile::tempdir().unwrap();
    let journal = FileJournal::new(dir.path()).unwrap();
    block_on(common::a_changed_definition_is_taken_with_the_first_record(
        &journal,
        &run_id("changed"),
        "w",
    ));
}

#[test]
fn a_result_too_deep_to_read_back_is_refused_and_the_run_still_opens() {
    let (_dir, journal) = recorded_run();
    let opened = block_on(journal.open(&run_id("r"), &three_tasks())).unwrap();
    let deep = (0..200).fold(json!(1), |inner, _| json!([inner]));
    let c = TaskId::from("c");
    let error = block_on(opened.writer.append(&[(&c, &completed(deep))])).unwrap_err();
    assert!(
        matches!(
            error,
            JournalError::InvalidRecord {
                field: "result",
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().starts_with("task `c`: "), "{error}");
    drop(opened);
    let loaded = block_on(journal.load(&run_id("r"))).unwrap().unwrap();
    assert!(loaded.task("c").is_none(), "nothing of it was written");
    assert_eq!(loaded.task("a").unwrap().result, Some(json!({"rows": 3})));
}

#[test]
fn a_completed_record_is_final() {
    let (_dir, journal) = recorded_run();
    let opened = block_on(journal.open(&run_id("r"), &three_tasks())).unwrap();
    append(&*opened.writer, &[("a", failed("late duplicate"))]);
    let loaded = block_on(journal.load(&run_id("r"))).unwrap().unwrap();
    assert_eq!(loaded.task("a").unwrap().status, TaskStatus::Completed);
    assert_eq!(loaded.records().len(), 3);
}

#[test]
fn a_run_of_another_workflow_is_refused() {
    let (_dir, journal) = recorded_run();
    let other = Workflow::new("other", "O").task(Task::new("a", "t"));
    let err = block_on(journal.open(&run_id("r"), &other)).unwrap_err();
    let path = journal.path_of(&run_id("r"));
    assert_eq!(
        err.to_string(),
        format!(
            "{}, line 1: run `r` belongs to workflow `w`, not `other`",
            path.display()
        )
    );
}

#[test]
fn a_changed_completed_task_is_refused_saying_what_changed() {
    let (_dir, journal) = recorded_run();
    let changed = Workflow::new("w", "W")
        .task(Task::new("a", "t").config(json!({"mode": "fast"})))
        .task(Task::new("b", "t").depends_on(["a"]))
        .task(Task::new("d", "t"));
    let err = block_on(journal.open(&run_id("r"), &changed)).unwrap_err();
    let JournalError::WorkflowChanged { stale, changes, .. } = &err else {
        panic!("{err}");
    };
    assert_eq!(stale, &["a"]);
    assert_eq!(changes.to_string(), "added `d`; removed `c`; changed `a`");
    assert!(
        err.to_string().ends_with(
            "line 1: cannot resume run `r`: tasks that completed in it have changed since (`a`); \
             all changes: added `d`; removed `c`; changed `a` (a resume needs each task that \
             completed to keep its type, configuration, dependencies, trigger rule and map: its \
             result came from them)"
        ),
        "{err}"
    );
    // When the completed tasks that changed are all that changed, they are named once.
    let only_a = Workflow::new("w", "W")
        .task(Task::new("a", "t").config(serde_json::json!({"v": 2})))
        .task(Task::new("b", "t").depends_on(["a"]))
        .task(Task::new("c", "t"));
    let err = block_on(journal.open(&run_id("r"), &only_a)).unwrap_err();
    assert!(
        err.to_string()
            .contains("tasks that completed in it have changed since (`a`) (a resume needs"),
        "{err}"
    );
}

/// A run resumed with a changed workflow goes by the definition recorded then: a later
/// refusal names that line, not the head's.
#[test]
fn a_changed_task_is_placed_at_the_definition_the_run_goes_by() {
    let (_dir, journal) = recorded_run();
    let with_d = three_tasks().task(Task::new("d", "t"));
    let opened = block_on(journal.open(&run_id("r"), &with_d)).unwrap();
    append(&*opened.writer, &[("d", completed(json!(1)))]);
    drop(opened);
    let path = journal.path_of(&run_id("r"));
    let lines = lines_of(&path);
    let defined = 1
        + (lines.iter())
            .position(|line| line.contains(r#""kind":"definition""#))
            .expect("the changed workflow's definition");
    assert!(defined > 1);
    let d_changed = three_tasks().task(Task::new("d", "t").config(json!({"x": 1})));
    let err = block_on(journal.open(&run_id("r"), &d_changed)).unwrap_err();
    assert!(
        err.to_string().starts_with(&format!(
            "{}, line {defined}: cannot resume run `r`: tasks that completed in it have changed since (`d`)",
            path.display()
        )),
        "{err}"
    );
}

/// An open refused after the run's file was locked (here for a changed workflow) lets
/// the run go: this journal and another process's open it at once after.
#[test]
fn a_refused_open_leaves_the_run_free_for_the_next() {
    let (dir, journal) = recorded_run();
    let other = FileJournal::new(dir.path()).unwrap();
    let changed = Workflow::new("w", "W").task(Task::new("a", "t").config(json!(1)));
    for refused_by in [&journal, &other] {
        let err = block_on(refused_by.open(&run_id("r"), &changed)).unwrap_err();
        assert!(matches!(err, JournalError::WorkflowChanged { .. }), "{err}");
        for opener in [&journal, &other] {
            let opened = block_on(opener.open(&run_id("r"), &three_tasks())).unwrap();
            assert!(opened.previous.is_some());
        }
    }
}

/// A resumed run writes its changed definition with the resets it makes, in one write.
/// Cut short (the process killed during it, power lost before its sync), the write is
/// read as not made: the new definition never stands without its resets, which the next
/// resume makes again.
#[test]
fn a_definition_written_without_all_its_lines_is_left_out() {
    use orch_core::TriggerRule;
    let skip_rule = |rule| {
        Workflow::new("w", "W")
            .task(Task::new("a", "t"))
            .task(Task::new("s", "t").depends_on(["a"]).trigger_rule(rule))
            .task(Task::new("x", "t"))
    };
    let skipped = TaskRecord {
        status: TaskStatus::Skipped,
        ..TaskRecord::default()
    };
    for cut_within_the_second_line in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let journal = FileJournal::new(dir.path()).unwrap();
        let run = run_id("cut");
        let opened = block_on(journal.open(&run, &skip_rule(TriggerRule::AllSuccess))).unwrap();
        append(
            &*opened.writer,
            &[("a", failed("boom")), ("s", skipped.clone())],
        );
        drop(opened);
        let path = journal.path_of(&run);
        let before = fs::metadata(&path).unwrap().len();
        // The rule changed: the skip is undone (a pending record) with the definition.
        let changed = skip_rule(TriggerRule::AllDone);
        let opened = block_on(journal.open(&run, &changed)).unwrap();
        assert_eq!(opened.changes.changed, [TaskId::from("s")]);
        let pending = TaskRecord::default();
        append(
            &*opened.writer,
            &[("s", pending), ("x", completed(json!(1)))],
        );
        drop(opened);
        let lines = lines_of(&path);
        let definition = lines.len() - 3;
        assert!(lines[definition].contains(r#""kind":"definition""#));
        // Keep the definition line whole, and part or none of the lines after it.
        let mut keep = before + lines[definition].len() as u64 + 1;
        if cut_within_the_second_line {
            keep += lines[definition + 1].len() as u64 + 1 + 5;
        }
        fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(keep)
            .unwrap();

        let loaded = block_on(journal.load(&run)).unwrap().unwrap();
        assert_eq!(loaded.task("s").unwrap().status, TaskStatus::Skipped);
        assert_eq!(loaded.task("x"), None);
        let opened = block_on(journal.open(&run, &changed)).unwrap();
        assert_eq!(opened.changes.changed, [TaskId::from("s")], "decided again");
        // The cut write is gone from the file, and the run goes on after it.
        assert_eq!(fs::metadata(&path).unwrap().len(), before);
        append(&*opened.writer, &[("s", TaskRecord::default())]);
        drop(opened);
        let opened = block_on(journal.open(&run, &changed)).unwrap();
        assert!(opened.changes.is_empty());
        let previous = opened.previous.as_ref().unwrap();
        assert_eq!(previous.task("s").unwrap().status, TaskStatus::Pending);
    }
}

/// A definition line whose count of the lines written with it is wrong (more than
/// follow it, so that the run's end would fall inside its batch) is refused as corrupt,
/// naming the line, rather than cutting off the lines after it when the run is reopened.
#[test]
fn a_definition_counting_more_lines_than_were_written_with_it_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let journal = FileJournal::new(dir.path()).unwrap();
    let run = run_id("miscounted");
    block_on(journal.open(&run, &three_tasks())).unwrap();
    let changed = Workflow::new("w", "W").task(Task::new("a", "t"));
    let opened = block_on(journal.open(&run, &changed)).unwrap();
    append(&*opened.writer, &[("a", completed(json!(1)))]);
    block_on(opened.writer.finish(WorkflowStatus::Completed)).unwrap();
    drop(opened);
    let path = journal.path_of(&run);
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.contains(r#""followed_by":1"#), "{text}");
    fs::write(
        &path,
        text.replace(r#""followed_by":1"#, r#""followed_by":9"#),
    )
    .unwrap();
    let error = block_on(journal.load(&run)).unwrap_err();
    assert!(matches!(error, JournalError::Corrupt { .. }), "{error}");
    // The definition is placed, and the line that shows its count wrong is named.
    let message = error.to_string();
    assert!(message.contains("line 2:"), "{message}");
    assert!(message.contains("line 4 cannot"), "{message}");
    assert_eq!(fs::read_to_string(&path).unwrap().lines().count(), 4);
}

/// Reading a run takes time in proportion to its file, however its definitions change:
/// each definition line that adds or removes a task does not look through every record
/// in force (a file of 50,000 of each was not read in two minutes that way).
#[test]
fn many_definitions_over_many_records_read_in_linear_time() {
    const RECORDS: usize = 50_000;
    const DEFINITIONS: usize = 50_000;
    let dir = tempfile::tempdir().unwrap();
    let journal = FileJournal::new(dir.path()).unwrap();
    let time = "2026-01-01T00:00:00Z";
    let print = "9bf575697125f0f1";
    let mut text = format!(
        r#"{{"v":1,"seq":0,"kind":"head","run_id":"r","workflow_id":"w","name":"W","time":"{time}","tasks":{{"m":"{print}","x":"{print}"}}}}"#
    );
    text.push('\n');
    for item in 0..RECORDS {
        let seq = item + 1;
        text += &format!(
            r#"{{"v":1,"seq":{seq},"kind":"task","task_id":"m[{item}]","attempt":1,"status":"completed","result":1}}"#
        );
        text.push('\n');
    }
    for n in 0..DEFINITIONS {
        let seq = RECORDS + 1 + n;
        // `x` goes and comes back, line after line.
        let x = match n % 2 {
            0 => String::new(),
            _ => format!(r#","x":"{print}""#),
        };
        text += &format!(
            r#"{{"v":1,"seq":{seq},"kind":"definition","time":"{time}","tasks":{{"m":"{print}"{x}}},"followed_by":0}}"#
        );
        text.push('\n');
    }
    fs::write(journal.path_of(&run_id("r")), text).unwrap();
    let (sender, read) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let loaded = block_on(journal.load(&run_id("r")));
        let _ = sender.send(loaded);
    });
    // A guard against a read that would take hours, not a measure.
    let loaded = read
        .recv_timeout(std::time::Duration::from_secs(120))
        .expect("the run is read in time")
        .unwrap()
        .unwrap();
    let last = format!("m[{}]", RECORDS - 1);
    assert_eq!(loaded.task(&last).unwrap().result, Some(json!(1)));
}

#[test]
fn changes_to_unfinished_tasks_are_accepted_and_recorded() {
    let (_dir, journal) = recorded_run();
    // `b` failed: changing it is the usual fix before a resume. `d` is new.
    let fixed = Workflow::new("w", "W")
        .task(Task::new("a", "t"))
        .task(
            Task::new("b", "t")
                .depends_on(["a"])
                .config(json!({"retry": true})),
        )
        .task(Task::new("c", "t"))
        .task(Task::new("d", "t"));
    let opened = block_on(journal.open(&run_id("r"), &fixed)).unwrap();
    assert_eq!(opened.changes.to_string(), "added `d`; changed `b`");
    assert_eq!(
        opened.previous.as_ref().unwrap().task("d").unwrap().status,
        TaskStatus::Pending
    );
    append(
        &*opened.writer,
        &[("d", completed(json!(1))), ("b", completed(json!(2)))],
    );
    drop(opened);
    // The new definition is in force: a new task's record reads back, and the run is
    // no longer changed for `fixed`.
    let loaded = block_on(journal.load(&run_id("r"))).unwrap().unwrap();
    assert_eq!(loaded.task("d").unwrap().result, Some(json!(1)));
    assert!(loaded.changes(&fixed).is_empty());
    let kinds: Vec<String> = lines_of(&journal.path_of(&run_id("r")))
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"].to_string())
        .collect();
    assert_eq!(
        kinds,
        [
            r#""head""#,
            r#""task""#,
            r#""task""#,
            r#""definition""#,
            r#""task""#,
            r#""task""#
        ]
    );
}

/// Writes `line` (with a newline) at the end of run `r`'s file.
fn add_line(journal: &FileJournal, line: &str) {
    let mut file = fs::OpenOptions::new()
        .append(true)
        .open(journal.path_of(&run_id("r")))
        .unwrap();
    writeln!(file, "{line}").unwrap();
}

fn load_error(journal: &FileJournal) -> String {
    block_on(journal.load(&run_id("r")))
        .unwrap_err()
        .to_string()
}

#[test]
fn a_newer_format_is_refused_naming_file_and_line() {
    let (_dir, journal) = recorded_run();
    add_line(
        &journal,
        r#"{"v":2,"seq":3,"kind":"task","fields":"unknown to v1"}"#,
    );
    let path = journal.path_of(&run_id("r"));
    assert_eq!(
        load_error(&journal),
        format!(
            "{}, line 4: written in journal format 2; this version reads up to 1",
            path.display()
        )
    );
}

#[test]
fn a_corrupt_line_is_refused_naming_file_and_line() {
    let (_dir, journal) = recorded_run();
    let path = journal.path_of(&run_id("r"));
    let mut lines = lines_of(&path);
    lines[1] = lines[1].replace("\"completed\"", "\"complete\"");
    fs::write(&path, lines.join("\n") + "\n").unwrap();
    assert_eq!(
        load_error(&journal),
        format!(
            "{}, line 2: unknown task status \"complete\"",
            path.display()
        )
    );
    // A complete last line is not torn: it is refused too.
    let (_dir, journal) = recorded_run();
    add_line(&journal, "{\"v\":1,\"seq\":3,");
    assert!(
        load_error(&journal).contains("line 4: not a journal line"),
        "{}",
        load_error(&journal)
    );
}

#[test]
fn a_missing_or_repeated_line_is_refused() {
    let (_dir, journal) = recorded_run();
    let path = journal.path_of(&run_id("r"));
    let lines = lines_of(&path);
    fs::write(&path, format!("{}\n{}\n", lines[0], lines[2])).unwrap();
    assert_eq!(
        load_error(&journal),
        format!(
            "{}, line 2: sequence number 2 where 1 was expected (a line is missing or repeated)",
            path.display()
        )
    );
}

#[test]
fn a_record_of_a_task_outside_the_workflow_is_refused() {
    let (_dir, journal) = recorded_run();
    add_line(
        &journal,
        r#"{"v":1,"seq":3,"kind":"task","task_id":"zz","attempt":1,"status":"completed"}"#,
    );
    assert!(load_error(&journal).ends_with("line 4: task `zz` is not in the run's workflow"));
}

#[test]
fn a_file_of_another_run_is_refused() {
    let (_dir, journal) = recorded_run();
    let copy = journal.path_of(&run_id("copy"));
    fs::copy(journal.path_of(&run_id("r")), &copy).unwrap();
    let err = block_on(journal.load(&run_id("copy"))).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}, line 1: the head names run `r`, not `copy`",
            copy.display()
        )
    );
}

#[test]
fn a_torn_last_line_is_ignored_then_cut_off_when_the_run_reopens() {
    let (_dir, journal) = recorded_run();
    let path = journal.path_of(&run_id("r"));
    fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(br#"{"v":1,"seq":3,"kind":"task","task_id":"c","att"#)
        .unwrap();
    let loaded = block_on(journal.load(&run_id("r"))).unwrap().unwrap();
    assert_eq!(loaded.records().len(), 2);
    let opened = block_on(journal.open(&run_id("r"), &three_tasks())).unwrap();
    append(&*opened.writer, &[("c", completed(json!("c")))]);
    let loaded = block_on(journal.load(&run_id("r"))).unwrap().unwrap();
    assert_eq!(loaded.task("c").unwrap().result, Some(json!("c")));
    assert_eq!(lines_of(&path).len(), 4);
}

#[test]
fn a_file_without_a_complete_head_is_reported_and_a_new_run_replaces_it() {
    let dir = tempfile::tempdir().unwrap();
    let journal = FileJournal::new(dir.path()).unwrap();
    let path = journal.path_of(&run_id("r"));
    fs::write(&path, br#"{"v":1,"seq":0,"kind":"he"#).unwrap();
    let err = block_on(journal.load(&run_id("r"))).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "`{}` has no complete head line: the run was never recorded",
            path.display()
        )
    );
    let listed = block_on(journal.list(&RunFilter::default())).unwrap();
    assert!(listed.is_empty(), "a run being started is not listed yet");
    let opened = block_on(journal.open(&run_id("r"), &three_tasks())).unwrap();
    assert!(opened.previous.is_none());
    assert_eq!(lines_of(&path).len(), 1);
}

#[cfg(unix)]
#[test]
fn directories_and_files_are_for_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("a/b");
    let journal = FileJournal::new(&nested).unwrap();
    drop(block_on(journal.open(&run_id("r"), &three_tasks())).unwrap());
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir.path().join("a")), 0o700);
    assert_eq!(mode(&nested), 0o700);
    assert_eq!(mode(&journal.path_of(&run_id("r"))), 0o600);
}

#[test]
fn a_run_is_open_once_until_its_writer_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let journal = FileJournal::new(dir.path()).unwrap();
    let opened = block_on(journal.open(&run_id("r"), &three_tasks())).unwrap();
    let err = block_on(journal.clone().open(&run_id("r"), &three_tasks())).unwrap_err();
    assert_eq!(err.to_string(), "run `r` is already open for writing");
    drop(opened);
    assert!(block_on(journal.open(&run_id("r"), &three_tasks())).is_ok());
}

/// Two journals on one directory stand for two processes: the second is refused while
/// the first holds the run's file (the crash test shows the lock ends with a killed
/// process).
#[test]
fn a_run_open_through_another_journal_on_the_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = FileJournal::new(dir.path()).unwrap();
    let second = FileJournal::new(dir.path()).unwrap();
    let opened = block_on(first.open(&run_id("r"), &three_tasks())).unwrap();
    append(opened.writer.as_ref(), &[("a", completed(json!(1)))]);
    let err = block_on(second.open(&run_id("r"), &three_tasks())).unwrap_err();
    assert!(matches!(err, JournalError::InUse { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "run `r` is open for writing by another process or journal (`{}` is locked); wait for it to end",
            first.path_of(&run_id("r")).display()
        )
    );
    assert_eq!(
        lines_of(&first.path_of(&run_id("r"))).len(),
        2,
        "nothing cut"
    );
    drop(opened);
    let reopened = block_on(second.open(&run_id("r"), &three_tasks())).unwrap();
    assert!(reopened.previous.is_some());
}

#[test]
fn a_finished_run_takes_no_more_records_until_reopened() {
    let (_dir, journal) = recorded_run();
    let opened = block_on(journal.open(&run_id("r"), &three_tasks())).unwrap();
    block_on(opened.writer.finish(WorkflowStatus::Failed)).unwrap();
    let ids = [TaskId::from("c")];
    let record = completed(json!(null));
    let err = block_on(opened.writer.append(&[(&ids[0], &record)])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "run `r` is finished; reopen it to record more"
    );
    drop(opened);
    let loaded = block_on(journal.load(&run_id("r"))).unwrap().unwrap();
    assert_eq!(loaded.status(), RunStatus::Failed);
    // Resuming makes it unfinished again until it ends.
    let opened = block_on(journal.open(&run_id("r"), &three_tasks())).unwrap();
    append(&*opened.writer, &[("c", record)]);
    let loaded = block_on(journal.load(&run_id("r"))).unwrap().unwrap();
    assert_eq!(loaded.status(), RunStatus::Unfinished);
}

#[test]
fn runs_are_listed_by_workflow_and_status() {
    let dir = tempfile::tempdir().unwrap();
    let journal = FileJournal::new(dir.path()).unwrap();
    let other = Workflow::new("v", "V").task(Task::new("x", "t"));
    for (run, workflow, end) in [
        ("r1", three_tasks(), Some(WorkflowStatus::Completed)),
        ("r2", three_tasks(), None),
        ("r3", other, Some(WorkflowStatus::Failed)),
    ] {
        let opened = block_on(journal.open(&run_id(run), &workflow)).unwrap();
        if let Some(status) = end {
            block_on(opened.writer.finish(status)).unwrap();
        }
    }
    fs::write(dir.path().join("notes.txt"), "not a run").unwrap();
    let names = |filter: RunFilter| -> Vec<String> {
        block_on(journal.list(&filter))
            .unwrap()
            .into_iter()
            .map(|s| format!("{}:{}:{}", s.run_id, s.workflow_id, s.status))
            .collect()
    };
    assert_eq!(
        names(RunFilter::default()),
        ["r1:w:completed", "r2:w:unfinished", "r3:v:failed"]
    );
    assert_eq!(
        names(RunFilter::default().workflow("w")),
        ["r1:w:completed", "r2:w:unfinished"]
    );
    assert_eq!(
        names(RunFilter::default().status(RunStatus::Unfinished)),
        ["r2:w:unfinished"]
    );
    assert!(
        names(
            RunFilter::default()
                .workflow("v")
                .status(RunStatus::Completed)
        )
        .is_empty()
    );
}

#[test]
fn instances_recorded_apart_come_back_and_go_with_a_reset_of_their_map() {
    let dir = tempfile::tempdir().unwrap();
    let journal = FileJournal::new(dir.path()).unwrap();
    block_on(common::instances_recorded_apart_go_with_a_reset(
        &journal,
        &run_id("apart"),
        "w",
    ));
}

#[test]
fn map_instance_records_come_back_with_their_completed_map() {
    let dir = tempfile::tempdir().unwrap();
    let journal = FileJournal::new(dir.path()).unwrap();
    let run = run_id("maps");
    let workflow = block_on(common::map_instances_come_back_with_their_map(
        &journal, &run, "w",
    ));
    block_on(
        common::a_pending_record_resets_a_completion_and_its_instances(&journal, &run, &workflow),
    );
    // Instances recorded in a batch whose map line was torn off, then again with the
    // map's completion when it ran again: the last records are in force.
    let torn = run_id("torn");
    let opened = block_on(journal.open(&torn, &workflow)).unwrap();
    append(&*opened.writer, &[("m[0]", completed(json!("torn")))]);
    let again = [("m[0]", completed(json!(1))), ("m", completed(json!([1])))];
    append(&*opened.writer, &again);
    drop(opened);
    let loaded = block_on(journal.load(&torn)).unwrap().unwrap();
    assert_eq!(loaded.task("m[0]"), Some(&again[0].1));
    let result = loaded.to_result(&workflow).unwrap();
    assert_eq!(result.task("m[0]"), Some(&again[0].1));

    // The same, with the map completing again with fewer instances: those of the
    // completion cut short that it did not write again are not its own.
    let fewer = run_id("fewer");
    let opened = block_on(journal.open(&fewer, &workflow)).unwrap();
    let cut_short = [
        ("m[0]", completed(json!("torn"))),
        ("m[1]", completed(json!("torn"))),
        ("m[2]", completed(json!("torn"))),
    ];
    append(&*opened.writer, &cut_short);
    append(&*opened.writer, &again);
    drop(opened);
    let loaded = block_on(journal.load(&fewer)).unwrap().unwrap();
    assert_eq!(loaded.task("m[1]"), None);
    assert_eq!(loaded.task("m[2]"), None);
    let result = loaded.to_result(&workflow).unwrap();
    assert_eq!(result.task("m[0]"), Some(&again[0].1));
    assert_eq!(result.task("m[2]"), None);

    // And completing again with no instances at all (an empty list), its record right
    // after the instances of the completion cut short.
    let none = run_id("none");
    let opened = block_on(journal.open(&none, &workflow)).unwrap();
    append(&*opened.writer, &cut_short);
    append(&*opened.writer, &[("m", completed(json!([])))]);
    drop(opened);
    let loaded = block_on(journal.load(&none)).unwrap().unwrap();
    for instance in ["m[0]", "m[1]", "m[2]"] {
        assert_eq!(loaded.task(instance), None, "{instance}");
    }

    // An instance numbered as high as a number goes, before a map completion without
    // its list: read back, and in force (a completion without its list takes no
    // instance out).
    let last = run_id("last");
    let opened = block_on(journal.open(&last, &workflow)).unwrap();
    let highest = format!("m[{}]", usize::MAX);
    let no_list = TaskRecord {
        status: TaskStatus::Completed,
        ..TaskRecord::default()
    };
    append(
        &*opened.writer,
        &[
            (highest.as_str(), completed(json!(1))),
            ("m", no_list.clone()),
        ],
    );
    drop(opened);
    let loaded = block_on(journal.load(&last)).unwrap().unwrap();
    assert_eq!(loaded.task("m"), Some(&no_list));
    assert_eq!(loaded.task(&highest), Some(&completed(json!(1))));
    // A completion with its list: the highest is past the list, and goes.
    let listed = run_id("listed");
    let opened = block_on(journal.open(&listed, &workflow)).unwrap();
    append(
        &*opened.writer,
        &[
            (highest.as_str(), completed(json!(1))),
            ("m[1]", completed(json!(2))),
            ("m", completed(json!([null, 2]))),
        ],
    );
    drop(opened);
    let loaded = block_on(journal.load(&listed)).unwrap().unwrap();
    assert_eq!(loaded.task(&highest), None);
    assert_eq!(loaded.task("m[1]"), Some(&completed(json!(2))));
}

#[test]
fn a_record_of_no_task_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let journal = FileJournal::new(dir.path()).unwrap();
    block_on(common::a_record_of_no_task_is_refused(
        &journal,
        &run_id("r"),
        "w",
    ));
}

/// A line of no task of the run's workflow (a file edited by hand) is refused when the
/// run is read, with its place.
#[test]
fn a_line_of_an_instance_of_no_task_is_refused_when_read() {
    let (_dir, journal) = recorded_run();
    let path = journal.path_of(&run_id("r"));
    let lines = lines_of(&path);
    let last = lines.last().expect("a task line");
    assert!(last.contains(r#""task_id":"b""#), "{last}");
    let edited = lines[..lines.len() - 1].join("\n")
        + "\n"
        + &last.replace(r#""task_id":"b""#, r#""task_id":"zz[0]""#)
        + "\n";
    fs::write(&path, edited).unwrap();
    let error = block_on(journal.load(&run_id("r")))
        .unwrap_err()
        .to_string();
    let expected = format!(
        "line {}: task `zz[0]` is not in the run's workflow",
        lines.len()
    );
    assert!(error.ends_with(&expected), "{error}");
}

/// A pipe or a directory where a run's file should be is an error naming it, at once,
/// to read or to open the run: opening a pipe would wait for its other end for ever.
#[cfg(unix)]
#[test]
fn a_run_file_that_is_not_a_file_is_an_error_not_a_wait() {
    // Before the fix this waited for ever: a watchdog makes that a failure.
    let (done, finished) = std::sync::mpsc::channel();
    let checks = std::thread::spawn(move || {
        pipes_and_folders_are_refused();
        let _ = done.send(());
    });
    let waited = finished.recv_timeout(std::time::Duration::from_secs(30));
    if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = waited {
        panic!("reading or opening a pipe waited for 30 s");
    }
    if let Err(panic) = checks.join() {
        std::panic::resume_unwind(panic);
    }
}

#[cfg(unix)]
fn pipes_and_folders_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let journal = FileJournal::new(dir.path()).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(journal.path_of(&run_id("piped")))
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    fs::create_dir(journal.path_of(&run_id("folder"))).unwrap();
    for run in ["piped", "folder"] {
        let error = block_on(journal.load(&run_id(run))).unwrap_err();
        assert!(error.to_string().contains("not a regular file"), "{error}");
        assert!(
            error.to_string().contains(&format!("{run}.jsonl")),
            "{error}"
        );
        let error = block_on(journal.open(&run_id(run), &three_tasks()))
            .map(drop)
            .unwrap_err();
        assert!(error.to_string().contains("not a regular file"), "{error}");
    }
    let error = block_on(journal.list(&RunFilter::default())).unwrap_err();
    assert!(error.to_string().contains("not a regular file"), "{error}");
}

#[test]
fn a_reset_of_a_plain_task_keeps_a_task_named_like_its_instance() {
    let dir = tempfile::tempdir().unwrap();
    let journal = FileJournal::new(dir.path()).unwrap();
    // No map task: `x[0]` is a task of its own beside `x`.
    let workflow = Workflow::new("w", "W")
        .task(Task::new("a", "t"))
        .task(Task::new("x", "t").depends_on(["a"]))
        .task(Task::new("x[0]", "t"));
    workflow.validate().unwrap();
    let run = run_id("plain");
    let opened = block_on(journal.open(&run, &workflow)).unwrap();
    let done = completed(json!("kept"));
    append(&*opened.writer, &[("x[0]", done.clone())]);
    let reset = TaskRecord::default();
    append(&*opened.writer, &[("x", reset)]);
    drop(opened);
    let loaded = block_on(journal.load(&run)).unwrap().unwrap();
    assert_eq!(loaded.task("x[0]"), Some(&done));
}

#[test]
fn a_task_added_under_the_id_of_a_dropped_maps_instance_starts_afresh() {
    let dir = tempfile::tempdir().unwrap();
    let journal = FileJournal::new(dir.path()).unwrap();
    let run = run_id("remap");
    let with_map = Workflow::new("w", "W")
        .task(Task::new("list", "t"))
        .task(Task::new("m", "t").map_over("list"));
    let opened = block_on(journal.open(&run, &with_map)).unwrap();
    append(
        &*opened.writer,
        &[
            ("list", completed(json!([1]))),
            ("m[0]", completed(json!("an instance's"))),
            ("m", completed(json!(["an instance's"]))),
        ],
    );
    drop(opened);
    let plain = Workflow::new("w", "W")
        .task(Task::new("list", "t"))
        .task(Task::new("m[0]", "t").depends_on(["list"]));
    plain.validate().unwrap();
    for _ in 0..2 {
        let opened = block_on(journal.open(&run, &plain)).unwrap();
        let previous = opened.previous.expect("a previous result");
        assert_eq!(previous.task("m[0]").unwrap().status, TaskStatus::Pending);
        assert_eq!(previous.task("list").unwrap().status, TaskStatus::Completed);
    }
    // Once the new definition is recorded (with the first record after it), the
    // instance's record is out of force.
    let opened = block_on(journal.open(&run, &plain)).unwrap();
    append(&*opened.writer, &[("list", completed(json!([1])))]);
    drop(opened);
    let loaded = block_on(journal.load(&run)).unwrap().unwrap();
    assert_eq!(loaded.task("m[0]"), None);
}
