//! What the shell-trap wrapper can carry of a Marathon app, and what it cannot.
//!
//! A Marathon job runs as the command `shell-trap … -- IMAGE …`. For an app **with a Docker image**
//! the `container` leaves the app (Mesos must run shell-trap on the agent, where it reaches the
//! Docker daemon) and travels to shell-trap in `QOS_CONTAINER`; shell-trap applies what `docker
//! run` can express. Everything Mesos itself would have done for that container is then checked
//! here, at submission, so that nothing is dropped without a word:
//!
//! | feature | outcome |
//! |---|---|
//! | host volumes, `privileged`, `forcePullImage`, `docker.network`, `docker.parameters` shell-trap supports | carried (`QOS_CONTAINER`) |
//! | `networks` in container mode | carried to the container (`container/bridge` → Docker's bridge); the task itself uses host networking (warning) |
//! | `env` entries, secrets in `env` | carried: Mesos resolves them into the task's environment, shell-trap forwards them (`QOS_FORWARD_ENV`) |
//! | `residency`, persistent volumes | refused: Marathon reserves them for the task's own container, which the job no longer runs in |
//! | external volumes (`volumes[].external`, DVDI) | refused: Mesos attaches them to the task's container |
//! | secret volumes (`volumes[].secret`) | refused: Mesos writes them into the task's container |
//! | `docker.pullConfig`, `docker.credential` | refused: shell-trap pulls with the agent daemon's own login |
//! | `docker.parameters` shell-trap does not support | refused, naming the supported ones (shell-trap's own parser decides) |
//! | `gpus` | refused: the container shell-trap starts gets no GPU |
//! | `ipAddress` (IP per task) | refused: the task's own network is not the container's |
//! | `container.appc` | refused: shell-trap runs Docker images only |
//! | `type: MESOS` with a Docker image (UCR) | carried, run by Docker (warning) |
//! | `portMappings` | not published by shell-trap (warning; use host networking) |
//! | `fetch`/`uris` | fetched into the sandbox, which the container does not mount (warning) |
//! | `healthChecks`, `readinessChecks` | they probe the shell-trap task, not the container (warning) |
//! | `resourceLimits` | shell-trap bounds the container by `cpus`, no burst (warning) |
//! | `container.linuxInfo` | not applied by Docker (warning) |
//!
//! An app **without an image** (a command, optionally in a Mesos container with volumes, secrets,
//! a persistent volume and `residency`) keeps its `container`: Mesos runs shell-trap inside it and
//! shell-trap runs the command there, so every Mesos feature is carried as is.

use serde_json::{Map, Value, json};

use super::{Origin, kind_of};
use crate::error::LauncherError;

/// Checks an app whose `container` has a Docker image, which is about to leave the app for
/// `QOS_CONTAINER`; adjusts `container` (the network carried from `networks`) and `app` (host
/// networking for the task). Refusals name the field and what to change.
pub(super) fn docker_app(
    app: &mut Map<String, Value>,
    container: &mut Map<String, Value>,
    origin: Origin<'_>,
    warnings: &mut Vec<String>,
) -> Result<(), LauncherError> {
    if present(app.get("residency")) {
        return Err(origin.field(
            "residency",
            "a resident app keeps its state on persistent volumes Marathon reserves for the \
             task's own container, but a QoS app's container is started by shell-trap on the \
             agent; remove \"residency\" and the persistent volumes, and let the job keep its \
             state in shell-trap's checkpoint directory ($QOS_CHECKPOINT_DIR) or a hostPath volume",
        ));
    }
    refuse_volumes(container, origin)?;
    let docker = container.get("docker").and_then(Value::as_object);
    refuse_mesos_only(app, container, docker, origin)?;
    let docker_network = docker
        .and_then(|d| d.get("network"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mappings = container
        .get("portMappings")
        .or_else(|| docker.and_then(|d| d.get("portMappings")));
    warn_not_applied(
        app,
        container,
        docker_network.as_deref(),
        mappings,
        warnings,
    );
    checks_on_shell_trap(app, mappings, origin, warnings)?;
    if present(app.get("resourceLimits")) {
        warnings.push(
            "resourceLimits: shell-trap bounds the container by the app's cpus \
             (MARATHON_APP_RESOURCE_CPUS), so it cannot burst beyond them"
                .to_owned(),
        );
    }
    carry_networks(app, container, docker_network.is_some(), warnings);
    Ok(())
}

/// A value given and not `null`.
fn present(v: Option<&Value>) -> bool {
    v.is_some_and(|v| !v.is_null())
}

/// A Docker volume of a QoS app is a bind mount of an absolute host path; persistent, external
/// and secret volumes belong to the task's own container, which the job no longer runs in.
fn refuse_volumes(container: &Map<String, Value>, origin: Origin<'_>) -> Result<(), LauncherError> {
    if let Some(Value::Array(vols)) = container.get("volumes") {
        for (i, v) in vols.iter().enumerate() {
            let at = |k: &str| format!("container.volumes[{i}].{k}");
            if present(v.get("persistent")) {
                return Err(origin.field(
                    &at("persistent"),
                    "a persistent volume is reserved by Marathon for the task's own container, \
                     which a QoS app does not run in (shell-trap starts the job's container on the \
                     agent); use a hostPath volume, or shell-trap's checkpoint directory for the \
                     job's state",
                ));
            }
            if present(v.get("external")) {
                return Err(origin.field(
                    &at("external"),
                    "an external volume (DVDI, e.g. REX-Ray) is attached by Mesos to the task's own \
                     container, which a QoS app does not run in; mount the volume on the agents and \
                     give its path as a hostPath volume instead",
                ));
            }
            if present(v.get("secret")) {
                return Err(origin.field(
                    &at("secret"),
                    "a secret volume is written by Mesos into the task's own container, which a \
                     QoS app does not run in; pass the secret as an env entry \
                     ({\"NAME\": {\"secret\": \"…\"}}), which shell-trap forwards into the container",
                ));
            }
            match v.get("hostPath") {
                Some(Value::String(h)) if h.starts_with('/') => {}
                Some(other) => {
                    return Err(origin.field(
                        &at("hostPath"),
                        format!("must be an absolute path on the agents, got {other}"),
                    ));
                }
                None => {
                    return Err(origin.field(
                        &at("hostPath"),
                        "is missing: a Docker volume of a QoS app is a bind mount of an \
                         absolute path on the agent (persistent, external and secret volumes \
                         cannot be carried)",
                    ));
                }
            }
        }
    }
    Ok(())
}

/// What Mesos alone would apply to the container (pull secrets, GPUs, an IP per task) and what
/// shell-trap's own reading of the container refuses.
fn refuse_mesos_only(
    app: &Map<String, Value>,
    container: &Map<String, Value>,
    docker: Option<&Map<String, Value>>,
    origin: Origin<'_>,
) -> Result<(), LauncherError> {
    for (key, why) in [
        (
            "pullConfig",
            "the image is pulled by shell-trap through the agent's Docker daemon, which cannot \
             read a Mesos secret; log the agents' daemon in to the registry (docker login) and \
             remove pullConfig",
        ),
        (
            "credential",
            "the image is pulled by shell-trap through the agent's Docker daemon, with the \
             daemon's own login; log the agents' daemon in to the registry (docker login) and \
             remove credential",
        ),
    ] {
        if present(docker.and_then(|d| d.get(key))) {
            return Err(origin.field(&format!("container.docker.{key}"), why));
        }
    }
    if app
        .get("gpus")
        .and_then(Value::as_f64)
        .is_some_and(|g| g > 0.0)
    {
        return Err(origin.field(
            "gpus",
            "the job's container is started by shell-trap through Docker, which is given no GPU \
             (and Marathon allows GPUs only with the Mesos containerizer); remove gpus, or run the \
             job without QoS",
        ));
    }
    if present(app.get("ipAddress")) {
        return Err(origin.field(
            "ipAddress",
            "an IP per task puts the task (shell-trap), not the job's container, on that network; \
             remove ipAddress and give the container's network in container.docker.network \
             (BRIDGE, HOST or NONE)",
        ));
    }

    // shell-trap's own reading of the container decides what it supports.
    if let Err(shell_trap::error::SetupError::Invalid { flag, reason }) =
        shell_trap::container_options::parse_marathon_container(
            &Value::Object(container.clone()).to_string(),
        )
    {
        let path = flag
            .strip_prefix("QOS_CONTAINER ")
            .map_or_else(|| "container".to_owned(), |p| format!("container.{p}"));
        return Err(origin.field(
            &path,
            format!("{reason} (shell-trap runs the job's container and cannot apply it)"),
        ));
    }
    Ok(())
}

/// Warnings for what is carried but not applied as Mesos would: the Mesos containerizer's
/// settings, user networks, port mappings, fetched files.
fn warn_not_applied(
    app: &Map<String, Value>,
    container: &Map<String, Value>,
    docker_network: Option<&str>,
    mappings: Option<&Value>,
    warnings: &mut Vec<String>,
) {
    if container.get("type").and_then(Value::as_str) == Some("MESOS") {
        warnings.push(
            "container.type MESOS: the Docker image runs under Docker, started by shell-trap, \
             not under the Mesos containerizer"
                .to_owned(),
        );
    }
    if present(container.get("linuxInfo")) {
        warnings.push(
            "container.linuxInfo (capabilities, seccomp, shared memory) is a Mesos containerizer \
             setting and is not applied to the container shell-trap starts; give Docker options in \
             container.docker.parameters (cap-add, security-opt, shm-size) instead"
                .to_owned(),
        );
    }
    if docker_network == Some("USER") {
        warnings.push(
            "container.docker.network USER: shell-trap runs the container with host networking \
             (user networks are not carried)"
                .to_owned(),
        );
    }
    if mappings
        .and_then(Value::as_array)
        .is_some_and(|m| !m.is_empty())
    {
        warnings.push(
            "container.portMappings: the app now runs as a shell-trap command task, so Marathon \
             no longer allocates those host ports; shell-trap receives them in QOS_CONTAINER — \
             use portDefinitions if Marathon must allocate ports"
                .to_owned(),
        );
    }
    for key in ["fetch", "uris"] {
        if app
            .get(key)
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
        {
            warnings.push(format!(
                "{key}: Mesos fetches the files into the task's sandbox on the agent, but the \
                 container shell-trap starts does not mount the sandbox (Mesos' Docker \
                 containerizer mounts it at /mnt/mesos/sandbox); bake the files into the image or \
                 mount them with a hostPath volume"
            ));
        }
    }
}

/// Health and readiness checks now probe the shell-trap task: a `portName` must name one of the
/// app's `portDefinitions` (a port mapping moves to shell-trap with the container), and the
/// checks are named in a warning.
fn checks_on_shell_trap(
    app: &Map<String, Value>,
    mappings: Option<&Value>,
    origin: Origin<'_>,
    warnings: &mut Vec<String>,
) -> Result<(), LauncherError> {
    // Port names of the moved port mappings are gone from the app; the host ports Marathon
    // allocates are the app's portDefinitions.
    let mapping_names: Vec<String> = mappings
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| m.get("name").and_then(Value::as_str).map(str::to_owned))
        .collect();
    let definition_names: Vec<&str> = app
        .get("portDefinitions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|d| d.get("name").and_then(Value::as_str))
        .collect();
    let mut checks = Vec::new();
    for key in ["healthChecks", "readinessChecks"] {
        if let Some(Value::Array(list)) = app.get(key) {
            for (i, c) in list.iter().enumerate() {
                if let Some(name) = c.get("portName").and_then(Value::as_str) {
                    if !definition_names.contains(&name) {
                        let whose = if mapping_names.iter().any(|m| m == name) {
                            "a port mapping of the container, which moves to shell-trap"
                        } else {
                            "no port of the app"
                        };
                        return Err(origin.field(
                            &format!("{key}[{i}].portName"),
                            format!(
                                "{name:?} names {whose}; Marathon refuses a check whose port it \
                                 cannot find. Add a portDefinitions entry named {name:?} (a host \
                                 port, with the container on host networking) or remove the check"
                            ),
                        ));
                    }
                }
                let proto = c.get("protocol").and_then(Value::as_str).unwrap_or(
                    if c.get("command").is_some() {
                        "COMMAND"
                    } else {
                        "HTTP"
                    },
                );
                checks.push(format!("{key}[{i}] ({proto})"));
            }
        }
    }
    if !checks.is_empty() {
        warnings.push(format!(
            "{}: the task Marathon checks is now shell-trap on the agent — a COMMAND check runs \
             there, outside the job's container, and a network check probes the host port \
             Marathon allocated (PORT0…), which the container serves only with host networking on \
             that port; a failing health check makes Marathon kill the task",
            checks.join(", ")
        ));
    }
    Ok(())
}

/// `networks` in a container mode needs a container in the app, which a Docker QoS app no longer
/// has: the mode goes to the job's container (`container/bridge` → `docker.network: BRIDGE`, a
/// named network → `USER`, which shell-trap runs on the host network) and the task gets host
/// networking.
fn carry_networks(
    app: &mut Map<String, Value>,
    container: &mut Map<String, Value>,
    has_docker_network: bool,
    warnings: &mut Vec<String>,
) {
    let Some(Value::Array(nets)) = app.get("networks") else {
        return;
    };
    let modes: Vec<String> = nets
        .iter()
        .map(|n| {
            n.get("mode")
                .and_then(Value::as_str)
                .unwrap_or("container")
                .to_owned()
        })
        .collect();
    if modes.iter().all(|m| m == "host") {
        return;
    }
    let original = Value::Array(nets.clone());
    let carried = if modes.iter().any(|m| m == "container/bridge") {
        "BRIDGE"
    } else {
        "USER"
    };
    app.insert("networks".into(), json!([{"mode": "host"}]));
    if !has_docker_network {
        let docker = container
            .entry("docker".to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(d) = docker {
            d.insert("network".into(), Value::String(carried.to_owned()));
        }
    }
    warnings.push(format!(
        "networks {original}: the task (shell-trap) uses host networking and the job's container \
         gets {}; portMappings are not published by shell-trap",
        if carried == "BRIDGE" {
            "Docker's bridge network"
        } else {
            "host networking too (named container networks are not carried)"
        }
    ));
}

/// Checks the `container` an app without a Docker image keeps (shell-trap runs inside it).
pub(super) fn image_less(
    container: &Map<String, Value>,
    origin: Origin<'_>,
) -> Result<(), LauncherError> {
    if container.get("appc").is_some_and(|a| !a.is_null()) {
        return Err(origin.field(
            "container.appc",
            "AppC images cannot be run: the job runs through shell-trap, which starts Docker \
             images (container.docker.image) or, without an image, the command itself",
        ));
    }
    match container.get("type") {
        Some(Value::String(t)) if t == "MESOS" => {}
        None | Some(Value::Null) => {
            return Err(origin.field(
                "container.type",
                "is missing: Marathon then takes DOCKER, which needs container.docker.image; \
                 write \"type\": \"MESOS\" to run the command in a Mesos container without an \
                 image",
            ));
        }
        Some(Value::String(t)) if t == "DOCKER" => {
            return Err(origin.field(
                "container.docker.image",
                "is missing: a DOCKER container needs an image (or use \"type\": \"MESOS\" to \
                 run the command in a Mesos container without an image)",
            ));
        }
        Some(other) => {
            return Err(origin.field(
                "container.type",
                format!(
                    "must be \"DOCKER\" or \"MESOS\", got {}",
                    match other {
                        Value::String(_) => other.to_string(),
                        v => kind_of(v).to_owned(),
                    }
                ),
            ));
        }
    }
    Ok(())
}
