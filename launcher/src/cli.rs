//! The command line (clap; every flag also reads an environment variable); [`crate::run`] parses
//! it and runs the command.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use qos_core::Framework;

use crate::rewrite::{Pace, ShellTrap};
use crate::submit::ChronosApi;

const EXAMPLES: &str = "\
Examples:
  Thesis form (flag for flag as the 2017 launcher; -i is the supervisor's base URL):
    launcher -j openmpLinpack1.json -c chronos.json -i http://10.0.0.2:30000
    launcher -j marathon_openmpLinpack1.json -m marathon.json -i http://10.0.0.2:30000
    launcher -j openmpLinpack1.json -c chronos.json -i http://10.0.0.2:30000 --dry-run
    launcher -j openmpLinpack3.json -c chronos.json -i http://10.0.0.2:30000 --pace schedule

  Subcommands:
    launcher submit job.json --framework chronos --creds chronos.json --supervisor http://sup:30000
    launcher validate app.json                 # prints {\"framework\", \"request\", \"registration\", \"warnings\", \"notes\"}
    launcher list
    launcher status openmpLinpack1             # a name or a UUID
    launcher watch openmpLinpack1 openmpLinpack2 /openmplinpack1
    launcher cancel 0123456789abcdef0123456789abcdef --creds marathon.json
    launcher list --output json | jq '.[].class'

  Chronos pacing: a job's R<n> runs go back to back, each as soon as the previous one ends, as in
  the thesis (R13//PT3M is sent as R13//PT1S; needs Chronos 3.x); --pace schedule keeps the period.
  A start so far in the past that Chronos would skip the runs (more than epsilon ago, e.g.
  R3/2014-09-25T17:22:00Z/PT2M) is moved to now with a warning (sent as R3//PT2M); write a start
  in the future to start later.

  Job files as written for the frameworks: numbers and booleans given as strings (\"cpus\": \"1\",
  \"mem\": \"64\", \"async\": \"false\") are sent as numbers and booleans; a string that is not one
  is refused, naming the field. A Marathon app with a Docker image runs its container through
  shell-trap: what shell-trap cannot carry is refused with the field and the fix (residency and
  persistent volumes, external and secret volumes, docker.pullConfig and credential, gpus,
  ipAddress, docker.parameters it does not support, AppC images) or warned about (portMappings,
  fetch/uris, health and readiness checks, resourceLimits, linuxInfo, container networks). An app
  without an image keeps its container: shell-trap runs inside it, so all of it is carried.
  Warnings go to stderr and into the JSON output's \"warnings\".

  Marathon checkpoints: a resize restarts the task, and shell-trap (the task's command) saves the
  job's work first. Choose how per job with the app label \"qos.checkpoint\", or for every job with
  --strategy (the flag wins over the label):
    {\"id\": \"/solver\", \"cmd\": \"exec linpack 800\", \"labels\": {\"qos.checkpoint\": \"app\"}, \"qos\": {…}}
    launcher -j app.json -m marathon.json -i http://10.0.0.2:30000 --strategy app
  app: the job saves its own state on SIGTERM into $QOS_CHECKPOINT_DIR and resumes from it; criu:
  CRIU freezes the whole container; none: a restart loses the work; auto (shell-trap's default):
  criu where it works, else app if the image has the label qos.checkpoint=app, else none.
  Marathon SIGKILLs taskKillGracePeriodSeconds after the SIGTERM (--grace-period, default 30);
  shell-trap is given that minus 5 s or a fifth of it, whichever is smaller (--grace 25).

  Credential files (thesis format): {\"url\": \"http://host:port\", \"user\": \"\", \"password\": \"\"}

Exit status: 0 ok, 1 internal error, 2 bad input (file, field, flag, or a job the framework
refused), 3 the supervisor or framework cannot be reached.";

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Text for people.
    Human,
    /// JSON for scripts (one object, or one line per update for `watch`).
    Json,
}

/// Options every command takes.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Supervisor base URL (the thesis' -i/--rest-ip).
    #[arg(
        short = 'i',
        long = "supervisor",
        visible_alias = "rest-ip",
        global = true,
        env = "QOS_SUPERVISOR_URL",
        default_value = "http://127.0.0.1:30000",
        value_name = "URL"
    )]
    pub supervisor: String,
    /// Bearer token for the supervisor's API (registration, list, cancel).
    #[arg(
        long,
        global = true,
        env = "QOS_ADMIN_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<String>,
    /// Output format.
    #[arg(long, short = 'o', global = true, env = "QOS_OUTPUT", value_enum, default_value_t = Output::Human)]
    pub output: Output,
    /// Timeout of each HTTP request, seconds.
    #[arg(
        long,
        global = true,
        env = "QOS_HTTP_TIMEOUT",
        default_value_t = 10,
        value_name = "SECS"
    )]
    pub timeout: u64,
}

/// How the job is rewritten.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Rewrite options")]
pub struct RewriteArgs {
    /// Use this UUID instead of a fresh random one (32 hex digits, or the dashed form).
    #[arg(long, env = "QOS_LAUNCHER_UUID", value_name = "UUID")]
    pub uuid: Option<String>,
    /// Marathon: shell-trap on the agents.
    #[command(flatten)]
    pub shell_trap: ShellTrap,
    /// Chronos: tries of each iteration report before it is given up (backoff 1 s doubling to 60 s).
    #[arg(long, env = "QOS_REPORT_ATTEMPTS", default_value_t = 10, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub report_attempts: u32,
    /// Chronos: how the job's scheduled runs are paced.
    #[arg(long, env = "QOS_PACE", value_enum, default_value_t = Pace::BackToBack)]
    pub pace: Pace,
    /// Chronos API generation.
    #[arg(long, env = "QOS_CHRONOS_API", value_enum, default_value_t = ChronosApi::Auto)]
    pub chronos_api: ChronosApi,
}

/// The launcher's command line.
#[derive(Debug, Parser)]
#[command(
    name = "launcher",
    version,
    about = "Submit QoS jobs (Chronos jobs or Marathon apps with a \"qos\" block) and follow them.",
    after_help = EXAMPLES
)]
pub struct Cli {
    /// A subcommand; without one, the thesis form (-j, -c|-m, -i) submits a job.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Thesis form: the job file (a Chronos job or Marathon app with a "qos" block).
    #[arg(
        short = 'j',
        long = "job-file",
        env = "QOS_JOB_FILE",
        value_name = "FILE"
    )]
    pub job_file: Option<PathBuf>,
    /// Thesis form: Chronos credential file; the job goes to Chronos.
    #[arg(
        short = 'c',
        long = "credentials-chronos",
        env = "QOS_CREDENTIALS_CHRONOS",
        value_name = "FILE",
        conflicts_with = "credentials_marathon"
    )]
    pub credentials_chronos: Option<PathBuf>,
    /// Thesis form: Marathon credential file; the job goes to Marathon.
    #[arg(
        short = 'm',
        long = "credentials-marathon",
        env = "QOS_CREDENTIALS_MARATHON",
        value_name = "FILE"
    )]
    pub credentials_marathon: Option<PathBuf>,
    /// Thesis form: print {"framework", "request", "registration", "warnings", "notes"} and
    /// contact nothing.
    #[arg(long, env = "QOS_DRY_RUN")]
    pub dry_run: bool,
    /// Rewrite options of the thesis form.
    #[command(flatten)]
    pub rewrite: RewriteArgs,
    /// Options of every command.
    #[command(flatten)]
    pub global: GlobalArgs,
}

/// The subcommands; without one the launcher takes the thesis' form (`-j`, `-c`/`-m`, `-i`).
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Register a job with the supervisor, then submit it to its framework (rolled back on failure).
    Submit(SubmitArgs),
    /// Validate and rewrite a job; print {"framework", "request", "registration", "warnings",
    /// "notes"}; contact nothing.
    Validate(ValidateArgs),
    /// List the supervisor's jobs.
    List,
    /// One job's class, progress, prediction vs deadline, CPUs and resizes.
    Status {
        /// The job's UUID or name.
        #[arg(value_name = "UUID|NAME")]
        job: String,
    },
    /// Live progress bars until each job ends.
    Watch {
        /// The jobs' UUIDs or names.
        #[arg(value_name = "UUID|NAME", required = true)]
        jobs: Vec<String>,
        /// Seconds between polls.
        #[arg(
            long,
            env = "QOS_WATCH_INTERVAL",
            default_value_t = 2.0,
            value_name = "SECS"
        )]
        interval: f64,
    },
    /// Cancel a job: stop supervising it, stop its work and delete it from its framework.
    ///
    /// The supervisor records the cancellation first, then the job's work is stopped: a Chronos
    /// job's running task is killed and the job deleted; a Marathon app is deleted (its task
    /// stopped), and shell-trap, told by the supervisor that the job was cancelled, stops it
    /// without a checkpoint and deletes the job's checkpoints (unless --keep-checkpoints).
    Cancel {
        /// The job's UUID or name.
        #[arg(value_name = "UUID|NAME")]
        job: String,
        /// The framework's credential file: the launcher stops and deletes the job itself and
        /// waits for it; without it only the supervisor is told (it does the same when it has
        /// the framework's credentials).
        #[arg(long, env = "QOS_CREDS", value_name = "FILE")]
        creds: Option<PathBuf>,
        /// Chronos API generation.
        #[arg(long, env = "QOS_CHRONOS_API", value_enum, default_value_t = ChronosApi::Auto)]
        chronos_api: ChronosApi,
        /// Marathon: keep the job's checkpoints on the agents (shell-trap saves the work as for
        /// a restart instead of deleting it).
        #[arg(long, env = "QOS_KEEP_CHECKPOINTS")]
        keep_checkpoints: bool,
        /// With --creds: how long to wait for a Marathon app's tasks to stop, seconds.
        #[arg(
            long,
            env = "QOS_CANCEL_WAIT",
            default_value_t = 60.0,
            value_name = "SECS"
        )]
        wait: f64,
    },
}

/// The job of `submit` and `validate`: its file and its framework.
#[derive(Debug, Args)]
pub struct JobArgs {
    /// The job file.
    #[arg(value_name = "JOB_FILE")]
    pub file: PathBuf,
    /// The framework [default: guessed from the job's fields].
    #[arg(long, short = 'f', env = "QOS_FRAMEWORK", value_parser = parse_framework)]
    pub framework: Option<Framework>,
}

/// `submit` options.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// The job file and its framework.
    #[command(flatten)]
    pub job: JobArgs,
    /// The framework's credential file ({"url", "user", "password"}).
    #[arg(long, env = "QOS_CREDS", value_name = "FILE")]
    pub creds: Option<PathBuf>,
    /// Print {"framework", "request", "registration", "warnings", "notes"} and contact nothing.
    #[arg(long, env = "QOS_DRY_RUN")]
    pub dry_run: bool,
    /// Rewrite options.
    #[command(flatten)]
    pub rewrite: RewriteArgs,
}

/// `validate` options.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The job file and its framework.
    #[command(flatten)]
    pub job: JobArgs,
    /// Rewrite options.
    #[command(flatten)]
    pub rewrite: RewriteArgs,
}

fn parse_framework(s: &str) -> Result<Framework, String> {
    s.parse()
}
