//! How long a session's set-up may take, and how far it got: one that takes too long
//! says where it waited, so that a lock held on the journal's tables is not taken for a
//! server that cannot be reached.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// A step of a session's set-up, in the order they come.
#[derive(Clone, Copy, Default)]
pub(super) enum Step {
    #[default]
    Connect,
    LookForTables,
    CheckTables,
    SetUpSession,
    Prepare,
}

impl Step {
    /// What the server was asked, for an error message.
    fn asked(self) -> &'static str {
        match self {
            Step::Connect => "connect",
            Step::LookForTables => "look for the journal's tables",
            Step::CheckTables => "check or create the journal's tables",
            Step::SetUpSession => "set up the session",
            Step::Prepare => "prepare the journal's statements",
        }
    }
}

/// The step a set-up has reached.
#[derive(Default)]
pub(super) struct Progress(Mutex<Step>);

impl Progress {
    pub(super) fn reached(&self, step: Step) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = step;
    }

    /// Why a set-up that reached this far gave up after `limit`, with `target`.
    pub(super) fn timed_out(&self, target: &str, limit: Duration) -> String {
        let secs = limit.as_secs_f64();
        match *self.0.lock().unwrap_or_else(PoisonError::into_inner) {
            Step::Connect => format!(
                "no session with {target} within {secs}s (no server answered in time: it \
                 could not be reached, or took the connection and did not set it up)"
            ),
            // These read or change the journal's tables, which a lock holds up.
            step @ (Step::CheckTables | Step::Prepare) => format!(
                "connected to {target}, but no answer within {secs}s when asked to {}: \
                 another session may hold a lock on the journal's tables (a migration, a \
                 VACUUM FULL; pg_locks shows it)",
                step.asked()
            ),
            step => format!(
                "connected to {target}, but no answer within {secs}s when asked to {}: \
                 the server is busy or stopped answering",
                step.asked()
            ),
        }
    }
}

/// How many addresses a connection attempt may try, each with its `connect_timeout` (as
/// the client, like libpq, gives them): the `hostaddr`s given, or the addresses each host
/// name resolves to (looked up within `each`; one when the look-up fails). At least one.
pub(super) async fn addresses(config: &tokio_postgres::Config, each: Duration) -> usize {
    if !config.get_hostaddrs().is_empty() {
        return config.get_hostaddrs().len();
    }
    let ports = config.get_ports();
    let mut count = 0usize;
    for (i, host) in config.get_hosts().iter().enumerate() {
        let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
        count += match host {
            tokio_postgres::config::Host::Tcp(name) => {
                let found =
                    tokio::time::timeout(each, tokio::net::lookup_host((name.as_str(), port)));
                match found.await {
                    Ok(Ok(found)) => found.count().max(1),
                    _ => 1,
                }
            }
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(_) => 1,
        };
    }
    count.max(1)
}
