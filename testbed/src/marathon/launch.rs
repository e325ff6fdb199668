//! What a new task of an app launches: its id (`<app>.instance-<uuid>._app.1`), service ports,
//! command (`cmd` or `args`), Docker container, and the environment of Marathon's `TaskBuilder`.

use chrono::Utc;
use serde_json::{Map, Value};

use super::{AppRec, MTask, Marathon, app};
use crate::formats::{iso_millis, java_double, uuid_v4};
use crate::task::{ContainerSpec, EnvBuilder, Resources, TaskCommand, TaskSpec, TaskState};

impl Marathon {
    /// A new task of `app` (not yet launched) and its record.
    pub(super) fn task_for(
        &self,
        app_id: &str,
        app: &AppRec,
        next_service_port: &mut u64,
    ) -> (TaskSpec, MTask) {
        let def = &app.def;
        let task_id = format!("{}.instance-{}._app.1", app::task_prefix(app_id), uuid_v4());
        let resources = resources(def);
        let gpus = def.get("gpus").and_then(Value::as_f64).unwrap_or(0.0);
        let port_defs: Vec<Value> = def
            .get("portDefinitions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let service_ports = service_ports(&port_defs, next_service_port);
        let container = container(def);
        let labels = string_map(def.get("labels"));
        let user_env = string_map(def.get("env"));
        let uuid = user_env
            .iter()
            .chain(labels.iter())
            .find(|(k, _)| k == "QOS_UUID" || k == "qos.uuid" || k == "qos_uuid")
            .map(|(_, v)| v.clone());
        let env = TaskEnv {
            task_id: task_id.clone(),
            app_id: app_id.to_owned(),
            version: app.config_version.clone(),
            resources,
            gpus,
            labels: labels.clone(),
            port_names: port_defs
                .iter()
                .map(|p| p.get("name").and_then(Value::as_str).map(str::to_owned))
                .collect(),
            image: container.as_ref().map(|c| c.image.clone()),
            user_env,
        };
        let spec = TaskSpec {
            task_id: task_id.clone(),
            framework_id: self.framework_id.clone(),
            command: command(def),
            resources,
            ports: port_defs.len(),
            env: env.builder(),
            container,
            kill_grace: app.kill_grace(),
            uuid,
            labels,
        };
        let task = MTask {
            id: task_id,
            version: app.config_version.clone(),
            state: TaskState::Staging,
            placement: None,
            service_ports,
            staged_at: iso_millis(Utc::now()),
            started_at: None,
            kill_requested: false,
            health: Vec::new(),
        };
        (spec, task)
    }
}

/// What a task of the app asks of an agent: Marathon's defaults are 1 CPU, 128 MB, no disk.
pub(super) fn resources(def: &Map<String, Value>) -> Resources {
    let num = |k: &str, d: f64| def.get(k).and_then(Value::as_f64).unwrap_or(d);
    Resources {
        cpus: num("cpus", 1.0),
        mem: num("mem", 128.0),
        disk: num("disk", 0.0),
    }
}

/// Each port definition's service port: its `port`, or the next free one from 10000 for 0.
fn service_ports(port_defs: &[Value], next_service_port: &mut u64) -> Vec<u64> {
    port_defs
        .iter()
        .map(|p| {
            p.get("port")
                .and_then(Value::as_u64)
                .filter(|p| *p > 0)
                .unwrap_or_else(|| {
                    *next_service_port += 1;
                    *next_service_port - 1
                })
        })
        .collect()
}

/// `cmd` through the shell, else `args` as an argument vector, else the image's own command.
fn command(def: &Map<String, Value>) -> TaskCommand {
    if let Some(c) = def.get("cmd").and_then(Value::as_str) {
        TaskCommand::Shell(c.to_owned())
    } else if let Some(a) = def.get("args").and_then(Value::as_array) {
        TaskCommand::Argv(
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
        )
    } else {
        TaskCommand::Image
    }
}

/// `container.docker` with an image: the network of the first of `networks` (host → `HOST`,
/// else `BRIDGE`), `container.volumes`, `docker.parameters` and `forcePullImage`.
fn container(def: &Map<String, Value>) -> Option<ContainerSpec> {
    let c = def.get("container")?;
    let d = c.get("docker")?;
    let image = d.get("image")?.as_str()?.to_owned();
    let mode = def
        .get("networks")
        .and_then(|n| n.get(0))
        .and_then(|n| n.get("mode"))
        .and_then(Value::as_str)
        .unwrap_or("host");
    Some(ContainerSpec::from_json(
        image,
        Some(if mode == "host" { "HOST" } else { "BRIDGE" }.to_owned()),
        c.get("volumes"),
        d,
    ))
}

/// The string values of a JSON object (`labels`, `env`), in order; other values are skipped.
fn string_map(v: Option<&Value>) -> Vec<(String, String)> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// What a task's environment is made of, before its placement gives its host and ports.
struct TaskEnv {
    task_id: String,
    app_id: String,
    version: String,
    resources: Resources,
    gpus: f64,
    labels: Vec<(String, String)>,
    port_names: Vec<Option<String>>,
    image: Option<String>,
    user_env: Vec<(String, String)>,
}

impl TaskEnv {
    /// Marathon's `TaskBuilder` order: version, `HOST`, resources, labels, ports, image, ids,
    /// one variable per label, then the app's `env` (last, so it overrides).
    fn builder(self) -> EnvBuilder {
        Box::new(move |offer| {
            let Self {
                task_id,
                app_id,
                version,
                resources: r,
                gpus,
                labels,
                port_names,
                image,
                user_env,
            } = self;
            let mut env = vec![
                ("MARATHON_APP_VERSION".to_owned(), version),
                ("HOST".to_owned(), offer.host.clone()),
                ("MARATHON_APP_RESOURCE_CPUS".to_owned(), java_double(r.cpus)),
                (
                    "MARATHON_APP_RESOURCE_GPUS".to_owned(),
                    java_double(gpus).trim_end_matches(".0").to_owned(),
                ),
                ("MARATHON_APP_RESOURCE_MEM".to_owned(), java_double(r.mem)),
                ("MARATHON_APP_RESOURCE_DISK".to_owned(), java_double(r.disk)),
            ];
            // Marathon leaves out labels whose key or value is longer than 512.
            let short = |(k, v): &&(String, String)| k.len() <= 512 && v.len() <= 512;
            let label_names: Vec<String> = labels
                .iter()
                .filter(short)
                .map(|(k, _)| sanitize_env_name(k))
                .collect();
            env.push(("MARATHON_APP_LABELS".to_owned(), label_names.join(" ")));
            for (i, p) in offer.ports.iter().enumerate() {
                env.push((format!("PORT{i}"), p.to_string()));
                if let Some(Some(name)) = port_names.get(i) {
                    env.push((format!("PORT_{}", sanitize_env_name(name)), p.to_string()));
                }
            }
            if let Some(p) = offer.ports.first() {
                env.push(("PORT".to_owned(), p.to_string()));
            }
            let ports: Vec<String> = offer.ports.iter().map(u16::to_string).collect();
            env.push(("PORTS".to_owned(), ports.join(",")));
            if let Some(img) = image {
                env.push(("MARATHON_APP_DOCKER_IMAGE".to_owned(), img));
            }
            env.push(("MESOS_TASK_ID".to_owned(), task_id));
            env.push(("MARATHON_APP_ID".to_owned(), app_id));
            for (k, v) in labels.iter().filter(short) {
                env.push((
                    format!("MARATHON_APP_LABEL_{}", sanitize_env_name(k)),
                    v.clone(),
                ));
            }
            env.extend(user_env);
            env
        })
    }
}

/// `[A-Za-z0-9_]`, upper-cased, as Marathon's `EnvironmentHelper` names label and port vars.
fn sanitize_env_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}
