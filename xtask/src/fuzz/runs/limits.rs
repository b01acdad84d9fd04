//! The engine's limits, checked from the handlers' side: each handler notes its start
//! and end, and at each start the handlers still running must leave room for it, under
//! `max_concurrent` and under its pool's limit.
//!
//! A handler past its task's timeout counts as ended from that instant (the engine
//! gives its slot up then, while a spawned handler it aborted is dropped only at the
//! runtime's next turn). The clock is tokio's paused one, so an instant is exact.

use std::sync::{Arc, Mutex, PoisonError};

use orch_engine::TaskContext;
use tokio::time::Instant;

/// The handlers running, and the first start the limits had no room for.
pub(super) struct LimitCheck {
    max_concurrent: usize,
    pool_limit: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    next_key: u64,
    running: Vec<Running>,
    first_past_a_limit: Option<String>,
}

struct Running {
    key: u64,
    task: String,
    pool: Option<String>,
    /// When the engine gives the handler up (its task's timeout).
    given_up_at: Option<Instant>,
}

impl LimitCheck {
    pub(super) fn new(max_concurrent: usize, pool_limit: usize) -> Arc<Self> {
        Arc::new(Self {
            max_concurrent,
            pool_limit,
            state: Mutex::default(),
        })
    }

    /// Notes that the handler of `ctx`'s task starts, checking the limits; it ends when
    /// the guard returned is dropped.
    pub(super) fn enter(self: &Arc<Self>, ctx: &TaskContext) -> RunningHandler {
        let task = ctx.task_definition();
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let live: Vec<&Running> = state
            .running
            .iter()
            .filter(|r| r.given_up_at.is_none_or(|at| at > now))
            .collect();
        let in_pool = |pool: &str| {
            live.iter()
                .filter(|r| r.pool.as_deref() == Some(pool))
                .count()
        };
        let over = if live.len() >= self.max_concurrent {
            Some(format!("max_concurrent {}", self.max_concurrent))
        } else {
            let pool = task.pool.as_deref();
            pool.filter(|pool| in_pool(pool) >= self.pool_limit)
                .map(|pool| format!("pool {pool}'s limit {}", self.pool_limit))
        };
        if let Some(limit) = over
            && state.first_past_a_limit.is_none()
        {
            let others: Vec<&str> = live.iter().map(|r| r.task.as_str()).collect();
            state.first_past_a_limit = Some(format!(
                "task {} started while {others:?} ran, past {limit}",
                task.task_id
            ));
        }
        let key = state.next_key;
        state.next_key += 1;
        state.running.push(Running {
            key,
            task: task.task_id.to_string(),
            pool: task.pool.clone(),
            given_up_at: task.timeout.map(|timeout| now + timeout),
        });
        RunningHandler {
            limits: Arc::clone(self),
            key,
        }
    }

    /// The first start that went past a limit, if any.
    pub(super) fn first_past_a_limit(&self) -> Option<String> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.first_past_a_limit.clone()
    }
}

/// A handler running; it ends when this is dropped.
pub(super) struct RunningHandler {
    limits: Arc<LimitCheck>,
    key: u64,
}

impl Drop for RunningHandler {
    fn drop(&mut self) {
        let mut state = (self.limits.state.lock()).unwrap_or_else(PoisonError::into_inner);
        state.running.retain(|r| r.key != self.key);
    }
}
