//! Marathon's JSON, read tolerantly.
//!
//! An app is kept as the whole JSON object ([`MarathonApp`]) so that GET → change `cpus` → PUT
//! sends back every field, including ones this crate has never heard of. Smaller read-only shapes
//! (tasks, deployments) are typed structs that keep unknown keys in `extra`.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::FrameworkError;
use crate::lenient;

/// Keys Marathon adds to an app in `GET /v2/apps/{id}` (AppInfo embeds and server bookkeeping)
/// that are not part of an app definition. [`MarathonApp::update_body`] removes them before a PUT.
///
/// Why these and no others: the 1.4 thesis code also stripped `labels`, `user`, `secrets`,
/// `killSelection`, `unreachableStrategy`, `readinessChecks`, `gpus`, `residency`, `storeUrls`,
/// `ports` and `uris`. The first six are real, writable app fields (Marathon's RAML `App` type and
/// the 1.4 `AppUpdate` reader both accept them); dropping them from a full
/// (`partialUpdate=false`) update would silently reset them, so they are kept. `gpus`,
/// `residency` and `storeUrls` are accepted as sent. `version` must go: in an update body it means
/// "roll back to that version". `ports`/`uris` are handled by [`MarathonApp::update_body`] only when
/// they duplicate `portDefinitions`/`fetch` (1.4 returns both forms, and sending both non-empty is
/// rejected).
pub const READ_ONLY_APP_KEYS: &[&str] = &[
    "tasks",
    "tasksStaged",
    "tasksRunning",
    "tasksHealthy",
    "tasksUnhealthy",
    "deployments",
    "version",
    "versionInfo",
    "lastTaskFailure",
    "taskStats",
    "tasksStats",
    "readinessCheckResults",
    "counts",
];

/// A validated, canonical Marathon app id: absolute, `/`-separated, each segment made of
/// lowercase letters, digits, `-` and `.` as Marathon's `PathId` rule demands
/// (`^(([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])\.)*([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])$`).
///
/// Parsing reads the id as Marathon 1.10 does: its RAML `PathId` pattern allows, between the
/// `/`s, a valid segment, `..` or nothing; the id is then canonicalised against `/` — a missing
/// leading `/` is added, empty segments (`//`, a trailing `/`) are dropped and `..` takes away
/// the segment before it (`/a/../b` is `/b`; `..` at the top stays at the top). A `.` segment
/// does not match the pattern and is refused, as Marathon refuses it; so is an id that
/// resolves to the root (`/a/..`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AppId(String);

impl AppId {
    /// Validates and canonicalises an app id.
    ///
    /// # Errors
    /// [`FrameworkError::InvalidInput`] naming the id and the offending segment.
    pub fn parse(id: &str) -> Result<Self, FrameworkError> {
        let bad = |reason: String| {
            FrameworkError::invalid_input(format!("Marathon app id {id:?}"), reason)
        };
        let trimmed = id.trim();
        if trimmed.trim_matches('/').is_empty() {
            return Err(bad("is empty".to_owned()));
        }
        let mut segments: Vec<&str> = Vec::new();
        for segment in trimmed.split('/') {
            match segment {
                "" => {}
                ".." => {
                    segments.pop();
                }
                "." => {
                    return Err(bad(
                        "uses the segment \".\", which Marathon refuses (its id pattern allows \
                         \"..\" but not \".\"); leave it out"
                            .to_owned(),
                    ));
                }
                s if valid_segment(s) => segments.push(s),
                s => {
                    return Err(bad(format!(
                        "segment {s:?} may only contain lowercase letters, digits, '-' and '.', \
                         and its dot-separated parts may not begin or end with '-'"
                    )));
                }
            }
        }
        if segments.is_empty() {
            return Err(bad(
                "resolves to the root \"/\" (each \"..\" takes away the segment before it); \
                 an app id needs at least one path element"
                    .to_owned(),
            ));
        }
        Ok(Self(format!("/{}", segments.join("/"))))
    }

    /// The canonical id, starting with `/`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The segments (`/grp/sub/app` → `["grp", "sub", "app"]`).
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0[1..].split('/')
    }

    /// The prefix of this app's Mesos task ids: the path without the leading `/` and with `/`
    /// replaced by `_` (`/qos/job-a` → `qos_job-a`). Task ids look like
    /// `qos_job-a.<uuid>` (≤ 1.4) or `qos_job-a.instance-<uuid>._app.1` (1.5+), and Mesos uses the
    /// task id as the executor id of command tasks, so this joins agent statistics to apps.
    #[must_use]
    pub fn task_id_prefix(&self) -> String {
        self.0[1..].replace('/', "_")
    }

    /// True if `task_id` belongs to this app (`<prefix>.` followed by anything).
    #[must_use]
    pub fn owns_task(&self, task_id: &str) -> bool {
        let prefix = self.task_id_prefix();
        task_id
            .strip_prefix(prefix.as_str())
            .is_some_and(|rest| rest.starts_with('.'))
    }
}

/// Whether one `/`-separated segment of an app id follows Marathon's rule (`state/PathId.scala`):
/// dot-separated labels of lowercase letters, digits and `-`, none empty, none beginning or ending
/// with `-`. `.` and `..` (relative segments) are not labels and fail here.
#[must_use]
pub fn valid_segment(segment: &str) -> bool {
    segment.split('.').all(|label| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    })
}

impl fmt::Display for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for AppId {
    type Err = FrameworkError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// A Marathon app definition (or the AppInfo returned by GET), kept as the full JSON object.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MarathonApp(Map<String, Value>);

crate::lenient::json_object_accessors!(MarathonApp, "Marathon app");

impl MarathonApp {
    /// An app with only an `id`.
    #[must_use]
    pub fn new(id: &AppId) -> Self {
        let mut map = Map::new();
        map.insert("id".to_owned(), Value::String(id.as_str().to_owned()));
        Self(map)
    }

    /// `id` as written (may lack the leading `/` in a user's file).
    #[must_use]
    pub fn id(&self) -> Option<&str> {
        self.text("id")
    }

    /// `id`, validated and normalised.
    ///
    /// # Errors
    /// [`FrameworkError::InvalidInput`] when `id` is missing, not a string or not a valid id.
    pub fn app_id(&self) -> Result<AppId, FrameworkError> {
        let id = self.id().ok_or_else(|| {
            FrameworkError::invalid_input("Marathon app", "has no string \"id\" field")
        })?;
        AppId::parse(id)
    }

    /// Sets `cpus` (as a JSON number).
    ///
    /// # Errors
    /// [`FrameworkError::InvalidInput`] unless `cpus` is finite and at least Marathon's minimum 0.001.
    pub fn set_cpus(&mut self, cpus: f64) -> Result<(), FrameworkError> {
        self.0.insert("cpus".to_owned(), cpus_value(cpus)?);
        Ok(())
    }

    /// `instances`.
    #[must_use]
    pub fn instances(&self) -> Option<u64> {
        self.count("instances")
    }

    /// `cmd`.
    #[must_use]
    pub fn cmd(&self) -> Option<&str> {
        self.text("cmd")
    }

    /// `container.docker.image`.
    #[must_use]
    pub fn docker_image(&self) -> Option<&str> {
        self.0
            .get("container")?
            .get("docker")?
            .get("image")?
            .as_str()
    }

    /// `taskKillGracePeriodSeconds`.
    #[must_use]
    pub fn task_kill_grace_period_secs(&self) -> Option<f64> {
        self.number("taskKillGracePeriodSeconds")
    }

    /// One `env` entry, when it is a plain string (not a `{"secret": …}` reference).
    #[must_use]
    pub fn env_var(&self, name: &str) -> Option<&str> {
        self.0.get("env")?.get(name)?.as_str()
    }

    /// One label.
    #[must_use]
    pub fn label(&self, name: &str) -> Option<&str> {
        self.0.get("labels")?.get(name)?.as_str()
    }

    /// `version` (GET only).
    #[must_use]
    pub fn version(&self) -> Option<&str> {
        self.text("version")
    }

    /// Ids of the deployments currently affecting the app (`deployments: [{"id"}]`, GET only).
    #[must_use]
    pub fn deployment_ids(&self) -> Vec<String> {
        self.0
            .get("deployments")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(|d| d.get("id").and_then(Value::as_str).map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `tasksRunning` (GET only).
    #[must_use]
    pub fn tasks_running(&self) -> Option<u64> {
        self.count("tasksRunning")
    }

    /// `tasksStaged` (GET only).
    #[must_use]
    pub fn tasks_staged(&self) -> Option<u64> {
        self.count("tasksStaged")
    }

    /// The embedded `tasks` (GET always embeds them). Entries that do not read as a task are
    /// skipped.
    #[must_use]
    pub fn tasks(&self) -> Vec<MarathonTask> {
        self.0
            .get("tasks")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(|t| serde_json::from_value(t.clone()).ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The body for `PUT /v2/apps/{id}`: this app without [`READ_ONLY_APP_KEYS`], without `uris`
    /// when `fetch` is also present, and without `ports` when `portDefinitions` is also present
    /// (Marathon 1.4 returns both forms of each; the deprecated one is dropped so the pair cannot be
    /// rejected as "cannot specify both"). Every other field, known or not, is kept unchanged and in
    /// order.
    #[must_use]
    pub fn update_body(&self) -> Map<String, Value> {
        let mut body = self.0.clone();
        for key in READ_ONLY_APP_KEYS {
            body.shift_remove(*key);
        }
        if body.get("fetch").is_some_and(|v| !v.is_null()) {
            body.shift_remove("uris");
        }
        if body.get("portDefinitions").is_some_and(|v| !v.is_null()) {
            body.shift_remove("ports");
        }
        body
    }
}

/// The shortest `cmd` Marathon 1.10 takes, in UTF-16 units: its RAML `App` refuses `""`
/// (`minLength: 1`, `error.minLength` at `/cmd`) and `AppValidation` refuses one more
/// (`cmd.length() > 1`, Java's `length()` counting UTF-16 units: "must not be an empty string").
pub const CMD_MIN_UTF16_UNITS: usize = 2;

/// True when Marathon refuses `cmd` for its length (see [`CMD_MIN_UTF16_UNITS`]).
#[must_use]
pub fn cmd_too_short(cmd: &str) -> bool {
    cmd.encode_utf16().count() < CMD_MIN_UTF16_UNITS
}

/// The lower bounds Marathon's RAML `App` type (1.10, `app.raml`) puts on an app's numbers, as
/// `(field, minimum)`: a value below is refused with a 422 at `/<field>` (`error.min`).
pub const APP_MINIMUMS: &[(&str, f64)] = &[
    ("cpus", 0.001),
    ("mem", 0.0),
    ("disk", 0.0),
    ("gpus", 0.0),
    ("instances", 0.0),
    ("backoffSeconds", 0.0),
    ("backoffFactor", 1.0),
    ("maxLaunchDelaySeconds", 0.0),
    ("taskKillGracePeriodSeconds", 0.0),
];

/// The `env` entries of an app that reference a secret its `secrets` does not define, as
/// `(variable, secret)`: Marathon refuses each with a 422 at `/env/<variable>/secret`,
/// "references an undefined secret" (`SecretValidation.secretValidator`).
#[must_use]
pub fn undefined_env_secrets(app: &Map<String, Value>) -> Vec<(String, String)> {
    let defined = app.get("secrets").and_then(Value::as_object);
    let Some(env) = app.get("env").and_then(Value::as_object) else {
        return Vec::new();
    };
    env.iter()
        .filter_map(|(name, v)| {
            let secret = v.get("secret")?.as_str()?;
            (!defined.is_some_and(|d| d.contains_key(secret)))
                .then(|| (name.clone(), secret.to_owned()))
        })
        .collect()
}

/// `cpus` as a JSON number, refusing what Marathon would reject (not finite, below 0.001).
///
/// # Errors
/// [`FrameworkError::InvalidInput`] naming `cpus`.
pub fn cpus_value(cpus: f64) -> Result<Value, FrameworkError> {
    if !cpus.is_finite() || cpus < APP_MINIMUMS[0].1 {
        return Err(FrameworkError::invalid_input(
            "cpus",
            format!("{cpus} is not a finite number of at least 0.001 (Marathon's minimum)"),
        ));
    }
    serde_json::Number::from_f64(cpus)
        .map(Value::Number)
        .ok_or_else(|| {
            FrameworkError::invalid_input("cpus", format!("{cpus} is not representable"))
        })
}

/// A one-field partial update of an app (`PUT /v2/apps/{id}` with only that field): what the
/// supervisor changes in an app it runs. `force` (`?force=true`) overrides a deployment that
/// holds the app; without it Marathon answers [`FrameworkError::Locked`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AppChange {
    /// `{"cpus": …}`: a resize; Marathon restarts the app's tasks with the new size.
    Cpus {
        /// The new size.
        cpus: f64,
        /// `?force=true`.
        force: bool,
    },
    /// `{"instances": n}`: e.g. 0 to stop the app but keep its definition.
    Instances {
        /// The new count.
        instances: u32,
        /// `?force=true`.
        force: bool,
    },
}

impl AppChange {
    /// The field it sets and its JSON value, refusing a `cpus` Marathon would reject — the one
    /// rule for the client and for anything that stands in for Marathon.
    ///
    /// # Errors
    /// As [`cpus_value`].
    pub fn field(self) -> Result<(&'static str, Value), FrameworkError> {
        Ok(match self {
            Self::Cpus { cpus, .. } => ("cpus", cpus_value(cpus)?),
            Self::Instances { instances, .. } => ("instances", Value::from(instances)),
        })
    }

    /// Whether it overrides a deployment that holds the app (`?force=true`).
    #[must_use]
    pub fn force(self) -> bool {
        match self {
            Self::Cpus { force, .. } | Self::Instances { force, .. } => force,
        }
    }
}

/// One task (`GET /v2/apps/{id}/tasks`, RAML `Task`). Unknown keys land in `extra`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MarathonTask {
    /// Mesos task id; equal to the executor id on the agent for command tasks.
    pub id: String,
    /// The app it belongs to.
    #[serde(default)]
    pub app_id: String,
    /// Agent host name.
    #[serde(default)]
    pub host: String,
    /// `TASK_RUNNING`, `TASK_STAGING`, … (absent on some 1.4 answers).
    #[serde(default)]
    pub state: Option<String>,
    /// Agent id.
    #[serde(default)]
    pub slave_id: Option<String>,
    /// When the task was staged (ISO 8601).
    #[serde(default)]
    pub staged_at: Option<String>,
    /// When it started running; `null` until then.
    #[serde(default)]
    pub started_at: Option<String>,
    /// App version the task runs.
    #[serde(default)]
    pub version: Option<String>,
    /// Host ports.
    #[serde(default, deserialize_with = "lenient::null_as_default")]
    pub ports: Vec<u64>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl MarathonTask {
    /// True when Marathon reports the task as `TASK_RUNNING`. Tasks of Marathon 0.x (0.9–0.15)
    /// have no `state`: there a task listed with a `startedAt` is running (`startedAt` stays
    /// `null` while it is staged).
    #[must_use]
    pub fn is_running(&self) -> bool {
        match self.state.as_deref() {
            Some(state) => state == "TASK_RUNNING",
            None => self.started_at.as_deref().is_some_and(|s| !s.is_empty()),
        }
    }
}

/// One deployment in `GET /v2/deployments`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    /// Deployment id (the `Marathon-Deployment-Id` of the call that started it).
    pub id: String,
    /// Target version.
    #[serde(default)]
    pub version: Option<String>,
    /// Apps it changes.
    #[serde(default, deserialize_with = "lenient::null_as_default")]
    pub affected_apps: Vec<String>,
    /// Actions running now.
    #[serde(default, deserialize_with = "lenient::null_as_default")]
    pub current_actions: Vec<DeploymentAction>,
    /// 1-based current step.
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    pub current_step: Option<u64>,
    /// Number of steps.
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    pub total_steps: Option<u64>,
    /// Everything else (`steps`, `affectedPods`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Deployment {
    /// True if the deployment changes `app`.
    #[must_use]
    pub fn affects(&self, app: &AppId) -> bool {
        self.affected_apps.iter().any(|a| a == app.as_str())
    }
}

/// One action of a deployment step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentAction {
    /// `RestartApplication`, `ScaleApplication`, `StartApplication`, …
    pub action: String,
    /// The app acted on.
    #[serde(default)]
    pub app: Option<String>,
    /// Everything else (`readinessCheckResults`, `pod`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The answer to a state-changing call (`{"deploymentId", "version"}` plus the
/// `Marathon-Deployment-Id` header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentResult {
    /// The deployment started by the call.
    pub deployment_id: String,
    /// The new app version, when the body carried one.
    pub version: Option<String>,
}

/// The answer to `POST /v2/apps`.
#[derive(Debug, Clone, PartialEq)]
pub struct CreatedApp {
    /// The app as Marathon stored it (unknown keys such as `qos` are gone).
    pub app: MarathonApp,
    /// The deployment that starts it, from the `Marathon-Deployment-Id` header or the body's
    /// `deployments`.
    pub deployment_id: Option<String>,
}

/// `GET /v2/info`, kept whole.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MarathonInfo(pub Map<String, Value>);

impl MarathonInfo {
    /// Marathon's version (`"1.4.13"`).
    #[must_use]
    pub fn version(&self) -> Option<&str> {
        self.0.get("version").and_then(Value::as_str)
    }

    /// The framework name (`"marathon"`).
    #[must_use]
    pub fn name(&self) -> Option<&str> {
        self.0.get("name").and_then(Value::as_str)
    }

    /// The Mesos framework id.
    #[must_use]
    pub fn framework_id(&self) -> Option<&str> {
        self.0.get("frameworkId").and_then(Value::as_str)
    }

    /// The current leader (`host:port`).
    #[must_use]
    pub fn leader(&self) -> Option<&str> {
        self.0.get("leader").and_then(Value::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_app_change_names_its_field_and_refuses_what_marathon_would() {
        let resize = AppChange::Cpus {
            cpus: 1.5,
            force: true,
        };
        assert_eq!(resize.field().unwrap(), ("cpus", json!(1.5)));
        assert!(resize.force());
        let stop = AppChange::Instances {
            instances: 0,
            force: false,
        };
        assert_eq!(stop.field().unwrap(), ("instances", json!(0)));
        assert!(!stop.force());
        let err = AppChange::Cpus {
            cpus: f64::NAN,
            force: false,
        }
        .field()
        .unwrap_err();
        assert!(err.to_string().contains("cpus"), "{err}");
    }

    #[test]
    fn app_ids() {
        assert_eq!(
            AppId::parse("openmplinpack1").unwrap().as_str(),
            "/openmplinpack1"
        );
        assert_eq!(
            AppId::parse("/grp/sub/app/").unwrap().as_str(),
            "/grp/sub/app"
        );
        assert_eq!(
            AppId::parse("/a.b-c/x1")
                .unwrap()
                .segments()
                .collect::<Vec<_>>(),
            ["a.b-c", "x1"]
        );
        for bad in [
            "", "/", "/A", "/-a", "/a-", "/a b", "/a_b", "/a.-b", "/a/./b", ".", "/a/..", "/..",
        ] {
            assert!(AppId::parse(bad).is_err(), "{bad:?} should be refused");
        }
        // Marathon 1.10 canonicalises these (PathId.canonicalPath after its RAML pattern).
        for (given, canonical) in [
            ("/a/../b", "/b"),
            ("/../a", "/a"),
            ("a/b/../../c/d", "/c/d"),
            ("/a//b", "/a/b"),
            ("//a/b//", "/a/b"),
            ("/a/b/..", "/a"),
        ] {
            assert_eq!(
                AppId::parse(given).unwrap().as_str(),
                canonical,
                "{given:?}"
            );
        }
        let e = AppId::parse("/a/./b").unwrap_err().to_string();
        assert!(e.contains("\".\"") && e.contains("/a/./b"), "{e}");
        let e = AppId::parse("/a/..").unwrap_err().to_string();
        assert!(e.contains("root"), "{e}");
        let e = AppId::parse("/Grp/app").unwrap_err().to_string();
        assert!(e.contains("\"Grp\""), "{e}");
    }

    #[test]
    fn task_prefix() {
        let id = AppId::parse("/qos/job-a").unwrap();
        assert_eq!(id.task_id_prefix(), "qos_job-a");
        assert!(id.owns_task("qos_job-a.instance-564bd685-aaaa._app.1"));
        assert!(id.owns_task("qos_job-a.564bd685"));
        assert!(!id.owns_task("qos_job-ab.564bd685"));
    }

    #[test]
    fn accessors_accept_strings() {
        let app =
            MarathonApp::try_from(json!({"id": "x", "cpus": "0.5", "mem": 512, "instances": "1"}))
                .unwrap();
        assert_eq!(app.cpus(), Some(0.5));
        assert_eq!(app.mem(), Some(512.0));
        assert_eq!(app.instances(), Some(1));
        assert!(MarathonApp::try_from(json!([1])).is_err());
    }

    #[test]
    fn set_cpus_validates() {
        let mut app = MarathonApp::new(&AppId::parse("/a").unwrap());
        app.set_cpus(1.4).unwrap();
        assert_eq!(app.get("cpus"), Some(&json!(1.4)));
        assert!(app.set_cpus(f64::NAN).is_err());
        assert!(app.set_cpus(0.0).is_err());
    }

    #[test]
    fn update_body_strips_only_server_fields() {
        let app = MarathonApp::try_from(json!({
            "id": "/a", "cpus": 1, "labels": {"k": "v"}, "user": "root", "secrets": {},
            "killSelection": "YOUNGEST_FIRST", "unreachableStrategy": {"inactiveAfterSeconds": 0},
            "readinessChecks": [], "gpus": 0, "futureField": {"x": 1},
            "uris": ["http://a/b.tgz"], "fetch": [{"uri": "http://a/b.tgz"}],
            "ports": [10000], "portDefinitions": [{"port": 10000}],
            "version": "2017-01-01T00:00:00.000Z", "versionInfo": {}, "tasks": [], "tasksRunning": 1,
            "tasksStaged": 0, "tasksHealthy": 0, "tasksUnhealthy": 0, "deployments": [],
            "lastTaskFailure": {}, "tasksStats": {}, "readinessCheckResults": []
        }))
        .unwrap();
        let body = app.update_body();
        let keys: Vec<&str> = body.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "id",
                "cpus",
                "labels",
                "user",
                "secrets",
                "killSelection",
                "unreachableStrategy",
                "readinessChecks",
                "gpus",
                "futureField",
                "fetch",
                "portDefinitions"
            ]
        );
        // uris without fetch stays.
        let app = MarathonApp::try_from(json!({"id": "/a", "uris": ["u"]})).unwrap();
        assert!(app.update_body().contains_key("uris"));
    }

    #[test]
    fn env_and_labels() {
        let app = MarathonApp::try_from(json!({
            "id": "/a",
            "env": {"MY_UUID": "abc", "PW": {"secret": "pw"}},
            "labels": {"qos.uuid": "abc"}
        }))
        .unwrap();
        assert_eq!(app.env_var("MY_UUID"), Some("abc"));
        assert_eq!(
            app.env_var("PW"),
            None,
            "a secret reference is not a plain value"
        );
        assert_eq!(app.label("qos.uuid"), Some("abc"));
        assert_eq!(app.label("other"), None);
        let odd = MarathonApp::try_from(json!({"id": "/a", "env": "oops"})).unwrap();
        assert_eq!(odd.env_var("MY_UUID"), None);
    }
}
