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
            // `PathId` drops empty segments (`/a//b` is `/a/b`); a `.` reaches here only from a
            // URL path (the body's id is held to the RAML pattern first, which refuses it).
            "" | "." => {}
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
            json!({"id": "/a", "cmd": "true", "ports": [0], "portDefinitions": [{"port": 10000}]}),
        );
        assert_eq!(
            b,
            json!({"message": "Object is not valid", "details": [
                {"path": "/", "errors": ["cannot specify both ports and port definitions"]}]})
        );
        let b = refused(
            json!({"id": "/a", "cmd": "true", "ports": [], "portDefinitions": [{"port": 0}]}),
        );
        assert_eq!(b["details"][0]["path"], "/");
        normalize(
            &json!({"id": "/a", "cmd": "true", "ports": [10000], "portDefinitions": [{"port": 10000, "protocol": "tcp"}]}),
            None,
        )
        .expect("the same ports in both forms (a re-posted GET of Marathon 1.4)");
        // Both fetch forms.
        let b = refused(
            json!({"id": "/a", "cmd": "true", "uris": ["http://x/a.tgz"],
            "fetch": [{"uri": "http://x/a.tgz"}]}),
        );
        assert_eq!(
            b["details"],
            json!([{"path": "/uris", "errors": ["may not be set in conjunction with fetch"]}])
        );
        // Resident apps: no over-capacity, unreachable strategy disabled.
        let resident = json!({"id": "/db", "cmd": "true", "residency": {"taskLostBehavior": "WAIT_FOREVER"},
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
            &json!({"id": "/db", "cmd": "true", "residency": {}, "unreachableStrategy": "disabled",
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
        let e = normalize(&json!({"cmd": "true"}), None).unwrap_err();
        assert!(e.json);
        assert_eq!(e.body()["details"][0]["path"], "/id");
        let e = normalize(&json!({"id": "/x"}), None).unwrap_err();
        assert!(!e.json);
        assert_eq!(e.body()["message"], "Object is not valid");
        let e = normalize(&json!({"id": "/x", "cmd": "ls", "args": ["b"]}), None).unwrap_err();
        assert_eq!(e.problems[0].path, "/");
        let e = normalize(&json!({"id": "/x", "cmd": "ls", "cpus": "1"}), None).unwrap_err();
        assert_eq!(e.problems[0].error, "error.expected.jsnumber");
        // An integer field takes what Marathon's Play reader does, a 32-bit int: 2^40 instances
        // were taken, and the emulator made a task for each (2.5 GB in seconds, then no answer).
        for n in [
            json!(1_099_511_627_776_u64),
            json!(2_147_483_648_u64),
            json!(1.5),
            json!(1e12),
        ] {
            let app = json!({"id": "/x", "cmd": "ls", "instances": n});
            let e = normalize(&app, None).unwrap_err();
            assert!(e.json, "{n}");
            assert_eq!(
                (e.problems[0].path.as_str(), e.problems[0].error.as_str()),
                ("/instances", "error.expected.int"),
                "{n}"
            );
        }
        let most = json!({"id": "/x", "cmd": "ls", "instances": 2_147_483_647});
        assert_eq!(normalize(&most, None).unwrap()["instances"], 2_147_483_647);
        let e = normalize(
            &json!({"id": "/x", "cmd": "ls", "upgradeStrategy": {"minimumHealthCapacity": 2}}),
            None,
        )
        .unwrap_err();
        assert_eq!(
            e.body(),
            json!({"message": "Object is not valid", "details": [{"path": "/upgradeStrategy/minimumHealthCapacity", "errors": ["is greater than 1"]}]})
        );
        for bad in ["/Bad", "/a/./b", "/a b"] {
            let e = normalize(&json!({"id": bad, "cmd": "ls"}), None).unwrap_err();
            assert_eq!(
                e.body(),
                json!({"message": "Invalid JSON", "details": [{"path": "/id", "errors": ["error.pattern"]}]}),
                "{bad}"
            );
        }
        let e = normalize(&json!({"id": "/x", "cmd": "a"}), None).unwrap_err();
        assert_eq!(
            e.body(),
            json!({"message": "Object is not valid", "details": [{"path": "/", "errors": ["must not be an empty string"]}]})
        );
        let e = normalize(&json!({"id": "/x", "cmd": ""}), None).unwrap_err();
        assert_eq!(e.problems[0].error, "error.minLength");
        for (given, canonical) in [("/a/../b", "/b"), ("/a//b/", "/a/b"), ("../c", "/c")] {
            let app = normalize(&json!({"id": given, "cmd": "ls"}), None).unwrap();
            assert_eq!(app["id"], canonical, "{given}");
        }
        // From a URL path (PUT /v2/apps/a/./b) `.` is dropped as `PathId` drops it.
        assert_eq!(canonical_id("/a/./b").unwrap(), "/a/b");
    }

    /// The first problem Marathon reports for `app` (path, error), `None` when it takes it.
    fn verdict(app: &Value) -> Option<(String, String)> {
        normalize(app, None)
            .err()
            .map(|e| (e.problems[0].path.clone(), e.problems[0].error.clone()))
    }

    /// `SchedulingValidation.complyWithAppConstraintRules`: the docs' constraints are taken
    /// (`docs/docs/constraints.md`), and a value an operator does not take is refused in
    /// Marathon's words.
    #[test]
    fn constraints_as_marathon_checks_them() {
        let with =
            |c: Value| json!({"id": "/c", "cmd": "sleep 60", "instances": 3, "constraints": c});
        for taken in [
            json!([["rack_id", "CLUSTER", "rack-1"]]),
            json!([["rack_id", "CLUSTER"]]),
            json!([["hostname", "CLUSTER", "a.specific.node.com"]]),
            json!([["rack_id", "LIKE", "rack-[1-3]"]]),
            json!([["rack_id", "UNLIKE", "rack-[7-9]"]]),
            json!([["rack_id", "MAX_PER", "2"]]),
            json!([["hostname", "UNIQUE"]]),
            json!([["rack_id", "GROUP_BY", "3"]]),
            json!([["rack_id", "GROUP_BY"]]),
            json!([["rack_id", "IS", "rack-1"]]),
            json!([["level", "IS", "0.8"]]),
            json!([["hostname", "LIKE", "srv2.*"]]),
            json!([["rack_id", "LIKE", "(?!rack-9).*"]]),
        ] {
            assert_eq!(verdict(&with(taken.clone())), None, "{taken}");
        }
        for (refused, error) in [
            (
                json!([["hostname", "UNIQUE", "x"]]),
                "UNIQUE does not accept a value",
            ),
            (
                json!([["rack_id", "MAX_PER", "two"]]),
                "MAX_PER requires an integer value",
            ),
            (
                json!([["rack_id", "MAX_PER"]]),
                "MAX_PER requires an integer value",
            ),
            (
                json!([["rack_id", "GROUP_BY", "x"]]),
                "GROUP BY must define an integer value or else no value at all",
            ),
            (
                json!([["rack_id", "LIKE"]]),
                "LIKE and UNLIKE require a non-empty, regular expression value",
            ),
            (
                json!([["rack_id", "LIKE", "rack-[1-"]]),
                "is not a valid regular expression",
            ),
            (
                json!([["rack_id", "IS", "rack 1"]]),
                "IS only supports Mesos text and float values (see http://mesos.apache.org/documentation/latest/attributes-resources/)",
            ),
            (json!([["", "UNIQUE"]]), "illegal constraint specification"),
            (
                json!([["hostname", "unique"]]),
                "illegal constraint specification",
            ),
            (
                json!([["hostname", "NOPE"]]),
                "operator must be one of the following UNIQUE, CLUSTER, GROUP_BY, LIKE, MAX_PER, UNLIKE or IS",
            ),
            (
                json!([["hostname"]]),
                "Each constraint must have either 2 or 3 fields",
            ),
            (
                json!([["rack_id", "MAX_PER", 2]]),
                "Each constraint must have either 2 or 3 fields",
            ),
        ] {
            assert_eq!(
                verdict(&with(refused.clone())),
                Some(("/constraints(0)".to_owned(), error.to_owned())),
                "{refused}"
            );
        }
    }

    /// `NetworkValidation` and where ports may be declared (`validateCanonicalAppAPI`), with no
    /// `--default_network_name`.
    #[test]
    fn networks_and_ports_as_marathon_checks_them() {
        let docker = |extra: Value| {
            let mut app = json!({"id": "/n", "container": {"type": "DOCKER",
                "docker": {"image": "python:3"}}});
            for (k, v) in extra.as_object().unwrap() {
                if k == "portMappings" {
                    app["container"][k] = v.clone();
                } else {
                    app[k] = v.clone();
                }
            }
            app
        };
        for taken in [
            docker(json!({"networks": [{"mode": "container/bridge"}],
                "portMappings": [{"containerPort": 8080, "hostPort": 0}]})),
            docker(json!({"networks": [{"mode": "host"}]})),
            docker(json!({"networks": [{"mode": "container", "name": "dcos"}]})),
            json!({"id": "/n", "cmd": "true", "networks": [{"mode": "host"}],
                "portDefinitions": [{"port": 0}, {"port": 0}]}),
        ] {
            assert_eq!(verdict(&taken), None, "{taken}");
        }
        for (refused, path, error) in [
            (
                docker(json!({"networks": [{"mode": "bogus"}]})),
                "/networks(0)/mode",
                "error.expected.validenumvalue",
            ),
            (
                docker(json!({"networks": [{"mode": "container"}]})),
                "/networks",
                "Network name must be specified when container network is selected.",
            ),
            (
                docker(json!({"networks": [{"mode": "host", "name": "x"}]})),
                "/networks",
                "Host networks may not have names or labels",
            ),
            (
                docker(json!({"networks": [{"mode": "container/bridge", "name": "x"}]})),
                "/networks",
                "Bridge networks may not have names",
            ),
            (
                docker(json!({"networks": [{"mode": "host"}, {"mode": "container/bridge"}]})),
                "/networks",
                "May specify a single host network, single bridge network, or else 1-to-n container networks",
            ),
            (
                docker(json!({"networks": [{"mode": "container", "name": "a"},
                    {"mode": "container", "name": "a"}]})),
                "/networks",
                "Duplicate networks are not allowed",
            ),
            (
                docker(json!({"networks": [{"mode": "container", "name": "a"},
                    {"mode": "container", "name": "b"}]})),
                "/",
                "may only specify a single container network when using the Docker container engine",
            ),
            (
                docker(json!({"networks": [{"mode": "host"}],
                    "portMappings": [{"containerPort": 80}]})),
                "/",
                "portMappings are not allowed with host-networking",
            ),
            (
                json!({"id": "/n", "cmd": "true", "networks": [{"mode": "container/bridge"}],
                    "portDefinitions": [{"port": 0}]}),
                "/",
                "portDefinitions are only allowed with host-networking",
            ),
            (
                json!({"id": "/n", "cmd": "true", "portDefinitions": [{"port": 10000}, {"port": 10000}]}),
                "/portDefinitions",
                "Ports must be unique.",
            ),
            (
                json!({"id": "/n", "cmd": "true", "portDefinitions": [{"port": 0, "name": "a"},
                    {"port": 0, "name": "a"}]}),
                "/portDefinitions",
                "Port names must be unique.",
            ),
            (
                json!({"id": "/n", "cmd": "true", "ports": [10000, 10000]}),
                "/",
                "ports must be unique",
            ),
        ] {
            assert_eq!(
                verdict(&refused),
                Some((path.to_owned(), error.to_owned())),
                "{refused}"
            );
        }
    }

    /// `SecretValidation`: an `env` secret must be one the app's `secrets` defines
    /// (`docs/docs/secrets.md`'s example is taken).
    #[test]
    fn env_secrets_must_be_defined() {
        let app = json!({"id": "/app-with-secrets", "cmd": "sleep 100",
            "env": {"DATABASE_PW": {"secret": "secretpassword"}},
            "secrets": {"secretpassword": {"source": "databasepassword"}}});
        assert_eq!(verdict(&app), None);
        let mut undefined = app.clone();
        undefined["env"]["DATABASE_PW"]["secret"] = json!("other");
        assert_eq!(
            verdict(&undefined),
            Some((
                "/env/DATABASE_PW/secret".to_owned(),
                "references an undefined secret".to_owned()
            ))
        );
        let mut none = app;
        none.as_object_mut().unwrap().remove("secrets");
        assert_eq!(
            verdict(&none).map(|(path, _)| path).as_deref(),
            Some("/env/DATABASE_PW/secret")
        );
    }

    /// `portIndexIsValid`: a Marathon health check names a port the app has.
    #[test]
    fn health_checks_name_a_port_the_app_has() {
        let bad = Some((
            "/healthChecks(0)".to_owned(),
            "Health check port indices must address an element of the ports array or container port mappings."
                .to_owned(),
        ));
        let app = |hc: Value, extra: Value| {
            let mut a =
                json!({"id": "/h", "cmd": "python3 -m http.server $PORT0", "healthChecks": [hc]});
            for (k, v) in extra.as_object().unwrap() {
                a[k] = v.clone();
            }
            a
        };
        // The one any-port definition Marathon adds on host networking.
        assert_eq!(
            verdict(&app(json!({"protocol": "HTTP", "path": "/"}), json!({}))),
            None
        );
        assert_eq!(verdict(&app(json!({"portIndex": 0}), json!({}))), None);
        assert_eq!(
            verdict(&app(json!({"protocol": "TCP", "portIndex": 1}), json!({}))),
            bad
        );
        assert_eq!(
            verdict(&app(
                json!({"protocol": "HTTP", "portIndex": 1}),
                json!({"ports": [0, 0]})
            )),
            None
        );
        assert_eq!(
            verdict(&app(
                json!({"protocol": "HTTP"}),
                json!({"portDefinitions": [{"port": 0}, {"port": 0}]})
            )),
            bad,
            "two ports and no portIndex"
        );
        assert_eq!(
            verdict(&app(
                json!({"protocol": "HTTP", "port": 8080}),
                json!({"portDefinitions": []})
            )),
            None
        );
        assert_eq!(
            verdict(&app(
                json!({"protocol": "COMMAND", "command": {"value": "true"}}),
                json!({"portDefinitions": []})
            )),
            None
        );
        assert_eq!(
            verdict(&app(
                json!({"protocol": "HTTP"}),
                json!({"networks": [{"mode": "container/bridge"}]})
            )),
            bad,
            "a bridged app without port mappings has no port"
        );
    }
}
