//! [`ConnectError`]: why a coordinator, worker or bridge could not start on NATS; and
//! [`CancelRunError`]: why a run could not be cancelled on the workers; and whether the
//! server refused a message for its size.

/// Why connecting to NATS, or setting up the streams this crate uses, failed.
///
/// Secrets never appear in it: not the password, token or seed, nor the user
/// information of a server URL.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The settings cannot be used as given.
    #[error("invalid NATS settings: {0}")]
    Config(String),
    /// No server answered.
    #[error("cannot reach a NATS server at {servers}: {reason}")]
    Unreachable {
        /// The servers tried.
        servers: String,
        /// What the client reported.
        reason: String,
    },
    /// A server answered and refused the credentials.
    #[error("the NATS server at {servers} refused the credentials: {reason}")]
    Refused {
        /// The servers tried.
        servers: String,
        /// What the client reported.
        reason: String,
    },
    /// TLS could not be set up with the server.
    #[error("TLS with the NATS server at {servers} failed: {reason}")]
    Tls {
        /// The servers tried.
        servers: String,
        /// What the client reported.
        reason: String,
    },
    /// The server runs without JetStream.
    #[error("the NATS server has no JetStream (start nats-server with -js): {reason}")]
    NoJetStream {
        /// What the server answered.
        reason: String,
    },
    /// A stream, consumer, object store bucket or subscription could not be found,
    /// created or used as this crate needs.
    #[error("cannot set up {what}: {reason}")]
    Setup {
        /// What could not be set up: the stream, consumer, bucket or subscription.
        what: String,
        /// What the server answered.
        reason: String,
    },
}

/// Why [`RemoteHandler::cancel_run`](crate::RemoteHandler::cancel_run) sent no
/// cancellation: the tasks stream's last message could not be read, and a cancellation
/// must name it (one that names none would also stop the run's attempts sent later, by
/// a coordinator that comes back on the run), or the cancellation could not be sent
/// (the server gone for long). Nothing was cancelled; try again.
#[derive(Debug, thiserror::Error)]
#[error("cannot cancel run `{run}` on the workers: {reason}")]
#[non_exhaustive]
pub struct CancelRunError {
    /// The run.
    pub run: orch_core::RunId,
    /// Why the tasks stream could not be read, or the cancellation not sent.
    pub reason: String,
}

/// Whether the server refused a message for its size: over the connection's largest
/// payload, or over the stream's own largest message (which an administrator may set
/// lower). Sent again as it is, it is refused again.
pub(crate) fn too_large(error: &async_nats::jetstream::context::PublishError) -> bool {
    let stream_refused = std::error::Error::source(error)
        .and_then(|source| source.downcast_ref::<async_nats::jetstream::Error>())
        .is_some_and(|e| {
            e.error_code() == async_nats::jetstream::ErrorCode::STREAM_MESSAGE_EXCEEDS_MAXIMUM
        });
    error.kind() == async_nats::jetstream::context::PublishErrorKind::MaxPayloadExceeded
        || stream_refused
}
