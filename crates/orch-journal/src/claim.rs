//! [`OpenRuns`]: the runs a journal has open for writing, each held by a [`Claim`].

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use orch_core::RunId;

use crate::JournalError;

/// The runs open for writing through one journal (its clones share them): a backend
/// claims a run when it opens it, so that a second open of the run through the same
/// journal is refused with [`JournalError::AlreadyOpen`].
#[derive(Debug, Default)]
pub struct OpenRuns(Arc<Mutex<HashSet<RunId>>>);

impl OpenRuns {
    /// Marks `run` open until the claim is dropped; refused when it already is.
    pub fn claim(&self, run: &RunId) -> Result<Claim, JournalError> {
        let mut open = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if !open.insert(run.clone()) {
            return Err(JournalError::AlreadyOpen { run: run.clone() });
        }
        Ok(Claim {
            open: Arc::clone(&self.0),
            run: run.clone(),
        })
    }
}

/// A run marked open in its journal until dropped.
#[derive(Debug)]
pub struct Claim {
    open: Arc<Mutex<HashSet<RunId>>>,
    run: RunId,
}

impl Claim {
    /// The run claimed.
    pub fn run(&self) -> &RunId {
        &self.run
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.remove(&self.run);
    }
}
