//! Step 3 of reading an app: the complete definition Marathon stores and answers with, its
//! keys only, the defaults it fills in and the legacy forms (`uris`, `ports`,
//! `container.docker.network`) turned into today's, in the order of its `AppInfo`.

use serde_json::{Map, Value, json};

use super::Checked;

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

/// Step 3, the normalised, complete definition: Marathon's keys only, defaults filled in, in
/// Marathon's order.
pub(super) fn complete(obj: &Map<String, Value>, app: &Checked<'_>) -> Map<String, Value> {
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
