//! What can happen to a job, what applying it did, and why it could not apply.

use serde::{Deserialize, Serialize};

use super::IterationReport;
use crate::cpu::Cpus;

/// Something that happened to a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Observation {
    /// The task started: its first incarnation, or a new one after a restart or a crash.
    Started {
        /// When.
        at: f64,
        /// Whether it resumed from a checkpoint: `Some(true)` restored, `Some(false)` started from
        /// scratch, `None` not said (a thesis-era reporter) — then a restart this supervisor
        /// requested of a job known to checkpoint is taken as restored, anything else as not.
        restored: Option<bool>,
    },
    /// An iteration finished (iterative jobs).
    Iteration(IterationReport),
    /// A cumulative CPU-time reading of one of the job's containers.
    CpuSample {
        /// When it was read.
        at: f64,
        /// Which container (id); counters are cumulative per source.
        source: String,
        /// Cumulative CPU-seconds (user + system).
        cumulative_secs: f64,
    },
    /// The application reported how far it is.
    Progress {
        /// When.
        at: f64,
        /// Fraction done, in `[0, 1]`.
        fraction: f64,
    },
    /// A new allocation is in force (or, in restart mode, was requested and the restart begins).
    Resized {
        /// When.
        at: f64,
        /// The new allocation.
        cpus: Cpus,
        /// Whether the change restarts the task (restart mode on a continuous job).
        restart: bool,
    },
    /// The task ended by itself.
    Ended {
        /// When.
        at: f64,
        /// Whether it succeeded (exit code 0).
        success: bool,
    },
    /// A user cancelled the job.
    Cancelled {
        /// When.
        at: f64,
    },
    /// The framework no longer has the job (see [`Phase::Lost`]).
    Lost {
        /// When.
        at: f64,
    },
}

/// What an observation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// The job's state changed.
    Applied,
    /// It repeated something already known (idempotent re-delivery); nothing changed.
    Duplicate,
}

/// An observation that cannot apply to this job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ObserveError {
    /// The offending field.
    pub field: &'static str,
    /// Why.
    pub reason: String,
}

pub(super) fn bad(field: &'static str, reason: impl Into<String>) -> ObserveError {
    ObserveError {
        field,
        reason: reason.into(),
    }
}
