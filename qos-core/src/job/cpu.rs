//! CPU time of a continuous job's containers: cumulative per container, banked across
//! restarts, split into the incarnation that counts and the work lost.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Cumulative CPU time of a job across containers, robust to restarts and re-sent samples, split
/// into the CPU-seconds that still count as progress and those of incarnations whose work was
/// lost.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuAccount {
    /// Per container (`source`): CPU-seconds banked from earlier counter resets plus the last
    /// cumulative value seen, and the incarnation the container belongs to.
    sources: BTreeMap<String, SourceCounter>,
    /// Time of the newest sample, epoch seconds.
    last_sample_at: Option<f64>,
    /// The incarnation new containers belong to (0 before the first start is known).
    #[serde(default)]
    incarnation: u32,
    /// Containers of incarnations before this one did work that was lost.
    #[serde(default)]
    useful_from: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct SourceCounter {
    banked: f64,
    last: f64,
    #[serde(default)]
    incarnation: u32,
    /// When the container was first sampled.
    #[serde(default)]
    first_at: f64,
}

impl SourceCounter {
    fn total(&self) -> f64 {
        self.banked + self.last
    }
}

/// A container first sampled this long before its incarnation's start report belongs to that
/// incarnation: the collector may sample a new container a moment before the task's own report
/// of its start arrives.
pub(super) const START_SKEW: f64 = 2.0;

impl CpuAccount {
    /// Records a cumulative CPU-seconds reading of one container. A value lower than the
    /// previous one of the same source means the counter was reset (container recreated): the
    /// previous value is banked. Returns the CPU-seconds this sample added.
    pub fn record(&mut self, source: &str, cumulative_secs: f64, at: f64) -> f64 {
        let incarnation = self.incarnation;
        let c = self
            .sources
            .entry(source.to_owned())
            .or_insert_with(|| SourceCounter {
                incarnation,
                first_at: at,
                ..SourceCounter::default()
            });
        let added = if cumulative_secs + 1e-9 < c.last {
            c.banked += c.last;
            cumulative_secs
        } else {
            cumulative_secs - c.last
        };
        c.last = cumulative_secs;
        self.last_sample_at = Some(self.last_sample_at.map_or(at, |t| t.max(at)));
        added
    }

    /// Whether `source` has been sampled before.
    pub fn knows(&self, source: &str) -> bool {
        self.sources.contains_key(source)
    }

    /// How many containers have been sampled.
    pub fn containers(&self) -> usize {
        self.sources.len()
    }

    /// A new incarnation of the task started at `at`; `keeps_work` says whether it resumed the
    /// work of the earlier ones (restored a checkpoint). Containers first sampled from just
    /// before `at` on belong to it.
    pub fn begin_incarnation(&mut self, at: f64, keeps_work: bool) {
        let previous = self.incarnation;
        self.incarnation += 1;
        for c in self.sources.values_mut() {
            if c.incarnation == previous && c.first_at >= at - START_SKEW {
                c.incarnation = self.incarnation;
            }
        }
        if !keeps_work {
            self.useful_from = self.incarnation;
        }
    }

    /// Total CPU-seconds consumed so far by all containers of the job.
    pub fn total(&self) -> f64 {
        // `+ 0.0`: an empty sum is −0.0, which reads badly in a job's view.
        self.sources.values().map(SourceCounter::total).sum::<f64>() + 0.0
    }

    /// CPU-seconds that still count as progress (those of incarnations whose work was kept).
    pub fn useful(&self) -> f64 {
        self.sources
            .values()
            .filter(|c| c.incarnation >= self.useful_from)
            .map(SourceCounter::total)
            .sum::<f64>()
            + 0.0
    }

    /// CPU-seconds of incarnations whose work was lost by a restart from scratch.
    pub fn lost(&self) -> f64 {
        self.sources
            .values()
            .filter(|c| c.incarnation < self.useful_from)
            .map(SourceCounter::total)
            .sum::<f64>()
            + 0.0
    }

    /// Time of the newest sample.
    pub fn last_sample_at(&self) -> Option<f64> {
        self.last_sample_at
    }
}
