//! A fake Marathon 1.x answering the `/v2` subset the client uses, with Marathon's real status
//! codes, headers and error bodies.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::{Log, Recorded, Server, base64, lock, serve};

/// The fake's state, open to tests.
#[derive(Debug, Default)]
pub(crate) struct MarathonState {
    /// App id → the object `GET /v2/apps/{id}` returns (AppInfo).
    pub(crate) apps: BTreeMap<String, Value>,
    /// App id → deployment id that locks it.
    pub(crate) locks: BTreeMap<String, String>,
    /// Expected `Authorization` header value, when auth is on.
    pub(crate) expected_auth: Option<String>,
    deployments: u64,
}

pub(crate) struct FakeMarathon {
    pub(crate) url: String,
    pub(crate) state: Arc<Mutex<MarathonState>>,
    pub(crate) log: Log,
    _server: Server,
}

#[derive(Clone)]
struct Shared {
    state: Arc<Mutex<MarathonState>>,
    log: Log,
}

impl FakeMarathon {
    pub(crate) async fn start() -> Self {
        Self::start_with(MarathonState::default()).await
    }

    /// With HTTP Basic auth required (`--http_credentials user:password`).
    pub(crate) async fn with_basic_auth(user: &str, password: &str) -> Self {
        let expected = format!("Basic {}", base64(format!("{user}:{password}").as_bytes()));
        Self::start_with(MarathonState {
            expected_auth: Some(expected),
            ..MarathonState::default()
        })
        .await
    }

    /// With a DC/OS token required.
    pub(crate) async fn with_token(token: &str) -> Self {
        Self::start_with(MarathonState {
            expected_auth: Some(format!("token={token}")),
            ..MarathonState::default()
        })
        .await
    }

    async fn start_with(state: MarathonState) -> Self {
        let shared = Shared {
            state: Arc::new(Mutex::new(state)),
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

    /// Stores an AppInfo object as is (as if Marathon had it).
    pub(crate) fn insert_app(&self, app: Value) {
        let id = app["id"].as_str().expect("app id").to_owned();
        lock(&self.state).apps.insert(id, app);
    }

    pub(crate) fn app(&self, id: &str) -> Option<Value> {
        lock(&self.state).apps.get(id).cloned()
    }

    pub(crate) fn lock_app(&self, id: &str, deployment: &str) {
        lock(&self.state)
            .locks
            .insert(id.to_owned(), deployment.to_owned());
    }

    pub(crate) fn requests(&self) -> Vec<Recorded> {
        lock(&self.log).clone()
    }

    pub(crate) fn last_request(&self) -> Recorded {
        self.requests().pop().expect("at least one request")
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
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

async fn handle(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    lock(&shared.log).push(Recorded::new(&method, &uri, &headers, &body));
    let mut st = lock(&shared.state);
    if let Some(expected) = &st.expected_auth {
        let got = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
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
    let force = uri
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "force=true"));
    let partial = !uri
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "partialUpdate=false"));
    let path = uri.path().trim_end_matches('/');
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();

    match (method.clone(), segments.as_slice()) {
        (Method::GET, ["v2", "info"]) => {
            json_response(StatusCode::OK, &super::fixture_json("marathon/info.json"))
        }
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
        (Method::POST, ["v2", "apps"]) => create(&mut st, &body),
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
            let dep = next_deployment(&mut st);
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
            update(&mut st, &id, &body, force, partial)
        }
        (Method::DELETE, ["v2", "apps", rest @ ..]) => {
            let id = format!("/{}", rest.join("/"));
            if let Some(dep) = st.locks.get(&id).filter(|_| !force) {
                return locked(dep);
            }
            if st.apps.remove(&id).is_none() {
                return message(StatusCode::NOT_FOUND, &format!("App '{id}' does not exist"));
            }
            let dep = next_deployment(&mut st);
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
            &super::fixture_json("marathon/error_invalid_422.json"),
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
        return json_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            &super::fixture_json("marathon/error_invalid_json_400.json"),
        );
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
