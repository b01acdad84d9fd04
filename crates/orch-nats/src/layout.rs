//! [`Layout`]: where and how tasks and results travel, shared by the coordinators and
//! workers of one deployment.

use std::time::Duration;

use crate::ConnectError;
use crate::protocol::Names;

/// Where and how tasks and results travel: the subject prefix, and the settings of the
/// streams and consumers under it. Coordinators and workers of one deployment use the
/// same layout; the first process that finds a stream or consumer missing creates it
/// with these settings, and later processes use it as it is.
#[derive(Clone, Debug)]
pub struct Layout {
    /// The first subject token(s) of every subject (`orch` by default); streams are named
    /// after it (`ORCH_TASKS`, `ORCH_RESULTS`), from its letters and digits, upper-cased:
    /// two prefixes that give the same names (`acme.orch`, `acme_orch`) cannot share a
    /// server, and the second is refused when it connects.
    pub prefix: String,
    /// How long a worker may hold a task without acknowledging progress before the
    /// server delivers it to another worker (workers acknowledge progress every quarter
    /// of it while a handler runs). Default 30 s.
    pub ack_wait: Duration,
    /// How many times a task is delivered before it fails as "worker lost". Default 5.
    /// Every delivery counts: to a worker that died or stopped acknowledging it, and to
    /// a stopping worker that handed it back (see
    /// [`WorkerBuilder::shutdown_grace`](crate::WorkerBuilder::shutdown_grace)).
    /// (The consumer is set up with one delivery more: the worker that gets it stores
    /// the "worker lost" result instead of running the task, so that the verdict waits on
    /// the results stream for a coordinator that was away when it was reached. Workers
    /// go by the setting of the consumer as it is on the server, and by its `ack_wait`,
    /// which they read again every 5 s, so that a consumer edited on the server, or
    /// made again by another with other settings, is taken up; a worker that sets up
    /// again a consumer deleted under it does so with those.)
    pub max_deliver: u32,
    /// How long results are kept on the results stream, and cancellations on theirs.
    /// Default one day; more than zero.
    pub result_retention: Duration,
    /// The window in which the server recognises a task or result published again under
    /// the same message id. A coordinator sends a task message again (the server did not
    /// answer, or refused it) for at most half this time, or half the tasks stream's own
    /// window if the stream it found has a shorter one; then the attempt fails, and is
    /// retried if the task has retries left. Default 2 minutes. (The server may take up
    /// to 5 s to answer a publish: a window under 10 s fails an attempt on one answer
    /// that does not come.) More than zero, and at most `result_retention`.
    pub duplicate_window: Duration,
    /// How many tasks of one type may be held by workers at once. Default 20,000; at
    /// least 1.
    pub max_in_flight: u32,
}

impl Default for Layout {
    fn default() -> Self {
        Self {
            prefix: "orch".to_owned(),
            ack_wait: Duration::from_secs(30),
            max_deliver: 5,
            result_retention: Duration::from_secs(24 * 3600),
            duplicate_window: Duration::from_secs(120),
            max_in_flight: 20_000,
        }
    }
}

impl Layout {
    /// The default layout under another subject prefix.
    pub fn with_prefix(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            ..Self::default()
        }
    }

    pub(crate) fn names(&self) -> Names {
        Names::new(&self.prefix)
    }

    /// Checks what the server would refuse later, with an error naming the setting.
    pub(crate) fn check(&self) -> Result<(), ConnectError> {
        let valid_token = |t: &str| {
            !t.is_empty()
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        if !self.prefix.split('.').all(valid_token) {
            return Err(ConnectError::Config(format!(
                "the subject prefix `{}` must be tokens of ASCII letters, digits, `-` and `_` separated by dots",
                self.prefix
            )));
        }
        if self.ack_wait < Duration::from_millis(100) || self.max_deliver == 0 {
            return Err(ConnectError::Config(format!(
                "ack_wait must be at least 100ms and max_deliver at least 1 (got {:?} and {})",
                self.ack_wait, self.max_deliver
            )));
        }
        // Zero is the server's own default window, or keeping results for ever.
        if self.duplicate_window.is_zero() {
            return Err(ConnectError::Config(
                "duplicate_window must be more than zero (the server would take zero for its \
                 own default)"
                    .to_owned(),
            ));
        }
        if self.result_retention.is_zero() {
            return Err(ConnectError::Config(
                "result_retention must be more than zero (the server would keep results for \
                 ever: give a long time instead)"
                    .to_owned(),
            ));
        }
        if self.result_retention < self.duplicate_window {
            return Err(ConnectError::Config(format!(
                "result_retention ({:?}) must be at least duplicate_window ({:?}): results are \
                 recognised again within that window",
                self.result_retention, self.duplicate_window
            )));
        }
        if self.max_in_flight == 0 {
            return Err(ConnectError::Config(
                "max_in_flight must be at least 1 (zero is the server's default, 1,000)".to_owned(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Settings the server would take for something else (a zero is its default, or
    /// for ever) or refuse later are refused at once, naming the setting.
    #[test]
    fn a_layout_refuses_settings_the_server_would_take_otherwise() {
        let cases = [
            (
                Layout {
                    duplicate_window: Duration::ZERO,
                    ..Layout::default()
                },
                "duplicate_window",
            ),
            (
                Layout {
                    result_retention: Duration::ZERO,
                    ..Layout::default()
                },
                "result_retention",
            ),
            (
                Layout {
                    result_retention: Duration::from_secs(60),
                    ..Layout::default()
                },
                "result_retention",
            ),
            (
                Layout {
                    max_in_flight: 0,
                    ..Layout::default()
                },
                "max_in_flight",
            ),
        ];
        for (layout, setting) in cases {
            let refused = layout.check().expect_err(setting);
            assert!(
                matches!(&refused, ConnectError::Config(m) if m.contains(setting)),
                "{refused}"
            );
        }
        let short = Layout {
            duplicate_window: Duration::from_millis(500),
            result_retention: Duration::from_millis(500),
            ..Layout::default()
        };
        assert!(short.check().is_ok());
    }
}
