//! The Marathon routes.

// Handlers return early with a ready `Response` as their error; boxing it buys nothing here.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::Utc;
use serde_json::{Map, Value, json};

use super::app::{self, Invalid};
use super::{Action, AppRec, Deployment, MState, Marathon};
use crate::formats::{iso_millis, uuid_v4};

type M = State<Arc<Marathon>>;
type Q = Query<HashMap<String, String>>;

/// Marathon's routes.
pub(crate) fn router(m: Arc<Marathon>) -> Router {
    Router::new()
        .route("/ping", get(|| async { "pong" }))
        .route("/v2/info", get(info))
        .route("/v2/leader", get(leader))
        .route("/v2/apps", get(list_apps).post(create_app))
        .route(
            "/v2/apps/{*rest}",
            get(get_rest)
                .put(put_rest)
                .patch(put_rest)
                .delete(delete_rest)
                .post(post_rest),
        )
        .route("/v2/tasks", get(list_tasks))
        .route("/v2/deployments", get(list_deployments))
        .route(
            "/v2/deployments/{id}",
            axum::routing::delete(delete_deployment),
        )
        .route("/v2/queue", get(queue))
        .with_state(m)
}

fn reply(status: StatusCode, body: &Value, deployment: Option<&str>) -> Response {
    let mut r = (status, axum::Json(body.clone())).into_response();
    if let Some(d) = deployment.and_then(|d| HeaderValue::from_str(d).ok()) {
        r.headers_mut().insert("Marathon-Deployment-Id", d);
    }
    r
}

fn message(status: StatusCode, msg: &str) -> Response {
    reply(status, &json!({ "message": msg }), None)
}

fn not_found(id: &str) -> Response {
    message(StatusCode::NOT_FOUND, &format!("App '{id}' does not exist"))
}

fn invalid(e: &Invalid) -> Response {
    reply(StatusCode::UNPROCESSABLE_ENTITY, &e.body(), None)
}

/// The app exists and no deployment holds it (or `force` overrides): 404 or 409 otherwise.
fn unlocked(st: &MState, id: &str, force: bool) -> Result<(), Response> {
    let Some(app) = st.apps.get(id).filter(|a| !a.deleted) else {
        return Err(not_found(id));
    };
    match app.deployment.clone().filter(|_| !force) {
        Some(d) => Err(locked(&[d])),
        None => Ok(()),
    }
}

fn locked(deployments: &[String]) -> Response {
    let first = deployments.first().cloned().unwrap_or_default();
    reply(
        StatusCode::CONFLICT,
        &json!({
            "message": format!("App is locked by one or more deployments. Override with the option '?force=true'. View details at '/v2/deployments/{first}'."),
            "deployments": deployments.iter().map(|d| json!({"id": d})).collect::<Vec<_>>(),
        }),
        None,
    )
}

/// The request's body read as JSON; a body that did not arrive (in full within its deadline, or
/// within the size bound) answered as Marathon answers errors, `{"message"}`.
fn parse_body(body: Result<Bytes, BytesRejection>) -> Result<Value, Response> {
    let body = body.map_err(|e| message(e.status(), &e.body_text()))?;
    crate::formats::json_body(&body).map_err(|e| {
        reply(
            StatusCode::BAD_REQUEST,
            &json!({"message": "Invalid JSON", "details": e.to_string()}),
            None,
        )
    })
}

fn flag(q: &HashMap<String, String>, name: &str, default: bool) -> bool {
    q.get(name)
        .map_or(default, |v| v.eq_ignore_ascii_case("true"))
}

async fn info(State(m): M) -> Response {
    reply(
        StatusCode::OK,
        &json!({
            "name": "marathon", "version": "1.10.26", "buildref": "qos-testbed",
            "elected": true, "leader": m.base.trim_start_matches("http://"),
            "frameworkId": m.framework_id,
            "marathon_config": {"master": "qos-testbed", "mesos_role": "*", "task_launch_timeout": 300_000,
                "local_port_min": 10_000, "local_port_max": 20_000},
            "zookeeper_config": {"zk": "zk://qos-testbed/marathon"},
            "http_config": {"http_port": m.base.rsplit(':').next().and_then(|p| p.parse::<u16>().ok())},
            "qos_testbed": {"cpu_limits_enforced": m.cluster.limits_enforced()},
        }),
        None,
    )
}

async fn leader(State(m): M) -> Response {
    reply(
        StatusCode::OK,
        &json!({"leader": m.base.trim_start_matches("http://")}),
        None,
    )
}

async fn list_apps(State(m): M, Query(q): Q) -> Response {
    let embed = q.get("embed").is_some_and(|e| e.contains("tasks"));
    let st = m.lock();
    let apps: Vec<Value> = st
        .apps
        .keys()
        .filter_map(|id| m.app_info(&st, id, embed))
        .collect();
    reply(StatusCode::OK, &json!({ "apps": apps }), None)
}

/// A new version of app `id` (a timestamp to the millisecond, as Marathon's): never the same as
/// or before the app's last one, though two changes come within the same millisecond.
fn new_version(st: &MState, id: &str) -> String {
    next_version(st.apps.get(id).map(|a| a.version.as_str()), Utc::now())
}

/// `now` to the millisecond, or 1 ms past `last` when that is not before it.
fn next_version(last: Option<&str>, now: chrono::DateTime<Utc>) -> String {
    let after = last
        .and_then(|l| chrono::DateTime::parse_from_rfc3339(l).ok())
        .map(|l| l.with_timezone(&Utc) + chrono::TimeDelta::milliseconds(1));
    iso_millis(after.filter(|a| *a > now).unwrap_or(now))
}

/// Registers a new app and its deployment; returns the deployment id.
fn insert_app(m: &Arc<Marathon>, st: &mut MState, def: Map<String, Value>) -> (String, String) {
    let id = def["id"].as_str().unwrap_or_default().to_owned();
    let version = new_version(st, &id);
    let dep = uuid_v4();
    st.deployments.insert(
        dep.clone(),
        Deployment {
            id: dep.clone(),
            version: version.clone(),
            app: id.clone(),
            action: Action::Start,
        },
    );
    st.apps.insert(
        id.clone(),
        AppRec {
            def,
            version: version.clone(),
            config_version: version.clone(),
            last_scaling_at: version.clone(),
            versions: vec![version.clone()],
            tasks: Default::default(),
            queued: 0,
            queued_since: None,
            backoff: None,
            last_task_failure: None,
            deployment: Some(dep.clone()),
            deleted: false,
        },
    );
    m.spawn_controller(id);
    (dep, version)
}

async fn create_app(State(m): M, body: Result<Bytes, BytesRejection>) -> Response {
    let body = match parse_body(body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let def = match app::normalize(&body, None) {
        Ok(d) => d,
        Err(e) => return invalid(&e),
    };
    let id = def["id"].as_str().unwrap_or_default().to_owned();
    let resp = {
        let mut st = m.lock();
        if let Some(existing) = st.apps.get(&id) {
            if existing.deleted {
                return locked(&existing.deployment.iter().cloned().collect::<Vec<_>>());
            }
            return message(
                StatusCode::CONFLICT,
                &format!("An app with id [{id}] already exists."),
            );
        }
        let (dep, _) = insert_app(&m, &mut st, def);
        let info = m.app_info(&st, &id, false).unwrap_or_default();
        let mut r = reply(StatusCode::CREATED, &info, Some(&dep));
        if let Ok(loc) = HeaderValue::from_str(&format!("{}/v2/apps{id}", m.base)) {
            r.headers_mut().insert(header::LOCATION, loc);
        }
        r
    };
    m.bump();
    resp
}

enum Target {
    App(String),
    Group(String),
    Tasks(String),
    Task(String, String),
    Versions(String),
    Restart(String),
}

fn target(rest: &str) -> Result<Target, Response> {
    let rest = rest.trim_end_matches('/');
    let canon = |s: &str| {
        app::canonical_id(s).map_err(|p| {
            reply(
                StatusCode::UNPROCESSABLE_ENTITY,
                &json!({"message": "Object is not valid", "details": [{"path": p.path, "errors": [p.error]}]}),
                None,
            )
        })
    };
    if let Some(g) = rest
        .strip_suffix("/*")
        .or_else(|| (rest == "*").then_some(""))
    {
        return Ok(Target::Group(format!("/{}", g.trim_matches('/'))));
    }
    if let Some((app, task)) = rest.split_once("/tasks/") {
        return Ok(Target::Task(canon(app)?, task.to_owned()));
    }
    for (suffix, f) in [
        ("/tasks", Target::Tasks as fn(String) -> Target),
        ("/versions", Target::Versions),
        ("/restart", Target::Restart),
    ] {
        if let Some(app) = rest.strip_suffix(suffix) {
            return Ok(f(canon(app)?));
        }
    }
    Ok(Target::App(canon(rest)?))
}

async fn get_rest(State(m): M, Path(rest): Path<String>) -> Response {
    let t = match target(&rest) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let st = m.lock();
    match t {
        Target::App(id) => match m.app_info(&st, &id, true) {
            Some(info) => reply(StatusCode::OK, &json!({ "app": info }), None),
            None => not_found(&id),
        },
        Target::Group(g) => {
            let prefix = if g == "/" {
                "/".to_owned()
            } else {
                format!("{g}/")
            };
            let apps: Vec<Value> = st
                .apps
                .keys()
                .filter(|id| id.starts_with(&prefix))
                .filter_map(|id| m.app_info(&st, id, true))
                .collect();
            reply(StatusCode::OK, &json!({ "*": apps }), None)
        }
        Target::Tasks(id) => match st.apps.get(&id).filter(|a| !a.deleted) {
            Some(a) => {
                let tasks: Vec<Value> = a
                    .tasks
                    .values()
                    .filter(|t| t.placement.is_some())
                    .map(|t| Marathon::task_json(&id, t))
                    .collect();
                reply(StatusCode::OK, &json!({ "tasks": tasks }), None)
            }
            None => not_found(&id),
        },
        Target::Versions(id) => match st.apps.get(&id).filter(|a| !a.deleted) {
            Some(a) => {
                let mut v = a.versions.clone();
                v.reverse();
                reply(StatusCode::OK, &json!({ "versions": v }), None)
            }
            None => not_found(&id),
        },
        Target::Task(id, _) | Target::Restart(id) => message(
            StatusCode::METHOD_NOT_ALLOWED,
            &format!("GET is not supported for {id}"),
        ),
    }
}

/// Drops stored fields that would conflict with their replacement in a partial update.
fn merge_partial(current: &Map<String, Value>, patch: &Map<String, Value>) -> Map<String, Value> {
    let mut merged = current.clone();
    let pairs = [("ports", "portDefinitions"), ("uris", "fetch")];
    for (a, b) in pairs {
        if patch.contains_key(a) && !patch.contains_key(b) {
            merged.shift_remove(b);
        }
        if patch.contains_key(b) && !patch.contains_key(a) {
            merged.shift_remove(a);
        }
    }
    let legacy_net = patch
        .get("container")
        .and_then(|c| c.get("docker"))
        .and_then(|d| d.get("network"))
        .is_some();
    if legacy_net && !patch.contains_key("networks") {
        merged.shift_remove("networks");
    }
    for (k, v) in patch {
        if k != "id" && k != "version" {
            merged.insert(k.clone(), v.clone());
        }
    }
    merged
}

fn deployment_reply(status: StatusCode, dep: &str, version: &str) -> Response {
    reply(
        status,
        &json!({"deploymentId": dep, "version": version}),
        Some(dep),
    )
}

/// Starts a deployment of `action` on an existing app (cancelling a forced-over one).
fn start_deployment(st: &mut MState, id: &str, action: Action, version: &str) -> String {
    let dep = uuid_v4();
    if let Some(app) = st.apps.get_mut(id) {
        if let Some(old) = app.deployment.replace(dep.clone()) {
            st.deployments.remove(&old);
        }
    }
    st.deployments.insert(
        dep.clone(),
        Deployment {
            id: dep.clone(),
            version: version.to_owned(),
            app: id.to_owned(),
            action,
        },
    );
    dep
}

async fn put_rest(
    State(m): M,
    Path(rest): Path<String>,
    Query(q): Q,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let id = match target(&rest) {
        Ok(Target::App(id)) => id,
        Ok(_) => {
            return message(StatusCode::METHOD_NOT_ALLOWED, "PUT is not supported here");
        }
        Err(r) => return r,
    };
    let body = match parse_body(body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(patch) = body.as_object() else {
        return invalid(&Invalid {
            json: true,
            problems: vec![app::Problem {
                path: String::new(),
                error: "error.expected.jsobject".to_owned(),
            }],
        });
    };
    let force = flag(&q, "force", false);
    let partial = flag(&q, "partialUpdate", true);
    let resp = {
        let mut st = m.lock();
        let existing = st
            .apps
            .get(&id)
            .map(|a| (a.deleted, a.deployment.clone(), a.def.clone()));
        match existing {
            None => {
                let def = match app::normalize(&body, Some(&id)) {
                    Ok(d) => d,
                    Err(e) => return invalid(&e),
                };
                let (dep, version) = insert_app(&m, &mut st, def);
                deployment_reply(StatusCode::CREATED, &dep, &version)
            }
            Some((deleted, dep, current)) => {
                if let Some(d) = dep.filter(|_| !force || deleted) {
                    return locked(&[d]);
                }
                let merged = if partial {
                    Value::Object(merge_partial(&current, patch))
                } else {
                    body.clone()
                };
                let def = match app::normalize(&merged, Some(&id)) {
                    Ok(d) => d,
                    Err(e) => return invalid(&e),
                };
                let version = new_version(&st, &id);
                let upgrade = app::is_upgrade(&current, &def);
                let action = if upgrade {
                    Action::Restart
                } else {
                    Action::Scale
                };
                let dep = start_deployment(&mut st, &id, action, &version);
                if let Some(a) = st.apps.get_mut(&id) {
                    a.version.clone_from(&version);
                    a.add_version(version.clone());
                    if upgrade {
                        a.config_version.clone_from(&version);
                        a.backoff = None;
                    } else {
                        a.last_scaling_at.clone_from(&version);
                    }
                    a.def = def;
                }
                deployment_reply(StatusCode::OK, &dep, &version)
            }
        }
    };
    m.bump();
    resp
}

async fn delete_rest(State(m): M, Path(rest): Path<String>, Query(q): Q) -> Response {
    let force = flag(&q, "force", false);
    let t = match target(&rest) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let resp = {
        let mut st = m.lock();
        match t {
            Target::App(id) | Target::Restart(id) => {
                if let Err(r) = unlocked(&st, &id, force) {
                    return r;
                }
                let version = new_version(&st, &id);
                let dep = start_deployment(&mut st, &id, Action::Stop, &version);
                if let Some(a) = st.apps.get_mut(&id) {
                    a.deleted = true;
                }
                deployment_reply(StatusCode::OK, &dep, &version)
            }
            Target::Task(id, task_id) => {
                let scale = flag(&q, "scale", false);
                let Some(app) = st.apps.get_mut(&id).filter(|a| !a.deleted) else {
                    return not_found(&id);
                };
                let Some(t) = app.tasks.get_mut(&task_id) else {
                    return message(
                        StatusCode::NOT_FOUND,
                        &format!("Task '{task_id}' does not exist"),
                    );
                };
                t.kill_requested = true;
                let task = Marathon::task_json(&id, t);
                m.kill_task(&task_id, app.kill_grace());
                if scale {
                    let n = app
                        .def
                        .get("instances")
                        .and_then(Value::as_u64)
                        .unwrap_or(1);
                    app.def
                        .insert("instances".into(), json!(n.saturating_sub(1)));
                    let version = next_version(Some(&app.version), Utc::now());
                    app.version.clone_from(&version);
                    app.last_scaling_at.clone_from(&version);
                    let dep = start_deployment(&mut st, &id, Action::Scale, &version);
                    deployment_reply(StatusCode::OK, &dep, &version)
                } else {
                    reply(StatusCode::OK, &json!({ "task": task }), None)
                }
            }
            _ => message(
                StatusCode::METHOD_NOT_ALLOWED,
                "DELETE is not supported here",
            ),
        }
    };
    m.bump();
    resp
}

async fn post_rest(State(m): M, Path(rest): Path<String>, Query(q): Q) -> Response {
    let force = flag(&q, "force", false);
    let id = match target(&rest) {
        Ok(Target::Restart(id)) => id,
        Ok(_) => return message(StatusCode::METHOD_NOT_ALLOWED, "POST is not supported here"),
        Err(r) => return r,
    };
    let resp = {
        let mut st = m.lock();
        if let Err(r) = unlocked(&st, &id, force) {
            return r;
        }
        let version = new_version(&st, &id);
        let dep = start_deployment(&mut st, &id, Action::Restart, &version);
        if let Some(a) = st.apps.get_mut(&id) {
            a.version.clone_from(&version);
            a.config_version.clone_from(&version);
            a.add_version(version.clone());
            a.backoff = None;
        }
        deployment_reply(StatusCode::OK, &dep, &version)
    };
    m.bump();
    resp
}

async fn list_tasks(State(m): M, Query(q): Q) -> Response {
    let only_running = q.get("status").is_some_and(|s| s == "running");
    let st = m.lock();
    let tasks: Vec<Value> = st
        .apps
        .iter()
        .filter(|(_, a)| !a.deleted)
        .flat_map(|(id, a)| {
            a.tasks
                .values()
                .filter(|t| t.placement.is_some())
                .filter(|t| !only_running || t.state == crate::task::TaskState::Running)
                .map(|t| Marathon::task_json(id, t))
        })
        .collect();
    reply(StatusCode::OK, &json!({ "tasks": tasks }), None)
}

/// The launch queue: one entry per app with instances waiting for room, its `count` and the
/// launch back-off's `delay` (`timeLeftSeconds`, `overdue` once it has passed).
async fn queue(State(m): M) -> Response {
    let st = m.lock();
    let now = tokio::time::Instant::now();
    let queue: Vec<Value> = st
        .apps
        .iter()
        .filter(|(_, a)| !a.deleted && a.queued > 0)
        .map(|(_, a)| {
            let left = a.backoff.map_or(0.0, |b| {
                b.until.saturating_duration_since(now).as_secs_f64()
            });
            let mut app = a.def.clone();
            app.insert("version".into(), json!(a.version));
            json!({
                "count": a.queued,
                "delay": {"timeLeftSeconds": left.ceil() as u64, "overdue": left == 0.0},
                "since": a.queued_since,
                "app": app,
            })
        })
        .collect();
    reply(StatusCode::OK, &json!({ "queue": queue }), None)
}

async fn list_deployments(State(m): M) -> Response {
    let st = m.lock();
    let list: Vec<Value> = st
        .deployments
        .values()
        .map(Marathon::deployment_json)
        .collect();
    reply(StatusCode::OK, &Value::Array(list), None)
}

async fn delete_deployment(State(m): M, Path(id): Path<String>, Query(q): Q) -> Response {
    let force = flag(&q, "force", false);
    let resp = {
        let mut st = m.lock();
        let Some(d) = st.deployments.remove(&id) else {
            return message(
                StatusCode::NOT_FOUND,
                &format!("DeploymentPlan {id} does not exist"),
            );
        };
        if let Some(a) = st.apps.get_mut(&d.app) {
            if a.deployment.as_deref() == Some(id.as_str()) {
                a.deployment = None;
            }
        }
        if force {
            StatusCode::ACCEPTED.into_response()
        } else {
            let version = new_version(&st, &d.app);
            deployment_reply(StatusCode::OK, &uuid_v4(), &version)
        }
    };
    m.bump();
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_made_within_one_millisecond_differ_and_increase() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-01-02T03:04:05.678Z")
            .unwrap()
            .with_timezone(&Utc);
        let first = next_version(None, now);
        assert_eq!(first, "2026-01-02T03:04:05.678Z");
        let second = next_version(Some(&first), now);
        let third = next_version(Some(&second), now);
        assert_eq!(
            [second.as_str(), third.as_str()],
            ["2026-01-02T03:04:05.679Z", "2026-01-02T03:04:05.680Z"]
        );
        // A clock that went back does not take a version back either.
        let earlier = now - chrono::TimeDelta::seconds(5);
        assert_eq!(
            next_version(Some(&third), earlier),
            "2026-01-02T03:04:05.681Z"
        );
        // Time moving on is used as it is.
        let later = now + chrono::TimeDelta::seconds(1);
        assert_eq!(
            next_version(Some(&third), later),
            "2026-01-02T03:04:06.678Z"
        );
    }
}
