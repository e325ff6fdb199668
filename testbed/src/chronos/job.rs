//! Reading a Chronos job as its `JobDeserializer` does and writing it back as its `JobSerializer`
//! does, for 2.5.1 and for 3.x: a fixed key list, so unknown keys (e.g. `qos`) are ignored and
//! never returned.
//!
//! The reading is the emulator's own, after the server's source, not the `frameworks` client's
//! tolerant reader: values go through Jackson's coercions as Chronos applies them (`asText`,
//! `asBoolean` — only the text `"true"` is true —, `asDouble`/`asLong` — text that is not a number
//! is `0`, so `"cpus": "one"` silently becomes the default —, Scala's `toBoolean` for
//! `forcePullImage`), enumerations are exact (`network` `BRIDGE`/`HOST` in 2.5.1, plus `USER` in
//! 3.x; `type` `DOCKER`/`MESOS`; volume `mode` `RO`/`RW` in any case) and a missing required
//! value (`name`, `container.image`, `containerPath`) is an error, as the server's
//! `NullPointerException` or `NoSuchElementException` is.
//!
//! The stored job keeps what either generation reads; [`render`] writes the keys of the version
//! asked: 2.5.1 adds `epsilon` and `async`, 3.x adds `concurrent`, `container.networkName`,
//! `container.networkInfos` (port numbers written as strings, as its serializer does) and
//! `volumes[].external`.

use chrono::{DateTime, Utc};
use frameworks::Schedule;
use serde_json::{Map, Value, json};

use super::iso8601::{self, Generation};
use crate::config::Config;

/// A job definition as stored.
#[derive(Debug, Clone)]
pub(crate) struct JobDef {
    /// Every key either generation keeps, in 3.x's order, plus `epsilon` and `async`.
    pub(crate) map: Map<String, Value>,
    /// Parsed schedule (for the scheduler); `None` for a dependent job.
    pub(crate) schedule: Option<Schedule>,
    pub(crate) parents: Vec<String>,
    /// The generation the job was created through: it decides how it is scheduled (an update
    /// through the other prefix keeps it; see `Chronos::upsert`).
    pub(crate) generation: Generation,
}

/// Why a job was refused, and how the server says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The resource's own check: 2.5.1 answers 400 with the message as text (or nothing, for
    /// `empty_in_v2`), 3.x with `{"status": "Bad Request", "message"}`.
    Check {
        /// Chronos' own words for the refusal.
        message: String,
        /// 2.5.1 answers with an empty body.
        empty_in_v2: bool,
        /// 3.x wraps it in a Java stack trace (an `IllegalArgumentException` from `require`).
        stack_trace_in_v3: bool,
    },
    /// The body cannot be made into a job at all (the deserializer threw): 400.
    Mapping(String),
}

impl Refusal {
    pub(crate) fn message(&self) -> &str {
        match self {
            Self::Check { message, .. } | Self::Mapping(message) => message,
        }
    }
}

/// Chronos' `JobUtils.jobNamePattern`, `([\w\.-]+)`: Java's `\w` is ASCII only, so `café` is
/// refused; the rule is the client's own ([`frameworks::chronos::validate_job_name`]).
pub(crate) fn valid_name(name: &str) -> bool {
    frameworks::chronos::validate_job_name(name).is_ok()
}

/// Jackson's `JsonNode` coercions, as Chronos' deserializer calls them.
mod jackson {
    use serde_json::Value;

    /// `asText()`.
    pub(super) fn text(v: &Value) -> String {
        match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null => "null".to_owned(),
            Value::Array(_) | Value::Object(_) => String::new(),
        }
    }

    /// `asBoolean()`: a boolean, a non-zero number, or exactly the text `"true"` (trimmed).
    pub(super) fn boolean(v: &Value) -> bool {
        match v {
            Value::Bool(b) => *b,
            Value::Number(n) => n.as_f64().is_some_and(|x| x != 0.0),
            Value::String(s) => s.trim() == "true",
            _ => false,
        }
    }

    /// `asDouble()`: a number, the number a text holds, else 0.
    pub(super) fn double(v: &Value) -> f64 {
        match v {
            Value::Number(n) => n.as_f64().unwrap_or(0.0),
            Value::String(s) => s.trim().parse().unwrap_or(0.0),
            Value::Bool(b) => f64::from(u8::from(*b)),
            _ => 0.0,
        }
    }

    /// `asLong()` / `asInt()`: a number (truncated), the number a text holds, else 0.
    // Java's (long) cast.
    pub(super) fn long(v: &Value) -> i64 {
        match v {
            Value::Number(n) => n
                .as_i64()
                .unwrap_or_else(|| n.as_f64().unwrap_or(0.0) as i64),
            Value::String(s) => {
                let t = s.trim();
                t.parse()
                    .unwrap_or_else(|_| t.parse::<f64>().map_or(0, |x| x as i64))
            }
            Value::Bool(b) => i64::from(*b),
            _ => 0,
        }
    }
}

/// `node.has(k) && node.get(k) != null` — a JSON `null` is still "present" for Jackson (a
/// `NullNode`), as in the server.
fn get<'a>(obj: &'a Map<String, Value>, k: &str) -> Option<&'a Value> {
    obj.get(k)
}

fn text_or(obj: &Map<String, Value>, k: &str, d: &str) -> Value {
    Value::String(get(obj, k).map_or_else(|| d.to_owned(), jackson::text))
}

fn bool_or(obj: &Map<String, Value>, k: &str, d: bool) -> Value {
    Value::Bool(get(obj, k).map_or(d, jackson::boolean))
}

fn long_or(obj: &Map<String, Value>, k: &str, d: i64) -> Value {
    json!(get(obj, k).map_or(d, jackson::long))
}

/// `cpus`/`mem`/`disk`: `asDouble`, and 0 (or absent) means the scheduler's default.
fn resource(obj: &Map<String, Value>, k: &str, default: f64) -> Value {
    let v = get(obj, k).map_or(0.0, jackson::double);
    json!(if v == 0.0 { default } else { v })
}

/// Every element's `asText` (`for (x <- node.path(k))`; a non-array yields nothing).
fn texts(v: Option<&Value>) -> Vec<Value> {
    match v {
        Some(Value::Array(a)) => a.iter().map(|x| Value::String(jackson::text(x))).collect(),
        _ => Vec::new(),
    }
}

/// The elements of `node.get(k).elements()` that are objects (`case node: ObjectNode`; any other
/// element is a `MatchError`, a mapping failure).
fn objects<'a>(v: Option<&'a Value>, what: &str) -> Result<Vec<&'a Map<String, Value>>, Refusal> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_object()
                    .ok_or_else(|| Refusal::Mapping(format!("scala.MatchError: {x} (in {what})")))
            })
            .collect(),
        Some(Value::Object(_) | Value::String(_) | Value::Number(_) | Value::Bool(_)) => {
            Ok(Vec::new())
        }
    }
}

fn required<'a>(obj: &'a Map<String, Value>, k: &str, what: &str) -> Result<&'a Value, Refusal> {
    match obj.get(k) {
        Some(v) if !v.is_null() => Ok(v),
        _ => Err(Refusal::Mapping(format!(
            "java.lang.NullPointerException: {what}.{k} is missing"
        ))),
    }
}

fn enumeration(value: &str, allowed: &[&str], what: &str) -> Result<String, Refusal> {
    if allowed.contains(&value) {
        Ok(value.to_owned())
    } else {
        Err(Refusal::Mapping(format!(
            "java.util.NoSuchElementException: No value found for '{value}' ({what}: {})",
            allowed.join(", ")
        )))
    }
}

/// A refusal by a `require` of the server's resource: `empty_in_v2` when 2.5.1 answers it with
/// an empty 400, `stack` when 3.x wraps the message in a stack trace.
fn check(message: String, empty_in_v2: bool, stack: bool) -> Refusal {
    Refusal::Check {
        message,
        empty_in_v2,
        stack_trace_in_v3: stack,
    }
}

/// Parses a posted job. `dependent_endpoint`: posted to `/dependency`; `existing`: a job of this
/// name exists (Chronos checks the name, the start and `uris`/`fetch` only for new jobs).
pub(crate) fn parse(
    body: &Value,
    cfg: &Config,
    dependent_endpoint: bool,
    generation: Generation,
    existing: bool,
    now: DateTime<Utc>,
) -> Result<JobDef, Refusal> {
    let Some(obj) = body.as_object() else {
        return Err(Refusal::Mapping(
            "com.fasterxml.jackson.databind.JsonMappingException: the job must be a JSON object"
                .to_owned(),
        ));
    };
    let name = jackson::text(required(obj, "name", "job")?);
    if !existing && !valid_name(&name) {
        return Err(check(
            r"requirement failed: the job's name is invalid. Allowed names: '([\w\.-]+)'"
                .to_owned(),
            false,
            true,
        ));
    }
    let parents: Vec<String> = texts(obj.get("parents"))
        .into_iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    // `parents` present makes a DependencyBasedJob, whatever the endpoint.
    let dependent = obj.contains_key("parents");
    if dependent_endpoint && !dependent {
        return Err(Refusal::Mapping(
            "java.lang.ClassCastException: a job posted to /dependency needs parents".to_owned(),
        ));
    }
    let zone = obj
        .get("scheduleTimeZone")
        .map(jackson::text)
        .unwrap_or_default();
    let (schedule_text, schedule) = if dependent {
        (None, None)
    } else {
        let (text, schedule) = schedule(obj, &zone, generation, existing, now)?;
        (Some(text), Some(schedule))
    };
    let uris = texts(obj.get("uris"));
    let fetch = fetch(obj)?;
    if !existing && !uris.is_empty() && !fetch.is_empty() {
        return Err(check(
            format!("Tried to add both uri (deprecated) and fetch parameters on {name}"),
            true,
            false,
        ));
    }
    let mut m = fields(obj, cfg, &name);
    m.insert("fetch".into(), Value::Array(fetch));
    m.insert("uris".into(), Value::Array(uris));
    m.insert(
        "environmentVariables".into(),
        Value::Array(environment(obj)?),
    );
    m.insert(
        "arguments".into(),
        Value::Array(texts(obj.get("arguments"))),
    );
    m.insert("highPriority".into(), bool_or(obj, "highPriority", false));
    m.insert("runAsUser".into(), text_or(obj, "runAsUser", "root"));
    m.insert("concurrent".into(), bool_or(obj, "concurrent", false));
    if let Some(c) = container(obj, generation)? {
        m.insert("container".into(), c);
    }
    m.insert("constraints".into(), Value::Array(constraints(obj)?));
    if dependent {
        m.insert("parents".into(), json!(parents));
    } else {
        m.insert(
            "schedule".into(),
            json!(schedule_text.clone().unwrap_or_default()),
        );
        m.insert("scheduleTimeZone".into(), json!(zone));
    }
    Ok(JobDef {
        map: m,
        schedule,
        parents,
        generation,
    })
}

/// The scalar fields with the server's defaults, in `JobSerializer`'s order, up to `errorsSinceLastSuccess`.
fn fields(obj: &Map<String, Value>, cfg: &Config, name: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("name".into(), json!(name));
    m.insert("command".into(), text_or(obj, "command", ""));
    m.insert("shell".into(), bool_or(obj, "shell", true));
    m.insert("epsilon".into(), text_or(obj, "epsilon", "PT60S"));
    m.insert("executor".into(), text_or(obj, "executor", ""));
    m.insert("executorFlags".into(), text_or(obj, "executorFlags", ""));
    m.insert("taskInfoData".into(), text_or(obj, "taskInfoData", ""));
    m.insert("retries".into(), long_or(obj, "retries", 2));
    m.insert("owner".into(), text_or(obj, "owner", ""));
    m.insert("ownerName".into(), text_or(obj, "ownerName", ""));
    m.insert("description".into(), text_or(obj, "description", ""));
    m.insert("async".into(), bool_or(obj, "async", false));
    m.insert("successCount".into(), long_or(obj, "successCount", 0));
    m.insert("errorCount".into(), long_or(obj, "errorCount", 0));
    m.insert("lastSuccess".into(), text_or(obj, "lastSuccess", ""));
    m.insert("lastError".into(), text_or(obj, "lastError", ""));
    m.insert(
        "cpus".into(),
        resource(obj, "cpus", cfg.chronos_default_cpus),
    );
    m.insert(
        "disk".into(),
        resource(obj, "disk", cfg.chronos_default_disk),
    );
    m.insert("mem".into(), resource(obj, "mem", cfg.chronos_default_mem));
    m.insert("disabled".into(), bool_or(obj, "disabled", false));
    m.insert("softError".into(), bool_or(obj, "softError", false));
    m.insert(
        "dataProcessingJobType".into(),
        bool_or(obj, "dataProcessingJobType", false),
    );
    m.insert(
        "errorsSinceLastSuccess".into(),
        long_or(obj, "errorsSinceLastSuccess", 0),
    );
    m
}

/// A scheduled job's `schedule` text (one run now when absent) and its parse; a schedule that
/// does not parse, or (3.x, new job) starts before 1970, is refused.
fn schedule(
    obj: &Map<String, Value>,
    zone: &str,
    generation: Generation,
    existing: bool,
    now: DateTime<Utc>,
) -> Result<(String, Schedule), Refusal> {
    let text = match obj.get("schedule") {
        Some(v) => jackson::text(v),
        // No schedule and no parents: run once, now.
        None => match generation {
            Generation::V2 => "R1//PT24H".to_owned(),
            Generation::V3 => {
                format!("R1/{}/PT24H", iso8601::print_date_time(now.fixed_offset()))
            }
        },
    };
    let Some(parsed) = iso8601::parse(&text, zone, generation, now) else {
        return Err(check(
            format!("Cannot parse schedule '{text}' (wtf bro)"),
            true,
            false,
        ));
    };
    if generation == Generation::V3 && !existing && parsed.start.timestamp() < 1 {
        return Err(check(
            format!(
                "Scheduled start date '{}' is before 1970!",
                iso8601::print_date_time(parsed.start)
            ),
            true,
            false,
        ));
    }
    let schedule = to_schedule(&parsed);
    Ok((text, schedule))
}

/// `fetch`, each entry with the server's defaults.
fn fetch(obj: &Map<String, Value>) -> Result<Vec<Value>, Refusal> {
    let mut fetch = Vec::new();
    for f in objects(obj.get("fetch"), "fetch")? {
        fetch.push(json!({
            "uri": f.get("uri").map(jackson::text).unwrap_or_default(),
            "executable": f.get("executable").is_some_and(jackson::boolean),
            "cache": f.get("cache").is_some_and(jackson::boolean),
            "extract": f.get("extract").is_none_or(jackson::boolean),
            "output_file": f.get("output_file").map(jackson::text).unwrap_or_default(),
        }));
    }
    Ok(fetch)
}

/// `environmentVariables`: each needs a `name` and a `value`.
fn environment(obj: &Map<String, Value>) -> Result<Vec<Value>, Refusal> {
    let mut env = Vec::new();
    for e in objects(obj.get("environmentVariables"), "environmentVariables")? {
        env.push(json!({
            "name": jackson::text(required(e, "name", "environmentVariables[]")?),
            "value": jackson::text(required(e, "value", "environmentVariables[]")?),
        }));
    }
    Ok(env)
}

/// `constraints` with an operator the server knows (`EQUALS`, `LIKE`, `UNLIKE`); any other is
/// dropped, as `JobDeserializer` does (`case _ =>`). A constraint without an operator, a known
/// operator without a value (`c.get(2).asText` on `null`) and a `LIKE`/`UNLIKE` value that is
/// not a regular expression (`value.r`) throw in the deserializer: the job is refused.
fn constraints(obj: &Map<String, Value>) -> Result<Vec<Value>, Refusal> {
    let mut constraints = Vec::new();
    if let Some(Value::Array(cs)) = obj.get("constraints") {
        for (i, c) in cs.iter().enumerate() {
            let at = |k: usize| c.as_array().and_then(|a| a.get(k)).map(jackson::text);
            let Some(op) = at(1) else {
                return Err(Refusal::Mapping(format!(
                    "java.lang.NullPointerException: constraints[{i}] has no operator"
                )));
            };
            if !matches!(op.as_str(), "EQUALS" | "LIKE" | "UNLIKE") {
                continue;
            }
            let Some(value) = at(2) else {
                return Err(Refusal::Mapping(format!(
                    "java.lang.NullPointerException: constraints[{i}] ({op}) has no value"
                )));
            };
            if op != "EQUALS" && !crate::formats::java_regex(&value) {
                return Err(Refusal::Mapping(format!(
                    "java.util.regex.PatternSyntaxException: {value:?} (constraints[{i}])"
                )));
            }
            constraints.push(json!([at(0).unwrap_or_default(), op, value]));
        }
    }
    Ok(constraints)
}

/// A list of `{"key", "value"}` objects (`parameters`, `labels`, `external.options`), each
/// needing both; `field` and `item` name the list and its entries in a refusal.
fn key_values(list: Option<&Value>, field: &str, item: &str) -> Result<Vec<Value>, Refusal> {
    let mut out = Vec::new();
    for p in objects(list, field)? {
        out.push(json!({
            "key": jackson::text(required(p, "key", item)?),
            "value": jackson::text(required(p, "value", item)?),
        }));
    }
    Ok(out)
}

/// The scheduler's view of a parsed schedule (months and years at their nominal length).
pub(crate) fn to_schedule(p: &iso8601::Parsed) -> Schedule {
    let reps = u64::try_from(p.repetitions).ok();
    let period = std::time::Duration::from_secs_f64(p.period_secs.max(0.001));
    let start = (!p.start_empty).then_some(p.start);
    Schedule::new(reps, start, period).unwrap_or_else(|_| {
        Schedule::new(reps, start, std::time::Duration::from_secs(1))
            .unwrap_or_else(|_| unreachable!("a non-zero period"))
    })
}

/// `container`: 2.5.1 reads it whenever present (its image is then required); 3.x only when it
/// has an `image`.
fn container(obj: &Map<String, Value>, generation: Generation) -> Result<Option<Value>, Refusal> {
    let Some(c) = obj.get("container").and_then(Value::as_object) else {
        return Ok(None);
    };
    if generation == Generation::V3 && !c.contains_key("image") {
        return Ok(None);
    }
    let image = jackson::text(required(c, "image", "container")?);
    let networks: &[&str] = match generation {
        Generation::V2 => &["BRIDGE", "HOST"],
        Generation::V3 => &["BRIDGE", "HOST", "USER"],
    };
    let network = match c.get("network") {
        Some(v) if !v.is_null() => enumeration(&jackson::text(v), networks, "container.network")?,
        _ => "HOST".to_owned(),
    };
    let ctype = match c.get("type") {
        Some(v) if !v.is_null() => enumeration(
            &jackson::text(v).to_uppercase(),
            &["DOCKER", "MESOS"],
            "container.type",
        )?,
        _ => "DOCKER".to_owned(),
    };
    let mut volumes = Vec::new();
    for v in objects(c.get("volumes"), "container.volumes")? {
        volumes.push(volume(v, generation)?);
    }
    let force_pull = c
        .get("forcePullImage")
        .is_some_and(|v| jackson::text(v).eq_ignore_ascii_case("true"));
    let parameters = key_values(c.get("parameters"), "container.parameters", "parameters[]")?;
    let mut out = Map::new();
    out.insert("type".into(), json!(ctype));
    out.insert("image".into(), json!(image));
    out.insert("network".into(), json!(network));
    if generation == Generation::V3 {
        if let Some(n) = c.get("networkName").filter(|n| !n.is_null()) {
            out.insert("networkName".into(), json!(jackson::text(n)));
        }
        let mut infos = Vec::new();
        for n in objects(c.get("networkInfos"), "container.networkInfos")? {
            infos.push(network_info(n)?);
        }
        out.insert("networkInfos".into(), Value::Array(infos));
    }
    out.insert("volumes".into(), Value::Array(volumes));
    out.insert("forcePullImage".into(), json!(force_pull));
    out.insert("parameters".into(), Value::Array(parameters));
    Ok(Some(Value::Object(out)))
}

/// One of `container.volumes`: `containerPath` required, `mode` `RW` or `RO`, and (3.x) an
/// `external` volume's `name`, `provider` and `options`.
fn volume(v: &Map<String, Value>, generation: Generation) -> Result<Value, Refusal> {
    let mut o = Map::new();
    if let Some(h) = v.get("hostPath") {
        o.insert("hostPath".into(), json!(jackson::text(h)));
    }
    o.insert(
        "containerPath".into(),
        json!(jackson::text(required(v, "containerPath", "volumes[]")?)),
    );
    if let Some(mode) = v.get("mode") {
        let mode = enumeration(
            &jackson::text(mode).to_uppercase(),
            &["RW", "RO"],
            "volumes[].mode",
        )?;
        o.insert("mode".into(), json!(mode));
    }
    if let Some(ext) = v.get("external").filter(|_| generation == Generation::V3) {
        let options = key_values(ext.get("options"), "external.options", "options[]")?;
        let e = ext.as_object().cloned().unwrap_or_default();
        o.insert(
            "external".into(),
            json!({
                "name": jackson::text(required(&e, "name", "external")?),
                "provider": jackson::text(required(&e, "provider", "external")?),
                "options": options,
            }),
        );
    }
    Ok(Value::Object(o))
}

/// One of 3.x's `container.networkInfos`: `name` required, `protocol` `IPv4` or `IPv6`,
/// `labels` and `portMappings` (`hostPort` and `containerPort` required).
fn network_info(n: &Map<String, Value>) -> Result<Value, Refusal> {
    let mut info = Map::new();
    info.insert(
        "name".into(),
        json!(jackson::text(required(n, "name", "networkInfos[]")?)),
    );
    if let Some(p) = n.get("protocol").filter(|p| !p.is_null()) {
        info.insert(
            "protocol".into(),
            json!(enumeration(
                &jackson::text(p),
                &["IPv4", "IPv6"],
                "networkInfos[].protocol"
            )?),
        );
    }
    let labels = key_values(n.get("labels"), "networkInfos[].labels", "labels[]")?;
    info.insert("labels".into(), Value::Array(labels));
    let mut mappings = Vec::new();
    for pm in objects(n.get("portMappings"), "networkInfos[].portMappings")? {
        let mut o = Map::new();
        o.insert(
            "hostPort".into(),
            json!(jackson::long(required(pm, "hostPort", "portMappings[]")?)),
        );
        o.insert(
            "containerPort".into(),
            json!(jackson::long(required(
                pm,
                "containerPort",
                "portMappings[]"
            )?)),
        );
        if let Some(p) = pm.get("protocol").filter(|p| !p.is_null()) {
            o.insert("protocol".into(), json!(jackson::text(p)));
        }
        mappings.push(Value::Object(o));
    }
    info.insert("portMappings".into(), Value::Array(mappings));
    Ok(Value::Object(info))
}

/// The job as `generation`'s `JobSerializer` writes it.
pub(crate) fn render(map: &Map<String, Value>, generation: Generation) -> Value {
    let mut m = map.clone();
    match generation {
        Generation::V2 => {
            m.shift_remove("concurrent");
            if let Some(Value::Object(c)) = m.get_mut("container") {
                c.shift_remove("networkName");
                c.shift_remove("networkInfos");
                if let Some(Value::Array(vols)) = c.get_mut("volumes") {
                    for v in vols.iter_mut().filter_map(Value::as_object_mut) {
                        v.shift_remove("external");
                    }
                }
            }
        }
        Generation::V3 => {
            m.shift_remove("epsilon");
            m.shift_remove("async");
            if let Some(Value::Array(fetch)) = m.get_mut("fetch") {
                for f in fetch.iter_mut().filter_map(Value::as_object_mut) {
                    if f.get("output_file").and_then(Value::as_str) == Some("") {
                        f.shift_remove("output_file");
                    }
                }
            }
            // 3.x writes the port numbers of networkInfos as strings.
            if let Some(Value::Array(infos)) = m
                .get_mut("container")
                .and_then(|c| c.get_mut("networkInfos"))
            {
                for pm in infos
                    .iter_mut()
                    .filter_map(|i| i.get_mut("portMappings"))
                    .filter_map(Value::as_array_mut)
                    .flatten()
                {
                    for k in ["hostPort", "containerPort"] {
                        if let Some(v) = pm.get_mut(k) {
                            *v = Value::String(jackson::text(v));
                        }
                    }
                }
            }
        }
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    #[expect(clippy::needless_pass_by_value, reason = "tests pass json! literals")]
    fn p(v: Value, g: Generation) -> Result<JobDef, Refusal> {
        parse(&v, &Config::default(), false, g, false, now())
    }

    #[test]
    fn thesis_job_is_read_and_unknown_fields_dropped() {
        let job = p(
            json!({"schedule": "R4//PT5M", "name": "openmpLinpack1",
                "container": {"type": "DOCKER", "image": "serlophug/openmplinpack", "forcePullImage": true,
                    "volumes": [{"containerPath": "/shared/", "hostPath": "/home/users/shared/serlophug/", "mode": "RW"}]},
                "cpus": "1", "mem": "500", "command": "/linpack_openmp 6000", "owner": "serlophug",
                "async": "false", "qos": {"duration": 400}}),
            Generation::V2,
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
    fn jackson_coercions_as_chronos_applies_them() {
        let job = p(
            json!({"name": "a", "cpus": "one", "mem": "64", "shell": "yes", "retries": "3",
                   "disabled": "TRUE", "container": {"image": "i", "forcePullImage": "TRUE"}}),
            Generation::V3,
        )
        .unwrap();
        assert_eq!(
            job.map["cpus"],
            json!(0.1),
            "text that is no number: the default"
        );
        assert_eq!(job.map["mem"], json!(64.0));
        assert_eq!(job.map["shell"], json!(false), "only \"true\" is true");
        assert_eq!(job.map["disabled"], json!(false));
        assert_eq!(job.map["retries"], json!(3));
        assert_eq!(job.map["container"]["forcePullImage"], json!(true));
    }

    #[test]
    fn version_specific_keys() {
        let body = json!({"name": "a", "schedule": "R1//PT1M", "concurrent": true,
            "container": {"image": "i", "network": "USER", "networkName": "dcos",
                "networkInfos": [{"name": "dcos", "protocol": "IPv4",
                    "portMappings": [{"hostPort": 0, "containerPort": 80}]}],
                "volumes": [{"containerPath": "/d", "mode": "rw",
                    "external": {"name": "v", "provider": "dvdi",
                        "options": [{"key": "dvdi/driver", "value": "rexray"}]}}]}});
        let j = p(body.clone(), Generation::V3).unwrap();
        let v3 = render(&j.map, Generation::V3);
        assert_eq!(v3["concurrent"], true);
        assert!(v3.get("epsilon").is_none() && v3.get("async").is_none());
        assert_eq!(v3["container"]["networkName"], "dcos");
        assert_eq!(
            v3["container"]["networkInfos"][0]["portMappings"][0],
            json!({"hostPort": "0", "containerPort": "80"})
        );
        assert_eq!(
            v3["container"]["volumes"][0]["external"]["provider"],
            "dvdi"
        );
        assert_eq!(v3["container"]["volumes"][0]["mode"], "RW");
        let v2 = render(&j.map, Generation::V2);
        assert!(v2.get("concurrent").is_none());
        assert_eq!(v2["epsilon"], "PT60S");
        assert!(v2["container"].get("networkInfos").is_none());
        // 2.5.1 does not know USER networks.
        let e = p(body, Generation::V2).unwrap_err();
        assert!(e.message().contains("No value found for 'USER'"), "{e:?}");
    }

    #[test]
    fn refusals() {
        for g in [Generation::V2, Generation::V3] {
            assert!(p(json!({"name": "a b"}), g).is_err());
            assert!(p(json!({"name": "a/b"}), g).is_err());
            // Java's `\w` is ASCII only: `([\w\.-]+)` refuses letters beyond it.
            for name in ["café", "日本", "job\u{a0}1"] {
                let e = p(json!({"name": name}), g).unwrap_err();
                assert!(
                    e.message().contains("the job's name is invalid"),
                    "{name}: {e:?}"
                );
            }
            assert!(p(json!({"command": "x"}), g).is_err(), "no name");
            let e = p(json!({"name": "a", "schedule": "nope"}), g).unwrap_err();
            assert_eq!(e.message(), "Cannot parse schedule 'nope' (wtf bro)");
            assert!(
                p(
                    json!({"name": "a", "uris": ["u"], "fetch": [{"uri": "u"}]}),
                    g
                )
                .is_err()
            );
            let e = p(
                json!({"name": "a", "container": {"image": "i", "network": "host"}}),
                g,
            )
            .unwrap_err();
            assert!(matches!(e, Refusal::Mapping(_)), "exact enum names");
        }
        let e = p(
            json!({"name": "a", "schedule": "R1/1969-01-01T00:00:00Z/PT1M"}),
            Generation::V3,
        )
        .unwrap_err();
        assert!(e.message().contains("is before 1970"));
        // Constraints as the deserializer reads them: unknown operators dropped, a missing
        // operator or value and a broken LIKE regex thrown.
        for g in [Generation::V2, Generation::V3] {
            let with = |c: Value| p(json!({"name": "a", "constraints": c}), g);
            let j = with(json!([
                ["rack", "EQUALS", "r1"],
                ["rack", "GROUP_BY"],
                ["host", "LIKE", "h-[0-9]+"]
            ]))
            .unwrap();
            assert_eq!(
                j.map["constraints"],
                json!([["rack", "EQUALS", "r1"], ["host", "LIKE", "h-[0-9]+"]])
            );
            for bad in [
                json!([["rack", "EQUALS"]]),
                json!([["rack"]]),
                json!(["rack"]),
                json!([["rack", "LIKE", "r-[1-"]]),
            ] {
                assert!(
                    matches!(with(bad.clone()), Err(Refusal::Mapping(_))),
                    "{bad}"
                );
            }
        }
        let j = p(json!({"name": "a"}), Generation::V2).unwrap();
        assert_eq!(j.map["schedule"], "R1//PT24H");
        assert_eq!(j.map["cpus"], json!(0.1));
        let j = p(json!({"name": "a"}), Generation::V3).unwrap();
        assert_eq!(j.map["schedule"], "R1/2023-11-14T22:13:20.000Z/PT24H");
        // 2.5.1 reads a container without an image as an error, 3.x ignores the container.
        let no_image = json!({"name": "a", "container": {"type": "DOCKER"}});
        assert!(p(no_image.clone(), Generation::V2).is_err());
        assert!(
            p(no_image, Generation::V3)
                .unwrap()
                .map
                .get("container")
                .is_none()
        );
    }
}
