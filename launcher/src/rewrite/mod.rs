//! The pure rewrite: job file → (framework request body, supervisor registration). No I/O, no
//! clock, no randomness — the UUID and the submission time are parameters — so every rewrite is
//! golden-tested byte for byte.
//!
//! Two phases, because the report token is only known once the supervisor has accepted the
//! registration:
//! 1. [`prepare`] validates everything (the `qos` block through `qos-core`, the framework part,
//!    names, the schedule) and builds the [`JobRegistration`];
//! 2. [`Prepared::request`] renders the exact body for Chronos or Marathon with the job's report
//!    token embedded.
//!
//! The contracts the rewritten jobs rely on — what the supervisor and shell-trap must do — are in
//! [`chronos`] and [`marathon`].

mod carry;
pub mod chronos;
mod fields;
pub mod marathon;

use std::fmt;

use frameworks::Credentials;
use qos_core::predictive::ResizeMode;
use qos_core::wire::JobRegistration;
use qos_core::{Controller, Framework, Policy, QosSpec};
use serde_json::{Map, Value};

use crate::error::LauncherError;
use crate::shell;

/// Placeholder for the report token in `--dry-run` output: the real token is issued by the
/// supervisor when the job is registered, which a dry run does not do.
pub const DRY_RUN_REPORT_TOKEN: &str = "DRY-RUN-report-token-issued-at-registration";

/// Default checkpoint directory passed to shell-trap (it makes one sub-directory per UUID).
pub const DEFAULT_CHECKPOINT_DIR: &str = "/var/lib/qos-elastic/checkpoints";

/// Default `taskKillGracePeriodSeconds`: the time between Marathon's SIGTERM and its SIGKILL.
/// shell-trap gets 25 s of it to checkpoint ([`marathon::shell_trap_grace_ms`]).
pub const DEFAULT_GRACE_PERIOD_SECS: u32 = 30;

/// A job's UUID: version 4, written as 32 lowercase hex digits without dashes, as the thesis did
/// (`uuid.uuid4().hex`). That form is a valid Docker container name, Chronos/Marathon label value
/// and file name, and needs no quoting anywhere.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JobUuid(String);

impl JobUuid {
    /// A fresh random version-4 UUID.
    #[must_use]
    pub fn generate() -> Self {
        let mut bytes: [u8; 16] = rand::random();
        bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
        bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
        Self(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// Accepts 32 hex digits, with or without the four dashes of the 8-4-4-4-12 form, in any
    /// case; returns the canonical 32-lowercase-hex form.
    ///
    /// # Errors
    /// [`LauncherError`] (input) saying what a UUID looks like.
    pub fn parse(text: &str) -> Result<Self, LauncherError> {
        let t = text.trim();
        let dashed = t.len() == 36
            && t.char_indices()
                .all(|(i, c)| matches!(i, 8 | 13 | 18 | 23) == (c == '-'));
        let hex: String = if dashed {
            t.chars().filter(|c| *c != '-').collect()
        } else {
            t.to_owned()
        };
        if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(LauncherError::input(format!(
                "{text:?} is not a UUID: expected 32 hex digits (e.g. 0123456789abcdef0123456789abcdef) \
                 or the dashed 8-4-4-4-12 form"
            )));
        }
        Ok(Self(hex.to_ascii_lowercase()))
    }

    /// The 32-hex-digit form.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobUuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The supervisor's base URL, validated so that it can be written into a container's command:
/// `http`/`https`, a host, no user info, no query or fragment, and only the characters
/// `[A-Za-z0-9._~:/%-]` (plus `[`/`]` around an IPv6 host). A trailing `/` is dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupervisorUrl {
    base: String,
}

impl SupervisorUrl {
    /// Validates and normalises.
    ///
    /// # Errors
    /// [`LauncherError`] (input) naming what is wrong.
    pub fn parse(raw: &str) -> Result<Self, LauncherError> {
        let bad = |why: String| {
            LauncherError::input(format!(
                "supervisor URL {raw:?} {why}; expected e.g. http://10.0.0.2:30000"
            ))
        };
        let url =
            frameworks::Url::parse(raw.trim()).map_err(|e| bad(format!("is not a URL ({e})")))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad(
                "must not carry a user or password (use --admin-token for the API)".to_owned(),
            ));
        }
        // Credentials::new checks scheme, host, query and fragment the same way the clients do.
        let creds = Credentials::new(raw.trim()).map_err(|e| bad(format!("is refused: {e}")))?;
        let base = creds.url().as_str().trim_end_matches('/').to_owned();
        shell::check_charset(&base, "._~:/%-[]").map_err(bad)?;
        Ok(Self { base })
    }

    /// The base URL without a trailing `/`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.base
    }

    /// `<base>/<route>` (route without a leading `/`).
    #[must_use]
    pub fn endpoint(&self, route: &str) -> String {
        format!("{}/{route}", self.base)
    }
}

impl fmt::Display for SupervisorUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.base)
    }
}

/// How a Chronos iteration's report is retried when the supervisor does not take it: up to
/// `attempts` tries, waiting `first_delay_secs`, then twice as long each time up to
/// `max_delay_secs`; each try gives up after `timeout_secs`. The defaults (10 tries, 1 s doubling
/// to 60 s, 10 s per try) ride out about four minutes of supervisor downtime; the supervisor takes
/// a repeated report only once, so retrying is always safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportPolicy {
    /// Total tries, at least 1.
    pub attempts: u32,
    /// Wait before the second try, seconds.
    pub first_delay_secs: u32,
    /// Longest wait between tries, seconds.
    pub max_delay_secs: u32,
    /// Timeout of one try, seconds.
    pub timeout_secs: u32,
}

impl Default for ReportPolicy {
    fn default() -> Self {
        Self {
            attempts: 10,
            first_delay_secs: 1,
            max_delay_secs: 60,
            timeout_secs: 10,
        }
    }
}

/// shell-trap's checkpoint strategy (`--strategy`): what happens to a Marathon job's work when a
/// resize restarts its task. The variants' docs are the `--help` text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Strategy {
    /// Picked by shell-trap on the agent: criu if CRIU works there, else app if the image
    /// declares support (its label qos.checkpoint=app), else none
    Auto,
    /// CRIU (`docker checkpoint`) freezes the whole container, any program; needs Docker with
    /// experimental features and CRIU on the agents (refused where it cannot work)
    Criu,
    /// The job saves its own state on SIGTERM into $QOS_CHECKPOINT_DIR and resumes from it (as
    /// the project's LINPACK does); processes or containers
    App,
    /// No checkpoint: every resize restarts the job from scratch and its work is lost
    None,
}

impl Strategy {
    /// The flag value (`auto`, `criu`, `app`, `none`): clap's name for the variant, the name
    /// shell-trap's own `--strategy` parses too.
    #[must_use]
    pub fn flag_value(self) -> String {
        clap::ValueEnum::to_possible_value(&self)
            .map_or_else(String::new, |v| v.get_name().to_owned())
    }
}

/// How a Chronos job's runs are paced (`--pace`); details and the Chronos versions each needs in
/// [`chronos`]. The variants' docs are the `--help` text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Pace {
    /// Each run as soon as the previous one ends, as in the thesis and its QoS model (Eq. 1): the
    /// period becomes PT1S, count and start are kept (R13//PT3M is sent as R13//PT1S). Needs
    /// Chronos 3.x
    #[default]
    BackToBack,
    /// Runs start on the job's own schedule, period kept (a warning says when that cannot meet
    /// the deadline)
    Schedule,
}

impl Pace {
    /// The flag value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BackToBack => "back-to-back",
            Self::Schedule => "schedule",
        }
    }
}

/// The default `--shell-trap`: the binary found on the agents' PATH.
pub const DEFAULT_SHELL_TRAP: &str = "shell-trap";

/// Marathon: how a task's command, shell-trap, runs the job on the agents and saves its work
/// when a resize restarts it. Declared once for the rewrite and the command line: the fields'
/// docs are the `--help` text of the flags.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct ShellTrap {
    /// Marathon: shell-trap's checkpoint directory on the agents.
    #[arg(long, env = "QOS_LAUNCHER_CHECKPOINT_DIR", default_value = DEFAULT_CHECKPOINT_DIR, value_name = "DIR")]
    pub checkpoint_dir: String,
    /// Marathon: the shell-trap binary on the agents (a name on their PATH, or a path).
    #[arg(
        long = "shell-trap",
        env = "QOS_SHELL_TRAP",
        default_value = DEFAULT_SHELL_TRAP,
        value_name = "PATH"
    )]
    pub binary: String,
    /// Marathon: how shell-trap saves the job's work when a resize restarts its task (its
    /// --strategy) [default: the app's label "qos.checkpoint", else shell-trap's auto].
    #[arg(long, env = "QOS_STRATEGY", value_enum, value_name = "STRATEGY")]
    pub strategy: Option<Strategy>,
    /// Marathon: taskKillGracePeriodSeconds, from Marathon's SIGTERM to its SIGKILL; shell-trap
    /// gets it minus min(5 s, a fifth) to checkpoint [default: the app's own, else 30].
    #[arg(long, env = "QOS_GRACE_PERIOD", value_name = "SECS")]
    pub grace_period: Option<u32>,
}

impl Default for ShellTrap {
    fn default() -> Self {
        Self {
            checkpoint_dir: DEFAULT_CHECKPOINT_DIR.to_owned(),
            binary: DEFAULT_SHELL_TRAP.to_owned(),
            strategy: None,
            grace_period: None,
        }
    }
}

/// Everything the rewrite needs besides the job file.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Where containers and shell-trap report.
    pub supervisor: SupervisorUrl,
    /// Marathon: shell-trap's binary, checkpoint directory and strategy, and the grace period it
    /// gets (`None` fields keep the app's own choice, see [`ShellTrap`]).
    pub shell_trap: ShellTrap,
    /// Chronos: how iteration reports are retried.
    pub report: ReportPolicy,
    /// Chronos: how runs are paced; [`Pace::BackToBack`] by default.
    pub pace: Pace,
}

impl Settings {
    /// Defaults for everything but the supervisor URL.
    #[must_use]
    pub fn new(supervisor: SupervisorUrl) -> Self {
        Self {
            supervisor,
            shell_trap: ShellTrap::default(),
            report: ReportPolicy::default(),
            pace: Pace::default(),
        }
    }

    /// Checks the values that end up in commands.
    ///
    /// # Errors
    /// [`LauncherError`] (input) naming the flag.
    pub fn check(&self) -> Result<(), LauncherError> {
        let ShellTrap {
            checkpoint_dir,
            binary,
            ..
        } = &self.shell_trap;
        if !checkpoint_dir.starts_with('/') || checkpoint_dir.contains(['\n', '\0']) {
            return Err(LauncherError::input(format!(
                "--checkpoint-dir {checkpoint_dir:?} must be an absolute path on the agents (one line)"
            )));
        }
        if binary.trim().is_empty() || binary.contains(['\n', '\0']) {
            return Err(LauncherError::input(format!(
                "--shell-trap {binary:?} must name the shell-trap binary on the agents"
            )));
        }
        if self.report.attempts == 0 {
            return Err(LauncherError::input("--report-attempts must be at least 1"));
        }
        Ok(())
    }
}

/// A validated job, ready to register and then to render.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    /// The UUID the supervisor knows the job by (the `QOS_UUID` of its tasks).
    pub uuid: JobUuid,
    /// What to register with the supervisor (`POST /api/v1/jobs`); it holds the job's
    /// [`framework`](Self::framework) and [`name`](Self::name) too.
    pub registration: JobRegistration,
    /// Things the user should know (fields the launcher overrode, defaults it assumed).
    pub warnings: Vec<String>,
    /// Deliberate changes worth a line but no warning (a Chronos period replaced by `--pace`).
    pub notes: Vec<String>,
    plan: Plan,
    settings: Settings,
}

#[derive(Debug, Clone, PartialEq)]
enum Plan {
    Chronos(chronos::Plan),
    Marathon(marathon::Plan),
}

impl Prepared {
    /// The framework it goes to.
    #[must_use]
    pub fn framework(&self) -> Framework {
        self.registration.framework
    }

    /// Chronos job name, or canonical Marathon app id (`/a/b`).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.registration.name
    }

    /// The exact body to send to the framework, with `report_token` (from the registration
    /// answer; `None` or empty when the supervisor runs without auth) embedded.
    ///
    /// # Errors
    /// [`LauncherError`] (internal) when the token has characters a token never has.
    pub fn request(&self, report_token: Option<&str>) -> Result<Value, LauncherError> {
        let token = match report_token.map(str::trim).filter(|t| !t.is_empty()) {
            None => None,
            Some(t) => {
                shell::check_charset(t, "._~+/=-").map_err(|why| {
                    LauncherError::internal(format!(
                        "the supervisor issued a report token that cannot be used safely: it {why}"
                    ))
                })?;
                Some(t)
            }
        };
        Ok(match &self.plan {
            Plan::Chronos(p) => p.render(&self.uuid, &self.settings, token),
            Plan::Marathon(p) => p.render(&self.uuid, &self.settings, token),
        })
    }
}

/// Guesses the framework from the job's fields: `schedule`/`command`/`parents` → Chronos;
/// `id`/`cmd`/`args`/`instances` → Marathon.
#[must_use]
pub fn detect_framework(job: &Value) -> Option<Framework> {
    let obj = job.as_object()?;
    let has = |k: &str| obj.contains_key(k);
    let chronos = has("schedule") || has("command") || has("parents");
    let marathon = has("id") || has("cmd") || has("args") || has("instances");
    match (chronos, marathon) {
        (true, false) => Some(Framework::Chronos),
        (false, true) => Some(Framework::Marathon),
        _ => None,
    }
}

/// The prefix of warnings about how the job will be controlled (resizes that restart it from
/// scratch, a deadline out of reach), from the supervisor's answer or, before it, from the
/// default controller.
pub const CONTROL_WARNING: &str = "control: ";

/// Where a job was read (the job file), for error messages: every refusal names it and the field.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Origin<'a>(&'a str);

impl Origin<'_> {
    /// Bad input in one field of the job: `"<origin>: field <field>: <reason>"`.
    pub(crate) fn field(self, field: &str, reason: impl fmt::Display) -> LauncherError {
        LauncherError::field(self.0, field, reason)
    }

    /// A `qos-core` validation error, as bad input in the field it names.
    pub(crate) fn spec_error(self, e: &qos_core::SpecError) -> LauncherError {
        self.field(&e.field, &e.reason)
    }
}

impl fmt::Display for Origin<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// What every framework's rewrite starts from besides the job's body: where the job was read,
/// its QoS target, the UUID it gets, when it is submitted, and the rewrite settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Submission<'a> {
    /// The job file, for error messages.
    pub(crate) origin: Origin<'a>,
    /// The job's `qos` block.
    pub(crate) qos: &'a QosSpec,
    /// The UUID the supervisor will know the job by.
    pub(crate) uuid: &'a JobUuid,
    /// Submission time, epoch seconds.
    pub(crate) submitted_at: f64,
    /// Supervisor URL, shell-trap, pace, report retries….
    pub(crate) settings: &'a Settings,
}

/// Validates `job` (read from `origin`) for `framework` and prepares its rewrite.
///
/// # Errors
/// [`LauncherError`] (input) naming `origin`, the field and the reason.
pub fn prepare(
    framework: Framework,
    job: &Value,
    origin: &str,
    settings: &Settings,
    uuid: JobUuid,
    submitted_at: f64,
) -> Result<Prepared, LauncherError> {
    settings.check()?;
    let origin = Origin(origin);
    let Some(obj) = job.as_object() else {
        return Err(LauncherError::input(format!(
            "{origin}: the job file must hold one JSON object (a {} job with a \"qos\" block), not {}",
            framework_title(framework),
            kind_of(job)
        )));
    };
    let mut body = obj.clone();
    let qos = take_qos(&mut body, origin)?;
    let mut remarks = chronos::Remarks::default();
    let submission = Submission {
        origin,
        qos: &qos,
        uuid: &uuid,
        submitted_at,
        settings,
    };
    let (name, iterations, cpus, plan) = match framework {
        Framework::Chronos => {
            let p = chronos::prepare(body, submission, &mut remarks)?;
            (p.name.clone(), Some(p.iterations), p.cpus, Plan::Chronos(p))
        }
        Framework::Marathon => {
            let p = marathon::prepare(body, submission, &mut remarks)?;
            (p.id.clone(), None, p.cpus, Plan::Marathon(p))
        }
    };
    if name.len() > qos_core::wire::MAX_NAME_BYTES {
        let field = match framework {
            Framework::Chronos => "name",
            Framework::Marathon => "id",
        };
        return Err(origin.field(
            field,
            format!(
                "is {} bytes long; the supervisor registers names of at most {} bytes",
                name.len(),
                qos_core::wire::MAX_NAME_BYTES
            ),
        ));
    }
    let checkpoint = match &plan {
        Plan::Marathon(p) => Some(p.strategy().flag_value()),
        Plan::Chronos(_) => None,
    };
    let registration = JobRegistration {
        uuid: uuid.as_str().to_owned(),
        name,
        framework,
        qos,
        iterations,
        cpus,
        submitted_at: Some(submitted_at),
        checkpoint,
    };
    // What the default controller (predictive, resizes by restart) will make of the job; a real
    // submission replaces these with the supervisor's own, which knows its configuration.
    let job = registration.job(submitted_at);
    let control = Controller::new(Policy::default(), ResizeMode::Restart);
    for w in control.warnings(&job, submitted_at) {
        remarks.warnings.push(format!("{CONTROL_WARNING}{w}"));
    }
    Ok(Prepared {
        uuid,
        registration,
        warnings: remarks.warnings,
        notes: remarks.notes,
        plan,
        settings: settings.clone(),
    })
}

/// The framework's name as a person writes it.
pub(crate) fn framework_title(f: Framework) -> &'static str {
    match f {
        Framework::Chronos => "Chronos",
        Framework::Marathon => "Marathon",
    }
}

/// Removes and validates the `qos` block.
fn take_qos(body: &mut Map<String, Value>, origin: Origin<'_>) -> Result<QosSpec, LauncherError> {
    let Some(raw) = body.shift_remove("qos") else {
        return Err(origin.field(
            "qos",
            "is missing; add the job's QoS target, e.g. \
             \"qos\": {\"duration\": 400, \"deadline\": 1800, \"desv_deadline\": 0.2} \
             (duration: seconds of work at 1 CPU; deadline: seconds after submission or an \
             RFC 3339 time; desv_deadline: tolerated deviation, a fraction in [0, 1))",
        ));
    };
    QosSpec::from_json(&raw).map_err(|e| origin.spec_error(&e))
}

/// A string field's text; refused, naming the field, with `missing` when it is absent and with
/// its type when it is not a string.
pub(crate) fn string_field(
    body: &Map<String, Value>,
    origin: Origin<'_>,
    key: &str,
    missing: &str,
) -> Result<String, LauncherError> {
    match body.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        None => Err(origin.field(key, missing)),
        Some(other) => Err(origin.field(key, format!("must be a string, got {}", kind_of(other)))),
    }
}

/// A string field that the framework's own `check` accepts: what `check` makes of its text; the
/// field refused as [`string_field`] refuses it, or with `"{text:?} {reason}{rule}"` when `check`
/// does (`rule` names the rule for the user, or is empty).
pub(crate) fn checked_field<T>(
    body: &Map<String, Value>,
    origin: Origin<'_>,
    key: &str,
    missing: &str,
    check: impl FnOnce(&str) -> Result<T, frameworks::FrameworkError>,
    rule: &str,
) -> Result<T, LauncherError> {
    let text = string_field(body, origin, key, missing)?;
    check(&text).map_err(|e| {
        let reason = invalid_reason(&e);
        origin.field(key, format!("{text:?} {reason}{rule}"))
    })
}

/// What a framework's own check said was wrong with a value (its reason alone for invalid
/// input, the whole error otherwise).
fn invalid_reason(e: &frameworks::FrameworkError) -> String {
    match e {
        frameworks::FrameworkError::InvalidInput { reason, .. } => reason.clone(),
        other => other.to_string(),
    }
}

/// A short description of a JSON value's type (`a string`, `an object`, …).
pub(crate) use frameworks::lenient::kind_of;

/// A number the way a person writes it: `400` rather than `400.0`, `0.2` as is.
#[must_use]
pub fn fmt_num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else {
        format!("{x}")
    }
}

/// Reads `cpus` from a job: a positive number or numeric string; `None` when absent.
pub(crate) fn read_cpus(
    body: &Map<String, Value>,
    origin: Origin<'_>,
) -> Result<Option<f64>, LauncherError> {
    match body.get("cpus") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match frameworks::lenient::as_f64(v) {
            Some(c) if c > 0.0 => Ok(Some(c)),
            _ => Err(origin.field(
                "cpus",
                format!("must be a positive number (or numeric string such as \"1\"), got {v}"),
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids() {
        let u = JobUuid::generate();
        assert_eq!(u.as_str().len(), 32);
        assert_eq!(&u.as_str()[12..13], "4");
        assert!(matches!(&u.as_str()[16..17], "8" | "9" | "a" | "b"));
        assert_ne!(u, JobUuid::generate());
        let d = JobUuid::parse("0123456789AB4DEF8123456789ABCDEF").unwrap();
        assert_eq!(d.as_str(), "0123456789ab4def8123456789abcdef");
        let dashed = JobUuid::parse("01234567-89ab-4def-8123-456789abcdef").unwrap();
        assert_eq!(dashed, d);
        for bad in [
            "",
            "xyz",
            "0123456789ab4def8123456789abcde",
            "0123456789ab4def8123456789abcdeg",
            "01234567-89ab-4def-8123-456789abcde;",
        ] {
            assert!(JobUuid::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn supervisor_urls() {
        let u = SupervisorUrl::parse("http://10.0.0.2:30000/").unwrap();
        assert_eq!(u.as_str(), "http://10.0.0.2:30000");
        assert_eq!(u.endpoint("updateTask"), "http://10.0.0.2:30000/updateTask");
        assert_eq!(
            SupervisorUrl::parse("https://sup.example/qos")
                .unwrap()
                .as_str(),
            "https://sup.example/qos"
        );
        for bad in [
            "10.0.0.2:30000",
            "ftp://h",
            "http://u:p@h:1",
            "http://h/?x=1",
            "http://h/a'b",
            "http://h/$(id)",
            "",
        ] {
            let e = SupervisorUrl::parse(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad}: {e}");
        }
    }

    #[test]
    fn detection() {
        use serde_json::json;
        assert_eq!(
            detect_framework(&json!({"schedule": "R1//PT1M", "name": "a"})),
            Some(Framework::Chronos)
        );
        assert_eq!(
            detect_framework(&json!({"id": "/a", "cmd": "x"})),
            Some(Framework::Marathon)
        );
        assert_eq!(detect_framework(&json!({"name": "a"})), None);
    }

    #[test]
    fn numbers() {
        assert_eq!(fmt_num(400.0), "400");
        assert_eq!(fmt_num(0.2), "0.2");
        assert_eq!(fmt_num(1800.5), "1800.5");
    }
}
