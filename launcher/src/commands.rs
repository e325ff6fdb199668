//! [`run`]: the command line parsed, then done (exit status from the typed error). What each
//! command does once its arguments are parsed: `submit` and `validate` (and the thesis'
//! form), `list`, `status`, `watch` and `cancel`, written to the given streams as text or JSON.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use frameworks::{ClientConfig, SupervisorClient};
use qos_core::Framework;
use serde_json::{Value, json};

use crate::cli::{Cli, Command, GlobalArgs, JobArgs, Output, RewriteArgs};
use crate::error::{EXIT_INTERNAL, EXIT_OK, LauncherError};
use crate::rewrite::{JobUuid, ReportPolicy, Settings, SupervisorUrl};
use crate::submit::{
    self, ChronosApi, FrameworkClient, SubmitRequest, Submitted, load_credentials, now_epoch,
    supervisor_client,
};
use crate::view::{self, JobView};
use crate::watch;

fn client_config(global: &GlobalArgs) -> ClientConfig {
    let timeout = Duration::from_secs(global.timeout.max(1));
    ClientConfig {
        timeout,
        connect_timeout: timeout.min(Duration::from_secs(5)),
        ..ClientConfig::default()
    }
}

fn settings(global: &GlobalArgs, r: &RewriteArgs) -> Result<Settings, LauncherError> {
    let mut s = Settings::new(SupervisorUrl::parse(&global.supervisor)?);
    s.shell_trap.clone_from(&r.shell_trap);
    s.report = ReportPolicy {
        attempts: r.report_attempts,
        ..ReportPolicy::default()
    };
    s.pace = r.pace;
    s.check()?;
    Ok(s)
}

fn submit_request(
    global: &GlobalArgs,
    r: &RewriteArgs,
    job: JobArgs,
    creds: Option<PathBuf>,
    dry_run: bool,
) -> Result<SubmitRequest, LauncherError> {
    Ok(SubmitRequest {
        job_file: job.file,
        framework: job.framework,
        creds,
        settings: settings(global, r)?,
        admin_token: global.admin_token.clone(),
        uuid: r.uuid.as_deref().map(JobUuid::parse).transpose()?,
        dry_run,
        chronos_api: r.chronos_api,
        client: client_config(global),
    })
}

fn write_out(out: &mut dyn Write, text: &str) -> Result<(), LauncherError> {
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| LauncherError::internal(format!("cannot write to stdout: {e}")))
}

fn json_line(v: &Value) -> String {
    format!(
        "{}\n",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    )
}

/// The binary's entry point: real arguments, stdout and stderr.
#[must_use]
pub fn main_entry() -> std::process::ExitCode {
    let code = run(
        std::env::args_os(),
        &mut std::io::stdout().lock(),
        &mut std::io::stderr(),
    );
    std::process::ExitCode::from(code)
}

/// Parses `args`, runs the command, writes to `out`/`err`; returns the exit status.
pub fn run<I, T>(args: I, out: &mut dyn Write, err: &mut dyn Write) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    binkit::cli::run(args, out, err, |cli: Cli, out, err| {
        let output = cli.global.output;
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(r) => r,
            Err(e) => {
                let _ = writeln!(err, "error: cannot start the async runtime: {e}");
                return EXIT_INTERNAL;
            }
        };
        match runtime.block_on(dispatch(cli, out, err)) {
            Ok(()) => EXIT_OK,
            Err(e) => {
                if output == Output::Json {
                    let body = json!({"error": {
                        "kind": e.kind.as_str(), "message": e.message, "field": e.field,
                        "exit_code": e.exit_code()
                    }});
                    let _ = writeln!(out, "{body}");
                }
                let _ = writeln!(err, "error: {}", e.message);
                e.exit_code()
            }
        }
    })
}

pub(crate) async fn dispatch(
    cli: Cli,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), LauncherError> {
    let global = cli.global.clone();
    match cli.command {
        None => thesis_form(cli, out, err).await,
        Some(Command::Submit(a)) => {
            let req = submit_request(&global, &a.rewrite, a.job, a.creds, a.dry_run)?;
            do_submit(&req, global.output, out, err).await
        }
        Some(Command::Validate(a)) => {
            let req = submit_request(&global, &a.rewrite, a.job, None, true)?;
            do_submit(&req, global.output, out, err).await
        }
        Some(Command::List) => {
            let client = supervisor(&global)?;
            let list = client.jobs().await.map_err(|e| {
                LauncherError::from_framework("the supervisor", "listing the supervisor's jobs", &e)
            })?;
            match global.output {
                Output::Json => write_out(out, &json_line(&list)),
                Output::Human => {
                    write_out(out, &view::render_list(&view::job_list(&list), now_epoch()))
                }
            }
        }
        Some(Command::Status { job }) => {
            let client = supervisor(&global)?;
            let uuid = view::resolve(&client, &job).await?;
            let v = get_job(&client, &uuid).await?;
            match global.output {
                Output::Json => write_out(out, &json_line(&v)),
                Output::Human => write_out(out, &view::render_status(&v, now_epoch())),
            }
        }
        Some(Command::Watch { jobs, interval }) => watch_jobs(&global, &jobs, interval, out).await,
        Some(Command::Cancel {
            job,
            creds,
            chronos_api,
            keep_checkpoints,
            wait,
        }) => {
            let cancel = Cancel {
                job,
                creds,
                chronos_api,
                keep_checkpoints,
                wait,
            };
            cancel_job(&global, cancel, out).await
        }
    }
}

/// The thesis' form, `launcher -j JOB -c|-m CREDENTIALS -i SUPERVISOR`: a submit.
async fn thesis_form(
    cli: Cli,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), LauncherError> {
    let global = cli.global.clone();
    let (framework, creds) = match (cli.credentials_chronos, cli.credentials_marathon) {
        (Some(c), None) => (Some(Framework::Chronos), Some(c)),
        (None, Some(m)) => (Some(Framework::Marathon), Some(m)),
        (None, None) if cli.dry_run => (None, None),
        _ => {
            return Err(LauncherError::input(
                "the thesis form needs -j JOB_FILE, one of -c CHRONOS_CREDENTIALS or \
                 -m MARATHON_CREDENTIALS, and -i SUPERVISOR_URL (see --help)",
            ));
        }
    };
    let Some(file) = cli.job_file else {
        return Err(LauncherError::input(
            "the thesis form needs -j JOB_FILE (see --help for it and the subcommands)",
        ));
    };
    let job = JobArgs { file, framework };
    let req = submit_request(&global, &cli.rewrite, job, creds, cli.dry_run)?;
    do_submit(&req, global.output, out, err).await
}

/// `watch`: live progress until the jobs end, then one line each.
async fn watch_jobs(
    global: &GlobalArgs,
    jobs: &[String],
    interval: f64,
    out: &mut dyn Write,
) -> Result<(), LauncherError> {
    let client = supervisor(global)?;
    let mut uuids = Vec::with_capacity(jobs.len());
    for j in jobs {
        uuids.push(view::resolve(&client, j).await?);
    }
    let interval = Duration::from_secs_f64(if interval.is_finite() {
        interval.clamp(0.1, 3600.0)
    } else {
        2.0
    });
    let finals = watch::watch(
        &client,
        &uuids,
        interval,
        global.output == Output::Json,
        out,
    )
    .await?;
    if global.output == Output::Human {
        let mut text = String::new();
        for v in &finals {
            let j = JobView(v);
            text.push_str(&format!(
                "{} {}: {} ({}, {} resizes)\n",
                j.uuid(),
                j.name(),
                j.state(),
                j.class(),
                j.resizes()
                    .map_or_else(|| "?".to_owned(), |n| n.to_string())
            ));
        }
        write_out(out, &text)?;
    }
    Ok(())
}

/// `cancel`'s arguments.
struct Cancel {
    job: String,
    creds: Option<PathBuf>,
    chronos_api: ChronosApi,
    keep_checkpoints: bool,
    wait: f64,
}

/// `cancel`: the supervisor stops supervising; with `--creds` the launcher also stops and
/// deletes the framework's job and waits for it.
async fn cancel_job(
    global: &GlobalArgs,
    cancel: Cancel,
    out: &mut dyn Write,
) -> Result<(), LauncherError> {
    let Cancel {
        job,
        creds,
        chronos_api,
        keep_checkpoints,
        wait,
    } = cancel;
    if !(wait.is_finite() && (0.0..=3600.0).contains(&wait)) {
        return Err(LauncherError::input(format!(
            "--wait must be between 0 and 3600 seconds, got {wait}"
        )));
    }
    let client = supervisor(global)?;
    let uuid = view::resolve(&client, &job).await?;
    let v = get_job(&client, &uuid).await?;
    let j = JobView(&v);
    client
        .cancel_job_with(&uuid, keep_checkpoints)
        .await
        .map_err(|e| {
            LauncherError::from_framework("the supervisor", &format!("cancelling {uuid}"), &e)
        })?;
    let framework: Option<Framework> = j.framework().parse().ok();
    let mut done = None;
    if let Some(path) = creds {
        let framework = framework.ok_or_else(|| {
            LauncherError::internal(format!(
                "the supervisor's job {uuid} has no known framework ({:?})",
                j.framework()
            ))
        })?;
        let c = load_credentials(&path)?;
        let fw =
            FrameworkClient::connect(framework, &c, chronos_api, &client_config(global)).await?;
        let what = fw
            .stop_and_delete(j.name(), Duration::from_secs_f64(wait))
            .await
            .map_err(|e| {
                LauncherError::from_framework(
                    "the framework",
                    &format!(
                        "supervision of {uuid} stopped, but stopping and deleting {:?} \
                         in {framework:?}",
                        j.name()
                    ),
                    &e,
                )
            })?;
        done = Some((framework, what));
    }
    let checkpoints = (framework == Some(Framework::Marathon)).then_some(if keep_checkpoints {
        "kept"
    } else {
        "removed by shell-trap"
    });
    match global.output {
        Output::Json => write_out(
            out,
            &json_line(&json!({"uuid": uuid, "name": j.name(), "cancelled": true,
                               "deleted_from": done.as_ref().map(|(f, _)| *f),
                               "stopped": done.as_ref().map(|(_, w)| w),
                               "checkpoints": checkpoints})),
        ),
        Output::Human => write_out(
            out,
            &format!(
                "cancelled {uuid} ({}): supervision stopped; {}{}\n",
                j.name(),
                match &done {
                    Some((_, what)) => what.clone(),
                    None => "the supervisor stops and deletes the framework job".to_owned(),
                },
                match checkpoints {
                    Some(c) => format!("; checkpoints {c}"),
                    None => String::new(),
                }
            ),
        ),
    }
}

fn supervisor(global: &GlobalArgs) -> Result<SupervisorClient, LauncherError> {
    let url = SupervisorUrl::parse(&global.supervisor)?;
    supervisor_client(&url, global.admin_token.as_deref(), &client_config(global))
}

async fn get_job(client: &SupervisorClient, uuid: &str) -> Result<Value, LauncherError> {
    client.job(uuid).await.map_err(|e| {
        let mut err =
            LauncherError::from_framework("the supervisor", &format!("reading job {uuid}"), &e);
        if e.is_not_found() {
            err = err.with_note("see `launcher list`");
        }
        err
    })
}

async fn do_submit(
    req: &SubmitRequest,
    output: Output,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), LauncherError> {
    let done: Submitted = submit::submit(req).await?;
    let job = &done.prepared;
    for n in &job.notes {
        let _ = writeln!(err, "note: {n}");
    }
    for w in &job.warnings {
        let _ = writeln!(err, "warning: {w}");
    }
    if done.dry_run {
        // Exactly one JSON object, whatever --output says.
        return write_out(out, &json_line(&done.dry_run_json()));
    }
    match output {
        Output::Json => write_out(
            out,
            &json_line(&json!({
                "uuid": job.uuid.as_str(), "name": job.name(), "framework": job.framework(),
                "submitted": true, "warnings": job.warnings, "notes": job.notes,
            })),
        ),
        Output::Human => write_out(
            out,
            &format!(
                "Registered {} with the supervisor and submitted it to {}.\n\
                 Launch completed with UUID: {}\n\
                 Follow it with: launcher watch {}\n",
                job.name(),
                job.framework().as_str(),
                job.uuid,
                job.uuid
            ),
        ),
    }
}
