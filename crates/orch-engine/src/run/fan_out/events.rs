//! The events of a map task's instances: each names the map task, with the instance's
//! item (and its output or error, as a task's event would).

use orch_core::EngineEventKind;

use crate::note::Detail;
use crate::run::Scheduler;

impl Scheduler<'_> {
    /// Announces an event of instance `k`, from its record.
    pub(in crate::run) fn announce_instance(&mut self, kind: EngineEventKind, k: usize) {
        self.announce_instance_with(kind, k, None);
    }

    /// [`Self::announce_instance`], with the pause before its next attempt for a retry.
    pub(super) fn announce_instance_with(
        &mut self,
        kind: EngineEventKind,
        k: usize,
        pause: Option<std::time::Duration>,
    ) {
        let wants_outputs = match &self.announcer {
            Some(announcer) => announcer.wants_outputs(),
            None => return,
        };
        let map = self.extras().instances[k].map as usize;
        let base = self.attempt_base(map);
        let instance = &self.extras().instances[k];
        let record = &instance.record;
        let item = instance.item.index as u32;
        // Its attempt's number (none for an instance that never started); a restored
        // one's record counts the attempts of the run that ended it: that count.
        let attempt = match record.attempts {
            0 => 0,
            made if kind == EngineEventKind::TaskRestored => made,
            made => base + made,
        };
        let duration = record.duration();
        let detail = match (kind, &record.error, &record.result) {
            (EngineEventKind::TaskStarted, _, _) => None,
            (_, Some(error), _) => Some(Detail::Error(error.clone())),
            (_, None, Some(result)) if wants_outputs => Some(Detail::Output(result.clone())),
            _ => None,
        };
        self.announce_task(kind, map, |note| {
            note.attempt = attempt;
            note.duration = match kind {
                EngineEventKind::TaskStarted => None,
                EngineEventKind::TaskRetrying => pause,
                _ => duration,
            };
            note.detail = Some(Box::new(Detail::Instance {
                item,
                detail: detail.map(Box::new),
            }));
        });
    }
}
