//! What is kept of a job once its lists leave memory: the few figures the views and `/metrics`
//! still show (stored beside the job's row; the history itself stays in the database).

use qos_core::job::IterationReport;
use qos_core::{Job, Work};
use serde::{Deserialize, Serialize};

/// What the views and metrics show of a job whose lists are not in memory (finished and
/// cleaned up: its history stays in the database, read when asked for).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Summary {
    pub(crate) progress: f64,
    pub(crate) remaining_iterations: u32,
    pub(crate) resizes: usize,
    pub(crate) last_iteration_secs: Option<f64>,
    pub(crate) restart_cost_secs: Option<f64>,
}

impl Summary {
    pub(crate) fn of(job: &Job) -> Self {
        let restart_cost_secs = match &job.work {
            Work::Continuous(w) if !w.restart_costs.is_empty() => {
                Some(w.restart_costs.iter().sum::<f64>() / w.restart_costs.len() as f64)
            }
            _ => None,
        };
        let last_iteration_secs = match &job.work {
            Work::Iterative(w) => w.reports.last().map(IterationReport::duration),
            Work::Continuous(w) => w.started_at.zip(w.ended_at).map(|(s, e)| e - s),
        };
        Self {
            progress: job.progress(),
            remaining_iterations: job.remaining_iterations(),
            resizes: job.resizes.len(),
            last_iteration_secs,
            restart_cost_secs,
        }
    }
}
