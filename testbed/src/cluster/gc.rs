//! Sandboxes of ended tasks are removed `sandbox_gc_delay_secs` after their task ended, as a
//! Mesos agent removes them after `--gc_delay`: otherwise every task that ever ran keeps a
//! directory (and its `stdout`/`stderr`) until the testbed stops. Time is a parameter.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Duration;

use tokio::time::Instant;

/// One ended task's sandbox, and when it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ended {
    pub(crate) task_id: String,
    pub(crate) sandbox: PathBuf,
    at: Instant,
}

/// The sandboxes of ended tasks, oldest first, until they are due for removal.
#[derive(Debug, Default)]
pub(crate) struct SandboxGc {
    delay: Duration,
    ended: VecDeque<Ended>,
}

impl SandboxGc {
    pub(crate) fn new(delay: Duration) -> Self {
        Self {
            delay,
            ended: VecDeque::new(),
        }
    }

    /// Task `task_id` ended at `now`; its sandbox is due `delay` later.
    pub(crate) fn ended(&mut self, task_id: &str, sandbox: PathBuf, now: Instant) {
        self.ended.push_back(Ended {
            task_id: task_id.to_owned(),
            sandbox,
            at: now,
        });
    }

    /// The sandboxes due by `now`, oldest first; they leave the list.
    pub(crate) fn due(&mut self, now: Instant) -> Vec<Ended> {
        let mut out = Vec::new();
        while let Some(e) = self.ended.front() {
            if now.saturating_duration_since(e.at) < self.delay {
                break;
            }
            out.extend(self.ended.pop_front());
        }
        out
    }

    /// How many wait.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.ended.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandboxes_leave_after_the_delay_oldest_first_and_are_bounded_by_the_rate() {
        let t0 = Instant::now();
        let mut gc = SandboxGc::new(Duration::from_secs(60));
        // A task ends every 100 ms for ten minutes: at most the last minute's wait.
        let mut removed = 0;
        let mut most = 0;
        for i in 0..6000u64 {
            let now = t0 + Duration::from_millis(100 * i);
            gc.ended(&format!("t{i}"), PathBuf::from(format!("/s/t{i}")), now);
            let due = gc.due(now);
            if let Some(first) = due.first() {
                assert_eq!(first.task_id, format!("t{removed}"), "oldest first");
            }
            removed += due.len();
            most = most.max(gc.len());
        }
        assert_eq!(most, 600, "one minute of tasks");
        assert_eq!(removed, 6000 - 600);
        // Nothing is due before its delay, everything after it.
        let end = t0 + Duration::from_millis(100 * 5999);
        assert!(gc.due(end + Duration::from_millis(100)).len() == 1);
        assert_eq!(gc.due(end + Duration::from_secs(60)).len(), 599);
        assert_eq!(gc.len(), 0);
    }

    #[test]
    fn a_zero_delay_removes_at_once() {
        let now = Instant::now();
        let mut gc = SandboxGc::new(Duration::ZERO);
        gc.ended("a", PathBuf::from("/s/a"), now);
        let due = gc.due(now);
        assert_eq!(due.len(), 1);
        assert_eq!(
            (due[0].task_id.as_str(), due[0].sandbox.as_path()),
            ("a", std::path::Path::new("/s/a"))
        );
    }
}
