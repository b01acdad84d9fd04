//! Error types. Every error says what went wrong and, for subjects and patterns, where.

use crate::SubscriptionId;

/// An invalid subject (for publishing) or pattern (for subscribing).
///
/// `token` is the zero-based index of the offending dot-separated token and `byte` the
/// byte offset in `input` where the problem starts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubjectError {
    /// The whole subject or pattern is the empty string.
    #[error("subject or pattern is empty")]
    Empty,
    /// Two dots in a row, or a leading or trailing dot.
    #[error("{input:?}: token {token} (byte {byte}) is empty")]
    EmptyToken {
        /// The rejected subject or pattern.
        input: String,
        /// Index of the empty token.
        token: usize,
        /// Byte offset where the empty token starts.
        byte: usize,
    },
    /// A token contains a whitespace character.
    #[error("{input:?}: token {token} has whitespace at byte {byte}")]
    Whitespace {
        /// The rejected subject or pattern.
        input: String,
        /// Index of the token with whitespace.
        token: usize,
        /// Byte offset of the whitespace character.
        byte: usize,
    },
    /// A published subject contains a wildcard token (`*` or `>`).
    #[error(
        "{input:?}: token {token} (byte {byte}) is the wildcard `{wildcard}`, which only patterns may use"
    )]
    WildcardInSubject {
        /// The rejected subject.
        input: String,
        /// Index of the wildcard token.
        token: usize,
        /// Byte offset of the wildcard token.
        byte: usize,
        /// The wildcard found: `*` or `>`.
        wildcard: char,
    },
    /// A pattern has `>` somewhere other than its last token.
    #[error("{input:?}: `>` at token {token} (byte {byte}) must be the last token")]
    FullWildcardNotLast {
        /// The rejected pattern.
        input: String,
        /// Index of the misplaced `>`.
        token: usize,
        /// Byte offset of the misplaced `>`.
        byte: usize,
    },
    /// More tokens than [`MAX_TOKENS`](crate::MAX_TOKENS). The input is left out of the
    /// error: it is long.
    #[error(
        "subject or pattern has {tokens} tokens, more than the limit of {limit}: token {limit} starts at byte {byte}"
    )]
    TooManyTokens {
        /// How many tokens the input has.
        tokens: usize,
        /// The most tokens allowed, [`MAX_TOKENS`](crate::MAX_TOKENS).
        limit: usize,
        /// Byte offset where the first token past the limit starts.
        byte: usize,
    },
}

/// Why [`EventBus::publish`](crate::EventBus::publish) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The subject is invalid; nothing was published.
    #[error("invalid subject: {0}")]
    InvalidSubject(#[from] SubjectError),
    /// The bus was closed before this publish started; nothing was published.
    #[error("the event bus is closed")]
    Closed,
}

/// Why [`EventBus::try_publish`](crate::EventBus::try_publish) published nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TryPublishErrorKind {
    /// The subject is invalid.
    #[error("invalid subject: {0}")]
    InvalidSubject(#[from] SubjectError),
    /// The bus is closed.
    #[error("the event bus is closed")]
    Closed,
    /// At least one matching subscription with the [`Block`](crate::Overflow::Block)
    /// policy had a full queue, or other publishers waiting for its room, so publishing
    /// would have had to wait. `blocked` lists those seen (at least one).
    #[error("{} blocking subscription(s) have no room now: {blocked:?}", blocked.len())]
    Full {
        /// The [`Block`](crate::Overflow::Block) subscriptions with no room for it.
        blocked: Vec<SubscriptionId>,
    },
}

/// [`EventBus::try_publish`](crate::EventBus::try_publish) published nothing: the reason
/// and the payload, handed back so the caller can retry.
#[derive(thiserror::Error)]
#[error("{kind}")]
pub struct TryPublishError<T> {
    kind: TryPublishErrorKind,
    payload: T,
}

impl<T> TryPublishError<T> {
    pub(crate) fn new(kind: TryPublishErrorKind, payload: T) -> Self {
        Self { kind, payload }
    }

    /// Why nothing was published.
    pub fn kind(&self) -> &TryPublishErrorKind {
        &self.kind
    }

    /// The payload that was not published.
    pub fn into_payload(self) -> T {
        self.payload
    }

    /// The reason and the payload.
    pub fn into_parts(self) -> (TryPublishErrorKind, T) {
        (self.kind, self.payload)
    }
}

impl<T> std::fmt::Debug for TryPublishError<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TryPublishError")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// Why a subscription could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubscribeError {
    /// The pattern is invalid.
    #[error("invalid pattern: {0}")]
    InvalidPattern(#[from] SubjectError),
    /// The bus is closed.
    #[error("the event bus is closed")]
    Closed,
    /// Replay was asked for but the bus keeps no history
    /// (see [`EventBusBuilder::history`](crate::EventBusBuilder::history)).
    #[error("replay from sequence {requested} asked for, but this bus keeps no history")]
    HistoryDisabled {
        /// The sequence number asked for.
        requested: u64,
    },
    /// The events from the asked-for sequence number on are no longer all in the history.
    #[error("replay from sequence {requested} is gone: the oldest event kept is {oldest}")]
    ReplayGone {
        /// The sequence number asked for.
        requested: u64,
        /// The oldest sequence number still kept (or the next one to be published, if
        /// the history is empty).
        oldest: u64,
    },
    /// The asked-for sequence number has not been published yet.
    #[error("replay from sequence {requested} asked for, but the next event will be {next}")]
    ReplayAhead {
        /// The sequence number asked for.
        requested: u64,
        /// The sequence number the next published event will get.
        next: u64,
    },
    /// A callback subscription needs a tokio runtime to run on, and there is none here.
    #[error("callback subscriptions must be made inside a tokio runtime")]
    NoRuntime,
}
