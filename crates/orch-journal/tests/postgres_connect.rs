//! Connecting the PostgreSQL journal to a server that takes the connection and never
//! answers (no PostgreSQL needed): the connection's timeout bounds the whole set-up.

/// In CI every check runs: a build without the feature is a mistake there.
#[cfg(not(feature = "postgres"))]
#[test]
fn built_with_the_postgres_feature_when_ci_says_so() {
    assert!(
        !std::env::var("CI").is_ok_and(|v| v == "true"),
        "orch-journal was built without its `postgres` feature"
    );
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_is_a_connect_error_within_the_timeout() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let port = silent.local_addr().expect("its address").port();
    // Takes connections and keeps them, saying nothing.
    let held = tokio::spawn(async move {
        let mut kept = Vec::new();
        while let Ok((connection, _)) = silent.accept().await {
            kept.push(connection);
        }
    });
    let config = format!("host=127.0.0.1 port={port} user=orch dbname=orch connect_timeout=2");
    // A guard, not a measure: the journal gives up after 2 s.
    let connected = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        orch_journal::PgJournal::connect(&config),
    )
    .await
    .expect("connect returned");
    let error = connected.expect_err("no server answered");
    assert!(
        matches!(
            &error,
            orch_journal::JournalError::Postgres {
                action: "connect",
                ..
            }
        ),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("no session with orch@127.0.0.1:")
            && error.to_string().contains(" within 2s"),
        "{error}"
    );
    held.abort();
}
