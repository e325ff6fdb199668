//! Clients for the systems the supervisor talks to: Marathon (`/v2/apps`, deployments), Chronos
//! (2.x `/scheduler/*` and 3.x `/v1/scheduler/*`) and the Mesos agent (`/monitor/statistics`) —
//! plus the one typed client for the supervisor's own API, shared by the launcher, shell-trap and
//! the node collector.
//!
//! Readers are tolerant: unknown fields are kept, not rejected, so a GET → modify `cpus` → PUT
//! round trip loses nothing, and numbers that arrive as strings (`"cpus": "1"` in the thesis Chronos
//! jobs) are read as numbers. Read-only fields are stripped before a Marathon update exactly as the
//! server requires. Errors are typed ([`FrameworkError`]), every request has a timeout, and only
//! safe requests are retried (see [`http`]). Each client sits behind a trait ([`traits`]) so the
//! supervisor can be tested with fakes.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use frameworks::{ChronosApiVersion, ChronosClient, Credentials, MarathonApi, MarathonClient};
//!
//! let marathon = MarathonClient::new(&Credentials::load("marathon.json")?)?;
//! let app = marathon.get_app("/openmplinpack1").await?;
//! println!("{} has {:?} cpus", app.id().unwrap_or("?"), app.cpus());
//! marathon.set_app_cpus("/openmplinpack1", 1.4, false).await?;
//!
//! let chronos = ChronosClient::new(&Credentials::load("chronos.json")?, ChronosApiVersion::V2)?;
//! if let Some(job) = chronos.find_job("openmpLinpack1").await? {
//!     println!("{:?} runs left", job.schedule()?.and_then(|s| s.repetitions()));
//! }
//! # Ok(()) }
//! ```
//!
//! # https
//! The clients speak plain `http` by default — Marathon, Chronos, the Mesos agents and the
//! supervisor are reached over a cluster's own network — which keeps TLS (rustls and its C
//! crypto library, aws-lc, a build of minutes) out of every binary. The `tls` feature turns https
//! on for any binary that links this crate: `cargo build --release -p launcher --features
//! frameworks/tls` (likewise `-p supervisor`, `-p cgroup-collector`, `-p shell-trap`). Without
//! it, a client for an `https://` URL is refused when it is built, with an error naming the
//! `url` and the feature.
//!
//! # Layout
//! - [`credentials`]: [`Credentials`] and [`Auth`] — the thesis credential file
//!   `{"url", "user", "password"}` (plus an optional DC/OS `token`).
//! - [`error`]: [`FrameworkError`], one typed error for every client, and the parser for the
//!   error bodies of Marathon (`{"message", "details"}`), Chronos (`{"status", "message"}`) and
//!   plain-text answers.
//! - [`http`]: [`ClientConfig`] and [`RetryPolicy`]; the shared request path (timeouts,
//!   authentication, retry with exponential backoff and jitter for safe requests only, status →
//!   error mapping).
//! - [`lenient`]: readers for values that may be numbers or numeric strings.
//! - [`marathon`]: [`MarathonClient`], [`MarathonApp`] (whole-object model), [`AppId`], tasks,
//!   deployments.
//! - [`chronos`]: [`ChronosClient`] (both API generations), [`ChronosJob`] (whole-object model) and
//!   [`Schedule`], the pure ISO 8601 `R[n]/[start]/period` type.
//! - [`mesos`]: [`MesosAgentClient`] and the `/monitor/statistics` model.
//! - [`supervisor`]: [`SupervisorClient`] for the supervisor's thesis routes and `/api/v1`, over
//!   the wire types of `qos_core::wire`.
//! - [`traits`]: the object-safe traits [`MarathonApi`], [`ChronosApi`], [`MesosAgentApi`] at the
//!   boundary with the supervisor and launcher.

pub mod chronos;
pub mod credentials;
pub mod error;
pub mod http;
pub mod lenient;
pub mod marathon;
pub mod mesos;
pub mod supervisor;
pub mod traits;

pub use chronos::{
    ChronosApiVersion, ChronosClient, ChronosJob, DetectingChronos, Schedule, ScheduleError,
};
pub use credentials::{Auth, Credentials, CredentialsError};
pub use error::{ErrorDetail, FrameworkError};
pub use http::{ClientConfig, RetryPolicy};
pub use marathon::{
    AppChange, AppId, CreatedApp, Deployment, DeploymentResult, MarathonApp, MarathonClient,
    MarathonInfo, MarathonTask, UpdateOptions,
};
pub use mesos::{ExecutorStatistics, MesosAgentClient, ResourceStatistics};
/// The URL type used throughout (re-exported from `reqwest`).
pub use reqwest::Url;
pub use supervisor::SupervisorClient;
pub use traits::{ChronosApi, MarathonApi, MesosAgentApi};
