//! The fakes over real HTTP: a loopback server per fake with the routes the real clients use,
//! and [`Faults`]: a switch that makes a served fake fail as a sick framework does (5xx, 409,
//! garbage, no answer at all) — the fault suite's injection.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use frameworks::{ChronosApi, ChronosJob, FrameworkError, MarathonApi};
use serde_json::{Map, Value, json};

pub use crate::wire::Served;
use crate::wire::try_serve as serve;
use crate::{FakeChronos, FakeMarathon};

fn error(e: &FrameworkError) -> Response {
    let (status, body) = match e {
        FrameworkError::NotFound { message, .. } => {
            (StatusCode::NOT_FOUND, json!({"message": message}))
        }
        FrameworkError::Locked {
            message,
            deployments,
            ..
        } => (
            StatusCode::CONFLICT,
            json!({"message": message, "deployments": deployments.iter().map(|d| json!({"id": d})).collect::<Vec<_>>()}),
        ),
        FrameworkError::Conflict { message, .. } => {
            (StatusCode::CONFLICT, json!({"message": message}))
        }
        FrameworkError::Server { status, body, .. } => (
            StatusCode::from_u16(*status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            json!({"message": body}),
        ),
        other => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"message": other.to_string()}),
        ),
    };
    (status, axum::Json(body)).into_response()
}

/// Chronos' answer to a change: `204 No Content`, or the error as the real server words it.
fn no_content(done: Result<(), FrameworkError>) -> Response {
    match done {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error(&e),
    }
}

fn flag(q: &Map<String, Value>, name: &str) -> bool {
    q.get(name).and_then(Value::as_str) == Some("true")
}

/// What a faulty server does with each request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answers as the fake does.
    None,
    /// This HTTP status, with a short JSON `message`.
    Status(u16),
    /// Marathon's 409 "locked by a deployment" (with the `deployments` array).
    Locked,
    /// 200 with a body that is not JSON.
    Garbage,
    /// Never answers (the connection stays open until the client gives up).
    Hang,
}

/// The switch of a server served with faults: which [`Fault`] it injects now, and how many
/// requests it has faulted.
#[derive(Debug, Clone)]
pub struct Faults(Arc<Mutex<(Fault, u64)>>);

impl Faults {
    fn new() -> Self {
        Self(Arc::new(Mutex::new((Fault::None, 0))))
    }

    /// From now on, every request gets `fault`.
    pub fn set(&self, fault: Fault) {
        crate::lock(&self.0).0 = fault;
    }

    /// Requests faulted so far.
    #[must_use]
    pub fn injected(&self) -> u64 {
        crate::lock(&self.0).1
    }
}

async fn inject(
    State(faults): State<Faults>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let fault = {
        let mut f = crate::lock(&faults.0);
        if f.0 != Fault::None {
            f.1 += 1;
        }
        f.0
    };
    match fault {
        Fault::None => next.run(req).await,
        Fault::Status(code) => (
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            axum::Json(json!({"message": format!("injected {code}")})),
        )
            .into_response(),
        Fault::Locked => (
            StatusCode::CONFLICT,
            axum::Json(json!({"message": "App is locked by one or more deployments. Override with the option '?force=true'.", "deployments": [{"id": "injected-deployment"}]})),
        )
            .into_response(),
        Fault::Garbage => (StatusCode::OK, "<html>\u{0}\u{7f} not json {{{").into_response(),
        Fault::Hang => std::future::pending().await,
    }
}

/// Serves `fake` as Marathon's `/v2/apps` API.
///
/// # Errors
/// When no loopback port can be bound.
pub async fn serve_marathon(fake: Arc<FakeMarathon>) -> std::io::Result<Served> {
    serve(marathon_router(fake)).await
}

/// Serves `fake` as Marathon's `/v2/apps` API, failing every request as the returned switch
/// says ([`Fault::None`] at first).
///
/// # Errors
/// When no loopback port can be bound.
pub async fn serve_marathon_with_faults(
    fake: Arc<FakeMarathon>,
) -> std::io::Result<(Served, Faults)> {
    let faults = Faults::new();
    let router =
        marathon_router(fake).layer(axum::middleware::from_fn_with_state(faults.clone(), inject));
    Ok((serve(router).await?, faults))
}

fn marathon_router(fake: Arc<FakeMarathon>) -> Router {
    async fn get_app(State(f): State<Arc<FakeMarathon>>, Path(id): Path<String>) -> Response {
        match f.get_app(&id).await {
            Ok(app) => axum::Json(json!({"app": app})).into_response(),
            Err(e) => error(&e),
        }
    }
    async fn put_app(
        State(f): State<Arc<FakeMarathon>>,
        Path(id): Path<String>,
        Query(q): Query<Map<String, Value>>,
        body: Bytes,
    ) -> Response {
        let force = flag(&q, "force");
        let patch: Map<String, Value> = serde_json::from_slice(&body).unwrap_or_default();
        let r = if let Some(cpus) = patch.get("cpus").and_then(Value::as_f64) {
            f.set_app_cpus(&id, cpus, force).await
        } else if let Some(n) = patch.get("instances").and_then(Value::as_u64) {
            f.scale_app(&id, u32::try_from(n).unwrap_or(u32::MAX), force)
                .await
        } else {
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                axum::Json(json!({"message": "fake: only cpus or instances"})),
            )
                .into_response();
        };
        match r {
            Ok(d) => axum::Json(json!({"deploymentId": d.deployment_id, "version": d.version}))
                .into_response(),
            Err(e) => error(&e),
        }
    }
    async fn delete_app(
        State(f): State<Arc<FakeMarathon>>,
        Path(id): Path<String>,
        Query(q): Query<Map<String, Value>>,
    ) -> Response {
        match f.delete_app(&id, flag(&q, "force")).await {
            Ok(d) => axum::Json(json!({"deploymentId": d.deployment_id, "version": d.version}))
                .into_response(),
            Err(e) => error(&e),
        }
    }
    Router::new()
        .route(
            "/v2/apps/{*id}",
            get(get_app).put(put_app).delete(delete_app),
        )
        .route("/v2/deployments", get(|| async { axum::Json(json!([])) }))
        .with_state(fake)
}

/// Serves `fake` as Chronos 2.x (`/scheduler/*`).
///
/// # Errors
/// When no loopback port can be bound.
pub async fn serve_chronos(fake: Arc<FakeChronos>) -> std::io::Result<Served> {
    async fn search(
        State(f): State<Arc<FakeChronos>>,
        Query(q): Query<Map<String, Value>>,
    ) -> Response {
        let name = q
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        match f.find_job(&name).await {
            Ok(found) => axum::Json(json!(found.into_iter().collect::<Vec<_>>())).into_response(),
            Err(e) => error(&e),
        }
    }
    async fn upsert(State(f): State<Arc<FakeChronos>>, body: Bytes) -> Response {
        let Ok(job) = serde_json::from_slice::<ChronosJob>(&body) else {
            return (StatusCode::BAD_REQUEST, "not a job").into_response();
        };
        no_content(f.put_job(&job).await)
    }
    async fn start(State(f): State<Arc<FakeChronos>>, Path(name): Path<String>) -> Response {
        no_content(f.start_job(&name).await)
    }
    async fn delete(State(f): State<Arc<FakeChronos>>, Path(name): Path<String>) -> Response {
        no_content(f.delete_job(&name).await)
    }
    async fn kill(State(f): State<Arc<FakeChronos>>, Path(name): Path<String>) -> Response {
        no_content(f.kill_job_tasks(&name).await)
    }
    async fn list(State(f): State<Arc<FakeChronos>>) -> Response {
        axum::Json(json!(f.jobs())).into_response()
    }
    let router = Router::new()
        .route("/scheduler/jobs", get(list))
        .route("/scheduler/jobs/search", get(search))
        .route("/scheduler/iso8601", post(upsert))
        .route("/scheduler/dependency", post(upsert))
        .route("/scheduler/job/{name}", put(start).delete(delete))
        .route("/scheduler/task/kill/{name}", axum::routing::delete(kill))
        .with_state(fake);
    serve(router).await
}
