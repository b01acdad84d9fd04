//! Result caching: [`CacheStore`], where results are kept, its in-memory default
//! [`MemoryCache`], and [`CacheKey`], what they are kept under.
//!
//! A task asks for caching with `Task::cache(true)` (in files `cache: true`). Before its
//! first attempt the engine works out its key; if the store has a result under that key,
//! the task completes with it without running its handler, and its record says
//! `cached: true` (with no attempt of its own). Otherwise the handler runs, and a result
//! it returns as JSON is stored under the key. Failures are never stored, and neither are
//! [`Shared`](crate::Shared) values, which live in one process only, nor outputs kept
//! out of the journal with [`Output::not_journaled`](crate::Output::not_journaled) (what
//! keeps them out of a journal, their size say, keeps them out of a store too). A task
//! that reads a shared value from a dependency is not looked up in the cache either,
//! unless a key function decides its key (the function says what its result depends on).
//! A task whose trigger rule starts it before all of its dependencies end (`one_success`,
//! `one_failed`, `always`) is keyed on the results there at its start; its result is
//! stored only if its key is the same when it completes (no dependency it could read
//! completed meanwhile; one that was skipped, or failed without a result, leaves the key
//! as it was, but a map task that failed has the part of its list it made).
//!
//! A result returned once the run was cancelled is not stored either: a handler that
//! stops early on [`TaskContext::cancellation`] may return what it had so far. Nor is a
//! map task's list when a handler skipped one of its instances: a skipped task runs
//! again in the next run, and so does the map with that element, where a stored list
//! would give `null` for it from then on.
//!
//! The key is a stable 128-bit hash of the task's type, its configuration and its
//! dependencies' ids and results (in the order of its dependencies), each result written
//! as canonical JSON (object keys sorted, no spaces). It does not cover the handler's code
//! (see [`CacheStore`]), nor the task's id or name: two cached tasks of one type with the
//! same configuration and inputs share one result. A key function registered for a task
//! type with [`EngineBuilder::cache_key`](crate::EngineBuilder::cache_key) replaces the
//! configuration and results with a value of its own. The hash is the same in every
//! process (a version of orch that changes what the key covers makes an older store's
//! results missed, not served), so a store may outlive its process: with the `journal`
//! feature, a `ResultFile` beside a journal is such a store. The hash is not
//! cryptographic: do not share a store with parties who could craft colliding inputs.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use crate::TaskContext;
use crate::output::Stored;

mod memory;
pub use memory::MemoryCache;

/// The key a result is cached under: a stable 128-bit hash (see the module docs).
/// Displayed as 32 hexadecimal digits (width and fill apply to them as a whole).
///
/// ```
/// use orch_engine::CacheKey;
///
/// let key = CacheKey(0xabc);
/// assert_eq!(key.to_string(), format!("{}abc", "0".repeat(29)));
/// assert_eq!(format!("[{key:.4}]"), "[0000]");
/// assert_eq!(format!("{key:>34}").len(), 34);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey(pub u128);

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&format!("{:032x}", self.0))
    }
}

/// Where cached results are kept. The engine calls it from the task that runs the
/// workflow, so both calls should return quickly (an in-memory map, a local file index).
///
/// A result is kept under a key made from the task's type, configuration and map, and
/// its direct dependencies' ids and results (or from the value of the type's key
/// function, [`EngineBuilder::cache_key`](crate::EngineBuilder::cache_key)). The key does
/// not cover the handler's code: when a new version of a handler returns something else,
/// change the tasks' configuration, give a version in the key function, or use a new
/// store.
/// A call that panics is taken as a store without the result (`get`), or one that did
/// not keep it (`put`), with a warning logged: the task runs, and the run goes on.
///
/// ```
/// use orch_engine::{CacheKey, CacheStore, MemoryCache};
/// use serde_json::json;
///
/// let store = MemoryCache::default();
/// store.put(CacheKey(7), json!([1, 2]));
/// assert_eq!(store.get(&CacheKey(7)), Some(json!([1, 2])));
/// assert_eq!(store.get(&CacheKey(8)), None);
/// ```
pub trait CacheStore: Send + Sync + 'static {
    /// The result stored under `key`, if any.
    fn get(&self, key: &CacheKey) -> Option<serde_json::Value>;
    /// Stores `result` under `key`, replacing what was there.
    fn put(&self, key: CacheKey, result: serde_json::Value);
}

/// With the `journal` feature: a results file beside a [`FileJournal`](crate::FileJournal)
/// (`ResultFile::beside(&journal)?`) is a store that outlives the process, so that a
/// restarted process reuses the results earlier ones stored. A result that cannot be
/// written to the file is not stored (a warning is logged) and the run goes on. Storing
/// one appends a line on the run's own task, and now and then rewrites the file with the
/// results it keeps (see `ResultFile`), waiting up to 5 s for another process's rewrite:
/// the run's other tasks wait meanwhile.
///
/// ```
/// use std::sync::Arc;
/// use orch_engine::{FileJournal, ResultFile, WorkflowEngine};
///
/// let dir = tempfile::tempdir()?;
/// let journal = FileJournal::new(dir.path())?;
/// let engine = WorkflowEngine::builder()
///     .cache_store(Arc::new(ResultFile::beside(&journal)?))
///     .build()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(feature = "journal")]
impl CacheStore for orch_journal::ResultFile {
    fn get(&self, key: &CacheKey) -> Option<Value> {
        orch_journal::ResultFile::get(self, key.0)
    }

    fn put(&self, key: CacheKey, result: Value) {
        if let Err(error) = orch_journal::ResultFile::put(self, key.0, result) {
            tracing::warn!(%key, %error, "a cached result could not be stored");
        }
    }
}

impl crate::EngineBuilder {
    /// Sets where cached results are kept (see [`CacheStore`]); the default is a
    /// [`MemoryCache`] of the engine's own (each engine built has its own, also engines
    /// built from clones of one builder). Tasks ask for caching with `Task::cache(true)`.
    pub fn cache_store(mut self, store: Arc<dyn CacheStore>) -> Self {
        self.cache.store = Some(store);
        self
    }

    /// Sets the key function of cached tasks of type `task_type`: the value it returns
    /// for a task (with its type) identifies the task's result, in place of its
    /// configuration and its direct dependencies' results (set one for a handler that
    /// reads an ancestor further up, which the default key leaves out). A panic in it
    /// fails the task; for a task started before all of its dependencies ended, whose
    /// key is worked out again as it completes, a panic then leaves its result unstored
    /// (with a warning).
    pub fn cache_key<F>(mut self, task_type: impl Into<String>, key: F) -> Self
    where
        F: Fn(&crate::TaskContext) -> serde_json::Value + Send + Sync + 'static,
    {
        self.cache.keys.insert(task_type.into(), Arc::new(key));
        self
    }
}

/// A user's key function for one task type: what identifies a task's result.
pub(crate) type KeyFn = Arc<dyn Fn(&TaskContext) -> Value + Send + Sync>;

/// What a builder was told of caching: the store, if one was set, and the key functions
/// by task type.
#[derive(Clone, Default)]
pub(crate) struct CacheChoice {
    pub(crate) store: Option<Arc<dyn CacheStore>>,
    pub(crate) keys: HashMap<String, KeyFn>,
}

impl CacheChoice {
    /// The caching of an engine built now: without a store set, a [`MemoryCache`] of its
    /// own, not one shared with engines built from clones of the same builder.
    pub(crate) fn settings(self) -> CacheSettings {
        CacheSettings {
            store: self
                .store
                .unwrap_or_else(|| Arc::new(MemoryCache::default())),
            keys: self.keys,
        }
    }
}

impl fmt::Debug for CacheChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut types: Vec<&String> = self.keys.keys().collect();
        types.sort();
        f.debug_struct("CacheChoice")
            .field("key_functions", &types)
            .finish_non_exhaustive()
    }
}

/// The caching a run does: its store and the key functions by task type.
#[derive(Clone)]
pub(crate) struct CacheSettings {
    pub(crate) store: Arc<dyn CacheStore>,
    pub(crate) keys: HashMap<String, KeyFn>,
}

/// The key of the task `ctx` runs: from its key function's value if its type has one,
/// else from its configuration and inputs. `None` if an input is a shared value.
/// `max_instances` is the engine's limit on a map's instances, for a map that sets none.
pub(crate) fn key_of(
    ctx: &TaskContext,
    keys: &HashMap<String, KeyFn>,
    max_instances: u32,
) -> Option<CacheKey> {
    let task = ctx.task_definition();
    let mut hasher = Fnv128::new();
    hasher.write_str(&task.task_type);
    // A map task's result is its instances' list: it never stands for a plain task's,
    // whatever identifies it; nor for a map with another instance limit (a lower one
    // would fail the map where the cached list passed it).
    if let Some(map) = &task.map {
        hasher.write(b"\x02");
        hasher.write_str(map.over.as_str());
        let limit = map.max_instances.unwrap_or(max_instances);
        hasher.write(&limit.to_le_bytes());
    }
    if let Some(key) = keys.get(&task.task_type) {
        hasher.write(b"\x01");
        canonical(&key(ctx), &mut hasher);
        return Some(hasher.finish());
    }
    hasher.write(b"\x00");
    canonical(&task.config, &mut hasher);
    for id in &task.dependencies {
        let output = ctx.dependency_output(id);
        if let Some(Stored::Shared(_)) = output {
            return None;
        }
        hasher.write(b"\x00");
        hasher.write_str(id.as_str());
        match output {
            Some(stored) => canonical(stored.json(), &mut hasher),
            None => hasher.write(b"-"),
        }
    }
    Some(hasher.finish())
}

/// 128-bit FNV-1a: simple, and the same everywhere.
struct Fnv128(u128);

impl Fnv128 {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;

    fn new() -> Self {
        Self(Self::OFFSET)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u128::from(b);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }

    /// A string with its length first, so that two strings never run into each other.
    fn write_str(&mut self, text: &str) {
        self.write(&(text.len() as u64).to_le_bytes());
        self.write(text.as_bytes());
    }

    fn finish(&self) -> CacheKey {
        CacheKey(self.0)
    }
}

/// Feeds `value` to `hasher` as canonical JSON: object keys sorted, no spaces.
fn canonical(value: &Value, hasher: &mut Fnv128) {
    match value {
        Value::Null => hasher.write(b"null"),
        Value::Bool(b) => hasher.write(if *b { b"true" } else { b"false" }),
        Value::Number(n) => hasher.write(n.to_string().as_bytes()),
        Value::String(s) => string(s, hasher),
        Value::Array(items) => {
            hasher.write(b"[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    hasher.write(b",");
                }
                canonical(item, hasher);
            }
            hasher.write(b"]");
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            hasher.write(b"{");
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    hasher.write(b",");
                }
                string(key, hasher);
                hasher.write(b":");
                canonical(item, hasher);
            }
            hasher.write(b"}");
        }
    }
}

fn string(text: &str, hasher: &mut Fnv128) {
    match serde_json::to_string(text) {
        Ok(quoted) => hasher.write(quoted.as_bytes()),
        Err(_) => hasher.write_str(text),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Map, Value, json};

    use super::{Fnv128, canonical};

    fn hash(value: &Value) -> u128 {
        let mut hasher = Fnv128::new();
        canonical(value, &mut hasher);
        hasher.0
    }

    #[test]
    fn the_hash_is_fixed_across_versions() {
        // FNV-1a of the empty input is its offset basis; a known value pins the rest.
        assert_eq!(Fnv128::new().0, Fnv128::OFFSET);
        let mut hasher = Fnv128::new();
        hasher.write(b"a");
        assert_eq!(hasher.0, 0xd228_cb69_6f1a_8caf_7891_2b70_4e4a_8964);
    }

    proptest! {
        /// Key order in objects does not change the hash; a different value does.
        #[test]
        fn objects_hash_the_same_whatever_their_key_order(
            pairs in proptest::collection::btree_map("[a-z]{1,4}", 0i64..100, 1..8),
        ) {
            let forward: Map<String, Value> = pairs.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
            let backward: Map<String, Value> = pairs.iter().rev().map(|(k, v)| (k.clone(), json!(v))).collect();
            prop_assert_eq!(hash(&Value::Object(forward.clone())), hash(&Value::Object(backward)));
            let mut changed = forward;
            let first = changed.keys().next().cloned().unwrap_or_default();
            changed.insert(first, json!("other"));
            prop_assert_ne!(hash(&Value::Object(changed)), hash(&json!(pairs)));
        }
    }
}
