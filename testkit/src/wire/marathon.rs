//! A Marathon 1.x answering the `/v2` subset the clients use, with Marathon's real status
//! codes, headers and error bodies (its recorded answers are `frameworks/tests/fixtures`).

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::{Emulator, Recorded, base64, json_response};

/// `GET /v2/info` of a real Marathon 1.10.
const INFO: &str = include_str!("../../../frameworks/tests/fixtures/marathon/info.json");
/// Marathon's 422 for an invalid app (`minimumHealthCapacity` above 1).
const INVALID_422: &str =
    include_str!("../../../frameworks/tests/fixtures/marathon/error_invalid_422.json");
/// Marathon's answer to an app without an id.
const INVALID_JSON: &str =
    include_str!("../../../frameworks/tests/fixtures/marathon/error_invalid_json_400.json");

fn fixture(text: &str) -> Value {
    serde_json::from_str(text).expect("a recorded Marathon answer is JSON")
}

/// The emulated Marathon's state, open to tests.
#[derive(Debug, Default)]
pub struct MarathonState {
    /// App id → the object `GET /v2/apps/{id}` returns (AppInfo).
    pub apps: BTreeMap<String, Value>,
    /// App id → deployment id that locks it.
    pub locks: BTreeMap<String, String>,
    /// Expected `Authorization` header value, when auth is on.
    pub expected_auth: Option<String>,
    deployments: u64,
}

/// A Marathon on a loopback port.
pub type MarathonServer = Emulator<MarathonState>;

impl Emulator<MarathonState> {
    /// Without authentication.
    pub async fn start() -> Self {
        Self::serve(MarathonState::default(), handle).await
    }

    /// With HTTP Basic auth required (`--http_credentials user:password`).
    pub async fn with_basic_auth(user: &str, password: &str) -> Self {
        let expected = format!("Basic {}", base64(format!("{user}:{password}").as_bytes()));
        Self::with_auth(expected).await
    }

    /// With a DC/OS token required.
    pub async fn with_token(token: &str) -> Self {
        Self::with_auth(format!("token={token}")).await
    }

    async fn with_auth(expected: String) -> Self {
        let state = MarathonState {
            expected_auth: Some(expected),
            ..MarathonState::default()
        };
        Self::serve(state, handle).await
    }

    /// Stores an AppInfo object as is (as if Marathon had it).
    pub fn insert_app(&self, app: Value) {
        let id = app["id"].as_str().expect("app id").to_owned();
        self.state().apps.insert(id, app);
    }

    /// The AppInfo of app `id`.
    #[must_use]
    pub fn app(&self, id: &str) -> Option<Value> {
        self.state().apps.get(id).cloned()
    }

    /// Makes deployment `deployment` lock app `id` (a 409 for changes without `force`).
    pub fn lock_app(&self, id: &str, deployment: &str) {
        self.state()
            .locks
            .insert(id.to_owned(), deployment.to_owned());
    }
}

fn message(status: StatusCode, text: &str) -> Response {
    json_response(status, &json!({ "message": text }))
}

fn with_deployment_header(mut resp: Response, deployment: &str) -> Response {
    resp.headers_mut().insert(
        "Marathon-Deployment-Id",
        HeaderValue::from_str(deployment).expect("header value"),
    );
    resp
}

fn deployment_result(status: StatusCode, deployment: &str) -> Response {
    with_deployment_header(
        json_response(
            status,
            &json!({"deploymentId": deployment, "version": "2026-01-01T00:00:00.000Z"}),
        ),
        deployment,
    )
}

fn handle(st: &mut MarathonState, req: &Recorded) -> Response {
    let (method, body) = (&req.method, &req.body);
    if let Some(expected) = &st.expected_auth {
        let got = req.header(header::AUTHORIZATION.as_str());
        if got != Some(expected.as_str()) {
            // Jetty's BasicAuthenticator: challenge header and an HTML page.
            return (
                StatusCode::UNAUTHORIZED,
                [
                    (header::WWW_AUTHENTICATE, "basic realm=\"Mesosphere\""),
                    (header::CONTENT_TYPE, "text/html;charset=iso-8859-1"),
                ],
                "<html><head><title>Error 401 Unauthorized</title></head><body><h2>HTTP ERROR 401</h2></body></html>",
            )
                .into_response();
        }
    }
    let query = req.query.as_deref();
    let force = query.is_some_and(|q| q.split('&').any(|p| p == "force=true"));
    let partial = !query.is_some_and(|q| q.split('&').any(|p| p == "partialUpdate=false"));
    let path = req.path.trim_end_matches('/');
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();

    match (method.clone(), segments.as_slice()) {
        (Method::GET, ["v2", "info"]) => json_response(StatusCode::OK, &fixture(INFO)),
        (Method::GET, ["v2", "deployments"]) => {
            let list: Vec<Value> = st
                .locks
                .iter()
                .map(|(app, id)| {
                    json!({"id": id, "version": "2026-01-01T00:00:00.000Z", "affectedApps": [app],
                        "affectedPods": [], "steps": [{"actions": [{"action": "RestartApplication", "app": app}]}],
                        "currentActions": [{"action": "RestartApplication", "app": app, "readinessCheckResults": []}],
                        "currentStep": 1, "totalSteps": 1})
                })
                .collect();
            json_response(StatusCode::OK, &Value::Array(list))
        }
        (Method::GET, ["v2", "apps"]) => {
            let apps: Vec<Value> = st.apps.values().cloned().collect();
            json_response(StatusCode::OK, &json!({ "apps": apps }))
        }
        (Method::POST, ["v2", "apps"]) => create(st, body),
        (Method::GET, ["v2", "apps", rest @ .., "tasks"]) => {
            let id = format!("/{}", rest.join("/"));
            match st.apps.get(&id) {
                Some(app) => json_response(
                    StatusCode::OK,
                    &json!({"tasks": app.get("tasks").cloned().unwrap_or(json!([]))}),
                ),
                None => message(StatusCode::NOT_FOUND, &format!("App '{id}' does not exist")),
            }
        }
        (Method::POST, ["v2", "apps", rest @ .., "restart"]) => {
            let id = format!("/{}", rest.join("/"));
            if !st.apps.contains_key(&id) {
                return message(StatusCode::NOT_FOUND, &format!("App '{id}' does not exist"));
            }
            if let Some(dep) = st.locks.get(&id).filter(|_| !force) {
                return locked(dep);
            }
            let dep = next_deployment(st);
            deployment_result(StatusCode::OK, &dep)
        }
        (Method::GET, ["v2", "apps", rest @ ..]) => {
            let id = format!("/{}", rest.join("/"));
            match st.apps.get(&id) {
                Some(app) => json_response(StatusCode::OK, &json!({ "app": app })),
                None => message(StatusCode::NOT_FOUND, &format!("App '{id}' does not exist")),
            }
        }
        (Method::PUT, ["v2", "apps", rest @ ..]) => {
            let id = format!("/{}", rest.join("/"));
            update(st, &id, body, force, partial)
        }
        (Method::DELETE, ["v2", "apps", rest @ ..]) => {
            let id = format!("/{}", rest.join("/"));
            if let Some(dep) = st.locks.get(&id).filter(|_| !force) {
                return locked(dep);
            }
            if st.apps.remove(&id).is_none() {
                return message(StatusCode::NOT_FOUND, &format!("App '{id}' does not exist"));
            }
            let dep = next_deployment(st);
            deployment_result(StatusCode::OK, &dep)
        }
        _ => message(StatusCode::NOT_FOUND, "Not Found"),
    }
}

fn next_deployment(st: &mut MarathonState) -> String {
    st.deployments += 1;
    format!("5ed4c0c5-9ff8-4a6f-a0cd-{:012}", st.deployments)
}

fn locked(deployment: &str) -> Response {
    json_response(
        StatusCode::CONFLICT,
        &json!({
            "message": format!("App is locked by one or more deployments. Override with the option '?force=true'. View details at '/v2/deployments/{deployment}'."),
            "deployments": [{"id": deployment}]
        }),
    )
}

// An early-return error response; size does not matter in a test fake.
#[allow(clippy::result_large_err)]
fn parse_body(body: &Bytes) -> Result<Map<String, Value>, Response> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(json_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            &json!({"message": "Invalid JSON", "details": [{"path": "", "errors": ["error.expected.jsobject"]}]}),
        )),
        Err(e) => Err(json_response(
            StatusCode::BAD_REQUEST,
            &json!({"message": "Invalid JSON", "details": e.to_string()}),
        )),
    }
}

/// The checks of Marathon's validation the tests exercise.
#[allow(clippy::result_large_err)]
fn validate(app: &Map<String, Value>) -> Result<(), Response> {
    let capacity = app
        .get("upgradeStrategy")
        .and_then(|u| u.get("minimumHealthCapacity"))
        .and_then(Value::as_f64);
    if capacity.is_some_and(|c| c > 1.0) {
        return Err(json_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            &fixture(INVALID_422),
        ));
    }
    let non_empty = |k: &str| {
        app.get(k)
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
    };
    if non_empty("uris") && non_empty("fetch") {
        return Err(json_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            &json!({"message": "Object is not valid", "details": [{"path": "/", "errors": ["cannot specify both uris and fetch fields"]}]}),
        ));
    }
    Ok(())
}

fn create(st: &mut MarathonState, body: &Bytes) -> Response {
    let mut app = match parse_body(body) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let Some(id) = app.get("id").and_then(Value::as_str).map(str::to_owned) else {
        return json_response(StatusCode::UNPROCESSABLE_ENTITY, &fixture(INVALID_JSON));
    };
    if let Err(r) = validate(&app) {
        return r;
    }
    if st.apps.contains_key(&id) {
        return message(
            StatusCode::CONFLICT,
            &format!("An app with id [{id}] already exists."),
        );
    }
    // Marathon reads only the fields it knows: "qos" is dropped.
    app.remove("qos");
    let dep = next_deployment(st);
    let mut info = app.clone();
    info.insert("version".into(), json!("2026-01-01T00:00:00.000Z"));
    info.insert("tasksStaged".into(), json!(0));
    info.insert("tasksRunning".into(), json!(0));
    info.insert("tasksHealthy".into(), json!(0));
    info.insert("tasksUnhealthy".into(), json!(0));
    info.insert("tasks".into(), json!([]));
    st.apps.insert(id.clone(), Value::Object(info.clone()));
    info.insert("deployments".into(), json!([{ "id": dep }]));
    let mut resp = with_deployment_header(
        json_response(StatusCode::CREATED, &Value::Object(info)),
        &dep,
    );
    resp.headers_mut().insert(
        header::LOCATION,
        HeaderValue::from_str(&id).expect("location"),
    );
    resp
}

fn update(st: &mut MarathonState, id: &str, body: &Bytes, force: bool, partial: bool) -> Response {
    if let Some(dep) = st.locks.get(id).filter(|_| !force) {
        return locked(dep);
    }
    let patch = match parse_body(body) {
        Ok(p) => p,
        Err(r) => return r,
    };
    if let Err(r) = validate(&patch) {
        return r;
    }
    let dep = next_deployment(st);
    let status = match st.apps.get_mut(id) {
        Some(Value::Object(existing)) => {
            if partial {
                for (k, v) in patch {
                    existing.insert(k, v);
                }
            } else {
                *existing = patch;
                existing.insert("id".into(), json!(id));
            }
            StatusCode::OK
        }
        _ => {
            let mut app = patch;
            app.insert("id".into(), json!(id));
            st.apps.insert(id.to_owned(), Value::Object(app));
            StatusCode::CREATED
        }
    };
    deployment_result(status, &dep)
}
