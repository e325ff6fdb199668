//! Chronos rewrite: every iteration runs the user's command, then reports to the supervisor.
//!
//! # The rewritten `command`
//! ```text
//! qos_s=$(date +%s.%N); sh -c '<user command>'; qos_rc=$?; qos_f=$(date +%s.%N); … report …; exit "$qos_rc"
//! ```
//! - The user's command is **one single-quoted word** given to `sh -c` (each `'` written `'\''`):
//!   it runs exactly as Chronos would have run it (`/bin/sh -c command`), and nothing in it — quotes,
//!   `$()`, backticks, `;`, newlines — can reach the outer command. A `"shell": false` job's
//!   `command` and `arguments` become single-quoted words run directly (no shell), and the job is
//!   switched to `"shell": true`.
//! - The report is `POST <supervisor>/updateTask` with
//!   `{"name", "uuid", "started_at", "finished_at", "hostname", "exit_code", "cpus"}` (epoch seconds from the
//!   container's `date +%s.%N`, whole seconds where `date` lacks `%N` as BusyBox's does;
//!   `hostname` from `hostname`, else `$HOST`, reduced to `unknown` if it
//!   holds anything but `[A-Za-z0-9._-]`; `cpus` the size the run had, from Chronos'
//!   `CHRONOS_RESOURCE_CPU`, or `null`) and `Content-Type: application/json`. It uses `curl` if the
//!   image has it, else `wget` (BusyBox or GNU; bounded by `timeout` when the image has it, because
//!   BusyBox 1.35's `wget -T` crashes), and retries with exponential backoff
//!   ([`super::ReportPolicy`]). The name and UUID are checked against strict character sets, so
//!   the JSON needs no escaping.
//! - **The report token never appears in the command or in any process's arguments**: it is in
//!   the task's environment as `QOS_REPORT_TOKEN` ([`TOKEN_VAR`], in `environmentVariables`).
//!   curl gets `Authorization: Bearer <token>` on its standard input (`-H @-`, written by the
//!   shell's `printf` builtin, which runs no program); wget, which takes headers only as
//!   arguments, posts a temporary file (`mktemp`, mode 0600, removed after the report) whose body
//!   carries the token as `report_token` — the supervisor accepts either.
//! - The task then exits with the **user command's exit code**, so Chronos records failures.
//! - `environmentVariables` gets `QOS_UUID=<uuid>` (replacing any of that name), so node agents
//!   (testbed, cgroup-collector) can map the task's container to the job.
//! - The image needs `sh`, `date`, `sleep` and `curl` (7.55 or later) or `wget` (then also a
//!   writable `$TMPDIR` or `/tmp`; the thesis needed `/usr/bin/curl` exactly).
//!
//! # The schedule: exactly the requested iterations, back to back
//! The thesis rewrote `R4//PT5M` to the infinite `R//PT5M` and had its supervisor force the next
//! run right after every report, so iterations ran back to back — its QoS model assumes exactly
//! that (Eq. 1: `finished_at + remaining × (duration + deployment_time)`) — but scheduled and
//! forced runs overlapped and were double-counted (thesis-code.md §3.5, §8 item 6). Here the count
//! stays finite and nothing is forced: Chronos itself runs the job exactly `n` times, paced by
//! [`Pace`](super::Pace) (`--pace`):
//! - [`Pace::BackToBack`](super::Pace::BackToBack) (default, the thesis' behaviour): the period is replaced by `PT1S`; the
//!   count and the start are kept exactly as written (`R4//PT5M` → `R4//PT1S`,
//!   `R3/2030-01-01T00:00:00Z/PT10M` → `R3/2030-01-01T00:00:00Z/PT1S`; printed by
//!   [`Schedule`](frameworks::chronos::Schedule), the user's start text kept). A job's runs
//!   never overlap (`concurrent` is false), so with a 1 s period the next run is already due when the previous one ends and
//!   Chronos starts it at its next resource offer: the `n` runs go back to back, with no idle
//!   period between them. A one-line note (not a warning) says so. This relies on Chronos 3.x,
//!   which takes a run off the count only when it launches it and keeps queueing an overdue job
//!   until its previous run has ended. Chronos 2.x cannot pace this way: it queues the runs due
//!   within its 60 s horizon at once (taking them off the count) and discards a queued run whose
//!   job is still running (`MesosJobFramework.generateLaunchableTasks`), so only the first of the
//!   `n` runs would happen — the launcher refuses back-to-back pacing on a 2.x API
//!   ([`crate::submit`]).
//! - [`Pace::Schedule`](super::Pace::Schedule): the schedule is kept as written, period included, and runs start on it;
//!   the launcher warns when the schedule itself makes the deadline unreachable (nothing starts a
//!   run earlier). On Chronos 2.x the period must exceed a run's length, for the reason above.
//!
//! With either pace:
//! - a start more than `epsilon` in the past (Chronos 2.x would skip the runs, so the job would
//!   never run) is moved to now, with a warning (`R3/2014-09-25T17:22:00Z/PT2M` →
//!   `R3//PT2M`, then paced); see `anchor`;
//! - numbers and booleans written as strings (`"cpus": "1"`, `"async": "false"`) are sent as
//!   numbers and booleans (Chronos' Jackson reader would turn `"one"` into its default silently;
//!   the launcher refuses it, naming the field); `concurrent` and 2.x `async` are set to false
//!   with a warning (runs are iterations, one after the other, each ending on its own);
//! - `retries` is set to 0: a failed run is one iteration (reported with its exit code), not a
//!   retried one that would report twice;
//! - `epsilon` (Chronos 2.x: how late a run may start before it is skipped) is set, when the job
//!   does not set it, to the whole deadline window, so a late run is not silently skipped;
//! - infinite schedules (`R/…`) are refused: QoS needs a finite count to plan for.
//!
//! **Contract with the supervisor:** it must never force extra runs (`PUT /scheduler/job/<name>`):
//! with either pace Chronos starts every run itself. To resize it re-posts the job **as Chronos
//! currently stores it** (whose count and start Chronos has advanced at each run, period
//! untouched) with only `cpus` changed, so the remaining count and the pacing are unchanged. It
//! counts one iteration per report, idempotently: a retried report carries the same body, and the
//! supervisor keys reports on `started_at`, `finished_at` and `hostname`. Runs never overlap, so
//! these differ between real runs wherever `date` has `%N`; where it has whole seconds only
//! (BusyBox), two runs could collide only if both started and ended within the same second, which
//! a launch (a resource offer, a container start) makes unlikely — an image with sub-second
//! iterations and no `%N` should use `--pace schedule` with a period of a few seconds. The
//! supervisor deletes the job after the last report. The end-to-end tests (`tests/it/e2e.rs`)
//! check this contract against the real supervisor: no forced run, re-posts change only `cpus`,
//! and on the testbed's Chronos emulator three runs back to back.

mod report;
mod schedule;

use std::time::Duration;

use frameworks::chronos::validate_job_name;
use serde_json::{Map, Value};

pub use self::report::{TOKEN_VAR, report_command};
use self::schedule::plan_schedule;
use super::{
    JobUuid, Origin, Settings, Submission, checked_field, fmt_num, kind_of, read_cpus, string_field,
};
use crate::error::LauncherError;
use crate::shell::quote_always;

/// Chronos' default `cpus` (`--mesos_task_cpu`) when a job does not set it.
pub const CHRONOS_DEFAULT_CPUS: f64 = 0.1;

/// The period [`Pace::BackToBack`](super::Pace::BackToBack) writes: short enough that the next run is due by the time the
/// previous one has ended, a whole second so that every Chronos parses it.
pub const BACK_TO_BACK_PERIOD: Duration = Duration::from_secs(1);

/// What the user should know about a rewrite.
#[derive(Debug, Default)]
pub(super) struct Remarks {
    /// Fields overridden, defaults assumed, deadlines the schedule makes unreachable.
    pub(super) warnings: Vec<String>,
    /// Deliberate changes worth a line (the period replaced by [`Pace::BackToBack`](super::Pace::BackToBack)).
    pub(super) notes: Vec<String>,
}

/// A validated Chronos job, waiting for its report token.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The job's name.
    pub name: String,
    /// Runs requested (`R<n>`).
    pub iterations: u32,
    /// Initial CPUs.
    pub cpus: f64,
    /// The job without `qos`, with the launcher's fields set, `command` still to be written.
    body: Map<String, Value>,
    /// How the user's command is run inside the rewritten command.
    invocation: String,
}

/// Checks a Chronos job and its QoS target and turns it into a [`Plan`]: a finite schedule paced
/// as asked, the command wrapped to report each run, one run at a time, the UUID in its
/// environment.
pub(super) fn prepare(
    mut body: Map<String, Value>,
    job: Submission<'_>,
    remarks: &mut Remarks,
) -> Result<Plan, LauncherError> {
    let Remarks { warnings, notes } = remarks;
    let name = job_name(&body, job.origin)?;
    let (iterations, deadline_at) = plan_schedule(
        &mut body,
        job.origin,
        job.qos,
        job.submitted_at,
        job.settings.pace,
        warnings,
        notes,
    )?;
    let cpus = initial_cpus(&mut body, job.origin, warnings)?;
    let invocation = invocation(&mut body, job.origin, warnings)?;
    one_run_after_another(&mut body, job.submitted_at, deadline_at, warnings);
    set_uuid_env(&mut body, job.origin, job.uuid)?;

    Ok(Plan {
        name,
        iterations,
        cpus,
        body,
        invocation,
    })
}

/// `name`, checked against Chronos' rule.
fn job_name(body: &Map<String, Value>, origin: Origin<'_>) -> Result<String, LauncherError> {
    checked_field(
        body,
        origin,
        "name",
        "is missing; a Chronos job needs a name",
        |name| validate_job_name(name).map(|()| name.to_owned()),
        " (Chronos' rule [\\w.-]+; it is also written into the job's report)",
    )
}

/// `cpus` (Chronos' default written in when absent); a disabled job or a `container` that is not
/// an object is refused.
fn initial_cpus(
    body: &mut Map<String, Value>,
    origin: Origin<'_>,
    warnings: &mut Vec<String>,
) -> Result<f64, LauncherError> {
    let cpus = match read_cpus(body, origin)? {
        Some(c) => c,
        None => {
            warnings.push(format!(
                "cpus is not set; Chronos' default {CHRONOS_DEFAULT_CPUS} is assumed and written \
                 into the job"
            ));
            body.insert("cpus".into(), Value::from(CHRONOS_DEFAULT_CPUS));
            CHRONOS_DEFAULT_CPUS
        }
    };

    if body
        .get("disabled")
        .and_then(frameworks::lenient::as_bool)
        .unwrap_or(false)
    {
        return Err(origin.field("disabled", "is true, so the job would never run; remove it"));
    }
    if let Some(c) = body.get("container") {
        if !c.is_object() {
            return Err(origin.field(
                "container",
                format!("must be an object, got {}", kind_of(c)),
            ));
        }
    }

    Ok(cpus)
}

/// How the user's command runs inside the report wrapper: `sh -c <command>`, or the quoted
/// words of `command` and `arguments` for a `shell: false` job (switched to `shell: true`).
fn invocation(
    body: &mut Map<String, Value>,
    origin: Origin<'_>,
    warnings: &mut Vec<String>,
) -> Result<String, LauncherError> {
    let shell = match body.get("shell") {
        None => true,
        Some(v) => frameworks::lenient::as_bool(v)
            .ok_or_else(|| origin.field("shell", format!("must be true or false, got {v}")))?,
    };
    let missing = "is missing or empty; a QoS Chronos job needs the command each iteration runs";
    let command = string_field(body, origin, "command", missing)?;
    if command.trim().is_empty() {
        return Err(origin.field("command", missing));
    }
    Ok(if shell {
        format!("sh -c {}", quote_always(&command))
    } else {
        let mut words = vec![quote_always(&command)];
        match body.get("arguments") {
            None | Some(Value::Null) => {}
            Some(Value::Array(args)) => {
                for (i, a) in args.iter().enumerate() {
                    let Some(s) = a.as_str() else {
                        return Err(origin.field(
                            &format!("arguments[{i}]"),
                            format!("must be a string, got {}", kind_of(a)),
                        ));
                    };
                    words.push(quote_always(s));
                }
            }
            Some(other) => {
                return Err(origin.field(
                    "arguments",
                    format!("must be an array, got {}", kind_of(other)),
                ));
            }
        }
        body.shift_remove("arguments");
        body.insert("shell".into(), Value::Bool(true));
        warnings.push(
            "shell is false: the command and its arguments now run as quoted words inside the \
             report wrapper, which needs a shell (the job is switched to shell: true)"
                .to_owned(),
        );
        words.join(" ")
    })
}

/// Runs one after the other, each ending on its own; exactly the requested runs: no retries, no
/// skipped late runs.
fn one_run_after_another(
    body: &mut Map<String, Value>,
    submitted_at: f64,
    deadline_at: f64,
    warnings: &mut Vec<String>,
) {
    if body.get("concurrent") == Some(&Value::Bool(true)) {
        warnings.push(
            "concurrent true is replaced by false: a QoS job's runs are its iterations, one after \
             the other (with back-to-back pacing, concurrent runs would all start at once)"
                .to_owned(),
        );
        body.insert("concurrent".into(), Value::Bool(false));
    }
    if body.get("async") == Some(&Value::Bool(true)) {
        warnings.push(
            "async true is replaced by false: Chronos 2.x would wait for an explicit \
             task-status call after each run, which the report wrapper does not make (Chronos \
             3.x ignores async)"
                .to_owned(),
        );
        body.insert("async".into(), Value::Bool(false));
    }
    if body
        .get("executor")
        .and_then(Value::as_str)
        .is_some_and(|e| !e.trim().is_empty())
    {
        warnings.push(
            "executor: a custom executor runs the rewritten command; it must run it with \
             /bin/sh -c as the command executor does, or the iterations are not reported"
                .to_owned(),
        );
    }

    // Exactly the requested runs: no retries, no skipped late runs.
    match body.get("retries").and_then(frameworks::lenient::as_u64) {
        None | Some(0) => {}
        Some(n) => warnings.push(format!(
            "retries {n} is replaced by 0: each scheduled run is one QoS iteration, and a failed \
             run is reported with its exit code instead of being run again"
        )),
    }
    body.insert("retries".into(), Value::from(0));
    if !body.contains_key("epsilon") {
        let window = (deadline_at - submitted_at).ceil().max(1.0);
        body.insert(
            "epsilon".into(),
            Value::String(format!("PT{}S", fmt_num(window))),
        );
    }
}

/// The UUID in the task's environment, so node agents can map the container to the job.
fn set_uuid_env(
    body: &mut Map<String, Value>,
    origin: Origin<'_>,
    uuid: &JobUuid,
) -> Result<(), LauncherError> {
    let env = body
        .entry("environmentVariables".to_owned())
        .or_insert_with(|| Value::Array(Vec::new()));
    if env.is_null() {
        *env = Value::Array(Vec::new());
    }
    let Value::Array(vars) = env else {
        return Err(origin.field(
            "environmentVariables",
            format!(
                "must be an array of {{\"name\", \"value\"}}, got {}",
                kind_of(env)
            ),
        ));
    };
    vars.retain(|v| v.get("name").and_then(Value::as_str) != Some("QOS_UUID"));
    vars.push(serde_json::json!({"name": "QOS_UUID", "value": uuid.as_str()}));

    Ok(())
}

impl Plan {
    pub(super) fn render(&self, uuid: &JobUuid, settings: &Settings, token: Option<&str>) -> Value {
        let mut body = self.body.clone();
        let command = report_command(
            &self.invocation,
            &self.name,
            uuid.as_str(),
            &settings.supervisor.endpoint("updateTask"),
            token.is_some(),
            settings.report,
        );
        body.insert("command".into(), Value::String(command));
        if let (Some(t), Some(Value::Array(vars))) = (token, body.get_mut("environmentVariables")) {
            // In the task's environment, never on a command line (`ps` shows those to every user
            // of the agent).
            vars.retain(|v| v.get("name").and_then(Value::as_str) != Some(TOKEN_VAR));
            vars.push(serde_json::json!({"name": TOKEN_VAR, "value": t}));
        }
        Value::Object(body)
    }
}
