//! The supervisor: a REST service (thesis routes plus `/api/v1`) and a reconcile loop around
//! `qos-core` that classifies each job UNDER / ON_PLAN / OVER_PERFORMANT and resizes it through
//! its framework or in place. State in SQLite, Prometheus `/metrics`, a built-in dashboard.
//!
//! This crate is filled in by the supervisor work; the decisions it applies are computed by
//! `qos_core::policy` already.
