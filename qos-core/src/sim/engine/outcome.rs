//! A run's outcome: per job and in total, with the clairvoyant oracle's figures beside them.

use super::*;

impl Sim {
    pub(super) fn result(&self, scenario: &Scenario) -> SimResult {
        let (_, cpu_max) = self.ctl.policy.bounds();
        // The clairvoyant schedule of the same scenario (Quota sharing: what it assumes); with
        // the policy's own allocation bounds and grid.
        let best = (self.cfg.oracle && scenario.cluster.sharing == Sharing::Quota)
            .then(|| {
                let (cpu_min, cpu_max) = self.ctl.policy.bounds();
                let granularity = match self.ctl.policy {
                    Policy::Predictive(c) | Policy::Static(c) => c.granularity,
                    Policy::Thesis(_) => Cpus::from_milli(100),
                };
                let bounds = oracle::OracleBounds {
                    cpu_min,
                    cpu_max,
                    granularity,
                };
                oracle::oracle(&self.nodes, &oracle::oracle_jobs(scenario), &bounds).ok()
            })
            .flatten();
        let jobs: Vec<JobResult> = self
            .jobs
            .iter()
            .enumerate()
            .map(|(k, j)| {
                let deadline = j.job.qos.deadline_at;
                let finished_at = j.finished_at;
                JobResult {
                    name: j.spec.name.clone(),
                    framework: j.spec.framework(),
                    submitted_at: j.spec.submit_at,
                    deadline,
                    finished_at,
                    met: finished_at.is_some_and(|f| f <= deadline)
                        && !matches!(j.job.phase, Phase::Failed { .. }),
                    feasible: j.spec.finish_alone(cpu_max) <= deadline,
                    usage: Usage {
                        resizes: j.job.resizes.len() as u32,
                        ..j.usage
                    },
                    cpu_seconds_lost_by_shrinks: j.lost_by_shrinks,
                    final_cpus: j.job.cpus,
                    kind: j.spec.kind.clone(),
                    waited: j.waited,
                    oracle_cpu_seconds: best
                        .as_ref()
                        .and_then(|o| o.per_job.get(k))
                        .filter(|p| p.met)
                        .map(|p| p.cpu_seconds),
                }
            })
            .collect();
        let mut totals = Totals::default();
        for r in &jobs {
            totals.add(&Totals::from(r));
        }
        if let Some(o) = &best {
            totals.oracle_met = Some(o.met);
            totals.oracle_cpu_seconds = Some(o.cpu_seconds);
            totals.oracle_exact = Some(o.exact);
        }
        SimResult {
            scenario: scenario.name.clone(),
            policy: self.ctl.policy.name().into(),
            seed: scenario.seed,
            sharing: self.sharing,
            jobs,
            totals,
            trace: self.trace.clone(),
        }
    }
}
