//! Clients for the systems the supervisor talks to: Marathon (`/v2/apps`, deployments), Chronos
//! (2.x `/scheduler/*` and 3.x `/v1/scheduler/*`), the Mesos agent (`/monitor/statistics`) and the
//! supervisor's own REST API (one typed client shared by the launcher, shell-trap and the
//! collector).
//!
//! Readers are tolerant: unknown fields are kept so a GET → modify → PUT round trip loses nothing.
//! Each client sits behind a trait so the supervisor can be tested with fakes from `testkit`.
//!
//! This crate is filled in by the framework-clients work; until then it only fixes its place in the
//! dependency graph (`frameworks` → `qos-core`).
