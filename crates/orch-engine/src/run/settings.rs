//! [`RunSettings`]: what a run takes from its engine.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::Handler;
use crate::announce::EventTarget;
use crate::journaling::JournalSettings;
use crate::state::States;

/// What a run takes from its engine when it starts.
pub(crate) struct RunSettings {
    pub(crate) handlers: HashMap<String, Arc<dyn Handler>>,
    pub(crate) states: Arc<States>,
    pub(crate) max_concurrent: usize,
    pub(crate) grace_period: Duration,
    /// Pools by name, with their limits.
    pub(crate) pools: Arc<HashMap<String, usize>>,
    /// Whether equal priorities start by the longest chain behind them.
    pub(crate) critical_path_first: bool,
    /// Where lifecycle events go, if anywhere.
    pub(crate) events: Option<EventTarget>,
    /// The journal a durable run is recorded in (none for other runs).
    pub(crate) journal: Option<JournalSettings>,
    /// The store and key functions of cached tasks.
    pub(crate) cache: crate::cache::CacheSettings,
    /// The most instances a map task may run unless it says otherwise.
    pub(crate) max_instances: u32,
}
