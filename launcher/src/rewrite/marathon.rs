//! Marathon rewrite: the app runs through `shell-trap`, which starts (or restores) the real
//! container and checkpoints it when Marathon restarts the task with a new size.
//!
//! # The rewritten app
//! - `cmd` becomes (every word quoted for the `/bin/sh -c` Marathon wraps `cmd` in; the user's
//!   command is one single-quoted word):
//!   ```text
//!   exec shell-trap --uuid U --supervisor URL --checkpoint-dir D [--strategy S] --grace G \
//!              --runtime docker -- IMAGE sh -c '<cmd>'        # Docker app with cmd
//!              --runtime docker -- IMAGE '<arg0>' '<arg1>'…   # Docker app with args
//!              --runtime docker -- IMAGE                      # Docker app, image's own command
//!              --runtime process -- sh -c '<cmd>'             # command app (no image)
//!              --runtime process -- '<arg0>' '<arg1>'…        # args app (no image)
//!   ```
//!   and `args` is removed (Marathon refuses both). `exec` makes shell-trap the task's process, so
//!   Marathon's SIGTERM reaches it and not the `/bin/sh -c` wrapper (dash does not exec the last
//!   command; killing it would end the task while shell-trap checkpoints). The job's report token
//!   goes in `env` as `SHELL_TRAP_REPORT_TOKEN`, not on the command line.
//! - A `container` with a Docker image is **removed** from the app, as the thesis did: Mesos must
//!   run shell-trap on the agent, not inside the user's image. The object is handed to shell-trap
//!   as JSON in the environment variable `QOS_CONTAINER` (volumes, network, port mappings,
//!   `docker.parameters`, `privileged`, `forcePullImage` — the thesis silently dropped all but the
//!   volumes), with a container-mode `networks` carried into it. What shell-trap cannot carry
//!   (persistent, external and secret volumes, `residency`, pull secrets, GPUs, …) is refused or
//!   warned about at submission, never dropped: see `rewrite::carry`. A `container` without an
//!   image (a Mesos container with volumes, secrets, a persistent volume) stays in the app and
//!   shell-trap runs inside it. The names of the app's own `env` entries go in `QOS_FORWARD_ENV`
//!   (space-separated) so shell-trap can pass exactly those into the container.
//! - Numbers and booleans written as strings (`"mem": "64"`) are sent as numbers and booleans,
//!   as Marathon 1.5+ requires; a string that is not one is refused with its field.
//! - `taskKillGracePeriodSeconds`: the `--grace-period` flag if given, else the app's own value,
//!   else 30 s — the time between Marathon's SIGTERM and its SIGKILL.
//! - shell-trap's `--grace` (its time to checkpoint and stop the job after SIGTERM) is that period
//!   minus a margin of 5 s or a fifth of it, whichever is smaller ([`shell_trap_grace_ms`]: 30 s →
//!   25 s, 10 s → 8 s, 3 s → 2.4 s), so that the checkpoint is sealed, the container removed
//!   and the reports sent before the SIGKILL; a period under 5 s is accepted with a warning.
//! - `--strategy`: the launcher's `--strategy` flag if given, else the app's label
//!   `qos.checkpoint` (`auto`, `criu`, `app` or `none`; kept in the app), else nothing —
//!   shell-trap's own default, `auto`. A flag that overrides a different label is noted.
//! - `instances`: 1 (a warning if the file said otherwise).
//! - `upgradeStrategy`: `{"minimumHealthCapacity": 0, "maximumOverCapacity": 0}` — kill first, so
//!   the old and the new task never run at once (the thesis' default strategy let the new task's
//!   restore kill the old, un-checkpointed container: thesis-code.md §3.7, §8 item 22).
//! - labels `qos.uuid`, `qos.duration`, `qos.deadline`, `qos.desv_deadline` (the `qos` values as
//!   written; an absolute deadline in RFC 3339).
//! - `qos` is removed; every other field passes through untouched.
//!
//! **Contract with shell-trap:** the command line above (fixed by DESIGN.md); `QOS_CONTAINER` holds
//! the Marathon `container` object to apply to the container it starts; `QOS_FORWARD_ENV` lists
//! the app environment variables to pass in; the words after the image are the container's
//! command (`docker run IMAGE word…`); it bounds the container by `MARATHON_APP_RESOURCE_CPUS` and
//! finishes its checkpoint within `--grace`, which is less than `taskKillGracePeriodSeconds`.

use frameworks::AppId;
use qos_core::{Deadline, QosSpec};
use serde_json::{Map, Value, json};

use super::{
    DEFAULT_GRACE_PERIOD_SECS, JobUuid, Origin, Settings, Strategy, Submission, checked_field,
    fmt_num, kind_of, read_cpus,
};
use crate::error::LauncherError;
use crate::shell::{quote, quote_always};

/// Marathon's default `cpus` when an app does not set it.
pub const MARATHON_DEFAULT_CPUS: f64 = 1.0;

/// The app label that chooses shell-trap's checkpoint strategy from the job file.
pub const CHECKPOINT_LABEL: &str = "qos.checkpoint";

/// Longest margin kept between shell-trap's `--grace` and `taskKillGracePeriodSeconds`, ms.
const GRACE_MARGIN_MAX_MS: u64 = 5_000;

/// Below this `taskKillGracePeriodSeconds` the launcher warns that a checkpoint may not fit.
const GRACE_PERIOD_WARN_SECS: u64 = 5;

/// shell-trap's `--grace` for a `taskKillGracePeriodSeconds` of `period_secs`, in milliseconds:
/// the period minus a margin of 5 s or a fifth of the period, whichever is smaller (the margin
/// covers removing the container, writing the checkpoint manifest, the end report and exiting
/// before Marathon's SIGKILL); at most 3600 s, shell-trap's limit.
#[must_use]
pub fn shell_trap_grace_ms(period_secs: u64) -> u64 {
    let period = period_secs.saturating_mul(1000);
    let margin = (period / 5).min(GRACE_MARGIN_MAX_MS);
    (period - margin).min(3_600_000)
}

/// `ms` as seconds for a command line: `25`, `8`, `2.4`.
fn secs_text(ms: u64) -> String {
    let text = format!("{}.{:03}", ms / 1000, ms % 1000);
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// What the task runs after shell-trap's `--`.
#[derive(Debug, Clone, PartialEq)]
enum Payload {
    /// `cmd`: a shell string.
    Shell(String),
    /// `args`: an argument vector.
    Args(Vec<String>),
    /// Neither: the image's own command.
    ImageDefault,
}

/// A validated Marathon app, waiting for its report token.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Canonical app id (`/a/b`).
    pub id: String,
    /// Initial CPUs.
    pub cpus: f64,
    /// The app without `qos`, `container`, `cmd`, `args`, with the launcher's fields set.
    body: Map<String, Value>,
    image: Option<String>,
    payload: Payload,
    /// `taskKillGracePeriodSeconds` as sent.
    grace_period: u64,
    /// shell-trap's `--strategy`, when chosen (flag or label).
    strategy: Option<Strategy>,
}

impl Plan {
    /// The checkpoint strategy its tasks run with (shell-trap's `auto` when none was chosen):
    /// the supervisor is told, so that it knows whether a restart keeps the job's work.
    #[must_use]
    pub fn strategy(&self) -> Strategy {
        self.strategy.unwrap_or(Strategy::Auto)
    }
}

/// Checks a Marathon app and its QoS target and turns it into a [`Plan`]: one instance, the
/// command handed to shell-trap, restarts that leave time to checkpoint, the `qos.*` labels.
pub(super) fn prepare(
    mut body: Map<String, Value>,
    job: Submission<'_>,
    remarks: &mut super::chronos::Remarks,
) -> Result<Plan, LauncherError> {
    let id = app_id(&body, job.origin)?;
    if let Some(given) = body.get("id").and_then(Value::as_str) {
        if given.split('/').any(|s| s == "..") {
            remarks.warnings.push(format!(
                "id {given:?} is app {id}: Marathon resolves \"..\" (it takes away the segment \
                 before it)"
            ));
        }
    }
    body.insert("id".into(), Value::String(id.as_str().to_owned()));
    job.qos
        .validate_for(None, job.submitted_at)
        .map_err(|e| job.origin.spec_error(&e))?;
    super::fields::coerce(&mut body, super::fields::MARATHON, job.origin)?;
    for (key, min) in frameworks::marathon::APP_MINIMUMS {
        if let Some(v) = body.get(*key).and_then(Value::as_f64).filter(|v| v < min) {
            return Err(job.origin.field(
                key,
                format!(
                    "must be at least {} (Marathon refuses less), got {}",
                    fmt_num(*min),
                    fmt_num(v)
                ),
            ));
        }
    }

    let cpus = read_cpus(&body, job.origin)?.unwrap_or(MARATHON_DEFAULT_CPUS);

    match body.get("instances").and_then(frameworks::lenient::as_u64) {
        Some(1) => {}
        None if !body.contains_key("instances") => {}
        _ => remarks.warnings.push(format!(
            "instances {} is replaced by 1: a QoS job is one task (its CPU is what changes)",
            body.get("instances")
                .map_or_else(String::new, Value::to_string)
        )),
    }
    body.insert("instances".into(), Value::from(1));

    let payload = take_payload(&mut body, job.origin)?;
    let TakenContainer { image, handed_over } =
        take_container(&mut body, job.origin, &payload, &mut remarks.warnings)?;
    hand_over_env(&mut body, job.origin, handed_over, &mut remarks.warnings)?;
    let grace_period = grace_period(&body, job.origin, job.settings, &mut remarks.warnings)?;
    let strategy = checkpoint_strategy(&body, job.origin, job.settings, remarks)?;
    stop_before_start(&mut body, &mut remarks.warnings);
    qos_labels(&mut body, job.origin, job.qos, job.uuid)?;

    Ok(Plan {
        id: id.as_str().to_owned(),
        cpus,
        body,
        image,
        payload,
        grace_period,
        strategy,
    })
}

/// `id`, validated and canonical (`/a/b`).
fn app_id(body: &Map<String, Value>, origin: Origin<'_>) -> Result<AppId, LauncherError> {
    checked_field(
        body,
        origin,
        "id",
        "is missing; a Marathon app needs an id such as \"/openmplinpack1\"",
        AppId::parse,
        "",
    )
}

/// What runs: `cmd`, `args` or the image's own command (both taken out of the body).
fn take_payload(
    body: &mut Map<String, Value>,
    origin: Origin<'_>,
) -> Result<Payload, LauncherError> {
    let cmd = body.shift_remove("cmd");
    let args = body.shift_remove("args");
    let payload = match (cmd, args) {
        (Some(Value::String(_)), Some(a)) if !a.is_null() => {
            return Err(origin.field(
                "cmd",
                "and args are both set; Marathon accepts only one of them",
            ));
        }
        (Some(Value::String(c)), _) if frameworks::marathon::cmd_too_short(&c) => {
            return Err(origin.field(
                "cmd",
                format!(
                    "must not be an empty string (Marathon refuses a cmd of fewer than \
                     {} characters, got {c:?}); give the command to run",
                    frameworks::marathon::CMD_MIN_UTF16_UNITS
                ),
            ));
        }
        (Some(Value::String(c)), _) if !c.trim().is_empty() => Payload::Shell(c),
        (Some(Value::String(_)), _) => {
            return Err(origin.field("cmd", "is blank; remove it or give the command to run"));
        }
        (Some(Value::Null) | None, Some(Value::Array(a))) => {
            let mut words = Vec::with_capacity(a.len());
            for (i, w) in a.iter().enumerate() {
                let Some(s) = w.as_str() else {
                    return Err(origin.field(
                        &format!("args[{i}]"),
                        format!("must be a string, got {}", kind_of(w)),
                    ));
                };
                words.push(s.to_owned());
            }
            if words.is_empty() {
                Payload::ImageDefault
            } else {
                Payload::Args(words)
            }
        }
        (Some(Value::Null) | None, None | Some(Value::Null)) => Payload::ImageDefault,
        (Some(other), _) => {
            return Err(origin.field("cmd", format!("must be a string, got {}", kind_of(&other))));
        }
        (_, Some(other)) => {
            return Err(origin.field(
                "args",
                format!("must be an array of strings, got {}", kind_of(&other)),
            ));
        }
    };

    Ok(payload)
}

/// What [`take_container`] found.
struct TakenContainer {
    /// The Docker image, when the container has one.
    image: Option<String>,
    /// The container shell-trap starts (`QOS_CONTAINER`): present only with an image.
    handed_over: Option<Map<String, Value>>,
}

/// The container, taken out of the body: with a Docker image it is handed over to shell-trap
/// (returned with the image), without one it stays and Mesos runs shell-trap inside it
/// (`rewrite::carry`).
fn take_container(
    body: &mut Map<String, Value>,
    origin: Origin<'_>,
    payload: &Payload,
    warnings: &mut Vec<String>,
) -> Result<TakenContainer, LauncherError> {
    let mut container = match body.shift_remove("container") {
        None | Some(Value::Null) => None,
        Some(Value::Object(c)) => Some(c),
        Some(other) => {
            return Err(origin.field(
                "container",
                format!("must be an object, got {}", kind_of(&other)),
            ));
        }
    };
    let image = match container
        .as_ref()
        .and_then(|c| c.get("docker"))
        .and_then(|d| d.get("image"))
    {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
        Some(other) => {
            return Err(origin.field(
                "container.docker.image",
                format!("must be a non-empty string, got {other}"),
            ));
        }
    };
    if image.is_none() && *payload == Payload::ImageDefault {
        return Err(origin.field(
            "cmd",
            "is missing: an app without a container image needs \"cmd\" or \"args\"",
        ));
    }
    match (&image, container.as_mut()) {
        (Some(_), Some(c)) => super::carry::docker_app(body, c, origin, warnings)?,
        (None, Some(c)) => {
            super::carry::image_less(c, origin)?;
            body.insert("container".into(), Value::Object(c.clone()));
        }
        (_, None) => {}
    }
    let handed_over = container.filter(|_| image.is_some());
    Ok(TakenContainer { image, handed_over })
}

/// The environment shell-trap is given: the container it starts (`QOS_CONTAINER`) and the names
/// of the app's variables it forwards into it (`QOS_FORWARD_ENV`).
fn hand_over_env(
    body: &mut Map<String, Value>,
    origin: Origin<'_>,
    handed_over: Option<Map<String, Value>>,
    warnings: &mut Vec<String>,
) -> Result<(), LauncherError> {
    let forward: Vec<String> = match body.get("env") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(env)) => env.keys().cloned().collect(),
        Some(other) => {
            return Err(origin.field("env", format!("must be an object, got {}", kind_of(other))));
        }
    };
    if let Some((name, secret)) = frameworks::marathon::undefined_env_secrets(body)
        .into_iter()
        .next()
    {
        return Err(origin.field(
            &format!("env.{name}.secret"),
            format!(
                "references the secret {secret:?}, which \"secrets\" does not define (Marathon \
                 refuses it); add \"secrets\": {{{secret:?}: {{\"source\": \"…\"}}}}"
            ),
        ));
    }
    for reserved in [
        "QOS_CONTAINER",
        "QOS_FORWARD_ENV",
        "SHELL_TRAP_REPORT_TOKEN",
    ] {
        if forward.iter().any(|k| k == reserved) {
            return Err(origin.field(
                &format!("env.{reserved}"),
                "is reserved for the launcher's hand-over to shell-trap; rename it",
            ));
        }
    }
    let forward: Vec<String> = forward
        .into_iter()
        .filter(|k| {
            let ok = !k.is_empty()
                && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !k.as_bytes()[0].is_ascii_digit();
            if !ok {
                warnings.push(format!(
                    "env {k:?} is not a valid variable name and is not forwarded into the container"
                ));
            }
            ok
        })
        .collect();
    if let Some(c) = handed_over {
        let env = object_entry(body, "env", origin)?;
        env.insert(
            "QOS_CONTAINER".into(),
            Value::String(Value::Object(c).to_string()),
        );
    }
    if !forward.is_empty() {
        let env = object_entry(body, "env", origin)?;
        env.insert("QOS_FORWARD_ENV".into(), Value::String(forward.join(" ")));
    }

    Ok(())
}

/// `taskKillGracePeriodSeconds`: restarts kill first, with time to checkpoint.
fn grace_period(
    body: &Map<String, Value>,
    origin: Origin<'_>,
    settings: &Settings,
    warnings: &mut Vec<String>,
) -> Result<u64, LauncherError> {
    let own_grace = match body.get("taskKillGracePeriodSeconds") {
        None | Some(Value::Null) => None,
        Some(v) if frameworks::lenient::as_u64(v).is_some() => frameworks::lenient::as_u64(v),
        Some(v) => {
            return Err(origin.field(
                "taskKillGracePeriodSeconds",
                format!("must be a whole number of seconds, got {v}"),
            ));
        }
    };
    let grace_period = settings
        .shell_trap
        .grace_period
        .map(u64::from)
        .or(own_grace)
        .unwrap_or(u64::from(DEFAULT_GRACE_PERIOD_SECS));
    if grace_period < GRACE_PERIOD_WARN_SECS {
        warnings.push(format!(
            "taskKillGracePeriodSeconds {grace_period} leaves shell-trap {} s to checkpoint the \
             job after Marathon's SIGTERM; a checkpoint that is not done by the SIGKILL is lost \
             (the launcher's default is {DEFAULT_GRACE_PERIOD_SECS})",
            secs_text(shell_trap_grace_ms(grace_period))
        ));
    }

    Ok(grace_period)
}

/// The checkpoint strategy: the flag, else the app's label.
fn checkpoint_strategy(
    body: &Map<String, Value>,
    origin: Origin<'_>,
    settings: &Settings,
    remarks: &mut super::chronos::Remarks,
) -> Result<Option<Strategy>, LauncherError> {
    let labelled = match body.get("labels").and_then(|l| l.get(CHECKPOINT_LABEL)) {
        None | Some(Value::Null) => None,
        Some(v) => {
            let parsed = v
                .as_str()
                .and_then(|s| <Strategy as clap::ValueEnum>::from_str(s.trim(), true).ok());
            match parsed {
                Some(s) => Some(s),
                None => {
                    return Err(origin.field(
                        &format!("labels.{CHECKPOINT_LABEL}"),
                        format!(
                            "must be one of \"auto\", \"criu\", \"app\" or \"none\" (shell-trap's \
                             checkpoint strategy), got {v}"
                        ),
                    ));
                }
            }
        }
    };
    Ok(match (settings.shell_trap.strategy, labelled) {
        (Some(flag), Some(label)) if flag != label => {
            remarks.notes.push(format!(
                "--strategy {} overrides the app's label {CHECKPOINT_LABEL}={}",
                flag.flag_value(),
                label.flag_value()
            ));
            Some(flag)
        }
        (flag, label) => flag.or(label),
    })
}

/// `upgradeStrategy` 0/0: on a resize the old task is gone before the new one starts.
fn stop_before_start(body: &mut Map<String, Value>, warnings: &mut Vec<String>) {
    let wanted = json!({"minimumHealthCapacity": 0, "maximumOverCapacity": 0});
    if let Some(old) = body.get("upgradeStrategy") {
        let same = old
            .get("minimumHealthCapacity")
            .and_then(frameworks::lenient::as_f64)
            == Some(0.0)
            && old
                .get("maximumOverCapacity")
                .and_then(frameworks::lenient::as_f64)
                == Some(0.0);
        if !same {
            warnings.push(format!(
                "upgradeStrategy {old} is replaced by {wanted}: on a resize the old task must be \
                 checkpointed and gone before the new one restores it"
            ));
        }
    }
    body.insert("upgradeStrategy".into(), wanted);
}

/// The QoS target as the `qos.*` labels the supervisor reads.
fn qos_labels(
    body: &mut Map<String, Value>,
    origin: Origin<'_>,
    qos: &QosSpec,
    uuid: &JobUuid,
) -> Result<(), LauncherError> {
    let deadline = match qos.deadline {
        Deadline::Relative(s) => fmt_num(s),
        Deadline::Absolute(_) => qos.deadline.to_string(),
    };
    let labels = object_entry(body, "labels", origin)?;
    labels.insert("qos.uuid".into(), Value::String(uuid.as_str().to_owned()));
    labels.insert("qos.duration".into(), Value::String(fmt_num(qos.duration)));
    labels.insert("qos.deadline".into(), Value::String(deadline));
    labels.insert(
        "qos.desv_deadline".into(),
        Value::String(fmt_num(qos.desv_deadline)),
    );

    Ok(())
}

/// `body[key]` as an object (created when absent); an error when it is something else.
fn object_entry<'a>(
    body: &'a mut Map<String, Value>,
    key: &str,
    origin: Origin<'_>,
) -> Result<&'a mut Map<String, Value>, LauncherError> {
    let slot = body
        .entry(key.to_owned())
        .or_insert_with(|| Value::Object(Map::new()));
    if slot.is_null() {
        *slot = Value::Object(Map::new());
    }
    match slot {
        Value::Object(m) => Ok(m),
        other => Err(origin.field(key, format!("must be an object, got {}", kind_of(other)))),
    }
}

impl Plan {
    pub(super) fn render(&self, uuid: &JobUuid, settings: &Settings, token: Option<&str>) -> Value {
        let mut body = self.body.clone();
        // `exec`: Marathon runs `cmd` under `/bin/sh -c`, and dash stays the parent of the last
        // command; on a restart the task's SIGTERM would kill that shell at once and Mesos would
        // tear down the task's cgroup while shell-trap is still checkpointing.
        let mut words: Vec<String> = vec![
            "exec".into(),
            quote(&settings.shell_trap.binary),
            "--uuid".into(),
            quote(uuid.as_str()),
            "--supervisor".into(),
            quote(settings.supervisor.as_str()),
            "--checkpoint-dir".into(),
            quote(&settings.shell_trap.checkpoint_dir),
        ];
        if let Some(s) = self.strategy {
            words.extend(["--strategy".into(), s.flag_value()]);
        }
        // shell-trap must be done before Marathon's SIGKILL: its own default (25 s) fits only
        // the launcher's default period (30 s).
        words.extend([
            "--grace".into(),
            secs_text(shell_trap_grace_ms(self.grace_period)),
        ]);
        words.push("--runtime".into());
        words.push(
            if self.image.is_some() {
                "docker"
            } else {
                "process"
            }
            .into(),
        );
        words.push("--".into());
        if let Some(image) = &self.image {
            words.push(quote_always(image));
        }
        match &self.payload {
            Payload::Shell(cmd) => {
                words.extend(["sh".into(), "-c".into(), quote_always(cmd)]);
            }
            Payload::Args(args) => words.extend(args.iter().map(|a| quote_always(a))),
            Payload::ImageDefault => {}
        }
        body.insert("cmd".into(), Value::String(words.join(" ")));
        if let Some(t) = token {
            // In the task's environment, not on its command line where any local user can read it.
            let env = body
                .entry("env")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(env) = env {
                env.insert(
                    "SHELL_TRAP_REPORT_TOKEN".into(),
                    Value::String(t.to_owned()),
                );
            }
        }
        body.insert(
            "taskKillGracePeriodSeconds".into(),
            Value::from(self.grace_period),
        );
        Value::Object(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_trap_gets_the_kill_grace_period_minus_a_margin() {
        for (period, grace) in [
            (30, "25"),
            (45, "40"),
            (10, "8"),
            (12, "9.6"),
            (7, "5.6"),
            (3, "2.4"),
            (1, "0.8"),
            (0, "0"),
            (5000, "3600"),
        ] {
            assert_eq!(secs_text(shell_trap_grace_ms(period)), grace, "{period}");
        }
    }
}
