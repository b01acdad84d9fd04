//! A workflow written to JSON, YAML or TOML reads back equal: durations to the nanosecond,
//! numbers to the last bit, text of any kind.

use std::time::Duration;

use orch_core::{Backoff, Format, Task, TriggerRule, Workflow};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn write(format: Format, workflow: &Workflow) -> String {
    match format {
        Format::Json => serde_json::to_string(workflow).expect("JSON"),
        Format::Yaml => serde_yaml_ng::to_string(workflow).expect("YAML"),
        Format::Toml => toml::to_string(workflow).expect("TOML"),
        _ => unreachable!("three formats"),
    }
}

fn read(format: Format, text: &str) -> Workflow {
    let read = match format {
        Format::Json => Workflow::from_json(text),
        Format::Yaml => Workflow::from_yaml(text),
        Format::Toml => Workflow::from_toml(text),
        _ => unreachable!("three formats"),
    };
    read.unwrap_or_else(|e| panic!("{e}\n{text}"))
}

const FORMATS: [Format; 3] = [Format::Json, Format::Yaml, Format::Toml];

#[test]
fn durations_round_trip_to_the_nanosecond() {
    let exact = Duration::new(123_456_789, 123_456_789);
    let backoff = Backoff {
        initial: Duration::new(0, 1),
        max: Duration::new(u64::MAX, 999_999_999),
        ..Backoff::default()
    };
    let workflow = Workflow::new("w", "W")
        .task(Task::new("a", "t").timeout(exact).backoff(backoff))
        .task(Task::new("b", "t").timeout(Duration::from_millis(1_500)));
    for format in FORMATS {
        let text = write(format, &workflow);
        assert_eq!(read(format, &text), workflow, "{format}:\n{text}");
    }
    let value = serde_json::to_value(&workflow).expect("JSON");
    assert_eq!(
        value["tasks"]["a"]["timeout"],
        json!("123456789.123456789s")
    );
    assert_eq!(value["tasks"]["a"]["backoff"]["initial"], json!(1e-9));
    assert_eq!(
        value["tasks"]["a"]["backoff"]["max"],
        json!("18446744073709551615.999999999s")
    );
    assert_eq!(value["tasks"]["a"]["backoff"]["multiplier"], json!(2.0));
    // A duration that a number of seconds states exactly is written as that number.
    assert_eq!(value["tasks"]["b"]["timeout"], json!(1.5));
    assert_eq!(value["tasks"]["b"]["backoff"]["initial"], json!(0.1));
    assert_eq!(value["tasks"]["b"]["backoff"]["max"], json!(30.0));
}

/// A YAML writer leaves a key `<<` unquoted, which reads back as a merge key: orch
/// refuses it, saying to quote it; quoted, the key reads back as it was.
#[test]
fn a_key_of_two_less_than_signs_is_written_to_yaml_as_a_merge_key() {
    let workflow =
        Workflow::new("w", "W").task(Task::new("a", "t").config(json!({"<<": {"k": 1}})));
    let text = write(Format::Yaml, &workflow);
    let refused = Workflow::from_yaml(&text).expect_err("a merge key");
    assert!(refused.to_string().contains(r#"quote `"<<"`"#), "{refused}");
    let quoted = text.replace("<<:", "\"<<\":");
    assert_eq!(read(Format::Yaml, &quoted), workflow);
}

fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        (0u64..100_000).prop_map(Duration::from_millis),
        (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
        (0u64..1_000_000_000, 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
    ]
}

fn finite() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>().prop_filter("finite", |x| x.is_finite()),
        (-1_000i32..1_000).prop_map(|n| f64::from(n) / 8.0),
    ]
}

/// A key of a configuration object: any text but `<<`, which a YAML writer leaves
/// unquoted and a YAML reader then takes for a merge key (see
/// `a_key_of_two_less_than_signs_is_written_to_yaml_as_a_merge_key`).
fn key() -> impl Strategy<Value = String> {
    any::<String>().prop_filter("not a YAML merge key", |key| key != "<<")
}

/// Any JSON object a TOML file can also hold: no `null`, integers within `i64`.
fn config() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        finite().prop_map(Value::from),
        any::<String>().prop_map(Value::String),
    ];
    let value = leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    prop::collection::btree_map(key(), value, 0..4)
        .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>()))
}

fn backoff() -> impl Strategy<Value = Backoff> {
    (duration(), finite(), duration(), any::<bool>()).prop_map(
        |(initial, multiplier, max, jitter)| Backoff {
            initial,
            multiplier,
            max,
            jitter,
        },
    )
}

fn task(id: String) -> impl Strategy<Value = Task> {
    (
        any::<String>(),
        any::<String>(),
        config(),
        prop::collection::vec(any::<String>(), 0..3),
        any::<u32>(),
        prop::option::of(backoff()),
        prop::option::of(duration()),
        (
            prop::sample::select(TriggerRule::ALL.to_vec()),
            prop::option::of(any::<String>()),
            any::<i32>(),
            any::<bool>(),
            prop::option::of((any::<String>(), prop::option::of(any::<u32>()))),
        ),
    )
        .prop_map(
            move |(name, task_type, config, dependencies, retries, backoff, timeout, rules)| {
                let (rule, pool, priority, cache, map) = rules;
                let mut task = Task::new(id.clone(), task_type)
                    .name(name)
                    .config(config)
                    .depends_on(dependencies)
                    .retries(retries);
                if let Some(backoff) = backoff {
                    task = task.backoff(backoff);
                }
                task.timeout = timeout;
                task.trigger_rule = rule;
                task.pool = pool;
                task.priority = priority;
                task = task.cache(cache);
                if let Some((over, max_instances)) = map {
                    task = task.map_over(over);
                    if let Some(max) = max_instances {
                        task = task.max_instances(max);
                    }
                }
                task
            },
        )
}

fn workflow() -> impl Strategy<Value = Workflow> {
    (
        any::<String>(),
        any::<String>(),
        // In the order drawn (not sorted), so that a writer or reader that sorts the
        // tasks is caught.
        prop::collection::vec(any::<String>(), 0..5),
    )
        .prop_flat_map(|(id, name, mut task_ids)| {
            let mut seen = std::collections::HashSet::new();
            task_ids.retain(|task_id| seen.insert(task_id.clone()));
            let tasks: Vec<_> = task_ids.into_iter().map(task).collect();
            (Just(id), Just(name), tasks)
        })
        .prop_map(|(id, name, tasks)| Workflow::from_tasks(id, name, tasks))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn any_workflow_written_and_read_back_is_equal(workflow in workflow()) {
        for format in FORMATS {
            let text = write(format, &workflow);
            let back = read(format, &text);
            // Task by task first, so that a failure shows the task that differs.
            for (read, written) in back.tasks().zip(workflow.tasks()) {
                prop_assert_eq!(read, written, "{}:\n{}", format, text);
            }
            // In the same order (the workflow's equality does not look at it).
            let ids = |w: &Workflow| w.tasks().map(|t| t.task_id.clone()).collect::<Vec<_>>();
            prop_assert_eq!(ids(&back), ids(&workflow), "{}:\n{}", format, text);
            prop_assert_eq!(&back, &workflow, "{}:\n{}", format, text);
        }
    }
}
