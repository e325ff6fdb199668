//! HTTP: the thesis routes, the versioned `/api/v1` routes, health, readiness and metrics.
//!
//! Bodies are read as bytes (bounded) and parsed as JSON whatever the `Content-Type` says — the
//! thesis' curl sent `application/json`, some scripts add a charset, some send none. Errors are
//! `{"error": {"code", "message", "field"?}}`.
//!
//! Authorisation (when an admin token is configured):
//! - admin token (the handlers that take an [`Admin`] or an [`AdminBody`]): registration,
//!   cancellation, operator resizes, samples, node registration and heartbeats, lists;
//! - a job's report token (or the admin token): that job's reports (`/updateTask`,
//!   `/initMarathonApp`, `/endMarathonApp`, progress) and its own views; with `--insecure` the
//!   thesis routes stay open, because the thesis' containers send no token. `/updateTask` also
//!   takes the token as `report_token` in its body, for reporters that can send a header only as
//!   a command-line argument (wget), where every user of the agent would see it;
//! - open: `GET /`, `/healthz`, `/readyz`, `/metrics`.

use std::sync::Arc;

use axum::body::Bytes;
use std::convert::Infallible;

use axum::extract::{
    FromRequest, FromRequestParts, MatchedPath, Path, Query, RawQuery, Request, State,
};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use qos_core::Cpus;
use qos_core::wire::{
    EndMarathonApp, Heartbeat, InitMarathonApp, InitTask, JobRegistration, JobResize,
    NodeRegistration, ProgressReport, SampleBatch, UpdateTask,
};
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::time::Instant;

use crate::config::ControlConfig;
use crate::control;
use crate::error::{ApiError, from_json_error};
use crate::service::{
    JobsQuery, Registration, ReportOutcome, Shared, check_uuid, ct_eq, detail_reports,
    no_parameters,
};
use crate::state::HeldReport;

/// A request body, size-limited, with JSON errors for every rejection.
pub(crate) struct Body(pub(crate) Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Bytes::from_request(req, state).await {
            Ok(b) => Ok(Self(b)),
            Err(e) => {
                let status = e.status();
                let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
                    "too_large"
                } else {
                    "bad_body"
                };
                Err(ApiError::other(status, code, e.body_text()))
            }
        }
    }
}

/// A path parameter that must be an id (`[A-Za-z0-9_-]{1,64}`), decoded with a JSON error for
/// every failure (invalid percent-encoding or UTF-8 included). `K` names the parameter.
pub(crate) struct Id<K>(pub(crate) String, std::marker::PhantomData<K>);

/// The name of a path parameter, for [`Id`].
pub(crate) trait ParamName {
    const NAME: &'static str;
}

/// `{uuid}`.
pub(crate) struct JobParam;
impl ParamName for JobParam {
    const NAME: &'static str = "uuid";
}

/// `{id}` (a node).
pub(crate) struct NodeParam;
impl ParamName for NodeParam {
    const NAME: &'static str = "id";
}

impl<S: Send + Sync, K: ParamName> axum::extract::FromRequestParts<S> for Id<K> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(v)) => {
                check_uuid(K::NAME, &v)?;
                Ok(Self(v, std::marker::PhantomData))
            }
            Err(e) => Err(ApiError::bad_path(K::NAME, e.body_text())),
        }
    }
}

/// Parses a body as JSON into `T`, naming the offending field on failure.
pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_json(
            "the body is empty; a JSON object is expected",
        ));
    }
    // Read strictly first: a key given twice is refused naming its path, where serde keeps the
    // last of a map's keys silently and refuses a struct's without saying where.
    let value = qos_core::json::parse(bytes).map_err(|e| match e.duplicate {
        Some(field) => ApiError::invalid(
            field.clone(),
            format!("{field} is given twice; keep one (which was meant is not known)"),
        ),
        None => ApiError::bad_json(format!("the body is not valid JSON: {}", e.error)),
    })?;
    serde_path_to_error::deserialize(value).map_err(|e| from_json_error(&e))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
}

/// Who is calling: the shared state and the bearer token the request presents, if any. Its
/// methods say what the caller may do; every handler that authorises takes one.
pub(crate) struct Caller {
    sh: Arc<Shared>,
    token: Option<String>,
}

impl FromRequestParts<Arc<Shared>> for Caller {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, sh: &Arc<Shared>) -> Result<Self, Infallible> {
        Ok(Self::new(sh, &parts.headers))
    }
}

/// A caller allowed what the admin token allows ([`Caller::require_admin`]): its extraction
/// refuses anyone else with 401. The shared state is all its routes need of it.
pub(crate) struct Admin(pub(crate) Arc<Shared>);

impl FromRequestParts<Arc<Shared>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, sh: &Arc<Shared>) -> Result<Self, ApiError> {
        let c = Caller::new(sh, &parts.headers);
        c.require_admin()?;
        Ok(Self(c.sh))
    }
}

/// The JSON body of an admin route, parsed as `T`, behind the same check as [`Admin`]: the
/// body is read (bounded: 413 first), then the caller checked (401), then the JSON parsed (400
/// naming the field) — a caller without the token learns nothing of what its body would get.
pub(crate) struct AdminBody<T>(pub(crate) Arc<Shared>, pub(crate) T);

impl<T: DeserializeOwned> FromRequest<Arc<Shared>> for AdminBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, sh: &Arc<Shared>) -> Result<Self, ApiError> {
        let c = Caller::new(sh, req.headers());
        let Body(b) = Body::from_request(req, sh).await?;
        c.require_admin()?;
        Ok(Self(c.sh, parse(&b)?))
    }
}

impl Caller {
    fn new(sh: &Arc<Shared>, headers: &HeaderMap) -> Self {
        Self {
            sh: Arc::clone(sh),
            token: bearer(headers).map(str::to_owned),
        }
    }

    /// Whether the caller presented the admin token (not merely: the API is open).
    fn presented_admin(&self) -> bool {
        match (&self.sh.config.auth.admin_token, &self.token) {
            (Some(t), Some(b)) => ct_eq(b.as_bytes(), t.as_bytes()),
            _ => false,
        }
    }

    /// Whether the caller may do what the admin token allows (any caller, when none is set).
    fn is_admin(&self) -> bool {
        self.sh.config.auth.admin_token.is_none() || self.presented_admin()
    }

    fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::unauthorized())
        }
    }

    /// Who may report for `uuid`. `Ok(true)`: may also hold reports for an unknown job.
    /// `in_body`: the job's report token sent in the body (`report_token`) by a reporter that
    /// cannot send a header without putting the token in its arguments (the Chronos wrapper's
    /// wget path).
    fn may_report(
        &self,
        in_body: Option<&str>,
        uuid: &str,
        thesis: bool,
    ) -> Result<bool, ApiError> {
        if self.is_admin() || (thesis && self.sh.config.auth.insecure) {
            return Ok(true);
        }
        match self
            .token
            .as_deref()
            .or(in_body)
            .and_then(|t| self.sh.is_report_token(uuid, t))
        {
            Some(true) => Ok(false),
            _ => Err(ApiError::unauthorized()),
        }
    }

    fn may_read_job(&self, uuid: &str) -> Result<(), ApiError> {
        self.may_report(None, uuid, false).map(drop)
    }
}

/// The `report_token` of a report's body, if it has one (never stored: held reports keep only
/// the report's own fields).
fn token_in_body(bytes: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct WithToken {
        report_token: Option<String>,
    }
    serde_json::from_slice::<WithToken>(bytes)
        .ok()
        .and_then(|w| w.report_token)
}

/// The router over the shared state.
pub(crate) fn router(sh: Arc<Shared>) -> Router {
    let limit = sh.config.control.max_body_bytes;
    let thesis = Router::new()
        .route("/", get(welcome))
        .route("/initTask", post(init_task))
        .route("/updateTask", post(thesis_report::<UpdateTask>))
        .route("/initMarathonApp", post(thesis_report::<InitMarathonApp>))
        .route("/endMarathonApp", post(thesis_report::<EndMarathonApp>));
    let v1 = Router::new()
        .route("/api/v1/jobs", get(list_jobs).post(register_job))
        .route("/api/v1/jobs/{uuid}", get(get_job).delete(cancel_job))
        .route("/api/v1/jobs/{uuid}/history", get(job_history))
        .route("/api/v1/jobs/{uuid}/progress", post(job_progress))
        .route("/api/v1/jobs/{uuid}/resize", post(resize_job))
        .route("/api/v1/nodes/register", post(register_node))
        .route("/api/v1/nodes/{id}/heartbeat", post(heartbeat))
        .route("/api/v1/nodes", get(list_nodes))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/ui", get(crate::ui::page));
    let samples = Router::new().route("/api/v1/samples", post(samples)).layer(
        axum::extract::DefaultBodyLimit::max(limit.saturating_mul(8)),
    );
    thesis
        .merge(v1)
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .merge(samples)
        .route_layer(middleware::from_fn_with_state(Arc::clone(&sh), track))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(sh)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::other(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this route",
    )
}

fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// Per-request timeout and request metrics by matched route.
async fn track(
    State(sh): State<Arc<Shared>>,
    matched: Option<MatchedPath>,
    req: Request,
    next: Next,
) -> Response {
    let route = matched.map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let method = method_label(req.method());
    let start = Instant::now();
    let limit = ControlConfig::dur(sh.config.control.request_timeout);
    let resp = match tokio::time::timeout(limit, next.run(req)).await {
        Ok(r) => r,
        Err(_) => {
            ApiError::unavailable(format!("the request took longer than {limit:?}")).into_response()
        }
    };
    sh.metrics.request(
        &route,
        method,
        resp.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    resp
}

async fn welcome() -> &'static str {
    "Welcome\n"
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(sh): State<Arc<Shared>>) -> Response {
    if sh.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        ApiError::unavailable("loading state").into_response()
    }
}

async fn metrics(State(sh): State<Arc<Shared>>) -> Response {
    sh.metrics
        .store_wal(sh.store.wal_bytes(), sh.store.wal_peak_bytes());
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        sh.metrics.encode(),
    )
        .into_response()
}

fn registration(r: Registration, status: StatusCode) -> Response {
    match r {
        Registration::New(r) => (status, Json(r)).into_response(),
        Registration::Existing {
            uuid,
            report_token: Some(t),
        } => (
            StatusCode::OK,
            Json(json!({"uuid": uuid, "report_token": t, "status": "duplicate"})),
        )
            .into_response(),
        Registration::Existing {
            uuid,
            report_token: None,
        } => (
            StatusCode::OK,
            Json(json!({"uuid": uuid, "status": "duplicate"})),
        )
            .into_response(),
    }
}

fn outcome(o: ReportOutcome) -> Response {
    (StatusCode::OK, Json(json!({"status": o}))).into_response()
}

async fn init_task(c: Caller, Body(b): Body) -> Result<Response, ApiError> {
    let t: InitTask = parse(&b)?;
    if !(c.is_admin() || c.sh.config.auth.insecure) {
        return Err(ApiError::unauthorized());
    }
    // A repeat answers the job's existing token only to whoever holds the admin token: an
    // anonymous caller (the thesis' routes under --insecure) repeating a known uuid and name
    // must not learn it.
    let r = c.sh.init_task(t, c.presented_admin()).await?;
    Ok(registration(r, StatusCode::OK))
}

/// The body of a thesis report: the job it is of, and the report it makes.
trait ThesisReport: DeserializeOwned + Into<HeldReport> {
    /// Whether the body may carry the job's `report_token` (`/updateTask`).
    const TOKEN_IN_BODY: bool = false;
    fn uuid(&self) -> &str;
}

impl ThesisReport for UpdateTask {
    const TOKEN_IN_BODY: bool = true;
    fn uuid(&self) -> &str {
        &self.uuid
    }
}

impl ThesisReport for InitMarathonApp {
    fn uuid(&self) -> &str {
        &self.uuid
    }
}

impl ThesisReport for EndMarathonApp {
    fn uuid(&self) -> &str {
        &self.uuid
    }
}

/// A thesis report (`/updateTask`, `/initMarathonApp`, `/endMarathonApp`) of its job: the UUID
/// checked, the caller allowed to report for it (or also to hold the report of a job not
/// registered yet), then the report applied.
async fn thesis_report<R: ThesisReport>(c: Caller, Body(b): Body) -> Result<Response, ApiError> {
    let report: R = parse(&b)?;
    let uuid = report.uuid().to_owned();
    let in_body = if R::TOKEN_IN_BODY {
        token_in_body(&b)
    } else {
        None
    };
    check_uuid("uuid", &uuid)?;
    let hold = c.may_report(in_body.as_deref(), &uuid, true)?;
    Ok(outcome(c.sh.report(&uuid, report.into(), hold).await?))
}

async fn register_job(
    AdminBody(sh, reg): AdminBody<JobRegistration>,
) -> Result<Response, ApiError> {
    let r = sh.register(reg, false, false, true).await?;
    Ok(registration(r, StatusCode::CREATED))
}

/// The decoded query string of a view (`?limit=100&state=active`), pairs in their order.
pub(crate) struct Params(pub(crate) Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<Vec<(String, String)>>::from_request_parts(parts, state).await {
            Ok(Query(pairs)) => Ok(Self(pairs)),
            Err(e) => Err(ApiError::invalid("query", e.body_text())),
        }
    }
}

/// One page of the jobs that match the query; `X-Total-Count` says how many match in all.
async fn list_jobs(Admin(sh): Admin, Params(q): Params) -> Result<Response, ApiError> {
    let q = JobsQuery::parse(&q)?;
    let page = sh.jobs_view(&q);
    Ok((
        [(
            HeaderName::from_static("x-total-count"),
            page.total.to_string(),
        )],
        Json(page.jobs),
    )
        .into_response())
}

async fn get_job(
    c: Caller,
    Id(uuid, _): Id<JobParam>,
    Params(q): Params,
) -> Result<Response, ApiError> {
    let reports = detail_reports(&q)?;
    c.may_read_job(&uuid)?;
    Ok(Json(c.sh.job_view(&uuid, reports).await?).into_response())
}

async fn cancel_job(
    Id(uuid, _): Id<JobParam>,
    Admin(sh): Admin,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let mut keep = false;
    let query = query.unwrap_or_default();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match (k, v) {
            ("keep_checkpoints", "true" | "1" | "") => keep = true,
            ("keep_checkpoints", "false" | "0") => keep = false,
            ("keep_checkpoints", other) => {
                return Err(ApiError::invalid(
                    "keep_checkpoints",
                    format!("keep_checkpoints must be true or false, got {other:?}"),
                ));
            }
            (other, _) => {
                return Err(ApiError::invalid(
                    other,
                    format!("unknown query parameter {other:?} (only keep_checkpoints)"),
                ));
            }
        }
    }
    sh.cancel(&uuid, keep).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn job_history(
    c: Caller,
    Id(uuid, _): Id<JobParam>,
    Params(q): Params,
) -> Result<Response, ApiError> {
    no_parameters(&q)?;
    c.may_read_job(&uuid)?;
    if !c.sh.lock().jobs.contains_key(&uuid) {
        return Err(ApiError::not_found(format!("no job {uuid}")));
    }
    let rows =
        c.sh.store
            .history(&uuid, 1000)
            .await
            .map_err(|e| ApiError::unavailable(e.to_string()))?;
    Ok(Json(rows).into_response())
}

async fn job_progress(
    c: Caller,
    Id(uuid, _): Id<JobParam>,
    Body(b): Body,
) -> Result<Response, ApiError> {
    let hold = c.may_report(None, &uuid, false)?;
    let p: ProgressReport = parse(&b)?;
    if !p.fraction.is_finite() || !(0.0..=1.0).contains(&p.fraction) {
        return Err(ApiError::invalid("fraction", "fraction must be in [0, 1]"));
    }
    let p = ProgressReport {
        at: Some(p.at.unwrap_or_else(|| c.sh.clock.now())),
        ..p
    };
    c.sh.report(&uuid, HeldReport::Progress(p), hold).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// An operator's resize: recorded as a decision with the reason `operator` and applied as the
/// controller's resizes are; answers once it is in force (or why it is not).
async fn resize_job(
    Id(uuid, _): Id<JobParam>,
    AdminBody(sh, r): AdminBody<JobResize>,
) -> Result<Response, ApiError> {
    let (lo, hi) = sh.config.policy.bounds();
    if !r.cpus.is_finite() || Cpus::from_f64(r.cpus) < lo || Cpus::from_f64(r.cpus) > hi {
        return Err(ApiError::invalid(
            "cpus",
            format!(
                "cpus must be a number of CPUs within the policy's bounds [{lo}, {hi}], got {}",
                crate::limits::number(r.cpus)
            ),
        ));
    }
    let done = control::operator_resize(&sh, &uuid, Cpus::from_f64(r.cpus)).await?;
    Ok(Json(done).into_response())
}

async fn samples(AdminBody(sh, batch): AdminBody<SampleBatch>) -> Result<Response, ApiError> {
    let v = sh.samples(batch)?;
    Ok((StatusCode::ACCEPTED, Json(v)).into_response())
}

async fn register_node(
    AdminBody(sh, reg): AdminBody<NodeRegistration>,
) -> Result<Response, ApiError> {
    sh.register_node(reg).await?;
    Ok(Json(json!({"registered": true})).into_response())
}

async fn heartbeat(
    Id(id, _): Id<NodeParam>,
    AdminBody(sh, beat): AdminBody<Heartbeat>,
) -> Result<Response, ApiError> {
    sh.heartbeat(&id, beat)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_nodes(Admin(sh): Admin, Params(q): Params) -> Result<Response, ApiError> {
    no_parameters(&q)?;
    Ok(Json(sh.nodes_view()).into_response())
}
