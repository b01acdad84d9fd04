//! Subscribing: a stream ([`EventBus::subscribe`]) or a callback
//! ([`EventBus::subscribe_fn`]), and removing a subscription when it is dropped.

use std::{
    collections::VecDeque,
    future::Future,
    sync::{Arc, atomic::Ordering},
};

use super::{EventBus, Inner};
use crate::{
    CallbackSubscription, Delivery, Pattern, SubscribeError, SubscribeOptions, Subscription,
    queue::Queue,
};

impl<T> Inner<T> {
    pub(crate) fn remove(&self, pattern: &Pattern, id: u64) {
        let mut routes = self.write();
        routes.remove(pattern, id);
    }
}

impl<T> EventBus<T> {
    /// Subscribes to `pattern` with the default options (capacity
    /// [`SubscribeOptions::DEFAULT_CAPACITY`], [`Block`](crate::Overflow::Block)).
    ///
    /// # Errors
    /// [`SubscribeError::InvalidPattern`] or [`SubscribeError::Closed`].
    pub fn subscribe(&self, pattern: &str) -> Result<Subscription<T>, SubscribeError> {
        self.subscribe_with(pattern, SubscribeOptions::default())
    }

    /// Subscribes to `pattern` with `options`.
    ///
    /// # Errors
    /// [`SubscribeError::InvalidPattern`], [`SubscribeError::Closed`], or for replay
    /// [`SubscribeError::HistoryDisabled`], [`SubscribeError::ReplayGone`] and
    /// [`SubscribeError::ReplayAhead`].
    pub fn subscribe_with(
        &self,
        pattern: &str,
        options: SubscribeOptions,
    ) -> Result<Subscription<T>, SubscribeError> {
        let pattern = Pattern::new(pattern)?;
        let inner = &*self.inner;
        let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
        let queue = Arc::new(Queue::new(id, options.overflow, options.capacity));
        let backlog = {
            let mut routes = inner.write();
            if routes.closed {
                return Err(SubscribeError::Closed);
            }
            let backlog = match options.replay_from {
                None => VecDeque::new(),
                Some(from) => self.backlog(&pattern, from)?,
            };
            routes.insert(&pattern, Arc::clone(&queue));
            backlog
        };
        queue.count_delivered(backlog.len());
        Ok(Subscription::new(
            queue,
            pattern,
            Arc::downgrade(&self.inner),
            backlog,
        ))
    }
}

impl<T: Send + Sync + 'static> EventBus<T> {
    /// Runs `callback` for each delivery on `pattern`, on a task of the current tokio
    /// runtime. See [`CallbackSubscription`] for how panics are handled.
    ///
    /// The callback is what empties its own queue: with the lossless `Block` policy, a
    /// callback that publishes, and awaits publishing, on a subject its own pattern
    /// matches waits for itself once that queue is full. So do two callbacks that
    /// publish, and await publishing, on each other's patterns, once both queues are
    /// full. Such a callback should use a lossy policy, or hand the publish to a task of
    /// its own.
    ///
    /// A callback that holds a clone of the bus (to publish, say) keeps the bus alive as
    /// long as the callback lives: dropping every other clone does not close it then.
    /// Close it with [`EventBus::close`], or unsubscribe the callback first.
    ///
    /// # Errors
    /// As [`EventBus::subscribe_with`], plus [`SubscribeError::NoRuntime`] outside a tokio
    /// runtime.
    pub fn subscribe_fn<F, Fut>(
        &self,
        pattern: &str,
        options: SubscribeOptions,
        callback: F,
    ) -> Result<CallbackSubscription<T>, SubscribeError>
    where
        F: Fn(Delivery<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| SubscribeError::NoRuntime)?;
        let subscription = self.subscribe_with(pattern, options)?;
        Ok(CallbackSubscription::spawn(
            &runtime,
            subscription,
            callback,
        ))
    }
}
