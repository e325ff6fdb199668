//! Orchestration: validate, register with the supervisor **first**, then submit to the framework;
//! if the submission fails, deregister (and, when the failure leaves it unclear whether the
//! framework took the job, delete the job there too) — nothing is left half-created.
//!
//! The thesis did the reverse (submit, then `/initTask`, answer ignored) and raced: an early
//! iteration report was dropped, and a job whose registration failed ran uncontrolled forever
//! (thesis-code.md §8 items 5, 29, 33).

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use frameworks::{
    ChronosApiVersion, ChronosClient, ChronosJob, ClientConfig, Credentials, FrameworkError,
    MarathonApp, MarathonClient, SupervisorClient,
};
use qos_core::Framework;
use serde_json::Value;

use crate::error::{Kind, LauncherError, classify};
use crate::input::read_json_file;
use crate::rewrite::{self, DRY_RUN_REPORT_TOKEN, JobUuid, Pace, Settings, SupervisorUrl};

/// Which Chronos API generation to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ChronosApi {
    /// Probe `GET /v1/scheduler/jobs` (3.x), then `GET /scheduler/jobs` (2.x).
    Auto,
    /// Chronos 2.x (`/scheduler/*`, the thesis' version).
    V2,
    /// Chronos 3.x (`/v1/scheduler/*`).
    V3,
}

impl ChronosApi {
    /// The generation asked for; `None` for [`ChronosApi::Auto`] (probe the server).
    fn version(self) -> Option<ChronosApiVersion> {
        match self {
            Self::Auto => None,
            Self::V2 => Some(ChronosApiVersion::V2),
            Self::V3 => Some(ChronosApiVersion::V3),
        }
    }
}

/// What to submit, and how.
#[derive(Debug, Clone)]
pub struct SubmitRequest {
    /// The job file.
    pub job_file: PathBuf,
    /// The framework; `None` = guess from the job's fields.
    pub framework: Option<Framework>,
    /// The framework's credential file (`{"url", "user", "password"}`); not needed for a dry run.
    pub creds: Option<PathBuf>,
    /// Rewrite settings (supervisor URL, shell-trap, report retries…).
    pub settings: Settings,
    /// Bearer token for the supervisor's API.
    pub admin_token: Option<String>,
    /// A fixed UUID (default: a fresh random one).
    pub uuid: Option<JobUuid>,
    /// Validate and print, contact nothing.
    pub dry_run: bool,
    /// Chronos API generation.
    pub chronos_api: ChronosApi,
    /// HTTP timeouts and retries.
    pub client: ClientConfig,
}

/// A job the framework accepted: the validated job, the exact body sent, and whether it was only
/// a dry run.
#[derive(Debug, Clone, PartialEq)]
pub struct Submitted {
    /// The validated job: framework, UUID, name, registration, warnings and notes. After a real
    /// submission its control warnings are the supervisor's (see [`rewrite::CONTROL_WARNING`]).
    pub prepared: rewrite::Prepared,
    /// The exact body sent (or, for a dry run, that would be sent; the report token is then
    /// [`DRY_RUN_REPORT_TOKEN`]).
    pub request: Value,
    /// True when nothing was contacted.
    pub dry_run: bool,
}

impl Submitted {
    /// The `--dry-run` / `validate` object: `{"framework", "request", "registration",
    /// "warnings", "notes"}` (the warnings and notes are also printed on stderr).
    #[must_use]
    pub fn dry_run_json(&self) -> Value {
        let p = &self.prepared;
        serde_json::json!({
            "framework": p.framework(),
            "request": self.request,
            "registration": p.registration,
            "warnings": p.warnings,
            "notes": p.notes,
        })
    }
}

/// Seconds since the Unix epoch.
#[must_use]
pub fn now_epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Reads and rewrites the job; for a dry run, stops there.
///
/// # Errors
/// [`LauncherError`] (input) for anything wrong with the file.
pub fn prepare(req: &SubmitRequest) -> Result<rewrite::Prepared, LauncherError> {
    let job = read_json_file(&req.job_file, "job file")?;
    let origin = req.job_file.display().to_string();
    let framework = match req.framework {
        Some(f) => f,
        None => rewrite::detect_framework(&job).ok_or_else(|| {
            LauncherError::input(format!(
                "{origin}: cannot tell whether this is a Chronos job or a Marathon app; \
                 say which with --framework chronos|marathon (or -c/-m in the thesis form)"
            ))
        })?,
    };
    let uuid = req.uuid.clone().unwrap_or_else(JobUuid::generate);
    rewrite::prepare(framework, &job, &origin, &req.settings, uuid, now_epoch())
}

/// The supervisor client for `url` with the admin token.
///
/// # Errors
/// [`LauncherError`] (input) for a client that cannot be built.
pub fn supervisor_client(
    url: &SupervisorUrl,
    admin_token: Option<&str>,
    config: &ClientConfig,
) -> Result<SupervisorClient, LauncherError> {
    let mut creds = Credentials::new(url.as_str())
        .map_err(|e| LauncherError::input(format!("supervisor URL: {e}")))?;
    if let Some(t) = admin_token.map(str::trim).filter(|t| !t.is_empty()) {
        creds = creds.with_bearer_token(t);
    }
    SupervisorClient::with_config(&creds, config.clone())
        .map_err(|e| LauncherError::internal(format!("cannot build the HTTP client: {e}")))
}

/// Loads a framework credential file.
///
/// # Errors
/// [`LauncherError`] (input) naming the file and field.
pub fn load_credentials(path: &Path) -> Result<Credentials, LauncherError> {
    Credentials::load(path).map_err(|e| LauncherError::input(e.to_string()))
}

/// A framework client.
#[derive(Debug, Clone)]
pub enum FrameworkClient {
    /// A Marathon at the credentials' URL.
    Marathon(MarathonClient),
    /// A Chronos at the credentials' URL, of the API generation asked or detected.
    Chronos(ChronosClient),
}

impl FrameworkClient {
    /// Builds the client; for Chronos with [`ChronosApi::Auto`] this probes the server.
    ///
    /// # Errors
    /// [`LauncherError`] classified from the probe's failure.
    pub async fn connect(
        framework: Framework,
        creds: &Credentials,
        api: ChronosApi,
        config: &ClientConfig,
    ) -> Result<Self, LauncherError> {
        let build = |e: FrameworkError| {
            LauncherError::internal(format!("cannot build the HTTP client: {e}"))
        };
        Ok(match framework {
            Framework::Marathon => {
                Self::Marathon(MarathonClient::with_config(creds, config.clone()).map_err(build)?)
            }
            Framework::Chronos => Self::Chronos(match api.version() {
                Some(version) => {
                    ChronosClient::with_config(creds, version, config.clone()).map_err(build)?
                }
                None => ChronosClient::detect(creds, config.clone())
                    .await
                    .map_err(|e| {
                        LauncherError::from_framework(
                            "Chronos",
                            &format!("contacting Chronos at {}", creds.url()),
                            &e,
                        )
                    })?,
            }),
        })
    }

    fn title(&self) -> &'static str {
        match self {
            Self::Marathon(_) => "Marathon",
            Self::Chronos(_) => "Chronos",
        }
    }

    /// Submits the rewritten body.
    async fn submit(&self, body: &Value) -> Result<(), FrameworkError> {
        match self {
            Self::Marathon(m) => m
                .create_app(&MarathonApp::try_from(body.clone())?)
                .await
                .map(drop),
            Self::Chronos(c) => c.put_job(&ChronosJob::try_from(body.clone())?).await,
        }
    }

    /// Whether a job of this name exists (Chronos exact name, Marathon app id).
    async fn exists(&self, name: &str) -> Result<bool, FrameworkError> {
        match self {
            Self::Marathon(m) => match m.get_app(name).await {
                Ok(_) => Ok(true),
                Err(e) if e.is_not_found() => Ok(false),
                Err(e) => Err(e),
            },
            Self::Chronos(c) => Ok(c.find_job(name).await?.is_some()),
        }
    }

    /// Stops a cancelled job's work and removes it: Chronos — its running task killed
    /// (`DELETE …/task/kill/{name}`: Chronos 2.x leaves it running when the job is deleted), then
    /// the job deleted; Marathon — the app deleted with `force` (its tasks killed with their
    /// grace), then, for at most `wait`, until no deployment still stops it. A job or app already
    /// gone is not an error. Returns what was done, in words.
    ///
    /// # Errors
    /// The client's error.
    pub async fn stop_and_delete(
        &self,
        name: &str,
        wait: std::time::Duration,
    ) -> Result<String, FrameworkError> {
        let gone = |r: Result<(), FrameworkError>| match r {
            Ok(()) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        };
        match self {
            Self::Chronos(c) => {
                let killed = gone(c.kill_job_tasks(name).await)?;
                let deleted = gone(c.delete_job(name).await)?;
                Ok(match (killed, deleted) {
                    (_, true) => "its running task killed and the job deleted from Chronos".into(),
                    (true, false) => "its running task killed; the job was already deleted".into(),
                    (false, false) => "the job was already gone from Chronos".into(),
                })
            }
            Self::Marathon(m) => {
                let deleted = gone(m.delete_app(name, true).await.map(drop))?;
                let id = frameworks::AppId::parse(name)?;
                let until = tokio::time::Instant::now() + wait;
                let stopped = loop {
                    let busy = m.deployments().await?.iter().any(|d| d.affects(&id));
                    if !busy {
                        break true;
                    }
                    if tokio::time::Instant::now() >= until {
                        break false;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                };
                Ok(match (deleted, stopped) {
                    (true, true) => "the app deleted from Marathon and its tasks stopped".into(),
                    (false, true) => "the app was already gone from Marathon".into(),
                    (_, false) => format!(
                        "the app deleted from Marathon; its tasks were still stopping after {} s",
                        wait.as_secs_f64()
                    ),
                })
            }
        }
    }

    /// Deletes the job (Marathon with `force`, cancelling any deployment).
    ///
    /// # Errors
    /// The client's error; a job that does not exist is not an error.
    pub async fn delete(&self, name: &str) -> Result<(), FrameworkError> {
        let r = match self {
            Self::Marathon(m) => m.delete_app(name, true).await.map(drop),
            Self::Chronos(c) => c.delete_job(name).await,
        };
        match r {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }
}

/// Validates, registers, submits; rolls back on failure.
///
/// # Errors
/// [`LauncherError`]: input (2) for bad files or a job the framework refuses, unreachable (3) when
/// the supervisor or framework cannot be reached, internal (1) otherwise. When the error comes
/// after the registration, its message says what the rollback did.
pub async fn submit(req: &SubmitRequest) -> Result<Submitted, LauncherError> {
    let mut prepared = prepare(req)?;
    if req.dry_run {
        if req.chronos_api == ChronosApi::V2 {
            check_pace(
                &prepared,
                req.settings.pace,
                "--chronos-api v2 selects Chronos 2.x",
            )?;
        }
        let request = prepared.request(Some(DRY_RUN_REPORT_TOKEN))?;
        return Ok(Submitted {
            prepared,
            request,
            dry_run: true,
        });
    }
    let fw_title = rewrite::framework_title(prepared.framework());
    let (framework, creds) = connect_framework(req, &prepared, fw_title).await?;

    // 1. Register first.
    let supervisor = supervisor_client(
        &req.settings.supervisor,
        req.admin_token.as_deref(),
        &req.client,
    )?;
    let registered = supervisor
        .register_job(&prepared.registration)
        .await
        .map_err(|e| {
            LauncherError::from_framework(
                "the supervisor",
                &format!(
                    "registering the job with the supervisor at {}",
                    req.settings.supervisor
                ),
                &e,
            )
            .with_note(format!("nothing was submitted to {fw_title}"))
        })?;
    if registered.uuid != prepared.uuid.as_str() {
        let e = LauncherError::internal(format!(
            "the supervisor registered UUID {:?} instead of {}",
            registered.uuid, prepared.uuid
        ));
        return Err(rollback(&supervisor, None, &prepared, e).await);
    }

    // 2. Then submit.
    let request = match prepared.request(Some(&registered.report_token)) {
        Ok(r) => r,
        Err(e) => return Err(rollback(&supervisor, None, &prepared, e).await),
    };
    if let Err(e) = framework.submit(&request).await {
        let ambiguous = matches!(
            e,
            FrameworkError::Timeout { .. }
                | FrameworkError::Server { .. }
                | FrameworkError::Decode { .. }
        ) || classify(&e) == Kind::Internal;
        let err = LauncherError::from_framework(
            fw_title,
            &format!(
                "submitting {:?} to {fw_title} at {}",
                prepared.name(),
                creds.url()
            ),
            &e,
        );
        let fw = ambiguous.then_some(&framework);
        return Err(rollback(&supervisor, fw, &prepared, err).await);
    }
    // The supervisor knows its policy and resize mode: its warnings replace the launcher's
    // guesses at them.
    prepared
        .warnings
        .retain(|w| !w.starts_with(rewrite::CONTROL_WARNING));
    prepared.warnings.extend(
        registered
            .warnings
            .iter()
            .map(|w| format!("{}{w}", rewrite::CONTROL_WARNING)),
    );
    Ok(Submitted {
        prepared,
        request,
        dry_run: false,
    })
}

/// The framework's client, from the credential file, checked before anything is registered:
/// back-to-back pacing needs Chronos 3.x, and Chronos upserts by name, so a job of that name
/// must not exist (it would be replaced).
async fn connect_framework(
    req: &SubmitRequest,
    prepared: &rewrite::Prepared,
    fw_title: &str,
) -> Result<(FrameworkClient, Credentials), LauncherError> {
    let creds_path = req.creds.as_deref().ok_or_else(|| {
        LauncherError::input(format!(
            "no {fw_title} credential file: give --creds FILE (thesis form: -{} FILE), a JSON \
             object {{\"url\": \"http://host:port\", \"user\": \"\", \"password\": \"\"}}",
            if prepared.framework() == Framework::Chronos {
                'c'
            } else {
                'm'
            }
        ))
    })?;
    let creds = load_credentials(creds_path)?;
    let framework =
        FrameworkClient::connect(prepared.framework(), &creds, req.chronos_api, &req.client)
            .await?;
    if let FrameworkClient::Chronos(c) = &framework {
        if c.api_version() == ChronosApiVersion::V2 {
            check_pace(
                prepared,
                req.settings.pace,
                &format!("Chronos at {} speaks the 2.x API", creds.url()),
            )?;
        }
    }

    // Chronos upserts by name: never replace somebody else's job.
    if let FrameworkClient::Chronos(_) = &framework {
        match framework.exists(prepared.name()).await {
            Ok(false) => {}
            Ok(true) => {
                return Err(LauncherError::input(format!(
                    "a Chronos job named {:?} already exists at {}; submitting would replace it. \
                     Choose another \"name\" or delete that job first",
                    prepared.name(),
                    creds.url()
                )));
            }
            Err(e) => {
                return Err(LauncherError::from_framework(
                    "Chronos",
                    &format!("looking up Chronos job {:?}", prepared.name()),
                    &e,
                ));
            }
        }
    }
    Ok((framework, creds))
}

/// Refuses [`Pace::BackToBack`] for a Chronos that speaks the 2.x API (`why` says how we know).
/// Chronos 2.x queues every run due within its 60 s horizon at once, taking each off the count,
/// and discards a queued run whose job is still running; with a 1 s period, only the first of the
/// runs would happen (see [`crate::rewrite::chronos`]).
fn check_pace(prepared: &rewrite::Prepared, pace: Pace, why: &str) -> Result<(), LauncherError> {
    if prepared.framework() != Framework::Chronos || pace != Pace::BackToBack {
        return Ok(());
    }
    let runs = prepared.registration.iterations.unwrap_or(0);
    Err(LauncherError::input(format!(
        "{why}, which cannot run iterations back to back (--pace back-to-back, the default): \
         Chronos 2.x discards a run that falls due while the job's previous run is still going, \
         so only the first of the {runs} runs of {:?} would happen. Give --pace schedule (or \
         QOS_PACE=schedule) with a period longer than one run, or use Chronos 3.x; nothing was \
         registered or submitted",
        prepared.name()
    )))
}

/// Undoes the registration of `prepared` (and, when `framework` is given, deletes the job there
/// if it exists), and says so in the returned error.
async fn rollback(
    supervisor: &SupervisorClient,
    framework: Option<&FrameworkClient>,
    prepared: &rewrite::Prepared,
    err: LauncherError,
) -> LauncherError {
    let (uuid, name) = (&prepared.uuid, prepared.name());
    let mut notes = Vec::new();
    if let Some(fw) = framework {
        match fw.exists(name).await {
            Ok(false) => {}
            Ok(true) => match fw.delete(name).await {
                Ok(()) => notes.push(format!("deleted {name:?} from {}", fw.title())),
                Err(e) => notes.push(format!(
                    "{name:?} may exist in {} and could not be deleted ({e}); delete it by hand",
                    fw.title()
                )),
            },
            Err(e) => notes.push(format!(
                "could not check whether {} took {name:?} ({e}); check and delete it by hand",
                fw.title()
            )),
        }
    }
    match supervisor.cancel_job(uuid.as_str()).await {
        Ok(()) => notes.push(format!("the registration of {uuid} was rolled back")),
        Err(e) if e.is_not_found() => notes.push(format!("{uuid} is not registered")),
        Err(e) => notes.push(format!(
            "rolling back the registration of {uuid} failed too ({e}); run `launcher cancel {uuid}` \
             once the supervisor answers"
        )),
    }
    if notes.len() == 1 && notes[0].ends_with("rolled back") {
        notes[0].push_str(": nothing is left");
    }
    err.with_note(notes.join("; "))
}
