//! Reading a Chronos job as `JobDeserializer` does and writing it back as Chronos 2.5.1's
//! `JobSerializer` does: a fixed key list, so unknown keys (e.g. `qos`) are ignored and never
//! returned; numbers may arrive as strings (`"cpus": "1"`) and booleans as `"false"`.

use frameworks::Schedule;
use frameworks::lenient::{as_bool, as_f64, as_u64};
use serde_json::{Map, Value, json};

use crate::config::Config;

/// A job definition as stored.
#[derive(Debug, Clone)]
pub(crate) struct JobDef {
    pub(crate) map: Map<String, Value>,
    /// Parsed schedule; `None` for a dependent job.
    pub(crate) schedule: Option<Schedule>,
    pub(crate) parents: Vec<String>,
}

/// A 400 with Chronos' message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadRequest(pub(crate) String);

/// Chronos' `JobUtils.jobNamePattern`.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn s(obj: &Map<String, Value>, k: &str, d: &str) -> Value {
    Value::String(obj.get(k).and_then(Value::as_str).unwrap_or(d).to_owned())
}

fn b(obj: &Map<String, Value>, k: &str, d: bool) -> Value {
    Value::Bool(obj.get(k).and_then(as_bool).unwrap_or(d))
}

fn n(obj: &Map<String, Value>, k: &str) -> Value {
    json!(obj.get(k).and_then(as_u64).unwrap_or(0))
}

fn res(obj: &Map<String, Value>, k: &str, default: f64) -> Value {
    json!(
        obj.get(k)
            .and_then(as_f64)
            .filter(|v| *v > 0.0)
            .unwrap_or(default)
    )
}

fn strings(v: Option<&Value>) -> Vec<Value> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter(|x| x.is_string()).cloned().collect())
        .unwrap_or_default()
}

/// Parses a posted job. `dependent_endpoint`: posted to `/dependency`.
pub(crate) fn parse(
    body: &Value,
    cfg: &Config,
    dependent_endpoint: bool,
) -> Result<JobDef, BadRequest> {
    let obj = body
        .as_object()
        .ok_or_else(|| BadRequest("the job must be a JSON object".to_owned()))?;
    let name = obj
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| BadRequest("the job has no name".to_owned()))?;
    if !valid_name(name) {
        return Err(BadRequest(
            r"requirement failed: the job's name is invalid. Allowed names: '([\w\.-]+)'"
                .to_owned(),
        ));
    }
    let parents: Vec<String> = obj
        .get("parents")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let dependent = obj.get("parents").is_some_and(Value::is_array)
        || (dependent_endpoint && !parents.is_empty());
    if dependent && parents.is_empty() {
        return Err(BadRequest(
            "requirement failed: a dependent job needs parents".to_owned(),
        ));
    }
    let schedule_text = obj
        .get("schedule")
        .and_then(Value::as_str)
        .unwrap_or("R1//PT24H")
        .to_owned();
    let schedule = if dependent {
        None
    } else {
        Some(Schedule::parse(&schedule_text).map_err(|_| {
            BadRequest(format!("Cannot parse schedule '{schedule_text}' (wtf bro)"))
        })?)
    };
    let uris = strings(obj.get("uris"));
    let fetch: Vec<Value> = obj
        .get("fetch")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !uris.is_empty() && !fetch.is_empty() {
        return Err(BadRequest(
            "Tried to add both uri (deprecated) and fetch parameters on job".to_owned(),
        ));
    }
    let fetch: Vec<Value> = if fetch.is_empty() {
        uris.iter()
            .map(|u| json!({"uri": u, "executable": false, "cache": false, "extract": true, "output_file": ""}))
            .collect()
    } else {
        fetch
            .iter()
            .filter_map(|f| {
                let uri = f.get("uri")?.as_str()?;
                Some(json!({
                    "uri": uri,
                    "executable": f.get("executable").and_then(as_bool).unwrap_or(false),
                    "cache": f.get("cache").and_then(as_bool).unwrap_or(false),
                    "extract": f.get("extract").and_then(as_bool).unwrap_or(true),
                    "output_file": f.get("output_file").and_then(Value::as_str).unwrap_or(""),
                }))
            })
            .collect()
    };
    let uris: Vec<Value> = fetch.iter().filter_map(|f| f.get("uri").cloned()).collect();
    let env: Vec<Value> = obj
        .get("environmentVariables")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|e| {
                    Some(json!({"name": e.get("name")?.as_str()?, "value": e.get("value").and_then(Value::as_str).unwrap_or("")}))
                })
                .collect()
        })
        .unwrap_or_default();
    let constraints: Vec<Value> = obj
        .get("constraints")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter(|c| {
                    c.as_array().is_some_and(|c| {
                        c.len() == 3
                            && c.iter().all(Value::is_string)
                            && matches!(c[1].as_str(), Some("EQUALS" | "LIKE" | "UNLIKE"))
                    })
                })
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let mut m = Map::new();
    m.insert("name".into(), json!(name));
    m.insert("command".into(), s(obj, "command", ""));
    m.insert("shell".into(), b(obj, "shell", true));
    m.insert("epsilon".into(), s(obj, "epsilon", "PT60S"));
    m.insert("executor".into(), s(obj, "executor", ""));
    m.insert("executorFlags".into(), s(obj, "executorFlags", ""));
    m.insert("taskInfoData".into(), s(obj, "taskInfoData", ""));
    m.insert(
        "retries".into(),
        json!(obj.get("retries").and_then(as_u64).unwrap_or(2)),
    );
    m.insert("owner".into(), s(obj, "owner", ""));
    m.insert("ownerName".into(), s(obj, "ownerName", ""));
    m.insert("description".into(), s(obj, "description", ""));
    m.insert("async".into(), b(obj, "async", false));
    m.insert("successCount".into(), n(obj, "successCount"));
    m.insert("errorCount".into(), n(obj, "errorCount"));
    m.insert("lastSuccess".into(), s(obj, "lastSuccess", ""));
    m.insert("lastError".into(), s(obj, "lastError", ""));
    m.insert("cpus".into(), res(obj, "cpus", cfg.chronos_default_cpus));
    m.insert("disk".into(), res(obj, "disk", cfg.chronos_default_disk));
    m.insert("mem".into(), res(obj, "mem", cfg.chronos_default_mem));
    m.insert("disabled".into(), b(obj, "disabled", false));
    m.insert("softError".into(), b(obj, "softError", false));
    m.insert(
        "dataProcessingJobType".into(),
        b(obj, "dataProcessingJobType", false),
    );
    m.insert(
        "errorsSinceLastSuccess".into(),
        n(obj, "errorsSinceLastSuccess"),
    );
    m.insert("fetch".into(), Value::Array(fetch));
    m.insert("uris".into(), Value::Array(uris));
    m.insert("environmentVariables".into(), Value::Array(env));
    m.insert(
        "arguments".into(),
        Value::Array(strings(obj.get("arguments"))),
    );
    m.insert("highPriority".into(), b(obj, "highPriority", false));
    m.insert("runAsUser".into(), s(obj, "runAsUser", "root"));
    if let Some(c) = obj.get("container").and_then(Value::as_object) {
        if let Some(image) = c.get("image").and_then(Value::as_str) {
            let volumes: Vec<Value> = c
                .get("volumes")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| {
                            let mut o = Map::new();
                            if let Some(h) = v.get("hostPath").and_then(Value::as_str) {
                                o.insert("hostPath".into(), json!(h));
                            }
                            o.insert("containerPath".into(), v.get("containerPath")?.clone());
                            if let Some(mode) = v.get("mode").and_then(Value::as_str) {
                                o.insert("mode".into(), json!(mode));
                            }
                            Some(Value::Object(o))
                        })
                        .collect()
                })
                .unwrap_or_default();
            m.insert(
                "container".into(),
                json!({
                    "type": c.get("type").and_then(Value::as_str).unwrap_or("DOCKER"),
                    "image": image,
                    "network": c.get("network").and_then(Value::as_str).unwrap_or("HOST"),
                    "volumes": volumes,
                    "forcePullImage": c.get("forcePullImage").and_then(as_bool).unwrap_or(false),
                    "parameters": c.get("parameters").and_then(Value::as_array).cloned().unwrap_or_default(),
                }),
            );
        }
    }
    m.insert("constraints".into(), Value::Array(constraints));
    if dependent {
        m.insert("parents".into(), json!(parents));
    } else {
        m.insert("schedule".into(), json!(schedule_text));
        m.insert("scheduleTimeZone".into(), s(obj, "scheduleTimeZone", ""));
    }
    Ok(JobDef {
        map: m,
        schedule,
        parents,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thesis_job_is_read_and_unknown_fields_dropped() {
        let job = parse(
            &json!({"schedule": "R4//PT5M", "name": "openmpLinpack1",
                "container": {"type": "DOCKER", "image": "serlophug/openmplinpack", "forcePullImage": true,
                    "volumes": [{"containerPath": "/shared/", "hostPath": "/home/users/shared/serlophug/", "mode": "RW"}]},
                "cpus": "1", "mem": "500", "command": "/linpack_openmp 6000", "owner": "serlophug",
                "async": "false", "qos": {"duration": 400}}),
            &Config::default(),
            false,
        )
        .unwrap();
        assert_eq!(job.map["cpus"], json!(1.0));
        assert_eq!(job.map["mem"], json!(500.0));
        assert_eq!(job.map["disk"], json!(256.0));
        assert_eq!(job.map["async"], json!(false));
        assert_eq!(job.map["retries"], json!(2));
        assert_eq!(job.map["container"]["network"], "HOST");
        assert!(!job.map.contains_key("qos"));
        assert_eq!(job.schedule.unwrap().repetitions(), Some(4));
    }

    #[test]
    fn refusals() {
        let cfg = Config::default();
        assert!(parse(&json!({"name": "a b"}), &cfg, false).is_err());
        assert!(parse(&json!({"name": "a/b"}), &cfg, false).is_err());
        let e = parse(&json!({"name": "a", "schedule": "nope"}), &cfg, false).unwrap_err();
        assert_eq!(e.0, "Cannot parse schedule 'nope' (wtf bro)");
        assert!(
            parse(
                &json!({"name": "a", "uris": ["u"], "fetch": [{"uri": "u"}]}),
                &cfg,
                false
            )
            .is_err()
        );
        let j = parse(&json!({"name": "a"}), &cfg, false).unwrap();
        assert_eq!(j.map["schedule"], "R1//PT24H");
        assert_eq!(j.map["cpus"], json!(0.1));
    }
}
