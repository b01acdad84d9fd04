//! The process groups of the commands running now: each killed when its attempt ends,
//! and all of them when `orch worker` is told to exit at once.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// The groups of the commands running now, by their leader's pid.
static RUNNING: Mutex<Option<HashSet<i32>>> = Mutex::new(None);

fn running<T>(change: impl FnOnce(&mut HashSet<i32>) -> T) -> T {
    let mut groups = RUNNING.lock().unwrap_or_else(PoisonError::into_inner);
    change(groups.get_or_insert_with(HashSet::new))
}

/// Kills the whole process group when dropped, while the command is not reaped: whether
/// the attempt timed out (the engine drops it) or ended, nothing the command started
/// outlives it. Once the command is reaped its pid may be reused, so the guard is disarmed
/// (the group was killed just before).
pub(super) struct GroupGuard {
    pub(super) pid: Pid,
    armed: bool,
}

impl GroupGuard {
    /// The guard of the group that command `pid` leads, running now.
    pub(super) fn new(pid: Pid) -> Self {
        running(|groups| groups.insert(pid.as_raw()));
        Self { pid, armed: true }
    }

    /// Sends `signal` to the group, unless the command was reaped.
    pub(super) fn signal(&self, signal: Signal) {
        if self.armed {
            let _ = killpg(self.pid, signal);
        }
    }

    /// The command is about to be reaped: its pid may be reused from then on.
    pub(super) fn disarm(&mut self) {
        if self.armed {
            running(|groups| groups.remove(&self.pid.as_raw()));
        }
        self.armed = false;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.signal(Signal::SIGKILL);
        self.disarm();
    }
}

/// Kills the process group of every command running now, for a process about to exit
/// without waiting for its attempts to end (which would kill them): none outlives it.
pub(crate) fn kill_running_commands() {
    running(|groups| {
        for &pid in groups.iter() {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
    });
}
