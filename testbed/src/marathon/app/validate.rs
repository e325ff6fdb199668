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
    /// What Play's reader says of `v`, when it is not of this kind. An `Int` is a 32-bit one,
    /// as Play reads it: a number that is not one is `error.expected.int` (2^40 `instances`
    /// were taken, and a task made for each).
    fn problem(self, v: &Value) -> Option<&'static str> {
        let fits = match self {
            Self::Number => v.is_number(),
            Self::Int if v.is_number() => {
                return v
                    .as_i64()
                    .and_then(|n| i32::try_from(n).ok())
                    .is_none()
                    .then_some("error.expected.int");
            }
            Self::Int => false,
            Self::Str => v.is_string(),
            Self::Bool => v.is_boolean(),
            Self::Obj => v.is_object(),
            Self::Arr => v.is_array(),
            Self::ObjOrStr => v.is_object() || v.is_string(),
        };
        (!fits).then_some(match self {
            Self::Number | Self::Int => "error.expected.jsnumber",
            Self::Str => "error.expected.jsstring",
            Self::Bool => "error.expected.jsboolean",
            Self::Obj | Self::ObjOrStr => "error.expected.jsobject",
            Self::Arr => "error.expected.jsarray",
        })
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
            if let Some(error) = kind.problem(v).filter(|_| !v.is_null()) {
                problems.push(p(&format!("/{key}"), error));
            }
        }
    }
    let id_raw = match (path_id, obj.get("id").and_then(Value::as_str)) {
        (Some(p), _) => Some(p.to_owned()),
        (None, Some(b)) => Some(b.to_owned()),
        (None, None) => None,
    };
    if obj
        .get("id")
        .and_then(Value::as_str)
        .is_some_and(|id| !matches_path_id_pattern(id))
    {
        problems.push(p("/id", "error.pattern"));
    }
    if id_raw.is_none() && !problems.iter().any(|x| x.path == "/id") {
        problems.push(p("/id", "error.path.missing"));
    }
    for (key, min) in frameworks::marathon::APP_MINIMUMS {
        if obj
            .get(*key)
            .and_then(Value::as_f64)
            .is_some_and(|v| v < *min)
        {
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
    for (i, n) in items(obj.get("networks")).iter().enumerate() {
        match n.get("mode") {
            None | Some(Value::Null) if n.is_object() => {}
            None | Some(Value::Null) => {
                problems.push(p(&format!("/networks({i})"), "error.expected.jsobject"));
            }
            Some(Value::String(m))
                if matches!(m.as_str(), "container" | "container/bridge" | "host") => {}
            Some(_) => problems.push(p(
                &format!("/networks({i})/mode"),
                "error.expected.validenumvalue",
            )),
        }
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

/// The RAML `PathId` pattern of an app's `id` (1.10, `stringTypes.raml`:
/// `^(\/?((\.\.)|(<segment>))?($|\/))+$`, `minLength: 1`): between the `/`s a valid segment,
/// `..` or nothing — so `/a/../b` and `/a//b` pass (to be canonicalised) and `/a/./b` does not.
fn matches_path_id_pattern(id: &str) -> bool {
    !id.is_empty()
        && id
            .split('/')
            .all(|s| s.is_empty() || s == ".." || frameworks::marathon::valid_segment(s))
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
    if obj
        .get("cmd")
        .and_then(Value::as_str)
        .is_some_and(|c| !c.is_empty() && frameworks::marathon::cmd_too_short(c))
    {
        // `AppValidation.validateCanonicalAppAPI`: `cmd.length() > 1`, reported on the app.
        problems.push(p("/", "must not be an empty string"));
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
    check_networks(obj, container, ctype, &mut problems);
    check_unique_ports(obj, container, &mut problems);
    check_health_ports(obj, container, &mut problems);
    for (name, _) in frameworks::marathon::undefined_env_secrets(obj) {
        problems.push(p(
            &format!("/env/{name}/secret"),
            "references an undefined secret",
        ));
    }
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
    check_constraints(obj, problems);
}

/// `SchedulingValidation.complyWithAppConstraintRules`: each constraint is 2 or 3 strings, a
/// field, a known operator, and a value the operator takes; every broken rule at
/// `/constraints(i)` in Marathon's words.
fn check_constraints(obj: &Map<String, Value>, problems: &mut Vec<Problem>) {
    let Some(Value::Array(cs)) = obj.get("constraints") else {
        return;
    };
    for (i, c) in cs.iter().enumerate() {
        if let Some(why) = constraint_problem(c) {
            problems.push(p(&format!("/constraints({i})"), why));
        }
    }
}

/// What Marathon says of one constraint, `None` when it takes it.
fn constraint_problem(c: &Value) -> Option<&'static str> {
    let words: Option<Vec<&str>> = c
        .as_array()
        .and_then(|a| a.iter().map(Value::as_str).collect());
    let Some(words) = words.filter(|w| (2..=3).contains(&w.len())) else {
        return Some("Each constraint must have either 2 or 3 fields");
    };
    let (field, op, value) = (words[0], words[1], words.get(2).copied());
    if field.is_empty() {
        return Some("illegal constraint specification");
    }
    let known = [
        "UNIQUE", "CLUSTER", "GROUP_BY", "LIKE", "UNLIKE", "MAX_PER", "IS",
    ];
    if !known.contains(&op.to_ascii_uppercase().as_str()) {
        return Some(
            "operator must be one of the following UNIQUE, CLUSTER, GROUP_BY, LIKE, MAX_PER, UNLIKE or IS",
        );
    }
    // The validation reads the operator in any case, but the app is then stored through
    // `Protos.Constraint.Operator.valueOf`, which knows only the upper-case names.
    if !known.contains(&op) {
        return Some("illegal constraint specification");
    }
    let int = |v: &str| v.parse::<i32>().is_ok();
    match (op, value) {
        ("UNIQUE", Some(_)) => Some("UNIQUE does not accept a value"),
        ("GROUP_BY", Some(v)) if !int(v) => {
            Some("GROUP BY must define an integer value or else no value at all")
        }
        ("MAX_PER", v) if !v.is_some_and(int) => Some("MAX_PER requires an integer value"),
        ("LIKE" | "UNLIKE", None) => {
            Some("LIKE and UNLIKE require a non-empty, regular expression value")
        }
        ("LIKE" | "UNLIKE", Some(v)) if !crate::formats::java_regex(v) => {
            Some("is not a valid regular expression")
        }
        ("IS", v)
            if !v
                .unwrap_or_default()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'/' | b'.' | b'-')) =>
        {
            Some(
                "IS only supports Mesos text and float values (see http://mesos.apache.org/documentation/latest/attributes-resources/)",
            )
        }
        _ => None,
    }
}

/// The network rules (`NetworkValidation.ramlNetworksValidator`, `defaultNetworkNameValidator`
/// with no `--default_network_name`, `complyWithDockerNetworkingRules`) and where ports may be
/// declared for them (`validateCanonicalAppAPI`).
fn check_networks(
    obj: &Map<String, Value>,
    container: Option<&Value>,
    ctype: &str,
    problems: &mut Vec<Problem>,
) {
    let Some(Value::Array(nets)) = obj.get("networks") else {
        return;
    };
    // (mode, name) of each network; `mode` defaults to `container`.
    let nets: Vec<(&str, Option<&str>, bool)> = nets
        .iter()
        .map(|n| {
            let mode = n.get("mode").and_then(Value::as_str).unwrap_or("container");
            let name = n
                .get("name")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty());
            let labels = n
                .get("labels")
                .and_then(Value::as_object)
                .is_some_and(|l| !l.is_empty());
            (mode, name, labels)
        })
        .collect();
    let count = |m: &str| nets.iter().filter(|n| n.0 == m).count();
    let (host, bridge, named) = (count("host"), count("container/bridge"), count("container"));
    let mut rule = |ok: bool, why: &str| {
        if !ok {
            problems.push(p("/networks", why));
        }
    };
    rule(
        !nets
            .iter()
            .any(|(m, name, labels)| *m == "host" && (name.is_some() || *labels)),
        "Host networks may not have names or labels",
    );
    rule(
        !nets
            .iter()
            .any(|(m, name, _)| *m == "container/bridge" && name.is_some()),
        "Bridge networks may not have names",
    );
    let mut names: Vec<&str> = nets.iter().filter_map(|n| n.1).collect();
    names.sort_unstable();
    let unnamed = nets
        .iter()
        .filter(|(m, name, _)| *m == "container" && name.is_none())
        .count();
    rule(
        unnamed < 2 && names.windows(2).all(|w| w[0] != w[1]),
        "Duplicate networks are not allowed",
    );
    rule(
        (host <= 1 && bridge == 0 && named == 0)
            || (host == 0 && bridge <= 1 && named == 0)
            || (host == 0 && bridge == 0 && named > 0),
        "May specify a single host network, single bridge network, or else 1-to-n container networks",
    );
    rule(
        unnamed == 0,
        "Network name must be specified when container network is selected.",
    );
    if container.is_some() && ctype == "DOCKER" && named > 1 {
        problems.push(p(
            "/",
            "may only specify a single container network when using the Docker container engine",
        ));
    }
    let mappings = container
        .and_then(|c| c.get("portMappings"))
        .and_then(Value::as_array)
        .is_some_and(|m| !m.is_empty());
    if host > 0 && mappings {
        problems.push(p("/", "portMappings are not allowed with host-networking"));
    }
    let definitions = obj
        .get("portDefinitions")
        .and_then(Value::as_array)
        .is_some_and(|d| !d.is_empty());
    if nets.iter().any(|n| n.0 != "host") && definitions {
        problems.push(p(
            "/",
            "portDefinitions are only allowed with host-networking",
        ));
    }
}

/// The elements of an array field (none when absent or of another type).
fn items(v: Option<&Value>) -> &[Value] {
    v.and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// Some value is given twice in `values` (the `null`s, left out, are not values).
fn repeats<'a>(values: impl Iterator<Item = &'a Value>) -> bool {
    let mut seen: Vec<&Value> = Vec::new();
    for v in values.filter(|v| !v.is_null()) {
        if seen.contains(&v) {
            return true;
        }
        seen.push(v);
    }
    false
}

/// Ports and port names declared twice (`portDefinitionsValidator`, `validateOldAppAPI`,
/// `portMappingsIndependentOfNetworks`); port 0 (any port) may repeat.
fn check_unique_ports(
    obj: &Map<String, Value>,
    container: Option<&Value>,
    problems: &mut Vec<Problem>,
) {
    let any_port = |v: &&Value| v.as_i64() != Some(0);
    let definitions = items(obj.get("portDefinitions"));
    if repeats(definitions.iter().filter_map(|d| d.get("name"))) {
        problems.push(p("/portDefinitions", "Port names must be unique."));
    }
    if repeats(
        definitions
            .iter()
            .filter_map(|d| d.get("port"))
            .filter(any_port),
    ) {
        problems.push(p("/portDefinitions", "Ports must be unique."));
    }
    if repeats(items(obj.get("ports")).iter().filter(any_port)) {
        problems.push(p("/", "ports must be unique"));
    }
    for (path, mappings) in [
        (
            "/container/portMappings",
            container.and_then(|c| c.get("portMappings")),
        ),
        (
            "/container/docker/portMappings",
            container
                .and_then(|c| c.get("docker"))
                .and_then(|d| d.get("portMappings")),
        ),
    ] {
        if repeats(items(mappings).iter().filter_map(|m| m.get("name"))) {
            problems.push(p(path, "Port names must be unique."));
        }
    }
}

/// `portIndexIsValid`: a Marathon health check (HTTP, HTTPS, TCP, without `command`) must name a
/// port the app has — by `portIndex`, by `port`, or, without either, the app's only port. The
/// ports are the container's port mappings if it has any, else the port definitions (or legacy
/// `ports`), else, on host networking, the one any-port definition Marathon adds.
fn check_health_ports(
    obj: &Map<String, Value>,
    container: Option<&Value>,
    problems: &mut Vec<Problem>,
) {
    let mappings = container.map_or(0, |c| {
        items(c.get("portMappings"))
            .len()
            .max(items(c.get("docker").and_then(|d| d.get("portMappings"))).len())
    });
    let host_networking = items(obj.get("networks"))
        .iter()
        .all(|n| n.get("mode").and_then(Value::as_str) == Some("host"))
        && container
            .and_then(|c| c.get("docker"))
            .and_then(|d| d.get("network"))
            .and_then(Value::as_str)
            .is_none_or(|n| n == "HOST");
    let ports = if mappings > 0 {
        mappings
    } else if given(obj, "portDefinitions") {
        items(obj.get("portDefinitions")).len()
    } else if given(obj, "ports") {
        items(obj.get("ports")).len()
    } else {
        usize::from(host_networking)
    };
    for (i, hc) in items(obj.get("healthChecks")).iter().enumerate() {
        let protocol = hc.get("protocol").and_then(Value::as_str).unwrap_or("HTTP");
        let command = hc.get("command").is_some_and(|c| !c.is_null());
        if command || !matches!(protocol, "HTTP" | "HTTPS" | "TCP") {
            continue;
        }
        let ok = match hc.get("portIndex").and_then(Value::as_i64) {
            Some(idx) => usize::try_from(idx).is_ok_and(|idx| idx < ports),
            None => hc.get("port").is_some_and(|p| !p.is_null()) || ports == 1,
        };
        if !ok {
            problems.push(p(
                &format!("/healthChecks({i})"),
                "Health check port indices must address an element of the ports array or container port mappings.",
            ));
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
