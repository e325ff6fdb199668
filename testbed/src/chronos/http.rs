//! Chronos' routes: job upserts (`/iso8601`, `/dependency`), reads (`/jobs`, `/jobs/search`,
//! `/jobs/summary`, `/job/{name}`, `/graph/csv`), on-demand runs, deletion and task kills, each
//! answering as the version its prefix speaks.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use chrono::Utc;
use serde_json::{Value, json};

use super::iso8601::Generation;
use super::{CState, Chronos, Run, job};
use crate::config::ChronosVersion;

/// A route's state: the emulator and the generation its prefix speaks.
type C = State<(Arc<Chronos>, Generation)>;

/// Chronos' routes: `/scheduler` (2.5.1) and/or `/v1/scheduler` (3.x), as configured.
pub(crate) fn router(c: &Arc<Chronos>) -> Router {
    let api = |g: Generation| {
        let iso = match g {
            // 3.x "ditched PUT" on /iso8601 (chronos-python); 2.5.1 takes both.
            Generation::V2 => post(post_iso).put(post_iso),
            Generation::V3 => post(post_iso),
        };
        let job = match g {
            // 2.5.1 has no GET /job/{name} (405, as Jersey answers for the other methods).
            Generation::V2 => axum::routing::put(start_job).delete(delete_job),
            Generation::V3 => get(get_job).put(start_job).delete(delete_job),
        };
        Router::new()
            .route("/iso8601", iso)
            .route("/dependency", post(post_dep).put(post_dep))
            .route("/jobs", get(list_jobs))
            .route("/jobs/search", get(search_jobs))
            .route("/jobs/summary", get(summary))
            .route("/job/{name}", job)
            .route("/task/kill/{name}", delete(kill_tasks))
            .route("/graph/csv", get(graph_csv))
            .with_state((Arc::clone(c), g))
    };
    let version = c.cluster.cfg.chronos_version;
    let mut r = Router::new();
    if matches!(version, ChronosVersion::V2 | ChronosVersion::Both) {
        r = r.nest("/scheduler", api(Generation::V2));
    }
    if matches!(version, ChronosVersion::V3 | ChronosVersion::Both) {
        r = r.nest("/v1/scheduler", api(Generation::V3));
    }
    r
}

/// A 400 as `generation` writes it: 2.5.1 the plain message (or nothing), 3.x an `ApiResult`.
fn bad_request(generation: Generation, message: &str) -> Response {
    error(generation, StatusCode::BAD_REQUEST, message)
}

/// An error as `generation` writes it: 2.5.1 the plain message, 3.x an `ApiResult`
/// (`{"status": <reason phrase>, "message"}`).
fn error(generation: Generation, status: StatusCode, message: &str) -> Response {
    match generation {
        Generation::V2 => (status, message.to_owned()).into_response(),
        Generation::V3 => (
            status,
            axum::Json(json!({
                "status": status.canonical_reason().unwrap_or_default(),
                "message": message,
            })),
        )
            .into_response(),
    }
}

fn refused(generation: Generation, r: &job::Refusal) -> Response {
    match (generation, r) {
        (
            Generation::V2,
            job::Refusal::Check {
                empty_in_v2: true, ..
            },
        ) => StatusCode::BAD_REQUEST.into_response(),
        (
            Generation::V3,
            job::Refusal::Check {
                message,
                stack_trace_in_v3: true,
                ..
            },
        ) => bad_request(
            generation,
            &format!(
                "java.lang.IllegalArgumentException: {message}\n\tat \
                 scala.Predef$.require(Predef.scala:224)\n\tat \
                 org.apache.mesos.chronos.scheduler.api.Iso8601JobResource.post(Iso8601JobResource.scala:39)\n"
            ),
        ),
        (g, r) => bad_request(g, r.message()),
    }
}

fn job_not_found(generation: Generation, name: &str) -> Response {
    bad_request(
        generation,
        &format!("requirement failed: Job '{name}' not found"),
    )
}

async fn upsert(c: &Chronos, generation: Generation, body: &[u8], dependent: bool) -> Response {
    let body: Value = match crate::formats::json_body(body) {
        Ok(b) => b,
        Err(e) => {
            return bad_request(
                generation,
                &format!("com.fasterxml.jackson.core.JsonParseException: {e}"),
            );
        }
    };
    let existing = body
        .get("name")
        .and_then(Value::as_str)
        .is_some_and(|n| c.lock().jobs.contains_key(n));
    let def = match job::parse(
        &body,
        &c.cluster.cfg,
        dependent,
        generation,
        existing,
        Utc::now(),
    ) {
        Ok(d) => d,
        Err(e) => return refused(generation, &e),
    };
    if let Err(e) = c.upsert(def) {
        return bad_request(generation, &e);
    }
    c.bump();
    StatusCode::NO_CONTENT.into_response()
}

async fn post_iso(State((c, g)): C, body: Result<Bytes, BytesRejection>) -> Response {
    match body {
        Ok(b) => upsert(&c, g, &b, false).await,
        Err(e) => error(g, e.status(), &e.body_text()),
    }
}

async fn post_dep(State((c, g)): C, body: Result<Bytes, BytesRejection>) -> Response {
    match body {
        Ok(b) => upsert(&c, g, &b, true).await,
        Err(e) => error(g, e.status(), &e.body_text()),
    }
}

fn jobs_json(st: &CState, g: Generation) -> Vec<Value> {
    st.jobs
        .values()
        .map(|j| job::render(&j.def.map, g))
        .collect()
}

async fn list_jobs(State((c, g)): C) -> Response {
    let st = c.lock();
    axum::Json(Value::Array(jobs_json(&st, g))).into_response()
}

async fn search_jobs(State((c, g)): C, Query(q): Query<HashMap<String, String>>) -> Response {
    let lower = |k: &str| q.get(k).map(|v| v.to_lowercase());
    let (name, command, any) = (lower("name"), lower("command"), lower("any"));
    let limit = q
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(10usize);
    let offset = q
        .get("offset")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0usize);
    let st = c.lock();
    let found: Vec<Value> = st
        .jobs
        .values()
        .filter(|j| {
            let jn = j.def.map["name"].as_str().unwrap_or("").to_lowercase();
            let jc = j.def.map["command"].as_str().unwrap_or("").to_lowercase();
            name.as_ref().is_none_or(|n| jn.contains(n))
                && command.as_ref().is_none_or(|n| jc.contains(n))
                && any
                    .as_ref()
                    .is_none_or(|n| jn.contains(n) || jc.contains(n))
        })
        .skip(offset)
        .take(limit)
        .map(|j| job::render(&j.def.map, g))
        .collect();
    axum::Json(Value::Array(found)).into_response()
}

async fn summary(State((c, _)): C) -> Response {
    let st = c.lock();
    let jobs: Vec<Value> = st
        .jobs
        .iter()
        .map(|(name, j)| {
            let m = &j.def.map;
            let status = match (m["lastSuccess"].as_str(), m["lastError"].as_str()) {
                (Some(s), Some(e)) if !s.is_empty() && s >= e => "success",
                (_, Some(e)) if !e.is_empty() => "failure",
                (Some(s), _) if !s.is_empty() => "success",
                _ => "fresh",
            };
            let state = match (j.running.len(), j.queue.is_empty()) {
                (0, true) => "idle".to_owned(),
                (0, false) => "queued".to_owned(),
                (1, _) => "running".to_owned(),
                (n, _) => format!("{n} running"),
            };
            json!({"name": name, "status": status, "state": state,
                "schedule": m.get("schedule").cloned().unwrap_or(json!("")),
                "parents": m.get("parents").cloned().unwrap_or(json!([])),
                "disabled": m["disabled"]})
        })
        .collect();
    axum::Json(json!({ "jobs": jobs })).into_response()
}

async fn get_job(State((c, g)): C, Path(name): Path<String>) -> Response {
    let st = c.lock();
    match st.jobs.get(&name) {
        Some(j) => axum::Json(job::render(&j.def.map, g)).into_response(),
        None => job_not_found(g, &name),
    }
}

async fn start_job(
    State((c, g)): C,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    {
        let mut st = c.lock();
        let Some(job) = st.jobs.get_mut(&name) else {
            return job_not_found(g, &name);
        };
        let shell = job
            .def
            .map
            .get("shell")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let arguments = if shell {
            String::new()
        } else {
            q.get("arguments").cloned().unwrap_or_default()
        };
        job.queue
            .push_back(Run::new(Utc::now().timestamp_millis(), arguments));
    }
    c.bump();
    StatusCode::NO_CONTENT.into_response()
}

async fn delete_job(State((c, g)): C, Path(name): Path<String>) -> Response {
    let running: Vec<String> = {
        let mut st = c.lock();
        let Some(job) = st.jobs.remove(&name) else {
            return job_not_found(g, &name);
        };
        // Children lose this parent; a child left without parents becomes a one-off job.
        for j in st.jobs.values_mut() {
            if j.def.parents.contains(&name) {
                j.def.parents.retain(|p| *p != name);
                j.def.map.insert("parents".into(), json!(j.def.parents));
                j.parents_done.remove(&name);
            }
        }
        job.running.into_keys().collect()
    };
    if g == Generation::V3 {
        // 3.x: `deregisterJob` ends with `taskManager.cancelMesosTasks(job)`.
        for id in running {
            c.kill_task(&id, None);
        }
    }
    c.bump();
    StatusCode::NO_CONTENT.into_response()
}

async fn kill_tasks(State((c, g)): C, Path(name): Path<String>) -> Response {
    let ids: Vec<String> = {
        let st = c.lock();
        let Some(job) = st.jobs.get(&name) else {
            return job_not_found(g, &name);
        };
        job.running.keys().cloned().collect()
    };
    for id in ids {
        c.kill_task(&id, None);
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn graph_csv(State((c, _)): C) -> Response {
    let st = c.lock();
    let mut out = String::new();
    for (name, j) in &st.jobs {
        let m = &j.def.map;
        let last = if m["lastError"].as_str().is_some_and(|e| !e.is_empty())
            && m["lastError"].as_str() > m["lastSuccess"].as_str()
        {
            "failure"
        } else if m["lastSuccess"].as_str().is_some_and(|s| !s.is_empty()) {
            "success"
        } else {
            "fresh"
        };
        let state = if j.running.is_empty() {
            if j.queue.is_empty() { "idle" } else { "queued" }
        } else {
            "running"
        };
        out.push_str(&format!("node,{name},{last},{state}\n"));
        for p in &j.def.parents {
            out.push_str(&format!("link,{p},{name}\n"));
        }
    }
    out.into_response()
}
