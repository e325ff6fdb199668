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
//! [`Pace`] (`--pace`):
//! - [`Pace::BackToBack`] (default, the thesis' behaviour): the period is replaced by `PT1S`; the
//!   count and the start are kept exactly as written (`R4//PT5M` → `R4//PT1S`,
//!   `R3/2030-01-01T00:00:00Z/PT10M` → `R3/2030-01-01T00:00:00Z/PT1S`; printed by
//!   [`Schedule`], the user's start text kept). A job's runs never overlap (`concurrent` is
//!   false), so with a 1 s period the next run is already due when the previous one ends and
//!   Chronos starts it at its next resource offer: the `n` runs go back to back, with no idle
//!   period between them. A one-line note (not a warning) says so. This relies on Chronos 3.x,
//!   which takes a run off the count only when it launches it and keeps queueing an overdue job
//!   until its previous run has ended. Chronos 2.x cannot pace this way: it queues the runs due
//!   within its 60 s horizon at once (taking them off the count) and discards a queued run whose
//!   job is still running (`MesosJobFramework.generateLaunchableTasks`), so only the first of the
//!   `n` runs would happen — the launcher refuses back-to-back pacing on a 2.x API
//!   ([`crate::submit`]).
//! - [`Pace::Schedule`]: the schedule is kept as written, period included, and runs start on it;
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

use std::time::Duration;

use frameworks::chronos::{Schedule, validate_job_name};
use qos_core::QosSpec;
use serde_json::{Map, Value};

use super::{JobUuid, Pace, ReportPolicy, Settings, fmt_num, kind_of, read_cpus, spec_error};
use crate::error::LauncherError;
use crate::shell::{quote, quote_always};

/// Chronos' default `cpus` (`--mesos_task_cpu`) when a job does not set it.
pub const CHRONOS_DEFAULT_CPUS: f64 = 0.1;

/// The period [`Pace::BackToBack`] writes: short enough that the next run is due by the time the
/// previous one has ended, a whole second so that every Chronos parses it.
pub const BACK_TO_BACK_PERIOD: Duration = Duration::from_secs(1);

/// What the user should know about a rewrite.
#[derive(Debug, Default)]
pub(super) struct Remarks {
    /// Fields overridden, defaults assumed, deadlines the schedule makes unreachable.
    pub(super) warnings: Vec<String>,
    /// Deliberate changes worth a line (the period replaced by [`Pace::BackToBack`]).
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
    origin: &str,
    qos: &QosSpec,
    uuid: &JobUuid,
    submitted_at: f64,
    pace: Pace,
    remarks: &mut Remarks,
) -> Result<Plan, LauncherError> {
    let Remarks { warnings, notes } = remarks;
    let name = job_name(&body, origin)?;
    let (iterations, deadline_at) =
        plan_schedule(&mut body, origin, qos, submitted_at, pace, warnings, notes)?;
    let cpus = initial_cpus(&mut body, origin, warnings)?;
    let invocation = invocation(&mut body, origin, warnings)?;
    one_run_after_another(&mut body, submitted_at, deadline_at, warnings);
    set_uuid_env(&mut body, origin, uuid)?;

    Ok(Plan {
        name,
        iterations,
        cpus,
        body,
        invocation,
    })
}

/// `name`, checked against Chronos' rule.
fn job_name(body: &Map<String, Value>, origin: &str) -> Result<String, LauncherError> {
    let field = |f: &str, why: String| LauncherError::field(origin, f, why);
    let name = match body.get("name") {
        Some(Value::String(s)) => s.clone(),
        None => {
            return Err(field(
                "name",
                "is missing; a Chronos job needs a name".into(),
            ));
        }
        Some(other) => {
            return Err(field(
                "name",
                format!("must be a string, got {}", kind_of(other)),
            ));
        }
    };
    if let Err(e) = validate_job_name(&name) {
        let why = match &e {
            frameworks::FrameworkError::InvalidInput { reason, .. } => reason.clone(),
            other => other.to_string(),
        };
        return Err(field(
            "name",
            format!(
                "{name:?} {why} (Chronos' rule [\\w.-]+; it is also written into the job's report)"
            ),
        ));
    }

    Ok(name)
}

/// The schedule: finite, re-anchored when its start is long past, started before the deadline,
/// and paced as asked. Returns the iterations and the deadline (epoch seconds).
fn plan_schedule(
    body: &mut Map<String, Value>,
    origin: &str,
    qos: &QosSpec,
    submitted_at: f64,
    pace: Pace,
    warnings: &mut Vec<String>,
    notes: &mut Vec<String>,
) -> Result<(u32, f64), LauncherError> {
    let field = |f: &str, why: String| LauncherError::field(origin, f, why);
    if body.contains_key("parents") {
        return Err(field(
            "parents",
            "dependent jobs are not supported for QoS: give the job its own finite \
             \"schedule\" (e.g. \"R4//PT5M\") instead of \"parents\""
                .into(),
        ));
    }
    super::fields::coerce(body, super::fields::CHRONOS, origin)?;
    let schedule_text = match body.get("schedule") {
        Some(Value::String(s)) => s.clone(),
        None => {
            return Err(field(
                "schedule",
                "is missing; a QoS Chronos job needs a finite repeating schedule such as \
                 \"R4//PT5M\" (4 iterations, 5 minutes apart, starting now)"
                    .into(),
            ));
        }
        Some(other) => {
            return Err(field(
                "schedule",
                format!("must be a string, got {}", kind_of(other)),
            ));
        }
    };
    let schedule = Schedule::parse(&schedule_text).map_err(|e| field("schedule", e.to_string()))?;
    let Some(reps) = schedule.repetitions() else {
        return Err(field(
            "schedule",
            format!(
                "{schedule_text:?} repeats forever (R/…); QoS needs a finite number of iterations \
                 to plan for: write the count after the R, e.g. \"R4/{}\"",
                schedule_text
                    .split_once('/')
                    .map_or("/PT5M", |(_, rest)| rest)
            ),
        ));
    };
    let iterations = u32::try_from(reps).map_err(|_| {
        field(
            "schedule",
            format!("{reps} iterations is too many (at most {})", u32::MAX),
        )
    })?;
    qos.validate_for(Some(iterations), submitted_at)
        .map_err(|e| spec_error(origin, &e))?;
    let deadline_at = qos.deadline.at(submitted_at);
    let (schedule, schedule_text) = anchor(
        schedule,
        schedule_text,
        body,
        origin,
        submitted_at,
        deadline_at,
        warnings,
    )?;
    body.insert("schedule".into(), Value::String(schedule_text.clone()));
    if let Some(start) = schedule.start() {
        if start.timestamp() as f64 >= deadline_at {
            return Err(field(
                "schedule",
                format!(
                    "starts at {start}, which is not before the deadline; move the start \
                     earlier or the deadline later"
                ),
            ));
        }
    }
    match pace {
        Pace::BackToBack => {
            let paced = back_to_back(&schedule, &schedule_text)
                .map_err(|e| LauncherError::internal(format!("{origin}: field schedule: {e}")))?;
            if schedule.period() != BACK_TO_BACK_PERIOD && iterations > 1 {
                let period = schedule_text
                    .rsplit_once('/')
                    .map_or(schedule_text.as_str(), |(_, p)| p);
                notes.push(format!(
                    "schedule {schedule_text:?} is sent as {paced:?}: the {iterations} runs go \
                     back to back, each as soon as the previous one ends, as the QoS model \
                     assumes (not {period} apart); --pace schedule keeps the period"
                ));
            }
            body.insert("schedule".into(), Value::String(paced));
        }
        Pace::Schedule => schedule_warnings(
            &schedule,
            iterations,
            qos.duration,
            submitted_at,
            deadline_at,
            warnings,
        ),
    }

    Ok((iterations, deadline_at))
}

/// `cpus` (Chronos' default written in when absent); a disabled job or a `container` that is not
/// an object is refused.
fn initial_cpus(
    body: &mut Map<String, Value>,
    origin: &str,
    warnings: &mut Vec<String>,
) -> Result<f64, LauncherError> {
    let field = |f: &str, why: String| LauncherError::field(origin, f, why);
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
        return Err(field(
            "disabled",
            "is true, so the job would never run; remove it".into(),
        ));
    }
    if let Some(c) = body.get("container") {
        if !c.is_object() {
            return Err(field(
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
    origin: &str,
    warnings: &mut Vec<String>,
) -> Result<String, LauncherError> {
    let field = |f: &str, why: String| LauncherError::field(origin, f, why);
    let shell = match body.get("shell") {
        None => true,
        Some(v) => frameworks::lenient::as_bool(v)
            .ok_or_else(|| field("shell", format!("must be true or false, got {v}")))?,
    };
    let command = match body.get("command") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(Value::String(_)) | None => {
            return Err(field(
                "command",
                "is missing or empty; a QoS Chronos job needs the command each iteration runs"
                    .into(),
            ));
        }
        Some(other) => {
            return Err(field(
                "command",
                format!("must be a string, got {}", kind_of(other)),
            ));
        }
    };
    Ok(if shell {
        format!("sh -c {}", quote_always(&command))
    } else {
        let mut words = vec![quote_always(&command)];
        match body.get("arguments") {
            None | Some(Value::Null) => {}
            Some(Value::Array(args)) => {
                for (i, a) in args.iter().enumerate() {
                    let Some(s) = a.as_str() else {
                        return Err(field(
                            &format!("arguments[{i}]"),
                            format!("must be a string, got {}", kind_of(a)),
                        ));
                    };
                    words.push(quote_always(s));
                }
            }
            Some(other) => {
                return Err(field(
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
    origin: &str,
    uuid: &JobUuid,
) -> Result<(), LauncherError> {
    let field = |f: &str, why: String| LauncherError::field(origin, f, why);
    let env = body
        .entry("environmentVariables".to_owned())
        .or_insert_with(|| Value::Array(Vec::new()));
    if env.is_null() {
        *env = Value::Array(Vec::new());
    }
    let Value::Array(vars) = env else {
        return Err(field(
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

/// How far a `scheduleTimeZone` (which replaces the start's zone, keeping its fields) can move a
/// start: the widest UTC offsets are −12 h and +14 h.
const ZONE_MARGIN_SECS: f64 = 14.0 * 3600.0;

/// A start so far in the past that Chronos would skip the runs is moved to now.
///
/// Chronos 2.x skips every run due more than `epsilon` ago (`JobUtils.skipForward`: with a start
/// that old, as many runs as periods have passed are dropped, and a job with fewer runs left than
/// that is never scheduled at all), so `R3/2014-09-25T17:22:00Z/PT2M` would never run and the
/// supervisor would wait for iterations that never come. Chronos 3.x runs the first at once and
/// the others on the old start's grid. Either way the job's QoS window starts now, so the
/// schedule is re-anchored to now (`R3//PT2M`, Chronos' "now") with a warning; a start in the
/// past but within `epsilon` (the job's, or the deadline window the launcher writes) is kept.
fn anchor(
    schedule: Schedule,
    text: String,
    body: &Map<String, Value>,
    origin: &str,
    submitted_at: f64,
    deadline_at: f64,
    warnings: &mut Vec<String>,
) -> Result<(Schedule, String), LauncherError> {
    let Some(start) = schedule.start() else {
        return Ok((schedule, text));
    };
    let epsilon = match body.get("epsilon") {
        None | Some(Value::Null) => (deadline_at - submitted_at).ceil().max(1.0),
        Some(Value::String(e)) => Schedule::parse(&format!("R1//{}", e.trim()))
            .map(|s| s.period_secs())
            .map_err(|_| {
                LauncherError::field(
                    origin,
                    "epsilon",
                    format!(
                        "{e:?} is not an ISO 8601 duration such as \"PT60S\" (how late a run may \
                         start before Chronos 2.x skips it)"
                    ),
                )
            })?,
        Some(other) => {
            return Err(LauncherError::field(
                origin,
                "epsilon",
                format!("must be an ISO 8601 duration such as \"PT60S\", got {other}"),
            ));
        }
    };
    let zone = body
        .get("scheduleTimeZone")
        .and_then(Value::as_str)
        .is_some_and(|z| !z.trim().is_empty());
    let margin = if zone { ZONE_MARGIN_SECS } else { 0.0 };
    #[expect(clippy::cast_precision_loss, reason = "epoch seconds")]
    let start_s = start.timestamp() as f64;
    let late = submitted_at - (start_s + epsilon + margin);
    if late <= 0.0 {
        return Ok((schedule, text));
    }
    let anchored = Schedule::new(schedule.repetitions(), None, schedule.period())
        .map_err(|e| LauncherError::internal(format!("{origin}: field schedule: {e}")))?;
    // Keep the user's own period text when it means the same.
    let period_text = text.rsplit_once("/P").map(|(_, p)| format!("P{p}"));
    let reps = schedule
        .repetitions()
        .map_or_else(String::new, |n| n.to_string());
    let kept = period_text
        .map(|p| format!("R{reps}//{p}"))
        .filter(|t| Schedule::parse(t).is_ok_and(|s| s == anchored))
        .unwrap_or_else(|| anchored.to_string());
    let runs = schedule.repetitions().unwrap_or(0);
    let iterations = u32::try_from(runs).unwrap_or(u32::MAX);
    warnings.push(format!(
        "schedule {text:?} starts {} before now ({}), more than epsilon ({} s) ago: \
         Chronos 2.x skips every run due more than epsilon ago (JobUtils.skipForward), so {} of \
         the {runs} runs would start and the supervisor would wait for them forever; the start is \
         moved to now ({kept:?}). Give a start in the future to start later",
        age_text(submitted_at - start_s),
        start.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        fmt_num(epsilon),
        // skipForward drops one run per period passed; fewer runs than that: none is left.
        if (submitted_at - start_s) / schedule.period_secs() >= f64::from(iterations) {
            "none"
        } else {
            "not all"
        },
    ));
    Ok((anchored, kept))
}

/// `secs` as a person says it: `3 min`, `5 h`, `12 days`, `11 years`.
fn age_text(secs: f64) -> String {
    let (n, unit) = if secs < 120.0 {
        (secs, "s")
    } else if secs < 7_200.0 {
        (secs / 60.0, "min")
    } else if secs < 172_800.0 {
        (secs / 3_600.0, "h")
    } else if secs < 2.0 * 31_557_600.0 {
        (secs / 86_400.0, "days")
    } else {
        (secs / 31_557_600.0, "years")
    };
    format!("{} {unit}", fmt_num(n.floor()))
}

/// `schedule` (written `text`) with its period replaced by [`BACK_TO_BACK_PERIOD`], count and
/// start unchanged: built and printed by [`Schedule`], with the user's own start text kept (Chronos'
/// regex `(R[0-9]*)/(.*)/(P.*)`: the start is everything between the first `/` and the last `/P`)
/// when it parses back to the same schedule.
fn back_to_back(schedule: &Schedule, text: &str) -> Result<String, String> {
    let paced = Schedule::new(
        schedule.repetitions(),
        schedule.start(),
        BACK_TO_BACK_PERIOD,
    )
    .map_err(|e| e.to_string())?;
    let printed = paced.to_string();
    let start_of = |s: &str| Some((s.find('/')? + 1, s.rfind("/P")?));
    let (Some((a, b)), Some((c, d))) = (start_of(text), start_of(&printed)) else {
        return Ok(printed);
    };
    if a > b || c > d {
        return Ok(printed);
    }
    let kept = format!("{}{}{}", &printed[..c], &text[a..b], &printed[d..]);
    Ok(if Schedule::parse(&kept).is_ok_and(|s| s == paced) {
        kept
    } else {
        printed
    })
}

/// [`Pace::Schedule`]: warns when the schedule alone makes the deadline unreachable.
fn schedule_warnings(
    schedule: &Schedule,
    iterations: u32,
    duration: f64,
    submitted_at: f64,
    deadline_at: f64,
    warnings: &mut Vec<String>,
) {
    if let Some(start) = schedule.start() {
        let start_s = start.timestamp() as f64;
        let last = start_s + schedule.period_secs() * f64::from(iterations.saturating_sub(1));
        if last > deadline_at {
            warnings.push(format!(
                "the schedule's last run is due {} s after the deadline; the job cannot meet it \
                 unless the supervisor has no say in when runs start",
                fmt_num((last - deadline_at).round())
            ));
        }
    } else {
        let last = schedule.period_secs() * f64::from(iterations.saturating_sub(1));
        let window = deadline_at - submitted_at;
        if submitted_at + last + duration > deadline_at {
            let fit =
                ((window - duration) / f64::from(iterations.saturating_sub(1).max(1))).floor();
            warnings.push(format!(
                "the last of the {iterations} runs starts {} s after submission (period {} s) and \
                 needs {} s of work at 1 CPU, but the deadline is {} s away; Chronos starts runs on \
                 the schedule (nothing forces them earlier), so a period of at most {} s would fit",
                fmt_num(last),
                fmt_num(schedule.period_secs()),
                fmt_num(duration),
                fmt_num(window),
                fmt_num(fit.max(1.0))
            ));
        }
    }
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

/// The task environment variable that carries the job's report token.
pub const TOKEN_VAR: &str = "QOS_REPORT_TOKEN";

/// Falls back to whole seconds where `date` has no `%N` (BusyBox prints it literally).
const PRECISE: &str = r#"case "$qos_s" in ''|*[!0-9.]*|*.*.*|.*|*.) qos_s=$(date +%s);; esac"#;

/// The whole rewritten command: run `invocation` (already quoted), then report. `name`, `uuid`
/// and `url` must have passed their character-set checks. With `auth`, the report carries the
/// token of [`TOKEN_VAR`] without it ever reaching an argument list: curl reads the
/// `Authorization` header from its standard input (`-H @-`, written by the shell's `printf`
/// builtin); wget, which takes headers only as arguments, posts a private temporary file (mode
/// 0600, removed after the report) whose body carries the token as `report_token`.
#[must_use]
pub fn report_command(
    invocation: &str,
    name: &str,
    uuid: &str,
    url: &str,
    auth: bool,
    policy: ReportPolicy,
) -> String {
    let url_q = quote(url);
    let ReportPolicy {
        attempts,
        first_delay_secs,
        max_delay_secs,
        timeout_secs,
    } = policy;
    let attempts = attempts.max(1);
    let first = first_delay_secs.max(1);
    let max = max_delay_secs.max(first);
    let timeout = timeout_secs.max(1);
    let curl_base =
        format!("curl -fsS -m {timeout} -o /dev/null -X POST -H 'Content-Type: application/json'");
    let wget_base = "$qos_t wget -q -O /dev/null --header 'Content-Type: application/json'";
    let (curl, wget) = if auth {
        (
            format!(
                r#"printf 'Authorization: Bearer %s\n' "${{{TOKEN_VAR}:-}}" | {curl_base} -H @- --data-binary "$qos_b" {url_q}"#
            ),
            format!(
                r#"if [ -z "$qos_p" ]; then qos_p=$(mktemp 2>/dev/null || printf '%s' "${{TMPDIR:-/tmp}}/qos-report.$$"); (umask 077; printf '%s,"report_token":"%s"}}' "${{qos_b%\}}}}" "${{{TOKEN_VAR}:-}}" > "$qos_p"); fi; {wget_base} --post-file "$qos_p" {url_q}"#
            ),
        )
    } else {
        (
            format!(r#"{curl_base} --data-binary "$qos_b" {url_q}"#),
            format!(r#"{wget_base} --post-data "$qos_b" {url_q}"#),
        )
    };
    let parts = [
        format!("qos_s=$(date +%s.%N 2>/dev/null); {PRECISE}"),
        invocation.to_owned(),
        "qos_rc=$?".to_owned(),
        format!(
            "qos_f=$(date +%s.%N 2>/dev/null); {}",
            PRECISE.replace("qos_s", "qos_f")
        ),
        r#"qos_h=$(hostname 2>/dev/null || printf '%s' "${HOST:-}")"#.to_owned(),
        r#"case "$qos_h" in ''|*[!A-Za-z0-9._-]*) qos_h=unknown;; esac"#.to_owned(),
        r#"case "$qos_s" in ''|*[!0-9.]*) qos_s=0;; esac"#.to_owned(),
        r#"case "$qos_f" in ''|*[!0-9.]*) qos_f=0;; esac"#.to_owned(),
        // The size this run had (Chronos 2.4+ sets it; a Java double), else null.
        r#"qos_c=${CHRONOS_RESOURCE_CPU:-}; case "$qos_c" in [0-9]*) case "$qos_c" in *[!0-9.Ee+-]*) qos_c=null;; esac;; *) qos_c=null;; esac"#.to_owned(),
        format!(
            r#"qos_b=$(printf '{{"name":"%s","uuid":"%s","started_at":%s,"finished_at":%s,"hostname":"%s","exit_code":%s,"cpus":%s}}' {} {} "$qos_s" "$qos_f" "$qos_h" "$qos_rc" "$qos_c")"#,
            quote(name),
            quote(uuid)
        ),
        format!("qos_n=1; qos_d={first}; qos_t=; qos_p="),
        // BusyBox 1.35's `wget -T` crashes; bound wget with `timeout` when the image has it.
        format!("if command -v timeout >/dev/null 2>&1; then qos_t='timeout {timeout}'; fi"),
        format!(
            "while :; do \
             if command -v curl >/dev/null 2>&1; then \
             {curl} && break; \
             elif command -v wget >/dev/null 2>&1; then \
             {wget} && break; \
             else echo 'qos-elastic: neither curl nor wget in this image: iteration not reported' >&2; break; fi; \
             if [ \"$qos_n\" -ge {attempts} ]; then echo \"qos-elastic: iteration report failed $qos_n times; giving up\" >&2; break; fi; \
             echo \"qos-elastic: iteration report failed (try $qos_n), retrying in ${{qos_d}}s\" >&2; \
             sleep \"$qos_d\"; qos_n=$((qos_n + 1)); qos_d=$((qos_d * 2)); \
             if [ \"$qos_d\" -gt {max} ]; then qos_d={max}; fi; \
             done"
        ),
        r#"if [ -n "$qos_p" ]; then rm -f "$qos_p"; fi"#.to_owned(),
        r#"exit "$qos_rc""#.to_owned(),
    ];
    parts.join("; ")
}
