//! Every way of authenticating that NatsConfig offers, and TLS with a CA of our own,
//! against real nats-servers; failures are typed and never show the secret. A prefix
//! whose stream names another prefix already took is refused.

mod common;

use std::path::Path;
use std::process::Command;

use common::NatsServer;
use futures_util::TryStreamExt;
use orch_engine::{TaskContext, TaskError};
use orch_nats::{Auth, ConnectError, NatsConfig, Worker};

async fn worker(config: &NatsConfig) -> Result<(), ConnectError> {
    Worker::builder()
        .handler(
            "t",
            |_ctx: TaskContext| async move { Ok::<_, TaskError>(()) },
        )
        .connect(config)
        .await
        .map(drop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_accepted_and_a_wrong_one_refused_without_showing_it() {
    let config = r#"authorization { token: "t0ken-right" }"#;
    let Some(server) = NatsServer::start_with_config(Some(config)) else {
        return;
    };
    worker(&server.config().auth(Auth::token("t0ken-right")))
        .await
        .expect("the right token");
    let error = worker(&server.config().auth(Auth::token("t0ken-wrong")))
        .await
        .expect_err("a wrong token");
    assert!(matches!(error, ConnectError::Refused { .. }), "{error:?}");
    assert!(!format!("{error} {error:?}").contains("t0ken-wrong"));
    // With none given, the refusal says so, and how to give them.
    let error = worker(&server.config()).await.expect_err("no token");
    assert!(matches!(error, ConnectError::Refused { .. }), "{error:?}");
    assert!(error.to_string().contains("none were given"), "{error}");
}

/// Credentials in `ORCH_NATS_URL` stay the connection's when its servers are given
/// anew (as `orch worker --nats URL` does), as a password in `ORCH_NATS_PASSWORD` does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_in_the_url_variable_outlive_new_servers() {
    let config = r#"authorization { user: someone, password: "pw-in-env" }"#;
    let Some(server) = NatsServer::start_with_config(Some(config)) else {
        return;
    };
    let in_url = server.url().replacen("://", "://someone:pw-in-env@", 1);
    let mut config =
        NatsConfig::from_lookup(|name| (name == orch_nats::env::URL).then(|| in_url.clone()))
            .expect("valid settings");
    config.servers = vec![server.url()];
    worker(&config)
        .await
        .expect("the URL's credentials sign in");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_nkey_seed_signs_in_and_another_key_is_refused() {
    let user = nkeys::KeyPair::new_user();
    let config = format!(
        "authorization {{ users: [ {{ nkey: \"{}\" }} ] }}",
        user.public_key()
    );
    let Some(server) = NatsServer::start_with_config(Some(&config)) else {
        return;
    };
    let seed = user.seed().expect("a seed");
    worker(&server.config().auth(Auth::nkey(seed)))
        .await
        .expect("the user's key");
    let stranger = nkeys::KeyPair::new_user().seed().expect("a seed");
    let error = worker(&server.config().auth(Auth::nkey(stranger.clone())))
        .await
        .expect_err("another key");
    assert!(matches!(error, ConnectError::Refused { .. }), "{error:?}");
    assert!(!format!("{error} {error:?}").contains(&stranger));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_our_ca_connects_and_without_it_fails_as_a_tls_error() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let Some(server) = tls_server(dir.path(), "") else {
        return;
    };
    worker(&server.config().tls_ca(dir.path().join("ca.pem")))
        .await
        .expect("the server's certificate is signed by our CA");
    let mut system_roots = server.config();
    system_roots.tls_required = true;
    let error = worker(&system_roots).await.expect_err("an unknown CA");
    assert!(matches!(error, ConnectError::Tls { .. }), "{error:?}");
}

/// A server that asks for a client certificate refuses a client without one: a TLS
/// error that says what the server wants, not a server that cannot be reached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_asking_for_a_client_certificate_says_so_to_a_client_without_one() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let ca = dir.path().join("ca.pem");
    let asks = format!(", ca_file: \"{}\", verify: true", ca.display());
    let Some(server) = tls_server(dir.path(), &asks) else {
        return;
    };
    let error = worker(&server.config().tls_ca(dir.path().join("ca.pem")))
        .await
        .expect_err("no client certificate");
    assert!(matches!(error, ConnectError::Tls { .. }), "{error:?}");
    assert!(error.to_string().contains("ORCH_NATS_TLS_CERT"), "{error}");
}

/// A CA set on the field, as through `tls_ca`, requires TLS: a server without it is
/// refused rather than sent the credentials in plain text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_set_on_the_field_refuses_a_server_without_tls() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    if !make_certificates(dir.path()) {
        return;
    }
    let Some(server) = NatsServer::start() else {
        return;
    };
    let mut config = server.config();
    worker(&config)
        .await
        .expect("a plain connection when none is asked for");
    config.tls_ca = Some(dir.path().join("ca.pem"));
    let error = worker(&config).await.expect_err("no TLS on the server");
    assert!(matches!(error, ConnectError::Tls { .. }), "{error:?}");
}

/// A server with TLS, its certificates made in `dir` (see [`make_certificates`]), with
/// `more` settings in its `tls` block; none without openssl or nats-server.
fn tls_server(dir: &Path, more: &str) -> Option<NatsServer> {
    if !make_certificates(dir) {
        return None;
    }
    let config = format!(
        "tls {{ cert_file: \"{}\", key_file: \"{}\"{more} }}",
        dir.join("server.pem").display(),
        dir.join("server-key.pem").display()
    );
    NatsServer::start_with_config(Some(&config))
}

/// A CA, and a certificate for 127.0.0.1 it signed, made with the openssl command; false
/// (with the reason printed) when there is no openssl.
fn make_certificates(dir: &Path) -> bool {
    if Command::new("openssl").arg("version").output().is_err() {
        let reason = "the openssl command is not installed";
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{reason}: CI must run this test"
        );
        eprintln!("skipping: {reason}");
        return false;
    }
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write the extensions");
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let steps: [Vec<&str>; 3] = [
        [
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca-key.pem",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=orch test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        ]
        .concat(),
        [
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "server-key.pem",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        ]
        .concat(),
        vec![
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    ];
    for step in steps {
        let output = Command::new("openssl")
            .args(&step)
            .current_dir(dir)
            .output()
            .expect("run openssl");
        assert!(
            output.status.success(),
            "openssl {step:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    true
}

#[tokio::test]
async fn a_credentials_file_that_cannot_be_read_is_a_settings_error_naming_it() {
    let config = NatsConfig::default().auth(Auth::credentials_file("/nonexistent/orch.creds"));
    let error = worker(&config).await.expect_err("no such file");
    assert!(matches!(error, ConnectError::Config(_)), "{error:?}");
    assert!(
        error.to_string().contains("/nonexistent/orch.creds"),
        "{error}"
    );
}

/// A credentials, certificate or key file that is a device, a directory or too large to
/// be one is refused naming it (a device would be read for ever), as is a TLS file that
/// is a pipe (the client reads it again at every connection); a credentials file may be
/// a pipe, which is read.
#[tokio::test]
async fn a_key_file_that_is_no_regular_file_is_refused_naming_it() {
    use std::path::{Path, PathBuf};
    let dir = tempfile::tempdir().expect("a temporary directory");
    let pipe = |name: &str| {
        let pipe = dir.path().join(name);
        let made = std::process::Command::new("mkfifo")
            .arg(&pipe)
            .status()
            .expect("mkfifo runs");
        assert!(made.success(), "mkfifo: {made:?}");
        pipe
    };
    // Pipes with a writer: one that writes what is no credentials, one that writes more
    // than a credentials file holds.
    let (small, big) = (pipe("small.creds"), pipe("big.creds"));
    for (pipe, bytes) in [(small.clone(), 100), (big.clone(), 2 << 20)] {
        std::thread::spawn(move || {
            // Refused part way, the write fails: the reader has gone.
            let _ = std::fs::write(pipe, vec![b'x'; bytes]);
        });
    }
    let unread = pipe("unread.pem");
    let large = dir.path().join("large.pem");
    std::fs::write(&large, vec![b'-'; 2 << 20]).expect("written");
    let zero = PathBuf::from("/dev/zero");
    let folder = dir.path().to_owned();
    let creds = |path: &Path| NatsConfig::default().auth(Auth::credentials_file(path));
    let tls_ca = |path: &Path| NatsConfig::default().tls_ca(path);
    let cases = [
        (creds(&zero), &zero, "is a device, not a file or a pipe"),
        (
            creds(&folder),
            &folder,
            "is a directory, not a file or a pipe",
        ),
        (creds(&large), &large, "holds more than such a file does"),
        (creds(&big), &big, "holds more than such a file does"),
        (creds(&small), &small, "cannot read the credentials file"),
        (tls_ca(&unread), &unread, "is a pipe, not a regular file"),
        (tls_ca(&large), &large, "holds more than such a file does"),
        (
            NatsConfig::default().tls_client(&zero, &large),
            &zero,
            "is a device, not a regular file",
        ),
        (
            NatsConfig::default().tls_client(&large, &zero),
            &large,
            "holds more than such a file does",
        ),
    ];
    for (config, path, problem) in cases {
        // A guard against waiting for ever, not a measure.
        let error = tokio::time::timeout(std::time::Duration::from_secs(30), worker(&config))
            .await
            .expect("refused, not read for ever")
            .expect_err("refused");
        assert!(matches!(error, ConnectError::Config(_)), "{error:?}");
        let message = error.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains(problem), "{message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefix_whose_streams_another_prefix_made_is_refused_naming_them() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let with_prefix = |prefix: &str| server.config().name(prefix);
    let layout = |prefix: &str| orch_nats::Layout::with_prefix(prefix);
    let worker_with = |prefix: &'static str| {
        let (config, layout) = (with_prefix(prefix), layout(prefix));
        async move {
            Worker::builder()
                .layout(layout)
                .handler(
                    "t",
                    |_ctx: TaskContext| async move { Ok::<_, TaskError>(()) },
                )
                .connect(&config)
                .await
        }
    };
    worker_with("acme.orch")
        .await
        .expect("the first prefix sets up");
    // `acme_orch` gives the same stream names (`ACME_ORCH_TASKS`, ...).
    let refused = worker_with("acme_orch")
        .await
        .expect_err("streams of another prefix");
    assert!(matches!(refused, ConnectError::Setup { .. }), "{refused:?}");
    let message = refused.to_string();
    assert!(
        message.contains("ACME_ORCH_TASKS") && message.contains("acme_orch.task.>"),
        "{message}"
    );
    let coordinator = orch_nats::RemoteHandler::builder()
        .layout(layout("acme_orch"))
        .connect(&with_prefix("acme_orch"))
        .await;
    assert!(matches!(coordinator, Err(ConnectError::Setup { .. })));

    orch_nats::NatsJournal::connect(&with_prefix("a.b"), &layout("a.b"))
        .await
        .expect("the first prefix sets up");
    let journal = orch_nats::NatsJournal::connect(&with_prefix("a-b"), &layout("a-b")).await;
    let refused = journal.expect_err("the journal stream of another prefix");
    assert!(refused.to_string().contains("a-b.journal.*"), "{refused}");

    // Prefix `obj.tools`'s results stream is named as prefix `tools`'s bucket of large
    // outputs (`OBJ_TOOLS_RESULTS`).
    let coordinator = |prefix: &'static str| {
        let (config, layout) = (with_prefix(prefix), layout(prefix));
        async move {
            orch_nats::RemoteHandler::builder()
                .layout(layout)
                .connect(&config)
                .await
        }
    };
    coordinator("obj.tools")
        .await
        .expect("the first prefix sets up");
    let refused = coordinator("tools")
        .await
        .expect_err("a bucket of another prefix");
    let message = refused.to_string();
    assert!(message.contains("OBJ_TOOLS_RESULTS"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_made_by_hand_that_take_the_prefixs_subjects_are_used() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let client = async_nats::connect(server.url()).await.expect("connects");
    let js = async_nats::jetstream::new(client);
    // Task subjects are one token under `orch.task`; results take several.
    for (name, subjects, retention) in [
        (
            "ORCH_TASKS",
            "orch.task.*",
            async_nats::jetstream::stream::RetentionPolicy::WorkQueue,
        ),
        (
            "ORCH_RESULTS",
            "orch.result.*.*.*",
            async_nats::jetstream::stream::RetentionPolicy::Limits,
        ),
    ] {
        js.create_stream(async_nats::jetstream::stream::Config {
            name: name.to_owned(),
            subjects: vec![subjects.to_owned()],
            retention,
            ..Default::default()
        })
        .await
        .expect("created");
    }
    worker(&server.config())
        .await
        .expect("the streams take its subjects");
}

/// A tasks stream made by hand with the default retention (limits) keeps every task
/// acknowledged or refused, and attempts sent again would wait on those for ever:
/// connecting is refused, naming the stream and the retention it needs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tasks_stream_made_by_hand_without_work_queue_retention_is_refused() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let client = async_nats::connect(server.url()).await.expect("connects");
    let js = async_nats::jetstream::new(client);
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "ORCH_TASKS".to_owned(),
        subjects: vec!["orch.task.*".to_owned()],
        ..Default::default()
    })
    .await
    .expect("created");
    let refused = worker(&server.config()).await.expect_err("refused");
    assert!(matches!(refused, ConnectError::Setup { .. }), "{refused:?}");
    let message = refused.to_string();
    assert!(
        message.contains("ORCH_TASKS")
            && message.contains("its retention is Limits, and orch needs WorkQueue"),
        "{message}"
    );
    let coordinator = orch_nats::RemoteHandler::connect(&server.config()).await;
    assert!(matches!(coordinator, Err(ConnectError::Setup { .. })));
}

/// Processes that start together on a new server (workers and a coordinator) all make
/// the streams: each takes the streams another made meanwhile, however the server words
/// that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_and_a_coordinator_starting_together_all_set_up() {
    // Its messages smaller than the streams' default largest.
    let Some(server) = NatsServer::start_with_config(Some("max_payload: 65536")) else {
        return;
    };
    let config = server.config();
    let js = async_nats::jetstream::new(async_nats::connect(server.url()).await.expect("connects"));
    // The race is lost only now and then: tried several times, from no streams each time.
    for round in 0..6 {
        let workers = (0..8).map(|_| worker(&config));
        let coordinator = orch_nats::RemoteHandler::connect(&config);
        let (workers, coordinator) =
            tokio::join!(futures_util::future::join_all(workers), coordinator);
        for (n, connected) in workers.into_iter().enumerate() {
            connected.unwrap_or_else(|e| panic!("round {round}, worker {n}: {e}"));
        }
        coordinator.unwrap_or_else(|e| panic!("round {round}, the coordinator: {e}"));
        let names: Vec<String> = js.stream_names().try_collect().await.expect("listed");
        for name in names {
            js.delete_stream(&name).await.expect("deleted");
        }
    }
}
