//! Protocol versions: each kind of message names the version it was written in, and a
//! reader refuses one newer than it knows for that kind.

use serde::Deserialize;

use super::{CancelMessage, NEWEST, ResultMessage, TaskMessage, VERSION};

/// A message that could not be read, with why.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    #[error("not a valid message: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error(
        "protocol version {found} is newer than this build reads ({newest}); upgrade orch-nats"
    )]
    Newer { found: u32, newest: u32 },
}

/// A message that names the protocol version it was written in.
pub(crate) trait Versioned {
    /// The newest version of this kind of message that this build reads.
    const NEWEST: u32;
    fn version(&self) -> u32;
}

macro_rules! versioned {
    ($($message:ty => $newest:expr),*) => {
        $(impl Versioned for $message {
            const NEWEST: u32 = $newest;
            fn version(&self) -> u32 {
                self.v
            }
        })*
    };
}

// Only task messages have a version 2 (with an item); results and cancellations have
// none yet, and one would mean something this build cannot know.
versioned!(TaskMessage => NEWEST, ResultMessage => VERSION, CancelMessage => VERSION);

/// Reads a message of any kind, refusing a newer version whatever its shape. The
/// payload is parsed once when it reads as `T`; only a message that does not is looked
/// at again for its version.
pub(crate) fn read<T: for<'de> Deserialize<'de> + Versioned>(
    payload: &[u8],
) -> Result<T, ReadError> {
    #[derive(Deserialize)]
    struct Version {
        v: u32,
    }
    match serde_json::from_slice::<T>(payload) {
        Ok(message) if message.version() > T::NEWEST => Err(ReadError::Newer {
            found: message.version(),
            newest: T::NEWEST,
        }),
        Ok(message) => Ok(message),
        Err(error) => match serde_json::from_slice::<Version>(payload) {
            Ok(Version { v }) if v > T::NEWEST => Err(ReadError::Newer {
                found: v,
                newest: T::NEWEST,
            }),
            _ => Err(ReadError::Malformed(error)),
        },
    }
}
