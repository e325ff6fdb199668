//! A fake supervisor: the thesis routes and the `/api/v1` routes the client calls, with the
//! versioned API's error body `{"error": {"code", "message", "field"?}}`, an admin token for
//! mutating routes and per-job report tokens for progress.

use std::collections::{BTreeMap, BTreeSet};

use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use qos_core::wire::{JobRegistration, MAX_JOBS_PAGE, Registered};
use serde_json::{Value, json};

use super::{Emulator, Recorded, json_response};

/// The admin token the emulated supervisor accepts on its mutating routes.
pub const ADMIN_TOKEN: &str = "admin-token";

/// The emulated supervisor's state, open to tests.
#[derive(Debug, Default)]
pub struct SupervisorState {
    /// Registered jobs by UUID: the view `GET /api/v1/jobs/{uuid}` returns.
    pub jobs: BTreeMap<String, Value>,
    /// Registered node ids.
    pub nodes: BTreeSet<String>,
}

/// A supervisor on a loopback port (report tokens are `rt-<uuid>`).
pub type SupervisorServer = Emulator<SupervisorState>;

impl Emulator<SupervisorState> {
    /// Without jobs or nodes.
    pub async fn start() -> Self {
        Self::serve(SupervisorState::default(), handle).await
    }
}

fn error(status: StatusCode, code: &str, message: &str, field: Option<&str>) -> Response {
    let mut inner = json!({"code": code, "message": message});
    if let Some(f) = field {
        inner["field"] = json!(f);
    }
    json_response(status, &json!({ "error": inner }))
}

/// `limit` and `offset` of a job-list query, as the supervisor reads them: one page of 1000
/// jobs unless `limit` (1 to [`MAX_JOBS_PAGE`]) says otherwise; `Err` names a bad parameter.
/// Other parameters (filters, order) are not emulated.
fn page(query: Option<&str>) -> Result<(usize, usize), &'static str> {
    let (mut limit, mut offset) = (1000, 0);
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "limit" => {
                limit = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_JOBS_PAGE).contains(n))
                    .ok_or("limit")?;
            }
            "offset" => offset = v.parse().map_err(|_| "offset")?,
            _ => {}
        }
    }
    Ok((limit, offset))
}

/// Long on purpose: the emulated routes, one arm each, as the supervisor's README lists them.
fn handle(st: &mut SupervisorState, req: &Recorded) -> Response {
    let (method, body) = (req.method.clone(), &req.body);
    let bearer = req
        .header(header::AUTHORIZATION.as_str())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let admin = bearer.as_deref() == Some(ADMIN_TOKEN);
    let segments: Vec<&str> = req.path.split('/').filter(|s| !s.is_empty()).collect();
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
            if serde_json::from_slice::<Value>(body).is_err() {
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
            let reg: JobRegistration = match serde_json::from_slice(body) {
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
            json_response(
                StatusCode::CREATED,
                &serde_json::to_value(answer).expect("json"),
            )
        }
        (Method::GET, ["api", "v1", "jobs"]) => match page(req.query.as_deref()) {
            Ok((limit, offset)) => json_response(
                StatusCode::OK,
                &Value::Array(st.jobs.values().skip(offset).take(limit).cloned().collect()),
            ),
            Err(field) => error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                &format!("{field} is out of range"),
                Some(field),
            ),
        },
        (Method::GET, ["api", "v1", "jobs", uuid]) => match st.jobs.get(*uuid) {
            Some(job) => json_response(StatusCode::OK, job),
            None => error(
                StatusCode::NOT_FOUND,
                "not_found",
                &format!("no job {uuid}"),
                None,
            ),
        },
        (Method::GET, ["api", "v1", "jobs", uuid, "history"]) => match st.jobs.get(*uuid) {
            Some(_) => json_response(StatusCode::OK, &json!([])),
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
            let fraction = serde_json::from_slice::<Value>(body)
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
            let id = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| v["id"].as_str().map(str::to_owned));
            match id {
                Some(id) => {
                    st.nodes.insert(id);
                    json_response(StatusCode::OK, &json!({"registered": true}))
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
        (Method::GET, ["api", "v1", "nodes"]) => json_response(
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
