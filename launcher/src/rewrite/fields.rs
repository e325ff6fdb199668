//! Typed fields given as strings: every numeric and boolean field of a Marathon app or a Chronos
//! job that the frameworks read as a number or a boolean is written as one.
//!
//! Job files in the wild carry `"cpus": "1"`, `"mem": "500"`, `"async": "false"` (the thesis' own
//! files do). Marathon 1.5+ refuses any of those with a 422 at submit time; Chronos reads them with
//! Jackson's `asDouble`/`asInt`/`asBoolean`, which turn a string that is not a number into `0`
//! (then Chronos' default) and anything but `"true"` into `false` — silently. So the launcher
//! converts every such string whose meaning is clear (`"64"`, `"0.5"`, `"true"`) and refuses the
//! others with the field's path, before anything is registered or submitted.
//!
//! The field lists follow the frameworks' own readers: Marathon's RAML `App` type (1.10: `app.raml`,
//! `appContainer.raml`, `network.raml`, `healthCheck.raml`, `readinessCheck.raml`,
//! `volumes.raml`) and Chronos' `JobDeserializer` (3.x).

use serde_json::{Map, Number, Value};

use super::{Origin, kind_of};
use crate::error::LauncherError;

/// What a field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// Any JSON number.
    Number,
    /// A whole number.
    Int,
    /// `true` or `false`.
    Bool,
    /// A number, or the string `"unlimited"` (Marathon 1.10's `resourceLimits`).
    NumberOrUnlimited,
}

use Kind::{Bool, Int, Number as Num, NumberOrUnlimited};

/// Marathon's typed fields, as paths (`a.b`, `list[]` for every element of an array).
pub(super) const MARATHON: &[(&str, Kind)] = &[
    ("cpus", Num),
    ("mem", Num),
    ("disk", Num),
    ("gpus", Int),
    ("instances", Int),
    ("backoffSeconds", Int),
    ("backoffFactor", Num),
    ("maxLaunchDelaySeconds", Int),
    ("taskKillGracePeriodSeconds", Int),
    ("requirePorts", Bool),
    ("tty", Bool),
    ("ports[]", Int),
    ("portDefinitions[].port", Int),
    ("upgradeStrategy.minimumHealthCapacity", Num),
    ("upgradeStrategy.maximumOverCapacity", Num),
    ("unreachableStrategy.inactiveAfterSeconds", Int),
    ("unreachableStrategy.expungeAfterSeconds", Int),
    ("resourceLimits.cpus", NumberOrUnlimited),
    ("resourceLimits.mem", NumberOrUnlimited),
    ("executorResources.cpus", Num),
    ("executorResources.mem", Num),
    ("executorResources.disk", Num),
    ("residency.relaunchEscalationTimeoutSeconds", Int),
    ("fetch[].extract", Bool),
    ("fetch[].executable", Bool),
    ("fetch[].cache", Bool),
    ("container.docker.forcePullImage", Bool),
    ("container.docker.privileged", Bool),
    ("container.portMappings[].containerPort", Int),
    ("container.portMappings[].hostPort", Int),
    ("container.portMappings[].servicePort", Int),
    ("container.docker.portMappings[].containerPort", Int),
    ("container.docker.portMappings[].hostPort", Int),
    ("container.docker.portMappings[].servicePort", Int),
    ("container.volumes[].persistent.size", Int),
    ("container.volumes[].persistent.maxSize", Int),
    ("container.volumes[].external.size", Int),
    ("ipAddress.discovery.ports[].number", Int),
    ("healthChecks[].gracePeriodSeconds", Int),
    ("healthChecks[].intervalSeconds", Int),
    ("healthChecks[].timeoutSeconds", Int),
    ("healthChecks[].maxConsecutiveFailures", Int),
    ("healthChecks[].delaySeconds", Int),
    ("healthChecks[].port", Int),
    ("healthChecks[].portIndex", Int),
    ("healthChecks[].ignoreHttp1xx", Bool),
    ("readinessChecks[].intervalSeconds", Int),
    ("readinessChecks[].timeoutSeconds", Int),
    ("readinessChecks[].httpStatusCodesForReady[]", Int),
    ("readinessChecks[].preserveLastResponse", Bool),
];

/// Chronos' typed fields (`JobDeserializer`).
pub(super) const CHRONOS: &[(&str, Kind)] = &[
    ("cpus", Num),
    ("mem", Num),
    ("disk", Num),
    ("retries", Int),
    ("maxCompletionTime", Int),
    ("shell", Bool),
    ("async", Bool),
    ("disabled", Bool),
    ("concurrent", Bool),
    ("softError", Bool),
    ("highPriority", Bool),
    ("dataProcessingJobType", Bool),
    ("fetch[].executable", Bool),
    ("fetch[].cache", Bool),
    ("fetch[].extract", Bool),
    ("container.forcePullImage", Bool),
    ("container.networkInfos[].portMappings[].hostPort", Int),
    ("container.networkInfos[].portMappings[].containerPort", Int),
];

/// Converts every string in a typed field of `body` to its number or boolean; a value that is
/// not one (or of another JSON type) is an error naming the field's path.
pub(super) fn coerce(
    body: &mut Map<String, Value>,
    schema: &[(&str, Kind)],
    origin: Origin<'_>,
) -> Result<(), LauncherError> {
    for (path, kind) in schema {
        let segments: Vec<&str> = path.split('.').collect();
        visit_map(body, &segments, "", *kind, origin)?;
    }
    Ok(())
}

fn visit_map(
    map: &mut Map<String, Value>,
    segments: &[&str],
    shown: &str,
    kind: Kind,
    origin: Origin<'_>,
) -> Result<(), LauncherError> {
    let Some((first, rest)) = segments.split_first() else {
        return Ok(());
    };
    let (key, each) = match first.strip_suffix("[]") {
        Some(k) => (k, true),
        None => (*first, false),
    };
    let Some(value) = map.get_mut(key) else {
        return Ok(());
    };
    let shown = if shown.is_empty() {
        key.to_owned()
    } else {
        format!("{shown}.{key}")
    };
    if each {
        let Value::Array(items) = value else {
            // A list of another type is the framework's to refuse (or the rewrite's).
            return Ok(());
        };
        for (i, item) in items.iter_mut().enumerate() {
            visit_value(item, rest, &format!("{shown}[{i}]"), kind, origin)?;
        }
        Ok(())
    } else {
        visit_value(value, rest, &shown, kind, origin)
    }
}

fn visit_value(
    value: &mut Value,
    rest: &[&str],
    shown: &str,
    kind: Kind,
    origin: Origin<'_>,
) -> Result<(), LauncherError> {
    if rest.is_empty() {
        return convert(value, kind).map_err(|why| origin.field(shown, why));
    }
    match value {
        Value::Object(m) => visit_map(m, rest, shown, kind, origin),
        _ => Ok(()),
    }
}

/// Converts one value in place; `Err` says what the field must hold.
fn convert(value: &mut Value, kind: Kind) -> Result<(), String> {
    let wanted = match kind {
        Num => "a number",
        Int => "a whole number",
        Bool => "true or false",
        NumberOrUnlimited => "a number or \"unlimited\"",
    };
    let bad = |v: &Value| {
        let shown = match v {
            Value::String(_) | Value::Number(_) | Value::Bool(_) => v.to_string(),
            other => kind_of(other).to_owned(),
        };
        Err(format!("must be {wanted}, got {shown}"))
    };
    match (kind, &*value) {
        (_, Value::Null) => Ok(()),
        (Bool, Value::Bool(_)) => Ok(()),
        (Bool, Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" => {
                *value = Value::Bool(true);
                Ok(())
            }
            "false" => {
                *value = Value::Bool(false);
                Ok(())
            }
            _ => bad(value),
        },
        (NumberOrUnlimited, Value::String(s)) if s.trim() == "unlimited" => {
            *value = Value::String("unlimited".to_owned());
            Ok(())
        }
        (Num | NumberOrUnlimited, Value::Number(_)) => Ok(()),
        (Int, Value::Number(n)) => match n.as_f64() {
            _ if n.is_i64() || n.is_u64() => Ok(()),
            Some(x) if x.fract() == 0.0 && x.abs() < 9.0e15 => {
                // Whole and in range.
                let whole = x as i64;
                *value = Value::from(whole);
                Ok(())
            }
            _ => bad(value),
        },
        (Num | NumberOrUnlimited | Int, Value::String(s)) => {
            let t = s.trim();
            if kind == Int {
                if let Ok(i) = t.parse::<i64>() {
                    *value = Value::from(i);
                    return Ok(());
                }
                return bad(value);
            }
            match t.parse::<f64>() {
                // Integral text stays an integer (`"64"` → 64, not 64.0).
                Ok(_) if t.parse::<i64>().is_ok() => {
                    *value = Value::from(t.parse::<i64>().unwrap_or_default());
                    Ok(())
                }
                Ok(x) => match Number::from_f64(x) {
                    Some(n) => {
                        *value = Value::Number(n);
                        Ok(())
                    }
                    None => bad(value),
                },
                Err(_) => bad(value),
            }
        }
        _ => bad(value),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn run(schema: &[(&str, Kind)], v: Value) -> Result<Value, String> {
        let Value::Object(mut m) = v else {
            unreachable!()
        };
        coerce(&mut m, schema, Origin("job.json"))
            .map(|()| Value::Object(m))
            .map_err(|e| e.message)
    }

    #[test]
    fn strings_become_numbers_and_booleans() {
        let out = run(
            MARATHON,
            json!({"cpus": "0.5", "mem": "64", "disk": " 0 ", "instances": "1", "gpus": 0,
                   "ports": ["0", 8080], "portDefinitions": [{"port": "10001"}],
                   "container": {"docker": {"forcePullImage": "TRUE", "portMappings": [
                       {"containerPort": "80", "hostPort": 0.0}]}},
                   "resourceLimits": {"cpus": "unlimited", "mem": "512"},
                   "healthChecks": [{"intervalSeconds": "10", "protocol": "HTTP"}],
                   "readinessChecks": [{"httpStatusCodesForReady": ["200"]}]}),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"cpus": 0.5, "mem": 64, "disk": 0, "instances": 1, "gpus": 0,
                   "ports": [0, 8080], "portDefinitions": [{"port": 10001}],
                   "container": {"docker": {"forcePullImage": true, "portMappings": [
                       {"containerPort": 80, "hostPort": 0}]}},
                   "resourceLimits": {"cpus": "unlimited", "mem": 512},
                   "healthChecks": [{"intervalSeconds": 10, "protocol": "HTTP"}],
                   "readinessChecks": [{"httpStatusCodesForReady": [200]}]})
        );
        let out = run(
            CHRONOS,
            json!({"cpus": "1", "mem": "500", "async": "false", "shell": "true",
                   "fetch": [{"uri": "u", "extract": "false"}]}),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"cpus": 1, "mem": 500, "async": false, "shell": true,
                   "fetch": [{"uri": "u", "extract": false}]})
        );
    }

    #[test]
    fn what_is_not_a_number_names_its_field() {
        for (schema, v, msg) in [
            (
                MARATHON,
                json!({"mem": "lots"}),
                "field mem: must be a number, got \"lots\"",
            ),
            (
                MARATHON,
                json!({"instances": "1.5"}),
                "field instances: must be a whole number, got \"1.5\"",
            ),
            (
                MARATHON,
                json!({"container": {"portMappings": [{}, {"hostPort": {}}]}}),
                "field container.portMappings[1].hostPort: must be a whole number, got an object",
            ),
            (
                MARATHON,
                json!({"requirePorts": "yes"}),
                "field requirePorts: must be true or false, got \"yes\"",
            ),
            (
                CHRONOS,
                json!({"cpus": "one"}),
                "field cpus: must be a number, got \"one\"",
            ),
            (
                CHRONOS,
                json!({"retries": 1.5}),
                "field retries: must be a whole number, got 1.5",
            ),
        ] {
            let e = run(schema, v).unwrap_err();
            assert!(e.contains(msg), "{e}");
        }
    }
}
