//! The command line ([`Args`], raw, as clap parses it) and the validated [`Settings`] the run
//! uses. Everything is checked here, before anything starts: the UUID's characters, the
//! supervisor URL, the checkpoint directory, the CPU bound, the grace period, the container
//! options and the command.
//!
//! Every flag can also come from the environment (`env =` below); `--cpus` reads Marathon's own
//! `MARATHON_APP_RESOURCE_CPUS`, so a Marathon task is bounded by its allocation without a flag.

use std::ffi::OsStr;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use clap::{Parser, ValueEnum};
use frameworks::Credentials;

use crate::container_options::{ContainerOptions, parse_marathon_container};
use crate::error::SetupError;

/// Default grace period, seconds: the launcher's default `taskKillGracePeriodSeconds` (30 s)
/// minus a 5 s margin for removing the container, writing the manifest and exiting before
/// Marathon's SIGKILL. Pass `--grace` when the app has another kill grace period.
pub const DEFAULT_GRACE_SECS: f64 = 25.0;

/// The environment variable holding the job's report token (the launcher puts it in the
/// Marathon app's `env`).
pub const REPORT_TOKEN_VAR: &str = "SHELL_TRAP_REPORT_TOKEN";

/// Default time budget for one supervisor report (all its retries), seconds.
pub const DEFAULT_REPORT_TIMEOUT_SECS: f64 = 30.0;

/// Where the incarnation's checkpoint directory is mounted inside a container (`app` strategy);
/// `QOS_CHECKPOINT_DIR` names it.
pub const CONTAINER_CHECKPOINT_DIR: &str = "/qos-checkpoint";

/// The checkpoint strategy asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StrategyArg {
    /// CRIU if it works here, else `app` if the job declares support, else `none`.
    Auto,
    /// `docker checkpoint` (CRIU); refused with the reason when it does not work here.
    Criu,
    /// Application-assisted: the job saves its state on SIGTERM into `QOS_CHECKPOINT_DIR`.
    App,
    /// No checkpoint: a restart begins from scratch (work is lost).
    None,
}

/// What to use when `--strategy criu` is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Fallback {
    /// Application-assisted checkpoints.
    App,
    /// No checkpoint.
    None,
}

/// How the job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RuntimeKind {
    /// A Docker container (Engine API); the first word after `--` is the image.
    Docker,
    /// A plain process in the task's cgroup; the words after `--` are the command.
    Process,
}

/// Where the process runtime's job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CgroupMode {
    /// In shell-trap's own cgroup (the agent placed the task there and bounded it).
    Inherit,
    /// In a new child cgroup `shell-trap-<uuid>` bounded by `--cpus` (v1 CFS quota or v2
    /// `cpu.max`), removed at exit. Needs write access to the cgroup tree (root).
    Create,
}

/// `shell-trap`: runs (or restores) a Marathon job's container or process, reports start and end
/// to the supervisor, and on SIGTERM checkpoints it within the kill grace period.
#[derive(Debug, Parser)]
#[command(
    name = "shell-trap",
    version,
    about = "Run a job's container or process; checkpoint it on SIGTERM, restore it on restart",
    long_about = None,
    after_help = "Exit status: the job's own exit status when it ends by itself (128+N when a \
                  signal N killed it); 0 after SIGTERM/SIGINT once the job is checkpointed (or, \
                  with --strategy none, stopped); 1 when that checkpoint failed; 128+N after a \
                  second signal N stopped it at once; 125 when shell-trap cannot run the job \
                  (invalid arguments, CRIU refused, Docker unreachable, the UUID busy); 126 the \
                  command cannot be executed; 127 the command was not found.",
    arg_required_else_help = true
)]
pub struct Args {
    /// The job's UUID (the container's name): letters, digits, `_`, `.`, `-`, starting with a
    /// letter or digit, at most 128 characters.
    #[arg(long, env = "SHELL_TRAP_UUID", value_name = "UUID")]
    pub uuid: String,

    /// The supervisor's base URL (`http://host:30000`).
    #[arg(long, env = "SHELL_TRAP_SUPERVISOR", value_name = "URL")]
    pub supervisor: String,

    /// Absolute directory for checkpoints; shell-trap uses `<DIR>/<UUID>/`. When that cannot be
    /// created or written, strategies `none` and `auto` run the job without checkpoints (and
    /// without the job's lock), with a warning; `app` and `criu` are refused.
    #[arg(long, env = "SHELL_TRAP_CHECKPOINT_DIR", value_name = "DIR")]
    pub checkpoint_dir: PathBuf,

    /// Checkpoint strategy.
    #[arg(long, env = "SHELL_TRAP_STRATEGY", value_enum, default_value_t = StrategyArg::Auto)]
    pub strategy: StrategyArg,

    /// Strategy to use when `criu` is refused (without it, a refused `criu` is an error).
    #[arg(long, env = "SHELL_TRAP_FALLBACK", value_enum)]
    pub fallback: Option<Fallback>,

    /// A file holding the job's report token (e.g. in the task's sandbox). The token itself is
    /// taken from the environment variable SHELL_TRAP_REPORT_TOKEN or from this file, never from
    /// the command line, where every user of the host could read it.
    #[arg(long, env = "SHELL_TRAP_REPORT_TOKEN_FILE", value_name = "FILE")]
    pub report_token_file: Option<PathBuf>,

    /// Refused: a token on the command line is visible to every user of the host (`ps`).
    #[arg(long, hide = true, value_name = "TOKEN")]
    pub report_token: Option<String>,

    /// `docker` or `process`; without it: `docker` when `QOS_CONTAINER` names an image or the
    /// first word is not an executable, else `process`.
    #[arg(long, env = "SHELL_TRAP_RUNTIME", value_enum)]
    pub runtime: Option<RuntimeKind>,

    /// CPU bound of the job (Docker `NanoCpus`; the process runtime's own cgroup with `--cgroup
    /// create`). Default: Marathon's `MARATHON_APP_RESOURCE_CPUS`.
    #[arg(long, env = "MARATHON_APP_RESOURCE_CPUS", value_name = "C")]
    pub cpus: Option<f64>,

    /// Seconds from SIGTERM until the job must be checkpointed and stopped; keep it below the
    /// app's `taskKillGracePeriodSeconds`.
    #[arg(long, env = "SHELL_TRAP_GRACE", value_name = "SECS", default_value_t = DEFAULT_GRACE_SECS)]
    pub grace: f64,

    /// Extra container option `KEY=VALUE` with docker run's long option name (`volume=/h:/c:ro`,
    /// `env=A=1`, `memory=512m`, `label=k=v`, `user=1000`…); repeatable. The environment variable
    /// takes one option per line.
    #[arg(
        long = "docker-opt",
        env = "SHELL_TRAP_DOCKER_OPT",
        value_name = "KEY=VALUE",
        value_delimiter = '\n'
    )]
    pub docker_opts: Vec<String>,

    /// The job supports application-assisted checkpoints (for `--strategy auto`: the process
    /// runtime's declaration, like the image label `qos.checkpoint=app` for containers).
    #[arg(long, env = "SHELL_TRAP_APP_CHECKPOINT")]
    pub app_checkpoint: bool,

    /// Process runtime: run the job in shell-trap's cgroup, or in a new one bounded by `--cpus`.
    #[arg(long, env = "SHELL_TRAP_CGROUP", value_enum, default_value_t = CgroupMode::Inherit)]
    pub cgroup: CgroupMode,

    /// Seconds one supervisor report may take, retries included.
    #[arg(
        long,
        env = "SHELL_TRAP_REPORT_TIMEOUT",
        value_name = "SECS",
        default_value_t = DEFAULT_REPORT_TIMEOUT_SECS
    )]
    pub report_timeout: f64,

    /// `<image> [command…]` (docker) or `<command…>` (process).
    #[arg(last = true, required = true, value_name = "IMAGE|COMMAND")]
    pub command: Vec<String>,
}

/// What runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Launch {
    /// A process: the argument vector, run directly (no shell).
    Process {
        /// `argv[0]` and its arguments.
        argv: Vec<String>,
        /// Where it runs.
        cgroup: CgroupMode,
    },
    /// A Docker container through the Engine API.
    Docker {
        /// The image reference (the first word after `--`).
        image: String,
        /// The command (empty: the image's own).
        cmd: Vec<String>,
        /// Options from `QOS_CONTAINER` and `--docker-opt`.
        options: Box<ContainerOptions>,
    },
}

impl Launch {
    /// Which runtime.
    #[must_use]
    pub fn kind(&self) -> RuntimeKind {
        match self {
            Self::Process { .. } => RuntimeKind::Process,
            Self::Docker { .. } => RuntimeKind::Docker,
        }
    }
}

/// The validated settings of one run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The job's UUID.
    pub uuid: String,
    /// Supervisor URL and the report token (as bearer).
    pub supervisor: Credentials,
    /// The supervisor URL as given (passed to the job as `QOS_SUPERVISOR_URL`).
    pub supervisor_url: String,
    /// The report token, passed to the job as `QOS_REPORT_TOKEN`.
    pub report_token: Option<String>,
    /// `<checkpoint-dir>/<uuid>`.
    pub job_dir: PathBuf,
    /// Strategy asked for.
    pub strategy: StrategyArg,
    /// Fallback for a refused `criu`.
    pub fallback: Option<Fallback>,
    /// The CPU bound, if known.
    pub cpus: Option<f64>,
    /// Time from SIGTERM to stopped.
    pub grace: Duration,
    /// The job declared app-assisted checkpoint support.
    pub app_checkpoint: bool,
    /// Budget of one report.
    pub report_timeout: Duration,
    /// What runs.
    pub launch: Launch,
}

/// What validation reads from the environment besides clap's `env =` flags (a parameter, so
/// tests need no `set_var`).
#[derive(Debug, Clone, Default)]
pub struct Environment {
    /// `QOS_CONTAINER`: the launcher's hand-over of the Marathon `container` object (JSON).
    pub qos_container: Option<String>,
    /// `QOS_FORWARD_ENV` names resolved to `NAME=value` (names without a value are skipped).
    pub forward_env: Vec<(String, String)>,
    /// `PATH`, to decide whether the first word is a command.
    pub path: Option<String>,
    /// `SHELL_TRAP_REPORT_TOKEN`: the job's report token.
    pub report_token: Option<String>,
}

impl Environment {
    /// Reads the process environment.
    #[must_use]
    pub fn from_process() -> Self {
        let forward_env = std::env::var("QOS_FORWARD_ENV")
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_owned(), v)))
            .collect();
        Self {
            qos_container: std::env::var("QOS_CONTAINER")
                .ok()
                .filter(|s| !s.is_empty()),
            forward_env,
            path: std::env::var("PATH").ok(),
            report_token: std::env::var(REPORT_TOKEN_VAR)
                .ok()
                .filter(|t| !t.is_empty()),
        }
    }
}

/// Checks a UUID: `[A-Za-z0-9][A-Za-z0-9_.-]{0,127}` — a valid Docker container name, label value
/// and file name that needs no quoting.
///
/// # Errors
/// [`SetupError::Invalid`] saying what is wrong.
pub fn check_uuid(uuid: &str) -> Result<(), SetupError> {
    let ok_first = uuid
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    let ok_rest = uuid
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if uuid.is_empty() || uuid.len() > 128 || !ok_first || !ok_rest {
        return Err(SetupError::invalid(
            "--uuid",
            format!(
                "{uuid:?} is not a job UUID: use 1–128 letters, digits, '_', '.' or '-', starting \
                 with a letter or digit (the launcher's UUIDs are 32 hex digits)"
            ),
        ));
    }
    Ok(())
}

fn check_checkpoint_dir(dir: &Path) -> Result<(), SetupError> {
    let flag = "--checkpoint-dir";
    let s = dir.as_os_str();
    if s.is_empty() || !dir.is_absolute() {
        return Err(SetupError::invalid(
            flag,
            format!("{} must be an absolute path", dir.display()),
        ));
    }
    if dir
        .components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        return Err(SetupError::invalid(
            flag,
            format!("{} must not contain '.' or '..' components", dir.display()),
        ));
    }
    if dir.parent().is_none() {
        return Err(SetupError::invalid(
            flag,
            "must not be the root directory '/'".to_owned(),
        ));
    }
    if dir.to_str().is_none_or(|t| t.contains([':', '\n', ','])) {
        return Err(SetupError::invalid(
            flag,
            format!(
                "{} must be valid UTF-8 without ':', ',' or newlines (it becomes a Docker bind \
                 mount)",
                dir.display()
            ),
        ));
    }
    Ok(())
}

fn finite_in(
    flag: &str,
    v: f64,
    lo_exclusive: f64,
    hi: f64,
    unit: &str,
) -> Result<f64, SetupError> {
    if v.is_finite() && v > lo_exclusive && v <= hi {
        Ok(v)
    } else {
        Err(SetupError::invalid(
            flag,
            format!("{v} must be a number above {lo_exclusive} and at most {hi} {unit}"),
        ))
    }
}

/// Whether `word` names an executable file: a path containing `/`, or a name found in `path`.
#[must_use]
pub fn is_executable(word: &str, path: Option<&str>) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let exec = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if word.contains('/') {
        return exec(Path::new(word));
    }
    path.unwrap_or_default()
        .split(':')
        .filter(|d| !d.is_empty())
        .any(|d| exec(&Path::new(d).join(word)))
}

fn check_image(image: &str) -> Result<(), SetupError> {
    let bad = image.is_empty()
        || image.starts_with('-')
        || image.len() > 512
        || image.chars().any(|c| c.is_whitespace() || c.is_control());
    if bad {
        return Err(SetupError::invalid(
            "IMAGE",
            format!("{image:?} is not a Docker image reference"),
        ));
    }
    Ok(())
}

impl Args {
    /// The job's report token: from `--report-token-file`, else the environment; refused on
    /// the command line, where every user of the host sees it.
    fn report_token(&self, env: &Environment) -> Result<Option<String>, SetupError> {
        if self.report_token.is_some() {
            return Err(SetupError::invalid(
                "--report-token",
                format!(
                    "is refused: a token on the command line is visible to every user of the \
                     host (ps); put it in the environment variable {REPORT_TOKEN_VAR} or in a \
                     file named by --report-token-file"
                ),
            ));
        }
        let report_token = match &self.report_token_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    SetupError::invalid(
                        "--report-token-file",
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                Some(text.trim().to_owned())
            }
            None => env.report_token.clone(),
        };
        if let Some(t) = &report_token {
            let from = if self.report_token_file.is_some() {
                "--report-token-file"
            } else {
                REPORT_TOKEN_VAR
            };
            if t.is_empty()
                || t.len() > 4096
                || t.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(SetupError::invalid(
                    from,
                    "the token must be 1–4096 printable characters without spaces".to_owned(),
                ));
            }
        }
        Ok(report_token)
    }

    /// Validates everything and resolves the defaults, one flag after the other in the order
    /// `--help` lists them.
    ///
    /// # Errors
    /// [`SetupError::Invalid`] naming the flag and the reason.
    pub fn resolve(self, env: &Environment) -> Result<Settings, SetupError> {
        check_uuid(&self.uuid)?;
        let mut supervisor = Credentials::new(&self.supervisor)
            .map_err(|e| SetupError::invalid("--supervisor", e.to_string()))?;
        let report_token = self.report_token(env)?;
        if let Some(t) = &report_token {
            supervisor = supervisor.with_bearer_token(t.clone());
        }
        check_checkpoint_dir(&self.checkpoint_dir)?;
        let cpus = self
            .cpus
            .map(|c| {
                finite_in(
                    "--cpus (or MARATHON_APP_RESOURCE_CPUS)",
                    c,
                    0.0,
                    1024.0,
                    "CPUs",
                )
            })
            .transpose()?;
        let grace = finite_in("--grace", self.grace, 0.0, 3600.0, "seconds")?;
        let report_timeout = finite_in(
            "--report-timeout",
            self.report_timeout,
            0.0,
            3600.0,
            "seconds",
        )?;
        if self.fallback.is_some()
            && !matches!(self.strategy, StrategyArg::Criu | StrategyArg::Auto)
        {
            return Err(SetupError::invalid(
                "--fallback",
                format!(
                    "applies only when --strategy criu is refused (the strategy is {:?})",
                    self.strategy
                ),
            ));
        }
        let launch = launch(
            self.command,
            &self.docker_opts,
            self.runtime,
            self.cgroup,
            cpus,
            env,
        )?;
        let job_dir = self.checkpoint_dir.join(OsStr::new(&self.uuid));
        Ok(Settings {
            uuid: self.uuid,
            supervisor,
            supervisor_url: self.supervisor,
            report_token,
            job_dir,
            strategy: self.strategy,
            fallback: self.fallback,
            cpus,
            grace: Duration::from_secs_f64(grace),
            app_checkpoint: self.app_checkpoint,
            report_timeout: Duration::from_secs_f64(report_timeout),
            launch,
        })
    }
}

/// How the job runs: the runtime (given, or guessed from `QOS_CONTAINER` and the first word
/// after `--`) and what it runs, with the checks of the flags that apply to one runtime only.
fn launch(
    command: Vec<String>,
    docker_opts: &[String],
    runtime: Option<RuntimeKind>,
    cgroup: CgroupMode,
    cpus: Option<f64>,
    env: &Environment,
) -> Result<Launch, SetupError> {
    let container = env
        .qos_container
        .as_deref()
        .map(parse_marathon_container)
        .transpose()?;
    let first = command.first().cloned().unwrap_or_default();
    if first.is_empty() {
        return Err(SetupError::invalid(
            "COMMAND",
            "the words after `--` must name an image (docker) or a command (process)",
        ));
    }
    let kind = match runtime {
        Some(k) => k,
        None if container.as_ref().is_some_and(|c| c.image.is_some()) => RuntimeKind::Docker,
        None if is_executable(&first, env.path.as_deref()) => RuntimeKind::Process,
        None => RuntimeKind::Docker,
    };
    Ok(match kind {
        RuntimeKind::Process => {
            if !docker_opts.is_empty() {
                return Err(SetupError::invalid(
                    "--docker-opt",
                    "applies only to the docker runtime",
                ));
            }
            if cgroup == CgroupMode::Create && cpus.is_none() {
                return Err(SetupError::invalid(
                    "--cgroup create",
                    "needs the CPU bound: --cpus or MARATHON_APP_RESOURCE_CPUS",
                ));
            }
            Launch::Process {
                argv: command,
                cgroup,
            }
        }
        RuntimeKind::Docker => {
            if cgroup == CgroupMode::Create {
                return Err(SetupError::invalid(
                    "--cgroup create",
                    "applies only to the process runtime (Docker bounds the container with \
                     --cpus)",
                ));
            }
            let mut words = command.into_iter();
            let image = words.next().unwrap_or_default();
            check_image(&image)?;
            let mut options = container.unwrap_or_default();
            if let Some(declared) = &options.image {
                if declared != &image {
                    tracing::warn!(
                        "QOS_CONTAINER names image {declared:?} but the command runs {image:?}; \
                         running {image:?}"
                    );
                }
            }
            for o in docker_opts {
                options.apply_opt(o, "--docker-opt")?;
            }
            options
                .env
                .extend(env.forward_env.iter().map(|(k, v)| format!("{k}={v}")));
            Launch::Docker {
                image,
                cmd: words.collect(),
                options: Box::new(options),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(words: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("shell-trap").chain(words.iter().copied()))
    }

    const BASE: [&str; 6] = [
        "--uuid",
        "0123456789abcdef0123456789abcdef",
        "--supervisor",
        "http://127.0.0.1:30000",
        "--checkpoint-dir",
        "/var/lib/qos/ckpt",
    ];

    fn args(extra: &[&str]) -> Vec<&'static str> {
        let mut v: Vec<&'static str> = BASE.to_vec();
        for e in extra {
            v.push(Box::leak(e.to_string().into_boxed_str()));
        }
        v
    }

    fn resolve(extra: &[&str]) -> Result<Settings, SetupError> {
        parse(&args(extra)).unwrap().resolve(&Environment {
            path: Some("/usr/bin:/bin".into()),
            ..Environment::default()
        })
    }

    #[test]
    fn uuids() {
        for ok in ["0123456789abcdef0123456789abcdef", "a", "job-1.x_2", "A9"] {
            check_uuid(ok).unwrap();
        }
        let long = "a".repeat(129);
        for bad in [
            "",
            "-a",
            ".a",
            "a b",
            "a/b",
            "a;rm",
            "ü",
            "a\n",
            long.as_str(),
        ] {
            assert!(check_uuid(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn process_runtime_is_chosen_for_an_executable() {
        let s = resolve(&["--", "/bin/sh", "-c", "exit 0"]).unwrap();
        assert_eq!(s.launch.kind(), RuntimeKind::Process);
        assert_eq!(
            s.job_dir,
            Path::new("/var/lib/qos/ckpt/0123456789abcdef0123456789abcdef")
        );
        assert_eq!(s.grace, Duration::from_secs(25));
        let s = resolve(&["--", "sh", "-c", "exit 0"]).unwrap();
        assert_eq!(s.launch.kind(), RuntimeKind::Process);
    }

    #[test]
    fn docker_runtime_is_chosen_for_an_image() {
        let s = resolve(&[
            "--cpus",
            "1.5",
            "--",
            "qos-linpack:latest",
            "/linpack",
            "100",
        ])
        .unwrap();
        let Launch::Docker { image, cmd, .. } = &s.launch else {
            panic!("{:?}", s.launch)
        };
        assert_eq!(image, "qos-linpack:latest");
        assert_eq!(cmd, &["/linpack", "100"]);
        assert_eq!(s.cpus, Some(1.5));
        let s = resolve(&["--runtime", "docker", "--", "sh"]).unwrap();
        assert_eq!(s.launch.kind(), RuntimeKind::Docker);
    }

    #[test]
    fn invalid_values_are_refused_with_the_flag() {
        let cases: &[(&[&str], &str)] = &[
            (&["--cpus", "0", "--", "sh"], "--cpus"),
            (&["--cpus", "NaN", "--", "sh"], "--cpus"),
            (&["--grace=-1", "--", "sh"], "--grace"),
            (&["--report-token", "abc", "--", "sh"], "--report-token"),
            (
                &["--report-token-file", "/nonexistent/token", "--", "sh"],
                "--report-token-file",
            ),
            (
                &["--strategy", "app", "--fallback", "none", "--", "sh"],
                "--fallback",
            ),
            (
                &[
                    "--runtime",
                    "process",
                    "--docker-opt",
                    "memory=1g",
                    "--",
                    "sh",
                ],
                "--docker-opt",
            ),
            (&["--runtime", "docker", "--", "-image"], "IMAGE"),
            (
                &["--runtime", "docker", "--docker-opt", "cpus=2", "--", "img"],
                "--docker-opt",
            ),
            (&["--cgroup", "create", "--", "sh"], "--cgroup create"),
        ];
        for (extra, flag) in cases {
            let e = resolve(extra).unwrap_err().to_string();
            assert!(e.contains(flag), "{extra:?}: {e}");
        }
        for (dir, why) in [
            ("relative", "absolute"),
            ("/a/../b", "'..'"),
            ("/", "root"),
            ("/a:b", "':'"),
        ] {
            let a = parse(&[
                "--uuid",
                "u1",
                "--supervisor",
                "http://h:1",
                "--checkpoint-dir",
                dir,
                "--",
                "sh",
            ])
            .unwrap();
            let e = a.resolve(&Environment::default()).unwrap_err().to_string();
            assert!(
                e.contains(why) && e.contains("--checkpoint-dir"),
                "{dir}: {e}"
            );
        }
        let a = parse(&[
            "--uuid",
            "u1",
            "--supervisor",
            "ftp://h",
            "--checkpoint-dir",
            "/c",
            "--",
            "sh",
        ])
        .unwrap();
        let e = a.resolve(&Environment::default()).unwrap_err().to_string();
        assert!(e.contains("--supervisor"), "{e}");
    }

    #[test]
    fn the_command_is_required() {
        assert!(parse(&BASE).is_err());
        assert!(parse(&args(&["--"])).is_err());
    }

    #[test]
    fn qos_container_selects_docker_and_forwards_env() {
        let env = Environment {
            qos_container: Some(
                r#"{"type":"DOCKER","docker":{"image":"img:1","network":"HOST"},
                   "volumes":[{"containerPath":"/data","hostPath":"/srv/data","mode":"RO"}]}"#
                    .into(),
            ),
            forward_env: vec![("A".into(), "1".into())],
            path: Some("/usr/bin:/bin".into()),
            report_token: None,
        };
        let s = parse(&args(&["--", "img:1", "sh", "-c", "echo hi"]))
            .unwrap()
            .resolve(&env)
            .unwrap();
        let Launch::Docker { options, .. } = &s.launch else {
            panic!()
        };
        assert_eq!(options.binds, ["/srv/data:/data:ro"]);
        assert_eq!(options.env, ["A=1"]);
    }

    #[test]
    fn the_report_token_comes_from_the_environment_or_a_file_never_argv() {
        let with_env = |t: &str| Environment {
            path: Some("/usr/bin:/bin".into()),
            report_token: Some(t.into()),
            ..Environment::default()
        };
        let s = parse(&args(&["--", "sh"]))
            .unwrap()
            .resolve(&with_env("tok-1"))
            .unwrap();
        assert_eq!(s.report_token.as_deref(), Some("tok-1"));
        let e = parse(&args(&["--", "sh"]))
            .unwrap()
            .resolve(&with_env("a b"))
            .unwrap_err()
            .to_string();
        assert!(e.contains(REPORT_TOKEN_VAR), "{e}");
        let dir = std::env::temp_dir().join(format!("shell-trap-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "tok-from-file\n").unwrap();
        let f = file.display().to_string();
        let s = parse(&args(&["--report-token-file", &f, "--", "sh"]))
            .unwrap()
            .resolve(&with_env("tok-1"))
            .unwrap();
        assert_eq!(s.report_token.as_deref(), Some("tok-from-file"));
        std::fs::remove_dir_all(&dir).unwrap();
        let e = resolve(&["--report-token", "tok", "--", "sh"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("visible to every user"), "{e}");
    }
}
