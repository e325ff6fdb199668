//! Where container figures come from: the node's cgroups ([`crate::collector::Collector`]) or a
//! Mesos agent's `/monitor/statistics` ([`crate::mesos_source::MesosSource`]). Both make the
//! same [`Snapshot`], so pushes, `/metrics`, `/snapshot` and `--once` do not care which runs.

use async_trait::async_trait;

use crate::collector::{Collector, Snapshot};

/// A source of one [`Snapshot`] per pass.
#[async_trait]
pub(crate) trait Source: Send + std::fmt::Debug {
    /// One pass at `now` (epoch seconds): node metrics and every container's cumulative CPU.
    async fn collect(&mut self, now: f64) -> Snapshot;
    /// The node's online CPUs.
    fn cpu_count(&self) -> u32;
    /// Counter resets seen since start.
    fn resets_total(&self) -> u64;
    /// Why the last pass could read no container at all (e.g. the agent is unreachable), if so.
    fn unavailable(&self) -> Option<String> {
        None
    }
}

#[async_trait]
impl Source for Collector {
    async fn collect(&mut self, now: f64) -> Snapshot {
        Collector::collect(self, now).await
    }
    fn cpu_count(&self) -> u32 {
        Collector::cpu_count(self)
    }
    fn resets_total(&self) -> u64 {
        Collector::resets_total(self)
    }
}
