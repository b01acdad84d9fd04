//! Credentials written into a server URL sign in and never reach the logs. In a test
//! binary of its own: `tracing` caches, per log call site, whether any subscriber wants
//! it, and a test running on another thread with no subscriber could make the client's
//! call sites silent here (the check then read nothing).

mod common;

use common::{NatsServer, capture_log};
use orch_engine::{TaskContext, TaskError};
use orch_nats::{NatsConfig, Worker};

/// Credentials written into a server URL sign in, and the URL is never logged with
/// them (the NATS client logs the addresses it connects to, at debug level).
#[test]
fn credentials_in_a_url_sign_in_and_are_not_logged() {
    let config = r#"authorization { user: someone, password: "pw-in-url" }"#;
    let Some(server) = NatsServer::start_with_config(Some(config)) else {
        return;
    };
    let url = server.url().replacen("://", "://someone:pw-in-url@", 1);
    let (captured, _logging) = capture_log(tracing::Level::TRACE);
    // One thread, so that every task logs through the subscriber set here.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime
        .block_on(async {
            let handler = |_ctx: TaskContext| async move { Ok::<_, TaskError>(()) };
            let connected = Worker::builder().handler("t", handler);
            connected.connect(&NatsConfig::new(url)).await.map(drop)
        })
        .expect("the URL's credentials sign in");
    let logged = captured.text();
    assert!(
        logged.contains("127.0.0.1"),
        "the client logged nothing: {logged}"
    );
    assert!(!logged.contains("pw-in-url"), "{logged}");
}
