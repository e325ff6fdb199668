//! Marathon (1.4–1.10) `/v2` client and its tolerant JSON model.
//!
//! - [`client`]: [`MarathonClient`] — apps (create, get, list, full and partial update, delete,
//!   restart), tasks, deployments, info.
//! - [`model`]: [`MarathonApp`] (the whole app object, unknown fields kept), [`AppId`], tasks,
//!   deployments and call results.

pub mod client;
pub mod model;

pub use client::{DEPLOYMENT_HEADER, MarathonClient, UpdateOptions};
pub use model::{
    APP_MINIMUMS, AppChange, AppId, CMD_MIN_UTF16_UNITS, CreatedApp, Deployment, DeploymentAction,
    DeploymentResult, MarathonApp, MarathonInfo, MarathonTask, READ_ONLY_APP_KEYS, cmd_too_short,
    cpus_value, undefined_env_secrets, valid_segment,
};
