//! A whole local qos-elastic installation as processes: testbed, supervisor and collector on
//! loopback ports, jobs submitted with the launcher, everything stopped and checked afterwards.
//! The demo and `study real` run on it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::binaries::{self, Binaries};
use crate::cleanup;
use crate::components::{self, Component};
use crate::watch::{Fw, Ui};

/// When a run on a local installation started, and the names made from that.
#[derive(Debug, Clone)]
pub struct RunStamp {
    /// The start.
    pub started: chrono::DateTime<chrono::Local>,
    /// The start as `%Y%m%d-%H%M%S`, for the run directory's name.
    pub stamp: String,
    /// `<pid>-<stamp>`: the run's id for [`Stack::new`].
    pub id: String,
}

impl RunStamp {
    /// A run starting now.
    #[must_use]
    pub fn now() -> Self {
        let started = chrono::Local::now();
        let stamp = started.format("%Y%m%d-%H%M%S").to_string();
        let id = format!("{}-{stamp}", std::process::id());
        Self { started, stamp, id }
    }
}

/// A run's directory: `given`, else `target/<under>` in the workspace (in the temporary
/// directory outside a checkout).
#[must_use]
pub fn run_dir(given: Option<&Path>, under: &Path) -> PathBuf {
    given.map_or_else(
        || {
            binaries::workspace_root()
                .map_or_else(std::env::temp_dir, |r| r.join("target"))
                .join(under)
        },
        Path::to_path_buf,
    )
}

/// How long each component may take to print its address.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// What to start.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// Emulated agents.
    pub agents: usize,
    /// CPUs of each agent.
    pub cpus_per_agent: f64,
    /// Tasks as Docker containers (the private daemon of `scripts/docker-daemon`).
    pub docker: bool,
    /// The supervisor's TOML configuration.
    pub supervisor_toml: String,
    /// The supervisor's policy (`thesis`, `predictive` or `static`).
    pub policy: String,
    /// The node agents' resize token: the collector serves in-place resizes and the supervisor
    /// may make them (`None`: no in-place resize is possible).
    pub agent_token: Option<String>,
}

/// The addresses of a running stack.
#[derive(Debug, Clone, Default)]
pub struct Urls {
    /// Supervisor base URL.
    pub supervisor: String,
    /// Marathon emulator.
    pub marathon: String,
    /// Chronos emulator.
    pub chronos: String,
    /// The collector's `/metrics`.
    pub collector_metrics: String,
    /// The collector's `/snapshot`.
    pub snapshot: Option<String>,
    /// The supervisor's `/ui`, when it serves one.
    pub dashboard: Option<String>,
}

/// Everything started, in the order it is stopped.
#[derive(Debug)]
pub struct Stack {
    testbed: Option<Component>,
    collector: Option<Component>,
    supervisor: Option<Component>,
    /// The run's marker (`QOS_DEMO_RUN=<run_id>` in every process of the run).
    pub run_id: String,
    /// The testbed's cgroup prefix.
    pub prefix: String,
    /// Where the components answer.
    pub urls: Urls,
    /// The temporary directory: database, checkpoints, sandboxes, metadata, credentials.
    pub work: PathBuf,
    /// Where the components' logs go.
    pub logs: PathBuf,
    docker_stop: Option<PathBuf>,
    docker_host: Option<String>,
    path_env: OsString,
}

impl Stack {
    /// An empty stack for run `run_id` (cgroup prefix `<prefix_base>-<pid>`).
    #[must_use]
    pub fn new(run_id: &str, prefix_base: &str, work: &Path, logs: &Path) -> Self {
        Self {
            testbed: None,
            collector: None,
            supervisor: None,
            run_id: run_id.to_owned(),
            prefix: format!("{prefix_base}-{}", std::process::id()),
            urls: Urls::default(),
            work: work.to_path_buf(),
            logs: logs.to_path_buf(),
            docker_stop: None,
            docker_host: None,
            path_env: OsString::new(),
        }
    }

    fn components(&mut self) -> impl Iterator<Item = &mut Component> {
        [
            self.testbed.as_mut(),
            self.collector.as_mut(),
            self.supervisor.as_mut(),
        ]
        .into_iter()
        .flatten()
    }

    /// The components' process ids (also their process group ids).
    #[must_use]
    pub fn pids(&self) -> Vec<i32> {
        [&self.testbed, &self.collector, &self.supervisor]
            .into_iter()
            .flatten()
            .map(|c| c.pid)
            .collect()
    }

    /// A component that stopped on its own, as an error with its stderr tail.
    ///
    /// # Errors
    /// When one has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        for c in self.components() {
            if let Some(status) = c.exited() {
                bail!(
                    "{} stopped unexpectedly ({status})\n--- last lines of {} ---\n{}\n---",
                    c.name,
                    c.log_path.display(),
                    c.log_tail(20)
                );
            }
        }
        Ok(())
    }

    fn command(&self, bin: &Path) -> Command {
        let mut c = Command::new(bin);
        components::scrub_env(&mut c);
        c.env(cleanup::MARKER, &self.run_id)
            .env("PATH", &self.path_env)
            .env("RUST_LOG", "info");
        if let Some(h) = &self.docker_host {
            c.env("DOCKER_HOST", h);
        }
        c
    }

    /// Starts the testbed, the supervisor and the collector; each one's start is reported on
    /// `ui`. On error, whatever started is still in `self` for [`Stack::teardown`].
    ///
    /// # Errors
    /// A component that does not start, with its stderr tail.
    pub async fn start(
        &mut self,
        opts: &StackOptions,
        bins: &Binaries,
        ui: &Ui,
    ) -> anyhow::Result<()> {
        for d in ["checkpoints", "meta", "sandboxes"] {
            std::fs::create_dir_all(self.work.join(d))?;
        }
        std::fs::create_dir_all(&self.logs)?;
        self.path_env = match std::env::var_os("PATH") {
            Some(p) => {
                let mut v = vec![bins.dir.clone()];
                v.extend(std::env::split_paths(&p));
                std::env::join_paths(v)?
            }
            None => bins.dir.clone().into_os_string(),
        };
        if opts.docker {
            self.docker_host = Some(self.start_docker(ui)?);
        }

        self.start_testbed(opts, bins, ui).await?;
        self.start_supervisor(opts, bins, ui).await?;
        self.start_collector(opts, bins, ui).await?;
        let ui_url = format!("{}/ui", self.urls.supervisor);
        self.urls.dashboard = probe(&ui_url).await.then_some(ui_url);
        Ok(())
    }

    /// The testbed (its TOML in the work directory, a copy with the logs), its URLs, and the
    /// frameworks' credential files the supervisor is given.
    async fn start_testbed(
        &mut self,
        opts: &StackOptions,
        bins: &Binaries,
        ui: &Ui,
    ) -> anyhow::Result<()> {
        let testbed_toml = self.work.join("testbed.toml");
        std::fs::write(&testbed_toml, self.testbed_config(opts))?;
        let _ = std::fs::copy(&testbed_toml, self.logs.join("testbed.toml"));
        let mut cmd = self.command(bins.get("testbed"));
        cmd.arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--config")
            .arg(&testbed_toml);
        let (c, urls) = Component::start("testbed", cmd, &self.logs, READY_TIMEOUT).await?;
        self.testbed = Some(c);
        if crate::workload::prioritise(&self.prefix).is_empty()
            && nix::unistd::Uid::effective().is_root()
        {
            ui.say(
                "note: could not raise the CPU weight of the testbed's cgroups: other load on \
                 this machine slows its jobs",
            );
        }
        self.urls.marathon = urls["marathon"].as_str().unwrap_or_default().to_owned();
        self.urls.chronos = urls["chronos"].as_str().unwrap_or_default().to_owned();
        if self.urls.marathon.is_empty() || self.urls.chronos.is_empty() {
            bail!("the testbed printed {urls} without marathon and chronos URLs");
        }
        ui.say(&format!(
            "testbed:    Marathon {}, Chronos {}, {} agent(s) × {} CPU ({})",
            self.urls.marathon,
            self.urls.chronos,
            opts.agents,
            opts.cpus_per_agent,
            if opts.docker {
                "Docker containers"
            } else {
                "processes in cgroups"
            }
        ));
        let creds_m = self.marathon_credentials();
        let creds_c = self.chronos_credentials();
        std::fs::write(
            &creds_m,
            json!({"url": self.urls.marathon, "user": "", "password": ""}).to_string(),
        )?;
        std::fs::write(
            &creds_c,
            json!({"url": self.urls.chronos, "user": "", "password": ""}).to_string(),
        )?;
        Ok(())
    }

    /// The supervisor on SQLite in the work directory, with the run's configuration and policy.
    async fn start_supervisor(
        &mut self,
        opts: &StackOptions,
        bins: &Binaries,
        ui: &Ui,
    ) -> anyhow::Result<()> {
        let creds_m = self.marathon_credentials();
        let creds_c = self.chronos_credentials();
        let sup_toml = self.work.join("supervisor.toml");
        std::fs::write(&sup_toml, &opts.supervisor_toml)?;
        let _ = std::fs::copy(&sup_toml, self.logs.join("supervisor.toml"));
        let mut cmd = self.command(bins.get("supervisor"));
        cmd.arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--db")
            .arg(self.work.join("supervisor.db"))
            .arg("--config")
            .arg(&sup_toml)
            .arg("--policy")
            .arg(&opts.policy)
            .arg("-m")
            .arg(&creds_m)
            .arg("-c")
            .arg(&creds_c);
        if let Some(t) = &opts.agent_token {
            cmd.env("QOS_AGENT_TOKEN", t);
        }
        let (c, v) = Component::start("supervisor", cmd, &self.logs, READY_TIMEOUT).await?;
        self.supervisor = Some(c);
        self.urls.supervisor = v["url"]
            .as_str()
            .context("the supervisor printed no url")?
            .trim_end_matches('/')
            .to_owned();
        ui.say(&format!(
            "supervisor: {}  (policy {}, SQLite in {})",
            self.urls.supervisor,
            opts.policy,
            self.work.display()
        ));
        Ok(())
    }

    /// The collector, reading the testbed's cgroups every second and reporting to the supervisor.
    async fn start_collector(
        &mut self,
        opts: &StackOptions,
        bins: &Binaries,
        ui: &Ui,
    ) -> anyhow::Result<()> {
        let mut cmd = self.command(bins.get("cgroup-collector"));
        cmd.arg("--supervisor")
            .arg(&self.urls.supervisor)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--testbed-prefix")
            .arg(&self.prefix)
            .arg("--testbed-meta-dir")
            .arg(self.work.join("meta"))
            .arg("--period")
            .arg("1");
        if !opts.docker {
            cmd.arg("--no-docker");
        }
        if let Some(t) = &opts.agent_token {
            cmd.env("QOS_RESIZE_TOKEN", t);
        }
        let (c, v) = Component::start("cgroup-collector", cmd, &self.logs, READY_TIMEOUT).await?;
        self.collector = Some(c);
        self.urls.collector_metrics = v["metrics"].as_str().unwrap_or_default().to_owned();
        self.urls.snapshot = v["snapshot"].as_str().map(str::to_owned);
        ui.say(&format!("collector:  {}", self.urls.collector_metrics));
        Ok(())
    }

    fn testbed_config(&self, opts: &StackOptions) -> String {
        format!(
            "# written by qos-elastic's demo harness\n\
             agents = {}\n\
             cpus_per_agent = {}\n\
             runtime = \"{}\"\n\
             cgroup_prefix = \"{}\"\n\
             meta_dir = \"{}\"\n\
             work_dir = \"{}\"\n\
             chronos_failure_retry_ms = 5000\n",
            opts.agents,
            opts.cpus_per_agent,
            if opts.docker { "docker" } else { "process" },
            self.prefix,
            self.work.join("meta").display(),
            self.work.join("sandboxes").display(),
        )
    }

    /// The Marathon credential file (the testbed's address).
    #[must_use]
    pub fn marathon_credentials(&self) -> PathBuf {
        self.work.join("marathon.json")
    }

    /// The Chronos credential file.
    #[must_use]
    pub fn chronos_credentials(&self) -> PathBuf {
        self.work.join("chronos.json")
    }

    /// Where Marathon tasks' sandboxes are.
    #[must_use]
    pub fn sandboxes(&self) -> PathBuf {
        self.work.join("sandboxes")
    }

    /// Submits one job file with the launcher (thesis form); its UUID. Marathon jobs checkpoint
    /// themselves (`--strategy app`, as LINPACK does).
    ///
    /// # Errors
    /// The launcher's own message when it refuses or fails.
    pub fn submit(&self, bins: &Binaries, file: &Path, framework: Fw) -> anyhow::Result<String> {
        let v = self.submit_with(bins, file, framework, &["--strategy", "app"])?;
        v["uuid"]
            .as_str()
            .map(str::to_owned)
            .context("the launcher printed no uuid")
    }

    /// Submits one job file with the launcher and `extra` arguments (e.g. `--strategy none`);
    /// the launcher's JSON answer (`uuid`, `warnings`, …).
    ///
    /// # Errors
    /// The launcher's own message when it refuses or fails.
    pub fn submit_with(
        &self,
        bins: &Binaries,
        file: &Path,
        framework: Fw,
        extra: &[&str],
    ) -> anyhow::Result<Value> {
        let mut cmd = Command::new(bins.get("launcher"));
        components::scrub_env(&mut cmd);
        cmd.env("PATH", &self.path_env)
            .arg("-j")
            .arg(file)
            .arg("-i")
            .arg(&self.urls.supervisor)
            .arg("--output")
            .arg("json");
        match framework {
            Fw::Chronos => cmd.arg("-c").arg(self.chronos_credentials()),
            Fw::Marathon => cmd
                .arg("-m")
                .arg(self.marathon_credentials())
                .arg("--checkpoint-dir")
                .arg(self.work.join("checkpoints"))
                .arg("--shell-trap")
                .arg(bins.get("shell-trap")),
        };
        cmd.args(extra);
        let out = cmd
            .output()
            .with_context(|| format!("cannot run {}", bins.get("launcher").display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            bail!(
                "the launcher could not submit {} ({}):\n{}{}",
                file.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim(),
                stdout.trim()
            );
        }
        serde_json::from_str(stdout.trim())
            .with_context(|| format!("unexpected launcher output {stdout:?}"))
    }

    /// Stops everything (the testbed first, so its tasks end while the supervisor still
    /// listens), then sweeps for leftovers. Returns what had to be cleaned up by force (empty:
    /// everything stopped by itself and nothing was left).
    pub async fn teardown(&mut self, ui: &Ui) -> Vec<String> {
        let mut forced = Vec::new();
        for (c, grace) in [
            (self.testbed.as_mut(), Duration::from_secs(45)),
            (self.collector.as_mut(), Duration::from_secs(8)),
            (self.supervisor.as_mut(), Duration::from_secs(15)),
        ] {
            let Some(c) = c else { continue };
            if c.stop(grace).await {
                let line = format!(
                    "{} did not stop within {} s of SIGTERM: its process group was killed",
                    c.name,
                    grace.as_secs()
                );
                ui.say(&line);
                forced.push(line);
            }
        }
        for c in self.components() {
            if components::group_alive(c.pid) {
                forced.push(format!("process group {} of {} survived", c.pid, c.name));
            }
        }
        let left = cleanup::sweep(&self.run_id, Path::new("/sys/fs/cgroup"), &self.prefix).await;
        forced.extend(left);
        if let Some(script) = self.docker_stop.take() {
            let _ = Command::new("bash")
                .arg(script)
                .arg("stop")
                .stdout(std::process::Stdio::null())
                .status();
        }
        forced
    }

    /// Leaves the components running (nothing is stopped when the stack is dropped).
    pub fn detach(&mut self) {
        for c in self.components() {
            c.detach();
        }
    }

    /// Makes sure the private Docker daemon runs (starting it if needed) and the LINPACK image
    /// exists; the daemon's address.
    fn start_docker(&mut self, ui: &Ui) -> anyhow::Result<String> {
        let root = binaries::workspace_root()
            .context("--docker needs the repository (scripts/docker-daemon, examples/linpack)")?;
        let script = root.join("scripts/docker-daemon");
        let running = Command::new("bash")
            .arg(&script)
            .arg("status")
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let out = Command::new("bash")
            .arg(&script)
            .arg("start")
            .stderr(std::process::Stdio::inherit())
            .output()
            .context("cannot run scripts/docker-daemon")?;
        if !out.status.success() {
            bail!("scripts/docker-daemon start failed ({})", out.status);
        }
        if !running {
            self.docker_stop = Some(script);
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let host = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("export DOCKER_HOST="))
            .context("scripts/docker-daemon printed no DOCKER_HOST")?
            .trim()
            .to_owned();
        ui.say(&format!(
            "docker:     private daemon at {host}; building {}",
            crate::workload::IMAGE
        ));
        let status = Command::new("bash")
            .arg(root.join("examples/linpack/build-image.sh"))
            .env("DOCKER_HOST", &host)
            .current_dir(&root)
            .stdout(std::process::Stdio::null())
            .status()
            .context("cannot run examples/linpack/build-image.sh")?;
        if !status.success() {
            bail!("examples/linpack/build-image.sh failed ({status})");
        }
        Ok(host)
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn interrupted() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

/// Prints what [`Stack::teardown`] returned.
pub fn report_leftovers(ui: &Ui, left: &[String]) {
    if left.is_empty() {
        ui.say("everything started has stopped; nothing is left running");
    } else {
        ui.say("cleaned up after components that did not stop cleanly:");
        for l in left {
            ui.say(&format!("  {l}"));
        }
    }
}

async fn probe(url: &str) -> bool {
    let Ok(c) = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
    else {
        return false;
    };
    matches!(c.get(url).send().await, Ok(r) if r.status().is_success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_named_by_its_start_and_kept_under_target() {
        let run = RunStamp::now();
        assert_eq!(run.stamp, run.started.format("%Y%m%d-%H%M%S").to_string());
        assert_eq!(run.id, format!("{}-{}", std::process::id(), run.stamp));
        let given = Path::new("/somewhere/else");
        assert_eq!(run_dir(Some(given), Path::new("demo/x")), given);
        let root = binaries::workspace_root().expect("tests run in the checkout");
        assert_eq!(
            run_dir(None, Path::new("demo/x")),
            root.join("target/demo/x")
        );
    }
}
