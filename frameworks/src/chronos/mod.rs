//! Chronos (2.x `/scheduler/*`, 3.x `/v1/scheduler/*`) client, its tolerant job model and the
//! ISO 8601 schedule type.
//!
//! - [`client`]: [`ChronosClient`] — list, exact-name find, add/replace (iso8601 and dependency),
//!   start now, delete, kill tasks; API generation configured or detected.
//! - [`detecting`]: [`DetectingChronos`] — the generation found by the first request.
//! - [`model`]: [`ChronosJob`] (the whole job object, unknown fields kept).
//! - [`schedule`]: [`Schedule`], the pure `R[n]/[start]/period` type.

pub mod client;
pub mod detecting;
pub mod model;
pub mod schedule;

pub use client::{ChronosApiVersion, ChronosClient};
pub use detecting::DetectingChronos;
pub use model::{ChronosJob, SERVER_COUNTERS, validate_job_name};
pub use schedule::{RunTimes, Schedule, ScheduleError, ScheduleErrorKind};
