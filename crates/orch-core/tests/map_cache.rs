//! Map tasks and cached tasks in the model: their fields in JSON, YAML and TOML files,
//! the errors that name the place, validation, and the `cached` field of run records.

mod support;

use orch_core::{MapSpec, Task, TaskRecord, TaskRecords, TaskStatus, ValidationError, Workflow};
use support::parse_error;

const JSON: &str = r#"{"workflow_id": "w", "name": "W", "tasks": {
  "list": {"task_type": "list", "cache": true},
  "square": {"task_type": "square", "dependencies": ["list"],
             "map": {"over": "list", "max_instances": 50}}
}}"#;

const YAML: &str = "workflow_id: w
name: W
tasks:
  list:
    task_type: list
    cache: true
  square:
    task_type: square
    dependencies: [list]
    map:
      over: list
      max_instances: 50
";

const TOML: &str = r#"workflow_id = "w"
name = "W"
[tasks.list]
task_type = "list"
cache = true
[tasks.square]
task_type = "square"
dependencies = ["list"]
map = { over = "list", max_instances = 50 }
"#;

fn expected() -> Workflow {
    Workflow::new("w", "W")
        .task(Task::new("list", "list").cache(true))
        .task(
            Task::new("square", "square")
                .map_over("list")
                .max_instances(50),
        )
}

#[test]
fn every_format_reads_map_and_cache() {
    for (format, workflow) in [
        ("json", Workflow::from_json(JSON)),
        ("yaml", Workflow::from_yaml(YAML)),
        ("toml", Workflow::from_toml(TOML)),
    ] {
        let workflow = workflow.unwrap_or_else(|e| panic!("{format}: {e}"));
        assert_eq!(workflow, expected(), "{format}");
        let square = workflow.get("square").expect("square");
        assert_eq!(
            square.map,
            Some(MapSpec {
                over: "list".into(),
                max_instances: Some(50)
            })
        );
        assert!(workflow.get("list").expect("list").cache, "{format}");
        assert!(workflow.validate().is_ok(), "{format}");
    }
}

#[test]
fn map_and_cache_survive_a_round_trip_and_are_left_out_when_unset() {
    let workflow = expected();
    let text = serde_json::to_string(&workflow).expect("serialises");
    assert_eq!(Workflow::from_json(&text).expect("reads back"), workflow);
    let plain = serde_json::to_value(Task::new("a", "t")).expect("serialises");
    assert!(plain.get("map").is_none(), "{plain}");
    assert!(plain.get("cache").is_none(), "{plain}");
}

#[test]
fn an_unknown_key_in_a_map_names_its_place() {
    let (field, line, message) = parse_error(Workflow::from_yaml(
        "workflow_id: w\ntasks:\n  a: {task_type: t}\n  b:\n    task_type: t\n    map: {ovr: a}\n",
    ));
    assert_eq!(field, "tasks.b.map.ovr");
    assert_eq!(line, Some(6));
    assert!(message.contains("`ovr`"), "{message}");
}

#[test]
fn wrong_types_name_their_field_in_every_format() {
    let (field, _, message) = parse_error(Workflow::from_json(
        r#"{"workflow_id": "w", "tasks": {"a": {"task_type": "t", "cache": "yes"}}}"#,
    ));
    assert_eq!(field, "tasks.a.cache");
    assert!(message.contains("expected a boolean"), "{message}");
    let (field, _, message) = parse_error(Workflow::from_toml(
        "workflow_id = \"w\"\n[tasks.a]\ntask_type = \"t\"\nmap = { over = \"x\", max_instances = -1 }\n",
    ));
    assert_eq!(field, "tasks.a.map.max_instances");
    assert!(message.contains("-1"), "{message}");
    let (field, _, message) = parse_error(Workflow::from_yaml(
        "workflow_id: w\ntasks:\n  a:\n    task_type: t\n    map: list\n",
    ));
    assert_eq!(field, "tasks.a.map");
    assert!(message.contains("`over`"), "{message}");
}

#[test]
fn validation_requires_the_mapped_task_to_be_a_direct_dependency() {
    let mut square = Task::new("square", "t").depends_on(["middle"]);
    square.map = Some(MapSpec::over("list"));
    let workflow = Workflow::new("w", "W")
        .task(Task::new("list", "t"))
        .task(Task::new("middle", "t").depends_on(["list"]))
        .task(square);
    let errors = workflow
        .validate()
        .expect_err("list is no direct dependency");
    assert_eq!(
        errors.into_vec(),
        [ValidationError::InvalidOption {
            task: "square".into(),
            option: "map.over",
            reason: "must name one of the task's dependencies, not `list`".into(),
        }]
    );
}

#[test]
fn validation_rejects_a_limit_of_zero_instances() {
    let workflow = Workflow::new("w", "W")
        .task(Task::new("list", "t"))
        .task(Task::new("square", "t").map_over("list").max_instances(0));
    let errors = workflow.validate().expect_err("zero instances");
    assert_eq!(
        errors.to_string(),
        "task `square`: invalid `map.max_instances`: must be at least 1, not 0"
    );
}

/// `all_failed` runs a task only when every dependency failed, the list a map task
/// maps over included, and a map task cannot run without that list: refused.
#[test]
fn validation_rejects_a_map_task_that_runs_only_when_its_list_failed() {
    let workflow = Workflow::new("w", "W").task(Task::new("list", "t")).task(
        Task::new("square", "t")
            .map_over("list")
            .trigger_rule(orch_core::TriggerRule::AllFailed),
    );
    let errors = workflow.validate().expect_err("a map that cannot run");
    assert_eq!(
        errors.to_string(),
        "task `square`: invalid `trigger_rule`: `all_failed` runs a task only when `list`, \
         the list it maps over, failed too, and a map task needs that list: it could never run"
    );
}

#[test]
fn validation_rejects_a_task_id_that_names_an_instance_of_a_map_task() {
    let workflow = Workflow::new("w", "W")
        .task(Task::new("list", "t"))
        .task(Task::new("sq", "t").map_over("list"))
        .task(Task::new("sq[0]", "t"))
        // Not instance ids: no map task `list`, and `sq[01]` is not how instances are named.
        .task(Task::new("list[0]", "t"))
        .task(Task::new("sq[01]", "t"));
    let errors = workflow.validate().expect_err("an instance's id");
    assert_eq!(
        errors.to_string(),
        "task `sq[0]`: invalid `task_id`: is the id of instance 0 of map task `sq` (its \
         instances are `sq[0]`, `sq[1]`, ...); choose another id"
    );
}

#[test]
fn map_over_adds_the_dependency_once() {
    let task = Task::new("square", "t")
        .depends_on(["list"])
        .map_over("list");
    assert_eq!(task.dependencies, ["list"]);
    let task = Task::new("square", "t").map_over("list");
    assert_eq!(task.dependencies, ["list"]);
}

#[test]
fn cached_is_written_only_when_true_and_old_records_read_as_not_cached() {
    let plain = TaskRecord {
        status: TaskStatus::Completed,
        ..TaskRecord::default()
    };
    let value = serde_json::to_value(&plain).expect("serialises");
    assert!(value.get("cached").is_none(), "{value}");
    let cached = TaskRecord {
        cached: true,
        ..plain.clone()
    };
    let value = serde_json::to_value(&cached).expect("serialises");
    assert_eq!(value["cached"], true);
    let back: TaskRecord = serde_json::from_value(value).expect("reads back");
    assert_eq!(back, cached);
    let old: TaskRecord =
        serde_json::from_str(r#"{"status": "completed", "attempts": 1}"#).expect("old record");
    assert!(!old.cached);
}

#[test]
fn instance_records_follow_the_workflows_and_keep_it() {
    let workflow = expected();
    let records = vec![TaskRecord::default(), TaskRecord::default()];
    let done = TaskRecord {
        status: TaskStatus::Completed,
        ..TaskRecord::default()
    };
    let instances = (0..2).map(|i| (MapSpec::instance_id("square", i), done.clone()));
    let all = TaskRecords::for_workflow_with_extra(&workflow, records, instances)
        .expect("one record per task");
    assert_eq!(
        all.ids().map(|id| id.as_str()).collect::<Vec<_>>(),
        ["list", "square", "square[0]", "square[1]"]
    );
    assert_eq!(all["square[1]"].status, TaskStatus::Completed);
    assert_eq!(all.index_of("square[0]"), Some(2));
    assert_eq!(all.workflow(), Some(&workflow));
    let text = serde_json::to_string(&all).expect("serialises");
    let back: TaskRecords = serde_json::from_str(&text).expect("reads back");
    assert_eq!(back, all);
    assert!(TaskRecords::for_workflow_with_extra(&workflow, Vec::new(), []).is_none());
    // An extra record under a task's id is left out: the task's own stands, and the
    // records read back.
    let records = vec![TaskRecord::default(), TaskRecord::default()];
    let extra = [
        ("list".into(), done.clone()),
        ("square[0]".into(), done.clone()),
    ];
    let all = TaskRecords::for_workflow_with_extra(&workflow, records, extra).expect("records");
    assert_eq!(all.ids().count(), 3);
    assert_eq!(all["list"].status, TaskStatus::Pending);
    let text = serde_json::to_string(&all).expect("serialises");
    assert_eq!(
        serde_json::from_str::<TaskRecords>(&text).expect("reads back"),
        all
    );
    // Two records of one task: which one holds would be a guess.
    let twice = r#"{"a": {"status": "completed"}, "b": {}, "a": {"status": "failed"}}"#;
    let refused = serde_json::from_str::<TaskRecords>(twice).expect_err("refused");
    assert!(
        refused.to_string().contains("task `a` has two records"),
        "{refused}"
    );
}

/// Naming the list a map goes over among its dependencies too, before or after
/// `map_over`, lists it once: a workflow file lists it itself, and code may as well.
#[test]
fn a_map_source_named_among_the_dependencies_too_is_listed_once() {
    for task in [
        Task::new("m", "t")
            .map_over("list")
            .depends_on(["list", "other"]),
        Task::new("m", "t")
            .depends_on(["list", "other"])
            .map_over("list"),
    ] {
        assert_eq!(task.dependencies, ["list", "other"], "{task:?}");
        let workflow = Workflow::new("w", "W")
            .task(Task::new("list", "t"))
            .task(Task::new("other", "t"))
            .task(task);
        assert!(workflow.validate().is_ok(), "{:?}", workflow.validate());
    }
    // Another dependency named twice is still a mistake validation names.
    let twice = Workflow::new("w", "W")
        .task(Task::new("a", "t"))
        .task(Task::new("m", "t").depends_on(["a", "a"]));
    assert!(twice.validate().is_err());
}
