//! The bus bridge against a real nats-server: an engine's lifecycle events reach NATS
//! subscribers in order, NATS messages reach a bus, and a bridge does not bring back
//! what it exported.

mod common;

use common::NatsServer;
use futures_util::StreamExt;
use orch_core::{EngineEvent, Task, Workflow};
use orch_engine::{TaskContext, TaskError, WorkflowEngine};
use orch_events::{EventBus, Overflow, SubscribeOptions};
use orch_nats::Bridge;
use serde_json::{Value, json};

/// Runs `workflow` (of tasks of type `t`) on an engine whose events a bridge exports
/// under `orch.events`, and returns a NATS subscription to them made before the run.
async fn run_exported(server: &NatsServer, workflow: &Workflow) -> async_nats::Subscriber {
    let watcher = async_nats::connect(server.url()).await.expect("connects");
    let watched = watcher
        .subscribe("orch.events.workflow.etl.>")
        .await
        .expect("subscribes");
    common::subscriptions_in_place(&watcher).await;

    let bus: EventBus<EngineEvent> = EventBus::new();
    let engine = WorkflowEngine::builder()
        .event_bus(bus.clone())
        .build()
        .expect("valid");
    engine.register_handler(
        "t",
        |_ctx: TaskContext| async move { Ok::<_, TaskError>(()) },
    );
    let bridge = Bridge::connect(&server.config(), "orch.events")
        .await
        .expect("connects");
    let export = bridge
        .export(&bus, "workflow.>")
        .expect("subscribes to the bus");
    engine.execute_workflow(workflow).await.expect("valid");
    bus.close().await;
    export.finished().await;
    watched
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runs_events_reach_nats_subscribers_in_order() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let workflow = Workflow::new("etl", "ETL")
        .task(Task::new("load", "t"))
        .task(Task::new("clean", "t").depends_on(["load"]));
    let mut watched = run_exported(&server, &workflow).await;

    let mut seen = Vec::new();
    while seen.len() < 6 {
        let message = watched.next().await.expect("an event");
        let payload: Value = serde_json::from_slice(&message.payload).expect("json");
        seen.push((
            message.subject.to_string(),
            payload["kind"].as_str().map(str::to_owned),
        ));
    }
    let subjects: Vec<&str> = seen.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        subjects,
        [
            "orch.events.workflow.etl.started",
            "orch.events.workflow.etl.task.load.started",
            "orch.events.workflow.etl.task.load.completed",
            "orch.events.workflow.etl.task.clean.started",
            "orch.events.workflow.etl.task.clean.completed",
            "orch.events.workflow.etl.finished",
        ]
    );
    assert!(seen.iter().all(|(_, kind)| kind.is_some()), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_messages_reach_a_bus_and_exports_do_not_come_back() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let bus: EventBus = EventBus::new();
    let mut received = bus.subscribe("app.>").expect("subscribes");
    let bridge = Bridge::connect(&server.config(), "shared")
        .await
        .expect("connects");
    let _import = bridge
        .import("app.>", &bus)
        .await
        .expect("subscribes to NATS");
    let _export = bridge.export(&bus, "app.>").expect("subscribes to the bus");

    let sender = async_nats::connect(server.url()).await.expect("connects");
    sender
        .publish(
            "shared.app.orders.created",
            json!({"order": 7}).to_string().into(),
        )
        .await
        .expect("published");
    sender
        .publish("shared.app.bad", "not json".into())
        .await
        .expect("published");
    sender
        .publish(
            "shared.app.orders.paid",
            json!({"order": 7}).to_string().into(),
        )
        .await
        .expect("published");
    sender.flush().await.expect("flushes");

    let first = received.recv_event().await.expect("an event");
    assert_eq!(first.subject().as_str(), "app.orders.created");
    assert_eq!(first.payload(), &json!({"order": 7}));
    let second = received.recv_event().await.expect("an event");
    // The malformed message was skipped, and the export of the first did not return.
    assert_eq!(second.subject().as_str(), "app.orders.paid");
    // A bus event goes out through the bridge (a NATS subscriber sees it) and does not
    // come back in: the next event on the bus is one published on NATS after it.
    let mut outside = sender
        .subscribe("shared.app.local")
        .await
        .expect("subscribes");
    common::subscriptions_in_place(&sender).await;
    bus.publish("app.local", json!(1)).await.expect("published");
    let third = received.recv_event().await.expect("an event");
    assert_eq!(third.subject().as_str(), "app.local");
    outside.next().await.expect("the export reached NATS");
    sender
        .publish("shared.app.sentinel", json!(2).to_string().into())
        .await
        .expect("published");
    let fourth = received.recv_event().await.expect("an event");
    assert_eq!(fourth.subject().as_str(), "app.sentinel");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_of_a_task_with_a_very_long_id_go_out_under_a_shortened_token() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let long = "x".repeat(5000);
    let workflow = Workflow::new("etl", "ETL").task(Task::new(long.clone(), "t"));
    let mut watched = run_exported(&server, &workflow).await;

    let mut subjects = Vec::new();
    while subjects
        .last()
        .is_none_or(|s: &String| !s.ends_with(".finished"))
    {
        let message = watched.next().await.expect("an event");
        subjects.push(message.subject.to_string());
    }
    let completed = subjects
        .iter()
        .find(|s| s.ends_with(".completed"))
        .expect("the task's completion went out");
    let token = completed
        .strip_prefix("orch.events.workflow.etl.task.")
        .and_then(|rest| rest.strip_suffix(".completed"))
        .expect("a task event");
    assert!(
        token.len() <= 64 && token.starts_with("xxxx") && token.contains("~~"),
        "{token}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_bridges_that_import_and_export_the_same_subjects_pass_an_event_once() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let watcher = async_nats::connect(server.url()).await.expect("connects");
    let mut watched = watcher.subscribe("shared.app.>").await.expect("subscribes");
    common::subscriptions_in_place(&watcher).await;
    // Two processes' buses, each bridged both ways on the same subjects.
    let mut bridged = Vec::new();
    for _ in 0..2 {
        let bus: EventBus = EventBus::new();
        let bridge = Bridge::connect(&server.config(), "shared")
            .await
            .expect("connects");
        let import = bridge.import("app.>", &bus).await.expect("subscribes");
        let export = bridge.export(&bus, "app.>").expect("subscribes");
        bridged.push((bus, import, export));
    }
    let mut at_b = bridged[1].0.subscribe("app.>").expect("subscribes");
    bridged[0]
        .0
        .publish("app.ping", json!(1))
        .await
        .expect("published");
    bridged[0]
        .0
        .publish("app.sentinel", json!(2))
        .await
        .expect("published");
    for expected in ["app.ping", "app.sentinel"] {
        let event = at_b.recv_event().await.expect("an event");
        assert_eq!(event.subject().as_str(), expected);
    }

    // On NATS each went out once: nothing came back through the other bridge.
    let mut seen = Vec::new();
    while let Ok(Some(message)) =
        tokio::time::timeout(std::time::Duration::from_millis(300), watched.next()).await
    {
        seen.push(message.subject.to_string());
        assert!(seen.len() < 100, "events go back and forth: {seen:?}");
    }
    assert_eq!(seen, ["shared.app.ping", "shared.app.sentinel"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_bridge_imported_to_one_bus_does_not_hold_back_another_bus_or_export() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let watcher = async_nats::connect(server.url()).await.expect("connects");
    let mut watched = watcher.subscribe("shared.>").await.expect("subscribes");
    common::subscriptions_in_place(&watcher).await;
    let bridge = Bridge::connect(&server.config(), "shared")
        .await
        .expect("connects");
    // Bus A gets what comes from NATS on `remote.>`; bus B's events go out, through two
    // exports of different subjects.
    let (a, b): (EventBus, EventBus) = (EventBus::new(), EventBus::new());
    let mut at_a = a.subscribe("remote.>").expect("subscribes");
    let _import = bridge.import("remote.>", &a).await.expect("subscribes");
    let _wide = bridge.export(&b, ">").expect("subscribes");
    let _narrow = bridge.export(&b, "local.>").expect("subscribes");
    // Bus A is exported twice too: neither sends back what was imported.
    let _a_wide = bridge.export(&a, ">").expect("subscribes");
    let _a_narrow = bridge.export(&a, "remote.>").expect("subscribes");
    watcher
        .publish("shared.remote.x", json!(0).to_string().into())
        .await
        .expect("published");
    at_a.recv_event().await.expect("imported");
    // Bus B's first event has the sequence number the imported event has on bus A.
    b.publish("local.y", json!(1)).await.expect("published");

    let mut seen = Vec::new();
    while let Ok(Some(message)) =
        tokio::time::timeout(std::time::Duration::from_millis(300), watched.next()).await
    {
        seen.push(message.subject.to_string());
    }
    assert_eq!(
        seen,
        ["shared.remote.x", "shared.local.y", "shared.local.y"],
        "each export of bus B sends its event"
    );
}

/// An import waits, publishing, while a lossless subscriber of its subject is full; the
/// bus's other events still go out meanwhile, also through an export of every subject
/// (which used to wait for the import's publish to end, to learn whether the event it
/// saw was imported).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_held_up_by_a_full_subscriber_does_not_hold_up_an_export() {
    const EVENTS: usize = 100;
    let Some(server) = NatsServer::start() else {
        return;
    };
    let watcher = async_nats::connect(server.url()).await.expect("connects");
    let mut watched = watcher
        .subscribe("shared.local.>")
        .await
        .expect("subscribes");
    common::subscriptions_in_place(&watcher).await;
    let bridge = Bridge::connect(&server.config(), "shared")
        .await
        .expect("connects");
    let bus: EventBus = EventBus::new();
    // Room for one event, and never read: the import's second event waits for room.
    let options = SubscribeOptions::new()
        .capacity(1)
        .overflow(Overflow::Block);
    let _full = bus.subscribe_with("remote.>", options).expect("subscribes");
    let mut imported = bus.subscribe("remote.>").expect("subscribes");
    let _import = bridge.import("remote.>", &bus).await.expect("subscribes");
    let _export = bridge.export(&bus, ">").expect("subscribes");
    for n in 0..2 {
        let payload = json!(n).to_string().into();
        watcher
            .publish("shared.remote.x", payload)
            .await
            .expect("published");
    }
    imported.recv_event().await.expect("the first is imported");
    imported
        .recv_event()
        .await
        .expect("the second is published, waiting for room");

    for n in 0..EVENTS {
        bus.publish("local.y", json!(n)).await.expect("published");
    }
    for n in 0..EVENTS {
        // A guard against waiting for ever, not a measure.
        let message = tokio::time::timeout(std::time::Duration::from_secs(10), watched.next())
            .await
            .expect("the export goes on")
            .expect("a message");
        let payload: Value = serde_json::from_slice(&message.payload).expect("json");
        assert_eq!(payload, json!(n));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_pattern_the_server_would_refuse_is_an_error_naming_it() {
    let Some((_server, bus, bridge)) = bus_and_bridge().await else {
        return;
    };
    for pattern in ["app.>.tail", ">.app", "app..x", ""] {
        let refused = bridge.import(pattern, &bus).await.expect_err(pattern);
        assert!(
            matches!(&refused, orch_nats::ConnectError::Config(m) if m.contains(&format!("`{pattern}`"))),
            "{refused:?}"
        );
    }
    bridge
        .import("app.*.done", &bus)
        .await
        .expect("a valid pattern");
}

/// A pattern too long for the server is refused before it is sent (the server would
/// close the connection over it, again at each reconnection).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_pattern_too_long_for_the_server_is_an_error_naming_it() {
    let Some((_server, bus, bridge)) = bus_and_bridge().await else {
        return;
    };
    // 40 tokens of 60 bytes: none shortened, 2,440 bytes in all.
    let long = vec!["y".repeat(60); 40].join(".");
    let refused = bridge.import(&long, &bus).await.expect_err("too long");
    assert!(
        matches!(&refused, orch_nats::ConnectError::Config(m) if m.contains("longer than")),
        "{refused:?}"
    );
    bridge.import("app.>", &bus).await.expect("a valid pattern");
}

/// Importing a bus subject with a token longer than 64 bytes takes what exporting that
/// subject sends (under the token shortened).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_of_a_subject_with_a_long_token_takes_its_export() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let subject = format!("app.{}", "x".repeat(70));
    let (from, to): (EventBus, EventBus) = (EventBus::new(), EventBus::new());
    let mut received = to.subscribe("app.>").expect("subscribes");
    let importer = Bridge::connect(&server.config(), "shared")
        .await
        .expect("connects");
    let _import = importer.import(&subject, &to).await.expect("subscribes");
    let exporter = Bridge::connect(&server.config(), "shared")
        .await
        .expect("connects");
    let export = exporter.export(&from, "app.>").expect("subscribes");
    from.publish(subject.as_str(), json!(1))
        .await
        .expect("published");
    from.close().await;
    export.finished().await;
    let event = tokio::time::timeout(std::time::Duration::from_secs(10), received.recv_event())
        .await
        .expect("the exported event arrived")
        .expect("an event");
    assert_eq!(event.payload(), &json!(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_whose_server_is_gone_still_finishes_when_its_bus_closes() {
    export_finishes_without_its_server(1).await;
}

/// More events than the client holds while it has no server (2,048 commands): each
/// waits for room a few seconds at most, and then the rest are dropped until the
/// connection takes one again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_with_many_events_and_no_server_still_finishes_when_its_bus_closes() {
    export_finishes_without_its_server(3_000).await;
}

/// Exports an event, stops the server, publishes `after` events more and closes the bus:
/// the export ends.
async fn export_finishes_without_its_server(after: usize) {
    let Some((server, bus, bridge)) = bus_and_bridge().await else {
        return;
    };
    let export = bridge.export(&bus, "app.>").expect("subscribes");
    bus.publish("app.before", json!(1))
        .await
        .expect("published");
    drop(server);
    for n in 0..after {
        bus.publish("app.after", json!(n)).await.expect("published");
    }
    bus.close().await;
    // Waits for the server a few seconds at most, then ends; a guard, not a measure.
    tokio::time::timeout(std::time::Duration::from_secs(60), export.finished())
        .await
        .expect("the export ended without its server");
}

/// An import ends when its bus closes, though no message arrives after: it does not keep
/// the bus's subscribers waiting on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_ends_when_its_bus_closes_with_no_message_after() {
    let Some((_server, bus, bridge)) = bus_and_bridge().await else {
        return;
    };
    let import = bridge.import("app.>", &bus).await.expect("subscribes");
    bus.close().await;
    // A guard, not a measure: it ends at once.
    tokio::time::timeout(std::time::Duration::from_secs(10), import.finished())
        .await
        .expect("the import ended with its bus");
}

/// A nats-server (none if it cannot start here), a bus and a bridge under `orch`.
async fn bus_and_bridge() -> Option<(NatsServer, EventBus, Bridge)> {
    let server = NatsServer::start()?;
    let bridge = Bridge::connect(&server.config(), "orch")
        .await
        .expect("connects");
    Some((server, EventBus::new(), bridge))
}

/// An event nested deeper than any bridge reads is not exported (it would be lost where it
/// is read, with the error logged there); the events after it are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_too_deep_to_read_is_not_exported() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let bus: EventBus = EventBus::new();
    let bridge = Bridge::connect(&server.config(), "shared")
        .await
        .expect("connects");
    let _export = bridge.export(&bus, "app.>").expect("subscribes to the bus");
    let watcher = async_nats::connect(server.url()).await.expect("connects");
    let mut outside = watcher.subscribe("shared.app.>").await.expect("subscribes");
    common::subscriptions_in_place(&watcher).await;
    let nested = |levels: usize| (0..levels).fold(json!(0), |inner, _| json!([inner]));
    bus.publish("app.deep", nested(128))
        .await
        .expect("published");
    bus.publish("app.deepest_readable", nested(127))
        .await
        .expect("published");
    let first = outside.next().await.expect("an export");
    assert_eq!(first.subject.as_str(), "shared.app.deepest_readable");
    let read: Value = serde_json::from_slice(&first.payload).expect("a bridge reads it");
    assert_eq!(read, nested(127));
}
