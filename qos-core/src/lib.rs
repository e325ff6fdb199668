//! Pure QoS logic for qos-elastic: no I/O, no clock, no threads — `now` is always a parameter
//! (seconds since the Unix epoch, or any fixed origin in the simulator).
//!
//! # Layout
//! - [`spec`]: the `qos` block (`duration`, `deadline`, `desv_deadline`) — parsing, validation.
//! - [`cpu`]: allocations in exact millicores (no float drift when stepping).
//! - [`job`]: job models (iterative/Chronos, continuous/Marathon), observations, idempotency.
//! - [`decision`]: decisions as values — class, action, reason, figures.
//! - [`thesis`]: the 2017 thesis controller, exact, as the baseline (Eq. 1–3, bands, ±0.4 steps).
//! - [`predictive`]: the default controller — needed CPU from measured progress and a learned
//!   speed-up model ([`speedup`]), margin, hysteresis, cooldown, restart cost, `AT_RISK`.
//! - [`policy`]: one enum over the policies (thesis, predictive, static) and the arbitration of
//!   a node's CPUs.
//! - [`control`]: the one controller — a job's decision on its node (caps, arbitration, stale
//!   data, resize mode, framework presence), the same for the supervisor and the simulator.
//! - [`wire`]: the supervisor API's wire types, shared by every component that talks to it.
//! - [`json`]: JSON read strictly — a key given twice is refused, naming its path (job files,
//!   the supervisor's bodies).
//! - [`sim`]: a deterministic discrete-event cluster simulator and the thesis scenarios, and
//!   [`sim::oracle`], the clairvoyant offline schedule a policy is measured against (the most
//!   deadlines that can be met and the fewest CPU-seconds that meet them).
//!
//! The supervisor, the simulator and the study all drive jobs through the same
//! [`job::Job::observe`] → [`control::Controller::decide`] loop, so what the simulator shows is
//! what the service does.

pub mod control;
pub mod cpu;
pub mod decision;
#[cfg(test)]
mod fixtures;
pub mod job;
pub mod json;
pub mod policy;
pub mod predictive;
pub mod sim;
pub mod spec;
pub mod speedup;
pub mod thesis;
pub mod wire;

pub use control::{Context, Controller, NodeView, Verdict};
pub use cpu::Cpus;
pub use decision::{Action, Class, Decision, Figures};
pub use job::{Checkpointing, Framework, IterationReport, Job, Observation, Phase, Work};
pub use policy::Policy;
pub use spec::{Deadline, QosSpec, ResolvedQos, SpecError};
