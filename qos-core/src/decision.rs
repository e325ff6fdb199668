//! Decisions are values: what a policy wants done to a job, why, and the figures behind it.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::cpu::Cpus;
use crate::job::{Job, Phase};

/// How a job stands against its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Class {
    /// Behind plan: predicted late (grow).
    #[serde(rename = "UNDER_PERFORMANT")]
    Under,
    /// Within the tolerated band.
    #[serde(rename = "ON_PLAN")]
    OnPlan,
    /// Ahead of plan by more than the tolerance (shrink).
    #[serde(rename = "OVER_PERFORMANT")]
    Over,
    /// Cannot meet its deadline even at the largest allowed allocation.
    #[serde(rename = "AT_RISK")]
    AtRisk,
    /// Not enough fresh measurements to judge; nothing is changed.
    #[serde(rename = "NO_DATA")]
    NoData,
}

impl Class {
    /// Every class, in display order.
    pub const ALL: [Self; 5] = [
        Self::Under,
        Self::OnPlan,
        Self::Over,
        Self::AtRisk,
        Self::NoData,
    ];

    /// The wire and display name (`UNDER_PERFORMANT`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Under => "UNDER_PERFORMANT",
            Self::OnPlan => "ON_PLAN",
            Self::Over => "OVER_PERFORMANT",
            Self::AtRisk => "AT_RISK",
            Self::NoData => "NO_DATA",
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Keep the current allocation.
    Hold,
    /// Change the allocation.
    Resize {
        /// The new allocation.
        cpus: Cpus,
    },
    /// The job is done; stop supervising it (and delete it from its framework).
    Complete {
        /// Whether it finished by its deadline.
        met: bool,
    },
}

/// The numbers a decision was made from; exported as metrics and shown in the UI.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Figures {
    /// Predicted finish time at the current allocation (epoch seconds).
    pub prediction: Option<f64>,
    /// Upper band: predicted finish above it is UNDER.
    pub band_sup: Option<f64>,
    /// Lower band: predicted finish below it is OVER.
    pub band_inf: Option<f64>,
    /// Continuous jobs: CPU-seconds consumed.
    pub cpu_consumed: Option<f64>,
    /// Continuous jobs: CPU-seconds that should have been consumed by now (Eq. 2).
    pub cpu_desired: Option<f64>,
    /// Continuous jobs: consumed / desired (Eq. 3).
    pub ratio: Option<f64>,
    /// Fraction of the work done.
    pub progress: Option<f64>,
    /// The smallest allocation predicted to meet the deadline (predictive policy).
    pub needed: Option<Cpus>,
}

/// A policy's verdict on one job at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// Where the job stands.
    pub class: Class,
    /// What to do about it.
    pub action: Action,
    /// One human-readable sentence with the inputs that led here (logged, stored, shown).
    pub reason: String,
    /// The figures behind it.
    pub figures: Figures,
}

impl Decision {
    /// A decision to keep things as they are.
    pub fn hold(class: Class, reason: impl Into<String>, figures: Figures) -> Self {
        Self {
            class,
            action: Action::Hold,
            reason: reason.into(),
            figures,
        }
    }

    /// A decision to change the allocation to `cpus`.
    pub fn resize(class: Class, cpus: Cpus, reason: impl Into<String>, figures: Figures) -> Self {
        Self {
            class,
            action: Action::Resize { cpus },
            reason: reason.into(),
            figures,
        }
    }

    /// The verdict on a job whose work is all done (`None` while it is not), the same under
    /// every policy.
    pub fn completed(job: &Job) -> Option<Self> {
        let Phase::Completed { met, at } = job.phase else {
            return None;
        };
        Some(Self {
            class: Class::OnPlan,
            action: Action::Complete { met },
            reason: format!(
                "all work finished {:.0} s {} the deadline",
                (at - job.qos.deadline_at).abs(),
                if met { "before" } else { "after" }
            ),
            figures: Figures {
                progress: Some(1.0),
                ..Figures::default()
            },
        })
    }

    /// The new allocation, if this decision resizes.
    pub fn resize_to(&self) -> Option<Cpus> {
        match self.action {
            Action::Resize { cpus } => Some(cpus),
            _ => None,
        }
    }
}
