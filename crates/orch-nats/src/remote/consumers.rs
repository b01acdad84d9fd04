//! The durable consumer of each remote task type, made sure of before the type's first
//! task goes out: looked up once per type, however many attempts start at once, and a
//! failed look-up fails every attempt that waited on it together.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::jetstream;
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use orch_engine::TaskError;

use crate::layout::Layout;
use crate::setup;

/// A look-up under way, shared by the attempts waiting on it: the consumer's
/// `ack_wait`, or its error as text.
type LookUp = Shared<BoxFuture<'static, Result<Duration, Arc<str>>>>;

enum Consumer {
    /// There, with this `ack_wait` (which workers go by: the consumer may have been made
    /// with another layout than this coordinator's).
    Known(Duration),
    LookingUp(LookUp),
}

/// What a coordinator knows of its task types' consumers.
#[derive(Default)]
pub(super) struct Consumers {
    types: Mutex<HashMap<String, Consumer>>,
}

impl Consumers {
    /// Whether `task_type`'s consumer is known to exist.
    pub(super) fn known(&self, task_type: &str) -> bool {
        self.ack_wait(task_type).is_some()
    }

    /// The `ack_wait` of `task_type`'s consumer, when it is known to exist.
    pub(super) fn ack_wait(&self, task_type: &str) -> Option<Duration> {
        match self.lock().get(task_type) {
            Some(Consumer::Known(ack_wait)) => Some(*ack_wait),
            _ => None,
        }
    }

    /// The `ack_wait` the workers of `task_type` go by: its consumer's, or `layout`'s
    /// until the consumer is known.
    pub(super) fn ack_wait_or(&self, task_type: &str, layout: Duration) -> Duration {
        self.ack_wait(task_type).unwrap_or(layout)
    }

    /// Finds or creates `task_type`'s consumer, or waits for the look-up under way.
    pub(super) async fn ensure(
        &self,
        js: &jetstream::Context,
        layout: &Layout,
        task_type: &str,
    ) -> Result<(), TaskError> {
        let look_up = {
            let mut types = self.lock();
            match types.get(task_type) {
                Some(Consumer::Known(_)) => return Ok(()),
                Some(Consumer::LookingUp(look_up)) => look_up.clone(),
                None => {
                    let (js, layout, name) = (js.clone(), layout.clone(), task_type.to_owned());
                    let look_up = async move {
                        setup::ensure_consumer(&js, &layout, &name)
                            .await
                            .map(|config| config.ack_wait)
                            .map_err(|error| Arc::from(error.to_string()))
                    }
                    .boxed()
                    .shared();
                    types.insert(task_type.to_owned(), Consumer::LookingUp(look_up.clone()));
                    look_up
                }
            }
        };
        let outcome = look_up.clone().await;
        let mut types = self.lock();
        // Only this look-up's entry changes: a failed one is forgotten, so that a later
        // attempt asks again.
        if let Some(Consumer::LookingUp(current)) = types.get(task_type)
            && current.ptr_eq(&look_up)
        {
            match outcome {
                Ok(ack_wait) => types.insert(task_type.to_owned(), Consumer::Known(ack_wait)),
                Err(_) => types.remove(task_type),
            };
        }
        outcome
            .map(drop)
            .map_err(|reason| TaskError::new(reason.to_string()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Consumer>> {
        self.types.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
