//! [`States`]: the application values an engine hands to every handler, one per type.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// Values by their type, shared by an engine, its clones and its runs.
#[derive(Clone, Default)]
pub(crate) struct States {
    values: HashMap<TypeId, (&'static str, Arc<dyn Any + Send + Sync>)>,
}

impl States {
    /// Keeps `value`, replacing an earlier value of the same type.
    pub(crate) fn insert<S: Any + Send + Sync>(&mut self, value: S) {
        self.values.insert(
            TypeId::of::<S>(),
            (std::any::type_name::<S>(), Arc::new(value)),
        );
    }

    pub(crate) fn get<S: Any + Send + Sync>(&self) -> Option<&S> {
        self.values
            .get(&TypeId::of::<S>())
            .and_then(|(_, value)| value.downcast_ref::<S>())
    }
}

impl fmt::Debug for States {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&str> = self.values.values().map(|(name, _)| *name).collect();
        names.sort_unstable();
        f.debug_set().entries(names).finish()
    }
}
