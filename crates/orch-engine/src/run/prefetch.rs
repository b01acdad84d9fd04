//! Fetching ahead what the next task to start will need, when tasks start out of plan
//! order (priorities, or the critical-path policy).
//!
//! In plan order, a run walks its per-task state front to back and the processor fetches
//! it ahead by itself. In a priority order each start and end lands somewhere else in
//! memory and would wait for it; asking for those lines one task ahead lets the wait
//! overlap the current task's work (`--bench engine_run -- pools_priorities`).

use prefetch_index::prefetch_index;

use super::Scheduler;

impl Scheduler<'_> {
    /// Task `index` is about to start: fetches its dependents' list, what the ready task
    /// ranked first after it will need, and the start-order entry of the ready rank after
    /// that one.
    #[inline]
    pub(super) fn prefetch_next(&mut self, index: usize) {
        prefetch_index(self.plan.dependents(index), 0);
        if let Some(rank) = self.ready.peek() {
            if let Some(after) = self.ready.peek_after(rank) {
                prefetch_index(self.start_order, after as usize);
            }
            let next = self.start_order[rank as usize] as usize;
            self.prefetch_task(rank, next);
        }
    }

    /// Puts task `index` among the ready tasks; out of plan order, it may well be the
    /// next to start, so what its start needs is fetched at once.
    // Forced inline: on every task's path, where the optimiser kept a call.
    #[inline(always)]
    pub(super) fn make_ready(&mut self, index: usize) {
        let rank = self.waiting[index].position;
        self.ready.insert(rank);
        if self.prefetch {
            self.prefetch_ready(rank, index);
        }
    }

    /// [`Self::prefetch_task`] out of line, so that `make_ready` stays small enough to
    /// inline in runs that start tasks in plan order.
    #[inline(never)]
    fn prefetch_ready(&self, rank: u32, index: usize) {
        self.prefetch_task(rank, index);
    }

    /// Fetches what starting and ending task `index`, of start rank `rank`, reads and
    /// writes: its rank's entry in the start order, its type and dependents in the plan,
    /// its pool, the fields of its record a run writes (a record spans up to three cache
    /// lines) and its output slot (which may straddle two: the start of the next slot lies
    /// on its last line).
    #[inline]
    pub(super) fn prefetch_task(&self, rank: u32, index: usize) {
        prefetch_index(self.start_order, rank as usize);
        self.ready.prefetch(rank, index);
        self.plan.prefetch(index);
        let record = &self.records[index];
        prefetch_index(std::slice::from_ref(&record.status), 0);
        prefetch_index(std::slice::from_ref(&record.attempts), 0);
        prefetch_index(std::slice::from_ref(&record.start_time), 0);
        prefetch_index(std::slice::from_ref(&record.end_time), 0);
        prefetch_index(std::slice::from_ref(&record.error), 0);
        prefetch_index(&self.shared.results, index);
        prefetch_index(&self.shared.results, index + 1);
    }
}
