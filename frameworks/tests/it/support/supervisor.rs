//! A fake supervisor: the thesis routes and the `/api/v1` routes the client calls, with the
//! versioned API's error body `{"error": {"code", "message", "field"?}}`, an admin token for
//! mutating routes and per-job report tokens for progress.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use qos_core::wire::{JobRegistration, Registered};
use serde_json::{Value, json};

use super::{Log, Recorded, Server, lock, serve};

pub(crate) const ADMIN_TOKEN: &str = "admin-token";

#[derive(Debug, Default)]
pub(crate) struct SupervisorState {
    pub(crate) jobs: BTreeMap<String, Value>,
    pub(crate) nodes: BTreeSet<String>,
}

pub(crate) struct FakeSupervisor {
    pub(crate) url: String,
    pub(crate) state: Arc<Mutex<SupervisorState>>,
    pub(crate) log: Log,
    _server: Server,
}

#[derive(Clone)]
struct Shared {
    state: Arc<Mutex<SupervisorState>>,
    log: Log,
}

impl FakeSupervisor {
    pub(crate) async fn start() -> Self {
        let shared = Shared {
            state: Arc::default(),
            log: Log::default(),
        };
        let router = Router::new().fallback(handle).with_state(shared.clone());
        let server = serve(router).await;
        Self {
            url: server.url.clone(),
            state: shared.state,
            log: shared.log,
            _server: server,
        }
    }

    pub(crate) fn requests(&self) -> Vec<Recorded> {
        lock(&self.log).clone()
    }

    pub(crate) fn last_request(&self) -> Recorded {
        self.requests().pop().expect("at least one request")
    }
}

fn error(status: StatusCode, code: &str, message: &str, field: Option<&str>) -> Response {
    let mut inner = json!({"code": code, "message": message});
    if let Some(f) = field {
        inner["field"] = json!(f);
    }
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({ "error": inner }).to_string(),
    )
        .into_response()
}

fn ok_json(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn handle(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    lock(&shared.log).push(Recorded::new(&method, &uri, &headers, &body));
    let mut st = lock(&shared.state);
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let admin = bearer.as_deref() == Some(ADMIN_TOKEN);
    let segments: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    let unauthorized = || {
        error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid bearer token is required",
            None,
        )
    };

    match (method, segments.as_slice()) {
        (Method::GET, ["healthz" | "readyz"]) => (StatusCode::OK, "ok").into_response(),
        (Method::POST, ["initTask" | "updateTask" | "initMarathonApp" | "endMarathonApp"]) => {
            if serde_json::from_slice::<Value>(&body).is_err() {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_json",
                    "body is not JSON",
                    None,
                );
            }
            (StatusCode::OK, "OK").into_response()
        }
        (Method::POST, ["api", "v1", "jobs"]) => {
            if !admin {
                return unauthorized();
            }
            let reg: JobRegistration = match serde_json::from_slice(&body) {
                Ok(r) => r,
                Err(e) => {
                    return error(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "invalid_field",
                        &e.to_string(),
                        Some("qos"),
                    );
                }
            };
            if st.jobs.contains_key(&reg.uuid) {
                return error(
                    StatusCode::CONFLICT,
                    "conflict",
                    &format!("job {} is already registered", reg.uuid),
                    Some("uuid"),
                );
            }
            st.jobs.insert(
                reg.uuid.clone(),
                json!({"uuid": reg.uuid, "name": reg.name, "progress": 0.0}),
            );
            let answer = Registered {
                uuid: reg.uuid.clone(),
                report_token: format!("rt-{}", reg.uuid),
                warnings: Vec::new(),
            };
            ok_json(
                StatusCode::CREATED,
                &serde_json::to_value(answer).expect("json"),
            )
        }
        (Method::GET, ["api", "v1", "jobs"]) => ok_json(
            StatusCode::OK,
            &Value::Array(st.jobs.values().cloned().collect()),
        ),
        (Method::GET, ["api", "v1", "jobs", uuid]) => match st.jobs.get(*uuid) {
            Some(job) => ok_json(StatusCode::OK, job),
            None => error(
                StatusCode::NOT_FOUND,
                "not_found",
                &format!("no job {uuid}"),
                None,
            ),
        },
        (Method::GET, ["api", "v1", "jobs", uuid, "history"]) => match st.jobs.get(*uuid) {
            Some(_) => ok_json(StatusCode::OK, &json!([])),
            None => error(
                StatusCode::NOT_FOUND,
                "not_found",
                &format!("no job {uuid}"),
                None,
            ),
        },
        (Method::DELETE, ["api", "v1", "jobs", uuid]) => {
            if !admin {
                return unauthorized();
            }
            match st.jobs.remove(*uuid) {
                Some(_) => StatusCode::NO_CONTENT.into_response(),
                None => error(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    &format!("no job {uuid}"),
                    None,
                ),
            }
        }
        (Method::POST, ["api", "v1", "jobs", uuid, "progress"]) => {
            let own = bearer.as_deref() == Some(format!("rt-{uuid}").as_str());
            if !(admin || own) {
                return unauthorized();
            }
            let fraction = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v["fraction"].as_f64());
            match (st.jobs.get_mut(*uuid), fraction) {
                (None, _) => error(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    &format!("no job {uuid}"),
                    None,
                ),
                (Some(_), None) => error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_field",
                    "fraction must be a number",
                    Some("fraction"),
                ),
                (Some(_), Some(f)) if !(0.0..=1.0).contains(&f) => error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_field",
                    "fraction must be in [0, 1]",
                    Some("fraction"),
                ),
                (Some(job), Some(f)) => {
                    job["progress"] = json!(f);
                    StatusCode::NO_CONTENT.into_response()
                }
            }
        }
        (Method::POST, ["api", "v1", "samples"]) => {
            if !admin {
                return unauthorized();
            }
            StatusCode::ACCEPTED.into_response()
        }
        (Method::POST, ["api", "v1", "nodes", "register"]) => {
            if !admin {
                return unauthorized();
            }
            let id = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v["id"].as_str().map(str::to_owned));
            match id {
                Some(id) => {
                    st.nodes.insert(id);
                    ok_json(StatusCode::OK, &json!({"registered": true}))
                }
                None => error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_field",
                    "id is required",
                    Some("id"),
                ),
            }
        }
        (Method::POST, ["api", "v1", "nodes", id, "heartbeat"]) => {
            if !admin {
                return unauthorized();
            }
            if st.nodes.contains(*id) {
                StatusCode::NO_CONTENT.into_response()
            } else {
                error(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    &format!("node {id} is not registered"),
                    None,
                )
            }
        }
        (Method::GET, ["api", "v1", "nodes"]) => ok_json(
            StatusCode::OK,
            &json!(
                st.nodes
                    .iter()
                    .map(|n| json!({"id": n}))
                    .collect::<Vec<_>>()
            ),
        ),
        _ => error(StatusCode::NOT_FOUND, "not_found", "no such route", None),
    }
}
