//! The agent's HTTP surface (axum): `GET /metrics`, `GET /healthz`, `GET /snapshot` (the latest
//! pass as JSON) and `POST /resize`.
//!
//! # `POST /resize`
//! Body [`ResizeRequest`] `{"uuid": "...", "cpus": 1.5}`, header `Authorization: Bearer <token>`.
//! Answers [`ResizeResult`] with the limit read back from the cgroup after the change, or an
//! [`ErrorBody`]:
//!
//! | status | code | when |
//! |---|---|---|
//! | 401 | `unauthorized` | token missing or wrong |
//! | 403 | `resize_disabled` | the agent has no resize token configured |
//! | 400 | `invalid_body` (`field`: the one of the wrong type or missing, else `body`) | not a `ResizeRequest` object (the message quotes at most 300 bytes) |
//! | 422 | `invalid_field` (`uuid`) | not a job UUID (1 to 64 characters of `[A-Za-z0-9_-]`) |
//! | 422 | `invalid_field` (`cpus`) | not finite, ≤ 0, above the node's CPUs, or below the kernel's minimum quota |
//! | 404 | `not_found` | no container seen by the agent is mapped to that job UUID |
//! | 409 | `no_cpu_controller` | the cgroup has no CPU limit file (v2 without the cpu controller) |
//! | 502 | `runtime_error` | the Docker daemon refused or is unreachable |
//! | 500 | `internal` | the cgroup write failed |
//!
//! An unknown route is 404 `not_found`, a method a route does not take 405 `method_not_allowed`,
//! in the same `{"error": {"code", "message", "field"}}` shape.
//!
//! Docker containers are resized through the Engine API (`docker update`), so Docker's own
//! record stays right; other cgroups get `cpu.cfs_quota_us` (v1) or `cpu.max` (v2) written at
//! their current period.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use prometheus_client::registry::Registry;
use qos_core::wire::{ErrorBody, ErrorDetail, ResizeRequest, ResizeResult};

use crate::cgroup::{CgroupError, CpuLimit};
use crate::discovery::Runtime;
use crate::docker_api::ContainerRuntime;
use crate::metrics::{AgentStats, SharedSnapshot};

/// What the handlers share.
#[derive(Debug, Clone)]
pub(crate) struct AppState {
    /// Latest pass.
    pub snapshot: SharedSnapshot,
    /// Metrics registry.
    pub registry: Arc<Registry>,
    /// Agent counters.
    pub stats: Arc<AgentStats>,
    /// Bearer token for `/resize` (`None`: resizing disabled).
    pub resize_token: Option<String>,
    /// Node CPUs (resize upper bound).
    pub node_cpus: u32,
    /// Docker API, for Docker containers.
    pub runtime: Option<Arc<dyn ContainerRuntime>>,
    /// Clock ticks per second of `/proc` times (USER_HZ, `getconf CLK_TCK`).
    pub clk_tck: u64,
}

/// An error answer.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    body: ErrorBody,
}

impl ApiError {
    fn new(
        status: StatusCode,
        code: &str,
        message: impl Into<String>,
        field: Option<&str>,
    ) -> Self {
        Self {
            status,
            body: ErrorBody {
                error: ErrorDetail {
                    code: code.into(),
                    message: message.into(),
                    field: field.map(Into::into),
                },
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

/// The agent's routes (`/metrics`, `/snapshot`, `/resize`, …) over `state`.
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/snapshot", get(snapshot))
        .route("/resize", post(resize))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route", None)
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
                None,
            )
        })
        .with_state(state)
}

async fn metrics(State(st): State<AppState>) -> Response {
    match crate::metrics::encode(&st.registry) {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn snapshot(State(st): State<AppState>) -> Response {
    let snap = st
        .snapshot
        .read()
        .map(|g| Arc::clone(&g))
        .unwrap_or_default();
    Json(snap.as_ref().clone()).into_response()
}

/// Constant-time comparison, so the token cannot be guessed byte by byte from timings.
fn token_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn authorize(st: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = &st.resize_token else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "resize_disabled",
            "in-place resize is disabled on this agent: start it with --resize-token (or QOS_RESIZE_TOKEN)",
            None,
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(t) if token_eq(t.as_bytes(), expected.as_bytes()) => Ok(()),
        Some(_) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "wrong bearer token",
            None,
        )),
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing `Authorization: Bearer <token>` header",
            None,
        )),
    }
}

async fn resize(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ResizeResult>, ApiError> {
    let out = do_resize(&st, &headers, body).await;
    let counter = if out.is_ok() {
        &st.stats.resizes_ok
    } else {
        &st.stats.resizes_failed
    };
    AgentStats::add(counter, 1);
    match &out {
        Ok(r) => {
            tracing::info!(job.uuid = %r.uuid, container = %r.container_id, cpus = r.cpus, "resized in place")
        }
        Err(e) => {
            tracing::warn!(status = e.status.as_u16(), code = %e.body.error.code, message = %e.body.error.message, "resize refused")
        }
    }
    out.map(Json)
}

/// Longest message of a refused body, bytes: serde quotes the value it refuses, which may be a
/// megabyte long.
const MAX_BODY_MESSAGE: usize = 300;

/// The body read as a [`ResizeRequest`]; a refusal (400 `invalid_body`) names the field at
/// fault: the one of the wrong type or missing, or `body` when the body is not JSON or not an
/// object.
fn resize_request(body: Result<Bytes, BytesRejection>) -> Result<ResizeRequest, ApiError> {
    let refuse = |field: &str, why: String| {
        let message = format!("expected {{\"uuid\", \"cpus\"}}: {why}");
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            qos_core::wire::truncate(&message, MAX_BODY_MESSAGE),
            Some(field),
        )
    };
    let body = body.map_err(|e| refuse("body", e.body_text()))?;
    // serde would take a struct from an array too (`[uuid, cpus]`).
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(refuse("body", "the body is not a JSON object".to_owned()));
    }
    let de = &mut serde_json::Deserializer::from_slice(&body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let why = e.inner().to_string();
        let missing = why
            .strip_prefix("missing field `")
            .and_then(|r| r.split('`').next());
        let field = match (missing, path.as_str()) {
            (_, p) if e.inner().is_syntax() || e.inner().is_eof() || p.contains('[') => "body",
            (Some(name), ".") => name,
            (None, ".") => "body",
            (_, p) => p,
        }
        .to_owned();
        refuse(&field, why)
    })
}

async fn do_resize(
    st: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<ResizeResult, ApiError> {
    authorize(st, headers)?;
    let req = resize_request(body)?;
    if let Some(m) = qos_core::wire::uuid_problem("uuid", &req.uuid) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            m,
            Some("uuid"),
        ));
    }
    let invalid = |m: String| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            m,
            Some("cpus"),
        )
    };
    if !req.cpus.is_finite() || req.cpus <= 0.0 {
        return Err(invalid(format!(
            "cpus must be a number > 0, got {}",
            req.cpus
        )));
    }
    if req.cpus > f64::from(st.node_cpus) {
        return Err(invalid(format!(
            "cpus {} exceeds this node's {} CPUs",
            req.cpus, st.node_cpus
        )));
    }
    let snap = st
        .snapshot
        .read()
        .map(|g| Arc::clone(&g))
        .unwrap_or_default();
    let Some(c) = snap.by_uuid(&req.uuid).next() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no container on this node is mapped to job {}", req.uuid),
            Some("uuid"),
        ));
    };
    let cg_err = |e: CgroupError| match e {
        CgroupError::NoCpuController { .. } => ApiError::new(
            StatusCode::CONFLICT,
            "no_cpu_controller",
            e.to_string(),
            None,
        ),
        CgroupError::InvalidLimit(_) => invalid(e.to_string()),
        other => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            other.to_string(),
            None,
        ),
    };
    let Some(dirs) = &c.dirs else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_cgroup",
            format!(
                "container {} is read from a Mesos agent's /monitor/statistics, not from a \
                 cgroup of this node: resize it through its framework",
                c.id
            ),
            None,
        ));
    };
    let limit = match (c.runtime, &st.runtime) {
        (Runtime::Docker, Some(rt)) => {
            // Check the kernel's bounds before asking the daemon, for a clear error.
            CpuLimit::quota_for(c.period_us.unwrap_or(100_000), req.cpus).map_err(cg_err)?;
            match rt.set_cpus(&c.id, req.cpus).await {
                Ok(()) => dirs.read(st.clk_tck).map(|s| s.limit).map_err(cg_err),
                Err(e) => Err(ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "runtime_error",
                    e.to_string(),
                    None,
                )),
            }
        }
        _ => dirs.write_cpus(req.cpus).map(Some).map_err(cg_err),
    };
    // Whatever the outcome, every reader takes the quota from the kernel at the next pass (the
    // collector otherwise reads it only every few passes).
    crate::cgroup::note_limit_written();
    let limit = limit?;
    let cpus = limit
        .and_then(|l| l.cpus())
        .unwrap_or(f64::from(st.node_cpus));
    Ok(ResizeResult {
        uuid: req.uuid.clone(),
        container_id: c.id.clone(),
        cpus,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq() {
        assert!(token_eq(b"abc", b"abc"));
        assert!(!token_eq(b"abc", b"abd"));
        assert!(!token_eq(b"abc", b"ab"));
    }
}
