//! Reading an app definition as Marathon 1.5+ does: type checks ("Invalid JSON", 422), object
//! validation ("Object is not valid", 422), normalization with the defaults Marathon fills in,
//! and **silently dropping every key Marathon does not know** (its readers are generated from
//! the RAML `App` type and never look at extra keys, so e.g. a `qos` block is gone on GET).

use serde_json::{Map, Value, json};

use crate::formats::java_double;

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

fn label_ok(label: &str) -> bool {
    !label.is_empty()
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

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
            s if s.split('.').all(label_ok) => segments.push(s),
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

/// Output order of a stored app (that of Marathon 1.10's `AppInfo`).
const ORDER: &[&str] = &[
    "id",
    "acceptedResourceRoles",
    "backoffFactor",
    "backoffSeconds",
    "cmd",
    "args",
    "constraints",
    "container",
    "cpus",
    "dependencies",
    "disk",
    "env",
    "executor",
    "fetch",
    "gpus",
    "healthChecks",
    "check",
    "instances",
    "killSelection",
    "labels",
    "maxLaunchDelaySeconds",
    "mem",
    "networks",
    "portDefinitions",
    "readinessChecks",
    "requirePorts",
    "residency",
    "resourceLimits",
    "role",
    "secrets",
    "storeUrls",
    "taskKillGracePeriodSeconds",
    "tty",
    "unreachableStrategy",
    "upgradeStrategy",
    "user",
    "ipAddress",
];

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
    let id_raw = check_types(obj, path_id)?;
    let app = check_app(obj, id_raw.as_deref())?;
    Ok(complete(obj, &app))
}

/// Step 1, the types (Play JSON readers): any mistyped known key is an "Invalid JSON" error.
/// Returns the raw id (`path_id` wins over the body's).
fn check_types(obj: &Map<String, Value>, path_id: Option<&str>) -> Result<Option<String>, Invalid> {
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
fn check_app<'a>(
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

/// Step 3, the normalised, complete definition: Marathon's keys only, defaults filled in, in
/// Marathon's order.
fn complete(obj: &Map<String, Value>, app: &Checked<'_>) -> Map<String, Value> {
    let mut out = Map::new();
    let get = |k: &str| obj.get(k).filter(|v| !v.is_null()).cloned();
    out.insert("id".into(), Value::String(app.id.clone()));
    out.insert(
        "acceptedResourceRoles".into(),
        get("acceptedResourceRoles").unwrap_or_else(|| json!(["*"])),
    );
    out.insert(
        "backoffFactor".into(),
        get("backoffFactor").unwrap_or(json!(1.15)),
    );
    out.insert(
        "backoffSeconds".into(),
        get("backoffSeconds").unwrap_or(json!(1)),
    );
    if app.cmd {
        out.insert("cmd".into(), get("cmd").unwrap_or_default());
    }
    if app.args {
        out.insert("args".into(), get("args").unwrap_or_default());
    }
    out.insert(
        "constraints".into(),
        get("constraints").unwrap_or(json!([])),
    );
    let mut networks = get("networks");
    if let Some(c) = app.container {
        let (c, legacy_networks) = normalize_container(c, app.ctype);
        if networks.is_none() {
            networks = legacy_networks;
        }
        out.insert("container".into(), c);
    }
    out.insert("cpus".into(), get("cpus").unwrap_or(json!(1.0)));
    out.insert(
        "dependencies".into(),
        get("dependencies").unwrap_or(json!([])),
    );
    out.insert("disk".into(), get("disk").unwrap_or(json!(0)));
    out.insert("env".into(), get("env").unwrap_or(json!({})));
    out.insert("executor".into(), get("executor").unwrap_or(json!("")));
    out.insert("fetch".into(), fetch(get("fetch"), get("uris")));
    out.insert("gpus".into(), get("gpus").unwrap_or(json!(0)));
    out.insert(
        "healthChecks".into(),
        get("healthChecks").unwrap_or(json!([])),
    );
    if let Some(c) = get("check") {
        out.insert("check".into(), c);
    }
    out.insert("instances".into(), get("instances").unwrap_or(json!(1)));
    out.insert(
        "killSelection".into(),
        get("killSelection").unwrap_or(json!("YOUNGEST_FIRST")),
    );
    out.insert("labels".into(), get("labels").unwrap_or(json!({})));
    out.insert(
        "maxLaunchDelaySeconds".into(),
        get("maxLaunchDelaySeconds").unwrap_or(json!(300)),
    );
    out.insert("mem".into(), get("mem").unwrap_or(json!(128.0)));
    out.insert(
        "networks".into(),
        networks.unwrap_or_else(|| json!([{"mode": "host"}])),
    );
    let host_net = out["networks"].as_array().is_some_and(|n| {
        n.iter()
            .all(|x| x.get("mode").and_then(Value::as_str) == Some("host"))
    });
    let port_defs = port_definitions(get("portDefinitions"), get("ports"), host_net);
    out.insert("portDefinitions".into(), port_defs);
    out.insert(
        "readinessChecks".into(),
        get("readinessChecks").unwrap_or(json!([])),
    );
    out.insert(
        "requirePorts".into(),
        get("requirePorts").unwrap_or(json!(false)),
    );
    for k in [
        "residency",
        "resourceLimits",
        "storeUrls",
        "taskKillGracePeriodSeconds",
        "tty",
        "user",
        "ipAddress",
    ] {
        if let Some(v) = get(k) {
            out.insert(k.into(), v);
        }
    }
    out.insert("role".into(), get("role").unwrap_or(json!("*")));
    out.insert("secrets".into(), get("secrets").unwrap_or(json!({})));
    out.insert(
        "unreachableStrategy".into(),
        get("unreachableStrategy")
            .unwrap_or(json!({"inactiveAfterSeconds": 0, "expungeAfterSeconds": 0})),
    );
    out.insert(
        "upgradeStrategy".into(),
        upgrade_strategy(get("upgradeStrategy")),
    );
    // Canonical key order.
    let mut ordered = Map::new();
    for k in ORDER {
        if let Some(v) = out.shift_remove(*k) {
            ordered.insert((*k).to_owned(), v);
        }
    }
    ordered
}

/// `fetch`, or the legacy `uris` read as fetch entries (archives extracted).
fn fetch(fetch: Option<Value>, uris: Option<Value>) -> Value {
    match (fetch, uris) {
        (Some(f), _) => f,
        (None, Some(Value::Array(uris))) => Value::Array(
            uris.iter()
                .map(|u| {
                    let s = u.as_str().unwrap_or_default();
                    let extract = [
                        ".tgz", ".tar.gz", ".tbz2", ".tar.bz2", ".txz", ".tar.xz", ".zip",
                    ]
                    .iter()
                    .any(|e| s.ends_with(e));
                    json!({"uri": s, "extract": extract, "executable": false, "cache": false})
                })
                .collect(),
        ),
        _ => json!([]),
    }
}

/// `portDefinitions`, or the legacy `ports`; one any-port definition on host networking.
fn port_definitions(defs: Option<Value>, ports: Option<Value>, host_net: bool) -> Value {
    match (defs, ports) {
        (Some(pd), _) => pd,
        (None, Some(Value::Array(ports))) => Value::Array(
            ports
                .iter()
                .map(|p| json!({"port": p, "protocol": "tcp"}))
                .collect(),
        ),
        _ if host_net => json!([{"port": 0, "protocol": "tcp"}]),
        _ => json!([]),
    }
}

/// `upgradeStrategy` with Marathon's defaults for what is not given.
fn upgrade_strategy(strategy: Option<Value>) -> Value {
    let mut us = json!({"minimumHealthCapacity": 1.0, "maximumOverCapacity": 1.0});
    if let Some(Value::Object(given)) = strategy {
        for (k, v) in given {
            if matches!(k.as_str(), "minimumHealthCapacity" | "maximumOverCapacity") {
                us[k] = v;
            }
        }
    }
    us
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

/// The container as Marathon 1.5+ returns it, and the `networks` implied by a legacy
/// `container.docker.network`.
fn normalize_container(c: &Value, ctype: &str) -> (Value, Option<Value>) {
    let mut out = Map::new();
    out.insert("type".into(), json!(ctype));
    let mut networks = None;
    let mut port_mappings = c.get("portMappings").cloned();
    if let Some(d) = c.get("docker").and_then(Value::as_object) {
        let mut docker = Map::new();
        docker.insert("image".into(), d.get("image").cloned().unwrap_or(json!("")));
        docker.insert(
            "forcePullImage".into(),
            d.get("forcePullImage").cloned().unwrap_or(json!(false)),
        );
        docker.insert(
            "privileged".into(),
            d.get("privileged").cloned().unwrap_or(json!(false)),
        );
        docker.insert(
            "parameters".into(),
            d.get("parameters").cloned().unwrap_or(json!([])),
        );
        if let Some(pc) = d.get("pullConfig") {
            docker.insert("pullConfig".into(), pc.clone());
        }
        if port_mappings.is_none() {
            port_mappings = d.get("portMappings").cloned();
        }
        networks = d.get("network").and_then(Value::as_str).map(|n| match n {
            "HOST" => json!([{"mode": "host"}]),
            "BRIDGE" => json!([{"mode": "container/bridge"}]),
            "USER" => json!([{"mode": "container"}]),
            _ => json!([]),
        });
        out.insert("docker".into(), Value::Object(docker));
    }
    out.insert(
        "volumes".into(),
        c.get("volumes").cloned().unwrap_or(json!([])),
    );
    if let Some(pm) = port_mappings {
        out.insert("portMappings".into(), pm);
    }
    (Value::Object(out), networks)
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
