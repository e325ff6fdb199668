//! Reading an app definition as Marathon 1.5+ does: type checks ("Invalid JSON", 422), object
//! validation ("Object is not valid", 422), normalization with the defaults Marathon fills in,
//! and **silently dropping every key Marathon does not know** (its readers are generated from
//! the RAML `App` type and never look at extra keys, so e.g. a `qos` block is gone on GET).

mod defaults;
mod validate;

use serde_json::{Map, Value, json};

/// One validation problem (`{"path", "errors"}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub(crate) path: String,
    pub(crate) error: String,
}

/// Why a definition was refused: `json` = type errors ("Invalid JSON"), else object validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invalid {
    pub(crate) json: bool,
    pub(crate) problems: Vec<Problem>,
}

impl Invalid {
    pub(crate) fn body(&self) -> Value {
        let mut by_path: Vec<(String, Vec<String>)> = Vec::new();
        for p in &self.problems {
            match by_path.iter_mut().find(|(path, _)| *path == p.path) {
                Some((_, errs)) => errs.push(p.error.clone()),
                None => by_path.push((p.path.clone(), vec![p.error.clone()])),
            }
        }
        json!({
            "message": if self.json { "Invalid JSON" } else { "Object is not valid" },
            "details": by_path.into_iter().map(|(path, errors)| json!({"path": path, "errors": errors})).collect::<Vec<_>>(),
        })
    }
}

/// Marathon's per-segment id regex (`state/PathId.scala`).
pub(crate) const PATH_ID_REGEX: &str = r"^(([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])\.)*([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])|(\.|\.\.)$";

/// Last segments refused since Marathon 1.8.
const RESERVED: &[&str] = &["restart", "tasks", "versions"];

/// Validates and canonicalises an app id (relative ids are taken against `/`).
pub(crate) fn canonical_id(raw: &str) -> Result<String, Problem> {
    let bad = || Problem {
        path: "/id".to_owned(),
        error: format!("must fully match regular expression '{PATH_ID_REGEX}'"),
    };
    let trimmed = raw.trim_start_matches('/').trim_end_matches('/');
    if trimmed.is_empty() {
        return Err(Problem {
            path: "/id".to_owned(),
            error: "Path must contain at least one path element".to_owned(),
        });
    }
    let mut segments: Vec<&str> = Vec::new();
    for seg in trimmed.split('/') {
        match seg {
            "." => {}
            ".." => {
                segments.pop();
            }
            s if frameworks::marathon::valid_segment(s) => segments.push(s),
            _ => return Err(bad()),
        }
    }
    if segments.is_empty() {
        return Err(bad());
    }
    if segments.last().is_some_and(|s| RESERVED.contains(s)) {
        return Err(Problem {
            path: "/id".to_owned(),
            error: format!(
                "must not end with any of the following reserved keywords: {}",
                RESERVED.join(", ")
            ),
        });
    }
    Ok(format!("/{}", segments.join("/")))
}

/// Task-id prefix of an app: the path without the leading `/`, `/` → `_`.
pub(crate) fn task_prefix(id: &str) -> String {
    id.trim_start_matches('/').replace('/', "_")
}

/// A problem with `error` at the JSON `path` (`/container/docker/image`).
fn p(path: &str, error: impl Into<String>) -> Problem {
    Problem {
        path: path.to_owned(),
        error: error.into(),
    }
}

/// Checks, normalises and fills in defaults. `path_id` (from the URL) wins over the body's id.
/// The result holds only Marathon's own keys, canonical and complete.
pub(crate) fn normalize(
    body: &Value,
    path_id: Option<&str>,
) -> Result<Map<String, Value>, Invalid> {
    let Some(obj) = body.as_object() else {
        return Err(Invalid {
            json: true,
            problems: vec![p("", "error.expected.jsobject")],
        });
    };
    let id_raw = validate::check_types(obj, path_id)?;
    let app = validate::check_app(obj, id_raw.as_deref())?;
    Ok(defaults::complete(obj, &app))
}

/// What step 2 learnt of the app that step 3 needs.
struct Checked<'a> {
    /// The canonical id.
    id: String,
    /// `container`, when it is an object.
    container: Option<&'a Value>,
    /// `container.type`, `DOCKER` when absent.
    ctype: &'a str,
    /// A non-empty `cmd` is given.
    cmd: bool,
    /// A non-empty `args` is given.
    args: bool,
}

/// Keys whose change is only a scale, not a restart (`AppDefinition.isUpgrade` ignores them).
pub(crate) fn is_upgrade(old: &Map<String, Value>, new: &Map<String, Value>) -> bool {
    let strip = |m: &Map<String, Value>| {
        let mut m = m.clone();
        m.shift_remove("instances");
        m
    };
    strip(old) != strip(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rules users hit most, with Marathon's own paths and messages
    /// (`AppValidation.validateOldAppAPI`, `requireUnreachableDisabledForResidentTasks`,
    /// `validForResidentTasks`).
    #[test]
    fn the_rules_users_hit_most() {
        let refused = |v: Value| normalize(&v, None).unwrap_err().body();
        // Both port forms: refused unless they name the same ports.
        let b = refused(
            json!({"id": "/a", "cmd": "x", "ports": [0], "portDefinitions": [{"port": 10000}]}),
        );
        assert_eq!(
            b,
            json!({"message": "Object is not valid", "details": [
                {"path": "/", "errors": ["cannot specify both ports and port definitions"]}]})
        );
        let b =
            refused(json!({"id": "/a", "cmd": "x", "ports": [], "portDefinitions": [{"port": 0}]}));
        assert_eq!(b["details"][0]["path"], "/");
        normalize(
            &json!({"id": "/a", "cmd": "x", "ports": [10000], "portDefinitions": [{"port": 10000, "protocol": "tcp"}]}),
            None,
        )
        .expect("the same ports in both forms (a re-posted GET of Marathon 1.4)");
        // Both fetch forms.
        let b = refused(json!({"id": "/a", "cmd": "x", "uris": ["http://x/a.tgz"],
            "fetch": [{"uri": "http://x/a.tgz"}]}));
        assert_eq!(
            b["details"],
            json!([{"path": "/uris", "errors": ["may not be set in conjunction with fetch"]}])
        );
        // Resident apps: no over-capacity, unreachable strategy disabled.
        let resident = json!({"id": "/db", "cmd": "x", "residency": {"taskLostBehavior": "WAIT_FOREVER"},
            "upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 1},
            "unreachableStrategy": {"inactiveAfterSeconds": 60, "expungeAfterSeconds": 120}});
        let b = refused(resident);
        assert_eq!(
            b["details"],
            json!([
                {"path": "/upgradeStrategy/maximumOverCapacity", "errors": ["got 1.0, expected 0.0"]},
                {"path": "/", "errors": ["unreachableStrategy must be disabled for resident tasks"]}
            ])
        );
        normalize(
            &json!({"id": "/db", "cmd": "x", "residency": {}, "unreachableStrategy": "disabled",
                "upgradeStrategy": {"minimumHealthCapacity": 0, "maximumOverCapacity": 0}}),
            None,
        )
        .expect("a resident app as Marathon wants it");
    }

    #[test]
    fn ids() {
        assert_eq!(canonical_id("a").unwrap(), "/a");
        assert_eq!(canonical_id("/grp/sub/app-1").unwrap(), "/grp/sub/app-1");
        assert_eq!(canonical_id("/a.b/c").unwrap(), "/a.b/c");
        for bad in ["/A", "/a_b", "/-a", "/a-", "/a b", ""] {
            assert!(canonical_id(bad).is_err(), "{bad}");
        }
        assert!(canonical_id("/grp/restart").is_err());
        assert_eq!(task_prefix("/qos/job-a"), "qos_job-a");
    }

    #[test]
    fn unknown_fields_dropped_and_defaults_filled() {
        let app = normalize(
            &json!({"id": "x", "cmd": "sleep 1", "qos": {"duration": 1}, "futureField": 1}),
            None,
        )
        .unwrap();
        assert_eq!(app["id"], "/x");
        assert!(!app.contains_key("qos") && !app.contains_key("futureField"));
        assert_eq!(app["cpus"], 1.0);
        assert_eq!(app["mem"], 128.0);
        assert_eq!(app["instances"], 1);
        assert_eq!(app["backoffSeconds"], 1);
        assert_eq!(
            app["portDefinitions"],
            json!([{"port": 0, "protocol": "tcp"}])
        );
        assert_eq!(app["upgradeStrategy"]["minimumHealthCapacity"], 1.0);
    }

    #[test]
    fn thesis_docker_network_becomes_networks() {
        let app = normalize(
            &json!({"id": "/openmplinpack1", "cmd": "/linpack_openmp 6000", "cpus": 1, "mem": 512,
                "container": {"type": "DOCKER", "docker": {"network": "HOST",
                "image": "serlophug/openmplinpack", "forcePullImage": true}}, "backoffSeconds": 300}),
            None,
        )
        .unwrap();
        assert_eq!(app["networks"], json!([{"mode": "host"}]));
        assert!(app["container"]["docker"].get("network").is_none());
        assert_eq!(app["container"]["docker"]["forcePullImage"], true);
    }

    #[test]
    fn errors() {
        let e = normalize(&json!({"cmd": "x"}), None).unwrap_err();
        assert!(e.json);
        assert_eq!(e.body()["details"][0]["path"], "/id");
        let e = normalize(&json!({"id": "/x"}), None).unwrap_err();
        assert!(!e.json);
        assert_eq!(e.body()["message"], "Object is not valid");
        let e = normalize(&json!({"id": "/x", "cmd": "a", "args": ["b"]}), None).unwrap_err();
        assert_eq!(e.problems[0].path, "/");
        let e = normalize(&json!({"id": "/x", "cmd": "a", "cpus": "1"}), None).unwrap_err();
        assert_eq!(e.problems[0].error, "error.expected.jsnumber");
        let e = normalize(
            &json!({"id": "/x", "cmd": "a", "upgradeStrategy": {"minimumHealthCapacity": 2}}),
            None,
        )
        .unwrap_err();
        assert_eq!(
            e.body(),
            json!({"message": "Object is not valid", "details": [{"path": "/upgradeStrategy/minimumHealthCapacity", "errors": ["is greater than 1"]}]})
        );
        let e = normalize(&json!({"id": "/Bad", "cmd": "a"}), None).unwrap_err();
        assert!(
            e.problems[0]
                .error
                .starts_with("must fully match regular expression")
        );
    }
}
