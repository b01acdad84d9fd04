//! A connection closed for good (drained) ends the coordinator's followers of its
//! streams quietly: nothing is left to read, so there is nothing to warn about or to
//! try again. In a test binary of its own: `tracing` caches, per log call site, whether
//! any subscriber wants it, and a test on another thread with no subscriber could make
//! the call sites silent here.

mod common;

use std::time::Duration;

use common::{NatsServer, capture_log};
use orch_nats::RemoteHandler;

#[test]
fn a_drained_connection_ends_the_followers_without_a_warning() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let (captured, _logging) = capture_log(tracing::Level::DEBUG);
    // One thread, so that every task logs through the subscriber set here.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let client = server.config().connect().await.expect("connects");
        let remote = RemoteHandler::builder()
            .start(client.clone())
            .await
            .expect("the coordinator starts");
        tokio::time::sleep(Duration::from_millis(300)).await;
        client.drain().await.expect("drains");
        // Long enough for a follower to warn, and to try reading again twice.
        tokio::time::sleep(Duration::from_secs(1)).await;
        drop(remote);
    });
    let logged = captured.text();
    assert!(!logged.contains("WARN"), "{logged}");
    assert!(
        !logged.contains("cannot read"),
        "no try to read again: {logged}"
    );
    for stream in ["the results stream", "the lost-tasks stream"] {
        let ended = format!("the connection is closed: no more following {stream}");
        assert!(logged.contains(&ended), "{stream} ended: {logged}");
    }
}
