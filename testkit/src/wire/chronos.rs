//! A fake Chronos (2.x at `/scheduler`, or 3.x at `/v1/scheduler`) with Chronos' real answers:
//! 204 on upsert/start/delete/kill, 400 with a stack trace (3.x) or an empty body (2.x) on errors,
//! and the case-insensitive substring search with its default limit of 10.

use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use frameworks::{ChronosApiVersion, Schedule};
use serde_json::{Map, Value, json};

use super::{Emulator, Recorded, json_response, percent_decode};

/// The emulated Chronos' state, open to tests.
#[derive(Debug)]
pub struct ChronosState {
    /// The API it speaks (where it is mounted, how it reports errors).
    pub version: ChronosApiVersion,
    /// Jobs in insertion order (as Chronos' DAG iteration would give them).
    pub jobs: Vec<Map<String, Value>>,
    /// Names of jobs started with `PUT job/{name}`.
    pub started: Vec<String>,
    /// Names whose tasks were killed.
    pub killed: Vec<String>,
}

/// A Chronos on a loopback port.
pub type ChronosServer = Emulator<ChronosState>;

impl Emulator<ChronosState> {
    /// A Chronos of API `version`, without jobs.
    pub async fn start(version: ChronosApiVersion) -> Self {
        let state = ChronosState {
            version,
            jobs: Vec::new(),
            started: Vec::new(),
            killed: Vec::new(),
        };
        Self::serve(state, handle).await
    }

    /// Stores a job object as is (as if Chronos had it).
    pub fn insert_job(&self, job: Value) {
        let Value::Object(map) = job else {
            panic!("job must be an object")
        };
        self.state().jobs.push(map);
    }

    /// The job named `name`.
    #[must_use]
    pub fn job(&self, name: &str) -> Option<Value> {
        self.state()
            .jobs
            .iter()
            .find(|j| j.get("name").and_then(Value::as_str) == Some(name))
            .cloned()
            .map(Value::Object)
    }
}

/// Chronos' answer to an `IllegalArgumentException` from `require(...)`: 3.x sends an
/// `ApiResult` with the stack trace, 2.x the bare exception message as the entity.
fn bad_request(version: ChronosApiVersion, message: &str) -> Response {
    match version {
        ChronosApiVersion::V3 => json_response(
            StatusCode::BAD_REQUEST,
            &json!({
                "status": "Bad Request",
                "message": format!("java.lang.IllegalArgumentException: requirement failed: {message}\n\tat scala.Predef$.require(Predef.scala:224)\n\tat org.apache.mesos.chronos.scheduler.api.JobManagementResource.trigger(JobManagementResource.scala:161)\n")
            }),
        ),
        ChronosApiVersion::V2 => (
            StatusCode::BAD_REQUEST,
            format!("requirement failed: {message}"),
        )
            .into_response(),
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Long on purpose: the emulated routes, one arm each, as the API reference lists them.
fn handle(st: &mut ChronosState, req: &Recorded) -> Response {
    let (method, body) = (req.method.clone(), &req.body);
    let version = st.version;
    let prefix = match version {
        ChronosApiVersion::V2 => "/scheduler/",
        ChronosApiVersion::V3 => "/v1/scheduler/",
    };
    let Some(rest) = req.path.strip_prefix(prefix) else {
        // Jetty's 404 page for paths outside the Jersey mount.
        return (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/html")],
            "<html><body><h2>HTTP ERROR 404</h2></body></html>",
        )
            .into_response();
    };
    let segments: Vec<String> = rest
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let find = |st: &ChronosState, name: &str| {
        st.jobs
            .iter()
            .position(|j| j.get("name").and_then(Value::as_str) == Some(name))
    };

    match (method, segments.as_slice()) {
        (Method::GET, ["jobs"]) => {
            // `GET /jobs` mirrors fetch into uris (and back) "for compatibility".
            let jobs: Vec<Value> = st
                .jobs
                .iter()
                .map(|j| {
                    let mut j = j.clone();
                    if let Some(fetch) = j
                        .get("fetch")
                        .and_then(Value::as_array)
                        .filter(|f| !f.is_empty())
                    {
                        let uris: Vec<Value> =
                            fetch.iter().filter_map(|f| f.get("uri").cloned()).collect();
                        j.insert("uris".into(), Value::Array(uris));
                    }
                    Value::Object(j)
                })
                .collect();
            json_response(StatusCode::OK, &Value::Array(jobs))
        }
        (Method::GET, ["jobs", "search"]) => {
            let name = req.param("name").unwrap_or_default().to_lowercase();
            let limit: usize = req
                .param("limit")
                .and_then(|l| l.parse().ok())
                .unwrap_or(10);
            let offset: usize = req
                .param("offset")
                .and_then(|o| o.parse().ok())
                .unwrap_or(0);
            let hits: Vec<Value> = st
                .jobs
                .iter()
                .filter(|j| {
                    name.is_empty()
                        || j.get("name")
                            .and_then(Value::as_str)
                            .is_some_and(|n| n.to_lowercase().contains(&name))
                })
                .skip(offset)
                .take(limit)
                .cloned()
                .map(Value::Object)
                .collect();
            json_response(StatusCode::OK, &Value::Array(hits))
        }
        (Method::POST, [kind @ ("iso8601" | "dependency")]) => {
            let Ok(Value::Object(mut job)) = serde_json::from_slice::<Value>(body) else {
                return bad_request(version, "could not parse the job");
            };
            let name = job
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            if !valid_name(&name) {
                return bad_request(
                    version,
                    "the job's name is invalid. Allowed names: '([\\w\\.-]+)'",
                );
            }
            if *kind == "iso8601" {
                let schedule = job.get("schedule").and_then(Value::as_str).unwrap_or("");
                if Schedule::parse(schedule).is_err() {
                    return match version {
                        ChronosApiVersion::V2 => StatusCode::BAD_REQUEST.into_response(),
                        ChronosApiVersion::V3 => json_response(
                            StatusCode::BAD_REQUEST,
                            &json!({"status": "Bad Request", "message": format!("Cannot parse schedule '{schedule}' (wtf bro)")}),
                        ),
                    };
                }
            } else if !job.get("parents").is_some_and(Value::is_array) {
                return bad_request(version, "dependent jobs need parents");
            }
            let non_empty = |k: &str| {
                job.get(k)
                    .and_then(Value::as_array)
                    .is_some_and(|a| !a.is_empty())
            };
            if non_empty("uris") && non_empty("fetch") {
                return json_response(
                    StatusCode::BAD_REQUEST,
                    &json!({"status": "Bad Request", "message": format!("Tried to add both uri (deprecated) and fetch parameters on {name}")}),
                );
            }
            // Chronos persists only the fields it knows.
            job.remove("qos");
            if version == ChronosApiVersion::V3 {
                job.remove("async");
                job.remove("epsilon");
            }
            match find(st, &name) {
                Some(i) => st.jobs[i] = job,
                None => st.jobs.push(job),
            }
            StatusCode::NO_CONTENT.into_response()
        }
        (Method::PUT, ["job", name]) => {
            if find(st, name).is_none() {
                return bad_request(version, &format!("Job '{name}' not found"));
            }
            st.started.push((*name).to_owned());
            StatusCode::NO_CONTENT.into_response()
        }
        (Method::DELETE, ["job", name]) => match find(st, name) {
            Some(i) => {
                st.jobs.remove(i);
                StatusCode::NO_CONTENT.into_response()
            }
            None => bad_request(version, &format!("JobSchedule '{name}' not found")),
        },
        (Method::DELETE, ["task", "kill", name]) => {
            if find(st, name).is_none() {
                return bad_request(version, &format!("JobSchedule '{name}' not found"));
            }
            st.killed.push((*name).to_owned());
            StatusCode::NO_CONTENT.into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}
