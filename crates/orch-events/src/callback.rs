//! Callback subscriptions: an async function run for each delivery on its own task, with
//! panics caught, counted and reported.

use std::{
    any::Any,
    future::Future,
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{Arc, Mutex, PoisonError, atomic::Ordering},
    task::Poll,
};

use tokio::task::JoinHandle;

use crate::{Delivery, Pattern, Subscription, SubscriptionId, SubscriptionStats, queue::Queue};

/// A running callback subscription, from
/// [`EventBus::subscribe_fn`](crate::EventBus::subscribe_fn).
///
/// The callback runs on its own tokio task, one delivery at a time, in order. A panic in
/// it is caught, counted ([`SubscriptionStats::panics`]), logged (`tracing` error) and
/// kept ([`CallbackSubscription::last_panic`]); the next delivery proceeds as usual, and
/// neither the publisher nor other subscribers notice.
///
/// Dropping this handle leaves the callback running until the bus closes; call
/// [`CallbackSubscription::unsubscribe`] to stop it.
pub struct CallbackSubscription<T> {
    id: SubscriptionId,
    pattern: Pattern,
    queue: Arc<Queue<T>>,
    last_panic: Arc<Mutex<Option<String>>>,
    task: JoinHandle<()>,
}

impl<T: Send + Sync + 'static> CallbackSubscription<T> {
    pub(crate) fn spawn<F, Fut>(
        runtime: &tokio::runtime::Handle,
        mut subscription: Subscription<T>,
        callback: F,
    ) -> Self
    where
        F: Fn(Delivery<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let id = subscription.id();
        let pattern = subscription.pattern().clone();
        let queue = Arc::clone(subscription.queue());
        let last_panic = Arc::new(Mutex::new(None));
        let task = runtime.spawn({
            let last_panic = Arc::clone(&last_panic);
            async move {
                while let Some(delivery) = subscription.recv().await {
                    // Checked before every call: after `unsubscribe` nothing more runs.
                    if subscription.queue().is_detached() {
                        break;
                    }
                    if let Err(panic) = call(&callback, delivery).await {
                        let message = panic_message(panic);
                        let queue = subscription.queue();
                        queue.panics.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(
                            subscription = %subscription.id(),
                            pattern = %subscription.pattern(),
                            panic = %message,
                            "event callback panicked"
                        );
                        *last_panic.lock().unwrap_or_else(PoisonError::into_inner) = Some(message);
                    }
                }
            }
        });
        Self {
            id,
            pattern,
            queue,
            last_panic,
            task,
        }
    }
}

impl<T> CallbackSubscription<T> {
    /// This subscription's id.
    pub fn id(&self) -> SubscriptionId {
        self.id
    }

    /// The pattern subscribed to.
    pub fn pattern(&self) -> &Pattern {
        &self.pattern
    }

    /// Its counters, including how many callback calls panicked.
    pub fn stats(&self) -> SubscriptionStats {
        self.queue.stats()
    }

    /// The message of the latest panic caught, if any.
    pub fn last_panic(&self) -> Option<String> {
        self.last_panic
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether the callback task has ended (after unsubscribing, or after the bus closed
    /// and everything was delivered).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Waits until the bus is closed and the callback has handled everything published
    /// before.
    ///
    /// Called from inside the callback itself, it returns at once: the callback cannot
    /// wait for its own end.
    pub async fn finished(&mut self) {
        if self.may_wait() {
            // The task catches every panic of a call, so it can only end normally.
            let _ = (&mut self.task).await;
        }
    }

    /// Unsubscribes. Once this returns the callback is not running and will not be
    /// called again; a call in progress is awaited, queued deliveries are discarded.
    ///
    /// Called from inside the callback itself, it stops further calls without waiting.
    pub async fn unsubscribe(self) {
        drop(self.queue.detach());
        if self.may_wait() {
            let _ = self.task.await;
        }
    }

    /// Whether the callback task may be awaited from here: not from inside it (it
    /// cannot wait for its own end), and not once it ended (it may have been awaited
    /// already, by `finished`).
    fn may_wait(&self) -> bool {
        let own_task = tokio::task::try_id() == Some(self.task.id());
        !own_task && !self.task.is_finished()
    }
}

impl<T> std::fmt::Debug for CallbackSubscription<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackSubscription")
            .field("id", &self.id)
            .field("pattern", &self.pattern)
            .finish_non_exhaustive()
    }
}

/// Runs one callback call, catching a panic in making, polling or dropping its future
/// (the first, if more than one).
async fn call<T, F, Fut>(callback: &F, delivery: Delivery<T>) -> Result<(), Box<dyn Any + Send>>
where
    F: Fn(Delivery<T>) -> Fut,
    Fut: Future<Output = ()>,
{
    let future = catch_unwind(AssertUnwindSafe(|| callback(delivery)))?;
    let mut future = std::pin::pin!(Some(future));
    let called = std::future::poll_fn(|cx| {
        let Some(call) = future.as_mut().as_pin_mut() else {
            return Poll::Ready(Ok(()));
        };
        match catch_unwind(AssertUnwindSafe(|| call.poll(cx))) {
            Ok(Poll::Ready(())) => Poll::Ready(Ok(())),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(Err(panic)),
        }
    })
    .await;
    // What the future holds is dropped here, where a panic in a destructor is caught.
    let dropped = catch_unwind(AssertUnwindSafe(|| future.as_mut().set(None)));
    match (called, dropped) {
        (Err(panic), Err(later)) => {
            release(later);
            Err(panic)
        }
        (called, dropped) => called.and(dropped),
    }
}

/// The message of a callback's panic. Its payload is dropped inside a panic guard: one
/// given to `std::panic::panic_any` may panic when dropped, which would otherwise end
/// the subscription's task.
fn panic_message(panic: Box<dyn Any + Send>) -> String {
    let message = if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    };
    release(panic);
    message
}

/// Drops a panic's payload inside a panic guard; the payload of a panic there is leaked.
fn release(payload: Box<dyn Any + Send>) {
    if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(again);
    }
}
