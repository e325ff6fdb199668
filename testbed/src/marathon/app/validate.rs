//! Steps 1 and 2 of reading an app: the JSON types of Marathon's RAML `App` ("Invalid JSON")
//! and the rules of its `AppValidation` ("Object is not valid"), every problem with its path.

use serde_json::{Map, Value};

use super::{Checked, Invalid, Problem, canonical_id, p};
use crate::formats::java_double;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Number,
    Int,
    Str,
    Bool,
    Obj,
    Arr,
    /// An object or a string (`unreachableStrategy`: `"disabled"` or the object).
    ObjOrStr,
}

impl Kind {
    fn check(self, v: &Value) -> bool {
        match self {
            Self::Number => v.is_number(),
            Self::Int => v.is_i64() || v.is_u64(),
            Self::Str => v.is_string(),
            Self::Bool => v.is_boolean(),
            Self::Obj => v.is_object(),
            Self::Arr => v.is_array(),
            Self::ObjOrStr => v.is_object() || v.is_string(),
        }
    }
    fn error(self) -> &'static str {
        match self {
            Self::Number | Self::Int => "error.expected.jsnumber",
            Self::Str => "error.expected.jsstring",
            Self::Bool => "error.expected.jsboolean",
            Self::Obj | Self::ObjOrStr => "error.expected.jsobject",
            Self::Arr => "error.expected.jsarray",
        }
    }
}

/// Every top-level key of Marathon's RAML `App` (1.10), with its JSON type.
const FIELDS: &[(&str, Kind)] = &[
    ("id", Kind::Str),
    ("acceptedResourceRoles", Kind::Arr),
    ("args", Kind::Arr),
    ("backoffFactor", Kind::Number),
    ("backoffSeconds", Kind::Int),
    ("cmd", Kind::Str),
    ("constraints", Kind::Arr),
    ("container", Kind::Obj),
    ("cpus", Kind::Number),
    ("dependencies", Kind::Arr),
    ("disk", Kind::Number),
    ("env", Kind::Obj),
    ("executor", Kind::Str),
    ("fetch", Kind::Arr),
    ("healthChecks", Kind::Arr),
    ("check", Kind::Obj),
    ("instances", Kind::Int),
    ("labels", Kind::Obj),
    ("maxLaunchDelaySeconds", Kind::Int),
    ("mem", Kind::Number),
    ("gpus", Kind::Int),
    ("ipAddress", Kind::Obj),
    ("networks", Kind::Arr),
    ("ports", Kind::Arr),
    ("portDefinitions", Kind::Arr),
    ("readinessChecks", Kind::Arr),
    ("residency", Kind::Obj),
    ("requirePorts", Kind::Bool),
    ("secrets", Kind::Obj),
    ("storeUrls", Kind::Arr),
    ("taskKillGracePeriodSeconds", Kind::Int),
    ("upgradeStrategy", Kind::Obj),
    ("uris", Kind::Arr),
    ("user", Kind::Str),
    ("killSelection", Kind::Str),
    ("unreachableStrategy", Kind::ObjOrStr),
    ("tty", Kind::Bool),
    ("role", Kind::Str),
    ("resourceLimits", Kind::Obj),
];

/// Step 1, the types (Play JSON readers): any mistyped known key is an "Invalid JSON" error.
/// Returns the raw id (`path_id` wins over the body's).
pub(super) fn check_types(
    obj: &Map<String, Value>,
    path_id: Option<&str>,
) -> Result<Option<String>, Invalid> {
    let mut problems = Vec::new();
    for (key, kind) in FIELDS {
        if let Some(v) = obj.get(*key) {
            if !v.is_null() && !kind.check(v) {
                problems.push(p(&format!("/{key}"), kind.error()));
            }
        }
    }
    let id_raw = match (path_id, obj.get("id").and_then(Value::as_str)) {
        (Some(p), _) => Some(p.to_owned()),
        (None, Some(b)) => Some(b.to_owned()),
        (None, None) => None,
    };
    if id_raw.is_none() && !problems.iter().any(|x| x.path == "/id") {
        problems.push(p("/id", "error.path.missing"));
    }
    for (key, min) in [
        ("cpus", 0.001),
        ("mem", 0.0),
        ("disk", 0.0),
        ("backoffFactor", 1.0),
    ] {
        if obj
            .get(key)
            .and_then(Value::as_f64)
            .is_some_and(|v| v < min)
        {
            problems.push(p(&format!("/{key}"), "error.min"));
        }
    }
    for key in [
        "instances",
        "gpus",
        "backoffSeconds",
        "maxLaunchDelaySeconds",
        "taskKillGracePeriodSeconds",
    ] {
        if obj.get(key).and_then(Value::as_i64).is_some_and(|v| v < 0) {
            problems.push(p(&format!("/{key}"), "error.min"));
        }
    }
    if obj
        .get("cmd")
        .and_then(Value::as_str)
        .is_some_and(str::is_empty)
    {
        problems.push(p("/cmd", "error.minLength"));
    }
    check_string_map(obj.get("labels"), "/labels", false, &mut problems);
    check_string_map(obj.get("env"), "/env", true, &mut problems);
    for key in [
        "args",
        "uris",
        "acceptedResourceRoles",
        "dependencies",
        "storeUrls",
    ] {
        if let Some(Value::Array(items)) = obj.get(key) {
            for (i, it) in items.iter().enumerate() {
                if !it.is_string() {
                    problems.push(p(&format!("/{key}({i})"), "error.expected.jsstring"));
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(Invalid {
            json: true,
            problems,
        });
    }
    Ok(id_raw)
}

/// `key` is given and not empty (`null`, `[]` and `""` count as absent).
fn has(obj: &Map<String, Value>, key: &str) -> bool {
    match obj.get(key) {
        None | Some(Value::Null) => false,
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::String(s)) => !s.is_empty(),
        Some(_) => true,
    }
}

/// `key` is given and not `null` (an empty list counts).
fn given(obj: &Map<String, Value>, key: &str) -> bool {
    obj.get(key).is_some_and(|v| !v.is_null())
}

/// Step 2, object validation (`AppValidation`): every rule broken, as one "Object is not valid".
pub(super) fn check_app<'a>(
    obj: &'a Map<String, Value>,
    id_raw: Option<&str>,
) -> Result<Checked<'a>, Invalid> {
    let mut problems = Vec::new();
    let id = match canonical_id(id_raw.unwrap_or_default()) {
        Ok(id) => id,
        Err(e) => {
            problems.push(e);
            String::new()
        }
    };
    let container = obj.get("container").filter(|c| c.is_object());
    let cmd = has(obj, "cmd");
    let args = has(obj, "args");
    if !((cmd ^ args) || (!(cmd && args) && container.is_some())) {
        problems.push(p(
            "/",
            "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'.",
        ));
    }
    let ctype = check_container(obj, container, &mut problems);
    // `AppValidation.validateOldAppAPI`: both lists given (even empty) must agree.
    if given(obj, "ports") && given(obj, "portDefinitions") {
        let defined: Vec<Option<&Value>> = obj["portDefinitions"]
            .as_array()
            .map(|d| d.iter().map(|x| x.get("port")).collect())
            .unwrap_or_default();
        let ports: Vec<Option<&Value>> = obj["ports"]
            .as_array()
            .map(|d| d.iter().map(Some).collect())
            .unwrap_or_default();
        if defined != ports {
            problems.push(p("/", "cannot specify both ports and port definitions"));
        }
    }
    if has(obj, "uris") && has(obj, "fetch") {
        problems.push(p("/uris", "may not be set in conjunction with fetch"));
    }
    check_strategies(obj, container, &mut problems);
    if !problems.is_empty() {
        return Err(Invalid {
            json: false,
            problems,
        });
    }
    Ok(Checked {
        id,
        container,
        ctype,
        cmd,
        args,
    })
}

/// The `container` rules: its type, the Docker image, the legacy `docker.network`.
fn check_container<'a>(
    obj: &Map<String, Value>,
    container: Option<&'a Value>,
    problems: &mut Vec<Problem>,
) -> &'a str {
    let docker = container
        .and_then(|c| c.get("docker"))
        .filter(|d| d.is_object());
    let ctype = container
        .and_then(|c| c.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("DOCKER");
    if !matches!(ctype, "DOCKER" | "MESOS") {
        problems.push(p("/container/type", "error.expected.validenumvalue"));
    }
    if container.is_some() && ctype == "DOCKER" {
        match docker.and_then(|d| d.get("image")) {
            Some(Value::String(s)) if !s.is_empty() => {}
            _ => problems.push(p("/container/docker/image", "must not be empty")),
        }
    }
    let docker_network = docker
        .and_then(|d| d.get("network"))
        .and_then(Value::as_str);
    if let Some(n) = docker_network {
        if !matches!(n, "BRIDGE" | "HOST" | "NONE" | "USER") {
            problems.push(p(
                "/container/docker/network",
                "error.expected.validenumvalue",
            ));
        }
        if has(obj, "networks") {
            problems.push(p(
                "/",
                "must not specify both container.docker.network and networks",
            ));
        }
    }
    ctype
}

/// Resident apps, `upgradeStrategy`, `killSelection` and `constraints`.
fn check_strategies(
    obj: &Map<String, Value>,
    container: Option<&Value>,
    problems: &mut Vec<Problem>,
) {
    // Resident apps (1.6+: `residency` given, or implied by a persistent volume).
    let persistent = container
        .and_then(|c| c.get("volumes"))
        .and_then(Value::as_array)
        .is_some_and(|v| {
            v.iter()
                .any(|v| v.get("persistent").is_some_and(|p| !p.is_null()))
        });
    let resident = given(obj, "residency") || persistent;
    if resident {
        if let Some(mo) = obj
            .get("upgradeStrategy")
            .and_then(|u| u.get("maximumOverCapacity"))
            .and_then(Value::as_f64)
            .filter(|m| *m != 0.0)
        {
            problems.push(p(
                "/upgradeStrategy/maximumOverCapacity",
                format!("got {}, expected 0.0", java_double(mo)),
            ));
        }
        let unreachable_enabled = match obj.get("unreachableStrategy") {
            None | Some(Value::Null) => false,
            Some(Value::String(s)) => s != "disabled",
            Some(_) => true,
        };
        if given(obj, "residency") && unreachable_enabled {
            problems.push(p(
                "/",
                "unreachableStrategy must be disabled for resident tasks",
            ));
        }
    }
    if let Some(us) = obj.get("upgradeStrategy").and_then(Value::as_object) {
        for key in ["minimumHealthCapacity", "maximumOverCapacity"] {
            match us.get(key) {
                None => {}
                Some(v) => match v.as_f64() {
                    Some(x) if x > 1.0 => {
                        problems.push(p(&format!("/upgradeStrategy/{key}"), "is greater than 1"));
                    }
                    Some(x) if x < 0.0 => {
                        problems.push(p(&format!("/upgradeStrategy/{key}"), "is less than 0"));
                    }
                    Some(_) => {}
                    None => problems.push(p(
                        &format!("/upgradeStrategy/{key}"),
                        "error.expected.jsnumber",
                    )),
                },
            }
        }
    }
    if let Some(ks) = obj.get("killSelection").and_then(Value::as_str) {
        if !matches!(ks, "YOUNGEST_FIRST" | "OLDEST_FIRST") {
            problems.push(p("/killSelection", "error.expected.validenumvalue"));
        }
    }
    if let Some(Value::Array(cs)) = obj.get("constraints") {
        for (i, c) in cs.iter().enumerate() {
            let ok = c.as_array().is_some_and(|a| {
                (2..=3).contains(&a.len())
                    && a.iter().all(Value::is_string)
                    && matches!(
                        a[1].as_str(),
                        Some(
                            "UNIQUE"
                                | "CLUSTER"
                                | "GROUP_BY"
                                | "LIKE"
                                | "UNLIKE"
                                | "MAX_PER"
                                | "IS"
                        )
                    )
            });
            if !ok {
                problems.push(p(
                    &format!("/constraints({i})"),
                    "Each constraint must have either 2 or 3 fields and a valid operator",
                ));
            }
        }
    }
}

fn check_string_map(
    v: Option<&Value>,
    path: &str,
    allow_secret: bool,
    problems: &mut Vec<Problem>,
) {
    if let Some(Value::Object(m)) = v {
        for (k, v) in m {
            let ok =
                v.is_string() || (allow_secret && v.get("secret").is_some_and(Value::is_string));
            if !ok {
                problems.push(p(&format!("{path}/{k}"), "error.expected.jsstring"));
            }
        }
    }
}
