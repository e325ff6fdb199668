//! What a Chronos run launches: the task id `ct:<due ms>:<attempt>:<name>:<arguments>`, the
//! command (`shell` or an argument vector), the container and the environment Chronos' Mesos
//! task builder sets.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::{Chronos, Run, job};
use crate::formats::{iso_millis, java_double};
use crate::task::{ContainerSpec, EnvBuilder, Resources, TaskCommand, TaskSpec, string_pairs};

impl Chronos {
    /// The task of one run of a job.
    pub(super) fn task_spec(&self, def: &job::JobDef, run: &Run) -> TaskSpec {
        let m = &def.map;
        let name = m["name"].as_str().unwrap_or_default().to_owned();
        let task_id = format!(
            "ct:{}:{}:{}:{}",
            run.due_ms, run.attempt, name, run.arguments
        );
        let container = container(m);
        let command = command(m, run, container.is_some());
        let user_env = user_env(m);
        let uuid = user_env
            .iter()
            .find(|(k, _)| k == "QOS_UUID")
            .map(|(_, v)| v.clone());
        // Chronos' defaults: 0.1 CPUs, 128 MB, 256 MB of disk.
        let resources = Resources {
            cpus: m.get("cpus").and_then(Value::as_f64).unwrap_or(0.1),
            mem: m.get("mem").and_then(Value::as_f64).unwrap_or(128.0),
            disk: m.get("disk").and_then(Value::as_f64).unwrap_or(256.0),
        };
        let owner = m
            .get("owner")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let env = env(&task_id, name, owner, resources, run, user_env);
        TaskSpec {
            task_id,
            framework_id: self.framework_id.clone(),
            command,
            resources,
            ports: 0,
            env,
            container,
            kill_grace: None,
            uuid,
            labels: Vec::new(),
        }
    }
}

/// The job's `container` (Docker), when it names an image.
fn container(m: &Map<String, Value>) -> Option<ContainerSpec> {
    let c = m.get("container")?;
    Some(ContainerSpec::from_json(
        c.get("image")?.as_str()?.to_owned(),
        c.get("network").and_then(Value::as_str).map(str::to_owned),
        c.get("volumes"),
        c,
    ))
}

/// `shell: true` (the default): `command` through `/bin/sh -c` (the image's own command when it
/// is empty in a container); `shell: false`: `command`, the job's `arguments` and the run's
/// `?arguments=` as one argument vector.
fn command(m: &Map<String, Value>, run: &Run, in_container: bool) -> TaskCommand {
    let shell = m.get("shell").and_then(Value::as_bool).unwrap_or(true);
    let command_text = m
        .get("command")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    if shell {
        return if command_text.is_empty() && in_container {
            TaskCommand::Image
        } else {
            TaskCommand::Shell(command_text)
        };
    }
    let mut argv: Vec<String> = Vec::new();
    if !command_text.is_empty() {
        argv.push(command_text);
    }
    argv.extend(
        m.get("arguments")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned),
    );
    argv.extend(run.arguments.split_whitespace().map(str::to_owned));
    if argv.is_empty() {
        TaskCommand::Image
    } else {
        TaskCommand::Argv(argv)
    }
}

/// The job's `environmentVariables` (`[{"name", "value"}]`).
fn user_env(m: &Map<String, Value>) -> Vec<(String, String)> {
    string_pairs(m.get("environmentVariables"), "name", "value")
}

/// The built-in variables (`mesos_task_id`, `CHRONOS_*`, `HOST` of the offer), then the job's
/// own, which never override a built-in.
fn env(
    task_id: &str,
    name: String,
    owner: String,
    resources: Resources,
    run: &Run,
    user_env: Vec<(String, String)>,
) -> EnvBuilder {
    let run_time = DateTime::<Utc>::from_timestamp_millis(run.due_ms)
        .map(iso_millis)
        .unwrap_or_default();
    let attempt = run.attempt;
    let task_id = task_id.to_owned();
    Box::new(move |offer| {
        let mut env = vec![
            ("mesos_task_id".to_owned(), task_id.clone()),
            ("MESOS_TASK_ID".to_owned(), task_id),
            ("CHRONOS_JOB_OWNER".to_owned(), owner),
            ("CHRONOS_JOB_NAME".to_owned(), name),
            ("HOST".to_owned(), offer.host.clone()),
            (
                "CHRONOS_RESOURCE_MEM".to_owned(),
                java_double(resources.mem),
            ),
            (
                "CHRONOS_RESOURCE_CPU".to_owned(),
                java_double(resources.cpus),
            ),
            (
                "CHRONOS_RESOURCE_DISK".to_owned(),
                java_double(resources.disk),
            ),
            ("CHRONOS_JOB_RUN_TIME".to_owned(), run_time),
            ("CHRONOS_JOB_RUN_ATTEMPT".to_owned(), attempt.to_string()),
        ];
        for (k, v) in user_env {
            if !env.iter().any(|(n, _)| *n == k) {
                env.push((k, v));
            }
        }
        env
    })
}
